package queue

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
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
//   - the ids of the events appended since the last merge are kept in
//     memory (recent);
//   - once there are Options.MergeIDs of them, the commit under way writes
//     them, sorted, into a new generation: a bucket of its own inside ids,
//     keyed by the highest seq it covers, written once, page after page,
//     and never added to again. A generation covers the seqs above the
//     previous one's key; an id leaves it when its event is purged or
//     discarded, and the emptied generation is dropped. Events expire
//     roughly in the order they arrived, so generations die whole instead
//     of being compacted;
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
	// recent are the ids of the stored events with seq > through, which
	// no generation has.
	recent map[string]uint64
	// merged is the last generation merged: also in the file, kept until
	// the next merge for readers whose transaction began before it.
	merged map[string]uint64
	// through: the generations hold the id of every stored event with seq
	// <= through.
	through uint64
	// gens are the generations, oldest first (replaced, never changed in
	// place: readers keep the slice they read).
	gens []*idGen

	// The commit under way, the committer's own: the ids its operations
	// added and deleted, which its later operations see and readers do
	// not; they join recent once it is on disk, and are dropped if it
	// fails. Likewise the generation it writes and those it empties.
	added   map[string]uint64
	deleted map[string]bool
	touched bool
	mergeTo uint64
	newGen  *idGen
	dropped []uint64
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
	seq, ok := x.recent[string(id)]
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
		if gb := ids.Bucket(seqKey(gens[i].last)); gb != nil {
			if v := gb.Get(id); len(v) == 8 {
				return binary.BigEndian.Uint64(v), true
			}
		}
	}
	return 0, false
}

// add notes the id of an event appended in the commit under way.
func (x *idIndex) add(id string, seq uint64) {
	x.added[id] = seq
}

// del forgets id, of the event seq, in the commit under way: in memory,
// or in the generation that covers seq (dropped once empty).
func (x *idIndex) del(ids *bolt.Bucket, id []byte, seq uint64) error {
	delete(x.added, string(id))
	x.deleted[string(id)] = true
	c := ids.Cursor()
	k, v := c.Seek(seqKey(seq))
	if k == nil || v != nil {
		return nil // above every generation: in memory only
	}
	gb := ids.Bucket(k)
	if err := gb.Delete(id); err != nil {
		return err
	}
	if first, _ := gb.Cursor().First(); first != nil {
		return nil
	}
	x.dropped = append(x.dropped, binary.BigEndian.Uint64(k))
	return ids.DeleteBucket(k)
}

// size is the number of ids a merge would write.
func (x *idIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.recent) + len(x.added)
}

// load reads the queue's index from the file: ids_through, the
// generations' filters, and the ids of the records after ids_through. In
// a writable transaction it also brings a file written before generations
// existed up to date: its ids (id → seq, in ids itself) become one
// generation.
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
	err := ids.ForEachBucket(func(k []byte) error {
		gb := ids.Bucket(k)
		g := &idGen{last: binary.BigEndian.Uint64(k), bloom: newBloom(gb.Stats().KeyN)}
		err := gb.ForEach(func(id, _ []byte) error {
			g.bloom.add(maphash.Bytes(idSeed, id))
			return nil
		})
		gens = append(gens, g)
		return err
	})
	if err != nil {
		return err
	}
	recent := map[string]uint64{}
	c := events.Cursor()
	for k, v := c.Seek(seqKey(through + 1)); k != nil; k, v = c.Next() {
		id, err := recordID(v)
		if err != nil {
			return err
		}
		recent[string(id)] = binary.BigEndian.Uint64(k)
	}
	x.mu.Lock()
	x.recent, x.merged, x.through, x.gens = recent, nil, through, gens
	x.mu.Unlock()
	x.added, x.deleted, x.touched, x.mergeTo, x.newGen, x.dropped = map[string]uint64{}, map[string]bool{}, false, 0, nil, nil
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
	gb, err := ids.CreateBucket(seqKey(through))
	if err != nil {
		return err
	}
	gb.FillPercent = 1
	for _, e := range flat { // ForEach gave them in order
		if err := gb.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// merge writes the ids in memory, sorted, into a new generation covering
// the seqs up to last, the highest given so far, and moves ids_through to
// it. It runs at the end of a group commit, after its operations.
func (x *idIndex) merge(b *bolt.Bucket, last uint64) error {
	x.mu.RLock()
	all := make(map[string]uint64, len(x.recent)+len(x.added))
	for id, seq := range x.recent {
		if !x.deleted[id] {
			all[id] = seq
		}
	}
	x.mu.RUnlock()
	for id, seq := range x.added {
		all[id] = seq
	}
	if len(all) > 0 {
		ids := make([]string, 0, len(all))
		for id := range all {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		gb, err := b.Bucket(bktIDs).CreateBucket(seqKey(last))
		if err != nil {
			return err
		}
		gb.FillPercent = 1 // written in order, once
		g := &idGen{last: last, bloom: newBloom(len(ids))}
		for _, id := range ids {
			if err := gb.Put([]byte(id), seqKey(all[id])); err != nil {
				return err
			}
			g.bloom.add(maphash.String(idSeed, id))
		}
		x.newGen = g
	}
	if err := b.Bucket(bktMeta).Put(keyIDsThrough, seqKey(last)); err != nil {
		return err
	}
	x.mergeTo = last
	return nil
}

// end ends the commit under way: ok, it is on disk and readers see its ids
// from now on; else nothing of it is kept.
func (x *idIndex) end(ok bool) {
	if ok {
		x.mu.Lock()
		for id := range x.deleted {
			delete(x.recent, id)
			delete(x.merged, id)
		}
		for id, seq := range x.added {
			x.recent[id] = seq
		}
		if len(x.dropped) > 0 || x.newGen != nil {
			gens := make([]*idGen, 0, len(x.gens)+1)
			for _, g := range x.gens {
				if !slices.Contains(x.dropped, g.last) {
					gens = append(gens, g)
				}
			}
			if x.newGen != nil {
				gens = append(gens, x.newGen)
			}
			x.gens = gens
		}
		if x.mergeTo != 0 {
			x.merged, x.recent = x.recent, map[string]uint64{}
			x.through = x.mergeTo
		}
		x.mu.Unlock()
	}
	clear(x.added)
	clear(x.deleted)
	x.touched, x.mergeTo, x.newGen, x.dropped = false, 0, nil, x.dropped[:0]
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
