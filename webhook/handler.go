package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

// Engine is what admission needs of the scan engine: the webhook never links the scanner.
type Engine interface {
	Resolve(ctx context.Context, image string, kc authn.Keychain) (registry.Target, error)
	// Cached answers a digest's record from memory only.
	Cached(digest string) (*cache.Record, bool)
	// ScanForeground scans at admission priority, ahead of the audit's scans.
	ScanForeground(ctx context.Context, t registry.Target, kc authn.Keychain) (*cache.Record, error)
}

// Handler admits or rejects anything with a pod template. Build it with NewHandler.
type Handler struct {
	Engine    Engine
	Policies  *policy.Set
	Reader    client.Reader
	Keychains registry.KeychainFunc
	Clock     clock.PassiveClock
	// Exempt namespaces are never checked: the manager's own and kube-system.
	Exempt []string
	// Budget bounds resolving and scanning within one request; keep it under the webhook's
	// timeoutSeconds with margin.
	Budget time.Duration
	// TagTTL is how long a tag's digest is trusted (per namespace).
	TagTTL time.Duration
	Log    logr.Logger

	tags *registry.TagCache
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns h with its defaults filled in: the clock, a 7 s budget, a one-minute tag TTL.
func NewHandler(h Handler) *Handler {
	if h.Clock == nil {
		h.Clock = clock.RealClock{}
	}
	if h.Budget <= 0 {
		h.Budget = 7 * time.Second
	}
	if h.TagTTL <= 0 {
		h.TagTTL = time.Minute
	}
	h.tags = registry.NewTagCache(0)
	return &h
}

// imageResult is what was learnt about one image.
type imageResult struct {
	target registry.Target
	record *cache.Record
	err    error
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	kind := req.Kind.Kind
	action, result := "", "allowed"
	defer func() {
		switch {
		case !resp.Allowed:
			result = "denied"
		case len(resp.Warnings) > 0 && result == "allowed":
			result = "warned"
		}
		metrics.Decisions.WithLabelValues(kind, action, result).Inc()
	}()

	if slices.Contains(h.Exempt, req.Namespace) || req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect {
		return admission.Allowed("")
	}
	w, err := decodeWorkload(kind, req.Object.Raw)
	if err != nil {
		result = "error"
		return admission.Errored(http.StatusBadRequest, err)
	}
	refs := decision.PodContainers(&w.Spec)
	imgs := images(refs)
	if len(imgs) == 0 {
		return admission.Allowed("")
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err := decodeWorkload(kind, req.OldObject.Raw); err == nil && slices.Equal(images(decision.PodContainers(&old.Spec)), imgs) {
			return admission.Allowed("") // no new image; the audit reports what already runs
		}
	}

	selected, err := h.selectPolicies(ctx, req.Namespace, w.Labels)
	if err != nil {
		result = "error"
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("listing VendorPolicies: %w", err))
	}
	if len(selected) == 0 {
		return admission.Allowed("")
	}

	results := h.inspect(ctx, req.Namespace, &w.Spec, imgs)
	in := decision.Input{Policies: selected, Namespace: req.Namespace, Now: h.Clock.Now()}
	for _, ct := range refs {
		r := results[ct.Image]
		ct.Err = r.err
		if r.err == nil {
			ct.Digest = r.target.Digest.String()
			ct.Forms = []string{r.target.Ref.String()}
			ct.Inventories = r.record.Inventories
		}
		in.Containers = append(in.Containers, ct)
	}
	d := decision.Decide(in)
	h.logDecision(kind, w.Name, d)
	action = string(d.StrongestAction())
	if d.Outcome == decision.Audit {
		result = "audited"
	}
	return response(kind, w.Name, d)
}

// logDecision records what the response does not show: admissions by exception and Audit findings.
func (h *Handler) logDecision(kind, name string, d decision.Decision) {
	for _, p := range d.Policies {
		for _, f := range p.Excepted {
			h.Log.V(1).Info("banned-vendor software admitted by exception", "policy", p.Policy, "namespace", d.Namespace, "object", name, "image", f.Container.Image, "reason", f.Exception.Reason)
		}
		if p.Action != v1alpha1.ActionAudit {
			continue
		}
		for _, group := range decision.ByContainer(p.Kept) {
			ct := group[0].Container
			h.Log.Info("admitted with banned-vendor software (Audit)", "policy", p.Policy, "kind", kind, "namespace", d.Namespace, "name", name,
				"container", ct.Name, "image", ct.Image, "digest", ct.Digest, "findings", len(group))
		}
	}
}

func (h *Handler) selectPolicies(ctx context.Context, namespace string, objLabels map[string]string) ([]*policy.Compiled, error) {
	all, invalid, err := h.Policies.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, bad := range invalid {
		h.Log.V(1).Info("ignoring VendorPolicy that does not compile", "policy", bad.Policy.Name, "error", bad.Err.Error())
	}
	var nsLabels map[string]string
	if namespace != "" {
		var ns corev1.Namespace
		if err := h.Reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err == nil {
			nsLabels = ns.Labels
		} else if client.IgnoreNotFound(err) != nil {
			return nil, err
		}
	}
	var out []*policy.Compiled
	for _, c := range all {
		if c.Selects(namespace, nsLabels, objLabels, h.Exempt) {
			out = append(out, c)
		}
	}
	return out, nil
}

// inspect resolves and scans every image in parallel within the budget. A cached digest is
// answered without any registry or API call.
func (h *Handler) inspect(ctx context.Context, namespace string, spec *corev1.PodSpec, imgs []string) map[string]imageResult {
	ctx, cancel := context.WithTimeout(ctx, h.Budget)
	defer cancel()
	kc := registry.PodKeychain(h.Keychains, namespace, spec)
	out := make(map[string]imageResult, len(imgs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.inspectOne(ctx, namespace, img, kc)
			mu.Lock()
			out[img] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (h *Handler) inspectOne(ctx context.Context, namespace, img string, kc authn.Keychain) imageResult {
	t, ok := h.tags.Fresh(namespace, img, h.TagTTL, h.Clock.Now())
	if !ok {
		var err error
		t, err = h.Engine.Resolve(ctx, img, kc)
		if err != nil {
			return imageResult{err: err}
		}
		h.tags.Put(namespace, img, t, h.Clock.Now())
	}
	if rec, ok := h.Engine.Cached(t.Digest.String()); ok {
		return imageResult{target: t, record: rec}
	}
	rec, err := h.Engine.ScanForeground(ctx, t, kc)
	return imageResult{target: t, record: rec, err: err}
}

// What admission reads: policies and namespaces from the informer cache; a pod's service account
// and pull secrets by name (get only, never list or watch), in the pod's namespace.
// +kubebuilder:rbac:groups=embargo.dev,resources=vendorpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=embargo.dev,resources=imagescans,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=embargo.dev,resources=imagescans/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get
// The certificate rotator: caBundle of its own webhook configurations, its Secret in its namespace.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch
// +kubebuilder:rbac:groups="",namespace=embargo-system,resources=secrets,verbs=create;update
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=embargo-system,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",namespace=embargo-system,resources=events,verbs=create;patch

// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=ignore,sideEffects=None,groups="",resources=pods;pods/ephemeralcontainers;replicationcontrollers,verbs=create;update,versions=v1,name=core.workloads.embargo.dev,admissionReviewVersions=v1,timeoutSeconds=10
// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=ignore,sideEffects=None,groups=apps,resources=deployments;statefulsets;daemonsets;replicasets,verbs=create;update,versions=v1,name=apps.workloads.embargo.dev,admissionReviewVersions=v1,timeoutSeconds=10
// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=ignore,sideEffects=None,groups=batch,resources=jobs;cronjobs,verbs=create;update,versions=v1,name=batch.workloads.embargo.dev,admissionReviewVersions=v1,timeoutSeconds=10
