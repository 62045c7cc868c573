package tpm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// testCA is a stand-in manufacturer CA, made fresh per test run so no
// private key lives in the repository.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
	certPEM []byte
	keyPEM  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test Manufacturer IDevID CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing CA certificate: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling CA key: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{
		cert: cert, key: key, pool: pool,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}
}

// issue certifies pub as an IDevID (clientAuth) with the given serial number.
func (ca *testCA) issue(t *testing.T, pub crypto.PublicKey, serial string) []byte {
	t.Helper()
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "IDevID " + serial, SerialNumber: serial},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     ku,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatalf("issuing IDevID certificate: %v", err)
	}
	return der
}

// serverCert makes a TLS server certificate for 127.0.0.1 with a key of the
// requested kind (openssl s_server restricted to RSA signatures needs RSA).
func (ca *testCA) serverCert(t *testing.T, rsaKey bool) (certPEM, keyPEM []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaKey {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatalf("generating server key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("issuing server certificate: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling server key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// recordingSigner wraps the TPM signer to record which option types TLS
// asked for, so a test can prove e.g. that PKCS#1 v1.5 (not PSS) was used.
type recordingSigner struct {
	crypto.Signer
	mu    sync.Mutex
	pss   int
	plain int
}

func (r *recordingSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.mu.Lock()
	if _, ok := opts.(*rsa.PSSOptions); ok {
		r.pss++
	} else {
		r.plain++
	}
	r.mu.Unlock()
	return r.Signer.Sign(rnd, digest, opts)
}

func (r *recordingSigner) counts() (pss, plain int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pss, r.plain
}

// mutualTLS runs one HTTPS request against an httptest server that demands
// a client certificate chaining to ca, pinned to TLS version v, and checks
// the server saw the expected device serial number.
func mutualTLS(t *testing.T, cert tls.Certificate, ca *x509.CertPool, v uint16, wantSerial string) error {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.SerialNumber)
	}))
	srv.TLS = &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  ca,
		MinVersion: v,
		MaxVersion: v,
	}
	// Handshake failures are the point of some tests; keep them off stderr.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	client := srv.Client()
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	tr.TLSClientConfig.MinVersion = v
	tr.TLSClientConfig.MaxVersion = v
	client.Timeout = 20 * time.Second
	defer tr.CloseIdleConnections()

	rsp, err := client.Get(srv.URL)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return err
	}
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("server answered %s: %s", rsp.Status, body)
	}
	if rsp.TLS.Version != v {
		t.Fatalf("negotiated TLS version %x, want %x", rsp.TLS.Version, v)
	}
	if string(body) != wantSerial {
		t.Fatalf("server saw serial %q, want %q", body, wantSerial)
	}
	return nil
}

var tlsVersions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// checkSignatures signs a digest with every scheme the key type supports and
// verifies each with the public key alone.
func checkSignatures(t *testing.T, s crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("sztp signer test"))
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		h := crypto.SHA256
		if pub.Curve == elliptic.P384() {
			h = crypto.SHA384
		}
		d := h.New()
		d.Write([]byte("sztp signer test"))
		sum := d.Sum(nil)
		sig, err := s.Sign(rand.Reader, sum, h)
		if err != nil {
			t.Fatalf("ECDSA sign: %v", err)
		}
		if !ecdsa.VerifyASN1(pub, sum, sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 signature does not verify: %v", err)
		}
		sig, err = s.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
		if err != nil {
			t.Fatalf("RSA PSS sign: %v", err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Fatalf("RSA PSS signature (salt = hash length) does not verify: %v", err)
		}
	default:
		t.Fatalf("unexpected public key type %T", pub)
	}
}

// checkDecrypt round-trips PKCS#1 v1.5 and OAEP (SHA-1, SHA-256) through
// the TPM decrypter.
func checkDecrypt(t *testing.T, d crypto.Decrypter) {
	t.Helper()
	pub := d.Public().(*rsa.PublicKey)
	msg := []byte("content-encryption key 0123456789")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}} {
		pt, err := d.Decrypt(rand.Reader, ct, opts)
		if err != nil {
			t.Fatalf("PKCS#1 v1.5 decrypt (opts %T): %v", opts, err)
		}
		if string(pt) != string(msg) {
			t.Fatalf("PKCS#1 v1.5 decrypt gave %q", pt)
		}
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := d.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: h})
		if err != nil {
			t.Fatalf("OAEP-%v decrypt: %v", h, err)
		}
		if string(pt) != string(msg) {
			t.Fatalf("OAEP-%v decrypt gave %q", h, pt)
		}
	}
	// Labels are refused rather than silently mis-decrypted (the TPM
	// NUL-terminates them).
	ct, _ = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, msg, []byte("label"))
	if _, err := d.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}); err == nil {
		t.Fatal("OAEP with a label: want an error")
	}
}
