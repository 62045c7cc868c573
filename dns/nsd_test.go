//go:build linux

package dns

// Unicast DNS against a real authoritative server (NSD from Debian) bound
// to loopback on a free high port, with zone files written at test time.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// nsdLoopback starts one NSD for all tests in this file.
func nsdLoopback(t *testing.T) *nsdServer {
	requireLab(t, "nsd")
	return startNSD(t, "", "127.0.0.1", 0, map[string]string{
		"example.test": exampleZone(),
		"empty.test":   "",
		"dot.test":     "",
	})
}

func TestUnicastNSD(t *testing.T) {
	srv := nsdLoopback(t)
	base := Config{Servers: []string{srv.Addr}, Domains: []string{"example.test"}, Timeout: 2 * time.Second}

	t.Run("udp answer is truncated", func(t *testing.T) {
		// The premise of the TCP test: over UDP with our EDNS size the
		// server cannot send the artifacts.
		q := new(mdns.Msg)
		q.SetQuestion("SN-DNS-1._sztp.example.test.", mdns.TypeTXT)
		q.SetEdns0(ednsUDPSize, false)
		r, _, err := (&mdns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(q, srv.Addr)
		if err != nil {
			t.Fatalf("udp query: %v", err)
		}
		if !r.Truncated {
			t.Fatalf("expected TC=1 over UDP, got %d answers", len(r.Answer))
		}
	})

	t.Run("device-specific large artifacts over TCP", func(t *testing.T) {
		c := base
		var msgs func() []string
		c.Logger, msgs = newRecorder()
		start := time.Now()
		a, err := DeviceSpecific(context.Background(), c, "SN-DNS-1")
		if err != nil {
			t.Fatalf("DeviceSpecific: %v", err)
		}
		t.Logf("found %d+%d+%d bytes in %s", len(a.ConveyedInformation), len(a.OwnerCertificate), len(a.OwnershipVoucher), time.Since(start))
		if a.Via != "unicast" || a.Name != "SN-DNS-1._sztp.example.test." {
			t.Errorf("Via=%q Name=%q", a.Via, a.Name)
		}
		assertArtifacts(t, a, unicastSN1)
		if !contains(msgs(), "answer truncated, retrying over TCP") {
			t.Errorf("no TCP retry logged: %q", msgs())
		}
	})

	t.Run("unsigned ci only", func(t *testing.T) {
		a, err := DeviceSpecific(context.Background(), base, "SN-DNS-2")
		if err != nil {
			t.Fatalf("DeviceSpecific: %v", err)
		}
		assertArtifacts(t, a, unicastSN2)
	})

	t.Run("search order: first domain without records, second with", func(t *testing.T) {
		c := base
		c.Domains = []string{"empty.test", "dot.test", "example.test."}
		a, err := DeviceSpecific(context.Background(), c, "SN-DNS-1")
		if err != nil {
			t.Fatalf("DeviceSpecific: %v", err)
		}
		if a.Name != "SN-DNS-1._sztp.example.test." {
			t.Errorf("Name = %q", a.Name)
		}
		assertArtifacts(t, a, unicastSN1)
	})

	for _, tc := range []struct {
		name, serial string
		domains      []string
	}{
		{"unknown serial", "SN-NOPE", []string{"example.test"}},
		{"zone without records", "SN-DNS-1", []string{"empty.test"}},
		{"only unrelated keys", "SN-DNS-1", []string{"dot.test"}},
	} {
		t.Run("not found: "+tc.name, func(t *testing.T) {
			c := base
			c.Domains = tc.domains
			a, err := DeviceSpecific(context.Background(), c, tc.serial)
			if a != nil || !errors.Is(err, ErrNotFound) || errors.Is(err, ErrLookupFailed) {
				t.Fatalf("got %v, %v; want nil, ErrNotFound", a, err)
			}
		})
	}

	t.Run("device-independent priority order", func(t *testing.T) {
		// Real randomness: priority order must hold on every run, and
		// over many runs the weight-60 target must lead more often than
		// the weight-20 one (exact statistics: TestOrderSRVWeights).
		first := map[string]int{}
		const runs = 200
		for range runs {
			ts, err := DeviceIndependent(context.Background(), base)
			if err != nil {
				t.Fatalf("DeviceIndependent: %v", err)
			}
			if len(ts) != 3 || ts[2].Host != "bs-c.example.test" || ts[2].Port != 443 || ts[0].Priority != 10 || ts[1].Priority != 10 {
				t.Fatalf("bad order: %+v", ts)
			}
			first[ts[0].Host]++
		}
		// Expected 60/81 vs 21/81 of runs; 3σ is about 18 runs.
		if a := first["bs-a.example.test"]; a < 120 || a > 175 {
			t.Errorf("bs-a first in %d/%d runs, expected ≈148", a, runs)
		}
	})

	t.Run("device-independent not found", func(t *testing.T) {
		for _, d := range []string{"empty.test", "dot.test"} {
			c := base
			c.Domains = []string{d}
			ts, err := DeviceIndependent(context.Background(), c)
			if ts != nil || !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: got %v, %v; want ErrNotFound", d, ts, err)
			}
		}
	})

	t.Run("refused is a failure, not a negative answer", func(t *testing.T) {
		c := base
		c.Domains = []string{"not-served.test"}
		_, err := DeviceSpecific(context.Background(), c, "SN-DNS-1")
		if !errors.Is(err, ErrLookupFailed) || errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v; want ErrLookupFailed", err)
		}
	})

	t.Run("failover from a dead server", func(t *testing.T) {
		c := base
		c.Servers = []string{blackhole(t), srv.Addr}
		c.Timeout = 300 * time.Millisecond
		start := time.Now()
		a, err := DeviceSpecific(context.Background(), c, "SN-DNS-1")
		if err != nil {
			t.Fatalf("DeviceSpecific: %v", err)
		}
		assertArtifacts(t, a, unicastSN1)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s", d)
		}
	})
}

func TestUnicastServerDown(t *testing.T) {
	// No root or package needed: only loopback sockets of our own.
	closed := func() string {
		// A port that was just free: queries get ICMP port unreachable.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		return addr
	}
	for _, tc := range []struct {
		name   string
		server string
	}{
		{"blackhole", blackhole(t)},
		{"closed port", closed()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Servers: []string{tc.server}, Domains: []string{"example.test", "example.org"}, Timeout: 250 * time.Millisecond}
			start := time.Now()
			a, err := DeviceSpecific(context.Background(), c, "SN-DNS-1")
			took := time.Since(start)
			if a != nil || !errors.Is(err, ErrLookupFailed) || errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, %v; want ErrLookupFailed", a, err)
			}
			var ne net.Error
			if tc.name == "blackhole" && (!errors.As(err, &ne) || !ne.Timeout()) {
				t.Errorf("want a timeout inside %v", err)
			}
			// Two names × one server × 250 ms, plus slack.
			if took > 1500*time.Millisecond {
				t.Errorf("took %s, want ≤ 2×Timeout", took)
			}
			t.Logf("%s: failed in %s: %v", tc.name, took, err)
		})
	}
	t.Run("context deadline wins over Timeout", func(t *testing.T) {
		c := Config{Servers: []string{blackhole(t)}, Domains: []string{"example.test"}, Timeout: 10 * time.Second}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := DeviceIndependent(ctx, c)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %s", d)
		}
	})
}

func assertArtifacts(t *testing.T, a *Artifacts, want artifactSet) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"ci", a.ConveyedInformation, want.CI},
		{"oc", a.OwnerCertificate, want.OC},
		{"ov", a.OwnershipVoucher, want.OV},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s: got %d bytes, want %d bytes (first difference at %s)", f.name, len(f.got), len(f.want), firstDiff(f.got, f.want))
		}
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return strconv.Itoa(i)
		}
	}
	return "end"
}
