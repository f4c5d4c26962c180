// Package layercache keeps the results of analysing image layers, keyed by everything that
// decides them: in memory as the decoded values themselves (a warm rescan in the same process
// decodes nothing), and optionally encoded in a size-bounded directory that outlives the process.
// Entries on disk carry a checksum; a corrupt or truncated one, or one its decoder refuses, is
// removed and reported as a miss, never returned.
package layercache

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults for New.
const (
	DefaultMemoryBytes = 64 << 20
	DefaultDiskBytes   = 2 << 30
)

// magic starts every entry file; bump it when the entry layout changes (what the data inside
// means is versioned by the keys the callers choose).
var magic = []byte("embargo-layercache-1\n")

const suffix = ".entry"

// Cache is safe for concurrent use.
type Cache struct {
	dir      string
	maxMem   int64
	maxDisk  int64
	mu       sync.Mutex
	mem      map[string]*list.Element
	lru      *list.List
	memBytes int64
	disk     int64
}

type memEntry struct {
	key   string
	value any
	size  int64
}

// Decode turns an entry's bytes back into the value that was put; an error makes it a miss.
type Decode func([]byte) (any, error)

// Encode returns the bytes an entry keeps on disk.
type Encode func() ([]byte, error)

// New returns a cache holding up to memBytes in memory (0: DefaultMemoryBytes) and, with dir
// non-empty, up to diskBytes in dir (0: DefaultDiskBytes), least recently used evicted first.
func New(dir string, memBytes, diskBytes int64) (*Cache, error) {
	if memBytes <= 0 {
		memBytes = DefaultMemoryBytes
	}
	if diskBytes <= 0 {
		diskBytes = DefaultDiskBytes
	}
	c := &Cache{dir: dir, maxMem: memBytes, maxDisk: diskBytes, mem: map[string]*list.Element{}, lru: list.New()}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for _, e := range c.entries() {
			c.disk += e.size
		}
		c.evict()
	}
	return c, nil
}

func (c *Cache) file(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(h[:])+suffix)
}

// Get returns the value stored under key: from memory as it was put (shared: callers must not
// modify it), else read from disk and decoded.
func (c *Cache) Get(key string, decode Decode) (any, bool) {
	c.mu.Lock()
	if el, ok := c.mem[key]; ok {
		c.lru.MoveToFront(el)
		v := el.Value.(*memEntry).value
		c.mu.Unlock()
		return v, true
	}
	c.mu.Unlock()
	if c.dir == "" {
		return nil, false
	}
	f := c.file(key)
	raw, err := os.ReadFile(f)
	if err != nil {
		return nil, false
	}
	data, err := decodeEntry(key, raw)
	if err != nil {
		c.remove(f, int64(len(raw)))
		return nil, false
	}
	v, err := decode(data)
	if err != nil {
		c.remove(f, int64(len(raw)))
		return nil, false
	}
	now := time.Now()
	_ = os.Chtimes(f, now, now) // the disk's LRU order
	c.putMem(key, v, int64(len(data)))
	return v, true
}

// Put keeps v under key in memory, counted as size bytes, and with a directory writes encode's
// bytes to disk. A failure to encode or write only costs a later rescan.
func (c *Cache) Put(key string, v any, size int64, encode Encode) {
	c.putMem(key, v, size)
	if c.dir == "" {
		return
	}
	data, err := encode()
	if err != nil {
		return
	}
	raw := encodeEntry(key, data)
	f := c.file(key)
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(raw)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), f) != nil {
		_ = os.Remove(tmp.Name())
		return
	}
	c.mu.Lock()
	c.disk += int64(len(raw))
	over := c.disk > c.maxDisk
	c.mu.Unlock()
	if over {
		c.evict()
	}
}

func (c *Cache) putMem(key string, v any, n int64) {
	if n > c.maxMem/4 {
		return // one entry may not flush the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mem[key]; ok {
		e := el.Value.(*memEntry)
		c.memBytes -= e.size
		e.value, e.size = v, n
		c.lru.MoveToFront(el)
	} else {
		c.mem[key] = c.lru.PushFront(&memEntry{key: key, value: v, size: n})
	}
	c.memBytes += n
	for c.memBytes > c.maxMem {
		el := c.lru.Back()
		e := el.Value.(*memEntry)
		c.lru.Remove(el)
		delete(c.mem, e.key)
		c.memBytes -= e.size
	}
}

func (c *Cache) remove(f string, size int64) {
	if os.Remove(f) == nil {
		c.mu.Lock()
		c.disk -= size
		c.mu.Unlock()
	}
}

type diskEntry struct {
	path  string
	size  int64
	mtime time.Time
}

func (c *Cache) entries() []diskEntry {
	des, _ := os.ReadDir(c.dir)
	var out []diskEntry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), suffix) {
			if strings.HasPrefix(de.Name(), ".tmp-") {
				_ = os.Remove(filepath.Join(c.dir, de.Name())) // a write a crash cut short
			}
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, diskEntry{path: filepath.Join(c.dir, de.Name()), size: fi.Size(), mtime: fi.ModTime()})
	}
	return out
}

// evict removes the least recently used entries until the directory is at 90% of its bound.
func (c *Cache) evict() {
	es := c.entries()
	sort.Slice(es, func(i, j int) bool { return es[i].mtime.Before(es[j].mtime) })
	var total int64
	for _, e := range es {
		total += e.size
	}
	target := c.maxDisk * 9 / 10
	for _, e := range es {
		if total <= target {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
	c.mu.Lock()
	c.disk = total
	c.mu.Unlock()
}

// DiskBytes is the size of the entries on disk.
func (c *Cache) DiskBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disk
}

// An entry file is magic, sha256(key), sha256(data), len(data) as 8 bytes, data.
func encodeEntry(key string, data []byte) []byte {
	kh := sha256.Sum256([]byte(key))
	dh := sha256.Sum256(data)
	out := make([]byte, 0, len(magic)+64+8+len(data))
	out = append(out, magic...)
	out = append(out, kh[:]...)
	out = append(out, dh[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(data)))
	return append(out, data...)
}

var errCorrupt = errors.New("corrupt cache entry")

func decodeEntry(key string, raw []byte) ([]byte, error) {
	if len(raw) < len(magic)+72 || !bytes.Equal(raw[:len(magic)], magic) {
		return nil, errCorrupt
	}
	raw = raw[len(magic):]
	kh := sha256.Sum256([]byte(key))
	if !bytes.Equal(raw[:32], kh[:]) {
		return nil, errCorrupt
	}
	n := binary.BigEndian.Uint64(raw[64:72])
	data := raw[72:]
	if uint64(len(data)) != n {
		return nil, errCorrupt
	}
	if dh := sha256.Sum256(data); !bytes.Equal(raw[32:64], dh[:]) {
		return nil, errCorrupt
	}
	return data, nil
}
