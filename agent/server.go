package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/cms"
	"github.com/sztp-agent/sztp-agent/agent/conveyed"
	"github.com/sztp-agent/sztp-agent/agent/ownership"
	"github.com/sztp-agent/sztp-agent/agent/restconf"
	"github.com/sztp-agent/sztp-agent/internal/logging"
	"github.com/sztp-agent/sztp-agent/internal/version"
)

// maxRedirectDepth caps the redirect recursion (RFC 8572 §5.3: SHOULD be ≤ 10).
const maxRedirectDepth = 10

// Errors a caller (and a test) can branch on.
var (
	// ErrUntrustedOnboarding: unsigned onboarding information from a server
	// that is not trusted (RFC 8572 §5.3) — never acted upon.
	ErrUntrustedOnboarding = errors.New("unsigned onboarding information from an untrusted bootstrap server refused")
	// ErrRedirectDepth: too many redirects in a row.
	ErrRedirectDepth = fmt.Errorf("more than %d redirects in a row", maxRedirectDepth)
	// ErrServerNotAuthenticated: a server named with a trust anchor by
	// trusted redirect information failed authentication.
	ErrServerNotAuthenticated = errors.New("bootstrap server not authenticated by the trust anchor its redirect gave")
)

// target is one bootstrap server to contact, with the trust material that
// decides how.
type target struct {
	base    string // https://host:port
	host    string // host name or IP address, for TLS verification
	anchors []*x509.Certificate
	// strict: anchors came from trusted redirect information, so failing to
	// validate against them fails the server (RFC 8572 §5.5) instead of
	// falling back to a provisional connection.
	strict bool
	// imageBase resolves relative download-uri values (local data only),
	// which must stay under localRoot.
	imageBase, localRoot string
	// resolver, if set, resolves the host (servers found by DNS).
	resolver *net.Resolver
}

// ParseBootstrapURL checks a --bootstrap-url value: https://host[:port], no
// path (the agent appends the RESTCONF root), default port 443.
func ParseBootstrapURL(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("bootstrap URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https":
		return target{}, fmt.Errorf("bootstrap URL %q: scheme must be https", s)
	case u.Host == "" || u.Hostname() == "":
		return target{}, fmt.Errorf("bootstrap URL %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return target{}, fmt.Errorf("bootstrap URL %q: must be https://host[:port] only", s)
	case u.Path != "" && u.Path != "/":
		return target{}, fmt.Errorf("bootstrap URL %q: must not have a path (the agent appends /restconf)", s)
	}
	port := 443
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return target{}, fmt.Errorf("bootstrap URL %q: bad port %q", s, p)
		}
		port = n
	}
	host := u.Hostname()
	return target{base: "https://" + net.JoinHostPort(host, strconv.Itoa(port)), host: host}, nil
}

// connection is what a get-bootstrapping-data exchange established.
type connection struct {
	client  *restconf.Client
	trusted bool // TLS server certificate validated to a trust anchor
	anchors []*x509.Certificate
}

// transport is the one HTTP transport shape the agent uses, for RESTCONF
// and images alike: the configured base (or net/http's default without a
// proxy: a first-boot device has no proxy settings to honour), the given
// TLS settings, and HTTP/1.1 only — RESTCONF servers in the field speak it,
// and HTTP/2's flow-control buffers cost 1.5 MB per image download
// (measured). A non-nil empty TLSNextProto is how net/http is told not to
// negotiate h2.
func (a *Agent) transport(tlsConfig *tls.Config) *http.Transport {
	var tr *http.Transport
	if a.cfg.Transport != nil {
		tr = a.cfg.Transport.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
	}
	tr.TLSClientConfig = tlsConfig
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return tr
}

func (a *Agent) restconfClient(t target, tlsConfig *tls.Config) *restconf.Client {
	tr := a.transport(tlsConfig)
	if t.resolver != nil {
		// Names learned from DNS discovery resolve through the same DNS
		// servers that named them, not the system's.
		d := &net.Dialer{Timeout: 30 * time.Second, Resolver: t.resolver}
		tr.DialContext = d.DialContext
	}
	return &restconf.Client{
		HTTP: &http.Client{
			Transport: tr,
			Timeout:   a.cfg.RequestTimeout,
			// RESTCONF does not redirect; following one to another host would
			// bypass the trust decision made for this server.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Root:      t.base + "/restconf",
		Header:    a.cfg.Header,
		UserAgent: version.UserAgent(),
	}
}

func (a *Agent) tlsConfig(t target, verify bool) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   t.host,
		Certificates: []tls.Certificate{a.cfg.Identity},
	}
	if verify {
		pool := x509.NewCertPool()
		for _, ta := range t.anchors {
			pool.AddCert(ta)
		}
		c.RootCAs = pool
	} else {
		// A provisional connection (RFC 8572 §5.3): the server certificate is
		// accepted blindly, and nothing obtained from it is used unless it is
		// signed data or redirect information.
		c.InsecureSkipVerify = true
	}
	return c
}

// getBootstrappingData contacts t, authenticated when its anchors allow and
// provisionally otherwise, and asks for bootstrapping data with the input
// that the trust state allows (RFC 8572 §9.6: an untrusted server only learns
// that signed data is preferred, and a nonce).
func (a *Agent) getBootstrappingData(ctx context.Context, t target) (*connection, *restconf.GetOutput, []byte, error) {
	// A fresh nonce per request (RFC 8572 §7.3): it lets any server, trusted
	// or not, return a nonce voucher, the only kind a device without a
	// trusted clock can accept.
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: generating nonce: %w", ErrEnvironment, err)
	}
	if len(t.anchors) > 0 {
		conn := &connection{client: a.restconfClient(t, a.tlsConfig(t, true)), trusted: true, anchors: t.anchors}
		in := restconf.GetInput{HWModel: a.cfg.HWModel, OSName: a.cfg.OSName, OSVersion: a.cfg.OSVersion, Nonce: nonce}
		out, err := a.timedGet(ctx, conn.client, in)
		if err == nil {
			a.log.Info("bootstrap server authenticated: trusted", "server", t.base)
			return conn, out, nonce, nil
		}
		if !isCertificateError(err) {
			return nil, nil, nil, err
		}
		if t.strict {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrServerNotAuthenticated, err)
		}
		a.log.Warn("bootstrap server certificate does not validate to a trust anchor; connecting provisionally", "server", t.base, "error", err)
	}
	conn := &connection{client: a.restconfClient(t, a.tlsConfig(t, false))}
	out, err := a.timedGet(ctx, conn.client, restconf.GetInput{SignedDataPreferred: true, Nonce: nonce})
	if err != nil {
		return nil, nil, nil, err
	}
	a.log.Info("bootstrap server not authenticated: untrusted (provisional connection)", "server", t.base)
	return conn, out, nonce, nil
}

func (a *Agent) timedGet(ctx context.Context, c *restconf.Client, in restconf.GetInput) (*restconf.GetOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	return c.GetBootstrappingData(ctx, in)
}

func isCertificateError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		ierr x509.CertificateInvalidError
		herr x509.HostnameError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &ierr) || errors.As(err, &herr)
}

// processServer is RFC 8572 §5.3 for one bootstrap server.
func (a *Agent) processServer(ctx context.Context, t target, depth int) (Outcome, error) {
	if depth > maxRedirectDepth {
		return 0, ErrRedirectDepth
	}
	a.log.Info("contacting bootstrap server", "server", t.base, "redirect_depth", depth)
	conn, out, nonce, err := a.getBootstrappingData(ctx, t)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(a.out, "server %s: %s\n", t.base, trustWords(conn.trusted))
	a.log.Info("bootstrap server answered", logging.MessageIDAttribute, logging.MsgServerContacted, "server", t.base, "trusted", conn.trusted)
	return a.processOutput(ctx, t, conn, out, nonce, depth)
}

// processOutput is the rest of RFC 8572 §5.3 for bootstrapping data from a
// server (conn.client set) or found locally (conn without a client: no
// progress report can be sent).
func (a *Agent) processOutput(ctx context.Context, t target, conn *connection, out *restconf.GetOutput, nonce []byte, depth int) (Outcome, error) {
	rep := a.newReporter(conn, out.Verbose())

	info, digest, signedOK, err := a.decodeConveyed(out, nonce)
	if err != nil {
		// RFC 8572 §5.6 step 1: a trusted server hears about data it sent
		// that could not be parsed or verified. Trust is not kept.
		rep.terminal(ctx, "parsing-error", err.Error())
		return 0, err
	}
	// trust-state (RFC 8572 §5.3): an authenticated server, or signed data
	// that passed every check of §5.4.
	trusted := conn.trusted || signedOK
	switch {
	case info.Redirect != nil:
		return a.followRedirect(ctx, info.Redirect, trusted, depth)
	case !trusted:
		return 0, ErrUntrustedOnboarding
	default:
		return a.onboard(ctx, t, conn, rep, info.Onboarding, digest)
	}
}

func trustWords(trusted bool) string {
	if trusted {
		return "trusted (TLS certificate validated to a trust anchor)"
	}
	return "untrusted (provisional connection: only signed data or unsigned redirect information is usable)"
}

// decodeConveyed unwraps, verifies (when signed) and parses the conveyed
// information (ownership.Decode). signed reports whether it was signed data
// that passed every RFC 8572 §5.4 check; digest identifies the document
// (sha-256 of the conveyed content) so a restarted agent knows which steps
// of it are done.
func (a *Agent) decodeConveyed(out *restconf.GetOutput, nonce []byte) (info *conveyed.Information, digest string, signed bool, err error) {
	d, err := ownership.Decode(a.ownershipPolicy(), ownership.Artifacts{
		ConveyedInformation: out.ConveyedInformation,
		OwnerCertificate:    out.OwnerCertificate,
		OwnershipVoucher:    out.OwnershipVoucher,
		Nonce:               nonce,
	})
	if err != nil {
		return nil, "", false, err
	}
	for _, s := range d.Steps {
		a.log.Debug("check passed", "check", s)
		fmt.Fprintf(a.out, "  verified: %s\n", s)
	}
	sum := sha256.Sum256(d.Content)
	return d.Info, hex.EncodeToString(sum[:]), d.Signed, nil
}

func (a *Agent) ownershipPolicy() ownership.Policy {
	return ownership.Policy{
		VoucherTrustAnchors: a.cfg.VoucherTrustAnchors,
		SerialNumber:        a.cfg.SerialNumber,
		IDevID:              a.cfg.Identity.Leaf,
		DecryptionKey:       a.cfg.DecryptionKey,
		Assertions:          a.cfg.AcceptedAssertions,
		ClockTrusted:        !a.clockUntrusted(),
		Now:                 a.cfg.Now,
	}
}

// followRedirect is RFC 8572 §5.5: each listed server in order, until one
// bootstraps the device.
func (a *Agent) followRedirect(ctx context.Context, r *conveyed.Redirect, trusted bool, depth int) (Outcome, error) {
	fmt.Fprintf(a.out, "redirect information: %d bootstrap server(s)\n", len(r.BootstrapServers))
	var errs []error
	for _, s := range r.BootstrapServers {
		t := target{base: s.URL(), host: strings.Trim(s.Address, "[]")}
		switch {
		case trusted && s.TrustAnchor != nil:
			anchors, err := trustAnchorCertificates(s.TrustAnchor)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.base, err))
				continue
			}
			t.anchors, t.strict = anchors, true
		case s.TrustAnchor != nil:
			a.log.Warn("discarding the trust anchor of untrusted redirect information", "server", t.base)
		}
		outcome, err := a.processServer(ctx, t, depth+1)
		if err == nil {
			return outcome, nil
		}
		if errors.Is(err, ErrEnvironment) || ctx.Err() != nil {
			return 0, err
		}
		a.log.Warn("redirected bootstrap server did not bootstrap the device", "server", t.base, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", t.base, err))
	}
	return 0, fmt.Errorf("redirect: %w", joinErrors(errs))
}

// trustAnchorCertificates reads a redirect entry's trust-anchor: a CMS bag
// holding one chain ending in a self-signed root, which is what the server's
// certificate is validated to.
func trustAnchorCertificates(bag []byte) ([]*x509.Certificate, error) {
	certs, err := cms.ParseCertificateBag(bag)
	if err != nil {
		return nil, fmt.Errorf("redirect trust-anchor: %w", err)
	}
	return certs, nil
}
