package providers

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(SendGrid{})
}

// SendGrid verifies SendGrid's (Twilio SendGrid's) signed Event Webhook.
//
// SendGrid sends "X-Twilio-Email-Event-Webhook-Signature: <base64>", the
// standard base64 of an ASN.1 DER ECDSA signature on P-256 of the
// SHA-256 of "<X-Twilio-Email-Event-Webhook-Timestamp><body>" (the
// timestamp's text, unix seconds, then the raw body). The configured
// secret is the "verification key" SendGrid shows when signing is turned
// on: the base64 of a DER SubjectPublicKeyInfo, starting with MFkw (a PEM
// "PUBLIC KEY" block also does). The timestamp must be within the
// tolerance (default 5 minutes) of the gateway's clock in either
// direction; SendGrid documents no window. The body is a JSON array of
// events, each with its own sg_event_id and event, so there is no single
// id or event type: {http.webhook.id} and {http.webhook.event} are empty.
type SendGrid struct {
	Tolerance
}

// CaddyModule returns the Caddy module information.
func (SendGrid) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".sendgrid",
		New: func() caddy.Module { return new(SendGrid) },
	}
}

// The headers SendGrid signs with.
const (
	SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// Parse reads X-Twilio-Email-Event-Webhook-Signature and -Timestamp and
// checks the timestamp.
func (p SendGrid) Parse(r *http.Request, now time.Time) (Signed, error) {
	v, err := SingleHeader(r.Header, SendGridSignatureHeader)
	if err != nil {
		return Signed{}, err
	}
	tsText, err := SingleHeader(r.Header, SendGridTimestampHeader)
	if err != nil {
		return Signed{}, err
	}
	sig, err := DecodeDERSignatureBase64(v) // a DER SEQUENCE { r, s }; whether it verifies is the handler's business
	if err != nil {
		return Signed{}, err
	}
	ts, err := ParseUnixSeconds(tsText)
	if err != nil {
		return Signed{}, err
	}
	if err := p.Check(ts, now); err != nil {
		return Signed{}, err
	}
	// the header's text as sent is what SendGrid signed
	return Signed{Scheme: SchemeECDSAP256SHA256, Prefix: []byte(tsText), Signatures: [][]byte{sig}}, nil
}

var sendgridFields = []string{"id", "event"}

// Fields returns id and event, always empty: a delivery holds many events.
func (SendGrid) Fields() []string { return sendgridFields }

// Describe leaves both fields empty.
func (SendGrid) Describe(_ http.Header, _ []byte, vals []string) {
	clear(vals)
}

// PublicKeys reports that SendGrid's keys are public keys.
func (SendGrid) PublicKeys() bool { return true }

// PublicKey decodes the verification key: base64 DER as SendGrid shows
// it, or PEM.
func (SendGrid) PublicKey(key string) (crypto.PublicKey, error) {
	k, err := ParseECDSAP256PublicKey(key)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Interface guards
var (
	_ Provider         = (*SendGrid)(nil)
	_ PublicKeyDecoder = (*SendGrid)(nil)
	_ CaddyfileOption  = (*SendGrid)(nil)
	_ caddy.Validator  = (*SendGrid)(nil)
)

// Sign sends X-Twilio-Email-Event-Webhook-Timestamp and
// X-Twilio-Email-Event-Webhook-Signature, the base64 of the ASN.1 DER ECDSA
// P-256 signature of SHA-256("<timestamp><body>"), under the private key
// of the verification key.
func (SendGrid) Sign(req SignRequest) (http.Header, error) {
	ts := unixText(req.Time)
	sig, err := signOnce(req, SchemeECDSAP256SHA256, 0, []byte(ts), nil)
	if err != nil {
		return nil, err
	}
	return http.Header{SendGridTimestampHeader: {ts}, SendGridSignatureHeader: {base64.StdEncoding.EncodeToString(sig)}}, nil
}

// Ping is a batch of two events, as the Event Webhook's "Test Your
// Integration" sends; id is the first event's sg_event_id.
func (SendGrid) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("sg_test_") })
	ts := unixText(now)
	body := `[{"email":"example@test.com","timestamp":` + ts + `,"smtp-id":"\u003c14c5d75ce93.dfd.64b469@ismtpd-555\u003e",` +
		`"event":"processed","category":["cat facts"],"sg_event_id":` + jsonQuote(id) + `,"sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},` +
		`{"email":"example@test.com","timestamp":` + ts + `,"smtp-id":"\u003c14c5d75ce93.dfd.64b469@ismtpd-555\u003e",` +
		`"event":"delivered","category":["cat facts"],"sg_event_id":` + jsonQuote(id+"_2") + `,"sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"250 OK"}]`
	return []byte(body), jsonHeader("User-Agent", "SendGrid Event API")
}
