// Package scan is Embargo's one pipeline, shared by the CLI, the admission webhook and the
// audit controllers: resolve a reference to a digest, answer from the cache or pull and scan it
// once, then match inventories against compiled policies.
package scan

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/embargo-dev/embargo/internal/attached"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/layercache"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/sbom"
	"github.com/embargo-dev/embargo/internal/version"
)

// DefaultMaxImageFiles is the default bound on one platform image's files.
const DefaultMaxImageFiles = sbom.DefaultMaxFiles

// Options configure an Engine.
type Options struct {
	Registry registry.Options
	// Platforms to scan in an image index (empty: every platform).
	Platforms []string
	// TempDir holds unpacked layers during a scan ("": the system default).
	TempDir string
	// MaxConcurrent bounds scans running at once (0: 2). Background scans never take the last slot.
	MaxConcurrent int
	// ScanTimeout bounds one scan, however long its callers wait (0: 5 minutes).
	ScanTimeout time.Duration
	// CacheSize is the number of records kept in memory (0: 1024).
	CacheSize int
	// Store persists records (nil: memory only).
	Store cache.Store
	// PathRules returns the path globs of the catalog and every policy now (nil: keep every
	// file). Records keep only the files these match, and a record that kept no files for a
	// rule returned later is rescanned.
	PathRules func(ctx context.Context) ([]string, error)
	// MaxImageFiles bounds the files (tar entries) of one platform image (0: sbom.DefaultMaxFiles).
	MaxImageFiles int64
	// LayerCacheDir keeps layer results on disk across processes ("": memory only).
	LayerCacheDir string
	// LayerCacheBytes bounds LayerCacheDir (0: layercache.DefaultDiskBytes).
	LayerCacheBytes int64
	// NoLayerCache analyses every layer of every new image again.
	NoLayerCache bool
	// WholeImage scans with syft over the whole squashed image, as before per-layer analysis;
	// kept to compare the two.
	WholeImage bool
	// IgnoreAttached skips the SBOMs images carry (BuildKit attestations, OCI referrers, cosign
	// tags); by default they are read, within attached.NewBudget per image, and recorded as
	// declared inventories beside the scanned ones.
	IgnoreAttached bool
}

// Priority orders scans: admission waits on Foreground scans; the audit uses Background.
type Priority int

const (
	Foreground Priority = iota
	Background
)

// Engine is safe for concurrent use; build one per process.
type Engine struct {
	opts  Options
	reg   *registry.Client
	gen   *sbom.Generator
	cache *cache.Cache
	slots chan struct{}
	bg    chan struct{}
}

// New builds the engine. syft's shared state (a second or more) is built in the background and
// overlaps the first pull.
func New(opts Options) (*Engine, error) {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = 5 * time.Minute
	}
	if opts.Registry.UserAgent == "" {
		opts.Registry.UserAgent = "embargo/" + version.Version
	}
	var lc sbom.Cache
	if !opts.NoLayerCache {
		c, err := layercache.New(opts.LayerCacheDir, 0, opts.LayerCacheBytes)
		if err != nil {
			return nil, fmt.Errorf("layer cache: %w", err)
		}
		lc = c
	}
	gen, err := sbom.NewGenerator(sbom.Options{
		Cache:    lc,
		TempDir:  opts.TempDir,
		MaxFiles: opts.MaxImageFiles,
		// a scan's share of the CPUs: MaxConcurrent scans may run at once
		Workers: max(1, runtime.GOMAXPROCS(0)/opts.MaxConcurrent),
	})
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:  opts,
		reg:   registry.New(opts.Registry),
		gen:   gen,
		cache: cache.New(opts.CacheSize, opts.Store),
		slots: make(chan struct{}, opts.MaxConcurrent),
		bg:    make(chan struct{}, max(1, opts.MaxConcurrent-1)),
	}
	if opts.PathRules != nil {
		e.cache.Usable = e.answers
	}
	return e, nil
}

// pathRules returns the path globs records must answer; ok is false when every file is kept
// (no PathRules) or they cannot be listed now.
func (e *Engine) pathRules() (rules []string, ok bool) {
	if e.opts.PathRules == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rules, err := e.opts.PathRules(ctx)
	return rules, err == nil
}

// answers reports whether rec can be matched against today's path rules. When the rules cannot
// be listed it trusts the record rather than rescan everything.
func (e *Engine) answers(rec *cache.Record) bool {
	rules, ok := e.pathRules()
	return !ok || rec.Answers(rules)
}

// Resolve returns the digest an image reference points to (no registry call for a digest).
func (e *Engine) Resolve(ctx context.Context, image string, kc authn.Keychain) (registry.Target, error) {
	return e.reg.Resolve(ctx, image, kc)
}

// Cached returns the record of digest from memory only.
func (e *Engine) Cached(digest string) (*cache.Record, bool) {
	r, ok := e.cache.Memory(digest)
	if ok {
		metrics.CacheLookups.WithLabelValues("hit").Inc()
	}
	return r, ok
}

// Lookup returns the record of digest from memory or the store, without scanning.
func (e *Engine) Lookup(ctx context.Context, digest string) (*cache.Record, bool) {
	return e.cache.Get(ctx, digest)
}

// Recorded returns the record of digest from memory or the store even when it no longer
// answers today's path rules: what the audit judges by until the rescan that Lookup's miss
// starts replaces it.
func (e *Engine) Recorded(ctx context.Context, digest string) (*cache.Record, bool) {
	return e.cache.Recorded(ctx, digest)
}

// Scan returns the record of t, from the cache or by pulling and scanning it. Concurrent calls
// for one digest share one scan. The scan runs detached from ctx, bounded by ScanTimeout: ctx only
// bounds the wait, so a caller that gives up (the webhook's budget) leaves the scan to finish and
// fill the cache for the retry.
func (e *Engine) Scan(ctx context.Context, t registry.Target, kc authn.Keychain, prio Priority) (*cache.Record, error) {
	key := t.Digest.String()
	if r, ok := e.cache.Get(ctx, key); ok {
		metrics.CacheLookups.WithLabelValues("hit").Inc()
		return r, nil
	}
	metrics.CacheLookups.WithLabelValues("miss").Inc()
	ch := e.cache.Do(key, func() (*cache.Record, error) { return e.scan(t, kc, prio) })
	select {
	case o := <-ch:
		return o.Record, o.Err
	case <-ctx.Done():
		return nil, &registry.Error{Kind: registry.KindTimeout, Ref: t.Ref.String(), Err: fmt.Errorf("scan still running: %w", ctx.Err())}
	}
}

func (e *Engine) acquire(ctx context.Context, prio Priority) (func(), error) {
	if prio == Background {
		select {
		case e.bg <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		if prio == Background {
			<-e.bg
		}
		return nil, ctx.Err()
	}
	return func() {
		<-e.slots
		if prio == Background {
			<-e.bg
		}
	}, nil
}

func (e *Engine) scan(t registry.Target, kc authn.Keychain, prio Priority) (rec *cache.Record, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.ScanTimeout)
	defer cancel()
	release, err := e.acquire(ctx, prio)
	if err != nil {
		return nil, &registry.Error{Kind: registry.KindTimeout, Ref: t.Ref.String(), Err: errors.New("waited too long for a scan slot")}
	}
	defer release()

	metrics.ScansInFlight.Inc()
	start := time.Now()
	defer func() {
		metrics.ScansInFlight.Dec()
		outcome := "success"
		if err != nil {
			outcome = string(registry.KindOf(err))
			if outcome == "" {
				outcome = "error"
			}
		}
		metrics.ScanDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}()

	images, err := e.reg.Fetch(ctx, t, kc, e.opts.Platforms)
	if err != nil {
		return nil, err
	}
	rec = &cache.Record{
		Digest:         t.Digest.String(),
		Image:          t.Ref.String(),
		ScannedAt:      time.Now().UTC().Truncate(time.Second),
		ScannerVersion: version.Version,
	}
	budget := attached.NewBudget() // one for the whole artifact: index and every platform
	for _, pi := range images {
		scanPlatform := e.gen.ScanLayers
		if e.opts.WholeImage {
			scanPlatform = e.gen.Scan
		}
		res, err := scanPlatform(ctx, t.Ref.String(), pi)
		if err != nil {
			return nil, err
		}
		rec.Platforms = append(rec.Platforms, pi.Platform)
		rec.Inventories = append(rec.Inventories, res.Inventory)
		rec.PackageCount += res.PackageCount
		if !e.opts.IgnoreAttached {
			rec.Inventories = append(rec.Inventories, attached.Platform(ctx, pi, budget)...)
		}
	}
	if !e.opts.IgnoreAttached {
		rec.Inventories = append(rec.Inventories, e.referrers(ctx, t, kc, images, budget)...)
	}
	slices.Sort(rec.Platforms)
	if rules, ok := e.pathRules(); ok {
		rec = rec.Trim(rules)
	}
	return rec, nil
}

// referrers reads the SBOMs attached to the artifact and to each platform image as OCI
// referrers or cosign tags, from the repository the reference names.
func (e *Engine) referrers(ctx context.Context, t registry.Target, kc authn.Keychain, images []registry.PlatformImage, budget *attached.Budget) []match.Inventory {
	subjects := []attached.Subject{{Digest: t.Digest}}
	if len(images) == 1 && images[0].Digest == t.Digest {
		subjects[0].Platform = images[0].Platform
	} else {
		for _, pi := range images {
			subjects = append(subjects, attached.Subject{Platform: pi.Platform, Digest: pi.Digest})
		}
	}
	return attached.Remote(ctx, t.Ref.Context(), subjects, e.reg.RemoteOptions(ctx, t.Ref, kc), budget)
}
