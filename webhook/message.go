package webhook

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Limits that keep answers readable in kubectl.
const (
	maxMessage  = 1000
	maxWarning  = 120
	maxWarnings = 10
)

// response phrases d as the admission answer for the object kind namespace/name: one message line
// per denying finding or scan error, one warning per warned container. It decides nothing.
func response(kind, name string, d decision.Decision) admission.Response {
	var denials, warnings, policies, basis []string
	warn := func(w string) {
		w = decision.Clip(w, maxWarning)
		if !slices.Contains(warnings, w) && len(warnings) < maxWarnings {
			warnings = append(warnings, w)
		}
	}
	for _, p := range d.Policies {
		for _, group := range decision.ByContainer(p.Kept) {
			group = packagesFirst(group)
			ct := group[0].Container
			switch p.Action {
			case v1alpha1.ActionDeny:
				for _, f := range group {
					denials = append(denials, fmt.Sprintf("%s %q image %s (%s): %s", ct.Kind, ct.Name, ct.Image, registry.ShortDigest(ct.Digest), describe(f.Finding)))
					if len(f.Basis) > 0 {
						basis = append(basis, f.Basis[0])
					}
				}
				policies = appendUnique(policies, p.Policy)
			case v1alpha1.ActionWarn:
				warn(warning(ct, group[0].Finding, p))
			}
		}
		if p.Action == v1alpha1.ActionDeny || p.Action == v1alpha1.ActionWarn {
			for _, u := range p.Unusable {
				// short enough for the warning limit; the ImageScan's message has the whole line
				warn(fmt.Sprintf("embargo: %s %q: attached SBOM %s unusable: %s", u.Container.Kind, u.Container.Name, registry.ShortDigest(u.Source.Digest), u.Source.Error))
			}
		}
		for _, se := range p.ScanErrors {
			ct := se.Container
			if se.Outcome == decision.Deny {
				denials = append(denials, fmt.Sprintf("%s %q image %s could not be checked (%s): %s; policy %s fails closed (onScanError: Deny)",
					ct.Kind, ct.Name, ct.Image, se.Reason, se.Detail, p.Policy))
				policies = appendUnique(policies, p.Policy)
				continue
			}
			warn(scanErrorWarning(ct, se))
		}
	}
	if len(denials) == 0 {
		resp := admission.Allowed("")
		resp.Warnings = warnings
		return resp
	}
	head := fmt.Sprintf("Embargo: %s %s/%s denied by VendorPolicy %s: banned-vendor software found:",
		kind, d.Namespace, name, strings.Join(policies, ", "))
	tail := ""
	if len(basis) > 0 {
		tail = " Basis: " + citation(basis[0]) + "."
	}
	tail += " Remove it, or add a spec.exceptions entry with a reason."
	var b strings.Builder
	b.WriteString(head)
	for i, line := range denials {
		more := len(denials) - i
		suffix := fmt.Sprintf(" ... and %d more.", more)
		if b.Len()+len(line)+4+len(tail)+len(suffix) > maxMessage {
			b.WriteString(suffix)
			break
		}
		fmt.Fprintf(&b, " [%d] %s", i+1, line)
	}
	b.WriteString(tail)
	resp := admission.Denied(decision.Clip(b.String(), maxMessage+200))
	resp.Warnings = warnings
	return resp
}

// packagesFirst sorts one container's findings: a package names what to remove better than the
// files it owns.
func packagesFirst(fs []decision.Finding) []decision.Finding {
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b decision.Finding) int {
		return boolRank(a.Package == nil) - boolRank(b.Package == nil)
	})
	return fs
}

// warning is the one-line warning for a container under a Warn policy, naming the next step
// when it is Deny.
func warning(ct *decision.Container, f match.Finding, p decision.PolicyDecision) string {
	what := f.Package.String()
	if f.Package == nil {
		what = f.Evidence[0].Value
	}
	head := fmt.Sprintf("embargo: %s %q (%s): ", ct.Kind, ct.Name, lastSegment(ct.Image))
	body := what + " from " + f.Vendor
	tail := "; policy " + p.Policy
	if p.Next != nil && p.Next.Action == v1alpha1.ActionDeny {
		tail = "; denied from " + p.Next.From.UTC().Format("2006-01-02")
	}
	if room := maxWarning - len(head) - len(tail); len(body) > room && room > 10 {
		body = decision.Clip(body, room)
	}
	return head + body + tail
}

// scanErrorWarning is the one-line warning for a container admitted by onScanError: Allow,
// ending in the error's detail (the limit to raise, the registry's answer). Only the detail is
// shortened to fit: what was decided always shows whole.
func scanErrorWarning(ct *decision.Container, se decision.ScanError) string {
	head := fmt.Sprintf("embargo: %s %q not checked (%s); admitted by onScanError: Allow", ct.Kind, ct.Name, se.Reason)
	if room := maxWarning - len(head) - len(": "); se.Detail != "" && room > 10 {
		return head + ": " + decision.Clip(se.Detail, room)
	}
	return head
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

// citation is the instrument and date of a basis line: the text before its first ": ", or its
// first words.
func citation(basis string) string {
	if i := strings.Index(basis, ": "); i > 0 && i <= 160 {
		return basis[:i]
	}
	if len(basis) <= 160 {
		return strings.TrimSuffix(basis, ".")
	}
	if cut := strings.LastIndex(basis[:157], " "); cut >= 40 {
		return basis[:cut] + "..."
	}
	return decision.Clip(basis, 160) // no word break: never inside a UTF-8 sequence
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

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
