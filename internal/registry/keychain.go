package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// PodKeychain returns the credentials a pod in namespace pulls with, read only when a registry
// actually asks for them: an image already scanned costs no API call. The scan that asks may
// outlive the request that started it, so the lookup has its own deadline.
func PodKeychain(keychains KeychainFunc, namespace, serviceAccount string, pullSecrets []string) authn.Keychain {
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
