package v1alpha1

// VendorRules identify one vendor's software. Every rule is optional; any one that matches is a
// finding, except package rules that require corroboration.
type VendorRules struct {
	// Packages are package names per ecosystem.
	// +optional
	// +listType=atomic
	Packages []PackageRule `json:"packages,omitempty"`

	// Suppliers are regular expressions over a package's vendor-identity fields (dpkg/apk
	// Maintainer, rpm Vendor, npm author, python Author, Java manifest Implementation-Vendor and
	// Specification-Vendor, PE CompanyName, SPDX supplier/originator, CycloneDX
	// publisher/author/manufacturer/supplier). Each is anchored at both ends and matched without
	// case against the field's name part (an email address in angle brackets is ignored). Free
	// text such as descriptions is never matched.
	// +optional
	// +listType=atomic
	Suppliers []string `json:"suppliers,omitempty"`

	// PURLs are package URL patterns; "*" matches any run of characters, e.g.
	// "pkg:npm/%40kaspersky/*" or "pkg:maven/com.kaspersky*".
	// +optional
	// +listType=atomic
	PURLs []string `json:"purls,omitempty"`

	// CPEVendors are CPE vendor strings. A CPE that the SBOM generator guessed from a package
	// name only corroborates another match; only a declared CPE convicts on its own.
	// +optional
	// +listType=atomic
	CPEVendors []string `json:"cpeVendors,omitempty"`

	// Paths are file globs ("**" crosses directories) over the image's final filesystem, after
	// whiteouts: tarball installs have no package record.
	// +optional
	// +listType=atomic
	Paths []string `json:"paths,omitempty"`
}

// Corroboration names a kind of evidence that must accompany a package-name match.
// +kubebuilder:validation:Enum=Supplier;Path
type Corroboration string

const (
	// CorroborationSupplier needs the same package's vendor field to match a supplier rule.
	CorroborationSupplier Corroboration = "Supplier"
	// CorroborationPath needs a path rule to match a file in the same image.
	CorroborationPath Corroboration = "Path"
)

// PackageRule matches packages by name.
type PackageRule struct {
	// Type is the package URL type: deb, rpm, apk, alpm, npm, pypi, maven, golang, gem, nuget,
	// or "*" for any.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:default="*"
	// +optional
	Type string `json:"type,omitempty"`

	// Name is the package name; "*" and "?" glob.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`

	// Requires lists evidence of which at least one must also be present for a name match to
	// count: for names that other vendors use too (Checkmarx ships a "kics").
	// +optional
	// +listType=set
	Requires []Corroboration `json:"requires,omitempty"`
}
