package queue

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// randEvent is an event with every field set at random, text that is not
// always UTF-8, and times in zones other than UTC.
func randEvent(rng *rand.Rand) *Event {
	str := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if rng.IntN(3) == 0 {
			return ""
		}
		return string(b)
	}
	tm := func() time.Time {
		if rng.IntN(4) == 0 {
			return time.Time{}
		}
		loc := time.FixedZone("x", 3600*(rng.IntN(25)-12))
		return time.Unix(rng.Int64N(1<<33)-1<<31, rng.Int64N(1e9)).In(loc)
	}
	ev := &Event{
		ID: str() + "id", Seq: rng.Uint64(), GeneratedID: rng.IntN(2) == 0,
		Provider: str(), EventType: str(), Method: str(), URI: str(), Host: str(), ClientIP: str(), RemoteAddr: str(),
		ReceivedAt: tm(), Size: rng.Int64() - 1<<62, Unverified: rng.IntN(2) == 0, Key: rng.IntN(9) - 2,
		State: State(str()), Attempts: rng.IntN(1 << 20), DueAt: tm(), LastAttemptAt: tm(), LastStatus: rng.IntN(600) - 1,
		LastError: str(), DoneAt: tm(), ExpiresAt: tm(), Replays: rng.IntN(5),
	}
	switch rng.IntN(3) {
	case 0: // nil
	case 1:
		ev.Header = http.Header{}
	default:
		ev.Header = http.Header{}
		for range rng.IntN(6) {
			var vs []string
			if rng.IntN(5) > 0 {
				vs = []string{}
				for range rng.IntN(3) + 1 {
					vs = append(vs, str())
				}
			}
			ev.Header[str()] = vs
		}
	}
	return ev
}

// sameEvent compares what a record keeps: every field but Body, Bin and
// LeasedUntil, times as instants.
func sameEvent(a, b *Event) bool {
	norm := func(e Event) Event {
		for _, t := range []*time.Time{&e.ReceivedAt, &e.DueAt, &e.LastAttemptAt, &e.DoneAt, &e.ExpiresAt} {
			if !t.IsZero() {
				*t = t.UTC()
			}
		}
		e.Body, e.Bin, e.LeasedUntil = nil, nil, time.Time{}
		for k, vs := range e.Header {
			if vs == nil {
				e.Header[k] = []string{} // nil and empty values read back alike
			}
		}
		return e
	}
	x, y := norm(*a), norm(*b)
	if x.Header != nil {
		x.Header = x.Header.Clone()
	}
	return reflect.DeepEqual(x, y)
}

// TestBinaryRecord: every field of random events, text that JSON would
// change included, reads back as written; the id is where recordID finds
// it; and every shorter or longer record is refused, never a panic.
func TestBinaryRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for i := range 2000 {
		ev := randEvent(rng)
		rec := encodeBinary(ev)
		var got Event
		if err := decodeEvent(rec, &got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !sameEvent(ev, &got) {
			t.Fatalf("event %d:\nwrote %#v\nread  %#v", i, ev, &got)
		}
		if id, err := recordID(rec); err != nil || string(id) != ev.ID {
			t.Fatalf("event %d: recordID = %q, %v; want %q", i, id, err, ev.ID)
		}
		for n := range len(rec) {
			if err := decodeEvent(rec[:n], &got); err == nil && n > 0 {
				t.Fatalf("event %d: a record cut to %d of %d bytes was read", i, n, len(rec))
			}
		}
		if err := decodeEvent(append(bytes.Clone(rec), 0), &got); err == nil {
			t.Fatalf("event %d: a record with a byte after its end was read", i)
		}
	}
}

// TestRecordsOfJSON: a file whose records are JSON (recordV2, as written
// before the binary records) is read, and a record is written back in
// binary when its event changes.
func TestRecordsOfJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	s, q := openTest(t, path)
	for _, id := range []string{"j1", "j2"} {
		mustEnqueue(t, q, id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(fn func(k, v []byte) ([]byte, error)) {
		t.Helper()
		err := db.Update(func(tx *bolt.Tx) error {
			events := tx.Bucket(bktQueues).Bucket([]byte("q")).Bucket(bktEvents)
			type kv struct{ k, v []byte }
			var all []kv
			if err := events.ForEach(func(k, v []byte) error {
				all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
				return nil
			}); err != nil {
				return err
			}
			for _, e := range all {
				nv, err := fn(e.k, e.v)
				if err != nil {
					return err
				}
				if err := events.Put(e.k, nv); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rewrite(func(_, v []byte) ([]byte, error) {
		var ev Event
		if err := decodeEvent(v, &ev); err != nil {
			return nil, err
		}
		return encodeEvent(&ev)
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, q = openTest(t, path)
	for _, id := range []string{"j1", "j2"} {
		ev, err := q.Get(id, true)
		if err != nil || ev.State != Pending || string(ev.Body) != "body of "+id {
			t.Fatalf("Get(%s) = %+v, %v", id, ev, err)
		}
	}
	if err := q.Complete("j1", Outcome{Delivered: true, At: idsNow, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if c := q.Counts(); c.Pending != 1 || c.Delivered != 1 {
		t.Fatalf("Counts() = %+v, want 1 pending, 1 delivered", c)
	}
	var kinds []byte
	if err := s.view(func(tx *bolt.Tx) error {
		return q.buckets(tx).events.ForEach(func(_, v []byte) error { kinds = append(kinds, v[0]); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kinds, []byte{recordV3, recordV2}) {
		t.Fatalf("record kinds %v, want j1 rewritten in binary (3) and j2 still JSON (2)", kinds)
	}
}

// FuzzBinaryRecord: no input makes decodeEvent panic, and whatever it
// reads as a binary record is written back the same.
func FuzzBinaryRecord(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 8 {
		f.Add(encodeBinary(randEvent(rng)))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		var ev Event
		if err := decodeEvent(rec, &ev); err != nil || len(rec) == 0 || rec[0] != recordV3 {
			return
		}
		var again Event
		if err := decodeEvent(encodeBinary(&ev), &again); err != nil || !sameEvent(&ev, &again) {
			t.Fatalf("read %#v, wrote it, read %#v, %v", &ev, &again, err)
		}
	})
}
