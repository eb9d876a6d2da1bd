package webhookverify

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// hcParse parses a webhook_verify hmac block (lines joined with "\n",
// the directive on line 1).
func hcParse(lines ...string) (*Handler, error) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(strings.Join(lines, "\n")))
	return &h, err
}

// Each mistake in an hmac block fails at its line, with a sentence that
// says how to fix it.
func TestHMACCaddyfileErrors(t *testing.T) {
	const (
		head = "webhook_verify hmac {env.HOOK_SECRET} {"
		sig  = "\tsignature X-Sig hex"
	)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
		line  int
	}{
		{"no signature", []string{head, "\tsigned \"{body}\"", "}"},
			"webhook_verify hmac: no signature: say where the signature is, e.g. signature X-Hub-Signature-256", 1},
		{"no signature, no block", []string{"webhook_verify hmac {env.HOOK_SECRET}"}, "no signature", 1},
		{"md5", []string{head, sig, "\talgorithm md5", "}"}, "algorithm md5 is not supported: MD5 is broken and no sender should sign with it; ask the sender for sha256", 3},
		{"unknown algorithm", []string{head, "\talgorithm sha384", sig, "}"}, "unknown algorithm 'sha384': use sha256, sha512, sha1, ed25519 or ecdsa-p256", 2},
		{"algorithm twice", []string{head, "\talgorithm sha256", "\talgorithm sha512", sig, "}"}, "algorithm already specified", 3},
		{"algorithm without value", []string{head, "\talgorithm", sig, "}"}, "algorithm takes one value, e.g. algorithm sha256", 2},
		{"unknown key encoding", []string{head, sig, "\tkey_encoding base58", "}"}, "unknown key_encoding 'base58': use raw, hex, base64 or whsec", 3},
		{"key encoding with a public key", []string{head, "\talgorithm ed25519", "\tkey_encoding hex", sig, "}"}, "key_encoding applies to HMAC secrets: ed25519 public keys are read as the sender shows them", 3},
		{"unknown signature encoding", []string{head, "\tsignature X-Sig base32", "}"}, "unknown signature encoding 'base32': use hex or base64", 2},
		{"unknown encoding after a pattern", []string{head, "\tsignature X-Sig \"sha256={sig}\" b64", "}"}, "unknown signature encoding 'b64': use hex or base64", 2},
		{"pattern without sig", []string{head, "\tsignature X-Sig \"sha256=\" hex", "}"}, "signature pattern 'sha256=' has no {sig}", 2},
		{"signature without header", []string{head, "\tsignature", "}"}, "signature needs a header", 2},
		{"signature bad header", []string{head, "\tsignature X:Sig", "}"}, "'X:Sig' is not a header name", 2},
		{"list without item", []string{head, "\tsignature X-Sig list \" \"", "}"}, "signature list needs a separator and an item pattern", 2},
		{"list empty separator", []string{head, "\tsignature X-Sig list \"\" \"v1,{sig}\"", "}"}, "the separator is empty", 2},
		{"list item holds the separator", []string{head, "\tsignature X-Sig list \",\" \"v1,{sig}\" base64", "}"}, "contains the separator ','", 2},
		{"params without sig", []string{head, "\tsignature S params \",\" ts=t hex", "}"}, "signature params needs the key of the signatures", 2},
		{"params unknown key", []string{head, "\tsignature S params \",\" sig=v1 t=t hex", "}"}, "unknown 't=': use sig=<key of the signatures> and ts=<key of the timestamp>", 2},
		{"params empty key", []string{head, "\tsignature S params \",\" sig= hex", "}"}, "sig= needs the key's name", 2},
		{"trailing argument", []string{head, "\tsignature X-Sig \"{sig}\" hex extra", "}"}, "unexpected 'extra' after the encoding", 2},
		{"no body", []string{head, sig, "\tsigned \"{header.X-Ts}.\"", "}"}, "signed: no {body} in \"{header.X-Ts}.\": say where the body goes", 3},
		{"two bodies", []string{head, sig, "\tsigned \"{body}{body}\"", "}"}, "signed: {body} appears twice", 3},
		{"unknown placeholder", []string{head, sig, "\tsigned \"{url}{body}\"", "}"}, "signed: unknown placeholder {url}: use {body}, {header.Name} or {ts}", 3},
		{"signed twice", []string{head, sig, "\tsigned \"{body}\"", "\tsigned \"{body}\"", "}"}, "signed already specified", 4},
		{"ts without timestamp", []string{head, sig, "\tsigned \"{ts}.{body}\"", "}"}, "signed uses {ts} but there is no timestamp: add one", 3},
		{"ts= without timestamp", []string{head, "\tsignature S params \",\" sig=v1 ts=t hex", "\tsigned \"{body}\"", "}"}, "the params signature names a timestamp (ts=) but there is no timestamp line", 2},
		{"timestamp params without ts=", []string{head, sig, "\ttimestamp params unix", "}"}, "timestamp params needs a params signature with ts=", 3},
		{"timestamp unknown source", []string{head, sig, "\ttimestamp query t unix", "}"}, "unknown timestamp source 'query': use header <Name>, or params", 3},
		{"timestamp unknown format", []string{head, sig, "\ttimestamp header X-Ts iso8601", "}"}, "unknown timestamp format 'iso8601': use unix (seconds), unix_ms or rfc3339", 3},
		{"timestamp without format", []string{head, sig, "\ttimestamp header X-Ts", "}"}, "timestamp needs a format after its source", 3},
		{"timestamp bad tolerance", []string{head, sig, "\ttimestamp header X-Ts unix soon", "}"}, "the tolerance 'soon' is not a duration", 3},
		{"tolerance twice", []string{head, sig, "\ttimestamp header X-Ts unix 5m", "\ttolerance 1m", "}"}, "tolerance already specified", 4},
		{"tolerance without timestamp", []string{head, sig, "\ttolerance 1m", "}"}, "tolerance applies to a signed timestamp, and there is none", 3},
		{"timestamp not signed", []string{head, sig, "\ttimestamp header X-Ts unix", "\tid header X-Id", "}"}, "the timestamp is checked but not signed, so anyone could replay a delivery with a fresh one: put {ts} or {header.X-Ts} in signed", 3},
		{"id unknown source", []string{head, sig, "\tid query id", "}"}, "unknown id source 'query': use id header <Name>, or id body <field>", 3},
		{"event without name", []string{head, sig, "\tevent body", "}"}, "event takes a source and a name", 3},
		{"fallback alone", []string{head, sig, "\theader_fallback webhook-id", "}"}, "header_fallback webhook-id needs the other name(s)", 3},
		{"fallback twice", []string{head, sig, "\theader_fallback a b", "\theader_fallback A c", "}"}, "header_fallback: A is given twice", 4},
		{"second ts= line", []string{head, "\tsignature A params \",\" sig=v1 ts=t", "\tsignature B hex", "\ttimestamp params unix", "}"}, "must be the only signature line", 3},
		{"unknown option", []string{head, sig, "\tsignatures X-Sig", "}"}, "unrecognized subdirective 'signatures': use secret, enforce, max_body_size, max_inflight_bytes, body_timeout, basic_auth, bearer_token, dedupe or queue (and for hmac: algorithm, key_encoding, signature, signed, timestamp, tolerance, id, event, header_fallback)", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hcParse(tc.lines...)
			if err == nil {
				t.Fatalf("parsed, want an error saying %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to say %q", msg, tc.want)
			}
			if at := ", at Testfile:" + strconv.Itoa(tc.line); !strings.HasSuffix(msg, at) {
				t.Errorf("error %q\nwant it to end with %q", msg, at)
			}
		})
	}
}

// A full block parses to the JSON it describes, options in any order.
func TestHMACCaddyfileBlock(t *testing.T) {
	h, err := hcParse(
		"webhook_verify hmac {env.BOX_PRIMARY} {",
		"\tsecret {env.BOX_SECONDARY}",
		"\tevent body trigger",
		"\tid header BOX-DELIVERY-ID",
		"\ttimestamp header BOX-DELIVERY-TIMESTAMP rfc3339 10m",
		"\tsigned \"{body}{http.request.header.BOX-DELIVERY-TIMESTAMP}\"",
		"\tsignature BOX-SIGNATURE-PRIMARY base64",
		"\tsignature BOX-SIGNATURE-SECONDARY base64",
		"\talgorithm sha256",
		"\tmax_body_size 1MiB",
		"}",
	)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(h.ProviderRaw, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(`{
		"name": "hmac",
		"algorithm": "sha256",
		"signatures": [
			{"header": "BOX-SIGNATURE-PRIMARY", "encoding": "base64"},
			{"header": "BOX-SIGNATURE-SECONDARY", "encoding": "base64"}
		],
		"signed": "{body}{header.BOX-DELIVERY-TIMESTAMP}",
		"timestamp": {"from": "header", "header": "BOX-DELIVERY-TIMESTAMP", "format": "rfc3339"},
		"tolerance": 600000000000,
		"id": {"header": "BOX-DELIVERY-ID"},
		"event": {"body": "trigger"}
	}`), &want)
	if !twJSONEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("provider\n got %s\nwant %s", gj, wj)
	}
	if len(h.Secrets) != 2 || h.MaxBodySize != 1<<20 {
		t.Errorf("handler options lost: %+v", h)
	}
}

// With ed25519 or ecdsa-p256 each secret is a public key, decoded when the
// config is loaded: a key of the wrong kind fails there, naming the
// secret's position and the forms expected, never its value.
func TestHMACPublicKeysAtProvision(t *testing.T) {
	const edPub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" // RFC 8032 TEST 1
	const sgPub = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	ed := json.RawMessage(`{"name": "hmac", "algorithm": "ed25519", "signatures": [{"header": "X-Sig"}], "signed": "{header.X-T}{body}"}`)
	ec := json.RawMessage(`{"name": "hmac", "algorithm": "ecdsa-p256", "signatures": [{"header": "X-Sig", "encoding": "base64"}]}`)
	for _, tc := range []struct {
		provider json.RawMessage
		keys     []string
		want     string // "" provisions
	}{
		{ed, []string{edPub}, ""},
		{ed, []string{edPub, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "secret 2"},
		{ed, []string{sgPub}, "not an Ed25519 public key"},
		{ec, []string{sgPub}, ""},
		{ec, []string{edPub}, "not an ECDSA P-256 public key"},
	} {
		_, err := svHandler(t, tc.provider, tc.keys)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s with %d keys: %v", tc.provider, len(tc.keys), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.provider, err, tc.want)
			continue
		}
		for _, k := range tc.keys {
			if strings.Contains(err.Error(), k) {
				t.Errorf("the error %q carries a key", err)
			}
		}
	}
}
