package providers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The sending side of the senders, for `caddy webhook sign|send` and for
// tests: every sender signs a body the way the real sender does, and makes a
// realistic test delivery (its "Ping").

// Signer is implemented by every sender: it signs a delivery as the sender
// does, and makes a realistic test delivery. A test fails for any module of
// Namespace that does not implement it.
type Signer interface {
	// Sign returns the headers that carry the signature of req.Body at
	// req.Time (the signature, the signed timestamp, and any other header
	// the signature covers that Sign fills itself, such as Standard
	// Webhooks' webhook-id from req.ID). The caller adds them to the
	// delivery's own headers (req.Header). The signature is made with
	// req.Sign, which holds the key.
	Sign(req SignRequest) (http.Header, error)

	// Ping returns a realistic test delivery of the sender at now: the
	// body and the headers the sender sends with it besides the signature
	// (Content-Type, the event's id and type headers). id is the event id
	// to use where the sender puts one (a body field or a header); when
	// empty, Ping makes a fresh one.
	Ping(now time.Time, id string) (body []byte, h http.Header)
}

// SignRequest is what Signer.Sign signs.
type SignRequest struct {
	// Body is the delivery's body, signed as it is.
	Body []byte

	// Time is the signing time, for senders that sign a timestamp.
	Time time.Time

	// ID is the event id, for senders whose signature covers one
	// (Standard Webhooks' webhook-id, an hmac template's id header). Sign
	// makes a fresh one when it needs one and ID is empty.
	ID string

	// Header holds the delivery's other headers (those of Ping, or the
	// caller's), read by senders whose signature covers a header (an hmac
	// template's {header.Name}). Sign does not modify it.
	Header http.Header

	// Sign signs msg with the configured key, for the scheme (and, for
	// HMAC, the hash) the sender uses: a MAC, a 64-byte Ed25519 signature,
	// or an ASN.1 DER ECDSA P-256 signature of SHA-256(msg). KeySigner
	// makes one from a secret.
	Sign SignFunc
}

// SignFunc signs msg for a scheme; hash is HMAC's hash function and is
// ignored by the public-key schemes. It fails when the key is not of the
// scheme's kind.
type SignFunc func(scheme Scheme, hash crypto.Hash, msg []byte) ([]byte, error)

// KeySigner returns the SignFunc of a secret for the provisioned provider p,
// decoded as the handler decodes its secrets: for a sender whose keys are
// public keys (PublicKeyDecoder), secret is the matching PRIVATE key (see
// ParsePrivateKey); otherwise it is the HMAC secret, decoded by the
// sender's KeyDecoder when it has one, else used as is. Errors never repeat
// the secret.
func KeySigner(p Provider, secret string) (SignFunc, error) {
	if pd, ok := p.(PublicKeyDecoder); ok && pd.PublicKeys() {
		priv, err := ParsePrivateKey(secret)
		if err != nil {
			return nil, err
		}
		return privateKeySigner(priv), nil
	}
	key, err := HMACKey(p, secret)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errors.New("the secret is empty")
	}
	return func(scheme Scheme, h crypto.Hash, msg []byte) ([]byte, error) {
		if scheme != SchemeHMAC {
			return nil, fmt.Errorf("the sender signs with %v, and the key is an HMAC secret: give the sender's private key", scheme)
		}
		if !h.Available() {
			return nil, fmt.Errorf("hash %v is not linked in", h)
		}
		m := hmac.New(h.New, key)
		m.Write(msg)
		return m.Sum(nil), nil
	}, nil
}

// HMACKey is the HMAC key of a configured secret for p: decoded by the
// sender's KeyDecoder when it has one (Standard Webhooks' whsec_…), else
// the secret's bytes. The handler and KeySigner both use it, so a secret
// signs exactly as it verifies.
func HMACKey(p Provider, secret string) ([]byte, error) {
	if kd, ok := p.(KeyDecoder); ok {
		return kd.Key(secret)
	}
	return []byte(secret), nil
}

func privateKeySigner(priv crypto.Signer) SignFunc {
	return func(scheme Scheme, _ crypto.Hash, msg []byte) ([]byte, error) {
		switch k := priv.(type) {
		case ed25519.PrivateKey:
			if scheme == SchemeEd25519 {
				return ed25519.Sign(k, msg), nil
			}
		case *ecdsa.PrivateKey:
			if scheme == SchemeECDSAP256SHA256 {
				d := sha256.Sum256(msg)
				return ecdsa.SignASN1(rand.Reader, k, d[:])
			}
		}
		return nil, fmt.Errorf("the sender signs with %v, and the key is an %s private key", scheme, keyKind(priv.Public()))
	}
}

// ErrNotPrivateKey is the error of ParsePrivateKey.
var ErrNotPrivateKey = errors.New("not a private key: give an Ed25519 key as a PEM \"PRIVATE KEY\" block (PKCS#8) or its 32-byte seed in hex or base64, or an ECDSA P-256 key as a PEM \"PRIVATE KEY\" (PKCS#8) or \"EC PRIVATE KEY\" (SEC1) block")

// ParsePrivateKey reads the private key of a sender that signs with a key
// pair: Ed25519 as a PEM "PRIVATE KEY" block (PKCS#8) or its 32-byte seed
// (64 hex digits, or standard base64); ECDSA on P-256 as a PEM "PRIVATE KEY"
// (PKCS#8) or "EC PRIVATE KEY" (SEC1) block, or the base64 of that DER.
// Surrounding white space is ignored; errors never repeat the value.
func ParsePrivateKey(s string) (crypto.Signer, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		switch {
		case block == nil:
			return nil, fmt.Errorf("%w (the PEM block does not decode)", ErrNotPrivateKey)
		case len(strings.TrimSpace(string(rest))) != 0:
			return nil, fmt.Errorf("%w (more than one PEM block)", ErrNotPrivateKey)
		case block.Type == "PUBLIC KEY":
			return nil, fmt.Errorf("%w (this is the public key: the handler takes it, signing needs the private one)", ErrNotPrivateKey)
		case block.Type != "PRIVATE KEY" && block.Type != "EC PRIVATE KEY":
			return nil, fmt.Errorf("%w (the PEM block is a %q)", ErrNotPrivateKey, block.Type)
		}
		der = block.Bytes
	} else {
		if len(s) == 2*ed25519.SeedSize {
			if seed, err := hex.DecodeString(s); err == nil {
				return ed25519.NewKeyFromSeed(seed), nil
			}
		}
		b, err := decodeBase64(s)
		if err != nil {
			return nil, ErrNotPrivateKey
		}
		if len(b) == ed25519.SeedSize {
			return ed25519.NewKeyFromSeed(b), nil
		}
		der = b
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return checkPrivate(k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return checkPrivate(k)
	}
	return nil, fmt.Errorf("%w (not PKCS#8 or SEC1 DER)", ErrNotPrivateKey)
}

func checkPrivate(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w (an ECDSA key on %s, not P-256)", ErrNotPrivateKey, k.Curve.Params().Name)
		}
		return k, nil
	case crypto.Signer:
		return nil, fmt.Errorf("%w (a %s key: the senders sign with Ed25519 or ECDSA P-256)", ErrNotPrivateKey, keyKind(k.Public()))
	}
	return nil, ErrNotPrivateKey
}

// NewID returns prefix followed by 24 random hex digits: a fresh event id
// for a test delivery.
func NewID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NewUUID returns a random (version 4) UUID, the form of GitHub's and
// Shopify's delivery ids.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// orID returns id, or fresh() when id is empty.
func orID(id string, fresh func() string) string {
	if id == "" {
		return fresh()
	}
	return id
}

// jsonHeader returns the headers of a JSON delivery plus the pairs kv
// (name, value, ...).
func jsonHeader(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// signOnce signs prefix‖body‖suffix with req.Sign.
func signOnce(req SignRequest, scheme Scheme, h crypto.Hash, prefix, suffix []byte) ([]byte, error) {
	if req.Sign == nil {
		return nil, errors.New("no key to sign with")
	}
	msg := make([]byte, 0, len(prefix)+len(req.Body)+len(suffix))
	msg = append(msg, prefix...)
	msg = append(msg, req.Body...)
	msg = append(msg, suffix...)
	return req.Sign(scheme, h, msg)
}

// jsonQuote returns s as a JSON string.
func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// unixText is t as unix seconds, the timestamp text the senders send.
func unixText(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Interface guards
var _ = []Signer{Vivreal{}, Vev{}, GitHub{}, Shopify{}, Slack{}, Stripe{}, Standard{}, Discord{}, SendGrid{}, (*HMAC)(nil)}
