package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

// applyPolicy applies a VendorPolicy and waits until the audit has taken it in (Ready) and
// admission answers with it: a server-side dry run of probe in namespace ns must satisfy ok.
func applyPolicy(t *testing.T, manifest, name string) {
	t.Helper()
	mustKubectl(t, manifest, "apply", "-f", "-")
	mustKubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "vendorpolicy/"+name)
}

// untilDryRun repeats a server-side dry run of manifest until ok accepts its result: the
// webhook's informer may be a moment behind kubectl.
func untilDryRun(t *testing.T, manifest string, ok func(devcluster.Result) bool) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		r := kubectl(t, manifest, "apply", "--dry-run=server", "-f", "-")
		if !ok(r) {
			return fmt.Errorf("dry run not yet as expected: %s", r)
		}
		return nil
	})
}

// digestOf resolves an image tag in the test registry.
func digestOf(t testing.TB, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

func containsAll(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not mention %q:\n%s", what, w, s)
		}
	}
}

func TestDenyAndAdmit(t *testing.T) {
	dumpOnFailure(t)
	applyPolicy(t, devcluster.PolicyDeny, devcluster.PolicyDenyName)
	ns := newNamespace(t, "payments", "deny")
	banned := devcluster.Deployment(ns, "endpoint-agent", "agent", cluster.Images.Kaspersky)
	untilDryRun(t, banned, func(r devcluster.Result) bool { return r.ExitCode != 0 })

	r := kubectl(t, banned, "apply", "-f", "-")
	if r.ExitCode == 0 {
		t.Fatalf("a Deployment running Kaspersky software was admitted under a Deny policy: %s", r)
	}
	digest := digestOf(t, cluster.Images.Kaspersky)
	containsAll(t, "the denial", r.Stderr,
		`admission webhook "apps.workloads.embargo.dev" denied the request`,
		"Deployment "+ns+"/endpoint-agent",
		`container "agent"`,
		cluster.Images.Kaspersky,
		digest[:len("sha256:")+12],
		"kesl 12.1.0-1187 (deb)",
		"AO Kaspersky Lab",
		`dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`,
		"VendorPolicy "+devcluster.PolicyDenyName,
		"Basis: DHS Binding Operational Directive 17-01",
	)
	if r := kubectl(t, "", "get", "deployment", "endpoint-agent", "-n", ns); r.ExitCode == 0 || !strings.Contains(r.Stderr, "NotFound") {
		t.Errorf("the denied Deployment exists: %s", r)
	}

	r = kubectl(t, devcluster.Deployment(ns, "frontend", "web", cluster.Images.Clean), "apply", "-f", "-")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "deployment.apps/frontend created") {
		t.Fatalf("a clean Deployment was not admitted: %s", r)
	}
	if strings.Contains(r.Stderr, "Warning") {
		t.Errorf("a clean Deployment drew a warning: %s", r)
	}
}

func TestWarn(t *testing.T) {
	dumpOnFailure(t)
	applyPolicy(t, devcluster.PolicyWarn, devcluster.PolicyWarnName)
	ns := newNamespace(t, "staging", "warn")
	dep := devcluster.Deployment(ns, "endpoint-agent", "agent", cluster.Images.Kaspersky)
	untilDryRun(t, dep, func(r devcluster.Result) bool { return strings.Contains(r.Stderr, "Warning:") })

	r := kubectl(t, dep, "apply", "-f", "-")
	if r.ExitCode != 0 {
		t.Fatalf("a Warn policy rejected the Deployment: %s", r)
	}
	var warning string
	for _, line := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(line, "Warning: ") {
			warning = line
		}
	}
	if warning == "" {
		t.Fatalf("kubectl printed no Warning: line: %s", r)
	}
	containsAll(t, "the warning", warning, `embargo: container "agent"`, "AO Kaspersky Lab", devcluster.PolicyWarnName)
	containsAll(t, "kubectl's output", r.Stdout, "deployment.apps/endpoint-agent created")
}

// TestAuditStatus runs Kaspersky software in an Audit namespace and reads what an admin reads:
// kubectl get vendorpolicies / imagescans and the workload's events.
func TestAuditStatus(t *testing.T) {
	dumpOnFailure(t)
	issued := time.Now().UTC().Truncate(time.Second)
	for _, p := range []struct{ manifest, name string }{
		{devcluster.PolicyDeny, devcluster.PolicyDenyName},
		{devcluster.PolicyAudit, devcluster.PolicyAuditName},
		{devcluster.RolloutPolicy(issued), devcluster.PolicyRolloutName},
	} {
		applyPolicy(t, p.manifest, p.name)
	}
	ns := newNamespace(t, "legacy", "audit")
	rollout := newNamespace(t, "rollout", "rollout")
	for _, w := range []struct{ ns, name, image string }{
		{ns, "av-gateway", cluster.Images.Kaspersky},
		{ns, "frontend", cluster.Images.Clean},
		{rollout, "frontend", cluster.Images.Clean},
	} {
		r := kubectl(t, devcluster.Deployment(w.ns, w.name, "app", w.image), "apply", "-f", "-")
		if r.ExitCode != 0 || strings.Contains(r.Stderr, "Warning") {
			t.Fatalf("Audit must admit silently: %s", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := cluster.SimulateRollout(ctx, w.ns, w.name)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	keslDigest := digestOf(t, cluster.Images.Kaspersky)
	cleanDigest := digestOf(t, cluster.Images.Clean)
	eventually(t, 90*time.Second, func() error {
		got := mustKubectl(t, "", "get", "vendorpolicy", devcluster.PolicyAuditName, "-o",
			`jsonpath={.status.totalViolations}/{.status.conditions[?(@.type=="Compliant")].status}/{.status.observedGeneration}`)
		if got != "1/False/1" {
			return fmt.Errorf("%s: violations/compliant/observedGeneration = %q, want 1/False/1", devcluster.PolicyAuditName, got)
		}
		got = mustKubectl(t, "", "get", "vendorpolicy", devcluster.PolicyRolloutName, "-o",
			`jsonpath={.status.totalViolations}/{.status.conditions[?(@.type=="Compliant")].status}`)
		if got != "0/True" {
			return fmt.Errorf("%s: violations/compliant = %q, want 0/True", devcluster.PolicyRolloutName, got)
		}
		return nil
	})

	t.Run("kubectl get vendorpolicies", func(t *testing.T) {
		out := mustKubectl(t, "", "get", "vendorpolicies")
		t.Logf("\n%s", out)
		rows := table(t, out, "NAME", "ACTION", "SINCE", "COMPLIANT", "VIOLATIONS", "WORKLOADS", "NEXT", "AT", "AGE")
		want := map[string]map[string]string{
			devcluster.PolicyAuditName: {"ACTION": "Audit", "COMPLIANT": "False", "VIOLATIONS": "1", "WORKLOADS": "1", "NEXT": "", "AT": ""},
			devcluster.PolicyDenyName:  {"ACTION": "Deny", "SINCE": "", "COMPLIANT": "True", "VIOLATIONS": "0", "WORKLOADS": "0", "NEXT": ""},
			devcluster.PolicyRolloutName: {"ACTION": "Audit", "COMPLIANT": "True", "VIOLATIONS": "0", "NEXT": "Warn",
				"AT": issued.AddDate(0, 0, 30).Format(time.RFC3339)},
		}
		for policy, cols := range want {
			row, ok := rows[policy]
			if !ok {
				t.Errorf("no row for %s", policy)
				continue
			}
			for col, v := range cols {
				if row[col] != v {
					t.Errorf("%s %s = %q, want %q", policy, col, row[col], v)
				}
			}
		}
	})

	t.Run("kubectl get imagescans", func(t *testing.T) {
		out := mustKubectl(t, "", "get", "imagescans")
		t.Logf("\n%s", out)
		rows := table(t, out, "NAME", "DIGEST", "IMAGE", "PHASE", "READY", "FINDINGS", "AGE")
		byDigest := map[string]map[string]string{}
		for _, row := range rows {
			byDigest[row["DIGEST"]] = row
		}
		for _, c := range []struct {
			digest, repo string
			findings     func(int) bool
		}{
			{keslDigest, "security/kesl", func(n int) bool { return n > 0 }},
			{cleanDigest, "shop/frontend", func(n int) bool { return n == 0 }},
		} {
			short := strings.TrimPrefix(c.digest, "sha256:")[:12]
			row, ok := byDigest[short]
			if !ok {
				t.Errorf("no ImageScan row with DIGEST %s", short)
				continue
			}
			n, err := strconv.Atoi(row["FINDINGS"])
			if err != nil || !c.findings(n) || row["PHASE"] != "Scanned" || row["READY"] != "True" || !strings.Contains(row["IMAGE"], c.repo+"@"+c.digest) {
				t.Errorf("ImageScan %s: %v", short, row)
			}
		}
	})

	t.Run("kubectl describe deployment", func(t *testing.T) {
		out := mustKubectl(t, "", "describe", "deployment", "av-gateway", "-n", ns)
		_, events, _ := strings.Cut(out, "Events:")
		containsAll(t, "the Deployment's events", events, "Warning", "BannedVendorSoftware", "kesl", "AO Kaspersky Lab", devcluster.PolicyAuditName)
		if t.Failed() {
			t.Logf("\n%s", out)
		}
		out = mustKubectl(t, "", "describe", "deployment", "frontend", "-n", ns)
		if strings.Contains(out, "BannedVendorSoftware") {
			t.Errorf("the clean Deployment has a BannedVendorSoftware event:\n%s", out)
		}
	})
}

// table parses kubectl's tabular output into rows keyed by NAME. Cells are cut at the header's
// column offsets: kubectl leaves empty cells blank.
func table(t *testing.T, out string, header ...string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(header, " ") {
		t.Fatalf("columns are %q, want %q", got, header)
	}
	starts := make([]int, len(header))
	from := 0
	for i, h := range header {
		starts[i] = from + strings.Index(lines[0][from:], h)
		from = starts[i] + len(h)
	}
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		row := map[string]string{}
		for i, h := range header {
			end := len(l)
			if i+1 < len(starts) && starts[i+1] < end {
				end = starts[i+1]
			}
			if starts[i] < end {
				row[h] = strings.TrimSpace(l[starts[i]:end])
			}
		}
		rows[row[header[0]]] = row
	}
	return rows
}

// TestWebhookTLS checks that what the managers serve chains to the caBundle the API server
// trusts, and to nothing else.
func TestWebhookTLS(t *testing.T) {
	dumpOnFailure(t)
	cfg := mustKubectl(t, "", "get", "validatingwebhookconfiguration", cluster.WebhookConfiguration, "-o",
		`jsonpath={range .webhooks[*]}{.name} {.clientConfig.url} {.clientConfig.caBundle}{"\n"}{end}`)
	var bundle string
	for _, line := range strings.Split(strings.TrimSpace(cfg), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("webhook without url or caBundle: %q", line)
		}
		if want := fmt.Sprintf("https://127.0.0.1:%d/", cluster.Managers[0].WebhookPort); !strings.HasPrefix(f[1], want) {
			t.Errorf("webhook %s calls %s, want %s...", f[0], f[1], want)
		}
		if bundle != "" && f[2] != bundle {
			t.Errorf("webhook %s has a different caBundle", f[0])
		}
		bundle = f[2]
	}
	pem, err := base64.StdEncoding.DecodeString(bundle)
	if err != nil {
		t.Fatal(err)
	}
	secretCA := mustKubectl(t, "", "get", "secret", "embargo-webhook-tls", "-n", cluster.Namespace, "-o", `jsonpath={.data.ca\.crt}`)
	if secretCA != bundle {
		t.Errorf("the caBundle is not the CA in Secret %s/embargo-webhook-tls", cluster.Namespace)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("caBundle holds no certificate:\n%s", pem)
	}
	for _, m := range cluster.Managers {
		addr := fmt.Sprintf("127.0.0.1:%d", m.WebhookPort)
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Errorf("%s: %s does not verify against the caBundle: %v", m.Name, addr, err)
			continue
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		t.Logf("%s serves %q (IPs %v), valid until %s", m.Name, leaf.Subject, leaf.IPAddresses, leaf.NotAfter.Format(time.RFC3339))

		// The system roots must not vouch for it: the check above is what made it pass.
		_, err = tls.Dial("tcp", addr, &tls.Config{MinVersion: tls.VersionTLS12})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("%s: without the caBundle: %v, want an unknown-authority error", m.Name, err)
		}
	}
}

// TestLeaderElection: two managers against one API server, one VendorPolicy status writer.
func TestLeaderElection(t *testing.T) {
	dumpOnFailure(t)
	if len(cluster.Managers) < 2 {
		t.Fatal("the cluster runs one manager")
	}
	applyPolicy(t, `apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: e2e-leader-election
spec:
  vendors:
  - catalog: kaspersky
  action: Audit
  match:
    namespaceSelector:
      matchLabels:
        e2e: leader-election
`, "e2e-leader-election")
	holder := mustKubectl(t, "", "get", "lease", "embargo-audit.embargo.dev", "-n", cluster.Namespace, "-o", "jsonpath={.spec.holderIdentity}")
	if holder == "" {
		t.Error("the leader lease has no holder")
	}
	const metric = "embargo_policy_status_writes_total"
	writes := map[string]float64{}
	writers := 0
	for _, m := range cluster.Managers {
		v, found, err := m.Metric(context.Background(), metric)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Errorf("%s exports no %s", m.Name, metric)
		}
		writes[m.Name] = v
		if v > 0 {
			writers++
		}
	}
	t.Logf("%s: %v (lease holder %s)", metric, writes, holder)
	if writers != 1 {
		t.Errorf("%d managers wrote VendorPolicy status (%v), want exactly 1", writers, writes)
	}
}
