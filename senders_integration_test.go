package webhookverify_test

// Integration tests of the github, standard, stripe, slack and shopify
// presets: a real Caddy (the shared in-process one of integration_test.go)
// verifies each sender's deliveries and hands genuine ones to a recording
// upstream through reverse_proxy, with the event's id and type passed on
// by header_up from {http.webhook.id} and {http.webhook.event}.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	snGitHubSecret   = "It's a Secret to Everybody" // GitHub's docs example
	snStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	snStripeSecret   = "whsec_test_secret"
	snSlackSecret    = "8f742231b10e8888abcd99yyyzzz85a5" // Slack's docs example
	snShopifySecret  = "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"
)

func snMAC(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// snDelivery is one sender's request, signed at ts.
type snDelivery struct {
	path   string
	body   string
	header http.Header
	id     string // the {http.webhook.id} the upstream must see
	event  string // the {http.webhook.event}
	sigHdr string // the header carrying the signature
}

// snDeliveries builds a genuine delivery of each preset, signed at ts.
func snDeliveries(ts time.Time) []snDelivery {
	unix := strconv.FormatInt(ts.Unix(), 10)
	stdKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(snStandardSecret, "whsec_"))

	ghBody := "Hello, World!"
	stdBody := `{"type":"user.created","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC","object":"user"},"object":"event"}`
	stdID := "msg_p5jXN8AQM9LWM0D4loKWxJek"
	stripeBody := "{\n  \"id\": \"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\n  \"object\": \"event\",\n  \"type\": \"payment_intent.succeeded\"\n}"
	slackBody := `{"token":"XXYYZZ","team_id":"T123ABC456","event":{"type":"app_mention","text":"<@U0LAN0Z89> hi"},"type":"event_callback","event_id":"Ev123ABC456"}`
	shopBody := `{"id":820982911946154508,"email":"jon@example.com","total_price":"598.94","note":"café ☕"}`

	return []snDelivery{
		{
			path: "/github", body: ghBody, id: "72d3162e-cc78-11e3-81ab-4c9367dc0958", event: "push",
			sigHdr: "X-Hub-Signature-256",
			header: itHdr("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
				"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Event", "push"),
		},
		{
			path: "/standard", body: stdBody, id: stdID, event: "user.created", sigHdr: "Webhook-Signature",
			header: itHdr("Webhook-Id", stdID, "Webhook-Timestamp", unix,
				"Webhook-Signature", "v2,AAAA v1,"+base64.StdEncoding.EncodeToString(snMAC(stdKey, stdID+"."+unix+".", stdBody))),
		},
		{
			path: "/stripe", body: stripeBody, id: "evt_1NG8Du2eZvKYlo2CUI79vXWy", event: "payment_intent.succeeded",
			sigHdr: "Stripe-Signature",
			header: itHdr("Stripe-Signature", "t="+unix+",v1="+hex.EncodeToString(snMAC([]byte(snStripeSecret), unix+".", stripeBody))+
				",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"),
		},
		{
			path: "/slack", body: slackBody, id: "", event: "event_callback", sigHdr: "X-Slack-Signature",
			header: itHdr("X-Slack-Signature", "v0="+hex.EncodeToString(snMAC([]byte(snSlackSecret), "v0:"+unix+":", slackBody)),
				"X-Slack-Request-Timestamp", unix),
		},
		{
			path: "/shopify", body: shopBody, id: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", event: "orders/create",
			sigHdr: "X-Shopify-Hmac-Sha256",
			header: itHdr("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(snMAC([]byte(snShopifySecret), shopBody)),
				"X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Topic", "orders/create"),
		},
	}
}

// snRoute is a route verifying one sender and passing its fields on.
func snRoute(path, provider, secret, options, upstream string) string {
	return fmt.Sprintf(`
	handle %s {
		webhook_verify %s %s {
			%s
		}
		reverse_proxy %s {
			header_up X-Webhook-Provider {http.webhook.provider}
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
		}
	}`, path, provider, secret, options, upstream)
}

func snStart(t *testing.T, up *itRecorder) {
	t.Helper()
	var routes strings.Builder
	for _, r := range [][4]string{
		{"/github", "github", snGitHubSecret, ""},
		{"/standard", "standard", snStandardSecret, ""},
		{"/stripe", "stripe", snStripeSecret, ""},
		{"/slack", "slack", snSlackSecret, ""},
		{"/shopify", "shopify", snShopifySecret, ""},
		// the senders' published examples, whose timestamps are years old
		{"/slack-replay", "slack", snSlackSecret, "tolerance 0"},
		{"/standard-replay", "standard", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tolerance 0"},
		{"/stripe-tight", "stripe", snStripeSecret, "tolerance 1s"},
	} {
		secret := r[2]
		if strings.ContainsAny(secret, " '") {
			secret = strconv.Quote(secret)
		}
		routes.WriteString(snRoute(r[0], r[1], secret, r[3], up.addr()))
	}
	itStart(t, "http://localhost:9080 {"+routes.String()+"\n}\n")
}

func TestIntegrationSenders(t *testing.T) {
	up := itNewRecorder(t, "up")
	snStart(t, up)
	c := itNewClient(t)
	secrets := []string{snGitHubSecret, snStandardSecret, snStripeSecret, snSlackSecret, snShopifySecret}

	for _, d := range snDeliveries(time.Now()) {
		name := strings.TrimPrefix(d.path, "/")
		t.Run(name+"/genuine", func(t *testing.T) {
			up.reset()
			h := d.header.Clone()
			// a client's own X-Webhook-* headers are replaced, never passed on
			h.Set("X-Webhook-Id", "spoofed")
			h.Set("X-Webhook-Event", "spoofed")
			res := itDo(t, c, itReq{path: d.path, body: []byte(d.body), header: h})
			itStatus(t, "genuine "+name, res, http.StatusOK)
			got := itAssertForwarded(t, up, d.path, []byte(d.body))
			for hdr, want := range map[string]string{"X-Webhook-Provider": name, "X-Webhook-Id": d.id, "X-Webhook-Event": d.event} {
				if vs := got.Header.Values(hdr); len(vs) > 1 || got.Header.Get(hdr) != want {
					t.Errorf("upstream %s = %q, want %q", hdr, vs, want)
				}
			}
			if got.Header.Get(d.sigHdr) != d.header.Get(d.sigHdr) {
				t.Errorf("upstream %s = %q, want the sender's header passed on", d.sigHdr, got.Header.Get(d.sigHdr))
			}
		})
		t.Run(name+"/refused", func(t *testing.T) {
			refusals := []struct {
				what   string
				body   string
				header http.Header
			}{
				{"edited body", d.body + " ", d.header},
				{"no signature", d.body, func() http.Header { h := d.header.Clone(); h.Del(d.sigHdr); return h }()},
				{"repeated signature", d.body, func() http.Header { h := d.header.Clone(); h.Add(d.sigHdr, h.Get(d.sigHdr)); return h }()},
				{"garbled signature", d.body, func() http.Header { h := d.header.Clone(); h.Set(d.sigHdr, "v1=zz"); return h }()},
			}
			for _, r := range refusals {
				up.reset()
				res := itDo(t, c, itReq{path: d.path, body: []byte(r.body), header: r.header})
				itStatus(t, name+" "+r.what, res, http.StatusUnauthorized)
				itNoLeak(t, name+" "+r.what, res, secrets...)
				if n := up.count(); n != 0 {
					t.Errorf("%s %s: upstream got %d requests", name, r.what, n)
				}
			}
		})
	}

	// Signed ten minutes ago or ten minutes ahead: the timestamped senders
	// refuse, the others (no signed time) accept.
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		for _, d := range snDeliveries(time.Now().Add(skew)) {
			name := strings.TrimPrefix(d.path, "/")
			t.Run(fmt.Sprintf("%s/skew%v", name, skew), func(t *testing.T) {
				up.reset()
				res := itDo(t, c, itReq{path: d.path, body: []byte(d.body), header: d.header})
				want := http.StatusUnauthorized
				if name == "github" || name == "shopify" {
					want = http.StatusOK
				}
				itStatus(t, name, res, want)
				if n := up.count(); (want == http.StatusOK) != (n == 1) {
					t.Errorf("upstream got %d requests", n)
				}
			})
		}
	}

	// The per-handler tolerance: 0 replays the published examples; 1s
	// refuses a delivery signed 30 s ago that the default 5 min accepts.
	t.Run("slack-docs-example", func(t *testing.T) {
		body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		h := itHdr("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
			"X-Slack-Request-Timestamp", "1531420618", "Content-Type", "application/x-www-form-urlencoded")
		up.reset()
		itStatus(t, "slack docs example, tolerance 0", itDo(t, c, itReq{path: "/slack-replay", body: []byte(body), header: h}), http.StatusOK)
		got := itAssertForwarded(t, up, "/slack-replay", []byte(body))
		if got.Header.Get("X-Webhook-Event") != "" || got.Header.Get("X-Webhook-Id") != "" {
			t.Errorf("form body: id %q event %q, want empty", got.Header.Get("X-Webhook-Id"), got.Header.Get("X-Webhook-Event"))
		}
		up.reset()
		itStatus(t, "slack docs example, default tolerance", itDo(t, c, itReq{path: "/slack", body: []byte(body), header: h}), http.StatusUnauthorized)
		if up.count() != 0 {
			t.Error("a stale delivery reached the upstream")
		}
	})
	t.Run("standard-library-vector", func(t *testing.T) {
		body := `{"test": 2432232314}`
		h := itHdr("Svix-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "Svix-Timestamp", "1614265330",
			"Svix-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
		up.reset()
		itStatus(t, "standard vector, tolerance 0", itDo(t, c, itReq{path: "/standard-replay", body: []byte(body), header: h}), http.StatusOK)
		got := itAssertForwarded(t, up, "/standard-replay", []byte(body))
		if got.Header.Get("X-Webhook-Id") != "msg_p5jXN8AQM9LWM0D4loKWxJek" {
			t.Errorf("id %q", got.Header.Get("X-Webhook-Id"))
		}
		up.reset()
		itStatus(t, "standard vector, default tolerance", itDo(t, c, itReq{path: "/standard", body: []byte(body), header: h}), http.StatusUnauthorized)
	})
	t.Run("stripe-tight-tolerance", func(t *testing.T) {
		for _, d := range snDeliveries(time.Now().Add(-30 * time.Second)) {
			if d.path != "/stripe" {
				continue
			}
			up.reset()
			itStatus(t, "30 s old, default tolerance", itDo(t, c, itReq{path: "/stripe", body: []byte(d.body), header: d.header}), http.StatusOK)
			up.reset()
			itStatus(t, "30 s old, tolerance 1s", itDo(t, c, itReq{path: "/stripe-tight", body: []byte(d.body), header: d.header}), http.StatusUnauthorized)
			if up.count() != 0 {
				t.Error("refused delivery reached the upstream")
			}
		}
	})
}
