package webhookverify_test

// HTTP/2 through a real, in-process Caddy: the same handler behind two
// sites, one on the HTTP port with cleartext HTTP/2 (h2c, prior knowledge:
// the server option "protocols h1 h2 h2c") and one on the HTTPS port with
// "tls internal" and h2 negotiated by ALPN. Every row runs over both, with
// Go's standard client (http.Transport.Protocols), and checks that the
// answer really came over HTTP/2.
//
// On HTTP/2 a body sent without a content-length reaches the handler with
// r.ContentLength == -1 (the budget reader path), a refusal must not close
// the sender's multiplexed connection (closeUnread is HTTP/1 only: a
// "Connection: close" would make the server send GOAWAY), and a stream
// reset or a per-stream read deadline must give the reservation under
// max_inflight_bytes back. Each row uses one client, and counts its dials:
// every request of a row, refused ones included, goes over one connection.
//
// Synchronisation is by channels and by polling the admin /metrics page
// (caddy_webhook_verify_buffered_bytes), every wait bounded by h2Wait.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

const (
	h2TLSAddr = "127.0.0.1:9443"         // where HTTPS requests are dialled
	h2TLSBase = "https://localhost:9443" // the HTTPS site
	h2Wait    = 20 * time.Second         // the bound on every wait
)

// h2Global is itGlobal with h2c turned on next to h1 and h2 (Caddy's
// default is h1 h2 h3: no cleartext HTTP/2).
const h2Global = `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	servers {
		protocols h1 h2 h2c
	}
}
`

// h2Start loads a config whose routes (a Caddyfile snippet) are served both
// on http://localhost:9080 (h1 and h2c) and on https://localhost:9443 (tls
// internal, h1 and h2), and waits until the HTTPS site has its certificate.
// The two sites have their own handler instances, so their own budgets.
func h2Start(t *testing.T, routes string) {
	t.Helper()
	itRequireCaddyPorts(t)
	cfg := h2Global + "\n(routes) {\n" + routes + "\n}\n" + `
http://localhost:9080 {
	import routes
}

https://localhost:9443 {
	tls internal
	import routes
}
`
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	// the internal issuer may still be at work: wait for a handshake that
	// negotiates h2 (on a connection of its own, not counted by any client)
	var last error
	h2Poll(t, "an h2 TLS handshake with the HTTPS site", func() bool {
		d := &tls.Dialer{
			NetDialer: &net.Dialer{Timeout: 2 * time.Second},
			Config:    &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, NextProtos: []string{"h2"}}, //nolint:gosec
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", h2TLSAddr)
		if err != nil {
			last = err
			return false
		}
		defer c.Close()
		if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
			last = fmt.Errorf("ALPN negotiated %q, not h2", p)
			return false
		}
		return true
	}, func() string { return fmt.Sprint(last) })
}

// h2Poll calls cond until it holds, failing the test after h2Wait. A
// polling interval is not synchronisation: only cond decides.
func h2Poll(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(h2Wait)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if detail != nil {
				msg = ": " + detail()
			}
			t.Fatalf("waited %v for %s%s", h2Wait, what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Clients

// h2Client is an HTTP/2-only client for one of the two sites, counting the
// TCP connections it opens.
type h2Client struct {
	name  string // "h2c" or "h2_tls"
	base  string // the site's URL
	c     *http.Client
	dials atomic.Int32
}

// h2Clients makes one client per site: h2c with prior knowledge to the
// HTTP port, and h2 over TLS (ALPN, the internal CA not verified) to the
// HTTPS port. Neither may fall back to HTTP/1.1.
func h2Clients() []func(t *testing.T) *h2Client {
	return []func(t *testing.T) *h2Client{
		func(t *testing.T) *h2Client { return h2NewClient(t, "h2c") },
		func(t *testing.T) *h2Client { return h2NewClient(t, "h2_tls") },
	}
}

func h2NewClient(t *testing.T, kind string) *h2Client {
	t.Helper()
	cl := &h2Client{name: kind}
	addr := itAddr
	var protos http.Protocols
	tr := &http.Transport{
		IdleConnTimeout: 60 * time.Second,
	}
	switch kind {
	case "h2c":
		cl.base = itBase
		protos.SetUnencryptedHTTP2(true) // http:// URLs: h2c, prior knowledge
	case "h2_tls":
		cl.base = h2TLSBase
		addr = h2TLSAddr
		protos.SetHTTP2(true) // https:// URLs: h2 only
		// the site's certificate is from Caddy's internal CA
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
	default:
		t.Fatalf("unknown client kind %q", kind)
	}
	tr.Protocols = &protos
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		cl.dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	cl.c = &http.Client{Transport: tr, Timeout: 2 * h2Wait}
	return cl
}

// assertOneConn checks that every request of the row went over a single
// connection: no refusal made the server close it.
func (cl *h2Client) assertOneConn(t *testing.T) {
	t.Helper()
	if n := cl.dials.Load(); n != 1 {
		t.Errorf("%s: the client opened %d connections, want 1 (a refusal closed the multiplexed connection?)", cl.name, n)
	}
}

// h2Req is one request. The body is sent with a content-length unless
// streamed is set; then its length is hidden and the server gets none.
type h2Req struct {
	path     string
	body     []byte
	header   http.Header
	streamed bool
	reader   io.Reader       // instead of body: sent as is (with declared as its content-length, or none if 0)
	declared int64           // with reader: the content-length to declare, or 0 for none
	ctx      context.Context // default: background
}

type h2Resp struct {
	status int
	proto  string
	header http.Header
	body   []byte
}

// send performs r and reads the whole response; it may run on any
// goroutine (errors are returned, not reported).
func (cl *h2Client) send(r h2Req) (h2Resp, error) {
	var body io.Reader
	switch {
	case r.reader != nil:
		body = r.reader
	case r.body != nil:
		body = bytes.NewReader(r.body)
		if r.streamed {
			body = struct{ io.Reader }{body} // a reader whose length Go cannot see
		}
	}
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.base+r.path, body)
	if err != nil {
		return h2Resp{}, err
	}
	switch {
	case r.reader != nil && r.declared > 0:
		req.ContentLength = r.declared
	case r.reader != nil, r.streamed:
		req.ContentLength = -1
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := cl.c.Do(req)
	if err != nil {
		return h2Resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	out := h2Resp{status: res.StatusCode, proto: res.Proto, header: res.Header, body: b}
	if err != nil {
		return out, fmt.Errorf("reading the %d response: %w", res.StatusCode, err)
	}
	if res.ProtoMajor != 2 {
		return out, fmt.Errorf("the response came over %s, not HTTP/2", res.Proto)
	}
	return out, nil
}

// do is send on the test's goroutine, failing the test on any error.
func (cl *h2Client) do(t *testing.T, r h2Req) h2Resp {
	t.Helper()
	res, err := cl.send(r)
	if err != nil {
		t.Fatalf("%s POST %s: %v", cl.name, r.path, err)
	}
	return res
}

// h2Status checks a response's status, showing it on a mismatch.
func h2Status(t *testing.T, what string, got h2Resp, want int) {
	t.Helper()
	if got.status != want {
		t.Errorf("%s: status %d, want %d (%s, body %q)", what, got.status, want, got.proto, itTrim(got.body))
	}
}

// h2Sig is the Vivreal signature header of body, signed with secret.
func h2Sig(secret string, body []byte) http.Header {
	return itHdr("X-Vivreal-Signature", "sha256="+itSign256(secret, body))
}

// ---------------------------------------------------------------------------
// The memory budget, as the admin metrics page shows it

// h2Buffered reads caddy_webhook_verify_buffered_bytes{provider="vivreal"}:
// the bytes reserved under max_inflight_bytes by every vivreal handler.
func h2Buffered(t *testing.T) float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatalf("reading the admin metrics: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the admin metrics: %v", err)
	}
	const series = `caddy_webhook_verify_buffered_bytes{provider="vivreal"} `
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("the admin metrics page has no %s series", strings.TrimSpace(series))
	return 0
}

// h2Settle waits until the reservations are back to base: a finished
// request gives its bytes back when its context ends, which may be just
// after the client has read the whole response.
func h2Settle(t *testing.T, base float64) {
	t.Helper()
	var now float64
	h2Poll(t, fmt.Sprintf("buffered_bytes back to %v", base), func() bool {
		now = h2Buffered(t)
		return now <= base
	}, func() string { return fmt.Sprintf("still %v", now) })
}

// h2Held is a request whose body is sent slowly: the first sent bytes at
// once, the rest only when release is called. Its result arrives on done.
type h2Held struct {
	release func()
	cancel  context.CancelFunc // resets the stream
	done    chan h2Result
}

type h2Result struct {
	res h2Resp
	err error
}

// h2Hold starts r (its body is given by body, declared or not) on its own
// goroutine, with a pipe that delivers body[:sent] and then waits.
func h2Hold(t *testing.T, cl *h2Client, r h2Req, body []byte, sent int, declared bool) *h2Held {
	t.Helper()
	pr, pw := io.Pipe()
	release := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 2*h2Wait)
	h := &h2Held{
		release: func() { once.Do(func() { close(release) }) },
		cancel:  cancel,
		done:    make(chan h2Result, 1),
	}
	t.Cleanup(func() {
		h.release()
		cancel()
		_ = pr.Close()
	})
	go func() {
		if _, err := pw.Write(body[:sent]); err != nil {
			return // the request is over: the reader was closed
		}
		select {
		case <-release:
			_, err := pw.Write(body[sent:])
			pw.CloseWithError(err) // nil: a plain EOF
		case <-ctx.Done():
			pw.CloseWithError(ctx.Err())
		}
	}()
	r.reader = pr
	r.declared = 0
	if declared {
		r.declared = int64(len(body))
	}
	r.ctx = ctx
	go func() {
		res, err := cl.send(r)
		h.done <- h2Result{res, err}
	}()
	return h
}

// wait returns the held request's result, failing the test after h2Wait.
func (h *h2Held) wait(t *testing.T, what string) h2Result {
	t.Helper()
	select {
	case r := <-h.done:
		return r
	case <-time.After(h2Wait):
		t.Fatalf("%s: no answer within %v", what, h2Wait)
		return h2Result{}
	}
}

// ---------------------------------------------------------------------------
// Tests

// TestHTTP2Forward: genuine events of 4 KiB and 3 MiB, with a declared
// content-length and streamed without one, reach the upstream byte for byte
// with the exact Content-Length, over one HTTP/2 connection, one after the
// other and then multiplexed.
func TestHTTP2Forward(t *testing.T) {
	up := itNewRecorder(t, "up")
	h2Start(t, fmt.Sprintf(`
	route /hook {
		request_header X-Seen-Content-Length "cl={http.request.header.Content-Length}"
		webhook_verify vivreal %s
		reverse_proxy %s
	}`, itVivSecret, up.addr()))

	for _, mk := range h2Clients() {
		cl := mk(t)
		t.Run(cl.name, func(t *testing.T) {
			for _, size := range []int{4 << 10, 3 << 20} {
				for _, streamed := range []bool{false, true} {
					name := fmt.Sprintf("%dB_declared", size)
					if streamed {
						name = fmt.Sprintf("%dB_streamed", size)
					}
					t.Run(name, func(t *testing.T) {
						up.reset()
						body := itVivrealEvent("evt_"+name, "collection.object.created", size)
						res := cl.do(t, h2Req{path: "/hook", body: body, streamed: streamed, header: h2Sig(itVivSecret, body)})
						h2Status(t, "genuine event", res, http.StatusOK)
						if string(res.body) != "ok from up" {
							t.Errorf("response body %q, want the upstream's", itTrim(res.body))
						}
						got := itAssertForwarded(t, up, "/hook", body)
						// what the handler saw: no content-length at all when
						// streamed (r.ContentLength == -1 on HTTP/2)
						want := "cl=" + strconv.Itoa(size)
						if streamed {
							want = "cl="
						}
						if seen := got.Header.Get("X-Seen-Content-Length"); seen != want {
							t.Errorf("the request reached the handler with %q, want %q", seen, want)
						}
					})
				}
			}

			t.Run("multiplexed", func(t *testing.T) {
				// the connection is open: these all go over it at once
				up.reset()
				const n = 8
				bodies := make([][]byte, n)
				results := make(chan error, n)
				for i := range n {
					bodies[i] = itVivrealEvent(fmt.Sprintf("evt_mux_%d", i), "collection.object.updated", 2000+i*3000)
					go func() {
						res, err := cl.send(h2Req{path: "/hook", body: bodies[i], streamed: i%2 == 1, header: h2Sig(itVivSecret, bodies[i])})
						if err == nil && res.status != http.StatusOK {
							err = fmt.Errorf("request %d: status %d", i, res.status)
						}
						results <- err
					}()
				}
				timeout := time.After(h2Wait)
				for range n {
					select {
					case err := <-results:
						if err != nil {
							t.Error(err)
						}
					case <-timeout:
						t.Fatalf("the multiplexed requests did not all finish within %v", h2Wait)
					}
				}
				got := up.all()
				if len(got) != n {
					t.Fatalf("upstream got %d requests, want %d", len(got), n)
				}
				byIndex := map[int]itRecorded{}
				for _, g := range got {
					for i, b := range bodies {
						if bytes.Equal(g.Body, b) {
							byIndex[i] = g
						}
					}
				}
				for i, b := range bodies {
					g, ok := byIndex[i]
					if !ok {
						t.Errorf("request %d (%d bytes) did not reach the upstream byte for byte", i, len(b))
						continue
					}
					if g.ContentLength != int64(len(b)) || g.Header.Get("Content-Length") != strconv.Itoa(len(b)) || len(g.TransferEncoding) != 0 {
						t.Errorf("request %d: upstream ContentLength %d, header %q, TE %q; want %d, no TE",
							i, g.ContentLength, g.Header.Get("Content-Length"), g.TransferEncoding, len(b))
					}
				}
			})
			cl.assertOneConn(t)
		})
	}
}

// TestHTTP2Unauthorized: a forged signature and a missing one, with and
// without a declared length, are answered 401 over HTTP/2 and nothing is
// forwarded; a genuine event on the same connection then passes.
func TestHTTP2Unauthorized(t *testing.T) {
	up := itNewRecorder(t, "up")
	h2Start(t, fmt.Sprintf(`
	route /hook {
		webhook_verify vivreal %s
		reverse_proxy %s
	}`, itVivSecret, up.addr()))

	body := itVivrealEvent("evt_401", "collection.object.created", 20000)
	forged := bytes.Replace(body, []byte("evt_401"), []byte("evt_402"), 1)
	for _, mk := range h2Clients() {
		cl := mk(t)
		t.Run(cl.name, func(t *testing.T) {
			up.reset()
			for _, tc := range []struct {
				name string
				req  h2Req
			}{
				{"forged_declared", h2Req{body: forged, header: h2Sig(itVivSecret, body)}},
				{"forged_streamed", h2Req{body: forged, streamed: true, header: h2Sig(itVivSecret, body)}},
				{"wrong_secret_declared", h2Req{body: body, header: h2Sig("another-secret", body)}},
				{"missing_declared", h2Req{body: body}},
				{"missing_streamed", h2Req{body: body, streamed: true}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.req.path = "/hook"
					res := cl.do(t, tc.req)
					h2Status(t, tc.name, res, http.StatusUnauthorized)
					if res.header.Get("X-Upstream") != "" {
						t.Errorf("the refusal came from the upstream")
					}
					if n := up.count(); n != 0 {
						t.Errorf("upstream got %d requests, want none", n)
					}
				})
			}
			t.Run("genuine_after_refusals", func(t *testing.T) {
				res := cl.do(t, h2Req{path: "/hook", body: body, header: h2Sig(itVivSecret, body)})
				h2Status(t, "genuine event after the 401s", res, http.StatusOK)
				itAssertForwarded(t, up, "/hook", body)
			})
			cl.assertOneConn(t)
		})
	}
}

// TestHTTP2BodyTooLarge: with max_body_size 64KiB, a body of 64 KiB + 1,
// declared or streamed, signed or not, gets 413 and nothing is forwarded; a
// body of exactly 64 KiB, declared or streamed, passes on the same
// connection.
func TestHTTP2BodyTooLarge(t *testing.T) {
	up := itNewRecorder(t, "up")
	h2Start(t, fmt.Sprintf(`
	route /hook {
		webhook_verify vivreal %s {
			max_body_size 64KiB
		}
		reverse_proxy %s
	}`, itVivSecret, up.addr()))

	const limit = 64 << 10
	at := itVivrealEvent("evt_at", "collection.object.created", limit)
	over := itVivrealEvent("evt_over", "collection.object.created", limit+1)
	big := itVivrealEvent("evt_1m", "collection.object.created", 1<<20)
	if len(at) != limit || len(over) != limit+1 {
		t.Fatalf("fixtures are %d and %d bytes", len(at), len(over))
	}
	for _, mk := range h2Clients() {
		cl := mk(t)
		t.Run(cl.name, func(t *testing.T) {
			up.reset()
			for _, tc := range []struct {
				name string
				req  h2Req
			}{
				{"over_declared", h2Req{body: over, header: h2Sig(itVivSecret, over)}},
				{"over_streamed", h2Req{body: over, streamed: true, header: h2Sig(itVivSecret, over)}},
				{"over_streamed_unsigned", h2Req{body: over, streamed: true}},
				{"over_streamed_forged", h2Req{body: over, streamed: true, header: h2Sig("another-secret", over)}},
				{"1MiB_declared", h2Req{body: big, header: h2Sig(itVivSecret, big)}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.req.path = "/hook"
					res := cl.do(t, tc.req)
					h2Status(t, tc.name, res, http.StatusRequestEntityTooLarge)
					if n := up.count(); n != 0 {
						t.Errorf("upstream got %d requests, want none", n)
					}
				})
			}
			for _, streamed := range []bool{false, true} {
				name := "at_limit_declared"
				if streamed {
					name = "at_limit_streamed"
				}
				t.Run(name, func(t *testing.T) {
					up.reset()
					res := cl.do(t, h2Req{path: "/hook", body: at, streamed: streamed, header: h2Sig(itVivSecret, at)})
					h2Status(t, "body of exactly max_body_size after the 413s", res, http.StatusOK)
					itAssertForwarded(t, up, "/hook", at)
				})
			}
			cl.assertOneConn(t)
		})
	}
}

// TestHTTP2MemoryBudget: with max_body_size and max_inflight_bytes both
// 1 MiB, a 1 MiB body that arrives slowly holds the whole budget; another
// request on the same connection, declared or streamed, gets 503 with
// Retry-After; once the first completes (200, forwarded whole) a 1 MiB
// event passes. A stream the client resets mid-body gives its reservation
// back too.
func TestHTTP2MemoryBudget(t *testing.T) {
	up := itNewRecorder(t, "up")
	h2Start(t, fmt.Sprintf(`
	route /hook {
		webhook_verify vivreal %s {
			max_body_size 1MiB
			max_inflight_bytes 1MiB
		}
		reverse_proxy %s
	}`, itVivSecret, up.addr()))

	const mib = 1 << 20
	small := itVivrealEvent("evt_small", "collection.object.created", 3000)
	for _, mk := range h2Clients() {
		cl := mk(t)
		t.Run(cl.name, func(t *testing.T) {
			base := h2Buffered(t)
			up.reset()
			// open the connection, and let the reservation go
			h2Status(t, "first event", cl.do(t, h2Req{path: "/hook", body: small, header: h2Sig(itVivSecret, small)}), http.StatusOK)
			h2Settle(t, base)

			t.Run("held_body_then_503", func(t *testing.T) {
				up.reset()
				held := itVivrealEvent("evt_held_"+cl.name, "collection.object.created", mib)
				first := h2Hold(t, cl, h2Req{path: "/hook", header: h2Sig(itVivSecret, held)}, held, mib/2, true)
				var now float64
				h2Poll(t, "the held request's 1 MiB reservation", func() bool {
					now = h2Buffered(t)
					return now >= base+mib
				}, func() string {
					select {
					case r := <-first.done:
						return fmt.Sprintf("buffered_bytes %v; the held request ended: %d %v", now, r.res.status, r.err)
					default:
						return fmt.Sprintf("buffered_bytes %v", now)
					}
				})

				for _, streamed := range []bool{false, true} {
					res := cl.do(t, h2Req{path: "/hook", body: small, streamed: streamed, header: h2Sig(itVivSecret, small)})
					what := fmt.Sprintf("a second request (streamed %v) while the budget is held", streamed)
					h2Status(t, what, res, http.StatusServiceUnavailable)
					if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra <= 0 {
						t.Errorf("%s: Retry-After %q, want a number of seconds", what, res.header.Get("Retry-After"))
					}
				}
				if n := up.count(); n != 0 {
					t.Errorf("upstream got %d requests while the first was held, want none", n)
				}

				first.release()
				r := first.wait(t, "the held request, released")
				if r.err != nil {
					t.Fatalf("the held request: %v", r.err)
				}
				h2Status(t, "the held request, released", r.res, http.StatusOK)
				itAssertForwarded(t, up, "/hook", held)

				// the budget comes back whole: a 1 MiB event passes
				h2Settle(t, base)
				up.reset()
				third := itVivrealEvent("evt_third_"+cl.name, "collection.object.created", mib)
				h2Status(t, "a 1 MiB event after the release", cl.do(t, h2Req{path: "/hook", body: third, header: h2Sig(itVivSecret, third)}), http.StatusOK)
				itAssertForwarded(t, up, "/hook", third)
				h2Settle(t, base)
			})

			for _, declared := range []bool{true, false} {
				name := "reset_stream_releases_declared"
				if !declared {
					name = "reset_stream_releases_streamed"
				}
				t.Run(name, func(t *testing.T) {
					up.reset()
					held := itVivrealEvent("evt_reset_"+cl.name, "collection.object.created", mib)
					first := h2Hold(t, cl, h2Req{path: "/hook", header: h2Sig(itVivSecret, held)}, held, mib/2, declared)
					var now float64
					h2Poll(t, "the held request's reservation", func() bool {
						now = h2Buffered(t)
						if declared {
							return now >= base+mib
						}
						return now >= base+mib/2 // reserved as read
					}, func() string { return fmt.Sprintf("buffered_bytes %v", now) })

					first.cancel() // RST_STREAM(CANCEL)
					if r := first.wait(t, "the cancelled request"); !errors.Is(r.err, context.Canceled) {
						t.Errorf("the cancelled request: %d %v, want context.Canceled", r.res.status, r.err)
					}
					h2Settle(t, base)
					if n := up.count(); n != 0 {
						t.Errorf("upstream got %d requests, want none", n)
					}
					next := itVivrealEvent("evt_after_reset_"+cl.name, "collection.object.created", mib)
					h2Status(t, "a 1 MiB event after the reset", cl.do(t, h2Req{path: "/hook", body: next, header: h2Sig(itVivSecret, next)}), http.StatusOK)
					itAssertForwarded(t, up, "/hook", next)
					h2Settle(t, base)
				})
			}
			cl.assertOneConn(t)
		})
	}
}

// TestHTTP2BodyTimeout: a body that stalls past body_timeout gets 408 on
// its own stream (the per-stream read deadline), its reservation is given
// back, and the connection serves the next event.
func TestHTTP2BodyTimeout(t *testing.T) {
	up := itNewRecorder(t, "up")
	h2Start(t, fmt.Sprintf(`
	route /hook {
		webhook_verify vivreal %s {
			max_body_size 1MiB
			body_timeout 1s
		}
		reverse_proxy %s
	}`, itVivSecret, up.addr()))

	body := itVivrealEvent("evt_slow", "collection.object.created", 64<<10)
	for _, mk := range h2Clients() {
		cl := mk(t)
		t.Run(cl.name, func(t *testing.T) {
			base := h2Buffered(t)
			up.reset()
			h2Status(t, "first event", cl.do(t, h2Req{path: "/hook", body: body, header: h2Sig(itVivSecret, body)}), http.StatusOK)
			h2Settle(t, base)
			up.reset()
			for _, declared := range []bool{true, false} {
				name := "stalled_declared"
				if !declared {
					name = "stalled_streamed"
				}
				t.Run(name, func(t *testing.T) {
					// never released: only body_timeout ends it
					stalled := h2Hold(t, cl, h2Req{path: "/hook", header: h2Sig(itVivSecret, body)}, body, 1000, declared)
					r := stalled.wait(t, "a body stalled past body_timeout")
					if r.err != nil {
						t.Fatalf("a body stalled past body_timeout: %v", r.err)
					}
					h2Status(t, "a body stalled past body_timeout", r.res, http.StatusRequestTimeout)
					h2Settle(t, base)
					if n := up.count(); n != 0 {
						t.Errorf("upstream got %d requests, want none", n)
					}
				})
			}
			t.Run("genuine_after_timeouts", func(t *testing.T) {
				res := cl.do(t, h2Req{path: "/hook", body: body, header: h2Sig(itVivSecret, body)})
				h2Status(t, "genuine event after the 408s", res, http.StatusOK)
				itAssertForwarded(t, up, "/hook", body)
			})
			cl.assertOneConn(t)
		})
	}
}
