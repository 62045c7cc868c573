package lab

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// This file writes the CMS (RFC 5652) structures of the signed and
// encrypted SZTP artifacts. It is the lab's own encoder, deliberately
// independent of the agent's reader in agent/cms, so that a bug shared by
// both sides cannot hide; openssl checks it in the tests.

// Algorithm and attribute OIDs (RFC 5652, RFC 5754, RFC 4055, RFC 5753,
// RFC 3565, RFC 3394).
var (
	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

	oidSHA256             = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECPublicKey        = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidRSAESOAEP          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidStdDHSHA256KDF     = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1} // dhSinglePass-stdDH-sha256kdf-scheme
	oidAES256Wrap         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	oidAES256CBC          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAuthorityKeyIDExt  = asn1.ObjectIdentifier{2, 5, 29, 35}
	asn1NullParams        = asn1.RawValue{FullBytes: []byte{asn1.TagNull, 0}}
	sha256AlgID           = pkix.AlgorithmIdentifier{Algorithm: oidSHA256} // parameters absent (RFC 5754 §2)
	errUnsupportedKeyType = errors.New("unsupported key type")
)

// cek256Len is the AES-256 content-encryption key length.
const cek256Len = 32

// The ASN.1 shapes written here. Sets are carried as asn1.RawValue because
// DER orders SET OF elements and encoding/asn1 does not: derSet does it.
// encoding/asn1 writes a RawValue with its own class and tag and ignores
// struct-tag tagging for it, so tagged RawValues are built with their final
// tag (retag, implicitSet, explicit).

// contentInfo's Content is the [0] EXPLICIT element itself: encoding/asn1
// does not add an explicit tag around a RawValue, so it is built by hand.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional"` // [0] IMPLICIT SET OF, tagged by implicitSet
	CRLs             asn1.RawValue `asn1:"optional"` // [1] IMPLICIT SET OF, idem
	SignerInfos      asn1.RawValue
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"optional"` // [0] EXPLICIT OCTET STRING, tagged by hand
}

type signerInfo struct {
	Version            int
	SID                issuerAndSerialNumber
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue // [0] IMPLICIT SET OF Attribute, tagged by hand
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
}

type issuerAndSerialNumber struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF, one value here
}

type envelopedData struct {
	Version              int
	RecipientInfos       asn1.RawValue
	EncryptedContentInfo encryptedContentInfo
}

type encryptedContentInfo struct {
	ContentType      asn1.ObjectIdentifier
	Algorithm        pkix.AlgorithmIdentifier
	EncryptedContent asn1.RawValue // [0] IMPLICIT OCTET STRING, tagged by hand
}

type keyTransRecipientInfo struct {
	Version      int
	RID          issuerAndSerialNumber
	KeyEncAlg    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

// keyAgreeRecipientInfo is written as a SEQUENCE and re-tagged [1] IMPLICIT
// when it becomes a RecipientInfo CHOICE.
type keyAgreeRecipientInfo struct {
	Version    int
	Originator asn1.RawValue // [0] EXPLICIT, built by hand
	KeyEncAlg  pkix.AlgorithmIdentifier
	Keys       []recipientEncryptedKey
}

type recipientEncryptedKey struct {
	RID          issuerAndSerialNumber
	EncryptedKey []byte
}

type originatorPublicKey struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// eccCMSSharedInfo is RFC 5753 §7.2 ECC-CMS-SharedInfo, the X9.63 KDF's
// SharedInfo.
type eccCMSSharedInfo struct {
	KeyInfo     pkix.AlgorithmIdentifier
	SuppPubInfo []byte `asn1:"explicit,tag:2"`
}

type rsaesOAEPParams struct {
	Hash pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF  pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
}

// SignData builds a DER ContentInfo holding SignedData (RFC 5652 §5) over
// content: one SignerInfo (version 1, sid issuerAndSerialNumber) by signer,
// SHA-256, signed attributes content-type, message-digest and signing-time,
// and an ECDSA or RSA PKCS#1 v1.5 signature. The certificates set holds
// signer and extraCerts. The SignedData version is 1 for id-data and 3 for
// any other eContentType, as RFC 5652 §5.1 requires (and openssl writes).
func SignData(eContentType asn1.ObjectIdentifier, content []byte, signer *x509.Certificate, key crypto.Signer, extraCerts []*x509.Certificate) ([]byte, error) {
	return signDataAt(time.Now(), eContentType, content, signer, key, extraCerts)
}

func signDataAt(now time.Time, eContentType asn1.ObjectIdentifier, content []byte, signer *x509.Certificate, key crypto.Signer, extraCerts []*x509.Certificate) ([]byte, error) {
	if signer == nil || key == nil {
		return nil, errors.New("signing CMS data: no signer certificate or key")
	}
	if err := checkKeyMatches(signer, key); err != nil {
		return nil, fmt.Errorf("signing CMS data: %w", err)
	}
	var sigAlg pkix.AlgorithmIdentifier
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		// RFC 5758 §3.2: ecdsa-with-SHA256 has absent parameters.
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}
	case *rsa.PublicKey:
		// RFC 4055 §5: the sha*WithRSAEncryption parameters are NULL.
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1NullParams}
	default:
		return nil, fmt.Errorf("signing CMS data with a %T key: %w", key.Public(), errUnsupportedKeyType)
	}

	digest := sha256.Sum256(content)
	attrs, err := signedAttributes(eContentType, digest[:], now)
	if err != nil {
		return nil, fmt.Errorf("signing CMS data: %w", err)
	}
	// The signature covers the attributes' DER as a SET OF (tag 0x31), not
	// the [0] IMPLICIT tag they travel under (RFC 5652 §5.4).
	attrsDigest := sha256.Sum256(attrs)
	sig, err := key.Sign(rand.Reader, attrsDigest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing CMS data: %w", err)
	}
	implicitAttrs, err := retag(attrs, 0)
	if err != nil {
		return nil, fmt.Errorf("signing CMS data: %w", err)
	}
	si := signerInfo{
		Version:            1, // sid is issuerAndSerialNumber
		SID:                sidOf(signer),
		DigestAlgorithm:    sha256AlgID,
		SignedAttrs:        implicitAttrs,
		SignatureAlgorithm: sigAlg,
		Signature:          sig,
	}
	siDER, err := asn1.Marshal(si)
	if err != nil {
		return nil, fmt.Errorf("encoding SignerInfo: %w", err)
	}
	octets, err := asn1.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encoding eContent: %w", err)
	}
	certs := append([]*x509.Certificate{signer}, extraCerts...)
	return marshalSignedData(eContentType, octets, certs, nil, [][]byte{siDER})
}

// signedAttributes returns the DER SET OF the three mandatory-in-practice
// signed attributes, in DER (sorted) order: openssl re-encodes the set
// before hashing it, so an unsorted set would not verify there.
func signedAttributes(eContentType asn1.ObjectIdentifier, digest []byte, now time.Time) ([]byte, error) {
	values := []struct {
		oid asn1.ObjectIdentifier
		v   any
	}{
		{oidAttrContentType, eContentType},
		{oidAttrMessageDigest, digest},
		// encoding/asn1 picks UTCTime for 1950-2049 and GeneralizedTime
		// outside, as RFC 5652 §11.3 requires.
		{oidAttrSigningTime, now.UTC().Truncate(time.Second)},
	}
	var encoded [][]byte
	for _, a := range values {
		v, err := asn1.Marshal(a.v)
		if err != nil {
			return nil, fmt.Errorf("encoding attribute %s: %w", a.oid, err)
		}
		der, err := asn1.Marshal(attribute{Type: a.oid, Values: derSet([][]byte{v})})
		if err != nil {
			return nil, fmt.Errorf("encoding attribute %s: %w", a.oid, err)
		}
		encoded = append(encoded, der)
	}
	set := derSet(encoded)
	return asn1.Marshal(set)
}

// marshalSignedData assembles a SignedData ContentInfo. eContent is the DER
// OCTET STRING of the content, or nil for a degenerate (certificate-only)
// SignedData; signerInfos are DER SignerInfos.
func marshalSignedData(eContentType asn1.ObjectIdentifier, eContent []byte, certs []*x509.Certificate, crls [][]byte, signerInfos [][]byte) ([]byte, error) {
	version := 1
	if !eContentType.Equal(cms.OIDData) {
		version = 3
	}
	var digestAlgs [][]byte
	if len(signerInfos) > 0 {
		alg, err := asn1.Marshal(sha256AlgID)
		if err != nil {
			return nil, fmt.Errorf("encoding digest algorithm: %w", err)
		}
		digestAlgs = [][]byte{alg}
	}
	sd := signedData{
		Version:          version,
		DigestAlgorithms: derSet(digestAlgs),
		EncapContentInfo: encapContentInfo{EContentType: eContentType},
		SignerInfos:      derSet(signerInfos),
	}
	if eContent != nil {
		sd.EncapContentInfo.EContent = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: eContent}
	}
	if len(certs) > 0 {
		var raws [][]byte
		for _, c := range certs {
			raws = append(raws, c.Raw)
		}
		sd.Certificates = implicitSet(0, raws)
	}
	if len(crls) > 0 {
		sd.CRLs = implicitSet(1, crls)
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("encoding SignedData: %w", err)
	}
	return marshalContentInfo(cms.OIDSignedData, inner)
}

// certificateBag builds a degenerate SignedData (no signer, no content)
// holding certs and, unlike cms.MarshalCertificateBag, CRLs: the shape of
// an owner-certificate artifact with stapled revocation data (RFC 8572
// §3.2).
func certificateBag(certs []*x509.Certificate, crls [][]byte) ([]byte, error) {
	der, err := marshalSignedData(cms.OIDData, nil, certs, crls, nil)
	if err != nil {
		return nil, fmt.Errorf("building certificate bag: %w", err)
	}
	return der, nil
}

func marshalContentInfo(contentType asn1.ObjectIdentifier, inner []byte) ([]byte, error) {
	der, err := asn1.Marshal(contentInfo{
		ContentType: contentType,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding ContentInfo: %w", err)
	}
	return der, nil
}

// EncryptOptions tunes EncryptWithOptions.
type EncryptOptions struct {
	// RSAOAEP makes RSA key transport use RSAES-OAEP with SHA-256 (and
	// MGF1-SHA-256) instead of RSAES-PKCS1-v1_5. EC recipients ignore it.
	RSAOAEP bool
}

// EncryptTo builds a DER ContentInfo holding EnvelopedData (RFC 5652 §6)
// that only recipient's private key opens: AES-256-CBC content encryption,
// and the content-encryption key delivered by RSAES-PKCS1-v1_5 key
// transport for an RSA certificate, or by ephemeral-static ECDH
// (dhSinglePass-stdDH-sha256kdf-scheme, X9.63 KDF, AES-256 key wrap) for an
// EC certificate. encryptedContentInfo.contentType is contentType: RFC 8572
// signs before it encrypts, so wrapping a signed artifact passes
// cms.OIDSignedData and content is that artifact's DER.
func EncryptTo(content []byte, recipient *x509.Certificate, contentType asn1.ObjectIdentifier) ([]byte, error) {
	return EncryptWithOptions(content, recipient, contentType, EncryptOptions{})
}

// EncryptWithOptions is EncryptTo with a choice of RSA key transport.
func EncryptWithOptions(content []byte, recipient *x509.Certificate, contentType asn1.ObjectIdentifier, opts EncryptOptions) ([]byte, error) {
	if recipient == nil {
		return nil, errors.New("encrypting CMS data: no recipient certificate")
	}
	cek := make([]byte, cek256Len)
	if _, err := rand.Read(cek); err != nil {
		return nil, fmt.Errorf("encrypting CMS data: making the content key: %w", err)
	}
	var ri []byte
	version := 0
	var err error
	switch pub := recipient.PublicKey.(type) {
	case *rsa.PublicKey:
		ri, err = keyTransport(pub, recipient, cek, opts.RSAOAEP)
	case *ecdsa.PublicKey:
		// A KeyAgreeRecipientInfo is version 3, which makes the
		// EnvelopedData version 2 (RFC 5652 §6.1).
		ri, err = keyAgreement(pub, recipient, cek)
		version = 2
	default:
		err = fmt.Errorf("recipient has a %T key: %w", recipient.PublicKey, errUnsupportedKeyType)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypting CMS data to %q: %w", recipient.Subject, err)
	}

	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("encrypting CMS data: making the IV: %w", err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("encrypting CMS data: %w", err)
	}
	// PKCS#7 padding (RFC 5652 §6.3): always 1 to 16 bytes.
	pad := aes.BlockSize - len(content)%aes.BlockSize
	padded := append(slices.Clone(content), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)
	ivParam, err := asn1.Marshal(iv)
	if err != nil {
		return nil, fmt.Errorf("encoding the IV: %w", err)
	}
	ed := envelopedData{
		Version:        version,
		RecipientInfos: derSet([][]byte{ri}),
		EncryptedContentInfo: encryptedContentInfo{
			ContentType: contentType,
			Algorithm:   pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivParam}},
			// [0] IMPLICIT OCTET STRING, primitive in DER.
			EncryptedContent: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: padded},
		},
	}
	inner, err := asn1.Marshal(ed)
	if err != nil {
		return nil, fmt.Errorf("encoding EnvelopedData: %w", err)
	}
	return marshalContentInfo(cms.OIDEnvelopedData, inner)
}

// keyTransport returns a DER KeyTransRecipientInfo (RFC 5652 §6.2.1)
// carrying cek encrypted to pub.
func keyTransport(pub *rsa.PublicKey, recipient *x509.Certificate, cek []byte, oaep bool) ([]byte, error) {
	ktri := keyTransRecipientInfo{Version: 0, RID: sidOf(recipient)}
	var err error
	if oaep {
		// RFC 4055 §4.1: SHA-256 must be named explicitly (the default is
		// SHA-1), and MGF1 follows the same hash, as openssl does for
		// rsa_oaep_md:sha256.
		sha256NullParams := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1NullParams}
		mgfParams, merr := asn1.Marshal(sha256NullParams)
		if merr != nil {
			return nil, fmt.Errorf("encoding MGF1 parameters: %w", merr)
		}
		params, merr := asn1.Marshal(rsaesOAEPParams{
			Hash: sha256NullParams,
			MGF:  pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mgfParams}},
		})
		if merr != nil {
			return nil, fmt.Errorf("encoding RSAES-OAEP parameters: %w", merr)
		}
		ktri.KeyEncAlg = pkix.AlgorithmIdentifier{Algorithm: oidRSAESOAEP, Parameters: asn1.RawValue{FullBytes: params}}
		ktri.EncryptedKey, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	} else {
		ktri.KeyEncAlg = pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1NullParams}
		ktri.EncryptedKey, err = rsa.EncryptPKCS1v15(rand.Reader, pub, cek)
	}
	if err != nil {
		return nil, fmt.Errorf("RSA key transport: %w", err)
	}
	der, err := asn1.Marshal(ktri)
	if err != nil {
		return nil, fmt.Errorf("encoding KeyTransRecipientInfo: %w", err)
	}
	return der, nil
}

// keyAgreement returns a DER KeyAgreeRecipientInfo (RFC 5652 §6.2.2, RFC
// 5753 §3.1) under its [1] IMPLICIT RecipientInfo tag: a fresh ephemeral key
// on the recipient's curve, Z = ECDH(ephemeral, recipient), KEK = X9.63
// KDF-SHA-256(Z, ECC-CMS-SharedInfo), cek wrapped with AES-256 key wrap.
func keyAgreement(pub *ecdsa.PublicKey, recipient *x509.Certificate, cek []byte) ([]byte, error) {
	recipPub, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("using the recipient key for ECDH: %w", err)
	}
	ephemeral, err := recipPub.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the ephemeral ECDH key: %w", err)
	}
	z, err := ephemeral.ECDH(recipPub)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %w", err)
	}
	wrapAlg := pkix.AlgorithmIdentifier{Algorithm: oidAES256Wrap} // AES wrap: parameters absent (RFC 3565 §2.3.2)
	var bits [4]byte
	binary.BigEndian.PutUint32(bits[:], cek256Len*8)
	shared, err := asn1.Marshal(eccCMSSharedInfo{KeyInfo: wrapAlg, SuppPubInfo: bits[:]})
	if err != nil {
		return nil, fmt.Errorf("encoding ECC-CMS-SharedInfo: %w", err)
	}
	kek := x963KDFSHA256(z, shared, cek256Len)
	wrapped, err := aesKeyWrap(kek, cek)
	if err != nil {
		return nil, err
	}

	// originatorKey [1] IMPLICIT OriginatorPublicKey, inside the
	// originator's [0] EXPLICIT tag. RFC 5753 allows absent parameters for
	// id-ecPublicKey here: the curve is the recipient's.
	opk, err := asn1.Marshal(originatorPublicKey{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey},
		PublicKey: asn1.BitString{Bytes: ephemeral.PublicKey().Bytes(), BitLength: 8 * len(ephemeral.PublicKey().Bytes())},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding originatorKey: %w", err)
	}
	wrapParams, err := asn1.Marshal(wrapAlg)
	if err != nil {
		return nil, fmt.Errorf("encoding the key wrap algorithm: %w", err)
	}
	originatorKey, err := retag(opk, 1)
	if err != nil {
		return nil, err
	}
	originatorKeyDER, err := asn1.Marshal(originatorKey)
	if err != nil {
		return nil, fmt.Errorf("encoding originatorKey: %w", err)
	}
	originator, err := explicit(0, originatorKeyDER)
	if err != nil {
		return nil, fmt.Errorf("encoding originator: %w", err)
	}
	kari := keyAgreeRecipientInfo{
		Version:    3,
		Originator: asn1.RawValue{FullBytes: originator},
		KeyEncAlg:  pkix.AlgorithmIdentifier{Algorithm: oidStdDHSHA256KDF, Parameters: asn1.RawValue{FullBytes: wrapParams}},
		Keys:       []recipientEncryptedKey{{RID: sidOf(recipient), EncryptedKey: wrapped}},
	}
	der, err := asn1.Marshal(kari)
	if err != nil {
		return nil, fmt.Errorf("encoding KeyAgreeRecipientInfo: %w", err)
	}
	// RecipientInfo CHOICE: kari [1] IMPLICIT KeyAgreeRecipientInfo.
	ri, err := retag(der, 1)
	if err != nil {
		return nil, err
	}
	if der, err = asn1.Marshal(ri); err != nil {
		return nil, fmt.Errorf("encoding KeyAgreeRecipientInfo: %w", err)
	}
	return der, nil
}

// x963KDFSHA256 is the ANSI X9.63 KDF with SHA-256: SHA-256(Z || counter ||
// SharedInfo) blocks, the counter a 32-bit big-endian integer from 1.
func x963KDFSHA256(z, sharedInfo []byte, n int) []byte {
	var out []byte
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		h := sha256.New()
		h.Write(z)
		h.Write(ctr[:])
		h.Write(sharedInfo)
		out = h.Sum(out)
	}
	return out[:n]
}

// aesKeyWrap is RFC 3394 §2.2.1 key wrap with the default IV A6A6A6A6A6A6A6A6.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, fmt.Errorf("AES key wrap: key length %d is not a multiple of 8 of at least 16", len(key))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("AES key wrap: %w", err)
	}
	n := len(key) / 8
	a := []byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}
	r := slices.Clone(key)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf[:8], a)
			copy(buf[8:], r[i*8:(i+1)*8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i*8:], buf[8:])
		}
	}
	return append(a, r...), nil
}

// sidOf names cert by issuer and serial number, the identifier every CMS
// implementation understands.
func sidOf(cert *x509.Certificate) issuerAndSerialNumber {
	return issuerAndSerialNumber{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber}
}

// derSet returns the SET OF the given DER elements in DER order (X.690
// §11.6: ascending as octet strings).
func derSet(elems [][]byte) asn1.RawValue {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: bytes.Join(sorted, nil)}
}

// implicitSet is derSet under a [tag] IMPLICIT context tag.
func implicitSet(tag int, elems [][]byte) asn1.RawValue {
	s := derSet(elems)
	s.Class, s.Tag = asn1.ClassContextSpecific, tag
	return s
}

// retag returns a constructed DER element with its tag replaced by a
// context-specific one (IMPLICIT tagging), as a RawValue ready to marshal.
func retag(der []byte, tag int) (asn1.RawValue, error) {
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return asn1.RawValue{}, fmt.Errorf("re-tagging DER: %w", err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: raw.Bytes}, nil
}

// explicit returns der wrapped in a [tag] EXPLICIT element. encoding/asn1
// cannot add an explicit tag around a RawValue by itself, so struct fields
// that need one carry the result in FullBytes.
func explicit(tag int, der []byte) ([]byte, error) {
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: der})
}

// authorityKeyIDExtension returns the DER extnValue of cert's Authority Key
// Identifier extension (the whole AuthorityKeyIdentifier SEQUENCE), which
// RFC 8366bis puts in idevid-issuer; nil if cert has none.
func authorityKeyIDExtension(cert *x509.Certificate) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidAuthorityKeyIDExt) {
			return e.Value
		}
	}
	return nil
}
