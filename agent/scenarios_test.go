package agent_test

// Scenarios of RFC 8572 §5 run end to end: the agent against the lab
// bootstrap server in-process, over real TLS with real certificates, with
// hook commands and scripts that leave marks in a directory so each test can
// tell exactly what was installed, run and applied.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/agent/cms"
	"github.com/sztp-agent/sztp-agent/agent/conveyed"
	"github.com/sztp-agent/sztp-agent/agent/ownership"
	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/lab"
)

const serial = "SN-TEST-0001"

// device is the agent's side of a scenario: its PKI-issued identity, a
// directory for marks left by hooks and scripts, and the config to run.
type device struct {
	t     *testing.T
	pki   *lab.PKI
	marks string
	cfg   agent.Config
	plan  bytes.Buffer
}

func newDevice(t *testing.T) *device {
	t.Helper()
	pki, err := lab.NewPKI(t.TempDir(), serial)
	if err != nil {
		t.Fatal(err)
	}
	identity, err := tls.LoadX509KeyPair(pki.IDevIDCertFile, pki.IDevIDKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, pki: pki, marks: t.TempDir()}
	d.cfg = agent.Config{
		TrustAnchors:        []*x509.Certificate{pki.ServerCA.Cert},
		Identity:            identity,
		SerialNumber:        serial,
		HWModel:             "lab-x1",
		OSName:              "LabOS",
		OSVersion:           "1.0",
		StateDir:            t.TempDir(),
		ImageInstallCommand: `cp "$SZTP_IMAGE_PATH" ` + d.mark("installed.img") + ` && echo "$SZTP_OS_NAME $SZTP_OS_VERSION" > ` + d.mark("installed.txt") + ` && echo install >> ` + d.mark("order"),
		ConfigApplyCommand:  `cp "$SZTP_CONFIG_PATH" ` + d.mark("applied.cfg") + ` && echo "config $SZTP_CONFIG_HANDLING" >> ` + d.mark("order"),
		RebootCommand:       `echo reboot >> ` + d.mark("order"),
		Once:                true,
		SSHHostKeyDir:       t.TempDir(),
		RequestTimeout:      10 * time.Second,
		ScriptTimeout:       10 * time.Second,
		Logger:              testLogger(t),
		Header:              http.Header{"X-Lab-Rack": {"r7"}},
	}
	d.cfg.Plan = &d.plan
	return d
}

func (d *device) mark(name string) string { return filepath.Join(d.marks, name) }

// script returns a pre/post script that appends its name to the order file.
func (d *device) script(name string, exit int, extra string) []byte {
	return []byte(fmt.Sprintf("#!/bin/sh\necho %s >> %s\n%s\nexit %d\n", name, d.mark("order"), extra, exit))
}

// order is what ran, in order.
func (d *device) order() []string {
	data, err := os.ReadFile(d.mark("order"))
	if err != nil {
		return nil
	}
	return strings.Fields(strings.ReplaceAll(string(data), "config ", "config:"))
}

func (d *device) run(urls ...string) (agent.Outcome, error) {
	d.t.Helper()
	d.cfg.BootstrapURLs = urls
	a, err := agent.New(d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outcome, err := a.Run(ctx)
	d.t.Logf("plan:\n%s", d.plan.String())
	return outcome, err
}

// startServer starts a lab server; cert nil means one from the PKI's server CA.
func (d *device) startServer(name string, def *lab.Definition, cert *tls.Certificate) *lab.Server {
	d.t.Helper()
	s, err := lab.Start(lab.Options{PKI: d.pki, Name: name, Definition: def, TLSCert: cert, Logger: testLogger(d.t)})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { s.Close() })
	return s
}

func progressTypes(s *lab.Server) []string {
	var types []string
	for _, r := range s.Reports() {
		types = append(types, r.ProgressType)
	}
	return types
}

func fullOnboarding(d *device, img []byte) *lab.Definition {
	def := &lab.Definition{
		ReportingLevel: "verbose",
		Onboarding: &lab.Onboarding{
			PreConfigurationScriptData:  d.script("pre", 0, ""),
			ConfigurationData:           []byte(`{"hostname":"leaf-7"}`),
			ConfigurationHandling:       "merge",
			PostConfigurationScriptData: d.script("post", 0, ""),
		},
	}
	if img != nil {
		def.Onboarding.BootImage = &lab.BootImage{OSName: "LabOS", OSVersion: "2.0", ImageData: img, ImageName: "labos-2.0.img"}
	}
	return def
}

func testImage() []byte { return bytes.Repeat([]byte("LabOS 2.0 image block\n"), 4096) }

func TestBootstrapWithoutImage(t *testing.T) {
	d := newDevice(t)
	os.WriteFile(filepath.Join(d.cfg.SSHHostKeyDir, "ssh_host_ed25519_key.pub"), []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGJ1dCB3ZWxsIGZvcm1lZA== root@lab\n"), 0o644)
	s := d.startServer("lab-1", fullOnboarding(d, nil), nil)

	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if got, want := d.order(), []string{"pre", "config:merge", "post"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	if cfg, _ := os.ReadFile(d.mark("applied.cfg")); string(cfg) != `{"hostname":"leaf-7"}` {
		t.Errorf("applied configuration %q", cfg)
	}
	want := []string{"bootstrap-initiated", "parsing-initiated", "parsing-complete",
		"pre-script-initiated", "pre-script-complete", "config-initiated", "config-complete",
		"post-script-initiated", "post-script-complete", "bootstrap-complete"}
	if got := progressTypes(s); !slices.Equal(got, want) {
		t.Errorf("reports %v\nwant    %v", got, want)
	}
	last := s.Reports()[len(s.Reports())-1]
	if len(last.SSHHostKeys) != 1 || last.SSHHostKeys[0].Algorithm != "ssh-ed25519" {
		t.Errorf("bootstrap-complete ssh-host-keys = %+v", last.SSHHostKeys)
	}
	// A trusted server learns the device's OS and model, and the operator's header.
	req := s.Requests()[0]
	if req.Input["os-name"] != "LabOS" || req.Input["os-version"] != "1.0" || req.Input["hw-model"] != "lab-x1" || req.Input["signed-data-preferred"] != nil {
		t.Errorf("trusted request input = %v", req.Input)
	}
	if req.Header.Get("X-Lab-Rack") != "r7" || req.Serial != serial {
		t.Errorf("request header %v serial %q", req.Header, req.Serial)
	}
}

func TestMinimalReportingSendsOnlyRequiredReports(t *testing.T) {
	d := newDevice(t)
	def := fullOnboarding(d, nil)
	def.ReportingLevel = "minimal"
	s := d.startServer("lab-1", def, nil)
	if _, err := d.run(s.URL()); err != nil {
		t.Fatal(err)
	}
	if got, want := progressTypes(s), []string{"bootstrap-initiated", "bootstrap-complete"}; !slices.Equal(got, want) {
		t.Errorf("reports %v, want %v", got, want)
	}
}

func TestBootImageInstallAndReboot(t *testing.T) {
	d := newDevice(t)
	img := testImage()
	s := d.startServer("lab-1", fullOnboarding(d, img), nil)

	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Rebooting {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	installed, _ := os.ReadFile(d.mark("installed.img"))
	if !bytes.Equal(installed, img) {
		t.Errorf("installed %d bytes, want the %d-byte image", len(installed), len(img))
	}
	if txt, _ := os.ReadFile(d.mark("installed.txt")); string(txt) != "LabOS 2.0\n" {
		t.Errorf("install command saw %q", txt)
	}
	// The pass ends with the reboot: no script, no configuration.
	if got, want := d.order(), []string{"install", "reboot"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	types := progressTypes(s)
	if types[len(types)-1] != "boot-image-installed-rebooting" || !slices.Contains(types, "boot-image-mismatch") {
		t.Errorf("reports %v", types)
	}
	if slices.Contains(types, "bootstrap-complete") || slices.Contains(types, "pre-script-initiated") {
		t.Errorf("reports after the reboot point: %v", types)
	}
}

func TestBootImageAlreadyRunning(t *testing.T) {
	d := newDevice(t)
	d.cfg.OSVersion = "2.0"
	s := d.startServer("lab-1", fullOnboarding(d, testImage()), nil)
	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if got, want := d.order(), []string{"pre", "config:merge", "post"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	if s.ImageRequests() != 0 {
		t.Errorf("image downloaded %d times while already running", s.ImageRequests())
	}
	if types := progressTypes(s); !slices.Contains(types, "boot-image-complete") || slices.Contains(types, "boot-image-mismatch") {
		t.Errorf("reports %v", types)
	}
}

func TestBootImageHashMismatchInstallsNothing(t *testing.T) {
	d := newDevice(t)
	def := fullOnboarding(d, testImage())
	def.Onboarding.BootImage.SHA256 = fmt.Sprintf("%x", sha256.Sum256([]byte("another image")))
	s := d.startServer("lab-1", def, nil)

	_, err := d.run(s.URL())
	var mismatch interface{ Error() string }
	if err == nil || !strings.Contains(err.Error(), "sha-256") {
		t.Fatalf("error %v, want a hash mismatch", err)
	}
	_ = mismatch
	if got := d.order(); len(got) != 0 {
		t.Errorf("ran %v after a hash mismatch", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.cfg.StateDir, "images")); len(entries) != 0 {
		t.Errorf("images left behind: %v", entries)
	}
	types := progressTypes(s)
	if types[len(types)-1] != "boot-image-error" {
		t.Errorf("reports %v, want boot-image-error last", types)
	}
}

func TestBootImageSecondDownloadURIWorks(t *testing.T) {
	d := newDevice(t)
	img := testImage()
	def := fullOnboarding(d, img)
	def.Onboarding.BootImage.DownloadURIs = []string{"https://127.0.0.1:1/dead-mirror.img", "{{image}}"}
	s := d.startServer("lab-1", def, nil)
	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Rebooting {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if installed, _ := os.ReadFile(d.mark("installed.img")); !bytes.Equal(installed, img) {
		t.Error("installed image differs")
	}
}

func TestPreScriptFailureStopsOnboarding(t *testing.T) {
	d := newDevice(t)
	def := fullOnboarding(d, nil)
	def.Onboarding.PreConfigurationScriptData = d.script("pre", 3, "echo 'disk check failed' >&2")
	s := d.startServer("lab-1", def, nil)

	_, err := d.run(s.URL())
	if err == nil || !strings.Contains(err.Error(), "disk check failed") {
		t.Fatalf("error %v, want the script's output", err)
	}
	if got := d.order(); !slices.Equal(got, []string{"pre"}) {
		t.Errorf("ran %v, want only the pre-script", got)
	}
	if _, err := os.Stat(d.mark("applied.cfg")); err == nil {
		t.Error("configuration applied after the pre-script failed")
	}
	reports := s.Reports()
	last := reports[len(reports)-1]
	if last.ProgressType != "pre-script-error" || !strings.Contains(last.Message, "disk check failed") {
		t.Errorf("last report %s %q", last.ProgressType, last.Message)
	}
}

func TestScriptWarningIsReported(t *testing.T) {
	d := newDevice(t)
	def := fullOnboarding(d, nil)
	def.Onboarding.PostConfigurationScriptData = d.script("post", 0, "echo 'warning: fan tray 2 missing'")
	s := d.startServer("lab-1", def, nil)
	if outcome, err := d.run(s.URL()); err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	found := false
	for _, r := range s.Reports() {
		if r.ProgressType == "post-script-warning" && strings.Contains(r.Message, "fan tray 2") {
			found = true
		}
	}
	if !found {
		t.Errorf("no post-script-warning in %v", progressTypes(s))
	}
}

func TestRedirectToServerAuthenticatedByRedirectTrustAnchor(t *testing.T) {
	d := newDevice(t)
	otherCA, err := lab.NewCA(t.TempDir(), "owner-sztp")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := otherCA.IssueServer(t.TempDir(), "second", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	second := d.startServer("second", fullOnboarding(d, nil), &cert)
	host, port := hostPort(t, second.URL())
	first := d.startServer("first", &lab.Definition{Redirect: []lab.RedirectServer{
		{Address: host, Port: port, TrustAnchorCerts: []*x509.Certificate{otherCA.Cert}},
	}}, nil)

	outcome, err := d.run(first.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if n := len(first.Reports()); n != 0 {
		t.Errorf("redirecting server got %d reports", n)
	}
	if types := progressTypes(second); types[len(types)-1] != "bootstrap-complete" {
		t.Errorf("second server reports %v", types)
	}
	if req := second.Requests()[0]; req.Input["os-name"] != "LabOS" {
		t.Errorf("second server treated as untrusted: input %v", req.Input)
	}
}

func TestRedirectWithoutTrustAnchorIsProvisional(t *testing.T) {
	d := newDevice(t)
	second := d.startServer("second", fullOnboarding(d, nil), nil)
	host, port := hostPort(t, second.URL())
	first := d.startServer("first", &lab.Definition{Redirect: []lab.RedirectServer{{Address: host, Port: port}}}, nil)
	_, err := d.run(first.URL())
	if !errors.Is(err, agent.ErrUntrustedOnboarding) {
		t.Fatalf("error %v, want unsigned onboarding from an untrusted server refused", err)
	}
	if n := len(second.Reports()); n != 0 || len(d.order()) != 0 {
		t.Errorf("untrusted server got %d reports; ran %v", n, d.order())
	}
}

func TestRedirectTrustAnchorMismatchFailsServer(t *testing.T) {
	d := newDevice(t)
	wrongCA, _ := lab.NewCA(t.TempDir(), "wrong")
	second := d.startServer("second", fullOnboarding(d, nil), nil)
	host, port := hostPort(t, second.URL())
	first := d.startServer("first", &lab.Definition{Redirect: []lab.RedirectServer{
		{Address: host, Port: port, TrustAnchorCerts: []*x509.Certificate{wrongCA.Cert}},
	}}, nil)
	_, err := d.run(first.URL())
	if !errors.Is(err, agent.ErrServerNotAuthenticated) {
		t.Fatalf("error %v, want the redirected server not authenticated", err)
	}
	if len(second.Requests()) != 0 {
		t.Error("the device sent a request over a connection that failed authentication")
	}
}

func TestUntrustedServerUnsignedOnboardingRefused(t *testing.T) {
	d := newDevice(t)
	strangerCA, _ := lab.NewCA(t.TempDir(), "stranger")
	cert, _ := strangerCA.IssueServer(t.TempDir(), "stranger", "127.0.0.1")
	s := d.startServer("stranger", fullOnboarding(d, testImage()), &cert)

	_, err := d.run(s.URL())
	if !errors.Is(err, agent.ErrUntrustedOnboarding) {
		t.Fatalf("error %v, want unsigned onboarding refused", err)
	}
	if got := d.order(); len(got) != 0 {
		t.Errorf("ran %v from an untrusted server", got)
	}
	if n := len(s.Reports()); n != 0 {
		t.Errorf("%d progress reports sent to an untrusted server", n)
	}
	if s.ImageRequests() != 0 {
		t.Error("image downloaded from untrusted onboarding information")
	}
	// RFC 8572 §9.6: an untrusted server learns only that signed data is
	// preferred, and a nonce.
	reqs := s.Requests()
	in := reqs[len(reqs)-1].Input
	if in["signed-data-preferred"] == nil || in["nonce"] == nil || in["os-name"] != nil || in["hw-model"] != nil {
		t.Errorf("provisional request input = %v", in)
	}
}

func TestSecondBootstrapURLAfter503(t *testing.T) {
	d := newDevice(t)
	busy := d.startServer("busy", &lab.Definition{Status: http.StatusServiceUnavailable}, nil)
	good := d.startServer("good", fullOnboarding(d, nil), nil)
	outcome, err := d.run(busy.URL(), good.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if len(busy.Requests()) != 1 || len(busy.Reports()) != 0 {
		t.Errorf("busy server: %d requests, %d reports", len(busy.Requests()), len(busy.Reports()))
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	d := newDevice(t)
	d.cfg.DryRun = true
	s := d.startServer("lab-1", fullOnboarding(d, testImage()), nil)
	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Planned {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if got := d.order(); len(got) != 0 {
		t.Errorf("dry run ran %v", got)
	}
	if n := len(s.Reports()); n != 0 {
		t.Errorf("dry run sent %d progress reports", n)
	}
	if s.ImageRequests() != 1 {
		t.Errorf("dry run downloaded the image %d times, want 1", s.ImageRequests())
	}
	plan := d.plan.String()
	for _, want := range []string{"sha-256", "would run install command", "would run reboot command", "after the reboot, would run pre-configuration-script", "would merge configuration"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
}

func TestMissingHookCommandIsAStepError(t *testing.T) {
	d := newDevice(t)
	d.cfg.ConfigApplyCommand = ""
	s := d.startServer("lab-1", fullOnboarding(d, nil), nil)
	_, err := d.run(s.URL())
	if err == nil || !strings.Contains(err.Error(), "--config-apply-command") {
		t.Fatalf("error %v", err)
	}
	if got := d.order(); !slices.Equal(got, []string{"pre"}) {
		t.Errorf("ran %v", got)
	}
	if types := progressTypes(s); types[len(types)-1] != "config-error" {
		t.Errorf("reports %v", types)
	}
	// And with an image but no install command, nothing is downloaded.
	d2 := newDevice(t)
	d2.cfg.ImageInstallCommand = ""
	s2 := d2.startServer("lab-2", fullOnboarding(d2, testImage()), nil)
	if _, err := d2.run(s2.URL()); err == nil || s2.ImageRequests() != 0 {
		t.Errorf("error %v, image requests %d", err, s2.ImageRequests())
	}
}

func TestRedirectLoopIsCapped(t *testing.T) {
	d := newDevice(t)
	s := d.startServer("loop", nil, nil)
	host, port := hostPort(t, s.URL())
	// Trusted redirect information pointing back at the same server, with a
	// trust anchor that validates it: only the depth cap ends this.
	s.SetDefinition(&lab.Definition{Redirect: []lab.RedirectServer{
		{Address: host, Port: port, TrustAnchorCerts: []*x509.Certificate{d.pki.ServerCA.Cert}},
	}})
	_, err := d.run(s.URL())
	if !errors.Is(err, agent.ErrRedirectDepth) {
		t.Fatalf("error %v, want the redirect depth cap", err)
	}
	if n := len(s.Requests()); n != 11 {
		t.Errorf("%d requests, want 11 (the first plus 10 redirects)", n)
	}
}

// TestResumeAfterReboot: the pass that installs the image ends with the
// reboot; the next start, running the new image, carries on with the
// scripts and configuration and never downloads or installs again.
func TestResumeAfterReboot(t *testing.T) {
	d := newDevice(t)
	s := d.startServer("lab-1", fullOnboarding(d, testImage()), nil)
	if outcome, err := d.run(s.URL()); err != nil || outcome != agent.Rebooting {
		t.Fatalf("first run: outcome %v, error %v", outcome, err)
	}
	d.cfg.OSVersion = "2.0" // what the device runs after the reboot
	if outcome, err := d.run(s.URL()); err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("second run: outcome %v, error %v", outcome, err)
	}
	if got, want := d.order(), []string{"install", "reboot", "pre", "config:merge", "post"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	if n := s.ImageRequests(); n != 1 {
		t.Errorf("image downloaded %d times", n)
	}
	// A completed bootstrap never runs again until reset.
	before := len(s.Requests())
	if outcome, err := d.run(s.URL()); err != nil || outcome != agent.AlreadyBootstrapped {
		t.Fatalf("third run: outcome %v, error %v", outcome, err)
	}
	if len(s.Requests()) != before {
		t.Error("a completed device contacted the server again")
	}
}

// TestInstallThatDidNotTakeEffectDoesNotLoop: after the reboot the device
// still runs the old image; installing again would reboot forever.
func TestInstallThatDidNotTakeEffectDoesNotLoop(t *testing.T) {
	d := newDevice(t)
	s := d.startServer("lab-1", fullOnboarding(d, testImage()), nil)
	if _, err := d.run(s.URL()); err != nil {
		t.Fatal(err)
	}
	_, err := d.run(s.URL())
	if err == nil || !strings.Contains(err.Error(), "did not take effect") {
		t.Fatalf("error %v", err)
	}
	if got := d.order(); !slices.Equal(got, []string{"install", "reboot"}) {
		t.Errorf("ran %v, want one install and one reboot", got)
	}
	if types := progressTypes(s); types[len(types)-1] != "boot-image-error" {
		t.Errorf("reports %v", types)
	}
}

// TestRebootCommandFailureRetriesReboot: the reboot never happened, so the
// next run reboots again without reinstalling.
func TestRebootCommandFailureRetriesReboot(t *testing.T) {
	d := newDevice(t)
	reboot := d.cfg.RebootCommand
	d.cfg.RebootCommand = "echo 'reboot: permission denied' >&2; exit 1"
	s := d.startServer("lab-1", fullOnboarding(d, testImage()), nil)
	if _, err := d.run(s.URL()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error %v", err)
	}
	d.cfg.RebootCommand = reboot
	if outcome, err := d.run(s.URL()); err != nil || outcome != agent.Rebooting {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if got := d.order(); !slices.Equal(got, []string{"install", "reboot"}) {
		t.Errorf("ran %v, want one install and one reboot", got)
	}
}

func TestDisabledAgentDoesNothing(t *testing.T) {
	d := newDevice(t)
	s := d.startServer("lab-1", fullOnboarding(d, nil), nil)
	store := &state.Store{Dir: d.cfg.StateDir}
	if err := store.Disable("configured by hand"); err != nil {
		t.Fatal(err)
	}
	_, err := d.run(s.URL())
	if !errors.Is(err, agent.ErrDisabled) || !strings.Contains(err.Error(), "configured by hand") {
		t.Fatalf("error %v", err)
	}
	if len(s.Requests()) != 0 {
		t.Error("a disabled agent contacted the server")
	}
}

func TestSecondAgentIsLockedOut(t *testing.T) {
	d := newDevice(t)
	lock, err := state.Acquire(d.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	s := d.startServer("lab-1", fullOnboarding(d, nil), nil)
	_, err = d.run(s.URL())
	var le *state.LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("error %v, want the lock held by pid %d", err, os.Getpid())
	}
}

// signedOnboarding is fullOnboarding signed by the owner, with a voucher.
func signedOnboarding(d *device, sign lab.Signing) *lab.Definition {
	def := fullOnboarding(d, nil)
	def.Signed = &sign
	return def
}

func untrustedServer(d *device, name string, def *lab.Definition) *lab.Server {
	d.t.Helper()
	s, err := lab.Start(lab.Options{PKI: d.pki, Name: name, Definition: def, UntrustedTLS: true, Logger: testLogger(d.t)})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { s.Close() })
	return s
}

func (d *device) trustVouchers() { d.cfg.VoucherTrustAnchors = []*x509.Certificate{d.pki.MASA.Cert} }

// TestUntrustedServerSignedOnboardingIsApplied: RFC 8572 §5.3 — signed data
// that passes every check is acted upon even from a provisional connection,
// and the untrusted server hears nothing back.
func TestUntrustedServerSignedOnboardingIsApplied(t *testing.T) {
	for _, tc := range []struct {
		name string
		sign lab.Signing
	}{
		{"json, expiring voucher", lab.Signing{}},
		{"id-data, nonce voucher, key-id idevid-issuer", lab.Signing{ContentType: "data", Voucher: lab.VoucherSpec{Nonce: true, IDevIDIssuer: "key-id"}}},
		{"whole-AKI idevid-issuer, pinned cert in the bag", lab.Signing{IncludePinned: true, Voucher: lab.VoucherSpec{IDevIDIssuer: "aki"}}},
		{"all three artifacts encrypted to the IDevID", lab.Signing{Encrypt: []string{"conveyed-information", "owner-certificate", "ownership-voucher"}}},
		{"revocation checks with a stapled CRL", lab.Signing{StapleCRL: true, Voucher: lab.VoucherSpec{RevocationChecks: ptr(true)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.trustVouchers()
			s := untrustedServer(d, "stranger", signedOnboarding(d, tc.sign))
			outcome, err := d.run(s.URL())
			if err != nil || outcome != agent.Bootstrapped {
				t.Fatalf("outcome %v, error %v", outcome, err)
			}
			if got, want := d.order(), []string{"pre", "config:merge", "post"}; !slices.Equal(got, want) {
				t.Errorf("ran %v, want %v", got, want)
			}
			if n := len(s.Reports()); n != 0 {
				t.Errorf("%d progress reports sent to an untrusted server", n)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRejectedSignedDataChangesNothing: each broken artifact is refused with
// its specific error; nothing runs, nothing is reported, nothing applied.
func TestRejectedSignedDataChangesNothing(t *testing.T) {
	d0 := newDevice(t)
	otherKey := d0.pki.VoucherSigner // signs, but is not the owner
	for _, tc := range []struct {
		name string
		sign lab.Signing
		want error
	}{
		{"tampered conveyed information", lab.Signing{TamperConveyed: true}, ownership.ErrConveyedSignature},
		{"conveyed information signed by another key", lab.Signing{SignConveyedWith: otherKey.Cert, SignConveyedWithKey: otherKey.Key}, ownership.ErrConveyedSignature},
		{"voucher from an untrusted MASA", lab.Signing{VoucherSignerFromOtherMASA: true}, ownership.ErrVoucherSigner},
		{"owner certificate from another CA", lab.Signing{OwnerCertFromOtherCA: true}, ownership.ErrOwnerChain},
		{"voucher for another serial number", lab.Signing{Voucher: lab.VoucherSpec{SerialNumber: "SN-SOMEONE-ELSE"}}, ownership.ErrSerialNumber},
		{"expired voucher", lab.Signing{Voucher: lab.VoucherSpec{ExpiresIn: -time.Hour}}, ownership.ErrVoucherExpired},
		{"voucher created in the future", lab.Signing{Voucher: lab.VoucherSpec{CreatedOffset: 48 * time.Hour}}, ownership.ErrVoucherNotYetValid},
		{"nonce mismatch", lab.Signing{Voucher: lab.VoucherSpec{Nonce: true, NonceValue: bytes.Repeat([]byte{7}, 32)}}, ownership.ErrNonce},
		{"assertion not accepted", lab.Signing{Voucher: lab.VoucherSpec{Assertion: "logged"}}, ownership.ErrAssertion},
		{"owner certificate revoked", lab.Signing{RevokeOwnerCert: true, Voucher: lab.VoucherSpec{RevocationChecks: ptr(true)}}, ownership.ErrRevocation},
		{"revocation checks without a CRL", lab.Signing{Voucher: lab.VoucherSpec{RevocationChecks: ptr(true)}}, ownership.ErrRevocation},
		{"voucher without owner certificate", lab.Signing{OmitOwnerCertificate: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.trustVouchers()
			s := untrustedServer(d, "stranger", signedOnboarding(d, tc.sign))
			_, err := d.run(s.URL())
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if got := d.order(); len(got) != 0 {
				t.Errorf("ran %v after rejected signed data", got)
			}
			if n := len(s.Reports()); n != 0 {
				t.Errorf("%d reports", n)
			}
		})
	}
}

// TestClockUntrustedNeedsNonceVoucher: without a trusted clock only a voucher
// carrying this request's nonce is accepted (RFC 8572 §9.1).
func TestClockUntrustedNeedsNonceVoucher(t *testing.T) {
	d := newDevice(t)
	d.trustVouchers()
	d.cfg.ClockUntrusted = true
	s := untrustedServer(d, "stranger", signedOnboarding(d, lab.Signing{}))
	if _, err := d.run(s.URL()); !errors.Is(err, ownership.ErrNonceRequired) {
		t.Fatalf("expiring voucher with an untrusted clock: %v", err)
	}
	d2 := newDevice(t)
	d2.trustVouchers()
	d2.cfg.Now = func() time.Time { return time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC) } // a board without a battery
	d2.cfg.BuildTime = time.Now()
	s2 := untrustedServer(d2, "stranger", signedOnboarding(d2, lab.Signing{Voucher: lab.VoucherSpec{Nonce: true}}))
	if outcome, err := d2.run(s2.URL()); err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("nonce voucher with a 1970 clock: %v %v", outcome, err)
	}
	// A trusted server gets a nonce too, so it can return a nonce voucher.
	d3 := newDevice(t)
	d3.trustVouchers()
	d3.cfg.ClockUntrusted = true
	s3 := d3.startServer("trusted", signedOnboarding(d3, lab.Signing{Voucher: lab.VoucherSpec{Nonce: true}}), nil)
	if outcome, err := d3.run(s3.URL()); err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("nonce voucher from a trusted server: %v %v", outcome, err)
	}
	if types := progressTypes(s3); types[len(types)-1] != "bootstrap-complete" {
		t.Errorf("trusted server reports %v", types)
	}
}

// TestSignedRedirectFromUntrustedServer: signed redirect information is
// trusted, so its trust anchor authenticates the next server, which then
// gets progress reports.
func TestSignedRedirectFromUntrustedServer(t *testing.T) {
	d := newDevice(t)
	d.trustVouchers()
	ownerCA, _ := lab.NewCA(t.TempDir(), "owner-bootstrap")
	cert, _ := ownerCA.IssueServer(t.TempDir(), "owner-bootstrap", "127.0.0.1")
	second := d.startServer("owner", fullOnboarding(d, nil), &cert)
	host, port := hostPort(t, second.URL())
	first := untrustedServer(d, "manufacturer", &lab.Definition{
		Redirect: []lab.RedirectServer{{Address: host, Port: port, TrustAnchorCerts: []*x509.Certificate{ownerCA.Cert}}},
		Signed:   &lab.Signing{Voucher: lab.VoucherSpec{Nonce: true}},
	})
	outcome, err := d.run(first.URL())
	if err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if types := progressTypes(second); len(types) == 0 || types[len(types)-1] != "bootstrap-complete" {
		t.Errorf("owner server reports %v", types)
	}
	if len(first.Reports()) != 0 {
		t.Error("the untrusted redirecting server got reports")
	}
}

// TestUnsignedRedirectFromUntrustedServerDiscardsTrustAnchor: RFC 8572 §5.5.
func TestUnsignedRedirectFromUntrustedServerDiscardsTrustAnchor(t *testing.T) {
	d := newDevice(t)
	second := d.startServer("second", fullOnboarding(d, nil), nil)
	host, port := hostPort(t, second.URL())
	first := untrustedServer(d, "stranger", &lab.Definition{Redirect: []lab.RedirectServer{
		{Address: host, Port: port, TrustAnchorCerts: []*x509.Certificate{d.pki.ServerCA.Cert}},
	}})
	_, err := d.run(first.URL())
	if !errors.Is(err, agent.ErrUntrustedOnboarding) {
		t.Fatalf("error %v: the redirect's trust anchor must be discarded", err)
	}
	if req := second.Requests(); len(req) != 1 || req[0].Input["signed-data-preferred"] == nil {
		t.Errorf("second server requests %v, want one provisional request", req)
	}
}

// TestImageFromUnauthenticatedServerIsHashVerified: the image server's TLS
// certificate validates to nothing the device trusts; the download still
// happens (integrity comes from the signed hash) and the plan warns.
func TestImageFromUnauthenticatedServerIsHashVerified(t *testing.T) {
	d := newDevice(t)
	d.trustVouchers()
	img := testImage()
	def := fullOnboarding(d, img)
	def.Signed = &lab.Signing{}
	s := untrustedServer(d, "stranger", def)
	outcome, err := d.run(s.URL())
	if err != nil || outcome != agent.Rebooting {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if installed, _ := os.ReadFile(d.mark("installed.img")); !bytes.Equal(installed, img) {
		t.Error("installed image differs")
	}
	if !strings.Contains(d.plan.String(), "not authenticated") {
		t.Errorf("no warning about the unauthenticated image server in the plan:\n%s", d.plan.String())
	}
}

// TestRemovableStorageWithImageBesideTheArtifacts: RFC 8572 §4.1 — a stick
// with signed artifacts for this device and the boot image next to them,
// named by a relative download-uri. The image is read from the stick,
// hash-verified, installed; after the reboot the configuration is applied.
func TestRemovableStorageWithImageBesideTheArtifacts(t *testing.T) {
	d := newDevice(t)
	d.trustVouchers()
	p := d.pki
	img := testImage()
	sum := sha256.Sum256(img)
	stick := t.TempDir()
	dir := filepath.Join(stick, "acme", serial, "bootstrapping-data")
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", "labos-2.0.img"), img, 0o644)

	voucher := fmt.Sprintf(`{"ietf-voucher:voucher":{"created-on":%q,"expires-on":%q,"assertion":"verified","serial-number":%q,"pinned-domain-cert":%q}}`,
		time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339),
		serial, base64.StdEncoding.EncodeToString(p.OwnerCA.Cert.Raw))
	conveyedJSON := fmt.Sprintf(`{"ietf-sztp-conveyed-info:onboarding-information":{"boot-image":{"os-name":"LabOS","os-version":"2.0",
		"download-uri":["../../../elsewhere/escape.img","images/labos-2.0.img"],
		"image-verification":[{"hash-algorithm":"ietf-sztp-conveyed-info:sha-256","hash-value":%q}]},
		"configuration-handling":"merge","configuration":%q}}`,
		conveyed.FormatHexString(sum[:]), base64.StdEncoding.EncodeToString([]byte("from the stick\n")))
	ov, err := lab.SignData(cms.OIDAnimaJSONVoucher, []byte(voucher), p.VoucherSigner.Cert, p.VoucherSigner.Key, []*x509.Certificate{p.MASA.Cert})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := lab.SignData(cms.OIDSZTPConveyedInfoJSON, []byte(conveyedJSON), p.Owner.Cert, p.Owner.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := cms.MarshalCertificateBag([]*x509.Certificate{p.Owner.Cert})
	os.WriteFile(filepath.Join(dir, "ownership-voucher.cms"), ov, 0o644)
	os.WriteFile(filepath.Join(dir, "owner-certificate.cms"), oc, 0o644)
	os.WriteFile(filepath.Join(dir, "conveyed-information.cms"), ci, 0o644)

	d.cfg.Sources = []agent.Source{agent.RemovableStorage{Root: stick, SerialNumber: serial}}
	outcome, err := d.run()
	if err != nil || outcome != agent.Rebooting {
		t.Fatalf("outcome %v, error %v", outcome, err)
	}
	if installed, _ := os.ReadFile(d.mark("installed.img")); !bytes.Equal(installed, img) {
		t.Error("the installed image is not the one from the stick")
	}
	d.cfg.OSVersion = "2.0"
	if outcome, err := d.run(); err != nil || outcome != agent.Bootstrapped {
		t.Fatalf("after the reboot: outcome %v, error %v", outcome, err)
	}
	if got, _ := os.ReadFile(d.mark("applied.cfg")); string(got) != "from the stick\n" {
		t.Errorf("applied %q", got)
	}
}
