package providers

import (
	"crypto"
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
