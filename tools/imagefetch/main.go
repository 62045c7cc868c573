// Command imagefetch runs image.Fetcher.Fetch once, outside the agent, to
// profile and measure the download pipeline on its own:
//
//	imagefetch -dir DIR -sha256 HEX [-cacert PEM] [-cert PEM -key PEM] [-cpuprofile F] URI...
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/sztp-agent/sztp-agent/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imagefetch:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "staging directory")
	sum := flag.String("sha256", "", "expected sha-256 (hex)")
	caFile := flag.String("cacert", "", "PEM trust anchors for the image server")
	certFile := flag.String("cert", "", "PEM client certificate")
	keyFile := flag.String("key", "", "PEM client key")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here")
	stall := flag.Duration("stall", 0, "stall timeout (0 = default)")
	memProfile := flag.String("memprofile", "", "write an allocation profile (every 4 KiB sampled) here")
	flag.Parse()
	digest, err := hex.DecodeString(*sum)
	if err != nil {
		return fmt.Errorf("-sha256: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(pem)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	fetcher := &image.Fetcher{
		Dir:          *dir,
		Client:       &http.Client{Transport: &http.Transport{TLSClientConfig: tc}},
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
		StallTimeout: *stall,
	}
	start := time.Now()
	res, err := fetcher.Fetch(context.Background(), flag.Args(),
		[]image.Verification{{Algorithm: "sha-256", Digest: digest}})
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("%s %d bytes in %v (%.0f MB/s), heap sys %d KiB, total alloc %d KiB, GCs %d\n",
		res.Path, res.Size, elapsed, float64(res.Size)/elapsed.Seconds()/1e6, ms.HeapSys>>10, ms.TotalAlloc>>10, ms.NumGC)
	return nil
}
