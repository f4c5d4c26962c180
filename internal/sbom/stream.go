package sbom

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/embargo-dev/embargo/internal/registry"
)

// A layer is read through three stages that run at once, so that neither the network, the
// decompressor nor the tar parser waits on the others:
//
//  1. read-ahead: a goroutine reads the compressed blob (go-containerregistry checks its
//     digest at the end) into a few chunks ahead of the decompressor;
//  2. decompression: pgzip inflates in its own goroutine, with the CRC in another, a few blocks
//     ahead of the reader (zstd decodes in the reader's goroutine; an uncompressed layer is
//     passed on);
//  3. the caller parses the tar and writes out the files a cataloger reads.
//
// Inflating is the one stage that needs a whole CPU (about 60% of a cold scan's CPU time); the
// others mostly wait on it, so a layer keeps about one CPU busy and a scan streams Workers layers
// at once: the share of the CPUs its slot has (scan.Engine sets GOMAXPROCS/MaxConcurrent).
//
// The stages hold at most readAheadChunks×chunkSize compressed and gzipBlocks×gzipBlockSize
// uncompressed bytes, whatever the layer's size. The uncompressed bytes count against the
// image's size budget (registry.UncompressedLimiter).
const (
	chunkSize       = 1 << 20
	readAheadChunks = 8
	gzipBlockSize   = 1 << 20
	gzipBlocks      = 4
	zstdMaxWindow   = 128 << 20
)

// layerStream is one layer's uncompressed tar.
type layerStream struct {
	ra  *readAhead
	dec io.Closer // the decompressor, nil for an uncompressed layer
	r   io.ReadCloser
}

// openLayer starts reading l. Close it; to have the blob's digest checked, finish it instead.
func openLayer(ctx context.Context, l v1.Layer) (*layerStream, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	declared := int64(-1)
	if n, err := l.Size(); err == nil && n > 0 {
		declared = n
	}
	ra := newReadAhead(ctx, rc, declared)
	s := &layerStream{ra: ra}
	br := bufio.NewReaderSize(ra, 256<<10) // klauspost's inflate has a fast path for a *bufio.Reader
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		s.Close()
		return nil, err
	}
	var raw io.ReadCloser
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := pgzip.NewReaderN(br, gzipBlockSize, gzipBlocks)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.dec, raw = z, z
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			s.Close()
			return nil, err
		}
		rc := z.IOReadCloser()
		s.dec, raw = rc, rc
	default:
		raw = io.NopCloser(br)
	}
	s.r = registry.UncompressedLimiter(l, raw)
	return s, nil
}

func (s *layerStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// finish reads what the tar parser left (padding, trailing data, the gzip trailer) to the end
// of the blob, so that the digest of what was parsed is checked before its result is trusted
// and cached, then closes the stream. Read only: pgzip's WriteTo panics after a partial Read.
func (s *layerStream) finish() error {
	buf := make([]byte, 32<<10)
	for {
		_, err := s.r.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Close()
			return err
		}
	}
	return s.Close()
}

// Close stops every stage and waits for their goroutines.
func (s *layerStream) Close() error {
	s.ra.Close() // first: it unblocks a decompressor waiting for input
	if s.dec != nil {
		_ = s.dec.Close()
	}
	return nil
}

// readAhead reads rc in a goroutine, up to readAheadChunks chunks ahead of Read.
type readAhead struct {
	rc     io.ReadCloser
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	err    error // set before full is closed
	cur    []byte
	chunk  []byte
	closed sync.Once
	wg     sync.WaitGroup
}

// errOverDeclared: a registry sent more than the manifest says the layer is.
var errOverDeclared = errors.New("the registry sent more bytes than the manifest declares for the layer")

func newReadAhead(ctx context.Context, rc io.ReadCloser, declared int64) *readAhead {
	r := &readAhead{rc: rc, full: make(chan []byte, readAheadChunks), free: make(chan []byte, readAheadChunks), done: make(chan struct{})}
	for range readAheadChunks {
		r.free <- nil // allocated on first use: a small layer needs one small chunk
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.full)
		var total int64
		for {
			var b []byte
			select {
			case b = <-r.free:
			case <-r.done:
				r.err = errors.New("layer stream closed")
				return
			}
			if b == nil {
				b = make([]byte, chunkSize)
			}
			n, err := io.ReadFull(rc, b[:cap(b)])
			total += int64(n)
			if declared >= 0 && total > declared {
				r.err = fmt.Errorf("%w (%d)", errOverDeclared, declared)
				return
			}
			if n > 0 {
				select {
				case r.full <- b[:n]:
				case <-r.done:
					r.err = errors.New("layer stream closed")
					return
				}
			}
			switch {
			case err == io.ErrUnexpectedEOF || err == io.EOF:
				r.err = io.EOF
				return
			case err != nil:
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				r.err = err
				return
			}
		}
	}()
	return r
}

func (r *readAhead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.chunk != nil {
			r.free <- r.chunk[:cap(r.chunk)] // never blocks: free holds every chunk
			r.chunk = nil
		}
		b, ok := <-r.full
		if !ok {
			return 0, r.err
		}
		r.chunk, r.cur = b, b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine (closing rc unblocks a read from the network) and waits for it.
func (r *readAhead) Close() {
	r.closed.Do(func() {
		close(r.done)
		_ = r.rc.Close()
		r.wg.Wait()
	})
}
