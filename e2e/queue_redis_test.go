package e2e

// Store and forward on Redis through the real binary: several gateways on
// one redis-server (started by the test with AOF and appendfsync always),
// kill -9 of a gateway and of redis-server, a server that would not
// persist, and a Redis that goes away and comes back.

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// qRedisConfig is qConfigProxy with store redis url; the reverse_proxy
// marks its requests with X-Gateway: gateway.
func qRedisConfig(admin, port int, url, gateway, up, opts string) string {
	cfg := qConfigProxy(admin, port, "QSTORE", up, "\t\t\t\t\t\theader_up X-Gateway "+gateway, opts)
	return strings.Replace(cfg, "store bbolt QSTORE", "store redis "+url, 1)
}

func qRedisStart(t *testing.T, url, gateway, up, opts string) *caddyProc {
	t.Helper()
	admin, port := freePort(t), freePort(t)
	return startCaddy(t, admin, port, qRedisConfig(admin, port, url, gateway, up, opts))
}

// qSend posts the events of ids to a gateway gw(i) picks, 8 senders at
// once, and fails the test unless every one was answered queued.
func qSend(t *testing.T, ids []string, bodies map[string][]byte, gw func(i int) *caddyProc) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []string
	next := make(chan int, len(ids))
	for i := range ids {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			client := newClient(time.Minute)
			defer client.CloseIdleConnections()
			for i := range next {
				st, ans, _, err := qPost(client, gw(i), bodies[ids[i]])
				if err != nil || st != http.StatusOK || ans != qQueuedAnswer {
					mu.Lock()
					refused = append(refused, fmt.Sprintf("%s: status %d %q, %v", ids[i], st, ans, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("%d of %d events not answered %s, e.g. %v", len(refused), len(ids), qQueuedAnswer, refused[:min(len(refused), 5)])
	}
}

// TestQueueRedisTwoGatewaysKill9: two gateways on one Redis, 200 events
// sent to both at random while the backend is down; then the backend is
// up but holds every request, gateway A is killed with SIGKILL while one
// of its deliveries is held, the holds are released. Every event reaches
// the backend, byte for byte, from B (A's leased events once their lease
// ends), and twice only for attempts A had in flight at the kill. The
// counts are the queue's, shared: B sees all 200 delivered.
func TestQueueRedisTwoGatewaysKill9(t *testing.T) {
	needCaddy(t)
	srv := redistest.StartDurable(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 10))
	rec := newQRecorder(t, "backend", qDown)
	rec.killTests = true
	const concurrency = 4
	const window = 8 * concurrency // attempts under way at once (attemptWindow in queue.go)
	opts := fmt.Sprintf("\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000\n\t\t\t\tmax_age 1h\n\t\t\t\tattempt_timeout 2s\n\t\t\t\tconcurrency %d", concurrency)
	a := qRedisStart(t, srv.URL(), "a", rec.addr(), opts)
	b := qRedisStart(t, srv.URL(), "b", rec.addr(), opts)

	ids, bodies := qBodies(rng, "two", 200, 200, 16<<10)
	pick := make([]*caddyProc, len(ids))
	for i := range pick {
		pick[i] = []*caddyProc{a, b}[rng.IntN(2)]
	}
	qSend(t, ids, bodies, func(i int) *caddyProc { return pick[i] })
	if s := qQueueStats(t, b); s.Pending+s.Delivered != int64(len(ids)) || s.Delivered != 0 {
		t.Fatalf("B's view of the shared queue after 200 events sent to A and B: %+v", s)
	}

	// the backend comes up, holding every request; the test lets the
	// held requests through one by one until half the events are
	// delivered (both gateways delivering), then kills A while the
	// backend holds one of its deliveries, and lets everything through
	releases := map[string]func(){}
	for _, id := range ids {
		releases[id] = rec.hold(id)
	}
	rec.mode.Store(qUp)
	delivered := func() int { return len(ids) - len(qMissing(ids, rec)) }
	deadline := time.Now().Add(qDeadline)
	for delivered() < len(ids)/2 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events delivered in %s", delivered(), qDeadline)
		}
		rec.mu.Lock()
		var let []string
		for id, n := range rec.held {
			if n > 0 && releases[id] != nil {
				let = append(let, id)
			}
		}
		rec.mu.Unlock()
		for _, id := range let {
			releases[id]()
			delete(releases, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		rec.mu.Lock()
		heldA := rec.heldNow["a"]
		rec.mu.Unlock()
		if heldA > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery from gateway A held by the backend in %s", qDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
	qKill9(t, a)
	n := delivered()
	rec.mu.Lock()
	t.Logf("killed gateway A (pid %d) with SIGKILL, %d events delivered; held requests by gateway: %v, held now %v", a.pid(), n, rec.heldBy, rec.heldNow)
	rec.mu.Unlock()
	for _, release := range releases {
		release()
	}

	qWaitDelivered(t, ids, rec)
	s := qWaitStats(t, b, "all delivered", func(s qStats) bool { return s.Pending == 0 })
	if s.Delivered != int64(len(ids)) || s.Dead != 0 {
		t.Errorf("queue after delivery: %+v, want %d delivered", s, len(ids))
	}
	qCheckBodies(t, ids, bodies, rec)
	extra, twice := qExtra(ids, rec)
	t.Logf("%d events delivered; %d more than once (%d extra deliveries) %v", len(ids), len(twice), extra, twice)
	if extra > window { // A's attempts running, and ended but not yet recorded
		t.Errorf("%d extra deliveries, more than the %d attempts A can have had under way at the kill: %v", extra, window, twice)
	}
	b.assertNoPanic()
}

// TestQueueRedisNotPersisting: a redis-server with appendonly no: every
// queued event is answered 503 with Retry-After, nothing is written to
// Redis, and the log says why at start and for each refused event.
func TestQueueRedisNotPersisting(t *testing.T) {
	needCaddy(t)
	srv := redistest.StartWithArgs(t) // appendonly no (redistest's default)
	rec := newQRecorder(t, "backend", qUp)
	c := qRedisStart(t, srv.URL(), "a", rec.addr(), "")
	client := newClient(30 * time.Second)
	defer client.CloseIdleConnections()
	for i := range 5 {
		body := event(fmt.Sprintf("np-%d", i), 100)
		st, ans, ra, err := qPost(client, c, body)
		if err != nil || st != http.StatusServiceUnavailable || ra == "" {
			t.Fatalf("event %d on a Redis without AOF: status %d %q Retry-After %q, %v; want 503 with Retry-After", i, st, ans, ra, err)
		}
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	if n, err := raw.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("Redis holds %d keys (%v) after refused events, want none", n, err)
	}
	logs := c.logs.String()
	if n := strings.Count(logs, "queue store redis refuses every event (503) until this is fixed"); n != 1 || !strings.Contains(logs, `appendonly is \"no\"`) {
		t.Errorf("want one start-up error naming appendonly; found %d in:\n%s", n, tail(logs, 4000))
	}
	if !strings.Contains(logs, "webhook not queued") {
		t.Errorf("no 'webhook not queued' log line for the refused events")
	}
	if rec.totalRequests() != 0 {
		t.Errorf("the backend got %d requests, want none", rec.totalRequests())
	}
}

// TestQueueRedisKilledAndBack: events are accepted while the backend is
// down; redis-server is killed with SIGKILL: the queued route answers
// 503, a pass-through route of the same Caddy keeps delivering. Redis is
// started again from its AOF: the queued route accepts again by itself,
// and once the backend is up every event accepted before the kill is
// delivered.
func TestQueueRedisKilledAndBack(t *testing.T) {
	needCaddy(t)
	srv := redistest.StartDurable(t)
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 11))
	rec := newQRecorder(t, "backend", qDown)
	pass := newQRecorder(t, "pass-through", qUp)
	admin, port := freePort(t), freePort(t)
	cfg := qRedisConfig(admin, port, srv.URL(), "a", rec.addr(), "\t\t\t\tretry 200ms 500ms\n\t\t\t\tmax_attempts 100000")
	cfg = strings.Replace(cfg, "\thandle /hook {", fmt.Sprintf(`	handle /pass {
		webhook_verify vivreal %s
		reverse_proxy %s
	}
	handle /hook {`, vivSecret, pass.addr()), 1)
	c := startCaddy(t, admin, port, cfg)

	ids, bodies := qBodies(rng, "aof", 100, 100, 8<<10)
	qSend(t, ids, bodies, func(int) *caddyProc { return c })
	srv.Stop() // SIGKILL

	client := newClient(30 * time.Second)
	defer client.CloseIdleConnections()
	body := event("while-down", 100)
	if st, ans, ra, err := qPost(client, c, body); err != nil || st != http.StatusServiceUnavailable || ra == "" {
		t.Fatalf("queued route with Redis down: status %d %q Retry-After %q, %v; want 503", st, ans, ra, err)
	}
	pb := event("pass-1", 100)
	resp, _, err := post(client, c.url("/pass"), pb, signViv(vivSecret, pb))
	if err != nil || resp.StatusCode != http.StatusOK || len(pass.deliveries("pass-1")) != 1 {
		t.Fatalf("pass-through route with Redis down: %v %v, delivered %d; want 200, delivered", resp, err, len(pass.deliveries("pass-1")))
	}

	srv.Restart() // from its AOF
	deadline := time.Now().Add(qDeadline)
	for {
		st, _, _, err := qPost(client, c, body)
		if err == nil && st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queued route did not accept again within %s of Redis's return: %d, %v", qDeadline, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec.mode.Store(qUp)
	qWaitDelivered(t, append(ids, "while-down"), rec)
	qCheckBodies(t, ids, bodies, rec)
	c.assertNoPanic()
}

// TestQueueRedisDeadReplayCLI: dead, listed, replayed and delivered with
// `caddy webhook queue` and the admin API, as on bbolt.
func TestQueueRedisDeadReplayCLI(t *testing.T) {
	needCaddy(t)
	srv := redistest.StartDurable(t)
	testDeadReplayCLI(t, func(up, opts string) *caddyProc { return qRedisStart(t, srv.URL(), "a", up, opts) })
}

// TestQueueRedisPauseShared: paused through one gateway's admin API, the
// queue is paused for both: neither delivers; resumed, both do.
//
// The Redis has a password, given through a placeholder, and the queue
// is in db 3; the admin API never shows the password.
func TestQueueRedisPauseShared(t *testing.T) {
	needCaddy(t)
	const password = "e2e-redis-pw-71c3"
	srv := redistest.StartDurable(t, "--requirepass", password)
	t.Setenv("WV_E2E_REDIS_PASSWORD", password)
	url := "redis://:{env.WV_E2E_REDIS_PASSWORD}@" + srv.Addr() + "/3"
	rec := newQRecorder(t, "backend", qUp)
	a := qRedisStart(t, url, "a", rec.addr(), "")
	b := qRedisStart(t, url, "b", rec.addr(), "")
	if st := qAdmin(t, a, http.MethodGet, "/webhook_verify/queues/"+qName+"/backup", nil); st != http.StatusNotImplemented {
		t.Errorf("backup of a Redis queue: status %d, want 501 (Redis has its own)", st)
	}
	admin := &http.Client{Timeout: 10 * time.Second}
	resp, listing, err := do(admin, mustRequest(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/webhook_verify/queues", a.admin)))
	if err != nil || resp.StatusCode != http.StatusOK || strings.Contains(string(listing), password) || !strings.Contains(string(listing), srv.Addr()+"/3") {
		t.Fatalf("GET /webhook_verify/queues: %v %v %s; want the Redis address and db, never the password", resp, err, listing)
	}
	if st := qAdmin(t, a, http.MethodPost, "/webhook_verify/queues/"+qName+"/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: status %d", st)
	}
	if s := qQueueStats(t, b); !s.Paused {
		t.Fatalf("B after A paused the queue: %+v, want paused", s)
	}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 12))
	ids, bodies := qBodies(rng, "paused", 20, 100, 1000)
	qSend(t, ids, bodies, func(i int) *caddyProc { return []*caddyProc{a, b}[i%2] })
	// both gateways look for due events every 250 ms: a second without
	// a delivery, and the events still pending, says they hold back
	time.Sleep(time.Second)
	if n := rec.totalRequests(); n != 0 {
		t.Fatalf("%d deliveries while the queue is paused", n)
	}
	if s := qQueueStats(t, a); s.Pending != int64(len(ids)) {
		t.Fatalf("paused queue: %+v, want %d pending", s, len(ids))
	}
	// the metrics are the queue's too: B's count the events sent to A
	m := b.scrape()
	if p, d := m.must(t, "caddy_webhook_verify_queue_paused", "queue", qName), m.must(t, "caddy_webhook_verify_queue_events", "queue", qName, "state", "pending"); p != 1 || d != float64(len(ids)) {
		t.Errorf("B's metrics while paused: paused %v, pending %v; want 1, %d", p, d, len(ids))
	}
	if st := qAdmin(t, b, http.MethodPost, "/webhook_verify/queues/"+qName+"/resume", nil); st != http.StatusOK {
		t.Fatalf("resume: status %d", st)
	}
	qWaitDelivered(t, ids, rec)
	qCheckBodies(t, ids, bodies, rec)
	qWaitStats(t, a, "all delivered, seen from A", func(s qStats) bool { return s.Delivered == int64(len(ids)) && s.Pending == 0 })
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password, DB: 3})
	defer raw.Close()
	if n, err := raw.HLen(context.Background(), "whv:{"+qName+"}:ids").Result(); err != nil || n != int64(len(ids)) {
		t.Errorf("db 3 holds %d ids (%v), want %d", n, err, len(ids))
	}
	if strings.Contains(a.logs.String(), password) || strings.Contains(b.logs.String(), password) {
		t.Errorf("the Redis password is in Caddy's log")
	}
	if d := b.scrape().must(t, "caddy_webhook_verify_queue_events", "queue", qName, "state", "delivered"); d != float64(len(ids)) {
		t.Errorf("B's metrics after delivery: %v delivered, want %d", d, len(ids))
	}
}

// TestQueueRedisOrderedAcrossGateways: an ordered queue shared by two
// gateways: 40 events sent one after the other, alternately to A and B,
// while the backend is down (each is retried, so both gateways try the
// head), then the backend comes up: it receives them once each, in the
// order they were sent, from both gateways.
func TestQueueRedisOrderedAcrossGateways(t *testing.T) {
	needCaddy(t)
	srv := redistest.StartDurable(t)
	rec := newQRecorder(t, "backend", qDown)
	opts := "\t\t\t\tordered\n\t\t\t\tretry 100ms 200ms\n\t\t\t\tmax_attempts 100000"
	a := qRedisStart(t, srv.URL(), "a", rec.addr(), opts)
	b := qRedisStart(t, srv.URL(), "b", rec.addr(), opts)
	client := newClient(30 * time.Second)
	defer client.CloseIdleConnections()
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("ord-%02d", i)
		ids = append(ids, id)
		if st, ans, _, err := qPost(client, []*caddyProc{a, b}[i%2], event(id, 200)); err != nil || st != http.StatusOK || ans != qQueuedAnswer {
			t.Fatalf("%s: status %d %q, %v", id, st, ans, err)
		}
	}
	rec.mode.Store(qUp)
	qWaitDelivered(t, ids, rec)
	rec.mu.Lock()
	order := slices.Clone(rec.order)
	from := map[string]int{}
	for _, id := range ids {
		from[rec.delivered[id][0].header.Get("X-Gateway")]++
	}
	rec.mu.Unlock()
	if !slices.Equal(order, ids) {
		t.Fatalf("the backend received\n%v\nwant\n%v", order, ids)
	}
	t.Logf("delivered in order, by gateway: %v", from)
	if from["a"] == 0 || from["b"] == 0 {
		t.Logf("(one gateway delivered them all this time)")
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
