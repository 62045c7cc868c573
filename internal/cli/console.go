package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/logging"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws an image download's progress on a terminal, at most a
// few times a second; off a terminal nothing is drawn.
func progressBar(w io.Writer) func(uri string, done, total int64) {
	var mu sync.Mutex
	var last time.Time
	return func(uri string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		finished := total > 0 && done >= total
		if !finished && time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		name := uri[strings.LastIndex(uri, "/")+1:]
		if total > 0 {
			filled := int(float64(width) * float64(done) / float64(total))
			fmt.Fprintf(w, "\r%-24.24s [%s%s] %5.1f%% %s/%s", name, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
				100*float64(done)/float64(total), size(done), size(total))
		} else {
			fmt.Fprintf(w, "\r%-24.24s %s", name, size(done))
		}
		if finished {
			fmt.Fprintln(w)
		}
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// consolePath is where the failure summary goes when systemd runs the agent
// (a variable for tests).
var consolePath = "/dev/console"

// failureSummary puts what failed, where to look and what happens next on
// the console, where an operator at a serial port sees it without the
// journal. Only under systemd: an interactive run already printed its error.
func failureSummary(err error, stateDir string) {
	if os.Getenv("INVOCATION_ID") == "" {
		return
	}
	f, oerr := os.OpenFile(consolePath, os.O_WRONLY|os.O_APPEND, 0)
	if oerr != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "\n*** sztp-agent: secure zero touch provisioning failed ***\n"+
		"  error: %s\n  log:   %s (and journalctl -u sztp-agent)\n  state: sztp-agent status --state-dir %s\n"+
		"  next:  the service restarts and tries every source again\n\n",
		oneLineErr(err), logging.RunLogPath(stateDir), stateDir)
}

// oneLineErr is err as one console line.
func oneLineErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
