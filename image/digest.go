package image

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
)

// Verification is one entry of the conveyed information's image-verification list.
type Verification struct {
	// Algorithm is the YANG identity without its module prefix: "sha-256"
	// (the only one RFC 8572 defines) or "sha-512". A prefixed name such as
	// "ietf-sztp-conveyed-info:sha-256", which is how RFC 7951 JSON encodes
	// an identityref, is accepted too.
	Algorithm string
	Digest    []byte
}

// HashMismatchError is returned (wrapped) when a download's digest differs.
type HashMismatchError struct {
	URI, Algorithm string
	Want, Got      []byte
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%s digest of %s is %s, image-verification wants %s",
		e.Algorithm, e.URI, hex.EncodeToString(e.Got), hex.EncodeToString(e.Want))
}

// ErrNoSupportedAlgorithm is returned when image-verification names no hash
// algorithm this package implements, so no download could ever be verified.
var ErrNoSupportedAlgorithm = errors.New("image-verification has no supported hash algorithm")

// hashConstructors are the algorithms a download can be verified with, keyed
// by YANG identity name.
var hashConstructors = map[string]func() hash.Hash{
	"sha-256": sha256.New,
	"sha-512": sha512.New,
}

// expectedDigest is a supported, well-formed entry of image-verification.
type expectedDigest struct {
	algorithm string
	digest    []byte
}

// supportedDigests keeps the entries of want that can be checked. Unknown
// algorithms are skipped (RFC 8572 lets later revisions add identities), but
// at least one known one must remain, and a known algorithm with a digest of
// the wrong length is an error: it could never match, so downloading would
// only waste time and bandwidth.
func supportedDigests(want []Verification, logger *slog.Logger) ([]expectedDigest, error) {
	var supported []expectedDigest
	var ignored []string
	for _, v := range want {
		name := v.Algorithm
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[i+1:]
		}
		newHash, ok := hashConstructors[name]
		if !ok {
			ignored = append(ignored, v.Algorithm)
			continue
		}
		if size := newHash().Size(); len(v.Digest) != size {
			return nil, fmt.Errorf("image-verification %s digest is %d bytes, %s digests are %d bytes",
				name, len(v.Digest), name, size)
		}
		supported = append(supported, expectedDigest{algorithm: name, digest: v.Digest})
	}
	if len(supported) == 0 {
		if len(ignored) == 0 {
			return nil, fmt.Errorf("%w: the list is empty", ErrNoSupportedAlgorithm)
		}
		return nil, fmt.Errorf("%w: got %s, supported are %s",
			ErrNoSupportedAlgorithm, strings.Join(ignored, ", "), strings.Join(supportedAlgorithmNames(), ", "))
	}
	if len(ignored) > 0 {
		logger.Info("ignoring image-verification entries with unsupported algorithms",
			"ignored", ignored, "using", algorithmNames(supported))
	}
	return supported, nil
}

func supportedAlgorithmNames() []string {
	names := make([]string, 0, len(hashConstructors))
	for name := range hashConstructors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// algorithmNames lists the distinct algorithms of expected, in order.
func algorithmNames(expected []expectedDigest) []string {
	var names []string
	for _, e := range expected {
		if !containsString(names, e.algorithm) {
			names = append(names, e.algorithm)
		}
	}
	return names
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// bodyTap is an http.RoundTripper that hashes, counts and bounds the image
// response body in the read path, i.e. exactly the bytes grab receives and
// writes to the staging file.
//
// Why here and not grab's Request.SetChecksum: SetChecksum hashes by reading
// the finished file back from disk, which doubles the I/O for a multi-GB
// image and leaves a window in which the file could change between writing
// and hashing. grab gives no hook into its copy loop and opens the file
// itself, so the response body — which grab reads through the http.Client we
// hand it — is the one place to see every byte once, as it streams.
//
// A bodyTap serves one download attempt and is used by grab from two
// goroutines in sequence: RoundTrip runs in Fetch's goroutine (inside
// grab.Client.Do), the body is read in grab's copy goroutine, and the results
// are read after grab's Response.Done is closed, which orders all of it.
type bodyTap struct {
	base     http.RoundTripper
	hashes   map[string]hash.Hash
	hashSink io.Writer // all of hashes
	maxSize  int64     // 0 = unlimited
	activity func()    // called whenever the server shows signs of life

	bytesSeen int64
	tapped    bool
}

func newBodyTap(base http.RoundTripper, algorithms []string, maxSize int64, activity func()) *bodyTap {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &bodyTap{
		base:     base,
		hashes:   make(map[string]hash.Hash, len(algorithms)),
		maxSize:  maxSize,
		activity: activity,
	}
	sinks := make([]io.Writer, 0, len(algorithms))
	for _, name := range algorithms {
		h := hashConstructors[name]()
		t.hashes[name] = h
		sinks = append(sinks, h)
	}
	t.hashSink = io.MultiWriter(sinks...)
	return t
}

// client returns a copy of c whose transport goes through the tap; the
// caller's client is never modified, so it stays safe to share.
func (t *bodyTap) client(c *http.Client) *http.Client {
	tapped := *c
	if c.Transport != nil {
		t.base = c.Transport
	}
	tapped.Transport = t
	return &tapped
}

func (t *bodyTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.activity()
	// Only a successful GET carries the image. Redirect and error bodies
	// are drained or discarded by http.Client and grab, and must not reach
	// the hashes.
	if req.Method != http.MethodGet || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, nil
	}
	if t.maxSize > 0 && resp.ContentLength > t.maxSize {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: server announces %d bytes, the limit is %d",
			ErrTooLarge, resp.ContentLength, t.maxSize)
	}
	// The hashes cover one body from its first byte. A second image body
	// in the same attempt would mean the file and the hashes disagree about
	// where the image starts, so refuse it rather than guess.
	if t.tapped {
		resp.Body.Close()
		return nil, errors.New("more than one image response in a single download attempt")
	}
	t.tapped = true
	resp.Body = &tappedBody{ReadCloser: resp.Body, tap: t}
	return resp, nil
}

// digests returns the digests of the bytes read so far.
func (t *bodyTap) digests() map[string][]byte {
	sums := make(map[string][]byte, len(t.hashes))
	for name, h := range t.hashes {
		sums[name] = h.Sum(nil)
	}
	return sums
}

type tappedBody struct {
	io.ReadCloser
	tap *bodyTap
}

func (b *tappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		t := b.tap
		if t.maxSize > 0 && t.bytesSeen+int64(n) > t.maxSize {
			// Drop these bytes: grab must not write beyond the limit.
			return 0, fmt.Errorf("%w: more than %d bytes received", ErrTooLarge, t.maxSize)
		}
		t.bytesSeen += int64(n)
		t.hashSink.Write(p[:n]) // hash.Hash.Write never fails
		t.activity()
	}
	return n, err
}
