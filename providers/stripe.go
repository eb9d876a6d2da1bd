package providers

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Stripe{})
}

// Stripe verifies webhooks from Stripe.
//
// Stripe sends "Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]":
// each v1 is the hex HMAC-SHA256 of "<t>.<body>" under the endpoint's
// signing secret, the whole "whsec_..." string used as is (Stripe does not
// decode it). Several v1 values come while a secret is rolled; any one
// verifies. As Stripe's own libraries do, v0 (test-mode legacy) and other
// keys are ignored, as is a v1 that is not 64 hex digits; a header with no
// usable v1, without t, or with a part that is not key=value is malformed.
// t must be within the tolerance (default 5 minutes) of the gateway's
// clock in either direction; Stripe's libraries check only the past. The
// event is a JSON object whose "id" and "type" become {http.webhook.id}
// and {http.webhook.event}.
type Stripe struct {
	Tolerance
}

// CaddyModule returns the Caddy module information.
func (Stripe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".stripe",
		New: func() caddy.Module { return new(Stripe) },
	}
}

// StripeSignatureHeader is the header Stripe signs with.
const StripeSignatureHeader = "Stripe-Signature"

// Parse reads Stripe-Signature and checks its timestamp.
func (p Stripe) Parse(r *http.Request, now time.Time) (Signed, error) {
	v, err := SingleHeader(r.Header, StripeSignatureHeader)
	if err != nil {
		return Signed{}, err
	}
	var (
		tsText string
		haveT  bool
		sigs   [][]byte
		enc    *EncodingError // of the first v1 skipped, for the handler's hint
	)
	for _, part := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(part, "=")
		if !ok || strings.Contains(val, "=") {
			err := fmt.Errorf("%w: %s has a part that is not key=value", ErrMalformedSignature, StripeSignatureHeader)
			if key == "v1" { // base64 with its padding, perhaps: say so
				err = misencodedHex(val, sha256.Size, err)
			}
			return Signed{}, err
		}
		switch key {
		case "t":
			if haveT {
				return Signed{}, fmt.Errorf("%w: %s has two t", ErrMalformedSignature, StripeSignatureHeader)
			}
			tsText, haveT = val, true
		case "v1":
			mac, err := DecodeHex(val, sha256.Size)
			if err != nil {
				firstEncodingError(&enc, err)
				continue
			}
			sigs = append(sigs, mac)
		}
	}
	if !haveT {
		return Signed{}, fmt.Errorf("%w: %s has no t", ErrMalformedSignature, StripeSignatureHeader)
	}
	ts, err := ParseUnixSeconds(tsText)
	if err != nil {
		return Signed{}, err
	}
	if len(sigs) == 0 {
		return Signed{}, enc.With(fmt.Errorf("%w: %s has no v1 signature", ErrMalformedSignature, StripeSignatureHeader))
	}
	if err := p.Check(ts, now); err != nil {
		return Signed{}, err
	}
	prefix := strconv.AppendInt(nil, ts.Unix(), 10)
	prefix = append(prefix, '.')
	return Signed{Hash: crypto.SHA256, Prefix: prefix, Signatures: sigs}, nil
}

var (
	stripeFields     = []string{"id", "event"}
	stripeBodyFields = []string{"id", "type"}
)

// Fields returns id and event.
func (Stripe) Fields() []string { return stripeFields }

// Describe reads "id" and "type" from the top level of the body.
func (Stripe) Describe(_ http.Header, body []byte, vals []string) {
	TopLevelFields(body, stripeBodyFields, vals)
}

// Interface guards
var (
	_ Provider        = (*Stripe)(nil)
	_ CaddyfileOption = (*Stripe)(nil)
	_ caddy.Validator = (*Stripe)(nil)
)

// Sign sends "Stripe-Signature: t=<unix seconds>,v1=<hex>", the
// HMAC-SHA256 of "<t>.<body>" under the whole whsec_ secret.
func (Stripe) Sign(req SignRequest) (http.Header, error) {
	ts := unixText(req.Time)
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, []byte(ts+"."), nil)
	if err != nil {
		return nil, err
	}
	return http.Header{StripeSignatureHeader: {"t=" + ts + ",v1=" + hex.EncodeToString(mac)}}, nil
}

// Ping is a small test-mode event object, as `stripe trigger` sends one.
func (Stripe) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("evt_test_") })
	created := unixText(now)
	body := `{"id":` + jsonQuote(id) + `,"object":"event","api_version":"2024-06-20","created":` + created +
		`,"data":{"object":{"id":"pi_test_0000000000000000","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}},` +
		`"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"payment_intent.succeeded"}`
	h := jsonHeader("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	h.Set("Content-Type", "application/json; charset=utf-8")
	return []byte(body), h
}
