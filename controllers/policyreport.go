package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/kinds"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/registry"
)

// The PolicyReport API of the Kubernetes Policy working group, as Policy Reporter, Kyverno and
// others read it. Embargo writes it only where its CRD is installed, through unstructured
// objects: no Go dependency, and no informer for a kind that may not exist.
var (
	PolicyReportGroupVersion = schema.GroupVersion{Group: "wgpolicyk8s.io", Version: "v1alpha2"}
	policyReportGVK          = PolicyReportGroupVersion.WithKind("PolicyReport")
	policyReportListGVK      = PolicyReportGroupVersion.WithKind("PolicyReportList")
)

// PolicyReport naming and labels.
const (
	// PolicyReportName is the name of Embargo's PolicyReport in each namespace with results.
	PolicyReportName = "embargo"
	// PolicyReportSource is results[].source.
	PolicyReportSource = "embargo"
	// PolicyReportCategory is results[].category.
	PolicyReportCategory = "banned-vendor"
	// ManagedByLabel marks the reports Embargo owns: it deletes them when their namespace is clean.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// TruncatedAnnotation is set, to the number of results left out, on a report that hit the cap.
	TruncatedAnnotation = "embargo.dev/results-truncated"
	// DefaultMaxReportResults caps one report's results (about 1 KiB each): a report stays well
	// under etcd's object size limit. The summary always counts every result.
	DefaultMaxReportResults = 500
)

// policyReporterKey is the one request of the PolicyReporter: it reconciles every report at once.
var policyReporterKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "policyreports"}}

// PolicyReporter writes one wgpolicyk8s.io/v1alpha2 PolicyReport per namespace where Embargo has
// results (named "embargo", labelled app.kubernetes.io/managed-by=embargo), so that Policy
// Reporter and other report readers show the audit with no extra work, and deletes the report
// once its namespace is clean. The PolicyAuditor hands it each policy's results after each
// audit; it writes only what changed. It does nothing while the PolicyReport CRD is not served:
// discovery is asked lazily and again every Recheck while the CRD is absent and there is
// something to report. Report failures are logged and retried; they never touch the audit.
// Like the auditor, it runs on the leader only. Build it with NewPolicyReporter.
type PolicyReporter struct {
	// Client writes reports; its cached reads list VendorPolicies.
	Client client.Client
	// Reader reads reports uncached (the manager's API reader): no informer for an optional kind.
	Reader client.Reader
	// Discovery tells whether the PolicyReport CRD is served.
	Discovery discovery.DiscoveryInterface
	// Clock stamps new results (results[].timestamp: when Embargo first reported them).
	Clock clock.PassiveClock
	// Recheck is how often discovery is asked again while the CRD is absent (0: 30 seconds).
	Recheck time.Duration
	// Debounce delays a report pass after an audit so that audits of many policies fold into
	// one pass (0: 1 second).
	Debounce time.Duration
	// MaxResults caps each report's results (0: DefaultMaxReportResults).
	MaxResults int

	poke chan event.GenericEvent
	// results holds, per policy audited since start, its results by namespace (no timestamps).
	results *auditResults

	// served caches discovery's answer; only Reconcile (one at a time) touches these.
	served    bool
	checkedAt time.Time // wall time of the last discovery that found the CRD absent
}

// auditResults are the auditor's latest results, per policy, by namespace.
type auditResults struct {
	mu       sync.Mutex
	byPolicy map[string]map[string][]reportResult
}

// NewPolicyReporter returns r with its defaults filled in: the real clock, a 30-second recheck,
// a one-second debounce, DefaultMaxReportResults. SetupWithManager fills Reader and Discovery
// from the manager when they are nil.
func NewPolicyReporter(r PolicyReporter) *PolicyReporter {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Recheck <= 0 {
		r.Recheck = 30 * time.Second
	}
	if r.Debounce <= 0 {
		r.Debounce = time.Second
	}
	if r.MaxResults <= 0 {
		r.MaxResults = DefaultMaxReportResults
	}
	r.poke = make(chan event.GenericEvent, 1)
	r.results = &auditResults{byPolicy: map[string]map[string][]reportResult{}}
	return &r
}

// reportResult is one results[] entry of the v1alpha2 schema.
type reportResult struct {
	Source     string            `json:"source,omitempty"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule,omitempty"`
	Category   string            `json:"category,omitempty"`
	Severity   string            `json:"severity,omitempty"`
	Timestamp  reportTimestamp   `json:"timestamp"`
	Result     string            `json:"result,omitempty"`
	Scored     bool              `json:"scored,omitempty"`
	Resources  []reportResource  `json:"resources,omitempty"`
	Message    string            `json:"message,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

type reportTimestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

type reportResource struct {
	APIVersion string    `json:"apiVersion,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Name       string    `json:"name,omitempty"`
	Namespace  string    `json:"namespace,omitempty"`
	UID        types.UID `json:"uid,omitempty"`
}

type reportSummary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// reportContent is what Embargo owns of a report.
type reportContent struct {
	Results []reportResult `json:"results,omitempty"`
	Summary reportSummary  `json:"summary"`
}

// Result values.
const (
	resultFail = "fail"
	resultSkip = "skip"
)

// SetupWithManager registers the reporter; it runs on the leader only.
func (r *PolicyReporter) SetupWithManager(mgr ctrl.Manager) error {
	if r.Reader == nil {
		r.Reader = mgr.GetAPIReader()
	}
	if r.Discovery == nil {
		dc, err := discovery.NewDiscoveryClientForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
		if err != nil {
			return err
		}
		r.Discovery = dc
	}
	debounced := handler.Funcs{
		GenericFunc: func(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			q.AddAfter(policyReporterKey, r.Debounce)
		},
	}
	r.trigger() // a first pass at start: reports left from before are checked even with no policy
	return ctrl.NewControllerManagedBy(mgr).
		Named("policyreporter").
		WatchesRawSource(source.Channel(r.poke, debounced)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

func (r *PolicyReporter) trigger() {
	select {
	case r.poke <- event.GenericEvent{Object: &v1alpha1.VendorPolicy{}}:
	default: // one pending pass is enough
	}
}

// set records policy's results after an audit; an audit that found nothing (or an invalid
// policy) sets none. Safe on a nil reporter.
func (r *PolicyReporter) set(policy string, byNamespace map[string][]reportResult) {
	if r == nil {
		return
	}
	r.results.mu.Lock()
	r.results.byPolicy[policy] = byNamespace
	r.results.mu.Unlock()
	r.trigger()
}

// forget drops a deleted policy's results. Safe on a nil reporter.
func (r *PolicyReporter) forget(policy string) {
	if r == nil {
		return
	}
	r.results.mu.Lock()
	delete(r.results.byPolicy, policy)
	r.results.mu.Unlock()
	r.trigger()
}

// Reconcile brings every namespace's report in line with the latest audit of every policy.
func (r *PolicyReporter) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)

	var policies v1alpha1.VendorPolicyList
	if err := r.Client.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing VendorPolicies: %w", err)
	}
	byPolicy, pending := r.snapshot(policies.Items)
	if len(pending) > 0 {
		// a report built now would lack those policies' results, and a clean-looking namespace
		// would lose its report until their audit; the audit pokes when it is done
		log.V(1).Info("waiting for the first audit of some policies", "policies", pending)
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	desired := r.desired(byPolicy)

	served, err := r.isServed()
	if err != nil {
		log.Error(err, "asking discovery for PolicyReports; retrying", "groupVersion", PolicyReportGroupVersion.String())
		return ctrl.Result{RequeueAfter: r.Recheck}, nil
	}
	if !served {
		if len(desired) > 0 { // something to write once the CRD comes
			return ctrl.Result{RequeueAfter: r.Recheck}, nil
		}
		return ctrl.Result{}, nil
	}

	existing := &unstructured.UnstructuredList{}
	existing.SetGroupVersionKind(policyReportListGVK)
	if err := r.Reader.List(ctx, existing, client.MatchingLabels{ManagedByLabel: PolicyReportSource}); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			log.Info("the PolicyReport CRD is gone; reports paused until it is back")
			r.served, r.checkedAt = false, time.Now()
			return ctrl.Result{RequeueAfter: r.Recheck}, nil
		}
		log.Error(err, "listing PolicyReports; retrying")
		return ctrl.Result{RequeueAfter: r.Recheck}, nil
	}

	failed := 0
	have := map[string]*unstructured.Unstructured{}
	for i := range existing.Items {
		u := &existing.Items[i]
		if _, ok := desired[u.GetNamespace()]; ok && u.GetName() == PolicyReportName {
			have[u.GetNamespace()] = u
			continue
		}
		if err := r.Client.Delete(ctx, u, client.Preconditions{UID: new(u.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
			log.Error(err, "deleting a PolicyReport", "namespace", u.GetNamespace(), "name", u.GetName())
			failed++
			continue
		}
		metrics.PolicyReportWrites.WithLabelValues(u.GetNamespace()).Inc()
		log.V(1).Info("deleted PolicyReport: namespace clean", "namespace", u.GetNamespace())
	}
	now := r.Clock.Now()
	for _, ns := range slices.Sorted(maps.Keys(desired)) {
		if err := r.apply(ctx, ns, desired[ns], have[ns], now); err != nil {
			log.Error(err, "writing a PolicyReport", "namespace", ns)
			failed++
		}
	}
	if failed > 0 {
		return ctrl.Result{RequeueAfter: r.Recheck}, nil
	}
	return ctrl.Result{}, nil
}

// snapshot returns the results of the policies that exist, and the names of those not audited
// yet; results of policies that are gone are dropped.
func (r *PolicyReporter) snapshot(policies []v1alpha1.VendorPolicy) (map[string]map[string][]reportResult, []string) {
	r.results.mu.Lock()
	defer r.results.mu.Unlock()
	exist := make(map[string]bool, len(policies))
	var pending []string
	for i := range policies {
		name := policies[i].Name
		exist[name] = true
		if _, ok := r.results.byPolicy[name]; !ok {
			pending = append(pending, name)
		}
	}
	for name := range r.results.byPolicy {
		if !exist[name] {
			delete(r.results.byPolicy, name)
		}
	}
	return maps.Clone(r.results.byPolicy), pending
}

// desired merges every policy's results into one report per namespace: failures first, in a
// stable order, capped at MaxResults, with a summary of all of them.
func (r *PolicyReporter) desired(byPolicy map[string]map[string][]reportResult) map[string]reportContent {
	merged := map[string][]reportResult{}
	for _, byNS := range byPolicy {
		for ns, rs := range byNS {
			merged[ns] = append(merged[ns], rs...)
		}
	}
	out := make(map[string]reportContent, len(merged))
	for ns, rs := range merged {
		if len(rs) == 0 {
			continue
		}
		slices.SortFunc(rs, compareResults)
		var c reportContent
		for _, res := range rs {
			switch res.Result {
			case resultFail:
				c.Summary.Fail++
			case resultSkip:
				c.Summary.Skip++
			}
		}
		c.Results = rs[:min(len(rs), r.MaxResults)]
		out[ns] = c
	}
	return out
}

// apply creates or updates namespace ns's report when its content differs from want. Results
// already in the report keep their timestamp, so a re-audit that finds the same writes nothing.
func (r *PolicyReporter) apply(ctx context.Context, ns string, want reportContent, have *unstructured.Unstructured, now time.Time) error {
	total := want.Summary.Fail + want.Summary.Skip + want.Summary.Pass + want.Summary.Warn + want.Summary.Error
	truncated := ""
	if n := total - len(want.Results); n > 0 {
		truncated = strconv.Itoa(n)
	}
	var old reportContent
	if have != nil {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(have.UnstructuredContent(), &old); err != nil {
			old = reportContent{} // not ours to understand: rewrite it
		}
	}
	stamps := make(map[string]reportTimestamp, len(old.Results))
	for _, res := range old.Results {
		stamps[resultKey(res)] = res.Timestamp
	}
	ts := reportTimestamp{Seconds: now.Unix()}
	results := make([]reportResult, len(want.Results))
	for i, res := range want.Results {
		if s, ok := stamps[resultKey(res)]; ok {
			res.Timestamp = s
		} else {
			res.Timestamp = ts
		}
		results[i] = res
	}
	want.Results = results

	if have != nil && reflect.DeepEqual(old, want) && have.GetLabels()[ManagedByLabel] == PolicyReportSource &&
		have.GetAnnotations()[TruncatedAnnotation] == truncated {
		return nil
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&want)
	if err != nil {
		return err
	}
	u := have
	if u == nil {
		u = &unstructured.Unstructured{Object: map[string]any{}}
		u.SetGroupVersionKind(policyReportGVK)
		u.SetNamespace(ns)
		u.SetName(PolicyReportName)
	}
	u.Object["results"] = content["results"]
	u.Object["summary"] = content["summary"]
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = PolicyReportSource
	u.SetLabels(labels)
	annotations := u.GetAnnotations()
	if truncated != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[TruncatedAnnotation] = truncated
	} else {
		delete(annotations, TruncatedAnnotation)
	}
	u.SetAnnotations(annotations)
	if have == nil {
		err = r.Client.Create(ctx, u)
	} else {
		err = r.Client.Update(ctx, u) // resourceVersion from the read: a concurrent change fails it
	}
	if err != nil {
		return err
	}
	metrics.PolicyReportWrites.WithLabelValues(ns).Inc()
	ctrl.LoggerFrom(ctx).V(1).Info("wrote PolicyReport", "namespace", ns, "fail", want.Summary.Fail, "skip", want.Summary.Skip)
	return nil
}

// isServed reports whether the API server serves PolicyReports. A positive answer is kept (a
// failed list resets it); a negative one for Recheck of wall time, so a CRD installed later is
// found without polling discovery on every pass.
func (r *PolicyReporter) isServed() (bool, error) {
	if r.served {
		return true, nil
	}
	if !r.checkedAt.IsZero() && time.Since(r.checkedAt) < r.Recheck {
		return false, nil
	}
	list, err := r.Discovery.ServerResourcesForGroupVersion(PolicyReportGroupVersion.String())
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	if err == nil && list != nil {
		for _, res := range list.APIResources {
			if res.Name == "policyreports" && res.Kind == policyReportGVK.Kind {
				r.served = true
				return true, nil
			}
		}
	}
	r.checkedAt = time.Now()
	return false, nil
}

// policyReportResults turns one policy's evaluation into report results by namespace: a fail
// per violation, a skip per excepted one.
func policyReportResults(policyName string, action v1alpha1.Action, ev *evaluation) map[string][]reportResult {
	out := map[string][]reportResult{}
	for _, v := range ev.Violations {
		ref := ev.Refs[workloadKey(v.Namespace, v.WorkloadKind, v.WorkloadName)]
		apiVersion := ref.APIVersion
		if apiVersion == "" {
			if k, ok := kinds.Lookup(v.WorkloadKind); ok {
				apiVersion = k.APIVersion
			}
		}
		pkg := v.Package
		if pkg == "" {
			pkg = "files"
		}
		msg := fmt.Sprintf("Container %q runs %s software: %s in image %s (%s; evidence %s). ",
			v.Container, v.Vendor, pkg, v.Image, registry.ShortDigest(v.Digest), v.Evidence)
		res := reportResult{
			Source: PolicyReportSource, Policy: policyName, Rule: v.Vendor, Category: PolicyReportCategory,
			Severity: severityOf(action), Result: resultFail, Scored: true,
			Resources: []reportResource{{APIVersion: apiVersion, Kind: v.WorkloadKind, Name: v.WorkloadName, Namespace: v.Namespace, UID: ref.UID}},
			Properties: map[string]string{
				"container": v.Container, "image": v.Image, "digest": v.Digest, "evidence": v.Evidence, "action": string(action),
			},
		}
		if v.Package != "" {
			res.Properties["package"] = v.Package
		}
		if v.Excepted {
			res.Result = resultSkip
			res.Message = msg + fmt.Sprintf("Excepted by VendorPolicy %s", policyName)
		} else {
			res.Message = msg + fmt.Sprintf("VendorPolicy %s, action %s", policyName, action)
		}
		out[v.Namespace] = append(out[v.Namespace], res)
	}
	return out
}

// severityOf ranks a violation by what the policy does about it now: one that is (or is about
// to be) enforced is high, one only recorded is medium.
func severityOf(action v1alpha1.Action) string {
	if action == v1alpha1.ActionAudit {
		return "medium"
	}
	return "high"
}

// resultKey identifies a result across audits (for its timestamp).
func resultKey(r reportResult) string {
	var uid types.UID
	var kind, name string
	if len(r.Resources) > 0 {
		uid, kind, name = r.Resources[0].UID, r.Resources[0].Kind, r.Resources[0].Name
	}
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s", r.Policy, r.Rule, r.Result, uid, kind, name, r.Properties["container"], r.Properties["digest"])
}

func compareResults(a, b reportResult) int {
	rank := func(r reportResult) int {
		if r.Result == resultFail {
			return 0
		}
		return 1
	}
	res := func(r reportResult) reportResource {
		if len(r.Resources) > 0 {
			return r.Resources[0]
		}
		return reportResource{}
	}
	return cmp.Or(
		cmp.Compare(rank(a), rank(b)),
		cmp.Compare(res(a).Kind, res(b).Kind),
		cmp.Compare(res(a).Name, res(b).Name),
		cmp.Compare(a.Properties["container"], b.Properties["container"]),
		cmp.Compare(a.Policy, b.Policy),
		cmp.Compare(a.Rule, b.Rule),
		cmp.Compare(a.Properties["digest"], b.Properties["digest"]),
	)
}
