package queue

// Store-level benchmarks of the store-and-forward mode (figures:
// BENCHMARKS.md, "Store and forward: the queue store").
//
//   - BenchmarkEnqueue: (*Queue).Enqueue, i.e. the id check and the append
//     in one transaction of the store's group commit, returning after its
//     fsync.
//   - BenchmarkEnqueueGrown: the same in a file that already holds many
//     events.
//   - BenchmarkBareBolt: its physical limit on the same disk: an ideal
//     group commit written directly with bbolt (one committer goroutine
//     takes every append waiting at that moment into one db.Update, with
//     no added delay), doing an id check (Get) and two Puts per event.
//   - BenchmarkDiskSeqWriteFsync: the disk's sequential write rate with an
//     fsync after every 5 MiB chunk, in the same directory.
//
// Every benchmark runs b.N appends spread over its writers (goroutines
// taking the next index from a shared counter), times every call, and
// reports events/s, MiB/s, the p50/p99 latency of one call, the
// process's CPU time per event and the bytes it wrote per event. With
// -benchtime=1x (./test.sh) each does a single append.

import (
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var benchShapes = []struct {
	size    int
	writers []int
}{
	{1 << 10, []int{1, 32}},
	{5 << 20, []int{1, 4}},
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// benchBody is a Vev PUBLISH event of n bytes: HTML with escaped quotes
// and non-ASCII, as the sender sends it.
func benchBody(n int) []byte {
	head := `{"id":"evt_bench","hosting":"host_1","event":"PUBLISH","payload":{"pages":[{"html":"`
	tail := `"}]}}`
	chunk := `<div class=\"card\">Caf\u00e9 &amp; cr\u00e8me &lt;b&gt; é 日本 </div>\n`
	var b strings.Builder
	b.Grow(n)
	b.WriteString(head)
	for b.Len()+len(chunk)+len(tail) <= n {
		b.WriteString(chunk)
	}
	for b.Len()+len(tail) < n {
		b.WriteByte('x')
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// benchHeader is the request header of a Vev delivery as the gateway
// stores it: 11 entries.
func benchHeader(size int) http.Header {
	return http.Header{
		"Accept":            {"*/*"},
		"Accept-Encoding":   {"gzip"},
		"Content-Length":    {strconv.Itoa(size)},
		"Content-Type":      {"application/json"},
		"Traceparent":       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"User-Agent":        {"Vev-Webhooks/2.4"},
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Proto": {"https"},
		"X-Request-Id":      {"01JDQ7Z3K8V0M4N6P2R5T9W1XY"},
		"X-Vev-Event":       {"PUBLISH"},
		"X-Vev-Signature":   {"sha512=" + strings.Repeat("9f", 64)},
	}
}

// benchEvent is the event Enqueue stores, without its id.
func benchEvent(body []byte, header http.Header) Event {
	return Event{
		Provider:   "vev",
		EventType:  "PUBLISH",
		Method:     http.MethodPost,
		URI:        "/webhooks/vev",
		Host:       "hooks.example.com",
		Header:     header,
		ClientIP:   "203.0.113.7",
		RemoteAddr: "10.0.0.12:51234",
		Body:       body,
	}
}

// benchID is a random event id like the senders': evt_ and 24 hex digits.
func benchID() string {
	var r [12]byte
	for i := range 3 {
		v := rand.Uint32()
		r[4*i], r[4*i+1], r[4*i+2], r[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return "evt_" + hex.EncodeToString(r[:])
}

// runWriters runs b.N calls of append over writers goroutines (each made
// by newWriter, before the timer starts), timing every call, and reports
// events/s, MiB/s (of bodies of size bytes), p50/p99 latency in ms, CPU
// µs per event and KiB written per event.
func runWriters(b *testing.B, writers, size int, newWriter func(w int) func(id string) error) {
	b.Helper()
	if writers > b.N {
		writers = b.N
	}
	var next atomic.Int64
	lats := make([][]time.Duration, writers)
	calls := make([]func(string) error, writers)
	for w := range writers {
		calls[w] = newWriter(w)
		lats[w] = make([]time.Duration, 0, b.N/writers+1)
	}
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			call, lat := calls[w], lats[w]
			ready.Done()
			<-start
			for next.Add(1) <= int64(b.N) {
				id := benchID()
				t0 := time.Now()
				err := call(id)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Error(err)
					break
				}
			}
			lats[w] = lat
		}()
	}
	ready.Wait()
	b.ResetTimer()
	cpu0, wr0 := cpuTime(), bytesWritten()
	t0 := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(t0)
	cpu, wr := cpuTime()-cpu0, bytesWritten()-wr0
	b.StopTimer()

	all := slices.Concat(lats...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / float64(time.Millisecond)
	}
	n := float64(len(all))
	b.ReportMetric(n/elapsed.Seconds(), "events/s")
	b.ReportMetric(n*float64(size)/(1<<20)/elapsed.Seconds(), "MiB/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/n, "cpu-µs/event")
	if wr0 >= 0 && wr >= 0 {
		b.ReportMetric(float64(wr)/1024/n, "written-KiB/event")
	}
}

// bytesWritten is what the process has handed to write system calls
// (wchar of /proc/self/io; -1 where there is none): written per event, it
// shows how many pages a commit rewrites beyond the events themselves.
func bytesWritten() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// cpuTime is the user and system CPU time of the process so far: CPU per
// event is a figure the other sessions on the machine move less than
// wall-clock ones (it includes the garbage collector and the kernel's
// share of the writes and fsyncs).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLimits leave every bench append room.
var benchLimits = Limits{MaxEvents: 1 << 30, MaxBytes: 1 << 42}

// benchQueue is the queue "vev" of a new store in the benchmark's
// temporary directory, closed when it ends.
func benchQueue(b *testing.B) *Queue {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "queue.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	q, err := s.Queue("vev")
	if err != nil {
		b.Fatal(err)
	}
	return q
}

func BenchmarkEnqueue(b *testing.B) {
	for _, sh := range benchShapes {
		body := benchBody(sh.size)
		header := benchHeader(sh.size)
		for _, writers := range sh.writers {
			b.Run("size="+sizeName(sh.size)+"/writers="+strconv.Itoa(writers), func(b *testing.B) {
				q := benchQueue(b)
				runWriters(b, writers, sh.size, func(int) func(string) error {
					ev := benchEvent(body, header)
					return func(id string) error {
						ev.ID = id
						ev.ReceivedAt = time.Now()
						res, err := q.Enqueue(&ev, benchLimits)
						if err == nil && (res.Duplicate || res.State != Pending) {
							b.Errorf("Enqueue(%s) = %+v", id, res)
						}
						return err
					}
				})
			})
		}
	}
}

// BenchmarkEnqueueGrown is BenchmarkEnqueue's 1 KiB, 32 writers case in
// a file that already holds QUEUE_BENCH_GROWN events (default 300,000;
// none in a run of one append, as ./test.sh makes): what a store costs once it
// has been taking events for a while. The random-keyed id tree of the
// first layout made each append rewrite about one more page as the file
// grew (BENCHMARKS.md §5c); the id generations (ids.go) do not.
func BenchmarkEnqueueGrown(b *testing.B) {
	grown := 300000
	if v := os.Getenv("QUEUE_BENCH_GROWN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("QUEUE_BENCH_GROWN=%q: %v", v, err)
		}
		grown = n
	}
	body := benchBody(1 << 10)
	header := benchHeader(1 << 10)
	q := benchQueue(b)
	var added atomic.Int64
	// fill up to n events, 64 writers at a time
	fill := func(n int64) {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				ev := benchEvent(body, header)
				for added.Add(1) <= n {
					ev.ID, ev.ReceivedAt = benchID(), time.Now()
					if _, err := q.Enqueue(&ev, benchLimits); err != nil {
						b.Error(err)
						return
					}
				}
				added.Add(-1)
			})
		}
		wg.Wait()
	}
	b.Run("events="+strconv.Itoa(grown)+"/size=1KiB/writers=32", func(b *testing.B) {
		if b.N > 1 { // not in a run of one append (./test.sh)
			fill(int64(grown))
		}
		runWriters(b, 32, 1<<10, func(int) func(string) error {
			ev := benchEvent(body, header)
			return func(id string) error {
				ev.ID, ev.ReceivedAt = id, time.Now()
				res, err := q.Enqueue(&ev, benchLimits)
				if err == nil && (res.Duplicate || res.State != Pending) {
					b.Errorf("Enqueue(%s) = %+v", id, res)
				}
				return err
			}
		})
	})
}

// bareItem is one append of the bare loop.
type bareItem struct {
	id   []byte
	done chan error
}

func BenchmarkBareBolt(b *testing.B) {
	bktMetaB, bktBodyB := []byte("events"), []byte("bodies")
	for _, sh := range benchShapes {
		body := benchBody(sh.size)
		// a value as long as the metadata the store writes for the event
		ev := benchEvent(body, benchHeader(sh.size))
		ev.ID, ev.Seq, ev.ReceivedAt, ev.State = benchID(), 1<<20, time.Now(), Pending
		ev.DueAt = ev.ReceivedAt
		meta, err := json.Marshal(&ev)
		if err != nil {
			b.Fatal(err)
		}
		for _, writers := range sh.writers {
			b.Run("size="+sizeName(sh.size)+"/writers="+strconv.Itoa(writers), func(b *testing.B) {
				db, err := bolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, &bolt.Options{
					Timeout:        time.Second,
					FreelistType:   bolt.FreelistMapType,
					NoFreelistSync: true,
				})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					for _, n := range [][]byte{bktMetaB, bktBodyB} {
						if _, err := tx.CreateBucket(n); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}

				// the ideal group commit: the first item blocking, then
				// every item waiting at that moment, in one transaction
				items := make(chan *bareItem, 1024)
				stopped := make(chan struct{})
				go func() {
					defer close(stopped)
					batch := make([]*bareItem, 0, 256)
					for first := range items {
						batch = append(batch[:0], first)
					fill:
						for len(batch) < cap(batch) {
							select {
							case it, ok := <-items:
								if !ok {
									break fill
								}
								batch = append(batch, it)
							default:
								break fill
							}
						}
						err := db.Update(func(tx *bolt.Tx) error {
							metas, bodies := tx.Bucket(bktMetaB), tx.Bucket(bktBodyB)
							for _, it := range batch {
								if metas.Get(it.id) != nil {
									continue // a duplicate: nothing written
								}
								if err := metas.Put(it.id, meta); err != nil {
									return err
								}
								if err := bodies.Put(it.id, body); err != nil {
									return err
								}
							}
							return nil
						})
						for _, it := range batch {
							it.done <- err
						}
					}
				}()
				defer func() { close(items); <-stopped }()

				runWriters(b, writers, sh.size, func(int) func(string) error {
					it := &bareItem{done: make(chan error, 1)}
					return func(id string) error {
						it.id = []byte(id)
						items <- it
						return <-it.done
					}
				})
			})
		}
	}
}

func BenchmarkDiskSeqWriteFsync(b *testing.B) {
	const chunk = 5 << 20
	b.Run("size="+sizeName(chunk), func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "seq"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := benchBody(chunk)
		runWriters(b, 1, chunk, func(int) func(string) error {
			return func(string) error {
				if _, err := f.Write(buf); err != nil {
					return err
				}
				return f.Sync()
			}
		})
	})
}
