package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/embargo-dev/embargo/internal/test/testimage"
)

// A node cluster is a real one-node Kubernetes cluster built from source on this machine:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the host, and a node made
// of kubelet, containerd 2.x, runc and the CNI bridge plugin, with kube-proxy for Services.
// Embargo runs in it the way users run it: the chart installed with helm, the manager as Pods
// from the image `make image` built, the webhook reached through its Service.
//
// Everything lives on this machine. The node's network is one Linux bridge with a private /24
// (NodeBridge, NodeHostIP); Pods get addresses on it from CNI host-local IPAM in network
// namespaces containerd creates under the node's directory, and iptables FORWARD rules drop
// anything that would leave the bridge for another interface, so nothing is routed off the
// host. The API server, the registry and the kubelet listen on the bridge's host address, which
// containerd on the host and the manager inside its Pod reach alike (a Pod's 127.0.0.1 is the
// Pod itself). The API server dials webhook endpoints directly (--enable-aggregator-routing):
// admission keeps working whatever kube-proxy does, and a Pod that stops being Ready leaves the
// endpoint list the API server picks from at once. The manager reaches the API server through
// the `kubernetes` Service's ClusterIP, which kube-proxy (iptables mode) translates to
// NodeHostIP.
//
// Only one node cluster runs on a machine at a time (names and addresses are fixed, and a lock
// file says who holds them). StartNode first removes whatever a killed run left behind; Stop
// removes containers, mounts, network namespaces, cgroups, iptables rules, the bridge, kernel
// settings the kubelet changed, and the directory.
const (
	NodeBridge     = "embargo0"
	NodeHostIP     = "10.213.0.1"
	NodePodCIDR    = "10.213.0.0/24"
	NodeServiceIP  = "10.214.0.1" // the `kubernetes` Service
	nodeSvcCIDR    = "10.214.0.0/24"
	nodeName       = "embargo-node"
	nodeDir        = "/run/embargo-devnode"
	nodeLock       = "/run/embargo-devnode.lock"
	nodeCgroupRoot = "embargo-node"
	// PauseImage is the sandbox image, in the node's registry.
	pauseRepo = "embargo-dev/pause:1"
)

// NodeOptions configure StartNode.
type NodeOptions struct {
	// Root is the repository root; Assets the directory hack/envtest-assets.sh printed (default
	// $KUBEBUILDER_ASSETS); Pause is a static pause binary (default: built from hack/pause).
	Root, Assets, Pause string
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// Node is a running node cluster. Its Cluster runs kubectl and helm against it.
type Node struct {
	*Cluster
	// Server is the API server's URL; RegistryHost serves images on the bridge (plain HTTP).
	Server string
	// PauseImage runs in every Pod sandbox; PauseBinary is the program it holds, for images
	// that need something to run.
	PauseImage, PauseBinary string

	procs                              []*proc
	lock                               *os.File
	sysctls                            map[string]string
	ctrdSock, caFile                   string
	kubeletKubeconfig, proxyKubeconfig string
}

// StartNode builds the cluster and returns once the node is Ready.
func StartNode(ctx context.Context, opts NodeOptions) (_ *Node, err error) {
	if opts.Root == "" {
		if opts.Root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	if opts.Assets == "" {
		opts.Assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := checkNodeHost(opts.Assets); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(nodeLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another dev node runs on this machine (%s is locked; `make demo` running?): %w", nodeLock, err)
	}
	n := &Node{lock: lock, ctrdSock: filepath.Join(nodeDir, "containerd.sock")}
	n.Cluster = &Cluster{
		Dir: nodeDir, Namespace: DefaultNamespace,
		opts:       Options{Root: opts.Root, Assets: opts.Assets, Log: opts.Log},
		kubectlBin: filepath.Join(opts.Assets, "kubectl"),
		helmBin:    filepath.Join(opts.Assets, "helm"),
		ownReg:     true,
	}
	n.Cluster.stopNode = n.teardown
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	n.logf("removing what an earlier node left behind")
	n.cleanup()
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, err
	}
	if err := n.network(); err != nil {
		return nil, fmt.Errorf("node network: %w", err)
	}

	if n.Registry, err = testimage.NewRegistry(testimage.WithAddr(NodeHostIP + ":0")); err != nil {
		return nil, err
	}
	if n.PauseBinary = opts.Pause; n.PauseBinary == "" {
		n.PauseBinary = filepath.Join(nodeDir, "pause")
		if r := Run(ctx, opts.Root, append(os.Environ(), "CGO_ENABLED=0"), "", "go", "build", "-trimpath", "-o", n.PauseBinary, "./hack/pause"); r.ExitCode != 0 {
			return nil, fmt.Errorf("building hack/pause: %s", r)
		}
	}
	pause, err := RunnableImage(nil, n.PauseBinary)
	if err != nil {
		return nil, err
	}
	if _, err := n.Registry.Push(pauseRepo, pause); err != nil {
		return nil, err
	}
	n.PauseImage = n.Registry.Ref(pauseRepo)

	if err := n.controlPlane(ctx); err != nil {
		return nil, err
	}
	if err := n.node(ctx); err != nil {
		return nil, err
	}
	n.logf("node %s is Ready; API server %s, registry %s", nodeName, n.Server, n.Registry.Host)
	return n, nil
}

// checkNodeHost says what this machine lacks for a node, instead of failing deep inside kubelet.
func checkNodeHost(assets string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (kubelet, containerd and runc need it)")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl", "helm", "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			missing = append(missing, filepath.Join(assets, b)+" (run hack/envtest-assets.sh)")
		}
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", "/usr/sbin/iptables", "/usr/sbin/ip"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p+" (Debian's containernetworking-plugins, iptables, iproute2: hack/envtest-assets.sh installs them)")
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if _, err2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err2 != nil {
			missing = append(missing, "cgroups (neither v1 memory nor v2 mounted at /sys/fs/cgroup)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this machine cannot run a dev node; missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

func (n *Node) assets(b string) string { return filepath.Join(n.opts.Assets, b) }

// network creates the bridge and the FORWARD rules that keep Pod traffic on it, and records
// the kernel settings the kubelet and kube-proxy may change, for Stop to restore.
func (n *Node) network() error {
	n.sysctls = map[string]string{}
	for _, k := range []string{"net/ipv4/ip_forward", "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet"} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			n.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	if err := os.WriteFile(filepath.Join(nodeDir, "sysctls"), []byte(formatSysctls(n.sysctls)), 0o600); err != nil {
		return err
	}
	// Paths containerd, the kubelet and CNI use whatever their configuration says (shim
	// sockets, device plugins, the CNI result cache): Stop removes those this node created.
	var created []string
	for _, p := range []string{"/run/containerd", "/var/lib/kubelet", "/var/lib/cni"} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			created = append(created, p)
		}
	}
	if err := os.WriteFile(filepath.Join(nodeDir, "host-paths"), []byte(strings.Join(created, "\n")), 0o600); err != nil {
		return err
	}
	out, _ := exec.Command("ip", "-4", "route", "show").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "10.213.") || strings.HasPrefix(l, "10.214.") {
			return fmt.Errorf("this machine already routes %q; the dev node needs 10.213.0.0/24 and 10.214.0.0/24", l)
		}
	}
	for _, args := range [][]string{
		{"ip", "link", "add", NodeBridge, "type", "bridge"},
		{"ip", "addr", "add", NodeHostIP + "/24", "dev", NodeBridge},
		{"ip", "link", "set", NodeBridge, "up"},
		{"iptables", "-w", "-I", "FORWARD", "1", "-i", NodeBridge, "!", "-o", NodeBridge, "-j", "DROP", "-m", "comment", "--comment", "embargo-devnode"},
		{"iptables", "-w", "-I", "FORWARD", "1", "-o", NodeBridge, "!", "-i", NodeBridge, "-j", "DROP", "-m", "comment", "--comment", "embargo-devnode"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	cni := filepath.Join(nodeDir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	// Pods reach the bridge's /24 (the host address: API server, registry) directly and the
	// Service range through the host, where kube-proxy translates it; they have no default
	// route, ipMasq is off, and the FORWARD rules above drop anything else.
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "embargo-devnode",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "rangeStart": "10.213.0.10", "gateway": %q}]],
              "routes": [{"dst": %q, "gw": %q}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, NodeBridge, NodePodCIDR, NodeHostIP, nodeSvcCIDR, NodeHostIP, filepath.Join(nodeDir, "cni-ipam"))
	return os.WriteFile(filepath.Join(cni, "10-embargo.conflist"), []byte(conf), 0o644)
}

func formatSysctls(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return b.String()
}

// controlPlane starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler with
// certificates from a new CA, and writes the admin kubeconfig.
func (n *Node) controlPlane(ctx context.Context) error {
	p, err := newPKI(filepath.Join(nodeDir, "pki"))
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if _, err := n.spawn("etcd", n.assets("etcd"), nil,
		"--data-dir="+filepath.Join(nodeDir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", ports[1]),
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	apiPort := ports[2]
	n.Server = fmt.Sprintf("https://%s:%d", NodeHostIP, apiPort)
	crt, key, err := p.issue("apiserver", "kube-apiserver", nil, NodeHostIP, NodeServiceIP, "127.0.0.1",
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return err
	}
	kcrt, kkey, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return err
	}
	saKey, saPub, err := p.serviceAccountKey()
	if err != nil {
		return err
	}
	if _, err := n.spawn("kube-apiserver", n.assets("kube-apiserver"), nil,
		"--etcd-servers="+etcdURL,
		"--bind-address="+NodeHostIP, "--advertise-address="+NodeHostIP, fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file="+crt, "--tls-private-key-file="+key, "--client-ca-file="+p.CAFile,
		"--kubelet-client-certificate="+kcrt, "--kubelet-client-key="+kkey,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+nodeSvcCIDR,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--enable-aggregator-routing=true", "--allow-privileged=true",
		"--profiling=false", "--v=1"); err != nil {
		return err
	}
	if n.Kubeconfig, err = p.kubeconfig("admin", n.Server, "embargo-admin", "system:masters"); err != nil {
		return err
	}
	if n.Config, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig); err != nil {
		return err
	}
	n.logf("waiting for kube-apiserver at %s", n.Server)
	if err := Poll(ctx, 90*time.Second, 250*time.Millisecond, func() (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		return n.Kubectl(ctx, "", "get", "--raw", "/readyz").ExitCode == 0, nil
	}); err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w\n%s", err, n.ProcLog("kube-apiserver", 30))
	}

	kcm, err := p.kubeconfig("controller-manager", n.Server, "system:kube-controller-manager")
	if err != nil {
		return err
	}
	sched, err := p.kubeconfig("scheduler", n.Server, "system:kube-scheduler")
	if err != nil {
		return err
	}
	cp, err := freePorts(2)
	if err != nil {
		return err
	}
	if _, err := n.spawn("kube-controller-manager", n.assets("kube-controller-manager"), nil,
		"--kubeconfig="+kcm, "--authentication-kubeconfig="+kcm, "--authorization-kubeconfig="+kcm,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", cp[0]),
		"--root-ca-file="+p.CAFile, "--service-account-private-key-file="+saKey,
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--controllers=*,-node-ipam-controller",
		"--v=1"); err != nil {
		return err
	}
	if _, err := n.spawn("kube-scheduler", n.assets("kube-scheduler"), nil,
		"--kubeconfig="+sched, "--authentication-kubeconfig="+sched, "--authorization-kubeconfig="+sched,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", cp[1]), "--leader-elect=false", "--v=1"); err != nil {
		return err
	}

	n.kubeletKubeconfig, err = p.kubeconfig("kubelet", n.Server, "system:node:"+nodeName, "system:nodes")
	if err != nil {
		return err
	}
	n.proxyKubeconfig, err = p.kubeconfig("kube-proxy", n.Server, "system:kube-proxy")
	if err != nil {
		return err
	}
	n.caFile = p.CAFile
	return nil
}

// node starts containerd, the kubelet and kube-proxy, and waits for the Node to be Ready and
// the controllers to have published what Pods need.
func (n *Node) node(ctx context.Context) error {
	if err := n.TrustRegistry(n.Registry.Host); err != nil {
		return err
	}
	ctrdConf := filepath.Join(nodeDir, "containerd.toml")
	conf := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj
  # (the sandbox asks for -998): keep every container's at or above containerd's.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[8]q
        SystemdCgroup = false
        Root = %[9]q
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %[5]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[6]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[7]q
`, filepath.Join(nodeDir, "containerd", "root"), filepath.Join(nodeDir, "containerd", "state"), n.ctrdSock,
		n.ctrdSock+".ttrpc", filepath.Join(nodeDir, "cni"), n.PauseImage, filepath.Join(nodeDir, "certs.d"), n.assets("runc"), filepath.Join(nodeDir, "runc"))
	if err := os.WriteFile(ctrdConf, []byte(conf), 0o644); err != nil {
		return err
	}
	path := n.opts.Assets + ":/usr/sbin:/usr/bin:/sbin:/bin"
	if _, err := n.spawn("containerd", n.assets("containerd"), []string{"PATH=" + path}, "--config="+ctrdConf); err != nil {
		return err
	}
	if err := Poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		return exec.Command(n.assets("ctr"), "--address", n.ctrdSock, "version").Run() == nil, nil
	}); err != nil {
		return fmt.Errorf("containerd not serving: %w\n%s", err, n.ProcLog("containerd", 30))
	}

	if err := n.cgroupRoot(); err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	resolv := filepath.Join(nodeDir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# no DNS: the dev node reaches nothing by name\n"), 0o644); err != nil {
		return err
	}
	kubeletConf := filepath.Join(nodeDir, "kubelet.yaml")
	kc := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine is on cgroup v1, which kubelet 1.35+ refuses unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
failSwapOn: false
resolvConf: %s
podLogsDir: %s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
maxPods: 60
rotateCertificates: false
serverTLSBootstrap: false
shutdownGracePeriod: 0s
`, nodeCgroupRoot, n.ctrdSock, NodeHostIP, ports[0], ports[1], n.caFile, resolv, filepath.Join(nodeDir, "pod-logs"))
	if err := os.WriteFile(kubeletConf, []byte(kc), 0o644); err != nil {
		return err
	}
	if _, err := n.spawn("kubelet", n.assets("kubelet"), []string{"PATH=" + path},
		"--config="+kubeletConf, "--kubeconfig="+n.kubeletKubeconfig,
		"--root-dir="+filepath.Join(nodeDir, "kubelet"), "--cert-dir="+filepath.Join(nodeDir, "kubelet-pki"),
		"--hostname-override="+nodeName, "--node-ip="+NodeHostIP, "--v=1"); err != nil {
		return err
	}
	proxyConf := filepath.Join(nodeDir, "kube-proxy.yaml")
	pc := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: ["%s/32"]
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, n.proxyKubeconfig, nodeName, NodePodCIDR, NodeHostIP, ports[2], ports[3], NodeHostIP)
	if err := os.WriteFile(proxyConf, []byte(pc), 0o644); err != nil {
		return err
	}
	if _, err := n.spawn("kube-proxy", n.assets("kube-proxy"), []string{"PATH=" + path}, "--config="+proxyConf, "--v=1"); err != nil {
		return err
	}

	n.logf("waiting for node %s to be Ready", nodeName)
	var last Result
	if err := Poll(ctx, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		last = n.Kubectl(ctx, "", "get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return strings.TrimSpace(last.Stdout) == "True", nil
	}); err != nil {
		return fmt.Errorf("node not Ready (%s): %w\nkubelet:\n%s\ncontainerd:\n%s", last, err, n.ProcLog("kubelet", 40), n.ProcLog("containerd", 20))
	}
	// Pods need their namespace's default ServiceAccount and kube-root-ca.crt, which the
	// controller manager creates.
	if err := Poll(ctx, time.Minute, 250*time.Millisecond, func() (bool, error) {
		return n.Kubectl(ctx, "", "-n", "default", "get", "serviceaccount/default", "configmap/kube-root-ca.crt").ExitCode == 0, nil
	}); err != nil {
		return fmt.Errorf("kube-controller-manager did not create the default ServiceAccount: %w\n%s", err, n.ProcLog("kube-controller-manager", 30))
	}
	return nil
}

// TrustRegistry lets containerd pull from host over plain HTTP, like the node's own registry:
// for another registry a test serves on NodeHostIP (one with basic auth, say).
func (n *Node) TrustRegistry(host string) error {
	dir := filepath.Join(nodeDir, "certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hosts := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host)
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644)
}

// cgroupRoot creates the cgroup every Pod of the node lives under, in each v1 hierarchy, so
// Stop can find and remove them all.
func (n *Node) cgroupRoot() error {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range ents {
		base := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(base, nodeCgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if e.Name() == "cpuset" { // a new v1 cpuset has no CPUs until given its parent's
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(base, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// spawn starts a host process of the node with its log in the node's directory.
func (n *Node) spawn(name, bin string, env []string, args ...string) (*proc, error) {
	p, err := startProc(name, filepath.Join(nodeDir, name+".log"), bin, env, args...)
	if err != nil {
		return nil, err
	}
	n.logf("started %s (pid %d), log %s", name, p.cmd.Process.Pid, p.log)
	n.procs = append(n.procs, p)
	return p, nil
}

// exited reports the first node process that ended.
func (n *Node) exited() error {
	for _, p := range n.procs {
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}

// ProcLog returns the last lines of a node process's log (kubelet, containerd, ...).
func (n *Node) ProcLog(name string, lines int) string {
	return tailFile(filepath.Join(nodeDir, name+".log"), lines)
}

// teardown runs from Cluster.Stop: Pods first (the kubelet stops their containers), then the
// processes in reverse order, then everything on the host they created.
func (n *Node) teardown() {
	if n.kubeletRunning() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n.Kubectl(ctx, "", "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=true", "--timeout=25s")
		cancel()
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.procs[i].stop(10 * time.Second)
	}
	if n.Registry != nil {
		n.Registry.Close()
		n.Registry = nil
	}
	n.cleanup()
	if n.lock != nil {
		_ = syscall.Flock(int(n.lock.Fd()), syscall.LOCK_UN)
		n.lock.Close()
		n.lock = nil
	}
}

func (n *Node) kubeletRunning() bool {
	for _, p := range n.procs {
		if p.name == "kubelet" {
			select {
			case <-p.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

// cleanup removes everything a node creates on the host, whether or not this process made
// it: it runs before a start too, after a run that was killed.
func (n *Node) cleanup() {
	// Container processes: everything in the node's cgroups, and containerd's shims.
	killCgroupTree()
	killProcs(func(cmdline string) bool {
		return strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, nodeDir)
	})
	// kube-proxy's iptables chains; then our FORWARD rules, the bridge and the veths on it.
	if _, err := os.Stat(n.assetsOr("kube-proxy")); err == nil {
		_ = exec.Command(n.assetsOr("kube-proxy"), "--cleanup", "--v=0").Run()
	}
	removeKubeChains()
	for _, dir := range [][]string{{"-i", NodeBridge, "!", "-o", NodeBridge}, {"-o", NodeBridge, "!", "-i", NodeBridge}} {
		for range 4 {
			args := append([]string{"-w", "-D", "FORWARD"}, dir...)
			args = append(args, "-j", "DROP", "-m", "comment", "--comment", "embargo-devnode")
			if exec.Command("iptables", args...).Run() != nil {
				break
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "master", NodeBridge).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				_ = exec.Command("ip", "link", "del", strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]).Run()
			}
		}
	}
	_ = exec.Command("ip", "link", "del", NodeBridge).Run()
	// Mounts (rootfs overlays, Pod volumes, network namespaces), deepest first.
	unmountUnder(nodeDir)
	removeCgroupTree()
	// The kubelet's links in /var/log/containers point into the node's directory.
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, nodeDir) {
				_ = os.Remove(p)
			}
		}
	}
	restoreSysctls(filepath.Join(nodeDir, "sysctls"))
	if cached, _ := filepath.Glob("/var/lib/cni/results/embargo-devnode-*"); len(cached) > 0 {
		for _, f := range cached {
			_ = os.Remove(f)
		}
	}
	if b, err := os.ReadFile(filepath.Join(nodeDir, "host-paths")); err == nil {
		for _, p := range strings.Fields(string(b)) {
			_ = os.RemoveAll(p)
		}
	}
	_ = os.RemoveAll(nodeDir)
}

func (n *Node) assetsOr(b string) string {
	if n.opts.Assets == "" {
		return b
	}
	return n.assets(b)
}

// removeKubeChains deletes the KUBE-* chains the kubelet and kube-proxy made (KUBE-FIREWALL,
// the canaries, kube-proxy's service chains: --cleanup leaves the kubelet's), and the rules
// that jump to them, in every table of iptables and ip6tables.
func removeKubeChains() {
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, l := range strings.Split(string(out), "\n") {
				f := strings.Fields(l)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(l, " -j KUBE-"):
					// Rule specs are printed with quotes; split them back as the shell would.
					_ = exec.Command("sh", "-c", bin+" -w -t "+table+" -D "+strings.TrimPrefix(l, "-A ")).Run()
				}
			}
			for _, c := range chains {
				_ = exec.Command(bin, "-w", "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				_ = exec.Command(bin, "-w", "-t", table, "-X", c).Run()
			}
		}
	}
}

func restoreSysctls(file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			_ = os.WriteFile("/proc/sys/"+k, []byte(v), 0o644)
		}
	}
}

func cgroupDirs() []string {
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		d := filepath.Join("/sys/fs/cgroup", e.Name(), nodeCgroupRoot)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func killCgroupTree() {
	for _, root := range cgroupDirs() {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

func removeCgroupTree() {
	for _, root := range cgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children before parents
			for range 20 {
				if err := syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				time.Sleep(50 * time.Millisecond) // killed tasks leave the cgroup asynchronously
			}
		}
	}
}

func killProcs(match func(cmdline string) bool) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && match(strings.ReplaceAll(string(b), "\x00", " ")) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func unmountUnder(dir string) {
	for range 5 {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return
		}
		var points []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				points = append(points, f[4])
			}
		}
		if len(points) == 0 {
			return
		}
		for i := len(points) - 1; i >= 0; i-- {
			_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
		}
	}
}

// freePorts returns n TCP ports on 127.0.0.1 that nobody listens on right now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// ContainerMemory is what the kernel recorded of one container's memory, read on the node.
type ContainerMemory struct {
	// PeakRSS is the largest resident set any of the container's processes reached (VmHWM).
	PeakRSS int64
	// CgroupPeak is the memory cgroup's high-water mark: RSS plus the page cache it was charged
	// (files written to an emptyDir count until reclaimed), so it runs close to Limit under I/O.
	CgroupPeak int64
	// Limit is the cgroup's memory limit, the Pod's resources.limits.memory.
	Limit int64
	// OOMKills counts processes the kernel's OOM killer ended in this cgroup.
	OOMKills int64
}

// ContainerMemory reads the memory cgroup (v1) of the container with this runtime id
// ("containerd://…" as a Pod's status shows it, or the bare id).
func (n *Node) ContainerMemory(containerID string) (ContainerMemory, error) {
	id := containerID[strings.LastIndex(containerID, "/")+1:]
	var dir string
	root := filepath.Join("/sys/fs/cgroup/memory", nodeCgroupRoot)
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			dir = p
			return filepath.SkipAll
		}
		return nil
	})
	if dir == "" {
		return ContainerMemory{}, fmt.Errorf("no memory cgroup for container %s under %s", id, root)
	}
	read := func(f string) int64 {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	m := ContainerMemory{CgroupPeak: read("memory.max_usage_in_bytes"), Limit: read("memory.limit_in_bytes")}
	if b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
				m.OOMKills, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return m, err
	}
	for _, f := range strings.Fields(string(b)) {
		status, err := os.ReadFile(filepath.Join("/proc", f, "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.PeakRSS = max(m.PeakRSS, kb<<10)
			}
		}
	}
	return m, nil
}

// EmptyDir is the host directory behind a Pod's emptyDir volume.
func (n *Node) EmptyDir(podUID, volume string) string {
	return filepath.Join(nodeDir, "kubelet", "pods", podUID, "volumes", "kubernetes.io~empty-dir", volume)
}
