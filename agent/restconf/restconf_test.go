package restconf

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGetBootstrappingDataRequestAndErrors(t *testing.T) {
	var gotBody map[string]map[string]any
	var gotHeader http.Header
	status := http.StatusOK
	reply := `{"ietf-sztp-bootstrap-server:output":{"reporting-level":"verbose","conveyed-information":"AQID"}}`
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Clone()
		json.NewDecoder(r.Body).Decode(&gotBody)
		w.Header().Set("Content-Type", MediaType)
		if status != http.StatusOK {
			w.Header().Set("Retry-After", "120")
		}
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Root: srv.URL + "/restconf", Header: http.Header{"X-Lab": {"rack-7"}}, UserAgent: "sztp-agent/test"}

	out, err := c.GetBootstrappingData(context.Background(), GetInput{SignedDataPreferred: true, Nonce: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Verbose() || string(out.ConveyedInformation) != "\x01\x02\x03" {
		t.Errorf("output = %+v", out)
	}
	in := gotBody["ietf-sztp-bootstrap-server:input"]
	if sdp, ok := in["signed-data-preferred"].([]any); !ok || len(sdp) != 1 || sdp[0] != nil {
		t.Errorf("signed-data-preferred = %#v, want [null]", in["signed-data-preferred"])
	}
	if in["nonce"] != "AQID" || in["os-name"] != nil {
		t.Errorf("input = %v", in)
	}
	if gotHeader.Get("Content-Type") != MediaType || gotHeader.Get("Accept") != MediaType || gotHeader.Get("X-Lab") != "rack-7" || gotHeader.Get("User-Agent") != "sztp-agent/test" {
		t.Errorf("headers = %v", gotHeader)
	}

	status = http.StatusServiceUnavailable
	reply = `{"ietf-restconf:errors":{"error":[{"error-type":"application","error-tag":"operation-failed","error-message":"busy"}]}}`
	_, err = c.GetBootstrappingData(context.Background(), GetInput{})
	se, ok := err.(*StatusError)
	if !ok {
		t.Fatalf("error = %v, want *StatusError", err)
	}
	if se.StatusCode != 503 || !se.Temporary() || se.RetryAfter != 120*time.Second || len(se.Errors) != 1 || se.Errors[0].Message != "busy" {
		t.Errorf("status error = %+v", se)
	}
	if !strings.Contains(se.Error(), "HTTP 503") || !strings.Contains(se.Error(), "operation-failed: busy") {
		t.Errorf("message = %q", se.Error())
	}
}

func TestReportProgressWants204(t *testing.T) {
	code := http.StatusNoContent
	var got map[string]map[string]any
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(code)
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Root: srv.URL + "/restconf"}
	err := c.ReportProgress(context.Background(), Progress{Type: "bootstrap-complete", Message: "done",
		SSHHostKeys: []SSHHostKey{{Algorithm: "ssh-ed25519", KeyData: []byte{0xff}}}})
	if err != nil {
		t.Fatal(err)
	}
	in := got["ietf-sztp-bootstrap-server:input"]
	keys := in["ssh-host-keys"].(map[string]any)["ssh-host-key"].([]any)
	if in["progress-type"] != "bootstrap-complete" || keys[0].(map[string]any)["key-data"] != "/w==" {
		t.Errorf("input = %v", in)
	}
	code = http.StatusOK
	if err := c.ReportProgress(context.Background(), Progress{Type: "bootstrap-initiated"}); err == nil {
		t.Error("200 accepted for report-progress, RFC 8572 wants 204")
	}
}

func TestDecodeOutputRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":             `<html>`,
		"no output":            `{"output":{}}`,
		"no conveyed info":     `{"ietf-sztp-bootstrap-server:output":{}}`,
		"bad base64":           `{"ietf-sztp-bootstrap-server:output":{"conveyed-information":"%%"}}`,
		"empty conveyed info":  `{"ietf-sztp-bootstrap-server:output":{"conveyed-information":""}}`,
		"voucher without cert": `{"ietf-sztp-bootstrap-server:output":{"conveyed-information":"AQ==","ownership-voucher":"AQ=="}}`,
		"bad reporting level":  `{"ietf-sztp-bootstrap-server:output":{"conveyed-information":"AQ==","reporting-level":"loud"}}`,
	} {
		if _, err := decodeOutput([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if d := parseRetryAfter("30", now); d != 30*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := parseRetryAfter(now.Add(time.Minute).Format(http.TimeFormat), now); d != time.Minute {
		t.Errorf("date: %v", d)
	}
	if d := parseRetryAfter("soon", now); d != 0 {
		t.Errorf("garbage: %v", d)
	}
}

func FuzzDecodeOutput(f *testing.F) {
	f.Add([]byte(`{"ietf-sztp-bootstrap-server:output":{"reporting-level":"verbose","conveyed-information":"AQID"}}`))
	f.Add([]byte(`{"ietf-sztp-bootstrap-server:output":{"conveyed-information":"AQ==","owner-certificate":"AQ==","ownership-voucher":"AQ=="}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := decodeOutput(body)
		if err != nil {
			return
		}
		if len(out.ConveyedInformation) == 0 || (out.OwnerCertificate == nil) != (out.OwnershipVoucher == nil) {
			t.Fatalf("inconsistent output accepted: %+v", out)
		}
	})
}
