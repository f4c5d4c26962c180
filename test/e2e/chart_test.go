package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

func helm(t *testing.T, args ...string) devcluster.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := cluster.Helm(ctx, "", args...)
	t.Logf("$ helm %s -> exit %d", strings.Join(args, " "), r.ExitCode)
	return r
}

func TestHelmLint(t *testing.T) {
	chart := filepath.Join(root, "charts", "embargo")
	for name, set := range map[string][]string{
		"defaults":                               nil,
		"cert-manager":                           {"certManager.enabled=true"},
		"dev mode":                               {"webhook.url=https://127.0.0.1:9443", "manager.enabled=false"},
		"layer cache on a PersistentVolumeClaim": {"layerCache.persistence.enabled=true", "layerCache.persistence.storageClassName=fast"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", chart, "--strict"}
			for _, s := range set {
				args = append(args, "--set", s)
			}
			r := helm(t, args...)
			if r.ExitCode != 0 || !strings.Contains(r.Stdout, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint: %s", r)
			}
		})
	}
}

// kinds counts the rendered objects by kind.
func kinds(objs []devcluster.Object) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.Kind]++
	}
	return out
}

func find(objs []devcluster.Object, kind string) *devcluster.Object {
	for i := range objs {
		if objs[i].Kind == kind {
			return &objs[i]
		}
	}
	return nil
}

// get walks a decoded object: strings index maps, ints index lists.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// checkNamespaceSelectors asserts that every workload webhook skips kube-system and the
// manager's namespace, so Embargo can never lock the cluster out of itself.
func checkNamespaceSelectors(t *testing.T, vwc *devcluster.Object, namespace string) {
	t.Helper()
	hooks, _ := get(vwc.Map, "webhooks").([]any)
	if len(hooks) == 0 {
		t.Fatal("the ValidatingWebhookConfiguration has no webhooks")
	}
	for i := range hooks {
		name := get(hooks, i, "name")
		if name == "vendorpolicies.embargo.dev" {
			continue // cluster-scoped: no namespace to select
		}
		exprs, _ := get(hooks, i, "namespaceSelector", "matchExpressions").([]any)
		ok := false
		for j := range exprs {
			if get(exprs, j, "key") == "kubernetes.io/metadata.name" && get(exprs, j, "operator") == "NotIn" {
				values := strs(get(exprs, j, "values"))
				ok = slices.Contains(values, "kube-system") && slices.Contains(values, namespace)
			}
		}
		if !ok {
			t.Errorf("webhook %v: namespaceSelector %v does not exclude kube-system and %s", name, get(hooks, i, "namespaceSelector"), namespace)
		}
	}
}

func TestHelmTemplate(t *testing.T) {
	chart := filepath.Join(root, "charts", "embargo")
	common := map[string]int{
		"CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
		"Role": 1, "RoleBinding": 1, "ValidatingWebhookConfiguration": 1, "VendorPolicy": 1,
	}
	inCluster := map[string]int{"Deployment": 1, "Service": 2, "PodDisruptionBudget": 1}
	tests := map[string]struct {
		set       []string
		wantKinds []map[string]int
		check     func(t *testing.T, objs []devcluster.Object)
	}{
		"self-managed certificates": {
			wantKinds: []map[string]int{common, inCluster},
			check: func(t *testing.T, objs []devcluster.Object) {
				args := strings.Join(strs(get(find(objs, "Deployment").Map, "spec", "template", "spec", "containers", 0, "args")), " ")
				for _, want := range []string{"--leader-elect", "--cert-secret=embargo-webhook-tls", "--webhook-configurations=embargo"} {
					if !strings.Contains(args, want) {
						t.Errorf("manager args %q lack %s", args, want)
					}
				}
				if v := get(find(objs, "ValidatingWebhookConfiguration").Map, "metadata", "annotations", "cert-manager.io/inject-ca-from"); v != nil {
					t.Errorf("cert-manager annotation without cert-manager: %v", v)
				}
				if n := get(find(objs, "Deployment").Map, "spec", "replicas"); fmt.Sprint(n) != "2" {
					t.Errorf("replicas = %v, want 2", n)
				}
				// By default the layer cache is on the scratch emptyDir, no claim.
				spec := get(find(objs, "Deployment").Map, "spec", "template", "spec")
				if vols := get(spec, "volumes").([]any); len(vols) != 1 || get(vols, 0, "emptyDir") == nil {
					t.Errorf("volumes = %v, want the scratch emptyDir alone", vols)
				}
			},
		},
		"cert-manager": {
			set:       []string{"certManager.enabled=true"},
			wantKinds: []map[string]int{common, inCluster, {"Issuer": 1, "Certificate": 1}},
			check: func(t *testing.T, objs []devcluster.Object) {
				args := strings.Join(strs(get(find(objs, "Deployment").Map, "spec", "template", "spec", "containers", 0, "args")), " ")
				if !strings.Contains(args, "--self-signed-certs=false") {
					t.Errorf("manager args %q: the manager still manages its certificate", args)
				}
				want := "embargo-system/" + fmt.Sprint(get(find(objs, "Certificate").Map, "metadata", "name"))
				if v := get(find(objs, "ValidatingWebhookConfiguration").Map, "metadata", "annotations", "cert-manager.io/inject-ca-from"); v != want {
					t.Errorf("inject-ca-from = %v, want %s", v, want)
				}
			},
		},
		"layer cache on a new PersistentVolumeClaim": {
			set:       []string{"layerCache.persistence.enabled=true", "layerCache.persistence.size=20Gi", "layerCache.persistence.storageClassName=fast", "layerCache.persistence.accessModes={ReadWriteMany}"},
			wantKinds: []map[string]int{common, inCluster, {"PersistentVolumeClaim": 1}},
			check: func(t *testing.T, objs []devcluster.Object) {
				pvc := find(objs, "PersistentVolumeClaim")
				got := fmt.Sprintf("%s %v %v %v", pvc.Name, get(pvc.Map, "spec", "resources", "requests", "storage"),
					get(pvc.Map, "spec", "storageClassName"), get(pvc.Map, "spec", "accessModes"))
				if want := "embargo-layer-cache 20Gi fast [ReadWriteMany]"; got != want {
					t.Errorf("the claim is %q, want %q", got, want)
				}
				checkLayerCacheVolume(t, find(objs, "Deployment"), "embargo-layer-cache")
			},
		},
		"layer cache on an existing claim": {
			set:       []string{"layerCache.persistence.enabled=true", "layerCache.persistence.existingClaim=shared-layers", "scan.layerCacheDir=/cache"},
			wantKinds: []map[string]int{common, inCluster},
			check: func(t *testing.T, objs []devcluster.Object) {
				checkLayerCacheVolume(t, find(objs, "Deployment"), "shared-layers")
				args := strs(get(find(objs, "Deployment").Map, "spec", "template", "spec", "containers", 0, "args"))
				if !slices.Contains(args, "--layer-cache-dir=/cache") {
					t.Errorf("manager args %q lack --layer-cache-dir=/cache", args)
				}
			},
		},
		"dev mode: manager on the host": {
			set:       []string{"webhook.url=https://127.0.0.1:9443", "manager.enabled=false"},
			wantKinds: []map[string]int{common},
			check: func(t *testing.T, objs []devcluster.Object) {
				hooks := get(find(objs, "ValidatingWebhookConfiguration").Map, "webhooks").([]any)
				for i := range hooks {
					url := fmt.Sprint(get(hooks, i, "clientConfig", "url"))
					if !strings.HasPrefix(url, "https://127.0.0.1:9443/validate-") {
						t.Errorf("webhook %v calls %s", get(hooks, i, "name"), url)
					}
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := []string{"template", "embargo", chart, "--namespace", "embargo-system", "--include-crds"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			r := helm(t, args...)
			if r.ExitCode != 0 {
				t.Fatalf("helm template: %s", r)
			}
			objs, err := devcluster.SplitManifests(r.Stdout)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{}
			for _, m := range tc.wantKinds {
				for k, n := range m {
					want[k] += n
				}
			}
			if diff := cmp.Diff(want, kinds(objs)); diff != "" {
				t.Errorf("rendered kinds (-want +got):\n%s", diff)
			}
			checkNamespaceSelectors(t, find(objs, "ValidatingWebhookConfiguration"), "embargo-system")
			tc.check(t, objs)
		})
	}
}

// checkLayerCacheVolume asserts that the manager mounts claim at its --layer-cache-dir, beside
// the scratch emptyDir.
func checkLayerCacheVolume(t *testing.T, dep *devcluster.Object, claim string) {
	t.Helper()
	spec := get(dep.Map, "spec", "template", "spec")
	var dir string
	for _, a := range strs(get(spec, "containers", 0, "args")) {
		if v, ok := strings.CutPrefix(a, "--layer-cache-dir="); ok {
			dir = v
		}
	}
	mounts := map[string]string{}
	for _, m := range get(spec, "containers", 0, "volumeMounts").([]any) {
		mounts[fmt.Sprint(get(m, "name"))] = fmt.Sprint(get(m, "mountPath"))
	}
	if dir == "" || mounts["layer-cache"] != dir || mounts["scratch"] != "/scratch" {
		t.Errorf("volumeMounts %v with --layer-cache-dir=%s: want layer-cache at %s and scratch at /scratch", mounts, dir, dir)
	}
	claims := map[string]any{}
	for _, v := range get(spec, "volumes").([]any) {
		claims[fmt.Sprint(get(v, "name"))] = get(v, "persistentVolumeClaim", "claimName")
	}
	if claims["layer-cache"] != claim || claims["scratch"] != nil {
		t.Errorf("volumes' claims %v, want layer-cache on %s and scratch on no claim", claims, claim)
	}
}

// TestHelmValuesSchema: a bad value fails at template time, naming the value.
func TestHelmValuesSchema(t *testing.T) {
	chart := filepath.Join(root, "charts", "embargo")
	for name, tc := range map[string]struct{ set, want string }{
		"failurePolicy":             {"webhook.failurePolicy=Sometimes", "failurePolicy"},
		"default action":            {"defaultPolicy.action=Block", "action"},
		"unknown key":               {"webhok.url=https://127.0.0.1:9443", "webhok"},
		"access mode":               {"layerCache.persistence.accessModes={ReadWriteSometimes}", "accessModes"},
		"claim without a directory": {"layerCache.persistence.enabled=true,scan.layerCacheDir=", "scan.layerCacheDir"},
	} {
		t.Run(name, func(t *testing.T) {
			r := helm(t, "template", "embargo", chart, "--set", tc.set)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("helm template --set %s: want an error naming %s, got %s", tc.set, tc.want, r)
			}
		})
	}
}

func TestKustomize(t *testing.T) {
	out := mustKubectl(t, "", "kustomize", filepath.Join(root, "config", "default"))
	objs, err := devcluster.SplitManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	var crds []string
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			crds = append(crds, o.Name)
		}
	}
	sort.Strings(crds)
	if diff := cmp.Diff([]string{"imagescans.embargo.dev", "vendorpolicies.embargo.dev"}, crds); diff != "" {
		t.Errorf("CRDs (-want +got):\n%s", diff)
	}
	dep := find(objs, "Deployment")
	if dep == nil {
		t.Fatalf("no Deployment in config/default; kinds: %v", kinds(objs))
	}
	if dep.Namespace != "embargo-system" {
		t.Errorf("the Deployment is in namespace %q, want embargo-system", dep.Namespace)
	}
	vwc := find(objs, "ValidatingWebhookConfiguration")
	if vwc == nil {
		t.Fatalf("no ValidatingWebhookConfiguration in config/default; kinds: %v", kinds(objs))
	}
	checkNamespaceSelectors(t, vwc, "embargo-system")
	// The manager's default --webhook-configurations names this configuration.
	if vwc.Name != "embargo-validating-webhook-configuration" {
		t.Errorf("the webhook configuration is %q; the manager patches embargo-validating-webhook-configuration by default", vwc.Name)
	}
}
