package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	layerA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	digest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	kasp   = "AO Kaspersky Lab"
)

var (
	expires = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	basis   = []string{"DHS BOD 17-01 (2017-09-13): federal agencies remove Kaspersky products", "NDAA FY2018 §1634"}
)

func denyFinding() Finding {
	return Finding{
		Policy:   "builtin-kaspersky",
		Action:   ActionDeny,
		Vendor:   kasp,
		Catalog:  "kaspersky",
		Package:  &Package{Name: "kesl", Version: "11.1.0.3013", Type: "deb", PURL: "pkg:deb/debian/kesl@11.1.0.3013"},
		Rule:     "supplier",
		Evidence: []Evidence{{Rule: "supplier", Field: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"}, {Rule: "package", Field: "deb package name", Value: "kesl"}},
		Layer:    layerA,
		Platform: "linux/amd64",
		Basis:    basis,
	}
}

func withAction(f Finding, a string) Finding { f.Action = a; return f }

func excepted(f Finding, exp *time.Time) Finding {
	f.Excepted = true
	f.Exception = &Exception{Reason: "waiver CR-42", Expires: exp}
	return f
}

func pathFinding() Finding {
	return Finding{
		Policy:   "builtin-kaspersky",
		Action:   ActionDeny,
		Vendor:   kasp,
		Catalog:  "kaspersky",
		Rule:     "path",
		Evidence: []Evidence{{Rule: "path", Field: "path /opt/kaspersky/**", Value: "/opt/kaspersky/kesl/bin/kesl (and 3 more files)"}},
		Layer:    layerA,
		Platform: "linux/arm64",
		Basis:    basis,
	}
}

func result(target string, fs ...Finding) Result {
	return Result{Target: target, Digest: digest, Platforms: []string{"linux/amd64"}, PackageCount: 87, Findings: fs}
}

func errResult(target, msg string) Result { return Result{Target: target, Error: msg} }

func newReport(results ...Result) *Report {
	r := &Report{
		EmbargoVersion: "v1.2.3",
		CatalogVersion: "2026.11.0",
		Policies:       []Policy{{Name: "builtin-kaspersky", Action: ActionDeny, Vendors: []string{kasp}}},
		Results:        results,
	}
	r.Summarize()
	return r
}

// cases are shared by every format's test.
var cases = map[string]struct {
	report   *Report
	summary  Summary
	failures int // JUnit testcases failing
	errors   int // JUnit testcases in error
}{
	"clean": {
		report: newReport(result("registry.example.com/clean:1")),
	},
	"deny": {
		report:   newReport(result("registry.example.com/kesl:1", denyFinding(), pathFinding())),
		summary:  Summary{Deny: 2},
		failures: 1,
	},
	"warn and audit pass": {
		report:  newReport(result("registry.example.com/kesl:1", withAction(denyFinding(), ActionWarn)), result("sbom.spdx.json", withAction(pathFinding(), ActionAudit))),
		summary: Summary{Warn: 1, Audit: 1},
	},
	"excepted never fails": {
		report:  newReport(result("registry.example.com/kesl:1", excepted(denyFinding(), &expires), excepted(pathFinding(), nil))),
		summary: Summary{Excepted: 2},
	},
	"error and deny": {
		report: newReport(
			errResult("registry.example.com/missing:1", "registry.example.com/missing:1: image not found: MANIFEST_UNKNOWN"),
			result("localhost:5000/kesl:1", denyFinding()),
			result("registry.example.com/kesl:2", denyFinding()),
		),
		summary:  Summary{Deny: 2, Errors: 1},
		failures: 2,
		errors:   1,
	},
	"two policies": {
		report: func() *Report {
			custom := withAction(denyFinding(), ActionWarn)
			custom.Policy, custom.Vendor, custom.Catalog, custom.Basis = "acme", "Acme Corp", "", nil
			r := newReport(result("img:1", denyFinding(), custom))
			r.Policies = append(r.Policies, Policy{Name: "acme", Action: ActionWarn, Vendors: []string{"Acme Corp"}})
			return r
		}(),
		summary:  Summary{Deny: 1, Warn: 1},
		failures: 1,
	},
}

func TestSummarize(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.summary, tc.report.Summary); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			for _, res := range tc.report.Results {
				if res.Findings == nil {
					t.Errorf("%s: Findings is nil after Summarize; JSON would say null", res.Target)
				}
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, FormatJSON, tc.report); err != nil {
				t.Fatal(err)
			}
			var got Report
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
			}
			if diff := cmp.Diff(tc.report, &got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJSONContract pins the field names scripts rely on.
func TestJSONContract(t *testing.T) {
	r := newReport(result("img:1", excepted(denyFinding(), &expires)), errResult("img:2", "boom"))
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m any) []string {
		var ks []string
		for k := range m.(map[string]any) {
			ks = append(ks, k)
		}
		return ks
	}
	sorted := cmp.Transformer("sort", func(in []string) []string {
		out := append([]string(nil), in...)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j] < out[i] {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	})
	results := doc["results"].([]any)
	res0 := results[0].(map[string]any)
	f0 := res0["findings"].([]any)[0].(map[string]any)
	for name, tc := range map[string]struct {
		obj  any
		want []string
	}{
		"top":       {doc, []string{"embargoVersion", "catalogVersion", "policies", "results", "summary"}},
		"result":    {res0, []string{"target", "digest", "platforms", "packageCount", "findings"}},
		"error":     {results[1], []string{"target", "packageCount", "error", "findings"}},
		"finding":   {f0, []string{"policy", "action", "excepted", "exception", "vendor", "catalog", "package", "rule", "evidence", "layer", "platform", "basis"}},
		"exception": {f0["exception"], []string{"reason", "expires"}},
		"package":   {f0["package"], []string{"name", "version", "type", "purl"}},
		"evidence":  {f0["evidence"].([]any)[0], []string{"rule", "field", "value"}},
		"summary":   {doc["summary"], []string{"deny", "warn", "audit", "excepted", "errors"}},
	} {
		if diff := cmp.Diff(tc.want, keys(tc.obj), sorted); diff != "" {
			t.Errorf("%s keys (-want +got):\n%s", name, diff)
		}
	}
	if got := f0["exception"].(map[string]any)["expires"]; got != "2027-01-02T03:04:05Z" {
		t.Errorf("expires = %v, want RFC 3339", got)
	}
}

func TestSARIF(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, FormatSARIF, tc.report); err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if raw["version"] != "2.1.0" || raw["$schema"] != SARIFSchema {
				t.Errorf("version %v, $schema %v", raw["version"], raw["$schema"])
			}
			var log sarifLog
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			if len(log.Runs) != 1 {
				t.Fatalf("%d runs, want 1", len(log.Runs))
			}
			run := log.Runs[0]
			if run.Tool.Driver.Name != "embargo" || run.Tool.Driver.Version != "v1.2.3" {
				t.Errorf("driver %+v", run.Tool.Driver)
			}

			type counts struct{ Error, Warning, Note, Suppressed, Rules, Notifications int }
			want := counts{
				Error:         tc.summary.Deny,
				Warning:       tc.summary.Warn,
				Note:          tc.summary.Audit,
				Suppressed:    tc.summary.Excepted,
				Notifications: tc.summary.Errors,
			}
			vendors := map[string]bool{}
			for _, res := range tc.report.Results {
				for _, f := range res.Findings {
					vendors[f.Vendor] = true
				}
			}
			want.Rules = len(vendors)
			var got counts
			got.Rules = len(run.Tool.Driver.Rules)
			got.Notifications = len(run.Invocations[0].ToolExecutionNotifications)
			for _, r := range run.Results {
				if len(r.Suppressions) > 0 {
					got.Suppressed++
					if !strings.Contains(r.Suppressions[0].Justification, "waiver CR-42") {
						t.Errorf("justification %q lacks the reason", r.Suppressions[0].Justification)
					}
					continue
				}
				switch r.Level {
				case "error":
					got.Error++
				case "warning":
					got.Warning++
				case "note":
					got.Note++
				}
				if rule := run.Tool.Driver.Rules[r.RuleIndex]; rule.ID != r.RuleID {
					t.Errorf("result ruleIndex %d is rule %q, want %q", r.RuleIndex, rule.ID, r.RuleID)
				}
				uri := r.Locations[0].PhysicalLocation.ArtifactLocation.URI
				if u, err := url.Parse(uri); err != nil || u.Scheme != "" {
					t.Errorf("artifact uri %q is not a relative URI reference (scheme %q, %v)", uri, u.Scheme, err)
				}
				if uri == "" || !strings.Contains(r.Message.Text, strings.ReplaceAll(uri, "%3A", ":")) {
					t.Errorf("message %q does not name location %q", r.Message.Text, uri)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if ok := run.Invocations[0].ExecutionSuccessful; ok != (tc.summary.Errors == 0) {
				t.Errorf("executionSuccessful = %v with %d errors", ok, tc.summary.Errors)
			}
		})
	}
}

func TestSARIFDeny(t *testing.T) {
	r := newReport(result("registry.example.com/kesl:1", denyFinding()))
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, r); err != nil {
		t.Fatal(err)
	}
	var log sarifLog
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	rule := log.Runs[0].Tool.Driver.Rules[0]
	if rule.ID != "kaspersky" || !strings.Contains(rule.Help.Text, basis[0]) || !strings.Contains(rule.Help.Text, basis[1]) {
		t.Errorf("rule %+v: want id kaspersky and every basis line in help", rule)
	}
	res := log.Runs[0].Results[0]
	wantLoc := []sarifLocation{{
		PhysicalLocation: &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: "registry.example.com/kesl:1"}},
		LogicalLocations: []sarifLogicalLocation{{Name: "kesl", FullyQualifiedName: "pkg:deb/debian/kesl@11.1.0.3013", Kind: "package"}},
	}}
	if diff := cmp.Diff(wantLoc, res.Locations); diff != "" {
		t.Errorf("locations (-want +got):\n%s", diff)
	}
	for _, s := range []string{"kesl", "11.1.0.3013", kasp, `dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`} {
		if !strings.Contains(res.Message.Text, s) {
			t.Errorf("message %q lacks %q", res.Message.Text, s)
		}
	}
}

// TestSARIFWarnings: an attached SBOM that could not be read is a warning notification of a
// successful run, beside an error notification for a target that failed, and changes no result.
func TestSARIFWarnings(t *testing.T) {
	warned := result("registry.example.com/kesl:1", denyFinding())
	warned.Warnings = []string{"attached SBOM sha256:0123456789ab (oci-referrer) of linux/amd64 unusable: too large: 41943083 bytes, over the 40 MiB limit"}
	for name, tc := range map[string]struct {
		results    []Result
		successful bool
		levels     []string
	}{
		"warning only":         {results: []Result{warned}, successful: true, levels: []string{"warning"}},
		"warning beside error": {results: []Result{errResult("registry.example.com/gone:1", "gone: not found"), warned}, levels: []string{"error", "warning"}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, newReport(tc.results...)); err != nil {
				t.Fatal(err)
			}
			var log sarifLog
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			inv := log.Runs[0].Invocations[0]
			var levels []string
			for _, n := range inv.ToolExecutionNotifications {
				levels = append(levels, n.Level)
				if n.Level == "warning" && (n.Message.Text != warned.Warnings[0] || n.Locations[0].PhysicalLocation.ArtifactLocation.URI != "registry.example.com/kesl:1") {
					t.Errorf("warning notification %+v", n)
				}
			}
			if inv.ExecutionSuccessful != tc.successful || !cmp.Equal(levels, tc.levels) || len(log.Runs[0].Results) != 1 {
				t.Errorf("executionSuccessful %v (want %v), notification levels %v (want %v), %d results (want 1)",
					inv.ExecutionSuccessful, tc.successful, levels, tc.levels, len(log.Runs[0].Results))
			}
		})
	}
}

// junitParsed reads JUnit back the way CI tools do.
type junitParsed struct {
	XMLName  xml.Name `xml:"testsuites"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name      string    `xml:"name,attr"`
			Classname string    `xml:"classname,attr"`
			Failure   *struct{} `xml:"failure"`
			Error     *struct{} `xml:"error"`
			Skipped   *struct{} `xml:"skipped"`
			SystemOut string    `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnit(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, FormatJUnit, tc.report); err != nil {
				t.Fatal(err)
			}
			var got junitParsed
			if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not XML: %v\n%s", err, buf.String())
			}
			if got.Failures != tc.failures || got.Errors != tc.errors {
				t.Errorf("failures=%d errors=%d, want %d and %d\n%s", got.Failures, got.Errors, tc.failures, tc.errors, buf.String())
			}
			if len(got.Suites) != len(tc.report.Results) {
				t.Fatalf("%d suites for %d targets", len(got.Suites), len(tc.report.Results))
			}
			var failing, outs int
			for i, s := range got.Suites {
				if s.Name != tc.report.Results[i].Target {
					t.Errorf("suite %d named %q, want %q", i, s.Name, tc.report.Results[i].Target)
				}
				if s.Tests != len(s.Cases) {
					t.Errorf("suite %s: tests=%d but %d testcases", s.Name, s.Tests, len(s.Cases))
				}
				n := 0
				for _, c := range s.Cases {
					if c.Skipped != nil {
						t.Errorf("testcase %s is skipped", c.Name)
					}
					if c.Failure != nil {
						n++
					}
					if c.SystemOut != "" {
						outs++
					}
				}
				if n != s.Failures {
					t.Errorf("suite %s: failures=%d but %d failing testcases", s.Name, s.Failures, n)
				}
				failing += n
			}
			if failing != tc.failures {
				t.Errorf("%d failing testcases, want %d", failing, tc.failures)
			}
			if tc.summary.Warn+tc.summary.Audit+tc.summary.Excepted > 0 && outs == 0 {
				t.Errorf("warn/audit/excepted findings not in any system-out:\n%s", buf.String())
			}
		})
	}
}

func TestTable(t *testing.T) {
	for name, tc := range map[string]struct {
		report *Report
		want   string
	}{
		"clean": {
			report: newReport(result("img:1")),
			want: "No banned vendor software found.\n" +
				"\n1 target scanned: 0 deny, 0 warn, 0 audit, 0 excepted, 0 errors\n",
		},
		"deny and excepted": {
			report: newReport(result("img:1", denyFinding()), result("img:2", excepted(pathFinding(), &expires))),
			want: "TARGET  PLATFORM     VENDOR            PACKAGE           EVIDENCE                                                                    LAYER         ACTION\n" +
				"img:1   linux/amd64  AO Kaspersky Lab  kesl 11.1.0.3013  dpkg Maintainer = \"AO Kaspersky Lab <support@kaspersky.com>\"                0123456789ab  Deny\n" +
				"img:2   linux/arm64  AO Kaspersky Lab                    path /opt/kaspersky/** = \"/opt/kaspersky/kesl/bin/kesl (and 3 more files)\"  0123456789ab  excepted\n" +
				"\nExcepted:\n" +
				"  img:2 (policy builtin-kaspersky): waiver CR-42, expires 2027-01-02T03:04:05Z\n" +
				"\n2 targets scanned: 1 deny, 0 warn, 0 audit, 1 excepted, 0 errors\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, FormatTable, tc.report); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, buf.String()); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTableColumns(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, tc.report); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			multi := map[string]bool{}
			for _, res := range tc.report.Results {
				for _, f := range res.Findings {
					multi[f.Policy] = true
					if !strings.Contains(out, f.EvidenceString()) {
						t.Errorf("table lacks evidence %s", f.EvidenceString())
					}
				}
			}
			if got := strings.Contains(out, "POLICY"); got != (len(multi) > 1) {
				t.Errorf("POLICY column shown = %v with %d policies", got, len(multi))
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"table": FormatTable, "json": FormatJSON, "sarif": FormatSARIF, "junit": FormatJUnit, "yaml": "", "": ""} {
		got, err := ParseFormat(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
}

func TestShortDigest(t *testing.T) {
	for in, want := range map[string]string{layerA: "0123456789ab", "": "", "sha256:abc": "abc", "0123456789abcdef": "0123456789ab"} {
		if got := ShortDigest(in); got != want {
			t.Errorf("ShortDigest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSARIFURI(t *testing.T) {
	for in, want := range map[string]string{
		"registry.example.com/team/app:1": "registry.example.com/team/app:1",
		"localhost:5000/app:1":            "localhost%3A5000/app:1",
		"127.0.0.1:5000/app@sha256:ab":    "127.0.0.1%3A5000/app@sha256:ab",
		"alpine:3":                        "alpine%3A3",
		"sboms/my app.spdx.json":          "sboms/my%20app.spdx.json",
	} {
		got := sarifURI(in)
		if got != want {
			t.Errorf("sarifURI(%q) = %q, want %q", in, got, want)
		}
		if u, err := url.Parse(got); err != nil || u.Scheme != "" {
			t.Errorf("sarifURI(%q) = %q parses with scheme %q, err %v", in, got, u.Scheme, err)
		}
	}
}
