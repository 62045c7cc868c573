package dhcp

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

var testHW = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

func ack4(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithHwAddr(testHW),
		dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 117)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
		dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53), net.IPv4(127, 0, 0, 1)),
		dhcpv4.WithServerIP(net.IPv4(192, 0, 2, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithOption(dhcpv4.OptDomainName("example.net")),
		dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"lab.example.net", "example.net"}})),
		dhcpv4.WithLeaseTime(3600),
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatalf("building DHCPv4 message: %v", err)
	}
	return m
}

func opt143(payload []byte) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(OptionV4SZTPRedirect), payload))
}

func TestLeaseFromDHCPv4(t *testing.T) {
	long := make([]string, 0, 12)
	for i := 0; i < 12; i++ {
		long = append(long, "https://bootstrap-"+string(rune('a'+i))+".sztp.example.net:8443")
	}
	longPayload, err := EncodeSZTPRedirect(long)
	if err != nil {
		t.Fatal(err)
	}
	if len(longPayload) <= 255 {
		t.Fatalf("payload %d octets, need > 255", len(longPayload))
	}

	t.Run("RFC 3396 split option through the wire", func(t *testing.T) {
		raw := ack4(t, opt143(longPayload)).ToBytes()
		// The encoder must really have split it: count the instances.
		if n := strings.Count(string(raw), "\x8f\xff"); n < 1 {
			t.Fatalf("expected a full 255-octet instance of option 143 in the packet")
		}
		msg, err := dhcpv4.FromBytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		l, err := LeaseFromDHCPv4(msg, false)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(l.BootstrapURIs, " ") != strings.Join(long, " ") || l.Form != FormRFC8572 || len(l.Dropped) != 0 {
			t.Errorf("URIs %q form %q dropped %v", l.BootstrapURIs, l.Form, l.Dropped)
		}
		if l.Address.String() != "192.0.2.117/24" || l.Router.String() != "192.0.2.1" || l.ServerID.String() != "192.0.2.1" || l.Lifetime != time.Hour {
			t.Errorf("address %s router %s server %s lifetime %s", &l.Address, l.Router, l.ServerID, l.Lifetime)
		}
		if len(l.DNSServers) != 1 || l.DNSServers[0].String() != "192.0.2.53" {
			t.Errorf("DNS %v: loopback must be dropped", l.DNSServers)
		}
		if strings.Join(l.DomainSearch, " ") != "example.net lab.example.net" {
			t.Errorf("DomainSearch %q", l.DomainSearch)
		}
	})

	t.Run("instances interleaved with other options", func(t *testing.T) {
		// Hand-built options area: 143 in two pieces with option 6 between.
		p, _ := EncodeSZTPRedirect([]string{"https://192.0.2.1:8443", "https://bootstrap.example.net"})
		opts := []byte{53, 1, 5}
		opts = append(opts, 143, 10)
		opts = append(opts, p[:10]...)
		opts = append(opts, 6, 4, 192, 0, 2, 53)
		opts = append(opts, 143, byte(len(p)-10))
		opts = append(opts, p[10:]...)
		opts = append(opts, 255)
		raw := ack4(t).ToBytes()[:240] // fixed header + magic cookie
		msg, err := dhcpv4.FromBytes(append(raw, opts...))
		if err != nil {
			t.Fatal(err)
		}
		l, err := LeaseFromDHCPv4(msg, false)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(l.BootstrapURIs, " ") != "https://192.0.2.1:8443 https://bootstrap.example.net" {
			t.Errorf("URIs %q dropped %v", l.BootstrapURIs, l.Dropped)
		}
	})

	t.Run("plain text needs compat", func(t *testing.T) {
		msg := ack4(t, opt143([]byte("https://redirecter:8080/restconf/operations/x")))
		l, err := LeaseFromDHCPv4(msg, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.BootstrapURIs) != 0 || len(l.Dropped) == 0 || !errors.Is(l.Dropped[len(l.Dropped)-1], ErrMalformedOption) {
			t.Errorf("strict: URIs %q dropped %v", l.BootstrapURIs, l.Dropped)
		}
		l, err = LeaseFromDHCPv4(msg, true)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(l.BootstrapURIs, " ") != "https://redirecter:8080" || l.Form != FormPlainText {
			t.Errorf("compat: URIs %q form %q", l.BootstrapURIs, l.Form)
		}
	})

	t.Run("no option, no mask", func(t *testing.T) {
		msg := ack4(t)
		msg.Options.Del(dhcpv4.OptionSubnetMask)
		l, err := LeaseFromDHCPv4(msg, false)
		if err != nil {
			t.Fatal(err)
		}
		if l.Form != "" || l.BootstrapURIs != nil || l.Dropped != nil {
			t.Errorf("absent option: form %q URIs %q dropped %v", l.Form, l.BootstrapURIs, l.Dropped)
		}
		if l.Address.String() != "192.0.2.117/24" { // classful default for 192/3
			t.Errorf("address %s", &l.Address)
		}
	})

	t.Run("not an ACK", func(t *testing.T) {
		_, err := LeaseFromDHCPv4(ack4(t, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer)), false)
		if !errors.Is(err, ErrUnexpectedMessage) {
			t.Errorf("error %v", err)
		}
		if _, err := LeaseFromDHCPv4(nil, false); !errors.Is(err, ErrUnexpectedMessage) {
			t.Errorf("nil: error %v", err)
		}
	})
}

func reply6(t testing.TB, opts ...dhcpv6.Option) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = dhcpv6.MessageTypeReply
	for _, o := range opts {
		m.AddOption(o)
	}
	return m
}

func iana6(addr string, valid time.Duration, status iana.StatusCode) *dhcpv6.OptIANA {
	ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0x12, 0x34, 0x56}}
	if addr != "" {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(addr), PreferredLifetime: valid / 2, ValidLifetime: valid})
	}
	if status != 0 {
		ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: status, StatusMessage: "no"})
	}
	return ia
}

func TestLeaseFromDHCPv6(t *testing.T) {
	p, _ := EncodeSZTPRedirect([]string{"https://[2001:db8:1::1]:8443", "https://bootstrap6.example.net"})
	msg := reply6(t,
		iana6("", 0, iana.StatusNoAddrsAvail),
		iana6("2001:db8:1::1a4", 2*time.Hour, 0),
		dhcpv6.OptDNS(net.ParseIP("2001:db8:1::53"), net.ParseIP("::1")),
		dhcpv6.OptDomainSearchList(&rfc1035label.Labels{Labels: []string{"example.net."}}),
		&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionV6SZTPRedirect, OptionData: p},
	)
	parsed, err := dhcpv6.FromBytes(msg.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	l, err := LeaseFromDHCPv6(parsed, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(l.BootstrapURIs, " ") != "https://[2001:db8:1::1]:8443 https://bootstrap6.example.net" || l.Form != FormRFC8572 {
		t.Errorf("URIs %q form %q dropped %v", l.BootstrapURIs, l.Form, l.Dropped)
	}
	if l.Address.String() != "2001:db8:1::1a4/128" || l.Lifetime != 2*time.Hour {
		t.Errorf("address %s lifetime %s", &l.Address, l.Lifetime)
	}
	if len(l.DNSServers) != 1 || l.DNSServers[0].String() != "2001:db8:1::53" || strings.Join(l.DomainSearch, " ") != "example.net" {
		t.Errorf("DNS %v search %q", l.DNSServers, l.DomainSearch)
	}

	t.Run("duplicate singleton", func(t *testing.T) {
		m := reply6(t,
			&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionV6SZTPRedirect, OptionData: p},
			&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionV6SZTPRedirect, OptionData: []byte{0, 0}},
		)
		l, err := LeaseFromDHCPv6(m, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.BootstrapURIs) != 2 || len(l.Dropped) != 1 {
			t.Errorf("URIs %q dropped %v", l.BootstrapURIs, l.Dropped)
		}
	})
	t.Run("wrong messages", func(t *testing.T) {
		adv := reply6(t)
		adv.MessageType = dhcpv6.MessageTypeAdvertise
		if _, err := LeaseFromDHCPv6(adv, false); !errors.Is(err, ErrUnexpectedMessage) {
			t.Errorf("advertise: %v", err)
		}
		relay, err := dhcpv6.EncapsulateRelay(msg, dhcpv6.MessageTypeRelayForward, net.IPv6loopback, net.IPv6loopback)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LeaseFromDHCPv6(relay, false); !errors.Is(err, ErrUnexpectedMessage) {
			t.Errorf("relay: %v", err)
		}
		if _, err := LeaseFromDHCPv6(nil, false); !errors.Is(err, ErrUnexpectedMessage) {
			t.Errorf("nil: %v", err)
		}
	})
}

func TestReleaseWithoutConfiguration(t *testing.T) {
	var l *Lease
	if err := l.Release(); err != nil {
		t.Errorf("nil lease: %v", err)
	}
	if err := (&Lease{}).Release(); err != nil {
		t.Errorf("unconfigured lease: %v", err)
	}
	calls := 0
	l = &Lease{undo: &addressUndo{remove: func(int, net.IPNet) error { calls++; return nil }}}
	copied := *l
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := copied.Release(); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("remove called %d times, want once", calls)
	}
	failing := &Lease{undo: &addressUndo{ifname: "eth9", remove: func(int, net.IPNet) error { return errors.New("boom") }}}
	if err := failing.Release(); err == nil || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("error %v should name the interface", err)
	}
}
