package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/sztp-agent/sztp-agent/agent/restconf"
)

// A Source is one of the places RFC 8572 §4 says bootstrapping data may come
// from. Sources are listed explicitly in Config, in the order the device
// tries them each pass (local before remote, §9.7).
type Source interface {
	// Name is what logs and the plan call the source ("dhcpv4 eth0").
	Name() string
	// Find looks once and returns what it found this pass; nothing found
	// is (nil, nil) or an error saying why.
	Find(ctx context.Context) ([]Lead, error)
}

// Lead is what a source found: bootstrap servers to contact, or
// bootstrapping data found locally.
type Lead struct {
	// Origin names where it came from, for logs and state.
	Origin string
	// Servers are tried in order until one bootstraps the device.
	Servers []ServerLead
	// Data is bootstrapping data found locally (removable storage, DNS
	// TXT records). It is always untrusted: only signed data, or unsigned
	// redirect information, is acted upon.
	Data *restconf.GetOutput
	// ImageBase resolves relative download-uri values of Data (removable
	// storage puts images beside the artifacts); they may not leave
	// LocalRoot.
	ImageBase string
	LocalRoot string
}

// ServerLead is a bootstrap server to contact.
type ServerLead struct {
	URL string // https://host[:port]
	// Anchors authenticate the server (well-known servers only). Servers
	// learned from DHCP or DNS have none: those sources are untrusted
	// (RFC 8572 §4.3), so the connection is provisional.
	Anchors []*x509.Certificate
	// Resolver resolves the server's name; nil means the system's.
	Resolver *net.Resolver
}

// WellKnownServers is the source of preconfigured bootstrap servers (RFC
// 8572 §5.1 items 3 and 4), authenticated by the trust anchors.
type WellKnownServers struct {
	URLs    []string
	Anchors []*x509.Certificate
}

func (w WellKnownServers) Name() string { return "well-known bootstrap servers" }

func (w WellKnownServers) Find(context.Context) ([]Lead, error) {
	lead := Lead{Origin: "well-known bootstrap servers"}
	for _, u := range w.URLs {
		lead.Servers = append(lead.Servers, ServerLead{URL: u, Anchors: w.Anchors})
	}
	return []Lead{lead}, nil
}

// Artifact file names on removable storage (RFC 8572 §4.1 leaves them to
// the implementation; these are the ones the RFC's examples and vendor tools use).
const (
	RemovableConveyedInformation = "conveyed-information.cms"
	RemovableOwnerCertificate    = "owner-certificate.cms"
	RemovableOwnershipVoucher    = "ownership-voucher.cms"
)

// RemovableStorage is RFC 8572 §4.1: artifacts on a mounted medium, laid out
// as <Root>/<vendor>/<serial>/bootstrapping-data/ so one stick can carry
// several devices' data. Vendor "" means any vendor directory.
type RemovableStorage struct {
	Root         string
	Vendor       string
	SerialNumber string
}

func (r RemovableStorage) Name() string { return "removable storage " + r.Root }

// maxRemovableArtifact bounds what is read from a stick.
const maxRemovableArtifact = 16 << 20

func (r RemovableStorage) Find(context.Context) ([]Lead, error) {
	vendor := r.Vendor
	if vendor == "" {
		vendor = "*"
	}
	dirs, err := filepath.Glob(filepath.Join(r.Root, vendor, r.SerialNumber, "bootstrapping-data"))
	if err != nil {
		return nil, fmt.Errorf("searching %s: %w", r.Root, err)
	}
	sort.Strings(dirs)
	var leads []Lead
	for _, dir := range dirs {
		out := &restconf.GetOutput{ReportingLevel: "minimal"}
		read := func(name string) ([]byte, error) {
			path := filepath.Join(dir, name)
			fi, err := os.Stat(path)
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			if fi.Size() > maxRemovableArtifact {
				return nil, fmt.Errorf("%s is %d bytes, over the %d-byte limit", path, fi.Size(), maxRemovableArtifact)
			}
			return os.ReadFile(path)
		}
		if out.ConveyedInformation, err = read(RemovableConveyedInformation); err != nil {
			return nil, err
		}
		if out.ConveyedInformation == nil {
			continue
		}
		if out.OwnerCertificate, err = read(RemovableOwnerCertificate); err != nil {
			return nil, err
		}
		if out.OwnershipVoucher, err = read(RemovableOwnershipVoucher); err != nil {
			return nil, err
		}
		leads = append(leads, Lead{Origin: "removable storage " + dir, Data: out, ImageBase: dir, LocalRoot: r.Root})
	}
	return leads, nil
}
