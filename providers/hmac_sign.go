package providers

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// The sending side of the hmac provider: a delivery signed as the
// configuration describes it.

// Sign signs req as the configuration says a sender does: it sets the
// timestamp (in its header, or the ts= key of a params signature) and,
// when id comes from a header, that header (req.ID, else the request's
// own, else a fresh one), renders the signed template with req.Header and
// those, and writes the signature into the first signature line's header
// in its form (pattern, list item or params pair; hex in lowercase, or
// standard base64).
func (p *HMAC) Sign(req SignRequest) (http.Header, error) {
	c := p.c
	if c == nil {
		return nil, errors.New("hmac provider not provisioned")
	}
	out := http.Header{}
	hdr := req.Header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	var ts string
	if c.tsFrom != "" {
		switch c.tsFormat {
		case "unix":
			ts = strconv.FormatInt(req.Time.Unix(), 10)
		case "unix_ms":
			ts = strconv.FormatInt(req.Time.UnixMilli(), 10)
		default: // rfc3339, in the time's own zone, with its fraction
			ts = req.Time.Format(time.RFC3339Nano)
		}
		if c.tsFrom == "header" {
			out.Set(c.tsHeader, ts)
			hdr.Set(c.tsHeader, ts)
			for _, alt := range c.fallbacks[c.tsHeader] {
				hdr.Del(alt)
			}
		}
	}
	if c.idHdr != "" {
		id := req.ID
		if id == "" {
			id = textproto.TrimString(hdr.Get(c.header(hdr, c.idHdr)))
		}
		id = orID(id, func() string { return NewID("evt_") })
		out.Set(c.idHdr, id)
		hdr.Set(c.idHdr, id)
	}
	prefix, err := c.render(c.prefix, hdr, ts)
	if err == nil {
		var suffix []byte
		if suffix, err = c.render(c.suffix, hdr, ts); err == nil {
			var sig []byte
			if sig, err = signOnce(req, c.alg.scheme, c.alg.hash, prefix, suffix); err != nil {
				return nil, err
			}
			s := &c.sigs[0]
			out.Set(s.header, s.value(encodeSig(sig, s.b64), ts))
			return out, nil
		}
	}
	if errors.Is(err, ErrMissingSignature) {
		return nil, fmt.Errorf("the signed template covers a header the delivery lacks (%v): give it with --header 'Name: value'", err)
	}
	return nil, err
}

func encodeSig(sig []byte, b64 bool) string {
	if b64 {
		return base64.StdEncoding.EncodeToString(sig)
	}
	return hex.EncodeToString(sig)
}

// value writes an encoded signature (and the timestamp, for a params line
// with ts=) in the line's form.
func (s *compiledSig) value(enc, ts string) string {
	if s.params != "" {
		v := s.sig + "=" + enc
		if s.ts != "" {
			v = s.ts + "=" + ts + s.params + v
		}
		return v
	}
	return s.prefix + enc + s.suffix
}

// Ping is a small JSON test event. Where the configuration reads id and
// event from the body, the body has them (the id, and "ping"); where from
// headers, the headers do.
func (p *HMAC) Ping(now time.Time, id string) ([]byte, http.Header) {
	id = orID(id, func() string { return NewID("evt_") })
	h := jsonHeader()
	var b strings.Builder
	b.WriteByte('{')
	seen := map[string]bool{}
	member := func(k, v string) {
		if seen[k] {
			return
		}
		seen[k] = true
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(jsonQuote(k) + ":" + v)
	}
	if c := p.c; c != nil {
		for _, f := range []struct {
			hdr, body, val string
		}{{c.idHdr, c.id.Body, id}, {c.eventHdr, c.event.Body, "ping"}} {
			switch {
			case f.hdr != "":
				h.Set(f.hdr, f.val)
			case f.body != "":
				member(f.body, jsonQuote(f.val))
			}
		}
	}
	member("id", jsonQuote(id))
	member("type", `"ping"`)
	member("timestamp", `"`+now.UTC().Format(time.RFC3339)+`"`)
	member("data", `{"message":"Test delivery from caddy webhook send"}`)
	b.WriteByte('}')
	return []byte(b.String()), h
}
