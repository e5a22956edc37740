package main

import "syscall"

// childAttr makes the kernel kill the child if the harness dies without
// cleaning up (PR_SET_PDEATHSIG).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
