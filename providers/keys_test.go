package providers_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Published keys the tests parse: RFC 8032 §7.1 TEST 1's Ed25519 public
// key, and the ECDSA P-256 verification key of SendGrid's library test
// (sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go, MIT).
const (
	rfc8032Test1Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfc8032Test2Public = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
	sendgridLibPublic  = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestParseEd25519PublicKey(t *testing.T) {
	raw, _ := hex.DecodeString(rfc8032Test1Public)
	b64 := base64.StdEncoding.EncodeToString(raw)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := pemOf(t, ed25519.PublicKey(raw))
	for _, s := range []string{
		rfc8032Test1Public,
		strings.ToUpper(rfc8032Test1Public),
		" " + rfc8032Test1Public + "\n",
		b64,
		strings.TrimRight(b64, "="),
		good,
		"\n" + good + "\n",
	} {
		k, err := providers.ParseEd25519PublicKey(s)
		if err != nil || !bytes.Equal(k, raw) {
			t.Errorf("ParseEd25519PublicKey(%q) = %x, %v", s, k, err)
		}
	}
	for _, s := range []string{
		"",
		rfc8032Test1Public[:62],
		rfc8032Test1Public + "00",
		"z" + rfc8032Test1Public[1:],
		"0x" + rfc8032Test1Public,
		base64.StdEncoding.EncodeToString(raw[:31]),
		base64.URLEncoding.EncodeToString(append(bytes.Clone(raw[:30]), 0xfb, 0xff)), // URL alphabet
		pemOf(t, &ecKey.PublicKey),
		pemOf(t, &rsaKey.PublicKey),
		strings.Replace(good, "PUBLIC KEY", "PRIVATE KEY", 2),
		good + good,
		"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
		sendgridLibPublic,
	} {
		k, err := providers.ParseEd25519PublicKey(s)
		if err == nil {
			t.Errorf("ParseEd25519PublicKey(%q) = %x, want an error", s, k)
			continue
		}
		if !errors.Is(err, providers.ErrNotEd25519Key) || !strings.Contains(err.Error(), "64 hex digits") {
			t.Errorf("ParseEd25519PublicKey(%q): %v, want a sentence naming the forms", s, err)
		}
		if len(s) > 16 {
			assertNotEchoed(t, err.Error(), s)
		}
	}
}

func TestParseECDSAP256PublicKey(t *testing.T) {
	k, err := providers.ParseECDSAP256PublicKey(sendgridLibPublic)
	if err != nil || k.Curve != elliptic.P256() {
		t.Fatalf("SendGrid's key: %v", err)
	}
	for _, s := range []string{" " + sendgridLibPublic + "\n", strings.TrimRight(sendgridLibPublic, "="), pemOf(t, k)} {
		got, err := providers.ParseECDSAP256PublicKey(s)
		if err != nil || !got.Equal(k) {
			t.Errorf("ParseECDSAP256PublicKey(%q): %v", s, err)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	edRaw, _ := hex.DecodeString(rfc8032Test1Public)
	der, _ := base64.StdEncoding.DecodeString(sendgridLibPublic)
	for _, s := range []string{
		"",
		"not base64!",
		sendgridLibPublic[:40],
		base64.StdEncoding.EncodeToString(der[:len(der)-1]),
		base64.StdEncoding.EncodeToString(append(bytes.Clone(der), 0)),
		base64.StdEncoding.EncodeToString(der[26:]), // the bare point, not SPKI
		rfc8032Test1Public,
		pemOf(t, ed25519.PublicKey(edRaw)),
		pemOf(t, &p384.PublicKey),
		pemOf(t, &rsaKey.PublicKey),
		base64.StdEncoding.EncodeToString(mustDER(t, &p384.PublicKey)),
	} {
		got, err := providers.ParseECDSAP256PublicKey(s)
		if err == nil {
			t.Errorf("ParseECDSAP256PublicKey(%q) = %v, want an error", s, got)
			continue
		}
		if !errors.Is(err, providers.ErrNotECDSAP256Key) || !strings.Contains(err.Error(), "SubjectPublicKeyInfo") {
			t.Errorf("ParseECDSAP256PublicKey(%q): %v, want a sentence naming the forms", s, err)
		}
		if len(s) > 16 {
			assertNotEchoed(t, err.Error(), s)
		}
	}
}

func mustDER(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// The mutation table of a public-key sender (presets_test.go's, for keys
// that verify rather than MAC): a request known to be good, from a
// committed vector, then each way it can go wrong. A Signed "verifies"
// when one of its signatures checks, by the standard library, over
// Prefix‖body‖Suffix under the public key the sender decodes: what the
// handler does. The vectors (testdata/vectors/senders) run the same
// requests through the handler.
type pkPreset struct {
	p      providers.Provider
	scheme providers.Scheme
	key    string // the configured key that signed the good request
	wrong  []string
	body   string
	now    time.Time
	header http.Header
	// headers whose absence is a missing signature; each also must not
	// be repeated
	required   []string
	malformed  map[string][]string // values that are malformed, by header
	unverified map[string][]string // values that parse but must not verify
}

func pkVerifies(t *testing.T, p providers.Provider, s providers.Signed, key, body string) bool {
	t.Helper()
	pub, err := p.(providers.PublicKeyDecoder).PublicKey(key)
	if err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	msg := append(append(bytes.Clone(s.Prefix), body...), s.Suffix...)
	for _, sig := range s.Signatures {
		switch s.Scheme {
		case providers.SchemeEd25519:
			if ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) {
				return true
			}
		case providers.SchemeECDSAP256SHA256:
			d := sha256.Sum256(msg)
			if ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig) {
				return true
			}
		default:
			t.Fatalf("scheme %v", s.Scheme)
		}
	}
	return false
}

func (ps pkPreset) run(t *testing.T) {
	t.Run("good", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if s.Scheme != ps.scheme || s.Hash != 0 {
			t.Errorf("Scheme %v Hash %v, want %v and no hash", s.Scheme, s.Hash, ps.scheme)
		}
		if !pkVerifies(t, ps.p, s, ps.key, ps.body) {
			t.Fatalf("the good request does not verify (prefix %q)", s.Prefix)
		}
		pd := ps.p.(providers.PublicKeyDecoder)
		if !pd.PublicKeys() {
			t.Error("PublicKeys() = false")
		}
	})
	t.Run("edited body", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{ps.body + " ", ps.body[:len(ps.body)-1], strings.Replace(ps.body, "e", "E", 1), "", ps.body + "\n"} {
			if pkVerifies(t, ps.p, s, ps.key, b) {
				t.Errorf("edited body %q verifies", b)
			}
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		s, err := presetParse(t, ps.p, ps.header, ps.now)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ps.wrong {
			if pkVerifies(t, ps.p, s, k, ps.body) {
				t.Errorf("key %q verifies", k)
			}
		}
	})
	for _, name := range ps.required {
		t.Run("missing "+name, func(t *testing.T) {
			for _, v := range []*string{nil, ptr(""), ptr(" \t ")} {
				h := ps.header.Clone()
				h.Del(name)
				if v != nil {
					h.Set(name, *v)
				}
				_, err := presetParse(t, ps.p, h, ps.now)
				wantParseErr(t, err, providers.ErrMissingSignature, h)
			}
		})
		t.Run("repeated "+name, func(t *testing.T) {
			v := ps.header.Get(name)
			for _, second := range []string{v, "", "x"} {
				h := ps.header.Clone()
				h.Add(name, second)
				_, err := presetParse(t, ps.p, h, ps.now)
				wantParseErr(t, err, providers.ErrMalformedSignature, h)
			}
		})
	}
	for name, vals := range ps.malformed {
		for _, v := range vals {
			t.Run("malformed "+name+" "+v, func(t *testing.T) {
				h := ps.header.Clone()
				h.Set(name, v)
				s, err := presetParse(t, ps.p, h, ps.now)
				if err == nil {
					t.Fatalf("Parse accepted %s: %q (%d signatures)", name, v, len(s.Signatures))
				}
				wantParseErr(t, err, providers.ErrMalformedSignature, h)
			})
		}
	}
	for name, vals := range ps.unverified {
		for _, v := range vals {
			t.Run("unverified "+name+" "+v, func(t *testing.T) {
				h := ps.header.Clone()
				h.Set(name, v)
				s, err := presetParse(t, ps.p, h, ps.now)
				if err == nil && pkVerifies(t, ps.p, s, ps.key, ps.body) {
					t.Fatalf("%s: %q verifies", name, v)
				}
			})
		}
	}
	t.Run("timestamp window", func(t *testing.T) {
		tol := providers.DefaultTolerance
		for _, tc := range []struct {
			name string
			now  time.Time
			ok   bool
		}{
			{"at the edge, stale side", ps.now.Add(tol), true},
			{"at the edge, future side", ps.now.Add(-tol), true},
			{"stale", ps.now.Add(tol + time.Second), false},
			{"future", ps.now.Add(-tol - time.Second), false},
			{"a day stale", ps.now.Add(24 * time.Hour), false},
			{"a day future", ps.now.Add(-24 * time.Hour), false},
		} {
			s, err := presetParse(t, ps.p, ps.header, tc.now)
			if tc.ok {
				if err != nil || !pkVerifies(t, ps.p, s, ps.key, ps.body) {
					t.Errorf("%s: %v", tc.name, err)
				}
				continue
			}
			wantParseErr(t, err, providers.ErrMalformedSignature, ps.header)
		}
	})
	t.Run("tolerance option", func(t *testing.T) {
		fresh := func(input string) providers.Provider {
			t.Helper()
			p := caddy.Module(ps.p).CaddyModule().New().(providers.Provider)
			d := caddyfile.NewTestDispenser(input)
			d.Next()
			handled, err := p.(providers.CaddyfileOption).UnmarshalCaddyfileOption(d)
			if !handled || err != nil {
				t.Fatalf("%q: handled=%v err=%v", input, handled, err)
			}
			return p
		}
		if _, err := presetParse(t, fresh("tolerance 0"), ps.header, ps.now.Add(24*365*time.Hour)); err != nil {
			t.Errorf("tolerance 0, a year later: %v", err)
		}
		if _, err := presetParse(t, fresh("tolerance 10m"), ps.header, ps.now.Add(9*time.Minute)); err != nil {
			t.Errorf("tolerance 10m, 9 min later: %v", err)
		}
		if _, err := presetParse(t, fresh("tolerance 10s"), ps.header, ps.now.Add(-11*time.Second)); !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("tolerance 10s, 11 s ahead: %v", err)
		}
		if handled, err := caddy.Module(ps.p).CaddyModule().New().(providers.CaddyfileOption).UnmarshalCaddyfileOption(pkDispenser("tolerance -1s")); !handled || err == nil {
			t.Errorf("tolerance -1s in the Caddyfile: handled=%v err=%v", handled, err)
		}
		neg := caddy.Module(ps.p).CaddyModule().New()
		if err := json.Unmarshal([]byte(`{"tolerance":"-1s"}`), neg); err != nil {
			t.Fatal(err)
		}
		if err := neg.(caddy.Validator).Validate(); err == nil {
			t.Error(`JSON "tolerance": "-1s" is valid`)
		}
	})
}

func pkDispenser(input string) *caddyfile.Dispenser {
	d := caddyfile.NewTestDispenser(input)
	d.Next()
	return d
}

// pkPublicKeyOf checks a sender's PublicKey against a parser's result.
func pkPublicKeyOf(t *testing.T, p providers.PublicKeyDecoder, key string) crypto.PublicKey {
	t.Helper()
	k, err := p.PublicKey(key)
	if err != nil {
		t.Fatalf("PublicKey(%q): %v", key, err)
	}
	return k
}

// The key parsers never panic, and either give a key of their kind or an
// error that wraps theirs.
func FuzzPublicKeyParsers(f *testing.F) {
	raw, _ := hex.DecodeString(rfc8032Test1Public)
	der, _ := base64.StdEncoding.DecodeString(sendgridLibPublic)
	for _, s := range []string{
		rfc8032Test1Public, base64.StdEncoding.EncodeToString(raw), sendgridLibPublic, "",
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----", "MFkw", "====",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := providers.ParseEd25519PublicKey(s); err == nil {
			if len(k) != ed25519.PublicKeySize {
				t.Fatalf("%q: a %d-byte Ed25519 key", s, len(k))
			}
		} else if !errors.Is(err, providers.ErrNotEd25519Key) {
			t.Fatalf("%q: %v", s, err)
		}
		if k, err := providers.ParseECDSAP256PublicKey(s); err == nil {
			if k.Curve != elliptic.P256() {
				t.Fatalf("%q: a key on %s", s, k.Curve.Params().Name)
			}
		} else if !errors.Is(err, providers.ErrNotECDSAP256Key) {
			t.Fatalf("%q: %v", s, err)
		}
	})
}

// Discord's and SendGrid's Parse never panic on any pair of header
// values: they succeed with their scheme, the timestamp's text as the
// prefix and one signature of a plausible size, or fail with exactly one
// of the two sentinels.
func FuzzPublicKeySendersParse(f *testing.F) {
	f.Add(discordSig, discordTS)
	f.Add(sendgridSig, sendgridTS)
	f.Add("", "")
	f.Add("MAYCAQECAQE=", "1700000000") // SEQUENCE { 1, 1 }
	f.Fuzz(func(t *testing.T, sig, ts string) {
		for _, tc := range []struct {
			p              providers.Provider
			sigH, tsH      string
			scheme         providers.Scheme
			minSig, maxSig int
			now            int64
		}{
			{&providers.Discord{}, "X-Signature-Ed25519", "X-Signature-Timestamp", providers.SchemeEd25519, 64, 64, 1_700_000_000},
			{&providers.SendGrid{}, "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp", providers.SchemeECDSAP256SHA256, 6, 72, 1588788367},
		} {
			r, _ := http.NewRequest(http.MethodPost, "/", nil)
			r.Header[tc.sigH] = []string{sig}
			r.Header[tc.tsH] = []string{ts}
			s, err := tc.p.Parse(r, time.Unix(tc.now, 0))
			if err != nil {
				missing := errors.Is(err, providers.ErrMissingSignature)
				if missing == errors.Is(err, providers.ErrMalformedSignature) {
					t.Fatalf("%T(%q, %q): %v, want exactly one sentinel", tc.p, sig, ts, err)
				}
				continue
			}
			if s.Scheme != tc.scheme || string(s.Prefix) != strings.TrimSpace(ts) || s.Suffix != nil || len(s.Signatures) != 1 {
				t.Fatalf("%T(%q, %q) = %+v", tc.p, sig, ts, s)
			}
			if n := len(s.Signatures[0]); n < tc.minSig || n > tc.maxSig {
				t.Fatalf("%T(%q, %q): a %d-byte signature", tc.p, sig, ts, n)
			}
		}
	})
}
