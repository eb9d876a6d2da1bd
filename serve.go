package webhookverify

import (
	"context"
	"errors"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/dedupe"
	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// ServeHTTP verifies the request and hands it over only if it is a genuine
// webhook: screen (method, credentials, declared size), parse the
// signature, read and verify the body, hand the verified request over.
//
// With enforce off (report-only), a failed check does not stop the
// request: the first one is recorded in body, every check still runs, the
// body is read under the same limits (which are enforced), and the
// request is handed over with {http.webhook.verified} false, after one
// log line (report.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	now := h.now()
	body := &verifiedBody{h: h, key: -1}
	defer body.releaseUnlessHanded() // every path until the hand-over, panics included
	if err := h.screen(w, r, body); err != nil {
		return err
	}
	start := time.Now()
	signed, err := h.provider.Parse(r, now)
	if err != nil {
		if err := h.checkUnsigned(w, r, body, err, now); err != nil {
			return err
		}
	} else {
		if err := h.checkScheme(signed); err != nil {
			// a provider's bug (a hash not linked in, a scheme for other
			// keys), not the sender's
			closeUnread(w, r)
			return h.refuse(r, caddyhttp.Error(http.StatusInternalServerError, err))
		}
		if err := h.checkSigned(w, r, signed, body, now); err != nil {
			return err
		}
	}
	if body.failed == nil {
		h.metrics.observe(len(body.buf), start)
		h.metrics.matched(body.key)
		h.metrics.countForm(body.signedForm())
	} else {
		h.report(r, body)
	}
	h.handOver(r, body)
	return h.deliver(w, r, next, body)
}

// screen refuses, before anything is read, a request that is not a POST,
// lacks the endpoint's credentials, or declares a body over max_body_size.
// With enforce off, the method and the credentials are only recorded in
// body (the declared size is a limit: always refused).
func (h *Handler) screen(w http.ResponseWriter, r *http.Request, body *verifiedBody) error {
	if r.Method != http.MethodPost {
		if !h.reportOnly {
			w.Header().Set("Allow", http.MethodPost)
			closeUnread(w, r)
			return h.refuse(r, caddyhttp.Error(http.StatusMethodNotAllowed, ErrMethodNotAllowed))
		}
		body.fail(caddyhttp.Error(http.StatusMethodNotAllowed, ErrMethodNotAllowed), "")
	}
	if !h.creds.empty() && !h.creds.check(r.Header.Get("Authorization")) {
		if !h.reportOnly {
			h.creds.challenge(w.Header())
			closeUnread(w, r)
			return h.refuse(r, caddyhttp.Error(http.StatusUnauthorized, ErrBadCredentials))
		}
		body.fail(caddyhttp.Error(http.StatusUnauthorized, ErrBadCredentials), "")
	}
	if r.ContentLength > h.MaxBodySize {
		closeUnread(w, r)
		return h.refuse(r, caddyhttp.Error(http.StatusRequestEntityTooLarge, ErrBodyTooLarge))
	}
	return nil
}

// checkUnsigned handles a request whose signature Parse refused (missing
// or malformed): 401 without reading the body, unless the signature is
// only in the wrong encoding (then the body is read and the signature
// checked as re-encoded, for the hint: hints.go) or enforce is off (then
// the body is read to be forwarded).
func (h *Handler) checkUnsigned(w http.ResponseWriter, r *http.Request, body *verifiedBody, reason error, now time.Time) error {
	probe, ok := h.reencoded(r, reason, now)
	if !ok && !h.reportOnly {
		return h.refuseUnsigned(w, r, reason)
	}
	hint := ""
	if ok {
		key, sigErr, err := h.readVerified(w, r, probe, body, now, readProbe)
		if err != nil {
			return err
		}
		if sigErr == nil {
			hint = encodingHint(reason, key)
		}
	} else if _, _, err := h.readVerified(w, r, providers.Signed{}, body, now, readOnly); err != nil {
		return err // a limit; the signature is not checked (errNotChecked)
	}
	body.key = -1
	he := caddyhttp.Error(http.StatusUnauthorized, reason)
	if !h.reportOnly {
		// the body was read whole: the connection can be kept
		return h.refuseHint(r, he, hint)
	}
	body.fail(he, hint)
	return nil
}

// checkSigned reads the body, verifies the signature, and refuses the
// request (with a hint when a cheap check explains the mismatch) or, with
// enforce off, records the failure.
func (h *Handler) checkSigned(w http.ResponseWriter, r *http.Request, signed providers.Signed, body *verifiedBody, now time.Time) error {
	key, sigErr, err := h.readVerified(w, r, signed, body, now, readVerify)
	if err != nil {
		return err
	}
	if sigErr == nil {
		body.key = key
		return nil
	}
	hint := h.diagnose(signed, body, now)
	he := caddyhttp.Error(http.StatusUnauthorized, sigErr)
	if !h.reportOnly {
		return h.refuseHint(r, he, hint)
	}
	body.fail(he, hint)
	return nil
}

// refuseUnsigned answers a request whose signature is missing or
// malformed: 401, unless its body is over max_body_size (413 whatever the
// signature). A declared length was screened already; a chunked body is
// drained, under body_timeout, up to the limit to tell.
func (h *Handler) refuseUnsigned(w http.ResponseWriter, r *http.Request, reason error) error {
	if r.ContentLength < 0 && r.Body != nil {
		err := h.readTimed(w, func() error { return drainBody(r.Body, h.MaxBodySize) })
		if err != nil {
			return h.bodyError(w, r, err)
		}
	} else {
		closeUnread(w, r)
	}
	return h.refuse(r, caddyhttp.Error(http.StatusUnauthorized, reason))
}

// checkScheme refuses a Signed the handler cannot check: a scheme other
// than the configured keys' kind (an HMAC for public keys, Ed25519 for
// ECDSA keys), or an HMAC hash this binary lacks.
func (h *Handler) checkScheme(signed providers.Signed) error {
	if !h.keys.fits(signed.Scheme) {
		return ErrProviderScheme
	}
	if signed.Scheme == providers.SchemeHMAC && !signed.Hash.Available() {
		return ErrProviderHash
	}
	return nil
}

// readMode says what readVerified checks.
type readMode uint8

const (
	readVerify readMode = iota // the signature, and the alternate form
	readProbe                  // the signature over the raw body only
	readOnly                   // nothing: the body is only read
)

// readVerified reserves the body's bytes under max_inflight_bytes (a
// declared length up front, a chunked body as it is read), reads it under
// body_timeout into body, computing the MACs (or the ECDSA digest) as it
// arrives, and checks the signature as mode says: readVerify checks it
// (and, for HMAC, the provider's alternate signed form when the raw body's
// MAC fails); readProbe checks the raw body only (a re-encoded signature,
// for a hint); readOnly only reads the body, to be forwarded with enforce
// off. It returns the index of the key that verified, or the reason the
// signature did not verify (sigErr, not yet answered; errNotChecked in
// readOnly mode); err is a refusal already answered (a limit: 413, 503,
// 408, 400). On error body may hold a buffer and a reservation: the
// caller releases it.
//
// For Ed25519, which needs the whole message, the body is read into a
// buffer with room for the Prefix before it and the Suffix after it, and
// the signature is checked over Prefix‖body‖Suffix in place: the body is
// never copied for it, and is handed over as the body bytes alone. The
// room is reserved under max_inflight_bytes with the body.
func (h *Handler) readVerified(w http.ResponseWriter, r *http.Request, signed providers.Signed, body *verifiedBody, now time.Time, mode readMode) (key int, sigErr, err error) {
	var src io.Reader = r.Body
	if r.ContentLength > 0 {
		if !body.reserve(r.ContentLength) {
			return -1, nil, h.bodyError(w, r, ErrOverBudget)
		}
	} else if r.ContentLength < 0 && r.Body != nil {
		src = &budgetReader{r: r.Body, b: body}
	}

	var macArr [4]hash.Hash
	var macs []hash.Hash // fed with Prefix‖body‖Suffix as it arrives
	head, tail := 0, 0   // room around the body in its buffer
	switch {
	case mode == readOnly:
	case signed.Scheme == providers.SchemeHMAC:
		macs = h.keys.macs(signed.Hash, now, macArr[:0])
		defer h.keys.put(signed.Hash, macs)
	case signed.Scheme == providers.SchemeECDSAP256SHA256:
		d := sha256s.Get().(hash.Hash)
		d.Reset()
		defer sha256s.Put(d)
		macs = append(macArr[:0], d)
	case signed.Scheme == providers.SchemeEd25519:
		head, tail = len(signed.Prefix), len(signed.Suffix)
		// the room is held like the body: a template of headers can
		// make it as large as the request's headers
		if !body.reserve(int64(head + tail)) {
			return -1, nil, h.bodyError(w, r, ErrOverBudget)
		}
	}
	for _, m := range macs {
		if m != nil {
			m.Write(signed.Prefix)
		}
	}
	if r.ContentLength != 0 && src != nil {
		var whole []byte
		err := h.readTimed(w, func() (err error) {
			whole, err = readBodyRoom(src, h.MaxBodySize, r.ContentLength, head, tail, macs)
			return err
		})
		if whole != nil {
			body.hold(whole, head)
		}
		if err != nil {
			return -1, nil, h.bodyError(w, r, err)
		}
	} else {
		body.hold(getBuf(head + tail)[:head], head)
	}
	if mode == readOnly {
		return -1, errNotChecked, nil
	}
	for _, m := range macs {
		if m != nil {
			m.Write(signed.Suffix)
		}
	}
	var msg []byte // Prefix‖body‖Suffix, for Ed25519
	if signed.Scheme == providers.SchemeEd25519 {
		msg = body.whole[:head+len(body.buf)+tail]
		copy(msg, signed.Prefix)
		copy(msg[head+len(body.buf):], signed.Suffix)
	}
	key, err = h.keys.verify(signed, macs, msg, now)
	if err == nil {
		return key, nil, nil
	}
	if signed.Scheme != providers.SchemeHMAC || mode == readProbe {
		return -1, err, nil
	}
	// the provider's alternate signed form, if any (Vev's
	// stringify_fallback): signed_form.go
	key, err = h.verifyAlternate(r, signed, body, err, now)
	if errors.Is(err, ErrOverBudget) {
		return -1, nil, h.refuseAlternate(w, r, err)
	}
	return key, err, nil
}

// handOver makes r the verified request: its body the buffered bytes, with
// their Content-Length, no Expect and no trailers (nothing unsigned reaches
// the backend), and the {http.webhook.*} placeholders. From here on the
// request's context owns body and releases it when the request is over.
func (h *Handler) handOver(r *http.Request, body *verifiedBody) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	n := len(body.buf)
	declared := r.ContentLength == int64(n)
	body.header = r.Header.Clone()
	if h.eagerFields {
		body.field(0) // before the release can run: the hand-over needs the id
	}
	r.Body, _ = body.reader()
	r.GetBody = body.reader
	r.ContentLength = int64(n)
	r.TransferEncoding = nil
	r.Trailer = nil
	r.Header.Del("Expect") // the body is here: the upstream need not ask for it
	r.Header.Del("Trailer")
	if cl := r.Header["Content-Length"]; !declared || len(cl) != 1 || cl[0] != strconv.Itoa(n) {
		r.Header.Set("Content-Length", strconv.Itoa(n))
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(body.placeholder)

	// from here on the request's context owns the body
	body.handed = true
	context.AfterFunc(r.Context(), body.release)
}

// deliver hands a verified request over, in the way chosen at provision:
// stored for delivery by the gateway (queue), to the next handler once per
// event id (dedupe), or to the next handler at once.
//
// A request that failed a check and goes on because enforce is off (it
// was counted by report) is queued under an id of its own, never its
// event's, and bypasses dedupe: a forged body must not take the id of the
// genuine event that may follow.
func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, body *verifiedBody) error {
	if h.Queue != nil {
		return h.serveQueue(w, r, body)
	}
	if body.failed != nil {
		if h.Dedupe != nil {
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			repl.Set(placeholderPrefix+"duplicate", "false")
		}
		return next.ServeHTTP(w, r)
	}
	if h.Dedupe != nil {
		return h.serveDedupe(w, r, next, body.field(h.idIndex))
	}
	h.metrics.count(outcomeVerified)
	return next.ServeHTTP(w, r)
}

// closeUnread asks for the connection to be closed after a refusal that
// leaves a body unread, declared or chunked. Otherwise net/http would read
// up to 256 KiB of it to reuse the connection, and a client that sent
// "Expect: 100-continue" would wait, with no 100 and no answer, until the
// server's idle timeout. (Caddy hands net/http's request body to its idle
// reader in place, which hides net/http's own expectContinueReader.)
//
// HTTP/1 only: on HTTP/2 the header would close the sender's whole
// multiplexed connection, and the stream is reset by itself.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// reserve takes n bytes from max_inflight_bytes, if they are left.
func (h *Handler) reserve(n int64) bool {
	if h.inflight.Add(n) > h.MaxInflightBytes {
		h.inflight.Add(-n)
		return false
	}
	h.metrics.buffered.Add(float64(n))
	return true
}

func (h *Handler) unreserve(n int64) {
	if n != 0 {
		h.inflight.Add(-n)
		h.metrics.buffered.Sub(float64(n))
	}
}

// bodyError answers a failure to read the body, which is left unread:
// 413 past the limit, 503 over the memory budget, 408 past body_timeout, a
// HandlerError from an earlier handler as it is, else 400.
func (h *Handler) bodyError(w http.ResponseWriter, r *http.Request, err error) error {
	closeUnread(w, r)
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return h.refuse(r, caddyhttp.Error(http.StatusRequestEntityTooLarge, ErrBodyTooLarge))
	case errors.Is(err, ErrOverBudget):
		w.Header().Set("Retry-After", retryAfter503)
		return h.refuse(r, caddyhttp.Error(http.StatusServiceUnavailable, ErrOverBudget))
	case errors.Is(err, ErrBodyTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		// the detail goes to the log, not the client
		h.metrics.count(outcomeTimeout)
		h.log(r, http.StatusRequestTimeout, err)
		return caddyhttp.Error(http.StatusRequestTimeout, ErrBodyTimeout)
	}
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		h.metrics.count(outcomeReadError)
		h.log(r, he.StatusCode, err)
		return he
	}
	// the detail (addresses, the I/O error) goes to the log, not the client
	h.metrics.count(outcomeReadError)
	h.log(r, http.StatusBadRequest, err)
	return caddyhttp.Error(http.StatusBadRequest, ErrReadingBody)
}

// refuse counts and logs a refusal, built by caddyhttp.Error where it is
// decided (so that Caddy's error trace points there), and returns it.
func (h *Handler) refuse(r *http.Request, he caddyhttp.HandlerError) error {
	return h.refuseHint(r, he, "")
}

// outcomes maps each refusal's reason to its metrics outcome.
var outcomes = []struct {
	err     error
	outcome string
}{
	{ErrMethodNotAllowed, outcomeMethodNotAllowed},
	{ErrBadCredentials, outcomeBadCredentials},
	{ErrBodyTooLarge, outcomeTooLarge},
	{ErrOverBudget, outcomeOverBudget},
	{ErrBodyTimeout, outcomeTimeout},
	{ErrReadingBody, outcomeReadError},
	{ErrProviderHash, outcomeProviderError},
	{ErrProviderScheme, outcomeProviderError},
	{providers.ErrMissingSignature, outcomeMissingSignature},
	{providers.ErrMalformedSignature, outcomeMalformedSignature},
	{ErrNoMatchingSignature, outcomeBadSignature},
	{ErrNoID, outcomeMissingID},
	{ErrInFlight, outcomeInFlight},
	{dedupe.ErrStore, outcomeStoreError},
	{ErrQueueFull, outcomeQueueFull},
	{ErrQueueNoSpace, outcomeQueueNoSpace},
	{ErrQueueStore, outcomeStoreError},
	{ErrIDTooLong, outcomeMissingID},
}

// outcomeOf maps a refusal's reason to its metrics outcome. A provider's
// Parse error that wraps neither sentinel counts as a malformed signature.
func outcomeOf(reason error) string {
	for _, o := range outcomes {
		if errors.Is(reason, o.err) {
			return o.outcome
		}
	}
	return outcomeMalformedSignature
}

// log writes the one line of a refusal: provider, status, reason, and the
// client's address (client_ip as Caddy's access log has it, honouring
// trusted_proxies; remote_addr, the peer). Never a secret or the body.
func (h *Handler) log(r *http.Request, status int, reason error) {
	h.logHint(r, status, reason, "")
}

// logHint is log with a diagnostic hint (hints.go), when there is one.
func (h *Handler) logHint(r *http.Request, status int, reason error, hint string) {
	level := zapcore.InfoLevel
	if status >= 500 && !errors.Is(reason, ErrOverBudget) {
		level = zapcore.ErrorLevel
	}
	c := h.logger.Check(level, "webhook rejected")
	if c == nil {
		return
	}
	fields := make([]zap.Field, 0, 6)
	fields = append(fields, zap.String("provider", h.name), zap.Int("status", status), zap.String("reason", reason.Error()))
	if hint != "" {
		fields = append(fields, zap.String("hint", hint))
	}
	c.Write(append(fields, zap.String("client_ip", clientIP(r)), zap.String("remote_addr", r.RemoteAddr))...)
}

// clientIP is the client's address as Caddy determined it for this
// request (the peer, or the forwarded client behind trusted_proxies).
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}
