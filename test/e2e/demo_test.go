package e2e

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo`'s program the way the Makefile does, with -exit, so the README's
// first command cannot rot. It brings up its own node: parallel, it starts after TestNode
// (sequential) has stopped the one node this machine can run.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo", "-exit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets, "EMBARGO_BIN="+binDir, "EMBARGO_IMAGE_LAYOUT="+imageLayout())
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
		"node embargo-node is Ready", "STATUS: deployed", "legacy/av-gateway: rolled out",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	// The audit names the digest the kubelet reported for legacy's av-gateway Pod.
	var pod, digest string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "av-gateway-") && strings.Contains(f[1], "@sha256:") {
			pod, digest = f[0], f[1][strings.LastIndex(f[1], "@")+1:]
		}
	}
	if digest == "" {
		t.Errorf("the demo did not show av-gateway's kubelet-reported imageID")
	} else if !regexp.MustCompile(`legacy\s+av-gateway\s+` + regexp.QuoteMeta(pod) + `\s+` + regexp.QuoteMeta(digest)).MatchString(out) {
		t.Errorf("the audit's violations do not name pod %s with the kubelet's digest %s", pod, digest)
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
