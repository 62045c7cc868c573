package ownership

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

func TestVerifyPositive(t *testing.T) { runPositive(t, loadWorld(t, fixtureDir())) }

// TestRegenerated runs the generator into two scratch directories and the
// positive cases and the whole negative catalogue against each: the tests
// must hold for any run of generate.sh, not only the checked-in bytes.
func TestRegenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating fixtures takes a few seconds")
	}
	for _, tool := range []string{"bash", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not available", tool)
		}
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "testdata", "ownership", "generate.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"run1", "run2"} {
		t.Run(run, func(t *testing.T) {
			dir := t.TempDir()
			start := time.Now()
			if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
				t.Fatalf("generate.sh: %v\n%s", err, out)
			}
			t.Logf("generate.sh took %v", time.Since(start).Round(time.Millisecond))
			w := loadWorld(t, dir)
			t.Run("positive", func(t *testing.T) { runPositive(t, w) })
			t.Run("catalogue", func(t *testing.T) { runCatalogue(t, w) })
		})
	}
}

func runPositive(t *testing.T, w *world) {
	conveyedJSON := w.file("conveyed.json")
	ecDevice := func(p *Policy) { p.IDevID, p.DecryptionKey = w.cert("device-ec"), w.key("device-ec") }
	cases := []struct {
		name        string
		policy      func(*Policy)
		art         func(*Artifacts)
		contentType string
		content     []byte
		owner       string // fixture name of the expected owner certificate
	}{
		{name: "conveyed .43, voucher .40", contentType: "id-ct-sztpConveyedInfoJSON"},
		{name: "conveyed id-data", art: func(a *Artifacts) { a.ConveyedInformation = w.file("conveyed-data.cms") },
			contentType: "id-data"},
		{name: "voucher id-data", art: func(a *Artifacts) { a.OwnershipVoucher = w.file("voucher-data.cms") }},
		{name: "signed redirect information", art: func(a *Artifacts) { a.ConveyedInformation = w.file("redirect.cms") },
			content: w.file("redirect.json")},
		{name: "owner cert via an intermediate in the bag", owner: "owner-via-int", art: func(a *Artifacts) {
			a.ConveyedInformation = w.file("conveyed-via-int.cms")
			a.OwnerCertificate = w.file("owner-certificate-int.cms")
		}},
		{name: "bag repeats the pinned-domain-cert", art: func(a *Artifacts) {
			a.OwnerCertificate = w.file("owner-certificate-with-root.cms")
		}},
		{name: "idevid-issuer as the whole AKI extension (RFC 8366bis)",
			art: func(a *Artifacts) { a.OwnershipVoucher = w.file("voucher-aki.cms") }},
		{name: "idevid-issuer matched by the EC IDevID of the same manufacturer CA", policy: func(p *Policy) {
			p.IDevID, p.DecryptionKey = w.cert("device-ec"), nil
		}},
		{name: "stapled fresh CRL, revocation leaf absent",
			art: func(a *Artifacts) { a.OwnerCertificate = w.file("owner-certificate-crl.cms") }},
		{name: "revocation checks true with a fresh stapled CRL", art: func(a *Artifacts) {
			a.OwnershipVoucher = w.file("voucher-revcheck.cms")
			a.OwnerCertificate = w.file("owner-certificate-crl.cms")
		}},
		{name: "revocation checks false: a revoking CRL MUST NOT be consulted", art: func(a *Artifacts) {
			a.OwnershipVoucher = w.file("voucher-revcheck-false.cms")
			a.OwnerCertificate = w.file("owner-certificate-revoked.cms")
		}},
		{name: "RSA: encrypted voucher", art: func(a *Artifacts) { a.OwnershipVoucher = w.file("enc-voucher.cms") }},
		{name: "RSA: encrypted owner certificate",
			art: func(a *Artifacts) { a.OwnerCertificate = w.file("enc-owner-certificate.cms") }},
		{name: "RSA: sign-then-encrypt conveyed information",
			art: func(a *Artifacts) { a.ConveyedInformation = w.file("enc-conveyed.cms") }},
		{name: "RSA: all three encrypted", art: func(a *Artifacts) {
			a.OwnershipVoucher = w.file("enc-voucher.cms")
			a.OwnerCertificate = w.file("enc-owner-certificate.cms")
			a.ConveyedInformation = w.file("enc-conveyed.cms")
		}},
		{name: "EC (KARI): all three encrypted", policy: ecDevice, art: func(a *Artifacts) {
			a.OwnershipVoucher = w.file("enc-ec-voucher.cms")
			a.OwnerCertificate = w.file("enc-ec-owner-certificate.cms")
			a.ConveyedInformation = w.file("enc-ec-conveyed.cms")
		}},
		{name: "EC key as a cms.KeyAgreer", policy: func(p *Policy) {
			ecDevice(p)
			ka, err := cms.NewECDSAKeyAgreer(p.DecryptionKey.(*ecdsa.PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			p.DecryptionKey = ka
		}, art: func(a *Artifacts) { a.ConveyedInformation = w.file("enc-ec-conveyed.cms") }},
		{name: "assertion logged accepted when policy lists it", policy: func(p *Policy) {
			p.Assertions = []string{"verified", "logged"}
		}, art: func(a *Artifacts) { a.OwnershipVoucher = w.file("voucher-logged.cms") }},
		{name: "voucher trust anchors include an unrelated root", policy: func(p *Policy) {
			p.VoucherTrustAnchors = append([]*x509.Certificate{w.cert("masa2-ca")}, p.VoucherTrustAnchors...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, a := w.policy(), w.good()
			if tc.policy != nil {
				tc.policy(&p)
			}
			if tc.art != nil {
				tc.art(&a)
			}
			res, err := Verify(p, a)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := conveyedJSON
			if tc.content != nil {
				want = tc.content
			}
			checkResult(t, w, res, want, tc.owner)
			if tc.contentType != "" && cms.Name(res.ContentType) != tc.contentType {
				t.Errorf("content type %s, want %s", cms.Name(res.ContentType), tc.contentType)
			}
		})
	}
}

// checkResult: what every successful Verify must hand back.
func checkResult(t *testing.T, w *world, res *Result, content []byte, owner string) {
	t.Helper()
	if res == nil {
		t.Fatal("nil result without error")
	}
	if !bytes.Equal(res.Content, content) {
		t.Errorf("content %q, want %q", res.Content, content)
	}
	if owner == "" {
		owner = "owner"
	}
	if res.OwnerCertificate == nil || !res.OwnerCertificate.Equal(w.cert(owner)) {
		t.Errorf("owner certificate is not %s.crt", owner)
	}
	if res.Voucher == nil || res.Voucher.SerialNumber != deviceSerial {
		t.Fatalf("voucher %+v", res.Voucher)
	}
	if !bytes.Equal(res.Voucher.PinnedDomainCert, w.cert("owner-ca").Raw) {
		t.Error("voucher pinned-domain-cert is not owner-ca.crt")
	}
	if res.Voucher.CreatedOn.IsZero() {
		t.Error("voucher created-on missing")
	}
	if !cms.IsConveyedInfoType(res.ContentType) {
		t.Errorf("content type %s", cms.Name(res.ContentType))
	}
	if len(res.Steps) < 4 {
		t.Errorf("only %d steps: %q", len(res.Steps), res.Steps)
	}
}

// Nonce vouchers (RFC 8572 App. B): the device chooses the nonce, the MASA
// signs it, and a device whose clock cannot be trusted accepts the voucher
// because of the nonce alone.
func TestVerifyNonceVoucher(t *testing.T) {
	w := loadWorld(t, fixtureDir())
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	voucher := w.nonceVoucher(nonce, nil)
	for _, trusted := range []bool{false, true} {
		p, a := w.policy(), w.good()
		p.ClockTrusted = trusted
		if !trusted {
			// A clock stuck in 1970 must not matter.
			p.Now = at(time.Unix(0, 0))
		}
		a.OwnershipVoucher, a.Nonce = voucher, nonce
		res, err := Verify(p, a)
		if err != nil {
			t.Fatalf("clock trusted %v: %v", trusted, err)
		}
		checkResult(t, w, res, w.file("conveyed.json"), "")
		if !bytes.Equal(res.Voucher.Nonce, nonce) || !res.Voucher.ExpiresOn.IsZero() {
			t.Errorf("nonce %x expires-on %v", res.Voucher.Nonce, res.Voucher.ExpiresOn)
		}
	}
}

// RFC 8366 only says the voucher CMS SHOULD carry the signer's chain: a
// voucher signed with the trust anchor's own key, without certificates,
// must be found among the anchors.
func TestVerifyVoucherSignedByTrustAnchor(t *testing.T) {
	w := loadWorld(t, fixtureDir())
	p, a := w.policy(), w.good()
	a.OwnershipVoucher = w.opensslSign(w.file("voucher.json"), "masa-ca", "-nocerts")
	res, err := Verify(p, a)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, w, res, w.file("conveyed.json"), "")
}

// Without a trusted clock certificate validity must not decide (§9.1). A
// device that already holds its manufacturer's *next* voucher root (valid
// only from 2090) must still accept vouchers chaining to the current one.
func TestVerifyClockUntrustedRootRollover(t *testing.T) {
	w := loadWorld(t, fixtureDir())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2090), Subject: pkix.Name{CommonName: "Test MASA Root CA 2090"},
		NotBefore: time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2110, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	next, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("0123456789abcdef")
	p, a := w.policy(), w.good()
	p.ClockTrusted = false
	p.VoucherTrustAnchors = append(p.VoucherTrustAnchors, next)
	a.OwnershipVoucher, a.Nonce = w.nonceVoucher(nonce, nil), nonce
	if _, err := Verify(p, a); err != nil {
		t.Fatal(err)
	}
}

// voucher-trust-anchor.pem is what a device would be provisioned with.
func TestVoucherTrustAnchorFile(t *testing.T) {
	w := loadWorld(t, fixtureDir())
	if !bytes.Equal(w.file("voucher-trust-anchor.pem"), w.file("masa-ca.crt")) {
		t.Error("voucher-trust-anchor.pem is not the MASA root")
	}
}
