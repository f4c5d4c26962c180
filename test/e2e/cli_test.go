package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

// A clean SPDX document: a Debian base with nothing banned.
const cleanSPDX = `{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "registry.example.com/shop/frontend",
  "documentNamespace": "https://example.com/spdx/frontend-1",
  "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: example-1.0"]},
  "packages": [
    {
      "name": "bash", "SPDXID": "SPDXRef-Package-deb-bash", "versionInfo": "5.2.15-2+b2",
      "supplier": "Person: Matthias Klose (doko@debian.org)", "downloadLocation": "NOASSERTION",
      "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
        "referenceLocator": "pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64"}]
    }
  ]
}
`

// policyFile is a Deny (or other action) VendorPolicy over the kaspersky catalog entry with
// optional extra spec lines.
func policyFile(action, extra string) string {
	return fmt.Sprintf(`apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: ci-%s
spec:
  vendors:
  - catalog: kaspersky
  action: %s
%s`, strings.ToLower(action), action, extra)
}

func exception(images string, expires time.Time) string {
	return fmt.Sprintf(`  exceptions:
  - images: [%q]
    reason: "Waiver W-2017-042: replacement scheduled"
    expires: %q
`, images, expires.UTC().Format(time.RFC3339))
}

// jsonReport is the documented `-o json` contract (internal/report), read as a script would.
type jsonReport struct {
	EmbargoVersion string `json:"embargoVersion"`
	CatalogVersion string `json:"catalogVersion"`
	Policies       []struct {
		Name    string   `json:"name"`
		Action  string   `json:"action"`
		Vendors []string `json:"vendors"`
	} `json:"policies"`
	Results []struct {
		Target       string   `json:"target"`
		Digest       string   `json:"digest"`
		Platforms    []string `json:"platforms"`
		PackageCount int      `json:"packageCount"`
		Error        string   `json:"error"`
		Findings     []struct {
			Policy   string `json:"policy"`
			Action   string `json:"action"`
			Excepted bool   `json:"excepted"`
			Vendor   string `json:"vendor"`
			Catalog  string `json:"catalog"`
			Package  *struct {
				Name, Version, Type, PURL string
			} `json:"package"`
			Rule     string `json:"rule"`
			Evidence []struct {
				Rule, Field, Value string
			} `json:"evidence"`
			Layer    string   `json:"layer"`
			Platform string   `json:"platform"`
			Basis    []string `json:"basis"`
		} `json:"findings"`
	} `json:"results"`
	Summary struct {
		Deny, Warn, Audit, Excepted, Errors int
	} `json:"summary"`
}

func TestCLI(t *testing.T) {
	t.Parallel()
	img := cluster.Images
	testdata := filepath.Join(root, "internal", "sbomfile", "testdata")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := l.Addr().String() + "/shop/frontend:1.4.2"
	l.Close()
	now := time.Now()

	tests := map[string]struct {
		args []string
		// files are written to a temporary directory; "{dir}" in args names it.
		files      map[string]string
		wantCode   int
		wantStdout []string
		// wantStderr lines are each searched for; an exit 2 must say why in one line.
		wantStderr []string
		check      func(t *testing.T, stdout string)
	}{
		"kaspersky endpoint deb": {
			args:       []string{"scan", "--insecure", img.Kaspersky},
			wantCode:   1,
			wantStdout: []string{img.Kaspersky, "AO Kaspersky Lab", "kesl 12.1.0-1187", `dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`, "Deny"},
			check: func(t *testing.T, stdout string) {
				row := rowWith(stdout, "kesl 12.1.0-1187")
				if row == "" || !strings.Contains(row, "dpkg Maintainer") || !strings.Contains(row, "AO Kaspersky Lab") {
					t.Errorf("no readable table row with package, vendor and evidence:\n%s", stdout)
				}
			},
		},
		"clean": {
			args:       []string{"scan", "--insecure", img.Clean},
			wantStdout: []string{"No banned vendor software found."},
		},
		"checkmarx kics look-alike": {
			args:       []string{"scan", "--insecure", img.KICS},
			wantStdout: []string{"No banned vendor software found."},
		},
		"purged in a later layer": {
			args:       []string{"scan", "--insecure", img.Removed},
			wantStdout: []string{"No banned vendor software found."},
		},
		"scan engine tarball install": {
			args:       []string{"scan", "--insecure", img.ScanEngine},
			wantCode:   1,
			wantStdout: []string{"/opt/kaspersky/ScanEngine/", "AO Kaspersky Lab"},
		},
		"rpm database": {
			args:       []string{"scan", "--insecure", img.RedHat},
			wantCode:   1,
			wantStdout: []string{"kesl", `rpm Vendor = "AO Kaspersky Lab"`},
		},
		"index: the finding names its platform": {
			args:       []string{"scan", "--insecure", img.MultiArch},
			wantCode:   1,
			wantStdout: []string{"linux/arm64"},
			check: func(t *testing.T, stdout string) {
				if row := rowWith(stdout, "kesl"); !strings.Contains(row, "linux/arm64") || strings.Contains(row, "linux/amd64") {
					t.Errorf("the kesl row should name linux/arm64 only: %q", row)
				}
			},
		},
		"index: one platform asked for": {
			args:       []string{"scan", "--insecure", "--platform", "linux/amd64", img.MultiArch},
			wantStdout: []string{"No banned vendor software found."},
		},
		"unreachable registry": {
			args:       []string{"scan", "--insecure", unreachable},
			wantCode:   2,
			wantStderr: []string{"embargo: " + unreachable},
		},
		"bad policy file": {
			args:       []string{"scan", "--insecure", "--policy", "{dir}/policy.yaml", img.Clean},
			files:      map[string]string{"policy.yaml": policyFile("Explode", "")},
			wantCode:   2,
			wantStderr: []string{"embargo: ", "Explode"},
		},
		"warn-only policy": {
			args:       []string{"scan", "--insecure", "--policy", "{dir}/policy.yaml", img.Kaspersky},
			files:      map[string]string{"policy.yaml": policyFile("Warn", "")},
			wantStdout: []string{"kesl 12.1.0-1187", "Warn"},
		},
		"exception expires in the future": {
			args:       []string{"scan", "--insecure", "--policy", "{dir}/policy.yaml", img.Kaspersky},
			files:      map[string]string{"policy.yaml": policyFile("Deny", exception(cluster.Registry.Host+"/security/*", now.AddDate(1, 0, 0)))},
			wantStdout: []string{"Excepted:", "Waiver W-2017-042"},
		},
		"exception expired": {
			args:       []string{"scan", "--insecure", "--policy", "{dir}/policy.yaml", img.Kaspersky},
			files:      map[string]string{"policy.yaml": policyFile("Deny", exception(cluster.Registry.Host+"/security/*", now.AddDate(0, 0, -1)))},
			wantCode:   1,
			wantStdout: []string{"kesl 12.1.0-1187", "Deny"},
		},
		"-o json": {
			args:     []string{"scan", "--insecure", "-o", "json", img.Kaspersky},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var r jsonReport
				if err := json.Unmarshal([]byte(stdout), &r); err != nil {
					t.Fatalf("-o json does not parse: %v\n%s", err, stdout)
				}
				if r.EmbargoVersion == "" || r.CatalogVersion == "" || len(r.Policies) != 1 || r.Policies[0].Action != "Deny" {
					t.Errorf("header: %+v", r)
				}
				if len(r.Results) != 1 || r.Results[0].Target != img.Kaspersky || !strings.HasPrefix(r.Results[0].Digest, "sha256:") || r.Results[0].PackageCount == 0 {
					t.Fatalf("results: %+v", r.Results)
				}
				var kesl bool
				for _, f := range r.Results[0].Findings {
					if f.Package != nil && f.Package.Name == "kesl" {
						kesl = f.Vendor == "AO Kaspersky Lab" && f.Catalog == "kaspersky" && f.Action == "Deny" && f.Rule != "" &&
							len(f.Evidence) > 0 && f.Evidence[0].Field == "dpkg Maintainer" && f.Package.Version == "12.1.0-1187" &&
							strings.HasPrefix(f.Package.PURL, "pkg:deb/") && f.Platform == "linux/amd64" && len(f.Basis) > 0 &&
							strings.HasPrefix(f.Layer, "sha256:")
						if !kesl {
							t.Errorf("kesl finding: %+v", f)
						}
					}
				}
				if !kesl {
					t.Errorf("no kesl finding: %s", stdout)
				}
				if r.Summary.Deny == 0 || r.Summary.Errors != 0 {
					t.Errorf("summary: %+v", r.Summary)
				}
			},
		},
		"-o sarif": {
			args:     []string{"scan", "--insecure", "-o", "sarif", img.Kaspersky},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var s struct {
					Version string `json:"version"`
					Runs    []struct {
						Tool struct {
							Driver struct{ Name string } `json:"driver"`
						} `json:"tool"`
						Results []struct {
							RuleID  string                `json:"ruleId"`
							Level   string                `json:"level"`
							Message struct{ Text string } `json:"message"`
						} `json:"results"`
					} `json:"runs"`
				}
				if err := json.Unmarshal([]byte(stdout), &s); err != nil {
					t.Fatalf("-o sarif does not parse: %v\n%s", err, stdout)
				}
				if s.Version != "2.1.0" || len(s.Runs) != 1 || len(s.Runs[0].Results) == 0 {
					t.Fatalf("SARIF: version %q, %d runs: %s", s.Version, len(s.Runs), stdout)
				}
				if !strings.Contains(s.Runs[0].Results[0].Message.Text, "Kaspersky") || s.Runs[0].Results[0].Level != "error" {
					t.Errorf("first SARIF result: %+v", s.Runs[0].Results[0])
				}
			},
		},
		"-o junit": {
			args:     []string{"scan", "--insecure", "-o", "junit", img.Kaspersky, img.Clean},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var j struct {
					XMLName  xml.Name
					Failures int `xml:"failures,attr"`
					Suites   []struct {
						Name     string `xml:"name,attr"`
						Failures int    `xml:"failures,attr"`
						Cases    []struct {
							Name    string    `xml:"name,attr"`
							Failure *struct{} `xml:"failure"`
						} `xml:"testcase"`
					} `xml:"testsuite"`
				}
				if err := xml.Unmarshal([]byte(stdout), &j); err != nil {
					t.Fatalf("-o junit does not parse: %v\n%s", err, stdout)
				}
				failed := 0
				for _, s := range j.Suites {
					for _, c := range s.Cases {
						if c.Failure != nil {
							failed++
						}
					}
				}
				if j.XMLName.Local != "testsuites" || failed == 0 || len(j.Suites) != 2 {
					t.Errorf("JUnit: root %s, %d suites, %d failed cases:\n%s", j.XMLName.Local, len(j.Suites), failed, stdout)
				}
			},
		},
		"sbom: SPDX": {
			args:       []string{"scan", "--sbom", filepath.Join(testdata, "spdx.json")},
			wantCode:   1,
			wantStdout: []string{"kesl 12.1.0.1543", "SPDX supplier"},
		},
		"sbom: CycloneDX": {
			args:       []string{"scan", "--sbom", filepath.Join(testdata, "cyclonedx.json")},
			wantCode:   1,
			wantStdout: []string{"@kaspersky/ksc-client", "CycloneDX"},
		},
		"sbom: syft JSON": {
			args:       []string{"scan", "--sbom", filepath.Join(testdata, "syft.json")},
			wantCode:   1,
			wantStdout: []string{"npm author"},
		},
		"sbom: clean SPDX": {
			args:       []string{"scan", "--sbom", "{dir}/clean.spdx.json"},
			files:      map[string]string{"clean.spdx.json": cleanSPDX},
			wantStdout: []string{"No banned vendor software found."},
		},
		"sbom: not an SBOM": {
			args:       []string{"scan", "--sbom", "{dir}/notes.json"},
			files:      map[string]string{"notes.json": `{"hello": "world"}`},
			wantCode:   2,
			wantStderr: []string{"embargo: "},
		},
		"catalog list": {
			args: []string{"catalog", "list"},
			check: func(t *testing.T, stdout string) {
				var ids []string
				for _, l := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
					ids = append(ids, strings.Fields(l)[0])
				}
				if got, want := strings.Join(ids, ","), "kaspersky,huawei,zte,hikvision,dahua,hytera"; got != want {
					t.Errorf("catalog ids %s, want %s", got, want)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for f, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "{dir}", dir)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r := devcluster.Run(ctx, root, append(os.Environ(), "HOME="+dir), "", filepath.Join(binDir, "embargo"), args...)
			if r.ExitCode != tc.wantCode {
				t.Fatalf("embargo %s: exit %d, want %d\n%s", strings.Join(args, " "), r.ExitCode, tc.wantCode, r)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.Stdout)
				}
			}
			if tc.wantCode == 2 {
				lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
				if len(lines) != 1 || !strings.HasPrefix(lines[0], "embargo: ") {
					t.Errorf("an error must be one line `embargo: <reason>` on stderr, got:\n%s", r.Stderr)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			if tc.check != nil {
				tc.check(t, r.Stdout)
			}
		})
	}
}

// rowWith returns the first line of out containing s.
func rowWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
