package policy

import (
	"context"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
)

// Set lists the cluster's VendorPolicies compiled, recompiling only those that changed. The
// webhook and the audit share one; a Compiled also memoizes its findings per image digest, so a
// warm admission does no matching at all.
type Set struct {
	Reader  client.Reader
	Catalog *catalog.Catalog

	mu       sync.Mutex
	compiled map[string]compiledEntry
}

// compiledEntry is keyed by what compilation depends on: the spec, identified by UID and
// generation (status writes and label edits change neither).
type compiledEntry struct {
	uid        types.UID
	generation int64
	c          *Compiled
	err        error
}

// Invalid is a policy that failed to compile.
type Invalid struct {
	Policy *v1alpha1.VendorPolicy
	Err    error
}

// List returns the compiled policies, sorted by name, and those that did not compile.
func (s *Set) List(ctx context.Context) ([]*Compiled, []Invalid, error) {
	var list v1alpha1.VendorPolicyList
	if err := s.Reader.List(ctx, &list); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compiled == nil {
		s.compiled = map[string]compiledEntry{}
	}
	seen := make(map[string]bool, len(list.Items))
	var out []*Compiled
	var bad []Invalid
	for i := range list.Items {
		p := &list.Items[i]
		seen[p.Name] = true
		e, ok := s.compiled[p.Name]
		if !ok || e.uid != p.UID || e.generation != p.Generation {
			c, err := Compile(p, s.Catalog)
			e = compiledEntry{uid: p.UID, generation: p.Generation, c: c, err: err}
			s.compiled[p.Name] = e
		}
		if e.err != nil {
			bad = append(bad, Invalid{Policy: p, Err: e.err})
			continue
		}
		out = append(out, e.c)
	}
	for name := range s.compiled {
		if !seen[name] {
			delete(s.compiled, name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, bad, nil
}

// memo holds findings per digest for one Compiled.
type memo struct {
	mu sync.Mutex
	m  map[string][]match.Finding
}

const memoLimit = 8192

// MatchDigest is Match memoized by digest: a record's inventories never change for a digest.
func (c *Compiled) MatchDigest(digest string, invs []match.Inventory) []match.Finding {
	c.memoOnce.Do(func() { c.memo = &memo{m: map[string][]match.Finding{}} })
	c.memo.mu.Lock()
	fs, ok := c.memo.m[digest]
	c.memo.mu.Unlock()
	if ok {
		return fs
	}
	fs = c.Match(invs)
	c.memo.mu.Lock()
	if len(c.memo.m) >= memoLimit {
		c.memo.m = map[string][]match.Finding{}
	}
	c.memo.m[digest] = fs
	c.memo.mu.Unlock()
	return fs
}
