package providers_test

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestShopifyModule(t *testing.T) {
	presetModule(t, "shopify", "id,event")
	if providers.ShopifySignatureHeader != "X-Shopify-Hmac-Sha256" {
		t.Errorf("ShopifySignatureHeader = %q", providers.ShopifySignatureHeader)
	}
}

func TestShopifyMutations(t *testing.T) {
	key := []byte("shopify-test-secret")
	body := `{"id":820982911946154508,"email":"jon@example.com"}`
	sig := hmacB64(key, body)
	mac, _ := hex.DecodeString(hmacHex(key, body))
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(sig)
	malformed := []string{
		hex.EncodeToString(mac),     // hex, as Shopify's OAuth callbacks
		strings.TrimRight(sig, "="), // unpadded
		sig + "=",                   // over-padded
		sig[:40],                    // truncated
		"sha256=" + sig,             // a prefix Shopify does not send
		sig[:20] + " " + sig[21:],   // inner space
		sig + "," + sig,             // two in one header
		hmacB64(append(key, 'x'), body)[:43] + "!", // not base64
	}
	if urlSafe != sig {
		malformed = append(malformed, urlSafe)
	}
	preset{
		p:    providers.Shopify{},
		key:  key,
		body: body,
		now:  time.Unix(1_700_000_000, 0),
		header: http.Header{
			"X-Shopify-Hmac-Sha256": {sig},
			"X-Shopify-Topic":       {"orders/create"},
			"X-Shopify-Webhook-Id":  {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
		},
		required:   []string{"X-Shopify-Hmac-Sha256"},
		sigs:       []string{"X-Shopify-Hmac-Sha256"},
		malformed:  map[string][]string{"X-Shopify-Hmac-Sha256": malformed},
		unverified: map[string][]string{"X-Shopify-Hmac-Sha256": {hmacB64(key, body+"\n"), strings.Repeat("A", 43) + "="}},
	}.run(t)
}

func TestShopifyDescribe(t *testing.T) {
	p := providers.Shopify{}
	h := http.Header{}
	h.Set("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
	h.Set("X-Shopify-Topic", "orders/create")
	if got := presetDescribe(p, h, `{"id":1}`); got[0] != "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043" || got[1] != "orders/create" {
		t.Errorf("Describe = %q", got)
	}
	if got := presetDescribe(p, http.Header{}, `{"id":1}`); got[0] != "" || got[1] != "" {
		t.Errorf("Describe without headers = %q, want empty (the body's id is not Shopify's)", got)
	}
}

func TestDecodeBase64AndHeaderFields(t *testing.T) {
	b, err := providers.DecodeBase64("AAECAw==", 4)
	if err != nil || string(b) != "\x00\x01\x02\x03" {
		t.Errorf("DecodeBase64 = %x, %v", b, err)
	}
	for _, bad := range []string{"AAECAw", "AAECAw=", "AAECAw===", "AAECAx==", "AAEC-w==", "AAECAw==\n", "", "AAECAwQ="} {
		if b, err := providers.DecodeBase64(bad, 4); err == nil {
			t.Errorf("DecodeBase64(%q) = %x, want malformed", bad, b)
		}
	}
	vals := []string{"x", "y", "z"}
	h := http.Header{"A": {" one ", "two"}, "B": {""}}
	providers.HeaderFields(h, []string{"A", "", "C"}, vals)
	if vals[0] != "one" || vals[1] != "" || vals[2] != "" {
		t.Errorf("HeaderFields = %q", vals)
	}
}
