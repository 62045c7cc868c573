// Package image downloads and stages the boot image named by RFC 8572
// conveyed information (the "boot-image" node of onboarding-information).
//
// Each download-uri is tried in order. The response body is hashed as it
// streams to a partial file — one pass, no second read — and the file is
// fsynced and renamed into place only once every supported
// image-verification digest matches, so a rejected or partial image never
// appears under its final name.
//
// An interrupted download is resumed: the partial file stays in Dir under a
// name derived from the expected digests, with a JSON sidecar naming the
// server and its validator. The next attempt — on the same URI after a cut
// connection, on the next download-uri, or after the agent restarts —
// re-hashes the partial once and asks only for the missing bytes (Range,
// with If-Range where the server gave a validator). A server that ignores
// Range or whose object changed makes the download start over.
//
// Server authentication is best effort, as RFC 8572 §5.3 allows: the image
// server may be reached over plain http, or over https with a certificate
// the device cannot verify. Integrity always comes from the digests that the
// (already verified) conveyed information carries.
package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sztp-agent/sztp-agent/internal/atomicfile"
)

// Errors a download attempt can fail with, for errors.Is.
var (
	ErrTooLarge          = errors.New("image exceeds the size limit")
	ErrStalled           = errors.New("image server stopped sending data")
	ErrUnsupportedScheme = errors.New("unsupported download-uri scheme")
	// ErrInsufficientSpace: the announced image does not fit on the file
	// system holding Dir.
	ErrInsufficientSpace = errors.New("not enough free space for the image")
)

// errNoVerifiedImage leads the joined error when every URI failed.
var errNoVerifiedImage = errors.New("no download-uri yielded a verified image")

const (
	defaultStallTimeout     = 60 * time.Second
	defaultProgressInterval = time.Second
	// maxResumesPerURI bounds how often one URI is resumed within a Fetch
	// after its connection broke. Each resume must have made progress, so
	// this only stops a server that keeps cutting connections.
	maxResumesPerURI = 3
)

// Fetcher downloads boot images.
type Fetcher struct {
	// Dir is the staging directory (e.g. <state-dir>/images), created with
	// mode 0700 if missing. Images are placed here under a name derived
	// from the URI; in-progress downloads are hidden ".partial-*" files
	// that survive a failed Fetch so the next one can resume. Fetch removes
	// partials of other images, so one Dir serves one Fetch at a time.
	Dir string
	// Client authenticates https image servers (trust anchors + system
	// roots). nil means a default client with the system roots. Mind that
	// a Client.Timeout bounds the whole transfer, not only its start.
	Client *http.Client
	// InsecureClient is used only when Client fails certificate
	// verification; integrity then comes from the hash. nil disables that
	// fallback.
	InsecureClient *http.Client
	// Logger may be nil, which discards.
	Logger *slog.Logger
	// MaxSize bounds the image in bytes; 0 = unlimited. A larger body is
	// an error.
	MaxSize int64
	// StallTimeout fails a URI when no bytes arrive for this long,
	// including while connecting and waiting for the response headers;
	// the next URI then continues the transfer. 0 means 60s.
	StallTimeout time.Duration
	// Progress, if set, is called from Fetch's goroutine every
	// ProgressInterval during a transfer and once when a URI's transfer
	// succeeds. total is -1 while the size is unknown.
	Progress func(uri string, done, total int64)
	// ProgressInterval is how often Progress is called; 0 means 1s.
	ProgressInterval time.Duration
	// LocalRoot, if set, allows file:///path URIs, read from under this
	// directory (removable storage, where images sit beside the artifacts).
	LocalRoot string
}

// Result describes a verified, staged image.
type Result struct {
	Path     string            // final path in Dir
	URI      string            // the URI that worked
	Size     int64             // bytes in the image
	Digests  map[string][]byte // algorithm -> digest computed, for each supported algorithm in want
	Warnings []string          // e.g. "image server https://... not authenticated (x509: ...); integrity from sha-256"
}

// Fetch tries uris in order; the first that downloads and matches every supported
// entry of want wins. Errors of earlier URIs are logged and, if all fail, joined into the returned error.
//
// want must contain at least one supported algorithm, otherwise Fetch fails
// before any request is made. Unsupported algorithms alongside are ignored.
// A cancelled ctx stops the current transfer and skips the remaining URIs;
// what was received stays in Dir for the next Fetch to resume.
func (f *Fetcher) Fetch(ctx context.Context, uris []string, want []Verification) (*Result, error) {
	logger := f.logger()
	expected, err := supportedDigests(want, logger)
	if err != nil {
		return nil, err
	}
	if len(uris) == 0 {
		return nil, errors.New("boot image has no download-uri")
	}
	if f.Dir == "" {
		return nil, errors.New("image staging directory not configured")
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating image staging directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(errNoVerifiedImage, err)
	}
	p, err := openPartial(f.Dir, expected, f.MaxSize, logger)
	if err != nil {
		return nil, err
	}
	defer p.close()

	failures := []error{errNoVerifiedImage}
	for i, uri := range uris {
		if err := ctx.Err(); err != nil {
			failures = append(failures, err)
			break
		}
		logger.Info("downloading boot image", "uri", uri, "attempt", i+1, "uris", len(uris), "resume_from", p.size())
		result, err := f.fetchURI(ctx, uri, expected, p)
		if err == nil {
			return result, nil
		}
		err = fmt.Errorf("downloading %s: %w", uri, err)
		logger.Warn("boot image download failed", "uri", uri, "err", err, "partial_bytes", p.size())
		failures = append(failures, err)
	}
	return nil, errors.Join(failures...)
}

// fetchURI downloads one URI, falling back to InsecureClient once if the
// server's certificate cannot be verified.
func (f *Fetcher) fetchURI(ctx context.Context, uri string, expected []expectedDigest, p *partial) (*Result, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	integrity := strings.Join(algorithmNames(expected), ", ")
	switch u.Scheme {
	case "https", "http":
	case "file":
		if f.LocalRoot == "" {
			return nil, fmt.Errorf("%w %q (no local root: file URIs are allowed only for images on removable storage)", ErrUnsupportedScheme, u.Scheme)
		}
		// The same pipeline serves local files: net/http's file transport
		// gives Content-Length and Range like a server, confined to
		// LocalRoot by http.Dir. Integrity still comes from the hash.
		tr := &http.Transport{}
		tr.RegisterProtocol("file", http.NewFileTransport(http.Dir(f.LocalRoot)))
		return f.download(ctx, uri, &http.Client{Transport: tr}, expected, p)
	default:
		return nil, fmt.Errorf("%w %q (only https and http)", ErrUnsupportedScheme, u.Scheme)
	}

	result, err := f.download(ctx, uri, f.client(), expected, p)
	if err != nil {
		why := certificateVerificationError(err)
		if why == nil || f.InsecureClient == nil || ctx.Err() != nil {
			return nil, err
		}
		f.logger().Warn("image server certificate not verified; retrying without server authentication, relying on the image digest",
			"uri", uri, "err", why)
		unauthenticated, retryErr := f.download(ctx, uri, f.InsecureClient, expected, p)
		if retryErr != nil {
			return nil, errors.Join(err, fmt.Errorf("retrying without server authentication: %w", retryErr))
		}
		unauthenticated.Warnings = append(unauthenticated.Warnings, fmt.Sprintf(
			"image server %s not authenticated (%v); integrity from %s", uri, why, integrity))
		return unauthenticated, nil
	}
	if u.Scheme == "http" {
		result.Warnings = append(result.Warnings, fmt.Sprintf(
			"image server %s not authenticated (plain http); integrity from %s", uri, integrity))
	}
	return result, nil
}

// certificateVerificationError returns the reason err is a failure to verify
// the server's certificate, or nil if it is something else (in which case an
// unauthenticated retry would not help).
func certificateVerificationError(err error) error {
	var verification *tls.CertificateVerificationError
	if errors.As(err, &verification) {
		return verification.Err
	}
	var unknownAuthority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownAuthority):
		return unknownAuthority
	case errors.As(err, &invalid):
		return invalid
	case errors.As(err, &hostname):
		return hostname
	}
	return nil
}

// download gets the image from uri with client into p — resuming what p
// holds — verifies it and moves it into place. A connection that breaks
// after delivering bytes is resumed on the same URI; a stall, a refusal or
// an HTTP error returns, leaving p for the next URI or Fetch. Only a
// rejected image (hash mismatch, too large) is deleted.
func (f *Fetcher) download(ctx context.Context, uri string, client *http.Client, expected []expectedDigest, p *partial) (*Result, error) {
	logger := f.logger()
	resumes, restarted, cleanRetried := 0, false, false
	for {
		a := &attempt{f: f, uri: uri, client: client, p: p}
		res, err := a.run(ctx)
		if err != nil {
			var restart *errRestart
			switch {
			case errors.As(err, &restart) && !restarted:
				logger.Info("partial download not resumable here", "uri", uri, "reason", restart.reason)
				restarted = true
				if err := p.restart(); err != nil {
					return nil, err
				}
				continue
			case errors.Is(err, ErrTooLarge):
				return nil, errors.Join(err, p.discard())
			case ctx.Err() != nil, errors.Is(err, ErrStalled):
				return nil, err
			case p.size() > a.started && resumes < maxResumesPerURI:
				// Bytes arrived, then the connection broke: ask the
				// same server for the rest.
				resumes++
				logger.Warn("image transfer interrupted; resuming", "uri", uri, "at", p.size(), "err", err)
				continue
			}
			return nil, err
		}

		digests, err := p.digests.check(uri, expected)
		if err != nil {
			if p.resumed && !cleanRetried {
				// The partial was resumed from an earlier attempt, a
				// crash or another mirror; any of these may be why.
				// One clean download from this URI settles it.
				logger.Warn("resumed image does not match; downloading it again from the start", "uri", uri, "err", err)
				cleanRetried = true
				if err := p.restart(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, errors.Join(err, p.discard())
		}
		return f.place(uri, p, digests, res, expected)
	}
}

// place moves the verified partial to its final name and builds the result.
func (f *Fetcher) place(uri string, p *partial, digests map[string][]byte, res *transferResult, expected []expectedDigest) (*Result, error) {
	size := p.size()
	if err := checkStagedSize(p.file, size); err != nil {
		return nil, errors.Join(err, p.discard())
	}
	if f.Progress != nil {
		f.Progress(uri, size, size)
	}
	finalPath := filepath.Join(f.Dir, finalName(uri))
	// The only fsync of the download: the image must be on disk before it
	// gets the name that says "verified". Measured apart because it is
	// the one cost a page-cache-only reference does not pay.
	syncStart := time.Now()
	syncErr := p.file.Sync()
	syncTime := time.Since(syncStart)
	closeErr := p.file.Close()
	p.file = nil
	if err := errors.Join(syncErr, closeErr); err != nil {
		return nil, errors.Join(fmt.Errorf("syncing staged image: %w", err), p.discard())
	}
	if err := os.Rename(p.path, finalPath); err != nil {
		return nil, errors.Join(fmt.Errorf("placing staged image: %w", err), p.discard())
	}
	if err := atomicfile.SyncDir(f.Dir); err != nil {
		// Without the directory entry on disk the image may vanish on
		// power loss; report it as not placed rather than leave it behind.
		os.Remove(finalPath)
		return nil, errors.Join(fmt.Errorf("syncing image directory: %w", err), p.discard())
	}
	// The data file is gone (renamed); clear the state so nothing is kept.
	if err := p.discard(); err != nil {
		f.logger().Warn("removing partial download sidecar", "err", err)
	}
	f.logger().Info("boot image verified and staged",
		"uri", uri, "path", finalPath, "size", size, "fsync", syncTime)
	result := &Result{Path: finalPath, URI: uri, Size: size, Digests: digests}
	if final := res.finalURL; final != nil && final.Scheme == "http" && !isPlainHTTP(uri) {
		result.Warnings = append(result.Warnings, fmt.Sprintf(
			"image server %s redirected to plain http (%s); integrity from %s",
			uri, final.Redacted(), strings.Join(algorithmNames(expected), ", ")))
	}
	return result, nil
}

func isPlainHTTP(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "http"
}

// checkStagedSize makes sure the staging file holds exactly the bytes that
// were hashed — the digest vouches for nothing else.
func checkStagedSize(file *os.File, hashed int64) error {
	if file == nil {
		return errors.New("no staging file")
	}
	info, err := file.Stat()
	if err != nil {
		return fmt.Errorf("inspecting staging file: %w", err)
	}
	if info.Size() != hashed {
		return fmt.Errorf("staging file holds %d bytes but %d were hashed", info.Size(), hashed)
	}
	return nil
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{}
}

func (f *Fetcher) stallTimeout() time.Duration {
	if f.StallTimeout > 0 {
		return f.StallTimeout
	}
	return defaultStallTimeout
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}
