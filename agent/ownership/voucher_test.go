package ownership

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// minimalVoucher is a voucher document with the given leaves (raw JSON
// member text) after the mandatory ones.
func minimalVoucher(extra string) string {
	return `{"ietf-voucher:voucher":{"created-on":"2026-01-01T00:00:00Z","assertion":"verified",` +
		`"serial-number":"SN-1","pinned-domain-cert":"MAo="` + extra + `}}`
}

func TestParseVoucher(t *testing.T) {
	ok := []struct {
		name, doc string
		check     func(*testing.T, *Voucher)
	}{
		{"minimal", minimalVoucher(""), func(t *testing.T, v *Voucher) {
			if v.SerialNumber != "SN-1" || v.RevocationChecks != nil || v.Nonce != nil || v.IDevIDIssuer != nil {
				t.Errorf("%+v", v)
			}
		}},
		{"byte order mark", "\xef\xbb\xbf" + minimalVoucher(""), nil},
		{"trailing white space", minimalVoucher("") + " \n\t", nil},
		{"revocation checks as JSON boolean", minimalVoucher(`,"domain-cert-revocation-checks":true`),
			func(t *testing.T, v *Voucher) {
				if v.RevocationChecks == nil || !*v.RevocationChecks {
					t.Error("not true")
				}
			}},
		{`revocation checks as "false" (RFC 8366's own example style)`,
			minimalVoucher(`,"domain-cert-revocation-checks":"false"`), func(t *testing.T, v *Voucher) {
				if v.RevocationChecks == nil || *v.RevocationChecks {
					t.Error("not false")
				}
			}},
		{"nonce of 8 bytes", minimalVoucher(`,"nonce":"` + base64.StdEncoding.EncodeToString([]byte("12345678")) + `"`),
			func(t *testing.T, v *Voucher) {
				if string(v.Nonce) != "12345678" {
					t.Errorf("nonce %q", v.Nonce)
				}
			}},
		{"unknown RFC 8366bis leaves ignored", minimalVoucher(`,"est-domain":"https://x","extensions":{"a":[1,2]}`), nil},
		{"null optional leaf is absent", minimalVoucher(`,"idevid-issuer":null`), func(t *testing.T, v *Voucher) {
			if v.IDevIDIssuer != nil {
				t.Error("idevid-issuer set")
			}
		}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVoucher([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, v)
			}
		})
	}
	bad := []struct{ name, doc, want string }{
		{"trailing closing brace", minimalVoucher("") + "}", "trailing"},
		{"trailing closing bracket", minimalVoucher("") + "]", "trailing"},
		{"second document", minimalVoucher("") + minimalVoucher(""), "trailing"},
		{"duplicate leaf", minimalVoucher(`,"serial-number":"SN-2"`), "duplicate"},
		{"duplicate top-level member", `{"ietf-voucher:voucher":{},` + minimalVoucher("")[1:], "duplicate"},
		{"leaf name in another case", strings.Replace(minimalVoucher(""), `"serial-number"`, `"Serial-Number"`, 1), "serial-number"},
		{"no voucher member", `{"voucher":{}}`, "ietf-voucher:voucher"},
		{"voucher is an array", `{"ietf-voucher:voucher":[]}`, "object"},
		{"top is an array", `[]`, "object"},
		{"top is null", `null`, "object"},
		{"empty", ``, "EOF"},
		{"no created-on", strings.Replace(minimalVoucher(""), `"created-on"`, `"created"`, 1), "created-on"},
		{"bad created-on", strings.Replace(minimalVoucher(""), `2026-01-01T00:00:00Z`, `yesterday`, 1), "date-and-time"},
		{"no assertion", strings.Replace(minimalVoucher(""), `"assertion"`, `"x"`, 1), "assertion"},
		{"no pinned-domain-cert", strings.Replace(minimalVoucher(""), `"pinned-domain-cert"`, `"x"`, 1), "pinned-domain-cert"},
		{"pinned-domain-cert not base64", strings.Replace(minimalVoucher(""), `MAo=`, `!!`, 1), "base64"},
		{"serial-number a number", strings.Replace(minimalVoucher(""), `"SN-1"`, `17`, 1), "serial-number"},
		{"nonce too short", minimalVoucher(`,"nonce":"MTIzNDU2Nw=="`), "8 to 32"},
		{"nonce empty", minimalVoucher(`,"nonce":""`), "8 to 32"},
		{"nonce with expires-on", minimalVoucher(`,"expires-on":"2099-01-01T00:00:00Z","nonce":"MTIzNDU2Nzg="`), "both"},
		{"revocation checks not boolean", minimalVoucher(`,"domain-cert-revocation-checks":"yes"`), "boolean"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVoucher([]byte(tc.doc))
			if err == nil || v != nil {
				t.Fatalf("accepted: %+v", v)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// The generated vouchers parse, and both idevid-issuer encodings decode to
// what matchesIssuer accepts for the RSA IDevID.
func TestParseVoucherFixtures(t *testing.T) {
	w := loadWorld(t, fixtureDir())
	dev := w.cert("device")
	for _, name := range []string{"voucher.json", "voucher-aki.json"} {
		v, err := ParseVoucher(w.file(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !matchesIssuer(v.IDevIDIssuer, dev) {
			t.Errorf("%s: idevid-issuer %x does not match AKI %x", name, v.IDevIDIssuer, dev.AuthorityKeyId)
		}
	}
	if v, _ := ParseVoucher(w.file("voucher.json")); !bytes.Equal(v.IDevIDIssuer, dev.AuthorityKeyId) {
		t.Error("voucher.json idevid-issuer is not the bare key identifier")
	}
}
