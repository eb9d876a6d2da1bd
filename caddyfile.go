package webhookverify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("webhook_verify", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webhook_verify", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.unmarshalCaddyfile(h.Dispenser, &h)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
//
// Syntax:
//
//	webhook_verify [<matcher>] <provider> [<secret>] {
//		secret        <secret> [not_after <RFC 3339 time>]  # repeatable; any one verifies (rotation)
//		enforce       on | off           # off: report-only (check, count, log, forward anyway); default on
//		max_body_size <size>             # default 10MiB
//		max_inflight_bytes <size>        # all bodies held at once; default 256MiB
//		body_timeout  <duration>         # a body arrives within it or gets 408; default 30s
//		basic_auth    <user> <password>  # repeatable; endpoint credentials
//		bearer_token  <token>            # repeatable; endpoint credentials
//		queue [<name>] {                 # store and forward; see parseQueue
//			...
//		}
//		dedupe [<ttl>] {                 # deliver each event id once; default ttl 72h
//			store        memory | redis <url>  # default memory
//			key_prefix   <prefix>              # default webhook_verify:
//			inflight_ttl <duration>            # default 60s; at least 1s
//			max_entries  <n>                   # memory store; default 1000000
//			require_id                         # 400 for an event without id
//		}
//	}
//
// <provider> is a sender's module name (vivreal, vev). Secrets and
// credentials may be placeholders such as {env.VIVREAL_SECRET}, resolved
// when the config is loaded. A sender may take options of its own in the
// block.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return h.unmarshalCaddyfile(d, nil)
}

// unmarshalCaddyfile is UnmarshalCaddyfile with the HTTP Caddyfile
// adapter's helper, which the queue's deliver block needs (nil without it).
func (h *Handler) unmarshalCaddyfile(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) error {
	d.Next() // consume directive name

	if !d.NextArg() {
		return d.Errf("webhook_verify needs a provider: webhook_verify <%s> [<secret>]", strings.Join(providerNames(), "|"))
	}
	name := d.Val()
	mod, err := caddy.GetModule(providers.Namespace + "." + name)
	if err != nil {
		return d.Errf("unknown webhook provider '%s': use one of %s", name, strings.Join(providerNames(), ", "))
	}
	prov, ok := mod.New().(providers.Provider)
	if !ok {
		return d.Errf("module '%s' is not a webhook provider", name)
	}
	if d.NextArg() {
		if d.Val() == "" {
			return d.Err("the secret is empty: use a placeholder such as {env.VIVREAL_SECRET}")
		}
		if err := checkLiteralKey(d, prov, name); err != nil {
			return err
		}
		h.Secrets = append(h.Secrets, Secret{Value: d.Val()})
	}
	if d.NextArg() {
		// not echoed: it may be a second secret
		return d.Err("unexpected argument after the secret: secrets after the first go in the block, one 'secret <secret>' line each")
	}

	lastSecretLine := d.Line()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "secret":
			if !d.NextArg() || d.Val() == "" {
				return d.Errf("secret needs a value, e.g. secret {env.%s_SECRET}", strings.ToUpper(name))
			}
			if err := checkLiteralKey(d, prov, name); err != nil {
				return err
			}
			sec := Secret{Value: d.Val()}
			lastSecretLine = d.Line()
			if d.NextArg() {
				if d.Val() != "not_after" {
					return d.Errf("secret takes one value, optionally followed by 'not_after <RFC 3339 time>'; add another 'secret' line for a second secret")
				}
				if !d.NextArg() {
					return d.Err("not_after needs an RFC 3339 time, e.g. not_after 2026-12-31T00:00:00Z")
				}
				t, err := time.Parse(time.RFC3339, d.Val())
				if err != nil {
					return d.Errf("not_after: '%s' is not an RFC 3339 time: use e.g. 2026-12-31T00:00:00Z (or with an offset, 2026-12-31T01:00:00+01:00)", d.Val())
				}
				sec.NotAfter = t
				if d.NextArg() {
					return d.Errf("unexpected '%s' after not_after's time; add another 'secret' line for a second secret", d.Val())
				}
			}
			h.Secrets = append(h.Secrets, sec)
		case "enforce":
			if h.Enforce != nil {
				return d.Err("enforce already specified")
			}
			args := d.RemainingArgs()
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
				return d.Err("enforce takes on (refuse what fails a check; the default) or off (report-only: check, count, log, and forward anyway)")
			}
			on := args[0] == "on"
			h.Enforce = &on
		case "max_body_size":
			if h.MaxBodySize != 0 {
				return d.Err("max_body_size already specified")
			}
			size, err := parseSize(d, "max_body_size", "10MiB", "10MiB or 512KB", uint64(maxMaxBodySize), "the 1GiB this module buffers")
			if err != nil {
				return err
			}
			h.MaxBodySize = size
		case "body_timeout":
			if h.BodyTimeout != 0 {
				return d.Err("body_timeout already specified")
			}
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Err("body_timeout takes one duration, e.g. body_timeout 30s")
			}
			v, err := parseDuration(d, "body_timeout", args[0], "30s", 0)
			if err != nil {
				return err
			}
			h.BodyTimeout = caddy.Duration(v)
		case "max_inflight_bytes":
			if h.MaxInflightBytes != 0 {
				return d.Err("max_inflight_bytes already specified")
			}
			size, err := parseSize(d, "max_inflight_bytes", "256MiB", "256MiB", 1<<50, "1PiB")
			if err != nil {
				return err
			}
			h.MaxInflightBytes = size
		case "basic_auth":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("basic_auth needs a user and a password: basic_auth <user> <password>")
			}
			h.BasicAuth = append(h.BasicAuth, BasicAccount{Username: args[0], Password: args[1]})
		case "bearer_token":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Errf("bearer_token needs exactly one token: bearer_token <token>")
			}
			h.BearerTokens = append(h.BearerTokens, args[0])
		case "queue":
			if h.Queue != nil {
				return d.Err("queue already specified")
			}
			q, err := parseQueue(d, helper)
			if err != nil {
				return err
			}
			h.Queue = q
		case "dedupe":
			if h.Dedupe != nil {
				return d.Err("dedupe already specified")
			}
			dd, err := parseDedupe(d)
			if err != nil {
				return err
			}
			h.Dedupe = dd
		default:
			if opt, ok := prov.(providers.CaddyfileOption); ok {
				handled, err := opt.UnmarshalCaddyfileOption(d)
				if err != nil {
					return err
				}
				if handled {
					continue
				}
			}
			hint := ""
			if n, ok := prov.(providers.CaddyfileOptionNamer); ok {
				hint = fmt.Sprintf(" (and for %s: %s)", name, strings.Join(n.CaddyfileOptionNames(), ", "))
			}
			return d.Errf("unrecognized subdirective '%s': use secret, enforce, max_body_size, max_inflight_bytes, body_timeout, basic_auth, bearer_token, dedupe or queue%s", sub, hint)
		}
	}
	if c, ok := prov.(providers.CaddyfileChecker); ok {
		if err := c.CheckCaddyfile(d); err != nil {
			return err
		}
	}
	if len(h.Secrets) == 0 {
		return d.Errf("webhook_verify %s needs a secret: webhook_verify %s {env.%s_SECRET}", name, name, strings.ToUpper(name))
	}
	if last, all := allExpired(h.Secrets, time.Now()); all {
		// at the last secret's line, not the block's end
		return fmt.Errorf("every secret of webhook_verify %s has expired (the last one at %s): add the sender's current secret, or move not_after, at %s:%d",
			name, last.UTC().Format(time.RFC3339), d.File(), lastSecretLine)
	}
	h.ProviderRaw = caddyconfig.JSONModuleObject(prov, "name", name, nil)
	return nil
}

// checkLiteralKey decodes the secret the dispenser is on when the sender's
// keys are public keys and the secret is written out (no placeholder), so
// that a key in the wrong form fails with its Caddyfile line; keys from
// placeholders are decoded at provision time. A sender whose keys depend
// on options later in the block (hmac) says false here, and its keys are
// checked at provision time too.
func checkLiteralKey(d *caddyfile.Dispenser, prov providers.Provider, name string) error {
	pd, ok := prov.(providers.PublicKeyDecoder)
	if !ok || !pd.PublicKeys() || strings.Contains(d.Val(), "{") {
		return nil
	}
	if _, err := pd.PublicKey(d.Val()); err != nil {
		return d.Errf("%s public key: %v", name, err)
	}
	return nil
}

// parseSize parses the single size argument of the subdirective name, a
// positive size of at most limit bytes (described by limitText).
func parseSize(d *caddyfile.Dispenser, name, example, examples string, limit uint64, limitText string) (int64, error) {
	if !d.NextArg() {
		return 0, d.Errf("%s needs a size, e.g. %s %s", name, name, example)
	}
	size, err := humanize.ParseBytes(d.Val())
	if err != nil || size == 0 {
		return 0, d.Errf("%s: '%s' is not a size: use e.g. %s", name, d.Val(), examples)
	}
	if size > limit {
		return 0, d.Errf("%s: %s is over %s", name, d.Val(), limitText)
	}
	v := int64(size)
	if d.NextArg() {
		return 0, d.Errf("%s takes one size, not '%s' too", name, d.Val())
	}
	return v, nil
}

// parseDedupe parses "dedupe [<ttl>] { ... }".
func parseDedupe(d *caddyfile.Dispenser) (*Dedupe, error) {
	dd := new(Dedupe)
	if d.NextArg() {
		ttl, err := parseDuration(d, "dedupe", d.Val(), "dedupe 72h", minDedupeTTL)
		if err != nil {
			return nil, err
		}
		dd.TTL = caddy.Duration(ttl)
	}
	if d.NextArg() {
		return nil, d.Errf("dedupe takes one ttl, not '%s' too", d.Val())
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("%s already specified", sub)
		}
		seen[sub] = true
		switch sub {
		case "store":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "memory":
				dd.Store = "memory"
			case len(args) == 2 && args[0] == "redis":
				dd.Store, dd.RedisURL = "redis", args[1]
			default:
				return nil, d.Err("dedupe store: use 'store memory' or 'store redis <redis://host:6379/0>'")
			}
		case "key_prefix":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.Err("key_prefix takes one prefix")
			}
			if args[0] == "" {
				return nil, d.Errf("key_prefix is empty: leave it out for the default %s, or set a prefix", DefaultKeyPrefix)
			}
			dd.KeyPrefix = args[0]
		case "inflight_ttl":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.Err("inflight_ttl takes one duration, e.g. inflight_ttl 60s")
			}
			v, err := parseDuration(d, "inflight_ttl", args[0], "60s", minDedupeTTL)
			if err != nil {
				return nil, err
			}
			dd.InflightTTL = caddy.Duration(v)
		case "max_entries":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.Err("max_entries takes one number")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return nil, d.Errf("max_entries: '%s' is not a number: use e.g. 1000000", args[0])
			}
			if n <= 0 {
				return nil, d.Errf("max_entries: '%s' must be positive", args[0])
			}
			dd.MaxEntries = n
		case "require_id":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			dd.RequireID = true
		default:
			return nil, d.Errf("unrecognized dedupe option '%s': use store, key_prefix, inflight_ttl, max_entries or require_id", sub)
		}
	}
	if dd.Store == "redis" && dd.MaxEntries != 0 {
		return nil, d.Err("max_entries applies to the memory store; Redis bounds itself (maxmemory)")
	}
	if dd.TTL != 0 && dd.InflightTTL > dd.TTL {
		return nil, d.Err("inflight_ttl is longer than the dedupe ttl")
	}
	return dd, nil
}

// parseDuration parses val, the duration of the (sub)directive name: it
// must be positive, and at least least.
func parseDuration(d *caddyfile.Dispenser, name, val, example string, least time.Duration) (time.Duration, error) {
	v, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s: '%s' is not a duration: use e.g. %s", name, val, example)
	}
	if v <= 0 {
		return 0, d.Errf("%s: '%s' must be positive: use e.g. %s", name, val, example)
	}
	if v < least {
		return 0, d.Errf("%s: '%s' is under the minimum of %s", name, val, least)
	}
	return v, nil
}

// providerNames lists the registered senders.
func providerNames() []string {
	var names []string
	for _, m := range caddy.GetModules(providers.Namespace) {
		names = append(names, m.ID.Name())
	}
	slices.Sort(names)
	return names
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// parseQueue parses
//
//	queue [<name>] {
//		store        bbolt [<path>] | redis <url>  # default: bbolt in Caddy's data dir
//		durability   strict | relaxed   # store redis only; default strict
//		deliver {                                   # handlers, as inside handle
//			reverse_proxy localhost:3000
//		}
//		retry        <gap> [<gap>...]   # default 10s 1m 5m 30m 1h 2h 4h 8h 12h; the last repeats
//		max_age      <duration>         # default 72h after receipt, then the event is dead
//		max_attempts <n>                # default 20
//		attempt_timeout <duration>      # default 30s
//		concurrency  <n>                # deliveries at once; default 4
//		ordered                         # one at a time, in order of receipt
//		max_pending  <events> <size>    # default 100000 1GiB; over it: 503
//		ttl          <duration>         # ids remembered after delivered/dead; default 72h
//		require_id                      # 400 for an event without an id
//	}
func parseQueue(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) (*Queue, error) {
	q := new(Queue)
	var durabilityErr error
	if d.NextArg() {
		q.Name = d.Val()
	}
	if d.NextArg() {
		return nil, d.Errf("queue takes one name, not '%s' too", d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] && sub != "deliver" {
			return nil, d.Errf("queue: %s already specified", sub)
		}
		seen[sub] = true
		switch sub {
		case "store":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "bbolt":
				q.Store = "bbolt"
			case len(args) == 2 && args[0] == "bbolt":
				q.Store, q.Path = "bbolt", args[1]
			case len(args) == 2 && args[0] == "redis":
				if !strings.HasPrefix(args[1], "redis://") && !strings.HasPrefix(args[1], "rediss://") && !strings.HasPrefix(args[1], "{") {
					return nil, d.Err("queue store redis: the URL starts with redis:// or rediss://, e.g. store redis redis://:{env.REDIS_PASSWORD}@10.0.0.5:6379/0")
				}
				q.Store, q.RedisURL = "redis", args[1]
			case len(args) == 1 && args[0] == "redis":
				return nil, d.Err("queue store redis needs a URL: store redis redis://host:6379/0")
			default:
				return nil, d.Err("queue store: use 'store bbolt [<path>]' or 'store redis <url>'")
			}
		case "durability":
			args := d.RemainingArgs()
			if len(args) != 1 || (args[0] != "strict" && args[0] != "relaxed") {
				return nil, d.Err("durability takes strict (default: 2xx only once the event is fsync'd in Redis's AOF) or relaxed (also accept appendfsync everysec: a power loss may lose up to a second of events)")
			}
			q.Durability = args[0]
			// wrapped here, for its line, and returned if the store is
			// not redis
			durabilityErr = d.Err("durability is for store redis: remove it, or use store redis <url>")
		case "deliver":
			if len(q.Deliver) > 0 {
				return nil, d.Err("queue: deliver already specified")
			}
			if helper == nil {
				return nil, d.Err("queue deliver: the deliver block needs the Caddyfile adapter (use the JSON \"deliver\" routes otherwise)")
			}
			if d.CountRemainingArgs() > 0 {
				return nil, d.Err("deliver takes no arguments: put its handlers in a block, deliver { reverse_proxy <backend> }")
			}
			sub, err := httpcaddyfile.ParseSegmentAsSubroute(helper.WithDispenser(d.NewFromNextSegment()))
			if err != nil {
				return nil, err
			}
			sr, ok := sub.(*caddyhttp.Subroute)
			if !ok || len(sr.Routes) == 0 {
				return nil, d.Err("queue deliver: the block has no handler: add one, e.g. deliver { reverse_proxy localhost:3000 }")
			}
			q.Deliver = sr.Routes
		case "retry":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Err("retry needs one or more gaps, e.g. retry 10s 1m 5m 30m")
			}
			for _, a := range args {
				v, err := parseDuration(d, "retry", a, "10s", 0)
				if err != nil {
					return nil, err
				}
				if caddy.Duration(v) > maxQueueDuration {
					return nil, d.Errf("retry: '%s' is over %s", a, maxQueueDurationText)
				}
				q.Retry = append(q.Retry, caddy.Duration(v))
			}
		case "max_age", "attempt_timeout", "ttl":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.Errf("%s takes one duration", sub)
			}
			least := time.Duration(0)
			if sub == "ttl" {
				least = time.Second
			}
			v, err := parseDuration(d, sub, args[0], "72h", least)
			if err != nil {
				return nil, err
			}
			if caddy.Duration(v) > maxQueueDuration {
				return nil, d.Errf("%s: '%s' is over %s", sub, args[0], maxQueueDurationText)
			}
			switch sub {
			case "max_age":
				q.MaxAge = caddy.Duration(v)
			case "attempt_timeout":
				q.AttemptTimeout = caddy.Duration(v)
			default:
				q.TTL = caddy.Duration(v)
			}
		case "max_attempts", "concurrency":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return nil, d.Errf("%s takes one number", sub)
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return nil, d.Errf("%s: '%s' is not a number", sub, args[0])
			}
			if n <= 0 {
				return nil, d.Errf("%s: '%s' must be positive", sub, args[0])
			}
			if sub == "max_attempts" {
				q.MaxAttempts = n
			} else {
				q.Concurrency = n
			}
		case "ordered", "require_id":
			if d.NextArg() {
				return nil, d.Errf("%s takes no argument", sub)
			}
			if sub == "ordered" {
				q.Ordered = true
			} else {
				q.RequireID = true
			}
		case "max_pending":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Err("max_pending takes a number of events and a size, e.g. max_pending 100000 1GiB")
			}
			n, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || n <= 0 {
				return nil, d.Errf("max_pending: '%s' is not a positive number of events", args[0])
			}
			size, err := humanize.ParseBytes(args[1])
			if err != nil || size == 0 || size > 1<<50 {
				return nil, d.Errf("max_pending: '%s' is not a size: use e.g. 1GiB", args[1])
			}
			q.MaxPendingEvents, q.MaxPendingBytes = n, int64(size)
		default:
			return nil, d.Errf("unrecognized queue option '%s': use store, durability, deliver, retry, max_age, max_attempts, attempt_timeout, concurrency, ordered, max_pending, ttl or require_id", sub)
		}
	}
	if len(q.Deliver) == 0 {
		return nil, d.Err("queue needs a deliver block: deliver { reverse_proxy <backend> }")
	}
	if q.Durability != "" && q.Store != "redis" {
		return nil, durabilityErr
	}
	return q, nil
}
