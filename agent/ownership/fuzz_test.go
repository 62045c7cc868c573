package ownership

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseVoucher(f *testing.F) {
	for _, extra := range []string{"", `,"nonce":"MTIzNDU2Nzg="`, `,"domain-cert-revocation-checks":"true"`,
		`,"expires-on":"2099-01-01T00:00:00Z","idevid-issuer":"AQID"`} {
		f.Add([]byte(minimalVoucher(extra)))
	}
	if names, err := filepath.Glob(filepath.Join(fixtureDir(), "voucher*.json")); err == nil {
		for _, n := range names {
			if b, err := os.ReadFile(n); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVoucher(data)
		if err != nil {
			if v != nil {
				t.Fatal("voucher and error")
			}
			return
		}
		// What ParseVoucher promises Verify: mandatory leaves present,
		// RFC 8366 nonce rules enforced.
		if v.CreatedOn.IsZero() || v.Assertion == "" || v.SerialNumber == "" || v.PinnedDomainCert == nil {
			t.Fatalf("accepted without a mandatory leaf: %+v", v)
		}
		if v.Nonce != nil && (len(v.Nonce) < 8 || len(v.Nonce) > 32 || !v.ExpiresOn.IsZero()) {
			t.Fatalf("accepted a bad nonce: %+v", v)
		}
	})
}

// FuzzVerify mutates one of the three artifacts of the good openssl world
// (which: 0 voucher, 1 owner certificate, 2 conveyed information). Verify
// must never panic, and whatever it accepts must be for this device and
// name an owner certificate.
func FuzzVerify(f *testing.F) {
	w := loadWorld(f, fixtureDir())
	p, good := w.policy(), w.good()
	seeds := [][3]string{
		{"voucher.cms", "owner-certificate.cms", "conveyed.cms"},
		{"enc-voucher.cms", "enc-owner-certificate.cms", "enc-conveyed.cms"},
		{"voucher-revcheck.cms", "owner-certificate-crl.cms", "conveyed-data.cms"},
		{"voucher-aki.cms", "owner-certificate-int.cms", "conveyed-via-int.cms"},
	}
	for _, s := range seeds {
		for i, name := range s {
			f.Add(uint8(i), w.file(name))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		a := good
		switch which % 3 {
		case 0:
			a.OwnershipVoucher = data
		case 1:
			a.OwnerCertificate = data
		case 2:
			a.ConveyedInformation = data
		}
		res, err := Verify(p, a)
		if err != nil {
			if res != nil {
				t.Fatal("result and error")
			}
			return
		}
		if res.Voucher == nil || res.Voucher.SerialNumber != deviceSerial || res.OwnerCertificate == nil {
			t.Fatalf("accepted %+v", res)
		}
		if len(res.Steps) == 0 {
			t.Fatal("no steps")
		}
	})
}
