//go:build linux

package scripts

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTestRunner(t *testing.T) (*Runner, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	return &Runner{
		Dir:     filepath.Join(t.TempDir(), "scripts"),
		Timeout: 20 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, &logs
}

func mustRun(t *testing.T, r *Runner, ctx context.Context, name, script string) Result {
	t.Helper()
	res, err := r.Run(ctx, name, []byte(script))
	if err != nil {
		t.Fatalf("Run: unexpected environment error: %v", err)
	}
	return res
}

func TestRunSuccess(t *testing.T) {
	t.Parallel()
	r, logs := newTestRunner(t)
	const body = "#!/bin/sh\necho configured\necho oops-not-a-warning: fine >&2\n"
	res := mustRun(t, r, context.Background(), "pre-configuration-script", body)

	if res.Outcome != Success || res.ExitCode != 0 || res.Reason != "" {
		t.Fatalf("got %+v, want success with exit 0", res)
	}
	if res.Outcome.String() != "success" {
		t.Errorf("String() = %q", res.Outcome.String())
	}
	if want := "configured\noops-not-a-warning: fine\n"; res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", res.Warnings)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", res.Duration)
	}
	if strings.Contains(logs.String(), "configured") {
		t.Errorf("log contains the script body:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "sha256=") {
		t.Errorf("log lacks the script digest:\n%s", logs.String())
	}
}

func TestRunWarning(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	const body = "#!/bin/sh\n" +
		"echo 'warning: x'\n" +
		"echo '  WARNING: y' >&2\n" +
		"echo 'no warning: here'\n" +
		"printf 'Warning:z'\n" // last line without newline still counts
	res := mustRun(t, r, context.Background(), "post-configuration-script", body)

	if res.Outcome != Warning || res.ExitCode != 0 {
		t.Fatalf("got %+v, want warning with exit 0", res)
	}
	if res.Outcome.String() != "warning" {
		t.Errorf("String() = %q", res.Outcome.String())
	}
	if want := []string{"warning: x", "WARNING: y", "Warning:z"}; !slices.Equal(res.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", res.Warnings, want)
	}
}

func TestRunFailureExitStatus(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	res := mustRun(t, r, context.Background(), "pre-configuration-script", "#!/bin/sh\necho 'warning: ignored'\necho broken >&2\nexit 3\n")

	if res.Outcome != Failure || res.ExitCode != 3 || res.Reason != "exit status 3" {
		t.Fatalf("got %+v, want failure, exit 3, reason %q", res, "exit status 3")
	}
	if res.Outcome.String() != "error" {
		t.Errorf("String() = %q", res.Outcome.String())
	}
	if !strings.Contains(res.Output, "broken") {
		t.Errorf("Output = %q, want the stderr text", res.Output)
	}
}

func TestRunKilledBySignal(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	res := mustRun(t, r, context.Background(), "pre-configuration-script", "#!/bin/sh\nkill -TERM $$\n")

	if res.Outcome != Failure || res.ExitCode != -1 || !strings.HasPrefix(res.Reason, "killed by signal") {
		t.Fatalf("got %+v, want failure killed by signal", res)
	}
}

// waitGone polls until pid no longer exists, which takes a moment because
// the killed child is reaped by init (or a subreaper) asynchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if isZombie(pid) {
			return // dead, merely not reaped yet
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after the script was stopped", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading child pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("parsing child pid %q: %v", raw, err)
	}
	return pid
}

// scriptWithSleepingChild forks a child that sleeps (keeping the output pipe
// open), records its pid, then sleeps itself.
func scriptWithSleepingChild(pidFile string) string {
	return "#!/bin/sh\n" +
		"sleep 60 &\n" +
		"echo $! > '" + pidFile + ".tmp'\n" +
		"mv '" + pidFile + ".tmp' '" + pidFile + "'\n" +
		"echo started\n" +
		"sleep 60\n"
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	r.Timeout = 500 * time.Millisecond
	pidFile := filepath.Join(t.TempDir(), "child.pid")

	start := time.Now()
	res := mustRun(t, r, context.Background(), "pre-configuration-script", scriptWithSleepingChild(pidFile))
	elapsed := time.Since(start)

	if res.Outcome != Failure || res.ExitCode != -1 || res.Reason != "timed out after 500ms" {
		t.Fatalf("got %+v, want failure timed out after 500ms", res)
	}
	if elapsed > r.Timeout+1500*time.Millisecond {
		t.Errorf("Run took %v with a %v timeout", elapsed, r.Timeout)
	}
	if !strings.Contains(res.Output, "started") {
		t.Errorf("Output = %q, want what was printed before the timeout", res.Output)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestRunContextCancel(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the script is demonstrably running.
		for {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	res := mustRun(t, r, ctx, "post-configuration-script", scriptWithSleepingChild(pidFile))
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Run took %v after cancel", elapsed)
	}
	if res.Outcome != Failure || res.ExitCode != -1 || !strings.HasPrefix(res.Reason, "canceled") {
		t.Fatalf("got %+v, want failure canceled", res)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestRunNoShebang(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	res := mustRun(t, r, context.Background(), "pre-configuration-script", "echo hello\n")

	if res.Outcome != Failure || res.ExitCode != -1 || res.Reason != "exec format error (no #! line?)" {
		t.Fatalf("got %+v, want failure with exec format reason", res)
	}
}

func TestRunMissingInterpreter(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	res := mustRun(t, r, context.Background(), "pre-configuration-script", "#!/nonexistent/interpreter\n")

	if res.Outcome != Failure || !strings.Contains(res.Reason, "interpreter missing") {
		t.Fatalf("got %+v, want failure naming the missing interpreter", res)
	}
}

func TestRunOutputTruncated(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	r.MaxOutput = 100
	// 1000 bytes of output, then a warning far past the kept part.
	body := "#!/bin/sh\ni=0\nwhile [ $i -lt 100 ]; do echo 123456789; i=$((i+1)); done\necho 'warning: late'\n"
	res := mustRun(t, r, context.Background(), "post-configuration-script", body)

	total := 1000 + len("warning: late\n")
	want := strings.Repeat("123456789\n", 10) + "…[truncated " + strconv.Itoa(total-100) + " bytes]"
	if res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}
	if res.Outcome != Warning || !slices.Equal(res.Warnings, []string{"warning: late"}) {
		t.Errorf("got outcome %v warnings %q, want the warning past the cut", res.Outcome, res.Warnings)
	}
}

func TestOutputTruncationKeepsWholeCharacters(t *testing.T) {
	t.Parallel()
	c := newOutputCollector(4)
	c.Write([]byte("ab€cd")) // € is 3 bytes, so the 4-byte cut falls inside it
	c.finish()
	if got, want := c.output(), "ab…[truncated 5 bytes]"; got != want {
		t.Errorf("output() = %q, want %q", got, want)
	}
}

func TestRunFilePrivateAndRemoved(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	const body = "#!/bin/sh\nstat -c %a \"$0\"\nstat -c %a \"$(dirname \"$0\")\"\necho \"$0\"\n"
	res := mustRun(t, r, context.Background(), "pre-configuration-script", body)
	if res.Outcome != Success {
		t.Fatalf("got %+v, want success", res)
	}
	lines := strings.Split(strings.TrimSpace(res.Output), "\n")
	if len(lines) != 3 {
		t.Fatalf("Output = %q, want three lines", res.Output)
	}
	if lines[0] != "700" || lines[1] != "700" {
		t.Errorf("script file mode %s in directory mode %s, want 700 and 700", lines[0], lines[1])
	}
	path := lines[2]
	if filepath.Base(path) != "pre-configuration-script" {
		t.Errorf("script ran as %q, want it named pre-configuration-script", path)
	}
	if !strings.HasPrefix(path, r.Dir+string(filepath.Separator)) {
		t.Errorf("script ran as %q, want it under %q", path, r.Dir)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("script file still present after run (stat: %v)", err)
	}
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("script directory not empty after run: %v", entries)
	}
	info, err := os.Stat(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("script directory mode %v, want 0700", perm)
	}
}

func TestRunConcurrentSameName(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	results := make(chan Result, 8)
	for range cap(results) {
		go func() {
			res, err := r.Run(context.Background(), "post-configuration-script", []byte("#!/bin/sh\nsleep 0.1\n"))
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			results <- res
		}()
	}
	for range cap(results) {
		if res := <-results; res.Outcome != Success {
			t.Errorf("got %+v, want success", res)
		}
	}
}

func TestRunEnvironmentErrors(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", ".", "..", "../escape", "a/b"} {
		r, _ := newTestRunner(t)
		if _, err := r.Run(context.Background(), name, []byte("#!/bin/sh\n")); err == nil {
			t.Errorf("Run with name %q: want an error", name)
		}
	}

	// Dir cannot be created because a regular file is in the way.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Dir: filepath.Join(blocker, "scripts")}
	if _, err := r.Run(context.Background(), "pre-configuration-script", []byte("#!/bin/sh\n")); err == nil {
		t.Error("Run with an impossible Dir: want an error")
	}

	r = &Runner{}
	if _, err := r.Run(context.Background(), "pre-configuration-script", []byte("#!/bin/sh\n")); err == nil {
		t.Error("Run without Dir: want an error")
	}
}

func TestRunTightensExistingDir(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	if err := os.Mkdir(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, r, context.Background(), "pre-configuration-script", "#!/bin/sh\n")
	info, err := os.Stat(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("script directory mode %v, want 0700", perm)
	}
}

func TestRunRunnerEnv(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	r.Env = []string{"SZTP_TEST_VALUE=from-runner"}
	res := mustRun(t, r, context.Background(), "pre-configuration-script", "#!/bin/sh\necho \"$SZTP_TEST_VALUE\"\n")
	if res.Output != "from-runner\n" {
		t.Errorf("Output = %q, want the runner's env value", res.Output)
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	r.Env = []string{"SZTP_RUNNER=runner", "SZTP_OVERRIDE=runner"}

	res, err := r.Command(context.Background(), `echo "$SZTP_RUNNER $SZTP_HOOK $SZTP_OVERRIDE"; echo 'warning: hook' >&2`,
		[]string{"SZTP_HOOK=hook", "SZTP_OVERRIDE=hook"})
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	if res.Outcome != Warning || res.ExitCode != 0 {
		t.Fatalf("got %+v, want warning with exit 0", res)
	}
	if want := "runner hook hook\nwarning: hook\n"; res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}

	res, err = r.Command(context.Background(), "exit 7", nil)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	if res.Outcome != Failure || res.ExitCode != 7 || res.Reason != "exit status 7" {
		t.Errorf("got %+v, want failure with exit 7", res)
	}

	if _, err := r.Command(context.Background(), "  ", nil); err == nil {
		t.Error("Command with an empty command line: want an error")
	}
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t)
	r.Timeout = 300 * time.Millisecond
	pidFile := filepath.Join(t.TempDir(), "child.pid")

	res, err := r.Command(context.Background(), "sleep 60 & echo $! > "+pidFile+"; wait", nil)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	if res.Outcome != Failure || res.Reason != "timed out after 300ms" {
		t.Fatalf("got %+v, want failure timed out", res)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestBackgroundChildDoesNotBlock(t *testing.T) {
	t.Parallel()
	r, logs := newTestRunner(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The script exits at once but leaves a child holding the output pipe.
	body := "#!/bin/sh\nsleep 30 &\necho $! > '" + pidFile + "'\necho done\n"

	start := time.Now()
	res := mustRun(t, r, context.Background(), "post-configuration-script", body)
	if elapsed := time.Since(start); elapsed > waitDelay+3*time.Second {
		t.Errorf("Run took %v; the background child blocked it", elapsed)
	}
	if res.Outcome != Success || res.Output != "done\n" {
		t.Errorf("got %+v, want success with its output", res)
	}
	if !strings.Contains(logs.String(), "background process") {
		t.Errorf("expected a log record about the background process:\n%s", logs.String())
	}
	syscall.Kill(readPID(t, pidFile), syscall.SIGKILL)
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	for o, want := range map[Outcome]string{Success: "success", Warning: "warning", Failure: "error", Outcome(9): "Outcome(9)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}
