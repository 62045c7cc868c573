//go:build linux

package dhcp

// Address configuration speaks rtnetlink through the standard library's
// syscall package rather than running `ip` or pulling in a netlink module:
// the agent may run from an initramfs without iproute2, and three message
// types do not justify a dependency.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	nlmsgHdrLen   = syscall.SizeofNlMsghdr
	ifaddrmsgLen  = syscall.SizeofIfAddrmsg
	rtattrHdrLen  = syscall.SizeofRtAttr
	ifaFlagsAttr  = 8    // IFA_FLAGS, not in package syscall
	ifaFTentative = 0x40 // IFA_F_TENTATIVE
	ifaFDadFailed = 0x08 // IFA_F_DADFAILED
	infinityLife  = 0xffffffff
	netlinkWait   = 5 * time.Second // a kernel answer never takes this long; bounds a wedged socket
)

var netlinkSeq atomic.Uint32

// addAddress adds addr to the interface with the given valid lifetime (0
// means forever), so that the kernel drops it when the lease runs out even
// if the agent dies without calling Release.
func addAddress(ifindex int, addr net.IPNet, lifetime time.Duration) error {
	attrs := addressAttrs(addr)
	if ip4 := addr.IP.To4(); ip4 != nil {
		if ones, _ := addr.Mask.Size(); ones < 31 {
			brd := make(net.IP, net.IPv4len)
			for i := range brd {
				brd[i] = ip4[i] | ^addr.Mask[i]
			}
			attrs = appendAttr(attrs, syscall.IFA_BROADCAST, brd)
		}
	}
	life := uint32(infinityLife)
	if lifetime > 0 {
		secs := lifetime / time.Second
		if secs >= infinityLife {
			secs = infinityLife - 1
		}
		life = uint32(secs)
	}
	cache := make([]byte, 16) // struct ifa_cacheinfo: prefered, valid, cstamp, tstamp
	binary.NativeEndian.PutUint32(cache[0:], life)
	binary.NativeEndian.PutUint32(cache[4:], life)
	attrs = appendAttr(attrs, syscall.IFA_CACHEINFO, cache)
	return addressRequest(syscall.RTM_NEWADDR, syscall.NLM_F_CREATE|syscall.NLM_F_EXCL, ifindex, addr, attrs)
}

// removeAddress deletes addr from the interface. An address that is
// already gone (the lease expired, or someone else removed it) counts as
// removed.
func removeAddress(ifindex int, addr net.IPNet) error {
	err := addressRequest(syscall.RTM_DELADDR, 0, ifindex, addr, addressAttrs(addr))
	if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENODEV) {
		return nil
	}
	return err
}

// addressState reports the kernel's flags for ip on the interface; found is
// false when the address is not there.
func addressState(ifindex int, ip net.IP) (flags uint32, found bool, err error) {
	family := syscall.AF_INET6
	if ip.To4() != nil {
		family = syscall.AF_INET
		ip = ip.To4()
	}
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, family)
	if err != nil {
		return 0, false, fmt.Errorf("dumping addresses: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, false, fmt.Errorf("parsing address dump: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < ifaddrmsgLen {
			continue
		}
		ifa := (*syscall.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		if int(ifa.Index) != ifindex {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return 0, false, fmt.Errorf("parsing address attributes: %w", err)
		}
		var local net.IP
		f := uint32(ifa.Flags)
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFA_ADDRESS:
				if local == nil {
					local = net.IP(a.Value)
				}
			case syscall.IFA_LOCAL:
				local = net.IP(a.Value)
			case ifaFlagsAttr:
				// The 8-bit field in ifaddrmsg is truncated; IFA_FLAGS
				// holds all of them when present.
				if len(a.Value) >= 4 {
					f = binary.NativeEndian.Uint32(a.Value)
				}
			}
		}
		if local.Equal(ip) {
			return f, true, nil
		}
	}
	return 0, false, nil
}

func addressAttrs(addr net.IPNet) []byte {
	ip := addr.IP.To4()
	if ip == nil {
		ip = addr.IP.To16()
	}
	// For a plain (non point-to-point) address, IFA_LOCAL and IFA_ADDRESS
	// are the same; `ip addr add` sends both.
	attrs := appendAttr(nil, syscall.IFA_LOCAL, ip)
	return appendAttr(attrs, syscall.IFA_ADDRESS, ip)
}

func appendAttr(b []byte, typ uint16, value []byte) []byte {
	n := rtattrHdrLen + len(value)
	hdr := make([]byte, rtattrHdrLen)
	binary.NativeEndian.PutUint16(hdr[0:], uint16(n))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	b = append(b, hdr...)
	b = append(b, value...)
	for len(b)%syscall.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// addressRequest sends one RTM_NEWADDR/RTM_DELADDR and waits for the
// kernel's acknowledgement, returning its errno.
func addressRequest(typ uint16, flags uint16, ifindex int, addr net.IPNet, attrs []byte) error {
	family := byte(syscall.AF_INET6)
	if addr.IP.To4() != nil {
		family = syscall.AF_INET
	}
	ones, _ := addr.Mask.Size()

	seq := netlinkSeq.Add(1)
	msg := make([]byte, nlmsgHdrLen+ifaddrmsgLen, nlmsgHdrLen+ifaddrmsgLen+len(attrs))
	binary.NativeEndian.PutUint32(msg[0:], uint32(nlmsgHdrLen+ifaddrmsgLen+len(attrs)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	msg[nlmsgHdrLen+0] = family
	msg[nlmsgHdrLen+1] = byte(ones)
	msg[nlmsgHdrLen+2] = 0 // flags
	msg[nlmsgHdrLen+3] = 0 // RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[nlmsgHdrLen+4:], uint32(ifindex))
	msg = append(msg, attrs...)

	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(netlinkWait.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("setting rtnetlink receive timeout: %w", err)
	}
	kernel := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("binding rtnetlink socket: %w", err)
	}
	if err := syscall.Sendto(fd, msg, 0, kernel); err != nil {
		return fmt.Errorf("sending rtnetlink request: %w", err)
	}

	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("reading rtnetlink answer: %w", err)
		}
		replies, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parsing rtnetlink answer: %w", err)
		}
		for _, r := range replies {
			if r.Header.Seq != seq || r.Header.Type != syscall.NLMSG_ERROR {
				continue
			}
			if len(r.Data) < 4 {
				return errors.New("short rtnetlink error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(r.Data)); errno != 0 {
				return syscall.Errno(-errno)
			}
			return nil
		}
	}
}
