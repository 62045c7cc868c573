package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProgressBarDrawsAndFinishes(t *testing.T) {
	var buf bytes.Buffer
	bar := progressBar(&buf)
	bar("https://images.example.net/labos-2.0.img", 0, 4<<20)
	bar("https://images.example.net/labos-2.0.img", 1<<20, 4<<20) // throttled
	bar("https://images.example.net/labos-2.0.img", 4<<20, 4<<20) // always drawn
	out := buf.String()
	if !strings.Contains(out, "labos-2.0.img") || !strings.Contains(out, "100.0% 4.0MiB/4.0MiB") || !strings.HasSuffix(out, "\n") {
		t.Errorf("bar output %q", out)
	}
	if strings.Count(out, "\r") != 2 {
		t.Errorf("drew %d frames, want 2 (the middle one is throttled): %q", strings.Count(out, "\r"), out)
	}
	if isTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
}

func TestFailureSummaryOnlyUnderSystemd(t *testing.T) {
	console := filepath.Join(t.TempDir(), "console")
	os.WriteFile(console, nil, 0o600)
	old := consolePath
	consolePath = console
	defer func() { consolePath = old }()
	t.Setenv("INVOCATION_ID", "")
	failureSummary(os.ErrDeadlineExceeded, "/var/lib/sztp-agent")
	if b, _ := os.ReadFile(console); len(b) != 0 {
		t.Errorf("summary written outside systemd: %q", b)
	}
	t.Setenv("INVOCATION_ID", "0123456789abcdef")
	failureSummary(os.ErrDeadlineExceeded, "/var/lib/sztp-agent")
	b, _ := os.ReadFile(console)
	if !strings.Contains(string(b), "secure zero touch provisioning failed") || !strings.Contains(string(b), "/var/lib/sztp-agent/log/sztp-agent.log") {
		t.Errorf("summary %q", b)
	}
}
