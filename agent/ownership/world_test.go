package ownership

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The fixtures are made by testdata/ownership/generate.sh with the openssl
// CLI. Each run makes fresh keys, so the tests rely only on relations
// between files (who signed what, which key opens what), never on bytes.
const deviceSerial = "SN-OWN-0001"

// fixtureDir is where the openssl world lives: SZTP_OWNERSHIP_FIXTURES when
// set (CI regenerates into a scratch directory), else the checked-in set.
func fixtureDir() string {
	if d := os.Getenv("SZTP_OWNERSHIP_FIXTURES"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "testdata", "ownership")
}

// world is one generated set of fixtures.
type world struct {
	dir string
	tb  testing.TB
}

func loadWorld(tb testing.TB, dir string) *world {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dir, "voucher.cms")); err != nil {
		tb.Fatalf("no fixtures in %s (run testdata/ownership/generate.sh): %v", dir, err)
	}
	return &world{dir: dir, tb: tb}
}

func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

func (w *world) file(name string) []byte {
	w.tb.Helper()
	b, err := os.ReadFile(w.path(name))
	if err != nil {
		w.tb.Fatal(err)
	}
	return b
}

func (w *world) cert(name string) *x509.Certificate {
	w.tb.Helper()
	blk, _ := pem.Decode(w.file(name + ".crt"))
	if blk == nil {
		w.tb.Fatalf("%s.crt: no PEM block", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		w.tb.Fatalf("%s.crt: %v", name, err)
	}
	return c
}

// pemBody returns the DER of the first PEM block of a fixture file.
func pemBody(w *world, name string) []byte {
	w.tb.Helper()
	blk, _ := pem.Decode(w.file(name))
	if blk == nil {
		w.tb.Fatalf("%s: no PEM block", name)
	}
	return blk.Bytes
}

// key loads a PKCS#8 key as openssl genpkey writes it: *rsa.PrivateKey or
// *ecdsa.PrivateKey, exactly what a device would hand Policy.DecryptionKey.
func (w *world) key(name string) crypto.PrivateKey {
	w.tb.Helper()
	blk, _ := pem.Decode(w.file(name + ".key"))
	if blk == nil {
		w.tb.Fatalf("%s.key: no PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		w.tb.Fatalf("%s.key: %v", name, err)
	}
	return k
}

// policy is the device of the world: RSA IDevID, MASA root as the only
// voucher trust anchor, a trusted clock.
func (w *world) policy() Policy {
	return Policy{
		VoucherTrustAnchors: []*x509.Certificate{w.cert("masa-ca")},
		SerialNumber:        deviceSerial,
		IDevID:              w.cert("device"),
		DecryptionKey:       w.key("device"),
		ClockTrusted:        true,
	}
}

// good is the plain (unencrypted) signed-data response of the world.
func (w *world) good() Artifacts {
	return Artifacts{
		ConveyedInformation: w.file("conveyed.cms"),
		OwnerCertificate:    w.file("owner-certificate.cms"),
		OwnershipVoucher:    w.file("voucher.cms"),
	}
}

// voucherLeaves returns the good voucher's leaves, for tests that sign
// their own variant at run time.
func (w *world) voucherLeaves() map[string]any {
	w.tb.Helper()
	var doc map[string]map[string]any
	if err := json.Unmarshal(w.file("voucher.json"), &doc); err != nil {
		w.tb.Fatal(err)
	}
	return doc["ietf-voucher:voucher"]
}

// signVoucher signs content as the world's MASA with the openssl CLI, the
// way generate.sh does, so that run-time vouchers (nonces the test chooses)
// are made by an independent implementation like every other fixture.
func (w *world) signVoucher(content []byte) []byte {
	return w.opensslSign(content, "masa", "-certfile", w.path("masa-ca.crt"))
}

// opensslSign signs content as signer with the voucher content type.
func (w *world) opensslSign(content []byte, signer string, extra ...string) []byte {
	w.tb.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		w.tb.Skip("openssl CLI not available")
	}
	dir := w.tb.TempDir()
	in, out := filepath.Join(dir, "v.json"), filepath.Join(dir, "v.cms")
	if err := os.WriteFile(in, content, 0o600); err != nil {
		w.tb.Fatal(err)
	}
	args := append([]string{"cms", "-sign", "-binary", "-nodetach", "-md", "sha256",
		"-econtent_type", "1.2.840.113549.1.9.16.1.40", "-in", in,
		"-signer", w.path(signer + ".crt"), "-inkey", w.path(signer + ".key"),
		"-outform", "DER", "-out", out}, extra...)
	if msg, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		w.tb.Fatalf("openssl cms -sign: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		w.tb.Fatal(err)
	}
	return b
}

// voucherWith signs the good voucher with leaves changed (nil deletes).
func (w *world) voucherWith(changes map[string]any) []byte {
	w.tb.Helper()
	leaves := w.voucherLeaves()
	for k, v := range changes {
		if v == nil {
			delete(leaves, k)
		} else {
			leaves[k] = v
		}
	}
	doc, err := json.Marshal(map[string]any{"ietf-voucher:voucher": leaves})
	if err != nil {
		w.tb.Fatal(err)
	}
	return w.signVoucher(doc)
}

// nonceVoucher is a voucher for a device without a trustworthy clock: it
// carries nonce and, as RFC 8366 demands, no expires-on.
func (w *world) nonceVoucher(nonce []byte, more map[string]any) []byte {
	changes := map[string]any{"nonce": base64.StdEncoding.EncodeToString(nonce), "expires-on": nil}
	for k, v := range more {
		changes[k] = v
	}
	return w.voucherWith(changes)
}

// flipInside returns a copy of der with one byte of the first occurrence of
// part (at its middle) inverted; the test fails if part is not there.
func flipInside(tb testing.TB, der, part []byte) []byte {
	tb.Helper()
	i := bytes.Index(der, part)
	if i < 0 || len(part) == 0 {
		tb.Fatal("part not found in DER")
	}
	out := bytes.Clone(der)
	out[i+len(part)/2] ^= 0xff
	return out
}

// at is a fixed instant for tests that move the clock.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
