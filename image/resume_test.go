package image

import (
	"bytes"
	"context"
	"errors"
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

// rangeServer serves content through http.ServeContent (Range, If-Range,
// 416 as a real server does), counts the body bytes it sends and can break
// one response off after a number of bytes.
type rangeServer struct {
	content []byte
	etag    string
	// ignoreRange drops Range (the whole image, 200); ignoreIfRange drops
	// If-Range, so a changed object is still served partially (206).
	ignoreRange, ignoreIfRange bool

	mu       sync.Mutex
	cutAt    int64  // >0: the next response stops after this many body bytes; <0: before the first
	hang     bool   // at the cut, hang until the client goes, instead of closing
	onCut    func() // called at the cut
	ranges   []string
	ifRanges []string

	served   atomic.Int64
	requests atomic.Int64
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifRanges = append(s.ifRanges, r.Header.Get("If-Range"))
	cw := &cuttingWriter{ResponseWriter: w, s: s, limit: s.cutAt, hang: s.hang, onCut: s.onCut, ctx: r.Context()}
	s.cutAt, s.onCut = 0, nil
	s.mu.Unlock()
	if cw.limit < 0 {
		// Silent from the start, until the client gives up.
		if cw.onCut != nil {
			cw.onCut()
		}
		<-r.Context().Done()
		return
	}
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	if s.ignoreIfRange {
		r.Header.Del("If-Range")
	}
	if s.etag != "" {
		w.Header().Set("ETag", s.etag)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(s.content))
}

// seen returns the Range and If-Range headers of every request so far.
func (s *rangeServer) seen() (ranges, ifRanges []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), append([]string(nil), s.ifRanges...)
}

func (s *rangeServer) cutNext(at int64, hang bool, onCut func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAt, s.hang, s.onCut = at, hang, onCut
}

type cuttingWriter struct {
	http.ResponseWriter
	status  int
	s       *rangeServer
	limit   int64
	written int64
	hang    bool
	onCut   func()
	ctx     context.Context
}

func (c *cuttingWriter) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

// count adds image bytes (2xx bodies, not error texts) to served.
func (c *cuttingWriter) count(n int) {
	c.written += int64(n)
	if c.status == 0 || c.status/100 == 2 {
		c.s.served.Add(int64(n))
	}
}

func (c *cuttingWriter) Write(p []byte) (int, error) {
	if c.limit <= 0 || c.written+int64(len(p)) <= c.limit {
		n, err := c.ResponseWriter.Write(p)
		c.count(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(p[:c.limit-c.written])
	c.count(n)
	c.ResponseWriter.(http.Flusher).Flush()
	if c.onCut != nil {
		c.onCut()
	}
	if c.hang {
		<-c.ctx.Done()
	}
	// Ends the response without completing it: the client sees the
	// connection close short of Content-Length.
	panic(http.ErrAbortHandler)
}

func newRangeFixture(t *testing.T, size int, etag string) (*fixture, *rangeServer, string) {
	t.Helper()
	fx := newFixture(t, size)
	rs := &rangeServer{content: fx.content, etag: etag}
	srv := startTLSServer(t, fx.ca.issueServer(t, loopback, nil), rs)
	return fx, rs, srv.URL + "/images/boot.img"
}

// partialFiles returns the data file and sidecar of the partial download in dir.
func partialFiles(t *testing.T, dir string) (data, meta string) {
	t.Helper()
	for _, name := range dirEntries(t, dir) {
		switch {
		case strings.HasPrefix(name, partialPrefix) && strings.HasSuffix(name, sidecarSuffix):
			meta = filepath.Join(dir, name)
		case strings.HasPrefix(name, partialPrefix):
			data = filepath.Join(dir, name)
		}
	}
	return data, meta
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// interruptedFetch is the agent killed mid-download: the connection breaks
// after cut bytes, and while the agent asks for the rest, it is stopped
// (its ctx cancelled). It returns the size of the partial left behind,
// which is cut: every byte received was kept.
func interruptedFetch(t *testing.T, fx *fixture, rs *rangeServer, uri string, cut int64) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs.cutNext(cut, false, func() { rs.cutNext(-1, true, cancel) })
	_, err := fx.fetcher.Fetch(ctx, []string{uri}, fx.sha256())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Fetch: err = %v, want context.Canceled", err)
	}
	assertNoImage(t, fx.fetcher.Dir)
	data, meta := partialFiles(t, fx.fetcher.Dir)
	if data == "" || meta == "" {
		t.Fatalf("no partial download kept after the interruption: %q", dirEntries(t, fx.fetcher.Dir))
	}
	if have := fileSize(t, data); have != cut {
		t.Fatalf("partial holds %d bytes, want the %d received", have, cut)
	}
	return cut
}

func TestResumeAfterCutConnection(t *testing.T) {
	const size, cut = 3<<20 + 17, 1<<20 + 5
	fx, rs, uri := newRangeFixture(t, size, `"v1"`)
	rs.cutNext(cut, false, nil)

	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if !bytes.Equal(res.Digests["sha-256"], sha256Of(fx.content)) || res.Size != size {
		t.Errorf("result %d bytes, sha-256 %x", res.Size, res.Digests["sha-256"])
	}
	if got := rs.served.Load(); got != size {
		t.Errorf("server sent %d body bytes, want exactly the image's %d: none twice", got, size)
	}
	ranges, ifRanges := rs.seen()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes="+strconv.Itoa(cut)+"-" {
		t.Errorf("Range headers %q, want none then bytes=%d-", ranges, cut)
	}
	if ifRanges[1] != `"v1"` {
		t.Errorf("If-Range %q, want the ETag", ifRanges[1])
	}
	if names := dirEntries(t, fx.fetcher.Dir); len(names) != 1 || names[0] != "boot.img" {
		t.Errorf("Dir holds %q, want only boot.img", names)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	const size = 2<<20 + 3
	fx, rs, uri := newRangeFixture(t, size, `"v1"`)
	have := interruptedFetch(t, fx, rs, uri, 700_000)

	// A new Fetcher, as after a reboot: only the Dir carries over.
	before := rs.served.Load()
	f := &Fetcher{Dir: fx.fetcher.Dir, Client: fx.fetcher.Client}
	res, err := f.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if got, want := rs.served.Load()-before, int64(size)-have; got != want {
		t.Errorf("resumed run transferred %d bytes, want the %d missing", got, want)
	}
	ranges, ifRanges := rs.seen()
	if last := ranges[len(ranges)-1]; last != "bytes="+strconv.FormatInt(have, 10)+"-" {
		t.Errorf("resume asked for %q, want bytes=%d-", last, have)
	}
	if last := ifRanges[len(ifRanges)-1]; last != `"v1"` {
		t.Errorf("If-Range %q, want the stored ETag", last)
	}
	if data, meta := partialFiles(t, f.Dir); data != "" || meta != "" {
		t.Errorf("partial files left after success: %q %q", data, meta)
	}
}

func TestResumeServerIgnoresRange(t *testing.T) {
	const size = 1<<20 + 99
	fx, rs, uri := newRangeFixture(t, size, "")
	interruptedFetch(t, fx, rs, uri, 400_000)

	rs.ignoreRange = true
	before := rs.served.Load()
	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if got := rs.served.Load() - before; got != size {
		t.Errorf("server sent %d bytes, want the whole %d (200 to a Range request)", got, size)
	}
}

func TestResumeObjectChanged(t *testing.T) {
	for _, ignoreIfRange := range []bool{false, true} {
		name := "If-Range honoured (200)"
		if ignoreIfRange {
			name = "If-Range ignored (206 with another ETag)"
		}
		t.Run(name, func(t *testing.T) {
			const size = 1<<20 + 1
			fx, rs, uri := newRangeFixture(t, size, `"v1"`)
			have := interruptedFetch(t, fx, rs, uri, 500_000)

			// The server's object is replaced; the partial's bytes came
			// from another version (here the image itself is
			// republished, so the same digest still applies).
			rs.etag = `"v2"`
			rs.ignoreIfRange = ignoreIfRange
			res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
			if err != nil {
				t.Fatal(err)
			}
			assertFileContent(t, res.Path, fx.content)
			// The interrupted Fetch made two requests; the resume is the third.
			ranges, ifRanges := rs.seen()
			if got := ranges[2]; got != "bytes="+strconv.FormatInt(have, 10)+"-" || ifRanges[2] != `"v1"` {
				t.Errorf("resume request Range %q If-Range %q", got, ifRanges[2])
			}
			if ignoreIfRange {
				// The 206 was refused; the image came in full, without Range.
				if len(ranges) != 4 || ranges[3] != "" {
					t.Errorf("requests' Range headers %q, want a full GET after the 206", ranges)
				}
			} else if len(ranges) != 3 {
				t.Errorf("requests' Range headers %q, want one request after the interruption", ranges)
			}
		})
	}
}

func TestFailoverMidTransfer(t *testing.T) {
	const size, cut = 2<<20 + 11, 900_000
	fx, first, firstURI := newRangeFixture(t, size, `"a"`)
	second := &rangeServer{content: fx.content, etag: `"b"`}
	secondURI := startTLSServer(t, fx.ca.issueServer(t, loopback, nil), second).URL + "/mirror/boot.img"
	// The first mirror goes silent mid-transfer.
	first.cutNext(cut, true, nil)
	fx.fetcher.StallTimeout = 300 * time.Millisecond

	res, err := fx.fetcher.Fetch(context.Background(), []string{firstURI, secondURI}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	if res.URI != secondURI {
		t.Errorf("URI = %q, want the second mirror", res.URI)
	}
	assertFileContent(t, res.Path, fx.content)
	if got, want := second.served.Load(), int64(size-cut); got != want {
		t.Errorf("second mirror sent %d bytes, want the %d the first did not", got, want)
	}
	ranges, ifRanges := second.seen()
	if len(ranges) != 1 || ranges[0] != "bytes="+strconv.Itoa(cut)+"-" {
		t.Errorf("second mirror saw Range %q, want bytes=%d-", ranges, cut)
	}
	if ifRanges[0] != "" {
		t.Errorf("second mirror got If-Range %q: the first mirror's validator means nothing to it", ifRanges[0])
	}
	if !strings.Contains(fx.logs.String(), "ErrStalled") && !strings.Contains(fx.logs.String(), "stopped sending") {
		t.Errorf("the stall of the first mirror was not logged:\n%s", fx.logs)
	}
}

func TestFetchInsufficientSpace(t *testing.T) {
	fx, _, uri := newRangeFixture(t, 500_000, "")
	var asked atomic.Value
	saved := freeSpace
	t.Cleanup(func() { freeSpace = saved })
	freeSpace = func(dir string) (int64, error) {
		asked.Store(dir)
		return 499_999, nil
	}

	_, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if !errors.Is(err, ErrInsufficientSpace) {
		t.Fatalf("err = %v, want ErrInsufficientSpace", err)
	}
	for _, part := range []string{"500000 bytes", "499999 bytes", fx.fetcher.Dir} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
	if asked.Load() != fx.fetcher.Dir {
		t.Errorf("free space asked for %v, want %s", asked.Load(), fx.fetcher.Dir)
	}
	assertDirEmpty(t, fx.fetcher.Dir)

	freeSpace = func(string) (int64, error) { return 500_000, nil } // exactly enough
	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
}

func TestFetchInsufficientSpaceCountsOnlyTheRest(t *testing.T) {
	const size = 1 << 20
	fx, rs, uri := newRangeFixture(t, size, `"v1"`)
	have := interruptedFetch(t, fx, rs, uri, 600_000)
	saved := freeSpace
	t.Cleanup(func() { freeSpace = saved })
	freeSpace = func(string) (int64, error) { return size - have, nil }
	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatalf("the missing %d bytes fit, yet: %v", size-have, err)
	}
	assertFileContent(t, res.Path, fx.content)
}

// A partial damaged on disk (a crash, a bad sector) must never become the
// image: the full hash catches it and the image is fetched again, whole.
func TestResumeDamagedPartialNeverPlaced(t *testing.T) {
	const size = 1<<20 + 7
	fx, rs, uri := newRangeFixture(t, size, `"v1"`)
	have := interruptedFetch(t, fx, rs, uri, 300_000)
	data, _ := partialFiles(t, fx.fetcher.Dir)
	damage(t, data, have/2)

	before := rs.served.Load()
	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if got, want := rs.served.Load()-before, int64(size)-have+size; got != want {
		t.Errorf("server sent %d bytes, want %d: the rest, then all of it again", got, want)
	}
	if !strings.Contains(fx.logs.String(), "resumed image does not match") {
		t.Errorf("the mismatch of the resumed image was not logged:\n%s", fx.logs)
	}
}

func TestResumeDamagedPartialOfWrongImageFails(t *testing.T) {
	const size = 600_000
	fx, rs, uri := newRangeFixture(t, size, "")
	interruptedFetch(t, fx, rs, uri, 200_000)
	// The server now has other bytes for which no digest matches: the
	// clean retry fails too, and nothing is placed or kept.
	rs.content = testImage(size + 1)[1:]
	_, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	var mismatch *HashMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a HashMismatchError", err)
	}
	assertDirEmpty(t, fx.fetcher.Dir)
}

// A crash after the last byte but before the rename leaves a complete
// partial: the server answers 416 to the Range request, and the image is
// placed after the hash check without transferring anything.
func TestResumeCompletePartial(t *testing.T) {
	for _, damaged := range []bool{false, true} {
		t.Run("damaged="+strconv.FormatBool(damaged), func(t *testing.T) {
			const size = 300_000
			fx, rs, uri := newRangeFixture(t, size, `"v1"`)
			interruptedFetch(t, fx, rs, uri, 100_000)
			data, _ := partialFiles(t, fx.fetcher.Dir)
			if err := os.WriteFile(data, fx.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if damaged {
				damage(t, data, size-1)
			}
			before := rs.served.Load()
			res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
			if err != nil {
				t.Fatal(err)
			}
			assertFileContent(t, res.Path, fx.content)
			want := int64(0)
			if damaged {
				want = size
			}
			if got := rs.served.Load() - before; got != want {
				t.Errorf("server sent %d bytes, want %d", got, want)
			}
		})
	}
}

func TestStalePartialsRemoved(t *testing.T) {
	fx, _, uri := newRangeFixture(t, 10_000, "")
	if err := os.MkdirAll(fx.fetcher.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := []string{".partial-0123456789abcdef", ".partial-0123456789abcdef.json", ".partial-1234567"}
	for _, name := range stale {
		if err := os.WriteFile(filepath.Join(fx.fetcher.Dir, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(fx.fetcher.Dir, "other.img") // an image, not a partial
	if err := os.WriteFile(keep, []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256()); err != nil {
		t.Fatal(err)
	}
	names := dirEntries(t, fx.fetcher.Dir)
	if len(names) != 2 || names[0] != "boot.img" || names[1] != "other.img" {
		t.Errorf("Dir holds %q, want boot.img and other.img", names)
	}
}

// A partial without its sidecar cannot be trusted to belong to this image
// and server, so it is not resumed.
func TestPartialWithoutSidecarDiscarded(t *testing.T) {
	const size = 800_000
	fx, rs, uri := newRangeFixture(t, size, `"v1"`)
	interruptedFetch(t, fx, rs, uri, 300_000)
	_, meta := partialFiles(t, fx.fetcher.Dir)
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	before := rs.served.Load()
	res, err := fx.fetcher.Fetch(context.Background(), []string{uri}, fx.sha256())
	if err != nil {
		t.Fatal(err)
	}
	assertFileContent(t, res.Path, fx.content)
	if got := rs.served.Load() - before; got != size {
		t.Errorf("server sent %d bytes, want all %d", got, size)
	}
	if ranges, _ := rs.seen(); ranges[len(ranges)-1] != "" {
		t.Errorf("a partial without sidecar was resumed: Range %q", ranges[len(ranges)-1])
	}
}

func damage(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestParseContentRange(t *testing.T) {
	good := map[string][2]int64{
		"bytes 100-999/1000": {100, 1000},
		"bytes 0-0/1":        {0, 1},
		"bytes 5-9/*":        {5, -1},
		"bytes */1000":       {-1, 1000},
	}
	for v, want := range good {
		first, total, err := parseContentRange(v)
		if err != nil || first != want[0] || total != want[1] {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d", v, first, total, err, want[0], want[1])
		}
	}
	for _, v := range []string{"", "bytes", "bytes 1-2", "items 0-1/2", "bytes 5-4/10", "bytes 0-10/10", "bytes 0-5/10", "bytes a-b/10", "bytes 0-1/-3"} {
		if _, _, err := parseContentRange(v); err == nil {
			t.Errorf("parseContentRange(%q) accepted", v)
		}
	}
}
