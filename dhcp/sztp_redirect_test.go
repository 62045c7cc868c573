package dhcp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// rfcExample is the payload for https://sztp1.example.com followed by
// https://192.0.2.10:8443.
const rfcExampleHex = "0019" + "68747470733a2f2f737a7470312e6578616d706c652e636f6d" +
	"0017" + "68747470733a2f2f3139322e302e322e31303a38343433"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entries builds a payload the way a server would, without validation, so
// that tests can include invalid URIs.
func entries(uris ...string) []byte {
	var b []byte
	for _, u := range uris {
		b = binary.BigEndian.AppendUint16(b, uint16(len(u)))
		b = append(b, u...)
	}
	return b
}

func TestRFCExampleBothWays(t *testing.T) {
	want := mustHex(t, "00 19 68 74 74 70 73 3a 2f 2f 73 7a 74 70 31 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d "+
		"00 17 68 74 74 70 73 3a 2f 2f 31 39 32 2e 30 2e 32 2e 31 30 3a 38 34 34 33")
	if len(want) != 52 {
		t.Fatalf("example is %d bytes, want 52", len(want))
	}
	if !bytes.Equal(want, mustHex(t, rfcExampleHex)) {
		t.Fatal("test constants disagree")
	}
	uris := []string{"https://sztp1.example.com", "https://192.0.2.10:8443"}

	got, err := EncodeSZTPRedirect(uris)
	if err != nil {
		t.Fatalf("EncodeSZTPRedirect: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeSZTPRedirect = % x\nwant                % x", got, want)
	}

	parsed, dropped, err := ParseSZTPRedirect(want)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("ParseSZTPRedirect: err %v, dropped %v", err, dropped)
	}
	if !slices.Equal(parsed, uris) {
		t.Errorf("ParseSZTPRedirect = %q, want %q", parsed, uris)
	}

	parsed, form, dropped, err := ParseSZTPRedirectCompat(want)
	if err != nil || len(dropped) != 0 || form != FormRFC8572 || !slices.Equal(parsed, uris) {
		t.Errorf("ParseSZTPRedirectCompat = %q, %q, %v, %v", parsed, form, dropped, err)
	}
}

var longHost = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)

type parseCase struct {
	name        string
	payload     []byte
	want        []string
	wantDropped int
	wantErr     error // nil: no error expected
	errContains string
}

func parseCases() []parseCase {
	return []parseCase{
		{name: "rfc example", payload: entries("https://sztp1.example.com", "https://192.0.2.10:8443"),
			want: []string{"https://sztp1.example.com", "https://192.0.2.10:8443"}},
		{name: "ipv6 literal", payload: entries("https://[2001:db8::1]", "https://[2001:DB8:0::2]:443"),
			want: []string{"https://[2001:db8::1]", "https://[2001:db8::2]:443"}},
		{name: "host lowercased", payload: entries("HTTPS://SZTP.Example.COM:0443"),
			want: []string{"https://sztp.example.com:443"}},
		{name: "longest hostname", payload: entries("https://" + longHost + ":65535"),
			want: []string{"https://" + longHost + ":65535"}},
		{name: "http dropped", payload: entries("http://sztp.example.com", "https://sztp.example.com"),
			want: []string{"https://sztp.example.com"}, wantDropped: 1},
		{name: "path dropped", payload: entries("https://a.example/restconf", "https://b.example"),
			want: []string{"https://b.example"}, wantDropped: 1},
		{name: "trailing slash dropped", payload: entries("https://a.example/", "https://b.example"),
			want: []string{"https://b.example"}, wantDropped: 1},
		{name: "query fragment userinfo dropped",
			payload: entries("https://a.example?x", "https://a.example#f", "https://u@a.example", "https://c.example"),
			want:    []string{"https://c.example"}, wantDropped: 3},
		{name: "bad ports dropped",
			payload: entries("https://a.example:0", "https://a.example:65536", "https://a.example:", "https://a.example:8x", "https://a.example:+1", "https://d.example:1"),
			want:    []string{"https://d.example:1"}, wantDropped: 5},
		{name: "bad hosts dropped",
			payload: entries("https://", "https://2001:db8::1", "https://[192.0.2.1]", "https://[fe80::1%25eth0]", "https://[::1",
				"https://[::1]x", "https://under_score.example", "https://-a.example", "https://a..example", "https://a.example.",
				"https://256.1.1.1", "https://192.0.2.010", "https://caf\u00e9.example", "https:// a.example", "https://e.example"),
			want: []string{"https://e.example"}, wantDropped: 14},
		{name: "all invalid", payload: entries("http://a.example", "ftp://b.example"),
			wantDropped: 2, wantErr: ErrNoValidURI},
		{name: "truncated uri", payload: append(entries("https://a.example"), 0x00, 0x20, 'h', 't'),
			wantErr: ErrMalformedOption, errContains: "offset 19"},
		{name: "truncated length", payload: append(entries("https://a.example"), 0x00),
			wantErr: ErrMalformedOption, errContains: "offset 19"},
		{name: "zero length", payload: append(entries("https://a.example"), 0x00, 0x00),
			wantErr: ErrMalformedOption, errContains: "zero uri-length at offset 19"},
		{name: "zero length first", payload: []byte{0, 0}, wantErr: ErrMalformedOption, errContains: "offset 0"},
		{name: "empty payload", payload: nil, wantErr: ErrMalformedOption, errContains: "empty"},
	}
}

func TestParseSZTPRedirect(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			uris, dropped, err := ParseSZTPRedirect(tc.payload)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errContains) {
					t.Errorf("err = %q, want it to mention %q", err, tc.errContains)
				}
				if uris != nil {
					t.Errorf("uris = %q alongside an error, want nil", uris)
				}
			} else if err != nil {
				t.Fatalf("unexpected err: %v", err)
			}
			if !slices.Equal(uris, tc.want) {
				t.Errorf("uris = %q, want %q", uris, tc.want)
			}
			if len(dropped) != tc.wantDropped {
				t.Errorf("dropped = %v, want %d entries", dropped, tc.wantDropped)
			}
			for _, d := range dropped {
				if !errors.Is(d, ErrInvalidURI) || !strings.Contains(d.Error(), "offset") {
					t.Errorf("dropped reason %q should wrap ErrInvalidURI and name the offset", d)
				}
			}
		})
	}
}

func TestDroppedReasons(t *testing.T) {
	for uri, reason := range map[string]string{
		"http://a.example":         "scheme must be https",
		"https://a.example/x":      "path",
		"https://a.example?q":      "query",
		"https://a.example#f":      "fragment",
		"https://u:p@a.example":    "userinfo",
		"https://a.example:70000":  "outside 1..65535",
		"https://2001:db8::1":      "brackets",
		"https://[fe80::1%25eth0]": "IPv6",
		"https://[fe80::1%eth0]":   "zone",
	} {
		_, err := ValidateBootstrapURI(uri)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("ValidateBootstrapURI(%q) = %v, want a reason mentioning %q", uri, err, reason)
		}
	}
}

func TestLongListRoundTrip(t *testing.T) {
	var uris []string
	for i := range 20 {
		uris = append(uris, fmt.Sprintf("https://bootstrap-%02d.sztp.example.net:%d", i, 8000+i))
	}
	payload, err := EncodeSZTPRedirect(uris)
	if err != nil {
		t.Fatalf("EncodeSZTPRedirect: %v", err)
	}
	if len(payload) <= 255 {
		t.Fatalf("payload is %d bytes; the test needs more than one DHCPv4 option's worth", len(payload))
	}
	got, dropped, err := ParseSZTPRedirect(payload)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("ParseSZTPRedirect: err %v, dropped %v", err, dropped)
	}
	if !slices.Equal(got, uris) {
		t.Errorf("round trip = %q, want %q", got, uris)
	}
}

func TestEncodeSZTPRedirectErrors(t *testing.T) {
	if _, err := EncodeSZTPRedirect(nil); !errors.Is(err, ErrNoValidURI) {
		t.Errorf("empty list: err = %v, want ErrNoValidURI", err)
	}
	_, err := EncodeSZTPRedirect([]string{"https://a.example", "https://b.example/path"})
	if !errors.Is(err, ErrInvalidURI) || !strings.Contains(err.Error(), "URI 1") {
		t.Errorf("invalid entry: err = %v, want ErrInvalidURI naming URI 1", err)
	}
}

func TestEncodeNormalises(t *testing.T) {
	got, err := EncodeSZTPRedirect([]string{"HTTPS://A.Example"})
	if err != nil {
		t.Fatal(err)
	}
	if want := entries("https://a.example"); !bytes.Equal(got, want) {
		t.Errorf("EncodeSZTPRedirect = %q, want %q", got, want)
	}
}

func TestParseSZTPRedirectCompat(t *testing.T) {
	cases := []struct {
		name        string
		payload     string
		want        []string
		form        string
		wantDropped int
		wantErr     error
	}{
		{name: "plain text with path", payload: "https://sztp.example.com:8443/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data",
			want: []string{"https://sztp.example.com:8443"}, form: FormPlainText},
		{name: "plain text bare", payload: "https://192.0.2.10", want: []string{"https://192.0.2.10"}, form: FormPlainText},
		{name: "plain text with NUL and newline", payload: "https://Sztp.Example.com/\n\x00",
			want: []string{"https://sztp.example.com"}, form: FormPlainText},
		{name: "plain text ipv6 with query", payload: "https://[2001:db8::5]:443?x=1",
			want: []string{"https://[2001:db8::5]:443"}, form: FormPlainText},
		{name: "plain text several", payload: "https://a.example/x https://u@b.example https://c.example",
			want: []string{"https://a.example", "https://c.example"}, form: FormPlainText, wantDropped: 1},
		{name: "plain text http", payload: "http://a.example/", form: FormPlainText, wantDropped: 1, wantErr: ErrNoValidURI},
		{name: "rfc form", payload: string(entries("https://a.example")), want: []string{"https://a.example"}, form: FormRFC8572},
		{name: "neither", payload: "sztp.example.com", form: FormRFC8572, wantErr: ErrMalformedOption},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uris, form, dropped, err := ParseSZTPRedirectCompat([]byte(tc.payload))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if form != tc.form {
				t.Errorf("form = %q, want %q", form, tc.form)
			}
			if !slices.Equal(uris, tc.want) {
				t.Errorf("uris = %q, want %q", uris, tc.want)
			}
			if len(dropped) != tc.wantDropped {
				t.Errorf("dropped = %v, want %d entries", dropped, tc.wantDropped)
			}
		})
	}
}

func TestValidateBootstrapURIIdempotent(t *testing.T) {
	for _, uri := range []string{"HTTPS://[2001:0DB8::0001]:00443", "https://A-1.b2.Example", "https://10.0.0.1:1"} {
		once, err := ValidateBootstrapURI(uri)
		if err != nil {
			t.Fatalf("ValidateBootstrapURI(%q): %v", uri, err)
		}
		twice, err := ValidateBootstrapURI(once)
		if err != nil || twice != once {
			t.Errorf("ValidateBootstrapURI(%q) = %q, %v; not stable", once, twice, err)
		}
	}
}

func FuzzParseSZTPRedirect(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add(tc.payload)
	}
	f.Add([]byte("https://sztp.example.com/path"))
	f.Add([]byte{0xff, 0xff})

	f.Fuzz(func(t *testing.T, payload []byte) {
		// The compat parser must not panic on anything either.
		if uris, _, _, err := ParseSZTPRedirectCompat(payload); err == nil {
			checkRoundTrip(t, uris)
		}

		uris, _, err := ParseSZTPRedirect(payload)
		if err != nil {
			if uris != nil {
				t.Fatalf("uris %q returned with error %v", uris, err)
			}
			return
		}
		if len(uris) == 0 {
			t.Fatal("no URIs and no error")
		}
		checkRoundTrip(t, uris)
	})
}

// checkRoundTrip asserts that parsed URIs re-validate unchanged and survive
// an encode/parse cycle.
func checkRoundTrip(t *testing.T, uris []string) {
	t.Helper()
	for _, uri := range uris {
		again, err := ValidateBootstrapURI(uri)
		if err != nil {
			t.Fatalf("returned URI %q does not re-validate: %v", uri, err)
		}
		if again != uri {
			t.Fatalf("returned URI %q is not normalised (re-validates to %q)", uri, again)
		}
	}
	encoded, err := EncodeSZTPRedirect(uris)
	if err != nil {
		t.Fatalf("encoding %q: %v", uris, err)
	}
	back, dropped, err := ParseSZTPRedirect(encoded)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("parsing re-encoded %q: dropped %v, err %v", uris, dropped, err)
	}
	if !slices.Equal(back, uris) {
		t.Fatalf("round trip changed %q into %q", uris, back)
	}
}
