package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mt(s string) metav1.Time { return metav1.NewTime(date(s)) }

func mtp(s string) *metav1.Time {
	t := mt(s)
	return &t
}

func vp(spec v1alpha1.VendorPolicySpec) *v1alpha1.VendorPolicy {
	return &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bod-17-01", Generation: 3}, Spec: spec}
}

var kaspersky = v1alpha1.VendorSelector{Catalog: "kaspersky"}

func compile(t *testing.T, spec v1alpha1.VendorPolicySpec) *Compiled {
	t.Helper()
	c, err := Compile(vp(spec), catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileErrors(t *testing.T) {
	acme := &v1alpha1.VendorRules{Suppliers: []string{"Acme Corp"}}
	cases := map[string]struct {
		spec    v1alpha1.VendorPolicySpec
		want    []string // substrings of the error
		wantIDs bool     // the error lists every catalog id
	}{
		"no vendors": {
			want: []string{"spec.vendors is empty"},
		},
		"unknown catalog id": {
			spec:    v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky, {Catalog: "kaspersy"}}},
			want:    []string{"spec.vendors[1].catalog", `"kaspersy"`, "is not a built-in entry"},
			wantIDs: true,
		},
		"both catalog and rules": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky", Name: "Acme", Rules: acme}}},
			want: []string{"spec.vendors[0]", "either catalog or rules, not both"},
		},
		"neither catalog nor rules": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky, {Name: "Acme"}}},
			want: []string{"spec.vendors[1]", "set catalog", "or rules"},
		},
		"custom rules with a bad regex": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky, {Name: "Acme", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Acme (Corp"}}}}},
			want: []string{"spec.vendors[1].rules: suppliers[0]", `"Acme (Corp"`, "not a valid regular expression"},
		},
		"custom rules without a name": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Rules: acme}}},
			want: []string{"spec.vendors[0].rules: vendor name is empty"},
		},
		"custom rules with a relative path": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Name: "Acme", Rules: &v1alpha1.VendorRules{Paths: []string{"opt/acme/**"}}}}},
			want: []string{"spec.vendors[0].rules: paths[0]", "must be absolute"},
		},
		"bad action": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Action: "Block"},
			want: []string{"spec.action", `"Block"`, "not one of Deny, Warn, Audit"},
		},
		"bad rollout action": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Rollout: []v1alpha1.RolloutStep{
				{Action: v1alpha1.ActionAudit, From: mt("2017-09-13T00:00:00Z")},
				{Action: "deny", From: mt("2017-12-12T00:00:00Z")},
			}},
			want: []string{"spec.rollout[1].action", `"deny"`},
		},
		"rollout step without from": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Rollout: []v1alpha1.RolloutStep{
				{Action: v1alpha1.ActionAudit, From: mt("2017-09-13T00:00:00Z")},
				{Action: v1alpha1.ActionDeny},
			}},
			want: []string{"spec.rollout[1].from is missing"},
		},
		"exception without images or namespaces": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Exceptions: []v1alpha1.Exception{
				{Namespaces: []string{"lab"}, Reason: "WAIVER-1"},
				{Reason: "WAIVER-2"},
			}},
			want: []string{"spec.exceptions[1]", "give images or namespaces"},
		},
		"exception without reason": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Exceptions: []v1alpha1.Exception{
				{Images: []string{"registry.example.com/team/*"}, Reason: " \t"},
			}},
			want: []string{"spec.exceptions[0].reason is empty"},
		},
		"bad namespace selector operator": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Match: v1alpha1.MatchSpec{
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus", Values: []string{"prod"}}}},
			}},
			want: []string{"spec.match.namespaceSelector", "Bogus"},
		},
		"bad object selector key": {
			spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Match: v1alpha1.MatchSpec{
				ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}},
			}},
			want: []string{"spec.match.objectSelector", "bad key!"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Compile(vp(tc.spec), catalog.Default())
			if err == nil {
				t.Fatalf("Compile succeeded (%+v), want an error", c)
			}
			want := tc.want
			if tc.wantIDs {
				ids := catalog.Default().IDs()
				if len(ids) < 2 {
					t.Fatalf("catalog ids %q", ids)
				}
				want = append(slices.Clone(want), strings.Join(ids, ", "))
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompile(t *testing.T) {
	p := vp(v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{
		kaspersky,
		{Name: "Acme Corp", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Acme Corp"}}, Basis: []string{"Acme ban"}},
	}})
	c, err := Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "bod-17-01" || c.Generation != 3 {
		t.Errorf("Name %q Generation %d", c.Name, c.Generation)
	}
	if c.Spec.Action != v1alpha1.ActionDeny || c.Spec.OnScanError != v1alpha1.ScanErrorAllow {
		t.Errorf("defaults: action %q onScanError %q, want Deny and Allow", c.Spec.Action, c.Spec.OnScanError)
	}
	if p.Spec.Action != "" || p.Spec.OnScanError != "" {
		t.Errorf("Compile defaulted the policy it was given: %+v", p.Spec)
	}
	var got []string
	for _, v := range c.Vendors {
		got = append(got, v.Catalog+"|"+v.Name)
	}
	if diff := cmp.Diff([]string{"kaspersky|AO Kaspersky Lab", "|Acme Corp"}, got); diff != "" {
		t.Errorf("vendors (-want +got):\n%s", diff)
	}
}

// bod1701 is DHS BOD 17-01's timeline: issued 2017-09-13, identify within 30 days, begin
// removal within 90.
var bod1701 = []v1alpha1.RolloutStep{
	{Action: v1alpha1.ActionAudit, From: mt("2017-09-13T00:00:00Z")},
	{Action: v1alpha1.ActionWarn, From: mt("2017-10-13T00:00:00Z")},
	{Action: v1alpha1.ActionDeny, From: mt("2017-12-12T00:00:00Z")},
}

func TestActionAt(t *testing.T) {
	warn := &Step{Action: v1alpha1.ActionWarn, From: date("2017-10-13T00:00:00Z")}
	deny := &Step{Action: v1alpha1.ActionDeny, From: date("2017-12-12T00:00:00Z")}
	audit := &Step{Action: v1alpha1.ActionAudit, From: date("2017-09-13T00:00:00Z")}
	cases := map[string]struct {
		at       time.Time
		want     v1alpha1.Action
		wantNext *Step
	}{
		"before the directive":         {date("2017-01-01T00:00:00Z"), v1alpha1.ActionWarn, audit},
		"a nanosecond before issue":    {date("2017-09-13T00:00:00Z").Add(-1), v1alpha1.ActionWarn, audit},
		"exactly at issue":             {date("2017-09-13T00:00:00Z"), v1alpha1.ActionAudit, warn},
		"identification period":        {date("2017-09-20T12:00:00Z"), v1alpha1.ActionAudit, warn},
		"exactly at day 30":            {date("2017-10-13T00:00:00Z"), v1alpha1.ActionWarn, deny},
		"day 30 in another zone":       {date("2017-10-13T02:00:00+02:00"), v1alpha1.ActionWarn, deny},
		"a nanosecond before day 90":   {date("2017-12-12T00:00:00Z").Add(-1), v1alpha1.ActionWarn, deny},
		"exactly at day 90":            {date("2017-12-12T00:00:00Z"), v1alpha1.ActionDeny, nil},
		"after the rollout":            {date("2026-01-01T00:00:00Z"), v1alpha1.ActionDeny, nil},
		"a second after NDAA §1634 in": {date("2018-10-01T00:00:01Z"), v1alpha1.ActionDeny, nil},
	}
	unsorted := []v1alpha1.RolloutStep{bod1701[2], bod1701[0], bod1701[1]}
	for order, rollout := range map[string][]v1alpha1.RolloutStep{"sorted": bod1701, "unsorted": unsorted} {
		// spec.action (Warn here) applies before the first step.
		c := compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Action: v1alpha1.ActionWarn, Rollout: slices.Clone(rollout)})
		for name, tc := range cases {
			t.Run(order+"/"+name, func(t *testing.T) {
				got, next := c.ActionAt(tc.at)
				if got != tc.want {
					t.Errorf("action %q, want %q", got, tc.want)
				}
				if diff := cmp.Diff(tc.wantNext, next); diff != "" {
					t.Errorf("next step (-want +got):\n%s", diff)
				}
			})
		}
		if diff := cmp.Diff(rollout, c.Spec.Rollout); diff != "" {
			t.Errorf("%s: ActionAt reordered spec.rollout (-want +got):\n%s", order, diff)
		}
	}

	t.Run("no rollout", func(t *testing.T) {
		c := compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Action: v1alpha1.ActionAudit})
		if got, next := c.ActionAt(date("2017-12-12T00:00:00Z")); got != v1alpha1.ActionAudit || next != nil {
			t.Errorf("ActionAt = %q, %+v; want Audit, nil", got, next)
		}
	})
}

func TestSelects(t *testing.T) {
	exempt := []string{"embargo-system", "kube-system"}
	prod := map[string]string{"env": "prod"}
	scoped := v1alpha1.MatchSpec{
		ExcludedNamespaces: []string{"legacy"},
		NamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "embargo.dev/skip", Operator: metav1.LabelSelectorOpDoesNotExist},
		}},
	}
	cases := map[string]struct {
		match     v1alpha1.MatchSpec
		ns        string
		nsLabels  map[string]string
		objLabels map[string]string
		want      bool
	}{
		"no selectors":                        {ns: "default", want: true},
		"no selectors, exempt manager":        {ns: "embargo-system", want: false},
		"no selectors, exempt kube-system":    {ns: "kube-system", nsLabels: prod, want: false},
		"no selectors, excluded":              {match: v1alpha1.MatchSpec{ExcludedNamespaces: []string{"legacy"}}, ns: "legacy", want: false},
		"selected":                            {match: scoped, ns: "payments", nsLabels: prod, objLabels: map[string]string{"app": "api"}, want: true},
		"selected, nil object labels":         {match: scoped, ns: "payments", nsLabels: prod, want: true},
		"namespace labels do not match":       {match: scoped, ns: "payments", nsLabels: map[string]string{"env": "dev"}, want: false},
		"namespace without labels":            {match: scoped, ns: "payments", want: false},
		"object opted out":                    {match: scoped, ns: "payments", nsLabels: prod, objLabels: map[string]string{"embargo.dev/skip": "true"}, want: false},
		"excluded although labels match":      {match: scoped, ns: "legacy", nsLabels: prod, want: false},
		"exempt although labels match":        {match: scoped, ns: "kube-system", nsLabels: prod, want: false},
		"exempt list does not match prefixes": {match: scoped, ns: "kube-system-2", nsLabels: prod, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Match: tc.match})
			if got := c.Selects(tc.ns, tc.nsLabels, tc.objLabels, exempt); got != tc.want {
				t.Errorf("Selects(%q, %v, %v) = %v, want %v", tc.ns, tc.nsLabels, tc.objLabels, got, tc.want)
			}
		})
	}
}

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func exceptionPolicy(t *testing.T) *Compiled {
	return compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Exceptions: []v1alpha1.Exception{
		{Images: []string{"registry.example.com/team/*"}, Reason: "WAIVER-1"},
		{Namespaces: []string{"lab", "sandbox"}, Reason: "WAIVER-2", Expires: mtp("2018-01-01T00:00:00Z")},
		{Images: []string{"docker.io/library/nginx@" + digest}, Namespaces: []string{"web"}, Reason: "WAIVER-3", Expires: mtp("2017-12-01T00:00:00Z")},
		{Images: []string{"quay.io/acme/agent:1.?"}, Reason: "WAIVER-4"},
	}})
}

func TestExceptionFor(t *testing.T) {
	now := date("2017-11-01T00:00:00Z")
	cases := map[string]struct {
		ns     string
		images []string
		at     time.Time // now when zero
		want   string    // reason of the exception, "" for none
	}{
		"glob with tag":                          {ns: "default", images: []string{"registry.example.com/team/app:1.0"}, want: "WAIVER-1"},
		"glob with digest":                       {ns: "default", images: []string{"registry.example.com/team/app@" + digest}, want: "WAIVER-1"},
		"glob with tag and digest":               {ns: "default", images: []string{"registry.example.com/team/app:1.0@" + digest}, want: "WAIVER-1"},
		"glob over a nested repository":          {ns: "default", images: []string{"registry.example.com/team/sub/app:1.0"}, want: "WAIVER-1"},
		"glob look-alike repository":             {ns: "default", images: []string{"registry.example.com/team2/app:1.0"}},
		"glob look-alike registry":               {ns: "default", images: []string{"registry.example.com.evil/team/app:1.0"}},
		"glob needs something after the slash":   {ns: "default", images: []string{"registry.example.com/team"}},
		"glob with a single-character wildcard":  {ns: "default", images: []string{"quay.io/acme/agent:1.7"}, want: "WAIVER-4"},
		"single-character wildcard is one char":  {ns: "default", images: []string{"quay.io/acme/agent:1.10"}},
		"second form of the image matches":       {ns: "default", images: []string{"app:1.0", "registry.example.com/team/app@" + digest}, want: "WAIVER-1"},
		"empty image forms are ignored":          {ns: "default", images: []string{"", ""}},
		"namespace":                              {ns: "sandbox", images: []string{"docker.io/library/redis:7"}, want: "WAIVER-2"},
		"namespace without images":               {ns: "lab", want: "WAIVER-2"},
		"namespace a nanosecond before expiry":   {ns: "lab", images: []string{"redis"}, at: date("2018-01-01T00:00:00Z").Add(-1), want: "WAIVER-2"},
		"namespace exactly at expiry":            {ns: "lab", images: []string{"redis"}, at: date("2018-01-01T00:00:00Z")},
		"namespace after expiry":                 {ns: "lab", images: []string{"redis"}, at: date("2019-01-01T00:00:00Z")},
		"namespace look-alike":                   {ns: "lab-2", images: []string{"redis"}},
		"images and namespaces":                  {ns: "web", images: []string{"nginx:1.25", "docker.io/library/nginx@" + digest}, want: "WAIVER-3"},
		"images and namespaces, other namespace": {ns: "default", images: []string{"docker.io/library/nginx@" + digest}},
		"images and namespaces, other image":     {ns: "web", images: []string{"docker.io/library/nginx:1.25"}},
		"images and namespaces, expired":         {ns: "web", images: []string{"docker.io/library/nginx@" + digest}, at: date("2017-12-01T00:00:00Z")},
		"first matching exception wins":          {ns: "lab", images: []string{"registry.example.com/team/app:1.0"}, want: "WAIVER-1"},
	}
	c := exceptionPolicy(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() {
				at = now
			}
			e := c.ExceptionFor(tc.ns, tc.images, at)
			got := ""
			if e != nil {
				got = e.Reason
			}
			if got != tc.want {
				t.Errorf("ExceptionFor(%q, %q, %s) = %q, want %q", tc.ns, tc.images, at, got, tc.want)
			}
		})
	}
}

func TestNextExpiry(t *testing.T) {
	c := exceptionPolicy(t)
	cases := map[string]struct {
		at   time.Time
		want *time.Time
	}{
		"before both":                 {date("2017-11-01T00:00:00Z"), new(date("2017-12-01T00:00:00Z"))},
		"exactly at the first":        {date("2017-12-01T00:00:00Z"), new(date("2018-01-01T00:00:00Z"))},
		"between":                     {date("2017-12-15T00:00:00Z"), new(date("2018-01-01T00:00:00Z"))},
		"exactly at the last":         {date("2018-01-01T00:00:00Z"), nil},
		"after every expiry":          {date("2026-01-01T00:00:00Z"), nil},
		"a nanosecond before the 1st": {date("2017-12-01T00:00:00Z").Add(-1), new(date("2017-12-01T00:00:00Z"))},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, c.NextExpiry(tc.at)); diff != "" {
				t.Errorf("NextExpiry(%s) (-want +got):\n%s", tc.at, diff)
			}
		})
	}
	none := compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{kaspersky}, Exceptions: []v1alpha1.Exception{{Namespaces: []string{"lab"}, Reason: "forever"}}})
	if got := none.NextExpiry(date("2017-01-01T00:00:00Z")); got != nil {
		t.Errorf("NextExpiry without expiries = %s, want nil", got)
	}
}

func TestMatch(t *testing.T) {
	c := compile(t, v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{
		kaspersky,
		{Name: "Acme Corp", Rules: &v1alpha1.VendorRules{Paths: []string{"/opt/acme/**"}}},
	}})
	invs := []match.Inventory{
		{Platform: "linux/amd64", Packages: []match.Package{
			{Name: "kesl", Version: "12.1", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"}}},
			{Name: "bash", Version: "5.2", Type: "deb", Fields: []match.Field{{Name: "dpkg Maintainer", Value: "Matthias Klose <doko@debian.org>"}}},
		}},
		{Platform: "linux/arm64", Files: []match.File{{Path: "/opt/acme/bin/acme"}}},
	}
	var got []string
	for _, f := range c.Match(invs) {
		got = append(got, f.Platform+"|"+f.Catalog+"|"+f.Vendor+"|"+f.Package.String()+"|"+f.Rule())
	}
	want := []string{
		"linux/amd64|kaspersky|AO Kaspersky Lab|kesl 12.1|supplier",
		"linux/arm64||Acme Corp||path",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

const policyYAML = `---
# Policies for the federal enclave.
---
# BOD 17-01, staged.
apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: bod-17-01  # as issued
spec:
  vendors:
    - catalog: kaspersky
  action: Audit
  rollout:
    - {action: Audit, from: "2017-09-13T00:00:00Z"}
    - {action: Warn, from: "2017-10-13T00:00:00Z"}
    - {action: Deny, from: "2017-12-12T00:00:00Z"}
  exceptions:
    - images: ["registry.example.com/team/*"]
      reason: WAIVER-1
      expires: "2018-01-01T00:00:00Z"
---
# nothing but a comment
---

---
apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: acme
spec:
  vendors:
    - name: Acme Corp
      rules:
        suppliers: ["Acme Corp"]
        packages:
          - {type: deb, name: acme-agent, requires: [Supplier]}
      basis: ["Acme ban"]
  match:
    excludedNamespaces: [legacy]
`

func TestDecode(t *testing.T) {
	ps, err := Decode([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := []v1alpha1.VendorPolicySpec{
		{
			Vendors: []v1alpha1.VendorSelector{kaspersky},
			Action:  v1alpha1.ActionAudit,
			Rollout: bod1701,
			Exceptions: []v1alpha1.Exception{
				{Images: []string{"registry.example.com/team/*"}, Reason: "WAIVER-1", Expires: mtp("2018-01-01T00:00:00Z")},
			},
		},
		{
			Vendors: []v1alpha1.VendorSelector{{Name: "Acme Corp", Basis: []string{"Acme ban"}, Rules: &v1alpha1.VendorRules{
				Suppliers: []string{"Acme Corp"},
				Packages:  []v1alpha1.PackageRule{{Type: "deb", Name: "acme-agent", Requires: []v1alpha1.Corroboration{v1alpha1.CorroborationSupplier}}},
			}}},
			Match: v1alpha1.MatchSpec{ExcludedNamespaces: []string{"legacy"}},
		},
	}
	var names []string
	var specs []v1alpha1.VendorPolicySpec
	for _, p := range ps {
		names = append(names, p.Name)
		specs = append(specs, p.Spec)
		if _, err := Compile(p, catalog.Default()); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
	if diff := cmp.Diff([]string{"bod-17-01", "acme"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, specs); diff != "" {
		t.Errorf("specs (-want +got):\n%s", diff)
	}
}

func TestDecodeJSON(t *testing.T) {
	ps, err := Decode([]byte(`{"apiVersion": "embargo.dev/v1alpha1", "kind": "VendorPolicy", "metadata": {"name": "j"}, "spec": {"vendors": [{"catalog": "kaspersky"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Name != "j" || len(ps[0].Spec.Vendors) != 1 {
		t.Errorf("Decode = %+v", ps)
	}
}

func TestDecodeErrors(t *testing.T) {
	const header = "apiVersion: embargo.dev/v1alpha1\nkind: VendorPolicy\nmetadata:\n  name: p\n"
	const vendors = "spec:\n  vendors:\n    - catalog: kaspersky\n"
	cases := map[string]struct {
		in   string
		want []string // substrings of the error
	}{
		"empty":                  {in: "", want: []string{"no VendorPolicy documents found"}},
		"white space":            {in: " \n\t\n", want: []string{"no VendorPolicy documents found"}},
		"only comments":          {in: "# a\n---\n# b\n", want: []string{"no VendorPolicy documents found"}},
		"only separators":        {in: "---\n---\n", want: []string{"no VendorPolicy documents found"}},
		"separator and comments": {in: "---\n# a\n--- # b\n# c\n", want: []string{"no VendorPolicy documents found"}},
		"inline document after a separator": {
			in:   "---\n--- {apiVersion: embargo.dev/v1alpha1, kind: ImageScan}\n",
			want: []string{"document 1"},
		},
		"unknown field":     {in: header + vendors + "  acton: Deny\n", want: []string{"document 1", `unknown field "acton"`}},
		"unknown top field": {in: header + vendors + "extra: 1\n", want: []string{"document 1", `unknown field "extra"`}},
		"unknown nested field": {
			in:   header + "spec:\n  vendors:\n    - name: Acme\n      rules:\n        supplier: [Acme]\n",
			want: []string{"document 1", `unknown field "supplier"`},
		},
		"unknown field in the second document": {
			in:   header + vendors + "---\n" + header + vendors + "  exceptions:\n    - namespaces: [lab]\n      reason: r\n      expiry: 2018-01-01T00:00:00Z\n",
			want: []string{"document 2", `unknown field "expiry"`},
		},
		"wrong kind": {
			in:   "apiVersion: embargo.dev/v1alpha1\nkind: ImageScan\nmetadata:\n  name: p\n" + vendors,
			want: []string{"document 1", `kind "ImageScan"`, "want kind VendorPolicy"},
		},
		"wrong apiVersion": {
			in:   "apiVersion: embargo.dev/v1\nkind: VendorPolicy\nmetadata:\n  name: p\n" + vendors,
			want: []string{"document 1", `apiVersion "embargo.dev/v1"`, "embargo.dev/v1alpha1"},
		},
		"missing kind": {
			in:   "metadata:\n  name: p\n" + vendors,
			want: []string{"document 1", `kind ""`},
		},
		"wrong type": {
			in:   header + "spec:\n  vendors: kaspersky\n",
			want: []string{"document 1"},
		},
		"not YAML": {
			in:   header + "spec: [\n",
			want: []string{"document 1"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ps, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode = %+v, want an error", ps)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	c, err := Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Vendors) != 1 || c.Vendors[0].Catalog != "kaspersky" || c.Vendors[0].Name != "AO Kaspersky Lab" {
		t.Errorf("vendors %+v, want the kaspersky entry alone", c.Vendors)
	}
	if got, next := c.ActionAt(time.Now()); got != v1alpha1.ActionDeny || next != nil {
		t.Errorf("ActionAt(now) = %q, %+v; want Deny, nil", got, next)
	}
	if !c.Selects("default", nil, nil, []string{"kube-system"}) {
		t.Error("the default policy does not select the default namespace")
	}
	// Default is a valid policy file: it survives a YAML round trip through Decode.
	data, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode(Default()): %v\n%s", err, data)
	}
	if diff := cmp.Diff([]*v1alpha1.VendorPolicy{p}, ps); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if Default() == p {
		t.Error("Default() returns a shared policy")
	}
}

func TestStepAt(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2017, 9, 13, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	c := &Compiled{Spec: v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit, Rollout: []v1alpha1.RolloutStep{
		{Action: v1alpha1.ActionDeny, From: metav1.NewTime(day(90))},
		{Action: v1alpha1.ActionWarn, From: metav1.NewTime(day(30))},
	}}}
	cases := map[string]struct {
		at   time.Time
		want *Step
	}{
		"before any step":      {at: day(29)},
		"exactly at warn":      {at: day(30), want: &Step{Action: v1alpha1.ActionWarn, From: day(30)}},
		"between steps":        {at: day(60), want: &Step{Action: v1alpha1.ActionWarn, From: day(30)}},
		"after deny, unsorted": {at: day(400), want: &Step{Action: v1alpha1.ActionDeny, From: day(90)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, c.StepAt(tc.at)); diff != "" {
				t.Errorf("StepAt (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSamplesCompile: the policies shipped in config/samples decode and compile.
func TestSamplesCompile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range ps {
			if _, err := Compile(p, catalog.Default()); err != nil {
				t.Errorf("%s: %s: %v", f, p.Name, err)
			}
		}
	}
}
