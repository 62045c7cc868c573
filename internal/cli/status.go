package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/agent/state"
)

// Status is the `status --json` document (schema in docs/operator-notes.md).
type Status struct {
	Version        int       `json:"version"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled-reason,omitempty"`
	State          string    `json:"state"` // not-started | in-progress | boot-image-installed-rebooting | bootstrap-complete | failed
	Running        bool      `json:"running"`
	PID            int       `json:"pid,omitempty"`
	Step           string    `json:"step,omitempty"`
	Server         string    `json:"server,omitempty"`
	Runs           int       `json:"runs"`
	Passes         int       `json:"passes"`
	Started        time.Time `json:"started,omitzero"`
	Updated        time.Time `json:"updated,omitzero"`
	Completed      time.Time `json:"completed,omitzero"`
	LastError      string    `json:"last-error,omitempty"`
	StepsDone      []string  `json:"steps-done,omitempty"`
	Image          *struct {
		OSName       string    `json:"os-name"`
		OSVersion    string    `json:"os-version"`
		Installed    time.Time `json:"installed"`
		RebootIssued bool      `json:"reboot-issued"`
	} `json:"image,omitempty"`
}

// Code is the one-line form for scripts, SONiC style.
func (s *Status) Code() string {
	switch {
	case !s.Enabled:
		return "0:DISABLED"
	case s.State == state.PhaseNotStarted:
		return "1:NOT-STARTED"
	case s.State == state.PhaseInProgress:
		return "2:IN-PROGRESS"
	case s.State == state.PhaseRebooting:
		return "3:REBOOTING"
	case s.State == state.PhaseFailed:
		return "4:FAILED"
	case s.State == state.PhaseComplete:
		return "5:COMPLETE"
	}
	return "9:UNKNOWN"
}

func readStatus(stateDir, runDir string) (*Status, error) {
	store := &state.Store{Dir: stateDir}
	st, err := store.Load()
	if err != nil {
		return nil, err
	}
	disabled, err := store.DisabledBy()
	if err != nil {
		return nil, err
	}
	s := &Status{Version: 1, Enabled: disabled == nil, State: st.Phase, Server: st.Server, Runs: st.Runs, Passes: st.Passes,
		Started: st.Started, Updated: st.Updated, Completed: st.Completed, LastError: st.LastError}
	if disabled != nil {
		s.DisabledReason = disabled.Reason
	}
	if ob := st.Onboarding; ob != nil {
		for step := range ob.Steps {
			s.StepsDone = append(s.StepsDone, step)
		}
		sort.Strings(s.StepsDone)
		if img := ob.Image; img != nil {
			s.Image = &struct {
				OSName       string    `json:"os-name"`
				OSVersion    string    `json:"os-version"`
				Installed    time.Time `json:"installed"`
				RebootIssued bool      `json:"reboot-issued"`
			}{img.OSName, img.OSVersion, img.Installed, img.RebootIssued}
		}
	}
	if pid, held := state.Holder(stateDir); held {
		s.Running, s.PID = true, pid
		var rs agent.RuntimeStatus
		if data, err := os.ReadFile(filepath.Join(runDir, agent.RuntimeStatusFile)); err == nil && json.Unmarshal(data, &rs) == nil && rs.PID == pid {
			s.Step = rs.Step
		}
	}
	return s, nil
}

// statusCommand prints the bootstrap state. With --wait it returns when the
// bootstrap completed (0), failed (1), SZTP is disabled (4) or the timeout
// passed (6).
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sztp-agent status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", DefaultStateDir, "the agent's state directory")
	runDir := fs.String("run-dir", DefaultRunDir, "the agent's runtime directory")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	code := fs.Bool("code", false, "print a one-line code (0:DISABLED 1:NOT-STARTED 2:IN-PROGRESS 3:REBOOTING 4:FAILED 5:COMPLETE)")
	wait := fs.Bool("wait", false, "wait until the bootstrap completes or fails (or SZTP is disabled)")
	timeout := fs.Duration("timeout", 0, "with --wait: give up after this long (0: wait forever)")
	poll := fs.Duration("poll", 500*time.Millisecond, "with --wait: how often to look")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		errorLine(stderr, usagef("unexpected argument %q", fs.Arg(0)))
		return ExitUsage
	}
	var deadline <-chan time.Time
	if *wait && *timeout > 0 {
		t := time.NewTimer(*timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		s, err := readStatus(*stateDir, *runDir)
		if err != nil {
			errorLine(stderr, err)
			return ExitEnvironment
		}
		result := ExitOK
		finished := true
		if *wait {
			switch {
			case !s.Enabled:
				result = ExitDisabled
			case s.State == state.PhaseComplete:
			case s.State == state.PhaseFailed && !s.Running:
				result = ExitFailed
			default:
				finished = false
			}
		}
		if finished {
			printStatus(stdout, s, *asJSON, *code)
			return result
		}
		select {
		case <-ctx.Done():
			return ExitInterrupted
		case <-deadline:
			printStatus(stdout, s, *asJSON, *code)
			fmt.Fprintf(stderr, "sztp-agent: status --wait: not finished after %s\n", *timeout)
			return ExitTimeout
		case <-time.After(*poll):
		}
	}
}

func printStatus(w io.Writer, s *Status, asJSON, code bool) {
	switch {
	case asJSON:
		data, _ := json.MarshalIndent(s, "", "  ")
		fmt.Fprintf(w, "%s\n", data)
		return
	case code:
		fmt.Fprintln(w, s.Code())
		return
	}
	if s.Enabled {
		fmt.Fprintln(w, "SZTP:       enabled")
	} else {
		fmt.Fprintf(w, "SZTP:       DISABLED (%s)\n", s.DisabledReason)
	}
	fmt.Fprintf(w, "State:      %s\n", s.State)
	if s.Running {
		fmt.Fprintf(w, "Running:    yes, pid %d%s\n", s.PID, map[bool]string{true: ", step " + s.Step, false: ""}[s.Step != ""])
	} else {
		fmt.Fprintln(w, "Running:    no")
	}
	if s.Server != "" {
		fmt.Fprintf(w, "Server:     %s\n", s.Server)
	}
	fmt.Fprintf(w, "Runs:       %d (passes over the sources: %d)\n", s.Runs, s.Passes)
	if !s.Started.IsZero() {
		fmt.Fprintf(w, "Started:    %s\n", s.Started.Format(time.RFC3339))
	}
	if !s.Completed.IsZero() {
		fmt.Fprintf(w, "Completed:  %s\n", s.Completed.Format(time.RFC3339))
	}
	if len(s.StepsDone) > 0 {
		fmt.Fprintf(w, "Steps done: %v\n", s.StepsDone)
	}
	if s.Image != nil {
		fmt.Fprintf(w, "Image:      %s %s installed %s\n", s.Image.OSName, s.Image.OSVersion, s.Image.Installed.Format(time.RFC3339))
	}
	if s.LastError != "" {
		fmt.Fprintf(w, "Last error: %s\n", s.LastError)
	}
}

// flagCommand is enable, disable and reset.
func flagCommand(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sztp-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", DefaultStateDir, "the agent's state directory")
	runDir := fs.String("run-dir", DefaultRunDir, "the agent's runtime directory (reset)")
	reason := fs.String("reason", "disabled by an operator", "disable: why (shown by status)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		errorLine(stderr, usagef("unexpected argument %q", fs.Arg(0)))
		return ExitUsage
	}
	store := &state.Store{Dir: *stateDir}
	var err error
	switch name {
	case "enable":
		err = store.Enable()
		if err == nil {
			fmt.Fprintln(stdout, "SZTP enabled")
		}
	case "disable":
		err = store.Disable(*reason)
		if err == nil {
			fmt.Fprintf(stdout, "SZTP disabled: %s\n", *reason)
		}
	case "reset":
		// The lock keeps a reset from pulling the state from under a
		// running agent.
		lock, lerr := state.Acquire(*stateDir)
		if lerr != nil {
			errorLine(stderr, lerr)
			return exitCode(context.Background(), lerr, errEnv)
		}
		defer lock.Release()
		err = store.Reset()
		for _, d := range []string{"images", "scripts", "config"} {
			if rerr := os.RemoveAll(filepath.Join(*stateDir, d)); rerr != nil && err == nil {
				err = rerr
			}
		}
		os.Remove(filepath.Join(*runDir, agent.RuntimeStatusFile))
		if err == nil {
			fmt.Fprintln(stdout, "bootstrap state erased; the next run starts over (factory identity and the enabled flag are kept)")
		}
	}
	if err != nil {
		errorLine(stderr, err)
		return ExitEnvironment
	}
	return ExitOK
}
