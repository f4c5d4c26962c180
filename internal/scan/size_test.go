package scan_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// hostDebianImage is an image of this machine's dpkg database: its status file, every
// package's file list, /etc/os-release, and an empty file for each path the lists name, so the
// image holds as many files as the machine's packages installed.
func hostDebianImage(t *testing.T) (files []ti.File, installed int) {
	t.Helper()
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no dpkg database on this machine")
	}
	if err != nil {
		t.Fatal(err)
	}
	installed = bytes.Count(status, []byte("\nStatus: install ok installed"))
	files = append(files, ti.File{Path: "/var/lib/dpkg/status", Content: status})
	if osr, err := os.ReadFile("/etc/os-release"); err == nil {
		files = append(files, ti.File{Path: "/etc/os-release", Content: osr})
	}
	lists, err := filepath.Glob("/var/lib/dpkg/info/*.list")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ti.File{Path: l, Content: data})
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if p := sc.Text(); p != "" && p != "/." && !strings.HasPrefix(p, "/var/lib/dpkg/") && p != "/etc/os-release" {
				listed = append(listed, p)
			}
		}
	}
	slices.Sort(listed)
	listed = slices.Compact(listed)
	parents := map[string]bool{}
	for _, p := range listed {
		for d := filepath.Dir(p); d != "/" && !parents[d]; d = filepath.Dir(d) {
			parents[d] = true
		}
	}
	for _, p := range listed {
		if parents[p] {
			continue // a directory: WriteTar adds the parents of every file
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			continue
		}
		files = append(files, ti.File{Path: p})
	}
	return files, installed
}

// TestHostDebianRecordSize: the stored record of an image with this machine's ~720–850 Debian
// packages fits 32 KiB, keeps every package and none of the files no path rule matches.
func TestHostDebianRecordSize(t *testing.T) {
	t.Parallel()
	files, installed := hostDebianImage(t)
	paths := catalog.Default().Paths()
	image, err := ti.FromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	ref := push(t, "host-debian", image)
	e := newEngine(t, scan.Options{TempDir: os.Getenv("TMPDIR"), PathRules: func(context.Context) ([]string, error) { return paths, nil }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	target := must[registry.Target](t)(e.Resolve(ctx, ref, nil))
	rec, err := e.Scan(ctx, target, nil, scan.Foreground)
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := cache.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	debs := 0
	for _, p := range rec.Inventories[0].Packages {
		if p.Type == "deb" {
			debs++
		}
	}
	t.Logf("IMAGESCAN-SIZE host-debian installed=%d debs=%d packages=%d imageFiles=%d keptFiles=%d encoded=%d",
		installed, debs, rec.PackageCount, len(files), len(rec.Inventories[0].Files), len(encoded))
	if debs < installed*9/10 {
		t.Fatalf("scanned %d deb packages of the %d installed: the image is not what the test means", debs, installed)
	}
	if !rec.Lean || !slices.Equal(rec.PathRules, sortedUnique(paths)) {
		t.Errorf("record lean=%v with path rules %q, want the catalog's", rec.Lean, rec.PathRules)
	}
	if n := len(rec.Inventories[0].Files); n != 0 {
		t.Errorf("kept %d files, but no catalog path rule matches a file of this machine", n)
	}
	if len(encoded) > 32<<10 {
		t.Errorf("stored record is %d bytes, over 32 KiB", len(encoded))
	}
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
