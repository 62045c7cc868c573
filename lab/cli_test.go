package lab

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFacts(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	facts := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("ready file line %q is not KEY=value", sc.Text())
		}
		facts[k] = v
	}
	return facts
}

func waitForFile(t *testing.T, path string, done <-chan error) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("sztp-lab exited before it was ready: %v", err)
		case <-deadline:
			t.Fatal("the ready file did not appear")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestRunCLI(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "lab-run")
	ready := filepath.Join(tmp, "ready.env")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"--dir", dir, "--addr", "127.0.0.1:0", "--serial-number", "CLI-1", "--definition", sampleDefinition, "--ready-file", ready, "--name", "lab-cli"}
	go func() { done <- RunCLI(ctx, args, &stdout, &stderr) }()
	waitForFile(t, ready, done)

	facts := readFacts(t, ready)
	for _, k := range []string{"URL", "TRUST_ANCHOR", "VOUCHER_TRUST_ANCHOR", "IDEVID_CERT", "IDEVID_KEY", "SERIAL_NUMBER"} {
		if facts[k] == "" {
			t.Errorf("ready file lacks %s: %v", k, facts)
		}
	}
	if facts["SERIAL_NUMBER"] != "CLI-1" || !strings.HasPrefix(facts["URL"], "https://127.0.0.1:") {
		t.Errorf("facts = %v", facts)
	}
	pki, err := LoadPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pki.TrustAnchorFile != facts["TRUST_ANCHOR"] || pki.IDevIDCertFile != facts["IDEVID_CERT"] || pki.IDevIDKeyFile != facts["IDEVID_KEY"] ||
		pki.VoucherTrustAnchorFile != facts["VOUCHER_TRUST_ANCHOR"] {
		t.Errorf("facts %v do not name the PKI's files", facts)
	}

	client := deviceClient(t, pki, true)
	url := facts["URL"] + reportProgressRPC
	r := do(t, client, http.MethodPost, url, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated","message":"from the test"}}`)
	if r.status != http.StatusNoContent {
		t.Fatalf("report-progress: status %d: %s", r.status, r.body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunCLI: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunCLI did not stop")
	}
	out := stdout.String()
	for _, want := range []string{"URL=https://127.0.0.1:", " lab-cli CLI-1 bootstrap-initiated \"from the test\"", "summary: 1 progress report(s) from 1 device(s)", "CLI-1: bootstrap-initiated"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the ready file outlived the server: %v", err)
	}

	// A restart reuses the PKI; asking for another serial number fails.
	err = RunCLI(context.Background(), []string{"--dir", dir, "--addr", "127.0.0.1:0", "--serial-number", "CLI-2"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CLI-1") {
		t.Errorf("restart with another serial number: %v", err)
	}
}

func TestRunCLIHelp(t *testing.T) {
	var stderr syncBuffer
	if err := RunCLI(context.Background(), []string{"--help"}, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if !strings.Contains(stderr.String(), "--ready-file") || !strings.Contains(stderr.String(), "-untrusted-tls") {
		t.Errorf("usage:\n%s", stderr.String())
	}
}

func TestRunCLIUntrustedTLSSigned(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "lab-run")
	ready := filepath.Join(tmp, "ready.env")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stderr syncBuffer
	args := []string{"--dir", dir, "--addr", "127.0.0.1:0", "--definition", "../testdata/lab/signed-onboarding.yaml", "--ready-file", ready, "--untrusted-tls"}
	go func() { done <- RunCLI(ctx, args, io.Discard, &stderr) }()
	waitForFile(t, ready, done)
	facts := readFacts(t, ready)

	anchors, err := certPool(facts["TRUST_ANCHOR"])
	if err != nil {
		t.Fatal(err)
	}
	leaf := tlsPeer(t, strings.TrimPrefix(facts["URL"], "https://"))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: anchors, DNSName: "127.0.0.1"}); err == nil {
		t.Error("TRUST_ANCHOR validates the --untrusted-tls server certificate")
	}

	// What an agent would do on a provisional connection: ask for signed
	// data with a nonce, and check the voucher against VOUCHER_TRUST_ANCHOR.
	pki, err := LoadPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := deviceClient(t, pki, true)
	client.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	r := do(t, client, http.MethodPost, facts["URL"]+getBootstrappingDataRPC, yangDataJSON, nonceInput(testNonce))
	out := signedOutputOf(t, r)
	if _, v := parsedVoucher(t, pki, out.voucher); v["nonce"] != b64(testNonce) || v["serial-number"] != DefaultSerialNumber {
		t.Errorf("voucher = %v", v)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunCLI: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunCLI did not stop")
	}
}
