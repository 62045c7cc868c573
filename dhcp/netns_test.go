//go:build linux

package dhcp

// Integration tests against real DHCP servers (dnsmasq, Kea) in network
// namespaces created by tools/netns-dhcp.sh.
//
// The Go client runs inside the client namespace by re-executing this test
// binary under `ip netns exec <ns>` with helperEnv set; TestMain then runs
// one discovery and prints the result as JSON instead of running tests.
// That is more robust than unix.Setns on a locked OS thread: the DHCP
// libraries start goroutines that may run on other threads, and
// net.InterfaceByName, rtnetlink and sysfs lookups must all see the client
// namespace. A whole process inside `ip netns exec` gets that for free,
// including a /sys remounted for the namespace.
//
// The tests need root. They are skipped without root or without the server
// binaries, except when CI=true, where that is a failure.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	helperEnv       = "SZTP_DHCP_NETNS_HELPER" // "4" or "6": run one discovery and exit
	helperIfaceEnv  = "SZTP_DHCP_HELPER_IFACE"
	helperConfigEnv = "SZTP_DHCP_HELPER_CONFIGURE"
	helperMarker    = "SZTP-DHCP-HELPER-RESULT "
	netnsScript     = "../tools/netns-dhcp.sh"
)

func TestMain(m *testing.M) {
	if family := os.Getenv(helperEnv); family != "" {
		os.Exit(runHelper(family))
	}
	os.Exit(m.Run())
}

// helperResult is what the helper process reports back.
type helperResult struct {
	Err                  string
	Family               int
	Interface            string
	Source               string
	URIs                 []string
	Form                 string
	Dropped              []string
	Address              string
	Router               string
	DNS                  []string
	Search               []string
	ServerID             string
	Configured           bool // the leased address was on the interface after discovery
	PresentAfterRelease  bool // ... and still there after Release
	PresentAfterClose    bool // ... and still there after Client.Close
	ReleaseErr, CloseErr string
	Took                 time.Duration
}

func runHelper(family string) int {
	res := helperResult{}
	defer func() {
		b, _ := json.Marshal(res)
		fmt.Println(helperMarker + string(b))
	}()
	iface := os.Getenv(helperIfaceEnv)
	c := &Client{
		Interface:        iface,
		Timeout:          time.Second,
		Retries:          2,
		ConfigureAddress: os.Getenv(helperConfigEnv) == "1",
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var (
		l   *Lease
		err error
	)
	if family == "6" {
		l, err = c.DiscoverV6(ctx)
	} else {
		l, err = c.DiscoverV4(ctx)
	}
	res.Took = time.Since(start)
	if err != nil {
		res.Err = err.Error()
		return 0
	}
	res.Family, res.Interface, res.Source = l.Family, l.Interface, l.Source
	res.URIs, res.Form = l.BootstrapURIs, l.Form
	for _, d := range l.Dropped {
		res.Dropped = append(res.Dropped, d.Error())
	}
	res.Address = l.Address.String()
	res.Router = ipString(l.Router)
	for _, ip := range l.DNSServers {
		res.DNS = append(res.DNS, ip.String())
	}
	res.Search = l.DomainSearch
	res.ServerID = ipString(l.ServerID)
	res.Configured = ifaceHas(iface, l.Address.IP)
	if err := l.Release(); err != nil {
		res.ReleaseErr = err.Error()
	}
	res.PresentAfterRelease = ifaceHas(iface, l.Address.IP)
	if err := c.Close(); err != nil {
		res.CloseErr = err.Error()
	}
	res.PresentAfterClose = ifaceHas(iface, l.Address.IP)
	return 0
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func ifaceHas(name string, ip net.IP) bool {
	if ip == nil {
		return false
	}
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return false
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// requireLab skips or fails when the test cannot run here: it needs root
// and the given binaries. Under CI=true nothing is skipped.
func requireLab(t *testing.T, binaries ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, b := range append([]string{"ip"}, binaries...) {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the netns DHCP test cannot run: missing %s (apt-get install dnsmasq-base kea-dhcp4-server kea-dhcp6-server iproute2; run as root)", strings.Join(missing, ", "))
	}
	t.Skipf("missing %s; set CI=true to turn this into a failure", strings.Join(missing, ", "))
}

type lab struct {
	srvNS, cliNS string
	srvIf, cliIf string
	dir          string
}

var labCounter atomic.Int64

// newLab creates a namespace pair unique to this test and tears it down in
// t.Cleanup, whatever happens.
func newLab(t *testing.T) *lab {
	t.Helper()
	script, err := filepath.Abs(netnsScript)
	if err != nil {
		t.Fatalf("locating %s: %v", netnsScript, err)
	}
	id := fmt.Sprintf("sztpdhcp%d-%d", os.Getpid(), labCounter.Add(1))
	start := time.Now()
	t.Cleanup(func() {
		if out, err := exec.Command(script, "teardown", id).CombinedOutput(); err != nil {
			t.Errorf("tearing down namespaces %s: %v\n%s", id, err, out)
		}
	})
	out, err := exec.Command(script, "setup", id).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("setting up namespaces %s: %v\n%s", id, err, ee.Stderr)
		}
		t.Fatalf("setting up namespaces %s: %v", id, err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	t.Logf("namespaces %s up in %s", id, time.Since(start).Round(time.Millisecond))
	return &lab{srvNS: vars["SRV_NS"], cliNS: vars["CLI_NS"], srvIf: vars["SRV_IF"], cliIf: vars["CLI_IF"], dir: t.TempDir()}
}

// startServer runs argv inside the server namespace in the foreground,
// stops it in t.Cleanup, and waits until its log shows ready.
func (l *lab) startServer(t *testing.T, name string, env []string, ready []string, argv ...string) {
	t.Helper()
	logPath := filepath.Join(l.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating %s: %v", logPath, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.srvNS}, argv...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// `ip netns exec` execs the server, so this pid is the server.
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if allContained(string(b), ready) {
			t.Logf("%s ready in %s", name, time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited during start-up: %v\n%s", name, err, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 10s; log:\n%s", name, b)
		}
	}
}

func allContained(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// discover runs the client in the client namespace and returns its result.
func (l *lab) discover(t *testing.T, family int, configure bool) helperResult {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.cliNS, os.Args[0])
	cfg := "0"
	if configure {
		cfg = "1"
	}
	// A -race binary sleeps 1 s at exit by default (atexit_sleep_ms), which
	// would dominate every subtest.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(),
		"GORACE="+gorace,
		fmt.Sprintf("%s=%d", helperEnv, family),
		helperIfaceEnv+"="+l.cliIf,
		helperConfigEnv+"="+cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("running DHCPv%d helper in %s: %v\nstderr:\n%s", family, l.cliNS, err, stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, helperMarker); ok {
			var res helperResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatalf("decoding helper result %q: %v", rest, err)
			}
			if res.Err != "" {
				t.Fatalf("DHCPv%d discovery failed: %s\nclient log:\n%s", family, res.Err, stderr.String())
			}
			t.Logf("DHCPv%d discovery took %s", family, res.Took.Round(time.Microsecond))
			return res
		}
	}
	t.Fatalf("helper printed no result\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return helperResult{}
}

// colonHex renders a payload the way dnsmasq's dhcp-option wants it.
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func mustEncode(t *testing.T, uris []string) []byte {
	t.Helper()
	p, err := EncodeSZTPRedirect(uris)
	if err != nil {
		t.Fatalf("encoding %v: %v", uris, err)
	}
	return p
}

func inRange(t *testing.T, cidr, lo, hi string) {
	t.Helper()
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatalf("leased address %q: %v", cidr, err)
	}
	a, b := net.ParseIP(lo), net.ParseIP(hi)
	if bytes.Compare(ip.To16(), a.To16()) < 0 || bytes.Compare(ip.To16(), b.To16()) > 0 {
		t.Errorf("leased address %s outside pool %s-%s", ip, lo, hi)
	}
}

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s = %s, want %s", what, gb, wb)
	}
}

var (
	dnsmasqV4URIs = []string{"https://192.0.2.1:8443", "https://[2001:db8:1::1]:8443"}
	dnsmasqV6URIs = []string{"https://[2001:db8:1::1]:8443", "https://bootstrap6.example.net"}
)

func TestNetnsDnsmasq(t *testing.T) {
	requireLab(t, "dnsmasq")
	l := newLab(t)
	conf := filepath.Join(l.dir, "dnsmasq.conf")
	lines := []string{
		"port=0", // no DNS service, DHCP only
		"interface=" + l.srvIf,
		"bind-interfaces",
		"user=root",
		"group=root",
		"leasefile-ro",
		"log-dhcp",
		"no-ping", // otherwise each v4 offer waits ~3 s for a ping check
		"dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h",
		"dhcp-option=option:router,192.0.2.1",
		"dhcp-option=option:dns-server,192.0.2.53,192.0.2.54",
		"dhcp-option=option:domain-name,example.net",
		"dhcp-option=option:domain-search,example.net,lab.example.net",
		"dhcp-option=143," + colonHex(mustEncode(t, dnsmasqV4URIs)),
		"dhcp-option=option6:dns-server,[2001:db8:1::53]",
		"dhcp-option=option6:domain-search,example.net,lab.example.net",
		"dhcp-option=option6:136," + colonHex(mustEncode(t, dnsmasqV6URIs)),
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.startServer(t, "dnsmasq", nil, []string{"DHCP, IP range", "DHCPv6, IP range"},
		"dnsmasq", "--keep-in-foreground", "--conf-file="+conf,
		"--pid-file="+filepath.Join(l.dir, "dnsmasq.pid"), "--log-facility=-")

	t.Run("v4", func(t *testing.T) {
		r := l.discover(t, 4, false)
		check(t, "URIs", r.URIs, dnsmasqV4URIs)
		check(t, "Form", r.Form, FormRFC8572)
		check(t, "Dropped", r.Dropped, []string(nil))
		check(t, "Source", r.Source, SourceDHCPv4)
		check(t, "Interface", r.Interface, l.cliIf)
		inRange(t, r.Address, "192.0.2.100", "192.0.2.150")
		if !strings.HasSuffix(r.Address, "/24") {
			t.Errorf("Address %s, want a /24", r.Address)
		}
		check(t, "Router", r.Router, "192.0.2.1")
		check(t, "DNS", r.DNS, []string{"192.0.2.53", "192.0.2.54"})
		check(t, "Search", r.Search, []string{"example.net", "lab.example.net"})
		check(t, "ServerID", r.ServerID, "192.0.2.1")
		check(t, "Configured", r.Configured, false)
	})
	t.Run("v6", func(t *testing.T) {
		r := l.discover(t, 6, false)
		check(t, "URIs", r.URIs, dnsmasqV6URIs)
		check(t, "Form", r.Form, FormRFC8572)
		check(t, "Dropped", r.Dropped, []string(nil))
		check(t, "Source", r.Source, SourceDHCPv6)
		inRange(t, r.Address, "2001:db8:1::100", "2001:db8:1::1ff")
		if !strings.HasSuffix(r.Address, "/128") {
			t.Errorf("Address %s, want a /128", r.Address)
		}
		check(t, "DNS", r.DNS, []string{"2001:db8:1::53"})
		check(t, "Search", r.Search, []string{"example.net", "lab.example.net"})
		check(t, "Configured", r.Configured, false)
	})
	for _, family := range []int{4, 6} {
		t.Run(fmt.Sprintf("v%d-configure-address", family), func(t *testing.T) {
			r := l.discover(t, family, true)
			check(t, "Configured", r.Configured, true)
			check(t, "PresentAfterRelease", r.PresentAfterRelease, false)
			check(t, "PresentAfterClose", r.PresentAfterClose, false)
			check(t, "ReleaseErr", r.ReleaseErr, "")
			check(t, "CloseErr", r.CloseErr, "")
		})
	}
	t.Run("v4-existing-address-left-alone", func(t *testing.T) {
		// With a usable address already there, ConfigureAddress must not
		// add a second one (or remove anything on Release).
		existing := "192.0.2.50/24"
		if out, err := exec.Command("ip", "-n", l.cliNS, "addr", "add", existing, "dev", l.cliIf).CombinedOutput(); err != nil {
			t.Fatalf("adding %s: %v\n%s", existing, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "-n", l.cliNS, "addr", "del", existing, "dev", l.cliIf).Run() })
		r := l.discover(t, 4, true)
		check(t, "URIs", r.URIs, dnsmasqV4URIs)
		check(t, "Configured", r.Configured, false)
		out, err := exec.Command("ip", "-n", l.cliNS, "-4", "addr", "show", "dev", l.cliIf).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "192.0.2.50/24") {
			t.Errorf("pre-existing address gone after discovery (err %v):\n%s", err, out)
		}
	})
}

// keaURIs is long enough that option 143 exceeds 255 octets and Kea has to
// split it into several instances (RFC 3396).
var keaURIs = []string{
	"https://bootstrap-01.sztp.example.net:8443",
	"https://bootstrap-02.sztp.example.net:8443",
	"https://[2001:db8:1::1]:8443",
	"https://192.0.2.1",
	"https://bootstrap-03.sztp.example.net",
	"https://bootstrap-04.sztp.example.net:9443",
	"https://bootstrap-05.sztp.example.net:8443",
	"https://[2001:db8:1::2]",
	"https://bootstrap-06.sztp.example.net:8443",
}

func TestNetnsKea(t *testing.T) {
	requireLab(t, "kea-dhcp4", "kea-dhcp6")
	payload := mustEncode(t, keaURIs)
	if len(payload) <= 255 {
		t.Fatalf("test payload is %d octets; it must exceed 255 to exercise RFC 3396", len(payload))
	}
	l := newLab(t)
	env := []string{"KEA_PIDFILE_DIR=" + l.dir, "KEA_LOCKFILE_DIR=" + l.dir}
	logger := func(name string) []map[string]any {
		return []map[string]any{{
			"name":           name,
			"output_options": []map[string]any{{"output": "stdout"}},
			"severity":       "INFO",
		}}
	}
	kea4 := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{l.srvIf}, "dhcp-socket-type": "raw"},
		"lease-database":    map[string]any{"type": "memfile", "persist": false},
		"valid-lifetime":    3600,
		"subnet4": []map[string]any{{
			"id": 1, "subnet": "192.0.2.0/24", "interface": l.srvIf,
			"pools": []map[string]any{{"pool": "192.0.2.100 - 192.0.2.150"}},
			"option-data": []map[string]any{
				{"code": OptionV4SZTPRedirect, "csv-format": false, "data": hex.EncodeToString(payload)},
				{"name": "routers", "data": "192.0.2.1"},
				{"name": "domain-name-servers", "data": "192.0.2.53"},
			},
		}},
		"loggers": logger("kea-dhcp4"),
	}}
	kea6 := map[string]any{"Dhcp6": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{l.srvIf}},
		"server-id":         map[string]any{"type": "LLT", "persist": false}, // else it writes /var/lib/kea
		"lease-database":    map[string]any{"type": "memfile", "persist": false},
		"subnet6": []map[string]any{{
			"id": 1, "subnet": "2001:db8:1::/64", "interface": l.srvIf,
			"pools": []map[string]any{{"pool": "2001:db8:1::100 - 2001:db8:1::1ff"}},
			"option-data": []map[string]any{
				{"code": OptionV6SZTPRedirect, "space": "dhcp6", "csv-format": false, "data": hex.EncodeToString(payload)},
				{"name": "dns-servers", "data": "2001:db8:1::53"},
			},
		}},
		"loggers": logger("kea-dhcp6"),
	}}
	for name, cfg := range map[string]any{"kea4.json": kea4, "kea6.json": kea6} {
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.startServer(t, "kea-dhcp4", env, []string{"DHCP4_STARTED"}, "kea-dhcp4", "-c", filepath.Join(l.dir, "kea4.json"))
	l.startServer(t, "kea-dhcp6", env, []string{"DHCP6_STARTED"}, "kea-dhcp6", "-c", filepath.Join(l.dir, "kea6.json"))

	t.Run("v4-split-option", func(t *testing.T) {
		r := l.discover(t, 4, false)
		check(t, "URIs", r.URIs, keaURIs)
		check(t, "Form", r.Form, FormRFC8572)
		check(t, "Dropped", r.Dropped, []string(nil))
		inRange(t, r.Address, "192.0.2.100", "192.0.2.150")
		check(t, "Router", r.Router, "192.0.2.1")
		check(t, "DNS", r.DNS, []string{"192.0.2.53"})
		check(t, "ServerID", r.ServerID, "192.0.2.1")
	})
	t.Run("v6-long-option", func(t *testing.T) {
		r := l.discover(t, 6, false)
		check(t, "URIs", r.URIs, keaURIs)
		check(t, "Form", r.Form, FormRFC8572)
		inRange(t, r.Address, "2001:db8:1::100", "2001:db8:1::1ff")
		check(t, "DNS", r.DNS, []string{"2001:db8:1::53"})
	})
	t.Run("v4-configure-address", func(t *testing.T) {
		r := l.discover(t, 4, true)
		check(t, "Configured", r.Configured, true)
		check(t, "PresentAfterRelease", r.PresentAfterRelease, false)
	})
}
