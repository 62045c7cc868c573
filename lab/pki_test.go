package lab

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNewPKI(t *testing.T) {
	dir := t.TempDir()
	pki, err := NewPKI(dir, testSerial)
	if err != nil {
		t.Fatal(err)
	}
	id := pki.IDevID

	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(id.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	last := rdns[len(rdns)-1]
	if len(last) != 1 || !last[0].Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 5}) || last[0].Value != testSerial {
		t.Errorf("last RDN of the IDevID subject = %v, want serialNumber=%s", last, testSerial)
	}
	if id.Subject.CommonName == "" {
		t.Error("IDevID subject has no CN")
	}
	if id.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v", id.KeyUsage)
	}
	if len(id.ExtKeyUsage) != 1 || id.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v", id.ExtKeyUsage)
	}
	if !id.NotAfter.Equal(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)) {
		t.Errorf("NotAfter = %v", id.NotAfter)
	}

	chain, err := readCertificates(pki.IDevIDCertFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[0].Equal(id) || !chain[1].Equal(pki.Manufacturer.Cert) {
		t.Errorf("IDevID file holds %d certificates, want the leaf then the manufacturer CA", len(chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.Manufacturer.Cert)
	if _, err := id.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("IDevID does not verify to the manufacturer CA: %v", err)
	}
	for _, key := range []string{pki.IDevIDKeyFile, pki.Manufacturer.KeyFile, pki.ServerCA.KeyFile} {
		fi, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", key, fi.Mode().Perm())
		}
	}
	anchors, err := readCertificates(pki.TrustAnchorFile)
	if err != nil || len(anchors) != 1 || !anchors[0].Equal(pki.ServerCA.Cert) {
		t.Errorf("trust anchor file: %v, %d certificates", err, len(anchors))
	}

	tlsCert, err := pki.ServerCA.IssueServer(dir, "srv", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(pki.ServerCA.Cert)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := tlsCert.Leaf.Verify(x509.VerifyOptions{Roots: serverRoots, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	for _, f := range []string{"srv.pem", "srv.key", "manufacturer-ca.pem", "server-ca.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestLoadOrCreatePKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab-run")
	first, created, err := LoadOrCreatePKI(dir, "")
	if err != nil || !created {
		t.Fatalf("first call: created=%v, %v", created, err)
	}
	if first.SerialNumber != DefaultSerialNumber {
		t.Errorf("serial = %q, want the default", first.SerialNumber)
	}
	again, created, err := LoadOrCreatePKI(dir, DefaultSerialNumber)
	if err != nil || created {
		t.Fatalf("second call: created=%v, %v", created, err)
	}
	if !again.ServerCA.Cert.Equal(first.ServerCA.Cert) || !again.IDevID.Equal(first.IDevID) || again.SerialNumber != first.SerialNumber {
		t.Error("the reused PKI differs from the one created")
	}
	if _, _, err := LoadOrCreatePKI(dir, "OTHER"); err == nil {
		t.Error("a different serial number was accepted for an existing PKI")
	}
	if err := os.WriteFile(filepath.Join(dir, "server-ca.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreatePKI(dir, ""); err == nil {
		t.Error("a damaged PKI was loaded")
	}
}
