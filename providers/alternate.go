package providers

import (
	"errors"
	"io"
	"net/http"
)

// AlternateForm is implemented by senders whose signature may cover a text
// other than the raw body: a form that the sender's own receiver computes
// from the body, such as Vev's Node receiver, which verifies the HMAC of
// JSON.stringify(JSON.parse(body)) (Vev's stringify_fallback option).
//
// The handler calls SignedText only after the raw body's MAC matched none
// of the request's signatures, with the whole body as read. SignedText
// returns the alternate text, writing it to opt.MAC as it produces it (the
// MAC has the Signed.Prefix written already), and the form's name, the
// value of {http.webhook.signed_form}. The request is verified when that
// MAC matches; then the text, not the raw body, is what the gateway
// forwards (or stores), so that the backend receives exactly the bytes that
// were signed.
//
// An error means the request has no alternate form (the option is off, its
// headers or body rule it out, or the text equals the raw body, whose MAC
// failed already): the request is refused. ErrAlternateBudget means the
// handler's memory budget ran out (opt.Alloc returned nil or opt.Reserve
// false). With opt.Match, ErrAlternateNoMatch means the form was computed
// and its MAC did not match; form is set then.
type AlternateForm interface {
	SignedText(h http.Header, body []byte, opt TextOptions) (text []byte, form string, err error)
}

// Signed forms: the values of {http.webhook.signed_form}.
const (
	SignedFormRaw       = "raw"
	SignedFormStringify = "stringify"
)

// Errors of SignedText.
var (
	// ErrNoAlternate: the sender has no alternate form configured.
	ErrNoAlternate = errors.New("no alternate form")
	// ErrSameText: the alternate text is the raw body, whose MAC failed.
	ErrSameText = errors.New("the body is in that form already")
	// ErrAlternateBudget: TextOptions.Alloc refused a buffer or
	// TextOptions.Reserve refused working memory.
	ErrAlternateBudget = ErrStringifyBudget
	// ErrAlternateNoMatch: TextOptions.Match said the form's MAC did not
	// match.
	ErrAlternateNoMatch = ErrStringifyNoMatch
)

// ResettableWriter is a MAC that an alternate form is written to: Reset
// brings it back to its state before the first Write (keyed, with any
// Signed.Prefix written).
type ResettableWriter interface {
	io.Writer
	Reset()
}

// TextOptions says where an alternate text goes. The zero value builds it
// with make and feeds no MAC.
type TextOptions struct {
	// MAC, if not nil, is fed the text as it is produced, starting at the
	// first byte that differs from the body. When the text equals the body
	// nothing at all is written to it.
	MAC ResettableWriter

	// Match, if not nil (with MAC), is called once the whole text has been
	// written to MAC, unless the text equals the body; it finishes the MAC
	// and reports whether it matched. The text is then built only when it
	// did: a first pass writes the text to MAC without building it (no
	// text buffer for a forgery), a second one builds it, with nothing
	// more written to MAC. When Match returns false, no text is returned
	// and the error is ErrAlternateNoMatch. (A body whose objects must be
	// reordered, or one with a key the transform changes, is built in the
	// first pass, as without Match; only the time differs.)
	Match func() bool

	// Alloc, if not nil, returns an empty buffer with room for at least n
	// bytes, or nil when no memory budget is left; Free takes back a
	// buffer Alloc returned that is no longer used. The returned text is
	// in a buffer from Alloc.
	Alloc func(n int) []byte
	Free  func([]byte)

	// Reserve, if not nil, takes n bytes of working memory (the records
	// of the open objects' keys, key tables, reorder buffers: up to about
	// 60 bytes per key of the body's open objects) from the same budget,
	// or returns false when none is left (the text is then refused with
	// ErrAlternateBudget); Release gives back, once at the end, all that
	// Reserve took.
	Reserve func(n int) bool
	Release func(n int)

	// Limit, if positive, is the longest text accepted (Stringify never
	// accepts more than 2 GiB - 1, nor a body that long).
	Limit int
}
