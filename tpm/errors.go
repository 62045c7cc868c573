package tpm

import (
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// tpmError makes TPM response codes readable: go-tpm's TPMRC already renders
// the code's name and description, and we add the raw value because that is
// what TPM vendors' documentation and tpm2_rc_decode work with. Transport
// errors pass through unchanged. The TPMRC stays reachable with errors.Is/As.
func tpmError(err error) error {
	var rc tpm2.TPMRC
	if errors.As(err, &rc) {
		return fmt.Errorf("TPM response code 0x%03X: %w", uint32(rc), err)
	}
	return err
}

// hashAlg maps a Go hash to its TPM algorithm ID.
func hashAlg(h crypto.Hash) (tpm2.TPMAlgID, error) {
	switch h {
	case crypto.SHA1:
		return tpm2.TPMAlgSHA1, nil
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	case 0:
		return 0, errors.New("the TPM signs only pre-hashed digests; no hash function given")
	}
	return 0, fmt.Errorf("hash %v is not supported by the TPM signer", h)
}

// algName gives the TCG name of the algorithms that appear in our errors.
func algName(a tpm2.TPMAlgID) string {
	names := map[tpm2.TPMAlgID]string{
		tpm2.TPMAlgNull:      "NULL",
		tpm2.TPMAlgRSA:       "RSA",
		tpm2.TPMAlgECC:       "ECC",
		tpm2.TPMAlgRSASSA:    "RSASSA",
		tpm2.TPMAlgRSAPSS:    "RSAPSS",
		tpm2.TPMAlgRSAES:     "RSAES",
		tpm2.TPMAlgOAEP:      "OAEP",
		tpm2.TPMAlgECDSA:     "ECDSA",
		tpm2.TPMAlgECDH:      "ECDH",
		tpm2.TPMAlgECDAA:     "ECDAA",
		tpm2.TPMAlgSHA1:      "SHA1",
		tpm2.TPMAlgSHA256:    "SHA256",
		tpm2.TPMAlgSHA384:    "SHA384",
		tpm2.TPMAlgSHA512:    "SHA512",
		tpm2.TPMAlgKeyedHash: "KEYEDHASH",
	}
	if n, ok := names[a]; ok {
		return n
	}
	return fmt.Sprintf("alg 0x%04X", uint16(a))
}

// schemeName renders a scheme with its hash, e.g. "RSAPSS-SHA256".
func schemeName(alg, hash tpm2.TPMAlgID) string {
	if hash == tpm2.TPMAlgNull || hash == 0 {
		return algName(alg)
	}
	return algName(alg) + "-" + algName(hash)
}

// Retry policy for the TPM's "try again" warnings (TPM 2.0 Part 2, 6.6.3):
// TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING say nothing is wrong with
// the command, the TPM was just busy (self-test of an algorithm on first use
// after TPM2_Startup, a resource manager swapping contexts). TSS stacks retry
// them; without this the first signature after a reboot can fail. Bounded so
// a TPM that keeps answering RETRY still yields an error within ~3 s.
const (
	retryAttempts = 20
	retryFirst    = 5 * time.Millisecond
	retryMax      = 200 * time.Millisecond
)

func withRetry[R any](f func() (R, error)) (R, error) {
	delay := retryFirst
	for attempt := 1; ; attempt++ {
		r, err := f()
		if err == nil || attempt >= retryAttempts || !retryable(err) {
			return r, err
		}
		time.Sleep(delay)
		delay = min(2*delay, retryMax)
	}
}

func retryable(err error) bool {
	return errors.Is(err, tpm2.TPMRCRetry) || errors.Is(err, tpm2.TPMRCYielded) || errors.Is(err, tpm2.TPMRCTesting)
}
