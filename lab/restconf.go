package lab

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

const (
	yangDataJSON = "application/yang-data+json"

	// maxRequestBody bounds what a device may POST (RFC 9646 CSRs and
	// ssh host keys included, inputs are a few KiB).
	maxRequestBody = 1 << 20

	bootstrapServerModule = "ietf-sztp-bootstrap-server"
	inputMember           = bootstrapServerModule + ":input"
	outputMember          = bootstrapServerModule + ":output"
	csrModule             = "ietf-sztp-csr"
)

// RESTCONF error-tags (RFC 8040 §7, RFC 6241 Appendix A) used by the lab.
const (
	tagInvalidValue          = "invalid-value"
	tagTooBig                = "too-big"
	tagMissingElement        = "missing-element"
	tagBadElement            = "bad-element"
	tagUnknownElement        = "unknown-element"
	tagAccessDenied          = "access-denied"
	tagResourceDenied        = "resource-denied"
	tagOperationNotSupported = "operation-not-supported"
	tagOperationFailed       = "operation-failed"
	tagMalformedMessage      = "malformed-message"
)

// ProgressTypes are the 27 progress-type values of RFC 8572 §7.3, in the
// order of the YANG module.
var ProgressTypes = []string{
	"bootstrap-initiated",
	"parsing-initiated", "parsing-warning", "parsing-error", "parsing-complete",
	"boot-image-initiated", "boot-image-warning", "boot-image-error", "boot-image-mismatch",
	"boot-image-installed-rebooting", "boot-image-complete",
	"pre-script-initiated", "pre-script-warning", "pre-script-error", "pre-script-complete",
	"config-initiated", "config-warning", "config-error", "config-complete",
	"post-script-initiated", "post-script-warning", "post-script-error", "post-script-complete",
	"bootstrap-warning", "bootstrap-error", "bootstrap-complete",
	"informational",
}

var progressTypeSet = func() map[string]bool {
	m := make(map[string]bool, len(ProgressTypes))
	for _, t := range ProgressTypes {
		m[t] = true
	}
	return m
}()

// restconfError is an HTTP status plus one entry of ietf-restconf:errors.
type restconfError struct {
	status  int
	tag     string
	message string
}

func (e *restconfError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.tag, e.message) }

func newError(status int, tag, format string, args ...any) *restconfError {
	return &restconfError{status: status, tag: tag, message: fmt.Sprintf(format, args...)}
}

// tagForStatus picks the error-tag RFC 8040 §7 maps to an HTTP status, for
// the statuses a definition asks for.
func tagForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return tagAccessDenied
	case http.StatusConflict:
		return tagResourceDenied
	case http.StatusRequestEntityTooLarge:
		return tagTooBig
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return tagOperationNotSupported
	case http.StatusBadRequest, http.StatusNotFound, http.StatusNotAcceptable:
		return tagInvalidValue
	}
	return tagOperationFailed
}

func writeError(w http.ResponseWriter, e *restconfError) {
	type entry struct {
		Type    string `json:"error-type"`
		Tag     string `json:"error-tag"`
		Message string `json:"error-message,omitempty"`
	}
	type errorList struct {
		Error []entry `json:"error"`
	}
	body, _ := json.Marshal(map[string]errorList{
		"ietf-restconf:errors": {Error: []entry{{Type: "application", Tag: e.tag, Message: e.message}}},
	})
	w.Header().Set("Content-Type", yangDataJSON)
	w.WriteHeader(e.status)
	w.Write(body)
}

// checkMethod answers OPTIONS and wrong methods; it reports whether the
// handler should go on.
func checkMethod(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m {
			return true
		}
	}
	allow := strings.Join(append([]string{http.MethodOptions}, allowed...), ", ")
	w.Header().Set("Allow", allow)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return false
	}
	writeError(w, newError(http.StatusMethodNotAllowed, tagOperationNotSupported, "method %s is not allowed here (allowed: %s)", r.Method, allow))
	return false
}

// readBody reads at most maxRequestBody bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *restconfError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, newError(http.StatusRequestEntityTooLarge, tagTooBig, "request body is over %d bytes", maxRequestBody)
	case err != nil:
		return nil, newError(http.StatusBadRequest, tagMalformedMessage, "reading request body: %v", err)
	}
	return body, nil
}

// checkContentType accepts only RFC 7951 JSON: the lab does not speak the
// XML encoding. An empty body needs no Content-Type (RFC 8040 §3.6.1: an
// operation whose input is all optional may be invoked without one).
func checkContentType(r *http.Request, body []byte) *restconfError {
	ct := r.Header.Get("Content-Type")
	if ct == "" && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != yangDataJSON {
		return newError(http.StatusUnsupportedMediaType, tagInvalidValue, "Content-Type %q is not supported: send %s", ct, yangDataJSON)
	}
	return nil
}

// checkAccept rejects an Accept header that excludes the JSON encoding.
func checkAccept(r *http.Request) *restconfError {
	values := r.Header.Values("Accept")
	if len(values) == 0 {
		return nil
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			switch mt {
			case yangDataJSON, "application/*", "*/*":
				return nil
			}
		}
	}
	return newError(http.StatusNotAcceptable, tagInvalidValue, "Accept %q excludes %s, the only encoding this server produces", strings.Join(values, ", "), yangDataJSON)
}

// decodeInput returns the ietf-sztp-bootstrap-server:input object of an RPC
// body; an empty body is an empty input.
func decodeInput(body []byte) (map[string]any, *restconfError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return nil, newError(http.StatusBadRequest, tagMalformedMessage, "decoding JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, newError(http.StatusBadRequest, tagMalformedMessage, "trailing data after the JSON body")
	}
	if top == nil {
		return nil, newError(http.StatusBadRequest, tagMalformedMessage, "the body is not a JSON object")
	}
	for k := range top {
		if k != inputMember {
			return nil, newError(http.StatusBadRequest, tagUnknownElement, "unexpected top-level member %q (want only %q)", k, inputMember)
		}
	}
	input, ok := top[inputMember].(map[string]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, tagMalformedMessage, "%q is missing or not an object", inputMember)
	}
	return input, nil
}

// validateBootstrapInput checks get-bootstrapping-data input against the
// YANG (RFC 8572 §7.2, RFC 9646), so agent bugs show up as 400s in tests.
func validateBootstrapInput(in map[string]any) *restconfError {
	csrLeaves := 0
	for k, v := range in {
		switch k {
		case "signed-data-preferred":
			if !isEmptyLeaf(v) {
				return newError(http.StatusBadRequest, tagInvalidValue, "signed-data-preferred is an empty leaf: encode it as [null]")
			}
		case "hw-model", "os-name", "os-version":
			if _, ok := v.(string); !ok {
				return newError(http.StatusBadRequest, tagInvalidValue, "%s must be a string", k)
			}
		case "nonce":
			b, err := binaryLeaf(v)
			if err != nil {
				return newError(http.StatusBadRequest, tagInvalidValue, "nonce: %v", err)
			}
			if len(b) < 16 || len(b) > 32 {
				return newError(http.StatusBadRequest, tagInvalidValue, "nonce is %d bytes, want 16 to 32", len(b))
			}
		case csrModule + ":csr-support":
			if _, ok := v.(map[string]any); !ok {
				return newError(http.StatusBadRequest, tagInvalidValue, "%s must be an object", k)
			}
			csrLeaves++
		case csrModule + ":p10-csr", csrModule + ":cmc-csr", csrModule + ":cmp-csr":
			if _, err := binaryLeaf(v); err != nil {
				return newError(http.StatusBadRequest, tagInvalidValue, "%s: %v", k, err)
			}
			csrLeaves++
		default:
			return newError(http.StatusBadRequest, tagUnknownElement, "unknown input leaf %q", k)
		}
	}
	if csrLeaves > 1 {
		return newError(http.StatusBadRequest, tagBadElement, "csr-support and the csr leaves are one YANG choice: send only one")
	}
	return nil
}

// parseReport checks report-progress input (RFC 8572 §7.3) and extracts
// what Report exposes.
func parseReport(in map[string]any) (*Report, *restconfError) {
	rep := &Report{}
	pt, present := in["progress-type"]
	if !present {
		return nil, newError(http.StatusBadRequest, tagMissingElement, "progress-type is mandatory")
	}
	s, ok := pt.(string)
	if !ok || !progressTypeSet[s] {
		return nil, newError(http.StatusBadRequest, tagInvalidValue, "progress-type %v is not one of the %d RFC 8572 values", pt, len(ProgressTypes))
	}
	rep.ProgressType = s
	for k, v := range in {
		switch k {
		case "progress-type":
		case "message":
			m, ok := v.(string)
			if !ok {
				return nil, newError(http.StatusBadRequest, tagInvalidValue, "message must be a string")
			}
			rep.Message = m
		case "ssh-host-keys":
			if rep.ProgressType != "bootstrap-complete" {
				return nil, newError(http.StatusBadRequest, tagBadElement, "ssh-host-keys is allowed only with bootstrap-complete")
			}
			keys, err := parseSSHHostKeys(v)
			if err != nil {
				return nil, newError(http.StatusBadRequest, tagInvalidValue, "ssh-host-keys: %v", err)
			}
			rep.SSHHostKeys = keys
		case "trust-anchor-certs":
			if rep.ProgressType != "bootstrap-complete" {
				return nil, newError(http.StatusBadRequest, tagBadElement, "trust-anchor-certs is allowed only with bootstrap-complete")
			}
			certs, err := parseTrustAnchorCerts(v)
			if err != nil {
				return nil, newError(http.StatusBadRequest, tagInvalidValue, "trust-anchor-certs: %v", err)
			}
			rep.TrustAnchorCerts = certs
		default:
			return nil, newError(http.StatusBadRequest, tagUnknownElement, "unknown input leaf %q", k)
		}
	}
	return rep, nil
}

func parseSSHHostKeys(v any) ([]SSHHostKey, error) {
	list, err := containerList(v, "ssh-host-key")
	if err != nil {
		return nil, err
	}
	var keys []SSHHostKey
	for i, e := range list {
		entry, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("ssh-host-key[%d] is not an object", i)
		}
		alg, ok := entry["algorithm"].(string)
		if !ok || alg == "" {
			return nil, fmt.Errorf("ssh-host-key[%d]: algorithm is missing or not a string", i)
		}
		data, err := binaryLeaf(entry["key-data"])
		if err != nil {
			return nil, fmt.Errorf("ssh-host-key[%d]: key-data: %w", i, err)
		}
		if len(entry) != 2 {
			return nil, fmt.Errorf("ssh-host-key[%d]: want only algorithm and key-data", i)
		}
		keys = append(keys, SSHHostKey{Algorithm: alg, KeyData: data})
	}
	return keys, nil
}

func parseTrustAnchorCerts(v any) ([][]byte, error) {
	list, err := containerList(v, "trust-anchor-cert")
	if err != nil {
		return nil, err
	}
	var certs [][]byte
	for i, e := range list {
		b, err := binaryLeaf(e)
		if err != nil {
			return nil, fmt.Errorf("trust-anchor-cert[%d]: %w", i, err)
		}
		certs = append(certs, b)
	}
	return certs, nil
}

// containerList returns the list member of a container that holds only it.
func containerList(v any, member string) ([]any, error) {
	c, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	list, ok := c[member].([]any)
	if !ok || len(c) != 1 {
		return nil, fmt.Errorf("want an object holding only the %q list", member)
	}
	return list, nil
}

// isEmptyLeaf reports whether v is the RFC 7951 encoding of an empty leaf.
func isEmptyLeaf(v any) bool {
	list, ok := v.([]any)
	return ok && len(list) == 1 && list[0] == nil
}

// binaryLeaf decodes an RFC 7951 binary value (standard base64, padded).
func binaryLeaf(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("not a base64 string")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not standard base64: %w", err)
	}
	return b, nil
}
