// Package sbomfile decodes SBOM documents (SPDX 2.x JSON, CycloneDX JSON, syft JSON) into a
// match.Inventory. It reads the documents as plain JSON and does not depend on syft, so it stays
// small and fast to build.
package sbomfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/embargo-dev/embargo/internal/match"
)

// Format is the kind of SBOM document Decode read.
type Format string

// The formats Decode reads.
const (
	FormatSPDXJSON      Format = "spdx-json"
	FormatCycloneDXJSON Format = "cyclonedx-json"
	FormatSyftJSON      Format = "syft-json"
)

// MaxSize is the largest document Decode reads, in bytes.
const MaxSize = 256 << 20

const expected = `expected SPDX JSON ("spdxVersion"), CycloneDX JSON ("bomFormat": "CycloneDX") or syft JSON ("artifacts")`

// Decode reads one SBOM document: SPDX 2.x JSON, CycloneDX JSON or syft JSON, bare or in an
// in-toto statement, a DSSE envelope or a sigstore bundle. Packages without a name are dropped.
// Errors say which format was expected and what is wrong.
func Decode(r io.Reader) (match.Inventory, Format, error) {
	doc, err := DecodeDocument(r)
	return doc.Inventory, doc.Format, err
}

// Document is a decoded SBOM and what its wrapping said about it.
type Document struct {
	Inventory match.Inventory
	Format    Format
	// Creator is who the document names as its author (SPDX creationInfo.creators, CycloneDX
	// metadata tools and authors, syft's descriptor), at most MaxCreator bytes.
	Creator string
	// Envelopes are the wrappings the document came in, outermost first: EnvelopeSigstore,
	// EnvelopeDSSE, EnvelopeInToto.
	Envelopes []string
	// PredicateType is the in-toto statement's predicate type, when there was one.
	PredicateType string
	// Signed is true when a DSSE envelope carried a signature. Nothing here verifies it.
	Signed bool
}

// Envelopes an SBOM may come in.
const (
	EnvelopeSigstore = "sigstore-bundle"
	EnvelopeDSSE     = "dsse"
	EnvelopeInToto   = "in-toto"
)

// MaxCreator bounds Document.Creator.
const MaxCreator = 256

// DecodeDocument is Decode that also reports the document's creator and envelopes.
func DecodeDocument(r io.Reader) (Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Document{}, fmt.Errorf("reading SBOM: %w", err)
	}
	if len(data) > MaxSize {
		return Document{}, fmt.Errorf("SBOM is larger than %d MiB, the most embargo reads", MaxSize>>20)
	}
	var doc Document
	err = decodeData(data, &doc, 0)
	if len(doc.Creator) > MaxCreator {
		doc.Creator = strings.ToValidUTF8(doc.Creator[:MaxCreator], "") + "…"
	}
	return doc, err
}

func decodeData(data []byte, doc *Document, depth int) error {
	data, err := sniff(data)
	if err != nil {
		return err
	}
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return notJSON(data, err)
	}
	if p.BOMFormat == nil && p.SPDXVersion == nil && !bool(p.Artifacts) {
		if env, inner, err := unwrap(data, &p, doc); env != "" || err != nil {
			if err != nil {
				return err
			}
			if depth >= 3 {
				return fmt.Errorf("not an SBOM: more than 3 nested envelopes (%s)", strings.Join(doc.Envelopes, " in "))
			}
			return decodeData(inner, doc, depth+1)
		}
	}
	switch {
	case p.BOMFormat != nil:
		if !strings.EqualFold(*p.BOMFormat, "CycloneDX") {
			return fmt.Errorf("not an SBOM: \"bomFormat\" is %q, expected \"CycloneDX\"", *p.BOMFormat)
		}
		inv, creator, err := decodeCycloneDX(data)
		if err != nil {
			return fmt.Errorf("CycloneDX JSON: %w", err)
		}
		doc.Inventory, doc.Format, doc.Creator = inv, FormatCycloneDXJSON, creator
		return nil
	case p.SPDXVersion != nil:
		inv, creator, err := decodeSPDX(data, *p.SPDXVersion)
		if err != nil {
			return fmt.Errorf("SPDX JSON: %w", err)
		}
		doc.Inventory, doc.Format, doc.Creator = inv, FormatSPDXJSON, creator
		return nil
	case bool(p.Artifacts) && bool(p.Schema || p.Descriptor || p.Source):
		inv, creator, err := decodeSyft(data)
		if err != nil {
			return fmt.Errorf("syft JSON: %w", err)
		}
		doc.Inventory, doc.Format, doc.Creator = inv, FormatSyftJSON, creator
		return nil
	case bool(p.Artifacts):
		return errors.New(`not an SBOM: the document has "artifacts" but none of syft's "schema", "descriptor" or "source"; ` + expected)
	case bool(p.Context && p.Graph):
		return errors.New("not a supported SBOM: SPDX 3 JSON-LD (\"@context\", \"@graph\") is not supported; export SPDX 2.3 JSON instead")
	}
	return errors.New("not an SBOM: " + expected)
}

// probe finds the keys that tell the formats apart without keeping their values.
type probe struct {
	SPDXVersion *string `json:"spdxVersion"`
	BOMFormat   *string `json:"bomFormat"`
	Artifacts   present `json:"artifacts"`
	Schema      present `json:"schema"`
	Descriptor  present `json:"descriptor"`
	Source      present `json:"source"`
	Context     present `json:"@context"`
	Graph       present `json:"@graph"`

	// envelopes
	Type          *string         `json:"_type"`
	PredicateType *string         `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
	PayloadType   *string         `json:"payloadType"`
	Payload       *string         `json:"payload"`
	Signatures    []struct {
		Sig string `json:"sig"`
	} `json:"signatures"`
	MediaType    *string         `json:"mediaType"`
	DSSEEnvelope json.RawMessage `json:"dsseEnvelope"`
}

// present records that a key exists, whatever its value.
type present bool

func (p *present) UnmarshalJSON([]byte) error { *p = true; return nil }

// sniff strips a UTF-8 byte order mark and recognizes what is plainly not JSON.
func sniff(data []byte) ([]byte, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("not an SBOM: the document is empty; " + expected)
	case bytes.HasPrefix(data, []byte("\xff\xfe")) || bytes.HasPrefix(data, []byte("\xfe\xff")):
		return nil, errors.New("not an SBOM: the document is UTF-16 encoded; save it as UTF-8 JSON")
	case trimmed[0] == '<':
		return nil, errors.New("not an SBOM: the document is XML, which is not supported; " + expected)
	case bytes.HasPrefix(trimmed, []byte("SPDXVersion:")):
		return nil, errors.New("not a supported SBOM: SPDX tag-value is not supported; export SPDX JSON instead")
	}
	return data, nil
}

// notJSON explains why the probe could not read data.
func notJSON(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && syn.Offset >= int64(len(data)):
		return fmt.Errorf("not an SBOM: the JSON is truncated (%v); %s", err, expected)
	case errors.As(err, &syn):
		return fmt.Errorf("not an SBOM: not valid JSON near byte %d (%v); %s", syn.Offset, err, expected)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("not an SBOM: the document is a JSON %s, not an object; %s", typ.Value, expected)
	case errors.As(err, &typ):
		return fmt.Errorf("not an SBOM: %q is a JSON %s, expected a string", typ.Field, typ.Value)
	}
	return fmt.Errorf("not an SBOM: %v; %s", err, expected)
}

// describe rewords encoding/json's type errors, which name Go types, in terms of the document.
func describe(err error) error {
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Type == nil {
		return err
	}
	want := typ.Type.Kind().String()
	switch want {
	case "slice":
		want = "array"
	case "struct", "map":
		want = "object"
	case "int", "int64", "float64":
		want = "number"
	}
	if typ.Field == "" {
		return fmt.Errorf("a value is a JSON %s, expected %s", typ.Value, want)
	}
	return fmt.Errorf("%q is a JSON %s, expected %s", typ.Field, typ.Value, want)
}

// pkgBuilder collects one package, dropping duplicate fields and CPEs.
type pkgBuilder struct {
	p      match.Package
	fields map[match.Field]bool
	cpes   map[[2]string]int
}

func newPackage(name, version, purl string) *pkgBuilder {
	purl = strings.TrimSpace(purl)
	return &pkgBuilder{p: match.Package{
		Name:    strings.TrimSpace(name),
		Version: strings.TrimSpace(version),
		Type:    purlType(purl),
		PURL:    purl,
	}}
}

// field adds a vendor-identity field unless its value is blank or already there.
func (b *pkgBuilder) field(name, value string) {
	value = strings.TrimSpace(value)
	if value == "" {
		return
	}
	f := match.Field{Name: name, Value: value}
	if b.fields[f] {
		return
	}
	if b.fields == nil {
		b.fields = map[match.Field]bool{}
	}
	b.fields[f] = true
	b.p.Fields = append(b.p.Fields, f)
}

// cpe adds a CPE given as a 2.3 formatted string or a 2.2 URI; unparseable ones are skipped.
// A CPE seen twice is declared if either was.
func (b *pkgBuilder) cpe(s string, declared bool) {
	vendor, product, ok := parseCPE(s)
	if !ok {
		return
	}
	key := [2]string{strings.ToLower(vendor), strings.ToLower(product)}
	if i, ok := b.cpes[key]; ok {
		b.p.CPEs[i].Declared = b.p.CPEs[i].Declared || declared
		return
	}
	if b.cpes == nil {
		b.cpes = map[[2]string]int{}
	}
	b.cpes[key] = len(b.p.CPEs)
	b.p.CPEs = append(b.p.CPEs, match.CPE{Vendor: vendor, Product: product, Declared: declared})
}

// done returns the package with declared CPEs first (the matcher judges a vendor by the first CPE
// naming it), or false when it has no name.
func (b *pkgBuilder) done() (match.Package, bool) {
	if b.p.Name == "" {
		return match.Package{}, false
	}
	slices.SortStableFunc(b.p.CPEs, func(x, y match.CPE) int {
		switch {
		case x.Declared == y.Declared:
			return 0
		case x.Declared:
			return -1
		}
		return 1
	})
	return b.p, true
}

// purlType is the lower-cased type of a package URL, or "" when s is not one.
func purlType(s string) string {
	rest, ok := cutPrefixFold(s, "pkg:")
	if !ok {
		return ""
	}
	rest = strings.TrimLeft(rest, "/")
	typ, _, ok := strings.Cut(rest, "/")
	if !ok || typ == "" {
		return ""
	}
	typ = strings.ToLower(typ)
	for i, c := range typ {
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-'):
		default:
			return ""
		}
	}
	return typ
}

// parseCPE returns the vendor and product of a CPE 2.3 formatted string ("cpe:2.3:a:vendor:
// product:...") or a CPE 2.2 URI ("cpe:/a:vendor:product"). A CPE without a vendor is not ok.
func parseCPE(s string) (vendor, product string, ok bool) {
	s = strings.TrimSpace(s)
	if rest, ok := cutPrefixFold(s, "cpe:2.3:"); ok {
		parts := splitFS(rest, 4)
		if len(parts) < 2 {
			return "", "", false
		}
		vendor = unquoteFS(parts[1])
		if len(parts) > 2 {
			product = unquoteFS(parts[2])
		}
	} else if rest, ok := cutPrefixFold(s, "cpe:/"); ok {
		parts := strings.SplitN(rest, ":", 4)
		if len(parts) < 2 {
			return "", "", false
		}
		var err error
		if vendor, err = url.PathUnescape(parts[1]); err != nil {
			return "", "", false
		}
		if len(parts) > 2 {
			if product, err = url.PathUnescape(parts[2]); err != nil {
				return "", "", false
			}
		}
	} else {
		return "", "", false
	}
	if product == "*" || product == "-" {
		product = ""
	}
	if vendor == "" || vendor == "*" || vendor == "-" {
		return "", "", false
	}
	return vendor, product, true
}

// splitFS splits a CPE 2.3 formatted string on colons not quoted by a backslash, into at most n
// parts (the last is the unsplit rest).
func splitFS(s string, n int) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s) && len(parts) < n-1; i++ {
		switch s[i] {
		case '\\':
			i++
		case ':':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unquoteFS removes the backslashes quoting punctuation in a CPE 2.3 value, as syft does.
func unquoteFS(v string) string {
	if v == "*" || !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// filePath makes an SBOM's file name an absolute, clean path: SPDX names files relative to the
// root ("./usr/bin/x", or "usr/bin/x" as syft writes them).
func filePath(p string) string {
	if strings.TrimSpace(p) == "" {
		return ""
	}
	if strings.HasPrefix(p, "./") {
		p = p[1:]
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// isNoAssertion reports SPDX's placeholders for "unknown".
func isNoAssertion(v string) bool {
	v = match.IdentityName(v)
	return strings.EqualFold(v, "NOASSERTION") || strings.EqualFold(v, "NONE")
}
