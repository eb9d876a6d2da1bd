package dedupe

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// blackhole listens on 127.0.0.1 with a full accept queue, so that the
// kernel drops every new SYN: a dial hangs as it does towards a Redis host
// that is down or firewalled (no "connection refused").
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) }) // then dials get refused: nothing hangs on
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepted
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// fill the accept queue (backlog 0 holds one connection), then check
	// that a dial hangs
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel accepts connections past a full accept queue: no blackhole")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Skipf("dial to a full accept queue: %v, want a timeout", err)
	}
	return addr
}

// A Redis host that is unreachable (SYNs dropped): the client's own
// timeouts end every operation within storeErrBound, also for a caller
// whose context has no deadline (the handler claims with the request's
// context).
func TestRedisUnreachableServerTimesOut(t *testing.T) {
	addr := blackhole(t)
	s := newRedisStore(t, "redis://"+addr+"/0")
	// (as of this writing it fails: each operation takes about 21s =
	// 2 tries (MaxRetries 1) x 5 dial attempts (go-redis' DialerRetries
	// default) x 2s DialTimeout, plus backoff)
	checkAllFailFast(t, s, "on an unreachable redis")
}
