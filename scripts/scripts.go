//go:build linux

// Package scripts runs the RFC 8572 pre- and post-configuration scripts
// conveyed by a bootstrap server, and the operator's own hook commands.
//
// Both kinds of program get the same treatment: a timeout, their own
// process group (so that everything they fork can be killed together),
// captured and bounded combined output, and a classification into success,
// warning or failure in the sense of RFC 8572 §7.3 (a script reports a
// warning by exiting 0 and saying so on its output).
package scripts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Outcome classifies how a script or hook ended.
type Outcome int

const (
	// Success means exit status 0 and no warning lines.
	Success Outcome = iota
	// Warning means exit status 0 with at least one output line beginning
	// "warning:" (case-insensitive, leading blanks allowed).
	Warning
	// Failure means a non-zero exit status, death by a signal, a timeout,
	// cancellation, or a program that could not be started at all.
	Failure
)

// String returns the words RFC 8572 progress reports use for the outcome.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Warning:
		return "warning"
	case Failure:
		return "error"
	default:
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
}

// Result describes one finished run.
type Result struct {
	Outcome Outcome
	// ExitCode is the exit status, or -1 when the program did not exit
	// normally (signal, timeout, never started).
	ExitCode int
	// Output is the combined stdout and stderr, cut to Runner.MaxOutput
	// bytes; a cut is marked with a trailing "…[truncated N bytes]".
	Output string
	// Warnings holds the "warning:" lines, seen over the whole output
	// (not only the part kept in Output).
	Warnings []string
	// Reason explains a Failure in a few words; empty otherwise.
	Reason   string
	Duration time.Duration
}

// Runner runs scripts and hook commands. The zero value is not usable for
// Run, which needs Dir; Command works with a zero Runner.
type Runner struct {
	// Dir is a private directory for script files; it is created with mode
	// 0700 if missing.
	Dir string
	// Timeout bounds each script or command; 0 means DefaultTimeout.
	Timeout time.Duration
	// Env holds extra "K=V" entries added to the inherited environment.
	Env []string
	// MaxOutput bounds Result.Output in bytes; 0 means DefaultMaxOutput.
	MaxOutput int
	// Logger receives progress records; nil discards them.
	Logger *slog.Logger
}

const (
	// DefaultTimeout applies when Runner.Timeout is 0.
	DefaultTimeout = 10 * time.Minute
	// DefaultMaxOutput applies when Runner.MaxOutput is 0.
	DefaultMaxOutput = 64 << 10
)

const (
	// waitDelay bounds how long we wait for the output pipe to close once
	// the program has exited or been killed; a background grandchild that
	// inherited the pipe would otherwise make Wait block for its lifetime.
	waitDelay = 2 * time.Second

	// Warning lines are recorded over the whole output, which is unbounded,
	// so both their number and their length are capped to bound memory.
	maxWarnings       = 100
	maxWarningLineLen = 1024

	// A script file that was just written may briefly be held open for
	// writing by a child forked concurrently elsewhere in the process (the
	// descriptor lives until that child execs), and executing it then
	// fails with ETXTBSY; the condition clears by itself within moments.
	textBusyRetries = 5
	textBusyBackoff = 20 * time.Millisecond
)

// Run writes script into a fresh private file named name inside Dir,
// executes it directly (it needs its own #! line; no shell is involved),
// waits for it within the timeout, classifies the outcome and removes the
// file. name is a plain file name such as "pre-configuration-script".
//
// The error is non-nil only when the environment prevents running at all
// (bad name, cannot create Dir or write the file); a script that fails is
// reported as Result{Outcome: Failure} with a nil error.
func (r *Runner) Run(ctx context.Context, name string, script []byte) (Result, error) {
	logger := r.logger().With("script", name)
	if err := checkScriptName(name); err != nil {
		return Result{}, fmt.Errorf("running %s: %w", name, err)
	}
	if r.Dir == "" {
		return Result{}, fmt.Errorf("running %s: runner has no script directory", name)
	}
	if err := ensurePrivateDir(r.Dir, logger); err != nil {
		return Result{}, fmt.Errorf("running %s: preparing script directory: %w", name, err)
	}

	// Each run gets its own 0700 subdirectory so the script file can carry
	// exactly the given name (scripts may look at $0) without colliding
	// with a leftover from a crash or with a concurrent run.
	runDir, err := os.MkdirTemp(r.Dir, name+"-")
	if err != nil {
		return Result{}, fmt.Errorf("running %s: creating run directory: %w", name, err)
	}
	defer func() {
		if err := os.RemoveAll(runDir); err != nil {
			logger.Warn("could not remove script file", "dir", runDir, "err", err)
		}
	}()

	path := filepath.Join(runDir, name)
	if err := writeExecutable(path, script); err != nil {
		return Result{}, fmt.Errorf("running %s: writing script file: %w", name, err)
	}

	// The body may contain secrets, so only its size and digest are logged.
	digest := sha256.Sum256(script)
	logger.Info("running script", "size", len(script), "sha256", hex.EncodeToString(digest[:]))

	res := r.execute(ctx, logger, func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, path)
		cmd.Env = append(os.Environ(), r.Env...)
		return cmd
	})
	if errors.Is(res.startErr, syscall.ENOENT) {
		// The file exists, so ENOENT from execve means the #! interpreter
		// does not.
		res.Reason += " (#! interpreter missing?)"
	}
	logResult(logger, res.Result)
	return res.Result, nil
}

// Command runs an operator-configured hook command line through
// /bin/sh -c, with Runner.Env and then env added to the inherited
// environment (later entries win), the runner's timeout and captured
// output. A failing hook is reported as Result{Outcome: Failure}.
func (r *Runner) Command(ctx context.Context, command string, env []string) (Result, error) {
	logger := r.logger()
	if strings.TrimSpace(command) == "" {
		return Result{}, errors.New("running hook command: command is empty")
	}
	// Hook command lines are operator configuration, not secrets conveyed
	// by a server, so they are logged verbatim to ease debugging.
	logger = logger.With("hook", command)
	logger.Info("running hook command")

	res := r.execute(ctx, logger, func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
		cmd.Env = append(append(os.Environ(), r.Env...), env...)
		return cmd
	})
	logResult(logger, res.Result)
	return res.Result, nil
}

// executed carries, next to the public result, the start error so that
// callers can refine the reason with what they know about the program.
type executed struct {
	Result
	startErr error
}

// execute starts the command built by newCmd in its own process group,
// collects its output and classifies how it ended.
func (r *Runner) execute(ctx context.Context, logger *slog.Logger, newCmd func(context.Context) *exec.Cmd) executed {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxOutput := r.MaxOutput
	if maxOutput <= 0 {
		maxOutput = DefaultMaxOutput
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := newOutputCollector(maxOutput)
	started := time.Now()

	var cmd *exec.Cmd
	var startErr error
	for attempt := 0; ; attempt++ {
		cmd = newCmd(runCtx)
		prepare(cmd, out)
		startErr = cmd.Start()
		if startErr == nil || !errors.Is(startErr, syscall.ETXTBSY) || attempt == textBusyRetries {
			break
		}
		logger.Debug("executable busy, retrying start", "attempt", attempt+1)
		select {
		case <-runCtx.Done():
			// Start on the next round reports the context error.
		case <-time.After(textBusyBackoff * time.Duration(attempt+1)):
		}
	}
	if startErr != nil {
		return executed{
			Result: Result{
				Outcome:  Failure,
				ExitCode: -1,
				Reason:   startFailureReason(startErr),
				Duration: time.Since(started),
			},
			startErr: startErr,
		}
	}

	waitErr := cmd.Wait()
	res := Result{Duration: time.Since(started)}
	out.finish()
	res.Output = out.output()
	res.Warnings = out.warningLines()
	res.ExitCode = -1
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}

	// A program that exited on its own is judged by its status even if
	// the context ended meanwhile; otherwise the SIGKILL is ours and the
	// reason should say why we sent it rather than report a crash.
	exited := cmd.ProcessState != nil && cmd.ProcessState.Exited()
	switch {
	case !exited && ctx.Err() != nil:
		res.Outcome, res.ExitCode = Failure, -1
		res.Reason = "canceled: " + ctx.Err().Error()
	case !exited && errors.Is(runCtx.Err(), context.DeadlineExceeded):
		res.Outcome, res.ExitCode = Failure, -1
		res.Reason = "timed out after " + timeout.String()
	case waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay):
		res.Outcome = Failure
		res.Reason = exitFailureReason(cmd.ProcessState, waitErr)
	case res.ExitCode != 0:
		// Defensive: Wait reported no error, yet the status is not 0.
		res.Outcome = Failure
		res.Reason = fmt.Sprintf("exit status %d", res.ExitCode)
	default:
		if errors.Is(waitErr, exec.ErrWaitDelay) {
			// Exit status 0 counts; the leftover background process only
			// loses the rest of its output.
			logger.Warn("program exited but a background process kept its output open; stopped reading after "+waitDelay.String(), "pid", cmd.Process.Pid)
		}
		res.Outcome = Success
		if len(res.Warnings) > 0 {
			res.Outcome = Warning
		}
	}
	return executed{Result: res}
}

// prepare applies what every run needs: no stdin, one shared pipe for
// stdout and stderr, a new process group, and a cancellation that kills
// that whole group. cmd must come from exec.CommandContext, since that is
// what makes os/exec call Cancel.
func prepare(cmd *exec.Cmd, out io.Writer) {
	cmd.Stdin = nil
	// Passing the same writer makes os/exec use a single pipe, which keeps
	// the relative order of stdout and stderr lines.
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	cmd.Cancel = func() error {
		// The group id equals the leader's pid thanks to Setpgid; a
		// negative pid addresses the whole group, reaching the children
		// a script leaves behind.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

func startFailureReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOEXEC):
		return "exec format error (no #! line?)"
	case errors.Is(err, syscall.EACCES):
		return "could not start: " + err.Error() + " (script directory mounted noexec?)"
	default:
		return "could not start: " + err.Error()
	}
}

func exitFailureReason(state *os.ProcessState, waitErr error) string {
	if state == nil {
		return "waiting for program: " + waitErr.Error()
	}
	if status, ok := state.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return "killed by signal " + status.Signal().String()
	}
	if code := state.ExitCode(); code >= 0 {
		return fmt.Sprintf("exit status %d", code)
	}
	return waitErr.Error()
}

func logResult(logger *slog.Logger, res Result) {
	attrs := []any{
		"outcome", res.Outcome.String(),
		"exit_code", res.ExitCode,
		"duration", res.Duration,
		"output_bytes", len(res.Output),
	}
	switch res.Outcome {
	case Failure:
		logger.Warn("program failed", append(attrs, "reason", res.Reason)...)
	case Warning:
		logger.Warn("program reported warnings", append(attrs, "warnings", len(res.Warnings))...)
	default:
		logger.Info("program succeeded", attrs...)
	}
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// checkScriptName keeps the name a single path element so that it cannot
// place the file outside the run directory.
func checkScriptName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid script name %q", name)
	}
	return nil
}

// ensurePrivateDir creates dir with mode 0700, or tightens an existing one:
// scripts are written there before they run, so nobody else may be able to
// replace or read them.
func ensurePrivateDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		logger.Warn("script directory is accessible to others; restricting to 0700", "dir", dir, "mode", info.Mode().Perm().String())
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// writeExecutable creates path exclusively with mode 0700 and fills it.
func writeExecutable(path string, content []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
	}()
	// The umask could have removed bits we need (or, with a permissive
	// umask, nothing); set the mode explicitly.
	if err := f.Chmod(0o700); err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		return err
	}
	return nil
}

// outputCollector keeps the first max bytes of the output and scans all of
// it for warning lines.
type outputCollector struct {
	mu      sync.Mutex
	max     int
	kept    []byte
	dropped int64

	line     []byte // start of the current line, at most maxWarningLineLen bytes
	warnings []string
}

func newOutputCollector(max int) *outputCollector {
	return &outputCollector{max: max}
}

func (c *outputCollector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if room := c.max - len(c.kept); room > 0 {
		c.kept = append(c.kept, p[:min(room, len(p))]...)
		c.dropped += int64(len(p) - min(room, len(p)))
	} else {
		c.dropped += int64(len(p))
	}

	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			c.appendToLine(rest)
			break
		}
		c.appendToLine(rest[:i])
		c.endLine()
		rest = rest[i+1:]
	}
	return len(p), nil
}

func (c *outputCollector) appendToLine(p []byte) {
	if room := maxWarningLineLen - len(c.line); room > 0 {
		c.line = append(c.line, p[:min(room, len(p))]...)
	}
}

func (c *outputCollector) endLine() {
	line := strings.TrimRight(string(c.line), "\r")
	c.line = c.line[:0]
	trimmed := strings.TrimLeft(line, " \t")
	const prefix = "warning:"
	if len(trimmed) >= len(prefix) && strings.EqualFold(trimmed[:len(prefix)], prefix) && len(c.warnings) < maxWarnings {
		c.warnings = append(c.warnings, strings.TrimRight(trimmed, " \t"))
	}
}

// finish treats a final line without a newline as a line.
func (c *outputCollector) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.line) > 0 {
		c.endLine()
	}
}

func (c *outputCollector) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped == 0 {
		return string(c.kept)
	}
	kept, dropped := c.kept, c.dropped
	// Do not end on half a character; the cut bytes count as dropped.
	for i := len(kept) - 1; i >= 0 && i >= len(kept)-utf8.UTFMax; i-- {
		if utf8.RuneStart(kept[i]) {
			if !utf8.FullRune(kept[i:]) {
				dropped += int64(len(kept) - i)
				kept = kept[:i]
			}
			break
		}
	}
	return fmt.Sprintf("%s…[truncated %d bytes]", kept, dropped)
}

func (c *outputCollector) warningLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}
