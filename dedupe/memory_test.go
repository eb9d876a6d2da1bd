package dedupe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test advances; safe for the janitor to read.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// withClock makes m run on clk (under the lock: the janitor reads m.now).
func withClock(m *Memory, clk *fakeClock) *Memory {
	m.mu.Lock()
	m.now = clk.Now
	m.mu.Unlock()
	return m
}

// clockedMemory is a Memory on a fake clock, for the contract suite.
type clockedMemory struct {
	*Memory
	*fakeClock
}

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T) Store {
		clk := newFakeClock()
		m := withClock(NewMemory(1000, 0), clk)
		t.Cleanup(func() { m.Close() })
		return clockedMemory{m, clk}
	})
}

// memKeys is the sorted keys m holds, expired ones included.
func memKeys(m *Memory) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k := range m.entries {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkMemInvariants checks that the map and the heaps agree.
func checkMemInvariants(t *testing.T, m *Memory) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.done) + len(m.inflight); n != len(m.entries) {
		t.Fatalf("%d entries but %d done + %d in flight in the heaps", len(m.entries), len(m.done), len(m.inflight))
	}
	for name, h := range map[string]expiryHeap{"done": m.done, "inflight": m.inflight} {
		for i, e := range h {
			if e.index != i {
				t.Fatalf("%s heap: entry %q at %d has index %d", name, e.key, i, e.index)
			}
			if m.entries[e.key] != e {
				t.Fatalf("%s heap: entry %q is not the map's", name, e.key)
			}
			if (e.token == 0) != (name == "done") {
				t.Fatalf("entry %q (token %d) is in the %s heap", e.key, e.token, name)
			}
			if i > 0 && h[(i-1)/2].expires > e.expires {
				t.Fatalf("%s heap order broken at %d", name, i)
			}
		}
	}
}

// evictRecorder is a Memory that records the non-zero Claim.Evicted
// counts, as the handler reads them to warn.
type evictRecorder struct {
	*Memory
	mu     sync.Mutex
	counts []int
}

func (r *evictRecorder) Claim(ctx context.Context, key string, inflightTTL time.Duration) (Claim, error) {
	c, err := r.Memory.Claim(ctx, key, inflightTTL)
	if c.Evicted > 0 {
		r.mu.Lock()
		r.counts = append(r.counts, c.Evicted)
		r.mu.Unlock()
	}
	return c, err
}

func (r *evictRecorder) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.counts)
}

func claimDone(t *testing.T, s Store, key string, ttl time.Duration) {
	t.Helper()
	c := mustClaim(t, s, key, inflightTTL)
	wantStatus(t, c, Claimed)
	mustDone(t, s, key, c.Token, ttl)
}

func TestMemoryEvictsDoneNearestToExpiry(t *testing.T) {
	clk := newFakeClock()
	rec := &evictRecorder{Memory: withClock(NewMemory(6, 0), clk)}
	m := rec.Memory
	defer m.Close()

	// in flight, and nearer to expiry than any done entry: never evicted
	wantStatus(t, mustClaim(t, rec, "flight-1", time.Second), Claimed)
	wantStatus(t, mustClaim(t, rec, "flight-2", 2*time.Second), Claimed)
	claimDone(t, rec, "done-30m", 30*time.Minute)
	claimDone(t, rec, "done-10m", 10*time.Minute)
	claimDone(t, rec, "done-50m", 50*time.Minute)
	claimDone(t, rec, "done-20m", 20*time.Minute)
	if n := m.Len(); n != 6 {
		t.Fatalf("Len = %d, want 6", n)
	}
	if got := rec.get(); len(got) != 0 {
		t.Fatalf("eviction reported below the limit: %v", got)
	}

	// at the limit: each new claim evicts the done entry nearest to expiry
	wantStatus(t, mustClaim(t, rec, "new-1", inflightTTL), Claimed)
	want := []string{"done-20m", "done-30m", "done-50m", "flight-1", "flight-2", "new-1"}
	if got := memKeys(m); !slices.Equal(got, want) {
		t.Fatalf("after one eviction: keys %v, want %v", got, want)
	}
	wantStatus(t, mustClaim(t, rec, "new-2", inflightTTL), Claimed)
	want = []string{"done-30m", "done-50m", "flight-1", "flight-2", "new-1", "new-2"}
	if got := memKeys(m); !slices.Equal(got, want) {
		t.Fatalf("after two evictions: keys %v, want %v", got, want)
	}
	if got := rec.get(); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("evictions reported = %v, want [1 1]", got)
	}
	// the survivors still answer as they should; the evicted one is claimable
	wantStatus(t, mustClaim(t, rec, "flight-1", inflightTTL), InFlight)
	wantStatus(t, mustClaim(t, rec, "flight-2", inflightTTL), InFlight)
	wantStatus(t, mustClaim(t, rec, "done-50m", inflightTTL), Duplicate)
	wantStatus(t, mustClaim(t, rec, "done-30m", inflightTTL), Duplicate)
	// (claiming "done-10m" again is a new claim; it evicts done-30m)
	wantStatus(t, mustClaim(t, rec, "done-10m", inflightTTL), Claimed)
	want = []string{"done-10m", "done-50m", "flight-1", "flight-2", "new-1", "new-2"}
	if got := memKeys(m); !slices.Equal(got, want) {
		t.Fatalf("after three evictions: keys %v, want %v", got, want)
	}
	if n := m.Len(); n != 6 {
		t.Fatalf("Len = %d, want the limit 6", n)
	}
	checkMemInvariants(t, m)
}

func TestMemoryExpiredEntriesMakeRoomWithoutEviction(t *testing.T) {
	clk := newFakeClock()
	rec := &evictRecorder{Memory: withClock(NewMemory(3, 0), clk)}
	m := rec.Memory
	defer m.Close()
	claimDone(t, rec, "done-short", time.Minute)
	claimDone(t, rec, "done-long", time.Hour)
	wantStatus(t, mustClaim(t, rec, "flight-short", time.Second), Claimed)
	clk.Advance(2 * time.Minute) // done-short and flight-short expired
	wantStatus(t, mustClaim(t, rec, "new-1", inflightTTL), Claimed)
	wantStatus(t, mustClaim(t, rec, "new-2", inflightTTL), Claimed)
	if got := rec.get(); len(got) != 0 {
		t.Fatalf("expired entries counted as evictions: evictions %v", got)
	}
	want := []string{"done-long", "new-1", "new-2"}
	if got := memKeys(m); !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	checkMemInvariants(t, m)
}

func TestMemoryFullOfClaimsInFlight(t *testing.T) {
	clk := newFakeClock()
	rec := &evictRecorder{Memory: withClock(NewMemory(3, 0), clk)}
	m := rec.Memory
	defer m.Close()
	var tokens []string
	for _, k := range []string{"a", "b", "c"} {
		c := mustClaim(t, rec, k, inflightTTL)
		wantStatus(t, c, Claimed)
		tokens = append(tokens, c.Token)
	}
	for i := 0; i < 2; i++ {
		_, err := rec.Claim(context.Background(), "d", inflightTTL)
		errorsIsStore(t, "claim in a store full of claims in flight", err)
		if !errors.Is(err, ErrFull) {
			t.Fatalf("error %q does not wrap ErrFull", err)
		}
	}
	if got := rec.get(); len(got) != 0 {
		t.Fatalf("eviction reported when nothing could be evicted: %v", got)
	}
	// no claim in flight was dropped, the refused key holds nothing, and
	// known keys still answer while full (no room needed)
	if got, want := memKeys(m), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	for _, k := range []string{"a", "b", "c"} {
		wantStatus(t, mustClaim(t, rec, k, inflightTTL), InFlight)
	}
	// one claim done: the next new claim evicts it
	mustDone(t, m, "b", tokens[1], time.Hour)
	wantStatus(t, mustClaim(t, rec, "b", inflightTTL), Duplicate)
	wantStatus(t, mustClaim(t, rec, "d", inflightTTL), Claimed)
	if got := rec.get(); !slices.Equal(got, []int{1}) {
		t.Fatalf("evictions reported = %v, want [1]", got)
	}
	if got, want := memKeys(m), []string{"a", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	// a released claim makes room too, without an eviction
	mustRelease(t, m, "a", tokens[0])
	wantStatus(t, mustClaim(t, rec, "e", inflightTTL), Claimed)
	// an expired claim in flight makes room, without an eviction
	_, err := rec.Claim(context.Background(), "f", inflightTTL)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("claim while full: %v, want ErrFull", err)
	}
	clk.Advance(inflightTTL)
	wantStatus(t, mustClaim(t, rec, "f", inflightTTL), Claimed)
	if got := rec.get(); !slices.Equal(got, []int{1}) {
		t.Fatalf("evictions reported = %v, want [1]", got)
	}
	checkMemInvariants(t, m)
}

// Done does not check the limit (a delivered event is never refused): the
// store may pass max_entries by the Dones whose claims expired and were
// dropped, until the next new claim evicts back under the limit and
// reports every eviction.
func TestMemoryEvictCountAboveLimit(t *testing.T) {
	clk := newFakeClock()
	rec := &evictRecorder{Memory: withClock(NewMemory(3, 0), clk)}
	m := rec.Memory
	defer m.Close()
	claimDone(t, rec, "done-1", 10*time.Minute)
	claimDone(t, rec, "done-2", 20*time.Minute)
	claimDone(t, rec, "done-3", 30*time.Minute)
	// events whose claims are long gone are marked done
	mustDone(t, m, "late-1", "", 40*time.Minute)
	mustDone(t, m, "late-2", "", 50*time.Minute)
	if n := m.Len(); n != 5 {
		t.Fatalf("Len = %d, want 5", n)
	}
	wantStatus(t, mustClaim(t, rec, "new", inflightTTL), Claimed)
	if got := rec.get(); !slices.Equal(got, []int{3}) {
		t.Fatalf("evictions reported = %v, want one call with 3", got)
	}
	if got, want := memKeys(m), []string{"late-1", "late-2", "new"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	checkMemInvariants(t, m)
}

// A claim that evicted done events and still found the store full of
// claims in flight fails with ErrFull and reports the evictions: they
// happened.
func TestMemoryEvictedReportedWithErrFull(t *testing.T) {
	clk := newFakeClock()
	m := withClock(NewMemory(2, 0), clk)
	defer m.Close()
	wantStatus(t, mustClaim(t, m, "a", inflightTTL), Claimed)
	wantStatus(t, mustClaim(t, m, "b", inflightTTL), Claimed)
	mustDone(t, m, "late", "", time.Hour) // Done passes the limit
	c, err := m.Claim(context.Background(), "c", inflightTTL)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("claim in a store full of claims in flight: %v, want ErrFull", err)
	}
	if c.Evicted != 1 {
		t.Fatalf("Evicted = %d with ErrFull, want the 1 done event dropped", c.Evicted)
	}
	if got, want := memKeys(m), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	checkMemInvariants(t, m)
}

// SetMaxEntries keeps every entry: a raised limit holds more at once, a
// lowered one evicts down to it at the next new claim, and reports it.
func TestMemorySetMaxEntries(t *testing.T) {
	clk := newFakeClock()
	m := withClock(NewMemory(2, 0), clk)
	defer m.Close()
	claimDone(t, m, "done-1", 10*time.Minute)
	claimDone(t, m, "done-2", 20*time.Minute)
	m.SetMaxEntries(4)
	if n := m.MaxEntries(); n != 4 {
		t.Fatalf("MaxEntries = %d, want 4", n)
	}
	for _, k := range []string{"done-3", "done-4"} {
		c := mustClaim(t, m, k, inflightTTL)
		wantStatus(t, c, Claimed)
		if c.Evicted != 0 {
			t.Fatalf("%s: evicted %d under the raised limit", k, c.Evicted)
		}
		mustDone(t, m, k, c.Token, 30*time.Minute)
	}
	for _, k := range []string{"done-1", "done-2", "done-3", "done-4"} {
		wantStatus(t, mustClaim(t, m, k, inflightTTL), Duplicate)
	}
	m.SetMaxEntries(2)
	c := mustClaim(t, m, "new", inflightTTL)
	wantStatus(t, c, Claimed)
	if c.Evicted != 3 {
		t.Fatalf("Evicted = %d after lowering the limit from 4 to 2, want 3", c.Evicted)
	}
	if got, want := memKeys(m), []string{"done-4", "new"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	checkMemInvariants(t, m)
}

func TestMemoryTokensAreDistinct(t *testing.T) {
	m := NewMemory(10000, 0)
	defer m.Close()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("k%d", i%10)
		c := mustClaim(t, m, k, inflightTTL)
		wantStatus(t, c, Claimed)
		if seen[c.Token] {
			t.Fatalf("token %q given twice", c.Token)
		}
		seen[c.Token] = true
		mustRelease(t, m, k, c.Token)
	}
}

// janitors counts the goroutines running a Memory janitor.
func janitors() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "dedupe.(*Memory).janitor")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitFor polls cond up to bound.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemoryJanitor(t *testing.T) {
	baseGoroutines := runtime.NumGoroutine()
	baseJanitors := janitors()

	clk := newFakeClock()
	m := withClock(NewMemory(1000, 20*time.Millisecond), clk)
	waitFor(t, 10*time.Second, "NewMemory with a sweep starts one janitor", func() bool { return janitors() == baseJanitors+1 })
	for i := 0; i < 10; i++ {
		claimDone(t, m, fmt.Sprintf("done-short-%d", i), time.Minute)
		claimDone(t, m, fmt.Sprintf("done-long-%d", i), time.Hour)
		wantStatus(t, mustClaim(t, m, fmt.Sprintf("flight-short-%d", i), 30*time.Second), Claimed)
		wantStatus(t, mustClaim(t, m, fmt.Sprintf("flight-long-%d", i), 2*time.Hour), Claimed)
	}
	if n := m.Len(); n != 40 {
		t.Fatalf("Len = %d, want 40", n)
	}
	clk.Advance(time.Minute) // the short ones expire; nothing reads them
	waitFor(t, 10*time.Second, "janitor drops the 20 expired entries", func() bool { return m.Len() == 20 })
	for _, k := range memKeys(m) {
		if !strings.Contains(k, "-long-") {
			t.Fatalf("janitor left the expired entry %q", k)
		}
	}
	checkMemInvariants(t, m)
	clk.Advance(2 * time.Hour)
	waitFor(t, 10*time.Second, "janitor drops every entry", func() bool { return m.Len() == 0 })
	checkMemInvariants(t, m)

	// Close stops the janitor: no goroutine left behind
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the janitor goroutine exits after Close", func() bool { return janitors() == baseJanitors })
	waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseGoroutines })
	// and nothing sweeps any more (the store still works)
	claimDone(t, m, "after-close", time.Minute)
	clk.Advance(time.Hour)
	time.Sleep(100 * time.Millisecond) // 5 sweeps, were the janitor alive
	if n := m.Len(); n != 1 {
		t.Fatalf("Len = %d after Close, want 1: something still sweeps", n)
	}
}

func TestMemoryNoJanitorWithoutSweep(t *testing.T) {
	base := janitors()
	m := NewMemory(10, 0)
	defer m.Close()
	time.Sleep(50 * time.Millisecond) // time for a janitor to show up, were one started
	if n := janitors(); n != base {
		t.Fatalf("sweep 0 started a janitor (%d running, want %d)", n, base)
	}
}

// Many goroutines on a small store with the limit hit all the time: no
// race (run with -race), the heaps stay consistent, the limit holds.
func TestMemoryConcurrentAtLimit(t *testing.T) {
	var evicted atomic.Int64
	m := NewMemory(50, 0)
	defer m.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := fmt.Sprintf("g%d-%d", g, i)
				c, err := m.Claim(context.Background(), k, inflightTTL)
				evicted.Add(int64(c.Evicted))
				if err != nil {
					if !errors.Is(err, ErrFull) {
						t.Error(err)
					}
					continue
				}
				if c.Status != Claimed {
					t.Errorf("%s: %v", k, c.Status)
					continue
				}
				if i%5 == 0 {
					_ = m.Release(context.Background(), k, c.Token)
				} else {
					_ = m.Done(context.Background(), k, c.Token, time.Hour)
				}
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n > 50 {
		t.Fatalf("Len = %d, over the limit 50", n)
	}
	if evicted.Load() == 0 {
		t.Fatal("no eviction reported at the limit")
	}
	checkMemInvariants(t, m)
}
