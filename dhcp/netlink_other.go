//go:build !linux

package dhcp

import (
	"errors"
	"net"
	"time"
)

// The agent targets Linux; elsewhere the lease parsers still build but the
// client cannot touch interface addresses.
var errNoNetlink = errors.New("address configuration is only implemented on Linux")

func addAddress(int, net.IPNet, time.Duration) error                 { return errNoNetlink }
func removeAddress(int, net.IPNet) error                             { return errNoNetlink }
func addressState(int, net.IP) (flags uint32, found bool, err error) { return 0, false, errNoNetlink }

const (
	ifaFTentative = 0x40
	ifaFDadFailed = 0x08
)
