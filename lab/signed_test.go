package lab

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// testNonce is a 32-byte nonce as the agent sends it.
var testNonce = bytes.Repeat([]byte{0xA5, 0x5A, 0x01, 0x02}, 8)

func nonceInput(nonce []byte) string {
	return `{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"nonce":"` + base64.StdEncoding.EncodeToString(nonce) + `"}}`
}

// signedOutput is a decoded signed get-bootstrapping-data output; absent
// artifacts are nil.
type signedOutput struct {
	level            string
	conveyed         []byte
	ownerCertificate []byte
	voucher          []byte
	members          []string // the output's member names
}

func signedOutputOf(t *testing.T, r response) signedOutput {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("get-bootstrapping-data: status %d: %s", r.status, r.body)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("decoding output: %v: %s", err, r.body)
	}
	o, ok := out[outputMember]
	if !ok || len(out) != 1 {
		t.Fatalf("output body = %s", r.body)
	}
	leaf := func(name string) []byte {
		v, present := o[name]
		if !present {
			return nil
		}
		b, err := binaryLeaf(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	so := signedOutput{
		conveyed:         leaf("conveyed-information"),
		ownerCertificate: leaf("owner-certificate"),
		voucher:          leaf("ownership-voucher"),
	}
	so.level, _ = o["reporting-level"].(string)
	for k := range o {
		so.members = append(so.members, k)
	}
	return so
}

// parsedVoucher verifies a voucher artifact as a device does up to the
// content (RFC 8572 §5.4 step 2) and returns its JSON, raw and decoded.
func parsedVoucher(t *testing.T, pki *PKI, der []byte) ([]byte, map[string]any) {
	t.Helper()
	s, err := cms.ParseSigned(der)
	if err != nil {
		t.Fatalf("voucher: %v", err)
	}
	if !s.EContentType.Equal(cms.OIDAnimaJSONVoucher) {
		t.Errorf("voucher eContentType = %s", cms.Name(s.EContentType))
	}
	signer, err := s.Signer(s.Certificates)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySignature(signer); err != nil {
		t.Fatal(err)
	}
	roots, err := certPool(pki.VoucherTrustAnchorFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("voucher signer does not chain to the voucher trust anchor: %v", err)
	}
	var top map[string]map[string]any
	if err := json.Unmarshal(s.Content, &top); err != nil {
		t.Fatalf("voucher JSON: %v: %s", err, s.Content)
	}
	v, ok := top[voucherMember]
	if !ok || len(top) != 1 {
		t.Fatalf("voucher JSON = %s", s.Content)
	}
	return s.Content, v
}

func certPool(pemFile string) (*x509.CertPool, error) {
	certs, err := readCertificates(pemFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func signedDefinition(s *Signing) *Definition {
	return &Definition{
		ReportingLevel: ReportingVerbose,
		Onboarding:     &Onboarding{ConfigurationData: []byte(`{"hostname":"signed"}`), ConfigurationHandling: "replace"},
		Signed:         s,
	}
}

func TestSignedOnboardingNonceVoucher(t *testing.T) {
	requireOpenSSL(t)
	pki, srv := startLab(t, signedDefinition(&Signing{Voucher: VoucherSpec{Nonce: true}}))
	before := time.Now().Add(-time.Second)
	out := signedOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", nonceInput(testNonce)))
	if out.level != ReportingVerbose || out.conveyed == nil || out.ownerCertificate == nil || out.voucher == nil {
		t.Fatalf("output members %v, reporting-level %q", out.members, out.level)
	}

	// Voucher: content per RFC 8366, with this device's serial and nonce.
	raw, v := parsedVoucher(t, pki, out.voucher)
	if !strings.HasPrefix(string(raw), `{"ietf-voucher:voucher":{"created-on":"`) ||
		!regexpOrder(string(raw), "created-on", "assertion", "serial-number", "pinned-domain-cert", "nonce") {
		t.Errorf("voucher JSON layout: %s", raw)
	}
	created, err := time.Parse(time.RFC3339, v["created-on"].(string))
	if err != nil || created.Before(before.Truncate(time.Second)) || created.After(time.Now()) || !strings.HasSuffix(v["created-on"].(string), "Z") {
		t.Errorf("created-on = %v (%v)", v["created-on"], err)
	}
	want := map[string]any{
		"created-on":         v["created-on"],
		"assertion":          "verified",
		"serial-number":      testSerial,
		"pinned-domain-cert": b64(pki.OwnerCA.Cert.Raw),
		"nonce":              b64(testNonce),
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("voucher = %v\nwant %v", v, want)
	}
	// The voucher also verifies with openssl against the file the agent is
	// given as --voucher-trust-anchor.
	if content, err := opensslVerify(t, out.voucher, pki.VoucherTrustAnchorFile); err != nil || !bytes.Equal(content, raw) {
		t.Errorf("openssl voucher verification: %v", err)
	}

	// Owner certificate: a degenerate bag holding the owner certificate,
	// which validates to the pinned-domain-cert.
	certs, err := cms.ParseCertificateBag(out.ownerCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || !certs[0].Equal(pki.Owner.Cert) {
		t.Fatalf("owner-certificate bag holds %d certificates", len(certs))
	}
	pinned, err := x509.ParseCertificate(pki.OwnerCA.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("owner certificate does not validate to the pinned-domain-cert: %v", err)
	}
	if certs[0].KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("owner certificate KeyUsage = %v", certs[0].KeyUsage)
	}
	if sd, _ := cms.ParseSignedData(out.ownerCertificate); len(sd.SignerInfos.Bytes) != 0 || len(sd.RawCRLs.Bytes) != 0 {
		t.Error("owner-certificate bag has signers or CRLs")
	}

	// Conveyed information: signed by the owner certificate, .43, and
	// verifiable by openssl with the pinned-domain-cert as the only anchor.
	s, err := cms.ParseSigned(out.conveyed)
	if err != nil {
		t.Fatal(err)
	}
	if !s.EContentType.Equal(cms.OIDSZTPConveyedInfoJSON) {
		t.Errorf("conveyed eContentType = %s", cms.Name(s.EContentType))
	}
	if err := s.VerifySignature(certs[0]); err != nil {
		t.Errorf("conveyed information not signed by the owner certificate: %v", err)
	}
	pinnedFile := writeTemp(t, "pinned.pem", pemCertificates(pinned))
	content, err := opensslVerify(t, out.conveyed, pinnedFile)
	if err != nil {
		t.Fatalf("openssl conveyed-information verification: %v", err)
	}
	var conveyed map[string]map[string]any
	if err := json.Unmarshal(content, &conveyed); err != nil {
		t.Fatal(err)
	}
	if ob := conveyed["ietf-sztp-conveyed-info:onboarding-information"]; ob["configuration-handling"] != "replace" || ob["configuration"] != b64([]byte(`{"hostname":"signed"}`)) {
		t.Errorf("conveyed information = %s", content)
	}

	// A nonce voucher needs a nonce.
	r := postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null]}}`)
	if r.status != http.StatusBadRequest || restconfErrorTag(t, r) != tagMissingElement {
		t.Errorf("request without nonce: status %d: %s", r.status, r.body)
	}
}

// regexpOrder reports whether the quoted member names appear in s in the
// given order.
func regexpOrder(s string, names ...string) bool {
	at := 0
	for _, n := range names {
		i := strings.Index(s[at:], `"`+n+`":`)
		if i < 0 {
			return false
		}
		at += i + 1
	}
	return true
}

func TestSignedVoucherOptions(t *testing.T) {
	pki, srv := startLab(t, nil)
	client := deviceClient(t, pki, true)
	no, yes := false, true
	aki := authorityKeyIDExtension(pki.IDevID)
	var akiSeq struct {
		KeyID []byte `asn1:"optional,tag:0"`
	}
	if _, err := asn1.Unmarshal(aki, &akiSeq); err != nil || !bytes.Equal(akiSeq.KeyID, pki.IDevID.AuthorityKeyId) {
		t.Fatalf("the IDevID's AKI extension %X does not hold its key id (%v)", aki, err)
	}
	tests := []struct {
		name  string
		spec  VoucherSpec
		check func(t *testing.T, v map[string]any, now time.Time)
	}{
		{"defaults", VoucherSpec{}, func(t *testing.T, v map[string]any, now time.Time) {
			exp, err := time.Parse(time.RFC3339, v["expires-on"].(string))
			if err != nil || exp.Sub(now) < 30*24*time.Hour-time.Minute || exp.Sub(now) > 30*24*time.Hour+time.Minute {
				t.Errorf("expires-on = %v, want 30 days from now", v["expires-on"])
			}
			for _, absent := range []string{"nonce", "idevid-issuer", "domain-cert-revocation-checks"} {
				if _, ok := v[absent]; ok {
					t.Errorf("%s present", absent)
				}
			}
		}},
		{"expired, logged, other serial, key-id, no revocation checks", VoucherSpec{ExpiresIn: -time.Hour, Assertion: "logged", SerialNumber: "SOMEONE-ELSE", IDevIDIssuer: IDevIDIssuerKeyID, RevocationChecks: &no},
			func(t *testing.T, v map[string]any, now time.Time) {
				exp, _ := time.Parse(time.RFC3339, v["expires-on"].(string))
				if !exp.Before(now) || v["assertion"] != "logged" || v["serial-number"] != "SOMEONE-ELSE" ||
					v["idevid-issuer"] != b64(pki.IDevID.AuthorityKeyId) || v["domain-cert-revocation-checks"] != false {
					t.Errorf("voucher = %v", v)
				}
			}},
		{"8366bis AKI, revocation checks, future created-on", VoucherSpec{IDevIDIssuer: IDevIDIssuerAKI, RevocationChecks: &yes, CreatedOffset: 48 * time.Hour},
			func(t *testing.T, v map[string]any, now time.Time) {
				created, _ := time.Parse(time.RFC3339, v["created-on"].(string))
				if created.Sub(now) < 47*time.Hour || v["idevid-issuer"] != b64(aki) || v["domain-cert-revocation-checks"] != true {
					t.Errorf("voucher = %v", v)
				}
			}},
		{"wrong nonce", VoucherSpec{NonceValue: []byte("0123456789abcdef")}, func(t *testing.T, v map[string]any, now time.Time) {
			if v["nonce"] != b64([]byte("0123456789abcdef")) {
				t.Errorf("nonce = %v", v["nonce"])
			}
			if _, ok := v["expires-on"]; ok {
				t.Error("a nonce voucher has expires-on")
			}
		}},
		{"nonce ignores expires-in", VoucherSpec{Nonce: true, ExpiresIn: time.Hour}, func(t *testing.T, v map[string]any, now time.Time) {
			if _, ok := v["expires-on"]; ok || v["nonce"] != b64(testNonce) {
				t.Errorf("voucher = %v", v)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetDefinition(signedDefinition(&Signing{Voucher: tc.spec}))
			now := time.Now()
			out := signedOutputOf(t, postRPC(t, client, srv, "get-bootstrapping-data", nonceInput(testNonce)))
			_, v := parsedVoucher(t, pki, out.voucher)
			tc.check(t, v, now)
		})
	}
}

func TestSignedKnobs(t *testing.T) {
	requireOpenSSL(t)
	pki, srv := startLab(t, nil)
	client := deviceClient(t, pki, true)
	// A signer the owner did not authorise: the voucher signer's
	// credentials (valid, but not the owner certificate).
	wrong := pki.VoucherSigner
	tests := []struct {
		name  string
		spec  Signing
		check func(t *testing.T, out signedOutput)
	}{
		{"TamperConveyed", Signing{TamperConveyed: true}, func(t *testing.T, out signedOutput) {
			if _, err := opensslVerify(t, out.conveyed, pki.OwnerCA.CertFile); err == nil {
				t.Error("openssl verified tampered conveyed information")
			}
			s, err := cms.ParseSigned(out.conveyed)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifySignature(pki.Owner.Cert); !errors.Is(err, cms.ErrInvalidSignature) {
				t.Errorf("VerifySignature = %v, want ErrInvalidSignature", err)
			}
			if !json.Valid(s.Content) || !bytes.HasPrefix(s.Content, []byte(`{"Ietf-sztp`)) {
				t.Errorf("tampered content = %s, want well-formed JSON with one letter changed", s.Content)
			}
		}},
		{"SignConveyedWith", Signing{SignConveyedWith: wrong.Cert, SignConveyedWithKey: wrong.Key}, func(t *testing.T, out signedOutput) {
			s, err := cms.ParseSigned(out.conveyed)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifySignature(pki.Owner.Cert); !errors.Is(err, cms.ErrSignerNotFound) {
				t.Errorf("VerifySignature(owner) = %v, want ErrSignerNotFound", err)
			}
			if signer, err := s.Signer(s.Certificates); err != nil || !signer.Equal(wrong.Cert) || s.VerifySignature(signer) != nil {
				t.Errorf("conveyed information is not validly signed by the substitute: %v", err)
			}
			if certs, _ := cms.ParseCertificateBag(out.ownerCertificate); len(certs) != 1 || !certs[0].Equal(pki.Owner.Cert) {
				t.Error("the owner-certificate artifact changed")
			}
		}},
		{"OmitOwnerCertificate", Signing{OmitOwnerCertificate: true}, func(t *testing.T, out signedOutput) {
			if out.ownerCertificate != nil || out.voucher == nil || out.conveyed == nil {
				t.Errorf("members = %v", out.members)
			}
		}},
		{"OmitVoucher", Signing{OmitVoucher: true}, func(t *testing.T, out signedOutput) {
			if out.voucher != nil || out.ownerCertificate == nil {
				t.Errorf("members = %v", out.members)
			}
		}},
		{"VoucherSignerFromOtherMASA", Signing{VoucherSignerFromOtherMASA: true}, func(t *testing.T, out signedOutput) {
			s, err := cms.ParseSigned(out.voucher)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := s.Signer(s.Certificates)
			if err != nil || s.VerifySignature(signer) != nil {
				t.Fatalf("the foreign voucher is not validly signed: %v", err)
			}
			roots, _ := certPool(pki.VoucherTrustAnchorFile)
			if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				t.Error("the foreign voucher signer chains to the lab MASA")
			}
			if _, err := opensslVerify(t, out.voucher, pki.VoucherTrustAnchorFile); err == nil {
				t.Error("openssl verified the foreign voucher against the lab MASA")
			}
			if len(s.Certificates) != 2 {
				t.Errorf("voucher carries %d certificates, want signer and its MASA CA", len(s.Certificates))
			}
		}},
		{"OwnerCertFromOtherCA", Signing{OwnerCertFromOtherCA: true}, func(t *testing.T, out signedOutput) {
			certs, err := cms.ParseCertificateBag(out.ownerCertificate)
			if err != nil || len(certs) != 1 || certs[0].Equal(pki.Owner.Cert) {
				t.Fatalf("owner bag: %v", err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(pki.OwnerCA.Cert)
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				t.Error("the foreign owner certificate validates to the pinned-domain-cert")
			}
			s, err := cms.ParseSigned(out.conveyed)
			if err != nil || s.VerifySignature(certs[0]) != nil {
				t.Errorf("conveyed information is not signed by the foreign owner certificate: %v", err)
			}
		}},
		{"IncludePinned", Signing{IncludePinned: true}, func(t *testing.T, out signedOutput) {
			certs, err := cms.ParseCertificateBag(out.ownerCertificate)
			if err != nil || len(certs) != 2 {
				t.Fatalf("owner bag: %d certificates, %v", len(certs), err)
			}
			found := 0
			for _, c := range certs {
				if c.Equal(pki.Owner.Cert) || c.Equal(pki.OwnerCA.Cert) {
					found++
				}
			}
			if found != 2 {
				t.Error("the bag does not hold the owner certificate and the pinned-domain-cert")
			}
		}},
		{"StapleCRL", Signing{StapleCRL: true}, func(t *testing.T, out signedOutput) {
			rl := stapledCRL(t, pki, out)
			if len(rl.RevokedCertificateEntries) != 0 {
				t.Errorf("CRL revokes %d certificates", len(rl.RevokedCertificateEntries))
			}
		}},
		{"RevokeOwnerCert", Signing{RevokeOwnerCert: true}, func(t *testing.T, out signedOutput) {
			rl := stapledCRL(t, pki, out)
			if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(pki.Owner.Cert.SerialNumber) != 0 {
				t.Errorf("CRL entries = %v", rl.RevokedCertificateEntries)
			}
		}},
		{"ContentType data", Signing{ContentType: ContentTypeData}, func(t *testing.T, out signedOutput) {
			s, err := cms.ParseSigned(out.conveyed)
			if err != nil || !s.EContentType.Equal(cms.OIDData) {
				t.Fatalf("eContentType: %v", err)
			}
			if got := opensslPrint(t, out.conveyed); !strings.Contains(got, "eContentType: pkcs7-data") {
				t.Errorf("openssl -print:\n%s", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetDefinition(signedDefinition(&tc.spec))
			tc.check(t, signedOutputOf(t, postRPC(t, client, srv, "get-bootstrapping-data", nonceInput(testNonce))))
		})
	}
}

func stapledCRL(t *testing.T, pki *PKI, out signedOutput) *x509.RevocationList {
	t.Helper()
	sd, err := cms.ParseSignedData(out.ownerCertificate)
	if err != nil {
		t.Fatal(err)
	}
	crls, err := sd.CRLs()
	if err != nil || len(crls) != 1 {
		t.Fatalf("owner bag holds %d CRLs (%v)", len(crls), err)
	}
	rl, err := x509.ParseRevocationList(crls[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(pki.OwnerCA.Cert); err != nil {
		t.Errorf("CRL not signed by the owner CA: %v", err)
	}
	if !rl.NextUpdate.After(time.Now()) {
		t.Errorf("CRL nextUpdate %v is not in the future", rl.NextUpdate)
	}
	return rl
}

func TestSignedEncrypted(t *testing.T) {
	requireOpenSSL(t)
	pki, srv := startLab(t, signedDefinition(&Signing{
		Voucher: VoucherSpec{Nonce: true},
		Encrypt: []string{ArtifactConveyedInformation, ArtifactOwnerCertificate, ArtifactOwnershipVoucher},
	}))
	out := signedOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", nonceInput(testNonce)))
	open := func(name string, der []byte) []byte {
		ci, err := cms.ParseContentInfo(der)
		if err != nil || !ci.ContentType.Equal(cms.OIDEnvelopedData) {
			t.Fatalf("%s is not EnvelopedData: %v", name, err)
		}
		inner, ct, err := cms.Decrypt(der, pki.IDevID, pki.IDevIDKey)
		if err != nil || !ct.Equal(cms.OIDSignedData) {
			t.Fatalf("%s: Decrypt: content type %v, %v", name, ct, err)
		}
		return inner
	}
	conveyed := open("conveyed-information", out.conveyed)
	if _, err := opensslVerify(t, conveyed, pki.OwnerCA.CertFile); err != nil {
		t.Errorf("decrypted conveyed information: %v", err)
	}
	// openssl opens it with the IDevID files the agent is given.
	viaOpenSSL, err := opensslDecrypt(t, out.conveyed, pki.IDevIDCertFile, pki.IDevIDKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opensslVerify(t, viaOpenSSL, pki.OwnerCA.CertFile); err != nil {
		t.Errorf("openssl-decrypted conveyed information: %v", err)
	}
	if certs, err := cms.ParseCertificateBag(open("owner-certificate", out.ownerCertificate)); err != nil || !certs[0].Equal(pki.Owner.Cert) {
		t.Errorf("decrypted owner-certificate: %v", err)
	}
	if _, v := parsedVoucher(t, pki, open("ownership-voucher", out.voucher)); v["nonce"] != b64(testNonce) {
		t.Errorf("decrypted voucher = %v", v)
	}

	// Only what is listed is encrypted.
	srv.SetDefinition(signedDefinition(&Signing{Encrypt: []string{ArtifactOwnershipVoucher}}))
	out = signedOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", ""))
	if _, err := cms.ParseSigned(out.conveyed); err != nil {
		t.Errorf("conveyed information: %v", err)
	}
	open("ownership-voucher", out.voucher)
}

func TestSignedRedirect(t *testing.T) {
	requireOpenSSL(t)
	pki, srv := startLab(t, nil)
	srv.SetDefinition(&Definition{
		ContentType: ContentTypeData, // inherited by the signed eContentType
		Redirect:    []RedirectServer{{Address: "127.0.0.1", Port: 8444, TrustAnchorCerts: []*x509.Certificate{pki.ServerCA.Cert}}},
		Signed:      &Signing{},
	})
	out := signedOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", ""))
	content, err := opensslVerify(t, out.conveyed, pki.OwnerCA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	var ri map[string]map[string][]map[string]any
	if err := json.Unmarshal(content, &ri); err != nil {
		t.Fatal(err)
	}
	servers := ri["ietf-sztp-conveyed-info:redirect-information"]["bootstrap-server"]
	if len(servers) != 1 || servers[0]["address"] != "127.0.0.1" || servers[0]["trust-anchor"] == nil {
		t.Errorf("redirect information = %s", content)
	}
	if s, _ := cms.ParseSigned(out.conveyed); !s.EContentType.Equal(cms.OIDData) {
		t.Errorf("eContentType = %s, want the definition's id-data", cms.Name(s.EContentType))
	}
	if out.voucher == nil || out.ownerCertificate == nil {
		t.Errorf("members = %v", out.members)
	}
}

func TestUntrustedTLS(t *testing.T) {
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Options{PKI: pki, UntrustedTLS: true, Definition: signedDefinition(&Signing{Voucher: VoucherSpec{Nonce: true}})})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+getBootstrappingDataRPC, nil)
	var unknown x509.UnknownAuthorityError
	if resp, err := deviceClient(t, pki, true).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the trust anchor validated the untrusted server")
	} else if !errors.As(err, &unknown) {
		t.Errorf("error = %v, want an unknown authority", err)
	}

	// A provisional connection (server certificate not checked) still gets
	// signed data.
	client := deviceClient(t, pki, true)
	client.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	out := signedOutputOf(t, postRPC(t, client, srv, "get-bootstrapping-data", nonceInput(testNonce)))
	if _, v := parsedVoucher(t, pki, out.voucher); v["nonce"] != b64(testNonce) {
		t.Errorf("voucher = %v", v)
	}
}

func TestSignedDefinitionYAML(t *testing.T) {
	def, err := LoadDefinition("../testdata/lab/signed-onboarding.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if def.Signed == nil || !def.Signed.Voucher.Nonce || def.Signed.ContentType != ContentTypeJSON || def.Onboarding == nil || def.Onboarding.BootImage == nil {
		t.Fatalf("signed-onboarding.yaml = %+v", def)
	}
	redirect, err := LoadDefinition("../testdata/lab/signed-redirect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s := redirect.Signed; s == nil || s.Voucher.ExpiresIn != 720*time.Hour || s.Voucher.IDevIDIssuer != IDevIDIssuerKeyID || len(redirect.Redirect) != 1 {
		t.Fatalf("signed-redirect.yaml = %+v", redirect)
	}

	// The sample works end to end.
	pki, srv := startLab(t, def)
	out := signedOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", nonceInput(testNonce)))
	s, err := cms.ParseSigned(out.conveyed)
	if err != nil || s.VerifySignature(pki.Owner.Cert) != nil || !bytes.Contains(s.Content, []byte(srv.ImageURL("labos-2.0.img"))) {
		t.Errorf("signed sample conveyed information: %v", err)
	}

	dir := t.TempDir()
	all := "onboarding: {}\nsigned:\n  content-type: data\n  voucher:\n    nonce: false\n    expires-in: 1h30m\n    assertion: proximity\n" +
		"    serial-number: X\n    idevid-issuer: aki\n    domain-cert-revocation-checks: true\n    created-offset: -10m\n" +
		"  staple-crl: true\n  include-pinned-domain-cert: true\n  encrypt: [conveyed-information, ownership-voucher]\n  encrypt-rsa-oaep: true\n"
	path := dir + "/all.yaml"
	if err := os.WriteFile(path, []byte(all), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDefinition(path)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &Signing{
		ContentType: ContentTypeData,
		Voucher: VoucherSpec{ExpiresIn: 90 * time.Minute, Assertion: "proximity", SerialNumber: "X", IDevIDIssuer: IDevIDIssuerAKI,
			RevocationChecks: &yes, CreatedOffset: -10 * time.Minute},
		StapleCRL: true, IncludePinned: true, EncryptRSAOAEP: true,
		Encrypt: []string{ArtifactConveyedInformation, ArtifactOwnershipVoucher},
	}
	if !reflect.DeepEqual(d.Signed, want) {
		t.Errorf("signed = %+v\nwant %+v", d.Signed, want)
	}

	for name, yaml := range map[string]string{
		"unknown key":          "onboarding: {}\nsigned:\n  sign: true\n",
		"bad content-type":     "onboarding: {}\nsigned:\n  content-type: xml\n",
		"bad idevid-issuer":    "onboarding: {}\nsigned:\n  voucher:\n    idevid-issuer: ski\n",
		"bad assertion":        "onboarding: {}\nsigned:\n  voucher:\n    assertion: trust-me\n",
		"bad artifact":         "onboarding: {}\nsigned:\n  encrypt: [voucher]\n",
		"duplicate artifact":   "onboarding: {}\nsigned:\n  encrypt: [owner-certificate, owner-certificate]\n",
		"bad duration":         "onboarding: {}\nsigned:\n  voucher:\n    expires-in: a fortnight\n",
		"unknown voucher leaf": "onboarding: {}\nsigned:\n  voucher:\n    last-renewal-date: x\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := dir + "/" + strings.ReplaceAll(name, " ", "-") + ".yaml"
			if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if d, err := LoadDefinition(p); err == nil {
				t.Errorf("loaded %+v", d.Signed)
			}
		})
	}
	if err := (&Definition{Onboarding: &Onboarding{}, Signed: &Signing{SignConveyedWith: pki.Owner.Cert}}).Validate(); err == nil {
		t.Error("SignConveyedWith without a key validated")
	}
	if err := (&Definition{Onboarding: &Onboarding{}, Signed: &Signing{SignConveyedWith: pki.Owner.Cert, SignConveyedWithKey: pki.IDevIDKey}}).Validate(); err == nil {
		t.Error("SignConveyedWith with a mismatched key validated")
	}
}

func TestSignedNeedsSigningPKI(t *testing.T) {
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	old := *pki
	old.Owner, old.VoucherSigner, old.OwnerCA, old.MASA = nil, nil, nil, nil
	if srv, err := Start(Options{PKI: &old, Definition: signedDefinition(&Signing{})}); err == nil {
		srv.Close()
		t.Error("a signed definition was installed without owner credentials")
	}
}

func TestSigningPKIReuseAndUpgrade(t *testing.T) {
	dir := t.TempDir()
	first, err := NewPKI(dir, testSerial)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"masa-ca.pem", "masa-ca.key", "voucher-signer.pem", "voucher-signer.key", "owner-ca.pem", "owner-ca.key",
		"owner-certificate.pem", "owner-certificate.key", "voucher-trust-anchor.pem"} {
		if _, err := os.Stat(dir + "/" + f); err != nil {
			t.Error(err)
		}
	}
	for _, key := range []string{first.MASA.KeyFile, first.OwnerCA.KeyFile, first.VoucherSigner.KeyFile, first.Owner.KeyFile} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v", key, err)
		}
	}
	anchors, err := readCertificates(first.VoucherTrustAnchorFile)
	if err != nil || len(anchors) != 1 || !anchors[0].Equal(first.MASA.Cert) {
		t.Errorf("voucher trust anchor: %v", err)
	}
	if err := first.VoucherSigner.Cert.CheckSignatureFrom(first.MASA.Cert); err != nil {
		t.Error(err)
	}

	again, err := LoadPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Owner.Cert.Equal(first.Owner.Cert) || !again.VoucherSigner.Cert.Equal(first.VoucherSigner.Cert) ||
		!again.OwnerCA.Cert.Equal(first.OwnerCA.Cert) || !again.MASA.Cert.Equal(first.MASA.Cert) ||
		again.VoucherTrustAnchorFile != first.VoucherTrustAnchorFile {
		t.Error("the reloaded signing credentials differ")
	}

	// A directory from before signed mode: LoadPKI leaves the credentials
	// out, LoadOrCreatePKI adds them and keeps the IDevID.
	if err := os.Remove(first.VoucherTrustAnchorFile); err != nil {
		t.Fatal(err)
	}
	old, err := LoadPKI(dir)
	if err != nil || old.Owner != nil || old.MASA != nil {
		t.Fatalf("LoadPKI of an old directory: %v", err)
	}
	upgraded, created, err := LoadOrCreatePKI(dir, "")
	if err != nil || created {
		t.Fatalf("LoadOrCreatePKI: created=%v, %v", created, err)
	}
	if upgraded.Owner == nil || !upgraded.IDevID.Equal(first.IDevID) || upgraded.Owner.Cert.Equal(first.Owner.Cert) {
		t.Error("the upgrade did not keep the IDevID and add new signing credentials")
	}
	if _, err := os.Stat(upgraded.VoucherTrustAnchorFile); err != nil {
		t.Error(err)
	}

	// A damaged owner certificate is an error, not a silent re-issue.
	if err := os.WriteFile(upgraded.Owner.CertFile, pemCertificates(upgraded.MASA.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPKI(dir); err == nil {
		t.Error("LoadPKI accepted an owner certificate file with the wrong certificate")
	}
}

// tlsPeer returns the certificate a TLS server at hostPort presents.
func tlsPeer(t *testing.T, hostPort string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", hostPort, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		// The server requires a client certificate; the handshake still
		// shows its own.
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}
