package image

import (
	"errors"
	"fmt"
)

// errFreeSpaceUnknown is what freeSpace returns where the platform cannot
// tell; the download then goes ahead unchecked.
var errFreeSpaceUnknown = errors.New("free space unknown on this platform")

// freeSpace returns the bytes available to this process on the file system
// holding dir. A variable so tests can simulate a small disk.
var freeSpace = statfsFree

// checkSpace fails early, before any byte is written, when need more bytes
// cannot fit in Dir: a full disk discovered at 90% wastes the transfer and
// may starve the rest of the device.
func (f *Fetcher) checkSpace(need int64) error {
	if need <= 0 {
		return nil
	}
	free, err := freeSpace(f.Dir)
	if err != nil {
		// Not knowing is no reason to refuse; a full disk still fails
		// the write, just later.
		f.logger().Debug("free space check skipped", "dir", f.Dir, "err", err)
		return nil
	}
	if free < need {
		return fmt.Errorf("%w: the image needs %s (%d bytes) more in %s, only %s (%d bytes) are free",
			ErrInsufficientSpace, humanBytes(need), need, f.Dir, humanBytes(free), free)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
