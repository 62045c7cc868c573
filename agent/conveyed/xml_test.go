package conveyed_test

import (
	"strings"
	"testing"

	"github.com/sztp-agent/sztp-agent/agent/conveyed"
)

const onboardingXML = `<?xml version="1.0" encoding="UTF-8"?>
<onboarding-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"
    xmlns:sztp="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info">
  <boot-image>
    <os-name>AcmeOS</os-name>
    <os-version>1.5.0</os-version>
    <download-uri>https://images.example.net/a.img</download-uri>
    <download-uri>http://mirror.example.net/a.img</download-uri>
    <image-verification>
      <hash-algorithm>sztp:sha-256</hash-algorithm>
      <hash-value>54:fc:24:ee:24:19:13:51:91:75:b1:b7:d2:3b:4c:d2:f6:f8:65:8f:64:f5:7d:cd:8d:48:29:77:b4:1c:6f:2e</hash-value>
    </image-verification>
  </boot-image>
  <configuration-handling>replace</configuration-handling>
  <pre-configuration-script>IyEvYmluL3NoCmV4
aXQgMAo=</pre-configuration-script>
  <configuration>PGNvbmZpZy8+</configuration>
</onboarding-information>
`

func TestParseXMLOnboarding(t *testing.T) {
	info, err := conveyed.ParseXML([]byte(onboardingXML))
	if err != nil {
		t.Fatal(err)
	}
	o := info.Onboarding
	if o.BootImage.OSVersion != "1.5.0" || len(o.BootImage.DownloadURIs) != 2 || o.BootImage.ImageVerification[0].HashAlgorithm != "sha-256" {
		t.Errorf("boot image %+v", o.BootImage)
	}
	if o.ConfigurationHandling != "replace" || string(o.Configuration) != "<config/>" || string(o.PreConfigurationScript) != "#!/bin/sh\nexit 0\n" {
		t.Errorf("onboarding %+v", o)
	}
}

func TestParseXMLRedirectWithWrapper(t *testing.T) {
	doc := `<conveyed-information><redirect-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info">
	  <bootstrap-server><address>sztp1.example.net</address><port>8443</port><trust-anchor>AQID</trust-anchor></bootstrap-server>
	  <bootstrap-server><address>192.0.2.20</address></bootstrap-server>
	</redirect-information></conveyed-information>`
	info, err := conveyed.ParseXML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := info.Redirect.BootstrapServers
	if len(s) != 2 || s[0].URL() != "https://sztp1.example.net:8443" || s[1].Port != 443 || len(s[0].TrustAnchor) != 3 {
		t.Errorf("servers %+v", s)
	}
}

func TestParseXMLRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"wrong namespace": `<onboarding-information xmlns="urn:example"/>`,
		"no namespace":    `<onboarding-information/>`,
		"unknown root":    `<other xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"/>`,
		"not XML":         `{"json": true}`,
		"unclosed":        `<onboarding-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info">`,
		"two roots":       `<onboarding-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"/><onboarding-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"/>`,
		"bad handling":    strings.Replace(onboardingXML, ">replace<", ">append<", 1),
		"bad base64":      strings.Replace(onboardingXML, "PGNvbmZpZy8+", "!!", 1),
	} {
		if _, err := conveyed.ParseXML([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseXML(f *testing.F) {
	f.Add([]byte(onboardingXML))
	f.Add([]byte(`<redirect-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"><bootstrap-server><address>a</address></bootstrap-server></redirect-information>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := conveyed.ParseXML(data)
		if err == nil && (info.Redirect == nil) == (info.Onboarding == nil) {
			t.Fatalf("want exactly one of redirect and onboarding: %+v", info)
		}
	})
}
