package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The contract suite: the model test (store_test.go) and the tests below
// run against every store behind Backend, each through a storeKit.

// storeKit makes the stores of one kind for the contract suite.
type storeKit struct {
	name string
	// res is the resolution of the store's due and expiry times.
	res   time.Duration
	setup func(t *testing.T) modelStore
}

// modelStore is one store of a test: opened again after each close, and
// crashed as a kill -9 would leave it.
type modelStore interface {
	open() (Engine, error)
	// crash leaves the store as a kill -9 of whatever holds it would, and
	// closes e (what is left of the process).
	crash(e Engine) error
	String() string
}

// forEachStore runs f on a new store of every kind.
func forEachStore(t *testing.T, f func(t *testing.T, st modelStore)) {
	for _, k := range []storeKit{bboltKit, redisKit} {
		t.Run(k.name, func(t *testing.T) { f(t, k.setup(t)) })
	}
}

// openStore opens st (closed when the test ends) and its queue "q".
func openStore(t *testing.T, st modelStore) (Engine, Backend) {
	t.Helper()
	e, err := st.open()
	if err != nil {
		t.Fatalf("open %s: %v", st, err)
	}
	t.Cleanup(func() { _ = e.Close() })
	q, err := e.OpenQueue("q")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	return e, q
}

var bboltKit = storeKit{name: "bbolt", res: 1, setup: func(t *testing.T) modelStore {
	dir := t.TempDir()
	return &bboltStore{dir: dir, path: filepath.Join(dir, "queue.db")}
}}

type bboltStore struct {
	dir, path string
	files     int
}

func (b *bboltStore) String() string { return "bbolt " + filepath.Base(b.path) }

// open opens the store with a merge of the id index every 5 new events, so
// that the tests find ids in generations and in memory, across crashes and
// reopens (failed commits: ids_test.go).
func (b *bboltStore) open() (Engine, error) {
	return Open(b.path, Options{LockTimeout: 2 * time.Second, MergeIDs: 5})
}

// crash copies the file byte for byte while the store is open and idle:
// every commit is already fsync'd, so that copy is what a kill -9 leaves
// behind; the copy is what is opened next.
func (b *bboltStore) crash(e Engine) error {
	data, err := os.ReadFile(b.path)
	if err != nil {
		return fmt.Errorf("copying the open file: %v", err)
	}
	b.files++
	cp := filepath.Join(b.dir, fmt.Sprintf("crash-%d.db", b.files))
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		return fmt.Errorf("writing the copy: %v", err)
	}
	if err := e.Close(); err != nil {
		return err
	}
	_ = os.Remove(b.path)
	b.path = cp
	return nil
}
