package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSplitDER(t *testing.T) {
	a, b := selfSigned(t, "leaf"), selfSigned(t, "ca")
	cat := append(append([]byte{}, a...), b...)
	for name, tc := range map[string]struct {
		in   []byte
		want int
		err  bool
	}{
		"one":           {in: a, want: 1},
		"two":           {in: cat, want: 2},
		"zero-padded":   {in: append(append([]byte{}, cat...), make([]byte, 100)...), want: 2},
		"ff-padded":     {in: append(append([]byte{}, a...), bytes.Repeat([]byte{0xff}, 9)...), want: 1},
		"only-padding":  {in: make([]byte, 64), want: 0},
		"garbage":       {in: []byte("hello world"), err: true},
		"truncated":     {in: a[:len(a)-10], err: true},
		"trailing-junk": {in: append(append([]byte{}, a...), 0x30, 0x01), err: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := splitDER(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("want an error, got %d certificates", len(got))
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d certificates, err %v; want %d", len(got), err, tc.want)
			}
			if tc.want > 0 && !bytes.Equal(got[0], a) {
				t.Fatal("first element is not the leaf")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"swtpm:no-port":       "swtpm:HOST:PORT",
		"swtpm:127.0.0.1:1":   "127.0.0.1:1",
		"unix:":               "unix:/path",
		"unix:/nonexistent/s": "/nonexistent/s",
		"/nonexistent/tpm0":   "/nonexistent/tpm0",
		"/etc/hostname":       "not a character device",
	} {
		if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
	if _, err := os.Stat("/dev/tpmrm0"); err == nil {
		t.Skip("this machine has a TPM; not checking the auto fallback error")
	}
	_, err := Open("auto")
	if err == nil || !strings.Contains(err.Error(), "/dev/tpmrm0") || !strings.Contains(err.Error(), "/dev/tpm0") {
		t.Fatalf("Open(auto) without a TPM = %v, want an error naming both devices", err)
	}
}

// fakeTPM serves a scripted reply per connection on 127.0.0.1.
func fakeTPM(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

func readCommand(c net.Conn) error {
	hdr := make([]byte, tpmHeaderSize)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[2:6]))-tpmHeaderSize)
	return err
}

// A minimal TPM2_GetRandom command and a success response split across writes.
var (
	getRandom = []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8}
	okRsp     = []byte{0x80, 0x01, 0, 0, 0, 20, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}
)

func TestStreamFramingAndRedial(t *testing.T) {
	var conns atomic.Int32
	addr := fakeTPM(t, func(c net.Conn) {
		n := conns.Add(1)
		for readCommand(c) == nil {
			if n == 1 {
				// First connection: a lying header, which must poison it.
				c.Write([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
				return
			}
			c.Write(okRsp[:3])
			time.Sleep(5 * time.Millisecond)
			c.Write(okRsp[3:])
		}
	})
	tp, err := Open("swtpm:" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if _, err := tp.Send(getRandom); err == nil || !strings.Contains(err.Error(), "out of sync") {
		t.Fatalf("bogus size: err = %v", err)
	}
	for range 3 {
		rsp, err := tp.Send(getRandom)
		if err != nil || !bytes.Equal(rsp, okRsp) {
			t.Fatalf("after redial: rsp %x, err %v", rsp, err)
		}
	}
	tp.Close()
	if _, err := tp.Send(getRandom); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

func TestStreamDeadline(t *testing.T) {
	old := commandTimeout
	commandTimeout = 300 * time.Millisecond
	defer func() { commandTimeout = old }()
	// A TPM that accepts the command and never answers (a stopped swtpm).
	addr := fakeTPM(t, func(c net.Conn) { _ = readCommand(c); time.Sleep(5 * time.Second) })
	tp, err := Open("swtpm:" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	start := time.Now()
	_, err = tp.Send(getRandom)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent TPM: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestRetry(t *testing.T) {
	calls := 0
	got, err := withRetry(func() (int, error) {
		calls++
		if calls < 3 {
			return 0, tpm2.TPMRCRetry
		}
		return 42, nil
	})
	if err != nil || got != 42 || calls != 3 {
		t.Fatalf("retry: got %d, err %v, calls %d", got, err, calls)
	}
	calls = 0
	_, err = withRetry(func() (int, error) { calls++; return 0, tpm2.TPMRCHandle })
	if !errors.Is(err, tpm2.TPMRCHandle) || calls != 1 {
		t.Fatalf("non-retryable: err %v, calls %d", err, calls)
	}
}
