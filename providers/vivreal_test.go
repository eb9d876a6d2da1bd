package providers_test

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Signatures used by the Parse tables: the committed vectors' MACs of the
// Vivreal "example" and Vev "empty-body" cases (testdata/vectors), any
// 32- and 64-byte values would do.
const (
	vivHex = "6beceb1e1c3731509b41518c21f2f1506381544cfc22d080ffa12a51ed1651ae"
	vevHex = "a31960108419d88d9c3d71968d29c1844b2482ec560b4fb4639c4d58f5f9070b" +
		"b3f42a4384ed167c9a2b683db021ab4927994314da35bc10cf9631d70c922459"
)

// parseCase is one row of a Parse table. values are the signature header's
// values (nil: no header); want is nil when Parse must succeed.
type parseCase struct {
	name   string
	header string // defaults to the provider's signature header
	values []string
	want   error
}

// trapBody fails the test if Parse reads the body: it runs before the body.
type trapBody struct {
	t    *testing.T
	read bool
}

func (b *trapBody) Read([]byte) (int, error) { b.read = true; return 0, errors.New("body read") }
func (b *trapBody) Close() error             { return nil }

// runParse checks each case: success gives Hash and one signature, the
// decoded sigHex; failure wraps the wanted sentinel and never echoes the
// header's value.
func runParse(t *testing.T, p providers.Provider, header string, hash crypto.Hash, sigHex string, cases []parseCase) {
	t.Helper()
	wantMAC, err := hex.DecodeString(sigHex)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &trapBody{t: t}
			r := httptest.NewRequest(http.MethodPost, "/hook", nil)
			r.Body = body
			name := header
			if tc.header != "" {
				name = tc.header
			}
			for _, v := range tc.values {
				r.Header.Add(name, v)
			}
			got, err := p.Parse(r, time.Unix(1_700_000_000, 0))
			if body.read {
				t.Error("Parse read the request body")
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want success", tc.values, err)
				}
				if got.Hash != hash {
					t.Errorf("Hash = %v, want %v", got.Hash, hash)
				}
				if got.Prefix != nil {
					t.Errorf("Prefix = %q, want nil (the body alone is signed)", got.Prefix)
				}
				if len(got.Signatures) != 1 || !bytes.Equal(got.Signatures[0], wantMAC) {
					t.Errorf("Signatures = %x, want [%x]", got.Signatures, wantMAC)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) succeeded (%x), want %v", tc.values, got.Signatures, tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse(%q) = %v, want errors.Is %v", tc.values, err, tc.want)
			}
			other := providers.ErrMissingSignature
			if tc.want == providers.ErrMissingSignature {
				other = providers.ErrMalformedSignature
			}
			if errors.Is(err, other) {
				t.Errorf("Parse(%q) = %v, also wraps %v", tc.values, err, other)
			}
			for _, v := range tc.values {
				assertNotEchoed(t, err.Error(), v)
			}
		})
	}
}

// assertNotEchoed fails if msg contains any 12-byte run of the header value v.
func assertNotEchoed(t *testing.T, msg, v string) {
	t.Helper()
	const run = 12
	for i := 0; i+run <= len(v); i++ {
		if strings.Contains(msg, v[i:i+run]) {
			t.Errorf("error %q echoes the signature header's value (%q)", msg, v[i:i+run])
			return
		}
	}
}

func TestVivrealModule(t *testing.T) {
	info := providers.Vivreal{}.CaddyModule()
	if info.ID != "http.webhook_verify.providers.vivreal" {
		t.Errorf("ID = %q", info.ID)
	}
	if _, ok := info.New().(providers.Provider); !ok {
		t.Errorf("New() = %T, not a providers.Provider", info.New())
	}
	mod, err := caddy.GetModule("http.webhook_verify.providers.vivreal")
	if err != nil {
		t.Fatalf("vivreal is not registered: %v", err)
	}
	if mod.ID.Name() != "vivreal" {
		t.Errorf("module name = %q, want vivreal", mod.ID.Name())
	}
	if got := (providers.Vivreal{}).Fields(); strings.Join(got, ",") != "id,event" {
		t.Errorf("Fields() = %q, want [id event]", got)
	}
}

func TestVivrealParse(t *testing.T) {
	up := strings.ToUpper(vivHex)
	h := providers.VivrealSignatureHeader
	if h != "X-Vivreal-Signature" {
		t.Fatalf("VivrealSignatureHeader = %q", h)
	}
	missing, malformed := providers.ErrMissingSignature, providers.ErrMalformedSignature
	cases := []parseCase{
		// accepted
		{name: "bare hex", values: []string{vivHex}},
		{name: "sha256 prefix", values: []string{"sha256=" + vivHex}},
		{name: "upper-case hex", values: []string{up}},
		{name: "upper-case hex with prefix", values: []string{"sha256=" + up}},
		{name: "mixed-case hex", values: []string{vivHex[:32] + up[32:]}},
		{name: "SHA256 prefix", values: []string{"SHA256=" + vivHex}},
		{name: "Sha256 prefix", values: []string{"Sha256=" + up}},
		{name: "surrounding spaces", values: []string{"  " + vivHex + "  "}},
		{name: "surrounding tabs", values: []string{"\t" + vivHex + "\t"}},
		{name: "surrounding spaces with prefix", values: []string{" sha256=" + vivHex + " "}},
		{name: "lower-case header name", header: "x-vivreal-signature", values: []string{vivHex}},

		// missing
		{name: "no header", values: nil, want: missing},
		{name: "empty header", values: []string{""}, want: missing},
		{name: "blank header", values: []string{" \t "}, want: missing},
		{name: "only the vev header", header: "X-Vev-Signature", values: []string{"sha512=" + vevHex}, want: missing},

		// repeated
		{name: "repeated identical", values: []string{vivHex, vivHex}, want: malformed},
		{name: "repeated different", values: []string{vivHex, "sha256=" + strings.Repeat("0", 64)}, want: malformed},
		{name: "repeated one empty", values: []string{vivHex, ""}, want: malformed},
		{name: "two in one header", values: []string{vivHex + ", " + vivHex}, want: malformed},

		// not hex, wrong length
		{name: "bad hex digit", values: []string{"g" + vivHex[1:]}, want: malformed},
		{name: "bad hex digit with prefix", values: []string{"sha256=" + vivHex[:40] + "z" + vivHex[41:]}, want: malformed},
		{name: "non-ascii in hex", values: []string{vivHex[:62] + "é"}, want: malformed},
		{name: "odd length", values: []string{vivHex[:63]}, want: malformed},
		{name: "odd length with prefix", values: []string{"sha256=" + vivHex + "a"}, want: malformed},
		{name: "truncated", values: []string{vivHex[:62]}, want: malformed},
		{name: "half length", values: []string{vivHex[:32]}, want: malformed},
		{name: "too long", values: []string{vivHex + "00"}, want: malformed},
		{name: "sha512-length bare hex", values: []string{vevHex}, want: malformed},
		{name: "0x prefix", values: []string{"0x" + vivHex}, want: malformed},
		{name: "base64 not hex", values: []string{"a+zrHhw3MVCbQVGMIfLxUGOBVEz8ItCA/6EqUe0WUa4="}, want: malformed},

		// algorithm
		{name: "sha512 prefix with sha512 MAC", values: []string{"sha512=" + vevHex}, want: malformed},
		{name: "sha512 prefix with sha256-length hex", values: []string{"sha512=" + vivHex}, want: malformed},
		{name: "sha1 prefix", values: []string{"sha1=" + vivHex}, want: malformed},
		{name: "empty algorithm", values: []string{"=" + vivHex}, want: malformed},
		{name: "prefix without hex", values: []string{"sha256="}, want: malformed},
		{name: "algorithm alone", values: []string{"sha256"}, want: malformed},

		// extra '='
		{name: "double equals", values: []string{"sha256==" + vivHex}, want: malformed},
		{name: "equals inside hex", values: []string{"sha256=" + vivHex[:30] + "=" + vivHex[31:]}, want: malformed},
		{name: "short with equals", values: []string{"sha256=ab=cd"}, want: malformed},
		{name: "trailing equals", values: []string{"sha256=" + vivHex + "="}, want: malformed},

		// internal white space
		{name: "space after equals", values: []string{"sha256= " + vivHex}, want: malformed},
		{name: "space before equals", values: []string{"sha256 =" + vivHex}, want: malformed},
		{name: "space replacing a digit", values: []string{vivHex[:20] + " " + vivHex[21:]}, want: malformed},
		{name: "space inserted", values: []string{vivHex[:32] + " " + vivHex[32:]}, want: malformed},
		{name: "tab inserted with prefix", values: []string{"sha256=" + vivHex[:32] + "\t" + vivHex[32:]}, want: malformed},
	}
	runParse(t, providers.Vivreal{}, h, crypto.SHA256, vivHex, cases)
}

// vecCase is one committed test vector (testdata/vectors/gen.sh).
type vecCase struct {
	Name         string            `json:"name"`
	Algorithm    string            `json:"algorithm"`
	Secret       string            `json:"secret"`
	Header       string            `json:"header"`
	HeaderValues []string          `json:"header_values"`
	Expected     string            `json:"expected"`
	Fields       map[string]string `json:"fields"`
	Body         string            `json:"body"`
}

func loadVectors(t *testing.T, file string) []vecCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", file))
	if err != nil {
		t.Fatal(err)
	}
	var cases []vecCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(cases) < 3 {
		t.Fatalf("%s: only %d vectors", file, len(cases))
	}
	return cases
}

// testVectorsParseAndDescribe checks that every committed header value
// parses to the committed MAC and that Describe finds the committed fields.
func testVectorsParseAndDescribe(t *testing.T, p providers.Provider, file string, hash crypto.Hash) {
	for _, vc := range loadVectors(t, file) {
		t.Run(vc.Name, func(t *testing.T) {
			want, err := hex.DecodeString(vc.Expected)
			if err != nil || len(want) != hash.Size() {
				t.Fatalf("bad expected %q", vc.Expected)
			}
			if len(vc.HeaderValues) == 0 {
				t.Fatal("no header values")
			}
			for _, v := range vc.HeaderValues {
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(vc.Body))
				r.Header.Set(vc.Header, v)
				s, err := p.Parse(r, time.Now())
				if err != nil {
					t.Fatalf("Parse(%q): %v", v, err)
				}
				if s.Hash != hash || len(s.Signatures) != 1 || !bytes.Equal(s.Signatures[0], want) {
					t.Errorf("Parse(%q) = %v %x, want %v %x", v, s.Hash, s.Signatures, hash, want)
				}
			}
			names := p.Fields()
			vals := make([]string, len(names))
			p.Describe(http.Header{}, []byte(vc.Body), vals)
			for i, n := range names {
				if vals[i] != vc.Fields[n] {
					t.Errorf("Describe: %s = %q, want %q", n, vals[i], vc.Fields[n])
				}
			}
		})
	}
}

func TestVivrealVectorsParseAndDescribe(t *testing.T) {
	testVectorsParseAndDescribe(t, providers.Vivreal{}, "vivreal.json", crypto.SHA256)
}

func TestVivrealDescribe(t *testing.T) {
	cases := []struct {
		name, body, id, event string
	}{
		{"event", `{"id":"evt_1","event":"collection.object.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"obj_1","event":"nested"}}`, "evt_1", "collection.object.created"},
		{"numeric id", `{"id":12345,"event":"collection.object.deleted"}`, "12345", "collection.object.deleted"},
		{"no id", `{"event":"collection.created","data":{}}`, "", "collection.created"},
		{"not json", `id=evt_1&event=x`, "", ""},
		{"empty", ``, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vals := []string{"stale", "stale"}
			providers.Vivreal{}.Describe(http.Header{"X-Vivreal-Event": {"header.event"}}, []byte(tc.body), vals)
			if vals[0] != tc.id || vals[1] != tc.event {
				t.Errorf("Describe = %q, want [%q %q]", vals, tc.id, tc.event)
			}
		})
	}
}

func TestSingleHeaderAndDecodeHex(t *testing.T) {
	h := http.Header{}
	if _, err := providers.SingleHeader(h, "X-Sig"); !errors.Is(err, providers.ErrMissingSignature) {
		t.Errorf("absent: %v", err)
	}
	h.Set("X-Sig", "  abc \t")
	if v, err := providers.SingleHeader(h, "X-Sig"); err != nil || v != "abc" {
		t.Errorf("trimmed: %q, %v", v, err)
	}
	h.Add("X-Sig", "abc")
	if _, err := providers.SingleHeader(h, "X-Sig"); !errors.Is(err, providers.ErrMalformedSignature) {
		t.Errorf("repeated: %v", err)
	}

	if b, err := providers.DecodeHex("00FFab", 3); err != nil || !bytes.Equal(b, []byte{0, 0xff, 0xab}) {
		t.Errorf("DecodeHex = %x, %v", b, err)
	}
	for _, bad := range []string{"00ffa", "00ffab00", "00ffxx", "", "0 ffab"} {
		if b, err := providers.DecodeHex(bad, 3); !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("DecodeHex(%q) = %x, %v, want malformed", bad, b, err)
		}
	}
}
