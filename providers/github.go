package providers

import (
	"crypto"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(GitHub{})
}

// GitHub verifies webhooks from GitHub.
//
// GitHub sends "X-Hub-Signature-256: sha256=<hex>", the HMAC-SHA256 of the
// raw body under the webhook's secret. The legacy X-Hub-Signature header
// (HMAC-SHA1) is not accepted: a request that carries only it has no
// signature. {http.webhook.id} is the X-GitHub-Delivery header and
// {http.webhook.event} the X-GitHub-Event header. GitHub signs no
// timestamp, and neither header is signed: a replayed delivery verifies.
type GitHub struct{}

// CaddyModule returns the Caddy module information.
func (GitHub) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".github",
		New: func() caddy.Module { return new(GitHub) },
	}
}

// GitHubSignatureHeader is the header GitHub signs with.
const GitHubSignatureHeader = "X-Hub-Signature-256"

// Parse reads X-Hub-Signature-256: "sha256=<hex>".
func (GitHub) Parse(r *http.Request, _ time.Time) (Signed, error) {
	return ParseHexSignature(r.Header, GitHubSignatureHeader, "sha256", crypto.SHA256, true)
}

var (
	githubFields  = []string{"id", "event"}
	githubHeaders = []string{"X-GitHub-Delivery", "X-GitHub-Event"}
)

// Fields returns id and event.
func (GitHub) Fields() []string { return githubFields }

// Describe reads X-GitHub-Delivery and X-GitHub-Event.
func (GitHub) Describe(h http.Header, _ []byte, vals []string) {
	HeaderFields(h, githubHeaders, vals)
}

// Interface guards
var _ Provider = (*GitHub)(nil)

// Sign sends "X-Hub-Signature-256: sha256=<hex>".
func (GitHub) Sign(req SignRequest) (http.Header, error) {
	mac, err := signOnce(req, SchemeHMAC, crypto.SHA256, nil, nil)
	if err != nil {
		return nil, err
	}
	return http.Header{GitHubSignatureHeader: {"sha256=" + hex.EncodeToString(mac)}}, nil
}

// Ping is the ping event GitHub sends when a webhook is created, with its
// X-GitHub-Event: ping and a delivery GUID.
func (GitHub) Ping(_ time.Time, id string) ([]byte, http.Header) {
	id = orID(id, NewUUID)
	body := `{"zen":"Design for failure.","hook_id":123456789,"hook":{"type":"Repository","id":123456789,"name":"web","active":true,` +
		`"events":["push"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://example.com/webhooks/github"}}}`
	return []byte(body), jsonHeader("X-GitHub-Event", "ping", "X-GitHub-Delivery", id,
		"X-GitHub-Hook-Id", "123456789", "User-Agent", "GitHub-Hookshot/caddy-webhook-send")
}
