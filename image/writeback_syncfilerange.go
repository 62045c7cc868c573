//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package image

import (
	"os"
	"syscall"
)

// writeback pushes a written range of f towards the disk while the download
// goes on, so that the fsync before placement finds (almost) nothing left
// to write. Without it the whole image sits dirty in the page cache until
// that fsync, which then costs seconds per GiB after the transfer instead of
// overlapping with it.
//
// start begins asynchronous writeback of [off, off+n); wait blocks until
// [off, off+n) is on disk, which also bounds the dirty data to about two
// windows. Durability still comes from the final fsync (sync_file_range
// neither writes metadata nor flushes the disk's cache); any failure here
// only turns the optimisation off.
//
// The raw system call rather than golang.org/x/sys/unix keeps the module's
// requirements as they are; on these 64-bit architectures its arguments are
// (fd, offset, nbytes, flags). Elsewhere (32-bit, ppc64's sync_file_range2)
// writeback_other.go makes this a no-op.
type writeback struct {
	fd       uintptr
	disabled bool
}

// Flags of sync_file_range(2).
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

func newWriteback(f *os.File) *writeback { return &writeback{fd: f.Fd()} }

func (w *writeback) start(off, n int64) {
	w.call(off, n, syncFileRangeWrite)
}

func (w *writeback) wait(off, n int64) {
	w.call(off, n, syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter)
}

func (w *writeback) call(off, n int64, flags uintptr) {
	if w.disabled || n <= 0 {
		return
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, w.fd, uintptr(off), uintptr(n), flags, 0, 0)
	if errno != 0 {
		w.disabled = true // e.g. a file system without support; fsync alone will do
	}
}
