// Package cache keeps scan records by image digest: a size-bounded in-memory LRU in front of a
// persistent Store (ImageScan objects in the cluster), with singleflight so that N pods of one
// new image cause one scan.
package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/embargo-dev/embargo/internal/match"
)

// Record is what a scan of one digest found: enough to re-match any policy without pulling the
// image again, never a whole SBOM.
type Record struct {
	Digest         string            `json:"digest"`
	Image          string            `json:"image"`
	Platforms      []string          `json:"platforms"`
	Inventories    []match.Inventory `json:"inventories"`
	PackageCount   int               `json:"packageCount"`
	ScannedAt      time.Time         `json:"scannedAt"`
	ScannerVersion string            `json:"scannerVersion"`
}

// Store persists records. Load returns (nil, nil) for an unknown digest.
type Store interface {
	Load(ctx context.Context, digest string) (*Record, error)
	Save(ctx context.Context, rec *Record) error
}

// Cache is safe for concurrent use.
type Cache struct {
	mem   *lru.Cache[string, *Record]
	store Store
	group singleflight.Group
}

// New returns a cache holding up to size records in memory; store may be nil.
func New(size int, store Store) *Cache {
	if size <= 0 {
		size = 1024
	}
	mem, _ := lru.New[string, *Record](size)
	return &Cache{mem: mem, store: store}
}

// Memory returns the in-memory record only: the admission hot path's microsecond answer.
func (c *Cache) Memory(digest string) (*Record, bool) { return c.mem.Get(digest) }

// Get returns the record from memory or, failing that, from the store.
func (c *Cache) Get(ctx context.Context, digest string) (*Record, bool) {
	if r, ok := c.mem.Get(digest); ok {
		return r, true
	}
	if c.store == nil {
		return nil, false
	}
	r, err := c.store.Load(ctx, digest)
	if err != nil || r == nil {
		return nil, false
	}
	c.mem.Add(digest, r)
	return r, true
}

// Outcome is the result of a Do call.
type Outcome struct {
	Record *Record
	Err    error
	// Shared is true when another caller's flight produced it.
	Shared bool
}

// Do runs fn once per digest at a time: concurrent callers for the same digest share one run.
// A successful record is kept in memory and saved to the store in the background. The caller may stop waiting on
// the channel; fn goes on.
func (c *Cache) Do(digest string, fn func() (*Record, error)) <-chan Outcome {
	out := make(chan Outcome, 1)
	ch := c.group.DoChan(digest, func() (any, error) {
		// A caller that missed the cache just before another flight for this digest ended
		// starts a new flight: answer it from that flight's record instead of a second pull.
		if r, ok := c.mem.Get(digest); ok {
			return r, nil
		}
		rec, err := fn()
		if err != nil {
			return nil, err
		}
		c.mem.Add(digest, rec)
		if c.store != nil {
			// persisting costs API round trips an admission waiting on this scan need not pay:
			// the memory copy answers at once
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = c.store.Save(ctx, rec) // on failure the memory copy still serves; the next scan retries
			}()
		}
		return rec, nil
	})
	go func() {
		r := <-ch
		o := Outcome{Err: r.Err, Shared: r.Shared}
		if r.Err == nil {
			o.Record = r.Val.(*Record)
		}
		out <- o
	}()
	return out
}

// MaxEncoded bounds a record's compressed form so the object holding it stays far below etcd's
// 1.5 MiB limit.
const MaxEncoded = 512 << 10

// Encode compresses a record's inventories for storage.
func Encode(rec *Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(rec.Inventories); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxEncoded {
		return nil, fmt.Errorf("record of %s is %d bytes compressed, over the %d limit", rec.Digest, buf.Len(), MaxEncoded)
	}
	return buf.Bytes(), nil
}

// Decode reverses Encode.
func Decode(data []byte) ([]match.Inventory, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	var invs []match.Inventory
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&invs); err != nil {
		return nil, err
	}
	return invs, nil
}
