// Command demo is `make demo`: Embargo end to end on one machine, no Docker and no internet. It
// brings up a single-node cluster built here (kube-apiserver, etcd, scheduler, controller manager,
// kubelet, containerd, runc, kube-proxy; see devcluster.StartNode) with an OCI registry on its
// bridge holding sample images (one carries Kaspersky Endpoint Security for Linux), runs the CI
// gate on them, installs the Helm chart from the image `make image` built, applies BOD
// 17-01-style policies and workloads with kubectl, and prints what an admin sees: Pods running
// and denied, the audit's status with the digests the kubelet pulled. Then it leaves the cluster
// running for you to explore until Ctrl-C, and removes everything it made.
//
//	go run ./hack/demo [-exit]
//
// -exit (or EMBARGO_DEMO_EXIT=1) stops right after printing; the e2e tests run it that way. It
// needs root (the node's network, cgroups and mounts): the machines `make test` runs on are.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/embargo-dev/embargo/internal/imagebuild"
	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

func main() {
	exit := flag.Bool("exit", os.Getenv("EMBARGO_DEMO_EXIT") == "1", "exit after printing instead of waiting for Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C during clean-up kills at once
	if err := run(ctx, os.Stdout, *exit); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

type demo struct {
	out  io.Writer
	bold func(string) string
	root string
	bin  string
	node *devcluster.Node
	step int
}

const steps = 6

func (d *demo) section(title string) {
	d.step++
	fmt.Fprintf(d.out, "\n%s\n", d.bold(fmt.Sprintf("[%d/%d] %s", d.step, steps, title)))
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

// show prints a command as typed and its output as printed.
func (d *demo) show(prompt string, r devcluster.Result) {
	fmt.Fprintf(d.out, "\n$ %s\n", prompt)
	io.WriteString(d.out, r.Stdout)
	io.WriteString(d.out, r.Stderr)
}

func run(ctx context.Context, out io.Writer, exitAfter bool) error {
	d := &demo{out: out, bold: func(s string) string { return s }}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		d.bold = func(s string) string { return "\033[1m" + s + "\033[0m" }
	}
	var err error
	if d.root, err = devcluster.FindRoot(); err != nil {
		return err
	}
	assets, err := assetsDir(ctx, d.root)
	if err != nil {
		return err
	}
	if d.bin = os.Getenv("EMBARGO_BIN"); d.bin == "" {
		d.bin = filepath.Join(d.root, "bin")
	}
	layout := os.Getenv("EMBARGO_IMAGE_LAYOUT")
	if layout == "" {
		layout = filepath.Join(d.bin, "image")
	}
	if _, err := os.Stat(filepath.Join(d.bin, "embargo")); err != nil {
		return fmt.Errorf("no embargo in %s: run `make demo` (it builds it) or `make build`", d.bin)
	}
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		return fmt.Errorf("no image layout in %s: run `make demo` (it builds it) or `make image`", layout)
	}
	dir, err := os.MkdirTemp("", "embargo-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	d.say(d.bold("Embargo") + " keeps banned vendors' software out of Kubernetes. DHS Binding Operational Directive")
	d.say("17-01 (2017-09-13) ordered US federal agencies to find Kaspersky-branded products within 30 days")
	d.say("and begin removing them within 90. This demo does that to a local cluster.")

	d.section("A single-node cluster, built on this machine")
	d.say("kube-apiserver, etcd, the scheduler and controller manager, containerd and a kubelet run here;")
	d.say("Pods get addresses on the bridge %s (%s), routed nowhere off this host.", devcluster.NodeBridge, devcluster.NodePodCIDR)
	start := time.Now()
	d.node, err = devcluster.StartNode(ctx, devcluster.NodeOptions{Root: d.root, Assets: assets, Log: indent{out, "  "}})
	if err != nil {
		return err
	}
	defer func() {
		d.say("\nstopping: Pods, containerd, the kubelet, the control plane and the registry; removing the bridge and %s", dir)
		d.node.Stop()
	}()
	d.say("  Ready in %s", time.Since(start).Round(100*time.Millisecond))

	d.section("Sample images in the node's OCI registry")
	images, err := devcluster.PushSamples(d.node.Registry, d.node.PauseBinary)
	if err != nil {
		return err
	}
	for _, i := range []struct{ ref, what string }{
		{images.Kaspersky, "Kaspersky Endpoint Security for Linux, installed from its .deb"},
		{images.ScanEngine, "Kaspersky Scan Engine, unpacked from its tarball (no package record)"},
		{images.Clean, "a Debian-based web frontend, nothing banned"},
	} {
		d.say("  %-52s %s", i.ref, i.what)
	}

	d.section("The CI gate: embargo scan, before anything ships")
	for _, ref := range []string{images.Kaspersky, images.Clean} {
		r := devcluster.Run(ctx, dir, nil, "", filepath.Join(d.bin, "embargo"), "scan", "--insecure", ref)
		d.show("embargo scan --insecure "+ref, r)
		verdict := "the pipeline stops here"
		if r.ExitCode == 0 {
			verdict = "ship it"
		}
		d.say("(exit code %d: %s)", r.ExitCode, verdict)
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	d.section("Embargo installed with Helm, from the image `make image` built")
	repo := d.node.Registry.Host + "/embargo-dev/embargo"
	if _, err := imagebuild.PushLayout(ctx, layout, repo+":demo", true); err != nil {
		return fmt.Errorf("pushing the image: %w", err)
	}
	args := []string{"install", devcluster.DefaultRelease, "charts/embargo", "--namespace", devcluster.DefaultNamespace,
		"--create-namespace", "--set", "image.repository=" + repo, "--set", "image.tag=demo",
		"--set", "registry.insecure={" + d.node.Registry.Host + "}", "--wait", "--timeout", "5m"}
	r := d.node.Helm(ctx, "", args...) // in the repository root
	d.show("helm "+strings.Join(args, " "), r)
	if r.ExitCode != 0 {
		return fmt.Errorf("helm install failed")
	}
	d.show("kubectl -n embargo-system get pods -o wide", d.kubectl(ctx, "", "-n", devcluster.DefaultNamespace, "get", "pods", "-o", "wide"))

	d.section("BOD 17-01 policies and workloads, applied with kubectl")
	manifests := filepath.Join(dir, "manifests")
	if err := d.applyAll(ctx, manifests, images); err != nil {
		return err
	}

	d.section("What an admin sees")
	if err := d.waitAudit(ctx); err != nil {
		return err
	}
	d.show("kubectl get pods -A -l app -o wide", d.kubectl(ctx, "", "get", "pods", "-A", "-l", "app", "-o", "wide"))
	d.show("kubectl get vendorpolicies,imagescans", d.kubectl(ctx, "", "get", "vendorpolicies,imagescans"))
	d.show("kubectl get events -A --field-selector reason=BannedVendorSoftware",
		d.kubectl(ctx, "", "get", "events", "-A", "--field-selector", "reason=BannedVendorSoftware", "-o",
			`custom-columns=NAMESPACE:.metadata.namespace,OBJECT:.involvedObject.name,MESSAGE:.message`))
	d.say("\n# The kubelet pulled legacy's av-gateway by tag; the audit reports the digest it pulled:")
	d.show("kubectl -n legacy get pods -l app=av-gateway -o custom-columns=POD:.metadata.name,IMAGE_ID:.status.containerStatuses[0].imageID",
		d.kubectl(ctx, "", "-n", "legacy", "get", "pods", "-l", "app=av-gateway", "-o",
			"custom-columns=POD:.metadata.name,IMAGE_ID:.status.containerStatuses[0].imageID"))
	cols := "custom-columns=NAMESPACE:.status.violations[*].namespace,WORKLOAD:.status.violations[*].workloadName,POD:.status.violations[*].pod,DIGEST:.status.violations[*].digest"
	d.show("kubectl get vendorpolicy "+devcluster.PolicyAuditName+" -o "+cols,
		d.kubectl(ctx, "", "get", "vendorpolicy", devcluster.PolicyAuditName, "-o", cols))

	d.say("\nThe cluster keeps running. In another shell:")
	d.say("  export KUBECONFIG=%s", d.node.Kubeconfig)
	d.say("  export PATH=%s:$PATH   # kubectl and helm", assets)
	d.say("  kubectl get vendorpolicies -o yaml")
	d.say("  kubectl describe deployment av-gateway -n legacy")
	d.say("  kubectl -n embargo-system logs -l app.kubernetes.io/name=embargo --prefix")
	d.say("  kubectl apply -f %s   # the manifests above", manifests)
	if exitAfter {
		return nil
	}
	d.say("\nPress Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return nil
}

// assetsDir finds kube-apiserver, etcd, kubectl and helm: $KUBEBUILDER_ASSETS, else
// hack/envtest-assets.sh (which builds them once, ~15 min cold).
func assetsDir(ctx context.Context, root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "envtest-assets.sh"))
	cmd.Dir, cmd.Stderr = root, os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// kubectl runs kubectl in the manifests' directory, so printed commands read as typed.
func (d *demo) kubectl(ctx context.Context, dir string, args ...string) devcluster.Result {
	return devcluster.Run(ctx, dir, d.node.Env(), "", d.node.KubectlPath(), args...)
}

func (d *demo) applyAll(ctx context.Context, dir string, images devcluster.Images) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct{ name, comment, content string }{
		{"policies.yaml", "the BOD 17-01 policies: Deny in payments, Warn in staging, Audit in legacy, a dated rollout in field-office",
			devcluster.Join(devcluster.PolicyDeny, devcluster.PolicyWarn, devcluster.PolicyAudit, devcluster.RolloutPolicy(time.Now()))},
		{"payments.yaml", "production, under Deny: the Kaspersky agent is rejected, the frontend admitted",
			devcluster.Join(devcluster.Namespace("payments", "deny"),
				devcluster.Deployment("payments", "frontend", "web", images.Clean),
				devcluster.Deployment("payments", "endpoint-agent", "agent", images.Kaspersky))},
		{"staging.yaml", "staging, under Warn: admitted, and the deployer is told",
			devcluster.Join(devcluster.Namespace("staging", "warn"),
				devcluster.Deployment("staging", "endpoint-agent", "agent", images.Kaspersky))},
		{"legacy.yaml", "legacy, under Audit: admitted silently; the audit reports it",
			devcluster.Join(devcluster.Namespace("legacy", "audit"),
				devcluster.Deployment("legacy", "av-gateway", "scanner", images.Kaspersky),
				devcluster.Deployment("legacy", "frontend", "web", images.Clean))},
		{"field-office.yaml", "field-office, on the 30/90-day rollout: audited today, warned from day 30, denied from day 90",
			devcluster.Join(devcluster.Namespace("field-office", "rollout"),
				devcluster.Deployment("field-office", "scan-engine", "engine", images.ScanEngine))},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	d.say("Manifests are in %s.", dir)
	for i, f := range files {
		d.say("\n# %s", f.comment)
		d.show("kubectl apply -f "+f.name, d.kubectl(ctx, dir, "apply", "-f", f.name))
		if i == 0 {
			for _, p := range []string{devcluster.PolicyDenyName, devcluster.PolicyWarnName, devcluster.PolicyAuditName, devcluster.PolicyRolloutName} {
				if r := d.kubectl(ctx, dir, "wait", "--for=condition=Ready", "--timeout=60s", "vendorpolicy/"+p); r.ExitCode != 0 {
					return fmt.Errorf("policy %s not ready: %s", p, r)
				}
			}
		}
	}

	d.say("\n# The Deployments that were admitted roll out; their Pods run on the node:")
	for _, w := range [][2]string{{"payments", "frontend"}, {"staging", "endpoint-agent"}, {"legacy", "av-gateway"}, {"legacy", "frontend"}, {"field-office", "scan-engine"}} {
		if r := d.kubectl(ctx, dir, "-n", w[0], "rollout", "status", "deployment/"+w[1], "--timeout=3m"); r.ExitCode != 0 {
			return fmt.Errorf("%s/%s did not roll out: %s", w[0], w[1], r)
		}
		d.say("  %s/%s: rolled out", w[0], w[1])
	}
	return nil
}

// waitAudit waits until every pod's image is scanned and every policy's status reflects it.
func (d *demo) waitAudit(ctx context.Context) error {
	want := map[string]string{
		devcluster.PolicyDenyName:    "0",
		devcluster.PolicyWarnName:    "1",
		devcluster.PolicyAuditName:   "1",
		devcluster.PolicyRolloutName: "1",
	}
	var last string
	err := devcluster.Poll(ctx, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		r := d.kubectl(ctx, "", "get", "vendorpolicies", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.status.totalViolations}{"\n"}{end}`)
		if r.ExitCode != 0 {
			return false, nil
		}
		last = r.Stdout
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			if name, v, ok := strings.Cut(l, "="); ok {
				got[name] = v
			}
		}
		for name, v := range want {
			if got[name] != v {
				return false, nil
			}
		}
		r = d.kubectl(ctx, "", "get", "imagescans", "-o", `jsonpath={range .items[*]}{.status.phase}{"\n"}{end}`)
		phases := strings.Fields(r.Stdout)
		if len(phases) < 3 {
			return false, nil
		}
		for _, p := range phases {
			if p != "Scanned" {
				return false, nil
			}
		}
		return true, nil
	})
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("the audit did not converge (violations per policy: %q): %w\n%s", last, err, d.kubectl(ctx, "", "-n", devcluster.DefaultNamespace, "logs", "-l", "app.kubernetes.io/name=embargo", "--tail=30", "--prefix"))
	}
	return nil
}

// indent prefixes every line written to w.
type indent struct {
	w      io.Writer
	prefix string
}

func (i indent) Write(p []byte) (int, error) {
	lines := strings.SplitAfter(string(p), "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(i.prefix + l)
		}
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
