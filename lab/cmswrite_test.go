package lab

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// requireOpenSSL skips interop tests on a machine without the openssl CLI.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl CLI not found:", err)
	}
}

// openssl runs the openssl CLI and returns its combined output.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// writeTemp writes data to a new file in t's temporary directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opensslVerify runs `openssl cms -verify` on a DER SignedData with caFile
// as the only trust anchor and returns the content it outputs.
func opensslVerify(t *testing.T, der []byte, caFile string) ([]byte, error) {
	t.Helper()
	in := writeTemp(t, "signed.der", der)
	out := filepath.Join(filepath.Dir(in), "content")
	msg, err := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", in, "-CAfile", caFile, "-purpose", "any", "-out", out)
	if err != nil {
		return nil, errors.New(strings.TrimSpace(msg))
	}
	return os.ReadFile(out)
}

// opensslDecrypt runs `openssl cms -decrypt` with the recipient's
// certificate and key files and returns the plaintext.
func opensslDecrypt(t *testing.T, der []byte, certFile, keyFile string) ([]byte, error) {
	t.Helper()
	in := writeTemp(t, "enveloped.der", der)
	out := filepath.Join(filepath.Dir(in), "plain")
	msg, err := openssl(t, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", in, "-recip", certFile, "-inkey", keyFile, "-out", out)
	if err != nil {
		return nil, errors.New(strings.TrimSpace(msg))
	}
	return os.ReadFile(out)
}

// opensslPrint is `openssl cms -cmsout -print` of a DER ContentInfo.
func opensslPrint(t *testing.T, der []byte) string {
	t.Helper()
	out, err := openssl(t, "cms", "-cmsout", "-print", "-inform", "DER", "-in", writeTemp(t, "print.der", der))
	if err != nil {
		t.Fatalf("openssl cms -cmsout -print: %v\n%s", err, out)
	}
	return out
}

// rsaLeaf issues an RSA-2048 end-entity certificate from ca and writes it
// with its key to dir, for the RSA signing and key transport cases (the
// lab PKI itself is all ECDSA).
func rsaLeaf(t *testing.T, ca *CA, dir, name string) *KeyPair {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "SZTP lab RSA " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kp := &KeyPair{Cert: cert, Key: key, CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+".key")}
	if err := writeKeyPair(kp.CertFile, kp.KeyFile, key, cert); err != nil {
		t.Fatal(err)
	}
	return kp
}

// signedDataVersions reads SignedData.version and the first SignerInfo's
// version (the leading INTEGER of its SEQUENCE).
func signedDataVersions(t *testing.T, der []byte) (sdVersion, siVersion int) {
	t.Helper()
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	var first asn1.RawValue
	if _, err := asn1.Unmarshal(sd.SignerInfos.Bytes, &first); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(first.Bytes, &siVersion); err != nil {
		t.Fatal(err)
	}
	return sd.Version, siVersion
}

func TestSignDataOpenSSLInterop(t *testing.T) {
	requireOpenSSL(t)
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner := rsaLeaf(t, pki.OwnerCA, t.TempDir(), "owner")
	content := []byte(`{"ietf-sztp-conveyed-info:onboarding-information":{"configuration-handling":"merge","configuration":"e30="}}`)
	tests := []struct {
		name      string
		oid       asn1.ObjectIdentifier
		signer    *KeyPair
		extra     []*x509.Certificate
		sdVersion int
	}{
		{"ECDSA .43", cms.OIDSZTPConveyedInfoJSON, pki.Owner, nil, 3},
		{"ECDSA id-data", cms.OIDData, pki.Owner, nil, 1},
		{"ECDSA voucher with CA", cms.OIDAnimaJSONVoucher, pki.Owner, []*x509.Certificate{pki.OwnerCA.Cert}, 3},
		{"RSA PKCS#1 v1.5 .43", cms.OIDSZTPConveyedInfoJSON, rsaSigner, nil, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := SignData(tc.oid, content, tc.signer.Cert, tc.signer.Key, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			got, err := opensslVerify(t, der, pki.OwnerCA.CertFile)
			if err != nil {
				t.Fatalf("openssl cms -verify: %v", err)
			}
			if !bytes.Equal(got, content) {
				t.Errorf("openssl output %q, want the signed content", got)
			}
			printed := opensslPrint(t, der)
			if !strings.Contains(printed, "eContentType: ") || !strings.Contains(printed, "("+tc.oid.String()+")") {
				t.Errorf("openssl -print does not show eContentType %s:\n%s", tc.oid, printed)
			}
			for _, attr := range []string{"contentType", "messageDigest", "signingTime"} {
				if !strings.Contains(printed, "object: "+attr) {
					t.Errorf("signed attribute %s missing:\n%s", attr, printed)
				}
			}
			if sdv, siv := signedDataVersions(t, der); sdv != tc.sdVersion || siv != 1 {
				t.Errorf("SignedData version %d, SignerInfo version %d; want %d and 1", sdv, siv, tc.sdVersion)
			}

			// The agent's reader agrees.
			s, err := cms.ParseSigned(der)
			if err != nil {
				t.Fatal(err)
			}
			if !s.EContentType.Equal(tc.oid) || !bytes.Equal(s.Content, content) || len(s.Certificates) != 1+len(tc.extra) {
				t.Errorf("agent/cms sees %s, %d bytes, %d certificates", cms.Name(s.EContentType), len(s.Content), len(s.Certificates))
			}
			signer, err := s.Signer(s.Certificates)
			if err != nil || !signer.Equal(tc.signer.Cert) {
				t.Fatalf("signer: %v", err)
			}
			if err := s.VerifySignature(signer); err != nil {
				t.Errorf("agent/cms VerifySignature: %v", err)
			}
		})
	}

	// A signature from a CA openssl is not given fails there.
	other, err := newMemoryCA("other")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.issueSigner("", "stranger", "stranger")
	if err != nil {
		t.Fatal(err)
	}
	der, err := SignData(cms.OIDData, content, stranger.Cert, stranger.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opensslVerify(t, der, pki.OwnerCA.CertFile); err == nil {
		t.Error("openssl verified a signature from an unknown CA")
	}
	if _, err := SignData(cms.OIDData, content, pki.Owner.Cert, pki.VoucherSigner.Key, nil); err == nil {
		t.Error("SignData accepted a key that does not match the certificate")
	}
}

func TestEncryptToOpenSSLInterop(t *testing.T) {
	requireOpenSSL(t)
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	rsaRecipient := rsaLeaf(t, pki.Manufacturer, t.TempDir(), "device")
	ecRecipient := &KeyPair{Cert: pki.IDevID, Key: pki.IDevIDKey, CertFile: pki.IDevIDCertFile, KeyFile: pki.IDevIDKeyFile}
	signed, err := SignData(cms.OIDSZTPConveyedInfoJSON, []byte(`{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"a"}]}}`), pki.Owner.Cert, pki.Owner.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		recipient *KeyPair
		opts      EncryptOptions
		printed   []string // in openssl -print output
	}{
		{"RSA PKCS#1 v1.5", rsaRecipient, EncryptOptions{}, []string{"algorithm: rsaEncryption", "d.ktri"}},
		{"RSA OAEP-SHA256", rsaRecipient, EncryptOptions{RSAOAEP: true}, []string{"algorithm: rsaesOaep", ":sha256", ":mgf1"}},
		{"EC P-256", ecRecipient, EncryptOptions{}, []string{"d.kari", "algorithm: dhSinglePass-stdDH-sha256kdf-scheme", ":id-aes256-wrap"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, content := range [][]byte{signed, []byte("x"), bytes.Repeat([]byte{7}, 32)} {
				der, err := EncryptWithOptions(content, tc.recipient.Cert, cms.OIDSignedData, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				plain, err := opensslDecrypt(t, der, tc.recipient.CertFile, tc.recipient.KeyFile)
				if err != nil {
					t.Fatalf("openssl cms -decrypt: %v", err)
				}
				if !bytes.Equal(plain, content) {
					t.Fatalf("openssl decrypted %d bytes, want the %d encrypted", len(plain), len(content))
				}
				printed := opensslPrint(t, der)
				for _, want := range append(tc.printed, "contentType: pkcs7-signedData", "algorithm: aes-256-cbc") {
					if !strings.Contains(printed, want) {
						t.Errorf("openssl -print lacks %q:\n%s", want, printed)
					}
				}
				// The agent's reader agrees, and sees the inner type.
				got, ct, err := cms.Decrypt(der, tc.recipient.Cert, tc.recipient.Key)
				if err != nil {
					t.Fatalf("agent/cms Decrypt: %v", err)
				}
				if !bytes.Equal(got, content) || !ct.Equal(cms.OIDSignedData) {
					t.Errorf("agent/cms Decrypt: %d bytes, content type %s", len(got), cms.Name(ct))
				}
			}
		})
	}

	// Sign-then-encrypt end to end through openssl: decrypt, then verify.
	der, err := EncryptTo(signed, pki.IDevID, cms.OIDSignedData)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := opensslDecrypt(t, der, pki.IDevIDCertFile, pki.IDevIDKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opensslVerify(t, inner, pki.OwnerCA.CertFile); err != nil {
		t.Errorf("the decrypted SignedData does not verify: %v", err)
	}
	// Another key cannot open it.
	if _, err := opensslDecrypt(t, der, pki.Owner.CertFile, pki.Owner.KeyFile); err == nil {
		t.Error("openssl decrypted with the wrong key")
	}
	if _, err := EncryptTo([]byte("x"), nil, cms.OIDData); err == nil {
		t.Error("EncryptTo without recipient succeeded")
	}
}

func TestCertificateBagWithCRL(t *testing.T) {
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	crl, err := pki.OwnerCA.CRL(now, pki.Owner.Cert)
	if err != nil {
		t.Fatal(err)
	}
	bag, err := certificateBag([]*x509.Certificate{pki.Owner.Cert, pki.OwnerCA.Cert}, [][]byte{crl})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := cms.ParseCertificateBag(bag)
	if err != nil || len(certs) != 2 {
		t.Fatalf("ParseCertificateBag: %d certificates, %v", len(certs), err)
	}
	sd, err := cms.ParseSignedData(bag)
	if err != nil {
		t.Fatal(err)
	}
	crls, err := sd.CRLs()
	if err != nil || len(crls) != 1 || !bytes.Equal(crls[0], crl) {
		t.Fatalf("CRLs: %d, %v", len(crls), err)
	}
	if sd.Version != 1 || len(sd.SignerInfos.Bytes) != 0 || len(sd.EncapContentInfo.EContent.FullBytes) != 0 {
		t.Errorf("not a degenerate SignedData: version %d, %d signer bytes", sd.Version, len(sd.SignerInfos.Bytes))
	}
	rl, err := x509.ParseRevocationList(crl)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(pki.OwnerCA.Cert); err != nil {
		t.Error(err)
	}
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(pki.Owner.Cert.SerialNumber) != 0 ||
		!rl.NextUpdate.After(now) || rl.ThisUpdate.After(now) {
		t.Errorf("CRL = %+v", rl)
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		// openssl reads the bag (certificates and CRL) as PKCS#7 too.
		out, err := openssl(t, "pkcs7", "-inform", "DER", "-in", writeTemp(t, "bag.der", bag), "-print_certs", "-noout")
		if err != nil || strings.Count(out, "subject=") != 2 || !strings.Contains(out, "Certificate Revocation List") {
			t.Errorf("openssl pkcs7: %v\n%s", err, out)
		}
	}
}

func TestAESKeyWrapVector(t *testing.T) {
	// RFC 3394 §4.6: 256-bit key data with a 256-bit KEK.
	kek := mustHex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key := mustHex(t, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := mustHex(t, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := aesKeyWrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("aesKeyWrap = %X, %v", got, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := parseHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
