package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Vev's stringify_fallback (BENCHMARKS.md section 6).

// StringifyBodies returns 5 MiB bodies for the fallback: a Vev PUBLISH in
// JSON.stringify form ("compact"), the same pretty-printed ("pretty") and
// with Go's HTML escapes ("goescaped"), and three worst cases: numbers to
// reformat, objects to reorder, objects of StringifyMaxKeys keys ("keys").
func StringifyBodies(tb testing.TB) []struct {
	Name string
	Body []byte
} {
	compact, _, err := providers.Stringify(Event("vev", 5<<20), providers.TextOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	compact = bytes.Clone(compact)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, compact, "", "  "); err != nil {
		tb.Fatal(err)
	}
	escaped := strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`).Replace(string(compact))
	var nums strings.Builder
	nums.WriteString("[")
	for nums.Len() < 5<<20 {
		nums.WriteString("0.10,1e3,-2.5E-7,")
	}
	nums.WriteString("0]")
	var objs strings.Builder
	objs.WriteString("[")
	for objs.Len() < 5<<20 {
		objs.WriteString(`{"b":1,"a":"x","1":true},`)
	}
	objs.WriteString("{}]")
	// objects of providers.StringifyMaxKeys distinct keys, in JS order
	var keys strings.Builder
	keys.WriteString("[")
	for keys.Len() < 5<<20 {
		if keys.Len() > 1 {
			keys.WriteByte(',')
		}
		keys.WriteByte('{')
		for k := range providers.StringifyMaxKeys {
			if k > 0 {
				keys.WriteByte(',')
			}
			keys.WriteString(`"k` + strconv.FormatInt(int64(k), 36) + `":0`)
		}
		keys.WriteByte('}')
	}
	keys.WriteString("]")
	return []struct {
		Name string
		Body []byte
	}{
		{"compact", compact},
		{"pretty", pretty.Bytes()},
		{"goescaped", []byte(escaped)},
		{"numbers", []byte(nums.String())},
		{"reorder", []byte(objs.String())},
		{"keys", []byte(keys.String())},
	}
}

type resetMAC struct{ hash.Hash }

// discardMAC takes the text and does nothing with it: the transform of a
// forgery without the hashing.
type discardMAC struct{}

func (discardMAC) Write(p []byte) (int, error) { return len(p), nil }
func (discardMAC) Reset()                      {}

// forged is TextOptions.Match for a forgery: the MAC never matches.
func forged() bool { return false }

// BenchmarkStringify is the fallback's cost on 5 MiB bodies, beside one
// HMAC-SHA512 of 5 MiB in the same run:
//   - hmac: the HMAC-SHA512 of the 5 MiB PUBLISH, the unit of the ratios;
//   - <body>/transform: Stringify alone, the text built, no MAC (what a
//     matching request's second pass costs);
//   - <body>/fallback: what a forgery pays after its raw MAC failed, the
//     transform writing the text to the HMAC without building it, then
//     Match saying no (nothing is hashed when the text equals the body:
//     "compact").
func BenchmarkStringify(b *testing.B) {
	bodies := StringifyBodies(b)
	b.Run("hmac", func(b *testing.B) {
		body := bodies[0].Body
		m := hmac.New(sha512.New, []byte(secret))
		var sum [64]byte
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			m.Reset()
			m.Write(body)
			m.Sum(sum[:0])
		}
	})
	for _, c := range bodies {
		buf := make([]byte, 0, len(c.Body))
		alloc := func(n int) []byte {
			if n <= cap(buf) {
				return buf[:0]
			}
			return make([]byte, 0, n)
		}
		b.Run(c.Name+"/transform", func(b *testing.B) {
			b.SetBytes(int64(len(c.Body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := providers.Stringify(c.Body, providers.TextOptions{Alloc: alloc}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.Name+"/fallback", func(b *testing.B) {
			m := resetMAC{hmac.New(sha512.New, []byte(secret))}
			var sum [64]byte
			b.SetBytes(int64(len(c.Body)))
			b.ReportAllocs()
			for b.Loop() {
				m.Reset()
				if _, _, err := providers.Stringify(c.Body, providers.TextOptions{Alloc: alloc, MAC: m, Match: forged}); err != nil && !errors.Is(err, providers.ErrStringifyNoMatch) {
					b.Fatal(err)
				}
				m.Sum(sum[:0])
			}
		})
	}
}

// StringifyHandler provisions a vev handler with stringify_fallback set or
// not.
func StringifyHandler(tb testing.TB, fallback bool) *webhookverify.Handler {
	tb.Helper()
	var h webhookverify.Handler
	cfg := fmt.Sprintf(`{"provider": {"name": "vev", "stringify_fallback": %v}, "secrets": [%q], "max_body_size": %d}`, fallback, secret, 16<<20)
	if err := json.Unmarshal([]byte(cfg), &h); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	return &h
}

// BenchmarkVerifyStringify is the handler's whole ServeHTTP on 5 MiB Vev
// PUBLISH bodies:
//   - raw/off and raw/on: a body whose raw MAC matches, without and with
//     stringify_fallback: the option must cost nothing there;
//   - pretty/on: a pretty-printed body signed over its stringify form: the
//     raw MAC, then the fallback, then the hand-over of the text.
func BenchmarkVerifyStringify(b *testing.B) {
	bodies := StringifyBodies(b)
	compact, pretty := bodies[0].Body, bodies[1].Body
	for _, c := range []struct {
		name     string
		body     []byte
		fallback bool
	}{
		{"raw/off", compact, false},
		{"raw/on", compact, true},
		{"pretty/on", pretty, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := StringifyHandler(b, c.fallback)
			m := hmac.New(sha512.New, []byte(secret))
			m.Write(compact) // the signed text
			rb := &rewindBody{b: c.body}
			r, _ := http.NewRequest(http.MethodPost, "/hook", nil)
			r.Header.Set("X-Vev-Signature", "sha512="+hex.EncodeToString(m.Sum(nil)))
			r.Header.Set("Content-Type", "application/json")
			w := nopWriter{h: http.Header{}}
			serve := func() {
				rb.off = 0
				ctx, cancel := context.WithCancel(context.Background())
				ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewEmptyReplacer())
				req := r.WithContext(ctx)
				req.Body = rb
				req.ContentLength = int64(len(c.body))
				if err := h.ServeHTTP(w, req, nop); err != nil {
					b.Fatal(err)
				}
				cancel()
				runtime.Gosched()
			}
			for range 16 {
				serve()
			}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}

// BenchmarkStringifyRatio measures the same as BenchmarkStringify, but
// alternates, in each iteration, one HMAC-SHA512 of the 5 MiB PUBLISH
// ("compact") with the transforms of the body, and reports their ratios:
// on a shared, noisy machine they all see the same load, so the ratio
// holds where the absolute times do not.
//   - x-hmac: the transform building the text, no MAC (a matching
//     request's second pass) / one HMAC-SHA512 of 5 MiB;
//   - forged-x-hmac: the transform of a forgery: the text written, not
//     built, to a MAC that discards it (no hashing) / the same HMAC;
//   - fallback-x-hmac: what a forgery pays, the same writing to the HMAC,
//     then Match saying no / the same HMAC.
//
// Each is reported twice: from the wall clock, and (-cpu, on Linux) from
// the CPU time of the thread the benchmark is locked to, which leaves out
// the time a phase waited for a core: on a loaded machine the wall-clock
// ratios spread, the CPU-time ones hardly.
func BenchmarkStringifyRatio(b *testing.B) {
	bodies := StringifyBodies(b)
	unit := bodies[0].Body
	for _, c := range bodies {
		b.Run(c.Name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			buf := make([]byte, 0, 2*len(c.Body))
			alloc := func(n int) []byte {
				if n <= cap(buf) {
					return buf[:0]
				}
				return make([]byte, 0, n)
			}
			m := resetMAC{hmac.New(sha512.New, []byte(secret))}
			var sum [64]byte
			// wall and CPU time of the phases: hmac, text, forged, fallback
			var wall, cpu [4]time.Duration
			var w0, c0 time.Duration
			start := time.Now()
			lap := func(k int) {
				w, c := time.Since(start), threadCPU()
				if k >= 0 {
					wall[k] += w - w0
					cpu[k] += c - c0
				}
				w0, c0 = w, c
			}
			for b.Loop() {
				lap(-1)
				m.Reset()
				m.Write(unit)
				m.Sum(sum[:0])
				lap(0)
				if _, _, err := providers.Stringify(c.Body, providers.TextOptions{Alloc: alloc}); err != nil {
					b.Fatal(err)
				}
				lap(1)
				if _, _, err := providers.Stringify(c.Body, providers.TextOptions{Alloc: alloc, MAC: discardMAC{}, Match: forged}); err != nil && !errors.Is(err, providers.ErrStringifyNoMatch) {
					b.Fatal(err)
				}
				lap(2)
				m.Reset()
				if _, _, err := providers.Stringify(c.Body, providers.TextOptions{Alloc: alloc, MAC: m, Match: forged}); err != nil && !errors.Is(err, providers.ErrStringifyNoMatch) {
					b.Fatal(err)
				}
				m.Sum(sum[:0])
				lap(3)
			}
			for k, name := range []string{"", "x-hmac", "forged-x-hmac", "fallback-x-hmac"} {
				if k == 0 {
					continue
				}
				b.ReportMetric(float64(wall[k])/float64(wall[0]), name)
				if cpu[0] > 0 {
					b.ReportMetric(float64(cpu[k])/float64(cpu[0]), name+"-cpu")
				}
			}
		})
	}
}

// BenchmarkVerifyStringifyRatio alternates the handler's whole ServeHTTP
// on the 5 MiB compact PUBLISH, whose raw MAC matches, without and with
// stringify_fallback, and reports on/off (1.00: the option costs nothing
// there).
func BenchmarkVerifyStringifyRatio(b *testing.B) {
	compact := StringifyBodies(b)[0].Body
	m := hmac.New(sha512.New, []byte(secret))
	m.Write(compact)
	sig := "sha512=" + hex.EncodeToString(m.Sum(nil))
	serveWith := func(h *webhookverify.Handler) func() {
		rb := &rewindBody{b: compact}
		r, _ := http.NewRequest(http.MethodPost, "/hook", nil)
		r.Header.Set("X-Vev-Signature", sig)
		r.Header.Set("Content-Type", "application/json")
		w := nopWriter{h: http.Header{}}
		return func() {
			rb.off = 0
			ctx, cancel := context.WithCancel(context.Background())
			ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewEmptyReplacer())
			req := r.WithContext(ctx)
			req.Body = rb
			req.ContentLength = int64(len(compact))
			if err := h.ServeHTTP(w, req, nop); err != nil {
				b.Fatal(err)
			}
			cancel()
			runtime.Gosched()
		}
	}
	off, on := serveWith(StringifyHandler(b, false)), serveWith(StringifyHandler(b, true))
	for range 16 {
		off()
		on()
	}
	var toff, ton time.Duration
	for b.Loop() {
		t0 := time.Now()
		off()
		t1 := time.Now()
		on()
		ton += time.Since(t1)
		toff += t1.Sub(t0)
	}
	b.ReportMetric(float64(ton)/float64(toff), "on-x-off")
}
