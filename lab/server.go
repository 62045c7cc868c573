package lab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	operationsPath          = "/restconf/operations/"
	getBootstrappingDataRPC = operationsPath + bootstrapServerModule + ":get-bootstrapping-data"
	reportProgressRPC       = operationsPath + bootstrapServerModule + ":report-progress"
	imagesPath              = "/images/"

	defaultAddr = "127.0.0.1:0"
	defaultName = "lab"
)

// Options configures Start.
type Options struct {
	PKI     *PKI
	Name    string           // label in logs and report lines, e.g. "lab-1"
	Addr    string           // listen address, default "127.0.0.1:0"
	TLSCert *tls.Certificate // default: issued by PKI.ServerCA for 127.0.0.1 and localhost
	// UntrustedTLS, when TLSCert is nil, issues the server certificate from
	// a fresh CA held only in memory instead of PKI.ServerCA, so an agent
	// using PKI.TrustAnchorFile cannot authenticate the server (a
	// provisional connection, RFC 8572 §5.3).
	UntrustedTLS bool
	Definition   *Definition  // nil: get-bootstrapping-data answers 404
	Logger       *slog.Logger // nil: discard
	// ReportLog, when set, receives every accepted progress report as one
	// line: time, server name, serial number, progress-type, message.
	ReportLog io.Writer
}

// Report is one report-progress the server accepted.
type Report struct {
	Time             time.Time
	Serial           string
	ProgressType     string
	Message          string
	SSHHostKeys      []SSHHostKey
	TrustAnchorCerts [][]byte        // DER CMS certificate bags
	Raw              json.RawMessage // the request body as received
}

// SSHHostKey is one entry of a bootstrap-complete report's ssh-host-keys.
type SSHHostKey struct {
	Algorithm string
	KeyData   []byte // RFC 4253 §6.6 public key blob
}

// BootstrapRequest is one get-bootstrapping-data the server received.
type BootstrapRequest struct {
	Time   time.Time
	Serial string
	Header http.Header
	Input  map[string]any // the decoded ietf-sztp-bootstrap-server:input; nil if the body did not parse
}

// Server is a RESTCONF bootstrap server (RFC 8572 §7) for one lab PKI.
type Server struct {
	name       string
	pki        *PKI
	log        *slog.Logger
	reportLog  io.Writer
	httpServer *http.Server
	url        string
	served     chan struct{} // closed when the serve loop has returned
	serveErr   error

	mu       sync.Mutex
	answer   *answer
	reports  []Report
	requests []BootstrapRequest
	// imageRequests counts GETs of served images (tests: was an image
	// downloaded, and how often).
	imageRequests int
}

// ImageRequests returns how many times an image was requested with GET.
func (s *Server) ImageRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imageRequests
}

// Start listens, installs the definition and serves HTTPS until Close.
func Start(opts Options) (*Server, error) {
	if opts.PKI == nil {
		return nil, errors.New("starting lab server: no PKI")
	}
	s := &Server{name: opts.Name, pki: opts.PKI, log: opts.Logger, reportLog: opts.ReportLog, served: make(chan struct{})}
	if s.name == "" {
		s.name = defaultName
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("server", s.name)
	addr := opts.Addr
	if addr == "" {
		addr = defaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("starting lab server %s: %w", s.name, err)
	}
	host := urlHost(ln.Addr().(*net.TCPAddr))
	s.url = "https://" + host

	cert := opts.TLSCert
	if cert == nil {
		issuer := opts.PKI.ServerCA
		if opts.UntrustedTLS {
			if issuer, err = newMemoryCA("untrusted server"); err != nil {
				ln.Close()
				return nil, fmt.Errorf("starting lab server %s: %w", s.name, err)
			}
		}
		issued, err := issuer.IssueServer(opts.PKI.Dir, "bootstrap-server-"+s.name, serverCertHosts(host)...)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lab server %s: %w", s.name, err)
		}
		cert = &issued
	}
	if opts.Definition != nil {
		a, err := buildAnswer(opts.Definition, opts.PKI, s.ImageURL)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lab server %s: installing the definition: %w", s.name, err)
		}
		s.answer = a
	}

	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(opts.PKI.Manufacturer.Cert)
	mux := http.NewServeMux()
	mux.HandleFunc(getBootstrappingDataRPC, s.handleGetBootstrappingData)
	mux.HandleFunc(reportProgressRPC, s.handleReportProgress)
	mux.HandleFunc(imagesPath, s.handleImage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, tagInvalidValue, "no resource at %s", r.URL.Path))
	})
	s.httpServer = &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*cert},
			// RFC 8572 §9.2: devices authenticate with their IDevID; the
			// lab only knows devices of its own manufacturer CA.
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  clientCAs,
		},
		ReadHeaderTimeout: 10 * time.Second,
		// Handshake failures (e.g. a client without certificate) are
		// expected in tests; keep them out of the normal log level.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.served)
		if err := s.httpServer.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
			s.log.Error("lab server stopped serving", "err", err)
		}
	}()
	s.log.Info("lab bootstrap server listening", "url", s.url)
	return s, nil
}

// urlHost is the host:port to put in URLs: a wildcard listen address is
// reached through loopback.
func urlHost(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

func serverCertHosts(hostPort string) []string {
	hosts := []string{"127.0.0.1", "localhost"}
	if h, _, err := net.SplitHostPort(hostPort); err == nil && h != "127.0.0.1" {
		hosts = append(hosts, h)
	}
	return hosts
}

// URL is the server's base URL, without path (the agent appends /restconf).
func (s *Server) URL() string { return s.url }

// ImageURL is the URL at which the server serves the image called name.
func (s *Server) ImageURL(name string) string {
	return s.url + imagesPath + url.PathEscape(name)
}

// Reports returns a copy of the progress reports accepted so far, in order.
func (s *Server) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Report(nil), s.reports...)
}

// Requests returns a copy of the get-bootstrapping-data requests received so
// far, in order.
func (s *Server) Requests() []BootstrapRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]BootstrapRequest(nil), s.requests...)
}

// SetDefinition changes what the server answers from now on. A nil
// definition makes get-bootstrapping-data answer 404; one that cannot be
// installed (invalid, unreadable file) is logged and makes it answer 500
// with the reason, so a test sees the problem in the agent's behaviour.
func (s *Server) SetDefinition(d *Definition) {
	var a *answer
	if d != nil {
		var err error
		if a, err = buildAnswer(d, s.pki, s.ImageURL); err != nil {
			s.log.Error("installing definition failed", "err", err)
			a = &answer{def: d, err: err}
		}
	}
	s.mu.Lock()
	s.answer = a
	s.mu.Unlock()
}

// Close stops the server at once, dropping connections in progress.
func (s *Server) Close() error {
	err := s.httpServer.Close()
	<-s.served
	if err != nil {
		return fmt.Errorf("closing lab server %s: %w", s.name, err)
	}
	return s.serveErr
}

// Shutdown stops the server after the requests in progress, or when ctx is
// done.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.httpServer.Shutdown(ctx)
	if err != nil {
		s.httpServer.Close()
	}
	<-s.served
	if err != nil {
		return fmt.Errorf("shutting down lab server %s: %w", s.name, err)
	}
	return s.serveErr
}

// clientSerial is the serialNumber attribute of the verified client
// certificate's subject, the device's identity (RFC 8572 §5.3).
func clientSerial(r *http.Request) (string, *restconfError) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", newError(http.StatusUnauthorized, tagAccessDenied, "no client certificate")
	}
	serial := r.TLS.PeerCertificates[0].Subject.SerialNumber
	if serial == "" {
		return "", newError(http.StatusUnauthorized, tagAccessDenied, "the client certificate subject has no serialNumber attribute")
	}
	return serial, nil
}

func (s *Server) handleGetBootstrappingData(w http.ResponseWriter, r *http.Request) {
	if !checkMethod(w, r, http.MethodPost) {
		return
	}
	status, err := s.getBootstrappingData(w, r)
	if err != nil {
		writeError(w, err)
		status = err.status
	}
	attrs := []any{"remote", r.RemoteAddr, "status", status}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		attrs = append(attrs, "serial", r.TLS.PeerCertificates[0].Subject.SerialNumber)
	}
	if err != nil {
		attrs = append(attrs, "err", err.message)
	}
	s.log.Info("get-bootstrapping-data", attrs...)
}

// getBootstrappingData answers the RPC unless it returns an error to send.
func (s *Server) getBootstrappingData(w http.ResponseWriter, r *http.Request) (int, *restconfError) {
	serial, rerr := clientSerial(r)
	if rerr != nil {
		return 0, rerr
	}
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, rerr
	}
	var input map[string]any
	defer func() {
		// Recorded whatever the outcome: a test wants to see what the
		// agent sent even when the server refused it.
		s.mu.Lock()
		s.requests = append(s.requests, BootstrapRequest{Time: time.Now(), Serial: serial, Header: r.Header.Clone(), Input: input})
		s.mu.Unlock()
	}()
	if rerr := checkContentType(r, body); rerr != nil {
		return 0, rerr
	}
	if rerr := checkAccept(r); rerr != nil {
		return 0, rerr
	}
	input, rerr = decodeInput(body)
	if rerr != nil {
		return 0, rerr
	}
	if rerr := validateBootstrapInput(input); rerr != nil {
		return 0, rerr
	}

	s.mu.Lock()
	a := s.answer
	s.mu.Unlock()
	switch {
	case a == nil:
		return 0, newError(http.StatusNotFound, tagInvalidValue, "no bootstrapping data is configured for %s", serial)
	case a.err != nil:
		return 0, newError(http.StatusInternalServerError, tagOperationFailed, "the lab definition could not be installed: %v", a.err)
	case a.raw != nil:
		ct := a.raw.ContentType
		if ct == "" {
			ct = yangDataJSON
		}
		status := a.raw.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		w.Write(a.raw.Body)
		return status, nil
	case a.status != 0:
		return 0, newError(a.status, tagForStatus(a.status), "the lab definition answers %d %s", a.status, http.StatusText(a.status))
	}
	out := a.body
	if a.signed != nil {
		var arts *signedArtifacts
		var err error
		out, arts, err = a.signedBody(time.Now(), deviceRequest{serial: serial, cert: r.TLS.PeerCertificates[0], nonce: inputNonce(input)})
		switch {
		case errors.Is(err, errNoNonce):
			return 0, newError(http.StatusBadRequest, tagMissingElement, "%v", err)
		case err != nil:
			return 0, newError(http.StatusInternalServerError, tagOperationFailed, "making the signed answer: %v", err)
		}
		s.log.Debug("sending signed data", "serial", serial, "voucher", string(arts.voucherJSON))
	}
	w.Header().Set("Content-Type", yangDataJSON)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	s.log.Debug("sent conveyed information", "serial", serial, "signed", a.signed != nil, "json", string(a.conveyedJSON))
	return http.StatusOK, nil
}

// inputNonce is the nonce of a validated get-bootstrapping-data input, nil
// when it has none.
func inputNonce(input map[string]any) []byte {
	v, ok := input["nonce"]
	if !ok {
		return nil
	}
	b, err := binaryLeaf(v) // validateBootstrapInput has checked it
	if err != nil {
		return nil
	}
	return b
}

func (s *Server) handleReportProgress(w http.ResponseWriter, r *http.Request) {
	if !checkMethod(w, r, http.MethodPost) {
		return
	}
	status, err := s.reportProgress(w, r)
	if err != nil {
		writeError(w, err)
		status = err.status
	}
	if status != http.StatusNoContent {
		attrs := []any{"remote", r.RemoteAddr, "status", status}
		if err != nil {
			attrs = append(attrs, "err", err.message)
		}
		s.log.Warn("report-progress not accepted", attrs...)
	}
}

func (s *Server) reportProgress(w http.ResponseWriter, r *http.Request) (int, *restconfError) {
	serial, rerr := clientSerial(r)
	if rerr != nil {
		return 0, rerr
	}
	body, rerr := readBody(w, r)
	if rerr != nil {
		return 0, rerr
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, newError(http.StatusBadRequest, tagMissingElement, "report-progress needs an input with progress-type")
	}
	if rerr := checkContentType(r, body); rerr != nil {
		return 0, rerr
	}
	input, rerr := decodeInput(body)
	if rerr != nil {
		return 0, rerr
	}
	rep, rerr := parseReport(input)
	if rerr != nil {
		return 0, rerr
	}
	rep.Time, rep.Serial, rep.Raw = time.Now(), serial, json.RawMessage(body)

	s.mu.Lock()
	s.reports = append(s.reports, *rep)
	var reportStatus int
	if s.answer != nil && s.answer.def != nil {
		reportStatus = s.answer.def.ReportStatus
	}
	if s.reportLog != nil {
		// Under the lock so that concurrent reports do not interleave.
		fmt.Fprintln(s.reportLog, FormatReport(s.name, *rep))
	}
	s.mu.Unlock()
	s.log.Info("progress report", "serial", serial, "progress-type", rep.ProgressType, "message", rep.Message)

	if reportStatus != 0 && reportStatus != http.StatusNoContent {
		return 0, newError(reportStatus, tagForStatus(reportStatus), "the lab definition answers reports with %d %s", reportStatus, http.StatusText(reportStatus))
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent, nil
}

// FormatReport renders a report as the one line the lab prints for it.
func FormatReport(serverName string, r Report) string {
	line := fmt.Sprintf("%s %s %s %s", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), serverName, r.Serial, r.ProgressType)
	if r.Message != "" {
		line += fmt.Sprintf(" %q", r.Message)
	}
	if len(r.SSHHostKeys) > 0 {
		algs := make([]string, len(r.SSHHostKeys))
		for i, k := range r.SSHHostKeys {
			algs[i] = k.Algorithm
		}
		line += " ssh-host-keys=" + strings.Join(algs, ",")
	}
	if len(r.TrustAnchorCerts) > 0 {
		line += fmt.Sprintf(" trust-anchor-certs=%d", len(r.TrustAnchorCerts))
	}
	return line
}

func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	if !checkMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	name := strings.TrimPrefix(r.URL.Path, imagesPath)
	s.mu.Lock()
	if r.Method == http.MethodGet {
		s.imageRequests++
	}
	var img *servedImage
	if s.answer != nil {
		img = s.answer.images[name]
	}
	s.mu.Unlock()
	if img == nil {
		http.NotFound(w, r)
		s.log.Warn("image not found", "remote", r.RemoteAddr, "name", name)
		return
	}
	// Set explicitly: ServeContent would otherwise guess from the name or
	// the first bytes.
	w.Header().Set("Content-Type", "application/octet-stream")
	if img.data != nil {
		http.ServeContent(w, r, img.name, time.Time{}, bytes.NewReader(img.data))
	} else {
		f, err := os.Open(img.path)
		if err != nil {
			s.log.Error("opening image failed", "err", err)
			http.Error(w, "image unavailable", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		var modTime time.Time
		if fi, err := f.Stat(); err == nil {
			modTime = fi.ModTime()
		}
		http.ServeContent(w, r, img.name, modTime, f)
	}
	s.log.Info("image served", "remote", r.RemoteAddr, "name", name, "range", r.Header.Get("Range"))
}
