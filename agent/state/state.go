// Package state keeps what the agent must remember across restarts and
// reboots, in one small versioned JSON file written atomically: whether
// SZTP is enabled, how far the current onboarding got, and how the last
// bootstrap ended. A missing file is the factory state.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// FileName is the state file's name in the state directory.
const FileName = "state.json"

// Version is the schema version this build writes.
const Version = 1

// Phases of a bootstrap, as `status` shows them.
const (
	PhaseNotStarted = "not-started"
	PhaseInProgress = "in-progress"
	PhaseRebooting  = "boot-image-installed-rebooting"
	PhaseComplete   = "bootstrap-complete"
	PhaseFailed     = "failed"
)

// State is the content of the state file.
type State struct {
	Version int `json:"version"`

	Phase     string    `json:"phase"`
	Started   time.Time `json:"started,omitzero"`   // first run of this bootstrap
	Updated   time.Time `json:"updated,omitzero"`   // last change
	Completed time.Time `json:"completed,omitzero"` // bootstrap-complete sent
	Runs      int       `json:"runs"`               // agent starts for this bootstrap
	Passes    int       `json:"passes"`             // passes over the sources, all runs
	LastError string    `json:"last-error,omitempty"`
	Server    string    `json:"server,omitempty"` // server of the current/last onboarding

	// Onboarding is the progress through one onboarding information
	// document, so a restarted agent neither installs an image twice nor
	// applies configuration twice.
	Onboarding *Onboarding `json:"onboarding,omitempty"`
}

// Onboarding records the steps of one onboarding document already done.
type Onboarding struct {
	// Digest identifies the document: sha-256 of its conveyed content.
	Digest string `json:"digest"`
	// Image is set once the boot image was installed.
	Image *InstalledImage `json:"image,omitempty"`
	// Steps done, by RFC 8572 step name, with when.
	Steps map[string]time.Time `json:"steps,omitempty"`
}

// InstalledImage is the image the install command accepted.
type InstalledImage struct {
	OSName       string    `json:"os-name"`
	OSVersion    string    `json:"os-version"`
	SHA256       string    `json:"sha-256"`
	Installed    time.Time `json:"installed"`
	RebootIssued bool      `json:"reboot-issued"`
}

// Done reports whether step was completed for this document.
func (o *Onboarding) Done(step string) bool {
	if o == nil {
		return false
	}
	_, ok := o.Steps[step]
	return ok
}

// Store reads and writes the state file of one directory.
type Store struct {
	Dir string
	Now func() time.Time
}

func (s *Store) path() string { return filepath.Join(s.Dir, FileName) }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Load returns the state; a missing file is the factory state.
func (s *Store) Load() (*State, error) {
	data, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: Version, Phase: PhaseNotStarted}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading state %s: %w", s.path(), err)
	}
	if st.Version > Version {
		return nil, fmt.Errorf("reading state %s: version %d is newer than this agent's %d", s.path(), st.Version, Version)
	}
	if st.Phase == "" {
		st.Phase = PhaseNotStarted
	}
	st.Version = Version
	return &st, nil
}

// Save writes st atomically (temp file, fsync, rename, directory fsync).
func (s *Store) Save(st *State) error {
	st.Version = Version
	st.Updated = s.now()
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := atomicfile.WriteFile(s.path(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// Update loads, changes and saves the state in one step.
func (s *Store) Update(change func(*State)) (*State, error) {
	st, err := s.Load()
	if err != nil {
		return nil, err
	}
	change(st)
	return st, s.Save(st)
}

// Reset erases the bootstrap progress. The enabled flag (a separate marker)
// and the device's factory identity (elsewhere) are not touched.
func (s *Store) Reset() error {
	if err := os.Remove(s.path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resetting state: %w", err)
	}
	return atomicfile.SyncDir(s.Dir)
}

// DisabledFile is the marker whose presence turns SZTP off (RFC 8572 §5.1's
// flag, persistent and read/write). It lives in the state directory so the
// systemd unit can gate on it with ConditionPathExists=!, and holds the reason.
const DisabledFile = "disabled"

// Disabled describes the marker.
type Disabled struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Disable writes the marker.
func (s *Store) Disable(reason string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("disabling: %w", err)
	}
	data, _ := json.Marshal(Disabled{Reason: reason, Since: s.now()})
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, DisabledFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("disabling: %w", err)
	}
	return nil
}

// Enable removes the marker.
func (s *Store) Enable() error {
	if err := os.Remove(filepath.Join(s.Dir, DisabledFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("enabling: %w", err)
	}
	return nil
}

// DisabledBy returns the marker's content, or nil when SZTP is enabled. A
// marker that cannot be parsed (e.g. an empty file made with touch) still
// disables.
func (s *Store) DisabledBy() (*Disabled, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, DisabledFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the disabled marker: %w", err)
	}
	var d Disabled
	if json.Unmarshal(data, &d) != nil || d.Reason == "" {
		d.Reason = "disabled marker present (" + filepath.Join(s.Dir, DisabledFile) + ")"
	}
	return &d, nil
}
