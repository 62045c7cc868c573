package image

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
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

// digester computes every expected algorithm over one byte stream. It is
// fed by the download pipeline in the order the bytes go to the file, so its
// state always describes the file's first n bytes.
type digester struct {
	names  []string
	hashes []hash.Hash
	n      int64
}

func newDigester(algorithms []string) *digester {
	d := &digester{names: algorithms}
	for _, name := range algorithms {
		d.hashes = append(d.hashes, hashConstructors[name]())
	}
	return d
}

func (d *digester) Write(p []byte) (int, error) {
	// A loop rather than io.MultiWriter: this runs once per chunk of a
	// multi-GB stream, and hash.Hash.Write never fails.
	for _, h := range d.hashes {
		h.Write(p)
	}
	d.n += int64(len(p))
	return len(p), nil
}

func (d *digester) reset() {
	for _, h := range d.hashes {
		h.Reset()
	}
	d.n = 0
}

// sums returns the digests of the bytes written so far.
func (d *digester) sums() map[string][]byte {
	sums := make(map[string][]byte, len(d.hashes))
	for i, h := range d.hashes {
		sums[d.names[i]] = h.Sum(nil)
	}
	return sums
}

// check compares the digests with every expected entry.
func (d *digester) check(uri string, expected []expectedDigest) (map[string][]byte, error) {
	sums := d.sums()
	for _, e := range expected {
		if got := sums[e.algorithm]; !bytes.Equal(got, e.digest) {
			return nil, &HashMismatchError{URI: uri, Algorithm: e.algorithm, Want: e.digest, Got: got}
		}
	}
	return sums, nil
}
