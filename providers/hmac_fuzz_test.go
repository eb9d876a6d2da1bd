package providers_test

import (
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Fuzz targets of the hmac provider:
//
//	go test -run '^$' -fuzz '^FuzzHMACGitHubParse$' -fuzztime 30s ./providers

// FuzzHMACGitHubParse checks GitHub's twin (signature X-Hub-Signature-256
// "sha256={sig}" hex) against the plain reference parser of the
// "<algo>=<hex>" senders, on every header value.
func FuzzHMACGitHubParse(f *testing.F) {
	fzHexSeeds(f, "sha256", crypto.SHA256.Size())
	p, err := hmFuzzProvision(`{"signatures": [{"header": "X-Hub-Signature-256", "pattern": "sha256={sig}", "encoding": "hex"}]}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, second string, count uint8) {
		fzCheckParse(t, p, "X-Hub-Signature-256", fzSigHeaders(first, second, count), crypto.SHA256, "sha256=", true)
	})
}

// The hmac provider's error texts, for the echo check (see
// fzMessageTemplates).
func init() {
	fzMessageTemplates = append(fzMessageTemplates,
		"missing signature: no X-Hub-Signature-256 header",
		"missing signature: empty X-Hub-Signature-256 header",
		"malformed signature: # X-Hub-Signature-256 headers",
		"malformed signature: X-Hub-Signature-256 is not in the form sha256={sig}",
		"malformed signature: # hex digits, want # in X-Hub-Signature-256",
		"malformed signature: not hex in X-Hub-Signature-256",
		"missing signature: none of the signature headers",
		"malformed signature: no signature in the configured form",
		"malformed signature: S is not in the form {sig}",
		"malformed signature: # base64 characters, want # in S",
		"malformed signature: not base64 in S",
		"malformed signature: no t= in S",
		"malformed signature: t= twice in S",
		"malformed signature: more than # signatures",
		"malformed signature: timestamp is not a unix time",
		"malformed signature: timestamp is not an RFC # time",
		"malformed signature: empty timestamp",
		"malformed signature: timestamp has # digits",
	)
}

func hmFuzzProvision(config string) (*providers.HMAC, error) {
	p := new(providers.HMAC)
	if err := json.Unmarshal([]byte(config), p); err != nil {
		return nil, err
	}
	return p, providers.HMACCompileForTest(p)
}

// FuzzHMACParse feeds list, params and two-header configurations
// arbitrary header values: Parse never panics, never reads the body,
// fails with exactly one of the two sentinels and without echoing a
// value, and on success returns 1 to 16 signatures of the algorithm's
// size and the signed prefix and suffix the template says.
func FuzzHMACParse(f *testing.F) {
	configs := []string{
		`{"signatures": [{"header": "S", "list": " ", "pattern": "v1,{sig}", "encoding": "base64"}], "signed": "{header.Id}.{ts}.{body}", "timestamp": {"from": "header", "header": "T", "format": "unix"}}`,
		`{"signatures": [{"header": "S", "params": ",", "sig": "v1", "ts": "t"}], "signed": "{ts}.{body}", "timestamp": {"from": "params", "format": "unix"}, "tolerance": 0}`,
		`{"signatures": [{"header": "S", "encoding": "base64"}, {"header": "S2", "pattern": "sha256={sig}"}], "signed": "{body}{header.T}", "timestamp": {"from": "header", "header": "T", "format": "rfc3339"}, "tolerance": 0}`,
		`{"algorithm": "ecdsa-p256", "signatures": [{"header": "S", "list": ",", "pattern": "{sig}", "encoding": "base64"}], "signed": "{header.T}{body}"}`,
	}
	var ps []*providers.HMAC
	for _, c := range configs {
		p, err := hmFuzzProvision(c)
		if err != nil {
			f.Fatal(err)
		}
		ps = append(ps, p)
	}
	b64 := "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
	hex := strings.Repeat("ab", 32)
	for _, s := range []struct {
		which         uint8
		s, s2, id, ts string
	}{
		{0, "v1," + b64, "", "msg_1", "1700000000"},
		{0, "v2,x v1," + b64 + "  v1a," + b64, "", "msg_1", "01700000000"},
		{0, "v1,", "", "", "1700000000"},
		{1, "t=1700000000,v1=" + hex + ",v0=" + hex, "", "", ""},
		{1, "t=,v1=" + hex, "", "", ""},
		{1, "v1,t=1", "", "", ""},
		{2, b64, "sha256=" + hex, "", "2023-11-14T22:13:20Z"},
		{2, "", "SHA256=" + strings.ToUpper(hex), "", "2023-11-14T22:13:20.5-01:00"},
		{3, "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=", "", "", "1588788367"},
	} {
		f.Add(s.which, s.s, s.s2, s.id, s.ts)
	}
	f.Fuzz(func(t *testing.T, which uint8, s, s2, id, ts string) {
		p := ps[int(which)%len(ps)]
		r := httptest.NewRequest(http.MethodPost, "/hook", nil)
		body := &fzFailBody{}
		r.Body = body
		for name, v := range map[string]string{"S": s, "S2": s2, "Id": id, "T": ts} {
			if v != "" {
				r.Header.Add(name, v)
			}
		}
		got, err := p.Parse(r, time.Unix(1_700_000_000, 0))
		if body.read {
			t.Fatal("Parse read the body")
		}
		if err != nil {
			missing := errors.Is(err, providers.ErrMissingSignature)
			malformed := errors.Is(err, providers.ErrMalformedSignature)
			if missing == malformed {
				t.Fatalf("Parse = %v: missing=%v malformed=%v, want exactly one", err, missing, malformed)
			}
			fzAssertNoEcho(t, err.Error(), []string{s, s2, id})
			return
		}
		if n := len(got.Signatures); n < 1 || n > 16 {
			t.Fatalf("%d signatures", n)
		}
		for _, sig := range got.Signatures {
			if got.Scheme == providers.SchemeHMAC && len(sig) != 32 {
				t.Fatalf("a %d-byte HMAC-SHA256 signature", len(sig))
			}
		}
		switch int(which) % len(ps) {
		case 0:
			if !strings.HasPrefix(string(got.Prefix), textproto.TrimString(id)+".") || got.Suffix != nil {
				t.Fatalf("prefix %q suffix %q", got.Prefix, got.Suffix)
			}
		case 2:
			if got.Prefix != nil || string(got.Suffix) != textproto.TrimString(ts) {
				t.Fatalf("prefix %q suffix %q for timestamp %q", got.Prefix, got.Suffix, ts)
			}
		}
	})
}

// FuzzHMACTemplate provisions arbitrary signed templates: no panic, and
// an accepted one has exactly one {body} outside escapes.
func FuzzHMACTemplate(f *testing.F) {
	for _, s := range []string{"{body}", "{ts}.{body}", `\{{body}\}`, "{header.X-A}{body}{header.B}", "{body}{body}", "{", "}", `\`, "{header.}", "{http.request.header.X}{body}", "{{body}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		cfg, _ := json.Marshal(map[string]any{
			"signatures": []map[string]string{{"header": "S"}},
			"signed":     tmpl,
			"timestamp":  map[string]string{"from": "header", "header": "T", "format": "unix"},
		})
		p := new(providers.HMAC)
		if err := json.Unmarshal(cfg, p); err != nil {
			t.Fatal(err)
		}
		if err := providers.HMACCompileForTest(p); err != nil {
			return
		}
		unescaped := strings.NewReplacer(`\\`, "", `\{`, "", `\}`, "").Replace(tmpl)
		if tmpl != "" && strings.Count(unescaped, "{body}") != 1 {
			t.Fatalf("accepted %q", tmpl)
		}
	})
}
