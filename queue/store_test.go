package queue

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The model test: random sequences of operations run against the store
// and against a small in-memory model of the events' states, compared
// after every step. QUEUE_MODEL_SEED=<n> runs sequence n alone (to replay
// a failure: the message names the seed and the step), QUEUE_MODEL_SEEDS
// and QUEUE_MODEL_STEPS change how many sequences and how long.

const (
	modelSeedCount = 50
	modelSteps     = 200
	// sequences run at once
	modelConcurrency = 8
)

// modelQueues are the queues of one store the model test drives: two, so
// that it also sees that ids, counters and flags are per queue.
var modelQueues = []string{"alpha", "beta"}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestStoreModel is the contract suite's model test on the bbolt store.
func TestStoreModel(t *testing.T) { runModel(t, bboltKit) }

// runModel runs the model test against the store kit makes.
func runModel(t *testing.T, kit storeKit) {
	var seeds []uint64
	if v := os.Getenv("QUEUE_MODEL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("QUEUE_MODEL_SEED=%q: %v", v, err)
		}
		seeds = []uint64{n}
	} else {
		for i := range envInt(t, "QUEUE_MODEL_SEEDS", modelSeedCount) {
			seeds = append(seeds, uint64(i+1))
		}
	}
	steps := envInt(t, "QUEUE_MODEL_STEPS", modelSteps)
	var mu sync.Mutex
	hits := map[string]int{}
	t.Run("seeds", func(t *testing.T) {
		// more sequences at once than -parallel allows: they spend
		// most of their time waiting for fsync
		sem := make(chan struct{}, modelConcurrency)
		var wg sync.WaitGroup
		for _, seed := range seeds {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
					r := newModelRun(t, seed, kit)
					defer r.close()
					for r.step = 1; r.step <= steps; r.step++ {
						r.doStep()
					}
					mu.Lock()
					defer mu.Unlock()
					for k, n := range r.hits {
						hits[k] += n
					}
				})
			})
		}
		wg.Wait()
	})
	if t.Failed() || len(seeds) < modelSeedCount || steps < modelSteps {
		return
	}
	// the sequences went down every path the model knows
	t.Logf("paths taken: %v", hits)
	for _, path := range modelPaths {
		if hits[path] == 0 {
			t.Errorf("no sequence took the path %q", path)
		}
	}
}

// modelPaths are the outcomes the model test must see at least once.
var modelPaths = []string{
	"enqueue stored", "enqueue duplicate", "enqueue full", "enqueue again after forgotten",
	"enqueue id of the other queue", "enqueue empty body",
	"complete delivered", "complete retry", "complete dead", "complete not pending",
	"replay dead", "replay dead empty body", "replay delivered", "replay pending", "replay unknown",
	"discard pending", "discard done", "discard unknown", "purge some",
	"pause", "resume", "crash reopen", "reopen", "due some", "due none with next",
	"due truncated", "ordered due", "ordered not yet due", "max pending seen 20",
}

// mEvent is the model of one stored event.
type mEvent struct {
	sent       Event // as given to Enqueue, with its body
	seq        uint64
	state      State
	attempts   int
	replays    int
	dueAt      time.Time // pending only
	lastAt     time.Time
	lastStatus int
	lastError  string
	doneAt     time.Time // delivered or dead
	expiresAt  time.Time
}

// mQueue is the model of one queue.
type mQueue struct {
	name   string
	paused bool
	seq    uint64
	events map[string]*mEvent // the ids the queue remembers, in any state
	ids    []string           // every id ever stored in it, first use first
	known  map[string]bool
}

func (mq *mQueue) counts() Counts {
	var c Counts
	for _, e := range mq.events {
		switch e.state {
		case Pending:
			c.Pending++
			c.PendingBytes += int64(len(e.sent.Body))
		case Delivered:
			c.Delivered++
		case Dead:
			c.Dead++
		}
	}
	return c
}

// full says whether an event of size bytes passes the limits (0: none).
func (mq *mQueue) full(lim Limits, size int) bool {
	c := mq.counts()
	return (lim.MaxEvents > 0 && c.Pending+1 > lim.MaxEvents) ||
		(lim.MaxBytes > 0 && c.PendingBytes+int64(size) > lim.MaxBytes)
}

// inState lists the ids in state st, in first-use order (deterministic,
// unlike the map).
func (mq *mQueue) inState(st State) []string {
	var out []string
	for _, id := range mq.ids {
		if e := mq.events[id]; e != nil && e.state == st {
			out = append(out, id)
		}
	}
	return out
}

// pendingByDue lists the pending events by due time, then seq: the order
// of the store's due index.
func (mq *mQueue) pendingByDue() []*mEvent {
	var out []*mEvent
	for _, id := range mq.ids {
		if e := mq.events[id]; e != nil && e.state == Pending {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *mEvent) int {
		if c := a.dueAt.Compare(b.dueAt); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return out
}

// oldest is the pending event received first (smallest seq), or nil.
func (mq *mQueue) oldest() *mEvent {
	var o *mEvent
	for _, e := range mq.events {
		if e.state == Pending && (o == nil || e.seq < o.seq) {
			o = e
		}
	}
	return o
}

type modelRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	fill *rand.ChaCha8 // the bytes of bodies
	kit  storeKit
	st   modelStore
	// res is the store's resolution of due and expiry times: the
	// model's clock moves in steps of it
	res time.Duration

	s  Engine
	qs map[string]Backend
	ms map[string]*mQueue

	now      time.Time // the model clock: every time the store sees
	step     int
	trace    []string // the steps so far, for the failure message
	nextID   int
	allIDs   []string // ids used in any queue, for cross-queue reuse
	allSeen  map[string]bool
	touched  []string // ids the current step touched: always compared
	reopened bool     // the step reopened the store: compare every id
	hits     map[string]int
}

func newModelRun(t *testing.T, seed uint64, kit storeKit) *modelRun {
	r := &modelRun{
		t:       t,
		seed:    seed,
		rng:     rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)),
		fill:    rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}),
		kit:     kit,
		res:     max(kit.res, 1),
		ms:      map[string]*mQueue{},
		now:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(seed) * time.Hour),
		allSeen: map[string]bool{},
		hits:    map[string]int{},
	}
	r.st = kit.setup(t)
	for _, name := range modelQueues {
		r.ms[name] = &mQueue{name: name, events: map[string]*mEvent{}, known: map[string]bool{}}
	}
	r.open()
	return r
}

func (r *modelRun) close() {
	if r.s != nil {
		_ = r.s.Close()
	}
}

func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	tail := r.trace
	if len(tail) > 25 {
		tail = tail[len(tail)-25:]
	}
	r.t.Fatalf("seed %d, step %d: %s\n(replay: QUEUE_MODEL_SEED=%d go test -run %s ./queue/)\nlast steps:\n  %s",
		r.seed, r.step, fmt.Sprintf(format, args...), r.seed, strings.SplitN(r.t.Name(), "/", 2)[0], strings.Join(tail, "\n  "))
}

func (r *modelRun) hit(path string) { r.hits[path]++ }

func (r *modelRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("%d: ", r.step)+fmt.Sprintf(format, args...))
}

func (r *modelRun) open() {
	s, err := r.st.open()
	if err != nil {
		r.fatalf("open %s: %v", r.st, err)
	}
	r.s, r.qs = s, map[string]Backend{}
	for _, name := range modelQueues {
		q, err := s.OpenQueue(name)
		if err != nil {
			r.fatalf("Queue(%s): %v", name, err)
		}
		r.qs[name] = q
	}
}

// doStep runs one random operation and compares the store with the model.
func (r *modelRun) doStep() {
	r.touched = r.touched[:0]
	// time passes between any two steps, to the nanosecond
	r.now = r.now.Add(r.dur(5 * time.Second))
	name := modelQueues[0]
	if r.rng.IntN(5) == 0 {
		name = modelQueues[1]
	}
	mq := r.ms[name]
	ops := []struct {
		w int
		f func(*mQueue)
	}{
		{24, func(mq *mQueue) { r.enqueue(mq, false) }},
		{8, func(mq *mQueue) { r.enqueue(mq, true) }},
		{13, func(mq *mQueue) { r.attempt(mq, Delivered) }},
		{12, func(mq *mQueue) { r.attempt(mq, Pending) }},
		{8, func(mq *mQueue) { r.attempt(mq, Dead) }},
		{6, r.replay},
		{5, r.discard},
		{4, r.purge},
		{3, r.pause},
		{7, func(*mQueue) { r.advance() }},
		{2, func(*mQueue) { r.reopen(true) }},
		{1, func(*mQueue) { r.reopen(false) }},
	}
	total := 0
	for _, o := range ops {
		total += o.w
	}
	n := r.rng.IntN(total)
	for _, o := range ops {
		if n < o.w {
			o.f(mq)
			break
		}
		n -= o.w
	}
	r.check(mq.name)
}

// newID is a fresh id: mostly like the senders', sometimes long, with
// spaces and non-ASCII, or not UTF-8 at all (a header value may be any
// byte but a control character).
func (r *modelRun) newID() string {
	r.nextID++
	switch r.rng.IntN(25) {
	case 0:
		return fmt.Sprintf("évt %d/日本/%s", r.nextID, strings.Repeat("x", r.rng.IntN(300)))
	case 1:
		return fmt.Sprintf("evt-\xff\xfe-%d", r.nextID)
	}
	return fmt.Sprintf("evt_%d_%08x", r.nextID, r.rng.Uint32())
}

func (r *modelRun) bytes(n int) []byte {
	b := make([]byte, n)
	_, _ = r.fill.Read(b)
	return b
}

func (r *modelRun) body() []byte {
	switch r.rng.IntN(10) {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2, 3, 4, 5:
		return r.bytes(r.rng.IntN(300))
	}
	return r.bytes(r.rng.IntN(8<<10 + 1))
}

var headerValues = []string{"a", "application/json", `q"uo\te`, "café", "日本", "<b>&amp;</b>", "sha256=9f86d0", "  spaced  ", ""}

func (r *modelRun) header() http.Header {
	n := r.rng.IntN(5)
	if n == 0 {
		return nil
	}
	h := http.Header{}
	for range n {
		k := http.CanonicalHeaderKey(fmt.Sprintf("x-h%d", r.rng.IntN(6)))
		h.Add(k, headerValues[r.rng.IntN(len(headerValues))]+strconv.Itoa(r.rng.IntN(100)))
	}
	return h
}

// limits are none half the time, else tight around the event.
func (r *modelRun) limits(mq *mQueue, size int) Limits {
	if r.rng.IntN(2) == 0 {
		return Limits{}
	}
	c := mq.counts()
	var lim Limits
	switch r.rng.IntN(4) {
	case 1:
		lim.MaxEvents = c.Pending // full (or none, when 0)
	case 2:
		lim.MaxEvents = c.Pending + 1 // fits exactly
	case 3:
		lim.MaxEvents = c.Pending + 1 + r.rng.Int64N(3)
	}
	switch r.rng.IntN(4) {
	case 1:
		lim.MaxBytes = c.PendingBytes + int64(size) - 1 // a byte over
	case 2:
		lim.MaxBytes = c.PendingBytes + int64(size) // fits exactly
	case 3:
		lim.MaxBytes = c.PendingBytes + int64(size) + r.rng.Int64N(4096)
	}
	return lim
}

func (r *modelRun) enqueue(mq *mQueue, reuse bool) {
	q := r.qs[mq.name]
	var id string
	switch {
	case reuse && len(mq.ids) > 0 && r.rng.IntN(4) > 0:
		id = mq.ids[r.rng.IntN(len(mq.ids))]
	case reuse && len(r.allIDs) > 0:
		id = r.allIDs[r.rng.IntN(len(r.allIDs))] // maybe another queue's
	default:
		id = r.newID()
	}
	body := r.body()
	ev := Event{
		ID:          id,
		GeneratedID: r.rng.IntN(8) == 0,
		Provider:    []string{"vivreal", "vev", "github"}[r.rng.IntN(3)],
		EventType:   []string{"", "PUBLISH", "push", "évènement"}[r.rng.IntN(4)],
		Method:      []string{http.MethodPost, http.MethodPut}[r.rng.IntN(2)],
		URI:         "/hooks/" + mq.name + "?n=" + strconv.Itoa(r.step),
		Host:        "hooks.example.com",
		Header:      r.header(),
		ClientIP:    "203.0.113." + strconv.Itoa(r.rng.IntN(255)),
		RemoteAddr:  "10.0.0.1:" + strconv.Itoa(1024+r.rng.IntN(60000)),
		ReceivedAt:  r.now,
		Body:        body,
	}
	sent := ev
	sent.Header = ev.Header.Clone()
	sent.Body = bytes.Clone(body)
	lim := r.limits(mq, len(body))
	r.logf("enqueue %s %q (%d bytes) limits %+v", mq.name, id, len(body), lim)
	r.touched = append(r.touched, id)

	res, err := q.Enqueue(&ev, lim)
	old := mq.events[id]
	switch {
	case old != nil:
		if err != nil || !res.Duplicate || res.State != old.state {
			r.fatalf("enqueue of stored id %q (%s): got %+v, %v; want a duplicate in state %s", id, old.state, res, err, old.state)
		}
		r.hit("enqueue duplicate")
	case mq.full(lim, len(body)):
		if !errors.Is(err, ErrFull) || res != (EnqueueResult{}) {
			r.fatalf("enqueue %q over limits %+v (counts %+v, %d bytes): got %+v, %v; want ErrFull", id, lim, mq.counts(), len(body), res, err)
		}
		r.hit("enqueue full")
	default:
		if err != nil || res.Duplicate || res.State != Pending {
			r.fatalf("enqueue %q (%d bytes, limits %+v, counts %+v): got %+v, %v; want stored pending", id, len(body), lim, mq.counts(), res, err)
		}
		if ev.Seq != mq.seq+1 {
			r.fatalf("enqueue %q: seq %d, want %d", id, ev.Seq, mq.seq+1)
		}
		mq.seq++
		mq.events[id] = &mEvent{sent: sent, seq: mq.seq, state: Pending, dueAt: r.now}
		r.hit("enqueue stored")
		if len(body) == 0 {
			r.hit("enqueue empty body")
		}
		if mq.known[id] {
			r.hit("enqueue again after forgotten")
		} else if r.allSeen[id] {
			r.hit("enqueue id of the other queue")
		}
		if !mq.known[id] {
			mq.known[id] = true
			mq.ids = append(mq.ids, id)
		}
		if !r.allSeen[id] {
			r.allSeen[id] = true
			r.allIDs = append(r.allIDs, id)
		}
	}
}

// pick is a random id of the queue in state st ("" any id it ever had,
// remembered or not), or "" when there is none.
func (r *modelRun) pick(mq *mQueue, st State) string {
	ids := mq.ids
	if st != "" {
		ids = mq.inState(st)
	}
	if len(ids) == 0 {
		return ""
	}
	return ids[r.rng.IntN(len(ids))]
}

// attempt records an attempt of a pending event: delivered, failed
// (want Pending: retried later) or dead. Sometimes on an event that is
// not pending, or unknown: ErrUnknown, nothing changes.
func (r *modelRun) attempt(mq *mQueue, want State) {
	q := r.qs[mq.name]
	id := r.pick(mq, Pending)
	if id == "" || r.rng.IntN(15) == 0 {
		id = r.pick(mq, "")
		if r.rng.IntN(3) == 0 || id == "" {
			id = "never-" + strconv.Itoa(r.rng.IntN(1000))
		}
	}
	o := Outcome{At: r.now, TTL: time.Minute + r.dur(2*time.Hour)}
	switch want {
	case Delivered:
		o.Delivered, o.Status = true, []int{200, 202, 204}[r.rng.IntN(3)]
	case Dead:
		o.Dead, o.Status, o.Error = true, []int{0, 410, 500}[r.rng.IntN(3)], "gave up: "+strconv.Itoa(r.step)
	default:
		o.Status, o.Error = []int{0, 429, 502}[r.rng.IntN(3)], "attempt failed: "+strconv.Itoa(r.step)
		o.RetryAt = r.now.Add(time.Second + r.dur(30*time.Minute))
	}
	r.logf("complete %s %q as %s (%+v)", mq.name, id, want, o)
	r.touched = append(r.touched, id)

	err := q.Complete(id, o)
	e := mq.events[id]
	if e == nil || e.state != Pending {
		if !errors.Is(err, ErrUnknown) {
			r.fatalf("Complete(%q) of an event not pending: %v, want ErrUnknown", id, err)
		}
		r.hit("complete not pending")
		return
	}
	if err != nil {
		r.fatalf("Complete(%q): %v", id, err)
	}
	e.attempts++
	e.lastAt, e.lastStatus, e.lastError = r.now, o.Status, o.Error
	r.hit(map[State]string{Delivered: "complete delivered", Dead: "complete dead", Pending: "complete retry"}[want])
	switch want {
	case Delivered, Dead:
		e.state = want
		e.dueAt = time.Time{}
		e.doneAt, e.expiresAt = r.now, r.now.Add(o.TTL)
		if want == Delivered {
			e.lastError = ""
		}
	default:
		e.dueAt = o.RetryAt
	}
}

// replay: a dead event goes back to pending, due now, its attempts reset;
// a delivered one has no body left (ErrState), a pending one is not done
// (ErrState), an unknown id is ErrUnknown.
func (r *modelRun) replay(mq *mQueue) {
	q := r.qs[mq.name]
	var id string
	switch r.rng.IntN(10) {
	case 0, 1, 2, 3, 4, 5:
		id = r.pick(mq, Dead)
	case 6, 7:
		id = r.pick(mq, Delivered)
	case 8:
		id = r.pick(mq, Pending)
	}
	if id == "" {
		id = r.pick(mq, "")
	}
	if id == "" {
		id = "never"
	}
	r.logf("replay %s %q", mq.name, id)
	r.touched = append(r.touched, id)

	ev, err := q.Replay(id, r.now)
	e := mq.events[id]
	switch {
	case e == nil:
		if !errors.Is(err, ErrUnknown) || ev != nil {
			r.fatalf("Replay(%q) of an unknown id: %v, %v; want ErrUnknown", id, ev, err)
		}
		r.hit("replay unknown")
	case e.state != Dead:
		if !errors.Is(err, ErrState) || ev != nil {
			r.fatalf("Replay(%q) of a %s event: %v, %v; want ErrState", id, e.state, ev, err)
		}
		r.hit("replay " + string(e.state))
	default:
		if err != nil {
			r.fatalf("Replay(%q) of a dead event: %v", id, err)
		}
		r.hit("replay dead")
		if len(e.sent.Body) == 0 {
			r.hit("replay dead empty body")
		}
		e.state, e.attempts, e.dueAt = Pending, 0, r.now
		e.doneAt, e.expiresAt = time.Time{}, time.Time{}
		e.replays++
		r.compareEvent(mq, id, ev, false)
	}
}

func (r *modelRun) discard(mq *mQueue) {
	q := r.qs[mq.name]
	id := r.pick(mq, "")
	if id == "" || r.rng.IntN(10) == 0 {
		id = "never-" + strconv.Itoa(r.rng.IntN(1000))
	}
	r.logf("discard %s %q", mq.name, id)
	r.touched = append(r.touched, id)
	err := q.Discard(id)
	if mq.events[id] == nil {
		if !errors.Is(err, ErrUnknown) {
			r.fatalf("Discard(%q) of an unknown id: %v, want ErrUnknown", id, err)
		}
		r.hit("discard unknown")
		return
	}
	if err != nil {
		r.fatalf("Discard(%q): %v", id, err)
	}
	if mq.events[id].state == Pending {
		r.hit("discard pending")
	} else {
		r.hit("discard done")
	}
	delete(mq.events, id)
}

// purge at the model clock, after a jump of up to 3 h half the time.
func (r *modelRun) purge(mq *mQueue) {
	q := r.qs[mq.name]
	if r.rng.IntN(2) == 0 {
		r.now = r.now.Add(r.dur(3 * time.Hour))
	}
	want := 0
	for _, id := range mq.ids {
		e := mq.events[id]
		if e != nil && e.state != Pending && !e.expiresAt.After(r.now) {
			want++
			delete(mq.events, id)
			r.touched = append(r.touched, id)
		}
	}
	r.logf("purge %s at %s: %d expire", mq.name, r.now.Format(time.RFC3339Nano), want)
	n, err := q.Purge(r.now)
	if err != nil || n != want {
		r.fatalf("Purge(%s) = %d, %v; want %d", r.now.Format(time.RFC3339Nano), n, err, want)
	}
	if n > 0 {
		r.hit("purge some")
	}
}

func (r *modelRun) pause(mq *mQueue) {
	p := r.rng.IntN(2) == 0
	r.logf("pause %s %v", mq.name, p)
	if err := r.qs[mq.name].SetPaused(p); err != nil {
		r.fatalf("SetPaused(%v): %v", p, err)
	}
	mq.paused = p
	r.hit(map[bool]string{true: "pause", false: "resume"}[p])
}

func (r *modelRun) advance() {
	d := r.dur(40 * time.Minute)
	r.now = r.now.Add(d)
	r.logf("clock +%s", d)
}

// dur is a random duration below d, in steps of the store's resolution.
func (r *modelRun) dur(d time.Duration) time.Duration {
	return time.Duration(r.rng.Int64N(int64(d))).Truncate(r.res)
}

// reopen closes the store and opens it again. With crash, the store is
// first left as a kill -9 leaves it (the kit says how: a copy of the
// bbolt file taken while it is open; a redis-server killed and started
// again from its AOF).
func (r *modelRun) reopen(crash bool) {
	if crash {
		r.logf("crash: %s", r.st)
		if err := r.st.crash(r.s); err != nil {
			r.fatalf("crash: %v", err)
		}
		r.hit("crash reopen")
	} else {
		r.logf("close and open")
		r.hit("reopen")
		if err := r.s.Close(); err != nil {
			r.fatalf("Close: %v", err)
		}
	}
	r.s = nil
	r.open()
	r.reopened = true // every id is compared
}

// check compares the store with the model: the counts and the flag of
// every queue; the rest for the queue of the step, all queues after a
// reopen and every 8th step.
func (r *modelRun) check(stepQueue string) {
	reopened := r.reopened
	r.reopened = false
	for _, name := range modelQueues {
		mq, q := r.ms[name], r.qs[name]
		c, mc := q.Counts(), mq.counts()
		if c != mc {
			r.fatalf("%s: Counts() = %+v, model %+v", name, c, mc)
		}
		if c.Pending >= 20 {
			r.hit("max pending seen 20")
		}
		if got := q.Paused(); got != mq.paused {
			r.fatalf("%s: Paused() = %v, model %v", name, got, mq.paused)
		}

		if name != stepQueue && !reopened && r.step%8 != 0 {
			continue
		}

		// the ids the step touched (every remembered id after a reopen),
		// and a sample of all it ever had
		ids := r.touched
		if name != stepQueue {
			ids = nil
		}
		ids = slices.Clone(ids)
		if reopened {
			for _, id := range mq.ids {
				if mq.events[id] != nil {
					ids = append(ids, id)
				}
			}
		}
		for range 1 {
			if id := r.pick(mq, ""); id != "" {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			ev, err := q.Get(id, true)
			if mq.events[id] == nil {
				if !errors.Is(err, ErrUnknown) || ev != nil {
					r.fatalf("%s: Get(%q) of an id not remembered: %+v, %v; want ErrUnknown", name, id, ev, err)
				}
				continue
			}
			if err != nil {
				r.fatalf("%s: Get(%q): %v", name, id, err)
			}
			r.compareEvent(mq, id, ev, true)
		}

		r.checkDue(mq, q)

		want := time.Time{}
		if o := mq.oldest(); o != nil {
			want = o.sent.ReceivedAt
		}
		if got, err := q.OldestPending(); err != nil || !got.Equal(want) {
			r.fatalf("%s: OldestPending() = %v, %v; want %v", name, got, err, want)
		}
	}
}

func none(string) bool { return false }

func idsOf(evs []*Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func (r *modelRun) checkDue(mq *mQueue, q Backend) {
	all := mq.pendingByDue()
	var due []string
	next := time.Time{}
	for _, e := range all {
		if e.dueAt.After(r.now) {
			next = e.dueAt
			break
		}
		due = append(due, e.sent.ID)
	}

	// everything due, in due order, with bodies
	evs, gotNext, err := q.Due(r.now, 1<<30, false, none)
	if err != nil {
		r.fatalf("%s: Due: %v", mq.name, err)
	}
	if got := idsOf(evs); !slices.Equal(got, due) {
		r.fatalf("%s: Due(now) = %q, model %q", mq.name, got, due)
	}
	if !gotNext.Equal(next) {
		r.fatalf("%s: Due(now) next = %v, model %v", mq.name, gotNext, next)
	}
	for _, ev := range evs {
		r.compareEvent(mq, ev.ID, ev, true)
	}
	switch {
	case len(due) > 0:
		r.hit("due some")
	case !next.IsZero():
		r.hit("due none with next")
	}

	// at most k of more: the first k, and next is the due time of the
	// first one not returned
	if len(due) > 1 && r.rng.IntN(4) == 0 {
		k := 1 + r.rng.IntN(len(due)-1)
		evs, gotNext, err = q.Due(r.now, k, false, none)
		if err != nil || !slices.Equal(idsOf(evs), due[:k]) || !gotNext.Equal(all[k].dueAt) {
			r.fatalf("%s: Due(now, %d) = %q next %v, %v; model %q next %v", mq.name, k, idsOf(evs), gotNext, err, due[:k], all[k].dueAt)
		}
		r.hit("due truncated")
	}

	// skipping some (in flight): the others, in order
	if len(due) > 0 && r.rng.IntN(8) == 0 {
		skipped := map[string]bool{}
		var rest []string
		for _, id := range due {
			if r.rng.IntN(3) == 0 {
				skipped[id] = true
			} else {
				rest = append(rest, id)
			}
		}
		evs, _, err = q.Due(r.now, 1<<30, false, func(id string) bool { return skipped[id] })
		if err != nil || !slices.Equal(idsOf(evs), rest) {
			r.fatalf("%s: Due(now, skip %v) = %q, %v; model %q", mq.name, skipped, idsOf(evs), err, rest)
		}
	}

	// ordered: only the oldest pending event, and only when it is due
	var wantOrd []string
	wantNext := time.Time{}
	if o := mq.oldest(); o != nil {
		if o.dueAt.After(r.now) {
			wantNext = o.dueAt
		} else {
			wantOrd = []string{o.sent.ID}
		}
	}
	switch {
	case len(wantOrd) > 0:
		r.hit("ordered due")
	case !wantNext.IsZero():
		r.hit("ordered not yet due")
	}
	evs, gotNext, err = q.Due(r.now, 1<<30, true, none)
	if err != nil || !slices.Equal(idsOf(evs), wantOrd) || !gotNext.Equal(wantNext) {
		r.fatalf("%s: Due(now, ordered) = %q next %v, %v; model %q next %v", mq.name, idsOf(evs), gotNext, err, wantOrd, wantNext)
	}
	for _, ev := range evs {
		r.compareEvent(mq, ev.ID, ev, true)
	}
}

func sameHeader(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// compareEvent compares an event read from the store with the model.
func (r *modelRun) compareEvent(mq *mQueue, id string, ev *Event, withBody bool) {
	r.t.Helper()
	e := mq.events[id]
	if e == nil {
		r.fatalf("%s: event %q read, but the model has forgotten it", mq.name, id)
	}
	s := e.sent
	var diffs []string
	diff := func(field string, got, want any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, got, want))
	}
	if ev.ID != id {
		diff("ID", fmt.Sprintf("%q", ev.ID), fmt.Sprintf("%q", id))
	}
	if ev.Seq != e.seq {
		diff("Seq", ev.Seq, e.seq)
	}
	if ev.GeneratedID != s.GeneratedID || ev.Provider != s.Provider || ev.EventType != s.EventType ||
		ev.Method != s.Method || ev.URI != s.URI || ev.Host != s.Host || ev.ClientIP != s.ClientIP ||
		ev.RemoteAddr != s.RemoteAddr {
		diff("request fields", fmt.Sprintf("%v %q %q %q %q %q %q %q", ev.GeneratedID, ev.Provider, ev.EventType, ev.Method, ev.URI, ev.Host, ev.ClientIP, ev.RemoteAddr),
			fmt.Sprintf("%v %q %q %q %q %q %q %q", s.GeneratedID, s.Provider, s.EventType, s.Method, s.URI, s.Host, s.ClientIP, s.RemoteAddr))
	}
	if !sameHeader(ev.Header, s.Header) {
		diff("Header", ev.Header, s.Header)
	}
	if !ev.ReceivedAt.Equal(s.ReceivedAt) {
		diff("ReceivedAt", ev.ReceivedAt, s.ReceivedAt)
	}
	if ev.Size != int64(len(s.Body)) {
		diff("Size", ev.Size, len(s.Body))
	}
	if ev.State != e.state {
		diff("State", ev.State, e.state)
	}
	if ev.Attempts != e.attempts {
		diff("Attempts", ev.Attempts, e.attempts)
	}
	if ev.Replays != e.replays {
		diff("Replays", ev.Replays, e.replays)
	}
	if !ev.DueAt.Equal(e.dueAt) {
		diff("DueAt", ev.DueAt, e.dueAt)
	}
	if !ev.LastAttemptAt.Equal(e.lastAt) || ev.LastStatus != e.lastStatus || ev.LastError != e.lastError {
		diff("last attempt", fmt.Sprintf("%v %d %q", ev.LastAttemptAt, ev.LastStatus, ev.LastError), fmt.Sprintf("%v %d %q", e.lastAt, e.lastStatus, e.lastError))
	}
	if !ev.DoneAt.Equal(e.doneAt) || !ev.ExpiresAt.Equal(e.expiresAt) {
		diff("done/expires", fmt.Sprintf("%v %v", ev.DoneAt, ev.ExpiresAt), fmt.Sprintf("%v %v", e.doneAt, e.expiresAt))
	}
	if withBody {
		want := s.Body
		if e.state == Delivered {
			want = nil // dropped at delivery
		}
		if !bytes.Equal(ev.Body, want) {
			diff("Body", fmt.Sprintf("%d bytes", len(ev.Body)), fmt.Sprintf("%d bytes (equal)", len(want)))
		}
	}
	if len(diffs) > 0 {
		r.fatalf("%s: event %q differs from the model:\n    %s", mq.name, id, strings.Join(diffs, "\n    "))
	}
}

// openTest opens a store at a new path and its queue "q".
func openTest(t *testing.T, path string) (*Store, *Queue) {
	t.Helper()
	return openMerge(t, path, 0) // the default MergeIDs
}

// txID is the id of the store's last committed write transaction: it
// counts the commits.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.view(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

type enqueued struct {
	id   string
	body []byte
	res  EnqueueResult
	seq  uint64
	err  error
}

// checkEnqueued checks concurrent enqueues: every distinct id stored
// exactly once, with the body of the one call that stored it; the others
// are duplicates; seqs distinct. It returns the winners.
func checkEnqueued(t *testing.T, q Backend, all []enqueued) map[string]enqueued {
	t.Helper()
	won := map[string]enqueued{}
	seqs := map[uint64]string{}
	for _, e := range all {
		if e.err != nil {
			t.Fatalf("Enqueue(%s): %v", e.id, e.err)
		}
		if e.res.State != Pending {
			t.Errorf("Enqueue(%s): state %s, want pending", e.id, e.res.State)
		}
		if e.res.Duplicate {
			continue
		}
		if prev, ok := won[e.id]; ok {
			t.Fatalf("id %s stored twice (seq %d and %d)", e.id, prev.seq, e.seq)
		}
		if other, ok := seqs[e.seq]; ok {
			t.Fatalf("seq %d given to %s and %s", e.seq, other, e.id)
		}
		won[e.id], seqs[e.seq] = e, e.id
	}
	for _, e := range all {
		if _, ok := won[e.id]; !ok {
			t.Fatalf("id %s: every enqueue reported a duplicate, none stored it", e.id)
		}
	}
	for id, w := range won {
		ev, err := q.Get(id, true)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if !bytes.Equal(ev.Body, w.body) || ev.Seq != w.seq || ev.Size != int64(len(w.body)) {
			t.Fatalf("Get(%s): seq %d, %d bytes; want the stored call's seq %d, %d bytes", id, ev.Seq, len(ev.Body), w.seq, len(w.body))
		}
	}
	return won
}

func wantCounts(t *testing.T, q Backend, won map[string]enqueued) {
	t.Helper()
	var want Counts
	for _, w := range won {
		want.Pending++
		want.PendingBytes += int64(len(w.body))
	}
	if got := q.Counts(); got != want {
		t.Fatalf("Counts() = %+v, want %+v", got, want)
	}
}

// TestGroupCommit: 64 writers at once. First with the committer held
// inside a transaction until all 64 wait: they must all go into the one
// next transaction. Then free-running, with readers alongside. Each
// distinct id is stored once, the rest are duplicates, counters exact,
// also after a reopen.
func TestGroupCommit(t *testing.T) {
	const writers = 64
	path := filepath.Join(t.TempDir(), "queue.db")
	s, q := openTest(t, path)
	rng := rand.New(rand.NewPCG(7, 7))
	bodies := make([][]byte, writers*20)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "body %d %x", i, rng.Uint64())
		bodies[i] = append(bodies[i], bytes.Repeat([]byte{byte(i)}, rng.IntN(3000))...)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	enqueue := func(id string, body []byte) enqueued {
		ev := &Event{ID: id, Provider: "vev", Method: "POST", URI: "/", ReceivedAt: now, Body: body}
		res, err := q.Enqueue(ev, Limits{MaxEvents: 1 << 20, MaxBytes: 1 << 40})
		return enqueued{id: id, body: body, res: res, seq: ev.Seq, err: err}
	}

	// 1. held: 48 distinct ids, and 16 calls on 4 shared ids
	entered, release := make(chan struct{}), make(chan struct{})
	hold := &op{done: make(chan error, 1), apply: func(*bolt.Tx) error {
		close(entered)
		<-release
		return nil
	}}
	before := txID(t, s)
	s.ops <- hold
	<-entered
	results := make([]enqueued, writers)
	var wg sync.WaitGroup
	for i := range writers {
		id := fmt.Sprintf("solo-%d", i)
		if i >= 48 {
			id = fmt.Sprintf("shared-%d", i%4)
		}
		wg.Go(func() { results[i] = enqueue(id, bodies[i]) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.ops) < writers {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d of %d writes reached the committer's queue", len(s.ops), writers)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-hold.done; err != nil {
		t.Fatalf("held transaction: %v", err)
	}
	if got := txID(t, s) - before; got != 2 {
		t.Fatalf("%d writes waiting took %d commits after the held one; want all in one", writers, got-1)
	}
	won := checkEnqueued(t, q, results)
	if len(won) != 52 {
		t.Fatalf("%d ids stored, want 52", len(won))
	}
	wantCounts(t, q, won)

	// 2. free-running: each writer 16 calls, half on its own ids, half
	// on 32 ids shared by all; readers alongside
	const calls = 16
	before = txID(t, s)
	all := make([][]enqueued, writers)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := q.Counts()
				if c.Pending < 52 || c.PendingBytes < 0 {
					t.Errorf("Counts() = %+v while enqueueing", c)
				}
				if _, _, err := q.Due(now, 8, false, none); err != nil {
					t.Errorf("Due: %v", err)
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			for j := range calls {
				id := fmt.Sprintf("w%d-%d", w, j)
				if j%2 == 1 {
					id = fmt.Sprintf("pool-%d", (w*7+j)%32)
				}
				all[w] = append(all[w], enqueue(id, bodies[writers+w*calls+j]))
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	commits := txID(t, s) - before
	t.Logf("free-running: %d enqueues in %d commits", writers*calls, commits)
	won2 := checkEnqueued(t, q, slices.Concat(all...))
	if len(won2) != writers*calls/2+32 {
		t.Fatalf("%d ids stored, want %d", len(won2), writers*calls/2+32)
	}
	for id, w := range won2 {
		if _, ok := won[id]; ok {
			t.Fatalf("id %s stored in both rounds", id)
		}
		won[id] = w
	}
	wantCounts(t, q, won)
	for _, w := range won {
		if w.seq < 1 || w.seq > uint64(len(won)) {
			t.Fatalf("seq %d of %s outside 1..%d", w.seq, w.id, len(won))
		}
	}

	// 3. the counters are rebuilt from the file
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, q = openTest(t, path)
	wantCounts(t, q, won)
	if res := enqueue("pool-3", []byte("again")); res.err != nil || !res.res.Duplicate {
		t.Fatalf("enqueue of a stored id after reopen: %+v", res)
	}
}

// TestLocked: a second Open of a file in use fails with ErrLocked within
// its LockTimeout, says what to do, and leaves the first store working.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "queue.db")
	s1, q := openTest(t, path)
	const timeout = 200 * time.Millisecond
	start := time.Now()
	s2, err := Open(path, Options{LockTimeout: timeout})
	took := time.Since(start)
	if s2 != nil {
		_ = s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if took > timeout+3*time.Second {
		t.Fatalf("second Open took %s with LockTimeout %s", took, timeout)
	}
	for _, want := range []string{path, "another", "own store path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// the first store is untouched, and still holds the lock
	if _, err := Open(path, Options{LockTimeout: timeout}); !errors.Is(err, ErrLocked) {
		t.Fatalf("third Open: %v, want ErrLocked", err)
	}
	if _, err := q.Enqueue(&Event{ID: "a", ReceivedAt: time.Now(), Body: []byte("x")}, Limits{}); err != nil {
		t.Fatalf("Enqueue on the first store after a failed second Open: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	_, q3 := openTest(t, path)
	if c := q3.Counts(); c.Pending != 1 {
		t.Fatalf("after reopen: %+v", c)
	}
}

// TestBigBody: a 5 MiB random body survives enqueue, reopen, death and
// replay byte for byte.
func TestBigBody(t *testing.T) { forEachStore(t, testBigBody) }

func testBigBody(t *testing.T, st modelStore) {
	s, q := openStore(t, st)
	body := make([]byte, 5<<20)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(body)
	want := bytes.Clone(body)
	now := time.Date(2026, 3, 1, 0, 0, 0, 123, time.UTC)
	if _, err := q.Enqueue(&Event{ID: "big", ReceivedAt: now, Body: body}, Limits{}); err != nil {
		t.Fatal(err)
	}
	clear(body) // the store keeps no reference to the caller's buffer
	get := func(q Backend) {
		t.Helper()
		ev, err := q.Get("big", true)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ev.Body, want) || ev.Size != int64(len(want)) {
			t.Fatalf("body: %d bytes (size %d), differs from the %d enqueued", len(ev.Body), ev.Size, len(want))
		}
	}
	get(q)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, q = openStore(t, st)
	get(q)
	evs, _, err := q.Due(now, 1, false, none)
	if err != nil || len(evs) != 1 || !bytes.Equal(evs[0].Body, want) {
		t.Fatalf("Due after reopen: %d events, %v", len(evs), err)
	}
	if err := q.Complete("big", Outcome{Dead: true, At: now, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// as a kill -9 leaves it
	if err := st.crash(s); err != nil {
		t.Fatal(err)
	}
	_, q = openStore(t, st)
	if _, err := q.Replay("big", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	get(q)
	if c := q.Counts(); c != (Counts{Pending: 1, PendingBytes: 5 << 20}) {
		t.Fatalf("Counts() = %+v", c)
	}
}

// TestClosed: after Close, and while it happens, every write returns
// (ErrClosed, or nil when it was committed first) instead of waiting
// forever for a committer that is gone.
func TestClosed(t *testing.T) {
	dir := t.TempDir()
	watchdog := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: still waiting after 20 s", what)
		}
	}

	s, q := openTest(t, filepath.Join(dir, "a.db"))
	if _, err := q.Enqueue(&Event{ID: "x", ReceivedAt: time.Now()}, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	watchdog("writes after Close", func() {
		for i := range 50 {
			if _, err := q.Enqueue(&Event{ID: "y" + strconv.Itoa(i), ReceivedAt: time.Now()}, Limits{}); !errors.Is(err, ErrClosed) {
				t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
			}
			if err := q.Complete("x", Outcome{Delivered: true, At: time.Now()}); !errors.Is(err, ErrClosed) {
				t.Errorf("Complete after Close: %v, want ErrClosed", err)
			}
			if err := q.SetPaused(true); !errors.Is(err, ErrClosed) {
				t.Errorf("SetPaused after Close: %v, want ErrClosed", err)
			}
		}
	})
	if _, err := q.Get("x", false); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, _, err := q.Due(time.Now(), 1, false, none); !errors.Is(err, ErrClosed) {
		t.Errorf("Due after Close: %v, want ErrClosed", err)
	}

	// Close while 16 writers are busy
	for round := range 5 {
		s, q := openTest(t, filepath.Join(dir, fmt.Sprintf("b%d.db", round)))
		var wg sync.WaitGroup
		var mu sync.Mutex
		stored := map[string]bool{}
		for w := range 16 {
			wg.Go(func() {
				for i := 0; ; i++ {
					id := fmt.Sprintf("w%d-%d", w, i)
					_, err := q.Enqueue(&Event{ID: id, ReceivedAt: time.Now(), Body: []byte(id)}, Limits{})
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("Enqueue while closing: %v", err)
						return
					}
					mu.Lock()
					stored[id] = true
					mu.Unlock()
				}
			})
		}
		for {
			mu.Lock()
			n := len(stored)
			mu.Unlock()
			if n >= 10*(round+1) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		watchdog("Close with writers", func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			wg.Wait()
		})
		// what was answered as stored is in the file
		s2, q2 := openTest(t, s.Path())
		if got := q2.Counts().Pending; got != int64(len(stored)) {
			t.Fatalf("round %d: %d events answered stored, %d in the file", round, len(stored), got)
		}
		_ = s2.Close()
	}
}

// TestIDNotUTF8: an id taken from a header may hold any byte; JSON, which
// keeps the event's fields, cannot. The id the store hands out (Due, Get,
// List, Replay) must be the one stored, or the attempt's Complete finds
// nothing and the event is delivered again and again.
func TestIDNotUTF8(t *testing.T) { forEachStore(t, testIDNotUTF8) }

func testIDNotUTF8(t *testing.T, st modelStore) {
	s, q := openStore(t, st)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"a\xff", "b\xfe\xfd"} {
		if _, err := q.Enqueue(&Event{ID: id, ReceivedAt: now, Body: []byte(id)}, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	evs, _, err := q.Due(now, 10, false, none)
	if err != nil || len(evs) != 2 {
		t.Fatalf("Due: %d, %v", len(evs), err)
	}
	if evs[0].ID != "a\xff" {
		t.Fatalf("Due: id %q, want %q", evs[0].ID, "a\xff")
	}
	if err := q.Complete(evs[0].ID, Outcome{Dead: true, At: now, TTL: time.Hour}); err != nil {
		t.Fatalf("Complete(the id Due gave): %v", err)
	}
	if ev, err := q.Replay("a\xff", now); err != nil || ev.ID != "a\xff" {
		t.Fatalf("Replay: %+v, %v", ev, err)
	}
	list, err := q.List("", 0, 0)
	if err != nil || len(list) != 2 || list[1].ID != "b\xfe\xfd" {
		t.Fatalf("List: %v, %v", idsOf(list), err)
	}
	if err := q.Discard("b\xfe\xfd"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, q = openStore(t, st)
	if c := q.Counts(); c != (Counts{Pending: 1, PendingBytes: 2}) {
		t.Fatalf("after Discard and reopen: %+v", c)
	}
	if _, err := q.Get("b\xfe\xfd", false); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Get of the discarded id: %v", err)
	}
}

// TestBackup: a backup taken while the store runs opens as a store with
// the same events, states, bodies and flag.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	_, q := openTest(t, filepath.Join(dir, "queue.db"))
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		id := "e" + strconv.Itoa(i)
		if _, err := q.Enqueue(&Event{ID: id, ReceivedAt: now, Body: []byte(strings.Repeat(id, 100*i))}, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Complete("e1", Outcome{Dead: true, At: now, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete("e2", Outcome{Delivered: true, At: now, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := q.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := q.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, b := openTest(t, path)
	if got, want := b.Counts(), q.Counts(); got != want || !b.Paused() {
		t.Fatalf("backup: %+v paused %v; store %+v paused true", got, b.Paused(), want)
	}
	for i := range 5 {
		id := "e" + strconv.Itoa(i)
		got, err1 := b.Get(id, true)
		want, err2 := q.Get(id, true)
		if err1 != nil || err2 != nil || got.State != want.State || got.Seq != want.Seq || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("backup's %s: %+v, %v; store's %+v, %v", id, got, err1, want, err2)
		}
	}
}

// Header values, the URI and other text fields that are not valid UTF-8
// (which JSON would change) are stored and delivered byte for byte; an
// empty id or one bbolt cannot take as a key is refused before it can fail
// a group commit.
func TestTextNotUTF8AndBadIDs(t *testing.T) { forEachStore(t, testTextNotUTF8AndBadIDs) }

func testTextNotUTF8AndBadIDs(t *testing.T, st modelStore) {
	s, q := openStore(t, st)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	in := &Event{ID: "bin-1", Method: "POST", URI: "/hook?q=\xff\xfe", Host: "h",
		Header:     http.Header{"X-Raw": {"caf\xe9", "ok"}, "X-Plain": {"plain"}},
		ReceivedAt: now, Body: []byte("{}"), EventType: "e\xc3"}
	if _, err := q.Enqueue(in, Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 40000)} {
		if _, err := q.Enqueue(&Event{ID: bad, ReceivedAt: now, Body: []byte("{}")}, Limits{}); !errors.Is(err, ErrBadID) {
			t.Fatalf("id of %d bytes: %v, want ErrBadID", len(bad), err)
		}
	}
	_ = s.Close()
	s2, q2 := openStore(t, st)
	defer s2.Close()
	evs, _, err := q2.Due(now, 10, false, none)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Due: %d, %v", len(evs), err)
	}
	got := evs[0]
	if got.URI != in.URI || got.EventType != in.EventType || !slices.Equal(got.Header["X-Raw"], in.Header["X-Raw"]) || got.Header.Get("X-Plain") != "plain" {
		t.Fatalf("text fields changed: URI %q event %q header %q", got.URI, got.EventType, got.Header["X-Raw"])
	}
	if c := q2.Counts(); c.Pending != 1 {
		t.Fatalf("counts %+v", c)
	}
}

// TestMigrateFormat1: a file written in the first layout (events and
// bodies keyed by id, records of JSON alone, no format key) is rewritten
// when its queue is opened: every event keeps its state, body, seq and
// due time, and the queue goes on from the highest seq.
func TestMigrateFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	type v1 struct {
		ev   Event
		body []byte
	}
	old := []v1{
		{Event{ID: "p1", Seq: 1, Provider: "vivreal", Method: "POST", URI: "/a", ReceivedAt: now, Size: 2, State: Pending, DueAt: now}, []byte("b1")},
		{Event{ID: "d2", Seq: 2, Provider: "vivreal", Method: "POST", URI: "/b", ReceivedAt: now, Size: 2, State: Dead, Attempts: 3, DoneAt: now, ExpiresAt: now.Add(time.Hour)}, []byte("b2")},
		{Event{ID: "ok3", Seq: 3, Provider: "vivreal", Method: "POST", URI: "/c", ReceivedAt: now, Size: 2, State: Delivered, Attempts: 1, DoneAt: now, ExpiresAt: now.Add(time.Hour)}, nil},
		{Event{ID: "p4", Seq: 4, Provider: "vivreal", Method: "POST", URI: "/d", ReceivedAt: now, Size: 2, State: Pending, Attempts: 1, DueAt: now.Add(time.Minute)}, []byte("b4")},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucket([]byte("queues"))
		if err != nil {
			return err
		}
		b, err := root.CreateBucket([]byte("q1"))
		if err != nil {
			return err
		}
		bk := map[string]*bolt.Bucket{}
		for _, n := range []string{"events", "bodies", "due", "order", "expire", "meta"} {
			if bk[n], err = b.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		for _, o := range old {
			js, err := encodeJSON(&o.ev) // format 1: the JSON alone
			if err != nil {
				return err
			}
			id := []byte(o.ev.ID)
			if err := bk["events"].Put(id, js); err != nil {
				return err
			}
			if o.body != nil {
				if err := bk["bodies"].Put(id, o.body); err != nil {
					return err
				}
			}
			switch o.ev.State {
			case Pending:
				if err := bk["due"].Put(timeKey(o.ev.DueAt, o.ev.Seq), id); err != nil {
					return err
				}
				if err := bk["order"].Put(seqKey(o.ev.Seq), id); err != nil {
					return err
				}
			default:
				if err := bk["expire"].Put(timeKey(o.ev.ExpiresAt, o.ev.Seq), id); err != nil {
					return err
				}
			}
		}
		return bk["meta"].Put(keySeq, seqKey(4))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // migrated, then opened again as format 2
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		q, err := s.Queue("q1")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if c := q.Counts(); c != (Counts{Pending: 2, PendingBytes: 4, Delivered: 1, Dead: 1}) {
			t.Fatalf("round %d: counts %+v", round, c)
		}
		for _, o := range old {
			ev, err := q.Get(o.ev.ID, true)
			if err != nil {
				t.Fatalf("round %d: Get(%s): %v", round, o.ev.ID, err)
			}
			if ev.State != o.ev.State || ev.Seq != o.ev.Seq || !bytes.Equal(ev.Body, o.body) || ev.URI != o.ev.URI {
				t.Fatalf("round %d: %s = %+v body %q", round, o.ev.ID, ev, ev.Body)
			}
		}
		evs, _, err := q.Due(now.Add(2*time.Minute), 10, false, none)
		if err != nil || len(evs) != 2 || evs[0].ID != "p1" || evs[1].ID != "p4" || string(evs[1].Body) != "b4" {
			t.Fatalf("round %d: Due: %v, %v", round, idsOf(evs), err)
		}
		if round == 0 {
			if _, err := q.Replay("d2", now); err != nil {
				t.Fatalf("Replay of the migrated dead event: %v", err)
			}
			if err := q.Complete("d2", Outcome{Dead: true, At: now, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		ev := &Event{ID: fmt.Sprintf("new%d", round), ReceivedAt: now, Body: []byte("n")}
		if _, err := q.Enqueue(ev, Limits{}); err != nil {
			t.Fatal(err)
		}
		if ev.Seq != uint64(5+round) {
			t.Fatalf("round %d: the new event's seq is %d, want %d", round, ev.Seq, 5+round)
		}
		if err := q.Discard(ev.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
