package providers

import (
	"crypto"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(HMAC{})
}

// HMAC verifies a sender that no preset covers, from a description of its
// scheme: where the signature is and how it is written, which algorithm
// and key form, which bytes are signed, an optional signed timestamp, and
// where the event's id and type are. Every preset can be written as an
// HMAC configuration; Box, PagerDuty, Paddle, Twitch, Zoom and many more
// can only be written this way.
//
// In the Caddyfile each field is a line of the webhook_verify block:
//
//	webhook_verify hmac {env.HOOK_SECRET} {
//		algorithm    sha256             # sha1 | sha256 | sha512 | ed25519 | ecdsa-p256
//		key_encoding raw                # raw | hex | base64 | whsec (HMAC secrets)
//		signature    <header> [<format>] [hex|base64]   # repeatable: any one matches
//		signed       "<template>"       # literals, {body} once, {header.Name}, {ts}
//		timestamp    header <Name> | params  unix | unix_ms | rfc3339  [<tolerance>]
//		tolerance    <duration>         # default 5m; 0 turns the check off
//		id           header <Name> | body <field>
//		event        header <Name> | body <field>
//		header_fallback <header> <other name>...   # repeatable
//	}
//
// where <format> is a pattern around the signature ("sha256={sig}",
// default "{sig}"), list <sep> <item pattern> (list " " "v1,{sig}"), or
// params <sep> sig=<key> [ts=<key>] (params "," sig=v1 ts=t).
//
// A request is refused with 401 when no signature header is present, a
// template or timestamp header is missing (missing signature), a header
// is repeated or not in the configured form, or the timestamp is out of
// tolerance (malformed), or no signature matches.
type HMAC struct {
	// The signing algorithm: "sha1", "sha256", "sha512" (HMAC with that
	// hash), "ed25519" or "ecdsa-p256" (public-key signatures, ECDSA on
	// P-256 over SHA-256 with ASN.1 DER signatures). md5 is refused; sha1
	// works, with a warning at start-up. Default: sha256.
	Algorithm string `json:"algorithm,omitempty"`

	// How the configured secrets are written, for the HMAC algorithms:
	// "raw" (the secret's bytes are the key), "hex", "base64" (standard
	// alphabet, padded or not) or "whsec" (Standard Webhooks: an optional
	// "whsec_" then base64). Public keys (ed25519, ecdsa-p256) take no
	// key_encoding: they are read as the sender shows them (hex or base64)
	// or as PEM. Default: raw.
	KeyEncoding string `json:"key_encoding,omitempty"`

	// Where the signature is. Several entries may be given (a sender that
	// signs with two keys in two headers, say): every header present is
	// read, and the request is genuine when any signature in any of them
	// matches. It is a missing signature when none of the headers is
	// present. At least one is required.
	Signatures []HMACSignature `json:"signatures,omitempty"`

	// The bytes that are signed, as a template: literal text plus
	// {body} (the raw body, exactly once), {header.Name} (the value of a
	// request header as sent, which must be present: else the signature
	// counts as missing) and {ts} (the timestamp; needs timestamp: a unix
	// time is signed as its decimal number, as the senders' libraries
	// print it, an RFC 3339 time as sent). What comes before {body} is
	// signed before the body, the rest after it. Write \{ and \} for
	// literal braces. Default: "{body}".
	Signed string `json:"signed,omitempty"`

	// The signed timestamp, checked within tolerance of the gateway's
	// clock in both directions. Optional.
	Timestamp *HMACTimestamp `json:"timestamp,omitempty"`

	// Tolerance gives the JSON field "tolerance": how far the timestamp
	// may be from the gateway's clock. Default 5m; 0 turns the check off.
	// Only with timestamp.
	Tolerance

	// Where {http.webhook.id} comes from (a header, or a top-level field
	// of a JSON body). Optional; dedupe and queue need it.
	ID *HMACField `json:"id,omitempty"`

	// Where {http.webhook.event} comes from. Optional.
	Event *HMACField `json:"event,omitempty"`

	// Other names a header may come under: where the header named by a
	// key is absent, the first of its list present is read instead, for
	// every header the configuration reads (signatures, the template, the
	// timestamp, id and event). Svix, for one, sends the Standard
	// Webhooks headers as svix-id, svix-timestamp and svix-signature:
	// {"webhook-id": ["svix-id"], ...}.
	HeaderFallbacks map[string][]string `json:"header_fallbacks,omitempty"`

	c   *hmacCompiled
	pos map[string]hmacPos // Caddyfile lines, for CheckCaddyfile
}

// HMACSignature says where one signature header is and how its value is
// written.
type HMACSignature struct {
	// The header's name, such as X-Hub-Signature-256. Required.
	Header string `json:"header"`

	// The value around the signature, with {sig} where the encoded
	// signature is: "sha256={sig}", "v1,{sig}", "HMAC {sig}". Without
	// list it is the whole header value; with list, each item. Literal
	// text is matched ignoring ASCII case. Not with params. Default:
	// "{sig}".
	Pattern string `json:"pattern,omitempty"`

	// The header is a list whose items are separated by this string
	// (" " for Standard Webhooks, "," for PagerDuty); each item that
	// matches pattern is a candidate, the others (other versions) are
	// ignored.
	List string `json:"list,omitempty"`

	// The header is key=value pairs separated by this string ("," for
	// Stripe, ";" for Paddle). Needs sig.
	Params string `json:"params,omitempty"`

	// With params: the key of the signatures ("v1" for Stripe); it may
	// repeat.
	Sig string `json:"sig,omitempty"`

	// With params: the key of the timestamp ("t" for Stripe), the source
	// of {ts} when timestamp.from is "params".
	TS string `json:"ts,omitempty"`

	// How the signature is encoded: "hex" (either case) or "base64"
	// (the standard alphabet with its padding; for ecdsa-p256 ASN.1 DER
	// of any length). Default: hex.
	Encoding string `json:"encoding,omitempty"`
}

// HMACTimestamp says where the signed timestamp is and how it is written.
type HMACTimestamp struct {
	// "header" (the header named by header) or "params" (the ts key of
	// the params signature). Required.
	From string `json:"from"`

	// With from "header": the header's name.
	Header string `json:"header,omitempty"`

	// "unix" (seconds), "unix_ms" (milliseconds) or "rfc3339". Required.
	Format string `json:"format"`
}

// HMACField says where an event field is: in a header or a top-level
// member of a JSON body (a string, or a number's text). Exactly one is set.
type HMACField struct {
	// A request header's name.
	Header string `json:"header,omitempty"`
	// A top-level member of the JSON body.
	Body string `json:"body,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (HMAC) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  Namespace + ".hmac",
		New: func() caddy.Module { return new(HMAC) },
	}
}

// hmacFields are the placeholders every hmac configuration exposes.
var hmacFields = []string{"id", "event"}

// maxCandidates bounds the signatures read from one request: a list
// header can hold thousands of items, and each costs a comparison (a
// public-key verification, with ed25519) per key.
const maxCandidates = 16

// hmacCompiled is a provisioned configuration.
type hmacCompiled struct {
	alg      hmacAlg
	keyEnc   string
	sigs     []compiledSig
	prefix   []tmplPart // before {body}
	suffix   []tmplPart // after {body}
	tsFrom   string     // "", "header", "params"
	tsHeader string     // canonical
	tsFormat string
	tsParse  func(string) (time.Time, error)
	// canonical header name -> its fallbacks, canonical
	fallbacks map[string][]string
	id        HMACField
	event     HMACField
	idHdr     string // canonical header names, or ""
	eventHdr  string
	bodyKeys  []string // body fields to read in Describe, in order id, event
}

type hmacAlg struct {
	name   string
	scheme Scheme
	hash   crypto.Hash // HMAC only
	size   int         // fixed signature size; 0 for DER (ECDSA)
}

type compiledSig struct {
	header string // canonical
	prefix string // pattern before {sig}
	suffix string // pattern after {sig}
	list   string
	params string
	sig    string
	ts     string
	b64    bool
}

type partKind uint8

const (
	partLiteral partKind = iota
	partHeader
	partTS
)

type tmplPart struct {
	kind partKind
	text string // the literal, or the canonical header name
}

// Provision compiles and checks the configuration; every error says how
// to fix it.
func (p *HMAC) Provision(ctx caddy.Context) error {
	c, err := p.compile()
	if err != nil {
		return err
	}
	p.c = c
	if c.alg.name == "sha1" {
		ctx.Logger().Warn("hmac: sha1 is weak; use it only for a sender that offers nothing stronger",
			zap.String("algorithm", "sha1"))
	}
	return nil
}

// compile checks the configuration as a whole and prepares it for Parse.
func (p *HMAC) compile() (*hmacCompiled, error) {
	c := new(hmacCompiled)
	var err error
	if c.alg, err = hmacAlgorithm(p.Algorithm); err != nil {
		return nil, optionError("algorithm", err)
	}
	if c.keyEnc, err = hmacKeyEncoding(p.KeyEncoding, c.alg); err != nil {
		return nil, optionError("key_encoding", err)
	}
	if c.fallbacks, err = compileFallbacks(p.HeaderFallbacks); err != nil {
		return nil, optionError("header_fallback", err)
	}
	if len(p.Signatures) == 0 {
		return nil, optionError("", errors.New(`no signature: say where the signature is, e.g. "signatures": [{"header": "X-Hub-Signature-256", "pattern": "sha256={sig}"}]`))
	}
	tsKeys := 0
	for i, s := range p.Signatures {
		cs, err := compileSignature(s)
		if err != nil {
			if len(p.Signatures) > 1 {
				err = fmt.Errorf("signature %d: %w", i+1, err)
			}
			return nil, optionError("signature", err)
		}
		if cs.ts != "" {
			tsKeys++
		}
		c.sigs = append(c.sigs, cs)
	}
	if tsKeys > 1 {
		return nil, optionError("signature", errors.New("two signature headers carry a timestamp (ts=): a request has one signed timestamp, so keep ts= on one params signature only, with a single signature line"))
	}
	if tsKeys == 1 && len(c.sigs) > 1 {
		return nil, optionError("signature", errors.New("a params signature with ts= must be the only signature line: each header would carry its own timestamp"))
	}
	tmpl := p.Signed
	if tmpl == "" {
		tmpl = "{body}"
	}
	parts, bodyAt, err := parseTemplate(tmpl)
	if err != nil {
		return nil, optionError("signed", err)
	}
	c.prefix, c.suffix = parts[:bodyAt], parts[bodyAt:]
	usesTS := false
	for _, pt := range parts {
		usesTS = usesTS || pt.kind == partTS
	}
	if opt, err := c.compileTimestamp(p.Timestamp, tsKeys == 1, usesTS); err != nil {
		return nil, optionError(opt, err)
	}
	if c.tsFrom != "" && !c.signsTimestamp(parts) {
		hint := "{ts}"
		if c.tsFrom == "header" {
			hint = "{ts} or {header." + p.Timestamp.Header + "}"
		}
		return nil, optionError("timestamp", fmt.Errorf("the timestamp is checked but not signed, so anyone could replay a delivery with a fresh one: put %s in signed where the sender signs it, or remove timestamp", hint))
	}
	if p.Max != nil {
		if p.Timestamp == nil {
			return nil, optionError("tolerance", errors.New("tolerance applies to a signed timestamp, and there is none: add a timestamp line, or remove tolerance"))
		}
		if *p.Max < 0 {
			return nil, optionError("tolerance", errors.New("tolerance must not be negative: use a duration such as 5m, or 0 to turn the check off"))
		}
	}
	for _, f := range []struct {
		name string
		in   *HMACField
		out  *HMACField
		hdr  *string
	}{{"id", p.ID, &c.id, &c.idHdr}, {"event", p.Event, &c.event, &c.eventHdr}} {
		if f.in == nil {
			continue
		}
		if err := checkField(f.name, *f.in); err != nil {
			return nil, optionError(f.name, err)
		}
		if f.in.Header != "" {
			*f.hdr = textproto.CanonicalMIMEHeaderKey(f.in.Header)
		} else {
			c.bodyKeys = append(c.bodyKeys, f.in.Body)
		}
		*f.out = *f.in
	}
	return c, nil
}

// compileFallbacks checks header_fallbacks and canonicalizes its names.
func compileFallbacks(fb map[string][]string) (map[string][]string, error) {
	if len(fb) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(fb))
	for name, alts := range fb {
		if err := checkFallback(name, alts); err != nil {
			return nil, err
		}
		cn := textproto.CanonicalMIMEHeaderKey(name)
		if _, dup := out[cn]; dup {
			return nil, fmt.Errorf("header_fallback: %s is given twice: list all its other names on one line", name)
		}
		for _, a := range alts {
			out[cn] = append(out[cn], textproto.CanonicalMIMEHeaderKey(a))
		}
	}
	return out, nil
}

// checkFallback checks one header and its other names.
func checkFallback(name string, alts []string) error {
	if !validHeaderName(name) {
		return fmt.Errorf("header_fallback: '%s' is not a header name", name)
	}
	if len(alts) == 0 {
		return fmt.Errorf("header_fallback %s needs the other name(s) to read when it is absent, e.g. header_fallback webhook-id svix-id", name)
	}
	for _, a := range alts {
		if !validHeaderName(a) {
			return fmt.Errorf("header_fallback: '%s' is not a header name", a)
		}
		if strings.EqualFold(a, name) {
			return fmt.Errorf("header_fallback: %s falls back to itself", name)
		}
	}
	return nil
}

// checkField checks where the field name (id or event) comes from.
func checkField(name string, f HMACField) error {
	switch {
	case f.Header != "" && f.Body != "":
		return fmt.Errorf("%s: give a header or a body field, not both", name)
	case f.Header != "":
		if !validHeaderName(f.Header) {
			return fmt.Errorf("%s: '%s' is not a header name", name, f.Header)
		}
	case f.Body == "":
		return fmt.Errorf("%s: say where it is: %s header <Name>, or %s body <field> (a top-level member of a JSON body)", name, name, name)
	}
	return nil
}

// hmacConfigError is a configuration mistake and the option it is about
// ("" when an option is missing), so that the Caddyfile can show its line.
type hmacConfigError struct {
	option string
	err    error
}

func (e *hmacConfigError) Error() string { return e.err.Error() }
func (e *hmacConfigError) Unwrap() error { return e.err }

func optionError(option string, err error) error { return &hmacConfigError{option, err} }

// hmacAlgorithm reads the algorithm's name.
func hmacAlgorithm(name string) (hmacAlg, error) {
	switch strings.ToLower(name) {
	case "", "sha256":
		return hmacAlg{"sha256", SchemeHMAC, crypto.SHA256, crypto.SHA256.Size()}, nil
	case "sha512":
		return hmacAlg{"sha512", SchemeHMAC, crypto.SHA512, crypto.SHA512.Size()}, nil
	case "sha1":
		return hmacAlg{"sha1", SchemeHMAC, crypto.SHA1, crypto.SHA1.Size()}, nil
	case "ed25519":
		return hmacAlg{"ed25519", SchemeEd25519, 0, 64}, nil
	case "ecdsa-p256":
		return hmacAlg{"ecdsa-p256", SchemeECDSAP256SHA256, 0, 0}, nil
	case "md5":
		return hmacAlg{}, errors.New("algorithm md5 is not supported: MD5 is broken and no sender should sign with it; ask the sender for sha256")
	}
	return hmacAlg{}, fmt.Errorf("unknown algorithm '%s': use sha256, sha512, sha1, ed25519 or ecdsa-p256", name)
}

// hmacKeyEncoding reads key_encoding for the algorithm.
func hmacKeyEncoding(enc string, alg hmacAlg) (string, error) {
	if alg.scheme != SchemeHMAC {
		if enc != "" {
			return "", fmt.Errorf("key_encoding applies to HMAC secrets: %s public keys are read as the sender shows them (hex or base64) or as PEM; remove key_encoding", alg.name)
		}
		return "", nil
	}
	switch enc {
	case "", "raw":
		return "raw", nil
	case "hex", "base64", "whsec":
		return enc, nil
	}
	return "", fmt.Errorf("unknown key_encoding '%s': use raw, hex, base64 or whsec", enc)
}

// compileSignature checks one signature entry.
func compileSignature(s HMACSignature) (compiledSig, error) {
	var cs compiledSig
	if s.Header == "" {
		return cs, errors.New("signature needs a header name, e.g. signature X-Signature hex")
	}
	if !validHeaderName(s.Header) {
		return cs, fmt.Errorf("signature: '%s' is not a header name", s.Header)
	}
	cs.header = textproto.CanonicalMIMEHeaderKey(s.Header)
	switch s.Encoding {
	case "", "hex":
	case "base64":
		cs.b64 = true
	default:
		return cs, fmt.Errorf("unknown signature encoding '%s': use hex or base64", s.Encoding)
	}
	if s.List != "" && s.Params != "" {
		return cs, errors.New("signature: a header is a list or params, not both")
	}
	if s.Params != "" {
		if s.Pattern != "" && s.Pattern != "{sig}" {
			return cs, errors.New(`signature params: the value of the sig key is the signature itself, so there is no pattern: params "," sig=v1 ts=t`)
		}
		if s.Params == "=" {
			return cs, errors.New(`signature params: '=' separates a key from its value; give the separator between pairs, e.g. params "," sig=v1`)
		}
		if s.Sig == "" {
			return cs, errors.New(`signature params needs the key of the signatures, e.g. params "," sig=v1 ts=t`)
		}
		for _, k := range []string{s.Sig, s.TS} {
			if strings.Contains(k, "=") || strings.Contains(k, s.Params) || strings.TrimSpace(k) != k {
				return cs, fmt.Errorf("signature params: the key '%s' cannot contain '=', spaces or the separator", k)
			}
		}
		if s.Sig == s.TS {
			return cs, errors.New("signature params: sig and ts name the same key")
		}
		cs.params, cs.sig, cs.ts = s.Params, s.Sig, s.TS
		return cs, nil
	}
	if s.Sig != "" || s.TS != "" {
		return cs, errors.New(`signature: sig= and ts= name the keys of a params header, e.g. params "," sig=v1 ts=t`)
	}
	pat := s.Pattern
	if pat == "" {
		pat = "{sig}"
	}
	before, after, ok := strings.Cut(pat, "{sig}")
	if !ok {
		return cs, fmt.Errorf("signature pattern '%s' has no {sig}: write where the signature is, e.g. \"sha256={sig}\"", pat)
	}
	if strings.Contains(after, "{sig}") {
		return cs, fmt.Errorf("signature pattern '%s' has {sig} twice: there is one signature per value (use list for several)", pat)
	}
	if s.List != "" && (strings.Contains(before, s.List) || strings.Contains(after, s.List)) {
		return cs, fmt.Errorf("signature list: the item pattern '%s' contains the separator '%s', so no item could match it", pat, s.List)
	}
	cs.prefix, cs.suffix, cs.list = before, after, s.List
	return cs, nil
}

// parseTemplate splits the signed template into its parts and returns the
// index of {body} (the parts before it are signed before the body).
func parseTemplate(tmpl string) ([]tmplPart, int, error) {
	var parts []tmplPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, tmplPart{kind: partLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	bodyAt := -1
	for i := 0; i < len(tmpl); i++ {
		switch c := tmpl[i]; c {
		case '\\':
			if i+1 < len(tmpl) && (tmpl[i+1] == '{' || tmpl[i+1] == '}' || tmpl[i+1] == '\\') {
				lit.WriteByte(tmpl[i+1])
				i++
				continue
			}
			lit.WriteByte(c)
		case '}':
			return nil, 0, fmt.Errorf("signed: a '}' with no '{' in %q: write \\} for a literal brace", tmpl)
		case '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return nil, 0, fmt.Errorf("signed: a '{' is not closed in %q: write \\{ for a literal brace", tmpl)
			}
			ph := tmpl[i+1 : i+end]
			i += end
			flush()
			switch {
			case ph == "body":
				if bodyAt >= 0 {
					return nil, 0, fmt.Errorf("signed: {body} appears twice in %q: the body is signed once", tmpl)
				}
				bodyAt = len(parts)
			case ph == "ts":
				parts = append(parts, tmplPart{kind: partTS})
			case strings.HasPrefix(ph, "header."), strings.HasPrefix(ph, "http.request.header."):
				name := strings.TrimPrefix(strings.TrimPrefix(ph, "http.request."), "header.")
				if !validHeaderName(name) {
					return nil, 0, fmt.Errorf("signed: '{%s}' does not name a header: write {header.Name}", ph)
				}
				parts = append(parts, tmplPart{kind: partHeader, text: textproto.CanonicalMIMEHeaderKey(name)})
			default:
				return nil, 0, fmt.Errorf("signed: unknown placeholder {%s}: use {body}, {header.Name} or {ts} (\\{ for a literal brace)", ph)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	if bodyAt < 0 {
		return nil, 0, fmt.Errorf("signed: no {body} in %q: say where the body goes, e.g. \"{ts}.{body}\"", tmpl)
	}
	return parts, bodyAt, nil
}

// normalizeTemplate rewrites Caddy's long form of a header
// placeholder, {http.request.header.Name} (which the Caddyfile adapter
// makes of {header.Name}), back to {header.Name}.
func normalizeTemplate(tmpl string) string {
	return strings.ReplaceAll(tmpl, "{http.request.header.", "{header.")
}

// compileTimestamp checks the timestamp against the signatures and the
// template.
func (c *hmacCompiled) compileTimestamp(ts *HMACTimestamp, haveTSKey, usesTS bool) (string, error) {
	if ts == nil {
		if usesTS {
			return "signed", errors.New("signed uses {ts} but there is no timestamp: add one, e.g. timestamp header X-Timestamp unix, or timestamp params unix with ts= in a params signature")
		}
		if haveTSKey {
			return "signature", errors.New("the params signature names a timestamp (ts=) but there is no timestamp line to check it: add timestamp params unix (or unix_ms, rfc3339)")
		}
		return "", nil
	}
	err := c.timestampSource(ts, haveTSKey)
	return "timestamp", err
}

// timestampSource checks the timestamp's source and format.
func (c *hmacCompiled) timestampSource(ts *HMACTimestamp, haveTSKey bool) error {
	switch ts.From {
	case "header":
		if ts.Header == "" || !validHeaderName(ts.Header) {
			return fmt.Errorf("timestamp header needs a header name, e.g. timestamp header X-Timestamp unix")
		}
		if haveTSKey {
			return errors.New("the params signature carries a timestamp (ts=) and timestamp reads a header: use timestamp params, or drop ts=")
		}
		c.tsHeader = textproto.CanonicalMIMEHeaderKey(ts.Header)
	case "params":
		if ts.Header != "" {
			return errors.New("timestamp params reads the ts= key of the params signature and takes no header")
		}
		if !haveTSKey {
			return errors.New(`timestamp params needs a params signature with ts=, e.g. signature Stripe-Signature params "," sig=v1 ts=t hex`)
		}
	case "":
		return errors.New("timestamp needs a source: timestamp header <Name> <format>, or timestamp params <format>")
	default:
		return fmt.Errorf("unknown timestamp source '%s': use header <Name> or params", ts.From)
	}
	c.tsFrom, c.tsFormat = ts.From, ts.Format
	switch ts.Format {
	case "unix":
		c.tsParse = ParseUnixSeconds
	case "unix_ms":
		c.tsParse = ParseUnixMillis
	case "rfc3339":
		c.tsParse = ParseRFC3339
	case "":
		return errors.New("timestamp needs a format: unix (seconds), unix_ms or rfc3339")
	default:
		return fmt.Errorf("unknown timestamp format '%s': use unix (seconds), unix_ms or rfc3339", ts.Format)
	}
	return nil
}

// signsTimestamp reports whether the template signs the timestamp: {ts},
// or the timestamp's header.
func (c *hmacCompiled) signsTimestamp(parts []tmplPart) bool {
	for _, pt := range parts {
		if pt.kind == partTS || (pt.kind == partHeader && c.tsFrom == "header" && pt.text == c.tsHeader) {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Interface guards
var (
	_ Provider          = (*HMAC)(nil)
	_ KeyDecoder        = (*HMAC)(nil)
	_ PublicKeyDecoder  = (*HMAC)(nil)
	_ caddy.Provisioner = (*HMAC)(nil)
)
