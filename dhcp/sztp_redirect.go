// Package dhcp holds the DHCP side of RFC 8572 bootstrapping: the codec for
// the SZTP redirect option (RFC 8572 §8.3), which a DHCP server uses to
// point a device at its bootstrap servers; an active client that asks for
// it (Client.DiscoverV4 / DiscoverV6, options 143 and 136); and readers for
// the lease files of a DHCP client already running on the device
// (ReadLeaseFile). Everything learned this way is untrusted redirect
// information (RFC 8572 §4.3).
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Option codes assigned by RFC 8572 §8.1 and §8.2. Both options carry the
// same payload encoding.
const (
	OptionV4SZTPRedirect = 143 // OPTION_V4_SZTP_REDIRECT
	OptionV6SZTPRedirect = 136 // OPTION_V6_SZTP_REDIRECT
)

// Forms reported by ParseSZTPRedirectCompat.
const (
	FormRFC8572   = "rfc8572"
	FormPlainText = "plain-text"
)

var (
	// ErrMalformedOption means the payload does not follow the option's
	// framing, so none of it can be trusted.
	ErrMalformedOption = errors.New("malformed sztp-redirect option")
	// ErrNoValidURI means the option was well framed but every entry was
	// dropped (or there were none), so the option is to be discarded.
	ErrNoValidURI = errors.New("sztp-redirect option holds no valid bootstrap server URI")
	// ErrInvalidURI is wrapped by every reason a URI is rejected.
	ErrInvalidURI = errors.New("invalid bootstrap server URI")
)

const (
	uriLengthSize = 2      // uri-length is a 16-bit field
	maxURILength  = 0xffff // largest value that field can hold
	httpsPrefix   = "https://"
	maxHostname   = 253 // RFC 1035 limit for a name in text form, no trailing dot
	maxLabel      = 63
	maxQuoted     = 80 // keeps error messages about hostile input short
)

// ParseSZTPRedirect decodes the payload of an SZTP redirect option; for
// DHCPv4 the caller must already have joined split instances (RFC 3396).
//
// The payload is a sequence of entries, each a 16-bit big-endian
// uri-length followed by that many octets of URI. uris holds the valid
// entries, normalised and in order; dropped explains each entry that was
// skipped because its URI was not of the form
// https://<ip-address-or-hostname>[:<port>].
//
// err is non-nil, and uris nil, when the option must be discarded: an
// empty payload, a zero uri-length or an entry running past the end
// (wrapping ErrMalformedOption, with the offending offset), or no valid
// entry at all (wrapping ErrNoValidURI).
func ParseSZTPRedirect(payload []byte) (uris []string, dropped []error, err error) {
	if len(payload) == 0 {
		return nil, nil, fmt.Errorf("parsing sztp-redirect option: %w: empty payload", ErrMalformedOption)
	}
	for offset := 0; offset < len(payload); {
		remaining := len(payload) - offset
		if remaining < uriLengthSize {
			return nil, dropped, fmt.Errorf("parsing sztp-redirect option: %w: truncated uri-length at offset %d (%d octet left, need %d)",
				ErrMalformedOption, offset, remaining, uriLengthSize)
		}
		length := int(binary.BigEndian.Uint16(payload[offset:]))
		if length == 0 {
			// A zero length would make an entry with no URI; the RFC's
			// grammar has none, and accepting it would let padding pass.
			return nil, dropped, fmt.Errorf("parsing sztp-redirect option: %w: zero uri-length at offset %d",
				ErrMalformedOption, offset)
		}
		if length > remaining-uriLengthSize {
			return nil, dropped, fmt.Errorf("parsing sztp-redirect option: %w: uri-length %d at offset %d runs past the end (%d octets follow)",
				ErrMalformedOption, length, offset, remaining-uriLengthSize)
		}
		raw := string(payload[offset+uriLengthSize : offset+uriLengthSize+length])
		if uri, err := ValidateBootstrapURI(raw); err != nil {
			dropped = append(dropped, fmt.Errorf("dropping entry at offset %d: %w", offset, err))
		} else {
			uris = append(uris, uri)
		}
		offset += uriLengthSize + length
	}
	if len(uris) == 0 {
		return nil, dropped, fmt.Errorf("parsing sztp-redirect option: %w (%d entries dropped)", ErrNoValidURI, len(dropped))
	}
	return uris, dropped, nil
}

// ParseSZTPRedirectCompat is ParseSZTPRedirect that also accepts what some
// lab DHCP servers send instead of the RFC encoding: the URL as plain text
// (several may be separated by blanks), possibly with a path, which is
// stripped since RFC 8572 fixes the path itself. form says which encoding
// was seen: FormRFC8572 or FormPlainText.
func ParseSZTPRedirectCompat(payload []byte) (uris []string, form string, dropped []error, err error) {
	if !looksLikePlainTextURL(payload) {
		uris, dropped, err = ParseSZTPRedirect(payload)
		return uris, FormRFC8572, dropped, err
	}

	// Lab servers often configure the value as a C string or a line of
	// text, leaving a NUL or newline behind.
	text := strings.TrimRight(string(payload), "\x00")
	for _, field := range strings.Fields(text) {
		uri, err := ValidateBootstrapURI(stripPathQueryFragment(field))
		if err != nil {
			dropped = append(dropped, fmt.Errorf("dropping plain-text URL %s: %w", quote(field), err))
			continue
		}
		uris = append(uris, uri)
	}
	if len(uris) == 0 {
		return nil, FormPlainText, dropped, fmt.Errorf("parsing plain-text sztp-redirect option: %w (%d entries dropped)", ErrNoValidURI, len(dropped))
	}
	return uris, FormPlainText, dropped, nil
}

// looksLikePlainTextURL tells the plain-text form from the RFC encoding.
// The two cannot be confused in practice: an RFC payload starting with "h"
// would announce a URI of at least 0x6800 octets, far longer than any valid
// one. "http://" is recognised too so that it is dropped with a clear
// reason rather than reported as bad framing.
func looksLikePlainTextURL(payload []byte) bool {
	for _, prefix := range []string{httpsPrefix, "http://"} {
		if len(payload) >= len(prefix) && strings.EqualFold(string(payload[:len(prefix)]), prefix) {
			return true
		}
	}
	return false
}

// stripPathQueryFragment keeps scheme and authority of a URL.
func stripPathQueryFragment(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	return scheme + "://" + rest
}

// EncodeSZTPRedirect encodes uris, each validated and normalised like
// ValidateBootstrapURI does, into an SZTP redirect option payload. The
// result may exceed 255 octets; splitting it across DHCPv4 options
// (RFC 3396) is the caller's business.
func EncodeSZTPRedirect(uris []string) ([]byte, error) {
	if len(uris) == 0 {
		return nil, fmt.Errorf("encoding sztp-redirect option: %w: no URIs given", ErrNoValidURI)
	}
	var payload []byte
	for i, raw := range uris {
		uri, err := ValidateBootstrapURI(raw)
		if err != nil {
			return nil, fmt.Errorf("encoding sztp-redirect option: URI %d: %w", i, err)
		}
		// Cannot trigger for a validated URI (hostnames are short), but
		// the field width is a hard limit worth stating.
		if len(uri) > maxURILength {
			return nil, fmt.Errorf("encoding sztp-redirect option: URI %d: %w: %d octets exceed the 16-bit length field", i, ErrInvalidURI, len(uri))
		}
		payload = binary.BigEndian.AppendUint16(payload, uint16(len(uri)))
		payload = append(payload, uri...)
	}
	return payload, nil
}

// ValidateBootstrapURI checks that uri is exactly
// https://<ip-address-or-hostname>[:<port>] as RFC 8572 §8.3 requires (no
// userinfo, path, query or fragment; IPv6 literals in brackets; port
// 1..65535) and returns it normalised: scheme and host in lower case, IPv6
// in canonical form, port without leading zeros. Errors wrap ErrInvalidURI.
func ValidateBootstrapURI(uri string) (string, error) {
	invalid := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w %s: %s", ErrInvalidURI, quote(uri), fmt.Sprintf(format, args...))
	}

	if len(uri) < len(httpsPrefix) || !strings.EqualFold(uri[:len(httpsPrefix)], httpsPrefix) {
		return invalid("scheme must be https")
	}
	authority := uri[len(httpsPrefix):]
	if i := strings.IndexAny(authority, "/?#@"); i >= 0 {
		switch authority[i] {
		case '/':
			return invalid("must not have a path")
		case '?':
			return invalid("must not have a query")
		case '#':
			return invalid("must not have a fragment")
		default:
			return invalid("must not have userinfo")
		}
	}
	if authority == "" {
		return invalid("missing host")
	}

	host, port, hasPort, err := splitHostPort(authority)
	if err != nil {
		return invalid("%v", err)
	}

	var normalised strings.Builder
	normalised.WriteString(httpsPrefix)
	if strings.HasPrefix(authority, "[") {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return invalid("bracketed host %s is not an IPv6 address", quote(host))
		}
		if addr.Zone() != "" {
			// A zone only means something on the sending host's links and
			// would need RFC 6874 escaping; a redirect must not rely on it.
			return invalid("IPv6 address must not carry a zone")
		}
		normalised.WriteString("[" + addr.String() + "]")
	} else if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		normalised.WriteString(addr.String())
	} else {
		if err := checkHostname(host); err != nil {
			return invalid("%v", err)
		}
		normalised.WriteString(strings.ToLower(host))
	}

	if hasPort {
		number, err := parsePort(port)
		if err != nil {
			return invalid("%v", err)
		}
		normalised.WriteString(":" + strconv.Itoa(number))
	}
	return normalised.String(), nil
}

// splitHostPort separates the host from an optional port, leaving the
// brackets of an IPv6 literal off.
func splitHostPort(authority string) (host, port string, hasPort bool, err error) {
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", false, errors.New("unterminated IPv6 literal")
		}
		host, rest := authority[1:end], authority[end+1:]
		if rest == "" {
			return host, "", false, nil
		}
		if rest[0] != ':' {
			return "", "", false, fmt.Errorf("unexpected %s after IPv6 literal", quote(rest))
		}
		return host, rest[1:], true, nil
	}
	host, port, hasPort = strings.Cut(authority, ":")
	if strings.Contains(port, ":") {
		return "", "", false, errors.New("IPv6 address must be in brackets")
	}
	if host == "" {
		return "", "", false, errors.New("missing host")
	}
	return host, port, hasPort, nil
}

func parsePort(port string) (int, error) {
	if port == "" {
		return 0, errors.New("empty port")
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return 0, fmt.Errorf("port %s is not a decimal number", quote(port))
		}
	}
	number, err := strconv.ParseUint(port, 10, 16)
	if err != nil || number == 0 {
		return 0, fmt.Errorf("port %s is outside 1..65535", quote(port))
	}
	return int(number), nil
}

// checkHostname accepts DNS host names (RFC 1123 letters, digits and
// hyphens). A name whose last label is all digits is rejected because it
// would read as a malformed IPv4 address (RFC 3986 §3.2.2).
func checkHostname(host string) error {
	if len(host) > maxHostname {
		return fmt.Errorf("hostname longer than %d octets", maxHostname)
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if label == "" {
			return fmt.Errorf("hostname %s has an empty label", quote(host))
		}
		if len(label) > maxLabel {
			return fmt.Errorf("hostname label longer than %d octets", maxLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname label %s starts or ends with a hyphen", quote(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%s is neither an IP address nor a valid hostname", quote(host))
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%s is neither an IPv4 address nor a valid hostname", quote(host))
	}
	return nil
}

// quote renders untrusted text for an error message, bounded in length.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}
