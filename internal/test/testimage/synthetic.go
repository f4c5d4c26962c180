package testimage

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Synthetic is a Debian-like image for benchmarks: a dpkg database listing `packages` packages,
// one of them kesl by AO Kaspersky Lab, installed over five layers; every package owns its files
// (/var/lib/dpkg/info/<name>.list) under the paths Debian uses, and the regular files hold about
// totalBytes of pseudo-random, incompressible content. The same arguments give the same image,
// digests included.
//
// Only the file list is kept in memory: a layer's tar stream, content included, is generated
// each time the layer is read. Building the image reads every layer twice (gzip digest and
// diff ID): about half a second for 100 MB on two cores.
func Synthetic(packages int, totalBytes int64, seed int64) (v1.Image, error) {
	if packages < 1 {
		return nil, fmt.Errorf("synthetic image: need at least 1 package (kesl), got %d", packages)
	}
	if totalBytes < 0 {
		return nil, fmt.Errorf("synthetic image: negative size %d", totalBytes)
	}
	layers := synthesize(packages, totalBytes, seed)
	var out []v1.Layer
	for _, l := range layers {
		tl, err := tarball.LayerFromOpener(l.open)
		if err != nil {
			return nil, fmt.Errorf("synthetic layer %d: %w", l.index, err)
		}
		out = append(out, tl)
	}
	return Image(nil, out...)
}

// synthLayers is how many layers Synthetic spreads packages over, and synthShare the
// cumulative share of the packages installed by the end of each: a large base, then smaller
// application layers, as a Dockerfile leaves them.
var synthShare = [...]float64{0.45, 0.65, 0.80, 0.95, 1}

// synthEntry is one tar entry: either fixed text or size bytes of the layer's random stream.
type synthEntry struct {
	path     string // without the leading slash; directories end in /
	typ      byte
	mode     int64
	linkname string
	text     []byte
	size     int64
}

type synthLayer struct {
	index   int
	key     [32]byte
	entries []synthEntry
}

type synthPkg struct {
	deb   Deb
	layer int
	files []synthEntry
}

// synthesize plans every layer's entries; content sizes are drawn from a heavy-tailed
// distribution per kind of file and scaled so regular files total totalBytes.
func synthesize(packages int, totalBytes int64, seed int64) []*synthLayer {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x656d626172676f)) //nolint:gosec // deterministic test data
	names := synthNames(rng, packages-1)

	var pkgs []*synthPkg
	for i, name := range names {
		layer := 0
		for layer < len(synthShare)-1 && float64(i) >= synthShare[layer]*float64(len(names)) {
			layer++
		}
		p := &synthPkg{layer: layer, deb: Deb{
			Name:        name,
			Version:     fmt.Sprintf("%d.%d.%d-%d", rng.IntN(12), rng.IntN(30), rng.IntN(20), 1+rng.IntN(4)),
			Maintainer:  synthMaintainers[rng.IntN(len(synthMaintainers))],
			Description: synthDescription(rng, name),
		}}
		p.files = synthFiles(rng, name)
		pkgs = append(pkgs, p)
	}
	kesl := &synthPkg{layer: len(synthShare) - 1, deb: Deb{
		Name: "kesl", Version: "12.1.0-1187", Maintainer: KasperskyMaintainer,
		Description: "Kaspersky Endpoint Security for Linux",
	}, files: []synthEntry{
		{path: "opt/kaspersky/kesl/bin/kesl-control", mode: 0o755, size: synthSize(rng, 300<<10)},
		{path: "opt/kaspersky/kesl/lib/libkesl.so.12", size: synthSize(rng, 2<<20)},
		{path: "opt/kaspersky/kesl/share/bases/kavbase.kdc", size: synthSize(rng, 4<<20)},
		{path: "etc/opt/kaspersky/kesl.ini", text: []byte("[General]\nUseKSN=No\n")},
		{path: "usr/share/doc/kesl/copyright", text: []byte("Copyright: AO Kaspersky Lab\nLicense: proprietary\n")},
	}}
	pkgs = append(pkgs, kesl)
	scaleSizes(pkgs, totalBytes)

	layers := make([]*synthLayer, len(synthShare))
	for i := range layers {
		l := &synthLayer{index: i}
		h := sha256.New()
		_ = binary.Write(h, binary.LittleEndian, [2]int64{seed, int64(i)})
		copy(l.key[:], h.Sum(nil))
		layers[i] = l
	}
	layers[0].entries = append(layers[0].entries,
		synthEntry{path: "etc/os-release", text: []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n")},
		synthEntry{path: "etc/debian_version", text: []byte("12.8\n")},
		synthEntry{path: "etc/hostname", text: []byte("synthetic\n")},
		synthEntry{path: "bin", typ: tar.TypeSymlink, linkname: "usr/bin"},
		synthEntry{path: "lib", typ: tar.TypeSymlink, linkname: "usr/lib"},
		synthEntry{path: "sbin", typ: tar.TypeSymlink, linkname: "usr/sbin"},
	)
	// dpkg rewrites its status file on every install, so each layer carries the whole database
	// as it stood then.
	var installed []Deb
	for i, l := range layers {
		for _, p := range pkgs {
			if p.layer != i {
				continue
			}
			installed = append(installed, p.deb)
			l.entries = append(l.entries, p.files...)
			l.entries = append(l.entries, synthEntry{path: "var/lib/dpkg/info/" + p.deb.Name + ".list", text: dpkgList(p.files)})
		}
		status := DpkgStatus(installed...)
		l.entries = append(l.entries, synthEntry{path: strings.TrimPrefix(status.Path, "/"), text: status.Content})
		l.entries = withParents(l.entries)
	}
	return layers
}

// scaleSizes scales the drawn sizes of random-content files so all regular files of all
// packages total totalBytes (as near as the fixed text files allow).
func scaleSizes(pkgs []*synthPkg, totalBytes int64) {
	var text, drawn int64
	for _, p := range pkgs {
		for _, f := range p.files {
			text += int64(len(f.text))
			drawn += f.size
		}
	}
	budget := max(0, totalBytes-text)
	if drawn == 0 {
		return
	}
	ratio := float64(budget) / float64(drawn)
	var largest *synthEntry
	var sum int64
	for _, p := range pkgs {
		for i := range p.files {
			f := &p.files[i]
			if f.typ != 0 || f.text != nil {
				continue
			}
			f.size = int64(float64(f.size) * ratio)
			sum += f.size
			if largest == nil || f.size > largest.size {
				largest = f
			}
		}
	}
	largest.size += budget - sum
}

func withParents(entries []synthEntry) []synthEntry {
	seen := map[string]bool{}
	for _, e := range entries {
		for d := path.Dir(strings.TrimSuffix(e.path, "/")); d != "." && d != "/"; d = path.Dir(d) {
			if seen[d] {
				break
			}
			seen[d] = true
			entries = append(entries, synthEntry{path: d + "/", typ: tar.TypeDir, mode: 0o755})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	return entries
}

// dpkgList is the .list dpkg writes: "/." then every directory and file the package installed.
func dpkgList(files []synthEntry) []byte {
	lines := map[string]bool{"/.": true}
	for _, f := range files {
		lines["/"+f.path] = true
		for d := path.Dir(f.path); d != "."; d = path.Dir(d) {
			lines["/"+d] = true
		}
	}
	sorted := make([]string, 0, len(lines))
	for l := range lines {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	return []byte(strings.Join(sorted, "\n") + "\n")
}

func (l *synthLayer) open() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	// A reader that stops early (the compression sniffing in LayerFromOpener) closes pr; the
	// next write fails and the writer goroutine ends.
	go func() { _ = pw.CloseWithError(l.write(pw)) }()
	return pr, nil
}

func (l *synthLayer) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	content := rand.NewChaCha8(l.key)
	buf := make([]byte, 64<<10)
	epoch := time.Unix(1700000000, 0)
	for _, e := range l.entries {
		h := &tar.Header{
			Name:     e.path,
			Typeflag: e.typ,
			Mode:     e.mode,
			Linkname: e.linkname,
			ModTime:  epoch,
			Uname:    "root",
			Gname:    "root",
			Format:   tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeSymlink {
				h.Mode = 0o777
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = e.size
			if e.text != nil {
				h.Size = int64(len(e.text))
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		if e.text != nil {
			if _, err := tw.Write(e.text); err != nil {
				return err
			}
			continue
		}
		for left := h.Size; left > 0; {
			n := int(min(left, int64(len(buf))))
			_, _ = content.Read(buf[:n])
			if _, err := tw.Write(buf[:n]); err != nil {
				return err
			}
			left -= int64(n)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// synthSize draws a log-normal size around median: most files small, a few large.
func synthSize(rng *rand.Rand, median float64) int64 {
	return int64(median * math.Exp(rng.NormFloat64()*0.9))
}

func synthFiles(rng *rand.Rand, name string) []synthEntry {
	doc := "usr/share/doc/" + name + "/"
	files := []synthEntry{
		{path: doc + "copyright", text: synthCopyright(rng, name)},
		{path: doc + "changelog.Debian.gz", size: synthSize(rng, 3<<10)},
	}
	switch {
	case strings.HasPrefix(name, "lib"):
		so := "usr/lib/x86_64-linux-gnu/" + name + ".so"
		major := 1 + rng.IntN(6)
		real := fmt.Sprintf("%s.%d.%d.%d", so, major, rng.IntN(20), rng.IntN(10))
		files = append(files,
			synthEntry{path: real, size: synthSize(rng, 180<<10)},
			synthEntry{path: fmt.Sprintf("%s.%d", so, major), typ: tar.TypeSymlink, linkname: path.Base(real)},
		)
		for range rng.IntN(3) {
			files = append(files, synthEntry{path: fmt.Sprintf("usr/lib/x86_64-linux-gnu/%s/%s.so", name, synthWord(rng)), size: synthSize(rng, 60<<10)})
		}
	case strings.HasPrefix(name, "python3-"):
		mod := strings.ReplaceAll(strings.TrimPrefix(name, "python3-"), "-", "_")
		for _, f := range []string{"__init__.py", "core.py", "util.py", "_speedups.cpython-311-x86_64-linux-gnu.so"} {
			files = append(files, synthEntry{path: "usr/lib/python3/dist-packages/" + mod + "/" + f, size: synthSize(rng, 12<<10)})
		}
	case strings.HasPrefix(name, "fonts-"):
		for range 1 + rng.IntN(4) {
			files = append(files, synthEntry{path: "usr/share/fonts/truetype/" + name + "/" + synthWord(rng) + ".ttf", size: synthSize(rng, 250<<10)})
		}
	default:
		if rng.IntN(10) < 7 {
			files = append(files,
				synthEntry{path: "usr/bin/" + name, mode: 0o755, size: synthSize(rng, 90<<10)},
				synthEntry{path: "usr/share/man/man1/" + name + ".1.gz", size: synthSize(rng, 2<<10)},
			)
		}
		for range rng.IntN(6) {
			files = append(files, synthEntry{path: "usr/share/" + name + "/" + synthWord(rng) + synthExts[rng.IntN(len(synthExts))], size: synthSize(rng, 16<<10)})
		}
	}
	if rng.IntN(4) == 0 {
		for _, lang := range synthLangs[:1+rng.IntN(len(synthLangs))] {
			files = append(files, synthEntry{path: "usr/share/locale/" + lang + "/LC_MESSAGES/" + name + ".mo", size: synthSize(rng, 8<<10)})
		}
	}
	return dedupeEntries(files)
}

func dedupeEntries(files []synthEntry) []synthEntry {
	seen := map[string]bool{}
	out := files[:0]
	for _, f := range files {
		if !seen[f.path] {
			seen[f.path] = true
			out = append(out, f)
		}
	}
	return out
}

func synthCopyright(rng *rand.Rand, name string) []byte {
	lic := synthLicenses[rng.IntN(len(synthLicenses))]
	return fmt.Appendf(nil, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: %s\n\nFiles: *\nCopyright: %d-%d The %s authors\nLicense: %s\n\nFiles: debian/*\nCopyright: %d Debian maintainers\nLicense: %s\n",
		name, 1995+rng.IntN(20), 2015+rng.IntN(10), name, lic, 2010+rng.IntN(15), lic)
}

func synthDescription(rng *rand.Rand, name string) string {
	return fmt.Sprintf("%s %s for %s", name, synthWhat[rng.IntN(len(synthWhat))], synthWord(rng))
}

// synthNames are n unique package names: well-known ones first, then made-up ones shaped like
// Debian's (lib*, python3-*, *-common, ...). None resembles a Kaspersky package.
func synthNames(rng *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] && len(out) < n {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range synthWellKnown {
		add(s)
	}
	for len(out) < n {
		w := synthWord(rng)
		switch r := rng.IntN(20); {
		case r < 7:
			w = "lib" + w + fmt.Sprint(rng.IntN(8))
		case r < 10:
			w = "python3-" + w
		case r < 11:
			w = "fonts-" + w
		case r < 14:
			w += synthSuffixes[rng.IntN(len(synthSuffixes))]
		}
		if seen[w] {
			w += fmt.Sprint(len(out))
		}
		add(w)
	}
	return out
}

func synthWord(rng *rand.Rand) string {
	var b strings.Builder
	for range 2 + rng.IntN(2) {
		b.WriteString(synthSyllables[rng.IntN(len(synthSyllables))])
	}
	return b.String()
}

var (
	synthWellKnown = []string{
		"base-files", "base-passwd", "bash", "bsdutils", "coreutils", "dash", "debconf", "debian-archive-keyring",
		"debianutils", "diffutils", "dpkg", "e2fsprogs", "findutils", "gcc-12-base", "gpgv", "grep", "gzip",
		"hostname", "init-system-helpers", "libacl1", "libapt-pkg6.0", "libattr1", "libaudit1", "libblkid1",
		"libbz2-1.0", "libc-bin", "libc6", "libcap-ng0", "libcap2", "libcom-err2", "libcrypt1", "libdb5.3",
		"libdebconfclient0", "libext2fs2", "libffi8", "libgcc-s1", "libgcrypt20", "libgmp10", "libgnutls30",
		"libgpg-error0", "libhogweed6", "libidn2-0", "liblz4-1", "liblzma5", "libmd0", "libmount1", "libnettle8",
		"libp11-kit0", "libpam-modules", "libpam0g", "libpcre2-8-0", "libseccomp2", "libselinux1", "libsemanage2",
		"libsepol2", "libsmartcols1", "libss2", "libssl3", "libstdc++6", "libsystemd0", "libtasn1-6", "libtinfo6",
		"libudev1", "libunistring2", "libuuid1", "libxxhash0", "libzstd1", "login", "mawk", "mount", "ncurses-base",
		"ncurses-bin", "openssl", "passwd", "perl-base", "sed", "sysvinit-utils", "tar", "tzdata", "util-linux",
		"zlib1g", "ca-certificates", "curl", "libcurl4", "python3.11-minimal", "python3-minimal", "git", "less",
	}
	synthSyllables = []string{
		"al", "bo", "cur", "da", "el", "fo", "gi", "ha", "in", "jo", "lu", "mo", "nu", "or", "pe", "qu",
		"ra", "si", "tu", "ux", "vi", "wa", "xe", "yo", "ze", "ber", "cal", "dor", "fen", "gul", "har", "mel",
		"nix", "pol", "rus", "sam", "tor", "ven", "wix", "zen",
	}
	synthSuffixes = []string{"-common", "-data", "-bin", "-utils", "-dev", "-doc", "-tools", "-runtime"}
	synthExts     = []string{".dat", ".xml", ".conf", ".json", ".png", ".svg", ".txt", ".db"}
	synthLangs    = []string{"de", "fr", "es", "it", "ja", "pt_BR", "ru", "zh_CN", "pl", "nl"}
	synthLicenses = []string{"GPL-2+", "GPL-3+", "LGPL-2.1+", "MIT", "BSD-3-clause", "Apache-2.0", "Expat", "Artistic or GPL-1+"}
	synthWhat     = []string{"library", "command-line tools", "runtime files", "shared data", "bindings", "utilities"}

	synthMaintainers = []string{
		DebianMaintainer,
		"GNU Libc Maintainers <debian-glibc@lists.debian.org>",
		"Debian Python Team <team+python@tracker.debian.org>",
		"Debian Perl Group <pkg-perl-maintainers@lists.alioth.debian.org>",
		"Debian X Strike Force <debian-x@lists.debian.org>",
		"Debian Go Packaging Team <team+pkg-go@tracker.debian.org>",
		"Debian Javascript Maintainers <pkg-javascript-devel@lists.alioth.debian.org>",
		"Debian Fonts Task Force <debian-fonts@lists.debian.org>",
		"Matthias Klose <doko@debian.org>",
		"Santiago Vila <sanvila@debian.org>",
		"Laurent Bigonville <bigon@debian.org>",
		"Guillem Jover <guillem@debian.org>",
	}
)
