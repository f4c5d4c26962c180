package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

// Outcomes of the parity table, in internal/decision's terms.
const (
	allow     = "Allow"
	audit     = "Audit"
	warn      = "Warn"
	deny      = "Deny"
	scanAllow = "ScanError/Allow"
	scanDeny  = "ScanError/Deny"
)

// What each adapter shows of an outcome: admission cannot tell Audit from Allow (both admit
// silently), and the CLI and the audit report a scan error as such, whatever onScanError says.
func webhookSees(o string) string {
	switch o {
	case audit:
		return allow
	case scanAllow:
		return warn
	case scanDeny:
		return deny
	}
	return o
}

func cliSees(o string) string {
	if o == scanAllow || o == scanDeny {
		return "Error"
	}
	return o
}

func auditSees(o string) string {
	if o == scanAllow || o == scanDeny {
		return "Unchecked"
	}
	return o
}

var outcomeRank = map[string]int{allow: 0, audit: 1, warn: 2, deny: 3}

// TestParity runs one table of policies and images through the three adapters of
// internal/decision — `embargo scan -o json`, the admission webhook, and VendorPolicy status
// after an audit — and asserts each shows the same outcome.
func TestParity(t *testing.T) {
	dumpOnFailure(t)
	now := time.Now().UTC().Truncate(time.Second)
	kesl := cluster.Images.Kaspersky
	missing := kesl[:strings.LastIndex(kesl, "/")] + "/parity-missing:1"
	glob := kesl[:strings.LastIndex(kesl, "/")] + "/*"
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
	exp := func(d time.Duration) *metav1.Time { t := at(d); return &t }
	day := 24 * time.Hour

	cases := map[string]struct {
		image    string
		policies []v1alpha1.VendorPolicySpec
		want     string
	}{
		"rollout before the Deny step": {kesl, []v1alpha1.VendorPolicySpec{{Action: v1alpha1.ActionWarn,
			Rollout: []v1alpha1.RolloutStep{{Action: v1alpha1.ActionDeny, From: at(30 * day)}}}}, warn},
		"rollout after the Deny step": {kesl, []v1alpha1.VendorPolicySpec{{Action: v1alpha1.ActionAudit,
			Rollout: []v1alpha1.RolloutStep{{Action: v1alpha1.ActionWarn, From: at(-30 * day)}, {Action: v1alpha1.ActionDeny, From: at(-time.Hour)}}}}, deny},
		"namespace exception before expiry": {kesl, []v1alpha1.VendorPolicySpec{{Exceptions: []v1alpha1.Exception{
			{Namespaces: []string{"{ns}"}, Reason: "W-1", Expires: exp(day)}}}}, allow},
		"namespace exception after expiry": {kesl, []v1alpha1.VendorPolicySpec{{Exceptions: []v1alpha1.Exception{
			{Namespaces: []string{"{ns}"}, Reason: "W-1", Expires: exp(-time.Hour)}}}}, deny},
		"image-glob exception": {kesl, []v1alpha1.VendorPolicySpec{{Exceptions: []v1alpha1.Exception{
			{Images: []string{glob}, Reason: "W-2"}}}}, allow},
		"scan error under onScanError Allow": {missing, []v1alpha1.VendorPolicySpec{{OnScanError: v1alpha1.ScanErrorAllow}}, scanAllow},
		"scan error under onScanError Deny":  {missing, []v1alpha1.VendorPolicySpec{{OnScanError: v1alpha1.ScanErrorDeny}}, scanDeny},
		"Warn":                               {kesl, []v1alpha1.VendorPolicySpec{{Action: v1alpha1.ActionWarn}}, warn},
		"Audit":                              {kesl, []v1alpha1.VendorPolicySpec{{Action: v1alpha1.ActionAudit}}, audit},
		"two policies select one pod":        {kesl, []v1alpha1.VendorPolicySpec{{Action: v1alpha1.ActionAudit}, {Action: v1alpha1.ActionDeny}}, deny},
	}

	type prepared struct {
		ns       string
		names    []string
		files    []string
		image    string
		want     string
		manifest string
	}
	dir := t.TempDir()
	var all []*prepared
	byName := map[string]*prepared{}
	i := 0
	for name, tc := range cases {
		i++
		label := fmt.Sprintf("parity-%d", i)
		p := &prepared{ns: newNamespace(t, "parity", label), image: tc.image, want: tc.want}
		// the workload runs before its policies exist: admission lets it in, the audit judges it
		mustKubectl(t, devcluster.Deployment(p.ns, "app", "app", tc.image), "apply", "-f", "-")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := cluster.SimulateRollout(ctx, p.ns, "app"); err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		for j, spec := range tc.policies {
			spec = *spec.DeepCopy()
			spec.Vendors = []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}
			spec.Match.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{devcluster.PolicyLabel: label}}
			for k := range spec.Exceptions {
				for n, e := range spec.Exceptions[k].Namespaces {
					spec.Exceptions[k].Namespaces[n] = strings.ReplaceAll(e, "{ns}", p.ns)
				}
			}
			vp := v1alpha1.VendorPolicy{
				TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VendorPolicy"},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", label, j)},
				Spec:       spec,
			}
			raw, err := json.Marshal(map[string]any{"apiVersion": vp.APIVersion, "kind": vp.Kind, "metadata": map[string]any{"name": vp.Name}, "spec": vp.Spec})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, vp.Name+".json")
			if err := os.WriteFile(file, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			p.names, p.files = append(p.names, vp.Name), append(p.files, file)
			p.manifest += string(raw) + "\n---\n"
		}
		all = append(all, p)
		byName[name] = p
	}
	t.Cleanup(func() {
		for _, p := range all {
			for _, n := range p.names {
				kubectl(t, "", "delete", "vendorpolicy", n, "--ignore-not-found")
			}
		}
	})
	for _, p := range all {
		mustKubectl(t, p.manifest, "apply", "-f", "-")
		for _, n := range p.names {
			mustKubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "vendorpolicy/"+n)
		}
	}

	for name, p := range byName {
		t.Run(name, func(t *testing.T) {
			// CLI
			args := []string{"scan", "--insecure", "--namespace", p.ns, "-o", "json"}
			for _, f := range p.files {
				args = append(args, "--policy", f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			r := devcluster.Run(ctx, root, append(os.Environ(), "HOME="+t.TempDir()), "", filepath.Join(binDir, "embargo"), append(args, p.image)...)
			cancel()
			var rep jsonReport
			if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || len(rep.Results) != 1 {
				t.Fatalf("embargo scan: %v: %s", err, r)
			}
			cli := allow
			if rep.Results[0].Error != "" {
				cli = "Error"
			} else {
				for _, f := range rep.Results[0].Findings {
					if !f.Excepted && outcomeRank[f.Action] > outcomeRank[cli] {
						cli = f.Action
					}
				}
			}
			wantCode := map[string]int{deny: 1, "Error": 2}[cli]
			if cli != cliSees(p.want) || r.ExitCode != wantCode {
				t.Errorf("CLI: outcome %s exit %d, want %s exit %d\n%s", cli, r.ExitCode, cliSees(p.want), wantCode, r.Stdout)
			}

			// admission: a new workload with the same image
			probe := devcluster.Deployment(p.ns, "probe", "app", p.image)
			var seen string
			eventually(t, 30*time.Second, func() error {
				r := kubectl(t, probe, "apply", "--dry-run=server", "-f", "-")
				switch {
				case r.ExitCode != 0:
					seen = deny
				case strings.Contains(r.Stderr, "Warning:"):
					seen = warn
				default:
					seen = allow
				}
				if seen != webhookSees(p.want) {
					return fmt.Errorf("admission: outcome %s, want %s: %s", seen, webhookSees(p.want), r)
				}
				return nil
			})

			// audit: VendorPolicy status on the API server
			eventually(t, 60*time.Second, func() error {
				got := allow
				for _, n := range p.names {
					var vp v1alpha1.VendorPolicy
					if err := json.Unmarshal([]byte(mustKubectl(t, "", "get", "vendorpolicy", n, "-o", "json")), &vp); err != nil {
						return err
					}
					st := vp.Status
					switch {
					case st.ObservedGeneration != vp.Generation:
						return fmt.Errorf("%s not audited yet", n)
					case st.TotalViolations > 0 && outcomeRank[string(st.Action)] > outcomeRank[got]:
						got = string(st.Action)
					case st.TotalViolations == 0 && st.UncheckedImages > 0:
						got = "Unchecked"
					}
					if p.want == allow && st.TotalViolations == 0 && (len(st.Violations) == 0 || !st.Violations[0].Excepted) {
						return fmt.Errorf("%s: the excepted violation is not listed: %+v", n, st)
					}
				}
				if got != auditSees(p.want) {
					return fmt.Errorf("audit: outcome %s, want %s", got, auditSees(p.want))
				}
				return nil
			})
		})
	}
}
