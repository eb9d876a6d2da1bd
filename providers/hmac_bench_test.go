package providers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkHMACParse measures Parse, the per-request work of an hmac
// configuration before the body: a bare pattern (GitHub's twin), a list
// with a template and a timestamp (Standard Webhooks' twin), and two
// headers with a suffix (Box).
func BenchmarkHMACParse(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	for _, bc := range []struct {
		name, config string
		headers      []string
	}{
		{"pattern", `{"signatures": [{"header": "X-Hub-Signature-256", "pattern": "sha256={sig}"}]}`,
			[]string{"X-Hub-Signature-256", "sha256=" + hmHex}},
		{"list_template_timestamp", `{"key_encoding": "whsec", "signatures": [{"header": "webhook-signature", "list": " ", "pattern": "v1,{sig}", "encoding": "base64"}], "signed": "{header.webhook-id}.{ts}.{body}", "timestamp": {"from": "header", "header": "webhook-timestamp", "format": "unix"}}`,
			[]string{"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp", "1700000000", "webhook-signature", "v1a,AAAA v1," + hmB64 + " v1," + hmB642}},
		{"two_headers_suffix", `{"signatures": [{"header": "BOX-SIGNATURE-PRIMARY", "encoding": "base64"}, {"header": "BOX-SIGNATURE-SECONDARY", "encoding": "base64"}], "signed": "{body}{header.BOX-DELIVERY-TIMESTAMP}", "timestamp": {"from": "header", "header": "BOX-DELIVERY-TIMESTAMP", "format": "rfc3339"}}`,
			[]string{"BOX-SIGNATURE-PRIMARY", hmB64, "BOX-SIGNATURE-SECONDARY", hmB642, "BOX-DELIVERY-TIMESTAMP", "2023-11-14T22:13:20Z"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := hmFuzzProvision(bc.config)
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(""))
			for i := 0; i+1 < len(bc.headers); i += 2 {
				r.Header.Add(bc.headers[i], bc.headers[i+1])
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(r, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
