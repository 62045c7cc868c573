package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// DefaultSerialNumber is the device serial number of a new lab PKI when
// none is asked for.
const DefaultSerialNumber = "SZTP-LAB-0001"

// shutdownGrace bounds how long a stopping server waits for image downloads
// in progress.
const shutdownGrace = 5 * time.Second

// ReadyFacts are what an agent needs to talk to a running lab server; they
// are printed and written to the ready file as KEY=value lines.
type ReadyFacts struct {
	URL                string
	TrustAnchor        string
	VoucherTrustAnchor string // the MASA CA bundle, for the agent's --voucher-trust-anchor
	IDevIDCert         string
	IDevIDKey          string
	SerialNumber       string
}

// String renders the facts as KEY=value lines, in a fixed order.
func (f ReadyFacts) String() string {
	return fmt.Sprintf("URL=%s\nTRUST_ANCHOR=%s\nVOUCHER_TRUST_ANCHOR=%s\nIDEVID_CERT=%s\nIDEVID_KEY=%s\nSERIAL_NUMBER=%s\n",
		f.URL, f.TrustAnchor, f.VoucherTrustAnchor, f.IDevIDCert, f.IDevIDKey, f.SerialNumber)
}

// RunCLI is the sztp-lab command: it serves until ctx is done (the caller
// cancels it on SIGINT/SIGTERM), then prints a summary of the reports. It
// returns flag.ErrHelp when help was asked for.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sztp-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "lab-run", "directory of the lab PKI (reused when it already holds one)")
	addr := fs.String("addr", "127.0.0.1:8443", "listen address of the bootstrap server")
	serial := fs.String("serial-number", "", "device serial number of a new PKI (default "+DefaultSerialNumber+"; must match a reused PKI's)")
	definitionFile := fs.String("definition", "", "YAML or JSON file of what to answer (default: empty onboarding-information)")
	readyFile := fs.String("ready-file", "", "file to write the KEY=value facts to once listening (removed on exit)")
	name := fs.String("name", "sztp-lab", "server name shown in logs and report lines")
	verbose := fs.Bool("verbose", false, "log at debug level, including the conveyed information and vouchers sent")
	untrustedTLS := fs.Bool("untrusted-tls", false, "serve with a TLS certificate from a fresh CA that is not in TRUST_ANCHOR (the agent connects provisionally)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sztp-lab [--dir DIR] [--addr HOST:PORT] [--serial-number SN] [--definition FILE] [--ready-file FILE] [--untrusted-tls]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	def := &Definition{ReportingLevel: ReportingVerbose, Onboarding: &Onboarding{}}
	if *definitionFile != "" {
		var err error
		if def, err = LoadDefinition(*definitionFile); err != nil {
			return err
		}
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("resolving --dir: %w", err)
	}
	pki, created, err := LoadOrCreatePKI(absDir, *serial)
	if err != nil {
		return err
	}
	if created {
		logger.Info("created lab PKI", "dir", absDir, "serial-number", pki.SerialNumber)
	} else {
		logger.Info("reusing lab PKI", "dir", absDir, "serial-number", pki.SerialNumber)
	}

	srv, err := Start(Options{PKI: pki, Name: *name, Addr: *addr, Definition: def, Logger: logger, ReportLog: stdout, UntrustedTLS: *untrustedTLS})
	if err != nil {
		return err
	}
	if *untrustedTLS {
		logger.Info("serving with a TLS certificate the trust anchor does not validate", "trust-anchor", pki.TrustAnchorFile)
	}
	facts := ReadyFacts{
		URL:                srv.URL(),
		TrustAnchor:        pki.TrustAnchorFile,
		VoucherTrustAnchor: pki.VoucherTrustAnchorFile,
		IDevIDCert:         pki.IDevIDCertFile,
		IDevIDKey:          pki.IDevIDKeyFile,
		SerialNumber:       pki.SerialNumber,
	}
	fmt.Fprint(stdout, facts.String())
	if *readyFile != "" {
		if err := atomicfile.WriteFile(*readyFile, []byte(facts.String()), 0o644); err != nil {
			srv.Close()
			return fmt.Errorf("writing the ready file: %w", err)
		}
	}

	<-ctx.Done()
	logger.Info("stopping", "cause", context.Cause(ctx))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if *readyFile != "" {
		// A stale ready file would send the next agent to a dead server.
		if err := removeIfExists(*readyFile); err != nil {
			logger.Warn("removing the ready file failed", "err", err)
		}
	}
	fmt.Fprint(stdout, Summary(srv.Reports()))
	return shutdownErr
}

// Summary renders the reports received, one line per device serial number
// with its progress types in order, under a count line.
func Summary(reports []Report) string {
	var b strings.Builder
	serials := []string{}
	bySerial := map[string][]string{}
	for _, r := range reports {
		if _, seen := bySerial[r.Serial]; !seen {
			serials = append(serials, r.Serial)
		}
		bySerial[r.Serial] = append(bySerial[r.Serial], r.ProgressType)
	}
	fmt.Fprintf(&b, "summary: %d progress report(s) from %d device(s)\n", len(reports), len(serials))
	for _, s := range serials {
		fmt.Fprintf(&b, "  %s: %s\n", s, strings.Join(bySerial[s], " "))
	}
	return b.String()
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
