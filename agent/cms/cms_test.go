package cms_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

func TestUnsignedContentRoundTrip(t *testing.T) {
	for _, oid := range [][]int{cms.OIDSZTPConveyedInfoJSON, cms.OIDSZTPConveyedInfoXML, cms.OIDData} {
		der, err := cms.MarshalData(oid, []byte(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		content, ct, err := cms.UnsignedContent(der)
		if err != nil {
			t.Fatalf("%v: %v", oid, err)
		}
		if !bytes.Equal(content, []byte(`{"a":1}`)) || !ct.Equal(oid) {
			t.Errorf("got %q %v", content, ct)
		}
	}
}

// TestUnsignedContentFromOpenSSL reads an id-data ContentInfo made by
// `openssl cms -data_create`, the shape several vendors' tools emit.
func TestUnsignedContentFromOpenSSL(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ci.json")
	os.WriteFile(in, []byte(`{"x":"y"}`), 0o600)
	out := filepath.Join(dir, "ci.der")
	if b, err := exec.Command("openssl", "cms", "-data_create", "-binary", "-in", in, "-outform", "DER", "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, b)
	}
	der, _ := os.ReadFile(out)
	content, ct, err := cms.UnsignedContent(der)
	if err != nil {
		t.Fatal(err)
	}
	if string(content) != `{"x":"y"}` || !ct.Equal(cms.OIDData) {
		t.Errorf("got %q %s", content, cms.Name(ct))
	}
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCertificateBagFromOpenSSL reads a degenerate SignedData made by
// `openssl crl2pkcs7 -nocrl`, the usual way owners build owner-certificate
// and trust-anchor artifacts.
func TestCertificateBagFromOpenSSL(t *testing.T) {
	dir := t.TempDir()
	a, aPEM := selfSigned(t, "a")
	b, bPEM := selfSigned(t, "b")
	os.WriteFile(filepath.Join(dir, "a.pem"), aPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "b.pem"), bPEM, 0o600)
	out := filepath.Join(dir, "bag.p7")
	cmd := exec.Command("openssl", "crl2pkcs7", "-nocrl", "-certfile", "a.pem", "-certfile", "b.pem", "-outform", "DER", "-out", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, b)
	}
	der, _ := os.ReadFile(out)
	certs, err := cms.ParseCertificateBag(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(a) || !certs[1].Equal(b) {
		t.Fatalf("got %d certificates", len(certs))
	}
	// Our encoder must produce what openssl reads back.
	ours, err := cms.MarshalCertificateBag([]*x509.Certificate{a, b})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ours.p7"), ours, 0o600)
	printed, err := exec.Command("openssl", "pkcs7", "-inform", "DER", "-in", filepath.Join(dir, "ours.p7"), "-print_certs", "-noout").CombinedOutput()
	if err != nil || !bytes.Contains(printed, []byte("subject=CN = a")) || !bytes.Contains(printed, []byte("subject=CN = b")) {
		t.Fatalf("openssl cannot read our bag: %v\n%s", err, printed)
	}
}

func TestRejectsMalformed(t *testing.T) {
	good, _ := cms.MarshalData(cms.OIDData, []byte("x"))
	for name, der := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not DER at all"),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
	} {
		if _, _, err := cms.UnsignedContent(der); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := cms.ParseCertificateBag(good); err == nil {
		t.Error("id-data accepted as a certificate bag")
	}
	empty, _ := cms.MarshalCertificateBag(nil)
	if _, err := cms.ParseCertificateBag(empty); err == nil {
		t.Error("empty bag accepted")
	}
}

func FuzzUnsignedContent(f *testing.F) {
	good, _ := cms.MarshalData(cms.OIDSZTPConveyedInfoJSON, []byte(`{"a":1}`))
	f.Add(good)
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		content, ct, err := cms.UnsignedContent(der)
		if err == nil && !cms.IsConveyedInfoType(ct) {
			t.Fatalf("accepted content type %v", ct)
		}
		_ = content
	})
}

func FuzzParseCertificateBag(f *testing.F) {
	c, _ := selfSigned(&testing.T{}, "seed")
	bag, _ := cms.MarshalCertificateBag([]*x509.Certificate{c})
	f.Add(bag)
	f.Fuzz(func(t *testing.T, der []byte) {
		certs, err := cms.ParseCertificateBag(der)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}

// TestIndefiniteLengthBERFromOpenSSL: `openssl cms -stream` writes
// indefinite-length BER; it is read (rewritten to DER), verified and
// decrypted like the DER form.
func TestIndefiniteLengthBERFromOpenSSL(t *testing.T) {
	const f = "../../testdata/cms/"
	dir := t.TempDir()
	signed, enc := filepath.Join(dir, "s.ber"), filepath.Join(dir, "e.ber")
	for _, args := range [][]string{
		{"cms", "-sign", "-stream", "-binary", "-nodetach", "-in", f + "conveyed.json", "-signer", f + "owner.crt", "-inkey", f + "owner.key",
			"-econtent_type", "1.2.840.113549.1.9.16.1.43", "-outform", "DER", "-out", signed},
		{"cms", "-encrypt", "-stream", "-binary", "-aes-256-cbc", "-in", f + "conveyed.json", "-recip", f + "devrsa.crt", "-outform", "DER", "-out", enc},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	want, _ := os.ReadFile(f + "conveyed.json")
	der, _ := os.ReadFile(signed)
	if der[1] != 0x80 {
		t.Fatalf("openssl wrote definite lengths; the test needs BER")
	}
	s, err := cms.ParseSigned(der)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.Signer(s.Certificates)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySignature(signer); err != nil || !bytes.Equal(s.Content, want) {
		t.Errorf("verify: %v, content equal %v", err, bytes.Equal(s.Content, want))
	}
	ber, _ := os.ReadFile(enc)
	block, _ := pem.Decode(mustRead(t, f+"devrsa.key"))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(mustPEM(t, f+"devrsa.crt"))
	content, _, err := cms.Decrypt(ber, cert, key)
	if err != nil || !bytes.Equal(content, want) {
		t.Errorf("decrypt: %v", err)
	}
	// Malformed BER is still an error, never a panic.
	for n := 0; n < len(der); n += 7 {
		cms.ParseSigned(der[:n])
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPEM(t *testing.T, path string) []byte {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return block.Bytes
}
