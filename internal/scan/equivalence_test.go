package scan_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/test/memwatch"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

var (
	wholeOnce   sync.Once
	wholeEngine *scan.Engine
)

// whole is an engine that scans with syft over the whole squashed image: the reference the
// per-layer engine is held to.
func whole(t testing.TB) *scan.Engine {
	wholeOnce.Do(func() { wholeEngine = newEngine(t, scan.Options{WholeImage: true, TempDir: os.Getenv("TMPDIR")}) })
	return wholeEngine
}

// equivalenceImages are every image the tests build, and the layer stackings a per-layer merge
// can get wrong.
func equivalenceImages(t *testing.T) map[string]func() (v1.Image, error) {
	kesl := ti.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: ti.KasperskyMaintainer}
	bash := ti.Deb{Name: "bash", Version: "5.2.15-2+b2", Maintainer: "Matthias Klose <doko@debian.org>"}
	jar := must[ti.File](t)(ti.Jar("/app/lib/kav-sdk-1.2.jar", "com.kaspersky.sdk", "kav-sdk", "1.2",
		map[string]string{"Implementation-Vendor": "AO Kaspersky Lab"}))
	rpmdb := must[ti.File](t)(ti.RPMDB())
	apkKesl := ti.Apk{Name: "kesl", Version: "12.1.0-r0", Maintainer: "Kaspersky Lab <support@kaspersky.com>"}
	musl := ti.Apk{Name: "musl", Version: "1.2.5-r0", Maintainer: "Timo Teräs <timo.teras@iki.fi>"}
	statusD := func(d ti.Deb) ti.File {
		f := ti.DpkgStatus(d)
		f.Path = "/var/lib/dpkg/status.d/" + d.Name
		return f
	}
	layers := func(groups ...[]ti.File) func() (v1.Image, error) {
		return func() (v1.Image, error) { return ti.FromFiles(groups...) }
	}
	imgs := map[string]func() (v1.Image, error){
		"clean":          ti.Clean,
		"kesl deb":       ti.KasperskyEndpoint,
		"scan engine":    ti.KasperskyScanEngine,
		"checkmarx kics": ti.CheckmarxKICS,
		"kesl removed":   ti.KasperskyRemoved,
		"rpmdb":          ti.RedHatWithKESL,
		"synthetic":      func() (v1.Image, error) { return ti.Synthetic(120, 2<<20, 7) },
		"npm, python, jar": layers(append(ti.PythonDist("kl-threat-feed", "1.0.0", "AO Kaspersky Lab", "feed"),
			ti.NpmPackage("@kaspersky/kav-client", "3.1.0", "Kaspersky Lab <dev@kaspersky.com>", "client"), jar)),
		"apk": layers([]ti.File{ti.OSRelease("alpine", "3.20"), ti.ApkInstalled(apkKesl, musl)}),
		"hostile paths": layers([]ti.File{
			{Path: "../../../../tmp/embargo-escape", Content: []byte("x")},
			{Path: "/opt/../opt/kaspersky/../kaspersky/x", Content: []byte("x")},
			{Path: "/loop/a", Type: tar.TypeSymlink, Linkname: "/loop/b"},
			{Path: "/loop/b", Type: tar.TypeSymlink, Linkname: "/loop/a"},
			{Path: "/root-link", Type: tar.TypeSymlink, Linkname: "/"},
		}),
		"whiteout of a file and of a directory": layers(
			[]ti.File{ti.OSRelease("debian", "12"), {Path: "/opt/kaspersky/a", Content: []byte("a")}, {Path: "/opt/kaspersky/sub/b", Content: []byte("b")}, jar},
			[]ti.File{ti.Whiteout("/opt/kaspersky/sub"), ti.Whiteout("/app/lib/kav-sdk-1.2.jar")},
		),
		"opaque directory": layers(
			[]ti.File{{Path: "/opt/kaspersky/a", Content: []byte("a")}, {Path: "/opt/other/b", Content: []byte("b")}},
			[]ti.File{{Path: "/opt/.wh..wh..opq"}, {Path: "/opt/new", Content: []byte("n")}},
		),
		"distroless status.d": layers(
			[]ti.File{ti.OSRelease("debian", "12"), statusD(bash)},
			[]ti.File{statusD(kesl)},
		),
		"dpkg status rewritten: kesl added, then dropped": layers(
			[]ti.File{ti.OSRelease("debian", "12"), ti.DpkgStatus(bash)},
			[]ti.File{ti.DpkgStatus(bash, kesl), ti.DpkgFiles("kesl", "/opt/kaspersky/kesl/bin/kesl-control")},
			[]ti.File{ti.DpkgStatus(bash)},
		),
		"dpkg status in one layer, its files in another": layers(
			[]ti.File{ti.OSRelease("debian", "12"), ti.DpkgFiles("kesl", "/opt/kaspersky/kesl/bin/kesl-control"), {Path: "/opt/kaspersky/kesl/bin/kesl-control", Content: []byte("x")}},
			[]ti.File{ti.DpkgStatus(bash, kesl)},
		),
		"os-release a symlink, distro from a lower layer": layers(
			[]ti.File{{Path: "/usr/lib/os-release", Content: []byte("ID=debian\nVERSION_ID=\"12\"\n")}, {Path: "/etc/os-release", Type: tar.TypeSymlink, Linkname: "../usr/lib/os-release"}},
			[]ti.File{ti.DpkgStatus(bash, kesl)},
		),
		"distro changed by a later layer": layers(
			[]ti.File{ti.OSRelease("debian", "11"), ti.DpkgStatus(bash, kesl)},
			[]ti.File{ti.OSRelease("debian", "12")},
		),
		"rpmdb rewritten without kesl": layers(
			[]ti.File{ti.OSRelease("rhel", "9.4"), rpmdb},
			[]ti.File{{Path: rpmdb.Path, Content: []byte("not a database any more")}},
		),
		"rpmdb deleted": layers(
			[]ti.File{ti.OSRelease("rhel", "9.4"), rpmdb},
			[]ti.File{ti.Whiteout("/var/lib/rpm")},
		),
		"apk db rewritten": layers(
			[]ti.File{ti.OSRelease("alpine", "3.20"), ti.ApkInstalled(musl)},
			[]ti.File{ti.ApkInstalled(musl, apkKesl)},
			[]ti.File{ti.ApkInstalled(musl)},
		),
		"zstd layer": func() (v1.Image, error) {
			return ti.Image(nil, must[v1.Layer](t)(tarLayer(true, nil, ti.OSRelease("debian", "12"), ti.DpkgStatus(bash, kesl), jar)))
		},
		"uncompressed layer": func() (v1.Image, error) {
			return ti.Image(nil, must[v1.Layer](t)(tarLayer(false, nil, ti.OSRelease("debian", "12"), ti.DpkgStatus(bash, kesl), jar)))
		},
		"file replaced by a directory and back": layers(
			[]ti.File{{Path: "/opt/kaspersky", Content: []byte("a file")}},
			[]ti.File{{Path: "/opt/kaspersky/x", Content: []byte("x")}},
			[]ti.File{ti.Whiteout("/opt/kaspersky"), {Path: "/opt/kaspersky", Type: tar.TypeSymlink, Linkname: "/tmp"}},
		),
	}
	return imgs
}

// TestPerLayerEquivalence scans every image both ways, whole-image syft and per-layer merge,
// and requires the same inventory and the same findings.
func TestPerLayerEquivalence(t *testing.T) {
	t.Parallel()
	everyone := compile(t, customVendor("Anyone", v1alpha1.VendorRules{Suppliers: []string{"."}, Paths: []string{"/**"}}))
	kaspersky := compile(t, policy.Default())
	for name, build := range equivalenceImages(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ref := push(t, "equivalence/"+repoName(name), must[v1.Image](t)(build()))
			want, err := scanImage(t, whole(t), ref, nil)
			if err != nil {
				t.Fatalf("whole image: %v", err)
			}
			got, err := scanImage(t, engine, ref, nil)
			if err != nil {
				t.Fatalf("per layer: %v", err)
			}
			if diff := gocmp.Diff(normalize(want), normalize(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("inventory (-whole +per-layer):\n%s", diff)
			}
			for pname, p := range map[string]*policy.Compiled{"kaspersky": kaspersky, "everyone": everyone} {
				if diff := gocmp.Diff(p.Match(want), p.Match(got), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s findings (-whole +per-layer):\n%s", pname, diff)
				}
			}
		})
	}
}

// tarLayer is a layer of files compressed with zstd, or left uncompressed, with trailer bytes
// after the tar's end-of-archive blocks (what a tar parser never reads).
func tarLayer(zstd bool, trailer []byte, files ...ti.File) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := ti.WriteTar(&buf, files...); err != nil {
		return nil, err
	}
	buf.Write(trailer)
	data := buf.Bytes()
	if !zstd {
		return static.NewLayer(data, types.OCIUncompressedLayer), nil
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
}

// normalize sorts what has no meaningful order.
func normalize(invs []match.Inventory) []match.Inventory {
	out := slices.Clone(invs)
	for i := range out {
		ps := slices.Clone(out[i].Packages)
		slices.SortFunc(ps, func(a, b match.Package) int {
			return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version),
				cmp.Compare(a.Layer, b.Layer), cmp.Compare(a.PURL, b.PURL))
		})
		out[i].Packages = ps
	}
	return out
}

// TestLayerCache: a new image on known layers fetches only its new layer; a fresh process with
// the same cache directory fetches none; corrupt entries are rescanned, never trusted.
func TestLayerCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))
	extra := must[v1.Layer](t)(ti.Layer(ti.File{Path: "/etc/app.conf", Content: []byte("x")}))
	app := must[v1.Image](t)(mutate.AppendLayers(base, extra))
	baseRef := push(t, "layercache/base", base)
	appRef := push(t, "layercache/app", app)
	layers := len(must[[]v1.Layer](t)(base.Layers()))
	kaspersky := compile(t, policy.Default())

	first := newEngine(t, scan.Options{LayerCacheDir: dir})
	want := must[[]match.Inventory](t)(scanImage(t, first, baseRef, nil))
	if n := reg.BlobGets("layercache/base"); n != layers+1 {
		t.Fatalf("cold scan: %d blob GETs, want %d layers + the config", n, layers)
	}
	appInv := must[[]match.Inventory](t)(scanImage(t, first, appRef, nil))
	if n := reg.BlobGets("layercache/app"); n != 2 {
		t.Errorf("image on cached layers: %d blob GETs, want 2 (its config and its new layer)", n)
	}
	if diff := gocmp.Diff(kaspersky.Match(want), kaspersky.Match(appInv)); diff != "" {
		t.Errorf("findings differ with one more harmless layer (-base +app):\n%s", diff)
	}

	// a fresh process answers from the directory
	before := reg.BlobGets("layercache/base")
	got := must[[]match.Inventory](t)(scanImage(t, newEngine(t, scan.Options{LayerCacheDir: dir}), baseRef, nil))
	if n := reg.BlobGets("layercache/base") - before; n != 1 {
		t.Errorf("fresh engine, warm directory: %d blob GETs, want 1 (the config)", n)
	}
	if diff := gocmp.Diff(normalize(want), normalize(got), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("inventory from the cache differs (-scanned +cached):\n%s", diff)
	}

	// every entry truncated: all layers are fetched and analysed again, with the same result
	entries := must[[]string](t)(filepath.Glob(filepath.Join(dir, "*.entry")))
	if len(entries) == 0 {
		t.Fatal("no cache entries on disk")
	}
	for _, e := range entries {
		fi := must[os.FileInfo](t)(os.Stat(e))
		if err := os.Truncate(e, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	before = reg.BlobGets("layercache/base")
	got = must[[]match.Inventory](t)(scanImage(t, newEngine(t, scan.Options{LayerCacheDir: dir}), baseRef, nil))
	if n := reg.BlobGets("layercache/base") - before; n != layers+1 {
		t.Errorf("corrupt cache: %d blob GETs, want %d (every layer again)", n, layers+1)
	}
	if diff := gocmp.Diff(normalize(want), normalize(got), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("inventory after corrupt cache differs:\n%s", diff)
	}
}

// TestLayerDigestChecked: a layer blob altered after the tar's end (bytes no tar parser reads)
// fails its digest check, and nothing of it is cached under the digest it claims.
func TestLayerDigestChecked(t *testing.T) {
	t.Parallel()
	kesl := ti.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: ti.KasperskyMaintainer}
	layer := must[v1.Layer](t)(tarLayer(false, make([]byte, 4096), ti.OSRelease("debian", "12"), ti.DpkgStatus(kesl), ti.File{Path: "/etc/" + t.Name()}))
	push(t, "tampered", must[v1.Image](t)(ti.Image(nil, layer)))
	digest := must[v1.Hash](t)(layer.Digest()).String()

	// a registry in front of reg that alters the last byte of that blob
	upstream := must[*url.URL](t)(url.Parse("http://" + reg.Host))
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+digest) || resp.StatusCode != http.StatusOK {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		data[len(data)-1] = 'x' // in the trailer: the tar still parses the same
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)

	cacheDir := t.TempDir()
	e := newEngine(t, scan.Options{LayerCacheDir: cacheDir})
	ref := strings.TrimPrefix(srv.URL, "http://") + "/tampered:1"
	if _, err := scanImage(t, e, ref, nil); err == nil || !strings.Contains(err.Error(), "error verifying sha256 checksum") {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.entry")); len(entries) != 0 {
		t.Errorf("%d cache entries written for a layer that failed its digest check", len(entries))
	}
	// the untouched blob from the registry itself scans
	if _, err := scanImage(t, e, reg.Ref("tampered:1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestDistroIndependentLayersReused: a layer without OS package databases (a jar, a python
// dist, an npm package) is analysed once and reused under another distro; a layer with a dpkg
// database is cataloged again under the new distro. Each image is held to a whole-image scan.
func TestDistroIndependentLayersReused(t *testing.T) {
	t.Parallel()
	bash := ti.Deb{Name: "bash", Version: "5.2.15-2+b2", Maintainer: "Matthias Klose <doko@debian.org>"}
	jar := must[ti.File](t)(ti.Jar("/app/lib/kav-sdk-1.2.jar", "com.kaspersky.sdk", "kav-sdk", "1.2",
		map[string]string{"Implementation-Vendor": "AO Kaspersky Lab"}))
	app := must[v1.Layer](t)(ti.Layer(append(ti.PythonDist("kl-threat-feed", "1.0.0", "AO Kaspersky Lab", "feed"),
		ti.NpmPackage("@kaspersky/kav-client", "3.1.0", "Kaspersky Lab <dev@kaspersky.com>", "client"), jar,
		ti.File{Path: "/etc/" + t.Name(), Content: []byte("unique")})...))
	base11 := must[v1.Layer](t)(ti.Layer(ti.OSRelease("debian", "11"), ti.DpkgStatus(bash), ti.File{Path: "/etc/" + t.Name(), Content: []byte("11")}))
	base12 := must[v1.Layer](t)(ti.Layer(ti.OSRelease("debian", "12"), ti.DpkgStatus(bash), ti.File{Path: "/etc/" + t.Name(), Content: []byte("12")}))
	to12 := must[v1.Layer](t)(ti.Layer(ti.OSRelease("debian", "12")))
	images := []struct {
		repo     string
		layers   []v1.Layer
		wantGets int // blobs fetched: the config and the layers not reusable
	}{
		{"distro/debian11", []v1.Layer{base11, app}, 3},
		{"distro/debian12", []v1.Layer{base12, app}, 2},             // app reused under another distro
		{"distro/debian11-to-12", []v1.Layer{base11, app, to12}, 3}, // base11's dpkg database again, under debian 12
	}
	e := newEngine(t, scan.Options{})
	for _, im := range images {
		ref := push(t, im.repo, must[v1.Image](t)(ti.Image(nil, im.layers...)))
		got := must[[]match.Inventory](t)(scanImage(t, e, ref, nil))
		if n := reg.BlobGets(im.repo); n != im.wantGets {
			t.Errorf("%s: %d blob GETs, want %d", im.repo, n, im.wantGets)
		}
		want := must[[]match.Inventory](t)(scanImage(t, whole(t), ref, nil))
		if diff := gocmp.Diff(normalize(want), normalize(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s inventory (-whole +per-layer):\n%s", im.repo, diff)
		}
	}
}

// TestSharedLayerAnalysedOnce: two new images on one new base layer, scanned at once, fetch and
// analyse the base once; the second scan waits for the first and reads its result.
func TestSharedLayerAnalysedOnce(t *testing.T) {
	t.Parallel()
	base := must[v1.Layer](t)(ti.Layer(ti.OSRelease("debian", "12"), ti.DpkgStatus(ti.Deb{Name: "bash", Version: "5.2", Maintainer: "Debian"}),
		ti.File{Path: "/etc/" + t.Name(), Content: make([]byte, 4<<20)}))
	e := newEngine(t, scan.Options{MaxConcurrent: 2})
	repos := []string{"shared/app-a", "shared/app-b"}
	refs := make([]string, len(repos))
	for i, repo := range repos {
		app := must[v1.Layer](t)(ti.Layer(ti.File{Path: "/app/" + repo, Content: []byte(repo)}))
		refs[i] = push(t, repo, must[v1.Image](t)(ti.Image(nil, base, app)))
	}
	before := reg.BlobGets(repos[0]) + reg.BlobGets(repos[1])
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	for i, ref := range refs {
		wg.Go(func() { _, errs[i] = scanImage(t, e, ref, nil) })
	}
	wg.Wait()
	layers := -before
	for i, repo := range repos {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		layers += reg.BlobGets(repo) - 1 // one config each
	}
	if layers != 3 {
		t.Errorf("%d layer fetches for the two images, want 3 (the shared base once, each app layer)", layers)
	}
}

// TestFileCountLimit: an image of a million empty files, far under the byte limit, is refused as
// TooLarge with a message naming the limit, and the refusal stays within bounded memory. Not
// parallel: the heap it samples is then its own.
func TestFileCountLimit(t *testing.T) {
	img := must[v1.Image](t)(ti.ManyFiles(1_000_000))
	ref := push(t, "limits/million-files", img)

	stopWatch := memwatch.Start(20 * time.Millisecond)
	e := newEngine(t, scan.Options{NoLayerCache: true})
	_, err := scanImage(t, e, ref, nil)
	peak, _ := stopWatch()
	if !errors.Is(err, registry.ErrTooLarge) {
		t.Fatalf("err = %v, want TooLarge", err)
	}
	if want := fmt.Sprintf("more than %d files", scan.DefaultMaxImageFiles); !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not say %q", err, want)
	}
	t.Logf("peak heap in use while refusing a 1,000,000-file image: %d MiB", peak>>20)
	if peak > 512<<20 {
		t.Errorf("peak heap %d MiB, want under 512 MiB", peak>>20)
	}

	// under a raised limit the same kind of image is scanned, every file listed
	small := must[v1.Image](t)(ti.ManyFiles(20_000))
	invs, err := scanImage(t, newEngine(t, scan.Options{MaxImageFiles: 30_000}), push(t, "limits/twenty-thousand", small), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs[0].Files) != 20_000 {
		t.Errorf("listed %d files, want 20000", len(invs[0].Files))
	}
	if _, err := scanImage(t, newEngine(t, scan.Options{MaxImageFiles: 10_000}), push(t, "limits/twenty-thousand", small), nil); !errors.Is(err, registry.ErrTooLarge) {
		t.Errorf("20,000 files under a 10,000 limit: err = %v, want TooLarge", err)
	}
}
