// Package integration runs Embargo's manager in-process against a real kube-apiserver and etcd
// (envtest, binaries from hack/envtest-assets.sh), with the real CRDs and webhook configuration
// from config/, a real OCI registry on 127.0.0.1 and real syft.
//
// Tests that move the shared fake clock must not call t.Parallel(): Go runs them first, one at
// a time, before the parallel ones start.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/manager"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/test/inprocess"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// OwnNamespace is the in-process manager's namespace (exempt from every policy).
const OwnNamespace = "embargo-system"

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8s       client.Client
	scheme    *runtime.Scheme
	reg       *ti.Registry
	clock     *clocktesting.FakeClock
	comps     *manager.Components
	harness   *inprocess.Env
	testStart = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
		return 1
	}
	if os.Getenv("EMBARGO_TEST_LOGS") != "" {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(zap.New(zap.WriteTo(discard{})))
	}
	clock = clocktesting.NewFakeClock(testStart)
	env, err := inprocess.Start(inprocess.Options{
		Root:           filepath.Join("..", ".."),
		WebhookConfigs: true,
		Manager: manager.Options{
			Namespace:        OwnNamespace,
			ExemptNamespaces: []string{"kube-system"},
			Engine: scan.Options{
				Registry:  registry.Options{Insecure: []string{"*"}},
				Platforms: []string{"linux/amd64"},
			},
			Budget: 3 * time.Second,
			Clock:  clock,
		},
	})
	defer func() { _ = env.Stop() }()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv, cfg, scheme, k8s, reg, comps, harness = env.Env, env.Config, env.Scheme, env.Client, env.Registry, env.Components, env
	go func() {
		if err := <-env.Done(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	return m.Run()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// newNamespace creates a namespace labelled embargo-test=<name> for one test and deletes it after.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + fmt.Sprint(time.Now().UnixNano()%100000)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"embargo-test": name}}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return name
}

// newPolicy creates a VendorPolicy that selects only namespace ns (so parallel tests don't see
// each other's policies) and waits until the manager's cache has it.
func newPolicy(t testing.TB, ns string, spec v1alpha1.VendorPolicySpec) *v1alpha1.VendorPolicy {
	t.Helper()
	if ns != "" && spec.Match.NamespaceSelector == nil {
		spec.Match.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"embargo-test": ns}}
	}
	if len(spec.Vendors) == 0 {
		spec.Vendors = []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}
	}
	p := &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}, Spec: spec}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), p)
		eventually(t, 10*time.Second, func() error {
			return policyCached(p.Name, false)
		})
	})
	eventually(t, 10*time.Second, func() error { return policyCached(p.Name, true) })
	return p
}

func policyCached(name string, want bool) error {
	return harness.PolicyCached(context.Background(), name, want)
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pushImage pushes img under repo:1 and returns the tag reference.
func pushImage(t testing.TB, repo string, img func() (v1.Image, error)) string {
	t.Helper()
	i, err := img()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push(repo+":1", i); err != nil {
		t.Fatal(err)
	}
	return reg.Ref(repo + ":1")
}
