package cli

import (
	"reflect"
	"testing"
)

func TestParseConfigFile(t *testing.T) {
	doc := `---
# sztp-agent config
bootstrap-url:
  - https://sztp1.example.net:8443   # primary
  - "https://[2001:db8::1]:8443"
http-header: ['X-Rack: r7', "X-Site: \"ams\""]
trust-anchor: /etc/sztp-agent/ta.pem
once: true
reboot-command: 'systemctl reboot # not a comment'
image-install-command: /usr/libexec/install "$SZTP_IMAGE_PATH"
empty-list:
`
	got, err := parseConfigFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"bootstrap-url":         {"https://sztp1.example.net:8443", "https://[2001:db8::1]:8443"},
		"http-header":           {"X-Rack: r7", `X-Site: "ams"`},
		"trust-anchor":          {"/etc/sztp-agent/ta.pem"},
		"once":                  {"true"},
		"reboot-command":        {"systemctl reboot # not a comment"},
		"image-install-command": {`/usr/libexec/install "$SZTP_IMAGE_PATH"`},
		"empty-list":            {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for name, bad := range map[string]string{
		"nested map":      "dhcp:\n  interface: eth0\n",
		"duplicate key":   "once: true\nonce: false\n",
		"orphan item":     "- a\n",
		"no colon":        "just words\n",
		"unterminated":    "a: 'x\n",
		"bad list":        "a: [x, 'y\n",
		"anchor":          "a: &x 1\n",
		"bad double":      `a: "\q"` + "\n",
		"list no comma":   `a: ["x" "y"]` + "\n",
		"quoted key junk": `"a": 1` + "\n",
	} {
		if _, err := parseConfigFile(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseConfigFile(f *testing.F) {
	f.Add("a: 1\nb:\n  - x\n  - 'y'\nc: [\"z\", w]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := parseConfigFile(doc)
		if err == nil && got == nil {
			t.Fatal("nil map without an error")
		}
	})
}
