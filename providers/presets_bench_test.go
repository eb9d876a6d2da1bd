package providers_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// BenchmarkPresetParse measures each preset's Parse, the per-request work
// before the body (run with -benchmem: allocations per request).
func BenchmarkPresetParse(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	hex64 := "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	b64 := "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	for _, bc := range []struct {
		name   string
		p      providers.Provider
		header http.Header
	}{
		{"github", providers.GitHub{}, http.Header{"X-Hub-Signature-256": {"sha256=" + hex64}}},
		{"shopify", providers.Shopify{}, http.Header{"X-Shopify-Hmac-Sha256": {b64}}},
		{"standard", &providers.Standard{}, http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"},
			"Webhook-Timestamp": {ts}, "Webhook-Signature": {"v1," + b64 + " v1," + b64}}},
		{"stripe", &providers.Stripe{}, http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hex64 + ",v0=" + hex64}}},
		{"slack", &providers.Slack{}, http.Header{"X-Slack-Signature": {"v0=" + hex64}, "X-Slack-Request-Timestamp": {ts}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/hook", nil)
			r.Header = bc.header
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.p.Parse(r, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
