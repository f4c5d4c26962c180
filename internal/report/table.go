package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes one row per finding, the exceptions that applied and a summary line.
// A POLICY column appears when findings come from more than one policy.
func WriteTable(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	policies := map[string]bool{}
	n := 0
	for _, res := range r.Results {
		for _, f := range res.Findings {
			policies[f.Policy] = true
			n++
		}
	}
	withPolicy := len(policies) > 1

	if n == 0 {
		switch {
		case len(r.Results) > 0 && r.Summary.Errors == len(r.Results):
			fmt.Fprintln(bw, "Nothing was scanned: every target failed.")
		case r.Summary.Errors > 0:
			fmt.Fprintln(bw, "No banned vendor software found in the targets that could be scanned.")
		default:
			fmt.Fprintln(bw, "No banned vendor software found.")
		}
	} else {
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		head := []string{"TARGET", "PLATFORM", "VENDOR", "PACKAGE", "EVIDENCE", "LAYER", "ACTION"}
		if withPolicy {
			head = append(head, "POLICY")
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, res := range r.Results {
			for _, f := range res.Findings {
				row := []string{res.Target, f.Platform, f.Vendor, f.PackageString(), f.EvidenceString(), ShortDigest(f.Layer), f.Outcome()}
				if withPolicy {
					row = append(row, f.Policy)
				}
				for i := range row {
					row[i] = cell(row[i])
				}
				fmt.Fprintln(tw, strings.Join(row, "\t"))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	// Each exception once per target and policy: it covers all of that policy's findings.
	type key struct{ target, policy string }
	seen := map[key]bool{}
	first := true
	for _, res := range r.Results {
		for _, f := range res.Findings {
			k := key{res.Target, f.Policy}
			if !f.Excepted || f.Exception == nil || seen[k] {
				continue
			}
			seen[k] = true
			if first {
				fmt.Fprintln(bw, "\nExcepted:")
				first = false
			}
			line := fmt.Sprintf("  %s (policy %s): %s", cell(res.Target), cell(f.Policy), cell(f.Exception.Reason))
			if exp := f.Exception.expiry(); exp != "" {
				line += ", expires " + exp
			} else {
				line += ", never expires"
			}
			fmt.Fprintln(bw, line)
		}
	}

	s := r.Summary
	targets := "targets"
	if len(r.Results) == 1 {
		targets = "target"
	}
	errs := "errors"
	if s.Errors == 1 {
		errs = "error"
	}
	fmt.Fprintf(bw, "\n%d %s scanned: %d deny, %d warn, %d audit, %d excepted, %d %s\n",
		len(r.Results), targets, s.Deny, s.Warn, s.Audit, s.Excepted, s.Errors, errs)
	return bw.Flush()
}

// cell keeps a value on one line and out of tabwriter's column logic.
func cell(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}
