package conveyed

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespace is the XML namespace of ietf-sztp-conveyed-info.
const Namespace = "urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"

// xml mirrors of the YANG nodes (RFC 7950 XML encoding).
type xmlRedirect struct {
	BootstrapServer []struct {
		Address     string  `xml:"address"`
		Port        *string `xml:"port"`
		TrustAnchor *string `xml:"trust-anchor"`
	} `xml:"bootstrap-server"`
}

type xmlOnboarding struct {
	BootImage *struct {
		OSName            string   `xml:"os-name"`
		OSVersion         string   `xml:"os-version"`
		DownloadURI       []string `xml:"download-uri"`
		ImageVerification []struct {
			HashAlgorithm string `xml:"hash-algorithm"`
			HashValue     string `xml:"hash-value"`
		} `xml:"image-verification"`
	} `xml:"boot-image"`
	ConfigurationHandling   string  `xml:"configuration-handling"`
	PreConfigurationScript  *string `xml:"pre-configuration-script"`
	Configuration           *string `xml:"configuration"`
	PostConfigurationScript *string `xml:"post-configuration-script"`
}

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
			var w xmlRedirect
			if err := dec.DecodeElement(&w, &start); err != nil {
				return nil, fmt.Errorf("decoding redirect-information XML: %w", err)
			}
			if err := trailingXML(dec); err != nil {
				return nil, err
			}
			return fromXMLRedirect(w)
		case "onboarding-information":
			var w xmlOnboarding
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

// The XML forms are converted to the JSON wire structs so one set of YANG
// checks serves both encodings.
func fromXMLRedirect(w xmlRedirect) (*Information, error) {
	var jw wireRedirect
	for _, s := range w.BootstrapServer {
		e := struct {
			Address     string          `json:"address"`
			Port        json.RawMessage `json:"port"`
			TrustAnchor *string         `json:"trust-anchor"`
		}{Address: strings.TrimSpace(s.Address), TrustAnchor: s.TrustAnchor}
		if s.Port != nil {
			e.Port = json.RawMessage(`"` + strings.TrimSpace(*s.Port) + `"`)
		}
		jw.BootstrapServer = append(jw.BootstrapServer, e)
	}
	raw, _ := json.Marshal(jw)
	r, err := parseRedirect(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding redirect-information: %w", err)
	}
	return &Information{Redirect: r}, nil
}

func fromXMLOnboarding(w xmlOnboarding) (*Information, error) {
	var jw wireOnboarding
	jw.ConfigurationHandling = strings.TrimSpace(w.ConfigurationHandling)
	jw.PreConfigurationScript, jw.Configuration, jw.PostConfigurationScript = w.PreConfigurationScript, w.Configuration, w.PostConfigurationScript
	if b := w.BootImage; b != nil {
		jw.BootImage = &struct {
			OSName            string   `json:"os-name"`
			OSVersion         string   `json:"os-version"`
			DownloadURI       []string `json:"download-uri"`
			ImageVerification []struct {
				HashAlgorithm string `json:"hash-algorithm"`
				HashValue     string `json:"hash-value"`
			} `json:"image-verification"`
		}{OSName: strings.TrimSpace(b.OSName), OSVersion: strings.TrimSpace(b.OSVersion)}
		for _, u := range b.DownloadURI {
			jw.BootImage.DownloadURI = append(jw.BootImage.DownloadURI, strings.TrimSpace(u))
		}
		for _, iv := range b.ImageVerification {
			// An identityref in XML carries a namespace prefix of the
			// document's choosing; the identity name is what matters.
			alg := strings.TrimSpace(iv.HashAlgorithm)
			if _, name, ok := strings.Cut(alg, ":"); ok {
				alg = module + ":" + name
			}
			jw.BootImage.ImageVerification = append(jw.BootImage.ImageVerification, struct {
				HashAlgorithm string `json:"hash-algorithm"`
				HashValue     string `json:"hash-value"`
			}{alg, strings.TrimSpace(iv.HashValue)})
		}
	}
	raw, _ := json.Marshal(jw)
	o, err := parseOnboarding(raw)
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
