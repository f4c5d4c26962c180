package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Rules is what the ImageScan findings are matched against: the catalog and every policy now.
type Rules interface {
	// Findings matches inventories against every catalog entry and every policy's own vendors.
	Findings(ctx context.Context, invs []match.Inventory) ([]match.Finding, error)
	// PathRules are the path globs of those vendors: what a lean record must have kept files for.
	PathRules(ctx context.Context) ([]string, error)
	// Key identifies those vendors: while it stays the same, so do every record's findings.
	Key(ctx context.Context) (string, error)
}

// ImageScans is the one writer of ImageScan objects, and runs on the leader only. The engine
// hands it records through Save (the engine's store), the PodScanner failures through
// SaveFailure; VendorPolicy changes recompute every ImageScan's findings, so the FINDINGS column
// is current. Replicas that are not the leader keep their records in memory only.
type ImageScans struct {
	Client client.Client
	// Reader loads stored records (default: Client); the manager sets its API reader, as its
	// informer caches ImageScans without records.
	Reader         cache.ImageScanReader
	Rules          Rules
	CatalogVersion string
	Clock          clock.PassiveClock
	// Elected is closed once this replica leads (SetupWithManager sets mgr.Elected()); nil: the
	// controller does not run here, so Save keeps nothing.
	Elected <-chan struct{}

	pending sync.Map // object name -> *cache.Record
	events  chan event.GenericEvent

	mu     sync.Mutex
	phases map[string]v1alpha1.ImageScanPhase // object name -> phase counted in the gauge

	// rulesKey is the Rules.Key every ImageScan was last queued for recomputing under: a policy
	// change that leaves it as it is (a new Audit policy of catalog vendors, a changed rollout,
	// selector or exception) changes no finding, so it recomputes nothing.
	keyMu    sync.Mutex
	rulesKey string
	// current holds, by object name, the Rules.Key and generation each ImageScan's findings were
	// last written under: the creation event of an ImageScan this controller just wrote then
	// costs a cache read, not a read of its record and a match.
	current map[string]computed
}

type computed struct {
	key        string
	generation int64
}

// NewImageScans returns the controller; call SetupWithManager before the manager starts.
func NewImageScans(c client.Client, rules Rules, catalogVersion string, clk clock.PassiveClock) *ImageScans {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &ImageScans{
		Client: c, Reader: cache.ImageScanReader{Client: c}, Rules: rules, CatalogVersion: catalogVersion, Clock: clk,
		events:  make(chan event.GenericEvent, 1024),
		phases:  map[string]v1alpha1.ImageScanPhase{},
		current: map[string]computed{},
	}
}

// SetupWithManager registers the controller; it runs on the leader only.
func (r *ImageScans) SetupWithManager(mgr ctrl.Manager) error {
	if r.Elected == nil {
		r.Elected = mgr.Elected()
	}
	for _, p := range []v1alpha1.ImageScanPhase{v1alpha1.ImageScanPending, v1alpha1.ImageScanScanned, v1alpha1.ImageScanFailed} {
		metrics.ImagesScanned.WithLabelValues(string(p)).Set(0)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagescans").
		// creations (the initial list too: a new catalog recomputes everything) and spec changes;
		// this controller's own status writes change no generation
		For(&v1alpha1.ImageScan{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ImageScan{}, r.countPhases()).
		Watches(&v1alpha1.VendorPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allImageScans), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// allImageScans maps a policy change to every ImageScan, since findings depend on every
// policy's vendors, unless the vendors are the ones every ImageScan was last recomputed for.
func (r *ImageScans) allImageScans(ctx context.Context, _ client.Object) []reconcile.Request {
	if r.Rules != nil {
		key, err := r.Rules.Key(ctx)
		if err == nil {
			r.keyMu.Lock()
			same := key == r.rulesKey
			r.rulesKey = key
			r.keyMu.Unlock()
			if same {
				metrics.ImageScanRecomputes.WithLabelValues("skipped").Inc()
				return nil
			}
		}
	}
	reqs := requestsForAll(ctx, r.Client, &v1alpha1.ImageScanList{}, nil)
	metrics.ImageScanRecomputes.WithLabelValues("queued").Add(float64(len(reqs)))
	return reqs
}

// requestsForAll lists every object of list's kind (skipping those keep refuses) and returns a
// request for each: a policy change that concerns them all.
func requestsForAll(ctx context.Context, c client.Client, list client.ObjectList, keep func(client.Object) bool) []reconcile.Request {
	if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing to enqueue every object", "kind", fmt.Sprintf("%T", list))
		return nil
	}
	var out []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(client.Object); ok && (keep == nil || keep(obj)) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
		return nil
	})
	return out
}

// countPhases keeps the images-by-phase gauge from the informer's events, one object at a time,
// never by listing every ImageScan; it enqueues nothing.
func (r *ImageScans) countPhases() handler.EventHandler {
	phase := func(o client.Object) v1alpha1.ImageScanPhase {
		if is, ok := o.(*v1alpha1.ImageScan); ok {
			return is.Status.Phase
		}
		return ""
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.count(e.Object.GetName(), phase(e.Object))
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.count(e.ObjectNew.GetName(), phase(e.ObjectNew))
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.forget(e.Object.GetName())
		},
	}
}

func (r *ImageScans) leading() bool {
	if r.Elected == nil {
		return false
	}
	select {
	case <-r.Elected:
		return true
	default:
		return false
	}
}

// Load implements cache.Store.
func (r *ImageScans) Load(ctx context.Context, digest string) (*cache.Record, error) {
	return r.Reader.Load(ctx, digest)
}

// Save implements cache.Store: it queues rec for the leader's reconcile, which writes it. On a
// replica that does not lead it does nothing: the memory copy serves this replica, and the
// leader's PodScanner scans (and this controller records) whatever runs.
func (r *ImageScans) Save(ctx context.Context, rec *cache.Record) error {
	if !r.leading() {
		return nil
	}
	name := cache.ObjectName(rec.Digest)
	r.pending.Store(name, rec)
	obj := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: name}}
	select {
	case r.events <- event.GenericEvent{Object: obj}:
		return nil
	case <-ctx.Done():
		r.pending.CompareAndDelete(name, rec)
		return fmt.Errorf("queueing ImageScan %s: %w", name, ctx.Err())
	}
}

// SaveFailure marks the digest's ImageScan Failed with the reason and returns its consecutive
// failure count; a Scanned record is left alone (a good record beats a later transient failure).
func (r *ImageScans) SaveFailure(ctx context.Context, digest, image string, scanErr error) (int, error) {
	is, err := r.getOrCreate(ctx, digest, image)
	if err != nil {
		return 0, err
	}
	if is.Status.Phase == v1alpha1.ImageScanScanned {
		return is.Status.Failures, nil
	}
	orig := is.DeepCopy()
	st := &is.Status
	st.Phase = v1alpha1.ImageScanFailed
	st.Failures++
	st.Message = decision.Clip(registry.Redact(scanErr.Error()), 1024) // ImageScans are read cluster-wide
	r.setCondition(is, v1alpha1.ImageScanScannedCondition, metav1.ConditionFalse, cache.FailureReason(scanErr), st.Message)
	r.setCondition(is, v1alpha1.ImageScanReadyCondition, metav1.ConditionFalse, v1alpha1.ImageScanNotScannedReason, "no record to match: "+st.Message)
	st.ObservedGeneration = is.Generation
	return st.Failures, r.patch(ctx, orig, is)
}

// Reconcile writes the pending record of one digest, or recomputes its findings from the stored
// one, in one status patch.
func (r *ImageScans) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if v, fresh := r.pending.LoadAndDelete(req.Name); fresh {
		rec := v.(*cache.Record)
		if err := r.Write(ctx, rec); err != nil {
			r.pending.LoadOrStore(req.Name, rec) // the retry writes it, unless a newer one came
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, nil
	}
	if r.isCurrent(ctx, req.Name) {
		return ctrl.Result{}, nil
	}
	// the stored record, through Reader: the manager's informer keeps ImageScans without them
	var is v1alpha1.ImageScan
	if err := r.Reader.Client.Get(ctx, req.NamespacedName, &is); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, r.update(ctx, &is, nil)
}

// isCurrent reports whether the ImageScan's findings were written by this controller under the
// vendors of now, at its current generation (read from the cache).
func (r *ImageScans) isCurrent(ctx context.Context, name string) bool {
	r.mu.Lock()
	c, ok := r.current[name]
	r.mu.Unlock()
	if !ok || r.Rules == nil {
		return false
	}
	var is v1alpha1.ImageScan
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &is); err != nil || is.Generation != c.generation {
		return false
	}
	key, err := r.Rules.Key(ctx)
	return err == nil && key == c.key
}

// Write records rec now, creating its ImageScan if needed. Save queues records for it.
func (r *ImageScans) Write(ctx context.Context, rec *cache.Record) error {
	is, err := r.getOrCreate(ctx, rec.Digest, rec.Image)
	if err != nil {
		return err
	}
	return r.update(ctx, is, rec)
}

// update derives is's status, from rec when given, else from the record it stores, and patches
// it once when it changed; observedGeneration is stamped only when the findings are current.
func (r *ImageScans) update(ctx context.Context, is *v1alpha1.ImageScan, rec *cache.Record) (retErr error) {
	if rec == nil && is.Status.Phase == "" {
		return nil // just created: its writer patches the status next
	}
	orig := is.DeepCopy()
	var matched *computed // set once the findings are matched under the vendors of now
	defer func() {
		if retErr == nil {
			is.Status.ObservedGeneration = is.Generation
		}
		if err := r.patch(ctx, orig, is); err != nil {
			retErr = err
		}
		if retErr == nil && matched != nil {
			r.mu.Lock()
			r.current[is.Name] = *matched
			r.mu.Unlock()
		}
	}()

	st := &is.Status
	if rec != nil {
		encoded, err := cache.Encode(rec)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("record too large to keep; findings stand, a policy change needs a rescan", logKeyDigest, rec.Digest, "error", err.Error())
			encoded = nil
		}
		st.Phase = v1alpha1.ImageScanScanned
		st.ScannedAt = &metav1.Time{Time: rec.ScannedAt}
		st.ScannerVersion = rec.ScannerVersion
		st.Platforms = rec.Platforms
		st.PackageCount = rec.PackageCount
		st.Record = encoded
		st.Message = unusableAttached(rec)
		st.Failures = 0
	} else if st.Phase == v1alpha1.ImageScanScanned {
		var err error
		if rec, err = cache.FromImageScan(is); err != nil {
			r.setCondition(is, v1alpha1.ImageScanReadyCondition, metav1.ConditionFalse, v1alpha1.ImageScanBadRecordReason, err.Error())
			return nil
		}
	}
	if st.Phase != v1alpha1.ImageScanScanned || rec == nil {
		return nil // failed or pending: nothing to match; scanned without a record (too large): the findings stand
	}
	key, err := r.Rules.Key(ctx) // before the findings: a change meanwhile leaves them not current
	if err != nil {
		return err
	}
	findings, err := r.Rules.Findings(ctx, rec.Inventories)
	if err != nil {
		return err
	}
	matched = &computed{key: key, generation: is.Generation}
	paths, err := r.Rules.PathRules(ctx)
	if err != nil {
		return err
	}
	st.CatalogVersion = r.CatalogVersion
	st.FindingCount = len(findings)
	st.Findings = cache.Summarize(findings, cache.MaxListedFindings)
	r.setCondition(is, v1alpha1.ImageScanScannedCondition, metav1.ConditionTrue, v1alpha1.ImageScanSucceededReason,
		fmt.Sprintf("%d packages", rec.PackageCount))
	if rec.Answers(paths) {
		r.setCondition(is, v1alpha1.ImageScanReadyCondition, metav1.ConditionTrue, v1alpha1.ImageScanCurrentReason,
			fmt.Sprintf("%d findings against catalog %s and the policies present", len(findings), r.CatalogVersion))
	} else {
		r.setCondition(is, v1alpha1.ImageScanReadyCondition, metav1.ConditionFalse, v1alpha1.ImageScanRescanPendingReason,
			"a policy has path rules the stored record kept no files for; the image is rescanned in the background")
	}
	return nil
}

func (r *ImageScans) getOrCreate(ctx context.Context, digest, image string) (*v1alpha1.ImageScan, error) {
	key := client.ObjectKey{Name: cache.ObjectName(digest)}
	var is v1alpha1.ImageScan
	err := r.Client.Get(ctx, key, &is)
	if err == nil || !apierrors.IsNotFound(err) {
		return &is, err
	}
	is = v1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Labels: map[string]string{"app.kubernetes.io/managed-by": "embargo"}},
		Spec:       v1alpha1.ImageScanSpec{Digest: digest, Image: image},
	}
	if err := r.Client.Create(ctx, &is); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			metrics.StoreErrors.WithLabelValues("create").Inc()
			return nil, err
		}
		// created meanwhile (this cache had not seen it yet): read it from the API server
		if err := r.Client.Get(ctx, key, &is); err != nil {
			return nil, err
		}
	}
	return &is, nil
}

func (r *ImageScans) setCondition(is *v1alpha1.ImageScan, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&is.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: is.Generation, LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// patch writes is's status when it differs from orig, counting and logging failures.
func (r *ImageScans) patch(ctx context.Context, orig, is *v1alpha1.ImageScan) error {
	is.Status.ShortDigest = strings.TrimPrefix(registry.ShortDigest(is.Spec.Digest), "sha256:")
	if equality.Semantic.DeepEqual(orig.Status, is.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, is, client.MergeFrom(orig)); err != nil {
		metrics.StoreErrors.WithLabelValues("status").Inc()
		ctrl.LoggerFrom(ctx).Error(err, "cannot write the ImageScan status", "imagescan", is.Name)
		is.Status = orig.Status
		return err
	}
	metrics.ImageScanWrites.Inc()
	return nil
}

// count keeps the images-by-phase gauge by the change of one object, never by listing every
// ImageScan.
func (r *ImageScans) count(name string, phase v1alpha1.ImageScanPhase) {
	if phase == "" {
		phase = v1alpha1.ImageScanPending
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, had := r.phases[name]
	if had && prev == phase {
		return
	}
	if had {
		metrics.ImagesScanned.WithLabelValues(string(prev)).Dec()
	}
	r.phases[name] = phase
	metrics.ImagesScanned.WithLabelValues(string(phase)).Inc()
}

// forget drops a deleted ImageScan from the gauge.
func (r *ImageScans) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, had := r.phases[name]; had {
		metrics.ImagesScanned.WithLabelValues(string(prev)).Dec()
		delete(r.phases, name)
	}
	delete(r.current, name)
}

// unusableAttached names the SBOMs attached to rec's image that could not be read, for the
// status message of a scan that stands without them ("" when there are none).
func unusableAttached(rec *cache.Record) string {
	var lines []string
	for i := range rec.Inventories {
		if msg := rec.Inventories[i].Unusable(); msg != "" {
			lines = append(lines, msg)
		}
	}
	return decision.Clip(strings.Join(lines, "; "), 1024)
}
