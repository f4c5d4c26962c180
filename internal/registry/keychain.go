package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
)

// PodKeychain returns the credentials a pod with spec in namespace pulls with — its
// imagePullSecrets and its service account's — read only when a registry actually asks for
// them: an image already scanned costs no API call. The scan that asks may outlive the request
// that started it, so the lookup has its own deadline. Admission and the audit both use it.
func PodKeychain(keychains KeychainFunc, namespace string, spec *corev1.PodSpec) authn.Keychain {
	serviceAccount := spec.ServiceAccountName
	pullSecrets := make([]string, 0, len(spec.ImagePullSecrets))
	for _, s := range spec.ImagePullSecrets {
		pullSecrets = append(pullSecrets, s.Name)
	}
	if keychains == nil {
		return authn.NewMultiKeychain() // anonymous, never the process's default keychain
	}
	return &lazyKeychain{build: func() (authn.Keychain, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return keychains(ctx, namespace, serviceAccount, pullSecrets)
	}}
}

type lazyKeychain struct {
	once  sync.Once
	build func() (authn.Keychain, error)
	kc    authn.Keychain
	err   error
}

func (k *lazyKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.once.Do(func() { k.kc, k.err = k.build() })
	if k.err != nil {
		return nil, fmt.Errorf("reading pull secrets: %w", k.err)
	}
	return k.kc.Resolve(r)
}
