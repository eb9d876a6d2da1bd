package webhookverify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Fuzz targets of the handler and of the Caddyfile directive. They start no
// Caddy and listen on no port:
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 30s .
//	go test -run '^$' -fuzz '^FuzzUnmarshalCaddyfile$' -fuzztime 30s .
//
// The seed corpora are in testdata/fuzz/<FuzzName>/ and in the f.Add calls.

// fzProvider is one sender as the reference sees it: the header, the hash,
// the algorithm prefix and whether that prefix is required.
type fzProvider struct {
	name, header, prefix string
	prefixRequired       bool
	size                 int
	mac                  func(key, body []byte) []byte
}

var (
	fzVivreal = fzProvider{"vivreal", "X-Vivreal-Signature", "sha256=", false, sha256.Size,
		func(key, body []byte) []byte { m := hmac.New(sha256.New, key); m.Write(body); return m.Sum(nil) }}
	fzVev = fzProvider{"vev", "X-Vev-Signature", "sha512=", true, sha512.Size,
		func(key, body []byte) []byte { m := hmac.New(sha512.New, key); m.Write(body); return m.Sum(nil) }}
)

// fzRefDecode is the reference signature parser (see providers'
// fuzz_test.go for the same rules): one header value, trimmed of " \t\r\n",
// an optional or required algorithm prefix in any ASCII case, exactly
// 2*size hex digits in either case. It returns the decoded MAC, or the
// sentinel the handler's 401 must wrap.
func fzRefDecode(p fzProvider, value string) ([]byte, error) {
	v := strings.Trim(value, " \t\r\n")
	if v == "" {
		return nil, providers.ErrMissingSignature
	}
	if len(v) >= len(p.prefix) && fzASCIILower(v[:len(p.prefix)]) == p.prefix {
		v = v[len(p.prefix):]
	} else if p.prefixRequired {
		return nil, providers.ErrMalformedSignature
	}
	if len(v) != 2*p.size {
		return nil, providers.ErrMalformedSignature
	}
	mac := make([]byte, p.size)
	for i := range mac {
		hi, ok1 := fzHexDigit(v[2*i])
		lo, ok2 := fzHexDigit(v[2*i+1])
		if !ok1 || !ok2 {
			return nil, providers.ErrMalformedSignature
		}
		mac[i] = hi<<4 | lo
	}
	return mac, nil
}

// fzASCIILower lowers ASCII letters only (strings.ToLower would also fold
// some non-ASCII letters onto ASCII ones).
func fzASCIILower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func fzHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// fzSigValue formats mac as a sender might, by style: bare or prefixed (a
// Vev value is always prefixed), lower or upper case, with or without
// surrounding optional white space.
func fzSigValue(p fzProvider, mac []byte, style byte) string {
	v := hex.EncodeToString(mac)
	if style&1 != 0 {
		v = strings.ToUpper(v)
	}
	if p.prefixRequired || style&2 != 0 {
		prefix := p.prefix
		if style&4 != 0 {
			prefix = strings.ToUpper(prefix)
		}
		v = prefix + v
	}
	if style&8 != 0 {
		v = " \t" + v + " "
	}
	return v
}

// fzMutate changes one byte of v, chosen by mutate: mutate 0 changes
// nothing; otherwise byte mutate&0x7f (mod len) is XORed with 0x20 (a case
// flip, harmless on a hex letter or the prefix) when the high bit is set,
// else with 0x01 (another digit, or not hex at all).
func fzMutate(v string, mutate byte) string {
	if mutate == 0 || v == "" {
		return v
	}
	b := []byte(v)
	i := int(mutate&0x7f) % len(b)
	if mutate&0x80 != 0 {
		b[i] ^= 0x20
	} else {
		b[i] ^= 0x01
	}
	return string(b)
}

// fzPieceReader hands out its bytes n at a time, as a chunked body arrives;
// with eofWithData the last piece comes with io.EOF.
type fzPieceReader struct {
	b           []byte
	n           int
	eofWithData bool
}

func (r *fzPieceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	if len(r.b) == 0 && r.eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// fzRecorder is a next handler that records what it was given.
type fzRecorder struct {
	called int
	body   []byte
	cl     int64
	hdr    string
	te     []string
	repl   *caddy.Replacer
	vb     *verifiedBody // the body next was given
}

func (rec *fzRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	rec.called++
	rec.cl = r.ContentLength
	rec.hdr = r.Header.Get("Content-Length")
	rec.te = r.TransferEncoding
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	rec.body = b
	rec.repl = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if br, ok := r.Body.(*bodyReader); ok {
		rec.vb = br.b
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// fzProvision provisions a handler of provider p with one secret and the
// given max_body_size, logging into an observer.
func fzProvision(ctx caddy.Context, p fzProvider, secret string, maxBody int64) (*Handler, *observer.ObservedLogs, error) {
	h := &Handler{
		ProviderRaw: json.RawMessage(`{"name":"` + p.name + `"}`),
		Secrets:     plainSecrets(secret),
		MaxBodySize: maxBody,
	}
	if err := h.Provision(ctx); err != nil {
		return nil, nil, fmt.Errorf("provision with a %d-byte secret: %v", len(secret), err)
	}
	if err := h.Validate(); err != nil {
		return nil, nil, fmt.Errorf("validate: %v", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	h.logger = zap.New(core)
	return h, logs, nil
}

// fzCtx is the Caddy context the fuzzed handlers are provisioned in: a
// new context (with its metrics registry) costs far more than provisioning
// a handler and serving its requests. It keeps every module loaded in it,
// so it is renewed after 1024 handlers.
var fzCtx struct {
	sync.Mutex
	ctx    caddy.Context
	cancel context.CancelFunc
	n      int
}

// fzNewHandler provisions a handler of provider p with one secret and the
// given max_body_size in the shared context.
func fzNewHandler(t *testing.T, p fzProvider, secret string, maxBody int64) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	fzCtx.Lock()
	defer fzCtx.Unlock()
	if fzCtx.cancel == nil || fzCtx.n >= 1024 {
		if fzCtx.cancel != nil {
			fzCtx.cancel()
		}
		fzCtx.ctx, fzCtx.cancel = caddy.NewContext(caddy.Context{Context: context.Background()})
		fzCtx.n = 0
	}
	fzCtx.n++
	h, logs, err := fzProvision(fzCtx.ctx, p, secret, maxBody)
	if err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// fzServe sends body with the signature header value through h; chunked
// sends it without a length, in pieces of piece bytes.
func fzServe(ctx context.Context, h *Handler, p fzProvider, body []byte, value string,
	chunked bool, piece int, eofWithData bool) (*fzRecorder, error) {
	r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	r.Header.Set(p.header, value)
	if chunked {
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		r.Header.Del("Content-Length")
		r.Body = io.NopCloser(&fzPieceReader{b: body, n: piece, eofWithData: eofWithData})
	}
	r = r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer()))
	rec := &fzRecorder{}
	err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
	return rec, err
}

// fzCheck checks one request's outcome against the reference: next runs
// iff the body is within max_body_size and the reference decodes the
// header value to the reference MAC.
func fzCheck(t *testing.T, h *Handler, logs *observer.ObservedLogs, p fzProvider, what string,
	body, refMAC []byte, value string, rec *fzRecorder, err error) {
	t.Helper()
	cand, refErr := fzRefDecode(p, value)
	tooLarge := int64(len(body)) > h.MaxBodySize
	want := !tooLarge && refErr == nil && hmac.Equal(refMAC, cand)
	entries := logs.TakeAll()

	if want {
		if err != nil || rec.called != 1 {
			t.Fatalf("%s: header %q, %d-byte body: err %v, next called %d times; the reference verifies it",
				what, value, len(body), err, rec.called)
		}
		if !bytes.Equal(rec.body, body) {
			t.Fatalf("%s: next got body %q, want %q", what, rec.body, body)
		}
		if rec.cl != int64(len(body)) || rec.hdr != strconv.Itoa(len(body)) || rec.te != nil {
			t.Fatalf("%s: next got ContentLength %d, Content-Length %q, TransferEncoding %q; want %d",
				what, rec.cl, rec.hdr, rec.te, len(body))
		}
		if v, _ := rec.repl.GetString("http.webhook.provider"); v != p.name {
			t.Fatalf("%s: {http.webhook.provider} = %q", what, v)
		}
		// reading a field scans the fuzzed body: it must not panic
		rec.repl.GetString("http.webhook.id")
		rec.repl.GetString("http.webhook.event")
		if len(entries) != 0 {
			t.Fatalf("%s: a verified request logged %d lines", what, len(entries))
		}
		return
	}

	if rec.called != 0 {
		t.Fatalf("%s: header %q, %d-byte body (limit %d): next was called; the reference refuses it (%v)",
			what, value, len(body), h.MaxBodySize, refErr)
	}
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("%s: refused with %T %v, want a caddyhttp.HandlerError", what, err, err)
	}
	wantStatus, wantReason := http.StatusUnauthorized, ErrNoMatchingSignature
	switch {
	case tooLarge:
		wantStatus, wantReason = http.StatusRequestEntityTooLarge, ErrBodyTooLarge
	case refErr != nil:
		wantReason = refErr
	}
	if he.StatusCode != wantStatus || !errors.Is(err, wantReason) {
		t.Fatalf("%s: header %q, %d-byte body (limit %d): refused %d %v, want %d %v",
			what, value, len(body), h.MaxBodySize, he.StatusCode, err, wantStatus, wantReason)
	}
	if len(entries) != 1 {
		t.Fatalf("%s: a refusal logged %d lines, want 1", what, len(entries))
	}
	expected := hex.EncodeToString(refMAC)
	texts := []string{err.Error(), entries[0].Message}
	for _, v := range entries[0].ContextMap() {
		texts = append(texts, strings.TrimSpace(strings.ReplaceAll(fzText(v), "\n", " ")))
	}
	for _, s := range texts {
		if strings.Contains(strings.ToLower(s), expected) {
			t.Fatalf("%s: the refusal reveals the expected signature: %q", what, s)
		}
	}
}

func fzText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// fzWaitReleased waits until the verified bodies' buffers are released
// (once their request contexts end, in a goroutine of its own) and checks
// that every byte reserved under max_inflight_bytes was given back.
func fzWaitReleased(t *testing.T, h *Handler, bodies ...*verifiedBody) {
	t.Helper()
	released := func(b *verifiedBody) bool {
		b.mu.Lock() // held for the whole of release
		defer b.mu.Unlock()
		return b.released
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, b := range bodies {
		for i := 0; b != nil && !released(b); i++ {
			if i < 1000 {
				runtime.Gosched()
				continue
			}
			if time.Now().After(deadline) {
				t.Fatal("a verified body's buffer was not released when its request ended")
			}
			time.Sleep(time.Millisecond)
		}
	}
	if n := h.inflight.Load(); n != 0 {
		t.Fatalf("%d bytes still reserved under max_inflight_bytes after the requests ended", n)
	}
}

// FuzzVerify sends body through a provisioned handler twice: once signed
// by the reference (crypto/hmac in this file) and once with sigHex, or
// when sigHex is empty the reference signature changed by mutate. The
// handler must call next exactly when the reference verifies the request,
// forward the body byte for byte with its length, and otherwise refuse
// with a caddyhttp.HandlerError: 413 over max_body_size (1 + limit%8192),
// else 401.
//
// mutate also picks the correct signature's formatting (fzSigValue) and,
// for a chunked body, the size of the pieces it arrives in.
func FuzzVerify(f *testing.F) {
	vivMAC := fzVivreal.mac([]byte("fuzz-secret"), []byte(`{"id":"evt_1","event":"ping"}`))
	vevMAC := fzVev.mac([]byte("fuzz-secret"), []byte(`{"id":"v1","event":"PING","hosting":"h"}`))
	for _, s := range []struct {
		body         string
		secret, sig  string
		mutate       byte
		chunked, vev bool
		limit        uint16
	}{
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", "", 0, false, false, 4095},
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", "sha256=" + hex.EncodeToString(vivMAC), 0, false, false, 4095},
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", strings.ToUpper(hex.EncodeToString(vivMAC)), 0, true, false, 4095},
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", "", 0x85, true, false, 4095},
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", "", 0x05, false, false, 4095},
		{`{"id":"evt_1","event":"ping"}`, "fuzz-secret", "sha1=00", 0, false, false, 4095},
		{`{"id":"v1","event":"PING","hosting":"h"}`, "fuzz-secret", "sha512=" + hex.EncodeToString(vevMAC), 0, false, true, 4095},
		{`{"id":"v1","event":"PING","hosting":"h"}`, "fuzz-secret", hex.EncodeToString(vevMAC), 0, false, true, 4095},
		{`{"id":"v1","event":"PING","hosting":"h"}`, "fuzz-secret", "", 0x0a, true, true, 4095},
		{"", "k", "", 0, false, false, 0},
		{"", "k", "", 0, true, true, 0},
		{"ab", "k", "", 3, true, false, 0},
		{strings.Repeat("x", 64), "key", "", 0, true, false, 63},
		{strings.Repeat("x", 64), "key", "", 0, false, true, 63},
		{strings.Repeat("x", 65), "key", "", 0, true, false, 63},
		{strings.Repeat("y", 5000), "key", "", 0x40, true, false, 4095},
		{strings.Repeat("y", 4097), "key", "", 0, false, false, 4096},
		{strings.Repeat("z", 8192), "\\x\x00\xff", "", 0x7f, true, true, 8191},
		{`{"id":"\u0000","event":[1,{"a":"}"}]}`, "s", "", 0, false, false, 100},
	} {
		f.Add([]byte(s.body), s.secret, s.sig, s.mutate, s.chunked, s.vev, s.limit)
	}
	f.Fuzz(func(t *testing.T, body []byte, secret, sigHex string, mutate byte, chunked, vev bool, limit uint16) {
		if secret == "" || strings.ContainsAny(secret, "{}") {
			return // an empty secret is refused; braces are placeholders, resolved at provision
		}
		p := fzVivreal
		if vev {
			p = fzVev
		}
		maxBody := 1 + int64(limit%8192)
		h, logs := fzNewHandler(t, p, secret, maxBody)
		refMAC := p.mac([]byte(secret), body)
		piece := 1 + int(mutate%64)
		eofWithData := mutate&0x40 != 0

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		correct := fzSigValue(p, refMAC, mutate)
		rec1, err := fzServe(ctx, h, p, body, correct, chunked, piece, eofWithData)
		fzCheck(t, h, logs, p, "correct signature", body, refMAC, correct, rec1, err)

		cand := sigHex
		if cand == "" {
			cand = fzMutate(fzSigValue(p, refMAC, mutate>>4), mutate)
		}
		rec2, err := fzServe(ctx, h, p, body, cand, chunked, piece, eofWithData)
		fzCheck(t, h, logs, p, "candidate signature", body, refMAC, cand, rec2, err)

		cancel() // the request is over: the verified buffers go back to their pool
		fzWaitReleased(t, h, rec1.vb, rec2.vb)
	})
}

// fzErrLine finds the file and line an UnmarshalCaddyfile error names.
var fzErrLine = regexp.MustCompile(`Testfile:(\d+)`)

// FuzzUnmarshalCaddyfile parses "webhook_verify " + input as the directive.
// It must not panic; a success has a known provider, one or more secrets,
// none empty, and sizes that are not negative; an error names a line of
// the input.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, s := range []string{
		"vivreal {env.VIVREAL_SECRET}",
		"vev s3cret",
		"vivreal {\n\tsecret a\n\tsecret b\n}",
		"vivreal a {\n\tmax_body_size 1MiB\n\tmax_inflight_bytes 64MiB\n\tbasic_auth u p\n\tbearer_token t\n}",
		"vev {file./run/secret} {\n\tdedupe 72h {\n\t\tstore redis redis://localhost:6379/0\n\t\tkey_prefix wv:\n\t\tinflight_ttl 30s\n\t\trequire_id\n\t}\n}",
		"vivreal a {\n\tdedupe {\n\t\tstore memory\n\t\tmax_entries 10\n\t}\n}",
		"",
		"nope s",
		"vivreal",
		"vivreal \"\"",
		"vivreal a b",
		"vivreal {\n\tsecret\n}",
		"vivreal a {\n\tmax_body_size 0\n}",
		"vivreal a {\n\tmax_body_size 2TiB\n}",
		"vivreal a {\n\tmax_body_size -1\n}",
		"vivreal a {\n\tmax_body_size 1KB\n\tmax_body_size 2KB\n}",
		"vivreal a {\n\tbasic_auth u\n}",
		"vivreal a {\n\tunknown x\n}",
		"vivreal a {\n\tdedupe 0s\n}",
		"vivreal a {\n\tdedupe 1s {\n\t\tinflight_ttl 2s\n\t}\n}",
		"vivreal a {\n\tdedupe {\n\t\tstore redis redis://x\n\t\tmax_entries 5\n\t}\n}",
		"vivreal `a b` {\n\tsecret \"c d\"\n}",
		"vivreal a {\n}\nwebhook_verify vev b",
		"vivreal <<EOF\nsecret\nEOF",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		src := "webhook_verify " + input
		// caddyfile.NewTestDispenser would log.Fatal on a lexer error (an
		// unterminated quote, a bad heredoc): tokenize the same way, but
		// leave inputs the lexer refuses to the lexer's own tests.
		tokens, err := caddyfile.Tokenize([]byte(src), "Testfile")
		if err != nil {
			return
		}
		h := new(Handler)
		err = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
		if err != nil {
			m := fzErrLine.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error names no line: %v", err)
			}
			line, _ := strconv.Atoi(m[1])
			if lines := strings.Count(src, "\n") + 1; line < 1 || line > lines {
				t.Fatalf("error names line %d of a %d-line input: %v", line, lines, err)
			}
			return
		}
		if len(h.Secrets) == 0 {
			t.Fatal("accepted without a secret")
		}
		for i, s := range h.Secrets {
			if s.Value == "" {
				t.Fatalf("secret %d is empty", i+1)
			}
		}
		var prov struct {
			Name *string `json:"name"`
		}
		if err := json.Unmarshal(h.ProviderRaw, &prov); err != nil || prov.Name == nil {
			t.Fatalf("provider JSON %s has no name (%v)", h.ProviderRaw, err)
		}
		if _, err := caddy.GetModule(providers.Namespace + "." + *prov.Name); err != nil {
			t.Fatalf("provider %q is not a registered sender: %v", *prov.Name, err)
		}
		if h.MaxBodySize < 0 || h.MaxInflightBytes < 0 {
			t.Fatalf("negative sizes: max_body_size %d, max_inflight_bytes %d", h.MaxBodySize, h.MaxInflightBytes)
		}
		if h.Dedupe != nil && (h.Dedupe.TTL < 0 || h.Dedupe.InflightTTL < 0 || h.Dedupe.MaxEntries < 0) {
			t.Fatalf("negative dedupe settings: %+v", *h.Dedupe)
		}
		// the result is the JSON config Caddy loads: it must round-trip
		raw, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Handler
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		if again, _ := json.Marshal(&back); !bytes.Equal(again, raw) {
			t.Fatalf("JSON does not round-trip:\n%s\n%s", raw, again)
		}
	})
}
