package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/conveyed"
	"github.com/sztp-agent/sztp-agent/agent/restconf"
	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/image"
	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
	"github.com/sztp-agent/sztp-agent/internal/logging"
	"github.com/sztp-agent/sztp-agent/scripts"
)

// StepError is the failure of one onboarding step; ProgressType is the
// *-error report the step sends.
type StepError struct {
	Step         string
	ProgressType string
	Err          error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// onboard carries out onboarding information in RFC 8572 §5.6 order: boot
// image, pre-configuration script, configuration, post-configuration script.
// The first failing step stops it: nothing after it is installed, run or
// applied, and the step's *-error report is sent.
func (a *Agent) onboard(ctx context.Context, t target, conn *connection, rep *reporter, o *conveyed.Onboarding, digest string) (Outcome, error) {
	fmt.Fprintln(a.out, "onboarding information:")
	a.log.Info("onboarding information accepted", logging.MessageIDAttribute, logging.MsgOnboarding, "server", t.base, "steps", summarize(o))
	var done *state.Onboarding
	if !a.cfg.DryRun {
		st, err := a.store.Load()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrEnvironment, err)
		}
		// Progress recorded for this very document is kept; another
		// document starts from the first step.
		if st.Onboarding != nil && st.Onboarding.Digest == digest {
			done = st.Onboarding
			fmt.Fprintf(a.out, "  resuming: steps done in an earlier run are not repeated\n")
		} else {
			done = &state.Onboarding{Digest: digest, Steps: map[string]time.Time{}}
		}
		if err := a.update(func(st *state.State) { st.Onboarding, st.Server = done, t.base }); err != nil {
			return 0, err
		}
	}
	if err := rep.required(ctx, "bootstrap-initiated", ""); err != nil {
		rep.terminal(ctx, "bootstrap-error", err.Error())
		return 0, err
	}
	rep.progress(ctx, "parsing-initiated", "")
	rep.progress(ctx, "parsing-complete", summarize(o))

	run := &onboarding{Agent: a, t: t, conn: conn, rep: rep, info: o, done: done}
	outcome, err := run.steps(ctx)
	if err != nil {
		var se *StepError
		if errors.As(err, &se) {
			rep.terminal(ctx, se.ProgressType, err.Error())
		} else {
			rep.terminal(ctx, "bootstrap-error", err.Error())
		}
		fmt.Fprintf(a.out, "  FAILED: %v\n", err)
		return 0, err
	}
	return outcome, nil
}

// onboarding is one pass through the onboarding steps.
type onboarding struct {
	*Agent
	t    target
	conn *connection
	rep  *reporter
	info *conveyed.Onboarding
	// done is this document's recorded progress (nil in a dry run).
	done *state.Onboarding
	// afterReboot: a dry run whose image step would reboot describes the
	// remaining steps as what the next run does.
	afterReboot bool
}

func (r *onboarding) steps(ctx context.Context) (Outcome, error) {
	rebooting, err := r.bootImage(ctx)
	if err != nil {
		return 0, err
	}
	if rebooting && !r.cfg.DryRun {
		return Rebooting, nil
	}
	r.afterReboot = rebooting
	if err := r.script(ctx, "pre-configuration-script", "pre-script", r.info.PreConfigurationScript); err != nil {
		return 0, err
	}
	if err := r.configuration(ctx); err != nil {
		return 0, err
	}
	if err := r.script(ctx, "post-configuration-script", "post-script", r.info.PostConfigurationScript); err != nil {
		return 0, err
	}
	if r.cfg.DryRun {
		fmt.Fprintln(r.out, "  then: report bootstrap-complete")
		fmt.Fprintln(r.out, "dry run: every check passed; nothing was installed, run or applied")
		return Planned, nil
	}
	keys := sshHostKeys(r.cfg.SSHHostKeyDir, r.log)
	if err := r.rep.send(ctx, restconf.Progress{Type: "bootstrap-complete", SSHHostKeys: keys}); err != nil {
		r.rep.terminal(ctx, "bootstrap-error", err.Error())
		return 0, err
	}
	if err := r.update(func(st *state.State) {
		st.Phase, st.Completed, st.LastError = state.PhaseComplete, r.cfg.Now().UTC(), ""
	}); err != nil {
		return 0, err
	}
	r.log.Info("bootstrap complete", logging.MessageIDAttribute, logging.MsgBootstrapped)
	fmt.Fprintln(r.out, "bootstrap complete")
	return Bootstrapped, nil
}

// markDone records a finished step before it is reported, so a restart
// after this point never repeats it.
func (r *onboarding) markDone(step string) error {
	if r.done == nil {
		return nil
	}
	if r.done.Steps == nil {
		r.done.Steps = map[string]time.Time{}
	}
	r.done.Steps[step] = r.cfg.Now().UTC()
	return r.update(func(st *state.State) { st.Onboarding = r.done })
}

// alreadyDone says (and prints) whether an earlier run finished step.
func (r *onboarding) alreadyDone(step string) bool {
	if !r.done.Done(step) {
		return false
	}
	fmt.Fprintf(r.out, "  %s: done in an earlier run (%s), not repeated\n", step, r.done.Steps[step].Format(time.RFC3339))
	return true
}

func (r *onboarding) prefix() string {
	if r.afterReboot {
		return "  after the reboot, "
	}
	return "  "
}

// bootImage is RFC 8572 §5.6 step 2. It reports whether the device is about
// to reboot into a new image (which ends this pass).
func (r *onboarding) bootImage(ctx context.Context) (bool, error) {
	bi := r.info.BootImage
	if bi == nil {
		fmt.Fprintln(r.out, "  boot image: none requested")
		return false, nil
	}
	fail := func(err error) (bool, error) {
		return false, &StepError{Step: "boot image", ProgressType: "boot-image-error", Err: err}
	}
	r.step = "boot-image"
	r.rep.progress(ctx, "boot-image-initiated", "")
	if bi.OSName == "" && bi.OSVersion == "" {
		// The RFC gives no rule for an image without criteria; installing it
		// would reboot into the same request forever, so it is skipped.
		msg := "boot-image has no os-name/os-version criteria; the running image is kept"
		r.log.Warn(msg)
		r.rep.progress(ctx, "boot-image-warning", msg)
		fmt.Fprintf(r.out, "  boot image: WARNING %s\n", msg)
		return false, nil
	}
	if bi.OSName == r.cfg.OSName && bi.OSVersion == r.cfg.OSVersion {
		msg := fmt.Sprintf("running %s %s already", r.cfg.OSName, r.cfg.OSVersion)
		r.rep.progress(ctx, "boot-image-complete", msg)
		fmt.Fprintf(r.out, "  boot image: %s, nothing to download\n", msg)
		return false, nil
	}
	mismatch := fmt.Sprintf("running %s %s, onboarding information requires %s %s", r.cfg.OSName, r.cfg.OSVersion, bi.OSName, bi.OSVersion)
	r.rep.progress(ctx, "boot-image-mismatch", mismatch)
	fmt.Fprintf(r.out, "  boot image: %s\n", mismatch)
	if img := r.installedImage(bi); img != nil {
		// An earlier run installed this image. Either its reboot never
		// happened (resume it), or it happened and the device still runs
		// the old image: installing again would loop forever.
		if img.RebootIssued {
			return fail(fmt.Errorf("%s %s was installed on %s and the device rebooted, but it still runs %s %s: the install did not take effect (run `sztp-agent reset` to try again)",
				bi.OSName, bi.OSVersion, img.Installed.Format(time.RFC3339), r.cfg.OSName, r.cfg.OSVersion))
		}
		fmt.Fprintf(r.out, "    installed in an earlier run (%s); rebooting into it\n", img.Installed.Format(time.RFC3339))
		return r.reboot(ctx, bi, img.SHA256)
	}
	// Check the hooks before downloading: a step that cannot finish must
	// fail before it changes anything.
	if r.cfg.ImageInstallCommand == "" {
		return fail(errors.New("no image install command configured (--image-install-command)"))
	}
	if r.cfg.RebootCommand == "" {
		return fail(errors.New("no reboot command configured (--reboot-command)"))
	}

	// The bootstrap exchange's garbage goes back to the system before the
	// one large transfer: on a small device peak memory is what counts.
	debug.FreeOSMemory()
	res, err := r.fetcher().Fetch(ctx, r.localURIs(bi.DownloadURIs), verifications(bi))
	if err != nil {
		return fail(err)
	}
	for _, w := range res.Warnings {
		r.log.Warn("boot image", "warning", w)
		r.rep.progress(ctx, "boot-image-warning", w)
		fmt.Fprintf(r.out, "    WARNING %s\n", w)
	}
	fmt.Fprintf(r.out, "    downloaded %s (%d bytes) to %s, sha-256 %s verified\n",
		res.URI, res.Size, res.Path, conveyed.FormatHexString(res.Digests["sha-256"]))

	env := []string{"SZTP_IMAGE_PATH=" + res.Path, "SZTP_OS_NAME=" + bi.OSName, "SZTP_OS_VERSION=" + bi.OSVersion}
	if r.cfg.DryRun {
		fmt.Fprintf(r.out, "    would run install command: %s\n", r.cfg.ImageInstallCommand)
		fmt.Fprintln(r.out, "    would report boot-image-installed-rebooting")
		fmt.Fprintf(r.out, "    would run reboot command: %s\n", r.cfg.RebootCommand)
		return true, nil
	}
	result, err := r.runner(nil).Command(ctx, r.cfg.ImageInstallCommand, env)
	if err != nil {
		return fail(fmt.Errorf("running image install command: %w", err))
	}
	if result.Outcome == scripts.Failure {
		return fail(fmt.Errorf("image install command failed (%s): %s", result.Reason, oneLine(result.Output)))
	}
	fmt.Fprintf(r.out, "    installed with: %s\n", r.cfg.ImageInstallCommand)
	sum := fmt.Sprintf("%x", res.Digests["sha-256"])
	if r.done != nil {
		r.done.Image = &state.InstalledImage{OSName: bi.OSName, OSVersion: bi.OSVersion, SHA256: sum, Installed: r.cfg.Now().UTC()}
		if err := r.update(func(st *state.State) { st.Onboarding = r.done }); err != nil {
			return false, err
		}
	}
	return r.reboot(ctx, bi, sum)
}

// installedImage returns the record of bi installed by an earlier run.
func (r *onboarding) installedImage(bi *conveyed.BootImage) *state.InstalledImage {
	if r.done == nil || r.done.Image == nil {
		return nil
	}
	img := r.done.Image
	if img.OSName != bi.OSName || img.OSVersion != bi.OSVersion {
		return nil
	}
	return img
}

// reboot reports boot-image-installed-rebooting and runs the reboot command.
// The reboot is recorded before the command runs: a reboot command that
// takes the machine down never returns to record it.
func (r *onboarding) reboot(ctx context.Context, bi *conveyed.BootImage, sum string) (bool, error) {
	r.rep.terminal(ctx, "boot-image-installed-rebooting", fmt.Sprintf("installed %s %s", bi.OSName, bi.OSVersion))
	setIssued := func(issued bool) error {
		if r.done == nil || r.done.Image == nil {
			return nil
		}
		r.done.Image.RebootIssued = issued
		return r.update(func(st *state.State) {
			st.Onboarding = r.done
			if issued {
				st.Phase = state.PhaseRebooting
			} else {
				st.Phase = state.PhaseInProgress
			}
		})
	}
	if err := setIssued(true); err != nil {
		return false, err
	}
	env := []string{"SZTP_OS_NAME=" + bi.OSName, "SZTP_OS_VERSION=" + bi.OSVersion, "SZTP_IMAGE_SHA256=" + sum}
	result, err := r.runner(nil).Command(ctx, r.cfg.RebootCommand, env)
	if err == nil && result.Outcome == scripts.Failure {
		err = fmt.Errorf("reboot command failed (%s): %s", result.Reason, oneLine(result.Output))
	}
	if err != nil {
		// No reboot happened: the next pass reboots again instead of
		// concluding that the image did not take effect.
		if uerr := setIssued(false); uerr != nil {
			return false, uerr
		}
		return false, fmt.Errorf("running reboot command: %w", err)
	}
	r.log.Info("boot image installed; reboot command ran", logging.MessageIDAttribute, logging.MsgRebooting, "os_name", bi.OSName, "os_version", bi.OSVersion)
	fmt.Fprintf(r.out, "    reboot command ran: %s\n", r.cfg.RebootCommand)
	return true, nil
}

func verifications(bi *conveyed.BootImage) []image.Verification {
	var v []image.Verification
	for _, iv := range bi.ImageVerification {
		v = append(v, image.Verification{Algorithm: iv.HashAlgorithm, Digest: iv.HashValue})
	}
	return v
}

// fetcher builds the image downloader. Image servers are authenticated
// against the trust anchors of this server and the system roots; when that
// fails the download still goes ahead, because integrity comes from the hash
// in conveyed information, and a boot-image-warning says so.
func (r *onboarding) fetcher() *image.Fetcher {
	anchors := append(append([]*x509.Certificate{}, r.cfg.TrustAnchors...), r.conn.anchors...)
	client := func(tc *tls.Config) *http.Client { return &http.Client{Transport: r.transport(tc)} }
	// The IDevID goes along in case the image server asks for it (Go only
	// sends it on request): servers that serve per-device images identify
	// the device that way.
	ids := []tls.Certificate{r.cfg.Identity}
	return &image.Fetcher{
		Dir: r.imagesDir(),
		Client: client(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: ids,
			InsecureSkipVerify: true, VerifyConnection: anchorsThenSystemRoots(anchors)}),
		InsecureClient: client(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: ids}),
		Logger:         r.log,
		Progress:       r.cfg.ImageProgress,
		LocalRoot:      r.t.localRoot,
	}
}

// localURIs turns relative download-uri values of data found on removable
// storage into file URIs under the medium's root (RFC 8572 §4.1 leaves the
// layout open; images beside the artifacts is what vendors' tools write).
// A path that would leave the medium is dropped.
func (r *onboarding) localURIs(uris []string) []string {
	if r.t.localRoot == "" {
		return uris
	}
	out := make([]string, 0, len(uris))
	for _, u := range uris {
		if parsed, err := url.Parse(u); err == nil && parsed.Scheme != "" {
			out = append(out, u)
			continue
		}
		rel, err := filepath.Rel(r.t.localRoot, filepath.Join(r.t.imageBase, u))
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			r.log.Warn("download-uri leaves the removable medium; ignored", "uri", u)
			continue
		}
		out = append(out, "file:///"+filepath.ToSlash(rel))
	}
	return out
}

// anchorsThenSystemRoots verifies a server against the trust anchors first
// and only then against the system roots: parsing the system bundle costs
// megabytes of memory on a small device, and the image usually comes from
// the owner's own servers.
func anchorsThenSystemRoots(anchors []*x509.Certificate) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("image server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter}
		if len(anchors) > 0 {
			opts.Roots = x509.NewCertPool()
			for _, a := range anchors {
				opts.Roots.AddCert(a)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err == nil {
				return nil
			}
		}
		opts.Roots = nil // the system roots
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

func (r *onboarding) runner(env []string) *scripts.Runner {
	return &scripts.Runner{
		Dir:     r.scriptsDir(),
		Timeout: r.cfg.ScriptTimeout,
		Env:     append([]string{"SZTP_SERIAL_NUMBER=" + r.cfg.SerialNumber}, env...),
		Logger:  r.log,
	}
}

// script runs the pre- or post-configuration script (RFC 8572 §5.6 steps 3
// and 5). Exit 0 is success, exit 0 with "warning:" lines a warning, anything
// else an error.
func (r *onboarding) script(ctx context.Context, leaf, progress string, body []byte) error {
	if body == nil {
		fmt.Fprintf(r.out, "%s%s: none\n", r.prefix(), leaf)
		return nil
	}
	fail := func(err error) error {
		return &StepError{Step: leaf, ProgressType: progress + "-error", Err: err}
	}
	if r.alreadyDone(leaf) {
		return nil
	}
	r.step = leaf
	r.rep.progress(ctx, progress+"-initiated", "")
	if r.cfg.DryRun {
		fmt.Fprintf(r.out, "%swould run %s: %d bytes, sha-256 %x, first line %q\n",
			r.prefix(), leaf, len(body), sha256.Sum256(body), firstLine(body))
		return nil
	}
	res, err := r.runner(nil).Run(ctx, leaf, body)
	if err != nil {
		return fail(err)
	}
	switch res.Outcome {
	case scripts.Failure:
		return fail(fmt.Errorf("script failed (%s): %s", res.Reason, oneLine(res.Output)))
	case scripts.Warning:
		r.rep.progress(ctx, progress+"-warning", strings.Join(res.Warnings, "\n"))
		fmt.Fprintf(r.out, "  %s: ran with warnings: %s\n", leaf, strings.Join(res.Warnings, "; "))
	default:
		fmt.Fprintf(r.out, "  %s: ran successfully\n", leaf)
	}
	if err := r.markDone(leaf); err != nil {
		return err
	}
	r.rep.progress(ctx, progress+"-complete", res.Output)
	return nil
}

// configuration commits the configuration through the apply command (RFC
// 8572 §5.6 step 4), which receives the file and the handling (merge or
// replace) and must commit atomically.
func (r *onboarding) configuration(ctx context.Context) error {
	if r.info.Configuration == nil {
		fmt.Fprintf(r.out, "%sconfiguration: none\n", r.prefix())
		return nil
	}
	fail := func(err error) error {
		return &StepError{Step: "configuration", ProgressType: "config-error", Err: err}
	}
	if r.alreadyDone("configuration") {
		return nil
	}
	if r.cfg.ConfigApplyCommand == "" {
		return fail(errors.New("no configuration apply command configured (--config-apply-command)"))
	}
	r.step = "configuration"
	r.rep.progress(ctx, "config-initiated", "")
	path := filepath.Join(r.configDir(), "configuration")
	if r.cfg.DryRun {
		fmt.Fprintf(r.out, "%swould %s configuration: %d bytes, sha-256 %x, with: %s\n",
			r.prefix(), r.info.ConfigurationHandling, len(r.info.Configuration), sha256.Sum256(r.info.Configuration), r.cfg.ConfigApplyCommand)
		return nil
	}
	if err := atomicfile.WriteFile(path, r.info.Configuration, 0o600); err != nil {
		return fail(fmt.Errorf("%w: staging configuration: %w", ErrEnvironment, err))
	}
	env := []string{"SZTP_CONFIG_PATH=" + path, "SZTP_CONFIG_HANDLING=" + r.info.ConfigurationHandling}
	res, err := r.runner(nil).Command(ctx, r.cfg.ConfigApplyCommand, env)
	if err != nil {
		return fail(err)
	}
	switch res.Outcome {
	case scripts.Failure:
		return fail(fmt.Errorf("configuration apply command failed (%s): %s", res.Reason, oneLine(res.Output)))
	case scripts.Warning:
		r.rep.progress(ctx, "config-warning", strings.Join(res.Warnings, "\n"))
	}
	fmt.Fprintf(r.out, "  configuration: %s committed (%d bytes)\n", r.info.ConfigurationHandling, len(r.info.Configuration))
	if err := r.markDone("configuration"); err != nil {
		return err
	}
	r.rep.progress(ctx, "config-complete", "")
	return nil
}

func summarize(o *conveyed.Onboarding) string {
	var parts []string
	if o.BootImage != nil {
		parts = append(parts, "boot-image")
	}
	if o.PreConfigurationScript != nil {
		parts = append(parts, "pre-configuration-script")
	}
	if o.Configuration != nil {
		parts = append(parts, "configuration ("+o.ConfigurationHandling+")")
	}
	if o.PostConfigurationScript != nil {
		parts = append(parts, "post-configuration-script")
	}
	if len(parts) == 0 {
		return "empty onboarding information"
	}
	return strings.Join(parts, ", ")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// oneLine squeezes command output into one line for an error message.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
