package image

import (
	"fmt"
	"syscall"
)

func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	// Bavail, not Bfree: blocks reserved for root do not count, as the
	// agent may not run as root. Bsize is int32 on some 32-bit architectures.
	return int64(st.Bavail) * int64(st.Bsize), nil
}
