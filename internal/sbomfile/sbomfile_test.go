package sbomfile

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
)

const (
	layerA1 = "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	layerB2 = "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	diffD2  = "sha256:d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2"
	diffD3  = "sha256:d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"

	keslPURL            = "pkg:deb/debian/kesl@12.1.0.1543?arch=amd64&distro=debian-12"
	kasperskyMaintainer = "AO Kaspersky Lab <support@kaspersky.com>"
)

func f(name, value string) match.Field { return match.Field{Name: name, Value: value} }

func TestDecode(t *testing.T) {
	tests := map[string]struct {
		file       string // under testdata/, instead of in
		in         string
		wantFormat Format
		want       match.Inventory
		wantErr    string
	}{
		"syft JSON of an image": {
			file:       "syft.json",
			wantFormat: FormatSyftJSON,
			want: match.Inventory{
				Platform: "linux/amd64",
				Packages: []match.Package{
					{
						Name: "kesl", Version: "12.1.0.1543", Type: "deb", PURL: keslPURL,
						Fields: []match.Field{f("dpkg Maintainer", kasperskyMaintainer)},
						// The dictionary CPE is declared and comes first; the guessed one is not.
						CPEs: []match.CPE{
							{Vendor: "kaspersky", Product: "endpoint_security", Declared: true},
							{Vendor: "kesl", Product: "kesl"},
						},
						// The location's diff id, mapped to the manifest's layer digest.
						Layer: layerB2,
					},
					{
						Name: "musl", Version: "1.2.5-r0", Type: "apk", PURL: "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.0",
						Fields: []match.Field{f("apk Maintainer", "Timo Teräs <timo.teras@iki.fi>")},
						CPEs:   []match.CPE{{Vendor: "musl-libc", Product: "musl"}, {Vendor: "musl_libc", Product: "musl"}},
						Layer:  layerA1,
					},
					{
						Name: "kaspersky-agent", Version: "15.1.0-20748", Type: "rpm", PURL: "pkg:rpm/redhat/kaspersky-agent@15.1.0-20748?arch=x86_64",
						Fields: []match.Field{f("rpm Vendor", "AO Kaspersky Lab")},
						CPEs:   []match.CPE{{Vendor: "kaspersky-agent", Product: "kaspersky-agent"}},
						Layer:  layerB2,
					},
					{
						Name: "yay", Version: "12.3.5-1", Type: "alpm", PURL: "pkg:alpm/arch/yay@12.3.5-1?arch=x86_64",
						Fields: []match.Field{f("alpm Packager", "Jo Packager <jo@example.org>")},
					},
					{
						// No purl: the type comes from syft's package type.
						Name: "kaspersky-sdk", Version: "2.0.1", Type: "pypi",
						Fields: []match.Field{f("python Author", "Kaspersky Lab"), f("python Author-email", "sdk@kaspersky.com")},
						Layer:  layerB2,
					},
					{
						Name: "@kaspersky/ksc-client", Version: "3.1.0", Type: "npm", PURL: "pkg:npm/%40kaspersky/ksc-client@3.1.0",
						Fields: []match.Field{f("npm author", "AO Kaspersky Lab")},
						Layer:  layerB2,
					},
					{
						Name: "klsdk", Version: "1.4", Type: "maven", PURL: "pkg:maven/com.kaspersky/klsdk@1.4",
						Fields: []match.Field{f("java Implementation-Vendor", "AO Kaspersky Lab"), f("java Specification-Vendor", "Kaspersky")},
						Layer:  layerB2,
					},
					{
						Name: "avp.exe", Version: "21.3.10.391", Type: "generic", PURL: "pkg:generic/avp.exe@21.3.10.391",
						Fields: []match.Field{f("PE CompanyName", "AO Kaspersky Lab")},
						Layer:  layerB2,
					},
					{
						Name: "Kaspersky.Scan", Version: "1.0.0.0", Type: "nuget", PURL: "pkg:nuget/Kaspersky.Scan@1.0.0.0",
						Fields: []match.Field{f(".NET CompanyName", "AO Kaspersky Lab")},
						Layer:  layerB2,
					},
					{
						Name: "kesl-scanner", Version: "12.1", Type: "rpm", PURL: "pkg:rpm/kaspersky/kesl-scanner@12.1",
						Fields: []match.Field{f("ELF note vendor", "Kaspersky")},
						Layer:  layerB2,
					},
					{
						Name: "kav4proxy", Type: "generic", PURL: "pkg:generic/kav4proxy",
						Fields: []match.Field{f("kernel module author", "Kaspersky Lab")},
						Layer:  layerB2,
					},
					{
						Name: "kaspersky-ruby", Version: "0.3.0", Type: "gem", PURL: "pkg:gem/kaspersky-ruby@0.3.0",
						Fields: []match.Field{f("gem author", "Jane Doe"), f("gem author", "AO Kaspersky Lab")},
					},
					{
						Name: "kaspersky/ksc-php", Version: "1.2.0", Type: "composer", PURL: "pkg:composer/kaspersky/ksc-php@1.2.0",
						Fields: []match.Field{f("composer author", "Kaspersky Lab")},
					},
					{Name: "github.com/example/tool", Version: "v1.2.3", Type: "golang", Layer: layerB2},
					// The nameless dpkg entry is dropped.
				},
				Files: []match.File{
					{Path: "/opt/kaspersky/kesl/bin/kesl-control", Layer: layerB2},
					{Path: "/etc/os-release", Layer: layerA1},
				},
			},
		},
		"syft JSON of an old syft": {
			// Plain-string CPEs, legacy metadata type names, a Java manifest as a map, PE
			// version resources as a map, image metadata under source.target.
			file:       "syft-legacy.json",
			wantFormat: FormatSyftJSON,
			want: match.Inventory{
				Platform: "linux/arm64",
				Packages: []match.Package{
					{
						Name: "kesl", Version: "11.2.0.4528", Type: "deb", PURL: "pkg:deb/ubuntu/kesl@11.2.0.4528?arch=amd64",
						Fields: []match.Field{f("dpkg Maintainer", kasperskyMaintainer)},
						CPEs:   []match.CPE{{Vendor: "kesl", Product: "kesl"}, {Vendor: "ao_kaspersky_lab", Product: "kesl"}},
						// No manifest to map diff ids with: the layer id as syft wrote it.
						Layer: diffD3,
					},
					{
						Name: "klsdk", Version: "1.0", Type: "maven",
						Fields: []match.Field{f("java Implementation-Vendor", "Kaspersky Lab ZAO")},
					},
					{
						Name: "avp.exe", Version: "1", Type: "binary",
						Fields: []match.Field{f("PE CompanyName", "Kaspersky Lab")},
					},
				},
			},
		},
		"SPDX 2.3 JSON written by syft": {
			file:       "spdx.json",
			wantFormat: FormatSPDXJSON,
			want: match.Inventory{
				Packages: []match.Package{
					{
						Name: "kesl", Version: "12.1.0.1543", Type: "deb", PURL: keslPURL,
						Fields: []match.Field{
							f("SPDX supplier", "Person: AO Kaspersky Lab (support@kaspersky.com)"),
							f("SPDX originator", "Person: AO Kaspersky Lab (support@kaspersky.com)"),
						},
						// SPDX does not say where a CPE came from: none is declared.
						CPEs: []match.CPE{{Vendor: "kesl", Product: "kesl"}, {Vendor: "kaspersky", Product: "endpoint_security"}},
					},
					{
						Name: "base-files", Version: "12.4+deb12u5", Type: "deb", PURL: "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64",
						Fields: []match.Field{f("SPDX originator", "Person: Santiago Vila (sanvila@debian.org)")},
						CPEs:   []match.CPE{{Vendor: "base-files", Product: "base-files"}},
					},
					{
						Name: "klsdk", Version: "1.4", Type: "maven", PURL: "pkg:maven/com.kaspersky/klsdk@1.4",
						Fields: []match.Field{f("SPDX supplier", "Organization: AO Kaspersky Lab")},
					},
					// The nameless package is dropped, syft's DocumentRoot (the image) skipped.
				},
				Files: []match.File{
					{Path: "/opt/kaspersky/kesl/bin/kesl-control"},
					{Path: "/etc/kesl/kesl.ini"},
					{Path: "/usr/share/doc/kesl/copyright"},
				},
			},
		},
		"CycloneDX 1.6 JSON": {
			file:       "cyclonedx.json",
			wantFormat: FormatCycloneDXJSON,
			want: match.Inventory{
				// metadata.component, the scanned subject, is not a package of it.
				Packages: []match.Package{
					{
						Name: "kesl", Version: "12.1.0.1543", Type: "deb", PURL: keslPURL,
						Fields: []match.Field{f("CycloneDX publisher", kasperskyMaintainer)},
						CPEs:   []match.CPE{{Vendor: "kesl", Product: "kesl"}, {Vendor: "kaspersky", Product: "endpoint_security"}},
						Layer:  diffD2,
					},
					{
						// group and name joined, as the npm package is named.
						Name: "@kaspersky/ksc-client", Version: "3.1.0", Type: "npm", PURL: "pkg:npm/%40kaspersky/ksc-client@3.1.0",
						Fields: []match.Field{
							f("CycloneDX author", "Kaspersky Dev Team"),
							f("CycloneDX manufacturer", "AO Kaspersky Lab"),
							f("CycloneDX supplier", "Kaspersky Registry Mirror"),
						},
					},
					{
						Name: "left-pad", Version: "1.3.0", Type: "npm", PURL: "pkg:npm/left-pad@1.3.0",
						Fields: []match.Field{f("CycloneDX author", "azer")},
					},
					{
						Name: "deep", Version: "0.0.1", Type: "npm", PURL: "pkg:npm/deep@0.0.1",
						CPEs: []match.CPE{{Vendor: "deepcorp", Product: "deep"}},
					},
					// A Maven name is the artifactId; the group stays out of it.
					{Name: "klsdk", Version: "1.4", Type: "maven", PURL: "pkg:maven/com.kaspersky/klsdk@1.4"},
					{Name: "debian", Version: "12"},
				},
				Files: []match.File{
					{Path: "/opt/kaspersky/kesl/bin/kesl-control"},
					{Path: "/opt/kaspersky/kesl/lib/libkesl.so"},
				},
			},
		},
		"CycloneDX without components": {
			in:         `{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []}`,
			wantFormat: FormatCycloneDXJSON,
		},
		"CycloneDX with null components": {
			in:         `{"bomFormat": "CycloneDX", "specVersion": "1.2", "components": null}`,
			wantFormat: FormatCycloneDXJSON,
		},
		"CycloneDX 1.7, as syft 1.57 writes by default": {
			in:         `{"bomFormat": "CycloneDX", "specVersion": "1.7", "components": [{"type": "library", "name": "kesl", "publisher": "AO Kaspersky Lab"}]}`,
			wantFormat: FormatCycloneDXJSON,
			want:       match.Inventory{Packages: []match.Package{{Name: "kesl", Fields: []match.Field{f("CycloneDX publisher", "AO Kaspersky Lab")}}}},
		},
		"CycloneDX with a byte order mark": {
			in:         "\ufeff" + `{"bomFormat": "CycloneDX", "specVersion": "1.4", "components": [{"type": "library", "name": "kesl", "purl": "pkg:deb/debian/kesl@11"}]}`,
			wantFormat: FormatCycloneDXJSON,
			want:       match.Inventory{Packages: []match.Package{{Name: "kesl", Type: "deb", PURL: "pkg:deb/debian/kesl@11"}}},
		},
		"SPDX without packages": {
			in:         `{"spdxVersion": "SPDX-2.2", "SPDXID": "SPDXRef-DOCUMENT", "packages": []}`,
			wantFormat: FormatSPDXJSON,
		},
		"SPDX NOASSERTION and duplicate CPEs": {
			in: `{"spdxVersion": "SPDX-2.3", "packages": [{"name": "kesl", "supplier": "NOASSERTION", "originator": "Organization: NOASSERTION",
				"externalRefs": [
					{"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": "cpe:2.3:a:kaspersky:kesl:11:*:*:*:*:*:*:*"},
					{"referenceCategory": "SECURITY", "referenceType": "cpe22Type", "referenceLocator": "cpe:/a:Kaspersky:KESL:11"},
					{"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": "not a cpe"}]}]}`,
			wantFormat: FormatSPDXJSON,
			want:       match.Inventory{Packages: []match.Package{{Name: "kesl", CPEs: []match.CPE{{Vendor: "kaspersky", Product: "kesl"}}}}},
		},
		"syft JSON without artifacts": {
			in:         `{"artifacts": [], "artifactRelationships": [], "source": {"type": "directory", "metadata": {"path": "/src"}}, "schema": {"version": "16.0.0"}}`,
			wantFormat: FormatSyftJSON,
		},
		"syft JSON CPE sources": {
			in: `{"schema": {"version": "16.0.0"}, "artifacts": [{"name": "kesl", "type": "deb", "cpes": [
				{"cpe": "cpe:2.3:a:kesl:kesl:11:*:*:*:*:*:*:*", "source": "syft-generated"},
				{"cpe": "cpe:2.3:a:kaspersky:kesl:11:*:*:*:*:*:*:*", "source": "syft-generated"},
				{"cpe": "cpe:2.3:a:kaspersky:kesl:11:*:*:*:*:*:*:*", "source": "declared"},
				{"cpe": "cpe:2.3:a:kaspersky_lab:kesl:11:*:*:*:*:*:*:*"}]}]}`,
			wantFormat: FormatSyftJSON,
			want: match.Inventory{Packages: []match.Package{{Name: "kesl", Type: "deb", CPEs: []match.CPE{
				{Vendor: "kaspersky", Product: "kesl", Declared: true},
				{Vendor: "kesl", Product: "kesl"},
				{Vendor: "kaspersky_lab", Product: "kesl"},
			}}}},
		},
		"garbage": {
			in:      "\x00\x01 this is not JSON",
			wantErr: `not an SBOM: not valid JSON near byte 1 (invalid character '\x00' looking for beginning of value); expected SPDX JSON ("spdxVersion"), CycloneDX JSON ("bomFormat": "CycloneDX") or syft JSON ("artifacts")`,
		},
		"truncated JSON": {
			in:      `{"spdxVersion": "SPDX-2.3", "packages": [{"name": "kes`,
			wantErr: `not an SBOM: the JSON is truncated (unexpected end of JSON input); expected SPDX JSON`,
		},
		"JSON of another kind": {
			in:      `{"foo": 1}`,
			wantErr: `not an SBOM: expected SPDX JSON ("spdxVersion"), CycloneDX JSON ("bomFormat": "CycloneDX") or syft JSON ("artifacts")`,
		},
		"a JSON array": {
			in:      `[{"bomFormat": "CycloneDX"}]`,
			wantErr: `not an SBOM: the document is a JSON array, not an object`,
		},
		"empty": {
			in:      " \n",
			wantErr: `not an SBOM: the document is empty`,
		},
		"an artifacts list that is not syft's": {
			in:      `{"total_count": 1, "artifacts": [{"name": "build-logs", "size_in_bytes": 1024}]}`,
			wantErr: `not an SBOM: the document has "artifacts" but none of syft's "schema", "descriptor" or "source"`,
		},
		"CycloneDX XML": {
			in:      `<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.6"></bom>`,
			wantErr: `not an SBOM: the document is XML, which is not supported`,
		},
		"SPDX tag-value": {
			in:      "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n",
			wantErr: `SPDX tag-value is not supported`,
		},
		"SPDX 3 JSON-LD": {
			in:      `{"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": []}`,
			wantErr: `SPDX 3 JSON-LD ("@context", "@graph") is not supported`,
		},
		"SPDX of an unsupported version": {
			in:      `{"spdxVersion": "SPDX-1.2", "packages": []}`,
			wantErr: `SPDX JSON: "spdxVersion" is "SPDX-1.2"; only SPDX-2.x JSON is supported`,
		},
		"bomFormat that is not CycloneDX": {
			in:      `{"bomFormat": "SWID"}`,
			wantErr: `not an SBOM: "bomFormat" is "SWID", expected "CycloneDX"`,
		},
		"CycloneDX of an unsupported version": {
			in:      `{"bomFormat": "CycloneDX", "specVersion": "1.1"}`,
			wantErr: `CycloneDX JSON: "specVersion" is "1.1"; CycloneDX JSON 1.2 or later 1.x is supported`,
		},
		"SPDX package name of the wrong type": {
			in:      `{"spdxVersion": "SPDX-2.3", "packages": [{"name": 5}]}`,
			wantErr: `SPDX JSON: "packages.name" is a JSON number, expected string`,
		},
		"CycloneDX components of the wrong type": {
			in:      `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": {"name": "kesl"}}`,
			wantErr: `CycloneDX JSON: "components" is a JSON object, expected array`,
		},
		"syft metadata of the wrong type": {
			in:      `{"schema": {}, "artifacts": [{"name": "kesl", "metadataType": "dpkg-db-entry", "metadata": {"maintainer": ["AO Kaspersky Lab"]}}]}`,
			wantErr: `syft JSON: artifacts[0] ("kesl"): metadata of type "dpkg-db-entry": "maintainer" is a JSON array, expected string`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := tc.in
			if tc.file != "" {
				b, err := os.ReadFile(filepath.Join("testdata", tc.file))
				if err != nil {
					t.Fatal(err)
				}
				in = string(b)
			}
			got, format, err := Decode(strings.NewReader(in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if format != tc.wantFormat {
				t.Errorf("Decode() format = %q, want %q", format, tc.wantFormat)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decode() inventory mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// endless yields n bytes of a JSON document that never ends, without holding them.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	for i := range p {
		p[i] = ' '
	}
	e.n -= int64(len(p))
	return len(p), nil
}

func TestDecodeOversize(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 256 MiB")
	}
	r := io.MultiReader(strings.NewReader(`{"artifacts": [`), &endless{n: MaxSize})
	_, _, err := Decode(r)
	if err == nil || !strings.Contains(err.Error(), "larger than 256 MiB") {
		t.Fatalf("Decode() error = %v, want one saying the SBOM is too large", err)
	}
}

func TestParseCPE(t *testing.T) {
	tests := map[string]struct {
		in           string
		vendor, prod string
		ok           bool
	}{
		"2.3":                    {"cpe:2.3:a:kaspersky:endpoint_security:12:*:*:*:*:linux:*:*", "kaspersky", "endpoint_security", true},
		"2.3 short":              {"cpe:2.3:a:kaspersky", "kaspersky", "", true},
		"2.3 quoted punctuation": {`cpe:2.3:a:ao\-kaspersky\:lab:kesl\!:*:*:*:*:*:*:*:*`, "ao-kaspersky:lab", "kesl!", true},
		"2.3 any product":        {"cpe:2.3:a:kaspersky:*:*:*:*:*:*:*:*:*", "kaspersky", "", true},
		"2.3 any vendor":         {"cpe:2.3:a:*:kesl:*:*:*:*:*:*:*:*", "", "", false},
		"2.3 NA vendor":          {"cpe:2.3:a:-:kesl:*:*:*:*:*:*:*:*", "", "", false},
		"2.3 upper-case prefix":  {"CPE:2.3:a:kaspersky:kesl", "kaspersky", "kesl", true},
		"2.2 URI":                {"cpe:/a:kaspersky:anti-virus:2012", "kaspersky", "anti-virus", true},
		"2.2 URI percent":        {"cpe:/a:ao%20kaspersky:kesl", "ao kaspersky", "kesl", true},
		"2.2 URI vendor only":    {"cpe:/a:kaspersky", "kaspersky", "", true},
		"2.2 URI bad percent":    {"cpe:/a:kasper%zzsky:kesl", "", "", false},
		"2.2 URI part only":      {"cpe:/a", "", "", false},
		"2.3 part only":          {"cpe:2.3:a", "", "", false},
		"not a CPE":              {"kaspersky", "", "", false},
		"empty":                  {"", "", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, p, ok := parseCPE(tc.in)
			if v != tc.vendor || p != tc.prod || ok != tc.ok {
				t.Errorf("parseCPE(%q) = %q, %q, %v; want %q, %q, %v", tc.in, v, p, ok, tc.vendor, tc.prod, tc.ok)
			}
		})
	}
}

func TestPURLType(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"deb":           {"pkg:deb/debian/kesl@11", "deb"},
		"upper case":    {"pkg:NPM/%40kaspersky/x@1", "npm"},
		"slashes":       {"pkg://maven/com.kaspersky/klsdk@1.4", "maven"},
		"no namespace":  {"pkg:generic/kav4proxy", "generic"},
		"no name":       {"pkg:deb", ""},
		"bad character": {"pkg:de_b/debian/kesl", ""},
		"not a purl":    {"a-purl-1", ""},
		"empty":         {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := purlType(tc.in); got != tc.want {
				t.Errorf("purlType(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFilePath(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"absolute":      {"/opt/kaspersky/kesl", "/opt/kaspersky/kesl"},
		"relative":      {"opt/kaspersky/kesl", "/opt/kaspersky/kesl"},
		"dot relative":  {"./opt/kaspersky/kesl", "/opt/kaspersky/kesl"},
		"hidden":        {".kesl/cache", "/.kesl/cache"},
		"unclean":       {"/opt//kaspersky/../kaspersky/kesl/", "/opt/kaspersky/kesl"},
		"blank":         {"  ", ""},
		"escaping root": {"../../etc/passwd", "/etc/passwd"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := filePath(tc.in); got != tc.want {
				t.Errorf("filePath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// The packages decoded from an SBOM convict the way an image scan's would.
func TestDecodeThenMatch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "syft.json"))
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := Decode(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := match.Compile("Kaspersky", "", nil, vendorRules())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fd := range match.Match(inv, []*match.Vendor{v}) {
		if fd.Package != nil {
			got[fd.Package.Name] = fd.Evidence[0].Field
		}
	}
	want := map[string]string{
		"kesl":                  "dpkg Maintainer",
		"kaspersky-agent":       "rpm Vendor",
		"kaspersky-sdk":         "python Author",
		"@kaspersky/ksc-client": "npm author",
		"klsdk":                 "java Implementation-Vendor",
		"avp.exe":               "PE CompanyName",
		"Kaspersky.Scan":        ".NET CompanyName",
		"kesl-scanner":          "ELF note vendor",
		"kav4proxy":             "kernel module author",
		"kaspersky-ruby":        "gem author",
		"kaspersky/ksc-php":     "composer author",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("convicted packages mismatch (-want +got):\n%s", diff)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"syft.json", "syft-legacy.json", "spdx.json", "cyclonedx.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", "name": "", "components": [{"name": "x", "cpe": "cpe:/a:v:p"}]}]}`,
		`{"spdxVersion": "SPDX-2.3", "packages": [{"name": " ", "supplier": "NOASSERTION"}], "files": [{"fileName": "./x"}]}`,
		`{"schema": {}, "artifacts": [{"name": "a", "cpes": ["cpe:2.3:a:v\\:w:p"], "metadataType": "java-archive", "metadata": {"manifest": {"main": {"Implementation-Vendor": "V"}}}}]}`,
		`{"foo": 1}`,
		`{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.3", "packages": [{"name": "a"}]}}`,
		`{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"sig": "x"}]}`,
		`{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {"payloadType": "application/vnd.in-toto+json", "payload": "e30="}}`,
		`[]`,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, format, err := Decode(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		if format == "" {
			t.Fatal("Decode() returned no format and no error")
		}
		for i, p := range inv.Packages {
			if p.Name == "" {
				t.Fatalf("package %d has no name: %+v", i, p)
			}
			for _, c := range p.CPEs {
				if c.Vendor == "" {
					t.Fatalf("package %q has a CPE without a vendor", p.Name)
				}
			}
		}
		for _, fl := range inv.Files {
			if !strings.HasPrefix(fl.Path, "/") {
				t.Fatalf("file path %q is not absolute", fl.Path)
			}
		}
	})
}

func vendorRules() v1alpha1.VendorRules {
	return v1alpha1.VendorRules{
		Suppliers:  []string{`(AO )?Kaspersky( Lab)?`},
		CPEVendors: []string{"kaspersky"},
	}
}
