// Package cms reads (and, for the lab and tests, writes) the Cryptographic
// Message Syntax (RFC 5652) structures that RFC 8572 uses to carry
// bootstrapping artifacts: ContentInfo wrappers around conveyed information,
// and certificate bags (SignedData, usually degenerate) for owner certificates
// and redirect trust anchors.
//
// It is written on encoding/asn1 rather than a pkcs7 library because those
// libraries neither expose the eContentType nor bound their inputs (see the
// project's notes), and the agent must fail closed with a clear error on any
// malformed DER it is handed by an untrusted peer.
package cms

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// Content types used by RFC 8572, RFC 8366 and RFC 5652.
var (
	OIDData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDEnvelopedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	OIDAuthEnvelopedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
	OIDAnimaJSONVoucher     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 40}
	OIDSZTPConveyedInfoXML  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 42}
	OIDSZTPConveyedInfoJSON = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 43}
	errTrailingData         = errors.New("trailing data after the DER structure")
	errNotConveyedInfoType  = errors.New("content type is not conveyed information")
	maxArtifactSize         = 32 << 20
)

// ContentInfo is the outermost CMS structure (RFC 5652 §3).
type ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

// ParseContentInfo decodes one DER ContentInfo and rejects trailing bytes.
func ParseContentInfo(der []byte) (*ContentInfo, error) {
	if len(der) == 0 {
		return nil, errors.New("parsing CMS ContentInfo: empty input")
	}
	if len(der) > maxArtifactSize {
		return nil, fmt.Errorf("parsing CMS ContentInfo: %d bytes is over the %d-byte limit", len(der), maxArtifactSize)
	}
	var ci ContentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		// Indefinite-length BER (openssl cms -stream) is rewritten to DER
		// and parsed again; anything else is reported as it was found.
		fixed, berErr := berToDER(der)
		if berErr != nil {
			return nil, fmt.Errorf("parsing CMS ContentInfo: %w", err)
		}
		if rest, err = asn1.Unmarshal(fixed, &ci); err != nil {
			return nil, fmt.Errorf("parsing CMS ContentInfo: %w", err)
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("parsing CMS ContentInfo: %w (%d bytes)", errTrailingData, len(rest))
	}
	return &ci, nil
}

// Name returns a readable name for the content types this package knows.
func Name(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(OIDData):
		return "id-data"
	case oid.Equal(OIDSignedData):
		return "id-signedData"
	case oid.Equal(OIDEnvelopedData):
		return "id-envelopedData"
	case oid.Equal(OIDAuthEnvelopedData):
		return "id-ct-authEnvelopedData"
	case oid.Equal(OIDAnimaJSONVoucher):
		return "id-ct-animaJSONVoucher"
	case oid.Equal(OIDSZTPConveyedInfoXML):
		return "id-ct-sztpConveyedInfoXML"
	case oid.Equal(OIDSZTPConveyedInfoJSON):
		return "id-ct-sztpConveyedInfoJSON"
	}
	return oid.String()
}

// IsConveyedInfoType reports whether oid may label conveyed information:
// .42 (XML), .43 (JSON) or id-data (encoding sniffed from the content).
func IsConveyedInfoType(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(OIDData) || oid.Equal(OIDSZTPConveyedInfoJSON) || oid.Equal(OIDSZTPConveyedInfoXML)
}

// UnsignedContent returns the octets of an unsigned, unencrypted ContentInfo
// whose content type is .42, .43 or id-data (RFC 8572 §3.1), with that type.
// Signed or encrypted shapes are reported as such so the caller can decide
// what its trust state allows.
func UnsignedContent(der []byte) ([]byte, asn1.ObjectIdentifier, error) {
	ci, err := ParseContentInfo(der)
	if err != nil {
		return nil, nil, err
	}
	if !IsConveyedInfoType(ci.ContentType) {
		return nil, ci.ContentType, fmt.Errorf("%w: %s", errNotConveyedInfoType, Name(ci.ContentType))
	}
	var octets []byte
	rest, err := asn1.Unmarshal(ci.Content.Bytes, &octets)
	if err != nil {
		return nil, ci.ContentType, fmt.Errorf("parsing %s content as OCTET STRING: %w", Name(ci.ContentType), err)
	}
	if len(rest) != 0 {
		return nil, ci.ContentType, fmt.Errorf("parsing %s content: %w", Name(ci.ContentType), errTrailingData)
	}
	return octets, ci.ContentType, nil
}

// MarshalData wraps content in a ContentInfo of the given type, the
// unsigned shape of RFC 8572 §3.1.
func MarshalData(contentType asn1.ObjectIdentifier, content []byte) ([]byte, error) {
	octets, err := asn1.Marshal(content)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(ContentInfo{ContentType: contentType, Content: asn1.RawValue{FullBytes: explicit0(octets)}})
}

// explicit0 wraps der in a [0] EXPLICIT constructed tag.
func explicit0(der []byte) []byte {
	b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der})
	return b
}

// SignedData is RFC 5652 §5.1 SignedData with the sets kept raw.
type SignedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	EncapContentInfo EncapsulatedContentInfo
	RawCertificates  asn1.RawValue `asn1:"optional,tag:0"`
	RawCRLs          asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

// EncapsulatedContentInfo is RFC 5652 §5.2.
type EncapsulatedContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

// ParseSignedData decodes a ContentInfo that must hold SignedData.
func ParseSignedData(der []byte) (*SignedData, error) {
	ci, err := ParseContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !ci.ContentType.Equal(OIDSignedData) {
		return nil, fmt.Errorf("parsing SignedData: content type is %s", Name(ci.ContentType))
	}
	var sd SignedData
	rest, err := asn1.Unmarshal(ci.Content.Bytes, &sd)
	if err != nil {
		return nil, fmt.Errorf("parsing SignedData: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("parsing SignedData: %w", errTrailingData)
	}
	return &sd, nil
}

// Certificates returns the X.509 certificates of the SignedData's
// certificates set, in the order they appear. Other certificate choices
// (attribute certificates, "other") are skipped.
func (sd *SignedData) Certificates() ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := sd.RawCertificates.Bytes
	for len(rest) > 0 {
		var raw asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &raw)
		if err != nil {
			return nil, fmt.Errorf("parsing SignedData certificates: %w", err)
		}
		if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence {
			continue
		}
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("parsing SignedData certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// CRLs returns the DER of each CertificateList in the SignedData's crls set.
func (sd *SignedData) CRLs() ([][]byte, error) {
	var crls [][]byte
	rest := sd.RawCRLs.Bytes
	for len(rest) > 0 {
		var raw asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &raw)
		if err != nil {
			return nil, fmt.Errorf("parsing SignedData crls: %w", err)
		}
		if raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence {
			crls = append(crls, raw.FullBytes)
		}
	}
	return crls, nil
}

// ParseCertificateBag returns the certificates of a CMS certificate bag, the
// shape of RFC 8572's owner-certificate and trust-anchor artifacts: SignedData
// whose signerInfos are usually empty ("degenerate"). A non-degenerate bag is
// accepted too (google/open-sztp sends one); its signatures are not checked
// here because the bag's meaning comes from path validation, not a signer.
func ParseCertificateBag(der []byte) ([]*x509.Certificate, error) {
	sd, err := ParseSignedData(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate bag: %w", err)
	}
	certs, err := sd.Certificates()
	if err != nil {
		return nil, fmt.Errorf("parsing certificate bag: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("parsing certificate bag: it holds no certificate")
	}
	return certs, nil
}

// MarshalCertificateBag builds a degenerate SignedData holding certs (the
// equivalent of `openssl crl2pkcs7 -nocrl`).
func MarshalCertificateBag(certs []*x509.Certificate) ([]byte, error) {
	var buf bytes.Buffer
	for _, c := range certs {
		buf.Write(c.Raw)
	}
	emptySet := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true}
	sd := SignedData{
		Version:          1,
		DigestAlgorithms: emptySet,
		EncapContentInfo: EncapsulatedContentInfo{EContentType: OIDData},
		RawCertificates:  asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: buf.Bytes()},
		SignerInfos:      emptySet,
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(ContentInfo{ContentType: OIDSignedData, Content: asn1.RawValue{FullBytes: explicit0(inner)}})
}
