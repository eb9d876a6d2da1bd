// Package webhookverify is a Caddy HTTP handler that verifies signed
// webhooks (Vivreal, Vev, and more senders in package providers) and hands
// the genuine ones, body intact, to the next handler, usually reverse_proxy.
package webhookverify

import (
	"crypto"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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

// Handler verifies a webhook sender's signature (an HMAC under a shared
// secret, or Ed25519 or ECDSA P-256 under the sender's public key), and
// optionally the endpoint's Basic or Bearer credentials, before the next
// handler runs.
//
// EXPERIMENTAL: the JSON form may still change before a 1.0 release.
//
// It answers every refusal as a caddyhttp.Error, which the site's
// handle_errors can shape, with a short reason as {err.message} (never a
// secret, a signature or the body):
//
//   - 405 (with Allow: POST) for any method but POST;
//   - 401 (with a WWW-Authenticate challenge per configured scheme) for
//     missing or wrong credentials, checked before the body is read;
//   - 413 for a body over max_body_size, declared or read, whatever its
//     signature;
//   - 401 for a missing, repeated, malformed (a stale timestamp included)
//     or wrong signature;
//   - 503 (with Retry-After) when max_inflight_bytes is reached;
//   - 408 when the body does not arrive within body_timeout;
//   - 400 when the body cannot be read (the client's connection failed);
//   - 500 when the provider names a hash this binary lacks, or a
//     signature scheme that does not fit the configured keys (a bug);
//   - with dedupe: 200 {"received":true,"duplicate":true} for an event
//     already delivered (written by the handler itself), 409 (with
//     Retry-After) for one in flight, 400 for an event without an id
//     under require_id, and 503 (with Retry-After) when the store cannot
//     be reached.
//
// Each refusal is logged once, with the provider, the status, the reason
// and the client's address, and counted once in
// caddy_webhook_verify_requests_total. A refusal that leaves a body unread
// closes an HTTP/1 connection.
//
// A verified request reaches the next handler (reverse_proxy, typically)
// with its body byte for byte as received, Content-Length set, no
// Expect and no trailers, and with these placeholders:
// {http.webhook.provider}, {http.webhook.id}, {http.webhook.event}, and
// the sender's own (Vev: {http.webhook.hosting}), {http.webhook.key} (the
// position of the secret that verified it) and {http.webhook.verified}.
// The event fields are read from the body only if a placeholder is used.
//
// With enforce off (report-only), a request that fails a check is not
// refused: it is counted, logged and handed over like a verified one,
// with {http.webhook.verified} false. A refused signature's log line
// carries a "hint" when a cheap check explains the refusal (hints.go).
type Handler struct {
	// The webhook sender, a module in the http.webhook_verify.providers
	// namespace chosen with the inline key "name": {"name": "vivreal"}.
	ProviderRaw json.RawMessage `json:"provider,omitempty" caddy:"namespace=http.webhook_verify.providers inline_key=name"`

	// The secrets the sender signs with, or, for a sender that signs with
	// a key pair (discord, sendgrid), its public keys, decoded once at
	// provision time. Any one verifies a request, so a secret is rotated
	// by adding the new one, switching the sender, then removing the old
	// one. Placeholders such as {env.VIVREAL_SECRET} or
	// {file./run/secrets/vivreal} are resolved once, at provision time; a
	// secret that resolves empty is an error, never an empty key. A
	// secret may expire: {"secret": "...", "not_after": "<RFC 3339>"}
	// (see Secret). {http.webhook.key} is the position (1-based) of the
	// one that verified a request.
	Secrets []Secret `json:"secrets,omitempty"`

	// Whether a request that fails a check is refused (the default), or,
	// when false ("enforce off" in the Caddyfile: report-only), forwarded
	// anyway: every check still runs, is counted under its usual outcome
	// (and in caddy_webhook_verify_not_enforced_total) and logged, and
	// {http.webhook.verified} says "false". The limits that protect the
	// gateway (max_body_size, max_inflight_bytes, body_timeout) are
	// enforced either way. Meant for the first days in front of a live
	// integration; a warning is logged at start while it is off.
	Enforce *bool `json:"enforce,omitempty"`

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

	// Deliver each event to the next handler once, by its id: the event
	// is claimed in a store (memory, or Redis for several gateways) before
	// it is forwarded, marked done for a ttl when the next handler answers
	// 2xx, and released otherwise so that the sender's retry goes
	// through. A retry of a delivered event is answered 200 with
	// {"received":true,"duplicate":true}, one in flight 409. Off unless set.
	Dedupe *Dedupe `json:"dedupe,omitempty"`

	// Store and forward: a verified event is written durably to disk
	// before the sender is answered 200 {"received":true,"queued":true},
	// then delivered by the gateway itself through the queue's deliver
	// handlers, with retries; see Queue. Off unless set; not with dedupe
	// (the queue deduplicates by id itself).
	Queue *Queue `json:"queue,omitempty"`

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
	// reportOnly: enforce off. The zero value enforces, so a handler
	// that was never provisioned refuses rather than forwards.
	reportOnly bool
	warner     *expiryWarner // logs the expiring secrets' warnings; nil without any
	// the rate of the refusals' diagnoses (hints.go)
	hintLimit *hintLimiter

	// eagerFields: the hand-over reads the event fields (the id) before
	// the body can be released (dedupe)
	eagerFields bool
}

// BasicAccount is one user name and password for HTTP Basic credentials.
type BasicAccount struct {
	// The user name. Placeholders are resolved at provision time.
	Username string `json:"username"`
	// The password, in plain text as the sender sends it (it is kept
	// only as a SHA-256 digest). Placeholders such as {env.VEV_PASSWORD}
	// are resolved at provision time.
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
	if h.keys, err = h.provisionKeys(repl); err != nil {
		return err
	}
	if err := h.checkExpiry(h.now()); err != nil {
		return err
	}
	h.metrics.keyCounters(h.name, len(h.Secrets))
	h.hintLimit = new(hintLimiter)
	h.reportOnly = h.Enforce != nil && !*h.Enforce
	if h.reportOnly {
		h.logger.Warn("webhook_verify is in report-only mode (enforce off): requests that fail verification are FORWARDED, with {http.webhook.verified} false; turn enforce on once the counts look right",
			zap.String("provider", h.name))
	}

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
		if err := h.Dedupe.provision(ctx, h); err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		h.eagerFields = true
	}
	if h.Queue != nil {
		if err := h.Queue.provision(ctx, h); err != nil {
			return fmt.Errorf("%s: %v", h.name, err)
		}
		h.eagerFields = true
	}
	if h.warner != nil {
		h.warner.start(time.Now)
	}
	return nil
}

// provisionKeys resolves the secrets and decodes them once: as public
// keys when the provider says its keys are public (PublicKeyDecoder), else
// as HMAC keys (through KeyDecoder when the provider has one).
func (h *Handler) provisionKeys(repl *caddy.Replacer) (*keyring, error) {
	pd, public := h.provider.(providers.PublicKeyDecoder)
	public = public && pd.PublicKeys()
	var keys [][]byte
	var pubs []crypto.PublicKey
	var raw []string
	for i, s := range h.Secrets {
		v, err := resolve(repl, s.Value, fmt.Sprintf("secret %d", i+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", h.name, err)
		}
		raw = append(raw, v)
		if public {
			pub, err := pd.PublicKey(v)
			if err != nil {
				return nil, fmt.Errorf("%s: secret %d: %v", h.name, i+1, err)
			}
			pubs = append(pubs, pub)
			continue
		}
		key, err := providers.HMACKey(h.provider, v)
		if err != nil {
			return nil, fmt.Errorf("%s: secret %d: %v", h.name, i+1, err)
		}
		keys = append(keys, key)
	}
	k := newKeyring(keys)
	if public {
		var err error
		if k, err = newPublicKeyring(pubs); err != nil {
			return nil, fmt.Errorf("%s: %v", h.name, err)
		}
	}
	k.secrets = raw
	for i, s := range h.Secrets {
		if !s.NotAfter.IsZero() {
			if k.notAfter == nil {
				k.notAfter = make([]time.Time, len(h.Secrets))
			}
			k.notAfter[i] = s.NotAfter
		}
	}
	return k, nil
}

// checkExpiry refuses a configuration whose every secret has expired at
// now, and starts the warnings of those that expire.
func (h *Handler) checkExpiry(now time.Time) error {
	if h.keys.notAfter == nil {
		return nil
	}
	if last, all := allExpired(h.Secrets, now); all {
		return fmt.Errorf("%s: every secret has expired (the last one at %s): add the sender's current secret, or move not_after", h.name, last.UTC().Format(time.RFC3339))
	}
	h.warner = &expiryWarner{
		provider: h.name,
		notAfter: h.keys.notAfter,
		prints:   h.keys.fingerprints(),
		logger:   h.logger,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	return nil
}

// Cleanup releases the dedupe store (kept while another config uses it).
func (h *Handler) Cleanup() error {
	if h.warner != nil {
		h.warner.close()
	}
	if h.Queue != nil {
		h.Queue.cleanup()
	}
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
