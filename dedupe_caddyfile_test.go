package webhookverify_test

// The dedupe block of the Caddyfile directive, parsed through
// (*Handler).UnmarshalCaddyfile with a test dispenser, and the dedupe
// config's checks and defaults at provision time.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
)

// ddUnmarshal parses input (file "Testfile") into a fresh Handler.
func ddUnmarshal(input string) (*webhookverify.Handler, error) {
	h := new(webhookverify.Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func TestDedupeCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  []string // substrings of the error
		line  int      // the line the error must name; 0: not checked
	}{
		{"bad ttl", `webhook_verify vivreal {env.S} {
			dedupe forever
		}`, []string{"dedupe: 'forever' is not a duration"}, 2},
		{"zero ttl", `webhook_verify vivreal {env.S} {
			dedupe 0s
		}`, []string{"dedupe: '0s' must be positive"}, 2},
		{"negative ttl", `webhook_verify vivreal {env.S} {
			dedupe -1h
		}`, []string{"dedupe: '-1h' must be positive"}, 2},
		{"ttl under a second", `webhook_verify vivreal {env.S} {
			dedupe 500ms
		}`, []string{"dedupe: '500ms' is under the minimum of 1s"}, 2},
		{"two ttls", `webhook_verify vivreal {env.S} {
			dedupe 24h 48h
		}`, []string{"dedupe takes one ttl, not '48h' too"}, 2},
		{"store without args", `webhook_verify vivreal {env.S} {
			dedupe {
				store
			}
		}`, []string{"dedupe store: use 'store memory' or 'store redis <redis://host:6379/0>'"}, 3},
		{"unknown store", `webhook_verify vivreal {env.S} {
			dedupe {
				store memcached
			}
		}`, []string{"dedupe store: use 'store memory' or 'store redis"}, 3},
		{"unknown store with url", `webhook_verify vivreal {env.S} {
			dedupe {
				store memcached memcached://127.0.0.1:11211
			}
		}`, []string{"dedupe store: use 'store memory' or 'store redis"}, 3},
		{"redis without url", `webhook_verify vivreal {env.S} {
			dedupe {
				store redis
			}
		}`, []string{"dedupe store: use 'store memory' or 'store redis <redis://host:6379/0>'"}, 3},
		{"redis with two urls", `webhook_verify vivreal {env.S} {
			dedupe {
				store redis redis://a:6379/0 redis://b:6379/0
			}
		}`, []string{"dedupe store: use"}, 3},
		{"memory with an argument", `webhook_verify vivreal {env.S} {
			dedupe {
				store memory 1000
			}
		}`, []string{"dedupe store: use"}, 3},
		{"max_entries with redis", `webhook_verify vivreal {env.S} {
			dedupe {
				store redis redis://127.0.0.1:6379/0
				max_entries 1000
			}
		}`, []string{"max_entries applies to the memory store"}, 0},
		{"max_entries before store redis", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries 1000
				store redis redis://127.0.0.1:6379/0
			}
		}`, []string{"max_entries applies to the memory store"}, 0},
		{"non-numeric max_entries", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries lots
			}
		}`, []string{"max_entries: 'lots' is not a number"}, 3},
		{"zero max_entries", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries 0
			}
		}`, []string{"max_entries: '0' must be positive"}, 3},
		{"negative max_entries", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries -5
			}
		}`, []string{"max_entries: '-5' must be positive"}, 3},
		{"max_entries as a size", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries 1e6
			}
		}`, []string{"max_entries: '1e6' is not a number"}, 3},
		{"max_entries without a number", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries
			}
		}`, []string{"max_entries takes one number"}, 3},
		{"inflight_ttl longer than ttl", `webhook_verify vivreal {env.S} {
			dedupe 1m {
				inflight_ttl 2m
			}
		}`, []string{"inflight_ttl is longer than the dedupe ttl"}, 0},
		{"bad inflight_ttl", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl soon
			}
		}`, []string{"inflight_ttl: 'soon' is not a duration"}, 3},
		{"zero inflight_ttl", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl 0s
			}
		}`, []string{"inflight_ttl: '0s' must be positive"}, 3},
		{"negative inflight_ttl", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl -5s
			}
		}`, []string{"inflight_ttl: '-5s' must be positive"}, 3},
		// Redis counts a claim in milliseconds: under 1ms it would be PX 0
		{"inflight_ttl under a millisecond", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl 500us
			}
		}`, []string{"inflight_ttl: '500us' is under the minimum of 1s"}, 3},
		{"inflight_ttl under a second", `webhook_verify vivreal {env.S} {
			dedupe {
				store redis redis://127.0.0.1:6379/0
				inflight_ttl 999ms
			}
		}`, []string{"inflight_ttl: '999ms' is under the minimum of 1s"}, 4},
		{"inflight_ttl without a duration", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl
			}
		}`, []string{"inflight_ttl takes one duration"}, 3},
		{"key_prefix without a prefix", `webhook_verify vivreal {env.S} {
			dedupe {
				key_prefix
			}
		}`, []string{"key_prefix takes one prefix"}, 3},
		{"key_prefix with two", `webhook_verify vivreal {env.S} {
			dedupe {
				key_prefix a: b:
			}
		}`, []string{"key_prefix takes one prefix"}, 3},
		{"empty key_prefix", `webhook_verify vivreal {env.S} {
			dedupe {
				key_prefix ""
			}
		}`, []string{`key_prefix is empty: leave it out for the default webhook_verify:, or set a prefix`}, 3},
		{"store twice", `webhook_verify vivreal {env.S} {
			dedupe {
				store redis redis://127.0.0.1:6379/0
				key_prefix a:
				store memory
			}
		}`, []string{"store already specified"}, 5},
		{"store memory twice", `webhook_verify vivreal {env.S} {
			dedupe {
				store memory
				store memory
			}
		}`, []string{"store already specified"}, 4},
		{"key_prefix twice", `webhook_verify vivreal {env.S} {
			dedupe {
				key_prefix a:
				key_prefix b:
			}
		}`, []string{"key_prefix already specified"}, 4},
		{"inflight_ttl twice", `webhook_verify vivreal {env.S} {
			dedupe {
				inflight_ttl 30s
				require_id
				inflight_ttl 60s
			}
		}`, []string{"inflight_ttl already specified"}, 5},
		{"max_entries twice", `webhook_verify vivreal {env.S} {
			dedupe {
				max_entries 10
				max_entries 20
			}
		}`, []string{"max_entries already specified"}, 4},
		{"require_id twice", `webhook_verify vivreal {env.S} {
			dedupe {
				require_id
				require_id
			}
		}`, []string{"require_id already specified"}, 4},
		{"require_id with an argument", `webhook_verify vivreal {env.S} {
			dedupe {
				require_id yes
			}
		}`, []string{"wrong argument count"}, 3},
		{"unknown dedupe option", `webhook_verify vivreal {env.S} {
			dedupe {
				ttl 24h
			}
		}`, []string{"unrecognized dedupe option 'ttl'", "use store, key_prefix, inflight_ttl, max_entries or require_id"}, 3},
		{"dedupe twice", `webhook_verify vivreal {env.S} {
			dedupe
			dedupe 24h
		}`, []string{"dedupe already specified"}, 3},
		{"dedupe twice with blocks", `webhook_verify vivreal {env.S} {
			dedupe {
				store memory
			}
			max_body_size 1MiB
			dedupe {
				store memory
			}
		}`, []string{"dedupe already specified"}, 6},
		{"dedupe without a secret", `webhook_verify vev {
			dedupe
		}`, []string{"webhook_verify vev needs a secret"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ddUnmarshal(tc.input)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if !strings.Contains(msg, ", at Testfile:") {
				t.Errorf("error %q names no position", msg)
			}
			if suffix := fmt.Sprintf(", at Testfile:%d", tc.line); tc.line > 0 && !strings.HasSuffix(msg, suffix) {
				t.Errorf("error %q does not end with %q", msg, suffix)
			}
		})
	}
}

func TestDedupeCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  *webhookverify.Dedupe
		size  int64 // the max_body_size parsed too, if set
	}{
		{"bare", `webhook_verify vivreal {env.S} {
			dedupe
		}`, &webhookverify.Dedupe{}, 0},
		{"ttl only", `webhook_verify vivreal {env.S} {
			dedupe 24h
		}`, &webhookverify.Dedupe{TTL: caddy.Duration(24 * time.Hour)}, 0},
		{"ttl in days", `webhook_verify vivreal {env.S} {
			dedupe 3d
		}`, &webhookverify.Dedupe{TTL: caddy.Duration(72 * time.Hour)}, 0},
		{"empty block", `webhook_verify vivreal {env.S} {
			dedupe {
			}
		}`, &webhookverify.Dedupe{}, 0},
		{"full redis block", `webhook_verify vivreal {env.S} {
			dedupe 24h {
				store redis redis://:{env.REDIS_PASSWORD}@127.0.0.1:6379/1
				key_prefix gw-eu:
				inflight_ttl 30s
				require_id
			}
		}`, &webhookverify.Dedupe{
			TTL:         caddy.Duration(24 * time.Hour),
			InflightTTL: caddy.Duration(30 * time.Second),
			Store:       "redis",
			RedisURL:    "redis://:{env.REDIS_PASSWORD}@127.0.0.1:6379/1",
			KeyPrefix:   "gw-eu:",
			RequireID:   true,
		}, 0},
		{"memory block", `webhook_verify vivreal {env.S} {
			dedupe {
				store memory
				max_entries 50000
			}
		}`, &webhookverify.Dedupe{Store: "memory", MaxEntries: 50000}, 0},
		{"inflight_ttl equal to ttl", `webhook_verify vivreal {env.S} {
			dedupe 1m {
				inflight_ttl 1m
			}
		}`, &webhookverify.Dedupe{TTL: caddy.Duration(time.Minute), InflightTTL: caddy.Duration(time.Minute)}, 0},
		{"options after a dedupe without block", `webhook_verify vivreal {env.S} {
			dedupe 48h
			max_body_size 1MiB
		}`, &webhookverify.Dedupe{TTL: caddy.Duration(48 * time.Hour)}, 1 << 20},
		{"options after a dedupe block", `webhook_verify vivreal {
			dedupe {
				require_id
			}
			max_body_size 2MiB
			secret {env.S}
		}`, &webhookverify.Dedupe{RequireID: true}, 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ddUnmarshal(tc.input)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(h.Dedupe, tc.want) {
				t.Errorf("dedupe =\n%+v\nwant\n%+v", h.Dedupe, tc.want)
			}
			if !reflect.DeepEqual(h.Secrets, []webhookverify.Secret{{Value: "{env.S}"}}) {
				t.Errorf("secrets = %q, want [{env.S}]", h.Secrets)
			}
			if tc.size != 0 && h.MaxBodySize != tc.size {
				t.Errorf("max_body_size = %d, want %d", h.MaxBodySize, tc.size)
			}
		})
	}

	// no dedupe line: no dedupe
	h, err := ddUnmarshal(`webhook_verify vivreal {env.S}`)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dedupe != nil {
		t.Errorf("dedupe = %+v without a dedupe line, want nil", h.Dedupe)
	}
}

// ddProvision provisions a vivreal handler whose "dedupe" is dedupeJSON, in
// a fresh Caddy context; a handler that provisioned is cleaned up when the
// test ends.
func ddProvision(t *testing.T, dedupeJSON string) (*webhookverify.Handler, error) {
	t.Helper()
	cfg := `{"provider": {"name": "vivreal"}, "secrets": ["wv-dd-secret-71c3"], "dedupe": ` + dedupeJSON + `}`
	var h webhookverify.Handler
	if err := json.Unmarshal([]byte(cfg), &h); err != nil {
		t.Fatalf("bad test config %s: %v", cfg, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		t.Cleanup(func() {
			if err := h.Cleanup(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	return &h, err
}

func TestDedupeProvisionErrors(t *testing.T) {
	t.Setenv("WV_DD_REDIS_PASSWORD", "hunter2-dd-9f1e")
	t.Setenv("WV_DD_EMPTY", "")
	for _, tc := range []struct {
		name   string
		dedupe string
		want   []string
	}{
		{"unknown store", `{"store": "memcached"}`,
			[]string{"vivreal: dedupe: unknown store 'memcached': use memory or redis"}},
		{"redis without url", `{"store": "redis"}`,
			[]string{"dedupe: store redis needs a URL"}},
		{"redis_url with the default store", `{"redis_url": "redis://127.0.0.1:6379/0"}`,
			[]string{"dedupe: redis_url is set but the store is memory: use store redis"}},
		{"redis_url with store memory", `{"store": "memory", "redis_url": "redis://127.0.0.1:6379/0"}`,
			[]string{"redis_url is set but the store is memory"}},
		{"inflight_ttl longer than ttl", `{"ttl": "1m", "inflight_ttl": "2m"}`,
			[]string{"dedupe: inflight_ttl (2m0s) is longer than ttl (1m0s)"}},
		{"inflight_ttl longer than the default ttl", `{"inflight_ttl": "100h"}`,
			[]string{"inflight_ttl (100h0m0s) is longer than ttl (72h0m0s)"}},
		{"max_entries with redis", `{"store": "redis", "redis_url": "redis://127.0.0.1:6379/0", "max_entries": 10}`,
			[]string{"dedupe: max_entries applies to the memory store"}},
		{"negative ttl", `{"ttl": -1}`, []string{"must be positive"}},
		{"negative inflight_ttl", `{"inflight_ttl": "-5s"}`, []string{"must be positive"}},
		{"negative max_entries", `{"max_entries": -1}`, []string{"dedupe: max_entries must be positive"}},
		{"negative ttl named", `{"ttl": "-1h"}`, []string{"dedupe: ttl must be positive"}},
		{"negative inflight_ttl named", `{"inflight_ttl": "-5s"}`, []string{"dedupe: inflight_ttl must be positive"}},
		// Redis counts a claim in milliseconds: under 1ms it would be PX 0
		{"inflight_ttl under a millisecond", `{"inflight_ttl": "500us"}`,
			[]string{"dedupe: inflight_ttl 500µs is under the minimum of 1s"}},
		{"inflight_ttl under a second", `{"store": "redis", "redis_url": "redis://127.0.0.1:6379/0", "inflight_ttl": "999ms"}`,
			[]string{"dedupe: inflight_ttl 999ms is under the minimum of 1s"}},
		{"ttl under a second", `{"ttl": "500ms"}`, []string{"dedupe: ttl 500ms is under the minimum of 1s"}},
		{"ttl in nanoseconds", `{"ttl": 1000}`, []string{"dedupe: ttl 1µs is under the minimum of 1s"}},
		{"empty key_prefix", `{"key_prefix": ""}`,
			[]string{`dedupe: key_prefix is empty: leave it out for the default "webhook_verify:", or set a prefix`}},
		{"empty key_prefix with redis", `{"store": "redis", "redis_url": "redis://127.0.0.1:6379/0", "key_prefix": ""}`,
			[]string{"dedupe: key_prefix is empty"}},
		{"redis url not a redis url", `{"store": "redis", "redis_url": "http://user:{env.WV_DD_REDIS_PASSWORD}@127.0.0.1:6379/0"}`,
			[]string{"invalid redis url"}},
		{"redis url unparseable", `{"store": "redis", "redis_url": "redis://:{env.WV_DD_REDIS_PASSWORD}@[::1/0"}`,
			[]string{"invalid redis url"}},
		{"redis url placeholder unset", `{"store": "redis", "redis_url": "redis://:{env.WV_DD_UNSET_9c2}@127.0.0.1:6379/0"}`,
			[]string{"{env.WV_DD_UNSET_9c2}", "resolves to an empty string"}},
		{"redis url placeholder empty", `{"store": "redis", "redis_url": "{env.WV_DD_EMPTY}"}`,
			[]string{"{env.WV_DD_EMPTY}", "resolves to an empty string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ddProvision(t, tc.dedupe)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2-dd-9f1e") {
				t.Errorf("error %q reveals the Redis password", err)
			}
		})
	}
}

func TestDedupeProvision(t *testing.T) {
	t.Setenv("WV_DD_REDIS_PASSWORD", "hunter2-dd-9f1e")
	for _, tc := range []struct {
		name   string
		dedupe string
		want   webhookverify.Dedupe
	}{
		{"defaults", `{}`, webhookverify.Dedupe{
			TTL:         caddy.Duration(webhookverify.DefaultDedupeTTL),
			InflightTTL: caddy.Duration(webhookverify.DefaultInflightTTL),
			MaxEntries:  webhookverify.DefaultMaxEntries,
			KeyPrefix:   webhookverify.DefaultKeyPrefix,
		}},
		{"memory, all set", `{"ttl": "24h", "inflight_ttl": "30s", "store": "memory", "max_entries": 10, "key_prefix": "p:", "require_id": true}`,
			webhookverify.Dedupe{
				TTL:         caddy.Duration(24 * time.Hour),
				InflightTTL: caddy.Duration(30 * time.Second),
				Store:       "memory",
				MaxEntries:  10,
				KeyPrefix:   "p:",
				RequireID:   true,
			}},
		{"inflight_ttl equal to ttl", `{"ttl": "1m", "inflight_ttl": "1m"}`, webhookverify.Dedupe{
			TTL:         caddy.Duration(time.Minute),
			InflightTTL: caddy.Duration(time.Minute),
			MaxEntries:  webhookverify.DefaultMaxEntries,
			KeyPrefix:   webhookverify.DefaultKeyPrefix,
		}},
		// Redis is not dialled at provision time: a config loads while Redis is down
		{"redis with a placeholder password", `{"store": "redis", "redis_url": "redis://:{env.WV_DD_REDIS_PASSWORD}@127.0.0.1:1/0"}`,
			webhookverify.Dedupe{
				TTL:         caddy.Duration(webhookverify.DefaultDedupeTTL),
				InflightTTL: caddy.Duration(webhookverify.DefaultInflightTTL),
				Store:       "redis",
				RedisURL:    "redis://:{env.WV_DD_REDIS_PASSWORD}@127.0.0.1:1/0",
				MaxEntries:  webhookverify.DefaultMaxEntries,
				KeyPrefix:   webhookverify.DefaultKeyPrefix,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			h, err := ddProvision(t, tc.dedupe)
			if err != nil {
				t.Fatalf("provision: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("provision took %v", d)
			}
			// compare the exported fields only
			got := reflect.ValueOf(*h.Dedupe)
			want := reflect.ValueOf(tc.want)
			for i := range got.NumField() {
				f := got.Type().Field(i)
				if !f.IsExported() {
					continue
				}
				if g, w := got.Field(i).Interface(), want.Field(i).Interface(); !reflect.DeepEqual(g, w) {
					t.Errorf("%s = %v, want %v", f.Name, g, w)
				}
			}
		})
	}
}

// A ttl shorter than the default inflight_ttl shortens the claim with it.
func TestDedupeProvisionShortTTL(t *testing.T) {
	h, err := ddProvision(t, `{"ttl": "30s"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(h.Dedupe.InflightTTL); got != 30*time.Second {
		t.Fatalf("inflight_ttl = %v, want the 30s ttl", got)
	}
}

// The dedupe object has an UnmarshalJSON of its own (to tell an empty
// key_prefix from an absent one) but is decoded as strictly as Caddy
// decodes a module: a misspelt field is an error, not a silent default.
func TestDedupeJSONUnknownField(t *testing.T) {
	var h webhookverify.Handler
	err := json.Unmarshal([]byte(`{"provider": {"name": "vivreal"}, "secrets": ["s"], "dedupe": {"key_prefx": "a:"}}`), &h)
	if err == nil || !strings.Contains(err.Error(), `unknown field "key_prefx"`) {
		t.Fatalf("misspelt dedupe field: %v, want an unknown field error", err)
	}
	// null and absent are the default, not an empty prefix
	for _, dedupe := range []string{`{"key_prefix": null}`, `{}`} {
		h, err := ddProvision(t, dedupe)
		if err != nil {
			t.Fatalf("%s: %v", dedupe, err)
		}
		if h.Dedupe.KeyPrefix != webhookverify.DefaultKeyPrefix {
			t.Errorf("%s: key_prefix = %q, want the default", dedupe, h.Dedupe.KeyPrefix)
		}
	}
}

// ddValidate provisions, then cleans up, a whole config whose one route
// holds the given handlers, as `caddy validate` does: one config, nothing
// started, no port taken.
func ddValidate(t *testing.T, handlers ...string) error {
	t.Helper()
	raw := `{"apps": {"http": {"servers": {"srv0": {
		"listen": ["127.0.0.1:0"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [` + strings.Join(handlers, ",\n") + `]}]
	}}}}}`
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON([]byte(raw), &cfg); err != nil {
		t.Fatalf("bad test config %s: %v", raw, err)
	}
	return caddy.Validate(&cfg)
}

// ddHandler is a webhook_verify handler of provider with the dedupe object.
func ddHandler(provider, dedupe string) string {
	return `{"handler": "webhook_verify", "provider": {"name": "` + provider + `"}, "secrets": ["wv-dd-secret-71c3"], "dedupe": ` + dedupe + `}`
}

// Two handlers of one config that dedupe the same provider under the same
// key_prefix in the same store would share a key space (one endpoint
// would answer the other's events as duplicates): the config does not
// load, and the error names both. The store is the same for Redis when the
// redis_url is; Redis is not dialled at provision, so none runs here.
func TestDedupeKeySpaceConflicts(t *testing.T) {
	t.Setenv("WV_DD_REDIS_PASSWORD", "hunter2-dd-9f1e")
	const (
		url      = `"redis://:{env.WV_DD_REDIS_PASSWORD}@127.0.0.1:1/0"`
		otherURL = `"redis://:{env.WV_DD_REDIS_PASSWORD}@127.0.0.1:1/1"`
	)
	redisAt := func(url, extra string) string {
		return `{"store": "redis", "redis_url": ` + url + extra + `}`
	}
	for _, tc := range []struct {
		name     string
		handlers []string
		want     []string // substrings of the error; none: the config loads
	}{
		{"redis, same url, same prefix", []string{
			ddHandler("vivreal", redisAt(url, "")),
			ddHandler("vivreal", redisAt(url, "")),
		}, []string{
			"vivreal: dedupe: this handler (webhook_verify #2 with dedupe in this config) and webhook_verify #1 both keep vivreal event ids",
			`under key_prefix "webhook_verify:" in the same Redis (the same redis_url)`,
			"so one endpoint would answer the other's events as duplicates: give one of them its own key_prefix",
		}},
		{"redis, same url, same explicit prefix", []string{
			ddHandler("vivreal", redisAt(url, `, "key_prefix": "gw:"`)),
			ddHandler("vivreal", redisAt(url, `, "key_prefix": "gw:", "ttl": "1h"`)),
		}, []string{"#2", "#1", `key_prefix "gw:"`, "in the same Redis"}},
		{"redis, other url", []string{
			ddHandler("vivreal", redisAt(url, "")),
			ddHandler("vivreal", redisAt(otherURL, "")),
		}, nil},
		{"redis, same url, other prefix", []string{
			ddHandler("vivreal", redisAt(url, "")),
			ddHandler("vivreal", redisAt(url, `, "key_prefix": "gw-b:"`)),
		}, nil},
		{"redis, same url, other provider", []string{
			ddHandler("vivreal", redisAt(url, "")),
			ddHandler("vev", redisAt(url, "")),
		}, nil},
		{"memory, same prefix", []string{
			ddHandler("vivreal", `{}`),
			ddHandler("vivreal", `{"max_entries": 10}`),
		}, []string{"this handler (webhook_verify #2 with dedupe in this config) and webhook_verify #1", `key_prefix "webhook_verify:" in this process's memory`}},
		{"memory, other prefix", []string{
			ddHandler("vivreal", `{}`),
			ddHandler("vivreal", `{"key_prefix": "b:"}`),
		}, nil},
		{"memory and redis, same prefix", []string{
			ddHandler("vivreal", `{}`),
			ddHandler("vivreal", redisAt(url, "")),
		}, nil},
		{"third handler takes the first one's", []string{
			ddHandler("vivreal", `{"key_prefix": "a:"}`),
			ddHandler("vivreal", `{"key_prefix": "b:"}`),
			ddHandler("vivreal", `{"key_prefix": "a:", "store": "memory"}`),
		}, []string{"this handler (webhook_verify #3 with dedupe in this config) and webhook_verify #1", `key_prefix "a:"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// twice: a config that failed leaves nothing behind
			for range 2 {
				err := ddValidate(t, tc.handlers...)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("the config does not load: %v", err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("the config loads, want an error containing %q", tc.want)
				}
				t.Log(err)
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "hunter2-dd-9f1e") {
					t.Errorf("error %q reveals the Redis password", err)
				}
			}
		})
	}
}
