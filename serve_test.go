package webhookverify

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Tests of the review's defects D3, D5, D6, D9, D11 and of the body's
// single owner, on a provisioned handler called directly.

// hashProvider is Vivreal with the hash of its choice (D6).
type hashProvider struct {
	providers.Vivreal
	hash crypto.Hash
}

func (p hashProvider) Parse(r *http.Request, now time.Time) (providers.Signed, error) {
	s, err := p.Vivreal.Parse(r, now)
	s.Hash = p.hash
	return s, err
}

// D6: a provider that names a hash not linked into the binary is a 500,
// refused before anything is reserved; the budget is untouched, and no
// panic reaches the server.
func TestServeUnavailableHashRefusedBeforeReservation(t *testing.T) {
	h := hProvision(t, "")
	h.provider = hashProvider{hash: crypto.Hash(0)}
	body := `{"id":"e1"}`
	r := hRequest(context.Background(), http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hSign(body)}})
	rec := &hRecorder{}
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the handler panicked: %v", p)
			}
		}()
		err = h.ServeHTTP(httptest.NewRecorder(), r, rec)
	}()
	if got := hStatus(t, err); got != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", got)
	}
	if !errors.Is(err, ErrProviderHash) || rec.called != 0 {
		t.Fatalf("err %v, next called %d times", err, rec.called)
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
}

// panicReader panics after handing out some bytes.
type panicReader struct{ n int }

func (p *panicReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		panic("reader exploded")
	}
	k := min(len(b), p.n)
	for i := range k {
		b[i] = 'x'
	}
	p.n -= k
	return k, nil
}

// The body's owner gives its reservation back when a read panics, for a
// declared length (reserved up front) and a chunked body (reserved as it
// is read): a panic never shrinks the budget until the next reload.
func TestServeReservationReleasedOnPanic(t *testing.T) {
	for _, declared := range []int64{64 << 10, -1} {
		h := hProvision(t, "")
		r := hRequest(context.Background(), http.MethodPost, "", http.Header{"X-Vivreal-Signature": {hSign("x")}})
		r.Body = io.NopCloser(&panicReader{n: 32 << 10})
		r.ContentLength = declared
		func() {
			defer func() {
				if p := recover(); p != "reader exploded" {
					t.Fatalf("declared %d: recovered %v, want the reader's own panic passed on", declared, p)
				}
			}()
			_ = h.ServeHTTP(httptest.NewRecorder(), r, &hRecorder{})
		}()
		if n := h.inflight.Load(); n != 0 {
			t.Fatalf("declared %d: %d bytes left reserved after the panic", declared, n)
		}
	}
}

// D5: a declared body over the largest size class (16 MiB) is read into a
// buffer of exactly its length: no doubling past the reservation, and no
// 16 MiB buffer taken from the free lists on the way.
func TestReadBodyDeclaredOverLargestClassExact(t *testing.T) {
	const size = 20 << 20
	big := getBuf(1 << maxClassShift)
	putBuf(big) // a 16 MiB buffer waits in its list
	c, _ := classFor(1 << maxClassShift)
	before := len(freeLists[c].bufs)
	body := bytes.Repeat([]byte{'v'}, size)
	buf, err := readBody(bytes.NewReader(body), 32<<20, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cap(buf) != size || !bytes.Equal(buf, body) {
		t.Fatalf("cap %d (len %d), want exactly %d", cap(buf), len(buf), size)
	}
	if after := len(freeLists[c].bufs); after != before {
		t.Fatalf("the 16 MiB free list went from %d to %d buffers: an intermediate buffer was taken", before, after)
	}
	// a chunked body past 16 MiB never grows past limit+1
	buf2, err := readBody(io.MultiReader(bytes.NewReader(body)), size, -1, nil)
	if err != nil || cap(buf2) > size+1 {
		t.Fatalf("chunked: err %v, cap %d for a limit of %d", err, cap(buf2), size)
	}
}

// headerProvider reads its event type from a header in Describe.
type headerProvider struct{ providers.Vivreal }

func (headerProvider) Describe(h http.Header, body []byte, vals []string) {
	vals[0] = h.Get("X-Event-Id")
	vals[1] = h.Get("X-Event-Type")
}

// D11: Describe sees the headers as they were verified, not as a later
// handler (request_header, say) changed them.
func TestServeDescribeSeesVerifiedHeaders(t *testing.T) {
	h := hProvision(t, "")
	h.provider = headerProvider{}
	body := `{}`
	r := hRequest(context.Background(), http.MethodPost, body, http.Header{
		"X-Vivreal-Signature": {hSign(body)},
		"X-Event-Id":          {"id-as-sent"},
		"X-Event-Type":        {"type-as-sent"},
	})
	var got string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		r.Header.Set("X-Event-Type", "changed-later")
		r.Header.Del("X-Event-Id")
		got, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).GetString("http.webhook.event")
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if got != "type-as-sent" {
		t.Fatalf("{http.webhook.event} = %q, want the verified header's value", got)
	}
}

// D9 and GetBody: the verified request carries no trailers and a
// Content-Length, and r.GetBody replays the whole body (for a transport
// that retries on a fresh connection) until the request is over.
func TestServeHandOverTrailersAndGetBody(t *testing.T) {
	h := hProvision(t, "")
	body := `{"id":"t1","event":"e","data":"` + strings.Repeat("d", 5000) + `"}`
	ctx, cancel := context.WithCancel(context.Background())
	r := hRequest(ctx, http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hSign(body)}, "Trailer": {"X-Unsigned"}})
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Unsigned": {"injected"}}
	var getBody func() (io.ReadCloser, error)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Trailer != nil || r.Header.Get("Trailer") != "" {
			t.Errorf("trailers handed over: %v / %q", r.Trailer, r.Header.Get("Trailer"))
		}
		if r.ContentLength != int64(len(body)) || r.Header.Get("Content-Length") == "" {
			t.Errorf("ContentLength %d, header %q", r.ContentLength, r.Header.Get("Content-Length"))
		}
		half := make([]byte, 100)
		if _, err := io.ReadFull(r.Body, half); err != nil {
			t.Fatal(err)
		}
		if r.GetBody == nil {
			t.Fatal("no GetBody")
		}
		rb, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		if all, err := io.ReadAll(rb); err != nil || string(all) != body {
			t.Errorf("GetBody read %d bytes, %v; want the whole body", len(all), err)
		}
		rest, _ := io.ReadAll(r.Body)
		if string(half)+string(rest) != body {
			t.Error("the first reader lost its place")
		}
		getBody = r.GetBody
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	b := func() *verifiedBody { rb, _ := getBody(); return rb.(*bodyReader).b }()
	cancel()
	waitReleased(t, b)
	rb, _ := getBody()
	if _, err := rb.Read(make([]byte, 8)); !errors.Is(err, errBodyReleased) {
		t.Fatalf("GetBody after the request: %v, want errBodyReleased", err)
	}
}

func waitReleased(t *testing.T, b *verifiedBody) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.mu.Lock()
		released := b.released
		b.mu.Unlock()
		if released {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the body was not released when its request ended")
		}
		time.Sleep(time.Millisecond)
	}
}

// manualTimer is a body_timeout timer a test fires by hand.
type manualTimer struct {
	fire    func()
	onStop  func(fire func()) bool
	stopped bool
}

func (m *manualTimer) Stop() bool {
	m.stopped = true
	if m.onStop != nil {
		return m.onStop(m.fire)
	}
	return true
}

// D3: a deadline callback that runs after the read finished never touches
// the connection; one that ran before finish (even as the read completed)
// always means 408.
func TestBodyDeadlineSerialised(t *testing.T) {
	h := hProvision(t, `, "body_timeout": "1h"`)
	var timers []*manualTimer
	restore := setBodyTimerHook(func(d time.Duration, f func()) stopper {
		if d != time.Hour {
			t.Errorf("timer armed for %s, want body_timeout", d)
		}
		m := &manualTimer{fire: f}
		timers = append(timers, m)
		return m
	})
	defer restore()

	// late: the callback runs after finish; no deadline is set
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	d := h.armDeadline(w)
	if d.finish() {
		t.Fatal("finish reported a deadline that never fired")
	}
	timers[0].fire()
	if w.deadlines != 0 {
		t.Fatalf("a late callback set %d read deadlines on a finished request", w.deadlines)
	}

	// early: the callback ran as the read completed; finish reports it
	w2 := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	d2 := h.armDeadline(w2)
	timers[1].fire()
	if !d2.finish() || w2.deadlines != 1 {
		t.Fatalf("fired before finish: reported %v, %d deadlines set", d2.fired, w2.deadlines)
	}
}

// deadlineRecorder counts SetReadDeadline calls made through
// http.ResponseController.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines int
}

func (d *deadlineRecorder) SetReadDeadline(time.Time) error {
	d.deadlines++
	return nil
}

// A body that arrived whole while body_timeout fired is still 408: the
// connection's deadline has moved and it cannot be trusted for the next
// request.
func TestServeDeadlineFiredAsReadCompleted(t *testing.T) {
	h := hProvision(t, "")
	restore := setBodyTimerHook(func(d time.Duration, f func()) stopper {
		return &manualTimer{fire: f, onStop: func(fire func()) bool { fire(); return false }}
	})
	defer restore()
	body := `{"id":"race","event":"e"}`
	rec := &hRecorder{}
	w := httptest.NewRecorder()
	r := hRequest(context.Background(), http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hSign(body)}})
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	err := h.ServeHTTP(w, r, rec)
	if got := hStatus(t, err); got != http.StatusRequestTimeout || rec.called != 0 {
		t.Fatalf("status %d, next called %d times; want 408 and nothing forwarded", got, rec.called)
	}
	if w.Header().Get("Connection") != "close" {
		t.Fatalf("408 without Connection: close")
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
}
