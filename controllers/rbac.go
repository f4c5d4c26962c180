// Package controllers holds Embargo's audit reconcilers: PodScanner makes sure every digest that
// runs in the cluster has been scanned once, and PolicyAuditor joins those scans with the
// VendorPolicies into policy status, events and metrics; PolicyReporter mirrors the auditor's
// results into wgpolicyk8s.io PolicyReports where that CRD is installed. They are thin: the work
// is in internal/scan and internal/policy, the same path the admission webhook takes.
package controllers

// What the audit reads and writes, cluster-wide: pods and the workloads that own them (metadata
// informers), policies and scans, events on offending workloads in any namespace. Service
// accounts and Secrets are read one by one for pull credentials, never listed or watched.
// PolicyReports (wgpolicyk8s.io) are written per namespace when their CRD is installed.
// Leader election's Lease and the certificate rotator's rights are namespaced, next to the
// webhook's markers in webhook/handler.go.
//
// +kubebuilder:rbac:groups="",resources=pods;namespaces;replicationcontrollers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts;secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets;deployments;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=embargo.dev,resources=vendorpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=embargo.dev,resources=vendorpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=embargo.dev,resources=imagescans,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=embargo.dev,resources=imagescans/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=wgpolicyk8s.io,resources=policyreports,verbs=get;list;watch;create;update;patch;delete
