package webhookverify

// Unit tests of the store-and-forward runtime: the retry schedule (gaps,
// jitter, Retry-After, dead), Retry-After parsing, the delivery attempt's
// response writer, generated event ids and the attempts' window.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/webhookverify/caddy-webhook-verify/providers"
	"github.com/webhookverify/caddy-webhook-verify/queue"
)

// CmdWebhook is cmdWebhook, for the integration test of `caddy webhook
// queue ...` against the in-process Caddy (package webhookverify_test).
var CmdWebhook = cmdWebhook

// qtRuntime is a runtime whose jitter draws r.
func qtRuntime(r float64) *queueRuntime {
	rt := newQueueRuntime("qt", nil)
	rt.rand = func() float64 { return r }
	return rt
}

func qtConfig(gaps ...time.Duration) *Queue {
	q := &Queue{MaxAttempts: 50, MaxAge: caddy.Duration(1000 * time.Hour)}
	for _, g := range gaps {
		q.Retry = append(q.Retry, caddy.Duration(g))
	}
	return q
}

// the largest float64 below 1: the most jitter rand can draw
var qtAlmostOne = math.Nextafter(1, 0)

func TestQueueScheduleGaps(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := &queue.Event{ReceivedAt: now.Add(-time.Minute)}
	cfg := qtConfig(time.Second, 2*time.Second, 5*time.Second)
	rt := qtRuntime(0)
	for _, tc := range []struct {
		n    int // the failed attempt
		want time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 5 * time.Second},
		// the last gap repeats
		{4, 5 * time.Second}, {5, 5 * time.Second}, {49, 5 * time.Second},
	} {
		dead, at := rt.schedule(cfg, ev, tc.n, now, 0)
		if dead {
			t.Fatalf("attempt %d: dead, want a retry", tc.n)
		}
		if got := at.Sub(now); got != tc.want {
			t.Errorf("after attempt %d: next in %v, want the gap %v (no jitter drawn)", tc.n, got, tc.want)
		}
	}
}

// Jitter adds 0..10 % of the gap, never takes any away.
func TestQueueScheduleJitter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := &queue.Event{ReceivedAt: now}
	for _, gap := range []time.Duration{time.Millisecond, time.Second, 7 * time.Second, 12 * time.Hour} {
		cfg := qtConfig(gap)
		var prev time.Duration
		for i, r := range []float64{0, 0.01, 0.25, 0.5, 0.75, 0.99, qtAlmostOne} {
			dead, at := qtRuntime(r).schedule(cfg, ev, 1, now, 0)
			if dead {
				t.Fatalf("gap %v, rand %v: dead", gap, r)
			}
			got := at.Sub(now)
			if got < gap || got > gap+gap/10 {
				t.Errorf("gap %v, rand %v: next in %v, want within [%v, %v]", gap, r, got, gap, gap+gap/10)
			}
			if i > 0 && got < prev {
				t.Errorf("gap %v: more jitter drawn (%v) gave a shorter wait %v < %v", gap, r, got, prev)
			}
			prev = got
		}
		// half the draw, half the 10 %
		if _, at := qtRuntime(0.5).schedule(cfg, ev, 1, now, 0); at.Sub(now) != gap+time.Duration(0.05*float64(gap)) {
			t.Errorf("gap %v, rand 0.5: next in %v, want %v", gap, at.Sub(now), gap+time.Duration(0.05*float64(gap)))
		}
	}
}

// A Retry-After shorter than the gap is honoured (plus jitter on it); a
// longer one is capped at the gap.
func TestQueueScheduleRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := &queue.Event{ReceivedAt: now}
	cfg := qtConfig(5 * time.Second)
	for _, tc := range []struct {
		retryAfter time.Duration
		want       time.Duration // with no jitter drawn
	}{
		{0, 5 * time.Second},
		{time.Second, time.Second},
		{4999 * time.Millisecond, 4999 * time.Millisecond},
		{5 * time.Second, 5 * time.Second},
		{6 * time.Second, 5 * time.Second},
		{time.Hour, 5 * time.Second},
	} {
		for _, r := range []float64{0, qtAlmostOne} {
			dead, at := qtRuntime(r).schedule(cfg, ev, 1, now, tc.retryAfter)
			if dead {
				t.Fatalf("Retry-After %v: dead", tc.retryAfter)
			}
			got := at.Sub(now)
			if got < tc.want || got > tc.want+tc.want/10 {
				t.Errorf("Retry-After %v, gap 5s, rand %v: next in %v, want within [%v, %v]",
					tc.retryAfter, r, got, tc.want, tc.want+tc.want/10)
			}
		}
	}
	// the gap of the attempt, not the first gap, caps it
	cfg = qtConfig(time.Second, time.Minute)
	if _, at := qtRuntime(0).schedule(cfg, ev, 2, now, 30*time.Second); at.Sub(now) != 30*time.Second {
		t.Errorf("Retry-After 30s under the second gap 1m: next in %v, want 30s", at.Sub(now))
	}
	if _, at := qtRuntime(0).schedule(cfg, ev, 1, now, 30*time.Second); at.Sub(now) != time.Second {
		t.Errorf("Retry-After 30s over the first gap 1s: next in %v, want 1s", at.Sub(now))
	}
}

func TestQueueScheduleDead(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	cfg := qtConfig(time.Second)
	cfg.MaxAttempts = 3
	cfg.MaxAge = caddy.Duration(time.Hour)
	rt := qtRuntime(0)
	fresh := &queue.Event{ReceivedAt: now}

	// max_attempts: the 3rd failed attempt is the last
	for n, want := range map[int]bool{1: false, 2: false, 3: true, 4: true} {
		dead, at := rt.schedule(cfg, fresh, n, now, 0)
		if dead != want {
			t.Errorf("max_attempts 3, failed attempt %d: dead = %v, want %v", n, dead, want)
		}
		if dead && !at.IsZero() {
			t.Errorf("failed attempt %d: dead with a retry time %v", n, at)
		}
	}
	// max_attempts 1: dead after the first failure
	one := qtConfig(time.Second)
	one.MaxAttempts, one.MaxAge = 1, caddy.Duration(time.Hour)
	if dead, _ := rt.schedule(one, fresh, 1, now, 0); !dead {
		t.Error("max_attempts 1: alive after the first failed attempt")
	}

	// max_age: dead when the next attempt would fall past it
	for _, tc := range []struct {
		age  time.Duration // of the event at now
		gap  time.Duration
		rand float64
		dead bool
	}{
		{time.Minute, time.Second, 0, false},
		{59*time.Minute + 58*time.Second, time.Second, 0, false},
		{59*time.Minute + 59*time.Second, time.Second, 0, false},  // exactly at max_age: still tried
		{59*time.Minute + 59*time.Second, time.Second, 0.5, true}, // the jitter takes it past
		{59 * time.Minute, 2 * time.Minute, 0, true},
		{time.Hour, time.Second, 0, true},
		{2 * time.Hour, time.Second, 0, true},
	} {
		cfg := qtConfig(tc.gap)
		cfg.MaxAttempts, cfg.MaxAge = 20, caddy.Duration(time.Hour)
		ev := &queue.Event{ReceivedAt: now.Add(-tc.age)}
		dead, at := qtRuntime(tc.rand).schedule(cfg, ev, 1, now, 0)
		if dead != tc.dead {
			t.Errorf("age %v, gap %v, rand %v, max_age 1h: dead = %v, want %v (next %v)", tc.age, tc.gap, tc.rand, dead, tc.dead, at)
		}
	}
	// a Retry-After that brings the next attempt within max_age keeps it alive
	cfg = qtConfig(time.Minute)
	cfg.MaxAttempts, cfg.MaxAge = 20, caddy.Duration(time.Hour)
	ev := &queue.Event{ReceivedAt: now.Add(-59*time.Minute - 30*time.Second)}
	if dead, _ := qtRuntime(0).schedule(cfg, ev, 1, now, 10*time.Second); dead {
		t.Error("Retry-After 10s, 30s before max_age: dead, want a retry")
	}
	if dead, _ := qtRuntime(0).schedule(cfg, ev, 1, now, 0); !dead {
		t.Error("gap 1m, 30s before max_age: alive, want dead")
	}
}

func TestQueueRetryAfterOf(t *testing.T) {
	hdr := func(v string) http.Header {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		return h
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{"86400", 24 * time.Hour},
		{"99999999999999", math.MaxInt32 * time.Second}, // bounded, no overflow
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"5s", 0},
		{"Wed, 99 Foo 2026 25:61:00 GMT", 0},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0}, // a date in the past: now
	} {
		if got := retryAfterOf(hdr(tc.value)); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.value, got, tc.want)
		}
	}
	if got := retryAfterOf(http.Header{}); got != 0 {
		t.Errorf("no Retry-After: %v, want 0", got)
	}
	// an HTTP date 90 s ahead (whole seconds in the header)
	for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
		at := time.Now().Add(90 * time.Second).UTC()
		got := retryAfterOf(hdr(at.Format(layout)))
		if got < 80*time.Second || got > 91*time.Second {
			t.Errorf("Retry-After %q (90s ahead): %v, want about 90s", at.Format(layout), got)
		}
	}
}

func TestQueueAttemptWriter(t *testing.T) {
	// a body without WriteHeader is a 200
	w := &attemptWriter{header: http.Header{}}
	if n, err := w.Write([]byte("hello")); n != 5 || err != nil {
		t.Errorf("Write = %d, %v; want 5, nil", n, err)
	}
	if w.status != http.StatusOK {
		t.Errorf("status after a bare Write = %d, want 200", w.status)
	}
	w.WriteHeader(http.StatusInternalServerError) // too late
	if w.status != http.StatusOK {
		t.Errorf("status after a late WriteHeader = %d, want 200", w.status)
	}

	// the first final status counts; 1xx are skipped
	w = &attemptWriter{header: http.Header{}}
	w.WriteHeader(http.StatusContinue)
	w.WriteHeader(http.StatusEarlyHints)
	if w.status != 0 {
		t.Errorf("status after 1xx only = %d, want 0 (no response yet)", w.status)
	}
	w.Header().Set("Retry-After", "7")
	w.WriteHeader(http.StatusTooManyRequests)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("ignored")); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if w.status != http.StatusTooManyRequests {
		t.Errorf("status = %d, want the first final status 429", w.status)
	}
	if retryAfterOf(w.Header()) != 7*time.Second {
		t.Errorf("the writer's headers lost Retry-After: %v", w.Header())
	}

	// nothing written: no status (the attempt failed: no response)
	w = &attemptWriter{header: http.Header{}}
	if w.status != 0 {
		t.Errorf("fresh writer status %d", w.status)
	}
	if got := resultOf(w.status, nil, false); got != "no_response" {
		t.Errorf("result of no response = %q", got)
	}
	var _ http.Flusher = w
}

func TestQueueResultOf(t *testing.T) {
	errX := http.ErrHandlerTimeout
	for _, tc := range []struct {
		status   int
		err      error
		timedOut bool
		want     string
		msg      string
	}{
		{200, nil, false, "delivered", ""},
		{204, nil, false, "delivered", ""},
		{301, nil, false, "3xx", "Moved Permanently"},
		{404, nil, false, "4xx", "Not Found"},
		{429, nil, false, "4xx", "Too Many Requests"},
		{500, nil, false, "5xx", "Internal Server Error"},
		{502, errX, false, "5xx", errX.Error()},
		{200, errX, false, "error", errX.Error()}, // a 2xx with an error is not delivered
		{0, errX, false, "error", errX.Error()},
		{0, nil, false, "no_response", "the deliver handlers wrote no response"},
		{0, errX, true, "timeout", "attempt_timeout"},
		{502, errX, true, "timeout", "attempt_timeout"},
	} {
		if got := resultOf(tc.status, tc.err, tc.timedOut); got != tc.want {
			t.Errorf("resultOf(%d, %v, %v) = %q, want %q", tc.status, tc.err, tc.timedOut, got, tc.want)
		}
		if tc.msg != "" {
			if got := attemptError(tc.status, tc.err, tc.timedOut); got != tc.msg {
				t.Errorf("attemptError(%d, %v, %v) = %q, want %q", tc.status, tc.err, tc.timedOut, got, tc.msg)
			}
		}
	}
}

func TestQueueNewEventID(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for range 20000 {
		id := newEventID(now) // one millisecond: the random part keeps them apart
		if seen[id] {
			t.Fatalf("newEventID gave %q twice", id)
		}
		seen[id] = true
		if !strings.HasPrefix(id, "gen_") {
			t.Fatalf("id %q has not the gen_ prefix", id)
		}
	}
	// sortable by time: later receive times sort later, at millisecond
	// resolution, across the years an id may be generated in
	var times []time.Time
	for _, base := range []time.Time{
		time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999e6, time.UTC),
		now,
		time.Date(2058, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		for _, d := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 999 * time.Millisecond,
			time.Second, time.Minute, time.Hour, 24 * time.Hour, 35 * 24 * time.Hour} {
			times = append(times, base.Add(d))
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	ids := make([]string, len(times))
	for i, tm := range times {
		ids[i] = newEventID(tm)
	}
	if !sort.StringsAreSorted(ids) {
		for i := 1; i < len(ids); i++ {
			if ids[i-1] >= ids[i] {
				t.Errorf("%v → %q sorts after %v → %q", times[i-1], ids[i-1], times[i], ids[i])
			}
		}
	}
	// the ids of one millisecond share their time prefix
	a, b := newEventID(now), newEventID(now.Add(999*time.Microsecond))
	if a[:strings.LastIndexByte(a, '_')] != b[:strings.LastIndexByte(b, '_')] {
		t.Errorf("ids of one millisecond %q and %q have different time parts", a, b)
	}
}

// An attempt's event leaves rt.inflight only after its outcome is
// committed, so for a moment the store counts it delivered while the
// runtime still has it in flight. The stats (and the gauges made from
// them: pending = pending - in_flight) must not go negative then.
func TestQueueStatsAttemptEnding(t *testing.T) {
	q := qtQueue(t, "qs")
	rt := newQueueRuntime("qs", q)
	now := time.Now()
	if _, err := q.Enqueue(&queue.Event{ID: "evt_1", Provider: "vivreal", Method: "POST", URI: "/",
		ReceivedAt: now, Body: []byte(`{"id":"evt_1"}`)}, queue.Limits{}); err != nil {
		t.Fatal(err)
	}
	rt.inflight["evt_1"] = func() {} // dispatched
	if s := rt.stats(); s.Pending != 1 || s.InFlight != 1 {
		t.Fatalf("in flight: %+v", s)
	}
	// the outcome is committed; the attempt has not yet left rt.inflight
	if err := q.Complete("evt_1", queue.Outcome{Delivered: true, Status: 200, At: now, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s := rt.stats()
	if s.Delivered != 1 || s.Pending != 0 {
		t.Fatalf("delivered: %+v", s)
	}
	if s.InFlight > s.Pending || s.Pending-s.InFlight < 0 {
		t.Errorf("stats while the attempt ends: pending %d, in_flight %d: the pending gauge would be %d",
			s.Pending, s.InFlight, s.Pending-s.InFlight)
	}
}

// gatedBackend holds every Complete until gate is closed.
type gatedBackend struct {
	queue.Backend
	gate    chan struct{}
	waiting atomic.Int32
}

func (g *gatedBackend) Complete(id string, o queue.Outcome) error {
	g.waiting.Add(1)
	<-g.gate
	g.waiting.Add(-1)
	return g.Backend.Complete(id, o)
}

// TestQueueAttemptWindow: at most concurrency attempts run at once, and
// while outcomes wait for their commit the next attempts start, up to
// attemptWindow × concurrency under way; then nothing more is dispatched
// (a crash delivers at most that many again). Once the outcomes are
// recorded every event is delivered, by workers that take one attempt
// after another, and the workers end with the queue.
func TestQueueAttemptWindow(t *testing.T) {
	q := qtQueue(t, "win")
	const c, n = 3, 100
	qtEnqueue(t, q, n)
	baseline := runtime.NumGoroutine()
	gb := &gatedBackend{Backend: q, gate: make(chan struct{})}
	rt := newQueueRuntime("win", gb)
	rt.workerIdle = time.Hour // they end with the queue, not idle
	var running, most, calls atomic.Int32
	chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		k := running.Add(1)
		for m := most.Load(); k > m && !most.CompareAndSwap(m, k); m = most.Load() {
		}
		runtime.Gosched() // let the other attempts overlap this one
		running.Add(-1)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	tgt := qtTarget(t, c, chain)
	rt.attach(tgt)

	const window = attemptWindow * c
	deadline := time.Now().Add(time.Minute)
	for gb.waiting.Load() < window && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := gb.waiting.Load(); w != window {
		t.Fatalf("%d outcomes waiting for their commit, want the window's %d", w, window)
	}
	// the window is full: a dispatch now starts nothing
	rt.dispatch()
	rt.mu.Lock()
	inflight, completing := len(rt.inflight), len(rt.completing)
	rt.mu.Unlock()
	if inflight != 0 || completing != window || calls.Load() != window {
		t.Errorf("window full: %d in flight, %d completing, %d attempts made; want 0, %d, %d",
			inflight, completing, calls.Load(), window, window)
	}
	close(gb.gate)
	for q.Counts().Delivered < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := q.Counts(); got.Delivered != n || got.Pending != 0 {
		t.Errorf("after the outcomes were recorded: %+v, want %d delivered", got, n)
	}
	if calls.Load() != n || most.Load() > c {
		t.Errorf("%d attempts for %d events, at most %d at once (concurrency %d)", calls.Load(), n, most.Load(), c)
	}
	// a worker takes one attempt after another: no more of them were
	// ever started than attempts may be under way at once
	rt.mu.Lock()
	idle, workers := len(rt.idle), rt.workers
	rt.mu.Unlock()
	if idle > window || workers > window {
		t.Errorf("%d workers started for %d attempts, %d idle now; at most the %d attempts that may be under way", workers, n, idle, window)
	}
	rt.shutdown()
	rt.detach(tgt)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseline {
		t.Errorf("%d goroutines after the queue stopped, %d before it started: workers left behind", g, baseline)
	}
}

// qtTarget is a deliver target of a Vivreal handler: concurrency c,
// through chain, a retry an hour later.
func qtTarget(t *testing.T, c int, chain caddyhttp.Handler) *deliveryTarget {
	p := providers.Vivreal{}
	h := &Handler{provider: p, name: "vivreal"}
	for _, f := range p.Fields() {
		h.fields = append(h.fields, placeholderPrefix+f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := &Queue{Name: "qt", Concurrency: c, AttemptTimeout: caddy.Duration(time.Minute),
		TTL: caddy.Duration(time.Hour), MaxAttempts: 5, MaxAge: caddy.Duration(1000 * time.Hour),
		Retry: []caddy.Duration{caddy.Duration(time.Hour)}}
	return &deliveryTarget{h: h, cfg: cfg, chain: chain, ctx: ctx, cancel: cancel, logger: zap.NewNop()}
}

// qtQueue opens a bbolt store in a temporary directory, closed when the
// test ends, and returns its queue name.
func qtQueue(t *testing.T, name string) *queue.Queue {
	t.Helper()
	st, err := queue.Open(t.TempDir()+"/q.db", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := st.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// qtEnqueue stores n events ids evt_000, evt_001, ... in q.
func qtEnqueue(t *testing.T, q queue.Backend, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		id := fmt.Sprintf("evt_%03d", i)
		if _, err := q.Enqueue(&queue.Event{ID: id, Provider: "vivreal", Method: "POST", URI: "/",
			ReceivedAt: now, Body: []byte(`{"id":"` + id + `"}`)}, queue.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueueWorkersIdle: the attempts' workers that find nothing to do
// for rt.workerIdle end while the queue goes on; the next events start
// new ones.
func TestQueueWorkersIdle(t *testing.T) {
	q := qtQueue(t, "idle")
	rt := newQueueRuntime("idle", q)
	rt.workerIdle = time.Millisecond
	defer rt.shutdown()
	var calls atomic.Int32
	tgt := qtTarget(t, 4, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
		return nil
	}))
	baseline := runtime.NumGoroutine() + 1 // and the dispatcher
	rt.attach(tgt)
	defer rt.detach(tgt)
	deadline := time.Now().Add(time.Minute)
	for round, n := range []int{30, 60} {
		qtEnqueue(t, q, n) // the first 30 ids again, then 30 new
		rt.wakeUp()
		for q.Counts().Delivered < int64(n) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := q.Counts(); got.Delivered != int64(n) || calls.Load() != int32(n) {
			t.Fatalf("round %d: %+v after %d attempts, want %d delivered", round, got, calls.Load(), n)
		}
		for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		rt.mu.Lock()
		idle := len(rt.idle)
		rt.mu.Unlock()
		if g := runtime.NumGoroutine(); g > baseline || idle != 0 {
			t.Fatalf("round %d: %d goroutines (%d before the queue started) and %d idle workers after the workers' idle time", round, g, baseline-1, idle)
		}
	}
}

// TestQueueDeliverPanics: a panic in the deliver chain fails the attempt
// (the event stays pending, with the reason as its last error) instead of
// ending the process; reverse_proxy's http.ErrAbortHandler, for an answer
// cut short after its header, reads as such.
func TestQueueDeliverPanics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value any
		want  string
	}{
		{"abort", http.ErrAbortHandler, "the backend's response was cut short"},
		{"other", "boom", "the deliver handlers panicked: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := qtQueue(t, "qt")
			qtEnqueue(t, q, 1)
			rt := newQueueRuntime("qt", q)
			defer rt.shutdown()
			tgt := qtTarget(t, 1, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(http.StatusOK)
				panic(tc.value)
			}))
			rt.attach(tgt)
			defer rt.detach(tgt)
			deadline := time.Now().Add(time.Minute)
			var ev *queue.Event
			var err error
			for time.Now().Before(deadline) {
				if ev, err = q.Get("evt_000", false); err != nil || ev.Attempts > 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.State != queue.Pending || ev.Attempts != 1 || ev.LastStatus != http.StatusOK || ev.LastError != tc.want {
				t.Errorf("after a panic: %s, %d attempts, last %d %q; want pending, 1, 200 %q",
					ev.State, ev.Attempts, ev.LastStatus, ev.LastError, tc.want)
			}
		})
	}
}
