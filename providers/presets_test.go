package providers_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// The mutation table of a preset (as vivreal_test.go has for Vivreal): a
// request known to be good, then each way it can go wrong. A candidate
// "verifies" when HMAC-SHA256(key, Prefix‖body‖Suffix) is among the
// returned Signatures, which is what the handler checks; the committed
// vectors (testdata/vectors/senders) check the same against independent
// implementations.

// preset is one sender's good request and its ways of going wrong.
type preset struct {
	p        providers.Provider
	key      []byte // the HMAC key, decoded
	body     string
	now      time.Time   // the clock at which header is fresh
	header   http.Header // a good request's headers
	required []string    // headers whose absence is a missing signature
	sigs     []string    // headers that carry the signature: repeating one is malformed
	extra    []string    // other headers that must not be repeated (a timestamp, an id)
	// malformed: header values that are malformed, by header name
	malformed map[string][]string
	// unverified: header values that parse but must not verify
	unverified map[string][]string
	// timestamped: the request's timestamp is now; tolerance applies
	timestamped bool
}

// presetParse calls Parse on a copy of header with the body trapped.
func presetParse(t *testing.T, p providers.Provider, header http.Header, now time.Time) (providers.Signed, error) {
	t.Helper()
	trap := &trapBody{t: t}
	r := httptest.NewRequest(http.MethodPost, "/hook", nil)
	r.Body = trap
	r.Header = header.Clone()
	s, err := p.Parse(r, now)
	if trap.read {
		t.Error("Parse read the request body")
	}
	return s, err
}

// presetVerifies reports whether any of s's signatures is the HMAC of
// Prefix‖body‖Suffix under key.
func presetVerifies(s providers.Signed, key []byte, body string) bool {
	m := hmac.New(sha256.New, key)
	m.Write(s.Prefix)
	m.Write([]byte(body))
	m.Write(s.Suffix)
	want := m.Sum(nil)
	for _, sig := range s.Signatures {
		if hmac.Equal(sig, want) {
			return true
		}
	}
	return false
}

// wantParseErr checks err wraps want (and not the other sentinel) and
// echoes none of the header's values.
func wantParseErr(t *testing.T, err, want error, header http.Header) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("Parse = %v, want %v", err, want)
	}
	other := providers.ErrMissingSignature
	if want == providers.ErrMissingSignature {
		other = providers.ErrMalformedSignature
	}
	if errors.Is(err, other) {
		t.Errorf("Parse = %v, also wraps %v", err, other)
	}
	for _, vals := range header {
		for _, v := range vals {
			if len(v) > 16 {
				assertNotEchoed(t, err.Error(), v)
			}
		}
	}
}

func (ps preset) run(t *testing.T) {
	t.Run("good", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if s.Scheme != providers.SchemeHMAC {
			t.Errorf("Scheme = %v, want HMAC", s.Scheme)
		}
		if !presetVerifies(s, ps.key, ps.body) {
			t.Fatalf("the good request does not verify (prefix %q, %d signatures)", s.Prefix, len(s.Signatures))
		}
	})
	t.Run("edited body", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{ps.body + " ", ps.body[:len(ps.body)-1], strings.Replace(ps.body, "e", "E", 1), ""} {
			if presetVerifies(s, ps.key, b) {
				t.Errorf("edited body %q verifies", b)
			}
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatal(err)
		}
		wrong := bytes.Clone(ps.key)
		wrong[len(wrong)-1] ^= 1
		// (not key‖0x00: HMAC pads short keys with zeros, so that one is
		// the same key)
		for _, k := range [][]byte{wrong, ps.key[:len(ps.key)-1], append(bytes.Clone(ps.key), 'x'), []byte("")} {
			if presetVerifies(s, k, ps.body) {
				t.Errorf("key %q verifies", k)
			}
		}
	})
	for _, name := range ps.required {
		t.Run("missing "+name, func(t *testing.T) {
			for _, v := range []*string{nil, ptr(""), ptr(" \t ")} {
				h := ps.header.Clone()
				h.Del(name)
				if v != nil {
					h.Set(name, *v)
				}
				_, err := presetParse(t, ps.p, h, ps.now)
				wantParseErr(t, err, providers.ErrMissingSignature, h)
			}
		})
	}
	for _, name := range append(append([]string(nil), ps.sigs...), ps.extra...) {
		t.Run("repeated "+name, func(t *testing.T) {
			v := ps.header.Get(name)
			for _, second := range []string{v, "", "x"} {
				h := ps.header.Clone()
				h.Add(name, second)
				_, err := presetParse(t, ps.p, h, ps.now)
				wantParseErr(t, err, providers.ErrMalformedSignature, h)
			}
		})
	}
	for name, vals := range ps.malformed {
		for _, v := range vals {
			t.Run("malformed "+name+" "+v, func(t *testing.T) {
				h := ps.header.Clone()
				h.Set(name, v)
				s, err := presetParse(t, ps.p, h, ps.now)
				if err == nil {
					t.Fatalf("Parse accepted %s: %q (%d signatures)", name, v, len(s.Signatures))
				}
				wantParseErr(t, err, providers.ErrMalformedSignature, h)
			})
		}
	}
	for name, vals := range ps.unverified {
		for _, v := range vals {
			t.Run("unverified "+name+" "+v, func(t *testing.T) {
				h := ps.header.Clone()
				h.Set(name, v)
				s, err := presetParse(t, ps.p, h, ps.now)
				if err == nil && presetVerifies(s, ps.key, ps.body) {
					t.Fatalf("%s: %q verifies", name, v)
				}
			})
		}
	}
	if !ps.timestamped {
		t.Run("no timestamp", func(t *testing.T) {
			for _, now := range []time.Time{ps.now.Add(-24 * 365 * time.Hour), ps.now.Add(24 * 365 * time.Hour)} {
				if _, err := presetParse(t, ps.p, ps.header, now); err != nil {
					t.Errorf("clock %v: %v (this sender signs no time)", now, err)
				}
			}
		})
		return
	}
	t.Run("timestamp window", func(t *testing.T) {
		tol := providers.DefaultTolerance
		for _, tc := range []struct {
			name string
			now  time.Time
			ok   bool
		}{
			{"at the edge, stale side", ps.now.Add(tol), true},
			{"at the edge, future side", ps.now.Add(-tol), true},
			{"stale", ps.now.Add(tol + time.Second), false},
			{"future", ps.now.Add(-tol - time.Second), false},
			{"a day stale", ps.now.Add(24 * time.Hour), false},
			{"a day future", ps.now.Add(-24 * time.Hour), false},
		} {
			s, err := presetParse(t, ps.p, ps.header, tc.now)
			if tc.ok {
				if err != nil || !presetVerifies(s, ps.key, ps.body) {
					t.Errorf("%s: %v", tc.name, err)
				}
				continue
			}
			if !errors.Is(err, providers.ErrMalformedSignature) {
				t.Errorf("%s: Parse = %v, want malformed", tc.name, err)
			}
		}
	})
	t.Run("tolerance option", func(t *testing.T) {
		if _, ok := ps.p.(providers.CaddyfileOption); !ok {
			t.Fatalf("%T takes no tolerance option", ps.p)
		}
		// Parse is read through a fresh module of the same type.
		fresh := func(input string) providers.Provider {
			t.Helper()
			p := caddy.Module(ps.p).CaddyModule().New().(providers.Provider)
			d := caddyfile.NewTestDispenser(input)
			d.Next()
			handled, err := p.(providers.CaddyfileOption).UnmarshalCaddyfileOption(d)
			if !handled || err != nil {
				t.Fatalf("%q: handled=%v err=%v", input, handled, err)
			}
			return p
		}
		if _, err := presetParse(t, fresh("tolerance 0"), ps.header, ps.now.Add(24*365*time.Hour)); err != nil {
			t.Errorf("tolerance 0, a year later: %v", err)
		}
		if _, err := presetParse(t, fresh("tolerance 10m"), ps.header, ps.now.Add(9*time.Minute)); err != nil {
			t.Errorf("tolerance 10m, 9 min later: %v", err)
		}
		if _, err := presetParse(t, fresh("tolerance 10s"), ps.header, ps.now.Add(-11*time.Second)); !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("tolerance 10s, 11 s ahead: %v", err)
		}
	})
}

func ptr(s string) *string { return &s }

// presetModule checks the module's registration and fields.
func presetModule(t *testing.T, name string, fields string) providers.Provider {
	t.Helper()
	mod, err := caddy.GetModule("http.webhook_verify.providers." + name)
	if err != nil {
		t.Fatalf("%s is not registered: %v", name, err)
	}
	if mod.ID.Name() != name {
		t.Errorf("module name = %q", mod.ID.Name())
	}
	p, ok := mod.New().(providers.Provider)
	if !ok {
		t.Fatalf("New() = %T, not a providers.Provider", mod.New())
	}
	if got := strings.Join(p.Fields(), ","); got != fields {
		t.Errorf("Fields() = %q, want %q", got, fields)
	}
	return p
}

// presetDescribe runs Describe on fresh, stale-filled values.
func presetDescribe(p providers.Provider, h http.Header, body string) []string {
	vals := make([]string, len(p.Fields()))
	for i := range vals {
		vals[i] = "stale"
	}
	p.Describe(h, []byte(body), vals)
	return vals
}

func hmacHex(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func hmacB64(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
