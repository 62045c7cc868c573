package ownership

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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

type wireVoucher struct {
	CreatedOn        string          `json:"created-on"`
	ExpiresOn        string          `json:"expires-on"`
	Assertion        string          `json:"assertion"`
	SerialNumber     string          `json:"serial-number"`
	IDevIDIssuer     *string         `json:"idevid-issuer"`
	PinnedDomainCert string          `json:"pinned-domain-cert"`
	RevocationChecks json.RawMessage `json:"domain-cert-revocation-checks"`
	Nonce            *string         `json:"nonce"`
	LastRenewalDate  string          `json:"last-renewal-date"`
}

// ParseVoucher decodes the JSON content of a voucher artifact.
func ParseVoucher(data []byte) (*Voucher, error) {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("decoding voucher JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding voucher JSON: trailing data after the document")
	}
	raw, ok := top["ietf-voucher:voucher"]
	if !ok {
		return nil, errors.New(`decoding voucher JSON: no "ietf-voucher:voucher" member`)
	}
	var w wireVoucher
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("decoding voucher JSON: %w", err)
	}
	v := &Voucher{Assertion: w.Assertion, SerialNumber: w.SerialNumber}
	var err error
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
