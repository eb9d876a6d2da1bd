package providers

import (
	"crypto"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Vivreal{})
}

// Vivreal verifies webhooks from Vivreal.
//
// Vivreal sends the lowercase hex HMAC-SHA256 of the raw body, under the
// endpoint's secret, in the X-Vivreal-Signature header; its documentation
// shows the value both as bare "<hex>" and as "sha256=<hex>", and both are
// accepted (hex in either case). The event is a JSON object
// {"id", "event", "timestamp", "data"}: its "id" and "event" become
// {http.webhook.id} and {http.webhook.event}. Vivreal's timestamp is the
// event's time and is kept on retries, so it is no freshness proof and is
// not checked.
type Vivreal struct{}

// CaddyModule returns the Caddy module information.
func (Vivreal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".vivreal",
		New: func() caddy.Module { return new(Vivreal) },
	}
}

// VivrealSignatureHeader is the header Vivreal signs with.
const VivrealSignatureHeader = "X-Vivreal-Signature"

// Parse reads X-Vivreal-Signature: "<hex>" or "sha256=<hex>".
func (Vivreal) Parse(r *http.Request, _ time.Time) (Signed, error) {
	return ParseHexSignature(r.Header, VivrealSignatureHeader, "sha256", crypto.SHA256, false)
}

var vivrealFields = []string{"id", "event"}

// Fields returns id and event.
func (Vivreal) Fields() []string { return vivrealFields }

// Describe reads "id" and "event" from the top level of the body.
func (Vivreal) Describe(_ http.Header, body []byte, vals []string) {
	TopLevelFields(body, vivrealFields, vals)
}

// Interface guards
var _ Provider = (*Vivreal)(nil)

// Sign sends the lowercase hex HMAC-SHA256 of the body in
// X-Vivreal-Signature, bare, as Vivreal's documentation first shows it.
func (Vivreal) Sign(req SignRequest) (http.Header, error) {
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, nil, nil)
	if err != nil {
		return nil, err
	}
	return http.Header{VivrealSignatureHeader: {hex.EncodeToString(mac)}}, nil
}

// Ping is a collection.object.created event of a test object, with the
// event type in X-Vivreal-Event as Vivreal sends it.
func (Vivreal) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("evt_test_") })
	const event = "collection.object.created"
	body := `{"id":` + jsonQuote(id) + `,"event":"` + event + `","timestamp":"` + now.UTC().Format("2006-01-02T15:04:05.000Z") +
		`","data":{"collectionId":"col_test","objectId":"obj_test","title":"Test delivery"}}`
	return []byte(body), jsonHeader("X-Vivreal-Event", event)
}
