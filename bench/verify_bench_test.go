// Package bench measures the verify path against its physical limit, the
// bare HMAC of the same bytes. See BENCHMARKS.md for the figures and
// load.sh for the end-to-end load test against reverse_proxy.
package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
	"github.com/webhookverify/caddy-webhook-verify/providers"
)

const secret = "bench-secret"

var sizes = []struct {
	name string
	n    int
}{
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
	{"5MiB", 5 << 20},
}

var senders = []struct {
	name   string
	newMAC func() hash.Hash
	header string
	prefix string
}{
	{"vivreal", sha256.New, "X-Vivreal-Signature", "sha256="},
	{"vev", sha512.New, "X-Vev-Signature", "sha512="},
}

// Event builds a JSON event of about n bytes, shaped like the sender's:
// Vev PUBLISH events carry HTML pages with escaped quotes and non-ASCII.
func Event(sender string, n int) []byte {
	var head string
	if sender == "vev" {
		head = `{"id":"evt_bench","hosting":"host_1","event":"PUBLISH","payload":{"pages":[{"html":"`
	} else {
		head = `{"id":"evt_bench","event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"text":"`
	}
	tail := `"}]}}`
	if sender != "vev" {
		tail = `"}}`
	}
	chunk := `<div class=\"card\">Caf\u00e9 &amp; cr\u00e8me &lt;b&gt; é 日本 </div>\n`
	var b strings.Builder
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

// Handler provisions a webhook_verify handler for sender.
func Handler(tb testing.TB, sender string) *webhookverify.Handler {
	tb.Helper()
	var h webhookverify.Handler
	cfg := fmt.Sprintf(`{"provider": {"name": %q}, "secrets": [%q], "max_body_size": %d}`, sender, secret, 16<<20)
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

// rewindBody is a request body that can be read again after Rewind.
type rewindBody struct {
	b   []byte
	off int
}

func (r *rewindBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *rewindBody) Close() error { return nil }

var nop = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w nopWriter) WriteHeader(int)             {}

// BenchmarkHMAC is the physical limit of the verify step: crypto/hmac over
// the body, keyed once.
func BenchmarkHMAC(b *testing.B) {
	for _, s := range senders {
		for _, sz := range sizes {
			b.Run(s.name+"/"+sz.name, func(b *testing.B) {
				body := Event(s.name, sz.n)
				m := hmac.New(s.newMAC, []byte(secret))
				var sum [64]byte
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					m.Reset()
					m.Write(body)
					m.Sum(sum[:0])
				}
			})
		}
	}
}

// BenchmarkVerify is the handler's whole verify path: read the body into a
// pooled buffer while computing the HMAC, compare, hand it to next, and
// release the buffer when the request's context ends.
func BenchmarkVerify(b *testing.B) {
	for _, s := range senders {
		for _, sz := range sizes {
			b.Run(s.name+"/"+sz.name, func(b *testing.B) {
				h := Handler(b, s.name)
				body := Event(s.name, sz.n)
				m := hmac.New(s.newMAC, []byte(secret))
				m.Write(body)
				rb := &rewindBody{b: body}
				r, _ := http.NewRequest(http.MethodPost, "/hook", nil)
				r.Header.Set(s.header, s.prefix+hex.EncodeToString(m.Sum(nil)))
				w := nopWriter{h: http.Header{}}
				serve := func() {
					rb.off = 0
					ctx, cancel := context.WithCancel(context.Background())
					ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewEmptyReplacer())
					req := r.WithContext(ctx)
					req.Body = rb
					req.ContentLength = int64(len(body))
					if err := h.ServeHTTP(w, req, nop); err != nil {
						b.Fatal(err)
					}
					// The request is over: its buffer is released by a
					// goroutine that context.AfterFunc starts, which a
					// server's connection goroutine lets run when it
					// blocks reading the next request. Yield the same way.
					cancel()
					runtime.Gosched()
				}
				// steady state: each P's pools hold a buffer and keyed HMACs
				for range 16 {
					serve()
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					serve()
				}
			})
		}
	}
}

// BenchmarkPlaceholders measures reading {http.webhook.id}, event and
// hosting from a verified body: a scan of the top-level object.
func BenchmarkPlaceholders(b *testing.B) {
	for _, s := range senders {
		for _, sz := range sizes {
			b.Run(s.name+"/"+sz.name, func(b *testing.B) {
				body := Event(s.name, sz.n)
				var p providers.Provider = providers.Vivreal{}
				if s.name == "vev" {
					p = providers.Vev{}
				}
				vals := make([]string, len(p.Fields()))
				p.Describe(nil, body, vals)
				if vals[0] != "evt_bench" {
					b.Fatalf("id = %q", vals[0])
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					p.Describe(nil, body, vals)
				}
			})
		}
	}
}
