// Package report renders the results of `embargo scan` as a table for people, JSON for scripts,
// SARIF 2.1.0 for code-scanning dashboards and JUnit XML for CI test reports. It is pure: plain
// structs in, bytes out; it imports neither syft nor Kubernetes.
//
// # JSON: the scripting contract
//
// The JSON output (-o json) is Embargo's stable interface for scripts. Within a major version
// fields are only ever added, never renamed, removed or retyped:
//
//	{
//	  "embargoVersion": "v0.3.0",          // the CLI's version
//	  "catalogVersion": "2026.11.0",       // the built-in vendor catalog's version
//	  "policies": [                        // the policies applied (a policy whose
//	                                       // excludedNamespaces has --namespace is not), in order
//	    {"name": "builtin-kaspersky", "action": "Deny", "vendors": ["AO Kaspersky Lab"]}
//	  ],
//	  "results": [                         // one per distinct argument, in argument order
//	    {
//	      "target": "registry.example.com/app:1",  // the image reference or SBOM file as given
//	      "digest": "sha256:…",            // the image digest (SBOM: the file's sha256);
//	                                       // absent when the reference did not resolve
//	      "platforms": ["linux/amd64"],    // the platforms scanned; absent when unknown
//	      "packageCount": 123,
//	      "warnings": ["…"],               // attached SBOMs that could not be used
//	      "error": "…",                    // only when the target could not be scanned: one line
//	                                       // naming it, as `embargo: <error>` on stderr
//	      "findings": [                    // [] when clean; one per policy and piece of software
//	        {
//	          "policy": "builtin-kaspersky",
//	          "action": "Deny",            // Deny, Warn or Audit: the action in force now
//	          "excepted": false,           // true when a policy exception covers the target
//	          "exception": {"reason": "…", "expires": "2027-01-01T00:00:00Z"}, // when excepted
//	          "vendor": "AO Kaspersky Lab",
//	          "catalog": "kaspersky",      // the built-in entry; absent for custom vendors
//	          "package": {"name": "kesl", "version": "11.1.0", "type": "deb", "purl": "pkg:deb/…"},
//	                                       // absent for findings by path
//	          "rule": "supplier",          // package, supplier, purl, cpe or path
//	          "evidence": [{"rule": "supplier", "field": "dpkg Maintainer", "value": "…",
//	                        "declared": "attached SPDX SBOM sha256:… (buildkit-attestation), …"}],
//	                                       // declared: only when an SBOM the image carries,
//	                                       // not the scan, showed it
//	          "layer": "sha256:…",         // the layer that added it, when known
//	          "platform": "linux/amd64",
//	          "basis": ["…"]               // the legal instruments banning the vendor
//	        }
//	      ]
//	    }
//	  ],
//	  "summary": {"deny": 1, "warn": 0, "audit": 0, "excepted": 0, "errors": 0}
//	}
//
// Summary counts findings: deny, warn and audit count enforced (not excepted) findings by
// action, excepted counts findings an exception covers whatever their action, and errors
// counts targets that could not be scanned. `embargo scan` exits 1 exactly when summary.deny
// is above zero and no target failed (errors > 0 exits 2).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Actions, as in VendorPolicy.spec.action.
const (
	ActionDeny  = "Deny"
	ActionWarn  = "Warn"
	ActionAudit = "Audit"
)

// Report is the outcome of one `embargo scan` run.
type Report struct {
	EmbargoVersion string   `json:"embargoVersion"`
	CatalogVersion string   `json:"catalogVersion"`
	Policies       []Policy `json:"policies,omitempty"`
	Results        []Result `json:"results"`
	Summary        Summary  `json:"summary"`
}

// Policy is a policy the run applied.
type Policy struct {
	Name string `json:"name"`
	// Action is the action in force at the time of the run.
	Action  string   `json:"action"`
	Vendors []string `json:"vendors"`
}

// Result is one scanned target: an image reference or an SBOM file.
type Result struct {
	Target       string   `json:"target"`
	Digest       string   `json:"digest,omitempty"`
	Platforms    []string `json:"platforms,omitempty"`
	PackageCount int      `json:"packageCount"`
	// Error is why the target could not be scanned: one line that names the target.
	Error string `json:"error,omitempty"`
	// Warnings are attached SBOMs that could not be used; the scan's result stands.
	Warnings []string  `json:"warnings,omitempty"`
	Findings []Finding `json:"findings"`
}

// Finding is one piece of a banned vendor's software as one policy judges it.
type Finding struct {
	Policy    string     `json:"policy"`
	Action    string     `json:"action"`
	Excepted  bool       `json:"excepted"`
	Exception *Exception `json:"exception,omitempty"`
	Vendor    string     `json:"vendor"`
	Catalog   string     `json:"catalog,omitempty"`
	Package   *Package   `json:"package,omitempty"`
	Rule      string     `json:"rule"`
	Evidence  []Evidence `json:"evidence"`
	Layer     string     `json:"layer,omitempty"`
	Platform  string     `json:"platform,omitempty"`
	Basis     []string   `json:"basis,omitempty"`
}

// Exception is the policy exception that covers a finding.
type Exception struct {
	Reason  string     `json:"reason"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Package names the package a finding is about.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

// Evidence is one reason for a finding; the first convicted it.
type Evidence struct {
	Rule  string `json:"rule"`
	Field string `json:"field"`
	Value string `json:"value"`
	// Declared names the attached SBOM that declared the value; absent when the scan found it.
	Declared string `json:"declared,omitempty"`
}

// Summary counts findings by outcome and targets that failed.
type Summary struct {
	Deny     int `json:"deny"`
	Warn     int `json:"warn"`
	Audit    int `json:"audit"`
	Excepted int `json:"excepted"`
	Errors   int `json:"errors"`
}

// Summarize recomputes r.Summary from the results and makes every Findings a non-nil slice, so
// JSON shows [] rather than null.
func (r *Report) Summarize() {
	var s Summary
	for i := range r.Results {
		res := &r.Results[i]
		if res.Findings == nil {
			res.Findings = []Finding{}
		}
		if res.Error != "" {
			s.Errors++
		}
		for _, f := range res.Findings {
			switch {
			case f.Excepted:
				s.Excepted++
			case f.Action == ActionDeny:
				s.Deny++
			case f.Action == ActionWarn:
				s.Warn++
			case f.Action == ActionAudit:
				s.Audit++
			}
		}
	}
	if r.Results == nil {
		r.Results = []Result{}
	}
	r.Summary = s
}

// Format is an output format.
type Format string

// The output formats.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatSARIF Format = "sarif"
	FormatJUnit Format = "junit"
)

// Formats lists the output formats, for help text.
var Formats = []Format{FormatTable, FormatJSON, FormatSARIF, FormatJUnit}

// ParseFormat checks an -o value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown output format %q: want one of table, json, sarif, junit", s)
}

// Write renders r in format f. The summary should be current (see Summarize).
func Write(w io.Writer, f Format, r *Report) error {
	switch f {
	case FormatTable:
		return WriteTable(w, r)
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatSARIF:
		return WriteSARIF(w, r)
	case FormatJUnit:
		return WriteJUnit(w, r)
	}
	return fmt.Errorf("unknown output format %q", f)
}

// WriteJSON writes the scripting contract documented on the package.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// ShortDigest is the first 12 hex digits of a digest, without its algorithm.
func ShortDigest(d string) string {
	for i := 0; i < len(d); i++ {
		if d[i] == ':' {
			d = d[i+1:]
			break
		}
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// Outcome is how a finding shows in the table: its action, or "excepted".
func (f *Finding) Outcome() string {
	if f.Excepted {
		return "excepted"
	}
	return f.Action
}

// PackageString is "name version", or "" for findings by path.
func (f *Finding) PackageString() string {
	if f.Package == nil {
		return ""
	}
	if f.Package.Version == "" {
		return f.Package.Name
	}
	return f.Package.Name + " " + f.Package.Version
}

// EvidenceString is the convicting evidence as `field = "value"`.
func (f *Finding) EvidenceString() string {
	if len(f.Evidence) == 0 {
		return ""
	}
	if d := f.Evidence[0].Declared; d != "" {
		return fmt.Sprintf("%s = %q, declared by %s", f.Evidence[0].Field, f.Evidence[0].Value, d)
	}
	return fmt.Sprintf("%s = %q", f.Evidence[0].Field, f.Evidence[0].Value)
}

// expiry is an exception's expiry for people, or "" when it never expires.
func (e *Exception) expiry() string {
	if e == nil || e.Expires == nil {
		return ""
	}
	return e.Expires.UTC().Format(time.RFC3339)
}
