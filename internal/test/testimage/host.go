package testimage

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sync/errgroup"
)

// HostLayers are the layers of an image cut from this machine's own Debian filesystem: its real
// dpkg database and os-release, its shared libraries, /usr/share, the JVM and the Go toolchain.
// Missing roots are skipped (a machine without a JVM gives a smaller image).
var HostLayers = [][]string{
	{"/var/lib/dpkg", "/usr/lib/os-release", "/etc/os-release", "/etc/debian_version"},
	{"/usr/lib/x86_64-linux-gnu"},
	{"/usr/share"},
	{"/usr/lib/jvm"},
	{"/usr/local/go"},
}

// HostStats describe an image HostImage built.
type HostStats struct {
	Files             int   // regular files, symlinks and directories
	UncompressedBytes int64 // sum of the regular files' sizes
	CompressedBytes   int64
}

// HostImage builds a linux/amd64 image with one layer per group of roots, each a copy of this
// machine's files (regular files, directories and symlinks; hard links become copies; sockets,
// devices and unreadable files are left out). Layers are gzip'd once into dir and read from there,
// so an image of gigabytes never sits in memory.
func HostImage(dir string, layers ...[]string) (v1.Image, HostStats, error) {
	files := make([]string, len(layers))
	stats := make([]HostStats, len(layers))
	var g errgroup.Group
	g.SetLimit(2)
	for i, roots := range layers {
		files[i] = filepath.Join(dir, fmt.Sprintf("layer-%d.tar.gz", i))
		g.Go(func() error {
			s, err := writeHostLayer(files[i], roots)
			stats[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, HostStats{}, err
	}
	var total HostStats
	var ls []v1.Layer
	for i, f := range files {
		if stats[i].Files == 0 {
			continue
		}
		l, err := tarball.LayerFromFile(f)
		if err != nil {
			return nil, HostStats{}, err
		}
		ls = append(ls, l)
		total.Files += stats[i].Files
		total.UncompressedBytes += stats[i].UncompressedBytes
		total.CompressedBytes += stats[i].CompressedBytes
	}
	img, err := Image(&v1.Platform{OS: "linux", Architecture: "amd64"}, ls...)
	return img, total, err
}

func writeHostLayer(file string, roots []string) (s HostStats, err error) {
	out, err := os.Create(file)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	zw, err := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if err != nil {
		return s, err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(1500000000, 0)
	for _, root := range roots {
		if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil // unreadable: left out
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			h := &tar.Header{
				Name:    strings.TrimPrefix(p, "/"),
				Mode:    int64(info.Mode().Perm()),
				ModTime: epoch,
				Format:  tar.FormatPAX,
			}
			var body *os.File
			switch {
			case d.IsDir():
				h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return nil
				}
				h.Typeflag, h.Linkname = tar.TypeSymlink, target
			case d.Type().IsRegular():
				if body, err = os.Open(p); err != nil {
					return nil
				}
				defer body.Close()
				h.Typeflag, h.Size = tar.TypeReg, info.Size()
			default:
				return nil
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if body != nil {
				// A file that changed size while being read would corrupt the tar stream.
				if n, err := io.CopyN(tw, body, h.Size); err != nil {
					return fmt.Errorf("copying %s (%d of %d bytes): %w", p, n, h.Size, err)
				}
				s.UncompressedBytes += h.Size
			}
			s.Files++
			return nil
		})
		if err != nil {
			return s, err
		}
	}
	if err := tw.Close(); err != nil {
		return s, err
	}
	if err := zw.Close(); err != nil {
		return s, err
	}
	if fi, err := out.Stat(); err == nil {
		s.CompressedBytes = fi.Size()
	}
	return s, nil
}
