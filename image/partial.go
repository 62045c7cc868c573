package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// partialPrefix starts the names of in-progress downloads and their
// sidecars. The leading dot keeps them apart from final names, which never
// start with one (see finalName), so cleaning them can never hit an image.
const partialPrefix = ".partial-"

// sidecarSuffix names the JSON file that describes a partial download.
const sidecarSuffix = ".json"

// rehashBufferSize is the read size when a partial is re-hashed on resume.
const rehashBufferSize = 256 << 10

// sidecar records where a partial download came from, so that a restarted
// agent can ask the same server for the rest only if the object is still the
// one it started on (If-Range), and can tell a partial of another image from
// its own.
type sidecar struct {
	Version int `json:"version"`
	// URI is the download-uri the bytes came from; Validator applies to it
	// only — another mirror's ETag or Last-Modified means nothing.
	URI string `json:"uri"`
	// ETag and LastModified are the response headers of that server.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last-modified,omitempty"`
	// Digests are the expected digests (algorithm -> hex), i.e. what the
	// key is derived from, stored in full to rule out key collisions.
	Digests map[string]string `json:"digests"`
	// Total is the image size the server announced, -1 if unknown.
	Total int64 `json:"total"`
}

const sidecarVersion = 1

// ifRange returns the validator to send in If-Range when resuming from uri,
// or "" when none can be used. A weak ETag must not be used (RFC 9110
// §13.1.5), and a validator of another server is meaningless.
func (s *sidecar) ifRange(uri string) string {
	if s.URI != uri {
		return ""
	}
	if s.ETag != "" && !strings.HasPrefix(s.ETag, "W/") {
		return s.ETag
	}
	return s.LastModified
}

// partialKey names the partial download of an image. It is derived from the
// expected digests, i.e. from the image's identity, and not from the URI:
// every download-uri serves the same bytes, so a transfer that dies on one
// mirror continues on the next from where it stopped (mid-transfer
// failover), and the URI that supplied the bytes is kept in the sidecar.
func partialKey(expected []expectedDigest) string {
	lines := make([]string, 0, len(expected))
	for _, e := range expected {
		lines = append(lines, e.algorithm+":"+hex.EncodeToString(e.digest))
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])[:16]
}

func expectedHex(expected []expectedDigest) map[string]string {
	m := make(map[string]string, len(expected))
	for _, e := range expected {
		m[e.algorithm] = hex.EncodeToString(e.digest)
	}
	return m
}

// partial is the on-disk state of one image's download: the data file, its
// sidecar and the running digests, which always cover exactly the file's
// first size bytes.
type partial struct {
	path, metaPath string
	expected       []expectedDigest
	file           *os.File // nil until the first byte is to be written
	meta           sidecar
	digests        *digester
	// resumed is set while the bytes in the file did not all come from one
	// clean, full response: such a file gets one clean retry on a mismatch,
	// because the mismatch may be the resumption's fault (a mirror with
	// other bytes, a partial damaged by a crash).
	resumed bool
	logger  *slog.Logger
}

// size is the number of bytes in the partial, all of them hashed.
func (p *partial) size() int64 { return p.digests.n }

// cleanStalePartials removes in-progress downloads of other images (another
// expected digest) and leftovers of earlier versions. Fetch assumes it is
// the only user of Dir, as the agent onboards one image at a time.
func cleanStalePartials(dir, key string, logger *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		logger.Warn("listing image staging directory", "dir", dir, "err", err)
		return
	}
	keep := partialPrefix + key
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, partialPrefix) || name == keep || name == keep+sidecarSuffix {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			logger.Warn("removing stale partial download", "file", name, "err", err)
			continue
		}
		logger.Info("removed stale partial download", "file", name)
	}
}

// openPartial picks up where an earlier download of the same image stopped,
// or starts empty. An existing partial is hashed once, in one sequential
// read, so that only the missing bytes have to be fetched; a partial whose
// sidecar is missing, unreadable or about another image is discarded.
func openPartial(dir string, expected []expectedDigest, maxSize int64, logger *slog.Logger) (*partial, error) {
	key := partialKey(expected)
	cleanStalePartials(dir, key, logger)
	p := &partial{
		path:     filepath.Join(dir, partialPrefix+key),
		metaPath: filepath.Join(dir, partialPrefix+key+sidecarSuffix),
		expected: expected,
		digests:  newDigester(algorithmNames(expected)),
		logger:   logger,
	}
	p.meta = sidecar{Version: sidecarVersion, Digests: expectedHex(expected), Total: -1}

	reason, err := p.resume(maxSize)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		logger.Info("discarding partial download", "file", p.path, "reason", reason)
		if err := p.discard(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// resume loads an existing partial. It returns a reason to discard it
// instead, or an error when the directory cannot be used at all.
func (p *partial) resume(maxSize int64) (discard string, err error) {
	file, err := os.OpenFile(p.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		os.Remove(p.metaPath) // an orphan sidecar, e.g. after a crash right after placing
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("opening partial download: %w", err)
	}
	data, err := os.ReadFile(p.metaPath)
	if err != nil {
		file.Close()
		return fmt.Sprintf("no usable sidecar: %v", err), nil
	}
	var meta sidecar
	if err := json.Unmarshal(data, &meta); err != nil {
		file.Close()
		return fmt.Sprintf("sidecar unreadable: %v", err), nil
	}
	if meta.Version != sidecarVersion || !equalDigests(meta.Digests, p.meta.Digests) {
		file.Close()
		return "sidecar describes another image", nil
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return "", fmt.Errorf("inspecting partial download: %w", err)
	}
	if maxSize > 0 && info.Size() > maxSize {
		file.Close()
		return "larger than the size limit", nil
	}
	if meta.Total >= 0 && info.Size() > meta.Total {
		file.Close()
		return "larger than the image", nil
	}
	if info.Size() == 0 {
		file.Close()
		return "empty", nil
	}
	buf := make([]byte, rehashBufferSize)
	if _, err := io.CopyBuffer(p.digests, io.LimitReader(file, info.Size()), buf); err != nil {
		file.Close()
		p.digests.reset()
		return fmt.Sprintf("re-hashing failed: %v", err), nil
	}
	if p.digests.n != info.Size() {
		// The file shrank while being read; nobody else should touch it.
		file.Close()
		p.digests.reset()
		return "changed while being re-hashed", nil
	}
	p.file = file
	p.meta = meta
	p.resumed = true
	p.logger.Info("resuming partial download", "file", p.path, "bytes", info.Size(), "from", meta.URI)
	return "", nil
}

func equalDigests(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// create makes sure the data file exists for writing.
func (p *partial) create() error {
	if p.file != nil {
		return nil
	}
	file, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating partial download: %w", err)
	}
	p.file = file
	return nil
}

// restart empties the partial: the next byte written is the image's first.
func (p *partial) restart() error {
	p.digests.reset()
	p.resumed = false
	if p.file == nil {
		return nil
	}
	if err := p.file.Truncate(0); err != nil {
		return fmt.Errorf("truncating partial download: %w", err)
	}
	return nil
}

// saveMeta records where the bytes come from. It is written before the
// first byte of a response goes into the file, so a partial on disk is
// never newer than its description. No fsync: losing the sidecar in a crash
// only costs the partial, never correctness.
func (p *partial) saveMeta() error {
	data, err := json.Marshal(&p.meta)
	if err != nil {
		return fmt.Errorf("encoding partial download sidecar: %w", err)
	}
	tmp := p.metaPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing partial download sidecar: %w", err)
	}
	if err := os.Rename(tmp, p.metaPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing partial download sidecar: %w", err)
	}
	return nil
}

// close releases the file and keeps the partial on disk for a later resume,
// unless it holds nothing worth keeping.
func (p *partial) close() {
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
	if p.size() == 0 {
		os.Remove(p.path)
		os.Remove(p.metaPath)
	}
}

// discard removes the partial and its sidecar.
func (p *partial) discard() error {
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
	p.digests.reset()
	p.resumed = false
	p.meta = sidecar{Version: sidecarVersion, Digests: p.meta.Digests, Total: -1}
	for _, path := range []string{p.path, p.metaPath} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing partial download: %w", err)
		}
	}
	return nil
}
