package providers

import (
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Discord{})
}

// Discord verifies requests to a Discord application's interactions (or
// webhook events) endpoint.
//
// Discord sends "X-Signature-Ed25519: <hex>", the 64-byte Ed25519
// signature in hex, of "<X-Signature-Timestamp><body>" (the timestamp's
// text, unix seconds, then the raw body, nothing between), under the
// application's key pair. The configured secret is the application's
// public key as the developer portal shows it, 64 hex digits (the
// standard base64 of its 32 bytes, or a PEM "PUBLIC KEY" block, also do).
// The timestamp must be within the tolerance (default 5 minutes) of the
// gateway's clock in either direction: Discord documents no window, and
// an interaction is answered within seconds or never. Discord probes an
// endpoint with bad signatures and expects 401, which is what a forgery
// gets. {http.webhook.id} and {http.webhook.event} are the body's
// top-level "id" and "type" (an interaction's type is a number: 1 is
// PING, which the upstream answers with {"type":1}).
type Discord struct {
	Tolerance
}

// CaddyModule returns the Caddy module information.
func (Discord) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".discord",
		New: func() caddy.Module { return new(Discord) },
	}
}

// The headers Discord signs with.
const (
	DiscordSignatureHeader = "X-Signature-Ed25519"
	DiscordTimestampHeader = "X-Signature-Timestamp"
)

// Parse reads X-Signature-Ed25519 and X-Signature-Timestamp and checks
// the timestamp.
func (p Discord) Parse(r *http.Request, now time.Time) (Signed, error) {
	v, err := SingleHeader(r.Header, DiscordSignatureHeader)
	if err != nil {
		return Signed{}, err
	}
	tsText, err := SingleHeader(r.Header, DiscordTimestampHeader)
	if err != nil {
		return Signed{}, err
	}
	sig, err := DecodeHex(v, ed25519.SignatureSize)
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
	// the header's text as sent is what Discord signed
	return Signed{Scheme: SchemeEd25519, Prefix: []byte(tsText), Signatures: [][]byte{sig}}, nil
}

var (
	discordFields     = []string{"id", "event"}
	discordBodyFields = []string{"id", "type"}
)

// Fields returns id and event.
func (Discord) Fields() []string { return discordFields }

// Describe reads "id" and "type" from the top level of the body.
func (Discord) Describe(_ http.Header, body []byte, vals []string) {
	TopLevelFields(body, discordBodyFields, vals)
}

// PublicKeys reports that Discord's keys are public keys.
func (Discord) PublicKeys() bool { return true }

// PublicKey decodes the application's public key: 64 hex digits as the
// developer portal shows it, the base64 of its 32 bytes, or PEM.
func (Discord) PublicKey(key string) (crypto.PublicKey, error) {
	k, err := ParseEd25519PublicKey(key)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Interface guards
var (
	_ Provider         = (*Discord)(nil)
	_ PublicKeyDecoder = (*Discord)(nil)
	_ CaddyfileOption  = (*Discord)(nil)
	_ caddy.Validator  = (*Discord)(nil)
)

// Sign sends X-Signature-Timestamp and X-Signature-Ed25519, the hex
// Ed25519 signature of "<timestamp><body>" under the application's private
// key.
func (Discord) Sign(req SignRequest) (http.Header, error) {
	ts := unixText(req.Time)
	sig, err := signOnce(req, SchemeEd25519, 0, []byte(ts), nil)
	if err != nil {
		return nil, err
	}
	return http.Header{DiscordTimestampHeader: {ts}, DiscordSignatureHeader: {hex.EncodeToString(sig)}}, nil
}

// Ping is the PING interaction ({"type":1,...}) Discord sends to check an
// interactions endpoint; its id a snowflake of now unless given.
func (Discord) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string {
		const discordEpochMs = 1420070400000
		return strconv.FormatInt((now.UnixMilli()-discordEpochMs)<<22, 10)
	})
	body := `{"app_permissions":"562949953601536","application_id":"1234567890123456789","id":` + jsonQuote(id) +
		`,"token":"aW50ZXJhY3Rpb246dGVzdDp0b2tlbg","type":1,"user":{"id":"53908232506183680","username":"test"},"version":1}`
	return []byte(body), jsonHeader("User-Agent", "Discord-Interactions/1.0 (+https://discord.com)")
}
