package queue

import (
	"io"
	"time"
)

// Backend is one named queue in a store: what the gateway's dispatcher,
// its admin API and its CLI use. Two implementations: *Queue (a bbolt
// file, one process) and *RedisQueue (a Redis server shared by several
// gateways). The contract suite (contract_test.go) runs against both.
type Backend interface {
	// Enqueue stores ev (with ev.Body) as pending, due at ev.ReceivedAt,
	// unless an event with its id is stored (in any state, within its
	// ttl): the id check and the append are one atomic step. It returns
	// only once the write is durable (bbolt: fsync'd; Redis: in the AOF
	// on disk). ev.Seq is set. Over lim: ErrFull, nothing written.
	Enqueue(ev *Event, lim Limits) (EnqueueResult, error)
	// Due returns up to max pending events due at now, earliest first,
	// with their bodies, skipping those skip reports; with ordered only
	// the oldest pending event, when due. It leases nothing.
	Due(now time.Time, max int, ordered bool, skip func(id string) bool) ([]*Event, time.Time, error)
	// Claim is Due for delivery: in a store shared by several processes
	// (Redis) the events returned are leased to this process until
	// now+lease, and no other process's Claim returns them before that
	// (unless Release gives them back). A store of one process (bbolt)
	// has nothing to lease: Claim is Due.
	Claim(now time.Time, max int, ordered bool, lease time.Duration, skip func(id string) bool) ([]*Event, time.Time, error)
	// Complete records an attempt of the pending event id. ErrUnknown:
	// no such pending event; ErrState (Redis): another process holds
	// its lease now, or took the event over after this one's expired.
	Complete(id string, o Outcome) error
	// Release gives back the lease of an attempt cut short (a reload, a
	// stop): the event is due again at once, at its old due time, and
	// the attempt is not counted.
	Release(id string) error
	Replay(id string, now time.Time) (*Event, error)
	// Discard deletes the event (ErrState when it is leased by a
	// process now).
	Discard(id string) error
	Purge(now time.Time) (int, error)
	SetPaused(p bool) error
	Paused() bool
	Get(id string, withBody bool) (*Event, error)
	List(state State, after uint64, limit int) ([]*Event, error)
	OldestPending() (time.Time, error)
	Counts() Counts
	// Backup writes a copy of the store (bbolt: the whole file); a store
	// that cannot (Redis: use its own BGSAVE or AOF) returns ErrNoBackup.
	Backup(w io.Writer) (int64, error)
}

// Engine is a store of named queues: a bbolt file or a Redis server.
type Engine interface {
	OpenQueue(name string) (Backend, error)
	Close() error
}

// Poller is implemented by a Backend that other processes change (Redis):
// the dispatcher looks for due events at least this often, since another
// gateway's enqueue, resume or completion does not wake it.
type Poller interface {
	PollEvery() time.Duration
}

// OpenQueue is Queue, as an Engine.
func (s *Store) OpenQueue(name string) (Backend, error) {
	q, err := s.Queue(name)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Claim is Due: one process owns a bbolt file, its dispatcher's skip is
// the lease.
func (q *Queue) Claim(now time.Time, max int, ordered bool, _ time.Duration, skip func(id string) bool) ([]*Event, time.Time, error) {
	return q.Due(now, max, ordered, skip)
}

// Release does nothing: an event is not leased in a bbolt file.
func (q *Queue) Release(string) error { return nil }

var (
	_ Backend = (*Queue)(nil)
	_ Engine  = (*Store)(nil)
)
