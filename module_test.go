package webhookverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

const hSecret = "handler-test-secret"

func hSign(body string) string {
	m := hmac.New(sha256.New, []byte(hSecret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// hProvision provisions a vivreal handler from JSON fields.
func hProvision(t *testing.T, extra string) *Handler {
	t.Helper()
	var h Handler
	cfg := `{"provider": {"name": "vivreal"}, "secrets": ["` + hSecret + `"]` + extra + `}`
	if err := json.Unmarshal([]byte(cfg), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return &h
}

// hRecorder is a next handler that records what it was given.
type hRecorder struct {
	called int
	body   []byte
	cl     int64
	te     []string
	hdr    string
	repl   *caddy.Replacer
}

func (rec *hRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	rec.called++
	rec.cl = r.ContentLength
	rec.te = r.TransferEncoding
	rec.hdr = r.Header.Get("Content-Length")
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	rec.body = b
	rec.repl = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func hRequest(ctx context.Context, method, body string, header http.Header) *http.Request {
	r := httptest.NewRequest(method, "/hook", strings.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	repl := caddy.NewReplacer()
	ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, repl)
	return r.WithContext(ctx)
}

func hStatus(t *testing.T, err error) int {
	t.Helper()
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("want a caddyhttp.HandlerError, got %T %v", err, err)
	}
	return he.StatusCode
}

func TestHandlerForwardsVerifiedBody(t *testing.T) {
	h := hProvision(t, "")
	body := `{"id":"evt_1","event":"collection.object.created","data":{"n":1}}`
	for _, chunked := range []bool{false, true} {
		r := hRequest(context.Background(), http.MethodPost, body, http.Header{"X-Vivreal-Signature": {"sha256=" + hSign(body)}})
		if chunked {
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			r.Header.Del("Content-Length")
		}
		rec := &hRecorder{}
		if err := h.ServeHTTP(httptest.NewRecorder(), r, rec); err != nil {
			t.Fatalf("chunked=%v: %v", chunked, err)
		}
		if rec.called != 1 || !bytes.Equal(rec.body, []byte(body)) {
			t.Fatalf("chunked=%v: next got %q (%d calls)", chunked, rec.body, rec.called)
		}
		if rec.cl != int64(len(body)) || rec.hdr != strconv.Itoa(len(body)) || rec.te != nil {
			t.Fatalf("chunked=%v: ContentLength %d, header %q, TE %v", chunked, rec.cl, rec.hdr, rec.te)
		}
		if v, _ := rec.repl.GetString("http.webhook.provider"); v != "vivreal" {
			t.Fatalf("provider placeholder %q", v)
		}
		if v, _ := rec.repl.GetString("http.webhook.id"); v != "evt_1" {
			t.Fatalf("id placeholder %q", v)
		}
		if v, _ := rec.repl.GetString("http.webhook.event"); v != "collection.object.created" {
			t.Fatalf("event placeholder %q", v)
		}
	}
}

func TestHandlerRejections(t *testing.T) {
	h := hProvision(t, `, "max_body_size": 64, "bearer_tokens": ["tok"]`)
	good := `{"id":"a"}`
	auth := http.Header{"Authorization": {"Bearer tok"}}
	sig := func(s string) http.Header {
		return http.Header{"Authorization": {"Bearer tok"}, "X-Vivreal-Signature": {s}}
	}
	cases := []struct {
		name, method, body string
		header             http.Header
		status             int
		want               error
	}{
		{"get", http.MethodGet, "", sig(hSign("")), 405, ErrMethodNotAllowed},
		{"no credentials", http.MethodPost, good, http.Header{"X-Vivreal-Signature": {hSign(good)}}, 401, ErrBadCredentials},
		{"wrong token", http.MethodPost, good, http.Header{"Authorization": {"Bearer nope"}, "X-Vivreal-Signature": {hSign(good)}}, 401, ErrBadCredentials},
		{"missing signature", http.MethodPost, good, auth, 401, providers.ErrMissingSignature},
		{"malformed signature", http.MethodPost, good, sig("zz"), 401, providers.ErrMalformedSignature},
		{"wrong signature", http.MethodPost, good, sig(hSign(good + " ")), 401, ErrNoMatchingSignature},
		{"too large", http.MethodPost, strings.Repeat("x", 65), sig(hSign(strings.Repeat("x", 65))), 413, ErrBodyTooLarge},
		{"too large, no signature", http.MethodPost, strings.Repeat("x", 65), auth, 413, ErrBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			rec := &hRecorder{}
			err := h.ServeHTTP(w, hRequest(context.Background(), c.method, c.body, c.header), rec)
			if got := hStatus(t, err); got != c.status {
				t.Fatalf("status %d, want %d (%v)", got, c.status, err)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if rec.called != 0 {
				t.Fatal("next was called for a refused request")
			}
			if strings.Contains(err.Error(), hSecret) || strings.Contains(err.Error(), hSign(c.body)) {
				t.Fatalf("error leaks a secret or the expected signature: %v", err)
			}
			switch c.status {
			case 405:
				if w.Header().Get("Allow") != "POST" {
					t.Fatalf("Allow = %q", w.Header().Get("Allow"))
				}
			case 401:
				if c.want == ErrBadCredentials && w.Header().Get("WWW-Authenticate") != `Bearer realm="webhook"` {
					t.Fatalf("WWW-Authenticate = %q", w.Header().Values("WWW-Authenticate"))
				}
			}
		})
	}
}

// A refused chunked body over the limit is 413 even without a signature,
// and one within the limit is 401: the size decides first.
func TestHandlerChunkedUnsignedSize(t *testing.T) {
	h := hProvision(t, `, "max_body_size": 64`)
	for size, want := range map[int]int{64: 401, 65: 413} {
		r := hRequest(context.Background(), http.MethodPost, strings.Repeat("x", size), nil)
		r.ContentLength = -1
		if got := hStatus(t, h.ServeHTTP(httptest.NewRecorder(), r, &hRecorder{})); got != want {
			t.Errorf("size %d: status %d, want %d", size, got, want)
		}
	}
}

// countingProvider wraps Vivreal and counts Describe calls.
type countingProvider struct {
	providers.Vivreal
	describes int
}

func (p *countingProvider) Describe(h http.Header, body []byte, vals []string) {
	p.describes++
	p.Vivreal.Describe(h, body, vals)
}

func TestHandlerPlaceholdersAreLazy(t *testing.T) {
	h := hProvision(t, "")
	cp := &countingProvider{}
	h.provider = cp
	body := `{"id":"lazy","event":"e"}`
	header := http.Header{"X-Vivreal-Signature": {hSign(body)}}

	rec := &hRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), hRequest(context.Background(), http.MethodPost, body, header), rec); err != nil {
		t.Fatal(err)
	}
	if cp.describes != 0 {
		t.Fatalf("body parsed %d times though no placeholder was read", cp.describes)
	}
	for range 3 {
		if v, _ := rec.repl.GetString("http.webhook.id"); v != "lazy" {
			t.Fatalf("id = %q", v)
		}
		if v, _ := rec.repl.GetString("http.webhook.event"); v != "e" {
			t.Fatalf("event = %q", v)
		}
	}
	if cp.describes != 1 {
		t.Fatalf("body parsed %d times, want once", cp.describes)
	}
	if _, ok := rec.repl.Get("http.webhook.hosting"); ok {
		t.Fatal("vivreal has no hosting placeholder")
	}
}

// The buffer lives until the request's context ends: placeholders read
// after next returned (an access log) still work; after the request is
// over, the body reads nothing and the buffer is back in its pool.
func TestHandlerBufferReleasedWithRequest(t *testing.T) {
	h := hProvision(t, "")
	body := `{"id":"late","event":"e"}`
	ctx, cancel := context.WithCancel(context.Background())
	r := hRequest(ctx, http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hSign(body)}})
	var got *verifiedBody
	var gotBody io.Reader
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		gotBody = r.Body
		got = r.Body.(*bodyReader).b
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if v, _ := repl.GetString("http.webhook.id"); v != "late" {
		t.Fatalf("id after next returned = %q", v)
	}
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got.mu.Lock()
		released := got.released
		got.mu.Unlock()
		if released {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("buffer not released when the request context ended")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := gotBody.Read(make([]byte, 8)); !errors.Is(err, errBodyReleased) {
		t.Fatalf("read after release: %v", err)
	}
}

func TestHandlerRotation(t *testing.T) {
	h := hProvision(t, `, "secrets": ["old-secret", "new-secret"]`)
	body := `{"id":"r"}`
	for secret, want := range map[string]bool{"old-secret": true, "new-secret": true, hSecret: false} {
		m := hmac.New(crypto.SHA256.New, []byte(secret))
		m.Write([]byte(body))
		r := hRequest(context.Background(), http.MethodPost, body, http.Header{"X-Vivreal-Signature": {hex.EncodeToString(m.Sum(nil))}})
		err := h.ServeHTTP(httptest.NewRecorder(), r, &hRecorder{})
		if (err == nil) != want {
			t.Errorf("secret %q: err %v, want pass=%v", secret, err, want)
		}
	}
}
