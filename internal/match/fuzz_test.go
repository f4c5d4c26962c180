package match

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/embargo-dev/embargo/api/v1alpha1"
)

// FuzzMatch builds a one-package, one-file inventory and one rule of each kind from the fuzz
// input. Rules that do not compile are skipped; whatever compiles must match without
// panicking and yield well-formed, deterministic findings.
func FuzzMatch(f *testing.F) {
	f.Add("kesl", "12.1", "deb", "pkg:deb/debian/kesl@12.1", "AO Kaspersky Lab <support@kaspersky.com>", "kaspersky", true, "/opt/kaspersky/kesl/bin/kesl",
		"(?:AO )?Kaspersky Lab", "npm/%40kaspersky/*", "opt/kaspersky/**", "deb", "kesl", "kaspersky")
	f.Add("@kaspersky/sdk", "1.0.0", "npm", "pkg:npm/%40kaspersky/sdk@1.0.0?x=y#z", "Name <a@b> (https://x)", "kaspersky_lab", false, "/usr/lib/node_modules/@kaspersky/sdk/index.js",
		"Kaspersky", "npm/@kaspersky/*", "**/@kaspersky/**", "*", "@kaspersky/*", "kaspersky_lab")
	f.Add("kics", "", "rpm", "", "Organization: ZTE (USA) Inc.", "", false, "/opt/zte/x",
		`ZTE \(USA\) Inc\.`, "rpm/*", "opt/zte/*", "rpm", "k?cs", "zte")
	f.Add("", "", "", "pkg:", "<", "*", true, "",
		"(", "", "[", "", "*", "-")
	f.Fuzz(func(t *testing.T, name, version, typ, purl, fieldValue, cpeVendor string, declared bool, filePath,
		supplierRe, purlGlob, pathGlob, ruleType, ruleName, ruleCPE string) {
		var rules v1alpha1.VendorRules
		if strings.TrimSpace(supplierRe) != "" {
			rules.Suppliers = []string{supplierRe}
		}
		if purlGlob != "" {
			rules.PURLs = []string{"pkg:" + purlGlob}
		}
		if pathGlob != "" {
			rules.Paths = []string{"/" + pathGlob}
		}
		if strings.TrimSpace(ruleName) != "" {
			pr := v1alpha1.PackageRule{Type: ruleType, Name: ruleName}
			if len(rules.Suppliers) > 0 {
				pr.Requires = append(pr.Requires, v1alpha1.CorroborationSupplier)
			}
			// a second, unconditional rule for the same name when nothing can corroborate
			rules.Packages = append(rules.Packages, pr, v1alpha1.PackageRule{Type: ruleType, Name: ruleName})
		}
		if ruleCPE != "" {
			rules.CPEVendors = []string{ruleCPE}
		}
		v, err := Compile("Fuzz Vendor", "fuzz", nil, rules)
		if err != nil {
			return
		}
		inv := Inventory{
			Platform: "linux/amd64",
			Packages: []Package{{
				Name: name, Version: version, Type: typ, PURL: purl, Layer: "sha256:p",
				Fields: []Field{{Name: "dpkg Maintainer", Value: fieldValue}},
				CPEs:   []CPE{{Vendor: cpeVendor, Declared: declared}},
			}},
			Files: []File{{Path: filePath, Layer: "sha256:f"}},
		}
		got := Match(inv, []*Vendor{v})
		if len(got) > 1+len(rules.Paths) {
			t.Fatalf("%d findings from one package and %d path rules: %+v", len(got), len(rules.Paths), got)
		}
		for _, f := range got {
			if f.Vendor == "" || len(f.Evidence) == 0 {
				t.Fatalf("malformed finding %+v", f)
			}
			if f.Catalog != "fuzz" || f.Platform != "linux/amd64" {
				t.Fatalf("finding %+v: catalog %q platform %q", f, f.Catalog, f.Platform)
			}
			if f.Evidence[0].Field == "generated CPE vendor" {
				t.Fatalf("a generated CPE convicted: %+v", f)
			}
			for _, e := range f.Evidence {
				if !slices.Contains([]string{RulePackage, RuleSupplier, RulePURL, RuleCPE, RulePath}, e.Rule) {
					t.Fatalf("finding %+v: unknown rule %q", f, e.Rule)
				}
			}
			switch {
			case f.Package == nil && (f.Rule() != RulePath || f.Layer != "sha256:f" || !strings.HasPrefix(f.Evidence[0].Value, filePath)):
				t.Fatalf("path finding %+v does not name file %q", f, filePath)
			case f.Package != nil && (f.Package.Name != name || f.Layer != "sha256:p"):
				t.Fatalf("package finding %+v is not about package %q", f, name)
			}
		}
		if again := Match(inv, []*Vendor{v}); !cmp.Equal(got, again) {
			t.Fatalf("Match is not deterministic:\n%s", cmp.Diff(got, again))
		}
	})
}

// FuzzIdentityName checks invariants of the name a supplier rule sees. IdentityName is not
// idempotent in general ("Organization: Organization: X", `"Organization: X"` and
// "(a<b>@c)" lose more on a second pass), so the idempotence checked is the one that holds:
// a result that has no e-mail or URL part and no SPDX prefix left comes back unchanged.
func FuzzIdentityName(f *testing.F) {
	for _, s := range []string{
		"AO Kaspersky Lab <support@kaspersky.com>",
		"AO Kaspersky Lab <npm@kaspersky.com> (https://www.kaspersky.com)",
		"Organization: AO Kaspersky Lab",
		"ZTE (USA) Inc.",
		`"Organization: X"`,
		"(a<b>@c)",
		"<<a>",
		"a < b > c",
		" \t\u00a0«Лаборатория Касперского»,; ",
		"\xff<\xfe>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := IdentityName(s)
		if len(r) > len(s) {
			t.Fatalf("IdentityName(%q) = %q is longer than its input", s, r)
		}
		if utf8.ValidString(s) && !utf8.ValidString(r) {
			t.Fatalf("IdentityName(%q) = %q is not valid UTF-8", s, r)
		}
		if strings.Join(strings.Fields(r), " ") != r {
			t.Fatalf("IdentityName(%q) = %q has leading, trailing or repeated white space", s, r)
		}
		if strings.Trim(r, `"' ,;`) != r {
			t.Fatalf("IdentityName(%q) = %q has quotes or punctuation at its ends", s, r)
		}
		if i := strings.IndexByte(r, '<'); i >= 0 && strings.IndexByte(r[i:], '>') >= 0 {
			t.Fatalf("IdentityName(%q) = %q still has an angle-bracketed part", s, r)
		}
		prefixed := false
		for _, p := range []string{"Organization:", "Person:", "Tool:"} {
			if len(r) >= len(p) && strings.EqualFold(r[:len(p)], p) {
				prefixed = true
			}
		}
		if !prefixed && !emailPart.MatchString(r) {
			if again := IdentityName(r); again != r {
				t.Fatalf("IdentityName(%q) = %q, but IdentityName(%q) = %q", s, r, r, again)
			}
		}
	})
}

// FuzzGlob: the compiled glob (literal and prefix fast paths, a literal lead before the
// expression) decides exactly as the regular expression Glob builds.
func FuzzGlob(f *testing.F) {
	for _, c := range [][2]string{
		{"kesl", "KESL"}, {"kesl", "\u212aesl"}, {"pkg:npm/@kaspersky/*", "pkg:npm/@KASPERSKY/sdk"},
		{"pkg:maven/com.kaspersky.*/*", "pkg:maven/com.kaspersky.av/core"}, {"k?sl", "kesl"},
		{"*", ""}, {"a*b*", "axxbyy"}, {"kesl*", "kesl\nx"}, {"k?sl", "k\nsl"}, {"ſ", "S"}, {"straße", "STRASSE"}, {"\xff*", "\xffa"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if got, want := newGlob(pattern).match(s), Glob(pattern).MatchString(s); got != want {
			t.Fatalf("glob %q on %q: %v, the expression says %v", pattern, s, got, want)
		}
	})
}
