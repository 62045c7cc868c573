// Package restconf is the device side of the RFC 8572 §7 bootstrap server API:
// the get-bootstrapping-data and report-progress RPCs of module
// ietf-sztp-bootstrap-server, over RESTCONF (RFC 8040) with the RFC 7951 JSON
// encoding.
package restconf

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MediaType is the RFC 8040 media type for JSON-encoded YANG data.
const MediaType = "application/yang-data+json"

const (
	module                 = "ietf-sztp-bootstrap-server"
	getBootstrappingData   = "/operations/" + module + ":get-bootstrapping-data"
	reportProgress         = "/operations/" + module + ":report-progress"
	defaultMaxResponseSize = 16 << 20
	maxErrorBodySize       = 64 << 10
)

// Client calls one bootstrap server.
type Client struct {
	// HTTP carries the requests; its TLS configuration decides whether the
	// server is authenticated. It must not follow redirects.
	HTTP *http.Client
	// Root is the RESTCONF root, e.g. "https://192.0.2.1:8443/restconf".
	Root string
	// Header holds extra headers sent with every request.
	Header http.Header
	// UserAgent is sent as the User-Agent header.
	UserAgent string
	// MaxResponseSize bounds a response body; 0 means 16 MiB.
	MaxResponseSize int64
}

// GetInput is the input of get-bootstrapping-data. What goes in depends on
// whether the server is trusted (RFC 8572 §9.6): the caller decides.
type GetInput struct {
	SignedDataPreferred bool
	HWModel             string
	OSName              string
	OSVersion           string
	Nonce               []byte
}

// GetOutput is the output of get-bootstrapping-data, binary leaves decoded.
type GetOutput struct {
	ReportingLevel      string // "minimal" (also when absent) or "verbose"
	ConveyedInformation []byte
	OwnerCertificate    []byte
	OwnershipVoucher    []byte
}

// Verbose reports whether the server asked for every progress report.
func (o *GetOutput) Verbose() bool { return o.ReportingLevel == "verbose" }

// Progress is the input of report-progress.
type Progress struct {
	Type             string
	Message          string
	SSHHostKeys      []SSHHostKey
	TrustAnchorCerts [][]byte // DER CMS certificate bags
}

// SSHHostKey is one entry of the ssh-host-keys list.
type SSHHostKey struct {
	Algorithm string // e.g. "ssh-ed25519"
	KeyData   []byte // RFC 4253 §6.6 public key blob
}

// StatusError is a non-success HTTP answer, with the RFC 8040 errors it carried.
type StatusError struct {
	RPC        string
	StatusCode int
	Errors     []Error
	// RetryAfter is the server's Retry-After delay, or 0.
	RetryAfter time.Duration
}

// Error is one entry of an ietf-restconf:errors body (RFC 8040 §7.1).
type Error struct {
	Type    string          `json:"error-type"`
	Tag     string          `json:"error-tag"`
	AppTag  string          `json:"error-app-tag,omitempty"`
	Path    string          `json:"error-path,omitempty"`
	Message string          `json:"error-message,omitempty"`
	Info    json.RawMessage `json:"error-info,omitempty"`
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d %s", e.RPC, e.StatusCode, http.StatusText(e.StatusCode))
	for _, re := range e.Errors {
		b.WriteString(" [")
		b.WriteString(re.Tag)
		if re.Message != "" {
			b.WriteString(": ")
			b.WriteString(re.Message)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Temporary reports whether the server said to come back later (RFC 8572
// §7, checklist §4.5): 404 (no data for us yet), 409, 429 and 5xx.
func (e *StatusError) Temporary() bool {
	switch {
	case e.StatusCode == http.StatusNotFound, e.StatusCode == http.StatusConflict,
		e.StatusCode == http.StatusTooManyRequests, e.StatusCode >= 500:
		return true
	}
	return false
}

// GetBootstrappingData calls the get-bootstrapping-data RPC.
func (c *Client) GetBootstrappingData(ctx context.Context, in GetInput) (*GetOutput, error) {
	body := map[string]any{}
	if in.SignedDataPreferred {
		body["signed-data-preferred"] = []any{nil} // YANG empty (RFC 7951 §6.9)
	}
	putString(body, "hw-model", in.HWModel)
	putString(body, "os-name", in.OSName)
	putString(body, "os-version", in.OSVersion)
	if len(in.Nonce) > 0 {
		body["nonce"] = base64.StdEncoding.EncodeToString(in.Nonce)
	}
	resp, err := c.post(ctx, getBootstrappingData, body)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, resp.statusError("get-bootstrapping-data")
	}
	return decodeOutput(resp.body)
}

func putString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// decodeOutput parses the RPC output (RFC 8040 §3.6.2: the "output" container,
// module-qualified).
func decodeOutput(body []byte) (*GetOutput, error) {
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, fmt.Errorf("decoding get-bootstrapping-data output: %w", err)
	}
	raw, ok := wire[module+":output"]
	if !ok {
		return nil, fmt.Errorf("decoding get-bootstrapping-data output: no %q member", module+":output")
	}
	var out struct {
		ReportingLevel      string  `json:"reporting-level"`
		ConveyedInformation *string `json:"conveyed-information"`
		OwnerCertificate    *string `json:"owner-certificate"`
		OwnershipVoucher    *string `json:"ownership-voucher"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decoding get-bootstrapping-data output: %w", err)
	}
	switch out.ReportingLevel {
	case "", "minimal", "verbose":
	default:
		return nil, fmt.Errorf("decoding get-bootstrapping-data output: reporting-level %q is neither minimal nor verbose", out.ReportingLevel)
	}
	if out.ConveyedInformation == nil {
		return nil, errors.New("decoding get-bootstrapping-data output: conveyed-information is missing")
	}
	o := &GetOutput{ReportingLevel: out.ReportingLevel}
	if o.ReportingLevel == "" {
		o.ReportingLevel = "minimal"
	}
	var err error
	for _, leaf := range []struct {
		name string
		in   *string
		out  *[]byte
	}{
		{"conveyed-information", out.ConveyedInformation, &o.ConveyedInformation},
		{"owner-certificate", out.OwnerCertificate, &o.OwnerCertificate},
		{"ownership-voucher", out.OwnershipVoucher, &o.OwnershipVoucher},
	} {
		if leaf.in == nil {
			continue
		}
		if *leaf.out, err = base64.StdEncoding.DecodeString(strings.TrimSpace(*leaf.in)); err != nil {
			return nil, fmt.Errorf("decoding get-bootstrapping-data output: %s is not valid base64: %w", leaf.name, err)
		}
		if len(*leaf.out) == 0 {
			return nil, fmt.Errorf("decoding get-bootstrapping-data output: %s is empty", leaf.name)
		}
	}
	if (o.OwnerCertificate == nil) != (o.OwnershipVoucher == nil) {
		return nil, errors.New("decoding get-bootstrapping-data output: owner-certificate and ownership-voucher must come together")
	}
	return o, nil
}

// ReportProgress calls the report-progress RPC; anything but 204 is an error.
func (c *Client) ReportProgress(ctx context.Context, p Progress) error {
	body := map[string]any{"progress-type": p.Type}
	putString(body, "message", p.Message)
	if len(p.SSHHostKeys) > 0 {
		var keys []map[string]string
		for _, k := range p.SSHHostKeys {
			keys = append(keys, map[string]string{
				"algorithm": k.Algorithm,
				"key-data":  base64.StdEncoding.EncodeToString(k.KeyData),
			})
		}
		body["ssh-host-keys"] = map[string]any{"ssh-host-key": keys}
	}
	if len(p.TrustAnchorCerts) > 0 {
		var certs []string
		for _, c := range p.TrustAnchorCerts {
			certs = append(certs, base64.StdEncoding.EncodeToString(c))
		}
		body["trust-anchor-certs"] = map[string]any{"trust-anchor-cert": certs}
	}
	resp, err := c.post(ctx, reportProgress, body)
	if err != nil {
		return err
	}
	if resp.status != http.StatusNoContent {
		return resp.statusError("report-progress")
	}
	return nil
}

type response struct {
	status     int
	header     http.Header
	body       []byte
	receivedAt time.Time
}

func (c *Client) post(ctx context.Context, path string, input map[string]any) (*response, error) {
	payload, err := json.Marshal(map[string]any{module + ":input": input})
	if err != nil {
		return nil, fmt.Errorf("encoding %s input: %w", path, err)
	}
	url := strings.TrimSuffix(c.Root, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("Accept", MediaType)
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	limit := c.MaxResponseSize
	if limit <= 0 {
		limit = defaultMaxResponseSize
	}
	if resp.StatusCode != http.StatusOK {
		limit = maxErrorBodySize // an error body is only read for its messages
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response to POST %s: %w", url, err)
	}
	if int64(len(body)) > limit && resp.StatusCode == http.StatusOK {
		return nil, fmt.Errorf("reading response to POST %s: body is larger than the %d-byte limit", url, limit)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body, receivedAt: time.Now()}, nil
}

func (r *response) statusError(rpc string) *StatusError {
	e := &StatusError{RPC: rpc, StatusCode: r.status, RetryAfter: parseRetryAfter(r.header.Get("Retry-After"), r.receivedAt)}
	var wire struct {
		Errors struct {
			Error []Error `json:"error"`
		} `json:"ietf-restconf:errors"`
	}
	if json.Unmarshal(r.body, &wire) == nil {
		e.Errors = wire.Errors.Error
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
