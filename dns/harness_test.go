//go:build linux

package dns

// Test harness shared by the NSD (unicast) and network-namespace (mDNS)
// tests: prerequisite checks, deterministic binary artifacts, zone-file
// rendering and an NSD child process.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	mdns "github.com/miekg/dns"
)

const testdataDir = "../testdata/dns"

// requireLab skips or fails when a test cannot run here: it needs root and
// the given binaries. Under CI=true nothing is skipped, so a missing
// package turns CI red instead of silently hiding the real-server tests.
func requireLab(t *testing.T, binaries ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this test cannot run: missing %s (apt-get install -y nsd iproute2; run as root)", strings.Join(missing, ", "))
	}
	t.Skipf("missing %s; set CI=true to turn this into a failure", strings.Join(missing, ", "))
}

// txtRR renders a zone-file TXT record whose joined character-strings are
// key=value, split into 255-octet strings, every octet outside [A-Za-z0-9=-]
// as \DDD so the file stays ASCII and unambiguous.
func txtRR(owner, key string, value []byte) string {
	raw := append([]byte(key+"="), value...)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s IN TXT (\n", owner)
	for len(raw) > 0 {
		n := min(255, len(raw))
		sb.WriteString("  \"")
		for _, c := range raw[:n] {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '=' || c == '-' {
				sb.WriteByte(c)
			} else {
				fmt.Fprintf(&sb, "\\%03d", c)
			}
		}
		sb.WriteString("\"\n")
		raw = raw[n:]
	}
	sb.WriteString(")\n")
	return sb.String()
}

// artifactSet is what a test publishes for one serial number.
type artifactSet struct {
	CI, OC, OV []byte
}

// records renders the TXT records of one serial, plus an unrelated key and
// a string without '=' that the decoder must ignore.
func (a artifactSet) records(owner string) string {
	var sb strings.Builder
	sb.WriteString(txtRR(owner, "ci", a.CI))
	if a.OC != nil {
		sb.WriteString(txtRR(owner, "oc", a.OC))
	}
	if a.OV != nil {
		sb.WriteString(txtRR(owner, "ov", a.OV))
	}
	sb.WriteString(txtRR(owner, "zz", blob(99, 300)))
	fmt.Fprintf(&sb, "%s IN TXT \"no equals sign here\"\n", owner)
	return sb.String()
}

// zone renders a zone with an SOA/NS head and the given body.
func zone(origin, body string) string {
	return fmt.Sprintf("$ORIGIN %s\n$TTL 60\n@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n%s",
		origin, origin, origin, body)
}

// Fixtures of the example.test zone. The three artifacts together are
// ~10 KB: far beyond the 1232-octet EDNS size we advertise, so a correct
// answer proves the TCP retry.
var (
	unicastSN1 = artifactSet{CI: blob(1, 3000), OC: blob(2, 2500), OV: blob(3, 4200)}
	unicastSN2 = artifactSet{CI: blob(4, 1800)} // unsigned: ci only
	srvBody    = "" +
		"_sztp._tcp IN SRV 10 60 8443 bs-a.example.test.\n" +
		"_sztp._tcp IN SRV 10 20 8443 bs-b.example.test.\n" +
		"_sztp._tcp IN SRV 20 0 443 bs-c.example.test.\n"
)

func exampleZone() string {
	return zone("example.test.", unicastSN1.records("SN-DNS-1._sztp")+unicastSN2.records("SN-DNS-2._sztp")+srvBody)
}

// nsdServer is a running NSD child process.
type nsdServer struct {
	Addr string // host:port
	dir  string
}

// startNSD writes zones (name → zone text; "" means the file of that name
// from testdata/dns) and runs NSD on addr. When port is 0 a free loopback
// port is picked, retrying on the small race between probing and binding.
// netns, if set, runs NSD inside that network namespace.
func startNSD(t *testing.T, netns, addr string, port int, zones map[string]string) *nsdServer {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for name, text := range zones {
		if text == "" {
			b, err := os.ReadFile(filepath.Join(testdataDir, name+".zone"))
			if err != nil {
				t.Fatalf("reading zone %s: %v", name, err)
			}
			text = string(b)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".zone"), []byte(text), 0o600); err != nil {
			t.Fatalf("writing zone %s: %v", name, err)
		}
		names = append(names, name)
	}
	tmpl, err := template.ParseFiles(filepath.Join(testdataDir, "nsd.conf.tmpl"))
	if err != nil {
		t.Fatalf("nsd.conf template: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p := port
		if p == 0 {
			p = freePort(t)
		}
		var conf bytes.Buffer
		if err := tmpl.Execute(&conf, map[string]any{"Dir": dir, "Addr": addr, "Port": p, "Zones": names}); err != nil {
			t.Fatalf("rendering nsd.conf: %v", err)
		}
		confPath := filepath.Join(dir, "nsd.conf")
		if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
			t.Fatalf("writing nsd.conf: %v", err)
		}
		args := []string{"nsd", "-d", "-c", confPath}
		if netns != "" {
			args = append([]string{"ip", "netns", "exec", netns}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		// Own process group: NSD forks a server and an xfrd process, and
		// the cleanup signals exactly this group, which we created.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting nsd: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		s := &nsdServer{Addr: net.JoinHostPort(addr, strconv.Itoa(p)), dir: dir}
		if err := s.waitReady(netns, done); err != nil {
			stopGroup(cmd, done)
			lastErr = err
			continue
		}
		t.Cleanup(func() {
			stopGroup(cmd, done)
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
				t.Logf("nsd.log:\n%s", log)
			}
		})
		return s
	}
	log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
	t.Fatalf("nsd did not come up: %v\nnsd.log:\n%s", lastErr, log)
	return nil
}

// waitReady polls the SOA of any zone until NSD answers. Inside a
// namespace the test process cannot reach NSD, so it waits for the log
// line instead.
func (s *nsdServer) waitReady(netns string, done chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("nsd exited: %v", err)
		default:
		}
		if netns != "" {
			if b, _ := os.ReadFile(filepath.Join(s.dir, "nsd.log")); bytes.Contains(b, []byte("nsd started")) {
				return nil
			}
		} else {
			q := new(mdns.Msg)
			q.SetQuestion("example.test.", mdns.TypeSOA)
			cl := &mdns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
			if _, _, err := cl.Exchange(q, s.Addr); err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s within 10s", s.Addr)
}

// stopGroup ends the process group started by cmd: SIGTERM (NSD then stops
// its children), SIGKILL after 5 s.
func stopGroup(cmd *exec.Cmd, done chan error) {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// Reap stragglers of the group (xfrd can outlive the parent briefly).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// freePort finds a loopback port free for both UDP and TCP right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("probing a free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		l.Close()
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// blackhole is a UDP socket that reads queries and never answers: a
// server that is "down" without the instant ICMP refusal.
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("blackhole socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); pc.Close() })
	return pc.LocalAddr().String()
}
