package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/state"
	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// RuntimeStatusFile is the name of the runtime status in Config.RunDir.
const RuntimeStatusFile = "status.json"

// RuntimeStatus is what a running agent is doing now.
type RuntimeStatus struct {
	PID       int       `json:"pid"`
	Phase     string    `json:"phase"`
	Step      string    `json:"step,omitempty"`
	Server    string    `json:"server,omitempty"`
	Passes    int       `json:"passes"`
	LastError string    `json:"last-error,omitempty"`
	Updated   time.Time `json:"updated"`
}

func (a *Agent) writeRuntimeStatus(st *state.State) {
	if a.cfg.RunDir == "" {
		return
	}
	rs := RuntimeStatus{PID: os.Getpid(), Phase: st.Phase, Step: a.step, Server: st.Server,
		Passes: st.Passes, LastError: st.LastError, Updated: a.cfg.Now().UTC()}
	data, _ := json.MarshalIndent(rs, "", "  ")
	err := os.MkdirAll(a.cfg.RunDir, 0o755)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(a.cfg.RunDir, RuntimeStatusFile), append(data, '\n'), 0o644)
	}
	if err != nil {
		a.log.Debug("writing runtime status", "error", err)
	}
}
