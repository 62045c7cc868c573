package logging

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournalEntriesCarryMessageIDs(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "journal.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old := journalSocket
	journalSocket = sock
	defer func() { journalSocket = old }()

	log, closeLog, err := New(Options{Level: slog.LevelInfo, Journal: true, Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	log.Info("bootstrap complete", MessageIDAttribute, MsgBootstrapped, "server", "https://192.0.2.1", "detail", "line1\nline2")
	buf := make([]byte, 65536)
	l.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	entry := string(buf[:n])
	for _, want := range []string{"MESSAGE_ID=" + MsgBootstrapped + "\n", "PRIORITY=6\n", "SYSLOG_IDENTIFIER=sztp-agent\n", "SERVER=https://192.0.2.1\n", "DETAIL\n"} {
		if !strings.Contains(entry, want) {
			t.Errorf("entry lacks %q:\n%q", want, entry)
		}
	}
}

func TestRunLogKeepsPreviousRun(t *testing.T) {
	dir := t.TempDir()
	for _, msg := range []string{"first run", "second run"} {
		var stderr bytes.Buffer
		log, closeLog, err := New(Options{Level: slog.LevelWarn, Stderr: &stderr, StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		log.Debug(msg)
		closeLog()
		if stderr.Len() != 0 {
			t.Errorf("debug line reached stderr at warn level: %q", stderr.String())
		}
	}
	cur, _ := os.ReadFile(RunLogPath(dir))
	prev, _ := os.ReadFile(RunLogPath(dir) + ".1")
	if !strings.Contains(string(cur), "second run") || !strings.Contains(string(prev), "first run") {
		t.Errorf("current %q previous %q", cur, prev)
	}
	if fi, _ := os.Stat(RunLogPath(dir)); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v", fi.Mode())
	}
}
