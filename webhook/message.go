package webhook

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Limits that keep answers readable in kubectl.
const (
	maxMessage  = 1000
	maxWarning  = 120
	maxWarnings = 10
)

// decision gathers what every selected policy said about every container.
type decision struct {
	kind, name, namespace string

	denials   []string
	warnings  []string
	basis     []string
	policies  []string
	strongest v1alpha1.Action
	audited   bool
}

var rank = map[v1alpha1.Action]int{v1alpha1.ActionAudit: 1, v1alpha1.ActionWarn: 2, v1alpha1.ActionDeny: 3}

func (d *decision) observe(a v1alpha1.Action) {
	if rank[a] > rank[d.strongest] {
		d.strongest = a
	}
}

func (d *decision) add(c *policy.Compiled, v policy.Verdict, ref containerRef, t registry.Target, next *policy.Step) {
	// a package names what to remove better than the files it owns: packages first
	findings := slices.Clone(v.Findings)
	slices.SortStableFunc(findings, func(a, b match.Finding) int {
		return boolRank(a.Package == nil) - boolRank(b.Package == nil)
	})
	switch v.Action {
	case v1alpha1.ActionDeny:
		for _, f := range findings {
			d.denials = append(d.denials, fmt.Sprintf("%s %q image %s (%s): %s", ref.Kind, ref.Name, ref.Image, registry.ShortDigest(t.Digest.String()), describe(f)))
		}
		d.policies = appendUnique(d.policies, c.Name)
		for _, b := range v.Basis {
			d.basis = appendUnique(d.basis, b)
		}
	case v1alpha1.ActionWarn:
		f := findings[0]
		what := f.Package.String()
		if f.Package == nil {
			what = f.Evidence[0].Value
		}
		head := fmt.Sprintf("embargo: %s %q (%s): ", ref.Kind, ref.Name, lastSegment(ref.Image))
		body := what + " from " + f.Vendor
		tail := "; policy " + c.Name
		if next != nil && next.Action == v1alpha1.ActionDeny {
			tail = "; denied from " + next.From.UTC().Format("2006-01-02")
		}
		if room := maxWarning - len(head) - len(tail); len(body) > room && room > 10 {
			body = body[:room-3] + "..."
		}
		d.warn(head + body + tail)
	case v1alpha1.ActionAudit:
		d.audited = true
	}
}

func (d *decision) scanError(c *policy.Compiled, ref containerRef, err error) {
	reason := string(registry.KindOf(err))
	if reason == "" {
		reason = "ScanError"
	}
	if c.Spec.OnScanError == v1alpha1.ScanErrorDeny {
		d.denials = append(d.denials, fmt.Sprintf("%s %q image %s could not be checked (%s): %v; policy %s fails closed (onScanError: Deny)",
			ref.Kind, ref.Name, ref.Image, reason, err, c.Name))
		d.policies = appendUnique(d.policies, c.Name)
		return
	}
	d.warn(fmt.Sprintf("embargo: %s %q not checked (%s); admitted by onScanError: Allow", ref.Kind, ref.Name, reason))
}

func (d *decision) warn(w string) {
	if len(w) > maxWarning {
		w = w[:maxWarning-3] + "..."
	}
	for _, x := range d.warnings {
		if x == w {
			return
		}
	}
	if len(d.warnings) < maxWarnings {
		d.warnings = append(d.warnings, w)
	}
}

// describe renders a finding as "kesl 12.1.0 (deb) from AO Kaspersky Lab: dpkg Maintainer = "…", layer sha256:…".
func describe(f match.Finding) string {
	var b strings.Builder
	if f.Package != nil {
		fmt.Fprintf(&b, "%s", f.Package.String())
		if f.Package.Type != "" {
			fmt.Fprintf(&b, " (%s)", f.Package.Type)
		}
		b.WriteString(" from ")
	}
	fmt.Fprintf(&b, "%s: %s", f.Vendor, f.Evidence[0].String())
	if f.Layer != "" {
		fmt.Fprintf(&b, ", layer %s", registry.ShortDigest(f.Layer))
	}
	if f.Platform != "" && f.Platform != "linux/amd64" {
		fmt.Fprintf(&b, ", %s", f.Platform)
	}
	return b.String()
}

func (d *decision) response() admission.Response {
	if len(d.denials) == 0 {
		resp := admission.Allowed("")
		resp.Warnings = d.warnings
		return resp
	}
	head := fmt.Sprintf("Embargo: %s %s/%s denied by VendorPolicy %s: banned-vendor software found:",
		d.kind, d.namespace, d.name, strings.Join(d.policies, ", "))
	tail := ""
	if len(d.basis) > 0 {
		tail = " Basis: " + citation(d.basis[0]) + "."
	}
	tail += " Remove it, or add a spec.exceptions entry with a reason."
	var b strings.Builder
	b.WriteString(head)
	for i, line := range d.denials {
		more := len(d.denials) - i
		suffix := fmt.Sprintf(" ... and %d more.", more)
		if b.Len()+len(line)+4+len(tail)+len(suffix) > maxMessage {
			b.WriteString(suffix)
			break
		}
		fmt.Fprintf(&b, " [%d] %s", i+1, line)
	}
	b.WriteString(tail)
	resp := admission.Denied(clip(b.String(), maxMessage+200))
	resp.Warnings = d.warnings
	return resp
}

// citation is the instrument and date of a basis line: the text before its first ": ", or its
// first words.
func citation(basis string) string {
	if i := strings.Index(basis, ": "); i > 0 && i <= 160 {
		return basis[:i]
	}
	if len(basis) <= 160 {
		return strings.TrimSuffix(basis, ".")
	}
	cut := strings.LastIndex(basis[:157], " ")
	if cut < 40 {
		cut = 157
	}
	return basis[:cut] + "..."
}

// lastSegment shortens an image reference to its last path segment: "team/app:1.2".
func lastSegment(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
