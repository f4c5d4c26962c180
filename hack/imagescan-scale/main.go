// Command imagescan-scale measures what N ImageScans cost a cluster: etcd's database size and
// the manager's memory. It starts the dev cluster (envtest's kube-apiserver and etcd, the chart,
// the real bin/manager; internal/test/devcluster), measures etcd and the manager idle (the baseline),
// writes N ImageScans exactly as the manager's ImageScans controller writes them (same code,
// same rules), waits until the manager has seen every one (its embargo_images{phase="Scanned"}
// gauge reaches N) and has settled, and measures again.
//
// Each ImageScan holds the lean record of a Debian-like image: packages drawn from this
// machine's dpkg database (real names, versions and maintainers, syft-style guessed CPEs and
// purls), between -min and -max packages per image (uniform), over five layers.
//
//	hack/imagescan-scale.sh [-n 5000] [-min 200] [-max 1500]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/manager"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imagescan-scale:", err)
		os.Exit(1)
	}
}

type deb struct{ name, version, arch, maintainer string }

func run() error {
	n := flag.Int("n", 5000, "ImageScans to create")
	minPkgs := flag.Int("min", 200, "fewest packages in one image")
	maxPkgs := flag.Int("max", 1500, "most packages in one image")
	root := flag.String("root", ".", "repository root")
	etcdLimit := flag.Float64("etcd-mib", 200, "fail above this etcd database size (MiB)")
	rssLimit := flag.Float64("rss-mib", 300, "fail above this manager RSS (MiB)")
	dir := flag.String("dir", "", "keep the cluster's kubeconfig and manager log here (default: a temporary directory, removed)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	debs, err := hostDebs("/var/lib/dpkg/status")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imagescan-scale: %d ImageScans of %d-%d packages each (drawn from this machine's %d dpkg packages)\n", *n, *minPkgs, *maxPkgs, len(debs))

	c, err := devcluster.Start(ctx, devcluster.Options{Root: *root, Dir: *dir, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	m := c.Managers[0]

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg := *c.Config
	cfg.QPS, cfg.Burst = 200, 400
	k8s, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cat := catalog.Default()
	writer := controllers.NewImageScans(k8s, manager.NewRules(&policy.Set{Reader: k8s, Catalog: cat}, cat), cat.Version, nil)

	time.Sleep(5 * time.Second) // the manager's start-up allocations settle before the baseline
	base, err := measure(ctx, c, m.Pid())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "baseline: %s\n", base)

	start := time.Now()
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		bytesIn atomic.Int64
		firstEr atomic.Pointer[error]
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || ctx.Err() != nil {
					return
				}
				rec := record(rnd, debs, i, *minPkgs+rnd.IntN(*maxPkgs-*minPkgs+1))
				enc, err := cache.Encode(rec)
				if err != nil {
					firstEr.CompareAndSwap(nil, &err)
					return
				}
				bytesIn.Add(int64(len(enc)))
				if err := writer.Write(ctx, rec); err != nil {
					firstEr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstEr.Load(); e != nil {
		return *e
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	wrote := time.Since(start)

	// positive signal: the manager's informer and controller have every ImageScan
	deadline := time.Now().Add(3 * time.Minute)
	for {
		v, _, err := m.Metric(ctx, `embargo_images{phase="Scanned"}`)
		if err == nil && int(v) >= *n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager counts %v Scanned ImageScans after 3m, want %d (metric error %v); manager log:\n%s", v, *n, err, m.LogTail(30))
		}
		time.Sleep(2 * time.Second)
	}
	seen := time.Since(start)
	time.Sleep(10 * time.Second) // the controller's queue drains: its recomputes find nothing to write
	writes, _, err := m.Metric(ctx, "embargo_imagescan_status_writes_total")
	if err != nil {
		return err
	}
	after, err := measure(ctx, c, m.Pid())
	if err != nil {
		return err
	}
	avg := bytesIn.Load() / int64(*n)
	fmt.Printf("IMAGESCAN-SCALE n=%d records_avg_bytes=%d records_total_mib=%.1f write_s=%.1f seen_by_manager_s=%.1f manager_imagescan_writes=%.0f "+
		"etcd_db_mib=%.1f etcd_db_in_use_mib=%.1f etcd_db_baseline_mib=%.1f manager_rss_mib=%.1f manager_peak_rss_mib=%.1f manager_rss_baseline_mib=%.1f\n",
		*n, avg, float64(bytesIn.Load())/(1<<20), wrote.Seconds(), seen.Seconds(), writes,
		mib(after.etcdDB), mib(after.etcdInUse), mib(base.etcdDB), mib(after.rss), mib(after.peakRSS), mib(base.rss))
	var over []string
	if mib(after.etcdDB) > *etcdLimit {
		over = append(over, fmt.Sprintf("etcd database %.1f MiB > %.0f MiB", mib(after.etcdDB), *etcdLimit))
	}
	if mib(after.peakRSS) > *rssLimit {
		over = append(over, fmt.Sprintf("manager peak RSS %.1f MiB > %.0f MiB", mib(after.peakRSS), *rssLimit))
	}
	if len(over) > 0 {
		return errors.New(strings.Join(over, "; "))
	}
	return nil
}

func mib(b float64) float64 { return b / (1 << 20) }

type sample struct{ etcdDB, etcdInUse, rss, peakRSS float64 }

func (s sample) String() string {
	return fmt.Sprintf("etcd db %.1f MiB (in use %.1f MiB), manager RSS %.1f MiB (peak %.1f MiB)", mib(s.etcdDB), mib(s.etcdInUse), mib(s.rss), mib(s.peakRSS))
}

func measure(ctx context.Context, c *devcluster.Cluster, pid int) (sample, error) {
	var s sample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.EtcdMetricsURL(), nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	var okDB, okUse bool
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := value(line, "etcd_mvcc_db_total_size_in_bytes"); ok {
			s.etcdDB, okDB = v, true
		}
		if v, ok := value(line, "etcd_mvcc_db_total_size_in_use_in_bytes"); ok {
			s.etcdInUse, okUse = v, true
		}
	}
	if !okDB || !okUse {
		return s, fmt.Errorf("etcd's /metrics has no etcd_mvcc_db_total_size_in_bytes / _in_use_in_bytes")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := procKiB(line, "VmRSS:"); ok {
			s.rss = v
		}
		if v, ok := procKiB(line, "VmHWM:"); ok {
			s.peakRSS = v
		}
	}
	return s, nil
}

func value(line, name string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, name+" ")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	return v, err == nil
}

func procKiB(line, key string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, key)
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v * 1024, err == nil
}

// hostDebs reads the installed packages of a dpkg status file.
func hostDebs(file string) ([]deb, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("this measurement draws packages from the machine's dpkg database: %w", err)
	}
	var out []deb
	for para := range strings.SplitSeq(string(data), "\n\n") {
		var d deb
		installed := false
		sc := bufio.NewScanner(bytes.NewReader([]byte(para)))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				d.name = v
			case "Version":
				d.version = v
			case "Architecture":
				d.arch = v
			case "Maintainer":
				d.maintainer = v
			case "Status":
				installed = v == "install ok installed"
			}
		}
		if installed && d.name != "" {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no installed package", file)
	}
	return out, nil
}

// record is image i's lean record: pkgs packages drawn from debs, every version rebuilt for
// this image so no two images share one, with syft-style purls and guessed CPEs.
func record(rnd *rand.Rand, debs []deb, i, pkgs int) *cache.Record {
	layers := make([]string, 5)
	for l := range layers {
		layers[l] = fmt.Sprintf("sha256:%016x%016x%016x%016x", rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64())
	}
	inv := match.Inventory{Platform: "linux/amd64"}
	for p := range pkgs {
		d := debs[rnd.IntN(len(debs))]
		version := fmt.Sprintf("%s+b%d", d.version, i)
		inv.Packages = append(inv.Packages, match.Package{
			Name: d.name, Version: version, Type: "deb",
			PURL:   fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=debian-12", d.name, version, d.arch),
			Fields: []match.Field{{Name: "dpkg Maintainer", Value: d.maintainer}},
			CPEs:   guessCPEs(d.name),
			Layer:  layers[p*len(layers)/pkgs],
		})
	}
	digest := fmt.Sprintf("sha256:%016x%016x%016x%016x", rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), uint64(i))
	rec := &cache.Record{
		Digest: digest, Image: "registry.example/scale/app-" + strconv.Itoa(i) + "@" + digest,
		Platforms: []string{"linux/amd64"}, Inventories: []match.Inventory{inv}, PackageCount: pkgs,
		ScannedAt: time.Now().UTC().Truncate(time.Second), ScannerVersion: "scale",
	}
	return rec.Trim(catalogPaths)
}

// catalogPaths are the path rules records keep files for (the catalog's; the run adds no
// policy), so every record answers them and its ImageScan is Ready.
var catalogPaths = catalog.Default().Paths()

// guessCPEs spells CPEs as syft guesses them for a deb: vendors are the name and its
// dash-prefixes, with dashes or underscores; products the name with dashes or underscores.
func guessCPEs(name string) []match.CPE {
	products := []string{name}
	if u := strings.ReplaceAll(name, "-", "_"); u != name {
		products = append(products, u)
	}
	var vendors []string
	parts := strings.Split(name, "-")
	for k := len(parts); k >= 1; k-- {
		v := strings.Join(parts[:k], "-")
		vendors = append(vendors, v)
		if u := strings.ReplaceAll(v, "-", "_"); u != v {
			vendors = append(vendors, u)
		}
	}
	var out []match.CPE
	for _, v := range vendors {
		for _, p := range products {
			out = append(out, match.CPE{Vendor: v, Product: p})
		}
	}
	return out
}
