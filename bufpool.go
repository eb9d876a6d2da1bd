package webhookverify

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Body buffers.
//
// A body is read into a buffer of a size class, 2^k and 1.5*2^k bytes from
// 4 KiB to 16 MiB, so a buffer wastes at most a third of its size. Freed
// buffers wait in a free list per class for the next request. The lists
// are bounded: together they hold at most maxPooledBytes (and each at most
// maxPooledPerClass buffers); a buffer that does not fit, or is larger than
// 16 MiB, is left to the garbage collector. Unlike a sync.Pool, the lists
// are not emptied by each garbage collection, so a steady stream of large
// bodies allocates nothing; the cap bounds what they pin after a burst.
const (
	minClassShift     = 12 // 4 KiB
	maxClassShift     = 24 // 16 MiB
	maxPooledBytes    = 32 << 20
	maxPooledPerClass = 256
)

type freeList struct {
	mu   sync.Mutex
	bufs [][]byte
}

var (
	freeLists   [2*(maxClassShift-minClassShift) + 1]freeList
	pooledBytes atomic.Int64
)

// classFor returns the index and size of the smallest class holding n bytes.
func classFor(n int) (int, int) {
	if n <= 1<<minClassShift {
		return 0, 1 << minClassShift
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	if half := 3 << (k - 2); n <= half {
		return 2*(k-1-minClassShift) + 1, half
	}
	return 2 * (k - minClassShift), 1 << k
}

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) []byte {
	c, size := classFor(n)
	if c >= len(freeLists) {
		return make([]byte, 0, n)
	}
	fl := &freeLists[c]
	fl.mu.Lock()
	if last := len(fl.bufs) - 1; last >= 0 {
		b := fl.bufs[last]
		fl.bufs[last] = nil
		fl.bufs = fl.bufs[:last]
		fl.mu.Unlock()
		pooledBytes.Add(-int64(size))
		return b
	}
	fl.mu.Unlock()
	return make([]byte, 0, size)
}

// putBuf gives b back to its class's free list, if it is of a class size.
// When the lists are full, buffers of other classes, largest first, make
// room: the sizes in use now win over those of an earlier burst.
func putBuf(b []byte) {
	c, size := classFor(cap(b))
	if c >= len(freeLists) || cap(b) != size {
		return
	}
	for pooledBytes.Add(int64(size)) > maxPooledBytes {
		pooledBytes.Add(-int64(size))
		if !evictOther(c) {
			return
		}
	}
	fl := &freeLists[c]
	fl.mu.Lock()
	if len(fl.bufs) < maxPooledPerClass {
		fl.bufs = append(fl.bufs, b[:0])
		fl.mu.Unlock()
		return
	}
	fl.mu.Unlock()
	pooledBytes.Add(-int64(size))
}

// evictOther drops one buffer of a class other than keep, largest first.
func evictOther(keep int) bool {
	for c := len(freeLists) - 1; c >= 0; c-- {
		if c == keep {
			continue
		}
		fl := &freeLists[c]
		fl.mu.Lock()
		if last := len(fl.bufs) - 1; last >= 0 {
			size := cap(fl.bufs[last])
			fl.bufs[last] = nil
			fl.bufs = fl.bufs[:last]
			fl.mu.Unlock()
			pooledBytes.Add(-int64(size))
			return true
		}
		fl.mu.Unlock()
	}
	return false
}

// probes are the one-byte reads that look for EOF past a full buffer; a
// pool, because a stack array passed to Read escapes to the heap.
var probes = sync.Pool{New: func() any { return new([1]byte) }}
