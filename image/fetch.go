// Package image downloads and stages the boot image named by RFC 8572
// conveyed information (the "boot-image" node of onboarding-information).
//
// Each download-uri is tried in order. The response body is hashed as it
// streams to a staging file, and the file is moved into place only once
// every supported image-verification digest matches, so a rejected or
// partial image never appears under its final name.
//
// Server authentication is best effort, as RFC 8572 §5.3 allows: the image
// server may be reached over plain http, or over https with a certificate
// the device cannot verify. Integrity always comes from the digests that the
// (already verified) conveyed information carries.
package image

import (
	"bytes"
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

	"github.com/cavaliergopher/grab/v3"

	"github.com/sztp-agent/sztp-agent/internal/version"
)

// Errors a download attempt can fail with, for errors.Is.
var (
	ErrTooLarge          = errors.New("image exceeds the size limit")
	ErrStalled           = errors.New("image server stopped sending data")
	ErrUnsupportedScheme = errors.New("unsupported download-uri scheme")
)

// errNoVerifiedImage leads the joined error when every URI failed.
var errNoVerifiedImage = errors.New("no download-uri yielded a verified image")

const (
	defaultStallTimeout     = 60 * time.Second
	defaultProgressInterval = time.Second
	// copyBufferSize is grab's read/write chunk. Larger than grab's 32 KiB
	// default to cut write syscalls on multi-GB images; still small enough
	// that stall detection and progress stay fine-grained.
	copyBufferSize = 256 << 10
)

// Fetcher downloads boot images.
type Fetcher struct {
	// Dir is the staging directory (e.g. <state-dir>/images), created with
	// mode 0700 if missing. Images are placed here under a name derived
	// from the URI; in-progress downloads are hidden ".partial-*" files.
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
	// including while connecting and waiting for the response headers.
	// 0 means 60s.
	StallTimeout time.Duration
	// Progress, if set, is called from Fetch's goroutine every
	// ProgressInterval during a transfer and once when a URI's transfer
	// succeeds. total is -1 while the size is unknown.
	Progress func(uri string, done, total int64)
	// ProgressInterval is how often Progress is called; 0 means 1s.
	ProgressInterval time.Duration
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
// A cancelled ctx stops the current transfer and skips the remaining URIs.
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

	failures := []error{errNoVerifiedImage}
	for i, uri := range uris {
		if err := ctx.Err(); err != nil {
			failures = append(failures, err)
			break
		}
		logger.Info("downloading boot image", "uri", uri, "attempt", i+1, "uris", len(uris))
		result, err := f.fetchURI(ctx, uri, expected)
		if err == nil {
			logger.Info("boot image verified and staged",
				"uri", uri, "path", result.Path, "size", result.Size)
			return result, nil
		}
		err = fmt.Errorf("downloading %s: %w", uri, err)
		logger.Warn("boot image download failed", "uri", uri, "err", err)
		failures = append(failures, err)
	}
	return nil, errors.Join(failures...)
}

// fetchURI downloads one URI, falling back to InsecureClient once if the
// server's certificate cannot be verified.
func (f *Fetcher) fetchURI(ctx context.Context, uri string, expected []expectedDigest) (*Result, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	integrity := strings.Join(algorithmNames(expected), ", ")
	switch u.Scheme {
	case "https", "http":
	default:
		return nil, fmt.Errorf("%w %q (only https and http)", ErrUnsupportedScheme, u.Scheme)
	}

	result, err := f.download(ctx, uri, f.client(), expected)
	if err != nil {
		why := certificateVerificationError(err)
		if why == nil || f.InsecureClient == nil || ctx.Err() != nil {
			return nil, err
		}
		f.logger().Warn("image server certificate not verified; retrying without server authentication, relying on the image digest",
			"uri", uri, "err", why)
		unauthenticated, retryErr := f.download(ctx, uri, f.InsecureClient, expected)
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

// download makes one attempt at uri with client: transfer to a staging file
// while hashing, verify, then move into place. On any failure the staging
// file is removed.
func (f *Fetcher) download(ctx context.Context, uri string, client *http.Client, expected []expectedDigest) (_ *Result, err error) {
	staging, err := os.CreateTemp(f.Dir, stagingPattern)
	if err != nil {
		return nil, fmt.Errorf("creating staging file: %w", err)
	}
	stagingPath := staging.Name()
	staging.Close()
	defer func() {
		if err != nil {
			os.Remove(stagingPath)
		}
	}()

	// The stall watchdog cancels the attempt, not the caller's ctx, so the
	// next URI can still be tried; the cause tells the two apart.
	attemptCtx, cancelAttempt := context.WithCancelCause(ctx)
	defer cancelAttempt(nil)
	stallTimeout := f.stallTimeout()
	watchdog := time.AfterFunc(stallTimeout, func() { cancelAttempt(ErrStalled) })
	defer watchdog.Stop()

	tap := newBodyTap(nil, algorithmNames(expected), f.MaxSize, func() { watchdog.Reset(stallTimeout) })
	req, err := grab.NewRequest(stagingPath, uri)
	if err != nil {
		return nil, err
	}
	req = req.WithContext(attemptCtx)
	// Resume is off: grab would append to an existing partial file whose
	// bytes never went through the tap, so the digest would be wrong.
	// Resuming needs the partial re-hashed first (and a Range-aware tap).
	req.NoResume = true
	req.NoCreateDirectories = true
	// The server's Last-Modified is irrelevant to a verified image.
	req.IgnoreRemoteTime = true
	requestedScheme := req.URL().Scheme
	transfer := (&grab.Client{
		HTTPClient: tap.client(client),
		UserAgent:  version.UserAgent(),
		BufferSize: copyBufferSize,
	}).Do(req)
	f.awaitTransfer(uri, transfer)
	if err := transfer.Err(); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(attemptCtx), ErrStalled) {
			return nil, fmt.Errorf("%w: nothing received for %s", ErrStalled, stallTimeout)
		}
		return nil, err
	}
	watchdog.Stop()

	if err := checkStagedSize(stagingPath, tap.bytesSeen); err != nil {
		return nil, err
	}
	digests := tap.digests()
	for _, e := range expected {
		if got := digests[e.algorithm]; !bytes.Equal(got, e.digest) {
			return nil, &HashMismatchError{URI: uri, Algorithm: e.algorithm, Want: e.digest, Got: got}
		}
	}
	if f.Progress != nil {
		f.Progress(uri, tap.bytesSeen, tap.bytesSeen)
	}

	finalPath := filepath.Join(f.Dir, finalName(uri))
	if err := placeAtomically(stagingPath, finalPath); err != nil {
		return nil, err
	}
	result := &Result{Path: finalPath, URI: uri, Size: tap.bytesSeen, Digests: digests}
	if final := transfer.HTTPResponse.Request.URL; final.Scheme == "http" && requestedScheme != "http" {
		result.Warnings = append(result.Warnings, fmt.Sprintf(
			"image server %s redirected to plain http (%s); integrity from %s",
			uri, final.Redacted(), strings.Join(algorithmNames(expected), ", ")))
	}
	return result, nil
}

// awaitTransfer blocks until grab finishes, reporting progress meanwhile.
func (f *Fetcher) awaitTransfer(uri string, transfer *grab.Response) {
	if f.Progress == nil {
		<-transfer.Done
		return
	}
	interval := f.ProgressInterval
	if interval <= 0 {
		interval = defaultProgressInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-transfer.Done:
			return
		case <-ticker.C:
			f.Progress(uri, transfer.BytesComplete(), transfer.Size())
		}
	}
}

// checkStagedSize makes sure the staging file holds exactly the bytes that
// were hashed — the digest vouches for nothing else.
func checkStagedSize(path string, hashed int64) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("inspecting staging file: %w", err)
	}
	if info.Size() != hashed {
		return fmt.Errorf("staging file holds %d bytes but %d were hashed", info.Size(), hashed)
	}
	return nil
}

// placeAtomically makes the staged file durable and then gives it its final
// name, so that after a crash the final name holds either the old image or
// the complete new one. The rename replaces an earlier image of that name.
func placeAtomically(stagingPath, finalPath string) error {
	if err := syncPath(stagingPath, os.O_WRONLY); err != nil {
		return fmt.Errorf("syncing staged image: %w", err)
	}
	if err := os.Rename(stagingPath, finalPath); err != nil {
		return fmt.Errorf("placing staged image: %w", err)
	}
	if err := syncPath(filepath.Dir(finalPath), os.O_RDONLY); err != nil {
		// Without the directory entry on disk the image may vanish on
		// power loss; report it as not placed rather than leave it behind.
		os.Remove(finalPath)
		return fmt.Errorf("syncing image directory: %w", err)
	}
	return nil
}

func syncPath(path string, flag int) error {
	file, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
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
