package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/policy"
)

// Tests of the controllers' parts on the real API server: the owner walk, and a PolicyAuditor's
// Reconcile called directly.
//
// The in-process manager runs its own PolicyAuditor on every VendorPolicy, so a second auditor
// here must not fight it over a status. It is given the manager's inputs (the real client, the
// engine's scan records, the manager's exempt namespaces), so the two agree on what the status
// is, and it only departs from the manager's view, on purpose, once the manager has written
// its status: then the write under test is the only one that can happen, and the manager puts
// its own view back the next time something triggers it.

// foreign is an owner that is not a real object (a kind Embargo does not follow, or one that
// is gone): owner references need only a name and a UID.
func foreign(name string) client.Object {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uuid.NewUUID()}}
}

// TestOwnerWalk: pods are attributed to their top workload through every controller chain the
// audit follows, and the walk stops at the last object it can vouch for.
func TestOwnerWalk(t *testing.T) {
	t.Parallel()
	samples(t)
	ctx := context.Background()
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	obj := func(kind, name string, owner client.Object, ownerAPI, ownerKind string) client.Object {
		o := workloads[kind](ns, name, cleanImage)
		if owner != nil {
			owned(o, owner, ownerAPI, ownerKind)
		}
		create(t, o)
		return o
	}
	pod := func(name string, owner client.Object, ownerAPI, ownerKind string) *corev1.Pod {
		p := podOf(ns, name, cleanImage, owner, ownerAPI, ownerKind)
		create(t, p)
		return p
	}

	// owners first: a child's reference carries the UID the API server gave its owner
	deploy := obj("Deployment", "web", nil, "", "")
	rs := obj("ReplicaSet", "web-7d9", deploy, "apps/v1", "Deployment")
	orphanRS := obj("ReplicaSet", "lone-5f", nil, "", "")
	cron := obj("CronJob", "nightly", nil, "", "")
	job := obj("Job", "nightly-290", cron, "batch/v1", "CronJob")
	sts := obj("StatefulSet", "db", nil, "", "")
	ds := obj("DaemonSet", "agent", nil, "", "")
	rc := obj("ReplicationController", "legacy", nil, "", "")
	// a ReplicaSet owned by a kind Embargo does not know (an Argo Rollout)
	rolloutRS := obj("ReplicaSet", "canary-1", foreign("canary"), "argoproj.io/v1alpha1", "Rollout")

	solo := pod("solo", nil, "", "")
	// its ReplicaSet was never created (or was deleted): not readable
	orphan := pod("orphan", foreign("gone"), "apps/v1", "ReplicaSet")
	// names the live ReplicaSet web-7d9, but an earlier one's UID
	stale := pod("stale", foreign("web-7d9"), "apps/v1", "ReplicaSet")
	custom := pod("custom", foreign("x"), "example.com/v1", "Thing")

	tests := map[string]struct {
		pod      *corev1.Pod
		wantKind string
		want     client.Object
	}{
		"deployment":             {pod("web-7d9-x", rs, "apps/v1", "ReplicaSet"), "Deployment", deploy},
		"cronjob":                {pod("nightly-290-y", job, "batch/v1", "Job"), "CronJob", cron},
		"statefulset":            {pod("db-0", sts, "apps/v1", "StatefulSet"), "StatefulSet", sts},
		"daemonset":              {pod("agent-z", ds, "apps/v1", "DaemonSet"), "DaemonSet", ds},
		"replicationcontroller":  {pod("legacy-q", rc, "v1", "ReplicationController"), "ReplicationController", rc},
		"bare replicaset":        {pod("lone-5f-a", orphanRS, "apps/v1", "ReplicaSet"), "ReplicaSet", orphanRS},
		"unknown owner kind":     {pod("canary-1-b", rolloutRS, "apps/v1", "ReplicaSet"), "ReplicaSet", rolloutRS},
		"bare pod":               {solo, "Pod", solo},
		"owner not readable":     {orphan, "Pod", orphan},
		"owner replaced by name": {stale, "Pod", stale},
		"foreign controller":     {custom, "Pod", custom},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := controllers.NewOwnerWalker(k8s).Top(ctx, tc.pod)
			if got.Kind != tc.wantKind || got.Name != tc.want.GetName() || got.UID != tc.want.GetUID() {
				t.Errorf("top = %s/%s (%s), want %s/%s (%s)", got.Kind, got.Name, got.UID, tc.wantKind, tc.want.GetName(), tc.want.GetUID())
			}
			if got.Object == nil || got.Object.GetName() != tc.want.GetName() {
				t.Fatalf("event object = %v", got.Object)
			}
			if gvk := got.Object.GetObjectKind().GroupVersionKind(); tc.wantKind != "Pod" && gvk.Kind != tc.wantKind {
				t.Errorf("event object kind %q, want %q (the recorder needs it)", gvk.Kind, tc.wantKind)
			}
		})
	}
}

// countingReader counts Gets, to show the walk is memoized per owner.
type countingReader struct {
	client.Reader
	gets int
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestOwnerWalkMemo: pods of one ReplicaSet cost one walk, however many there are.
func TestOwnerWalkMemo(t *testing.T) {
	t.Parallel()
	samples(t)
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	deploy := workloads["Deployment"](ns, "web", cleanImage)
	create(t, deploy)
	rs := workloads["ReplicaSet"](ns, "web-7d9", cleanImage)
	owned(rs, deploy, "apps/v1", "Deployment")
	create(t, rs)
	pods := make([]*corev1.Pod, 26)
	for i := range pods {
		pods[i] = podOf(ns, "web-7d9-"+string(rune('a'+i)), cleanImage, rs, "apps/v1", "ReplicaSet")
		create(t, pods[i])
	}

	r := &countingReader{Reader: k8s} // the API server itself: no cache in between
	w := controllers.NewOwnerWalker(r)
	for i := range 100 {
		if got := w.Top(context.Background(), pods[i%len(pods)]); got.Kind != "Deployment" || got.Name != "web" || got.UID != deploy.GetUID() {
			t.Fatalf("top = %s/%s (%s)", got.Kind, got.Name, got.UID)
		}
	}
	if r.gets != 2 {
		t.Errorf("100 walks from 26 pods of one ReplicaSet: %d owner reads, want 2", r.gets)
	}
}

// countingClient is the real client, counting the status writes made through it and keeping
// each one's result as the API server returned it, and remembering the resourceVersion of the
// last VendorPolicy read.
type countingClient struct {
	client.Client
	calls   int
	written []*v1alpha1.VendorPolicy
	readRV  string
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	if vp, ok := obj.(*v1alpha1.VendorPolicy); ok && err == nil {
		c.readRV = vp.ResourceVersion
	}
	return err
}

func (c *countingClient) Status() client.SubResourceWriter {
	return countingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type countingStatus struct {
	client.SubResourceWriter
	c *countingClient
}

func (s countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.c.calls++
	err := s.SubResourceWriter.Update(ctx, obj, opts...)
	if vp, ok := obj.(*v1alpha1.VendorPolicy); ok && err == nil {
		s.c.written = append(s.c.written, vp.DeepCopy())
	}
	return err
}

// newAuditor builds a PolicyAuditor with the in-process manager's inputs, but its own client,
// catalog, clock and event recorder.
func newAuditor(c client.Client, cat *catalog.Catalog, now time.Time) (*controllers.PolicyAuditor, *clocktesting.FakePassiveClock, *record.FakeRecorder) {
	clk := clocktesting.NewFakePassiveClock(now)
	rec := record.NewFakeRecorder(10)
	return controllers.NewPolicyAuditor(controllers.PolicyAuditor{
		Client:   c,
		Policies: &policy.Set{Reader: k8s, Catalog: cat},
		Records:  comps.Engine,
		Clock:    clk,
		Recorder: rec,
		Exempt:   []string{OwnNamespace, "kube-system"},
	}), clk, rec
}

// TestReconcileWritesOnce: the auditor writes a policy's status when it changes and not on a
// resync that finds the same (not even lastAuditTime), and tells each offender once.
//
// The policy excepts the workload until tomorrow by the manager's clock; this auditor's clock
// first agrees (the manager's status stands), then passes the expiry (the status must change).
// Not parallel, though it leaves the shared clock alone: while the parallel tests run, the
// manager re-audits every policy every second or so and would put its view back between steps.
func TestReconcileWritesOnce(t *testing.T) {
	samples(t)
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	kesl := digestRef(t, keslImage)
	deployment(t, ns, "web", "web-1", keslImage, kesl, 2)

	managerNow := clock.Now()
	expires := managerNow.Add(24 * time.Hour).Truncate(time.Second)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionAudit,
		Exceptions: []v1alpha1.Exception{{
			Images: []string{reg.Host + "/samples/kesl:*"}, Reason: "waiver W-1", Expires: &metav1.Time{Time: expires},
		}},
	})
	waitStatus(t, p.Name, 60*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if err := wantCounts(counts{})(st); err != nil {
			return err
		}
		if want := []string{"Deployment/web/app (excepted)"}; !slices.Equal(listed(st), want) {
			return fmt.Errorf("violations %q, want %q", listed(st), want)
		}
		return nil
	})
	// the manager's auditor has audited since its status was right, and nothing that happens
	// here triggers it again (status writes change no generation): it stays out of the way
	auditedSince(t, p.Name)

	c := &countingClient{Client: k8s}
	r, clk, rec := newAuditor(c, catalog.Default(), managerNow.Add(time.Hour))
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}}
	reconcile := func() {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != 10*time.Minute {
			t.Errorf("RequeueAfter = %s, want the 10m resync", res.RequeueAfter)
		}
	}

	// an hour after the manager's audit, the same findings: nothing to write (the manager's
	// auditor may write its own, identical view meanwhile; only this auditor's writes count)
	reconcile()
	if c.calls != 0 {
		t.Errorf("a resync that found the same wrote the status: %d writes", c.calls)
	}
	if len(rec.Events) != 0 {
		t.Errorf("an excepted workload was reported: %q", <-rec.Events)
	}

	// past the expiry: one write, with the violation. The violations gauge is shared with the
	// manager's auditor, which sets it for the same policy from its own view: it is this
	// auditor's when the manager's was idle before and after, and audited the policy meanwhile
	// not at all (embargo_audit_evaluations_total moved by this audit only).
	clk.SetTime(expires.Add(time.Hour))
	evals := evaluations(p.Name)
	idle := gathered(t, "controller_runtime_active_workers", "controller", "policyauditor") == 0
	reconcile()
	gauge := testutil.ToFloat64(metrics.Violations.WithLabelValues(p.Name, ns, kasperskyVendor))
	alone := idle && gathered(t, "controller_runtime_active_workers", "controller", "policyauditor") == 0 && evaluations(p.Name) == evals+1
	if c.calls != 1 || len(c.written) != 1 {
		t.Fatalf("%d status writes (%d succeeded), want 1", c.calls, len(c.written))
	}
	got := c.written[0]
	st := &got.Status
	if countsOf(st) != (counts{2, 1, 2, 1, 0}) || len(st.Violations) != 1 {
		t.Fatalf("status: %s", describe(st))
	}
	if v := st.Violations[0]; v.WorkloadKind != "Deployment" || v.WorkloadName != "web" || v.Pod != "web-1-0" || v.Excepted || v.Digest != kesl[strings.Index(kesl, "@")+1:] {
		t.Errorf("violation: %+v", v)
	}
	if st.LastAuditTime == nil || !st.LastAuditTime.Time.Equal(clk.Now()) || st.ObservedGeneration != got.Generation || st.Action != v1alpha1.ActionAudit {
		t.Errorf("lastAuditTime %v (want %v), observedGeneration %d (generation %d), action %q", st.LastAuditTime, clk.Now(), st.ObservedGeneration, got.Generation, st.Action)
	}
	if cond := condition(st, v1alpha1.VendorPolicyCompliantCondition); cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.VendorPolicyViolationsReason {
		t.Errorf("Compliant = %+v", cond)
	}
	switch {
	case alone && gauge != 2:
		t.Errorf("violations gauge %v, want 2", gauge)
	case !alone:
		t.Logf("the manager's auditor was busy during this audit: the violations gauge (%v) may be its", gauge)
	}
	if len(rec.Events) != 1 {
		t.Fatalf("%d events, want 1", len(rec.Events))
	}
	if e := <-rec.Events; !strings.HasPrefix(e, "Warning "+controllers.BannedVendorSoftwareReason) || !strings.Contains(e, "kesl") {
		t.Errorf("event %q", e)
	}

	// an hour later, the same findings: no write, and no second event. The manager's auditor,
	// an hour behind, may put its view back in between; this auditor then rightly writes its own
	// again, so audit until one finds its own last write in place, and check that one.
	last := got.ResourceVersion
	for attempt := 1; ; attempt++ {
		clk.SetTime(clk.Now().Add(time.Hour))
		before := c.calls
		reconcile()
		if c.calls == before {
			break
		}
		if c.readRV == last {
			t.Errorf("a resync that found its own status in place wrote it again (%d writes)", c.calls-before)
			break
		}
		last = c.written[len(c.written)-1].ResourceVersion
		if attempt == 5 {
			t.Fatalf("the manager's auditor rewrote the policy before each of %d audits: the no-write case was never reached", attempt)
		}
	}
	if len(rec.Events) != 0 {
		t.Errorf("reported again: %q", <-rec.Events)
	}
}

// TestReconcileInvalidPolicy: a policy that does not compile reports why in Ready and enforces
// nothing. The webhook keeps such policies out, so the way one reaches the audit is a newer
// catalog that dropped the entry the policy names: this auditor runs with one.
func TestReconcileInvalidPolicy(t *testing.T) {
	t.Parallel()
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	ns := newNamespace(t)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	if err := k8s.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"action":"Warn"}}`))); err != nil {
		t.Fatal(err)
	}
	// the manager's status for the second generation; it has nothing more to write after it
	waitStatus(t, p.Name, 30*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if st.Action != v1alpha1.ActionWarn || condition(st, v1alpha1.VendorPolicyReadyCondition).Status != metav1.ConditionTrue {
			return errors.New("want Ready, action Warn")
		}
		return nil
	})

	def := catalog.Default()
	dropped := &catalog.Catalog{Version: def.Version + "-next"}
	for _, e := range def.Entries {
		if e.ID != "kaspersky" {
			dropped.Entries = append(dropped.Entries, e)
		}
	}
	c := &countingClient{Client: k8s}
	r, _, _ := newAuditor(c, dropped, clock.Now())
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	if err != nil {
		t.Fatal(err)
	}
	if res != (ctrl.Result{}) {
		t.Errorf("result %+v: an invalid policy waits for a spec change", res)
	}
	if c.calls != 1 || len(c.written) != 1 {
		t.Fatalf("%d status writes (%d succeeded), want 1", c.calls, len(c.written))
	}
	got := c.written[0]
	ready := condition(&got.Status, v1alpha1.VendorPolicyReadyCondition)
	if ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.VendorPolicyInvalidReason || !strings.Contains(ready.Message, `"kaspersky" is not a built-in entry`) {
		t.Errorf("Ready = %+v", ready)
	}
	if cond := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); cond.Status != metav1.ConditionUnknown || cond.Reason != v1alpha1.VendorPolicyInvalidReason {
		t.Errorf("Compliant = %+v", cond)
	}
	if got.Generation != 2 || got.Status.ObservedGeneration != 2 || got.Status.Action != "" || got.Status.TotalViolations != 0 {
		t.Errorf("generation %d, status %s", got.Generation, describe(&got.Status))
	}
}
