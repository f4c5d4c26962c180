package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/policy"
)

var auditNow = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const (
	dgKesl  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	dgClean = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	dgNone  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	dgTar   = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

// records is a RecordSource over hand-made inventories: kesl from its .deb, a tarball under
// /opt/kaspersky, and a clean image.
type records map[string]*cache.Record

func (r records) Lookup(_ context.Context, digest string) (*cache.Record, bool) {
	rec, ok := r[digest]
	return rec, ok
}

func (r records) get(digest string) (*cache.Record, bool) {
	return r.Lookup(context.Background(), digest)
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
	p := podView{Namespace: ns, Name: pod, Workload: workloadRef{Kind: kind, Name: workload, UID: types.UID(ns + "/" + kind + "/" + workload)}}
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

// TestReconcileWritesOnce runs the auditor against a fake API: the status is written when it
// changes and not on a resync that finds the same, and the event is emitted once.
func TestReconcileWritesOnce(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u-deploy"}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: "u-rs",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "u-deploy", Controller: new(true)}}}}
	pod := func(name, digest string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("u-" + name),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "u-rs", Controller: new(true)}}},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "reg/web:1"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ImageID: "reg/web@" + digest}}},
		}
	}
	vp := &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kaspersky", Generation: 1},
		Spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}, Action: v1alpha1.ActionAudit}}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, deploy, rs, pod("web-1-a", dgKesl), pod("web-1-b", dgKesl), vp).
		WithStatusSubresource(&v1alpha1.VendorPolicy{}).Build()
	rec := record.NewFakeRecorder(10)
	clk := clocktesting.NewFakePassiveClock(auditNow)
	r := &PolicyAuditor{Client: c, Policies: &policy.Set{Reader: c, Catalog: catalog.Default()}, Records: sampleRecords(),
		Clock: clk, Recorder: rec, Exempt: []string{"kube-system"}}
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "kaspersky"}}

	writes := testutil.ToFloat64(metrics.StatusWrites)
	reconcile := func() v1alpha1.VendorPolicy {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != 10*time.Minute {
			t.Errorf("RequeueAfter = %s, want the 10m resync", res.RequeueAfter)
		}
		var got v1alpha1.VendorPolicy
		if err := c.Get(ctx, req.NamespacedName, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := reconcile()
	if got.Status.TotalViolations != 2 || got.Status.ViolatingWorkloads != 1 || got.Status.ViolatingPods != 2 || len(got.Status.Violations) != 1 {
		t.Fatalf("status: %+v", got.Status)
	}
	if v := got.Status.Violations[0]; v.WorkloadKind != "Deployment" || v.WorkloadName != "web" || v.Pod != "web-1-a" {
		t.Errorf("violation: %+v", v)
	}
	if got.Status.LastAuditTime == nil || !got.Status.LastAuditTime.Time.Equal(auditNow) {
		t.Errorf("lastAuditTime %v", got.Status.LastAuditTime)
	}
	if n := testutil.ToFloat64(metrics.Violations.WithLabelValues("kaspersky", "shop", "AO Kaspersky Lab")); n != 2 {
		t.Errorf("violations gauge %v, want 2", n)
	}

	clk.SetTime(auditNow.Add(time.Hour))
	again := reconcile()
	if again.ResourceVersion != got.ResourceVersion {
		t.Errorf("a resync that found the same wrote the status (lastAuditTime %v)", again.Status.LastAuditTime)
	}
	if d := testutil.ToFloat64(metrics.StatusWrites) - writes; d != 1 {
		t.Errorf("%v status writes, want 1", d)
	}
	if len(rec.Events) != 1 {
		t.Fatalf("%d events, want 1", len(rec.Events))
	}
	if e := <-rec.Events; !strings.HasPrefix(e, "Warning BannedVendorSoftware") || !strings.Contains(e, "kesl") {
		t.Errorf("event %q", e)
	}
}

// TestReconcileInvalidPolicy: a policy that does not compile (one that slipped past admission,
// or whose catalog entry a new version dropped) reports why in Ready and enforces nothing.
func TestReconcileInvalidPolicy(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	vp := &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: "typo", Generation: 2},
		Spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "kasperski"}}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(vp).WithStatusSubresource(&v1alpha1.VendorPolicy{}).Build()
	r := &PolicyAuditor{Client: c, Policies: &policy.Set{Reader: c, Catalog: catalog.Default()}, Records: records{},
		Clock: clocktesting.NewFakePassiveClock(auditNow), Recorder: record.NewFakeRecorder(1)}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "typo"}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.VendorPolicy
	if err := c.Get(context.Background(), req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.VendorPolicyReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.VendorPolicyInvalidReason || !strings.Contains(ready.Message, `"kasperski"`) {
		t.Errorf("Ready = %+v", ready)
	}
	if got.Status.ObservedGeneration != 2 || got.Status.Action != "" {
		t.Errorf("status %+v", got.Status)
	}
}
