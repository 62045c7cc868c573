package lab

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

const sampleDefinition = "../testdata/lab/onboarding.yaml"

func TestLoadSampleDefinition(t *testing.T) {
	def, err := LoadDefinition(sampleDefinition)
	if err != nil {
		t.Fatal(err)
	}
	o := def.Onboarding
	if def.ReportingLevel != ReportingVerbose || o == nil || o.BootImage == nil ||
		o.BootImage.OSName != "LabOS" || o.BootImage.OSVersion != "2.0" || o.ConfigurationHandling != "merge" {
		t.Fatalf("definition = %+v", def)
	}
	for _, p := range []string{o.BootImage.Image, o.PreConfigurationScript, o.Configuration, o.PostConfigurationScript} {
		if !filepath.IsAbs(p) {
			t.Errorf("path %q was not resolved against the definition's directory", p)
		}
	}

	pki, srv := startLab(t, def)
	client := deviceClient(t, pki, true)
	level, oid, conveyed := bootstrapOutputOf(t, postRPC(t, client, srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{}}`))
	if level != ReportingVerbose || !oid.Equal(cms.OIDSZTPConveyedInfoJSON) {
		t.Errorf("reporting-level %q, content type %s", level, cms.Name(oid))
	}
	info := conveyed["ietf-sztp-conveyed-info:onboarding-information"].(map[string]any)
	pre, err := base64.StdEncoding.DecodeString(info["pre-configuration-script"].(string))
	if err != nil || !strings.HasPrefix(string(pre), "#!/bin/sh") {
		t.Errorf("pre-configuration-script = %q, %v", pre, err)
	}
	bi := info["boot-image"].(map[string]any)
	uris := bi["download-uri"].([]any)
	if len(uris) != 1 || uris[0] != srv.ImageURL("labos-2.0.img") {
		t.Errorf("download-uri = %v", uris)
	}
	img := do(t, client, http.MethodGet, uris[0].(string), "", "")
	onDisk, err := os.ReadFile("../testdata/lab/labos-2.0.img")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img.body)
	hv := bi["image-verification"].([]any)[0].(map[string]any)["hash-value"]
	if img.status != http.StatusOK || string(img.body) != string(onDisk) || hv != colonHex(sum[:]) {
		t.Errorf("image: status %d, %d bytes, advertised hash %v", img.status, len(img.body), hv)
	}
}

func TestDefinitionErrors(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "ta.pem")
	if err := os.WriteFile(pem, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"both":              "onboarding: {}\nredirect:\n  - address: 127.0.0.1\n",
		"neither":           "reporting-level: verbose\n",
		"unknown key":       "onboarding: {}\nreporting_level: verbose\n",
		"bad level":         "reporting-level: chatty\nonboarding: {}\n",
		"bad content-type":  "content-type: xml\nonboarding: {}\n",
		"missing file":      "onboarding:\n  configuration: nope.json\n  configuration-handling: merge\n",
		"handling no cfg":   "onboarding:\n  configuration-handling: merge\n",
		"cfg no handling":   "onboarding:\n  configuration: ta.pem\n",
		"bad handling":      "onboarding:\n  configuration: ta.pem\n  configuration-handling: overwrite\n",
		"bad hash":          "onboarding:\n  boot-image:\n    os-name: x\n    sha-256: xyz\n",
		"placeholder alone": "onboarding:\n  boot-image:\n    download-uri: ['{{image}}']\n",
		"duplicate address": "redirect:\n  - address: a\n  - address: a\n",
		"bad status":        "status: 200\n",
	}
	for name, yaml := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if def, err := LoadDefinition(path); err == nil {
				t.Errorf("loaded %+v", def)
			}
		})
	}
	// A trust anchor file without certificates loads (it is readable) but
	// cannot be installed.
	path := filepath.Join(dir, "redirect.yaml")
	if err := os.WriteFile(path, []byte("redirect:\n  - address: 127.0.0.1\n    trust-anchor: ta.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := LoadDefinition(path)
	if err != nil {
		t.Fatal(err)
	}
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := Start(Options{PKI: pki, Definition: def}); err == nil {
		srv.Close()
		t.Error("Start installed a redirect whose trust anchor holds no certificate")
	}
}

func TestValidateInMemory(t *testing.T) {
	both := &Definition{Onboarding: &Onboarding{}, Redirect: []RedirectServer{{Address: "127.0.0.1"}}}
	if err := both.Validate(); err == nil {
		t.Error("onboarding and redirect together validated")
	}
	dup := &Definition{Onboarding: &Onboarding{ConfigurationData: []byte("x"), Configuration: "c.json", ConfigurationHandling: "merge"}}
	if err := dup.Validate(); err == nil {
		t.Error("configuration given twice validated")
	}
	if err := (&Definition{Status: 503}).Validate(); err != nil {
		t.Errorf("a status-only definition: %v", err)
	}
}
