// Package logging builds the agent's one logger: text (or JSON) to stderr,
// native journal entries when systemd runs the agent, and a copy of every
// run's log in the state directory so the last bootstrap can be read after
// the console scrolled away or the device rebooted.
package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message IDs of milestones: `journalctl MESSAGE_ID=<id>` finds them.
const (
	MsgStarted          = "2a6a4c1e8f2b4d7a9c3e5f1a0b2c4d6e" // agent run started
	MsgServerContacted  = "7d1e3f5a9b2c4e6f8a0b1c3d5e7f9a2b" // bootstrap server answered, with its trust state
	MsgOnboarding       = "4b8d2f6a1c3e5a7b9d0f2e4c6a8b1d3f" // onboarding information accepted
	MsgRebooting        = "9c5e1a3b7d2f4a6c8e0b1d3f5a7c9e2d" // boot image installed, rebooting
	MsgBootstrapped     = "1f3a5c7e9b2d4f6a8c0e2b4d6f8a1c3e" // bootstrap-complete
	MsgBootstrapFailed  = "6e2a4c8f1b3d5e7a9c0f2d4b6e8a1c5f" // a pass (or the run) failed
	MessageIDAttribute  = "MESSAGE_ID"
	logDirName          = "log"
	logFileName         = "sztp-agent.log"
	maxJournalFieldSize = 64 << 10
)

// journalSocket is systemd-journald's native socket (a variable for tests).
var journalSocket = "/run/systemd/journal/socket"

// Options says where the log goes.
type Options struct {
	Level  slog.Level
	Format string    // "text" or "json" for the stderr stream
	Stderr io.Writer // nil: no stream output
	// StateDir, if set, receives log/sztp-agent.log (the previous run's log
	// is kept as sztp-agent.log.1).
	StateDir string
	// Journal sends native journal entries (systemd sets JOURNAL_STREAM for
	// services whose output goes to the journal).
	Journal bool
}

// New builds the logger and returns a function that closes its files.
func New(o Options) (*slog.Logger, func(), error) {
	var handlers []slog.Handler
	var closers []func()
	hopts := &slog.HandlerOptions{Level: o.Level}
	if o.Journal {
		if j, err := newJournalHandler(o.Level); err == nil {
			handlers = append(handlers, j)
			closers = append(closers, j.close)
		} else if o.Stderr != nil {
			fmt.Fprintf(o.Stderr, "sztp-agent: journal unavailable (%v); logging to stderr\n", err)
			o.Journal = false
		}
	}
	if o.Stderr != nil && !o.Journal {
		switch o.Format {
		case "", "text":
			handlers = append(handlers, slog.NewTextHandler(o.Stderr, hopts))
		case "json":
			handlers = append(handlers, slog.NewJSONHandler(o.Stderr, hopts))
		default:
			return nil, nil, fmt.Errorf("log format %q: want text or json", o.Format)
		}
	}
	if o.StateDir != "" {
		f, err := openRunLog(o.StateDir)
		if err != nil {
			return nil, nil, err
		}
		// The file keeps debug detail whatever the console level.
		handlers = append(handlers, slog.NewTextHandler(f, &slog.HandlerOptions{Level: min(o.Level, slog.LevelDebug)}))
		closers = append(closers, func() { f.Sync(); f.Close() })
	}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	return slog.New(fanout(handlers)), closeAll, nil
}

// RunLogPath is where the current (or last) run's log is kept.
func RunLogPath(stateDir string) string { return filepath.Join(stateDir, logDirName, logFileName) }

func openRunLog(stateDir string) (*os.File, error) {
	dir := filepath.Join(stateDir, logDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	if _, err := os.Stat(path); err == nil {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening run log: %w", err)
	}
	return f, nil
}

// fanout sends every record to each handler.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

// journalHandler writes the journal's native protocol (one datagram per
// entry, KEY=value lines) to its socket, without libsystemd.
type journalHandler struct {
	level slog.Level
	conn  *net.UnixConn
	mu    *sync.Mutex
	attrs []slog.Attr
}

func newJournalHandler(level slog.Level) (*journalHandler, error) {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	return &journalHandler{level: level, conn: conn, mu: &sync.Mutex{}}, nil
}

func (j *journalHandler) close() { j.conn.Close() }

func (j *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= j.level }

func (j *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *j
	c.attrs = append(append([]slog.Attr{}, j.attrs...), attrs...)
	return &c
}

func (j *journalHandler) WithGroup(string) slog.Handler { return j }

func (j *journalHandler) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]string{
		"MESSAGE":           r.Message,
		"PRIORITY":          strconv.Itoa(priority(r.Level)),
		"SYSLOG_IDENTIFIER": "sztp-agent",
	}
	var text []string
	add := func(a slog.Attr) {
		key := journalKey(a.Key)
		val := a.Value.Resolve().String()
		if key == "" {
			return
		}
		fields[key] = val
		if a.Key != MessageIDAttribute {
			text = append(text, a.Key+"="+strconv.Quote(val))
		}
	}
	for _, a := range j.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	if len(text) > 0 {
		fields["MESSAGE"] = r.Message + " " + strings.Join(text, " ")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := fields[k]
		if len(v) > maxJournalFieldSize {
			v = v[:maxJournalFieldSize]
		}
		if strings.ContainsRune(v, '\n') {
			// Binary-safe form: KEY\n<64-bit little-endian length><value>\n.
			b.WriteString(k)
			b.WriteByte('\n')
			n := uint64(len(v))
			for i := 0; i < 8; i++ {
				b.WriteByte(byte(n >> (8 * i)))
			}
			b.WriteString(v)
			b.WriteByte('\n')
			continue
		}
		b.WriteString(k + "=" + v + "\n")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := j.conn.Write([]byte(b.String()))
	return err
}

// journalKey turns an attribute name into a journal field name: upper case
// letters, digits and underscores, not starting with an underscore.
func journalKey(k string) string {
	k = strings.ToUpper(k)
	k = strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			return r
		}
		return '_'
	}, k)
	k = strings.TrimLeft(k, "_")
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return ""
	}
	return k
}

func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}
