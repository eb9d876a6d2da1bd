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
	"sync"
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

// The hints of a handler are rate-limited (a token bucket of hintBurst
// diagnoses, refilled at hintRate per second): a forger cannot make every
// request cost several hash passes. An operator needs one hint, not one
// per request.
const (
	hintBurst = 10
	hintRate  = 1.0
)

type hintLimiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take reports whether a diagnosis may run at now.
func (l *hintLimiter) take(now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.last.IsZero():
		l.tokens, l.last = hintBurst, now
	case now.After(l.last):
		l.tokens = min(hintBurst, l.tokens+now.Sub(l.last).Seconds()*hintRate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// reencoded returns, when Parse refused the signature only for its
// encoding (a providers.EncodingError), what Parse makes of the same
// headers with the signature re-encoded as the sender's encoding, to be
// checked for the hint. Only for a declared body of at most hintMaxBody
// bytes, within the hints' rate.
func (h *Handler) reencoded(r *http.Request, reason error, now time.Time) (providers.Signed, bool) {
	e, ok := errors.AsType[*providers.EncodingError](reason)
	if !ok || e.Text == "" || e.As == "" || r.ContentLength < 0 || r.ContentLength > hintMaxBody || !h.hintLimit.take(now) {
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
// the body, and returns the hint of the first that explains it ("" if
// none). It runs within the hints' rate, for bodies of at most
// hintMaxBody bytes, and allocates no copy of the body.
func (h *Handler) diagnose(signed providers.Signed, body *verifiedBody, now time.Time) string {
	raw := body.bytes()
	if len(raw) > hintMaxBody || !h.hintLimit.take(now) {
		return ""
	}
	k := h.keys
	expired := func(i int) bool { return !k.live(i, now) }
	live := func(i int) bool { return k.live(i, now) }
	if i := k.matching(signed, body, 0, expired); i >= 0 {
		return fmt.Sprintf("the signature matches secret %d, which expired at %s (not_after): the sender still signs with it", i+1, k.notAfter[i].UTC().Format(time.RFC3339))
	}
	if nl := newlineLen(raw); nl > 0 {
		if i := k.matching(signed, body, nl, live); i >= 0 {
			return fmt.Sprintf("the signature matches the body without its trailing newline (secret %d): something added a newline after the sender signed (an echo, a file saved with one)", i+1)
		}
	}
	if signed.Scheme == providers.SchemeHMAC && k.keys != nil {
		for i := 0; i < k.size(); i++ {
			if !k.live(i, now) {
				continue
			}
			for _, alt := range altKeys(k.secrets[i], k.keys[i]) {
				if hmacMatches(signed, alt.key, raw) {
					return fmt.Sprintf("the signature matches secret %d %s", i+1, alt.how)
				}
			}
		}
	}
	return ""
}

// newlineLen is the length of body's trailing "\r\n" or "\n" (0: none).
func newlineLen(body []byte) int {
	switch {
	case bytes.HasSuffix(body, []byte("\r\n")):
		return 2
	case bytes.HasSuffix(body, []byte("\n")):
		return 1
	}
	return 0
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

// matching returns the first key that use selects under which one of
// signed's signatures verifies Prefix‖body‖Suffix, the body less its last
// trim bytes; -1 if none. For Ed25519 the message is the one readVerified
// laid out in the body's buffer (with trim, the Suffix is moved over the
// trimmed bytes and put back); for ECDSA its digest is computed once.
func (k *keyring) matching(signed providers.Signed, body *verifiedBody, trim int, use func(int) bool) int {
	b := body.bytes()
	b = b[:len(b)-trim]
	switch signed.Scheme {
	case providers.SchemeHMAC:
		for i := 0; i < k.size(); i++ {
			if use(i) && hmacMatches(signed, k.keys[i], b) {
				return i
			}
		}
	case providers.SchemeECDSAP256SHA256:
		d := sha256.New()
		d.Write(signed.Prefix)
		d.Write(b)
		d.Write(signed.Suffix)
		i, _ := k.verifyECDSA(d.Sum(nil), signed.Signatures, use)
		return i
	case providers.SchemeEd25519:
		head, tail := len(signed.Prefix), len(signed.Suffix)
		end := head + len(b)
		body.mu.Lock()
		defer body.mu.Unlock()
		whole := body.whole
		if whole == nil || end+trim+tail > cap(whole) {
			return -1
		}
		var saved []byte
		if trim > 0 && tail > 0 {
			saved = append(saved, whole[end:end+tail]...)
			copy(whole[end:], signed.Suffix)
			defer copy(whole[end:], saved)
		}
		i, _ := k.verifyEd25519(whole[:end+tail:end+tail], signed.Signatures, use)
		return i
	}
	return -1
}

// hmacMatches reports whether one of signed's signatures is the HMAC of
// Prefix‖body‖Suffix under key.
func hmacMatches(signed providers.Signed, key, body []byte) bool {
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
	return false
}
