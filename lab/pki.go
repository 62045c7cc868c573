package lab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// File names of the PKI inside its directory. The agent is pointed at these
// paths, so they are part of the lab's contract with scripts.
const (
	manufacturerName    = "manufacturer"
	serverCAName        = "server"
	idevidCertFileName  = "idevid.pem"
	idevidKeyFileName   = "idevid.key"
	trustAnchorFileName = "trust-anchor.pem"
)

// notAfterForever is the 802.1AR "no well-defined expiration" date
// (GeneralizedTime 99991231235959Z). The lab CAs use it too so that a reused
// lab directory never expires under a running test rig.
var notAfterForever = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)

// backdate absorbs clock differences between the lab host and a device (or
// a container) whose clock is a little behind.
const backdate = time.Hour

// serverCertLifetime bounds the TLS server certificates: they are re-issued
// at every start, so there is no reason for them to outlive a lab session.
const serverCertLifetime = 90 * 24 * time.Hour

// CA is a throw-away certificate authority whose certificate and key live in
// PEM files.
type CA struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string // PEM certificate
	KeyFile  string // PEM PKCS#8 private key, mode 0600
}

// NewCA creates a self-signed ECDSA P-256 root called name and writes it to
// <dir>/<name>-ca.pem and <dir>/<name>-ca.key.
func NewCA(dir, name string) (*CA, error) {
	ca, err := newMemoryCA(name)
	if err != nil {
		return nil, err
	}
	ca.CertFile = filepath.Join(dir, name+"-ca.pem")
	ca.KeyFile = filepath.Join(dir, name+"-ca.key")
	if err := writeKeyPair(ca.CertFile, ca.KeyFile, ca.Key, ca.Cert); err != nil {
		return nil, fmt.Errorf("writing the %s CA: %w", name, err)
	}
	return ca, nil
}

// newMemoryCA creates a CA like NewCA but writes no file (CertFile and
// KeyFile stay empty): for throw-away authorities that tests and the
// --untrusted-tls mode need only while the process runs.
func newMemoryCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the %s CA key: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("making the %s CA serial number: %w", name, err)
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"SZTP lab"}, CommonName: "SZTP lab " + name + " CA"},
		NotBefore:             time.Now().Add(-backdate).UTC(),
		NotAfter:              notAfterForever,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing the %s CA certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new %s CA certificate: %w", name, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA written by NewCA.
func LoadCA(dir, name string) (*CA, error) {
	ca := &CA{
		CertFile: filepath.Join(dir, name+"-ca.pem"),
		KeyFile:  filepath.Join(dir, name+"-ca.key"),
	}
	certs, err := readCertificates(ca.CertFile)
	if err != nil {
		return nil, fmt.Errorf("loading the %s CA: %w", name, err)
	}
	key, err := readPrivateKey(ca.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the %s CA: %w", name, err)
	}
	if err := checkKeyMatches(certs[0], key); err != nil {
		return nil, fmt.Errorf("loading the %s CA: %w", name, err)
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("loading the %s CA: %s is not a CA certificate", name, ca.CertFile)
	}
	ca.Cert, ca.Key = certs[0], key
	return ca, nil
}

// IssueServer issues a TLS server certificate for hosts (IP addresses and
// DNS names) and writes it to <dir>/<name>.pem and <dir>/<name>.key.
func (ca *CA) IssueServer(dir, name string, hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, fmt.Errorf("issuing server certificate %s: no host names or addresses", name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the key of server certificate %s: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making the serial number of server certificate %s: %w", name, err)
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"SZTP lab"}, CommonName: hosts[0]},
		NotBefore:    now.Add(-backdate).UTC(),
		NotAfter:     now.Add(serverCertLifetime).UTC(),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing server certificate %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing new server certificate %s: %w", name, err)
	}
	if err := writeKeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"), key, leaf); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing server certificate %s: %w", name, err)
	}
	// The root is left out of the chain: the agent must already hold it as
	// its trust anchor, and sending it would only hide a missing anchor.
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// PKI is the lab's set of throw-away credentials: a manufacturer CA that
// issued the device's IDevID and a CA for the bootstrap servers' TLS
// certificates, which the agent trusts through TrustAnchorFile.
type PKI struct {
	Dir             string
	Manufacturer    *CA // issues the IDevID
	ServerCA        *CA // issues bootstrap-server TLS certificates
	SerialNumber    string
	IDevIDCertFile  string // PEM: the IDevID leaf, then the manufacturer CA certificate
	IDevIDKeyFile   string // PEM PKCS#8 private key, mode 0600
	TrustAnchorFile string // PEM bundle holding the ServerCA certificate (the agent's --trust-anchor)
	IDevID          *x509.Certificate
	IDevIDKey       crypto.Signer

	// Signed-data credentials (RFC 8572 §3, RFC 8366). They are nil only
	// for a PKI loaded by LoadPKI from a directory made before they
	// existed; LoadOrCreatePKI adds them to such a directory.
	MASA                   *CA      // the manufacturer's voucher authority, root of voucher trust
	VoucherSigner          *KeyPair // signs ownership vouchers; issued by MASA
	VoucherTrustAnchorFile string   // PEM bundle holding the MASA certificate (the agent's --voucher-trust-anchor)
	OwnerCA                *CA      // the owner's CA: every voucher's pinned-domain-cert
	Owner                  *KeyPair // the owner certificate, issued by OwnerCA; signs conveyed information
}

// NewPKI creates a fresh PKI in dir (created if missing) for a device with
// the given serial number, overwriting any PKI already there.
func NewPKI(dir, serialNumber string) (*PKI, error) {
	if serialNumber == "" {
		return nil, errors.New("creating the lab PKI: empty serial number")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the lab PKI directory: %w", err)
	}
	manufacturer, err := NewCA(dir, manufacturerName)
	if err != nil {
		return nil, fmt.Errorf("creating the lab PKI: %w", err)
	}
	serverCA, err := NewCA(dir, serverCAName)
	if err != nil {
		return nil, fmt.Errorf("creating the lab PKI: %w", err)
	}
	p := &PKI{
		Dir:             dir,
		Manufacturer:    manufacturer,
		ServerCA:        serverCA,
		SerialNumber:    serialNumber,
		IDevIDCertFile:  filepath.Join(dir, idevidCertFileName),
		IDevIDKeyFile:   filepath.Join(dir, idevidKeyFileName),
		TrustAnchorFile: filepath.Join(dir, trustAnchorFileName),
	}
	if err := atomicfile.WriteFile(p.TrustAnchorFile, pemCertificates(serverCA.Cert), 0o644); err != nil {
		return nil, fmt.Errorf("writing the lab trust anchor: %w", err)
	}
	if err := p.createSigningPKI(); err != nil {
		return nil, fmt.Errorf("creating the lab PKI: %w", err)
	}
	// The IDevID is written last: LoadOrCreatePKI takes its presence as the
	// sign of a complete PKI.
	if err := p.issueIDevID(); err != nil {
		return nil, fmt.Errorf("creating the lab PKI: %w", err)
	}
	return p, nil
}

func (p *PKI) issueIDevID() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the IDevID key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fmt.Errorf("making the IDevID certificate serial number: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		// pkix.Name emits SerialNumber after CommonName, which makes it the
		// last RDN: sztpd reads the device serial from the last RDN.
		Subject: pkix.Name{
			Organization: []string{"SZTP lab manufacturer"},
			CommonName:   "SZTP lab device",
			SerialNumber: p.SerialNumber,
		},
		NotBefore:   time.Now().Add(-backdate).UTC(),
		NotAfter:    notAfterForever,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, p.Manufacturer.Cert, key.Public(), p.Manufacturer.Key)
	if err != nil {
		return fmt.Errorf("signing the IDevID certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing the new IDevID certificate: %w", err)
	}
	if err := writeKeyPair(p.IDevIDCertFile, p.IDevIDKeyFile, key, cert, p.Manufacturer.Cert); err != nil {
		return fmt.Errorf("writing the IDevID: %w", err)
	}
	p.IDevID, p.IDevIDKey = cert, key
	return nil
}

// LoadPKI reads a PKI written by NewPKI; the serial number comes from the
// IDevID's subject.
func LoadPKI(dir string) (*PKI, error) {
	manufacturer, err := LoadCA(dir, manufacturerName)
	if err != nil {
		return nil, fmt.Errorf("loading the lab PKI in %s: %w", dir, err)
	}
	serverCA, err := LoadCA(dir, serverCAName)
	if err != nil {
		return nil, fmt.Errorf("loading the lab PKI in %s: %w", dir, err)
	}
	p := &PKI{
		Dir:             dir,
		Manufacturer:    manufacturer,
		ServerCA:        serverCA,
		IDevIDCertFile:  filepath.Join(dir, idevidCertFileName),
		IDevIDKeyFile:   filepath.Join(dir, idevidKeyFileName),
		TrustAnchorFile: filepath.Join(dir, trustAnchorFileName),
	}
	certs, err := readCertificates(p.IDevIDCertFile)
	if err != nil {
		return nil, fmt.Errorf("loading the lab IDevID: %w", err)
	}
	key, err := readPrivateKey(p.IDevIDKeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the lab IDevID: %w", err)
	}
	if err := checkKeyMatches(certs[0], key); err != nil {
		return nil, fmt.Errorf("loading the lab IDevID: %w", err)
	}
	if err := certs[0].CheckSignatureFrom(manufacturer.Cert); err != nil {
		return nil, fmt.Errorf("loading the lab IDevID: it was not issued by %s: %w", manufacturer.CertFile, err)
	}
	p.IDevID, p.IDevIDKey, p.SerialNumber = certs[0], key, certs[0].Subject.SerialNumber
	if p.SerialNumber == "" {
		return nil, fmt.Errorf("loading the lab IDevID: %s has no serialNumber in its subject", p.IDevIDCertFile)
	}
	anchors, err := readCertificates(p.TrustAnchorFile)
	if err != nil {
		return nil, fmt.Errorf("loading the lab trust anchor: %w", err)
	}
	if !anchors[0].Equal(serverCA.Cert) {
		return nil, fmt.Errorf("loading the lab trust anchor: %s does not hold %s", p.TrustAnchorFile, serverCA.CertFile)
	}
	if err := p.loadSigningPKI(); err != nil {
		return nil, fmt.Errorf("loading the lab PKI in %s: %w", dir, err)
	}
	return p, nil
}

// LoadOrCreatePKI reuses the PKI in dir when there is one, so that a
// restarted lab server keeps the trust anchor and IDevID an agent already
// holds, and creates one otherwise (for DefaultSerialNumber when
// serialNumber is empty). A non-empty serialNumber that differs from the
// existing IDevID's is an error rather than a silent re-issue.
func LoadOrCreatePKI(dir, serialNumber string) (p *PKI, created bool, err error) {
	_, statErr := os.Stat(filepath.Join(dir, idevidCertFileName))
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		if serialNumber == "" {
			serialNumber = DefaultSerialNumber
		}
		p, err = NewPKI(dir, serialNumber)
		return p, true, err
	case statErr != nil:
		return nil, false, fmt.Errorf("looking for a lab PKI in %s: %w", dir, statErr)
	}
	p, err = LoadPKI(dir)
	if err != nil {
		return nil, false, err
	}
	if serialNumber != "" && serialNumber != p.SerialNumber {
		return nil, false, fmt.Errorf("the lab PKI in %s was made for serial number %q, not %q: remove the directory to make a new one", dir, p.SerialNumber, serialNumber)
	}
	if p.Owner == nil {
		// A directory from before signed mode: keep its IDevID and trust
		// anchor (an agent may hold them) and add what is missing.
		if err := p.createSigningPKI(); err != nil {
			return nil, false, fmt.Errorf("adding signed-data credentials to the lab PKI in %s: %w", dir, err)
		}
	}
	return p, false, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func pemCertificates(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// writeKeyPair writes the key first and the certificate (followed by chain)
// second, each atomically, so a reader never sees a certificate whose key is
// not on disk yet.
func writeKeyPair(certFile, keyFile string, key crypto.Signer, cert *x509.Certificate, chain ...*x509.Certificate) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding the private key: %w", err)
	}
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(certFile, pemCertificates(append([]*x509.Certificate{cert}, chain...)...), 0o644)
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d of %s: %w", len(certs)+1, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("reading certificates: %s holds no PEM certificate", path)
	}
	return certs, nil
}

func readPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("reading private key: %s holds no PEM PKCS#8 private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parsing private key %s: %T cannot sign", path, key)
	}
	return signer, nil
}

func checkKeyMatches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the private key does not match certificate %q", cert.Subject.CommonName)
	}
	return nil
}
