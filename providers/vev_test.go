package providers_test

import (
	"crypto"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestVevModule(t *testing.T) {
	info := providers.Vev{}.CaddyModule()
	if info.ID != "http.webhook_verify.providers.vev" {
		t.Errorf("ID = %q", info.ID)
	}
	if _, ok := info.New().(providers.Provider); !ok {
		t.Errorf("New() = %T, not a providers.Provider", info.New())
	}
	mod, err := caddy.GetModule("http.webhook_verify.providers.vev")
	if err != nil {
		t.Fatalf("vev is not registered: %v", err)
	}
	if mod.ID.Name() != "vev" {
		t.Errorf("module name = %q, want vev", mod.ID.Name())
	}
	if got := (providers.Vev{}).Fields(); strings.Join(got, ",") != "id,event,hosting" {
		t.Errorf("Fields() = %q, want [id event hosting]", got)
	}
}

func TestVevParse(t *testing.T) {
	up := strings.ToUpper(vevHex)
	h := providers.VevSignatureHeader
	if h != "X-Vev-Signature" {
		t.Fatalf("VevSignatureHeader = %q", h)
	}
	missing, malformed := providers.ErrMissingSignature, providers.ErrMalformedSignature
	cases := []parseCase{
		// accepted
		{name: "sha512 prefix", values: []string{"sha512=" + vevHex}},
		{name: "upper-case hex", values: []string{"sha512=" + up}},
		{name: "mixed-case hex", values: []string{"sha512=" + up[:64] + vevHex[64:]}},
		{name: "SHA512 prefix", values: []string{"SHA512=" + vevHex}},
		{name: "surrounding spaces", values: []string{"  sha512=" + vevHex + "  "}},
		{name: "surrounding tabs", values: []string{"\tsha512=" + up + "\t"}},
		{name: "lower-case header name", header: "x-vev-signature", values: []string{"sha512=" + vevHex}},

		// missing
		{name: "no header", values: nil, want: missing},
		{name: "empty header", values: []string{""}, want: missing},
		{name: "blank header", values: []string{"   "}, want: missing},
		{name: "only the vivreal header", header: "X-Vivreal-Signature", values: []string{vivHex}, want: missing},

		// repeated
		{name: "repeated identical", values: []string{"sha512=" + vevHex, "sha512=" + vevHex}, want: malformed},
		{name: "repeated different", values: []string{"sha512=" + vevHex, "sha512=" + strings.Repeat("0", 128)}, want: malformed},
		{name: "repeated one empty", values: []string{"", "sha512=" + vevHex}, want: malformed},
		{name: "two in one header", values: []string{"sha512=" + vevHex + ",sha512=" + vevHex}, want: malformed},

		// algorithm
		{name: "bare hex", values: []string{vevHex}, want: malformed},
		{name: "bare upper-case hex", values: []string{up}, want: malformed},
		{name: "sha256 prefix with sha256-length hex", values: []string{"sha256=" + vivHex}, want: malformed},
		{name: "sha256 prefix with sha512-length hex", values: []string{"sha256=" + vevHex}, want: malformed},
		{name: "sha384 prefix", values: []string{"sha384=" + vevHex[:96]}, want: malformed},
		{name: "empty algorithm", values: []string{"=" + vevHex}, want: malformed},
		{name: "prefix without hex", values: []string{"sha512="}, want: malformed},
		{name: "algorithm alone", values: []string{"sha512"}, want: malformed},

		// not hex, wrong length
		{name: "bad hex digit", values: []string{"sha512=" + vevHex[:100] + "x" + vevHex[101:]}, want: malformed},
		{name: "non-ascii in hex", values: []string{"sha512=" + vevHex[:126] + "é"}, want: malformed},
		{name: "odd length", values: []string{"sha512=" + vevHex[:127]}, want: malformed},
		{name: "truncated", values: []string{"sha512=" + vevHex[:126]}, want: malformed},
		{name: "sha256 length", values: []string{"sha512=" + vivHex}, want: malformed},
		{name: "too long", values: []string{"sha512=" + vevHex + "00"}, want: malformed},

		// extra '='
		{name: "double equals", values: []string{"sha512==" + vevHex}, want: malformed},
		{name: "double equals keeping length", values: []string{"sha512==" + vevHex[1:]}, want: malformed},
		{name: "equals inside hex", values: []string{"sha512=" + vevHex[:60] + "=" + vevHex[61:]}, want: malformed},
		{name: "short with equals", values: []string{"sha512=ab=cd"}, want: malformed},
		{name: "trailing equals", values: []string{"sha512=" + vevHex + "="}, want: malformed},

		// internal white space
		{name: "space after equals", values: []string{"sha512= " + vevHex}, want: malformed},
		{name: "space before equals", values: []string{"sha512 =" + vevHex}, want: malformed},
		{name: "space replacing a digit", values: []string{"sha512=" + vevHex[:50] + " " + vevHex[51:]}, want: malformed},
		{name: "space inserted", values: []string{"sha512=" + vevHex[:64] + " " + vevHex[64:]}, want: malformed},
	}
	runParse(t, providers.Vev{}, h, crypto.SHA512, vevHex, cases)
}

func TestVevVectorsParseAndDescribe(t *testing.T) {
	testVectorsParseAndDescribe(t, providers.Vev{}, "vev.json", crypto.SHA512)
}

func TestVevDescribe(t *testing.T) {
	cases := []struct {
		name, body         string
		id, event, hosting string
	}{
		{"ping", `{"id":"evt_p","hosting":"hst_1","event":"PING","payload":{}}`, "evt_p", "PING", "hst_1"},
		{
			"publish with decoys in the page",
			`{"id":"evt_1","hosting":"hst_2","event":"PUBLISH","payload":{"id":"pg","hosting":"x","html":"<p data-x=\"{\\\"id\\\":1}\">é 日本語 😀</p>"}}`,
			"evt_1", "PUBLISH", "hst_2",
		},
		{"fields after the payload", `{"payload":{"html":"<b>\"}\"</b>"},"event":"PUBLISH","hosting":"h","id":"e"}`, "e", "PUBLISH", "h"},
		{"no hosting", `{"id":"evt_3","event":"PING"}`, "evt_3", "PING", ""},
		{"truncated", `{"id":"evt_4","hosting":"h","event":"PUBLISH","payload":{"html":"<p>`, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vals := []string{"stale", "stale", "stale"}
			providers.Vev{}.Describe(http.Header{}, []byte(tc.body), vals)
			if vals[0] != tc.id || vals[1] != tc.event || vals[2] != tc.hosting {
				t.Errorf("Describe = %q, want [%q %q %q]", vals, tc.id, tc.event, tc.hosting)
			}
		})
	}
}
