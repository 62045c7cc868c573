package lab

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSerial = "LAB-TEST-42"

// startLab makes a PKI in a temporary directory and starts a server on it.
func startLab(t *testing.T, def *Definition) (*PKI, *Server) {
	t.Helper()
	pki, err := NewPKI(t.TempDir(), testSerial)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Options{PKI: pki, Name: t.Name(), Definition: def})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return pki, srv
}

// deviceClient is an HTTPS client configured the way an agent is: trust
// anchor from TrustAnchorFile, client certificate from the IDevID files
// (left out when withIDevID is false).
func deviceClient(t *testing.T, pki *PKI, withIDevID bool) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(pki.TrustAnchorFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("trust anchor file holds no certificate")
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if withIDevID {
		cert, err := tls.LoadX509KeyPair(pki.IDevIDCertFile, pki.IDevIDKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, method, url, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func postRPC(t *testing.T, c *http.Client, srv *Server, rpc, body string) response {
	t.Helper()
	return do(t, c, http.MethodPost, srv.URL()+operationsPath+bootstrapServerModule+":"+rpc, yangDataJSON, body,
		"Accept", yangDataJSON)
}

// restconfErrorTag checks that r is an RFC 8040 errors body and returns
// its first error-tag.
func restconfErrorTag(t *testing.T, r response) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != yangDataJSON {
		t.Errorf("error Content-Type = %q, want %q", ct, yangDataJSON)
	}
	var body struct {
		Errors struct {
			Error []struct {
				Type    string `json:"error-type"`
				Tag     string `json:"error-tag"`
				Message string `json:"error-message"`
			} `json:"error"`
		} `json:"ietf-restconf:errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors.Error) != 1 {
		t.Fatalf("not an ietf-restconf:errors body (%v): %s", err, r.body)
	}
	e := body.Errors.Error[0]
	if e.Type != "application" || e.Message == "" {
		t.Errorf("error entry = %+v, want error-type application and a message", e)
	}
	return e.Tag
}

// syncBuffer is a bytes.Buffer safe for a server goroutine writing while
// the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
