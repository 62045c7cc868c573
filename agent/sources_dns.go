package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/sztp-agent/sztp-agent/agent/restconf"
	"github.com/sztp-agent/sztp-agent/dns"
)

// DNS is RFC 8572 §4.2: first the device-specific TXT records
// (<serial>._sztp.<domain>, bootstrapping data itself), then the
// device-independent SRV records (_sztp._tcp.<domain>, servers to contact),
// each by multicast DNS first when enabled, then unicast. DNS is an untrusted
// source even with DNSSEC.
type DNS struct {
	Config       dns.Config
	SerialNumber string
	// Learned supplies DNS servers and domains from DHCP when Config names
	// none.
	Learned *LearnedDNS
}

func (d DNS) Name() string { return "dns" }

func (d DNS) Find(ctx context.Context) ([]Lead, error) {
	servers, domains := d.Learned.Get()
	if len(d.Config.Servers) == 0 {
		d.Config.Servers = servers
	}
	if len(d.Config.Domains) == 0 {
		d.Config.Domains = domains
	}
	var leads []Lead
	arts, err := dns.DeviceSpecific(ctx, d.Config, d.SerialNumber)
	switch {
	case err == nil:
		leads = append(leads, Lead{
			Origin: fmt.Sprintf("dns TXT %s (%s)", arts.Name, arts.Via),
			Data: &restconf.GetOutput{ReportingLevel: "minimal", ConveyedInformation: arts.ConveyedInformation,
				OwnerCertificate: arts.OwnerCertificate, OwnershipVoucher: arts.OwnershipVoucher},
		})
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case d.Config.Logger != nil:
		d.Config.Logger.Info("no device-specific SZTP TXT records", "error", err)
	}
	// RFC 8572 §4.2: the device-independent records are asked when the
	// device-specific ones do not lead to a bootstrap; as leads they come
	// after the TXT data, so they are followed only if it fails.
	targets, serr := dns.DeviceIndependent(ctx, d.Config)
	if serr == nil {
		lead := Lead{Origin: "dns SRV _sztp._tcp"}
		resolver := d.resolver()
		for _, t := range targets {
			lead.Servers = append(lead.Servers, ServerLead{URL: "https://" + net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port))), Resolver: resolver})
		}
		leads = append(leads, lead)
	}
	if len(leads) == 0 {
		return nil, fmt.Errorf("no SZTP records: TXT: %v; SRV: %w", err, serr)
	}
	return leads, nil
}

// resolver resolves SRV targets through the DNS servers the source was
// given, so names from a lab or site DNS work even when the system resolver
// does not know them; nil (the system's) when none were given.
func (d DNS) resolver() *net.Resolver {
	if len(d.Config.Servers) == 0 {
		return nil
	}
	server := d.Config.Servers[0]
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, server)
	}}
}
