package lab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// File names of the signed-data credentials beside the rest of the PKI.
// voucher-trust-anchor.pem is written last: its presence marks the set as
// complete, as idevid.pem does for the rest.
const (
	masaName                   = "masa"
	ownerCAName                = "owner"
	voucherSignerName          = "voucher-signer"
	ownerName                  = "owner-certificate"
	voucherTrustAnchorFileName = "voucher-trust-anchor.pem"
)

// crlLifetime is the nextUpdate distance of a stapled CRL: "fresh" for a
// device that checks revocation, without needing a CRL service.
const crlLifetime = 24 * time.Hour

// KeyPair is an end-entity certificate with its private key, in PEM files
// (the certificate file also holds the issuing CA after the leaf).
type KeyPair struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string
	KeyFile  string // PEM PKCS#8, mode 0600
}

// issueSigner issues an ECDSA P-256 certificate whose only key usage is
// digitalSignature (RFC 8572 §3.2 allows nothing less for the owner
// certificate, and a voucher signer needs nothing more), and writes it to
// <dir>/<name>.pem and .key unless dir is empty.
func (ca *CA) issueSigner(dir, name, commonName string) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the %s key: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("making the %s serial number: %w", name, err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"SZTP lab"}, CommonName: commonName},
		NotBefore:    time.Now().Add(-backdate).UTC(),
		// Like the CAs: a reused lab directory must not expire under a
		// running rig, and devices without a clock treat certificates as
		// non-expiring anyway (RFC 8572 §9.1).
		NotAfter: notAfterForever,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the %s certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new %s certificate: %w", name, err)
	}
	kp := &KeyPair{Cert: cert, Key: key}
	if dir != "" {
		kp.CertFile, kp.KeyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		if err := writeKeyPair(kp.CertFile, kp.KeyFile, key, cert, ca.Cert); err != nil {
			return nil, fmt.Errorf("writing the %s: %w", name, err)
		}
	}
	return kp, nil
}

// createSigningPKI makes the MASA and owner credentials in p.Dir,
// replacing any partial set.
func (p *PKI) createSigningPKI() error {
	masa, err := NewCA(p.Dir, masaName)
	if err != nil {
		return err
	}
	voucherSigner, err := masa.issueSigner(p.Dir, voucherSignerName, "SZTP lab MASA voucher signer")
	if err != nil {
		return err
	}
	ownerCA, err := NewCA(p.Dir, ownerCAName)
	if err != nil {
		return err
	}
	owner, err := ownerCA.issueSigner(p.Dir, ownerName, "SZTP lab owner")
	if err != nil {
		return err
	}
	trustAnchor := filepath.Join(p.Dir, voucherTrustAnchorFileName)
	if err := atomicfile.WriteFile(trustAnchor, pemCertificates(masa.Cert), 0o644); err != nil {
		return fmt.Errorf("writing the voucher trust anchor: %w", err)
	}
	p.MASA, p.VoucherSigner, p.OwnerCA, p.Owner, p.VoucherTrustAnchorFile = masa, voucherSigner, ownerCA, owner, trustAnchor
	return nil
}

// loadSigningPKI reads the credentials createSigningPKI wrote; without the
// voucher trust anchor file (a directory from before signed mode, or an
// interrupted creation) it leaves them nil.
func (p *PKI) loadSigningPKI() error {
	trustAnchor := filepath.Join(p.Dir, voucherTrustAnchorFileName)
	if _, err := os.Stat(trustAnchor); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("looking for the voucher trust anchor: %w", err)
	}
	masa, err := LoadCA(p.Dir, masaName)
	if err != nil {
		return err
	}
	ownerCA, err := LoadCA(p.Dir, ownerCAName)
	if err != nil {
		return err
	}
	voucherSigner, err := loadKeyPair(p.Dir, voucherSignerName, masa)
	if err != nil {
		return err
	}
	owner, err := loadKeyPair(p.Dir, ownerName, ownerCA)
	if err != nil {
		return err
	}
	anchors, err := readCertificates(trustAnchor)
	if err != nil {
		return fmt.Errorf("loading the voucher trust anchor: %w", err)
	}
	if !anchors[0].Equal(masa.Cert) {
		return fmt.Errorf("loading the voucher trust anchor: %s does not hold %s", trustAnchor, masa.CertFile)
	}
	p.MASA, p.VoucherSigner, p.OwnerCA, p.Owner, p.VoucherTrustAnchorFile = masa, voucherSigner, ownerCA, owner, trustAnchor
	return nil
}

// loadKeyPair reads <dir>/<name>.pem and .key and checks that issuer
// signed the certificate.
func loadKeyPair(dir, name string, issuer *CA) (*KeyPair, error) {
	kp := &KeyPair{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+".key")}
	certs, err := readCertificates(kp.CertFile)
	if err != nil {
		return nil, fmt.Errorf("loading the %s: %w", name, err)
	}
	key, err := readPrivateKey(kp.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the %s: %w", name, err)
	}
	if err := checkKeyMatches(certs[0], key); err != nil {
		return nil, fmt.Errorf("loading the %s: %w", name, err)
	}
	if err := certs[0].CheckSignatureFrom(issuer.Cert); err != nil {
		return nil, fmt.Errorf("loading the %s: it was not issued by %s: %w", name, issuer.CertFile, err)
	}
	kp.Cert, kp.Key = certs[0], key
	return kp, nil
}

// CRL returns a DER CRL (RFC 5280 §5) signed by ca, valid from a little
// before now for crlLifetime, listing the given certificates as revoked.
func (ca *CA) CRL(now time.Time, revoked ...*x509.Certificate) ([]byte, error) {
	tmpl := &x509.RevocationList{
		// The CRL number must grow; the time in nanoseconds does, across
		// restarts too.
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now.Add(-backdate).UTC(),
		NextUpdate: now.Add(crlLifetime).UTC(),
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   c.SerialNumber,
			RevocationTime: now.Add(-backdate).UTC(),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing a CRL of %q: %w", ca.Cert.Subject.CommonName, err)
	}
	return der, nil
}
