// Package catalog is Embargo's built-in vendor catalog: the vendors that US law or federal
// directives ban, each with the instruments that ban it and the rules that recognise its
// software. The catalog is a versioned YAML file embedded in the binary.
package catalog

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
)

//go:embed catalog.yaml
var embedded []byte

// Entry is one banned vendor.
type Entry struct {
	// ID names the entry in policies (VendorSelector.Catalog), e.g. "kaspersky".
	ID string `json:"id"`
	// Vendor is the legal name.
	Vendor  string   `json:"vendor"`
	Aliases []string `json:"aliases,omitempty"`
	// Scope says in one line what the ban covers.
	Scope string `json:"scope"`
	// Basis lists the instruments, one line each, with dates and scope.
	Basis []string `json:"basis"`
	// Coverage says honestly what the rules do and do not recognise.
	Coverage string               `json:"coverage"`
	Rules    v1alpha1.VendorRules `json:"rules"`
}

// Catalog is a versioned list of entries.
type Catalog struct {
	Version string  `json:"version"`
	Entries []Entry `json:"entries"`
}

var (
	defaultOnce    sync.Once
	defaultCatalog *Catalog
)

// Default is the built-in catalog, parsed once from the embedded YAML. It panics if the
// embedded file is invalid, which a test rules out. Callers share it and must not modify it;
// Get returns copies.
func Default() *Catalog {
	defaultOnce.Do(func() {
		c, err := Parse(embedded)
		if err != nil {
			panic(fmt.Sprintf("embedded catalog.yaml is invalid: %v", err))
		}
		defaultCatalog = c
	})
	return defaultCatalog
}

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionPattern = regexp.MustCompile(`^[0-9]{4}\.[0-9]+\.[0-9]+$`)
)

// Parse reads a catalog strictly: unknown or duplicate fields, duplicate or malformed ids,
// missing vendor, scope, basis or coverage, and rules that do not compile are errors that
// name the entry and field.
func Parse(data []byte) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if !versionPattern.MatchString(c.Version) {
		return nil, fmt.Errorf("catalog: version %q must look like 2026.11.0 (year.minor.patch)", c.Version)
	}
	if len(c.Entries) == 0 {
		return nil, errors.New("catalog: entries is empty")
	}
	seen := make(map[string]int, len(c.Entries))
	for i := range c.Entries {
		e := &c.Entries[i]
		where := fmt.Sprintf("catalog: entries[%d]", i)
		if e.ID != "" {
			where = fmt.Sprintf("catalog: entries[%d] (%s)", i, e.ID)
		}
		if !idPattern.MatchString(e.ID) {
			return nil, fmt.Errorf("%s: id %q must be lower-case letters, digits and dashes", where, e.ID)
		}
		if j, dup := seen[e.ID]; dup {
			return nil, fmt.Errorf("%s: duplicate id %q, first used by entries[%d]", where, e.ID, j)
		}
		seen[e.ID] = i
		for field, v := range map[string]string{"vendor": e.Vendor, "scope": e.Scope, "coverage": e.Coverage} {
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("%s: %s is empty", where, field)
			}
		}
		if len(e.Basis) == 0 {
			return nil, fmt.Errorf("%s: basis is empty: name the instruments that ban the vendor", where)
		}
		for j, b := range e.Basis {
			if strings.TrimSpace(b) == "" {
				return nil, fmt.Errorf("%s: basis[%d] is empty", where, j)
			}
		}
		if _, err := e.Compile(); err != nil {
			return nil, fmt.Errorf("%s: rules: %w", where, err)
		}
	}
	return &c, nil
}

// Get returns a copy of the entry with the given id.
func (c *Catalog) Get(id string) (*Entry, bool) {
	for i := range c.Entries {
		if c.Entries[i].ID == id {
			e := c.Entries[i]
			e.Aliases = slices.Clone(e.Aliases)
			e.Basis = slices.Clone(e.Basis)
			e.Rules = *e.Rules.DeepCopy()
			return &e, true
		}
	}
	return nil, false
}

// IDs returns the entry ids in catalog order.
func (c *Catalog) IDs() []string {
	ids := make([]string, len(c.Entries))
	for i := range c.Entries {
		ids[i] = c.Entries[i].ID
	}
	return ids
}

// Compile compiles the entry's rules into a matcher vendor tagged with the entry id.
func (e *Entry) Compile() (*match.Vendor, error) {
	return match.Compile(e.Vendor, e.ID, e.Basis, e.Rules)
}

// Paths are the path rules of every entry: the files a stored inventory keeps when no policy
// adds its own.
func (c *Catalog) Paths() []string {
	var out []string
	for _, e := range c.Entries {
		if v, err := e.Compile(); err == nil {
			out = append(out, v.Paths()...)
		}
	}
	return out
}
