//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || s390x))

package image

import "os"

// writeback is a no-op where sync_file_range is not wired up: the fsync
// before placement then writes the whole image.
type writeback struct{}

func newWriteback(*os.File) *writeback { return &writeback{} }
func (*writeback) start(off, n int64)  {}
func (*writeback) wait(off, n int64)   {}
