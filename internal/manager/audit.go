package manager

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
)

// setupAudit adds the audit controllers. controller-runtime runs them on the elected leader
// only, so there is one status writer; the webhook serves on every replica.
func setupAudit(mgr ctrl.Manager, opts Options, c *Components, keychains registry.KeychainFunc, exempt []string) error {
	if err := c.Store.SetupWithManager(mgr); err != nil {
		return err
	}
	tags := registry.NewTagCache(0)
	// PolicyReports for Policy Reporter & co., written only where their CRD is served
	reports := controllers.NewPolicyReporter(controllers.PolicyReporter{
		Client: mgr.GetClient(),
		Reader: mgr.GetAPIReader(),
		Clock:  opts.Clock,
	})
	if err := reports.SetupWithManager(mgr); err != nil {
		return err
	}
	auditor := controllers.NewPolicyAuditor(controllers.PolicyAuditor{
		Client:   mgr.GetClient(),
		Policies: c.Policies,
		Records:  c.Engine,
		Tags:     tags,
		Clock:    opts.Clock,
		Recorder: mgr.GetEventRecorderFor("embargo"), //nolint:staticcheck // core/v1 events: what kubectl describe shows, and the RBAC asks no events.k8s.io
		Exempt:   exempt,
		Reports:  reports,
	})
	if err := auditor.SetupWithManager(mgr); err != nil {
		return err
	}
	scanner := &controllers.PodScanner{
		Client:    mgr.GetClient(),
		Engine:    backgroundEngine{c.Engine},
		Store:     c.Store,
		Keychains: keychains,
		Tags:      tags,
		Exempt:    exempt,
		TagTTL:    opts.TagTTL,
		Resolved:  auditor.Poke,
	}
	return scanner.SetupWithManager(mgr)
}

// backgroundEngine runs the audit's scans behind admission's.
type backgroundEngine struct{ *scan.Engine }

func (e backgroundEngine) ScanBackground(ctx context.Context, t registry.Target, kc authn.Keychain) (*cache.Record, error) {
	return e.Scan(ctx, t, kc, scan.Background)
}

// foregroundEngine runs admission's scans ahead of the audit's.
type foregroundEngine struct{ *scan.Engine }

func (e foregroundEngine) ScanForeground(ctx context.Context, t registry.Target, kc authn.Keychain) (*cache.Record, error) {
	return e.Scan(ctx, t, kc, scan.Foreground)
}
