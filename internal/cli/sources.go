package cli

import (
	"log/slog"
	"os"
	"strings"

	"github.com/sztp-agent/sztp-agent/agent"
	"github.com/sztp-agent/sztp-agent/dns"
)

// buildSources turns the discovery flags into the agent's ordered source
// list. --bootstrap-url on the command line skips discovery (a lab or an
// operator pointing at one server); otherwise every source named by
// --sources that is configured is tried, in that order.
func (f *runFlags) buildSources(cfg *agent.Config) error {
	if f.urlsOnCommandLine {
		cfg.Sources = []agent.Source{agent.WellKnownServers{URLs: f.bootstrapURLs, Anchors: cfg.TrustAnchors}}
		return nil
	}
	seen := map[string]bool{}
	learned := &agent.LearnedDNS{} // DHCP → DNS within a pass
	f.learned = learned
	for _, name := range strings.Split(f.sources, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if seen[name] {
			return usagef("--sources: %q listed twice", name)
		}
		seen[name] = true
		switch name {
		case "removable":
			if f.removableRoot != "" {
				cfg.Sources = append(cfg.Sources, agent.RemovableStorage{Root: f.removableRoot, Vendor: f.removableVendor, SerialNumber: cfg.SerialNumber})
			}
		case "dhcp4", "dhcp6":
			cfg.Sources = append(cfg.Sources, f.dhcpSources(name)...)
		case "dns":
			if src := f.dnsSource(cfg.SerialNumber, cfg.Logger); src != nil {
				cfg.Sources = append(cfg.Sources, src)
			}
		case "url":
			if len(f.bootstrapURLs) > 0 {
				cfg.Sources = append(cfg.Sources, agent.WellKnownServers{URLs: f.bootstrapURLs, Anchors: cfg.TrustAnchors})
			}
		default:
			return usagef("--sources: unknown source %q (want removable, dhcp4, dhcp6, dns, url)", name)
		}
	}
	if len(cfg.Sources) == 0 {
		return usagef("no bootstrap source configured: give --bootstrap-url, or --removable-root, --interface, --dhcp-lease-file, --dns-domain, or well-known servers in the config file")
	}
	return nil
}

// dhcpSources: the lease files (passive) first, then an active client on
// each --interface.
func (f *runFlags) dhcpSources(family string) []agent.Source {
	var out []agent.Source
	if family == "dhcp4" {
		// Lease files hold both families; list them once.
		for _, p := range f.dhcpLeaseFiles {
			out = append(out, agent.DHCPLeaseFile{Path: p, Compat: f.dhcpCompat, Learned: f.learned})
		}
	}
	fam := 4
	if family == "dhcp6" {
		fam = 6
	}
	for _, ifc := range f.interfaces {
		out = append(out, &agent.DHCP{Interface: ifc, Family: fam, Compat: f.dhcpCompat, Learned: f.learned})
	}
	return out
}

// attachLogger gives the sources that log the run's logger, which exists
// only once the flags have been read.
func attachLogger(sources []agent.Source, log *slog.Logger) {
	for i, s := range sources {
		switch src := s.(type) {
		case agent.DNS:
			src.Config.Logger = log
			sources[i] = src
		case *agent.DHCP:
			src.Logger = log
		}
	}
}

// dnsSource: configured when a domain or a server is given, when DHCP may
// hand them out (an interface or a lease file), or when the system's
// resolv.conf names a search domain.
func (f *runFlags) dnsSource(serial string, log *slog.Logger) agent.Source {
	c := dns.Config{Servers: f.dnsServers, Domains: f.dnsDomains, MDNS: f.mdns, Logger: log}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(f.interfaces) > 0 {
		c.Interface = f.interfaces[0]
	}
	fromDHCP := len(f.interfaces) > 0 || len(f.dhcpLeaseFiles) > 0
	if len(c.Domains) == 0 && len(c.Servers) == 0 && !fromDHCP && !resolvConfHasDomain() {
		return nil
	}
	return agent.DNS{Config: c, SerialNumber: serial, Learned: f.learned}
}

func resolvConfHasDomain() bool {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			return true
		}
	}
	return false
}
