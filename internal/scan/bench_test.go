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
	b.Run("scan", func(b *testing.B) { benchScan(b, warmEngine(b, scan.Options{})) })
	b.Run("scan-attachments-off", func(b *testing.B) { benchScan(b, warmEngine(b, scan.Options{IgnoreAttached: true})) })
}

// BenchmarkAttachedOverhead measures what reading attached SBOMs costs a scan of an image that
// has none: a two-platform index of the synthetic image (no attestations, referrers or cosign
// tags), on the tag-schema registry. Every iteration pushes that content twice under new digests
// (so no record cache answers) and scans one copy with an engine that reads attachments (what
// every VendorPolicy's scan does; spec.sbom.attached: Ignore changes the matching only) and the
// other with one that skips them (IgnoreAttached, the scan as it was before attachments were
// read), in alternating order. Reported: each side's time per scan, their ratio, and the extra
// registry requests per scan (counted by the registry's handler, GET /v2/ pings included). "layer-cached": both engines
// keep layer results, as the manager does, so a scan pulls manifests and the one new layer and
// the attachments' share is largest; "cold": no layer cache, every layer is pulled and analysed.
func BenchmarkAttachedOverhead(b *testing.B) {
	syntheticImage(b)
	for _, c := range []struct {
		name         string
		noLayerCache bool
	}{{"layer-cached", false}, {"cold", true}} {
		noLayerCache := c.noLayerCache
		b.Run(c.name, func(b *testing.B) {
			engines := [2]*scan.Engine{
				warmEngine(b, scan.Options{NoLayerCache: noLayerCache}),
				warmEngine(b, scan.Options{NoLayerCache: noLayerCache, IgnoreAttached: true}),
			}
			repos := [2]string{"bench/attached-evidence", "bench/attached-ignore"}
			var took [2]time.Duration
			var requests [2]int
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				refs := [2]string{pushFreshIndex(b, repos[0]), pushFreshIndex(b, repos[1])}
				b.StartTimer()
				for _, k := range [2][2]int{{0, 1}, {1, 0}}[i%2] {
					before, pings := reg.Requests(repos[k]), reg.Pings()
					start := time.Now()
					scanRef(b, engines[k], refs[k])
					took[k] += time.Since(start)
					requests[k] += reg.Requests(repos[k]) - before + reg.Pings() - pings
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(took[0].Nanoseconds())/n, "evidence-ns/scan")
			b.ReportMetric(float64(took[1].Nanoseconds())/n, "ignore-ns/scan")
			b.ReportMetric(float64(took[0])/float64(took[1]), "ratio")
			b.ReportMetric(float64(requests[0])/n, "evidence-requests/scan")
			b.ReportMetric(float64(requests[0]-requests[1])/n, "extra-requests/scan")
		})
	}
}

// pushFreshIndex pushes, as repo:<n>, an index of the benchmark image with one more tiny layer
// for linux/amd64 and linux/arm64 (the same layers): new to every cache but the layer cache.
func pushFreshIndex(b *testing.B, repo string) string {
	b.Helper()
	n := benchSeq.Add(1)
	l, err := ti.Layer(ti.File{Path: "/etc/embargo-bench", Content: fmt.Appendf(nil, "%d\n", n)})
	if err != nil {
		b.Fatal(err)
	}
	layers, err := syntheticImage(b).Layers()
	if err != nil {
		b.Fatal(err)
	}
	layers = append(layers, l)
	var imgs []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := ti.Image(&v1.Platform{OS: "linux", Architecture: arch}, layers...)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx, err := ti.Index(imgs...)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := reg.PushIndex(fmt.Sprintf("%s:%d", repo, n), idx)
	if err != nil {
		b.Fatal(err)
	}
	return ref
}

func scanRef(b *testing.B, eng *scan.Engine, ref string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	target, err := eng.Resolve(ctx, ref, nil)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := eng.Scan(ctx, target, nil, scan.Foreground)
	if err != nil {
		b.Fatal(err)
	}
	if len(rec.Platforms) != 2 || rec.PackageCount < 2*benchPackages {
		b.Fatalf("scan of %s: platforms %v, %d packages, want 2 platforms of %d", ref, rec.Platforms, rec.PackageCount, benchPackages)
	}
}

// warmEngine returns a new engine that has done one scan: a new engine builds syft's license
// scanner on its first.
func warmEngine(b *testing.B, opts scan.Options) *scan.Engine {
	b.Helper()
	opts.TempDir = os.Getenv("TMPDIR")
	eng, err := scan.New(opts)
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
