package providers

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// hmacPos is where an option was written in the Caddyfile.
type hmacPos struct {
	file string
	line int
}

// hmacOptions are the block lines of the hmac provider.
var hmacOptions = []string{"algorithm", "key_encoding", "signature", "signed", "timestamp", "tolerance", "id", "event", "header_fallback"}

// UnmarshalCaddyfileOption reads the hmac lines of the webhook_verify
// block:
//
//	algorithm    sha256 | sha512 | sha1 | ed25519 | ecdsa-p256
//	key_encoding raw | hex | base64 | whsec
//	signature    <header> [<pattern> | list <sep> <item pattern> | params <sep> sig=<key> [ts=<key>]] [hex | base64]
//	signed       "<template>"
//	timestamp    header <Name> | params  unix | unix_ms | rfc3339  [<tolerance>]
//	tolerance    <duration>
//	id           header <Name> | body <field>
//	event        header <Name> | body <field>
//	header_fallback <header> <other name>...
//
// Each line is checked as it is read; CheckCaddyfile checks them together.
func (p *HMAC) UnmarshalCaddyfileOption(d *caddyfile.Dispenser) (bool, error) {
	opt := d.Val()
	known := false
	for _, o := range hmacOptions {
		known = known || o == opt
	}
	if !known {
		return false, nil
	}
	if p.pos == nil {
		p.pos = make(map[string]hmacPos)
	}
	if _, seen := p.pos[opt]; seen && opt != "signature" && opt != "header_fallback" {
		return true, d.Errf("%s already specified", opt)
	}
	p.pos[opt] = hmacPos{d.File(), d.Line()}
	var err error
	switch opt {
	case "algorithm":
		var v string
		if v, err = oneArg(d, "algorithm sha256"); err == nil {
			_, err = hmacAlgorithm(v)
			p.Algorithm = strings.ToLower(v)
		}
	case "key_encoding":
		var v string
		if v, err = oneArg(d, "key_encoding hex"); err == nil {
			if _, err = hmacKeyEncoding(v, hmacAlg{scheme: SchemeHMAC}); err == nil {
				p.KeyEncoding = v
			}
		}
	case "signature":
		var s HMACSignature
		if s, err = parseSignatureLine(d); err == nil {
			if _, err = compileSignature(s); err == nil {
				p.Signatures = append(p.Signatures, s)
			}
		}
	case "signed":
		var v string
		if v, err = oneArg(d, `signed "{ts}.{body}"`); err == nil {
			v = normalizeTemplate(v)
			if _, _, err = parseTemplate(v); err == nil {
				p.Signed = v
			}
		}
	case "timestamp":
		err = p.parseTimestampLine(d)
	case "tolerance":
		_, err = p.Tolerance.UnmarshalCaddyfileOption(d)
		return true, err // its errors carry their line already
	case "header_fallback":
		args := d.RemainingArgs()
		if len(args) == 0 {
			err = errors.New("header_fallback needs a header and its other name(s), e.g. header_fallback webhook-id svix-id")
			break
		}
		if err = checkFallback(args[0], args[1:]); err != nil {
			break
		}
		for name := range p.HeaderFallbacks {
			if strings.EqualFold(name, args[0]) {
				err = fmt.Errorf("header_fallback: %s is given twice: list all its other names on one line", args[0])
			}
		}
		if err == nil {
			if p.HeaderFallbacks == nil {
				p.HeaderFallbacks = make(map[string][]string)
			}
			p.HeaderFallbacks[args[0]] = args[1:]
		}
	case "id", "event":
		var f HMACField
		if f, err = parseFieldLine(d, opt); err == nil {
			if opt == "id" {
				p.ID = &f
			} else {
				p.Event = &f
			}
		}
	}
	if err != nil {
		return true, d.Err(err.Error())
	}
	return true, nil
}

// oneArg reads the single argument of the current line.
func oneArg(d *caddyfile.Dispenser, example string) (string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 || args[0] == "" {
		return "", fmt.Errorf("%s takes one value, e.g. %s", name, example)
	}
	return args[0], nil
}

func isEncoding(s string) bool { return s == "hex" || s == "base64" }

// isWord reports whether s is letters and digits only: a misspelt
// encoding rather than a pattern.
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !('a' <= c && c <= 'z') && !('0' <= s[i] && s[i] <= '9') {
			return false
		}
	}
	return s != ""
}

// parseSignatureLine reads
//
//	signature <header> [<pattern> | list <sep> <item> | params <sep> sig=<k> [ts=<k>]] [<encoding>]
func parseSignatureLine(d *caddyfile.Dispenser) (HMACSignature, error) {
	var s HMACSignature
	args := d.RemainingArgs()
	if len(args) == 0 {
		return s, errors.New(`signature needs a header, e.g. signature X-Hub-Signature-256 "sha256={sig}" hex`)
	}
	s.Header, args = args[0], args[1:]
	if len(args) == 0 {
		return s, nil
	}
	switch args[0] {
	case "list":
		if len(args) < 3 {
			return s, errors.New(`signature list needs a separator and an item pattern, e.g. signature webhook-signature list " " "v1,{sig}" base64`)
		}
		s.List, s.Pattern, args = args[1], args[2], args[3:]
		if s.List == "" {
			return s, errors.New(`signature list: the separator is empty: give the string between items, e.g. list " " "v1,{sig}"`)
		}
	case "params":
		if len(args) < 2 {
			return s, errors.New(`signature params needs a separator and the keys, e.g. signature Stripe-Signature params "," sig=v1 ts=t hex`)
		}
		s.Params, args = args[1], args[2:]
		if s.Params == "" {
			return s, errors.New(`signature params: the separator is empty: give the string between pairs, e.g. params "," sig=v1`)
		}
		for len(args) > 0 {
			k, v, ok := strings.Cut(args[0], "=")
			if !ok {
				break
			}
			switch k {
			case "sig":
				if s.Sig != "" {
					return s, errors.New("signature params: sig= given twice (the key may repeat in the header; name it once here)")
				}
				s.Sig = v
			case "ts":
				if s.TS != "" {
					return s, errors.New("signature params: ts= given twice")
				}
				s.TS = v
			default:
				return s, fmt.Errorf("signature params: unknown '%s=': use sig=<key of the signatures> and ts=<key of the timestamp>", k)
			}
			if v == "" {
				return s, fmt.Errorf("signature params: %s= needs the key's name, e.g. sig=v1 ts=t", k)
			}
			args = args[1:]
		}
	default:
		switch {
		case len(args) == 1 && isEncoding(args[0]):
			// the encoding alone: the value is the bare signature
		case len(args) == 1 && isWord(args[0]):
			return s, fmt.Errorf("unknown signature encoding '%s': use hex or base64 (or a pattern such as \"sha256={sig}\")", args[0])
		default:
			s.Pattern, args = args[0], args[1:]
		}
	}
	if len(args) > 0 {
		if !isEncoding(args[0]) {
			return s, fmt.Errorf("unknown signature encoding '%s': use hex or base64", args[0])
		}
		s.Encoding, args = args[0], args[1:]
	}
	if len(args) > 0 {
		return s, fmt.Errorf("signature: unexpected '%s' after the encoding", args[0])
	}
	return s, nil
}

// parseTimestampLine reads
//
//	timestamp header <Name> | params  <format> [<tolerance>]
func (p *HMAC) parseTimestampLine(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	ts := new(HMACTimestamp)
	if len(args) == 0 {
		return errors.New("timestamp needs a source and a format: timestamp header <Name> unix, or timestamp params unix")
	}
	switch args[0] {
	case "header":
		if len(args) < 2 {
			return errors.New("timestamp header needs the header's name and a format, e.g. timestamp header X-Slack-Request-Timestamp unix")
		}
		ts.From, ts.Header, args = "header", args[1], args[2:]
	case "params", "{ts}":
		ts.From, args = "params", args[1:]
	default:
		return fmt.Errorf("unknown timestamp source '%s': use header <Name>, or params (the ts= of a params signature)", args[0])
	}
	if len(args) == 0 {
		return errors.New("timestamp needs a format after its source: unix (seconds), unix_ms or rfc3339")
	}
	ts.Format, args = args[0], args[1:]
	if err := new(hmacCompiled).timestampSource(ts, ts.From == "params"); err != nil {
		return err
	}
	if len(args) > 0 {
		if p.Max != nil {
			return errors.New("tolerance already specified (on its own line): give it once")
		}
		v, err := caddy.ParseDuration(args[0])
		if err != nil || v < 0 {
			return fmt.Errorf("timestamp: the tolerance '%s' is not a duration: use e.g. 5m, or 0 to turn the check off", args[0])
		}
		tol := caddy.Duration(v)
		p.Max = &tol
		args = args[1:]
	}
	if len(args) > 0 {
		return fmt.Errorf("timestamp: unexpected '%s' after the tolerance", args[0])
	}
	p.Timestamp = ts
	return nil
}

// parseFieldLine reads "id|event header <Name>" or "id|event body <field>".
func parseFieldLine(d *caddyfile.Dispenser, name string) (HMACField, error) {
	var f HMACField
	args := d.RemainingArgs()
	if len(args) != 2 {
		return f, fmt.Errorf("%s takes a source and a name: %s header <Name>, or %s body <field> (a top-level member of a JSON body)", name, name, name)
	}
	switch args[0] {
	case "header":
		f.Header = args[1]
	case "body":
		f.Body = args[1]
	default:
		return f, fmt.Errorf("unknown %s source '%s': use %s header <Name>, or %s body <field>", name, args[0], name, name)
	}
	return f, checkField(name, f)
}

// CaddyfileOptionNames names the hmac lines of the block, for the error
// on an unknown one.
func (*HMAC) CaddyfileOptionNames() []string { return slices.Clone(hmacOptions) }

// CheckCaddyfile checks the block's hmac lines together, at the end of
// the block: an error points at the line it is about, or at the
// webhook_verify line when a line is missing.
func (p *HMAC) CheckCaddyfile(d *caddyfile.Dispenser) error {
	_, err := p.compile()
	if err == nil {
		return nil
	}
	var ce *hmacConfigError
	if errors.As(err, &ce) {
		if pos, ok := p.pos[ce.option]; ok && ce.option != "" {
			return fmt.Errorf("%w, at %s:%d", err, pos.file, pos.line)
		}
	}
	d.Reset()
	d.Next()
	if len(p.Signatures) == 0 {
		return d.Err(`webhook_verify hmac: no signature: say where the signature is, e.g. signature X-Hub-Signature-256 "sha256={sig}" hex`)
	}
	return d.Errf("webhook_verify hmac: %v", err)
}

// Interface guards
var (
	_ CaddyfileOption      = (*HMAC)(nil)
	_ CaddyfileChecker     = (*HMAC)(nil)
	_ CaddyfileOptionNamer = (*HMAC)(nil)
)
