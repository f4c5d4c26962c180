package webhook

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/policy"
)

// +kubebuilder:webhook:path=/validate-vendorpolicies,mutating=false,failurePolicy=fail,sideEffects=None,groups=embargo.dev,resources=vendorpolicies,verbs=create;update,versions=v1alpha1,name=vendorpolicies.embargo.dev,admissionReviewVersions=v1,timeoutSeconds=5

// PolicyValidator rejects VendorPolicies that would not compile, saying what to fix. CRD
// validation catches shapes; this catches meaning (regexes, catalog ids, globs).
type PolicyValidator struct {
	Catalog *catalog.Catalog
}

// Handle implements admission.Handler.
func (v *PolicyValidator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation == admissionv1.Delete {
		return admission.Allowed("")
	}
	var p v1alpha1.VendorPolicy
	dec := admission.NewDecoder(scheme)
	if err := dec.Decode(req, &p); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if _, err := policy.Compile(&p, v.Catalog); err != nil {
		return admission.Denied(fmt.Sprintf("invalid VendorPolicy %q: %v", p.Name, err))
	}
	return admission.Allowed("")
}
