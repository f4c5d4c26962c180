// Package decision is where Embargo judges: compiled policies x a workload's containers x each
// image's scan record (or the error that stopped the scan) x the namespace x the instant ->
// Decision. Admission, the audit and `embargo scan` phrase a Decision; none of them decides.
//
// It is pure: no Kubernetes client, no network, no clock; the caller chooses which policies
// select the workload and passes the instant.
package decision

import (
	"errors"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Outcome is what a decision (or one part of it) does to the workload, weakest first.
type Outcome int

// Outcomes.
const (
	// Allow: nothing to say.
	Allow Outcome = iota
	// Audit: admitted and recorded.
	Audit
	// Warn: admitted with a warning.
	Warn
	// Deny: rejected.
	Deny
)

func (o Outcome) String() string {
	switch o {
	case Audit:
		return "Audit"
	case Warn:
		return "Warn"
	case Deny:
		return "Deny"
	}
	return "Allow"
}

// outcomeOf maps a policy action to what an enforced finding under it does.
func outcomeOf(a v1alpha1.Action) Outcome {
	switch a {
	case v1alpha1.ActionDeny:
		return Deny
	case v1alpha1.ActionWarn:
		return Warn
	case v1alpha1.ActionAudit:
		return Audit
	}
	return Allow
}

// ErrNotScanned is the scan error of an image whose record is not known yet (the audit, before
// the background scan has answered).
var ErrNotScanned = errors.New("not scanned yet")

// Container is one container of the workload with what is known of its image.
type Container struct {
	// Kind is "container", "init container" or "ephemeral container".
	Kind  string
	Name  string
	Image string
	// Digest is the image's digest ("" when it did not resolve).
	Digest string
	// Forms are the names of the image an exception may match: as written, repository@digest,
	// the runtime's repository@digest. Image is always tried.
	Forms []string
	// Inventories are the scan record's; Err is why there is no record (ErrNotScanned when it
	// simply is not known yet). Err wins over Inventories.
	Inventories []match.Inventory
	Err         error
}

// PodContainers lists a pod spec's init, regular and ephemeral containers, in that order, with
// Kind, Name and Image set: the one walk admission and the audit share.
func PodContainers(spec *corev1.PodSpec) []Container {
	out := make([]Container, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for _, c := range spec.InitContainers {
		out = append(out, Container{Kind: "init container", Name: c.Name, Image: c.Image})
	}
	for _, c := range spec.Containers {
		out = append(out, Container{Kind: "container", Name: c.Name, Image: c.Image})
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, Container{Kind: "ephemeral container", Name: c.Name, Image: c.Image})
	}
	return out
}

// Input is everything a decision depends on.
type Input struct {
	// Policies are those that select the workload, in the order to report them.
	Policies   []*policy.Compiled
	Namespace  string
	Containers []Container
	Now        time.Time
}

// Decision is the judgement of one workload at one instant.
type Decision struct {
	Namespace string
	Policies  []PolicyDecision
	// Outcome is the strongest of the policies' outcomes.
	Outcome Outcome
}

// PolicyDecision is one policy's judgement.
type PolicyDecision struct {
	Policy string
	// Action is the action in force at the instant; Since is when its rollout step began (nil:
	// spec.action applies); Next is the step after the instant, if any.
	Action v1alpha1.Action
	Since  *time.Time
	Next   *policy.Step
	// Kept are the findings the action applies to; Excepted those an exception covers.
	Kept     []Finding
	Excepted []Finding
	// ScanErrors are containers that could not be checked, with what onScanError made of them.
	ScanErrors []ScanError
	// Unusable are the SBOMs attached to the containers' images that the policy would have
	// counted (spec.sbom.attached: Evidence) but that could not be read. They change no
	// outcome: the judgement stands on the rest of the evidence, and this says what it lacked.
	Unusable []Unusable
	// Outcome is the strongest outcome of Kept and ScanErrors.
	Outcome Outcome
}

// Finding is one finding of one policy in one container.
type Finding struct {
	match.Finding
	Container *Container
	// Basis is the legal basis of the vendor that produced the finding (may be empty).
	Basis []string
	// Exception is the exception that covers the finding, nil when it is kept.
	Exception *v1alpha1.Exception
	// Outcome is what the finding does: the action's for a kept finding, Allow when excepted.
	Outcome Outcome
}

// ScanError is one container a policy could not judge.
type ScanError struct {
	Container *Container
	Err       error
	// Reason is the error's kind (registry.Kind, "ScanError" when untyped, "NotScanned").
	Reason string
	// Detail is what the error says beyond the image and Reason, with credentials and query
	// strings cut from its URLs (registry.Detail): the limit exceeded, the registry's answer.
	// Messages quote it, never Err.
	Detail string
	// OnScanError is the policy's setting; Outcome is what it made of the error: Deny under
	// onScanError Deny, Warn (admitted with a warning) under Allow.
	OnScanError v1alpha1.ScanErrorAction
	Outcome     Outcome
}

// Unusable is one attached SBOM of a container's image that could not be used.
type Unusable struct {
	Container *Container
	// Source is the document, with the reason in its Error.
	Source *match.Source
	// Message names the document, its platform and the reason: match.Inventory.Unusable.
	Message string
}

// Decide judges in.Containers with in.Policies at in.Now.
func Decide(in Input) Decision {
	d := Decision{Namespace: in.Namespace, Policies: make([]PolicyDecision, 0, len(in.Policies))}
	for _, c := range in.Policies {
		pd := decidePolicy(c, in)
		d.Outcome = max(d.Outcome, pd.Outcome)
		d.Policies = append(d.Policies, pd)
	}
	return d
}

func decidePolicy(c *policy.Compiled, in Input) PolicyDecision {
	action, next := c.ActionAt(in.Now)
	pd := PolicyDecision{Policy: c.Name, Action: action, Next: next}
	if cur := c.StepAt(in.Now); cur != nil {
		since := cur.From
		pd.Since = &since
	}
	for i := range in.Containers {
		ct := &in.Containers[i]
		if ct.Err != nil {
			se := ScanError{Container: ct, Err: ct.Err, Reason: Reason(ct.Err), Detail: registry.Detail(ct.Err), OnScanError: c.Spec.OnScanError, Outcome: Warn}
			if c.Spec.OnScanError == v1alpha1.ScanErrorDeny {
				se.Outcome = Deny
			}
			pd.Outcome = max(pd.Outcome, se.Outcome)
			pd.ScanErrors = append(pd.ScanErrors, se)
			continue
		}
		if c.UsesAttached() {
			for j := range ct.Inventories {
				if msg := ct.Inventories[j].Unusable(); msg != "" {
					pd.Unusable = append(pd.Unusable, Unusable{Container: ct, Source: ct.Inventories[j].Source, Message: msg})
				}
			}
		}
		var found []match.Finding
		if ct.Digest != "" {
			found = c.MatchDigest(ct.Digest, ct.Inventories)
		} else {
			found = c.Match(ct.Inventories)
		}
		if len(found) == 0 {
			continue
		}
		exc := c.ExceptionFor(in.Namespace, forms(ct), in.Now)
		for _, f := range found {
			df := Finding{Finding: f, Container: ct, Basis: basis(c, f), Exception: exc}
			if exc != nil {
				pd.Excepted = append(pd.Excepted, df)
				continue
			}
			df.Outcome = outcomeOf(action)
			pd.Outcome = max(pd.Outcome, df.Outcome)
			pd.Kept = append(pd.Kept, df)
		}
	}
	return pd
}

// forms are the names an exception may match for ct, the image as written first.
func forms(ct *Container) []string {
	out := make([]string, 0, len(ct.Forms)+1)
	out = append(out, ct.Image)
	for _, f := range ct.Forms {
		if f != ct.Image {
			out = append(out, f)
		}
	}
	return out
}

// basis is the legal basis of the vendor of c that produced f.
func basis(c *policy.Compiled, f match.Finding) []string {
	for _, v := range c.Vendors {
		if v.Name == f.Vendor && v.Catalog == f.Catalog {
			return v.Basis
		}
	}
	return nil
}

// Reason names the kind of a scan error for messages and conditions.
func Reason(err error) string {
	if errors.Is(err, ErrNotScanned) {
		return "NotScanned"
	}
	if k := registry.KindOf(err); k != "" {
		return string(k)
	}
	return "ScanError"
}

// StrongestAction is the strongest action in force among the policies, findings or not ("" with
// no policy): what admission metrics label a request with.
func (d Decision) StrongestAction() v1alpha1.Action {
	var best v1alpha1.Action
	for _, p := range d.Policies {
		if best == "" || outcomeOf(p.Action) > outcomeOf(best) {
			best = p.Action
		}
	}
	return best
}

// Kept returns every policy's kept findings, policy by policy.
func (d Decision) Kept() []Finding {
	var out []Finding
	for _, p := range d.Policies {
		out = append(out, p.Kept...)
	}
	return out
}

// Denying returns the policies whose outcome is Deny, in order.
func (d Decision) Denying() []*PolicyDecision {
	var out []*PolicyDecision
	for i := range d.Policies {
		if d.Policies[i].Outcome == Deny {
			out = append(out, &d.Policies[i])
		}
	}
	return out
}

// ByContainer splits findings by container, keeping their order: what a message or a status
// says per container.
func ByContainer(fs []Finding) [][]Finding {
	var out [][]Finding
	for _, f := range fs {
		if n := len(out); n > 0 && out[n-1][0].Container == f.Container {
			out[n-1] = append(out[n-1], f)
			continue
		}
		out = append(out, []Finding{f})
	}
	return out
}

// Clip shortens s to at most n bytes (n > 3), ending in "..." when it cut, and never inside a
// UTF-8 sequence: the admission message and status messages it feeds must stay valid UTF-8.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
