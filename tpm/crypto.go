package tpm

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// Signer returns a crypto.Signer backed by the TPM key. It produces ECDSA
// signatures in ASN.1 form for EC keys, and RSASSA-PKCS1-v1_5 or RSASSA-PSS
// (when opts is *rsa.PSSOptions) for RSA keys. For a null-scheme RSA key the
// scheme is chosen per call, which is what TLS needs (PSS for TLS 1.3, often
// PKCS#1 v1.5 for TLS 1.2 peers); a key with a fixed scheme refuses others.
func (k *IDevID) Signer() crypto.Signer { return &signer{k: k} }

type signer struct{ k *IDevID }

func (s *signer) Public() crypto.PublicKey { return s.k.pub }

// Sign signs digest, which must already be hashed with opts.HashFunc().
// rand is unused: the TPM draws its own randomness.
func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k := s.k
	if opts == nil {
		return nil, errors.New("TPM sign: nil SignerOpts; a hash must be named")
	}
	h := opts.HashFunc()
	halg, err := hashAlg(h)
	if err != nil {
		return nil, fmt.Errorf("TPM sign with key 0x%08X: %w", uint32(k.handle), err)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("TPM sign with key 0x%08X: digest is %d bytes, %v needs %d", uint32(k.handle), len(digest), h, h.Size())
	}
	if !k.public.ObjectAttributes.SignEncrypt {
		return nil, fmt.Errorf("TPM sign: key at 0x%08X lacks the sign attribute", uint32(k.handle))
	}

	var want tpm2.TPMAlgID
	pss, isPSS := opts.(*rsa.PSSOptions)
	switch k.public.Type {
	case tpm2.TPMAlgECC:
		want = tpm2.TPMAlgECDSA
		if isPSS {
			return nil, fmt.Errorf("TPM sign: PSS options given for EC key at 0x%08X", uint32(k.handle))
		}
	case tpm2.TPMAlgRSA:
		want = tpm2.TPMAlgRSASSA
		if isPSS {
			want = tpm2.TPMAlgRSAPSS
			// The TPM (TPM 2.0 Part 1, B.7, as libtpms and the reference
			// simulator implement it) uses a salt as long as the hash, which is
			// also what Go TLS demands. Other salt lengths cannot be produced.
			if pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != h.Size() {
				return nil, fmt.Errorf("TPM sign: PSS salt length %d requested; the TPM only produces salt length = hash length (%d)", pss.SaltLength, h.Size())
			}
		}
	}
	if fixed, fixedHash := k.fixedScheme(); fixed != tpm2.TPMAlgNull && (fixed != want || fixedHash != halg) {
		return nil, fmt.Errorf("TPM sign: key at 0x%08X is fixed to scheme %s, cannot sign with %s",
			uint32(k.handle), schemeName(fixed, fixedHash), schemeName(want, halg))
	}

	cmd := tpm2.Sign{
		KeyHandle: k.authHandle(),
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  want,
			Details: tpm2.NewTPMUSigScheme(want, &tpm2.TPMSSchemeHash{HashAlg: halg}),
		},
		// A null ticket is what an unrestricted key accepts for a digest
		// the TPM did not compute itself.
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}
	k.mu.Lock()
	rsp, err := withRetry(func() (*tpm2.SignResponse, error) { return cmd.Execute(k.tpm) })
	k.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("TPM sign (%s) with key 0x%08X: %w", schemeName(want, halg), uint32(k.handle), tpmError(err))
	}

	sig, err := encodeSignature(&rsp.Signature, want)
	if err != nil {
		return nil, fmt.Errorf("TPM sign with key 0x%08X: %w", uint32(k.handle), err)
	}
	// Verify before handing out: a signature the peer rejects shows up as an
	// opaque TLS alert on the far side, while this names the cause here (a
	// TPM with a different PSS salt length, or a faulty TPM).
	if err := k.verify(digest, sig, h, pss); err != nil {
		return nil, fmt.Errorf("TPM sign (%s) with key 0x%08X produced a signature that does not verify: %w", schemeName(want, halg), uint32(k.handle), err)
	}
	return sig, nil
}

func encodeSignature(sig *tpm2.TPMTSignature, want tpm2.TPMAlgID) ([]byte, error) {
	if sig.SigAlg != want {
		return nil, fmt.Errorf("TPM returned a %s signature, asked for %s", algName(sig.SigAlg), algName(want))
	}
	switch want {
	case tpm2.TPMAlgECDSA:
		e, err := sig.Signature.ECDSA()
		if err != nil {
			return nil, fmt.Errorf("decoding ECDSA signature: %w", err)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(e.SignatureR.Buffer),
			new(big.Int).SetBytes(e.SignatureS.Buffer),
		})
	case tpm2.TPMAlgRSASSA:
		r, err := sig.Signature.RSASSA()
		if err != nil {
			return nil, fmt.Errorf("decoding RSASSA signature: %w", err)
		}
		return r.Sig.Buffer, nil
	case tpm2.TPMAlgRSAPSS:
		r, err := sig.Signature.RSAPSS()
		if err != nil {
			return nil, fmt.Errorf("decoding RSAPSS signature: %w", err)
		}
		return r.Sig.Buffer, nil
	}
	return nil, fmt.Errorf("unexpected signature scheme %s", algName(want))
}

func (k *IDevID) verify(digest, sig []byte, h crypto.Hash, pss *rsa.PSSOptions) error {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	case *rsa.PublicKey:
		if pss != nil {
			return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: pss.SaltLength, Hash: h})
		}
		return rsa.VerifyPKCS1v15(pub, h, digest, sig)
	}
	return fmt.Errorf("unsupported public key type %T", k.pub)
}

// Decrypter returns a crypto.Decrypter for an RSA key with the decrypt
// attribute, as needed to open CMS EnvelopedData addressed to the device. It
// fails for EC keys (use ECDH) and for sign-only keys.
func (k *IDevID) Decrypter() (crypto.Decrypter, error) {
	if _, ok := k.rsaPub(); !ok {
		return nil, fmt.Errorf("TPM decrypter: key at 0x%08X is %s, RSA decryption needs an RSA key", uint32(k.handle), algName(k.public.Type))
	}
	if !k.public.ObjectAttributes.Decrypt {
		return nil, fmt.Errorf("TPM decrypter: key at 0x%08X lacks the decrypt attribute", uint32(k.handle))
	}
	return &decrypter{k: k}, nil
}

type decrypter struct{ k *IDevID }

func (d *decrypter) Public() crypto.PublicKey { return d.k.pub }

// Decrypt implements crypto.Decrypter. opts nil or *rsa.PKCS1v15DecryptOptions
// selects RSAES-PKCS1-v1_5, *rsa.OAEPOptions selects OAEP. rand is unused.
func (d *decrypter) Decrypt(_ io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	k := d.k
	var scheme tpm2.TPMTRSADecrypt
	var hash tpm2.TPMAlgID = tpm2.TPMAlgNull
	var sessionKeyLen int
	switch o := opts.(type) {
	case nil:
		scheme = tpm2.TPMTRSADecrypt{Scheme: tpm2.TPMAlgRSAES, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAES, &tpm2.TPMSEncSchemeRSAES{})}
	case *rsa.PKCS1v15DecryptOptions:
		sessionKeyLen = o.SessionKeyLen
		scheme = tpm2.TPMTRSADecrypt{Scheme: tpm2.TPMAlgRSAES, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAES, &tpm2.TPMSEncSchemeRSAES{})}
	case *rsa.OAEPOptions:
		var err error
		if hash, err = hashAlg(o.Hash); err != nil {
			return nil, fmt.Errorf("TPM decrypt (OAEP) with key 0x%08X: %w", uint32(k.handle), err)
		}
		if o.MGFHash != 0 && o.MGFHash != o.Hash {
			return nil, fmt.Errorf("TPM decrypt (OAEP) with key 0x%08X: MGF1 hash %v differs from OAEP hash %v, which the TPM cannot do", uint32(k.handle), o.MGFHash, o.Hash)
		}
		if len(o.Label) != 0 {
			// The TPM treats the label as a NUL-terminated string and adds
			// a terminator if missing, so only empty labels interoperate.
			return nil, fmt.Errorf("TPM decrypt (OAEP) with key 0x%08X: non-empty OAEP labels are not supported", uint32(k.handle))
		}
		scheme = tpm2.TPMTRSADecrypt{Scheme: tpm2.TPMAlgOAEP, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP, &tpm2.TPMSEncSchemeOAEP{HashAlg: hash})}
	default:
		return nil, fmt.Errorf("TPM decrypt with key 0x%08X: unsupported options type %T", uint32(k.handle), opts)
	}
	if fixed, fixedHash := k.fixedScheme(); fixed != tpm2.TPMAlgNull && (fixed != scheme.Scheme || fixedHash != hash) {
		return nil, fmt.Errorf("TPM decrypt: key at 0x%08X is fixed to scheme %s, cannot decrypt %s",
			uint32(k.handle), schemeName(fixed, fixedHash), schemeName(scheme.Scheme, hash))
	}

	cmd := tpm2.RSADecrypt{
		KeyHandle:  k.authHandle(),
		CipherText: tpm2.TPM2BPublicKeyRSA{Buffer: msg},
		InScheme:   scheme,
	}
	k.mu.Lock()
	rsp, err := withRetry(func() (*tpm2.RSADecryptResponse, error) { return cmd.Execute(k.tpm) })
	k.mu.Unlock()

	if sessionKeyLen > 0 {
		// crypto.Decrypter contract for session keys (TLS RSA key exchange
		// style): a padding failure or a wrong length must be
		// indistinguishable from success, so answer with a random key. A
		// broken TPM connection is still an error: nothing to hide there.
		var rc tpm2.TPMRC
		if err != nil && !errors.As(err, &rc) {
			return nil, fmt.Errorf("TPM decrypt with key 0x%08X: %w", uint32(k.handle), err)
		}
		if err != nil || len(rsp.Message.Buffer) != sessionKeyLen {
			key := make([]byte, sessionKeyLen)
			if _, rerr := rand.Read(key); rerr != nil {
				return nil, fmt.Errorf("generating substitute session key: %w", rerr)
			}
			return key, nil
		}
		return rsp.Message.Buffer, nil
	}
	if err != nil {
		return nil, fmt.Errorf("TPM decrypt (%s) with key 0x%08X: %w", schemeName(scheme.Scheme, hash), uint32(k.handle), tpmError(err))
	}
	return rsp.Message.Buffer, nil
}

// ECDH computes the shared secret (the X coordinate of d·Q, the same bytes
// crypto/ecdh returns) between the TPM's EC key and peer, via TPM2_ECDH_ZGen.
// The key needs the decrypt attribute and a NULL or ECDH scheme.
func (k *IDevID) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	ec, ok := k.ecPub()
	if !ok {
		return nil, fmt.Errorf("TPM ECDH: key at 0x%08X is %s, not ECC", uint32(k.handle), algName(k.public.Type))
	}
	if !k.public.ObjectAttributes.Decrypt {
		return nil, fmt.Errorf("TPM ECDH: key at 0x%08X lacks the decrypt attribute", uint32(k.handle))
	}
	if peer == nil {
		return nil, errors.New("TPM ECDH: nil peer key")
	}
	own, err := ec.ECDH()
	if err != nil {
		return nil, fmt.Errorf("TPM ECDH: converting key at 0x%08X: %w", uint32(k.handle), err)
	}
	if peer.Curve() != own.Curve() {
		return nil, fmt.Errorf("TPM ECDH: peer key is on %v, the TPM key at 0x%08X is on %v", peer.Curve(), uint32(k.handle), own.Curve())
	}
	// Uncompressed point: 0x04 || X || Y with fixed-width coordinates.
	raw := peer.Bytes()
	size := (len(raw) - 1) / 2
	point := tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: raw[1 : 1+size]},
		Y: tpm2.TPM2BECCParameter{Buffer: raw[1+size:]},
	}
	cmd := tpm2.ECDHZGen{KeyHandle: k.authHandle(), InPoint: tpm2.New2B(point)}
	k.mu.Lock()
	rsp, err := withRetry(func() (*tpm2.ECDHZGenResponse, error) { return cmd.Execute(k.tpm) })
	k.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("TPM ECDH with key 0x%08X: %w", uint32(k.handle), tpmError(err))
	}
	out, err := rsp.OutPoint.Contents()
	if err != nil {
		return nil, fmt.Errorf("TPM ECDH with key 0x%08X: decoding result: %w", uint32(k.handle), err)
	}
	x := out.X.Buffer
	if len(x) > size {
		return nil, fmt.Errorf("TPM ECDH with key 0x%08X: result of %d bytes exceeds field size %d", uint32(k.handle), len(x), size)
	}
	// The TPM may strip leading zeros; crypto/ecdh callers expect field width.
	z := make([]byte, size)
	copy(z[size-len(x):], x)
	return z, nil
}
