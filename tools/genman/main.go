// Command genman writes the sztp-agent(8) manual page from the command
// definitions themselves, so the manual cannot drift from the binary:
//
//   - the command list is cli.Commands;
//   - each command's flags are what `sztp-agent NAME -h` prints, captured by
//     calling cli.Main in process;
//   - the exit status table is the Exit* constants of internal/cli, with the
//     descriptions taken from their comments in the source (parsed with
//     go/parser) and every value cross-checked against the compiled constant;
//   - the file names are the constants of cli, agent, agent/state and logging.
//
// The date comes from SOURCE_DATE_EPOCH (a fixed default otherwise), so the
// same tree always gives the same bytes (reproducible packages).
//
// Usage, from the module root:
//
//	go run ./tools/genman [-version V] [-cli-src internal/cli] [-o sztp-agent.8]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/internal/cli"
	"github.com/sztp-agent/sztp-agent/internal/logging"
	"github.com/sztp-agent/sztp-agent/internal/version"
)

// defaultEpoch is the page date when SOURCE_DATE_EPOCH is unset: fixed, not
// "now", so that an unstamped build is reproducible too (2025-01-01).
const defaultEpoch = 1735689600

func main() {
	out := flag.String("o", "", "output file (default: standard output)")
	ver := flag.String("version", version.Version, "version printed in the page footer")
	src := flag.String("cli-src", "internal/cli", "directory of the cli package source (for the exit-code comments)")
	facts := flag.Bool("facts", false, "print the paths and exit codes the packaging relies on, as NAME=VALUE lines, instead of the page")
	flag.Parse()

	if *facts {
		// tools/check-packaging.sh compares these with the unit file and
		// the recipes, so a changed constant cannot leave them behind.
		printFacts()
		return
	}

	date, err := pageDate(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		fail(err)
	}
	codes, err := exitCodes(*src)
	if err != nil {
		fail(err)
	}
	page, err := render(*ver, date, codes)
	if err != nil {
		fail(err)
	}
	if *out == "" {
		os.Stdout.Write(page)
		return
	}
	// Written whole or not at all: a half-written page must not be packaged.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, page, 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		fail(err)
	}
}

func printFacts() {
	fmt.Printf("config-file=%s\n", cli.DefaultConfigFile)
	fmt.Printf("state-dir=%s\n", cli.DefaultStateDir)
	fmt.Printf("run-dir=%s\n", cli.DefaultRunDir)
	fmt.Printf("disabled-marker=%s\n", filepath.Join(cli.DefaultStateDir, state.DisabledFile))
	names := make([]string, 0, len(compiled))
	for name := range compiled {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("%s=%d\n", name, compiled[name])
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genman:", err)
	os.Exit(1)
}

func pageDate(epoch string) (time.Time, error) {
	if epoch == "" {
		return time.Unix(defaultEpoch, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// exitCode is one Exit* constant: its value and the comment beside it.
type exitCode struct {
	name  string
	value int
	doc   string
}

// compiled holds the exit codes as the binary sees them. A constant renamed
// or removed in cli breaks this build; a value that differs from the parsed
// source (genman run against another tree) fails the generation.
var compiled = map[string]int{
	"ExitOK":          cli.ExitOK,
	"ExitFailed":      cli.ExitFailed,
	"ExitUsage":       cli.ExitUsage,
	"ExitEnvironment": cli.ExitEnvironment,
	"ExitDisabled":    cli.ExitDisabled,
	"ExitBusy":        cli.ExitBusy,
	"ExitTimeout":     cli.ExitTimeout,
	"ExitInterrupted": cli.ExitInterrupted,
}

// exitCodes parses the cli package source for its Exit* constants. The
// source is read (not just the compiled values) because the meaning of each
// code lives in its comment, which is the contract's only wording.
func exitCodes(dir string) ([]exitCode, error) {
	// One file at a time rather than parser.ParseDir (deprecated): the
	// package's non-test files, in a stable order.
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	parsed := map[string]*ast.File{}
	var names []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parsing the cli package: %w", err)
		}
		if f.Name.Name != "cli" {
			continue
		}
		parsed[name] = f
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no package cli (run genman from the module root or give -cli-src)", dir)
	}
	sort.Strings(names)
	var codes []exitCode
	seen := map[string]bool{}
	for _, name := range names {
		for _, decl := range parsed[name].Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Exit") || !id.IsExported() || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.INT {
						return nil, fmt.Errorf("%s: %s is not an integer literal", fset.Position(id.Pos()), id.Name)
					}
					v, ok := constant.Int64Val(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
					if !ok {
						return nil, fmt.Errorf("%s: %s: bad value %s", fset.Position(id.Pos()), id.Name, lit.Value)
					}
					doc := strings.TrimSpace(vs.Comment.Text())
					if doc == "" {
						doc = strings.TrimSpace(vs.Doc.Text())
					}
					if doc == "" {
						return nil, fmt.Errorf("%s: %s has no comment to document it with", fset.Position(id.Pos()), id.Name)
					}
					codes = append(codes, exitCode{id.Name, int(v), doc})
					seen[id.Name] = true
					if want, ok := compiled[id.Name]; ok && want != int(v) {
						return nil, fmt.Errorf("%s = %d in %s but %d in the compiled cli package: generate from the tree genman was built from",
							id.Name, v, dir, want)
					}
				}
			}
		}
	}
	for name := range compiled {
		if !seen[name] {
			return nil, fmt.Errorf("%s not found in %s", name, dir)
		}
	}
	sort.SliceStable(codes, func(i, j int) bool { return codes[i].value < codes[j].value })
	return codes, nil
}

// flagHelp is one flag as `sztp-agent CMD -h` prints it.
type flagHelp struct {
	name, arg string
	usage     []string
}

// commandFlags runs `sztp-agent NAME -h` in process and parses the flag
// package's PrintDefaults layout:
//
//	-name type
//	  	usage, possibly on
//	  	several lines
//
// A command whose -h does not print a "Usage of" header (version) has no
// flags.
func commandFlags(name string) ([]flagHelp, error) {
	var buf bytes.Buffer
	code := cli.Main(context.Background(), []string{name, "-h"}, &buf, &buf)
	if code != cli.ExitOK {
		return nil, fmt.Errorf("sztp-agent %s -h exited %d: %s", name, code, buf.String())
	}
	text := buf.String()
	if !strings.HasPrefix(text, "Usage of ") {
		return nil, nil
	}
	var flags []flagHelp
	for _, line := range strings.Split(text, "\n")[1:] {
		switch {
		case strings.HasPrefix(line, "    \t"):
			if len(flags) == 0 {
				return nil, fmt.Errorf("sztp-agent %s -h: usage text before any flag: %q", name, line)
			}
			f := &flags[len(flags)-1]
			f.usage = append(f.usage, strings.TrimPrefix(line, "    \t"))
		case strings.HasPrefix(line, "  -"):
			fields := strings.SplitN(strings.TrimPrefix(line, "  -"), " ", 2)
			f := flagHelp{name: fields[0]}
			if len(fields) == 2 {
				// The flag package puts a short usage on the same line
				// after a tab; anything else is the argument name.
				arg, usage, hasUsage := strings.Cut(fields[1], "\t")
				f.arg = strings.TrimSpace(arg)
				if hasUsage {
					f.usage = append(f.usage, strings.TrimSpace(usage))
				}
			}
			flags = append(flags, f)
		case strings.TrimSpace(line) == "":
		default:
			return nil, fmt.Errorf("sztp-agent %s -h: unexpected line %q", name, line)
		}
	}
	return flags, nil
}

// esc makes text safe as troff input: backslashes, and a leading dot or
// quote that troff would take for a request.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	// "--flag" in running text is an option too: minus signs.
	return strings.ReplaceAll(s, "--", `\-\-`)
}

// opt renders an option or command name: hyphens there are minus signs, so
// that they can be copied and searched for.
func opt(s string) string { return strings.ReplaceAll(esc(s), "-", `\-`) }

func render(ver string, date time.Time, codes []exitCode) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p(`.\" Generated by tools/genman from the sztp-agent command definitions; do not edit.`)
	p(`.TH SZTP\-AGENT 8 "%s" "sztp-agent %s" "System Administration"`, date.Format("2006-01-02"), esc(ver))
	// No hyphenation and ragged right: the page is full of paths, flags and
	// URLs that must be read (and copied) exactly as written.
	p(`.nh`)
	p(`.ad l`)
	p(`.SH NAME`)
	p(`sztp\-agent \- Secure Zero Touch Provisioning (RFC 8572) device agent`)

	flagsOf := map[string][]flagHelp{}
	for _, c := range cli.Commands {
		flags, err := commandFlags(c.Name)
		if err != nil {
			return nil, err
		}
		flagsOf[c.Name] = flags
	}

	p(`.SH SYNOPSIS`)
	for _, c := range cli.Commands {
		if len(flagsOf[c.Name]) > 0 {
			p(`.B sztp\-agent %s`, opt(c.Name))
			p(`.RI [ options ]`)
		} else {
			p(`.B sztp\-agent %s`, opt(c.Name))
		}
		p(`.br`)
	}

	p(`.SH DESCRIPTION`)
	p(`.B sztp\-agent`)
	p(`is the device side of Secure Zero Touch Provisioning (RFC 8572).`)
	p(`It contacts its bootstrap servers, authenticates with the device's IDevID certificate,`)
	p(`decides whether each server is trusted the way RFC 8572 section 5 says,`)
	p(`follows redirects and carries out the onboarding information it receives:`)
	p(`boot image, pre-configuration script, configuration and post-configuration script,`)
	p(`reporting progress to trusted servers.`)
	p(`.PP`)
	p(`Without`)
	p(`.BR \-\-once ,`)
	p(`.B run`)
	p(`loops over its sources until one of them bootstraps the device, waiting between passes`)
	p(`(exponential backoff with full jitter from 5 seconds up to 5 minutes, longer when a server's`)
	p(`Retry\-After asks for it, up to 1 hour).`)
	p(`Installing an image, applying configuration and rebooting are done by commands the operator`)
	p(`configures, run through`)
	p(`.BR "/bin/sh \-c" ;`)
	p(`a step whose command is not configured is an error, checked before anything is downloaded.`)
	p(`.PP`)
	p(`Every flag of`)
	p(`.B run`)
	p(`can also be set by the key of the same name in the YAML configuration file`)
	p(`.RI ( %s`, esc(cli.DefaultConfigFile))
	p(`unless`)
	p(`.B \-\-config`)
	p(`names another); flags given on the command line win.`)
	p(`Flags take one or two leading hyphens.`)

	p(`.SH COMMANDS`)
	for _, c := range cli.Commands {
		flags := flagsOf[c.Name]
		p(`.SS %s`, opt(c.Name))
		p(`%s`, esc(c.Summary))
		if len(flags) == 0 {
			p(`.PP`)
			p(`No options.`)
			continue
		}
		for _, f := range flags {
			p(`.TP`)
			if f.arg != "" {
				p(`.BI \-\-%s " %s"`, opt(f.name), esc(f.arg))
			} else {
				p(`.B \-\-%s`, opt(f.name))
			}
			for i, u := range f.usage {
				if i > 0 {
					p(`.br`)
				}
				p(`%s`, esc(u))
			}
		}
	}

	p(`.SH EXIT STATUS`)
	for _, c := range codes {
		p(`.TP`)
		p(`.B %d`, c.value)
		p(`%s`, esc(strings.Join(strings.Fields(c.doc), " ")))
	}

	p(`.SH FILES`)
	files := []struct{ path, what string }{
		{cli.DefaultConfigFile, "configuration (YAML; keys mirror the flags of run)"},
		{"/etc/default/sztp-agent", "extra flags for the systemd unit (SZTP_AGENT_FLAGS)"},
		{filepath.Join(cli.DefaultStateDir, state.FileName), "bootstrap state: phase, progress of the onboarding steps, resumed after a reboot"},
		{filepath.Join(cli.DefaultStateDir, state.DisabledFile), "disabled marker written by disable (the unit does not start while it exists)"},
		{filepath.Join(cli.DefaultStateDir, state.LockFile), "lock held by the running agent"},
		{logging.RunLogPath(cli.DefaultStateDir), "log of the current or last run (the one before as .1)"},
		{filepath.Join(cli.DefaultStateDir, "images") + "/", "downloaded boot images, placed only after their hash matched"},
		{filepath.Join(cli.DefaultStateDir, "config", "configuration"), "configuration handed to the config apply command"},
		{filepath.Join(cli.DefaultRunDir, agent.RuntimeStatusFile), "what the running agent is doing now (read by status)"},
		{"/lib/systemd/system/sztp-agent.service", "the systemd unit"},
	}
	for _, f := range files {
		p(`.TP`)
		p(`.I %s`, esc(f.path))
		p(`%s`, esc(f.what))
	}

	p(`.SH SEE ALSO`)
	p(`.BR systemctl (1),`)
	p(`.BR journalctl (1),`)
	p(`.BR systemd.service (5),`)
	p(`/usr/share/doc/sztp\-agent/config.yaml.example,`)
	p(`RFC 8572 (Secure Zero Touch Provisioning).`)
	return b.Bytes(), nil
}
