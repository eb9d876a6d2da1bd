package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// The Redis store: the queues live in a Redis server shared by several
// gateways. Every key of a queue carries the hash tag {whv:<queue>}, so
// that on Redis Cluster one node owns (and fsyncs) the whole queue and its
// scripts are legal:
//
//	meta   hash: seq (the last given), paused, pending, pbytes, delivered, dead
//	ids    hash: event id → member (the seq, 20 digits: sorts as a number)
//	rec    hash: member → record (encodeEvent; Seq comes from the member)
//	body   hash: member → body, while pending or dead
//	st     hash: member → p (pending), d (delivered), x (dead)
//	idof   hash: member → event id
//	due    zset: pending members by due time (µs); a leased one by the
//	       lease's expiry, so an expired lease is simply due again
//	lease  hash: member → token|due time before the lease
//	order  zset: pending members by seq (ordered delivery, oldest pending)
//	all    zset: every member by seq (listing in order of receipt)
//	exp    zset: delivered and dead members by expiry (µs)
//
// Every change is one Lua script, atomic in Redis; Enqueue (the id check
// and the append) is followed on the same connection by WAITAOF where the
// server has it. Times in the indexes are microseconds (a float64 score
// is exact to 2^53); the records keep them to the nanosecond.

// Durability of a Redis store.
const (
	// DurabilityStrict (default): the 2xx only once the write is in the
	// AOF on disk: WAITAOF (Redis >= 7.2, Valkey), else appendonly yes
	// with appendfsync always.
	DurabilityStrict = "strict"
	// DurabilityRelaxed also accepts appendfsync everysec on a server
	// without WAITAOF: a power loss may lose the last second of events
	// that were answered 2xx.
	DurabilityRelaxed = "relaxed"
)

// ErrNotDurable: the Redis server would not put the write on disk before
// answering; nothing is written (503).
var ErrNotDurable = errors.New("redis does not persist writes before answering")

// ErrNoBackup: the store has no backup of its own.
var ErrNoBackup = errors.New("backup is for the bbolt store: back up Redis with its own tools (BGSAVE, a copy of the AOF)")

// RedisOptions of a Redis store.
type RedisOptions struct {
	// Durability: DurabilityStrict (default) or DurabilityRelaxed.
	Durability string
	// CheckEvery is how often the server's persistence settings are read
	// again (besides on every new connection). Default 1 s.
	CheckEvery time.Duration
	// PollEvery is how often a dispatcher looks for due events that
	// another gateway made due. Default 250 ms.
	PollEvery time.Duration
	// WaitAOFTimeout bounds WAITAOF. Default 2 s.
	WaitAOFTimeout time.Duration
	// Now is the clock of the calls that take no time (Discard, the
	// lease checks of Complete). Default time.Now.
	Now func() time.Time
	// OnDurability is called when the store becomes durable (nil) or not
	// (the reason), and at start: for the log.
	OnDurability func(err error)
}

// RedisStore is a Redis server of queues.
type RedisStore struct {
	client *redis.Client
	opts   RedisOptions
	gw     string // this process's lease tokens start with it
	tokens atomic.Uint64

	// durable is nil when enqueues may be written, else why not
	durable  atomic.Pointer[error]
	waitAOF  atomic.Bool
	reported atomic.Pointer[string]

	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	mu     sync.Mutex
	queues map[string]*RedisQueue
}

// Timeouts of the client: a Redis that does not answer fails the request
// with 503 quickly rather than holding it.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 3 * time.Second
)

// OpenRedis connects to the redis:// or rediss:// URL (user, password and
// db in the URL) and checks the server's persistence. A server that is
// down is not an error: its queues answer 503 until it is back.
func OpenRedis(url string, opts RedisOptions) (*RedisStore, error) {
	switch opts.Durability {
	case "":
		opts.Durability = DurabilityStrict
	case DurabilityStrict, DurabilityRelaxed:
	default:
		return nil, fmt.Errorf("unknown durability %q: strict or relaxed", opts.Durability)
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = time.Second
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WaitAOFTimeout <= 0 {
		opts.WaitAOFTimeout = 2 * time.Second
	}
	ro, err := redis.ParseURL(url)
	if err != nil {
		// the parser's error may quote the URL, password included
		return nil, fmt.Errorf("invalid redis url: expected redis://[user:password@]host:port[/db] or rediss://...")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &RedisStore{opts: opts, gw: hex.EncodeToString(b[:]), stop: make(chan struct{}), done: make(chan struct{}), queues: map[string]*RedisQueue{}}
	ro.DialTimeout = redisDialTimeout
	ro.ReadTimeout = redisIOTimeout
	ro.WriteTimeout = redisIOTimeout
	ro.PoolTimeout = redisDialTimeout
	ro.MaxRetries = 1
	ro.DialerRetries = 1
	ro.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		// every new connection (a restarted server, a failover) is
		// checked before it is used
		// the scripts, for EVALSHA (a restarted server has none)
		_ = cn.ScriptLoad(ctx, enqueueLua).Err()
		s.setDurable(s.check(ctx, cn))
		return nil
	}
	s.client = redis.NewClient(ro)
	s.durable.Store(ptr(error(fmt.Errorf("%w: not checked yet", ErrStore))))
	ctx, cancel := context.WithTimeout(context.Background(), redisDialTimeout+redisIOTimeout)
	s.setDurable(s.check(ctx, s.client))
	cancel()
	go s.monitor()
	return s, nil
}

func ptr[T any](v T) *T { return &v }

// Durable is nil when the store writes, else why it does not.
func (s *RedisStore) Durable() error { return *s.durable.Load() }

func (s *RedisStore) setDurable(err error) {
	s.durable.Store(&err)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if old := s.reported.Swap(&msg); old != nil && *old == msg {
		return
	}
	if s.opts.OnDurability != nil {
		s.opts.OnDurability(err)
	}
}

// check reads the server's version and persistence settings on c.
func (s *RedisStore) check(ctx context.Context, c redis.Cmdable) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	hasWait := versionAtLeast(infoField(info, "redis_version"), 7, 2) || infoField(info, "valkey_version") != ""
	s.waitAOF.Store(hasWait)
	cfg, cerr := c.ConfigGet(ctx, "append*").Result()
	aof, fsync := cfg["appendonly"], cfg["appendfsync"]
	switch {
	case cerr == nil && aof != "yes":
		return fmt.Errorf("%w: appendonly is %q: run Redis with appendonly yes and appendfsync always", ErrNotDurable, aof)
	case hasWait:
		// WAITAOF confirms each enqueue's fsync (it fails when AOF is
		// off, and waits for everysec's fsync)
		return nil
	case cerr != nil:
		return fmt.Errorf("%w: this server has no WAITAOF (Redis < 7.2) and CONFIG GET failed (%v), so appendfsync always cannot be checked", ErrNotDurable, cerr)
	case fsync == "always":
		return nil
	case fsync == "everysec" && s.opts.Durability == DurabilityRelaxed:
		return nil
	case fsync == "everysec":
		return fmt.Errorf("%w: appendfsync is everysec (up to a second of events lost on power loss) and this server has no WAITAOF (Redis < 7.2): set appendfsync always, or accept the loss with durability relaxed", ErrNotDurable)
	}
	return fmt.Errorf("%w: appendfsync is %q: set appendfsync always", ErrNotDurable, fsync)
}

func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// monitor reads the settings again every CheckEvery: a CONFIG SET on the
// server is seen within that time.
func (s *RedisStore) monitor() {
	defer close(s.done)
	t := time.NewTicker(s.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), redisIOTimeout)
			s.setDurable(s.check(ctx, s.client))
			cancel()
		}
	}
}

// Close stops the checks and closes the client.
func (s *RedisStore) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		<-s.done
		err = s.client.Close()
	})
	return err
}

// OpenQueue returns the queue name (created on first use).
func (s *RedisStore) OpenQueue(name string) (Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[name]; ok {
		return q, nil
	}
	p := "whv:{" + name + "}:"
	q := &RedisQueue{s: s, Name: name, claims: map[string]claim{}}
	for _, k := range []string{"meta", "ids", "rec", "body", "st", "idof", "due", "lease", "order", "all", "exp"} {
		q.keys = append(q.keys, p+k)
	}
	s.queues[name] = q
	return q, nil
}

// The positions of a queue's keys in every script's KEYS.
const (
	kMeta = iota
	kIDs
	kRec
	kBody
	kSt
	kIDOf
	kDue
	kLease
	kOrder
	kAll
	kExp
)

// RedisQueue is one named queue in a Redis store.
type RedisQueue struct {
	s    *RedisStore
	Name string
	keys []string

	mu     sync.Mutex
	claims map[string]claim // id → this process's lease
	counts Counts           // the last read, for when Redis is down
	paused bool
}

// claim is a lease this process holds.
type claim struct {
	member, token, rec string
}

func us(t time.Time) int64 { return t.UnixNano() / 1e3 }

func fromUS(score float64) time.Time { return time.Unix(0, int64(score)*1e3) }

func member(seq int64) string { return fmt.Sprintf("%020d", seq) }

func seqOf(m string) uint64 { n, _ := strconv.ParseUint(m, 10, 64); return n }

func ctxIO() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*redisIOTimeout)
}

func storeErr(err error) error {
	if err == nil || errors.Is(err, ErrStore) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrStore, err)
}

const enqueueLua = `
local m = redis.call('HGET', KEYS[2], ARGV[1])
if m then
	return {1, redis.call('HGET', KEYS[5], m)}
end
local c = redis.call('HMGET', KEYS[1], 'pending', 'pbytes')
local p, pb = tonumber(c[1] or '0'), tonumber(c[2] or '0')
local size, mx, mb = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if (mx > 0 and p + 1 > mx) or (mb > 0 and pb + size > mb) then
	return {2, ''}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
m = string.format('%020d', seq)
redis.call('HSET', KEYS[2], ARGV[1], m)
redis.call('HSET', KEYS[3], m, ARGV[2])
redis.call('HSET', KEYS[4], m, ARGV[3])
redis.call('HSET', KEYS[5], m, 'p')
redis.call('HSET', KEYS[6], m, ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[4], m)
redis.call('ZADD', KEYS[9], seq, m)
redis.call('ZADD', KEYS[10], seq, m)
redis.call('HINCRBY', KEYS[1], 'pending', 1)
redis.call('HINCRBY', KEYS[1], 'pbytes', size)
return {0, m}
`

var enqueueScript = redis.NewScript(enqueueLua)

var stateNames = map[string]State{"p": Pending, "d": Delivered, "x": Dead}

// Enqueue implements Backend: one script checks the id and appends; on a
// server with WAITAOF, the same connection then waits for the AOF fsync.
// Nothing is written while the server's persistence is not as required.
func (q *RedisQueue) Enqueue(ev *Event, lim Limits) (EnqueueResult, error) {
	if len(ev.ID) == 0 || len(ev.ID) > bolt.MaxKeySize {
		return EnqueueResult{}, fmt.Errorf("%w: %d bytes", ErrBadID, len(ev.ID))
	}
	if err := q.s.Durable(); err != nil {
		return EnqueueResult{}, err
	}
	ev.Size = int64(len(ev.Body))
	ev.State = Pending
	ev.DueAt = ev.ReceivedAt
	ev.Seq = 0
	rec, err := encodeEvent(ev)
	if err != nil {
		return EnqueueResult{}, err
	}
	ctx, cancel := ctxIO()
	defer cancel()
	args := []any{ev.ID, rec, ev.Body, us(ev.DueAt), ev.Size, lim.MaxEvents, lim.MaxBytes}
	waitAOF := q.s.waitAOF.Load()
	var res []any
	var wait *redis.Cmd
	for try := 0; ; try++ {
		pipe := q.s.client.Pipeline()
		run := pipe.EvalSha(ctx, enqueueScript.Hash(), q.keys, args...)
		if try > 0 {
			run = pipe.Eval(ctx, enqueueLua, q.keys, args...)
		}
		if waitAOF {
			wait = pipe.Do(ctx, "WAITAOF", 1, 0, q.s.opts.WaitAOFTimeout.Milliseconds())
		}
		_, err = pipe.Exec(ctx)
		if err != nil && try == 0 && run.Err() != nil && strings.Contains(run.Err().Error(), "NOSCRIPT") {
			continue
		}
		if err == nil {
			res, err = run.Slice()
		}
		break
	}
	if err != nil {
		return EnqueueResult{}, storeErr(err)
	}
	if wait != nil {
		n, err := wait.Int64Slice()
		if err != nil || len(n) < 1 || n[0] < 1 {
			return EnqueueResult{}, fmt.Errorf("%w: WAITAOF did not confirm the fsync (AOF off or slow): %v %v", ErrNotDurable, n, err)
		}
	}
	if len(res) != 2 {
		return EnqueueResult{}, fmt.Errorf("%w: unexpected reply %v", ErrStore, res)
	}
	code, _ := res[0].(int64)
	s, _ := res[1].(string)
	switch code {
	case 0:
		ev.Seq = seqOf(s)
		return EnqueueResult{State: Pending}, nil
	case 1:
		return EnqueueResult{Duplicate: true, State: stateNames[s]}, nil
	}
	return EnqueueResult{}, ErrFull
}

// Due implements Backend (no lease).
func (q *RedisQueue) Due(now time.Time, max int, ordered bool, skip func(id string) bool) ([]*Event, time.Time, error) {
	return q.Claim(now, max, ordered, 0, skip)
}

var claimScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local out = {}
for i = 4, #ARGV do
	local m = ARGV[i]
	local sc = redis.call('ZSCORE', KEYS[7], m)
	local l = redis.call('HGET', KEYS[8], m)
	-- mine: this very claim, run again by the client after a lost reply
	local mine = ARGV[3] ~= '' and l and string.match(l, '^([^|]*)|') == ARGV[3]
	if sc and redis.call('HGET', KEYS[5], m) == 'p' and (tonumber(sc) <= now or mine) then
		if ARGV[3] ~= '' and not mine then
			local orig = sc
			if l then
				orig = string.match(l, '|(.*)$')
			end
			redis.call('ZADD', KEYS[7], ARGV[2], m)
			redis.call('HSET', KEYS[8], m, ARGV[3] .. '|' .. orig)
		end
		out[#out + 1] = m
		out[#out + 1] = redis.call('HGET', KEYS[3], m)
		out[#out + 1] = redis.call('HGET', KEYS[4], m) or ''
	end
end
return out
`)

// Claim implements Backend: the due events, leased to this process until
// now+lease (with lease 0, read and not leased).
func (q *RedisQueue) Claim(now time.Time, max int, ordered bool, lease time.Duration, skip func(id string) bool) ([]*Event, time.Time, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	c := q.s.client
	nowUS := us(now)
	var want []string
	var next time.Time
	if ordered {
		head, err := c.ZRange(ctx, q.keys[kOrder], 0, 0).Result()
		if err != nil || len(head) == 0 {
			return nil, time.Time{}, storeErr(err)
		}
		m := head[0]
		pipe := c.Pipeline()
		idc := pipe.HGet(ctx, q.keys[kIDOf], m)
		scc := pipe.ZScore(ctx, q.keys[kDue], m)
		if _, err := pipe.Exec(ctx); errors.Is(err, redis.Nil) {
			// the head was completed or discarded meanwhile: the next
			// look finds the new one
			return nil, time.Time{}, nil
		} else if err != nil {
			return nil, time.Time{}, storeErr(err)
		}
		if skip(idc.Val()) {
			return nil, time.Time{}, nil
		}
		if sc := scc.Val(); int64(sc) > nowUS {
			return nil, fromUS(sc), nil
		}
		want = []string{m}
	} else {
		const page = 256
		for off := int64(0); ; off += page {
			zs, err := c.ZRangeByScoreWithScores(ctx, q.keys[kDue], &redis.ZRangeBy{Min: "-inf", Max: "+inf", Offset: off, Count: page}).Result()
			if err != nil {
				return nil, time.Time{}, storeErr(err)
			}
			ms := make([]string, len(zs))
			for i, z := range zs {
				ms[i] = z.Member.(string)
			}
			ids := []string{}
			if len(ms) > 0 {
				vs, err := c.HMGet(ctx, q.keys[kIDOf], ms...).Result()
				if err != nil {
					return nil, time.Time{}, storeErr(err)
				}
				for _, v := range vs {
					s, _ := v.(string)
					ids = append(ids, s)
				}
			}
			done := false
			for i, z := range zs {
				if int64(z.Score) > nowUS {
					next, done = fromUS(z.Score), true
					break
				}
				if skip(ids[i]) {
					continue
				}
				if len(want) >= max {
					next, done = fromUS(z.Score), true
					break
				}
				want = append(want, ms[i])
			}
			if done || len(zs) < page {
				break
			}
		}
	}
	if len(want) == 0 {
		return nil, next, nil
	}
	token := ""
	if lease > 0 {
		token = q.s.gw + ":" + strconv.FormatUint(q.s.tokens.Add(1), 36)
	}
	args := []any{nowUS, us(now.Add(lease)), token}
	for _, m := range want {
		args = append(args, m)
	}
	out, err := claimScript.Run(ctx, c, q.keys, args...).Slice()
	if err != nil {
		return nil, time.Time{}, storeErr(err)
	}
	evs := make([]*Event, 0, len(out)/3)
	for i := 0; i+2 < len(out); i += 3 {
		m, _ := out[i].(string)
		rec, _ := out[i+1].(string)
		body, _ := out[i+2].(string)
		ev, err := decodeRecord(m, rec)
		if err != nil {
			return nil, time.Time{}, err
		}
		ev.Body = []byte(body)
		evs = append(evs, ev)
		if token != "" {
			q.mu.Lock()
			q.claims[ev.ID] = claim{member: m, token: token, rec: rec}
			q.mu.Unlock()
		}
	}
	return evs, next, nil
}

func decodeRecord(m, rec string) (*Event, error) {
	ev := new(Event)
	if err := decodeEvent([]byte(rec), ev); err != nil {
		return nil, fmt.Errorf("%w: a damaged record: %v", ErrStore, err)
	}
	ev.Seq = seqOf(m)
	return ev, nil
}

// lookup is the member and record of the event id ("" when unknown).
func (q *RedisQueue) lookup(ctx context.Context, id string) (m, rec string, err error) {
	m, err = q.s.client.HGet(ctx, q.keys[kIDs], id).Result()
	if errors.Is(err, redis.Nil) {
		return "", "", nil
	}
	if err != nil {
		return "", "", storeErr(err)
	}
	rec, err = q.s.client.HGet(ctx, q.keys[kRec], m).Result()
	if errors.Is(err, redis.Nil) {
		return "", "", nil
	}
	return m, rec, storeErr(err)
}

var completeScript = redis.NewScript(`
local m = ARGV[1]
if redis.call('HGET', KEYS[3], m) == ARGV[4] then
	-- this very outcome, recorded already: the client ran the script
	-- again after a lost reply
	return 1
end
if redis.call('HGET', KEYS[5], m) ~= 'p' or redis.call('HGET', KEYS[3], m) ~= ARGV[3] then
	return 0
end
local l = redis.call('HGET', KEYS[8], m)
if l then
	local tok = string.match(l, '^([^|]*)|')
	if tok ~= ARGV[2] then
		if ARGV[2] ~= '' or tonumber(redis.call('ZSCORE', KEYS[7], m)) > tonumber(ARGV[7]) then
			return -1
		end
	end
	redis.call('HDEL', KEYS[8], m)
end
redis.call('HSET', KEYS[3], m, ARGV[4])
local kind = ARGV[5]
if kind == 'r' then
	redis.call('ZADD', KEYS[7], ARGV[6], m)
	return 1
end
local size = redis.call('HSTRLEN', KEYS[4], m)
redis.call('ZREM', KEYS[7], m)
redis.call('ZREM', KEYS[9], m)
redis.call('ZADD', KEYS[11], ARGV[6], m)
redis.call('HINCRBY', KEYS[1], 'pending', -1)
redis.call('HINCRBY', KEYS[1], 'pbytes', 0 - size)
if kind == 'd' then
	redis.call('HDEL', KEYS[4], m)
	redis.call('HSET', KEYS[5], m, 'd')
	redis.call('HINCRBY', KEYS[1], 'delivered', 1)
else
	redis.call('HSET', KEYS[5], m, 'x')
	redis.call('HINCRBY', KEYS[1], 'dead', 1)
end
return 1
`)

// Complete implements Backend. With a lease of this process, it is
// recorded only while that lease is the event's latest (ErrState when
// another gateway took the event over).
func (q *RedisQueue) Complete(id string, o Outcome) error {
	ctx, cancel := ctxIO()
	defer cancel()
	q.mu.Lock()
	cl, leased := q.claims[id]
	delete(q.claims, id)
	q.mu.Unlock()
	for try := 0; try < 5; try++ {
		if !leased || try > 0 {
			m, rec, err := q.lookup(ctx, id)
			if err != nil {
				return err
			}
			if m == "" {
				return ErrUnknown
			}
			cl.member, cl.rec = m, rec
		}
		ev, err := decodeRecord(cl.member, cl.rec)
		if err != nil {
			return err
		}
		if ev.State != Pending {
			return ErrUnknown
		}
		ev.Attempts++
		ev.LastAttemptAt, ev.LastStatus, ev.LastError = o.At, o.Status, o.Error
		kind, score := "r", int64(0)
		switch {
		case o.Delivered || o.Dead:
			kind, ev.State = "x", Dead
			if o.Delivered {
				kind, ev.State, ev.LastError = "d", Delivered, ""
			}
			ev.DoneAt, ev.ExpiresAt, ev.DueAt = o.At, o.At.Add(o.TTL), time.Time{}
			score = us(ev.ExpiresAt)
		default:
			ev.DueAt = o.RetryAt
			score = us(ev.DueAt)
		}
		nrec, err := encodeEvent(ev)
		if err != nil {
			return err
		}
		r, err := completeScript.Run(ctx, q.s.client, q.keys, cl.member, cl.token, cl.rec, nrec, kind, score, us(q.s.opts.Now())).Int64()
		if err != nil {
			return storeErr(err)
		}
		switch r {
		case 1:
			return nil
		case -1:
			return fmt.Errorf("%w: the event's lease was taken over by another gateway", ErrState)
		}
		if leased {
			// changed since the claim: another gateway took it over
			// (its lease expired) or an operator discarded it
			if m, _, err := q.lookup(ctx, id); err == nil && m == "" {
				return ErrUnknown
			}
			return fmt.Errorf("%w: the event changed since this gateway leased it", ErrState)
		}
	}
	return fmt.Errorf("%w: the event kept changing", ErrState)
}

var releaseScript = redis.NewScript(`
local l = redis.call('HGET', KEYS[8], ARGV[1])
if not l then
	return 0
end
local tok, orig = string.match(l, '^([^|]*)|(.*)$')
if tok ~= ARGV[2] then
	return 0
end
redis.call('HDEL', KEYS[8], ARGV[1])
if redis.call('HGET', KEYS[5], ARGV[1]) == 'p' then
	redis.call('ZADD', KEYS[7], orig, ARGV[1])
end
return 1
`)

// Release implements Backend.
func (q *RedisQueue) Release(id string) error {
	q.mu.Lock()
	cl, ok := q.claims[id]
	delete(q.claims, id)
	q.mu.Unlock()
	if !ok {
		return nil
	}
	ctx, cancel := ctxIO()
	defer cancel()
	return storeErr(releaseScript.Run(ctx, q.s.client, q.keys, cl.member, cl.token).Err())
}

var replayScript = redis.NewScript(`
local m = ARGV[1]
local st = redis.call('HGET', KEYS[5], m)
if (st ~= 'd' and st ~= 'x') or redis.call('HGET', KEYS[3], m) ~= ARGV[2] then
	return 0
end
if redis.call('HEXISTS', KEYS[4], m) == 0 then
	return -1
end
redis.call('HSET', KEYS[3], m, ARGV[3])
redis.call('HSET', KEYS[5], m, 'p')
redis.call('ZREM', KEYS[11], m)
redis.call('ZADD', KEYS[7], ARGV[4], m)
redis.call('ZADD', KEYS[9], tonumber(m), m)
redis.call('HINCRBY', KEYS[1], 'pending', 1)
redis.call('HINCRBY', KEYS[1], 'pbytes', redis.call('HSTRLEN', KEYS[4], m))
if st == 'd' then
	redis.call('HINCRBY', KEYS[1], 'delivered', -1)
else
	redis.call('HINCRBY', KEYS[1], 'dead', -1)
end
return 1
`)

// Replay implements Backend.
func (q *RedisQueue) Replay(id string, now time.Time) (*Event, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	for try := 0; try < 5; try++ {
		m, rec, err := q.lookup(ctx, id)
		if err != nil {
			return nil, err
		}
		if m == "" {
			return nil, ErrUnknown
		}
		ev, err := decodeRecord(m, rec)
		if err != nil {
			return nil, err
		}
		prev := ev.State
		if prev != Dead && prev != Delivered {
			return nil, fmt.Errorf("%w: %s (replay takes a dead event, or a delivered one whose body is kept)", ErrState, prev)
		}
		ev.State, ev.Attempts = Pending, 0
		ev.Replays++
		ev.DoneAt, ev.ExpiresAt = time.Time{}, time.Time{}
		ev.DueAt = now
		nrec, err := encodeEvent(ev)
		if err != nil {
			return nil, err
		}
		r, err := replayScript.Run(ctx, q.s.client, q.keys, m, rec, nrec, us(now)).Int64()
		if err != nil {
			return nil, storeErr(err)
		}
		switch r {
		case 1:
			return ev, nil
		case -1:
			return nil, fmt.Errorf("%w: %s (replay takes a dead event, or a delivered one whose body is kept)", ErrState, prev)
		}
	}
	return nil, fmt.Errorf("%w: the event kept changing", ErrState)
}

var discardScript = redis.NewScript(`
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then
	return 0
end
local st = redis.call('HGET', KEYS[5], m)
if st == 'p' and redis.call('HEXISTS', KEYS[8], m) == 1 and tonumber(redis.call('ZSCORE', KEYS[7], m)) > tonumber(ARGV[2]) then
	return -1
end
if st == 'p' then
	redis.call('HINCRBY', KEYS[1], 'pending', -1)
	redis.call('HINCRBY', KEYS[1], 'pbytes', 0 - redis.call('HSTRLEN', KEYS[4], m))
elseif st == 'd' then
	redis.call('HINCRBY', KEYS[1], 'delivered', -1)
else
	redis.call('HINCRBY', KEYS[1], 'dead', -1)
end
redis.call('HDEL', KEYS[2], ARGV[1])
for _, k in ipairs({KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8]}) do
	redis.call('HDEL', k, m)
end
for _, k in ipairs({KEYS[7], KEYS[9], KEYS[10], KEYS[11]}) do
	redis.call('ZREM', k, m)
end
return 1
`)

// Discard implements Backend.
func (q *RedisQueue) Discard(id string) error {
	ctx, cancel := ctxIO()
	defer cancel()
	r, err := discardScript.Run(ctx, q.s.client, q.keys, id, us(q.s.opts.Now())).Int64()
	switch {
	case err != nil:
		return storeErr(err)
	case r == 0:
		return ErrUnknown
	case r < 0:
		return fmt.Errorf("%w: the event is being delivered by a gateway", ErrState)
	}
	return nil
}

var purgeScript = redis.NewScript(`
local ms = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, m in ipairs(ms) do
	local id = redis.call('HGET', KEYS[6], m)
	local st = redis.call('HGET', KEYS[5], m)
	if id then
		redis.call('HDEL', KEYS[2], id)
	end
	if st == 'd' then
		redis.call('HINCRBY', KEYS[1], 'delivered', -1)
	elseif st == 'x' then
		redis.call('HINCRBY', KEYS[1], 'dead', -1)
	end
	for _, k in ipairs({KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8]}) do
		redis.call('HDEL', k, m)
	end
	redis.call('ZREM', KEYS[10], m)
	redis.call('ZREM', KEYS[11], m)
end
return #ms
`)

// Purge implements Backend.
func (q *RedisQueue) Purge(now time.Time) (int, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	total := 0
	for {
		n, err := purgeScript.Run(ctx, q.s.client, q.keys, us(now)).Int()
		total += n
		if err != nil || n < 1000 {
			return total, storeErr(err)
		}
	}
}

// SetPaused implements Backend: every gateway of the queue sees it.
func (q *RedisQueue) SetPaused(p bool) error {
	ctx, cancel := ctxIO()
	defer cancel()
	v := "0"
	if p {
		v = "1"
	}
	if err := q.s.client.HSet(ctx, q.keys[kMeta], "paused", v).Err(); err != nil {
		return storeErr(err)
	}
	q.mu.Lock()
	q.paused = p
	q.mu.Unlock()
	return nil
}

// Paused implements Backend (the last value read when Redis is down).
func (q *RedisQueue) Paused() bool {
	ctx, cancel := ctxIO()
	defer cancel()
	v, err := q.s.client.HGet(ctx, q.keys[kMeta], "paused").Result()
	q.mu.Lock()
	defer q.mu.Unlock()
	if err == nil || errors.Is(err, redis.Nil) {
		q.paused = v == "1"
	}
	return q.paused
}

// Counts implements Backend (the last counts read when Redis is down).
func (q *RedisQueue) Counts() Counts {
	ctx, cancel := ctxIO()
	defer cancel()
	vs, err := q.s.client.HMGet(ctx, q.keys[kMeta], "pending", "pbytes", "delivered", "dead").Result()
	q.mu.Lock()
	defer q.mu.Unlock()
	if err == nil && len(vs) == 4 {
		n := func(v any) int64 {
			s, _ := v.(string)
			i, _ := strconv.ParseInt(s, 10, 64)
			return i
		}
		q.counts = Counts{Pending: n(vs[0]), PendingBytes: n(vs[1]), Delivered: n(vs[2]), Dead: n(vs[3])}
	}
	return q.counts
}

// Get implements Backend. LeasedUntil is set while a gateway holds the
// event's lease.
func (q *RedisQueue) Get(id string, withBody bool) (*Event, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	m, rec, err := q.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if m == "" {
		return nil, ErrUnknown
	}
	ev, err := decodeRecord(m, rec)
	if err != nil {
		return nil, err
	}
	if err := q.leases(ctx, []*Event{ev}, []string{m}); err != nil {
		return nil, err
	}
	if withBody {
		b, err := q.s.client.HGet(ctx, q.keys[kBody], m).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, storeErr(err)
		}
		ev.Body = b
	}
	return ev, nil
}

// leases fills LeasedUntil of the pending events that are leased.
func (q *RedisQueue) leases(ctx context.Context, evs []*Event, ms []string) error {
	pipe := q.s.client.Pipeline()
	ls := make([]*redis.StringCmd, len(evs))
	scs := make([]*redis.FloatCmd, len(evs))
	n := 0
	for i, ev := range evs {
		if ev.State == Pending {
			ls[i] = pipe.HGet(ctx, q.keys[kLease], ms[i])
			scs[i] = pipe.ZScore(ctx, q.keys[kDue], ms[i])
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return storeErr(err)
	}
	for i, ev := range evs {
		if ls[i] != nil && ls[i].Err() == nil && scs[i].Err() == nil {
			ev.LeasedUntil = fromUS(scs[i].Val())
		}
	}
	return nil
}

// List implements Backend.
func (q *RedisQueue) List(state State, after uint64, limit int) ([]*Event, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	var out []*Event
	const page = 256
	min := "(" + strconv.FormatUint(after, 10)
	for {
		ms, err := q.s.client.ZRangeByScore(ctx, q.keys[kAll], &redis.ZRangeBy{Min: min, Max: "+inf", Count: page}).Result()
		if err != nil {
			return nil, storeErr(err)
		}
		if len(ms) == 0 {
			return out, nil
		}
		recs, err := q.s.client.HMGet(ctx, q.keys[kRec], ms...).Result()
		if err != nil {
			return nil, storeErr(err)
		}
		var evs []*Event
		var ems []string
		for i, v := range recs {
			rec, ok := v.(string)
			if !ok {
				continue
			}
			ev, err := decodeRecord(ms[i], rec)
			if err != nil {
				return nil, err
			}
			if state != "" && ev.State != state && !(state == InFlight && ev.State == Pending) {
				continue
			}
			evs, ems = append(evs, ev), append(ems, ms[i])
		}
		if err := q.leases(ctx, evs, ems); err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
			out = append(out, ev)
		}
		if len(ms) < page {
			return out, nil
		}
		min = "(" + ms[len(ms)-1]
	}
}

// OldestPending implements Backend.
func (q *RedisQueue) OldestPending() (time.Time, error) {
	ctx, cancel := ctxIO()
	defer cancel()
	head, err := q.s.client.ZRange(ctx, q.keys[kOrder], 0, 0).Result()
	if err != nil || len(head) == 0 {
		return time.Time{}, storeErr(err)
	}
	rec, err := q.s.client.HGet(ctx, q.keys[kRec], head[0]).Result()
	if err != nil {
		return time.Time{}, storeErr(err)
	}
	ev, err := decodeRecord(head[0], rec)
	if err != nil {
		return time.Time{}, err
	}
	return ev.ReceivedAt, nil
}

// Backup implements Backend: Redis has its own.
func (q *RedisQueue) Backup(io.Writer) (int64, error) { return 0, ErrNoBackup }

// PollEvery implements Poller.
func (q *RedisQueue) PollEvery() time.Duration { return q.s.opts.PollEvery }

var (
	_ Backend = (*RedisQueue)(nil)
	_ Engine  = (*RedisStore)(nil)
	_ Poller  = (*RedisQueue)(nil)
)
