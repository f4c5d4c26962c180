package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/embargo-dev/embargo/api/v1alpha1"
)

func TestPolicyReportResults(t *testing.T) {
	cluster := []podView{
		pv("shop", "web-7d9-b", "Deployment", "web", "app=reg/web:1|"+dgKesl, "proxy=reg/envoy:1|"+dgClean),
		pv("shop", "web-7d9-a", "Deployment", "web", "app=reg/web:1|"+dgKesl),
		pv("shop", "scanner", "Pod", "scanner", "engine=reg/kse:2|"+dgTar),
		pv("ops", "tool", "Pod", "tool", "main=reg/web:1|"+dgKesl),
	}
	c := compile(t, v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Images: []string{"reg/kse:*"}, Reason: "W-1",
		Expires: &metav1.Time{Time: auditNow.Add(time.Hour)}}}})
	ev := evaluate(c, cluster, nil, nil, sampleRecords().get, auditNow)
	byNS := policyReportResults("kaspersky", v1alpha1.ActionDeny, ev)

	type short struct{ Result, Kind, Name, APIVersion, UID, Container, Package, Severity string }
	got := map[string][]short{}
	for ns, rs := range byNS {
		for _, r := range rs {
			res := r.Resources[0]
			if r.Policy != "kaspersky" || r.Rule != "AO Kaspersky Lab" || r.Source != "embargo" || r.Category != "banned-vendor" ||
				!r.Scored || r.Message == "" || r.Properties["digest"] == "" || r.Properties["evidence"] == "" || res.Namespace != ns {
				t.Errorf("result %+v", r)
			}
			got[ns] = append(got[ns], short{r.Result, res.Kind, res.Name, res.APIVersion, string(res.UID), r.Properties["container"], r.Properties["package"], r.Severity})
		}
	}
	want := map[string][]short{
		"ops": {{"fail", "Pod", "tool", "v1", "ops/Pod/tool", "main", "kesl 12.1.0-1187", "high"}},
		"shop": {
			{"fail", "Deployment", "web", "apps/v1", "shop/Deployment/web", "app", "kesl 12.1.0-1187", "high"},
			{"skip", "Pod", "scanner", "v1", "shop/Pod/scanner", "engine", "", "high"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if sev := policyReportResults("p", v1alpha1.ActionAudit, ev)["ops"][0].Severity; sev != "medium" {
		t.Errorf("severity under Audit %q", sev)
	}
}

func TestPolicyReportDesired(t *testing.T) {
	r := NewPolicyReporter(PolicyReporter{MaxResults: 3})
	mk := func(policy, result, name string) reportResult {
		return reportResult{Policy: policy, Result: result, Resources: []reportResource{{Kind: "Pod", Name: name}}, Properties: map[string]string{"container": "app"}}
	}
	byPolicy := map[string]map[string][]reportResult{
		"b": {"shop": {mk("b", resultSkip, "a"), mk("b", resultFail, "z")}, "ops": {mk("b", resultFail, "x")}},
		"a": {"shop": {mk("a", resultFail, "z"), mk("a", resultFail, "c")}},
		"c": nil, // invalid policy, or nothing found
	}
	d := r.desired(byPolicy)
	if len(d) != 2 {
		t.Fatalf("namespaces %v", d)
	}
	shop := d["shop"]
	if shop.Summary != (reportSummary{Fail: 3, Skip: 1}) {
		t.Errorf("summary %+v: counts all results, capped or not", shop.Summary)
	}
	var order []string
	for _, res := range shop.Results {
		order = append(order, fmt.Sprintf("%s %s %s", res.Result, res.Resources[0].Name, res.Policy))
	}
	if diff := cmp.Diff([]string{"fail c a", "fail z a", "fail z b"}, order); diff != "" {
		t.Errorf("fails first, sorted, capped at 3 (-want +got):\n%s", diff)
	}

	// the content round-trips through unstructured unchanged (the write-only-on-change test)
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&shop)
	if err != nil {
		t.Fatal(err)
	}
	var back reportContent
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shop, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
