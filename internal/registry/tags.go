package registry

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// TagCache remembers which digest an image reference resolved to in a namespace (pull secrets
// are per namespace, so one registry may answer differently), and when. Admission and the audit
// each keep one; each decides how old an answer it trusts, so the cache itself never expires
// entries, it only evicts the least recently used beyond its size.
type TagCache struct {
	entries *lru.Cache[string, Resolution]
}

// Resolution is what a tag resolved to, and when.
type Resolution struct {
	Target Target
	At     time.Time
}

// NewTagCache keeps up to size namespace/image resolutions (0: 16384).
func NewTagCache(size int) *TagCache {
	if size <= 0 {
		size = 16384
	}
	c, _ := lru.New[string, Resolution](size) // errors only on size <= 0
	return &TagCache{entries: c}
}

func tagKey(namespace, image string) string { return namespace + "\x00" + image }

// Get returns image's last resolution in namespace.
func (c *TagCache) Get(namespace, image string) (Resolution, bool) {
	return c.entries.Get(tagKey(namespace, image))
}

// Put records a resolution at at and reports whether it taught anything new: the image was not
// known, or its digest moved.
func (c *TagCache) Put(namespace, image string, t Target, at time.Time) bool {
	prev, ok := c.entries.Get(tagKey(namespace, image))
	c.entries.Add(tagKey(namespace, image), Resolution{Target: t, At: at})
	return !ok || prev.Target.Digest != t.Digest
}

// Fresh returns image's resolution in namespace if it is younger than ttl at now.
func (c *TagCache) Fresh(namespace, image string, ttl time.Duration, now time.Time) (Target, bool) {
	r, ok := c.Get(namespace, image)
	if !ok || now.Sub(r.At) >= ttl {
		return Target{}, false
	}
	return r.Target, true
}
