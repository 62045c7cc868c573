package dhcp

// Passive discovery: read the SZTP redirect option from the lease of a DHCP
// client that already runs on the device, instead of running our own
// exchange (operators.md C10: use the running client's lease when there is
// one, the active client as the fallback).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrLeaseSyntax is wrapped by every lease-file parse error.
	ErrLeaseSyntax = errors.New("lease file syntax error")
	// ErrUnknownLeaseFormat means ReadLeaseFile recognised neither format.
	ErrUnknownLeaseFormat = errors.New("unrecognised lease file format")
)

const (
	// maxLeaseFile bounds what is read: dhclient appends a declaration per
	// renewal and rewrites the file now and then, so real files stay far
	// below this.
	maxLeaseFile = 4 << 20
	// maxNesting bounds block depth (lease6 > ia-na > iaaddr is 3).
	maxNesting = 8
)

// ReadLeaseFile reads a DHCP client lease file, telling the format from
// its content: an ISC dhclient lease database (`lease {`/`lease6 {`
// declarations, also what NetworkManager writes when it runs dhclient) or
// a NetworkManager internal-client / systemd-networkd style KEY=value file.
// Each lease's Source is "lease-file:<path>". For NetworkManager files
// named internal-<uuid>-<iface>.lease the interface comes from the name.
func ReadLeaseFile(path string) ([]*Lease, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening lease file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLeaseFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading lease file %s: %w", path, err)
	}
	if len(data) > maxLeaseFile {
		return nil, fmt.Errorf("reading lease file %s: larger than %d bytes", path, maxLeaseFile)
	}
	source := SourceLeaseFilePrefix + path

	var leases []*Lease
	switch sniffLeaseFormat(data) {
	case formatDhclient:
		leases, err = ParseDhclientLeases(bytes.NewReader(data))
	case formatKeyValue:
		var l *Lease
		l, err = ParseNetworkManagerLease(bytes.NewReader(data))
		if l != nil {
			if l.Interface == "" {
				l.Interface = nmLeaseInterface(filepath.Base(path))
			}
			leases = []*Lease{l}
		}
	default:
		return nil, fmt.Errorf("reading lease file %s: %w", path, ErrUnknownLeaseFormat)
	}
	for _, l := range leases {
		l.Source = source
	}
	if err != nil {
		return leases, fmt.Errorf("reading lease file %s: %w", path, err)
	}
	return leases, nil
}

type leaseFormat int

const (
	formatUnknown leaseFormat = iota
	formatDhclient
	formatKeyValue
)

// sniffLeaseFormat looks for a line that opens a dhclient declaration
// ("lease {" or "lease6 {") or a KEY=value line. Plain string code rather
// than regexp: the regexp engine alone adds ~100 KB to the static binary.
func sniffLeaseFormat(data []byte) leaseFormat {
	keyValue := false
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		for _, kw := range []string{"lease6", "lease"} {
			if rest, ok := strings.CutPrefix(t, kw); ok && strings.HasPrefix(strings.TrimSpace(rest), "{") {
				return formatDhclient
			}
		}
		if !keyValue && isKeyValueLine(line) {
			keyValue = true
		}
	}
	if keyValue {
		return formatKeyValue
	}
	return formatUnknown
}

// isKeyValueLine: [A-Z][A-Z0-9_]*= at the start of the line.
func isKeyValueLine(line string) bool {
	key, _, ok := strings.Cut(line, "=")
	if !ok || key == "" || key[0] < 'A' || key[0] > 'Z' {
		return false
	}
	for _, c := range key {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// nmLeaseInterface returns <iface> of NetworkManager's internal-client lease
// file names, internal-<connection uuid>-<iface>.lease, or "".
func nmLeaseInterface(base string) string {
	rest, ok := strings.CutPrefix(base, "internal-")
	if !ok {
		return ""
	}
	rest, ok = strings.CutSuffix(rest, ".lease")
	if !ok || len(rest) < 38 || rest[36] != '-' {
		return ""
	}
	for i, c := range rest[:36] {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return ""
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return ""
			}
		}
	}
	return rest[37:]
}

// ---------------------------------------------------------------------------
// ISC dhclient

// ParseDhclientLeases parses an ISC dhclient lease database
// (dhclient.leases(5), /var/lib/dhcp/dhclient*.leases, and NetworkManager's
// dhclient-<uuid>-<iface>.lease). The file is a log: dhclient appends a
// declaration per lease and renewal, so only the last lease per interface
// and family is returned, in the order the interfaces first appear.
//
// From `lease { ... }` (DHCPv4) it reads interface, fixed-address, and the
// options subnet-mask, routers, domain-name-servers, domain-name,
// domain-search, dhcp-server-identifier, dhcp-lease-time and the SZTP
// redirect option. From `lease6 { ... }` it reads interface, the first
// ia-na's iaaddr (as a /128, max-life as Lifetime) and dhcp6.name-servers,
// dhcp6.domain-search and the redirect option.
//
// The redirect option is recognised as `unknown-143` / `dhcp6.unknown-136`
// (what dhclient writes for codes it has no name for) or under any declared
// name containing "sztp" (e.g. `option sztp-redirect code 143 = string;` in
// dhclient.conf). dhclient prints the value as colon-separated hex
// (`0:16:68:...`, one or two digits per octet) unless every octet is
// printable, in which case it prints a quoted string with \ooo escapes;
// both are accepted. The payload is decoded with ParseSZTPRedirectCompat,
// so the mis-typed plain-text form is understood too and Form says which
// one was seen: callers that want the strict RFC behaviour reject
// FormPlainText.
//
// Source is "lease-file:" (ReadLeaseFile fills in the path). If the file
// ends inside a declaration (dhclient was interrupted mid-write), the
// complete leases before it are returned along with an error wrapping
// ErrLeaseSyntax.
func ParseDhclientLeases(r io.Reader) ([]*Lease, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLeaseFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading dhclient leases: %w", err)
	}
	if len(data) > maxLeaseFile {
		return nil, fmt.Errorf("reading dhclient leases: larger than %d bytes", maxLeaseFile)
	}
	toks, lexErr := lexDhclient(data)
	p := &stmtParser{toks: toks}
	stmts, parseErr := p.block(0)

	type key struct {
		family int
		iface  string
	}
	var order []key
	last := map[key]*Lease{}
	for _, s := range stmts {
		if len(s.words) != 1 || s.words[0].kind != tokWord || s.block == nil {
			continue
		}
		var l *Lease
		switch s.words[0].text {
		case "lease":
			l = dhclientLease4(s.block)
		case "lease6":
			l = dhclientLease6(s.block)
		default:
			continue
		}
		k := key{l.Family, l.Interface}
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = l
	}
	leases := make([]*Lease, 0, len(order))
	for _, k := range order {
		leases = append(leases, last[k])
	}
	if err := errors.Join(lexErr, parseErr); err != nil {
		return leases, fmt.Errorf("parsing dhclient leases: %w", err)
	}
	return leases, nil
}

func dhclientLease4(body []stmt) *Lease {
	l := &Lease{Family: 4, Source: SourceLeaseFilePrefix}
	var (
		ip   net.IP
		mask net.IPMask
	)
	for _, s := range body {
		if len(s.words) == 0 || s.block != nil {
			continue
		}
		switch s.words[0].text {
		case "interface":
			l.Interface = firstString(s.words[1:])
		case "fixed-address":
			if len(s.words) > 1 {
				ip = net.ParseIP(s.words[1].text).To4()
			}
		case "option":
			if len(s.words) < 2 {
				continue
			}
			name, vals := s.words[1].text, values(s.words[2:])
			switch {
			case name == "subnet-mask":
				if m := parseIPs(vals, 4); len(m) == 1 {
					mask = net.IPMask(m[0])
				}
			case name == "routers":
				if rs := parseIPs(vals, 4); len(rs) > 0 {
					l.Router = rs[0]
				}
			case name == "domain-name-servers":
				l.DNSServers = parseIPs(vals, 4)
			case name == "domain-name":
				// Searched first, like LeaseFromDHCPv4 does with option 15.
				l.DomainSearch = append(strings.Fields(strings.Join(texts(vals), " ")), l.DomainSearch...)
			case name == "domain-search":
				l.DomainSearch = append(l.DomainSearch, texts(vals)...)
			case name == "dhcp-server-identifier":
				if ids := parseIPs(vals, 4); len(ids) == 1 {
					l.ServerID = ids[0]
				}
			case name == "dhcp-lease-time":
				l.Lifetime = parseSeconds(vals)
			case name == "unknown-143" || isSZTPName(name):
				l.redirectFromTokens(name, vals)
			}
		}
	}
	if ip != nil && !ip.IsUnspecified() {
		if len(mask) != net.IPv4len || !isContiguous(mask) {
			mask = ip.DefaultMask()
		}
		l.Address = net.IPNet{IP: ip, Mask: mask}
	}
	l.DomainSearch = cleanDomains(l.DomainSearch)
	return l
}

func dhclientLease6(body []stmt) *Lease {
	l := &Lease{Family: 6, Source: SourceLeaseFilePrefix}
	for _, s := range body {
		if len(s.words) == 0 {
			continue
		}
		switch s.words[0].text {
		case "interface":
			l.Interface = firstString(s.words[1:])
		case "ia-na":
			if l.Address.IP != nil || s.block == nil {
				continue
			}
			for _, a := range s.block {
				if len(a.words) != 2 || a.words[0].text != "iaaddr" || a.block == nil {
					continue
				}
				ip := net.ParseIP(a.words[1].text)
				if ip == nil || ip.To4() != nil || ip.IsUnspecified() {
					continue
				}
				l.Address = net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
				for _, life := range a.block {
					if len(life.words) >= 2 && life.words[0].text == "max-life" {
						l.Lifetime = parseSeconds(life.words[1:])
					}
				}
				break
			}
		case "option":
			if len(s.words) < 2 || s.block != nil {
				continue
			}
			name, vals := s.words[1].text, values(s.words[2:])
			switch {
			case name == "dhcp6.name-servers":
				l.DNSServers = parseIPs(vals, 6)
			case name == "dhcp6.domain-search":
				l.DomainSearch = texts(vals)
			case name == "dhcp6.unknown-136" || isSZTPName(name):
				l.redirectFromTokens(name, vals)
			}
		}
	}
	l.DomainSearch = cleanDomains(l.DomainSearch)
	return l
}

func isSZTPName(name string) bool {
	return strings.Contains(strings.ToLower(name), "sztp")
}

// redirectFromTokens decodes the value of a redirect option as dhclient
// printed it: one colon-hex word or quoted string(s).
func (l *Lease) redirectFromTokens(name string, vals []token) {
	payload, err := optionBytes(vals)
	if err != nil {
		l.Form = ""
		l.BootstrapURIs = nil
		l.Dropped = append(l.Dropped, fmt.Errorf("decoding lease option %s: %w", name, err))
		return
	}
	l.Dropped = nil
	l.decodeRedirect(payload, true)
}

func optionBytes(vals []token) ([]byte, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: option without a value", ErrLeaseSyntax)
	}
	if vals[0].kind == tokString {
		// Several strings only arise from an `array of text` declaration;
		// join them as blank-separated plain-text URLs.
		parts := texts(vals)
		if len(parts) != len(vals) {
			return nil, fmt.Errorf("%w: mixed strings and words in option value", ErrLeaseSyntax)
		}
		return []byte(strings.Join(parts, " ")), nil
	}
	if len(vals) != 1 {
		return nil, fmt.Errorf("%w: expected one colon-hex value, got %d words", ErrLeaseSyntax, len(vals))
	}
	return parseColonHex(vals[0].text)
}

// parseColonHex decodes dhclient's hex rendering: octets separated by
// colons, each one or two hex digits ("0:16:68").
func parseColonHex(s string) ([]byte, error) {
	fields := strings.Split(s, ":")
	out := make([]byte, 0, len(fields))
	for _, f := range fields {
		if len(f) == 0 || len(f) > 2 {
			return nil, fmt.Errorf("%w: %s is not colon-separated hex", ErrLeaseSyntax, quote(s))
		}
		b, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not colon-separated hex", ErrLeaseSyntax, quote(s))
		}
		out = append(out, byte(b))
	}
	return out, nil
}

// values drops the commas between list elements.
func values(toks []token) []token {
	var out []token
	for _, t := range toks {
		if t.kind != tokComma {
			out = append(out, t)
		}
	}
	return out
}

func texts(toks []token) []string {
	var out []string
	for _, t := range toks {
		if t.kind == tokString || t.kind == tokWord {
			out = append(out, t.text)
		}
	}
	return out
}

func firstString(toks []token) string {
	for _, t := range toks {
		if t.kind == tokString || t.kind == tokWord {
			return t.text
		}
	}
	return ""
}

func parseIPs(toks []token, family int) []net.IP {
	var out []net.IP
	for _, t := range toks {
		for _, f := range strings.FieldsFunc(t.text, func(r rune) bool { return r == ',' || r == ' ' }) {
			ip := net.ParseIP(f)
			if ip == nil || (ip.To4() != nil) != (family == 4) {
				continue
			}
			if family == 4 {
				ip = ip.To4()
			}
			out = append(out, ip)
		}
	}
	return out
}

func parseSeconds(toks []token) time.Duration {
	if len(toks) == 0 {
		return 0
	}
	n, err := strconv.ParseUint(toks[0].text, 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// Lexer and statement parser for the dhclient syntax: words, quoted
// strings, and the punctuation { } ; , with # comments.

type tokKind byte

const (
	tokWord tokKind = iota + 1
	tokString
	tokOpen
	tokClose
	tokSemi
	tokComma
)

type token struct {
	kind tokKind
	text string
	line int
}

func lexDhclient(data []byte) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';' || c == ',':
			kind := map[byte]tokKind{'{': tokOpen, '}': tokClose, ';': tokSemi, ',': tokComma}[c]
			toks = append(toks, token{kind: kind, text: string(c), line: line})
			i++
		case c == '"':
			s, n, err := unquoteDhclient(data[i:])
			if err != nil {
				return toks, fmt.Errorf("%w: line %d: %v", ErrLeaseSyntax, line, err)
			}
			toks = append(toks, token{kind: tokString, text: s, line: line})
			line += bytes.Count(data[i:i+n], []byte{'\n'})
			i += n
		default:
			start := i
			for i < len(data) && !bytes.ContainsAny(data[i:i+1], " \t\r\n\f\v{};,\"#") {
				i++
			}
			toks = append(toks, token{kind: tokWord, text: string(data[start:i]), line: line})
		}
	}
	return toks, nil
}

// unquoteDhclient reads a quoted string starting at b[0] == '"', undoing
// the escapes ISC's printer and lexer use (\ooo octal, \xhh, \n \t \r \b,
// and a backslash before any other character), and returns the text and
// the number of input bytes consumed.
func unquoteDhclient(b []byte) (string, int, error) {
	var out []byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch c {
		case '"':
			return string(out), i + 1, nil
		case '\\':
			if i+1 >= len(b) {
				return "", 0, errors.New("unterminated escape")
			}
			i++
			switch e := b[i]; {
			case e >= '0' && e <= '7':
				v, n := 0, 0
				for n < 3 && i+n < len(b) && b[i+n] >= '0' && b[i+n] <= '7' {
					v = v*8 + int(b[i+n]-'0')
					n++
				}
				if v > 0xff {
					return "", 0, fmt.Errorf("octal escape \\%s out of range", b[i:i+n])
				}
				out = append(out, byte(v))
				i += n - 1
			case e == 'x':
				v, n := 0, 0
				for n < 2 && i+1+n < len(b) && isHex(b[i+1+n]) {
					d, _ := strconv.ParseUint(string(b[i+1+n]), 16, 8)
					v = v*16 + int(d)
					n++
				}
				if n == 0 {
					return "", 0, errors.New(`\x without hex digits`)
				}
				out = append(out, byte(v))
				i += n
			case e == 'n':
				out = append(out, '\n')
			case e == 't':
				out = append(out, '\t')
			case e == 'r':
				out = append(out, '\r')
			case e == 'b':
				out = append(out, '\b')
			default:
				out = append(out, e)
			}
		default:
			out = append(out, c)
		}
	}
	return "", 0, errors.New("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stmt is one statement: its words up to ';' or '{', and the nested
// statements when it opened a block.
type stmt struct {
	words []token
	block []stmt // nil when the statement ended with ';'
}

type stmtParser struct {
	toks []token
	pos  int
}

// block parses statements until the closing brace (depth > 0) or the end
// of input (depth 0). On error it returns what was complete so far.
func (p *stmtParser) block(depth int) ([]stmt, error) {
	var out []stmt
	var words []token
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		p.pos++
		switch t.kind {
		case tokSemi:
			if len(words) > 0 {
				out = append(out, stmt{words: words})
			}
			words = nil
		case tokOpen:
			if depth+1 > maxNesting {
				return out, fmt.Errorf("%w: line %d: blocks nested deeper than %d", ErrLeaseSyntax, t.line, maxNesting)
			}
			inner, err := p.block(depth + 1)
			if err != nil {
				return out, err
			}
			if inner == nil {
				inner = []stmt{}
			}
			out = append(out, stmt{words: words, block: inner})
			words = nil
		case tokClose:
			if depth == 0 {
				return out, fmt.Errorf("%w: line %d: unbalanced '}'", ErrLeaseSyntax, t.line)
			}
			if len(words) > 0 {
				// dhclient always ends statements with ';'; a missing one
				// before '}' is tolerated as the statement's end.
				out = append(out, stmt{words: words})
			}
			return out, nil
		default:
			words = append(words, t)
		}
	}
	if depth > 0 {
		return out, fmt.Errorf("%w: file ends inside a block (truncated write?)", ErrLeaseSyntax)
	}
	if len(words) > 0 {
		return out, fmt.Errorf("%w: file ends inside a statement", ErrLeaseSyntax)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// NetworkManager

// ParseNetworkManagerLease parses the KEY=value lease file of
// NetworkManager's internal DHCP client,
// /var/lib/NetworkManager/internal-<uuid>-<iface>.lease.
//
// What NetworkManager really writes: since the nettools (n-dhcp4) backend
// became the internal client (NM 1.20+), the file holds a comment and one
// line, `ADDRESS=<leased IPv4 address>` (nm-dhcp-nettools.c lease_save; it
// is only used to ask for the same address again). The older
// systemd-based internal client, and systemd-networkd up to v255, wrote
// the sd-dhcp format at the same place: ADDRESS, NETMASK, ROUTER,
// SERVER_ADDRESS, DNS, DOMAINNAME, DOMAIN_SEARCH_LIST, LIFETIME and
// OPTION_<code>=<hex> — but only for the private codes 224..254. Neither
// records option 143, so for stock NetworkManager this yields the address
// (and, in the old format, DNS and search domains) but no bootstrap URIs:
// the agent must then fall back to its own DHCP exchange. NetworkManager
// configured to run dhclient writes dhclient-<uuid>-<iface>.lease in ISC
// format instead, which ParseDhclientLeases reads with option 143.
//
// Parsed keys: ADDRESS (required), NETMASK, ROUTER (first of a blank
// separated list), SERVER_ADDRESS, DNS, DOMAINNAME, DOMAIN_SEARCH_LIST,
// LIFETIME (seconds), and OPTION_143=<hex> in the sd-dhcp OPTION_<code>
// convention, for a client patched or configured to keep it (decoded with
// ParseSZTPRedirectCompat; Form tells the form). Unknown keys are ignored;
// a line that is not KEY=value is an error. The lease file does not name
// the interface; ReadLeaseFile takes it from the file name.
func ParseNetworkManagerLease(r io.Reader) (*Lease, error) {
	l := &Lease{Family: 4, Source: SourceLeaseFilePrefix}
	var (
		ip   net.IP
		mask net.IPMask
	)
	sc := bufio.NewScanner(io.LimitReader(r, maxLeaseFile))
	sc.Buffer(make([]byte, 0, 4096), maxLeaseFile)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("parsing NetworkManager lease: %w: line %d is not KEY=value", ErrLeaseSyntax, lineNo)
		}
		value = strings.Trim(value, `"`)
		switch key {
		case "ADDRESS":
			ip = net.ParseIP(value).To4()
			if ip == nil {
				return nil, fmt.Errorf("parsing NetworkManager lease: %w: line %d: ADDRESS %s is not an IPv4 address", ErrLeaseSyntax, lineNo, quote(value))
			}
		case "NETMASK":
			if m := net.ParseIP(value).To4(); m != nil {
				mask = net.IPMask(m)
			}
		case "ROUTER":
			if rs := parseIPList(value); len(rs) > 0 {
				l.Router = rs[0]
			}
		case "SERVER_ADDRESS":
			if s := net.ParseIP(value).To4(); s != nil {
				l.ServerID = s
			}
		case "DNS":
			l.DNSServers = parseIPList(value)
		case "DOMAINNAME":
			l.DomainSearch = append(strings.Fields(value), l.DomainSearch...)
		case "DOMAIN_SEARCH_LIST":
			l.DomainSearch = append(l.DomainSearch, strings.Fields(value)...)
		case "LIFETIME":
			if n, err := strconv.ParseUint(value, 10, 32); err == nil {
				l.Lifetime = time.Duration(n) * time.Second
			}
		case "OPTION_143":
			payload, err := parseHexValue(value)
			if err != nil {
				l.Dropped = append(l.Dropped, fmt.Errorf("decoding OPTION_143 on line %d: %w", lineNo, err))
				continue
			}
			l.decodeRedirect(payload, true)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading NetworkManager lease: %w", err)
	}
	if ip == nil {
		return nil, fmt.Errorf("parsing NetworkManager lease: %w: no ADDRESS line", ErrLeaseSyntax)
	}
	if !ip.IsUnspecified() {
		if len(mask) != net.IPv4len || !isContiguous(mask) {
			mask = ip.DefaultMask()
		}
		l.Address = net.IPNet{IP: ip, Mask: mask}
	}
	l.DomainSearch = cleanDomains(l.DomainSearch)
	return l, nil
}

func parseIPList(s string) []net.IP {
	var out []net.IP
	for _, f := range strings.Fields(s) {
		if ip := net.ParseIP(f).To4(); ip != nil {
			out = append(out, ip)
		}
	}
	return out
}

// parseHexValue accepts plain hex (systemd's hexmem) and colon-separated
// hex (NetworkManager's rendering of private options).
func parseHexValue(s string) ([]byte, error) {
	if strings.Contains(s, ":") {
		return parseColonHex(s)
	}
	if len(s) == 0 || len(s)%2 != 0 {
		return nil, fmt.Errorf("%w: %s is not hex", ErrLeaseSyntax, quote(s))
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		b, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not hex", ErrLeaseSyntax, quote(s))
		}
		out[i] = byte(b)
	}
	return out, nil
}
