package webhookverify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	_ "crypto/sha1" // register the hashes senders may name in providers.Signed
	"crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

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
	ErrBodyTimeout         = errors.New("body timeout")
	ErrProviderHash        = errors.New("provider hash unavailable")
	ErrProviderScheme      = errors.New("provider signature scheme does not fit the configured keys")
)

// keyring holds the configured keys, decoded once at provision: HMAC keys
// (with a pool of keyed HMAC states for each key and hash, so that a
// request costs no hmac.New), or public keys of one kind. The index of the
// key that verified a request is its position in the configuration.
//
// A key with a not_after stops verifying at that instant: from then on it
// is skipped (no MAC is computed under it), and only the diagnosis of a
// refused request (hints.go) still tries it.
type keyring struct {
	keys     [][]byte           // HMAC keys; nil for public keys
	pub      []crypto.PublicKey // public keys, all of kind
	kind     providers.Scheme   // the scheme the keys are for
	pools    sync.Map           // poolKey -> *sync.Pool of hash.Hash
	notAfter []time.Time        // per key, or nil; zero: never expires
	secrets  []string           // per key, the resolved secret (hints.go); never logged
}

type poolKey struct {
	hash crypto.Hash
	key  int
}

func newKeyring(keys [][]byte) *keyring { return &keyring{keys: keys} }

// newPublicKeyring returns a keyring of public keys, which must all be
// Ed25519 or all ECDSA on P-256.
func newPublicKeyring(pub []crypto.PublicKey) (*keyring, error) {
	k := &keyring{pub: pub}
	for i, p := range pub {
		var kind providers.Scheme
		switch p := p.(type) {
		case ed25519.PublicKey:
			if len(p) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("secret %d: an Ed25519 public key of %d bytes, not %d", i+1, len(p), ed25519.PublicKeySize)
			}
			kind = providers.SchemeEd25519
		case *ecdsa.PublicKey:
			if p == nil || p.Curve != elliptic.P256() {
				return nil, fmt.Errorf("secret %d: an ECDSA public key not on P-256", i+1)
			}
			kind = providers.SchemeECDSAP256SHA256
		default:
			return nil, fmt.Errorf("secret %d: a %T public key, which this handler cannot verify with (Ed25519 or ECDSA P-256 only)", i+1, p)
		}
		if i > 0 && kind != k.kind {
			return nil, fmt.Errorf("secret %d: an %v public key beside %v ones: give keys of one kind", i+1, kind, k.kind)
		}
		k.kind = kind
	}
	return k, nil
}

// fits reports whether the keys are of the kind scheme verifies with.
func (k *keyring) fits(s providers.Scheme) bool { return s == k.kind }

func (k *keyring) pool(h crypto.Hash, i int) *sync.Pool {
	pk := poolKey{h, i}
	if p, ok := k.pools.Load(pk); ok {
		return p.(*sync.Pool)
	}
	key := k.keys[i]
	p, _ := k.pools.LoadOrStore(pk, &sync.Pool{New: func() any { return hmac.New(h.New, key) }})
	return p.(*sync.Pool)
}

// live reports whether key i still verifies at now.
func (k *keyring) live(i int, now time.Time) bool {
	return k.notAfter == nil || k.notAfter[i].IsZero() || now.Before(k.notAfter[i])
}

// fingerprints are short digests of the secrets, which tell two handlers'
// secrets apart without holding them (secrets.go).
func (k *keyring) fingerprints() [][8]byte {
	out := make([][8]byte, len(k.secrets))
	for i, s := range k.secrets {
		sum := sha256.Sum256([]byte(s))
		copy(out[i][:], sum[:])
	}
	return out
}

// macs returns one keyed HMAC per secret, reset, into dst: nil in the
// place of a key that expired before now.
func (k *keyring) macs(h crypto.Hash, now time.Time, dst []hash.Hash) []hash.Hash {
	for i := range k.keys {
		if !k.live(i, now) {
			dst = append(dst, nil)
			continue
		}
		m := k.pool(h, i).Get().(hash.Hash)
		m.Reset()
		dst = append(dst, m)
	}
	return dst
}

func (k *keyring) put(h crypto.Hash, macs []hash.Hash) {
	for i, m := range macs {
		if m != nil {
			k.pool(h, i).Put(m)
		}
	}
}

// verify checks signed's candidates once the body is read: against the
// MACs fed with Prefix‖body‖Suffix (HMAC), the SHA-256 digest fed with
// them (ECDSA, macs holds the one digest), or msg, which is
// Prefix‖body‖Suffix (Ed25519). It reports the index of the key that
// matched: the first, in the configured order. The scheme must fit the
// keys (checkScheme). Keys expired at now are skipped (the MACs have nil
// in their place).
func (k *keyring) verify(signed providers.Signed, macs []hash.Hash, msg []byte, now time.Time) (int, error) {
	switch signed.Scheme {
	case providers.SchemeHMAC:
		return matchMACs(macs, signed.Signatures)
	case providers.SchemeECDSAP256SHA256:
		var sum [sha256.Size]byte
		return k.verifyECDSA(macs[0].Sum(sum[:0]), signed.Signatures, func(i int) bool { return k.live(i, now) })
	case providers.SchemeEd25519:
		return k.verifyEd25519(msg, signed.Signatures, func(i int) bool { return k.live(i, now) })
	}
	return -1, ErrProviderScheme
}

// sha256s are the digests of ECDSA P-256 requests.
var sha256s = sync.Pool{New: func() any { return sha256.New() }}

// verifyECDSA reports the index of the first key under which any of the
// ASN.1 DER signatures verifies the SHA-256 digest, among the keys use
// reports true for.
func (k *keyring) verifyECDSA(digest []byte, signatures [][]byte, use func(int) bool) (int, error) {
	for i, p := range k.pub {
		if !use(i) {
			continue
		}
		pub := p.(*ecdsa.PublicKey)
		for _, sig := range signatures {
			if ecdsa.VerifyASN1(pub, digest, sig) {
				return i, nil
			}
		}
	}
	return -1, ErrNoMatchingSignature
}

// verifyEd25519 reports the index of the first key under which any of the
// signatures verifies msg, among the keys use reports true for.
func (k *keyring) verifyEd25519(msg []byte, signatures [][]byte, use func(int) bool) (int, error) {
	for i, p := range k.pub {
		if !use(i) {
			continue
		}
		pub := p.(ed25519.PublicKey)
		for _, sig := range signatures {
			if len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig) {
				return i, nil
			}
		}
	}
	return -1, ErrNoMatchingSignature
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
	_, err := matchMACs(macs, signatures)
	return err
}

// matchMACs is verifyMACs that also reports the index of the first MAC
// (the key) that matched. Every MAC is compared with every signature,
// whatever matched, in constant time. A nil MAC (an expired key) is
// skipped.
func matchMACs(macs []hash.Hash, signatures [][]byte) (int, error) {
	var sum [64]byte
	match := -1
	for i, m := range macs {
		if m == nil {
			continue
		}
		got := m.Sum(sum[:0])
		for _, sig := range signatures {
			if hmac.Equal(got, sig) && match < 0 {
				match = i
			}
		}
	}
	if match < 0 {
		return -1, ErrNoMatchingSignature
	}
	return match, nil
}

// size is the number of configured keys.
func (k *keyring) size() int { return max(len(k.keys), len(k.pub)) }
