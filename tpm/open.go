package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// commandTimeout bounds one command/response exchange. A TPM that vanished
// (swtpm killed, socket half-open) must surface as an error, not as an agent
// that hangs forever in the middle of a TLS handshake. Real TPMs answer in
// well under a second even for RSA key generation's worst cases, so 30 s only
// fires when something is broken. A variable only so tests can shorten it.
var commandTimeout = 30 * time.Second

// maxResponseSize caps the size field of a response header. TPM 2.0 responses
// are bounded by TPM_PT_MAX_RESPONSE_SIZE (4096 on every TPM we know of); a
// larger claim means the stream is out of sync, and trusting it would let a
// broken peer make us allocate arbitrary memory.
const maxResponseSize = 64 * 1024

// tpmHeaderSize is tag (2) + size (4) + code (4), shared by commands and responses.
const tpmHeaderSize = 10

// Default device paths: the kernel resource manager first, because it lets
// several processes share the TPM and flushes our transient objects if we
// die; the raw device only as a fallback for kernels or images without it.
var defaultDevices = []string{"/dev/tpmrm0", "/dev/tpm0"}

// Open opens a TPM named by spec:
//
//   - "" or "auto": /dev/tpmrm0, then /dev/tpm0 (both errors are joined if both fail);
//   - "swtpm:HOST:PORT": swtpm's TCP data port, speaking the raw TPM
//     command/response framing (not the MS simulator protocol; no power-on is
//     sent, swtpm must run with --flags not-need-init,startup-clear or be
//     started by someone else);
//   - "unix:/path": swtpm's unix-socket data port, same framing;
//   - anything else: a TPM character device path.
//
// Every command is bounded by a 30 s deadline where the operating system
// supports one, and the returned transport serialises concurrent Send calls.
func Open(spec string) (transport.TPMCloser, error) {
	switch {
	case spec == "" || spec == "auto":
		var errs []error
		for _, path := range defaultDevices {
			t, err := openDevice(path)
			if err == nil {
				return t, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("no TPM device found: %w", errors.Join(errs...))
	case strings.HasPrefix(spec, "swtpm:"):
		addr := strings.TrimPrefix(spec, "swtpm:")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("parsing TPM spec %q (want swtpm:HOST:PORT): %w", spec, err)
		}
		return openStream("tcp", addr)
	case strings.HasPrefix(spec, "unix:"):
		path := strings.TrimPrefix(spec, "unix:")
		if path == "" {
			return nil, fmt.Errorf("parsing TPM spec %q: want unix:/path/to/socket", spec)
		}
		return openStream("unix", path)
	default:
		return openDevice(spec)
	}
}

// streamTPM talks to swtpm over a stream socket. It keeps one connection
// open (swtpm serves one client at a time and keeps TPM sessions per
// connection), and redials after any failure so that a restarted swtpm is
// picked up by the next command instead of poisoning the transport forever.
type streamTPM struct {
	mu      sync.Mutex
	network string
	addr    string
	conn    net.Conn
	closed  bool
}

func openStream(network, addr string) (*streamTPM, error) {
	s := &streamTPM{network: network, addr: addr}
	// Dial now so a wrong address fails at Open, where the caller can still
	// say which TPM it meant, rather than at the first signature.
	if err := s.dial(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *streamTPM) dial() error {
	conn, err := net.DialTimeout(s.network, s.addr, commandTimeout)
	if err != nil {
		return fmt.Errorf("connecting to swtpm at %s %s: %w", s.network, s.addr, err)
	}
	s.conn = conn
	return nil
}

// Send implements transport.TPM.
func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("sending TPM command to %s: %w", s.addr, net.ErrClosed)
	}
	if s.conn == nil {
		if err := s.dial(); err != nil {
			return nil, err
		}
	}
	if err := s.conn.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		s.drop()
		return nil, fmt.Errorf("setting deadline on TPM connection %s: %w", s.addr, err)
	}
	rsp, err := exchange(s.conn, cmd, true)
	if err != nil {
		// The stream may hold half a response; it cannot be reused.
		s.drop()
		return nil, fmt.Errorf("TPM at %s %s: %w", s.network, s.addr, err)
	}
	return rsp, nil
}

func (s *streamTPM) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close implements io.Closer.
func (s *streamTPM) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// deviceTPM talks to a kernel TPM character device. The kernel driver accepts
// exactly one command per write and returns the whole response to the next
// read.
type deviceTPM struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	closed bool
}

func openDevice(path string) (*deviceTPM, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening TPM device: %w", err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return nil, fmt.Errorf("opening TPM device %s: not a character device (mode %s)", path, fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening TPM device: %w", err)
	}
	return &deviceTPM{path: path, f: f}, nil
}

// Send implements transport.TPM.
func (d *deviceTPM) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("sending TPM command to %s: %w", d.path, os.ErrClosed)
	}
	// Modern TPM drivers are pollable, so Go can enforce a deadline; older
	// ones are not, and then we rely on the driver's own command timeouts.
	if err := d.f.SetDeadline(time.Now().Add(commandTimeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return nil, fmt.Errorf("setting deadline on %s: %w", d.path, err)
	}
	rsp, err := exchange(d.f, cmd, false)
	if err != nil {
		return nil, fmt.Errorf("TPM device %s: %w", d.path, err)
	}
	return rsp, nil
}

// Close implements io.Closer.
func (d *deviceTPM) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.f.Close()
}

// exchange writes one command and reads exactly one response. For sockets
// the response is read as header then body, because TCP may split it
// anywhere. For devices the first read must ask for the whole buffer: older
// kernels discard whatever a short read leaves behind.
func exchange(rw io.ReadWriter, cmd []byte, stream bool) ([]byte, error) {
	if len(cmd) < tpmHeaderSize {
		return nil, fmt.Errorf("command of %d bytes is shorter than a TPM header", len(cmd))
	}
	if _, err := rw.Write(cmd); err != nil {
		return nil, fmt.Errorf("writing command: %w", err)
	}
	var buf []byte
	if stream {
		buf = make([]byte, tpmHeaderSize)
		if _, err := io.ReadFull(rw, buf); err != nil {
			return nil, fmt.Errorf("reading response header: %w", noEOF(err))
		}
	} else {
		buf = make([]byte, 4096)
		n, err := rw.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("reading response: %w", noEOF(err))
		}
		buf = buf[:n]
		if n < tpmHeaderSize {
			return nil, fmt.Errorf("short response of %d bytes", n)
		}
	}
	size := binary.BigEndian.Uint32(buf[2:6])
	if size < tpmHeaderSize || size > maxResponseSize {
		return nil, fmt.Errorf("response header claims %d bytes; stream out of sync", size)
	}
	switch {
	case uint32(len(buf)) > size:
		return nil, fmt.Errorf("response of %d bytes is longer than its header's %d", len(buf), size)
	case uint32(len(buf)) < size:
		rest := make([]byte, int(size)-len(buf))
		if _, err := io.ReadFull(rw, rest); err != nil {
			return nil, fmt.Errorf("reading response body: %w", noEOF(err))
		}
		buf = append(buf, rest...)
	}
	return buf, nil
}

// noEOF turns a clean EOF into ErrUnexpectedEOF: in the middle of an exchange
// the peer closing the connection is a failure, and callers that treat
// io.EOF as "done" must not mistake it for success.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("TPM closed the connection: %w", io.ErrUnexpectedEOF)
	}
	return err
}
