// Command fsbench builds benchmark images from this machine's own filesystem and serves them
// from a disk-backed OCI registry on 127.0.0.1: a base layer (the dpkg database,
// /usr/lib/x86_64-linux-gnu, /usr/share), and on it a JVM layer (/usr/lib/jvm, when present), a
// Go toolchain layer (/usr/local/go) and, on the Go image, a small layer installing kesl (a
// rewritten dpkg status file and its files, as in internal/test/testimage). Layers are written once
// as gzip files under -dir and reused by later runs. It prints "name ref new" lines, then "ready",
// then serves until interrupted; new lists (comma-separated) the layer files of that image that
// no image printed before it has, the layers a warm scan in that order must analyse.
//
//	go run ./hack/fsbench -dir /var/tmp/embargo-fsbench
package main

import (
	"archive/tar"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "embargo-fsbench"), "where layers and registry blobs are kept")
	base := flag.String("base", "/etc/os-release,/etc/debian_version,/var/lib/dpkg,/usr/lib/x86_64-linux-gnu,/usr/share", "comma-separated paths of the base layer")
	flag.Parse()
	if err := run(*dir, strings.Split(*base, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "fsbench:", err)
		os.Exit(1)
	}
}

func run(dir string, base []string) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return err
	}
	files := map[v1.Hash]string{} // layer digest -> its gzip file
	l := func(name string, paths ...string) (v1.Layer, error) {
		file := filepath.Join(dir, name+".tar.gz")
		layer, err := hostLayer(file, paths)
		if err != nil {
			return nil, err
		}
		d, err := layer.Digest()
		if err != nil {
			return nil, err
		}
		files[d] = file
		return layer, nil
	}
	baseL, err := l("base", base...)
	if err != nil {
		return err
	}
	images := []struct {
		name   string
		layers []v1.Layer
	}{{"base", []v1.Layer{baseL}}}
	if _, err := os.Stat("/usr/lib/jvm"); err == nil {
		jvm, err := l("jvm", "/usr/lib/jvm")
		if err != nil {
			return err
		}
		images = append(images, struct {
			name   string
			layers []v1.Layer
		}{"base+jvm", []v1.Layer{baseL, jvm}})
	}
	goL, err := l("go", "/usr/local/go")
	if err != nil {
		return err
	}
	kesl, err := keslLayer(filepath.Join(dir, "kesl.tar.gz"))
	if err != nil {
		return err
	}
	if d, err := kesl.Digest(); err == nil {
		files[d] = filepath.Join(dir, "kesl.tar.gz")
	}
	images = append(images,
		struct {
			name   string
			layers []v1.Layer
		}{"base+go", []v1.Layer{baseL, goL}},
		struct {
			name   string
			layers []v1.Layer
		}{"base+go+kesl", []v1.Layer{baseL, goL, kesl}},
	)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs")))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	host := ln.Addr().String()
	seen := map[v1.Hash]bool{}
	for _, im := range images {
		var added []string
		for _, l := range im.layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			if !seen[d] {
				seen[d] = true
				added = append(added, files[d])
			}
		}
		img, err := ti.Image(nil, im.layers...)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(host+"/bench/"+strings.ReplaceAll(im.name, "+", "-")+":1", name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img); err != nil {
			return fmt.Errorf("pushing %s: %w", im.name, err)
		}
		fmt.Println(im.name, ref.String(), strings.Join(added, ","))
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// hostLayer writes paths (recursively) as a gzip tar at file, unless it is already there.
func hostLayer(file string, paths []string) (v1.Layer, error) {
	if _, err := os.Stat(file); err != nil {
		if err := writeLayer(file, paths); err != nil {
			return nil, err
		}
	}
	return tarball.LayerFromFile(file)
}

func writeLayer(file string, paths []string) error {
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable: left out
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				link, _ = os.Readlink(p)
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
				return nil
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return nil
			}
			h.Name = strings.TrimPrefix(p, "/")
			if fi.IsDir() {
				h.Name += "/"
			}
			h.Uname, h.Gname = "", ""
			if fi.Mode().IsRegular() {
				src, err := os.Open(p)
				if err != nil {
					return nil
				}
				defer src.Close()
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				_, err = io.Copy(tw, src)
				return err
			}
			return tw.WriteHeader(h)
		})
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// keslLayer installs kesl as dpkg would: the whole status file rewritten with one more entry.
// Its gzip blob is written to file, for the bench script's inflate baseline.
func keslLayer(file string) (v1.Layer, error) {
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		return nil, err
	}
	entry := ti.DpkgStatus(ti.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: ti.KasperskyMaintainer, Description: "Kaspersky Endpoint Security for Linux"})
	l, err := ti.Layer(
		ti.File{Path: "/var/lib/dpkg/status", Content: append(append(status, '\n'), entry.Content...)},
		ti.DpkgFiles("kesl", "/opt/kaspersky/kesl/bin/kesl-control"),
		ti.File{Path: "/opt/kaspersky/kesl/bin/kesl-control", Content: make([]byte, 180<<10), Mode: 0o755},
	)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, blob, 0o644); err != nil {
		return nil, err
	}
	return l, nil
}
