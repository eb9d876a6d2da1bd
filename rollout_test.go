package webhookverify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Rolling out: report-only (enforce off), expiring secrets, which key
// verified, and the diagnostic hints of a refused signature.

// hintCase is one request of testdata/vectors/hints/hints.json (made by
// gen.js with Node's crypto).
type hintCase struct {
	Name     string              `json:"name"`
	Source   string              `json:"source"`
	Provider json.RawMessage     `json:"provider"`
	Secrets  []json.RawMessage   `json:"secrets"`
	Now      int64               `json:"now"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	Want     string              `json:"want"`
	Hint     string              `json:"hint"`
	Key      string              `json:"key"`
	Form     string              `json:"form"`
}

const hintsFile = "testdata/vectors/hints/hints.json"

func loadHints(t *testing.T) []hintCase {
	t.Helper()
	raw, err := os.ReadFile(hintsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sources []string   `json:"sources"`
		Cases   []hintCase `json:"cases"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	return f.Cases
}

// roHandler provisions a handler from its JSON config, logging into an
// observer, with its clock pinned to now (unless zero).
func roHandler(t *testing.T, cfg map[string]any, now time.Time) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h Handler
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("config %s: %v", raw, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision %s: %v", raw, err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	core, logs := observer.New(zap.InfoLevel)
	h.logger = zap.New(core)
	if !now.IsZero() {
		h.now = func() time.Time { return now }
	}
	return &h, logs
}

// roServe sends one POST through h and returns what next saw (nil if it
// did not run) and the handler's error.
func roServe(h *Handler, method string, header http.Header, body []byte) (*svRecorder, error) {
	r := httptest.NewRequest(method, "/hook", bytes.NewReader(body))
	for name, vals := range header {
		for _, v := range vals {
			r.Header.Add(name, v)
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	rec := &svRecorder{}
	err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
	return rec, err
}

// roLine returns the one log line with message msg, failing otherwise.
func roLine(t *testing.T, logs *observer.ObservedLogs, msg string) map[string]any {
	t.Helper()
	lines := logs.FilterMessage(msg).AllUntimed()
	if len(lines) != 1 {
		t.Fatalf("%d log lines %q, want 1 (all: %v)", len(lines), msg, logs.AllUntimed())
	}
	return lines[0].ContextMap()
}

// TestHintsVectors runs every hints.json request with enforce on (refused,
// with the hint in the log line, or no hint at all for a plain forgery)
// and with enforce off (forwarded byte for byte as unverified, with the
// same hint in the report line).
func TestHintsVectors(t *testing.T) {
	for _, c := range loadHints(t) {
		for _, enforce := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/enforce=%v", c.Name, enforce), func(t *testing.T) {
				cfg := map[string]any{"provider": c.Provider, "secrets": c.Secrets}
				if !enforce {
					cfg["enforce"] = false
				}
				var now time.Time
				if c.Now != 0 {
					now = time.Unix(c.Now, 0)
				}
				h, logs := roHandler(t, cfg, now)
				form := c.Form
				if form == "" {
					form = "raw"
				}
				before := testCounter(h.metrics.forms[form])
				rec, err := roServe(h, http.MethodPost, c.Headers, []byte(c.Body))
				wantForm := 0.0
				if c.Want == outcomeVerified {
					wantForm = 1
				}
				if d := testCounter(h.metrics.forms[form]) - before; d != wantForm {
					t.Errorf("signed_form_total{form=%s} grew by %v, want %v", form, d, wantForm)
				}

				if c.Want == outcomeVerified {
					if err != nil || rec.called != 1 {
						t.Fatalf("not verified: %v [%s]", err, c.Source)
					}
					if v, _ := rec.repl.GetString("http.webhook.key"); v != c.Key {
						t.Errorf("{http.webhook.key} = %q, want %q", v, c.Key)
					}
					if v, _ := rec.repl.GetString("http.webhook.verified"); v != "true" {
						t.Errorf("{http.webhook.verified} = %q", v)
					}
					if n := logs.Len() - logs.FilterMessageSnippet("webhook verified over its").Len(); n != 0 {
						t.Errorf("a verified request logged %d lines", n)
					}
					if v, _ := rec.repl.GetString("http.webhook.signed_form"); v != form {
						t.Errorf("{http.webhook.signed_form} = %q, want %q", v, form)
					}
					return
				}
				var line map[string]any
				if enforce {
					if err == nil || rec.called != 0 {
						t.Fatalf("forwarded (err %v) [%s]", err, c.Source)
					}
					if got := outcomeOf(err); got != c.Want {
						t.Fatalf("outcome %s (%v), want %s", got, err, c.Want)
					}
					if he, ok := errors.AsType[caddyhttp.HandlerError](err); !ok || he.StatusCode != 401 {
						t.Errorf("refusal %v is not a 401", err)
					}
					line = roLine(t, logs, "webhook rejected")
				} else {
					if err != nil || rec.called != 1 {
						t.Fatalf("report-only: not forwarded: %v", err)
					}
					if !bytes.Equal(rec.body, []byte(c.Body)) || rec.cl != int64(len(c.Body)) {
						t.Errorf("forwarded %q (%d), not the body", rec.body, rec.cl)
					}
					if v, _ := rec.repl.GetString("http.webhook.verified"); v != "false" {
						t.Errorf("{http.webhook.verified} = %q, want false", v)
					}
					if v, _ := rec.repl.GetString("http.webhook.key"); v != "" {
						t.Errorf("{http.webhook.key} = %q, want empty", v)
					}
					line = roLine(t, logs, reportMessage)
					if got := outcomeOf(errors.New(fmt.Sprint(line["reason"]))); line["enforced"] != false || got == "" {
						t.Errorf("report line %v", line)
					}
				}
				hint, has := line["hint"].(string)
				switch {
				case c.Hint == "" && has:
					t.Errorf("hint %q for a request that needs none", hint)
				case c.Hint != "" && !strings.Contains(hint, c.Hint):
					t.Errorf("hint %q, want one with %q", hint, c.Hint)
				}
				for _, s := range c.Secrets {
					var sec Secret
					_ = json.Unmarshal(s, &sec)
					if strings.Contains(fmt.Sprint(line), sec.Value) {
						t.Errorf("the log line reveals a secret: %v", line)
					}
				}
			})
		}
	}
}

// TestHintsVectorsRegenerate checks that hints.json is what gen.js makes
// with Node today.
func TestHintsVectorsRegenerate(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is required under CI=true")
		}
		t.Skip("node is not installed")
	}
	out, err := exec.Command("node", "testdata/vectors/hints/gen.js").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(hintsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("%s differs from what node testdata/vectors/hints/gen.js makes: regenerate it", hintsFile)
	}
}

// TestSecretExpiresWithoutReload moves the handler's clock across a
// secret's not_after: it verifies (as key 1) until that instant and not
// from it on, while key 2 keeps verifying; the metric counts each key.
func TestSecretExpiresWithoutReload(t *testing.T) {
	notAfter := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := notAfter.Add(-time.Second)
	h, logs := roHandler(t, map[string]any{
		"provider": map[string]string{"name": "vivreal"},
		"secrets":  []any{map[string]string{"secret": "old-secret-1", "not_after": notAfter.Format(time.RFC3339)}, "new-secret-2"},
	}, time.Time{})
	h.now = func() time.Time { return clock }
	body := []byte(`{"id":"evt_x","event":"e"}`)
	sig := func(secret string) http.Header {
		return http.Header{"X-Vivreal-Signature": {roSign(secret, body)}}
	}
	k1, k2 := testCounter(h.metrics.keys[0]), testCounter(h.metrics.keys[1])

	rec, err := roServe(h, http.MethodPost, sig("old-secret-1"), body)
	if err != nil || rec.called != 1 {
		t.Fatalf("a second before not_after: %v", err)
	}
	if v, _ := rec.repl.GetString("http.webhook.key"); v != "1" {
		t.Errorf("key %q, want 1", v)
	}
	clock = notAfter // the instant itself: expired
	if _, err := roServe(h, http.MethodPost, sig("old-secret-1"), body); outcomeOf(err) != outcomeBadSignature {
		t.Fatalf("at not_after: %v, want a bad signature", err)
	}
	if line := roLine(t, logs, "webhook rejected"); !strings.Contains(fmt.Sprint(line["hint"]), "matches secret 1, which expired at 2026-12-01T12:00:00Z") {
		t.Errorf("hint %v", line["hint"])
	}
	rec, err = roServe(h, http.MethodPost, sig("new-secret-2"), body)
	if err != nil || rec.called != 1 {
		t.Fatalf("key 2 after key 1 expired: %v", err)
	}
	if v, _ := rec.repl.GetString("http.webhook.key"); v != "2" {
		t.Errorf("key %q, want 2", v)
	}
	if d1, d2 := testCounter(h.metrics.keys[0])-k1, testCounter(h.metrics.keys[1])-k2; d1 != 1 || d2 != 1 {
		t.Errorf("key_matches_total grew by %v (key 1) and %v (key 2), want 1 and 1", d1, d2)
	}
}

// TestExpiryWarnings drives the warnings with an injected clock: none
// until seven days before not_after, then one a day (a reload does not
// repeat the day's), and one at the instant, once.
func TestExpiryWarnings(t *testing.T) {
	na := time.Date(2031, 3, 10, 0, 0, 0, 0, time.UTC) // unique to this test: the warnings are remembered per process
	core, logs := observer.New(zap.InfoLevel)
	newWarner := func() *expiryWarner {
		return &expiryWarner{provider: "vivreal", notAfter: []time.Time{{}, na}, prints: make([][8]byte, 2), logger: zap.New(core)}
	}
	w := newWarner()
	soon := func() int { return logs.FilterMessageSnippet("expires soon").Len() }
	expired := func() int { return logs.FilterMessageSnippet("secret expired").Len() }

	start := na.Add(-10 * 24 * time.Hour)
	if next := w.warn(start); soon() != 0 || !next.Equal(na.Add(-7*24*time.Hour)) {
		t.Fatalf("10 days before: %d warnings, next %v", soon(), next)
	}
	d7 := na.Add(-7 * 24 * time.Hour)
	next := w.warn(d7)
	if soon() != 1 || !next.Equal(d7.Add(24*time.Hour)) {
		t.Fatalf("7 days before: %d warnings, next %v", soon(), next)
	}
	line := logs.FilterMessageSnippet("expires soon").AllUntimed()[0].ContextMap()
	if line["secret"] != int64(2) || line["expires_in"] != "168h" {
		t.Errorf("warning %v", line)
	}
	if w.warn(d7.Add(time.Hour)); soon() != 1 {
		t.Errorf("an hour later: %d warnings, want still 1", soon())
	}
	if newWarner().warn(d7.Add(2 * time.Hour)); soon() != 1 {
		t.Errorf("after a reload, the same day: %d warnings, want still 1", soon())
	}
	for day := 1; day < 7; day++ {
		w.warn(d7.Add(time.Duration(day) * 24 * time.Hour))
	}
	if soon() != 7 || expired() != 0 {
		t.Errorf("%d daily warnings, %d expiries; want 7 and 0", soon(), expired())
	}
	if next := w.warn(na.Add(-time.Minute)); !next.Equal(na) {
		t.Errorf("a minute before: next %v, want not_after", next)
	}
	if next := w.warn(na); expired() != 1 || !next.IsZero() {
		t.Errorf("at not_after: %d expiries, next %v", expired(), next)
	}
	w.warn(na.Add(time.Hour))
	newWarner().warn(na.Add(2 * time.Hour))
	if expired() != 1 {
		t.Errorf("%d expiry warnings, want 1", expired())
	}
}

// TestReportOnlyChecks: with enforce off, a wrong method, wrong
// credentials and a missing signature are forwarded as unverified and
// counted under their own outcomes (and not_enforced_total); the
// signature's verdict is in the line when another check failed first;
// max_body_size is still enforced.
func TestReportOnlyChecks(t *testing.T) {
	h, logs := roHandler(t, map[string]any{
		"provider":      map[string]string{"name": "vivreal"},
		"secrets":       []string{"ro-secret"},
		"enforce":       false,
		"bearer_tokens": []string{"ro-token"},
		"max_body_size": 64,
	}, time.Time{})
	body := []byte(`{"id":"evt_ro","event":"e"}`)
	good := roSign("ro-secret", body)
	auth := "Bearer ro-token"
	for _, tc := range []struct {
		name, method, auth, sig string
		outcome, signature      string
	}{
		{"get", http.MethodGet, auth, good, outcomeMethodNotAllowed, "verified"},
		{"no token", http.MethodPost, "", good, outcomeBadCredentials, "verified"},
		{"no token, forged", http.MethodPost, "Bearer nope", "sha256=" + strings.Repeat("0", 64), outcomeBadCredentials, "no matching signature"},
		{"missing signature", http.MethodPost, auth, "", outcomeMissingSignature, ""},
		{"malformed", http.MethodPost, auth, "sha256=zz", outcomeMalformedSignature, ""},
		{"forged", http.MethodPost, auth, "sha256=" + strings.Repeat("0", 64), outcomeBadSignature, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testCounter(h.metrics.outcomes[tc.outcome])
			beforeNE := testCounter(h.metrics.notEnforced[tc.outcome])
			hdr := http.Header{}
			if tc.auth != "" {
				hdr.Set("Authorization", tc.auth)
			}
			if tc.sig != "" {
				hdr.Set("X-Vivreal-Signature", tc.sig)
			}
			rec, err := roServe(h, tc.method, hdr, body)
			if err != nil || rec.called != 1 || !bytes.Equal(rec.body, body) {
				t.Fatalf("not forwarded: %v", err)
			}
			if v, _ := rec.repl.GetString("http.webhook.verified"); v != "false" {
				t.Errorf("verified = %q", v)
			}
			if v, _ := rec.repl.GetString("http.webhook.id"); v != "evt_ro" {
				t.Errorf("id = %q: the fields are read as for a verified request", v)
			}
			if testCounter(h.metrics.outcomes[tc.outcome])-before != 1 || testCounter(h.metrics.notEnforced[tc.outcome])-beforeNE != 1 {
				t.Errorf("not counted once under %s and not_enforced", tc.outcome)
			}
			line := roLine(t, logs, reportMessage)
			logs.TakeAll()
			if sig, _ := line["signature"].(string); sig != tc.signature {
				t.Errorf("signature field %q, want %q (line %v)", sig, tc.signature, line)
			}
			if strings.Contains(fmt.Sprint(line), "ro-secret") || strings.Contains(fmt.Sprint(line), "ro-token") {
				t.Errorf("line reveals a secret: %v", line)
			}
		})
	}
	t.Run("oversize", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 65)
		hdr := http.Header{"Authorization": {auth}, "X-Vivreal-Signature": {roSign("ro-secret", big)}}
		rec, err := roServe(h, http.MethodPost, hdr, big)
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); !ok || he.StatusCode != 413 || rec.called != 0 {
			t.Fatalf("oversize: %v, forwarded %d", err, rec.called)
		}
	})
	t.Run("verified", func(t *testing.T) {
		rec, err := roServe(h, http.MethodPost, http.Header{"Authorization": {auth}, "X-Vivreal-Signature": {good}}, body)
		if err != nil || rec.called != 1 {
			t.Fatal(err)
		}
		if v, _ := rec.repl.GetString("http.webhook.verified"); v != "true" {
			t.Errorf("verified = %q", v)
		}
		if v, _ := rec.repl.GetString("http.webhook.key"); v != "1" {
			t.Errorf("key = %q", v)
		}
	})
}

// TestReportOnlyDedupeBypass: with enforce off and dedupe, an unverified
// request is forwarded without taking its event id, so that the genuine
// event with that id that follows is delivered, not a duplicate.
func TestReportOnlyDedupeBypass(t *testing.T) {
	h, _ := roHandler(t, map[string]any{
		"provider": map[string]string{"name": "vivreal"},
		"secrets":  []string{"dd-secret"},
		"enforce":  false,
		"dedupe":   map[string]any{"ttl": "1h"},
	}, time.Time{})
	id := fmt.Sprintf("evt_ro_dd_%d", time.Now().UnixNano())
	body := []byte(`{"id":"` + id + `","event":"e"}`)
	for i, sig := range []string{"sha256=" + strings.Repeat("0", 64), roSign("dd-secret", body), roSign("dd-secret", body)} {
		rec, err := roServe(h, http.MethodPost, http.Header{"X-Vivreal-Signature": {sig}}, body)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := 1
		if i == 2 {
			want = 0 // the genuine event's retry: a duplicate, answered by the handler
		}
		if rec.called != want {
			t.Fatalf("request %d: next ran %d times, want %d", i, rec.called, want)
		}
	}
}

// TestProvisionEveryoneExpired: a configuration whose every secret has
// expired fails at start, saying how to fix it.
func TestProvisionEveryoneExpired(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var h Handler
	raw := fmt.Sprintf(`{"provider":{"name":"vivreal"},"secrets":[{"secret":"a","not_after":%q},{"secret":"b","not_after":%q}]}`,
		past.Add(-time.Hour).Format(time.RFC3339), past.Format(time.RFC3339))
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "every secret has expired (the last one at "+past.Format(time.RFC3339)+")") {
		t.Fatalf("error %v", err)
	}
}

// TestSecretJSON: a secret is a string, or an object with not_after; one
// without not_after is written back as a string.
func TestSecretJSON(t *testing.T) {
	var h Handler
	in := `{"secrets":["{env.A}",{"secret":"{env.B}","not_after":"2026-12-31T00:00:00Z"}]}`
	if err := json.Unmarshal([]byte(in), &h); err != nil {
		t.Fatal(err)
	}
	want := []Secret{{Value: "{env.A}"}, {Value: "{env.B}", NotAfter: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}}
	if len(h.Secrets) != 2 || h.Secrets[0] != want[0] || !h.Secrets[1].NotAfter.Equal(want[1].NotAfter) || h.Secrets[1].Value != want[1].Value {
		t.Fatalf("secrets %+v", h.Secrets)
	}
	out, err := json.Marshal(h.Secrets)
	if err != nil || string(out) != `["{env.A}",{"secret":"{env.B}","not_after":"2026-12-31T00:00:00Z"}]` {
		t.Errorf("marshalled %s %v", out, err)
	}
	for _, bad := range []string{`{"secrets":[{"secret":"a","not_after":"tomorrow"}]}`, `{"secrets":[{"secret":"a","notafter":"2026-12-31T00:00:00Z"}]}`, `{"secrets":[1]}`} {
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// roSign is Vivreal's signature header value: "sha256=" and the hex
// HMAC-SHA256 of body (crypto/hmac; the scheme's own vectors are in
// testdata/vectors).
func roSign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// testCounter reads a counter's value.
func testCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestHintsBodyBound: the hints re-hash bodies of at most 1 MiB; a larger
// one is refused without them.
func TestHintsBodyBound(t *testing.T) {
	h, logs := roHandler(t, map[string]any{
		"provider":      map[string]string{"name": "vivreal"},
		"secrets":       []string{"bound-secret"},
		"max_body_size": 4 << 20,
	}, time.Time{})
	for _, tc := range []struct {
		size int
		hint bool
	}{{hintMaxBody, true}, {hintMaxBody + 1, false}} {
		signed := bytes.Repeat([]byte("a"), tc.size-1)
		body := append(append([]byte(nil), signed...), '\n') // a newline added after signing
		if _, err := roServe(h, http.MethodPost, http.Header{"X-Vivreal-Signature": {roSign("bound-secret", signed)}}, body); outcomeOf(err) != outcomeBadSignature {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		line := roLine(t, logs, "webhook rejected")
		logs.TakeAll()
		if _, has := line["hint"]; has != tc.hint {
			t.Errorf("%d-byte body: hint %v, want a hint: %v", tc.size, line["hint"], tc.hint)
		}
	}
}

// TestReportOnlyLimits: with enforce off, the limits that protect the
// gateway still answer, for a request that fails its checks and for one
// that passes: max_inflight_bytes (declared and chunked bodies) 503, and
// body_timeout 408; nothing is forwarded and nothing stays reserved.
func TestReportOnlyLimits(t *testing.T) {
	h, _ := roHandler(t, map[string]any{
		"provider":           map[string]string{"name": "vivreal"},
		"secrets":            []string{"lim-secret"},
		"enforce":            false,
		"max_body_size":      4096,
		"max_inflight_bytes": 4096,
	}, time.Time{})
	body := bytes.Repeat([]byte("b"), 2000)
	for _, sig := range []string{"", roSign("lim-secret", body), "sha256=" + strings.Repeat("0", 64)} {
		for _, chunked := range []bool{false, true} {
			h.inflight.Add(3000) // another request holds most of the budget
			r := hRequest(context.Background(), http.MethodPost, string(body), http.Header{"X-Vivreal-Signature": {sig}})
			if sig == "" {
				r.Header.Del("X-Vivreal-Signature")
			}
			if chunked {
				r.ContentLength = -1
				r.Header.Del("Content-Length")
			}
			rec := &svRecorder{}
			err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
			h.inflight.Add(-3000)
			if he, ok := errors.AsType[caddyhttp.HandlerError](err); !ok || he.StatusCode != 503 || rec.called != 0 {
				t.Errorf("sig %q chunked %v over the budget: %v, forwarded %d times; want 503", sig, chunked, err, rec.called)
			}
			if n := h.inflight.Load(); n != 0 {
				t.Fatalf("%d bytes left reserved", n)
			}
		}
	}
	restore := setBodyTimerHook(func(d time.Duration, f func()) stopper {
		return &manualTimer{fire: f, onStop: func(fire func()) bool { fire(); return false }}
	})
	defer restore()
	for _, sig := range []string{"", "sha256=" + strings.Repeat("0", 64)} {
		r := hRequest(context.Background(), http.MethodPost, string(body), http.Header{"X-Vivreal-Signature": {sig}})
		if sig == "" {
			r.Header.Del("X-Vivreal-Signature")
		}
		rec := &svRecorder{}
		err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); !ok || he.StatusCode != 408 || rec.called != 0 {
			t.Errorf("sig %q past body_timeout: %v, forwarded %d times; want 408", sig, err, rec.called)
		}
	}
}

// TestReportOnlyVerifiedButRefused: with enforce off, a request whose
// signature verifies but whose credentials do not is not a verified
// request: {http.webhook.key} is empty and neither key_matches_total nor
// signed_form_total counts it; with dedupe, {http.webhook.duplicate} is
// false.
func TestReportOnlyVerifiedButRefused(t *testing.T) {
	h, _ := roHandler(t, map[string]any{
		"provider":      map[string]string{"name": "vivreal"},
		"secrets":       []string{"vr-secret"},
		"enforce":       false,
		"bearer_tokens": []string{"vr-token"},
		"dedupe":        map[string]any{"ttl": "1h"},
	}, time.Time{})
	body := []byte(fmt.Sprintf(`{"id":"evt_vr_%d","event":"e"}`, time.Now().UnixNano()))
	k1, raw := testCounter(h.metrics.keys[0]), testCounter(h.metrics.forms["raw"])
	rec, err := roServe(h, http.MethodPost, http.Header{"X-Vivreal-Signature": {roSign("vr-secret", body)}}, body)
	if err != nil || rec.called != 1 {
		t.Fatalf("not forwarded: %v", err)
	}
	for name, want := range map[string]string{"verified": "false", "key": "", "duplicate": "false"} {
		if v, _ := rec.repl.GetString("http.webhook." + name); v != want {
			t.Errorf("{http.webhook.%s} = %q, want %q", name, v, want)
		}
	}
	if testCounter(h.metrics.keys[0]) != k1 || testCounter(h.metrics.forms["raw"]) != raw {
		t.Error("a request that failed its credentials was counted as verified by a key or a form")
	}
}

// TestHintsRateAndChunked: a stream of forgeries gets hints for the first
// hintBurst only, then one a second (of the handler's clock); a chunked
// body is never re-hashed for the encoding hint.
func TestHintsRateAndChunked(t *testing.T) {
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h, logs := roHandler(t, map[string]any{
		"provider": map[string]string{"name": "vivreal"},
		"secrets":  []string{"rate-secret"},
	}, time.Time{})
	h.now = func() time.Time { return clock }
	body := []byte(`{"id":"evt_rate"}`)
	nl := append(append([]byte(nil), body...), '\n')
	hdr := http.Header{"X-Vivreal-Signature": {roSign("rate-secret", body)}}
	hints := func(n int) int {
		for range n {
			if _, err := roServe(h, http.MethodPost, hdr, nl); outcomeOf(err) != outcomeBadSignature {
				t.Fatalf("%v", err)
			}
		}
		got := 0
		for _, e := range logs.TakeAll() {
			if _, ok := e.ContextMap()["hint"]; ok {
				got++
			}
		}
		return got
	}
	if got := hints(hintBurst + 5); got != hintBurst {
		t.Errorf("%d hints for %d forgeries at once, want %d", got, hintBurst+5, hintBurst)
	}
	clock = clock.Add(2 * time.Second)
	if got := hints(5); got != 2 {
		t.Errorf("%d hints two seconds later, want 2", got)
	}

	// chunked, with a base64 signature: no probe, no hint
	clock = clock.Add(time.Hour)
	g, glogs := roHandler(t, map[string]any{"provider": map[string]string{"name": "github"}, "secrets": []string{"It's a Secret to Everybody"}}, time.Time{})
	r := hRequest(context.Background(), http.MethodPost, "Hello, World!", http.Header{"X-Hub-Signature-256": {"sha256=dXEH6g6yUJ/CESIczphLijdXC210hsIsRvQ3nIsEPhc="}})
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	if err := g.ServeHTTP(httptest.NewRecorder(), r, &svRecorder{}); outcomeOf(err) != outcomeMalformedSignature {
		t.Fatalf("chunked base64: %v", err)
	}
	if line := roLine(t, glogs, "webhook rejected"); line["hint"] != nil {
		t.Errorf("a chunked body was probed: hint %v", line["hint"])
	}
}

// TestExpiryWarnerStops: the warnings' goroutine of a handler with an
// expiring secret ends with Cleanup, and with a Provision that fails
// after it was made.
func TestExpiryWarnerStops(t *testing.T) {
	future := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	h, _ := roHandler(t, map[string]any{
		"provider": map[string]string{"name": "vivreal"},
		"secrets":  []any{map[string]string{"secret": "w-secret", "not_after": future}},
	}, time.Time{})
	if h.warner == nil {
		t.Fatal("no warner for an expiring secret")
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.warner.done:
	default:
		t.Fatal("the warner's goroutine is still running after Cleanup")
	}

	// a Provision that fails later (a dedupe ttl under its minimum)
	var bad Handler
	raw := fmt.Sprintf(`{"provider":{"name":"vivreal"},"secrets":[{"secret":"s","not_after":%q}],"dedupe":{"ttl":1}}`, future)
	if err := json.Unmarshal([]byte(raw), &bad); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := bad.Provision(ctx); err == nil {
		t.Fatal("a dedupe ttl of 1ns provisioned")
	}
	if bad.warner == nil || bad.warner.started {
		t.Fatalf("the warner of a failed Provision was started: %+v", bad.warner)
	}
	_ = bad.Cleanup() // as Caddy does after a failed Provision: must not block
}
