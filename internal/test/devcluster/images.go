package devcluster

import (
	"fmt"
	"os"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/embargo-dev/embargo/internal/test/testimage"
)

// Images are tag references (host/repo:tag) of the sample images in the registry.
type Images struct {
	// Kaspersky has Kaspersky Endpoint Security for Linux (kesl) installed from its .deb.
	Kaspersky string
	// Clean has nothing banned.
	Clean string
	// ScanEngine has Kaspersky Scan Engine unpacked from its tarball under /opt/kaspersky.
	ScanEngine string
	// KICS has Checkmarx's kics, a look-alike of Kaspersky's KICS: not banned.
	KICS string
	// RedHat's rpm database lists kesl from AO Kaspersky Lab.
	RedHat string
	// Removed installed kesl in one layer and purged it in the next.
	Removed string
	// MultiArch is an index: linux/amd64 clean, linux/arm64 with kesl.
	MultiArch string
}

// PushSamples pushes the sample images to reg. With a program (a node's PauseBinary) each
// single-platform sample is made runnable by a kubelet (RunnableImage); the multi-arch index is
// pushed as it is.
func PushSamples(reg *testimage.Registry, program string) (Images, error) {
	var out Images
	for _, s := range []struct {
		ref   *string
		repo  string
		build func() (v1.Image, error)
	}{
		{&out.Kaspersky, "security/kesl:12.1.0", testimage.KasperskyEndpoint},
		{&out.Clean, "shop/frontend:1.4.2", testimage.Clean},
		{&out.ScanEngine, "security/kav-scan-engine:2.1", testimage.KasperskyScanEngine},
		{&out.KICS, "tools/kics:2.1.3", testimage.CheckmarxKICS},
		{&out.RedHat, "ops/rhel-agent:9.4", testimage.RedHatWithKESL},
		{&out.Removed, "security/kesl-purged:1", testimage.KasperskyRemoved},
	} {
		img, err := s.build()
		if err != nil {
			return out, fmt.Errorf("building %s: %w", s.repo, err)
		}
		if program != "" {
			if img, err = RunnableImage(img, program); err != nil {
				return out, err
			}
		}
		if _, err := reg.Push(s.repo, img); err != nil {
			return out, err
		}
		*s.ref = reg.Ref(s.repo)
	}
	idx, err := multiArch()
	if err != nil {
		return out, err
	}
	if _, err := reg.PushIndex("shop/api:2.0", idx); err != nil {
		return out, err
	}
	out.MultiArch = reg.Ref("shop/api:2.0")
	return out, nil
}

// multiArch is an index whose arm64 image alone has kesl: a finding must name its platform.
func multiArch() (v1.ImageIndex, error) {
	base := []testimage.Deb{
		{Name: "base-files", Version: "12.4+deb12u5", Maintainer: "Santiago Vila <sanvila@debian.org>"},
		{Name: "bash", Version: "5.2.15-2+b2", Maintainer: "Matthias Klose <doko@debian.org>"},
	}
	build := func(arch string, extra ...testimage.Deb) (v1.Image, error) {
		l, err := testimage.Layer(testimage.OSRelease("debian", "12"), testimage.DpkgStatus(append(base, extra...)...))
		if err != nil {
			return nil, err
		}
		return testimage.Image(&v1.Platform{OS: "linux", Architecture: arch}, l)
	}
	amd, err := build("amd64")
	if err != nil {
		return nil, err
	}
	arm, err := build("arm64", testimage.Deb{Name: "kesl", Version: "12.1.0-1187", Arch: "arm64", Maintainer: testimage.KasperskyMaintainer})
	if err != nil {
		return nil, err
	}
	return testimage.Index(amd, arm)
}

// RunnableImage is base (nil: an empty linux image) with program added as /pause and made its
// entrypoint, so the kubelet can run a container of it. The node's sample workloads are the
// sample images made runnable this way: what Embargo sees in them is unchanged but for one
// static binary that no catalog rule matches.
func RunnableImage(base v1.Image, program string) (v1.Image, error) {
	bin, err := os.ReadFile(program)
	if err != nil {
		return nil, err
	}
	if base == nil {
		if base, err = testimage.Image(&v1.Platform{OS: "linux", Architecture: runtime.GOARCH}); err != nil {
			return nil, err
		}
	}
	l, err := testimage.Layer(testimage.File{Path: "pause", Content: bin, Mode: 0o755})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture = runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/pause"}
	cfg.Config.User = "65532:65532"
	return mutate.ConfigFile(img, cfg)
}
