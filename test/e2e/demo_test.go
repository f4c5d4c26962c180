package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo`'s program the way the Makefile does, with -exit, so the README's
// first command cannot rot. It brings up its own cluster.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo", "-exit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets, "EMBARGO_BIN="+binDir)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	out := string(b)
	t.Logf("go run ./hack/demo -exit: %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"(exit code 1: the pipeline stops here)", "(exit code 0: ship it)",
		`admission webhook "apps.workloads.embargo.dev" denied the request`, "kesl 12.1.0-1187 (deb) from AO Kaspersky Lab",
		"Warning: embargo:",
		"$ kubectl get vendorpolicies,imagescans", "vendorpolicy.embargo.dev/bod-17-01-audit", "imagescan.embargo.dev/sha256-",
		"BannedVendorSoftware", "export KUBECONFIG=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	// It cleans up after itself: the kubeconfig it printed is gone.
	for _, l := range strings.Split(out, "\n") {
		if kc, ok := strings.CutPrefix(strings.TrimSpace(l), "export KUBECONFIG="); ok {
			if _, err := os.Stat(kc); !os.IsNotExist(err) {
				t.Errorf("the demo left %s behind (%v)", kc, err)
			}
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
