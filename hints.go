package webhookverify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Diagnostic hints.
//
// When a signature is refused, a few cheap checks look for the usual
// mistakes behind a genuine sender's refusal, and the first that explains
// it goes into the refusal's log line as "hint" (never into the answer,
// and never with a secret, a MAC or the expected value):
//
//   - the signature is in the other encoding (hex for base64 or the
//     reverse) and, read that way, matches;
//   - it matches a secret that has expired (not_after);
//   - it matches the body without its trailing newline;
//   - it matches a secret decoded the other way: "whsec_..." taken as its
//     text (as Stripe does) rather than base64-decoded (as Standard
//     Webhooks does), or the reverse.
//
// The request is refused all the same (with enforce off, forwarded as
// unverified). The checks re-hash the buffered body a few times, so they
// run only for bodies of at most hintMaxBody bytes.

// hintMaxBody bounds the bodies the hints re-hash.
const hintMaxBody = 1 << 20

// reencoded returns, when Parse refused the signature only for its
// encoding (a providers.EncodingError), what Parse makes of the same
// headers with the signature re-encoded as the sender's encoding, to be
// checked for the hint.
func (h *Handler) reencoded(r *http.Request, reason error, now time.Time) (providers.Signed, bool) {
	e, ok := errors.AsType[*providers.EncodingError](reason)
	if !ok || e.Text == "" || e.As == "" || r.ContentLength > hintMaxBody {
		return providers.Signed{}, false
	}
	r2 := r.Clone(r.Context())
	for _, vals := range r2.Header {
		for i, v := range vals {
			vals[i] = strings.ReplaceAll(v, e.Text, e.As)
		}
	}
	signed, err := h.provider.Parse(r2, now)
	if err != nil || h.checkScheme(signed) != nil {
		return providers.Signed{}, false
	}
	return signed, true
}

// encodingHint is the hint of a signature refused for its encoding that
// matched under key once re-encoded.
func encodingHint(reason error, key int) string {
	e, _ := errors.AsType[*providers.EncodingError](reason)
	if e == nil {
		return ""
	}
	return fmt.Sprintf("the signature is %s where this sender's are %s; read as %s it matches secret %d: the sender (or the hmac configuration's encoding) is wrong", e.Got, e.Want, e.Want, key+1)
}

// diagnose runs the cheap checks on a signature that did not verify over
// body, and returns the hint of the first that explains it ("" if none).
func (h *Handler) diagnose(signed providers.Signed, body []byte, now time.Time) string {
	if len(body) > hintMaxBody {
		return ""
	}
	k := h.keys
	for i := 0; i < k.size(); i++ {
		if !k.live(i, now) && k.matches(signed, i, nil, body) {
			return fmt.Sprintf("the signature matches secret %d, which expired at %s (not_after): the sender still signs with it", i+1, k.notAfter[i].UTC().Format(time.RFC3339))
		}
	}
	if trimmed, ok := trimNewline(body); ok {
		for i := 0; i < k.size(); i++ {
			if k.live(i, now) && k.matches(signed, i, nil, trimmed) {
				return fmt.Sprintf("the signature matches the body without its trailing newline (secret %d): something added a newline after the sender signed (an echo, a file saved with one)", i+1)
			}
		}
	}
	if signed.Scheme == providers.SchemeHMAC && k.keys != nil {
		for i := 0; i < k.size(); i++ {
			if !k.live(i, now) {
				continue
			}
			for _, alt := range altKeys(k.secrets[i], k.keys[i]) {
				if k.matches(signed, i, alt.key, body) {
					return fmt.Sprintf("the signature matches secret %d %s", i+1, alt.how)
				}
			}
		}
	}
	return ""
}

// trimNewline returns body without its trailing "\n" or "\r\n".
func trimNewline(body []byte) ([]byte, bool) {
	switch {
	case bytes.HasSuffix(body, []byte("\r\n")):
		return body[:len(body)-2], true
	case bytes.HasSuffix(body, []byte("\n")):
		return body[:len(body)-1], true
	}
	return nil, false
}

type altKey struct {
	key []byte
	how string
}

// altKeys are the other ways a secret is commonly turned into an HMAC
// key: its text as written, or the base64 after an optional "whsec_"
// prefix; those equal to the key in use are left out.
func altKeys(secret string, used []byte) []altKey {
	var out []altKey
	if text := []byte(secret); !bytes.Equal(text, used) {
		out = append(out, altKey{text, "taken as its text, as written, rather than decoded: the sender uses the secret as is (as Stripe does with whsec_ secrets); check the provider"})
	}
	b64 := strings.TrimPrefix(secret, "whsec_")
	if dec, err := base64.StdEncoding.DecodeString(b64); err == nil && len(dec) > 0 && !bytes.Equal(dec, used) {
		out = append(out, altKey{dec, "base64-decoded (after its whsec_ prefix) rather than taken as its text: the sender decodes its secret (as Standard Webhooks does); check the provider"})
	}
	return out
}

// matches reports whether any of signed's signatures verifies
// Prefix‖body‖Suffix under key i, or, for HMAC, under key when it is not
// nil (another decoding of key i's secret).
func (k *keyring) matches(signed providers.Signed, i int, key, body []byte) bool {
	switch signed.Scheme {
	case providers.SchemeHMAC:
		if key == nil {
			key = k.keys[i]
		}
		m := hmac.New(signed.Hash.New, key)
		m.Write(signed.Prefix)
		m.Write(body)
		m.Write(signed.Suffix)
		sum := m.Sum(nil)
		for _, sig := range signed.Signatures {
			if hmac.Equal(sum, sig) {
				return true
			}
		}
	case providers.SchemeECDSAP256SHA256:
		d := sha256.New()
		d.Write(signed.Prefix)
		d.Write(body)
		d.Write(signed.Suffix)
		_, err := k.verifyECDSA(d.Sum(nil), signed.Signatures, func(j int) bool { return j == i })
		return err == nil
	case providers.SchemeEd25519:
		msg := make([]byte, 0, len(signed.Prefix)+len(body)+len(signed.Suffix))
		msg = append(append(append(msg, signed.Prefix...), body...), signed.Suffix...)
		_, err := k.verifyEd25519(msg, signed.Signatures, func(j int) bool { return j == i })
		return err == nil
	}
	return false
}
