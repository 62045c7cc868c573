package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sztp-agent/sztp-agent/dhcp"
)

// DHCP is RFC 8572 §4.3: an active DHCPv4 (option 143) or DHCPv6 (option
// 136) exchange on one interface. What it yields is unsigned redirect
// information from an untrusted source: the servers are contacted
// provisionally. An address leased for the bootstrap stays configured until
// Close.
type DHCP struct {
	Interface string
	Family    int // 4 or 6
	Compat    bool
	Timeout   time.Duration
	Logger    *slog.Logger
	// Learned, if set, receives the lease's DNS servers and search
	// domains for the DNS source (RFC 8572 §4.2: the domain may come from DHCP).
	Learned *LearnedDNS

	mu     sync.Mutex
	client *dhcp.Client
}

func (d *DHCP) Name() string { return fmt.Sprintf("dhcpv%d %s", d.Family, d.Interface) }

func (d *DHCP) Find(ctx context.Context) ([]Lead, error) {
	d.mu.Lock()
	if d.client == nil {
		d.client = &dhcp.Client{Interface: d.Interface, Compat: d.Compat, Timeout: d.Timeout, Logger: d.Logger, ConfigureAddress: true}
	}
	c := d.client
	d.mu.Unlock()
	var lease *dhcp.Lease
	var err error
	if d.Family == 6 {
		lease, err = c.DiscoverV6(ctx)
	} else {
		lease, err = c.DiscoverV4(ctx)
	}
	if err != nil {
		return nil, err
	}
	d.Learned.add(lease)
	return leadsFromLeases(d.Name(), []*dhcp.Lease{lease})
}

// Close releases addresses the source configured.
func (d *DHCP) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client == nil {
		return nil
	}
	return d.client.Close()
}

// DHCPLeaseFile reads options 143/136 from the running DHCP client's lease
// file (dhclient, NetworkManager), so no second DHCP client is needed.
type DHCPLeaseFile struct {
	Path    string
	Compat  bool
	Learned *LearnedDNS
}

func (l DHCPLeaseFile) Name() string { return "dhcp lease file " + l.Path }

func (l DHCPLeaseFile) Find(context.Context) ([]Lead, error) {
	leases, err := dhcp.ReadLeaseFile(l.Path)
	if err != nil {
		return nil, err
	}
	var usable []*dhcp.Lease
	for _, lease := range leases {
		l.Learned.add(lease)
		// Lease files are read with the tolerant parser; the plain-text
		// form counts only when the operator allowed it.
		if lease.Form == dhcp.FormPlainText && !l.Compat {
			continue
		}
		usable = append(usable, lease)
	}
	return leadsFromLeases(l.Name(), usable)
}

func leadsFromLeases(origin string, leases []*dhcp.Lease) ([]Lead, error) {
	var leads []Lead
	var reasons []error
	for _, lease := range leases {
		if len(lease.BootstrapURIs) == 0 {
			reasons = append(reasons, lease.Dropped...)
			continue
		}
		lead := Lead{Origin: fmt.Sprintf("%s (%s, %s)", origin, lease.Source, lease.Form)}
		for _, u := range lease.BootstrapURIs {
			lead.Servers = append(lead.Servers, ServerLead{URL: u})
		}
		leads = append(leads, lead)
	}
	if len(leads) == 0 {
		if len(reasons) > 0 {
			return nil, fmt.Errorf("no usable SZTP redirect option: %w", errors.Join(reasons...))
		}
		return nil, errors.New("no SZTP redirect option in the lease")
	}
	return leads, nil
}

// LearnedDNS collects the DNS servers and search domains DHCP handed out,
// for the DNS source that comes after the DHCP sources in a pass.
type LearnedDNS struct {
	mu      sync.Mutex
	servers []string
	domains []string
}

func (l *LearnedDNS) add(lease *dhcp.Lease) {
	if l == nil || lease == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ip := range lease.DNSServers {
		if s := net.JoinHostPort(ip.String(), "53"); !slices.Contains(l.servers, s) {
			l.servers = append(l.servers, s)
		}
	}
	for _, d := range lease.DomainSearch {
		if !slices.Contains(l.domains, d) {
			l.domains = append(l.domains, d)
		}
	}
}

// Get returns what was learned so far.
func (l *LearnedDNS) Get() (servers, domains []string) {
	if l == nil {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.servers), slices.Clone(l.domains)
}
