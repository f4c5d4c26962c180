package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/embargo-dev/embargo/internal/test/devcluster"
	"github.com/embargo-dev/embargo/internal/test/testimage"
)

// TestSurvivesHostileImages runs one manager as the chart runs it — the chart's scan flags,
// GOMEMLIMIT from its resourceFieldRef, and its memory limit enforced by a memory cgroup as the
// kubelet would — and names a 1,000,000-file image and a 1 GiB image in admission at once,
// while small images keep being admitted and denied. The manager must stay up in its limit,
// refuse the first as TooLarge (onScanError decides), scan the second, and keep answering.
func TestSurvivesHostileImages(t *testing.T) {
	chart := renderChartManager(t)
	t.Logf("chart: memory limit %d MiB, GOMEMLIMIT from limits.memory, webhook timeout %s, flags %v",
		chart.memLimit>>20, chart.timeout, chart.scanArgs)
	cg := newMemoryCgroup(t, chart.memLimit)

	dir := t.TempDir()
	scratch, blobs := filepath.Join(dir, "scratch"), filepath.Join(dir, "blobs")
	for _, d := range []string{scratch, blobs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := testimage.NewRegistry(testimage.WithDiskBlobs(blobs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	start := time.Now()
	samples, err := devcluster.PushSamples(reg, "")
	if err != nil {
		t.Fatal(err)
	}
	const millionFiles = 1_000_000
	many, err := testimage.ManyFiles(millionFiles)
	if err != nil {
		t.Fatal(err)
	}
	million, err := reg.Push("hostile/million-files:1", many)
	if err != nil {
		t.Fatal(err)
	}
	const gigabyte = 1 << 30
	giant, err := reg.PushLayers("hostile/gigabyte:1", gzip.NoCompression, gigabyteLayers(gigabyte, 4)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed the samples, %s (%d files) and %s (%d MiB, kesl in its last layer) in %s",
		million, millionFiles, giant, gigabyte>>20, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start = time.Now()
	c, err := devcluster.Start(ctx, devcluster.Options{
		Root: root, Assets: assets, BinDir: binDir, Managers: 1,
		Dir: filepath.Join(dir, "cluster"), Registry: reg, Images: &samples,
		ManagerArgs:   chart.args(scratch),
		ManagerEnv:    []string{fmt.Sprintf("GOMEMLIMIT=%d", chart.memLimit), "TMPDIR=" + scratch},
		ManagerCgroup: cg.dir,
		Log:           logWriter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	m := c.Managers[0]
	pid := m.Pid()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s log (last 60 lines) ----\n%s", m.Name, m.LogTail(60))
		}
	})
	t.Logf("cluster with one manager (pid %d in %s) up in %s", pid, cg.dir, time.Since(start).Round(time.Millisecond))
	if got := cg.procs(t); !slices.Equal(got, []int{pid}) {
		t.Fatalf("cgroup %s holds %v, want the manager %d alone", cg.dir, got, pid)
	}

	run := func(stdin string, args ...string) devcluster.Result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return c.Kubectl(ctx, stdin, args...)
	}
	for _, p := range []struct{ name, onScanError string }{{"survive-closed", "Deny"}, {"survive-open", "Allow"}} {
		policy := fmt.Sprintf(`apiVersion: embargo.dev/v1alpha1
kind: VendorPolicy
metadata:
  name: %[1]s
spec:
  vendors:
  - catalog: kaspersky
  action: Deny
  onScanError: %[2]s
  match:
    namespaceSelector:
      matchLabels:
        e2e-survive: %[1]s
`, p.name, p.onScanError)
		ns := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %[1]s\n  labels:\n    e2e-survive: %[1]s\n", p.name)
		for _, doc := range []string{policy, ns} {
			if r := run(doc, "apply", "-f", "-"); r.ExitCode != 0 {
				t.Fatal(r)
			}
		}
		if r := run("", "wait", "--for=condition=Ready", "--timeout=60s", "vendorpolicy/"+p.name); r.ExitCode != 0 {
			t.Fatal(r)
		}
	}

	sampler := cg.sample(100 * time.Millisecond)
	defer sampler.stop()

	type answer struct {
		devcluster.Result
		took time.Duration
	}
	admit := func(ns, name, image string) answer {
		t0 := time.Now()
		r := run(podManifest(ns, name, image), "create", "--dry-run=server", "-f", "-")
		return answer{r, time.Since(t0)}
	}
	denied := func(a answer) bool {
		return a.ExitCode != 0 && strings.Contains(a.Stderr, "admission webhook") && strings.Contains(a.Stderr, "denied the request")
	}

	// Both hostile images at once, the million-file one under both onScanError settings.
	hostile := map[string]*answer{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, h := range []struct{ key, ns, image string }{
		{"million/Deny", "survive-closed", million},
		{"million/Allow", "survive-open", million},
		{"gigabyte/Deny", "survive-closed", giant},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := admit(h.ns, "hostile", h.image)
			mu.Lock()
			hostile[h.key] = &a
			mu.Unlock()
		}()
	}
	hostileStart := time.Now()

	// Meanwhile small images, cold at first, must get their right answer, round after round,
	// until the hostile scans are over: the 1 GiB one is over once it is denied for kesl.
	var small []time.Duration
	var gigabyteScanned time.Duration
	hostileDone := make(chan struct{})
	go func() { wg.Wait(); close(hostileDone) }()
	for round := 0; ; round++ {
		clean := admit("survive-closed", fmt.Sprintf("web-%d", round), samples.Clean)
		if clean.ExitCode != 0 || strings.Contains(clean.Stderr, "Warning") {
			t.Errorf("round %d: the clean image was not admitted silently after %s: %s", round, clean.took, clean.Result)
		}
		banned := admit("survive-closed", fmt.Sprintf("agent-%d", round), samples.Kaspersky)
		if !denied(banned) || !strings.Contains(banned.Stderr, "kesl 12.1.0-1187 (deb)") {
			t.Errorf("round %d: the Kaspersky image was not denied for kesl after %s: %s", round, banned.took, banned.Result)
		}
		small = append(small, clean.took, banned.took)
		select {
		case <-hostileDone:
			if gigabyteScanned == 0 {
				if a := admit("survive-closed", fmt.Sprintf("giant-%d", round), giant); denied(a) && strings.Contains(a.Stderr, "kesl 12.1.0-1187 (deb)") {
					gigabyteScanned = time.Since(hostileStart)
				} else {
					t.Logf("%s: the 1 GiB image after %s: %s", time.Since(hostileStart).Round(time.Second), a.took, a.Result)
				}
			}
		default:
		}
		if gigabyteScanned > 0 || time.Since(hostileStart) > 2*time.Minute || t.Failed() {
			break
		}
	}
	<-hostileDone
	peak := sampler.stop()
	total := time.Since(hostileStart)

	for key, a := range hostile {
		t.Logf("%s: first answer after %s: exit %d %s", key, a.took.Round(time.Millisecond), a.ExitCode, strings.TrimSpace(a.Stderr))
		if a.took > chart.timeout {
			t.Errorf("%s: answered after %s, past the webhook timeout %s", key, a.took, chart.timeout)
		}
	}
	if a := hostile["million/Deny"]; !denied(*a) {
		t.Errorf("the 1,000,000-file image was admitted under onScanError: Deny: %s", a.Result)
	} else {
		containsAll(t, "the denial of the 1,000,000-file image", a.Stderr, "could not be checked (TooLarge)",
			fmt.Sprintf("more than %d files", chart.maxFiles), "raise --max-image-files", "onScanError: Deny")
	}
	if a := hostile["million/Allow"]; a.ExitCode != 0 {
		t.Errorf("the 1,000,000-file image was refused under onScanError: Allow: %s", a.Result)
	} else {
		containsAll(t, "the admission of the 1,000,000-file image", a.Stderr, "Warning:", "not checked (TooLarge)", "onScanError: Allow")
	}
	// 1 GiB is under the chart's --max-image-bytes (4 GiB): it is scanned, within the budget or
	// in the background, and the retry is denied for what the scan found.
	if gigabyteScanned == 0 {
		t.Errorf("the 1 GiB image was never denied for the kesl in it (its first answer: %s)", hostile["gigabyte/Deny"].Result)
	} else {
		t.Logf("the 1 GiB image is denied for kesl %s after it was first named", gigabyteScanned.Round(time.Millisecond))
	}
	if n := reg.BlobGets("hostile/gigabyte"); n < 4 {
		t.Errorf("the manager fetched %d blobs of the 1 GiB image, want its 4 layers at least", n)
	}

	slices.Sort(small)
	t.Logf("small-image admissions while the hostile scans ran (%s): %d, median %s, max %s (kubectl wall time)",
		total.Round(time.Second), len(small), small[len(small)/2].Round(time.Millisecond), small[len(small)-1].Round(time.Millisecond))
	if worst := small[len(small)-1]; worst > chart.timeout {
		t.Errorf("a small image waited %s for admission, past the webhook timeout %s", worst, chart.timeout)
	}

	st := cg.stats(t)
	t.Logf("memory: limit %d MiB; cgroup peak anonymous memory (total_rss) %d MiB, max_usage_in_bytes %d MiB (page cache included), failcnt %d, oom_kill %d; manager VmHWM %d MiB (with file pages of its binary charged elsewhere)",
		chart.memLimit>>20, peak.rss>>20, st.maxUsage>>20, st.failcnt, st.oomKill, st.hwm>>20)
	if st.oomKill != 0 {
		t.Errorf("the kernel OOM-killed %d process(es) in the manager's cgroup", st.oomKill)
	}
	if got := cg.procs(t); !slices.Equal(got, []int{pid}) {
		t.Errorf("the manager's cgroup holds %v, want the same manager %d still running", got, pid)
	}
	// The kernel holds usage (page cache included) to the limit by reclaiming; what it cannot
	// reclaim is anonymous memory, and that must stay clear of the limit, not merely survive it.
	if peak.rss >= chart.memLimit*9/10 {
		t.Errorf("the manager's anonymous memory peaked at %d MiB, within 10%% of the limit %d MiB", peak.rss>>20, chart.memLimit>>20)
	}
}

// chartManager is what the chart's Deployment sets for the manager, read from helm template.
type chartManager struct {
	memLimit int64
	timeout  time.Duration
	maxFiles int64
	scanArgs []string
}

func renderChartManager(t *testing.T) chartManager {
	t.Helper()
	r := helm(t, "template", "embargo", filepath.Join(root, "charts", "embargo"), "--namespace", "embargo-system")
	if r.ExitCode != 0 {
		t.Fatalf("helm template: %s", r)
	}
	objs, err := devcluster.SplitManifests(r.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	dep, vwc := find(objs, "Deployment"), find(objs, "ValidatingWebhookConfiguration")
	if dep == nil || vwc == nil {
		t.Fatalf("the chart renders no Deployment or ValidatingWebhookConfiguration: %v", kinds(objs))
	}
	ct := get(dep.Map, "spec", "template", "spec", "containers", 0)
	var out chartManager
	q, err := resource.ParseQuantity(fmt.Sprint(get(ct, "resources", "limits", "memory")))
	if err != nil {
		t.Fatalf("the manager's memory limit: %v", err)
	}
	out.memLimit = q.Value()
	gomemlimit := false
	for _, e := range get(ct, "env").([]any) {
		if get(e, "name") == "GOMEMLIMIT" {
			gomemlimit = get(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory"
		}
	}
	if !gomemlimit {
		t.Errorf("the chart does not set GOMEMLIMIT from limits.memory: %v", get(ct, "env"))
	}
	for _, a := range strs(get(ct, "args")) {
		for _, p := range []string{"--scan-", "--max-", "--layer-cache-", "--tag-ttl=", "--cache-size=", "--platforms=", "--tmp-dir=", "--zap-log-level="} {
			if strings.HasPrefix(a, p) {
				out.scanArgs = append(out.scanArgs, a)
			}
		}
		if v, ok := strings.CutPrefix(a, "--max-image-files="); ok {
			if out.maxFiles, err = strconv.ParseInt(v, 10, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	hooks, _ := get(vwc.Map, "webhooks").([]any)
	for i := range hooks {
		if get(hooks, i, "name") == "core.workloads.embargo.dev" {
			n, _ := strconv.Atoi(fmt.Sprint(get(hooks, i, "timeoutSeconds")))
			out.timeout = time.Duration(n) * time.Second
		}
	}
	if out.memLimit <= 0 || out.timeout <= 0 || out.maxFiles <= 0 {
		t.Fatalf("the chart's manager: memory limit %d, pod webhook timeout %s, --max-image-files %d", out.memLimit, out.timeout, out.maxFiles)
	}
	return out
}

// args are the chart's scan flags with its /scratch volume at scratch.
func (c chartManager) args(scratch string) []string {
	var out []string
	for _, a := range c.scanArgs {
		if k, v, ok := strings.Cut(a, "="); ok && (v == "/scratch" || strings.HasPrefix(v, "/scratch/")) {
			a = k + "=" + scratch + strings.TrimPrefix(v, "/scratch")
		}
		out = append(out, a)
	}
	return out
}

func podManifest(ns, name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  containers:
  - name: app
    image: %s
`, name, ns, image)
}

// gigabyteLayers write an image of total bytes in n layers of incompressible files — half of
// each an ELF-headed executable, which the scanner holds in memory up to a point — on a Debian
// base whose last layer installs kesl.
func gigabyteLayers(total int64, n int) []func(*tar.Writer) error {
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{'e', 'm', 'b', 'a', 'r', 'g', 'o'}))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	per := total / int64(n)
	var layers []func(*tar.Writer) error
	for i := range n {
		layers = append(layers, func(tw *tar.Writer) error {
			var files []testimage.File
			switch i {
			case 0:
				files = []testimage.File{testimage.OSRelease("debian", "12"), testimage.DpkgStatus(
					testimage.Deb{Name: "base-files", Version: "12.4+deb12u5", Maintainer: testimage.DebianMaintainer})}
			case n - 1:
				files = []testimage.File{testimage.DpkgStatus(
					testimage.Deb{Name: "base-files", Version: "12.4+deb12u5", Maintainer: testimage.DebianMaintainer},
					testimage.Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: testimage.KasperskyMaintainer})}
			}
			for _, f := range files {
				if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: 0o644, Size: int64(len(f.Content)), Typeflag: tar.TypeReg}); err != nil {
					return err
				}
				if _, err := tw.Write(f.Content); err != nil {
					return err
				}
			}
			for j, name := range []string{"libhuge.so", "assets.bin"} {
				size := per / 2
				if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("opt/huge/%d/%s", i, name), Mode: 0o755, Size: size, Typeflag: tar.TypeReg}); err != nil {
					return err
				}
				for off := int64(0); off < size; off += int64(len(block)) {
					b := block[:min(int64(len(block)), size-off)]
					if j == 0 && off == 0 {
						b = append([]byte("\x7fELF\x02\x01\x01"), b[7:]...)
					}
					if _, err := tw.Write(b); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	return layers
}

// memoryCgroup is a cgroup v1 memory controller directory of this test's own, below the cgroup
// the test runs in, as a container's is below its pod's.
type memoryCgroup struct{ dir string }

const cgroupPrefix = "embargo-survive-"

func newMemoryCgroup(t *testing.T, limit int64) *memoryCgroup {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	var own string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			own = f[2]
		}
	}
	parent := filepath.Join("/sys/fs/cgroup/memory", own)
	if own == "" || os.Geteuid() != 0 {
		t.Skipf("needs root and a cgroup v1 memory controller (memory cgroup %q, euid %d)", own, os.Geteuid())
	}
	if _, err := os.Stat(filepath.Join(parent, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller at %s: %v", parent, err)
	}
	// A test killed before its cleanup leaves an empty cgroup named after its pid: remove it.
	stale, _ := filepath.Glob(filepath.Join(parent, cgroupPrefix+"*"))
	for _, d := range stale {
		if p, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), cgroupPrefix)); err == nil && syscall.Kill(p, 0) == syscall.ESRCH {
			_ = syscall.Rmdir(d)
		}
	}
	cg := &memoryCgroup{dir: filepath.Join(parent, fmt.Sprintf("%s%d", cgroupPrefix, os.Getpid()))}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatalf("creating the manager's memory cgroup: %v", err)
	}
	// Registered first, so it runs last: after the manager in it has been stopped.
	t.Cleanup(func() {
		var err error
		for range 50 {
			if err = syscall.Rmdir(cg.dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			for _, p := range cg.procs(t) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("removing cgroup %s: %v", cg.dir, err)
	})
	if err := os.WriteFile(filepath.Join(cg.dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Fatalf("setting the memory limit: %v", err)
	}
	// No swap: the limit is on memory alone, as on a node without swap.
	_ = os.WriteFile(filepath.Join(cg.dir, "memory.swappiness"), []byte("0"), 0o644)
	return cg
}

func (cg *memoryCgroup) read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(cg.dir, name))
	return strings.TrimSpace(string(b)), err
}

func (cg *memoryCgroup) procs(t *testing.T) []int {
	s, err := cg.read("cgroup.procs")
	if err != nil {
		t.Errorf("reading cgroup.procs: %v", err)
		return nil
	}
	var out []int
	for _, f := range strings.Fields(s) {
		p, _ := strconv.Atoi(f)
		out = append(out, p)
	}
	return out
}

// keyed reads "key value" lines (memory.stat, memory.oom_control, /proc/pid/status).
func keyed(s, key string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.TrimSuffix(f[0], ":") == key {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			if len(f) == 3 && f[2] == "kB" {
				v <<= 10
			}
			return v
		}
	}
	return -1
}

type cgroupStats struct {
	maxUsage, failcnt, oomKill, hwm int64
}

func (cg *memoryCgroup) stats(t *testing.T) cgroupStats {
	t.Helper()
	var st cgroupStats
	for name, dst := range map[string]*int64{"memory.max_usage_in_bytes": &st.maxUsage, "memory.failcnt": &st.failcnt} {
		s, err := cg.read(name)
		if err != nil {
			t.Fatal(err)
		}
		*dst, _ = strconv.ParseInt(s, 10, 64)
	}
	s, err := cg.read("memory.oom_control")
	if err != nil {
		t.Fatal(err)
	}
	if st.oomKill = keyed(s, "oom_kill"); st.oomKill < 0 {
		st.oomKill = keyed(s, "under_oom")
	}
	procs := cg.procs(t)
	if len(procs) == 1 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", procs[0]))
		if err != nil {
			t.Fatal(err)
		}
		st.hwm = keyed(string(b), "VmHWM")
	}
	return st
}

type memorySampler struct {
	once sync.Once
	done chan struct{}
	out  chan memoryPeak
}

type memoryPeak struct{ rss, usage int64 }

// sample records the cgroup's peak anonymous memory (memory.stat total_rss: what the kernel
// cannot reclaim without swap) and usage every interval until stop.
func (cg *memoryCgroup) sample(every time.Duration) *memorySampler {
	s := &memorySampler{done: make(chan struct{}), out: make(chan memoryPeak, 1)}
	go func() {
		var peak memoryPeak
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if st, err := cg.read("memory.stat"); err == nil {
				peak.rss = max(peak.rss, keyed(st, "total_rss"))
			}
			if u, err := cg.read("memory.usage_in_bytes"); err == nil {
				v, _ := strconv.ParseInt(u, 10, 64)
				peak.usage = max(peak.usage, v)
			}
			select {
			case <-s.done:
				s.out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *memorySampler) stop() memoryPeak {
	var p memoryPeak
	s.once.Do(func() {
		close(s.done)
		p = <-s.out
	})
	return p
}
