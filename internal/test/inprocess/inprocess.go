// Package inprocess runs Embargo's manager in this process against a real kube-apiserver and
// etcd (envtest, binaries from hack/envtest-assets.sh) with the real CRDs from config/, and a
// real OCI registry on 127.0.0.1: the harness of the integration tests and hack/loadtest.
// The manager is built by manager.Setup with the informer settings cmd/manager ships with.
package inprocess

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/embargo-dev/embargo/internal/manager"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// OwnNamespace is the manager's namespace unless Options.Manager.Namespace says otherwise.
const OwnNamespace = "embargo-system"

// Options configure Start.
type Options struct {
	// Root is the repository root, where config/ is.
	Root string
	// WebhookConfigs installs config/webhook into the API server, pointed at this process's
	// webhook server, so the API server itself calls the webhook. Without it only direct
	// AdmissionReviews reach the webhook.
	WebhookConfigs bool
	// Manager is passed to manager.Setup; Namespace defaults to OwnNamespace, which Start
	// creates. The registry's host is added to Engine.Registry.Insecure.
	Manager manager.Options
}

// Env is a running API server, registry and manager.
type Env struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Scheme     *runtime.Scheme
	Client     client.Client
	Registry   *ti.Registry
	Components *manager.Components
	// WebhookAddr is host:port of the manager's webhook server (TLS, certificate signed by
	// Env.WebhookInstallOptions.LocalServingCAData).
	WebhookAddr string

	cancel context.CancelFunc
	done   chan error
}

// Start brings everything up and returns once the webhook server accepts TLS connections.
// Call Stop when done, also after an error (it stops what did start).
func Start(opts Options) (*Env, error) {
	e := &Env{done: make(chan error, 1)}
	var err error
	if e.Scheme, err = manager.NewScheme(); err != nil {
		return e, err
	}
	e.Env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1"},
		Scheme:                e.Scheme,
	}
	if opts.WebhookConfigs {
		e.Env.WebhookInstallOptions.Paths = []string{filepath.Join(opts.Root, "config", "webhook")}
	}
	if e.Config, err = e.Env.Start(); err != nil {
		e.Env = nil
		return e, fmt.Errorf("starting envtest: %w", err)
	}
	if e.Registry, err = ti.NewRegistry(); err != nil {
		return e, err
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		return e, err
	}
	mo := opts.Manager
	if mo.Namespace == "" {
		mo.Namespace = OwnNamespace
	}
	if mo.Engine.TempDir == "" {
		mo.Engine.TempDir = os.TempDir()
	}
	mo.Engine.Registry.Insecure = append(mo.Engine.Registry.Insecure, e.Registry.Host)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mo.Namespace}}); err != nil {
		return e, err
	}
	wio := &e.Env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Cache:                  manager.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(webhook.Options{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir}),
	})
	if err != nil {
		return e, err
	}
	if e.Components, err = manager.Setup(mgr, mo); err != nil {
		return e, err
	}
	go func() { e.done <- mgr.Start(ctx) }()
	e.WebhookAddr = net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	return e, e.waitTLS(30 * time.Second)
}

// Done receives the manager's error if it stops before Stop is called.
func (e *Env) Done() <-chan error { return e.done }

func (e *Env) waitTLS(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.done:
			return fmt.Errorf("manager stopped: %w", err)
		default:
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", e.WebhookAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			_ = conn.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("webhook server on %s did not come up in %s", e.WebhookAddr, timeout)
}

// PolicyCached reports nil once the manager's policy set has (want) or lacks (!want) the
// VendorPolicy name, valid or not.
func (e *Env) PolicyCached(ctx context.Context, name string, want bool) error {
	list, invalid, err := e.Components.Policies.List(ctx)
	if err != nil {
		return err
	}
	have := false
	for _, c := range list {
		have = have || c.Name == name
	}
	for _, b := range invalid {
		have = have || b.Policy.Name == name
	}
	if have != want {
		return fmt.Errorf("policy %s cached = %v, want %v", name, have, want)
	}
	return nil
}

// Stop stops the manager, the registry and the API server.
func (e *Env) Stop() error {
	if e.cancel != nil {
		e.cancel()
	}
	if e.Registry != nil {
		e.Registry.Close()
	}
	if e.Env != nil {
		return e.Env.Stop()
	}
	return nil
}
