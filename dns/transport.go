package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ednsUDPSize is what unicast queries advertise: the DNS Flag Day 2020
// value, which avoids IP fragmentation. Multi-KB artifacts then come back
// truncated and are fetched again over TCP (RFC 7766), which is the path
// signed data is expected to take (checklist DNS-06).
const ednsUDPSize = 1232

// mdnsMaxSize is the largest mDNS message (RFC 6762 §17); it is both what
// we advertise and (with headroom) our read buffer.
const mdnsMaxSize = 9000

var (
	mdnsGroup4 = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	mdnsGroup6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}
)

// unicastSetup resolves the configured servers and domains, falling back
// to resolv.conf. A missing resolv.conf is not an error: RFC 8572 §4.2
// uses unicast DNS only "if a DNS server/domain is known".
func unicastSetup(c Config, log *slog.Logger) (servers, domains []string, err error) {
	servers, domains = c.Servers, c.Domains
	if len(servers) == 0 || len(domains) == 0 {
		path := c.ResolvConf
		if path == "" {
			path = defaultResolv
		}
		rc, rerr := mdns.ClientConfigFromFile(path)
		switch {
		case errors.Is(rerr, os.ErrNotExist):
			log.Debug("no resolv.conf; unicast DNS unknown", "path", path)
		case rerr != nil:
			return nil, nil, fmt.Errorf("dns: reading %s: %w", path, rerr)
		default:
			if len(servers) == 0 {
				servers = rc.Servers
			}
			if len(domains) == 0 {
				domains = rc.Search
			}
		}
	}
	var outS, outD []string
	for _, s := range servers {
		outS = append(outS, withPort(s))
	}
	var bad []error
	for _, d := range domains {
		n, derr := normalizeDomain(d)
		if derr != nil {
			bad = append(bad, derr)
			continue
		}
		// .local names belong to mDNS only (RFC 6762 §3); asking a
		// unicast resolver would leak the serial number for nothing.
		if n == "local." || strings.HasSuffix(n, ".local.") {
			log.Debug("skipping .local search domain for unicast DNS", "domain", n)
			continue
		}
		outD = append(outD, n)
	}
	if len(outS) == 0 || len(outD) == 0 {
		log.Debug("unicast DNS skipped", "servers", outS, "domains", outD)
		outD = nil
	}
	return outS, outD, errors.Join(bad...)
}

// withPort adds port 53 to a server given without one; a bare IPv6
// literal (with colons, no brackets) is taken as a host.
func withPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}

// unicastQuery asks the servers in order until one gives a definitive
// answer for name: a NOERROR answer (decoded by decode) or NXDOMAIN. A
// transport error, a non-answer rcode (SERVFAIL, REFUSED, ...) or an
// ambiguous record moves on to the next server. The servers are assumed to
// be equivalent resolvers, so one definitive negative is enough.
func unicastQuery(ctx context.Context, c Config, log *slog.Logger, servers []string, name string, qtype uint16, decode func(*mdns.Msg) error) error {
	var errs []error
	for _, srv := range servers {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if c.observe != nil {
			c.observe(viaUnicast, name, qtype)
		}
		log.Debug("dns query", "transport", viaUnicast, "server", srv, "name", name)
		r, err := exchange(ctx, c, log, srv, name, qtype)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		switch r.Rcode {
		case mdns.RcodeNameError:
			return fmt.Errorf("%s: %s: NXDOMAIN: %w", srv, name, ErrNotFound)
		case mdns.RcodeSuccess:
		default:
			errs = append(errs, fmt.Errorf("%s: %s: rcode %s", srv, name, mdns.RcodeToString[r.Rcode]))
			continue
		}
		err = decode(r)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%s: %w", srv, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", srv, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("%s: no server to ask: %w", name, ErrNotFound)
	}
	return errors.Join(errs...)
}

// exchange sends one query over UDP and, if the answer is truncated,
// repeats it over TCP. Each leg gets its own Timeout.
func exchange(ctx context.Context, c Config, log *slog.Logger, server, name string, qtype uint16) (*mdns.Msg, error) {
	q := new(mdns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(ednsUDPSize, false)

	r, err := exchangeOnce(ctx, c, "udp", server, q)
	if err != nil {
		return nil, fmt.Errorf("udp query %s %s: %w", name, mdns.TypeToString[qtype], err)
	}
	if r.Truncated {
		log.Debug("answer truncated, retrying over TCP", "server", server, "name", name)
		r, err = exchangeOnce(ctx, c, "tcp", server, q)
		if err != nil {
			return nil, fmt.Errorf("tcp query %s %s after truncated udp answer: %w", name, mdns.TypeToString[qtype], err)
		}
		if r.Truncated {
			// TC over TCP means the server could not fit the data at
			// all; using part of an artifact would be worse than none.
			return nil, fmt.Errorf("tcp answer for %s still truncated", name)
		}
	}
	if err := checkQuestion(r, name, qtype); err != nil {
		return nil, err
	}
	return r, nil
}

func exchangeOnce(ctx context.Context, c Config, network, server string, q *mdns.Msg) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cl := &mdns.Client{Net: network, Timeout: c.Timeout, UDPSize: ednsUDPSize}
	r, _, err := cl.ExchangeContext(ctx, q, server)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// checkQuestion makes sure the answer is about what we asked; miekg/dns
// already matched the message ID.
func checkQuestion(r *mdns.Msg, name string, qtype uint16) error {
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, name) || r.Question[0].Qtype != qtype {
		return fmt.Errorf("answer does not match question %s %s", name, mdns.TypeToString[qtype])
	}
	return nil
}

// mdnsQuery sends a one-shot legacy-unicast mDNS query (RFC 6762 §5.1,
// §6.7): from an ephemeral port, so responders answer by unicast straight
// to our socket with our message ID and we need not bind 5353 (which an
// mDNS daemon on the device may own). IPv4 always; IPv6 too when an
// interface is configured. Responses are read until decode accepts one or
// Timeout passes. Silence is the normal mDNS "no" and yields ErrNotFound.
//
// Truncated responses are discarded: mDNS defines no TCP fallback for a
// one-shot querier, and a partial artifact is useless.
func mdnsQuery(ctx context.Context, c Config, log *slog.Logger, name string, qtype uint16, decode func(*mdns.Msg) error) error {
	var ifi *net.Interface
	if c.Interface != "" {
		var err error
		if ifi, err = net.InterfaceByName(c.Interface); err != nil {
			return fmt.Errorf("mdns: interface %q: %w", c.Interface, err)
		}
	}
	q := new(mdns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = false
	q.SetEdns0(mdnsMaxSize, false)
	wire, err := q.Pack()
	if err != nil {
		return fmt.Errorf("mdns: packing query for %s: %w", name, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	type packet struct {
		b    []byte
		from net.Addr
	}
	pkts := make(chan packet, 16)
	var conns []net.PacketConn
	var sendErrs []error
	var wg sync.WaitGroup
	defer func() {
		for _, pc := range conns {
			pc.Close()
		}
		wg.Wait()
	}()

	open := func(family string) error {
		pc, dst, err := mdnsSocket(family, ifi)
		if err != nil {
			return err
		}
		if c.observe != nil {
			c.observe(viaMDNS, name, qtype)
		}
		log.Debug("dns query", "transport", viaMDNS, "family", family, "name", name, "interface", c.Interface)
		if _, err := pc.WriteTo(wire, dst); err != nil {
			pc.Close()
			return fmt.Errorf("mdns: sending to %s: %w", dst, err)
		}
		conns = append(conns, pc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				buf := make([]byte, 65536)
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return // closed on return, or a hard socket error
				}
				select {
				case pkts <- packet{buf[:n], from}:
				case <-ctx.Done():
					return
				}
			}
		}()
		return nil
	}
	if err := open("udp4"); err != nil {
		sendErrs = append(sendErrs, err)
	}
	if ifi != nil {
		if err := open("udp6"); err != nil {
			// Many devices have no usable IPv6 on the interface;
			// IPv4 alone is a complete attempt.
			log.Debug("mDNS over IPv6 not sent", "err", err)
		}
	}
	if len(conns) == 0 {
		return fmt.Errorf("mdns: no query sent for %s: %w", name, errors.Join(sendErrs...))
	}

	// A responder whose data is unusable does not end the wait: another
	// responder on the link may still answer well.
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			if lastErr != nil && !errors.Is(lastErr, ErrNotFound) {
				return lastErr
			}
			return fmt.Errorf("mdns: no answer for %s within %s: %w", name, c.Timeout, ErrNotFound)
		case p := <-pkts:
			r := new(mdns.Msg)
			if err := r.Unpack(p.b); err != nil {
				log.Debug("ignoring undecodable mDNS packet", "from", p.from, "err", err)
				continue
			}
			// Legacy unicast answers repeat our ID; ID 0 is what
			// multicast-style responses carry, accepted for lenience.
			if !r.Response || r.Opcode != mdns.OpcodeQuery || (r.Id != q.Id && r.Id != 0) {
				continue
			}
			if r.Truncated {
				log.Warn("ignoring truncated mDNS answer", "from", p.from, "name", name)
				continue
			}
			err := decode(r)
			if err == nil {
				log.Debug("mDNS answer accepted", "from", p.from, "name", name)
				return nil
			}
			lastErr = fmt.Errorf("mdns: answer from %s: %w", p.from, err)
			log.Debug("mDNS answer not usable", "from", p.from, "err", err)
		}
	}
}

// mdnsSocket opens an ephemeral UDP socket set up to send to the mDNS group
// of the family: outgoing interface when given, and hop limit 255 as RFC
// 6762 §11 asks (receivers may check it).
func mdnsSocket(family string, ifi *net.Interface) (net.PacketConn, net.Addr, error) {
	pc, err := net.ListenPacket(family, ":0")
	if err != nil {
		return nil, nil, fmt.Errorf("mdns: opening %s socket: %w", family, err)
	}
	var dst net.Addr
	switch family {
	case "udp4":
		p := ipv4.NewPacketConn(pc)
		if err := p.SetMulticastTTL(255); err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("mdns: setting multicast TTL: %w", err)
		}
		if ifi != nil {
			if err := p.SetMulticastInterface(ifi); err != nil {
				pc.Close()
				return nil, nil, fmt.Errorf("mdns: selecting interface %s: %w", ifi.Name, err)
			}
		}
		dst = mdnsGroup4
	default:
		p := ipv6.NewPacketConn(pc)
		if err := p.SetMulticastHopLimit(255); err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("mdns: setting multicast hop limit: %w", err)
		}
		if err := p.SetMulticastInterface(ifi); err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("mdns: selecting interface %s: %w", ifi.Name, err)
		}
		dst = &net.UDPAddr{IP: mdnsGroup6.IP, Port: mdnsGroup6.Port, Zone: ifi.Name}
	}
	return pc, dst, nil
}
