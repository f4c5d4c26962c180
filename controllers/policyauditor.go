package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Event reasons.
const (
	// BannedVendorSoftwareReason is the Warning event on a workload that runs a banned vendor's
	// software, once per policy, digest and workload.
	BannedVendorSoftwareReason = "BannedVendorSoftware"
)

// RecordSource answers a digest's scan record without scanning (memory, then ImageScan), even
// one that misses a path rule added since: the PodScanner rescans those, and until then their
// other findings stand.
type RecordSource interface {
	Recorded(ctx context.Context, digest string) (*cache.Record, bool)
}

// PolicyAuditor writes each VendorPolicy's status from what runs in the cluster: pods joined
// with ImageScan records, never a registry call. Pod and Namespace changes re-audit every policy
// after a short debounce, so a burst of a thousand pod events costs a few audits; an ImageScan
// change re-audits, after the same debounce, only the policies selecting a pod that runs its
// digest (found through a field index on Pods by digest). Build it with NewPolicyAuditor.
type PolicyAuditor struct {
	Client   client.Client
	Policies *policy.Set
	Records  RecordSource
	// Tags is shared with the PodScanner: digests of containers whose status has no imageID.
	Tags     *registry.TagCache
	Clock    clock.PassiveClock
	Recorder record.EventRecorder
	Exempt   []string
	// Resync re-audits a policy with no dated change ahead (0: 10 minutes).
	Resync time.Duration
	// Debounce delays audits after cluster changes so bursts coalesce (0: 1 second).
	Debounce time.Duration
	// Reports, when set, receives each audit's results for the PolicyReports.
	Reports *PolicyReporter

	poke chan event.GenericEvent
	// told holds, per policy, the offenders already told by an event.
	told *told
}

// told is, per policy, the offenders (digest × workload) already told by an event.
type told struct {
	mu       sync.Mutex
	byPolicy map[string]map[string]bool
}

// NewPolicyAuditor returns a with its defaults filled in: the real clock, a 10-minute resync, a
// one-second debounce, its own tag cache when none is shared.
func NewPolicyAuditor(a PolicyAuditor) *PolicyAuditor {
	if a.Clock == nil {
		a.Clock = clock.RealClock{}
	}
	if a.Resync <= 0 {
		a.Resync = 10 * time.Minute
	}
	if a.Debounce <= 0 {
		a.Debounce = time.Second
	}
	if a.Tags == nil {
		a.Tags = registry.NewTagCache(0)
	}
	a.poke = make(chan event.GenericEvent, 1)
	a.told = &told{byPolicy: map[string]map[string]bool{}}
	return &a
}

// PodDigestIndex is the field index on Pods, in the manager's cache, by the digests their
// containers run as far as the pod itself says (status imageID, else the spec's pinned digest;
// see podDigest). A container that says neither is indexed under UnresolvedDigest: only the
// tag cache knows what it runs.
const (
	PodDigestIndex   = "embargo.dev/digest"
	UnresolvedDigest = "unresolved"
)

// podDigests are the values of PodDigestIndex for obj.
func podDigests(obj client.Object) []string {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	var out []string
	for _, c := range podContainers(pod) {
		d, known := podDigest(c)
		if !known {
			d = UnresolvedDigest
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// SetupWithManager registers the controller and the Pod digest index; it runs on the leader only.
func (r *PolicyAuditor) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, PodDigestIndex, podDigests); err != nil {
		return fmt.Errorf("indexing pods by digest: %w", err)
	}
	all := r.enqueue(r.allPolicies)
	return ctrl.NewControllerManagedBy(mgr).
		Named("policyauditor").
		For(&v1alpha1.VendorPolicy{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, all, builder.WithPredicates(podAuditChanged(r.Exempt))).
		// a new record or outcome matters; the ImageScans controller's findings recomputes do not
		Watches(&v1alpha1.ImageScan{}, r.enqueue(r.policiesRunning), builder.WithPredicates(scanOutcomeChanged())).
		Watches(&corev1.Namespace{}, all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.poke, all)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// scanOutcomeChanged passes ImageScans created or deleted, and updates that change the phase or
// the scan itself: what the audit reads (records, failures), not the findings column.
func scanOutcomeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.ImageScan)
			n, ok2 := e.ObjectNew.(*v1alpha1.ImageScan)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase || !o.Status.ScannedAt.Equal(n.Status.ScannedAt) || o.Status.Failures != n.Status.Failures
		},
	}
}

// Poke re-audits every policy soon; the PodScanner calls it when it learns a tag's digest.
func (r *PolicyAuditor) Poke() {
	select {
	case r.poke <- event.GenericEvent{Object: &v1alpha1.VendorPolicy{}}:
	default: // one pending poke is enough
	}
}

// enqueue maps each event's object to the policies to re-audit, delayed by Debounce: the queue
// holds each policy once, so events arriving meanwhile fold into one audit.
func (r *PolicyAuditor) enqueue(policies func(context.Context, client.Object) []string) handler.EventHandler {
	add := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, name := range policies(ctx, obj) {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}, r.Debounce)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// allPolicies names every policy: a pod, namespace or tag change may concern any of them.
func (r *PolicyAuditor) allPolicies(ctx context.Context, _ client.Object) []string {
	var list v1alpha1.VendorPolicyList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing VendorPolicies to re-audit")
		return nil
	}
	out := make([]string, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, list.Items[i].Name)
	}
	return out
}

// policiesRunning names the policies an ImageScan's change concerns: those that select at least
// one pod running its digest, by the same selection the audit applies. Other policies judge
// no container of that digest, so their verdicts cannot change. When the answer cannot be
// computed, every policy is re-audited: too many audits rather than a stale status.
func (r *PolicyAuditor) policiesRunning(ctx context.Context, obj client.Object) []string {
	is, ok := obj.(*v1alpha1.ImageScan)
	if !ok || is.Spec.Digest == "" {
		return nil
	}
	log := ctrl.LoggerFrom(ctx)
	pods, err := r.podsRunning(ctx, is.Spec.Digest)
	if err != nil {
		log.Error(err, "listing the pods of a digest; re-auditing every policy", logKeyDigest, is.Spec.Digest)
		return r.allPolicies(ctx, obj)
	}
	if len(pods) == 0 {
		return nil
	}
	compiled, _, err := r.Policies.List(ctx) // a policy that does not compile is not audited
	if err != nil {
		log.Error(err, "listing policies; re-auditing every policy", logKeyDigest, is.Spec.Digest)
		return r.allPolicies(ctx, obj)
	}
	nsLabels := map[string]map[string]string{}
	for _, p := range pods {
		if _, ok := nsLabels[p.Namespace]; ok {
			continue
		}
		var ns corev1.Namespace
		if err := r.Client.Get(ctx, client.ObjectKey{Name: p.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
			log.Error(err, "reading a namespace; re-auditing every policy", logKeyDigest, is.Spec.Digest)
			return r.allPolicies(ctx, obj)
		}
		nsLabels[p.Namespace] = ns.Labels // none when gone, as in snapshot
	}
	var out []string
	for _, c := range compiled {
		if slices.ContainsFunc(pods, func(p *corev1.Pod) bool {
			return c.Selects(p.Namespace, nsLabels[p.Namespace], p.Labels, r.Exempt)
		}) {
			out = append(out, c.Name)
		}
	}
	return out
}

// podsRunning returns the auditable pods (from the cache, read only) with a container that
// runs digest, as snapshot would judge it: by the digest index, and among the pods only the
// tag cache can answer for, by their tags' resolutions.
func (r *PolicyAuditor) podsRunning(ctx context.Context, digest string) ([]*corev1.Pod, error) {
	var byDigest, unresolved corev1.PodList
	if err := r.Client.List(ctx, &byDigest, client.MatchingFields{PodDigestIndex: digest}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	if err := r.Client.List(ctx, &unresolved, client.MatchingFields{PodDigestIndex: UnresolvedDigest}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for i := range byDigest.Items {
		if pod := &byDigest.Items[i]; auditable(pod, r.Exempt) {
			out = append(out, pod)
		}
	}
	for i := range unresolved.Items {
		pod := &unresolved.Items[i]
		if !auditable(pod, r.Exempt) || slices.ContainsFunc(out, func(p *corev1.Pod) bool { return p.UID == pod.UID }) {
			continue
		}
		if slices.ContainsFunc(podContainers(pod), func(c container) bool {
			_, known := podDigest(c)
			return !known && containerDigest(r.Tags, pod.Namespace, c) == digest
		}) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// podAuditChanged passes pod changes that can change a verdict.
func podAuditChanged(exempt []string) predicate.Predicate {
	notExempt := func(o client.Object) bool { return !slices.Contains(exempt, o.GetNamespace()) }
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return notExempt(e.Object) },
		DeleteFunc: func(e event.DeleteEvent) bool { return notExempt(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 || !notExempt(n) {
				return false
			}
			return imagesKey(o) != imagesKey(n) || o.Status.Phase != n.Status.Phase ||
				!maps.Equal(o.Labels, n.Labels) || !slices.EqualFunc(o.OwnerReferences, n.OwnerReferences, func(a, b metav1.OwnerReference) bool { return a.UID == b.UID })
		},
		GenericFunc: func(e event.GenericEvent) bool { return notExempt(e.Object) },
	}
}

// Reconcile audits one policy.
func (r *PolicyAuditor) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var vp v1alpha1.VendorPolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &vp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
			r.Reports.forget(req.Name)
			metrics.AuditEvaluations.DeleteLabelValues(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	compiled, invalid, err := r.Policies.List(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()

	if i := slices.IndexFunc(invalid, func(b policy.Invalid) bool { return b.Policy.Name == vp.Name }); i >= 0 {
		r.forget(vp.Name)
		r.Reports.set(vp.Name, nil) // not audited: nothing to report
		st := invalidStatus(&vp.Status, vp.Generation, invalid[i].Err, now)
		if err := r.writeStatus(ctx, &vp, st, now); err != nil && !apierrors.IsConflict(err) {
			return ctrl.Result{}, err
		} else if err != nil {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, nil // a spec change brings it back
	}
	i := slices.IndexFunc(compiled, func(c *policy.Compiled) bool { return c.Name == vp.Name })
	if i < 0 { // created after the lister's read; its own event follows
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	c := compiled[i]

	pods, nsLabels, err := r.snapshot(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	ev := evaluate(c, pods, nsLabels, r.Exempt, r.recordsFor(ctx), now)
	// counted once the audit is over, its status written (or found current): a reader who sees
	// the count move finds everything that audit did in place
	defer metrics.AuditEvaluations.WithLabelValues(vp.Name).Inc()
	st := auditStatus(&vp.Status, vp.Generation, c, ev, now)
	// metrics and events first: whoever sees the new status finds them consistent
	r.setMetrics(ctx, vp.Name, ev)
	r.report(vp.Name, c, ev, st.Action)
	r.Reports.set(vp.Name, policyReportResults(vp.Name, st.Action, ev))
	if err := r.writeStatus(ctx, &vp, st, now); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}

	after := requeueAfter(c, now, r.Resync)
	log.V(1).Info("audited", logKeyPolicy, vp.Name, "violations", ev.Total, "unchecked", ev.Unchecked, "requeueAfter", after.String())
	return ctrl.Result{RequeueAfter: after}, nil
}

// snapshot reads the pods the audit judges (from the cache, no copies: read only), with their
// top workloads and digests, and the namespaces' labels.
func (r *PolicyAuditor) snapshot(ctx context.Context) ([]podView, map[string]map[string]string, error) {
	var nss corev1.NamespaceList
	if err := r.Client.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("listing namespaces: %w", err)
	}
	nsLabels := make(map[string]map[string]string, len(nss.Items))
	for i := range nss.Items {
		nsLabels[nss.Items[i].Name] = nss.Items[i].Labels
	}
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	walker := NewOwnerWalker(r.Client)
	views := make([]podView, 0, len(list.Items))
	for i := range list.Items {
		pod := &list.Items[i]
		if !auditable(pod, r.Exempt) {
			continue
		}
		cs := podContainers(pod)
		pv := podView{Namespace: pod.Namespace, Name: pod.Name, Labels: pod.Labels, Workload: walker.Top(ctx, pod),
			Containers: make([]containerView, 0, len(cs))}
		for _, c := range cs {
			pv.Containers = append(pv.Containers, newContainerView(c, containerDigest(r.Tags, pod.Namespace, c)))
		}
		views = append(views, pv)
	}
	return views, nsLabels, nil
}

// recordsFor memoizes record lookups for one audit.
func (r *PolicyAuditor) recordsFor(ctx context.Context) func(string) (*cache.Record, bool) {
	type answer struct {
		rec *cache.Record
		ok  bool
	}
	seen := map[string]answer{}
	return func(digest string) (*cache.Record, bool) {
		if a, ok := seen[digest]; ok {
			return a.rec, a.ok
		}
		rec, ok := r.Records.Recorded(ctx, digest)
		seen[digest] = answer{rec, ok}
		return rec, ok
	}
}

// writeStatus updates the status when it differs from the stored one in anything but
// lastAuditTime. Update, not a merge patch: the cached copy may be one write behind, and the
// resourceVersion then makes the write fail instead of merging onto the wrong base.
func (r *PolicyAuditor) writeStatus(ctx context.Context, vp *v1alpha1.VendorPolicy, st v1alpha1.VendorPolicyStatus, now time.Time) error {
	if !statusChanged(&vp.Status, &st) {
		return nil
	}
	st.LastAuditTime = &metav1.Time{Time: now}
	vp.Status = st
	if err := r.Client.Status().Update(ctx, vp); err != nil {
		return err
	}
	metrics.StatusWrites.Inc()
	return nil
}

// report emits one Warning event per new offender (digest × workload) of a policy; offenders
// that went away are forgotten, so a regression is reported again.
func (r *PolicyAuditor) report(name string, c *policy.Compiled, ev *evaluation, action v1alpha1.Action) {
	r.told.mu.Lock()
	defer r.told.mu.Unlock()
	prev := r.told.byPolicy[name]
	cur := make(map[string]bool, len(ev.Offenders))
	for _, o := range ev.Offenders {
		cur[o.Key] = true
		if prev[o.Key] || r.Recorder == nil {
			continue
		}
		v := o.Violation
		pkg := v.Package
		if pkg == "" {
			pkg = "files"
		}
		r.Recorder.Eventf(o.Workload.Object, corev1.EventTypeWarning, BannedVendorSoftwareReason,
			"Container %q (pod %s) runs %s software: %s in image %s (%s; evidence %s). VendorPolicy %s, action %s",
			v.Container, v.Pod, v.Vendor, pkg, v.Image, registry.ShortDigest(v.Digest), v.Evidence, c.Name, action)
	}
	r.told.byPolicy[name] = cur
}

func (r *PolicyAuditor) forget(name string) {
	r.told.mu.Lock()
	delete(r.told.byPolicy, name)
	r.told.mu.Unlock()
	metrics.Violations.DeletePartialMatch(prometheus.Labels{"policy": name})
}

func (r *PolicyAuditor) setMetrics(ctx context.Context, name string, ev *evaluation) {
	metrics.Violations.DeletePartialMatch(prometheus.Labels{"policy": name})
	for k, n := range ev.ByNamespaceVendor {
		metrics.Violations.WithLabelValues(name, k.Namespace, k.Vendor).Set(float64(n))
	}
}
