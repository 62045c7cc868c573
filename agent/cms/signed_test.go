package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Fixtures come from testdata/cms/generate.sh. Keys change on every run,
// so tests check relations (this cert verifies that file), never bytes.
// fixtureDir is the checked-in fixtures, or SZTP_CMS_FIXTURES when CI points
// the tests at a freshly generated set.
var fixtureDir = func() string {
	if d := os.Getenv("SZTP_CMS_FIXTURES"); d != "" {
		return d
	}
	return "../../testdata/cms"
}()

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

func pemBlock(t testing.TB, name string) []byte {
	t.Helper()
	blk, _ := pem.Decode(fixture(t, name))
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return blk.Bytes
}

func fixtureCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(pemBlock(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func fixtureKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(pemBlock(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.(crypto.Signer)
}

func TestParseSignedFixtures(t *testing.T) {
	content := fixture(t, "conveyed.json")
	voucher := fixture(t, "voucher.json")
	owner := fixtureCert(t, "owner.crt")
	rsaSigner := fixtureCert(t, "rsasigner.crt")
	ca := fixtureCert(t, "ca.crt")
	tests := []struct {
		file    string
		signer  *x509.Certificate
		ctype   asn1.ObjectIdentifier
		content []byte
		nCerts  int
	}{
		{"signed-conveyed-43.cms", owner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-conveyed-data.cms", owner, OIDData, content, 1},
		{"signed-conveyed-sha384.cms", owner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-rsa.cms", rsaSigner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-rsa-sha512.cms", rsaSigner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-rsapss.cms", rsaSigner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-skid.cms", owner, OIDSZTPConveyedInfoJSON, content, 1},
		{"signed-noattr.cms", owner, OIDData, content, 1},
		{"voucher.cms", owner, OIDAnimaJSONVoucher, voucher, 2},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s, err := ParseSigned(fixture(t, tc.file))
			if err != nil {
				t.Fatalf("ParseSigned: %v", err)
			}
			if !s.EContentType.Equal(tc.ctype) {
				t.Errorf("EContentType = %s, want %s", s.EContentType, tc.ctype)
			}
			if !bytes.Equal(s.Content, tc.content) {
				t.Errorf("Content differs from the signed input")
			}
			if len(s.Certificates) != tc.nCerts {
				t.Errorf("%d certificates, want %d", len(s.Certificates), tc.nCerts)
			}
			// The signer is found among the embedded certs and among certs
			// known out of band, and both verify.
			got, err := s.Signer(s.Certificates)
			if err != nil {
				t.Fatalf("Signer(embedded): %v", err)
			}
			if !got.Equal(tc.signer) {
				t.Fatalf("Signer = %q, want %q", got.Subject, tc.signer.Subject)
			}
			if got, err := s.Signer([]*x509.Certificate{ca, tc.signer}); err != nil || !got.Equal(tc.signer) {
				t.Fatalf("Signer(out of band) = %v, %v", got, err)
			}
			if err := s.VerifySignature(tc.signer); err != nil {
				t.Fatalf("VerifySignature: %v", err)
			}
			// Path validation stays the caller's job; show it composes.
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if _, err := tc.signer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Fatalf("chain: %v", err)
			}
		})
	}
}

func TestSignedAttributesTagged(t *testing.T) {
	s, err := ParseSigned(fixture(t, "signed-conveyed-43.cms"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.SignedAttributes) == 0 || s.SignedAttributes[0] != 0x31 {
		t.Fatalf("SignedAttributes must carry a SET OF tag, got % x", s.SignedAttributes[:1])
	}
	if s.SignerIdentifier() == "" {
		t.Fatal("empty SignerIdentifier")
	}
}

// resign re-encodes a parsed SignedData ContentInfo after mutate.
func resign(t testing.TB, der []byte, mutate func(*SignedData)) []byte {
	t.Helper()
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	mutate(sd)
	inner, err := asn1.Marshal(*sd)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(ContentInfo{ContentType: OIDSignedData, Content: asn1.RawValue{FullBytes: explicit0(inner)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipLast flips the last byte of needle inside der (a copy).
func flipIn(t testing.TB, der, needle []byte) []byte {
	t.Helper()
	i := bytes.Index(der, needle)
	if i < 0 || len(needle) == 0 {
		t.Fatal("needle not found")
	}
	out := bytes.Clone(der)
	out[i+len(needle)-1] ^= 0x01
	return out
}

func TestSignedNegative(t *testing.T) {
	good := fixture(t, "signed-conveyed-43.cms")
	owner := fixtureCert(t, "owner.crt")
	s, err := ParseSigned(good)
	if err != nil {
		t.Fatal(err)
	}
	// Same signer, but the signed attributes no longer match the type:
	// every signed byte is unchanged, so only the content-type check catches it.
	ctSwapped := resign(t, good, func(sd *SignedData) { sd.EncapContentInfo.EContentType = OIDData })
	ctSwappedVoucher := resign(t, good, func(sd *SignedData) { sd.EncapContentInfo.EContentType = OIDAnimaJSONVoucher })
	// id-data without attributes is legal; any other type without attributes is not.
	noattrTyped := resign(t, fixture(t, "signed-conveyed-data.cms"), func(sd *SignedData) {})
	_ = noattrTyped
	noattrRetyped := resign(t, fixture(t, "signed-noattr.cms"), func(sd *SignedData) {
		sd.EncapContentInfo.EContentType = OIDSZTPConveyedInfoJSON
	})

	tests := []struct {
		name    string
		der     []byte
		cert    *x509.Certificate
		wantErr error // nil: any error will do
	}{
		{"tampered content", flipIn(t, good, s.Content), owner, ErrInvalidSignature},
		{"tampered signature", flipIn(t, good, s.Signature), owner, ErrInvalidSignature},
		{"content-type attribute != eContentType (id-data)", ctSwapped, owner, ErrContentTypeMismatch},
		{"content-type attribute != eContentType (.40)", ctSwappedVoucher, owner, ErrContentTypeMismatch},
		{"no signed attributes with eContentType .43", noattrRetyped, owner, nil},
		{"wrong signer cert", good, fixtureCert(t, "rsasigner.crt"), ErrSignerNotFound},
		{"wrong signer cert (CA)", good, fixtureCert(t, "ca.crt"), ErrSignerNotFound},
		{"SHA-1 digest", fixture(t, "signed-sha1.cms"), owner, nil},
		{"no signer (certificate bag)", fixture(t, "owner-certs.p7"), owner, ErrNoSigner},
		{"detached", fixture(t, "signed-detached.cms"), owner, ErrDetached},
		{"trailing garbage", append(bytes.Clone(good), 0x00), owner, nil},
		{"enveloped, not signed", fixture(t, "enc-rsa-aes256.cms"), owner, nil},
		{"empty", nil, owner, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := parseAndVerify(tc.der, tc.cert)
			noPanic(t, err)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %q is not %v", err, tc.wantErr)
			}
			t.Log(err)
		})
	}

	t.Run("SHA-1 is an UnsupportedAlgorithmError", func(t *testing.T) {
		_, err := ParseSigned(fixture(t, "signed-sha1.cms"))
		var ue *UnsupportedAlgorithmError
		if !errors.As(err, &ue) {
			t.Fatalf("got %v", err)
		}
	})
}

func parseAndVerify(der []byte, cert *x509.Certificate) error {
	s, err := ParseSigned(der)
	if err != nil {
		return err
	}
	return s.VerifySignature(cert)
}

func TestSignedTruncated(t *testing.T) {
	for _, f := range []string{"signed-conveyed-43.cms", "signed-rsapss.cms", "voucher.cms", "signed-skid.cms"} {
		der := fixture(t, f)
		for n := 0; n < len(der); n++ {
			_, err := ParseSigned(der[:n])
			noPanic(t, err)
			if err == nil {
				t.Fatalf("%s truncated to %d bytes: accepted", f, n)
			}
		}
	}
}

// TestSignedBitFlips flips every byte of a fixture: each result must either
// fail or (for bytes outside what is signed, e.g. the certificate set) still
// verify, and never panic.
func TestSignedBitFlips(t *testing.T) {
	der := fixture(t, "signed-conveyed-43.cms")
	owner := fixtureCert(t, "owner.crt")
	s0, _ := ParseSigned(der)
	for i := range der {
		mut := bytes.Clone(der)
		mut[i] ^= 0x80
		s, err := ParseSigned(mut)
		noPanic(t, err)
		if err != nil {
			continue
		}
		if err := s.VerifySignature(owner); err == nil {
			// Accepted: then what the signer vouched for must be unchanged.
			if !bytes.Equal(s.Content, s0.Content) || !s.EContentType.Equal(s0.EContentType) {
				t.Fatalf("flip at %d changed the content yet verified", i)
			}
		}
	}
}

// buildSigned makes a one-signer SignedData in Go, for cases openssl 3.0
// cannot produce (Ed25519) or must not (a signer that signs a content-type
// attribute different from the eContentType).
func buildSigned(t testing.TB, eType, attrType asn1.ObjectIdentifier, content []byte, key crypto.Signer, cert *x509.Certificate, h crypto.Hash, sigAlg asn1.ObjectIdentifier) []byte {
	t.Helper()
	digestOID := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: oidSHA256, crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512}[h]
	d := h.New()
	d.Write(content)
	attr := func(oid asn1.ObjectIdentifier, v any) []byte {
		val, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b, err := asn1.Marshal(struct {
			Type   asn1.ObjectIdentifier
			Values asn1.RawValue
		}{oid, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: val}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	attrs := append(attr(oidAttrContentType, attrType), attr(oidAttrMessageDigest, d.Sum(nil))...)
	set, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrs})
	var sig []byte
	var err error
	if _, ok := key.(ed25519.PrivateKey); ok {
		sig, err = key.Sign(rand.Reader, set, crypto.Hash(0))
	} else {
		d := h.New()
		d.Write(set)
		sig, err = key.Sign(rand.Reader, d.Sum(nil), h)
	}
	if err != nil {
		t.Fatal(err)
	}
	ias, _ := asn1.Marshal(issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber})
	si := signerInfo{
		Version:            1,
		SID:                asn1.RawValue{FullBytes: ias},
		DigestAlgorithm:    pkix.AlgorithmIdentifier{Algorithm: digestOID},
		SignedAttrs:        asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrs},
		SignatureAlgorithm: pkix.AlgorithmIdentifier{Algorithm: sigAlg},
		Signature:          sig,
	}
	siDER, err := asn1.Marshal(si)
	if err != nil {
		t.Fatal(err)
	}
	octets, _ := asn1.Marshal(content)
	algDER, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: digestOID})
	sd := SignedData{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: algDER},
		EncapContentInfo: EncapsulatedContentInfo{EContentType: eType, EContent: asn1.RawValue{FullBytes: explicit0(octets)}},
		RawCertificates:  asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cert.Raw},
		SignerInfos:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: siDER},
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(ContentInfo{ContentType: OIDSignedData, Content: asn1.RawValue{FullBytes: explicit0(inner)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "go-built signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGoBuiltSigned(t *testing.T) {
	content := []byte(`{"ietf-sztp-conveyed-info:redirect-information":{}}`)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edCert := selfSigned(t, edKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecCert := selfSigned(t, ecKey)

	t.Run("Ed25519", func(t *testing.T) {
		der := buildSigned(t, OIDSZTPConveyedInfoJSON, OIDSZTPConveyedInfoJSON, content, edKey, edCert, crypto.SHA512, oidEd25519)
		if err := parseAndVerify(der, edCert); err != nil {
			t.Fatal(err)
		}
		bad := flipIn(t, der, content)
		if err := parseAndVerify(bad, edCert); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("tampered Ed25519: %v", err)
		}
	})
	t.Run("ECDSA P-384 with id-ecPublicKey as signature OID", func(t *testing.T) {
		der := buildSigned(t, OIDAnimaJSONVoucher, OIDAnimaJSONVoucher, content, ecKey, ecCert, crypto.SHA384, oidECPublicKey)
		if err := parseAndVerify(der, ecCert); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("validly signed content-type attribute != eContentType", func(t *testing.T) {
		// The signer really signed "id-data", but the wrapper claims a voucher.
		der := buildSigned(t, OIDAnimaJSONVoucher, OIDData, content, ecKey, ecCert, crypto.SHA384, oidECDSAWithSHA384)
		if err := parseAndVerify(der, ecCert); !errors.Is(err, ErrContentTypeMismatch) {
			t.Fatalf("got %v, want ErrContentTypeMismatch", err)
		}
	})
	t.Run("signature hash differs from digest algorithm", func(t *testing.T) {
		der := buildSigned(t, OIDData, OIDData, content, ecKey, ecCert, crypto.SHA384, oidECDSAWithSHA256)
		var ue *UnsupportedAlgorithmError
		if err := parseAndVerify(der, ecCert); !errors.As(err, &ue) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("key type mismatch", func(t *testing.T) {
		der := buildSigned(t, OIDData, OIDData, content, ecKey, ecCert, crypto.SHA384, oidECDSAWithSHA384)
		s, err := ParseSigned(der)
		if err != nil {
			t.Fatal(err)
		}
		// Pretend the Ed25519 cert is the signer by forcing its identity.
		s.sid = identifier{issuer: edCert.RawIssuer, serial: edCert.SerialNumber}
		if err := s.VerifySignature(edCert); err == nil {
			t.Fatal("accepted an ECDSA signature with an Ed25519 key")
		}
	})
}

func TestOversized(t *testing.T) {
	big := make([]byte, maxArtifactSize+1)
	if _, err := ParseSigned(big); err == nil {
		t.Fatal("accepted an oversized input")
	}
	if _, _, err := Decrypt(big, fixtureCert(t, "devrsa.crt"), fixtureKey(t, "devrsa.key")); err == nil {
		t.Fatal("accepted an oversized input")
	}
}

func FuzzParseSigned(f *testing.F) {
	for _, name := range []string{"signed-conveyed-43.cms", "signed-conveyed-data.cms", "signed-rsapss.cms",
		"signed-skid.cms", "signed-noattr.cms", "voucher.cms", "owner-certs.p7", "signed-detached.cms"} {
		f.Add(fixture(f, name))
	}
	owner := fixtureCert(f, "owner.crt")
	rsaSigner := fixtureCert(f, "rsasigner.crt")
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := ParseSigned(der)
		noPanic(t, err)
		if err != nil {
			return
		}
		for _, c := range s.Certificates {
			noPanic(t, s.VerifySignature(c))
		}
		noPanic(t, s.VerifySignature(owner))
		noPanic(t, s.VerifySignature(rsaSigner))
		_, _ = s.Signer(s.Certificates)
	})
}

// noPanic fails when the API's recover() net caught a panic: the net keeps
// the agent alive in production, but a panic is still a bug.
func noPanic(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errRecoveredPanic) {
		t.Fatalf("recovered panic: %v", err)
	}
}
