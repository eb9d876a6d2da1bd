package providers

import (
	"crypto"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Vev{})
}

// Vev verifies webhooks from Vev.
//
// Vev sends "X-Vev-Signature: sha512=<hex>": the part before "=" names the
// algorithm (only sha512 exists) and the part after is the hex
// HMAC-SHA512, under the endpoint's secret, of the event's compact JSON
// text, which is the raw body as Vev sends it. The event is a JSON object
// {"id", "hosting", "event", "payload"}: "id", "event" and "hosting" become
// {http.webhook.id}, {http.webhook.event} and {http.webhook.hosting}.
// PUBLISH payloads carry whole HTML pages, several MiB being normal.
//
// With StringifyFallback, a body whose raw MAC does not match is also
// verified over JSON.stringify(JSON.parse(body)), which is what Vev's own
// Node receiver hashes (see vev_stringify.go).
type Vev struct {
	// StringifyFallback, when true, verifies a body whose raw MAC does not
	// match over its JSON.stringify form, exactly as Node produces it, and
	// forwards that form (the text Vev signed) instead of the raw body. For
	// senders or proxies that re-encode Vev's JSON (pretty-printing,
	// escapes); off by default.
	StringifyFallback bool `json:"stringify_fallback,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Vev) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".vev",
		New: func() caddy.Module { return new(Vev) },
	}
}

// VevSignatureHeader is the header Vev signs with.
const VevSignatureHeader = "X-Vev-Signature"

// Parse reads X-Vev-Signature: "sha512=<hex>".
func (Vev) Parse(r *http.Request, _ time.Time) (Signed, error) {
	return ParseHexSignature(r.Header, VevSignatureHeader, "sha512", crypto.SHA512, true)
}

var vevFields = []string{"id", "event", "hosting"}

// Fields returns id, event and hosting.
func (Vev) Fields() []string { return vevFields }

// Describe reads "id", "event" and "hosting" from the top level of the body.
func (Vev) Describe(_ http.Header, body []byte, vals []string) {
	TopLevelFields(body, vevFields, vals)
}

// Interface guards
var (
	_ Provider             = (*Vev)(nil)
	_ AlternateForm        = (*Vev)(nil)
	_ CaddyfileOption      = (*Vev)(nil)
	_ CaddyfileOptionNamer = (*Vev)(nil)
)

// Sign sends "X-Vev-Signature: sha512=<hex>", the HMAC-SHA512 of the body.
func (Vev) Sign(req SignRequest) (http.Header, error) {
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA512, nil, nil)
	if err != nil {
		return nil, err
	}
	return http.Header{VevSignatureHeader: {"sha512=" + hex.EncodeToString(mac)}}, nil
}

// Ping is Vev's PING event (what its dashboard's "Ping" button sends).
func (Vev) Ping(_ time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("evt_ping_") })
	return []byte(`{"id":` + jsonQuote(id) + `,"hosting":"hst_test","event":"PING","payload":{}}`), jsonHeader()
}
