//go:build linux

package dns

// mDNS-then-unicast tests across a real link: two network namespaces made
// by tools/dns-netns.sh and joined by a veth pair with multicast on.
//
// The server namespace runs NSD (unicast, example.test) and a small mDNS
// responder written below; the client namespace runs DeviceSpecific /
// DeviceIndependent. Both Go sides are this test binary re-executed under
// `ip netns exec NS` with helperEnv selecting the mode: a whole process in
// the namespace sees its interfaces and routes with no thread/setns
// subtleties. Results come back as one JSON line on stdout.
//
// The responder answers one-shot ("legacy unicast", RFC 6762 §6.7) queries
// by unicast to the querier's address and port, repeating the query ID, as
// Avahi and mDNSResponder do; it prints every question it receives, which
// is the server-side evidence that mDNS was asked.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	helperEnv       = "SZTP_DNS_NETNS_HELPER" // "responder" or "client"
	helperConfigEnv = "SZTP_DNS_HELPER_CONFIG"
	helperMarker    = "SZTP-DNS-HELPER "
	netnsScript     = "../tools/dns-netns.sh"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "responder":
		os.Exit(runResponder(os.Getenv(helperConfigEnv)))
	case "client":
		os.Exit(runClient(os.Getenv(helperConfigEnv)))
	}
	os.Exit(m.Run())
}

// responderConfig is what the responder helper serves.
type responderConfig struct {
	Interface string
	Families  []string // "udp4", "udp6"
	Records   []byte   // a packed DNS message whose answer section is the record store
}

func runResponder(path string) int {
	var rc responderConfig
	if err := readJSON(path, &rc); err != nil {
		fmt.Fprintln(os.Stderr, "responder:", err)
		return 2
	}
	store := new(mdns.Msg)
	if err := store.Unpack(rc.Records); err != nil {
		fmt.Fprintln(os.Stderr, "responder: records:", err)
		return 2
	}
	ifi, err := net.InterfaceByName(rc.Interface)
	if err != nil {
		fmt.Fprintln(os.Stderr, "responder:", err)
		return 2
	}
	var mu sync.Mutex // serialises stdout lines from both families
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	for _, fam := range rc.Families {
		// Bound to the wildcard address on 5353 (not to the group
		// address) so that unicast replies get a proper source address.
		pc, err := net.ListenPacket(fam, ":5353")
		if err != nil {
			fmt.Fprintln(os.Stderr, "responder:", err)
			return 2
		}
		if fam == "udp4" {
			err = ipv4.NewPacketConn(pc).JoinGroup(ifi, mdnsGroup4)
		} else {
			err = ipv6.NewPacketConn(pc).JoinGroup(ifi, mdnsGroup6)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "responder: join:", err)
			return 2
		}
		go serveMDNS(pc, fam, store, say)
	}
	say("READY")
	select {} // until the test kills us
}

func serveMDNS(pc net.PacketConn, fam string, store *mdns.Msg, say func(string, ...any)) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := new(mdns.Msg)
		if q.Unpack(buf[:n]) != nil || q.Response || len(q.Question) == 0 {
			continue
		}
		r := new(mdns.Msg)
		r.SetReply(q)
		r.Authoritative = true
		for _, qu := range q.Question {
			say("QUERY %s %s %s", fam, qu.Name, mdns.TypeToString[qu.Qtype])
			for _, rr := range store.Answer {
				if strings.EqualFold(rr.Header().Name, qu.Name) && rr.Header().Rrtype == qu.Qtype {
					r.Answer = append(r.Answer, rr)
				}
			}
		}
		// Silence is how mDNS says "no" (RFC 6762 §6). Only legacy
		// unicast is implemented: a querier on 5353 would be a full
		// mDNS stack, which the code under test is not.
		if len(r.Answer) == 0 || from.(*net.UDPAddr).Port == 5353 {
			continue
		}
		if b, err := r.Pack(); err == nil {
			_, _ = pc.WriteTo(b, from)
		}
	}
}

// clientConfig / clientResult are the client helper's input and output.
type clientConfig struct {
	Op        string // "specific" or "independent"
	Serial    string
	Servers   []string
	Domains   []string
	MDNS      bool
	Interface string
	Timeout   time.Duration
}

type clientResult struct {
	Err          string
	NotFound     bool
	LookupFailed bool
	Artifacts    *Artifacts
	Targets      []Target
	Queries      []string // "transport name", in the order asked
	Took         time.Duration
}

func runClient(path string) int {
	var cc clientConfig
	if err := readJSON(path, &cc); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 2
	}
	var res clientResult
	c := Config{
		Servers: cc.Servers, Domains: cc.Domains, MDNS: cc.MDNS, Interface: cc.Interface,
		Timeout:    cc.Timeout,
		ResolvConf: "/nonexistent", // never fall back to the host's resolvers
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	var mu sync.Mutex
	c.observe = func(transport, name string, _ uint16) {
		mu.Lock()
		defer mu.Unlock()
		res.Queries = append(res.Queries, transport+" "+name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var err error
	if cc.Op == "specific" {
		res.Artifacts, err = DeviceSpecific(ctx, c, cc.Serial)
	} else {
		res.Targets, err = DeviceIndependent(ctx, c)
	}
	res.Took = time.Since(start)
	if err != nil {
		res.Err = err.Error()
		res.NotFound = errors.Is(err, ErrNotFound)
		res.LookupFailed = errors.Is(err, ErrLookupFailed)
	}
	b, _ := json.Marshal(res)
	fmt.Println(helperMarker + string(b))
	return 0
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading helper config: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding helper config: %w", err)
	}
	return nil
}

type netnsLab struct {
	srvNS, cliNS string
	exe, dir     string
}

var labCounter atomic.Int64

func newNetnsLab(t *testing.T) *netnsLab {
	t.Helper()
	script, err := filepath.Abs(netnsScript)
	if err != nil {
		t.Fatalf("locating %s: %v", netnsScript, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("locating the test binary: %v", err)
	}
	id := fmt.Sprintf("sztpdns%d-%d", os.Getpid(), labCounter.Add(1))
	// Registered before setup so a half-built lab is removed too; the
	// script's teardown is idempotent. Cleanups run last-in first-out,
	// so the processes started later are stopped before this runs.
	t.Cleanup(func() {
		if out, err := exec.Command(script, "teardown", id).CombinedOutput(); err != nil {
			t.Errorf("tearing down namespaces %s: %v\n%s", id, err, out)
		}
	})
	if out, err := exec.Command(script, "setup", id).CombinedOutput(); err != nil {
		t.Fatalf("creating namespaces: %v\n%s", err, out)
	}
	return &netnsLab{srvNS: id + "-srv", cliNS: id + "-cli", exe: exe, dir: t.TempDir()}
}

// responder is a running mDNS responder helper.
type responder struct {
	mu      sync.Mutex
	queries []string
}

func (r *responder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.queries...)
}

// startResponder serves records over mDNS in the server namespace until
// the test ends (or stop is called).
func (l *netnsLab) startResponder(t *testing.T, families []string, records ...mdns.RR) (*responder, func()) {
	t.Helper()
	store := new(mdns.Msg)
	store.Answer = records
	packed, err := store.Pack()
	if err != nil {
		t.Fatalf("packing responder records: %v", err)
	}
	cfg := l.writeJSON(t, "responder", responderConfig{Interface: "veth-srv", Families: families, Records: packed})
	cmd := exec.Command("ip", "netns", "exec", l.srvNS, l.exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=responder", helperConfigEnv+"="+cfg)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting responder: %v", err)
	}
	r := &responder{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "READY" {
				close(ready)
				continue
			}
			r.mu.Lock()
			r.queries = append(r.queries, line)
			r.mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("mDNS responder did not become ready")
	}
	return r, stop
}

var helperFiles atomic.Int64

func (l *netnsLab) writeJSON(t *testing.T, kind string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(l.dir, fmt.Sprintf("%s-%d.json", kind, helperFiles.Add(1)))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runClient runs one discovery in the client namespace.
func (l *netnsLab) runClient(t *testing.T, cc clientConfig) clientResult {
	t.Helper()
	cfg := l.writeJSON(t, "client", cc)
	cmd := exec.Command("ip", "netns", "exec", l.cliNS, l.exe, "-test.run=^$")
	// The race runtime sleeps 1 s at exit by default; the helper's
	// result is already printed by then.
	cmd.Env = append(os.Environ(), helperEnv+"=client", helperConfigEnv+"="+cfg, "GORACE=atexit_sleep_ms=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client helper: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, helperMarker); ok {
			var res clientResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatalf("decoding client result: %v", err)
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("client log:\n%s", stderr.String())
			}
			return res
		}
	}
	t.Fatalf("client helper printed no result\nstdout:\n%s\nstderr:\n%s", out, stderr.String())
	return clientResult{}
}

// mDNS fixtures: different bytes from the unicast ones, so the winner is
// visible; ~5.5 KB in one legacy-unicast answer, under the 9000-octet mDNS
// limit but far over one Ethernet frame.
var mdnsSN1 = artifactSet{CI: blob(11, 2000), OC: blob(12, 1500), OV: blob(13, 2000)}

func mdnsRecords(withSRV bool) []mdns.RR {
	const owner = "SN-DNS-1._sztp.local."
	rrs := []mdns.RR{
		txtRecord(owner, "ci", mdnsSN1.CI),
		txtRecord(owner, "oc", mdnsSN1.OC),
		txtRecord(owner, "ov", mdnsSN1.OV),
		txtRecord(owner, "vendor-x", []byte("ignored")),
	}
	if withSRV {
		rrs = append(rrs,
			srvRecord("_sztp._tcp.local.", 1, 0, 9443, "bs-late.local."),
			srvRecord("_sztp._tcp.local.", 0, 0, 8443, "bs-first.local."),
		)
	}
	return rrs
}

func TestMDNSNetns(t *testing.T) {
	requireLab(t, "ip", "nsd")
	l := newNetnsLab(t)
	ns := startNSD(t, l.srvNS, "198.51.100.1", 5300, map[string]string{"example.test": exampleZone()})
	base := clientConfig{
		Servers: []string{ns.Addr}, Domains: []string{"example.test"},
		MDNS: true, Interface: "veth-cli", Timeout: time.Second,
	}
	resp, stop := l.startResponder(t, []string{"udp4", "udp6"}, mdnsRecords(true)...)

	t.Run("mDNS answer wins over unicast", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial = "specific", "SN-DNS-1"
		res := l.runClient(t, cc)
		if res.Err != "" {
			t.Fatalf("DeviceSpecific: %s", res.Err)
		}
		a := res.Artifacts
		if a.Via != "mdns" || a.Name != "SN-DNS-1._sztp.local." {
			t.Errorf("Via=%q Name=%q", a.Via, a.Name)
		}
		assertArtifacts(t, a, mdnsSN1)
		for _, q := range res.Queries {
			if !strings.HasPrefix(q, "mdns ") {
				t.Errorf("unicast was asked although mDNS answered: %q", res.Queries)
			}
		}
		if !contains(resp.seen(), "QUERY udp4 SN-DNS-1._sztp.local. TXT") {
			t.Errorf("responder did not see the query: %q", resp.seen())
		}
		t.Logf("took %s, queries %q", res.Took, res.Queries)
	})

	t.Run("unicast used when mDNS is silent", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial = "specific", "SN-DNS-2"
		res := l.runClient(t, cc)
		if res.Err != "" {
			t.Fatalf("DeviceSpecific: %s", res.Err)
		}
		if res.Artifacts.Via != "unicast" || res.Artifacts.Name != "SN-DNS-2._sztp.example.test." {
			t.Errorf("Via=%q Name=%q", res.Artifacts.Via, res.Artifacts.Name)
		}
		assertArtifacts(t, res.Artifacts, unicastSN2)
		assertOrder(t, res.Queries, "SN-DNS-2._sztp.local.", "SN-DNS-2._sztp.example.test.")
		if !contains(resp.seen(), "QUERY udp4 SN-DNS-2._sztp.local. TXT") {
			t.Errorf("responder did not see the query: %q", resp.seen())
		}
	})

	t.Run("device-independent from mDNS", func(t *testing.T) {
		cc := base
		cc.Op = "independent"
		res := l.runClient(t, cc)
		if res.Err != "" {
			t.Fatalf("DeviceIndependent: %s", res.Err)
		}
		want := []Target{{Host: "bs-first.local", Port: 8443}, {Host: "bs-late.local", Port: 9443, Priority: 1}}
		if fmt.Sprint(res.Targets) != fmt.Sprint(want) {
			t.Errorf("targets %+v, want %+v", res.Targets, want)
		}
	})

	t.Run("default interface via the multicast route", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial, cc.Interface = "specific", "SN-DNS-1", ""
		res := l.runClient(t, cc)
		if res.Err != "" || res.Artifacts.Via != "mdns" {
			t.Fatalf("got %+v", res)
		}
	})

	t.Run("MDNS off asks unicast only", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial, cc.MDNS = "specific", "SN-DNS-1", false
		res := l.runClient(t, cc)
		if res.Err != "" || res.Artifacts.Via != "unicast" {
			t.Fatalf("got %+v", res)
		}
		assertArtifacts(t, res.Artifacts, unicastSN1)
		if len(res.Queries) != 1 || !strings.HasPrefix(res.Queries[0], "unicast ") {
			t.Errorf("queries %q", res.Queries)
		}
	})

	stop()
	resp6, _ := l.startResponder(t, []string{"udp6"}, mdnsRecords(false)...)

	t.Run("IPv6-only responder", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial = "specific", "SN-DNS-1"
		res := l.runClient(t, cc)
		if res.Err != "" || res.Artifacts.Via != "mdns" {
			t.Fatalf("got %+v", res)
		}
		assertArtifacts(t, res.Artifacts, mdnsSN1)
		if !contains(resp6.seen(), "QUERY udp6 SN-DNS-1._sztp.local. TXT") {
			t.Errorf("responder did not see the query over IPv6: %q", resp6.seen())
		}
	})

	t.Run("device-independent falls back to unicast", func(t *testing.T) {
		cc := base
		cc.Op = "independent"
		res := l.runClient(t, cc)
		if res.Err != "" {
			t.Fatalf("DeviceIndependent: %s", res.Err)
		}
		if len(res.Targets) != 3 || res.Targets[2].Host != "bs-c.example.test" {
			t.Errorf("targets %+v", res.Targets)
		}
		assertOrder(t, res.Queries, "_sztp._tcp.local.", "_sztp._tcp.example.test.")
	})

	t.Run("nothing anywhere", func(t *testing.T) {
		cc := base
		cc.Op, cc.Serial = "specific", "SN-NONE"
		res := l.runClient(t, cc)
		if !res.NotFound || res.LookupFailed {
			t.Fatalf("got %+v; want ErrNotFound", res)
		}
		// mDNS waits one Timeout, unicast answers at once.
		if res.Took > 3*time.Second {
			t.Errorf("took %s", res.Took)
		}
	})
}

// assertOrder checks that every mDNS query for mdnsName came before the
// first unicast query, which was for unicastName.
func assertOrder(t *testing.T, queries []string, mdnsName, unicastName string) {
	t.Helper()
	if len(queries) < 2 || queries[0] != "mdns "+mdnsName || queries[len(queries)-1] != "unicast "+unicastName {
		t.Fatalf("query order %q: want mdns %s first, unicast %s last", queries, mdnsName, unicastName)
	}
	sawUnicast := false
	for _, q := range queries {
		if strings.HasPrefix(q, "unicast ") {
			sawUnicast = true
		} else if sawUnicast {
			t.Errorf("mDNS query after a unicast one: %q", queries)
		}
	}
}
