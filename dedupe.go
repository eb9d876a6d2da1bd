package webhookverify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/dedupe"
)

// Dedupe defaults.
const (
	DefaultDedupeTTL   = 72 * time.Hour // longer than any sender's retry schedule
	DefaultInflightTTL = 60 * time.Second
	DefaultMaxEntries  = 1_000_000
	DefaultKeyPrefix   = "webhook_verify:"
	storeOpTimeout     = 2 * time.Second
	maxDedupeTTL       = 366 * 24 * time.Hour
)

// Reasons of the dedupe refusals.
var (
	ErrInFlight = errors.New("event in flight")
	ErrNoID     = errors.New("event has no id")
)

// Dedupe delivers each event, by its id, to the backend once: a sender's
// retry of a delivered event, or a replayed request, is answered here.
//
// A verified request's event is claimed as in flight before it is
// forwarded; if the next handler answers 2xx, the event is marked done for
// ttl, otherwise the claim is released so that the sender's retry goes
// through. A duplicate of a done event gets 200
// {"received":true,"duplicate":true}; a duplicate of an event in flight
// gets 409 with Retry-After; both set {http.webhook.duplicate} to "true".
// When the store cannot be reached the request gets 503 with Retry-After
// and is not forwarded: the sender retries, nothing is lost or doubled.
type Dedupe struct {
	// How long a delivered event's id is remembered. Default: 72h, longer
	// than Vivreal's whole retry schedule (1 min to 12 h).
	TTL caddy.Duration `json:"ttl,omitempty"`

	// How long a claim in flight holds before it frees itself (a gateway
	// that died while forwarding). Set it above the upstream timeout.
	// Default: 60s, or ttl if that is shorter.
	InflightTTL caddy.Duration `json:"inflight_ttl,omitempty"`

	// "memory" (default): this process only, lost on restart. "redis":
	// shared by every gateway using the same Redis, for a cluster.
	Store string `json:"store,omitempty"`

	// The Redis URL for store "redis": redis:// or rediss://, with user,
	// password and db, e.g. redis://:{env.REDIS_PASSWORD}@10.0.0.5:6379/0.
	// Placeholders are resolved at provision time.
	RedisURL string `json:"redis_url,omitempty"`

	// Prepended to every key, "<key_prefix><provider>:<id>". Default:
	// "webhook_verify:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// The memory store's limit on events held; at the limit the done
	// events nearest to expiry are evicted (with a warning). Default:
	// 1000000.
	MaxEntries int `json:"max_entries,omitempty"`

	// Refuse a verified event that has no id with 400, instead of
	// forwarding it undeduplicated with a warning.
	RequireID bool `json:"require_id,omitempty"`

	store   dedupe.Store
	poolKey string
}

// stores holds the stores across config reloads, so that a reload keeps
// the memory store's entries and the Redis connections.
var stores = caddy.NewUsagePool()

type pooledStore struct {
	dedupe.Store
	close func() error
}

func (p pooledStore) Destruct() error { return p.close() }

// provision sets defaults and opens (or shares) the store.
func (d *Dedupe) provision(h *Handler) error {
	if d.Store == "redis" && d.MaxEntries != 0 {
		return fmt.Errorf("dedupe: max_entries applies to the memory store; Redis bounds itself (maxmemory)")
	}
	if d.TTL == 0 {
		d.TTL = caddy.Duration(DefaultDedupeTTL)
	}
	if d.InflightTTL == 0 {
		// a claim never outlives the done entry it becomes
		d.InflightTTL = min(caddy.Duration(DefaultInflightTTL), d.TTL)
	}
	if d.MaxEntries == 0 {
		d.MaxEntries = DefaultMaxEntries
	}
	if d.KeyPrefix == "" {
		d.KeyPrefix = DefaultKeyPrefix
	}
	if d.TTL < 0 || d.InflightTTL < 0 || d.MaxEntries < 0 {
		return fmt.Errorf("dedupe: ttl, inflight_ttl and max_entries must be positive")
	}
	if d.TTL > caddy.Duration(maxDedupeTTL) {
		return fmt.Errorf("dedupe: ttl %s is over a year; senders stop retrying within days", time.Duration(d.TTL))
	}
	if d.InflightTTL > d.TTL {
		return fmt.Errorf("dedupe: inflight_ttl (%s) is longer than ttl (%s)", time.Duration(d.InflightTTL), time.Duration(d.TTL))
	}
	switch d.Store {
	case "", "memory":
		if d.RedisURL != "" {
			return fmt.Errorf("dedupe: redis_url is set but the store is memory: use store redis")
		}
		d.poolKey = fmt.Sprintf("memory|%d", d.MaxEntries)
		logger := h.logger
		v, _, err := stores.LoadOrNew(d.poolKey, func() (caddy.Destructor, error) {
			m := dedupe.NewMemory(d.MaxEntries, 10*time.Second, func(n int) {
				logger.Warn("dedupe memory store full: evicted the done events nearest to expiry; raise max_entries or use store redis",
					zap.Int("evicted", n), zap.Int("max_entries", d.MaxEntries))
			})
			return pooledStore{Store: m, close: m.Close}, nil
		})
		if err != nil {
			return err
		}
		d.store = v.(pooledStore).Store
	case "redis":
		if d.RedisURL == "" {
			return fmt.Errorf("dedupe: store redis needs a URL: store redis redis://host:6379/0")
		}
		url, err := resolve(caddy.NewReplacer(), d.RedisURL, "dedupe redis url")
		if err != nil {
			return err
		}
		d.poolKey = "redis|" + url
		v, _, err := stores.LoadOrNew(d.poolKey, func() (caddy.Destructor, error) {
			r, err := dedupe.NewRedis(url)
			if err != nil {
				return nil, err
			}
			return pooledStore{Store: r, close: r.Close}, nil
		})
		if err != nil {
			return fmt.Errorf("dedupe: %v", err)
		}
		d.store = v.(pooledStore).Store
	default:
		return fmt.Errorf("dedupe: unknown store '%s': use memory or redis", d.Store)
	}
	return nil
}

func (d *Dedupe) cleanup() error {
	if d.poolKey == "" {
		return nil
	}
	_, err := stores.Delete(d.poolKey)
	return err
}

// serveDedupe runs next at most once per event id.
func (h *Handler) serveDedupe(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id string) (err error) {
	d := h.Dedupe
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set(placeholderPrefix+"duplicate", "false")
	if id == "" {
		if d.RequireID {
			return h.reject(r, http.StatusBadRequest, ErrNoID)
		}
		if c := h.logger.Check(zapcore.WarnLevel, "webhook without an id forwarded without dedupe"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("remote_addr", r.RemoteAddr))
		}
		h.metrics.count(outcomeVerified)
		return next.ServeHTTP(w, r)
	}
	key := d.KeyPrefix + h.name + ":" + id
	// not under the request's context: a sender that hangs up must not
	// look like a store outage, nor leave a claim whose reply was lost
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeOpTimeout)
	claim, err := d.store.Claim(cctx, key, time.Duration(d.InflightTTL))
	ccancel()
	if err != nil {
		w.Header().Set("Retry-After", retryAfter503)
		h.metrics.count(outcomeStoreError)
		if c := h.logger.Check(zapcore.ErrorLevel, "dedupe store unavailable"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("id", id), zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, dedupe.ErrStore)
	}
	switch claim.Status {
	case dedupe.Duplicate:
		h.metrics.count(outcomeDuplicate)
		repl.Set(placeholderPrefix+"duplicate", "true")
		h.logDuplicate(r, id, claim)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write([]byte(`{"received":true,"duplicate":true}`))
		return err
	case dedupe.InFlight:
		h.metrics.count(outcomeInFlight)
		repl.Set(placeholderPrefix+"duplicate", "true")
		h.logDuplicate(r, id, claim)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(claim.Left)))
		return caddyhttp.Error(http.StatusConflict, ErrInFlight)
	}

	h.metrics.count(outcomeVerified)
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	returned := false
	// settle the claim even if next panics (reverse_proxy aborts with
	// http.ErrAbortHandler when the client goes away mid-response): a 2xx
	// status that was written means the backend took the event
	defer func() {
		status := rec.Status()
		if status == 0 && returned && err == nil {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		h.settle(r, key, id, claim.Token, status >= 200 && status < 300)
	}()
	err = next.ServeHTTP(rec, r)
	returned = true
	return err
}

// settle marks a claimed event done (delivered) or releases the claim, so
// that the sender's retry goes through.
func (h *Handler) settle(r *http.Request, key, id, token string, delivered bool) {
	d := h.Dedupe
	// the sender may have gone; the claim must still be settled
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeOpTimeout)
	defer cancel()
	if delivered {
		if serr := d.store.Done(ctx, key, token, time.Duration(d.TTL)); serr != nil {
			if c := h.logger.Check(zapcore.ErrorLevel, "dedupe: marking a delivered event done failed; a retry after inflight_ttl may be delivered again"); c != nil {
				c.Write(zap.String("provider", h.name), zap.String("id", id), zap.Error(serr))
			}
		}
	} else if serr := d.store.Release(ctx, key, token); serr != nil {
		if c := h.logger.Check(zapcore.ErrorLevel, "dedupe: releasing a failed event's claim failed; its retry waits for inflight_ttl"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("id", id), zap.Error(serr))
		}
	}
}

func (h *Handler) logDuplicate(r *http.Request, id string, claim dedupe.Claim) {
	if c := h.logger.Check(zapcore.InfoLevel, "duplicate webhook not forwarded"); c != nil {
		c.Write(zap.String("provider", h.name), zap.String("id", id), zap.String("state", claim.Status.String()),
			zap.String("remote_addr", r.RemoteAddr))
	}
}

// retryAfterSeconds rounds up, to at least one second.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
