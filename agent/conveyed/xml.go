package conveyed

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespace is the XML namespace of ietf-sztp-conveyed-info.
const Namespace = "urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"

// ParseXML decodes conveyed information in its XML encoding: a root element
// redirect-information or onboarding-information in the module's namespace
// (a <conveyed-information> wrapper, seen in vendor documentation, is
// tolerated). The result is checked by the same rules as ParseJSON.
func ParseXML(data []byte) (*Information, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("decoding conveyed information XML: no root element")
			}
			return nil, fmt.Errorf("decoding conveyed information XML: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Local == "conveyed-information" {
			continue // descend into the wrapper
		}
		if start.Name.Space != Namespace {
			return nil, fmt.Errorf("decoding conveyed information XML: root element %q is not in namespace %s", start.Name.Local, Namespace)
		}
		switch start.Name.Local {
		case "redirect-information":
			var w wireRedirect
			if err := dec.DecodeElement(&w, &start); err != nil {
				return nil, fmt.Errorf("decoding redirect-information XML: %w", err)
			}
			if err := trailingXML(dec); err != nil {
				return nil, err
			}
			return fromXMLRedirect(w)
		case "onboarding-information":
			var w wireOnboarding
			if err := dec.DecodeElement(&w, &start); err != nil {
				return nil, fmt.Errorf("decoding onboarding-information XML: %w", err)
			}
			if err := trailingXML(dec); err != nil {
				return nil, err
			}
			return fromXMLOnboarding(w)
		}
		return nil, fmt.Errorf("%w: root element %q", ErrUnknownType, start.Name.Local)
	}
}

// trailingXML allows only the closing wrapper, whitespace and comments after the root.
func trailingXML(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decoding conveyed information XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return fmt.Errorf("decoding conveyed information XML: unexpected element %q after the root", t.Name.Local)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("decoding conveyed information XML: text after the root element")
			}
		}
	}
}

// XML text nodes keep the document's indentation, and an identityref
// carries a namespace prefix of the document's choosing; both are
// normalised before the checks ParseJSON applies.
func fromXMLRedirect(w wireRedirect) (*Information, error) {
	for i := range w.BootstrapServer {
		s := &w.BootstrapServer[i]
		s.Address = strings.TrimSpace(s.Address)
		if s.Port != nil {
			p := wirePort(strings.TrimSpace(string(*s.Port)))
			s.Port = &p
		}
	}
	r, err := redirectFromWire(w)
	if err != nil {
		return nil, fmt.Errorf("decoding redirect-information: %w", err)
	}
	return &Information{Redirect: r}, nil
}

func fromXMLOnboarding(w wireOnboarding) (*Information, error) {
	w.ConfigurationHandling = strings.TrimSpace(w.ConfigurationHandling)
	if b := w.BootImage; b != nil {
		b.OSName, b.OSVersion = strings.TrimSpace(b.OSName), strings.TrimSpace(b.OSVersion)
		for i := range b.DownloadURI {
			b.DownloadURI[i] = strings.TrimSpace(b.DownloadURI[i])
		}
		for i := range b.ImageVerification {
			iv := &b.ImageVerification[i]
			iv.HashAlgorithm = strings.TrimSpace(iv.HashAlgorithm)
			if _, name, ok := strings.Cut(iv.HashAlgorithm, ":"); ok {
				iv.HashAlgorithm = module + ":" + name
			}
			iv.HashValue = strings.TrimSpace(iv.HashValue)
		}
	}
	o, err := onboardingFromWire(w)
	if err != nil {
		return nil, fmt.Errorf("decoding onboarding-information: %w", err)
	}
	return &Information{Onboarding: o}, nil
}

// Parse decodes conveyed information in either encoding, deciding by the
// first non-blank byte when the content type (id-data) does not say.
func Parse(data []byte, xmlEncoded bool) (*Information, error) {
	if xmlEncoded {
		return ParseXML(data)
	}
	return ParseJSON(data)
}
