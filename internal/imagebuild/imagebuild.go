// Package imagebuild assembles Embargo's container image without a container engine: an OCI
// image index with one image per platform, each made of a base layer (CA certificates, a
// nonroot user, a sticky /tmp) shared by every platform and a layer with that platform's static
// binaries. Every byte is a function of the inputs — file contents, the version, the revision
// and one timestamp — so two builds of one commit give one index digest.
//
// The layout matches gcr.io/distroless/static:nonroot, which the repository's Dockerfile uses.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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

// The runtime user, as in distroless's :nonroot images and the chart's securityContext.
const (
	UID  = 65532
	GID  = 65532
	User = "65532:65532"
	Home = "/home/nonroot"
)

// CACertsPath is where the CA bundle lands in the image (Debian's path, which Go also probes).
const CACertsPath = "/etc/ssl/certs/ca-certificates.crt"

// DefaultSource is the org.opencontainers.image.source of Embargo's images.
const DefaultSource = "https://github.com/embargo-dev/embargo"

// OCI annotation keys (image-spec annotations.md), set as config labels too.
const (
	AnnotationSource   = "org.opencontainers.image.source"
	AnnotationRevision = "org.opencontainers.image.revision"
	AnnotationVersion  = "org.opencontainers.image.version"
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationTitle    = "org.opencontainers.image.title"
	AnnotationRefName  = "org.opencontainers.image.ref.name"
)

// envPath is distroless's PATH plus "/", where the binaries are.
const envPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/"

// Platform is one image of the index.
type Platform struct {
	Platform v1.Platform
	// Binaries maps an absolute path in the image (e.g. /manager) to a file on this machine.
	// Each is copied with mode 0755, owned by root.
	Binaries map[string]string
}

// Spec is everything an image index is made from.
type Spec struct {
	Platforms []Platform
	// Entrypoint is the path in the image the container runs, one of every platform's Binaries.
	Entrypoint string
	// CACerts is a PEM bundle on this machine, e.g. Debian's /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// Title, Version and Revision (a git commit) become OCI labels and annotations.
	Title, Version, Revision string
	// Source is the repository URL; default DefaultSource.
	Source string
	// Created stamps the config, the history and every file's mtime: use the commit's time (or
	// SOURCE_DATE_EPOCH), never the current time. Truncated to seconds.
	Created time.Time
}

// Build assembles the index. Nothing is written: layers are read from the files when the index
// is written or pushed, so the files must not change until then.
func Build(s Spec) (v1.ImageIndex, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	created := s.Created.UTC().Truncate(time.Second)
	base, err := baseLayer(s.CACerts, created)
	if err != nil {
		return nil, err
	}
	meta := s.annotations(created)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range s.Platforms {
		img, err := s.image(p, base, meta, created)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Platform, err)
		}
		plat := p.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	return mutate.Annotations(idx, meta).(v1.ImageIndex), nil
}

func (s Spec) check() error {
	var errs []error
	if len(s.Platforms) == 0 {
		errs = append(errs, errors.New("no platforms"))
	}
	if s.Created.IsZero() || s.Created.Before(time.Unix(0, 0)) {
		errs = append(errs, errors.New("Created must be a time after 1970 (the commit time or SOURCE_DATE_EPOCH)"))
	}
	if s.CACerts == "" {
		errs = append(errs, errors.New("no CA certificate bundle"))
	} else if _, err := os.Stat(s.CACerts); err != nil {
		errs = append(errs, fmt.Errorf("CA certificate bundle: %w (on Debian: apt-get install ca-certificates)", err))
	}
	seen := map[string]bool{}
	for _, p := range s.Platforms {
		key := p.Platform.String()
		if p.Platform.OS == "" || p.Platform.Architecture == "" {
			errs = append(errs, fmt.Errorf("platform %q: want os/arch", key))
		}
		if seen[key] {
			errs = append(errs, fmt.Errorf("platform %s listed twice", key))
		}
		seen[key] = true
		if _, ok := p.Binaries[s.Entrypoint]; !ok {
			errs = append(errs, fmt.Errorf("%s: the entrypoint %q is not among the binaries", key, s.Entrypoint))
		}
		for dst, src := range p.Binaries {
			if !path.IsAbs(dst) || path.Clean(dst) != dst {
				errs = append(errs, fmt.Errorf("%s: %q: want a clean absolute path in the image", key, dst))
			}
			if fi, err := os.Stat(src); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			} else if !fi.Mode().IsRegular() {
				errs = append(errs, fmt.Errorf("%s: %s is not a regular file", key, src))
			}
		}
	}
	return errors.Join(errs...)
}

func (s Spec) annotations(created time.Time) map[string]string {
	m := map[string]string{
		AnnotationSource:   s.Source,
		AnnotationRevision: s.Revision,
		AnnotationVersion:  s.Version,
		AnnotationCreated:  created.Format(time.RFC3339),
		AnnotationTitle:    s.Title,
	}
	if m[AnnotationSource] == "" {
		m[AnnotationSource] = DefaultSource
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

func (s Spec) image(p Platform, base v1.Layer, meta map[string]string, created time.Time) (v1.Image, error) {
	bins, err := binaryLayer(p.Binaries, created)
	if err != nil {
		return nil, err
	}
	cf := &v1.ConfigFile{
		Architecture: p.Platform.Architecture,
		OS:           p.Platform.OS,
		Variant:      p.Platform.Variant,
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{s.Entrypoint},
			WorkingDir: Home,
			Env:        []string{envPath, "SSL_CERT_FILE=" + CACertsPath},
			Labels:     meta,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(p.Binaries))
	for dst := range p.Binaries {
		names = append(names, dst)
	}
	sort.Strings(names)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "imagebuild: CA certificates, user nonroot (65532), /tmp", Comment: CACertsPath}},
		mutate.Addendum{Layer: bins, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "imagebuild: static binaries " + strings.Join(names, " ")}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, meta).(v1.Image), nil
}

// entry is one tar entry: a directory, in-memory content, or a file on this machine.
type entry struct {
	hdr  tar.Header
	data []byte
	src  string
}

func dir(name string, mode int64, uid, gid int, mtime time.Time) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: mtime}}
}

func file(name string, mode int64, data []byte, mtime time.Time) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}, data: data}
}

// The account files of distroless's static image.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads it: files before DNS, as glibc does.
	nsswitch = "hosts: files dns\n"
)

// baseLayer holds what every platform shares, so registries store it once.
func baseLayer(caCerts string, mtime time.Time) (v1.Layer, error) {
	ca, err := os.ReadFile(caCerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificate bundle: %w (on Debian: apt-get install ca-certificates)", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA certificate bundle %s holds no PEM certificate", caCerts)
	}
	return layer([]entry{
		dir("etc", 0o755, 0, 0, mtime),
		file("etc/group", 0o644, []byte(group), mtime),
		file("etc/nsswitch.conf", 0o644, []byte(nsswitch), mtime),
		file("etc/passwd", 0o644, []byte(passwd), mtime),
		dir("etc/ssl", 0o755, 0, 0, mtime),
		dir("etc/ssl/certs", 0o755, 0, 0, mtime),
		file(strings.TrimPrefix(CACertsPath, "/"), 0o644, ca, mtime),
		dir("home", 0o755, 0, 0, mtime),
		dir(strings.TrimPrefix(Home, "/"), 0o700, UID, GID, mtime),
		dir("root", 0o700, 0, 0, mtime),
		dir("tmp", 0o1777, 0, 0, mtime),
	})
}

func binaryLayer(bins map[string]string, mtime time.Time) (v1.Layer, error) {
	dirs := map[string]bool{}
	var entries []entry
	for dst, src := range bins {
		fi, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(dst, "/")
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				entries = append(entries, dir(d, 0o755, 0, 0, mtime))
			}
		}
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: fi.Size(), ModTime: mtime}, src: src})
	}
	return layer(entries)
}

// layer streams a tar of entries in name order, with no owner names, access or change times:
// only content, mode, uid/gid and the one mtime. The gzip stream is computed once and kept.
func layer(entries []entry) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	opener := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, entries)) }()
		return pr, nil
	}
	return tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

func writeTar(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := e.hdr
		// USTAR, no PAX records: the header is the same bytes whatever the Go version picks.
		hdr.Format = tar.FormatUSTAR
		if err := tw.WriteHeader(&hdr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		switch {
		case e.src != "":
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s (from %s): %w", hdr.Name, e.src, err)
			}
		case e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
