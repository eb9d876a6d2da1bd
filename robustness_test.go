package webhookverify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// rbProvisionDedupe provisions a vivreal handler with a memory dedupe store
// of its own (a key prefix per test).
func rbProvisionDedupe(t *testing.T, dedupe string) *Handler {
	t.Helper()
	h := hProvision(t, `, "dedupe": `+dedupe)
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// A next handler that wrote 2xx and then panicked (reverse_proxy aborts
// with http.ErrAbortHandler when the client goes away mid-response) still
// settles the claim: the retry is a duplicate, not a 409 and not a second
// delivery.
func TestDedupeSettlesWhenNextPanics(t *testing.T) {
	h := rbProvisionDedupe(t, `{"key_prefix": "rb-panic:"}`)
	body := `{"id":"evt_panic","event":"e"}`
	header := http.Header{"X-Vivreal-Signature": {hSign(body)}}
	panicking := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want the handler's own panic passed on", p)
			}
		}()
		_ = h.ServeHTTP(httptest.NewRecorder(), hRequest(context.Background(), http.MethodPost, body, header), panicking)
	}()
	w := httptest.NewRecorder()
	rec := &hRecorder{}
	if err := h.ServeHTTP(w, hRequest(context.Background(), http.MethodPost, body, header), rec); err != nil {
		t.Fatalf("retry: %v (the claim was left in flight)", err)
	}
	if rec.called != 0 || w.Body.String() != `{"received":true,"duplicate":true}` {
		t.Fatalf("retry reached next %d times, answered %q", rec.called, w.Body.String())
	}

	// a panic before any status: the claim is released, the retry delivered
	body2 := `{"id":"evt_panic2","event":"e"}`
	header2 := http.Header{"X-Vivreal-Signature": {hSign(body2)}}
	early := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { panic(http.ErrAbortHandler) })
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("early panic: recovered %v, want the handler's own panic passed on", p)
			}
		}()
		_ = h.ServeHTTP(httptest.NewRecorder(), hRequest(context.Background(), http.MethodPost, body2, header2), early)
	}()
	rec2 := &hRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), hRequest(context.Background(), http.MethodPost, body2, header2), rec2); err != nil || rec2.called != 1 {
		t.Fatalf("retry after a failed delivery: err %v, next called %d times", err, rec2.called)
	}
}

// The id is read before the buffer can be released: a request whose
// context ends (the sender hung up) is still deduplicated by its id, never
// taken for an event without one. Made deterministic from the outside: the
// provider's Describe (which reads the id out of the buffer) records when
// it runs, and the request's context records when the handler registers
// the release on it (context.AfterFunc calls the AfterFunc method of a
// context that has one) and is cancelled at that moment, so the release
// runs at once. A read after the registration would race the release
// (the release wins whenever its goroutine runs first); the test fails it
// every time, whichever wins.
func TestDedupeIDReadBeforeRelease(t *testing.T) {
	h := rbProvisionDedupe(t, `{"key_prefix": "rb-release:", "require_id": true}`)
	var hc *rbHangUpCtx // the current request's context
	var describedAfter, described bool
	h.provider = rbDescribeHook{Provider: h.provider, hook: func() {
		described = true
		if hc != nil && hc.registered.Load() {
			describedAfter = true
		}
	}}
	for i, hangUp := range []bool{false, true} {
		body := `{"id":"evt_rel_` + strconv.Itoa(i) + `_` + time.Now().Format("150405.000000000") + `","event":"e"}`
		r := hRequest(context.Background(), http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hSign(body)}})
		hc, described, describedAfter = nil, false, false
		if hangUp {
			// the sender hangs up just as the handler hands the body over
			hc = &rbHangUpCtx{Context: r.Context(), done: make(chan struct{})}
			r = r.WithContext(hc)
		} else {
			// the sender hung up before: the release runs as soon as it is registered
			ctx, cancel := context.WithCancel(r.Context())
			cancel()
			r = r.WithContext(ctx)
		}
		rec := &hRecorder{}
		err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
		if errors.Is(err, ErrNoID) {
			t.Fatalf("hang-up %v: taken for an event without an id", hangUp)
		}
		if rec.called != 1 {
			t.Fatalf("hang-up %v: next called %d times (err %v), want the event claimed and handed on", hangUp, rec.called, err)
		}
		if !described {
			t.Fatalf("hang-up %v: the id was never read", hangUp)
		}
		if hangUp {
			if !hc.registered.Load() {
				t.Fatal("the handler registered no release on the request's context: the test saw nothing")
			}
			if describedAfter {
				t.Fatal("the id was read after the release was registered on the request's context: it races the release")
			}
		}
		// the release ran: the reservation is back
		deadline := time.Now().Add(30 * time.Second)
		for h.inflight.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("hang-up %v: %d bytes still reserved after the request's context ended", hangUp, h.inflight.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// rbHangUpCtx is a request context that is cancelled at the moment a
// function is registered on it with context.AfterFunc (which calls this
// AfterFunc method, the context package's afterFuncer, since the context
// is neither done nor a context.WithCancel's): the sender hangs up as the
// handler registers the release. f then runs at once, in a goroutine of
// its own, as the context package runs it for a context already done.
type rbHangUpCtx struct {
	context.Context
	done       chan struct{}
	registered atomic.Bool
	once       sync.Once
}

func (c *rbHangUpCtx) Done() <-chan struct{} { return c.done }

func (c *rbHangUpCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

func (c *rbHangUpCtx) AfterFunc(f func()) (stop func() bool) {
	c.registered.Store(true)
	c.once.Do(func() { close(c.done) })
	go f()
	return func() bool { return false }
}

// rbDescribeHook is a provider whose Describe calls hook first.
type rbDescribeHook struct {
	providers.Provider
	hook func()
}

func (p rbDescribeHook) Describe(h http.Header, body []byte, vals []string) {
	p.hook()
	p.Provider.Describe(h, body, vals)
}

// A read error's detail (addresses, the I/O error) is logged, not sent:
// the client gets the short reason.
func TestHandlerReadErrorDetailNotSent(t *testing.T) {
	h := hProvision(t, "")
	r := hRequest(context.Background(), http.MethodPost, "", http.Header{"X-Vivreal-Signature": {hSign("x")}})
	r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"id":`), rbErrReader{}))
	r.ContentLength = -1
	err := h.ServeHTTP(httptest.NewRecorder(), r, &hRecorder{})
	if got := hStatus(t, err); got != http.StatusBadRequest {
		t.Fatalf("status %d", got)
	}
	var he caddyhttp.HandlerError
	errors.As(err, &he)
	if he.Err.Error() != ErrReadingBody.Error() {
		t.Fatalf("client sees %q, want only %q", he.Err, ErrReadingBody)
	}
}

type rbErrReader struct{}

func (rbErrReader) Read([]byte) (int, error) {
	return 0, errors.New("read tcp 10.0.0.2:443->203.0.113.9:5555: connection reset by peer")
}

// A body that does not arrive within body_timeout is answered 408 and its
// reservation returned, whatever the server's own timeouts (none here).
func TestHandlerBodyTimeout(t *testing.T) {
	h := hProvision(t, `, "body_timeout": "300ms"`)
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		err := h.ServeHTTP(w, r, &hRecorder{})
		done <- err
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			w.WriteHeader(he.StatusCode)
		}
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nX-Vivreal-Signature: "+hSign("x")+"\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 1000))
	select {
	case err := <-done:
		if got := hStatus(t, err); got != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled body held the handler past body_timeout")
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes still reserved after the timeout", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the client got no answer: %v", err)
	}
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Fatalf("client got %d (close %v), want 408 and a closed connection", res.StatusCode, res.Close)
	}
}

// Limits that would overflow or exhaust memory are config errors.
func TestValidateBounds(t *testing.T) {
	if err := (Handler{MaxBodySize: 1<<30 + 1}).Validate(); err == nil || !strings.Contains(err.Error(), "1 GiB") {
		t.Errorf("max_body_size over 1 GiB: %v", err)
	}
	if err := (Handler{MaxBodySize: 1 << 62}).Validate(); err == nil {
		t.Error("max_body_size 2^62 accepted")
	}
	if _, err := rbTryDedupe(t, `{"ttl": "100000h"}`); err == nil || !strings.Contains(err.Error(), "over a year") {
		t.Errorf("ttl of 11 years: %v", err)
	}
}

func rbTryDedupe(t *testing.T, dedupe string) (*Handler, error) {
	t.Helper()
	var h Handler
	h.ProviderRaw = []byte(`{"name": "vivreal"}`)
	h.Secrets = plainSecrets(hSecret)
	h.Dedupe = new(Dedupe)
	if err := jsonUnmarshal(dedupe, h.Dedupe); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { _ = h.Cleanup() })
	}
	return &h, err
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
