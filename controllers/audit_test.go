package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
)

var auditNow = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const (
	dgKesl  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	dgClean = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	dgNone  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	dgTar   = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

// records are hand-made scan records: kesl from its .deb, a tarball under /opt/kaspersky, and
// a clean image.
type records map[string]*cache.Record

func (r records) get(digest string) (*cache.Record, bool) {
	rec, ok := r[digest]
	return rec, ok
}

func sampleRecords() records {
	kesl := match.Package{Name: "kesl", Version: "12.1.0-1187", Type: "deb", PURL: "pkg:deb/debian/kesl@12.1.0-1187",
		Fields: []match.Field{{Name: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"}}}
	bash := match.Package{Name: "bash", Version: "5.2", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Matthias Klose <doko@debian.org>"}}}
	return records{
		dgKesl:  {Digest: dgKesl, Inventories: []match.Inventory{{Packages: []match.Package{bash, kesl}, Files: []match.File{{Path: "/opt/kaspersky/kesl/bin/kesl-control"}}}}},
		dgClean: {Digest: dgClean, Inventories: []match.Inventory{{Packages: []match.Package{bash}}}},
		dgTar:   {Digest: dgTar, Inventories: []match.Inventory{{Files: []match.File{{Path: "/opt/kaspersky/ScanEngine/bin/kavehost"}}}}},
	}
}

func compile(t testing.TB, spec v1alpha1.VendorPolicySpec) *policy.Compiled {
	t.Helper()
	if len(spec.Vendors) == 0 {
		spec.Vendors = []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}
	}
	c, err := policy.Compile(&v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kaspersky", Generation: 3}, Spec: spec}, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pv builds a pod view; each container is "name=image@digest" (digest may be empty).
func pv(ns, pod, kind, workload string, containers ...string) podView {
	p := podView{Namespace: ns, Name: pod, Workload: WorkloadRef{Kind: kind, Name: workload, UID: types.UID(ns + "/" + kind + "/" + workload)}}
	for _, c := range containers {
		name, rest, _ := strings.Cut(c, "=")
		image, digest, _ := strings.Cut(rest, "|")
		p.Containers = append(p.Containers, newContainerView(container{Name: name, Image: image}, digest))
	}
	return p
}

func TestEvaluate(t *testing.T) {
	recs := sampleRecords()
	nsLabels := map[string]map[string]string{"shop": {"team": "shop"}, "ops": {"team": "ops"}, "kube-system": nil}
	cluster := []podView{
		pv("shop", "web-7d9-b", "Deployment", "web", "app=reg/web:1|"+dgKesl, "proxy=reg/envoy:1|"+dgClean),
		pv("shop", "web-7d9-a", "Deployment", "web", "app=reg/web:1|"+dgKesl, "proxy=reg/envoy:1|"+dgClean),
		pv("shop", "scanner", "Pod", "scanner", "engine=reg/kse:2|"+dgTar),
		pv("ops", "batch-1", "CronJob", "batch", "job=reg/batch:1|"+dgNone),   // not scanned yet
		pv("ops", "batch-2", "CronJob", "batch", "job=reg/batch:1|"+dgNone),   // same digest: one unchecked image
		pv("ops", "tagonly", "Pod", "tagonly", "main=reg/unresolved:latest|"), // tag never resolved
		pv("kube-system", "kesl-agent", "DaemonSet", "kesl", "agent=reg/web:1|"+dgKesl),
	}
	exempt := []string{"kube-system", "embargo-system"}

	tests := map[string]struct {
		spec           v1alpha1.VendorPolicySpec
		now            time.Time
		wantTotal      int
		wantWorkloads  int
		wantPods       int
		wantImages     int
		wantUnchecked  int
		wantViolations []string // ns/kind/name/container/vendor/pod[/excepted]
		wantGauge      map[nsVendor]int
	}{
		"everything": {
			wantTotal: 3, wantWorkloads: 2, wantPods: 3, wantImages: 2, wantUnchecked: 2,
			wantViolations: []string{"shop/Deployment/web/app/AO Kaspersky Lab/web-7d9-a", "shop/Pod/scanner/engine/AO Kaspersky Lab/scanner"},
			wantGauge:      map[nsVendor]int{{"shop", "AO Kaspersky Lab"}: 3},
		},
		"namespace selector": {
			spec:      v1alpha1.VendorPolicySpec{Match: v1alpha1.MatchSpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "ops"}}}},
			wantTotal: 0, wantUnchecked: 2,
			wantGauge: map[nsVendor]int{},
		},
		"excluded namespace": {
			spec:      v1alpha1.VendorPolicySpec{Match: v1alpha1.MatchSpec{ExcludedNamespaces: []string{"ops"}}},
			wantTotal: 3, wantWorkloads: 2, wantPods: 3, wantImages: 2, wantUnchecked: 0,
			wantViolations: []string{"shop/Deployment/web/app/AO Kaspersky Lab/web-7d9-a", "shop/Pod/scanner/engine/AO Kaspersky Lab/scanner"},
			wantGauge:      map[nsVendor]int{{"shop", "AO Kaspersky Lab"}: 3},
		},
		"exception lists but does not count": {
			spec: v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Images: []string{"reg/web:*"}, Reason: "W-1",
				Expires: &metav1.Time{Time: auditNow.Add(time.Hour)}}}},
			wantTotal: 1, wantWorkloads: 1, wantPods: 1, wantImages: 1, wantUnchecked: 2,
			wantViolations: []string{"shop/Pod/scanner/engine/AO Kaspersky Lab/scanner", "shop/Deployment/web/app/AO Kaspersky Lab/web-7d9-a/excepted"},
			wantGauge:      map[nsVendor]int{{"shop", "AO Kaspersky Lab"}: 1},
		},
		"exception by pinned digest": {
			spec:      v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Images: []string{"reg/kse@" + dgTar}, Reason: "W-2"}}},
			wantTotal: 2, wantWorkloads: 1, wantPods: 2, wantImages: 1, wantUnchecked: 2,
			wantViolations: []string{"shop/Deployment/web/app/AO Kaspersky Lab/web-7d9-a", "shop/Pod/scanner/engine/AO Kaspersky Lab/scanner/excepted"},
			wantGauge:      map[nsVendor]int{{"shop", "AO Kaspersky Lab"}: 2},
		},
		"expired exception": {
			spec: v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Images: []string{"reg/web:*"}, Reason: "W-1",
				Expires: &metav1.Time{Time: auditNow}}}},
			wantTotal: 3, wantWorkloads: 2, wantPods: 3, wantImages: 2, wantUnchecked: 2,
			wantViolations: []string{"shop/Deployment/web/app/AO Kaspersky Lab/web-7d9-a", "shop/Pod/scanner/engine/AO Kaspersky Lab/scanner"},
			wantGauge:      map[nsVendor]int{{"shop", "AO Kaspersky Lab"}: 3},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := compile(t, tc.spec)
			ev := evaluate(c, cluster, nsLabels, exempt, recs.get, auditNow)
			got := []int{ev.Total, ev.Workloads, ev.Pods, ev.Images, ev.Unchecked}
			want := []int{tc.wantTotal, tc.wantWorkloads, tc.wantPods, tc.wantImages, tc.wantUnchecked}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("total, workloads, pods, images, unchecked (-want +got):\n%s", diff)
			}
			var vs []string
			for _, v := range ev.Violations {
				s := strings.Join([]string{v.Namespace, v.WorkloadKind, v.WorkloadName, v.Container, v.Vendor, v.Pod}, "/")
				if v.Excepted {
					s += "/excepted"
				}
				vs = append(vs, s)
			}
			if diff := cmp.Diff(tc.wantViolations, vs); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantGauge, ev.ByNamespaceVendor, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("gauge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateEvidence(t *testing.T) {
	ev := evaluate(compile(t, v1alpha1.VendorPolicySpec{}), []podView{pv("shop", "p", "Pod", "p", "app=reg/web:1|"+dgKesl)}, nil, nil, sampleRecords().get, auditNow)
	want := v1alpha1.Violation{Namespace: "shop", WorkloadKind: "Pod", WorkloadName: "p", Pod: "p", Container: "app", Image: "reg/web:1",
		Digest: dgKesl, Vendor: "AO Kaspersky Lab", Package: "kesl 12.1.0-1187", Evidence: `dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`}
	if len(ev.Violations) != 1 {
		t.Fatalf("violations: %+v", ev.Violations)
	}
	// the package finding is preferred over the path finding of the same vendor
	if diff := cmp.Diff(want, ev.Violations[0], cmpopts.IgnoreFields(v1alpha1.Violation{}, "Evidence")); diff != "" {
		t.Errorf("violation (-want +got):\n%s", diff)
	}
	if !strings.Contains(ev.Violations[0].Evidence, "Kaspersky") {
		t.Errorf("evidence %q", ev.Violations[0].Evidence)
	}
	if len(ev.Offenders) != 1 || ev.Offenders[0].Workload.Name != "p" {
		t.Errorf("offenders: %+v", ev.Offenders)
	}
}

func TestStatusCapAndOrder(t *testing.T) {
	var cluster []podView
	for i := range 70 {
		cluster = append(cluster, pv(fmt.Sprintf("ns-%02d", 69-i), "p", "Pod", "p", "app=reg/web:1|"+dgKesl))
	}
	c := compile(t, v1alpha1.VendorPolicySpec{})
	ev := evaluate(c, cluster, nil, nil, sampleRecords().get, auditNow)
	st := auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, c, ev, auditNow)
	if st.TotalViolations != 70 || len(st.Violations) != MaxListedViolations || !st.Truncated {
		t.Fatalf("total %d, listed %d, truncated %v", st.TotalViolations, len(st.Violations), st.Truncated)
	}
	if st.Violations[0].Namespace != "ns-00" || st.Violations[49].Namespace != "ns-49" {
		t.Errorf("not sorted: first %s, last %s", st.Violations[0].Namespace, st.Violations[49].Namespace)
	}
	// the order of the pod list does not matter
	for i, j := 0, len(cluster)-1; i < j; i, j = i+1, j-1 {
		cluster[i], cluster[j] = cluster[j], cluster[i]
	}
	st2 := auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, c, evaluate(c, cluster, nil, nil, sampleRecords().get, auditNow), auditNow)
	if statusChanged(&st, &st2) {
		t.Errorf("status depends on the pod order: %s", cmp.Diff(st, st2))
	}
}

func TestAuditStatusConditions(t *testing.T) {
	from := auditNow.Add(30 * 24 * time.Hour)
	c := compile(t, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit, Rollout: []v1alpha1.RolloutStep{{Action: v1alpha1.ActionDeny, From: metav1.NewTime(from)}}})
	tests := map[string]struct {
		ev         evaluation
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		"violations":           {evaluation{Total: 2, Workloads: 1, Images: 1, Unchecked: 1}, metav1.ConditionFalse, v1alpha1.VendorPolicyViolationsReason},
		"unchecked only":       {evaluation{Unchecked: 3}, metav1.ConditionUnknown, v1alpha1.VendorPolicyUncheckedReason},
		"nothing banned found": {evaluation{}, metav1.ConditionTrue, v1alpha1.VendorPolicyNoViolationsReason},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, c, &tc.ev, auditNow)
			compliant := meta.FindStatusCondition(st.Conditions, v1alpha1.VendorPolicyCompliantCondition)
			ready := meta.FindStatusCondition(st.Conditions, v1alpha1.VendorPolicyReadyCondition)
			if compliant == nil || compliant.Status != tc.wantStatus || compliant.Reason != tc.wantReason || compliant.ObservedGeneration != 3 {
				t.Errorf("Compliant = %+v, want %s/%s", compliant, tc.wantStatus, tc.wantReason)
			}
			if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != v1alpha1.VendorPolicyCompiledReason {
				t.Errorf("Ready = %+v", ready)
			}
			if st.Action != v1alpha1.ActionAudit || st.NextAction != v1alpha1.ActionDeny || st.NextActionAt == nil || !st.NextActionAt.Time.Equal(from) || st.ObservedGeneration != 3 {
				t.Errorf("action %s next %s at %v gen %d", st.Action, st.NextAction, st.NextActionAt, st.ObservedGeneration)
			}
		})
	}
}

func TestStatusChangedOnlyOnSubstance(t *testing.T) {
	c := compile(t, v1alpha1.VendorPolicySpec{})
	ev := &evaluation{Total: 1, Workloads: 1, Pods: 1, Images: 1}
	first := auditStatus(&v1alpha1.VendorPolicyStatus{}, 1, c, ev, auditNow)
	first.LastAuditTime = &metav1.Time{Time: auditNow}

	// an hour later the same findings: nothing to write, and the transition time stays
	again := auditStatus(&first, 1, c, ev, auditNow.Add(time.Hour))
	if statusChanged(&first, &again) {
		t.Errorf("same audit an hour later changed the status: %s", cmp.Diff(first, again))
	}
	again.LastAuditTime = &metav1.Time{Time: auditNow.Add(time.Hour)}
	if statusChanged(&first, &again) {
		t.Error("lastAuditTime alone counted as a change")
	}

	fixed := auditStatus(&first, 1, c, &evaluation{}, auditNow.Add(2*time.Hour))
	if !statusChanged(&first, &fixed) {
		t.Fatal("fixing the last violation did not change the status")
	}
	cond := meta.FindStatusCondition(fixed.Conditions, v1alpha1.VendorPolicyCompliantCondition)
	if cond.Status != metav1.ConditionTrue || !cond.LastTransitionTime.Time.Equal(auditNow.Add(2*time.Hour)) {
		t.Errorf("Compliant after fix: %+v", cond)
	}
	if newGen := auditStatus(&first, 2, c, ev, auditNow); !statusChanged(&first, &newGen) {
		t.Error("a new generation did not change observedGeneration")
	}
}

func TestInvalidStatus(t *testing.T) {
	st := invalidStatus(&v1alpha1.VendorPolicyStatus{TotalViolations: 4, Action: v1alpha1.ActionDeny}, 5, fmt.Errorf("spec.vendors[0].catalog: %q is not a built-in entry", "kasperski"), auditNow)
	ready := meta.FindStatusCondition(st.Conditions, v1alpha1.VendorPolicyReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.VendorPolicyInvalidReason || !strings.Contains(ready.Message, "kasperski") {
		t.Errorf("Ready = %+v", ready)
	}
	if st.TotalViolations != 0 || st.Action != "" || st.ObservedGeneration != 5 {
		t.Errorf("invalid policy keeps counts or action: %+v", st)
	}
}

func TestRequeueAfter(t *testing.T) {
	resync := 10 * time.Minute
	tests := map[string]struct {
		spec v1alpha1.VendorPolicySpec
		want time.Duration
	}{
		"nothing dated": {v1alpha1.VendorPolicySpec{}, resync},
		"step ahead": {v1alpha1.VendorPolicySpec{Rollout: []v1alpha1.RolloutStep{
			{Action: v1alpha1.ActionAudit, From: metav1.NewTime(auditNow.Add(-time.Hour))},
			{Action: v1alpha1.ActionWarn, From: metav1.NewTime(auditNow.Add(3 * time.Minute))},
		}}, 3 * time.Minute},
		"step far ahead: resync": {v1alpha1.VendorPolicySpec{Rollout: []v1alpha1.RolloutStep{
			{Action: v1alpha1.ActionWarn, From: metav1.NewTime(auditNow.Add(30 * 24 * time.Hour))},
		}}, resync},
		"expiry before step": {v1alpha1.VendorPolicySpec{
			Rollout:    []v1alpha1.RolloutStep{{Action: v1alpha1.ActionWarn, From: metav1.NewTime(auditNow.Add(5 * time.Minute))}},
			Exceptions: []v1alpha1.Exception{{Namespaces: []string{"a"}, Reason: "r", Expires: &metav1.Time{Time: auditNow.Add(90 * time.Second)}}},
		}, 90 * time.Second},
		"expired exceptions ignored": {v1alpha1.VendorPolicySpec{
			Exceptions: []v1alpha1.Exception{{Namespaces: []string{"a"}, Reason: "r", Expires: &metav1.Time{Time: auditNow.Add(-time.Second)}}},
		}, resync},
		"step passed": {v1alpha1.VendorPolicySpec{Rollout: []v1alpha1.RolloutStep{
			{Action: v1alpha1.ActionWarn, From: metav1.NewTime(auditNow)},
		}}, resync},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := requeueAfter(compile(t, tc.spec), auditNow, resync); got != tc.want {
				t.Errorf("requeueAfter = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestStatusUnusableAttachedSBOMs: attached SBOMs that could not be used are counted once per
// image digest and document, listed up to the cap, named in the Compliant condition, and only
// for policies that read attached SBOMs; they change no verdict.
func TestStatusUnusableAttachedSBOMs(t *testing.T) {
	recs := sampleRecords()
	bad := func(platform, digest, err string) match.Inventory {
		return match.Inventory{Platform: platform, Source: &match.Source{Kind: match.SourceReferrer, Digest: digest, Error: err}}
	}
	keslRec := *recs[dgKesl]
	keslRec.Inventories = append(slices.Clone(keslRec.Inventories),
		bad("linux/amd64", "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too large: 41943083 bytes, over the 40 MiB limit"),
		bad("", "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "not an SBOM: "+strings.Repeat("x", 400)))
	recs[dgKesl] = &keslRec
	var manyInvs []match.Inventory
	for i := range 12 {
		manyInvs = append(manyInvs, bad("linux/arm64", fmt.Sprintf("sha256:%064x", i), "not an SBOM"))
	}
	recs[dgClean] = &cache.Record{Digest: dgClean, Inventories: append(slices.Clone(recs[dgClean].Inventories), manyInvs...)}
	cluster := []podView{
		// two pods, two names of one digest: its documents count once, under the smaller name
		pv("shop", "web-b", "Deployment", "web", "app=reg/web:2|"+dgKesl),
		pv("shop", "web-a", "Deployment", "web", "app=reg/web:1|"+dgKesl),
	}

	evidence := compile(t, v1alpha1.VendorPolicySpec{})
	ev := evaluate(evidence, cluster, nil, nil, recs.get, auditNow)
	st := auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, evidence, ev, auditNow)
	want := []v1alpha1.AttachedSBOMError{
		{Image: "reg/web:1", Digest: dgKesl, Message: "attached SBOM sha256:aaaaaaaaaaaa (oci-referrer) of linux/amd64 unusable: too large: 41943083 bytes, over the 40 MiB limit"},
		{Image: "reg/web:1", Digest: dgKesl, Message: decision.Clip("attached SBOM sha256:bbbbbbbbbbbb (oci-referrer) of the index unusable: not an SBOM: "+strings.Repeat("x", 400), maxAttachedSBOMMessage)},
	}
	if diff := cmp.Diff(want, st.AttachedSBOMErrors); diff != "" || st.UnusableAttachedSBOMs != 2 {
		t.Errorf("unusableAttachedSBOMs %d (want 2), attachedSBOMErrors (-want +got):\n%s", st.UnusableAttachedSBOMs, diff)
	}
	if st.TotalViolations != 2 {
		t.Errorf("totalViolations %d: the image's own kesl must still count", st.TotalViolations)
	}
	compliant := meta.FindStatusCondition(st.Conditions, v1alpha1.VendorPolicyCompliantCondition)
	if compliant.Reason != v1alpha1.VendorPolicyViolationsReason || !strings.HasSuffix(compliant.Message, "; 2 attached SBOMs could not be used (status.attachedSBOMErrors)") {
		t.Errorf("Compliant = %+v, want the violations and the unusable SBOMs", compliant)
	}

	// more than the cap: all counted, the first ten listed; no violation, still Compliant
	clean := []podView{pv("shop", "proxy", "Pod", "proxy", "proxy=reg/envoy:1|"+dgClean)}
	st = auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, evidence, evaluate(evidence, clean, nil, nil, recs.get, auditNow), auditNow)
	if st.UnusableAttachedSBOMs != 12 || len(st.AttachedSBOMErrors) != MaxListedAttachedSBOMErrors || !strings.Contains(st.AttachedSBOMErrors[0].Message, fmt.Sprintf("sha256:%012x", 0)) {
		t.Errorf("unusableAttachedSBOMs %d (want 12), listed %d (want %d): %+v", st.UnusableAttachedSBOMs, len(st.AttachedSBOMErrors), MaxListedAttachedSBOMErrors, st.AttachedSBOMErrors)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "12 attached SBOMs could not be used") {
		t.Errorf("Compliant = %+v, want True, naming 12 unusable SBOMs", c)
	}

	// a policy that ignores attached SBOMs does not mention them
	ignore := compile(t, v1alpha1.VendorPolicySpec{SBOM: v1alpha1.SBOMSpec{Attached: v1alpha1.AttachedSBOMIgnore}})
	st = auditStatus(&v1alpha1.VendorPolicyStatus{}, 3, ignore, evaluate(ignore, append(cluster, clean...), nil, nil, recs.get, auditNow), auditNow)
	if st.UnusableAttachedSBOMs != 0 || st.AttachedSBOMErrors != nil {
		t.Errorf("Ignore policy: unusableAttachedSBOMs %d, attachedSBOMErrors %+v, want none", st.UnusableAttachedSBOMs, st.AttachedSBOMErrors)
	}
}
