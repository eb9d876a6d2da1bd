package webhookverify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
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

// The handler's side of Vev's stringify_fallback, called directly.

func sfProvision(t *testing.T, extra string) *Handler {
	t.Helper()
	var h Handler
	cfg := `{"provider": {"name": "vev", "stringify_fallback": true}, "secrets": ["` + hSecret + `"]` + extra + `}`
	if err := json.Unmarshal([]byte(cfg), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return &h
}

func sfSign(text string) string {
	m := hmac.New(sha512.New, []byte(hSecret))
	m.Write([]byte(text))
	return "sha512=" + hex.EncodeToString(m.Sum(nil))
}

func sfRequest(ctx context.Context, body, signedText string) *http.Request {
	return hRequest(ctx, http.MethodPost, body, http.Header{
		"X-Vev-Signature": {sfSign(signedText)},
		"Content-Type":    {"application/json"},
	})
}

const (
	sfPretty  = "{\n  \"id\": \"e1\",\n  \"event\": \"PUBLISH\",\n  \"payload\": {\"html\": \"\\u003cp\\u003e\"}\n}"
	sfCompact = `{"id":"e1","event":"PUBLISH","payload":{"html":"<p>"}}`
)

// The verified request carries the signed text: body, GetBody,
// Content-Length and the placeholders; the raw body's buffer and bytes go
// back to the budget, and the text's when the request ends.
func TestSignedFormHandOver(t *testing.T) {
	h := sfProvision(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	r := sfRequest(ctx, sfPretty, sfCompact)
	rec := &hRecorder{}
	var getBody []byte
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		rc, err := r.GetBody()
		if err != nil {
			return err
		}
		getBody, _ = io.ReadAll(rc)
		// the raw body's bytes are back; the text's 4 KiB buffer is held
		if n := h.inflight.Load(); n != 4096 {
			t.Errorf("%d bytes reserved while the text is in flight, want its buffer's 4096", n)
		}
		return rec.ServeHTTP(w, r)
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	if string(rec.body) != sfCompact || string(getBody) != sfCompact {
		t.Fatalf("next got %q (GetBody %q), want the signed text %q", rec.body, getBody, sfCompact)
	}
	if rec.cl != int64(len(sfCompact)) || rec.hdr != strconv.Itoa(len(sfCompact)) {
		t.Fatalf("ContentLength %d, header %q; want %d", rec.cl, rec.hdr, len(sfCompact))
	}
	if f, _ := rec.repl.GetString("http.webhook.signed_form"); f != "stringify" {
		t.Fatalf("signed_form = %q", f)
	}
	if id, _ := rec.repl.GetString("http.webhook.id"); id != "e1" {
		t.Fatalf("id = %q", id)
	}
	cancel()
	sfWaitUnreserved(t, h)
}

// The raw body and the text are both held under max_inflight_bytes while
// the text is built: a budget that holds the raw body but not both answers
// 503 (and keeps nothing).
func TestSignedFormBudget(t *testing.T) {
	body := strings.Repeat(" ", 3000) + sfPretty // raw 3 KiB; text in a 4 KiB buffer
	h := sfProvision(t, `, "max_inflight_bytes": 6000`)
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, sfRequest(context.Background(), body, sfCompact), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusServiceUnavailable || !errors.Is(err, ErrOverBudget) {
		t.Fatalf("status %d (%v), want 503 over budget", got, err)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After on the 503")
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
	h = sfProvision(t, `, "max_inflight_bytes": 8192`)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &hRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), sfRequest(ctx, body, sfCompact), rec); err != nil {
		t.Fatalf("with room for both: %v", err)
	}
	cancel()
	sfWaitUnreserved(t, h)
}

// A forgery's stringify form is only written to the MACs, never built: a
// budget that holds the raw body (and the small staging buffer) but not
// the text refuses the forgery as any (401), where the genuine request,
// whose text is built once its MAC matched, gets the 503.
func TestSignedFormForgeryNoText(t *testing.T) {
	body := strings.Repeat(" ", 3000) + sfPretty // raw 3,085 bytes; text in a 4 KiB buffer
	h := sfProvision(t, `, "max_inflight_bytes": 7000`)
	err := h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), body, sfCompact+" "), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusUnauthorized || sfReason(err) != "no matching signature (nor over its stringify form)" {
		t.Fatalf("forgery: status %d (%v), want 401 nor over its stringify form", got, err)
	}
	err = h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), body, sfCompact), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusServiceUnavailable || !errors.Is(err, ErrOverBudget) {
		t.Fatalf("genuine: status %d (%v), want 503 over budget", got, err)
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
}

// Refusals: the reason says why the stringify form did not verify; a text
// over max_body_size is refused; without the option the reason is as for
// any sender.
func TestSignedFormRefusals(t *testing.T) {
	h := sfProvision(t, `, "max_body_size": 1000`)
	invalid := `{"s":"` + strings.Repeat("\xff", 400) + `"}` // each byte becomes U+FFFD: 3 bytes
	for _, tc := range []struct {
		name, body, signed, reason string
	}{
		{"wrong MAC", sfPretty, sfCompact + " ", "no matching signature (nor over its stringify form)"},
		{"not JSON", "{not json", "{not json}", "no matching signature (stringify form: body is not a JSON object or array JSON.parse accepts)"},
		{"already compact", sfCompact, sfCompact + "x", "no matching signature (stringify form: the body is in that form already)"},
		{"text over max_body_size", invalid, `{"s":"` + strings.Repeat("\uFFFD", 400) + `"}`, "no matching signature (stringify form: the text is over the size limit)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &hRecorder{}
			err := h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), tc.body, tc.signed), rec)
			if got := hStatus(t, err); got != http.StatusUnauthorized || rec.called != 0 {
				t.Fatalf("status %d, next called %d times", got, rec.called)
			}
			if !errors.Is(err, ErrNoMatchingSignature) || sfReason(err) != tc.reason {
				t.Fatalf("reason %q, want %q", err, tc.reason)
			}
			if n := h.inflight.Load(); n != 0 {
				t.Fatalf("%d bytes left reserved", n)
			}
		})
	}
	var off Handler
	if err := json.Unmarshal([]byte(`{"provider": {"name": "vev"}, "secrets": ["`+hSecret+`"]}`), &off); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := off.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	err := off.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), sfPretty, sfCompact), &hRecorder{})
	if hStatus(t, err) != http.StatusUnauthorized || sfReason(err) != ErrNoMatchingSignature.Error() {
		t.Fatalf("without the option: %v", err)
	}
}

// Under the fallback's Provision the vev provider keeps the option.
func TestSignedFormProvisionedOption(t *testing.T) {
	h := sfProvision(t, "")
	v, ok := h.provider.(*providers.Vev)
	if !ok || !v.StringifyFallback {
		t.Fatalf("provider %#v", h.provider)
	}
	if !bytes.Contains([]byte(sfCompact), []byte("PUBLISH")) {
		t.Fatal("fixture")
	}
}

// sfWaitUnreserved waits for the release that the request's context
// starts when it ends.
func sfWaitUnreserved(t *testing.T, h *Handler) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still reserved after the request ended", h.inflight.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// sfReason is a refusal's reason: {err.message}, and the log line's.
func sfReason(err error) string {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.Err.Error()
	}
	return err.Error()
}

// sfSpy counts the calls of the alternate form.
type sfSpy struct {
	*providers.Vev
	calls int
}

func (s *sfSpy) SignedText(h http.Header, body []byte, opt providers.TextOptions) ([]byte, string, error) {
	s.calls++
	return s.Vev.SignedText(h, body, opt)
}

// A body whose raw MAC matches never reaches the fallback: the option
// costs such a request nothing.
func TestSignedFormNotTriedWhenRawMatches(t *testing.T) {
	h := sfProvision(t, "")
	spy := &sfSpy{Vev: h.provider.(*providers.Vev)}
	h.provider = spy
	for _, tc := range []struct {
		body, signed string
		calls        int
		form         string
	}{
		{sfCompact, sfCompact, 0, "raw"},
		{sfPretty, sfPretty, 0, "raw"},
		{sfPretty, sfCompact, 1, "stringify"},
	} {
		spy.calls = 0
		rec := &hRecorder{}
		if err := h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), tc.body, tc.signed), rec); err != nil {
			t.Fatal(err)
		}
		if f, _ := rec.repl.GetString("http.webhook.signed_form"); spy.calls != tc.calls || f != tc.form || string(rec.body) != tc.signed {
			t.Fatalf("body %q signed over %q: %d calls, signed_form %q, forwarded %q", tc.body, tc.signed, spy.calls, f, rec.body)
		}
	}
}

// When the stringify form verified, the raw body's pooled buffer goes back
// to its free list once: listed twice, it would be handed to two requests
// at once. The raw body here fills its 4 KiB buffer exactly (a declared
// length of a class size), the case where a slice of it looks pooled too.
func TestSignedFormRawBufferFreedOnce(t *testing.T) {
	h := sfProvision(t, "")
	c, size := classFor(4096)
	body := sfPretty + strings.Repeat(" ", size-len(sfPretty))
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		r := sfRequest(ctx, body, sfCompact)
		if r.ContentLength != int64(size) {
			t.Fatalf("ContentLength %d, want %d", r.ContentLength, size)
		}
		rec := &hRecorder{}
		if err := h.ServeHTTP(httptest.NewRecorder(), r, rec); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		if string(rec.body) != sfCompact {
			t.Fatalf("next got %q", rec.body)
		}
		cancel()
		sfWaitUnreserved(t, h)
	}
	fl := &freeLists[c]
	fl.mu.Lock()
	defer fl.mu.Unlock()
	seen := map[*byte]bool{}
	for _, b := range fl.bufs {
		p := &b[:1][0]
		if seen[p] {
			t.Fatalf("a %d-byte buffer is in its free list twice", size)
		}
		seen[p] = true
	}
}

// sfManyKeys is a compact object of n distinct keys.
func sfManyKeys(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"e1","event":"PUBLISH"`)
	for k := range n {
		b.WriteString(`,"key-` + strconv.Itoa(k) + `":` + strconv.Itoa(k))
	}
	b.WriteString("}")
	return b.String()
}

// The transform's working memory (its records of the keys) is held under
// max_inflight_bytes too: an unsigned many-key body whose raw bytes fit
// the budget but whose keys do not is answered 503, and nothing stays
// reserved; with room, it is refused as any forgery. An object over
// StringifyMaxKeys is refused (401).
func TestSignedFormKeysBudget(t *testing.T) {
	body := sfManyKeys(50000) // ~700 KB; its keys' records take several MiB
	h := sfProvision(t, `, "max_body_size": 1048576, "max_inflight_bytes": 1048576`)
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, sfRequest(context.Background(), body, "forged"), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusServiceUnavailable || !errors.Is(err, ErrOverBudget) {
		t.Fatalf("status %d (%v), want 503 over budget", got, err)
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}

	h = sfProvision(t, `, "max_body_size": 1048576, "max_inflight_bytes": 16777216`)
	err = h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), body, "forged"), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusUnauthorized || !strings.Contains(sfReason(err), "the body is in that form already") {
		t.Fatalf("with room: status %d (%v), want 401 already in that form", got, err)
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
	// and a signed pretty one verifies within that budget
	pretty := strings.ReplaceAll(body, `,"`, ",\n  \"")
	ctx, cancel := context.WithCancel(context.Background())
	rec := &hRecorder{}
	if err := h.ServeHTTP(httptest.NewRecorder(), sfRequest(ctx, pretty, body), rec); err != nil {
		t.Fatalf("signed pretty body: %v", err)
	}
	if string(rec.body) != body {
		t.Fatal("next did not get the signed text")
	}
	cancel()
	sfWaitUnreserved(t, h)

	h = sfProvision(t, "")
	tooMany := sfManyKeys(providers.StringifyMaxKeys)
	err = h.ServeHTTP(httptest.NewRecorder(), sfRequest(context.Background(), " "+tooMany, tooMany), &hRecorder{})
	if got := hStatus(t, err); got != http.StatusUnauthorized || !strings.Contains(sfReason(err), "too many keys") {
		t.Fatalf("%d keys: status %d (%v), want 401 too many keys", providers.StringifyMaxKeys+2, got, err)
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes left reserved", n)
	}
}
