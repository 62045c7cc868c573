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

// TestBootstrapThroughDNS: a real authoritative server (NSD) publishes the
// device's signed bootstrapping data, made by the openssl CLI, as TXT
// records; the agent finds it by DNS alone, verifies it and applies it.
func TestBootstrapThroughDNS(t *testing.T) {
	requireRootTools(t, "nsd")
	const f = "../../testdata/ownership/"
	read := func(name string) []byte {
		b, err := os.ReadFile(f + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := t.TempDir()
	zone := "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n" +
		txtRecord("SN-OWN-0001._sztp", "ci", read("conveyed.cms")) +
		txtRecord("SN-OWN-0001._sztp", "oc", read("owner-certificate.cms")) +
		txtRecord("SN-OWN-0001._sztp", "ov", read("voucher.cms"))
	os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(zone), 0o644)
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	tmpl := template.Must(template.ParseFiles("../../testdata/dns/nsd.conf.tmpl"))
	conf, _ := os.Create(filepath.Join(dir, "nsd.conf"))
	tmpl.Execute(conf, map[string]any{"Dir": dir, "Addr": "127.0.0.1", "Port": port, "Zones": []string{"example.test"}})
	conf.Close()
	nsd := exec.Command("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf"))
	if err := nsd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsd.Process.Kill(); nsd.Wait() })
	time.Sleep(500 * time.Millisecond)

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
