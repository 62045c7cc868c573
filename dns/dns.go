// Package dns discovers SZTP bootstrapping data in DNS (RFC 8572 §4.2).
//
// Two lookups exist, and the agent runs them in this order (checklist
// DNS-02): device-specific TXT records at <serial>._sztp.<domain>, which may
// carry all three artifacts, and, only if those do not lead to a bootstrap,
// device-independent SRV records at _sztp._tcp.<domain>, which are the
// equivalent of unsigned redirect information. For each, multicast DNS in
// .local is asked first and unicast DNS second (DNS-03).
//
// Everything found here is from an untrusted source (DNS-01): the caller
// must treat the artifacts exactly like those from removable storage or
// DHCP. This package only fetches and decodes.
package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// ErrNotFound means every place that was asked answered, and none had
// usable records.
var ErrNotFound = errors.New("dns: no SZTP records found")

// ErrLookupFailed means nothing usable was found and at least one query got
// no usable answer (timeout, refused, SERVFAIL, socket error, ambiguous
// data), so "not found" cannot be claimed. It wraps the individual errors.
// Both outcomes mean "this source yields nothing now"; the difference
// matters for logs and for retry pacing.
var ErrLookupFailed = errors.New("dns: SZTP lookup failed")

// Config says where to look.
type Config struct {
	// Servers are unicast resolvers as "host:port" (port defaults to 53).
	// Empty means the nameservers of ResolvConf.
	Servers []string
	// Domains are the domains to search. Empty means the search/domain
	// line of ResolvConf.
	Domains []string
	// ResolvConf is read only when Servers or Domains is empty; "" means
	// /etc/resolv.conf. A missing file means "no unicast DNS known".
	ResolvConf string
	// MDNS enables the multicast DNS attempt that precedes unicast DNS.
	MDNS bool
	// Interface is the interface mDNS queries leave by; "" lets the
	// routing table pick for IPv4 and skips IPv6 (ff02::fb needs a zone).
	Interface string
	// Timeout bounds each exchange (one UDP query, its TCP retry, or one
	// mDNS wait); 0 means 3 s.
	Timeout time.Duration
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	// observe, when set, is told of every query before it is sent. Tests
	// use it to prove the mDNS-then-unicast order.
	observe func(transport, name string, qtype uint16)
}

// Artifacts are the bootstrapping artifacts from a device-specific TXT
// record. Values are raw (binary CMS), not validated in any way.
type Artifacts struct {
	Name                string // the owner name queried, e.g. "SN-1._sztp.example.net."
	Via                 string // "mdns" or "unicast"
	ConveyedInformation []byte
	OwnerCertificate    []byte
	OwnershipVoucher    []byte
}

// Target is one bootstrap server from a device-independent SRV record.
type Target struct {
	Host     string
	Port     uint16
	Priority uint16
	Weight   uint16
}

const (
	viaMDNS    = "mdns"
	viaUnicast = "unicast"

	defaultTimeout = 3 * time.Second
	defaultResolv  = "/etc/resolv.conf"
)

// DeviceSpecific looks up the TXT records of <serial>._sztp.local (mDNS,
// when enabled) and then <serial>._sztp.<domain> for each domain in order.
// The first name with a usable record wins. serial must be usable as one
// DNS label as is; nothing is escaped.
func DeviceSpecific(ctx context.Context, c Config, serial string) (*Artifacts, error) {
	if err := validateSerial(serial); err != nil {
		return nil, err
	}
	var a *Artifacts
	err := lookup(ctx, c, "device-specific", serial+"._sztp.", mdns.TypeTXT, func(m *mdns.Msg, name, via string) error {
		got, err := ArtifactsFromMsg(m, name)
		if err != nil {
			return err
		}
		got.Via = via
		a = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DeviceIndependent looks up the SRV records of _sztp._tcp.local (mDNS,
// when enabled) and then _sztp._tcp.<domain> for each domain in order, and
// returns the first usable set ordered per RFC 2782.
func DeviceIndependent(ctx context.Context, c Config) ([]Target, error) {
	var t []Target
	err := lookup(ctx, c, "device-independent", "_sztp._tcp.", mdns.TypeSRV, func(m *mdns.Msg, name, _ string) error {
		got, err := TargetsFromMsg(m, name, nil)
		if err != nil {
			return err
		}
		t = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// decodeFunc stores the result and returns nil when m holds usable data for
// name, or an error (wrapping ErrNotFound when there simply is none).
type decodeFunc func(m *mdns.Msg, name, via string) error

// lookup runs the mDNS-then-unicast sequence shared by both record kinds.
// prefix is the part of the owner name before the domain, with a trailing
// dot.
func lookup(ctx context.Context, c Config, what, prefix string, qtype uint16, decode decodeFunc) error {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("lookup", what, "type", mdns.TypeToString[qtype])
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	var failures []error

	if c.MDNS {
		name := prefix + "local."
		err := mdnsQuery(ctx, c, log, name, qtype, func(m *mdns.Msg) error { return decode(m, name, viaMDNS) })
		switch {
		case err == nil:
			log.Info("SZTP records found", "via", viaMDNS, "name", name)
			return nil
		case ctxErr(ctx) != nil:
			return fmt.Errorf("dns: %s lookup: %w", what, ctxErr(ctx))
		case errors.Is(err, ErrNotFound):
			log.Debug("no mDNS answer", "name", name, "reason", err)
		default:
			log.Warn("mDNS lookup failed", "name", name, "err", err)
			failures = append(failures, err)
		}
	}

	servers, domains, err := unicastSetup(c, log)
	if err != nil {
		failures = append(failures, err)
	}
	for _, d := range domains {
		name := prefix + d
		err := unicastQuery(ctx, c, log, servers, name, qtype, func(m *mdns.Msg) error { return decode(m, name, viaUnicast) })
		switch {
		case err == nil:
			log.Info("SZTP records found", "via", viaUnicast, "name", name)
			return nil
		case ctxErr(ctx) != nil:
			return fmt.Errorf("dns: %s lookup: %w", what, ctxErr(ctx))
		case errors.Is(err, ErrNotFound):
			log.Debug("no unicast answer", "name", name, "reason", err)
		default:
			log.Warn("unicast lookup failed", "name", name, "err", err)
			failures = append(failures, err)
		}
	}

	if len(failures) > 0 {
		return fmt.Errorf("dns: %s lookup: %w: %w", what, ErrLookupFailed, errors.Join(failures...))
	}
	return fmt.Errorf("dns: %s lookup: %w", what, ErrNotFound)
}

// ctxErr is ctx.Err(), but also reports DeadlineExceeded once the deadline
// has passed: a socket deadline derived from ctx can fire a moment before
// the context's own timer, and the caller must then see the context's
// error, not a plain i/o timeout that looks like a dead server.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// validateSerial accepts serial only if it is one DNS label that needs no
// escaping: 1–63 printable ASCII octets other than space, '.' and '\'. A
// dot would add labels and a backslash would start an escape in the
// presentation-format names miekg/dns takes, so either would change which
// name is asked; non-ASCII would need IDNA or raw UTF-8 rules that differ
// between unicast DNS and mDNS. Rejecting is safer than guessing.
func validateSerial(serial string) error {
	if serial == "" {
		return errors.New("dns: empty serial number")
	}
	if len(serial) > 63 {
		return fmt.Errorf("dns: serial number %q is %d octets, longer than a DNS label (63)", serial, len(serial))
	}
	for i := 0; i < len(serial); i++ {
		b := serial[i]
		if b <= ' ' || b >= 0x7f || b == '.' || b == '\\' {
			return fmt.Errorf("dns: serial number %q has character %q at offset %d that cannot appear unescaped in a DNS label", serial, b, i)
		}
	}
	// Belt and braces: the label miekg/dns will pack must be the serial.
	labels := mdns.SplitDomainName(serial + "._sztp.local.")
	if len(labels) != 3 || labels[0] != serial {
		return fmt.Errorf("dns: serial number %q does not form a single DNS label", serial)
	}
	return nil
}

// normalizeDomain turns a configured domain into an absolute name.
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSpace(d)
	if d == "" || d == "." {
		return "", fmt.Errorf("dns: empty search domain %q", d)
	}
	d = mdns.Fqdn(d)
	if _, ok := mdns.IsDomainName(d); !ok {
		return "", fmt.Errorf("dns: invalid search domain %q", d)
	}
	return d, nil
}
