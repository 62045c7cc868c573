package ownership

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Voucher is the content of an ownership voucher (RFC 8366 §5.3, tolerant of
// RFC 8366bis: unknown leaves are ignored).
type Voucher struct {
	CreatedOn        time.Time
	ExpiresOn        time.Time // zero when absent
	Assertion        string
	SerialNumber     string
	IDevIDIssuer     []byte // nil when absent
	PinnedDomainCert []byte // DER
	RevocationChecks *bool  // domain-cert-revocation-checks; nil when absent
	Nonce            []byte // nil when absent
	LastRenewalDate  time.Time
}

// wireVoucher holds the leaves as they appear on the wire; a pointer is nil
// when the leaf is absent (or JSON null).
type wireVoucher struct {
	CreatedOn        string
	ExpiresOn        string
	Assertion        string
	SerialNumber     string
	IDevIDIssuer     *string
	PinnedDomainCert string
	RevocationChecks json.RawMessage
	Nonce            *string
	LastRenewalDate  string
}

// ParseVoucher decodes the JSON content of a voucher artifact.
func ParseVoucher(data []byte) (*Voucher, error) {
	top, err := members(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), true)
	if err != nil {
		return nil, fmt.Errorf("decoding voucher JSON: %w", err)
	}
	raw, ok := top["ietf-voucher:voucher"]
	if !ok {
		return nil, errors.New(`decoding voucher JSON: no "ietf-voucher:voucher" member`)
	}
	leaves, err := members(raw, false)
	if err != nil {
		return nil, fmt.Errorf("decoding voucher JSON: %w", err)
	}
	// Leaves are looked up by their exact RFC 7951 names: encoding/json's
	// struct decoding would also match "Serial-Number" and friends.
	var w wireVoucher
	for _, l := range []struct {
		name string
		dst  any
	}{
		{"created-on", &w.CreatedOn}, {"expires-on", &w.ExpiresOn}, {"assertion", &w.Assertion},
		{"serial-number", &w.SerialNumber}, {"idevid-issuer", &w.IDevIDIssuer},
		{"pinned-domain-cert", &w.PinnedDomainCert}, {"domain-cert-revocation-checks", &w.RevocationChecks},
		{"nonce", &w.Nonce}, {"last-renewal-date", &w.LastRenewalDate},
	} {
		if v, ok := leaves[l.name]; ok {
			if err := json.Unmarshal(v, l.dst); err != nil {
				return nil, fmt.Errorf("decoding voucher %s: %w", l.name, err)
			}
		}
	}
	v := &Voucher{Assertion: w.Assertion, SerialNumber: w.SerialNumber}
	if w.CreatedOn == "" {
		return nil, errors.New("voucher has no created-on")
	}
	if v.CreatedOn, err = parseTime("created-on", w.CreatedOn); err != nil {
		return nil, err
	}
	if w.ExpiresOn != "" {
		if v.ExpiresOn, err = parseTime("expires-on", w.ExpiresOn); err != nil {
			return nil, err
		}
	}
	if w.LastRenewalDate != "" {
		if v.LastRenewalDate, err = parseTime("last-renewal-date", w.LastRenewalDate); err != nil {
			return nil, err
		}
	}
	if v.Assertion == "" {
		return nil, errors.New("voucher has no assertion")
	}
	if v.SerialNumber == "" {
		return nil, errors.New("voucher has no serial-number")
	}
	if w.PinnedDomainCert == "" {
		return nil, errors.New("voucher has no pinned-domain-cert")
	}
	if v.PinnedDomainCert, err = decodeBinary("pinned-domain-cert", w.PinnedDomainCert); err != nil {
		return nil, err
	}
	if w.IDevIDIssuer != nil {
		if v.IDevIDIssuer, err = decodeBinary("idevid-issuer", *w.IDevIDIssuer); err != nil {
			return nil, err
		}
	}
	if w.Nonce != nil {
		if v.Nonce, err = decodeBinary("nonce", *w.Nonce); err != nil {
			return nil, err
		}
		if len(v.Nonce) < 8 || len(v.Nonce) > 32 {
			return nil, fmt.Errorf("voucher nonce is %d bytes, RFC 8366 allows 8 to 32", len(v.Nonce))
		}
		if !v.ExpiresOn.IsZero() {
			return nil, errors.New("voucher has both nonce and expires-on (RFC 8366 forbids it)")
		}
	}
	if len(w.RevocationChecks) > 0 && string(w.RevocationChecks) != "null" {
		// RFC 8366's own example writes the boolean as a string; accept both.
		switch strings.Trim(string(w.RevocationChecks), `"`) {
		case "true":
			t := true
			v.RevocationChecks = &t
		case "false":
			f := false
			v.RevocationChecks = &f
		default:
			return nil, fmt.Errorf("voucher domain-cert-revocation-checks %s is not a boolean", w.RevocationChecks)
		}
	}
	return v, nil
}

// members decodes one JSON object into its members by exact name and
// refuses duplicate names: encoding/json would silently keep the last of
// two "serial-number" members, so one signed voucher could mean different
// things to the MASA's tooling and to this device. top: the object is a
// whole document, and nothing but white space may follow it.
func members(data []byte, top bool) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, found %v", tok)
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("expected a member name, found %v", tok)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		m[name] = val
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	// dec.More() is false before a stray "}" or "]", so it cannot tell
	// that the document has trailing data; only io.EOF can.
	if _, err := dec.Token(); top && err != io.EOF {
		return nil, errors.New("trailing data after the document")
	}
	return m, nil
}

func parseTime(leaf, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("voucher %s %q is not a date-and-time: %w", leaf, s, err)
	}
	return t, nil
}

func decodeBinary(leaf, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("voucher %s is not valid base64: %w", leaf, err)
	}
	return b, nil
}
