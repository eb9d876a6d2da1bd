package e2e

// Store and forward (`queue`) through the real binary: the guarantee (a
// 2xx only once the event is on disk, and then it is delivered) across
// kill -9, reloads, a second Caddy on the same file, a full disk, and dead
// events replayed with `caddy webhook queue`.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// qName is the queue of every generated config.
const qName = "vq"

// qQueuedAnswer is the answer to a verified event once it is on disk.
const qQueuedAnswer = `{"received":true,"queued":true}`

// qDeadline bounds every wait for deliveries: far beyond what a busy
// machine needs.
const qDeadline = 60 * time.Second

// ---- the recording backend ----

// Behaviours of a qRecorder.
const (
	qUp   int32 = iota // 200
	qDown              // 503 at once
	qFail              // 500
	qCut               // 200 with a Content-Length of 100, 5 bytes of body, then the connection closed
)

// qDelivery is one request a qRecorder answered 200.
type qDelivery struct {
	sum    [32]byte
	size   int
	header http.Header
}

// qRecorder is a backend in the test process: it records every request's
// body (its sha256) and headers by event id, and answers 200 (up), 503
// (down) or 500 (fail). Requests for an id given to hold wait until the
// test releases them, the gateway goes away, or a 30 s bound.
type qRecorder struct {
	t    *testing.T
	name string
	srv  *httptest.Server
	mode atomic.Int32

	mu        sync.Mutex
	requests  int
	delivered map[string][]qDelivery // answered 200
	order     []string               // the ids answered 200, in order
	refused   map[string]int         // answered 503 or 500
	cutShort  map[string]int         // answered with a body cut short (qCut)
	held      map[string]int         // held requests that arrived
	heldBy    map[string]int         // held requests by their X-Gateway header
	heldNow   map[string]int         // requests held now, by X-Gateway
	abandoned map[string]int         // held requests the gateway gave up
	holds     map[string]chan struct{}
	problems  []string
	// cut: requests whose body ended early. A kill -9 of the gateway
	// in the middle of an attempt does that; the tests that kill it
	// allow it (killTests), the others count it a problem.
	cut       int
	killTests bool
}

func newQRecorder(t *testing.T, name string, mode int32) *qRecorder {
	t.Helper()
	r := &qRecorder{t: t, name: name, delivered: map[string][]qDelivery{}, refused: map[string]int{}, cutShort: map[string]int{},
		held: map[string]int{}, heldBy: map[string]int{}, heldNow: map[string]int{}, abandoned: map[string]int{}, holds: map[string]chan struct{}{}}
	r.mode.Store(mode)
	r.srv = httptest.NewServer(r) // on 127.0.0.1
	t.Cleanup(func() {
		r.mu.Lock()
		for id, ch := range r.holds {
			close(ch)
			delete(r.holds, id)
		}
		problems := r.problems
		r.mu.Unlock()
		r.srv.CloseClientConnections()
		r.srv.Close()
		for _, p := range problems {
			t.Errorf("backend %s: %s", name, p)
		}
	})
	return r
}

func (r *qRecorder) addr() string { return r.srv.Listener.Addr().String() }

func (r *qRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.mu.Lock()
		r.cut++
		kill := r.killTests
		r.mu.Unlock()
		if !kill {
			r.problem("reading a body: %v", err)
		}
		return
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		r.problem("a body without an id (%d bytes): %v", len(body), err)
	}
	r.mu.Lock()
	r.requests++
	hold := r.holds[ev.ID]
	if hold != nil {
		r.held[ev.ID]++
		r.heldBy[req.Header.Get("X-Gateway")]++
		r.heldNow[req.Header.Get("X-Gateway")]++
	}
	r.mu.Unlock()
	if hold != nil {
		defer func() {
			r.mu.Lock()
			r.heldNow[req.Header.Get("X-Gateway")]--
			r.mu.Unlock()
		}()
		select {
		case <-hold:
		case <-req.Context().Done():
			r.mu.Lock()
			r.abandoned[ev.ID]++
			r.mu.Unlock()
			return
		case <-time.After(30 * time.Second):
			r.problem("held %s for 30 s: nobody released it", ev.ID)
		}
	}
	switch r.mode.Load() {
	case qDown:
		r.mu.Lock()
		r.refused[ev.ID]++
		r.mu.Unlock()
		http.Error(w, "backend down", http.StatusServiceUnavailable)
		return
	case qFail:
		r.mu.Lock()
		r.refused[ev.ID]++
		r.mu.Unlock()
		http.Error(w, "backend broken", http.StatusInternalServerError)
		return
	case qCut:
		r.mu.Lock()
		r.cutShort[ev.ID]++
		r.mu.Unlock()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			r.problem("hijacking a connection: %v", err)
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\"")
		_ = buf.Flush()
		_ = conn.Close()
		return
	}
	// recorded before answering: a backend that answered 200 took the event
	// whatever happens to the gateway afterwards
	r.mu.Lock()
	r.delivered[ev.ID] = append(r.delivered[ev.ID], qDelivery{sum: sha256.Sum256(body), size: len(body), header: req.Header.Clone()})
	r.order = append(r.order, ev.ID)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (r *qRecorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// hold makes the requests for id wait until the release it returns is
// called (idempotent; also at cleanup, before the server closes).
func (r *qRecorder) hold(id string) (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.holds[id] = ch
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.holds[id] == ch {
			close(ch)
			delete(r.holds, id)
		}
	}
}

func (r *qRecorder) deliveries(id string) []qDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered[id])
}

func (r *qRecorder) counts(id string) (held, abandoned, refused, delivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[id], r.abandoned[id], r.refused[id], len(r.delivered[id])
}

func (r *qRecorder) totalRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func (r *qRecorder) totalRefused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.refused {
		n += v
	}
	return n
}

// missing returns the ids of ids no backend of rs has delivered.
func qMissing(ids []string, rs ...*qRecorder) []string {
	var out []string
	for _, id := range ids {
		n := 0
		for _, r := range rs {
			n += len(r.deliveries(id))
		}
		if n == 0 {
			out = append(out, id)
		}
	}
	return out
}

// qWaitDelivered polls until every id has reached one of rs.
func qWaitDelivered(t *testing.T, ids []string, rs ...*qRecorder) {
	t.Helper()
	deadline := time.Now().Add(qDeadline)
	for {
		miss := qMissing(ids, rs...)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d events never reached the backend, e.g. %v", qDeadline, len(miss), len(ids), miss[:min(len(miss), 10)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qExtra is the number of deliveries beyond the first, over ids.
func qExtra(ids []string, rs ...*qRecorder) (extra int, twice []string) {
	for _, id := range ids {
		n := 0
		for _, r := range rs {
			n += len(r.deliveries(id))
		}
		if n > 1 {
			extra += n - 1
			twice = append(twice, id)
		}
	}
	return extra, twice
}

// ---- configs, processes, the admin API ----

// qConfig is a Caddyfile with one queued Vivreal route, /hook, delivering
// to up; opts are more lines of the queue block.
func qConfig(admin, port int, db, up, opts string) string {
	return qConfigProxy(admin, port, db, up, "", opts)
}

// qConfigProxy is qConfig with proxyOpts inside the reverse_proxy block.
func qConfigProxy(admin, port int, db, up, proxyOpts, opts string) string {
	return globals(admin, "") + fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	handle /healthz {
		respond "ok" 200
	}
	handle /hook {
		webhook_verify vivreal %[2]s {
			queue %[5]s {
				store bbolt %[3]s
				deliver {
					reverse_proxy %[4]s {
%[7]s
					}
				}
%[6]s
			}
		}
	}
}
`, port, vivSecret, db, up, qName, opts, proxyOpts)
}

// qStart starts a Caddy on free ports with qConfig.
func qStart(t *testing.T, db, up, opts string) *caddyProc {
	t.Helper()
	admin, port := freePort(t), freePort(t)
	return startCaddy(t, admin, port, qConfig(admin, port, db, up, opts))
}

// qKill9 sends SIGKILL to the Caddy process (only it: its pid) and waits
// until it is gone.
func qKill9(t *testing.T, c *caddyProc) {
	t.Helper()
	if err := syscall.Kill(c.pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", c.pid(), err)
	}
	qWaitExit(t, c)
}

func qWaitExit(t *testing.T, c *caddyProc) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("caddy (pid %d) still running 30 s after it was stopped", c.pid())
	}
}

// qPost sends a signed Vivreal event to c's /hook.
func qPost(client *http.Client, c *caddyProc, body []byte) (status int, answer, retryAfter string, err error) {
	resp, rb, err := post(client, c.url("/hook"), body, signViv(vivSecret, body))
	if err != nil {
		return 0, "", "", err
	}
	return resp.StatusCode, string(rb), resp.Header.Get("Retry-After"), nil
}

// qAdmin does a request to c's admin endpoint and decodes the JSON answer
// into out (when not nil and the status is 2xx).
func qAdmin(t *testing.T, c *caddyProc, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", c.admin, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, b, err := do(&http.Client{Timeout: 30 * time.Second}, req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("admin %s %s: %v: %s", method, path, err, tail(string(b), 500))
		}
	}
	return resp.StatusCode
}

// qStats is a queue in GET /webhook_verify/queues.
type qStats struct {
	Name      string `json:"name"`
	Pending   int64  `json:"pending"`
	InFlight  int64  `json:"in_flight"`
	Delivered int64  `json:"delivered"`
	Dead      int64  `json:"dead"`
	Paused    bool   `json:"paused"`
}

func qQueueStats(t *testing.T, c *caddyProc) qStats {
	t.Helper()
	var all []qStats
	if st := qAdmin(t, c, http.MethodGet, "/webhook_verify/queues", &all); st != http.StatusOK {
		t.Fatalf("GET /webhook_verify/queues: status %d", st)
	}
	for _, q := range all {
		if q.Name == qName {
			return q
		}
	}
	t.Fatalf("GET /webhook_verify/queues: no queue %q in %+v", qName, all)
	return qStats{}
}

// qWaitStats polls the queue's counts until cond holds.
func qWaitStats(t *testing.T, c *caddyProc, what string, cond func(qStats) bool) qStats {
	t.Helper()
	deadline := time.Now().Add(qDeadline)
	for {
		s := qQueueStats(t, c)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %+v after %s", what, s, qDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qEvent is an event as the admin API shows it.
type qEvent struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status"`
	LastError  string `json:"last_error"`
	Size       int64  `json:"size"`
}

func qGetEvent(t *testing.T, c *caddyProc, id string) (qEvent, int) {
	t.Helper()
	var ev qEvent
	st := qAdmin(t, c, http.MethodGet, "/webhook_verify/queues/"+qName+"/events/"+id, &ev)
	return ev, st
}

// qCaddyCmd runs the binary with args (a CLI command talking to c's admin
// endpoint) and returns its combined output.
func qCaddyCmd(t *testing.T, c *caddyProc, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// qBodies returns n events with distinct ids (prefix-i) and sizes drawn
// from [minSize, maxSize], the largest and smallest included.
func qBodies(rng *mrand.Rand, prefix string, n, minSize, maxSize int) (ids []string, bodies map[string][]byte) {
	bodies = map[string][]byte{}
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		size := minSize + rng.IntN(maxSize-minSize+1)
		switch i {
		case 0:
			size = maxSize
		case 1:
			size = minSize
		}
		ids = append(ids, id)
		bodies[id] = event(id, size)
	}
	return ids, bodies
}

// qCheckBodies fails the test for every delivery of ids whose body or
// signature differs from what was sent.
func qCheckBodies(t *testing.T, ids []string, bodies map[string][]byte, rs ...*qRecorder) {
	t.Helper()
	bad := 0
	for _, id := range ids {
		want := sha256.Sum256(bodies[id])
		sig := signViv(vivSecret, bodies[id])
		for _, r := range rs {
			for _, d := range r.deliveries(id) {
				if d.sum != want || d.size != len(bodies[id]) {
					bad++
					if bad <= 10 {
						t.Errorf("%s: delivered %d bytes with sha256 %x, sent %d bytes with sha256 %x", id, d.size, d.sum, len(bodies[id]), want)
					}
				}
				if got := d.header.Get("X-Vivreal-Signature"); got != sig {
					bad++
					if bad <= 10 {
						t.Errorf("%s: delivered with X-Vivreal-Signature %q, sent %q", id, got, sig)
					}
				}
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d deliveries differ from what was sent", bad)
	}
}

// ---- the tests ----

// TestQueueKill9BackendDown: 200 events (up to 64 KiB) are queued while
// the backend answers 503; Caddy is killed with SIGKILL and started again
// on the same bbolt file; once the backend is up every event reaches it,
// byte for byte, and none twice beyond the attempts in flight at the kill
// (none can have been answered 200 then: the backend was down).
func TestQueueKill9BackendDown(t *testing.T) {
	needCaddy(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 1))
	rec := newQRecorder(t, "backend", qDown)
	rec.killTests = true // a kill in mid-attempt cuts its body short
	db := filepath.Join(t.TempDir(), "q.db")
	const concurrency = 4
	const window = 8 * concurrency // attempts under way at once (attemptWindow in queue.go)
	opts := fmt.Sprintf("\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h\n\t\t\t\tconcurrency %d", concurrency)
	c := qStart(t, db, rec.addr(), opts)

	ids, bodies := qBodies(rng, "down", 200, 200, 64<<10)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		queued  int
		refused []string
	)
	for range 8 {
		wg.Go(func() {
			client := newClient(time.Minute)
			defer client.CloseIdleConnections()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				id := ids[i]
				st, ans, _, err := qPost(client, c, bodies[id])
				mu.Lock()
				if err == nil && st == http.StatusOK && ans == qQueuedAnswer {
					queued++
				} else {
					refused = append(refused, fmt.Sprintf("%s: status %d %q, %v", id, st, ans, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("%d of %d events not answered %s, e.g. %v", len(refused), len(ids), qQueuedAnswer, refused[:min(len(refused), 5)])
	}
	// the backend is being tried (and answers 503) while we kill
	deadline := time.Now().Add(qDeadline)
	for rec.totalRefused() < 2*concurrency && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	attemptsBefore := rec.totalRequests()
	qKill9(t, c)
	t.Logf("killed caddy (pid %d) with SIGKILL after %d queued events and %d delivery attempts (all 503)", c.pid(), queued, attemptsBefore)

	c2 := qStart(t, db, rec.addr(), opts)
	if s := qQueueStats(t, c2); s.Pending != int64(len(ids)) || s.Delivered != 0 || s.Dead != 0 {
		t.Errorf("after the restart the queue holds %+v, want %d pending", s, len(ids))
	}
	rec.mode.Store(qUp)
	qWaitDelivered(t, ids, rec)
	s := qWaitStats(t, c2, "all delivered", func(s qStats) bool { return s.Pending == 0 })
	if s.Delivered != int64(len(ids)) || s.Dead != 0 {
		t.Errorf("queue after delivery: %+v, want %d delivered", s, len(ids))
	}
	qCheckBodies(t, ids, bodies, rec)
	extra, twice := qExtra(ids, rec)
	t.Logf("%d events delivered after kill -9 and restart; %d delivered more than once (%d extra deliveries) %v", len(ids), len(twice), extra, twice)
	if extra > window { // running, and ended but not yet recorded
		t.Errorf("%d extra deliveries, more than the %d attempts that can be under way at the kill: %v", extra, window, twice)
	}
	c2.assertNoPanic()
}

// TestQueueKill9WhileAccepting: 16 senders post 300 events while the
// backend is up; after a random number of 2xx answers Caddy is killed with
// SIGKILL. After a restart on the same file, every event that was answered
// 2xx is delivered. Three rounds, on the same file, each with its own kill
// point.
func TestQueueKill9WhileAccepting(t *testing.T) {
	needCaddy(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 2))
	rec := newQRecorder(t, "backend", qUp)
	rec.killTests = true // a kill in mid-attempt cuts its body short
	db := filepath.Join(t.TempDir(), "q.db")
	const concurrency = 4
	const window = 8 * concurrency // attempts under way at once (attemptWindow in queue.go)
	opts := fmt.Sprintf("\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h\n\t\t\t\tconcurrency %d", concurrency)
	const total, senders = 300, 16

	for round := range 3 {
		ids, bodies := qBodies(rng, fmt.Sprintf("crash%d", round), total, 100, 16<<10)
		killAt := int64(10 + rng.IntN(total-40))
		c := qStart(t, db, rec.addr(), opts)

		var (
			next     atomic.Int64
			acks     atomic.Int64
			killed   atomic.Bool
			killOnce sync.Once
			wg       sync.WaitGroup
			mu       sync.Mutex
			acked    []string
			others   []string // non-2xx answers, and errors before the kill
			lost     int      // errors after the kill
		)
		kill := func() {
			killOnce.Do(func() {
				killed.Store(true)
				if err := syscall.Kill(c.pid(), syscall.SIGKILL); err != nil {
					t.Errorf("kill -9: %v", err)
				}
			})
		}
		for range senders {
			wg.Go(func() {
				client := newClient(30 * time.Second)
				defer client.CloseIdleConnections()
				for !killed.Load() {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					id := ids[i]
					st, ans, _, err := qPost(client, c, bodies[id])
					mu.Lock()
					switch {
					case err != nil && killed.Load():
						lost++
					case err != nil:
						others = append(others, fmt.Sprintf("%s: %v (before the kill)", id, err))
					case st/100 == 2:
						acked = append(acked, id)
						if ans != qQueuedAnswer {
							others = append(others, fmt.Sprintf("%s: 2xx answer %q", id, ans))
						}
					default:
						others = append(others, fmt.Sprintf("%s: status %d %q", id, st, ans))
					}
					mu.Unlock()
					if err == nil && st/100 == 2 && acks.Add(1) == killAt {
						kill()
					}
				}
			})
		}
		wg.Wait()
		kill() // if the kill point was never reached
		qWaitExit(t, c)
		if len(others) > 0 {
			t.Errorf("round %d: %d unexpected answers, e.g. %v", round, len(others), others[:min(len(others), 5)])
		}
		deliveredAtKill := len(ids) - len(qMissing(ids, rec))

		c2 := qStart(t, db, rec.addr(), opts)
		qWaitDelivered(t, acked, rec)
		qWaitStats(t, c2, "everything stored delivered", func(s qStats) bool { return s.Pending == 0 })
		qCheckBodies(t, ids, bodies, rec)
		unacked := len(ids) - len(qMissing(ids, rec)) - len(acked)
		extra, twice := qExtra(ids, rec)
		t.Logf("round %d: killed after %d 2xx answers (target %d); %d requests failed with the kill, %d never sent; %d delivered before the kill; all %d acknowledged delivered after the restart, plus %d stored but unanswered; %d extra deliveries %v",
			round, len(acked), killAt, lost, total-len(acked)-lost-len(others), deliveredAtKill, len(acked), unacked, extra, twice)
		// under way: attempts running (concurrency) and attempts ended
		// whose outcome was not yet committed
		if extra > window {
			t.Errorf("round %d: %d extra deliveries, more than the %d attempts that can be under way at the kill", round, extra, window)
		}
		c2.assertNoPanic()
		qKill9(t, c2) // the next round opens the file again
	}
}

// TestQueueReloadSlowDelivery: an attempt held by the backend is in flight
// when `caddy reload` switches the deliver upstream to a second backend.
// The backend holds it until the reload has returned, longer than the
// grace the old config gives attempts in flight (5 s), so the reload cuts
// it short: it is not counted, and the event is delivered by the new
// config on its first counted attempt. Events sent during the reload are
// all delivered, to either backend, none twice. Twelve more reloads do not
// make Caddy's goroutines grow.
func TestQueueReloadSlowDelivery(t *testing.T) {
	needCaddy(t)
	recA := newQRecorder(t, "A", qUp)
	recB := newQRecorder(t, "B", qUp)
	db := filepath.Join(t.TempDir(), "q.db")
	opts := "\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h"
	// an explicit transport: Caddy cleans it up at a reload, closing its
	// idle connections; reverse_proxy's default transport is not a module
	// of the config and keeps them until its 2 min idle timeout (Caddy's
	// core, not the queue), which would hide the goroutines measured below
	const proxyOpts = "\t\t\t\t\t\ttransport http {\n\t\t\t\t\t\t\tdial_timeout 10s\n\t\t\t\t\t\t}"
	admin, port := freePort(t), freePort(t)
	cfg := func(up *qRecorder) string { return qConfigProxy(admin, port, db, up.addr(), proxyOpts, opts) }
	c := startCaddy(t, admin, port, cfg(recA))
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()
	bodies := map[string][]byte{}
	var all []string
	send := func(id string) {
		t.Helper()
		bodies[id] = event(id, 2000)
		if st, ans, _, err := qPost(client, c, bodies[id]); err != nil || st != 200 || ans != qQueuedAnswer {
			t.Fatalf("%s: status %d %q, %v", id, st, ans, err)
		}
		all = append(all, id)
	}

	slow := "slow-1"
	release := recA.hold(slow)
	defer release()
	send(slow)
	deadline := time.Now().Add(qDeadline)
	for {
		if held, _, _, _ := recA.counts(slow); held > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend never got %s", slow)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var before []string
	for i := range 10 {
		id := fmt.Sprintf("before-%d", i)
		send(id)
		before = append(before, id)
	}
	qWaitDelivered(t, before, recA)

	// reload while the slow attempt is held; send events meanwhile
	done := make(chan struct{})
	var during []string
	var duringErr []string
	var sendWG sync.WaitGroup
	sendWG.Go(func() {
		cl := newClient(time.Minute)
		defer cl.CloseIdleConnections()
		for i := 0; i < 50; i++ {
			select {
			case <-done:
				return
			default:
			}
			id := fmt.Sprintf("during-%d", i)
			b := event(id, 1500)
			st, ans, _, err := qPost(cl, c, b)
			if err != nil || st != 200 || ans != qQueuedAnswer {
				// a connection error at the instant of the change-over is
				// Caddy's core (see TestReloadUnderLoad), not the queue's:
				// the sender retries
				duringErr = append(duringErr, fmt.Sprintf("%s: %d %q %v", id, st, ans, err))
				continue
			}
			during = append(during, id)
			bodies[id] = b // read by the test goroutine only after sendWG.Wait
			time.Sleep(20 * time.Millisecond)
		}
	})
	start := time.Now()
	out, err := c.reload(cfg(recB), false)
	took := time.Since(start)
	close(done)
	sendWG.Wait()
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	all = append(all, during...)
	// the reload cuts the held attempt short; the backend sees the gateway
	// go (its request's context ends) a moment later, on a goroutine of its
	// own: wait for that (or for the attempt to end otherwise) before
	// counting
	for deadline := time.Now().Add(qDeadline); ; time.Sleep(10 * time.Millisecond) {
		if _, ab, _, dl := recA.counts(slow); ab > 0 || dl > 0 || time.Now().After(deadline) {
			break
		}
	}
	_, abandoned, _, deliveredA := recA.counts(slow)
	t.Logf("reload took %s; %d events sent during it (%d sends failed: %v); the held attempt: abandoned by the gateway %d times, delivered to A %d times",
		took.Round(time.Millisecond), len(during), len(duringErr), duringErr, abandoned, deliveredA)
	release()
	qWaitDelivered(t, []string{slow}, recB)
	qWaitDelivered(t, all, recA, recB)
	qWaitStats(t, c, "all delivered", func(s qStats) bool { return s.Pending == 0 })
	ev, st := qGetEvent(t, c, slow)
	if st != 200 || ev.State != "delivered" || ev.Attempts != 1 {
		t.Errorf("%s after an interrupted attempt and its repetition: status %d, %+v; want delivered with attempts 1 (the interrupted attempt not counted)", slow, st, ev)
	}
	if abandoned != 1 || deliveredA != 0 {
		t.Errorf("%s: the gateway abandoned the held attempt %d times and A took it %d times; want 1 and 0 (cut short by the reload)", slow, abandoned, deliveredA)
	}
	if n := len(recB.deliveries(slow)); n != 1 {
		t.Errorf("%s delivered to B %d times, want 1", slow, n)
	}
	if ev, st := qGetEvent(t, c, before[0]); st != 200 || ev.State != "delivered" || ev.Attempts != 1 {
		t.Errorf("%s: status %d, %+v; want delivered with attempts 1", before[0], st, ev)
	}
	if v, ok := c.scrape().get("caddy_webhook_verify_queue_attempts_total", "queue", qName, "result", "interrupted"); !ok || v < 1 {
		t.Errorf("queue_attempts_total{result=interrupted} = %v (present %v), want at least 1", v, ok)
	}
	qCheckBodies(t, all, bodies, recA, recB)
	extra, twice := qExtra(all, recA, recB)
	t.Logf("%d events delivered (A %d, B %d), %d extra deliveries %v", len(all), len(all)-len(qMissing(all, recA)), len(all)-len(qMissing(all, recB)), extra, twice)
	if extra != 0 {
		t.Errorf("%d extra deliveries across a reload without a crash: %v", extra, twice)
	}

	// more reloads: the goroutines do not grow with them
	goroutines := func() float64 {
		client.CloseIdleConnections()
		return c.scrape().must(t, "go_goroutines")
	}
	base := goroutines()
	const reloads = 12
	var samples []float64
	for i := range reloads {
		up := recA
		if i%2 == 0 {
			up = recB
		}
		if out, err := c.reload(cfg(up), false); err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		var ids []string
		for j := range 3 {
			id := fmt.Sprintf("reload%d-%d", i, j)
			send(id)
			ids = append(ids, id)
		}
		qWaitDelivered(t, ids, up)
		samples = append(samples, goroutines())
	}
	// settled: idle connections and finished attempts gone
	const margin = 15
	deadline = time.Now().Add(30 * time.Second)
	last := goroutines()
	for last > base+margin && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		last = goroutines()
	}
	t.Logf("go_goroutines: %v before %d reloads, %v after each, %v at the end", base, reloads, samples, last)
	if last > base+margin {
		t.Errorf("go_goroutines grew from %v to %v over %d reloads (margin %d)", base, last, reloads, margin)
	}
	qWaitStats(t, c, "all delivered", func(s qStats) bool { return s.Pending == 0 })
	c.assertNoPanic()
}

// TestQueueFailedReloadKeepsDelivering: a reload that fails (the new
// config is refused while it is provisioned, after its queued handler was)
// leaves the running config in place, and its queue keeps delivering.
func TestQueueFailedReloadKeepsDelivering(t *testing.T) {
	needCaddy(t)
	recA := newQRecorder(t, "A", qUp)
	recB := newQRecorder(t, "B", qUp)
	db := filepath.Join(t.TempDir(), "q.db")
	opts := "\t\t\t\tretry 200ms 500ms"
	c := qStart(t, db, recA.addr(), opts)
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()
	send := func(id string) {
		t.Helper()
		b := event(id, 500)
		if st, ans, _, err := qPost(client, c, b); err != nil || st != 200 || ans != qQueuedAnswer {
			t.Fatalf("%s: status %d %q, %v", id, st, ans, err)
		}
	}
	send("fr-before")
	qWaitDelivered(t, []string{"fr-before"}, recA)

	// two handlers with one queue name: refused when the second is
	// provisioned, after the first (delivering to B) was
	bad := qConfig(c.admin, c.http, db, recB.addr(), opts) + fmt.Sprintf(`
http://127.0.0.1:%d {
	webhook_verify vivreal %s {
		queue %s {
			store bbolt %s
			deliver {
				reverse_proxy %s
			}
		}
	}
}
`, freePort(t), vivSecret, qName, db, recB.addr())
	out, err := c.reload(bad, false)
	if err == nil {
		t.Fatalf("the reload to a config with one queue name twice succeeded:\n%s", out)
	}
	if !strings.Contains(out, "queue name") {
		t.Errorf("the failed reload says %q, want the queue name clash", tail(out, 500))
	}
	send("fr-after")
	deadline := time.Now().Add(20 * time.Second)
	for len(qMissing([]string{"fr-after"}, recA, recB)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if miss := qMissing([]string{"fr-after"}, recA, recB); len(miss) > 0 {
		t.Fatalf("after a failed reload, an event queued by the running config is not delivered within 20 s: %+v",
			qQueueStats(t, c))
	}
	if n := len(recB.deliveries("fr-after")); n > 0 {
		t.Errorf("fr-after delivered to B (the refused config's upstream) %d times", n)
	}
	c.assertNoPanic()
}

// TestQueueBackendCutsAnswer: a backend whose answer breaks off after its
// header (a 200 with a Content-Length of 100, 5 bytes, then the connection
// closed) fails the attempt; reverse_proxy panics with
// http.ErrAbortHandler there, which must not end Caddy. The events are
// attempted again, recorded as cut short, and delivered once the backend
// answers whole, each once.
func TestQueueBackendCutsAnswer(t *testing.T) {
	needCaddy(t)
	rec := newQRecorder(t, "backend", qCut)
	db := filepath.Join(t.TempDir(), "q.db")
	c := qStart(t, db, rec.addr(), "\t\t\t\tretry 100ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h")
	client := newClient(30 * time.Second)
	defer client.CloseIdleConnections()
	bodies := map[string][]byte{}
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("cut-%d", i)
		bodies[id] = event(id, 700)
		if st, ans, _, err := qPost(client, c, bodies[id]); err != nil || st != 200 || ans != qQueuedAnswer {
			t.Fatalf("%s: status %d %q, %v", id, st, ans, err)
		}
		ids = append(ids, id)
	}
	// each event's answer cut short twice: Caddy lived through the first
	deadline := time.Now().Add(qDeadline)
	cutTwice := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, id := range ids {
			if rec.cutShort[id] < 2 {
				return false
			}
		}
		return true
	}
	for !cutTwice() && c.alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !c.alive() {
		t.Fatalf("caddy ended on an answer cut short (%v):\n%s", c.waitErr, tail(c.logs.String(), 8<<10))
	}
	if !cutTwice() {
		rec.mu.Lock()
		t.Fatalf("answers cut short by event: %v, want each event attempted at least twice", rec.cutShort)
	}
	// kept for another attempt (which may be under way: retry 100ms)
	for _, id := range ids {
		ev, st := qGetEvent(t, c, id)
		if st != http.StatusOK || (ev.State != "pending" && ev.State != "in_flight") || ev.Attempts < 1 || ev.LastError != "the backend's response was cut short" {
			t.Errorf("%s after answers cut short: status %d, %+v; want pending or in_flight, its last error \"the backend's response was cut short\"", id, st, ev)
		}
	}
	rec.mode.Store(qUp)
	qWaitDelivered(t, ids, rec)
	qWaitStats(t, c, "all delivered", func(s qStats) bool { return s.Pending == 0 && s.Delivered == int64(len(ids)) })
	qCheckBodies(t, ids, bodies, rec)
	if extra, twice := qExtra(ids, rec); extra != 0 {
		t.Errorf("%d extra deliveries: %v", extra, twice)
	}
	if !c.alive() {
		t.Fatalf("caddy ended: %v", c.waitErr)
	}
	c.assertNoPanic()
}

// TestQueueSecondCaddySameFile: a second Caddy with a queue on the file
// the first one holds fails at start, with an error that says the file is
// locked; the first keeps working.
func TestQueueSecondCaddySameFile(t *testing.T) {
	needCaddy(t)
	rec := newQRecorder(t, "backend", qUp)
	db := filepath.Join(t.TempDir(), "q.db")
	c := qStart(t, db, rec.addr(), "")

	dir := t.TempDir()
	admin2, port2 := freePort(t), freePort(t)
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(qConfig(admin2, port2, db, rec.addr(), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Errorf("the second caddy exited 0; want a failure at start:\n%s", tail(string(out), 4000))
	case ctx.Err() != nil:
		t.Errorf("the second caddy still ran after 60 s (killed); want a failure at start:\n%s", tail(string(out), 4000))
	case !errors.As(err, &exit) || exit.ExitCode() <= 0:
		t.Errorf("the second caddy: %v; want a non-zero exit status", err)
	}
	line := ""
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(strings.ToLower(l), "locked") {
			line = l
		}
	}
	if line == "" {
		t.Errorf("the second caddy's output does not say the file is locked:\n%s", tail(string(out), 4000))
	} else if !strings.Contains(line, db) || !strings.Contains(line, "another Caddy") {
		t.Errorf("the error does not name the file and another Caddy: %s", line)
	}
	t.Logf("second caddy: %v after %s: %s", err, took.Round(time.Millisecond), strings.TrimSpace(line))

	// the first one still works
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()
	id := "after-second"
	b := event(id, 1000)
	if st, ans, _, err := qPost(client, c, b); err != nil || st != 200 || ans != qQueuedAnswer {
		t.Fatalf("the first caddy after the second one's failure: status %d %q, %v", st, ans, err)
	}
	qWaitDelivered(t, []string{id}, rec)
	// the backend has it; the queue counts it delivered once it has read
	// the backend's answer, a moment later
	qWaitStats(t, c, "queue of the first caddy", func(s qStats) bool { return s.Delivered == 1 && s.Pending == 0 })
	c.assertNoPanic()
}

// qSmallFS mounts a file system of mib MiB (tmpfs, else an ext4 loop file)
// in a temporary directory, unmounted at cleanup; it skips the test when
// neither can be mounted.
func qSmallFS(t *testing.T, mib int) (dir, kind string) {
	t.Helper()
	base := t.TempDir() // removed after the unmount (cleanups run last first)
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		for i := 0; i < 50; i++ {
			out, err := exec.Command("umount", mnt).CombinedOutput()
			if err == nil {
				return
			}
			if i == 49 {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
				_ = exec.Command("umount", "-l", mnt).Run()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", mnt).CombinedOutput()
	if err == nil {
		t.Cleanup(unmount)
		return mnt, "tmpfs"
	}
	why := fmt.Sprintf("mount -t tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	img := filepath.Join(base, "fs.img")
	for _, args := range [][]string{
		{"dd", "if=/dev/zero", "of=" + img, "bs=1M", fmt.Sprintf("count=%d", mib), "status=none"},
		{"mkfs.ext4", "-q", "-F", "-m", "0", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Skipf("no small file system to fill: %s; and a loop file: %s: %v: %s", why, args[0], err, strings.TrimSpace(string(out)))
		}
	}
	t.Cleanup(unmount)
	return mnt, "ext4 loop file"
}

// TestQueueDiskFull: the bbolt file is on a small file system that a
// filler file fills: events are then refused with 503 and Retry-After,
// never 2xx; the events accepted before are still delivered; once the
// filler is gone new events are accepted again without a restart; and
// after a stop and a start the file opens and nothing accepted is missing.
func TestQueueDiskFull(t *testing.T) {
	needCaddy(t)
	mnt, kind := qSmallFS(t, 24)
	t.Logf("bbolt file on a 24 MiB %s", kind)
	rec := newQRecorder(t, "backend", qDown)
	db := filepath.Join(mnt, "q.db")
	opts := "\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h"
	c := qStart(t, db, rec.addr(), opts)
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()

	bodies := map[string][]byte{}
	var accepted, refused []string
	n := 0
	// send returns the status; a 503 must come with Retry-After
	send := func() int {
		t.Helper()
		id := fmt.Sprintf("disk-%03d", n)
		n++
		b := event(id, 8<<10)
		bodies[id] = b
		st, ans, ra, err := qPost(client, c, b)
		switch {
		case err != nil:
			t.Fatalf("%s: %v", id, err)
		case st == 200 && ans == qQueuedAnswer:
			accepted = append(accepted, id)
		case st == http.StatusServiceUnavailable:
			refused = append(refused, id)
			if ra == "" {
				t.Errorf("%s: 503 without Retry-After", id)
			}
		default:
			t.Errorf("%s: status %d %q, want 200 queued or 503", id, st, ans)
		}
		return st
	}
	for range 20 {
		if st := send(); st != 200 {
			t.Fatalf("event refused (%d) on an empty file system", st)
		}
	}

	// fill until an event is refused, then to the last byte
	fillerPath := filepath.Join(mnt, "filler")
	filler, err := os.Create(fillerPath)
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	chunk := make([]byte, 512<<10)
	full := false
	fill := func() {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("writing the filler: %v", err)
			}
			full = true
		}
	}
	firstRefusal := -1
	for i := 0; i < 200 && firstRefusal < 0; i++ {
		fill()
		if send() == http.StatusServiceUnavailable {
			firstRefusal = len(accepted)
		}
	}
	if firstRefusal < 0 {
		t.Fatalf("no event refused with the file system full (full %v)", full)
	}
	for _, size := range []int{len(chunk), 4096, 1} { // to the last byte
		for i := 0; i < 10000; i++ {
			if _, err := filler.Write(chunk[:size]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("writing the filler: %v", err)
				}
				break
			}
		}
	}
	_ = filler.Sync()
	var st syscall.Statfs_t
	_ = syscall.Statfs(mnt, &st)
	t.Logf("filled: %d bytes free; %d events accepted before the first refusal", int64(st.Bavail)*st.Bsize, firstRefusal)

	// full: retries of the pending events go on (the backend is down)
	// while every new event is refused
	reqs0, t0 := rec.totalRequests(), time.Now()
	for range 10 {
		if st := send(); st != http.StatusServiceUnavailable {
			t.Errorf("event answered %d with the disk full, want 503", st)
		}
	}
	deadline := time.Now().Add(qDeadline)
	for rec.totalRequests() < reqs0+2*len(accepted) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	reqs1, t1 := rec.totalRequests(), time.Now()
	t.Logf("while full: %d delivery attempts in %s for %d pending events", reqs1-reqs0, t1.Sub(t0).Round(time.Millisecond), len(accepted))
	for range 3 {
		if st := send(); st != http.StatusServiceUnavailable {
			t.Errorf("event answered %d with the disk full, want 503", st)
		}
	}
	m := c.scrape()
	if v, _ := m.get(mRequests, "provider", "vivreal", "outcome", "queue_no_space"); v < 1 {
		t.Errorf("%s{outcome=queue_no_space} = %v, want the refusals counted", mRequests, v)
	}
	notQueued, failedRecords := "", 0
	for l := range strings.SplitSeq(c.logs.String(), "\n") {
		if notQueued == "" && strings.Contains(l, "webhook not queued") {
			notQueued = l
		}
		if strings.Contains(l, "recording a delivery attempt failed") {
			failedRecords++
		}
	}
	t.Logf("first refusal logged: %s", notQueued)
	t.Logf("delivery attempts whose outcome could not be written while full: %d", failedRecords)

	// room again: accepted without a restart
	filler.Close()
	if err := os.Remove(fillerPath); err != nil {
		t.Fatal(err)
	}
	nRefused := len(refused)
	deadline = time.Now().Add(30 * time.Second)
	for send() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("no event accepted within 30 s of the filler's removal")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after removing the filler: accepted again after %d more refusals", len(refused)-nRefused)
	for range 5 {
		if st := send(); st != 200 {
			t.Errorf("event answered %d after the filler's removal, want 200", st)
		}
	}

	// everything accepted is delivered
	rec.mode.Store(qUp)
	qWaitDelivered(t, accepted, rec)
	qWaitStats(t, c, "all delivered", func(s qStats) bool { return s.Pending == 0 })
	qCheckBodies(t, accepted, bodies, rec)
	for _, id := range refused {
		if n := len(rec.deliveries(id)); n > 0 {
			t.Logf("%s was refused with 503 but delivered %d times (allowed: the sender retries; a duplicate)", id, n)
		}
	}

	// stop, start again: the file opens, nothing accepted is missing
	if stc := qAdmin(t, c, http.MethodPost, "/stop", nil); stc != 200 {
		t.Errorf("POST /stop: status %d", stc)
	}
	qWaitExit(t, c)
	if c.waitErr != nil {
		t.Errorf("caddy after /stop: %v", c.waitErr)
	}
	c2 := qStart(t, db, rec.addr(), opts)
	s := qQueueStats(t, c2)
	if s.Pending != 0 || s.Dead != 0 || s.Delivered != int64(len(accepted)) {
		t.Errorf("after the restart the queue holds %+v, want %d delivered", s, len(accepted))
	}
	for _, id := range accepted {
		if ev, st := qGetEvent(t, c2, id); st != 200 || ev.State != "delivered" {
			t.Errorf("%s after the restart: status %d %+v, want delivered", id, st, ev)
		}
	}
	extra, twice := qExtra(accepted, rec)
	t.Logf("%d accepted, %d refused, all accepted delivered; %d extra deliveries %v", len(accepted), len(refused), extra, twice)
	if extra != 0 {
		t.Errorf("%d extra deliveries without a crash: %v", extra, twice)
	}
	c.assertNoPanic()
	c2.assertNoPanic()
}

// TestQueueDiskFlapping: in each of 30 rounds, 8 senders post an event
// each while a filler takes all the free space of the bbolt file's file
// system in one write, so that some commits (appends, and the records of
// delivery attempts: the backend is up) meet a full disk after the
// free-space check passed; then the filler is removed. Every answer is 200
// queued or 503 with Retry-After; every event answered 2xx is delivered;
// and after a stop and a start the file opens and holds them all as
// delivered.
func TestQueueDiskFlapping(t *testing.T) {
	needCaddy(t)
	mnt, kind := qSmallFS(t, 64)
	t.Logf("bbolt file on a 64 MiB %s", kind)
	// down while the disk flaps: nothing delivered frees pages, every
	// append needs new ones
	rec := newQRecorder(t, "backend", qDown)
	db := filepath.Join(mnt, "q.db")
	opts := "\t\t\t\tretry 100ms 200ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h"
	c := qStart(t, db, rec.addr(), opts)
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()

	const rounds, senders = 30, 8
	var (
		mu       sync.Mutex
		acked    []string
		refused  int
		unexpect []string
		bodies   = map[string][]byte{}
	)
	for r := range rounds {
		for g := range senders {
			id := fmt.Sprintf("flap-%02d-%d", r, g)
			bodies[id] = event(id, 8<<10+g*4096)
		}
	}
	fillerPath := filepath.Join(mnt, "filler")
	big := make([]byte, 64<<20)
	start := time.Now()
	freeSpace := func() int64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * st.Bsize
	}
	for r := range rounds {
		// one write takes all the space there is; the events are sent
		// while it runs, once the free space is going down (it may be
		// over before they arrive, or not begun: either way is fine)
		f, err := os.Create(fillerPath)
		if err != nil {
			t.Fatal(err)
		}
		free0 := freeSpace()
		filled := make(chan error, 1)
		go func() {
			_, err := f.Write(big)
			filled <- err
		}()
		deadline := time.Now().Add(5 * time.Second)
		for freeSpace() > free0-(free0>>3) && time.Now().Before(deadline) && len(filled) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		var wg sync.WaitGroup
		for g := range senders {
			id := fmt.Sprintf("flap-%02d-%d", r, g)
			wg.Go(func() {
				st, ans, ra, err := qPost(client, c, bodies[id])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					unexpect = append(unexpect, fmt.Sprintf("%s: %v", id, err))
				case st == 200 && ans == qQueuedAnswer:
					acked = append(acked, id)
				case st == http.StatusServiceUnavailable && ra != "":
					refused++
				default:
					unexpect = append(unexpect, fmt.Sprintf("%s: status %d %q, Retry-After %q", id, st, ans, ra))
				}
			})
		}
		wg.Wait()
		if err := <-filled; err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filler: %v", err)
		}
		f.Close()
		if err := os.Remove(fillerPath); err != nil {
			t.Fatal(err)
		}
	}
	sent := time.Since(start)
	rec.mode.Store(qUp)
	if len(unexpect) > 0 {
		t.Errorf("%d answers neither 200 queued nor 503 with Retry-After, e.g. %v", len(unexpect), unexpect[:min(len(unexpect), 5)])
	}

	qWaitDelivered(t, acked, rec)
	qWaitStats(t, c, "everything stored delivered", func(s qStats) bool { return s.Pending == 0 })
	delivered := time.Since(start)
	qCheckBodies(t, acked, bodies, rec)
	var commitNoSpace, checkNoSpace, storeErr, failedRecords int
	for l := range strings.SplitSeq(c.logs.String(), "\n") {
		switch {
		case strings.Contains(l, "webhook not queued") && strings.Contains(l, "no space left"):
			commitNoSpace++
		case strings.Contains(l, "webhook not queued") && strings.Contains(l, "bytes free"):
			checkNoSpace++
		case strings.Contains(l, "webhook not queued"):
			storeErr++
			if storeErr == 1 {
				t.Logf("store error: %s", l)
			}
		case strings.Contains(l, "recording a delivery attempt failed"):
			failedRecords++
		}
	}
	extra, twice := qExtra(acked, rec)
	t.Logf("%d rounds of %d events with the disk filled meanwhile (sent in %s, delivered after %s): %d accepted, %d refused with 503 (%d by a failed commit, %d by the free-space check, %d other store errors); %d attempt outcomes not written; %d extra deliveries %v",
		rounds, senders, sent.Round(time.Millisecond), delivered.Round(time.Millisecond), len(acked), refused, commitNoSpace, checkNoSpace, storeErr, failedRecords, extra, twice)

	if stc := qAdmin(t, c, http.MethodPost, "/stop", nil); stc != 200 {
		t.Errorf("POST /stop: status %d", stc)
	}
	qWaitExit(t, c)
	c2 := qStart(t, db, rec.addr(), opts)
	s := qQueueStats(t, c2)
	if s.Pending != 0 || s.Dead != 0 || s.Delivered < int64(len(acked)) {
		t.Errorf("after the restart the queue holds %+v, want at least the %d accepted, delivered", s, len(acked))
	}
	for _, id := range acked {
		if ev, st := qGetEvent(t, c2, id); st != 200 || ev.State != "delivered" {
			t.Errorf("%s after the restart: status %d %+v, want delivered", id, st, ev)
		}
	}
	// and it takes events again
	b := event("flap-after", 1000)
	if st, ans, _, err := qPost(client, c2, b); err != nil || st != 200 || ans != qQueuedAnswer {
		t.Errorf("after the restart: status %d %q, %v", st, ans, err)
	}
	qWaitDelivered(t, []string{"flap-after"}, rec)
	t.Logf("stopped, started, checked after %s", time.Since(start).Round(time.Millisecond))
	c.assertNoPanic()
	c2.assertNoPanic()
}

// TestQueueDeadReplayCLI: an event the backend always refuses is dead after
// max_attempts, listed by `caddy webhook queue events --state dead`,
// logged, and delivered after `caddy webhook queue replay`.
func TestQueueDeadReplayCLI(t *testing.T) {
	needCaddy(t)
	db := filepath.Join(t.TempDir(), "q.db")
	testDeadReplayCLI(t, func(up, opts string) *caddyProc { return qStart(t, db, up, opts) })
}

// testDeadReplayCLI is TestQueueDeadReplayCLI on the store of the Caddy
// start starts (store redis: queue_redis_test.go).
func testDeadReplayCLI(t *testing.T, start func(up, opts string) *caddyProc) {
	rec := newQRecorder(t, "backend", qFail)
	c := start(rec.addr(), "\t\t\t\tretry 100ms\n\t\t\t\tmax_attempts 2")
	addr := fmt.Sprintf("127.0.0.1:%d", c.admin)
	client := newClient(time.Minute)
	defer client.CloseIdleConnections()
	id := "dead-1"
	b := event(id, 3000)
	if st, ans, _, err := qPost(client, c, b); err != nil || st != 200 || ans != qQueuedAnswer {
		t.Fatalf("status %d %q, %v", st, ans, err)
	}

	deadline := time.Now().Add(qDeadline)
	var dead []qEvent
	for {
		dead = nil
		if st := qAdmin(t, c, http.MethodGet, "/webhook_verify/queues/"+qName+"/events?state=dead", &dead); st != 200 {
			t.Fatalf("GET events?state=dead: status %d", st)
		}
		if len(dead) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not dead after %s: %+v", id, qDeadline, qQueueStats(t, c))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(dead) != 1 || dead[0].ID != id || dead[0].Attempts != 2 || dead[0].LastStatus != 500 {
		t.Errorf("dead events: %+v, want %s after 2 attempts, last status 500", dead, id)
	}
	if _, _, refused, _ := rec.counts(id); refused != 2 {
		t.Errorf("the backend refused %s %d times, want 2 (max_attempts)", id, refused)
	}

	out, err := qCaddyCmd(t, c, "webhook", "queue", "events", qName, "--state", "dead", "--address", addr)
	if err != nil {
		t.Fatalf("caddy webhook queue events: %v\n%s", err, out)
	}
	var listed []qEvent
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].ID != id || listed[0].State != "dead" {
		t.Errorf("caddy webhook queue events --state dead printed %q (%v), want %s, dead", out, err, id)
	}
	if out, err := qCaddyCmd(t, c, "webhook", "queue", "list", "--address", addr); err != nil || !strings.Contains(out, `"dead": 1`) {
		t.Errorf("caddy webhook queue list: %v\n%s", err, out)
	}

	deadLog := ""
	for l := range strings.SplitSeq(c.logs.String(), "\n") {
		if strings.Contains(l, "webhook dead") && strings.Contains(l, id) {
			deadLog = l
		}
	}
	if deadLog == "" {
		t.Errorf("no \"webhook dead\" log line for %s in caddy's output:\n%s", id, tail(c.logs.String(), 4000))
	} else {
		t.Logf("log: %s", deadLog)
	}

	rec.mode.Store(qUp)
	out, err = qCaddyCmd(t, c, "webhook", "queue", "replay", qName, id, "--address", addr)
	if err != nil {
		t.Fatalf("caddy webhook queue replay: %v\n%s", err, out)
	}
	qWaitDelivered(t, []string{id}, rec)
	qCheckBodies(t, []string{id}, map[string][]byte{id: b}, rec)
	s := qWaitStats(t, c, "replayed and delivered", func(s qStats) bool { return s.Pending == 0 && s.Delivered == 1 })
	if s.Dead != 0 {
		t.Errorf("after the replay: %+v", s)
	}
	if ev, st := qGetEvent(t, c, id); st != 200 || ev.State != "delivered" || ev.Attempts != 1 {
		t.Errorf("after the replay: status %d %+v, want delivered on its first attempt after the replay", st, ev)
	}
	// replaying a delivered event whose body was dropped is refused
	if out, err := qCaddyCmd(t, c, "webhook", "queue", "replay", qName, id, "--address", addr); err == nil {
		t.Errorf("replay of a delivered event succeeded: %s", out)
	}
	c.assertNoPanic()
}
