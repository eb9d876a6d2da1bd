package queue

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// quietLogger drops go-redis's own log lines ("failed to dial ...") that
// the tests of a stopped Redis produce.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// redisKit: each model run has its own redis-server, with AOF and
// appendfsync always; a crash is a kill -9 of the server and a start from
// its AOF (the gateway's process holds nothing of the queue).
var redisKit = storeKit{name: "redis", res: time.Microsecond, setup: func(t *testing.T) modelStore {
	return &redisStore{srv: redistest.StartDurable(t)}
}}

type redisStore struct{ srv *redistest.Server }

func (r *redisStore) String() string { return "redis " + r.srv.Addr() }

func (r *redisStore) open() (Engine, error) { return OpenRedis(r.srv.URL(), RedisOptions{}) }

func (r *redisStore) crash(e Engine) error {
	r.srv.Restart()
	return e.Close()
}

// TestRedisStoreModel is the contract suite's model test on the Redis
// store.
func TestRedisStoreModel(t *testing.T) { runModel(t, redisKit) }

// openRedis opens a Redis store of srv (closed when the test ends) and
// its queue "q": one gateway.
func openRedis(t *testing.T, srv *redistest.Server, opts RedisOptions) (*RedisStore, *RedisQueue) {
	t.Helper()
	s, err := OpenRedis(srv.URL(), opts)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	q, err := s.OpenQueue("q")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	return s, q.(*RedisQueue)
}

func rawRedis(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testEvent(id string, at time.Time) *Event {
	return &Event{ID: id, Provider: "vivreal", Method: "POST", URI: "/hooks", ReceivedAt: at, Body: []byte(`{"id":"` + id + `"}`)}
}

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A server that would not persist a write before answering: every
// enqueue refused with ErrNotDurable, nothing written, one report at
// start; appendfsync everysec only under durability relaxed; a CONFIG SET
// while running is seen within CheckEvery, both ways.
func TestRedisDurabilityChecked(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		args       []string
		durability string
		ok         bool
		reason     string
	}{
		{"appendonly no", []string{"--appendonly", "no"}, "", false, `appendonly is "no"`},
		{"appendonly no, relaxed", []string{"--appendonly", "no"}, DurabilityRelaxed, false, `appendonly is "no"`},
		{"everysec", []string{"--appendfsync", "everysec"}, "", false, "appendfsync is everysec"},
		{"everysec, relaxed", []string{"--appendfsync", "everysec"}, DurabilityRelaxed, true, ""},
		{"appendfsync no", []string{"--appendfsync", "no"}, DurabilityRelaxed, false, `appendfsync is "no"`},
		{"always", nil, "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartDurable(t, tc.args...)
			var reports []error
			var mu sync.Mutex
			_, q := openRedis(t, srv, RedisOptions{Durability: tc.durability, OnDurability: func(err error) {
				mu.Lock()
				defer mu.Unlock()
				reports = append(reports, err)
			}})
			mu.Lock()
			if len(reports) != 1 || (reports[0] == nil) != tc.ok || (!tc.ok && !strings.Contains(reports[0].Error(), tc.reason)) {
				t.Errorf("reports at start: %v; want one, ok=%v (%s)", reports, tc.ok, tc.reason)
			}
			mu.Unlock()
			res, err := q.Enqueue(testEvent("e1", now), Limits{})
			if tc.ok {
				if err != nil || res.Duplicate {
					t.Fatalf("Enqueue: %+v, %v; want stored", res, err)
				}
				return
			}
			if !errors.Is(err, ErrNotDurable) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Enqueue: %+v, %v; want ErrNotDurable (%s)", res, err, tc.reason)
			}
			if n := rawRedis(t, srv).DBSize(context.Background()).Val(); n != 0 {
				t.Fatalf("%d keys written by a refused enqueue", n)
			}
		})
	}

	t.Run("config set while running", func(t *testing.T) {
		srv := redistest.StartDurable(t)
		s, q := openRedis(t, srv, RedisOptions{CheckEvery: 20 * time.Millisecond})
		raw := rawRedis(t, srv)
		if _, err := q.Enqueue(testEvent("a", now), Limits{}); err != nil {
			t.Fatal(err)
		}
		raw.ConfigSet(context.Background(), "appendfsync", "everysec")
		waitFor(t, "the store to see appendfsync everysec", func() bool { return s.Durable() != nil })
		if _, err := q.Enqueue(testEvent("b", now), Limits{}); !errors.Is(err, ErrNotDurable) {
			t.Fatalf("Enqueue after CONFIG SET appendfsync everysec: %v, want ErrNotDurable", err)
		}
		raw.ConfigSet(context.Background(), "appendfsync", "always")
		waitFor(t, "the store to see appendfsync always", func() bool { return s.Durable() == nil })
		if _, err := q.Enqueue(testEvent("b", now), Limits{}); err != nil {
			t.Fatalf("Enqueue after CONFIG SET appendfsync always: %v", err)
		}
		if c := q.Counts(); c.Pending != 2 {
			t.Fatalf("Counts %+v, want 2 pending", c)
		}
	})
}

// Two gateways on one Redis: a claimed event is leased to one; the other
// takes it only once the lease expires, and then the first one's outcome
// is refused (its lease is stale); a released lease is due again at once;
// ordered stays one at a time across gateways.
func TestRedisLeases(t *testing.T) {
	srv := redistest.StartDurable(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now.Add(time.Second) }
	sa, a := openRedis(t, srv, RedisOptions{Now: clock})
	sb, b := openRedis(t, srv, RedisOptions{Now: clock})
	var ids []string
	for i := range 6 {
		id := "ev" + strconv.Itoa(i)
		ids = append(ids, id)
		if _, err := a.Enqueue(testEvent(id, now.Add(time.Duration(i)*time.Millisecond)), Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	at := now.Add(time.Second)
	lease := 30 * time.Second
	got, _, err := a.Claim(at, 3, false, lease, none)
	if err != nil || !slices.Equal(idsOf(got), ids[:3]) {
		t.Fatalf("A claims 3: %q, %v", idsOf(got), err)
	}
	got, next, err := b.Claim(at, 10, false, lease, none)
	if err != nil || !slices.Equal(idsOf(got), ids[3:]) {
		t.Fatalf("B claims the rest: %q, %v; want %q", idsOf(got), err, ids[3:])
	}
	if !next.Equal(at.Add(lease)) {
		t.Errorf("next = %v, want the first lease's end %v", next, at.Add(lease))
	}
	if got, _, _ := b.Claim(at.Add(lease-time.Microsecond), 10, false, lease, none); len(got) != 0 {
		t.Fatalf("B claims leased events before the lease ends: %q", idsOf(got))
	}
	if ev, err := b.Get(ids[0], false); err != nil || !ev.LeasedUntil.Equal(at.Add(lease)) {
		t.Fatalf("Get of a leased event: %+v, %v; want LeasedUntil %v", ev, err, at.Add(lease))
	}
	if err := b.Discard(ids[0]); !errors.Is(err, ErrState) {
		t.Fatalf("Discard of an event leased by A: %v, want ErrState", err)
	}

	// A completes ev1; A dies holding ev0 and ev2: B takes them over
	// when the lease ends, and A's late outcome for ev0 is refused
	if err := a.Complete(ids[1], Outcome{Delivered: true, At: at, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	later := at.Add(lease)
	// (B's own leases end too; its dispatcher skips what it is delivering)
	bBusy := func(id string) bool { return slices.Contains(ids[3:], id) }
	got, _, err = b.Claim(later, 10, false, lease, bBusy)
	if err != nil || !slices.Equal(idsOf(got), []string{ids[0], ids[2]}) {
		t.Fatalf("B after A's lease ended: %q, %v; want ev0 ev2", idsOf(got), err)
	}
	if err := a.Complete(ids[0], Outcome{Delivered: true, At: later, TTL: time.Hour}); !errors.Is(err, ErrState) {
		t.Fatalf("A's outcome after B took the event over: %v, want ErrState", err)
	}
	if err := b.Complete(ids[0], Outcome{RetryAt: later.Add(time.Minute), Status: 503, At: later}); err != nil {
		t.Fatalf("B's outcome: %v", err)
	}
	ev, err := b.Get(ids[0], false)
	if err != nil || ev.State != Pending || ev.Attempts != 1 || !ev.DueAt.Equal(later.Add(time.Minute)) || !ev.LeasedUntil.IsZero() {
		t.Fatalf("ev0 after B's failed attempt: %+v, %v", ev, err)
	}

	// a released lease: due again at once, for anyone, attempt not counted
	if err := b.Release(ids[2]); err != nil {
		t.Fatal(err)
	}
	got, _, err = a.Claim(later, 10, false, lease, bBusy)
	if err != nil || !slices.Equal(idsOf(got), []string{ids[2]}) || got[0].Attempts != 0 {
		t.Fatalf("A after B released ev2: %+v, %v", got, err)
	}

	// ordered: the head, leased by A, holds B back until A completes it
	c := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	oa, _ := sa.OpenQueue("ordered")
	ob, _ := sb.OpenQueue("ordered")
	a, b = oa.(*RedisQueue), ob.(*RedisQueue)
	for i := range 3 {
		if _, err := a.Enqueue(testEvent("o"+strconv.Itoa(i), c), Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	got, _, _ = a.Claim(c, 1, true, lease, none)
	if !slices.Equal(idsOf(got), []string{"o0"}) {
		t.Fatalf("A ordered: %q", idsOf(got))
	}
	if got, next, _ := b.Claim(c, 1, true, lease, none); len(got) != 0 || !next.Equal(c.Add(lease)) {
		t.Fatalf("B ordered while A holds the head: %q next %v", idsOf(got), next)
	}
	if err := a.Complete("o0", Outcome{Delivered: true, At: c, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Claim(c, 1, true, lease, none); !slices.Equal(idsOf(got), []string{"o1"}) {
		t.Fatalf("B ordered after A delivered the head: %q, want o1", idsOf(got))
	}
}

// The same ids sent to two gateways at the same instant: each stored once.
func TestRedisSameIDTwoGateways(t *testing.T) {
	srv := redistest.StartDurable(t)
	_, a := openRedis(t, srv, RedisOptions{})
	_, b := openRedis(t, srv, RedisOptions{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var all []enqueued
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 64 {
		q := Backend(a)
		if i%2 == 1 {
			q = b
		}
		wg.Go(func() {
			<-start
			for j := range 10 {
				id := "id" + strconv.Itoa((i/2+j)%40)
				ev := testEvent(id, now)
				ev.Body = []byte(strconv.Itoa(i) + "/" + strconv.Itoa(j))
				res, err := q.Enqueue(ev, Limits{})
				mu.Lock()
				all = append(all, enqueued{id: id, body: ev.Body, res: res, seq: ev.Seq, err: err})
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	won := checkEnqueued(t, a, all)
	if len(won) != 40 {
		t.Fatalf("%d ids stored, want 40", len(won))
	}
	wantCounts(t, b, won)
}

// redis-server killed (kill -9) after events were accepted, started again
// from its AOF: every accepted event is there; meanwhile enqueues fail
// (503) and the store recovers by itself.
func TestRedisKilledAcceptedKept(t *testing.T) {
	srv := redistest.StartDurable(t)
	_, q := openRedis(t, srv, RedisOptions{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if _, err := q.Enqueue(testEvent(id, now), Limits{}); err == nil {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		})
	}
	waitFor(t, "200 accepted events", func() bool { mu.Lock(); defer mu.Unlock(); return len(accepted) >= 200 })
	srv.Stop() // SIGKILL, while the writers write
	close(stop)
	wg.Wait()
	if _, err := q.Enqueue(testEvent("while-down", now), Limits{}); !errors.Is(err, ErrStore) {
		t.Fatalf("Enqueue while Redis is down: %v, want ErrStore", err)
	}
	srv.Restart() // from the AOF
	waitFor(t, "the store to accept again", func() bool {
		_, err := q.Enqueue(testEvent("after", now), Limits{})
		return err == nil
	})
	for id := range accepted {
		if _, err := q.Get(id, true); err != nil {
			t.Fatalf("accepted event %s lost after kill -9 and restart: %v", id, err)
		}
	}
	if c := q.Counts(); c.Pending < int64(len(accepted))+1 {
		t.Fatalf("Counts %+v after restart, want at least %d pending", c, len(accepted)+1)
	}
	t.Logf("%d accepted events, all kept", len(accepted))
}

// BenchmarkEnqueueRedis: (*RedisQueue).Enqueue of the same 1 KiB Vev
// event as BenchmarkEnqueue, 32 writers, against a local redis-server with
// AOF: appendfsync always (durability strict; on Redis < 7.2 that is what
// makes the 2xx honest), and everysec under durability relaxed. Figures:
// BENCHMARKS.md, beside BenchmarkEnqueue's bbolt ones of the same run.
func BenchmarkEnqueueRedis(b *testing.B) {
	const size = 1 << 10
	body, header := benchBody(size), benchHeader(size)
	for _, tc := range []struct {
		name, fsync, durability string
	}{
		{"appendfsync=always", "always", DurabilityStrict},
		{"appendfsync=everysec,relaxed", "everysec", DurabilityRelaxed},
	} {
		for _, writers := range []int{1, 32} {
			b.Run(tc.name+"/size="+sizeName(size)+"/writers="+strconv.Itoa(writers), func(b *testing.B) {
				srv := redistest.StartDurable(b, "--appendfsync", tc.fsync)
				s, err := OpenRedis(srv.URL(), RedisOptions{Durability: tc.durability})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				q, _ := s.OpenQueue("vev")
				lim := Limits{MaxEvents: 1 << 30, MaxBytes: 1 << 42}
				runWriters(b, writers, size, func(int) func(string) error {
					ev := benchEvent(body, header)
					return func(id string) error {
						ev.ID = id
						ev.ReceivedAt = time.Now()
						res, err := q.Enqueue(&ev, lim)
						if err == nil && (res.Duplicate || res.State != Pending) {
							b.Errorf("Enqueue(%s) = %+v", id, res)
						}
						return err
					}
				})
			})
		}
	}
}

// The client runs a script again when its reply was lost (a dropped
// connection after Redis ran it): a claim run twice returns its events
// both times (not leased to nobody), an outcome recorded twice is
// recorded once and reported done.
func TestRedisScriptsRunTwice(t *testing.T) {
	srv := redistest.StartDurable(t)
	_, q := openRedis(t, srv, RedisOptions{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := q.Enqueue(testEvent("e", now), Limits{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, rec, err := q.lookup(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	args := []any{us(now), us(now.Add(time.Minute)), "gw:1", m}
	for i := range 2 {
		out, err := claimScript.Run(ctx, q.s.client, q.keys, args...).Slice()
		if err != nil || len(out) != 3 {
			t.Fatalf("claim run %d: %v, %v; want the event", i+1, out, err)
		}
	}
	ev, _ := decodeRecord(m, rec)
	ev.Attempts, ev.State, ev.DoneAt, ev.ExpiresAt = 1, Delivered, now, now.Add(time.Hour)
	nrec, _ := encodeEvent(ev)
	for i := range 2 {
		r, err := completeScript.Run(ctx, q.s.client, q.keys, m, "gw:1", rec, nrec, "d", us(now.Add(time.Hour)), us(now)).Int64()
		if err != nil || r != 1 {
			t.Fatalf("complete run %d: %v, %v; want 1", i+1, r, err)
		}
	}
	if c := q.Counts(); c != (Counts{Delivered: 1}) {
		t.Fatalf("Counts %+v, want one delivered", c)
	}
}

// The URL's user, password and db are used; a wrong password refuses
// every enqueue (nothing written); a URL that does not parse is refused
// without quoting it (it may hold the password).
func TestRedisURLUserPasswordDB(t *testing.T) {
	srv := redistest.StartDurable(t, "--requirepass", "admin-pw")
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "admin-pw"})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "gw", "on", ">gw-pw-5e1", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := OpenRedis("redis://gw:gw-pw-5e1@"+srv.Addr()+"/2", RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, _ := s.OpenQueue("q")
	if _, err := q.Enqueue(testEvent("u1", now), Limits{}); err != nil {
		t.Fatalf("Enqueue as user gw in db 2: %v", err)
	}
	db2 := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "admin-pw", DB: 2})
	defer db2.Close()
	if n := db2.HLen(ctx, "whv:{q}:ids").Val(); n != 1 {
		t.Fatalf("db 2 holds %d ids, want 1", n)
	}

	bad, err := OpenRedis("redis://gw:wrong@"+srv.Addr()+"/4", RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if bad.Durable() == nil {
		t.Fatal("a store with a wrong password reports durable")
	}
	bq, _ := bad.OpenQueue("q")
	if _, err := bq.Enqueue(testEvent("u2", now), Limits{}); !errors.Is(err, ErrStore) {
		t.Fatalf("Enqueue with a wrong password: %v, want ErrStore", err)
	}
	db4 := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "admin-pw", DB: 4})
	defer db4.Close()
	if n := db4.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("db 4 holds %d keys after a refused enqueue", n)
	}

	if _, err := OpenRedis("redis://gw:secret-9f@host:notaport/0", RedisOptions{}); err == nil || strings.Contains(err.Error(), "secret-9f") {
		t.Fatalf("a bad URL: %v; want an error without the password", err)
	}
}

// WAITAOF is used from Redis 7.2 on (and on Valkey, which reports
// valkey_version); this machine's Redis is 7.0, so the version parsing
// is checked here.
func TestRedisWaitAOFVersion(t *testing.T) {
	for v, want := range map[string]bool{"7.2.0": true, "7.2.4": true, "7.4.1": true, "8.0.0": true, "10.1.2": true,
		"7.0.15": false, "7.1.999": false, "6.2.14": false, "": false, "x.y": false} {
		if got := versionAtLeast(v, 7, 2); got != want {
			t.Errorf("versionAtLeast(%q, 7, 2) = %v, want %v", v, got, want)
		}
	}
	info := "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"
	if infoField(info, "redis_version") != "7.2.4" || infoField(info, "valkey_version") != "8.0.1" || infoField(info, "nope") != "" {
		t.Errorf("infoField of %q", info)
	}
}
