package providers

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// The request side of the hmac provider: Parse, Describe and the keys.

// Parse reads the signature header(s), the timestamp and the template's
// headers, and returns what to verify over the body. The order of the
// checks: the signatures (missing, malformed), the timestamp (missing,
// malformed, out of tolerance), then the template's headers (missing).
func (p *HMAC) Parse(r *http.Request, now time.Time) (Signed, error) {
	c := p.c
	if c == nil {
		return Signed{}, errors.New("hmac provider not provisioned")
	}
	sigs, ts, err := c.candidates(r.Header)
	if err != nil {
		return Signed{}, err
	}
	if c.tsFrom == "header" {
		if ts, err = c.single(r.Header, c.tsHeader); err != nil {
			return Signed{}, err
		}
	}
	if c.tsFrom != "" {
		t, err := c.tsParse(ts)
		if err != nil {
			return Signed{}, err
		}
		if err := p.Tolerance.Check(t, now); err != nil {
			return Signed{}, err
		}
		// {ts} is the number as the senders' libraries sign it (parsed,
		// then printed: "01614265330" signs as 1614265330); an RFC 3339
		// time is signed as sent
		switch c.tsFormat {
		case "unix":
			ts = strconv.FormatInt(t.Unix(), 10)
		case "unix_ms":
			ts = strconv.FormatInt(t.UnixMilli(), 10)
		}
	}
	prefix, err := c.render(c.prefix, r.Header, ts)
	if err != nil {
		return Signed{}, err
	}
	suffix, err := c.render(c.suffix, r.Header, ts)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Scheme: c.alg.scheme, Hash: c.alg.hash, Prefix: prefix, Suffix: suffix, Signatures: sigs}, nil
}

// header returns the name whose values the request carries: name itself,
// or, when it is absent, the first of its fallbacks present.
func (c *hmacCompiled) header(h http.Header, name string) string {
	if len(h[name]) > 0 {
		return name
	}
	for _, alt := range c.fallbacks[name] {
		if len(h[alt]) > 0 {
			return alt
		}
	}
	return name
}

// single is SingleHeader through the fallbacks.
func (c *hmacCompiled) single(h http.Header, name string) (string, error) {
	return SingleHeader(h, c.header(h, name))
}

// candidates reads every configured signature header present and returns
// the decoded signatures and, for a params header with ts=, the timestamp.
func (c *hmacCompiled) candidates(h http.Header) ([][]byte, string, error) {
	var sigs [][]byte
	var ts string
	var enc *EncodingError // of the first signature skipped, for the handler's hint
	present := 0
	for i := range c.sigs {
		s := &c.sigs[i]
		name := c.header(h, s.header)
		v, err := SingleHeader(h, name)
		if errors.Is(err, ErrMissingSignature) {
			continue // absent or empty: another signature line may match
		}
		if err != nil {
			return nil, "", err
		}
		present++
		switch {
		case s.params != "":
			if sigs, ts, err = c.fromParams(s, name, v, sigs, &enc); err != nil {
				return nil, "", err
			}
		case s.list != "":
			if sigs, err = c.fromList(s, v, sigs, &enc); err != nil {
				return nil, "", err
			}
		default:
			enc, ok := matchPattern(v, s.prefix, s.suffix)
			if !ok {
				return nil, "", fmt.Errorf("%w: %s is not in the form %s{sig}%s", ErrMalformedSignature, name, s.prefix, s.suffix)
			}
			sig, err := c.decode(enc, s.b64)
			if err != nil {
				return nil, "", fmt.Errorf("%w in %s", err, name)
			}
			sigs = append(sigs, sig)
		}
	}
	if present == 0 {
		if len(c.sigs) == 1 {
			return nil, "", fmt.Errorf("%w: no %s header", ErrMissingSignature, c.sigs[0].header)
		}
		return nil, "", fmt.Errorf("%w: none of the signature headers", ErrMissingSignature)
	}
	if len(sigs) == 0 {
		return nil, "", enc.With(fmt.Errorf("%w: no signature in the configured form", ErrMalformedSignature))
	}
	return sigs, ts, nil
}

// fromList reads the items of a list header that match the item pattern.
// Items in another form (another version) are ignored, and so are items
// in the form whose signature cannot be decoded, as the senders' own
// libraries do.
func (c *hmacCompiled) fromList(s *compiledSig, v string, sigs [][]byte, encErr **EncodingError) ([][]byte, error) {
	for item := range strings.SplitSeq(v, s.list) {
		item = textproto.TrimString(item)
		enc, ok := matchPattern(item, s.prefix, s.suffix)
		if !ok {
			continue
		}
		sig, err := c.decode(enc, s.b64)
		if err != nil {
			firstEncodingError(encErr, err)
			continue
		}
		if len(sigs) == maxCandidates {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// fromParams reads a key=value header: the signatures under the sig key
// (undecodable ones ignored, as Stripe's libraries do) and the timestamp
// under the ts key, which must be there exactly once when configured.
// Pairs without "=" and other keys are ignored.
func (c *hmacCompiled) fromParams(s *compiledSig, name, v string, sigs [][]byte, encErr **EncodingError) ([][]byte, string, error) {
	var ts string
	nts := 0
	for pair := range strings.SplitSeq(v, s.params) {
		k, val, ok := strings.Cut(textproto.TrimString(pair), "=")
		if !ok {
			continue
		}
		switch {
		case s.ts != "" && k == s.ts:
			ts = val
			nts++
		case k == s.sig:
			sig, err := c.decode(val, s.b64)
			if err != nil {
				firstEncodingError(encErr, err)
				continue
			}
			if len(sigs) == maxCandidates {
				return nil, "", fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
			}
			sigs = append(sigs, sig)
		}
	}
	if s.ts != "" {
		switch nts {
		case 0:
			return nil, "", fmt.Errorf("%w: no %s= in %s", ErrMalformedSignature, s.ts, name)
		case 1:
		default:
			return nil, "", fmt.Errorf("%w: %s= twice in %s", ErrMalformedSignature, s.ts, name)
		}
	}
	return sigs, ts, nil
}

// matchPattern returns the part of v between prefix and suffix, which are
// matched ignoring ASCII case (as ParseHexSignature matches "sha256=").
func matchPattern(v, prefix, suffix string) (string, bool) {
	if len(v) < len(prefix)+len(suffix) ||
		!EqualFoldASCII(v[:len(prefix)], prefix) ||
		!EqualFoldASCII(v[len(v)-len(suffix):], suffix) {
		return "", false
	}
	return v[len(prefix) : len(v)-len(suffix)], true
}

// decode decodes one encoded signature: hex (either case) or standard
// base64 with its padding, strict, of the algorithm's size (any size up
// to 72 bytes of ASN.1 DER for ECDSA).
func (c *hmacCompiled) decode(s string, b64 bool) ([]byte, error) {
	if c.alg.size != 0 {
		if b64 {
			return DecodeBase64(s, c.alg.size)
		}
		return DecodeHex(s, c.alg.size)
	}
	// DER: variable length
	if b64 {
		return DecodeDERSignatureBase64(s)
	}
	if len(s)%2 != 0 || len(s) > 2*maxDERSignature {
		return nil, fmt.Errorf("%w: %d hex digits, not a signature", ErrMalformedSignature, len(s))
	}
	b := make([]byte, len(s)/2)
	if _, err := hex.Decode(b, []byte(s)); err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrMalformedSignature)
	}
	return b, checkDER(b)
}

// render builds the signed bytes of template parts: literals, header
// values (a missing header is a missing signature) and the timestamp.
func (c *hmacCompiled) render(parts []tmplPart, h http.Header, ts string) ([]byte, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	var out []byte
	for _, pt := range parts {
		switch pt.kind {
		case partLiteral:
			out = append(out, pt.text...)
		case partTS:
			out = append(out, ts...)
		case partHeader:
			v, err := c.single(h, pt.text)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
	}
	return out, nil
}

// Fields returns id and event.
func (*HMAC) Fields() []string { return hmacFields }

// Describe reads id and event from their headers (through the fallbacks)
// or from the top level of a JSON body.
func (p *HMAC) Describe(h http.Header, body []byte, vals []string) {
	c := p.c
	clear(vals)
	if c == nil {
		return
	}
	var fromBody [2]string
	if len(c.bodyKeys) > 0 {
		TopLevelFields(body, c.bodyKeys, fromBody[:len(c.bodyKeys)])
	}
	bi := 0
	for i, f := range [2]struct {
		hdr, body string
	}{{c.idHdr, c.id.Body}, {c.eventHdr, c.event.Body}} {
		switch {
		case f.hdr != "":
			vals[i] = textproto.TrimString(h.Get(c.header(h, f.hdr)))
		case f.body != "":
			vals[i] = fromBody[bi]
			bi++
		}
	}
}

// Key decodes an HMAC secret by key_encoding. Errors never repeat the
// secret.
func (p *HMAC) Key(secret string) ([]byte, error) {
	enc := "raw"
	if p.c != nil {
		enc = p.c.keyEnc
	}
	var (
		k   []byte
		err error
	)
	switch enc {
	case "hex":
		if k, err = hex.DecodeString(secret); err != nil {
			return nil, errors.New("key_encoding is hex, and the secret is not hex digits: paste it as the sender shows it, or set the key_encoding it is in")
		}
	case "base64":
		if k, err = decodeBase64(secret); err != nil {
			return nil, errors.New("key_encoding is base64, and the secret is not standard base64: paste it as the sender shows it, or set the key_encoding it is in")
		}
	case "whsec":
		if k, err = decodeBase64(strings.TrimPrefix(secret, "whsec_")); err != nil {
			return nil, errors.New("key_encoding is whsec, and the secret is not whsec_ followed by base64: paste the signing secret as the sender shows it")
		}
	default:
		k = []byte(secret)
	}
	if len(k) == 0 {
		return nil, errors.New("the secret decodes to an empty key: paste the whole secret")
	}
	return k, nil
}

// PublicKeys reports whether the configured keys are public keys (the
// algorithm is ed25519 or ecdsa-p256).
func (p *HMAC) PublicKeys() bool {
	return p.c != nil && p.c.alg.scheme != SchemeHMAC
}

// PublicKey reads a configured public key: for ed25519 64 hex digits, the
// base64 of 32 bytes, or PEM; for ecdsa-p256 the base64 of its DER
// SubjectPublicKeyInfo, or PEM.
func (p *HMAC) PublicKey(key string) (crypto.PublicKey, error) {
	if p.c == nil {
		return nil, errors.New("hmac provider not provisioned")
	}
	switch p.c.alg.scheme {
	case SchemeEd25519:
		return ParseEd25519PublicKey(key)
	case SchemeECDSAP256SHA256:
		return ParseECDSAP256PublicKey(key)
	}
	return nil, fmt.Errorf("algorithm %s takes secrets, not public keys", p.c.alg.name)
}
