package providers

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Slack{})
}

// Slack verifies requests from Slack (Events API, slash commands,
// interactivity).
//
// Slack sends "X-Slack-Signature: v0=<hex>", the hex HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>" under the app's signing secret
// (used as is). The timestamp, unix seconds, must be within the tolerance
// (default 5 minutes) of the gateway's clock in either direction. Bodies
// are JSON (Events API) or form-encoded (slash commands, interactivity);
// the bytes are verified as they are either way. {http.webhook.event} is
// the top-level "type" of a JSON body (event_callback, url_verification,
// ...), empty otherwise; Slack's deliveries carry no event id, so
// {http.webhook.id} is always empty.
type Slack struct {
	Tolerance
}

// CaddyModule returns the Caddy module information.
func (Slack) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".slack",
		New: func() caddy.Module { return new(Slack) },
	}
}

// The headers Slack signs with.
const (
	SlackSignatureHeader = "X-Slack-Signature"
	SlackTimestampHeader = "X-Slack-Request-Timestamp"
)

// Parse reads X-Slack-Signature and X-Slack-Request-Timestamp and checks
// the timestamp.
func (p Slack) Parse(r *http.Request, now time.Time) (Signed, error) {
	v, err := SingleHeader(r.Header, SlackSignatureHeader)
	if err != nil {
		return Signed{}, err
	}
	tsText, err := SingleHeader(r.Header, SlackTimestampHeader)
	if err != nil {
		return Signed{}, err
	}
	version, hexSig, ok := strings.Cut(v, "=")
	if !ok || version != "v0" {
		return Signed{}, fmt.Errorf("%w: %s is not v0=<hex>", ErrMalformedSignature, SlackSignatureHeader)
	}
	mac, err := DecodeHex(hexSig, sha256.Size)
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
	// Slack's libraries sign the header's text as sent.
	prefix := make([]byte, 0, len("v0::")+len(tsText))
	prefix = append(prefix, "v0:"...)
	prefix = append(prefix, tsText...)
	prefix = append(prefix, ':')
	return Signed{Hash: crypto.SHA256, Prefix: prefix, Signatures: [][]byte{mac}}, nil
}

var (
	slackFields     = []string{"id", "event"}
	slackBodyFields = []string{"type"}
)

// Fields returns id (always empty) and event.
func (Slack) Fields() []string { return slackFields }

// Describe reads "type" from the top level of a JSON body.
func (Slack) Describe(_ http.Header, body []byte, vals []string) {
	vals[0] = ""
	TopLevelFields(body, slackBodyFields, vals[1:2])
}

// Interface guards
var (
	_ Provider        = (*Slack)(nil)
	_ CaddyfileOption = (*Slack)(nil)
	_ caddy.Validator = (*Slack)(nil)
)

// Sign sends X-Slack-Request-Timestamp and "X-Slack-Signature:
// v0=<hex>", the HMAC-SHA256 of "v0:<timestamp>:<body>".
func (Slack) Sign(req SignRequest) (http.Header, error) {
	ts := unixText(req.Time)
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, []byte("v0:"+ts+":"), nil)
	if err != nil {
		return nil, err
	}
	return http.Header{SlackTimestampHeader: {ts}, SlackSignatureHeader: {"v0=" + hex.EncodeToString(mac)}}, nil
}

// Ping is the url_verification request Slack sends when an Events API URL
// is set; id, when given, is its challenge (Slack's requests carry no
// event id).
func (Slack) Ping(_ time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("") })
	body := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":` + jsonQuote(id) + `,"type":"url_verification"}`
	return []byte(body), jsonHeader("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
}
