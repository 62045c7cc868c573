package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixture is one trusted TLS image server plus a Fetcher that trusts it.
type fixture struct {
	ca      *testCA
	content []byte
	server  *countingContent
	url     string // https://127.0.0.1:port/images/boot.img
	fetcher *Fetcher
	logs    *bytes.Buffer
}

func newFixture(t *testing.T, size int) *fixture {
	t.Helper()
	ca := newTestCA(t, "trusted test CA")
	content := testImage(size)
	server := &countingContent{content: content}
	srv := startTLSServer(t, ca.issueServer(t, loopback, nil), server)
	logs := &bytes.Buffer{}
	return &fixture{
		ca:      ca,
		content: content,
		server:  server,
		url:     srv.URL + "/images/boot.img",
		logs:    logs,
		fetcher: &Fetcher{
			Dir:    filepath.Join(t.TempDir(), "images"),
			Client: clientTrusting(t, ca.pool),
			Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
		},
	}
}

func (fx *fixture) sha256() []Verification {
	return []Verification{{Algorithm: "sha-256", Digest: sha256Of(fx.content)}}
}

// lockedWriter lets the test read logs written from grab's goroutine.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Fatalf("%s should hold nothing after a rejected image, holds %q", dir, names)
	}
}

// assertNoImage checks that dir holds no image: at most the hidden partial
// download and its sidecar, kept for a resume.
func assertNoImage(t *testing.T, dir string) {
	t.Helper()
	for _, name := range dirEntries(t, dir) {
		if !strings.HasPrefix(name, partialPrefix) {
			t.Errorf("%s holds %q, which is not a partial download", dir, name)
		}
	}
}

func TestFetchSuccess(t *testing.T) {
	fx := newFixture(t, 1<<20+123)
	var lastDone, lastTotal int64
	fx.fetcher.Progress = func(uri string, done, total int64) {
		if uri != fx.url {
			t.Errorf("progress for %q, want %q", uri, fx.url)
		}
		lastDone, lastTotal = done, total
	}

	res, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(fx.fetcher.Dir, "boot.img")
	if res.Path != wantPath {
		t.Errorf("Path = %q, want %q", res.Path, wantPath)
	}
	if res.URI != fx.url {
		t.Errorf("URI = %q, want %q", res.URI, fx.url)
	}
	if res.Size != int64(len(fx.content)) {
		t.Errorf("Size = %d, want %d", res.Size, len(fx.content))
	}
	if !bytes.Equal(res.Digests["sha-256"], sha256Of(fx.content)) {
		t.Errorf("sha-256 digest = %x, want %x", res.Digests["sha-256"], sha256Of(fx.content))
	}
	if len(res.Digests) != 1 {
		t.Errorf("Digests has %d algorithms, want only sha-256: %v", len(res.Digests), res.Digests)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("authenticated https download has warnings: %q", res.Warnings)
	}
	assertFileContent(t, res.Path, fx.content)
	if names := dirEntries(t, fx.fetcher.Dir); len(names) != 1 || names[0] != "boot.img" {
		t.Errorf("Dir holds %q, want only boot.img", names)
	}
	info, err := os.Stat(fx.fetcher.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("Dir mode = %o, want 700", perm)
	}
	if lastDone != int64(len(fx.content)) || lastTotal != int64(len(fx.content)) {
		t.Errorf("last progress = %d/%d, want %d/%d", lastDone, lastTotal, len(fx.content), len(fx.content))
	}
	if n := fx.server.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestFetchSHA512(t *testing.T) {
	fx := newFixture(t, 300_000)
	sum := sha512.Sum512(fx.content)
	want := []Verification{
		{Algorithm: "md5", Digest: []byte{1, 2, 3}}, // unknown: ignored
		{Algorithm: "sha-512", Digest: sum[:]},
	}
	res, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Digests["sha-512"], sum[:]) {
		t.Errorf("sha-512 digest = %x, want %x", res.Digests["sha-512"], sum[:])
	}
	if _, ok := res.Digests["sha-256"]; ok {
		t.Error("sha-256 computed although not asked for")
	}
	assertFileContent(t, res.Path, fx.content)
	if !strings.Contains(fx.logs.String(), "md5") {
		t.Errorf("ignored algorithm not logged; logs:\n%s", fx.logs)
	}
}

func TestFetchBothAlgorithmsMustMatch(t *testing.T) {
	fx := newFixture(t, 10_000)
	badSHA512 := make([]byte, sha512.Size)
	want := append(fx.sha256(), Verification{Algorithm: "sha-512", Digest: badSHA512})
	_, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, want)
	var mismatch *HashMismatchError
	if !errors.As(err, &mismatch) || mismatch.Algorithm != "sha-512" {
		t.Fatalf("err = %v, want a sha-512 HashMismatchError", err)
	}
	assertDirEmpty(t, fx.fetcher.Dir)
}

func TestFetchAcceptsModulePrefixedAlgorithm(t *testing.T) {
	fx := newFixture(t, 5000)
	want := []Verification{{Algorithm: "ietf-sztp-conveyed-info:sha-256", Digest: sha256Of(fx.content)}}
	res, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Digests["sha-256"], sha256Of(fx.content)) {
		t.Errorf("digest = %x", res.Digests["sha-256"])
	}
}

func TestFetchHashMismatch(t *testing.T) {
	fx := newFixture(t, 200_000)
	wrong := sha256Of([]byte("another image"))
	_, err := fx.fetcher.Fetch(context.Background(), []string{fx.url},
		[]Verification{{Algorithm: "sha-256", Digest: wrong}})
	var mismatch *HashMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a *HashMismatchError", err)
	}
	if mismatch.URI != fx.url || mismatch.Algorithm != "sha-256" {
		t.Errorf("mismatch = %+v", mismatch)
	}
	if !bytes.Equal(mismatch.Want, wrong) || !bytes.Equal(mismatch.Got, sha256Of(fx.content)) {
		t.Errorf("mismatch want/got = %x/%x, want %x/%x", mismatch.Want, mismatch.Got, wrong, sha256Of(fx.content))
	}
	for _, part := range []string{"no download-uri yielded a verified image", "downloading " + fx.url} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
	assertDirEmpty(t, fx.fetcher.Dir)
	if !strings.Contains(fx.logs.String(), "level=WARN") || !strings.Contains(fx.logs.String(), fx.url) {
		t.Errorf("failed URI not logged as a warning; logs:\n%s", fx.logs)
	}
}

func TestFetchFallsThroughToWorkingURI(t *testing.T) {
	fx := newFixture(t, 70_000)
	notFound := startTLSServer(t, fx.ca.issueServer(t, loopback, nil), http.NotFoundHandler())

	// An address that refuses connections: bind a loopback port, then free it.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + listener.Addr().String() + "/boot.img"
	listener.Close()

	uris := []string{
		notFound.URL + "/boot.img",
		refused,
		"ftp://127.0.0.1/boot.img",
		fx.url,
	}
	res, err := fx.fetcher.Fetch(context.Background(), uris, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	if res.URI != fx.url {
		t.Errorf("URI = %q, want %q", res.URI, fx.url)
	}
	assertFileContent(t, res.Path, fx.content)
	if names := dirEntries(t, fx.fetcher.Dir); len(names) != 1 {
		t.Errorf("failed attempts left files behind: %q", names)
	}
	logs := fx.logs.String()
	for _, uri := range uris[:3] {
		if !strings.Contains(logs, uri) {
			t.Errorf("failure of %s not logged", uri)
		}
	}
}

func TestFetchAllURIsFailJoinsErrors(t *testing.T) {
	fx := newFixture(t, 1000)
	notFound := startTLSServer(t, fx.ca.issueServer(t, loopback, nil), http.NotFoundHandler())
	uris := []string{notFound.URL + "/a.img", "ftp://127.0.0.1/b.img"}
	_, err := fx.fetcher.Fetch(context.Background(), uris, fx.sha256())
	if err == nil {
		t.Fatal("expected an error")
	}
	if !errors.Is(err, ErrUnsupportedScheme) {
		t.Errorf("err = %v, want it to wrap ErrUnsupportedScheme", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "no download-uri yielded a verified image") {
		t.Errorf("error does not lead with the summary: %q", msg)
	}
	for _, want := range []string{"downloading " + uris[0], "404", "downloading " + uris[1], `"ftp"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	assertDirEmpty(t, fx.fetcher.Dir)
}

func TestFetchUntrustedServerUsesInsecureClient(t *testing.T) {
	cases := map[string]func(trusted, other *testCA) tls.Certificate{
		"unknown authority": func(_, other *testCA) tls.Certificate {
			return other.issueServer(t, loopback, nil)
		},
		"wrong host": func(trusted, _ *testCA) tls.Certificate {
			return trusted.issueServer(t, nil, []string{"images.invalid"})
		},
	}
	for name, certificate := range cases {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, 50_000)
			other := newTestCA(t, "unrelated CA")
			untrusted := &countingContent{content: fx.content}
			srv := startTLSServer(t, certificate(fx.ca, other), untrusted)
			uri := srv.URL + "/boot.img"
			fx.fetcher.InsecureClient = insecureClient(t)

			res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
			if err != nil {
				t.Fatal(err)
			}
			assertFileContent(t, res.Path, fx.content)
			if len(res.Warnings) != 1 {
				t.Fatalf("Warnings = %q, want exactly one", res.Warnings)
			}
			for _, part := range []string{"image server " + uri + " not authenticated", "x509:", "integrity from sha-256"} {
				if !strings.Contains(res.Warnings[0], part) {
					t.Errorf("warning %q lacks %q", res.Warnings[0], part)
				}
			}
			// One handshake failed before any request, then one request.
			if n := untrusted.requests.Load(); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

func TestFetchUntrustedServerWithoutInsecureClientFails(t *testing.T) {
	fx := newFixture(t, 50_000)
	other := newTestCA(t, "unrelated CA")
	untrusted := &countingContent{content: fx.content}
	srv := startTLSServer(t, other.issueServer(t, loopback, nil), untrusted)

	_, err := fx.fetcher.Fetch(context.Background(), []string{srv.URL + "/boot.img"}, fx.sha256())
	var verification *tls.CertificateVerificationError
	if !errors.As(err, &verification) {
		t.Fatalf("err = %v, want a certificate verification error", err)
	}
	if n := untrusted.requests.Load(); n != 0 {
		t.Errorf("untrusted server got %d requests", n)
	}
	assertDirEmpty(t, fx.fetcher.Dir)
}

func TestFetchUnauthenticatedServerStillNeedsTheHash(t *testing.T) {
	fx := newFixture(t, 50_000)
	other := newTestCA(t, "unrelated CA")
	srv := startTLSServer(t, other.issueServer(t, loopback, nil), &countingContent{content: testImage(50_000 + 1)})
	fx.fetcher.InsecureClient = insecureClient(t)

	_, err := fx.fetcher.Fetch(context.Background(), []string{srv.URL + "/boot.img"}, fx.sha256())
	var mismatch *HashMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a *HashMismatchError", err)
	}
	var verification *tls.CertificateVerificationError
	if !errors.As(err, &verification) {
		t.Errorf("err = %v, should also report why the server was not authenticated", err)
	}
	assertDirEmpty(t, fx.fetcher.Dir)
}

func TestFetchPlainHTTPWarns(t *testing.T) {
	content := testImage(40_000)
	srv := startPlainServer(t, &countingContent{content: content})
	f := &Fetcher{Dir: t.TempDir()}
	uri := srv.URL + "/os.bin"
	res, err := f.Fetch(context.Background(), []string{uri},
		[]Verification{{Algorithm: "sha-256", Digest: sha256Of(content)}})
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, content)
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "image server "+uri+" not authenticated (plain http); integrity from sha-256") {
		t.Errorf("Warnings = %q", res.Warnings)
	}
}

func TestFetchFollowsRedirectWithoutHashingItsBody(t *testing.T) {
	fx := newFixture(t, 30_000)
	mux := http.NewServeMux()
	mux.Handle("/real.img", &countingContent{content: fx.content})
	mux.HandleFunc("/moved.img", func(w http.ResponseWriter, r *http.Request) {
		// http.Redirect writes a small HTML body for GET; it must not be hashed.
		http.Redirect(w, r, "/real.img", http.StatusFound)
	})
	srv := startTLSServer(t, fx.ca.issueServer(t, loopback, nil), mux)

	res, err := fx.fetcher.Fetch(context.Background(), []string{srv.URL + "/moved.img"}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if filepath.Base(res.Path) != "moved.img" {
		t.Errorf("name %q should come from the download-uri, not the redirect target", res.Path)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("Warnings = %q", res.Warnings)
	}
}

func TestFetchWarnsOnRedirectToPlainHTTP(t *testing.T) {
	fx := newFixture(t, 30_000)
	plain := startPlainServer(t, &countingContent{content: fx.content})
	redirector := startTLSServer(t, fx.ca.issueServer(t, loopback, nil),
		http.RedirectHandler(plain.URL+"/boot.img", http.StatusFound))

	res, err := fx.fetcher.Fetch(context.Background(), []string{redirector.URL + "/boot.img"}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "redirected to plain http") {
		t.Errorf("Warnings = %q", res.Warnings)
	}
}

func TestFetchNoSupportedAlgorithmMakesNoRequest(t *testing.T) {
	cases := map[string][]Verification{
		"unknown only": {{Algorithm: "md5", Digest: make([]byte, 16)}},
		"empty list":   nil,
		"bad length":   {{Algorithm: "sha-256", Digest: make([]byte, 31)}},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, 1000)
			_, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, want)
			if err == nil {
				t.Fatal("expected an error")
			}
			if name != "bad length" && !errors.Is(err, ErrNoSupportedAlgorithm) {
				t.Errorf("err = %v, want ErrNoSupportedAlgorithm", err)
			}
			if n := fx.server.requests.Load(); n != 0 {
				t.Errorf("server saw %d requests, want 0", n)
			}
			if names := dirEntries(t, fx.fetcher.Dir); names != nil {
				t.Errorf("Dir created or filled: %q", names)
			}
		})
	}
}

func TestFetchNoURIs(t *testing.T) {
	f := &Fetcher{Dir: t.TempDir()}
	_, err := f.Fetch(context.Background(), nil, []Verification{{Algorithm: "sha-256", Digest: make([]byte, 32)}})
	if err == nil || !strings.Contains(err.Error(), "no download-uri") {
		t.Fatalf("err = %v", err)
	}
}

func TestFetchMaxSize(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		name := "announced length"
		if chunked {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, 100_000)
			fx.server.chunked = chunked
			fx.fetcher.MaxSize = 100_000 - 1
			_, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, fx.sha256())
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			assertDirEmpty(t, fx.fetcher.Dir)

			fx.fetcher.MaxSize = 100_000 // exactly at the limit is fine
			res, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, fx.sha256())
			if err != nil {
				t.Fatal(err)
			}
			assertFileContent(t, res.Path, fx.content)
		})
	}
}

// hangingServer announces a large body, sends a little of it, then goes silent.
type hangingServer struct {
	requests atomic.Int64
	started  chan struct{}
	once     sync.Once
	release  chan struct{}
}

func newHangingServer(t *testing.T, ca *testCA) (*hangingServer, string) {
	h := &hangingServer{started: make(chan struct{}), release: make(chan struct{})}
	srv := startTLSServer(t, ca.issueServer(t, loopback, nil), h)
	t.Cleanup(func() { close(h.release) }) // runs before srv.Close
	return h, srv.URL + "/hang.img"
}

func (h *hangingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	w.Header().Set("Content-Length", "1048576")
	w.Write(testImage(1000))
	w.(http.Flusher).Flush()
	h.once.Do(func() { close(h.started) })
	select {
	case <-r.Context().Done():
	case <-h.release:
	}
}

func TestFetchStall(t *testing.T) {
	fx := newFixture(t, 20_000)
	_, hangURI := newHangingServer(t, fx.ca)
	fx.fetcher.StallTimeout = 300 * time.Millisecond

	start := time.Now()
	_, err := fx.fetcher.Fetch(context.Background(), []string{hangURI}, fx.sha256())
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("err = %v, want ErrStalled", err)
	}
	if elapsed < fx.fetcher.StallTimeout || elapsed > 5*time.Second {
		t.Errorf("stall detected after %v with StallTimeout %v", elapsed, fx.fetcher.StallTimeout)
	}
	// What arrived is kept for a resume, but never as an image.
	assertNoImage(t, fx.fetcher.Dir)

	// A stalled URI only fails that URI; the next one is still tried.
	res, err := fx.fetcher.Fetch(context.Background(), []string{hangURI, fx.url}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	if res.URI != fx.url {
		t.Errorf("URI = %q", res.URI)
	}
}

func TestFetchContextCancel(t *testing.T) {
	fx := newFixture(t, 20_000)
	hang, hangURI := newHangingServer(t, fx.ca)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-hang.started
		cancel()
	}()
	start := time.Now()
	_, err := fx.fetcher.Fetch(ctx, []string{hangURI, fx.url}, fx.sha256())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrStalled) {
		t.Errorf("cancellation misreported as a stall: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("cancel took %v", elapsed)
	}
	if n := fx.server.requests.Load(); n != 0 {
		t.Errorf("next URI tried %d times after cancellation", n)
	}
	assertNoImage(t, fx.fetcher.Dir)

	// Already cancelled: nothing is requested at all.
	before := hang.requests.Load()
	_, err = fx.fetcher.Fetch(ctx, []string{hangURI}, fx.sha256())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if hang.requests.Load() != before {
		t.Error("request made with a cancelled context")
	}
}

func TestFetchReplacesEarlierImage(t *testing.T) {
	fx := newFixture(t, 10_000)
	if err := os.MkdirAll(fx.fetcher.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fx.fetcher.Dir, "boot.img"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := fx.fetcher.Fetch(context.Background(), []string{fx.url}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
}

func TestFinalName(t *testing.T) {
	cases := map[string]string{
		"https://h/images/boot.img":                      "boot.img",
		"https://h/images/boot.img?v=2#frag":             "boot.img",
		"https://h/":                                     "image",
		"https://h":                                      "image",
		"https://h/..":                                   "image",
		"https://h/%2e%2e":                               "image",
		"https://h/a/..%2F..%2Fetc%2Fpasswd":             "passwd",
		"https://h/.hidden":                              "hidden",
		"https://h/a%00b c;rm":                           "a_b_c_rm",
		"https://h/dir/":                                 "dir",
		"https://h/os-1.2+3_x86.tar.gz":                  "os-1.2+3_x86.tar.gz",
		"https://h/%C3%A9t%C3%A9.img":                    "_t_.img",
		"::not a uri":                                    "image",
		"https://h/" + strings.Repeat("a", 300) + ".img": strings.Repeat("a", maxNameLength-4) + ".img",
	}
	for uri, want := range cases {
		if got := finalName(uri); got != want {
			t.Errorf("finalName(%q) = %q, want %q", uri, got, want)
		}
	}
}

// trickleServer sends its content in pieces with pauses between them.
type trickleServer struct {
	content []byte
	pieces  int
	pause   time.Duration
}

func (s *trickleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(s.content)))
	size := (len(s.content) + s.pieces - 1) / s.pieces
	for rest := s.content; len(rest) > 0; {
		n := min(size, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		rest = rest[n:]
		select {
		case <-time.After(s.pause):
		case <-r.Context().Done():
			return
		}
	}
}

func TestFetchSlowButSteadyIsNotAStall(t *testing.T) {
	fx := newFixture(t, 20_000)
	srv := startTLSServer(t, fx.ca.issueServer(t, loopback, nil),
		&trickleServer{content: fx.content, pieces: 8, pause: 100 * time.Millisecond})
	// The whole transfer takes ~800ms, far longer than the stall timeout,
	// but bytes keep arriving, so it must succeed.
	fx.fetcher.StallTimeout = 350 * time.Millisecond
	res, err := fx.fetcher.Fetch(context.Background(), []string{srv.URL + "/slow.img"}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
}

// TestFetchLocalFile: images on removable storage are read through the same
// pipeline (hash, staging, atomic placement), confined to LocalRoot.
func TestFetchLocalFile(t *testing.T) {
	root := t.TempDir()
	content := bytes.Repeat([]byte("stick image\n"), 5000)
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	os.WriteFile(filepath.Join(root, "images", "os.img"), content, 0o644)
	os.WriteFile(filepath.Join(t.TempDir(), "outside.img"), content, 0o644)
	sum := sha256.Sum256(content)
	want := []Verification{{Algorithm: "sha-256", Digest: sum[:]}}

	f := &Fetcher{Dir: t.TempDir(), LocalRoot: root}
	res, err := f.Fetch(context.Background(), []string{"file:///images/os.img"}, want)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, content) || res.URI != "file:///images/os.img" {
		t.Errorf("placed %d bytes from %s", len(got), res.URI)
	}
	if _, err := f.Fetch(context.Background(), []string{"file:///../outside.img"}, want); err == nil {
		t.Error("a file outside LocalRoot was read")
	}
	bad := []Verification{{Algorithm: "sha-256", Digest: make([]byte, 32)}}
	if _, err := f.Fetch(context.Background(), []string{"file:///images/os.img"}, bad); err == nil {
		t.Error("hash mismatch accepted for a local file")
	}
	if _, err := (&Fetcher{Dir: t.TempDir()}).Fetch(context.Background(), []string{"file:///images/os.img"}, want); !errors.Is(err, ErrUnsupportedScheme) {
		t.Errorf("file URI without LocalRoot: %v", err)
	}
}
