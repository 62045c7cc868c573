package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock in the state directory.
const LockFile = "lock"

// ErrLocked: another agent holds the lock.
var ErrLocked = errors.New("another sztp-agent is running")

// LockedError says who holds the lock.
type LockedError struct {
	Path string
	PID  int // 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s: process %d holds %s", ErrLocked, e.PID, e.Path)
	}
	return fmt.Sprintf("%s: %s is held", ErrLocked, e.Path)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is an exclusive flock on the state directory's lock file, held for
// the life of one agent run. The kernel drops it when the process dies, so a
// killed agent never leaves a stale lock.
type Lock struct{ f *os.File }

// Acquire takes the lock without waiting.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			data, _ := os.ReadFile(path)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			return nil, &LockedError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Holder returns the PID recorded by the lock's holder, if it is held.
func Holder(dir string) (pid int, held bool) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, false
	}
	data, _ := os.ReadFile(f.Name())
	pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, true
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
