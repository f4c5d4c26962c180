package match

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/embargo-dev/embargo/api/v1alpha1"
)

func TestCompileErrors(t *testing.T) {
	supplier := v1alpha1.CorroborationSupplier
	path := v1alpha1.CorroborationPath
	cases := map[string]struct {
		name  string
		rules v1alpha1.VendorRules
		want  []string // substrings of the error
	}{
		"empty name": {
			rules: v1alpha1.VendorRules{Suppliers: []string{"Kaspersky Lab"}},
			want:  []string{"vendor name is empty"},
		},
		"no rules": {
			name: "Kaspersky",
			want: []string{`"Kaspersky"`, "no rules", "packages, suppliers, purls, cpeVendors or paths"},
		},
		"empty package name": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Packages: []v1alpha1.PackageRule{{Name: "kesl"}, {Name: "  "}}},
			want:  []string{"packages[1].name is empty"},
		},
		"unknown corroboration": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Packages: []v1alpha1.PackageRule{{Name: "kics", Requires: []v1alpha1.Corroboration{"Maintainer"}}}},
			want:  []string{"packages[0].requires", `"Maintainer"`, "Supplier, Path"},
		},
		"requires Path without paths rules": {
			name: "Kaspersky",
			rules: v1alpha1.VendorRules{
				Suppliers: []string{"Kaspersky Lab"},
				Packages:  []v1alpha1.PackageRule{{Name: "kesl"}, {Name: "kics", Requires: []v1alpha1.Corroboration{path}}},
			},
			want: []string{"packages[1].requires Path", "no paths rules"},
		},
		"requires Supplier without suppliers rules": {
			name: "Kaspersky",
			rules: v1alpha1.VendorRules{
				Paths:    []string{"/opt/kaspersky/**"},
				Packages: []v1alpha1.PackageRule{{Name: "kics", Requires: []v1alpha1.Corroboration{path, supplier}}},
			},
			want: []string{"packages[0].requires Supplier", "no suppliers rules"},
		},
		"empty supplier": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Suppliers: []string{" "}},
			want:  []string{"suppliers[0] is empty"},
		},
		"bad regex": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Suppliers: []string{"Kaspersky Lab", "(Kaspersky"}},
			want:  []string{"suppliers[1]", `"(Kaspersky"`, "not a valid regular expression"},
		},
		"regex matching the empty string": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Suppliers: []string{"(?:Kaspersky)?"}},
			want:  []string{"suppliers[0]", "matches an empty field"},
		},
		"regex matching the empty string through an alternative": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Suppliers: []string{"Kaspersky Lab|"}},
			want:  []string{"suppliers[0]", "matches an empty field"},
		},
		"purl without pkg:": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{PURLs: []string{"npm/%40kaspersky/*"}},
			want:  []string{"purls[0]", `"npm/%40kaspersky/*"`, `must start with "pkg:"`},
		},
		"purl without a type": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{PURLs: []string{"pkg:npm/%40kaspersky/*", "pkg:"}},
			want:  []string{"purls[1]", `"pkg:"`},
		},
		"wildcard cpe vendor": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{CPEVendors: []string{"kaspersky", "*"}},
			want:  []string{"cpeVendors[1]", `"*"`},
		},
		"relative path glob": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Paths: []string{"opt/kaspersky/**"}},
			want:  []string{"paths[0]", `"opt/kaspersky/**"`, "must be absolute"},
		},
		"invalid path glob": {
			name:  "Kaspersky",
			rules: v1alpha1.VendorRules{Paths: []string{"/opt/kaspersky/**", "/opt/[kaspersky/**"}},
			want:  []string{"paths[1]", `"/opt/[kaspersky/**"`, "not a valid glob"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := Compile(tc.name, "", nil, tc.rules)
			if err == nil {
				t.Fatalf("Compile succeeded (%+v), want an error", v)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompile(t *testing.T) {
	basis := []string{"DHS BOD 17-01", "NDAA FY2018 §1634"}
	v, err := Compile("AO Kaspersky Lab", "kaspersky", basis, v1alpha1.VendorRules{
		Packages:   []v1alpha1.PackageRule{{Name: "kesl"}, {Type: " DEB ", Name: "kics", Requires: []v1alpha1.Corroboration{v1alpha1.CorroborationSupplier}}},
		Suppliers:  []string{"(?:AO )?Kaspersky Lab"},
		PURLs:      []string{"pkg:npm/%40kaspersky/*"},
		CPEVendors: []string{" Kaspersky "},
		Paths:      []string{"/opt/kaspersky/**"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "AO Kaspersky Lab" || v.Catalog != "kaspersky" {
		t.Errorf("Name %q Catalog %q", v.Name, v.Catalog)
	}
	if diff := cmp.Diff(basis, v.Basis); diff != "" {
		t.Errorf("Basis (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"kaspersky"}, v.cpeVendors); diff != "" {
		t.Errorf("cpeVendors are not trimmed and lower-cased (-want +got):\n%s", diff)
	}
	if got := []string{v.packages[0].typ, v.packages[1].typ}; !slices.Equal(got, []string{"*", "deb"}) {
		t.Errorf("package types %q, want an empty type to mean any and types trimmed and lower-cased", got)
	}
}

// kaspersky is the vendor most cases below match against.
var kaspersky = v1alpha1.VendorRules{
	Suppliers:  []string{`(?:AO )?Kaspersky Lab`},
	PURLs:      []string{"pkg:npm/%40kaspersky/*", "pkg:maven/com.kaspersky/kav-sdk", "pkg:golang/github.com/KasperskyLab/*@v1.*"},
	CPEVendors: []string{"kaspersky", "kaspersky_lab"},
	Paths:      []string{"/opt/kaspersky/**"},
	Packages: []v1alpha1.PackageRule{
		{Type: "deb", Name: "kesl"},
		{Type: "rpm", Name: "klnagent*"},
		{Type: "deb", Name: "kav4fs-?"},
	},
}

func deb(name string, fields ...Field) Package {
	return Package{Name: name, Version: "1.0", Type: "deb", PURL: "pkg:deb/debian/" + name + "@1.0", Fields: fields, Layer: "sha256:pkglayer"}
}

func maintainer(v string) Field { return Field{Name: "dpkg Maintainer", Value: v} }

func ref(p Package) *PackageRef {
	return &PackageRef{Name: p.Name, Version: p.Version, Type: p.Type, PURL: p.PURL}
}

func TestMatch(t *testing.T) {
	kesl := deb("kesl")
	byMaint := deb("kesl-helper", maintainer("Kaspersky Lab"))
	withEmail := deb("kesl-helper", maintainer("AO Kaspersky Lab <support@kaspersky.com>"))
	npmAuthor := Package{Name: "@kaspersky/sdk", Version: "2.0.0", Type: "npm", Fields: []Field{{Name: "npm author", Value: "AO Kaspersky Lab <npm@kaspersky.com> (https://www.kaspersky.com)"}}}
	spdx := Package{Name: "kesl", Version: "12", Type: "generic", Fields: []Field{{Name: "SPDX supplier", Value: "Organization: AO Kaspersky Lab"}}}
	secondField := Package{Name: "kav-sdk", Type: "maven", Fields: []Field{
		{Name: "Implementation-Vendor", Value: "Example Corp"},
		{Name: "Specification-Vendor", Value: "Kaspersky Lab"},
	}}
	zte := v1alpha1.VendorRules{Suppliers: []string{`ZTE Corporation`, `ZTE \(USA\) Inc\.`}}
	zteUSA := deb("zte-tool", maintainer("ZTE (USA) Inc."))
	kicsRules := v1alpha1.VendorRules{
		Suppliers: []string{"Kaspersky Lab"},
		Paths:     []string{"/opt/kaspersky/**"},
		Packages:  []v1alpha1.PackageRule{{Type: "deb", Name: "kics", Requires: []v1alpha1.Corroboration{v1alpha1.CorroborationSupplier, v1alpha1.CorroborationPath}}},
	}
	laterRule := v1alpha1.VendorRules{
		Suppliers: []string{"Kaspersky Lab"},
		Packages: []v1alpha1.PackageRule{
			{Name: "kics", Requires: []v1alpha1.Corroboration{v1alpha1.CorroborationSupplier}},
			{Type: "deb", Name: "kics"},
		},
	}
	checkmarx := maintainer("Checkmarx <kics@checkmarx.com>")
	files := []File{
		{Path: "/opt/kaspersky/kesl/bin/kesl", Layer: "sha256:l2"},
		{Path: "/opt/kasperskyx/readme", Layer: "sha256:l9"},
		{Path: "/opt/kaspersky/kesl/lib/libkesl.so", Layer: "sha256:l2"},
		{Path: "/opt/kaspersky/kesl/bin/kesl-control", Layer: "sha256:l3"},
		{Path: "/opt/kaspersky/README", Layer: "sha256:l1"},
		{Path: "/usr/bin/kesl", Layer: "sha256:l0"},
	}
	pathEvidence := func(value string) []Evidence {
		return []Evidence{{Rule: RulePath, Field: "path /opt/kaspersky/**", Value: value}}
	}
	cases := map[string]struct {
		rules v1alpha1.VendorRules // kaspersky when zero
		inv   Inventory
		want  []Finding
	}{
		"empty inventory": {},
		"supplier": {
			inv: Inventory{Packages: []Package{byMaint}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(byMaint), Layer: "sha256:pkglayer",
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "Kaspersky Lab"}}}},
		},
		"supplier without case": {
			inv:  Inventory{Packages: []Package{deb("x", maintainer("KASPERSKY LAB"))}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(deb("x")), Layer: "sha256:pkglayer", Evidence: []Evidence{{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "KASPERSKY LAB"}}}},
		},
		"supplier anchored at the end": {
			inv: Inventory{Packages: []Package{deb("x", maintainer("Kaspersky Lab Fan Club"))}},
		},
		"supplier anchored at the start": {
			inv: Inventory{Packages: []Package{deb("x", maintainer("Not Kaspersky Lab"))}},
		},
		"supplier in an email address only": {
			inv: Inventory{Packages: []Package{deb("x", maintainer("Jane Doe <kaspersky.lab@example.com>"))}},
		},
		"supplier with email stripped": {
			inv: Inventory{Packages: []Package{withEmail}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(withEmail), Layer: "sha256:pkglayer",
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"}}}},
		},
		"npm author with email and url": {
			inv: Inventory{Packages: []Package{npmAuthor}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(npmAuthor),
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "npm author", Value: "AO Kaspersky Lab <npm@kaspersky.com> (https://www.kaspersky.com)"}}}},
		},
		"SPDX organization": {
			inv: Inventory{Packages: []Package{spdx}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(spdx),
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "SPDX supplier", Value: "Organization: AO Kaspersky Lab"}}}},
		},
		"second field matches": {
			inv: Inventory{Packages: []Package{secondField}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(secondField),
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "Specification-Vendor", Value: "Kaspersky Lab"}}}},
		},
		"parenthetical kept": {
			rules: zte,
			inv:   Inventory{Packages: []Package{zteUSA}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(zteUSA), Layer: "sha256:pkglayer",
				Evidence: []Evidence{{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "ZTE (USA) Inc."}}}},
		},
		"parenthetical not dropped to reach a shorter name": {
			rules: v1alpha1.VendorRules{Suppliers: []string{`ZTE Inc\.`}},
			inv:   Inventory{Packages: []Package{zteUSA}},
		},

		"package name": {
			inv: Inventory{Packages: []Package{kesl}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(kesl), Layer: "sha256:pkglayer",
				Evidence: []Evidence{{Rule: RulePackage, Field: "deb package name", Value: "kesl"}}}},
		},
		"package name of another type": {
			inv: Inventory{Packages: []Package{{Name: "kesl", Type: "npm"}}},
		},
		"package type without case": {
			inv: Inventory{Packages: []Package{{Name: "KESL", Type: "DEB"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "KESL", Type: "DEB"},
				Evidence: []Evidence{{Rule: RulePackage, Field: "DEB package name", Value: "KESL"}}}},
		},
		"package any type": {
			rules: v1alpha1.VendorRules{Packages: []v1alpha1.PackageRule{{Name: "kesl"}}},
			inv:   Inventory{Packages: []Package{{Name: "kesl", Type: "pypi"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "kesl", Type: "pypi"},
				Evidence: []Evidence{{Rule: RulePackage, Field: "pypi package name", Value: "kesl"}}}},
		},
		"package glob star": {
			inv: Inventory{Packages: []Package{{Name: "klnagent64", Type: "rpm"}, {Name: "xklnagent", Type: "rpm"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "klnagent64", Type: "rpm"},
				Evidence: []Evidence{{Rule: RulePackage, Field: "rpm package name", Value: "klnagent64"}}}},
		},
		"package glob question mark": {
			inv: Inventory{Packages: []Package{{Name: "kav4fs-1", Type: "deb"}, {Name: "kav4fs-", Type: "deb"}, {Name: "kav4fs-12", Type: "deb"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "kav4fs-1", Type: "deb"},
				Evidence: []Evidence{{Rule: RulePackage, Field: "deb package name", Value: "kav4fs-1"}}}},
		},
		"package glob quotes regexp characters": {
			rules: v1alpha1.VendorRules{Packages: []v1alpha1.PackageRule{{Name: "k.e+sl"}}},
			inv:   Inventory{Packages: []Package{{Name: "kxeesl", Type: "generic"}, {Name: "k.e+sl", Type: "generic"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "k.e+sl", Type: "generic"},
				Evidence: []Evidence{{Rule: RulePackage, Field: "generic package name", Value: "k.e+sl"}}}},
		},
		"requires Supplier met": {
			rules: kicsRules,
			inv:   Inventory{Packages: []Package{deb("kics", maintainer("Kaspersky Lab"))}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(deb("kics")), Layer: "sha256:pkglayer", Evidence: []Evidence{
				{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "Kaspersky Lab"},
				{Rule: RulePackage, Field: "deb package name", Value: "kics"},
			}}},
		},
		"requires Supplier not met": {
			rules: kicsRules,
			inv:   Inventory{Packages: []Package{deb("kics", checkmarx)}, Files: []File{{Path: "/usr/bin/kics"}}},
		},
		"requires Path met": {
			rules: kicsRules,
			inv:   Inventory{Packages: []Package{deb("kics", checkmarx)}, Files: []File{{Path: "/opt/kaspersky/kics/bin/kics", Layer: "sha256:l5"}}},
			want: []Finding{
				{Vendor: "Kaspersky", Evidence: pathEvidence("/opt/kaspersky/kics/bin/kics"), Layer: "sha256:l5"},
				{Vendor: "Kaspersky", Package: ref(deb("kics")), Layer: "sha256:pkglayer", Evidence: []Evidence{{Rule: RulePackage, Field: "deb package name", Value: "kics"}}},
			},
		},
		"requires Path not met by a look-alike path": {
			rules: kicsRules,
			inv:   Inventory{Packages: []Package{deb("kics", checkmarx)}, Files: []File{{Path: "/opt/kaspersky-free/kics"}}},
		},
		"later rule for the same name after a failed requires": {
			rules: laterRule,
			inv:   Inventory{Packages: []Package{deb("kics", checkmarx)}},
			want: []Finding{{Vendor: "Kaspersky", Package: ref(deb("kics")), Layer: "sha256:pkglayer",
				Evidence: []Evidence{{Rule: RulePackage, Field: "deb package name", Value: "kics"}}}},
		},
		"later rule for the same name does not apply to another type": {
			rules: laterRule,
			inv:   Inventory{Packages: []Package{{Name: "kics", Type: "rpm", Fields: []Field{checkmarx}}}},
		},

		"purl glob without version": {
			inv: Inventory{Packages: []Package{{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/%40kaspersky/sdk@1.2.3"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/%40kaspersky/sdk@1.2.3"},
				Evidence: []Evidence{{Rule: RulePURL, Field: "purl", Value: "pkg:npm/%40kaspersky/sdk@1.2.3"}}}},
		},
		"purl scope written with @ in the package": {
			inv: Inventory{Packages: []Package{{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/@kaspersky/sdk"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/@kaspersky/sdk"},
				Evidence: []Evidence{{Rule: RulePURL, Field: "purl", Value: "pkg:npm/@kaspersky/sdk"}}}},
		},
		"purl scope written with @ in the rule": {
			rules: v1alpha1.VendorRules{PURLs: []string{"pkg:npm/@kaspersky/*"}},
			inv:   Inventory{Packages: []Package{{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/%40kaspersky/sdk@1.2.3"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "@kaspersky/sdk", Type: "npm", PURL: "pkg:npm/%40kaspersky/sdk@1.2.3"},
				Evidence: []Evidence{{Rule: RulePURL, Field: "purl", Value: "pkg:npm/%40kaspersky/sdk@1.2.3"}}}},
		},
		"purl look-alikes": {
			inv: Inventory{Packages: []Package{
				{Name: "kaspersky", Type: "npm", PURL: "pkg:npm/kaspersky@1.0.0"},
				{Name: "@kasperskyfans/sdk", Type: "npm", PURL: "pkg:npm/%40kasperskyfans/sdk@1.0.0"},
				{Name: "kav-sdk-extra", Type: "maven", PURL: "pkg:maven/com.kaspersky/kav-sdk-extra@1.0"},
				{Name: "kav-sdk", Type: "maven", PURL: "pkg:maven/com.kasperskyx/kav-sdk@1.0"},
			}},
		},
		"purl without version in the rule ignores version, qualifiers and subpath": {
			inv: Inventory{Packages: []Package{{Name: "kav-sdk", Type: "maven", PURL: "pkg:maven/com.kaspersky/kav-sdk@1.0?type=jar&classifier=sources#lib"}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "kav-sdk", Type: "maven", PURL: "pkg:maven/com.kaspersky/kav-sdk@1.0?type=jar&classifier=sources#lib"},
				Evidence: []Evidence{{Rule: RulePURL, Field: "purl", Value: "pkg:maven/com.kaspersky/kav-sdk@1.0?type=jar&classifier=sources#lib"}}}},
		},
		"purl with version in the rule": {
			inv: Inventory{Packages: []Package{
				{Name: "github.com/KasperskyLab/a", Type: "golang", PURL: "pkg:golang/github.com/kasperskylab/a@v1.4.0"},
				{Name: "github.com/KasperskyLab/b", Type: "golang", PURL: "pkg:golang/github.com/kasperskylab/b@v2.0.0"},
				{Name: "github.com/KasperskyLab/c", Type: "golang", PURL: "pkg:golang/github.com/kasperskylab/c"},
			}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "github.com/KasperskyLab/a", Type: "golang", PURL: "pkg:golang/github.com/kasperskylab/a@v1.4.0"},
				Evidence: []Evidence{{Rule: RulePURL, Field: "purl", Value: "pkg:golang/github.com/kasperskylab/a@v1.4.0"}}}},
		},

		"declared CPE convicts": {
			inv: Inventory{Packages: []Package{{Name: "endpoint", CPEs: []CPE{{Vendor: "Kaspersky", Product: "endpoint_security", Declared: true}}}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "endpoint"},
				Evidence: []Evidence{{Rule: RuleCPE, Field: "declared CPE vendor", Value: "Kaspersky"}}}},
		},
		"generated CPE alone": {
			inv: Inventory{Packages: []Package{{Name: "kaspersky", Type: "npm", CPEs: []CPE{{Vendor: "kaspersky", Product: "kaspersky"}}}}},
		},
		"generated CPE corroborates": {
			inv: Inventory{Packages: []Package{{Name: "kesl", Type: "deb", CPEs: []CPE{{Vendor: "kaspersky_lab", Product: "kesl"}, {Vendor: "kaspersky", Product: "kesl"}}}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "kesl", Type: "deb"}, Evidence: []Evidence{
				{Rule: RulePackage, Field: "deb package name", Value: "kesl"},
				{Rule: RuleCPE, Field: "generated CPE vendor", Value: "kaspersky_lab"},
			}}},
		},
		"declared CPE after a generated one": {
			inv: Inventory{Packages: []Package{{Name: "endpoint", CPEs: []CPE{
				{Vendor: "kaspersky", Product: "endpoint"},
				{Vendor: "other", Product: "endpoint", Declared: true},
				{Vendor: "kaspersky_lab", Product: "endpoint", Declared: true},
			}}}},
			want: []Finding{{Vendor: "Kaspersky", Package: &PackageRef{Name: "endpoint"},
				Evidence: []Evidence{{Rule: RuleCPE, Field: "declared CPE vendor", Value: "kaspersky_lab"}}}},
		},
		"CPE vendor look-alike": {
			inv: Inventory{Packages: []Package{{Name: "x", CPEs: []CPE{{Vendor: "kaspersky_fan", Declared: true}, {Vendor: "kasper", Declared: true}}}}},
		},
		"every package rule at once": {
			inv: Inventory{Platform: "linux/amd64", Packages: []Package{{
				Name: "kesl", Version: "12.1", Type: "deb", PURL: "pkg:npm/%40kaspersky/kesl@12.1", Layer: "sha256:l7",
				Fields: []Field{maintainer("AO Kaspersky Lab <support@kaspersky.com>")},
				CPEs:   []CPE{{Vendor: "kaspersky", Declared: true}},
			}}},
			want: []Finding{{Vendor: "Kaspersky", Platform: "linux/amd64", Layer: "sha256:l7",
				Package: &PackageRef{Name: "kesl", Version: "12.1", Type: "deb", PURL: "pkg:npm/%40kaspersky/kesl@12.1"},
				Evidence: []Evidence{
					{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"},
					{Rule: RulePURL, Field: "purl", Value: "pkg:npm/%40kaspersky/kesl@12.1"},
					{Rule: RulePackage, Field: "deb package name", Value: "kesl"},
					{Rule: RuleCPE, Field: "declared CPE vendor", Value: "kaspersky"},
				}}},
		},

		"path glob over nested files": {
			inv:  Inventory{Platform: "linux/arm64", Files: files},
			want: []Finding{{Vendor: "Kaspersky", Platform: "linux/arm64", Layer: "sha256:l1", Evidence: pathEvidence("/opt/kaspersky/README (and 3 more files)")}},
		},
		"path glob over one file": {
			inv:  Inventory{Files: []File{{Path: "/usr/bin/kesl"}, {Path: "/opt/kaspersky/kesl/bin/kesl", Layer: "sha256:l2"}}},
			want: []Finding{{Vendor: "Kaspersky", Layer: "sha256:l2", Evidence: pathEvidence("/opt/kaspersky/kesl/bin/kesl")}},
		},
		"path look-alikes": {
			inv: Inventory{Files: []File{{Path: "/opt/kaspersky-free/x"}, {Path: "/srv/opt/kaspersky/x"}, {Path: "/opt/Kaspersky2/x"}, {Path: "opt/kaspersky/x"}}},
		},
		"one finding per path rule": {
			rules: v1alpha1.VendorRules{Paths: []string{"/opt/kaspersky/**", "/**/kesl"}},
			inv:   Inventory{Files: files},
			want: []Finding{
				{Vendor: "Kaspersky", Layer: "sha256:l1", Evidence: pathEvidence("/opt/kaspersky/README (and 3 more files)")},
				{Vendor: "Kaspersky", Layer: "sha256:l2", Evidence: []Evidence{{Rule: RulePath, Field: "path /**/kesl", Value: "/opt/kaspersky/kesl/bin/kesl (and 1 more files)"}}},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := tc.rules
			if rulesEmpty(rules) {
				rules = kaspersky
			}
			v, err := Compile("Kaspersky", "", nil, rules)
			if err != nil {
				t.Fatal(err)
			}
			got := Match(tc.inv, []*Vendor{v})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Match (-want +got):\n%s", diff)
			}
		})
	}
}

func rulesEmpty(r v1alpha1.VendorRules) bool {
	return len(r.Packages)+len(r.Suppliers)+len(r.PURLs)+len(r.CPEVendors)+len(r.Paths) == 0
}

func TestMatchVendors(t *testing.T) {
	k, err := Compile("AO Kaspersky Lab", "kaspersky", nil, kaspersky)
	if err != nil {
		t.Fatal(err)
	}
	z, err := Compile("ZTE Corporation", "zte", nil, v1alpha1.VendorRules{
		Suppliers: []string{`ZTE Corporation`},
		Paths:     []string{"/opt/zte/**"},
	})
	if err != nil {
		t.Fatal(err)
	}
	custom, err := Compile("Acme", "", nil, v1alpha1.VendorRules{Packages: []v1alpha1.PackageRule{{Name: "acme-*"}}})
	if err != nil {
		t.Fatal(err)
	}
	inv := Inventory{
		Platform: "linux/amd64",
		Packages: []Package{
			{Name: "zte-agent", Type: "rpm", Fields: []Field{{Name: "rpm Vendor", Value: "ZTE Corporation"}}},
			{Name: "kesl", Version: "12", Type: "deb"},
			{Name: "acme-tool", Type: "apk"},
			{Name: "bash", Type: "deb", Fields: []Field{maintainer("Matthias Klose <doko@debian.org>")}},
		},
		Files: []File{{Path: "/opt/zte/agent"}, {Path: "/opt/kaspersky/kesl/bin/kesl"}},
	}
	var got []string
	for _, f := range Match(inv, []*Vendor{z, custom, k}) {
		if f.Platform != "linux/amd64" {
			t.Errorf("finding %+v: platform %q", f, f.Platform)
		}
		got = append(got, f.Vendor+"|"+f.Catalog+"|"+f.Package.String()+"|"+f.Rule())
	}
	want := []string{
		"AO Kaspersky Lab|kaspersky||path",
		"AO Kaspersky Lab|kaspersky|kesl 12|package",
		"Acme||acme-tool|package",
		"ZTE Corporation|zte||path",
		"ZTE Corporation|zte|zte-agent|supplier",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if got := Match(inv, nil); got != nil {
		t.Errorf("Match without vendors = %+v, want nil", got)
	}
}

func TestSort(t *testing.T) {
	pkg := func(name, version, typ, purl string) *PackageRef {
		return &PackageRef{Name: name, Version: version, Type: typ, PURL: purl}
	}
	ev := func(rule, field, value string) []Evidence {
		return []Evidence{{Rule: rule, Field: field, Value: value}}
	}
	// want is in sorted order: platform, vendor, package, rule, evidence value; then the
	// package's type and purl, the evidence field and the layer break the remaining ties.
	want := []Finding{
		{Vendor: "AO Kaspersky Lab", Evidence: ev(RulePath, "path /opt/kaspersky/**", "/opt/kaspersky/a")},
		{Vendor: "AO Kaspersky Lab", Package: pkg("kesl", "12", "deb", ""), Evidence: ev(RuleSupplier, "dpkg Maintainer", "Kaspersky Lab")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Evidence: ev(RulePath, "path /opt/kaspersky/**", "/opt/kaspersky/a")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Evidence: ev(RulePath, "path /opt/kaspersky/**", "/opt/kaspersky/b")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "12", "deb", "pkg:deb/debian/kesl@12?arch=amd64"), Evidence: ev(RulePackage, "deb package name", "kesl")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "12", "deb", "pkg:deb/debian/kesl@12?arch=i386"), Evidence: ev(RulePackage, "deb package name", "kesl")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "12", "rpm", ""), Evidence: ev(RulePackage, "rpm package name", "kesl")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "12", "deb", ""), Evidence: ev(RuleSupplier, "dpkg Maintainer", "AO Kaspersky Lab")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "12", "deb", ""), Evidence: ev(RuleSupplier, "dpkg Maintainer", "Kaspersky Lab")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/amd64", Package: pkg("kesl", "13", "deb", ""), Evidence: ev(RulePackage, "deb package name", "kesl")},
		{Vendor: "ZTE Corporation", Platform: "linux/amd64", Package: pkg("zte", "", "rpm", ""), Evidence: ev(RuleSupplier, "rpm Vendor", "ZTE Corporation"), Layer: "sha256:a"},
		{Vendor: "ZTE Corporation", Platform: "linux/amd64", Package: pkg("zte", "", "rpm", ""), Evidence: ev(RuleSupplier, "rpm Vendor", "ZTE Corporation"), Layer: "sha256:b"},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/arm64", Evidence: ev(RulePath, "path /opt/kaspersky/**", "/opt/kaspersky/a")},
		{Vendor: "AO Kaspersky Lab", Platform: "linux/arm64", Package: pkg("kesl", "12", "deb", ""), Evidence: ev(RulePackage, "deb package name", "kesl")},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		got := slices.Clone(want)
		rng.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("shuffle %d: Sort (-want +got):\n%s", i, diff)
		}
	}
}

// TestMatchOrderIndependent: the findings do not depend on the order of the inventory.
func TestMatchOrderIndependent(t *testing.T) {
	v, err := Compile("Kaspersky", "", nil, kaspersky)
	if err != nil {
		t.Fatal(err)
	}
	inv := Inventory{Platform: "linux/amd64",
		Packages: []Package{
			{Name: "kesl", Version: "12", Type: "deb", PURL: "pkg:deb/debian/kesl@12?arch=amd64", Layer: "sha256:a"},
			{Name: "kesl", Version: "12", Type: "deb", PURL: "pkg:deb/debian/kesl@12?arch=i386", Layer: "sha256:b"},
			{Name: "klnagent64", Version: "15", Type: "rpm", Fields: []Field{{Name: "rpm Vendor", Value: "AO Kaspersky Lab"}}},
			{Name: "sdk", Type: "npm", PURL: "pkg:npm/%40kaspersky/sdk@1"},
		},
		Files: []File{{Path: "/opt/kaspersky/b", Layer: "sha256:b"}, {Path: "/opt/kaspersky/a", Layer: "sha256:a"}},
	}
	want := Match(inv, []*Vendor{v})
	if len(want) != 5 {
		t.Fatalf("got %d findings, want 5: %+v", len(want), want)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		shuffled := inv
		shuffled.Packages = slices.Clone(inv.Packages)
		shuffled.Files = slices.Clone(inv.Files)
		rng.Shuffle(len(shuffled.Packages), func(i, j int) {
			shuffled.Packages[i], shuffled.Packages[j] = shuffled.Packages[j], shuffled.Packages[i]
		})
		rng.Shuffle(len(shuffled.Files), func(i, j int) { shuffled.Files[i], shuffled.Files[j] = shuffled.Files[j], shuffled.Files[i] })
		if diff := cmp.Diff(want, Match(shuffled, []*Vendor{v})); diff != "" {
			t.Fatalf("shuffle %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestIdentityName(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"plain":                        {"AO Kaspersky Lab", "AO Kaspersky Lab"},
		"email":                        {"AO Kaspersky Lab <support@kaspersky.com>", "AO Kaspersky Lab"},
		"email first":                  {"<support@kaspersky.com> AO Kaspersky Lab", "AO Kaspersky Lab"},
		"email only":                   {"<support@kaspersky.com>", ""},
		"npm author":                   {"AO Kaspersky Lab <npm@kaspersky.com> (https://www.kaspersky.com)", "AO Kaspersky Lab"},
		"npm author with url only":     {"AO Kaspersky Lab (https://kaspersky.com)", "AO Kaspersky Lab"},
		"www parenthetical":            {"AO Kaspersky Lab (www.kaspersky.com)", "AO Kaspersky Lab"},
		"email parenthetical":          {"AO Kaspersky Lab (support@kaspersky.com)", "AO Kaspersky Lab"},
		"parenthetical kept":           {"ZTE (USA) Inc.", "ZTE (USA) Inc."},
		"SPDX organization":            {"Organization: AO Kaspersky Lab", "AO Kaspersky Lab"},
		"SPDX organization with email": {"Organization: AO Kaspersky Lab (support@kaspersky.com)", "AO Kaspersky Lab"},
		"SPDX person":                  {"Person: Jane Doe <jane@example.com>", "Jane Doe"},
		"SPDX tool":                    {"Tool: syft-1.0", "syft-1.0"},
		"SPDX prefix without case":     {"ORGANIZATION:AO Kaspersky Lab", "AO Kaspersky Lab"},
		"prefix not at the start":      {"AO Kaspersky Lab Organization: X", "AO Kaspersky Lab Organization: X"},
		"whitespace collapsed":         {"  AO\tKaspersky \n Lab  ", "AO Kaspersky Lab"},
		"quotes and punctuation":       {`"AO Kaspersky Lab", `, "AO Kaspersky Lab"},
		"guillemets kept":              {"АО «Лаборатория Касперского»", "АО «Лаборатория Касперского»"},
		"empty":                        {"", ""},
		"unbalanced bracket":           {"AO Kaspersky Lab <support", "AO Kaspersky Lab <support"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := IdentityName(tc.in); got != tc.want {
				t.Errorf("IdentityName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	var nilRef *PackageRef
	cases := map[string]struct{ got, want string }{
		"nil package":          {nilRef.String(), ""},
		"package":              {(&PackageRef{Name: "kesl"}).String(), "kesl"},
		"package with version": {(&PackageRef{Name: "kesl", Version: "12.1"}).String(), "kesl 12.1"},
		"evidence":             {Evidence{Rule: RuleSupplier, Field: "dpkg Maintainer", Value: `AO "Kaspersky" Lab`}.String(), `dpkg Maintainer = "AO \"Kaspersky\" Lab"`},
		"rule":                 {Finding{Evidence: []Evidence{{Rule: RuleCPE}, {Rule: RulePath}}}.Rule(), RuleCPE},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestMatchAll(t *testing.T) {
	k, err := Compile("AO Kaspersky Lab", "kaspersky", nil, v1alpha1.VendorRules{
		Suppliers: []string{"(AO )?Kaspersky Lab"},
		Paths:     []string{"/opt/kaspersky/**"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sdk := Package{Name: "kaspersky-endpoint-sdk", Version: "3.1", Fields: []Field{{Name: "SPDX supplier", Value: "Organization: AO Kaspersky Lab"}}}
	kesl := deb("kesl", maintainer("AO Kaspersky Lab"))
	attestation := &Source{Kind: SourceBuildKit, Digest: "sha256:0123456789abcdef0123", Format: "spdx-json", Creator: "Tool: buildkit-v0.17.0"}
	broken := &Source{Kind: SourceReferrer, Digest: "sha256:ffff", Error: "larger than 40 MiB"}
	scannedAMD := Inventory{Platform: "linux/amd64", Packages: []Package{kesl}, Files: []File{{Path: "/opt/kaspersky/a"}}}
	scannedARM := Inventory{Platform: "linux/arm64", Packages: []Package{deb("bash")}}

	type row struct{ platform, pkg, rule, declared string }
	cases := map[string]struct {
		invs []Inventory
		want []row
	}{
		"a declared SDK the scan did not see is a declared finding": {
			invs: []Inventory{scannedARM, {Platform: "linux/arm64", Source: attestation, Packages: []Package{sdk}}},
			want: []row{{"linux/arm64", "kaspersky-endpoint-sdk 3.1", RuleSupplier, attestation.String()}},
		},
		"what the scan found stays when the attached SBOM declares it too, or nothing": {
			invs: []Inventory{
				scannedAMD,
				{Platform: "linux/amd64", Source: attestation, Packages: []Package{kesl}, Files: []File{{Path: "/opt/kaspersky/b"}}},
				{Platform: "linux/amd64", Source: &Source{Kind: SourceCosignSBOM, Digest: "sha256:clean"}},
			},
			want: []row{{"linux/amd64", "", RulePath, ""}, {"linux/amd64", "kesl 1.0", RuleSupplier, ""}},
		},
		"a document attached to the index counts for every platform": {
			invs: []Inventory{scannedAMD, {Source: attestation, Packages: []Package{kesl, sdk}}},
			want: []row{
				{"", "kaspersky-endpoint-sdk 3.1", RuleSupplier, attestation.String()},
				{"linux/amd64", "", RulePath, ""},
				{"linux/amd64", "kesl 1.0", RuleSupplier, ""},
			},
		},
		"the same package declared twice is one finding": {
			invs: []Inventory{
				{Platform: "linux/arm64", Source: attestation, Packages: []Package{sdk}},
				{Platform: "linux/arm64", Source: &Source{Kind: SourceReferrer, Digest: "sha256:other"}, Packages: []Package{sdk}},
			},
			want: []row{{"linux/arm64", "kaspersky-endpoint-sdk 3.1", RuleSupplier, attestation.String()}},
		},
		"a document that failed to decode matches nothing": {
			invs: []Inventory{scannedARM, {Platform: "linux/arm64", Source: broken, Packages: []Package{sdk}}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []row
			for _, f := range MatchAll(tc.invs, []*Vendor{k}) {
				r := row{platform: f.Platform, pkg: f.Package.String(), rule: f.Rule(), declared: f.Evidence[0].Declared}
				if (f.Declared != nil) != (r.declared != "") {
					t.Errorf("finding %+v: Declared %v but evidence says %q", f, f.Declared, r.declared)
				}
				got = append(got, r)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(row{})); diff != "" {
				t.Errorf("MatchAll (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	s := &Source{Kind: SourceCosignAttest, Digest: "sha256:0123456789abcdef0123", Format: "cyclonedx-json", Creator: "Tool: syft 1.57.0", Signed: true}
	want := "attached CycloneDX SBOM sha256:0123456789ab (cosign-attestation), created by Tool: syft 1.57.0, signed (not verified)"
	if got := s.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	e := Evidence{Rule: RuleSupplier, Field: "CycloneDX publisher", Value: "AO Kaspersky Lab", Declared: s.String()}
	if got := e.String(); got != `CycloneDX publisher = "AO Kaspersky Lab", declared by `+want {
		t.Errorf("Evidence.String() = %q", got)
	}
}
