package controllers

import (
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/registry"
)

// container is one container of a pod: what the spec asks for and what its status says runs.
type container struct {
	Name  string
	Image string
	// Running is repository@sha256:… from status.imageID, "" when the status does not say.
	Running string
}

// podContainers lists init, regular and ephemeral containers (names are unique across all three).
func podContainers(pod *corev1.Pod) []container {
	ids := make(map[string]string, len(pod.Status.ContainerStatuses))
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			ids[s.Name] = s.ImageID
		}
	}
	out := make([]container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+len(pod.Spec.EphemeralContainers))
	for _, c := range decision.PodContainers(&pod.Spec) {
		out = append(out, container{Name: c.Name, Image: c.Image, Running: runningRef(ids[c.Name])})
	}
	return out
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// runningRef turns a container status imageID into repository@digest. Runtimes prefix it with a
// scheme ("docker-pullable://", "docker://"); a bare "sha256:…" is the local image (config) id,
// which no registry serves, so it is no use here.
func runningRef(imageID string) string {
	if i := strings.Index(imageID, "://"); i >= 0 {
		imageID = imageID[i+3:]
	}
	repo, digest, ok := strings.Cut(imageID, "@")
	if !ok || repo == "" || !digestRE.MatchString(digest) {
		return ""
	}
	return imageID
}

// pinnedDigest returns the digest an image reference pins, or "".
func pinnedDigest(ref string) string {
	_, d, ok := strings.Cut(ref, "@")
	if !ok || !digestRE.MatchString(d) {
		return ""
	}
	return d
}

// repository strips the tag and digest from an image reference.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// containerDigest is the digest c runs: the status's imageID, the digest its spec pins, or what
// its tag last resolved to in namespace (the PodScanner's resolutions); "" when none is known yet.
func containerDigest(tags *registry.TagCache, namespace string, c container) string {
	if d, known := podDigest(c); known {
		return d
	}
	if r, ok := tags.Get(namespace, c.Image); ok {
		return r.Target.Digest.String()
	}
	return ""
}

// podDigest is the part of containerDigest the pod alone answers: the status's imageID, else the
// digest the spec pins. known is false when only the tag cache can tell (the digest is then "").
func podDigest(c container) (digest string, known bool) {
	if c.Running != "" {
		return pinnedDigest(c.Running), true
	}
	if d := pinnedDigest(c.Image); d != "" {
		return d, true
	}
	return "", false
}

func podKeychain(keychains registry.KeychainFunc, pod *corev1.Pod) authn.Keychain {
	return registry.PodKeychain(keychains, pod.Namespace, &pod.Spec)
}

// Retry delays after failed scans. Permanent failures (not found, unauthorized, too large) start
// higher: retrying soon cannot help, but a fixed pull secret or a re-pushed image should still be
// noticed within the hour.
const (
	retryBase          = 30 * time.Second
	retryBasePermanent = 5 * time.Minute
	retryMax           = time.Hour
)

// retryDelay is the wait after the n-th consecutive failure (n ≥ 1): base·2^(n-1), capped.
func retryDelay(n int, permanent bool) time.Duration {
	base := retryBase
	if permanent {
		base = retryBasePermanent
	}
	if n < 1 {
		n = 1
	}
	if n > 16 {
		return retryMax
	}
	return min(base<<(n-1), retryMax)
}

// backoff remembers, per key (a digest or an unresolvable image), how often it failed in a row
// and when to try again.
type backoff struct {
	mu sync.Mutex
	m  map[string]retryState
}

type retryState struct {
	failures int
	at       time.Time
}

// wait returns how long key must still wait at now (0: go ahead).
func (b *backoff) wait(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.m[key].at.Sub(now), 0)
}

// fail records a failure of key at now and returns the delay before the next attempt. failures
// is the consecutive count if the caller knows it (an ImageScan keeps one), else 0 to count here.
func (b *backoff) fail(key string, failures int, permanent bool, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]retryState{}
	}
	if failures <= 0 {
		failures = b.m[key].failures + 1
	}
	d := retryDelay(failures, permanent)
	b.m[key] = retryState{failures: failures, at: now.Add(d)}
	return d
}

func (b *backoff) clear(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
}
