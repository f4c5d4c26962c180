// Package devcluster brings up Embargo the way a user runs it, on one machine with no container
// runtime: a real kube-apiserver and etcd (envtest, binaries from hack/envtest-assets.sh), the
// Helm chart rendered by the real helm and applied by the real kubectl, an in-process OCI
// registry with sample images, and bin/manager running as host processes that serve the
// admission webhook over TLS at https://127.0.0.1:PORT (the chart's webhook.url dev mode).
//
// The end-to-end tests and `make demo` share it, so the demo is what the tests prove. It execs
// the built binaries and never links the scanner: test binaries that import it build fast.
//
// Start's cluster has no scheduler, kubelet or kube-controller-manager: pods stay Pending and
// Deployments get no ReplicaSets unless SimulateRollout stands in for the controllers. It is the
// fast path the admission and CLI tests use. StartNode (node.go) is the real thing: a one-node
// cluster with kubelet, containerd and kube-proxy, Embargo installed from its image by helm.
package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/embargo-dev/embargo/internal/test/testimage"
)

// Defaults of Options.
const (
	DefaultNamespace = "embargo-system"
	DefaultRelease   = "embargo"
)

// Options configure Start.
type Options struct {
	// Root is the repository root (charts/embargo is rendered from it). Default: FindRoot.
	Root string
	// Assets is the directory with kube-apiserver, etcd, kubectl and helm. Default:
	// $KUBEBUILDER_ASSETS.
	Assets string
	// BinDir holds the built embargo and manager binaries. Default: $EMBARGO_BIN, else Root/bin.
	BinDir string
	// Dir receives the kubeconfig, rendered manifests and manager logs. Default: a new
	// temporary directory, removed by Stop.
	Dir string
	// Managers is how many manager processes to run (default 1). With more than one they
	// elect a leader, as the chart's replicas do.
	Managers int
	// Namespace is the manager's namespace (default embargo-system).
	Namespace string
	// HelmSet are extra `helm template --set` values.
	HelmSet []string
	// ManagerArgs are extra manager flags.
	ManagerArgs []string
	// ManagerEnv is added to the managers' environment (e.g. GOMEMLIMIT, as the chart sets it).
	ManagerEnv []string
	// ManagerCgroup is a cgroup directory (v1 or v2) every manager joins before it execs, so
	// all of its memory is charged there, as a container's is.
	ManagerCgroup string
	// Registry serves the sample images: nil starts one. Images names the samples already in
	// it; nil pushes them (PushSamples).
	Registry *testimage.Registry
	Images   *Images
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// Cluster is a running dev cluster. Stop it.
type Cluster struct {
	// Dir holds Kubeconfig, the rendered chart (Manifests) and manager logs.
	Dir        string
	Kubeconfig string
	Manifests  string
	Namespace  string
	// WebhookConfiguration is the chart's ValidatingWebhookConfiguration.
	WebhookConfiguration string
	// Registry serves Images.
	Registry *testimage.Registry
	Images   Images
	Managers []*Manager
	// Config is an admin REST config for Kubeconfig.
	Config *rest.Config

	opts       Options
	env        *envtest.Environment
	ownDir     bool
	ownReg     bool
	stopOnce   sync.Once
	kubectlBin string
	helmBin    string
	// stopNode tears a node cluster down (StartNode); nil for the host-process cluster.
	stopNode func()
}

// Start brings the cluster up and returns once the webhook answers admission requests.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:       opts,
		Namespace:  opts.Namespace,
		Registry:   opts.Registry,
		kubectlBin: filepath.Join(opts.Assets, "kubectl"),
		helmBin:    filepath.Join(opts.Assets, "helm"),
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Dir = opts.Dir; c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "embargo-devcluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}

	if c.Registry == nil {
		c.logf("starting an OCI registry on 127.0.0.1 with the sample images")
		if c.Registry, err = testimage.NewRegistry(); err != nil {
			return nil, err
		}
		c.ownReg = true
	}
	if opts.Images != nil {
		c.Images = *opts.Images
	} else if c.Images, err = PushSamples(c.Registry, ""); err != nil {
		return nil, err
	}

	c.logf("starting kube-apiserver and etcd from %s", opts.Assets)
	c.env = &envtest.Environment{BinaryAssetsDirectory: opts.Assets, ControlPlaneStartTimeout: 90 * time.Second, ControlPlaneStopTimeout: 30 * time.Second}
	if _, err := c.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "embargo-admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 50, Burst: 100})
	if err != nil {
		return nil, err
	}
	c.Config = admin.Config()
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}

	for i := range opts.Managers {
		m, err := newManager(c, i)
		if err != nil {
			return nil, err
		}
		c.Managers = append(c.Managers, m)
	}
	if err := c.install(ctx); err != nil {
		return nil, err
	}
	for _, m := range c.Managers {
		c.logf("starting %s: webhook https://127.0.0.1:%d, metrics http://127.0.0.1:%d/metrics, log %s", m.Name, m.WebhookPort, m.MetricsPort, m.LogFile)
		if err := m.start(c); err != nil {
			return nil, err
		}
	}
	for _, m := range c.Managers {
		if err := m.waitReady(ctx, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	if err := c.waitAdmission(ctx, time.Minute); err != nil {
		return nil, err
	}
	c.logf("Embargo is serving admission requests")
	return c, nil
}

func (o *Options) defaults() error {
	if o.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.Assets == "" {
		o.Assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if o.Assets == "" {
		return errors.New("no kube-apiserver/etcd/kubectl/helm: set KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(o.Assets, b)); err != nil {
			return fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s: run hack/envtest-assets.sh", o.Assets, b)
		}
	}
	if o.BinDir == "" {
		o.BinDir = os.Getenv("EMBARGO_BIN")
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "bin")
	}
	if _, err := os.Stat(filepath.Join(o.BinDir, "manager")); err != nil {
		return fmt.Errorf("no manager binary in %s: run `make build`", o.BinDir)
	}
	if o.Managers <= 0 {
		o.Managers = 1
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// FindRoot returns the repository root: the nearest directory above the working directory
// with Embargo's go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/embargo-dev/embargo\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the Embargo repository (no go.mod of github.com/embargo-dev/embargo above the working directory)")
		}
		dir = parent
	}
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.opts.Log, "devcluster: "+format+"\n", args...)
}

// install renders the chart with the webhook pointing at the first manager on the host and
// applies it.
func (c *Cluster) install(ctx context.Context) error {
	url := fmt.Sprintf("https://127.0.0.1:%d", c.Managers[0].WebhookPort)
	args := []string{"template", DefaultRelease, filepath.Join(c.opts.Root, "charts", "embargo"),
		"--namespace", c.Namespace, "--include-crds",
		// The chart's dev mode: webhooks call the manager on this host, which the chart then
		// does not deploy. Everything else (CRDs, RBAC, webhook configuration, the default
		// Audit policy) is what a user installs.
		"--set", "webhook.url=" + url,
		"--set", "manager.enabled=false",
	}
	for _, s := range c.opts.HelmSet {
		args = append(args, "--set", s)
	}
	c.logf("helm template %s", strings.Join(args[1:], " "))
	r := c.Helm(ctx, "", args...)
	if r.ExitCode != 0 {
		return fmt.Errorf("helm %s: %s", strings.Join(args, " "), r)
	}
	c.Manifests = filepath.Join(c.Dir, "embargo.yaml")
	if err := os.WriteFile(c.Manifests, []byte(r.Stdout), 0o644); err != nil {
		return err
	}
	objs, err := SplitManifests(r.Stdout)
	if err != nil {
		return fmt.Errorf("reading the rendered chart: %w", err)
	}
	for _, o := range objs {
		if o.Kind == "ValidatingWebhookConfiguration" {
			c.WebhookConfiguration = o.Name
		}
	}
	if c.WebhookConfiguration == "" {
		return errors.New("the rendered chart has no ValidatingWebhookConfiguration")
	}

	c.logf("kubectl create namespace %s && kubectl apply -f %s", c.Namespace, c.Manifests)
	if r := c.Kubectl(ctx, "", "create", "namespace", c.Namespace); r.ExitCode != 0 {
		return fmt.Errorf("kubectl create namespace: %s", r)
	}
	// CRDs first: the chart may render objects of its own kinds.
	var crds, rest []string
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			crds = append(crds, o.YAML)
		} else {
			rest = append(rest, o.YAML)
		}
	}
	if len(crds) > 0 {
		if r := c.Kubectl(ctx, strings.Join(crds, "\n---\n"), "apply", "--server-side", "-f", "-"); r.ExitCode != 0 {
			return fmt.Errorf("kubectl apply (CRDs): %s", r)
		}
		if r := c.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); r.ExitCode != 0 {
			return fmt.Errorf("kubectl wait for the CRDs: %s", r)
		}
	}
	if r := c.Kubectl(ctx, strings.Join(rest, "\n---\n"), "apply", "-n", c.Namespace, "-f", "-"); r.ExitCode != 0 {
		return fmt.Errorf("kubectl apply: %s", r)
	}
	return nil
}

// waitAdmission waits until the API server calls the webhook over TLS with the patched CA: a
// server-side dry run of an invalid VendorPolicy must come back denied by the webhook.
func (c *Cluster) waitAdmission(ctx context.Context, timeout time.Duration) error {
	const probe = `apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: devcluster-probe
spec:
  vendors:
  - catalog: devcluster-no-such-vendor
`
	var last Result
	err := Poll(ctx, timeout, 250*time.Millisecond, func() (bool, error) {
		for _, m := range c.Managers {
			if err := m.exited(); err != nil {
				return false, err
			}
		}
		last = c.Kubectl(ctx, probe, "create", "--dry-run=server", "-f", "-")
		return last.ExitCode != 0 && strings.Contains(last.Stderr, "admission webhook") && strings.Contains(last.Stderr, "denied the request"), nil
	})
	if err != nil {
		return fmt.Errorf("the API server does not reach the webhook (last try: %s): %w\n%s", last, err, c.Managers[0].LogTail(30))
	}
	return nil
}

// Stop kills the managers, stops the control plane and the registry it started, and removes
// the directory it created. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, m := range c.Managers {
			wg.Add(1)
			go func() { defer wg.Done(); m.stop() }()
		}
		wg.Wait()
		if c.stopNode != nil {
			c.stopNode()
		}
		if c.env != nil {
			if err := c.env.Stop(); err != nil {
				c.logf("stopping the control plane: %v", err)
			}
		}
		if c.ownReg && c.Registry != nil {
			c.Registry.Close()
		}
		if c.ownDir {
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	// ExitCode is -1 when the command could not run (Stderr says why).
	ExitCode int
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit %d", r.ExitCode)
	if s := strings.TrimSpace(r.Stdout); s != "" {
		fmt.Fprintf(&b, "\nstdout:\n%s", s)
	}
	if s := strings.TrimSpace(r.Stderr); s != "" {
		fmt.Fprintf(&b, "\nstderr:\n%s", s)
	}
	return b.String()
}

// Kubectl runs kubectl against the cluster with stdin (when not empty).
func (c *Cluster) Kubectl(ctx context.Context, stdin string, args ...string) Result {
	return c.Run(ctx, stdin, c.kubectlBin, args...)
}

// Helm runs helm with its state kept inside the cluster's directory.
func (c *Cluster) Helm(ctx context.Context, stdin string, args ...string) Result {
	return c.Run(ctx, stdin, c.helmBin, args...)
}

// KubectlPath and HelmPath are the binaries Kubectl and Helm run.
func (c *Cluster) KubectlPath() string { return c.kubectlBin }
func (c *Cluster) HelmPath() string    { return c.helmBin }

// Env is the environment for commands against the cluster: KUBECONFIG, and kubectl's and
// helm's caches inside Dir.
func (c *Cluster) Env() []string {
	h := filepath.Join(c.Dir, "helm")
	return append(os.Environ(),
		"KUBECONFIG="+c.Kubeconfig,
		"KUBECACHEDIR="+filepath.Join(c.Dir, "kube-cache"), // not ~/.kube/cache: every cluster has a new port
		"HELM_CACHE_HOME="+filepath.Join(h, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h, "config"),
		"HELM_DATA_HOME="+filepath.Join(h, "data"),
	)
}

// Run runs a program with Env, in the repository root.
func (c *Cluster) Run(ctx context.Context, stdin, name string, args ...string) Result {
	return Run(ctx, c.opts.Root, c.Env(), stdin, name, args...)
}

// Run runs name with args in dir with env (nil: inherit) and returns its output and exit code.
func Run(ctx context.Context, dir string, env []string, stdin, name string, args ...string) Result {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.ExitCode = exit.ExitCode()
	default:
		r.ExitCode = -1
		r.Stderr += err.Error()
	}
	return r
}

// Poll calls cond every interval until it returns true or an error, or timeout passes.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, ctx.Err())
		case <-t.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// EtcdMetricsURL is etcd's Prometheus endpoint (its client URL's /metrics).
func (c *Cluster) EtcdMetricsURL() string {
	return c.env.ControlPlane.Etcd.URL.String() + "/metrics"
}
