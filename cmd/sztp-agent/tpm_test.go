package main_test

// The IDevID in a real software TPM (swtpm), provisioned the way a factory
// does it with tpm2-tools (tools/tpm-factory.sh): the agent bootstraps
// against the lab server with no private key file anywhere.

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sztp-agent/sztp-agent/lab"
)

// factory provisions a swtpm with an IDevID issued by the PKI's
// manufacturer CA and returns the factory's KEY=value facts.
func factory(t *testing.T, pki *lab.PKI, key string) map[string]string {
	t.Helper()
	requireRootTools(t, "swtpm", "tpm2_createprimary", "openssl")
	state := t.TempDir()
	cmd := exec.Command("../../tools/tpm-factory.sh", "--state", state, "--ca-cert", pki.Manufacturer.CertFile,
		"--ca-key", pki.Manufacturer.KeyFile, "--serial", pki.SerialNumber, "--key", key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(func() { exec.Command("../../tools/tpm-stop.sh", state).Run() })
	if err != nil {
		t.Fatalf("tpm-factory: %v\n%s", err, stderr.String())
	}
	facts := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			facts[k] = v
		}
	}
	if facts["TPM"] == "" {
		t.Fatalf("tpm-factory printed no TPM=: %s", out)
	}
	return facts
}

func TestBootstrapWithIDevIDInSWTPM(t *testing.T) {
	for _, tc := range []struct {
		key     string
		encrypt bool
	}{
		{"ecc256", false},
		{"rsa2048", true}, // the artifacts are encrypted to the IDevID and opened inside the TPM
	} {
		t.Run(tc.key, func(t *testing.T) {
			pki, err := lab.NewPKI(t.TempDir(), "SN-TPM-"+tc.key)
			if err != nil {
				t.Fatal(err)
			}
			facts := factory(t, pki, tc.key)
			def := &lab.Definition{ReportingLevel: "verbose", Onboarding: &lab.Onboarding{
				ConfigurationData: []byte("from the TPM test\n"), ConfigurationHandling: "replace"}}
			if tc.encrypt {
				def.Signed = &lab.Signing{Encrypt: []string{"conveyed-information", "owner-certificate", "ownership-voucher"}}
			}
			srv, err := lab.Start(lab.Options{PKI: pki, Definition: def})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			applied := filepath.Join(t.TempDir(), "applied")
			out, err := exec.Command(agentBin, "run", "--once", "--bootstrap-url", srv.URL(), "--trust-anchor", pki.TrustAnchorFile,
				"--voucher-trust-anchor", pki.VoucherTrustAnchorFile, "--tpm", facts["TPM"],
				"--os-name", "LabOS", "--os-version", "1.0", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
				"--ssh-host-key-dir", t.TempDir(), "--config-apply-command", `cp "$SZTP_CONFIG_PATH" `+applied).CombinedOutput()
			if err != nil {
				t.Fatalf("agent: %v\n%s", err, out)
			}
			if got, _ := os.ReadFile(applied); string(got) != "from the TPM test\n" {
				t.Errorf("applied %q\n%s", got, out)
			}
			reqs := srv.Requests()
			if len(reqs) == 0 || reqs[0].Serial != pki.SerialNumber {
				t.Errorf("the server did not see the TPM IDevID's serial number: %+v", reqs)
			}
			if tc.encrypt && !strings.Contains(string(out), "decrypted with the device key") {
				t.Errorf("artifacts were not decrypted by the TPM key:\n%s", out)
			}
		})
	}
}

func TestTPMIdentityErrors(t *testing.T) {
	pki, err := lab.NewPKI(t.TempDir(), "SN-TPM-ERR")
	if err != nil {
		t.Fatal(err)
	}
	facts := factory(t, pki, "ecc256")
	other, _ := lab.NewPKI(t.TempDir(), "SN-OTHER")
	base := []string{"run", "--once", "--bootstrap-url", "https://127.0.0.1:1", "--tpm", facts["TPM"],
		"--state-dir", t.TempDir(), "--run-dir", t.TempDir()}
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"empty handle", []string{"--tpm-key-handle", "0x81020007"}, "0x81020007", 3},
		{"empty NV index", []string{"--tpm-cert-index", "0x01C90077"}, "0x01C90077", 3},
		{"certificate of another key", []string{"--idevid-cert", other.IDevIDCertFile}, "does not match", 3},
		{"no TPM there", []string{"--tpm", "swtpm:127.0.0.1:1"}, "TPM", 3},
		{"key file with TPM", []string{"--idevid-key", other.IDevIDKeyFile}, "exclude", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(agentBin, append(append([]string{}, base...), tc.args...)...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %v, output %s; want exit %d mentioning %q", err, out, tc.code, tc.want)
			}
		})
	}
}
