// Package ownership validates signed bootstrapping data the way RFC 8572
// §5.4 orders it: decrypt what is encrypted, verify the ownership voucher
// (RFC 8366) against the manufacturer's trust anchors and the device's own
// identity, validate the owner certificate against the voucher's
// pinned-domain-cert, and verify the conveyed information's signature by the
// owner certificate. The first failure stops everything; nothing is returned
// from data that did not pass every step.
package ownership

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// Sentinel errors, one per check, so callers and tests can tell exactly
// which step refused the data.
var (
	ErrMissingArtifact     = errors.New("signed data needs conveyed information, an owner certificate and an ownership voucher together")
	ErrDecrypt             = errors.New("cannot decrypt artifact")
	ErrVoucherFormat       = errors.New("ownership voucher is malformed")
	ErrVoucherContentType  = errors.New("ownership voucher has the wrong content type")
	ErrVoucherSignature    = errors.New("ownership voucher signature does not verify")
	ErrVoucherSigner       = errors.New("ownership voucher signer does not chain to a voucher trust anchor")
	ErrVoucherNotYetValid  = errors.New("ownership voucher created-on is in the future")
	ErrVoucherExpired      = errors.New("ownership voucher has expired")
	ErrNonceRequired       = errors.New("the clock is not trusted and the voucher carries no nonce")
	ErrNonce               = errors.New("ownership voucher nonce does not match the nonce the device sent")
	ErrAssertion           = errors.New("ownership voucher assertion is not accepted by local policy")
	ErrSerialNumber        = errors.New("ownership voucher is for another serial number")
	ErrIDevIDIssuer        = errors.New("ownership voucher idevid-issuer does not match the device's IDevID issuer")
	ErrPinnedDomainCert    = errors.New("ownership voucher pinned-domain-cert is not a certificate")
	ErrOwnerCertificate    = errors.New("owner certificate artifact is malformed")
	ErrOwnerChain          = errors.New("owner certificate does not chain to the voucher's pinned-domain-cert")
	ErrOwnerKeyUsage       = errors.New("owner certificate key usage does not allow digital signatures")
	ErrRevocation          = errors.New("owner certificate revocation status")
	ErrConveyedFormat      = errors.New("conveyed information is not valid signed data")
	ErrConveyedContentType = errors.New("conveyed information has the wrong content type")
	ErrConveyedSignature   = errors.New("conveyed information signature by the owner certificate does not verify")
)

// Policy is the device's side of the checks.
type Policy struct {
	// VoucherTrustAnchors are the manufacturer (MASA) trust anchors.
	VoucherTrustAnchors []*x509.Certificate
	// SerialNumber is the device's serial number (from its IDevID).
	SerialNumber string
	// IDevID is the device certificate: its Authority Key Identifier is
	// matched against idevid-issuer, and it is the recipient of encrypted
	// artifacts.
	IDevID *x509.Certificate
	// DecryptionKey opens encrypted artifacts: a crypto.Decrypter (RSA), a
	// cms.KeyAgreer or *ecdsa.PrivateKey (ECDH). Nil refuses encrypted ones.
	DecryptionKey any
	// Assertions accepted; empty means only "verified".
	Assertions []string
	// ClockTrusted: the device's clock is good enough to check validity
	// periods. When false, vouchers must carry the nonce the device sent
	// (RFC 8572 §9.1) and certificate validity is not judged by the clock.
	ClockTrusted bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Artifacts are the three artifacts of a signed-data response, DER, as received.
type Artifacts struct {
	ConveyedInformation []byte
	OwnerCertificate    []byte
	OwnershipVoucher    []byte
	// Nonce is what the device sent in this request, nil if none.
	Nonce []byte
}

// Result is what passed every check.
type Result struct {
	Voucher          *Voucher
	OwnerCertificate *x509.Certificate
	// ContentType is the conveyed information's eContentType (.42, .43 or id-data).
	ContentType asn1.ObjectIdentifier
	Content     []byte
	// Steps describe each check that passed, in order, for operators.
	Steps []string
}

// Verify runs RFC 8572 §5.4 over a, in order, stopping at the first failure.
func Verify(p Policy, a Artifacts) (*Result, error) {
	if len(a.ConveyedInformation) == 0 || len(a.OwnerCertificate) == 0 || len(a.OwnershipVoucher) == 0 {
		return nil, ErrMissingArtifact
	}
	v := &verifier{p: p, res: &Result{}}
	if v.p.Now == nil {
		v.p.Now = time.Now
	}
	if len(v.p.Assertions) == 0 {
		v.p.Assertions = []string{"verified"}
	}
	// Step 1: decrypt.
	voucherCMS, err := v.open("ownership-voucher", a.OwnershipVoucher)
	if err != nil {
		return nil, err
	}
	ownerCMS, err := v.open("owner-certificate", a.OwnerCertificate)
	if err != nil {
		return nil, err
	}
	conveyedCMS, err := v.open("conveyed-information", a.ConveyedInformation)
	if err != nil {
		return nil, err
	}
	// Steps 2–4: the voucher.
	voucher, pinned, err := v.voucher(voucherCMS, a.Nonce)
	if err != nil {
		return nil, err
	}
	// Step 5–6: the owner certificate, found as the conveyed information's signer.
	signed, err := cms.ParseSigned(conveyedCMS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConveyedFormat, err)
	}
	owner, err := v.ownerCertificate(ownerCMS, signed, pinned, voucher)
	if err != nil {
		return nil, err
	}
	// Step 7: the conveyed information itself.
	if !cms.IsConveyedInfoType(signed.EContentType) {
		return nil, fmt.Errorf("%w: %s", ErrConveyedContentType, cms.Name(signed.EContentType))
	}
	if err := signed.VerifySignature(owner); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConveyedSignature, err)
	}
	v.step("conveyed information (%s, %d bytes) signed by the owner certificate: signature verified", cms.Name(signed.EContentType), len(signed.Content))
	v.res.Voucher, v.res.OwnerCertificate = voucher, owner
	v.res.ContentType, v.res.Content = signed.EContentType, signed.Content
	return v.res, nil
}

type verifier struct {
	p   Policy
	res *Result
}

func (v *verifier) step(format string, args ...any) {
	v.res.Steps = append(v.res.Steps, fmt.Sprintf(format, args...))
}

// open decrypts an EnvelopedData artifact (RFC 8572 §3.4) and returns the
// ContentInfo DER of what it held; other artifacts pass through.
func (v *verifier) open(name string, der []byte) ([]byte, error) {
	ci, err := cms.ParseContentInfo(der)
	if err != nil {
		return der, nil // reported by the artifact's own parser, with its name
	}
	if !ci.ContentType.Equal(cms.OIDEnvelopedData) && !ci.ContentType.Equal(cms.OIDAuthEnvelopedData) {
		return der, nil
	}
	if v.p.DecryptionKey == nil || v.p.IDevID == nil {
		return nil, fmt.Errorf("%w: %s is encrypted and the device has no decryption key", ErrDecrypt, name)
	}
	plain, contentType, err := cms.Decrypt(der, v.p.IDevID, v.p.DecryptionKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDecrypt, name, err)
	}
	v.step("%s decrypted with the device key", name)
	return Rewrap(plain, contentType)
}

// Rewrap turns decrypted plaintext back into a ContentInfo: RFC 8572's
// encryptedContentInfo holds the SignedData itself (type id-signedData), but
// tools such as `openssl cms -encrypt` encrypt a whole ContentInfo file under
// id-data. Both are accepted.
func Rewrap(plain []byte, contentType asn1.ObjectIdentifier) ([]byte, error) {
	if _, err := cms.ParseContentInfo(plain); err == nil {
		return plain, nil
	}
	if contentType.Equal(cms.OIDSignedData) {
		return asn1.Marshal(cms.ContentInfo{ContentType: cms.OIDSignedData,
			Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: plain}})
	}
	return cms.MarshalData(contentType, plain)
}

// verifyChain path-validates leaf to one of roots through intermediates.
// With a trusted clock validity is judged now. Without one, validity periods
// must not decide (RFC 8572 §9.1), but crypto/x509 always judges them, so
// the chain is tried at instants where its certificates are normally valid
// together: just after the leaf's notBefore (its issuers were valid when
// they issued it), then just after the latest notBefore of everything
// offered. A single "latest notBefore" instant alone fails as soon as the
// device holds two voucher trust anchors whose validity does not overlap
// (a root rollover), because the older one has expired by then.
func (v *verifier) verifyChain(leaf *x509.Certificate, roots, intermediates []*x509.Certificate) ([][]*x509.Certificate, error) {
	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range roots {
		rootPool.AddCert(c)
	}
	for _, c := range intermediates {
		interPool.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: rootPool, Intermediates: interPool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if v.p.ClockTrusted {
		opts.CurrentTime = v.p.Now()
		return leaf.Verify(opts)
	}
	latest := leaf.NotBefore
	for _, c := range slices.Concat(roots, intermediates) {
		if c.NotBefore.After(latest) {
			latest = c.NotBefore
		}
	}
	opts.CurrentTime = leaf.NotBefore.Add(time.Second)
	chains, err := leaf.Verify(opts)
	if err != nil && !latest.Equal(leaf.NotBefore) {
		opts.CurrentTime = latest.Add(time.Second)
		chains, err = leaf.Verify(opts)
	}
	return chains, err
}

func (v *verifier) voucher(der []byte, sentNonce []byte) (*Voucher, *x509.Certificate, error) {
	signed, err := cms.ParseSigned(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrVoucherFormat, err)
	}
	if !signed.EContentType.Equal(cms.OIDAnimaJSONVoucher) && !signed.EContentType.Equal(cms.OIDData) {
		return nil, nil, fmt.Errorf("%w: %s", ErrVoucherContentType, cms.Name(signed.EContentType))
	}
	// RFC 8366 only says the CMS SHOULD carry the signer's chain: a MASA
	// that signs with the trust anchor's own key and leaves it out is still
	// found among the anchors.
	signer, err := signed.Signer(slices.Concat(signed.Certificates, v.p.VoucherTrustAnchors))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrVoucherSigner, err)
	}
	if _, err := v.verifyChain(signer, v.p.VoucherTrustAnchors, signed.Certificates); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrVoucherSigner, err)
	}
	if err := signed.VerifySignature(signer); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrVoucherSignature, err)
	}
	v.step("ownership voucher signed by %q, which chains to a voucher trust anchor: signature verified", signer.Subject.String())
	vo, err := ParseVoucher(signed.Content)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrVoucherFormat, err)
	}
	if err := v.voucherContent(vo, sentNonce); err != nil {
		return nil, nil, err
	}
	pinned, err := x509.ParseCertificate(vo.PinnedDomainCert)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPinnedDomainCert, err)
	}
	v.step("pinned-domain-cert: %q", pinned.Subject.String())
	return vo, pinned, nil
}

// voucherContent is RFC 8572 §5.4's list of voucher checks.
func (v *verifier) voucherContent(vo *Voucher, sentNonce []byte) error {
	now := v.p.Now()
	switch {
	case v.p.ClockTrusted && vo.CreatedOn.After(now):
		return fmt.Errorf("%w: created-on %s, now %s", ErrVoucherNotYetValid, vo.CreatedOn.Format(time.RFC3339), now.Format(time.RFC3339))
	case v.p.ClockTrusted && !vo.ExpiresOn.IsZero() && !now.Before(vo.ExpiresOn):
		return fmt.Errorf("%w: expires-on %s, now %s", ErrVoucherExpired, vo.ExpiresOn.Format(time.RFC3339), now.Format(time.RFC3339))
	case !v.p.ClockTrusted && vo.Nonce == nil:
		return ErrNonceRequired
	}
	if v.p.ClockTrusted {
		v.step("voucher validity: created-on %s is past%s", vo.CreatedOn.Format(time.RFC3339), expiryWords(vo.ExpiresOn))
	}
	if !slices.Contains(v.p.Assertions, vo.Assertion) {
		return fmt.Errorf("%w: %q (accepted: %v)", ErrAssertion, vo.Assertion, v.p.Assertions)
	}
	v.step("voucher assertion %q accepted", vo.Assertion)
	if vo.SerialNumber != v.p.SerialNumber {
		return fmt.Errorf("%w: voucher %q, device %q", ErrSerialNumber, vo.SerialNumber, v.p.SerialNumber)
	}
	v.step("voucher serial-number %q is this device", vo.SerialNumber)
	if vo.IDevIDIssuer != nil {
		if v.p.IDevID == nil || !matchesIssuer(vo.IDevIDIssuer, v.p.IDevID) {
			return ErrIDevIDIssuer
		}
		v.step("voucher idevid-issuer matches the IDevID's authority key identifier")
	}
	if vo.Nonce != nil {
		if len(sentNonce) == 0 || !bytes.Equal(vo.Nonce, sentNonce) {
			return ErrNonce
		}
		v.step("voucher nonce equals the nonce this device sent")
	}
	return nil
}

func expiryWords(t time.Time) string {
	if t.IsZero() {
		return ", no expires-on"
	}
	return ", expires-on " + t.Format(time.RFC3339) + " is ahead"
}

var oidAuthorityKeyIdentifier = asn1.ObjectIdentifier{2, 5, 29, 35}

// matchesIssuer accepts both encodings of idevid-issuer seen in the wild:
// the keyIdentifier bytes (RFC 8366) and the whole AuthorityKeyIdentifier
// extension value (RFC 8366bis).
func matchesIssuer(issuer []byte, idevid *x509.Certificate) bool {
	if len(idevid.AuthorityKeyId) > 0 && bytes.Equal(issuer, idevid.AuthorityKeyId) {
		return true
	}
	for _, ext := range idevid.Extensions {
		if ext.Id.Equal(oidAuthorityKeyIdentifier) && bytes.Equal(issuer, ext.Value) {
			return true
		}
	}
	return false
}

// ownerCertificate is RFC 8572 §5.4 steps 5 and 6: the owner certificate
// (the conveyed information's signer, found in the owner-certificate bag)
// must chain to the pinned-domain-cert, allow digital signatures and, when
// the voucher asks, be shown not revoked by the CRLs stapled in the bag.
func (v *verifier) ownerCertificate(der []byte, conveyed *cms.Signed, pinned *x509.Certificate, vo *Voucher) (*x509.Certificate, error) {
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOwnerCertificate, err)
	}
	bag, err := sd.Certificates()
	if err != nil || len(bag) == 0 {
		return nil, fmt.Errorf("%w: no certificate in the bag (%v)", ErrOwnerCertificate, err)
	}
	crls, err := sd.CRLs()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOwnerCertificate, err)
	}
	owner, err := conveyed.Signer(bag)
	if err != nil {
		// The conveyed information was signed by someone the bag does not
		// hold. That is a conveyed-information signature failure, not an
		// owner-chain one; but §5.4 validates the owner certificate first,
		// so the bag's own end-entity is validated here and the signature
		// check in Verify then refuses the conveyed information.
		if owner, err = endEntity(bag, pinned); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOwnerCertificate, err)
		}
	}
	if owner.KeyUsage != 0 && owner.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, ErrOwnerKeyUsage
	}
	var chain []*x509.Certificate
	if owner.Equal(pinned) {
		chain = []*x509.Certificate{owner}
	} else {
		chains, err := v.verifyChain(owner, []*x509.Certificate{pinned}, bag)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOwnerChain, err)
		}
		chain = chains[0]
	}
	v.step("owner certificate %q chains to the pinned-domain-cert", owner.Subject.String())
	checks := vo.RevocationChecks
	switch {
	case checks != nil && *checks:
		if err := v.revocation(chain, crls, true); err != nil {
			return nil, err
		}
		v.step("revocation: every certificate below the pinned-domain-cert is covered by a fresh stapled CRL and not revoked")
	case checks == nil && len(crls) > 0:
		// No instruction: normal PKIX, so stapled CRLs are honoured but
		// their absence is not an error.
		if err := v.revocation(chain, crls, false); err != nil {
			return nil, err
		}
	}
	return owner, nil
}

// endEntity picks the owner certificate out of a bag when the conveyed
// information's signer is not in it: the one certificate that issues no
// other certificate of the bag and is not the pinned-domain-cert (which the
// bag MAY repeat), or the pinned-domain-cert when that is all there is.
func endEntity(bag []*x509.Certificate, pinned *x509.Certificate) (*x509.Certificate, error) {
	var leaves []*x509.Certificate
	for _, c := range bag {
		if c.Equal(pinned) {
			continue
		}
		issuer := false
		for _, o := range bag {
			if o != c && bytes.Equal(o.RawIssuer, c.RawSubject) {
				issuer = true
				break
			}
		}
		if !issuer {
			leaves = append(leaves, c)
		}
	}
	switch {
	case len(leaves) == 1:
		return leaves[0], nil
	case len(leaves) == 0 && slices.ContainsFunc(bag, pinned.Equal):
		return pinned, nil
	}
	return nil, fmt.Errorf("the bag has %d end-entity certificates and none signed the conveyed information", len(leaves))
}

// revocation checks each certificate of chain except its anchor against the
// CRLs issued by its issuer. required: a certificate without a usable CRL
// fails (RFC 8572 §5.4: status that cannot be had means not accepted).
func (v *verifier) revocation(chain []*x509.Certificate, crlDER [][]byte, required bool) error {
	var crls []*x509.RevocationList
	for _, d := range crlDER {
		crl, err := x509.ParseRevocationList(d)
		if err != nil {
			return fmt.Errorf("%w: stapled CRL: %w", ErrRevocation, err)
		}
		crls = append(crls, crl)
	}
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		covered := false
		for _, crl := range crls {
			if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			// A revocation listed by an authentic CRL stands whatever the
			// CRL's age or the clock: revocation is permanent (only a
			// certificateHold is not, and refusing then fails closed), so a
			// stale CRL can still prove "revoked", never "not revoked".
			for _, rc := range crl.RevokedCertificateEntries {
				if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return fmt.Errorf("%w: %q is revoked", ErrRevocation, subjectOf(cert.Subject))
				}
			}
			if !v.p.ClockTrusted {
				if required {
					return fmt.Errorf("%w: the clock is not trusted, so CRL freshness cannot be judged", ErrRevocation)
				}
				continue
			}
			now := v.p.Now()
			if now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && now.After(crl.NextUpdate)) {
				continue // not yet issued, or stale: no evidence of good standing
			}
			covered = true
		}
		if required && !covered {
			return fmt.Errorf("%w: no fresh CRL from %q for %q", ErrRevocation, subjectOf(issuer.Subject), subjectOf(cert.Subject))
		}
	}
	return nil
}

func subjectOf(n pkix.Name) string { return n.String() }
