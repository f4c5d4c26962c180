package catalog

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/embargo-dev/embargo/internal/match"
)

func TestDefault(t *testing.T) {
	c := Default()
	if c != Default() {
		t.Fatal("Default() is not parsed once")
	}
	if !versionPattern.MatchString(c.Version) {
		t.Errorf("version %q", c.Version)
	}
	want := []string{"kaspersky", "huawei", "zte", "hikvision", "dahua", "hytera"}
	if diff := cmp.Diff(want, c.IDs()); diff != "" {
		t.Errorf("IDs() (-want +got):\n%s", diff)
	}
	for _, e := range c.Entries {
		if e.Vendor == "" || strings.TrimSpace(e.Scope) == "" || strings.TrimSpace(e.Coverage) == "" {
			t.Errorf("%s: vendor, scope or coverage is empty", e.ID)
		}
		if len(e.Basis) == 0 {
			t.Errorf("%s: basis is empty", e.ID)
		}
		for i, b := range e.Basis {
			if strings.Contains(b, "\n") {
				t.Errorf("%s: basis[%d] spans lines", e.ID, i)
			}
		}
		if strings.Contains(e.Scope, "\n") {
			t.Errorf("%s: scope spans lines", e.ID)
		}
		v, err := e.Compile()
		if err != nil {
			t.Errorf("%s: %v", e.ID, err)
			continue
		}
		if v.Catalog != e.ID || v.Name != e.Vendor {
			t.Errorf("%s: compiled as catalog %q vendor %q", e.ID, v.Catalog, v.Name)
		}
	}
}

func TestParseEmbedded(t *testing.T) {
	if _, err := Parse(embedded); err != nil {
		t.Fatal(err)
	}
}

func TestGet(t *testing.T) {
	c := Default()
	e, ok := c.Get("kaspersky")
	if !ok || e.ID != "kaspersky" || e.Vendor != "AO Kaspersky Lab" {
		t.Fatalf("Get(kaspersky) = %+v, %v", e, ok)
	}
	// Get returns a copy: changing it leaves the shared default alone.
	e.Basis[0] = "changed"
	e.Rules.Suppliers[0] = "changed"
	again, _ := c.Get("kaspersky")
	if again.Basis[0] == "changed" || again.Rules.Suppliers[0] == "changed" {
		t.Error("Get returned the shared entry, not a copy")
	}
	if _, ok := c.Get("nosuchvendor"); ok {
		t.Error("Get(nosuchvendor) found something")
	}
}

func TestKasperskyBasisBOD1701Dates(t *testing.T) {
	e, _ := Default().Get("kaspersky")
	bases := map[string][]string{
		"Binding Operational Directive 17-01": {"2017-09-13", "30 days (2017-10-13)", "60 days (2017-11-12)", "90 days (2017-12-12)", "federal executive branch"},
		"§1634":                               {"2017-12-12", "2018-10-01", "in whole or in part"},
		"FCC Covered List":                    {"2022-03-25", "AO Kaspersky Lab"},
		"final determination":                 {"2024-06-20", "2024-07-20", "2024-09-29"},
	}
	for key, wants := range bases {
		i := slices.IndexFunc(e.Basis, func(b string) bool { return strings.Contains(b, key) })
		if i < 0 {
			t.Errorf("no basis line mentions %q", key)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(e.Basis[i], w) {
				t.Errorf("basis line for %q lacks %q: %s", key, w, e.Basis[i])
			}
		}
	}
}

func TestSection889Basis(t *testing.T) {
	for _, id := range []string{"huawei", "zte", "hikvision", "dahua", "hytera"} {
		e, _ := Default().Get(id)
		all := strings.Join(e.Basis, "\n")
		for _, w := range []string{"§889", "2018-08-13", "§889(a)(1)(A), effective 2019-08-13", "§889(a)(1)(B), effective 2020-08-13", "FCC Covered List, first published 2021-03-12"} {
			if !strings.Contains(all, w) {
				t.Errorf("%s: basis lacks %q", id, w)
			}
		}
	}
}

// entryYAML is a minimal valid entry; tests break one part of it at a time.
func entryYAML(id, extra string) string {
	return fmt.Sprintf(`
  - id: %s
    vendor: Example Corp
    scope: everything
    basis: [a statute]
    coverage: supplier only
    rules:
      suppliers: ['example corp']%s
`, id, extra)
}

func TestParse(t *testing.T) {
	const head = "version: \"2026.11.0\"\nentries:"
	cases := map[string]struct {
		yaml    string
		wantErr []string // substrings of the error; nil means no error
	}{
		"valid": {
			yaml: head + entryYAML("example", ""),
		},
		"unknown top-level field": {
			yaml:    head + entryYAML("example", "") + "publisher: me\n",
			wantErr: []string{`unknown field "publisher"`},
		},
		"unknown entry field": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "scope:", "scopes:", 1),
			wantErr: []string{`unknown field "scopes"`},
		},
		"unknown rules field": {
			yaml:    head + entryYAML("example", "\n      supplier: ['x']"),
			wantErr: []string{`unknown field "supplier"`},
		},
		"unknown package rule field": {
			yaml:    head + entryYAML("example", "\n      packages: [{name: x, require: [Supplier]}]"),
			wantErr: []string{`unknown field "require"`},
		},
		"duplicate key": {
			yaml:    head + entryYAML("example", "\n      suppliers: ['other']"),
			wantErr: []string{"suppliers"},
		},
		"duplicate id": {
			yaml:    head + entryYAML("example", "") + entryYAML("example", ""),
			wantErr: []string{"entries[1] (example)", `duplicate id "example"`, "entries[0]"},
		},
		"empty basis": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "basis: [a statute]", "basis: []", 1),
			wantErr: []string{"entries[0] (example)", "basis is empty"},
		},
		"missing basis": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "    basis: [a statute]\n", "", 1),
			wantErr: []string{"basis is empty"},
		},
		"blank basis line": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "basis: [a statute]", "basis: [a statute, ' ']", 1),
			wantErr: []string{"basis[1] is empty"},
		},
		"empty coverage": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "coverage: supplier only", "coverage: ''", 1),
			wantErr: []string{"coverage is empty"},
		},
		"empty vendor": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "vendor: Example Corp", "vendor: ''", 1),
			wantErr: []string{"vendor is empty"},
		},
		"bad regex names the field": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "'example corp'", "'example (corp'", 1),
			wantErr: []string{"entries[0] (example)", "rules: suppliers[0]", "not a valid regular expression"},
		},
		"regex matching empty field": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "'example corp'", "'(?:example)?'", 1),
			wantErr: []string{"suppliers[0]", "empty field"},
		},
		"requires Path without paths": {
			yaml:    head + entryYAML("example", "\n      packages: [{type: deb, name: x, requires: [Path]}]"),
			wantErr: []string{"packages[0].requires Path"},
		},
		"bad corroboration": {
			yaml:    head + entryYAML("example", "\n      packages: [{type: deb, name: x, requires: [Maintainer]}]"),
			wantErr: []string{"packages[0].requires", "Maintainer"},
		},
		"relative path": {
			yaml:    head + entryYAML("example", "\n      paths: [opt/example/**]"),
			wantErr: []string{"paths[0]", "absolute"},
		},
		"bad purl": {
			yaml:    head + entryYAML("example", "\n      purls: ['npm/example']"),
			wantErr: []string{"purls[0]"},
		},
		"no rules": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "      suppliers: ['example corp']", "      {}", 1),
			wantErr: []string{"has no rules"},
		},
		"bad id": {
			yaml:    head + entryYAML("Example_Corp", ""),
			wantErr: []string{`id "Example_Corp"`},
		},
		"empty id": {
			yaml:    head + entryYAML("''", ""),
			wantErr: []string{"entries[0]: id"},
		},
		"bad version": {
			yaml:    strings.Replace(head+entryYAML("example", ""), "2026.11.0", "v1", 1),
			wantErr: []string{`version "v1"`},
		},
		"no entries": {
			yaml:    "version: \"2026.11.0\"\nentries: []\n",
			wantErr: []string{"entries is empty"},
		},
		"not yaml": {
			yaml:    "version: [\n",
			wantErr: []string{"catalog:"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if diff := cmp.Diff([]string{"example"}, c.IDs()); diff != "" {
					t.Errorf("IDs (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// baseImage is what every test image holds besides the case's packages and files: an ordinary
// Debian userland, which must never match anything.
func baseImage() match.Inventory {
	return match.Inventory{
		Platform: "linux/amd64",
		Packages: []match.Package{
			{Name: "bash", Version: "5.2.15-2+b7", Type: "deb", PURL: "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12",
				Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Matthias Klose <doko@debian.org>"}},
				CPEs:   []match.CPE{{Vendor: "gnu", Product: "bash"}}, Layer: "sha256:aaa"},
			{Name: "libc6", Version: "2.36-9+deb12u9", Type: "deb", PURL: "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&distro=debian-12",
				Fields: []match.Field{{Name: "dpkg Maintainer", Value: "GNU Libc Maintainers <debian-glibc@lists.debian.org>"}},
				CPEs:   []match.CPE{{Vendor: "gnu", Product: "glibc"}}, Layer: "sha256:aaa"},
			{Name: "openssl", Version: "3.0.15-1~deb12u1", Type: "deb", PURL: "pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12",
				Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>"}},
				CPEs:   []match.CPE{{Vendor: "openssl", Product: "openssl"}}, Layer: "sha256:aaa"},
		},
		Files: []match.File{
			{Path: "/usr/bin/bash", Layer: "sha256:aaa"},
			{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Layer: "sha256:aaa"},
			{Path: "/etc/opt/example/app.conf", Layer: "sha256:bbb"},
			{Path: "/opt/app/bin/app", Layer: "sha256:bbb"},
		},
	}
}

func defaultVendors(t *testing.T) []*match.Vendor {
	t.Helper()
	var vs []*match.Vendor
	for _, e := range Default().Entries {
		v, err := e.Compile()
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

// describe renders a finding as "catalog rule,rule,... subject" for compact comparisons.
func describe(f match.Finding) string {
	rules := make([]string, len(f.Evidence))
	for i, e := range f.Evidence {
		rules[i] = e.Rule
	}
	subject := f.Evidence[0].Value
	if f.Package != nil {
		subject = f.Package.Name
	}
	return f.Catalog + " " + strings.Join(rules, ",") + " " + subject
}

func TestMatchCatalog(t *testing.T) {
	field := func(name, value string) []match.Field { return []match.Field{{Name: name, Value: value}} }
	cases := map[string]struct {
		packages []match.Package
		files    []string
		want     []string // describe() of each finding; nil means none
	}{
		// Kaspersky.
		"kaspersky: kesl deb by AO Kaspersky Lab": {
			packages: []match.Package{{Name: "kesl", Version: "12.1.0-1226", Type: "deb", PURL: "pkg:deb/kesl@12.1.0-1226?arch=amd64",
				Fields: field("dpkg Maintainer", "AO Kaspersky Lab <support@kaspersky.com>")}},
			want: []string{"kaspersky supplier,package kesl"},
		},
		"kaspersky: klnagent64 rpm by Kaspersky Lab": {
			packages: []match.Package{{Name: "klnagent64", Version: "15.1.0-20748", Type: "rpm", PURL: "pkg:rpm/klnagent64@15.1.0-20748?arch=x86_64",
				Fields: field("rpm Vendor", "Kaspersky Lab")}},
			want: []string{"kaspersky supplier,package klnagent64"},
		},
		"kaspersky: kesl rpm without vendor field": {
			packages: []match.Package{{Name: "kesl", Version: "12.1.0-1226", Type: "rpm"}},
			want:     []string{"kaspersky package kesl"},
		},
		"kaspersky: npm @kaspersky scope": {
			packages: []match.Package{{Name: "@kaspersky/foo", Version: "1.2.3", Type: "npm", PURL: "pkg:npm/%40kaspersky/foo@1.2.3"}},
			want:     []string{"kaspersky purl @kaspersky/foo"},
		},
		"kaspersky: maven com.kaspersky group": {
			packages: []match.Package{{Name: "kaspresso", Version: "1.5.3", Type: "maven", PURL: "pkg:maven/com.kaspersky.android-components/kaspresso@1.5.3"}},
			want:     []string{"kaspersky purl kaspresso"},
		},
		"kaspersky: go module from KasperskyLab": {
			packages: []match.Package{{Name: "github.com/KasperskyLab/klogga", Version: "v1.0.0", Type: "golang", PURL: "pkg:golang/github.com/KasperskyLab/klogga@v1.0.0"}},
			want:     []string{"kaspersky purl github.com/KasperskyLab/klogga"},
		},
		"kaspersky: tarball install under /opt/kaspersky": {
			files: []string{"/opt/kaspersky/kesl/bin/kesl", "/opt/kaspersky/kesl/lib/libkesl.so"},
			want:  []string{"kaspersky path /opt/kaspersky/kesl/bin/kesl (and 1 more files)"},
		},
		"kaspersky: kics deb by Kaspersky": {
			packages: []match.Package{{Name: "kics", Version: "3.2.0", Type: "deb",
				Fields: field("dpkg Maintainer", "AO Kaspersky Lab <kics@kaspersky.com>")}},
			want: []string{"kaspersky supplier,package kics"},
		},
		"kaspersky: kics deb corroborated by a Kaspersky path": {
			packages: []match.Package{{Name: "kics", Version: "3.2.0", Type: "deb"}},
			files:    []string{"/opt/kaspersky/kics/bin/kics"},
			want:     []string{"kaspersky package kics", "kaspersky path /opt/kaspersky/kics/bin/kics"},
		},
		"kaspersky: declared CPE convicts, generated corroborates": {
			packages: []match.Package{{Name: "kav4fs", Version: "8.0", Type: "rpm",
				CPEs: []match.CPE{{Vendor: "kaspersky", Product: "anti-virus_for_linux_file_server", Declared: true}}}},
			want: []string{"kaspersky package,cpe kav4fs"},
		},
		"kaspersky: PE CompanyName in a Windows image": {
			packages: []match.Package{{Name: "avp.exe", Type: "binary", Fields: field("PE CompanyName", "AO Kaspersky Lab")}},
			want:     []string{"kaspersky supplier avp.exe"},
		},
		"kaspersky look-alike: Checkmarx kics": {
			packages: []match.Package{
				{Name: "kics", Version: "2.1.3", Type: "deb", Fields: field("dpkg Maintainer", "Checkmarx <kics@checkmarx.com>")},
				{Name: "github.com/Checkmarx/kics/v2", Version: "v2.1.3", Type: "golang", PURL: "pkg:golang/github.com/Checkmarx/kics/v2@v2.1.3",
					CPEs: []match.CPE{{Vendor: "checkmarx", Product: "kics"}}},
			},
			files: []string{"/app/bin/kics", "/app/bin/assets/queries/common/passwords_and_secrets/metadata.json"},
		},
		"kaspersky look-alike: Checkmarx kics rpm with no vendor": {
			packages: []match.Package{{Name: "kics", Version: "2.1.3", Type: "rpm"}},
		},
		"kaspersky look-alike: package named after Kaspersky by another author": {
			packages: []match.Package{{Name: "kaspersky-compare", Version: "0.3.1", Type: "npm", PURL: "pkg:npm/kaspersky-compare@0.3.1",
				Fields: field("npm author", "Jane Doe <jane@example.com> (https://example.com)"),
				CPEs:   []match.CPE{{Vendor: "kaspersky-compare", Product: "kaspersky-compare"}, {Vendor: "jane_doe", Product: "kaspersky-compare"}}}},
		},
		"kaspersky look-alike: maintainer named Kasper": {
			packages: []match.Package{{Name: "kasper-tools", Version: "1.0-1", Type: "deb",
				Fields: field("dpkg Maintainer", "Kasper Hansen <kasper@example.org>")}},
		},
		"kaspersky look-alike: only a generated CPE": {
			packages: []match.Package{{Name: "kaspersky", Version: "0.1.0", Type: "pypi", PURL: "pkg:pypi/kaspersky@0.1.0",
				CPEs: []match.CPE{{Vendor: "kaspersky", Product: "kaspersky"}, {Vendor: "python-kaspersky", Product: "kaspersky"}}}},
		},
		"kaspersky look-alike: npm scope that only starts with kaspersky": {
			packages: []match.Package{{Name: "@kaspersky-fans/widget", Version: "1.0.0", Type: "npm", PURL: "pkg:npm/%40kaspersky-fans/widget@1.0.0"}},
		},
		"kaspersky look-alike: maven group that only starts with com.kaspersky": {
			packages: []match.Package{{Name: "x", Version: "1", Type: "maven", PURL: "pkg:maven/com.kasperskyfans/x@1"}},
		},
		"kaspersky look-alike: path that only mentions kaspersky": {
			files: []string{"/usr/share/doc/kaspersky-compare/README.md", "/opt/kaspersky-compare/bin/kc"},
		},

		// Huawei.
		"huawei: rpm by Huawei Technologies": {
			packages: []match.Package{{Name: "UltraPath", Version: "31.3.0", Type: "rpm",
				Fields: field("rpm Vendor", "Huawei Technologies Co., Ltd.")}},
			want: []string{"huawei supplier UltraPath"},
		},
		"huawei: eSDK CSI plugin Go module": {
			packages: []match.Package{{Name: "github.com/Huawei/eSDK_K8S_Plugin/v4", Version: "v4.6.0", Type: "golang",
				PURL: "pkg:golang/github.com/Huawei/eSDK_K8S_Plugin/v4@v4.6.0"}},
			want: []string{"huawei purl github.com/Huawei/eSDK_K8S_Plugin/v4"},
		},
		"huawei: maven com.huawei.* group": {
			packages: []match.Package{{Name: "location", Version: "6.12.0.300", Type: "maven", PURL: "pkg:maven/com.huawei.hms/location@6.12.0.300",
				Fields: field("java Implementation-Vendor", "Huawei Technologies Co., Ltd")}},
			want: []string{"huawei supplier,purl location"},
		},
		"huawei: npm HMS Core plugin": {
			packages: []match.Package{{Name: "@hmscore/react-native-hms-location", Version: "6.12.0-300", Type: "npm",
				PURL: "pkg:npm/%40hmscore/react-native-hms-location@6.12.0-300"}},
			want: []string{"huawei purl @hmscore/react-native-hms-location"},
		},
		"huawei look-alike: openEuler rpm packaged at huawei.com": {
			packages: []match.Package{{Name: "openEuler-release", Version: "24.03", Type: "rpm", PURL: "pkg:rpm/openeuler/openEuler-release@24.03",
				Fields: []match.Field{{Name: "rpm Vendor", Value: "openEuler"}, {Name: "rpm Packager", Value: "Foo <foo@huawei.com>"}}}},
		},
		"huawei look-alike: openEuler rpm with URL vendor and Huawei distribution": {
			packages: []match.Package{{Name: "bash", Version: "5.2.15", Type: "rpm",
				Fields: []match.Field{{Name: "rpm Vendor", Value: "http://openeuler.org"}, {Name: "rpm Distribution", Value: "Huawei openEuler"}}}},
		},
		"huawei look-alike: MindSpore": {
			packages: []match.Package{{Name: "mindspore", Version: "2.3.0", Type: "pypi", PURL: "pkg:pypi/mindspore@2.3.0",
				Fields: []match.Field{{Name: "python Author", Value: "The MindSpore Authors"}, {Name: "python Author-email", Value: "contact@mindspore.cn"}}}},
		},
		"huawei look-alike: openGauss": {
			packages: []match.Package{{Name: "opengauss-jdbc", Version: "6.0.0", Type: "maven", PURL: "pkg:maven/org.opengauss/opengauss-jdbc@6.0.0",
				Fields: field("java Implementation-Vendor", "openGauss")}},
		},
		"huawei look-alike: python author with a huawei.com address": {
			packages: []match.Package{{Name: "some-tool", Version: "1.0", Type: "pypi", PURL: "pkg:pypi/some-tool@1.0",
				Fields: []match.Field{{Name: "python Author", Value: "Wei Zhang"}, {Name: "python Author-email", Value: "zhangwei@huawei.com"}}}},
		},
		"huawei policy: Huawei Cloud SDKs are not in the built-in rules": {
			packages: []match.Package{
				{Name: "huaweicloudsdkcore", Version: "3.1.100", Type: "pypi", PURL: "pkg:pypi/huaweicloudsdkcore@3.1.100",
					Fields: []match.Field{{Name: "python Author", Value: "HuaweiCloud SDK"}, {Name: "python Author-email", Value: "hwcloudsdk@huawei.com"}}},
				{Name: "huaweicloud-sdk-core", Version: "3.1.100", Type: "maven", PURL: "pkg:maven/com.huaweicloud.sdk/huaweicloud-sdk-core@3.1.100"},
				{Name: "@huaweicloud/huaweicloud-sdk-core", Version: "3.1.100", Type: "npm", PURL: "pkg:npm/%40huaweicloud/huaweicloud-sdk-core@3.1.100"},
				{Name: "github.com/huaweicloud/huaweicloud-sdk-go-v3", Version: "v0.1.100", Type: "golang", PURL: "pkg:golang/github.com/huaweicloud/huaweicloud-sdk-go-v3@v0.1.100"},
			},
		},

		// ZTE.
		"zte: Knitter Go module": {
			packages: []match.Package{{Name: "github.com/ZTE/Knitter", Version: "v0.0.0-20180824082456-2a4f8b8f8f0d", Type: "golang",
				PURL: "pkg:golang/github.com/ZTE/Knitter@v0.0.0-20180824082456-2a4f8b8f8f0d"}},
			want: []string{"zte purl github.com/ZTE/Knitter"},
		},
		"zte: deb by ZTE Corporation": {
			packages: []match.Package{{Name: "zxagent", Version: "2.0", Type: "deb", Fields: field("dpkg Maintainer", "ZTE Corporation <support@zte.com.cn>")}},
			want:     []string{"zte supplier zxagent"},
		},
		"zte look-alike: maintainer with a zte.com.cn address": {
			packages: []match.Package{{Name: "python3-oslo.config", Version: "9.0.0", Type: "deb", Fields: field("dpkg Maintainer", "Li Ming <li.ming@zte.com.cn>")}},
		},

		// Hikvision.
		"hikvision: bundled HCNetSDK": {
			files: []string{"/opt/app/lib/hikvision/libhcnetsdk.so", "/opt/app/lib/hikvision/libHCCore.so", "/opt/app/lib/hikvision/libPlayCtrl.so"},
			want: []string{
				"hikvision path /opt/app/lib/hikvision/libHCCore.so",
				"hikvision path /opt/app/lib/hikvision/libhcnetsdk.so",
			},
		},
		"hikvision: maven com.hikvision group": {
			packages: []match.Package{{Name: "artemis-http-client", Version: "1.1.3", Type: "maven", PURL: "pkg:maven/com.hikvision.ga/artemis-http-client@1.1.3"}},
			want:     []string{"hikvision purl artemis-http-client"},
		},
		"hikvision: Hikrobot MVS package": {
			packages: []match.Package{{Name: "mvs", Version: "2.1.2", Type: "deb", Fields: field("dpkg Maintainer", "Hangzhou Hikrobot Technology Co., Ltd.")}},
			want:     []string{"hikvision supplier mvs"},
		},
		"hikvision look-alike: ONVIF client": {
			packages: []match.Package{{Name: "onvif-zeep", Version: "0.2.12", Type: "pypi", PURL: "pkg:pypi/onvif-zeep@0.2.12",
				Fields: field("python Author", "Cherish Chen")}},
			files: []string{"/usr/local/lib/python3.12/site-packages/onvif/wsdl/devicemgmt.wsdl"},
		},

		// Dahua.
		"dahua: bundled NetSDK": {
			files: []string{"/usr/local/lib/dahua/libdhnetsdk.so"},
			want:  []string{"dahua path /usr/local/lib/dahua/libdhnetsdk.so"},
		},
		"dahua: java manifest vendor": {
			packages: []match.Package{{Name: "icc-sdk", Version: "1.0.9", Type: "maven", PURL: "pkg:maven/com.dahuatech.icc/java-sdk-core@1.0.9",
				Fields: field("java Implementation-Vendor", "Zhejiang Dahua Technology Co., Ltd.")}},
			want: []string{"dahua supplier,purl icc-sdk"},
		},
		"dahua look-alike: a person named Dahua": {
			packages: []match.Package{
				{Name: "dahua-utils", Version: "0.1.0", Type: "npm", PURL: "pkg:npm/dahua-utils@0.1.0", Fields: field("npm author", "dahua <dahua@example.com>")},
				{Name: "cool-lib", Version: "1.0.0", Type: "npm", PURL: "pkg:npm/cool-lib@1.0.0", Fields: field("npm author", "Dahua Li")},
			},
		},

		// Hytera.
		"hytera: declared CPE and manifest vendor": {
			packages: []match.Package{{Name: "dispatcher", Version: "3.0", Type: "java-archive",
				Fields: field("java Implementation-Vendor", "Hytera Communications Corporation Limited"),
				CPEs:   []match.CPE{{Vendor: "hytera", Product: "dispatcher", Declared: true}}}},
			want: []string{"hytera supplier,cpe dispatcher"},
		},
	}
	vendors := defaultVendors(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			inv := baseImage()
			inv.Packages = append(inv.Packages, tc.packages...)
			for _, p := range tc.files {
				inv.Files = append(inv.Files, match.File{Path: p, Layer: "sha256:ccc"})
			}
			var got []string
			for _, f := range match.Match(inv, vendors) {
				got = append(got, describe(f))
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSuppliers runs one vendor-identity value per case through every catalog entry and checks
// which entry, if any, claims it.
func TestSuppliers(t *testing.T) {
	cases := map[string]string{ // field value -> catalog id, "" for none
		"AO Kaspersky Lab <support@kaspersky.com>": "kaspersky",
		"Kaspersky Lab":                                 "kaspersky",
		"KASPERSKY LAB":                                 "kaspersky",
		"KasperskyLab":                                  "kaspersky",
		"Kaspersky":                                     "kaspersky",
		"ZAO Kaspersky Lab":                             "kaspersky",
		"Kaspersky Lab ZAO":                             "kaspersky",
		"Kaspersky Lab JSC":                             "kaspersky",
		"Kaspersky Lab Ltd":                             "kaspersky",
		"Kaspersky Lab, Inc.":                           "kaspersky",
		"Kaspersky Lab GmbH":                            "kaspersky",
		"Kaspersky Labs Limited":                        "kaspersky",
		"Kaspersky Lab Switzerland GmbH":                "kaspersky",
		"Kaspersky Labs UK Limited":                     "kaspersky",
		"Kaspersky Lab Italia S.r.l.":                   "kaspersky",
		"Kaspersky Lab Japan K.K.":                      "kaspersky",
		"Kaspersky Lab North America":                   "kaspersky",
		"Kaspersky Government Security Solutions, Inc.": "kaspersky",
		"OOO Kaspersky Group":                           "kaspersky",
		"Organization: AO Kaspersky Lab":                "kaspersky",
		`AO "Kaspersky Lab"`:                            "kaspersky",
		"АО «Лаборатория Касперского»":       "kaspersky",
		"卡巴斯基实验室":                            "kaspersky",
		"Kasper Hansen <kasper@example.org>": "",
		"Kaspersky Fan Club":                 "",
		"Friends of Kaspersky":               "",
		"Eugene Kaspersky":                   "",
		"Anna Kaspersky <anna@example.com>":  "",
		"support@kaspersky.com":              "",
		"<support@kaspersky.com>":            "",
		"Jane Doe <jane@kaspersky.com>":      "",
		"kaspersky-compare contributors":     "",

		"Huawei Technologies Co., Ltd.":                  "huawei",
		"HUAWEI TECHNOLOGIES CO.,LTD.":                   "huawei",
		"Huawei Technologies CO., Ltd":                   "huawei",
		"Huawei Technologies Co Ltd":                     "huawei",
		"Huawei Tech. Co., Ltd.":                         "huawei",
		"Huawei":                                         "huawei",
		"Huawei Device Co., Ltd.":                        "huawei",
		"Huawei Technologies USA Inc.":                   "huawei",
		"Huawei Technologies Deutschland GmbH":           "huawei",
		"Huawei Technologies (UK) Co., Ltd":              "huawei",
		"HiSilicon Technologies Co., Ltd.":               "huawei",
		"HiSilicon (Shanghai) Technologies Co., Limited": "huawei",
		"华为技术有限公司":                                       "huawei",
		"openEuler":                                      "",
		"http://openeuler.org":                           "",
		"Huawei openEuler":                               "",
		"The MindSpore Authors":                          "",
		"openGauss":                                      "",
		"Huawei Cloud Community Contributor":             "",
		"HuaweiCloud SDK":                                "",
		"Huawei Cloud Computing Technologies Co., Ltd.":  "",
		"Foo <foo@huawei.com>":                           "",
		"foo@huawei.com":                                 "",
		"Huawei Li <li@example.com>":                     "",

		"ZTE Corporation": "zte",
		"ZTE Corp.":       "zte",
		"ZTE":             "zte",
		"ZTE USA Inc.":    "zte",
		"ZTE (USA) Inc.":  "zte",
		"Zhongxing Telecommunication Equipment Corporation": "zte",
		"Sanechips Technology Co., Ltd.":                    "zte",
		"中兴通讯股份有限公司":                                        "zte",
		"Zteam Ltd":                                         "",
		"Aztec Inc.":                                        "",
		"ZTE fans":                                          "",

		"Hangzhou Hikvision Digital Technology Co., Ltd.": "hikvision",
		"HIKVISION":                              "hikvision",
		"Hikvision USA Inc.":                     "hikvision",
		"Hikvision Europe B.V.":                  "hikvision",
		"Hangzhou Hikrobot Technology Co., Ltd.": "hikvision",
		"EZVIZ Inc.":                             "hikvision",
		"Hangzhou Microimage Software Co., Ltd.": "hikvision",
		"杭州海康威视数字技术股份有限公司":                       "hikvision",
		"Hikvision fans":                         "",
		"MicroImages, Inc.":                      "",

		"Zhejiang Dahua Technology Co., Ltd.": "dahua",
		"Dahua Technology":                    "dahua",
		"Dahua Technology USA Inc.":           "dahua",
		"Dahua Security":                      "dahua",
		"浙江大华技术股份有限公司":                        "dahua",
		"Dahua":                               "",
		"Dahua Li <dahua@example.com>":        "",
		"Li Dahua":                            "",

		"Hytera Communications Corporation Limited": "hytera",
		"Hytera Communications Co., Ltd.":           "hytera",
		"Hytera":                                    "hytera",
		"Hytera America, Inc.":                      "hytera",
		"Hytera Mobilfunk GmbH":                     "hytera",
		"海能达通信股份有限公司":                               "hytera",
		"Hyterax":                                   "",

		"Debian GNU/Linux":               "",
		"Red Hat, Inc.":                  "",
		"Checkmarx <kics@checkmarx.com>": "",
	}
	vendors := defaultVendors(t)
	for value, want := range cases {
		t.Run(value, func(t *testing.T) {
			inv := match.Inventory{Packages: []match.Package{{Name: "pkg", Type: "deb",
				Fields: []match.Field{{Name: "dpkg Maintainer", Value: value}}}}}
			var got []string
			for _, f := range match.Match(inv, vendors) {
				got = append(got, f.Catalog)
			}
			var wantIDs []string
			if want != "" {
				wantIDs = []string{want}
			}
			if diff := cmp.Diff(wantIDs, got); diff != "" {
				t.Errorf("IdentityName %q: catalogs (-want +got):\n%s", match.IdentityName(value), diff)
			}
		})
	}
}
