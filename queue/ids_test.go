package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The id index (ids.go): ids of new events in memory, merged into the
// file's generations every MergeIDs events. The model and contract tests
// run with a merge every 5 events across crashes and reopens; the tests
// below cover what they cannot reach: failed commits (with and without a
// merge, and one that reached the disk after all), a reader whose
// transaction spans a merge, generations dropped, the first index's flat
// ids, and the Bloom filters.

// openMerge opens a store at path with a generation every every new ids
// (0: the default), and its queue "q".
func openMerge(t *testing.T, path string, every int) (*Store, *Queue) {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 2 * time.Second, MergeIDs: every})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	q, err := s.Queue("q")
	if err != nil {
		t.Fatalf("Queue: %v", err)
	}
	return s, q
}

var idsNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func enqueueID(q *Queue, id string) (EnqueueResult, error) {
	ev := &Event{ID: id, Provider: "vev", Method: "POST", URI: "/", ReceivedAt: idsNow, Body: []byte("body of " + id)}
	return q.Enqueue(ev, Limits{MaxEvents: 1 << 20, MaxBytes: 1 << 40})
}

func mustEnqueue(t *testing.T, q *Queue, id string) {
	t.Helper()
	res, err := enqueueID(q, id)
	if err != nil || res.Duplicate {
		t.Fatalf("Enqueue(%s) = %+v, %v; want stored", id, res, err)
	}
}

// failingBatch runs the calls in one group commit together with an
// operation that fails it, as a write error of the disk would: the
// committer is held in a transaction until they all wait.
func failingBatch(t *testing.T, s *Store, calls ...func() error) []error {
	t.Helper()
	fail := &op{done: make(chan error, 1), apply: func(*bolt.Tx) error { return errors.New("injected write failure") }}
	return failingBatchWith(t, s, fail, calls...)
}

// failingBatchWith is failingBatch with the operation that fails it.
func failingBatchWith(t *testing.T, s *Store, fail *op, calls ...func() error) []error {
	t.Helper()
	errs := oneBatch(t, s, fail, calls...)
	if err := <-fail.done; err == nil {
		t.Fatalf("the failing operation's commit succeeded")
	}
	return errs
}

// oneBatch runs the calls in one group commit, in this order, followed by
// last when not nil: the committer is held in a transaction until they
// all wait.
func oneBatch(t *testing.T, s *Store, last *op, calls ...func() error) []error {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	hold := &op{done: make(chan error, 1), apply: func(*bolt.Tx) error {
		close(entered)
		<-release
		return nil
	}}
	s.ops <- hold
	<-entered
	errs := make([]error, len(calls))
	done := make(chan struct{})
	deadline := time.Now().Add(10 * time.Second)
	for i, call := range calls {
		go func() {
			errs[i] = call()
			done <- struct{}{}
		}()
		// one at a time: the batch applies them in this order
		for len(s.ops) < i+1 {
			if time.Now().After(deadline) {
				close(release)
				t.Fatalf("only %d of %d writes reached the committer", len(s.ops), len(calls))
			}
			time.Sleep(time.Millisecond)
		}
	}
	if last != nil {
		s.ops <- last
	}
	close(release)
	for range calls {
		<-done
	}
	if err := <-hold.done; err != nil {
		t.Fatalf("held transaction: %v", err)
	}
	return errs
}

// TestIDsAfterFailedCommit: a commit that fails after its operations
// changed the ids in memory (an append noted, a discard forgotten, a
// merge written) leaves nothing of them behind: the index is read back
// from the file before the next commit.
func TestIDsAfterFailedCommit(t *testing.T) {
	for _, every := range []int{3, 1000} {
		t.Run(fmt.Sprintf("merge every %d", every), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			s, q := openMerge(t, path, every)
			mustEnqueue(t, q, "a")
			mustEnqueue(t, q, "b")
			// fails: discard of a, a new c, a new d (the failing op stops
			// the transaction before any merge: TestIDsFailedMerge fails
			// one after its merge)
			errs := failingBatch(t, s,
				func() error { return q.Discard("a") },
				func() error { _, err := enqueueID(q, "c"); return err },
				func() error { _, err := enqueueID(q, "d"); return err },
			)
			for i, err := range errs {
				if !errors.Is(err, ErrStore) {
					t.Fatalf("call %d of the failed commit: %v, want ErrStore", i, err)
				}
			}
			check := func(when string) {
				t.Helper()
				// a and b: stored, found, duplicates
				for _, id := range []string{"a", "b"} {
					if ev, err := q.Get(id, true); err != nil || string(ev.Body) != "body of "+id {
						t.Fatalf("%s: Get(%s) = %v, %v; want the stored event", when, id, ev, err)
					}
					if res, err := enqueueID(q, id); err != nil || !res.Duplicate {
						t.Fatalf("%s: Enqueue(%s) again = %+v, %v; want a duplicate", when, id, res, err)
					}
				}
			}
			check("after the failed commit")
			if got := q.Counts().Pending; got != 2 {
				t.Fatalf("after the failed commit: %d pending, want 2", got)
			}
			// c and d were not stored: they are new now
			mustEnqueue(t, q, "c")
			mustEnqueue(t, q, "d")
			if err := q.Discard("a"); err != nil {
				t.Fatalf("Discard(a): %v", err)
			}
			if _, err := q.Get("a", false); !errors.Is(err, ErrUnknown) {
				t.Fatalf("Get(a) after its discard: %v, want ErrUnknown", err)
			}
			for range 2 {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s, q = openMerge(t, path, every)
				for _, id := range []string{"b", "c", "d"} {
					if res, err := enqueueID(q, id); err != nil || !res.Duplicate {
						t.Fatalf("after a reopen: Enqueue(%s) = %+v, %v; want a duplicate", id, res, err)
					}
				}
				if _, err := q.Get("a", false); !errors.Is(err, ErrUnknown) {
					t.Fatalf("after a reopen: Get(a) = %v, want ErrUnknown", err)
				}
				mustEnqueue(t, q, fmt.Sprintf("e%d", q.Counts().Pending))
			}
		})
	}
}

// genIDs is every generation of the queue's ids in the transaction: its
// key (the highest seq it covers) → its ids.
func genIDs(t *testing.T, tx *bolt.Tx, q *Queue) map[uint64][]string {
	t.Helper()
	ids := q.buckets(tx).ids
	out := map[uint64][]string{}
	err := ids.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != 8 {
			return fmt.Errorf("ids: %q is not a generation's bucket", k)
		}
		v = genGet(ids, binary.BigEndian.Uint64(k))
		n, ok := genLen(v)
		if len(k) != 8 || !ok {
			return fmt.Errorf("ids: %q is not a generation", k)
		}
		gen := binary.BigEndian.Uint64(k)
		out[gen] = []string{}
		for i := range n {
			id, seq, ok := genAt(v, n, i)
			if !ok || seq > gen {
				return fmt.Errorf("generation %d: entry %d damaged (seq %d)", gen, i, seq)
			}
			if got, ok := genFind(v, id); !ok || got != seq {
				return fmt.Errorf("generation %d: %q not found by bisection", gen, id)
			}
			out[gen] = append(out[gen], string(id))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func storeGens(t *testing.T, s *Store, q *Queue) map[uint64][]string {
	t.Helper()
	var out map[uint64][]string
	if err := s.view(func(tx *bolt.Tx) error { out = genIDs(t, tx, q); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIDsGenerations: ids go into generations of MergeIDs, sorted; a
// generation whose events are all discarded or purged is dropped, in the
// file and in memory, and one that keeps an event keeps its ids (the
// others stale); every id is found, in memory or in its generation,
// before and after a reopen; and a deleted id is not.
func TestIDsGenerations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	s, q := openMerge(t, path, 4)
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("id-%02d-%x", i, (i*7919)%97)
		ids = append(ids, id)
		mustEnqueue(t, q, id)
		if i == 3 || i == 7 { // sealed: write the generation
			writeGens(t, s, q)
		}
	}
	want := map[uint64][]string{4: slices.Sorted(slices.Values(ids[:4])), 8: slices.Sorted(slices.Values(ids[4:8]))}
	if g := storeGens(t, s, q); !reflect.DeepEqual(g, want) {
		t.Fatalf("generations: %v, want %v", g, want)
	}
	if n := q.ids.size(); n != 2 {
		t.Fatalf("%d ids in memory, want the last 2", n)
	}
	gone := map[string]bool{}
	// empty the first generation: 3 discards, and the 4th delivered and purged
	for _, id := range ids[:3] {
		if err := q.Discard(id); err != nil {
			t.Fatalf("Discard(%s): %v", id, err)
		}
		gone[id] = true
	}
	if err := q.Complete(ids[3], Outcome{Delivered: true, At: idsNow, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Purge(idsNow.Add(2 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	gone[ids[3]] = true
	// and one id of the second generation, one in memory
	for _, id := range []string{ids[5], ids[9]} {
		if err := q.Discard(id); err != nil {
			t.Fatalf("Discard(%s): %v", id, err)
		}
		gone[id] = true
	}
	if g := storeGens(t, s, q); !reflect.DeepEqual(g, map[uint64][]string{8: want[8]}) {
		t.Fatalf("generations after the deletes: %v, want {8: %v}", g, want[8])
	}
	q.ids.mu.RLock()
	nGens := len(q.ids.gens)
	q.ids.mu.RUnlock()
	if nGens != 1 {
		t.Fatalf("%d generations in memory, want 1", nGens)
	}
	check := func(when string) {
		t.Helper()
		for _, id := range ids {
			ev, err := q.Get(id, false)
			if gone[id] {
				if !errors.Is(err, ErrUnknown) {
					t.Fatalf("%s: Get(%s) = %v, %v; want ErrUnknown", when, id, ev, err)
				}
				continue
			}
			if err != nil || ev.ID != id {
				t.Fatalf("%s: Get(%s) = %v, %v", when, id, ev, err)
			}
			if res, err := enqueueID(q, id); err != nil || !res.Duplicate {
				t.Fatalf("%s: Enqueue(%s) again = %+v, %v; want a duplicate", when, id, res, err)
			}
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, q = openMerge(t, path, 4)
	check("reopened")
	// read back: only the ids above ids_through are in memory (the 9th;
	// the 10th was discarded)
	if n := q.ids.size(); n != 1 {
		t.Fatalf("reopened: %d ids in memory, want 1", n)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		if v := q.buckets(tx).meta.Get(keyIDsThrough); binary.BigEndian.Uint64(v) != 8 {
			return fmt.Errorf("ids_through = %x, want 8", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// the gone ids are new again
	for id := range gone {
		mustEnqueue(t, q, id)
	}
}

// TestIDsFlatIndex: a file whose ids are kept in ids itself (id → seq, as
// written before generations, without ids_through) opens with them moved
// into one generation, and every event is found and deduplicated.
func TestIDsFlatIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	s, q := openMerge(t, path, 3)
	var ids []string
	for i := range 7 {
		ids = append(ids, fmt.Sprintf("flat-%d", i))
		mustEnqueue(t, q, ids[i])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// rewrite the index as the earlier code kept it
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktQueues).Bucket([]byte("q"))
		if err := b.DeleteBucket(bktIDs); err != nil {
			return err
		}
		flat, err := b.CreateBucket(bktIDs)
		if err != nil {
			return err
		}
		if err := b.Bucket(bktMeta).Delete(keyIDsThrough); err != nil {
			return err
		}
		return b.Bucket(bktEvents).ForEach(func(k, v []byte) error {
			id, err := recordID(v)
			if err != nil {
				return err
			}
			return flat.Put(slices.Clone(id), slices.Clone(k))
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, q = openMerge(t, path, 3)
	if g := storeGens(t, s, q); !reflect.DeepEqual(g, map[uint64][]string{7: ids}) {
		t.Fatalf("generations after opening the flat index: %v, want {7: %v}", g, ids)
	}
	for _, id := range ids {
		if res, err := enqueueID(q, id); err != nil || !res.Duplicate {
			t.Fatalf("Enqueue(%s) again = %+v, %v; want a duplicate", id, res, err)
		}
	}
	if err := q.Discard(ids[2]); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, ids[2])
}

// TestBloom: no false negatives, and about 1 % false positives at 10 bits
// per id.
func TestBloom(t *testing.T) {
	const n = 20000
	f := newBloom(n)
	for i := range n {
		f.add(maphash.String(idSeed, fmt.Sprintf("in-%d", i)))
	}
	for i := range n {
		if !f.has(maphash.String(idSeed, fmt.Sprintf("in-%d", i))) {
			t.Fatalf("in-%d added, not found", i)
		}
	}
	fp := 0
	for i := range n {
		if f.has(maphash.String(idSeed, fmt.Sprintf("out-%d", i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.03 {
		t.Fatalf("false positive rate %.3f, want about 0.01", rate)
	}
}

// TestIDsDefaultMerge: by default the ids of 32,768 new events wait in
// memory before they are sealed into a generation (the README's "about 3 ×
// 32,768": the newest, the sealed epoch and the generation written last).
func TestIDsDefaultMerge(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "queue.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.opts.MergeIDs != 32768 {
		t.Fatalf("MergeIDs = %d by default, want 32768", s.opts.MergeIDs)
	}
}

// TestIDsLandedFailedCommit: a commit reported failed (its last fsync) may
// be on disk after all. Before the next commit the store reads the file
// back: the event it holds is found, deduplicated, counted and completed.
func TestIDsLandedFailedCommit(t *testing.T) {
	s, q := openMerge(t, filepath.Join(t.TempDir(), "queue.db"), 1000)
	mustEnqueue(t, q, "a")
	// "z" as the failed commit wrote it, without the index or the counters
	s.mu.RLock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := q.buckets(tx)
		ev := &Event{ID: "z", Seq: 2, Size: 6, State: Pending, ReceivedAt: idsNow, DueAt: idsNow}
		k := seqKey(2)
		for _, put := range []func() error{
			func() error { return b.events.Put(k, encodeBinary(ev)) },
			func() error { return b.bodies.Put(k, []byte("body z")) },
			func() error { return b.due.Put(timeKey(idsNow, 2), []byte("z")) },
			func() error { return b.order.Put(k, []byte("z")) },
		} {
			if err := put(); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	s.degraded = errors.New("fdatasync: input/output error")
	if res, err := enqueueID(q, "z"); err != nil || !res.Duplicate {
		t.Fatalf("Enqueue(z) after its commit landed = %+v, %v; want a duplicate", res, err)
	}
	if c := q.Counts(); c.Pending != 2 || c.PendingBytes != int64(len("body of a"))+6 {
		t.Fatalf("Counts() = %+v, want a and z pending", c)
	}
	mustEnqueue(t, q, "y")
	if ev, err := q.Get("y", false); err != nil || ev.Seq != 3 {
		t.Fatalf("Get(y) = %+v, %v; want seq 3, after z's", ev, err)
	}
	if err := q.Complete("z", Outcome{Delivered: true, At: idsNow, TTL: time.Hour}); err != nil {
		t.Fatalf("Complete(z): %v", err)
	}
	if c := q.Counts(); c.Pending != 2 || c.Delivered != 1 {
		t.Fatalf("Counts() = %+v, want a and y pending, z delivered", c)
	}
}

// TestGenBlob: every id of a stored generation is found by bisection with
// its seq, ids in between and around are not, and a damaged generation
// reads as holding nothing, never a panic.
func TestGenBlob(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{0, 1, 2, 7, 1000} {
		set := map[string]uint64{}
		for len(set) < n {
			id := make([]byte, 1+rng.IntN(40))
			for i := range id {
				id[i] = byte(rng.IntN(256))
			}
			set[string(id)] = rng.Uint64()
		}
		ids := slices.Sorted(maps.Keys(set))
		g := newGenBlob(n)
		for _, id := range ids {
			g.add([]byte(id), set[id])
		}
		v := g.bytes()
		for _, id := range ids {
			if seq, ok := genFind(v, []byte(id)); !ok || seq != set[id] {
				t.Fatalf("n=%d: genFind(%q) = %d, %v; want %d", n, id, seq, ok, set[id])
			}
			for _, other := range []string{id + "\x00", id[:len(id)-1], "\xff" + id} {
				if _, in := set[other]; in {
					continue
				}
				if _, ok := genFind(v, []byte(other)); ok {
					t.Fatalf("n=%d: genFind(%q) found an id not stored", n, other)
				}
			}
		}
		for cut := range len(v) {
			for _, id := range ids[:min(len(ids), 3)] {
				genFind(v[:cut], []byte(id)) // must not panic
			}
		}
	}
}

// FuzzGenFind: no stored generation, however damaged, makes a lookup
// panic.
func FuzzGenFind(f *testing.F) {
	g := newGenBlob(3)
	for i, id := range []string{"a", "bb", "ccc"} {
		g.add([]byte(id), uint64(i+1))
	}
	f.Add(g.bytes(), []byte("bb"))
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 0}, []byte("x"))
	f.Fuzz(func(t *testing.T, v, id []byte) {
		genFind(v, id)
		if n, ok := genLen(v); ok {
			for i := range min(n, 64) {
				genAt(v, n, i)
			}
		}
	})
}

// writeGens has the store write the generations its queues have sealed:
// it waits for each epoch to be prepared, then commits an empty write.
func writeGens(t *testing.T, s *Store, qs ...*Queue) {
	t.Helper()
	for _, q := range qs {
		waitPrepared(t, q)
	}
	if err := s.write(0, func(*bolt.Tx) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if !q.ids.canSeal() {
			t.Fatalf("%s: the sealed epoch was not written", q.Name)
		}
	}
}

// waitPrepared waits until q's sealed epoch, if any, is prepared.
func waitPrepared(t *testing.T, q *Queue) {
	t.Helper()
	q.ids.mu.RLock()
	e := q.ids.sealed
	q.ids.mu.RUnlock()
	if e == nil {
		return
	}
	select {
	case <-e.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the sealed epoch was not prepared in 30 s", q.Name)
	}
}

// TestIDsReaderAcrossMerge: a read transaction begun before a generation
// is written finds, after it, the ids that left memory with it (its
// snapshot does not have the generation).
func TestIDsReaderAcrossMerge(t *testing.T) {
	s, q := openMerge(t, filepath.Join(t.TempDir(), "queue.db"), 3)
	for _, id := range []string{"x1", "x2", "x3"} { // the third seals them
		mustEnqueue(t, q, id)
	}
	if q.ids.canSeal() {
		t.Fatal("3 ids with MergeIDs 3 sealed no epoch")
	}
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	s.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	writeGens(t, s, q)
	if n := q.ids.size(); n != 0 {
		t.Fatalf("%d ids in memory after the generation was written, want 0", n)
	}
	if g := genIDs(t, tx, q); len(g) != 0 {
		t.Fatalf("the reader's snapshot already has generations %v: the test does not test the merge", g)
	}
	b := q.buckets(tx)
	for _, id := range []string{"x1", "x2", "x3"} {
		if _, rec := b.lookup([]byte(id)); rec == nil {
			t.Fatalf("a reader from before the generation does not find %s", id)
		}
	}
	_ = tx.Rollback()
	if g := storeGens(t, s, q); !reflect.DeepEqual(g, map[uint64][]string{3: {"x1", "x2", "x3"}}) {
		t.Fatalf("generations: %v, want {3: x1 x2 x3}", g)
	}
}

// TestIDsFailedMerge: a commit that fails after one queue's generation
// was written in it (the next queue's cannot be: a bucket is in its
// place) keeps nothing of either, in memory or in the file; the ids stay
// found, and once the way is clear the next commits write the
// generations again.
func TestIDsFailedMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	s, q1 := openMerge(t, path, 3)
	q2, err := s.Queue("q2")
	if err != nil {
		t.Fatal(err)
	}
	in := func(q *Queue) func(tx *bolt.Tx) *bolt.Bucket {
		return func(tx *bolt.Tx) *bolt.Bucket { return q.buckets(tx).ids }
	}
	if err := s.write(0, func(tx *bolt.Tx) error {
		_, err := in(q2)(tx).CreateBucket(seqKey(3)) // where q2's generation goes
		return err
	}, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		mustEnqueue(t, q1, id)
		mustEnqueue(t, q2, id)
	}
	// both thirds in one commit: both queues seal, q1 first
	for _, err := range oneBatch(t, s, nil,
		func() error { _, err := enqueueID(q1, "c"); return err },
		func() error { _, err := enqueueID(q2, "c"); return err },
	) {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitPrepared(t, q1)
	waitPrepared(t, q2)
	if q1.ids.canSeal() || q2.ids.canSeal() || !reflect.DeepEqual(s.sealed, []*Queue{q1, q2}) {
		t.Fatalf("queues with an epoch to write: %v, want q1 then q2", s.sealed)
	}
	// the next commit writes q1's generation, then fails on q2's
	if _, err := enqueueID(q1, "d"); !errors.Is(err, ErrStore) {
		t.Fatalf("Enqueue(d) in the commit that cannot write q2's generation: %v, want ErrStore", err)
	}
	for _, q := range []*Queue{q1, q2} {
		q.ids.mu.RLock()
		gens, through := len(q.ids.gens), q.ids.through
		q.ids.mu.RUnlock()
		if gens != 0 || through != 0 {
			t.Fatalf("%s after the failed commit: %d generations, through %d; want none, 0", q.Name, gens, through)
		}
		for _, id := range []string{"a", "b", "c"} {
			if _, err := q.Get(id, false); err != nil {
				t.Fatalf("%s: Get(%s) after the failed commit: %v", q.Name, id, err)
			}
		}
	}
	if g := storeGens(t, s, q1); len(g) != 0 {
		t.Fatalf("q1's generations in the file after the failed commit: %v", g)
	}
	// clear the way (the next commit reopens the file and reads it back)
	s.mu.RLock()
	err = s.db.Update(func(tx *bolt.Tx) error { return in(q2)(tx).DeleteBucket(seqKey(3)) })
	s.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q1, "d")
	mustEnqueue(t, q2, "d")
	writeGens(t, s, q1, q2)
	for _, q := range []*Queue{q1, q2} {
		g := storeGens(t, s, q)
		var all []string
		for _, ids := range g {
			all = append(all, ids...)
		}
		slices.Sort(all)
		if len(g) != 1 || !reflect.DeepEqual(all, []string{"a", "b", "c", "d"}) {
			t.Fatalf("%s: generations %v, want one of a b c d", q.Name, g)
		}
		for _, id := range []string{"a", "b", "c", "d"} {
			if res, err := enqueueID(q, id); err != nil || !res.Duplicate {
				t.Fatalf("%s: Enqueue(%s) again = %+v, %v; want a duplicate", q.Name, id, res, err)
			}
		}
	}
}

// sealThree enqueues ids in a new store with a generation every 3 (the
// third seals them) and returns it, without writing the generation.
func sealThree(t *testing.T, ids ...string) (*Store, *Queue) {
	t.Helper()
	s, q := openMerge(t, filepath.Join(t.TempDir(), "queue.db"), 3)
	for _, id := range ids {
		mustEnqueue(t, q, id)
	}
	return s, q
}

// TestIDsGenerationDropped: a generation is dropped when its last event
// goes, by Discard (which deletes the record before the id) as by Purge,
// also while an older generation keeps events; and one whose events have
// all gone before it is written is not written at all.
func TestIDsGenerationDropped(t *testing.T) {
	t.Run("discarded after it is written", func(t *testing.T) {
		s, q := sealThree(t, "a", "b", "c")
		writeGens(t, s, q)
		for _, id := range []string{"a", "b", "c"} {
			if err := q.Discard(id); err != nil {
				t.Fatal(err)
			}
		}
		if g := storeGens(t, s, q); len(g) != 0 {
			t.Fatalf("generations after every event was discarded: %v, want none", g)
		}
	})
	t.Run("a newer one while an older one keeps events", func(t *testing.T) {
		s, q := sealThree(t, "a", "b", "c")
		writeGens(t, s, q)
		for _, id := range []string{"d", "e", "f"} {
			mustEnqueue(t, q, id)
		}
		writeGens(t, s, q)
		for _, id := range []string{"d", "e", "f", "a"} {
			if err := q.Discard(id); err != nil {
				t.Fatal(err)
			}
		}
		if g := storeGens(t, s, q); !reflect.DeepEqual(g, map[uint64][]string{3: {"a", "b", "c"}}) {
			t.Fatalf("generations: %v, want only {3: a b c} (6 has no event left)", g)
		}
		q.ids.mu.RLock()
		n := len(q.ids.gens)
		q.ids.mu.RUnlock()
		if n != 1 {
			t.Fatalf("%d generations in memory, want 1", n)
		}
	})
	t.Run("gone in the commit that seals it", func(t *testing.T) {
		s, q := sealThree(t, "a", "b")
		// one commit: c (which seals a, b, c) and the discards of all three
		for _, err := range oneBatch(t, s, nil,
			func() error { _, err := enqueueID(q, "c"); return err },
			func() error { return q.Discard("a") },
			func() error { return q.Discard("b") },
			func() error { return q.Discard("c") },
		) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if q.ids.canSeal() {
			t.Fatal("the commit sealed no epoch: the test does not test an epoch with no event left")
		}
		writeGens(t, s, q)
		if g := storeGens(t, s, q); len(g) != 0 {
			t.Fatalf("generations: %v, want none", g)
		}
		q.ids.mu.RLock()
		n, through := len(q.ids.gens), q.ids.through
		q.ids.mu.RUnlock()
		if n != 0 || through != 3 {
			t.Fatalf("in memory: %d generations, through %d; want none, 3", n, through)
		}
	})
}
