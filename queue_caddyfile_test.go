package webhookverify_test

// The queue block of the Caddyfile directive, through the HTTP Caddyfile
// adapter (the deliver block needs it), and the queue config's checks at
// provision time, through caddy.Validate: one whole config provisioned and
// cleaned up, nothing started, no port taken.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
	"github.com/webhookverify/caddy-webhook-verify/queue"
)

// qcAdapt adapts a site whose handler block holds queueBlock (each line
// indented by two tabs), as file "Caddyfile". Line 1 is the site, line 2
// webhook_verify, line 3 the queue block's first line.
func qcAdapt(queueBlock string) ([]byte, error) {
	var b strings.Builder
	b.WriteString(":8080 {\n\twebhook_verify vivreal {env.S} {\n")
	for line := range strings.Lines(strings.TrimSpace(queueBlock)) {
		b.WriteString("\t\t" + strings.TrimSpace(line) + "\n")
	}
	b.WriteString("\t}\n}\n")
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(b.String()), nil)
	return out, err
}

const qcDeliver = "deliver {\nreverse_proxy 127.0.0.1:3000\n}"

func TestQueueCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		want  []string // substrings of the error
		line  int      // the Caddyfile line the error must name
	}{
		// store
		{"unknown store", `queue {
			store memcached
			` + qcDeliver + `
		}`, []string{"queue store: use 'store bbolt [<path>]'"}, 4},
		{"unknown store with url", `queue {
			store memcached memcached://127.0.0.1:11211
			` + qcDeliver + `
		}`, []string{"queue store: use 'store bbolt [<path>]'"}, 4},
		{"store without a kind", `queue {
			` + qcDeliver + `
			store
		}`, []string{"queue store: use 'store bbolt [<path>]'"}, 7},
		{"bbolt with two paths", `queue {
			store bbolt /a.db /b.db
			` + qcDeliver + `
		}`, []string{"queue store: use"}, 4},
		{"store redis without a scheme", `queue {
			store redis 127.0.0.1:6379
			` + qcDeliver + `
		}`, []string{"queue store redis: the URL starts with redis:// or rediss://"}, 4},
		{"store redis without url", `queue {
			store redis
			` + qcDeliver + `
		}`, []string{"queue store redis needs a URL: store redis redis://host:6379/0"}, 4},
		{"durability unknown", `queue {
			store redis redis://127.0.0.1:6379/0
			durability none
			` + qcDeliver + `
		}`, []string{"durability takes strict", "or relaxed"}, 5},
		{"durability without store redis", `queue {
			` + qcDeliver + `
			durability relaxed
		}`, []string{"durability is for store redis"}, 7},

		// repeated options
		{"store twice", `queue {
			store bbolt /a.db
			` + qcDeliver + `
			store bbolt /b.db
		}`, []string{"queue: store already specified"}, 8},
		{"retry twice", `queue {
			retry 1s
			` + qcDeliver + `
			retry 2s
		}`, []string{"queue: retry already specified"}, 8},
		{"max_age twice", `queue {
			` + qcDeliver + `
			max_age 1h
			max_age 2h
		}`, []string{"queue: max_age already specified"}, 8},
		{"max_attempts twice", `queue {
			` + qcDeliver + `
			max_attempts 3
			max_attempts 3
		}`, []string{"queue: max_attempts already specified"}, 8},
		{"attempt_timeout twice", `queue {
			` + qcDeliver + `
			attempt_timeout 5s
			attempt_timeout 10s
		}`, []string{"queue: attempt_timeout already specified"}, 8},
		{"concurrency twice", `queue {
			` + qcDeliver + `
			concurrency 1
			concurrency 2
		}`, []string{"queue: concurrency already specified"}, 8},
		{"ordered twice", `queue {
			` + qcDeliver + `
			ordered
			ordered
		}`, []string{"queue: ordered already specified"}, 8},
		{"max_pending twice", `queue {
			` + qcDeliver + `
			max_pending 10 1MiB
			max_pending 20 1MiB
		}`, []string{"queue: max_pending already specified"}, 8},
		{"ttl twice", `queue {
			` + qcDeliver + `
			ttl 1h
			ttl 2h
		}`, []string{"queue: ttl already specified"}, 8},
		{"require_id twice", `queue {
			` + qcDeliver + `
			require_id
			require_id
		}`, []string{"queue: require_id already specified"}, 8},
		{"deliver twice", `queue {
			` + qcDeliver + `
			` + qcDeliver + `
		}`, []string{"queue: deliver already specified"}, 7},
		{"queue twice", `queue a {
			` + qcDeliver + `
		}
		queue b {
			` + qcDeliver + `
		}`, []string{"queue already specified"}, 8},
		{"two names", `queue a b {
			` + qcDeliver + `
		}`, []string{"queue takes one name, not 'b' too"}, 3},

		// durations
		{"retry without gaps", `queue {
			` + qcDeliver + `
			retry
		}`, []string{"retry needs one or more gaps"}, 7},
		{"retry not a duration", `queue {
			` + qcDeliver + `
			retry 1s soon
		}`, []string{"retry: 'soon' is not a duration"}, 7},
		{"retry zero", `queue {
			` + qcDeliver + `
			retry 0s
		}`, []string{"retry: '0s' must be positive"}, 7},
		{"retry negative", `queue {
			` + qcDeliver + `
			retry 1s -5s
		}`, []string{"retry: '-5s' must be positive"}, 7},
		{"max_age not a duration", `queue {
			` + qcDeliver + `
			max_age forever
		}`, []string{"max_age: 'forever' is not a duration"}, 7},
		{"max_age zero", `queue {
			` + qcDeliver + `
			max_age 0
		}`, []string{"max_age: '0' must be positive"}, 7},
		{"max_age over 100 years", `queue {
			` + qcDeliver + `
			max_age 876001h
		}`, []string{"max_age: '876001h' is over 100 years (876000h)"}, 7},
		{"retry over 100 years", `queue {
			` + qcDeliver + `
			retry 1s 900000h
		}`, []string{"retry: '900000h' is over 100 years (876000h)"}, 7},
		{"ttl over 100 years", `queue {
			` + qcDeliver + `
			ttl 2000000h
		}`, []string{"ttl: '2000000h' is over 100 years (876000h)"}, 7},
		{"max_age two", `queue {
			` + qcDeliver + `
			max_age 1h 2h
		}`, []string{"max_age takes one duration"}, 7},
		{"attempt_timeout negative", `queue {
			` + qcDeliver + `
			attempt_timeout -1s
		}`, []string{"attempt_timeout: '-1s' must be positive"}, 7},
		{"attempt_timeout missing", `queue {
			` + qcDeliver + `
			attempt_timeout
		}`, []string{"attempt_timeout takes one duration"}, 7},
		{"ttl under a second", `queue {
			` + qcDeliver + `
			ttl 500ms
		}`, []string{"ttl: '500ms' is under the minimum of 1s"}, 7},
		{"ttl not a duration", `queue {
			` + qcDeliver + `
			ttl 3 days
		}`, []string{"ttl takes one duration"}, 7},

		// numbers
		{"max_attempts zero", `queue {
			` + qcDeliver + `
			max_attempts 0
		}`, []string{"max_attempts: '0' must be positive"}, 7},
		{"max_attempts negative", `queue {
			` + qcDeliver + `
			max_attempts -3
		}`, []string{"max_attempts: '-3' must be positive"}, 7},
		{"max_attempts not a number", `queue {
			` + qcDeliver + `
			max_attempts many
		}`, []string{"max_attempts: 'many' is not a number"}, 7},
		{"max_attempts fraction", `queue {
			` + qcDeliver + `
			max_attempts 2.5
		}`, []string{"max_attempts: '2.5' is not a number"}, 7},
		{"max_attempts missing", `queue {
			` + qcDeliver + `
			max_attempts
		}`, []string{"max_attempts takes one number"}, 7},
		{"concurrency zero", `queue {
			` + qcDeliver + `
			concurrency 0
		}`, []string{"concurrency: '0' must be positive"}, 7},
		{"concurrency two numbers", `queue {
			` + qcDeliver + `
			concurrency 1 2
		}`, []string{"concurrency takes one number"}, 7},
		{"max_pending one argument", `queue {
			` + qcDeliver + `
			max_pending 100
		}`, []string{"max_pending takes a number of events and a size"}, 7},
		{"max_pending zero events", `queue {
			` + qcDeliver + `
			max_pending 0 1MiB
		}`, []string{"max_pending: '0' is not a positive number of events"}, 7},
		{"max_pending events not a number", `queue {
			` + qcDeliver + `
			max_pending lots 1MiB
		}`, []string{"max_pending: 'lots' is not a positive number of events"}, 7},
		{"max_pending size not a size", `queue {
			` + qcDeliver + `
			max_pending 100 huge
		}`, []string{"max_pending: 'huge' is not a size"}, 7},
		{"max_pending size zero", `queue {
			` + qcDeliver + `
			max_pending 100 0
		}`, []string{"max_pending: '0' is not a size"}, 7},
		{"max_pending size over 1PiB", `queue {
			` + qcDeliver + `
			max_pending 100 2PiB
		}`, []string{"max_pending: '2PiB' is not a size"}, 7},

		// flags
		{"ordered with an argument", `queue {
			` + qcDeliver + `
			ordered yes
		}`, []string{"ordered takes no argument"}, 7},
		{"require_id with an argument", `queue {
			` + qcDeliver + `
			require_id true
		}`, []string{"require_id takes no argument"}, 7},

		// deliver
		{"deliver without a block", `queue {
			deliver
		}`, []string{"queue deliver: the block has no handler", "deliver { reverse_proxy localhost:3000 }"}, 4},
		{"deliver with an empty block", `queue {
			deliver {
			}
		}`, []string{"queue deliver: the block has no handler"}, 5},
		{"deliver with an argument", `queue {
			deliver 127.0.0.1:3000
		}`, []string{"deliver takes no arguments: put its handlers in a block"}, 4},
		{"deliver with an argument and a block", `queue {
			deliver 127.0.0.1:3000 {
				reverse_proxy 127.0.0.1:3000
			}
		}`, []string{"deliver takes no arguments"}, 4},
		// Caddy's own error, at the end of the segment it parsed
		{"deliver with an unknown directive", `queue {
			deliver {
				forward_to 127.0.0.1:3000
			}
		}`, []string{"unrecognized directive: forward_to"}, 6},
		{"no deliver", `queue orders {
			retry 1s
			max_attempts 3
		}`, []string{"queue needs a deliver block: deliver { reverse_proxy <backend> }"}, 6},
		{"bare queue", `queue`, []string{"queue needs a deliver block"}, 3},

		// unknown option
		{"unknown option", `queue {
			` + qcDeliver + `
			retries 5
		}`, []string{"unrecognized queue option 'retries'", "use store, durability, deliver, retry, max_age, max_attempts, attempt_timeout, concurrency, ordered, max_pending, ttl or require_id"}, 7},
		{"dedupe option in queue", `queue {
			` + qcDeliver + `
			key_prefix a:
		}`, []string{"unrecognized queue option 'key_prefix'"}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := qcAdapt(tc.block)
			if err == nil {
				t.Fatalf("adapted without error, want one containing %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if suffix := fmt.Sprintf(", at Caddyfile:%d", tc.line); !strings.HasSuffix(msg, suffix) {
				t.Errorf("error %q does not end with %q", msg, suffix)
			}
		})
	}
}

// qcQueueJSON adapts a queue block and returns the handler's "queue".
func qcQueueJSON(t *testing.T, block string) map[string]any {
	t.Helper()
	out, err := qcAdapt(block)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]any `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	q, _ := cfg.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0]["queue"].(map[string]any)
	if q == nil {
		t.Fatalf("no queue in %s", out)
	}
	return q
}

// The parsed values land in the JSON fields the Queue decodes.
func TestQueueCaddyfileValues(t *testing.T) {
	q := qcQueueJSON(t, `queue orders {
		store bbolt /tmp/orders.db
		`+qcDeliver+`
		retry 1s 2s 3d
		max_age 72h
		max_attempts 7
		attempt_timeout 250ms
		concurrency 9
		ordered
		max_pending 3 1MiB
		ttl 1h
		require_id
	}`)
	raw, _ := json.Marshal(q)
	var got webhookverify.Queue
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := webhookverify.Queue{
		Name: "orders", Store: "bbolt", Path: "/tmp/orders.db",
		Retry:       []caddy.Duration{caddy.Duration(time.Second), caddy.Duration(2 * time.Second), caddy.Duration(72 * time.Hour)},
		MaxAge:      caddy.Duration(72 * time.Hour),
		MaxAttempts: 7, AttemptTimeout: caddy.Duration(250 * time.Millisecond), Concurrency: 9, Ordered: true,
		MaxPendingEvents: 3, MaxPendingBytes: 1 << 20, TTL: caddy.Duration(time.Hour), RequireID: true,
	}
	got.Deliver = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("queue =\n%+v\nwant\n%+v", got, want)
	}
	// a bare deliver block: nothing else set, defaults left to provision
	q = qcQueueJSON(t, "queue {\n"+qcDeliver+"\n}")
	if len(q) != 1 || q["deliver"] == nil {
		t.Errorf("a queue with only deliver adapts to %v, want only deliver", q)
	}
	// the deliver block without the HTTP Caddyfile adapter (JSON users of
	// UnmarshalCaddyfile) is refused, not dropped
	var h webhookverify.Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_verify vivreal {env.S} {\n\tqueue {\n\t\t" + strings.ReplaceAll(qcDeliver, "\n", "\n\t\t") + "\n\t}\n}"))
	if err == nil || !strings.Contains(err.Error(), "the deliver block needs the Caddyfile adapter") {
		t.Errorf("deliver through UnmarshalCaddyfile: %v, want the adapter error", err)
	}
}

// qcValidate provisions, then cleans up, a config whose one route holds
// the given handlers, as `caddy validate` does.
func qcValidate(t *testing.T, handlers ...string) error {
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

// qcHandler is a webhook_verify handler of provider whose queue has the
// given fields plus a deliver route (unless the fields set "deliver").
func qcHandler(provider, fields string) string {
	if !strings.Contains(fields, `"deliver"`) {
		if fields != "" {
			fields += ", "
		}
		fields += `"deliver": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}]}]}]`
	}
	return `{"handler": "webhook_verify", "provider": {"name": "` + provider + `"}, "secrets": ["wv-qc-secret-51e0"], "queue": {` + fields + `}}`
}

// qcPath is the "path" field of the file name in dir.
func qcPath(dir, name string) string {
	return `"path": ` + qcQuote(filepath.Join(dir, name))
}

func qcQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestQueueProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		handlers func(path string) []string
		want     []string // substrings of the error; none: the config loads
	}{
		{"store redis without url", func(string) []string {
			return []string{qcHandler("vivreal", `"store": "redis"`)}
		}, []string{"vivreal: queue: store redis needs a URL"}},
		{"store redis with a path", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "store": "redis", "redis_url": "redis://127.0.0.1:1/0"`)}
		}, []string{"queue: a path is for store bbolt, not redis"}},
		{"store redis, unknown durability", func(string) []string {
			return []string{qcHandler("vivreal", `"store": "redis", "redis_url": "redis://127.0.0.1:1/0", "durability": "lax"`)}
		}, []string{"queue: unknown durability 'lax': strict or relaxed"}},
		{"durability on bbolt", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "durability": "relaxed"`)}
		}, []string{"queue: redis_url and durability are for store redis"}},
		{"store redis, url placeholder unset", func(string) []string {
			return []string{qcHandler("vivreal", `"store": "redis", "redis_url": "redis://:{env.WV_QC_UNSET_REDIS_PW}@127.0.0.1:1/0"`)}
		}, []string{"queue: redis url", "WV_QC_UNSET_REDIS_PW", "resolves to an empty string"}},
		{"unknown store", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "store": "memcached"`)}
		}, []string{"queue: unknown store 'memcached': use bbolt"}},
		{"no deliver", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "deliver": []`)}
		}, []string{"queue: no deliver handlers: add deliver { reverse_proxy <backend> }"}},
		{"deliver with an unknown handler", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "deliver": [{"handle": [{"handler": "no_such_handler_qc"}]}]`)}
		}, []string{"deliver", "no_such_handler_qc"}},
		{"retry gap zero", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "retry": ["1s", 0]`)}
		}, []string{"queue: retry gap 2 must be positive"}},
		{"retry gap over 100 years", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "retry": ["1s", "876001h"]`)}
		}, []string{"queue: retry gap 2 is over 100 years (876000h)"}},
		{"ttl over 100 years", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "ttl": "876001h"`)}
		}, []string{"queue: ttl is over 100 years (876000h)"}},
		{"attempt_timeout over 100 years", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "attempt_timeout": "876001h"`)}
		}, []string{"queue: attempt_timeout is over 100 years (876000h)"}},
		{"retry gap negative", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "retry": ["-1s"]`)}
		}, []string{"queue: retry gap 1 must be positive"}},
		{"negative max_attempts", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "max_attempts": -1`)}
		}, []string{"queue: max_attempts must be positive"}},
		{"negative concurrency", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "concurrency": -2`)}
		}, []string{"queue: concurrency must be positive"}},
		{"negative max_age", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "max_age": "-1h"`)}
		}, []string{"queue: max_age must be positive"}},
		{"negative ttl", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "ttl": "-1h"`)}
		}, []string{"queue: ttl must be positive"}},
		{"negative max_pending_events", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "max_pending_events": -1`)}
		}, []string{"queue: max_pending events must be positive"}},
		{"max_pending_bytes under max_body_size", func(p string) []string {
			return []string{qcHandler("vivreal", p+`, "max_pending_bytes": 1048576`)}
		}, []string{"queue: max_pending size (1048576) is smaller than max_body_size (10485760)"}},

		// names
		{"two handlers, default names", func(p string) []string {
			return []string{qcHandler("vivreal", p), qcHandler("vivreal", p)}
		}, []string{`queue: two handlers of this config use the queue name "vivreal"`, "give each its own (queue <name> { ... })"}},
		{"two handlers, one name, two files", func(p string) []string {
			other := strings.Replace(p, "q.db", "other.db", 1)
			return []string{qcHandler("vivreal", p+`, "name": "hooks"`), qcHandler("vev", other+`, "name": "hooks"`)}
		}, []string{`two handlers of this config use the queue name "hooks"`}},
		{"two handlers, explicit name taking the default", func(p string) []string {
			return []string{qcHandler("vev", p+`, "name": "vivreal"`), qcHandler("vivreal", p)}
		}, []string{`use the queue name "vivreal"`}},
		{"two handlers, two names", func(p string) []string {
			return []string{qcHandler("vivreal", p), qcHandler("vivreal", p+`, "name": "second"`)}
		}, nil},
		{"two providers, default names", func(p string) []string {
			return []string{qcHandler("vivreal", p), qcHandler("vev", p)}
		}, nil},

		// dedupe beside queue
		{"dedupe and queue", func(p string) []string {
			return []string{strings.TrimSuffix(qcHandler("vivreal", p), "}") + `, "dedupe": {}}`}
		}, []string{"queue: dedupe and queue in one handler", "remove the dedupe block"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := qcPath(t.TempDir(), "q.db")
			// twice: a config that failed leaves nothing behind (no
			// file held, no name taken)
			for i := range 2 {
				err := qcValidate(t, tc.handlers(p)...)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("run %d: the config does not load: %v", i+1, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("run %d: the config loads, want an error containing %q", i+1, tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("run %d: error %q does not contain %q", i+1, err, w)
					}
				}
				if strings.Contains(err.Error(), "wv-qc-secret-51e0") {
					t.Errorf("error %q reveals the secret", err)
				}
			}
		})
	}
}

// The dedupe beside queue error comes from the Caddyfile too (both blocks
// parse; the handler refuses them together when it is provisioned).
func TestQueueCaddyfileDedupeBesideQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	out, err := qcAdapt("dedupe\nqueue {\nstore bbolt " + path + "\n" + qcDeliver + "\n}")
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	out = []byte(strings.Replace(string(out), `":8080"`, `"127.0.0.1:0"`, 1))
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(out, &cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("S", "wv-qc-secret-51e0")
	err = caddy.Validate(&cfg)
	if err == nil || !strings.Contains(err.Error(), "dedupe and queue in one handler") {
		t.Fatalf("validate: %v, want the dedupe and queue error", err)
	}
}

// A bbolt file another process holds (here: another open of it, which
// takes bbolt's flock too) fails the config with a clear error naming the
// file; once it is released, the same config loads.
func TestQueueProvisionLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "held.db")
	st, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			_ = st.Close()
		}
	}()
	handler := qcHandler("vivreal", `"path": `+qcQuote(path))
	start := time.Now()
	err = qcValidate(t, handler)
	if err == nil {
		t.Fatal("the config loads while another process holds its queue file")
	}
	t.Log(err)
	for _, want := range []string{"queue vivreal", "locked", path, "another Caddy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the refusal took %v", d)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	released = true
	if err := qcValidate(t, handler); err != nil {
		t.Fatalf("after the file was released the config does not load: %v", err)
	}
	// and the config released it again
	st, err = queue.Open(path, queue.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("the validated config kept the file locked: %v", err)
	}
	_ = st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
