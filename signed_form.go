package webhookverify

import (
	"errors"
	"fmt"
	"hash"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Alternate signed forms (Vev's stringify_fallback).
//
// A provider that implements providers.AlternateForm may verify a request
// whose raw MAC failed over another text computed from the body (Vev: its
// JSON.stringify form). When that verifies, the text replaces the raw body
// in the request's verifiedBody: it is what is forwarded (with its own
// Content-Length and GetBody) or stored by the queue, so that the backend
// receives exactly the bytes that were signed, and {http.webhook.signed_form}
// names the form ("raw" otherwise).
//
// The text gets buffers of its own under max_inflight_bytes while both
// exist; the raw body's buffer and bytes are given back once the text
// verified. The text may not be longer than max_body_size.

// signedFormTotal counts verified requests by the form that verified:
// "raw" or the alternate form's name. caddy_webhook_verify_requests_total
// is unchanged (a request verified over another form counts as verified
// there, or queued, or duplicate, as before).
var signedFormTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy",
	Subsystem: "webhook_verify",
	Name:      "signed_form_total",
	Help:      "Webhook requests whose signature verified, by provider and the form of the body it covers (raw, stringify).",
}, []string{"provider", "form"})

// countForm counts a verified request under its signed form.
func (m *handlerMetrics) countForm(form string) {
	if c := m.forms[form]; c != nil {
		c.Inc()
	}
}

// signedForms are the label values resolved at provision.
var signedForms = []string{providers.SignedFormRaw, providers.SignedFormStringify}

func formCounters(provider string) map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter, len(signedForms))
	for _, f := range signedForms {
		m[f] = signedFormTotal.WithLabelValues(provider, f)
	}
	return m
}

// macSet is the MACs of a request as one providers.ResettableWriter.
type macSet struct {
	macs   []hash.Hash
	prefix []byte
}

func (s *macSet) Write(p []byte) (int, error) {
	for _, m := range s.macs {
		if m != nil {
			m.Write(p)
		}
	}
	return len(p), nil
}

func (s *macSet) Reset() {
	for _, m := range s.macs {
		if m != nil {
			m.Reset()
			m.Write(s.prefix)
		}
	}
}

// verifyAlternate is called when the raw body's MAC matched none of the
// signatures (rawErr). It returns nil when the provider's alternate form
// verified: body then holds that text. Otherwise it returns the reason to
// refuse: rawErr for a provider without an alternate form (or with it off),
// else rawErr with the form's reason, or ErrOverBudget.
func (h *Handler) verifyAlternate(r *http.Request, signed providers.Signed, body *verifiedBody, rawErr error, now time.Time) (int, error) {
	af, ok := h.provider.(providers.AlternateForm)
	if !ok {
		return -1, rawErr
	}
	var macArr [4]hash.Hash
	macs := h.keys.macs(signed.Hash, now, macArr[:0])
	defer h.keys.put(signed.Hash, macs)
	set := &macSet{macs: macs, prefix: signed.Prefix}
	set.Reset()
	raw := body.bytes()
	opt := providers.TextOptions{
		MAC: set,
		Alloc: func(n int) []byte {
			b := getBuf(n)
			if !body.reserve(int64(cap(b))) {
				putBuf(b)
				return nil
			}
			return b
		},
		Free: func(b []byte) {
			body.unreserve(int64(cap(b)))
			putBuf(b)
		},
		Reserve: func(n int) bool { return body.reserve(int64(n)) },
		Release: func(n int) { body.unreserve(int64(n)) },
		Limit:   int(h.MaxBodySize),
	}
	// the text is built only once its MAC matched (a forgery costs no text)
	key, matched := -1, false
	opt.Match = func() bool {
		set.Write(signed.Suffix)
		var err error
		key, err = matchMACs(macs, signed.Signatures)
		matched = true
		return err == nil
	}
	text, form, err := af.SignedText(r.Header, raw, opt)
	switch {
	case errors.Is(err, providers.ErrNoAlternate):
		return -1, rawErr
	case errors.Is(err, providers.ErrAlternateBudget):
		return -1, ErrOverBudget
	case errors.Is(err, providers.ErrAlternateNoMatch):
		return -1, fmt.Errorf("%w (nor over its %s form)", rawErr, form)
	case err != nil:
		return -1, fmt.Errorf("%w (%w)", rawErr, err)
	}
	if !matched && !opt.Match() { // a form that does not call Match
		opt.Free(text)
		return -1, fmt.Errorf("%w (nor over its %s form)", rawErr, form)
	}
	body.swap(text, form, len(raw))
	if c := h.logger.Check(zapcore.InfoLevel, "webhook verified over its "+form+" form; forwarding that form"); c != nil {
		c.Write(
			zap.String("provider", h.name),
			zap.String("signed_form", form),
			zap.Int("raw_bytes", len(raw)),
			zap.Int("signed_bytes", len(text)),
			zap.String("client_ip", clientIP(r)),
			zap.String("remote_addr", r.RemoteAddr),
		)
	}
	return key, nil
}

// refuseAlternate answers a request refused by verifyAlternate.
func (h *Handler) refuseAlternate(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, ErrOverBudget) {
		w.Header().Set("Retry-After", retryAfter503)
		return h.refuse(r, caddyhttp.Error(http.StatusServiceUnavailable, ErrOverBudget))
	}
	return h.refuse(r, caddyhttp.Error(http.StatusUnauthorized, err))
}

// unreserve gives n of the body's bytes back to max_inflight_bytes.
func (b *verifiedBody) unreserve(n int64) {
	b.mu.Lock()
	b.reserved -= n
	b.mu.Unlock()
	b.h.unreserve(n)
}

// swap makes text, which verified over form, the body, in place of the
// raw bytes (rawLen of them reserved), which are given back.
func (b *verifiedBody) swap(text []byte, form string, rawLen int) {
	b.mu.Lock()
	// whole is the raw body's pooled buffer (buf a slice of it): it goes
	// back once, here; the text is the new whole
	raw := b.whole
	b.whole, b.buf = text, text[:len(text):len(text)]
	b.form = form
	b.mu.Unlock()
	if raw != nil {
		putBuf(raw)
	}
	b.unreserve(int64(rawLen))
}

// signedForm is the value of {http.webhook.signed_form}.
func (b *verifiedBody) signedForm() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.form == "" {
		return providers.SignedFormRaw
	}
	return b.form
}
