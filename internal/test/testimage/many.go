package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ManyFiles is a one-layer image of n empty files in directories of 1,000: tiny on the wire
// (a few MB for a million), costly for a scanner that keeps a node per file.
func ManyFiles(n int) (v1.Image, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(1500000000, 0)
	for i := range n {
		if i%1000 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("many/%04d/", i/1000), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("many/%04d/%06d", i/1000, i), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	return Image(nil, l)
}
