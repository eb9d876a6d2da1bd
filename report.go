package webhookverify

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Report-only mode (enforce off) and which key verified.
//
// With enforce off, a request that fails a check (method, credentials,
// signature) is not answered by the handler: the failures are recorded
// in its verifiedBody, the request is read and handed over like a
// verified one, and report logs one line and counts it once, under the
// outcome of its first failure (as enforce on would have refused it) and
// in caddy_webhook_verify_not_enforced_total. {http.webhook.verified} is
// "false" for it, {http.webhook.key} empty.

var (
	keyMatchesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "key_matches_total",
		Help:      "Verified webhook requests by provider and the position (1-based) of the configured secret or key that verified them: when an old secret's count stops growing, it can be removed.",
	}, []string{"provider", "key"})

	notEnforcedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "not_enforced_total",
		Help:      "Requests that failed a check and were passed on anyway (enforce off), by provider and the outcome they are counted under in requests_total.",
	}, []string{"provider", "outcome"})
)

// keyCounters resolves the key_matches_total series of n keys.
func (m *handlerMetrics) keyCounters(provider string, n int) {
	m.keys = make([]prometheus.Counter, n)
	for i := range m.keys {
		m.keys[i] = keyMatchesTotal.WithLabelValues(provider, strconv.Itoa(i+1))
	}
}

// matched counts a verified request under the key (0-based) that
// verified it.
func (m *handlerMetrics) matched(key int) {
	if key >= 0 && key < len(m.keys) {
		m.keys[key].Inc()
	}
}

// fail records, with enforce off, a failed check: he is what enforce on
// would have answered; hint (if any) explains a signature's failure.
func (b *verifiedBody) fail(he caddyhttp.HandlerError, hint string) {
	b.failed = append(b.failed, he)
	if hint != "" {
		b.hint = hint
	}
}

// verified is the value of {http.webhook.verified}.
func (b *verifiedBody) verified() string {
	if b.failed == nil {
		return "true"
	}
	return "false"
}

// keyPlaceholder is the value of {http.webhook.key}: the position
// (1-based) of the key that verified the request, empty when none did.
func (b *verifiedBody) keyPlaceholder() string {
	if b.failed != nil || b.key < 0 {
		return ""
	}
	return strconv.Itoa(b.key + 1)
}

// reportMessage is the message of report's log line.
const reportMessage = "webhook failed verification; passed on (enforce off)"

// errNotChecked is readVerified's sigErr when it only read the body: the
// signature was not checked, which is never a verified one.
var errNotChecked = errors.New("signature not checked")

// report counts and logs a request that failed a check and goes on
// because enforce is off: one line, with the first failure as its reason
// (the outcome it is counted under), the signature's verdict when the
// first failure was not the signature's, and the hint.
func (h *Handler) report(r *http.Request, body *verifiedBody) {
	first := body.failed[0]
	outcome := outcomeOf(first.Err)
	h.metrics.count(outcome)
	if c := h.metrics.notEnforced[outcome]; c != nil {
		c.Inc()
	}
	c := h.logger.Check(zapcore.InfoLevel, reportMessage)
	if c == nil {
		return
	}
	fields := []zap.Field{
		zap.String("provider", h.name),
		zap.Bool("enforced", false),
		zap.Int("status", first.StatusCode),
		zap.String("reason", first.Err.Error()),
	}
	if !isSignatureFailure(first.Err) {
		sig := "verified"
		for _, he := range body.failed[1:] {
			if isSignatureFailure(he.Err) {
				sig = he.Err.Error()
			}
		}
		fields = append(fields, zap.String("signature", sig))
	}
	if body.hint != "" {
		fields = append(fields, zap.String("hint", body.hint))
	}
	fields = append(fields, zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr))
	c.Write(fields...)
}

// isSignatureFailure reports whether reason is the signature's (missing,
// malformed, not matching), not the method's or the credentials'.
func isSignatureFailure(reason error) bool {
	return !errors.Is(reason, ErrMethodNotAllowed) && !errors.Is(reason, ErrBadCredentials)
}

// refuseHint is refuse with a hint in the log line ("" for none).
func (h *Handler) refuseHint(r *http.Request, he caddyhttp.HandlerError, hint string) error {
	h.metrics.count(outcomeOf(he.Err))
	h.logHint(r, he.StatusCode, he.Err, hint)
	return he
}

// notEnforcedCounters resolves the not_enforced_total series of the
// outcomes a check can fail with.
func notEnforcedCounters(provider string) map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter)
	for _, o := range []string{outcomeMethodNotAllowed, outcomeBadCredentials, outcomeMissingSignature, outcomeMalformedSignature, outcomeBadSignature} {
		m[o] = notEnforcedTotal.WithLabelValues(provider, o)
	}
	return m
}
