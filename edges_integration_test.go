package webhookverify_test

// HTTP edges through a real Caddy, raw TCP where the framing matters: the
// review's D3 (a body_timeout callback racing the end of the read), D4
// (the unsigned chunked drain under body_timeout), D7 (refused chunked
// bodies with Expect: 100-continue) and D9 (request trailers).

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
)

// edRawConn is a raw HTTP/1.1 connection to the test site.
type edRawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func edDial(t *testing.T) *edRawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", itAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &edRawConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *edRawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one response, failing the test if none comes within wait.
func (c *edRawConn) read(wait time.Duration) (*http.Response, string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("no response within %s: %v", wait, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.t.Fatalf("reading the response body: %v", err)
	}
	return res, string(b)
}

// closed reports whether the server closed the connection (EOF) within wait.
func (c *edRawConn) closed(wait time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

func edHead(path string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: localhost:9080\r\n", path)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

const edWait = 30 * time.Second // generous: the machine may be busy

// body_timeout through Caddy's own response writer: a stalled body, with
// a declared length or chunked, signed or not (the 413-vs-401 drain, D4),
// is answered 408 once body_timeout has passed, the connection is closed,
// and nothing reaches the upstream.
func TestIntegrationBodyTimeout(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s {
			body_timeout 1s
		}
		reverse_proxy %s
	}
}
`, itVivSecret, up.addr()))
	body := itVivrealEvent("evt_stall", "e", 100000)
	sig := "X-Vivreal-Signature: " + itSign256(itVivSecret, body)
	for _, tc := range []struct {
		name  string
		lines []string
		first string
	}{
		{"declared_signed", []string{sig, "Content-Length: " + strconv.Itoa(len(body))}, string(body[:1000])},
		{"chunked_signed", []string{sig, "Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%s\r\n", 1000, body[:1000])},
		{"chunked_unsigned_drain", []string{"Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%s\r\n", 1000, body[:1000])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := edDial(t)
			sent := time.Now()
			c.send(edHead("/hook", tc.lines...) + tc.first)
			res, got := c.read(edWait)
			if res.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d (%q), want 408", res.StatusCode, got)
			}
			if took := time.Since(sent); took < time.Second {
				t.Errorf("answered after %s, before body_timeout", took)
			}
			if !res.Close {
				t.Error("408 without closing the connection")
			}
			if !c.closed(edWait) {
				t.Error("the connection stayed open after the 408")
			}
			if n := up.count(); n != 0 {
				t.Fatalf("the upstream got %d requests", n)
			}
		})
	}
}

// edTimer is a body_timeout timer the test controls.
type edTimer struct {
	mu     sync.Mutex
	fires  []func()
	onStop func(fire func()) bool
}

func (e *edTimer) hook(d time.Duration, fire func()) webhookverify.Stopper {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fires = append(e.fires, fire)
	return edStop{fire: fire, onStop: e.onStop}
}

type edStop struct {
	fire   func()
	onStop func(fire func()) bool
}

func (s edStop) Stop() bool { return s.onStop(s.fire) }

// D3: a body_timeout callback that runs after the body was read (its timer
// fired just as the read completed, and the callback was scheduled late)
// touches neither the request nor the connection: the next request on the
// same keep-alive connection is served. And one that ran before the read
// was finished always means 408 and a closed connection, even though the
// body arrived whole.
func TestIntegrationBodyDeadlineRace(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s
		reverse_proxy %s
	}
}
`, itVivSecret, up.addr()))
	post := func(id string) string {
		b := itVivrealEvent(id, "e", 2000)
		return edHead("/hook", "X-Vivreal-Signature: "+itSign256(itVivSecret, b), "Content-Length: "+strconv.Itoa(len(b))) + string(b)
	}

	t.Run("late_callback_keep_alive", func(t *testing.T) {
		up.reset()
		timer := &edTimer{onStop: func(func()) bool { return false }} // "already fired"
		restore := webhookverify.SetBodyTimerHook(timer.hook)
		defer restore()
		c := edDial(t)
		c.send(post("evt_late_1"))
		if res, got := c.read(edWait); res.StatusCode != 200 {
			t.Fatalf("first request: %d %q", res.StatusCode, got)
		}
		// the late callbacks run now, between the two requests
		timer.mu.Lock()
		fires := timer.fires
		timer.mu.Unlock()
		if len(fires) != 1 {
			t.Fatalf("%d body timers armed, want 1", len(fires))
		}
		fires[0]()
		c.send(post("evt_late_2"))
		if res, got := c.read(edWait); res.StatusCode != 200 {
			t.Fatalf("second request on the same connection: %d %q", res.StatusCode, got)
		}
		if n := up.count(); n != 2 {
			t.Fatalf("the upstream got %d requests, want 2", n)
		}
	})

	t.Run("fired_as_read_completed", func(t *testing.T) {
		up.reset()
		timer := &edTimer{onStop: func(fire func()) bool { fire(); return false }}
		restore := webhookverify.SetBodyTimerHook(timer.hook)
		defer restore()
		c := edDial(t)
		c.send(post("evt_race"))
		res, got := c.read(edWait)
		if res.StatusCode != http.StatusRequestTimeout || !res.Close {
			t.Fatalf("status %d (close %v, %q), want 408 and a closed connection", res.StatusCode, res.Close, got)
		}
		if n := up.count(); n != 0 {
			t.Fatalf("the upstream got %d requests", n)
		}
	})
}

// D7: a chunked request with Expect: 100-continue that is refused before
// its body is read (bad credentials: 401; not a POST: 405) gets its answer
// at once, without a 100 and without the server waiting for the body, and
// the connection is closed.
func TestIntegrationExpectContinueChunkedRefused(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s {
			bearer_token tok-7c1e
		}
		reverse_proxy %s
	}
}
`, itVivSecret, up.addr()))
	body := itVivrealEvent("evt_expect", "e", 3000)
	sig := "X-Vivreal-Signature: " + itSign256(itVivSecret, body)
	for _, tc := range []struct {
		name   string
		method string
		lines  []string
		want   int
	}{
		{"bad_credentials", "POST", []string{sig, "Authorization: Bearer wrong"}, 401},
		{"no_credentials", "POST", []string{sig}, 401},
		{"get", "GET", []string{sig, "Authorization: Bearer tok-7c1e"}, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := edDial(t)
			head := edHead("/hook", append(tc.lines, "Transfer-Encoding: chunked", "Expect: 100-continue")...)
			head = tc.method + strings.TrimPrefix(head, "POST")
			c.send(head) // and the body is held back until a 100 comes
			res, got := c.read(edWait)
			if res.StatusCode == http.StatusContinue {
				t.Fatalf("got 100 Continue for a refused request")
			}
			if res.StatusCode != tc.want {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, got, tc.want)
			}
			if !res.Close {
				t.Error("refusal without Connection: close: the server would read the body to reuse the connection")
			}
		})
	}
	if n := up.count(); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
}

// D9: a signed chunked body with request trailers reaches the upstream
// with its Content-Length and without the trailers, which nobody signed.
func TestIntegrationTrailersNotForwarded(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s
		reverse_proxy %s
	}
}
`, itVivSecret, up.addr()))
	body := itVivrealEvent("evt_trailer", "e", 5000)
	chunked := itChunk(body, 1000)
	chunked = append(chunked[:len(chunked)-2], "X-Unsigned: injected\r\n\r\n"...) // trailer after the last chunk
	c := edDial(t)
	c.send(edHead("/hook", "X-Vivreal-Signature: "+itSign256(itVivSecret, body), "Transfer-Encoding: chunked", "Trailer: X-Unsigned") + string(chunked))
	if res, got := c.read(edWait); res.StatusCode != 200 {
		t.Fatalf("status %d %q", res.StatusCode, got)
	}
	got := itAssertForwarded(t, up, "/hook", body)
	if got.Header.Get("Trailer") != "" || got.Header.Get("X-Unsigned") != "" {
		t.Errorf("the upstream got the unsigned trailer: Trailer %q, X-Unsigned %q", got.Header.Get("Trailer"), got.Header.Get("X-Unsigned"))
	}
}
