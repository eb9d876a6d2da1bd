package providers

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(Standard{})
}

// Standard verifies webhooks signed as the Standard Webhooks specification
// says: Svix and the many senders built on it (Clerk, Resend, OpenAI,
// Replicate, GitLab's signing token, ...).
//
// A delivery carries webhook-id, webhook-timestamp (unix seconds) and
// webhook-signature, a space-separated list of "v1,<base64>", each the
// HMAC-SHA256 of "<id>.<timestamp>.<body>". Svix sends the same headers
// named svix-id, svix-timestamp and svix-signature; a request that carries
// any webhook-* header is read from the webhook-* headers, one that carries
// none from the svix-* headers. Several signatures come while a secret is
// rotated; any v1 one verifies. Other versions (v1a, v2, ...) and v1
// values that are not the base64 of 32 bytes are ignored, as the official
// libraries ignore them; a header with no usable v1 is malformed. The
// timestamp must be within the tolerance (default 5 minutes) of the
// gateway's clock in either direction, as the libraries check.
//
// The secret is "whsec_<base64>", decoded to the HMAC key. As in the
// official libraries, the whsec_ prefix is optional (a bare base64 secret
// is decoded the same way), and a secret that decodes to no bytes is
// refused. {http.webhook.id} is the webhook-id header and
// {http.webhook.event} the "type" of the JSON body.
type Standard struct {
	Tolerance
}

// CaddyModule returns the Caddy module information.
func (Standard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".standard",
		New: func() caddy.Module { return new(Standard) },
	}
}

// The headers of Standard Webhooks (webhook-id, ...) and of Svix
// (svix-id, ...), canonical, in the order id, timestamp, signature.
var (
	StandardHeaders = [3]string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}
	SvixHeaders     = [3]string{"Svix-Id", "Svix-Timestamp", "Svix-Signature"}
)

// standardHeaders picks the header set a request uses.
func standardHeaders(h http.Header) *[3]string {
	for _, name := range StandardHeaders {
		if len(h[name]) > 0 {
			return &StandardHeaders
		}
	}
	for _, name := range SvixHeaders {
		if len(h[name]) > 0 {
			return &SvixHeaders
		}
	}
	return &StandardHeaders
}

// StandardSecretPrefix is the prefix of a Standard Webhooks secret.
const StandardSecretPrefix = "whsec_"

// Key decodes a "whsec_<base64>" secret (the prefix is optional).
func (Standard) Key(secret string) ([]byte, error) {
	if strings.HasPrefix(secret, "whpk_") || strings.HasPrefix(secret, "whsk_") {
		return nil, errors.New("Ed25519 keys (whpk_, whsk_; signatures v1a) are not supported: use the sender's whsec_ signing secret")
	}
	b64 := strings.TrimPrefix(secret, StandardSecretPrefix)
	if b64 == "" {
		return nil, errors.New("empty after whsec_: copy the whole signing secret, whsec_ and what follows")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errors.New("not whsec_ followed by base64: copy the signing secret exactly as the sender shows it")
	}
	if len(key) == 0 {
		return nil, errors.New("decodes to an empty key: copy the whole signing secret")
	}
	return key, nil
}

// Parse reads the id, timestamp and signature headers and checks the
// timestamp.
func (p Standard) Parse(r *http.Request, now time.Time) (Signed, error) {
	names := standardHeaders(r.Header)
	id, err := SingleHeader(r.Header, names[0])
	if err != nil {
		return Signed{}, err
	}
	tsText, err := SingleHeader(r.Header, names[1])
	if err != nil {
		return Signed{}, err
	}
	list, err := SingleHeader(r.Header, names[2])
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
	var sigs [][]byte
	var enc *EncodingError // of the first v1 skipped, for the handler's hint
	for rest, more := list, true; more; {
		var item string
		item, rest, more = strings.Cut(rest, " ")
		version, sig, ok := strings.Cut(item, ",")
		if !ok || version != "v1" {
			continue
		}
		mac, err := DecodeBase64(sig, sha256.Size)
		if err != nil {
			firstEncodingError(&enc, err)
			continue
		}
		sigs = append(sigs, mac)
	}
	if len(sigs) == 0 {
		return Signed{}, enc.With(fmt.Errorf("%w: %s has no v1 signature", ErrMalformedSignature, names[2]))
	}
	// The libraries sign the timestamp as a decimal integer, whatever its
	// text in the header.
	prefix := make([]byte, 0, len(id)+len(tsText)+2)
	prefix = append(prefix, id...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, ts.Unix(), 10)
	prefix = append(prefix, '.')
	return Signed{Hash: crypto.SHA256, Prefix: prefix, Signatures: sigs}, nil
}

var (
	standardFields     = []string{"id", "event"}
	standardBodyFields = []string{"type"}
)

// Fields returns id and event.
func (Standard) Fields() []string { return standardFields }

// Describe reads the id header and the body's "type".
func (Standard) Describe(h http.Header, body []byte, vals []string) {
	vals[0] = textproto.TrimString(h.Get(standardHeaders(h)[0]))
	TopLevelFields(body, standardBodyFields, vals[1:2])
}

// Interface guards
var (
	_ Provider        = (*Standard)(nil)
	_ KeyDecoder      = (*Standard)(nil)
	_ CaddyfileOption = (*Standard)(nil)
	_ caddy.Validator = (*Standard)(nil)
)

// Sign sends webhook-id (req.ID, else the request's webhook-id or
// svix-id header, else a fresh msg_ id), webhook-timestamp and
// "webhook-signature: v1,<base64>", the HMAC-SHA256 of
// "<id>.<timestamp>.<body>" under the decoded whsec_ secret.
func (Standard) Sign(req SignRequest) (http.Header, error) {
	names := standardHeaders(req.Header)
	id := req.ID
	if id == "" {
		id = textproto.TrimString(req.Header.Get(names[0]))
	}
	id = orID(id, func() string { return NewID("msg_") })
	ts := unixText(req.Time)
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, []byte(id+"."+ts+"."), nil)
	if err != nil {
		return nil, err
	}
	return http.Header{names[0]: {id}, names[1]: {ts}, names[2]: {"v1," + base64.StdEncoding.EncodeToString(mac)}}, nil
}

// Ping is a test event in the payload structure the specification
// recommends ({"type", "timestamp", "data"}), with its webhook-id.
func (Standard) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("msg_") })
	body := `{"type":"webhook.test","timestamp":"` + now.UTC().Format("2006-01-02T15:04:05.000Z") +
		`","data":{"message":"Test delivery from caddy webhook send"}}`
	return []byte(body), jsonHeader(StandardHeaders[0], id)
}
