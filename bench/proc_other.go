//go:build !linux

package main

import "syscall"

// childAttr has no parent-death signal outside Linux: a harness that dies
// without cleaning up leaves its children running.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
