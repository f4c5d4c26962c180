// Command pause is the sandbox ("pause") image of the dev node and the entrypoint of its
// runnable sample images: it holds a Pod's namespaces, reaps the zombies it inherits as PID 1,
// and exits 0 on SIGTERM or SIGINT. No registry.k8s.io image can be pulled here, so
// internal/test/devcluster builds both from this program.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
