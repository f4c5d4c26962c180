package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/embargo-dev/embargo/internal/imagebuild"
	"github.com/embargo-dev/embargo/internal/test/devcluster"
	"github.com/embargo-dev/embargo/internal/test/testimage"
)

// TestNode runs Embargo the way a cluster runs it: the image `make image` built, pushed to a
// registry on the node's bridge, installed with `helm install` and the chart's default values
// (but for the image and the plain-HTTP registry), its two manager Pods run by a real kubelet
// and containerd, the webhook reached through its Service. It fails, never skips, when the node
// cannot start.
func TestNode(t *testing.T) {
	layoutDir := imageLayout()
	if _, err := os.Stat(filepath.Join(layoutDir, "index.json")); err != nil {
		t.Fatalf("no image layout at %s (run `make image`): %v", layoutDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	node, err := devcluster.StartNode(ctx, devcluster.NodeOptions{Root: root, Assets: assets, Log: logWriter{}})
	if err != nil {
		t.Fatalf("starting the node: %v", err)
	}
	t.Cleanup(node.Stop)
	t.Logf("node Ready in %s", time.Since(start).Round(time.Millisecond))
	k := func(t *testing.T, stdin string, args ...string) devcluster.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		r := node.Kubectl(ctx, stdin, args...)
		t.Logf("$ kubectl %s -> exit %d", strings.Join(args, " "), r.ExitCode)
		return r
	}
	must := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		r := k(t, stdin, args...)
		if r.ExitCode != 0 {
			t.Fatalf("kubectl %s: %s", strings.Join(args, " "), r)
		}
		return r.Stdout
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, args := range [][]string{
			{"get", "pods,deployments,replicasets,endpointslices", "-A", "-o", "wide"},
			{"get", "events", "-A", "--sort-by=.lastTimestamp"},
			{"-n", devcluster.DefaultNamespace, "logs", "-l", "app.kubernetes.io/name=embargo", "--tail=60", "--prefix"},
		} {
			r := node.Kubectl(context.Background(), "", args...)
			t.Logf("---- kubectl %s ----\n%s%s", strings.Join(args, " "), r.Stdout, r.Stderr)
		}
		for _, p := range []string{"kubelet", "containerd", "kube-apiserver"} {
			t.Logf("---- %s ----\n%s", p, node.ProcLog(p, 40))
		}
	})

	// The manager image and runnable sample images, in the node's registry.
	repo := node.Registry.Host + "/embargo-dev/embargo"
	if _, err := imagebuild.PushLayout(ctx, layoutDir, repo+":e2e", true); err != nil {
		t.Fatalf("pushing the image: %v", err)
	}
	// push makes a sample image runnable and pushes it to reg.
	push := func(reg *testimage.Registry, repoTag string, build func() (v1.Image, error)) string {
		t.Helper()
		base, err := build()
		if err != nil {
			t.Fatal(err)
		}
		img, err := devcluster.RunnableImage(base, node.PauseBinary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Push(repoTag, img); err != nil {
			t.Fatal(err)
		}
		return reg.Ref(repoTag)
	}
	kesl := push(node.Registry, "security/kesl:12.1.0", testimage.KasperskyEndpoint)
	clean := push(node.Registry, "shop/frontend:1.4.2", testimage.Clean)

	// A private registry on the bridge with basic auth: the kubelet pulls from it with a Pod's
	// imagePullSecrets, and Embargo must scan with the same secret.
	private, err := testimage.NewRegistry(testimage.WithAddr(devcluster.NodeHostIP+":0"), testimage.WithBasicAuth("puller", "pull-s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(private.Close)
	if err := node.TrustRegistry(private.Host); err != nil {
		t.Fatal(err)
	}
	privKesl := push(private, "security/kesl:12.1.0", testimage.KasperskyEndpoint)
	privClean := push(private, "shop/frontend:1.4.2", testimage.Clean)

	// A ~2 GB image cut from this machine's own filesystem, on a disk-backed registry on the
	// bridge, built while the chart installs.
	bigReg, err := testimage.NewRegistry(testimage.WithAddr(devcluster.NodeHostIP+":0"), testimage.WithDiskBlobs(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bigReg.Close)
	var (
		big      string
		bigStats testimage.HostStats
		bigErr   error
		bigDone  = make(chan struct{})
		bigDir   = t.TempDir()
	)
	go func() {
		defer close(bigDone)
		var img v1.Image
		if img, bigStats, bigErr = testimage.HostImage(bigDir, testimage.HostLayers...); bigErr == nil {
			big, bigErr = bigReg.Push("debian/host:large", img)
		}
	}()

	// helm install with the chart's defaults.
	hctx, hcancel := context.WithTimeout(ctx, 6*time.Minute)
	r := node.Helm(hctx, "", "install", devcluster.DefaultRelease, filepath.Join(root, "charts", "embargo"),
		"--namespace", devcluster.DefaultNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag=e2e",
		"--set", "registry.insecure={"+node.Registry.Host+","+private.Host+","+bigReg.Host+"}",
		"--wait", "--timeout", "5m")
	hcancel()
	if r.ExitCode != 0 {
		t.Fatalf("helm install: %s", r)
	}
	t.Logf("helm install done %s after start", time.Since(start).Round(time.Millisecond))

	t.Run("two manager Pods Ready, one leader, certificate served through the Service", func(t *testing.T) {
		out := must(t, "", "-n", devcluster.DefaultNamespace, "get", "pods", "-l", "app.kubernetes.io/name=embargo",
			"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].imageID}{"\n"}{end}`)
		lines := strings.Fields(strings.ReplaceAll(out, "\n", " "))
		if len(lines) != 6 {
			t.Fatalf("want 2 manager pods with Ready and imageID, got %q", out)
		}
		for i := 0; i < 6; i += 3 {
			if lines[i+1] != "True" || !strings.Contains(lines[i+2], "@sha256:") {
				t.Errorf("pod %s: Ready=%s imageID=%s", lines[i], lines[i+1], lines[i+2])
			}
		}
		eventually(t, time.Minute, func() error {
			holder := leaseHolder(t, node)
			if holder == "" {
				return fmt.Errorf("no leader yet")
			}
			if !strings.Contains(out, strings.SplitN(holder, "_", 2)[0]) {
				return fmt.Errorf("lease holder %q is not one of the manager pods:\n%s", holder, out)
			}
			return nil
		})
		cab := must(t, "", "get", "validatingwebhookconfigurations", "-o", `jsonpath={.items[*].webhooks[*].clientConfig.caBundle}`)
		if strings.Count(cab, "LS0t") < 2 { // base64 of "---"
			t.Errorf("caBundle not patched: %q", cab)
		}
		svc := must(t, "", "get", "validatingwebhookconfigurations", "-o", `jsonpath={.items[*].webhooks[*].clientConfig.service.name}`)
		if svc == "" {
			t.Errorf("webhooks do not call a Service")
		}
		probeAdmission(t, node)
	})

	must(t, devcluster.PolicyDeny+"\n---\n"+devcluster.PolicyAudit, "apply", "-f", "-")
	denyNS, auditNS := "payments", "legacy"
	must(t, devcluster.Namespace(denyNS, "deny")+"---\n"+devcluster.Namespace(auditNS, "audit"), "apply", "-f", "-")

	t.Run("a Deployment with kesl is denied with the full message", func(t *testing.T) {
		r := k(t, deployment("endpoint-agent", kesl), "-n", denyNS, "apply", "-f", "-")
		if r.ExitCode == 0 {
			t.Fatalf("admitted: %s", r)
		}
		for _, want := range []string{"denied the request", "Deployment " + denyNS + "/endpoint-agent", devcluster.PolicyDenyName,
			"kesl 12.1.0-1187", "AO Kaspersky Lab", "dpkg Maintainer", "layer sha256:", "Binding Operational Directive 17-01"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("message lacks %q:\n%s", want, r.Stderr)
			}
		}
	})

	t.Run("a clean Deployment's Pods run", func(t *testing.T) {
		must(t, deployment("frontend", clean), "-n", denyNS, "apply", "-f", "-")
		waitRunning(t, node, denyNS, "app=frontend", 1)
	})

	t.Run("a Pod admitted under Audit is reported with the digest the kubelet pulled", func(t *testing.T) {
		must(t, deployment("endpoint-agent", kesl), "-n", auditNS, "apply", "-f", "-")
		ids := waitRunning(t, node, auditNS, "app=endpoint-agent", 1)
		digest := ids[0][strings.LastIndex(ids[0], "@")+1:]
		eventually(t, 2*time.Minute, func() error {
			out := node.Kubectl(ctx, "", "get", "vendorpolicy", devcluster.PolicyAuditName, "-o", "json").Stdout
			var vp struct {
				Status struct {
					Violations []struct {
						Namespace, Name, Kind string
						Digest, Image         string
					} `json:"violations"`
				} `json:"status"`
			}
			if err := json.Unmarshal([]byte(out), &vp); err != nil {
				return err
			}
			for _, v := range vp.Status.Violations {
				if v.Namespace == auditNS && strings.Contains(v.Digest+v.Image, digest) {
					return nil
				}
			}
			return fmt.Errorf("no violation in %s with the kubelet's digest %s:\n%s", auditNS, digest, out)
		})
		must(t, "", "get", "vendorpolicies,imagescans")
	})

	t.Run("a private registry: the Pod's imagePullSecrets pull and scan; without them the docs' onScanError decides", func(t *testing.T) {
		withSecret, without := "private-pull", "private-nosecret"
		must(t, devcluster.Namespace(withSecret, "deny")+"---\n"+devcluster.Namespace(without, "deny"), "apply", "-f", "-")
		must(t, "", "-n", withSecret, "create", "secret", "docker-registry", "regcred",
			"--docker-server="+private.Host, "--docker-username=puller", "--docker-password=pull-s3cret")
		pull := "      imagePullSecrets: [{name: regcred}]\n"
		// Embargo read the image with the secret: it found kesl in it.
		r := k(t, deployment("agent", privKesl)+pull, "-n", withSecret, "apply", "-f", "-")
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, "kesl 12.1.0-1187") {
			t.Errorf("kesl from the private registry with the pull secret not denied with its finding: %s", r)
		}
		// The kubelet pulled with the secret: the clean image runs.
		must(t, deployment("frontend", privClean)+pull, "-n", withSecret, "apply", "-f", "-")
		waitRunning(t, node, withSecret, "app=frontend", 1)
		// No secret in this namespace: Embargo cannot read the image, and the policy's
		// onScanError: Allow admits it with a warning (the kubelet cannot pull it either).
		r = k(t, deployment("agent", privKesl), "-n", without, "apply", "-f", "-")
		if r.ExitCode != 0 || !strings.Contains(r.Stderr, "admitted by onScanError: Allow") {
			t.Errorf("without credentials, want admitted with a warning (onScanError: Allow): %s", r)
		}
		if strings.Contains(r.Stdout+r.Stderr, "pull-s3cret") {
			t.Errorf("the password is echoed: %s", r)
		}
	})

	t.Run("a ~2 GB, ~75,000-file image is scanned inside the manager Pods under the chart's default memory limit", func(t *testing.T) {
		<-bigDone
		if bigErr != nil {
			t.Fatalf("building the image from this machine's filesystem: %v", bigErr)
		}
		t.Logf("%s: %d files, %.2f GB uncompressed, %.2f GB compressed", big, bigStats.Files,
			float64(bigStats.UncompressedBytes)/1e9, float64(bigStats.CompressedBytes)/1e9)
		if bigStats.UncompressedBytes < 1.8e9 || bigStats.Files < 60000 {
			t.Fatalf("this machine's filesystem gave a smaller image than the ~2 GB, ~80,000 files wanted: %+v", bigStats)
		}
		ns := "large-images"
		must(t, devcluster.Namespace(ns, "deny"), "apply", "-f", "-")
		// Server-side dry runs are admitted by the webhook like real Pods (sideEffects: None) but
		// no kubelet pulls the image. The first outlasts the 7 s scan budget: onScanError: Allow
		// admits it with a warning and the scan goes on in the background, where a replica's
		// retry finds it done.
		start := time.Now()
		dryRun := func() devcluster.Result {
			return node.Kubectl(ctx, "", "-n", ns, "run", "host", "--image="+big, "--restart=Never", "--dry-run=server", "-o", "name")
		}
		if r := dryRun(); r.ExitCode != 0 {
			t.Fatalf("the first admission of the large image: %s", r)
		}
		eventually(t, 8*time.Minute, func() error {
			if r := dryRun(); r.ExitCode != 0 || strings.Contains(r.Stderr, "onScanError") {
				return fmt.Errorf("not decided from a finished scan yet: %s", r)
			}
			return nil
		})
		t.Logf("decided from a finished scan %s after the first admission", time.Since(start).Round(time.Second))
		// Only the leader writes ImageScans, and the dry runs may all have been served by the
		// other replica, which keeps its record in memory. A real Pod that no node can take
		// (so no kubelet pulls 2 GB) is what the leader's PodScanner records whichever replica
		// admitted it: from its own admission scan, or from a background scan of its own.
		must(t, `apiVersion: v1
kind: Pod
metadata: {name: host-pending}
spec:
  nodeSelector: {embargo.dev/no-such-node: "true"}
  restartPolicy: Never
  containers: [{name: host, image: "`+big+`"}]
`, "-n", ns, "apply", "-f", "-")
		t.Cleanup(func() { kubectl(t, "", "-n", ns, "delete", "pod", "host-pending", "--wait=false") })
		digest := big[strings.LastIndex(big, "@")+1:]
		eventually(t, 4*time.Minute, func() error {
			r := node.Kubectl(ctx, "", "get", "imagescans", "-o", `jsonpath={range .items[*]}{.spec.digest} {.status.phase} {.status.packageCount}{"\n"}{end}`)
			if r.ExitCode != 0 {
				return fmt.Errorf("listing ImageScans: %s", r)
			}
			out := r.Stdout
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) == 3 && f[0] == digest {
					if n, _ := strconv.Atoi(f[2]); f[1] == "Scanned" && n >= 500 {
						t.Logf("ImageScan: %s", l)
						return nil
					}
					return fmt.Errorf("ImageScan of %s: %s", digest, l)
				}
			}
			return fmt.Errorf("no ImageScan for %s:\n%s", digest, out)
		})

		out := must(t, "", "-n", devcluster.DefaultNamespace, "get", "pods", "-l", "app.kubernetes.io/name=embargo", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{"\n"}{end}`)
		pods := strings.Split(strings.TrimSpace(out), "\n")
		if len(pods) != 2 {
			t.Fatalf("want 2 manager pods:\n%s", out)
		}
		// Both replicas may have scanned the image (a retry can reach the second before the first
		// saved its record): wait until neither has a scan's layers in its scratch volume.
		eventually(t, 6*time.Minute, func() error {
			for _, p := range pods {
				f := strings.Fields(p)
				if left, _ := filepath.Glob(filepath.Join(node.EmptyDir(f[1], "scratch"), "embargo-scan-*")); len(left) > 0 {
					return fmt.Errorf("pod %s still scanning: %v", f[0], left)
				}
			}
			return nil
		})
		for _, p := range pods {
			f := strings.Fields(p)
			m, err := node.ContainerMemory(f[2])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("pod %s: peak RSS %d MiB, cgroup peak (RSS + page cache) %d MiB, limit %d MiB, OOM kills %d, restarts %s",
				f[0], m.PeakRSS>>20, m.CgroupPeak>>20, m.Limit>>20, m.OOMKills, f[3])
			if m.OOMKills != 0 || f[3] != "0" {
				t.Errorf("pod %s was OOM-killed or restarted: %+v, restarts %s", f[0], m, f[3])
			}
			if m.Limit != 1<<30 || m.PeakRSS == 0 || m.PeakRSS >= m.Limit {
				t.Errorf("pod %s: peak RSS %d against limit %d (want the chart's 1 GiB default, not reached)", f[0], m.PeakRSS, m.Limit)
			}
		}
	})

	t.Run("the leader's Pod is deleted: the other replica leads, admission keeps answering", func(t *testing.T) {
		old := leaseHolder(t, node)
		pod := strings.SplitN(old, "_", 2)[0]
		admitDuring(t, node, kesl, denyNS, "failover", func() {
			must(t, "", "-n", devcluster.DefaultNamespace, "delete", "pod", pod, "--wait=false")
			eventually(t, 2*time.Minute, func() error {
				if h := leaseHolder(t, node); h == "" || h == old {
					return fmt.Errorf("lease still held by %q", h)
				}
				return nil
			})
			waitRunning(t, node, devcluster.DefaultNamespace, "app.kubernetes.io/name=embargo", 2)
		})
	})

	t.Run("helm upgrade to a new image tag rolls without an admission outage", func(t *testing.T) {
		if _, err := imagebuild.PushLayout(ctx, layoutDir, repo+":e2e-next", true); err != nil {
			t.Fatal(err)
		}
		admitDuring(t, node, kesl, denyNS, "upgrade", func() {
			hctx, hcancel := context.WithTimeout(ctx, 5*time.Minute)
			defer hcancel()
			if r := node.Helm(hctx, "", "upgrade", devcluster.DefaultRelease, filepath.Join(root, "charts", "embargo"),
				"--namespace", devcluster.DefaultNamespace, "--reuse-values", "--set", "image.tag=e2e-next", "--wait", "--timeout", "4m"); r.ExitCode != 0 {
				t.Fatalf("helm upgrade: %s", r)
			}
			eventually(t, 2*time.Minute, func() error {
				out := node.Kubectl(ctx, "", "-n", devcluster.DefaultNamespace, "get", "pods", "-l", "app.kubernetes.io/name=embargo",
					"-o", `jsonpath={range .items[*]}{.spec.containers[0].image} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`).Stdout
				if strings.Count(out, ":e2e-next True") != 2 || strings.Contains(out, ":e2e ") {
					return fmt.Errorf("not rolled to e2e-next:\n%s", out)
				}
				return nil
			})
		})
	})

	t.Run("kubectl drain respects the PodDisruptionBudget", func(t *testing.T) {
		// One node: the evicted replica's successor cannot schedule on the cordoned node, so the
		// PDB (minAvailable 1) must refuse the second eviction and drain must give up.
		admitDuring(t, node, kesl, denyNS, "drain", func() {
			r := k(t, "", "drain", "embargo-node", "--pod-selector=app.kubernetes.io/name=embargo", "--delete-emptydir-data", "--timeout=20s")
			if r.ExitCode == 0 || !strings.Contains(r.Stdout+r.Stderr, "disruption budget") {
				t.Errorf("drain was not held back by the PDB: %s", r)
			}
			waitRunning(t, node, devcluster.DefaultNamespace, "app.kubernetes.io/name=embargo", 1)
		})
		must(t, "", "uncordon", "embargo-node")
		waitRunning(t, node, devcluster.DefaultNamespace, "app.kubernetes.io/name=embargo", 2)
	})

	t.Run("helm uninstall keeps the CRDs", func(t *testing.T) {
		hctx, hcancel := context.WithTimeout(ctx, 3*time.Minute)
		defer hcancel()
		if r := node.Helm(hctx, "", "uninstall", devcluster.DefaultRelease, "-n", devcluster.DefaultNamespace, "--wait"); r.ExitCode != 0 {
			t.Fatalf("helm uninstall: %s", r)
		}
		must(t, "", "get", "crd", "vendorpolicies.embargo.dev", "imagescans.embargo.dev")
	})
}

// admitDuring sends server-side dry runs of a kesl Deployment in ns without pause while during
// runs, and fails unless every one came back as the webhook's denial.
func admitDuring(t *testing.T, node *devcluster.Node, image, ns, what string, during func()) {
	t.Helper()
	var failed, total atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := node.Kubectl(context.Background(), deployment(what, image), "-n", ns, "apply", "--dry-run=server", "-f", "-")
			total.Add(1)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, "denied the request") {
				failed.Add(1)
				t.Logf("admission during the %s: %s", what, r)
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		t.Logf("admissions during the %s: %d, failed: %d", what, total.Load(), failed.Load())
		if total.Load() < 3 || failed.Load() != 0 {
			t.Errorf("%d of %d admissions failed during the %s", failed.Load(), total.Load(), what)
		}
	}()
	during()
}

func deployment(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: %[2]s
`, name, image)
}

// leaseHolder is the manager's leader-election lease holder ("" when none).
func leaseHolder(t *testing.T, node *devcluster.Node) string {
	t.Helper()
	r := node.Kubectl(context.Background(), "", "-n", devcluster.DefaultNamespace, "get", "leases", "-o", `jsonpath={range .items[*]}{.spec.holderIdentity}{"\n"}{end}`)
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(l, "embargo") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// probeAdmission checks the API server reaches the webhook through its Service: a bad policy
// is refused by the policy webhook.
func probeAdmission(t *testing.T, node *devcluster.Node) {
	t.Helper()
	r := node.Kubectl(context.Background(), "apiVersion: embargo.dev/v1alpha1\nkind: VendorPolicy\nmetadata: {name: probe}\nspec:\n  vendors:\n  - catalog: no-such-vendor\n",
		"create", "--dry-run=server", "-f", "-")
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "denied the request") {
		t.Fatalf("the policy webhook did not answer through the Service: %s", r)
	}
}

// waitRunning waits for n Running, Ready Pods matching selector and returns their imageIDs.
func waitRunning(t *testing.T, node *devcluster.Node, ns, selector string, n int) []string {
	t.Helper()
	var ids []string
	eventually(t, 3*time.Minute, func() error {
		out := node.Kubectl(context.Background(), "", "-n", ns, "get", "pods", "-l", selector,
			"-o", `jsonpath={range .items[*]}{.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].imageID} {.metadata.deletionTimestamp}{"\n"}{end}`).Stdout
		ids = nil
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == "Running" && f[1] == "True" && strings.Contains(f[2], "@sha256:") {
				ids = append(ids, f[2])
			}
		}
		if len(ids) != n {
			return fmt.Errorf("want %d Running Ready pods for %s in %s, have:\n%s", n, selector, ns, out)
		}
		return nil
	})
	return ids
}
