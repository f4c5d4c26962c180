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
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/metrics"
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
	// Lean is true when the inventories' files were cut down to those PathRules match; a lean
	// record cannot answer a path rule outside PathRules. A record straight from a scan keeps
	// every file.
	Lean      bool     `json:"lean,omitempty"`
	PathRules []string `json:"pathRules,omitempty"`
}

// Answers reports whether the record can be matched against path rules without a rescan.
func (r *Record) Answers(pathRules []string) bool {
	if !r.Lean {
		return true
	}
	for _, p := range pathRules {
		if !slices.Contains(r.PathRules, p) {
			return false
		}
	}
	return true
}

// Trim returns a lean copy of the record keeping only the files some rule of pathRules matches:
// a file no path rule can match cannot change a finding, and file lists are most of an image's
// inventory (100,000 paths against 5,000 packages). Packages, with their vendor fields, purls,
// CPEs and layers, are kept whole, so package, supplier, purl and CPE rules re-match anything.
func (r *Record) Trim(pathRules []string) *Record {
	rules := slices.Clone(pathRules)
	slices.Sort(rules)
	rules = slices.Compact(rules)
	out := *r
	out.Lean, out.PathRules = true, rules
	out.Inventories = make([]match.Inventory, len(r.Inventories))
	for i, inv := range r.Inventories {
		var files []match.File
		for _, f := range inv.Files {
			if slices.ContainsFunc(rules, func(p string) bool { ok, _ := doublestar.Match(p, f.Path); return ok }) {
				files = append(files, f)
			}
		}
		inv.Files = files
		out.Inventories[i] = inv
	}
	return &out
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
	// Usable, when set, rejects records that can no longer answer (a lean record asked about
	// path rules it kept no files for): a lookup misses and the next scan replaces them.
	Usable func(*Record) bool
}

func (c *Cache) usable(r *Record) bool { return c.Usable == nil || c.Usable(r) }

// New returns a cache holding up to size records in memory; store may be nil.
func New(size int, store Store) *Cache {
	if size <= 0 {
		size = 1024
	}
	mem, _ := lru.New[string, *Record](size)
	return &Cache{mem: mem, store: store}
}

// Memory returns the in-memory record only: the admission hot path's microsecond answer.
func (c *Cache) Memory(digest string) (*Record, bool) {
	r, ok := c.mem.Get(digest)
	if !ok || !c.usable(r) {
		return nil, false
	}
	return r, true
}

// Get returns the record from memory or, failing that, from the store.
func (c *Cache) Get(ctx context.Context, digest string) (*Record, bool) {
	if r, ok := c.Memory(digest); ok {
		return r, true
	}
	r := c.load(ctx, digest)
	if r == nil || !c.usable(r) {
		return nil, false
	}
	c.mem.Add(digest, r)
	return r, true
}

// Recorded is Get without the Usable test: a record that no longer answers every path rule
// still answers the rest, and judging by it while its image is rescanned beats judging the
// image unscanned (its package findings would vanish meanwhile).
func (c *Cache) Recorded(ctx context.Context, digest string) (*Record, bool) {
	if r, ok := c.mem.Get(digest); ok {
		return r, true
	}
	r := c.load(ctx, digest)
	if r == nil {
		return nil, false
	}
	c.mem.Add(digest, r)
	return r, true
}

// load reads digest's record from the store (nil: none, or it cannot be read, which is counted
// and logged).
func (c *Cache) load(ctx context.Context, digest string) *Record {
	if c.store == nil {
		return nil
	}
	r, err := c.store.Load(ctx, digest)
	if err != nil {
		metrics.StoreErrors.WithLabelValues("load").Inc()
		log.Log.WithName("cache").Error(err, "cannot load the scan record", "digest", digest)
		return nil
	}
	return r
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
		if r, ok := c.Memory(digest); ok {
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
				// on failure the memory copy still serves; the next scan retries
				if err := c.store.Save(ctx, rec); err != nil {
					metrics.StoreErrors.WithLabelValues("save").Inc()
					log.Log.WithName("cache").Error(err, "cannot persist the scan record", "digest", digest)
				}
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
// 1.5 MiB limit. Lean records are far smaller (see the size tests).
const MaxEncoded = 512 << 10

// stored is the encoded form. Records written before lean records existed are a bare JSON
// array of inventories, every file kept.
type stored struct {
	Lean      bool     `json:"lean,omitempty"`
	PathRules []string `json:"pathRules,omitempty"`
	// Layers are the layer digests packages and files name by index (1-based; 0: none).
	Layers      []string          `json:"layers,omitempty"`
	Inventories []storedInventory `json:"inventories"`
}

// storedInventory is match.Inventory in short form: thousands of packages repeat the same
// layers, the same purl shape and the same name in their CPEs, which gzip alone leaves at
// ~30 bytes a package.
type storedInventory struct {
	Platform string `json:"platform,omitempty"`
	// Source marks an attached SBOM's inventory: without it a declared package would read
	// back as one the scan found.
	Source   *match.Source   `json:"source,omitempty"`
	Packages []storedPackage `json:"p,omitempty"`
	Files    []storedFile    `json:"f,omitempty"`
}

type storedPackage struct {
	Name    string `json:"n"`
	Version string `json:"v,omitempty"`
	Type    string `json:"t,omitempty"`
	// PURL and CPE vendors and products write the package's name as {n} and version as {v}.
	PURL   string        `json:"u,omitempty"`
	Fields []match.Field `json:"f,omitempty"`
	CPEs   []storedCPE   `json:"c,omitempty"`
	// CPEVendors x CPEProducts (vendor-major) replace CPEs when they are that product, as
	// syft's guesses from the name are: ten CPEs a package in two short lists.
	CPEVendors  []string `json:"cv,omitempty"`
	CPEProducts []string `json:"cp,omitempty"`
	CPEDeclared bool     `json:"cd,omitempty"`
	Layer       int      `json:"l,omitempty"`
}

// cartesian returns vendors and products whose vendor-major product is cpes, all declared or
// all not; ok is false when cpes is not such a product.
func cartesian(cpes []match.CPE) (vendors, products []string, declared, ok bool) {
	if len(cpes) < 2 {
		return nil, nil, false, false
	}
	for _, c := range cpes {
		if c.Vendor != cpes[0].Vendor {
			break
		}
		products = append(products, c.Product)
	}
	if len(cpes)%len(products) != 0 {
		return nil, nil, false, false
	}
	declared = cpes[0].Declared
	for i, c := range cpes {
		if i%len(products) == 0 {
			vendors = append(vendors, c.Vendor)
		}
		if c.Vendor != vendors[len(vendors)-1] || c.Product != products[i%len(products)] || c.Declared != declared {
			return nil, nil, false, false
		}
	}
	return vendors, products, declared, true
}

type storedCPE struct {
	Vendor   string `json:"v"`
	Product  string `json:"p,omitempty"`
	Declared bool   `json:"d,omitempty"`
}

type storedFile struct {
	Path  string `json:"p"`
	Layer int    `json:"l,omitempty"`
}

// template replaces name and version in s with {n} and {v} ({u}: the name with underscores for
// dashes, as syft's CPE guesses spell it); a value that already holds a
// brace is kept as it is, marked by a leading "=".
func template(s, name, version string) string {
	if strings.ContainsAny(s, "{}=") || strings.ContainsAny(name+version, "{}") {
		return "=" + s
	}
	if version != "" {
		s = strings.ReplaceAll(s, version, "{v}")
	}
	if name != "" {
		s = strings.ReplaceAll(s, name, "{n}")
		if u := strings.ReplaceAll(name, "-", "_"); u != name {
			s = strings.ReplaceAll(s, u, "{u}")
		}
	}
	return s
}

func untemplate(s, name, version string) string {
	if raw, ok := strings.CutPrefix(s, "="); ok {
		return raw
	}
	// what strings.NewReplacer("{n}", name, "{u}", ..., "{v}", version) does, without building
	// one per CPE: the audit decodes every record it judges (a replacer per call was a fifth of
	// its CPU with 200 images of 500 packages)
	if !strings.Contains(s, "{") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(name) + len(version))
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		if len(s) >= 3 && s[2] == '}' {
			switch s[1] {
			case 'n':
				b.WriteString(name)
				s = s[3:]
				continue
			case 'u':
				b.WriteString(strings.ReplaceAll(name, "-", "_"))
				s = s[3:]
				continue
			case 'v':
				b.WriteString(version)
				s = s[3:]
				continue
			}
		}
		b.WriteByte('{')
		s = s[1:]
	}
}

func toStored(rec *Record) stored {
	st := stored{Lean: rec.Lean, PathRules: rec.PathRules}
	index := map[string]int{}
	layer := func(d string) int {
		if d == "" {
			return 0
		}
		if i, ok := index[d]; ok {
			return i
		}
		st.Layers = append(st.Layers, d)
		index[d] = len(st.Layers)
		return index[d]
	}
	for _, inv := range rec.Inventories {
		si := storedInventory{Platform: inv.Platform, Source: inv.Source}
		for _, p := range inv.Packages {
			sp := storedPackage{Name: p.Name, Version: p.Version, Type: p.Type, Fields: p.Fields, Layer: layer(p.Layer)}
			if p.PURL != "" {
				sp.PURL = template(p.PURL, p.Name, p.Version)
			}
			if vs, ps, declared, ok := cartesian(p.CPEs); ok {
				for _, v := range vs {
					sp.CPEVendors = append(sp.CPEVendors, template(v, p.Name, p.Version))
				}
				for _, pr := range ps {
					sp.CPEProducts = append(sp.CPEProducts, template(pr, p.Name, p.Version))
				}
				sp.CPEDeclared = declared
			} else {
				for _, c := range p.CPEs {
					sp.CPEs = append(sp.CPEs, storedCPE{Vendor: template(c.Vendor, p.Name, p.Version), Product: template(c.Product, p.Name, p.Version), Declared: c.Declared})
				}
			}
			si.Packages = append(si.Packages, sp)
		}
		for _, f := range inv.Files {
			si.Files = append(si.Files, storedFile{Path: f.Path, Layer: layer(f.Layer)})
		}
		st.Inventories = append(st.Inventories, si)
	}
	return st
}

func (st stored) record(rec *Record) error {
	layer := func(i int) (string, error) {
		if i == 0 {
			return "", nil
		}
		if i < 0 || i > len(st.Layers) {
			return "", fmt.Errorf("layer index %d out of range", i)
		}
		return st.Layers[i-1], nil
	}
	rec.Lean, rec.PathRules, rec.Inventories = st.Lean, st.PathRules, nil
	for _, si := range st.Inventories {
		inv := match.Inventory{Platform: si.Platform, Source: si.Source}
		for _, sp := range si.Packages {
			l, err := layer(sp.Layer)
			if err != nil {
				return err
			}
			p := match.Package{Name: sp.Name, Version: sp.Version, Type: sp.Type, Fields: sp.Fields, Layer: l}
			if sp.PURL != "" {
				p.PURL = untemplate(sp.PURL, sp.Name, sp.Version)
			}
			for _, c := range sp.CPEs {
				p.CPEs = append(p.CPEs, match.CPE{Vendor: untemplate(c.Vendor, sp.Name, sp.Version), Product: untemplate(c.Product, sp.Name, sp.Version), Declared: c.Declared})
			}
			for _, v := range sp.CPEVendors {
				for _, pr := range sp.CPEProducts {
					p.CPEs = append(p.CPEs, match.CPE{Vendor: untemplate(v, sp.Name, sp.Version), Product: untemplate(pr, sp.Name, sp.Version), Declared: sp.CPEDeclared})
				}
			}
			inv.Packages = append(inv.Packages, p)
		}
		for _, sf := range si.Files {
			l, err := layer(sf.Layer)
			if err != nil {
				return err
			}
			inv.Files = append(inv.Files, match.File{Path: sf.Path, Layer: l})
		}
		rec.Inventories = append(rec.Inventories, inv)
	}
	return nil
}

// Encode compresses a record's inventories (and which files they kept) for storage.
func Encode(rec *Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(toStored(rec)); err != nil {
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

// decode reverses Encode into rec.
func decode(data []byte, rec *Record) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		rec.Lean, rec.PathRules = false, nil
		return json.Unmarshal(raw, &rec.Inventories)
	}
	var st stored
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	return st.record(rec)
}
