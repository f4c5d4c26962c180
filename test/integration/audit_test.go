package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/test/memwatch"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// The audit tests create workloads the way controllers would (no controller-manager runs in
// envtest: Deployment → ReplicaSet → Pods are all created here, with owner references) and pods
// stay Pending: what a kubelet would report is written to the status subresource where a test
// needs an imageID.

const kasperskyVendor = "AO Kaspersky Lab"

// owned makes obj a controller-owned child of owner.
func owned(obj client.Object, owner client.Object, apiVersion, kind string) {
	obj.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(), Controller: new(true)}})
}

func create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// podOf returns a pod named name running image, owned by owner when not nil.
func podOf(ns, name, image string, owner client.Object, apiVersion, kind string) *corev1.Pod {
	p := newPod(ns, name, image)
	p.Labels = appLabels
	if owner != nil {
		owned(p, owner, apiVersion, kind)
	}
	return p
}

// setRunning writes what a kubelet would: the digest the container runs.
func setRunning(t testing.TB, p *corev1.Pod, imageID string) {
	t.Helper()
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: imageID,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		})
	}
	if err := k8s.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("pod %s status: %v", p.Name, err)
	}
}

// deployment creates a Deployment, its ReplicaSet rsName and n pods of image; imageID, when
// set, goes into the pods' status.
func deployment(t testing.TB, ns, name, rsName, image, imageID string, n int) []*corev1.Pod {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		d = workloads["Deployment"](ns, name, image).(*appsv1.Deployment)
		create(t, d)
	}
	rs := workloads["ReplicaSet"](ns, rsName, image).(*appsv1.ReplicaSet)
	owned(rs, d, "apps/v1", "Deployment")
	create(t, rs)
	var pods []*corev1.Pod
	for i := range n {
		p := podOf(ns, fmt.Sprintf("%s-%d", rsName, i), image, rs, "apps/v1", "ReplicaSet")
		create(t, p)
		if imageID != "" {
			setRunning(t, p, imageID)
		}
		pods = append(pods, p)
	}
	return pods
}

func deleteAllPods(t testing.TB, ns string) {
	t.Helper()
	if err := k8s.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns)); err != nil {
		t.Errorf("deleting pods: %v", err)
	}
}

// poke changes an annotation: a trigger that is neither a spec change nor a clock tick.
func poke(t testing.TB, name string) {
	t.Helper()
	p := &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"test.embargo.dev/poke":%q}}}`, strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := k8s.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
}

// reconciles is how many reconciles the in-process manager's named controller has finished.
func reconciles(t testing.TB, controller string) float64 {
	return gathered(t, "controller_runtime_reconcile_total", "controller", controller)
}

// gathered sums the in-process manager's samples of a metric whose label has value.
func gathered(t testing.TB, metric, label, value string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					n += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return n
}

// evaluations is embargo_audit_evaluations_total{policy}: audits of the policy, each counted
// once it is over, its status written.
func evaluations(policy string) float64 {
	return testutil.ToFloat64(metrics.AuditEvaluations.WithLabelValues(policy))
}

// auditedSince returns once the manager's auditor has audited the policy from start to end since
// the call: the positive signal a "nothing changed" check waits for instead of a sleep. An audit
// that was running at the call may count first, so it pokes the policy (an annotation change
// is queued at once, without the debounce) and waits for one audit to end, then pokes again
// and waits for another: the auditor has one worker, so the second began after the first ended.
func auditedSince(t testing.TB, name string) {
	t.Helper()
	n := evaluations(name)
	for want := n + 1; want <= n+2; want++ {
		poke(t, name)
		eventually(t, 30*time.Second, func() error {
			if got := evaluations(name); got < want {
				return fmt.Errorf("policy %s: %v audits ended since the call, want %v", name, got-n, want-n)
			}
			return nil
		})
	}
}

// reconciledSince returns once the named controller of the manager has ended a reconcile that
// began after the call. Of the reconciles ending after the call, at most as many as were running
// at it began before it; the two reads of the finished count around the read of the busy workers
// make sure none ended in between.
func reconciledSince(t testing.TB, controller string) {
	t.Helper()
	var n, busy float64
	for {
		n = reconciles(t, controller)
		busy = gathered(t, "controller_runtime_active_workers", "controller", controller)
		if reconciles(t, controller) == n {
			break
		}
	}
	eventually(t, 30*time.Second, func() error {
		if got := reconciles(t, controller) - n; got < busy+1 {
			return fmt.Errorf("%s: %v reconciles ended since the call, want %v (%v were running at it)", controller, got, busy+1, busy)
		}
		return nil
	})
}

// podScannerCaughtUp returns once the manager's PodScanner has handled every pod event sent
// before the call. Pod events reach its queue in the order the API server sent them, and its
// workers take them in that order: it creates a pod of an image never seen before in namespace
// markerNS, waits until the PodScanner asks the registry for that image (the marker was taken
// from the queue, after every earlier event), then until its queue is empty and no worker busy
// (whatever was taken before the marker has ended).
func podScannerCaughtUp(t testing.TB, markerNS string) {
	t.Helper()
	id := fmt.Sprintf("%s-%d", markerNS, time.Now().UnixNano())
	img, err := variant(false, id)
	if err != nil {
		t.Fatal(err)
	}
	repo := "marker/" + id
	if _, err := reg.Push(repo+":1", img); err != nil {
		t.Fatal(err)
	}
	create(t, podOf(markerNS, "marker-"+strconv.FormatInt(time.Now().UnixNano()%1e9, 10), reg.Ref(repo+":1"), nil, "", ""))
	eventually(t, 2*time.Minute, func() error {
		if reg.Requests(repo) == 0 {
			return errors.New("the PodScanner has not reached the marker pod")
		}
		return nil
	})
	eventually(t, 2*time.Minute, func() error {
		depth := gathered(t, "workqueue_depth", "name", "podscanner")
		busy := gathered(t, "controller_runtime_active_workers", "controller", "podscanner")
		if again := gathered(t, "workqueue_depth", "name", "podscanner"); depth > 0 || busy > 0 || again > 0 {
			return fmt.Errorf("PodScanner: queue depth %v, %v workers busy", max(depth, again), busy)
		}
		return nil
	})
}

// waitStatus waits until check accepts the policy's status and returns the policy.
func waitStatus(t testing.TB, name string, timeout time.Duration, check func(st *v1alpha1.VendorPolicyStatus) error) *v1alpha1.VendorPolicy {
	t.Helper()
	var p v1alpha1.VendorPolicy
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
		}
		if err := check(&p.Status); err != nil {
			return fmt.Errorf("%w\nstatus: %s", err, describe(&p.Status))
		}
		return nil
	})
	return &p
}

func describe(st *v1alpha1.VendorPolicyStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "action=%s next=%s@%v total=%d workloads=%d pods=%d images=%d unchecked=%d truncated=%v",
		st.Action, st.NextAction, st.NextActionAt, st.TotalViolations, st.ViolatingWorkloads, st.ViolatingPods, st.ViolatingImages, st.UncheckedImages, st.Truncated)
	for _, c := range st.Conditions {
		fmt.Fprintf(&b, "\n  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, v := range st.Violations {
		fmt.Fprintf(&b, "\n  %s/%s/%s pod=%s container=%s excepted=%v", v.Namespace, v.WorkloadKind, v.WorkloadName, v.Pod, v.Container, v.Excepted)
	}
	return b.String()
}

// counts is total, workloads, pods, images, unchecked.
type counts [5]int

func countsOf(st *v1alpha1.VendorPolicyStatus) counts {
	return counts{st.TotalViolations, st.ViolatingWorkloads, st.ViolatingPods, st.ViolatingImages, st.UncheckedImages}
}

func wantCounts(want counts) func(*v1alpha1.VendorPolicyStatus) error {
	return func(st *v1alpha1.VendorPolicyStatus) error {
		if got := countsOf(st); got != want {
			return fmt.Errorf("total, workloads, pods, images, unchecked = %v, want %v", got, want)
		}
		return nil
	}
}

func condition(st *v1alpha1.VendorPolicyStatus, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func listed(st *v1alpha1.VendorPolicyStatus) []string {
	var out []string
	for _, v := range st.Violations {
		s := v.WorkloadKind + "/" + v.WorkloadName + "/" + v.Container
		if v.Excepted {
			s += " (excepted)"
		}
		out = append(out, s)
	}
	return out
}

// digestRef resolves a tag to repository@digest.
func digestRef(t testing.TB, image string) string {
	t.Helper()
	target, err := comps.Engine.Resolve(context.Background(), image, nil)
	if err != nil {
		t.Fatal(err)
	}
	return target.Ref.String()
}

// bannedEvents returns the BannedVendorSoftware events of ns by involved object kind/name.
func bannedEvents(ns string) (map[string]int32, error) {
	var evs corev1.EventList
	if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, e := range evs.Items {
		if e.Reason == "BannedVendorSoftware" && e.Type == corev1.EventTypeWarning {
			out[e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name] += e.Count
		}
	}
	return out, nil
}

// TestAuditConvergence: workloads first, then the policy. The status converges to the right
// counts and list, with one event per offending workload; fixing a workload lowers the counts
// and deleting everything makes the policy Compliant.
func TestAuditConvergence(t *testing.T) {
	t.Parallel()
	samples(t)
	ctx := context.Background()
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	kesl := digestRef(t, keslImage)

	// Deployment web: two pods whose status says they run kesl (no registry call needed)
	deployment(t, ns, "web", "web-1", keslImage, kesl, 2)
	// CronJob nightly → Job → pod: Kaspersky Scan Engine from a tarball, tag only
	cron := workloads["CronJob"](ns, "nightly", scanEngineImage)
	create(t, cron)
	job := workloads["Job"](ns, "nightly-29000000", scanEngineImage).(*batchv1.Job)
	owned(job, cron, "batch/v1", "CronJob")
	create(t, job)
	create(t, podOf(ns, "nightly-29000000-x", scanEngineImage, job, "batch/v1", "Job"))
	// StatefulSet db: clean
	sts := workloads["StatefulSet"](ns, "db", cleanImage)
	create(t, sts)
	create(t, podOf(ns, "db-0", cleanImage, sts, "apps/v1", "StatefulSet"))
	// DaemonSet agent: kesl pinned by digest in the spec
	ds := workloads["DaemonSet"](ns, "agent", kesl)
	create(t, ds)
	create(t, podOf(ns, "agent-q7", kesl, ds, "apps/v1", "DaemonSet"))
	// a bare pod, and one that has finished (it runs nothing)
	create(t, podOf(ns, "debug", keslImage, nil, "", ""))
	done := podOf(ns, "finished", keslImage, nil, "", "")
	create(t, done)
	done.Status.Phase = corev1.PodSucceeded
	if err := k8s.Status().Update(ctx, done); err != nil {
		t.Fatal(err)
	}
	// events are once-only: let the manager's cache see the pod finished before the first audit
	eventually(t, 10*time.Second, func() error {
		var p corev1.Pod
		if err := comps.Policies.Reader.Get(ctx, client.ObjectKeyFromObject(done), &p); err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("cached phase %q", p.Status.Phase)
		}
		return nil
	})

	start := time.Now()
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	got := waitStatus(t, p.Name, 60*time.Second, wantCounts(counts{5, 4, 5, 2, 0}))
	t.Logf("converged in %s", time.Since(start).Round(time.Millisecond))
	st := &got.Status
	want := []string{"CronJob/nightly/app", "DaemonSet/agent/app", "Deployment/web/app", "Pod/debug/app"}
	if !slices.Equal(listed(st), want) || st.Truncated {
		t.Errorf("violations %q (truncated %v), want %q", listed(st), st.Truncated, want)
	}
	for _, v := range st.Violations {
		if v.Namespace != ns || v.Vendor != kasperskyVendor || v.Evidence == "" || !strings.HasPrefix(v.Digest, "sha256:") || v.Pod == "" {
			t.Errorf("incomplete violation %+v", v)
		}
		if v.WorkloadKind == "Deployment" && (v.Pod != "web-1-0" || v.Package != "kesl 12.1.0-1187" || v.Image != keslImage) {
			t.Errorf("Deployment violation %+v", v)
		}
		if v.WorkloadKind == "CronJob" && !strings.Contains(v.Evidence, "/opt/kaspersky/ScanEngine") {
			t.Errorf("tarball install evidence %q", v.Evidence)
		}
	}
	if c := condition(st, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.VendorPolicyViolationsReason || c.ObservedGeneration != got.Generation {
		t.Errorf("Compliant = %+v", c)
	}
	if c := condition(st, v1alpha1.VendorPolicyReadyCondition); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.VendorPolicyCompiledReason {
		t.Errorf("Ready = %+v", c)
	}
	if st.Action != v1alpha1.ActionAudit || st.NextAction != "" || st.NextActionAt != nil || st.LastAuditTime == nil {
		t.Errorf("action %q next %q at %v, lastAuditTime %v", st.Action, st.NextAction, st.NextActionAt, st.LastAuditTime)
	}
	wantGauge(t, p.Name, ns, 5)
	wantEvents := map[string]int32{"Deployment/web": 1, "CronJob/nightly": 1, "DaemonSet/agent": 1, "Pod/debug": 1}
	eventually(t, 10*time.Second, func() error {
		evs, err := bannedEvents(ns)
		if err != nil {
			return err
		}
		if len(evs) != len(wantEvents) {
			return fmt.Errorf("events %v, want %v", evs, wantEvents)
		}
		return nil
	})

	// fix the Deployment: a new ReplicaSet with the clean image replaces the kesl pods
	deployment(t, ns, "web", "web-2", cleanImage, "", 2)
	for i := range 2 {
		if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("web-1-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got = waitStatus(t, p.Name, 30*time.Second, wantCounts(counts{3, 3, 3, 2, 0}))
	if want := []string{"CronJob/nightly/app", "DaemonSet/agent/app", "Pod/debug/app"}; !slices.Equal(listed(&got.Status), want) {
		t.Errorf("after the fix: %q, want %q", listed(&got.Status), want)
	}
	wantGauge(t, p.Name, ns, 3)

	// events stay once per workload and digest, however many audits ran
	evs, err := bannedEvents(ns)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range wantEvents {
		if evs[k] != want {
			t.Errorf("events for %s: %d, want %d (all: %v)", k, evs[k], want, evs)
		}
	}

	deleteAllPods(t, ns)
	got = waitStatus(t, p.Name, 30*time.Second, wantCounts(counts{}))
	if c := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.VendorPolicyNoViolationsReason {
		t.Errorf("Compliant after deleting everything = %+v", c)
	}
	if len(got.Status.Violations) != 0 {
		t.Errorf("violations left: %q", listed(&got.Status))
	}
}

// wantGauge checks embargo_violations{policy, namespace, vendor=Kaspersky}. The auditor sets it
// before it writes the status, but the status may be from the audit before the one that counted.
func wantGauge(t testing.TB, policy, ns string, want float64) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if n := testutil.ToFloat64(metrics.Violations.WithLabelValues(policy, ns, kasperskyVendor)); n != want {
			return fmt.Errorf("embargo_violations = %v, want %v", n, want)
		}
		return nil
	})
}

// TestAuditRolloutStep: the effective action flips when a rollout step's date passes. The first
// step is seconds away and nothing triggers the auditor: it must have requeued itself for that
// date. The second is a month away: the clock jumps and an unrelated change triggers an audit.
// Moves the clock: not parallel.
func TestAuditRolloutStep(t *testing.T) {
	samples(t)
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	create(t, podOf(ns, "kesl", keslImage, nil, "", ""))

	defer clock.SetTime(testStart)
	now := clock.Now()
	warnAt := now.Add(3 * time.Second).Truncate(time.Second)
	denyAt := now.AddDate(0, 1, 0).Truncate(time.Second)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionAudit,
		Rollout: []v1alpha1.RolloutStep{
			{Action: v1alpha1.ActionWarn, From: metav1.NewTime(warnAt)},
			{Action: v1alpha1.ActionDeny, From: metav1.NewTime(denyAt)},
		},
	})
	waitStatus(t, p.Name, 60*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if err := wantCounts(counts{1, 1, 1, 1, 0})(st); err != nil {
			return err
		}
		if st.Action != v1alpha1.ActionAudit || st.NextAction != v1alpha1.ActionWarn || st.NextActionAt == nil || !st.NextActionAt.Time.Equal(warnAt) {
			return errors.New("want Audit now, Warn next at " + warnAt.String())
		}
		return nil
	})

	clock.SetTime(warnAt)
	start := time.Now()
	waitStatus(t, p.Name, 15*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if st.Action != v1alpha1.ActionWarn || st.NextAction != v1alpha1.ActionDeny || st.NextActionAt == nil || !st.NextActionAt.Time.Equal(denyAt) {
			return errors.New("want Warn now, Deny next at " + denyAt.String())
		}
		return nil
	})
	flipped := waitStatus(t, p.Name, time.Second, func(*v1alpha1.VendorPolicyStatus) error { return nil })
	t.Logf("step passed; status flipped %s later with no trigger", time.Since(start).Round(time.Millisecond))

	// a minute on, an audit that finds the same writes nothing, not even lastAuditTime
	clock.SetTime(warnAt.Add(time.Minute))
	auditedSince(t, p.Name)
	same := waitStatus(t, p.Name, time.Second, func(*v1alpha1.VendorPolicyStatus) error { return nil })
	if !same.Status.LastAuditTime.Equal(flipped.Status.LastAuditTime) {
		t.Errorf("a re-audit that found the same rewrote the status: lastAuditTime %v → %v", flipped.Status.LastAuditTime, same.Status.LastAuditTime)
	}

	clock.SetTime(denyAt.Add(time.Minute))
	poke(t, p.Name)
	got := waitStatus(t, p.Name, 15*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if st.Action != v1alpha1.ActionDeny || st.NextAction != "" || st.NextActionAt != nil {
			return errors.New("want Deny now and no next step")
		}
		return nil
	})
	if c := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); !strings.Contains(c.Message, "action now: Deny") {
		t.Errorf("Compliant message %q does not give the action", c.Message)
	}
}

// TestAuditExceptionExpiry: an excepted workload is listed, not counted, until the exception
// expires; then it is a violation, without any trigger but the auditor's own requeue.
// Moves the clock: not parallel.
func TestAuditExceptionExpiry(t *testing.T) {
	samples(t)
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	create(t, podOf(ns, "waived", keslImage, nil, "", ""))

	defer clock.SetTime(testStart)
	expires := clock.Now().Add(3 * time.Second).Truncate(time.Second)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionDeny,
		Exceptions: []v1alpha1.Exception{{
			Images: []string{reg.Host + "/samples/kesl:*"}, Reason: "waiver W-17-01-007", Expires: &metav1.Time{Time: expires},
		}},
	})
	got := waitStatus(t, p.Name, 60*time.Second, wantCounts(counts{0, 0, 0, 0, 0}))
	if want := []string{"Pod/waived/app (excepted)"}; !slices.Equal(listed(&got.Status), want) {
		t.Errorf("violations %q, want %q", listed(&got.Status), want)
	}
	if c := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionTrue {
		t.Errorf("Compliant while excepted = %+v", c)
	}

	clock.SetTime(expires)
	got = waitStatus(t, p.Name, 15*time.Second, wantCounts(counts{1, 1, 1, 1, 0}))
	if want := []string{"Pod/waived/app"}; !slices.Equal(listed(&got.Status), want) {
		t.Errorf("after expiry %q, want %q", listed(&got.Status), want)
	}
	if c := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionFalse {
		t.Errorf("Compliant after expiry = %+v", c)
	}
}

// TestAuditUnreachableImage: an image deleted from its registry marks its ImageScan Failed with
// the reason and backs off instead of retrying hot; a tag that does not resolve has no digest
// at all. Both count as unchecked images.
func TestAuditUnreachableImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	repo := "unreachable/" + ns
	img, err := variant(true, ns)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := reg.Push(repo+":1", img)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(gone); err != nil {
		t.Fatal(err)
	}
	// six pods of the deleted image at once, and one of a tag that never existed
	create(t, podOf(ns, "no-such-tag", reg.Ref("nowhere/"+ns+":1"), nil, "", ""))
	var gonePods []*corev1.Pod
	for i := range 6 {
		p := podOf(ns, fmt.Sprintf("deleted-image-%d", i), gone, nil, "", "")
		create(t, p)
		gonePods = append(gonePods, p)
	}

	markerNS := newNamespace(t) // the policy does not select it
	t.Cleanup(func() { deleteAllPods(t, markerNS) })
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	got := waitStatus(t, p.Name, 60*time.Second, wantCounts(counts{0, 0, 0, 0, 2}))
	if c := condition(&got.Status, v1alpha1.VendorPolicyCompliantCondition); c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.VendorPolicyUncheckedReason {
		t.Errorf("Compliant with unchecked images = %+v", c)
	}

	digest := gone[strings.Index(gone, "@")+1:]
	var is v1alpha1.ImageScan
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digest)}, &is); err != nil {
			return err
		}
		if is.Status.Phase != v1alpha1.ImageScanFailed {
			return fmt.Errorf("phase %q", is.Status.Phase)
		}
		return nil
	})
	c := meta.FindStatusCondition(is.Status.Conditions, v1alpha1.ImageScanScannedCondition)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ImageScanNotFoundReason || is.Status.Message == "" {
		t.Errorf("ImageScan status: %+v", is.Status)
	}
	// the other five pods' reconciles may still be running when the first failure is written
	podScannerCaughtUp(t, markerNS)
	if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digest)}, &is); err != nil {
		t.Fatal(err)
	}
	if is.Status.Failures != 1 || reg.ManifestGets(repo) != 1 {
		t.Errorf("six pods of one missing image: %d failures, %d manifest GETs; want one attempt", is.Status.Failures, reg.ManifestGets(repo))
	}

	// the kubelet reports the pods running that digest: the audit looks again, but within the
	// backoff it neither pulls nor counts a failure (status updates do not pass admission)
	for _, p := range gonePods {
		setRunning(t, p, gone)
	}
	podScannerCaughtUp(t, markerNS)
	if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digest)}, &is); err != nil {
		t.Fatal(err)
	}
	if is.Status.Failures != 1 || reg.ManifestGets(repo) != 1 {
		t.Errorf("retried within the backoff: %d failures, %d manifest GETs", is.Status.Failures, reg.ManifestGets(repo))
	}
	waitStatus(t, p.Name, 15*time.Second, wantCounts(counts{0, 0, 0, 0, 2}))
}

// variant is a small Debian-like image, unique by id, with kesl installed when kesl is true.
func variant(kesl bool, id string) (v1.Image, error) {
	pkgs := []ti.Deb{{Name: "base-files", Version: "12.4", Maintainer: "Santiago Vila <sanvila@debian.org>"}}
	if kesl {
		pkgs = append(pkgs, ti.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: ti.KasperskyMaintainer})
	}
	return ti.FromFiles([]ti.File{ti.OSRelease("debian", "12"), ti.DpkgStatus(pkgs...), {Path: "/etc/embargo-test-id", Content: []byte(id + "\n")}})
}

// sharedBase is EMBARGO_SCALE_SHARED_BASE=1 (hack/audit-scale.sh --shared-base): every image of
// TestAuditScale stacks the same three base layers under a small layer of its own.
func sharedBase() bool { return os.Getenv("EMBARGO_SCALE_SHARED_BASE") == "1" }

// baseDebs are the packages of the shared base's dpkg database.
func baseDebs() []ti.Deb {
	debs := make([]ti.Deb, 400)
	for i := range debs {
		debs[i] = ti.Deb{Name: fmt.Sprintf("lib-base-%03d", i), Version: "1.0-1", Maintainer: "Debian Developers <debian-devel@lists.debian.org>"}
	}
	return debs
}

// sharedBaseLayers are a Debian base (a 400-package dpkg database), a layer of jars and a layer
// of python and npm packages.
func sharedBaseLayers(id string) ([]v1.Layer, error) {
	files := [][]ti.File{{ti.OSRelease("debian", "12"), ti.DpkgStatus(baseDebs()...), {Path: "/etc/embargo-base", Content: []byte(id)}}, nil, nil}
	for i := range 20 {
		jar, err := ti.Jar(fmt.Sprintf("/usr/share/java/lib-%02d.jar", i), "org.example", fmt.Sprintf("lib-%02d", i), "1.0", map[string]string{"Implementation-Vendor": "Example Org"})
		if err != nil {
			return nil, err
		}
		files[1] = append(files[1], jar)
	}
	for i := range 50 {
		files[2] = append(files[2], ti.PythonDist(fmt.Sprintf("py-lib-%02d", i), "1.0", "Example Org", "lib")...)
		files[2] = append(files[2], ti.NpmPackage(fmt.Sprintf("js-lib-%02d", i), "1.0.0", "Example Org", "lib"))
	}
	var out []v1.Layer
	for _, fs := range files {
		l, err := ti.Layer(fs...)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// appLayer is an image's own layer on the shared base; installing kesl rewrites the dpkg
// database, as dpkg does.
func appLayer(kesl bool, id string) (v1.Layer, error) {
	files := []ti.File{{Path: "/etc/embargo-test-id", Content: []byte(id + "\n")}}
	if kesl {
		files = append(files, ti.DpkgStatus(append(baseDebs(), ti.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: ti.KasperskyMaintainer})...))
	}
	return ti.Layer(files...)
}

// Scale of TestAuditScale; EMBARGO_SCALE_PODS and EMBARGO_SCALE_IMAGES override (hack/audit-scale.sh).
func scaleParams() (pods, images int) {
	pods, images = 1000, 50
	if n, err := strconv.Atoi(os.Getenv("EMBARGO_SCALE_PODS")); err == nil && n > 0 {
		pods = n
	}
	if n, err := strconv.Atoi(os.Getenv("EMBARGO_SCALE_IMAGES")); err == nil && n > 0 {
		images = n
	}
	return pods, images
}

// TestAuditScale: 1,000 pods over 50 images cost exactly 50 scans, one manifest pull per image,
// and one ImageScan each; a policy created after the pods accounts for every violating pod in
// its status (counts, gauge, a capped list) within a minute, and one that was there before
// them audits about once a second through the burst of pod events, not once per event. Half
// the pods report their digest in status.imageID, half name a tag only. Every fifth image
// carries kesl. Reports the time to converged status and the peak memory of the process.
func TestAuditScale(t *testing.T) {
	t.Parallel()
	nPods, nImages := scaleParams()
	ctx := context.Background()
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })

	tags := make([]string, nImages)
	digests := make([]string, nImages)
	var base, apps []v1.Layer
	if sharedBase() {
		var err error
		if base, err = sharedBaseLayers(ns); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nImages {
		img, err := variant(i%5 == 0, fmt.Sprintf("%s-%d", ns, i))
		if sharedBase() {
			var app v1.Layer
			if app, err = appLayer(i%5 == 0, fmt.Sprintf("%s-%d", ns, i)); err != nil {
				t.Fatal(err)
			}
			apps = append(apps, app)
			img, err = ti.Image(nil, append(slices.Clone(base), app)...)
		}
		if err != nil {
			t.Fatal(err)
		}
		repo := fmt.Sprintf("scale-%s/img-%d", ns, i)
		if digests[i], err = reg.Push(repo+":1", img); err != nil {
			t.Fatal(err)
		}
		tags[i] = reg.Ref(repo + ":1")
	}
	wantViolating := 0
	for i := range nPods {
		if (i%nImages)%5 == 0 {
			wantViolating++
		}
	}
	wantImages := (nImages + 4) / 5
	want := wantCounts(counts{wantViolating, wantViolating, wantViolating, wantImages, 0})
	early := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	auditedSince(t, early.Name) // its first audits are over: what follows is the pods' doing
	earlyAudits := evaluations(early.Name)

	// the baseline of the shared-base mode: every unique layer scanned once, as one image, by a
	// fresh engine
	var uniqueOnce time.Duration
	if sharedBase() {
		all, err := ti.Image(nil, append(slices.Clone(base), apps...)...)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reg.Push(fmt.Sprintf("scale-%s/unique-layers:1", ns), all)
		if err != nil {
			t.Fatal(err)
		}
		e, err := scan.New(scan.Options{Registry: registry.Options{Insecure: []string{"*"}, MaxLayers: len(base) + len(apps)}, Platforms: []string{"linux/amd64"}})
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		target, err := e.Resolve(ctx, ref, nil)
		if err == nil {
			_, err = e.Scan(ctx, target, nil, scan.Background)
		}
		if err != nil {
			t.Fatal(err)
		}
		uniqueOnce = time.Since(began)
	}

	mem := memwatch.Start(100 * time.Millisecond)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nPods {
					return
				}
				p := podOf(ns, fmt.Sprintf("p-%04d", i), tags[i%nImages], nil, "", "")
				if err := k8s.Create(ctx, p); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: p.Spec.Containers[0].Image, ImageID: digests[i%nImages]}}
					if err := k8s.Status().Update(ctx, p); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	created := time.Since(start)

	policyAt := time.Now()
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	got := waitStatus(t, p.Name, 5*time.Minute, want)
	converged := time.Since(start)
	fromPolicy := time.Since(policyAt)
	peakHeap, hwm := mem()
	waitStatus(t, early.Name, time.Minute, want)
	earlyAudits = evaluations(early.Name) - earlyAudits
	through := time.Since(start)

	if fromPolicy > time.Minute {
		t.Errorf("the status converged %s after the policy was created, want within a minute", fromPolicy.Round(time.Millisecond))
	}
	// debounced: the pods' creations and status updates, and the ImageScans written meanwhile,
	// fold into about one audit a second
	if limit := through.Seconds() + 5; earlyAudits > limit {
		t.Errorf("the policy that saw the pods come: %v audits in %s, want at most %.0f", earlyAudits, through.Round(time.Millisecond), limit)
	}
	wantGauge(t, p.Name, ns, float64(wantViolating))
	if len(got.Status.Violations) != 50 || !got.Status.Truncated {
		t.Errorf("listed %d violations (truncated %v), want 50 and truncated", len(got.Status.Violations), got.Status.Truncated)
	}
	for _, v := range got.Status.Violations {
		if i, err := strconv.Atoi(strings.TrimPrefix(v.Pod, "p-")); v.Namespace != ns || err != nil || (i%nImages)%5 != 0 || v.Vendor != kasperskyVendor {
			t.Errorf("listed violation %+v: not one of this test's kesl pods", v)
		}
	}
	scans, analysed := 0, 0
	for i := range nImages {
		repo := fmt.Sprintf("scale-%s/img-%d", ns, i)
		gets := reg.ManifestGets(repo)
		scans += gets
		if gets != 1 {
			t.Errorf("%s: %d manifest GETs, want 1", repo, gets)
		}
		analysed += reg.BlobGets(repo) - gets // a layer is fetched when it is analysed; one config per scan
	}
	shared := ""
	if sharedBase() {
		unique := len(base) + nImages
		if analysed != unique {
			t.Errorf("%d layers analysed, want the %d unique layers once each", analysed, unique)
		}
		shared = fmt.Sprintf(" shared_base_layers=%d unique_layers=%d layers_analysed=%d unique_layers_once_in=%s converged/unique_once=%.2f",
			len(base), unique, analysed, uniqueOnce.Round(time.Millisecond), converged.Seconds()/uniqueOnce.Seconds())
	}
	eventually(t, 30*time.Second, func() error { // records are saved in the background
		var list v1alpha1.ImageScanList
		if err := k8s.List(ctx, &list); err != nil {
			return err
		}
		mine, scanned := 0, 0
		for _, is := range list.Items {
			if !strings.Contains(is.Spec.Image, "scale-"+ns+"/") {
				continue
			}
			mine++
			if is.Status.Phase == v1alpha1.ImageScanScanned {
				scanned++
			}
		}
		if mine != nImages || scanned != nImages {
			return fmt.Errorf("%d ImageScans, %d Scanned; want %d, all Scanned", mine, scanned, nImages)
		}
		return nil
	})
	raw, err := json.Marshal(got.Status)
	if err != nil {
		t.Fatal(err)
	}
	size := len(raw)
	// the status stays small however many pods violate: counts plus a capped list
	if size > 48<<10 {
		t.Errorf("policy status is %d KiB of JSON with %d violating pods, want at most 48 KiB", size>>10, wantViolating)
	}
	// the images-by-phase gauge follows ImageScan events, not a list: it counts every one
	if n := gathered(t, "embargo_images", "phase", string(v1alpha1.ImageScanScanned)); n < float64(nImages) {
		t.Errorf("embargo_images{phase=Scanned} = %v, want at least the %d images scanned here", n, nImages)
	}
	// lean records: a two-package image's ImageScan holds a few hundred bytes, not its files
	var one v1alpha1.ImageScan
	if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digests[0][strings.Index(digests[0], "@")+1:])}, &one); err != nil {
		t.Fatal(err)
	}
	if (len(one.Status.Record) > 2<<10 && !sharedBase()) || one.Status.ObservedGeneration != one.Generation || !meta.IsStatusConditionTrue(one.Status.Conditions, v1alpha1.ImageScanReadyCondition) {
		t.Errorf("ImageScan %s: %d record bytes, observedGeneration %d of %d, conditions %+v", one.Name, len(one.Status.Record), one.Status.ObservedGeneration, one.Generation, one.Status.Conditions)
	}
	t.Logf("AUDIT-SCALE pods=%d images=%d scans=%d violating=%d created_in=%s converged_in=%s converged_after_policy=%s early_policy_audits=%v peak_heap=%dMiB peak_rss=%dMiB status_json=%dKiB%s",
		nPods, nImages, scans, wantViolating, created.Round(time.Millisecond), converged.Round(time.Millisecond), fromPolicy.Round(time.Millisecond),
		earlyAudits, peakHeap>>20, hwm>>20, size>>10, shared)
}

// TestImageScanRescanOnPathRule: ImageScans keep only the files some path rule matches. A policy
// that adds a path rule the stored record kept no files for makes the audit rescan the digest
// (one more pull), and the ImageScan then shows the new finding, Ready. Not parallel: until the
// rescans end, every lean record misses the new rule and the audit counts its pods unchecked,
// which parallel tests would see as their violations gone.
func TestImageScanRescanOnPathRule(t *testing.T) {
	ctx := context.Background()
	img, err := ti.FromFiles([]ti.File{ti.OSRelease("debian", "12"), {Path: "/opt/acme/bin/agent", Content: []byte("acme")}, {Path: "/usr/bin/tool", Content: []byte("tool")}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("rescan/acme:1", img)
	if err != nil {
		t.Fatal(err)
	}
	digest := ref[strings.Index(ref, "@")+1:]
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	create(t, podOf(ns, "agent", reg.Ref("rescan/acme:1"), nil, "", ""))

	imageScan := func(check func(is *v1alpha1.ImageScan) error) *v1alpha1.ImageScan {
		t.Helper()
		var is v1alpha1.ImageScan
		eventually(t, 60*time.Second, func() error {
			if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digest)}, &is); err != nil {
				return err
			}
			if is.Status.ObservedGeneration != is.Generation {
				return fmt.Errorf("observedGeneration %d, generation %d", is.Status.ObservedGeneration, is.Generation)
			}
			return check(&is)
		})
		return &is
	}
	ready := func(is *v1alpha1.ImageScan) error {
		if c := meta.FindStatusCondition(is.Status.Conditions, v1alpha1.ImageScanReadyCondition); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready = %+v", c)
		}
		return nil
	}
	before := imageScan(ready)
	rec, err := cache.FromImageScan(before)
	if err != nil || rec == nil {
		t.Fatalf("record: %v, %v", rec, err)
	}
	if !rec.Lean || len(rec.Inventories) != 1 || len(rec.Inventories[0].Files) != 0 || before.Status.FindingCount != 0 {
		t.Fatalf("before the path rule: lean %v, files %v, %d findings; want a lean record with no files and no findings", rec.Lean, rec.Inventories, before.Status.FindingCount)
	}
	pulls := reg.ManifestGets("rescan/acme")

	// the manager writes p's status meanwhile: retry the spec update on a conflict
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Vendors = append(p.Spec.Vendors, v1alpha1.VendorSelector{Name: "Acme", Rules: &v1alpha1.VendorRules{Paths: []string{"/opt/acme/**"}}})
		return k8s.Update(ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	after := imageScan(func(is *v1alpha1.ImageScan) error {
		if err := ready(is); err != nil {
			return err
		}
		if is.Status.FindingCount != 1 || is.Status.Findings[0].Vendor != "Acme" || is.Status.Findings[0].Rule != "path" {
			return fmt.Errorf("findings %d: %+v", is.Status.FindingCount, is.Status.Findings)
		}
		return nil
	})
	if got := reg.ManifestGets("rescan/acme") - pulls; got != 1 {
		t.Errorf("%d pulls after the path rule was added, want one rescan", got)
	}
	if rec, err := cache.FromImageScan(after); err != nil || len(rec.Inventories[0].Files) != 1 || rec.Inventories[0].Files[0].Path != "/opt/acme/bin/agent" {
		t.Errorf("rescanned record keeps %v (%v), want /opt/acme/bin/agent only", rec, err)
	}
}

// TestAuditJudgesByStaleRecordDuringRescan: a policy that adds a path rule makes every lean
// record miss that rule until its image is rescanned. Meanwhile the audit judges by the record
// it has, so a kesl violation found by its package stays: it is neither dropped nor counted
// unchecked, and its report is not withdrawn. The image is deleted from the registry first, so
// its rescan fails and the window stays open. Not parallel: the path rule concerns every record.
func TestAuditJudgesByStaleRecordDuringRescan(t *testing.T) {
	ctx := context.Background()
	img, err := variant(true, "stale-record")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("stale/kesl:1", img)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	a := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	create(t, podOf(ns, "agent", reg.Ref("stale/kesl:1"), nil, "", ""))
	found := counts{1, 1, 1, 1, 0}
	waitStatus(t, a.Name, 60*time.Second, wantCounts(found))

	if err := reg.Delete(ref); err != nil {
		t.Fatal(err)
	}
	pulls := reg.ManifestGets("stale/kesl")
	other := newNamespace(t)
	newPolicy(t, other, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit, Vendors: []v1alpha1.VendorSelector{
		{Catalog: "kaspersky"}, {Name: "Acme", Rules: &v1alpha1.VendorRules{Paths: []string{"/opt/acme/**"}}},
	}})
	eventually(t, 30*time.Second, func() error {
		if reg.ManifestGets("stale/kesl") == pulls {
			return errors.New("the record that misses the new path rule was not rescanned")
		}
		return nil
	})
	auditedSince(t, a.Name)
	var got v1alpha1.VendorPolicy
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(a), &got); err != nil {
		t.Fatal(err)
	}
	if c := countsOf(&got.Status); c != found {
		t.Errorf("while the image cannot be rescanned: total, workloads, pods, images, unchecked = %v, want %v (judged by the record it has)", c, found)
	}
}

// TestImageScanRecomputeOnVendorChange: ImageScan findings are matched against the catalog
// and every policy's own vendors, so a policy change recomputes every ImageScan only when it
// changes those vendors. A new Audit policy of catalog vendors queues none (one "skipped"), and
// adding a vendor of its own to it queues every ImageScan, after which the one whose image
// carries that vendor's package shows it. Not parallel: other tests' policies would change the
// vendors in between.
func TestImageScanRecomputeOnVendorChange(t *testing.T) {
	ctx := context.Background()
	img, err := ti.FromFiles([]ti.File{ti.OSRelease("debian", "12"), ti.DpkgStatus(
		ti.Deb{Name: "base-files", Version: "12.4", Maintainer: "Santiago Vila <sanvila@debian.org>"},
		ti.Deb{Name: "acme-agent", Version: "2.0", Maintainer: "Acme Widgets Ltd <support@acme.example>"},
	)})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("recompute/acme:1", img)
	if err != nil {
		t.Fatal(err)
	}
	digest := ref[strings.Index(ref, "@")+1:]
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	create(t, podOf(ns, "agent", reg.Ref("recompute/acme:1"), nil, "", ""))
	findings := func(want int) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			var is v1alpha1.ImageScan
			if err := k8s.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digest)}, &is); err != nil {
				return err
			}
			if is.Status.Phase != v1alpha1.ImageScanScanned || is.Status.FindingCount != want || is.Status.ObservedGeneration != is.Generation {
				return fmt.Errorf("phase %s, %d findings (want %d), observedGeneration %d of %d", is.Status.Phase, is.Status.FindingCount, want, is.Status.ObservedGeneration, is.Generation)
			}
			return nil
		})
	}
	findings(0)
	recomputes := func(result string) float64 {
		return testutil.ToFloat64(metrics.ImageScanRecomputes.WithLabelValues(result))
	}

	// catalog vendors only: the vendors are what they were
	queued, skipped := recomputes("queued"), recomputes("skipped")
	other := newNamespace(t)
	b := newPolicy(t, other, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	eventually(t, 10*time.Second, func() error {
		if recomputes("skipped") == skipped {
			return errors.New("the ImageScans controller has not seen the new policy")
		}
		return nil
	})
	if n := recomputes("queued") - queued; n != 0 {
		t.Errorf("a new policy of catalog vendors queued %v ImageScans for recomputing, want none", n)
	}

	// a vendor of its own: every ImageScan is recomputed, and this one finds Acme
	queued = recomputes("queued")
	// the manager writes b's status meanwhile: retry the spec update on a conflict
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		b.Spec.Vendors = append(b.Spec.Vendors, v1alpha1.VendorSelector{Name: "Acme Widgets", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Acme Widgets Ltd"}}})
		return k8s.Update(ctx, b)
	}); err != nil {
		t.Fatal(err)
	}
	findings(1)
	if n := recomputes("queued") - queued; n < 1 {
		t.Errorf("adding a vendor queued %v ImageScans for recomputing, want every one", n)
	}
}

// TestAuditImageScanScope: an ImageScan change re-audits only the policies that select a pod
// running its digest. Policy A selects namespace A, where one pod pins digest a in its spec and
// one names tag t (only the tag cache knows its digest); policy B selects namespace B, whose pod
// reports digest b in status.imageID. Recording a rescan of a, t's digest, then b audits the
// policy of that namespace once (embargo_audit_evaluations_total) and the other not at all.
// Not parallel: the parallel tests' pods come and go, and pod changes re-audit every policy.
func TestAuditImageScanScope(t *testing.T) {
	ctx := context.Background()
	nsA, nsB := newNamespace(t), newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, nsA); deleteAllPods(t, nsB) })
	push := func(repo string) (tagRef, digestRef string) {
		t.Helper()
		img, err := variant(true, repo)
		if err != nil {
			t.Fatal(err)
		}
		if digestRef, err = reg.Push(repo+":1", img); err != nil {
			t.Fatal(err)
		}
		return reg.Ref(repo + ":1"), digestRef
	}
	_, pinned := push("scope/" + nsA + "-pinned")
	tagged, taggedDigest := push("scope/" + nsA + "-tagged")
	bTag, bDigest := push("scope/" + nsB)
	create(t, podOf(nsA, "pinned", pinned, nil, "", ""), podOf(nsA, "tagged", tagged, nil, "", ""))
	bPod := podOf(nsB, "running", bTag, nil, "", "")
	create(t, bPod)
	setRunning(t, bPod, bDigest)
	digestOf := func(ref string) string { return ref[strings.Index(ref, "@")+1:] }

	// every digest scanned and its ImageScan written, as the manager's cache sees it, before the
	// policies exist: what follows is the policies' own audits only
	for _, ref := range []string{pinned, taggedDigest, bDigest} {
		eventually(t, 60*time.Second, func() error {
			var is v1alpha1.ImageScan
			if err := comps.Policies.Reader.Get(ctx, client.ObjectKey{Name: cache.ObjectName(digestOf(ref))}, &is); err != nil {
				return err
			}
			if is.Status.Phase != v1alpha1.ImageScanScanned || is.Status.ObservedGeneration != is.Generation {
				return fmt.Errorf("ImageScan of %s: phase %q, observedGeneration %d of %d", ref, is.Status.Phase, is.Status.ObservedGeneration, is.Generation)
			}
			return nil
		})
	}
	pA := newPolicy(t, nsA, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	pB := newPolicy(t, nsB, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	waitStatus(t, pA.Name, 60*time.Second, wantCounts(counts{2, 2, 2, 2, 0}))
	waitStatus(t, pB.Name, 60*time.Second, wantCounts(counts{1, 1, 1, 1, 0}))
	auditedSince(t, pA.Name)
	auditedSince(t, pB.Name)

	for _, tc := range []struct {
		name, digest  string
		target, other string
	}{
		{"pinned in namespace A's spec", digestOf(pinned), pA.Name, pB.Name},
		{"tag in namespace A, resolved by the tag cache", digestOf(taggedDigest), pA.Name, pB.Name},
		{"status imageID in namespace B", digestOf(bDigest), pB.Name, pA.Name},
	} {
		rec, ok := comps.Engine.Lookup(ctx, tc.digest)
		if !ok {
			t.Fatalf("%s: no record for %s", tc.name, tc.digest)
		}
		target, other := evaluations(tc.target), evaluations(tc.other)
		// a rescan recorded: the ImageScan's scannedAt moves (seconds in the API)
		rescan := *rec
		rescan.ScannedAt = rec.ScannedAt.Add(time.Minute)
		if err := comps.Store.Write(ctx, &rescan); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		eventually(t, 30*time.Second, func() error {
			if n := evaluations(tc.target) - target; n < 1 {
				return fmt.Errorf("%s: %v audits of the policy running it since the rescan", tc.name, n)
			}
			return nil
		})
		// a barrier: two pokes of the target audited after the rescan's audit; any audit the
		// rescan queued for the other policy (at the same instant, with the same debounce) was
		// ready before the first poke and has run by then (one worker, first in first out)
		auditedSince(t, tc.target)
		if n := evaluations(tc.target) - target; n != 3 {
			t.Errorf("%s: %v audits of policy %s, want 3 (the rescan's and the barrier's two)", tc.name, n, tc.target)
		}
		if n := evaluations(tc.other) - other; n != 0 {
			t.Errorf("%s: %v audits of policy %s, which selects no pod running it; want 0", tc.name, n, tc.other)
		}
	}
	waitStatus(t, pA.Name, time.Second, wantCounts(counts{2, 2, 2, 2, 0}))
	waitStatus(t, pB.Name, time.Second, wantCounts(counts{1, 1, 1, 1, 0}))
}
