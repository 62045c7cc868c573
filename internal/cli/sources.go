package cli

import (
	"strings"

	"github.com/sztp-agent/sztp-agent/agent"
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
			if src := f.dnsSource(cfg.SerialNumber); src != nil {
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
			out = append(out, agent.DHCPLeaseFile{Path: p, Compat: f.dhcpCompat})
		}
	}
	fam := 4
	if family == "dhcp6" {
		fam = 6
	}
	for _, ifc := range f.interfaces {
		out = append(out, &agent.DHCP{Interface: ifc, Family: fam, Compat: f.dhcpCompat})
	}
	return out
}

func (f *runFlags) dnsSource(string) agent.Source { return nil }
