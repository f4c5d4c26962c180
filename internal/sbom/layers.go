package sbom

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/source/directorysource"
	"github.com/bmatcuk/doublestar/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/embargo-dev/embargo/internal/layercache"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/version"
)

// Per-layer analysis. Each layer's tar is streamed once: its headers become the layer's entry
// list (files, whiteouts, opaque directories) and only the files a selected syft cataloger
// would read are written to a small per-layer directory, which syft's directory source then
// catalogs. Layers are merged in order as a container runtime stacks them: a package survives
// only if the file it was found in (its primary evidence: the dpkg status file, the jar, the
// binary) is still that layer's in the final filesystem, so a database a later layer rewrote,
// or a file it deleted, takes its packages with it. The distro comes from the final filesystem
// and is shown to every layer's catalog, since package URLs depend on it.

// DefaultMaxFiles bounds the tar entries of one platform image.
const DefaultMaxFiles = 500_000

// maxPathLen bounds one entry's path: longer names are refused, not stored.
const maxPathLen = 4096

// catalogGlobs are the paths the selected catalogers read, copied from syft v1.57.0's
// cataloger definitions, plus the files a cataloger reads beside them (python's RECORD and
// top_level.txt). Executables are handled apart (see markers).
var catalogGlobs = append(slices.Clone(osDBGlobs), []string{
	// python-installed-package-cataloger
	"**/*.egg-info", "**/*dist-info/*", "**/*egg-info/*", "**/*DIST-INFO/*", "**/*EGG-INFO/*",
	// javascript-package-cataloger
	"**/package.json",
	// java-archive-cataloger (indexed archives included, unindexed not: syft's defaults)
	"**/*.jar", "**/*.war", "**/*.ear", "**/*.par", "**/*.sar", "**/*.nar", "**/*.jpi", "**/*.hpi", "**/*.kar", "**/*.far", "**/*.lpkg", "**/*.zip",
	// go-module-binary-cataloger's go.mod is not selected; binaries: see markers
	// pe-binary-package-cataloger, dotnet-deps-binary-cataloger
	"**/*.DLL", "**/*.EXE", "**/*.BPL", "**/*.dll", "**/*.exe", "**/*.bpl", "**/*.deps.json",
	// ruby-installed-gemspec-cataloger
	"**/specifications/**/*.gemspec",
	// php-composer-installed-cataloger
	"**/installed.json",
}...)

// osDBGlobs are the files of the catalogers that read the distro (syft v1.57.0: the dpkg, apk,
// rpm and alpm catalogers are the only ones given generic.Environment.LinuxRelease; every other
// selected cataloger ignores it). A layer with none of these files catalogs the same under any
// distro, so its packages are cached once for all of them. Re-check on a syft upgrade (grep
// syft/pkg/cataloger for LinuxRelease); TestDistroIndependentLayersReused holds the result to a
// whole-image scan.
var osDBGlobs = []string{
	// dpkg-db-cataloger
	"**/lib/dpkg/status", "**/lib/dpkg/status.d/*", "**/lib/opkg/info/*.control", "**/lib/opkg/status", "**/*.deb", "**/*.ipk",
	// apk-db-cataloger
	"**/lib/apk/db/installed",
	// rpm-db-cataloger
	"**/{var/lib,usr/share,usr/lib/sysimage}/rpm/{Packages,Packages.db,rpmdb.sqlite}", "**/var/lib/rpmmanifest/container-manifest-2",
	// alpm-db-cataloger
	"**/var/lib/pacman/local/**",
}

func osDB(p string) bool {
	for _, g := range osDBGlobs {
		if m, _ := doublestar.Match(g, p); m {
			return true
		}
	}
	return false
}

// catalogBase and catalogExt pre-filter paths cheaply before the exact glob match.
var (
	catalogBase = map[string]bool{"status": true, "installed": true, "Packages": true, "Packages.db": true,
		"rpmdb.sqlite": true, "container-manifest-2": true, "package.json": true, "installed.json": true}
	catalogDirWords = []string{"/lib/dpkg/status.d/", "/lib/opkg/", "/var/lib/pacman/local/", "-info/", "-INFO/"}
)

func catalogable(p string) bool {
	base := path.Base(p)
	ok := catalogBase[base]
	if !ok {
		if ext := path.Ext(base); ext != "" {
			switch strings.ToLower(ext) {
			case ".deb", ".ipk", ".jar", ".war", ".ear", ".par", ".sar", ".nar", ".jpi", ".hpi", ".kar", ".far", ".lpkg", ".zip",
				".dll", ".exe", ".bpl", ".json", ".gemspec", ".egg-info":
				ok = true
			}
		}
	}
	if !ok {
		for _, w := range catalogDirWords {
			if strings.Contains(p, w) {
				ok = true
				break
			}
		}
	}
	if !ok {
		return false
	}
	for _, g := range catalogGlobs {
		if m, _ := doublestar.Match(g, p); m {
			return true
		}
	}
	return false
}

// markers are byte strings whose presence in an executable means a selected cataloger may
// find a package in it: Go build info, an ELF package note, a UPX-packed Go binary, a .NET
// single-file bundle's deps.json. Executables with none of them are not kept.
var markers = [][]byte{[]byte("\xff Go buildinf:"), []byte(".note.package"), []byte("UPX!"), []byte(".deps.json")}

// maxMarker is the length of the longest marker.
const maxMarker = 16

var execMagic = [][]byte{{0x7f, 'E', 'L', 'F'}, {'M', 'Z'}, {0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, {0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe}, {0xca, 0xfe, 0xba, 0xbe}}

// releasePaths are the files syft identifies the distro from (linux.IdentifyRelease and its
// Debian supplement); /usr/bin/busybox is where /bin/busybox lands on merged-/usr images.
var releasePaths = map[string]bool{"/etc/os-release": true, "/usr/lib/os-release": true, "/etc/system-release-cpe": true,
	"/etc/redhat-release": true, "/etc/debian_version": true, "/bin/busybox": true, "/usr/bin/busybox": true}

var busyboxVersion = regexp.MustCompile(`BusyBox v[\d.]+`)

// Entry kinds in a layer.
const (
	kindFile     = 'f' // a regular file, symlink or hard link: listed for path rules
	kindDir      = 'd'
	kindOther    = 'o' // devices, fifos: not listed, but they mask what is below them
	kindWhiteout = 'w'
	kindOpaque   = 'q' // Path is the directory made opaque
)

// Entry is one tar header of a layer.
type Entry struct {
	Path string
	Kind byte
	Link string `json:",omitempty"`
}

// LayerIndex is what streaming a layer yields apart from its packages.
type LayerIndex struct {
	Entries []Entry
	// Release holds the layer's distro-identity files by path (busybox: its version string).
	Release map[string][]byte
	// OSPackages: the layer has a file of a cataloger that reads the distro (osDBGlobs).
	OSPackages bool
}

// LayerPackage is a package one layer's catalog found, with the path it was found in.
type LayerPackage struct {
	Package match.Package
	// Primary is the path of the package's primary evidence in that layer.
	Primary string
}

// indexLayer streams l once. With dir non-empty, the catalogable files are written under it.
func indexLayer(ctx context.Context, ref string, l v1.Layer, dir string, files *atomic.Int64, maxFiles int64) (*LayerIndex, error) {
	ls, err := openLayer(ctx, l)
	if err != nil {
		return nil, err
	}
	defer ls.Close()
	idx := &LayerIndex{Release: map[string][]byte{}}
	tr := tar.NewReader(ls)
	buf := make([]byte, 256<<10)
	var mem []byte // an executable being searched for markers
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if n := files.Add(1); n > maxFiles {
			return nil, tooManyFiles(ref, maxFiles)
		}
		if len(h.Name) > maxPathLen {
			return nil, &registry.Error{Kind: registry.KindInvalid, Ref: ref, Err: fmt.Errorf("a path of %d bytes (limit %d)", len(h.Name), maxPathLen)}
		}
		p := path.Clean("/" + h.Name)
		base := path.Base(p)
		switch {
		case base == ".wh..wh..opq":
			idx.Entries = append(idx.Entries, Entry{Path: path.Dir(p), Kind: kindOpaque})
			continue
		case strings.HasPrefix(base, ".wh.") && base != ".wh.":
			idx.Entries = append(idx.Entries, Entry{Path: path.Join(path.Dir(p), strings.TrimPrefix(base, ".wh.")), Kind: kindWhiteout})
			continue
		}
		e := Entry{Path: p, Kind: kindOther}
		switch h.Typeflag {
		case tar.TypeDir:
			e.Kind = kindDir
		case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
			e.Kind = kindFile
			e.Link = h.Linkname
		}
		if p == "/" {
			continue
		}
		idx.Entries = append(idx.Entries, e)
		if h.Typeflag == tar.TypeSymlink && releasePaths[p] {
			idx.Release[p] = nil // a link: resolved through the final filesystem
			continue
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if releasePaths[p] {
			data, err := io.ReadAll(io.LimitReader(tr, 8<<20))
			if err != nil {
				return nil, err
			}
			if path.Base(p) == "busybox" {
				data = []byte(busyboxVersion.FindString(string(data)))
			}
			idx.Release[p] = data
			continue
		}
		if dir == "" {
			continue
		}
		if catalogable(p) {
			idx.OSPackages = idx.OSPackages || osDB(p)
			if err := extract(dir, p, tr, buf); err != nil {
				return nil, err
			}
			continue
		}
		if h.Size >= 64 {
			if err := extractMarked(dir, p, tr, h.Size, &mem, buf); err != nil {
				return nil, err
			}
		}
	}
	// what was parsed is trusted (and cached under the layer's digest) only once the digest
	// of the whole blob is checked
	if err := ls.finish(); err != nil {
		return nil, err
	}
	return idx, nil
}

// extract writes r to dir+p.
func extract(dir, p string, r io.Reader, buf []byte) error {
	f, err := create(dir, p)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(onlyWriter{f}, r, buf); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// onlyWriter hides os.File's ReadFrom, so that CopyBuffer reads r with Read into buf.
type onlyWriter struct{ io.Writer }

// extractMarked writes r, a file of size bytes, to dir+p only if it is an executable holding one
// of the markers. A file of up to spillAt bytes is read into mem (grown as needed and kept by the
// caller) and searched once; a larger one is written as it streams and removed if unmarked.
func extractMarked(dir, p string, r io.Reader, size int64, mem *[]byte, buf []byte) error {
	head := buf[:min(int64(len(buf)), 4096, size)]
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return err
	}
	if !hasExecMagic(head[:n]) {
		return nil
	}
	if size <= spillAt {
		if int64(cap(*mem)) < size {
			*mem = make([]byte, size)
		}
		m := (*mem)[:size]
		copy(m, head[:n])
		k, err := io.ReadFull(r, m[n:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return err
		}
		m = m[:n+k]
		if !hasMarker(m) {
			return nil
		}
		f, err := create(dir, p)
		if err != nil {
			return err
		}
		if _, err := f.Write(m); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}
	f, err := create(dir, p)
	if err != nil {
		return err
	}
	dst := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(dst)
		return err
	}
	if _, err := f.Write(head[:n]); err != nil {
		return fail(err)
	}
	marked := hasMarker(head[:n])
	// the last bytes of the previous chunk, for a marker across two chunks
	var edge [2 * maxMarker]byte
	tail := copy(edge[:], head[max(0, n-maxMarker):n])
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			chunk := buf[:k]
			if !marked {
				j := copy(edge[tail:], chunk[:min(k, maxMarker)])
				marked = hasMarker(edge[:tail+j]) || hasMarker(chunk)
				tail = copy(edge[:], chunk[max(0, k-maxMarker):])
			}
			if _, err := f.Write(chunk); err != nil {
				return fail(err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if !marked {
		_ = f.Close()
		return os.Remove(dst)
	}
	return f.Close()
}

// create makes dir+p for writing, replacing what an earlier entry left there.
func create(dir, p string) (*os.File, error) {
	dst := filepath.Join(dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		// an earlier entry left a file where this needs a directory: the later entry wins
		if !clearAncestors(dir, p) {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
	}
	_ = os.RemoveAll(dst)
	return os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// spillAt is how much of an unmarked executable is held in memory before it goes to disk.
const spillAt = 16 << 20

func hasMarker(b []byte) bool {
	for _, m := range markers {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

func hasExecMagic(b []byte) bool {
	for _, m := range execMagic {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// clearAncestors removes regular files that sit where p's parent directories go.
func clearAncestors(dir, p string) bool {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		fp := filepath.Join(dir, filepath.FromSlash(d))
		if fi, err := os.Lstat(fp); err == nil && !fi.IsDir() {
			return os.Remove(fp) == nil
		}
	}
	return false
}

// fileOwner is the final filesystem: path -> index of the layer that put it there, for
// non-directories.
type finalFS struct {
	files map[string]int
	links map[string]string
	order []string
}

// mergeLayers stacks layer indexes (bottom first) as a container runtime does.
func mergeLayers(idxs []*LayerIndex) *finalFS {
	fs := &finalFS{files: map[string]int{}, links: map[string]string{}}
	seen := map[string]bool{}   // paths an upper layer decided
	masked := map[string]bool{} // paths whose lower content (itself and below) is gone
	opaque := map[string]bool{} // directories whose lower children are gone
	blocked := func(p string) bool {
		if masked[p] {
			return true
		}
		for d := path.Dir(p); ; d = path.Dir(d) {
			if masked[d] || opaque[d] {
				return true
			}
			if d == "/" {
				return false
			}
		}
	}
	for i := len(idxs) - 1; i >= 0; i-- {
		var addMasked, addOpaque []string
		for _, e := range idxs[i].Entries {
			switch e.Kind {
			case kindWhiteout:
				addMasked = append(addMasked, e.Path)
				continue
			case kindOpaque:
				addOpaque = append(addOpaque, e.Path)
				continue
			}
			if seen[e.Path] || blocked(e.Path) {
				continue
			}
			if e.Kind != kindDir {
				addMasked = append(addMasked, e.Path)
			}
			if e.Kind == kindFile {
				if _, dup := fs.files[e.Path]; !dup {
					fs.order = append(fs.order, e.Path)
				}
				fs.files[e.Path] = i
				if e.Link != "" {
					fs.links[e.Path] = e.Link
				}
			}
		}
		for _, e := range idxs[i].Entries {
			if e.Kind != kindWhiteout && e.Kind != kindOpaque {
				seen[e.Path] = true
			}
		}
		for _, p := range addMasked {
			masked[p] = true
		}
		for _, p := range addOpaque {
			opaque[p] = true
		}
	}
	sort.Strings(fs.order)
	return fs
}

// release returns the final filesystem's distro-identity files, symlinks followed.
func (fs *finalFS) release(idxs []*LayerIndex) map[string][]byte {
	out := map[string][]byte{}
	for p := range releasePaths {
		target := p
		for range 8 {
			l, ok := fs.files[target]
			if !ok {
				break
			}
			data, isRel := idxs[l].Release[target]
			if link, isLink := fs.links[target]; isLink && len(data) == 0 {
				if !strings.HasPrefix(link, "/") {
					link = path.Join(path.Dir(target), link)
				}
				target = path.Clean(link)
				continue
			}
			if isRel {
				out[p] = data
			}
			break
		}
	}
	// /bin/busybox through a merged-/usr link is only found as /usr/bin/busybox above
	if _, ok := out["/bin/busybox"]; !ok {
		if v, ok := out["/usr/bin/busybox"]; ok && fs.links["/bin"] != "" {
			out["/bin/busybox"] = v
		}
	}
	delete(out, "/usr/bin/busybox")
	return out
}

// catalogDir runs syft over one layer's extracted files, with the final filesystem's
// distro-identity files shown in place of the layer's own.
func (g *Generator) catalogDir(ctx context.Context, dir string, release map[string][]byte, own map[string][]byte) ([]LayerPackage, error) {
	for p := range own {
		_ = os.Remove(filepath.Join(dir, filepath.FromSlash(p)))
	}
	for p, data := range release {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			continue
		}
		_ = os.RemoveAll(dst)
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return nil, err
		}
	}
	src, err := directorysource.New(directorysource.Config{Path: dir, Base: dir})
	if err != nil {
		return nil, err
	}
	defer func() { _ = src.Close() }()
	s, err := syft.CreateSBOM(withValues{Context: ctx, values: g.values}, src, g.cfg)
	if err != nil {
		return nil, err
	}
	var out []LayerPackage
	for _, p := range s.Artifacts.Packages.Sorted() {
		locs := p.Locations.ToSlice()
		if len(locs) == 0 {
			continue
		}
		if _, isRelease := release[locs[0].RealPath]; isRelease {
			continue
		}
		out = append(out, LayerPackage{Package: convert(p, nil), Primary: locs[0].RealPath})
	}
	return out, nil
}

// ScanLayers is Scan done layer by layer (see the top of this file).
func (g *Generator) ScanLayers(ctx context.Context, ref string, pi registry.PlatformImage) (Result, error) {
	layers, err := pi.Image.Layers()
	if err != nil {
		return Result{}, readError(ctx, ref, err)
	}
	digests := make([]string, len(layers))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return Result{}, readError(ctx, ref, err)
		}
		digests[i] = d.String()
	}
	work, err := g.workDir()
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = os.RemoveAll(work) }()

	// the layers no scan has analysed yet, and those another scan is analysing now (it caches a
	// layer's index before its packages): while this scan analyses them, another scan that needs
	// one of them waits for it and then reads the cache, rather than stream it a second time
	var indexed map[string]bool
	if g.opts.Cache != nil {
		indexed = map[string]bool{}
		for _, d := range digests {
			_, indexed[d] = cacheGet[LayerIndex](g.opts.Cache, indexKey(d))
		}
	}
	unlock, err := g.locks.lock(ctx, digests, indexed)
	if err != nil {
		return Result{}, &registry.Error{Kind: registry.KindTimeout, Ref: ref, Err: fmt.Errorf("waiting for another scan of its layers: %w", err)}
	}
	defer unlock()

	idxs := make([]*LayerIndex, len(layers))
	pkgs := make([][]LayerPackage, len(layers))
	dirs := make([]string, len(layers))
	var files atomic.Int64
	maxFiles := g.opts.MaxFiles
	grp, gctx := errgroup.WithContext(ctx)
	grp.SetLimit(g.workers())
	for i, l := range layers {
		if idx, ok := cacheGet[LayerIndex](g.opts.Cache, indexKey(digests[i])); ok {
			idxs[i] = idx
			if n := files.Add(int64(len(idx.Entries))); n > maxFiles {
				return Result{}, tooManyFiles(ref, maxFiles)
			}
			continue
		}
		g.startLicenses() // a layer to catalog: build syft's license scanner while it streams
		dirs[i] = filepath.Join(work, fmt.Sprint(i))
		grp.Go(func() error {
			if err := os.Mkdir(dirs[i], 0o700); err != nil {
				return err
			}
			idx, err := indexLayer(gctx, ref, l, dirs[i], &files, maxFiles)
			if err != nil {
				return err
			}
			idxs[i] = idx
			cachePut(g.opts.Cache, indexKey(digests[i]), idx, idx.size())
			return nil
		})
	}
	if err := grp.Wait(); err != nil {
		return Result{}, readError(ctx, ref, err)
	}
	fs := mergeLayers(idxs)
	release := fs.release(idxs)
	relKey := releaseKey(release)

	keys := make([]string, len(layers))
	cached := make([]bool, len(layers))
	for i := range layers {
		keys[i] = packagesKey(digests[i], relKey, idxs[i].OSPackages)
		if lp, ok := cacheGet[[]LayerPackage](g.opts.Cache, keys[i]); ok {
			pkgs[i], cached[i] = *lp, true
		} else {
			g.startLicenses()
		}
	}
	grp, gctx = errgroup.WithContext(ctx)
	grp.SetLimit(g.workers())
	for i, l := range layers {
		if cached[i] {
			continue
		}
		grp.Go(func() error {
			if dirs[i] == "" {
				// indexed from the cache, but never cataloged under this distro: stream it again
				dirs[i] = filepath.Join(work, fmt.Sprint(i))
				if err := os.Mkdir(dirs[i], 0o700); err != nil {
					return err
				}
				var uncounted atomic.Int64
				if _, err := indexLayer(gctx, ref, l, dirs[i], &uncounted, maxFiles); err != nil {
					return readError(ctx, ref, err)
				}
			}
			if err := g.waitReady(gctx, ref); err != nil {
				return err
			}
			lp, err := g.catalogDir(gctx, dirs[i], release, idxs[i].Release)
			if err != nil {
				return err
			}
			pkgs[i] = lp
			cachePut(g.opts.Cache, keys[i], &lp, packagesSize(lp))
			_ = os.RemoveAll(dirs[i])
			return nil
		})
	}
	if err := grp.Wait(); err != nil {
		if k := registry.KindOf(err); k != "" {
			return Result{}, err
		}
		if ctx.Err() != nil {
			return Result{}, &registry.Error{Kind: registry.KindTimeout, Ref: ref, Err: err}
		}
		return Result{}, fmt.Errorf("cataloging %s: %w", ref, err)
	}

	inv := match.Inventory{Platform: pi.Platform}
	for i, lps := range pkgs {
		for _, lp := range lps {
			if owner, ok := fs.files[lp.Primary]; !ok || owner != i {
				continue
			}
			p := lp.Package
			p.Layer = digests[i]
			inv.Packages = append(inv.Packages, p)
		}
	}
	for _, p := range fs.order {
		inv.Files = append(inv.Files, match.File{Path: p, Layer: digests[fs.files[p]]})
	}
	return Result{Inventory: inv, PackageCount: len(inv.Packages)}, nil
}

// layerLocks lets one scan at a time analyse a layer. A scan takes the locks of all the layers
// it will analyse before it starts, in digest order (so two scans never wait on each other), and
// holds them until its layers' results are cached. lock takes a digest's lock when indexed (nil:
// no cache, nothing to share) says it is not indexed yet, or when another scan holds or awaits it:
// that scan may have cached the layer's index but not yet its packages. The second test is made
// under ls.mu, where the holder registered before it cached anything, so it cannot be missed.
type layerLocks struct {
	mu sync.Mutex
	m  map[string]*layerLock
}

type layerLock struct {
	ch   chan struct{}
	refs int
}

func (ls *layerLocks) lock(ctx context.Context, digests []string, indexed map[string]bool) (unlock func(), err error) {
	if indexed == nil {
		return func() {}, nil
	}
	digests = slices.Clone(digests)
	slices.Sort(digests)
	digests = slices.Compact(digests)
	var held []string
	unlock = func() {
		for _, d := range held {
			ls.mu.Lock()
			l := ls.m[d]
			<-l.ch
			if l.refs--; l.refs == 0 {
				delete(ls.m, d)
			}
			ls.mu.Unlock()
		}
	}
	for _, d := range digests {
		ls.mu.Lock()
		if ls.m == nil {
			ls.m = map[string]*layerLock{}
		}
		l := ls.m[d]
		if l == nil && indexed[d] {
			ls.mu.Unlock()
			continue // indexed, and no scan is at work on it: its results are all cached
		}
		if l == nil {
			l = &layerLock{ch: make(chan struct{}, 1)}
			ls.m[d] = l
		}
		l.refs++
		ls.mu.Unlock()
		select {
		case l.ch <- struct{}{}:
			held = append(held, d)
		case <-ctx.Done():
			ls.mu.Lock()
			if l.refs--; l.refs == 0 {
				delete(ls.m, d)
			}
			ls.mu.Unlock()
			unlock()
			return nil, ctx.Err()
		}
	}
	return unlock, nil
}

func (g *Generator) workers() int {
	if g.opts.Workers > 0 {
		return g.opts.Workers
	}
	return max(1, runtime.GOMAXPROCS(0))
}

func (g *Generator) waitReady(ctx context.Context, ref string) error {
	g.startLicenses()
	select {
	case <-g.ready:
	case <-ctx.Done():
		return &registry.Error{Kind: registry.KindTimeout, Ref: ref, Err: ctx.Err()}
	}
	return g.valuesErr
}

func tooManyFiles(ref string, limit int64) error {
	return &registry.Error{Kind: registry.KindTooLarge, Ref: ref,
		Err: fmt.Errorf("more than %d files in its layers (raise --max-image-files to scan it)", limit)}
}

// Cache stores layer results; layercache.Cache is one. Values are shared between scans and
// never modified once put.
type Cache interface {
	Get(key string, decode layercache.Decode) (any, bool)
	Put(key string, v any, size int64, encode layercache.Encode)
}

// cacheFormat changes whenever what is cached or how it is computed changes: entries of another
// format are under other keys, so never read.
const cacheFormat = "3"

// resultVersion is everything besides the layer that decides a layer's result: this file's
// format, the scanner's version, syft's version and the cataloger selection.
var resultVersion = func() string {
	syftVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/anchore/syft" {
				syftVersion = m.Version
			}
		}
	}
	return strings.Join([]string{cacheFormat, version.Version, syftVersion, strings.Join(Catalogers, ",")}, "|")
}()

func indexKey(layer string) string { return "index|" + layer + "|" + resultVersion }

// packagesKey names a layer's packages under a distro; a layer without OS package databases
// has one result for every distro (see osDBGlobs).
func packagesKey(layer, release string, osPackages bool) string {
	if !osPackages {
		release = "any distro"
	}
	return "packages|" + layer + "|" + release + "|" + resultVersion
}

// releaseKey names the distro a layer was cataloged under.
func releaseKey(release map[string][]byte) string {
	keys := make([]string, 0, len(release))
	for k := range release {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%d\x00", k, len(release[k]))
		h.Write(release[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// size estimates the memory an index holds.
func (idx *LayerIndex) size() int64 {
	n := int64(64)
	for _, e := range idx.Entries {
		n += int64(len(e.Path)+len(e.Link)) + 40
	}
	for k, v := range idx.Release {
		n += int64(len(k)+len(v)) + 48
	}
	return n
}

func packagesSize(lps []LayerPackage) int64 {
	n := int64(24)
	for _, lp := range lps {
		p := lp.Package
		n += int64(len(lp.Primary)+len(p.Name)+len(p.Version)+len(p.Type)+len(p.PURL)+len(p.Layer)) + 200
		for _, f := range p.Fields {
			n += int64(len(f.Name)+len(f.Value)) + 32
		}
		for _, c := range p.CPEs {
			n += int64(len(c.Vendor)+len(c.Product)) + 40
		}
	}
	return n
}

// cacheGet returns the value under key, decoded from gob when it comes from disk.
func cacheGet[T any](c Cache, key string) (*T, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.Get(key, func(data []byte) (any, error) {
		t := new(T)
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(t); err != nil {
			return nil, err
		}
		return t, nil
	})
	if !ok {
		return nil, false
	}
	t, ok := v.(*T)
	return t, ok
}

func cachePut[T any](c Cache, key string, v *T, size int64) {
	if c == nil {
		return
	}
	c.Put(key, v, size, func() ([]byte, error) {
		var buf bytes.Buffer
		err := gob.NewEncoder(&buf).Encode(v)
		return buf.Bytes(), err
	})
}
