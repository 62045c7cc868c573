package dhcp

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

// checkLeaseInvariants holds for anything a parser returns, whatever the
// input: every URI is already in normalised valid form, Form is set exactly
// when the option was seen, and addresses have the lease's family.
func checkLeaseInvariants(t *testing.T, l *Lease) {
	t.Helper()
	if l == nil {
		return
	}
	for _, u := range l.BootstrapURIs {
		if n, err := ValidateBootstrapURI(u); err != nil || n != u {
			t.Fatalf("URI %q escaped validation (normalised %q, err %v)", u, n, err)
		}
	}
	if len(l.BootstrapURIs) > 0 && l.Form != FormRFC8572 && l.Form != FormPlainText {
		t.Fatalf("URIs without a form: %q", l.Form)
	}
	if l.Family != 4 && l.Family != 6 {
		t.Fatalf("family %d", l.Family)
	}
	if ip := l.Address.IP; ip != nil && (ip.To4() != nil) != (l.Family == 4) {
		t.Fatalf("address %s in a v%d lease", ip, l.Family)
	}
	for _, d := range l.Dropped {
		if d == nil {
			t.Fatal("nil error in Dropped")
		}
	}
}

func seedFiles(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "dhcp", "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
}

func FuzzParseDhclientLeases(f *testing.F) {
	seedFiles(f)
	f.Add(`lease { interface "e"; option sztp-redirect "\000\021https://192.0.2.1"; }`)
	f.Add("lease6 { ia-na 1:2:3:4 { iaaddr 2001:db8::1 { max-life 60; } } option dhcp6.unknown-136 0:2:61; }")
	f.Fuzz(func(t *testing.T, in string) {
		leases, err := ParseDhclientLeases(strings.NewReader(in))
		if err != nil && !errors.Is(err, ErrLeaseSyntax) {
			t.Fatalf("error %v does not wrap ErrLeaseSyntax", err)
		}
		for _, l := range leases {
			checkLeaseInvariants(t, l)
		}
	})
}

func FuzzParseNetworkManagerLease(f *testing.F) {
	seedFiles(f)
	f.Add("ADDRESS=192.0.2.1\nOPTION_143=0:11:68:74:74:70:73:3a:2f:2f:31:39:32:2e:30:2e:32:2e:31\n")
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseNetworkManagerLease(strings.NewReader(in))
		if err != nil {
			if l != nil {
				t.Fatal("lease returned with an error")
			}
			return
		}
		checkLeaseInvariants(t, l)
	})
}

// FuzzLeaseFromDHCPv4 feeds raw packets through the library's decoder (as
// nclient4 does with what arrives on the wire) and into LeaseFromDHCPv4.
func FuzzLeaseFromDHCPv4(f *testing.F) {
	p, _ := EncodeSZTPRedirect([]string{"https://192.0.2.1:8443", "https://[2001:db8:1::1]:8443"})
	long := make([]byte, 0, 400)
	for len(long) < 300 {
		long = append(long, p...)
	}
	for _, payload := range [][]byte{p, long, []byte("https://redirecter:8080/x"), {0, 0}, {0xff}} {
		f.Add(ack4(f, opt143(payload)).ToBytes())
	}
	f.Add(ack4(f, dhcpv4.WithYourIP(net.IPv4zero)).ToBytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := dhcpv4.FromBytes(raw)
		if err != nil {
			return
		}
		for _, compat := range []bool{false, true} {
			l, err := LeaseFromDHCPv4(msg, compat)
			if err != nil {
				if !errors.Is(err, ErrUnexpectedMessage) {
					t.Fatalf("error %v", err)
				}
				continue
			}
			checkLeaseInvariants(t, l)
		}
	})
}

// FuzzLeaseFromDHCPv6 does the same for DHCPv6 REPLY packets.
func FuzzLeaseFromDHCPv6(f *testing.F) {
	p, _ := EncodeSZTPRedirect([]string{"https://[2001:db8:1::1]:8443", "https://bootstrap6.example.net"})
	f.Add(reply6(f,
		iana6("2001:db8:1::1a4", time.Hour, 0),
		dhcpv6.OptDNS(net.ParseIP("2001:db8:1::53")),
		&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionV6SZTPRedirect, OptionData: p},
	).ToBytes())
	f.Add(reply6(f, &dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionV6SZTPRedirect, OptionData: []byte("https://x.example")}).ToBytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := dhcpv6.FromBytes(raw)
		if err != nil {
			return
		}
		for _, compat := range []bool{false, true} {
			l, err := LeaseFromDHCPv6(msg, compat)
			if err != nil {
				if !errors.Is(err, ErrUnexpectedMessage) {
					t.Fatalf("error %v", err)
				}
				continue
			}
			checkLeaseInvariants(t, l)
		}
	})
}
