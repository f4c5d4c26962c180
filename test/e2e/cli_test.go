package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
	"github.com/embargo-dev/embargo/internal/test/testimage"
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
		Warnings     []string `json:"warnings"`
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
				Rule, Field, Value, Declared string
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

// sarifReport is the part of `-o sarif` the attached-SBOM checks read.
type sarifReport struct {
	Runs []struct {
		Invocations []struct {
			ExecutionSuccessful        bool `json:"executionSuccessful"`
			ToolExecutionNotifications []struct {
				Level   string                `json:"level"`
				Message struct{ Text string } `json:"message"`
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		Results []struct {
			Level      string                `json:"level"`
			Message    struct{ Text string } `json:"message"`
			Properties struct {
				Evidence []struct{ Declared string } `json:"evidence"`
			} `json:"properties"`
		} `json:"results"`
	} `json:"runs"`
}

// attachSBOMs pushes base, made unique by id, to r as repo:1 with each document attached as an
// OCI referrer of artifact type application/spdx+json. It returns the tag reference and the
// documents' digests as messages shorten them.
func attachSBOMs(t *testing.T, r *testimage.Registry, repo, id string, base func() (v1.Image, error), docs ...[]byte) (string, []string) {
	t.Helper()
	img, err := base()
	if err != nil {
		t.Fatal(err)
	}
	l, err := testimage.Layer(testimage.File{Path: "/etc/embargo-test", Content: []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(repo+":1", img); err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for i, doc := range docs {
		ref, err := testimage.Referrer(*subject, "application/spdx+json", "application/spdx+json", doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Push(fmt.Sprintf("%s:sbom-%d", repo, i), ref); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(doc)
		digests = append(digests, "sha256:"+hex.EncodeToString(sum[:])[:12])
	}
	return r.Ref(repo + ":1"), digests
}

// TestCLIAttachedSBOMs: `embargo scan` of an image whose files are clean but whose attached SPDX
// SBOM (an OCI referrer, on a registry with the referrers API) lists a Kaspersky SDK fails the
// gate, and every output names the declaring document; --attached-sboms=false passes it. A
// Kaspersky image carrying a malformed and an oversized SBOM is still judged by its files, with
// a warning per unusable document on stderr, in the JSON result and as SARIF notifications.
func TestCLIAttachedSBOMs(t *testing.T) {
	t.Parallel()
	r, err := testimage.NewRegistry(testimage.WithReferrers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	id := fmt.Sprint(time.Now().UnixNano())
	sdk := []byte(`{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: buildkit-v0.17.0"]},
 "packages": [{"name": "kaspersky-endpoint-sdk", "versionInfo": "3.1", "supplier": "Organization: AO Kaspersky Lab"}]}`)
	declared, docs := attachSBOMs(t, r, "shop/declared", id, testimage.Clean, sdk)
	declaredBy := "attached SPDX SBOM " + docs[0] + " (oci-referrer), created by Tool: buildkit-v0.17.0, unsigned"
	malformed := []byte(`{"spdxVersion": "SPDX-2.3", "packages": [`)
	huge := append([]byte(`{"spdxVersion": "SPDX-2.3", "comment": "`), append(bytes.Repeat([]byte("x"), 40<<20+1), `"}`...)...)
	unusable, bad := attachSBOMs(t, r, "security/unusable", id, testimage.KasperskyEndpoint, malformed, huge)

	tests := map[string]struct {
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
		check      func(t *testing.T, stdout string)
	}{
		"table": {
			args:       []string{"scan", "--insecure", declared},
			wantCode:   1,
			wantStdout: []string{"kaspersky-endpoint-sdk 3.1", "declared by " + declaredBy},
		},
		"-o json": {
			args:     []string{"scan", "--insecure", "-o", "json", declared},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var rep jsonReport
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatalf("-o json does not parse: %v\n%s", err, stdout)
				}
				if len(rep.Results) != 1 || len(rep.Results[0].Findings) != 1 || len(rep.Results[0].Warnings) != 0 {
					t.Fatalf("results: %+v", rep.Results)
				}
				f := rep.Results[0].Findings[0]
				if f.Package == nil || f.Package.Name != "kaspersky-endpoint-sdk" || f.Action != "Deny" || len(f.Evidence) == 0 || f.Evidence[0].Declared != declaredBy {
					t.Errorf("finding %+v, want the SDK with evidence declared by %s", f, declaredBy)
				}
			},
		},
		"-o sarif": {
			args:     []string{"scan", "--insecure", "-o", "sarif", declared},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var s sarifReport
				if err := json.Unmarshal([]byte(stdout), &s); err != nil || len(s.Runs) != 1 || len(s.Runs[0].Results) != 1 {
					t.Fatalf("-o sarif: %v\n%s", err, stdout)
				}
				res := s.Runs[0].Results[0]
				if res.Level != "error" || !strings.Contains(res.Message.Text, "declared by "+declaredBy) ||
					len(res.Properties.Evidence) == 0 || res.Properties.Evidence[0].Declared != declaredBy {
					t.Errorf("SARIF result %+v, want an error declared by %s", res, declaredBy)
				}
			},
		},
		"--attached-sboms=false": {
			args:       []string{"scan", "--insecure", "--attached-sboms=false", declared},
			wantStdout: []string{"No banned vendor software found."},
		},
		"unusable attached SBOMs: -o json": {
			args:     []string{"scan", "--insecure", "-o", "json", unusable},
			wantCode: 1,
			wantStderr: []string{
				"embargo: warning: " + unusable + ": attached SBOM " + bad[0] + " (oci-referrer) of linux/amd64 unusable: ",
				"embargo: warning: " + unusable + ": attached SBOM " + bad[1] + " (oci-referrer) of linux/amd64 unusable: too large: ",
			},
			check: func(t *testing.T, stdout string) {
				var rep jsonReport
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Results) != 1 {
					t.Fatalf("-o json: %v\n%s", err, stdout)
				}
				res := rep.Results[0]
				var kesl bool
				for _, f := range res.Findings {
					kesl = kesl || (f.Package != nil && f.Package.Name == "kesl" && f.Evidence[0].Declared == "")
				}
				if !kesl || res.Error != "" || len(res.Warnings) != 2 ||
					!strings.Contains(res.Warnings[0]+res.Warnings[1], bad[0]) || !strings.Contains(res.Warnings[0]+res.Warnings[1], "over the 40 MiB limit") {
					t.Errorf("result %+v, want the scanned kesl finding and a warning per unusable document %v", res, bad)
				}
			},
		},
		"unusable attached SBOMs: -o sarif": {
			args:     []string{"scan", "--insecure", "-o", "sarif", unusable},
			wantCode: 1,
			check: func(t *testing.T, stdout string) {
				var s sarifReport
				if err := json.Unmarshal([]byte(stdout), &s); err != nil || len(s.Runs) != 1 || len(s.Runs[0].Invocations) != 1 {
					t.Fatalf("-o sarif: %v\n%s", err, stdout)
				}
				inv := s.Runs[0].Invocations[0]
				var warned []string
				for _, n := range inv.ToolExecutionNotifications {
					if n.Level == "warning" {
						warned = append(warned, n.Message.Text)
					}
				}
				if !inv.ExecutionSuccessful || len(warned) != 2 || len(s.Runs[0].Results) == 0 {
					t.Errorf("SARIF: executionSuccessful %v, warnings %q, %d results; want a successful run, 2 warnings, the kesl results",
						inv.ExecutionSuccessful, warned, len(s.Runs[0].Results))
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res := devcluster.Run(ctx, root, append(os.Environ(), "HOME="+dir), "", filepath.Join(binDir, "embargo"), tc.args...)
			if res.ExitCode != tc.wantCode {
				t.Fatalf("embargo %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), res.ExitCode, tc.wantCode, res)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(res.Stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, res.Stdout)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(res.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.Stderr)
				}
			}
			if tc.check != nil {
				tc.check(t, res.Stdout)
			}
		})
	}
}
