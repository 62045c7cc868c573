//go:build linux

package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
)

const (
	defaultTimeout = 5 * time.Second
	defaultRetries = 2
	// pollInterval paces the waits for a usable link-local address and for
	// duplicate address detection; both normally finish within a second.
	pollInterval = 50 * time.Millisecond
)

// Client runs DHCP exchanges on one interface to learn bootstrap servers
// (RFC 8572 §4.3). It must not be copied after first use.
type Client struct {
	Interface string
	// Timeout is how long to wait for the answer to one transmission. The
	// underlying clients double it for each retransmission (RFC 2131 §4.1,
	// RFC 8415 §15 style backoff). Zero means 5 s.
	Timeout time.Duration
	// Retries is how many times a message is retransmitted after the first
	// try went unanswered. Zero means 2; a negative value means none.
	Retries int
	// Compat accepts the plain-text option payloads some lab servers send
	// (see ParseSZTPRedirectCompat); the default is the strict RFC decoder.
	Compat bool
	// Logger receives progress at Debug and Info level; nil discards.
	Logger *slog.Logger
	// ConfigureAddress: when the interface has no usable (global,
	// non-link-local) address of the exchange's family, add the leased
	// address to it (and remove it on Lease.Release or Client.Close); when
	// it already has one, leave it alone. The address is added with the
	// lease's lifetime so that the kernel drops it if nobody does.
	ConfigureAddress bool

	mu   sync.Mutex
	undo []*addressUndo
}

// DiscoverV4 runs DHCPDISCOVER/DHCPREQUEST on the interface with option 143
// in the parameter request list (RFC 8572 §8.1; servers only send it when
// asked) and returns the lease from the DHCPACK. Split instances of option
// 143 are joined per RFC 3396 before decoding. A lease without usable
// bootstrap URIs is still returned (its DNS settings feed the DNS source);
// check len(BootstrapURIs) and Dropped.
func (c *Client) DiscoverV4(ctx context.Context) (*Lease, error) {
	log := c.logger().With("interface", c.Interface, "family", 4)
	iface, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %q for DHCPv4: %w", c.Interface, err)
	}
	cl, err := nclient4.New(c.Interface,
		nclient4.WithTimeout(c.timeout()),
		nclient4.WithRetry(c.attempts()),
		nclient4.WithLogger(nclient4Log{log}))
	if err != nil {
		return nil, fmt.Errorf("opening DHCPv4 client on %s: %w", c.Interface, err)
	}
	defer cl.Close()

	start := time.Now()
	log.Debug("sending DHCPDISCOVER", "timeout", c.timeout(), "attempts", c.attempts())
	res, err := cl.Request(ctx, dhcpv4.WithRequestedOptions(
		dhcpv4.GenericOptionCode(OptionV4SZTPRedirect), // the library misnames 143, hence the generic code
		dhcpv4.OptionDNSDomainSearchList,
		dhcpv4.OptionIPAddressLeaseTime,
	))
	if err != nil {
		return nil, fmt.Errorf("requesting DHCPv4 lease on %s: %w", c.Interface, err)
	}
	l, err := LeaseFromDHCPv4(res.ACK, c.Compat)
	if err != nil {
		return nil, fmt.Errorf("reading DHCPv4 lease on %s: %w", c.Interface, err)
	}
	l.Interface = c.Interface
	c.logLease(log, l, time.Since(start))

	if err := c.configure(ctx, iface, l, log); err != nil {
		return nil, err
	}
	return l, nil
}

// DiscoverV6 runs SOLICIT/REQUEST on the interface with option 136 in the
// Option Request Option (RFC 8572 §8.2) and returns the lease from the
// REPLY. As with DiscoverV4, a lease without bootstrap URIs is not an
// error. The client needs the interface's link-local address; while it is
// still tentative (duplicate address detection) DiscoverV6 waits up to
// Timeout for it.
func (c *Client) DiscoverV6(ctx context.Context) (*Lease, error) {
	log := c.logger().With("interface", c.Interface, "family", 6)
	iface, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %q for DHCPv6: %w", c.Interface, err)
	}
	cl, err := c.openV6(ctx, log)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	mods := []dhcpv6.Modifier{dhcpv6.WithRequestedOptions(
		dhcpv6.OptionV6SZTPRedirect,
		dhcpv6.OptionDNSRecursiveNameServer,
		dhcpv6.OptionDomainSearchList,
	)}
	start := time.Now()
	log.Debug("sending SOLICIT", "timeout", c.timeout(), "attempts", c.attempts())
	adv, err := cl.Solicit(ctx, mods...)
	if err != nil {
		return nil, fmt.Errorf("soliciting DHCPv6 servers on %s: %w", c.Interface, err)
	}
	rep, err := cl.Request(ctx, adv, mods...)
	if err != nil {
		return nil, fmt.Errorf("requesting DHCPv6 lease on %s: %w", c.Interface, err)
	}
	l, err := LeaseFromDHCPv6(rep, c.Compat)
	if err != nil {
		return nil, fmt.Errorf("reading DHCPv6 lease on %s: %w", c.Interface, err)
	}
	l.Interface = c.Interface
	c.logLease(log, l, time.Since(start))

	if err := c.configure(ctx, iface, l, log); err != nil {
		return nil, err
	}
	return l, nil
}

// Close removes every address this client configured and that has not
// been released yet. The leases stay readable.
func (c *Client) Close() error {
	c.mu.Lock()
	undo := c.undo
	c.undo = nil
	c.mu.Unlock()
	var errs []error
	for _, u := range undo {
		if err := u.run(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// openV6 binds the DHCPv6 client socket, which needs a usable link-local
// address: right after the link comes up that address is tentative and
// bind fails with EADDRNOTAVAIL, so keep trying for up to Timeout.
func (c *Client) openV6(ctx context.Context, log *slog.Logger) (*nclient6.Client, error) {
	deadline := time.Now().Add(c.timeout())
	for {
		cl, err := nclient6.New(c.Interface,
			nclient6.WithTimeout(c.timeout()),
			nclient6.WithRetry(c.attempts()))
		if err == nil {
			return cl, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("opening DHCPv6 client on %s (is there a usable link-local address?): %w", c.Interface, err)
		}
		log.Debug("DHCPv6 socket not ready, waiting for link-local address", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("opening DHCPv6 client on %s: %w (last error: %v)", c.Interface, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// configure adds the leased address when ConfigureAddress asks for it and
// the interface has no usable address of that family.
func (c *Client) configure(ctx context.Context, iface *net.Interface, l *Lease, log *slog.Logger) error {
	if !c.ConfigureAddress {
		return nil
	}
	if l.Address.IP == nil {
		log.Info("lease carries no address; nothing to configure")
		return nil
	}
	has, err := hasUsableAddress(iface, l.Family)
	if err != nil {
		return fmt.Errorf("checking addresses of %s: %w", iface.Name, err)
	}
	if has {
		log.Debug("interface already has a usable address; leaving it alone", "leased", l.Address.String())
		return nil
	}
	if err := addAddress(iface.Index, l.Address, l.Lifetime); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			// Someone added it between the check and now; not ours to remove.
			return nil
		}
		return fmt.Errorf("adding leased address %s to %s: %w", l.Address.String(), iface.Name, err)
	}
	u := &addressUndo{ifindex: iface.Index, ifname: iface.Name, addr: l.Address, remove: removeAddress}
	l.undo = u
	c.mu.Lock()
	c.undo = append(c.undo, u)
	c.mu.Unlock()
	log.Info("configured leased address", "address", l.Address.String(), "lifetime", l.Lifetime)

	if l.Family == 6 {
		if err := c.waitDAD(ctx, iface, l, log); err != nil {
			if rerr := l.Release(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return err
		}
	}
	return nil
}

// waitDAD waits for the kernel's duplicate address detection on a new IPv6
// address: until it finishes, the address cannot be used as a source and a
// connection to the bootstrap server would fail.
func (c *Client) waitDAD(ctx context.Context, iface *net.Interface, l *Lease, log *slog.Logger) error {
	deadline := time.Now().Add(c.timeout())
	for {
		flags, found, err := addressState(iface.Index, l.Address.IP)
		if err != nil {
			return fmt.Errorf("checking duplicate address detection for %s on %s: %w", l.Address.IP, iface.Name, err)
		}
		switch {
		case !found:
			return fmt.Errorf("leased address %s vanished from %s during duplicate address detection", l.Address.IP, iface.Name)
		case flags&ifaFDadFailed != 0:
			return fmt.Errorf("leased address %s is already in use on the link of %s (duplicate address detection failed)", l.Address.IP, iface.Name)
		case flags&ifaFTentative == 0:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leased address %s on %s still tentative after %s", l.Address.IP, iface.Name, c.timeout())
		}
		log.Debug("waiting for duplicate address detection", "address", l.Address.IP.String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for duplicate address detection of %s on %s: %w", l.Address.IP, iface.Name, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// hasUsableAddress reports whether the interface already has a global
// (non-link-local, non-loopback) address of the family.
func hasUsableAddress(iface *net.Interface, family int) (bool, error) {
	addrs, err := iface.Addrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if is4 := ipn.IP.To4() != nil; is4 != (family == 4) {
			continue
		}
		if ipn.IP.IsGlobalUnicast() {
			return true, nil
		}
	}
	return false, nil
}

func (c *Client) logLease(log *slog.Logger, l *Lease, took time.Duration) {
	log.Info("DHCP lease received",
		"address", l.Address.String(),
		"server", l.ServerID,
		"bootstrap_uris", l.BootstrapURIs,
		"form", l.Form,
		"took", took)
	for _, d := range l.Dropped {
		log.Warn("ignored part of sztp-redirect option", "reason", d)
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return defaultTimeout
	}
	return c.Timeout
}

// attempts converts Retries into the libraries' count of transmissions.
func (c *Client) attempts() int {
	switch {
	case c.Retries < 0:
		return 1
	case c.Retries == 0:
		return 1 + defaultRetries
	default:
		return 1 + c.Retries
	}
}

// nclient4Log forwards the library's packet log to slog at Debug level.
type nclient4Log struct{ l *slog.Logger }

func (n nclient4Log) Printf(format string, v ...any) {
	n.l.Debug(fmt.Sprintf(format, v...))
}

func (n nclient4Log) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	if n.l.Enabled(context.Background(), slog.LevelDebug) {
		n.l.Debug(prefix, "message", m.Summary())
	}
}
