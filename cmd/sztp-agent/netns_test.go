package main_test

// End to end through real network plumbing: network namespaces joined by a
// veth pair, a real dnsmasq serving options 143 and 136, the lab bootstrap
// server in the server namespace and the agent binary in the client
// namespace, discovering everything itself.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/lab"
)

// requireRootTools skips only outside CI; in CI a missing tool is a failure.
func requireRootTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this test cannot run: missing %s", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

func encodeURIs(uris ...string) string {
	var b []byte
	for _, u := range uris {
		b = binary.BigEndian.AppendUint16(b, uint16(len(u)))
		b = append(b, u...)
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func TestDiscoveryThroughDnsmasqInNetworkNamespaces(t *testing.T) {
	requireRootTools(t, "ip", "dnsmasq")
	id := fmt.Sprintf("sa%d", os.Getpid()%100000)
	netns := "../../tools/netns-dhcp.sh"
	if out, err := exec.Command(netns, "setup", id).CombinedOutput(); err != nil {
		t.Fatalf("netns setup: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(netns, "teardown", id).Run() })
	srvNS, cliNS := id+"-srv", id+"-cli"
	inNS := func(ns string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	}
	// What a router advertisement would give the client: the on-link prefix
	// for the /128 DHCPv6 address.
	if out, err := inNS(cliNS, "ip", "-6", "route", "add", "2001:db8:1::/64", "dev", "veth-cli").CombinedOutput(); err != nil {
		t.Fatalf("route: %v\n%s", err, out)
	}

	// The lab bootstrap server, on the server side of the link, serving
	// signed onboarding information with a nonce voucher.
	dir := t.TempDir()
	pki, err := lab.NewPKI(filepath.Join(dir, "pki"), "SN-NETNS-1")
	if err != nil {
		t.Fatal(err)
	}
	applied := filepath.Join(dir, "applied.cfg")
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("hostname netns-leaf\n"), 0o644)
	def := filepath.Join(dir, "def.yaml")
	os.WriteFile(def, []byte("reporting-level: verbose\nonboarding:\n  configuration: config.txt\n  configuration-handling: merge\nsigned:\n  voucher:\n    nonce: true\n"), 0o644)
	ready := filepath.Join(dir, "ready.env")
	server := inNS(srvNS, labBin, "--dir", pki.Dir, "--addr", "[2001:db8:1::1]:8443", "--definition", def, "--ready-file", ready)
	server.Stdout, server.Stderr = os.Stderr, os.Stderr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	waitFor(t, ready)

	// dnsmasq: option 143 names a dead port on the v4 side (the agent must
	// move on), option 136 the lab server's IPv6 literal.
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte(strings.Join([]string{
		"port=0", "interface=veth-srv", "bind-interfaces", "user=root", "group=root", "leasefile-ro", "no-ping",
		"dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h",
		"dhcp-option=143," + encodeURIs("https://192.0.2.1:9"),
		"dhcp-option=option6:136," + encodeURIs("https://[2001:db8:1::1]:8443"),
	}, "\n")+"\n"), 0o600)
	dnsmasq := inNS(srvNS, "dnsmasq", "--keep-in-foreground", "--conf-file="+conf, "--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--log-facility=-")
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsmasq.Process.Kill(); dnsmasq.Wait() })
	time.Sleep(200 * time.Millisecond)

	agent := inNS(cliNS, agentBin, "run", "--once", "--interface", "veth-cli", "--sources", "dhcp4,dhcp6",
		"--idevid-cert", pki.IDevIDCertFile, "--idevid-key", pki.IDevIDKeyFile,
		"--voucher-trust-anchor", pki.VoucherTrustAnchorFile, "--os-name", "LabOS", "--os-version", "1.0",
		"--state-dir", filepath.Join(dir, "state"), "--run-dir", filepath.Join(dir, "run"),
		"--ssh-host-key-dir", dir, "--request-timeout", "5s",
		"--config-apply-command", `cp "$SZTP_CONFIG_PATH" `+applied)
	out, err := agent.CombinedOutput()
	t.Logf("agent output:\n%s", out)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if got, _ := os.ReadFile(applied); string(got) != "hostname netns-leaf\n" {
		t.Errorf("applied %q", got)
	}
	for _, want := range []string{"dhcpv4 veth-cli", "https://[2001:db8:1::1]:8443", "untrusted", "pinned-domain-cert"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("agent output lacks %q", want)
		}
	}
	// The agent configured the leased addresses itself and removed them.
	addrs, _ := inNS(cliNS, "ip", "-o", "addr", "show", "dev", "veth-cli", "scope", "global").Output()
	if strings.TrimSpace(string(addrs)) != "" {
		t.Errorf("leased addresses left on the interface:\n%s", addrs)
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			n := 0
			for sc.Scan() {
				n++
			}
			f.Close()
			if n > 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}
