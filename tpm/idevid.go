// Package tpm gives the agent its TPM-resident IDevID (IEEE 802.1AR device
// identity): a persistent key the agent can sign, decrypt and agree keys with,
// plus the manufacturer-issued certificate chain that vouches for it.
//
// Only go-tpm's direct API (tpm2) is used, so the package builds with
// CGO_ENABLED=0; the cgo simulator is confined to tests.
package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Well-known locations from the TCG "TPM 2.0 Keys for Device Identity and
// Attestation" guidance as used by public DevID tooling: the IDevID key's
// persistent handle and the NV index that holds its certificate.
const (
	DefaultKeyHandle = 0x81020000
	DefaultCertIndex = 0x01C90000
)

// nvChunk is how much NV data is requested per TPM2_NV_Read. TPMs advertise
// TPM_PT_NV_BUFFER_MAX (often 1024, sometimes 512); 512 is accepted by all
// we have seen and saves a GetCapability round trip.
const nvChunk = 512

// IDevID is a TPM-resident device identity: the persistent key and its
// certificate chain. All TPM commands issued through it are serialised, so
// one IDevID may be shared by concurrent TLS handshakes.
type IDevID struct {
	mu     sync.Mutex // serialises TPM access: transports and TPMs are not concurrent
	tpm    transport.TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public tpm2.TPMTPublic
	pub    crypto.PublicKey
	chain  [][]byte // DER, leaf first
	leaf   *x509.Certificate
}

// LoadIDevID reads the public area of the persistent key at keyHandle and the
// certificate chain for it. If certPEM is non-nil it holds the chain as PEM
// (leaf first); otherwise the chain is read as DER from NV index certIndex,
// which may hold one certificate or several concatenated ones, leaf first,
// optionally followed by 0x00 or 0xFF padding. In both cases the leaf must
// certify the TPM key.
//
// The key must have an empty authorization value, as IDevID keys provisioned
// for unattended use do.
func LoadIDevID(t transport.TPM, keyHandle uint32, certIndex uint32, certPEM []byte) (*IDevID, error) {
	if t == nil {
		return nil, errors.New("loading IDevID: nil TPM transport")
	}
	k := &IDevID{tpm: t, handle: tpm2.TPMHandle(keyHandle)}

	rp, err := withRetry(func() (*tpm2.ReadPublicResponse, error) { return tpm2.ReadPublic{ObjectHandle: k.handle}.Execute(t) })
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("no key at persistent handle 0x%08X: %w", keyHandle, tpmError(err))
		}
		return nil, fmt.Errorf("reading public area of key at 0x%08X: %w", keyHandle, tpmError(err))
	}
	pubArea, err := rp.OutPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("decoding public area of key at 0x%08X: %w", keyHandle, err)
	}
	k.public = *pubArea
	k.name = rp.Name
	if err := checkKeyUsable(k.public); err != nil {
		return nil, fmt.Errorf("key at 0x%08X: %w", keyHandle, err)
	}
	k.pub, err = tpm2.Pub(k.public)
	if err != nil {
		return nil, fmt.Errorf("converting public key at 0x%08X: %w", keyHandle, err)
	}

	var source string
	if certPEM != nil {
		source = "IDevID certificate"
		k.chain, err = chainFromPEM(certPEM)
	} else {
		source = fmt.Sprintf("IDevID certificate in NV index 0x%08X", certIndex)
		var nv []byte
		nv, err = readNV(t, tpm2.TPMHandle(certIndex))
		if err == nil {
			k.chain, err = splitDER(nv)
			if err == nil && len(k.chain) == 0 {
				err = fmt.Errorf("NV index 0x%08X holds only padding, no certificate", certIndex)
			}
			if err != nil {
				err = fmt.Errorf("parsing certificates in NV index 0x%08X: %w", certIndex, err)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	k.leaf, err = x509.ParseCertificate(k.chain[0])
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", source, err)
	}
	for i, der := range k.chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("parsing %s chain element %d: %w", source, i+1, err)
		}
	}
	eq, ok := k.leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(k.pub) {
		return nil, fmt.Errorf("%s does not match the TPM key at 0x%08X", source, keyHandle)
	}
	return k, nil
}

// checkKeyUsable rejects keys the agent could never use, at load time, so the
// failure names the real cause instead of surfacing as a TLS alert later.
func checkKeyUsable(p tpm2.TPMTPublic) error {
	switch p.Type {
	case tpm2.TPMAlgRSA, tpm2.TPMAlgECC:
	default:
		return fmt.Errorf("unsupported key type %s (want RSA or ECC)", algName(p.Type))
	}
	attrs := p.ObjectAttributes
	if !attrs.SignEncrypt && !attrs.Decrypt {
		return errors.New("key has neither the sign nor the decrypt attribute")
	}
	if attrs.Restricted {
		// A restricted signing key (an attestation key) only signs digests
		// the TPM itself computed, so it cannot sign a TLS transcript hash.
		return errors.New("key is restricted; an IDevID must be an unrestricted key")
	}
	return nil
}

// chainFromPEM returns the DER of every CERTIFICATE block, in file order.
// Other block types are skipped so a combined PEM bundle works.
func chainFromPEM(data []byte) ([][]byte, error) {
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("parsing IDevID certificate PEM: no CERTIFICATE block found")
	}
	return chain, nil
}

// splitDER splits concatenated DER certificates. NV indices are often
// defined larger than their content and pre-filled by the TPM or the
// factory, so trailing bytes that are all 0x00 or all 0xFF are padding.
func splitDER(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if isPadding(data) {
			break
		}
		n, err := derLength(data)
		if err != nil {
			return nil, fmt.Errorf("certificate %d at offset: %w", len(out)+1, err)
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	return out, nil
}

func isPadding(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0 || len(bytes.Trim(b, "\xff")) == 0
}

// derLength returns the total length of the DER SEQUENCE at the start of b.
// Only the outer header is decoded; x509.ParseCertificate checks the rest.
func derLength(b []byte) (int, error) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, errors.New("not a DER SEQUENCE")
	}
	l := int(b[1])
	hdr := 2
	if l&0x80 != 0 {
		nb := l & 0x7f
		if nb == 0 || nb > 3 || len(b) < 2+nb {
			return 0, errors.New("unsupported DER length encoding")
		}
		l = 0
		for _, c := range b[2 : 2+nb] {
			l = l<<8 | int(c)
		}
		hdr += nb
	}
	if hdr+l > len(b) {
		return 0, fmt.Errorf("DER element of %d bytes truncated to %d", hdr+l, len(b))
	}
	return hdr + l, nil
}

// readNV reads the whole data area of an NV index. The authorisation used is
// the first the index allows without a secret: the index itself (AUTHREAD
// with empty auth), the owner hierarchy, then the platform hierarchy — both
// with empty auth, which is how factories leave them for the device.
func readNV(t transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	rp, err := withRetry(func() (*tpm2.NVReadPublicResponse, error) { return tpm2.NVReadPublic{NVIndex: index}.Execute(t) })
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("no IDevID certificate: NV index 0x%08X is not defined: %w", uint32(index), tpmError(err))
		}
		return nil, fmt.Errorf("reading public area of NV index 0x%08X: %w", uint32(index), tpmError(err))
	}
	pub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("decoding public area of NV index 0x%08X: %w", uint32(index), err)
	}
	if !pub.Attributes.Written || pub.DataSize == 0 {
		return nil, fmt.Errorf("no IDevID certificate: NV index 0x%08X is empty (defined but never written)", uint32(index))
	}
	auth := tpm2.AuthHandle{Handle: index, Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)}
	switch {
	case pub.Attributes.AuthRead:
	case pub.Attributes.OwnerRead:
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	case pub.Attributes.PPRead:
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	default:
		return nil, fmt.Errorf("NV index 0x%08X is readable only with a policy, which is not supported", uint32(index))
	}
	out := make([]byte, 0, pub.DataSize)
	for off := 0; off < int(pub.DataSize); off += nvChunk {
		n := min(nvChunk, int(pub.DataSize)-off)
		cmd := tpm2.NVRead{
			AuthHandle: auth,
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: rp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}
		rsp, err := withRetry(func() (*tpm2.NVReadResponse, error) { return cmd.Execute(t) })
		if err != nil {
			return nil, fmt.Errorf("reading NV index 0x%08X at offset %d: %w", uint32(index), off, tpmError(err))
		}
		if len(rsp.Data.Buffer) != n {
			return nil, fmt.Errorf("reading NV index 0x%08X at offset %d: got %d bytes, want %d", uint32(index), off, len(rsp.Data.Buffer), n)
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// Certificate returns the chain with the TPM signer as private key, ready for
// tls.Config.Certificates or GetClientCertificate. If the key is fixed to one
// signature scheme, SupportedSignatureAlgorithms is narrowed to it so Go's TLS
// stack never negotiates a scheme the TPM would refuse.
func (k *IDevID) Certificate() tls.Certificate {
	chain := make([][]byte, len(k.chain))
	copy(chain, k.chain)
	return tls.Certificate{
		Certificate:                  chain,
		PrivateKey:                   k.Signer(),
		Leaf:                         k.leaf,
		SupportedSignatureAlgorithms: k.tlsSchemes(),
	}
}

// Leaf returns the parsed IDevID certificate.
func (k *IDevID) Leaf() *x509.Certificate { return k.leaf }

// Public returns the IDevID public key as read from the TPM.
func (k *IDevID) Public() crypto.PublicKey { return k.pub }

// SerialNumber returns the subject serialNumber attribute of the IDevID
// certificate, which 802.1AR and RFC 8572 use as the device serial number.
func (k *IDevID) SerialNumber() string { return k.leaf.Subject.SerialNumber }

// tlsSchemes maps a fixed key scheme to the TLS signature schemes that can
// use it; nil (Go's defaults) for null-scheme keys, which sign with anything.
func (k *IDevID) tlsSchemes() []tls.SignatureScheme {
	alg, hash := k.fixedScheme()
	switch alg {
	case tpm2.TPMAlgRSASSA:
		return pick(hash, tls.PKCS1WithSHA1, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512)
	case tpm2.TPMAlgRSAPSS:
		return pick(hash, 0, tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512)
	case tpm2.TPMAlgECDSA:
		return pick(hash, tls.ECDSAWithSHA1, tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512)
	}
	return nil
}

func pick(h tpm2.TPMAlgID, sha1, sha256, sha384, sha512 tls.SignatureScheme) []tls.SignatureScheme {
	var s tls.SignatureScheme
	switch h {
	case tpm2.TPMAlgSHA1:
		s = sha1
	case tpm2.TPMAlgSHA256:
		s = sha256
	case tpm2.TPMAlgSHA384:
		s = sha384
	case tpm2.TPMAlgSHA512:
		s = sha512
	}
	if s == 0 {
		// No TLS scheme fits; an empty, non-nil list makes Go TLS refuse
		// the certificate instead of signing with a scheme the TPM rejects.
		return []tls.SignatureScheme{}
	}
	return []tls.SignatureScheme{s}
}

// fixedScheme returns the scheme and hash the key is bound to, or
// TPM_ALG_NULL if the scheme is chosen per command.
func (k *IDevID) fixedScheme() (alg, hash tpm2.TPMAlgID) {
	var details *tpm2.TPMUAsymScheme
	switch k.public.Type {
	case tpm2.TPMAlgRSA:
		p, err := k.public.Parameters.RSADetail()
		if err != nil {
			return tpm2.TPMAlgNull, tpm2.TPMAlgNull
		}
		alg, details = p.Scheme.Scheme, &p.Scheme.Details
	case tpm2.TPMAlgECC:
		p, err := k.public.Parameters.ECCDetail()
		if err != nil {
			return tpm2.TPMAlgNull, tpm2.TPMAlgNull
		}
		alg, details = p.Scheme.Scheme, &p.Scheme.Details
	default:
		return tpm2.TPMAlgNull, tpm2.TPMAlgNull
	}
	hash = tpm2.TPMAlgNull
	switch alg {
	case tpm2.TPMAlgRSASSA:
		if d, err := details.RSASSA(); err == nil {
			hash = d.HashAlg
		}
	case tpm2.TPMAlgRSAPSS:
		if d, err := details.RSAPSS(); err == nil {
			hash = d.HashAlg
		}
	case tpm2.TPMAlgOAEP:
		if d, err := details.OAEP(); err == nil {
			hash = d.HashAlg
		}
	case tpm2.TPMAlgECDSA:
		if d, err := details.ECDSA(); err == nil {
			hash = d.HashAlg
		}
	case tpm2.TPMAlgECDH:
		if d, err := details.ECDH(); err == nil {
			hash = d.HashAlg
		}
	}
	return alg, hash
}

// rsaPub and ecPub return the typed public key and whether the key has that type.
func (k *IDevID) rsaPub() (*rsa.PublicKey, bool) {
	p, ok := k.pub.(*rsa.PublicKey)
	return p, ok
}

func (k *IDevID) ecPub() (*ecdsa.PublicKey, bool) {
	p, ok := k.pub.(*ecdsa.PublicKey)
	return p, ok
}

// authHandle is the key as an authorised handle: a password session with the
// empty auth value.
func (k *IDevID) authHandle() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)}
}
