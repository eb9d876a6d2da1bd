// Package providers holds the webhook senders that the webhook_verify handler
// can verify, one Caddy guest module per sender in the namespace
// http.webhook_verify.providers, and the interface they implement.
//
// A sender is one file in this package: a type that implements Provider and
// registers itself with caddy.RegisterModule in its init function. The
// handler knows no sender by name; it loads the one configured with the
// inline key "name".
package providers

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Namespace is the Caddy module namespace of the senders.
const Namespace = "http.webhook_verify.providers"

// Provider is one webhook sender's signature scheme.
//
// Verification happens in two steps so that the body is read only once:
// Parse reads the signature headers before the body, and says how the
// signature is checked (Signed.Scheme) and over which bytes; the handler
// then feeds the body to the HMACs (one per configured secret), or to one
// SHA-256 for ECDSA, while it buffers it, and accepts the request when a
// candidate Parse returned matches under any configured key. Ed25519 is
// checked over the buffered body, which is never copied for it.
type Provider interface {
	caddy.Module

	// Parse reads the request's signature header(s) and returns what must be
	// computed over the body. It is called before the body is read, so it
	// must not touch r.Body. now is the handler's clock, for senders whose
	// signed timestamp must fall within a tolerance window.
	//
	// Errors wrap ErrMissingSignature or ErrMalformedSignature (a stale
	// timestamp is malformed); they are answered with 401.
	Parse(r *http.Request, now time.Time) (Signed, error)

	// Fields names the event fields this sender exposes as
	// {http.webhook.<name>} placeholders. It must include "id" (the event
	// id, used for deduplication) and "event" (the event type). The slice
	// is read once, at provision time.
	Fields() []string

	// Describe fills vals[i] with the value of Fields()[i] for a verified
	// request: the header and the body are exactly those that were verified.
	// A missing field is left empty; that is never an error. It is called
	// lazily, at most once per request, and only if a placeholder is read.
	Describe(h http.Header, body []byte, vals []string)
}

// Scheme says how a Signed's signatures are checked. The zero value is HMAC,
// so existing senders (Vivreal, Vev) are untouched.
type Scheme uint8

const (
	SchemeHMAC            Scheme = iota // HMAC(Hash, key, Prefix‖body‖Suffix) equals a candidate
	SchemeEd25519                       // Ed25519 over Prefix‖body‖Suffix; 64-byte signatures
	SchemeECDSAP256SHA256               // ECDSA P-256 over SHA-256(Prefix‖body‖Suffix); ASN.1 DER signatures
)

// String names the scheme, for errors and logs.
func (s Scheme) String() string {
	switch s {
	case SchemeHMAC:
		return "HMAC"
	case SchemeEd25519:
		return "Ed25519"
	case SchemeECDSAP256SHA256:
		return "ECDSA P-256 SHA-256"
	}
	return fmt.Sprintf("scheme %d", uint8(s))
}

// Signed is what Parse returns: how the sender computed its signature and
// the signature(s) the request carries.
type Signed struct {
	// Scheme is how the signatures are checked; the zero value is HMAC.
	// A public-key scheme needs a sender that implements PublicKeyDecoder.
	Scheme Scheme

	// Hash is the HMAC's hash function, such as crypto.SHA256. HMAC only.
	Hash crypto.Hash

	// Prefix is signed before the body, for senders that sign more than the
	// body (Stripe's "<t>.", Standard Webhooks' "<id>.<timestamp>."). Nil
	// for senders that sign the body alone.
	Prefix []byte

	// Suffix is signed after the body (Box's timestamp, Trello's URL). Nil
	// for most senders.
	Suffix []byte

	// Signatures are the decoded candidates: MACs for HMAC, 64-byte
	// signatures for Ed25519, ASN.1 DER for ECDSA. The request is genuine
	// when any of them matches Prefix‖body‖Suffix under any configured key.
	Signatures [][]byte
}

// KeyDecoder is implemented by senders whose secrets are not used as raw
// bytes (Standard Webhooks' "whsec_<base64>", for example). Key is called
// once per secret at provision time; by default a secret's bytes are the key.
type KeyDecoder interface {
	Key(secret string) ([]byte, error)
}

// PublicKeyDecoder is implemented by senders (or configurations, for hmac)
// whose configured keys are public keys. When PublicKeys() is true (asked once,
// after the provider is provisioned), the handler decodes each configured key
// with PublicKey at provision time (ed25519.PublicKey or *ecdsa.PublicKey on
// P-256) instead of using its bytes as an HMAC key (or KeyDecoder.Key).
//
// PublicKey's error is shown to the operator at start-up: it says which
// form of key is expected, and never repeats the value.
type PublicKeyDecoder interface {
	PublicKeys() bool
	PublicKey(key string) (crypto.PublicKey, error)
}

// CaddyfileOption is implemented by senders that take options of their own
// inside the webhook_verify block (a timestamp tolerance, say). The handler
// calls it with the dispenser on a subdirective it does not know itself; the
// sender returns handled=false when the name is not one of its own.
type CaddyfileOption interface {
	UnmarshalCaddyfileOption(d *caddyfile.Dispenser) (handled bool, err error)
}

// Sentinel errors of Parse. The handler answers both with 401.
var (
	ErrMissingSignature   = errors.New("missing signature")
	ErrMalformedSignature = errors.New("malformed signature")
)

// SingleHeader returns the one value of the header name, trimmed of
// surrounding white space. It is ErrMissingSignature when the header is
// absent or empty and ErrMalformedSignature when it is repeated.
func SingleHeader(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	switch len(vals) {
	case 0:
		return "", fmt.Errorf("%w: no %s header", ErrMissingSignature, name)
	case 1:
	default:
		return "", fmt.Errorf("%w: %d %s headers", ErrMalformedSignature, len(vals), name)
	}
	v := textproto.TrimString(vals[0])
	if v == "" {
		return "", fmt.Errorf("%w: empty %s header", ErrMissingSignature, name)
	}
	return v, nil
}

// ParseHexSignature reads the single header name holding "<algo>=<hex>"
// (or bare "<hex>" when the prefix is optional) and returns the decoded
// MAC of hash h. The algorithm name is matched in ASCII case only, the hex
// in either case. It is the whole Parse of a sender that MACs the body
// alone, such as Vivreal, Vev or GitHub.
func ParseHexSignature(hdr http.Header, name, algo string, h crypto.Hash, prefixRequired bool) (Signed, error) {
	v, err := SingleHeader(hdr, name)
	if err != nil {
		return Signed{}, err
	}
	if a, hexSig, ok := strings.Cut(v, "="); ok {
		if !EqualFoldASCII(a, algo) {
			// bare base64 with its padding is no algorithm: say so
			return Signed{}, misencodedHex(v, h.Size(), fmt.Errorf("%w: algorithm is not %s", ErrMalformedSignature, algo))
		}
		v = hexSig
	} else if prefixRequired {
		return Signed{}, fmt.Errorf("%w: no algorithm", ErrMalformedSignature)
	}
	mac, err := DecodeHex(v, h.Size())
	if err != nil {
		return Signed{}, err
	}
	return Signed{Hash: h, Signatures: [][]byte{mac}}, nil
}

// EqualFoldASCII reports whether a and b are equal ignoring the case of
// ASCII letters only (strings.EqualFold would also fold Unicode, taking
// "ſha256" for "sha256").
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// DecodeHex decodes s, in either case, into exactly size bytes.
// When s is base64 of size bytes instead, the error is an *EncodingError.
func DecodeHex(s string, size int) ([]byte, error) {
	if len(s) != 2*size {
		return nil, misencodedHex(s, size, fmt.Errorf("%w: %d hex digits, want %d", ErrMalformedSignature, len(s), 2*size))
	}
	b := make([]byte, size)
	if _, err := hex.Decode(b, []byte(s)); err != nil {
		return nil, misencodedHex(s, size, fmt.Errorf("%w: not hex", ErrMalformedSignature))
	}
	return b, nil
}
