package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sztp-agent/sztp-agent/agent/cms"
	"github.com/sztp-agent/sztp-agent/agent/conveyed"
	"github.com/sztp-agent/sztp-agent/agent/ownership"
	"github.com/sztp-agent/sztp-agent/internal/version"
)

// validateCommand checks a set of artifact files the way the agent would
// before acting on them: owners run it before they load a bootstrap server
// or ship a USB stick.
func validateCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sztp-agent validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ciFile := fs.String("conveyed-information", "", "conveyed-information artifact (DER CMS)")
	ocFile := fs.String("owner-certificate", "", "owner-certificate artifact (DER CMS)")
	ovFile := fs.String("ownership-voucher", "", "ownership-voucher artifact (DER CMS)")
	serial := fs.String("serial-number", "", "the device's serial number (default: from --idevid-cert)")
	vta := fs.String("voucher-trust-anchor", "", "PEM bundle: manufacturer trust anchors for ownership vouchers")
	idevidCert := fs.String("idevid-cert", "", "PEM: the device's IDevID certificate (idevid-issuer check, encrypted artifacts)")
	idevidKey := fs.String("idevid-key", "", "PEM: its private key, to open encrypted artifacts")
	nonce := fs.String("nonce", "", "base64 nonce the device sent (for nonce vouchers)")
	clockUntrusted := fs.Bool("clock-untrusted", false, "check as a device without a trusted clock would")
	showContent := fs.Bool("show-content", false, "print configuration and script bodies too")
	var assertions listFlag
	fs.Var(&assertions, "accept-assertion", "accepted voucher assertion (repeatable; default: verified)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if *ciFile == "" {
		errorLine(stderr, usagef("--conveyed-information is required"))
		return ExitUsage
	}
	read := func(path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errEnv, err)
		}
		return b, nil
	}
	fail := func(err error) int {
		errorLine(stderr, err)
		if errors.Is(err, errEnv) {
			return ExitEnvironment
		}
		if errors.Is(err, errUsage) {
			return ExitUsage
		}
		fmt.Fprintln(stdout, "INVALID")
		return ExitFailed
	}
	var a ownership.Artifacts
	var err error
	if a.ConveyedInformation, err = read(*ciFile); err != nil {
		return fail(err)
	}
	if a.OwnerCertificate, err = read(*ocFile); err != nil {
		return fail(err)
	}
	if a.OwnershipVoucher, err = read(*ovFile); err != nil {
		return fail(err)
	}
	if *nonce != "" {
		if a.Nonce, err = base64.StdEncoding.DecodeString(*nonce); err != nil {
			return fail(usagef("--nonce: %w", err))
		}
	}
	p := ownership.Policy{SerialNumber: *serial, Assertions: assertions, ClockTrusted: !*clockUntrusted}
	if *idevidCert != "" {
		certs, err := loadCertificates(*idevidCert)
		if err != nil {
			return fail(fmt.Errorf("%w: %w", errEnv, err))
		}
		p.IDevID = certs[0]
		if p.SerialNumber == "" {
			p.SerialNumber = p.IDevID.Subject.SerialNumber
		}
		if *idevidKey != "" {
			pair, err := loadIdentity(*idevidCert, *idevidKey)
			if err != nil {
				return fail(fmt.Errorf("%w: %w", errEnv, err))
			}
			p.DecryptionKey = pair.PrivateKey
		}
	}
	if *vta != "" {
		if p.VoucherTrustAnchors, err = loadCertificates(*vta); err != nil {
			return fail(fmt.Errorf("%w: %w", errEnv, err))
		}
	}
	if !*clockUntrusted && version.Built().After(timeNow()) {
		fmt.Fprintln(stdout, "note: the clock reads earlier than this build; checking as a device without a trusted clock")
		p.ClockTrusted = false
	}

	if a.OwnerCertificate != nil || a.OwnershipVoucher != nil {
		if p.SerialNumber == "" {
			return fail(usagef("signed artifacts: give --serial-number or --idevid-cert"))
		}
		if len(p.VoucherTrustAnchors) == 0 {
			return fail(usagef("signed artifacts: give --voucher-trust-anchor"))
		}
	} else {
		fmt.Fprintln(stdout, "note: unsigned conveyed information: a device acts on it only from a trusted bootstrap server (onboarding) or follows it as provisional redirect information")
	}
	d, err := ownership.Decode(p, a)
	for _, s := range d.Steps {
		fmt.Fprintf(stdout, "ok   %s\n", s)
	}
	if err != nil {
		return fail(err)
	}
	info := d.Info
	fmt.Fprintf(stdout, "ok   conveyed information parsed (%s, %s)\n", cms.Name(d.ContentType), map[bool]string{true: "XML", false: "JSON"}[d.XML])
	describe(stdout, info, *showContent)
	fmt.Fprintln(stdout, "VALID")
	return ExitOK
}

var errEnv = errors.New("environment")

// describe prints decoded conveyed information for an operator.
func describe(w io.Writer, info *conveyed.Information, bodies bool) {
	if r := info.Redirect; r != nil {
		fmt.Fprintf(w, "redirect-information: %d bootstrap server(s)\n", len(r.BootstrapServers))
		for i, s := range r.BootstrapServers {
			ta := "no trust anchor (provisional connection)"
			if s.TrustAnchor != nil {
				if certs, err := cms.ParseCertificateBag(s.TrustAnchor); err != nil {
					ta = "trust anchor UNREADABLE: " + err.Error()
				} else {
					ta = "trust anchor " + subjects(certs)
				}
			}
			fmt.Fprintf(w, "  %d. %s — %s\n", i+1, s.URL(), ta)
		}
		return
	}
	o := info.Onboarding
	fmt.Fprintln(w, "onboarding-information:")
	if bi := o.BootImage; bi != nil {
		fmt.Fprintf(w, "  boot-image: %s %s\n", bi.OSName, bi.OSVersion)
		for _, u := range bi.DownloadURIs {
			fmt.Fprintf(w, "    download-uri %s\n", u)
		}
		for _, iv := range bi.ImageVerification {
			fmt.Fprintf(w, "    %s %s\n", iv.HashAlgorithm, conveyed.FormatHexString(iv.HashValue))
		}
	}
	body := func(name string, b []byte) {
		if b == nil {
			return
		}
		fmt.Fprintf(w, "  %s: %d bytes, sha-256 %x\n", name, len(b), sha256.Sum256(b))
		if bodies {
			fmt.Fprintf(w, "%s\n", b)
		}
	}
	body("pre-configuration-script", o.PreConfigurationScript)
	if o.Configuration != nil {
		fmt.Fprintf(w, "  configuration-handling: %s\n", o.ConfigurationHandling)
	}
	body("configuration", o.Configuration)
	body("post-configuration-script", o.PostConfigurationScript)
}

func subjects(certs []*x509.Certificate) string {
	var names []string
	for _, c := range certs {
		names = append(names, fmt.Sprintf("%q", c.Subject.String()))
	}
	return strings.Join(names, ", ")
}
