package imagebuild

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var commitTime = time.Date(2026, 11, 30, 21, 36, 46, 0, time.UTC)

const fakeCA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

// spec writes two tiny "binaries" per platform and a CA bundle under dir and describes them.
func spec(t *testing.T, dir string) Spec {
	t.Helper()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := Spec{
		Entrypoint: "/manager",
		CACerts:    write("ca.crt", fakeCA),
		Title:      "embargo",
		Version:    "v0.1.0",
		Revision:   "36bb2af3e0ac49449e2966c5700beca68ba467da",
		Created:    commitTime,
	}
	for _, arch := range []string{"amd64", "arm64"} {
		s.Platforms = append(s.Platforms, Platform{
			Platform: v1.Platform{OS: "linux", Architecture: arch},
			Binaries: map[string]string{
				"/manager": write("linux_"+arch+"/manager", "manager for "+arch),
				"/embargo": write("linux_"+arch+"/embargo", "embargo for "+arch),
			},
		})
	}
	return s
}

type tarFile struct {
	Type     byte
	Mode     int64
	UID, GID int
	Content  string
}

// files reads every layer of img in order and returns its entries by path, checking on the way
// that each layer is sorted and carries only the commit time and no owner names.
func files(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tarFile{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		prev := ""
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if h.Name <= prev {
				t.Errorf("layer %d: %q after %q: entries not sorted", i, h.Name, prev)
			}
			prev = h.Name
			if !h.ModTime.Equal(commitTime) || h.Uname != "" || h.Gname != "" || len(h.PAXRecords) != 0 {
				t.Errorf("layer %d: %s: mtime %s, owner %q:%q, PAX %v; want the commit time and nothing else", i, h.Name, h.ModTime, h.Uname, h.Gname, h.PAXRecords)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out["/"+strings.TrimSuffix(h.Name, "/")] = tarFile{Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Content: string(b)}
		}
		rc.Close()
	}
	return out
}

func TestBuild(t *testing.T) {
	s := spec(t, t.TempDir())
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/embargo-dev/embargo",
		"org.opencontainers.image.revision": "36bb2af3e0ac49449e2966c5700beca68ba467da",
		"org.opencontainers.image.version":  "v0.1.0",
		"org.opencontainers.image.created":  "2026-11-30T21:36:46Z",
		"org.opencontainers.image.title":    "embargo",
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	if diff := cmp.Diff(wantMeta, im.Annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Fatalf("platforms (-want +got):\n%s", diff)
	}

	var baseDigests []v1.Hash
	for _, d := range im.Manifests {
		arch := d.Platform.Architecture
		t.Run(arch, func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("media types: manifest %s, config %s; want OCI", m.MediaType, m.Config.MediaType)
			}
			if diff := cmp.Diff(wantMeta, m.Annotations); diff != "" {
				t.Errorf("manifest annotations (-want +got):\n%s", diff)
			}
			for _, l := range m.Layers {
				if l.MediaType != types.OCILayer {
					t.Errorf("layer %s: media type %s, want %s", l.Digest, l.MediaType, types.OCILayer)
				}
			}
			baseDigests = append(baseDigests, m.Layers[0].Digest)

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != arch || !cf.Created.Equal(commitTime) {
				t.Errorf("config: %s/%s created %s", cf.OS, cf.Architecture, cf.Created)
			}
			want := v1.Config{
				User:       "65532:65532",
				Entrypoint: []string{"/manager"},
				WorkingDir: "/home/nonroot",
				Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
				Labels:     wantMeta,
			}
			if diff := cmp.Diff(want, cf.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if len(cf.History) != 2 || len(cf.RootFS.DiffIDs) != 2 {
				t.Errorf("%d history entries and %d diff IDs, want 2 and 2", len(cf.History), len(cf.RootFS.DiffIDs))
			}

			got := files(t, img)
			tests := map[string]struct {
				path string
				want tarFile
			}{
				"manager":     {"/manager", tarFile{Type: tar.TypeReg, Mode: 0o755, Content: "manager for " + arch}},
				"cli":         {"/embargo", tarFile{Type: tar.TypeReg, Mode: 0o755, Content: "embargo for " + arch}},
				"CA bundle":   {"/etc/ssl/certs/ca-certificates.crt", tarFile{Type: tar.TypeReg, Mode: 0o644, Content: fakeCA}},
				"scratch":     {"/tmp", tarFile{Type: tar.TypeDir, Mode: 0o1777}},
				"home":        {"/home/nonroot", tarFile{Type: tar.TypeDir, Mode: 0o700, UID: 65532, GID: 65532}},
				"passwd":      {"/etc/passwd", tarFile{Type: tar.TypeReg, Mode: 0o644, Content: passwd}},
				"group":       {"/etc/group", tarFile{Type: tar.TypeReg, Mode: 0o644, Content: group}},
				"certs dir":   {"/etc/ssl/certs", tarFile{Type: tar.TypeDir, Mode: 0o755}},
				"nsswitch":    {"/etc/nsswitch.conf", tarFile{Type: tar.TypeReg, Mode: 0o644, Content: nsswitch}},
				"root's home": {"/root", tarFile{Type: tar.TypeDir, Mode: 0o700}},
			}
			for name, tc := range tests {
				t.Run(name, func(t *testing.T) {
					f, ok := got[tc.path]
					if !ok {
						t.Fatalf("%s missing", tc.path)
					}
					if diff := cmp.Diff(tc.want, f); diff != "" {
						t.Errorf("%s (-want +got):\n%s", tc.path, diff)
					}
				})
			}
			if !strings.Contains(got["/etc/passwd"].Content, "nonroot:x:65532:65532:nonroot:/home/nonroot:") ||
				!strings.Contains(got["/etc/group"].Content, "nonroot:x:65532:") {
				t.Errorf("no nonroot 65532 user and group:\n%s%s", got["/etc/passwd"].Content, got["/etc/group"].Content)
			}
		})
	}
	if len(baseDigests) == 2 && baseDigests[0] != baseDigests[1] {
		t.Errorf("the base layer differs between platforms: %v", baseDigests)
	}
}

func TestBuildReproducible(t *testing.T) {
	digest := func(t *testing.T, s Spec) v1.Hash {
		t.Helper()
		idx, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest(t, spec(t, t.TempDir()))

	// The same inputs elsewhere, written a second later with other file modes: the same index.
	time.Sleep(1100 * time.Millisecond)
	again := spec(t, t.TempDir())
	for _, p := range again.Platforms {
		for _, src := range p.Binaries {
			if err := os.Chmod(src, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d := digest(t, again); d != first {
		t.Errorf("second build: %s, first %s", d, first)
	}

	changes := map[string]func(*Spec){
		"a binary's content": func(s *Spec) {
			if err := os.WriteFile(s.Platforms[1].Binaries["/embargo"], []byte("embargo for arm64, patched"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"the revision":    func(s *Spec) { s.Revision = "0000000000000000000000000000000000000000" },
		"the commit time": func(s *Spec) { s.Created = s.Created.Add(time.Second) },
		"the entrypoint":  func(s *Spec) { s.Entrypoint = "/embargo" },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			s := spec(t, t.TempDir())
			change(&s)
			if d := digest(t, s); d == first {
				t.Errorf("changing %s kept the digest %s", name, d)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := map[string]struct {
		change func(*Spec)
		want   string
	}{
		"no CA bundle":           {func(s *Spec) { s.CACerts = filepath.Join(t.TempDir(), "none.crt") }, "apt-get install ca-certificates"},
		"CA bundle not PEM":      {func(s *Spec) { s.CACerts = s.Platforms[0].Binaries["/manager"] }, "no PEM certificate"},
		"no platforms":           {func(s *Spec) { s.Platforms = nil }, "no platforms"},
		"no commit time":         {func(s *Spec) { s.Created = time.Time{} }, "SOURCE_DATE_EPOCH"},
		"platform twice":         {func(s *Spec) { s.Platforms[1].Platform = s.Platforms[0].Platform }, "linux/amd64 listed twice"},
		"entrypoint missing":     {func(s *Spec) { s.Entrypoint = "/controller" }, `the entrypoint "/controller" is not among the binaries`},
		"relative path in image": {func(s *Spec) { s.Platforms[0].Binaries["manager"] = s.Platforms[0].Binaries["/manager"] }, `"manager": want a clean absolute path`},
		"binary not built":       {func(s *Spec) { s.Platforms[1].Binaries["/manager"] = "/nonexistent/linux_arm64/manager" }, "/nonexistent/linux_arm64/manager"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := spec(t, t.TempDir())
			tc.change(&s)
			_, err := Build(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLayoutAndPush(t *testing.T) {
	idx, err := Build(spec(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "image")
	// Twice: the second write replaces the first.
	for range 2 {
		if err := WriteLayout(dir, idx, "v0.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(index), want.String()) || !strings.Contains(string(index), `"org.opencontainers.image.ref.name": "v0.1.0"`) {
		t.Errorf("index.json does not name the index %s with its tag:\n%s", want, index)
	}
	read, err := ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := read.Digest(); got != want {
		t.Fatalf("layout holds %s, built %s", got, want)
	}
	if _, err := ReadLayout(t.TempDir()); err == nil || !strings.Contains(err.Error(), "make image") {
		t.Errorf("reading an empty directory: %v, want a hint to run make image", err)
	}

	quiet := registry.Logger(log.New(io.Discard, "", 0))
	tests := map[string]struct {
		tls, insecure bool
		wantErr       bool
	}{
		"plain HTTP on 127.0.0.1":         {},
		"plain HTTP, insecure":            {insecure: true},
		"self-signed TLS, insecure":       {tls: true, insecure: true},
		"self-signed TLS, verified fails": {tls: true, wantErr: true},
	}
	for caseName, tc := range tests {
		t.Run(caseName, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(registry.New(quiet))
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			host := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := PushLayout(ctx, dir, host+"/embargo:dev", tc.insecure)
			if tc.wantErr {
				if err == nil {
					t.Fatal("pushed to a registry with an unverified certificate without insecure")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DigestStr() != want.String() || got.Context().Name() != host+"/embargo" {
				t.Errorf("pushed %s, want %s/embargo@%s", got, host, want)
			}
			// Pull it back as a client would: the tag resolves to the index, arm64 has its binary.
			opts := []name.Option{}
			if tc.insecure || tc.tls {
				opts = append(opts, name.Insecure)
			}
			tag, err := name.ParseReference(host+"/embargo:dev", opts...)
			if err != nil {
				t.Fatal(err)
			}
			ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(srv.Client().Transport), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"})}
			desc, err := remote.Get(tag, ropts...)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != want {
				t.Errorf("tag resolves to %s, want %s", desc.Digest, want)
			}
			img, err := remote.Image(tag, ropts...)
			if err != nil {
				t.Fatal(err)
			}
			if f := files(t, img)["/manager"]; f.Content != "manager for arm64" {
				t.Errorf("pulled arm64 /manager: %q", f.Content)
			}
		})
	}
}
