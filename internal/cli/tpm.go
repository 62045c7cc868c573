package cli

import (
	"crypto/ecdsa"
	"fmt"
	"os"
	"strconv"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/tpm"
)

// hexFlag is a 32-bit TPM handle or NV index, written in hex (0x81020000)
// or decimal.
type hexFlag uint32

func (h *hexFlag) String() string { return fmt.Sprintf("0x%08X", uint32(*h)) }

func (h *hexFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("want a 32-bit handle such as 0x81020000: %w", err)
	}
	*h = hexFlag(v)
	return nil
}

// loadTPMIdentity opens the TPM and takes the IDevID from it: the key at
// the persistent handle, the certificate chain from --idevid-cert (whose
// leaf must match the key) or from the NV index. The private key never
// leaves the TPM; the transport stays open for the agent's life.
func (f *runFlags) loadTPMIdentity(cfg *agent.Config) error {
	var certPEM []byte
	if f.idevidCert != "" {
		var err error
		if certPEM, err = os.ReadFile(f.idevidCert); err != nil {
			return fmt.Errorf("%w: reading IDevID certificate: %w", agent.ErrEnvironment, err)
		}
	}
	t, err := tpm.Open(f.tpm)
	if err != nil {
		return fmt.Errorf("%w: opening the TPM: %w", agent.ErrEnvironment, err)
	}
	k, err := tpm.LoadIDevID(t, uint32(f.tpmKeyHandle), uint32(f.tpmCertIndex), certPEM)
	if err != nil {
		t.Close()
		return fmt.Errorf("%w: loading the IDevID from the TPM: %w", agent.ErrEnvironment, err)
	}
	cfg.Identity = k.Certificate()
	// Artifacts encrypted to the IDevID open inside the TPM too, when the
	// key was made with the decrypt attribute: RSA key transport or ECDH.
	// A key without it fails only if an encrypted artifact arrives, with
	// the TPM package's error saying so.
	switch k.Public().(type) {
	case *ecdsa.PublicKey:
		cfg.DecryptionKey = k // ECDH through TPM2_ECDH_ZGen
	default:
		if d, err := k.Decrypter(); err == nil {
			cfg.DecryptionKey = d
		}
	}
	if cfg.SerialNumber == "" {
		cfg.SerialNumber = k.SerialNumber()
	}
	return nil
}
