package dhcp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// Values of Lease.Source for the active client; lease files use
// SourceLeaseFilePrefix followed by the file's path.
const (
	SourceDHCPv4          = "dhcpv4"
	SourceDHCPv6          = "dhcpv6"
	SourceLeaseFilePrefix = "lease-file:"
)

// ErrUnexpectedMessage is wrapped when a packet handed to LeaseFromDHCPv4 or
// LeaseFromDHCPv6 is not the reply that carries a lease.
var ErrUnexpectedMessage = errors.New("not a DHCP lease reply")

// Lease is what discovery learned from one DHCP exchange or lease file.
//
// Everything in it came from an unauthenticated source (RFC 8572 §4.3): the
// bootstrap URIs are redirect information only, to be checked by the usual
// bootstrap-server trust rules.
type Lease struct {
	Family    int    // 4 or 6
	Interface string // empty when the source did not say
	Source    string // SourceDHCPv4, SourceDHCPv6 or "lease-file:<path>"

	// BootstrapURIs holds the valid entries of option 143 (v4) or 136 (v6),
	// normalised and in order. Empty when the option was absent or had to
	// be discarded.
	BootstrapURIs []string
	// Form is FormRFC8572 or FormPlainText when the option was present, ""
	// when it was not.
	Form string
	// Dropped explains every URI entry that was skipped and, when the whole
	// option had to be discarded, why (wrapping ErrMalformedOption or
	// ErrNoValidURI).
	Dropped []error

	Address      net.IPNet // v4: yiaddr/mask; v6: first IA_NA address as /128; zero if none
	Router       net.IP    // v4 option 3 (first router); DHCPv6 has no router option
	DNSServers   []net.IP  // v4 option 6, v6 option 23
	DomainSearch []string  // v4 option 15 then 119, v6 option 24; no trailing dots, duplicates removed
	// ServerID is the v4 server identifier (option 54). DHCPv6 identifies
	// servers by DUID, not by address, so it stays nil for v6 unless the
	// server sent a Server Unicast option (12).
	ServerID net.IP
	// Lifetime is the lease time (v4 option 51, v6 IA address valid
	// lifetime); 0 when unknown. A configured address expires with it.
	Lifetime time.Duration

	// undo is set when this package added Address to the interface. It is
	// a pointer so that copies of a Lease share one record and the address
	// is removed once.
	undo *addressUndo
}

// addressUndo remembers what Release has to undo.
type addressUndo struct {
	mu      sync.Mutex
	done    bool
	ifindex int
	ifname  string
	addr    net.IPNet
	remove  func(ifindex int, addr net.IPNet) error
}

// Release removes the address this package configured for the lease
// (Client.ConfigureAddress) from its interface, through rtnetlink. It does
// nothing for a lease whose address was not configured by this package, and
// it is safe to call more than once. It does not send a DHCPRELEASE: the
// server keeps the binding until it expires, which is harmless for a device
// that is only bootstrapping.
func (l *Lease) Release() error {
	if l == nil || l.undo == nil {
		return nil
	}
	return l.undo.run()
}

func (u *addressUndo) run() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	if err := u.remove(u.ifindex, u.addr); err != nil {
		return fmt.Errorf("removing configured address %s from %s: %w", u.addr.String(), u.ifname, err)
	}
	u.done = true
	return nil
}

// LeaseFromDHCPv4 turns a DHCPACK into a Lease. Option 143 is taken from the
// packet after RFC 3396 concatenation (the decoder joins repeated instances)
// and decoded with ParseSZTPRedirect, or ParseSZTPRedirectCompat when compat
// is set. A missing or unusable option 143 is not an error: the rest of the
// lease (address, DNS) is still useful, and Dropped says what went wrong.
// Interface is left empty.
func LeaseFromDHCPv4(msg *dhcpv4.DHCPv4, compat bool) (*Lease, error) {
	if msg == nil {
		return nil, fmt.Errorf("reading DHCPv4 lease: %w: nil message", ErrUnexpectedMessage)
	}
	if t := msg.MessageType(); t != dhcpv4.MessageTypeAck {
		return nil, fmt.Errorf("reading DHCPv4 lease: %w: message type %s", ErrUnexpectedMessage, t)
	}
	l := &Lease{Family: 4, Source: SourceDHCPv4}

	if ip := msg.YourIPAddr.To4(); ip != nil && !ip.IsUnspecified() {
		mask := msg.SubnetMask()
		if len(mask) != net.IPv4len || !isContiguous(mask) {
			// RFC 2131 leaves the mask optional; dhclient and NetworkManager
			// fall back to the classful mask, and so do we.
			mask = ip.DefaultMask()
		}
		l.Address = net.IPNet{IP: cloneIP(ip), Mask: mask}
	}
	for _, r := range msg.Router() {
		if r4 := r.To4(); r4 != nil && !r4.IsUnspecified() {
			l.Router = cloneIP(r4)
			break
		}
	}
	for _, s := range msg.DNS() {
		if s4 := s.To4(); s4 != nil && !s4.IsUnspecified() && !s4.IsLoopback() {
			l.DNSServers = append(l.DNSServers, cloneIP(s4))
		}
	}
	var domains []string
	// Option 15 may hold several names separated by blanks (NetworkManager
	// copes with the same abuse); option 119 is the proper list.
	domains = append(domains, strings.Fields(msg.DomainName())...)
	domains = append(domains, labels(msg.DomainSearch())...)
	l.DomainSearch = cleanDomains(domains)
	if id := msg.ServerIdentifier(); id != nil && id.To4() != nil {
		l.ServerID = cloneIP(id.To4())
	}
	l.Lifetime = msg.IPAddressLeaseTime(0)

	if msg.Options.Has(dhcpv4.GenericOptionCode(OptionV4SZTPRedirect)) {
		l.decodeRedirect(msg.Options.Get(dhcpv4.GenericOptionCode(OptionV4SZTPRedirect)), compat)
	}
	return l, nil
}

// LeaseFromDHCPv6 turns a DHCPv6 REPLY into a Lease: option 136 from the
// top level of the message, the first IA_NA address that the server did
// not refuse, DNS servers (23) and the domain search list (24). As for
// LeaseFromDHCPv4, compat selects the decoder, and a missing or unusable
// option 136 is reported in Dropped, not as an error.
func LeaseFromDHCPv6(msg dhcpv6.DHCPv6, compat bool) (*Lease, error) {
	m, ok := msg.(*dhcpv6.Message)
	if !ok || m == nil {
		// A client never receives a relay message; one here means the
		// caller handed over the wrong packet.
		return nil, fmt.Errorf("reading DHCPv6 lease: %w: %T is not a client/server message", ErrUnexpectedMessage, msg)
	}
	if m.MessageType != dhcpv6.MessageTypeReply {
		return nil, fmt.Errorf("reading DHCPv6 lease: %w: message type %s", ErrUnexpectedMessage, m.MessageType)
	}
	l := &Lease{Family: 6, Source: SourceDHCPv6}

	for _, ia := range m.Options.IANA() {
		if st := ia.Options.Status(); st != nil && st.StatusCode != 0 {
			// e.g. NoAddrsAvail: the IA carries no usable address.
			continue
		}
		for _, a := range ia.Options.Addresses() {
			ip := a.IPv6Addr.To16()
			if ip == nil || ip.To4() != nil || ip.IsUnspecified() || a.ValidLifetime == 0 {
				continue
			}
			// DHCPv6 assigns addresses, not prefixes; on-link prefixes come
			// from Router Advertisements (RFC 5942), so the address stands
			// alone as a /128.
			l.Address = net.IPNet{IP: cloneIP(ip), Mask: net.CIDRMask(128, 128)}
			l.Lifetime = a.ValidLifetime
			break
		}
		if l.Address.IP != nil {
			break
		}
	}
	for _, s := range m.Options.DNS() {
		if s16 := s.To16(); s16 != nil && s.To4() == nil && !s16.IsUnspecified() && !s16.IsLoopback() {
			l.DNSServers = append(l.DNSServers, cloneIP(s16))
		}
	}
	l.DomainSearch = cleanDomains(labels(m.Options.DomainSearchList()))
	if u := m.Options.GetOne(dhcpv6.OptionUnicast); u != nil {
		if ip := net.IP(u.ToBytes()); len(ip) == net.IPv6len {
			l.ServerID = cloneIP(ip)
		}
	}

	if opts := m.Options.Get(dhcpv6.OptionV6SZTPRedirect); len(opts) > 0 {
		l.decodeRedirect(opts[0].ToBytes(), compat)
		if len(opts) > 1 {
			// RFC 8572 §8.2 makes the option a singleton; a second copy is
			// a server bug, and picking the first is as good as any.
			l.Dropped = append(l.Dropped, fmt.Errorf("ignoring %d extra instances of singleton option %d", len(opts)-1, OptionV6SZTPRedirect))
		}
	}
	return l, nil
}

// decodeRedirect fills BootstrapURIs, Form and Dropped from an option
// payload. A discarded option leaves BootstrapURIs empty with the reason
// appended to Dropped.
func (l *Lease) decodeRedirect(payload []byte, compat bool) {
	var (
		uris    []string
		form    = FormRFC8572
		dropped []error
		err     error
	)
	if compat {
		uris, form, dropped, err = ParseSZTPRedirectCompat(payload)
	} else {
		uris, dropped, err = ParseSZTPRedirect(payload)
	}
	l.Form = form
	l.BootstrapURIs = uris
	l.Dropped = append(l.Dropped, dropped...)
	if err != nil {
		l.Dropped = append(l.Dropped, err)
	}
}

func labels(l *rfc1035label.Labels) []string {
	if l == nil {
		return nil
	}
	return l.Labels
}

// cleanDomains drops empty names and trailing dots and removes duplicates
// while keeping the first occurrence's position (search order matters).
func cleanDomains(in []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, d := range in {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
	}
	return out
}

// isContiguous rejects masks like 255.0.255.0 that the kernel would refuse,
// and 0.0.0.0, which would put the whole Internet on-link.
func isContiguous(mask net.IPMask) bool {
	ones, bits := mask.Size()
	return bits == 8*net.IPv4len && ones > 0
}

func cloneIP(ip net.IP) net.IP {
	return append(net.IP(nil), ip...)
}
