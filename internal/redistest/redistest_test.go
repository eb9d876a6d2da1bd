package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
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
	time.AfterFunc(500*time.Millisecond, func() { l.Close() })
	start := time.Now()
	s.Restart()
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("Restart returned after %v, while the port was still held", el)
	}
	if got := send(t, s, "PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after Restart: %q", got)
	}
}
