package devcluster

import (
	"fmt"
	"strings"
	"time"
)

// PolicyLabel selects the namespaces of the BOD 17-01 policies below: a namespace labelled
// embargo.dev/bod-17-01=deny is under PolicyDeny, and so on.
const PolicyLabel = "embargo.dev/bod-17-01"

// Names of the shared policies.
const (
	PolicyDenyName    = "bod-17-01-deny"
	PolicyWarnName    = "bod-17-01-warn"
	PolicyAuditName   = "bod-17-01-audit"
	PolicyRolloutName = "bod-17-01-rollout"
)

// BOD 17-01-style VendorPolicies over the built-in kaspersky catalog entry, one per action,
// each selecting the namespaces labelled PolicyLabel=<deny|warn|audit>. The e2e tests and the
// demo apply exactly these.
var (
	PolicyDeny  = policy(PolicyDenyName, "Deny", "deny", "Production: Kaspersky software is removed; new deployments are rejected.")
	PolicyWarn  = policy(PolicyWarnName, "Warn", "warn", "Staging: admitted with a warning to the deployer.")
	PolicyAudit = policy(PolicyAuditName, "Audit", "audit", "Legacy: admitted silently; the audit reports what runs.")
)

func policy(name, action, selector, comment string) string {
	return fmt.Sprintf(`# %s
apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: %s
spec:
  vendors:
  - catalog: kaspersky
  action: %s
  onScanError: Allow
  match:
    namespaceSelector:
      matchLabels:
        %s: %s
`, comment, name, action, PolicyLabel, selector)
}

// RolloutPolicy is BOD 17-01's timeline started at issued: Audit from the start, Warn from
// day 30 (agencies identify Kaspersky products), Deny from day 90 (removal begins). It selects
// namespaces labelled PolicyLabel=rollout.
func RolloutPolicy(issued time.Time) string {
	day := func(n int) string { return issued.UTC().AddDate(0, 0, n).Format(time.RFC3339) }
	return fmt.Sprintf(`# BOD 17-01 timeline: identify in 30 days, plan in 60, begin removal in 90.
apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: %s
spec:
  vendors:
  - catalog: kaspersky
  action: Audit
  rollout:
  - action: Audit
    from: "%s"
  - action: Warn
    from: "%s"
  - action: Deny
    from: "%s"
  match:
    namespaceSelector:
      matchLabels:
        %s: rollout
`, PolicyRolloutName, day(0), day(30), day(90), PolicyLabel)
}

// Namespace is a Namespace under the policy selected by value (deny, warn, audit, rollout), or
// under none when value is empty.
func Namespace(name, value string) string {
	if value == "" {
		return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    %s: %s
`, name, PolicyLabel, value)
}

// Deployment is a one-replica Deployment running image in a container named container.
func Deployment(namespace, name, container, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %[2]s
  template:
    metadata:
      labels:
        app: %[2]s
    spec:
      containers:
      - name: %[3]s
        image: %[4]s
`, namespace, name, container, image)
}

// Join joins manifests into one multi-document stream.
func Join(docs ...string) string {
	trimmed := make([]string, len(docs))
	for i, d := range docs {
		trimmed[i] = strings.TrimRight(d, "\n")
	}
	return strings.Join(trimmed, "\n---\n") + "\n"
}
