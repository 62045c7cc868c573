package lab

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Reporting levels (ietf-sztp-bootstrap-server reporting-level).
const (
	ReportingMinimal = "minimal"
	ReportingVerbose = "verbose"
)

// Content types of the conveyed-information ContentInfo.
const (
	ContentTypeJSON = "json" // id-ct-sztpConveyedInfoJSON (.43), what sztpd sends
	ContentTypeData = "data" // id-data, what openssl-based tooling sends
)

// ImagePlaceholder in BootImage.DownloadURIs is replaced by the URL at which
// the server serves the image.
const ImagePlaceholder = "{{image}}"

// defaultImageName names an in-memory image that was given no ImageName.
const defaultImageName = "image.bin"

// Definition is what the lab server answers to get-bootstrapping-data.
//
// Exactly one of Onboarding and Redirect is set, unless Status or Raw makes
// the server answer without conveyed information. Signed makes the answer
// signed data (RFC 8572 §3): signed conveyed information, owner
// certificate and ownership voucher, optionally encrypted.
type Definition struct {
	ReportingLevel string           `yaml:"reporting-level"` // "minimal" (default) | "verbose"
	ContentType    string           `yaml:"content-type"`    // "json" (default) | "data"
	Onboarding     *Onboarding      `yaml:"onboarding"`
	Redirect       []RedirectServer `yaml:"redirect"`
	// Signed, when set, makes every answer with conveyed information
	// signed, whatever the device asked for and whether or not it trusts
	// this server; nil answers unsigned conveyed information.
	Signed *Signing `yaml:"signed"`
	// Status, when non-zero, makes get-bootstrapping-data answer this HTTP
	// status with an ietf-restconf:errors body (e.g. 404, 503).
	Status int `yaml:"status"`
	// ReportStatus, when non-zero, makes report-progress answer this HTTP
	// status with an ietf-restconf:errors body instead of 204 (the report is
	// still recorded).
	ReportStatus int `yaml:"report-status"`
	// Raw, for tests, makes get-bootstrapping-data answer exactly these bytes.
	Raw *RawResponse `yaml:"-"`
}

// RawResponse is an answer sent verbatim.
type RawResponse struct {
	Status      int    // 0 means 200
	ContentType string // "" means application/yang-data+json
	Body        []byte
}

// Onboarding describes onboarding-information. File paths are relative to the
// definition file; the *Data fields give the same content in memory (tests)
// and exclude the path field of the same name.
type Onboarding struct {
	BootImage                   *BootImage `yaml:"boot-image"`
	PreConfigurationScript      string     `yaml:"pre-configuration-script"`
	Configuration               string     `yaml:"configuration"`
	ConfigurationHandling       string     `yaml:"configuration-handling"` // merge | replace
	PostConfigurationScript     string     `yaml:"post-configuration-script"`
	PreConfigurationScriptData  []byte     `yaml:"-"`
	ConfigurationData           []byte     `yaml:"-"`
	PostConfigurationScriptData []byte     `yaml:"-"`
}

// BootImage describes the boot-image container.
type BootImage struct {
	OSName    string `yaml:"os-name"`
	OSVersion string `yaml:"os-version"`
	// Image is a file the server serves at /images/<base name>; its SHA-256
	// is advertised in image-verification.
	Image string `yaml:"image"`
	// DownloadURIs are placed before the served image's URL (e.g. a dead
	// mirror first). ImagePlaceholder is replaced by the served URL; when an
	// entry holds it, the served URL is not appended again.
	DownloadURIs []string `yaml:"download-uri"`
	// SHA256 overrides the advertised hash (hex, colons optional), e.g. to
	// test a mismatch.
	SHA256    string `yaml:"sha-256"`
	ImageData []byte `yaml:"-"`
	ImageName string `yaml:"-"` // name of ImageData under /images/ ("image.bin" if empty)
}

// RedirectServer is one bootstrap-server entry of redirect-information.
type RedirectServer struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"` // 0 leaves the leaf out (device default 443)
	// TrustAnchor is a PEM file whose certificates are sent as a degenerate
	// SignedData certificate bag.
	TrustAnchor string `yaml:"trust-anchor"`
	// TrustAnchorCerts gives the bag's certificates in memory (tests).
	TrustAnchorCerts []*x509.Certificate `yaml:"-"`
}

// LoadDefinition reads a definition from a YAML (or JSON, a YAML subset)
// file, makes its file paths absolute relative to the file's directory and
// checks it, including that the referenced files can be read.
func LoadDefinition(path string) (*Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading definition: %w", err)
	}
	var d Definition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// A misspelt key would otherwise silently change what the lab answers.
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("loading definition %s: %w", path, err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("loading definition %s: %w", path, err)
	}
	// Absolute, so that the definition still works if the process changes
	// directory before installing it.
	d.resolvePaths(base)
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("loading definition %s: %w", path, err)
	}
	if err := d.checkFilesReadable(); err != nil {
		return nil, fmt.Errorf("loading definition %s: %w", path, err)
	}
	return &d, nil
}

func (d *Definition) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if o := d.Onboarding; o != nil {
		abs(&o.PreConfigurationScript)
		abs(&o.Configuration)
		abs(&o.PostConfigurationScript)
		if o.BootImage != nil {
			abs(&o.BootImage.Image)
		}
	}
	for i := range d.Redirect {
		abs(&d.Redirect[i].TrustAnchor)
	}
}

func (d *Definition) checkFilesReadable() error {
	var paths []string
	if o := d.Onboarding; o != nil {
		paths = append(paths, o.PreConfigurationScript, o.Configuration, o.PostConfigurationScript)
		if o.BootImage != nil {
			paths = append(paths, o.BootImage.Image)
		}
	}
	for _, r := range d.Redirect {
		paths = append(paths, r.TrustAnchor)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// Validate checks the definition's own consistency (not the files it names).
func (d *Definition) Validate() error {
	switch d.ReportingLevel {
	case "", ReportingMinimal, ReportingVerbose:
	default:
		return fmt.Errorf("reporting-level %q: want %q or %q", d.ReportingLevel, ReportingMinimal, ReportingVerbose)
	}
	switch d.ContentType {
	case "", ContentTypeJSON, ContentTypeData:
	default:
		return fmt.Errorf("content-type %q: want %q or %q", d.ContentType, ContentTypeJSON, ContentTypeData)
	}
	if d.Status != 0 && (d.Status < 400 || d.Status > 599) {
		return fmt.Errorf("status %d: want an HTTP error status (400-599)", d.Status)
	}
	if d.ReportStatus != 0 && (d.ReportStatus < 200 || d.ReportStatus > 599) {
		return fmt.Errorf("report-status %d: want an HTTP status", d.ReportStatus)
	}
	if d.Raw != nil && d.Raw.Status != 0 && (d.Raw.Status < 100 || d.Raw.Status > 599) {
		return fmt.Errorf("raw status %d: want an HTTP status", d.Raw.Status)
	}
	answersConveyedInfo := d.Status == 0 && d.Raw == nil
	switch {
	case d.Onboarding != nil && len(d.Redirect) > 0:
		return errors.New("both onboarding and redirect are set: conveyed information is one or the other")
	case d.Onboarding == nil && len(d.Redirect) == 0 && answersConveyedInfo:
		return errors.New("neither onboarding nor redirect is set")
	}
	if d.Onboarding != nil {
		if err := d.Onboarding.validate(); err != nil {
			return fmt.Errorf("onboarding: %w", err)
		}
	}
	if d.Signed != nil {
		if err := d.Signed.validate(); err != nil {
			return fmt.Errorf("signed: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, r := range d.Redirect {
		if r.Address == "" {
			return fmt.Errorf("redirect[%d]: empty address", i)
		}
		// bootstrap-server is a YANG list keyed by address.
		if seen[r.Address] {
			return fmt.Errorf("redirect[%d]: address %q appears twice", i, r.Address)
		}
		seen[r.Address] = true
		if r.Port < 0 || r.Port > 65535 {
			return fmt.Errorf("redirect[%d]: port %d out of range", i, r.Port)
		}
		if r.TrustAnchor != "" && len(r.TrustAnchorCerts) > 0 {
			return fmt.Errorf("redirect[%d]: both trust-anchor and TrustAnchorCerts are set", i)
		}
	}
	return nil
}

func (o *Onboarding) validate() error {
	both := func(name, path string, data []byte) error {
		if path != "" && data != nil {
			return fmt.Errorf("%s is given both as a file and in memory", name)
		}
		return nil
	}
	if err := errors.Join(
		both("pre-configuration-script", o.PreConfigurationScript, o.PreConfigurationScriptData),
		both("configuration", o.Configuration, o.ConfigurationData),
		both("post-configuration-script", o.PostConfigurationScript, o.PostConfigurationScriptData),
	); err != nil {
		return err
	}
	// YANG: configuration-handling is mandatory when configuration is
	// present and only allowed then.
	hasConfig := o.Configuration != "" || o.ConfigurationData != nil
	switch o.ConfigurationHandling {
	case "merge", "replace":
		if !hasConfig {
			return errors.New("configuration-handling is set without a configuration")
		}
	case "":
		if hasConfig {
			return errors.New("configuration is set without configuration-handling (merge or replace)")
		}
	default:
		return fmt.Errorf("configuration-handling %q: want merge or replace", o.ConfigurationHandling)
	}
	if b := o.BootImage; b != nil {
		if b.Image != "" && b.ImageData != nil {
			return errors.New("boot-image: image is given both as a file and in memory")
		}
		if b.SHA256 != "" {
			if _, err := parseHex(b.SHA256); err != nil {
				return fmt.Errorf("boot-image: sha-256: %w", err)
			}
		}
		serves := b.Image != "" || b.ImageData != nil
		for _, u := range b.DownloadURIs {
			if strings.Contains(u, ImagePlaceholder) && !serves {
				return fmt.Errorf("boot-image: download-uri %q uses %s but no image is served", u, ImagePlaceholder)
			}
		}
	}
	return nil
}

// parseHex accepts "ab:cd:..." or "abcd...".
func parseHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("empty hash")
	}
	return b, nil
}

// colonHex is the yang:hex-string encoding: lowercase, colon-separated.
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ":")
}
