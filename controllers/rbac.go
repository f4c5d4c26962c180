// Package controllers holds Embargo's audit reconcilers: PodScanner makes sure every digest that
// runs in the cluster has been scanned once, and PolicyAuditor joins those scans with the
// VendorPolicies into policy status, events and metrics. Both are thin: the work is in
// internal/scan and internal/policy, the same path the admission webhook takes.
package controllers

// The manager's permissions, cluster-wide and least privilege. Service accounts and Secrets are
// read one by one (pull credentials), never listed or watched.
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
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;patch
