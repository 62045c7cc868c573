//go:build !linux

package image

func statfsFree(string) (int64, error) { return 0, errFreeSpaceUnknown }
