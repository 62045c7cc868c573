package dns

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestParseTXT(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		key  string
		val  []byte
		ok   bool
	}{
		{"simple", []string{"ci=abc"}, "ci", []byte("abc"), true},
		{"joined before split", []string{"c", "i=a", "b=c"}, "ci", []byte("ab=c"), true},
		{"escapes", []string{`ov=\000\255\"\\x`}, "ov", []byte{0, 255, '"', '\\', 'x'}, true},
		{"key case folded", []string{"OC=1"}, "oc", []byte("1"), true},
		{"empty value", []string{"ci="}, "ci", []byte{}, true},
		{"no equals", []string{"hello"}, "", nil, false},
		{"empty key", []string{"=x"}, "", nil, false},
		{"nothing", nil, "", nil, false},
		{"escaped equals is data", []string{`ci\061x=y`}, "ci", []byte("x=y"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, v, ok := ParseTXT(tc.in)
			if ok != tc.ok || k != tc.key || !bytes.Equal(v, tc.val) {
				t.Fatalf("ParseTXT(%q) = %q, %q, %v; want %q, %q, %v", tc.in, k, v, ok, tc.key, tc.val, tc.ok)
			}
		})
	}
}

// TestParseTXTMatchesWire checks ParseTXT against what miekg/dns puts on
// the wire for the same strings, over a full binary value.
func TestParseTXTMatchesWire(t *testing.T) {
	val := blob(7, 5000)
	rr := txtRecord("x.", "ci", val)
	k, v, ok := ParseTXT(rr.Txt)
	if !ok || k != "ci" || !bytes.Equal(v, val) {
		t.Fatalf("round trip failed: %q %d bytes ok=%v", k, len(v), ok)
	}
	if got := wireTXT(t, rr.Txt); !bytes.Equal(got, append([]byte("ci="), val...)) {
		t.Fatal("wire form differs")
	}
}

// wireTXT packs the strings through miekg/dns and returns the joined
// character-strings from the wire: the oracle for ParseTXT.
func wireTXT(t testing.TB, txt []string) []byte {
	rr := &mdns.TXT{Hdr: mdns.RR_Header{Name: "x.", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET}, Txt: txt}
	buf := make([]byte, mdns.Len(rr)+64)
	off, err := mdns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	rd := buf[off-int(rr.Hdr.Rdlength) : off]
	var out []byte
	for len(rd) > 0 {
		n := int(rd[0])
		out = append(out, rd[1:1+n]...)
		rd = rd[1+n:]
	}
	return out
}

func TestValidateSerial(t *testing.T) {
	good := []string{"SN-DNS-1", "FOC1234X0AB", "a", strings.Repeat("9", 63), "SN_1+2/3:4"}
	bad := []string{"", "a.b", `a\046b`, "sn 1", "sn\x00", "SN-é", strings.Repeat("9", 64), "tab\t", "."}
	for _, s := range good {
		if err := validateSerial(s); err != nil {
			t.Errorf("%q rejected: %v", s, err)
		}
	}
	for _, s := range bad {
		if err := validateSerial(s); err == nil {
			t.Errorf("%q accepted", s)
		}
		// The public entry point must refuse before any query.
		if _, err := DeviceSpecific(context.Background(), Config{}, s); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceSpecific(%q) = %v", s, err)
		}
	}
}

func srv(pri, wgt uint16, target string) *mdns.SRV {
	return srvRecord("_sztp._tcp.x.", pri, wgt, 443, target)
}

func TestOrderSRVDeterministic(t *testing.T) {
	in := []*mdns.SRV{srv(20, 5, "c."), srv(10, 60, "a."), srv(10, 0, "z."), srv(10, 20, "b."), nil, srv(10, 60, "a."), srv(5, 0, ".")}
	// Priority 10 after dedupe: [z(0) a(60) b(20)], running sums 0,60,80.
	// rnd answers 70 → b; then [z a] sums 0,60: 0 → z; then a; then c.
	answers := []int{70, 0, 0, 0}
	var asked []int
	rnd := func(n int) int { asked = append(asked, n); r := answers[0]; answers = answers[1:]; return r }
	got := OrderSRV(in, rnd)
	var hosts []string
	for _, t := range got {
		hosts = append(hosts, t.Host)
	}
	if want := []string{"b", "z", "a", "c"}; !reflect.DeepEqual(hosts, want) {
		t.Fatalf("order %v, want %v", hosts, want)
	}
	if want := []int{81, 61, 61, 6}; !reflect.DeepEqual(asked, want) {
		t.Errorf("rnd asked %v, want %v (sum+1 per RFC 2782)", asked, want)
	}
	// A misbehaving rnd must not panic.
	OrderSRV(in, func(int) int { return -7 })
	OrderSRV(in, func(n int) int { return n * 3 })
}

// TestOrderSRVWeights checks the weight distribution with an injected,
// seeded generator: within priority 10, a (60) should lead 60/81 of the
// time, b (20) 20/81 and z (0) 1/81.
func TestOrderSRVWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in := []*mdns.SRV{srv(10, 60, "a."), srv(10, 20, "b."), srv(10, 0, "z."), srv(20, 0, "c.")}
	const n = 20000
	first := map[string]int{}
	for range n {
		got := OrderSRV(in, r.IntN)
		if got[3].Host != "c" {
			t.Fatalf("priority violated: %+v", got)
		}
		first[got[0].Host]++
	}
	for host, p := range map[string]float64{"a": 60.0 / 81, "b": 20.0 / 81, "z": 1.0 / 81} {
		want := p * n
		sigma := math.Sqrt(n * p * (1 - p))
		if d := math.Abs(float64(first[host]) - want); d > 4*sigma {
			t.Errorf("%s first %d times, want %.0f ± %.0f", host, first[host], want, 4*sigma)
		}
	}
}

func msgWith(rrs ...mdns.RR) *mdns.Msg {
	m := new(mdns.Msg)
	m.Answer = rrs
	return m
}

func TestArtifactsFromMsg(t *testing.T) {
	const q = "SN-1._sztp.example.net."
	t.Run("cname chain and cache-flush class", func(t *testing.T) {
		ci := txtRecord("real.example.net.", "ci", []byte{1, 2, 3})
		ci.Hdr.Class |= 0x8000
		m := msgWith(
			&mdns.CNAME{Hdr: mdns.RR_Header{Name: "sn-1._SZTP.example.net.", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: "real.example.net."},
			ci, txtRecord("other.example.net.", "oc", []byte{9}),
		)
		a, err := ArtifactsFromMsg(m, q)
		if err != nil || !bytes.Equal(a.ConveyedInformation, []byte{1, 2, 3}) || a.OwnerCertificate != nil || a.Name != q {
			t.Fatalf("got %+v, %v", a, err)
		}
	})
	t.Run("duplicates tolerated, conflicts rejected", func(t *testing.T) {
		m := msgWith(txtRecord(q, "ci", []byte("x")), txtRecord(q, "ci", []byte("x")))
		if _, err := ArtifactsFromMsg(m, q); err != nil {
			t.Fatalf("identical duplicates: %v", err)
		}
		m.Answer = append(m.Answer, txtRecord(q, "CI", []byte("y")))
		if _, err := ArtifactsFromMsg(m, q); !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("conflict: %v", err)
		}
	})
	t.Run("no ci", func(t *testing.T) {
		m := msgWith(txtRecord(q, "oc", []byte("x")), txtRecord(q, "ov", []byte("x")))
		if _, err := ArtifactsFromMsg(m, q); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cname loop", func(t *testing.T) {
		m := msgWith(
			&mdns.CNAME{Hdr: mdns.RR_Header{Name: q, Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: "b."},
			&mdns.CNAME{Hdr: mdns.RR_Header{Name: "b.", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: q},
		)
		if _, err := ArtifactsFromMsg(m, q); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTargetsFromMsgDot(t *testing.T) {
	_, err := TargetsFromMsg(msgWith(srvRecord("_sztp._tcp.x.", 0, 0, 0, ".")), "_sztp._tcp.x.", nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("got %v", err)
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.test. local corp.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := newRecorder()
	s, d, err := unicastSetup(Config{ResolvConf: p}, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !reflect.DeepEqual(s, want) {
		t.Errorf("servers %v, want %v", s, want)
	}
	// ".local" is mDNS-only and must never reach a unicast resolver.
	if want := []string{"example.test.", "corp.example."}; !reflect.DeepEqual(d, want) {
		t.Errorf("domains %v, want %v", d, want)
	}
	// Explicit servers keep their port; domains still come from the file.
	s, d, _ = unicastSetup(Config{ResolvConf: p, Servers: []string{"127.0.0.1:5300", "::1"}}, log)
	if want := []string{"127.0.0.1:5300", "[::1]:53"}; !reflect.DeepEqual(s, want) || len(d) != 2 {
		t.Errorf("servers %v domains %v", s, d)
	}
	// Missing file: unicast DNS simply unknown.
	s, d, err = unicastSetup(Config{ResolvConf: filepath.Join(dir, "missing")}, log)
	if err != nil || s != nil || d != nil {
		t.Errorf("missing file: %v %v %v", s, d, err)
	}
	// With nothing known and mDNS off, the answer is a plain not-found.
	_, err = DeviceIndependent(context.Background(), Config{ResolvConf: filepath.Join(dir, "missing")})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v", err)
	}
	// A bad search domain is a configuration error.
	if _, _, err := unicastSetup(Config{Servers: []string{"127.0.0.1"}, Domains: []string{"bad..name"}}, log); err == nil {
		t.Error("bad domain accepted")
	}
}
