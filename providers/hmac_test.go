package providers_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// hmProvision decodes and provisions an hmac configuration.
func hmProvision(t *testing.T, config string) (*providers.HMAC, error) {
	t.Helper()
	p := new(providers.HMAC)
	dec := json.NewDecoder(strings.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		t.Fatalf("config %s: %v", config, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func hmMust(t *testing.T, config string) *providers.HMAC {
	t.Helper()
	p, err := hmProvision(t, config)
	if err != nil {
		t.Fatalf("config %s: %v", config, err)
	}
	return p
}

func TestHMACModule(t *testing.T) {
	mi, err := caddy.GetModule(providers.Namespace + ".hmac")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.New().(*providers.HMAC); !ok {
		t.Fatalf("New() is %T", mi.New())
	}
	var _ providers.PublicKeyDecoder = new(providers.HMAC)
	var _ providers.KeyDecoder = new(providers.HMAC)
	var _ providers.CaddyfileOption = new(providers.HMAC)
	var _ providers.CaddyfileChecker = new(providers.HMAC)
	var _ providers.CaddyfileOptionNamer = new(providers.HMAC)
}

// Every configuration mistake is refused at provision with a sentence
// that says how to fix it.
func TestHMACProvisionErrors(t *testing.T) {
	const sig = `"signatures": [{"header": "X-Sig"}]`
	for _, tc := range []struct{ config, want string }{
		{`{}`, "no signature: say where the signature is"},
		{`{"signatures": []}`, "no signature"},
		{`{"algorithm": "md5", ` + sig + `}`, "md5 is not supported: MD5 is broken"},
		{`{"algorithm": "MD5", ` + sig + `}`, "md5 is not supported"},
		{`{"algorithm": "sha3-256", ` + sig + `}`, "unknown algorithm 'sha3-256': use sha256, sha512, sha1, ed25519 or ecdsa-p256"},
		{`{"key_encoding": "base32", ` + sig + `}`, "unknown key_encoding 'base32': use raw, hex, base64 or whsec"},
		{`{"algorithm": "ed25519", "key_encoding": "hex", ` + sig + `}`, "key_encoding applies to HMAC secrets"},
		{`{"signatures": [{"pattern": "{sig}"}]}`, "signature needs a header name"},
		{`{"signatures": [{"header": "X Sig"}]}`, "'X Sig' is not a header name"},
		{`{"signatures": [{"header": "X-Sig", "encoding": "base32"}]}`, "unknown signature encoding 'base32': use hex or base64"},
		{`{"signatures": [{"header": "X-Sig", "pattern": "sha256="}]}`, `has no {sig}: write where the signature is`},
		{`{"signatures": [{"header": "X-Sig", "pattern": "{sig}{sig}"}]}`, "has {sig} twice"},
		{`{"signatures": [{"header": "X-Sig", "list": ",", "params": ","}]}`, "a list or params, not both"},
		{`{"signatures": [{"header": "X-Sig", "list": ",", "pattern": "v1,{sig}"}]}`, "contains the separator ','"},
		{`{"signatures": [{"header": "X-Sig", "params": ","}]}`, "needs the key of the signatures"},
		{`{"signatures": [{"header": "X-Sig", "params": ",", "sig": "v1", "pattern": "v1={sig}"}]}`, "there is no pattern"},
		{`{"signatures": [{"header": "X-Sig", "params": "=", "sig": "v1"}]}`, "'=' separates a key from its value"},
		{`{"signatures": [{"header": "X-Sig", "params": ",", "sig": "v1", "ts": "v1"}]}`, "sig and ts name the same key"},
		{`{"signatures": [{"header": "X-Sig", "params": ",", "sig": "v,1"}]}`, "cannot contain '=', spaces or the separator"},
		{`{"signatures": [{"header": "X-Sig", "sig": "v1"}]}`, "name the keys of a params header"},
		{`{"signatures": [{"header": "A"}, {"header": "B", "encoding": "b"}]}`, "signature 2: unknown signature encoding 'b'"},
		{`{` + sig + `, "signed": "{ts}."}`, `signed: no {body} in "{ts}."`},
		{`{` + sig + `, "signed": "{body}.{body}"}`, "{body} appears twice"},
		{`{` + sig + `, "signed": "{method}{body}"}`, "unknown placeholder {method}: use {body}, {header.Name} or {ts}"},
		{`{` + sig + `, "signed": "{header.}{body}"}`, "'{header.}' does not name a header"},
		{`{` + sig + `, "signed": "{body"}`, "a '{' is not closed"},
		{`{` + sig + `, "signed": "}{body}"}`, "a '}' with no '{'"},
		{`{` + sig + `, "signed": "{ts}.{body}"}`, "signed uses {ts} but there is no timestamp"},
		{`{"signatures": [{"header": "S", "params": ",", "sig": "v1", "ts": "t"}]}`, "names a timestamp (ts=) but there is no timestamp line"},
		{`{` + sig + `, "timestamp": {"from": "params", "format": "unix"}}`, "timestamp params needs a params signature with ts="},
		{`{` + sig + `, "timestamp": {"from": "header", "format": "unix"}}`, "timestamp header needs a header name"},
		{`{` + sig + `, "timestamp": {"from": "params", "header": "X", "format": "unix"}}`, "takes no header"},
		{`{"signatures": [{"header": "S", "params": ",", "sig": "v1", "ts": "t"}], "timestamp": {"from": "header", "header": "X-T", "format": "unix"}}`, "use timestamp params, or drop ts="},
		{`{` + sig + `, "timestamp": {"from": "header", "header": "X-T", "format": "iso"}}`, "unknown timestamp format 'iso': use unix (seconds), unix_ms or rfc3339"},
		{`{` + sig + `, "timestamp": {"from": "header", "header": "X-T"}}`, "timestamp needs a format"},
		{`{` + sig + `, "timestamp": {"format": "unix"}}`, "timestamp needs a source"},
		{`{` + sig + `, "timestamp": {"from": "query", "format": "unix"}}`, "unknown timestamp source 'query'"},
		{`{` + sig + `, "tolerance": "5m"}`, "tolerance applies to a signed timestamp, and there is none"},
		{`{` + sig + `, "signed": "{ts}{body}", "timestamp": {"from": "header", "header": "X-T", "format": "unix"}, "tolerance": "-1s"}`, "must not be negative"},
		{`{` + sig + `, "timestamp": {"from": "header", "header": "X-T", "format": "unix"}}`, "the timestamp is checked but not signed, so anyone could replay a delivery with a fresh one: put {ts} or {header.X-T} in signed"},
		{`{` + sig + `, "signed": "{header.X-Other}{body}", "timestamp": {"from": "header", "header": "X-T", "format": "unix"}}`, "checked but not signed"},
		{`{"signatures": [{"header": "S", "params": ",", "sig": "v1", "ts": "t"}], "timestamp": {"from": "params", "format": "unix"}}`, "checked but not signed, so anyone could replay a delivery with a fresh one: put {ts} in signed"},
		{`{` + sig + `, "id": {"header": "X-Id", "body": "id"}}`, "id: give a header or a body field, not both"},
		{`{` + sig + `, "event": {}}`, "event: say where it is: event header <Name>, or event body <field>"},
		{`{` + sig + `, "id": {"header": "X Id"}}`, "'X Id' is not a header name"},
		{`{"signatures": [{"header": "A", "params": ",", "sig": "v1", "ts": "t"}, {"header": "B", "params": ",", "sig": "v1", "ts": "t"}], "timestamp": {"from": "params", "format": "unix"}}`, "two signature headers carry a timestamp"},
		{`{"signatures": [{"header": "A", "params": ",", "sig": "v1", "ts": "t"}, {"header": "B"}], "timestamp": {"from": "params", "format": "unix"}}`, "must be the only signature line"},
		{`{` + sig + `, "header_fallbacks": {"X-Sig": ["x-sig"]}}`, "falls back to itself"},
		{`{` + sig + `, "header_fallbacks": {"X-Sig": []}}`, "needs the other name(s)"},
		{`{` + sig + `, "header_fallbacks": {"X-Sig": ["A"], "x-sig": ["B"]}}`, "is given twice"},
	} {
		_, err := hmProvision(t, tc.config)
		if err == nil {
			t.Errorf("%s: provisioned, want an error saying %q", tc.config, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.config, err, tc.want)
		}
	}
}

// Configurations that provision, sha1 included (it logs a warning).
func TestHMACProvisionAccepts(t *testing.T) {
	for _, config := range []string{
		`{"signatures": [{"header": "X-Sig"}]}`,
		`{"algorithm": "sha1", "signatures": [{"header": "X-Hub-Signature", "pattern": "sha1={sig}"}]}`,
		`{"algorithm": "SHA512", "signatures": [{"header": "X-Sig", "encoding": "base64"}]}`,
		`{"algorithm": "ed25519", "signatures": [{"header": "X-Sig"}], "signed": "{header.X-T}{body}"}`,
		`{"signatures": [{"header": "X-Sig"}], "signed": "{header.x-t}{body}", "timestamp": {"from": "header", "header": "X-T", "format": "unix"}}`,
		`{"algorithm": "ecdsa-p256", "signatures": [{"header": "X-Sig", "encoding": "base64"}]}`,
		`{"signatures": [{"header": "X-Sig", "params": ";", "sig": "h1", "ts": "ts"}], "signed": "{ts}:{body}", "timestamp": {"from": "params", "format": "unix"}, "tolerance": 0}`,
		`{"signatures": [{"header": "X-Sig", "pattern": "{sig}"}], "signed": "\\{{body}\\}", "id": {"body": "id"}, "event": {"body": "id"}}`,
		`{"signatures": [{"header": "X-Sig"}], "signed": "{http.request.header.X-A}{body}"}`,
	} {
		if _, err := hmProvision(t, config); err != nil {
			t.Errorf("%s: %v", config, err)
		}
	}
}

// hmReq builds a request with the headers, in pairs name, value; its
// body fails the test if Parse reads it.
func hmReq(t *testing.T, kv ...string) (*http.Request, *trapBody) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/hook", nil)
	body := &trapBody{t: t}
	r.Body = body
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r, body
}

var (
	hmNow  = time.Unix(1_700_000_000, 0)
	hmMAC  = bytes.Repeat([]byte{0xab}, 32)
	hmHex  = hex.EncodeToString(hmMAC)
	hmB64  = base64.StdEncoding.EncodeToString(hmMAC)
	hmMAC2 = bytes.Repeat([]byte{0xcd}, 32)
	hmHex2 = hex.EncodeToString(hmMAC2)
	hmB642 = base64.StdEncoding.EncodeToString(hmMAC2)
)

// TestHMACParse covers each signature format, the timestamp and the
// template, with the mutations of the existing senders' tables.
func TestHMACParse(t *testing.T) {
	const (
		github  = `{"signatures": [{"header": "X-Hub-Signature-256", "pattern": "sha256={sig}"}]}`
		bare64  = `{"signatures": [{"header": "X-Sig", "encoding": "base64"}]}`
		list    = `{"signatures": [{"header": "X-PagerDuty-Signature", "list": ",", "pattern": "v1={sig}"}]}`
		params  = `{"signatures": [{"header": "Paddle-Signature", "params": ";", "sig": "h1", "ts": "ts"}], "signed": "{ts}:{body}", "timestamp": {"from": "params", "format": "unix"}}`
		box     = `{"signatures": [{"header": "Box-Signature-Primary", "encoding": "base64"}, {"header": "Box-Signature-Secondary", "encoding": "base64"}], "signed": "{body}{header.Box-Delivery-Timestamp}", "timestamp": {"from": "header", "header": "Box-Delivery-Timestamp", "format": "rfc3339"}, "tolerance": "10m"}`
		twitch  = `{"signatures": [{"header": "Twitch-Eventsub-Message-Signature", "pattern": "sha256={sig}"}], "signed": "{header.Twitch-Eventsub-Message-Id}{header.Twitch-Eventsub-Message-Timestamp}{body}", "timestamp": {"from": "header", "header": "Twitch-Eventsub-Message-Timestamp", "format": "rfc3339"}}`
		hubspot = `{"signatures": [{"header": "X-Sig", "encoding": "base64"}], "signed": "POST{body}{ts}", "timestamp": {"from": "header", "header": "X-Ts", "format": "unix_ms"}}`
		teams   = `{"signatures": [{"header": "Authorization", "pattern": "HMAC {sig}", "encoding": "base64"}]}`
		svix    = `{"signatures": [{"header": "webhook-signature", "list": " ", "pattern": "v1,{sig}", "encoding": "base64"}], "signed": "{header.webhook-id}.{ts}.{body}", "timestamp": {"from": "header", "header": "webhook-timestamp", "format": "unix"}, "header_fallbacks": {"webhook-id": ["svix-id"], "webhook-timestamp": ["svix-timestamp"], "webhook-signature": ["svix-signature"]}}`
	)
	boxTS := hmNow.Add(-9 * time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, config string
		headers      []string
		want         error    // nil: Parse succeeds
		sigs         [][]byte // with want nil
		prefix       string
		suffix       string
	}{
		{"pattern", github, []string{"X-Hub-Signature-256", "sha256=" + hmHex}, nil, [][]byte{hmMAC}, "", ""},
		{"pattern upper-case literal and hex", github, []string{"X-Hub-Signature-256", "SHA256=" + strings.ToUpper(hmHex)}, nil, [][]byte{hmMAC}, "", ""},
		{"pattern missing header", github, nil, providers.ErrMissingSignature, nil, "", ""},
		{"pattern empty header", github, []string{"X-Hub-Signature-256", ""}, providers.ErrMissingSignature, nil, "", ""},
		{"pattern repeated header", github, []string{"X-Hub-Signature-256", "sha256=" + hmHex, "X-Hub-Signature-256", "sha256=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"pattern without its literal", github, []string{"X-Hub-Signature-256", hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"pattern other algorithm", github, []string{"X-Hub-Signature-256", "sha1=" + hmHex[:40]}, providers.ErrMalformedSignature, nil, "", ""},
		{"pattern truncated", github, []string{"X-Hub-Signature-256", "sha256=" + hmHex[:62]}, providers.ErrMalformedSignature, nil, "", ""},
		{"pattern not hex", github, []string{"X-Hub-Signature-256", "sha256=" + strings.Repeat("zz", 32)}, providers.ErrMalformedSignature, nil, "", ""},
		{"base64", bare64, []string{"X-Sig", hmB64}, nil, [][]byte{hmMAC}, "", ""},
		{"base64 unpadded", bare64, []string{"X-Sig", strings.TrimRight(hmB64, "=")}, providers.ErrMalformedSignature, nil, "", ""},
		{"base64 url alphabet", bare64, []string{"X-Sig", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))}, providers.ErrMalformedSignature, nil, "", ""},
		{"base64 given hex", bare64, []string{"X-Sig", hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"list two", list, []string{"X-PagerDuty-Signature", "v1=" + hmHex + ",v1=" + hmHex2}, nil, [][]byte{hmMAC, hmMAC2}, "", ""},
		{"list spaces and other versions", list, []string{"X-PagerDuty-Signature", "v2=abc, v1=" + hmHex + " ,,v1=zz"}, nil, [][]byte{hmMAC}, "", ""},
		{"list no usable item", list, []string{"X-PagerDuty-Signature", "v2=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"list too many", list, []string{"X-PagerDuty-Signature", strings.Repeat("v1="+hmHex+",", 17)}, providers.ErrMalformedSignature, nil, "", ""},
		{"params", params, []string{"Paddle-Signature", "ts=1700000000;h1=" + hmHex}, nil, [][]byte{hmMAC}, "1700000000:", ""},
		{"params rotation and unknown keys", params, []string{"Paddle-Signature", "h1=" + hmHex2 + ";x=1;ts=1700000000;h1=bad;h1=" + hmHex}, nil, [][]byte{hmMAC2, hmMAC}, "1700000000:", ""},
		{"params no ts", params, []string{"Paddle-Signature", "h1=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params ts twice", params, []string{"Paddle-Signature", "ts=1700000000;ts=1700000000;h1=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params no sig", params, []string{"Paddle-Signature", "ts=1700000000;h2=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params stale", params, []string{"Paddle-Signature", "ts=1699999699;h1=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params future", params, []string{"Paddle-Signature", "ts=1700000301;h1=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params edge of tolerance", params, []string{"Paddle-Signature", "ts=1699999700;h1=" + hmHex}, nil, [][]byte{hmMAC}, "1699999700:", ""},
		{"params ts not a number", params, []string{"Paddle-Signature", "ts=17e8;h1=" + hmHex}, providers.ErrMalformedSignature, nil, "", ""},
		{"params ts leading zero signs the number", params, []string{"Paddle-Signature", "ts=01700000000;h1=" + hmHex}, nil, [][]byte{hmMAC}, "1700000000:", ""},
		{"box suffix", box, []string{"Box-Signature-Primary", hmB64, "Box-Signature-Secondary", hmB642, "Box-Delivery-Timestamp", boxTS}, nil, [][]byte{hmMAC, hmMAC2}, "", boxTS},
		{"box secondary only", box, []string{"Box-Signature-Secondary", hmB642, "Box-Delivery-Timestamp", boxTS}, nil, [][]byte{hmMAC2}, "", boxTS},
		{"box neither", box, []string{"Box-Delivery-Timestamp", boxTS}, providers.ErrMissingSignature, nil, "", ""},
		{"box one malformed", box, []string{"Box-Signature-Primary", hmHex, "Box-Signature-Secondary", hmB642, "Box-Delivery-Timestamp", boxTS}, providers.ErrMalformedSignature, nil, "", ""},
		{"box no timestamp", box, []string{"Box-Signature-Primary", hmB64}, providers.ErrMissingSignature, nil, "", ""},
		{"box timestamp not RFC 3339", box, []string{"Box-Signature-Primary", hmB64, "Box-Delivery-Timestamp", "1700000000"}, providers.ErrMalformedSignature, nil, "", ""},
		{"box stale", box, []string{"Box-Signature-Primary", hmB64, "Box-Delivery-Timestamp", hmNow.Add(-11 * time.Minute).UTC().Format(time.RFC3339)}, providers.ErrMalformedSignature, nil, "", ""},
		{"twitch", twitch, []string{"Twitch-Eventsub-Message-Signature", "sha256=" + hmHex, "Twitch-Eventsub-Message-Id", "m-1", "Twitch-Eventsub-Message-Timestamp", "2023-11-14T22:13:20.123Z"}, nil, [][]byte{hmMAC}, "m-12023-11-14T22:13:20.123Z", ""},
		{"twitch no id", twitch, []string{"Twitch-Eventsub-Message-Signature", "sha256=" + hmHex, "Twitch-Eventsub-Message-Timestamp", "2023-11-14T22:13:20Z"}, providers.ErrMissingSignature, nil, "", ""},
		{"twitch repeated id", twitch, []string{"Twitch-Eventsub-Message-Signature", "sha256=" + hmHex, "Twitch-Eventsub-Message-Id", "a", "Twitch-Eventsub-Message-Id", "b", "Twitch-Eventsub-Message-Timestamp", "2023-11-14T22:13:20Z"}, providers.ErrMalformedSignature, nil, "", ""},
		{"unix_ms prefix and suffix", hubspot, []string{"X-Sig", hmB64, "X-Ts", "1700000000123"}, nil, [][]byte{hmMAC}, "POST", "1700000000123"},
		{"unix_ms given seconds is stale", hubspot, []string{"X-Sig", hmB64, "X-Ts", "1700000000"}, providers.ErrMalformedSignature, nil, "", ""},
		{"literal with a space", teams, []string{"Authorization", "HMAC " + hmB64}, nil, [][]byte{hmMAC}, "", ""},
		{"literal with a space, other scheme", teams, []string{"Authorization", "Bearer " + hmB64}, providers.ErrMalformedSignature, nil, "", ""},
		{"fallback headers", svix, []string{"svix-id", "msg_1", "svix-timestamp", "1700000000", "svix-signature", "v1," + hmB64}, nil, [][]byte{hmMAC}, "msg_1.1700000000.", ""},
		{"primary headers first", svix, []string{"webhook-id", "msg_2", "svix-id", "msg_1", "webhook-timestamp", "1700000000", "webhook-signature", "v1," + hmB64}, nil, [][]byte{hmMAC}, "msg_2.1700000000.", ""},
		{"fallback missing too", svix, []string{"webhook-timestamp", "1700000000", "webhook-signature", "v1," + hmB64}, providers.ErrMissingSignature, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := hmMust(t, tc.config)
			r, body := hmReq(t, tc.headers...)
			got, err := p.Parse(r, hmNow)
			if body.read {
				t.Error("Parse read the body")
			}
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Parse = %v, want %v", err, tc.want)
				}
				for i := 1; i < len(tc.headers); i += 2 {
					if len(tc.headers[i]) >= 16 {
						assertNotEchoed(t, err.Error(), tc.headers[i])
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Scheme != providers.SchemeHMAC || got.Hash != crypto.SHA256 {
				t.Errorf("scheme %v hash %v", got.Scheme, got.Hash)
			}
			if string(got.Prefix) != tc.prefix || string(got.Suffix) != tc.suffix {
				t.Errorf("prefix %q suffix %q, want %q %q", got.Prefix, got.Suffix, tc.prefix, tc.suffix)
			}
			if len(got.Signatures) != len(tc.sigs) {
				t.Fatalf("%d signatures, want %d", len(got.Signatures), len(tc.sigs))
			}
			for i := range tc.sigs {
				if !bytes.Equal(got.Signatures[i], tc.sigs[i]) {
					t.Errorf("signature %d = %x, want %x", i, got.Signatures[i], tc.sigs[i])
				}
			}
		})
	}
}

// The algorithm sets the scheme, the hash and the signature's size.
func TestHMACParseAlgorithms(t *testing.T) {
	// SendGrid's library signature (sendgrid/sendgrid-go
	// helpers/eventwebhook/eventwebhook_test.go), ASN.1 DER
	der := mustB64("MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=")
	for _, tc := range []struct {
		alg    string
		value  string
		scheme providers.Scheme
		hash   crypto.Hash
		ok     bool
	}{
		{"sha1", hex.EncodeToString(make([]byte, 20)), providers.SchemeHMAC, crypto.SHA1, true},
		{"sha1", hmHex, providers.SchemeHMAC, crypto.SHA1, false},
		{"sha512", hex.EncodeToString(make([]byte, 64)), providers.SchemeHMAC, crypto.SHA512, true},
		{"sha512", hmHex, providers.SchemeHMAC, crypto.SHA512, false},
		{"ed25519", hex.EncodeToString(make([]byte, 64)), providers.SchemeEd25519, 0, true},
		{"ed25519", hmHex, providers.SchemeEd25519, 0, false},
		{"ecdsa-p256", hex.EncodeToString(der), providers.SchemeECDSAP256SHA256, 0, true},
		{"ecdsa-p256", hex.EncodeToString(make([]byte, 73)), providers.SchemeECDSAP256SHA256, 0, false},
		{"ecdsa-p256", hex.EncodeToString(make([]byte, 64)), providers.SchemeECDSAP256SHA256, 0, false},
		{"ecdsa-p256", hex.EncodeToString(append(der[:len(der):len(der)], 0)), providers.SchemeECDSAP256SHA256, 0, false},
	} {
		p := hmMust(t, `{"algorithm": "`+tc.alg+`", "signatures": [{"header": "X-Sig"}]}`)
		r, _ := hmReq(t, "X-Sig", tc.value)
		got, err := p.Parse(r, hmNow)
		if !tc.ok {
			if !errors.Is(err, providers.ErrMalformedSignature) {
				t.Errorf("%s with %d hex digits: %v, want malformed", tc.alg, len(tc.value), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.alg, err)
			continue
		}
		if got.Scheme != tc.scheme || got.Hash != tc.hash {
			t.Errorf("%s: scheme %v hash %v", tc.alg, got.Scheme, got.Hash)
		}
	}
	// ECDSA in base64: ASN.1 DER only, strict base64
	p := hmMust(t, `{"algorithm": "ecdsa-p256", "signatures": [{"header": "X-Sig", "encoding": "base64"}]}`)
	enc := base64.StdEncoding.EncodeToString
	for v, ok := range map[string]bool{
		enc(der):                         true,
		enc(der[:len(der)-1]):            false, // truncated
		enc(make([]byte, 64)):            false, // raw r‖s
		enc(append(der, 0)):              false, // trailing byte
		strings.TrimRight(enc(der), "="): false,
		hex.EncodeToString(der):          false,
	} {
		r, _ := hmReq(t, "X-Sig", v)
		_, err := p.Parse(r, hmNow)
		if (err == nil) != ok || (err != nil && !errors.Is(err, providers.ErrMalformedSignature)) {
			t.Errorf("ecdsa-p256, signature %q: %v", v, err)
		}
	}
}

func TestHMACDescribe(t *testing.T) {
	body := []byte(`{"id": "evt_1", "type": "invoice.paid", "n": 7}`)
	for _, tc := range []struct {
		config    string
		headers   []string
		id, event string
	}{
		{`"id": {"header": "X-Id"}, "event": {"header": "X-Event"}`, []string{"X-Id", " d-1 ", "X-Event", "push"}, "d-1", "push"},
		{`"id": {"body": "id"}, "event": {"body": "type"}`, nil, "evt_1", "invoice.paid"},
		{`"id": {"body": "n"}, "event": {"header": "X-Event"}`, []string{"X-Event", "e"}, "7", "e"},
		{`"id": {"header": "X-Id"}, "event": {"body": "type"}`, nil, "", "invoice.paid"},
		{`"event": {"body": "type"}`, []string{"X-Id", "x"}, "", "invoice.paid"},
		{`"id": {"body": "missing"}`, nil, "", ""},
		{`"id": {"header": "webhook-id"}, "header_fallbacks": {"webhook-id": ["svix-id"]}`, []string{"svix-id", "msg_9"}, "msg_9", ""},
	} {
		p := hmMust(t, `{"signatures": [{"header": "X-Sig"}], `+tc.config+`}`)
		if f := p.Fields(); len(f) != 2 || f[0] != "id" || f[1] != "event" {
			t.Fatalf("Fields() = %v", f)
		}
		r, _ := hmReq(t, tc.headers...)
		vals := []string{"stale", "stale"}
		p.Describe(r.Header, body, vals)
		if vals[0] != tc.id || vals[1] != tc.event {
			t.Errorf("%s: id %q event %q, want %q %q", tc.config, vals[0], vals[1], tc.id, tc.event)
		}
	}
}

func TestHMACKeyEncodings(t *testing.T) {
	for _, tc := range []struct {
		enc, secret string
		want        []byte
		err         string
	}{
		{"", "It's a Secret", []byte("It's a Secret"), ""},
		{"raw", "whsec_abc", []byte("whsec_abc"), ""},
		{"hex", "00ff10", []byte{0, 0xff, 0x10}, ""},
		{"hex", "00FF10", []byte{0, 0xff, 0x10}, ""},
		{"hex", "secret-not-hex", nil, "key_encoding is hex, and the secret is not hex digits"},
		{"base64", "AP8Q", []byte{0, 0xff, 0x10}, ""},
		{"base64", "AP8QAA", []byte{0, 0xff, 0x10, 0}, ""},
		{"base64", "AP8QAA==", []byte{0, 0xff, 0x10, 0}, ""},
		{"base64", "no*base64", nil, "not standard base64"},
		{"whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustB64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ""},
		{"whsec", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustB64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ""},
		{"whsec", "whsec_", nil, "decodes to an empty key"},
		{"whsec", "whsec_not!base64", nil, "not whsec_ followed by base64"},
	} {
		cfg := `{"signatures": [{"header": "X-Sig"}]}`
		if tc.enc != "" {
			cfg = `{"key_encoding": "` + tc.enc + `", "signatures": [{"header": "X-Sig"}]}`
		}
		p := hmMust(t, cfg)
		if p.PublicKeys() {
			t.Fatalf("%s: PublicKeys() is true for HMAC", tc.enc)
		}
		got, err := p.Key(tc.secret)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: %v, want %q", tc.enc, tc.secret, err, tc.err)
			} else {
				assertNotEchoed(t, err.Error(), tc.secret)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s %q: %x %v, want %x", tc.enc, tc.secret, got, err, tc.want)
		}
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Public keys: RFC 8032 §7.1 TEST 1's key, and SendGrid's library key
// (sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go).
func TestHMACPublicKeys(t *testing.T) {
	const (
		edHex  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
		ecdsa1 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	)
	ed := hmMust(t, `{"algorithm": "ed25519", "signatures": [{"header": "X-Signature-Ed25519"}]}`)
	if !ed.PublicKeys() {
		t.Fatal("ed25519: PublicKeys() is false")
	}
	k, err := ed.PublicKey(edHex)
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := k.(ed25519.PublicKey); !ok || hex.EncodeToString(pk) != edHex {
		t.Errorf("ed25519 key %T %x", k, k)
	}
	if _, err := ed.PublicKey(ecdsa1); err == nil {
		t.Error("ed25519 took an ECDSA key")
	}
	ec := hmMust(t, `{"algorithm": "ecdsa-p256", "signatures": [{"header": "X-Sig", "encoding": "base64"}]}`)
	if !ec.PublicKeys() {
		t.Fatal("ecdsa-p256: PublicKeys() is false")
	}
	k, err = ec.PublicKey(ecdsa1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*ecdsa.PublicKey); !ok {
		t.Errorf("ecdsa key %T", k)
	}
	if _, err := ec.PublicKey(edHex); err == nil {
		t.Error("ecdsa-p256 took an Ed25519 key")
	}
	hm := hmMust(t, `{"signatures": [{"header": "X-Sig"}]}`)
	if _, err := hm.PublicKey(edHex); err == nil {
		t.Error("sha256 took a public key")
	}
}
