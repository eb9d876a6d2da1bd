package redistest

import "syscall"

// procAttr puts redis-server in its own process group (a Ctrl-C on the
// terminal is for the test binary, which then stops it), and has the
// kernel kill it when the test binary dies, even by SIGKILL or a -timeout
// panic, before any Cleanup could run: no redis-server outlives the tests
// that started it. As in e2e/e2e_test.go for caddy.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
