package cache_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
)

// catalogPaths are the path rules of the built-in catalog: what a record keeps files for when
// no policy adds its own.
func catalogPaths(t testing.TB) []string {
	t.Helper()
	out := catalog.Default().Paths()
	if len(out) == 0 {
		t.Fatal("the catalog has no path rules: the size tests would keep nothing by accident")
	}
	return out
}

// syntheticRecord is a Debian-like inventory of n packages and files files over five layers, as
// syft reports it: a Maintainer field, a purl and two guessed CPEs per package; one package and
// a few files belong to Kaspersky (/opt/kaspersky/...).
func syntheticRecord(packages, files int) *cache.Record {
	rnd := rand.New(rand.NewPCG(1, 2))
	layers := make([]string, 5)
	for i := range layers {
		layers[i] = fmt.Sprintf("sha256:%064x", rnd.Uint64())
	}
	words := []string{"lib", "python3", "perl", "gnome", "x11", "core", "utils", "data", "dev", "common", "tools", "base"}
	maintainers := []string{"Debian QA Group <packages@qa.debian.org>", "Matthias Klose <doko@debian.org>",
		"Debian Perl Group <pkg-perl-maintainers@lists.alioth.debian.org>", "Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>",
		"Debian X Strike Force <debian-x@lists.debian.org>", "Michael Stapelberg <stapelberg@debian.org>"}
	inv := match.Inventory{Platform: "linux/amd64"}
	names := make([]string, packages)
	for i := range packages {
		name := fmt.Sprintf("%s-%s%d", words[rnd.IntN(len(words))], words[rnd.IntN(len(words))], i)
		version := fmt.Sprintf("%d.%d.%d-%d", rnd.IntN(10), rnd.IntN(40), rnd.IntN(100), rnd.IntN(5)+1)
		maint := maintainers[rnd.IntN(len(maintainers))]
		if i == 0 {
			name, version, maint = "kesl", "12.0.0.6672", "AO Kaspersky Lab <support@kaspersky.com>"
		}
		names[i] = name
		inv.Packages = append(inv.Packages, match.Package{
			Name: name, Version: version, Type: "deb",
			PURL:   fmt.Sprintf("pkg:deb/debian/%s@%s?arch=amd64&distro=debian-12", name, version),
			Fields: []match.Field{{Name: "dpkg Maintainer", Value: maint}},
			CPEs:   []match.CPE{{Vendor: name, Product: name}, {Vendor: "debian", Product: name}},
			Layer:  layers[i*len(layers)/packages],
		})
	}
	for i := range files {
		p := fmt.Sprintf("/usr/share/%s/%s/file-%d.%s", names[rnd.IntN(packages)], words[rnd.IntN(len(words))], i, []string{"so", "py", "pm", "txt", "gz"}[rnd.IntN(5)])
		if i < 5 {
			p = fmt.Sprintf("/opt/kaspersky/kesl/bin/kesl-%d", i)
		}
		inv.Files = append(inv.Files, match.File{Path: p, Layer: layers[i*len(layers)/files]})
	}
	return &cache.Record{Digest: "sha256:" + fmt.Sprintf("%064x", 7), Inventories: []match.Inventory{inv}, PackageCount: packages}
}

// TestLeanRecordSize: a 5,000-package, 100,000-file image's stored record fits 128 KiB, and
// re-matches the catalog exactly as the full inventory does.
func TestLeanRecordSize(t *testing.T) {
	full := syntheticRecord(5000, 100000)
	paths := catalogPaths(t)
	lean := full.Trim(paths)

	fullBytes, err := cache.Encode(full)
	if err != nil {
		t.Logf("the full record does not fit at all: %v", err)
	}
	leanBytes, err := cache.Encode(lean)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("IMAGESCAN-SIZE synthetic packages=5000 files=100000 full=%d lean=%d keptFiles=%d", len(fullBytes), len(leanBytes), len(lean.Inventories[0].Files))
	if len(leanBytes) > 128<<10 {
		t.Errorf("lean record is %d bytes, over 128 KiB", len(leanBytes))
	}

	if got := len(lean.Inventories[0].Packages); got != 5000 {
		t.Errorf("lean record kept %d packages, want all 5000", got)
	}
	var vendors []*match.Vendor
	for _, e := range catalog.Default().Entries {
		v, _ := e.Compile()
		vendors = append(vendors, v)
	}
	want := match.Match(full.Inventories[0], vendors)
	got := match.Match(lean.Inventories[0], vendors)
	if len(want) == 0 || !slices.ContainsFunc(want, func(f match.Finding) bool { return f.Rule() == match.RulePath }) {
		t.Fatalf("the synthetic image convicts nothing by path (%d findings): the test proves nothing", len(want))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the lean record matches differently (-full +lean):\n%s", d)
	}

	// what Reconcile reads back is what was trimmed
	back, err := cache.FromImageScan(&v1alpha1.ImageScan{
		Spec:   v1alpha1.ImageScanSpec{Digest: full.Digest},
		Status: v1alpha1.ImageScanStatus{Phase: v1alpha1.ImageScanScanned, Record: leanBytes, PackageCount: 5000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(lean.Inventories, back.Inventories); d != "" || !back.Lean || !slices.Equal(back.PathRules, lean.PathRules) {
		t.Errorf("decoded record differs (lean %v, rules %q): %s", back.Lean, back.PathRules, d)
	}
}

// TestAnswers: a lean record answers the path rules it kept files for and no others; a full
// record (and one stored before lean records existed) answers any.
func TestAnswers(t *testing.T) {
	full := &cache.Record{Inventories: []match.Inventory{{Files: []match.File{{Path: "/opt/acme/bin/agent"}, {Path: "/usr/bin/ls"}}}}}
	lean := full.Trim([]string{"/opt/kaspersky/**", "/opt/kaspersky/**"})
	cases := map[string]struct {
		rec   *cache.Record
		rules []string
		want  bool
	}{
		"full, any rule":           {full, []string{"/opt/acme/**"}, true},
		"lean, its own rules":      {lean, []string{"/opt/kaspersky/**"}, true},
		"lean, no rules":           {lean, nil, true},
		"lean, a new rule":         {lean, []string{"/opt/kaspersky/**", "/opt/acme/**"}, false},
		"lean of nothing, a rule":  {full.Trim(nil), []string{"/opt/kaspersky/**"}, false},
		"lean of nothing, nothing": {full.Trim(nil), nil, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.rec.Answers(tc.rules); got != tc.want {
				t.Errorf("Answers(%q) = %v, want %v", tc.rules, got, tc.want)
			}
		})
	}
	if n := len(lean.Inventories[0].Files); n != 0 {
		t.Errorf("lean record kept %d files no rule matches", n)
	}
	if kept := full.Trim([]string{"/opt/acme/**"}).Inventories[0].Files; len(kept) != 1 || kept[0].Path != "/opt/acme/bin/agent" {
		t.Errorf("kept %v, want the one file the rule matches", kept)
	}
	if len(full.Inventories[0].Files) != 2 {
		t.Error("Trim changed the record it was called on")
	}
}

// FuzzRecordRoundTrip: whatever a package's name, version, purl and CPEs, the stored form
// decodes to the record encoded.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add("adwaita-icon-theme", "43-1", "pkg:deb/debian/adwaita-icon-theme@43-1?arch=all", "adwaita_icon", "adwaita-icon-theme", "sha256:1", true)
	f.Add("a", "1", "pkg:deb/debian/a@1", "a", "a", "", false)
	f.Add("{n}", "{v}", "={u}", "=", "}{", "l", false)
	f.Add("x-y", "", "pkg:npm/x-y", "x_y", "x_y", "l", true)
	f.Fuzz(func(t *testing.T, name, version, purl, vendor, product, layer string, cartesian bool) {
		if slices.ContainsFunc([]string{name, version, purl, vendor, product, layer}, func(s string) bool { return !utf8.ValidString(s) }) {
			t.Skip("JSON carries UTF-8 only; syft's strings are")
		}
		cpes := []match.CPE{{Vendor: vendor, Product: product}, {Vendor: name, Product: product, Declared: !cartesian}}
		if cartesian {
			cpes = []match.CPE{{Vendor: vendor, Product: product}, {Vendor: vendor, Product: name}, {Vendor: name, Product: product}, {Vendor: name, Product: name}}
		}
		rec := &cache.Record{Lean: cartesian, PathRules: []string{"/opt/**"}, Inventories: []match.Inventory{{
			Platform: "linux/amd64",
			Packages: []match.Package{{Name: name, Version: version, Type: "deb", PURL: purl, Fields: []match.Field{{Name: "dpkg Maintainer", Value: vendor}}, CPEs: cpes, Layer: layer}},
			Files:    []match.File{{Path: "/opt/" + name, Layer: layer}},
		}, {
			// An attached SBOM's packages must read back as declared, not as scanned.
			Platform: "linux/amd64",
			Source:   &match.Source{Kind: match.SourceBuildKit, Digest: "sha256:2", Format: "spdx-json", Creator: product, Signed: cartesian},
			Packages: []match.Package{{Name: name, Version: version, Fields: []match.Field{{Name: "SPDX supplier", Value: vendor}}}},
		}}}
		data, err := cache.Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := cache.FromImageScan(&v1alpha1.ImageScan{Status: v1alpha1.ImageScanStatus{Phase: v1alpha1.ImageScanScanned, Record: data}})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(rec.Inventories, back.Inventories); d != "" || back.Lean != rec.Lean {
			t.Errorf("round trip differs (-encoded +decoded):\n%s", d)
		}
	})
}

// BenchmarkRecordCodec: encoding a 700-package lean record, as the ImageScans writer does for
// every scan, and decoding it, as every recompute and cold lookup does
// (go test ./internal/cache/ -run '^$' -bench RecordCodec).
func BenchmarkRecordCodec(b *testing.B) {
	rec := syntheticRecord(700, 2000).Trim(catalogPaths(b))
	data, err := cache.Encode(rec)
	if err != nil {
		b.Fatal(err)
	}
	is := &v1alpha1.ImageScan{Spec: v1alpha1.ImageScanSpec{Digest: rec.Digest},
		Status: v1alpha1.ImageScanStatus{Phase: v1alpha1.ImageScanScanned, Record: data, PackageCount: 700}}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.Encode(rec); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "bytes")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.FromImageScan(is); err != nil {
				b.Fatal(err)
			}
		}
	})
}
