package webhookverify

import (
	"crypto"
	"crypto/hmac"
	_ "crypto/sha1" // register the hashes senders may name in providers.Signed
	"crypto/sha256"
	_ "crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Reasons a request is refused. Each is the message of the caddyhttp.Error
// the handler returns ({err.message} in handle_errors) and the "reason" of
// its log line. None of them carries a secret or a computed MAC.
var (
	ErrMethodNotAllowed    = errors.New("method not allowed")
	ErrBadCredentials      = errors.New("bad credentials")
	ErrBodyTooLarge        = errors.New("body too large")
	ErrReadingBody         = errors.New("reading body")
	ErrNoMatchingSignature = errors.New("no matching signature")
	ErrOverBudget          = errors.New("too many bodies in flight")
)

// keyring holds the HMAC keys of the configured secrets and a pool of keyed
// HMAC states for each key and hash, so that a request costs no hmac.New.
type keyring struct {
	keys  [][]byte
	pools sync.Map // poolKey -> *sync.Pool of hash.Hash
}

type poolKey struct {
	hash crypto.Hash
	key  int
}

func newKeyring(keys [][]byte) *keyring { return &keyring{keys: keys} }

func (k *keyring) pool(h crypto.Hash, i int) *sync.Pool {
	pk := poolKey{h, i}
	if p, ok := k.pools.Load(pk); ok {
		return p.(*sync.Pool)
	}
	key := k.keys[i]
	p, _ := k.pools.LoadOrStore(pk, &sync.Pool{New: func() any { return hmac.New(h.New, key) }})
	return p.(*sync.Pool)
}

// macs returns one keyed HMAC per secret, reset, into dst.
func (k *keyring) macs(h crypto.Hash, dst []hash.Hash) []hash.Hash {
	for i := range k.keys {
		m := k.pool(h, i).Get().(hash.Hash)
		m.Reset()
		dst = append(dst, m)
	}
	return dst
}

func (k *keyring) put(h crypto.Hash, macs []hash.Hash) {
	for i, m := range macs {
		k.pool(h, i).Put(m)
	}
}

// Sign returns the HMAC of prefix+body under key with the hash h: what a
// sender puts, encoded, in its signature header.
func Sign(h crypto.Hash, key, prefix, body []byte) []byte {
	m := hmac.New(h.New, key)
	m.Write(prefix)
	m.Write(body)
	return m.Sum(nil)
}

// Verify reports whether any of the computed MACs equals any of the
// signatures, comparing with hmac.Equal. The MACs must not be used after.
func Verify(macs []hash.Hash, signatures [][]byte) error {
	var sum [64]byte
	ok := 0
	for _, m := range macs {
		got := m.Sum(sum[:0])
		for _, sig := range signatures {
			if hmac.Equal(got, sig) {
				ok = 1
			}
		}
	}
	if ok == 0 {
		return ErrNoMatchingSignature
	}
	return nil
}

// Body buffers.
//
// A body is read into a buffer of a size class, 2^k and 1.5*2^k bytes from
// 4 KiB to 16 MiB, so a buffer wastes at most a third of its size. Freed
// buffers wait in a free list per class for the next request. The lists
// are bounded: together they hold at most maxPooledBytes (and each at most
// maxPooledPerClass buffers); a buffer that does not fit, or is larger than
// 16 MiB, is left to the garbage collector. Unlike a sync.Pool, the lists
// are not emptied by each garbage collection, so a steady stream of large
// bodies allocates nothing; the cap bounds what they pin after a burst.
const (
	minClassShift     = 12 // 4 KiB
	maxClassShift     = 24 // 16 MiB
	maxPooledBytes    = 32 << 20
	maxPooledPerClass = 256
)

type freeList struct {
	mu   sync.Mutex
	bufs [][]byte
}

var (
	freeLists   [2*(maxClassShift-minClassShift) + 1]freeList
	pooledBytes atomic.Int64
)

// classFor returns the index and size of the smallest class holding n bytes.
func classFor(n int) (int, int) {
	if n <= 1<<minClassShift {
		return 0, 1 << minClassShift
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	if half := 3 << (k - 2); n <= half {
		return 2*(k-1-minClassShift) + 1, half
	}
	return 2 * (k - minClassShift), 1 << k
}

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) []byte {
	c, size := classFor(n)
	if c >= len(freeLists) {
		return make([]byte, 0, n)
	}
	fl := &freeLists[c]
	fl.mu.Lock()
	if last := len(fl.bufs) - 1; last >= 0 {
		b := fl.bufs[last]
		fl.bufs[last] = nil
		fl.bufs = fl.bufs[:last]
		fl.mu.Unlock()
		pooledBytes.Add(-int64(size))
		return b
	}
	fl.mu.Unlock()
	return make([]byte, 0, size)
}

// putBuf gives b back to its class's free list, if it is of a class size.
// When the lists are full, buffers of other classes, largest first, make
// room: the sizes in use now win over those of an earlier burst.
func putBuf(b []byte) {
	c, size := classFor(cap(b))
	if c >= len(freeLists) || cap(b) != size {
		return
	}
	for pooledBytes.Add(int64(size)) > maxPooledBytes {
		pooledBytes.Add(-int64(size))
		if !evictOther(c) {
			return
		}
	}
	fl := &freeLists[c]
	fl.mu.Lock()
	if len(fl.bufs) < maxPooledPerClass {
		fl.bufs = append(fl.bufs, b[:0])
		fl.mu.Unlock()
		return
	}
	fl.mu.Unlock()
	pooledBytes.Add(-int64(size))
}

// evictOther drops one buffer of a class other than keep, largest first.
func evictOther(keep int) bool {
	for c := len(freeLists) - 1; c >= 0; c-- {
		if c == keep {
			continue
		}
		fl := &freeLists[c]
		fl.mu.Lock()
		if last := len(fl.bufs) - 1; last >= 0 {
			size := cap(fl.bufs[last])
			fl.bufs[last] = nil
			fl.bufs = fl.bufs[:last]
			fl.mu.Unlock()
			pooledBytes.Add(-int64(size))
			return true
		}
		fl.mu.Unlock()
	}
	return false
}

// probes are the one-byte reads that look for EOF past a full buffer; a
// pool, because a stack array passed to Read escapes to the heap.
var probes = sync.Pool{New: func() any { return new([1]byte) }}

// readBody reads r to EOF into a pooled buffer, feeding every MAC with the
// bytes as they arrive: one pass over the body. It reads at most limit
// bytes and returns ErrBodyTooLarge past that; sizeHint is the declared
// Content-Length, or -1. The caller owns the returned buffer (putBuf).
func readBody(r io.Reader, limit, sizeHint int64, macs []hash.Hash) ([]byte, error) {
	initial := 32 << 10
	if sizeHint >= 0 && sizeHint <= limit {
		// a declared length is allocated up front, up to the largest
		// pooled class; a larger body grows as it arrives
		initial = int(min(sizeHint, 1<<maxClassShift))
	}
	buf := getBuf(initial)
	for {
		var room []byte
		var probe *[1]byte
		if len(buf) == cap(buf) {
			// full: probe for EOF before growing, so a body that
			// exactly fills its buffer (a declared length) never grows
			probe = probes.Get().(*[1]byte)
			room = probe[:]
		} else {
			room = buf[len(buf):cap(buf)]
			if left := limit + 1 - int64(len(buf)); int64(len(room)) > left {
				room = room[:left]
			}
		}
		n, err := r.Read(room)
		if probe != nil {
			if n > 0 {
				nb := getBuf(2 * cap(buf))
				nb = append(nb, buf...)
				putBuf(buf)
				buf = append(nb, room[:n]...)
			}
			probes.Put(probe)
		} else {
			buf = buf[:len(buf)+n]
		}
		if n > 0 {
			chunk := buf[len(buf)-n:]
			for _, m := range macs {
				m.Write(chunk)
			}
			if int64(len(buf)) > limit {
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

// credentials are an endpoint's accepted Basic and Bearer credentials,
// stored as SHA-256 digests so that every comparison is constant-time over
// a fixed length, whatever the length of what the client sent.
type credentials struct {
	basic  [][2][32]byte // user, password digests
	bearer [][32]byte
}

func (c *credentials) empty() bool { return len(c.basic) == 0 && len(c.bearer) == 0 }

func (c *credentials) addBasic(user, password string) {
	c.basic = append(c.basic, [2][32]byte{sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))})
}

func (c *credentials) addBearer(token string) {
	c.bearer = append(c.bearer, sha256.Sum256([]byte(token)))
}

// check reports whether the Authorization header carries one of the
// accepted credentials.
func (c *credentials) check(authorization string) bool {
	scheme, param, _ := strings.Cut(authorization, " ")
	param = strings.TrimLeft(param, " ")
	ok := 0
	switch {
	case providers.EqualFoldASCII(scheme, "Basic") && len(c.basic) > 0:
		raw, err := base64.StdEncoding.DecodeString(param)
		if err != nil {
			return false
		}
		user, password, found := strings.Cut(string(raw), ":")
		if !found {
			return false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		for _, acct := range c.basic {
			ok |= subtle.ConstantTimeCompare(u[:], acct[0][:]) & subtle.ConstantTimeCompare(p[:], acct[1][:])
		}
	case providers.EqualFoldASCII(scheme, "Bearer") && len(c.bearer) > 0:
		t := sha256.Sum256([]byte(param))
		for _, tok := range c.bearer {
			ok |= subtle.ConstantTimeCompare(t[:], tok[:])
		}
	}
	return ok == 1
}

// challenge sets one WWW-Authenticate challenge per configured scheme.
func (c *credentials) challenge(h http.Header) {
	if len(c.basic) > 0 {
		h.Add("WWW-Authenticate", `Basic realm="webhook", charset="UTF-8"`)
	}
	if len(c.bearer) > 0 {
		h.Add("WWW-Authenticate", `Bearer realm="webhook"`)
	}
}
