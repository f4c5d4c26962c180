package webhook

import (
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/embargo-dev/embargo/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}
