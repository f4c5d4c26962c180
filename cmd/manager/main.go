// Command manager runs Embargo in a cluster: the admission webhooks on every replica and the
// audit controllers on the leader.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/embargo-dev/embargo/internal/manager"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/version"
)

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func main() {
	var (
		metricsAddr, probeAddr, certDir, certSecret, namespace          string
		webhookPort, maxScans, cacheSize                                int
		leaderElect, disableAudit, selfCerts                            bool
		budget, tagTTL, scanTimeout                                     time.Duration
		maxImageBytes                                                   int64
		tmpDir                                                          string
		layerCacheDir                                                   string
		layerCacheBytes, maxImageFiles                                  int64
		exempt, platforms, insecure, mirrors, certHosts, webhookConfigs listFlag
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Health and readiness probe address.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Webhook HTTPS port.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader for the audit controllers (run 2+ replicas with this on).")
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "The manager's own namespace: exempt from policies, holds its certificate Secret and leader lease.")
	flag.Var(&exempt, "exempt-namespaces", "Namespaces never checked, besides the manager's own (default kube-system).")
	flag.BoolVar(&selfCerts, "self-signed-certs", true, "Generate and rotate the webhook certificate and patch caBundle (false: certificates in --cert-dir, e.g. from cert-manager).")
	flag.StringVar(&certDir, "cert-dir", "", "Directory with tls.crt/tls.key when --self-signed-certs=false.")
	flag.StringVar(&certSecret, "cert-secret", "embargo-webhook-tls", "Secret holding the self-managed CA and serving certificate.")
	flag.Var(&certHosts, "cert-hosts", "DNS names/IPs of the webhook certificate (default: the Service names in --namespace).")
	flag.Var(&webhookConfigs, "webhook-configurations", "ValidatingWebhookConfigurations whose caBundle to keep current.")
	flag.DurationVar(&budget, "scan-budget", 7*time.Second, "Time one admission may spend resolving and scanning; keep under the webhook timeoutSeconds.")
	flag.DurationVar(&tagTTL, "tag-ttl", time.Minute, "How long a tag's digest is trusted before asking the registry again.")
	flag.DurationVar(&scanTimeout, "scan-timeout", 5*time.Minute, "Upper bound of one background scan.")
	flag.IntVar(&maxScans, "max-concurrent-scans", 2, "Scans running at once (one slot is always kept for admission).")
	flag.IntVar(&cacheSize, "cache-size", 4096, "Scan records kept in memory.")
	flag.Int64Var(&maxImageBytes, "max-image-bytes", registry.DefaultMaxImageBytes, "Largest uncompressed image (per platform) to scan.")
	flag.Int64Var(&maxImageFiles, "max-image-files", scan.DefaultMaxImageFiles, "Most files (tar entries over all layers) of an image (per platform) to scan; more is refused as too large.")
	flag.StringVar(&layerCacheDir, "layer-cache-dir", "", "Directory keeping analysed layers across scans and restarts, shared by admission and audit (\"\": memory only).")
	flag.Int64Var(&layerCacheBytes, "layer-cache-bytes", 2<<30, "Size bound of --layer-cache-dir; least recently used layers are evicted.")
	flag.StringVar(&tmpDir, "tmp-dir", os.TempDir(), "Where layers are unpacked during a scan (size it: an emptyDir).")
	flag.Var(&platforms, "platforms", "Platforms scanned in multi-arch images (default linux/amd64,linux/arm64).")
	flag.Var(&insecure, "insecure-registries", "Registries reached over plain HTTP or with unverified TLS.")
	flag.Var(&mirrors, "registry-mirror", "Mirror as registry=mirror1;mirror2 (repeatable).")
	flag.BoolVar(&disableAudit, "disable-audit", false, "Serve admission only, run no audit controllers.")
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if namespace == "" {
		namespace = "embargo-system"
	}
	if len(exempt) == 0 {
		exempt = listFlag{"kube-system"}
	}
	if len(platforms) == 0 {
		platforms = listFlag{"linux/amd64", "linux/arm64"}
	}
	if len(certHosts) == 0 {
		certHosts = listFlag{"embargo-webhook-service." + namespace + ".svc", "embargo-webhook-service." + namespace + ".svc.cluster.local"}
	}
	if len(webhookConfigs) == 0 {
		webhookConfigs = listFlag{"embargo-validating-webhook-configuration"}
	}
	mirrorMap := map[string][]string{}
	for _, m := range mirrors {
		reg, list, ok := strings.Cut(m, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "--registry-mirror %q: want registry=mirror1;mirror2\n", m)
			os.Exit(2)
		}
		mirrorMap[reg] = append(mirrorMap[reg], strings.Split(list, ";")...)
	}

	scheme, err := manager.NewScheme()
	must(err)

	whOpts := webhook.Options{Port: webhookPort, CertDir: certDir}
	var comps *manager.Components
	if selfCerts {
		// the certificate is served from memory by the rotator, resolved after Setup
		whOpts.TLSOpts = append(whOpts.TLSOpts, func(cfg *tls.Config) {
			cfg.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return comps.Rotator.GetCertificate(h) }
		})
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		// informers keep every Pod and ImageScan: no managedFields, no ImageScan records
		Cache:                   manager.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		WebhookServer:           webhook.NewServer(whOpts),
		LeaderElection:          leaderElect,
		LeaderElectionID:        "embargo-audit.embargo.dev",
		LeaderElectionNamespace: namespace,
	})
	if err != nil {
		log.Error(err, "creating the manager")
		os.Exit(1)
	}
	opts := manager.Options{
		Namespace:        namespace,
		ExemptNamespaces: exempt,
		Engine: scan.Options{
			Registry:        registry.Options{Insecure: insecure, Mirrors: mirrorMap, MaxImageBytes: maxImageBytes},
			Platforms:       platforms,
			TempDir:         tmpDir,
			MaxConcurrent:   maxScans,
			ScanTimeout:     scanTimeout,
			CacheSize:       cacheSize,
			MaxImageFiles:   maxImageFiles,
			LayerCacheDir:   layerCacheDir,
			LayerCacheBytes: layerCacheBytes,
		},
		Budget:       budget,
		TagTTL:       tagTTL,
		DisableAudit: disableAudit,
	}
	if selfCerts {
		opts.CertSecret, opts.CertHosts, opts.WebhookConfigs = certSecret, certHosts, webhookConfigs
	}
	comps, err = manager.Setup(mgr, opts)
	if err != nil {
		log.Error(err, "setting up Embargo")
		os.Exit(1)
	}
	log.Info("starting", "version", version.Version, "namespace", namespace, "exempt", exempt.String(), "platforms", platforms.String())
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
