package devcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is a host process a dev cluster runs (a manager; a node's etcd, kubelet, containerd, ...)
// with its stdout and stderr in a log file.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// startProc starts bin with env added to this process's environment.
func startProc(name, logFile, bin string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, log: logFile, done: make(chan struct{})}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		if p.err == nil {
			p.err = errors.New("exited")
		}
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited says why the process ended, with the end of its log, or nil while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s %v; last log lines:\n%s", p.name, p.err, tailFile(p.log, 30))
	default:
		return nil
	}
}

// stop asks the process to end and kills it if it has not after grace.
func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tailFile returns the last n lines of a log file (or why it cannot be read).
func tailFile(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
