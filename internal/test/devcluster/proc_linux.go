package devcluster

import "syscall"

// sysProcAttr makes a manager die with the process that started it, so an interrupted test or
// demo leaves no webhook server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
