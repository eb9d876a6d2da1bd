package webhookverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
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
	// the shortest ttl and inflight_ttl: a claim must outlive the round
	// trip to the store, and Redis counts it in whole milliseconds (under
	// 1ms it would be PX 0, which Redis refuses)
	minDedupeTTL = time.Second
	memorySweep  = 10 * time.Second
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
	// How long a delivered event's id is remembered. At least 1s.
	// Default: 72h, longer than Vivreal's whole retry schedule (1 min to
	// 12 h).
	TTL caddy.Duration `json:"ttl,omitempty"`

	// How long a claim in flight holds before it frees itself (a gateway
	// that died while forwarding). Set it above the upstream timeout. At
	// least 1s. Default: 60s, or ttl if that is shorter.
	InflightTTL caddy.Duration `json:"inflight_ttl,omitempty"`

	// "memory" (default): this process only, lost on restart; kept across
	// a config reload that keeps the handler's key space (key_prefix and
	// provider). "redis": shared by every gateway using the same Redis,
	// for a cluster.
	//
	// Within one config, two handlers that dedupe the same provider under
	// the same key_prefix in the same store (memory, or Redis with the
	// same redis_url) are a config error: one endpoint would answer the
	// other's events as duplicates. Give each its own key_prefix.
	Store string `json:"store,omitempty"`

	// The Redis URL for store "redis": redis:// or rediss://, with user,
	// password and db, e.g. redis://:{env.REDIS_PASSWORD}@10.0.0.5:6379/0.
	// Placeholders are resolved at provision time.
	RedisURL string `json:"redis_url,omitempty"`

	// Prepended to every key, "<key_prefix><provider>:<id>": with the
	// provider, it names the handler's key space. It MUST differ between
	// handlers of one config that dedupe the same provider in the same
	// store (loading such a config fails with an error that names both),
	// so that one endpoint never answers another's event as a duplicate.
	// Gateways in different processes that share one Redis share the key
	// space on purpose: there, use the same key_prefix. An empty prefix
	// is refused. Default: "webhook_verify:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// The memory store's limit on events held, for this handler's key
	// space (each key space has a store of its own); at the limit the done
	// events nearest to expiry are evicted (with a warning). A config
	// reload that changes it keeps the remembered events and applies the
	// new limit. Default: 1000000.
	MaxEntries int `json:"max_entries,omitempty"`

	// Refuse a verified event that has no id with 400, instead of
	// forwarding it undeduplicated with a warning.
	RequireID bool `json:"require_id,omitempty"`

	store       dedupe.Store
	poolKey     string       // the store's key in stores, once loaded
	memory      *memoryStore // the pooled memory store, for store memory
	space       *keySpace    // the key space registered at provision
	emptyPrefix bool         // "key_prefix": "" in the JSON
}

// UnmarshalJSON decodes the dedupe object as Caddy decodes a module's
// config (an unknown field is an error) and notes a key_prefix that is
// set but empty, which provision refuses: left out, it is the default.
func (d *Dedupe) UnmarshalJSON(b []byte) error {
	type plain Dedupe // without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(d)); err != nil {
		return err
	}
	var set struct {
		KeyPrefix *string `json:"key_prefix"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return err
	}
	d.emptyPrefix = set.KeyPrefix != nil && *set.KeyPrefix == ""
	return nil
}

// stores holds the stores across config reloads, so that a reload keeps
// the memory store's entries and the Redis connections.
var stores = caddy.NewUsagePool()

type pooledStore struct {
	dedupe.Store
	close func() error
}

func (p pooledStore) Destruct() error { return p.close() }

// memoryStore is a memory store in stores, one per key space, used by at
// most one handler of each config: the running config's and, during a
// reload, the next one's. The max_entries in force is that of the handler
// provisioned last that still uses it, so that a reload's new limit
// applies, and a failed reload's does not stay.
type memoryStore struct {
	*dedupe.Memory
	mu    sync.Mutex
	users []*Dedupe // in the order they were provisioned
}

func (m *memoryStore) Destruct() error { return m.Memory.Close() }

func (m *memoryStore) use(d *Dedupe) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users = append(m.users, d)
	m.SetMaxEntries(d.MaxEntries)
}

func (m *memoryStore) drop(d *Dedupe) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users = slices.DeleteFunc(m.users, func(u *Dedupe) bool { return u == d })
	if n := len(m.users); n > 0 {
		m.SetMaxEntries(m.users[n-1].MaxEntries)
	}
}

// keySpaces records the key space of every dedupe handler, per config,
// so that two handlers of one config never share one by accident.
var keySpaces = struct {
	sync.Mutex
	owner   map[keySpace]int     // the ordinal of the handler that holds it
	configs map[any]*configCount // per config
}{owner: map[keySpace]int{}, configs: map[any]*configCount{}}

// keySpace is where a handler's keys live, "<prefix>:<id>", in one config.
type keySpace struct {
	config any    // the config's identity, configOf
	store  string // "memory", or "redis|" and the resolved redis_url
	prefix string // key_prefix and provider
}

// configCount counts a config's dedupe handlers: seen gives each its
// ordinal (in the order Caddy provisions them, the order of the routes);
// live is how many hold a key space, to forget the config with the last.
type configCount struct{ seen, live int }

// configOf is the identity of the config that ctx loads. Caddy creates
// the file system map afresh for each config load (provisionContext in
// caddy.go) and hands the same one to every module of that config, so its
// pointer, compared as an interface value, tells configs apart. A reload
// provisions the new config while the old one still runs: the handlers of
// the two must not be taken for one config. (A context without a config,
// in tests, gives a new map on each call: each handler is a config.)
func configOf(ctx caddy.Context) any { return ctx.FileSystems() }

// register claims the handler's key space in its config, or fails,
// naming both handlers, if another handler of the config holds it.
func (d *Dedupe) register(ctx caddy.Context, provider, store string) error {
	ks := keySpace{config: configOf(ctx), store: store, prefix: d.KeyPrefix + provider}
	keySpaces.Lock()
	defer keySpaces.Unlock()
	cc := keySpaces.configs[ks.config]
	if cc == nil {
		cc = new(configCount)
		keySpaces.configs[ks.config] = cc
	}
	cc.seen++
	if first, ok := keySpaces.owner[ks]; ok {
		where := "in this process's memory"
		if store != "memory" {
			where = "in the same Redis (the same redis_url)"
		}
		return fmt.Errorf("dedupe: this handler (webhook_verify #%d with dedupe in this config) and webhook_verify #%d both keep %s event ids under key_prefix %q %s, so one endpoint would answer the other's events as duplicates: give one of them its own key_prefix",
			cc.seen, first, provider, d.KeyPrefix, where)
	}
	keySpaces.owner[ks] = cc.seen
	cc.live++
	d.space = &ks
	return nil
}

// unregister frees the key space this handler registered, if it did.
func (d *Dedupe) unregister() {
	if d.space == nil {
		return
	}
	keySpaces.Lock()
	defer keySpaces.Unlock()
	delete(keySpaces.owner, *d.space)
	if cc := keySpaces.configs[d.space.config]; cc != nil {
		if cc.live--; cc.live <= 0 {
			delete(keySpaces.configs, d.space.config)
		}
	}
	d.space = nil
}

// provision sets defaults, checks that no other handler of the config
// uses the same key space, and opens (or shares) the store.
func (d *Dedupe) provision(ctx caddy.Context, h *Handler) (err error) {
	if d.emptyPrefix {
		return fmt.Errorf("dedupe: key_prefix is empty: leave it out for the default %q, or set a prefix", DefaultKeyPrefix)
	}
	if d.Store == "redis" && d.MaxEntries != 0 {
		return fmt.Errorf("dedupe: max_entries applies to the memory store; Redis bounds itself (maxmemory)")
	}
	for _, v := range []struct {
		name string
		neg  bool
	}{{"ttl", d.TTL < 0}, {"inflight_ttl", d.InflightTTL < 0}, {"max_entries", d.MaxEntries < 0}} {
		if v.neg {
			return fmt.Errorf("dedupe: %s must be positive", v.name)
		}
	}
	if d.TTL == 0 {
		d.TTL = caddy.Duration(DefaultDedupeTTL)
	}
	if d.TTL < caddy.Duration(minDedupeTTL) {
		return fmt.Errorf("dedupe: ttl %s is under the minimum of %s", time.Duration(d.TTL), minDedupeTTL)
	}
	if d.InflightTTL == 0 {
		// a claim never outlives the done entry it becomes
		d.InflightTTL = min(caddy.Duration(DefaultInflightTTL), d.TTL)
	}
	if d.InflightTTL < caddy.Duration(minDedupeTTL) {
		return fmt.Errorf("dedupe: inflight_ttl %s is under the minimum of %s: a claim must outlive the round trip to the store (set it above the upstream timeout)",
			time.Duration(d.InflightTTL), minDedupeTTL)
	}
	if d.MaxEntries == 0 {
		d.MaxEntries = DefaultMaxEntries
	}
	if d.KeyPrefix == "" {
		d.KeyPrefix = DefaultKeyPrefix
	}
	if d.TTL > caddy.Duration(maxDedupeTTL) {
		return fmt.Errorf("dedupe: ttl %s is over a year; senders stop retrying within days", time.Duration(d.TTL))
	}
	if d.InflightTTL > d.TTL {
		return fmt.Errorf("dedupe: inflight_ttl (%s) is longer than ttl (%s)", time.Duration(d.InflightTTL), time.Duration(d.TTL))
	}
	// undo what was done: Caddy may or may not call Cleanup after a
	// failed Provision, and cleanup is safe to call again
	defer func() {
		if err != nil {
			_ = d.cleanup()
		}
	}()
	switch d.Store {
	case "", "memory":
		if d.RedisURL != "" {
			return fmt.Errorf("dedupe: redis_url is set but the store is memory: use store redis")
		}
		if err := d.register(ctx, h.name, "memory"); err != nil {
			return err
		}
		// one store per key space: a reload that keeps the key space
		// keeps its entries, whatever else changed
		key := "memory|" + d.KeyPrefix + h.name
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			return &memoryStore{Memory: dedupe.NewMemory(d.MaxEntries, memorySweep)}, nil
		})
		if err != nil {
			return err
		}
		d.poolKey = key
		d.memory = v.(*memoryStore)
		d.memory.use(d)
		d.store = d.memory.Memory
	case "redis":
		if d.RedisURL == "" {
			return fmt.Errorf("dedupe: store redis needs a URL: store redis redis://host:6379/0")
		}
		url, err := resolve(caddy.NewReplacer(), d.RedisURL, "dedupe redis url")
		if err != nil {
			return err
		}
		if err := d.register(ctx, h.name, "redis|"+url); err != nil {
			return err
		}
		key := "redis|" + url
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			r, err := dedupe.NewRedis(url)
			if err != nil {
				return nil, err
			}
			return pooledStore{Store: r, close: r.Close}, nil
		})
		if err != nil {
			return fmt.Errorf("dedupe: %v", err)
		}
		d.poolKey = key
		d.store = v.(pooledStore).Store
	default:
		return fmt.Errorf("dedupe: unknown store '%s': use memory or redis", d.Store)
	}
	return nil
}

// cleanup frees what provision took (all of it, or what it got to).
func (d *Dedupe) cleanup() error {
	d.unregister()
	if d.memory != nil {
		d.memory.drop(d)
		d.memory = nil
	}
	if d.poolKey == "" {
		return nil
	}
	key := d.poolKey
	d.poolKey = ""
	_, err := stores.Delete(key)
	return err
}

// serveDedupe runs next at most once per event id.
func (h *Handler) serveDedupe(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id string) (err error) {
	d := h.Dedupe
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set(placeholderPrefix+"duplicate", "false")
	if id == "" {
		if d.RequireID {
			return h.refuse(r, caddyhttp.Error(http.StatusBadRequest, ErrNoID))
		}
		if c := h.logger.Check(zapcore.WarnLevel, "webhook without an id forwarded without dedupe"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr))
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
	if claim.Evicted > 0 {
		// logged here, with this config's logger: the store outlives configs
		if c := h.logger.Check(zapcore.WarnLevel, "dedupe memory store full: evicted the done events nearest to expiry; raise max_entries or use store redis"); c != nil {
			c.Write(zap.String("provider", h.name), zap.Int("evicted", claim.Evicted), zap.Int("max_entries", d.MaxEntries))
		}
	}
	if err != nil {
		w.Header().Set("Retry-After", retryAfter503)
		h.metrics.count(outcomeStoreError)
		if c := h.logger.Check(zapcore.ErrorLevel, "dedupe store unavailable"); c != nil {
			c.Write(zap.String("provider", h.name), zap.String("id", id), zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
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
			zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr))
	}
}

// retryAfterSeconds rounds up, to at least one second.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
