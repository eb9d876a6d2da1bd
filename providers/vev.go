package providers

import (
	"crypto"
	"fmt"
	"net/http"
	"strings"
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
type Vev struct{}

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
	v, err := SingleHeader(r.Header, VevSignatureHeader)
	if err != nil {
		return Signed{}, err
	}
	algo, hexSig, ok := strings.Cut(v, "=")
	if !ok {
		return Signed{}, fmt.Errorf("%w: no algorithm", ErrMalformedSignature)
	}
	if !EqualFoldASCII(algo, "sha512") {
		return Signed{}, fmt.Errorf("%w: algorithm is not sha512", ErrMalformedSignature)
	}
	mac, err := DecodeHex(hexSig, crypto.SHA512.Size())
	if err != nil {
		return Signed{}, err
	}
	return Signed{Hash: crypto.SHA512, Signatures: [][]byte{mac}}, nil
}

var vevFields = []string{"id", "event", "hosting"}

// Fields returns id, event and hosting.
func (Vev) Fields() []string { return vevFields }

// Describe reads "id", "event" and "hosting" from the top level of the body.
func (Vev) Describe(_ http.Header, body []byte, vals []string) {
	TopLevelFields(body, vevFields, vals)
}

// Interface guards
var _ Provider = (*Vev)(nil)
