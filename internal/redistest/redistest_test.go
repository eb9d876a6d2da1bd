package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// send sends one inline command over a raw connection and reads the
// first line of the reply.
func send(t *testing.T, s *Server, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func TestStart(t *testing.T) {
	s := Start(t)
	if got := send(t, s, "PING"); got != "+PONG\r\n" {
		t.Fatalf("PING: %q", got)
	}
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Errorf("URL = %q", s.URL())
	}
	s.Stop()
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the server still listens after Stop")
	}
	s.Stop() // twice is fine
	s.Restart()
	if got := send(t, s, "PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after Restart: %q", got)
	}
}

func TestStartWithArgs(t *testing.T) {
	s := StartWithArgs(t, "--requirepass", "pw123")
	if got := send(t, s, "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without the password: %q, want NOAUTH", got)
	}
	// AUTH then PING on one connection
	check := func() {
		t.Helper()
		c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("AUTH pw123\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for _, want := range []string{"+OK\r\n", "+PONG\r\n"} {
			if got, err := r.ReadString('\n'); err != nil || got != want {
				t.Fatalf("reply %q, %v; want %q", got, err, want)
			}
		}
	}
	check()
	s.Restart() // keeps the arguments
	if got := send(t, s, "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without the password after Restart: %q, want NOAUTH", got)
	}
	check()
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg      chan string
	cleanups []func()
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// A redis-server that exits at start (here: a bad argument; in real life
// the port taken meanwhile) fails the test at once, with its output.
func TestStartFailsFastWhenServerExits(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	f := &fatalTB{TB: t, msg: make(chan string, 1)}
	start := time.Now()
	go func() {
		StartWithArgs(f, "--no-such-option", "1")
		f.msg <- ""
	}()
	var msg string
	select {
	case msg = <-f.msg:
	case <-time.After(9 * time.Second):
		t.Fatal("StartWithArgs with a bad argument did not fail before the PING deadline")
	}
	if msg == "" {
		t.Fatal("StartWithArgs with a bad argument did not fail")
	}
	if !strings.Contains(msg, "exited at start") || !strings.Contains(msg, "no-such-option") {
		t.Errorf("failure message %q: want 'exited at start' and redis-server's complaint", msg)
	}
	t.Logf("failed after %v: %s", time.Since(start).Round(time.Millisecond), msg)
	for _, fn := range f.cleanups {
		fn()
	}
}

// Restart when the port is held for a moment by someone else: it tries
// again until the port is free.
func TestRestartWhilePortHeldForAMoment(t *testing.T) {
	s := Start(t)
	s.Stop()
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	// start before the timer is armed: a timer never fires early, so the
	// port is held for at least hold after start, whatever the load
	const hold = 500 * time.Millisecond
	start := time.Now()
	time.AfterFunc(hold, func() { l.Close() })
	s.Restart()
	if el := time.Since(start); el < hold {
		t.Errorf("Restart returned after %v, while the port was still held", el)
	}
	if got := send(t, s, "PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after Restart: %q", got)
	}
}

// A test binary killed before its Cleanup runs (SIGKILL, or the panic of
// go test -timeout) takes its redis-server with it. The test runs itself
// as a child that starts a server and reports its pid and address, kills
// the child with SIGKILL, and waits for the server to be gone.
func TestServerDiesWithTestBinary(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		s := Start(t)
		fmt.Printf("redis pid=%d addr=%s\n", s.cmd.Process.Pid, s.Addr())
		time.Sleep(time.Minute) // until the parent kills us
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestBinary$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), "REDISTEST_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := false
	t.Cleanup(func() {
		if !childDone {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	})
	type started struct {
		pid  int
		addr string
	}
	got := make(chan started, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var st started
			if n, _ := fmt.Sscanf(sc.Text(), "redis pid=%d addr=%s", &st.pid, &st.addr); n == 2 {
				got <- st
			}
		}
	}()
	var st started
	select {
	case st = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the child did not start redis-server")
	}
	// should this test fail, still stop the server the child started (if
	// that pid is still it)
	gone := false
	t.Cleanup(func() {
		if gone || !alive(st.pid) {
			return
		}
		// redis-server retitles itself "redis-server 127.0.0.1:<port>"
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(st.pid) + "/cmdline")
		cmdline := string(b)
		_, port, _ := net.SplitHostPort(st.addr)
		if strings.Contains(cmdline, "redis-server") &&
			(strings.Contains(cmdline, st.addr) || strings.Contains(cmdline, "\x00"+port+"\x00")) {
			_ = syscall.Kill(st.pid, syscall.SIGKILL)
		}
	})
	if !alive(st.pid) {
		t.Fatalf("redis-server (pid %d) is not running", st.pid)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	childDone = true
	deadline := time.Now().Add(5 * time.Second)
	for alive(st.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server (pid %d) still runs 5 s after its test binary was killed", st.pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	gone = true
	// the port closes with the server's last thread: /proc shows the
	// thread group's leader as a zombie (not alive) while its other
	// threads may still be exiting, the listening socket still open (a
	// window a busy machine widens), so the port is polled too, within
	// the same bound
	for {
		c, err := net.DialTimeout("tcp", st.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers 5 s after its test binary was killed", st.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running process (a zombie, dead but not
// yet reaped by whoever inherited it, is not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
