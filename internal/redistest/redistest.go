// Package redistest runs a real redis-server for tests, on a free port of
// 127.0.0.1, with no persistence, and stops it when the test ends.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a redis-server process started for a test.
type Server struct {
	t    testing.TB
	Port int
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
}

// Start starts redis-server, or fails the test. Without redis-server, the
// test fails when CI is set (CI installs it: .ci/run) and is skipped
// otherwise, with a message saying that the Redis tests did not run.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWithArgs(t)
}

// StartWithArgs is Start with extra redis-server arguments appended to the
// command line, e.g. "--requirepass", "secret"; Restart keeps them.
func StartWithArgs(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (apt-get install redis-server)")
		}
		notRun(t)
	}
	s := &Server{t: t, Port: freePort(t), args: append([]string(nil), args...)}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// StartDurable starts redis-server with its data in a directory of the
// test: appendonly yes, appendfsync always (Redis fsyncs the AOF before it
// answers a write), then args. Restart (a kill -9 and a start) reloads
// the AOF: what the server acknowledged is still there.
func StartDurable(t testing.TB, args ...string) *Server {
	t.Helper()
	return StartWithArgs(t, append([]string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}, args...)...)
}

// warnOnce prints the missing redis-server warning once per test binary.
var warnOnce sync.Once

// notRun skips t, saying loudly that Redis was not tested: in the skip
// message (go test -v) and once per test binary on stderr (shown by go
// test in a package's directory without arguments, or when the package
// fails; go test ./... hides a passing package's output, so test.sh says
// it too).
func notRun(t testing.TB) {
	t.Helper()
	warnOnce.Do(func() { fmt.Fprintln(os.Stderr, notRunMsg) })
	t.Skip(notRunMsg)
}

const notRunMsg = "WARNING: redis-server is not installed: the Redis tests were NOT run " +
	"(apt-get install redis-server; with CI set this is a failure)"

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is redis://127.0.0.1:<port>/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

func (s *Server) start() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		up, exited, out := s.launch(deadline)
		switch {
		case up:
			return
		case exited && strings.Contains(out, "Address already in use") && time.Now().Before(deadline):
			// the port is held for a moment (e.g. as the local port of
			// some outgoing connection): try again
			time.Sleep(100 * time.Millisecond)
		case exited:
			s.t.Fatalf("redis-server on port %d exited at start: %s", s.Port, lastLines(out, 5))
		default:
			s.t.Fatalf("redis-server on port %d did not answer PING: %s", s.Port, lastLines(out, 5))
		}
	}
}

// launch starts redis-server and waits until it answers PING (up), it
// exits, or the deadline passes (then it is stopped); out is its output
// when it is not up.
func (s *Server) launch(deadline time.Time) (up, exited bool, out string) {
	s.t.Helper()
	args := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--save", "", "--appendonly", "no", "--protected-mode", "no"},
		s.args...)
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = procAttr()
	buf := new(bytes.Buffer) // read only once the process exited
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	exitedNow := func() bool {
		select {
		case <-done:
			s.cmd = nil
			return true
		default:
			return false
		}
	}
	for time.Now().Before(deadline) {
		if exitedNow() {
			return false, true, buf.String()
		}
		if s.ping() {
			// a server that failed to bind exits at once: make sure
			// the one answering is ours, not another on that port
			time.Sleep(50 * time.Millisecond)
			if exitedNow() {
				return false, true, buf.String()
			}
			return true, false, ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return false, false, buf.String()
}

// lastLines is the last n lines of out.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ping sends PING over a raw connection; a server that requires a
// password answers NOAUTH, which is as good as PONG here.
func (s *Server) ping() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (line == "+PONG\r\n" || strings.HasPrefix(line, "-NOAUTH"))
}

// Stop kills the server (SIGKILL) and waits for it; its data is gone,
// unless it was started by StartDurable.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart kills the server (SIGKILL) and starts it again on the same
// port: empty, or from its AOF when started by StartDurable.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String describes the server for test logs.
func (s *Server) String() string { return fmt.Sprintf("redis-server at %s", s.Addr()) }
