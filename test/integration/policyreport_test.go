package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/metrics"
)

// policyReportCRD is a minimal wgpolicyk8s.io/v1alpha2 PolicyReport CRD: the kind and
// names Policy Reporter installs, any content.
func policyReportCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "policyreports.wgpolicyk8s.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "wgpolicyk8s.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "policyreports", Singular: "policyreport", Kind: "PolicyReport", ListKind: "PolicyReportList", ShortNames: []string{"polr"},
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha2", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: new(true),
				}},
			}},
		},
	}
}

// What the test reads of a report.
type testReport struct {
	Results []struct {
		Source, Policy, Rule, Category, Severity, Result, Message string
		Scored                                                    bool
		Timestamp                                                 struct{ Seconds int64 }
		Resources                                                 []struct{ APIVersion, Kind, Name, Namespace, UID string }
		Properties                                                map[string]string
	}
	Summary struct{ Pass, Fail, Warn, Error, Skip int }
}

func getReport(ns string) (*unstructured.Unstructured, *testReport, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(controllers.PolicyReportGroupVersion.WithKind("PolicyReport"))
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: controllers.PolicyReportName}, u); err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return nil, nil, err
	}
	var r testReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, err
	}
	return u, &r, nil
}

// TestPolicyReports: the PolicyReport CRD is installed after the manager started and after the
// audit found a violation; the reporter finds it without a restart and writes the namespace's
// report (a fail for the Deployment, a skip for an excepted pod), rewrites nothing when a
// re-audit finds the same, and deletes the report once the namespace is clean.
func TestPolicyReports(t *testing.T) {
	t.Parallel()
	samples(t)
	ctx := context.Background()
	ns := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ns) })
	kesl := digestRef(t, keslImage)
	_, keslDigest, _ := strings.Cut(kesl, "@")

	deployment(t, ns, "web", "web-1", keslImage, kesl, 2)
	create(t, podOf(ns, "engine", scanEngineImage, nil, "", ""))
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionAudit,
		Exceptions: []v1alpha1.Exception{{
			Images: []string{reg.Host + "/samples/scanengine:*"}, Reason: "waiver W-17-01-009",
		}},
	})
	waitStatus(t, p.Name, 60*time.Second, wantCounts(counts{2, 1, 2, 1, 0}))

	start := time.Now()
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{policyReportCRD()}}); err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &d); err != nil {
		t.Fatal(err)
	}

	var u *unstructured.Unstructured
	var r *testReport
	eventually(t, 90*time.Second, func() error {
		var err error
		if u, r, err = getReport(ns); err != nil {
			return err
		}
		if len(r.Results) != 2 || r.Summary.Fail != 1 || r.Summary.Skip != 1 {
			return fmt.Errorf("%d results, summary %+v", len(r.Results), r.Summary)
		}
		return nil
	})
	t.Logf("report written %s after the CRD was installed", time.Since(start).Round(time.Millisecond))
	if got := u.GetLabels()[controllers.ManagedByLabel]; got != "embargo" {
		t.Errorf("label %s = %q", controllers.ManagedByLabel, got)
	}
	if r.Summary.Pass+r.Summary.Warn+r.Summary.Error != 0 {
		t.Errorf("summary %+v", r.Summary)
	}
	fail, skip := r.Results[0], r.Results[1]
	for _, res := range r.Results {
		if res.Source != "embargo" || res.Policy != p.Name || res.Rule != kasperskyVendor || res.Category != "banned-vendor" ||
			res.Severity != "medium" || !res.Scored || res.Timestamp.Seconds == 0 || len(res.Resources) != 1 || res.Message == "" {
			t.Errorf("result %+v", res)
		}
	}
	if fail.Result != "fail" {
		t.Fatalf("first result %q, want the fail first", fail.Result)
	}
	if want := (struct{ APIVersion, Kind, Name, Namespace, UID string }{"apps/v1", "Deployment", "web", ns, string(d.UID)}); fail.Resources[0] != want {
		t.Errorf("fail resource %+v, want %+v", fail.Resources[0], want)
	}
	if pr := fail.Properties; pr["image"] != keslImage || pr["package"] != "kesl 12.1.0-1187" || pr["digest"] != keslDigest ||
		pr["container"] != "app" || pr["evidence"] == "" || pr["action"] != "Audit" {
		t.Errorf("fail properties %v", pr)
	}
	if !strings.Contains(fail.Message, "kesl 12.1.0-1187") || !strings.Contains(fail.Message, keslImage) {
		t.Errorf("fail message %q", fail.Message)
	}
	if skip.Result != "skip" || skip.Resources[0].Kind != "Pod" || skip.Resources[0].Name != "engine" ||
		skip.Properties["image"] != scanEngineImage || skip.Properties["package"] != "" {
		t.Errorf("skip result %+v", skip)
	}

	// a re-audit that finds the same writes nothing: wait for the audit to end (it has handed
	// its results to the reporter), then for a reporter pass that began after it and ended. The
	// API server ignores an update that changes nothing (the resourceVersion stays), so the
	// writes are counted where they are made: embargo_policyreport_writes_total{namespace}.
	// The reporter counts a write when the API server has answered it, so the report can be read
	// a moment before its write is counted: wait for the count first.
	rv := u.GetResourceVersion()
	var writes float64
	eventually(t, 10*time.Second, func() error {
		if writes = testutil.ToFloat64(metrics.PolicyReportWrites.WithLabelValues(ns)); writes == 0 {
			return fmt.Errorf("embargo_policyreport_writes_total{namespace=%q} is 0 with the report written", ns)
		}
		return nil
	})
	auditedSince(t, p.Name)
	reconciledSince(t, "policyreporter")
	if n := testutil.ToFloat64(metrics.PolicyReportWrites.WithLabelValues(ns)) - writes; n != 0 {
		t.Errorf("a re-audit that found the same wrote the report %v more times", n)
	}
	if u, _, err := getReport(ns); err != nil {
		t.Fatal(err)
	} else if u.GetResourceVersion() != rv {
		t.Errorf("a re-audit that found the same rewrote the report: resourceVersion %s → %s", rv, u.GetResourceVersion())
	}

	// clean namespace: no report
	deleteAllPods(t, ns)
	eventually(t, 60*time.Second, func() error {
		_, r, err := getReport(ns)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("report still there: summary %+v", r.Summary)
	})
}
