package webhookverify

import (
	"crypto"
	"crypto/hmac"
	_ "crypto/sha1" // register the hashes senders may name in providers.Signed
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"hash"
	"sync"
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
	ErrBodyTimeout         = errors.New("body timeout")
	ErrProviderHash        = errors.New("provider hash unavailable")
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

// verifyMACs reports whether any of the computed MACs equals any of the
// signatures, comparing with hmac.Equal. The MACs must not be used after.
func verifyMACs(macs []hash.Hash, signatures [][]byte) error {
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
