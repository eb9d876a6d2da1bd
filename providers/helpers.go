package providers

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// Helpers that keep a sender which MACs the body alone one short file:
// Parse is ParseHexSignature or ParseBase64Signature, and Describe is
// TopLevelFields (fields in the JSON body) or HeaderFields (fields in
// headers).

// DecodeBase64 decodes s, standard base64 with its padding (RFC 4648 §4,
// what Shopify, Standard Webhooks and most base64 senders send), into
// exactly size bytes; no line breaks. Errors wrap ErrMalformedSignature;
// when s is hex of size bytes instead, the error is an *EncodingError.
func DecodeBase64(s string, size int) ([]byte, error) {
	if len(s) != base64.StdEncoding.EncodedLen(size) {
		return nil, misencodedBase64(s, size, fmt.Errorf("%w: %d base64 characters, want %d", ErrMalformedSignature, len(s), base64.StdEncoding.EncodedLen(size)))
	}
	// room for what s may decode to, which is more than size when s has
	// less padding than size needs
	if strings.ContainsAny(s, "\r\n") { // which the decoder would skip
		return nil, fmt.Errorf("%w: not base64 of %d bytes", ErrMalformedSignature, size)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Strict().Decode(b, []byte(s))
	if err != nil || n != size {
		return nil, fmt.Errorf("%w: not base64 of %d bytes", ErrMalformedSignature, size)
	}
	return b[:n], nil
}

// ParseBase64Signature reads the single header name holding the standard
// base64 of a MAC of hash h over the body alone, such as Shopify's
// X-Shopify-Hmac-Sha256.
func ParseBase64Signature(hdr http.Header, name string, h crypto.Hash) (Signed, error) {
	v, err := SingleHeader(hdr, name)
	if err != nil {
		return Signed{}, err
	}
	mac, err := DecodeBase64(v, h.Size())
	if err != nil {
		return Signed{}, err
	}
	return Signed{Hash: h, Signatures: [][]byte{mac}}, nil
}

// HeaderFields sets vals[i] to the first value of the header names[i],
// trimmed of surrounding white space, or to "" when the header is absent
// or names[i] is "". It is the whole Describe of a sender that names its
// event in headers, such as GitHub (X-GitHub-Delivery, X-GitHub-Event).
func HeaderFields(h http.Header, names, vals []string) {
	for i, name := range names {
		vals[i] = ""
		if name != "" {
			vals[i] = textproto.TrimString(h.Get(name))
		}
	}
}
