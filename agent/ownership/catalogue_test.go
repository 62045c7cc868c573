package ownership

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// sentinels are every check's error; a catalogue row must match exactly one.
var sentinels = []error{
	ErrMissingArtifact, ErrDecrypt, ErrVoucherFormat, ErrVoucherContentType, ErrVoucherSignature,
	ErrVoucherSigner, ErrVoucherNotYetValid, ErrVoucherExpired, ErrNonceRequired, ErrNonce,
	ErrAssertion, ErrSerialNumber, ErrIDevIDIssuer, ErrPinnedDomainCert, ErrOwnerCertificate,
	ErrOwnerChain, ErrOwnerKeyUsage, ErrRevocation, ErrConveyedFormat, ErrConveyedContentType,
	ErrConveyedSignature,
}

// breakage is one way to break a signed-data response: how the device is
// set up (p) and what it received (a).
type breakage func(w *world, p *Policy, a *Artifacts)

// catalogueRow reads like RFC 8572 §5.4: which check, how the artifact is
// broken, which sentinel must stop it.
type catalogueRow struct {
	name   string
	how    string
	brk    breakage
	want   error
	alsoIs error // a cms error the sentinel must wrap, when the cause matters
}

func useFile(field func(*Artifacts) *[]byte, name string) breakage {
	return func(w *world, _ *Policy, a *Artifacts) { *field(a) = w.file(name) }
}

func voucherF(a *Artifacts) *[]byte  { return &a.OwnershipVoucher }
func ownerF(a *Artifacts) *[]byte    { return &a.OwnerCertificate }
func conveyedF(a *Artifacts) *[]byte { return &a.ConveyedInformation }

// flipSignature inverts a byte in the middle of the SignerInfo signature.
func flipSignature(field func(*Artifacts) *[]byte) breakage {
	return func(w *world, _ *Policy, a *Artifacts) {
		s, err := cms.ParseSigned(*field(a))
		if err != nil {
			w.tb.Fatal(err)
		}
		*field(a) = flipInside(w.tb, *field(a), s.Signature)
	}
}

// tamperContent inverts a byte of the signed eContent.
func tamperContent(field func(*Artifacts) *[]byte) breakage {
	return func(w *world, _ *Policy, a *Artifacts) {
		s, err := cms.ParseSigned(*field(a))
		if err != nil {
			w.tb.Fatal(err)
		}
		*field(a) = flipInside(w.tb, *field(a), s.Content)
	}
}

func mutate(field func(*Artifacts) *[]byte, f func([]byte) []byte) breakage {
	return func(_ *world, _ *Policy, a *Artifacts) { *field(a) = f(bytes.Clone(*field(a))) }
}

func truncate(b []byte) []byte { return b[:len(b)*2/3] }
func trailing(b []byte) []byte { return append(b, 0x00, 0x00) }
func garbage([]byte) []byte    { return []byte("MIIB this is not DER at all") }

// oidConveyedJSONDER is the DER of 1.2.840.113549.1.9.16.1.43; its first
// occurrence in a SignedData is the eContentType, before the signed
// attributes.
var oidConveyedJSONDER = []byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x2b}

func catalogue() []catalogueRow {
	return []catalogueRow{
		// --- completeness (§5.4 first paragraph, §3.5) ---
		{"no owner certificate", "voucher and conveyed information without the owner certificate",
			func(_ *world, _ *Policy, a *Artifacts) { a.OwnerCertificate = nil }, ErrMissingArtifact, nil},
		{"no voucher", "owner certificate and conveyed information without the voucher",
			func(_ *world, _ *Policy, a *Artifacts) { a.OwnershipVoucher = nil }, ErrMissingArtifact, nil},
		{"no conveyed information", "voucher and owner certificate only",
			func(_ *world, _ *Policy, a *Artifacts) { a.ConveyedInformation = []byte{} }, ErrMissingArtifact, nil},

		// --- step 1: decryption (§3.4) ---
		{"encrypted, no key", "voucher encrypted to the RSA IDevID; Policy.DecryptionKey nil",
			func(w *world, p *Policy, a *Artifacts) {
				a.OwnershipVoucher, p.DecryptionKey = w.file("enc-voucher.cms"), nil
			}, ErrDecrypt, nil},
		{"encrypted, wrong RSA key", "conveyed information encrypted to the IDevID; device holds another RSA key",
			func(w *world, p *Policy, a *Artifacts) {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					w.tb.Fatal(err)
				}
				a.ConveyedInformation, p.DecryptionKey = w.file("enc-conveyed.cms"), k
			}, ErrDecrypt, cms.ErrDecryption},
		{"encrypted to another device", "owner certificate encrypted to the EC IDevID; device is the RSA one",
			useFile(ownerF, "enc-ec-owner-certificate.cms"), ErrDecrypt, cms.ErrNotForRecipient},
		{"key agreement with an RSA key", "voucher encrypted to the EC IDevID (KARI); device key is RSA",
			func(w *world, p *Policy, a *Artifacts) {
				a.OwnershipVoucher, p.IDevID = w.file("enc-ec-voucher.cms"), w.cert("device-ec")
			}, ErrDecrypt, cms.ErrKeyType},
		{"ciphertext tampered", "sign-then-encrypt conveyed information, CBC padding byte flipped",
			func(w *world, _ *Policy, a *Artifacts) {
				// The ciphertext ends the DER; flipping the last byte of the
				// next-to-last block flips the last plaintext (padding) byte,
				// which always breaks PKCS#7 padding.
				b := w.file("enc-conveyed.cms")
				b[len(b)-17] ^= 0x01
				a.ConveyedInformation = b
			}, ErrDecrypt, cms.ErrDecryption},

		// --- step 2: voucher signature and signer (§5.4 bullet 1) ---
		{"voucher signature flipped", "one byte of the MASA's signature inverted",
			flipSignature(voucherF), ErrVoucherSignature, cms.ErrInvalidSignature},
		{"voucher content tampered", "one byte of the signed voucher JSON inverted",
			tamperContent(voucherF), ErrVoucherSignature, cms.ErrInvalidSignature},
		{"voucher from an untrusted MASA", "voucher signed by a second MASA whose root the device lacks",
			useFile(voucherF, "voucher-masa2.cms"), ErrVoucherSigner, nil},
		{"no voucher trust anchors", "device has no MASA trust anchors at all",
			func(_ *world, p *Policy, _ *Artifacts) { p.VoucherTrustAnchors = nil }, ErrVoucherSigner, nil},
		{"voucher signed by the owner", "owner-signed CMS with the voucher content type .40",
			useFile(voucherF, "conveyed-40.cms"), ErrVoucherSigner, nil},
		{"voucher wrong content type", "MASA-signed voucher with eContentType .43 (conveyed info JSON)",
			useFile(voucherF, "voucher-43.cms"), ErrVoucherContentType, nil},
		{"voucher is a certificate bag", "the owner-certificate bag (no signer) given as the voucher",
			useFile(voucherF, "owner-certificate.cms"), ErrVoucherFormat, cms.ErrNoSigner},
		{"voucher truncated", "voucher DER cut to two thirds", mutate(voucherF, truncate), ErrVoucherFormat, nil},
		{"voucher garbage", "voucher is not DER", mutate(voucherF, garbage), ErrVoucherFormat, nil},
		{"voucher trailing garbage", "two bytes appended to the voucher DER", mutate(voucherF, trailing), ErrVoucherFormat, nil},

		// --- step 3: voucher content (§5.4 bullet 2, RFC 8366) ---
		{"voucher content not JSON", "MASA signed plain text as a voucher",
			useFile(voucherF, "voucher-notjson.cms"), ErrVoucherFormat, nil},
		{"voucher nonce and expires-on", "MASA-signed voucher with both nonce and expires-on (RFC 8366 forbids)",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnershipVoucher = w.voucherWith(map[string]any{"nonce": "MDEyMzQ1Njc4OWFiY2RlZg=="})
			}, ErrVoucherFormat, nil},
		{"voucher duplicate serial-number", `MASA-signed JSON naming "serial-number" twice (parser differential)`,
			func(w *world, _ *Policy, a *Artifacts) {
				doc := bytes.Replace(w.file("voucher.json"), []byte(`"serial-number":`),
					[]byte(`"serial-number":"SN-OTHER-9999","serial-number":`), 1)
				a.OwnershipVoucher = w.signVoucher(doc)
			}, ErrVoucherFormat, nil},
		{"voucher expired", "expires-on 2002, clock trusted",
			useFile(voucherF, "voucher-expired.cms"), ErrVoucherExpired, nil},
		{"voucher expired by the clock", "voucher expires-on in one hour, device clock two hours ahead",
			func(w *world, p *Policy, a *Artifacts) {
				now := time.Now().UTC()
				a.OwnershipVoucher = w.voucherWith(map[string]any{"expires-on": now.Add(time.Hour).Format(time.RFC3339)})
				p.Now = at(now.Add(2 * time.Hour))
			}, ErrVoucherExpired, nil},
		{"voucher created in the future", "created-on 2099, clock trusted",
			useFile(voucherF, "voucher-future.cms"), ErrVoucherNotYetValid, nil},
		{"clock untrusted, no nonce", "good (nonceless) voucher, Policy.ClockTrusted false",
			func(_ *world, p *Policy, _ *Artifacts) { p.ClockTrusted = false }, ErrNonceRequired, nil},
		{"nonce mismatch", "voucher carries nonce A, device sent nonce B",
			func(w *world, p *Policy, a *Artifacts) {
				p.ClockTrusted = false
				a.OwnershipVoucher = w.nonceVoucher([]byte("AAAAAAAAAAAAAAAA"), nil)
				a.Nonce = []byte("BBBBBBBBBBBBBBBB")
			}, ErrNonce, nil},
		{"nonce not sent", "voucher carries a nonce, the device sent none (clock trusted)",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnershipVoucher = w.nonceVoucher([]byte("AAAAAAAAAAAAAAAA"), nil)
			}, ErrNonce, nil},
		{"assertion not accepted", `assertion "logged", policy accepts only "verified"`,
			useFile(voucherF, "voucher-logged.cms"), ErrAssertion, nil},
		{"wrong serial number", "voucher for SN-OTHER-9999",
			useFile(voucherF, "voucher-serial.cms"), ErrSerialNumber, nil},
		{"device serial differs", "good voucher, device configured with another serial",
			func(_ *world, p *Policy, _ *Artifacts) { p.SerialNumber = "SN-OWN-0002" }, ErrSerialNumber, nil},
		{"idevid-issuer mismatch", "idevid-issuer is 20 random bytes",
			useFile(voucherF, "voucher-idevid.cms"), ErrIDevIDIssuer, nil},
		{"IDevID from another manufacturer CA", "good voucher, device IDevID issued by another CA",
			func(w *world, p *Policy, _ *Artifacts) { p.IDevID, p.DecryptionKey = w.cert("owner"), nil },
			ErrIDevIDIssuer, nil},
		{"idevid-issuer without an IDevID", "voucher names an issuer, device has no IDevID configured",
			func(_ *world, p *Policy, _ *Artifacts) { p.IDevID, p.DecryptionKey = nil, nil }, ErrIDevIDIssuer, nil},

		// --- step 4: pinned-domain-cert ---
		{"pinned-domain-cert garbage", `pinned-domain-cert is base64 of "not a certificate"`,
			useFile(voucherF, "voucher-pinned-garbage.cms"), ErrPinnedDomainCert, nil},

		// --- step 5: owner certificate (§5.4 bullet 3) ---
		{"owner cert from another CA", "owner cert (same subject) issued by a CA other than the pinned one",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnerCertificate = w.file("owner-certificate-other.cms")
				a.ConveyedInformation = w.file("conveyed-other.cms")
			}, ErrOwnerChain, nil},
		{"voucher pins another CA", "good owner cert, voucher pins an unrelated root",
			useFile(voucherF, "voucher-pinned-other.cms"), ErrOwnerChain, nil},
		{"intermediate missing", "owner cert under an intermediate, bag without the intermediate",
			func(w *world, _ *Policy, a *Artifacts) {
				a.ConveyedInformation = w.file("conveyed-via-int.cms")
				a.OwnerCertificate = bagOf(w, w.cert("owner-via-int"))
			}, ErrOwnerChain, nil},
		{"owner key usage", "owner cert with keyUsage keyCertSign only",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnerCertificate = w.file("owner-certificate-ku.cms")
				a.ConveyedInformation = w.file("conveyed-ku.cms")
			}, ErrOwnerKeyUsage, nil},
		{"owner bag ambiguous", "conveyed signer not in the bag, bag holds two unrelated end-entity certs",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnerCertificate = bagOf(w, w.cert("owner"), w.cert("rogue"))
				a.ConveyedInformation = w.file("conveyed-other.cms")
			}, ErrOwnerCertificate, nil},
		{"owner bag empty", "degenerate SignedData with no certificate",
			useFile(ownerF, "owner-certificate-empty.cms"), ErrOwnerCertificate, nil},
		{"owner bag garbage", "owner certificate artifact is not DER", mutate(ownerF, garbage), ErrOwnerCertificate, nil},
		{"owner bag truncated", "owner bag DER cut to two thirds", mutate(ownerF, truncate), ErrOwnerCertificate, nil},
		{"owner bag trailing garbage", "two bytes appended to the owner bag", mutate(ownerF, trailing), ErrOwnerCertificate, nil},
		{"owner bag is plain data", "owner certificate artifact is an id-data ContentInfo",
			func(w *world, _ *Policy, a *Artifacts) {
				d, err := cms.MarshalData(cms.OIDData, w.file("owner.crt"))
				if err != nil {
					w.tb.Fatal(err)
				}
				a.OwnerCertificate = d
			}, ErrOwnerCertificate, nil},

		// --- step 6: revocation (§5.4 bullet 4) ---
		{"owner revoked, PKIX default", "revocation leaf absent, bag staples a CRL revoking the owner cert",
			useFile(ownerF, "owner-certificate-revoked.cms"), ErrRevocation, nil},
		{"owner revoked, checks true", "domain-cert-revocation-checks true, CRL revokes the owner cert",
			func(w *world, _ *Policy, a *Artifacts) {
				a.OwnershipVoucher = w.file("voucher-revcheck.cms")
				a.OwnerCertificate = w.file("owner-certificate-revoked.cms")
			}, ErrRevocation, nil},
		{"owner revoked, stale CRL", "revocation leaf absent, revoking CRL past its nextUpdate: revocation is permanent",
			func(w *world, p *Policy, a *Artifacts) {
				a.OwnerCertificate = w.file("owner-certificate-revoked.cms")
				crl, err := x509.ParseRevocationList(pemBody(w, "owner-ca-revokes-owner.crl"))
				if err != nil {
					w.tb.Fatal(err)
				}
				p.Now = at(crl.NextUpdate.Add(time.Hour))
			}, ErrRevocation, nil},
		{"owner revoked, clock untrusted", "nonce voucher, clock untrusted, stapled CRL revokes the owner cert",
			func(w *world, p *Policy, a *Artifacts) {
				p.ClockTrusted = false
				a.Nonce = []byte("0123456789abcdef")
				a.OwnershipVoucher = w.nonceVoucher(a.Nonce, nil)
				a.OwnerCertificate = w.file("owner-certificate-revoked.cms")
			}, ErrRevocation, nil},
		{"revocation checks without CRL", "domain-cert-revocation-checks true, bag has no CRL",
			useFile(voucherF, "voucher-revcheck.cms"), ErrRevocation, nil},
		{"revocation checks, stale CRL", "checks true, clock after the stapled CRL's nextUpdate",
			func(w *world, p *Policy, a *Artifacts) {
				a.OwnershipVoucher = w.file("voucher-revcheck.cms")
				a.OwnerCertificate = w.file("owner-certificate-crl.cms")
				crl, err := x509.ParseRevocationList(pemBody(w, "owner-ca-fresh.crl"))
				if err != nil {
					w.tb.Fatal(err)
				}
				p.Now = at(crl.NextUpdate.Add(time.Hour))
			}, ErrRevocation, nil},
		{"revocation checks, clock untrusted", "checks true, fresh CRL, nonce voucher, clock untrusted",
			func(w *world, p *Policy, a *Artifacts) {
				p.ClockTrusted = false
				a.Nonce = []byte("0123456789abcdef")
				a.OwnershipVoucher = w.nonceVoucher(a.Nonce, map[string]any{"domain-cert-revocation-checks": true})
				a.OwnerCertificate = w.file("owner-certificate-crl.cms")
			}, ErrRevocation, nil},

		// --- step 7: conveyed information (§5.4 bullet 5) ---
		{"conveyed signed by the wrong key", "signed by another cert of the owner PKI that is not in the bag",
			useFile(conveyedF, "conveyed-rogue.cms"), ErrConveyedSignature, cms.ErrSignerNotFound},
		{"conveyed signature flipped", "one byte of the owner's signature inverted",
			flipSignature(conveyedF), ErrConveyedSignature, cms.ErrInvalidSignature},
		{"conveyed content tampered", "one byte of the signed onboarding JSON inverted",
			tamperContent(conveyedF), ErrConveyedSignature, cms.ErrInvalidSignature},
		{"conveyed wrong eContentType", "owner-signed with eContentType .40 (the voucher type)",
			useFile(conveyedF, "conveyed-40.cms"), ErrConveyedContentType, nil},
		{"conveyed content-type attribute mismatch", "eContentType patched .43→.42, signed attribute still .43",
			mutate(conveyedF, func(b []byte) []byte {
				i := bytes.Index(b, oidConveyedJSONDER)
				b[i+len(oidConveyedJSONDER)-1] = 42
				return b
			}), ErrConveyedFormat, cms.ErrContentTypeMismatch},
		{"conveyed unsigned", "unsigned .43 ContentInfo where signed data is required",
			func(w *world, _ *Policy, a *Artifacts) {
				d, err := cms.MarshalData(cms.OIDSZTPConveyedInfoJSON, w.file("conveyed.json"))
				if err != nil {
					w.tb.Fatal(err)
				}
				a.ConveyedInformation = d
			}, ErrConveyedFormat, nil},
		{"conveyed truncated", "conveyed DER cut to two thirds", mutate(conveyedF, truncate), ErrConveyedFormat, nil},
		{"conveyed garbage", "conveyed information is not DER", mutate(conveyedF, garbage), ErrConveyedFormat, nil},
		{"conveyed trailing garbage", "two bytes appended to the conveyed DER", mutate(conveyedF, trailing), ErrConveyedFormat, nil},
	}
}

// bagOf builds a certificate bag in Go (for the one row that needs a bag
// the generator does not make).
func bagOf(w *world, certs ...*x509.Certificate) []byte {
	b, err := cms.MarshalCertificateBag(certs)
	if err != nil {
		w.tb.Fatal(err)
	}
	return b
}

func TestNegativeCatalogue(t *testing.T) { runCatalogue(t, loadWorld(t, fixtureDir())) }

func runCatalogue(t *testing.T, w *world) {
	rows := catalogue()
	if len(rows) < 25 {
		t.Fatalf("catalogue has %d rows", len(rows))
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			w := &world{dir: w.dir, tb: t}
			p, a := w.policy(), w.good()
			row.brk(w, &p, &a)
			res, err := Verify(p, a)
			if res != nil {
				t.Errorf("%s: Verify returned a result", row.how)
			}
			if !errors.Is(err, row.want) {
				t.Fatalf("%s: got %v, want %v", row.how, err, row.want)
			}
			if row.alsoIs != nil && !errors.Is(err, row.alsoIs) {
				t.Errorf("%s: %v does not wrap %v", row.how, err, row.alsoIs)
			}
			for _, s := range sentinels {
				if s != row.want && errors.Is(err, s) {
					t.Errorf("%s: %v also matches %v", row.how, err, s)
				}
			}
		})
	}
}
