package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// advancer is a store whose clock the test drives (the memory store with a
// fake clock). A store without it runs on real time: the expiry cases then
// poll, up to a bound, with short TTLs.
type advancer interface {
	Advance(d time.Duration)
}

// TTLs and bounds of the expiry cases. A store on a test clock (the memory
// store) expires exactly when the test advances it, so its expiry is
// tested to the nanosecond. A store on real time (Redis) must see two
// operations land within the short TTL, and the test must not starve it of
// CPU: on a loaded 2-core machine under -race a goroutine can stall for
// hundreds of milliseconds, so the TTL is seconds long, and the cases that
// wait for it run in parallel to keep the suite's time down.
const (
	clockTTL    = 300 * time.Millisecond
	realTTL     = 3 * time.Second
	pollBound   = 15 * time.Second
	pollEvery   = 20 * time.Millisecond
	longTTL     = time.Hour
	inflightTTL = time.Minute
)

// expiryTTL is the TTL that the expiry cases let expire on s.
func expiryTTL(s Store) time.Duration {
	if _, ok := s.(advancer); ok {
		return clockTTL
	}
	return realTTL
}

// ckey returns a key unique to the running (sub)test, so that stores
// sharing a server never see each other's keys.
func ckey(t *testing.T, name string) string {
	return "contract:" + strings.ReplaceAll(t.Name(), "/", ":") + ":" + name
}

func mustClaim(t *testing.T, s Store, key string, ttl time.Duration) Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), key, ttl)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	return c
}

func wantStatus(t *testing.T, c Claim, want Status) {
	t.Helper()
	if c.Status != want {
		t.Fatalf("claim status = %v (left %v, token %q), want %v", c.Status, c.Left, c.Token, want)
	}
}

func mustDone(t *testing.T, s Store, key, token string, ttl time.Duration) {
	t.Helper()
	if err := s.Done(context.Background(), key, token, ttl); err != nil {
		t.Fatalf("Done(%q): %v", key, err)
	}
}

func mustRelease(t *testing.T, s Store, key, token string) {
	t.Helper()
	if err := s.Release(context.Background(), key, token); err != nil {
		t.Fatalf("Release(%q): %v", key, err)
	}
}

// waitClaimable lets the entry at key (held for ttl since start) expire,
// then claims it: with a test clock, by advancing it to the expiry exactly
// (and checking the entry still holds 1ns before it); on real time, by
// polling Claim until Claimed, checking that it did not free itself before
// ttl had passed. before is the status the entry has until it expires.
func waitClaimable(t *testing.T, s Store, key string, start time.Time, ttl time.Duration, before Status) Claim {
	t.Helper()
	if a, ok := s.(advancer); ok {
		a.Advance(ttl - time.Nanosecond)
		c := mustClaim(t, s, key, inflightTTL)
		wantStatus(t, c, before)
		if c.Left != time.Nanosecond {
			t.Fatalf("left 1ns before expiry = %v, want 1ns", c.Left)
		}
		a.Advance(time.Nanosecond)
		c = mustClaim(t, s, key, inflightTTL)
		wantStatus(t, c, Claimed)
		return c
	}
	// sleep through most of the ttl rather than poll it: a busy machine
	// needs the CPU more than the test needs the ttl's first seconds
	time.Sleep(time.Until(start.Add(ttl - 100*time.Millisecond)))
	deadline := time.Now().Add(pollBound)
	for {
		c := mustClaim(t, s, key, inflightTTL)
		if c.Status == Claimed {
			// Redis keeps expiry in ms: allow 2ms of rounding.
			if el := time.Since(start); el < ttl-2*time.Millisecond {
				t.Fatalf("entry freed after %v, before its ttl %v", el, ttl)
			}
			return c
		}
		if c.Status != before {
			t.Fatalf("while waiting for expiry: status %v, want %v", c.Status, before)
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry held for %v did not expire within %v (last left %v)", ttl, pollBound, c.Left)
		}
		time.Sleep(pollEvery)
	}
}

// letExpire waits until an entry held for ttl since start has expired,
// without touching it: with a test clock by advancing it; on real time by
// sleeping past the expiry (expiry is wall-clock time in the store, so
// this does not depend on the machine's load, provided start is taken
// after the operation that set the entry returned: never earlier than the
// store's own start of the ttl).
func letExpire(t *testing.T, s Store, start time.Time, ttl time.Duration) {
	t.Helper()
	if a, ok := s.(advancer); ok {
		a.Advance(ttl)
		return
	}
	time.Sleep(time.Until(start.Add(ttl + 20*time.Millisecond)))
}

// runContract is the behaviour every Store must have.
func runContract(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("FirstClaimIsClaimedWithToken", func(t *testing.T) {
		s := newStore(t)
		c := mustClaim(t, s, ckey(t, "a"), inflightTTL)
		wantStatus(t, c, Claimed)
		if c.Token == "" {
			t.Fatal("claimed without a token")
		}
		if c.Evicted != 0 {
			t.Fatalf("a claim in an empty store evicted %d entries", c.Evicted)
		}
		// another key is independent
		c2 := mustClaim(t, s, ckey(t, "b"), inflightTTL)
		wantStatus(t, c2, Claimed)
		if c2.Token == c.Token {
			t.Fatalf("two claims share the token %q", c.Token)
		}
	})

	t.Run("SecondClaimWhileInFlight", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		wantStatus(t, mustClaim(t, s, k, inflightTTL), Claimed)
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, InFlight)
		if c.Token != "" {
			t.Errorf("in-flight answer carries a token %q", c.Token)
		}
		if c.Left <= 0 || c.Left > inflightTTL {
			t.Errorf("in-flight left = %v, want in (0, %v]", c.Left, inflightTTL)
		}
		// a later claim with another inflightTTL does not extend the claim
		c = mustClaim(t, s, k, 10*inflightTTL)
		wantStatus(t, c, InFlight)
		if c.Left <= 0 || c.Left > inflightTTL {
			t.Errorf("in-flight left after a longer claim = %v, want in (0, %v]", c.Left, inflightTTL)
		}
	})

	t.Run("DoneThenDuplicate", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, Claimed)
		mustDone(t, s, k, c.Token, longTTL)
		for i := 0; i < 2; i++ {
			d := mustClaim(t, s, k, inflightTTL)
			wantStatus(t, d, Duplicate)
			if d.Token != "" {
				t.Errorf("duplicate answer carries a token %q", d.Token)
			}
			if d.Left <= longTTL-5*time.Second || d.Left > longTTL {
				t.Errorf("duplicate left = %v, want close to %v", d.Left, longTTL)
			}
		}
	})

	t.Run("ReleaseThenClaimedAgain", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, Claimed)
		mustRelease(t, s, k, c.Token)
		c2 := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c2, Claimed)
		if c2.Token == c.Token {
			t.Errorf("a new claim reuses the released token %q", c.Token)
		}
		wantStatus(t, mustClaim(t, s, k, inflightTTL), InFlight)
		// releasing a key that holds nothing is fine
		mustRelease(t, s, ckey(t, "never-claimed"), c.Token)
	})

	t.Run("ReleaseWithWrongTokenKeepsClaim", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, Claimed)
		// a token of another key, a made-up one, and an empty one
		other := mustClaim(t, s, ckey(t, "other"), inflightTTL)
		wantStatus(t, other, Claimed)
		for _, tok := range []string{other.Token, c.Token + "x", "done", ""} {
			mustRelease(t, s, k, tok)
			wantStatus(t, mustClaim(t, s, k, inflightTTL), InFlight)
		}
		// the right token still works
		mustRelease(t, s, k, c.Token)
		wantStatus(t, mustClaim(t, s, k, inflightTTL), Claimed)
	})

	t.Run("ReleaseWithStaleTokenKeepsNewClaim", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		shortTTL := expiryTTL(s)
		k := ckey(t, "a")
		start := time.Now()
		old := mustClaim(t, s, k, shortTTL)
		wantStatus(t, old, Claimed)
		cur := waitClaimable(t, s, k, start, shortTTL, InFlight)
		if cur.Token == old.Token {
			t.Fatalf("the new claim has the expired claim's token %q", old.Token)
		}
		// the gateway whose claim expired gives up: it must not drop cur
		mustRelease(t, s, k, old.Token)
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, InFlight)
		if c.Left <= shortTTL {
			t.Errorf("the current claim's left = %v, want its own inflight ttl (%v)", c.Left, inflightTTL)
		}
	})

	t.Run("ReleaseAfterDoneKeepsDone", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, Claimed)
		mustDone(t, s, k, c.Token, longTTL)
		mustRelease(t, s, k, c.Token)
		wantStatus(t, mustClaim(t, s, k, inflightTTL), Duplicate)
	})

	t.Run("InFlightExpires", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		shortTTL := expiryTTL(s)
		k := ckey(t, "a")
		start := time.Now()
		wantStatus(t, mustClaim(t, s, k, shortTTL), Claimed)
		c := mustClaim(t, s, k, shortTTL)
		wantStatus(t, c, InFlight)
		if c.Left <= 0 || c.Left > shortTTL {
			t.Fatalf("in-flight left = %v, want in (0, %v]", c.Left, shortTTL)
		}
		c = waitClaimable(t, s, k, start, shortTTL, InFlight)
		if c.Token == "" {
			t.Fatal("claimed again without a token")
		}
		// the new claim holds, with its own (long) expiry
		c = mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, InFlight)
		if c.Left <= shortTTL {
			t.Errorf("new claim's left = %v, want close to %v", c.Left, inflightTTL)
		}
	})

	t.Run("DoneExpires", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		shortTTL := expiryTTL(s)
		k := ckey(t, "a")
		c := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, c, Claimed)
		start := time.Now()
		mustDone(t, s, k, c.Token, shortTTL)
		d := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, d, Duplicate)
		if d.Left <= 0 || d.Left > shortTTL {
			t.Fatalf("duplicate left = %v, want in (0, %v]", d.Left, shortTTL)
		}
		waitClaimable(t, s, k, start, shortTTL, Duplicate)
	})

	t.Run("DoneAfterClaimExpiredStillMarksDone", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		shortTTL := expiryTTL(s)
		// the claim expired while the backend was slow; nobody took it since
		k := ckey(t, "a")
		c := mustClaim(t, s, k, shortTTL)
		set := time.Now() // the entry was set before the claim returned
		wantStatus(t, c, Claimed)
		letExpire(t, s, set, shortTTL)
		mustDone(t, s, k, c.Token, longTTL)
		d := mustClaim(t, s, k, inflightTTL)
		wantStatus(t, d, Duplicate)
		if d.Left <= longTTL-5*time.Second || d.Left > longTTL {
			t.Errorf("duplicate left = %v, want close to %v", d.Left, longTTL)
		}

		// the claim expired, was taken by a retry and let go again
		k2 := ckey(t, "b")
		start := time.Now()
		c = mustClaim(t, s, k2, shortTTL)
		wantStatus(t, c, Claimed)
		again := waitClaimable(t, s, k2, start, shortTTL, InFlight)
		mustRelease(t, s, k2, again.Token)
		mustDone(t, s, k2, c.Token, longTTL)
		wantStatus(t, mustClaim(t, s, k2, inflightTTL), Duplicate)

		// nothing at all is left of the claim
		k3 := ckey(t, "c")
		mustDone(t, s, k3, "", longTTL)
		wantStatus(t, mustClaim(t, s, k3, inflightTTL), Duplicate)
	})

	t.Run("ConcurrentClaimsOneKey", func(t *testing.T) {
		s := newStore(t)
		k := ckey(t, "a")
		const n = 50
		var (
			start   = make(chan struct{})
			wg      sync.WaitGroup
			claimed atomic.Int32
			inFl    atomic.Int32
			errs    = make(chan error, n)
		)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := s.Claim(context.Background(), k, inflightTTL)
				switch {
				case err != nil:
					errs <- err
				case c.Status == Claimed:
					claimed.Add(1)
				case c.Status == InFlight:
					inFl.Add(1)
				default:
					errs <- fmt.Errorf("status %v", c.Status)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if claimed.Load() != 1 || inFl.Load() != n-1 {
			t.Fatalf("%d goroutines claiming one key: %d claimed, %d in flight; want 1 and %d",
				n, claimed.Load(), inFl.Load(), n-1)
		}
	})

	t.Run("ConcurrentClaimsManyKeys", func(t *testing.T) {
		s := newStore(t)
		const keys, per = 200, 2
		var (
			start   = make(chan struct{})
			wg      sync.WaitGroup
			claimed [keys]atomic.Int32
			errs    = make(chan error, keys*per)
		)
		for i := 0; i < keys; i++ {
			k := ckey(t, fmt.Sprintf("k%03d", i))
			for j := 0; j < per; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					c, err := s.Claim(context.Background(), k, inflightTTL)
					switch {
					case err != nil:
						errs <- err
					case c.Status == Claimed:
						claimed[i].Add(1)
					case c.Status != InFlight:
						errs <- fmt.Errorf("%s: status %v", k, c.Status)
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i := range claimed {
			if n := claimed[i].Load(); n != 1 {
				t.Errorf("key %d: %d of %d concurrent claims claimed, want exactly 1", i, n, per)
			}
		}
	})
}

// errorsIsStore checks that err wraps ErrStore.
func errorsIsStore(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, ErrStore) {
		t.Fatalf("%s: error %q does not wrap ErrStore", what, err)
	}
}
