// Package v1alpha1 contains the Embargo API: VendorPolicy (which vendors are banned, and what
// happens when their software is found) and ImageScan (one scanned image digest).
// +kubebuilder:object:generate=true
// +groupName=embargo.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of Embargo's objects.
	GroupVersion = schema.GroupVersion{Group: "embargo.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this group.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
