package dns

// Test helpers free of root, namespaces and servers, shared by the unit,
// fuzz and integration tests.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
)

// blob returns n deterministic bytes that contain every octet value
// (0x00..0xff first, then seeded noise), so escaping bugs anywhere in the
// zone file, the server or the decoder show up as a byte mismatch.
func blob(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x5a5a))
	for i := range b {
		if i < 256 {
			b[i] = byte(i + int(seed))
		} else {
			b[i] = byte(r.UintN(256))
		}
	}
	return b
}

// txtStrings turns key=value into TXT.Txt strings in miekg/dns
// presentation form, ≤255 octets each on the wire.
func txtStrings(key string, value []byte) []string {
	raw := append([]byte(key+"="), value...)
	var out []string
	for len(raw) > 0 {
		n := min(255, len(raw))
		var sb strings.Builder
		for _, c := range raw[:n] {
			switch {
			case c == '"' || c == '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			case c < ' ' || c > '~':
				fmt.Fprintf(&sb, "\\%03d", c)
			default:
				sb.WriteByte(c)
			}
		}
		out = append(out, sb.String())
		raw = raw[n:]
	}
	return out
}

func txtRecord(owner, key string, value []byte) *mdns.TXT {
	return &mdns.TXT{Hdr: mdns.RR_Header{Name: owner, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 10}, Txt: txtStrings(key, value)}
}

func srvRecord(owner string, pri, wgt, port uint16, target string) *mdns.SRV {
	return &mdns.SRV{Hdr: mdns.RR_Header{Name: owner, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: 10}, Priority: pri, Weight: wgt, Port: port, Target: target}
}

// recorder is a slog handler that keeps message texts, so tests can see
// which code path ran (e.g. the TCP retry) without parsing output.
type recorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder() (*slog.Logger, func() []string) {
	r := recorder{mu: new(sync.Mutex), msgs: new([]string)}
	return slog.New(r), func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return append([]string(nil), *r.msgs...)
	}
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.msgs = append(*r.msgs, rec.Message)
	return nil
}
func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
