package state_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/state"
)

func TestLoadSaveResetDisable(t *testing.T) {
	dir := t.TempDir()
	s := &state.Store{Dir: dir, Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }}
	st, err := s.Load()
	if err != nil || st.Phase != state.PhaseNotStarted {
		t.Fatalf("factory state %+v, %v", st, err)
	}
	st.Phase = state.PhaseInProgress
	st.Onboarding = &state.Onboarding{Digest: "abc", Steps: map[string]time.Time{"configuration": time.Now()}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || got.Phase != state.PhaseInProgress || !got.Onboarding.Done("configuration") || got.Onboarding.Done("post-configuration-script") {
		t.Fatalf("reloaded %+v, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, state.FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := s.Disable("operator configured by hand"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DisabledBy(); d == nil || d.Reason != "operator configured by hand" {
		t.Errorf("disabled %+v", d)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); got.Phase != state.PhaseNotStarted || got.Onboarding != nil {
		t.Errorf("after reset %+v", got)
	}
	if d, _ := s.DisabledBy(); d == nil {
		t.Error("reset cleared the disabled flag")
	}
	s.Enable()
	if d, _ := s.DisabledBy(); d != nil {
		t.Error("still disabled after enable")
	}
	os.WriteFile(filepath.Join(dir, state.DisabledFile), nil, 0o644) // touch
	if d, _ := s.DisabledBy(); d == nil || d.Reason == "" {
		t.Errorf("touched marker: %+v", d)
	}
	os.WriteFile(filepath.Join(dir, state.FileName), []byte(`{"version": 99}`), 0o600)
	if _, err := s.Load(); err == nil {
		t.Error("newer state version accepted")
	}
}
