// Package match decides which packages and files of an image belong to a banned vendor. It is
// pure: plain structs in, findings with evidence out; no Kubernetes client, no network.
package match

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/embargo-dev/embargo/api/v1alpha1"
)

// Rule kinds, as they appear in findings.
const (
	RulePackage  = "package"
	RuleSupplier = "supplier"
	RulePURL     = "purl"
	RuleCPE      = "cpe"
	RulePath     = "path"
)

// Inventory is what an image (one platform of it) or an SBOM file contains.
type Inventory struct {
	Platform string `json:"platform,omitempty"`
	// Source is the attached document that declared this inventory; nil for what a scan of the
	// image's files found. A Source with an Error is a document that could not be used.
	Source   *Source   `json:"source,omitempty"`
	Packages []Package `json:"packages,omitempty"`
	// Files are the paths of the final filesystem (whiteouts applied), owned or not.
	Files []File `json:"files,omitempty"`
}

// Package is one installed package with the fields that identify its vendor.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Type is the package URL type: deb, rpm, apk, npm, pypi, maven, golang, ...
	Type string `json:"type,omitempty"`
	PURL string `json:"purl,omitempty"`
	// Fields are vendor-identity fields only ("dpkg Maintainer", "rpm Vendor", ...).
	Fields []Field `json:"fields,omitempty"`
	CPEs   []CPE   `json:"cpes,omitempty"`
	// Layer is the digest of the layer holding the package's record, when known.
	Layer string `json:"layer,omitempty"`
}

// Field is a named vendor-identity value of a package.
type Field struct {
	Name  string `json:"n"`
	Value string `json:"v"`
}

// CPE is a package's CPE; Declared is false when a generator guessed it from the name.
type CPE struct {
	Vendor   string `json:"vendor"`
	Product  string `json:"product,omitempty"`
	Declared bool   `json:"declared,omitempty"`
}

// File is a path in the image's final filesystem and the layer that put it there.
type File struct {
	Path  string `json:"p"`
	Layer string `json:"l,omitempty"`
}

// Source kinds: where an image's attached SBOM was found.
const (
	SourceBuildKit     = "buildkit-attestation"
	SourceReferrer     = "oci-referrer"
	SourceCosignSBOM   = "cosign-sbom"
	SourceCosignAttest = "cosign-attestation"
)

// Source is an SBOM document attached to an image: declared by its builder, not found by
// scanning the image's files.
type Source struct {
	Kind string `json:"kind"`
	// Digest is the document's blob digest.
	Digest string `json:"digest"`
	// Format is the decoded format (spdx-json, cyclonedx-json, syft-json).
	Format string `json:"format,omitempty"`
	// Creator is the tool or organization the document names as its author.
	Creator string `json:"creator,omitempty"`
	// Signed is true when the document came in a DSSE or sigstore envelope carrying a
	// signature. The signature is not verified.
	Signed bool `json:"signed,omitempty"`
	// Error is why the document could not be used.
	Error string `json:"error,omitempty"`
}

// String reads "attached SPDX SBOM sha256:0123456789ab (buildkit-attestation), created by
// Tool: syft-1.0, unsigned".
func (s *Source) String() string {
	format := s.Format
	switch format {
	case "spdx-json":
		format = "SPDX"
	case "cyclonedx-json":
		format = "CycloneDX"
	case "syft-json":
		format = "syft"
	}
	b := "attached"
	if format != "" {
		b += " " + format
	}
	b += " SBOM " + shortDigest(s.Digest) + " (" + s.Kind + ")"
	if s.Creator != "" {
		b += ", created by " + s.Creator
	}
	if s.Signed {
		b += ", signed (not verified)"
	} else {
		b += ", unsigned"
	}
	return b
}

// Unusable is why inv, an attached document, could not be used, naming the document and the
// platform it was attached to: "attached SBOM sha256:0123456789ab (oci-referrer) of linux/amd64
// unusable: ...". It is "" for a usable document and for what a scan found. Matching skips such a
// document; the rest of the image's evidence stands.
func (inv *Inventory) Unusable() string {
	if inv.Source == nil || inv.Source.Error == "" {
		return ""
	}
	of := inv.Platform
	if of == "" {
		of = "the index"
	}
	return fmt.Sprintf("attached SBOM %s (%s) of %s unusable: %s", shortDigest(inv.Source.Digest), inv.Source.Kind, of, inv.Source.Error)
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// Evidence is one reason for a finding: the rule kind, the field and the value that matched.
type Evidence struct {
	Rule  string `json:"rule"`
	Field string `json:"field"`
	Value string `json:"value"`
	// Declared names the attached SBOM the value came from; empty when a scan found it.
	Declared string `json:"declared,omitempty"`
}

func (e Evidence) String() string {
	if e.Declared != "" {
		return fmt.Sprintf("%s = %q, declared by %s", e.Field, e.Value, e.Declared)
	}
	return fmt.Sprintf("%s = %q", e.Field, e.Value)
}

// PackageRef names the package a finding is about.
type PackageRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

func (p *PackageRef) String() string {
	if p == nil {
		return ""
	}
	if p.Version == "" {
		return p.Name
	}
	return p.Name + " " + p.Version
}

// Finding is one piece of a banned vendor's software in an inventory. Evidence[0] convicted it;
// the rest corroborates.
type Finding struct {
	Vendor   string      `json:"vendor"`
	Catalog  string      `json:"catalog,omitempty"`
	Package  *PackageRef `json:"package,omitempty"`
	Evidence []Evidence  `json:"evidence"`
	Layer    string      `json:"layer,omitempty"`
	Platform string      `json:"platform,omitempty"`
	// Declared is the attached SBOM the finding came from; nil when the scan found it.
	Declared *Source `json:"declared,omitempty"`
}

// Rule is the kind of rule that convicted.
func (f Finding) Rule() string { return f.Evidence[0].Rule }

// Vendor is one banned vendor's compiled rules.
type Vendor struct {
	// Catalog is the built-in entry id, empty for a custom vendor.
	Catalog string
	Name    string
	Basis   []string

	packages   []packageRule
	suppliers  []*regexp.Regexp
	purls      []glob
	cpeVendors []string
	paths      []string

	// key identifies what the vendor matches: equal keys, equal findings (see Key).
	key string

	// seen memoizes the supplier rules' verdict by identity name: the same few hundred
	// maintainers recur in every Debian image, and a regular expression costs microseconds.
	seen *nameMemo
}

type packageRule struct {
	typ      string
	name     glob
	requires []v1alpha1.Corroboration
}

// nameMemo is a bounded map from identity name to whether a supplier rule matches it.
type nameMemo struct {
	mu sync.Mutex
	m  map[string]bool
}

const nameMemoLimit = 4096

func (v *Vendor) supplierMatches(name string) bool {
	if v.seen != nil {
		v.seen.mu.Lock()
		ok, hit := v.seen.m[name]
		v.seen.mu.Unlock()
		if hit {
			return ok
		}
	}
	ok := slices.ContainsFunc(v.suppliers, func(re *regexp.Regexp) bool { return re.MatchString(name) })
	if v.seen != nil {
		v.seen.mu.Lock()
		if len(v.seen.m) >= nameMemoLimit {
			clear(v.seen.m)
		}
		v.seen.m[name] = ok
		v.seen.mu.Unlock()
	}
	return ok
}

// Compile checks and compiles a vendor's rules. Errors name the offending field so a policy
// author knows what to fix.
func Compile(name, catalogID string, basis []string, r v1alpha1.VendorRules) (*Vendor, error) {
	v := &Vendor{Catalog: catalogID, Name: name, Basis: basis, seen: &nameMemo{m: map[string]bool{}}}
	v.key = fmt.Sprintf("%q %q %q %+v", name, catalogID, basis, r)
	if name == "" {
		return nil, fmt.Errorf("vendor name is empty")
	}
	if len(r.Packages)+len(r.Suppliers)+len(r.PURLs)+len(r.CPEVendors)+len(r.Paths) == 0 {
		return nil, fmt.Errorf("vendor %q has no rules: give at least one of packages, suppliers, purls, cpeVendors or paths", name)
	}
	for i, p := range r.Packages {
		if strings.TrimSpace(p.Name) == "" {
			return nil, fmt.Errorf("packages[%d].name is empty", i)
		}
		typ := strings.ToLower(strings.TrimSpace(p.Type))
		if typ == "" {
			typ = "*"
		}
		for _, req := range p.Requires {
			if req != v1alpha1.CorroborationSupplier && req != v1alpha1.CorroborationPath {
				return nil, fmt.Errorf("packages[%d].requires: %q is not one of Supplier, Path", i, req)
			}
			if req == v1alpha1.CorroborationPath && len(r.Paths) == 0 {
				return nil, fmt.Errorf("packages[%d].requires Path but the vendor has no paths rules", i)
			}
			if req == v1alpha1.CorroborationSupplier && len(r.Suppliers) == 0 {
				return nil, fmt.Errorf("packages[%d].requires Supplier but the vendor has no suppliers rules", i)
			}
		}
		v.packages = append(v.packages, packageRule{typ: typ, name: newGlob(p.Name), requires: p.Requires})
	}
	for i, s := range r.Suppliers {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("suppliers[%d] is empty", i)
		}
		re, err := regexp.Compile(`(?i)^(?:` + s + `)$`)
		if err != nil {
			return nil, fmt.Errorf("suppliers[%d] %q is not a valid regular expression: %v", i, s, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("suppliers[%d] %q matches an empty field, which would convict every package without a vendor", i, s)
		}
		v.suppliers = append(v.suppliers, re)
	}
	for i, p := range r.PURLs {
		if !strings.HasPrefix(p, "pkg:") || len(p) < 6 {
			return nil, fmt.Errorf("purls[%d] %q must start with \"pkg:\" and name a type, e.g. pkg:npm/%%40kaspersky/*", i, p)
		}
		v.purls = append(v.purls, newGlob(normalizePURL(p)))
	}
	for i, c := range r.CPEVendors {
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" || c == "*" || c == "-" {
			return nil, fmt.Errorf("cpeVendors[%d] %q must be a vendor string such as kaspersky", i, r.CPEVendors[i])
		}
		v.cpeVendors = append(v.cpeVendors, c)
	}
	for i, p := range r.Paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("paths[%d] %q must be absolute, e.g. /opt/kaspersky/**", i, p)
		}
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("paths[%d] %q is not a valid glob", i, p)
		}
		v.paths = append(v.paths, p)
	}
	return v, nil
}

// Key identifies the vendor's name, catalog entry, basis and rules: two vendors with one key
// yield the same findings on any inventory.
func (v *Vendor) Key() string { return v.key }

// Paths are the vendor's path rules: the files a stored inventory must keep to answer them.
func (v *Vendor) Paths() []string { return slices.Clone(v.paths) }

// globRegexp turns a glob with "*" and "?" into an anchored, case-insensitive regexp; "*"
// crosses "/" so it works for Go module paths and purls alike, and any other character too (a
// newline in a hostile package name does not take it out of "kesl*").
func Glob(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?is)^`)
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// glob is a compiled Glob: a pattern without "?" whose only "*" ends it (or that has none, the
// common case: "kesl", "pkg:npm/@kaspersky/*") is compared case-insensitively without a
// regular expression; any other needs its literal lead as a prefix before the expression runs.
type glob struct {
	lit    string // the pattern without its final "*" (re nil), or its lead before the first wildcard
	prefix bool   // lit is a prefix ("*" ended the pattern)
	re     *regexp.Regexp
}

func newGlob(pattern string) glob {
	body, star := strings.CutSuffix(pattern, "*")
	if i := strings.IndexAny(body, "*?"); i >= 0 {
		return glob{lit: body[:i], re: Glob(pattern)}
	}
	return glob{lit: body, prefix: star}
}

func (g glob) match(s string) bool {
	switch {
	case g.re != nil:
		return hasPrefixFold(s, g.lit) && g.re.MatchString(s)
	case g.prefix:
		return hasPrefixFold(s, g.lit)
	default:
		return strings.EqualFold(s, g.lit)
	}
}

// hasPrefixFold is strings.HasPrefix under Unicode simple case folding, as (?i) matches: "K"
// (U+212A KELVIN SIGN) starts "kesl" too.
func hasPrefixFold(s, prefix string) bool {
	for _, pr := range prefix {
		if s == "" {
			return false
		}
		sr, n := utf8.DecodeRuneInString(s)
		if sr != pr && !foldsTo(sr, pr) {
			return false
		}
		s = s[n:]
	}
	return true
}

func foldsTo(a, b rune) bool {
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return 'a' <= a|0x20 && a|0x20 <= 'z' && a|0x20 == b|0x20
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// normalizePURL decodes the one escape that matters for scopes and drops qualifiers and subpath.
func normalizePURL(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return strings.ReplaceAll(p, "%40", "@")
}

// purlWithoutVersion strips "@version" from a normalized purl (the last "@" after the last "/").
func purlWithoutVersion(p string) string {
	slash := strings.LastIndex(p, "/")
	if at := strings.LastIndex(p, "@"); at > slash && slash >= 0 {
		return p[:at]
	}
	return p
}

// emailPart is an address in angle brackets, or a parenthetical holding a URL or an address
// (npm's "Name <email> (url)"). Other parentheticals, "ZTE (USA) Inc.", are part of the name.
var emailPart = regexp.MustCompile(`<[^>]*>|\([^)]*(?:://|www\.|@)[^)]*\)`)

// IdentityName is the part of a vendor field a supplier rule sees: "AO Kaspersky Lab
// <support@kaspersky.com>" becomes "AO Kaspersky Lab". SPDX "Organization: X" becomes "X".
func IdentityName(v string) string {
	v = emailPart.ReplaceAllString(v, " ")
	for _, prefix := range []string{"Organization:", "Person:", "Tool:"} {
		if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
			v = v[len(prefix):]
			break
		}
	}
	v = strings.Join(strings.Fields(v), " ")
	return strings.Trim(v, `"' ,;`)
}

// Match returns the findings of every vendor in the inventory, sorted.
func Match(inv Inventory, vendors []*Vendor) []Finding {
	var out []Finding
	prep := prepare(inv.Packages)
	for _, v := range vendors {
		out = append(out, v.match(inv, prep)...)
	}
	Sort(out)
	return out
}

// prepared is what matching derives from a package whatever the vendor, computed once per
// inventory rather than once per vendor.
type prepared struct {
	names      []string // IdentityName of each field, in order
	purl, bare string   // the normalized purl, and without its version
	cpeVendors []string // each CPE's vendor, lowercased
}

func prepare(pkgs []Package) []prepared {
	out := make([]prepared, len(pkgs))
	for i := range pkgs {
		p, pp := &pkgs[i], &out[i]
		pp.names = make([]string, len(p.Fields))
		for j, f := range p.Fields {
			pp.names[j] = IdentityName(f.Value)
		}
		if p.PURL != "" {
			pp.purl = normalizePURL(p.PURL)
			pp.bare = purlWithoutVersion(pp.purl)
		}
		pp.cpeVendors = make([]string, len(p.CPEs))
		for j := range p.CPEs {
			pp.cpeVendors[j] = strings.ToLower(p.CPEs[j].Vendor)
		}
	}
	return out
}

// Sort orders findings by platform, vendor, package and rule, for stable output; package type
// and purl, evidence field and layer break the remaining ties (dpkg multi-arch records differ
// only in their purl), so the order never depends on the inventory's.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Platform, b.Platform),
			cmp.Compare(a.Vendor, b.Vendor),
			cmp.Compare(a.Package.String(), b.Package.String()),
			cmp.Compare(a.Rule(), b.Rule()),
			cmp.Compare(a.Evidence[0].Value, b.Evidence[0].Value),
			cmp.Compare(a.Package.typ(), b.Package.typ()),
			cmp.Compare(a.Package.purl(), b.Package.purl()),
			cmp.Compare(a.Evidence[0].Field, b.Evidence[0].Field),
			cmp.Compare(a.Layer, b.Layer),
		)
	})
}

func (p *PackageRef) typ() string {
	if p == nil {
		return ""
	}
	return p.Type
}

func (p *PackageRef) purl() string {
	if p == nil {
		return ""
	}
	return p.PURL
}

func (v *Vendor) match(inv Inventory, prep []prepared) []Finding {
	var out []Finding
	if inv.Source != nil && inv.Source.Error != "" {
		return nil
	}
	pathFindings := v.matchPaths(inv)
	for i := range inv.Packages {
		if f, ok := v.matchPackage(&inv.Packages[i], &prep[i], len(pathFindings) > 0); ok {
			out = append(out, f)
		}
	}
	out = append(out, pathFindings...)
	for i := range out {
		out[i].Platform = inv.Platform
		if inv.Source != nil {
			out[i].Declared = inv.Source
			declared := inv.Source.String()
			for j := range out[i].Evidence {
				out[i].Evidence[j].Declared = declared
			}
		}
	}
	return out
}

// MatchAll matches every inventory of an image: the scanned ones and the attached SBOMs. A
// declared finding that a scanned one (or an earlier declared one) already shows for the same
// platform, vendor and package or path rule is dropped: the scan's evidence is the stronger.
// A declared SBOM never removes a scanned finding.
func MatchAll(invs []Inventory, vendors []*Vendor) []Finding {
	var scanned, declared []Finding
	for _, inv := range invs {
		fs := Match(inv, vendors)
		if inv.Source == nil {
			scanned = append(scanned, fs...)
		} else {
			declared = append(declared, fs...)
		}
	}
	out := scanned
	for _, d := range declared {
		if !slices.ContainsFunc(out, func(f Finding) bool { return sameSoftware(f, d) }) {
			out = append(out, d)
		}
	}
	Sort(out)
	return out
}

// sameSoftware reports whether a shows what d, a declared finding, shows. A document attached to
// an index (no platform) is the same as a scanned finding on any platform.
func sameSoftware(a, d Finding) bool {
	if a.Vendor != d.Vendor || (d.Platform != "" && a.Platform != d.Platform) {
		return false
	}
	switch {
	case a.Package == nil && d.Package == nil:
		return a.Evidence[0].Field == d.Evidence[0].Field
	case a.Package == nil || d.Package == nil:
		return false
	}
	return strings.EqualFold(a.Package.Name, d.Package.Name) && a.Package.Version == d.Package.Version &&
		(a.Package.Type == "" || d.Package.Type == "" || a.Package.Type == d.Package.Type)
}

func (v *Vendor) matchPackage(p *Package, pp *prepared, pathMatched bool) (Finding, bool) {
	var convicting, corroborating []Evidence

	var supplier *Evidence
	if len(v.suppliers) > 0 {
		for j, f := range p.Fields {
			if name := pp.names[j]; name != "" && v.supplierMatches(name) {
				supplier = &Evidence{Rule: RuleSupplier, Field: f.Name, Value: f.Value}
				convicting = append(convicting, *supplier)
				break
			}
		}
	}

	if p.PURL != "" && len(v.purls) > 0 {
		if slices.ContainsFunc(v.purls, func(g glob) bool { return g.match(pp.bare) || g.match(pp.purl) }) {
			convicting = append(convicting, Evidence{Rule: RulePURL, Field: "purl", Value: p.PURL})
		}
	}

	for _, r := range v.packages {
		if r.typ != "*" && !strings.EqualFold(r.typ, p.Type) {
			continue
		}
		if !r.name.match(p.Name) {
			continue
		}
		if len(r.requires) == 0 ||
			(slices.Contains(r.requires, v1alpha1.CorroborationSupplier) && supplier != nil) ||
			(slices.Contains(r.requires, v1alpha1.CorroborationPath) && pathMatched) {
			convicting = append(convicting, Evidence{Rule: RulePackage, Field: p.Type + " package name", Value: p.Name})
			break
		}
		// an uncorroborated name match may still satisfy a later rule for the same name
	}

	// A declared CPE convicts; a generated one (guessed from the name) only corroborates.
	var declared, generated *CPE
	for i := range p.CPEs {
		c := &p.CPEs[i]
		if !slices.Contains(v.cpeVendors, pp.cpeVendors[i]) {
			continue
		}
		if c.Declared && declared == nil {
			declared = c
		} else if !c.Declared && generated == nil {
			generated = c
		}
	}
	if declared != nil {
		convicting = append(convicting, Evidence{Rule: RuleCPE, Field: "declared CPE vendor", Value: declared.Vendor})
	} else if generated != nil {
		corroborating = append(corroborating, Evidence{Rule: RuleCPE, Field: "generated CPE vendor", Value: generated.Vendor})
	}

	if len(convicting) == 0 {
		return Finding{}, false
	}
	return Finding{
		Vendor:   v.Name,
		Catalog:  v.Catalog,
		Package:  &PackageRef{Name: p.Name, Version: p.Version, Type: p.Type, PURL: p.PURL},
		Evidence: append(convicting, corroborating...),
		Layer:    p.Layer,
	}, true
}

// matchPaths reports one finding per path rule that matches, naming the first matching file
// (in path order) and how many more there are.
func (v *Vendor) matchPaths(inv Inventory) []Finding {
	var out []Finding
	for _, pattern := range v.paths {
		var first *File
		n := 0
		for i := range inv.Files {
			f := &inv.Files[i]
			if ok, _ := doublestar.Match(pattern, f.Path); !ok {
				continue
			}
			n++
			if first == nil || f.Path < first.Path {
				first = f
			}
		}
		if first == nil {
			continue
		}
		value := first.Path
		if n > 1 {
			value = fmt.Sprintf("%s (and %d more files)", first.Path, n-1)
		}
		out = append(out, Finding{
			Vendor:   v.Name,
			Catalog:  v.Catalog,
			Evidence: []Evidence{{Rule: RulePath, Field: "path " + pattern, Value: value}},
			Layer:    first.Layer,
		})
	}
	return out
}
