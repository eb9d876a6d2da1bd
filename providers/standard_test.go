package providers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

const (
	stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the libraries' test secret
	stdID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
)

func stdKey(t *testing.T) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stdSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestStandardModule(t *testing.T) {
	p := presetModule(t, "standard", "id,event")
	if _, ok := p.(providers.KeyDecoder); !ok {
		t.Error("standard does not decode its whsec_ secrets")
	}
}

func TestStandardMutations(t *testing.T) {
	key := stdKey(t)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"user.created","data":{"id":"user_1"}}`
	sig := hmacB64(key, stdID+"."+ts+".", body)
	other := hmacB64(key, stdID+"."+ts+".", body+" ")
	mac, _ := base64.StdEncoding.DecodeString(sig)
	preset{
		p:    &providers.Standard{},
		key:  key,
		body: body,
		now:  now,
		header: http.Header{
			"Webhook-Id":        {stdID},
			"Webhook-Timestamp": {ts},
			"Webhook-Signature": {"v1," + sig},
		},
		required:    []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"},
		sigs:        []string{"Webhook-Signature"},
		extra:       []string{"Webhook-Id", "Webhook-Timestamp"},
		timestamped: true,
		malformed: map[string][]string{
			"Webhook-Signature": {
				"v2," + sig,  // other versions are skipped
				"v1a," + sig, // Ed25519, not supported
				"V1," + sig,  // versions are case-sensitive
				"v1,",        // empty
				"v1",         // no comma
				sig,          // no version
				"v1," + sig[:8],
				"v1," + strings.TrimRight(sig, "="),
				"v1=" + sig,
				"v1, " + sig,
				"v1," + hex.EncodeToString(mac), // hex, not base64
				"v2," + sig + " v1a," + sig,
				"v1,dawfeoifkpqwoekfpqoekf", // the JavaScript library's "invalid signature"
			},
			"Webhook-Timestamp": {"hello", ts + ".0", "-" + ts, "+" + ts, "1e9", ts + "000000000000"},
		},
		unverified: map[string][]string{
			"Webhook-Signature": {"v1," + other, "v1," + other + " v2," + sig},
			"Webhook-Id":        {stdID + "x", strings.ToUpper(stdID)},
			"Webhook-Timestamp": {strconv.FormatInt(now.Unix()+1, 10)},
		},
	}.run(t)
}

// Several signatures in one header, as senders send while a secret rotates:
// any v1 one verifies, whatever surrounds it.
func TestStandardSignatureList(t *testing.T) {
	key := stdKey(t)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"test": 2432232314}`
	good := "v1," + hmacB64(key, stdID+"."+ts+".", body)
	wrong := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	for _, list := range []string{
		good,
		wrong + " " + good,
		good + " " + wrong,
		wrong + " v2," + good[3:] + " " + good + " " + wrong, // the libraries' "valid multi sig"
		"v1,bad " + good,    // an unreadable v1 is skipped
		"v1a,xyz " + good,   // so is an unknown version
		wrong + "  " + good, // doubled space
		good + ",extra",     // the libraries ignore what follows a second comma
	} {
		h := http.Header{"Webhook-Id": {stdID}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {list}}
		s, err := presetParse(t, &providers.Standard{}, h, now)
		if list == good+",extra" {
			// ours reads "<sig>,extra" as one value, not base64: no candidate
			if err == nil {
				t.Errorf("%q: accepted", list)
			}
			continue
		}
		if err != nil || !presetVerifies(s, key, body) {
			t.Errorf("%q: %v (verifies %v)", list, err, err == nil && presetVerifies(s, key, body))
		}
	}
}

// Svix's svix-* headers work alike; a request is read from one family.
func TestStandardSvixHeaders(t *testing.T) {
	key := stdKey(t)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"invoice.paid"}`
	sig := "v1," + hmacB64(key, stdID+"."+ts+".", body)
	svix := http.Header{"Svix-Id": {stdID}, "Svix-Timestamp": {ts}, "Svix-Signature": {sig}}
	s, err := presetParse(t, &providers.Standard{}, svix, now)
	if err != nil || !presetVerifies(s, key, body) {
		t.Fatalf("svix headers: %v", err)
	}
	if got := presetDescribe(&providers.Standard{}, svix, body); got[0] != stdID || got[1] != "invoice.paid" {
		t.Errorf("Describe (svix) = %q", got)
	}
	// A webhook-* header present: the webhook-* family is read, not mixed.
	mixed := svix.Clone()
	mixed.Set("Webhook-Id", stdID)
	_, err = presetParse(t, &providers.Standard{}, mixed, now)
	wantParseErr(t, err, providers.ErrMissingSignature, mixed)
	// Both families complete: webhook-* wins; a wrong svix-* is not read.
	both := svix.Clone()
	both.Set("Webhook-Id", stdID)
	both.Set("Webhook-Timestamp", ts)
	both.Set("Webhook-Signature", sig)
	both.Set("Svix-Signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
	if s, err := presetParse(t, &providers.Standard{}, both, now); err != nil || !presetVerifies(s, key, body) {
		t.Errorf("both families: %v", err)
	}
}

// The signed timestamp is the integer's decimal form, as the libraries
// sign it; the id is signed as sent.
func TestStandardPrefix(t *testing.T) {
	now := time.Unix(1_614_265_330, 0)
	for ts, want := range map[string]string{"1614265330": "1614265330", "01614265330": "1614265330", "0001614265330": "1614265330"} {
		h := http.Header{"Webhook-Id": {"msg.with.dots"}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="}}
		s, err := presetParse(t, &providers.Standard{}, h, now)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		if got := string(s.Prefix); got != "msg.with.dots."+want+"." {
			t.Errorf("timestamp %q: prefix %q", ts, got)
		}
		if s.Suffix != nil {
			t.Errorf("Suffix = %q, want nil", s.Suffix)
		}
	}
}

func TestStandardKey(t *testing.T) {
	want := stdKeyBytes()
	for _, secret := range []string{stdSecret, strings.TrimPrefix(stdSecret, "whsec_")} {
		got, err := providers.Standard{}.Key(secret)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Key(%q) = %x, %v; want %x", secret, got, err, want)
		}
	}
	for secret, msg := range map[string]string{
		"":                                      "empty",
		"whsec_":                                "empty after whsec_",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS": "base64", // a character short
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=":           "base64",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w":            "base64", // base64url
		"whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":           "base64",
		"whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=": "not supported",
		"whsk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=": "not supported",
	} {
		got, err := providers.Standard{}.Key(secret)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Key(%q) = %x, %v; want an error saying %q", secret, got, err, msg)
			continue
		}
		if len(secret) > 10 && strings.Contains(err.Error(), secret[6:]) {
			t.Errorf("Key(%q): error %q reveals the secret", secret, err)
		}
	}
}

func stdKeyBytes() []byte {
	b, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	return b
}

func TestStandardDescribe(t *testing.T) {
	p := &providers.Standard{}
	h := http.Header{"Webhook-Id": {" msg_1 "}}
	for body, event := range map[string]string{
		`{"type":"email.sent","data":{"type":"nested"}}`: "email.sent",
		`{"data":{"type":"nested"}}`:                     "",
		`not json`:                                       "",
		``:                                               "",
	} {
		if got := presetDescribe(p, h, body); got[0] != "msg_1" || got[1] != event {
			t.Errorf("Describe(%q) = %q, want [msg_1 %q]", body, got, event)
		}
	}
}
