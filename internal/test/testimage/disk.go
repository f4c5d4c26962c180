package testimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushLayers pushes an image whose layers are written by the given functions, each streamed once
// through gzip (at level) straight into the registry's blob directory: nothing of a layer is held
// in memory, as the registry's upload handler would hold it. It needs WithDiskBlobs and returns the
// host/repo@digest reference.
func (r *Registry) PushLayers(repoTag string, level int, layers ...func(*tar.Writer) error) (string, error) {
	if r.blobDir == "" {
		return "", errors.New("PushLayers needs a registry WithDiskBlobs")
	}
	var ls []v1.Layer
	for i, write := range layers {
		l, err := r.writeDiskLayer(level, write)
		if err != nil {
			return "", fmt.Errorf("%s: layer %d: %w", repoTag, i, err)
		}
		ls = append(ls, l)
	}
	img, err := Image(nil, ls...)
	if err != nil {
		return "", err
	}
	// The blobs exist, so the push sends only the config and the manifest.
	return r.Push(repoTag, img)
}

func (r *Registry) writeDiskLayer(level int, write func(*tar.Writer) error) (_ *diskLayer, err error) {
	dir := filepath.Join(r.blobDir, "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(r.blobDir, "layer-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	compressed, uncompressed := sha256.New(), sha256.New()
	var size countWriter
	bw := bufio.NewWriterSize(io.MultiWriter(f, compressed, &size), 1<<20)
	zw, err := gzip.NewWriterLevel(bw, level)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed))
	if err := write(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	l := &diskLayer{
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uncompressed.Sum(nil))},
		size:   int64(size),
	}
	l.file = filepath.Join(dir, l.digest.Hex)
	if err := os.Rename(f.Name(), l.file); err != nil {
		return nil, err
	}
	return l, nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// diskLayer is a gzip layer in a file whose digests are already known.
type diskLayer struct {
	file           string
	digest, diffID v1.Hash
	size           int64
}

func (l *diskLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *diskLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *diskLayer) Size() (int64, error)                { return l.size, nil }
func (l *diskLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *diskLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.file) }

func (l *diskLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.file)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}
