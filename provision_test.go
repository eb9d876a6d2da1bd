package webhookverify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Values of the secrets and credentials the tests configure: no error may
// contain one of them.
const (
	cfSecretValue   = "wv-test-secret-3c1f"
	cfLiteralSecret = "wv-literal-secret-9d2e"
	cfPasswordValue = "wv-test-password-7a4b"
	cfTokenValue    = "wv-test-token-5e8c"
)

// cfHandler unmarshals a handler's JSON config as Caddy would.
func cfHandler(t *testing.T, config string) *Handler {
	t.Helper()
	var h Handler
	if err := json.Unmarshal([]byte(config), &h); err != nil {
		t.Fatalf("bad test config %s: %v", config, err)
	}
	return &h
}

// cfProvision provisions the handler of config in a fresh Caddy context.
func cfProvision(t *testing.T, config string) (*Handler, error) {
	t.Helper()
	h := cfHandler(t, config)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return h, h.Provision(ctx)
}

// cfProvisionErr provisions config, which must fail with an error that
// contains every one of want and none of the test's secret values.
func cfProvisionErr(t *testing.T, config string, want ...string) {
	t.Helper()
	_, err := cfProvision(t, config)
	if err == nil {
		t.Fatalf("provisioning %s: no error, want one containing %q", config, want)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, secret := range []string{cfSecretValue, cfLiteralSecret, cfPasswordValue, cfTokenValue} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q reveals a secret value", msg)
		}
	}
}

// cfSetenv sets the environment the tests use: WV_TEST_SECRET,
// WV_TEST_PASSWORD and WV_TEST_TOKEN set, WV_TEST_UNSET unset and
// WV_TEST_EMPTY set but empty.
func cfSetenv(t *testing.T) {
	t.Setenv("WV_TEST_SECRET", cfSecretValue)
	t.Setenv("WV_TEST_PASSWORD", cfPasswordValue)
	t.Setenv("WV_TEST_TOKEN", cfTokenValue)
	t.Setenv("WV_TEST_EMPTY", "")
	t.Setenv("WV_TEST_UNSET", "") // restored when the test ends
	if err := os.Unsetenv("WV_TEST_UNSET"); err != nil {
		t.Fatal(err)
	}
}

func cfKeys(h *Handler) []string {
	if h.keys == nil {
		return nil
	}
	var keys []string
	for _, k := range h.keys.keys {
		keys = append(keys, string(k))
	}
	return keys
}

func cfBasic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestProvisionEnvSecret(t *testing.T) {
	cfSetenv(t)
	h, err := cfProvision(t, `{"provider": {"name": "vivreal"}, "secrets": ["{env.WV_TEST_SECRET}"]}`)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if got, want := cfKeys(h), []string{cfSecretValue}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	if h.name != "vivreal" {
		t.Errorf("name = %q, want vivreal", h.name)
	}
	if h.provider == nil || caddy.GetModuleID(h.provider) != "http.webhook_verify.providers.vivreal" {
		t.Errorf("provider = %#v, want the vivreal module", h.provider)
	}
	if want := []string{"http.webhook.id", "http.webhook.event"}; !reflect.DeepEqual(h.fields, want) {
		t.Errorf("fields = %q, want %q", h.fields, want)
	}
	if h.logger == nil || h.now == nil {
		t.Error("logger or clock not set")
	}
	// the configuration keeps the placeholder, not the value
	if h.Secrets[0].Value != "{env.WV_TEST_SECRET}" {
		t.Errorf("Secrets rewritten to %q", h.Secrets)
	}
}

func TestProvisionSecretsInOrder(t *testing.T) {
	cfSetenv(t)
	h, err := cfProvision(t, `{"provider": {"name": "vev"},
		"secrets": ["{env.WV_TEST_SECRET}", "`+cfLiteralSecret+`", "pre-{env.WV_TEST_TOKEN}-post"]}`)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	want := []string{cfSecretValue, cfLiteralSecret, "pre-" + cfTokenValue + "-post"}
	if got := cfKeys(h); !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	if want := []string{"http.webhook.id", "http.webhook.event", "http.webhook.hosting"}; !reflect.DeepEqual(h.fields, want) {
		t.Errorf("vev fields = %q, want %q", h.fields, want)
	}
}

func TestProvisionUnsetEnvSecret(t *testing.T) {
	cfSetenv(t)
	cfProvisionErr(t,
		`{"provider": {"name": "vivreal"}, "secrets": ["{env.WV_TEST_SECRET}", "`+cfLiteralSecret+`", "{env.WV_TEST_UNSET}"]}`,
		"vivreal", "secret 3", "{env.WV_TEST_UNSET}", "empty", "environment variable")
}

func TestProvisionEmptyEnvSecret(t *testing.T) {
	cfSetenv(t)
	cfProvisionErr(t,
		`{"provider": {"name": "vev"}, "secrets": ["{env.WV_TEST_EMPTY}"]}`,
		"vev", "secret 1", "{env.WV_TEST_EMPTY}", "empty")
}

// One empty placeholder among others empties part of the key: an error too.
func TestProvisionPartlyUnsetSecret(t *testing.T) {
	cfSetenv(t)
	cfProvisionErr(t,
		`{"provider": {"name": "vivreal"}, "secrets": ["{env.WV_TEST_SECRET}{env.WV_TEST_UNSET}"]}`,
		"secret 1", "{env.WV_TEST_UNSET}")
}

func TestProvisionFileSecret(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content string }{
		{"lf", "file-secret-1\n"},
		{"crlf", "file-secret-1\r\n"},
		{"none", "file-secret-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _ := json.Marshal(map[string]any{
				"provider": map[string]string{"name": "vivreal"},
				"secrets":  []string{"{file." + path + "}"},
			})
			h, err := cfProvision(t, string(cfg))
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got, want := cfKeys(h), []string{"file-secret-1"}; !reflect.DeepEqual(got, want) {
				t.Errorf("keys = %q, want %q", got, want)
			}
		})
	}
}

func TestProvisionEmptyFileSecret(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	newline := filepath.Join(dir, "newline")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newline, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{empty, newline, filepath.Join(dir, "missing")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, _ := json.Marshal(map[string]any{
				"provider": map[string]string{"name": "vev"},
				"secrets":  []string{"{file." + path + "}"},
			})
			cfProvisionErr(t, string(cfg), "secret 1", "{file."+path+"}", "empty", "check that the file exists")
		})
	}
}

// A literal secret with an unknown {placeholder} in it is refused rather
// than used with the placeholder dropped, and the error shows no more of
// the literal than the placeholder.
func TestProvisionSecretWithUnknownPlaceholder(t *testing.T) {
	h, err := cfProvision(t, `{"provider": {"name": "vivreal"}, "secrets": ["abc-`+cfLiteralSecret+`{wv.nope}def"]}`)
	if err == nil {
		t.Fatalf("provisioned with keys %q", cfKeys(h))
	}
	for _, leak := range []string{"abc", cfLiteralSecret, "def"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows %q of the literal secret", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "secret 1") {
		t.Errorf("error %q does not say which secret", err)
	}
}

func TestProvisionEmptyLiteralSecret(t *testing.T) {
	cfSetenv(t)
	cfProvisionErr(t,
		`{"provider": {"name": "vivreal"}, "secrets": ["`+cfLiteralSecret+`", ""]}`,
		"vivreal", "secret 2 is empty")
}

func TestProvisionNoSecret(t *testing.T) {
	for _, cfg := range []string{
		`{"provider": {"name": "vivreal"}}`,
		`{"provider": {"name": "vivreal"}, "secrets": []}`,
	} {
		cfProvisionErr(t, cfg, "vivreal", "no secret", `{env.VIVREAL_SECRET}`)
	}
	cfProvisionErr(t, `{"provider": {"name": "vev"}}`, "vev", "no secret", `{env.VEV_SECRET}`)
}

func TestProvisionNoProvider(t *testing.T) {
	cfProvisionErr(t, `{"secrets": ["`+cfLiteralSecret+`"]}`, "no provider", `"provider": {"name": "vivreal"}`)
}

func TestProvisionUnknownProvider(t *testing.T) {
	cfProvisionErr(t, `{"provider": {"name": "twilio"}, "secrets": ["`+cfLiteralSecret+`"]}`,
		"loading webhook provider", "http.webhook_verify.providers.twilio")
}

func TestProvisionProviderWithoutName(t *testing.T) {
	cfProvisionErr(t, `{"provider": {}, "secrets": ["`+cfLiteralSecret+`"]}`, "loading webhook provider", "'name'")
}

func TestProvisionCredentials(t *testing.T) {
	cfSetenv(t)
	h, err := cfProvision(t, `{"provider": {"name": "vev"}, "secrets": ["{env.WV_TEST_SECRET}"],
		"basic_auth": [{"username": "vev", "password": "{env.WV_TEST_PASSWORD}"}, {"username": "{env.WV_TEST_TOKEN}", "password": "lit"}],
		"bearer_tokens": ["{env.WV_TEST_TOKEN}", "literal-token"]}`)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	for _, tc := range []struct {
		auth string
		ok   bool
	}{
		{cfBasic("vev", cfPasswordValue), true},
		{cfBasic(cfTokenValue, "lit"), true},
		{"Bearer " + cfTokenValue, true},
		{"Bearer literal-token", true},
		// the placeholders were replaced, not kept
		{cfBasic("vev", "{env.WV_TEST_PASSWORD}"), false},
		{"Bearer {env.WV_TEST_TOKEN}", false},
		{cfBasic("vev", "lit"), false},
		{"", false},
	} {
		if got := h.creds.check(tc.auth); got != tc.ok {
			t.Errorf("check(%q) = %v, want %v", tc.auth, got, tc.ok)
		}
	}
}

func TestProvisionUnsetCredentials(t *testing.T) {
	cfSetenv(t)
	for _, tc := range []struct {
		name, extra string
		want        []string
	}{
		{
			name:  "basic user",
			extra: `"basic_auth": [{"username": "{env.WV_TEST_UNSET}", "password": "{env.WV_TEST_PASSWORD}"}]`,
			want:  []string{"basic_auth 1 user", "{env.WV_TEST_UNSET}", "environment variable"},
		},
		{
			name: "basic password of the second account",
			extra: `"basic_auth": [{"username": "a", "password": "{env.WV_TEST_PASSWORD}"},
				{"username": "b", "password": "{env.WV_TEST_UNSET}"}]`,
			want: []string{"basic_auth 2 password", "{env.WV_TEST_UNSET}"},
		},
		{
			name:  "basic password empty",
			extra: `"basic_auth": [{"username": "a", "password": "{env.WV_TEST_EMPTY}"}]`,
			want:  []string{"basic_auth 1 password", "{env.WV_TEST_EMPTY}"},
		},
		{
			name:  "basic literal empty password",
			extra: `"basic_auth": [{"username": "a", "password": ""}]`,
			want:  []string{"basic_auth 1 password is empty"},
		},
		{
			name:  "bearer",
			extra: `"bearer_tokens": ["{env.WV_TEST_TOKEN}", "{env.WV_TEST_UNSET}"]`,
			want:  []string{"bearer token 2", "{env.WV_TEST_UNSET}", "environment variable"},
		},
		{
			name:  "bearer literal empty",
			extra: `"bearer_tokens": [""]`,
			want:  []string{"bearer token 1 is empty"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := `{"provider": {"name": "vev"}, "secrets": ["{env.WV_TEST_SECRET}"], ` + tc.extra + `}`
			cfProvisionErr(t, cfg, append([]string{"vev: "}, tc.want...)...)
		})
	}
}

func TestProvisionDefaultMaxBodySize(t *testing.T) {
	h, err := cfProvision(t, `{"provider": {"name": "vivreal"}, "secrets": ["`+cfLiteralSecret+`"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxBodySize != 10<<20 || DefaultMaxBodySize != 10<<20 {
		t.Errorf("max_body_size = %d (DefaultMaxBodySize %d), want 10 MiB = %d", h.MaxBodySize, DefaultMaxBodySize, 10<<20)
	}

	h, err = cfProvision(t, `{"provider": {"name": "vivreal"}, "secrets": ["`+cfLiteralSecret+`"], "max_body_size": 2048}`)
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxBodySize != 2048 {
		t.Errorf("configured max_body_size 2048 became %d", h.MaxBodySize)
	}
}

func TestValidateMaxBodySize(t *testing.T) {
	for _, size := range []int64{0, 1, 10 << 20} {
		if err := (Handler{MaxBodySize: size}).Validate(); err != nil {
			t.Errorf("Validate with max_body_size %d: %v", size, err)
		}
	}
	for _, size := range []int64{-1, -5 << 20} {
		err := (Handler{MaxBodySize: size}).Validate()
		if err == nil {
			t.Errorf("Validate with max_body_size %d: no error", size)
			continue
		}
		if !strings.Contains(err.Error(), "max_body_size must be positive") {
			t.Errorf("Validate with max_body_size %d: error %q does not say what is wrong", size, err)
		}
	}
}

// A mistake in the Caddyfile reaches `caddy adapt` (and `caddy run`, which
// adapts first) with the file and line it is on.
func TestAdaptErrorNamesFileLine(t *testing.T) {
	const caddyfile = `:8080 {
	handle /hooks {
		webhook_verify vivreal {env.VIVREAL_SECRET} {
			max_body_size 1MiB
			signature_header X-Sig
		}
	}
}
`
	for _, tc := range []struct{ filename, at string }{
		{"", ", at Caddyfile:5"}, // the adapter's default name
		{"/etc/caddy/Caddyfile", ", at /etc/caddy/Caddyfile:5"},
	} {
		opts := map[string]any{}
		if tc.filename != "" {
			opts["filename"] = tc.filename
		}
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), opts)
		if err == nil {
			t.Fatalf("adapting with an unknown subdirective: no error")
		}
		for _, want := range []string{"webhook_verify", "unrecognized subdirective 'signature_header'", tc.at} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	}
}

// A secret that is unset when the config is loaded stops the load, naming
// the placeholder: the adapted config is validated as `caddy validate` and
// `caddy run` do, without starting a server.
func TestAdaptThenValidateUnsetSecret(t *testing.T) {
	cfSetenv(t)
	const caddyfile = `{
	admin off
}

:8080 {
	webhook_verify vivreal {env.WV_TEST_SECRET} {
		secret {env.WV_TEST_UNSET}
	}
}
`
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(&cfg)
	if err == nil {
		t.Fatal("config with an unset secret validated")
	}
	for _, want := range []string{"webhook_verify", "vivreal", "secret 2", "{env.WV_TEST_UNSET}"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), cfSecretValue) {
		t.Errorf("error %q reveals the secret", err)
	}
}
