package providers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestGitHubModule(t *testing.T) {
	presetModule(t, "github", "id,event")
	if providers.GitHubSignatureHeader != "X-Hub-Signature-256" {
		t.Errorf("GitHubSignatureHeader = %q", providers.GitHubSignatureHeader)
	}
}

func TestGitHubMutations(t *testing.T) {
	key := []byte("github-test-secret")
	body := `{"zen":"Design for failure.","hook_id":1}`
	sig := hmacHex(key, body)
	other := hmacHex(key, body+" ")
	preset{
		p:    providers.GitHub{},
		key:  key,
		body: body,
		now:  time.Unix(1_700_000_000, 0),
		header: http.Header{
			"X-Hub-Signature-256": {"sha256=" + sig},
			"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
			"X-Github-Event":      {"ping"},
		},
		required: []string{"X-Hub-Signature-256"},
		sigs:     []string{"X-Hub-Signature-256"},
		malformed: map[string][]string{
			"X-Hub-Signature-256": {
				sig,                                  // no algorithm
				"sha1=" + sig[:40],                   // the legacy header's format
				"sha1=" + sig,                        // sha1 label
				"sha512=" + sig,                      // other algorithm
				"sha256=",                            // no hex
				"sha256=" + sig[:63],                 // odd length
				"sha256=" + sig + "00",               // too long
				"sha256= " + sig,                     // inner space
				"sha256=" + sig + ",sha256=" + other, // two in one header
				"sha256=" + hmacB64(key, body),       // base64, not hex
				"sha256=" + strings.Repeat("g", 64),  // not hex
				"sha256:" + sig,                      // wrong separator
			},
		},
		unverified: map[string][]string{
			"X-Hub-Signature-256": {"sha256=" + other, "sha256=" + strings.Repeat("0", 64)},
		},
	}.run(t)
}

// The legacy X-Hub-Signature (HMAC-SHA1) alone is no signature at all.
func TestGitHubSHA1HeaderRefused(t *testing.T) {
	h := http.Header{"X-Hub-Signature": {"sha1=c28e33b2e56e548956c446e890929a6cbec3ac89"}}
	_, err := presetParse(t, providers.GitHub{}, h, time.Now())
	wantParseErr(t, err, providers.ErrMissingSignature, h)
}

func TestGitHubDescribe(t *testing.T) {
	p := providers.GitHub{}
	h := http.Header{}
	h.Set("X-GitHub-Delivery", " 72d3162e-cc78-11e3-81ab-4c9367dc0958 ")
	h.Set("X-GitHub-Event", "pull_request")
	got := presetDescribe(p, h, `{"id":"body-id","event":"body-event","action":"opened"}`)
	if got[0] != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || got[1] != "pull_request" {
		t.Errorf("Describe = %q, want the delivery and event headers", got)
	}
	if got := presetDescribe(p, http.Header{}, `{"id":"x"}`); got[0] != "" || got[1] != "" {
		t.Errorf("Describe without headers = %q, want empty", got)
	}
}
