package webhookverify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The shared vectors of the senders (testdata/vectors/senders/<sender>.json,
// format in that directory's generators and the brief): each case
// is run through a real, provisioned Handler with its clock pinned, and its
// outcome, forwarded bytes and placeholders are checked.

const svDir = "testdata/vectors/senders"

// svFile is one sender's vector file.
type svFile struct {
	Sender   string          `json:"sender"`
	Provider json.RawMessage `json:"provider"`
	Sources  []string        `json:"sources"`
	Cases    []svCase        `json:"cases"`
}

// svCase is one vector: a request, the handler's keys and clock, and the
// outcome it must have.
type svCase struct {
	Name       string              `json:"name"`
	Source     string              `json:"source"`
	Now        int64               `json:"now"`
	Keys       []string            `json:"keys"`
	Provider   json.RawMessage     `json:"provider"`
	Headers    map[string][]string `json:"headers"`
	Body       string              `json:"body"`
	BodyBase64 string              `json:"body_base64"`
	Want       string              `json:"want"`
	Fields     map[string]string   `json:"fields"`
}

// svLoad reads and checks the shape of a vector file.
func svLoad(t *testing.T, path string) svFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f svFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.Sender == "" || len(f.Provider) == 0 || len(f.Sources) == 0 || len(f.Cases) == 0 {
		t.Fatalf("%s: sender, provider, sources and cases are required", path)
	}
	if want := f.Sender + ".json"; filepath.Base(path) != want {
		t.Errorf("%s: sender %q belongs in %s", path, f.Sender, want)
	}
	seen := make(map[string]bool)
	wants := make(map[string]int)
	for _, c := range f.Cases {
		switch {
		case c.Name == "" || seen[c.Name]:
			t.Errorf("%s: case name %q empty or repeated", path, c.Name)
		case c.Source == "":
			t.Errorf("%s: case %s has no source", path, c.Name)
		case len(c.Keys) == 0:
			t.Errorf("%s: case %s has no keys", path, c.Name)
		case c.Body != "" && c.BodyBase64 != "":
			t.Errorf("%s: case %s has both body and body_base64", path, c.Name)
		case c.Want != outcomeVerified && c.Fields != nil:
			t.Errorf("%s: case %s: fields are only for verified cases", path, c.Name)
		}
		switch c.Want {
		case outcomeVerified, outcomeMissingSignature, outcomeMalformedSignature, outcomeBadSignature:
		default:
			t.Errorf("%s: case %s: want %q is not verified, missing_signature, malformed_signature or bad_signature", path, c.Name, c.Want)
		}
		seen[c.Name] = true
		wants[c.Want]++
	}
	if wants[outcomeVerified] == 0 || wants[outcomeBadSignature] == 0 {
		t.Errorf("%s: want at least one verified and one bad_signature case, have %v", path, wants)
	}
	return f
}

// svFiles lists the vector files.
func svFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(svDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no vectors in %s", svDir)
	}
	return files
}

// svProvider is the provider object of a case: the case's own, else the
// file's. With a twin (another provider object said to be equivalent, such
// as an hmac configuration), the twin is used, with the case's options
// other than "name" (a tolerance, say) laid over it.
func svProvider(t *testing.T, f svFile, c svCase, twin json.RawMessage) json.RawMessage {
	t.Helper()
	if twin == nil {
		if c.Provider != nil {
			return c.Provider
		}
		return f.Provider
	}
	if c.Provider == nil {
		return twin
	}
	var obj, over map[string]json.RawMessage
	if err := json.Unmarshal(twin, &obj); err != nil {
		t.Fatalf("twin provider: %v", err)
	}
	if err := json.Unmarshal(c.Provider, &over); err != nil {
		t.Fatalf("case %s provider: %v", c.Name, err)
	}
	for k, v := range over {
		if k != "name" {
			obj[k] = v
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// svHandler provisions a Handler from the handler JSON Caddy would get.
func svHandler(t *testing.T, provider json.RawMessage, keys []string) (*Handler, error) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{
		"handler":  "webhook_verify",
		"provider": provider,
		"secrets":  keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	var h Handler
	if err := json.Unmarshal(cfg, &h); err != nil {
		t.Fatalf("config %s: %v", cfg, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// svRecorder is the next handler: it records what it was handed.
type svRecorder struct {
	called int
	body   []byte
	cl     int64
	repl   *caddy.Replacer
}

func (rec *svRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	rec.called++
	rec.cl = r.ContentLength
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return err
	}
	rec.body = buf.Bytes()
	rec.repl = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// svRunCase runs one case and reports what differs from its expectation.
func svRunCase(t *testing.T, f svFile, c svCase, twin json.RawMessage) {
	t.Helper()
	body := []byte(c.Body)
	if c.BodyBase64 != "" {
		var err error
		if body, err = base64.StdEncoding.DecodeString(c.BodyBase64); err != nil {
			t.Fatalf("body_base64: %v", err)
		}
	}
	h, err := svHandler(t, svProvider(t, f, c, twin), c.Keys)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	if c.Now != 0 {
		now := time.Unix(c.Now, 0)
		h.now = func() time.Time { return now }
	}

	r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	for name, vals := range c.Headers {
		for _, v := range vals {
			r.Header.Add(name, v) // canonicalised, as a server reads it
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	rec := &svRecorder{}
	w := httptest.NewRecorder()
	err = h.ServeHTTP(w, r, rec)

	got := outcomeVerified
	if err != nil {
		got = outcomeOf(err)
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
			t.Errorf("refusal is not a 401 caddyhttp.Error: %T %v", err, err)
		}
		for _, k := range c.Keys {
			if strings.Contains(err.Error(), k) {
				t.Errorf("error %q reveals a key", err)
			}
		}
		if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
			t.Errorf("error %q reveals the body", err)
		}
	}
	if got != c.Want {
		t.Fatalf("outcome %s (%v), want %s [%s]", got, err, c.Want, c.Source)
	}
	if c.Want != outcomeVerified {
		if rec.called != 0 {
			t.Fatal("a refused request reached the next handler")
		}
		return
	}
	if rec.called != 1 {
		t.Fatalf("next called %d times", rec.called)
	}
	if !bytes.Equal(rec.body, body) || rec.cl != int64(len(body)) {
		t.Errorf("forwarded %d bytes (Content-Length %d), not the %d received byte for byte", len(rec.body), rec.cl, len(body))
	}
	for name, want := range c.Fields {
		if v, _ := rec.repl.GetString(placeholderPrefix + name); v != want {
			t.Errorf("{http.webhook.%s} = %q, want %q", name, v, want)
		}
	}
}

// svRunFile runs every case of a vector file, through the file's provider
// or, when twin is not nil, through that provider object instead.
func svRunFile(t *testing.T, path string, twin json.RawMessage) {
	t.Helper()
	f := svLoad(t, path)
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) { svRunCase(t, f, c, twin) })
	}
}

func TestSendersVectors(t *testing.T) {
	for _, path := range svFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			svRunFile(t, path, nil)
		})
	}
}

// The presets this file owns must all have vectors.
func TestSendersVectorsPresent(t *testing.T) {
	for _, s := range []string{"github", "standard", "stripe", "slack", "shopify"} {
		f := svLoad(t, filepath.Join(svDir, s+".json"))
		var p struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(f.Provider, &p); err != nil || p.Name != s {
			t.Errorf("%s.json: provider %s, want name %q", s, f.Provider, s)
		}
	}
}

// Standard Webhooks secrets are decoded at provision: an empty one, or
// whsec_ alone, is refused there (the JavaScript library's "empty key raises
// error"), with a sentence and never the secret.
func TestSendersStandardSecretsAtProvision(t *testing.T) {
	provider := json.RawMessage(`{"name":"standard"}`)
	for _, tc := range []struct {
		secret string
		want   string
	}{
		{"", "empty"},
		{"whsec_", "empty after whsec_"},
		{"whsec_not base64!", "not whsec_ followed by base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", "not whsec_ followed by base64"},
		{"whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "not supported"},
	} {
		_, err := svHandler(t, provider, []string{tc.secret})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("secret %q: provision error %v, want one saying %q", tc.secret, err, tc.want)
			continue
		}
		if len(tc.secret) > len("whsec_") && strings.Contains(err.Error(), tc.secret[len("whsec_"):]) {
			t.Errorf("secret %q: error %q reveals it", tc.secret, err)
		}
		if !strings.Contains(err.Error(), "secret 1") {
			t.Errorf("secret %q: error %q does not say which secret", tc.secret, err)
		}
	}
	for _, ok := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if _, err := svHandler(t, provider, []string{ok}); err != nil {
			t.Errorf("secret %q: %v", ok, err)
		}
	}
	// Stripe uses whsec_ secrets as they are: even "whsec_" alone is a key.
	if _, err := svHandler(t, json.RawMessage(`{"name":"stripe"}`), []string{"whsec_"}); err != nil {
		t.Errorf("stripe whsec_: %v", err)
	}
	// A negative tolerance is a configuration mistake.
	for _, name := range []string{"standard", "stripe", "slack"} {
		_, err := svHandler(t, json.RawMessage(`{"name":"`+name+`","tolerance":"-1m"}`), []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
		if err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("%s with tolerance -1m: %v, want a provision error", name, err)
		}
	}
}

// The committed vectors of the presets are exactly what their generators
// (Node's crypto, and openssl for Shopify) write: run them into a
// temporary directory and compare. Skipped where node is not installed.
func TestSendersVectorsRegenerate(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		needTool(t, "node", "the generators cannot be rerun")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		needTool(t, "openssl", "gen/shopify.js checks its signature with it")
	}
	out := t.TempDir()
	for _, s := range []string{"github", "standard", "stripe", "slack", "shopify"} {
		cmd := exec.Command("node", filepath.Join(svDir, "gen", s+".js"))
		cmd.Env = append(os.Environ(), "VECTORS_OUT="+out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gen/%s.js: %v\n%s", s, err, msg)
		}
		got, err := os.ReadFile(filepath.Join(out, s+".json"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(svDir, s+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.json is not what gen/%s.js writes: rerun testdata/vectors/senders/gen/all.sh", s, s)
		}
	}
}

// needTool skips a test that needs a tool which is not installed, except
// under CI=true (.ci/run installs it), where its absence is a failure.
func needTool(t *testing.T, tool, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true): %s; .ci/run installs it", tool, why)
	}
	t.Skipf("%s is not installed: %s", tool, why)
}
