package main_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/sztp-agent/sztp-agent/lab"
)

// txtRecord renders key=value as a zone-file TXT record of ≤255-octet
// character-strings, every octet outside [A-Za-z0-9] as \DDD.
func txtRecord(owner, key string, value []byte) string {
	raw := append([]byte(key+"="), value...)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s IN TXT (\n", owner)
	for len(raw) > 0 {
		n := min(255, len(raw))
		sb.WriteString("  \"")
		for _, c := range raw[:n] {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '=' {
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

// ownershipFixtures is the openssl-made world of testdata/ownership: device
// SN-OWN-0001 and its signed onboarding information.
const ownershipFixtures = "../../testdata/ownership/"

// ownershipTXT publishes that device's three artifacts as the
// device-specific TXT records of RFC 8572 §4.2.
func ownershipTXT(t *testing.T) string {
	t.Helper()
	var zone strings.Builder
	for key, file := range map[string]string{"ci": "conveyed.cms", "oc": "owner-certificate.cms", "ov": "voucher.cms"} {
		b, err := os.ReadFile(ownershipFixtures + file)
		if err != nil {
			t.Fatal(err)
		}
		zone.WriteString(txtRecord("SN-OWN-0001._sztp", key, b))
	}
	return zone.String()
}

// TestBootstrapThroughDNS: a real authoritative server (NSD) publishes the
// device's signed bootstrapping data, made by the openssl CLI, as TXT
// records; the agent finds it by DNS alone, verifies it and applies it.
func TestBootstrapThroughDNS(t *testing.T) {
	requireRootTools(t, "nsd")
	const f = ownershipFixtures
	dir := t.TempDir()
	port := startNSD(t, dir, ownershipTXT(t))

	applied := filepath.Join(dir, "applied")
	out, err := exec.Command(agentBin, "run", "--once", "--sources", "dns", "--mdns=false",
		"--dns-server", fmt.Sprintf("127.0.0.1:%d", port), "--dns-domain", "example.test",
		"--idevid-cert", f+"device.crt", "--idevid-key", f+"device.key", "--voucher-trust-anchor", f+"voucher-trust-anchor.pem",
		"--os-name", "TestOS", "--os-version", "2.1", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
		"--ssh-host-key-dir", dir, "--config-apply-command", `cp "$SZTP_CONFIG_PATH" `+applied).CombinedOutput()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(applied); string(got) != "<config/>" {
		t.Errorf("applied %q", got)
	}
	if !strings.Contains(string(out), "dns TXT SN-OWN-0001._sztp.example.test") {
		t.Errorf("the plan does not name the DNS source:\n%s", out)
	}
}

// startNSD serves the zone example.test. (SOA/NS head plus body) from a real
// NSD on a free loopback port and returns the port.
func startNSD(t *testing.T, dir, body string) int {
	t.Helper()
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	startNSDAt(t, dir, "127.0.0.1", port, body)
	return port
}

func startNSDAt(t *testing.T, dir, addr string, port int, body string) {
	t.Helper()
	zone := "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n" + body
	os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(zone), 0o644)
	tmpl := template.Must(template.ParseFiles("../../testdata/dns/nsd.conf.tmpl"))
	conf, _ := os.Create(filepath.Join(dir, "nsd.conf"))
	tmpl.Execute(conf, map[string]any{"Dir": dir, "Addr": addr, "Port": port, "Zones": []string{"example.test"}})
	conf.Close()
	nsd := exec.Command("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf"))
	if err := nsd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsd.Process.Kill(); nsd.Wait() })
	for i := 0; i < 50; i++ { // until NSD answers over TCP
		if c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port))); err == nil {
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDNSSettingsLearnedFromDHCP: the DHCP lease carries no SZTP option,
// but its DNS server and search domain lead the DNS source to the device's
// signed TXT records (RFC 8572 §4.2: the domain may come from DHCP).
func TestDNSSettingsLearnedFromDHCP(t *testing.T) {
	requireRootTools(t, "nsd")
	const f = ownershipFixtures
	dir := t.TempDir()
	// Port 53 (what a lease's DNS server implies) on an address of its own.
	startNSDAt(t, dir, "127.0.0.77", 53, ownershipTXT(t))
	lease := filepath.Join(dir, "dhclient.leases")
	os.WriteFile(lease, []byte("lease {\n  interface \"eth0\";\n  fixed-address 192.0.2.50;\n  option subnet-mask 255.255.255.0;\n"+
		"  option domain-name-servers 127.0.0.77;\n  option domain-search \"example.test.\";\n}\n"), 0o644)
	applied := filepath.Join(dir, "applied")
	out, err := exec.Command(agentBin, "run", "--once", "--sources", "dhcp4,dns", "--mdns=false", "--dhcp-lease-file", lease,
		"--idevid-cert", f+"device.crt", "--idevid-key", f+"device.key", "--voucher-trust-anchor", f+"voucher-trust-anchor.pem",
		"--os-name", "TestOS", "--os-version", "2.1", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
		"--ssh-host-key-dir", dir, "--config-apply-command", `cp "$SZTP_CONFIG_PATH" `+applied).CombinedOutput()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(applied); string(got) != "<config/>" {
		t.Errorf("applied %q\n%s", got, out)
	}
}

// TestBootstrapThroughDNSSRV: no device-specific records, so the agent
// follows the _sztp._tcp SRV records (unsigned redirect information from an
// untrusted source) to a bootstrap server whose name only that DNS server
// knows, connects provisionally and acts on signed data only.
func TestBootstrapThroughDNSSRV(t *testing.T) {
	requireRootTools(t, "nsd")
	pki, err := lab.NewPKI(t.TempDir(), "SN-SRV-1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lab.Start(lab.Options{PKI: pki, Definition: &lab.Definition{
		Onboarding: &lab.Onboarding{ConfigurationData: []byte("via SRV\n"), ConfigurationHandling: "merge"},
		Signed:     &lab.Signing{Voucher: lab.VoucherSpec{Nonce: true}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, labPort, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL(), "https://"))
	dir := t.TempDir()
	port := startNSD(t, dir, "bs IN A 127.0.0.1\n_sztp._tcp IN SRV 10 0 1 dead.example.test.\n_sztp._tcp IN SRV 20 0 "+labPort+" bs.example.test.\ndead IN A 127.0.0.1\n")
	applied := filepath.Join(dir, "applied")
	out, err := exec.Command(agentBin, "run", "--once", "--sources", "dns", "--mdns=false",
		"--dns-server", fmt.Sprintf("127.0.0.1:%d", port), "--dns-domain", "example.test",
		"--idevid-cert", pki.IDevIDCertFile, "--idevid-key", pki.IDevIDKeyFile, "--voucher-trust-anchor", pki.VoucherTrustAnchorFile,
		"--os-name", "LabOS", "--os-version", "1.0", "--state-dir", t.TempDir(), "--run-dir", t.TempDir(),
		"--ssh-host-key-dir", dir, "--config-apply-command", `cp "$SZTP_CONFIG_PATH" `+applied).CombinedOutput()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(applied); string(got) != "via SRV\n" {
		t.Errorf("applied %q", got)
	}
	for _, want := range []string{"https://dead.example.test:1", "https://bs.example.test:" + labPort, "untrusted"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("agent output lacks %q:\n%s", want, out)
		}
	}
	if n := len(srv.Reports()); n != 0 {
		t.Errorf("%d reports to a server found by DNS", n)
	}
}
