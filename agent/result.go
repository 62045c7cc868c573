package agent

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// ResultFile is the name, in the state directory, of the record of the last
// run: what an operator (or `sztp-agent status`) reads after a reboot.
const ResultFile = "result.json"

// Result is the content of ResultFile.
type Result struct {
	Version  int       `json:"version"`
	Outcome  string    `json:"outcome"` // an Outcome's string, or "failed"
	Error    string    `json:"error,omitempty"`
	DryRun   bool      `json:"dry-run"`
	Finished time.Time `json:"finished"`
}

func (a *Agent) saveResult(outcome Outcome, runErr error) {
	r := Result{Version: 1, Outcome: outcome.String(), DryRun: a.cfg.DryRun, Finished: time.Now().UTC()}
	if runErr != nil {
		r.Outcome, r.Error = "failed", runErr.Error()
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(a.cfg.StateDir, ResultFile), append(data, '\n'), 0o600)
	}
	if err != nil {
		a.log.Warn("saving result", "error", err)
	}
}
