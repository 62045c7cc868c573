package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
	"github.com/sztp-agent/sztp-agent/internal/cli"
	"github.com/sztp-agent/sztp-agent/lab"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Main(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func TestVersion(t *testing.T) {
	r := run(t, "version")
	if r.code != cli.ExitOK || strings.TrimSpace(r.stdout) == "" {
		t.Errorf("version: %+v", r)
	}
}

// labArgs starts a lab server answering def and returns the run flags that
// point the agent at it.
func labArgs(t *testing.T, def *lab.Definition) (*lab.Server, []string) {
	t.Helper()
	pki, err := lab.NewPKI(t.TempDir(), "SN-CLI-1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := lab.Start(lab.Options{PKI: pki, Definition: def})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	emptyConfig := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(emptyConfig, nil, 0o600)
	return s, []string{"run", "--once", "--bootstrap-url", s.URL(), "--trust-anchor", pki.TrustAnchorFile,
		"--idevid-cert", pki.IDevIDCertFile, "--idevid-key", pki.IDevIDKeyFile,
		"--os-name", "LabOS", "--os-version", "1.0", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
		"--config-apply-command", "true", "--log-level", "error", "--config", emptyConfig}
}

func TestUsageErrors(t *testing.T) {
	_, base := labArgs(t, &lab.Definition{Status: 404})
	for name, args := range map[string][]string{
		"no command":      {},
		"unknown command": {"frobnicate"},
		"unknown flag":    {"run", "--no-such-flag"},
		"no source":       withoutFlag(base, "--bootstrap-url"),
		"unknown source":  append(withoutFlag(base, "--bootstrap-url"), "--sources", "carrier-pigeon"),
		"http bootstrap":  append(base[:0:0], append(base, "--bootstrap-url", "http://127.0.0.1:1")...),
		"bad header":      append(base[:0:0], append(base, "--http-header", "no-colon")...),
		"bad log level":   append(base[:0:0], append(base, "--log-level", "loud")...),
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, args...)
			if r.code != cli.ExitUsage {
				t.Errorf("exit %d, want %d; stderr %s", r.code, cli.ExitUsage, r.stderr)
			}
		})
	}
}

// withoutFlag drops a flag and its value from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func TestEnvironmentErrors(t *testing.T) {
	_, base := labArgs(t, &lab.Definition{Status: 404})
	missing := filepath.Join(t.TempDir(), "missing.pem")
	r := run(t, append(base, "--trust-anchor", missing)...)
	if r.code != cli.ExitEnvironment || !strings.Contains(r.stderr, "missing.pem") {
		t.Errorf("missing trust anchor: exit %d, stderr %q", r.code, r.stderr)
	}
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	r = run(t, append(base, "--state-dir", filepath.Join(blocker, "state"))...)
	if r.code != cli.ExitEnvironment {
		t.Errorf("unusable state dir: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestConfigFileMirrorsFlagsAndFlagsWin(t *testing.T) {
	s, base := labArgs(t, &lab.Definition{Status: 404})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("http-header:\n  - 'X-From-Config: yes'\nonce: true\nlog-level: error\n"), 0o600)
	r := run(t, append(base, "--config", cfg)...)
	if r.code != cli.ExitFailed { // 404: nothing to bootstrap from
		t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
	}
	if got := s.Requests()[0].Header.Get("X-From-Config"); got != "yes" {
		t.Errorf("header from config file = %q", got)
	}
	os.WriteFile(cfg, []byte("no-such-key: 1\n"), 0o600)
	if r := run(t, append(base, "--config", cfg)...); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no-such-key") {
		t.Errorf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestBadInputGivesOneErrorLine: whatever a server sends, the agent ends with
// one clear error line and a non-zero exit, never a panic.
func TestBadInputGivesOneErrorLine(t *testing.T) {
	body := func(conveyed string) []byte {
		return []byte(`{"ietf-sztp-bootstrap-server:output":{"conveyed-information":"` + conveyed + `"}}`)
	}
	ci := func(content string) string {
		der, _ := cms.MarshalData(cms.OIDSZTPConveyedInfoJSON, []byte(content))
		return base64.StdEncoding.EncodeToString(der)
	}
	signed, _ := cms.MarshalCertificateBag(nil)
	for _, tc := range []struct {
		name, want string
		raw        lab.RawResponse
	}{
		{"malformed JSON body", "decoding get-bootstrapping-data output", lab.RawResponse{Status: 200, Body: []byte(`{"ietf-sztp-bootstrap-server:output":`)}},
		{"HTML body", "decoding get-bootstrapping-data output", lab.RawResponse{Status: 200, Body: []byte(`<html>oops</html>`)}},
		{"base64 error", "not valid base64", lab.RawResponse{Status: 200, Body: body("!!not-base64!!")}},
		{"not CMS", "parsing CMS ContentInfo", lab.RawResponse{Status: 200, Body: body(base64.StdEncoding.EncodeToString([]byte("plain text")))}},
		{"wrong CMS content type", "signed", lab.RawResponse{Status: 200, Body: body(base64.StdEncoding.EncodeToString(signed))}},
		{"malformed conveyed JSON", "conveyed information", lab.RawResponse{Status: 200, Body: body(ci(`{"ietf-sztp-conveyed-info:onboarding-information":`))}},
		{"unknown conveyed type", "neither redirect-information", lab.RawResponse{Status: 200, Body: body(ci(`{"x:y":{}}`))}},
		{"oversized body", "limit", lab.RawResponse{Status: 200, Body: bytes.Repeat([]byte(" "), 17<<20)}},
		{"HTTP 500", "HTTP 500", lab.RawResponse{Status: 500, Body: []byte(`{"ietf-restconf:errors":{"error":[{"error-type":"application","error-tag":"operation-failed","error-message":"database down"}]}}`)}},
		{"redirect status", "HTTP 302", lab.RawResponse{Status: 302, Body: nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw
			if raw.ContentType == "" {
				raw.ContentType = "application/yang-data+json"
			}
			_, args := labArgs(t, &lab.Definition{Raw: &raw})
			r := run(t, args...)
			if r.code != cli.ExitFailed {
				t.Errorf("exit %d, want %d", r.code, cli.ExitFailed)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "sztp-agent: error: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q, want one error line mentioning %q", r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Errorf("panic: %s", r.stderr)
			}
		})
	}
}

// TestRemovableStorageSignedArtifacts: artifacts made by the openssl CLI
// (testdata/ownership/generate.sh) on a "USB stick": the agent finds them
// without any server, verifies the voucher chain and applies the
// configuration. Unsigned onboarding information on a stick is refused.
func TestRemovableStorageSignedArtifacts(t *testing.T) {
	const fixtures = "../../testdata/ownership"
	stick := t.TempDir()
	dir := filepath.Join(stick, "acme", "SN-OWN-0001", "bootstrapping-data")
	os.MkdirAll(dir, 0o755)
	cp := func(from, to string) {
		data, err := os.ReadFile(filepath.Join(fixtures, from))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, to), data, 0o644)
	}
	cp("conveyed.cms", "conveyed-information.cms")
	cp("owner-certificate.cms", "owner-certificate.cms")
	cp("voucher.cms", "ownership-voucher.cms")
	applied := filepath.Join(t.TempDir(), "applied")
	emptyConfig := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(emptyConfig, nil, 0o600)
	args := []string{"run", "--once", "--config", emptyConfig, "--removable-root", stick,
		"--idevid-cert", filepath.Join(fixtures, "device.crt"), "--idevid-key", filepath.Join(fixtures, "device.key"),
		"--voucher-trust-anchor", filepath.Join(fixtures, "voucher-trust-anchor.pem"),
		"--os-name", "TestOS", "--os-version", "2.1", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
		"--config-apply-command", `cp "$SZTP_CONFIG_PATH" ` + applied, "--log-level", "error"}
	r := run(t, args...)
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if got, _ := os.ReadFile(applied); string(got) != "<config/>" {
		t.Errorf("applied %q", got)
	}
	if !strings.Contains(r.stdout, "pinned-domain-cert") {
		t.Errorf("plan does not show the verification steps:\n%s", r.stdout)
	}

	// The same stick with the signature stripped: unsigned onboarding
	// information from an untrusted source is never acted upon.
	unsigned, _ := cms.MarshalData(cms.OIDSZTPConveyedInfoJSON, []byte(`{"ietf-sztp-conveyed-info:onboarding-information":{"configuration-handling":"merge","configuration":"PGJhZC8+"}}`))
	os.WriteFile(filepath.Join(dir, "conveyed-information.cms"), unsigned, 0o644)
	os.Remove(filepath.Join(dir, "owner-certificate.cms"))
	os.Remove(filepath.Join(dir, "ownership-voucher.cms"))
	os.Remove(applied)
	r = run(t, append(args, "--state-dir", t.TempDir())...)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "untrusted") {
		t.Errorf("unsigned stick: exit %d, stderr %s", r.code, r.stderr)
	}
	if _, err := os.Stat(applied); err == nil {
		t.Error("configuration from an unsigned stick was applied")
	}
}

// TestValidate: the offline check owners run before loading a server or a
// stick, on artifacts made by the openssl CLI.
func TestValidate(t *testing.T) {
	const f = "../../testdata/ownership/"
	good := []string{"validate", "--conveyed-information", f + "conveyed.cms", "--owner-certificate", f + "owner-certificate.cms",
		"--ownership-voucher", f + "voucher.cms", "--voucher-trust-anchor", f + "voucher-trust-anchor.pem", "--idevid-cert", f + "device.crt"}
	r := run(t, good...)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "VALID") || !strings.Contains(r.stdout, "configuration-handling: merge") ||
		!strings.Contains(r.stdout, "ok   owner certificate") || !strings.Contains(r.stdout, "TestOS 2.1") {
		t.Errorf("valid set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Encrypted artifacts open with the device key.
	enc := []string{"validate", "--conveyed-information", f + "enc-conveyed.cms", "--owner-certificate", f + "enc-owner-certificate.cms",
		"--ownership-voucher", f + "enc-voucher.cms", "--voucher-trust-anchor", f + "voucher-trust-anchor.pem",
		"--idevid-cert", f + "device.crt", "--idevid-key", f + "device.key"}
	if r := run(t, enc...); r.code != cli.ExitOK || !strings.Contains(r.stdout, "decrypted with the device key") {
		t.Errorf("encrypted set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for name, swap := range map[string][2]string{
		"voucher from another MASA":     {f + "voucher.cms", f + "voucher-masa2.cms"},
		"expired voucher":               {f + "voucher.cms", f + "voucher-expired.cms"},
		"voucher for another serial":    {f + "voucher.cms", f + "voucher-serial.cms"},
		"conveyed signed by a stranger": {f + "conveyed.cms", f + "conveyed-rogue.cms"},
		"owner cert from another CA":    {f + "owner-certificate.cms", f + "owner-certificate-other.cms"},
	} {
		args := slices.Clone(good)
		for i, a := range args {
			if a == swap[0] {
				args[i] = swap[1]
			}
		}
		r := run(t, args...)
		if r.code != cli.ExitFailed || !strings.Contains(r.stdout, "INVALID") {
			t.Errorf("%s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, "validate"); r.code != cli.ExitUsage {
		t.Errorf("no arguments: exit %d", r.code)
	}
}
