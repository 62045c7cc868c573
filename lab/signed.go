package lab

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// Artifact names, as in the get-bootstrapping-data output, for
// Signing.Encrypt.
const (
	ArtifactConveyedInformation = "conveyed-information"
	ArtifactOwnerCertificate    = "owner-certificate"
	ArtifactOwnershipVoucher    = "ownership-voucher"
)

// Encodings of the voucher's idevid-issuer leaf (VoucherSpec.IDevIDIssuer).
const (
	// IDevIDIssuerKeyID is RFC 8366's reading: the keyIdentifier octets of
	// the IDevID's Authority Key Identifier.
	IDevIDIssuerKeyID = "key-id"
	// IDevIDIssuerAKI is RFC 8366bis's: the whole AuthorityKeyIdentifier
	// extnValue (DER SEQUENCE).
	IDevIDIssuerAKI = "aki"
)

const (
	defaultVoucherLifetime = 30 * 24 * time.Hour
	defaultAssertion       = "verified"
	voucherMember          = "ietf-voucher:voucher"
)

// voucherAssertions are the assertion enum values of RFC 8366 and RFC
// 8366bis; a device's policy decides which it accepts.
var voucherAssertions = []string{"verified", "logged", "proximity", "agent-proximity"}

// Signing makes a Definition answer signed data: conveyed information
// signed by the owner certificate, an owner-certificate artifact and an
// ownership voucher (RFC 8572 §3), optionally encrypted to the device. The
// yaml:"-" fields break one thing each, for tests of the device's checks.
type Signing struct {
	// ContentType is the eContentType of the signed conveyed information:
	// "json" (id-ct-sztpConveyedInfoJSON, .43) or "data" (id-data). Empty
	// takes the Definition's content-type, itself "json" by default.
	ContentType string      `yaml:"content-type"`
	Voucher     VoucherSpec `yaml:"voucher"`
	// StapleCRL puts a fresh CRL of the owner CA in the owner-certificate
	// bag (RFC 8572 §3.2), for devices told to check revocation.
	StapleCRL bool `yaml:"staple-crl"`
	// IncludePinned adds the owner CA (the pinned-domain-cert) to the
	// owner-certificate bag, which RFC 8572 §3.2 allows but does not need.
	IncludePinned bool `yaml:"include-pinned-domain-cert"`
	// Encrypt lists the artifacts to encrypt (CMS EnvelopedData around the
	// signed artifact, RFC 8572 §3.4) to the certificate the device
	// authenticated with: ArtifactConveyedInformation,
	// ArtifactOwnerCertificate, ArtifactOwnershipVoucher.
	Encrypt []string `yaml:"encrypt"`
	// EncryptRSAOAEP uses RSAES-OAEP-SHA-256 instead of PKCS#1 v1.5 when
	// the device certificate is RSA.
	EncryptRSAOAEP bool `yaml:"encrypt-rsa-oaep"`

	// TamperConveyed changes one byte of the conveyed information after
	// signing (the case of its first ASCII letter, so the JSON stays
	// well-formed and only the signature check can catch it).
	TamperConveyed bool `yaml:"-"`
	// SignConveyedWith and SignConveyedWithKey sign the conveyed
	// information with another certificate than the owner certificate
	// sent; that certificate is in the SignedData's certificates.
	SignConveyedWith    *x509.Certificate `yaml:"-"`
	SignConveyedWithKey crypto.Signer     `yaml:"-"`
	// OmitOwnerCertificate and OmitVoucher leave those artifacts out of
	// the output (RFC 8572 requires both with signed conveyed information).
	OmitOwnerCertificate bool `yaml:"-"`
	OmitVoucher          bool `yaml:"-"`
	// VoucherSignerFromOtherMASA signs the voucher with a signer of a MASA
	// the device does not trust (its CA in the voucher's certificates).
	VoucherSignerFromOtherMASA bool `yaml:"-"`
	// OwnerCertFromOtherCA sends, and signs the conveyed information with,
	// an owner certificate of another CA than the voucher's
	// pinned-domain-cert.
	OwnerCertFromOtherCA bool `yaml:"-"`
	// RevokeOwnerCert staples a CRL (as StapleCRL) that lists the owner
	// certificate as revoked.
	RevokeOwnerCert bool `yaml:"-"`
}

// VoucherSpec shapes the ownership voucher (RFC 8366 ietf-voucher:voucher).
type VoucherSpec struct {
	// Nonce makes a nonce voucher: it carries the nonce the device sent in
	// the same request and no expires-on. A request without nonce is then
	// answered 400 missing-element.
	Nonce bool `yaml:"nonce"`
	// ExpiresIn sets expires-on = now + ExpiresIn (negative: an expired
	// voucher); 0 means 30 days. Ignored for a nonce voucher.
	ExpiresIn time.Duration `yaml:"expires-in"`
	// Assertion: verified (default), logged, proximity or agent-proximity.
	Assertion string `yaml:"assertion"`
	// SerialNumber overrides the serial-number leaf, by default the
	// serialNumber of the device's client certificate.
	SerialNumber string `yaml:"serial-number"`
	// IDevIDIssuer adds idevid-issuer, taken from the Authority Key
	// Identifier of the device's client certificate: "" (omitted),
	// IDevIDIssuerKeyID or IDevIDIssuerAKI.
	IDevIDIssuer string `yaml:"idevid-issuer"`
	// RevocationChecks is domain-cert-revocation-checks; nil omits it.
	RevocationChecks *bool `yaml:"domain-cert-revocation-checks"`
	// CreatedOffset sets created-on = now + CreatedOffset (positive: a
	// voucher from the future).
	CreatedOffset time.Duration `yaml:"created-offset"`
	// NonceValue, when set, is put in the voucher instead of the device's
	// nonce (a nonce mismatch), whether or not the device sent one; it
	// implies a nonce voucher.
	NonceValue []byte `yaml:"-"`
}

func (s *Signing) validate() error {
	switch s.ContentType {
	case "", ContentTypeJSON, ContentTypeData:
	default:
		return fmt.Errorf("content-type %q: want %q or %q", s.ContentType, ContentTypeJSON, ContentTypeData)
	}
	switch s.Voucher.IDevIDIssuer {
	case "", IDevIDIssuerKeyID, IDevIDIssuerAKI:
	default:
		return fmt.Errorf("voucher: idevid-issuer %q: want %q or %q", s.Voucher.IDevIDIssuer, IDevIDIssuerKeyID, IDevIDIssuerAKI)
	}
	if a := s.Voucher.Assertion; a != "" && !slices.Contains(voucherAssertions, a) {
		return fmt.Errorf("voucher: assertion %q: want one of %v", a, voucherAssertions)
	}
	if n := len(s.Voucher.NonceValue); s.Voucher.NonceValue != nil && (n < 1 || n > 64) {
		// Outside RFC 8366's 8..32 is allowed on purpose (tests of the
		// device's length check), but not absurd sizes.
		return fmt.Errorf("voucher: NonceValue is %d bytes, want 1 to 64", n)
	}
	seen := map[string]bool{}
	for _, a := range s.Encrypt {
		switch a {
		case ArtifactConveyedInformation, ArtifactOwnerCertificate, ArtifactOwnershipVoucher:
		default:
			return fmt.Errorf("encrypt: unknown artifact %q (want %s, %s or %s)", a, ArtifactConveyedInformation, ArtifactOwnerCertificate, ArtifactOwnershipVoucher)
		}
		if seen[a] {
			return fmt.Errorf("encrypt: %q appears twice", a)
		}
		seen[a] = true
	}
	if (s.SignConveyedWith == nil) != (s.SignConveyedWithKey == nil) {
		return errors.New("SignConveyedWith and SignConveyedWithKey go together")
	}
	if s.SignConveyedWith != nil {
		if err := checkKeyMatches(s.SignConveyedWith, s.SignConveyedWithKey); err != nil {
			return fmt.Errorf("SignConveyedWith: %w", err)
		}
	}
	return nil
}

// errNoNonce: a nonce voucher was asked for, but the device sent no nonce.
var errNoNonce = errors.New("the lab definition issues nonce vouchers, but the request has no nonce")

// signedAnswer holds what signed answers are made of. The artifacts
// themselves are made per request: the voucher carries the requesting
// device's serial number and nonce, and encryption is to its certificate.
type signedAnswer struct {
	spec         *Signing
	conveyed     []byte // conveyed information JSON
	eContentType asn1.ObjectIdentifier

	pinned         *CA      // the voucher's pinned-domain-cert
	owner          *KeyPair // the owner certificate sent
	conveyedSigner *x509.Certificate
	conveyedKey    crypto.Signer
	masa           *CA // its certificate goes with the voucher signer's
	voucherSigner  *KeyPair
}

// newSignedAnswer prepares signing with pki's credentials, or with
// throw-away ones where the spec asks for a foreign MASA or owner CA.
func newSignedAnswer(spec *Signing, pki *PKI, conveyed []byte, eContentType asn1.ObjectIdentifier) (*signedAnswer, error) {
	if pki == nil || pki.Owner == nil || pki.VoucherSigner == nil {
		return nil, errors.New("signed answers need the PKI's owner and MASA credentials (LoadOrCreatePKI adds them to an old lab directory)")
	}
	sa := &signedAnswer{
		spec: spec, conveyed: conveyed, eContentType: eContentType,
		pinned: pki.OwnerCA, owner: pki.Owner, masa: pki.MASA, voucherSigner: pki.VoucherSigner,
	}
	if spec.OwnerCertFromOtherCA {
		ca, err := newMemoryCA("other owner")
		if err != nil {
			return nil, err
		}
		if sa.owner, err = ca.issueSigner("", ownerName, "SZTP lab owner of another CA"); err != nil {
			return nil, err
		}
	}
	if spec.VoucherSignerFromOtherMASA {
		ca, err := newMemoryCA("other MASA")
		if err != nil {
			return nil, err
		}
		sa.masa = ca
		if sa.voucherSigner, err = ca.issueSigner("", voucherSignerName, "SZTP lab voucher signer of another MASA"); err != nil {
			return nil, err
		}
	}
	sa.conveyedSigner, sa.conveyedKey = sa.owner.Cert, sa.owner.Key
	if spec.SignConveyedWith != nil {
		sa.conveyedSigner, sa.conveyedKey = spec.SignConveyedWith, spec.SignConveyedWithKey
	}
	return sa, nil
}

// deviceRequest is what of a get-bootstrapping-data request the signed
// artifacts depend on.
type deviceRequest struct {
	serial string            // from the client certificate
	cert   *x509.Certificate // the client certificate (IDevID)
	nonce  []byte            // the input's nonce; nil when absent
}

// signedArtifacts are the three output leaves (DER), nil when omitted.
type signedArtifacts struct {
	conveyed         []byte
	ownerCertificate []byte
	voucher          []byte
	voucherJSON      []byte // for logs and tests
}

func (sa *signedAnswer) build(now time.Time, req deviceRequest) (*signedArtifacts, error) {
	spec := sa.spec
	out := &signedArtifacts{}
	var err error

	out.conveyed, err = signDataAt(now, sa.eContentType, sa.conveyed, sa.conveyedSigner, sa.conveyedKey, nil)
	if err != nil {
		return nil, fmt.Errorf("signing conveyed information: %w", err)
	}
	if spec.TamperConveyed {
		if err := tamper(out.conveyed, sa.conveyed); err != nil {
			return nil, err
		}
	}

	if !spec.OmitOwnerCertificate {
		certs := []*x509.Certificate{sa.owner.Cert}
		if spec.IncludePinned {
			certs = append(certs, sa.pinned.Cert)
		}
		var crls [][]byte
		if spec.StapleCRL || spec.RevokeOwnerCert {
			var revoked []*x509.Certificate
			if spec.RevokeOwnerCert {
				revoked = append(revoked, sa.owner.Cert)
			}
			crl, err := sa.pinned.CRL(now, revoked...)
			if err != nil {
				return nil, err
			}
			crls = append(crls, crl)
		}
		if out.ownerCertificate, err = certificateBag(certs, crls); err != nil {
			return nil, fmt.Errorf("building the owner-certificate artifact: %w", err)
		}
	}

	if !spec.OmitVoucher {
		if out.voucherJSON, err = sa.voucherJSON(now, req); err != nil {
			return nil, err
		}
		// RFC 8366 §5.1: the CMS should carry the signer's chain up to the
		// trust anchor, so the MASA CA goes along.
		out.voucher, err = signDataAt(now, cms.OIDAnimaJSONVoucher, out.voucherJSON,
			sa.voucherSigner.Cert, sa.voucherSigner.Key, []*x509.Certificate{sa.masa.Cert})
		if err != nil {
			return nil, fmt.Errorf("signing the ownership voucher: %w", err)
		}
	}

	// Sign, then encrypt (RFC 8572 §3.4): the envelope's content type says
	// that a SignedData is inside.
	for _, name := range spec.Encrypt {
		target := map[string]*[]byte{
			ArtifactConveyedInformation: &out.conveyed,
			ArtifactOwnerCertificate:    &out.ownerCertificate,
			ArtifactOwnershipVoucher:    &out.voucher,
		}[name]
		if *target == nil {
			continue // omitted
		}
		enc, err := EncryptWithOptions(*target, req.cert, cms.OIDSignedData, EncryptOptions{RSAOAEP: spec.EncryptRSAOAEP})
		if err != nil {
			return nil, fmt.Errorf("encrypting %s: %w", name, err)
		}
		*target = enc
	}
	return out, nil
}

// voucherJSON is the RFC 8366 voucher content. The struct's field order is
// the YANG order, which is also the order of RFC 8366's examples.
func (sa *signedAnswer) voucherJSON(now time.Time, req deviceRequest) ([]byte, error) {
	type voucher struct {
		CreatedOn                  string `json:"created-on"`
		ExpiresOn                  string `json:"expires-on,omitempty"`
		Assertion                  string `json:"assertion"`
		SerialNumber               string `json:"serial-number"`
		IDevIDIssuer               []byte `json:"idevid-issuer,omitempty"`
		PinnedDomainCert           []byte `json:"pinned-domain-cert"`
		DomainCertRevocationChecks *bool  `json:"domain-cert-revocation-checks,omitempty"`
		Nonce                      []byte `json:"nonce,omitempty"`
	}
	vs := sa.spec.Voucher
	v := voucher{
		CreatedOn:                  yangDateTime(now.Add(vs.CreatedOffset)),
		Assertion:                  vs.Assertion,
		SerialNumber:               vs.SerialNumber,
		PinnedDomainCert:           sa.pinned.Cert.Raw,
		DomainCertRevocationChecks: vs.RevocationChecks,
	}
	if v.Assertion == "" {
		v.Assertion = defaultAssertion
	}
	if v.SerialNumber == "" {
		v.SerialNumber = req.serial
	}
	switch {
	case vs.NonceValue != nil:
		v.Nonce = vs.NonceValue
	case vs.Nonce:
		if req.nonce == nil {
			return nil, errNoNonce
		}
		v.Nonce = req.nonce
	default:
		// RFC 8366: a voucher without nonce should expire; expires-on and
		// nonce exclude each other.
		life := vs.ExpiresIn
		if life == 0 {
			life = defaultVoucherLifetime
		}
		v.ExpiresOn = yangDateTime(now.Add(life))
	}
	switch vs.IDevIDIssuer {
	case IDevIDIssuerKeyID:
		v.IDevIDIssuer = req.cert.AuthorityKeyId
	case IDevIDIssuerAKI:
		v.IDevIDIssuer = authorityKeyIDExtension(req.cert)
	}
	if vs.IDevIDIssuer != "" && len(v.IDevIDIssuer) == 0 {
		return nil, fmt.Errorf("building the voucher: idevid-issuer: the device certificate %q has no Authority Key Identifier", req.cert.Subject)
	}
	b, err := json.Marshal(map[string]voucher{voucherMember: v})
	if err != nil {
		return nil, fmt.Errorf("encoding the voucher: %w", err)
	}
	return b, nil
}

// yangDateTime is a yang:date-and-time in UTC with whole seconds, the form
// of RFC 8366's examples. Truncation keeps created-on at or before now.
func yangDateTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
}

// tamper changes content inside the DER der in place, keeping lengths: it
// swaps the case of content's first ASCII letter (or flips the low bit of
// its last byte if it has none).
func tamper(der, content []byte) error {
	i := bytes.Index(der, content)
	if i < 0 || len(content) == 0 {
		return errors.New("tampering with conveyed information: content not found in the SignedData")
	}
	for j, c := range content {
		if (c|0x20) >= 'a' && (c|0x20) <= 'z' {
			der[i+j] ^= 0x20
			return nil
		}
	}
	der[i+len(content)-1] ^= 1
	return nil
}
