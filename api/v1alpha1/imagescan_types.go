package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageScanPhase is where a scan stands.
// +kubebuilder:validation:Enum=Pending;Scanned;Failed
type ImageScanPhase string

const (
	ImageScanPending ImageScanPhase = "Pending"
	ImageScanScanned ImageScanPhase = "Scanned"
	ImageScanFailed  ImageScanPhase = "Failed"
)

// Condition types and reasons of an ImageScan.
const (
	// ImageScanScannedCondition is true once the digest was scanned.
	ImageScanScannedCondition = "Scanned"
	// ImageScanReadyCondition is true when the findings are current: matched against the
	// catalog and the policies present at observedGeneration, by a record that can answer
	// every rule of them.
	ImageScanReadyCondition = "Ready"

	ImageScanSucceededReason    = "Succeeded"
	ImageScanNotFoundReason     = "NotFound"
	ImageScanUnauthorizedReason = "Unauthorized"
	ImageScanTimeoutReason      = "Timeout"
	ImageScanTooLargeReason     = "TooLarge"
	ImageScanErrorReason        = "ScanError"
	// ImageScanNotScannedReason: Ready is false because there is no record to match.
	ImageScanNotScannedReason = "NotScanned"
	// ImageScanRescanPendingReason: a policy has path rules the stored record kept no files
	// for; the digest is rescanned in the background.
	ImageScanRescanPendingReason = "RescanPending"
	// ImageScanBadRecordReason: the stored record cannot be decoded; the next scan replaces it.
	ImageScanBadRecordReason = "BadRecord"
	ImageScanCurrentReason   = "FindingsCurrent"
)

// ImageScanSpec names the scanned image.
type ImageScanSpec struct {
	// Digest is the image (or index) digest, sha256:...
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	// +required
	Digest string `json:"digest"`
	// Image is a reference the digest was seen under (repository@digest).
	// +required
	Image string `json:"image"`
}

// ImageFinding is one banned-vendor finding in an image.
type ImageFinding struct {
	Vendor string `json:"vendor"`
	// +optional
	Catalog string `json:"catalog,omitempty"`
	// +optional
	Package string `json:"package,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Type string `json:"type,omitempty"`
	// Rule is the rule kind that matched: package, supplier, purl, cpe or path.
	Rule string `json:"rule"`
	// Evidence is the field and value that matched.
	Evidence string `json:"evidence"`
	// +optional
	Layer string `json:"layer,omitempty"`
	// +optional
	Platform string `json:"platform,omitempty"`
}

// ImageScanStatus is the outcome of the scan.
type ImageScanStatus struct {
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status was last computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Phase ImageScanPhase `json:"phase,omitempty"`
	// ShortDigest is the first 12 hex digits, for kubectl.
	// +optional
	ShortDigest string `json:"shortDigest,omitempty"`
	// +optional
	ScannedAt *metav1.Time `json:"scannedAt,omitempty"`
	// ScannerVersion and CatalogVersion say what produced the findings.
	// +optional
	ScannerVersion string `json:"scannerVersion,omitempty"`
	// +optional
	CatalogVersion string `json:"catalogVersion,omitempty"`
	// +listType=atomic
	// +optional
	Platforms []string `json:"platforms,omitempty"`
	// +optional
	PackageCount int `json:"packageCount,omitempty"`
	// FindingCount is the number of findings against the catalog and the policies present now
	// (recomputed when either changes); Findings lists up to 20 of them.
	// Defaulted so a status patch that leaves it at zero still shows 0 in kubectl.
	// +kubebuilder:default=0
	// +optional
	FindingCount int `json:"findingCount"`
	// +listType=atomic
	// +optional
	Findings []ImageFinding `json:"findings,omitempty"`
	// Record is the gzip-compressed inventory that lets a policy or catalog change re-match
	// without pulling the image again: every package with its vendor fields, purl, CPEs and
	// layer, and only the files some path rule of the catalog or a policy matches. Never a
	// whole SBOM.
	// +optional
	Record []byte `json:"record,omitempty"`
	// Message explains a failure; on a scanned image, it names the attached SBOMs that could
	// not be read (the findings stand without them).
	// +optional
	Message string `json:"message,omitempty"`
	// Failures counts consecutive failed attempts; retries back off with it.
	// +optional
	Failures int `json:"failures,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=is,categories=embargo
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.shortDigest`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Findings",type=integer,JSONPath=`.status.findingCount`
// +kubebuilder:printcolumn:name="Packages",type=integer,JSONPath=`.status.packageCount`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ImageScan records the scan of one image digest, shared by every workload that runs it.
type ImageScan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ImageScanSpec `json:"spec"`
	// +optional
	Status ImageScanStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImageScanList is a list of ImageScan.
type ImageScanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageScan `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImageScan{}, &ImageScanList{})
}
