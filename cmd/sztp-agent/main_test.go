package main_test

// Blackbox tests of the built binary: what systemd and an operator see.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/lab"
)

var agentBin, labBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sztp-agent-bin-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "sztp-agent")
	labBin = filepath.Join(dir, "sztp-lab")
	for bin, pkg := range map[string]string{agentBin: ".", labBin: "../sztp-lab"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// killingProxy fronts a lab server as the device's bootstrap server and
// SIGKILLs the agent when it reports a given progress type, before the
// report reaches the server: a deterministic crash at a step boundary.
type killingProxy struct {
	mu       sync.Mutex
	killAt   string
	fired    bool
	proc     *os.Process
	upstream *httputil.ReverseProxy
}

func (k *killingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, ":report-progress") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in map[string]map[string]any
		json.Unmarshal(body, &in)
		typ, _ := in["ietf-sztp-bootstrap-server:input"]["progress-type"].(string)
		k.mu.Lock()
		if typ == k.killAt && !k.fired && k.proc != nil {
			k.fired = true
			k.proc.Signal(syscall.SIGKILL)
			k.mu.Unlock()
			http.Error(w, "agent killed", http.StatusServiceUnavailable)
			return
		}
		k.mu.Unlock()
	}
	k.upstream.ServeHTTP(w, r)
}

func TestSIGKILLAtEachStepResumesWithoutRepeating(t *testing.T) {
	for _, killAt := range []string{
		"bootstrap-initiated", "boot-image-mismatch", "boot-image-installed-rebooting",
		"pre-script-initiated", "pre-script-complete", "config-initiated", "config-complete",
		"post-script-complete", "bootstrap-complete",
	} {
		t.Run(killAt, func(t *testing.T) { killAndResume(t, killAt) })
	}
}

func killAndResume(t *testing.T, killAt string) {
	pki, err := lab.NewPKI(t.TempDir(), "SN-KILL-1")
	if err != nil {
		t.Fatal(err)
	}
	marks := t.TempDir()
	mark := func(n string) string { return filepath.Join(marks, n) }
	script := func(name string) []byte {
		return []byte("#!/bin/sh\necho " + name + " >> " + mark("order") + "\n")
	}
	img := bytes.Repeat([]byte("LabOS 2.0\n"), 100000)
	srv, err := lab.Start(lab.Options{PKI: pki, Definition: &lab.Definition{ReportingLevel: "verbose", Onboarding: &lab.Onboarding{
		BootImage:                   &lab.BootImage{OSName: "LabOS", OSVersion: "2.0", ImageData: img, ImageName: "labos.img"},
		PreConfigurationScriptData:  script("pre"),
		ConfigurationData:           []byte("hostname leaf-1\n"),
		ConfigurationHandling:       "replace",
		PostConfigurationScriptData: script("post"),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// The proxy speaks to the lab as the device would (IDevID client cert)
	// and presents a certificate from the same server CA.
	idevid, _ := tls.LoadX509KeyPair(pki.IDevIDCertFile, pki.IDevIDKeyFile)
	roots := x509.NewCertPool()
	roots.AddCert(pki.ServerCA.Cert)
	upstreamURL, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(upstreamURL)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{idevid}}}
	kp := &killingProxy{killAt: killAt, upstream: rp}
	front := httptest.NewUnstartedServer(kp)
	cert, err := pki.ServerCA.IssueServer(t.TempDir(), "front", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	front.StartTLS()
	defer front.Close()

	stateDir, runDir := t.TempDir(), t.TempDir()
	osVersion := "1.0"
	for attempt := 1; ; attempt++ {
		if attempt > 8 {
			t.Fatal("no bootstrap-complete after 8 starts")
		}
		cmd := exec.Command(agentBin, "run", "--once", "--bootstrap-url", front.URL, "--trust-anchor", pki.TrustAnchorFile,
			"--idevid-cert", pki.IDevIDCertFile, "--idevid-key", pki.IDevIDKeyFile,
			"--os-name", "LabOS", "--os-version", osVersion, "--state-dir", stateDir, "--run-dir", runDir,
			"--ssh-host-key-dir", t.TempDir(), "--log-level", "warn",
			"--image-install-command", "echo install >> "+mark("order"),
			"--config-apply-command", `echo "config-$SZTP_CONFIG_HANDLING" >> `+mark("order"),
			"--reboot-command", "echo reboot >> "+mark("order"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kp.mu.Lock()
		kp.proc = cmd.Process
		kp.mu.Unlock()
		err := cmd.Wait()
		var status struct{ State string }
		out, _ := exec.Command(agentBin, "status", "--json", "--state-dir", stateDir, "--run-dir", runDir).Output()
		json.Unmarshal(out, &status)
		t.Logf("start %d: %v, state %s, stderr %s", attempt, err, status.State, strings.TrimSpace(stderr.String()))
		if err == nil && status.State == "boot-image-installed-rebooting" {
			osVersion = "2.0" // the device rebooted into the new image
			continue
		}
		if err == nil && status.State == "bootstrap-complete" {
			break
		}
	}
	if !kp.fired {
		t.Fatalf("the agent never reported %s", killAt)
	}
	data, _ := os.ReadFile(mark("order"))
	if got, want := strings.Fields(string(data)), []string{"install", "reboot", "pre", "config-replace", "post"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ran %v, want each step exactly once: %v", got, want)
	}
}

func TestStatusEnableDisableResetExitCodes(t *testing.T) {
	stateDir, runDir := t.TempDir(), t.TempDir()
	run := func(args ...string) (int, string) {
		cmd := exec.Command(agentBin, append(args, "--state-dir", stateDir, "--run-dir", runDir)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	if code, out := run("status", "--code"); code != 0 || strings.TrimSpace(out) != "1:NOT-STARTED" {
		t.Errorf("fresh status: %d %q", code, out)
	}
	if code, out := run("disable", "--reason", "configured by hand in the lab"); code != 0 {
		t.Fatalf("disable: %d %s", code, out)
	}
	code, out := run("status", "--json")
	var s map[string]any
	if json.Unmarshal([]byte(out), &s) != nil || s["enabled"] != false || s["disabled-reason"] != "configured by hand in the lab" || s["state"] != "not-started" {
		t.Errorf("status --json: %d %s", code, out)
	}
	if code, _ := run("status", "--wait", "--timeout", "5s"); code != 4 {
		t.Errorf("status --wait while disabled: exit %d, want 4", code)
	}
	if code, out := run("run", "--once", "--bootstrap-url", "https://127.0.0.1:1", "--idevid-cert", "/nonexistent", "--idevid-key", "/nonexistent"); code != 3 {
		t.Errorf("run with unreadable identity: exit %d (%s)", code, out)
	}
	run("enable")
	start := time.Now()
	if code, _ := run("status", "--wait", "--timeout", "300ms", "--poll", "50ms"); code != 6 || time.Since(start) > 3*time.Second {
		t.Errorf("status --wait timeout: exit %d after %v, want 6", code, time.Since(start))
	}
	// A completed bootstrap: --wait returns 0 at once, and a bootstrap
	// that completes while it waits wakes it.
	os.WriteFile(filepath.Join(stateDir, "state.json"), []byte(`{"version":1,"phase":"in-progress"}`), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waiter := exec.CommandContext(ctx, agentBin, "status", "--wait", "--timeout", "8s", "--poll", "50ms", "--state-dir", stateDir, "--run-dir", runDir)
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(filepath.Join(stateDir, "state.json"), []byte(`{"version":1,"phase":"bootstrap-complete"}`), 0o600)
	if err := waiter.Wait(); err != nil {
		t.Errorf("status --wait on completion: %v", err)
	}
	if code, out := run("reset"); code != 0 {
		t.Fatalf("reset: %d %s", code, out)
	}
	if code, out := run("status", "--code"); code != 0 || strings.TrimSpace(out) != "1:NOT-STARTED" {
		t.Errorf("after reset: %d %q", code, out)
	}
	if code, out := run("version"); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("version: %d %q", code, out)
	}
}
