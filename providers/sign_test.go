package providers_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Every sender signs: a module of the namespace that does not implement
// Signer (a new sender that forgot) fails here, and so cannot be used by
// `caddy webhook sign|send`.
func TestEverySenderIsASigner(t *testing.T) {
	mods := caddy.GetModules(providers.Namespace)
	if len(mods) < 10 {
		t.Fatalf("only %d senders registered", len(mods))
	}
	for _, mi := range mods {
		if _, ok := mi.New().(providers.Signer); !ok {
			t.Errorf("%s does not implement providers.Signer: add Sign and Ping at the end of its file", mi.ID)
		}
	}
}

// ParsePrivateKey reads the forms the CLI documents, refuses public keys
// and other curves with a sentence, and never repeats the value.
func TestParsePrivateKey(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60") // RFC 8032 §7.1 TEST 1
	ed := ed25519.NewKeyFromSeed(seed)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(ed)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecSEC1, _ := x509.MarshalECPrivateKey(ec)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	edPub, _ := x509.MarshalPKIXPublicKey(ed.Public())
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}

	for name, tc := range map[string]struct {
		in   string
		want crypto.PublicKey
	}{
		"ed25519 seed hex":    {hex.EncodeToString(seed), ed.Public()},
		"ed25519 seed base64": {base64.StdEncoding.EncodeToString(seed), ed.Public()},
		"ed25519 PKCS#8 PEM":  {"\n" + pemOf("PRIVATE KEY", edPKCS8) + "\n", ed.Public()},
		"ecdsa PKCS#8 PEM":    {pemOf("PRIVATE KEY", ecPKCS8), ec.Public()},
		"ecdsa SEC1 PEM":      {pemOf("EC PRIVATE KEY", ecSEC1), ec.Public()},
		"ecdsa SEC1 base64":   {base64.StdEncoding.EncodeToString(ecSEC1), ec.Public()},
	} {
		k, err := providers.ParsePrivateKey(tc.in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if pk, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(tc.want) {
			t.Errorf("%s: another key", name)
		}
	}
	for name, in := range map[string]string{
		"public key PEM": pemOf("PUBLIC KEY", edPub),
		"P-384":          pemOf("PRIVATE KEY", p384DER),
		"text":           "not-a-key-at-all-but-a-secret",
		"31 bytes":       hex.EncodeToString(seed[:31]),
	} {
		_, err := providers.ParsePrivateKey(in)
		if !errors.Is(err, providers.ErrNotPrivateKey) {
			t.Errorf("%s: error %v, want ErrNotPrivateKey", name, err)
		} else if strings.Contains(err.Error(), in) {
			t.Errorf("%s: the error repeats the value", name)
		}
	}
}

// KeySigner signs with the key the scheme asks for, and refuses the
// other schemes rather than signing with the wrong kind of key.
func TestKeySigner(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	sg := new(providers.SendGrid)
	sign, err := providers.KeySigner(sg, base64.StdEncoding.EncodeToString(ecDER))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign(providers.SchemeECDSAP256SHA256, 0, []byte("msg"))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("msg"))
	if !ecdsa.VerifyASN1(&ec.PublicKey, d[:], sig) {
		t.Error("the ECDSA signature does not verify")
	}
	if _, err := sign(providers.SchemeEd25519, 0, []byte("msg")); err == nil {
		t.Error("an ECDSA key signed for Ed25519")
	}
	if _, err := providers.KeySigner(sg, "a shared secret"); !errors.Is(err, providers.ErrNotPrivateKey) {
		t.Errorf("sendgrid with an HMAC secret: %v", err)
	}

	// an HMAC sender's secret, decoded by its KeyDecoder (whsec_)
	std := new(providers.Standard)
	sign, err = providers.KeySigner(std, "whsec_"+base64.StdEncoding.EncodeToString([]byte("raw key")))
	if err != nil {
		t.Fatal(err)
	}
	mac, err := sign(providers.SchemeHMAC, crypto.SHA256, []byte("msg"))
	if err != nil {
		t.Fatal(err)
	}
	// printf msg | openssl dgst -sha256 -hmac 'raw key'
	if got := hex.EncodeToString(mac); got != "44e542727fb31c2cc60fc721e3de2f501b3d0005374ab8662bec29064301631b" {
		t.Errorf("whsec_ secret signed with %s: not under its decoded key", got)
	}
	if _, err := sign(providers.SchemeEd25519, 0, []byte("msg")); err == nil {
		t.Error("an HMAC secret signed for Ed25519")
	}
	if _, err := providers.KeySigner(std, "whsec_!!!"); err == nil {
		t.Error("a bad whsec_ secret was taken")
	}
}

// fixedPrivateKeyTexts are the details ParsePrivateKey's errors may add.
const fixedPrivateKeyTexts = " (the PEM block does not decode) (more than one PEM block) (this is the public key: the handler takes it, signing needs the private one) (not PKCS#8 or SEC1 DER) (an ECDSA key on P-384, not P-256) (a RSA key: the senders sign with Ed25519 or ECDSA P-256) (the PEM block is a "

// FuzzParsePrivateKey: any text is a key or ErrNotPrivateKey, never a
// panic, and an error never repeats what it was given.
func FuzzParsePrivateKey(f *testing.F) {
	f.Add("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	f.Add("MHcCAQEEIEQmZgBEh9DcU9zMl34czK3xov4AYvm9P3r7rNB2dNXtoAoGCCqGSM49AwEHoUQDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==")
	f.Add("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n")
	f.Add("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := providers.ParsePrivateKey(s)
		if err != nil {
			if !errors.Is(err, providers.ErrNotPrivateKey) {
				t.Fatalf("error %v is not ErrNotPrivateKey", err)
			}
			// the detail after the fixed sentence, unless the input is
			// itself a piece of the fixed details
			detail := strings.TrimPrefix(err.Error(), providers.ErrNotPrivateKey.Error())
			if v := strings.TrimSpace(s); len(v) >= 8 && strings.Contains(detail, v) && !strings.Contains(fixedPrivateKeyTexts, v) {
				t.Fatalf("the error repeats the input")
			}
			return
		}
		switch k.(type) {
		case ed25519.PrivateKey, *ecdsa.PrivateKey:
		default:
			t.Fatalf("a %T key", k)
		}
	})
}

// Every sender's Ping is JSON (each of these senders posts JSON), and Sign
// leaves the request's header as it was given (it returns the headers to
// add; the CLI and the round-trip tests rely on it).
func TestPingIsJSONAndSignKeepsTheHeader(t *testing.T) {
	for _, mi := range caddy.GetModules(providers.Namespace) {
		if mi.ID.Name() == "hmac" {
			continue // needs its configuration: covered by the round-trip tests
		}
		s, ok := mi.New().(providers.Signer)
		if !ok {
			continue // TestEverySenderIsASigner
		}
		body, hdr := s.Ping(time.Unix(1700000000, 0).UTC(), "evt_ping_test")
		if !json.Valid(body) {
			t.Errorf("%s: Ping's body is not JSON: %q", mi.ID.Name(), body)
		}
		before := hdr.Clone()
		fixed := func(scheme providers.Scheme, h crypto.Hash, _ []byte) ([]byte, error) {
			switch scheme {
			case providers.SchemeEd25519:
				return make([]byte, ed25519.SignatureSize), nil
			case providers.SchemeECDSAP256SHA256:
				return []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, nil
			}
			return make([]byte, h.Size()), nil
		}
		if _, err := s.Sign(providers.SignRequest{Body: body, Time: time.Unix(1700000000, 0), ID: "evt_ping_test", Header: hdr, Sign: fixed}); err != nil {
			t.Errorf("%s: Sign: %v", mi.ID.Name(), err)
		}
		if !reflect.DeepEqual(hdr, before) {
			t.Errorf("%s: Sign changed the request's header: %v, was %v", mi.ID.Name(), hdr, before)
		}
	}
}
