package controllers

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
)

// MaxListedViolations caps VendorPolicy status.violations; the counts are always complete, so the
// status stays small (about 25 KiB) whatever the cluster runs.
const MaxListedViolations = 50

// MaxListedAttachedSBOMErrors caps VendorPolicy status.attachedSBOMErrors, and maxAttachedSBOMMessage
// each one's message; status.unusableAttachedSBOMs counts them all.
const (
	MaxListedAttachedSBOMErrors = 10
	maxAttachedSBOMMessage      = 256
)

// podView is what the audit needs of one pod.
type podView struct {
	Namespace  string
	Name       string
	Labels     map[string]string
	Workload   WorkloadRef
	Containers []containerView
}

// containerView is one container with the digest it runs ("" when not known yet).
type containerView struct {
	Name   string
	Image  string
	Digest string
	// Forms are the names of the image an exception may match: as written, repository@digest,
	// and the runtime's repository@digest.
	Forms []string
}

func newContainerView(c container, digest string) containerView {
	cv := containerView{Name: c.Name, Image: c.Image, Digest: digest, Forms: []string{c.Image}}
	if digest != "" {
		if pinned := repository(c.Image) + "@" + digest; pinned != c.Image {
			cv.Forms = append(cv.Forms, pinned)
		}
	}
	if c.Running != "" && !slices.Contains(cv.Forms, c.Running) {
		cv.Forms = append(cv.Forms, c.Running)
	}
	return cv
}

type nsVendor struct{ Namespace, Vendor string }

// offender is one workload running one banned digest, for the once-only event.
type offender struct {
	Key       string
	Workload  WorkloadRef
	Violation v1alpha1.Violation
}

// evaluation is one policy's verdict over the cluster.
type evaluation struct {
	Total, Workloads, Pods, Images, Unchecked int
	// Violations are all of them, sorted: counted ones first, then excepted ones.
	Violations        []v1alpha1.Violation
	ByNamespaceVendor map[nsVendor]int
	Offenders         []offender
	// Refs are the listed violations' workloads, by workloadKey, for the PolicyReports.
	Refs map[string]WorkloadRef
	// Unusable are the attached SBOMs of selected images that the policy would count but could
	// not use, one per image digest and document, sorted.
	Unusable []v1alpha1.AttachedSBOMError
}

func workloadKey(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
}

// evaluate judges every pod c selects at now. records answers a digest's scan record.
func evaluate(c *policy.Compiled, pods []podView, nsLabels map[string]map[string]string, exempt []string,
	records func(digest string) (*cache.Record, bool), now time.Time) *evaluation {
	ev := &evaluation{ByNamespaceVendor: map[nsVendor]int{}, Refs: map[string]WorkloadRef{}}
	unchecked := map[string]bool{}
	images := map[string]bool{}
	podsSeen := map[string]bool{}
	workloads := map[string]bool{}
	offenders := map[string]int{}
	listed := map[string]int{}
	unusable := map[string]int{}

	for _, p := range pods {
		if !c.Selects(p.Namespace, nsLabels[p.Namespace], p.Labels, exempt) {
			continue
		}
		in := decision.Input{Policies: []*policy.Compiled{c}, Namespace: p.Namespace, Now: now, Containers: make([]decision.Container, 0, len(p.Containers))}
		for _, cv := range p.Containers {
			ct := decision.Container{Kind: "container", Name: cv.Name, Image: cv.Image, Digest: cv.Digest, Forms: cv.Forms, Err: decision.ErrNotScanned}
			if rec, ok := records(cv.Digest); cv.Digest != "" && ok {
				ct.Inventories, ct.Err = rec.Inventories, nil
			}
			in.Containers = append(in.Containers, ct)
		}
		pd := decision.Decide(in).Policies[0]
		for _, u := range pd.Unusable {
			key := u.Container.Digest + "\x00" + u.Source.Kind + "\x00" + u.Source.Digest + "\x00" + u.Message
			if i, ok := unusable[key]; ok {
				if u.Container.Image < ev.Unusable[i].Image { // a stable name, whatever the pod order
					ev.Unusable[i].Image = u.Container.Image
				}
				continue
			}
			unusable[key] = len(ev.Unusable)
			ev.Unusable = append(ev.Unusable, v1alpha1.AttachedSBOMError{Image: u.Container.Image, Digest: u.Container.Digest, Message: u.Message})
		}
		for _, se := range pd.ScanErrors {
			if se.Container.Digest == "" {
				unchecked["image "+se.Container.Image] = true
			} else {
				unchecked[se.Container.Digest] = true
			}
		}
		for _, group := range [][]decision.Finding{pd.Excepted, pd.Kept} {
			for _, fs := range decision.ByContainer(group) {
				cv := fs[0].Container
				excepted := fs[0].Exception != nil
				perVendor := representatives(fs)
				for _, f := range perVendor {
					v := v1alpha1.Violation{
						Namespace: p.Namespace, WorkloadKind: p.Workload.Kind, WorkloadName: p.Workload.Name,
						Pod: p.Name, Container: cv.Name, Image: cv.Image, Digest: cv.Digest,
						Vendor: f.Vendor, Package: f.Package.String(), Evidence: f.Evidence[0].String(), Excepted: excepted,
					}
					key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s", v.Namespace, v.WorkloadKind, v.WorkloadName, v.Container, v.Digest, v.Vendor)
					if i, ok := listed[key]; ok {
						if v.Pod < ev.Violations[i].Pod { // a stable example pod, whatever the list order
							ev.Violations[i].Pod = v.Pod
						}
						continue
					}
					listed[key] = len(ev.Violations)
					ev.Violations = append(ev.Violations, v)
					ev.Refs[workloadKey(v.Namespace, v.WorkloadKind, v.WorkloadName)] = p.Workload
				}
				if excepted {
					continue
				}
				ev.Total++
				for _, f := range perVendor {
					ev.ByNamespaceVendor[nsVendor{p.Namespace, f.Vendor}]++
				}
				podsSeen[p.Namespace+"/"+p.Name] = true
				workloads[p.Namespace+"/"+p.Workload.Kind+"/"+p.Workload.Name] = true
				images[cv.Digest] = true
				okey := cv.Digest + "\x00" + string(p.Workload.UID)
				if _, ok := offenders[okey]; !ok {
					offenders[okey] = len(ev.Offenders)
					ev.Offenders = append(ev.Offenders, offender{Key: okey, Workload: p.Workload, Violation: v1alpha1.Violation{
						Namespace: p.Namespace, WorkloadKind: p.Workload.Kind, WorkloadName: p.Workload.Name, Pod: p.Name,
						Container: cv.Name, Image: cv.Image, Digest: cv.Digest, Vendor: perVendor[0].Vendor,
						Package: perVendor[0].Package.String(), Evidence: perVendor[0].Evidence[0].String(),
					}})
				}
			}
		}
	}
	ev.Pods, ev.Workloads, ev.Images, ev.Unchecked = len(podsSeen), len(workloads), len(images), len(unchecked)
	slices.SortFunc(ev.Violations, compareViolations)
	slices.SortFunc(ev.Unusable, func(a, b v1alpha1.AttachedSBOMError) int {
		return cmp.Or(cmp.Compare(a.Digest, b.Digest), cmp.Compare(a.Message, b.Message), cmp.Compare(a.Image, b.Image))
	})
	return ev
}

// representatives returns one finding per vendor, in vendor order: one naming a package when
// there is one, as that says most to whoever reads the status.
func representatives(fs []decision.Finding) []match.Finding {
	var out []match.Finding
	for _, df := range fs {
		f := df.Finding
		i := slices.IndexFunc(out, func(o match.Finding) bool { return o.Vendor == f.Vendor })
		switch {
		case i < 0:
			out = append(out, f)
		case out[i].Package == nil && f.Package != nil:
			out[i] = f
		}
	}
	slices.SortStableFunc(out, func(a, b match.Finding) int { return cmp.Compare(a.Vendor, b.Vendor) })
	return out
}

func compareViolations(a, b v1alpha1.Violation) int {
	excepted := func(v v1alpha1.Violation) int {
		if v.Excepted {
			return 1
		}
		return 0
	}
	return cmp.Or(
		cmp.Compare(excepted(a), excepted(b)),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.WorkloadKind, b.WorkloadKind),
		cmp.Compare(a.WorkloadName, b.WorkloadName),
		cmp.Compare(a.Container, b.Container),
		cmp.Compare(a.Vendor, b.Vendor),
		cmp.Compare(a.Digest, b.Digest),
		cmp.Compare(a.Pod, b.Pod),
	)
}

// auditStatus is the status the policy should have after ev. LastAuditTime is left as in old:
// the caller stamps it only when something else changed.
func auditStatus(old *v1alpha1.VendorPolicyStatus, generation int64, c *policy.Compiled, ev *evaluation, now time.Time) v1alpha1.VendorPolicyStatus {
	st := v1alpha1.VendorPolicyStatus{
		Conditions:            cloneConditions(old.Conditions),
		ObservedGeneration:    generation,
		TotalViolations:       ev.Total,
		ViolatingWorkloads:    ev.Workloads,
		ViolatingPods:         ev.Pods,
		ViolatingImages:       ev.Images,
		UncheckedImages:       ev.Unchecked,
		UnusableAttachedSBOMs: len(ev.Unusable),
		LastAuditTime:         old.LastAuditTime,
	}
	for _, u := range ev.Unusable[:min(len(ev.Unusable), MaxListedAttachedSBOMErrors)] {
		u.Message = decision.Clip(u.Message, maxAttachedSBOMMessage)
		st.AttachedSBOMErrors = append(st.AttachedSBOMErrors, u)
	}
	pd := decision.Decide(decision.Input{Policies: []*policy.Compiled{c}, Now: now}).Policies[0]
	action := pd.Action
	st.Action = action
	if pd.Since != nil {
		st.ActionSince = &metav1.Time{Time: *pd.Since}
	}
	if pd.Next != nil {
		st.NextAction = pd.Next.Action
		st.NextActionAt = &metav1.Time{Time: pd.Next.From}
	}
	if len(ev.Violations) > MaxListedViolations {
		st.Violations = slices.Clone(ev.Violations[:MaxListedViolations])
		st.Truncated = true
	} else if len(ev.Violations) > 0 {
		st.Violations = slices.Clone(ev.Violations)
	}

	setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyReadyCondition, metav1.ConditionTrue,
		v1alpha1.VendorPolicyCompiledReason, "The policy compiled and the audit completed")
	// Unusable attached SBOMs change no verdict (the images are judged on the rest of their
	// evidence), so they change no condition's status either: the message says what it lacked.
	var lacking string
	if n := len(ev.Unusable); n > 0 {
		lacking = fmt.Sprintf("; %d attached SBOMs could not be used (status.attachedSBOMErrors)", n)
	}
	switch {
	case ev.Total > 0:
		msg := fmt.Sprintf("%d containers in %d workloads run banned-vendor software (%d images); action now: %s", ev.Total, ev.Workloads, ev.Images, action)
		if ev.Unchecked > 0 {
			msg += fmt.Sprintf("; %d images could not be checked", ev.Unchecked)
		}
		setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyCompliantCondition, metav1.ConditionFalse, v1alpha1.VendorPolicyViolationsReason, msg+lacking)
	case ev.Unchecked > 0:
		setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyCompliantCondition, metav1.ConditionUnknown, v1alpha1.VendorPolicyUncheckedReason,
			fmt.Sprintf("No violations found, but %d images are not scanned yet or could not be scanned", ev.Unchecked)+lacking)
	default:
		setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyCompliantCondition, metav1.ConditionTrue, v1alpha1.VendorPolicyNoViolationsReason,
			"No selected workload runs banned-vendor software"+lacking)
	}
	return st
}

// invalidStatus is the status of a policy that does not compile: nothing is enforced or
// counted until it is fixed.
func invalidStatus(old *v1alpha1.VendorPolicyStatus, generation int64, compileErr error, now time.Time) v1alpha1.VendorPolicyStatus {
	st := v1alpha1.VendorPolicyStatus{
		Conditions:         cloneConditions(old.Conditions),
		ObservedGeneration: generation,
		LastAuditTime:      old.LastAuditTime,
	}
	setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyReadyCondition, metav1.ConditionFalse, v1alpha1.VendorPolicyInvalidReason, compileErr.Error())
	setCondition(&st.Conditions, generation, now, v1alpha1.VendorPolicyCompliantCondition, metav1.ConditionUnknown, v1alpha1.VendorPolicyInvalidReason,
		"Not audited: the policy does not compile")
	return st
}

func setCondition(conds *[]metav1.Condition, generation int64, now time.Time, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
		// kept as it is unless the status flips
		LastTransitionTime: metav1.NewTime(now.Truncate(time.Second)),
	})
}

func cloneConditions(cs []metav1.Condition) []metav1.Condition {
	if len(cs) == 0 {
		return nil
	}
	out := make([]metav1.Condition, len(cs))
	for i := range cs {
		cs[i].DeepCopyInto(&out[i])
	}
	return out
}

// statusChanged reports whether a and b differ in anything but LastAuditTime: an audit that
// found the same thing writes nothing.
func statusChanged(a, b *v1alpha1.VendorPolicyStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	x.LastAuditTime, y.LastAuditTime = nil, nil
	return !equality.Semantic.DeepEqual(x, y)
}

// requeueAfter is when the status must be recomputed even if nothing in the cluster changes:
// the next rollout step or exception expiry, or the safety resync, whichever comes first.
func requeueAfter(c *policy.Compiled, now time.Time, resync time.Duration) time.Duration {
	d := resync
	if next := decision.Decide(decision.Input{Policies: []*policy.Compiled{c}, Now: now}).Policies[0].Next; next != nil {
		d = min(d, next.From.Sub(now))
	}
	if e := c.NextExpiry(now); e != nil {
		d = min(d, e.Sub(now))
	}
	return max(d, time.Second)
}
