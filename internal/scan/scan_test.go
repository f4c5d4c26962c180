package scan_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

var (
	reg    *ti.Registry
	engine *scan.Engine
)

func TestMain(m *testing.M) {
	var err error
	reg, err = ti.NewRegistry()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	engine, err = scan.New(scan.Options{TempDir: os.Getenv("TMPDIR")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	reg.Close()
	os.Exit(code)
}

// push stores img under a repository unique to the test and returns its tag reference.
func push(t testing.TB, repo string, img v1.Image) string {
	t.Helper()
	if _, err := reg.Push(repo+":1", img); err != nil {
		t.Fatal(err)
	}
	return reg.Ref(repo + ":1")
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func compile(t testing.TB, p *v1alpha1.VendorPolicy) *policy.Compiled {
	t.Helper()
	c, err := policy.Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func scanImage(t testing.TB, e *scan.Engine, image string, kc authn.Keychain) ([]match.Inventory, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	target, err := e.Resolve(ctx, image, kc)
	if err != nil {
		return nil, err
	}
	rec, err := e.Scan(ctx, target, kc, scan.Foreground)
	if err != nil {
		return nil, err
	}
	return rec.Inventories, nil
}

// summary renders findings as "platform|vendor|package|rule|field" lines for comparison.
func summary(fs []match.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s", f.Platform, f.Vendor, f.Package.String(), f.Rule(), f.Evidence[0].Field))
	}
	return out
}

var nonRepo = regexp.MustCompile(`[^a-z0-9]+`)

// repoName turns a test case name into a repository name.
func repoName(s string) string {
	return strings.Trim(nonRepo.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// unique gives img a digest no other test has, so the engine's cache cannot answer for it.
func unique(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	l := must[v1.Layer](t)(ti.Layer(ti.File{Path: "/etc/embargo-test", Content: []byte(t.Name())}))
	return must[v1.Image](t)(mutate.AppendLayers(img, l))
}

func layerDigest(t testing.TB, img v1.Image, i int) string {
	t.Helper()
	ls := must[[]v1.Layer](t)(img.Layers())
	return must[v1.Hash](t)(ls[i].Digest()).String()
}

func customVendor(name string, rules v1alpha1.VendorRules) *v1alpha1.VendorPolicy {
	return &v1alpha1.VendorPolicy{Spec: v1alpha1.VendorPolicySpec{
		Vendors: []v1alpha1.VendorSelector{{Name: name, Rules: &rules}},
	}}
}

// TestFindings scans real images through the registry and checks every rule kind against
// positives and look-alikes: precision matters as much as recall.
func TestFindings(t *testing.T) {
	t.Parallel()
	kaspersky := compile(t, policy.Default())
	const amd = "linux/amd64"
	const kl = "AO Kaspersky Lab"

	jar := must[ti.File](t)(ti.Jar("/app/lib/kav-sdk-1.2.jar", "com.kaspersky.sdk", "kav-sdk", "1.2",
		map[string]string{"Implementation-Vendor": "AO Kaspersky Lab", "Implementation-Title": "KAV SDK"}))
	lookalikeJar := must[ti.File](t)(ti.Jar("/app/lib/antivirus-compare-2.0.jar", "org.example", "antivirus-compare", "2.0",
		map[string]string{"Implementation-Vendor": "Example Org", "Implementation-Title": "Compares Kaspersky, ESET and others"}))
	rpmdb := must[ti.File](t)(ti.RPMDB())

	cases := map[string]struct {
		image  func() (v1.Image, error)
		policy *policy.Compiled
		want   []string
	}{
		"clean debian": {image: ti.Clean, policy: kaspersky},
		"kesl deb with files under /opt and /etc/opt": {
			image:  ti.KasperskyEndpoint,
			policy: kaspersky,
			want: []string{
				amd + "|" + kl + "||path|path /etc/opt/kaspersky/**",
				amd + "|" + kl + "||path|path /opt/kaspersky/**",
				amd + "|" + kl + "|kesl 12.1.0-1187|supplier|dpkg Maintainer",
			},
		},
		"scan engine tarball install, no package record": {
			image:  ti.KasperskyScanEngine,
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "||path|path /opt/kaspersky/**"},
		},
		"checkmarx kics is not kaspersky kics": {image: ti.CheckmarxKICS, policy: kaspersky},
		"kesl removed by a later layer":        {image: ti.KasperskyRemoved, policy: kaspersky},
		"rpmdb: kesl by vendor, look-alike and bash clean": {
			image:  ti.RedHatWithKESL,
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "|kesl 12.1.0.1187-1|supplier|rpm Vendor"},
		},
		"npm scope @kaspersky, and an unofficial client by another author": {
			image: func() (v1.Image, error) {
				return ti.FromFiles([]ti.File{
					ti.NpmPackage("@kaspersky/kav-client", "3.1.0", "Kaspersky Lab <dev@kaspersky.com>", "client"),
					ti.NpmPackage("kaspersky-unofficial", "0.4.0", "Jane Doe <jane@example.org>", "Unofficial client for Kaspersky Security Center"),
				})
			},
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "|@kaspersky/kav-client 3.1.0|supplier|npm author"},
		},
		"python: kaspersky author, and a person named Kasper": {
			image: func() (v1.Image, error) {
				files := ti.PythonDist("kl-threat-feed", "1.0.0", "AO Kaspersky Lab", "Threat feed client")
				files = append(files, ti.PythonDist("kasper-utils", "2.3.0", "Kasper Hansen", "Utilities; mentions Kaspersky in passing")...)
				return ti.FromFiles(files)
			},
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "|kl-threat-feed 1.0.0|supplier|python Author"},
		},
		"java archive: manifest vendor and maven group; look-alike description": {
			image:  func() (v1.Image, error) { return ti.FromFiles([]ti.File{jar, lookalikeJar}) },
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "|kav-sdk 1.2|supplier|java Implementation-Vendor"},
		},
		"apk maintainer": {
			image: func() (v1.Image, error) {
				return ti.FromFiles([]ti.File{ti.OSRelease("alpine", "3.20"), ti.ApkInstalled(
					ti.Apk{Name: "kesl", Version: "12.1.0-r0", Maintainer: "Kaspersky Lab <support@kaspersky.com>"},
					ti.Apk{Name: "musl", Version: "1.2.5-r0", Maintainer: "Timo Teräs <timo.teras@iki.fi>"},
				)})
			},
			policy: kaspersky,
			want:   []string{amd + "|" + kl + "|kesl 12.1.0-r0|supplier|apk Maintainer"},
		},
		"custom vendor: package glob, collision-prone name needs corroboration": {
			image: func() (v1.Image, error) {
				return ti.FromFiles([]ti.File{ti.DpkgStatus(
					ti.Deb{Name: "acme-agent", Version: "1.0", Maintainer: "Someone <a@b.c>"},
					ti.Deb{Name: "scan", Version: "2.0", Maintainer: "Other Corp <x@y.z>"},
				)})
			},
			policy: compile(t, customVendor("Acme", v1alpha1.VendorRules{
				Packages:  []v1alpha1.PackageRule{{Type: "deb", Name: "acme-*"}, {Type: "deb", Name: "scan", Requires: []v1alpha1.Corroboration{v1alpha1.CorroborationSupplier}}},
				Suppliers: []string{"Acme( Inc\\.)?"},
			})),
			want: []string{amd + "|Acme|acme-agent 1.0|package|deb package name"},
		},
		"rpm look-alike named after kaspersky by custom supplier rule does not match": {
			image:  func() (v1.Image, error) { return ti.FromFiles([]ti.File{ti.OSRelease("rhel", "9.4"), rpmdb}) },
			policy: compile(t, customVendor("Jane", v1alpha1.VendorRules{Suppliers: []string{"Jane Doe"}})),
			want:   []string{amd + "|Jane|kaspersky-compare 1.0-1|supplier|rpm Vendor"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img := must[v1.Image](t)(tc.image())
			ref := push(t, "findings/"+repoName(name), img)
			invs, err := scanImage(t, engine, ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := summary(tc.policy.Match(invs))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("findings:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

// TestEvidenceNamesLayer checks that a finding names the layer that introduced it.
func TestEvidenceNamesLayer(t *testing.T) {
	t.Parallel()
	img := must[v1.Image](t)(ti.KasperskyScanEngine())
	ref := push(t, "evidence/scanengine", img)
	invs, err := scanImage(t, engine, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := compile(t, policy.Default()).Match(invs)
	if len(fs) != 1 {
		t.Fatalf("want 1 finding, got %v", summary(fs))
	}
	if want := layerDigest(t, img, 1); fs[0].Layer != want {
		t.Errorf("layer = %s, want the second layer %s", fs[0].Layer, want)
	}
	if v := fs[0].Evidence[0].Value; !strings.HasPrefix(v, "/opt/kaspersky/ScanEngine/bin/kavehost") || !strings.Contains(v, "2 more files") {
		t.Errorf("evidence value = %q", v)
	}
}

// TestIndexPlatforms scans every platform of an index and names the platform in a finding.
func TestIndexPlatforms(t *testing.T) {
	t.Parallel()
	clean := must[v1.Image](t)(ti.Clean())
	kesl := must[v1.Image](t)(ti.KasperskyEndpoint())
	arm := must[v1.Image](t)(ti.Image(&v1.Platform{OS: "linux", Architecture: "arm64"}, must[[]v1.Layer](t)(kesl.Layers())...))
	idx := must[v1.ImageIndex](t)(ti.Index(clean, arm))
	if _, err := reg.PushIndex("index/multi:1", idx); err != nil {
		t.Fatal(err)
	}
	invs, err := scanImage(t, engine, reg.Ref("index/multi:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 2 {
		t.Fatalf("want 2 platform inventories, got %d", len(invs))
	}
	fs := compile(t, policy.Default()).Match(invs)
	for _, f := range fs {
		if f.Platform != "linux/arm64" {
			t.Errorf("finding on %s, want only linux/arm64: %v", f.Platform, summary(fs))
		}
	}
	if len(fs) == 0 {
		t.Error("no finding on linux/arm64")
	}

	// a platform-restricted engine scans only what it is asked for
	amdOnly := newEngine(t, scan.Options{Platforms: []string{"linux/amd64"}})
	invs, err = scanImage(t, amdOnly, reg.Ref("index/multi:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 1 || invs[0].Platform != "linux/amd64" {
		t.Fatalf("platform filter: got %d inventories", len(invs))
	}
	if fs := compile(t, policy.Default()).Match(invs); len(fs) != 0 {
		t.Errorf("amd64 is clean, got %v", summary(fs))
	}
}

func newEngine(t testing.TB, opts scan.Options) *scan.Engine {
	t.Helper()
	e, err := scan.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGoBinary catalogs a real Go binary built here, matched by module path.
func TestGoBinary(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	dir := t.TempDir()
	must[struct{}](t)(struct{}{}, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/kav/agent\n\ngo 1.22\n"), 0o644))
	must[struct{}](t)(struct{}{}, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"agent\") }\n"), 0o644))
	cmd := exec.Command("go", "build", "-trimpath", "-o", "agent", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin := must[[]byte](t)(os.ReadFile(filepath.Join(dir, "agent")))
	img := must[v1.Image](t)(ti.FromFiles([]ti.File{{Path: "/usr/local/bin/agent", Content: bin, Mode: 0o755}}))
	invs, err := scanImage(t, engine, push(t, "gobinary/agent", img), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := compile(t, customVendor("KAV Agent Corp", v1alpha1.VendorRules{PURLs: []string{"pkg:golang/example.com/kav/*"}}))
	got := summary(p.Match(invs))
	if len(got) != 1 || !strings.Contains(got[0], "|example.com/kav/agent") || !strings.Contains(got[0], "|purl|") {
		t.Errorf("got %q", got)
	}
}

// TestHostileLayers feeds layers an attacker might craft: the scan must end, say what it found,
// and never write outside its temp dir or exhaust the disk.
func TestHostileLayers(t *testing.T) {
	t.Parallel()
	small := newEngine(t, scan.Options{Registry: registry.Options{MaxImageBytes: 2 << 20}})
	zeros := make([]byte, 8<<20) // compresses to a few KiB, unpacks to 8 MiB
	cases := map[string]struct {
		files    []ti.File
		wantKind registry.Kind
		wantPath bool
	}{
		"path traversal entries": {files: []ti.File{
			{Path: "../../../../tmp/embargo-escape", Content: []byte("x")},
			{Path: "/opt/../opt/kaspersky/../kaspersky/x", Content: []byte("x")},
		}, wantPath: true},
		"symlink loop": {files: []ti.File{
			{Path: "/loop/a", Type: tar.TypeSymlink, Linkname: "/loop/b"},
			{Path: "/loop/b", Type: tar.TypeSymlink, Linkname: "/loop/a"},
			{Path: "/opt/kaspersky", Type: tar.TypeSymlink, Linkname: "/opt/kaspersky"},
			{Path: "/root-link", Type: tar.TypeSymlink, Linkname: "/"},
		}, wantPath: true},
		"decompression bomb": {files: []ti.File{{Path: "/zeros", Content: zeros}}, wantKind: registry.KindTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img := must[v1.Image](t)(ti.FromFiles(tc.files))
			ref := push(t, "hostile/"+repoName(name), img)
			invs, err := scanImage(t, small, ref, nil)
			if tc.wantKind != "" {
				if registry.KindOf(err) != tc.wantKind {
					t.Fatalf("err = %v, want kind %s", err, tc.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fs := compile(t, policy.Default()).Match(invs)
			if tc.wantPath && len(fs) == 0 {
				t.Errorf("want a path finding under /opt/kaspersky, got none; files: %v", invs[0].Files)
			}
		})
	}
	if _, err := os.Stat("/tmp/embargo-escape"); err == nil {
		t.Error("a layer wrote outside the scan's temp dir")
	}
}

// TestRegistryErrors checks the typed errors the webhook and the audit decide retries with.
func TestRegistryErrors(t *testing.T) {
	t.Parallel()
	private, err := ti.NewRegistry(ti.WithBasicAuth("ci", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close()
	img := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))
	if _, err := private.Push("team/kesl:1", img); err != nil {
		t.Fatal(err)
	}
	ref := private.Ref("team/kesl:1")

	if _, err := scanImage(t, engine, ref, nil); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("no credentials: err = %v, want Unauthorized", err)
	}
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "s3cret"})}
	invs, err := scanImage(t, engine, ref, kc)
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	if len(compile(t, policy.Default()).Match(invs)) == 0 {
		t.Error("private image: no findings")
	}
	if _, err := scanImage(t, engine, reg.Ref("nothing/here:1"), nil); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing image: err = %v, want NotFound", err)
	}
	if _, err := scanImage(t, engine, "127.0.0.1:1/closed:1", nil); registry.KindOf(err) != registry.KindUnavailable {
		t.Errorf("closed port: err = %v, want Unavailable", err)
	}
	if _, err := scanImage(t, engine, "UPPER/Case::bad", nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("bad reference: err = %v, want Invalid", err)
	}
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// TestSlowRegistry: a caller's deadline ends its wait, not the scan; the retry is answered from
// the cache without another pull.
func TestSlowRegistry(t *testing.T) {
	t.Parallel()
	slow, err := ti.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	img := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))
	ref := must[string](t)(slow.Push("slow/kesl:1", img))
	slow.SetDelay(1500 * time.Millisecond)

	target, err := engine.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := engine.Scan(ctx, target, nil, scan.Foreground); !errors.Is(err, registry.ErrTimeout) {
		t.Fatalf("err = %v, want Timeout", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := engine.Cached(target.Digest.String()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scan did not finish in the background")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := slow.ManifestGets("slow/kesl")
	if _, err := engine.Scan(context.Background(), target, nil, scan.Foreground); err != nil {
		t.Fatal(err)
	}
	if after := slow.ManifestGets("slow/kesl"); after != before {
		t.Errorf("retry pulled again: %d manifest GETs, then %d", before, after)
	}
}

// TestOneScanPerDigest: concurrent requests for one unseen digest cause one pull.
func TestOneScanPerDigest(t *testing.T) {
	t.Parallel()
	img := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))
	ref := must[string](t)(reg.Push("concurrent/kesl:1", img))
	target, err := engine.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := engine.Scan(context.Background(), target, nil, scan.Foreground)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.ManifestGets("concurrent/kesl"); n != 1 {
		t.Errorf("50 concurrent scans: %d manifest GETs, want 1", n)
	}
}

// TestTempFilesRemoved: a scan leaves nothing behind in its temp dir.
func TestTempFilesRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEngine(t, scan.Options{TempDir: dir})
	img := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))
	if _, err := scanImage(t, e, push(t, "tempfiles/kesl", img), nil); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("temp dir not empty after scan: %v", left)
	}
}

// TestMirrorsAndSelfSignedRegistries: a mirror answers for its origin, and a self-signed HTTPS
// registry is reachable only when listed as insecure.
func TestMirrorsAndSelfSignedRegistries(t *testing.T) {
	t.Parallel()
	img := unique(t, must[v1.Image](t)(ti.KasperskyEndpoint()))

	mirror, err := ti.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()
	if _, err := mirror.Push("team/kesl:1", img); err != nil {
		t.Fatal(err)
	}
	// the origin is a closed port: only the mirror can answer
	const origin = "127.0.0.1:1"
	mirrored := newEngine(t, scan.Options{Registry: registry.Options{Mirrors: map[string][]string{origin: {mirror.Host}}}})
	invs, err := scanImage(t, mirrored, origin+"/team/kesl:1", nil)
	if err != nil {
		t.Fatalf("through the mirror: %v", err)
	}
	if len(compile(t, policy.Default()).Match(invs)) == 0 {
		t.Error("mirrored image: no findings")
	}
	if n := mirror.ManifestGets("team/kesl"); n != 1 {
		t.Errorf("mirror served %d manifest GETs, want 1", n)
	}

	tlsReg, err := ti.NewRegistry(ti.WithTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer tlsReg.Close()
	if _, err := tlsReg.Push("team/kesl:1", img); err != nil {
		t.Fatal(err)
	}
	ref := tlsReg.Ref("team/kesl:1")
	if _, err := scanImage(t, engine, ref, nil); err == nil {
		t.Error("a self-signed registry not listed as insecure was trusted")
	}
	insecure := newEngine(t, scan.Options{Registry: registry.Options{Insecure: []string{tlsReg.Host}}})
	if _, err := scanImage(t, insecure, ref, nil); err != nil {
		t.Errorf("listed as insecure: %v", err)
	}
}
