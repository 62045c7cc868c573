package dns

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzParseTXT feeds arbitrary presentation-form strings to ParseTXT and
// compares with the oracle: what miekg/dns packs on the wire for the same
// strings, joined, split at the first '='. The input is split into strings
// at 0x1e so the fuzzer can vary the number and lengths of strings.
func FuzzParseTXT(f *testing.F) {
	f.Add("ci=abc")
	f.Add("c\x1ei=a\x1eb=c")
	f.Add(`ov=\000\255\"\\`)
	f.Add(`x\`)
	f.Add(`ci=\999\25`)
	f.Add("=no key")
	f.Fuzz(func(t *testing.T, in string) {
		txt := strings.Split(in, "\x1e")
		key, val, ok := ParseTXT(txt)
		wire := wireTXT(t, txt)
		if wire == nil {
			return // miekg/dns cannot pack it (a string over 255 octets)
		}
		i := bytes.IndexByte(wire, '=')
		wantOK := i > 0
		if ok != wantOK {
			t.Fatalf("ok=%v, oracle %v for %q", ok, wantOK, wire)
		}
		if !ok {
			return
		}
		if key != strings.ToLower(string(wire[:i])) || !bytes.Equal(val, wire[i+1:]) {
			t.Fatalf("ParseTXT(%q) = %q,%q; wire %q", txt, key, val, wire)
		}
	})
}

// FuzzDecodeMsg unpacks arbitrary bytes as a DNS message and runs both
// decoders on it. Neither may panic, and any result must be internally
// consistent: artifacts always carry ci, targets are priority-ordered and
// never ".".
func FuzzDecodeMsg(f *testing.F) {
	seed := func(rrs ...mdns.RR) []byte {
		m := new(mdns.Msg)
		m.SetQuestion("SN-1._sztp.local.", mdns.TypeTXT)
		m.Response = true
		m.Answer = rrs
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(txtRecord("SN-1._sztp.local.", "ci", blob(1, 600)), txtRecord("SN-1._sztp.local.", "ov", []byte{0})))
	f.Add(seed(srvRecord("_sztp._tcp.local.", 1, 5, 443, "a.local."), srvRecord("_sztp._tcp.local.", 0, 0, 1, ".")))
	f.Add(seed(&mdns.CNAME{Hdr: mdns.RR_Header{Name: "SN-1._sztp.local.", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: "x.local."},
		txtRecord("x.local.", "ci", []byte("c"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(mdns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		a, err := ArtifactsFromMsg(m, "SN-1._sztp.local.")
		if err == nil && len(a.ConveyedInformation) == 0 {
			t.Fatal("artifacts without ci")
		}
		if err != nil && a != nil {
			t.Fatal("artifacts and error")
		}
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		i := 0
		ts, err := TargetsFromMsg(m, "_sztp._tcp.local.", func(n int) int { i++; return i % n })
		if err != nil {
			if !errors.Is(err, ErrNotFound) || ts != nil {
				t.Fatalf("targets %v, err %v", ts, err)
			}
			return
		}
		for j, tg := range ts {
			if tg.Host == "" || tg.Host == "." {
				t.Fatalf("bad host in %+v", ts)
			}
			if j > 0 && ts[j-1].Priority > tg.Priority {
				t.Fatalf("priority order violated: %+v", ts)
			}
		}
	})
}
