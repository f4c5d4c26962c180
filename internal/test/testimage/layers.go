package testimage

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one tar entry. Type defaults to a regular file (or a directory for a path ending in /).
type File struct {
	Path     string
	Content  []byte
	Mode     int64
	Type     byte
	Linkname string
	// Size overrides the header size of an empty-content entry (for hostile headers).
	Size int64
}

// Layer builds an uncompressed-tar layer (gzip-compressed on the wire) from files, adding
// parent directories as a real image builder would.
func Layer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := WriteTar(&buf, files...); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// WriteTar writes files as a tar stream.
func WriteTar(w io.Writer, files ...File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var all []File
	for _, f := range files {
		for d := path.Dir(strings.TrimSuffix(f.Path, "/")); d != "/" && d != "." && d != ""; d = path.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				all = append(all, File{Path: d + "/", Type: tar.TypeDir})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	all = append(all, files...)
	epoch := time.Unix(1500000000, 0)
	for _, f := range all {
		h := &tar.Header{
			Name:     strings.TrimPrefix(f.Path, "/"),
			Mode:     f.Mode,
			Typeflag: f.Type,
			Linkname: f.Linkname,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(f.Path, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.Content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if len(f.Content) > 0 {
			if _, err := tw.Write(f.Content); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// Platform is linux/amd64 unless given.
func Image(p *v1.Platform, layers ...v1.Layer) (v1.Image, error) {
	if p == nil {
		p = &v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: time.Unix(1500000000, 0).UTC()}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// FromFiles is Image with one layer per group of files.
func FromFiles(groups ...[]File) (v1.Image, error) {
	var layers []v1.Layer
	for _, g := range groups {
		l, err := Layer(g...)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Image(nil, layers...)
}

// Index makes a multi-platform index of images; platforms come from their configs.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}},
		})
	}
	return idx, nil
}

// Deb is a dpkg status entry.
type Deb struct {
	Name, Version, Arch, Maintainer, Description string
}

// DpkgStatus is /var/lib/dpkg/status listing pkgs as installed.
func DpkgStatus(pkgs ...Deb) File {
	var b strings.Builder
	for _, p := range pkgs {
		arch := p.Arch
		if arch == "" {
			arch = "amd64"
		}
		desc := p.Description
		if desc == "" {
			desc = p.Name + " package"
		}
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: misc\nInstalled-Size: 1024\nMaintainer: %s\nArchitecture: %s\nVersion: %s\nDescription: %s\n\n",
			p.Name, p.Maintainer, arch, p.Version, desc)
	}
	return File{Path: "/var/lib/dpkg/status", Content: []byte(b.String())}
}

// DpkgFiles is the /var/lib/dpkg/info/<name>.list naming a package's files, so the files are
// owned as dpkg would own them.
func DpkgFiles(pkg string, paths ...string) File {
	return File{Path: "/var/lib/dpkg/info/" + pkg + ".list", Content: []byte(strings.Join(paths, "\n") + "\n")}
}

// Apk is an apk installed-db entry.
type Apk struct {
	Name, Version, Maintainer, Description string
}

// ApkInstalled is /lib/apk/db/installed.
func ApkInstalled(pkgs ...Apk) File {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "C:Q1abcdefghijklmnopqrstuvwxyz0=\nP:%s\nV:%s\nA:x86_64\nS:1024\nI:4096\nT:%s\nU:https://example.org\nL:MIT\no:%s\nm:%s\nt:1500000000\n\n",
			p.Name, p.Version, p.Description, p.Name, p.Maintainer)
	}
	return File{Path: "/lib/apk/db/installed", Content: []byte(b.String())}
}

// OSRelease is /etc/os-release for a distro id and version.
func OSRelease(id, versionID string) File {
	return File{Path: "/etc/os-release", Content: []byte(fmt.Sprintf("ID=%s\nVERSION_ID=%q\nPRETTY_NAME=\"%s %s\"\n", id, versionID, id, versionID))}
}

// NpmPackage is a package.json installed under /usr/lib/node_modules.
func NpmPackage(name, version, author, description string) File {
	return File{
		Path:    "/usr/lib/node_modules/" + name + "/package.json",
		Content: []byte(fmt.Sprintf(`{"name":%q,"version":%q,"author":%q,"description":%q,"license":"MIT"}`, name, version, author, description)),
	}
}

// PythonDist is an installed distribution's dist-info METADATA (and RECORD).
func PythonDist(name, version, author, summary string) []File {
	dir := fmt.Sprintf("/usr/lib/python3/dist-packages/%s-%s.dist-info/", strings.ReplaceAll(name, "-", "_"), version)
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nAuthor: %s\nLicense: MIT\n\n", name, version, summary, author)
	return []File{
		{Path: dir + "METADATA", Content: []byte(meta)},
		{Path: dir + "RECORD", Content: []byte(dir[1:] + "METADATA,,\n")},
	}
}

// Jar is a Java archive with a manifest and pom.properties.
func Jar(filePath, group, artifact, version string, manifest map[string]string) (File, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("META-INF/MANIFEST.MF")
	if err != nil {
		return File{}, err
	}
	keys := make([]string, 0, len(manifest))
	for k := range manifest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "Manifest-Version: 1.0\r\n")
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\r\n", k, manifest[k])
	}
	fmt.Fprintf(w, "\r\n")
	w, err = zw.Create(fmt.Sprintf("META-INF/maven/%s/%s/pom.properties", group, artifact))
	if err != nil {
		return File{}, err
	}
	fmt.Fprintf(w, "groupId=%s\nartifactId=%s\nversion=%s\n", group, artifact, version)
	if err := zw.Close(); err != nil {
		return File{}, err
	}
	return File{Path: filePath, Content: buf.Bytes()}, nil
}

// Whiteout deletes p (a file or directory) from lower layers.
func Whiteout(p string) File {
	return File{Path: path.Join(path.Dir(p), ".wh."+path.Base(p))}
}
