package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	// Register the digests this file names through crypto.Hash.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Errors a caller may branch on. Each is wrapped with what was being done.
var (
	// ErrNoSigner: the SignedData has no SignerInfo. A degenerate
	// certificate bag is not signed data (use ParseCertificateBag for those).
	ErrNoSigner = errors.New("SignedData has no signer")
	// ErrMultipleSigners: RFC 8572 artifacts carry exactly one signature;
	// more would make "which signer vouches for this" ambiguous.
	ErrMultipleSigners = errors.New("SignedData has more than one signer")
	// ErrDetached: the eContent is absent (a detached signature). RFC 8572
	// artifacts always carry their content.
	ErrDetached = errors.New("SignedData has no encapsulated content (detached signature)")
	// ErrSignerNotFound: none of the candidate certificates matches the sid.
	ErrSignerNotFound = errors.New("signer certificate not found")
	// ErrContentTypeMismatch: the content-type signed attribute differs from
	// the eContentType, so the signer did not sign what is being claimed.
	ErrContentTypeMismatch = errors.New("content-type attribute does not match eContentType")
	// ErrInvalidSignature: the signature, or the message-digest attribute,
	// does not verify with the given certificate.
	ErrInvalidSignature = errors.New("signature does not verify")
)

// UnsupportedAlgorithmError reports an algorithm this package refuses,
// either because it is unknown or because it is too weak (SHA-1).
type UnsupportedAlgorithmError struct {
	Role   string // "digest", "signature", "key encryption", ...
	OID    asn1.ObjectIdentifier
	Reason string // optional detail
}

func (e *UnsupportedAlgorithmError) Error() string {
	msg := fmt.Sprintf("unsupported %s algorithm %s", e.Role, e.OID)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Algorithm and attribute OIDs (RFC 5652, RFC 5754, RFC 4055, RFC 5758,
// RFC 8419).
var (
	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// hashForOID maps a digest AlgorithmIdentifier OID to a hash. SHA-1 gets
// its own reason because it is the one a peer is most likely to send.
func hashForOID(role string, oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512):
		return crypto.SHA512, nil
	case oid.Equal(oidSHA1):
		return 0, &UnsupportedAlgorithmError{Role: role, OID: oid, Reason: "SHA-1 is not accepted (collision attacks)"}
	}
	return 0, &UnsupportedAlgorithmError{Role: role, OID: oid}
}

// sigKind is the signature scheme family of a signatureAlgorithm.
type sigKind int

const (
	sigRSAPKCS1 sigKind = iota + 1
	sigRSAPSS
	sigECDSA
	sigEd25519
)

// signatureScheme classifies a signatureAlgorithm OID. For the OIDs that
// name a hash (sha256WithRSAEncryption, ecdsa-with-SHA384, ...) it also
// returns that hash, which must then equal the digestAlgorithm: letting the
// two disagree would let a peer pick which one we honour.
func signatureScheme(oid asn1.ObjectIdentifier) (sigKind, crypto.Hash, error) {
	switch {
	case oid.Equal(oidRSAEncryption):
		return sigRSAPKCS1, 0, nil
	case oid.Equal(oidSHA256WithRSA):
		return sigRSAPKCS1, crypto.SHA256, nil
	case oid.Equal(oidSHA384WithRSA):
		return sigRSAPKCS1, crypto.SHA384, nil
	case oid.Equal(oidSHA512WithRSA):
		return sigRSAPKCS1, crypto.SHA512, nil
	case oid.Equal(oidRSASSAPSS):
		return sigRSAPSS, 0, nil
	case oid.Equal(oidECPublicKey):
		return sigECDSA, 0, nil
	case oid.Equal(oidECDSAWithSHA256):
		return sigECDSA, crypto.SHA256, nil
	case oid.Equal(oidECDSAWithSHA384):
		return sigECDSA, crypto.SHA384, nil
	case oid.Equal(oidECDSAWithSHA512):
		return sigECDSA, crypto.SHA512, nil
	case oid.Equal(oidEd25519):
		return sigEd25519, 0, nil
	case oid.Equal(oidSHA1WithRSA), oid.Equal(oidECDSAWithSHA1):
		return 0, 0, &UnsupportedAlgorithmError{Role: "signature", OID: oid, Reason: "SHA-1 is not accepted (collision attacks)"}
	}
	return 0, 0, &UnsupportedAlgorithmError{Role: "signature", OID: oid}
}

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1). The defaults (SHA-1,
// MGF1-SHA-1, salt 20) are SHA-1 based, so an absent hash is refused anyway.
type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	SaltLength   int                      `asn1:"optional,explicit,tag:2,default:20"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

// parsePSS returns the hash and salt length of RSASSA-PSS parameters. Go's
// rsa.VerifyPSS uses the same hash for MGF1, so a different MGF1 hash is
// refused rather than verified with the wrong one.
func parsePSS(params asn1.RawValue) (crypto.Hash, int, error) {
	var p pssParams
	if len(params.FullBytes) == 0 {
		return 0, 0, &UnsupportedAlgorithmError{Role: "signature", OID: oidRSASSAPSS, Reason: "absent parameters mean SHA-1"}
	}
	if rest, err := asn1.Unmarshal(params.FullBytes, &p); err != nil {
		return 0, 0, fmt.Errorf("parsing RSASSA-PSS parameters: %w", err)
	} else if len(rest) != 0 {
		return 0, 0, fmt.Errorf("parsing RSASSA-PSS parameters: %w", errTrailingData)
	}
	if len(p.Hash.Algorithm) == 0 {
		return 0, 0, &UnsupportedAlgorithmError{Role: "signature", OID: oidRSASSAPSS, Reason: "default hash is SHA-1"}
	}
	h, err := hashForOID("RSASSA-PSS hash", p.Hash.Algorithm)
	if err != nil {
		return 0, 0, err
	}
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return 0, 0, &UnsupportedAlgorithmError{Role: "RSASSA-PSS mask generation", OID: p.MGF.Algorithm}
	}
	var mgfHash pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil {
		return 0, 0, fmt.Errorf("parsing RSASSA-PSS MGF1 hash: %w", err)
	}
	if mh, err := hashForOID("RSASSA-PSS MGF1 hash", mgfHash.Algorithm); err != nil {
		return 0, 0, err
	} else if mh != h {
		return 0, 0, &UnsupportedAlgorithmError{Role: "RSASSA-PSS MGF1 hash", OID: mgfHash.Algorithm, Reason: "differs from the message hash"}
	}
	if p.TrailerField != 1 {
		return 0, 0, fmt.Errorf("parsing RSASSA-PSS parameters: trailerField %d, want 1", p.TrailerField)
	}
	if p.SaltLength < 0 || p.SaltLength > 1024 {
		return 0, 0, fmt.Errorf("parsing RSASSA-PSS parameters: salt length %d out of range", p.SaltLength)
	}
	return h, p.SaltLength, nil
}

// issuerAndSerial is IssuerAndSerialNumber (RFC 5652 §10.2.4). The issuer
// is kept raw so it can be compared with a certificate's RawIssuer.
type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// identifier is a SignerIdentifier / RecipientIdentifier: a certificate
// named either by issuer and serial number or by subject key identifier.
type identifier struct {
	issuer []byte   // DER Name, when named by issuer and serial
	serial *big.Int // idem
	ski    []byte   // when named by subjectKeyIdentifier
}

// parseIdentifier decodes the CHOICE { IssuerAndSerialNumber, [tag]
// IMPLICIT SubjectKeyIdentifier }. The SKI tag is 0 in SignerIdentifier and
// RecipientIdentifier; KeyAgreeRecipientIdentifier wraps a SEQUENCE there
// (rKeyId), which the caller signals with skiIsSequence.
func parseIdentifier(raw asn1.RawValue, skiIsSequence bool) (identifier, error) {
	switch {
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence && raw.IsCompound:
		var ias issuerAndSerial
		rest, err := asn1.Unmarshal(raw.FullBytes, &ias)
		if err != nil {
			return identifier{}, fmt.Errorf("parsing issuerAndSerialNumber: %w", err)
		}
		if len(rest) != 0 {
			return identifier{}, fmt.Errorf("parsing issuerAndSerialNumber: %w", errTrailingData)
		}
		if ias.Issuer.Class != asn1.ClassUniversal || ias.Issuer.Tag != asn1.TagSequence {
			return identifier{}, errors.New("parsing issuerAndSerialNumber: issuer is not a Name")
		}
		return identifier{issuer: ias.Issuer.FullBytes, serial: ias.Serial}, nil
	case raw.Class == asn1.ClassContextSpecific && raw.Tag == 0:
		if skiIsSequence {
			// RecipientKeyIdentifier ::= SEQUENCE { subjectKeyIdentifier,
			// date OPTIONAL, other OPTIONAL }: only the first field matters.
			var ski []byte
			if _, err := asn1.Unmarshal(raw.Bytes, &ski); err != nil {
				return identifier{}, fmt.Errorf("parsing rKeyId: %w", err)
			}
			return identifier{ski: ski}, nil
		}
		if raw.IsCompound {
			return identifier{}, errors.New("parsing subjectKeyIdentifier: constructed encoding")
		}
		return identifier{ski: raw.Bytes}, nil
	}
	return identifier{}, fmt.Errorf("parsing certificate identifier: unexpected tag class %d tag %d", raw.Class, raw.Tag)
}

// matches reports whether cert is the certificate id names.
func (id identifier) matches(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	if id.ski != nil {
		return len(id.ski) > 0 && bytes.Equal(id.ski, subjectKeyID(cert))
	}
	if id.serial == nil || cert.SerialNumber == nil || id.serial.Cmp(cert.SerialNumber) != 0 {
		return false
	}
	if bytes.Equal(id.issuer, cert.RawIssuer) {
		return true
	}
	// Some encoders re-encode the issuer Name (e.g. string types); fall back
	// to comparing the parsed RDN sequences so such peers still match.
	var a, b pkix.RDNSequence
	if _, err := asn1.Unmarshal(id.issuer, &a); err != nil {
		return false
	}
	if _, err := asn1.Unmarshal(cert.RawIssuer, &b); err != nil {
		return false
	}
	return a.String() == b.String()
}

func (id identifier) String() string {
	if id.ski != nil {
		return fmt.Sprintf("subjectKeyIdentifier %X", id.ski)
	}
	var name pkix.RDNSequence
	issuer := "?"
	if _, err := asn1.Unmarshal(id.issuer, &name); err == nil {
		issuer = name.String()
	}
	return fmt.Sprintf("issuer %q serial %v", issuer, id.serial)
}

// subjectKeyID is the certificate's SKI extension, or when it has none the
// RFC 5280 §4.2.1.2 method-1 value (SHA-1 of the public key bits), which is
// what OpenSSL computes for -keyid in that case.
func subjectKeyID(cert *x509.Certificate) []byte {
	if len(cert.SubjectKeyId) > 0 {
		return cert.SubjectKeyId
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// attribute is one Attribute of a SET OF Attribute (RFC 5652 §5.3).
type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF AttributeValue, checked by parseAttributes
}

// parseAttributes splits the contents of an attribute SET and returns, for
// each attribute type, its single value. RFC 5652 §11 requires content-type
// and message-digest to appear once with one value; we require the same of
// every attribute we look at and keep the others for completeness.
func parseAttributes(setContents []byte) (map[string][]asn1.RawValue, error) {
	attrs := make(map[string][]asn1.RawValue)
	rest := setContents
	for len(rest) > 0 {
		var a attribute
		var err error
		rest, err = asn1.Unmarshal(rest, &a)
		if err != nil {
			return nil, fmt.Errorf("parsing attribute: %w", err)
		}
		if a.Values.Class != asn1.ClassUniversal || a.Values.Tag != asn1.TagSet || !a.Values.IsCompound {
			return nil, fmt.Errorf("parsing attribute %s: values are not a SET", a.Type)
		}
		var vals []asn1.RawValue
		vrest := a.Values.Bytes
		for len(vrest) > 0 {
			var v asn1.RawValue
			vrest, err = asn1.Unmarshal(vrest, &v)
			if err != nil {
				return nil, fmt.Errorf("parsing attribute %s value: %w", a.Type, err)
			}
			vals = append(vals, v)
		}
		key := a.Type.String()
		if _, dup := attrs[key]; dup {
			return nil, fmt.Errorf("parsing attributes: %s appears more than once", a.Type)
		}
		attrs[key] = vals
	}
	return attrs, nil
}

// singleAttr returns the one value of attribute oid, or ok=false when the
// attribute is absent. More than one value is an error.
func singleAttr(attrs map[string][]asn1.RawValue, oid asn1.ObjectIdentifier) (asn1.RawValue, bool, error) {
	vals, ok := attrs[oid.String()]
	if !ok {
		return asn1.RawValue{}, false, nil
	}
	if len(vals) != 1 {
		return asn1.RawValue{}, false, fmt.Errorf("attribute %s has %d values, want 1", oid, len(vals))
	}
	return vals[0], true, nil
}

// signerInfo is RFC 5652 §5.3 SignerInfo. SID and the attribute sets stay
// raw; signedAttrs must be hashed exactly as received.
type signerInfo struct {
	Version            int
	SID                asn1.RawValue
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

// Signed is a parsed SignedData ContentInfo with exactly one signer.
// ParseSigned has already checked its structure and signed attributes;
// VerifySignature checks the cryptography against a certificate.
type Signed struct {
	EContentType asn1.ObjectIdentifier
	Content      []byte              // the eContent octets
	Certificates []*x509.Certificate // from the certificates set
	CRLs         [][]byte            // DER CertificateLists from the crls set

	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte

	// SignedAttributes is the DER of the signed attributes as a SET OF
	// (tag 0x31), the exact octets the signature covers; nil when absent.
	SignedAttributes []byte

	sid           identifier
	hash          crypto.Hash
	messageDigest []byte // message-digest attribute value, when signedAttrs present
	contentType   asn1.ObjectIdentifier
}

// ParseSigned parses a DER ContentInfo holding SignedData with exactly one
// signer and an encapsulated content, and checks the RFC 5652 rules that do
// not need a key: algorithms are supported, signedAttrs are present when
// eContentType is not id-data, and the content-type attribute (mandatory
// whenever signedAttrs are present) equals eContentType.
func ParseSigned(der []byte) (s *Signed, err error) {
	defer recoverTo("parsing SignedData", &err)
	return parseSigned(der)
}

func parseSigned(der []byte) (*Signed, error) {
	// ParseSignedData bounds the size and rejects trailing bytes.
	sd, err := ParseSignedData(der)
	if err != nil {
		return nil, err
	}
	s := &Signed{EContentType: sd.EncapContentInfo.EContentType}
	// Signers first: a certificate bag has neither signer nor content, and
	// "no signer" is the error that tells the caller what it was handed.
	si, err := onlySignerInfo(sd.SignerInfos)
	if err != nil {
		return nil, fmt.Errorf("parsing SignedData: %w", err)
	}

	if len(sd.EncapContentInfo.EContent.FullBytes) == 0 {
		return nil, fmt.Errorf("parsing SignedData: %w", ErrDetached)
	}
	// encoding/asn1 keeps the [0] EXPLICIT wrapper in a RawValue field, so
	// the OCTET STRING element is the wrapper's contents.
	ec := sd.EncapContentInfo.EContent
	if ec.Class != asn1.ClassContextSpecific || ec.Tag != 0 || !ec.IsCompound {
		return nil, errors.New("parsing SignedData eContent: not a [0] EXPLICIT element")
	}
	content, err := octetString(ec.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing SignedData eContent: %w", err)
	}
	s.Content = content

	if s.Certificates, err = sd.Certificates(); err != nil {
		return nil, err
	}
	if s.CRLs, err = sd.CRLs(); err != nil {
		return nil, err
	}

	if s.sid, err = parseIdentifier(si.SID, false); err != nil {
		return nil, fmt.Errorf("parsing SignerInfo sid: %w", err)
	}
	s.DigestAlgorithm = si.DigestAlgorithm
	s.SignatureAlgorithm = si.SignatureAlgorithm
	s.Signature = si.Signature
	if s.hash, err = hashForOID("digest", si.DigestAlgorithm.Algorithm); err != nil {
		return nil, fmt.Errorf("parsing SignerInfo: %w", err)
	}
	if _, _, err := s.scheme(); err != nil {
		return nil, fmt.Errorf("parsing SignerInfo: %w", err)
	}

	if len(si.SignedAttrs.FullBytes) == 0 {
		// RFC 5652 §5.3: without signedAttrs nothing binds the content type
		// to the signature, so only id-data may be signed that way.
		if !s.EContentType.Equal(OIDData) {
			return nil, fmt.Errorf("parsing SignerInfo: signed attributes are required when eContentType is %s", Name(s.EContentType))
		}
		return s, nil
	}
	if !si.SignedAttrs.IsCompound {
		return nil, errors.New("parsing SignerInfo: signed attributes are not constructed")
	}
	// The signature covers the attributes with an explicit SET OF tag
	// (RFC 5652 §5.4), not the [0] IMPLICIT tag they travel with.
	s.SignedAttributes = append([]byte{0x31}, si.SignedAttrs.FullBytes[1:]...)
	if err := s.parseSignedAttrs(si.SignedAttrs.Bytes); err != nil {
		return nil, fmt.Errorf("parsing SignerInfo signed attributes: %w", err)
	}
	return s, nil
}

// parseSignedAttrs extracts and checks content-type and message-digest.
func (s *Signed) parseSignedAttrs(contents []byte) error {
	attrs, err := parseAttributes(contents)
	if err != nil {
		return err
	}
	ct, ok, err := singleAttr(attrs, oidAttrContentType)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("content-type attribute is missing")
	}
	if _, err := asn1.Unmarshal(ct.FullBytes, &s.contentType); err != nil {
		return fmt.Errorf("parsing content-type attribute: %w", err)
	}
	if !s.contentType.Equal(s.EContentType) {
		return fmt.Errorf("%w: attribute says %s, eContentType is %s", ErrContentTypeMismatch, Name(s.contentType), Name(s.EContentType))
	}
	md, ok, err := singleAttr(attrs, oidAttrMessageDigest)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("message-digest attribute is missing")
	}
	if _, err := asn1.Unmarshal(md.FullBytes, &s.messageDigest); err != nil {
		return fmt.Errorf("parsing message-digest attribute: %w", err)
	}
	return nil
}

// onlySignerInfo parses the SignerInfos SET and requires exactly one entry.
func onlySignerInfo(set asn1.RawValue) (*signerInfo, error) {
	if set.Class != asn1.ClassUniversal || set.Tag != asn1.TagSet || !set.IsCompound {
		return nil, errors.New("signerInfos is not a SET")
	}
	var infos []signerInfo
	rest := set.Bytes
	for len(rest) > 0 {
		if len(infos) == 1 {
			return nil, ErrMultipleSigners
		}
		var si signerInfo
		var err error
		rest, err = asn1.Unmarshal(rest, &si)
		if err != nil {
			return nil, fmt.Errorf("parsing SignerInfo: %w", err)
		}
		infos = append(infos, si)
	}
	if len(infos) == 0 {
		return nil, ErrNoSigner
	}
	return &infos[0], nil
}

// octetString decodes a primitive OCTET STRING element, or a constructed
// one (BER segments, one level deep) so streamed encoders are accepted.
func octetString(der []byte) ([]byte, error) {
	var out []byte
	rest, err := asn1.Unmarshal(der, &out)
	if err == nil {
		if len(rest) != 0 {
			return nil, errTrailingData
		}
		return out, nil
	}
	var outer asn1.RawValue
	if rest, err2 := asn1.Unmarshal(der, &outer); err2 != nil || len(rest) != 0 ||
		outer.Class != asn1.ClassUniversal || outer.Tag != asn1.TagOctetString || !outer.IsCompound {
		return nil, err
	}
	return joinSegments(outer.Bytes)
}

// joinSegments concatenates the primitive OCTET STRING segments of a
// constructed string's contents.
func joinSegments(contents []byte) ([]byte, error) {
	out := []byte{}
	rest := contents
	for len(rest) > 0 {
		var seg []byte
		var err error
		if rest, err = asn1.Unmarshal(rest, &seg); err != nil {
			return nil, fmt.Errorf("parsing OCTET STRING segment: %w", err)
		}
		out = append(out, seg...)
	}
	return out, nil
}

// scheme returns the signature family and the hash the signature uses,
// checking it agrees with the digestAlgorithm.
func (s *Signed) scheme() (sigKind, crypto.Hash, error) {
	kind, h, err := signatureScheme(s.SignatureAlgorithm.Algorithm)
	if err != nil {
		return 0, 0, err
	}
	if kind == sigRSAPSS {
		if h, _, err = parsePSS(s.SignatureAlgorithm.Parameters); err != nil {
			return 0, 0, err
		}
	}
	if kind == sigEd25519 {
		// RFC 8419 §3: with signed attributes the digest must be SHA-512.
		// PureEdDSA signs the message itself, so no hash is applied here.
		return kind, 0, nil
	}
	if h != 0 && h != s.hash {
		return 0, 0, &UnsupportedAlgorithmError{Role: "signature", OID: s.SignatureAlgorithm.Algorithm,
			Reason: fmt.Sprintf("its hash %v differs from the digest algorithm %v", h, s.hash)}
	}
	return kind, s.hash, nil
}

// Signer finds the signer's certificate among candidates by the SignerInfo
// sid (issuerAndSerialNumber or subjectKeyIdentifier). Pass s.Certificates,
// or certificates known out of band (the owner certificate).
func (s *Signed) Signer(candidates []*x509.Certificate) (*x509.Certificate, error) {
	for _, c := range candidates {
		if s.sid.matches(c) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("finding signer (%s) among %d certificates: %w", s.sid, len(candidates), ErrSignerNotFound)
}

// VerifySignature checks the signature with cert's public key. It does not
// build a chain: RFC 8572 validates each artifact against a different trust
// anchor (voucher TAs, pinned-domain-cert), so the caller runs x509.Verify
// with the right pool. cert must be the one the sid names.
func (s *Signed) VerifySignature(cert *x509.Certificate) (err error) {
	defer recoverTo("verifying SignedData signature", &err)
	if cert == nil {
		return errors.New("verifying SignedData signature: no certificate")
	}
	if !s.sid.matches(cert) {
		return fmt.Errorf("verifying SignedData signature: certificate %q is not the signer (%s): %w",
			cert.Subject, s.sid, ErrSignerNotFound)
	}
	kind, h, err := s.scheme()
	if err != nil {
		return fmt.Errorf("verifying SignedData signature: %w", err)
	}

	// The signed message: the attributes when present (after checking they
	// bind this content and type), else the content itself.
	msg := s.Content
	if s.SignedAttributes != nil {
		if !s.contentType.Equal(s.EContentType) {
			return fmt.Errorf("verifying SignedData signature: %w", ErrContentTypeMismatch)
		}
		d := s.hash.New()
		d.Write(s.Content)
		if !bytes.Equal(d.Sum(nil), s.messageDigest) {
			return fmt.Errorf("verifying SignedData signature: %w: message-digest attribute does not match the content", ErrInvalidSignature)
		}
		msg = s.SignedAttributes
	} else if s.contentType != nil || s.messageDigest != nil {
		return errors.New("verifying SignedData signature: attribute state without signed attributes")
	}

	var digest []byte
	if h != 0 {
		d := h.New()
		d.Write(msg)
		digest = d.Sum(nil)
	}

	var ok bool
	switch kind {
	case sigRSAPKCS1, sigRSAPSS:
		pub, isRSA := cert.PublicKey.(*rsa.PublicKey)
		if !isRSA {
			return fmt.Errorf("verifying SignedData signature: %s signature but a %T key", Name(s.SignatureAlgorithm.Algorithm), cert.PublicKey)
		}
		if kind == sigRSAPKCS1 {
			ok = rsa.VerifyPKCS1v15(pub, h, digest, s.Signature) == nil
		} else {
			_, salt, _ := parsePSS(s.SignatureAlgorithm.Parameters) // checked in scheme
			ok = rsa.VerifyPSS(pub, h, digest, s.Signature, &rsa.PSSOptions{SaltLength: salt, Hash: h}) == nil
		}
	case sigECDSA:
		pub, isEC := cert.PublicKey.(*ecdsa.PublicKey)
		if !isEC {
			return fmt.Errorf("verifying SignedData signature: ECDSA signature but a %T key", cert.PublicKey)
		}
		ok = ecdsa.VerifyASN1(pub, digest, s.Signature)
	case sigEd25519:
		pub, isEd := cert.PublicKey.(ed25519.PublicKey)
		if !isEd {
			return fmt.Errorf("verifying SignedData signature: Ed25519 signature but a %T key", cert.PublicKey)
		}
		if s.SignedAttributes != nil && s.hash != crypto.SHA512 {
			return fmt.Errorf("verifying SignedData signature: Ed25519 with signed attributes needs SHA-512 digests (RFC 8419), got %v", s.hash)
		}
		ok = ed25519.Verify(pub, msg, s.Signature)
	default:
		return errors.New("verifying SignedData signature: unknown scheme")
	}
	if !ok {
		return fmt.Errorf("verifying SignedData signature with %q: %w", cert.Subject, ErrInvalidSignature)
	}
	return nil
}

// SignerIdentifier describes the sid for logs ("issuer ... serial ..." or
// "subjectKeyIdentifier ...").
func (s *Signed) SignerIdentifier() string { return s.sid.String() }

// recoverTo is the last-resort guard at the package's API boundary: a bug
// on some malformed input must fail closed with an error, not crash the
// agent. The code is written not to need it.
func recoverTo(op string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w: %v", op, errRecoveredPanic, r)
	}
}

// errRecoveredPanic marks an error made from a recovered panic, so tests
// and fuzzers can still tell that a bug was hit.
var errRecoveredPanic = errors.New("internal error on malformed input")
