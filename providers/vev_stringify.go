package providers

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Vev's stringify_fallback.
//
// Vev's documented Node receiver (vevepeter/webhook-reciever) verifies
// HMAC-SHA512(JSON.stringify(JSON.parse(body))) after body-parser's json().
// Genuine Vev bodies are compact JSON.stringify output, equal to that
// form, so the raw check passes; a body re-encoded on the way (pretty
// printed, "\u003c" escapes, "1.0", other key orders) is accepted by Vev's
// receiver and, with this option, here as well. The research behind every
// rule: shared/research/vev-stringify.md.

// CaddyfileOptionNames names Vev's block option, for the error on an
// unknown line of the block.
func (*Vev) CaddyfileOptionNames() []string { return []string{"stringify_fallback"} }

// UnmarshalCaddyfileOption reads Vev's one block option:
//
//	stringify_fallback
func (v *Vev) UnmarshalCaddyfileOption(d *caddyfile.Dispenser) (bool, error) {
	if d.Val() != "stringify_fallback" {
		return false, nil
	}
	if v.StringifyFallback {
		return true, d.Err("stringify_fallback already specified")
	}
	if d.NextArg() {
		return true, d.Err("stringify_fallback takes no argument: write the word alone to turn it on")
	}
	if d.NextBlock(d.Nesting()) {
		return true, d.Err("stringify_fallback takes no block")
	}
	v.StringifyFallback = true
	return true, nil
}

// Reasons a request has no stringify form (the request is then refused as
// a signature mismatch). Vev's receiver hashes "{}", or fails, or decodes
// otherwise in each of these cases; the gateway fails closed.
var (
	errStringifyContentType = errors.New("Content-Type is not application/json")
	errStringifyCharset     = errors.New("charset is not utf-8")
	errStringifyEncoding    = errors.New("Content-Encoding is set")
)

// SignedText returns the body's JSON.stringify form when stringify_fallback
// is on and the request could have gone through Vev's receiver: one
// Content-Type of media type application/json with no charset or utf-8 (in
// any case), no Content-Encoding but identity, and a body that is a JSON
// object or array (after one optional BOM). The form is the text Node
// produces (Stringify), fed to opt.MAC as it is produced (and, with
// opt.Match, built only once that MAC matched).
func (v *Vev) SignedText(h http.Header, body []byte, opt TextOptions) ([]byte, string, error) {
	if !v.StringifyFallback {
		return nil, "", ErrNoAlternate
	}
	if err := stringifyGate(h); err != nil {
		return nil, "", fmt.Errorf("stringify form: %w", err)
	}
	text, same, err := Stringify(body, opt)
	if errors.Is(err, ErrStringifyNoMatch) {
		return nil, SignedFormStringify, err
	}
	if err != nil {
		return nil, "", fmt.Errorf("stringify form: %w", err)
	}
	if same {
		return nil, "", fmt.Errorf("stringify form: %w", ErrSameText)
	}
	return text, SignedFormStringify, nil
}

// stringifyGate checks the headers body-parser's json() looks at: the media
// type (parameters allowed, +json types not), the charset (body-parser
// decodes any utf-*; only utf-8 is taken here), and the content coding
// (body-parser inflates gzip and deflate; not done here).
func stringifyGate(h http.Header) error {
	cts := h.Values("Content-Type")
	if len(cts) != 1 {
		return errStringifyContentType
	}
	mt, params, err := mime.ParseMediaType(cts[0])
	if err != nil || mt != "application/json" {
		return errStringifyContentType
	}
	for k, v := range params {
		if k == "charset" && !EqualFoldASCII(v, "utf-8") {
			return errStringifyCharset
		}
	}
	switch ces := h.Values("Content-Encoding"); len(ces) {
	case 0:
	case 1:
		if ce := strings.TrimSpace(ces[0]); ce != "" && !EqualFoldASCII(ce, "identity") {
			return errStringifyEncoding
		}
	default:
		return errStringifyEncoding
	}
	return nil
}
