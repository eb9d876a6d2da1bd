package dedupe

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// eventKey is a realistic store key, "webhook_verify:vivreal:evt_<24 hex>",
// distinct for every i.
func eventKey(i uint64) string {
	var id [12]byte
	binary.BigEndian.PutUint64(id[:8], i*0x9e3779b97f4a7c15) // spread the bits
	binary.BigEndian.PutUint32(id[8:], uint32(i))
	return "webhook_verify:vivreal:evt_" + hex.EncodeToString(id[:])
}

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryEntryBytes measures what one done entry of the memory
// store costs on the heap, its key included: the map slot, the entry, its
// heap slot, the key string. 1,000,000 entries (max_entries' default) cost
// a million times that.
func BenchmarkMemoryEntryBytes(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	var perEntry float64
	for i := 0; i < b.N; i++ {
		before := heapAlloc()
		m := NewMemory(2*n, 0)
		for j := uint64(0); j < n; j++ {
			// the keys are made here: the store holds the only reference
			k := eventKey(uint64(i)*n + j)
			c, err := m.Claim(ctx, k, time.Minute)
			if err != nil || c.Status != Claimed {
				b.Fatalf("claim %d: %v %v", j, c.Status, err)
			}
			if err := m.Done(ctx, k, c.Token, 72*time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		after := heapAlloc()
		if m.Len() != n {
			b.Fatalf("Len = %d, want %d", m.Len(), n)
		}
		perEntry += float64(int64(after)-int64(before)) / n
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perEntry/float64(b.N), "B/entry")
	b.ReportMetric(perEntry/float64(b.N)*1e6/(1<<20), "MiB/1M-entries")
}

// BenchmarkDedupeOverhead is the store's part of one request on the happy
// path: one Claim and one Done of a new event (the key is built per op,
// as the handler does).
func BenchmarkDedupeOverhead(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s Store) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := "webhook_verify:vivreal:evt_" + strconv.Itoa(i)
			c, err := s.Claim(ctx, k, time.Minute)
			if err != nil || c.Status != Claimed {
				b.Fatalf("claim %q: %v %v", k, c.Status, err)
			}
			if err := s.Done(ctx, k, c.Token, 72*time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		m := NewMemory(1_000_000, 10*time.Second) // the handler's store
		defer m.Close()
		run(b, m)
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		r, err := NewRedis(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		// warm up: connection, script loaded
		if _, err := r.Claim(ctx, "warmup", time.Minute); err != nil {
			b.Fatal(err)
		}
		run(b, r)
	})
}

// BenchmarkDedupeOverheadParallel is the same with concurrent requests.
func BenchmarkDedupeOverheadParallel(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s Store) {
		b.ReportAllocs()
		b.ResetTimer()
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := "webhook_verify:vivreal:evt_" + strconv.FormatUint(next.Add(1), 10)
				c, err := s.Claim(ctx, k, time.Minute)
				if err != nil || c.Status != Claimed {
					b.Errorf("claim %q: %v %v", k, c.Status, err)
					return
				}
				if err := s.Done(ctx, k, c.Token, 72*time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("memory", func(b *testing.B) {
		m := NewMemory(1_000_000, 10*time.Second)
		defer m.Close()
		run(b, m)
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		r, err := NewRedis(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Claim(ctx, "warmup", time.Minute); err != nil {
			b.Fatal(err)
		}
		run(b, r)
	})
}
