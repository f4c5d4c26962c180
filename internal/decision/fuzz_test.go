package decision

import (
	"errors"
	"testing"
	"time"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
)

// FuzzDecide checks the invariants every adapter relies on, for any supplier, namespace,
// image and instant: findings are either kept or excepted, never both; the outcome is the
// strongest part; an excepted finding names its exception; scan errors follow onScanError.
func FuzzDecide(f *testing.F) {
	f.Add("Acme Corp", "lab", "reg.example/team/app:1", int64(0), false, uint8(0))
	f.Add("Acme Corp", "shop", "reg.example/app:1", int64(1514764800), true, uint8(1))
	f.Add("Debian", "", "", int64(-1), false, uint8(2))
	f.Add("", "lab", "reg.example/team/*", int64(1513036800), true, uint8(3))
	policies := []*policy.Compiled{
		compile(f, "rollout", v1alpha1.VendorPolicySpec{Rollout: bod1701, OnScanError: v1alpha1.ScanErrorDeny}),
		compile(f, "waived", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn, Exceptions: []v1alpha1.Exception{
			{Namespaces: []string{"lab"}, Reason: "WAIVER-1", Expires: mtp("2018-01-01T00:00:00Z")},
			{Images: []string{"reg.example/team/*"}, Reason: "WAIVER-2"},
		}}),
		compile(f, "audit", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit}),
	}
	f.Fuzz(func(t *testing.T, supplier, namespace, image string, unix int64, failing bool, pick uint8) {
		ct := Container{Kind: "container", Name: "c", Image: image, Digest: "", Inventories: []match.Inventory{{Packages: []match.Package{
			{Name: "p", Fields: []match.Field{{Name: "dpkg Maintainer", Value: supplier}}},
		}}}}
		if failing {
			ct.Err = errors.New("boom")
		}
		ps := policies[:1+int(pick)%len(policies)]
		d := Decide(Input{Policies: ps, Namespace: namespace, Containers: []Container{ct, ct}, Now: time.Unix(unix, 0)})
		if len(d.Policies) != len(ps) {
			t.Fatalf("%d policy decisions for %d policies", len(d.Policies), len(ps))
		}
		strongest := Allow
		for i, p := range d.Policies {
			part := Allow
			if failing && (len(p.Kept) > 0 || len(p.Excepted) > 0 || len(p.ScanErrors) != 2) {
				t.Fatalf("%s: a failed scan yielded findings or lost an error: %+v", p.Policy, p)
			}
			for _, se := range p.ScanErrors {
				want := Warn
				if ps[i].Spec.OnScanError == v1alpha1.ScanErrorDeny {
					want = Deny
				}
				if se.Outcome != want {
					t.Fatalf("%s: scan error outcome %s, want %s", p.Policy, se.Outcome, want)
				}
				part = max(part, se.Outcome)
			}
			for _, k := range p.Kept {
				if k.Exception != nil || k.Outcome != outcomeOf(p.Action) {
					t.Fatalf("%s: kept finding %+v under %s", p.Policy, k, p.Action)
				}
				part = max(part, k.Outcome)
			}
			for _, e := range p.Excepted {
				if e.Exception == nil || e.Outcome != Allow {
					t.Fatalf("%s: excepted finding without exception: %+v", p.Policy, e)
				}
			}
			if len(p.Kept) > 0 && len(p.Excepted) > 0 {
				t.Fatalf("%s: same image both kept and excepted", p.Policy)
			}
			if p.Outcome != part {
				t.Fatalf("%s: outcome %s, parts say %s", p.Policy, p.Outcome, part)
			}
			strongest = max(strongest, part)
		}
		if d.Outcome != strongest {
			t.Fatalf("outcome %s, policies say %s", d.Outcome, strongest)
		}
	})
}
