package conveyed_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sztp-agent/sztp-agent/agent/conveyed"
)

const onboardingJSON = `{
  "ietf-sztp-conveyed-info:onboarding-information": {
    "boot-image": {
      "os-name": "AcmeOS",
      "os-version": "1.5.0",
      "download-uri": ["https://images.example.net/a.img", "http://mirror.example.net/a.img"],
      "image-verification": [{
        "hash-algorithm": "ietf-sztp-conveyed-info:sha-256",
        "hash-value": "54:FC:24:ee:24:19:13:51:91:75:b1:b7:d2:3b:4c:d2:f6:f8:65:8f:64:f5:7d:cd:8d:48:29:77:b4:1c:6f:2e"
      }]
    },
    "configuration-handling": "merge",
    "pre-configuration-script": "IyEvYmluL3NoCmV4aXQgMAo=",
    "configuration": "PGNvbmZpZy8+",
    "post-configuration-script": "IyEvYmluL3NoCmV4aXQgMAo=",
    "acme-ext:vendor-knob": 7
  }
}`

func TestParseOnboarding(t *testing.T) {
	info, err := conveyed.ParseJSON([]byte(onboardingJSON))
	if err != nil {
		t.Fatal(err)
	}
	o := info.Onboarding
	if o == nil || info.Redirect != nil {
		t.Fatalf("got %+v, want onboarding only", info)
	}
	bi := o.BootImage
	if bi.OSName != "AcmeOS" || bi.OSVersion != "1.5.0" || len(bi.DownloadURIs) != 2 {
		t.Errorf("boot image = %+v", bi)
	}
	if got := conveyed.FormatHexString(bi.ImageVerification[0].HashValue); !strings.HasPrefix(got, "54:fc:24:ee") || len(bi.ImageVerification[0].HashValue) != 32 {
		t.Errorf("hash = %s", got)
	}
	if bi.ImageVerification[0].HashAlgorithm != "sha-256" {
		t.Errorf("algorithm = %q", bi.ImageVerification[0].HashAlgorithm)
	}
	if o.ConfigurationHandling != "merge" || string(o.Configuration) != "<config/>" {
		t.Errorf("configuration = %q %q", o.ConfigurationHandling, o.Configuration)
	}
	if !bytes.HasPrefix(o.PreConfigurationScript, []byte("#!/bin/sh")) || !bytes.HasPrefix(o.PostConfigurationScript, []byte("#!/bin/sh")) {
		t.Errorf("scripts = %q %q", o.PreConfigurationScript, o.PostConfigurationScript)
	}
}

func TestParseRedirect(t *testing.T) {
	info, err := conveyed.ParseJSON([]byte(`{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[
		{"address":"sztp1.example.net","port":8443,"trust-anchor":"AQID"},
		{"address":"2001:db8::1"},
		{"address":"192.0.2.20","port":"9443"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := info.Redirect.BootstrapServers
	want := []string{"https://sztp1.example.net:8443", "https://[2001:db8::1]:443", "https://192.0.2.20:9443"}
	for i, w := range want {
		if s[i].URL() != w {
			t.Errorf("server %d URL = %s, want %s", i, s[i].URL(), w)
		}
	}
	if !bytes.Equal(s[0].TrustAnchor, []byte{1, 2, 3}) || s[1].TrustAnchor != nil {
		t.Errorf("trust anchors = %v %v", s[0].TrustAnchor, s[1].TrustAnchor)
	}
}

func TestParseRejects(t *testing.T) {
	const ob = `{"ietf-sztp-conveyed-info:onboarding-information":%s}`
	const rd = `{"ietf-sztp-conveyed-info:redirect-information":%s}`
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `{"ietf-sztp-conveyed-info:onboarding`, "unexpected EOF"},
		{"trailing data", `{"ietf-sztp-conveyed-info:onboarding-information":{}} {}`, "trailing data"},
		{"unknown top-level", `{"ietf-sztp-conveyed-info:other":{}}`, "neither redirect-information"},
		{"two top-level", `{"ietf-sztp-conveyed-info:onboarding-information":{},"ietf-sztp-conveyed-info:redirect-information":{}}`, "want one top-level member"},
		{"misspelt leaf", strings.Replace(ob, "%s", `{"pre-config-script":"AA=="}`, 1), "unknown field"},
		{"bad base64", strings.Replace(ob, "%s", `{"pre-configuration-script":"!!"}`, 1), "not valid base64"},
		{"configuration without handling", strings.Replace(ob, "%s", `{"configuration":"AA=="}`, 1), "without configuration-handling"},
		{"handling without configuration", strings.Replace(ob, "%s", `{"configuration-handling":"merge"}`, 1), "without configuration"},
		{"bad handling", strings.Replace(ob, "%s", `{"configuration":"AA==","configuration-handling":"append"}`, 1), "neither merge nor replace"},
		{"image without hash", strings.Replace(ob, "%s", `{"boot-image":{"os-name":"x","os-version":"1","download-uri":["https://a"]}}`, 1), "no image-verification"},
		{"hash without uri", strings.Replace(ob, "%s", `{"boot-image":{"image-verification":[{"hash-algorithm":"ietf-sztp-conveyed-info:sha-256","hash-value":"00"}]}}`, 1), "no download-uri"},
		{"bad hex", strings.Replace(ob, "%s", `{"boot-image":{"download-uri":["https://a"],"image-verification":[{"hash-algorithm":"ietf-sztp-conveyed-info:sha-256","hash-value":"zz"}]}}`, 1), "hex-string"},
		{"foreign hash identity", strings.Replace(ob, "%s", `{"boot-image":{"download-uri":["https://a"],"image-verification":[{"hash-algorithm":"sha-256","hash-value":"00"}]}}`, 1), "is not an ietf-sztp-conveyed-info identity"},
		{"empty redirect", strings.Replace(rd, "%s", `{"bootstrap-server":[]}`, 1), "empty"},
		{"redirect with path", strings.Replace(rd, "%s", `{"bootstrap-server":[{"address":"a/b"}]}`, 1), "not a host name"},
		{"redirect bad port", strings.Replace(rd, "%s", `{"bootstrap-server":[{"address":"a","port":70000}]}`, 1), "port"},
		{"redirect duplicate", strings.Replace(rd, "%s", `{"bootstrap-server":[{"address":"a"},{"address":"a"}]}`, 1), "duplicate"},
		{"redirect bad trust anchor", strings.Replace(rd, "%s", `{"bootstrap-server":[{"address":"a","trust-anchor":"%%%"}]}`, 1), "trust-anchor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := conveyed.ParseJSON([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", info)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := conveyed.ParseJSON([]byte(`{"x:y":{}}`)); !errors.Is(err, conveyed.ErrUnknownType) {
		t.Errorf("unknown type error = %v", err)
	}
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(onboardingJSON))
	f.Add([]byte(`{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"a","port":1,"trust-anchor":"AQID"}]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := conveyed.ParseJSON(data)
		if err != nil {
			return
		}
		if (info.Redirect == nil) == (info.Onboarding == nil) {
			t.Fatalf("want exactly one of redirect and onboarding: %+v", info)
		}
		if r := info.Redirect; r != nil {
			for _, s := range r.BootstrapServers {
				if s.Port < 1 || s.Port > 65535 || s.Address == "" {
					t.Fatalf("bad server accepted: %+v", s)
				}
			}
		}
		if o := info.Onboarding; o != nil && (o.Configuration == nil) != (o.ConfigurationHandling == "") {
			t.Fatalf("configuration without handling accepted: %+v", o)
		}
	})
}
