package agent

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/restconf"
)

// reporter sends report-progress to a trusted server (RFC 8572 §5.6). To an
// untrusted server, and in a dry run, it sends nothing (§9.6; dry runs must not
// make a server believe a device was configured).
type reporter struct {
	client  *restconf.Client // nil: report nothing
	verbose bool
	log     *slog.Logger
	timeout time.Duration // per report
}

func (a *Agent) newReporter(conn *connection, verbose bool) *reporter {
	r := &reporter{verbose: verbose, log: a.log, timeout: a.cfg.RequestTimeout}
	if conn.trusted && conn.client != nil && !a.cfg.DryRun {
		r.client = conn.client
	}
	return r
}

func (r *reporter) send(ctx context.Context, p restconf.Progress) error {
	if r.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.client.ReportProgress(ctx, p)
	if err != nil {
		r.log.Warn("progress report failed", "progress_type", p.Type, "error", err)
		return fmt.Errorf("reporting %s: %w", p.Type, err)
	}
	r.log.Info("progress reported", "progress_type", p.Type)
	return nil
}

// required sends a report the RFC makes mandatory and whose failure is an
// error of its own (bootstrap-initiated, bootstrap-complete).
func (r *reporter) required(ctx context.Context, typ, msg string) error {
	return r.send(ctx, restconf.Progress{Type: typ, Message: msg})
}

// terminal tries a terminal or error report: its failure changes nothing,
// the step already failed or the pass already ends.
func (r *reporter) terminal(ctx context.Context, typ, msg string) {
	_ = r.send(ctx, restconf.Progress{Type: typ, Message: msg})
}

// progress sends a non-terminal report, only at the verbose reporting level.
func (r *reporter) progress(ctx context.Context, typ, msg string) {
	if r.verbose {
		_ = r.send(ctx, restconf.Progress{Type: typ, Message: msg})
	}
}

// sshHostKeys reads the device's SSH host public keys for bootstrap-complete
// (RFC 8572 §7.3 ssh-host-keys): the blob of each ssh_host_*_key.pub.
func sshHostKeys(dir string, log *slog.Logger) []restconf.SSHHostKey {
	paths, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*_key.pub"))
	sort.Strings(paths)
	var keys []restconf.SSHHostKey
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			log.Warn("reading SSH host key", "path", p, "error", err)
			continue
		}
		fields := strings.Fields(string(data))
		if len(fields) < 2 {
			log.Warn("SSH host key file has no key", "path", p)
			continue
		}
		blob, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil {
			log.Warn("SSH host key is not base64", "path", p, "error", err)
			continue
		}
		keys = append(keys, restconf.SSHHostKey{Algorithm: fields[0], KeyData: blob})
	}
	return keys
}
