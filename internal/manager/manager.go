// Package manager wires Embargo's parts into a controller-runtime manager: the engine, the
// admission webhooks, the certificate rotator and the audit controllers. cmd/manager and the
// integration tests call Setup, so what is tested is what ships.
package manager

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/certs"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/scan"
	embargowebhook "github.com/embargo-dev/embargo/webhook"
)

// Webhook paths, matching the +kubebuilder:webhook markers in webhook/.
const (
	WorkloadsPath = "/validate-workloads"
	PoliciesPath  = "/validate-vendorpolicies"
)

// Options configure Setup.
type Options struct {
	// Namespace is the manager's own namespace: exempt, and home of its certificate Secret.
	Namespace string
	// ExemptNamespaces are never checked besides Namespace (default kube-system).
	ExemptNamespaces []string
	Engine           scan.Options
	// Budget bounds one admission's resolve+scan; keep it under the webhook timeoutSeconds.
	Budget time.Duration
	TagTTL time.Duration
	Clock  clock.PassiveClock

	// Certificates: when CertSecret is set, the manager generates and rotates its own serving
	// certificate and patches WebhookConfigs' caBundle.
	CertSecret     string
	CertHosts      []string
	WebhookConfigs []string

	// DisableAudit turns the audit controllers off (webhook-only replicas, or tests).
	DisableAudit bool
}

// Components are the parts Setup built, for tests and main.
type Components struct {
	Engine   *scan.Engine
	Policies *policy.Set
	// Store is the one ImageScan writer (on the leader) and the engine's store.
	Store   *controllers.ImageScans
	Rotator *certs.Rotator
	Handler *embargowebhook.Handler
}

// Setup adds Embargo to mgr.
func Setup(mgr ctrl.Manager, opts Options) (*Components, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	exempt := append([]string{opts.Namespace}, opts.ExemptNamespaces...)
	cat := catalog.Default()
	policies := &policy.Set{Reader: mgr.GetClient(), Catalog: cat}

	rules := NewRules(policies, cat)
	store := controllers.NewImageScans(mgr.GetClient(), rules, cat.Version, opts.Clock)
	store.Reader = cache.ImageScanReader{Client: mgr.GetAPIReader()} // the informer holds no records
	opts.Engine.Store = store
	opts.Engine.PathRules = rules.PathRules
	engine, err := scan.New(opts.Engine)
	if err != nil {
		return nil, err
	}

	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	keychains := func(ctx context.Context, namespace, sa string, pullSecrets []string) (authn.Keychain, error) {
		return kauth.New(ctx, clientset, kauth.Options{Namespace: namespace, ServiceAccountName: sa, ImagePullSecrets: pullSecrets})
	}

	c := &Components{Engine: engine, Policies: policies, Store: store}
	c.Handler = embargowebhook.NewHandler(embargowebhook.Handler{
		Engine:    foregroundEngine{engine},
		Policies:  policies,
		Reader:    mgr.GetClient(),
		Keychains: keychains,
		Clock:     opts.Clock,
		Exempt:    exempt,
		Budget:    opts.Budget,
		TagTTL:    opts.TagTTL,
		Log:       mgr.GetLogger().WithName("admission"),
	})
	srv := mgr.GetWebhookServer()
	srv.Register(WorkloadsPath, &webhook.Admission{Handler: c.Handler, RecoverPanic: ptr(true)})
	srv.Register(PoliciesPath, &webhook.Admission{Handler: &embargowebhook.PolicyValidator{Catalog: cat}, RecoverPanic: ptr(true)})

	if opts.CertSecret != "" {
		c.Rotator = &certs.Rotator{
			Client:         mgr.GetClient(),
			Reader:         mgr.GetAPIReader(),
			Secret:         client.ObjectKey{Namespace: opts.Namespace, Name: opts.CertSecret},
			Hosts:          opts.CertHosts,
			WebhookConfigs: opts.WebhookConfigs,
			Clock:          opts.Clock,
			Log:            mgr.GetLogger().WithName("certs"),
		}
		if err := mgr.Add(c.Rotator); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddReadyzCheck("webhook", readyCheck(c)); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}

	if !opts.DisableAudit {
		if err := setupAudit(mgr, opts, c, keychains, exempt); err != nil {
			return nil, fmt.Errorf("audit controllers: %w", err)
		}
	}
	return c, nil
}

func readyCheck(c *Components) healthz.Checker {
	return func(req *http.Request) error {
		if c.Rotator != nil {
			select {
			case <-c.Rotator.Ready():
			default:
				return fmt.Errorf("webhook certificate not ready")
			}
		}
		return nil
	}
}

// NewScheme returns the types the manager reads and writes: Kubernetes' built-in ones and
// Embargo's CRDs. cmd/manager, the integration tests and hack/loadtest all build their clients
// and managers on it.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// CacheOptions are the informer settings the manager needs: no managedFields anywhere, and
// ImageScans cached without their records (24 KiB each for a Debian image; 5,000 of them would
// add ~100 MiB to every replica). Records are read from the API server when a memory lookup
// misses (cache.ImageScanReader over the API reader), so a cached ImageScan's status.record is
// always empty.
func CacheOptions() crcache.Options {
	return crcache.Options{
		DefaultTransform: crcache.TransformStripManagedFields(),
		ByObject: map[client.Object]crcache.ByObject{
			&v1alpha1.ImageScan{}: {Transform: func(o any) (any, error) {
				if is, ok := o.(*v1alpha1.ImageScan); ok {
					is.ManagedFields = nil
					is.Status.Record = nil
				}
				return o, nil
			}},
		},
	}
}

// rules are the catalog plus every policy present now: what ImageScan findings are matched
// against, and the path globs scan records keep files for.
type rules struct {
	policies *policy.Set
	catalog  []*match.Vendor
}

// NewRules returns the rules ImageScans are matched against (hack/imagescan-scale writes
// ImageScans exactly as the manager would with them).
func NewRules(policies *policy.Set, cat *catalog.Catalog) controllers.Rules {
	r := &rules{policies: policies}
	for _, e := range cat.Entries {
		if v, err := e.Compile(); err == nil {
			r.catalog = append(r.catalog, v)
		}
	}
	return r
}

func (r *rules) vendors(ctx context.Context) ([]*match.Vendor, error) {
	compiled, _, err := r.policies.List(ctx)
	if err != nil {
		return nil, err
	}
	all := append([]*match.Vendor(nil), r.catalog...)
	for _, c := range compiled {
		for _, v := range c.Vendors {
			if v.Catalog == "" {
				all = append(all, v)
			}
		}
	}
	return all, nil
}

// Findings implements controllers.Rules.
func (r *rules) Findings(ctx context.Context, invs []match.Inventory) ([]match.Finding, error) {
	vendors, err := r.vendors(ctx)
	if err != nil {
		return nil, err
	}
	return match.MatchAll(invs, vendors), nil
}

// Key implements controllers.Rules.
func (r *rules) Key(ctx context.Context) (string, error) {
	vendors, err := r.vendors(ctx)
	if err != nil {
		return "", err
	}
	keys := make([]string, len(vendors))
	for i, v := range vendors {
		keys[i] = v.Key()
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n"), nil
}

// PathRules implements controllers.Rules.
func (r *rules) PathRules(ctx context.Context) ([]string, error) {
	vendors, err := r.vendors(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vendors {
		out = append(out, v.Paths()...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func ptr[T any](v T) *T { return &v }
