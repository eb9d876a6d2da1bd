package webhookverify

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// verifiedBody owns one request's body: the pooled buffer it is read into
// and the bytes it holds under max_inflight_bytes, from the reservation on.
// ServeHTTP creates it before anything is reserved and releases it on
// every path (panics included) until it is handed over; from then on the
// request's context owns it, and releases it when the request is over,
// after the access log and handle_errors have read the placeholders.
//
// It also holds what the next handlers may read of the verified request:
// the bytes, a copy of the headers as they were verified, and the event
// fields (the placeholders), computed from those once, when first read.
type verifiedBody struct {
	h *Handler

	mu       sync.Mutex
	buf      []byte // the body, a slice of whole
	whole    []byte // the pooled buffer, with room around the body (Ed25519)
	reserved int64  // bytes held under max_inflight_bytes
	key      int    // the index of the configured key that verified it; -1: none
	released bool
	header   http.Header // as verified; later handlers may change r.Header
	vals     []string    // nil until a field is read
	form     string      // the signed form when not the raw body (signed_form.go)

	// with enforce off: the checks that failed, first first, and the
	// hint of the signature's failure (report.go); nil when verified
	failed []caddyhttp.HandlerError
	hint   string

	handed bool // the request's context releases it; request goroutine only
}

// reserve takes n more bytes under max_inflight_bytes, if they are left.
func (b *verifiedBody) reserve(n int64) bool {
	if !b.h.reserve(n) {
		return false
	}
	b.mu.Lock()
	b.reserved += n
	b.mu.Unlock()
	return true
}

// release gives the buffer back to its pool and the reservation back to
// the budget. It is idempotent.
func (b *verifiedBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return
	}
	b.released = true
	if b.whole != nil {
		putBuf(b.whole)
		b.whole, b.buf = nil, nil
	}
	b.h.unreserve(b.reserved)
	b.reserved = 0
}

// hold makes the body whole[head:], the rest of whole being room around
// it. The body's capacity ends with it, so nothing can be appended over
// what follows.
func (b *verifiedBody) hold(whole []byte, head int) {
	b.mu.Lock()
	b.whole = whole
	b.buf = whole[head:len(whole):len(whole)]
	b.mu.Unlock()
}

// releaseUnlessHanded is deferred by ServeHTTP: a request refused, or a
// handler that panicked, before the hand-over gives everything back now.
func (b *verifiedBody) releaseUnlessHanded() {
	if !b.handed {
		b.release()
	}
}

// reader returns a new reader over the whole body: r.Body, and r.GetBody
// for a transport that replays the request on a fresh connection.
func (b *verifiedBody) reader() (io.ReadCloser, error) {
	return &bodyReader{b: b}, nil
}

// bytes returns the verified bytes; valid until the request is over.
func (b *verifiedBody) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf
}

// bodyReader reads a verifiedBody from the start.
type bodyReader struct {
	b   *verifiedBody
	off int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.b.released {
		return 0, errBodyReleased
	}
	if r.off >= len(r.b.buf) {
		return 0, io.EOF
	}
	n := copy(p, r.b.buf[r.off:])
	r.off += n
	return n, nil
}

// Close does nothing: the buffer outlives the body's readers, for the
// placeholders, and is released with the request.
func (r *bodyReader) Close() error { return nil }

var errBodyReleased = errors.New("webhook body read after the request ended")

// placeholder is a caddy.ReplacerFunc for the {http.webhook.<field>}
// placeholders: the body is scanned the first time one is read.
func (b *verifiedBody) placeholder(key string) (any, bool) {
	if !strings.HasPrefix(key, placeholderPrefix) {
		return nil, false
	}
	if key == placeholderPrefix+"provider" {
		return b.h.name, true
	}
	switch key {
	case placeholderPrefix + "signed_form":
		return b.signedForm(), true
	case placeholderPrefix + "verified":
		return b.verified(), true
	case placeholderPrefix + "key":
		return b.keyPlaceholder(), true
	}
	for i, f := range b.h.fields {
		if f == key {
			return b.field(i), true
		}
	}
	return nil, false
}

// field returns the value of the provider's i-th field, scanning the body
// the first time a field is asked for. After the release every field is
// empty, unless one was read before.
func (b *verifiedBody) field(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.vals == nil {
		b.vals = make([]string, len(b.h.fields))
		if !b.released {
			b.h.provider.Describe(b.header, b.buf, b.vals)
		}
	}
	return b.vals[i]
}

// budgetReader reserves a chunked body's bytes as they are read.
type budgetReader struct {
	r io.Reader
	b *verifiedBody
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 && !br.b.reserve(int64(n)) {
		return 0, ErrOverBudget
	}
	return n, err
}

// Body deadlines.
//
// A body read (the verified read, and the drain of an unsigned chunked
// body) runs under body_timeout: when it fires, the read deadline of the
// request's stream (HTTP/2, HTTP/3) or connection (HTTP/1) is moved to now,
// through Caddy's response writer, and the blocked read fails.

// stopper is the part of *time.Timer a bodyDeadline uses.
type stopper interface{ Stop() bool }

// bodyTimerHook, when set (tests only), replaces time.AfterFunc for body
// deadlines, so that a test can fire one at the moment it chooses.
var bodyTimerHook atomic.Pointer[func(d time.Duration, f func()) stopper]

// bodyDeadline is one armed body_timeout. Its callback and finish are
// serialised by mu: once finish has returned, the callback never touches
// the connection (which may be serving the next request on it by then);
// if the callback ran first, finish reports it, and the request is
// answered 408 whatever the read returned, on a connection that is then
// closed.
type bodyDeadline struct {
	mu       sync.Mutex
	finished bool
	fired    bool
	w        http.ResponseWriter
	t        stopper
}

// armDeadline starts body_timeout for a body read on w's request.
func (h *Handler) armDeadline(w http.ResponseWriter) *bodyDeadline {
	d := &bodyDeadline{w: w}
	timeout := time.Duration(h.BodyTimeout)
	if hook := bodyTimerHook.Load(); hook != nil {
		d.t = (*hook)(timeout, d.fire)
	} else {
		d.t = time.AfterFunc(timeout, d.fire)
	}
	return d
}

func (d *bodyDeadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	d.fired = true
	_ = http.NewResponseController(d.w).SetReadDeadline(time.Now())
}

// finish disarms the deadline and reports whether it fired.
func (d *bodyDeadline) finish() bool {
	d.t.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.finished = true
	return d.fired
}

// readTimed reads the body under body_timeout: err is ErrBodyTimeout if the
// deadline fired, whatever the read returned.
func (h *Handler) readTimed(w http.ResponseWriter, read func() error) error {
	d := h.armDeadline(w)
	err := read()
	if d.finish() {
		return fmt.Errorf("%w: %w", ErrBodyTimeout, errOrDeadline(err))
	}
	return err
}

func errOrDeadline(err error) error {
	if err == nil {
		return errors.New("the deadline fired as the read completed")
	}
	return err
}

// readBody reads r to EOF into a pooled buffer, feeding every MAC with the
// bytes as they arrive: one pass over the body. It reads at most limit
// bytes and returns ErrBodyTooLarge past that; sizeHint is the declared
// Content-Length, or -1. The caller owns the returned buffer (putBuf).
func readBody(r io.Reader, limit, sizeHint int64, macs []hash.Hash) ([]byte, error) {
	return readBodyRoom(r, limit, sizeHint, 0, 0, macs)
}

// readBodyRoom is readBody into a buffer with head bytes of room before the
// body and at least tail bytes of spare capacity after it, so that a
// signature over Prefix‖body‖Suffix (Ed25519) is checked over one slice,
// without a second copy of the body. The returned buffer holds the head
// room (unwritten) then the body: the body is buf[head:], and
// buf[:len(buf)+tail] is within its capacity. The room is not part of
// limit. With no room it is the caller's buffer for putBuf as it is; with
// room too, as putBuf takes any slice of a pooled buffer that starts at
// its first byte.
func readBodyRoom(r io.Reader, limit, sizeHint int64, head, tail int, macs []hash.Hash) ([]byte, error) {
	room := int64(head + tail)
	var buf []byte
	switch {
	case sizeHint > 1<<maxClassShift && sizeHint <= limit:
		// a declared length past the largest class is allocated
		// exactly: it is already reserved under max_inflight_bytes, and
		// growing by doubling would hold up to three times as much
		buf = make([]byte, 0, sizeHint+room)
	case sizeHint >= 0 && sizeHint <= limit:
		// a declared length is allocated up front, rounded up to its class
		buf = getBuf(int(sizeHint + room))
	default:
		// a chunked body grows as it arrives
		buf = getBuf(32<<10 + int(room))
	}
	buf = buf[:head]
	for {
		var space []byte
		var probe *[1]byte
		if end := cap(buf) - tail; len(buf) == end {
			// full: probe for EOF before growing, so a body that
			// exactly fills its buffer (a declared length) never grows
			probe = probes.Get().(*[1]byte)
			space = probe[:]
		} else {
			space = buf[len(buf):end]
			if left := limit + 1 - int64(len(buf)-head); int64(len(space)) > left {
				space = space[:left]
			}
		}
		n, err := r.Read(space)
		if probe != nil {
			if n > 0 {
				// past the largest class, never more than the limit
				// needs (limit+1 bytes tell a body over it)
				nb := getBuf(int(min(2*int64(cap(buf)), int64(head)+limit+1+int64(tail))))
				nb = append(nb, buf...)
				putBuf(buf)
				buf = append(nb, space[:n]...)
			}
			probes.Put(probe)
		} else {
			buf = buf[:len(buf)+n]
		}
		if n > 0 {
			chunk := buf[len(buf)-n:]
			for _, m := range macs {
				if m != nil { // nil: an expired key
					m.Write(chunk)
				}
			}
			if int64(len(buf)-head) > limit {
				putBuf(buf)
				return nil, ErrBodyTooLarge
			}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			putBuf(buf)
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return nil, ErrBodyTooLarge
			}
			return nil, fmt.Errorf("%w: %w", ErrReadingBody, err)
		}
	}
}

// drainBody reads and discards r up to limit+1 bytes, for a request already
// known to be refused whose size still decides between 413 and 401.
func drainBody(r io.Reader, limit int64) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, limit+1))
	if n > limit {
		return ErrBodyTooLarge
	}
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return ErrBodyTooLarge
		}
		return fmt.Errorf("%w: %w", ErrReadingBody, err)
	}
	return nil
}
