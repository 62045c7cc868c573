//go:build cgo

// The in-process TPM simulator (Microsoft reference code via cgo) needs cgo;
// CGO_ENABLED=0 builds of the package and its other tests stay unaffected.

package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/sztp-agent/sztp-agent/tpm"
)

// simKey describes one key the Go "factory" provisions into the simulator.
type simKey struct {
	name    string
	handle  uint32
	nvIndex uint32
	tmpl    tpm2.TPMTPublic
	serial  string
	// nvExtra is appended to the leaf DER in NV (chain, padding).
	nvExtra func(ca *testCA) []byte
}

func eccTemplate(curve tpm2.TPMECCCurve, scheme, hash tpm2.TPMAlgID, decrypt bool) tpm2.TPMTPublic {
	size := 32
	if curve == tpm2.TPMECCNistP384 {
		size = 48
	}
	s := tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull}
	if scheme == tpm2.TPMAlgECDSA {
		s = tpm2.TPMTECCScheme{Scheme: scheme, Details: tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeECDSA{HashAlg: hash})}
	}
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
			SignEncrypt: true, Decrypt: decrypt,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    s,
			CurveID:   curve,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: make([]byte, size)},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, size)},
		}),
	}
}

func rsaTemplate(scheme, hash tpm2.TPMAlgID, decrypt bool) tpm2.TPMTPublic {
	s := tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull}
	if scheme == tpm2.TPMAlgRSASSA {
		s = tpm2.TPMTRSAScheme{Scheme: scheme, Details: tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeRSASSA{HashAlg: hash})}
	}
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgRSA,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
			SignEncrypt: true, Decrypt: decrypt,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    s,
			KeyBits:   2048,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: make([]byte, 256)}),
	}
}

func openSim(t *testing.T) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("opening TPM simulator: %v", err)
	}
	// Close errors are expected for the test that closes the simulator itself.
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// errNoSupport marks keys the simulator build cannot create (e.g. a curve
// compiled out), which the caller may skip.
var errNoSupport = errors.New("not supported by this TPM")

// provision plays the factory: create the key under the endorsement
// hierarchy, persist it, certify its public key with the CA and store the
// certificate (plus nvExtra) in NV. It returns the leaf DER.
func provision(t *testing.T, tp transport.TPM, ca *testCA, k simKey) ([]byte, error) {
	t.Helper()
	primary, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHEndorsement,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("CreatePrimary: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: primary.ObjectHandle}.Execute(tp)
	parent := tpm2.NamedHandle{Handle: primary.ObjectHandle, Name: primary.Name}

	created, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(k.tmpl)}.Execute(tp)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCCurve) || errors.Is(err, tpm2.TPMRCValue) || errors.Is(err, tpm2.TPMRCKeySize) {
			return nil, fmt.Errorf("%w: %v", errNoSupport, err)
		}
		return nil, fmt.Errorf("Create: %w", err)
	}
	loaded, err := tpm2.Load{ParentHandle: parent, InPrivate: created.OutPrivate, InPublic: created.OutPublic}.Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("Load: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}.Execute(tp)
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.TPMRHOwner,
		ObjectHandle:     tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name},
		PersistentHandle: tpm2.TPMHandle(k.handle),
	}).Execute(tp); err != nil {
		return nil, fmt.Errorf("EvictControl: %w", err)
	}

	pubArea, err := created.OutPublic.Contents()
	if err != nil {
		return nil, err
	}
	pub, err := tpm2.Pub(*pubArea)
	if err != nil {
		return nil, err
	}
	leaf := ca.issue(t, pub, k.serial)
	data := append([]byte{}, leaf...)
	if k.nvExtra != nil {
		data = append(data, k.nvExtra(ca)...)
	}
	if err := writeNV(tp, k.nvIndex, data); err != nil {
		return nil, err
	}
	return leaf, nil
}

func defineNV(tp transport.TPM, index uint32, size int) (tpm2.TPM2BName, error) {
	def := tpm2.NVDefineSpace{
		AuthHandle: tpm2.TPMRHOwner,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: tpm2.TPMHandle(index),
			NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{
				OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true,
				NT: tpm2.TPMNTOrdinary,
			},
			DataSize: uint16(size),
		}),
	}
	if _, err := def.Execute(tp); err != nil {
		return tpm2.TPM2BName{}, fmt.Errorf("NVDefineSpace 0x%08X: %w", index, err)
	}
	rp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(index)}.Execute(tp)
	if err != nil {
		return tpm2.TPM2BName{}, fmt.Errorf("NVReadPublic: %w", err)
	}
	return rp.NVName, nil
}

func writeNV(tp transport.TPM, index uint32, data []byte) error {
	name, err := defineNV(tp, index, len(data))
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 512 {
		end := min(off+512, len(data))
		if _, err := (tpm2.NVWrite{
			AuthHandle: tpm2.TPMRHOwner,
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: name},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off:end]},
			Offset:     uint16(off),
		}).Execute(tp); err != nil {
			return fmt.Errorf("NVWrite 0x%08X at %d: %w", index, off, err)
		}
	}
	return nil
}

const (
	hECC256 = 0x81020000
	hECC384 = 0x81020001
	hRSA    = 0x81020002
	hECDH   = 0x81020003
	hRSAFix = 0x81020004
)

func simKeys() []simKey {
	return []simKey{
		{name: "ECC-P256", handle: hECC256, nvIndex: tpm.DefaultCertIndex, serial: "SIM-P256-0001",
			tmpl: eccTemplate(tpm2.TPMECCNistP256, tpm2.TPMAlgECDSA, tpm2.TPMAlgSHA256, false)},
		{name: "ECC-P384", handle: hECC384, nvIndex: 0x01C90010, serial: "SIM-P384-0001",
			tmpl: eccTemplate(tpm2.TPMECCNistP384, tpm2.TPMAlgECDSA, tpm2.TPMAlgSHA384, false)},
		// RSA, null scheme, sign|decrypt; NV holds leaf + CA + zero padding,
		// as a factory that sized the index generously would leave it.
		{name: "RSA-2048", handle: hRSA, nvIndex: 0x01C90020, serial: "SIM-RSA-0001",
			tmpl: rsaTemplate(tpm2.TPMAlgNull, 0, true),
			nvExtra: func(ca *testCA) []byte {
				return append(append([]byte{}, ca.cert.Raw...), make([]byte, 37)...)
			}},
		{name: "ECC-P256-ECDH", handle: hECDH, nvIndex: 0x01C90030, serial: "SIM-ECDH-0001",
			tmpl: eccTemplate(tpm2.TPMECCNistP256, tpm2.TPMAlgNull, 0, true)},
		{name: "RSA-2048-fixed-RSASSA", handle: hRSAFix, nvIndex: 0x01C90040, serial: "SIM-RSAFIX-0001",
			tmpl: rsaTemplate(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256, false)},
	}
}

func TestSimulatorIDevID(t *testing.T) {
	sim := openSim(t)
	ca := newTestCA(t)
	leaves := map[uint32][]byte{}
	supported := map[uint32]bool{}
	for _, k := range simKeys() {
		leaf, err := provision(t, sim, ca, k)
		if errors.Is(err, errNoSupport) {
			t.Logf("simulator cannot create %s, skipping it: %v", k.name, err)
			continue
		}
		if err != nil {
			t.Fatalf("provisioning %s: %v", k.name, err)
		}
		leaves[k.handle] = leaf
		supported[k.handle] = true
	}

	for _, k := range simKeys() {
		if !supported[k.handle] {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			id, err := tpm.LoadIDevID(sim, k.handle, k.nvIndex, nil)
			if err != nil {
				t.Fatalf("LoadIDevID: %v", err)
			}
			if got := id.SerialNumber(); got != k.serial {
				t.Fatalf("SerialNumber() = %q, want %q", got, k.serial)
			}
			cert := id.Certificate()
			if cert.Leaf == nil || !bytes.Equal(cert.Certificate[0], leaves[k.handle]) {
				t.Fatal("Certificate() leaf differs from the provisioned certificate")
			}
			if k.handle == hRSA && len(cert.Certificate) != 2 {
				t.Fatalf("NV chain with padding: got %d certificates, want 2", len(cert.Certificate))
			}
			signer := id.Signer()
			if k.handle == hRSAFix {
				checkFixedRSASSA(t, id, ca)
				return
			}
			checkSignatures(t, signer)
			checkCSR(t, signer)
			for _, v := range tlsVersions {
				if err := mutualTLS(t, cert, ca.pool, v.v, k.serial); err != nil {
					t.Fatalf("%s mutual TLS: %v", v.name, err)
				}
			}
		})
	}

	t.Run("RSA-2048/TLS-schemes", func(t *testing.T) {
		id, err := tpm.LoadIDevID(sim, hRSA, 0x01C90020, nil)
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3: Go must use PSS (PKCS#1 v1.5 is forbidden there).
		rec := &recordingSigner{Signer: id.Signer()}
		cert := id.Certificate()
		cert.PrivateKey = rec
		if err := mutualTLS(t, cert, ca.pool, tls.VersionTLS13, "SIM-RSA-0001"); err != nil {
			t.Fatal(err)
		}
		if pss, plain := rec.counts(); pss == 0 || plain != 0 {
			t.Fatalf("TLS 1.3 signatures: pss=%d pkcs1=%d, want only PSS", pss, plain)
		}
		// TLS 1.2 restricted to rsa_pkcs1_sha256: the null-scheme key must
		// produce PKCS#1 v1.5 on demand.
		rec = &recordingSigner{Signer: id.Signer()}
		cert.PrivateKey = rec
		cert.SupportedSignatureAlgorithms = []tls.SignatureScheme{tls.PKCS1WithSHA256}
		if err := mutualTLS(t, cert, ca.pool, tls.VersionTLS12, "SIM-RSA-0001"); err != nil {
			t.Fatal(err)
		}
		if pss, plain := rec.counts(); pss != 0 || plain == 0 {
			t.Fatalf("TLS 1.2 PKCS#1-only signatures: pss=%d pkcs1=%d, want only PKCS#1 v1.5", pss, plain)
		}
	})

	t.Run("RSA-2048/Decrypter", func(t *testing.T) {
		id, err := tpm.LoadIDevID(sim, hRSA, 0x01C90020, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := id.Decrypter()
		if err != nil {
			t.Fatalf("Decrypter: %v", err)
		}
		checkDecrypt(t, d)
		// Session-key mode never reveals a padding failure.
		junk := make([]byte, 256)
		junk[5] = 1
		key, err := d.Decrypt(rand.Reader, junk, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
		if err != nil || len(key) != 16 {
			t.Fatalf("session-key decrypt of junk: len %d, err %v; want 16 random bytes", len(key), err)
		}
		if _, err := id.ECDH(mustECDHKey(t).PublicKey()); err == nil {
			t.Fatal("ECDH with an RSA key: want an error")
		}
	})

	t.Run("ECC-P256-ECDH/agreement", func(t *testing.T) {
		id, err := tpm.LoadIDevID(sim, hECDH, 0x01C90030, nil)
		if err != nil {
			t.Fatal(err)
		}
		peer := mustECDHKey(t)
		got, err := id.ECDH(peer.PublicKey())
		if err != nil {
			t.Fatalf("ECDH: %v", err)
		}
		own, err := id.Public().(*ecdsa.PublicKey).ECDH()
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.ECDH(own)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("TPM ECDH = %x, software ECDH = %x", got, want)
		}
		p384, _ := ecdh.P384().GenerateKey(rand.Reader)
		if _, err := id.ECDH(p384.PublicKey()); err == nil {
			t.Fatal("ECDH with a P-384 peer on a P-256 key: want an error")
		}
		if _, err := id.Decrypter(); err == nil {
			t.Fatal("Decrypter on an EC key: want an error")
		}
	})

	t.Run("ECC-P256/sign-only", func(t *testing.T) {
		id, err := tpm.LoadIDevID(sim, hECC256, tpm.DefaultCertIndex, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := id.ECDH(mustECDHKey(t).PublicKey()); err == nil || !strings.Contains(err.Error(), "decrypt attribute") {
			t.Fatalf("ECDH on a sign-only key: err = %v, want one naming the decrypt attribute", err)
		}
		// The key is fixed to ECDSA-SHA256; SHA-384 must be refused by name.
		sum := make([]byte, 48)
		if _, err := id.Signer().Sign(rand.Reader, sum, crypto.SHA384); err == nil || !strings.Contains(err.Error(), "ECDSA-SHA256") {
			t.Fatalf("SHA-384 with an ECDSA-SHA256 key: err = %v", err)
		}
	})

	t.Run("concurrent-handshakes", func(t *testing.T) {
		id, err := tpm.LoadIDevID(sim, hECC256, tpm.DefaultCertIndex, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- mutualTLS(t, id.Certificate(), ca.pool, tlsVersions[i%2].v, "SIM-P256-0001")
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("PEM", func(t *testing.T) {
		pemChain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaves[hECC256]}), ca.certPEM...)
		id, err := tpm.LoadIDevID(sim, hECC256, 0x01C9FFFF, pemChain)
		if err != nil {
			t.Fatalf("LoadIDevID with PEM: %v", err)
		}
		if n := len(id.Certificate().Certificate); n != 2 {
			t.Fatalf("PEM chain: %d certificates, want 2", n)
		}
		if err := mutualTLS(t, id.Certificate(), ca.pool, tls.VersionTLS13, "SIM-P256-0001"); err != nil {
			t.Fatal(err)
		}
		// A certificate for another key must be refused.
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		wrong := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.issue(t, other.Public(), "OTHER")})
		_, err = tpm.LoadIDevID(sim, hECC256, tpm.DefaultCertIndex, wrong)
		if err == nil || err.Error() != "IDevID certificate does not match the TPM key at 0x81020000" {
			t.Fatalf("PEM for another key: err = %v", err)
		}
		if _, err := tpm.LoadIDevID(sim, hECC256, tpm.DefaultCertIndex, []byte("junk")); err == nil {
			t.Fatal("PEM without certificates: want an error")
		}
		// The RSA key's NV certificate given for the ECC key: also a mismatch.
		if _, err := tpm.LoadIDevID(sim, hECC256, 0x01C90020, nil); err == nil || !strings.Contains(err.Error(), "does not match the TPM key at 0x81020000") {
			t.Fatalf("NV certificate of another key: err = %v", err)
		}
	})

	t.Run("wrong-handle", func(t *testing.T) {
		_, err := tpm.LoadIDevID(sim, 0x81020099, tpm.DefaultCertIndex, nil)
		if err == nil || !strings.Contains(err.Error(), "no key at persistent handle 0x81020099") {
			t.Fatalf("err = %v, want one naming the handle", err)
		}
		if !errors.Is(err, tpm2.TPMRCHandle) {
			t.Fatalf("err = %v, want TPM_RC_HANDLE reachable with errors.Is", err)
		}
	})

	t.Run("undefined-NV", func(t *testing.T) {
		_, err := tpm.LoadIDevID(sim, hECC256, 0x01C900F0, nil)
		if err == nil || !strings.Contains(err.Error(), "0x01C900F0") || !strings.Contains(err.Error(), "not defined") {
			t.Fatalf("err = %v, want one naming the undefined index", err)
		}
	})

}

// TestSimulatorNVErrors runs on a fresh simulator because the reference
// TPM's NV memory is small and the main test fills most of it.
func TestSimulatorNVErrors(t *testing.T) {
	sim := openSim(t)
	ca := newTestCA(t)
	if _, err := provision(t, sim, ca, simKeys()[0]); err != nil {
		t.Fatal(err)
	}
	t.Run("empty-NV", func(t *testing.T) {
		if _, err := defineNV(sim, 0x01C900E0, 600); err != nil {
			t.Fatal(err)
		}
		_, err := tpm.LoadIDevID(sim, hECC256, 0x01C900E0, nil)
		if err == nil || !strings.Contains(err.Error(), "0x01C900E0") || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("err = %v, want one naming the empty index", err)
		}
	})

	t.Run("garbage-NV", func(t *testing.T) {
		if err := writeNV(sim, 0x01C900D0, []byte("not a certificate at all")); err != nil {
			t.Fatal(err)
		}
		_, err := tpm.LoadIDevID(sim, hECC256, 0x01C900D0, nil)
		if err == nil || !strings.Contains(err.Error(), "0x01C900D0") {
			t.Fatalf("err = %v, want one naming the index", err)
		}
	})
}

// checkFixedRSASSA covers a key bound to RSASSA-SHA256: PKCS#1 works, PSS is
// refused by name, and Certificate() steers TLS 1.2 to PKCS#1 v1.5.
func checkFixedRSASSA(t *testing.T, id *tpm.IDevID, ca *testCA) {
	t.Helper()
	digest := sha256.Sum256([]byte("x"))
	pub := id.Public().(*rsa.PublicKey)
	sig, err := id.Signer().Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("PKCS#1 v1.5 with an RSASSA-SHA256 key: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatal(err)
	}
	_, err = id.Signer().Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	if err == nil || !strings.Contains(err.Error(), "fixed to scheme RSASSA-SHA256") {
		t.Fatalf("PSS with an RSASSA-fixed key: err = %v", err)
	}
	if _, err := id.Decrypter(); err == nil {
		t.Fatal("Decrypter on a sign-only key: want an error")
	}
	if err := mutualTLS(t, id.Certificate(), ca.pool, tls.VersionTLS12, "SIM-RSAFIX-0001"); err != nil {
		t.Fatalf("TLS 1.2 with an RSASSA-fixed key: %v", err)
	}
	// TLS 1.3 has no PKCS#1 v1.5 handshake signatures: must fail cleanly.
	if err := mutualTLS(t, id.Certificate(), ca.pool, tls.VersionTLS13, "SIM-RSAFIX-0001"); err == nil {
		t.Fatal("TLS 1.3 with an RSASSA-fixed key: want a handshake failure")
	}
}

// checkCSR uses the TPM signer through crypto/x509 (proof of possession as a
// CSR), with PSS as well for RSA keys.
func checkCSR(t *testing.T, s crypto.Signer) {
	t.Helper()
	algs := []x509.SignatureAlgorithm{x509.UnknownSignatureAlgorithm}
	if _, ok := s.Public().(*rsa.PublicKey); ok {
		algs = append(algs, x509.SHA256WithRSAPSS)
	}
	for _, alg := range algs {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "csr"}, SignatureAlgorithm: alg,
		}, s)
		if err != nil {
			t.Fatalf("CSR (%v) signed by the TPM: %v", alg, err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("CSR (%v) signature: %v", alg, err)
		}
	}
}

func mustECDHKey(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSimulatorClosedTransport(t *testing.T) {
	sim := openSim(t)
	ca := newTestCA(t)
	k := simKeys()[0]
	if _, err := provision(t, sim, ca, k); err != nil {
		t.Fatal(err)
	}
	id, err := tpm.LoadIDevID(sim, k.handle, k.nvIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSignatures(t, id.Signer())
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("after close"))
	if _, err := id.Signer().Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
		t.Fatal("signing through a closed transport: want an error")
	} else {
		t.Logf("sign after close: %v", err)
	}
	if err := mutualTLS(t, id.Certificate(), ca.pool, tls.VersionTLS13, k.serial); err == nil {
		t.Fatal("TLS with a closed TPM: want a handshake failure")
	}
}
