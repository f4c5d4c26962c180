package scan_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/embargo-dev/embargo/internal/scan"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// The synthetic image the scan benchmark pulls: about the size and package count of a
// language-runtime image on Debian.
const (
	benchPackages = 1000
	benchBytes    = 100 << 20
	benchSeed     = 1
)

var (
	benchOnce  sync.Once
	benchImage v1.Image
	benchWire  int64 // compressed layer bytes: what one scan pulls
	benchErr   error
	benchSeq   atomic.Int64
)

// syntheticImage builds and pushes the benchmark image once per process.
func syntheticImage(b *testing.B) v1.Image {
	b.Helper()
	benchOnce.Do(func() {
		img, err := ti.Synthetic(benchPackages, benchBytes, benchSeed)
		if err != nil {
			benchErr = err
			return
		}
		if _, err := reg.Push("bench/synthetic:base", img); err != nil {
			benchErr = err
			return
		}
		layers, err := img.Layers()
		if err != nil {
			benchErr = err
			return
		}
		for _, l := range layers {
			n, err := l.Size()
			if err != nil {
				benchErr = err
				return
			}
			benchWire += n
		}
		benchImage = img
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchImage
}

// pushFresh pushes the benchmark image with one more tiny layer, so its digest is new to the
// engine's cache; only that layer, its config and manifest are uploaded.
func pushFresh(b *testing.B) string {
	b.Helper()
	n := benchSeq.Add(1)
	l, err := ti.Layer(ti.File{Path: "/etc/embargo-bench", Content: fmt.Appendf(nil, "%d\n", n)})
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(syntheticImage(b), l)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := reg.Push(fmt.Sprintf("bench/synthetic:%d", n), img)
	if err != nil {
		b.Fatal(err)
	}
	return ref
}

// BenchmarkScanSynthetic measures a cold scan of a ~100 MB, ~1,000-package, ~7,400-file image
// from a registry over HTTP: resolve, pull, syft, file listing. The pull sub-benchmark is the
// baseline in the same run: download and gunzip every layer, nothing else, which any scanner
// pays. Compare their ns/op (MB/s counts compressed bytes pulled).
func BenchmarkScanSynthetic(b *testing.B) {
	syntheticImage(b)
	b.Run("pull", func(b *testing.B) {
		b.SetBytes(benchWire)
		for range b.N {
			b.StopTimer()
			ref := pushFresh(b)
			b.StartTimer()
			pullAll(b, ref)
		}
	})
	// "scan" reads attached SBOMs (the default); "scan-attachments-off" is the same scan with
	// that skipped: on an image that carries none, their ns/op must match. Both use a fresh,
	// warmed engine so neither pays for the other's state.
	b.Run("scan", func(b *testing.B) { benchScan(b, warmEngine(b, false)) })
	b.Run("scan-attachments-off", func(b *testing.B) { benchScan(b, warmEngine(b, true)) })
}

// warmEngine returns a new engine that has done one scan: a new engine builds syft's license
// scanner on its first.
func warmEngine(b *testing.B, ignoreAttached bool) *scan.Engine {
	b.Helper()
	eng, err := scan.New(scan.Options{TempDir: os.Getenv("TMPDIR"), IgnoreAttached: ignoreAttached})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	target, err := eng.Resolve(ctx, pushFresh(b), nil)
	if err == nil {
		_, err = eng.Scan(ctx, target, nil, scan.Foreground)
	}
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.ResetTimer()
	return eng
}

func benchScan(b *testing.B, eng *scan.Engine) {
	b.SetBytes(benchWire)
	var packages, files int
	for range b.N {
		b.StopTimer()
		ref := pushFresh(b)
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		target, err := eng.Resolve(ctx, ref, nil)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := eng.Scan(ctx, target, nil, scan.Foreground)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		packages, files = rec.PackageCount, len(rec.Inventories[0].Files)
	}
	if packages < benchPackages {
		b.Fatalf("scan found %d packages, want at least %d", packages, benchPackages)
	}
	b.ReportMetric(float64(packages), "packages")
	b.ReportMetric(float64(files), "files")
}

func pullAll(b *testing.B, ref string) {
	b.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		b.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		b.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(layers))
	for _, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := l.Uncompressed()
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			if _, err := io.Copy(io.Discard, rc); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
