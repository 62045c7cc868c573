package cms

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	// ErrDecryption is the one error for every failure that depends on the
	// key or on the ciphertext (RSA padding, key unwrap, CBC padding, GCM
	// tag). Keeping them indistinguishable avoids handing a peer a padding
	// oracle.
	ErrDecryption = errors.New("wrong key or corrupt data")
	// ErrNotForRecipient: no RecipientInfo names the given certificate.
	ErrNotForRecipient = errors.New("no recipient info for this certificate")
	// ErrKeyType: the key cannot serve the recipient info addressed to the
	// certificate (e.g. an RSA key for a key-agreement recipient).
	ErrKeyType = errors.New("key type does not fit the recipient info")
)

// KeyAgreer is a private key that can do ECDH, e.g. *ecdh.PrivateKey or a
// TPM key through TPM2_ECDH_ZGen. It returns the shared secret Z (the
// x-coordinate, as crypto/ecdh does). The curve is taken from the recipient
// certificate, so implementations need nothing else.
type KeyAgreer interface {
	ECDH(remote *ecdh.PublicKey) ([]byte, error)
}

// NewECDSAKeyAgreer adapts an ECDSA private key (the type x509 parses EC
// keys into) to KeyAgreer. Decrypt applies it by itself to *ecdsa.PrivateKey.
func NewECDSAKeyAgreer(k *ecdsa.PrivateKey) (KeyAgreer, error) {
	if k == nil {
		return nil, errors.New("adapting ECDSA key for ECDH: nil key")
	}
	ek, err := k.ECDH()
	if err != nil {
		return nil, fmt.Errorf("adapting ECDSA key for ECDH: %w", err)
	}
	return ek, nil
}

// Key-management and content-encryption OIDs (RFC 3560, RFC 5753, RFC 3565,
// RFC 5084, RFC 3394).
var (
	oidRSAESOAEP  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidPSpecified = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}

	oidStdDHSHA1KDF        = asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 2}
	oidStdDHSHA256KDF      = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 1}
	oidStdDHSHA384KDF      = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 2}
	oidStdDHSHA512KDF      = asn1.ObjectIdentifier{1, 3, 132, 1, 11, 3}
	oidCofactorDHSHA1KDF   = asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 3}
	oidCofactorDHSHA256KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 1}
	oidCofactorDHSHA384KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 2}
	oidCofactorDHSHA512KDF = asn1.ObjectIdentifier{1, 3, 132, 1, 14, 3}

	oidAES128Wrap = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 5}
	oidAES192Wrap = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 25}
	oidAES256Wrap = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}

	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidAES128GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidAES192GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 26}
	oidAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
)

// envelopedData is RFC 5652 §6.1 EnvelopedData, sets kept raw.
type envelopedData struct {
	Version              int
	OriginatorInfo       asn1.RawValue `asn1:"optional,tag:0"`
	RecipientInfos       asn1.RawValue
	EncryptedContentInfo encryptedContentInfo
	UnprotectedAttrs     asn1.RawValue `asn1:"optional,tag:1"`
}

// authEnvelopedData is RFC 5083 §2.1 AuthEnvelopedData.
type authEnvelopedData struct {
	Version              int
	OriginatorInfo       asn1.RawValue `asn1:"optional,tag:0"`
	RecipientInfos       asn1.RawValue
	EncryptedContentInfo encryptedContentInfo
	AuthAttrs            asn1.RawValue `asn1:"optional,tag:1"`
	MAC                  []byte
	UnauthAttrs          asn1.RawValue `asn1:"optional,tag:2"`
}

// encryptedContentInfo is RFC 5652 §6.1 EncryptedContentInfo. The content
// is [0] IMPLICIT OCTET STRING, primitive in DER, constructed if streamed.
type encryptedContentInfo struct {
	ContentType      asn1.ObjectIdentifier
	Algorithm        pkix.AlgorithmIdentifier
	EncryptedContent asn1.RawValue `asn1:"optional,tag:0"`
}

type keyTransRecipientInfo struct {
	Version      int
	RID          asn1.RawValue
	KeyEncAlg    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

// keyAgreeRecipientInfo is RFC 5652 §6.2.2, received under an [1] IMPLICIT
// tag, which the caller strips by re-tagging to SEQUENCE.
type keyAgreeRecipientInfo struct {
	Version    int
	Originator asn1.RawValue `asn1:"explicit,tag:0"`
	UKM        []byte        `asn1:"optional,explicit,tag:1"`
	KeyEncAlg  pkix.AlgorithmIdentifier
	Keys       []recipientEncryptedKey
}

type recipientEncryptedKey struct {
	RID          asn1.RawValue
	EncryptedKey []byte
}

type originatorPublicKey struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// eccCMSSharedInfo is RFC 5753 §7.2 ECC-CMS-SharedInfo, the KDF's
// SharedInfo input.
type eccCMSSharedInfo struct {
	KeyInfo     pkix.AlgorithmIdentifier
	EntityUInfo []byte `asn1:"optional,explicit,tag:0"`
	SuppPubInfo []byte `asn1:"explicit,tag:2"`
}

type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

// Decrypt opens an EnvelopedData (or AuthEnvelopedData, RFC 5083)
// ContentInfo addressed to cert, using key.
//
// key is a crypto.Decrypter for RSA key transport (PKCS#1 v1.5 or OAEP; a
// TPM key can serve), or for ECDH key agreement a KeyAgreer (including
// *ecdh.PrivateKey) or an *ecdsa.PrivateKey. It returns the inner content
// octets and the encryptedContentInfo contentType (openssl always writes
// id-data there; RFC 8572 sign-then-encrypt should say id-signedData).
func Decrypt(der []byte, cert *x509.Certificate, key any) (content []byte, contentType asn1.ObjectIdentifier, err error) {
	defer recoverTo("decrypting CMS", &err)
	return decrypt(der, cert, key)
}

func decrypt(der []byte, cert *x509.Certificate, key any) ([]byte, asn1.ObjectIdentifier, error) {
	if cert == nil || key == nil {
		return nil, nil, errors.New("decrypting CMS: certificate and key are required")
	}
	ci, err := ParseContentInfo(der)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypting CMS: %w", err)
	}
	var (
		recipients asn1.RawValue
		eci        encryptedContentInfo
		rest       []byte
		auth       *authEnvelopedData
	)
	switch {
	case ci.ContentType.Equal(OIDEnvelopedData):
		var ed envelopedData
		rest, err = asn1.Unmarshal(ci.Content.Bytes, &ed)
		recipients, eci = ed.RecipientInfos, ed.EncryptedContentInfo
	case ci.ContentType.Equal(OIDAuthEnvelopedData):
		auth = new(authEnvelopedData)
		rest, err = asn1.Unmarshal(ci.Content.Bytes, auth)
		recipients, eci = auth.RecipientInfos, auth.EncryptedContentInfo
	default:
		return nil, nil, fmt.Errorf("decrypting CMS: content type is %s, not enveloped data", Name(ci.ContentType))
	}
	what := Name(ci.ContentType)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", what, err)
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("parsing %s: %w", what, errTrailingData)
	}
	if len(eci.EncryptedContent.FullBytes) == 0 {
		return nil, nil, fmt.Errorf("parsing %s: encrypted content is absent", what)
	}
	var ciphertext []byte
	if eci.EncryptedContent.IsCompound {
		if ciphertext, err = joinSegments(eci.EncryptedContent.Bytes); err != nil {
			return nil, nil, fmt.Errorf("parsing %s encrypted content: %w", what, err)
		}
	} else {
		ciphertext = eci.EncryptedContent.Bytes
	}

	// Check the content algorithm before touching the key, so an
	// unsupported message costs no private-key operation.
	ce, err := contentCipher(eci.Algorithm, auth != nil)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypting %s: %w", what, err)
	}
	cek, err := recoverCEK(recipients, cert, key, ce.keyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypting %s: %w", what, err)
	}
	var plain []byte
	if auth != nil {
		aad, err := authAAD(auth, eci.ContentType)
		if err != nil {
			return nil, nil, fmt.Errorf("decrypting %s: %w", what, err)
		}
		plain, err = ce.openGCM(cek, ciphertext, auth.MAC, aad)
		if err != nil {
			return nil, nil, fmt.Errorf("decrypting %s: %w", what, err)
		}
	} else {
		plain, err = ce.openCBC(cek, ciphertext)
		if err != nil {
			return nil, nil, fmt.Errorf("decrypting %s: %w", what, err)
		}
	}
	return plain, eci.ContentType, nil
}

// authAAD returns the GCM additional data: the authAttrs re-tagged as a
// SET OF (RFC 5083 §2.2), whose content-type, if given, must match.
func authAAD(a *authEnvelopedData, ctype asn1.ObjectIdentifier) ([]byte, error) {
	if len(a.AuthAttrs.FullBytes) == 0 {
		return nil, nil
	}
	if !a.AuthAttrs.IsCompound {
		return nil, errors.New("parsing authAttrs: not constructed")
	}
	attrs, err := parseAttributes(a.AuthAttrs.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing authAttrs: %w", err)
	}
	// RFC 5083 §2.1: when authAttrs are present, content-type is mandatory.
	v, ok, err := singleAttr(attrs, oidAttrContentType)
	if err != nil {
		return nil, fmt.Errorf("parsing authAttrs: %w", err)
	}
	if !ok {
		return nil, errors.New("parsing authAttrs: content-type attribute is missing")
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(v.FullBytes, &oid); err != nil {
		return nil, fmt.Errorf("parsing authAttrs content-type: %w", err)
	}
	if !oid.Equal(ctype) {
		return nil, fmt.Errorf("authAttrs: %w", ErrContentTypeMismatch)
	}
	return append([]byte{0x31}, a.AuthAttrs.FullBytes[1:]...), nil
}

// contentEncryption is a parsed contentEncryptionAlgorithm.
type contentEncryption struct {
	keyLen int
	iv     []byte // CBC IV or GCM nonce
	tagLen int    // GCM only
}

// contentCipher accepts AES-CBC for EnvelopedData and AES-GCM for
// AuthEnvelopedData only: GCM inside EnvelopedData is a non-standard
// shape, and CBC inside AuthEnvelopedData would claim an integrity it lacks.
func contentCipher(alg pkix.AlgorithmIdentifier, authenticated bool) (*contentEncryption, error) {
	var keyLen int
	var gcm bool
	switch oid := alg.Algorithm; {
	case oid.Equal(oidAES128CBC):
		keyLen = 16
	case oid.Equal(oidAES192CBC):
		keyLen = 24
	case oid.Equal(oidAES256CBC):
		keyLen = 32
	case oid.Equal(oidAES128GCM):
		keyLen, gcm = 16, true
	case oid.Equal(oidAES192GCM):
		keyLen, gcm = 24, true
	case oid.Equal(oidAES256GCM):
		keyLen, gcm = 32, true
	default:
		return nil, &UnsupportedAlgorithmError{Role: "content encryption", OID: oid}
	}
	if gcm != authenticated {
		return nil, &UnsupportedAlgorithmError{Role: "content encryption", OID: alg.Algorithm,
			Reason: "AES-GCM belongs in AuthEnvelopedData and AES-CBC in EnvelopedData"}
	}
	ce := &contentEncryption{keyLen: keyLen}
	if !gcm {
		rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &ce.iv)
		if err != nil || len(rest) != 0 || len(ce.iv) != aes.BlockSize {
			return nil, errors.New("parsing AES-CBC parameters: want a 16-byte IV")
		}
		return ce, nil
	}
	var p gcmParameters
	rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("parsing GCMParameters: malformed")
	}
	// Go's GCM with a custom tag size needs the standard 12-byte nonce, the
	// size RFC 5084 recommends and every encoder we know uses.
	if len(p.Nonce) != 12 {
		return nil, fmt.Errorf("parsing GCMParameters: %d-byte nonce, only 12 is supported", len(p.Nonce))
	}
	if p.ICVLen < 12 || p.ICVLen > 16 {
		return nil, fmt.Errorf("parsing GCMParameters: ICV length %d, want 12..16", p.ICVLen)
	}
	ce.iv, ce.tagLen = p.Nonce, p.ICVLen
	return ce, nil
}

func (ce *contentEncryption) openCBC(key, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrDecryption
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrDecryption
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ce.iv).CryptBlocks(out, ct)
	return pkcs7Unpad(out)
}

// pkcs7Unpad strips PKCS#7 padding. It inspects the whole last block with
// the same operations whatever the pad length, so the time taken does not
// say which pad byte was wrong; any bad padding is ErrDecryption.
func pkcs7Unpad(b []byte) ([]byte, error) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return nil, ErrDecryption
	}
	last := b[len(b)-aes.BlockSize:]
	n := int(last[aes.BlockSize-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		// Byte i (counting back from the end) is padding when i < n.
		inPad := subtle.ConstantTimeLessOrEq(i+1, n)
		eq := subtle.ConstantTimeByteEq(last[aes.BlockSize-1-i], byte(n))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	if good != 1 {
		return nil, ErrDecryption
	}
	return b[:len(b)-n], nil
}

func (ce *contentEncryption) openGCM(key, ct, tag, aad []byte) ([]byte, error) {
	if len(tag) != ce.tagLen {
		return nil, ErrDecryption
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrDecryption
	}
	aead, err := cipher.NewGCMWithTagSize(block, ce.tagLen)
	if err != nil {
		return nil, fmt.Errorf("setting up AES-GCM: %w", err)
	}
	sealed := make([]byte, 0, len(ct)+len(tag))
	sealed = append(append(sealed, ct...), tag...)
	plain, err := aead.Open(nil, ce.iv, sealed, aad)
	if err != nil {
		return nil, ErrDecryption
	}
	return plain, nil
}

// recoverCEK finds the RecipientInfo addressed to cert and recovers the
// content-encryption key of length keyLen with key.
func recoverCEK(set asn1.RawValue, cert *x509.Certificate, key any, keyLen int) ([]byte, error) {
	if set.Class != asn1.ClassUniversal || set.Tag != asn1.TagSet || !set.IsCompound {
		return nil, errors.New("parsing recipientInfos: not a SET")
	}
	rest := set.Bytes
	for len(rest) > 0 {
		var ri asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &ri); err != nil {
			return nil, fmt.Errorf("parsing recipientInfos: %w", err)
		}
		switch {
		case ri.Class == asn1.ClassUniversal && ri.Tag == asn1.TagSequence:
			var kt keyTransRecipientInfo
			if r, err := asn1.Unmarshal(ri.FullBytes, &kt); err != nil || len(r) != 0 {
				return nil, fmt.Errorf("parsing KeyTransRecipientInfo: %w", orTrailing(err))
			}
			id, err := parseIdentifier(kt.RID, false)
			if err != nil {
				return nil, fmt.Errorf("parsing KeyTransRecipientInfo rid: %w", err)
			}
			if !id.matches(cert) {
				continue
			}
			return keyTransport(&kt, key, keyLen)
		case ri.Class == asn1.ClassContextSpecific && ri.Tag == 1 && ri.IsCompound:
			// [1] IMPLICIT SEQUENCE: re-tag so encoding/asn1 reads a SEQUENCE.
			seq := append([]byte{0x30}, ri.FullBytes[1:]...)
			var ka keyAgreeRecipientInfo
			if r, err := asn1.Unmarshal(seq, &ka); err != nil || len(r) != 0 {
				return nil, fmt.Errorf("parsing KeyAgreeRecipientInfo: %w", orTrailing(err))
			}
			for _, rek := range ka.Keys {
				id, err := parseIdentifier(rek.RID, true)
				if err != nil {
					return nil, fmt.Errorf("parsing KeyAgreeRecipientInfo rid: %w", err)
				}
				if id.matches(cert) {
					return keyAgreement(&ka, rek.EncryptedKey, cert, key, keyLen)
				}
			}
		default:
			// KEKRecipientInfo, PasswordRecipientInfo, OtherRecipientInfo:
			// never addressed to a device certificate; skip.
		}
	}
	return nil, fmt.Errorf("%w (%q)", ErrNotForRecipient, cert.Subject)
}

func orTrailing(err error) error {
	if err != nil {
		return err
	}
	return errTrailingData
}

// keyTransport decrypts the CEK with RSA (PKCS#1 v1.5 or OAEP). Every
// failure after the algorithm check is ErrDecryption, and a CEK of the
// wrong length is treated the same way.
func keyTransport(kt *keyTransRecipientInfo, key any, keyLen int) ([]byte, error) {
	dec, ok := key.(crypto.Decrypter)
	if !ok {
		return nil, fmt.Errorf("key transport recipient needs a crypto.Decrypter, got %T: %w", key, ErrKeyType)
	}
	if _, isRSA := dec.Public().(*rsa.PublicKey); !isRSA {
		return nil, fmt.Errorf("key transport recipient needs an RSA key, got %T: %w", dec.Public(), ErrKeyType)
	}
	var opts crypto.DecrypterOpts
	switch alg := kt.KeyEncAlg.Algorithm; {
	case alg.Equal(oidRSAEncryption):
		// No SessionKeyLen: with it a wrong key yields a random CEK, and
		// CBC (unauthenticated) would then return garbage about 1 time in
		// 256 instead of an error. The error is uniform either way.
		opts = &rsa.PKCS1v15DecryptOptions{}
	case alg.Equal(oidRSAESOAEP):
		o, err := parseOAEP(kt.KeyEncAlg.Parameters)
		if err != nil {
			return nil, err
		}
		opts = o
	default:
		return nil, &UnsupportedAlgorithmError{Role: "key encryption", OID: alg}
	}
	cek, err := dec.Decrypt(rand.Reader, kt.EncryptedKey, opts)
	if err != nil || len(cek) != keyLen {
		return nil, ErrDecryption
	}
	return cek, nil
}

// rsaesOAEPParams is RFC 4055 §4.1 RSAES-OAEP-params; absent fields mean
// SHA-1, MGF1-SHA-1 and an empty label.
type rsaesOAEPParams struct {
	Hash    pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF     pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	PSource pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:2"`
}

// oaepHash accepts SHA-1 here (unlike for signatures): OAEP's security does
// not rest on collision resistance, and SHA-1 is openssl's OAEP default.
func oaepHash(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	if len(oid) == 0 || oid.Equal(oidSHA1) {
		return crypto.SHA1, nil
	}
	return hashForOID("RSAES-OAEP hash", oid)
}

func parseOAEP(params asn1.RawValue) (*rsa.OAEPOptions, error) {
	var p rsaesOAEPParams
	if len(params.FullBytes) > 0 && !(params.Tag == asn1.TagNull && params.Class == asn1.ClassUniversal) {
		if r, err := asn1.Unmarshal(params.FullBytes, &p); err != nil || len(r) != 0 {
			return nil, fmt.Errorf("parsing RSAES-OAEP parameters: %w", orTrailing(err))
		}
	}
	h, err := oaepHash(p.Hash.Algorithm)
	if err != nil {
		return nil, err
	}
	mgfHash := crypto.SHA1
	if len(p.MGF.Algorithm) > 0 {
		if !p.MGF.Algorithm.Equal(oidMGF1) {
			return nil, &UnsupportedAlgorithmError{Role: "RSAES-OAEP mask generation", OID: p.MGF.Algorithm}
		}
		var mh pkix.AlgorithmIdentifier
		if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mh); err != nil {
			return nil, fmt.Errorf("parsing RSAES-OAEP MGF1 hash: %w", err)
		}
		if mgfHash, err = oaepHash(mh.Algorithm); err != nil {
			return nil, err
		}
	}
	var label []byte
	if len(p.PSource.Algorithm) > 0 {
		if !p.PSource.Algorithm.Equal(oidPSpecified) {
			return nil, &UnsupportedAlgorithmError{Role: "RSAES-OAEP label source", OID: p.PSource.Algorithm}
		}
		if len(p.PSource.Parameters.FullBytes) > 0 {
			if _, err := asn1.Unmarshal(p.PSource.Parameters.FullBytes, &label); err != nil {
				return nil, fmt.Errorf("parsing RSAES-OAEP label: %w", err)
			}
		}
	}
	return &rsa.OAEPOptions{Hash: h, MGFHash: mgfHash, Label: label}, nil
}

// keyAgreement derives the KEK with ECDH and the X9.63 KDF (RFC 5753 §3.1.2)
// and unwraps the CEK with AES key wrap (RFC 3394).
func keyAgreement(ka *keyAgreeRecipientInfo, wrapped []byte, cert *x509.Certificate, key any, keyLen int) ([]byte, error) {
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		adapted, err := NewECDSAKeyAgreer(k)
		if err != nil {
			return nil, err
		}
		key = adapted
	}
	agreer, ok := key.(KeyAgreer)
	if !ok {
		return nil, fmt.Errorf("key agreement recipient needs an ECDH key, got %T: %w", key, ErrKeyType)
	}
	certPub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key agreement recipient certificate has a %T key, want EC", cert.PublicKey)
	}
	recipPub, err := certPub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("using the recipient certificate's key for ECDH: %w", err)
	}

	var kdfHash crypto.Hash
	switch alg := ka.KeyEncAlg.Algorithm; {
	case alg.Equal(oidStdDHSHA1KDF), alg.Equal(oidCofactorDHSHA1KDF):
		// The hash is only a KDF here (RFC 5753), and SHA-1 is openssl's default.
		kdfHash = crypto.SHA1
	case alg.Equal(oidStdDHSHA256KDF), alg.Equal(oidCofactorDHSHA256KDF):
		kdfHash = crypto.SHA256
	case alg.Equal(oidStdDHSHA384KDF), alg.Equal(oidCofactorDHSHA384KDF):
		kdfHash = crypto.SHA384
	case alg.Equal(oidStdDHSHA512KDF), alg.Equal(oidCofactorDHSHA512KDF):
		kdfHash = crypto.SHA512
	default:
		return nil, &UnsupportedAlgorithmError{Role: "key agreement", OID: alg}
	}
	// The NIST curves Go supports have cofactor 1, so cofactor DH is
	// standard DH on them.

	var wrapAlg pkix.AlgorithmIdentifier
	if r, err := asn1.Unmarshal(ka.KeyEncAlg.Parameters.FullBytes, &wrapAlg); err != nil || len(r) != 0 {
		return nil, fmt.Errorf("parsing key wrap algorithm: %w", orTrailing(err))
	}
	var kekLen int
	switch {
	case wrapAlg.Algorithm.Equal(oidAES128Wrap):
		kekLen = 16
	case wrapAlg.Algorithm.Equal(oidAES192Wrap):
		kekLen = 24
	case wrapAlg.Algorithm.Equal(oidAES256Wrap):
		kekLen = 32
	default:
		return nil, &UnsupportedAlgorithmError{Role: "key wrap", OID: wrapAlg.Algorithm}
	}

	origPub, err := originatorKey(ka.Originator, recipPub.Curve())
	if err != nil {
		return nil, err
	}
	z, err := agreer.ECDH(origPub)
	if err != nil {
		// A mismatched curve or a TPM refusal lands here too; keep it
		// uniform with the other key-dependent failures.
		return nil, ErrDecryption
	}

	var bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(kekLen*8))
	shared, err := asn1.Marshal(eccCMSSharedInfo{
		KeyInfo:     pkix.AlgorithmIdentifier{Algorithm: wrapAlg.Algorithm},
		EntityUInfo: ka.UKM,
		SuppPubInfo: bits[:],
	})
	if err != nil {
		return nil, fmt.Errorf("encoding ECC-CMS-SharedInfo: %w", err)
	}
	kek := x963KDF(kdfHash, z, shared, kekLen)
	cek, err := aesKeyUnwrap(kek, wrapped)
	if err != nil || len(cek) != keyLen {
		return nil, ErrDecryption
	}
	return cek, nil
}

// originatorKey reads the ephemeral public key from OriginatorIdentifierOrKey.
// Only the originatorKey [1] choice is ephemeral-static ECDH (what
// dhSinglePass means); the certificate choices would need static-static.
func originatorKey(wrapper asn1.RawValue, curve ecdh.Curve) (*ecdh.PublicKey, error) {
	// encoding/asn1 keeps the [0] EXPLICIT wrapper in a RawValue field; the
	// CHOICE is its one element.
	var raw asn1.RawValue
	if r, err := asn1.Unmarshal(wrapper.Bytes, &raw); err != nil || len(r) != 0 {
		return nil, fmt.Errorf("parsing key agreement originator: %w", orTrailing(err))
	}
	if raw.Class != asn1.ClassContextSpecific || raw.Tag != 1 || !raw.IsCompound {
		return nil, errors.New("key agreement originator is not an originatorKey (only ephemeral-static ECDH is supported)")
	}
	var opk originatorPublicKey
	seq := append([]byte{0x30}, raw.FullBytes[1:]...)
	if r, err := asn1.Unmarshal(seq, &opk); err != nil || len(r) != 0 {
		return nil, fmt.Errorf("parsing originatorKey: %w", orTrailing(err))
	}
	if !opk.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, &UnsupportedAlgorithmError{Role: "originator key", OID: opk.Algorithm.Algorithm}
	}
	pub, err := curve.NewPublicKey(opk.PublicKey.RightAlign())
	if err != nil {
		return nil, fmt.Errorf("parsing originatorKey point: %w", err)
	}
	return pub, nil
}

// x963KDF is ANSI X9.63 KDF: Hash(Z || counter || SharedInfo) blocks,
// counter a 32-bit big-endian integer from 1.
func x963KDF(h crypto.Hash, z, sharedInfo []byte, n int) []byte {
	var out []byte
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		d := h.New()
		d.Write(z)
		d.Write(ctr[:])
		d.Write(sharedInfo)
		out = d.Sum(out)
	}
	return out[:n]
}

// aesKeyUnwrap is RFC 3394 §2.2.2 key unwrap with the default IV; the
// integrity check is the only authentication of the CEK in KARI.
func aesKeyUnwrap(kek, c []byte) ([]byte, error) {
	if len(c)%8 != 0 || len(c) < 24 {
		return nil, ErrDecryption
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, ErrDecryption
	}
	n := len(c)/8 - 1
	var a [8]byte
	copy(a[:], c[:8])
	r := make([]byte, n*8)
	copy(r, c[8:])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], r[(i-1)*8:i*8])
			block.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(r[(i-1)*8:i*8], buf[8:])
		}
	}
	defaultIV := []byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}
	if subtle.ConstantTimeCompare(a[:], defaultIV) != 1 {
		return nil, ErrDecryption
	}
	return r, nil
}
