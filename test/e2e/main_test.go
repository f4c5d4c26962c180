// Package e2e checks Embargo as a user meets it: the built binaries (bin/manager, bin/embargo),
// the Helm chart rendered by the real helm and applied by the real kubectl to a real
// kube-apiserver and etcd, and an OCI registry on 127.0.0.1. Tests talk to the cluster with
// kubectl only and read what a person would read. TestNode (node_test.go) runs the image `make
// image` built as Pods on a real node (devcluster.StartNode), installed with helm.
//
// It needs KUBEBUILDER_ASSETS (hack/envtest-assets.sh) and EMBARGO_BIN (the directory `make
// build` fills); without EMBARGO_BIN it builds the binaries into a temporary directory. It
// never links the scanner itself, so it compiles quickly.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

var (
	cluster *devcluster.Cluster
	root    string
	binDir  string
	assets  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	var err error
	if root, err = devcluster.FindRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if assets = os.Getenv("KUBEBUILDER_ASSETS"); assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test-e2e`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
		return 1
	}
	if binDir = os.Getenv("EMBARGO_BIN"); binDir == "" {
		tmp, err := os.MkdirTemp("", "embargo-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(os.Stderr, "EMBARGO_BIN is not set: building ./cmd/embargo and ./cmd/manager into", tmp)
		cmd := exec.Command("go", "build", "-o", tmp+string(filepath.Separator), "./cmd/embargo", "./cmd/manager")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
		binDir = tmp
	}
	for _, b := range []string{"embargo", "manager"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			fmt.Fprintf(os.Stderr, "EMBARGO_BIN=%s has no %s: run `make build`\n", binDir, b)
			return 1
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	// Two managers, as the chart's two replicas: both serve admission, one leads the audit.
	cluster, err = devcluster.Start(ctx, devcluster.Options{
		Root: root, Assets: assets, BinDir: binDir, Managers: 2,
		Log: logWriter{},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the dev cluster:", err)
		return 1
	}
	defer cluster.Stop()
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %s (%s)\n", time.Since(start).Round(time.Millisecond), cluster.Dir)
	return m.Run()
}

// logWriter shows the cluster's progress only with -v.
type logWriter struct{}

func (logWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		return os.Stderr.Write(p)
	}
	return len(p), nil
}

// kubectl runs kubectl and returns its result; it does not judge the exit code.
func kubectl(t testing.TB, stdin string, args ...string) devcluster.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := cluster.Kubectl(ctx, stdin, args...)
	t.Logf("$ kubectl %s -> exit %d", strings.Join(args, " "), r.ExitCode)
	return r
}

// mustKubectl runs kubectl and fails the test unless it exits 0; it returns stdout.
func mustKubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := kubectl(t, stdin, args...)
	if r.ExitCode != 0 {
		t.Fatalf("kubectl %s: %s", strings.Join(args, " "), r)
	}
	return r.Stdout
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dumpOnFailure prints the manager logs, events and Embargo's objects when t fails.
func dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range cluster.Managers {
			t.Logf("---- %s log (last 80 lines of %s) ----\n%s", m.Name, m.LogFile, m.LogTail(80))
		}
		for _, args := range [][]string{
			{"get", "events", "-A", "--sort-by=.lastTimestamp"},
			{"get", "vendorpolicies", "-o", "yaml"},
			{"get", "imagescans", "-o", "wide"},
			{"get", "deployments,replicasets,pods", "-A", "-o", "wide"},
			{"get", "validatingwebhookconfigurations", "-o", `jsonpath={range .items[*].webhooks[*]}{.name} {.clientConfig.url}{"\n"}{end}`},
		} {
			r := cluster.Kubectl(context.Background(), "", args...)
			t.Logf("---- kubectl %s ----\n%s%s", strings.Join(args, " "), r.Stdout, r.Stderr)
		}
	})
}

// newNamespace creates a namespace under the shared policy selected by value (deny, warn,
// audit, rollout, or "" for none). Without a kube-controller-manager namespaces are never
// finalized, so they are not deleted.
func newNamespace(t *testing.T, prefix, value string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
	mustKubectl(t, devcluster.Namespace(name, value), "apply", "-f", "-")
	return name
}

// imageLayout is the OCI layout `make image` wrote: $EMBARGO_IMAGE_LAYOUT (as given to make,
// relative to the repository root) or bin/image.
func imageLayout() string {
	layout := os.Getenv("EMBARGO_IMAGE_LAYOUT")
	if layout == "" {
		layout = filepath.Join("bin", "image")
	}
	if !filepath.IsAbs(layout) {
		layout = filepath.Join(root, layout)
	}
	return layout
}
