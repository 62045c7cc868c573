// Package agent is the device side of Secure Zero Touch Provisioning (RFC
// 8572 §5): it walks the bootstrap sources, decides which servers and which
// data it can trust, follows redirect information and carries out onboarding
// information in the RFC's order, reporting progress to trusted servers.
//
// Hardware and network come in through Config: the identity as a
// tls.Certificate whose key may live in a TPM, HTTP transports, the clock and
// the directories. Nothing here parses flags or picks exit codes.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/internal/logging"
)

// Config is everything the agent needs for a run.
type Config struct {
	// BootstrapURLs are well-known bootstrap servers, "https://host[:port]".
	// When Sources is empty they are the only source.
	BootstrapURLs []string
	// Sources are tried in order each pass. Empty: the well-known servers
	// of BootstrapURLs, authenticated by TrustAnchors.
	Sources []Source
	// TrustAnchors authenticate well-known bootstrap servers. Empty: every
	// well-known server is untrusted (provisional connections only). They
	// also authenticate https image servers, with the system roots.
	TrustAnchors []*x509.Certificate
	// Identity is the IDevID certificate chain and its private key, sent as
	// the TLS client certificate. Its key may be a TPM-backed crypto.Signer.
	// Identity.Leaf must be set: it is matched against vouchers and is the
	// recipient of encrypted artifacts.
	Identity tls.Certificate
	// DecryptionKey opens artifacts encrypted to the IDevID: a
	// crypto.Decrypter (RSA) or an ECDH-capable key. Nil: the identity's
	// private key, when it can decrypt.
	DecryptionKey any

	// VoucherTrustAnchors are the manufacturer (MASA) trust anchors
	// ownership vouchers must chain to. Empty: signed data is refused.
	VoucherTrustAnchors []*x509.Certificate
	// AcceptedAssertions is the local policy on voucher assertions; empty
	// means only "verified".
	AcceptedAssertions []string
	// ClockUntrusted: the device's clock does not judge validity periods,
	// and only vouchers carrying the nonce the device sent are accepted
	// (RFC 8572 §9.1). A clock earlier than BuildTime is untrusted too.
	ClockUntrusted bool
	// BuildTime is when the agent was built; zero disables the check.
	BuildTime time.Time
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// SerialNumber, HWModel, OSName and OSVersion describe the device.
	SerialNumber string
	HWModel      string
	OSName       string
	OSVersion    string

	// StateDir holds the state file, the disabled marker, the lock,
	// downloads, script files and staged configuration.
	StateDir string
	// RunDir receives status.json, the runtime view of a running agent;
	// empty: none is written.
	RunDir string

	// Hook commands, each run through /bin/sh -c.
	ImageInstallCommand string
	ConfigApplyCommand  string
	RebootCommand       string

	// Header is added to every RESTCONF request.
	Header http.Header

	// Once makes one pass over the sources instead of looping forever.
	Once bool
	// DryRun does every network step and check but changes nothing on the
	// device and sends no progress report; the plan goes to Plan.
	DryRun bool

	// SSHHostKeyDir is where ssh_host_*_key.pub files are read for the
	// bootstrap-complete report; empty means /etc/ssh.
	SSHHostKeyDir string

	// RequestTimeout bounds one RESTCONF exchange; 0 means 60s.
	RequestTimeout time.Duration
	// ScriptTimeout bounds one script or hook command; 0 means 30 minutes.
	ScriptTimeout time.Duration
	// Retry is the policy between passes over the sources.
	Retry Backoff

	// Logger receives the agent's log; nil discards it.
	Logger *slog.Logger
	// Plan receives the dry-run plan and the step summary; nil discards it.
	Plan io.Writer
	// ImageProgress, if set, is told how an image download advances.
	ImageProgress func(uri string, done, total int64)
	// Transport, if set, is the base for every HTTP transport the agent
	// builds (tests use it to count connections); its TLS settings are
	// replaced per server.
	Transport *http.Transport
}

// Outcome says how a successful run ended.
type Outcome int

const (
	// Bootstrapped: onboarding completed (bootstrap-complete).
	Bootstrapped Outcome = iota + 1
	// Rebooting: a new boot image was installed and the reboot command ran;
	// the next start carries on from discovery.
	Rebooting
	// Planned: a dry run verified everything it could and printed its plan.
	Planned
	// AlreadyBootstrapped: an earlier run completed; nothing was done.
	AlreadyBootstrapped
)

func (o Outcome) String() string {
	switch o {
	case Bootstrapped:
		return "bootstrap-complete"
	case Rebooting:
		return "boot-image-installed-rebooting"
	case Planned:
		return "dry-run-planned"
	case AlreadyBootstrapped:
		return "already-bootstrapped"
	}
	return "unknown"
}

// ErrEnvironment marks failures of the device itself (state directory not
// writable, identity unusable) as opposed to failures of the sources.
var ErrEnvironment = errors.New("environment")

// ErrDisabled: SZTP is switched off on this device (the disabled marker).
var ErrDisabled = errors.New("SZTP is disabled")

// ErrNotBootstrapped is returned by a --once run in which no source led to a
// successful bootstrap.
var ErrNotBootstrapped = errors.New("no bootstrap source succeeded")

// Agent runs the RFC 8572 device algorithm.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	out   io.Writer
	store *state.Store
	// step is the onboarding step under way, for the runtime status.
	step string
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Sources) == 0 && len(cfg.BootstrapURLs) > 0 {
		cfg.Sources = []Source{WellKnownServers{URLs: cfg.BootstrapURLs, Anchors: cfg.TrustAnchors}}
	}
	if len(cfg.Sources) == 0 {
		return nil, errors.New("no bootstrap source configured (give --bootstrap-url, or discovery sources)")
	}
	for _, u := range cfg.BootstrapURLs {
		if _, err := ParseBootstrapURL(u); err != nil {
			return nil, err
		}
	}
	if cfg.StateDir == "" {
		return nil, errors.New("no state directory configured")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.ScriptTimeout <= 0 {
		cfg.ScriptTimeout = 30 * time.Minute
	}
	if cfg.SSHHostKeyDir == "" {
		cfg.SSHHostKeyDir = "/etc/ssh"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Identity.Leaf == nil && len(cfg.Identity.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cfg.Identity.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parsing the IDevID certificate: %w", err)
		}
		cfg.Identity.Leaf = leaf
	}
	if cfg.DecryptionKey == nil {
		cfg.DecryptionKey = cfg.Identity.PrivateKey
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, out: cfg.Plan, store: &state.Store{Dir: cfg.StateDir, Now: cfg.Now}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clockUntrusted() {
		a.log.Warn("the clock is not trusted: validity periods are not checked and only nonce vouchers are accepted",
			"now", cfg.Now().UTC().Format(time.RFC3339), "built", cfg.BuildTime.UTC().Format(time.RFC3339), "forced", cfg.ClockUntrusted)
	}
	if a.out == nil {
		a.out = io.Discard
	}
	return a, nil
}

// clockUntrusted applies the clock policy: trusted unless the operator says
// otherwise or the clock reads earlier than the agent's own build time (a
// board without a battery that booted in 1970).
func (a *Agent) clockUntrusted() bool {
	return a.cfg.ClockUntrusted || (!a.cfg.BuildTime.IsZero() && a.cfg.Now().Before(a.cfg.BuildTime))
}

// Run bootstraps the device: RFC 8572 §5.2's loop over the sources until one
// of them leads to a successful onboarding (or, with Once or DryRun, one pass).
// A dry run neither reads nor changes the bootstrap state.
func (a *Agent) Run(ctx context.Context) (Outcome, error) {
	if err := a.prepareStateDir(); err != nil {
		return 0, err
	}
	defer a.closeSources()
	lock, err := state.Acquire(a.cfg.StateDir)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %w", ErrEnvironment, err)
	}
	defer lock.Release()
	if !a.cfg.DryRun {
		if outcome, done, err := a.begin(); done || err != nil {
			return outcome, err
		}
	}
	once := a.cfg.Once || a.cfg.DryRun
	for pass := 1; ; pass++ {
		a.log.Info("starting pass over bootstrap sources", "pass", pass, "sources", len(a.cfg.Sources))
		if err := a.update(func(st *state.State) { st.Passes++ }); err != nil {
			return 0, err
		}
		outcome, err := a.pass(ctx)
		if err == nil {
			return outcome, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		final := once || errors.Is(err, ErrEnvironment)
		if uerr := a.update(func(st *state.State) {
			st.LastError = err.Error()
			if final {
				st.Phase = state.PhaseFailed
			}
		}); uerr != nil {
			return 0, uerr
		}
		if errors.Is(err, ErrEnvironment) {
			return 0, err
		}
		if once {
			return 0, fmt.Errorf("%w: %w", ErrNotBootstrapped, err)
		}
		delay := a.cfg.Retry.Delay(pass, retryAfter(err))
		a.log.Warn("no bootstrap source succeeded; retrying", logging.MessageIDAttribute, logging.MsgBootstrapFailed, "pass", pass, "error", err, "retry_in", delay.Round(time.Millisecond))
		if err := a.cfg.Retry.sleep(ctx, delay); err != nil {
			return 0, err
		}
	}
}

// closeSources lets sources undo what they set up (a leased address).
func (a *Agent) closeSources() {
	for _, s := range a.cfg.Sources {
		if c, ok := s.(io.Closer); ok {
			if err := c.Close(); err != nil {
				a.log.Warn("closing bootstrap source", "source", s.Name(), "error", err)
			}
		}
	}
}

// begin checks the SZTP flag (RFC 8572 §5.2 step 1) and the state of an
// earlier bootstrap. done: the run ends here with outcome or err.
func (a *Agent) begin() (outcome Outcome, done bool, err error) {
	disabled, err := a.store.DisabledBy()
	if err != nil {
		return 0, true, fmt.Errorf("%w: %w", ErrEnvironment, err)
	}
	if disabled != nil {
		return 0, true, fmt.Errorf("%w: %s", ErrDisabled, disabled.Reason)
	}
	st, err := a.store.Load()
	if err != nil {
		return 0, true, fmt.Errorf("%w: %w", ErrEnvironment, err)
	}
	if st.Phase == state.PhaseComplete {
		a.log.Info("bootstrap already complete; `sztp-agent reset` starts over", "completed", st.Completed)
		fmt.Fprintf(a.out, "already bootstrapped (bootstrap-complete on %s); run `sztp-agent reset` to bootstrap again\n", st.Completed.Format(time.RFC3339))
		return AlreadyBootstrapped, true, nil
	}
	if st.Onboarding != nil {
		a.log.Info("resuming an earlier bootstrap", "runs", st.Runs, "phase", st.Phase)
	}
	err = a.update(func(st *state.State) {
		st.Runs++
		st.Phase = state.PhaseInProgress
		if st.Started.IsZero() {
			st.Started = a.cfg.Now().UTC()
		}
	})
	return 0, err != nil, err
}

// update changes the persistent state (not in a dry run) and refreshes the
// runtime status. Failing to record progress is an environment error: going
// on could install an image or apply configuration twice.
func (a *Agent) update(change func(*state.State)) error {
	if a.cfg.DryRun {
		return nil
	}
	st, err := a.store.Update(change)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEnvironment, err)
	}
	a.writeRuntimeStatus(st)
	return nil
}

// pass tries every well-known bootstrap server once, in order.
func (a *Agent) pass(ctx context.Context) (Outcome, error) {
	var errs []error
	for _, src := range a.cfg.Sources {
		leads, err := src.Find(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			a.log.Warn("bootstrap source found nothing usable", "source", src.Name(), "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", src.Name(), err))
			continue
		}
		if len(leads) == 0 {
			a.log.Info("bootstrap source found nothing", "source", src.Name())
			errs = append(errs, fmt.Errorf("%s: nothing found", src.Name()))
			continue
		}
		for _, lead := range leads {
			outcome, err := a.followLead(ctx, lead)
			if err == nil {
				return outcome, nil
			}
			if errors.Is(err, ErrEnvironment) || ctx.Err() != nil {
				return 0, err
			}
			errs = append(errs, err)
		}
	}
	return 0, joinErrors(errs)
}

// followLead processes one lead: its servers in order, or its local data.
func (a *Agent) followLead(ctx context.Context, lead Lead) (Outcome, error) {
	if lead.Data != nil {
		a.log.Info("processing bootstrapping data found locally", "origin", lead.Origin)
		fmt.Fprintf(a.out, "%s: bootstrapping data found (untrusted source)\n", lead.Origin)
		t := target{base: lead.Origin, imageBase: lead.ImageBase, localRoot: lead.LocalRoot}
		outcome, err := a.processOutput(ctx, t, &connection{}, lead.Data, nil, 0)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", lead.Origin, err)
		}
		return outcome, nil
	}
	var errs []error
	for _, s := range lead.Servers {
		t, err := ParseBootstrapURL(s.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", lead.Origin, err))
			continue
		}
		t.anchors, t.resolver = s.Anchors, s.Resolver
		outcome, err := a.processServer(ctx, t, 0)
		if err == nil {
			return outcome, nil
		}
		if errors.Is(err, ErrEnvironment) || ctx.Err() != nil {
			return 0, err
		}
		a.log.Warn("bootstrap server did not bootstrap the device", "server", t.base, "origin", lead.Origin, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", t.base, err))
	}
	return 0, joinErrors(errs)
}

func (a *Agent) prepareStateDir() error {
	for _, d := range []string{a.cfg.StateDir, a.imagesDir(), a.scriptsDir(), a.configDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("%w: creating state directory: %w", ErrEnvironment, err)
		}
	}
	probe := filepath.Join(a.cfg.StateDir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return fmt.Errorf("%w: state directory %s is not writable: %w", ErrEnvironment, a.cfg.StateDir, err)
	}
	os.Remove(probe)
	return nil
}

func (a *Agent) imagesDir() string  { return filepath.Join(a.cfg.StateDir, "images") }
func (a *Agent) scriptsDir() string { return filepath.Join(a.cfg.StateDir, "scripts") }
func (a *Agent) configDir() string  { return filepath.Join(a.cfg.StateDir, "config") }

// joinedErrors prints several errors on one line: an operator reads the
// final error as one line on a console.
type joinedErrors []error

func (j joinedErrors) Error() string {
	parts := make([]string, len(j))
	for i, e := range j {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (j joinedErrors) Unwrap() []error { return j }

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joinedErrors(errs)
}
