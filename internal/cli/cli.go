// Package cli is the sztp-agent command line: it turns flags and the config
// file into an agent.Config, runs the agent and maps the result to the
// documented exit codes. cmd/sztp-agent only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/internal/version"
)

// Exit codes: the contract scripts and the systemd unit rely on.
const (
	ExitOK          = 0   // bootstrapped, rebooting into a new image, or a verified dry-run plan
	ExitFailed      = 1   // no source bootstrapped the device (--once / --dry-run), or a step failed
	ExitUsage       = 2   // bad flags, config file or arguments
	ExitEnvironment = 3   // the device itself is not usable: identity, trust anchors, state directory
	ExitDisabled    = 4   // SZTP is disabled on this device (sztp-agent enable turns it back on)
	ExitBusy        = 5   // another sztp-agent holds the state directory's lock
	ExitTimeout     = 6   // status --wait: the bootstrap did not finish in time
	ExitInterrupted = 130 // stopped by SIGINT/SIGTERM before finishing
)

// Main runs one sztp-agent invocation and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "validate":
		return validateCommand(args[1:], stdout, stderr)
	case "status":
		return statusCommand(ctx, args[1:], stdout, stderr)
	case "enable", "disable", "reset":
		return flagCommand(args[0], args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.Version)
		return ExitOK
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return ExitOK
	}
	fmt.Fprintf(stderr, "sztp-agent: unknown command %q\n", args[0])
	usage(stderr)
	return ExitUsage
}

// Command names one subcommand and says what it does, for the help text and
// the generated manual page.
type Command struct{ Name, Summary string }

// Commands lists the subcommands in the order the manual presents them;
// `sztp-agent NAME -h` prints each one's flags.
var Commands = []Command{
	{"run", "bootstrap this device (RFC 8572 Secure Zero Touch Provisioning)"},
	{"validate", "check bootstrapping artifacts offline, as a device would"},
	{"status", "show the bootstrap state (--json, --code, --wait --timeout)"},
	{"enable", "turn SZTP on (remove the disabled marker)"},
	{"disable", "turn SZTP off (--reason TEXT); the service then does not start"},
	{"reset", "erase the bootstrap state so the next run starts over"},
	{"version", "print the version"},
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: sztp-agent <command> [flags]

Commands:
  run       bootstrap this device (RFC 8572 Secure Zero Touch Provisioning)
  validate  check bootstrapping artifacts offline, as a device would
  status    show the bootstrap state (--json, --code, --wait --timeout)
  enable    turn SZTP on (remove the disabled marker)
  disable   turn SZTP off (--reason TEXT); the service then does not start
  reset     erase the bootstrap state so the next run starts over
  version   print the version
  help      print this help

Run "sztp-agent run -h" for the flags of run.

Exit codes: 0 bootstrapped / rebooting into the new image / dry-run plan verified,
1 bootstrap failed, 2 usage error, 3 environment error (identity, trust anchors,
state directory), 4 SZTP disabled, 5 another agent is running, 6 status --wait
timed out, 130 interrupted.
`)
}

// errorLine prints err as the single line an operator sees on a console.
func errorLine(w io.Writer, err error) {
	fmt.Fprintf(w, "sztp-agent: error: %s\n", oneLineErr(err))
}

var errUsage = errors.New("usage")

type usageError struct{ error }

func (u usageError) Unwrap() error      { return u.error }
func (usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode maps a failure to its documented code.
func exitCode(ctx context.Context, err error, environment error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUsage):
		return ExitUsage
	case errors.Is(err, agent.ErrDisabled):
		return ExitDisabled
	case errors.Is(err, state.ErrLocked):
		return ExitBusy
	case errors.Is(err, environment):
		return ExitEnvironment
	case ctx.Err() != nil:
		return ExitInterrupted
	}
	return ExitFailed
}
