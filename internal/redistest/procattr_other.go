//go:build !linux

package redistest

import "syscall"

// procAttr: Pdeathsig is Linux only; elsewhere redis-server is stopped by
// the test's Cleanup alone.
func procAttr() *syscall.SysProcAttr { return nil }
