package providers

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// EncodingError is a malformed signature that decodes, to the size the
// sender's signatures have, in the other common encoding: base64 where
// the sender sends hex, or hex where it sends base64. The request is
// refused as malformed all the same (Err, which wraps
// ErrMalformedSignature, is the reason); the handler also checks the
// signature read the other way, and when it matches says so in its log
// line: a sender (or an hmac configuration) with the wrong encoding, not
// a forgery.
//
// DecodeHex and DecodeBase64 return it; a sender that skips undecodable
// signatures (as Stripe's and Standard Webhooks' libraries do) returns it
// wrapped around its "no signature" error with EncodingError.With.
type EncodingError struct {
	Err  error  // the reason, as without the hint
	Text string // the signature as received
	As   string // the same bytes in the expected encoding
	Got  string // "hex" or "base64"
	Want string // the sender's encoding
}

func (e *EncodingError) Error() string { return e.Err.Error() }
func (e *EncodingError) Unwrap() error { return e.Err }

// With returns the same encoding error with err as its reason, or err
// itself when e is nil.
func (e *EncodingError) With(err error) error {
	if e == nil {
		return err
	}
	c := *e
	c.Err = err
	return &c
}

// firstEncodingError keeps the first EncodingError of a signature that
// was skipped: *dst when it is already set, else err's, if any.
func firstEncodingError(dst **EncodingError, err error) {
	if *dst != nil {
		return
	}
	if e, ok := errors.AsType[*EncodingError](err); ok {
		*dst = e
	}
}

// misencodedHex is the EncodingError of s, which is not size bytes of hex,
// when it is size bytes of base64 (standard or URL-safe, padded or not);
// otherwise err.
func misencodedHex(s string, size int, err error) error {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if len(s) != enc.EncodedLen(size) {
			continue
		}
		if b, derr := enc.Strict().DecodeString(s); derr == nil && len(b) == size {
			return &EncodingError{Err: err, Text: s, As: hex.EncodeToString(b), Got: "base64", Want: "hex"}
		}
	}
	return err
}

// misencodedBase64 is the EncodingError of s, which is not size bytes of
// base64, when it is size bytes of hex (either case); otherwise err.
func misencodedBase64(s string, size int, err error) error {
	if len(s) != 2*size {
		return err
	}
	b, derr := hex.DecodeString(s)
	if derr != nil {
		return err
	}
	return &EncodingError{Err: err, Text: s, As: base64.StdEncoding.EncodeToString(b), Got: "hex", Want: "base64"}
}
