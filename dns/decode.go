package dns

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	mdns "github.com/miekg/dns"
)

// Keys of the device-specific TXT record (RFC 8572 §4.2).
const (
	keyConveyedInformation = "ci"
	keyOwnerCertificate    = "oc"
	keyOwnershipVoucher    = "ov"
)

// maxCNAMEChain bounds how many CNAMEs inside one answer section we follow
// from the queried name. A recursive resolver may legitimately return
// "name CNAME other; other TXT ..."; a loop or a long chain is garbage.
const maxCNAMEChain = 8

// ErrAmbiguous is wrapped by decode errors when two TXT records of the same
// owner name carry the same key with different values. An RRset has no
// order, so there is no principled way to pick one; the source is skipped.
var ErrAmbiguous = errors.New("dns: ambiguous TXT records")

// ParseTXT decodes one TXT resource record into its key and raw value.
//
// rr is the record's character-strings exactly as github.com/miekg/dns
// presents them in TXT.Txt: presentation form, where '"' and '\' arrive as
// \" and \\ and every non-printable octet as \DDD. ParseTXT undoes that
// escaping with the same rules miekg/dns uses when it packs the strings onto
// the wire, so value is byte for byte what the server sent.
//
// The joined-strings rule (RFC 8572 does not say how a multi-KB binary value
// is spread over ≤255-octet character-strings, see checklist DNS-07): all of
// the RR's character-strings are concatenated first, and the result is split
// at the first '='. Splitting before joining would lose values that happen to
// contain '=' at a string boundary, and a key of only two letters can never
// straddle a boundary sensibly anyway. One RR therefore carries one key.
//
// The key is compared case-insensitively and returned in lower case,
// following the DNS-SD convention for TXT keys (RFC 6763 §6.4); RFC 8572
// only names the lower-case forms. ok is false when there is no '=' or the
// key is empty. Keys other than ci/oc/ov are returned too; callers ignore
// them.
func ParseTXT(rr []string) (key string, value []byte, ok bool) {
	var joined []byte
	for _, s := range rr {
		joined = appendUnescaped(joined, s)
	}
	i := bytes.IndexByte(joined, '=')
	if i <= 0 {
		return "", nil, false
	}
	return strings.ToLower(string(joined[:i])), joined[i+1:], true
}

// appendUnescaped mirrors miekg/dns packTxtString: a backslash followed by
// three decimal digits is that octet (computed in byte arithmetic, so an
// out-of-range \DDD wraps exactly as the packer would), a backslash followed
// by anything else is that character, a trailing lone backslash is dropped.
func appendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i == len(s) {
			break
		}
		if isDDD(s[i:]) {
			dst = append(dst, (s[i]-'0')*100+(s[i+1]-'0')*10+(s[i+2]-'0'))
			i += 2
			continue
		}
		dst = append(dst, s[i])
	}
	return dst
}

func isDDD(s string) bool {
	return len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2])
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// answers returns the RRs of type qtype that answer qname in m, following
// CNAMEs within the answer section. The class check masks the top bit,
// which mDNS uses as the cache-flush flag (RFC 6762 §10.2).
func answers(m *mdns.Msg, qname string, qtype uint16) []mdns.RR {
	if m == nil {
		return nil
	}
	name := qname
	for range maxCNAMEChain + 1 {
		var out []mdns.RR
		next := ""
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class&0x7fff != mdns.ClassINET || !strings.EqualFold(h.Name, name) {
				continue
			}
			switch {
			case h.Rrtype == qtype:
				out = append(out, rr)
			case h.Rrtype == mdns.TypeCNAME && next == "":
				next = rr.(*mdns.CNAME).Target
			}
		}
		if len(out) > 0 || next == "" {
			return out
		}
		name = next
	}
	return nil
}

// ArtifactsFromMsg extracts the RFC 8572 artifacts for qname from a DNS
// response. Only the answer section is read; rcode handling is the caller's.
// It returns an error wrapping ErrNotFound when no TXT record of qname
// carries a non-empty "ci" (without conveyed information there is nothing to
// bootstrap from, whatever else is there), and one wrapping ErrAmbiguous when
// a key appears with two different values. Unknown keys are ignored
// (RFC 8572 §4.2 MUST). Via is left empty for the caller to fill in.
func ArtifactsFromMsg(m *mdns.Msg, qname string) (*Artifacts, error) {
	a := &Artifacts{Name: qname}
	slots := map[string]*[]byte{
		keyConveyedInformation: &a.ConveyedInformation,
		keyOwnerCertificate:    &a.OwnerCertificate,
		keyOwnershipVoucher:    &a.OwnershipVoucher,
	}
	for _, rr := range answers(m, qname, mdns.TypeTXT) {
		key, value, ok := ParseTXT(rr.(*mdns.TXT).Txt)
		if !ok {
			continue
		}
		slot, known := slots[key]
		if !known || len(value) == 0 {
			continue
		}
		// The same RR may legitimately arrive twice (several mDNS
		// responders, or a resolver that does not dedupe); identical
		// values are harmless.
		if *slot != nil && !bytes.Equal(*slot, value) {
			return nil, fmt.Errorf("%s: key %q appears in two TXT records with different values: %w", qname, key, ErrAmbiguous)
		}
		*slot = value
	}
	if a.ConveyedInformation == nil {
		return nil, fmt.Errorf("%s: no TXT record with a %q key: %w", qname, keyConveyedInformation, ErrNotFound)
	}
	return a, nil
}

// TargetsFromMsg extracts the SRV records for qname from a DNS response and
// orders them with OrderSRV. It returns an error wrapping ErrNotFound when
// there is no usable target, including the case of a single "." target,
// which RFC 2782 defines as "service decidedly not available".
func TargetsFromMsg(m *mdns.Msg, qname string, rnd func(int) int) ([]Target, error) {
	var srvs []*mdns.SRV
	for _, rr := range answers(m, qname, mdns.TypeSRV) {
		srvs = append(srvs, rr.(*mdns.SRV))
	}
	t := OrderSRV(srvs, rnd)
	if len(t) == 0 {
		if len(srvs) > 0 {
			return nil, fmt.Errorf("%s: SRV target \".\": service not available: %w", qname, ErrNotFound)
		}
		return nil, fmt.Errorf("%s: no SRV record: %w", qname, ErrNotFound)
	}
	return t, nil
}

// OrderSRV orders SRV records per RFC 2782: ascending priority; within one
// priority, the RFC's running-sum selection is repeated on the remaining
// records (weight-0 records go first in the running sum, which leaves them a
// small chance of being picked early, as the RFC intends).
// rnd(n) must return a value in [0, n); nil means math/rand/v2.IntN. Records
// with target "." (service not available), nil entries and exact duplicates
// are dropped. Host names are returned without the trailing dot because the
// result feeds TLS server-name checks, which do not expect one.
func OrderSRV(srvs []*mdns.SRV, rnd func(int) int) []Target {
	if rnd == nil {
		rnd = rand.IntN
	}
	type key struct {
		host           string
		port, pri, wgt uint16
	}
	seen := map[key]bool{}
	byPri := map[uint16][]Target{}
	var pris []uint16
	for _, s := range srvs {
		if s == nil || s.Target == "." || s.Target == "" {
			continue
		}
		t := Target{Host: strings.TrimSuffix(s.Target, "."), Port: s.Port, Priority: s.Priority, Weight: s.Weight}
		k := key{strings.ToLower(t.Host), t.Port, t.Priority, t.Weight}
		if t.Host == "" || seen[k] {
			continue
		}
		seen[k] = true
		if _, ok := byPri[t.Priority]; !ok {
			pris = append(pris, t.Priority)
		}
		byPri[t.Priority] = append(byPri[t.Priority], t)
	}
	sort.Slice(pris, func(i, j int) bool { return pris[i] < pris[j] })

	var out []Target
	for _, p := range pris {
		group := byPri[p]
		// "all those with weight 0 are placed at the beginning of the
		// list"; a stable sort keeps the received order otherwise.
		sort.SliceStable(group, func(i, j int) bool { return group[i].Weight == 0 && group[j].Weight != 0 })
		for len(group) > 0 {
			sum := 0
			for _, t := range group {
				sum += int(t.Weight)
			}
			// Uniform in [0, sum] inclusive, as RFC 2782 says. A
			// misbehaving injected rnd is folded back into range
			// rather than allowed to panic.
			r := rnd(sum + 1)
			if r < 0 || r > sum {
				r = ((r % (sum + 1)) + sum + 1) % (sum + 1)
			}
			pick, run := len(group)-1, 0
			for i, t := range group {
				run += int(t.Weight)
				if run >= r {
					pick = i
					break
				}
			}
			out = append(out, group[pick])
			group = append(group[:pick:pick], group[pick+1:]...)
		}
	}
	return out
}
