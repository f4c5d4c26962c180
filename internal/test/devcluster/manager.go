package devcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Manager is one bin/manager process on the host.
type Manager struct {
	Name string
	// WebhookPort serves admission over TLS with a certificate for 127.0.0.1; MetricsPort and
	// ProbePort serve plain HTTP on 127.0.0.1.
	WebhookPort, MetricsPort, ProbePort int
	// LogFile has the process's stdout and stderr.
	LogFile string
	// Args are the flags it runs with.
	Args []string

	bin string
	p   *proc
}

func newManager(c *Cluster, i int) (*Manager, error) {
	m := &Manager{Name: fmt.Sprintf("manager-%d", i), bin: filepath.Join(c.opts.BinDir, "manager")}
	for _, p := range []*int{&m.WebhookPort, &m.MetricsPort, &m.ProbePort} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	m.LogFile = filepath.Join(c.Dir, m.Name+".log")
	return m, nil
}

// start runs the process; the webhook configuration's name is known once the chart is rendered.
func (m *Manager) start(c *Cluster) error {
	tmp := filepath.Join(c.Dir, m.Name+"-scratch")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	m.Args = []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--namespace=" + c.Namespace,
		fmt.Sprintf("--webhook-port=%d", m.WebhookPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", m.MetricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", m.ProbePort),
		"--cert-hosts=127.0.0.1",
		"--webhook-configurations=" + c.WebhookConfiguration,
		"--insecure-registries=" + c.Registry.Host,
		"--tmp-dir=" + tmp,
		"--leader-elect=" + strconv.FormatBool(c.opts.Managers > 1),
	}
	m.Args = append(m.Args, c.opts.ManagerArgs...)
	bin, args := m.bin, m.Args
	if cg := c.opts.ManagerCgroup; cg != "" {
		// The shell joins the cgroup, then execs the manager in its own place: same PID, and
		// nothing the manager allocates is charged outside the cgroup.
		args = append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg, bin}, args...)
		bin = "/bin/sh"
	}
	p, err := startProc(m.Name, m.LogFile, bin, c.opts.ManagerEnv, args...)
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// exited returns why the process ended, or nil while it runs.
func (m *Manager) exited() error {
	if m.p == nil {
		return nil
	}
	return m.p.exited()
}

// waitReady waits for /readyz, which turns ready once the serving certificate is loaded and the
// webhook configuration's caBundle patched.
func (m *Manager) waitReady(ctx context.Context, timeout time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", m.ProbePort)
	client := &http.Client{Timeout: 2 * time.Second}
	err := Poll(ctx, timeout, 200*time.Millisecond, func() (bool, error) {
		if err := m.exited(); err != nil {
			return false, err
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready at %s: %w\n%s", m.Name, url, err, m.LogTail(30))
	}
	return nil
}

func (m *Manager) stop() {
	if m.p != nil {
		m.p.stop(10 * time.Second)
	}
}

// Metrics returns the Prometheus text exposition of the process.
func (m *Manager) Metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", m.MetricsPort), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics of %s: %s", m.Name, resp.Status)
	}
	return string(b), nil
}

// Metric sums the samples of one metric (every label set); found is false when it is absent.
func (m *Manager) Metric(ctx context.Context, name string) (sum float64, found bool, err error) {
	text, err := m.Metrics(ctx)
	if err != nil {
		return 0, false, err
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndex(rest, "}"); i >= 0 {
			rest = rest[i+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
}

// Logs returns the process's whole log.
func (m *Manager) Logs() string {
	b, err := os.ReadFile(m.LogFile)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// LogTail returns the last n lines of the log.
func (m *Manager) LogTail(n int) string { return tailFile(m.LogFile, n) }

// Pid is the process id, 0 before start.
func (m *Manager) Pid() int {
	if m.p == nil {
		return 0
	}
	return m.p.cmd.Process.Pid
}
