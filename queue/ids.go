package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The id index of a bbolt queue: id → seq, for Enqueue's duplicate check
// and for every operation that names an event by its id.
//
// The ids are random. Written into one B+tree as they arrive, each dirtied
// a leaf page of its own, so a group commit rewrote about one extra 4 KiB
// page per event, and the tree's share of a commit grew with the file
// (BENCHMARKS.md, §5c). Instead:
//
//   - the ids of the events appended since the last generation are kept
//     in memory (cur);
//   - once there are Options.MergeIDs of them, the commit that reaches it
//     seals them (an epoch, up to the highest seq given); a goroutine
//     sorts them into a new generation off the commit's path, and the
//     next commit after that writes it: one value (genBlob: the ids and
//     their seqs, searched by bisection) in a bucket of ids named by the
//     highest seq it covers, written once and never changed. (A bucket written
//     key by key in the commit stalled it 30–60 ms for 32,768 ids, and
//     sorting them in the commit 15–30 ms; writing the prepared value
//     costs the commit about its 1.5 MB.) A generation covers the seqs
//     above the previous one's key. A purged or discarded event's id
//     stays in its generation, stale: a lookup checks the record it
//     points to, and an id is stored once at a time, so the newest entry
//     decides. A generation whose seqs have all gone is dropped. Events
//     expire roughly in the order they arrived, so generations die whole
//     instead of being compacted;
//   - each generation has a Bloom filter in memory (10 bits per id), so a
//     lookup reads the generations that may hold the id: about one per
//     hundred misses.
//
// The file stays the source of truth: every record carries its id, and
// meta's "ids_through" says up to which seq the generations have them all,
// so the ids of later records are read back from the records when the
// queue is opened (and after a failed commit, when the file is reopened).
type idIndex struct {
	mu sync.RWMutex
	// cur are the ids of the stored events with seq above the sealed
	// epoch's last (above through when none is sealed).
	cur map[string]uint64
	// sealed are the ids of seqs in (through, sealed.last], whose
	// generation a goroutine is preparing (nil: none).
	sealed *idEpoch
	// merged is the epoch written last: also in the file, kept until the
	// next one for readers whose transaction began before it was written.
	merged map[string]uint64
	// through: the generations hold the id of every stored event with seq
	// <= through.
	through uint64
	// gens are the generations, oldest first (replaced, never changed in
	// place: readers keep the slice they read).
	gens []*idGen

	// The commit under way, the committer's own: the ids its operations
	// added and deleted, which its later operations see and readers do
	// not; they join cur once it is on disk, and are dropped if it fails.
	// Likewise the generation it writes and those it drops.
	added   map[string]uint64
	deleted map[string]bool
	touched bool
	writing *idEpoch
	dropped []uint64
}

// idEpoch is a sealed set of ids and the generation being made of them:
// sorted into a genBlob and a Bloom filter by a goroutine of its own, off
// the commit's path (sorting 32,768 ids and building their generation in
// the commit stalled it for 15–30 ms), then written by the next commit
// once ready.
type idEpoch struct {
	m     map[string]uint64
	last  uint64
	ready chan struct{} // closed when blob and bloom are set
	blob  []byte
	bloom bloom
	// empty: none of its events was left when it was written, so no
	// generation was (the committer's own)
	empty bool
}

// idGen is one generation: its key (the highest seq it covers) and the
// Bloom filter of its ids.
type idGen struct {
	last  uint64
	bloom bloom
}

var keyIDsThrough = []byte("ids_through")

// idSeed hashes ids for the Bloom filters, which live in memory only.
var idSeed = maphash.MakeSeed()

// get is the seq of id: in memory, as the commit under way sees it
// (inCommit) or as the last commit left it, else in the generations of ids
// (the transaction's view of the bucket).
func (x *idIndex) get(id []byte, inCommit bool, ids *bolt.Bucket) (uint64, bool) {
	if inCommit {
		if seq, ok := x.added[string(id)]; ok {
			return seq, true
		}
		if x.deleted[string(id)] {
			return 0, false
		}
	}
	x.mu.RLock()
	seq, ok := x.cur[string(id)]
	if !ok && x.sealed != nil {
		seq, ok = x.sealed.m[string(id)]
	}
	if !ok {
		seq, ok = x.merged[string(id)]
	}
	gens := x.gens
	x.mu.RUnlock()
	if ok {
		return seq, true
	}
	h := maphash.Bytes(idSeed, id)
	for i := len(gens) - 1; i >= 0; i-- {
		if !gens[i].bloom.has(h) {
			continue
		}
		if seq, ok := genFind(genGet(ids, gens[i].last), id); ok {
			return seq, true // the newest entry decides (the caller checks the record)
		}
	}
	return 0, false
}

// add notes the id of an event appended in the commit under way.
func (x *idIndex) add(id string, seq uint64) {
	x.added[id] = seq
}

// del forgets id, of the event seq that the commit under way has just
// deleted from events: in memory, and the generation that covers seq once
// none of its seqs is left in events.
func (x *idIndex) del(ids, events *bolt.Bucket, id []byte, seq uint64) error {
	delete(x.added, string(id))
	x.deleted[string(id)] = true
	c := ids.Cursor()
	k, _ := c.Seek(seqKey(seq))
	if k == nil {
		return nil // above every generation: in memory only
	}
	last := binary.BigEndian.Uint64(k)
	var above uint64 // it covers the seqs above the previous generation's key
	if pk, _ := c.Prev(); pk != nil {
		above = binary.BigEndian.Uint64(pk)
	}
	if ek, _ := events.Cursor().Seek(seqKey(above + 1)); ek != nil && binary.BigEndian.Uint64(ek) <= last {
		return nil
	}
	x.dropped = append(x.dropped, last)
	return ids.DeleteBucket(seqKey(last))
}

// size is the number of ids in memory that no epoch holds yet.
func (x *idIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.cur) + len(x.added)
}

// sealDue: at least n ids wait for an epoch and none is being prepared
// or written (one lock for Enqueue's check).
func (x *idIndex) sealDue(n int) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.sealed == nil && len(x.cur)+len(x.added) >= n
}

// canSeal: no epoch is being prepared or written.
func (x *idIndex) canSeal() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.sealed == nil
}

// load reads the queue's index from the file: ids_through, the
// generations' filters, and the ids of the records after ids_through. In
// a writable transaction it also brings a file written before generations
// existed up to date: its ids (id → seq, in ids itself) become one
// generation. An epoch being prepared is forgotten (its ids are read back
// from their records).
func (x *idIndex) load(b *bolt.Bucket) error {
	meta, events, ids := b.Bucket(bktMeta), b.Bucket(bktEvents), b.Bucket(bktIDs)
	var through uint64
	if v := meta.Get(keyIDsThrough); len(v) == 8 {
		through = binary.BigEndian.Uint64(v)
	} else if b.Tx().Writable() {
		if k, _ := events.Cursor().Last(); len(k) == 8 {
			through = binary.BigEndian.Uint64(k)
		}
		if err := meta.Put(keyIDsThrough, seqKey(through)); err != nil {
			return err
		}
		if err := flatToGeneration(b, through); err != nil {
			return err
		}
		ids = b.Bucket(bktIDs)
	} else {
		return fmt.Errorf("%w: the id index was never set up", ErrStore)
	}
	var gens []*idGen
	err := ids.ForEach(func(k, v []byte) error {
		if len(k) == 8 && v == nil {
			v = genGet(ids, binary.BigEndian.Uint64(k))
		}
		n, ok := genLen(v)
		if len(k) != 8 || !ok {
			return fmt.Errorf("%w: a damaged generation of ids", ErrStore)
		}
		g := &idGen{last: binary.BigEndian.Uint64(k), bloom: newBloom(n)}
		for i := range n {
			id, _, ok := genAt(v, n, i)
			if !ok {
				return fmt.Errorf("%w: a damaged generation of ids", ErrStore)
			}
			g.bloom.add(maphash.Bytes(idSeed, id))
		}
		gens = append(gens, g)
		return nil
	})
	if err != nil {
		return err
	}
	cur := map[string]uint64{}
	c := events.Cursor()
	for k, v := c.Seek(seqKey(through + 1)); k != nil; k, v = c.Next() {
		id, err := recordID(v)
		if err != nil {
			return err
		}
		cur[string(id)] = binary.BigEndian.Uint64(k)
	}
	x.mu.Lock()
	x.cur, x.sealed, x.merged, x.through, x.gens = cur, nil, nil, through, gens
	x.mu.Unlock()
	x.added, x.deleted, x.touched, x.writing, x.dropped = map[string]uint64{}, map[string]bool{}, false, nil, nil
	return nil
}

// flatToGeneration moves the ids a file of the first index kept in ids
// itself (b's ids bucket) into one generation covering every seq up to
// through: the old tree is dropped whole and its ids written again in
// order.
func flatToGeneration(b *bolt.Bucket, through uint64) error {
	type kv struct{ k, v []byte }
	var flat []kv
	err := b.Bucket(bktIDs).ForEach(func(k, v []byte) error {
		if v != nil {
			flat = append(flat, kv{slices.Clone(k), slices.Clone(v)})
		}
		return nil
	})
	if err != nil || len(flat) == 0 {
		return err
	}
	if err := b.DeleteBucket(bktIDs); err != nil {
		return err
	}
	ids, err := b.CreateBucket(bktIDs)
	if err != nil {
		return err
	}
	blob := newGenBlob(len(flat))
	for _, e := range flat { // ForEach gave them in order
		if len(e.v) != 8 {
			return fmt.Errorf("%w: a damaged id entry", ErrStore)
		}
		blob.add(e.k, binary.BigEndian.Uint64(e.v))
	}
	return genPut(ids, through, blob.bytes())
}

// prepare sorts the epoch's ids into its generation, off the commit's
// path. Deletes that reach e.m meanwhile leave stale entries in it, which
// lookups skip.
func (x *idIndex) prepare(e *idEpoch) {
	type entry struct {
		id  string
		seq uint64
	}
	x.mu.RLock()
	all := make([]entry, 0, len(e.m))
	for id, seq := range e.m {
		all = append(all, entry{id, seq})
	}
	x.mu.RUnlock()
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.id, b.id) })
	blob := newGenBlob(len(all))
	f := newBloom(len(all))
	for _, en := range all {
		blob.add([]byte(en.id), en.seq)
		f.add(maphash.String(idSeed, en.id))
	}
	e.blob, e.bloom = blob.bytes(), f
	close(e.ready)
}

// writeReady writes the sealed epoch's generation into the commit under
// way when it is ready, moving ids_through to it.
func (x *idIndex) writeReady(b *bolt.Bucket) error {
	x.mu.RLock()
	e := x.sealed
	x.mu.RUnlock()
	if e == nil {
		return nil
	}
	select {
	case <-e.ready:
	default:
		return nil
	}
	// The epoch's events may all be gone already (discarded or purged
	// since it was sealed): then there is no generation to write, and
	// none that a later delete would drop.
	x.mu.RLock()
	through := x.through
	x.mu.RUnlock()
	e.empty = true
	if k, _ := b.Bucket(bktEvents).Cursor().Seek(seqKey(through + 1)); k != nil && binary.BigEndian.Uint64(k) <= e.last {
		e.empty = false
		if err := genPut(b.Bucket(bktIDs), e.last, e.blob); err != nil {
			return err
		}
	}
	if err := b.Bucket(bktMeta).Put(keyIDsThrough, seqKey(e.last)); err != nil {
		return err
	}
	x.writing = e
	return nil
}

// end ends the commit under way: ok, it is on disk and readers see its ids
// from now on; else nothing of it is kept. sealAt, when not 0, seals the
// ids in memory as the epoch up to that seq (the highest given so far)
// and starts preparing its generation.
func (x *idIndex) end(ok bool, sealAt uint64) {
	if ok {
		x.mu.Lock()
		for id := range x.deleted {
			delete(x.cur, id)
			if x.sealed != nil {
				delete(x.sealed.m, id)
			}
			delete(x.merged, id)
		}
		for id, seq := range x.added {
			x.cur[id] = seq
		}
		if len(x.dropped) > 0 || x.writing != nil {
			gens := make([]*idGen, 0, len(x.gens)+1)
			for _, g := range x.gens {
				if !slices.Contains(x.dropped, g.last) {
					gens = append(gens, g)
				}
			}
			if w := x.writing; w != nil && !w.empty && !slices.Contains(x.dropped, w.last) {
				gens = append(gens, &idGen{last: w.last, bloom: w.bloom})
			}
			x.gens = gens
		}
		if w := x.writing; w != nil {
			x.merged, x.sealed, x.through = w.m, nil, w.last
		}
		var e *idEpoch
		if sealAt != 0 && x.sealed == nil {
			e = &idEpoch{m: x.cur, last: sealAt, ready: make(chan struct{})}
			x.sealed, x.cur = e, map[string]uint64{}
		}
		x.mu.Unlock()
		if e != nil {
			go x.prepare(e)
		}
	}
	clear(x.added)
	clear(x.deleted)
	x.touched, x.writing, x.dropped = false, nil, x.dropped[:0]
}

// recordID is the id a record carries (encodeBinary, encodeEvent), without
// decoding it.
func recordID(v []byte) ([]byte, error) {
	if len(v) > 0 && (v[0] == recordV2 || v[0] == recordV3) {
		n, k := binary.Uvarint(v[1:])
		if k > 0 && uint64(len(v)-1-k) >= n {
			return v[1+k : 1+k+int(n)], nil
		}
	}
	return nil, errDamaged
}

// bloom is a Bloom filter of 10 bits and 7 probes per id (about 1 %
// false positives).
type bloom []uint64

func newBloom(n int) bloom { return make(bloom, (max(n, 1)*10+63)/64) }

func (f bloom) add(h uint64) {
	m := uint64(len(f)) * 64
	h2 := h>>32 | h<<32
	for i := range uint64(7) {
		bit := (h + i*h2) % m
		f[bit/64] |= 1 << (bit % 64)
	}
}

func (f bloom) has(h uint64) bool {
	m := uint64(len(f)) * 64
	h2 := h>>32 | h<<32
	for i := range uint64(7) {
		bit := (h + i*h2) % m
		if f[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// A generation is stored as the one value (keyGen) of a bucket of its own,
// named by its key in ids: large values side by side in one leaf would be
// rewritten together whenever one is added (bbolt keeps at least two, up
// to five, per leaf), ~6 MB for each generation of 1.5 MB.
var keyGen = []byte("g")

func genPut(ids *bolt.Bucket, last uint64, blob []byte) error {
	b, err := ids.CreateBucket(seqKey(last))
	if err != nil {
		return err
	}
	return b.Put(keyGen, blob)
}

// genGet is the stored generation last (nil when there is none).
func genGet(ids *bolt.Bucket, last uint64) []byte {
	b := ids.Bucket(seqKey(last))
	if b == nil {
		return nil
	}
	return b.Get(keyGen)
}

// genBlob is a generation as stored: n (4 bytes), the n+1 offsets of the
// ids in the text that follows (4 bytes each), the n seqs (8 bytes each),
// then the ids, sorted, end to end. Big endian.
type genBlob struct {
	offs, seqs, text []byte
}

func newGenBlob(n int) *genBlob {
	g := &genBlob{offs: make([]byte, 0, 4*(n+1)), seqs: make([]byte, 0, 8*n)}
	g.offs = binary.BigEndian.AppendUint32(g.offs, 0)
	return g
}

// add appends id (the next in order) and its seq.
func (g *genBlob) add(id []byte, seq uint64) {
	g.text = append(g.text, id...)
	g.offs = binary.BigEndian.AppendUint32(g.offs, uint32(len(g.text)))
	g.seqs = binary.BigEndian.AppendUint64(g.seqs, seq)
}

func (g *genBlob) bytes() []byte {
	out := make([]byte, 0, 4+len(g.offs)+len(g.seqs)+len(g.text))
	out = binary.BigEndian.AppendUint32(out, uint32(len(g.seqs)/8))
	out = append(out, g.offs...)
	out = append(out, g.seqs...)
	return append(out, g.text...)
}

// genLen is the number of ids in a stored generation, and whether its
// frame is whole.
func genLen(v []byte) (int, bool) {
	if len(v) < 8 {
		return 0, false
	}
	n := uint64(binary.BigEndian.Uint32(v))
	if uint64(len(v)) < 4+4*(n+1)+8*n {
		return 0, false
	}
	return int(n), true
}

// genAt is the i-th id of a stored generation of n ids, and its seq (ok
// false for a damaged one).
func genAt(v []byte, n, i int) (id []byte, seq uint64, ok bool) {
	offs, seqs := 4, 4+4*(n+1)
	text := v[seqs+8*n:]
	a := binary.BigEndian.Uint32(v[offs+4*i:])
	b := binary.BigEndian.Uint32(v[offs+4*i+4:])
	if a > b || uint64(b) > uint64(len(text)) {
		return nil, 0, false
	}
	return text[a:b], binary.BigEndian.Uint64(v[seqs+8*i:]), true
}

// genFind looks id up in a stored generation by bisection.
func genFind(v, id []byte) (uint64, bool) {
	n, ok := genLen(v)
	if !ok {
		return 0, false
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		cur, seq, ok := genAt(v, n, m)
		if !ok {
			return 0, false
		}
		switch c := bytes.Compare(cur, id); {
		case c == 0:
			return seq, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}
