package providers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The JSON.stringify form.
//
// Stringify produces exactly the bytes Node (V8) produces for
//
//	Buffer.from(JSON.stringify(JSON.parse(text)), "utf8")
//
// where text is the body decoded as body-parser's json() decodes it: one
// leading UTF-8 BOM stripped, invalid UTF-8 replaced by U+FFFD per maximal
// subpart (the WHATWG decoder), and the first character after JSON white
// space required to be '{' or '['. That is the text Vev's documented Node
// receiver hashes. In one pass over the body it:
//
//   - drops white space outside strings;
//   - re-escapes strings as QuoteJSONString does: only '"', '\', U+0000 to
//     U+001F (the short escapes, else \u00xx in lower case) and lone
//     surrogates (\udxxx, lower case) are escaped; "\/", "\u003c", a valid
//     escaped surrogate pair and every other escape become the character;
//   - prints numbers as Number::toString does (shortest round trip, fixed
//     notation for 1e-6 <= |x| < 1e21, else "1e+21"-style exponents; -0 is
//     0; an overflow is null);
//   - puts an object's array-index keys ("0" to "4294967294" in canonical
//     form) first in numeric order, then the others in order of first
//     appearance; a repeated key keeps its first position and its last value.
//
// The output is built in a buffer and, when a MAC is given, written to it as
// it is produced; nothing is written before the first byte that differs from
// the body (a body already in stringify form costs a scan and no hashing).
// An object whose keys are not already in that order is rewritten in the
// buffer when it closes; the bytes from its start are held back from the MAC
// until then (or, if they were written already, the MAC is reset and fed the
// whole text at the end: at most twice the text's length is hashed).
// With TextOptions.Match, a first pass only writes the text to the MAC,
// and the text is built only if it matched (see "The MAC alone" below).
//
// Besides the text, it keeps a 16-byte record of each member of the open
// objects, a hash table of the keys of an object past 8 keys (no key is
// copied) and, for an object it reorders, the new order and the object's
// text: all of it charged to opt.Reserve as it grows and given back at the
// end. An object may have at most StringifyMaxKeys members.

// StringifyMaxDepth is the deepest nesting of objects and arrays Stringify
// accepts. V8's JSON.stringify itself throws beyond about 4,000 levels (the
// exact figure depends on the stack); a body nested deeper than this cap is
// refused, which fails closed.
const StringifyMaxDepth = 1000

// StringifyMaxKeys is the most members (repeated keys included) one object
// may have. Stringify keeps a record of each member of the open objects;
// an object with more members is refused (fails closed), as one nested
// too deeply is.
const StringifyMaxKeys = 1 << 16

// Errors of Stringify.
var (
	// ErrStringifySyntax: the body is not text that JSON.parse accepts (or
	// its first character is not '{' or '['), so Vev's receiver refuses it.
	ErrStringifySyntax = errors.New("body is not a JSON object or array JSON.parse accepts")
	// ErrStringifyDepth: nested deeper than StringifyMaxDepth.
	ErrStringifyDepth = errors.New("JSON nested too deeply")
	// ErrStringifyKeys: an object with more than StringifyMaxKeys members.
	ErrStringifyKeys = errors.New("JSON object with too many keys")
	// ErrStringifyTooLarge: the text would exceed TextOptions.Limit.
	ErrStringifyTooLarge = errors.New("the text is over the size limit")
	// ErrStringifyBudget: TextOptions.Alloc refused a buffer, or
	// TextOptions.Reserve refused working memory.
	ErrStringifyBudget = errors.New("no memory budget left for the stringify form")
	// ErrStringifyNoMatch: TextOptions.Match said the MAC did not match
	// (no text is returned).
	ErrStringifyNoMatch = errors.New("the MAC of the stringify form does not match")
)

// Stringify returns JSON.stringify(JSON.parse(body)) as Node produces it
// (see above). same reports that the text equals body: then text is body
// itself (no copy is made) and nothing was written to opt.MAC. With
// opt.Match (and opt.MAC), the text is built only when Match reported a
// match; else the error is ErrStringifyNoMatch.
func Stringify(body []byte, opt TextOptions) (text []byte, same bool, err error) {
	// output offsets are kept in int32s
	if len(body) > math.MaxInt32 {
		return nil, false, ErrStringifyTooLarge
	}
	if opt.Limit <= 0 || opt.Limit > math.MaxInt32 {
		opt.Limit = math.MaxInt32
	}
	if opt.MAC == nil || opt.Match == nil {
		return build(body, opt)
	}
	// first the MAC alone; the text only if it matched
	same, err = hashOnly(body, opt)
	switch {
	case errors.Is(err, errRebuild):
		opt.MAC.Reset()
		if text, same, err = build(body, opt); err != nil || same {
			return text, same, err
		}
		if !opt.Match() {
			if opt.Free != nil {
				opt.Free(text)
			}
			return nil, false, ErrStringifyNoMatch
		}
		return text, false, nil
	case err != nil:
		return nil, false, err
	case same:
		return body, true, nil
	case !opt.Match():
		return nil, false, ErrStringifyNoMatch
	}
	opt.MAC = nil
	return build(body, opt)
}

// build makes the text in a buffer (Stringify without Match).
func build(body []byte, opt TextOptions) (text []byte, same bool, err error) {
	s := &stringifier{raw: body, opt: opt, clean: true, hold: -1}
	s.frames, s.members = s.frameBuf[:0], s.memberBuf[:0]
	err = s.run()
	if s.charged > 0 && opt.Release != nil {
		opt.Release(s.charged)
	}
	if err != nil {
		if s.out != nil && opt.Free != nil {
			opt.Free(s.out)
		}
		return nil, false, err
	}
	if s.clean {
		return body, true, nil
	}
	if opt.MAC != nil {
		if s.restart {
			opt.MAC.Reset()
			s.fed = 0
		}
		opt.MAC.Write(s.out[s.fed:])
	}
	return s.out, false, nil
}

// The MAC alone.
//
// With a Match, the text is first only written to the MAC, never built:
// the spans of the body it keeps are written from the body itself (short
// ones, and the bytes that replace others, gathered in a small staging
// buffer first), so a forgery costs the scan and the MAC but no text
// buffer. Member keys are then read from the body (their output offsets
// are their body offsets). An object whose keys must be reordered, or a
// key whose text is not its bytes in the body (an escape or invalid UTF-8
// changed), needs the text: the first pass gives up (errRebuild) and the
// text is built with the MAC fed, as without Match.

// errRebuild: the MAC alone cannot do this body.
var errRebuild = errors.New("rebuild")

// stageSize is the staging buffer of the MAC alone (charged as working
// memory; no larger than the body); spans of at least stageDirect bytes
// are written to the MAC from the body directly. (Variables for the
// tests.)
var (
	stageSize   = 8 << 10
	stageDirect = 1 << 10
)

// hashOnly writes the text to opt.MAC without building it. same reports
// that the text equals body (nothing was written).
func hashOnly(body []byte, opt TextOptions) (same bool, err error) {
	s := &stringifier{raw: body, opt: opt, clean: true, hold: -1, hash: true}
	s.frames, s.members = s.frameBuf[:0], s.memberBuf[:0]
	err = s.run()
	if s.charged > 0 && opt.Release != nil {
		opt.Release(s.charged)
	}
	if err != nil {
		return false, err
	}
	return s.clean, nil
}

// hchange is change for the MAC alone: the span before i and repl are
// written, raw[i:next] is skipped.
func (s *stringifier) hchange(i, next int, repl []byte) error {
	s.clean = false
	s.nchange++
	if err := s.emit(s.raw[s.cp:i]); err != nil {
		return err
	}
	if err := s.stageCopy(repl); err != nil {
		return err
	}
	s.cp = next
	return nil
}

// emit writes p, the next bytes of the text from the body, to the MAC:
// directly when it is long, else through the staging buffer.
func (s *stringifier) emit(p []byte) error {
	if len(p) < stageDirect {
		return s.stageCopy(p)
	}
	s.olen += len(p)
	if s.olen > s.opt.Limit {
		return ErrStringifyTooLarge
	}
	s.writeStage()
	s.opt.MAC.Write(p)
	return nil
}

// stageCopy copies p, the next bytes of the text, into the staging
// buffer. (p itself never reaches the MAC, an interface: the callers'
// replacement bytes stay on their stacks.)
func (s *stringifier) stageCopy(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.olen += len(p)
	if s.olen > s.opt.Limit {
		return ErrStringifyTooLarge
	}
	if n := len(s.stage); n+len(p) <= cap(s.stage) { // the common case
		s.stage = s.stage[:n+len(p)]
		copy(s.stage[n:], p)
		return nil
	}
	if s.stage == nil {
		size := min(stageSize, len(s.raw)) // not more than the text would take
		if err := s.charge(size); err != nil {
			return err
		}
		s.stage = make([]byte, 0, size)
	}
	for len(p) > 0 {
		if len(s.stage) == cap(s.stage) {
			s.writeStage()
		}
		k := copy(s.stage[len(s.stage):cap(s.stage)], p)
		s.stage, p = s.stage[:len(s.stage)+k], p[k:]
	}
	return nil
}

func (s *stringifier) writeStage() {
	if len(s.stage) > 0 {
		s.opt.MAC.Write(s.stage)
		s.stage = s.stage[:0]
	}
}

type stringifier struct {
	raw []byte
	opt TextOptions

	// The output is out followed by the pending span raw[cp:i] of bytes
	// copied unchanged. While clean, nothing has changed yet: out is empty
	// and cp is 0, so the output so far is raw[:i]. In both states the
	// output offset of raw position i is len(out)+i-cp.
	clean bool
	cp    int
	out   []byte

	// The MAC alone (hash): the text is not built, only written to the
	// MAC (hashOnly); output offsets are body offsets.
	hash    bool
	nchange int    // changes made so far
	olen    int    // bytes of text written
	stage   []byte // the short bytes not yet written to the MAC

	fed     int  // bytes of out written to the MAC
	hold    int  // out from here on may still be reordered (-1: none)
	badOpen int  // open objects to be reordered at their close
	restart bool // out was fed past a reordered object: rehash at the end

	// Working memory, charged to opt.Reserve as it grows (charged bytes,
	// given back to opt.Release at the end).
	charged int
	frames  []frame
	members []member
	scratch []byte
	order   []int32
	tabs    [][]uint64 // key tables, one per depth (see "Key tables")
	spare   []uint64   // the table regrow moves entries into

	// the first frames and members, not charged (a small fixed cost)
	frameBuf  [8]frame
	memberBuf [32]member
}

// frame is an open object or array.
type frame struct {
	obj       bool
	start     int   // output offset of its '{'
	mbase     int   // its first entry in members
	lastIndex int64 // the last array-index key, -1 before one
	seenPlain bool  // a key that is not an array index came
	bad       bool  // keys out of JS order or repeated: reorder at close
	tabbed    bool  // its plain keys are in the key table of its depth
	plain     int   // its plain keys (while tabbed)
}

// member is an object member's place in the output.
type member struct {
	keyStart, keyEnd, valEnd int32
	index                    uint32 // the key's array index, or noIndex
}

// noIndex is member.index for a plain key (4294967295 is no array index).
const noIndex = math.MaxUint32

// charge takes n more bytes of working memory under opt.Reserve.
func (s *stringifier) charge(n int) error {
	if s.opt.Reserve != nil && !s.opt.Reserve(n) {
		return ErrStringifyBudget
	}
	s.charged += n
	return nil
}

// grow returns sl with room for n more elements. The new array is charged
// whole: the one it replaces stays charged, as garbage not yet collected
// (doubling, that is at most twice what is in use).
func grow[T any](s *stringifier, sl []T, n int) ([]T, error) {
	if len(sl)+n <= cap(sl) {
		return sl, nil
	}
	nc := max(2*cap(sl), len(sl)+n, 16)
	if err := s.charge(nc * int(unsafe.Sizeof(*new(T)))); err != nil {
		return nil, err
	}
	ns := make([]T, len(sl), nc)
	copy(ns, sl)
	return ns, nil
}

// feedChunk is how much text is hashed at once (a variable for the tests).
var feedChunk = 64 << 10

func (s *stringifier) opos(i int) int {
	if s.hash {
		return i
	}
	return len(s.out) + i - s.cp
}

// need makes room for n more bytes in out.
func (s *stringifier) need(n int) error {
	total := len(s.out) + n
	if s.opt.Limit > 0 && total > s.opt.Limit {
		return ErrStringifyTooLarge
	}
	if total <= cap(s.out) {
		return nil
	}
	want := max(total, 2*cap(s.out), len(s.raw))
	if s.opt.Limit > 0 {
		want = min(want, s.opt.Limit)
	}
	var nb []byte
	if s.opt.Alloc != nil {
		if nb = s.opt.Alloc(want); nb == nil {
			return ErrStringifyBudget
		}
	} else {
		nb = make([]byte, 0, want)
	}
	nb = append(nb, s.out...)
	if s.out != nil && s.opt.Free != nil {
		s.opt.Free(s.out)
	}
	s.out = nb
	return nil
}

// dirty leaves the clean state: the output so far, raw[:i], is copied out.
func (s *stringifier) dirty(i int) error {
	if !s.clean {
		return nil
	}
	s.clean = false
	if err := s.need(i); err != nil {
		return err
	}
	s.out = append(s.out, s.raw[:i]...)
	s.cp = i
	return nil
}

// flush moves the pending span raw[cp:i] into out, a chunk at a time, each
// hashed while it is in the cache.
func (s *stringifier) flush(i int) error {
	if s.clean {
		return nil
	}
	if s.hash {
		// only at the end
		if err := s.emit(s.raw[s.cp:i]); err != nil {
			return err
		}
		s.cp = i
		s.writeStage()
		return nil
	}
	if err := s.need(i - s.cp); err != nil {
		return err
	}
	for s.cp < i {
		j := min(i, s.cp+feedChunk)
		s.out = append(s.out, s.raw[s.cp:j]...)
		s.cp = j
		s.feed()
	}
	return nil
}

// change replaces raw[i:next] with repl in the output.
func (s *stringifier) change(i, next int, repl []byte) error {
	if s.hash {
		return s.hchange(i, next, repl)
	}
	if s.clean {
		if err := s.dirty(i); err != nil {
			return err
		}
	} else if span := i - s.cp; span > 0 {
		if span > feedChunk {
			if err := s.flush(i); err != nil {
				return err
			}
		} else {
			// the common case: a short span, then the replacement
			if err := s.need(span + len(repl)); err != nil {
				return err
			}
			s.out = append(s.out, s.raw[s.cp:i]...)
		}
	}
	if err := s.need(len(repl)); err != nil {
		return err
	}
	s.out = append(s.out, repl...)
	s.cp = next
	if s.opt.MAC != nil {
		s.feed()
	}
	return nil
}

// feed writes to the MAC what of out is final, in chunks.
func (s *stringifier) feed() {
	if s.opt.MAC == nil || s.restart {
		return
	}
	end := len(s.out)
	if s.hold >= 0 && s.hold < end {
		end = s.hold
	}
	if end-s.fed >= feedChunk {
		s.opt.MAC.Write(s.out[s.fed:end])
		s.fed = end
	}
}

// view returns the output bytes [a, b), b being at most opos(i).
func (s *stringifier) view(a, b, i int) ([]byte, error) {
	if s.clean || s.hash {
		return s.raw[a:b], nil
	}
	if b > len(s.out) {
		if err := s.flush(i); err != nil {
			return nil, err
		}
	}
	return s.out[a:b], nil
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ws skips JSON white space from i, dropping it from the output.
func (s *stringifier) ws(i int) (int, error) {
	j := i
	for j < len(s.raw) && isWS(s.raw[j]) {
		j++
	}
	if j > i {
		if err := s.change(i, j, nil); err != nil {
			return 0, err
		}
	}
	return j, nil
}

func (s *stringifier) run() error {
	raw := s.raw
	i := 0
	if len(raw) >= 3 && raw[0] == 0xEF && raw[1] == 0xBB && raw[2] == 0xBF {
		if err := s.change(0, 3, nil); err != nil {
			return err
		}
		i = 3
	}
	i, err := s.ws(i)
	if err != nil {
		return err
	}
	if i >= len(raw) || (raw[i] != '{' && raw[i] != '[') {
		return ErrStringifySyntax
	}
	if i, err = s.document(i); err != nil {
		return err
	}
	if i, err = s.ws(i); err != nil {
		return err
	}
	if i != len(raw) {
		return ErrStringifySyntax
	}
	return s.flush(i)
}

// document transforms the value at i, an object or an array, and returns
// the offset after it. It keeps its own stack: no recursion.
func (s *stringifier) document(i int) (int, error) {
	raw := s.raw
	var err error
value:
	if i >= len(raw) {
		return 0, ErrStringifySyntax
	}
	switch c := raw[i]; {
	case c == '{' || c == '[':
		if len(s.frames) >= StringifyMaxDepth {
			return 0, ErrStringifyDepth
		}
		if len(s.frames) == cap(s.frames) {
			if s.frames, err = grow(s, s.frames, 1); err != nil {
				return 0, err
			}
		}
		s.frames = append(s.frames, frame{obj: c == '{', start: s.opos(i), mbase: len(s.members), lastIndex: -1})
		if i, err = s.ws(i + 1); err != nil {
			return 0, err
		}
		if i < len(raw) && raw[i] == c+2 { // '{'+2 == '}', '['+2 == ']'
			s.frames = s.frames[:len(s.frames)-1]
			i++
			goto after
		}
		if c == '{' {
			goto key
		}
		goto value
	case c == '"':
		if i, err = s.str(i); err != nil {
			return 0, err
		}
	case c == '-' || ('0' <= c && c <= '9'):
		if i, err = s.num(i); err != nil {
			return 0, err
		}
	case c == 't':
		i, err = literal(raw, i, "true")
	case c == 'f':
		i, err = literal(raw, i, "false")
	case c == 'n':
		i, err = literal(raw, i, "null")
	default:
		return 0, ErrStringifySyntax
	}
	if err != nil {
		return 0, err
	}

after:
	if len(s.frames) == 0 {
		return i, nil
	}
	{
		f := &s.frames[len(s.frames)-1]
		if f.obj {
			s.members[len(s.members)-1].valEnd = int32(s.opos(i))
		}
		if i, err = s.ws(i); err != nil {
			return 0, err
		}
		if i >= len(raw) {
			return 0, ErrStringifySyntax
		}
		switch raw[i] {
		case ',':
			if i, err = s.ws(i + 1); err != nil {
				return 0, err
			}
			if f.obj {
				goto key
			}
			goto value
		case '}', ']':
			if (raw[i] == '}') != f.obj {
				return 0, ErrStringifySyntax
			}
			i++
			if f.obj && f.bad {
				if err = s.reorder(f, i); err != nil {
					return 0, err
				}
			}
			if f.obj {
				s.members = s.members[:f.mbase]
			}
			s.frames = s.frames[:len(s.frames)-1]
			goto after
		}
		return 0, ErrStringifySyntax
	}

key:
	if i >= len(raw) || raw[i] != '"' {
		return 0, ErrStringifySyntax
	}
	{
		ks, nc := s.opos(i), s.nchange
		if i, err = s.str(i); err != nil {
			return 0, err
		}
		if s.hash && s.nchange != nc {
			return 0, errRebuild // the key's text is not raw[ks:i]
		}
		ke := s.opos(i)
		if err = s.checkKey(ks, ke, i); err != nil {
			return 0, err
		}
		if i, err = s.ws(i); err != nil {
			return 0, err
		}
		if i >= len(raw) || raw[i] != ':' {
			return 0, ErrStringifySyntax
		}
		if i, err = s.ws(i + 1); err != nil {
			return 0, err
		}
	}
	goto value
}

func literal(raw []byte, i int, lit string) (int, error) {
	if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
		return 0, ErrStringifySyntax
	}
	return i + len(lit), nil
}

// arrayIndex reports whether the key (its output text, without quotes) is
// an array index: "0", or a canonical decimal up to 4294967294. Digits are
// never escaped in the output, so the output text is the decoded key.
func arrayIndex(k []byte) (int64, bool) {
	if len(k) == 0 || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return -1, false
	}
	var n int64
	for _, c := range k {
		if c < '0' || c > '9' {
			return -1, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > 4294967294 {
		return -1, false
	}
	return n, true
}

// checkKey records the member whose key is the output [ks, ke) and checks
// that the object's keys are still in JS order with no repeat. Two keys are
// the same property exactly when their output texts are equal (the escaping
// is a function of the decoded string, and one-to-one).
func (s *stringifier) checkKey(ks, ke, i int) error {
	f := &s.frames[len(s.frames)-1]
	if len(s.members)-f.mbase >= StringifyMaxKeys {
		return ErrStringifyKeys
	}
	if len(s.members) == cap(s.members) {
		var err error
		if s.members, err = grow(s, s.members, 1); err != nil {
			return err
		}
	}
	kb, err := s.view(ks, ke, i)
	if err != nil {
		return err
	}
	idx, isIdx := arrayIndex(kb[1 : len(kb)-1])
	if !f.bad {
		if isIdx {
			if f.seenPlain || idx <= f.lastIndex {
				if err := s.markBad(f); err != nil {
					return err
				}
			} else {
				f.lastIndex = idx
			}
		} else {
			f.seenPlain = true
			rep, err := s.repeated(f, kb, i)
			if err != nil {
				return err
			}
			if rep {
				if err := s.markBad(f); err != nil {
					return err
				}
			}
		}
	}
	m := member{keyStart: int32(ks), keyEnd: int32(ke), valEnd: -1, index: noIndex}
	if isIdx {
		m.index = uint32(idx)
	}
	s.members = append(s.members, m)
	return nil
}

const linearKeys = 8

// Key tables.
//
// A key table is an open-addressing hash table of the plain keys of one
// object, in a []uint64 of a power-of-two length at most half full. A slot
// is 0 (empty) or tag<<32 | v+1, where tag is the high half of the key's
// maphash (its low bits the first slot probed) and v says where the key is
// (a member's index in its object, or a place in reorder's order); a tag
// match is confirmed by comparing the key bytes. No key is copied: the
// table costs 8 to 32 bytes per key, charged as working memory. One table
// is kept per depth, its memory reused by the next object at that depth.

var keySeed = maphash.MakeSeed()

func keyTag(kb []byte) uint32 { return uint32(maphash.Bytes(keySeed, kb) >> 32) }

// table returns the key table of depth d, emptied, with room for n keys.
func (s *stringifier) table(d, n int) ([]uint64, error) {
	for len(s.tabs) <= d {
		var err error
		if s.tabs, err = grow(s, s.tabs, 1); err != nil {
			return nil, err
		}
		s.tabs = append(s.tabs, nil)
	}
	size := 32
	for size < 2*n {
		size *= 2
	}
	t := s.tabs[d]
	if cap(t) < size {
		var err error
		if t, err = grow(s, t[:0], size); err != nil {
			return nil, err
		}
	}
	t = t[:size]
	clear(t)
	s.tabs[d] = t
	return t, nil
}

// regrow doubles the key table of depth d, moving its entries (a slot's
// tag says where it goes) into the spare table, which becomes depth d's;
// the old one becomes the spare.
func (s *stringifier) regrow(d int) ([]uint64, error) {
	old := s.tabs[d]
	size := 2 * len(old)
	t := s.spare
	if cap(t) < size {
		var err error
		if t, err = grow(s, t[:0], size); err != nil {
			return nil, err
		}
	}
	t = t[:size]
	clear(t)
	mask := uint32(size - 1)
	for _, e := range old {
		if e != 0 {
			p := uint32(e>>32) & mask
			for t[p] != 0 {
				p = (p + 1) & mask
			}
			t[p] = e
		}
	}
	s.tabs[d], s.spare = t, old
	return t, nil
}

// tabInsert puts v under tag in t, which has room.
func tabInsert(t []uint64, tag uint32, v int) {
	mask := uint32(len(t) - 1)
	for p := tag & mask; ; p = (p + 1) & mask {
		if t[p] == 0 {
			t[p] = uint64(tag)<<32 | uint64(v+1)
			return
		}
	}
}

// repeated reports whether the plain key kb, the output up to raw offset
// i, came before in f (and records it). The members before it are in
// order, with no repeat. A key whose tag matches an earlier key's but
// whose bytes differ (a hash collision) is not a repeat.
func (s *stringifier) repeated(f *frame, kb []byte, i int) (bool, error) {
	ms := s.members[f.mbase:]
	if !f.tabbed && len(ms) < linearKeys {
		for _, m := range ms {
			if m.index == noIndex && int(m.keyEnd-m.keyStart) == len(kb) {
				prev, err := s.view(int(m.keyStart), int(m.keyEnd), i)
				if err != nil {
					return false, err
				}
				if bytes.Equal(prev, kb) {
					return true, nil
				}
			}
		}
		return false, nil
	}
	d := len(s.frames) - 1
	var t []uint64
	if f.tabbed {
		t = s.tabs[d]
	}
	if f.tabbed && 2*(f.plain+1) > len(t) {
		var err error
		if t, err = s.regrow(d); err != nil {
			return false, err
		}
	}
	if !f.tabbed {
		// build the table from the members
		var err error
		if t, err = s.table(d, f.plain+1); err != nil {
			return false, err
		}
		f.tabbed, f.plain = true, 0
		for k, m := range ms {
			if m.index == noIndex {
				prev, err := s.view(int(m.keyStart), int(m.keyEnd), i)
				if err != nil {
					return false, err
				}
				tabInsert(t, keyTag(prev), k)
				f.plain++
			}
		}
	}
	tag := keyTag(kb)
	mask := uint32(len(t) - 1)
	p := tag & mask
	for ; t[p] != 0; p = (p + 1) & mask {
		if uint32(t[p]>>32) != tag {
			continue
		}
		m := ms[uint32(t[p])-1]
		prev, err := s.view(int(m.keyStart), int(m.keyEnd), i)
		if err != nil {
			return false, err
		}
		if bytes.Equal(prev, kb) {
			return true, nil
		}
	}
	t[p] = uint64(tag)<<32 | uint64(len(ms)+1)
	f.plain++
	return false, nil
}

// markBad marks f for reordering at its close and holds its output back
// from the MAC until then (the MAC alone gives up: errRebuild).
func (s *stringifier) markBad(f *frame) error {
	if s.hash {
		return errRebuild
	}
	f.bad = true
	f.tabbed = false
	s.badOpen++
	if s.fed > f.start {
		s.restart = true
	}
	if s.hold < 0 || f.start < s.hold {
		s.hold = f.start
	}
	return nil
}

// reorder rewrites the object f, which closed just before raw offset i, in
// JS property order: array indices ascending, then the other keys in order
// of first appearance; a repeated key keeps its first place, its last value.
func (s *stringifier) reorder(f *frame, i int) error {
	if err := s.dirty(i); err != nil {
		return err
	}
	if err := s.flush(i); err != nil {
		return err
	}
	ms := s.members[f.mbase:]
	var err error
	if s.order, err = grow(s, s.order[:0], len(ms)); err != nil {
		return err
	}
	if s.scratch, err = grow(s, s.scratch[:0], len(s.out)-f.start); err != nil {
		return err
	}
	order := s.order[:0]
	// array indices, ascending; the last of equal ones wins
	for k, m := range ms {
		if m.index != noIndex {
			order = append(order, int32(k))
		}
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		switch x, y := ms[a].index, ms[b].index; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	w := 0
	for _, k := range order {
		if w > 0 && ms[order[w-1]].index == ms[k].index {
			order[w-1] = k
			continue
		}
		order[w] = k
		w++
	}
	order = order[:w]
	// the other keys, first place and last value
	nIdx := len(order)
	plain := len(ms) - nIdx
	var t []uint64
	if plain > linearKeys {
		if t, err = s.table(len(s.frames)-1, plain); err != nil {
			return err
		}
	}
	mask := uint32(len(t) - 1)
keys:
	for k, m := range ms {
		if m.index != noIndex {
			continue
		}
		kb := s.out[m.keyStart:m.keyEnd]
		if plain <= linearKeys {
			for p := nIdx; p < len(order); p++ {
				if q := ms[order[p]]; bytes.Equal(s.out[q.keyStart:q.keyEnd], kb) {
					order[p] = int32(k)
					continue keys
				}
			}
			order = append(order, int32(k))
			continue
		}
		tag := keyTag(kb)
		p := tag & mask
		for ; t[p] != 0; p = (p + 1) & mask {
			if uint32(t[p]>>32) != tag {
				continue
			}
			at := uint32(t[p]) - 1
			if q := ms[order[at]]; bytes.Equal(s.out[q.keyStart:q.keyEnd], kb) {
				order[at] = int32(k)
				continue keys
			}
		}
		t[p] = uint64(tag)<<32 | uint64(len(order)+1)
		order = append(order, int32(k))
	}
	sc := append(s.scratch[:0], '{')
	for n, k := range order {
		if n > 0 {
			sc = append(sc, ',')
		}
		sc = append(sc, s.out[ms[k].keyStart:ms[k].valEnd]...)
	}
	sc = append(sc, '}')
	// never longer than the object: members are dropped, none added
	s.out = append(s.out[:f.start], sc...)
	s.scratch, s.order = sc[:0], order[:0]
	s.badOpen--
	if s.badOpen == 0 {
		s.hold = -1
	}
	s.feed()
	return nil
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// special8 returns a mask whose lowest set bit (if any) is the high bit of
// the first of the 8 bytes of x (little endian) that a string does not
// copy as it is: below 0x20, '"', '\\', or at least 0x80. (The classic SWAR
// byte tests; a borrow can set bits above the first match, never below.)
func special8(x uint64) uint64 {
	ctl := (x - 0x20*lo8) &^ x
	q := x ^ ('"' * lo8)
	q = (q - lo8) &^ q
	bs := x ^ ('\\' * lo8)
	bs = (bs - lo8) &^ bs
	return (ctl | q | bs | x) & hi8
}

var fffd = []byte("\uFFFD")

// str transforms the string whose opening quote is at i and returns the
// offset after its closing quote.
//
// It reads the string 8 bytes at a time: special8 marks the bytes that
// need a look (and, past a marked one, may mark a plain byte, which is
// then skipped), and each marked byte of the word is handled in turn.
// The body is read through byteAt and wordAt, each read after a check
// that it is in range: without the bounds checks and slice arithmetic of
// raw[i] and raw[i:], and with the loop's values kept in registers, the
// scan of a 5 MiB Vev PUBLISH takes about 12% less time (BENCHMARKS.md
// section 6.2).
func (s *stringifier) str(i int) (int, error) {
	n := len(s.raw)
	base := unsafe.Pointer(unsafe.SliceData(s.raw))
	i++
	w := i - 8   // the word m was read from
	var m uint64 // its marked bytes not handled yet
	for {
		for m != 0 {
			p := w + bits.TrailingZeros64(m)>>3
			m &= m - 1
			if p >= i {
				i = p
				goto special
			}
		}
		if i < w+8 {
			i = w + 8 // the rest of the word is plain
		}
		if i+8 <= n {
			w = i
			m = special8(wordAt(base, i))
			continue
		}
		for i < n && strClass[byteAt(base, i)] == clSafe {
			i++
		}
		if i >= n {
			return 0, ErrStringifySyntax
		}
	special:
		// here i < n: the bytes are read without bounds checks
		switch strClass[byteAt(base, i)] {
		case clSafe: // marked past a special byte of the word
			i++
			continue
		case clQuote:
			return i + 1, nil
		case clBackslash:
			if i+1 < n && shortEscape[byteAt(base, i+1)] {
				i += 2
				continue
			}
			var err error
			if i, err = s.escape(i); err != nil {
				return 0, err
			}
			continue
		case clCtl:
			return 0, ErrStringifySyntax
		case clLead2:
			if i+1 < n && byteAt(base, i+1)&0xC0 == 0x80 {
				i += 2
				continue
			}
		case clLead3:
			if i+2 < n && byteAt(base, i+1)&0xC0 == 0x80 && byteAt(base, i+2)&0xC0 == 0x80 {
				i += 3
				continue
			}
		}
		if r, size := utf8.DecodeRune(s.raw[i:]); r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		size := invalidUTF8(s.raw[i:])
		if err := s.change(i, i+size, fffd); err != nil {
			return 0, err
		}
		i += size
	}
}

// byteAt is raw[k], for a k known to be in range, where base is raw's
// first byte: the hot loop of str reads the body without the bounds
// checks and slice arithmetic of raw[k] and raw[k:].
func byteAt(base unsafe.Pointer, k int) byte { return *(*byte)(unsafe.Add(base, k)) }

// wordAt is binary.LittleEndian.Uint64(raw[k:]), for k+8 <= len(raw).
func wordAt(base unsafe.Pointer, k int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(base, k))[:])
}

// Classes of the bytes of a string.
const (
	clSafe      = iota // printable ASCII but '"' and '\\': copied as it is
	clOther            // other non-ASCII: decoded
	clQuote            // '"'
	clBackslash        // '\\'
	clCtl              // below 0x20: an error
	clLead2            // C2-DF: a 2-byte sequence's lead
	clLead3            // E1-EC, EE, EF: a 3-byte lead whose next byte is any continuation
)

var strClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = clCtl
	}
	t['"'], t['\\'] = clQuote, clBackslash
	for c := 0x80; c < 0x100; c++ {
		t[c] = clOther
	}
	for c := 0xC2; c <= 0xDF; c++ {
		t[c] = clLead2
	}
	for c := 0xE1; c <= 0xEF; c++ {
		if c != 0xED {
			t[c] = clLead3
		}
	}
	return t
}()

// shortEscape marks the escapes JSON.stringify writes as they are.
var shortEscape = func() (t [256]bool) {
	for _, c := range `"\\bfnrt` {
		t[c] = true
	}
	return t
}()

// invalidUTF8 returns the length of the maximal subpart at the start of b,
// which is not valid UTF-8: the bytes the WHATWG decoder (Node's) turns
// into one U+FFFD.
func invalidUTF8(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var n int
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c == 0xED:
		n, hi = 3, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		n = 3
	case c == 0xF0:
		n, lo = 4, 0x90
	case c == 0xF4:
		n, hi = 4, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		n = 4
	default:
		return 1
	}
	k := 1
	for ; k < n && k < len(b); k++ {
		if b[k] < lo || b[k] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return k
}

func unhex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexLower = "0123456789abcdef"

// escape transforms the escape at i (a backslash) and returns the offset
// after it.
func (s *stringifier) escape(i int) (int, error) {
	raw := s.raw
	if i+1 >= len(raw) {
		return 0, ErrStringifySyntax
	}
	switch raw[i+1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return i + 2, nil
	case '/':
		return i + 2, s.change(i, i+2, []byte{'/'})
	case 'u':
	default:
		return 0, ErrStringifySyntax
	}
	if len(raw)-i < 6 {
		return 0, ErrStringifySyntax
	}
	r, ok := unhex4(raw[i+2:])
	if !ok {
		return 0, ErrStringifySyntax
	}
	next := i + 6
	var buf [12]byte
	var out []byte
	switch {
	case 0xD800 <= r && r <= 0xDBFF && len(raw)-next >= 6 && raw[next] == '\\' && raw[next+1] == 'u':
		if lo, ok := unhex4(raw[next+2:]); ok && 0xDC00 <= lo && lo <= 0xDFFF {
			out = utf8.AppendRune(buf[:0], 0x10000+(r-0xD800)<<10+(lo-0xDC00))
			next += 6
			break
		}
		out = append(buf[:0], '\\', 'u', hexLower[r>>12], hexLower[r>>8&15], hexLower[r>>4&15], hexLower[r&15])
	case 0xD800 <= r && r <= 0xDFFF:
		out = append(buf[:0], '\\', 'u', hexLower[r>>12], hexLower[r>>8&15], hexLower[r>>4&15], hexLower[r&15])
	case r < 0x20 || r == '"' || r == '\\':
		switch r {
		case '\b':
			out = append(buf[:0], '\\', 'b')
		case '\t':
			out = append(buf[:0], '\\', 't')
		case '\n':
			out = append(buf[:0], '\\', 'n')
		case '\f':
			out = append(buf[:0], '\\', 'f')
		case '\r':
			out = append(buf[:0], '\\', 'r')
		case '"':
			out = append(buf[:0], '\\', '"')
		case '\\':
			out = append(buf[:0], '\\', '\\')
		default:
			out = append(buf[:0], '\\', 'u', '0', '0', hexLower[r>>4], hexLower[r&15])
		}
	default:
		out = utf8.AppendRune(buf[:0], r)
	}
	if bytes.Equal(out, raw[i:next]) {
		return next, nil
	}
	return next, s.change(i, next, out)
}

// num transforms the number at i and returns the offset after it.
func (s *stringifier) num(i int) (int, error) {
	raw := s.raw
	j := i
	if raw[j] == '-' {
		j++
	}
	if j >= len(raw) {
		return 0, ErrStringifySyntax
	}
	switch c := raw[j]; {
	case c == '0':
		j++
	case '1' <= c && c <= '9':
		j++
		for j < len(raw) && '0' <= raw[j] && raw[j] <= '9' {
			j++
		}
	default:
		return 0, ErrStringifySyntax
	}
	intEnd := j
	if j < len(raw) && raw[j] == '.' {
		j++
		k := j
		for j < len(raw) && '0' <= raw[j] && raw[j] <= '9' {
			j++
		}
		if j == k {
			return 0, ErrStringifySyntax
		}
	}
	if j < len(raw) && (raw[j] == 'e' || raw[j] == 'E') {
		j++
		if j < len(raw) && (raw[j] == '+' || raw[j] == '-') {
			j++
		}
		k := j
		for j < len(raw) && '0' <= raw[j] && raw[j] <= '9' {
			j++
		}
		if j == k {
			return 0, ErrStringifySyntax
		}
	}
	lit := raw[i:j]
	// an integer of at most 15 digits is exact and already canonical,
	// except -0
	if j == intEnd && intEnd-i <= 15 && !(len(lit) == 2 && lit[0] == '-' && lit[1] == '0') {
		return j, nil
	}
	var buf [32]byte
	out, ok := appendShortNumber(buf[:0], lit)
	if !ok {
		out = AppendJSNumber(buf[:0], parseJSONNumber(lit))
	}
	if bytes.Equal(out, lit) {
		return j, nil
	}
	return j, s.change(i, j, out)
}

// appendShortNumber appends, when it can tell without converting, what
// JSON.stringify writes for lit, a JSON number: when its value is 0 or has
// at most 15 significant digits and a decimal exponent well inside the
// normal doubles. Such a decimal is the only one of at most 15 digits to
// round to its double (DBL_DIG), so Number::toString's shortest round trip
// is its digits without trailing zeros, written as Number::toString
// writes digits d (k of them) with the value 0.d × 10^n.
func appendShortNumber(b, lit []byte) ([]byte, bool) {
	var dbuf [24]byte
	d := dbuf[:0] // the significant digits
	j, n := 0, 0
	neg := lit[0] == '-'
	if neg {
		j = 1
	}
	for ; j < len(lit) && lit[j] >= '0' && lit[j] <= '9'; j++ {
		if len(d) == 0 && lit[j] == '0' {
			continue
		}
		if len(d) == len(dbuf) {
			return b, false
		}
		d = append(d, lit[j])
		n++
	}
	if j < len(lit) && lit[j] == '.' {
		for j++; j < len(lit) && lit[j] >= '0' && lit[j] <= '9'; j++ {
			if len(d) == 0 && lit[j] == '0' {
				n--
				continue
			}
			if len(d) == len(dbuf) {
				return b, false
			}
			d = append(d, lit[j])
		}
	}
	if j < len(lit) { // an exponent
		j++
		eneg := false
		if lit[j] == '+' || lit[j] == '-' {
			eneg = lit[j] == '-'
			j++
		}
		if len(lit)-j > 4 {
			return b, false
		}
		e := 0
		for ; j < len(lit); j++ {
			e = e*10 + int(lit[j]-'0')
		}
		if eneg {
			e = -e
		}
		n += e
	}
	for len(d) > 0 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	k := len(d)
	switch {
	case k == 0:
		return append(b, '0'), true
	case k > 15 || n > 300 || n < -300:
		return b, false
	}
	if neg {
		b = append(b, '-')
	}
	switch {
	case k <= n && n <= 21:
		b = append(b, d...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, d[:n]...)
		b = append(b, '.')
		b = append(b, d[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, d...)
	default:
		b = append(b, d[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, d[1:]...)
		}
		b = append(b, 'e', '+')
		if n-1 < 0 {
			b[len(b)-1] = '-'
		}
		b = strconv.AppendInt(b, int64(max(n-1, 1-n)), 10)
	}
	return b, true
}

// parseJSONNumber converts a JSON number literal to the nearest double,
// as JSON.parse does: ±Inf past the largest double, ±0 below the smallest.
func parseJSONNumber(lit []byte) float64 {
	f, _ := strconv.ParseFloat(string(lit), 64) // ErrRange comes with ±Inf or ±0
	return f
}

// AppendJSNumber appends f as JSON.stringify writes a number: null for
// ±Inf and NaN, 0 for ±0, else Number::toString(f).
func AppendJSNumber(b []byte, f float64) []byte {
	switch {
	case f == 0:
		return append(b, '0')
	case math.IsInf(f, 0) || math.IsNaN(f):
		return append(b, "null"...)
	}
	if a := math.Abs(f); a < 1e-6 || a >= 1e21 {
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// Go pads the exponent to two digits: e-07 -> e-7
		if n := len(b); b[n-4] == 'e' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}
