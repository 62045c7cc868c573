package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sztp-agent/sztp-agent/agent/cms"
)

// bootstrapOutputOf decodes a get-bootstrapping-data answer and unwraps its
// conveyed information.
func bootstrapOutputOf(t *testing.T, r response) (level string, contentType asn1.ObjectIdentifier, conveyed map[string]any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("get-bootstrapping-data: status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != yangDataJSON {
		t.Errorf("Content-Type = %q, want %q", ct, yangDataJSON)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("decoding output: %v: %s", err, r.body)
	}
	o, ok := out["ietf-sztp-bootstrap-server:output"]
	if !ok || len(out) != 1 {
		t.Fatalf("output body = %s", r.body)
	}
	b64, _ := o["conveyed-information"].(string)
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("conveyed-information is not base64: %v", err)
	}
	content, oid, err := cms.UnsignedContent(der)
	if err != nil {
		t.Fatalf("unwrapping conveyed information: %v", err)
	}
	if err := json.Unmarshal(content, &conveyed); err != nil {
		t.Fatalf("conveyed information is not JSON: %v: %s", err, content)
	}
	level, _ = o["reporting-level"].(string)
	return level, oid, conveyed
}

func TestGetBootstrappingDataOnboarding(t *testing.T) {
	image := bytes.Repeat([]byte("LabOS image bytes "), 300)
	def := &Definition{
		ReportingLevel: ReportingVerbose,
		Onboarding: &Onboarding{
			BootImage: &BootImage{
				OSName: "LabOS", OSVersion: "2.0",
				ImageData: image, ImageName: "labos 2.0.img",
				DownloadURIs: []string{"https://127.0.0.1:1/dead-mirror.img"},
			},
			PreConfigurationScriptData:  []byte("#!/bin/sh\necho pre\n"),
			ConfigurationData:           []byte(`{"hostname":"x"}`),
			ConfigurationHandling:       "merge",
			PostConfigurationScriptData: []byte("#!/bin/sh\necho post\n"),
		},
	}
	pki, srv := startLab(t, def)
	client := deviceClient(t, pki, true)

	r := postRPC(t, client, srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{}}`)
	level, oid, conveyed := bootstrapOutputOf(t, r)
	if level != ReportingVerbose {
		t.Errorf("reporting-level = %q", level)
	}
	if !oid.Equal(cms.OIDSZTPConveyedInfoJSON) {
		t.Errorf("content type = %s, want id-ct-sztpConveyedInfoJSON", cms.Name(oid))
	}
	sum := sha256.Sum256(image)
	wantHash := colonHex(sum[:])
	imageURL := srv.ImageURL("labos 2.0.img")
	want := map[string]any{
		"ietf-sztp-conveyed-info:onboarding-information": map[string]any{
			"boot-image": map[string]any{
				"os-name":      "LabOS",
				"os-version":   "2.0",
				"download-uri": []any{"https://127.0.0.1:1/dead-mirror.img", imageURL},
				"image-verification": []any{map[string]any{
					"hash-algorithm": "ietf-sztp-conveyed-info:sha-256",
					"hash-value":     wantHash,
				}},
			},
			"configuration-handling":    "merge",
			"pre-configuration-script":  base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho pre\n")),
			"configuration":             base64.StdEncoding.EncodeToString([]byte(`{"hostname":"x"}`)),
			"post-configuration-script": base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho post\n")),
		},
	}
	if !reflect.DeepEqual(conveyed, want) {
		got, _ := json.MarshalIndent(conveyed, "", "  ")
		t.Errorf("conveyed information:\n%s", got)
	}
	if !strings.Contains(imageURL, "/images/labos%202.0.img") {
		t.Errorf("ImageURL = %q, want the name path-escaped", imageURL)
	}

	img := do(t, client, http.MethodGet, imageURL, "", "")
	if img.status != http.StatusOK || !bytes.Equal(img.body, image) {
		t.Fatalf("image download: status %d, %d bytes", img.status, len(img.body))
	}
	if got := sha256.Sum256(img.body); colonHex(got[:]) != wantHash {
		t.Error("served image does not match the advertised sha-256")
	}
	if cl := img.header.Get("Content-Length"); cl != "5400" {
		t.Errorf("Content-Length = %q", cl)
	}
	part := do(t, client, http.MethodGet, imageURL, "", "", "Range", "bytes=100-199")
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, image[100:200]) {
		t.Errorf("range request: status %d, %d bytes", part.status, len(part.body))
	}
	if missing := do(t, client, http.MethodGet, srv.ImageURL("nope.img"), "", ""); missing.status != http.StatusNotFound {
		t.Errorf("unknown image: status %d", missing.status)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() = %d entries", len(reqs))
	}
	if reqs[0].Serial != testSerial || reqs[0].Input == nil || len(reqs[0].Input) != 0 ||
		reqs[0].Header.Get("Accept") != yangDataJSON {
		t.Errorf("request record = %+v", reqs[0])
	}
}

func TestGetBootstrappingDataIDDataAndMinimal(t *testing.T) {
	pki, srv := startLab(t, &Definition{ContentType: ContentTypeData, Onboarding: &Onboarding{}})
	client := deviceClient(t, pki, true)
	// An RPC whose input is all optional may be invoked without a body.
	r := do(t, client, http.MethodPost, srv.URL()+getBootstrappingDataRPC, "", "")
	level, oid, conveyed := bootstrapOutputOf(t, r)
	if level != ReportingMinimal || !oid.Equal(cms.OIDData) {
		t.Errorf("reporting-level %q, content type %s", level, cms.Name(oid))
	}
	want := map[string]any{"ietf-sztp-conveyed-info:onboarding-information": map[string]any{}}
	if !reflect.DeepEqual(conveyed, want) {
		t.Errorf("conveyed = %v", conveyed)
	}
}

func TestGetBootstrappingDataInputRecorded(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{}})
	client := deviceClient(t, pki, true)
	in := `{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"hw-model":"x1","os-name":"LabOS","os-version":"1.0","nonce":"AAECAwQFBgcICQoLDA0ODw=="}}`
	if r := postRPC(t, client, srv, "get-bootstrapping-data", in); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := srv.Requests()[0].Input
	if got["os-name"] != "LabOS" || got["nonce"] != "AAECAwQFBgcICQoLDA0ODw==" || !isEmptyLeaf(got["signed-data-preferred"]) {
		t.Errorf("recorded input = %v", got)
	}
}

func TestGetBootstrappingDataRejectsBadRequests(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{}})
	client := deviceClient(t, pki, true)
	url := srv.URL() + getBootstrappingDataRPC
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		header      []string
		status      int
		tag         string
	}{
		{"GET", http.MethodGet, "", "", nil, http.StatusMethodNotAllowed, tagOperationNotSupported},
		{"XML body", http.MethodPost, "application/yang-data+xml", "<input/>", nil, http.StatusUnsupportedMediaType, tagInvalidValue},
		{"plain JSON type", http.MethodPost, "application/json", `{"ietf-sztp-bootstrap-server:input":{}}`, nil, http.StatusUnsupportedMediaType, tagInvalidValue},
		{"XML only accepted", http.MethodPost, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{}}`, []string{"Accept", "application/yang-data+xml"}, http.StatusNotAcceptable, tagInvalidValue},
		{"not JSON", http.MethodPost, yangDataJSON, `{`, nil, http.StatusBadRequest, tagMalformedMessage},
		{"unqualified input", http.MethodPost, yangDataJSON, `{"input":{}}`, nil, http.StatusBadRequest, tagUnknownElement},
		{"unknown leaf", http.MethodPost, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{"colour":"red"}}`, nil, http.StatusBadRequest, tagUnknownElement},
		{"short nonce", http.MethodPost, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{"nonce":"AAEC"}}`, nil, http.StatusBadRequest, tagInvalidValue},
		{"bad empty leaf", http.MethodPost, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":true}}`, nil, http.StatusBadRequest, tagInvalidValue},
		{"too big", http.MethodPost, yangDataJSON, `{"ietf-sztp-bootstrap-server:input":{"hw-model":"` + strings.Repeat("x", maxRequestBody) + `"}}`, nil, http.StatusRequestEntityTooLarge, tagTooBig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, client, tc.method, url, tc.contentType, tc.body, tc.header...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tag := restconfErrorTag(t, r); tag != tc.tag {
				t.Errorf("error-tag %q, want %q", tag, tc.tag)
			}
		})
	}
	if r := do(t, client, http.MethodGet, srv.URL()+"/restconf/data", "", ""); r.status != http.StatusNotFound {
		t.Errorf("unknown resource: status %d", r.status)
	}
}

func TestReportProgress(t *testing.T) {
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	var lines syncBuffer
	srv, err := Start(Options{PKI: pki, Name: "lab-1", Definition: &Definition{Onboarding: &Onboarding{}}, ReportLog: &lines})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := deviceClient(t, pki, true)

	r := postRPC(t, client, srv, "report-progress", `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated","message":"hello"}}`)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	complete := `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-complete",
		"ssh-host-keys":{"ssh-host-key":[{"algorithm":"ssh-ed25519","key-data":"AAAAC3NzaC1lZDI1NTE5"}]},
		"trust-anchor-certs":{"trust-anchor-cert":["MIIB"]}}}`
	if r := postRPC(t, client, srv, "report-progress", complete); r.status != http.StatusNoContent {
		t.Fatalf("bootstrap-complete: status %d: %s", r.status, r.body)
	}

	reports := srv.Reports()
	if len(reports) != 2 {
		t.Fatalf("Reports() = %d entries", len(reports))
	}
	if got := reports[0]; got.Serial != testSerial || got.ProgressType != "bootstrap-initiated" || got.Message != "hello" || !json.Valid(got.Raw) {
		t.Errorf("first report = %+v", got)
	}
	keys := reports[1].SSHHostKeys
	if len(keys) != 1 || keys[0].Algorithm != "ssh-ed25519" || !bytes.HasPrefix(keys[0].KeyData, []byte("\x00\x00\x00\x0bssh-ed25519")) {
		t.Errorf("ssh host keys = %+v", keys)
	}
	if len(reports[1].TrustAnchorCerts) != 1 {
		t.Errorf("trust anchor certs = %v", reports[1].TrustAnchorCerts)
	}
	log := lines.String()
	if !strings.Contains(log, " lab-1 "+testSerial+` bootstrap-initiated "hello"`) || strings.Count(log, "\n") != 2 {
		t.Errorf("report lines:\n%s", log)
	}

	for name, body := range map[string]string{
		"unknown progress-type":  `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-finished"}}`,
		"missing progress-type":  `{"ietf-sztp-bootstrap-server:input":{"message":"x"}}`,
		"keys with initiated":    `{"ietf-sztp-bootstrap-server:input":{"progress-type":"config-complete","ssh-host-keys":{"ssh-host-key":[]}}}`,
		"non-base64 key-data":    `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-complete","ssh-host-keys":{"ssh-host-key":[{"algorithm":"a","key-data":"!"}]}}}`,
		"unknown leaf":           `{"ietf-sztp-bootstrap-server:input":{"progress-type":"informational","colour":"red"}}`,
		"non-string message":     `{"ietf-sztp-bootstrap-server:input":{"progress-type":"informational","message":3}}`,
		"empty body with a type": ``,
	} {
		t.Run(name, func(t *testing.T) {
			r := postRPC(t, client, srv, "report-progress", body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			restconfErrorTag(t, r)
		})
	}
	if n := len(srv.Reports()); n != 2 {
		t.Errorf("rejected reports were recorded: %d reports", n)
	}
}

func TestAllProgressTypesAccepted(t *testing.T) {
	if len(ProgressTypes) != 27 {
		t.Fatalf("%d progress types, RFC 8572 has 27", len(ProgressTypes))
	}
	pki, srv := startLab(t, nil)
	client := deviceClient(t, pki, true)
	for _, pt := range ProgressTypes {
		if r := postRPC(t, client, srv, "report-progress", `{"ietf-sztp-bootstrap-server:input":{"progress-type":"`+pt+`"}}`); r.status != http.StatusNoContent {
			t.Errorf("%s: status %d: %s", pt, r.status, r.body)
		}
	}
}

func TestReportStatus(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{}, ReportStatus: http.StatusInternalServerError})
	client := deviceClient(t, pki, true)
	r := postRPC(t, client, srv, "report-progress", `{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated"}}`)
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d", r.status)
	}
	if tag := restconfErrorTag(t, r); tag != tagOperationFailed {
		t.Errorf("error-tag %q", tag)
	}
	if len(srv.Reports()) != 1 {
		t.Error("the report was not recorded")
	}
}

func TestClientCertificateRequired(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{}})
	client := deviceClient(t, pki, false)
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+getBootstrappingDataRPC, strings.NewReader(`{"ietf-sztp-bootstrap-server:input":{}}`))
	req.Header.Set("Content-Type", yangDataJSON)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request without client certificate answered %d", resp.StatusCode)
	}
	if len(srv.Requests()) != 0 {
		t.Error("a request without client certificate reached the handler")
	}
}

func TestClientCertificateFromOtherCARejected(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{}})
	other, err := NewPKI(t.TempDir(), "INTRUDER")
	if err != nil {
		t.Fatal(err)
	}
	// Trust the server, but present an IDevID of another manufacturer.
	client := deviceClient(t, other, true)
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(pki.ServerCA.Cert)
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+getBootstrappingDataRPC, nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("foreign IDevID answered %d", resp.StatusCode)
	}
}

func TestStatusDefinition(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusNotFound, http.StatusUnauthorized} {
		pki, srv := startLab(t, &Definition{Status: status})
		r := postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{}}`)
		if r.status != status {
			t.Fatalf("status %d, want %d", r.status, status)
		}
		if tag := restconfErrorTag(t, r); tag != tagForStatus(status) {
			t.Errorf("%d: error-tag %q", status, tag)
		}
	}
}

func TestRawDefinition(t *testing.T) {
	pki, srv := startLab(t, &Definition{Raw: &RawResponse{Status: 200, ContentType: "text/plain", Body: []byte("garbage")}})
	r := postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", "")
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain" || string(r.body) != "garbage" {
		t.Errorf("raw answer: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

func TestRedirectWithTrustAnchor(t *testing.T) {
	pki, srv := startLab(t, nil)
	srv.SetDefinition(&Definition{Redirect: []RedirectServer{
		{Address: "127.0.0.1", Port: 8443, TrustAnchor: pki.TrustAnchorFile},
		{Address: "sztp2.example.net"},
	}})
	_, _, conveyed := bootstrapOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{}}`))
	ri, _ := conveyed["ietf-sztp-conveyed-info:redirect-information"].(map[string]any)
	servers, _ := ri["bootstrap-server"].([]any)
	if len(conveyed) != 1 || len(servers) != 2 {
		t.Fatalf("conveyed = %v", conveyed)
	}
	first := servers[0].(map[string]any)
	if first["address"] != "127.0.0.1" || first["port"] != 8443.0 {
		t.Errorf("first server = %v", first)
	}
	der, err := base64.StdEncoding.DecodeString(first["trust-anchor"].(string))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := cms.ParseCertificateBag(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || !certs[0].Equal(pki.ServerCA.Cert) {
		t.Errorf("trust anchor bag holds %d certificates, not the server CA", len(certs))
	}
	if second := servers[1].(map[string]any); !reflect.DeepEqual(second, map[string]any{"address": "sztp2.example.net"}) {
		t.Errorf("second server = %v, want only its address", second)
	}
}

func TestSetDefinition(t *testing.T) {
	pki, srv := startLab(t, nil)
	client := deviceClient(t, pki, true)
	gbd := func() response {
		return postRPC(t, client, srv, "get-bootstrapping-data", `{"ietf-sztp-bootstrap-server:input":{}}`)
	}
	if r := gbd(); r.status != http.StatusNotFound {
		t.Errorf("no definition: status %d", r.status)
	}
	srv.SetDefinition(&Definition{Onboarding: &Onboarding{Configuration: "/nonexistent/config"}})
	if r := gbd(); r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "configuration") {
		t.Errorf("broken definition: status %d: %s", r.status, r.body)
	}
	srv.SetDefinition(&Definition{Onboarding: &Onboarding{}})
	if r := gbd(); r.status != http.StatusOK {
		t.Errorf("good definition: status %d", r.status)
	}
}

func TestBootImageOverrides(t *testing.T) {
	pki, srv := startLab(t, &Definition{Onboarding: &Onboarding{BootImage: &BootImage{
		OSName: "LabOS", OSVersion: "3", ImageData: []byte("img"),
		DownloadURIs: []string{"https://127.0.0.1:1/dead", "{{image}}?mirror=1"},
		SHA256:       strings.Repeat("AB", 32),
	}}})
	_, _, conveyed := bootstrapOutputOf(t, postRPC(t, deviceClient(t, pki, true), srv, "get-bootstrapping-data", ""))
	bi := conveyed["ietf-sztp-conveyed-info:onboarding-information"].(map[string]any)["boot-image"].(map[string]any)
	wantURIs := []any{"https://127.0.0.1:1/dead", srv.ImageURL(defaultImageName) + "?mirror=1"}
	if !reflect.DeepEqual(bi["download-uri"], wantURIs) {
		t.Errorf("download-uri = %v, want %v", bi["download-uri"], wantURIs)
	}
	hv := bi["image-verification"].([]any)[0].(map[string]any)["hash-value"]
	if hv != strings.TrimSuffix(strings.Repeat("ab:", 32), ":") {
		t.Errorf("hash-value = %v", hv)
	}
}
