package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/embargo-dev/embargo/api/v1alpha1"

	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Engine is the part of internal/scan the audit uses. Its scans run at background priority, so
// admission requests always find a free slot.
type Engine interface {
	Resolve(ctx context.Context, image string, kc authn.Keychain) (registry.Target, error)
	Lookup(ctx context.Context, digest string) (*cache.Record, bool)
	ScanBackground(ctx context.Context, t registry.Target, kc authn.Keychain) (*cache.Record, error)
}

// FailureStore marks a digest's ImageScan Failed and returns its consecutive failure count.
type FailureStore interface {
	SaveFailure(ctx context.Context, digest, image string, scanErr error) (int, error)
}

// Log keys.
const (
	logKeyImage    = "image"
	logKeyDigest   = "digest"
	logKeyRetry    = "retryIn"
	logKeyPolicy   = "policy"
	logKeyFailures = "failures"
)

// PodScanner makes sure every digest running in a non-exempt namespace is scanned once. Work
// grows with unique digests, not pods: a digest already recorded costs a memory lookup.
type PodScanner struct {
	Client    client.Client
	Engine    Engine
	Store     FailureStore
	Keychains registry.KeychainFunc
	// Tags is shared with the PolicyAuditor.
	Tags   *registry.TagCache
	Exempt []string
	// TagTTL is how long a tag's resolution is trusted (0: 5 minutes).
	TagTTL time.Duration
	// Resolved is called when a tag resolved to a digest not known before.
	Resolved func()
	// Now is wall time for retry backoff (nil: time.Now): the workqueue's delays are wall time.
	Now func() time.Time
	// MaxConcurrentReconciles bounds pods handled at once (0: 2); the engine bounds scans anyway.
	MaxConcurrentReconciles int

	retries backoff
	flights singleflight.Group
}

// SetupWithManager registers the controller; it runs on the leader only.
func (r *PodScanner) SetupWithManager(mgr ctrl.Manager) error {
	if r.Tags == nil {
		r.Tags = registry.NewTagCache(0)
	}
	if r.TagTTL <= 0 {
		r.TagTTL = 5 * time.Minute
	}
	if r.MaxConcurrentReconciles <= 0 {
		r.MaxConcurrentReconciles = 2
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("podscanner").
		For(&corev1.Pod{}, builder.WithPredicates(podImagesChanged(r.Exempt))).
		// a policy may add path rules the stored records kept no files for: their Lookup then
		// misses and the pods running them are rescanned here, at background priority
		Watches(&v1alpha1.VendorPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPods), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *PodScanner) allPods(ctx context.Context, _ client.Object) []reconcile.Request {
	return requestsForAll(ctx, r.Client, &corev1.PodList{}, func(o client.Object) bool {
		return !slices.Contains(r.Exempt, o.GetNamespace())
	})
}

// podImagesChanged passes new pods and pods whose images or running digests changed.
func podImagesChanged(exempt []string) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !slices.Contains(exempt, e.Object.GetNamespace()) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			return ok1 && ok2 && !slices.Contains(exempt, n.Namespace) && imagesKey(o) != imagesKey(n)
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(e event.GenericEvent) bool { return !slices.Contains(exempt, e.Object.GetNamespace()) },
	}
}

func imagesKey(pod *corev1.Pod) string {
	var b strings.Builder
	for _, c := range podContainers(pod) {
		b.WriteString(c.Name + "=" + c.Image + "@" + c.Running + ";")
	}
	return b.String()
}

// auditable reports whether pod runs (or will run) containers the audit cares about.
func auditable(pod *corev1.Pod, exempt []string) bool {
	return !slices.Contains(exempt, pod.Namespace) && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// Reconcile scans the digests of one pod's containers that have no record yet.
func (r *PodScanner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var pod corev1.Pod
	if err := r.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !auditable(&pod, r.Exempt) {
		return ctrl.Result{}, nil
	}
	kc := podKeychain(r.Keychains, &pod)
	var (
		retry  time.Duration
		learnt bool
		errs   []error
	)
	later := func(d time.Duration) {
		if d > 0 && (retry == 0 || d < retry) {
			retry = d
		}
	}
	done := map[string]bool{}
	for _, c := range podContainers(&pod) {
		t, wait, isNew := r.target(ctx, &pod, c, kc)
		learnt = learnt || isNew
		if wait > 0 {
			later(wait)
			continue
		}
		digest := t.Digest.String()
		if done[digest] {
			continue
		}
		done[digest] = true
		if _, ok := r.Engine.Lookup(ctx, digest); ok {
			continue
		}
		if d := r.retries.wait(digest, r.Now()); d > 0 {
			later(d)
			continue
		}
		// One flight per digest: callers sharing it share its outcome, so a failure is
		// counted once however many pods run the image. A caller that checked just before
		// the previous flight landed looks again inside its own.
		v, err, _ := r.flights.Do(digest, func() (any, error) {
			if d := r.retries.wait(digest, r.Now()); d > 0 {
				return d, nil
			}
			if _, ok := r.Engine.Lookup(ctx, digest); ok {
				return time.Duration(0), nil
			}
			return r.scan(ctx, t, kc)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		later(v.(time.Duration))
	}
	if learnt && r.Resolved != nil {
		r.Resolved()
	}
	if err := kerrors.NewAggregate(errs); err != nil {
		return ctrl.Result{}, err
	}
	if retry > 0 {
		log.V(1).Info("some images could not be scanned yet", "pod", klog.KObj(&pod), logKeyRetry, retry.String())
	}
	return ctrl.Result{RequeueAfter: retry}, nil
}

// target returns the digest container c runs. wait > 0 means it is not known and resolving
// failed recently; isNew means a tag resolved to a digest not known before.
func (r *PodScanner) target(ctx context.Context, pod *corev1.Pod, c container, kc authn.Keychain) (t registry.Target, wait time.Duration, isNew bool) {
	log := ctrl.LoggerFrom(ctx)
	ref := c.Running
	if ref == "" && pinnedDigest(c.Image) != "" {
		ref = c.Image
	}
	if ref != "" { // a digest: parsed, no registry call
		t, err := r.Engine.Resolve(ctx, ref, kc)
		if err == nil {
			return t, 0, false
		}
		log.V(1).Info("unusable image digest, resolving the spec's image instead", logKeyImage, ref, "error", err.Error())
	}
	now := r.Now()
	cached, ok := r.Tags.Get(pod.Namespace, c.Image)
	if ok && now.Sub(cached.At) < r.TagTTL {
		return cached.Target, 0, false
	}
	key := "image\x00" + pod.Namespace + "\x00" + c.Image
	if d := r.retries.wait(key, now); d > 0 {
		if ok {
			return cached.Target, 0, false // stale beats nothing while the registry is down
		}
		return registry.Target{}, d, false
	}
	t, err := r.Engine.Resolve(ctx, c.Image, kc)
	if err != nil {
		d := r.retries.fail(key, 0, registry.Permanent(err), now)
		log.Info("cannot resolve image; retrying later", "pod", klog.KObj(pod), "container", c.Name, logKeyImage, c.Image, logKeyRetry, d.String(), "error", err.Error())
		if ok {
			return cached.Target, 0, false
		}
		return registry.Target{}, d, false
	}
	r.retries.clear(key)
	return t, 0, r.Tags.Put(pod.Namespace, c.Image, t, now)
}

// scan pulls and scans t at background priority. On failure it marks the ImageScan Failed and
// returns the delay before the next attempt; the returned error is for API failures only.
func (r *PodScanner) scan(ctx context.Context, t registry.Target, kc authn.Keychain) (time.Duration, error) {
	log := ctrl.LoggerFrom(ctx)
	digest := t.Digest.String()
	_, scanErr := r.Engine.ScanBackground(ctx, t, kc)
	if scanErr == nil {
		r.retries.clear(digest)
		return 0, nil
	}
	if ctx.Err() != nil { // shutting down: not the image's fault
		return 0, ctx.Err()
	}
	failures, err := r.Store.SaveFailure(ctx, digest, t.Ref.String(), scanErr)
	if err != nil {
		return 0, errors.Join(scanErr, err)
	}
	d := r.retries.fail(digest, failures, registry.Permanent(scanErr), r.Now())
	log.Info("image scan failed; retrying later", logKeyImage, t.Ref.String(), logKeyDigest, digest,
		"reason", cache.FailureReason(scanErr), logKeyFailures, failures, logKeyRetry, d.String(), "error", scanErr.Error())
	return d, nil
}
