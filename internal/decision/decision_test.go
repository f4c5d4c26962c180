package decision

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mtp(s string) *metav1.Time {
	t := metav1.NewTime(date(s))
	return &t
}

// acme is a custom vendor found by its dpkg Maintainer.
var acme = v1alpha1.VendorSelector{Name: "Acme Corp", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Acme Corp"}}, Basis: []string{"Acme ban 2025: no Acme software", "second line"}}

// bod1701 is DHS BOD 17-01's timeline.
var bod1701 = []v1alpha1.RolloutStep{
	{Action: v1alpha1.ActionAudit, From: metav1.NewTime(date("2017-09-13T00:00:00Z"))},
	{Action: v1alpha1.ActionWarn, From: metav1.NewTime(date("2017-10-13T00:00:00Z"))},
	{Action: v1alpha1.ActionDeny, From: metav1.NewTime(date("2017-12-12T00:00:00Z"))},
}

func compile(t testing.TB, name string, spec v1alpha1.VendorPolicySpec) *policy.Compiled {
	t.Helper()
	if spec.Vendors == nil {
		spec.Vendors = []v1alpha1.VendorSelector{acme}
	}
	c, err := policy.Compile(&v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func acmeInv(pkg string) []match.Inventory {
	return []match.Inventory{{Platform: "linux/amd64", Packages: []match.Package{
		{Name: pkg, Version: "1.0", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Acme Corp <a@acme.example>"}}, Layer: "sha256:aaaa"},
		{Name: "bash", Version: "5.2", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Debian <d@debian.org>"}}},
	}}}
}

func container(name, image, digest string, invs []match.Inventory) Container {
	return Container{Kind: "container", Name: name, Image: image, Digest: digest, Inventories: invs}
}

// outcome is the part of a Decision every adapter must agree on.
type outcome struct {
	Outcome  string
	Policies map[string]policyOutcome
}

type policyOutcome struct {
	Action     v1alpha1.Action
	Next       string
	Outcome    string
	Kept       []string // container/package
	Excepted   []string // container/package: reason
	ScanErrors []string // container: reason (detail) -> outcome
	Unusable   []string // container: attached SBOM message
}

func summarize(d Decision) outcome {
	o := outcome{Outcome: d.Outcome.String(), Policies: map[string]policyOutcome{}}
	for _, p := range d.Policies {
		po := policyOutcome{Action: p.Action, Outcome: p.Outcome.String()}
		if p.Next != nil {
			po.Next = fmt.Sprintf("%s@%s", p.Next.Action, p.Next.From.Format(time.DateOnly))
		}
		for _, f := range p.Kept {
			po.Kept = append(po.Kept, f.Container.Name+"/"+f.Package.Name)
		}
		for _, f := range p.Excepted {
			po.Excepted = append(po.Excepted, f.Container.Name+"/"+f.Package.Name+": "+f.Exception.Reason)
		}
		for _, se := range p.ScanErrors {
			po.ScanErrors = append(po.ScanErrors, se.Container.Name+": "+se.Reason+" ("+se.Detail+") -> "+se.Outcome.String())
		}
		for _, u := range p.Unusable {
			po.Unusable = append(po.Unusable, u.Container.Name+": "+u.Message)
		}
		o.Policies[p.Policy] = po
	}
	return o
}

func TestDecide(t *testing.T) {
	notFound := &registry.Error{Kind: registry.KindNotFound, Ref: "reg/gone:1", Err: errors.New("MANIFEST_UNKNOWN")}
	rollout := compile(t, "rollout", v1alpha1.VendorPolicySpec{Rollout: bod1701})
	excepted := compile(t, "waived", v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{
		{Namespaces: []string{"lab"}, Reason: "WAIVER-1", Expires: mtp("2018-01-01T00:00:00Z")},
		{Images: []string{"reg.example/team/*"}, Reason: "WAIVER-2"},
	}})
	failOpen := compile(t, "open", v1alpha1.VendorPolicySpec{})
	failClosed := compile(t, "closed", v1alpha1.VendorPolicySpec{OnScanError: v1alpha1.ScanErrorDeny})
	warn := compile(t, "warn", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn})
	audit := compile(t, "audit", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})

	app := container("app", "reg.example/app:1", "sha256:1111", acmeInv("acme-agent"))
	team := container("app", "reg.example/team/app:1", "sha256:2222", acmeInv("acme-agent"))
	pinned := container("app", "reg.example/other:1", "sha256:2222", acmeInv("acme-agent"))
	pinned.Forms = []string{"reg.example/team/app@sha256:2222"}
	clean := container("side", "reg.example/clean:1", "sha256:3333", []match.Inventory{{Packages: []match.Package{{Name: "bash"}}}})
	gone := Container{Kind: "init container", Name: "init", Image: "reg/gone:1", Err: fmt.Errorf("resolving: %w", notFound)}
	pending := Container{Kind: "container", Name: "late", Image: "reg/late:1", Digest: "sha256:4444", Err: ErrNotScanned}
	// scanned clean; one attached SBOM declares acme-agent, another could not be read
	declared := container("app", "reg.example/declared:1", "sha256:5555", []match.Inventory{
		{Platform: "linux/amd64", Packages: []match.Package{{Name: "bash"}}},
		{Platform: "linux/amd64", Source: &match.Source{Kind: match.SourceReferrer, Digest: "sha256:0123456789abcdef", Format: "spdx-json"},
			Packages: acmeInv("acme-agent")[0].Packages[:1]},
		{Platform: "linux/amd64", Source: &match.Source{Kind: match.SourceReferrer, Digest: "sha256:fedcba9876543210", Error: "too large: 42 bytes"}},
	})
	ignore := compile(t, "ignore", v1alpha1.VendorPolicySpec{SBOM: v1alpha1.SBOMSpec{Attached: v1alpha1.AttachedSBOMIgnore}})
	unusable := "app: attached SBOM sha256:fedcba987654 (oci-referrer) of linux/amd64 unusable: too large: 42 bytes"

	cases := map[string]struct {
		policies   []*policy.Compiled
		namespace  string
		containers []Container
		at         time.Time
		want       outcome
	}{
		"no policy": {
			containers: []Container{app}, at: date("2018-01-01T00:00:00Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{}},
		},
		"clean image": {
			policies: []*policy.Compiled{failOpen}, containers: []Container{clean}, at: date("2018-01-01T00:00:00Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{"open": {Action: v1alpha1.ActionDeny, Outcome: "Allow"}}},
		},
		"rollout a nanosecond before the Deny step": {
			policies: []*policy.Compiled{rollout}, containers: []Container{app}, at: date("2017-12-12T00:00:00Z").Add(-1),
			want: outcome{Outcome: "Warn", Policies: map[string]policyOutcome{"rollout": {
				Action: v1alpha1.ActionWarn, Next: "Deny@2017-12-12", Outcome: "Warn", Kept: []string{"app/acme-agent"}}}},
		},
		"rollout at the Deny step": {
			policies: []*policy.Compiled{rollout}, containers: []Container{app}, at: date("2017-12-12T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{"rollout": {
				Action: v1alpha1.ActionDeny, Outcome: "Deny", Kept: []string{"app/acme-agent"}}}},
		},
		"rollout in the Audit step": {
			policies: []*policy.Compiled{rollout}, containers: []Container{app}, at: date("2017-09-20T00:00:00Z"),
			want: outcome{Outcome: "Audit", Policies: map[string]policyOutcome{"rollout": {
				Action: v1alpha1.ActionAudit, Next: "Warn@2017-10-13", Outcome: "Audit", Kept: []string{"app/acme-agent"}}}},
		},
		"namespace exception before expiry": {
			policies: []*policy.Compiled{excepted}, namespace: "lab", containers: []Container{app}, at: date("2017-12-31T23:59:59Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{"waived": {
				Action: v1alpha1.ActionDeny, Outcome: "Allow", Excepted: []string{"app/acme-agent: WAIVER-1"}}}},
		},
		"namespace exception at expiry": {
			policies: []*policy.Compiled{excepted}, namespace: "lab", containers: []Container{app}, at: date("2018-01-01T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{"waived": {
				Action: v1alpha1.ActionDeny, Outcome: "Deny", Kept: []string{"app/acme-agent"}}}},
		},
		"namespace exception in another namespace": {
			policies: []*policy.Compiled{excepted}, namespace: "shop", containers: []Container{app}, at: date("2017-06-01T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{"waived": {
				Action: v1alpha1.ActionDeny, Outcome: "Deny", Kept: []string{"app/acme-agent"}}}},
		},
		"image-glob exception by the image as written": {
			policies: []*policy.Compiled{excepted}, namespace: "shop", containers: []Container{team}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{"waived": {
				Action: v1alpha1.ActionDeny, Outcome: "Allow", Excepted: []string{"app/acme-agent: WAIVER-2"}}}},
		},
		"image-glob exception by another form of the image": {
			policies: []*policy.Compiled{excepted}, namespace: "shop", containers: []Container{pinned}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{"waived": {
				Action: v1alpha1.ActionDeny, Outcome: "Allow", Excepted: []string{"app/acme-agent: WAIVER-2"}}}},
		},
		"scan error under onScanError Allow": {
			policies: []*policy.Compiled{failOpen}, containers: []Container{gone, clean}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Warn", Policies: map[string]policyOutcome{"open": {
				Action: v1alpha1.ActionDeny, Outcome: "Warn", ScanErrors: []string{"init: NotFound (resolving: MANIFEST_UNKNOWN) -> Warn"}}}},
		},
		"scan error under onScanError Deny": {
			policies: []*policy.Compiled{failClosed}, containers: []Container{gone, clean}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{"closed": {
				Action: v1alpha1.ActionDeny, Outcome: "Deny", ScanErrors: []string{"init: NotFound (resolving: MANIFEST_UNKNOWN) -> Deny"}}}},
		},
		"not scanned yet": {
			policies: []*policy.Compiled{failOpen}, containers: []Container{pending}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Warn", Policies: map[string]policyOutcome{"open": {
				Action: v1alpha1.ActionDeny, Outcome: "Warn", ScanErrors: []string{"late: NotScanned (not scanned yet) -> Warn"}}}},
		},
		"Warn": {
			policies: []*policy.Compiled{warn}, containers: []Container{app, clean}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Warn", Policies: map[string]policyOutcome{"warn": {
				Action: v1alpha1.ActionWarn, Outcome: "Warn", Kept: []string{"app/acme-agent"}}}},
		},
		"Audit": {
			policies: []*policy.Compiled{audit}, containers: []Container{app}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Audit", Policies: map[string]policyOutcome{"audit": {
				Action: v1alpha1.ActionAudit, Outcome: "Audit", Kept: []string{"app/acme-agent"}}}},
		},
		"attached SBOM declares the package; another is unusable": {
			policies: []*policy.Compiled{failOpen}, containers: []Container{declared}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{"open": {
				Action: v1alpha1.ActionDeny, Outcome: "Deny", Kept: []string{"app/acme-agent"}, Unusable: []string{unusable}}}},
		},
		"attached SBOMs ignored: neither the package nor the unusable document counts": {
			policies: []*policy.Compiled{ignore}, containers: []Container{declared}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Allow", Policies: map[string]policyOutcome{"ignore": {Action: v1alpha1.ActionDeny, Outcome: "Allow"}}},
		},
		"two policies select one pod: the strongest wins": {
			policies: []*policy.Compiled{warn, audit, excepted}, namespace: "lab", containers: []Container{app, clean}, at: date("2030-01-01T00:00:00Z"),
			want: outcome{Outcome: "Deny", Policies: map[string]policyOutcome{
				"warn":   {Action: v1alpha1.ActionWarn, Outcome: "Warn", Kept: []string{"app/acme-agent"}},
				"audit":  {Action: v1alpha1.ActionAudit, Outcome: "Audit", Kept: []string{"app/acme-agent"}},
				"waived": {Action: v1alpha1.ActionDeny, Outcome: "Deny", Kept: []string{"app/acme-agent"}},
			}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := Decide(Input{Policies: tc.policies, Namespace: tc.namespace, Containers: tc.containers, Now: tc.at})
			if diff := cmp.Diff(tc.want, summarize(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideDetails(t *testing.T) {
	entry, ok := catalog.Default().Get("kaspersky")
	if !ok {
		t.Fatal("no kaspersky entry")
	}
	c := compile(t, "bod-17-01", v1alpha1.VendorPolicySpec{
		Vendors:    []v1alpha1.VendorSelector{{Catalog: "kaspersky"}, acme, {Name: "Nobasis Ltd", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Nobasis Ltd"}}}},
		Rollout:    bod1701,
		Exceptions: []v1alpha1.Exception{{Namespaces: []string{"lab"}, Reason: "WAIVER-2", Expires: mtp("2018-01-01T00:00:00Z")}},
	})
	inv := []match.Inventory{{Packages: []match.Package{
		{Name: "kesl", Version: "12", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "AO Kaspersky Lab"}}},
		{Name: "acme-agent", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Acme Corp"}}},
		{Name: "nb", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Nobasis Ltd"}}},
	}}}
	ct := container("app", "reg.example/app:1", "sha256:1111", inv)
	at := date("2017-12-20T00:00:00Z")

	d := Decide(Input{Policies: []*policy.Compiled{c}, Namespace: "default", Containers: []Container{ct}, Now: at})
	p := d.Policies[0]
	if p.Since == nil || !p.Since.Equal(date("2017-12-12T00:00:00Z")) || p.Next != nil {
		t.Errorf("since %v next %v, want since 2017-12-12 and no next step", p.Since, p.Next)
	}
	basis := map[string][]string{}
	for _, f := range p.Kept {
		basis[f.Vendor] = f.Basis
		if f.Outcome != Deny || f.Exception != nil || f.Container.Image != "reg.example/app:1" {
			t.Errorf("finding %s: outcome %s exception %v container %q", f.Package.Name, f.Outcome, f.Exception, f.Container.Image)
		}
	}
	want := map[string][]string{entry.Vendor: entry.Basis, "Acme Corp": acme.Basis, "Nobasis Ltd": nil}
	if diff := cmp.Diff(want, basis); diff != "" {
		t.Errorf("basis per vendor (-want +got):\n%s", diff)
	}
	if d.StrongestAction() != v1alpha1.ActionDeny || len(d.Denying()) != 1 || len(d.Kept()) != 3 {
		t.Errorf("strongest %s, denying %d, kept %d", d.StrongestAction(), len(d.Denying()), len(d.Kept()))
	}

	lab := Decide(Input{Policies: []*policy.Compiled{c}, Namespace: "lab", Containers: []Container{ct}, Now: at})
	if ex := lab.Policies[0].Excepted; len(ex) != 3 || ex[0].Exception.Reason != "WAIVER-2" || ex[0].Outcome != Allow || len(ex[0].Basis) == 0 {
		t.Errorf("excepted in lab: %+v", ex)
	}
}

func TestByContainer(t *testing.T) {
	a, b := &Container{Name: "a"}, &Container{Name: "b"}
	fs := []Finding{{Container: a}, {Container: a}, {Container: b}}
	got := ByContainer(fs)
	if len(got) != 2 || len(got[0]) != 2 || got[1][0].Container != b {
		t.Errorf("ByContainer = %v", got)
	}
	if ByContainer(nil) != nil {
		t.Error("ByContainer(nil) is not nil")
	}
}
