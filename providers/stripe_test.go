package providers_test

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestStripeModule(t *testing.T) {
	p := presetModule(t, "stripe", "id,event")
	if _, ok := p.(providers.KeyDecoder); ok {
		t.Error("stripe decodes its secrets; Stripe uses whsec_ secrets as they are")
	}
}

func TestStripeMutations(t *testing.T) {
	key := []byte("whsec_test_secret")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"id":"evt_1","object":"event","type":"charge.succeeded"}`
	sig := hmacHex(key, ts+".", body)
	other := hmacHex(key, ts+".", body+" ")
	mac, _ := hex.DecodeString(sig)
	t1 := "t=" + ts
	preset{
		p:           &providers.Stripe{},
		key:         key,
		body:        body,
		now:         now,
		header:      http.Header{"Stripe-Signature": {t1 + ",v1=" + sig}},
		required:    []string{"Stripe-Signature"},
		sigs:        []string{"Stripe-Signature"},
		timestamped: true,
		malformed: map[string][]string{
			"Stripe-Signature": {
				t1,                           // no v1
				"v1=" + sig,                  // no t
				t1 + ",v0=" + sig,            // v0 only
				"t=,v1=" + sig,               // empty t
				"t=abc,v1=" + sig,            // t not a number
				"t=" + ts + ".5,v1=" + sig,   // fractional t
				t1 + ",v1=" + sig + "," + t1, // two t
				t1 + ",v1",                   // not key=value
				t1 + ",v1==" + sig,           // double equals
				t1 + ",v1=" + sig + "=",      // trailing equals
				t1 + ";v1=" + sig,            // wrong separator: one part "t=…;v1=…"
				"v1,t=1",                     // stripe-go's malformed example
				t1 + ",v1=bad_signature",     // only an unreadable v1
				t1 + ",v1=" + sig[:63],       // odd length
				t1 + ",v1=" + base64.StdEncoding.EncodeToString(mac), // base64, not hex
				t1 + ", v1=" + sig, // " v1" is an unknown key: no v1
				t1 + ",V1=" + sig,  // keys are case-sensitive
			},
		},
		unverified: map[string][]string{
			"Stripe-Signature": {
				t1 + ",v1=" + other,
				"t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + sig, // t is signed
				t1 + ",v1=" + strings.Repeat("0", 64),
			},
		},
	}.run(t)
}

// What Stripe's own library accepts: v0 and unknown keys ignored, an
// unreadable v1 skipped, any of several v1 (a rolled secret).
func TestStripeAccepted(t *testing.T) {
	key := []byte("whsec_test_secret")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"id":"evt_1"}`
	sig := hmacHex(key, ts+".", body)
	rolled := hmacHex([]byte("whsec_rolled"), ts+".", body)
	for _, v := range []string{
		"t=" + ts + ",v1=" + sig,
		"v1=" + sig + ",t=" + ts, // order does not matter
		"t=" + ts + ",v1=" + strings.ToUpper(sig),
		"t=" + ts + ",v1=" + sig + ",v0=" + sig,
		"t=" + ts + ",v1=bad_signature,v1=" + sig,
		"t=" + ts + ",v1=" + rolled + ",v1=" + sig,
		"t=" + ts + ",v1=" + sig + ",v1=" + rolled,
		"t=" + ts + ",foo=bar,v1=" + sig + ",v2=x",
		"t=0" + ts + ",v1=" + sig, // stripe-go parses t as an integer and signs its decimal form
		"  t=" + ts + ",v1=" + sig + " ",
	} {
		s, err := presetParse(t, &providers.Stripe{}, http.Header{"Stripe-Signature": {v}}, now)
		if err != nil || !presetVerifies(s, key, body) {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestStripeDescribe(t *testing.T) {
	p := &providers.Stripe{}
	for body, want := range map[string][2]string{
		`{"id":"evt_1","object":"event","data":{"object":{"id":"pi_1","type":"card"}},"type":"payment_intent.succeeded"}`: {"evt_1", "payment_intent.succeeded"},
		`{"object":"event"}`: {"", ""},
		`[]`:                 {"", ""},
	} {
		if got := presetDescribe(p, http.Header{"Stripe-Signature": {"t=1"}}, body); got[0] != want[0] || got[1] != want[1] {
			t.Errorf("Describe(%q) = %q, want %q", body, got, want)
		}
	}
}
