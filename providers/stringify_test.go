package providers_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// stringifyVector is one line of testdata/stringify/vectors.jsonl, made by
// Node (testdata/stringify/gen.js): the body, the text Vev's Node receiver
// hashes (nil where it answers 400), the HMAC-SHA512 of that text under
// vectorSecret, and whether stringify_fallback must accept it with these
// headers.
type stringifyVector struct {
	Name            string  `json:"name"`
	ContentType     string  `json:"content_type"`
	ContentEncoding string  `json:"content_encoding"`
	In              []byte  `json:"in"`
	Out             *[]byte `json:"out"`
	HMAC            string  `json:"hmac"`
	Accept          bool    `json:"accept"`
}

const vectorSecret = "vev-test-secret"

func loadStringifyVectors(t testing.TB) []stringifyVector {
	t.Helper()
	f, err := os.Open("../testdata/stringify/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []stringifyVector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v stringifyVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("vectors.jsonl: %v", err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 97 {
		t.Fatalf("vectors.jsonl has %d vectors, want at least the research's 95 and the 2 HMAC checks", len(vs))
	}
	return vs
}

// macWriter is a ResettableWriter over one HMAC-SHA512 that also counts
// the bytes written, to check what is (not) hashed.
type macWriter struct {
	hash.Hash
	written int
	resets  int
}

func newMACWriter() *macWriter {
	return &macWriter{Hash: hmac.New(sha512.New, []byte(vectorSecret))}
}

func (m *macWriter) Write(p []byte) (int, error) {
	m.written += len(p)
	return m.Hash.Write(p)
}

func (m *macWriter) Reset() {
	m.resets++
	m.written = 0
	m.Hash.Reset()
}

// TestStringifyVectors checks Stringify, and the HMAC it feeds, against
// every vector Node made.
func TestStringifyVectors(t *testing.T) {
	for _, v := range loadStringifyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			mac := newMACWriter()
			got, same, err := providers.Stringify(v.In, providers.TextOptions{MAC: mac})
			if v.Out == nil {
				if err == nil {
					t.Fatalf("Stringify(%q) = %q; Node refuses it", v.In, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Stringify(%q): %v; Node gives %q", v.In, err, *v.Out)
			}
			if !bytes.Equal(got, *v.Out) {
				t.Fatalf("Stringify(%q)\n got %q\nwant %q (Node)", v.In, got, *v.Out)
			}
			if same != bytes.Equal(v.In, *v.Out) {
				t.Fatalf("same = %v for %q -> %q", same, v.In, got)
			}
			if same {
				if mac.written != 0 {
					t.Fatalf("the text equals the body, but %d bytes were hashed", mac.written)
				}
				return
			}
			if sum := hex.EncodeToString(mac.Sum(nil)); sum != v.HMAC {
				t.Fatalf("MAC fed by Stringify = %s, want Node's %s", sum, v.HMAC)
			}
		})
	}
}

// With Match, Stringify first only writes the text to the MAC: Match is
// called once with the MAC of Node's text written, after which nothing more
// is written; on a mismatch no text is returned and, unless the body needed
// the text built (the MAC was reset for it), no buffer was taken; on a
// match the text is Node's. Each Alloc is given back by Free or is the
// text's. (Also with the MAC alone's writes staged in tiny buffers.)
func TestStringifyMatchVectors(t *testing.T) {
	for _, v := range loadStringifyVectors(t) {
		if v.Out == nil {
			continue
		}
		for _, tc := range []struct {
			match bool
			chunk int // SetFeedChunk: how the MAC alone stages its writes
		}{{false, 64 << 10}, {true, 64 << 10}, {false, 7}, {true, 1}} {
			match := tc.match
			t.Run(fmt.Sprintf("%s/match=%v/chunk=%d", v.Name, match, tc.chunk), func(t *testing.T) {
				defer providers.SetFeedChunk(tc.chunk)()
				mac := newMACWriter()
				calls, atMatch, allocs, frees := 0, 0, 0, 0
				opt := providers.TextOptions{
					MAC: mac,
					Match: func() bool {
						calls++
						atMatch = mac.written
						if sum := hex.EncodeToString(mac.Sum(nil)); sum != v.HMAC {
							t.Fatalf("MAC at Match = %s, want Node's %s", sum, v.HMAC)
						}
						return match
					},
					Alloc: func(n int) []byte { allocs++; return make([]byte, 0, n) },
					Free:  func([]byte) { frees++ },
				}
				got, same, err := providers.Stringify(v.In, opt)
				if bytes.Equal(v.In, *v.Out) {
					if err != nil || !same || calls != 0 || mac.written != 0 {
						t.Fatalf("body in stringify form: same=%v, %v, %d Match calls, %d bytes hashed", same, err, calls, mac.written)
					}
					return
				}
				if calls != 1 || mac.written != atMatch {
					t.Fatalf("%d Match calls; %d bytes hashed at Match, %d in all", calls, atMatch, mac.written)
				}
				if !match {
					if !errors.Is(err, providers.ErrStringifyNoMatch) || got != nil {
						t.Fatalf("no match: %q, %v; want no text, ErrStringifyNoMatch", got, err)
					}
					if mac.resets == 0 && allocs != 0 || allocs != frees {
						t.Fatalf("no match: %d allocs, %d frees, %d MAC resets", allocs, frees, mac.resets)
					}
					return
				}
				if err != nil || same || !bytes.Equal(got, *v.Out) {
					t.Fatalf("match: %q, same=%v, %v; want Node's %q", got, same, err, *v.Out)
				}
				if allocs != frees+1 {
					t.Fatalf("match: %d allocs, %d frees: want the text's buffer alone kept", allocs, frees)
				}
			})
		}
	}
}

// A forgery of a body whose text is only written to the MAC (white space,
// escapes, numbers: no reordering) takes no text buffer, nor more
// working memory than its staging buffer; it is written in few large
// writes, the long spans straight from the body.
func TestStringifyMatchNoText(t *testing.T) {
	big := strings.Repeat(`<p>caf\u00e9 \/ 1</p>`, 10000) + strings.Repeat("x", 200000)
	body := []byte("{\n  \"id\": \"e1\",\n  \"n\": [1.50, 2E3, -0],\n  \"html\": \"" + big + "\"\n}")
	want, _, err := providers.Stringify(body, providers.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mac := &recWriter{macWriter: *newMACWriter()}
	reserved, peak := 0, 0
	opt := providers.TextOptions{
		MAC: mac,
		Match: func() bool {
			w := hmac.New(sha512.New, []byte(vectorSecret))
			w.Write(want)
			if !hmac.Equal(mac.Sum(nil), w.Sum(nil)) {
				t.Fatal("the MAC written is not the text's")
			}
			return false
		},
		Alloc:   func(int) []byte { t.Fatal("a buffer was taken for a forgery"); return nil },
		Reserve: func(n int) bool { reserved += n; peak = max(peak, reserved); return true },
		Release: func(n int) { reserved -= n },
	}
	if _, _, err := providers.Stringify(body, opt); !errors.Is(err, providers.ErrStringifyNoMatch) {
		t.Fatalf("%v, want ErrStringifyNoMatch", err)
	}
	if reserved != 0 || peak > 8<<10 || mac.resets != 0 {
		t.Fatalf("%d bytes left reserved, %d at the peak, %d MAC resets", reserved, peak, mac.resets)
	}
	if len(mac.writes) > len(want)/(4<<10) {
		t.Fatalf("%d writes for %d bytes: %v", len(mac.writes), len(want), mac.writes)
	}
}

// TestVevSignedTextVectors runs the vectors through Vev's SignedText with
// their headers: the gate and the transform, as the handler calls them.
func TestVevSignedTextVectors(t *testing.T) {
	on := &providers.Vev{StringifyFallback: true}
	for _, v := range loadStringifyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			h := http.Header{}
			if v.ContentType != "" {
				h.Set("Content-Type", v.ContentType)
			}
			if v.ContentEncoding != "" {
				h.Set("Content-Encoding", v.ContentEncoding)
			}
			in := v.In
			if v.Out != nil && bytes.Equal(v.In, *v.Out) {
				// a body already in stringify form has no second form (its
				// raw MAC is the stringify MAC, checked and failed before)
				mac := newMACWriter()
				if _, _, err := on.SignedText(h, v.In, providers.TextOptions{MAC: mac}); err == nil || mac.written != 0 {
					t.Fatalf("SignedText of a body in stringify form: %v, %d bytes hashed; want an error, nothing hashed", err, mac.written)
				}
				// so the headers are checked on the same body behind a
				// space, whose stringify form is the same
				in = append([]byte{' '}, v.In...)
			}
			mac := newMACWriter()
			text, form, err := on.SignedText(h, in, providers.TextOptions{MAC: mac})
			verified := err == nil && hex.EncodeToString(mac.Sum(nil)) == v.HMAC
			if verified != v.Accept {
				t.Fatalf("verified = %v (err %v), want %v", verified, err, v.Accept)
			}
			if verified && (form != providers.SignedFormStringify || !bytes.Equal(text, *v.Out)) {
				t.Fatalf("SignedText = %q, %q", text, form)
			}
			// off by default
			if _, _, err := (&providers.Vev{}).SignedText(h, in, providers.TextOptions{}); !errors.Is(err, providers.ErrNoAlternate) {
				t.Fatalf("without the option: %v, want ErrNoAlternate", err)
			}
		})
	}
}

func TestVevStringifyGate(t *testing.T) {
	body := []byte("{ \"a\": 1 }")
	on := &providers.Vev{StringifyFallback: true}
	for _, tc := range []struct {
		name string
		h    http.Header
		ok   bool
	}{
		{"json", http.Header{"Content-Type": {"application/json"}}, true},
		{"charset utf-8 any case", http.Header{"Content-Type": {"APPLICATION/Json;charset=\"UTF-8\""}}, true},
		{"identity", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"Identity"}}, true},
		{"no content type", http.Header{}, false},
		{"two content types", http.Header{"Content-Type": {"application/json", "application/json"}}, false},
		{"+json", http.Header{"Content-Type": {"application/vnd.api+json"}}, false},
		{"text/plain", http.Header{"Content-Type": {"text/plain"}}, false},
		{"bad media type", http.Header{"Content-Type": {"application/json; charset"}}, false},
		{"utf8 spelled without dash", http.Header{"Content-Type": {"application/json; charset=utf8"}}, false},
		{"utf-16", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, false},
		{"gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, false},
		{"identity twice", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "identity"}}, false},
		{"identity, gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity, gzip"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, _, err := on.SignedText(tc.h, body, providers.TextOptions{})
			if (err == nil) != tc.ok {
				t.Fatalf("SignedText: %q, %v; want ok=%v", text, err, tc.ok)
			}
		})
	}
}

func TestStringifyDepth(t *testing.T) {
	deep := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	if _, _, err := providers.Stringify(deep(providers.StringifyMaxDepth), providers.TextOptions{}); err != nil {
		t.Fatalf("depth %d: %v", providers.StringifyMaxDepth, err)
	}
	if _, _, err := providers.Stringify(deep(providers.StringifyMaxDepth+1), providers.TextOptions{}); !errors.Is(err, providers.ErrStringifyDepth) {
		t.Fatalf("depth %d: %v, want ErrStringifyDepth", providers.StringifyMaxDepth+1, err)
	}
}

// The text's buffers come from Alloc and go back through Free; a refused
// Alloc stops the transform with ErrStringifyBudget, and nothing is kept.
func TestStringifyAllocFree(t *testing.T) {
	body := []byte(`{"s":"` + strings.Repeat("\xff", 5000) + `"}`) // grows to 3x
	live := map[*byte]int{}
	allocs := 0
	opt := providers.TextOptions{
		Alloc: func(n int) []byte {
			allocs++
			b := make([]byte, 0, n)
			live[unsafe.SliceData(b[:1])] = n
			return b
		},
		Free: func(b []byte) {
			p := unsafe.SliceData(b[:1])
			if _, ok := live[p]; !ok {
				t.Fatalf("Free of a buffer Alloc did not return (or freed twice)")
			}
			delete(live, p)
		},
	}
	text, _, err := providers.Stringify(body, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != 5000*3+8 || allocs < 2 {
		t.Fatalf("text %d bytes, %d allocs", len(text), allocs)
	}
	if len(live) != 1 || live[unsafe.SliceData(text[:1])] == 0 {
		t.Fatalf("%d buffers live; want only the text's", len(live))
	}

	// a budget for one buffer only
	clear(live)
	allocs = 0
	inner := opt.Alloc
	opt.Alloc = func(n int) []byte {
		if allocs > 0 {
			return nil
		}
		return inner(n)
	}
	if _, _, err := providers.Stringify(body, opt); !errors.Is(err, providers.ErrStringifyBudget) {
		t.Fatalf("err %v, want ErrStringifyBudget", err)
	}
	if len(live) != 0 {
		t.Fatalf("%d buffers not freed after the refusal", len(live))
	}
	// and a Limit under the text's length
	if _, _, err := providers.Stringify(body, providers.TextOptions{Limit: 10000}); !errors.Is(err, providers.ErrStringifyTooLarge) {
		t.Fatalf("err %v, want ErrStringifyTooLarge", err)
	}
}

// recWriter records the MAC's writes.
type recWriter struct {
	macWriter
	writes []int
}

func (r *recWriter) Write(p []byte) (int, error) {
	r.writes = append(r.writes, len(p))
	return r.macWriter.Write(p)
}

// The MAC is fed as the text is produced, in chunks, from the first byte
// that differs; an object reordered after its start was hashed makes the
// MAC start over, once, at the end; a reorder before that holds the bytes
// back instead. Each way the MAC is the text's.
func TestStringifyFeedsAsProduced(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	for _, tc := range []struct {
		name    string
		body    string
		restart bool
	}{
		{"pretty", "{\n \"a\": \"" + big + "\",\n \"b\": \"" + big + "\"\n}", false},
		{"reorder early", `[{"b":1,"a":2,"1":0}, "` + big + `", "` + big + `"]`, false},
		{"reorder late", `{"b":"` + big + `", "a":"` + big + `", "1":0}`, true},
		{"duplicate late", `{"a":"` + big + `", "b":"` + big + `", "a":0}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mac := &recWriter{macWriter: *newMACWriter()}
			text, same, err := providers.Stringify([]byte(tc.body), providers.TextOptions{MAC: mac})
			if err != nil || same {
				t.Fatalf("%v, same=%v", err, same)
			}
			want := hmac.New(sha512.New, []byte(vectorSecret))
			want.Write(text)
			if !hmac.Equal(mac.Sum(nil), want.Sum(nil)) {
				t.Fatal("the MAC fed is not the text's")
			}
			if (mac.resets > 0) != tc.restart {
				t.Fatalf("%d resets, want restart=%v", mac.resets, tc.restart)
			}
			if !tc.restart && len(mac.writes) < 4 {
				t.Fatalf("the MAC got %d writes (%v): not fed as the text was produced", len(mac.writes), mac.writes)
			}
		})
	}
}

// An object may have StringifyMaxKeys members (repeats included), not one
// more, at any depth.
func TestStringifyMaxKeys(t *testing.T) {
	object := func(n int, dup bool) []byte {
		var b strings.Builder
		b.WriteString(`[1,{`)
		for k := range n {
			if k > 0 {
				b.WriteByte(',')
			}
			if dup && k == n-1 {
				b.WriteString(`"k0":0`)
				continue
			}
			fmt.Fprintf(&b, `"k%d":0`, k)
		}
		b.WriteString(`}]`)
		return []byte(b.String())
	}
	if _, _, err := providers.Stringify(object(providers.StringifyMaxKeys, false), providers.TextOptions{}); err != nil {
		t.Fatalf("%d keys: %v", providers.StringifyMaxKeys, err)
	}
	for _, dup := range []bool{false, true} {
		if _, _, err := providers.Stringify(object(providers.StringifyMaxKeys+1, dup), providers.TextOptions{}); !errors.Is(err, providers.ErrStringifyKeys) {
			t.Fatalf("%d keys (last a repeat: %v): %v, want ErrStringifyKeys", providers.StringifyMaxKeys+1, dup, err)
		}
	}
	// the cap is per object: many objects of many keys pass
	var b strings.Builder
	b.WriteString("[")
	for n := range 3 {
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(object(providers.StringifyMaxKeys-10, false))
	}
	b.WriteString("]")
	if _, _, err := providers.Stringify([]byte(b.String()), providers.TextOptions{}); err != nil {
		t.Fatalf("three objects under the cap: %v", err)
	}
}

// Stringify's working memory (the records of the open objects' keys, key
// tables, reorder buffers) is charged to Reserve and all given back to
// Release; a refusal stops it with ErrStringifyBudget. What it allocates
// besides the text is no more than it charged (plus a little): no copy of
// the keys.
func TestStringifyReserve(t *testing.T) {
	const keys = 50000
	var compact, shuffled strings.Builder
	compact.WriteString("{")
	shuffled.WriteString("{\n")
	for k := range keys {
		if k > 0 {
			compact.WriteByte(',')
			shuffled.WriteString(",\n")
		}
		fmt.Fprintf(&compact, `"key-%d":%d`, k, k)
		// pretty, and keys repeated and out of order: reordered at the close
		fmt.Fprintf(&shuffled, `  "key-%d": %d`, (k*7919)%(keys/2), k)
	}
	compact.WriteString("}")
	shuffled.WriteString("\n}")
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"compact", []byte(compact.String())},
		{"reordered", []byte(shuffled.String())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reserved, peak, released int
			out := make([]byte, 0, len(tc.body))
			opt := providers.TextOptions{
				Alloc:   func(n int) []byte { return out[:0:max(n, cap(out))] },
				Reserve: func(n int) bool { reserved += n; peak = max(peak, reserved); return true },
				Release: func(n int) { released += n },
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, _, err := providers.Stringify(tc.body, opt); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if released != reserved || reserved == 0 {
				t.Fatalf("reserved %d, released %d", reserved, released)
			}
			if reserved > 128*keys {
				t.Fatalf("%d bytes charged for %d keys (%d per key)", reserved, keys, reserved/keys)
			}
			if got := int(after.TotalAlloc - before.TotalAlloc); got > reserved+64<<10 {
				t.Fatalf("allocated %d bytes, charged %d: working memory outside the budget", got, reserved)
			}
			// a budget that runs out half way
			var left, taken int = peak / 2, 0
			opt.Reserve = func(n int) bool {
				if n > left {
					return false
				}
				left -= n
				taken += n
				return true
			}
			released = 0
			if _, _, err := providers.Stringify(tc.body, opt); !errors.Is(err, providers.ErrStringifyBudget) {
				t.Fatalf("err %v, want ErrStringifyBudget", err)
			}
			if released != taken {
				t.Fatalf("reserved %d, released %d after the refusal", taken, released)
			}
		})
	}
}

// A repeated key is compared with the earlier one wherever its bytes are
// (here: not yet moved into the output buffer).
func TestStringifyRepeatedPendingSpan(t *testing.T) {
	rep, err := providers.RepeatedPending()
	if err != nil || !rep {
		t.Fatalf("repeated = %v, %v; want true", rep, err)
	}
}

// The fast path for short numbers gives what the conversion gives
// (AppendJSNumber, checked against Node by the vectors and the
// differential test), and leaves what it cannot tell to it.
func TestStringifyShortNumber(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int, lead bool) string {
		b := make([]byte, n)
		for k := range b {
			b[k] = byte('0' + r.IntN(10))
			if r.IntN(3) == 0 {
				b[k] = '0'
			}
		}
		if lead && n > 0 && b[0] == '0' {
			b[0] = '1' + byte(r.IntN(9))
		}
		return string(b)
	}
	fast := 0
	for range 500000 {
		lit := ""
		if r.IntN(2) == 0 {
			lit = "-"
		}
		if r.IntN(2) == 0 {
			lit += "0"
		} else {
			lit += digits(1+r.IntN(25), true)
		}
		if r.IntN(3) > 0 {
			lit += "." + digits(1+r.IntN(25), false)
		}
		if r.IntN(2) == 0 {
			lit += []string{"e", "E"}[r.IntN(2)] + []string{"", "+", "-"}[r.IntN(3)]
			switch r.IntN(4) {
			case 0:
				lit += strconv.Itoa(r.IntN(30))
			case 1:
				lit += strconv.Itoa(r.IntN(400))
			case 2:
				lit += "0" + strconv.Itoa(r.IntN(400))
			default:
				lit += strconv.Itoa(280 + r.IntN(50))
			}
		}
		got, ok := providers.AppendShortNumber(nil, []byte(lit))
		f, _ := strconv.ParseFloat(lit, 64)
		want := providers.AppendJSNumber(nil, f)
		if ok {
			fast++
			if string(got) != string(want) {
				t.Fatalf("%s: fast path %q, conversion %q", lit, got, want)
			}
		}
	}
	for _, c := range [][2]string{
		{"0.10", "0.1"}, {"-0.0", "0"}, {"-0", "0"}, {"0e5", "0"}, {"0.000001", "0.000001"}, {"0.0000001", "1e-7"},
		{"123.4500", "123.45"}, {"1e3", "1000"}, {"-2.5E-7", "-2.5e-7"}, {"1E21", "1e+21"}, {"1e20", "100000000000000000000"},
		{"123e-20", "1.23e-18"}, {"12.5e1", "125"}, {"0.00012e2", "0.012"}, {"100000000000000000000000", "1e+23"},
	} {
		got, ok := providers.AppendShortNumber(nil, []byte(c[0]))
		if !ok || string(got) != c[1] {
			t.Fatalf("%s: %q (fast path %v), want %q", c[0], got, ok, c[1])
		}
	}
	for _, lit := range []string{"1234567890123456.0", "0.1234567890123456", "1.0000000000000001", "1e400", "1e-320", "1e00001"} {
		if _, ok := providers.AppendShortNumber(nil, []byte(lit)); ok {
			t.Fatalf("%s: taken by the fast path", lit)
		}
	}
	if fast < 100000 {
		t.Fatalf("only %d of the random numbers took the fast path", fast)
	}
}
