package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/version"
)

// Why not grab (github.com/cavaliergopher/grab/v3), which this package used
// before: its copy loop reads the network and writes the file in one
// goroutine, so TLS, hashing and disk never overlap; it offers no hook into
// that loop, so hashing in the write path needed a wrapped transport; its
// checksum option reads the finished file a second time; and its resume
// (a HEAD, then Range without If-Range, appending to whatever file is there)
// neither checks the server's Content-Range against the bytes we hashed nor
// notices that the object changed, nor can it continue a transfer on another
// mirror. The transfer below is plain net/http with a pipelined writer.

const (
	// chunkSize is the unit the reader hands to the writer: large enough
	// that a multi-GB image costs few write syscalls and channel hand-offs,
	// small enough that chunks × buffers stays far below the agent's
	// memory budget.
	chunkSize = 256 << 10
	// pipelineDepth is the number of chunks in flight: one being filled
	// from the network, the rest queued for or being written to disk, so a
	// slow write does not stall the connection and vice versa.
	pipelineDepth = 4
	// writebackWindow is how much written data accumulates before its
	// writeback is started; the window before it must be on disk by then.
	// Page cache, not process memory: it bounds the dirty data and thus
	// the final fsync.
	writebackWindow = 16 << 20
	// gcEvery bounds the garbage a long transfer leaves: crypto/tls
	// allocates a little for every 16 KiB record it reads, and with the
	// agent's few MB of live heap the GC would let several MB of that pile
	// up over a multi-GB image — the peak RSS would grow with the image.
	// A collection per this many bytes, with the freed pages handed back
	// to the kernel, costs about a millisecond and keeps the RSS flat.
	gcEvery = 32 << 20
)

// errRestart asks the caller to repeat the request from the first byte: the
// server's object is not the one the partial came from, or its answer to a
// Range request cannot be trusted.
type errRestart struct{ reason string }

func (e *errRestart) Error() string { return "starting the download over: " + e.reason }

// attempt is one HTTP request for (the rest of) the image.
type attempt struct {
	f       *Fetcher
	uri     string
	client  *http.Client
	p       *partial
	total   atomic.Int64 // image size, -1 while unknown
	done    atomic.Int64 // bytes in the partial, including those resumed from
	alive   atomic.Int64 // bumped on every sign of life, for stall detection
	started int64        // bytes in the partial when the request was sent
}

// transferResult describes a finished transfer of the whole image.
type transferResult struct {
	finalURL *url.URL // after redirects
}

// run makes one request and streams the body into the partial. The stall
// watchdog and progress reports run in the caller's goroutine, as Fetcher
// promises, while the transfer runs in another.
func (a *attempt) run(ctx context.Context) (*transferResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.total.Store(-1)
	a.started = a.p.size()
	a.done.Store(a.started)

	type outcome struct {
		res *transferResult
		err error
	}
	finished := make(chan outcome, 1)
	go func() {
		res, err := a.transfer(ctx)
		finished <- outcome{res, err}
	}()

	stall := a.f.stallTimeout()
	tick := min(max(stall/4, 10*time.Millisecond), time.Second)
	interval := a.f.ProgressInterval
	if interval <= 0 {
		interval = defaultProgressInterval
	}
	if a.f.Progress != nil {
		tick = min(tick, interval)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	lastAlive, lastAliveAt, lastProgress := a.alive.Load(), time.Now(), time.Now()
	lastGC := a.done.Load()
	for {
		select {
		case o := <-finished:
			if o.err != nil && ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrStalled) {
				return nil, fmt.Errorf("%w: nothing received for %s", ErrStalled, stall)
			}
			return o.res, o.err
		case now := <-ticker.C:
			if v := a.alive.Load(); v != lastAlive {
				lastAlive, lastAliveAt = v, now
			} else if now.Sub(lastAliveAt) >= stall {
				// Cancels this attempt only: the caller's ctx stays
				// valid, so the next URI can still be tried.
				cancel(ErrStalled)
			}
			if done := a.done.Load(); done-lastGC >= gcEvery {
				// Here, off the data path: the transfer goroutines
				// keep going while this one waits for the cycle.
				lastGC = done
				debug.FreeOSMemory()
			}
			if a.f.Progress != nil && now.Sub(lastProgress) >= interval {
				lastProgress = now
				a.f.Progress(a.uri, a.done.Load(), a.total.Load())
			}
		}
	}
}

// transfer sends the request and, if the answer is (the rest of) the image,
// pumps the body into the partial.
func (a *attempt) transfer(ctx context.Context) (*transferResult, error) {
	p := a.p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", version.UserAgent())
	// Byte ranges and digests refer to the stored object, so no transparent
	// decompression (Go's transport would ask for gzip and undo it).
	req.Header.Set("Accept-Encoding", "identity")
	offset := p.size()
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		if v := p.meta.ifRange(a.uri); v != "" {
			req.Header.Set("If-Range", v)
		}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a.alive.Add(1)

	switch {
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			// Range ignored, or If-Range found the object changed: the
			// body is the whole image, so the partial must go.
			a.f.logger().Info("server sent the whole image instead of the rest; starting over",
				"uri", a.uri, "had", offset)
			if err := p.restart(); err != nil {
				return nil, err
			}
			offset = 0
			a.started = 0
			a.done.Store(0)
		}
		p.meta.Total = resp.ContentLength
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			return nil, &errRestart{fmt.Sprintf("206 with Content-Range %q does not continue at byte %d",
				resp.Header.Get("Content-Range"), offset)}
		}
		if etag := resp.Header.Get("ETag"); p.meta.URI == a.uri && p.meta.ETag != "" && etag != "" && etag != p.meta.ETag {
			// The server honoured Range but not If-Range.
			return nil, &errRestart{fmt.Sprintf("object changed (ETag %s, was %s)", etag, p.meta.ETag)}
		}
		if total < 0 && resp.ContentLength >= 0 {
			total = offset + resp.ContentLength
		}
		if p.meta.Total >= 0 && total >= 0 && total != p.meta.Total {
			return nil, &errRestart{fmt.Sprintf("image is now %d bytes, was %d", total, p.meta.Total)}
		}
		p.meta.Total = total
		p.resumed = true
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		// Either the partial is already complete (crash between the last
		// write and the rename) or the object shrank.
		if _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil && total == offset {
			a.total.Store(total)
			return &transferResult{finalURL: resp.Request.URL}, nil
		}
		return nil, &errRestart{"416 for the rest of the partial"}
	default:
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	a.total.Store(p.meta.Total)
	if max := a.f.MaxSize; max > 0 && p.meta.Total > max {
		return nil, fmt.Errorf("%w: server announces %d bytes, the limit is %d", ErrTooLarge, p.meta.Total, max)
	}
	if p.meta.Total >= 0 {
		if err := a.f.checkSpace(p.meta.Total - offset); err != nil {
			return nil, err
		}
	}
	if p.meta.URI != a.uri || p.meta.ETag != resp.Header.Get("ETag") || p.meta.LastModified != resp.Header.Get("Last-Modified") {
		p.meta.URI = a.uri
		p.meta.ETag = resp.Header.Get("ETag")
		p.meta.LastModified = resp.Header.Get("Last-Modified")
		if err := p.saveMeta(); err != nil {
			return nil, err
		}
	}
	if err := p.create(); err != nil {
		return nil, err
	}
	if err := a.pump(resp.Body); err != nil {
		return nil, err
	}
	if t := p.meta.Total; t >= 0 && p.size() != t {
		return nil, fmt.Errorf("body ended after %d of %d bytes", p.size(), t)
	}
	return &transferResult{finalURL: resp.Request.URL}, nil
}

// pump copies body into the partial, hashing every chunk on its way to the
// file. Two goroutines overlap the work: this one decrypts and hashes, the
// writer writes, with pipelineDepth chunks circulating between them — the
// memory use is fixed, whatever the image size.
//
// The digests cover exactly the bytes handed to the writer. If the writer
// fails, the file may hold fewer bytes than were hashed, so the hashes are
// dropped and the file truncated to an empty partial: correctness over
// saving the bytes on a disk that just failed.
func (a *attempt) pump(body io.Reader) error {
	p := a.p
	free := make(chan []byte, pipelineDepth)
	for range pipelineDepth {
		free <- make([]byte, chunkSize)
	}
	full := make(chan []byte, pipelineDepth)
	writeErr := make(chan error, 1)
	writerFailed := make(chan struct{})
	start := p.size() // read before the reader starts adding to it
	go func() {
		off := start
		wb := newWriteback(p.file)
		// [prev, window) is being written back, [window, off) is dirty.
		prev, window := start, start
		var err error
		for chunk := range full {
			if err == nil {
				if _, err = p.file.WriteAt(chunk, off); err != nil {
					err = fmt.Errorf("writing partial download: %w", err)
					close(writerFailed)
				}
				off += int64(len(chunk))
				a.alive.Add(1)
				if off-window >= writebackWindow {
					wb.wait(prev, window-prev)
					wb.start(window, off-window)
					prev, window = window, off
				}
			}
			free <- chunk[:cap(chunk)]
		}
		writeErr <- err
	}()

	maxSize := a.f.MaxSize
	var readErr error
	for readErr == nil {
		var buf []byte
		select {
		case buf = <-free:
		case <-writerFailed:
			readErr = errWriterFailed
			continue
		}
		n, err := readChunk(body, buf, &a.alive)
		if n > 0 {
			if maxSize > 0 && p.size()+int64(n) > maxSize {
				// These bytes are not written: the file must never
				// exceed the limit.
				readErr = fmt.Errorf("%w: more than %d bytes received", ErrTooLarge, maxSize)
				free <- buf
				break
			}
			p.digests.Write(buf[:n])
			a.done.Store(p.size())
			full <- buf[:n]
		} else {
			free <- buf
		}
		if err != nil {
			readErr = err
		}
	}
	close(full)
	if err := <-writeErr; err != nil {
		if restartErr := p.restart(); restartErr != nil {
			return errors.Join(err, restartErr)
		}
		return err
	}
	if readErr == io.EOF {
		return nil
	}
	return readErr
}

var errWriterFailed = errors.New("writer failed")

// readChunk fills buf from r, which for a TLS body yields at most one
// record (16 KiB) per Read, so that the writer gets large chunks. It stops
// early at the end of the body or on an error, returning what it has.
func readChunk(r io.Reader, buf []byte, alive *atomic.Int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if m > 0 {
			alive.Add(1)
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// parseContentRange parses "bytes first-last/total" (total may be "*",
// returned as -1) and returns first and total. "bytes */total" (the form of
// a 416) returns first = -1.
func parseContentRange(v string) (first, total int64, err error) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: not a byte range", v)
	}
	rng, size, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: no total", v)
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil || total < 0 {
			return 0, 0, fmt.Errorf("content-range %q: bad total", v)
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: bad range", v)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || (total >= 0 && last >= total) {
		return 0, 0, fmt.Errorf("content-range %q: bad range", v)
	}
	// The request was for everything from first on; a range that stops
	// short of a known end would leave a hole.
	if total >= 0 && last != total-1 {
		return 0, 0, fmt.Errorf("content-range %q: does not reach the end", v)
	}
	return first, total, nil
}
