package webhookverify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/queue"
)

// Queue defaults.
var (
	DefaultRetry = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour}
)

const (
	DefaultMaxAge           = 72 * time.Hour
	DefaultMaxAttempts      = 20
	DefaultAttemptTimeout   = 30 * time.Second
	DefaultConcurrency      = 4
	DefaultMaxPendingEvents = 100_000
	DefaultMaxPendingBytes  = 1 << 30
	DefaultQueueTTL         = 72 * time.Hour
	// maxQueueDuration bounds every duration of a queue: the store keeps
	// its times as nanoseconds since 1970, which reach only to 2262.
	maxQueueDuration     = caddy.Duration(100 * 365 * 24 * time.Hour)
	maxQueueDurationText = "100 years (876000h)"
	queueStopGrace       = 5 * time.Second // attempts in flight at a reload or stop
	queuePurgeEvery      = time.Minute
	queueStoreBackoff    = time.Second      // no dispatch for this long after a store error
	queueWorkerIdle      = 10 * time.Second // an idle attempt worker ends after this
	// attemptWindow × concurrency attempts may be under way: running, or
	// ended and their outcomes waiting for the group commit, which takes
	// the outcomes of the attempts that ended during the one before
	attemptWindow = 8
	// a lease (store redis) lasts attempt_timeout and this: the attempt
	// and the commit of its outcome
	queueLeaseMargin = 10 * time.Second
)

// Reasons of the queue's refusals.
var (
	ErrQueueFull    = errors.New("queue full")
	ErrQueueNoSpace = errors.New("disk short of space")
	ErrQueueStore   = errors.New("queue store unavailable")
	ErrIDTooLong    = errors.New("event id too long")
)

// maxEventIDLen bounds a queued event's id (the store's key).
const maxEventIDLen = 1024

// Queue is store and forward: a verified event is written durably to a
// bbolt file (the transaction's fsync returned), or to Redis (in its AOF
// on disk), before the sender is answered 200 {"received":true,"queued":true}, and the gateway then
// delivers it itself through the deliver handlers, retrying on failure,
// and keeping it as dead when it cannot be delivered.
//
// A store error, a queue over max_pending or a disk short of space is
// answered 503 with Retry-After, never 2xx. An event whose id is already
// stored (any state, within ttl) is answered 200
// {"received":true,"duplicate":true} and not stored again: the id check
// and the append are one transaction.
type Queue struct {
	// The queue's name, unique in the config; it names the queue in the
	// admin API and the metrics. Default: the provider's name.
	Name string `json:"name,omitempty"`

	// "bbolt" (default): a file on this machine, one process. "redis":
	// a Redis server shared by several gateways (each event stored once,
	// delivered by one gateway at a time under a lease, taken over by
	// another when that one dies).
	Store string `json:"store,omitempty"`

	// The bbolt file. Default: webhook_verify/queue.db in Caddy's data
	// directory. One process at a time: a second Caddy on the same file
	// fails at start. Several queues may share a file.
	Path string `json:"path,omitempty"`

	// The Redis URL of store redis: redis:// or rediss://, with user,
	// password and db, e.g. redis://:{env.REDIS_PASSWORD}@10.0.0.5:6379/0
	// (placeholders resolved at start).
	RedisURL string `json:"redis_url,omitempty"`

	// Store redis: "strict" (default) answers 2xx only once the event is
	// in the AOF on disk: WAITAOF confirms it (Redis >= 7.2, Valkey), or
	// the server runs appendonly yes with appendfsync always (checked at
	// start, on every new connection and every second). "relaxed" also
	// accepts appendfsync everysec on a server without WAITAOF: a power
	// loss may then lose up to a second of acknowledged events.
	Durability string `json:"durability,omitempty"`

	// The handlers that deliver an event, as inside a handle block,
	// typically one reverse_proxy. A 2xx they write delivers the event;
	// anything else is a failed attempt. Required.
	Deliver caddyhttp.RouteList `json:"deliver,omitempty"`

	// The gaps between attempts; the last repeats. Each gap gets up to
	// 10 % jitter, never less. Default: 10s 1m 5m 30m 1h 2h 4h 8h 12h.
	Retry []caddy.Duration `json:"retry,omitempty"`

	// How long after receipt an event may still be attempted; past it a
	// failed event is dead. Default: 72h.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// The most attempts; after the last failed one the event is dead.
	// Default: 20.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// How long one attempt may take. Default: 30s.
	AttemptTimeout caddy.Duration `json:"attempt_timeout,omitempty"`

	// Deliveries at once. Default: 4. While the outcomes of attempts
	// wait for their group commit the next attempts run, up to 8 times
	// this many under way, so a crash delivers again at most 8 times
	// this many events: the attempts running, and those ended whose
	// outcome was not yet committed.
	Concurrency int `json:"concurrency,omitempty"`

	// Deliver one event at a time, in order of receipt: a failing event
	// holds the ones after it until it is delivered or dead.
	Ordered bool `json:"ordered,omitempty"`

	// The most events, and bytes of bodies, waiting to be delivered; an
	// event past either is answered 503. Default: 100000 and 1 GiB.
	MaxPendingEvents int64 `json:"max_pending_events,omitempty"`
	MaxPendingBytes  int64 `json:"max_pending_bytes,omitempty"`

	// How long a delivered or dead event's id (and metadata; a dead
	// event's body too) is kept, for dedupe and for operators. Default:
	// 72h.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// Refuse an event without an id with 400 instead of storing it under
	// a generated id (not deduplicated).
	RequireID bool `json:"require_id,omitempty"`

	rt      *queueRuntime
	target  *deliveryTarget
	poolKey string
	named   *queueName
}

// queueFiles holds the open bbolt files across reloads.
var queueFiles = caddy.NewUsagePool()

type queueFile struct {
	store    queue.Engine
	mu       sync.Mutex
	runtimes map[string]*queueRuntime
}

func (f *queueFile) Destruct() error {
	f.mu.Lock()
	rts := make([]*queueRuntime, 0, len(f.runtimes))
	for _, rt := range f.runtimes {
		rts = append(rts, rt)
	}
	f.mu.Unlock()
	for _, rt := range rts {
		rt.shutdown()
	}
	return f.store.Close()
}

// queueNames makes a queue's name unique in a config, and lets the admin
// API find the queues of the running config.
var queueNames = struct {
	sync.Mutex
	byConfig map[any]map[string]*queueRuntime
	live     map[string][]*queueRuntime // by name, newest last
}{byConfig: map[any]map[string]*queueRuntime{}, live: map[string][]*queueRuntime{}}

type queueName struct {
	config any
	name   string
	rt     *queueRuntime
}

func (q *Queue) provision(ctx caddy.Context, h *Handler) (err error) {
	if h.Dedupe != nil {
		return fmt.Errorf("queue: dedupe and queue in one handler: the queue deduplicates by id itself; remove the dedupe block")
	}
	if h.idIndex < 0 {
		return fmt.Errorf("queue: this provider has no event id")
	}
	switch q.Store {
	case "", "bbolt":
		if q.RedisURL != "" || q.Durability != "" {
			return fmt.Errorf("queue: redis_url and durability are for store redis")
		}
	case "redis":
		if q.RedisURL == "" {
			return fmt.Errorf("queue: store redis needs a URL: store redis redis://host:6379/0")
		}
		if q.Path != "" {
			return fmt.Errorf("queue: a path is for store bbolt, not redis")
		}
		switch q.Durability {
		case "", queue.DurabilityStrict, queue.DurabilityRelaxed:
		default:
			return fmt.Errorf("queue: unknown durability '%s': strict or relaxed", q.Durability)
		}
	default:
		return fmt.Errorf("queue: unknown store '%s': use bbolt or redis", q.Store)
	}
	if len(q.Deliver) == 0 {
		return fmt.Errorf("queue: no deliver handlers: add deliver { reverse_proxy <backend> }")
	}
	if q.Name == "" {
		q.Name = h.name
	}
	if len(q.Retry) == 0 {
		for _, d := range DefaultRetry {
			q.Retry = append(q.Retry, caddy.Duration(d))
		}
	}
	for i, d := range q.Retry {
		if d <= 0 {
			return fmt.Errorf("queue: retry gap %d must be positive", i+1)
		}
		if d > maxQueueDuration {
			return fmt.Errorf("queue: retry gap %d is over %s", i+1, maxQueueDurationText)
		}
	}
	for _, v := range []struct {
		name string
		d    caddy.Duration
	}{{"max_age", q.MaxAge}, {"attempt_timeout", q.AttemptTimeout}, {"ttl", q.TTL}} {
		if v.d > maxQueueDuration {
			return fmt.Errorf("queue: %s is over %s", v.name, maxQueueDurationText)
		}
	}
	setDefault(&q.MaxAge, DefaultMaxAge)
	setDefault(&q.AttemptTimeout, DefaultAttemptTimeout)
	setDefault(&q.TTL, DefaultQueueTTL)
	if q.MaxAttempts == 0 {
		q.MaxAttempts = DefaultMaxAttempts
	}
	if q.Concurrency == 0 {
		q.Concurrency = DefaultConcurrency
	}
	if q.MaxPendingEvents == 0 {
		q.MaxPendingEvents = DefaultMaxPendingEvents
	}
	if q.MaxPendingBytes == 0 {
		q.MaxPendingBytes = DefaultMaxPendingBytes
	}
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"max_age", q.MaxAge < 0}, {"attempt_timeout", q.AttemptTimeout < 0}, {"ttl", q.TTL < 0},
		{"max_attempts", q.MaxAttempts < 0}, {"concurrency", q.Concurrency < 0},
		{"max_pending events", q.MaxPendingEvents < 0}, {"max_pending size", q.MaxPendingBytes < 0},
	} {
		if v.bad {
			return fmt.Errorf("queue: %s must be positive", v.name)
		}
	}
	if q.MaxPendingBytes < h.MaxBodySize {
		return fmt.Errorf("queue: max_pending size (%d) is smaller than max_body_size (%d): no event of the largest size could be queued", q.MaxPendingBytes, h.MaxBodySize)
	}
	var redisURL string
	if q.Store == "redis" {
		if redisURL, err = resolve(caddy.NewReplacer(), q.RedisURL, "redis url"); err != nil {
			return fmt.Errorf("queue: %v", err)
		}
	} else {
		if q.Path == "" {
			q.Path = filepath.Join(caddy.AppDataDir(), "webhook_verify", "queue.db")
		}
		path, err := filepath.Abs(q.Path)
		if err != nil {
			return fmt.Errorf("queue: path %s: %v", q.Path, err)
		}
		q.Path = path
	}

	defer func() {
		if err != nil {
			q.cleanup()
		}
	}()

	// the delivery chain, provisioned with this handler: a real nested
	// reverse_proxy with its load balancing, health checks and TLS
	if err := q.Deliver.Provision(ctx); err != nil {
		return fmt.Errorf("queue %s: deliver: %v", q.Name, err)
	}
	key, where := q.Path, q.Path
	open := func() (queue.Engine, error) { return queue.Open(q.Path, queue.Options{}) }
	if q.Store == "redis" {
		durability := cmp.Or(q.Durability, queue.DurabilityStrict)
		key, where = "redis|"+durability+"|"+redisURL, redactURL(redisURL)
		logger := h.logger
		open = func() (queue.Engine, error) {
			return queue.OpenRedis(redisURL, queue.RedisOptions{
				Durability: durability,
				OnDurability: func(err error) {
					if err != nil {
						logger.Error("queue store redis refuses every event (503) until this is fixed",
							zap.String("redis", where), zap.Error(err))
					} else {
						logger.Info("queue store redis persists writes before answering; accepting events",
							zap.String("redis", where), zap.String("durability", durability))
					}
				},
			})
		}
	}
	v, _, err := queueFiles.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := open()
		if err != nil {
			return nil, err
		}
		return &queueFile{store: st, runtimes: map[string]*queueRuntime{}}, nil
	})
	if err != nil {
		return fmt.Errorf("queue %s: %v", q.Name, err)
	}
	q.poolKey = key
	file := v.(*queueFile)
	file.mu.Lock()
	rt := file.runtimes[q.Name]
	if rt == nil {
		sq, err := file.store.OpenQueue(q.Name)
		if err != nil {
			file.mu.Unlock()
			return fmt.Errorf("queue %s: %v", q.Name, err)
		}
		rt = newQueueRuntime(q.Name, sq)
		rt.path = where
		file.runtimes[q.Name] = rt
	}
	file.mu.Unlock()
	q.rt = rt

	if err := q.register(ctx, rt); err != nil {
		return err
	}

	tctx, cancel := context.WithCancel(context.Background())
	q.target = &deliveryTarget{
		h:      h,
		cfg:    q,
		chain:  q.Deliver.Compile(caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })),
		ctx:    tctx,
		cancel: cancel,
		logger: h.logger,
	}
	rt.attach(q.target)
	return nil
}

// redactURL is a Redis URL without its password, for logs and the admin
// API.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "redis"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

func setDefault(d *caddy.Duration, def time.Duration) {
	if *d == 0 {
		*d = caddy.Duration(def)
	}
}

func (q *Queue) register(ctx caddy.Context, rt *queueRuntime) error {
	cfg := configOf(ctx)
	queueNames.Lock()
	defer queueNames.Unlock()
	names := queueNames.byConfig[cfg]
	if names == nil {
		names = map[string]*queueRuntime{}
		queueNames.byConfig[cfg] = names
	}
	if _, taken := names[q.Name]; taken {
		return fmt.Errorf("queue: two handlers of this config use the queue name %q: give each its own (queue <name> { ... })", q.Name)
	}
	names[q.Name] = rt
	queueNames.live[q.Name] = append(queueNames.live[q.Name], rt)
	q.named = &queueName{config: cfg, name: q.Name, rt: rt}
	return nil
}

func (q *Queue) cleanup() {
	if q.target != nil {
		q.rt.detach(q.target)
		q.target = nil
	}
	if n := q.named; n != nil {
		queueNames.Lock()
		if names := queueNames.byConfig[n.config]; names != nil {
			delete(names, n.name)
			if len(names) == 0 {
				delete(queueNames.byConfig, n.config)
			}
		}
		live := queueNames.live[n.name]
		for i, rt := range live {
			if rt == n.rt {
				live = append(live[:i:i], live[i+1:]...)
				break
			}
		}
		if len(live) == 0 {
			delete(queueNames.live, n.name)
		} else {
			queueNames.live[n.name] = live
		}
		queueNames.Unlock()
		q.named = nil
	}
	if q.poolKey != "" {
		_, _ = queueFiles.Delete(q.poolKey)
		q.poolKey = ""
	}
}

// liveQueue is the runtime of the named queue of the running config.
func liveQueue(name string) *queueRuntime {
	queueNames.Lock()
	defer queueNames.Unlock()
	live := queueNames.live[name]
	if len(live) == 0 {
		return nil
	}
	return live[len(live)-1]
}

// liveQueues lists the running queues, one per name.
func liveQueues() []*queueRuntime {
	queueNames.Lock()
	defer queueNames.Unlock()
	out := make([]*queueRuntime, 0, len(queueNames.live))
	for _, live := range queueNames.live {
		out = append(out, live[len(live)-1])
	}
	return out
}

// serveQueue stores a verified request and answers the sender.
func (h *Handler) serveQueue(w http.ResponseWriter, r *http.Request, body *verifiedBody) error {
	q := h.Queue
	if s, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && q.target.server.Load() != s {
		q.target.server.Store(s) // delivery runs its requests as this server's
	}
	id := body.field(h.idIndex)
	generated := false
	unverified := body.failed != nil // enforce off: stored under an id of its own (deliver)
	if id == "" || unverified {
		if q.RequireID && !unverified {
			return h.refuse(r, caddyhttp.Error(http.StatusBadRequest, ErrNoID))
		}
		id, generated = newEventID(h.now()), true
	}
	if len(id) > maxEventIDLen {
		// a key bbolt would refuse, failing the whole group commit
		return h.refuse(r, caddyhttp.Error(http.StatusBadRequest, ErrIDTooLong))
	}
	ev := &queue.Event{
		ID:          id,
		GeneratedID: generated,
		Provider:    h.name,
		Method:      r.Method,
		URI:         r.RequestURI,
		Host:        r.Host,
		Header:      r.Header, // encoded inside Enqueue, which returns before r moves on
		ClientIP:    clientIP(r),
		RemoteAddr:  r.RemoteAddr,
		ReceivedAt:  h.now(),
		Body:        body.bytes(),
		Unverified:  unverified,
		Key:         body.key + 1,
	}
	if unverified {
		ev.Key = 0
	}
	if i := h.fieldIndex("event"); i >= 0 {
		ev.EventType = body.field(i)
	}
	start := time.Now()
	res, err := q.rt.q.Enqueue(ev, queue.Limits{MaxEvents: q.MaxPendingEvents, MaxBytes: q.MaxPendingBytes})
	queueMetrics.enqueue.WithLabelValues(q.Name).Observe(time.Since(start).Seconds())
	if err != nil {
		w.Header().Set("Retry-After", retryAfter503)
		reason := ErrQueueStore
		switch {
		case errors.Is(err, queue.ErrFull):
			reason = ErrQueueFull
		case errors.Is(err, queue.ErrNoSpace):
			reason = ErrQueueNoSpace
		}
		if !unverified { // counted by report, once
			h.metrics.count(outcomeOf(reason))
		}
		if c := h.logger.Check(zapcore.ErrorLevel, "webhook not queued"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("queue", q.Name), zap.String("id", id),
				zap.String("client_ip", clientIP(r)), zap.Error(err))
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, reason)
	}
	w.Header().Set("Content-Type", "application/json")
	if res.Duplicate {
		h.metrics.count(outcomeDuplicate)
		h.logDuplicateState(r, id, string(res.State))
		w.WriteHeader(http.StatusOK)
		_, err := w.Write([]byte(`{"received":true,"duplicate":true}`))
		return err
	}
	if !unverified { // counted by report
		h.metrics.count(outcomeQueued)
	}
	q.rt.wakeUp()
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte(`{"received":true,"queued":true}`))
	return err
}

func (h *Handler) fieldIndex(name string) int {
	for i, f := range h.fields {
		if f == placeholderPrefix+name {
			return i
		}
	}
	return -1
}

func (h *Handler) logDuplicateState(r *http.Request, id, state string) {
	if c := h.logger.Check(zapcore.InfoLevel, "duplicate webhook not stored"); c != nil {
		c.Write(zap.String("provider", h.name), zap.String("id", id), zap.String("state", state),
			zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr))
	}
}

// newEventID is a sortable generated id for an event that has none: the
// receive time in milliseconds, then 80 random bits (as a ULID has).
func newEventID(now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "gen_" + strconv.FormatInt(now.UnixMilli(), 36) + "_" + hex.EncodeToString(b[:])
}

// deliveryTarget is one config's way of delivering a queue's events: its
// handler (provider, logger) and its compiled deliver chain.
type deliveryTarget struct {
	h      *Handler
	cfg    *Queue
	chain  caddyhttp.Handler
	ctx    context.Context // cancelled when the config is cleaned up
	cancel context.CancelFunc
	logger *zap.Logger
	server atomic.Pointer[caddyhttp.Server] // seen on a live request
	wg     sync.WaitGroup
}

// queueRuntime delivers one queue's events; it outlives config reloads
// (the newest config's target delivers).
type queueRuntime struct {
	name string
	path string
	q    queue.Backend

	mu      sync.Mutex
	target  *deliveryTarget
	targets []*deliveryTarget // attached, oldest first; target is the newest
	// after a store error nothing is dispatched until then: an attempt
	// whose outcome could not be recorded is not retried in a tight loop
	storeBackoff time.Time
	inflight     map[string]context.CancelFunc
	// completing: attempts that have ended and whose outcome is being
	// committed. They no longer take a slot of concurrency (so the next
	// attempts start while the outcomes share one group commit), but
	// they are still skipped by Due and guarded like in-flight events.
	completing map[string]struct{}
	// idle are the workers waiting for an attempt, each on its channel:
	// goroutines that run one attempt after another (a goroutine per
	// attempt would grow its stack through the deliver chain each time)
	idle    []chan attemptJob
	workers int // started, ever (tests)
	// failStreak counts the attempts in a row the backend was unavailable
	// (no answer, 502, 503, 504). From breakerAfter on, one attempt at a
	// time is made, no sooner than probeAt, until one is delivered.
	failStreak int
	probeAt    time.Time
	wake       chan struct{}
	stop       chan struct{}
	done       chan struct{}
	once       sync.Once
	started    bool

	now        func() time.Time
	rand       func() float64 // [0,1), for the jitter
	workerIdle time.Duration  // queueWorkerIdle
}

func newQueueRuntime(name string, q queue.Backend) *queueRuntime {
	return &queueRuntime{
		name:       name,
		q:          q,
		inflight:   map[string]context.CancelFunc{},
		completing: map[string]struct{}{},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		now:        time.Now,
		rand:       mrand.Float64,
		workerIdle: queueWorkerIdle,
	}
}

func (rt *queueRuntime) attach(t *deliveryTarget) {
	rt.mu.Lock()
	rt.target = t
	rt.targets = append(rt.targets, t)
	rt.failStreak = 0 // the new config may deliver elsewhere
	start := !rt.started
	rt.started = true
	rt.mu.Unlock()
	if start {
		go rt.run()
	}
	rt.wakeUp()
}

// detach stops delivering through t (a config being unloaded): attempts
// running on it get a short grace, then are cancelled; a cancelled attempt
// is not counted, and its event is delivered again, by the next config.
// When t was the newest (a new config that failed to load), the config
// still running delivers again.
func (rt *queueRuntime) detach(t *deliveryTarget) {
	rt.mu.Lock()
	if i := slices.Index(rt.targets, t); i >= 0 {
		rt.targets = slices.Delete(rt.targets, i, i+1)
	}
	if rt.target == t {
		rt.target = nil
		if n := len(rt.targets); n > 0 {
			rt.target = rt.targets[n-1]
		}
	}
	rt.mu.Unlock()
	waitGrace(&t.wg, queueStopGrace)
	t.cancel()
	t.wg.Wait()
	rt.wakeUp()
}

func waitGrace(wg *sync.WaitGroup, d time.Duration) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
	}
}

// shutdown stops the dispatcher (the file is closing).
func (rt *queueRuntime) shutdown() {
	rt.once.Do(func() { close(rt.stop) })
	rt.mu.Lock()
	started := rt.started
	rt.mu.Unlock()
	if started {
		<-rt.done
	}
}

func (rt *queueRuntime) wakeUp() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

func (rt *queueRuntime) isInFlight(id string) bool {
	// rt.mu held by the caller
	if _, ok := rt.inflight[id]; ok {
		return true
	}
	_, ok := rt.completing[id]
	return ok
}

// InFlight lists the ids being attempted now, or whose attempt's outcome
// is being recorded.
func (rt *queueRuntime) inFlight() map[string]bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make(map[string]bool, len(rt.inflight)+len(rt.completing))
	for id := range rt.inflight {
		out[id] = true
	}
	for id := range rt.completing {
		out[id] = true
	}
	return out
}

// run is the dispatcher: it starts an attempt for each due event, up to
// concurrency at once, and sleeps until the next is due or it is woken.
func (rt *queueRuntime) run() {
	defer close(rt.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastPurge := time.Time{}
	for {
		next := rt.dispatch()
		now := rt.now()
		if now.Sub(lastPurge) >= queuePurgeEvery {
			lastPurge = now
			if _, err := rt.q.Purge(now); err != nil {
				rt.logError("queue purge failed", err)
			}
		}
		wait := queuePurgeEvery
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(now), time.Millisecond))
		}
		if p, ok := rt.q.(queue.Poller); ok {
			// other gateways enqueue, resume and complete without
			// waking this one
			wait = min(wait, p.PollEvery())
		}
		timer.Reset(wait)
		select {
		case <-rt.stop:
			rt.mu.Lock()
			t := rt.target
			rt.target = nil
			rt.mu.Unlock()
			if t != nil {
				waitGrace(&t.wg, queueStopGrace)
				t.cancel()
				t.wg.Wait()
			}
			return
		case <-rt.wake:
		case <-timer.C:
		}
	}
}

// dispatch starts the due attempts and returns when the next is due.
func (rt *queueRuntime) dispatch() time.Time {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	t := rt.target
	if t == nil || rt.q.Paused() {
		return time.Time{}
	}
	// at most concurrency attempts run, and at most attemptWindow ×
	// concurrency are under way (running, or ended with their outcome
	// not yet committed): a crash delivers at most that many again
	c := t.cfg.Concurrency
	if t.cfg.Ordered {
		c = 1
	}
	free := min(c-len(rt.inflight), attemptWindow*c-len(rt.inflight)-len(rt.completing))
	probing := rt.failStreak >= breakerAfter
	if probing {
		// the backend is down: one attempt (a probe) at a time, paced,
		// so that an outage costs neither the CPU that ingest needs nor
		// every event's attempts
		if len(rt.inflight)+len(rt.completing) > 0 {
			return time.Time{} // woken when the probe ends
		}
		if now := rt.now(); now.Before(rt.probeAt) {
			return rt.probeAt
		}
		free = min(free, 1)
	}
	if free <= 0 {
		return time.Time{} // woken when an attempt ends
	}
	now := rt.now()
	if now.Before(rt.storeBackoff) {
		return rt.storeBackoff
	}
	lease := time.Duration(t.cfg.AttemptTimeout) + queueLeaseMargin
	evs, next, err := rt.q.Claim(now, free, t.cfg.Ordered, lease, rt.isInFlight)
	if err != nil {
		t.logger.Error("reading due events failed", zap.String("queue", rt.name), zap.Error(err))
		rt.storeBackoff = now.Add(queueStoreBackoff)
		return rt.storeBackoff
	}
	if probing && len(evs) > 0 {
		rt.probeAt = now.Add(probeEvery(t.cfg))
	}
	for _, ev := range evs {
		ctx, cancel := context.WithCancel(t.ctx)
		rt.inflight[ev.ID] = cancel
		t.wg.Add(1)
		j := attemptJob{ctx, cancel, t, ev}
		if n := len(rt.idle); n > 0 {
			// the worker that went idle last: its channel holds one
			rt.idle[n-1] <- j
			rt.idle = rt.idle[:n-1]
			continue
		}
		rt.workers++
		go rt.worker(j)
	}
	return next
}

// attemptJob is one attempt handed to a worker.
type attemptJob struct {
	ctx    context.Context
	cancel context.CancelFunc
	t      *deliveryTarget
	ev     *queue.Event
}

// worker runs j, then the attempts dispatch hands it, until it has been
// idle for rt.workerIdle, the queue stops, or as many workers are idle
// as attempts may be under way at once.
func (rt *queueRuntime) worker(j attemptJob) {
	next := make(chan attemptJob, 1)
	timer := time.NewTimer(rt.workerIdle)
	defer timer.Stop()
	for {
		rt.attempt(j.ctx, j.t, j.ev)
		j.cancel()
		// the attempt leaves the window and the worker goes idle in one
		// step, so the dispatch this wakes hands it the next attempt
		// rather than starting another worker
		rt.mu.Lock()
		delete(rt.inflight, j.ev.ID)
		delete(rt.completing, j.ev.ID)
		limit := 0
		if t := rt.target; t != nil {
			limit = attemptWindow * t.cfg.Concurrency
			if t.cfg.Ordered {
				limit = attemptWindow
			}
		}
		idle := len(rt.idle) < limit
		if idle {
			rt.idle = append(rt.idle, next)
		}
		rt.mu.Unlock()
		j.t.wg.Done()
		rt.wakeUp()
		j = attemptJob{} // nothing of it (the body) kept while idle
		if !idle {
			return
		}
		timer.Reset(rt.workerIdle)
		select {
		case j = <-next:
			continue
		case <-timer.C:
		case <-rt.stop:
		}
		rt.mu.Lock()
		if i := slices.Index(rt.idle, next); i >= 0 {
			rt.idle = slices.Delete(rt.idle, i, i+1)
			rt.mu.Unlock()
			return
		}
		rt.mu.Unlock()
		j = <-next // dispatch handed it an attempt meanwhile
	}
}

func (rt *queueRuntime) logError(msg string, err error) {
	rt.mu.Lock()
	t := rt.target
	rt.mu.Unlock()
	if t != nil {
		t.logger.Error(msg, zap.String("queue", rt.name), zap.Error(err))
	}
}

// attempt delivers ev once through t and records the outcome; its worker
// then takes it out of rt.inflight or rt.completing.
func (rt *queueRuntime) attempt(ctx context.Context, t *deliveryTarget, ev *queue.Event) {
	start := rt.now()
	actx, acancel := context.WithTimeout(ctx, time.Duration(t.cfg.AttemptTimeout))
	status, retryAfter, derr := t.deliver(actx, ev, ev.Attempts+1)
	timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
	acancel()
	ev.Body = nil // not needed while the outcome waits for its commit
	if ctx.Err() != nil && !timedOut {
		// a reload or a stop cut the attempt short: not counted, the
		// event stays pending and is delivered again (its lease, in a
		// shared store, given back at once)
		queueMetrics.attempts.WithLabelValues(rt.name, "interrupted").Inc()
		if err := rt.q.Release(ev.ID); err != nil {
			t.logger.Warn("giving back the lease of an interrupted attempt failed; another gateway takes the event when the lease ends",
				zap.String("queue", rt.name), zap.String("id", ev.ID), zap.Error(err))
		}
		return
	}
	now := rt.now()
	o := queue.Outcome{At: start, Status: status, TTL: time.Duration(t.cfg.TTL)}
	result := resultOf(status, derr, timedOut)
	switch {
	case derr == nil && status >= 200 && status < 300:
		o.Delivered = true
		queueMetrics.delivery.WithLabelValues(rt.name).Observe(now.Sub(ev.ReceivedAt).Seconds())
	default:
		o.Error = attemptError(status, derr, timedOut)
		o.Dead, o.RetryAt = rt.schedule(t.cfg, ev, ev.Attempts+1, now, retryAfter)
	}
	queueMetrics.attempts.WithLabelValues(rt.name, result).Inc()
	rt.trackBackend(t, o.Delivered, status, derr != nil || timedOut, now)
	// the slot is free for the next attempt while this outcome waits
	// for its commit; Due still skips the event until it is recorded
	rt.mu.Lock()
	delete(rt.inflight, ev.ID)
	rt.completing[ev.ID] = struct{}{}
	rt.mu.Unlock()
	rt.wakeUp()
	if err := rt.q.Complete(ev.ID, o); err != nil {
		// not recorded: the event stays pending and is attempted again,
		// once the store has had a moment
		rt.mu.Lock()
		rt.storeBackoff = rt.now().Add(queueStoreBackoff)
		rt.mu.Unlock()
		t.logger.Error("recording a delivery attempt failed; the event will be delivered again",
			zap.String("queue", rt.name), zap.String("id", ev.ID), zap.Error(err))
		return
	}
	if o.Dead {
		queueMetrics.dead.WithLabelValues(rt.name).Inc()
		t.logger.Warn("webhook dead: not delivered, kept for replay",
			zap.String("queue", rt.name), zap.String("provider", ev.Provider), zap.String("id", ev.ID),
			zap.String("event", ev.EventType), zap.Int("attempts", ev.Attempts+1),
			zap.Int("last_status", status), zap.String("last_error", o.Error),
			zap.Time("received_at", ev.ReceivedAt))
	}
}

// The breaker: after breakerAfter attempts in a row found the backend
// unavailable, attempts are made one at a time, each at least probeEvery
// after the previous one started, until one is delivered. The events not
// attempted meanwhile stay pending and keep their own schedule (their
// attempts are not used up by the outage); max_age still applies.
const breakerAfter = 8

// probeEvery is the pace of the probes: the first retry gap, at most 1 s.
func probeEvery(cfg *Queue) time.Duration {
	return min(time.Duration(cfg.Retry[0]), time.Second)
}

// unavailable reports whether an attempt found the backend down rather
// than answering: no answer at all, or a gateway's 502, 503 or 504.
func unavailable(status int, failed bool) bool {
	switch status {
	case 0:
		return failed
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// trackBackend updates the breaker after an attempt.
func (rt *queueRuntime) trackBackend(t *deliveryTarget, delivered bool, status int, failed bool, now time.Time) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch {
	case !delivered && unavailable(status, failed):
		rt.failStreak++
		if rt.failStreak == breakerAfter {
			t.logger.Warn("queue backend unavailable: one attempt at a time until it answers",
				zap.String("queue", rt.name), zap.Int("failed_in_a_row", rt.failStreak),
				zap.Duration("probe_every", probeEvery(t.cfg)))
		}
		if rt.failStreak >= breakerAfter {
			rt.probeAt = now.Add(probeEvery(t.cfg))
		}
	default:
		// the backend answered (delivered, or refused the event itself)
		if rt.failStreak >= breakerAfter {
			t.logger.Info("queue backend answering again; delivering at full concurrency",
				zap.String("queue", rt.name))
		}
		rt.failStreak = 0
	}
}

// schedule decides, after failed attempt n, whether the event is dead and
// otherwise when it is tried again: the n-th gap (the last repeats), plus
// up to 10 % jitter (never less); a Retry-After from the backend is
// honoured up to that gap. Past max_attempts or max_age it is dead.
func (rt *queueRuntime) schedule(cfg *Queue, ev *queue.Event, n int, now time.Time, retryAfter time.Duration) (dead bool, at time.Time) {
	if n >= cfg.MaxAttempts {
		return true, time.Time{}
	}
	gap := time.Duration(cfg.Retry[min(n-1, len(cfg.Retry)-1)])
	wait := gap
	if retryAfter > 0 && retryAfter < gap {
		wait = retryAfter
	}
	wait += time.Duration(rt.rand() * 0.1 * float64(wait))
	at = now.Add(wait)
	if at.After(ev.ReceivedAt.Add(time.Duration(cfg.MaxAge))) {
		return true, time.Time{}
	}
	return false, at
}

func resultOf(status int, err error, timedOut bool) string {
	switch {
	case timedOut:
		return "timeout"
	case err == nil && status >= 200 && status < 300:
		return "delivered"
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case err != nil:
		return "error"
	}
	return "no_response"
}

func attemptError(status int, err error, timedOut bool) string {
	switch {
	case timedOut:
		return "attempt_timeout"
	case err != nil:
		return err.Error()
	case status == 0:
		return "the deliver handlers wrote no response"
	}
	return http.StatusText(status)
}

// deliver runs ev through the deliver chain as the original request:
// method, URI, headers and body byte for byte, and the placeholders of the
// original request plus {http.webhook.attempt} and
// {http.webhook.received_at}. It returns the status written (or the
// status of a caddyhttp.Error), the backend's Retry-After, and an error.
func (t *deliveryTarget) deliver(ctx context.Context, ev *queue.Event, attempt int) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, ev.Method, ev.URI, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, 0, err
	}
	req.RequestURI = ev.URI
	req.Header = ev.Header.Clone()
	req.Host = ev.Host
	req.RemoteAddr = ev.RemoteAddr
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	repl := caddy.NewReplacer()
	w := &attemptWriter{header: http.Header{}}
	s := t.server.Load()
	if s == nil {
		s = new(caddyhttp.Server)
	}
	req = caddyhttp.PrepareRequest(req, repl, w, s)
	h := t.h
	vals := make([]string, len(h.fields))
	h.provider.Describe(ev.Header, ev.Body, vals)
	repl.Set(placeholderPrefix+"provider", h.name)
	for i, f := range h.fields {
		repl.Set(f, vals[i])
	}
	repl.Set(placeholderPrefix+"attempt", strconv.Itoa(attempt))
	repl.Set(placeholderPrefix+"received_at", ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	repl.Set(placeholderPrefix+"queue", t.cfg.Name)
	repl.Set(placeholderPrefix+"verified", strconv.FormatBool(!ev.Unverified))
	key := ""
	if ev.Key > 0 {
		key = strconv.Itoa(ev.Key)
	}
	repl.Set(placeholderPrefix+"key", key)

	err = t.serve(w, req)
	status := w.status
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && status == 0 {
		status = he.StatusCode
	}
	return status, retryAfterOf(w.header), err
}

// serve runs the deliver chain. A panic in it fails the attempt, as a
// panic in a handler fails its request in a live server, instead of
// ending Caddy: reverse_proxy panics with http.ErrAbortHandler when the
// backend's response breaks off after its header was written.
func (t *deliveryTarget) serve(w http.ResponseWriter, req *http.Request) (err error) {
	defer func() {
		r := recover()
		switch {
		case r == nil:
		case r == http.ErrAbortHandler:
			err = errors.New("the backend's response was cut short")
		default:
			err = fmt.Errorf("the deliver handlers panicked: %v", r)
			t.logger.Error("panic in a queue's deliver handlers; the attempt failed",
				zap.String("queue", t.cfg.Name), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	return t.chain.ServeHTTP(w, req)
}

// retryAfterOf reads a Retry-After in seconds or as an HTTP date.
func retryAfterOf(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(min(n, math.MaxInt32)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// attemptWriter is the response writer of a delivery attempt: it keeps the
// status and the headers, and discards the body.
type attemptWriter struct {
	header http.Header
	status int
}

func (w *attemptWriter) Header() http.Header { return w.header }

func (w *attemptWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *attemptWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func (w *attemptWriter) Flush() {}
