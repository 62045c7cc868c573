package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/internal/logging"
	"github.com/sztp-agent/sztp-agent/internal/version"
	"github.com/sztp-agent/sztp-agent/tpm"
)

// Defaults of the file locations.
const (
	DefaultConfigFile = "/etc/sztp-agent/config.yaml" // read when it exists and --config is not given
	DefaultStateDir   = "/var/lib/sztp-agent"
	DefaultRunDir     = "/run/sztp-agent"
)

// runFlags holds the values of `sztp-agent run`. Every flag can also be set
// by the key of the same name in the config file; flags win.
type runFlags struct {
	config              string
	bootstrapURLs       listFlag
	trustAnchor         string
	voucherTrustAnchor  string
	idevidCert          string
	idevidKey           string
	serialNumber        string
	hwModel             string
	osName              string
	osVersion           string
	stateDir            string
	runDir              string
	imageInstallCommand string
	configApplyCommand  string
	rebootCommand       string
	httpHeaders         listFlag
	once                bool
	dryRun              bool
	logLevel            string
	logFormat           string
	requestTimeout      time.Duration
	scriptTimeout       time.Duration
	sshHostKeyDir       string
	osRelease           string
	clockUntrusted      bool
	acceptAssertions    listFlag
	sources             string
	removableRoot       string
	removableVendor     string
	interfaces          listFlag
	dhcpLeaseFiles      listFlag
	dnsDomains          listFlag
	dnsServers          listFlag
	dhcpCompat          bool
	mdns                bool
	tpm                 string
	tpmKeyHandle        hexFlag
	tpmCertIndex        hexFlag
	// learned carries DNS settings from the DHCP sources to the DNS source.
	learned *agent.LearnedDNS
	// urlsOnCommandLine: --bootstrap-url was given as a flag, which skips
	// discovery; from the config file they are the "url" source.
	urlsOnCommandLine bool
}

// DefaultSources is the discovery order (RFC 8572 §9.7: local before remote).
const DefaultSources = "removable,dhcp4,dhcp6,dns,url"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func newRunFlagSet(f *runFlags, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sztp-agent run", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.config, "config", "", "config file (YAML, keys mirror the flags; default "+DefaultConfigFile+" if it exists)")
	fs.Var(&f.bootstrapURLs, "bootstrap-url", "https://host[:port] of a well-known bootstrap server (repeatable); the agent appends /restconf")
	fs.StringVar(&f.trustAnchor, "trust-anchor", "", "PEM bundle: a bootstrap server whose TLS certificate validates to one is trusted")
	fs.StringVar(&f.voucherTrustAnchor, "voucher-trust-anchor", "", "PEM bundle: manufacturer trust anchors for ownership vouchers")
	fs.StringVar(&f.idevidCert, "idevid-cert", "", "PEM: IDevID certificate followed by its intermediates")
	fs.StringVar(&f.idevidKey, "idevid-key", "", "PEM private key of the IDevID certificate (not with --tpm)")
	fs.StringVar(&f.tpm, "tpm", "", "use the IDevID key in a TPM 2.0: auto (/dev/tpmrm0, then /dev/tpm0), a device path, swtpm:HOST:PORT or unix:PATH")
	f.tpmKeyHandle = tpm.DefaultKeyHandle
	f.tpmCertIndex = tpm.DefaultCertIndex
	fs.Var(&f.tpmKeyHandle, "tpm-key-handle", "persistent handle of the IDevID key")
	fs.Var(&f.tpmCertIndex, "tpm-cert-index", "NV index of the IDevID certificate (used when --idevid-cert is not given)")
	fs.StringVar(&f.serialNumber, "serial-number", "", "serial number (default: serialNumber attribute of the IDevID certificate's subject)")
	fs.StringVar(&f.hwModel, "hw-model", "", "hardware model sent to trusted bootstrap servers")
	fs.StringVar(&f.osName, "os-name", "", "name of the running OS (default: NAME in /etc/os-release)")
	fs.StringVar(&f.osVersion, "os-version", "", "version of the running OS (default: VERSION_ID in /etc/os-release)")
	fs.StringVar(&f.stateDir, "state-dir", DefaultStateDir, "directory for state, downloads and logs")
	fs.StringVar(&f.runDir, "run-dir", DefaultRunDir, "directory for the runtime status (status.json)")
	fs.StringVar(&f.imageInstallCommand, "image-install-command", "", "command run after a boot image is downloaded and verified (env SZTP_IMAGE_PATH, SZTP_OS_NAME, SZTP_OS_VERSION)")
	fs.StringVar(&f.configApplyCommand, "config-apply-command", "", "command that commits configuration (env SZTP_CONFIG_PATH, SZTP_CONFIG_HANDLING=merge|replace)")
	fs.StringVar(&f.rebootCommand, "reboot-command", "", "command run after boot-image-installed-rebooting has been reported")
	fs.Var(&f.httpHeaders, "http-header", "'Name: value' header added to every RESTCONF request (repeatable; never a secret)")
	fs.BoolVar(&f.once, "once", false, "one pass over the sources, no retry loop")
	fs.BoolVar(&f.dryRun, "dry-run", false, "check and download everything, change nothing, send no progress report; print the plan (implies --once)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 60*time.Second, "bound on one RESTCONF exchange")
	fs.DurationVar(&f.scriptTimeout, "script-timeout", 30*time.Minute, "bound on one script or hook command")
	fs.StringVar(&f.sshHostKeyDir, "ssh-host-key-dir", "/etc/ssh", "where ssh_host_*_key.pub are read for the bootstrap-complete report")
	fs.StringVar(&f.osRelease, "os-release", "/etc/os-release", "os-release file for the --os-name/--os-version defaults")
	fs.BoolVar(&f.clockUntrusted, "clock-untrusted", false, "do not judge validity periods by the clock; accept only vouchers carrying the nonce the agent sent")
	fs.Var(&f.acceptAssertions, "accept-assertion", "voucher assertion local policy accepts (repeatable; default: verified)")
	fs.StringVar(&f.sources, "sources", DefaultSources, "discovery sources in order, used when no --bootstrap-url is given (url = the config file's well-known servers)")
	fs.StringVar(&f.removableRoot, "removable-root", "", "where removable media are mounted; artifacts under <vendor>/<serial>/bootstrapping-data/")
	fs.StringVar(&f.removableVendor, "removable-vendor", "", "vendor directory on removable media (default: any)")
	fs.Var(&f.interfaces, "interface", "interface for DHCPv4/DHCPv6 discovery (repeatable)")
	fs.Var(&f.dhcpLeaseFiles, "dhcp-lease-file", "read options 143/136 from this DHCP client lease file (repeatable)")
	fs.BoolVar(&f.dhcpCompat, "dhcp-compat", false, "also accept a plain-text URL in options 143/136 (non-RFC servers)")
	fs.Var(&f.dnsDomains, "dns-domain", "domain for DNS discovery (repeatable; default: from DHCP or resolv.conf)")
	fs.Var(&f.dnsServers, "dns-server", "unicast DNS server host[:port] (repeatable; default: resolv.conf)")
	fs.BoolVar(&f.mdns, "mdns", true, "ask multicast DNS (.local) before unicast DNS")
	return fs
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := newRunFlagSet(&f, stderr)
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
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "bootstrap-url" {
			f.urlsOnCommandLine = true
		}
	})
	if err := applyConfigFile(fs, f.config); err != nil {
		errorLine(stderr, err)
		return ExitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		errorLine(stderr, usagef("--log-level %q: want debug, info, warn or error", f.logLevel))
		return ExitUsage
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		errorLine(stderr, usagef("--log-format %q: want text or json", f.logFormat))
		return ExitUsage
	}
	cfg, err := f.agentConfig()
	if err != nil {
		errorLine(stderr, err)
		return exitCode(ctx, err, agent.ErrEnvironment)
	}
	logOpts := logging.Options{Level: level, Format: f.logFormat, Stderr: stderr,
		Journal: os.Getenv("JOURNAL_STREAM") != "" && f.logFormat == "text"}
	if !f.dryRun {
		logOpts.StateDir = f.stateDir // a dry run keeps nothing but its downloads
		cfg.RunDir = f.runDir
	}
	logger, closeLog, err := logging.New(logOpts)
	if err != nil {
		errorLine(stderr, fmt.Errorf("%w: %w", agent.ErrEnvironment, err))
		return ExitEnvironment
	}
	defer closeLog()
	cfg.Logger = logger
	attachLogger(cfg.Sources, logger)
	cfg.Plan = stdout
	if isTerminal(stderr) {
		cfg.ImageProgress = progressBar(stderr)
	}
	a, err := agent.New(cfg)
	if err != nil {
		errorLine(stderr, usageError{err})
		return ExitUsage
	}
	logger.Info("sztp-agent starting", logging.MessageIDAttribute, logging.MsgStarted, "version", version.Version, "serial_number", cfg.SerialNumber, "dry_run", cfg.DryRun)
	outcome, err := a.Run(ctx)
	if err != nil {
		code := exitCode(ctx, err, agent.ErrEnvironment)
		// Debug: the error line below already says it on the console and
		// in the journal; the run log keeps it with the exit code.
		logger.Debug("sztp-agent stopped", logging.MessageIDAttribute, logging.MsgBootstrapFailed, "error", err, "exit_code", code)
		errorLine(stderr, err)
		if code == ExitFailed && !f.dryRun {
			failureSummary(err, f.stateDir)
		}
		return code
	}
	logger.Info("sztp-agent finished", "outcome", outcome.String())
	return ExitOK
}

// applyConfigFile sets every flag that the command line left unset from the
// config file's key of the same name.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	explicit := path != ""
	if !explicit {
		path = DefaultConfigFile
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return usagef("reading config file: %w", err)
	}
	doc, err := parseConfigFile(string(data))
	if err != nil {
		return usagef("parsing config file %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for key, values := range doc {
		fl := fs.Lookup(key)
		if fl == nil || key == "config" {
			return usagef("config file %s: unknown key %q", path, key)
		}
		if set[key] {
			continue
		}
		for _, v := range values {
			if err := fs.Set(key, v); err != nil {
				return usagef("config file %s: key %q: %w", path, key, err)
			}
		}
	}
	return nil
}

// agentConfig reads the files the flags name and builds the agent's config.
func (f *runFlags) agentConfig() (agent.Config, error) {
	cfg := agent.Config{
		BootstrapURLs:       f.bootstrapURLs,
		SerialNumber:        f.serialNumber,
		HWModel:             f.hwModel,
		OSName:              f.osName,
		OSVersion:           f.osVersion,
		StateDir:            f.stateDir,
		ImageInstallCommand: f.imageInstallCommand,
		ConfigApplyCommand:  f.configApplyCommand,
		RebootCommand:       f.rebootCommand,
		Once:                f.once,
		DryRun:              f.dryRun,
		RequestTimeout:      f.requestTimeout,
		ScriptTimeout:       f.scriptTimeout,
		SSHHostKeyDir:       f.sshHostKeyDir,
		Header:              http.Header{},
		ClockUntrusted:      f.clockUntrusted,
		AcceptedAssertions:  f.acceptAssertions,
		BuildTime:           version.Built(),
	}
	for _, h := range f.httpHeaders {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return cfg, usagef("--http-header %q: want 'Name: value'", h)
		}
		cfg.Header.Add(name, strings.TrimSpace(value))
	}
	var err error
	if f.tpm != "" {
		if f.idevidKey != "" {
			return cfg, usagef("--idevid-key and --tpm exclude each other: the key is in the TPM")
		}
		if err := f.loadTPMIdentity(&cfg); err != nil {
			return cfg, err
		}
	} else {
		if f.idevidCert == "" || f.idevidKey == "" {
			return cfg, usagef("--idevid-cert and --idevid-key are required (or --tpm)")
		}
		if cfg.Identity, err = loadIdentity(f.idevidCert, f.idevidKey); err != nil {
			return cfg, err
		}
	}
	identity := cfg.Identity
	if cfg.SerialNumber == "" {
		cfg.SerialNumber = identity.Leaf.Subject.SerialNumber
	}
	if cfg.SerialNumber == "" {
		return cfg, usagef("the IDevID certificate has no serialNumber attribute: give --serial-number")
	}
	if f.trustAnchor != "" {
		if cfg.TrustAnchors, err = loadCertificates(f.trustAnchor); err != nil {
			return cfg, err
		}
	}
	if f.voucherTrustAnchor != "" {
		if cfg.VoucherTrustAnchors, err = loadCertificates(f.voucherTrustAnchor); err != nil {
			return cfg, err
		}
	}
	if err := f.buildSources(&cfg); err != nil {
		return cfg, err
	}
	if cfg.OSName == "" || cfg.OSVersion == "" {
		name, ver := readOSRelease(f.osRelease)
		if cfg.OSName == "" {
			cfg.OSName = name
		}
		if cfg.OSVersion == "" {
			cfg.OSVersion = ver
		}
	}
	return cfg, nil
}

func loadIdentity(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: reading IDevID certificate: %w", agent.ErrEnvironment, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: reading IDevID key: %w", agent.ErrEnvironment, err)
	}
	identity, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: loading IDevID %s with key %s: %w", agent.ErrEnvironment, certFile, keyFile, err)
	}
	return identity, nil
}

// loadCertificates reads a PEM bundle; every block must be a certificate.
func loadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading trust anchors: %w", agent.ErrEnvironment, err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: trust anchor file %s: unexpected PEM block %q", agent.ErrEnvironment, path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: trust anchor file %s: %w", agent.ErrEnvironment, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: trust anchor file %s holds no PEM certificate", agent.ErrEnvironment, path)
	}
	return certs, nil
}

// readOSRelease returns NAME and VERSION_ID of an os-release file.
func readOSRelease(path string) (name, ver string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch strings.TrimSpace(k) {
		case "NAME":
			name = v
		case "VERSION_ID":
			ver = v
		}
	}
	return name, ver
}
