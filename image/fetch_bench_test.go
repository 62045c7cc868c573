package image

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"path/filepath"
	"testing"
)

// benchImageSize is served from memory over loopback TLS by both benchmarks,
// so their ratio shows what Fetch (pipelined write, fsync, rename) costs on
// top of the unavoidable TLS transfer plus hashing. Server and client share
// the process and its cores here; tools/bench.sh measures the real agent.
const benchImageSize = 64 << 20

func benchServer(b *testing.B) (url string, client *http.Client, content []byte) {
	b.Helper()
	ca := newTestCA(b, "benchmark CA")
	content = testImage(benchImageSize)
	srv := startTLSServer(b, ca.issueServer(b, loopback, nil), &countingContent{content: content})
	return srv.URL + "/bench.img", clientTrusting(b, ca.pool), content
}

func BenchmarkFetch(b *testing.B) {
	url, client, content := benchServer(b)
	f := &Fetcher{Dir: filepath.Join(b.TempDir(), "images"), Client: client}
	want := []Verification{{Algorithm: "sha-256", Digest: sha256Of(content)}}
	b.SetBytes(benchImageSize)
	b.ResetTimer()
	for b.Loop() {
		res, err := f.Fetch(context.Background(), []string{url}, want)
		if err != nil {
			b.Fatal(err)
		}
		if res.Size != benchImageSize {
			b.Fatalf("Size = %d", res.Size)
		}
	}
}

// BenchmarkReferenceHTTPSHash is the floor for BenchmarkFetch: a plain GET
// whose body is hashed in memory and never touches the disk.
func BenchmarkReferenceHTTPSHash(b *testing.B) {
	url, client, content := benchServer(b)
	want := sha256Of(content)
	b.SetBytes(benchImageSize)
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if got := h.Sum(nil); string(got) != string(want) {
			b.Fatalf("digest %x, want %x", got, want)
		}
	}
}
