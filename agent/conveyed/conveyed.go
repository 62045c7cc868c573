// Package conveyed decodes RFC 8572 conveyed information (§2, YANG module
// ietf-sztp-conveyed-info, §6): either redirect information or onboarding
// information, in its RFC 7951 JSON encoding.
package conveyed

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The module names that qualify the top-level containers (RFC 7951 §4).
const (
	module            = "ietf-sztp-conveyed-info"
	redirectMember    = module + ":redirect-information"
	onboardingMember  = module + ":onboarding-information"
	sha256Identity    = module + ":sha-256"
	defaultPort       = 443
	maxBootstrapHosts = 64
)

// Information is one decoded conveyed-information document: exactly one of
// Redirect and Onboarding is set.
type Information struct {
	Redirect   *Redirect
	Onboarding *Onboarding
}

// Redirect is redirect-information (§2.1).
type Redirect struct {
	BootstrapServers []BootstrapServer
}

// BootstrapServer is one entry of the redirect list.
type BootstrapServer struct {
	Address     string // hostname or IP address, as given
	Port        int    // 443 when the leaf is absent
	TrustAnchor []byte // DER CMS certificate bag, or nil
}

// HostPort returns address:port, bracketing IPv6 literals.
func (b BootstrapServer) HostPort() string {
	return net.JoinHostPort(strings.Trim(b.Address, "[]"), strconv.Itoa(b.Port))
}

// URL returns the https base URL of the server (no path).
func (b BootstrapServer) URL() string { return "https://" + b.HostPort() }

// Onboarding is onboarding-information (§2.2).
type Onboarding struct {
	BootImage               *BootImage
	PreConfigurationScript  []byte
	ConfigurationHandling   string // "merge" or "replace"; set iff Configuration is
	Configuration           []byte
	PostConfigurationScript []byte
}

// BootImage is the boot-image container.
type BootImage struct {
	OSName            string
	OSVersion         string
	DownloadURIs      []string
	ImageVerification []ImageVerification
}

// ImageVerification is one entry of image-verification.
type ImageVerification struct {
	HashAlgorithm string // identity without its module prefix, e.g. "sha-256"
	HashValue     []byte
}

// ErrUnknownType is returned when the document is neither redirect nor onboarding information.
var ErrUnknownType = errors.New("conveyed information is neither redirect-information nor onboarding-information")

// Wire types mirror the YANG nodes; one set serves both encodings (RFC
// 7951 JSON and RFC 7950 XML), so both go through the same checks.
type wireRedirect struct {
	BootstrapServer []wireBootstrapServer `json:"bootstrap-server" xml:"bootstrap-server"`
}

type wireBootstrapServer struct {
	Address     string    `json:"address" xml:"address"`
	Port        *wirePort `json:"port" xml:"port"`
	TrustAnchor *string   `json:"trust-anchor" xml:"trust-anchor"`
}

// wirePort holds the port as written: a JSON number (or, tolerated, a
// quoted one) or XML text; parsePort reads it.
type wirePort string

func (p *wirePort) UnmarshalJSON(b []byte) error {
	*p = wirePort(b)
	return nil
}

type wireOnboarding struct {
	BootImage               *wireBootImage `json:"boot-image" xml:"boot-image"`
	ConfigurationHandling   string         `json:"configuration-handling" xml:"configuration-handling"`
	PreConfigurationScript  *string        `json:"pre-configuration-script" xml:"pre-configuration-script"`
	Configuration           *string        `json:"configuration" xml:"configuration"`
	PostConfigurationScript *string        `json:"post-configuration-script" xml:"post-configuration-script"`
}

type wireBootImage struct {
	OSName            string             `json:"os-name" xml:"os-name"`
	OSVersion         string             `json:"os-version" xml:"os-version"`
	DownloadURI       []string           `json:"download-uri" xml:"download-uri"`
	ImageVerification []wireVerification `json:"image-verification" xml:"image-verification"`
}

type wireVerification struct {
	HashAlgorithm string `json:"hash-algorithm" xml:"hash-algorithm"`
	HashValue     string `json:"hash-value" xml:"hash-value"`
}

// ParseJSON decodes conveyed information in its RFC 7951 JSON encoding and
// checks the YANG constraints the agent relies on.
func ParseJSON(data []byte) (*Information, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("decoding conveyed information JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding conveyed information JSON: trailing data after the document")
	}
	if len(top) != 1 {
		return nil, fmt.Errorf("decoding conveyed information JSON: want one top-level member, got %d", len(top))
	}
	if raw, ok := top[redirectMember]; ok {
		r, err := parseRedirect(raw)
		if err != nil {
			return nil, fmt.Errorf("decoding redirect-information: %w", err)
		}
		return &Information{Redirect: r}, nil
	}
	if raw, ok := top[onboardingMember]; ok {
		o, err := parseOnboarding(raw)
		if err != nil {
			return nil, fmt.Errorf("decoding onboarding-information: %w", err)
		}
		return &Information{Onboarding: o}, nil
	}
	for k := range top {
		return nil, fmt.Errorf("%w: top-level member %q", ErrUnknownType, k)
	}
	return nil, ErrUnknownType
}

func parseRedirect(raw json.RawMessage) (*Redirect, error) {
	var w wireRedirect
	if err := strictUnmarshal(raw, &w); err != nil {
		return nil, err
	}
	return redirectFromWire(w)
}

func redirectFromWire(w wireRedirect) (*Redirect, error) {
	if len(w.BootstrapServer) == 0 {
		return nil, errors.New("bootstrap-server list is empty")
	}
	if len(w.BootstrapServer) > maxBootstrapHosts {
		return nil, fmt.Errorf("bootstrap-server list has %d entries, more than %d", len(w.BootstrapServer), maxBootstrapHosts)
	}
	r := &Redirect{}
	seen := map[string]bool{}
	for i, e := range w.BootstrapServer {
		if err := checkAddress(e.Address); err != nil {
			return nil, fmt.Errorf("bootstrap-server[%d]: %w", i, err)
		}
		if seen[e.Address] {
			return nil, fmt.Errorf("bootstrap-server[%d]: duplicate address %q (the list is keyed by address)", i, e.Address)
		}
		seen[e.Address] = true
		port, err := parsePort(e.Port)
		if err != nil {
			return nil, fmt.Errorf("bootstrap-server[%d] %q: %w", i, e.Address, err)
		}
		s := BootstrapServer{Address: e.Address, Port: port}
		if e.TrustAnchor != nil {
			if s.TrustAnchor, err = decodeBinary(*e.TrustAnchor); err != nil {
				return nil, fmt.Errorf("bootstrap-server[%d] %q trust-anchor: %w", i, e.Address, err)
			}
		}
		r.BootstrapServers = append(r.BootstrapServers, s)
	}
	return r, nil
}

func checkAddress(a string) error {
	switch {
	case a == "":
		return errors.New("address is empty")
	case len(a) > 255:
		return errors.New("address is longer than 255 characters")
	case strings.ContainsAny(a, "/?#@ \t\r\n"):
		return fmt.Errorf("address %q is not a host name or IP address", a)
	}
	return nil
}

// parsePort accepts the RFC 7951 number and, for robustness, a quoted number.
func parsePort(raw *wirePort) (int, error) {
	if raw == nil || *raw == "null" {
		return defaultPort, nil
	}
	s := strings.Trim(string(*raw), `"`)
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %s is not a number from 1 to 65535", string(*raw))
	}
	return p, nil
}

func parseOnboarding(raw json.RawMessage) (*Onboarding, error) {
	var w wireOnboarding
	if err := strictUnmarshal(raw, &w); err != nil {
		return nil, err
	}
	return onboardingFromWire(w)
}

func onboardingFromWire(w wireOnboarding) (*Onboarding, error) {
	o := &Onboarding{ConfigurationHandling: w.ConfigurationHandling}
	var err error
	if w.BootImage != nil {
		bi := &BootImage{OSName: w.BootImage.OSName, OSVersion: w.BootImage.OSVersion, DownloadURIs: w.BootImage.DownloadURI}
		for i, v := range w.BootImage.ImageVerification {
			alg, ok := strings.CutPrefix(v.HashAlgorithm, module+":")
			if !ok {
				return nil, fmt.Errorf("boot-image image-verification[%d]: hash-algorithm %q is not an %s identity", i, v.HashAlgorithm, module)
			}
			val, err := ParseHexString(v.HashValue)
			if err != nil {
				return nil, fmt.Errorf("boot-image image-verification[%d] hash-value: %w", i, err)
			}
			bi.ImageVerification = append(bi.ImageVerification, ImageVerification{HashAlgorithm: alg, HashValue: val})
		}
		// YANG: image-verification requires download-uri.
		if len(bi.ImageVerification) > 0 && len(bi.DownloadURIs) == 0 {
			return nil, errors.New("boot-image has image-verification but no download-uri")
		}
		if len(bi.DownloadURIs) > 0 && len(bi.ImageVerification) == 0 {
			return nil, errors.New("boot-image has download-uri but no image-verification: the image could not be verified")
		}
		o.BootImage = bi
	}
	if o.PreConfigurationScript, err = optionalBinary(w.PreConfigurationScript); err != nil {
		return nil, fmt.Errorf("pre-configuration-script: %w", err)
	}
	if o.Configuration, err = optionalBinary(w.Configuration); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if o.PostConfigurationScript, err = optionalBinary(w.PostConfigurationScript); err != nil {
		return nil, fmt.Errorf("post-configuration-script: %w", err)
	}
	// YANG: configuration and configuration-handling require each other.
	switch {
	case w.Configuration != nil && o.ConfigurationHandling == "":
		return nil, errors.New("configuration is present without configuration-handling")
	case w.Configuration == nil && o.ConfigurationHandling != "":
		return nil, errors.New("configuration-handling is present without configuration")
	case o.ConfigurationHandling != "" && o.ConfigurationHandling != "merge" && o.ConfigurationHandling != "replace":
		return nil, fmt.Errorf("configuration-handling %q is neither merge nor replace", o.ConfigurationHandling)
	}
	return o, nil
}

// strictUnmarshal rejects members the YANG module does not define, so a
// misspelt leaf ("pre-config-script") is an error instead of a silently
// skipped step.
// Members qualified by another module are augmentations (RFC 7951 §4) the
// agent does not implement; they are dropped, not rejected.
func strictUnmarshal(raw json.RawMessage, v any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return err
	}
	for k, v := range members {
		if prefix, name, qualified := strings.Cut(k, ":"); qualified {
			delete(members, k)
			if prefix == module {
				members[name] = v
			}
		}
	}
	raw, err := json.Marshal(members)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func optionalBinary(s *string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	return decodeBinary(*s)
}

// decodeBinary decodes a YANG binary leaf (RFC 7951 §6.6: base64, RFC 4648 §4).
func decodeBinary(s string) ([]byte, error) {
	// XML documents often wrap long base64 values; whitespace is not data.
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %w", err)
	}
	return b, nil
}

// ParseHexString decodes a yang:hex-string ("ba:ec:cf"), tolerating upper
// case and a value written without colons.
func ParseHexString(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("hex-string is empty")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil {
		return nil, fmt.Errorf("hex-string %q: %w", s, err)
	}
	return b, nil
}

// FormatHexString encodes b as a yang:hex-string.
func FormatHexString(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}
