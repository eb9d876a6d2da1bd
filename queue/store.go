// Package queue is the durable store of the webhook gateway's
// store-and-forward mode: verified events are appended to a bbolt file
// (fsync'd before the sender is answered), or to a Redis server shared by
// several gateways (redis.go: in the AOF on disk before the answer),
// delivered later by the gateway, retried, and kept as dead when they
// cannot be delivered. Both are behind Backend (backend.go).
//
// One Store is one bbolt file; it holds any number of named queues. Every
// write goes through one committer goroutine that takes every write
// waiting at that moment into one transaction (group commit): one fsync for
// all of them, with no added delay when the store is idle.
//
// States: pending (due at a time) → delivered, or back to pending with a
// later due time, or dead. "In flight" is not written to the file: an
// attempt interrupted by a crash leaves its event pending, and it is
// delivered again at the next start (at least once).
package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// State is an event's state.
type State string

// The states of an event. InFlight is never stored: it is a pending event
// whose attempt is running now.
const (
	Pending   State = "pending"
	InFlight  State = "in_flight"
	Delivered State = "delivered"
	Dead      State = "dead"
)

// Event is one stored webhook: the request as it was verified, and its
// delivery state.
type Event struct {
	ID          string      `json:"id"`
	Seq         uint64      `json:"seq"`
	GeneratedID bool        `json:"generated_id,omitempty"`
	Provider    string      `json:"provider"`
	EventType   string      `json:"event,omitempty"`
	Method      string      `json:"method"`
	URI         string      `json:"uri"`
	Host        string      `json:"host,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	ClientIP    string      `json:"client_ip,omitempty"`
	RemoteAddr  string      `json:"remote_addr,omitempty"`
	ReceivedAt  time.Time   `json:"received_at"`
	Size        int64       `json:"size"`
	// Unverified: it failed a check and was stored anyway, because the
	// handler's enforce is off (report-only).
	Unverified bool `json:"unverified,omitempty"`
	// Key: the position (1-based) of the secret that verified it; 0 for
	// none (unverified, or stored before this was recorded).
	Key int `json:"key,omitempty"`

	State         State     `json:"state"`
	Attempts      int       `json:"attempts"`
	DueAt         time.Time `json:"due_at,omitzero"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	DoneAt        time.Time `json:"done_at,omitzero"`    // delivered or dead
	ExpiresAt     time.Time `json:"expires_at,omitzero"` // then its id is forgotten
	Replays       int       `json:"replays,omitempty"`
	// LeasedUntil: a gateway holds the pending event's lease (it is
	// being delivered) until then. Redis only; never stored.
	LeasedUntil time.Time `json:"leased_until,omitzero"`

	// Body is the raw body; only filled where asked for.
	Body []byte `json:"-"`

	// Bin holds, in the file only, the request's text fields (method,
	// URI, host, headers, ...) when one of them is not valid UTF-8, which
	// JSON would change: gob keeps their bytes.
	Bin []byte `json:"bin,omitempty"`
}

// binFields are the fields an Event keeps in Bin when needed.
type binFields struct {
	Provider, EventType, Method, URI, Host, ClientIP, RemoteAddr string
	Header                                                       http.Header
}

func (ev *Event) textValid() bool {
	for _, s := range []string{ev.Provider, ev.EventType, ev.Method, ev.URI, ev.Host, ev.ClientIP, ev.RemoteAddr} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for k, vs := range ev.Header {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// recordV2 starts every record: the events are keyed by seq, so the
// record carries its id, as bytes, ahead of the JSON.
const recordV2 = 2

// encodeEvent is the event's record in the file: recordV2, the id's
// length (uvarint) and bytes, then JSON, with the text fields in Bin when
// JSON would not keep their bytes.
func encodeEvent(ev *Event) ([]byte, error) {
	js, err := encodeJSON(ev)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(ev.ID)+len(js))
	rec = append(rec, recordV2)
	rec = binary.AppendUvarint(rec, uint64(len(ev.ID)))
	rec = append(rec, ev.ID...)
	return append(rec, js...), nil
}

func encodeJSON(ev *Event) ([]byte, error) {
	if ev.textValid() {
		ev.Bin = nil
		return json.Marshal(ev)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(binFields{ev.Provider, ev.EventType, ev.Method, ev.URI, ev.Host, ev.ClientIP, ev.RemoteAddr, ev.Header}); err != nil {
		return nil, err
	}
	cp := *ev
	cp.Bin = buf.Bytes()
	cp.Provider, cp.EventType, cp.Method, cp.URI, cp.Host, cp.ClientIP, cp.RemoteAddr, cp.Header = "", "", "", "", "", "", "", nil
	return json.Marshal(&cp)
}

// decodeEvent reads a record written by encodeBinary or encodeEvent (or,
// when migrating, a record of the first layout: the JSON alone).
func decodeEvent(v []byte, ev *Event) error {
	if len(v) > 0 && v[0] == recordV3 {
		return decodeBinary(v, ev)
	}
	var id []byte
	if len(v) > 0 && v[0] == recordV2 {
		n, k := binary.Uvarint(v[1:])
		if k <= 0 || uint64(len(v)-1-k) < n {
			return errDamaged
		}
		id = v[1+k : 1+k+int(n)]
		v = v[1+k+int(n):]
	}
	if err := json.Unmarshal(v, ev); err != nil {
		return err
	}
	if id != nil {
		// the bytes, which JSON would turn into U+FFFD when not UTF-8
		ev.ID = string(id)
	}
	if ev.Bin != nil {
		var b binFields
		if err := gob.NewDecoder(bytes.NewReader(ev.Bin)).Decode(&b); err != nil {
			return err
		}
		ev.Provider, ev.EventType, ev.Method, ev.URI, ev.Host, ev.ClientIP, ev.RemoteAddr, ev.Header = b.Provider, b.EventType, b.Method, b.URI, b.Host, b.ClientIP, b.RemoteAddr, b.Header
		ev.Bin = nil
	}
	return nil
}

// Errors of the store. Every one answers the sender 503: nothing was
// stored, the sender retries.
var (
	ErrFull    = errors.New("queue full")
	ErrNoSpace = errors.New("disk short of space")
	ErrStore   = errors.New("queue store unavailable")
	ErrLocked  = errors.New("queue file is locked by another process")
	ErrClosed  = errors.New("queue store closed")
	ErrUnknown = errors.New("no such event")
	ErrState   = errors.New("event is not in a state that allows this")
	ErrBadID   = errors.New("event id empty or too long")

	errDamaged = fmt.Errorf("%w: a damaged record", ErrStore)
)

// Limits bound a queue's pending events (pending and in flight).
type Limits struct {
	MaxEvents int64
	MaxBytes  int64
}

// Options of a Store.
type Options struct {
	// LockTimeout is how long Open waits for another process's lock on
	// the file. Default 1 s.
	LockTimeout time.Duration
	// MinFree is the free space, in bytes, the file system must keep
	// beyond an event's own size (twice it: bbolt copies pages); an event
	// that would leave less is refused with ErrNoSpace. Default 16 MiB.
	MinFree int64
	// MaxBatchBytes bounds the bodies of one group commit. Default 64 MiB.
	MaxBatchBytes int64
	// MergeIDs is how many ids of new events are kept in memory before
	// they are sealed into a generation of the file's id index (see
	// idIndex). Default 32768.
	MergeIDs int
}

// Store is one bbolt file of queues.
type Store struct {
	path string
	opts Options

	mu       sync.RWMutex // db swaps (reopen after a failed commit)
	db       *bolt.DB
	degraded error

	ops chan *op
	// touched are the queues whose ids the commit under way changes,
	// sealing those whose new ids it seals into an epoch, and sealed those
	// with an epoch to write once ready (the committer's own; idIndex)
	touched, sealing, sealed []*Queue
	stop                     chan struct{}
	done                     chan struct{}
	closed                   sync.Once

	qmu    sync.Mutex
	queues map[string]*Queue
}

var (
	bktQueues = []byte("queues")
	bktIDs    = []byte("ids")
	bktEvents = []byte("events")
	bktBodies = []byte("bodies")
	bktDue    = []byte("due")
	bktOrder  = []byte("order")
	bktExpire = []byte("expire")
	bktMeta   = []byte("meta")
	keySeq    = []byte("seq")
	keyPaused = []byte("paused")
	keyFormat = []byte("format")
)

// The layout of a queue's buckets (format 2):
//
//	ids     generations (ids.go): a bucket each, named by the highest seq
//	        it covers, holding the ids and their seqs, sorted, as one value
//	        (genBlob); the ids of the latest events are in memory only (and
//	        in their records)
//	events  seq → record (encodeBinary; encodeEvent before it)
//	bodies  seq → body, while pending or dead
//	due     due time ‖ seq → id, pending events
//	order   seq → id, pending events (for ordered delivery)
//	expire  done time + ttl ‖ seq → id, delivered and dead events
//	meta    seq, paused, format, ids_through
//
// No write takes random keys: events, bodies and order are appended to,
// generations are written once, in order, so a group commit rewrites few
// pages (deletes, when events are purged, are not in order). Format 1 (no
// format key) keyed events and bodies by id; Queue migrates it in place.
const formatV2 = 2

// Open opens (creating it and its directory) the bbolt file at path. A
// file another process holds fails with ErrLocked after LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MinFree <= 0 {
		opts.MinFree = 16 << 20
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 64 << 20
	}
	if opts.MergeIDs <= 0 {
		opts.MergeIDs = 32768
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	s := &Store{path: path, opts: opts, ops: make(chan *op, 1024), stop: make(chan struct{}), done: make(chan struct{}), queues: map[string]*Queue{}}
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	s.db = db
	go s.committer()
	return s, nil
}

func (s *Store) open() (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{
		Timeout:        s.opts.LockTimeout,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another Caddy running with this queue? give each its own store path)", ErrLocked, s.path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %v", ErrStore, s.path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bktQueues)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	return db, nil
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Close stops the committer (failing the writes still waiting) and closes
// the file.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		if s.db != nil {
			err = s.db.Close()
			s.db = nil
		}
		s.mu.Unlock()
	})
	return err
}

// Queue returns the queue name of the store, creating it (and reading its
// counters) the first time.
func (s *Store) Queue(name string) (*Queue, error) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if q, ok := s.queues[name]; ok {
		return q, nil
	}
	q := &Queue{s: s, name: []byte(name), Name: name}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktQueues)
		b, err := root.CreateBucketIfNotExists(q.name)
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bktIDs, bktEvents, bktBodies, bktDue, bktOrder, bktExpire, bktMeta} {
			if _, err := b.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		if err := migrate(b); err != nil {
			return err
		}
		return q.ids.load(b)
	})
	if err == nil {
		err = s.db.View(q.load)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	s.queues[name] = q
	return q, nil
}

// Queues lists the names of the queues opened in this process.
func (s *Store) Queues() []*Queue {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	out := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, q)
	}
	return out
}

// op is one write of a group commit. apply runs inside the transaction, in
// the committer goroutine; it returns an error only for a failure of the
// store itself, which fails the whole transaction. commit runs after the
// transaction committed (and fsync'd), to update counters; abort, in the
// committer too, after it failed, to take back what apply counted ahead.
type op struct {
	apply  func(tx *bolt.Tx) error
	commit func()
	abort  func()
	size   int64
	done   chan error
}

var opPool = sync.Pool{New: func() any { return &op{done: make(chan error, 1)} }}

// write runs apply in the next group commit and waits for its fsync.
func (s *Store) write(size int64, apply func(tx *bolt.Tx) error, commit func()) error {
	return s.writeOrAbort(size, apply, commit, nil)
}

// writeOrAbort is write with an abort (see op).
func (s *Store) writeOrAbort(size int64, apply func(tx *bolt.Tx) error, commit, abort func()) error {
	o := opPool.Get().(*op)
	o.apply, o.commit, o.abort, o.size = apply, commit, abort, size
	select {
	case s.ops <- o:
	case <-s.stop:
		return ErrClosed
	}
	var err error
	select {
	case err = <-o.done:
	case <-s.done:
		// the committer has stopped: it answered o first, or o is left
		// in s.ops unread (and is not reused)
		select {
		case err = <-o.done:
		default:
			return ErrClosed
		}
	}
	o.apply, o.commit, o.abort = nil, nil, nil
	opPool.Put(o)
	return err
}

func (s *Store) committer() {
	defer close(s.done)
	batch := make([]*op, 0, 256)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.stop:
			// fail what is still waiting
			for {
				select {
				case o := <-s.ops:
					o.done <- ErrClosed
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		size := first.size
		// Let the goroutines that are ready to run go first: the
		// requests being read, verified and handed over. Without it, the
		// first write of an idle committer wakes it as the runtime's next
		// goroutine, ahead of them, and with one P (one core) the store
		// can fall into commits of one event each, the disk's fsync and
		// the requests' CPU taking turns instead of overlapping
		// (BENCHMARKS.md §5c: 1,800 events/s at 81 KiB written each,
		// against 9,700 at 6 KiB). Their writes join this batch.
		runtime.Gosched()
	fill:
		for len(batch) < cap(batch) && size < s.opts.MaxBatchBytes {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
				size += o.size
			default:
				break fill
			}
		}
		err := s.commit(batch)
		for _, o := range batch {
			if err == nil && o.commit != nil {
				o.commit()
			}
			if err != nil && o.abort != nil {
				o.abort()
			}
			o.done <- err
		}
	}
}

func (s *Store) commit(batch []*op) error {
	if err := s.reopenIfNeeded(); err != nil {
		return err
	}
	// The transaction runs under the read lock: bbolt lets read
	// transactions (Due, Get, List, the admin API) run beside the one
	// writer, so they do not wait for this commit's fsync. Only a reopen,
	// which swaps s.db, takes the write lock. s.degraded is the
	// committer's own.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	s.touched, s.sealing = s.touched[:0], s.sealing[:0]
	err := s.db.Update(func(tx *bolt.Tx) error {
		// the generations prepared since the last commit, first: the
		// operations below may drop one again
		for _, q := range s.sealed {
			q.touch()
			if err := q.ids.writeReady(tx.Bucket(bktQueues).Bucket(q.name)); err != nil {
				return err
			}
		}
		for _, o := range batch {
			if err := o.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, q := range s.touched {
		var sealAt uint64
		if err == nil && slices.Contains(s.sealing, q) {
			q.mu.Lock()
			sealAt = q.seq
			q.mu.Unlock()
		}
		q.ids.end(err == nil, sealAt)
		if sealed := !q.ids.canSeal(); sealed != slices.Contains(s.sealed, q) {
			if sealed {
				s.sealed = append(s.sealed, q)
			} else {
				s.sealed = slices.DeleteFunc(s.sealed, func(o *Queue) bool { return o == q })
			}
		}
	}
	if err != nil {
		s.degraded = err
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("%w: %v", ErrNoSpace, err)
		}
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// reopenIfNeeded reopens the file after a failed commit: bbolt re-reads
// its meta pages, so a failed commit leaves nothing half-written behind.
func (s *Store) reopenIfNeeded() error {
	if s.degraded == nil {
		s.mu.RLock()
		ok := s.db != nil
		s.mu.RUnlock()
		if ok {
			return nil
		}
	}
	s.mu.Lock()
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	db, err := s.open()
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.db = db
	s.mu.Unlock()
	// The failed commit left the ids and counters in memory as they were
	// (idIndex.end, the ops' abort), but a commit that failed in its last
	// fsync may be on disk after all: read them back from the file.
	// (Queues is called without s.mu: Queue takes the two locks the other
	// way.)
	for _, q := range s.Queues() {
		err := s.view(func(tx *bolt.Tx) error {
			if err := q.ids.load(tx.Bucket(bktQueues).Bucket(q.name)); err != nil {
				return err
			}
			return q.load(tx)
		})
		if err != nil {
			s.degraded = err
			return fmt.Errorf("%w: %v", ErrStore, err)
		}
	}
	s.degraded = nil
	return nil
}

// view runs a read transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

// freeSpace is the space left to unprivileged users on the file's file
// system.
func (s *Store) freeSpace() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(s.path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Queue is one named queue in a Store.
type Queue struct {
	s    *Store
	name []byte
	Name string

	mu           sync.Mutex
	pending      int64 // pending events, in flight included
	pendingBytes int64
	delivered    int64
	dead         int64
	paused       bool
	seq          uint64

	ids idIndex
}

// Counts are a queue's events by state.
type Counts struct {
	Pending      int64 `json:"pending"`
	PendingBytes int64 `json:"pending_bytes"`
	Delivered    int64 `json:"delivered"`
	Dead         int64 `json:"dead"`
}

// Counts returns the queue's counts.
func (q *Queue) Counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Counts{Pending: q.pending, PendingBytes: q.pendingBytes, Delivered: q.delivered, Dead: q.dead}
}

// Paused reports whether delivery is paused.
func (q *Queue) Paused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused
}

// load reads the counters and flags.
func (q *Queue) load(tx *bolt.Tx) error {
	b := tx.Bucket(bktQueues).Bucket(q.name)
	var c Counts
	var last uint64
	if k, _ := b.Bucket(bktEvents).Cursor().Last(); len(k) == 8 {
		last = binary.BigEndian.Uint64(k)
	}
	err := b.Bucket(bktEvents).ForEach(func(_, v []byte) error {
		var ev Event
		if err := decodeEvent(v, &ev); err != nil {
			return err
		}
		switch ev.State {
		case Pending:
			c.Pending++
			c.PendingBytes += ev.Size
		case Delivered:
			c.Delivered++
		case Dead:
			c.Dead++
		}
		return nil
	})
	if err != nil {
		return err
	}
	meta := b.Bucket(bktMeta)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending, q.pendingBytes, q.delivered, q.dead = c.Pending, c.PendingBytes, c.Delivered, c.Dead
	q.paused = bytes.Equal(meta.Get(keyPaused), []byte{1})
	// never back: a reload after a failed commit keeps the seqs it gave
	q.seq = max(q.seq, last)
	if v := meta.Get(keySeq); len(v) == 8 {
		q.seq = max(q.seq, binary.BigEndian.Uint64(v))
	}
	if v := meta.Get(keyIDsThrough); len(v) == 8 {
		q.seq = max(q.seq, binary.BigEndian.Uint64(v))
	}
	return nil
}

// qbuckets are a queue's buckets in one transaction.
type qbuckets struct {
	ids, events, bodies, due, order, expire, meta *bolt.Bucket
	q                                             *Queue
}

func (q *Queue) buckets(tx *bolt.Tx) qbuckets {
	b := tx.Bucket(bktQueues).Bucket(q.name)
	qb := qbuckets{b.Bucket(bktIDs), b.Bucket(bktEvents), b.Bucket(bktBodies), b.Bucket(bktDue), b.Bucket(bktOrder), b.Bucket(bktExpire), b.Bucket(bktMeta), q}
	// appended to: full pages, not the half-full ones of random inserts
	qb.events.FillPercent, qb.bodies.FillPercent, qb.order.FillPercent = 0.95, 0.95, 0.95
	return qb
}

// lookup is the seq key and record of the event id (nil when unknown).
func (b qbuckets) lookup(id []byte) (key, rec []byte) {
	seq, ok := b.q.ids.get(id, b.events.Tx().Writable(), b.ids)
	if !ok {
		return nil, nil
	}
	key = seqKey(seq)
	rec = b.events.Get(key)
	if rec == nil {
		return nil, nil
	}
	if rid, err := recordID(rec); err != nil || !bytes.Equal(rid, id) {
		// the index and the file disagree: the file wins
		return nil, nil
	}
	return key, rec
}

// addID notes the id of an event appended in this commit, and has the
// commit seal the ids in memory into an epoch when enough are waiting.
func (q *Queue) addID(id string, seq uint64) {
	q.touch()
	q.ids.add(id, seq)
	if !slices.Contains(q.s.sealing, q) && q.ids.sealDue(q.s.opts.MergeIDs) {
		q.s.sealing = append(q.s.sealing, q)
	}
}

// delID forgets id, in memory and in the generations; after its record is
// deleted.
func (b qbuckets) delID(id []byte, seq uint64) error {
	b.q.touch()
	return b.q.ids.del(b.ids, b.events, id, seq)
}

// touch has the commit under way end the queue's id changes.
func (q *Queue) touch() {
	if !q.ids.touched {
		q.ids.touched = true
		q.s.touched = append(q.s.touched, q)
	}
}

// migrate rewrites a queue of format 1 (events and bodies keyed by id)
// into format 2, in the transaction that opens it.
func migrate(b *bolt.Bucket) error {
	meta := b.Bucket(bktMeta)
	if f := meta.Get(keyFormat); len(f) == 1 && f[0] == formatV2 {
		return nil
	}
	events, bodies := b.Bucket(bktEvents), b.Bucket(bktBodies)
	type old struct {
		id   []byte
		ev   Event
		body []byte
	}
	var all []old
	err := events.ForEach(func(k, v []byte) error {
		o := old{id: bytes.Clone(k)}
		if err := decodeEvent(v, &o.ev); err != nil {
			return err
		}
		o.ev.ID = string(k)
		if body := bodies.Get(k); body != nil {
			o.body = bytes.Clone(body)
		}
		all = append(all, o)
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range [][]byte{bktEvents, bktBodies} {
		if err := b.DeleteBucket(n); err != nil {
			return err
		}
		if _, err := b.CreateBucket(n); err != nil {
			return err
		}
	}
	events, bodies, ids := b.Bucket(bktEvents), b.Bucket(bktBodies), b.Bucket(bktIDs)
	for _, o := range all {
		k := seqKey(o.ev.Seq)
		rec := encodeBinary(&o.ev)
		if err := ids.Put(o.id, k); err != nil {
			return err
		}
		if err := events.Put(k, rec); err != nil {
			return err
		}
		if o.body != nil {
			if err := bodies.Put(k, o.body); err != nil {
				return err
			}
		}
	}
	return meta.Put(keyFormat, []byte{formatV2})
}

func timeKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// EnqueueResult says what Enqueue did.
type EnqueueResult struct {
	// Duplicate: an event with this id is already stored (in any state,
	// within its ttl); nothing was written.
	Duplicate bool
	// State of the stored event (for a duplicate, the earlier one's).
	State State
}

// Enqueue stores ev (with ev.Body) as pending, due at ev.ReceivedAt,
// unless an event with its id is already stored: the id check and the
// append are one transaction. It returns once the transaction is on disk.
// ev.Seq is set.
func (q *Queue) Enqueue(ev *Event, lim Limits) (EnqueueResult, error) {
	if len(ev.ID) == 0 || len(ev.ID) > bolt.MaxKeySize {
		// bbolt would refuse the key, failing the whole group commit
		return EnqueueResult{}, fmt.Errorf("%w: %d bytes", ErrBadID, len(ev.ID))
	}
	size := int64(len(ev.Body))
	ev.Size = size
	if free, err := q.s.freeSpace(); err == nil && free < 2*size+q.s.opts.MinFree {
		return EnqueueResult{}, fmt.Errorf("%w: %d bytes free", ErrNoSpace, free)
	}
	var res EnqueueResult
	var added bool
	err := q.s.writeOrAbort(size, func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		if _, old := b.lookup([]byte(ev.ID)); old != nil {
			var prev Event
			if err := decodeEvent(old, &prev); err != nil {
				return err
			}
			res = EnqueueResult{Duplicate: true, State: prev.State}
			return nil
		}
		q.mu.Lock()
		full := (lim.MaxEvents > 0 && q.pending+1 > lim.MaxEvents) || (lim.MaxBytes > 0 && q.pendingBytes+size > lim.MaxBytes)
		if full {
			q.mu.Unlock()
			return nil
		}
		q.seq++
		ev.Seq = q.seq
		// counted now (rolled back below if the commit fails), so that
		// later appends of the same batch see this one
		q.pending++
		q.pendingBytes += size
		q.mu.Unlock()
		added = true
		ev.State = Pending
		ev.DueAt = ev.ReceivedAt
		v := encodeBinary(ev)
		id, k := []byte(ev.ID), seqKey(ev.Seq)
		q.addID(ev.ID, ev.Seq)
		if err := b.events.Put(k, v); err != nil {
			return err
		}
		if err := b.bodies.Put(k, ev.Body); err != nil {
			return err
		}
		if err := b.due.Put(timeKey(ev.DueAt, ev.Seq), id); err != nil {
			return err
		}
		if err := b.order.Put(k, id); err != nil {
			return err
		}
		res = EnqueueResult{State: Pending}
		return nil
	}, nil, func() {
		// the commit failed: not stored after all
		if added {
			q.mu.Lock()
			q.pending--
			q.pendingBytes -= size
			q.mu.Unlock()
		}
	})
	if err != nil {
		return EnqueueResult{}, err
	}
	if !added && !res.Duplicate {
		return EnqueueResult{}, ErrFull
	}
	return res, nil
}

// Due returns up to max pending events due at now, earliest first, with
// their bodies, skipping those skip reports (in flight). With ordered,
// only the oldest pending event is considered, and only if it is due.
// next is the earliest due time of the pending events not returned (zero
// when there is none).
func (q *Queue) Due(now time.Time, max int, ordered bool, skip func(id string) bool) (evs []*Event, next time.Time, err error) {
	err = q.s.view(func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		due, order := b.due, b.order
		read := func(k []byte) (*Event, error) {
			rec := b.events.Get(k)
			if rec == nil {
				return nil, fmt.Errorf("%w: no record for a due event", ErrStore)
			}
			var ev Event
			if err := decodeEvent(rec, &ev); err != nil {
				return nil, err
			}
			ev.Body = bytes.Clone(b.bodies.Get(k))
			return &ev, nil
		}
		if ordered {
			k, id := order.Cursor().First()
			if k == nil || skip(string(id)) {
				return nil
			}
			ev, err := read(k)
			if err != nil {
				return err
			}
			if ev.DueAt.After(now) {
				next = ev.DueAt
				return nil
			}
			evs = append(evs, ev)
			return nil
		}
		c := due.Cursor()
		for k, id := c.First(); k != nil; k, id = c.Next() {
			at := time.Unix(0, int64(binary.BigEndian.Uint64(k)))
			if at.After(now) {
				next = at
				return nil
			}
			if skip(string(id)) {
				continue
			}
			if len(evs) >= max {
				next = at
				return nil
			}
			ev, err := read(k[8:])
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	return evs, next, err
}

// Outcome is the result of one delivery attempt.
type Outcome struct {
	// Delivered: a 2xx was written.
	Delivered bool
	// Dead: no more attempts (past max_age or max_attempts).
	Dead bool
	// RetryAt: when a failed attempt is tried again.
	RetryAt time.Time
	// Status is the backend's status (0 for none); Error the failure.
	Status int
	Error  string
	// At is when the attempt started.
	At time.Time
	// TTL: how long a delivered or dead event's id is kept.
	TTL time.Duration
}

// Complete records an attempt of the pending event id. A delivered
// event's body is dropped at once; a dead one keeps its body (for replay)
// for the ttl.
func (q *Queue) Complete(id string, o Outcome) error {
	var before Event
	var found bool
	err := q.s.write(0, func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		due, order, expire := b.due, b.order, b.expire
		k, v := b.lookup([]byte(id))
		if v == nil {
			return nil
		}
		var ev Event
		if err := decodeEvent(v, &ev); err != nil {
			return err
		}
		if ev.State != Pending {
			return nil
		}
		found, before = true, ev
		if err := due.Delete(timeKey(ev.DueAt, ev.Seq)); err != nil {
			return err
		}
		ev.Attempts++
		ev.LastAttemptAt = o.At
		ev.LastStatus = o.Status
		ev.LastError = o.Error
		switch {
		case o.Delivered || o.Dead:
			ev.State = Dead
			if o.Delivered {
				ev.State = Delivered
				ev.LastError = ""
				if err := b.bodies.Delete(k); err != nil {
					return err
				}
			}
			ev.DoneAt = o.At
			ev.ExpiresAt = o.At.Add(o.TTL)
			ev.DueAt = time.Time{}
			if err := order.Delete(k); err != nil {
				return err
			}
			if err := expire.Put(timeKey(ev.ExpiresAt, ev.Seq), []byte(id)); err != nil {
				return err
			}
		default:
			ev.DueAt = o.RetryAt
			if err := due.Put(timeKey(ev.DueAt, ev.Seq), []byte(id)); err != nil {
				return err
			}
		}
		nv := encodeBinary(&ev)
		return b.events.Put(k, nv)
	}, func() {
		if !found {
			return
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		if o.Delivered {
			q.pending--
			q.pendingBytes -= before.Size
			q.delivered++
		} else if o.Dead {
			q.pending--
			q.pendingBytes -= before.Size
			q.dead++
		}
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrUnknown
	}
	return nil
}

// Replay puts a dead or delivered event back to pending, due now, with its
// attempts reset. A delivered event whose body was dropped cannot be
// replayed (ErrState).
func (q *Queue) Replay(id string, now time.Time) (*Event, error) {
	var ev Event
	var prev State
	var found, ok bool
	err := q.s.write(0, func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		k, v := b.lookup([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		if err := decodeEvent(v, &ev); err != nil {
			return err
		}
		prev = ev.State
		if (ev.State != Dead && ev.State != Delivered) || b.bodies.Get(k) == nil {
			return nil
		}
		ok = true
		if err := b.expire.Delete(timeKey(ev.ExpiresAt, ev.Seq)); err != nil {
			return err
		}
		ev.State = Pending
		ev.Attempts = 0
		ev.Replays++
		ev.DoneAt, ev.ExpiresAt = time.Time{}, time.Time{}
		ev.DueAt = now
		if err := b.due.Put(timeKey(now, ev.Seq), []byte(id)); err != nil {
			return err
		}
		if err := b.order.Put(k, []byte(id)); err != nil {
			return err
		}
		nv := encodeBinary(&ev)
		return b.events.Put(k, nv)
	}, func() {
		if !ok {
			return
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		q.pending++
		q.pendingBytes += ev.Size
		if prev == Dead {
			q.dead--
		} else {
			q.delivered--
		}
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, ErrUnknown
	case !ok:
		return nil, fmt.Errorf("%w: %s (replay takes a dead event, or a delivered one whose body is kept)", ErrState, prev)
	}
	return &ev, nil
}

// Discard deletes an event that is not in flight (the caller checks), in
// any state, and forgets its id.
func (q *Queue) Discard(id string) error {
	var ev Event
	var found bool
	err := q.s.write(0, func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		_, v := b.lookup([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		if err := decodeEvent(v, &ev); err != nil {
			return err
		}
		if err := b.remove(&ev); err != nil {
			return err
		}
		return q.keepSeq(b)
	}, func() {
		if found {
			q.forget(&ev)
		}
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrUnknown
	}
	return nil
}

func (b qbuckets) remove(ev *Event) error {
	k := seqKey(ev.Seq)
	for _, del := range []func() error{
		func() error { return b.events.Delete(k) },
		func() error { return b.delID([]byte(ev.ID), ev.Seq) }, // after the record
		func() error { return b.bodies.Delete(k) },
		func() error { return b.order.Delete(k) },
		func() error {
			if ev.State == Pending {
				return b.due.Delete(timeKey(ev.DueAt, ev.Seq))
			}
			return b.expire.Delete(timeKey(ev.ExpiresAt, ev.Seq))
		},
	} {
		if err := del(); err != nil {
			return err
		}
	}
	return nil
}

// keepSeq records the last seq given, so that no seq is given twice
// after the events that had the highest ones are gone.
func (q *Queue) keepSeq(b qbuckets) error {
	q.mu.Lock()
	seq := q.seq
	q.mu.Unlock()
	return b.meta.Put(keySeq, seqKey(seq))
}

func (q *Queue) forget(ev *Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch ev.State {
	case Pending:
		q.pending--
		q.pendingBytes -= ev.Size
	case Delivered:
		q.delivered--
	case Dead:
		q.dead--
	}
}

// Purge forgets the delivered and dead events whose ttl ended by now.
func (q *Queue) Purge(now time.Time) (int, error) {
	var gone []Event
	err := q.s.write(0, func(tx *bolt.Tx) error {
		gone = gone[:0]
		b := q.buckets(tx)
		var keys [][]byte
		c := b.expire.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if time.Unix(0, int64(binary.BigEndian.Uint64(k))).After(now) || len(keys) >= 10000 {
				break
			}
			keys = append(keys, bytes.Clone(k))
			sk := k[8:]
			if v := b.events.Get(sk); v != nil {
				var ev Event
				if err := decodeEvent(v, &ev); err != nil {
					return err
				}
				gone = append(gone, ev)
				for _, del := range []func() error{
					func() error { return b.events.Delete(sk) },
					func() error { return b.delID([]byte(ev.ID), ev.Seq) }, // after the record
					func() error { return b.bodies.Delete(sk) },
				} {
					if err := del(); err != nil {
						return err
					}
				}
			}
		}
		for _, k := range keys {
			if err := b.expire.Delete(k); err != nil {
				return err
			}
		}
		if len(gone) == 0 {
			return nil
		}
		return q.keepSeq(b)
	}, func() {
		for i := range gone {
			q.forget(&gone[i])
		}
	})
	return len(gone), err
}

// SetPaused pauses or resumes delivery; it is kept in the file.
func (q *Queue) SetPaused(p bool) error {
	return q.s.write(0, func(tx *bolt.Tx) error {
		v := []byte{0}
		if p {
			v[0] = 1
		}
		return q.buckets(tx).meta.Put(keyPaused, v)
	}, func() {
		q.mu.Lock()
		q.paused = p
		q.mu.Unlock()
	})
}

// Get returns the event id, with its body if withBody.
func (q *Queue) Get(id string, withBody bool) (*Event, error) {
	var ev *Event
	err := q.s.view(func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		k, v := b.lookup([]byte(id))
		if v == nil {
			return ErrUnknown
		}
		ev = new(Event)
		if err := decodeEvent(v, ev); err != nil {
			return err
		}
		if withBody {
			ev.Body = bytes.Clone(b.bodies.Get(k))
		}
		return nil
	})
	return ev, err
}

// List returns up to limit events of the state (all states when empty),
// in order of receipt, after the sequence number after.
func (q *Queue) List(state State, after uint64, limit int) ([]*Event, error) {
	var out []*Event
	err := q.s.view(func(tx *bolt.Tx) error {
		if after == math.MaxUint64 {
			return nil
		}
		// events are keyed by seq: in order of receipt
		c := q.buckets(tx).events.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			var ev Event
			if err := decodeEvent(v, &ev); err != nil {
				return err
			}
			if state != "" && ev.State != state && !(state == InFlight && ev.State == Pending) {
				continue
			}
			out = append(out, &ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OldestPending is the receive time of the oldest pending event (zero
// when there is none).
func (q *Queue) OldestPending() (time.Time, error) {
	var t time.Time
	err := q.s.view(func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		k, _ := b.order.Cursor().First()
		if k == nil {
			return nil
		}
		var ev Event
		if err := decodeEvent(b.events.Get(k), &ev); err != nil {
			return err
		}
		t = ev.ReceivedAt
		return nil
	})
	return t, err
}

// Backup writes a consistent copy of the whole file to w, from one read
// transaction, while the store keeps running.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Backup is the store's Backup, for one of its queues.
func (q *Queue) Backup(w io.Writer) (int64, error) { return q.s.Backup(w) }
