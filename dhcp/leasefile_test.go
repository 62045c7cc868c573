package dhcp

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leaseWant is the comparable part of a Lease.
type leaseWant struct {
	family    int
	iface     string
	uris      []string
	form      string
	dropped   []error // each must be wrapped by the corresponding Dropped entry
	address   string
	router    string
	dns       []string
	search    []string
	serverID  string
	lifetime  time.Duration
	sourceEnd string // Source must end with this
}

func checkLease(t *testing.T, i int, got *Lease, want leaseWant) {
	t.Helper()
	str := func(ip net.IP) string {
		if ip == nil {
			return ""
		}
		return ip.String()
	}
	addr := ""
	if got.Address.IP != nil {
		addr = got.Address.String()
	}
	var dns []string
	for _, ip := range got.DNSServers {
		dns = append(dns, ip.String())
	}
	if got.Family != want.family || got.Interface != want.iface || got.Form != want.form ||
		addr != want.address || str(got.Router) != want.router || str(got.ServerID) != want.serverID ||
		got.Lifetime != want.lifetime ||
		strings.Join(got.BootstrapURIs, " ") != strings.Join(want.uris, " ") ||
		strings.Join(dns, " ") != strings.Join(want.dns, " ") ||
		strings.Join(got.DomainSearch, " ") != strings.Join(want.search, " ") ||
		!strings.HasSuffix(got.Source, want.sourceEnd) {
		t.Errorf("lease %d:\n got family=%d iface=%q uris=%q form=%q addr=%q router=%q dns=%q search=%q server=%q life=%s source=%q\nwant family=%d iface=%q uris=%q form=%q addr=%q router=%q dns=%q search=%q server=%q life=%s source=…%q",
			i, got.Family, got.Interface, got.BootstrapURIs, got.Form, addr, str(got.Router), dns, got.DomainSearch, str(got.ServerID), got.Lifetime, got.Source,
			want.family, want.iface, want.uris, want.form, want.address, want.router, want.dns, want.search, want.serverID, want.lifetime, want.sourceEnd)
	}
	if len(got.Dropped) != len(want.dropped) {
		t.Errorf("lease %d: Dropped = %v, want %d entries wrapping %v", i, got.Dropped, len(want.dropped), want.dropped)
		return
	}
	for j, w := range want.dropped {
		if !errors.Is(got.Dropped[j], w) {
			t.Errorf("lease %d: Dropped[%d] = %v, want it to wrap %v", i, j, got.Dropped[j], w)
		}
	}
}

func TestReadLeaseFile(t *testing.T) {
	dir := filepath.Join("..", "testdata", "dhcp")
	tests := []struct {
		file    string
		wantErr error
		leases  []leaseWant
	}{{
		// The log holds two eth0 leases; only the second counts.
		file: "dhclient.leases",
		leases: []leaseWant{{
			family: 4, iface: "eth0",
			uris:    []string{"https://192.0.2.1:8443", "https://bootstrap.example.net"},
			form:    FormRFC8572,
			address: "192.0.2.117/24", router: "192.0.2.1",
			dns:      []string{"192.0.2.53", "192.0.2.54"},
			search:   []string{"example.net", "lab.example.net"},
			serverID: "192.0.2.1", lifetime: time.Hour,
		}, {
			// opiproject-style plain text with a RESTCONF path, declared
			// as `option sztp-redirect code 143 = text;`.
			family: 4, iface: "eth1",
			uris:    []string{"https://redirecter:8080"},
			form:    FormPlainText,
			address: "198.51.100.23/25", router: "198.51.100.1",
			serverID: "198.51.100.1", lifetime: 24 * time.Hour,
		}},
	}, {
		file: "dhclient6.leases",
		leases: []leaseWant{{
			family: 6, iface: "eth0",
			uris:     []string{"https://[2001:db8:1::1]:8443", "https://bootstrap6.example.net"},
			form:     FormRFC8572,
			address:  "2001:db8:1::1a4/128",
			dns:      []string{"2001:db8:1::53"},
			search:   []string{"example.net"},
			lifetime: 2 * time.Hour,
		}},
	}, {
		file: "dhclient-bad-option.leases",
		leases: []leaseWant{{
			// A zero uri-length makes the whole option untrustworthy.
			family: 4, iface: "eth0", form: FormRFC8572,
			dropped: []error{ErrMalformedOption},
			address: "192.0.2.120/24",
		}, {
			// An http:// entry is dropped, the rest kept.
			family: 4, iface: "eth1", form: FormRFC8572,
			uris:    []string{"https://192.0.2.1:8443"},
			dropped: []error{ErrInvalidURI},
			address: "192.0.2.121/24",
		}},
	}, {
		// dhclient was cut off mid-write: the complete lease survives.
		file:    "dhclient-truncated.leases",
		wantErr: ErrLeaseSyntax,
		leases: []leaseWant{{
			family: 4, iface: "eth0", form: FormRFC8572,
			uris:    []string{"https://192.0.2.1:8443", "https://bootstrap.example.net"},
			address: "192.0.2.117/24",
		}},
	}, {
		// What NetworkManager's nettools client really writes.
		file: "internal-8a0d4c9e-3b7f-4d21-9c5e-2f6a1b0e7d33-eth0.lease",
		leases: []leaseWant{{
			family: 4, iface: "eth0", address: "192.0.2.117/24",
		}},
	}, {
		file: "networkd-legacy.lease",
		leases: []leaseWant{{
			family: 4, form: FormRFC8572,
			uris:    []string{"https://192.0.2.1:8443", "https://bootstrap.example.net"},
			address: "192.0.2.117/24", router: "192.0.2.1",
			dns:      []string{"192.0.2.53", "192.0.2.54"},
			search:   []string{"example.net", "lab.example.net"},
			serverID: "192.0.2.1", lifetime: time.Hour,
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			leases, err := ReadLeaseFile(path)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("ReadLeaseFile error = %v, want %v", err, tt.wantErr)
			}
			if len(leases) != len(tt.leases) {
				t.Fatalf("got %d leases, want %d", len(leases), len(tt.leases))
			}
			for i, w := range tt.leases {
				w.sourceEnd = SourceLeaseFilePrefix + path
				checkLease(t, i, leases[i], w)
			}
		})
	}
}

func TestParseDhclientLeasesSyntax(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
		uris    []string
	}{
		{name: "empty", in: "", want: 0},
		{name: "comments only", in: "# nothing\n", want: 0},
		{name: "unbalanced close", in: "}\n", wantErr: true},
		{name: "unterminated string", in: "lease {\n interface \"eth0;\n}\n", wantErr: true},
		{name: "escaped text value", in: `lease { interface "eth0"; option sztp-redirect "https://a.example\056net:8443"; }`, want: 1,
			uris: []string{"https://a.example.net:8443"}},
		{name: "octal-escaped RFC encoding in text", in: `lease { interface "eth0"; option sztp-redirect "\000\021https://192.0.2.1"; }`, want: 1,
			uris: []string{"https://192.0.2.1"}},
		{name: "two-digit hex octets", in: "lease { interface \"eth0\"; option unknown-143 00:11:68:74:74:70:73:3a:2f:2f:31:39:32:2e:30:2e:32:2e:31; }", want: 1,
			uris: []string{"https://192.0.2.1"}},
		{name: "bad hex", in: "lease { interface \"eth0\"; option unknown-143 0:zz; }", want: 1},
		{name: "too deep", in: strings.Repeat("a {", maxNesting+1), wantErr: true},
		{name: "other declarations ignored", in: "default-duid \"\\000\";\nserver-duid 0:1;\nlease { interface \"eth2\"; }\n", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leases, err := ParseDhclientLeases(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrLeaseSyntax) {
				t.Errorf("error %v does not wrap ErrLeaseSyntax", err)
			}
			if tt.wantErr {
				return
			}
			if len(leases) != tt.want {
				t.Fatalf("got %d leases, want %d", len(leases), tt.want)
			}
			if tt.uris != nil && strings.Join(leases[0].BootstrapURIs, " ") != strings.Join(tt.uris, " ") {
				t.Errorf("URIs = %q, want %q (dropped %v)", leases[0].BootstrapURIs, tt.uris, leases[0].Dropped)
			}
			if tt.name == "bad hex" && (len(leases[0].Dropped) != 1 || !errors.Is(leases[0].Dropped[0], ErrLeaseSyntax)) {
				t.Errorf("bad hex: Dropped = %v", leases[0].Dropped)
			}
		})
	}
}

func TestParseNetworkManagerLeaseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no address":   "# This is private data. Do not parse.\nDNS=192.0.2.1\n",
		"bad address":  "ADDRESS=not-an-ip\n",
		"v6 address":   "ADDRESS=2001:db8::1\n",
		"not kv":       "ADDRESS=192.0.2.1\nlease {\n",
		"empty":        "",
		"empty key":    "=1\nADDRESS=192.0.2.1\n",
		"ifconfig-ish": "inet 192.0.2.1\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseNetworkManagerLease(strings.NewReader(in)); !errors.Is(err, ErrLeaseSyntax) {
				t.Errorf("error = %v, want ErrLeaseSyntax", err)
			}
		})
	}
	l, err := ParseNetworkManagerLease(strings.NewReader("ADDRESS=192.0.2.9\nOPTION_143=0:2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Dropped) != 1 || !errors.Is(l.Dropped[0], ErrMalformedOption) || len(l.BootstrapURIs) != 0 {
		t.Errorf("truncated OPTION_143: URIs %v, Dropped %v", l.BootstrapURIs, l.Dropped)
	}
}

func TestReadLeaseFileUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lease")
	if err := os.WriteFile(path, []byte("{\"Address\":\"192.0.2.1\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLeaseFile(path); !errors.Is(err, ErrUnknownLeaseFormat) {
		t.Errorf("error = %v, want ErrUnknownLeaseFormat", err)
	}
	if _, err := ReadLeaseFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want ErrNotExist", err)
	}
}
