package dedupe

import (
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is a Store in this process's memory: for a single gateway; its
// entries are lost when Caddy stops. It holds at most max entries; at the
// limit it evicts the done entries nearest to expiry (never a claim in
// flight) and reports how many in Claim.Evicted.
type Memory struct {
	mu       sync.Mutex
	entries  map[string]*memEntry
	done     expiryHeap
	inflight expiryHeap
	max      int
	tokens   atomic.Uint64
	now      func() time.Time
	stop     chan struct{}
	stopOnce sync.Once
}

type memEntry struct {
	key     string
	token   uint64 // 0 once done
	expires int64  // unix nanoseconds
	index   int    // in done or inflight
}

// NewMemory returns a memory store of at most maxEntries keys. A janitor
// drops expired entries every sweep until Close.
func NewMemory(maxEntries int, sweep time.Duration) *Memory {
	m := &Memory{
		entries: make(map[string]*memEntry),
		max:     maxEntries,
		now:     time.Now,
		stop:    make(chan struct{}),
	}
	if sweep > 0 {
		go m.janitor(sweep)
	}
	return m
}

// Close stops the janitor.
func (m *Memory) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	return nil
}

func (m *Memory) janitor(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			m.expire(m.now().UnixNano())
			m.mu.Unlock()
		}
	}
}

// SetMaxEntries changes the limit on the entries held, keeping them all:
// a store shared across a config reload takes the new config's limit. A
// store over a lowered limit evicts down to it at the next new claim.
func (m *Memory) SetMaxEntries(n int) {
	m.mu.Lock()
	m.max = n
	m.mu.Unlock()
}

// MaxEntries is the limit on the entries held.
func (m *Memory) MaxEntries() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max
}

// Len is the number of entries held, expired ones included until swept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// expire drops the entries expired at now.
func (m *Memory) expire(now int64) {
	for _, h := range []*expiryHeap{&m.done, &m.inflight} {
		for len(*h) > 0 && (*h)[0].expires <= now {
			e := heap.Pop(h).(*memEntry)
			delete(m.entries, e.key)
		}
	}
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, key string, inflightTTL time.Duration) (Claim, error) {
	evicted := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	if e, ok := m.entries[key]; ok {
		if e.expires > now {
			left := time.Duration(e.expires - now)
			if e.token == 0 {
				return Claim{Status: Duplicate, Left: left}, nil
			}
			return Claim{Status: InFlight, Left: left}, nil
		}
		m.remove(e)
	}
	if len(m.entries) >= m.max {
		m.expire(now)
		for len(m.entries) >= m.max && len(m.done) > 0 {
			m.remove(m.done[0])
			evicted++
		}
		if len(m.entries) >= m.max {
			return Claim{Evicted: evicted}, fmt.Errorf("%w: %w: %d claims in flight", ErrStore, ErrFull, len(m.entries))
		}
	}
	tok := m.tokens.Add(1)
	e := &memEntry{key: key, token: tok, expires: now + int64(inflightTTL)}
	m.entries[key] = e
	heap.Push(&m.inflight, e)
	return Claim{Status: Claimed, Token: strconv.FormatUint(tok, 10), Evicted: evicted}, nil
}

// remove drops e from the map and its heap.
func (m *Memory) remove(e *memEntry) {
	delete(m.entries, e.key)
	if e.token == 0 {
		heap.Remove(&m.done, e.index)
	} else {
		heap.Remove(&m.inflight, e.index)
	}
}

// Done implements Store. The event is marked done even if the claim
// expired meanwhile: it was delivered.
func (m *Memory) Done(_ context.Context, key, _ string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok {
		m.remove(e)
	}
	e := &memEntry{key: key, expires: m.now().UnixNano() + int64(ttl)}
	m.entries[key] = e
	heap.Push(&m.done, e)
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok && e.token != 0 && strconv.FormatUint(e.token, 10) == token {
		m.remove(e)
	}
	return nil
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

var _ Store = (*Memory)(nil)
