// Package webhookverify is a Caddy HTTP handler that verifies signed
// webhooks (Vivreal, Vev, and more senders in package providers) and hands
// the genuine ones, body intact, to the next handler, usually reverse_proxy.
package webhookverify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/dedupe"
	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the limits.
const (
	DefaultMaxBodySize      int64 = 10 << 20  // a webhook's body: 10 MiB
	DefaultMaxInflightBytes int64 = 256 << 20 // all bodies held at once: 256 MiB
	DefaultBodyTimeout            = 30 * time.Second
	maxMaxBodySize          int64 = 1 << 30 // 1 GiB: a webhook, not an upload
	retryAfter503                 = "5"     // seconds, when memory or the store is short
)

// Handler verifies a webhook sender's HMAC signature, and optionally the
// endpoint's Basic or Bearer credentials, before the next handler runs.
//
// It answers, as a caddyhttp.Error that the site's handle_errors can shape:
// 405 (with Allow: POST) for any method but POST; 401 (with a
// WWW-Authenticate challenge per configured scheme) for missing or wrong
// credentials, checked before the body is read; 413 for a body over
// max_body_size, nothing being forwarded; 401 for a missing, repeated,
// malformed or wrong signature. Each refusal is logged once with the
// provider, the reason and the remote address.
//
// A verified request reaches the next handler (reverse_proxy, typically)
// with its body byte for byte as received and Content-Length set, and with
// these placeholders: {http.webhook.provider}, {http.webhook.id},
// {http.webhook.event}, and the sender's own (Vev: {http.webhook.hosting}).
// The event fields are read from the body only if a placeholder is used.
type Handler struct {
	// The webhook sender, a module in the http.webhook_verify.providers
	// namespace chosen with the inline key "name": {"name": "vivreal"}.
	ProviderRaw json.RawMessage `json:"provider,omitempty" caddy:"namespace=http.webhook_verify.providers inline_key=name"`

	// The secrets the sender signs with. Any one verifies a request, so a
	// secret is rotated by adding the new one, switching the sender, then
	// removing the old one. Placeholders such as {env.VIVREAL_SECRET} or
	// {file./run/secrets/vivreal} are resolved once, at provision time; a
	// secret that resolves empty is an error, never an empty key.
	Secrets []string `json:"secrets,omitempty"`

	// The largest body accepted, in bytes; a larger one is answered 413
	// before it is buffered whole. Default: 10 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Endpoint credentials a request must carry as Authorization: Basic.
	// With bearer_tokens also set, either one passes. Placeholders are
	// resolved at provision time.
	BasicAuth []BasicAccount `json:"basic_auth,omitempty"`

	// Endpoint tokens a request must carry as Authorization: Bearer. With
	// basic_auth also set, either one passes. Placeholders are resolved at
	// provision time.
	BearerTokens []string `json:"bearer_tokens,omitempty"`

	// How long a body may take to arrive, from the end of the headers; a
	// slower one gets 408 and its reservation under max_inflight_bytes is
	// returned. Senders give up after 20 s (Vev) or 30 s (Vivreal).
	// Default: 30s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// The most body bytes this handler holds at once, over all requests;
	// a body that would pass it is refused with 503 and Retry-After before
	// it is buffered (by its Content-Length, or as a chunked body is read).
	// Anyone can send large bodies without knowing the secret: this bounds
	// the memory they take. Must be at least max_body_size. Default: 256 MiB.
	MaxInflightBytes int64 `json:"max_inflight_bytes,omitempty"`

	// Deliver each event to the next handler once, by its id. Off unless
	// set; see Dedupe.
	Dedupe *Dedupe `json:"dedupe,omitempty"`

	provider providers.Provider
	name     string   // the provider's module name, e.g. "vivreal"
	fields   []string // "http.webhook.<field>" for each provider field
	idIndex  int      // index of "id" in fields, or -1
	keys     *keyring
	creds    credentials
	inflight *atomic.Int64 // bytes reserved under MaxInflightBytes
	metrics  *handlerMetrics
	now      func() time.Time // the providers' clock; swapped in tests
	logger   *zap.Logger
}

// BasicAccount is one user name and password for HTTP Basic credentials.
type BasicAccount struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_verify",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads the provider and resolves the secrets and credentials.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.MaxInflightBytes == 0 {
		h.MaxInflightBytes = max(DefaultMaxInflightBytes, h.MaxBodySize)
	}
	if h.BodyTimeout == 0 {
		h.BodyTimeout = caddy.Duration(DefaultBodyTimeout)
	}
	h.inflight = new(atomic.Int64)
	if h.ProviderRaw == nil {
		return fmt.Errorf("no provider: set \"provider\": {\"name\": \"vivreal\"} (or another sender)")
	}
	mod, err := ctx.LoadModule(h, "ProviderRaw")
	if err != nil {
		return fmt.Errorf("loading webhook provider (available: %s): %v", strings.Join(providerNames(), ", "), err)
	}
	p, ok := mod.(providers.Provider)
	if !ok {
		return fmt.Errorf("module %s is not a webhook provider", caddy.GetModuleID(mod))
	}
	h.provider = p
	h.name = caddy.GetModuleName(p)
	if h.metrics, err = newHandlerMetrics(ctx, h.name); err != nil {
		return fmt.Errorf("%s: registering metrics: %v", h.name, err)
	}
	h.fields = make([]string, len(p.Fields()))
	h.idIndex = -1
	for i, f := range p.Fields() {
		h.fields[i] = placeholderPrefix + f
		if f == "id" {
			h.idIndex = i
		}
	}

	repl := caddy.NewReplacer()
	if len(h.Secrets) == 0 {
		return fmt.Errorf("%s: no secret: add one, e.g. \"secrets\": [\"{env.%s_SECRET}\"]", h.name, strings.ToUpper(h.name))
	}
	keys := make([][]byte, len(h.Secrets))
	for i, s := range h.Secrets {
		v, err := resolve(repl, s, fmt.Sprintf("secret %d", i+1))
		if err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		keys[i] = []byte(v)
		if kd, ok := p.(providers.KeyDecoder); ok {
			if keys[i], err = kd.Key(v); err != nil {
				return fmt.Errorf("%s: secret %d: %v", h.name, i+1, err)
			}
		}
	}
	h.keys = newKeyring(keys)

	for i, a := range h.BasicAuth {
		what := fmt.Sprintf("basic_auth %d", i+1)
		user, err := resolve(repl, a.Username, what+" user")
		if err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		pass, err := resolve(repl, a.Password, what+" password")
		if err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		h.creds.addBasic(user, pass)
	}
	for i, t := range h.BearerTokens {
		tok, err := resolve(repl, t, fmt.Sprintf("bearer token %d", i+1))
		if err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		h.creds.addBearer(tok)
	}
	if h.Dedupe != nil {
		if h.idIndex < 0 {
			return fmt.Errorf("%s: dedupe needs an event id, and this provider has none", h.name)
		}
		if err := h.Dedupe.provision(h); err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
	}
	return nil
}

// Cleanup releases the dedupe store (kept while another config uses it).
func (h *Handler) Cleanup() error {
	if h.Dedupe != nil {
		return h.Dedupe.cleanup()
	}
	return nil
}

// resolve replaces the placeholders in a configured secret. A value that
// resolves empty, or holds a placeholder Caddy does not know, is an error
// that names the {env.*} or {file.*} placeholder and never a value.
func resolve(repl *caddy.Replacer, raw, what string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	// an unknown placeholder is a different mistake from an empty one
	if _, err := repl.ReplaceOrErr(raw, false, true); err != nil {
		return "", fmt.Errorf("%s has a placeholder Caddy does not know: use {env.NAME} or {file./path}, or escape literal braces as \\{ and \\}", what)
	}
	v, err := repl.ReplaceOrErr(raw, true, false)
	if err != nil || v == "" {
		hint := ""
		if strings.Contains(raw, "{env.") {
			hint = ": set the environment variable in Caddy's environment"
		} else if strings.Contains(raw, "{file.") {
			hint = ": check that the file exists, is readable and is not empty"
		}
		return "", fmt.Errorf("%s %s resolves to an empty string%s", what, placeholdersIn(raw), hint)
	}
	return v, nil
}

// placeholdersIn lists the {env.*} and {file.*} placeholders in s: names,
// never values.
func placeholdersIn(s string) string {
	var out []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		if ph := s[i : i+j+1]; strings.HasPrefix(ph, "{env.") || strings.HasPrefix(ph, "{file.") {
			out = append(out, ph)
		}
		s = s[i+j+1:]
	}
	if len(out) == 0 {
		return "(a literal value)"
	}
	return strings.Join(out, " ")
}

// Validate checks the configuration.
func (h Handler) Validate() error {
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must be positive, not %d", h.MaxBodySize)
	}
	if h.MaxBodySize > maxMaxBodySize {
		return fmt.Errorf("max_body_size %d is over the 1 GiB this module buffers", h.MaxBodySize)
	}
	if h.BodyTimeout < 0 {
		return fmt.Errorf("body_timeout must be positive")
	}
	if h.MaxInflightBytes != 0 && h.MaxInflightBytes < h.MaxBodySize {
		return fmt.Errorf("max_inflight_bytes (%d) is smaller than max_body_size (%d): no body of the largest size could ever be held", h.MaxInflightBytes, h.MaxBodySize)
	}
	return nil
}

const placeholderPrefix = "http.webhook."

// ServeHTTP verifies the request and calls next only for a genuine webhook.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		closeUnread(w, r)
		return h.reject(r, http.StatusMethodNotAllowed, ErrMethodNotAllowed)
	}
	if !h.creds.empty() && !h.creds.check(r.Header.Get("Authorization")) {
		h.creds.challenge(w.Header())
		closeUnread(w, r)
		return h.reject(r, http.StatusUnauthorized, ErrBadCredentials)
	}
	if r.ContentLength > h.MaxBodySize {
		closeUnread(w, r)
		return h.reject(r, http.StatusRequestEntityTooLarge, ErrBodyTooLarge)
	}

	start := time.Now()
	signed, err := h.provider.Parse(r, h.now())
	if err != nil {
		// a body over the limit is a 413 whatever its signature; with a
		// declared length within the limit, the body need not be read
		if r.ContentLength < 0 && r.Body != nil {
			if derr := drainBody(r.Body, h.MaxBodySize); derr != nil {
				return h.bodyError(w, r, derr)
			}
		}
		closeUnread(w, r)
		return h.reject(r, http.StatusUnauthorized, err)
	}

	// reserve the body's bytes under max_inflight_bytes before buffering:
	// a declared length up front, a chunked body as it is read
	var src io.Reader = r.Body
	var reserved int64
	var chunked *budgetReader
	if r.ContentLength > 0 {
		if !h.reserve(r.ContentLength) {
			closeUnread(w, r)
			return h.bodyError(w, r, ErrOverBudget)
		}
		reserved = r.ContentLength
	} else if r.ContentLength < 0 && r.Body != nil {
		chunked = &budgetReader{r: r.Body, h: h}
		src = chunked
	}

	var macArr [4]hash.Hash
	macs := h.keys.macs(signed.Hash, macArr[:0])
	for _, m := range macs {
		m.Write(signed.Prefix)
	}
	var buf []byte
	if src != nil {
		// a body that does not arrive within body_timeout frees its
		// reservation: senders that stall cannot hold the budget
		timer := time.AfterFunc(time.Duration(h.BodyTimeout), func() {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		})
		buf, err = readBody(src, h.MaxBodySize, r.ContentLength, macs)
		timer.Stop()
	} else {
		buf = getBuf(0)
	}
	if chunked != nil {
		reserved = chunked.reserved
	}
	if err != nil {
		h.keys.put(signed.Hash, macs)
		h.unreserve(reserved)
		return h.bodyError(w, r, err)
	}
	err = Verify(macs, signed.Signatures)
	h.keys.put(signed.Hash, macs)
	if err != nil {
		putBuf(buf)
		h.unreserve(reserved)
		return h.reject(r, http.StatusUnauthorized, err)
	}
	h.metrics.observe(len(buf), start)

	body := &verifiedBody{buf: buf, h: h, header: r.Header, reserved: reserved}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	var id string
	if h.Dedupe != nil {
		id = body.field(h.idIndex) // before the buffer can be released
	}
	// the buffer goes back to its pool when the request is over, after the
	// access log and handle_errors have had a chance to read placeholders
	context.AfterFunc(r.Context(), body.release)
	declared := r.ContentLength == int64(len(buf))
	r.Header.Del("Expect") // the body is here: the upstream need not ask for it
	r.Body = body
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil
	if cl := r.Header["Content-Length"]; !declared || len(cl) != 1 || cl[0] != strconv.Itoa(len(buf)) {
		r.Header.Set("Content-Length", strconv.Itoa(len(buf)))
	}

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(body.placeholder)

	if h.Dedupe != nil {
		return h.serveDedupe(w, r, next, id)
	}
	h.metrics.count(outcomeVerified)
	return next.ServeHTTP(w, r)
}

// closeUnread asks for the connection to be closed after a refusal that
// leaves a declared body unread. Otherwise net/http would read up to
// 256 KiB of it to reuse the connection, and a client that sent
// "Expect: 100-continue" would wait, with no 100 and no answer, until the
// server's idle timeout.
//
// HTTP/1 only: on HTTP/2 the header would close the sender's whole
// multiplexed connection, and the stream is reset by itself.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength > 0 {
		w.Header().Set("Connection", "close")
	}
}

// reserve takes n bytes from max_inflight_bytes, if they are left.
func (h *Handler) reserve(n int64) bool {
	if h.inflight.Add(n) > h.MaxInflightBytes {
		h.inflight.Add(-n)
		return false
	}
	h.metrics.buffered.Add(float64(n))
	return true
}

func (h *Handler) unreserve(n int64) {
	if n != 0 {
		h.inflight.Add(-n)
		h.metrics.buffered.Sub(float64(n))
	}
}

// budgetReader reserves a chunked body's bytes as they are read.
type budgetReader struct {
	r        io.Reader
	h        *Handler
	reserved int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if !b.h.reserve(int64(n)) {
			return 0, ErrOverBudget
		}
		b.reserved += int64(n)
	}
	return n, err
}

// bodyError answers a failure to read the body: 413 past the limit, 503
// over the memory budget, a HandlerError from an earlier handler as it is,
// else 400.
func (h *Handler) bodyError(w http.ResponseWriter, r *http.Request, err error) error {
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return h.reject(r, http.StatusRequestEntityTooLarge, ErrBodyTooLarge)
	case errors.Is(err, ErrOverBudget):
		w.Header().Set("Retry-After", retryAfter503)
		return h.reject(r, http.StatusServiceUnavailable, ErrOverBudget)
	}
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		h.metrics.count(outcomeReadError)
		h.log(r, he.StatusCode, err)
		return he
	}
	// the detail (addresses, the I/O error) goes to the log, not the client
	status := http.StatusBadRequest
	if errors.Is(err, os.ErrDeadlineExceeded) {
		status = http.StatusRequestTimeout
	}
	h.metrics.count(outcomeReadError)
	h.log(r, status, err)
	return caddyhttp.Error(status, ErrReadingBody)
}

// reject counts, logs and returns the refusal as a caddyhttp.Error.
func (h *Handler) reject(r *http.Request, status int, reason error) error {
	h.metrics.count(outcomeOf(reason))
	h.log(r, status, reason)
	return caddyhttp.Error(status, reason)
}

// outcomes maps each refusal's reason to its metrics outcome.
var outcomes = []struct {
	err     error
	outcome string
}{
	{ErrMethodNotAllowed, outcomeMethodNotAllowed},
	{ErrBadCredentials, outcomeBadCredentials},
	{ErrBodyTooLarge, outcomeTooLarge},
	{ErrOverBudget, outcomeOverBudget},
	{ErrReadingBody, outcomeReadError},
	{providers.ErrMissingSignature, outcomeMissingSignature},
	{providers.ErrMalformedSignature, outcomeMalformedSignature},
	{ErrNoMatchingSignature, outcomeBadSignature},
	{ErrNoID, outcomeMissingID},
	{ErrInFlight, outcomeInFlight},
	{dedupe.ErrStore, outcomeStoreError},
}

// outcomeOf maps a refusal's reason to its metrics outcome. A provider's
// Parse error that wraps neither sentinel counts as a malformed signature.
func outcomeOf(reason error) string {
	for _, o := range outcomes {
		if errors.Is(reason, o.err) {
			return o.outcome
		}
	}
	return outcomeMalformedSignature
}

func (h *Handler) log(r *http.Request, status int, reason error) {
	if c := h.logger.Check(zapcore.InfoLevel, "webhook rejected"); c != nil {
		c.Write(
			zap.String("provider", h.name),
			zap.Int("status", status),
			zap.String("reason", reason.Error()),
			zap.String("remote_addr", r.RemoteAddr),
		)
	}
}

// verifiedBody is the body handed to the next handler: the verified bytes,
// in a pooled buffer that is returned to its pool once the request is over.
// It also computes the event placeholders from those bytes, once, when one
// is first read.
type verifiedBody struct {
	mu       sync.Mutex
	buf      []byte
	off      int
	released bool
	reserved int64 // bytes held under max_inflight_bytes
	h        *Handler
	header   http.Header
	vals     []string // nil until a placeholder is read
}

func (b *verifiedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return 0, errBodyReleased
	}
	if b.off >= len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

// Close does nothing: the buffer outlives the body's readers, for the
// placeholders, and is released with the request.
func (b *verifiedBody) Close() error { return nil }

func (b *verifiedBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.released {
		b.released = true
		putBuf(b.buf)
		b.buf = nil
		b.h.unreserve(b.reserved)
	}
}

// placeholder is a caddy.ReplacerFunc for the {http.webhook.<field>}
// placeholders: the body is scanned the first time one is read.
func (b *verifiedBody) placeholder(key string) (any, bool) {
	if !strings.HasPrefix(key, placeholderPrefix) {
		return nil, false
	}
	if key == placeholderPrefix+"provider" {
		return b.h.name, true
	}
	for i, f := range b.h.fields {
		if f == key {
			return b.field(i), true
		}
	}
	return nil, false
}

// field returns the value of the provider's i-th field, scanning the body
// the first time a field is asked for.
func (b *verifiedBody) field(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.vals == nil {
		b.vals = make([]string, len(b.h.fields))
		if !b.released {
			b.h.provider.Describe(b.header, b.buf, b.vals)
		}
	}
	return b.vals[i]
}

var errBodyReleased = errors.New("webhook body read after the request ended")

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
