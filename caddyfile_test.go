package webhookverify

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// cfUnmarshal parses input, a webhook_verify directive as the test
// dispenser sees it (file "Testfile"), into a fresh Handler.
func cfUnmarshal(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  []string // substrings of the error
		line  int      // the line the error must name
	}{
		{
			name:  "no provider",
			input: `webhook_verify`,
			want:  []string{"webhook_verify needs a provider", "|vev|vivreal>"},
			line:  1,
		},
		{
			name: "no provider, block only",
			input: `webhook_verify {
				secret {env.S}
			}`,
			want: []string{"webhook_verify needs a provider"},
			line: 1,
		},
		{
			name:  "unknown provider",
			input: `webhook_verify twilio {env.TWILIO_AUTH_TOKEN}`,
			want:  []string{"unknown webhook provider 'twilio': use one of "},
			line:  1,
		},
		{
			name: "unknown provider on a later line",
			input: `

			webhook_verify paypal {
				secret {env.S}
			}`,
			want: []string{"unknown webhook provider 'paypal'"},
			line: 3,
		},
		{
			name:  "no secret anywhere, no block",
			input: `webhook_verify vivreal`,
			want:  []string{"webhook_verify vivreal needs a secret: webhook_verify vivreal {env.VIVREAL_SECRET}"},
			line:  1,
		},
		{
			name: "no secret anywhere, block with credentials",
			input: `webhook_verify vev {
				bearer_token {env.VEV_TOKEN}
				max_body_size 1MiB
			}`,
			want: []string{"webhook_verify vev needs a secret: webhook_verify vev {env.VEV_SECRET}"},
			line: 4,
		},
		{
			name:  "two positional secrets",
			input: `webhook_verify vivreal {env.A} {env.B}`,
			want:  []string{"unexpected argument after the secret", "one 'secret <secret>' line each"},
			line:  1,
		},
		{
			name: "secret without value",
			input: `webhook_verify vivreal {
				secret
			}`,
			want: []string{"secret needs a value, e.g. secret {env.VIVREAL_SECRET}"},
			line: 2,
		},
		{
			name: "secret with two values",
			input: `webhook_verify vev {
				secret a b
			}`,
			want: []string{"secret takes one value, optionally followed by 'not_after <RFC 3339 time>'; add another 'secret' line for a second secret"},
			line: 2,
		},
		{
			name: "max_body_size missing",
			input: `webhook_verify vivreal {env.S} {
				max_body_size
			}`,
			want: []string{"max_body_size needs a size, e.g. max_body_size 10MiB"},
			line: 2,
		},
		{
			name: "max_body_size invalid",
			input: `webhook_verify vivreal {env.S} {
				max_body_size lots
			}`,
			want: []string{"max_body_size: 'lots' is not a size: use e.g. 10MiB or 512KB"},
			line: 2,
		},
		{
			name: "max_body_size negative",
			input: `webhook_verify vivreal {env.S} {
				max_body_size -1MiB
			}`,
			want: []string{"max_body_size: '-1MiB' is not a size"},
			line: 2,
		},
		{
			name: "max_body_size zero",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 0
			}`,
			want: []string{"max_body_size: '0' is not a size"},
			line: 2,
		},
		{
			name: "max_body_size zero with a unit",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 0MiB
			}`,
			want: []string{"max_body_size: '0MiB' is not a size"},
			line: 2,
		},
		{
			name: "max_body_size absurdly large",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 2TiB
			}`,
			want: []string{"max_body_size: 2TiB is over the 1GiB this module buffers"},
			line: 2,
		},
		{
			name: "max_body_size duplicated",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 1MiB
				max_body_size 2MiB
			}`,
			want: []string{"max_body_size already specified"},
			line: 3,
		},
		{
			name: "max_body_size with an extra argument",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 1MiB 2MiB
			}`,
			want: []string{"max_body_size takes one size", "'2MiB'"},
			line: 2,
		},
		{
			name: "basic_auth with one argument",
			input: `webhook_verify vev {env.S} {
				basic_auth vev
			}`,
			want: []string{"basic_auth needs a user and a password: basic_auth <user> <password>"},
			line: 2,
		},
		{
			name: "basic_auth with no argument",
			input: `webhook_verify vev {env.S} {
				basic_auth
			}`,
			want: []string{"basic_auth needs a user and a password"},
			line: 2,
		},
		{
			name: "basic_auth with three arguments",
			input: `webhook_verify vev {env.S} {
				bearer_token t
				basic_auth vev pass extra
			}`,
			want: []string{"basic_auth needs a user and a password: basic_auth <user> <password>"},
			line: 3,
		},
		{
			name: "bearer_token with no argument",
			input: `webhook_verify vev {env.S} {
				bearer_token
			}`,
			want: []string{"bearer_token needs exactly one token: bearer_token <token>"},
			line: 2,
		},
		{
			name: "bearer_token with two arguments",
			input: `webhook_verify vev {env.S} {
				bearer_token a b
			}`,
			want: []string{"bearer_token needs exactly one token: bearer_token <token>"},
			line: 2,
		},
		{
			name: "zero body_timeout",
			input: `webhook_verify vivreal {env.S} {
				body_timeout 0s
			}`,
			want: []string{"body_timeout: '0s' must be positive: use e.g. 30s"},
			line: 2,
		},
		{
			name: "negative body_timeout",
			input: `webhook_verify vivreal {env.S} {
				max_body_size 1MiB
				body_timeout -30s
			}`,
			want: []string{"body_timeout: '-30s' must be positive"},
			line: 3,
		},
		{
			name: "body_timeout not a duration",
			input: `webhook_verify vivreal {env.S} {
				body_timeout soon
			}`,
			want: []string{"body_timeout: 'soon' is not a duration: use e.g. 30s"},
			line: 2,
		},
		{
			name: "unknown subdirective",
			input: `webhook_verify vivreal {env.S} {
				secret {env.T}

				max_body 1MiB
			}`,
			want: []string{"unrecognized subdirective 'max_body': use secret, enforce, max_body_size, max_inflight_bytes, body_timeout, basic_auth, bearer_token, dedupe or queue"},
			line: 4,
		},
		{
			name: "unknown subdirective names the sender's options",
			input: `webhook_verify stripe {env.S} {
				toleranse 1m
			}`,
			want: []string{"unrecognized subdirective 'toleranse': use secret, enforce, max_body_size, max_inflight_bytes, body_timeout, basic_auth, bearer_token, dedupe or queue (and for stripe: tolerance)"},
			line: 2,
		},
		{
			name: "unknown subdirective names vev's option",
			input: `webhook_verify vev {env.S} {
				stringify_fallbak
			}`,
			want: []string{"(and for vev: stringify_fallback)"},
			line: 2,
		},
		{
			name: "subdirective spelled like Caddy's basicauth",
			input: `webhook_verify vivreal {env.S} {
				basicauth u p
			}`,
			want: []string{"unrecognized subdirective 'basicauth'"},
			line: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cfUnmarshal(t, tc.input)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			// the dispenser's position, and no other line
			if suffix := fmt.Sprintf(", at Testfile:%d", tc.line); !strings.HasSuffix(msg, suffix) {
				t.Errorf("error %q does not end with %q", msg, suffix)
			}
		})
	}
}

// The unknown-provider message lists the registered senders, sorted, and
// vev and vivreal are among them (other tests may register more).
func TestCaddyfileUnknownProviderListsProviders(t *testing.T) {
	_, err := cfUnmarshal(t, `webhook_verify twilio {env.S}`)
	if err == nil {
		t.Fatal("no error for an unknown provider")
	}
	msg := err.Error()
	_, list, ok := strings.Cut(msg, "use one of ")
	if !ok {
		t.Fatalf("error %q does not list the providers", msg)
	}
	list, _, _ = strings.Cut(list, ", at Testfile:")
	names := strings.Split(list, ", ")
	for _, want := range []string{"vev", "vivreal"} {
		if !slices.Contains(names, want) {
			t.Errorf("providers listed %q: %q missing", names, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("providers listed %q are not sorted", names)
	}
	if !slices.Equal(names, providerNames()) {
		t.Errorf("providers listed %q, registered %q", names, providerNames())
	}
}

func TestCaddyfileGood(t *testing.T) {
	for _, tc := range []struct {
		name     string
		input    string
		provider string
		want     Handler // ProviderRaw is checked apart
	}{
		{
			name:     "shorthand secret",
			input:    `webhook_verify vivreal {env.VIVREAL_SECRET}`,
			provider: "vivreal",
			want:     Handler{Secrets: plainSecrets("{env.VIVREAL_SECRET}")},
		},
		{
			name: "block secret only",
			input: `webhook_verify vev {
				secret {file./run/secrets/vev}
			}`,
			provider: "vev",
			want:     Handler{Secrets: plainSecrets("{file./run/secrets/vev}")},
		},
		{
			name: "rotation: shorthand then block secrets, in order",
			input: `webhook_verify vivreal {env.OLD} {
				secret {env.NEW}
				secret literal
			}`,
			provider: "vivreal",
			want:     Handler{Secrets: plainSecrets("{env.OLD}", "{env.NEW}", "literal")},
		},
		{
			name: "max_body_size in MiB",
			input: `webhook_verify vev {env.S} {
				max_body_size 5MiB
			}`,
			provider: "vev",
			want:     Handler{Secrets: plainSecrets("{env.S}"), MaxBodySize: 5 << 20},
		},
		{
			name: "max_body_size in KB is decimal",
			input: `webhook_verify vev {env.S} {
				max_body_size 512KB
			}`,
			provider: "vev",
			want:     Handler{Secrets: plainSecrets("{env.S}"), MaxBodySize: 512000},
		},
		{
			name: "max_body_size in plain bytes",
			input: `webhook_verify vev {env.S} {
				max_body_size 1024
			}`,
			provider: "vev",
			want:     Handler{Secrets: plainSecrets("{env.S}"), MaxBodySize: 1024},
		},
		{
			name: "max_body_size at the 1 GiB ceiling",
			input: `webhook_verify vev {env.S} {
				max_body_size 1GiB
			}`,
			provider: "vev",
			want:     Handler{Secrets: plainSecrets("{env.S}"), MaxBodySize: 1 << 30},
		},
		{
			name: "two basic_auth accounts",
			input: `webhook_verify vev {env.S} {
				basic_auth vev {env.VEV_PASSWORD}
				basic_auth bob "pass word"
			}`,
			provider: "vev",
			want: Handler{
				Secrets: plainSecrets("{env.S}"),
				BasicAuth: []BasicAccount{
					{Username: "vev", Password: "{env.VEV_PASSWORD}"},
					{Username: "bob", Password: "pass word"},
				},
			},
		},
		{
			name: "two bearer tokens",
			input: `webhook_verify vev {env.S} {
				bearer_token {env.VEV_TOKEN}
				bearer_token next-token
			}`,
			provider: "vev",
			want: Handler{
				Secrets:      plainSecrets("{env.S}"),
				BearerTokens: []string{"{env.VEV_TOKEN}", "next-token"},
			},
		},
		{
			name: "everything",
			input: `webhook_verify vev {env.A} {
				secret {env.B}
				max_body_size 20MiB
				basic_auth vev {env.P}
				bearer_token {env.T}
			}`,
			provider: "vev",
			want: Handler{
				Secrets:      plainSecrets("{env.A}", "{env.B}"),
				MaxBodySize:  20 << 20,
				BasicAuth:    []BasicAccount{{Username: "vev", Password: "{env.P}"}},
				BearerTokens: []string{"{env.T}"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := cfUnmarshal(t, tc.input)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			var prov map[string]any
			if err := json.Unmarshal(h.ProviderRaw, &prov); err != nil {
				t.Fatalf("provider %s is not a JSON object: %v", h.ProviderRaw, err)
			}
			if want := map[string]any{"name": tc.provider}; !reflect.DeepEqual(prov, want) {
				t.Errorf("provider = %s, want %v", h.ProviderRaw, want)
			}
			got := *h
			got.ProviderRaw = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("handler =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// The directive written the way DESIGN.md shows it yields the JSON the
// contract names, key for key.
func TestCaddyfileJSONShape(t *testing.T) {
	h, err := cfUnmarshal(t, `webhook_verify vivreal {env.VIVREAL_SECRET} {
		max_body_size 1MiB
		basic_auth u p
		bearer_token t
	}`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"provider":{"name":"vivreal"},"secrets":["{env.VIVREAL_SECRET}"],"max_body_size":1048576,` +
		`"basic_auth":[{"username":"u","password":"p"}],"bearer_tokens":["t"]}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
}
