package providers

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Shopify{})
}

// Shopify verifies webhooks from Shopify.
//
// Shopify sends "X-Shopify-Hmac-Sha256: <base64>", the standard base64 of
// the HMAC-SHA256 of the raw body under the app's client secret (used as
// is). Hex, which Shopify uses for OAuth callbacks, is refused.
// {http.webhook.id} is the X-Shopify-Webhook-Id header and
// {http.webhook.event} the X-Shopify-Topic header (orders/create, ...).
// Shopify signs no timestamp.
type Shopify struct{}

// CaddyModule returns the Caddy module information.
func (Shopify) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".shopify",
		New: func() caddy.Module { return new(Shopify) },
	}
}

// ShopifySignatureHeader is the header Shopify signs with.
const ShopifySignatureHeader = "X-Shopify-Hmac-Sha256"

// Parse reads X-Shopify-Hmac-Sha256: "<base64>".
func (Shopify) Parse(r *http.Request, _ time.Time) (Signed, error) {
	return ParseBase64Signature(r.Header, ShopifySignatureHeader, crypto.SHA256)
}

var (
	shopifyFields  = []string{"id", "event"}
	shopifyHeaders = []string{"X-Shopify-Webhook-Id", "X-Shopify-Topic"}
)

// Fields returns id and event.
func (Shopify) Fields() []string { return shopifyFields }

// Describe reads X-Shopify-Webhook-Id and X-Shopify-Topic.
func (Shopify) Describe(h http.Header, _ []byte, vals []string) {
	HeaderFields(h, shopifyHeaders, vals)
}

// Interface guards
var _ Provider = (*Shopify)(nil)

// Sign sends "X-Shopify-Hmac-Sha256: <base64>".
func (Shopify) Sign(req SignRequest) (http.Header, error) {
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, nil, nil)
	if err != nil {
		return nil, err
	}
	return http.Header{ShopifySignatureHeader: {base64.StdEncoding.EncodeToString(mac)}}, nil
}

// Ping is a test orders/create notification (what the admin's "Send test
// notification" sends), with Shopify's topic, webhook id and shop headers.
func (Shopify) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, NewUUID)
	body := `{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@example.com",` +
		`"created_at":"` + now.UTC().Format(time.RFC3339) + `","currency":"USD","total_price":"598.94","test":true,` +
		`"line_items":[{"id":466157049,"title":"IPod Nano - 8gb","quantity":1}]}`
	return []byte(body), jsonHeader("X-Shopify-Topic", "orders/create", "X-Shopify-Webhook-Id", id,
		"X-Shopify-Shop-Domain", "example.myshopify.com", "X-Shopify-Api-Version", "2024-07",
		"X-Shopify-Triggered-At", now.UTC().Format(time.RFC3339Nano))
}
