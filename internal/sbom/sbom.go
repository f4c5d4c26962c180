// Package sbom turns a pulled image into a match.Inventory with syft as a library: the packages
// installed in it with their vendor-identity fields, and the paths of its final filesystem.
package sbom

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cpe"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/source/stereoscopesource"
	// syft's rpm cataloger needs a sqlite driver for rpmdb.sqlite; without one every scan fails.
	_ "modernc.org/sqlite"

	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Catalogers are the syft catalogers that find installed packages and carry vendor fields.
var Catalogers = []string{
	"dpkg-db-cataloger",
	"apk-db-cataloger",
	"rpm-db-cataloger",
	"alpm-db-cataloger",
	"python-installed-package-cataloger",
	"javascript-package-cataloger",
	"java-archive-cataloger",
	"go-module-binary-cataloger",
	"pe-binary-package-cataloger",
	"dotnet-deps-binary-cataloger",
	"elf-binary-package-cataloger",
	"ruby-installed-gemspec-cataloger",
	"php-composer-installed-cataloger",
}

// Generator runs syft on pulled images. Build one per process: the license scanner syft needs
// costs seconds and hundreds of MiB to build, so it is built here once and shared.
type Generator struct {
	cfg     *syft.CreateSBOMConfig
	tempDir string
	opts    Options
	locks   layerLocks

	// values holds the license scanner once built; ready is closed then. It is built in the
	// background, when first needed, so that the pull overlaps it (it costs a second or more).
	licensesOnce sync.Once
	ready        chan struct{}
	values       context.Context
	valuesErr    error
}

// Options configure a Generator.
type Options struct {
	// TempDir holds a scan's temporary files ("": the system default).
	TempDir string
	// MaxFiles bounds the tar entries of one platform image (0: DefaultMaxFiles).
	MaxFiles int64
	// Workers bounds the layers fetched and cataloged at once by one scan (0: GOMAXPROCS).
	Workers int
	// Cache keeps layer results across scans (nil: none).
	Cache Cache
}

// NewGenerator builds the shared syft state. Stale temporary directories a crash left in
// opts.TempDir are removed.
func NewGenerator(opts Options) (*Generator, error) {
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	tempDir := opts.TempDir
	cfg := syft.DefaultCreateSBOMConfig().
		WithCatalogerSelection(cataloging.NewSelectionRequest().WithDefaults(Catalogers...)).
		WithoutFiles().
		WithParallelism(4)
	cfg.Relationships = cataloging.RelationshipsConfig{}
	cfg.Unknowns = cataloging.UnknownsConfig{}
	cfg.Licenses.IncludeContent = ""
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	removeStale(tempDir)
	if tempDir != os.TempDir() {
		removeStale(os.TempDir()) // stereoscope's own temp dirs
	}
	return &Generator{cfg: cfg, tempDir: tempDir, opts: opts, ready: make(chan struct{})}, nil
}

// startLicenses builds syft's license scanner in the background, once, when the first layer to
// catalog is known: a process whose scans are all answered from the layer cache never builds it.
func (g *Generator) startLicenses() {
	g.licensesOnce.Do(func() {
		go func() {
			defer close(g.ready)
			g.values, g.valuesErr = syft.SetContextLicenseScanner(context.Background(), g.cfg.Licenses)
			if g.valuesErr != nil {
				g.valuesErr = fmt.Errorf("building syft's license scanner: %w", g.valuesErr)
			}
		}()
	})
}

// tempPrefix names a scan's directories after the process, so a sweep at start removes only
// what dead processes left (a crash mid-scan leaves unpacked layers behind).
var tempPrefix = fmt.Sprintf("embargo-scan-%d", os.Getpid())

func removeStale(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, "embargo-scan-*"))
	for _, d := range stale {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "embargo-scan-%d-", &pid); err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

// withValues is ctx (deadline, cancellation) that also sees the values of another context: the
// shared license scanner.
type withValues struct {
	context.Context
	values context.Context
}

func (c withValues) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// Result is the inventory of one platform image.
type Result struct {
	Inventory    match.Inventory
	PackageCount int
}

// Scan reads pi's layers (fetching them, bounded by its size budget), catalogs its packages and
// lists its final filesystem. Temporary files are gone when it returns.
func (g *Generator) Scan(ctx context.Context, ref string, pi registry.PlatformImage) (Result, error) {
	g.startLicenses()
	tmp := file.NewTempDirGenerator(tempPrefix)
	defer func() { _ = tmp.Cleanup() }()
	layersDir, err := g.workDir()
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = os.RemoveAll(layersDir) }()

	img := image.New(pi.Image, tmp, layersDir,
		image.WithManifest(pi.Manifest),
		image.WithManifestDigest(pi.Digest.String()),
		image.WithPlatform(pi.Platform),
	)
	defer func() { _ = img.Cleanup() }()
	if err := img.Read(ctx); err != nil {
		return Result{}, readError(ctx, ref, err)
	}

	layerDigest, err := layerDigests(pi, img)
	if err != nil {
		return Result{}, err
	}

	if err := g.waitReady(ctx, ref); err != nil {
		return Result{}, err
	}
	src := stereoscopesource.New(img, stereoscopesource.ImageConfig{Reference: ref})
	s, err := syft.CreateSBOM(withValues{Context: ctx, values: g.values}, src, g.cfg)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, &registry.Error{Kind: registry.KindTimeout, Ref: ref, Err: err}
		}
		return Result{}, fmt.Errorf("cataloging %s: %w", ref, err)
	}

	inv := match.Inventory{Platform: pi.Platform}
	for _, p := range s.Artifacts.Packages.Sorted() {
		inv.Packages = append(inv.Packages, convert(p, layerDigest))
	}
	for _, ref := range img.SquashedTree().AllFiles(file.TypeRegular, file.TypeSymLink, file.TypeHardLink) {
		f := match.File{Path: string(ref.RealPath)}
		if l := img.FileCatalog.Layer(ref); l != nil {
			f.Layer = layerDigest[l.Metadata.Digest]
		}
		inv.Files = append(inv.Files, f)
	}
	sort.Slice(inv.Files, func(i, j int) bool { return inv.Files[i].Path < inv.Files[j].Path })
	return Result{Inventory: inv, PackageCount: len(inv.Packages)}, nil
}

// workDir is a new directory for one scan's files, named so a later process can tell it stale.
func (g *Generator) workDir() (string, error) {
	if err := os.MkdirAll(g.tempDir, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(g.tempDir, tempPrefix+"-")
}

// readError keeps the kind of a registry failure (size budget, timeout, auth) that stereoscope
// wrapped while reading layers.
func readError(ctx context.Context, ref string, err error) error {
	if k := registry.KindOf(err); k != "" {
		return err
	}
	if ctx.Err() != nil {
		return &registry.Error{Kind: registry.KindTimeout, Ref: ref, Err: err}
	}
	if strings.Contains(err.Error(), "exceed the size limit") {
		return &registry.Error{Kind: registry.KindTooLarge, Ref: ref, Err: err}
	}
	return &registry.Error{Kind: registry.KindInvalid, Ref: ref, Err: fmt.Errorf("reading layers: %w", err)}
}

// layerDigests maps stereoscope's layer ids (diff ids) to the layer digests a registry shows.
func layerDigests(pi registry.PlatformImage, img *image.Image) (map[string]string, error) {
	ls, err := pi.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ls))
	for i, l := range img.Layers {
		if i >= len(ls) {
			break
		}
		d, err := ls[i].Digest()
		if err != nil {
			return nil, err
		}
		out[l.Metadata.Digest] = d.String()
	}
	return out, nil
}

func convert(p pkg.Package, layerDigest map[string]string) match.Package {
	out := match.Package{
		Name:    p.Name,
		Version: p.Version,
		Type:    purlType(p),
		PURL:    p.PURL,
		Fields:  Fields(p.Metadata),
	}
	for _, c := range p.CPEs {
		out.CPEs = append(out.CPEs, match.CPE{
			Vendor:   c.Attributes.Vendor,
			Product:  c.Attributes.Product,
			Declared: c.Source == cpe.DeclaredSource || c.Source == cpe.NVDDictionaryLookupSource,
		})
	}
	for _, l := range p.Locations.ToSlice() {
		if d := layerDigest[l.FileSystemID]; d != "" {
			out.Layer = d
			break
		}
	}
	return out
}

func purlType(p pkg.Package) string {
	if t := p.Type.PackageURLType(); t != "" {
		return t
	}
	return string(p.Type)
}

// Fields returns a package's vendor-identity fields, never free text.
func Fields(metadata any) []match.Field {
	var fs []match.Field
	add := func(name, value string) {
		if strings.TrimSpace(value) != "" {
			fs = append(fs, match.Field{Name: name, Value: value})
		}
	}
	switch m := metadata.(type) {
	case pkg.DpkgDBEntry:
		add("dpkg Maintainer", m.Maintainer)
	case pkg.ApkDBEntry:
		add("apk Maintainer", m.Maintainer)
	case pkg.RpmDBEntry:
		add("rpm Vendor", m.Vendor)
	case pkg.AlpmDBEntry:
		add("alpm Packager", m.Packager)
	case pkg.PythonPackage:
		add("python Author", m.Author)
		add("python Author-email", m.AuthorEmail)
	case pkg.NpmPackage:
		add("npm author", m.Author)
	case pkg.JavaArchive:
		if m.Manifest != nil {
			for _, k := range []string{"Implementation-Vendor", "Specification-Vendor", "Bundle-Vendor"} {
				if v, ok := m.Manifest.Main.Get(k); ok {
					add("java "+k, v)
				}
			}
		}
	case pkg.PEBinary:
		if v, ok := m.VersionResources.Get("CompanyName"); ok {
			add("PE CompanyName", v)
		}
	case pkg.DotnetPortableExecutableEntry:
		add(".NET CompanyName", m.CompanyName)
	case pkg.ELFBinaryPackageNoteJSONPayload:
		add("ELF note vendor", m.Vendor)
	case pkg.RubyGemspec:
		for _, a := range m.Authors {
			add("gem author", a)
		}
	case pkg.PhpComposerInstalledEntry:
		for _, a := range m.Authors {
			add("composer author", a.Name)
		}
	}
	return fs
}
