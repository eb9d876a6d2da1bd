package providers

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Public keys, as senders show them to the operator. The parsers accept
// the sender's own form and PEM, for operators who paste one; their errors
// say which forms are expected and never repeat the value (an operator may
// have pasted a secret by mistake).

// ErrNotEd25519Key and ErrNotECDSAP256Key are the errors of the public-key
// parsers; they read as a sentence that says how to fix the key.
var (
	ErrNotEd25519Key   = errors.New("not an Ed25519 public key: give its 64 hex digits (as Discord's developer portal shows it), the standard base64 of its 32 bytes, or a PEM \"PUBLIC KEY\" block")
	ErrNotECDSAP256Key = errors.New("not an ECDSA P-256 public key: give the base64 of its DER SubjectPublicKeyInfo (as SendGrid shows it, starting with MFkw) or a PEM \"PUBLIC KEY\" block")
)

// ParseEd25519PublicKey reads an Ed25519 public key given as 64 hex digits
// (either case), the standard base64 of its 32 bytes (padded or not), or a
// PEM "PUBLIC KEY" block (SubjectPublicKeyInfo). Surrounding white space is
// ignored.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		pub, err := parsePEMPublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrNotEd25519Key, err)
		}
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w (the PEM block holds a %s key)", ErrNotEd25519Key, keyKind(pub))
		}
		return k, nil
	}
	if len(s) == 2*ed25519.PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return ed25519.PublicKey(b), nil
		}
	}
	if b, err := decodeBase64(s); err == nil && len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	return nil, ErrNotEd25519Key
}

// ParseECDSAP256PublicKey reads an ECDSA public key on P-256 given as the
// standard base64 of its DER SubjectPublicKeyInfo (SendGrid's "verification
// key"), or as a PEM "PUBLIC KEY" block. Surrounding white space is
// ignored.
func ParseECDSAP256PublicKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var pub any
	if strings.HasPrefix(s, "-----BEGIN") {
		var err error
		if pub, err = parsePEMPublicKey(s); err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrNotECDSAP256Key, err)
		}
	} else {
		der, err := decodeBase64(s)
		if err != nil {
			return nil, fmt.Errorf("%w (not base64)", ErrNotECDSAP256Key)
		}
		if pub, err = x509.ParsePKIXPublicKey(der); err != nil {
			return nil, fmt.Errorf("%w (not a DER public key)", ErrNotECDSAP256Key)
		}
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w (it is a %s key)", ErrNotECDSAP256Key, keyKind(pub))
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w (it is on %s)", ErrNotECDSAP256Key, k.Curve.Params().Name)
	}
	return k, nil
}

// parsePEMPublicKey decodes the one PEM "PUBLIC KEY" block s holds.
func parsePEMPublicKey(s string) (any, error) {
	block, rest := pem.Decode([]byte(s))
	switch {
	case block == nil:
		return nil, errors.New("the PEM block does not decode")
	case block.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("the PEM block is a %q, not a \"PUBLIC KEY\"", block.Type)
	case len(strings.TrimSpace(string(rest))) != 0:
		return nil, errors.New("more than one PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the PEM block is not a DER public key")
	}
	return pub, nil
}

// decodeBase64 decodes standard base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func keyKind(pub any) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "Ed25519"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	name := fmt.Sprintf("%T", pub) // *rsa.PublicKey, *ecdh.PublicKey
	name = strings.TrimPrefix(name, "*")
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return strings.ToUpper(name)
}

// maxDERSignature is the longest ECDSA P-256 signature in ASN.1 DER:
// SEQUENCE { INTEGER r, INTEGER s }, each of up to 33 bytes.
const maxDERSignature = 72

// DecodeDERSignatureBase64 decodes a standard, padded base64 ECDSA P-256
// signature and checks it is one ASN.1 DER SEQUENCE of two integers; both
// failures are ErrMalformedSignature.
func DecodeDERSignatureBase64(s string) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(maxDERSignature) {
		return nil, fmt.Errorf("%w: %d base64 characters, too long for a signature", ErrMalformedSignature, len(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") { // the decoder skips line breaks
		return nil, fmt.Errorf("%w: not base64", ErrMalformedSignature)
	}
	return b, checkDER(b)
}

// checkDER reports whether b is an ASN.1 DER ECDSA signature.
func checkDER(b []byte) error {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(b, &rs); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: not an ASN.1 DER ECDSA signature", ErrMalformedSignature)
	}
	return nil
}
