package controllers

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/internal/registry"
)

const (
	dgA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dgB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestRunningRef(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"containerd":            {"registry.example.com/team/app@" + dgA, "registry.example.com/team/app@" + dgA},
		"docker-pullable":       {"docker-pullable://nginx@" + dgA, "nginx@" + dgA},
		"cri-o with port":       {"localhost:5000/app@" + dgA, "localhost:5000/app@" + dgA},
		"local image id":        {"sha256:" + dgA[7:], ""},
		"docker image id":       {"docker://sha256:" + dgA[7:], ""},
		"empty":                 {"", ""},
		"short digest":          {"nginx@sha256:abc", ""},
		"upper-case hex":        {"nginx@sha256:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""},
		"no repository":         {"@" + dgA, ""},
		"tag and digest kept":   {"nginx:1.27@" + dgA, "nginx:1.27@" + dgA},
		"unknown scheme prefix": {"containerd://ghcr.io/x/y@" + dgA, "ghcr.io/x/y@" + dgA},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := runningRef(tc.in); got != tc.want {
				t.Errorf("runningRef(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRepository(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"tag":            {"nginx:1.27", "nginx"},
		"none":           {"nginx", "nginx"},
		"port and tag":   {"localhost:5000/team/app:v1", "localhost:5000/team/app"},
		"port no tag":    {"localhost:5000/team/app", "localhost:5000/team/app"},
		"digest":         {"ghcr.io/x/y@" + dgA, "ghcr.io/x/y"},
		"tag and digest": {"ghcr.io/x/y:1@" + dgA, "ghcr.io/x/y"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := repository(tc.in); got != tc.want {
				t.Errorf("repository(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestPodContainers(t *testing.T) {
	pod := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers:      []corev1.Container{{Name: "init", Image: "busybox:1"}},
			Containers:          []corev1.Container{{Name: "app", Image: "app:1"}, {Name: "side", Image: "side@" + dgB}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "debug:1"}}},
		},
		Status: corev1.PodStatus{
			InitContainerStatuses:      []corev1.ContainerStatus{{Name: "init", ImageID: "docker-pullable://busybox@" + dgA}},
			ContainerStatuses:          []corev1.ContainerStatus{{Name: "app", ImageID: "sha256:" + dgA[7:]}},
			EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", ImageID: "docker.io/library/debug@" + dgB}},
		},
	}
	want := []container{
		{Name: "init", Image: "busybox:1", Running: "busybox@" + dgA},
		{Name: "app", Image: "app:1"},
		{Name: "side", Image: "side@" + dgB},
		{Name: "debug", Image: "debug:1", Running: "docker.io/library/debug@" + dgB},
	}
	if diff := cmp.Diff(want, podContainers(pod)); diff != "" {
		t.Errorf("podContainers (-want +got):\n%s", diff)
	}
}

func TestPodDigests(t *testing.T) {
	tests := map[string]struct {
		pod  *corev1.Pod
		want []string
	}{
		"status, pin, tag, once each": {&corev1.Pod{
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1"}},
				Containers:     []corev1.Container{{Name: "app", Image: "app:1"}, {Name: "side", Image: "side@" + dgB}, {Name: "side2", Image: "side2@" + dgB}},
			},
			Status: corev1.PodStatus{
				InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ImageID: "docker-pullable://busybox@" + dgA}},
				// a local image id tells nothing: the tag cache must answer
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ImageID: "sha256:" + dgA[7:]}},
			},
		}, []string{dgA, UnresolvedDigest, dgB}},
		// the audit reads the running digest, never the pin it replaced
		"running beats pin": {&corev1.Pod{
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app@" + dgB}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ImageID: "app@" + dgA}}},
		}, []string{dgA}},
		"not a pod": {nil, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var obj client.Object = &corev1.Service{}
			if tc.pod != nil {
				obj = tc.pod
			}
			got := podDigests(obj)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("podDigests (-want +got):\n%s", diff)
			}
			// whatever the index gives as a digest is what the audit judges the container by
			if tc.pod == nil {
				return
			}
			for _, c := range podContainers(tc.pod) {
				d := containerDigest(registry.NewTagCache(0), tc.pod.Namespace, c)
				if d == "" {
					d = UnresolvedDigest
				}
				if !slices.Contains(got, d) {
					t.Errorf("container %s runs %s for the audit, not in the index %v", c.Name, d, got)
				}
			}
		})
	}
}

func TestContainerDigest(t *testing.T) {
	ix := registry.NewTagCache(0)
	ref, err := name.NewDigest("app@" + dgA)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(dgA)
	if err != nil {
		t.Fatal(err)
	}
	ix.Put("ns", "app:1", registry.Target{Ref: ref, Digest: h}, time.Unix(0, 0))
	tests := map[string]struct {
		c    container
		want string
	}{
		"running wins":   {container{Image: "app@" + dgB, Running: "app@" + dgA}, dgA},
		"pinned in spec": {container{Image: "app@" + dgB}, dgB},
		"unknown tag":    {container{Image: "app:2"}, ""},
		"resolved tag":   {container{Image: "app:1"}, dgA},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := containerDigest(ix, "ns", tc.c); got != tc.want {
				t.Errorf("digest = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	tests := map[string]struct {
		n         int
		permanent bool
		want      time.Duration
	}{
		"first":               {1, false, 30 * time.Second},
		"zero is first":       {0, false, 30 * time.Second},
		"second":              {2, false, time.Minute},
		"seventh":             {7, false, 32 * time.Minute},
		"capped":              {8, false, time.Hour},
		"huge":                {1000, false, time.Hour},
		"permanent first":     {1, true, 5 * time.Minute},
		"permanent third":     {3, true, 20 * time.Minute},
		"permanent capped":    {5, true, time.Hour},
		"permanent huge":      {64, true, time.Hour},
		"negative is first":   {-3, false, 30 * time.Second},
		"permanent negative":  {-1, true, 5 * time.Minute},
		"just below the cap":  {6, false, 16 * time.Minute},
		"permanent below cap": {4, true, 40 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := retryDelay(tc.n, tc.permanent); got != tc.want {
				t.Errorf("retryDelay(%d, %v) = %s, want %s", tc.n, tc.permanent, got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := b.wait("x", now); d != 0 {
		t.Fatalf("fresh key waits %s", d)
	}
	if d := b.fail("x", 0, false, now); d != 30*time.Second {
		t.Errorf("first failure: %s", d)
	}
	if d := b.fail("x", 0, false, now); d != time.Minute {
		t.Errorf("second failure counted here: %s, want 1m", d)
	}
	if d := b.wait("x", now.Add(20*time.Second)); d != 40*time.Second {
		t.Errorf("wait = %s, want 40s", d)
	}
	if d := b.fail("x", 4, true, now); d != 40*time.Minute {
		t.Errorf("caller's count of 4, permanent: %s", d)
	}
	b.clear("x")
	if d := b.wait("x", now); d != 0 {
		t.Errorf("cleared key waits %s", d)
	}
}
