package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JUnit XML, as Jenkins, GitLab and GitHub test reporters read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

type junitText struct {
	Text string `xml:",cdata"`
}

// WriteJUnit writes a testsuite per target and a testcase per policy and vendor. A testcase
// fails when the policy's findings of that vendor include an enforced Deny; Warn, Audit and
// excepted findings pass and are listed in the testcase's system-out. A target that could not
// be scanned is a testsuite with one "scan" testcase in error. Nothing is ever skipped.
func WriteJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: "embargo"}
	for _, res := range r.Results {
		s := junitSuite{Name: res.Target}
		s.Properties = []junitProperty{
			{Name: "embargoVersion", Value: r.EmbargoVersion},
			{Name: "catalogVersion", Value: r.CatalogVersion},
		}
		if res.Digest != "" {
			s.Properties = append(s.Properties, junitProperty{Name: "digest", Value: res.Digest})
		}
		if len(res.Platforms) > 0 {
			s.Properties = append(s.Properties, junitProperty{Name: "platforms", Value: strings.Join(res.Platforms, ",")})
		}
		s.Properties = append(s.Properties, junitProperty{Name: "packageCount", Value: strconv.Itoa(res.PackageCount)})

		if res.Error != "" {
			s.Cases = []junitCase{{
				Name:      "scan",
				Classname: res.Target,
				Error:     &junitProblem{Message: res.Error, Type: "ScanError", Text: res.Error},
			}}
		} else {
			for _, c := range junitCheckList(r, res) {
				s.Cases = append(s.Cases, junitCaseOf(res, c.policy, c.vendor))
			}
		}
		for _, c := range s.Cases {
			s.Tests++
			if c.Failure != nil {
				s.Failures++
			}
			if c.Error != nil {
				s.Errors++
			}
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

type junitCheck struct{ policy, vendor string }

// junitCheckList is every policy and vendor the run checked, then any pair seen only in the
// target's findings.
func junitCheckList(r *Report, res Result) []junitCheck {
	var out []junitCheck
	seen := map[junitCheck]bool{}
	add := func(c junitCheck) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, p := range r.Policies {
		for _, v := range p.Vendors {
			add(junitCheck{p.Name, v})
		}
	}
	for _, f := range res.Findings {
		add(junitCheck{f.Policy, f.Vendor})
	}
	return out
}

func junitCaseOf(res Result, policy, vendor string) junitCase {
	c := junitCase{Name: vendor, Classname: policy}
	var deny []Finding
	var other []string
	for _, f := range res.Findings {
		if f.Policy != policy || f.Vendor != vendor {
			continue
		}
		if !f.Excepted && f.Action == ActionDeny {
			deny = append(deny, f)
			continue
		}
		line := f.Action + ": " + junitLine(f)
		if f.Excepted {
			line = f.Action + " (excepted): " + junitLine(f)
		}
		if f.Excepted && f.Exception != nil {
			line += " — exception: " + f.Exception.Reason
			if exp := f.Exception.expiry(); exp != "" {
				line += " (expires " + exp + ")"
			}
		}
		other = append(other, line)
	}
	if len(deny) > 0 {
		what := deny[0].PackageString()
		if what == "" {
			what = deny[0].EvidenceString()
		}
		msg := fmt.Sprintf("banned vendor %s found in %s: %s", vendor, res.Target, what)
		if len(deny) > 1 {
			msg += fmt.Sprintf(" and %d more", len(deny)-1)
		}
		var text strings.Builder
		for _, f := range deny {
			text.WriteString(junitLine(f) + "\n")
		}
		if basis := deny[0].Basis; len(basis) > 0 {
			text.WriteString("Basis:\n")
			for _, b := range basis {
				text.WriteString("  " + b + "\n")
			}
		}
		c.Failure = &junitProblem{Message: msg, Type: ActionDeny, Text: text.String()}
	}
	if len(other) > 0 {
		c.SystemOut = &junitText{Text: strings.Join(other, "\n") + "\n"}
	}
	return c
}

func junitLine(f Finding) string {
	var b strings.Builder
	if f.Platform != "" {
		b.WriteString("[" + f.Platform + "] ")
	}
	if p := f.PackageString(); p != "" {
		b.WriteString(p + ": ")
	}
	b.WriteString(f.EvidenceString())
	if f.Layer != "" {
		b.WriteString(" (layer " + ShortDigest(f.Layer) + ")")
	}
	return b.String()
}
