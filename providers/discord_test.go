package providers_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// The good request: research/senders.md V9, the RFC 8032 §7.1 TEST 1 key
// over "1700000000{"type":1}", recomputed by Node's crypto
// (testdata/vectors/senders/gen/discord.js).
const (
	discordTS   = "1700000000"
	discordBody = `{"type":1}`
	discordSig  = "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f"
)

func TestDiscordModule(t *testing.T) {
	p := presetModule(t, "discord", "id,event")
	if _, ok := p.(providers.CaddyfileOption); !ok {
		t.Error("discord takes no tolerance option")
	}
	pd, ok := p.(providers.PublicKeyDecoder)
	if !ok || !pd.PublicKeys() {
		t.Fatal("discord's keys are not public keys")
	}
	raw, _ := hex.DecodeString(rfc8032Test1Public)
	for _, key := range []string{rfc8032Test1Public, base64.StdEncoding.EncodeToString(raw)} {
		if k := pkPublicKeyOf(t, pd, key); !bytes.Equal(k.(ed25519.PublicKey), raw) {
			t.Errorf("PublicKey(%q) is another key", key)
		}
	}
	if _, err := pd.PublicKey(sendgridLibPublic); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("a SendGrid key: %v, want the Ed25519 forms named", err)
	}
}

func TestDiscordMutations(t *testing.T) {
	sigH, tsH := providers.DiscordSignatureHeader, providers.DiscordTimestampHeader
	if sigH != "X-Signature-Ed25519" || tsH != "X-Signature-Timestamp" {
		t.Fatalf("headers %q %q", sigH, tsH)
	}
	sigBytes, _ := hex.DecodeString(discordSig)
	pkPreset{
		p:        &providers.Discord{},
		scheme:   providers.SchemeEd25519,
		key:      rfc8032Test1Public,
		wrong:    []string{rfc8032Test2Public},
		body:     discordBody,
		now:      time.Unix(1_700_000_000, 0),
		header:   http.Header{sigH: {discordSig}, tsH: {discordTS}},
		required: []string{sigH, tsH},
		malformed: map[string][]string{
			sigH: {
				discordSig[:126], discordSig + "00", "z" + discordSig[1:], "0x" + discordSig,
				base64.StdEncoding.EncodeToString(sigBytes), discordSig[:64] + " " + discordSig[64:],
				"ed25519=" + discordSig,
			},
			tsH: {"1700000000.5", "-1700000000", "+1700000000", "2023-11-14T22:13:20Z", "0x6553f100", "1700000000000000000000", "17e8"},
		},
		unverified: map[string][]string{
			sigH: {strings.ToUpper(discordSig[:2]) + strings.Repeat("0", 126), discordSig[64:] + discordSig[:64]},
			// the same time, but not the text that was signed
			tsH: {"01700000000", "1700000001"},
		},
	}.run(t)
}

func TestDiscordPrefixIsTheTimestampText(t *testing.T) {
	s, err := presetParse(t, &providers.Discord{}, http.Header{"X-Signature-Ed25519": {strings.ToUpper(discordSig)}, "X-Signature-Timestamp": {" " + discordTS + "\t"}}, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Prefix) != discordTS || s.Suffix != nil || len(s.Signatures) != 1 || hex.EncodeToString(s.Signatures[0]) != discordSig {
		t.Errorf("Signed = %+v", s)
	}
}

func TestDiscordDescribe(t *testing.T) {
	p := &providers.Discord{}
	for _, tc := range []struct{ body, id, event string }{
		{`{"type":1}`, "", "1"},
		{`{"id":"1194047713960419358","type":2,"data":{"id":"nested","type":1}}`, "1194047713960419358", "2"},
		{`{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED"}}`, "", "1"},
		{`[{"id":"1","type":2}]`, "", ""},
		{`not json`, "", ""},
		{``, "", ""},
	} {
		vals := presetDescribe(p, http.Header{"X-Signature-Timestamp": {"1"}}, tc.body)
		if vals[0] != tc.id || vals[1] != tc.event {
			t.Errorf("%s: Describe = %q, want [%q %q]", tc.body, vals, tc.id, tc.event)
		}
	}
}
