package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Action is what Embargo does with a workload that runs a banned vendor's software.
// +kubebuilder:validation:Enum=Deny;Warn;Audit
type Action string

const (
	// ActionDeny rejects the object at admission.
	ActionDeny Action = "Deny"
	// ActionWarn admits the object and returns admission warnings to the client.
	ActionWarn Action = "Warn"
	// ActionAudit admits the object silently and records the violation.
	ActionAudit Action = "Audit"
)

// ScanErrorAction is what admission does when an image could not be scanned in time.
// +kubebuilder:validation:Enum=Allow;Deny
type ScanErrorAction string

const (
	// ScanErrorAllow admits the object with a warning (fail open).
	ScanErrorAllow ScanErrorAction = "Allow"
	// ScanErrorDeny rejects the object (fail closed).
	ScanErrorDeny ScanErrorAction = "Deny"
)

// VendorPolicySpec says which vendors are banned and what happens to workloads that run their
// software.
// +kubebuilder:validation:XValidation:rule="!has(self.rollout) || self.rollout.all(i, self.rollout.exists_one(j, j.from == i.from))",message="rollout steps must have distinct 'from' times"
type VendorPolicySpec struct {
	// Vendors are the banned vendors: built-in catalog entries or custom rules.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +required
	Vendors []VendorSelector `json:"vendors"`

	// Action applies when no rollout step has started yet, or when there is no rollout.
	// +kubebuilder:default=Deny
	// +optional
	Action Action `json:"action,omitempty"`

	// Rollout lists dated steps; the latest step whose time has come sets the action. For BOD
	// 17-01: Audit from issue, Warn from day 30, Deny from day 90.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Rollout []RolloutStep `json:"rollout,omitempty"`

	// OnScanError decides admission when an image cannot be scanned within the webhook's
	// budget or at all: Allow admits with a warning (fail open), Deny rejects (fail closed).
	// +kubebuilder:default=Allow
	// +optional
	OnScanError ScanErrorAction `json:"onScanError,omitempty"`

	// Exceptions exempt images or namespaces, each with a reason and an optional expiry.
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	// +optional
	Exceptions []Exception `json:"exceptions,omitempty"`

	// Match narrows the objects the policy applies to. The manager's own namespace and
	// kube-system are always exempt.
	// +optional
	Match MatchSpec `json:"match,omitempty"`

	// SBOM says what the SBOMs an image carries count for.
	// +optional
	SBOM SBOMSpec `json:"sbom,omitempty"`
}

// AttachedSBOMMode is what SBOMs attached to an image count for.
// +kubebuilder:validation:Enum=Ignore;Evidence
type AttachedSBOMMode string

const (
	// AttachedSBOMEvidence matches the packages an attached SBOM declares as well as those the
	// scan found: findings are the union, and a clean attached SBOM never clears a scanned one.
	AttachedSBOMEvidence AttachedSBOMMode = "Evidence"
	// AttachedSBOMIgnore judges the scan of the image's files only.
	AttachedSBOMIgnore AttachedSBOMMode = "Ignore"
)

// SBOMSpec configures the SBOM evidence a policy uses.
type SBOMSpec struct {
	// Attached decides what the SBOMs an image carries count for: BuildKit in-toto SPDX
	// attestations in its index, OCI referrers (SPDX, CycloneDX, sigstore bundles) and
	// cosign's .sbom/.att tags. Evidence (the default) matches their packages as well as the
	// scanned ones, and says in each finding which document declared it; Ignore disregards them.
	// Signatures on attached documents are recorded, not required: a declared banned package is
	// the builder's own admission.
	// +kubebuilder:default=Evidence
	// +optional
	Attached AttachedSBOMMode `json:"attached,omitempty"`
}

// VendorSelector is a built-in catalog entry or a custom vendor.
// +kubebuilder:validation:XValidation:rule="has(self.catalog) != has(self.rules)",message="set exactly one of 'catalog' (a built-in entry such as kaspersky) or 'rules' (a custom vendor)"
// +kubebuilder:validation:XValidation:rule="!has(self.rules) || has(self.name)",message="a custom vendor with 'rules' needs a 'name'"
type VendorSelector struct {
	// Catalog is the id of a built-in catalog entry (see `embargo catalog list`).
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9-]*$`
	// +optional
	Catalog string `json:"catalog,omitempty"`

	// Name is the vendor's name, shown in findings; required with rules.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Name string `json:"name,omitempty"`

	// Rules identify a custom vendor's software.
	// +optional
	Rules *VendorRules `json:"rules,omitempty"`

	// Basis cites the instruments behind a custom ban, one line each.
	// +listType=atomic
	// +optional
	Basis []string `json:"basis,omitempty"`
}

// RolloutStep switches the policy to Action from a point in time.
type RolloutStep struct {
	// Action in force from From on.
	// +required
	Action Action `json:"action"`
	// From is when this step starts.
	// +required
	From metav1.Time `json:"from"`
}

// Exception exempts images or namespaces from a policy.
// +kubebuilder:validation:XValidation:rule="has(self.images) || has(self.namespaces)",message="an exception needs 'images' or 'namespaces'"
type Exception struct {
	// Images are image reference globs: "*" matches any run of characters, "/" included, so
	// "registry.example.com/team/*" covers every repository, tag and digest below team/; a digest may be pinned
	// with "@sha256:...". With namespaces set too, both must match.
	// +listType=atomic
	// +optional
	Images []string `json:"images,omitempty"`
	// Namespaces the exception covers.
	// +listType=atomic
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// Reason is why, for the auditor (e.g. a waiver number).
	// +kubebuilder:validation:MinLength=1
	// +required
	Reason string `json:"reason"`
	// Expires is when the exception stops applying.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
}

// MatchSpec selects the objects a policy applies to.
type MatchSpec struct {
	// NamespaceSelector selects namespaces by label.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ObjectSelector selects objects by label.
	// +optional
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
	// ExcludedNamespaces are never checked by this policy.
	// +listType=set
	// +optional
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
}

// Condition types and reasons of a VendorPolicy.
const (
	// VendorPolicyReadyCondition is true when the policy compiled and the last audit finished.
	VendorPolicyReadyCondition = "Ready"
	// VendorPolicyCompliantCondition is false while running workloads violate the policy.
	VendorPolicyCompliantCondition = "Compliant"

	VendorPolicyCompiledReason     = "Compiled"
	VendorPolicyInvalidReason      = "InvalidPolicy"
	VendorPolicyNoViolationsReason = "NoViolations"
	VendorPolicyViolationsReason   = "ViolationsFound"
	VendorPolicyUncheckedReason    = "ImagesUnchecked"
)

// VendorPolicyStatus is what the audit found.
type VendorPolicyStatus struct {
	// Conditions: Ready and Compliant.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Action in force now.
	// +optional
	Action Action `json:"action,omitempty"`
	// ActionSince is when the rollout step in force began (empty when no step has begun and
	// spec.action applies).
	// +optional
	ActionSince *metav1.Time `json:"actionSince,omitempty"`
	// NextAction is the next rollout step's action.
	// +optional
	NextAction Action `json:"nextAction,omitempty"`
	// NextActionAt is when the next step starts.
	// +optional
	NextActionAt *metav1.Time `json:"nextActionAt,omitempty"`
	// TotalViolations counts containers running banned software.
	// +optional
	TotalViolations int `json:"totalViolations"`
	// ViolatingWorkloads counts distinct top-level workloads.
	// +optional
	ViolatingWorkloads int `json:"violatingWorkloads"`
	// ViolatingPods counts pods.
	// +optional
	ViolatingPods int `json:"violatingPods"`
	// ViolatingImages counts image digests.
	// +optional
	ViolatingImages int `json:"violatingImages"`
	// UncheckedImages counts images that could not be scanned.
	// +optional
	UncheckedImages int `json:"uncheckedImages"`
	// Violations lists up to 50 violations, one per workload and container.
	// +listType=atomic
	// +optional
	Violations []Violation `json:"violations,omitempty"`
	// Truncated is true when Violations was cut short.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
	// UnusableAttachedSBOMs counts the SBOMs attached to the selected containers' images that
	// the policy reads (spec.sbom.attached: Evidence) but that could not be used: malformed, over
	// a size or count bound, unreachable. Each is counted once per image digest. Those images are
	// judged on the rest of their evidence.
	// +optional
	UnusableAttachedSBOMs int `json:"unusableAttachedSBOMs"`
	// AttachedSBOMErrors lists up to 10 of them, sorted by image digest and message.
	// +listType=atomic
	// +optional
	AttachedSBOMErrors []AttachedSBOMError `json:"attachedSBOMErrors,omitempty"`
	// LastAuditTime is when the audit last ran.
	// +optional
	LastAuditTime *metav1.Time `json:"lastAuditTime,omitempty"`
}

// Violation is one container of one workload running a banned vendor's software.
type Violation struct {
	Namespace    string `json:"namespace"`
	WorkloadKind string `json:"workloadKind"`
	WorkloadName string `json:"workloadName"`
	// +optional
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container"`
	Image     string `json:"image"`
	// +optional
	Digest string `json:"digest,omitempty"`
	Vendor string `json:"vendor"`
	// +optional
	Package string `json:"package,omitempty"`
	// Evidence is the matching field and value, e.g. `dpkg Maintainer = "AO Kaspersky Lab"`.
	Evidence string `json:"evidence"`
	// Excepted is set when an exception covers this violation (it is listed, not counted).
	// +optional
	Excepted bool `json:"excepted,omitempty"`
}

// AttachedSBOMError is one SBOM attached to a running image that could not be used.
type AttachedSBOMError struct {
	// Image is the image as a selected container names it.
	Image string `json:"image"`
	// Digest is the image's digest.
	Digest string `json:"digest"`
	// Message names the document, where it was attached (its kind and platform) and why it
	// could not be used, e.g. `attached SBOM sha256:0123456789ab (oci-referrer) of linux/amd64
	// unusable: too large: ...`.
	Message string `json:"message"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=vp,categories=embargo
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.status.action`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.actionSince`,description="how long the action has been in force"
// +kubebuilder:printcolumn:name="Compliant",type=string,JSONPath=`.status.conditions[?(@.type=="Compliant")].status`
// +kubebuilder:printcolumn:name="Violations",type=integer,JSONPath=`.status.totalViolations`
// +kubebuilder:printcolumn:name="Workloads",type=integer,JSONPath=`.status.violatingWorkloads`
// +kubebuilder:printcolumn:name="Unchecked",type=integer,JSONPath=`.status.uncheckedImages`,priority=1
// +kubebuilder:printcolumn:name="Unusable SBOMs",type=integer,JSONPath=`.status.unusableAttachedSBOMs`,priority=1,description="attached SBOMs that could not be used"
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextAction`
// +kubebuilder:printcolumn:name="At",type=string,JSONPath=`.status.nextActionAt`,description="when the next action starts"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// VendorPolicy bans a set of vendors' software from the cluster.
type VendorPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VendorPolicySpec `json:"spec"`
	// +optional
	Status VendorPolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// VendorPolicyList is a list of VendorPolicy.
type VendorPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VendorPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VendorPolicy{}, &VendorPolicyList{})
}
