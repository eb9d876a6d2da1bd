package providers_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// The good request: SendGrid's library vector
// (sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go, MIT).
const (
	sendgridTS   = "1588788367"
	sendgridBody = `{"category":"example_payload","event":"test_event","message_id":"message_id"}`
	sendgridSig  = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
	// another P-256 key: RFC 6979 A.2.5's, as gen/sendgrid.js derives it with Node
	sendgridOtherPublic = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ=="
)

func TestSendGridModule(t *testing.T) {
	p := presetModule(t, "sendgrid", "id,event")
	if _, ok := p.(providers.CaddyfileOption); !ok {
		t.Error("sendgrid takes no tolerance option")
	}
	pd, ok := p.(providers.PublicKeyDecoder)
	if !ok || !pd.PublicKeys() {
		t.Fatal("sendgrid's keys are not public keys")
	}
	pkPublicKeyOf(t, pd, sendgridLibPublic)
	if _, err := pd.PublicKey(rfc8032Test1Public); err == nil || !strings.Contains(err.Error(), "MFkw") {
		t.Errorf("an Ed25519 key: %v, want SendGrid's form named", err)
	}
}

func TestSendGridMutations(t *testing.T) {
	sigH, tsH := providers.SendGridSignatureHeader, providers.SendGridTimestampHeader
	if sigH != "X-Twilio-Email-Event-Webhook-Signature" || tsH != "X-Twilio-Email-Event-Webhook-Timestamp" {
		t.Fatalf("headers %q %q", sigH, tsH)
	}
	der, _ := base64.StdEncoding.DecodeString(sendgridSig)
	flipped := append([]byte(nil), der...)
	flipped[len(flipped)-1] ^= 1
	pkPreset{
		p:        &providers.SendGrid{},
		scheme:   providers.SchemeECDSAP256SHA256,
		key:      sendgridLibPublic,
		wrong:    []string{sendgridOtherPublic},
		body:     sendgridBody,
		now:      time.Unix(1588788367, 0),
		header:   http.Header{sigH: {sendgridSig}, tsH: {sendgridTS}},
		required: []string{sigH, tsH},
		malformed: map[string][]string{
			sigH: {
				sendgridSig + "causing failure", // the library's "not valid signature"
				strings.TrimRight(sendgridSig, "="), sendgridSig[:40], "!" + sendgridSig[1:],
				base64.URLEncoding.EncodeToString(der),
				base64.StdEncoding.EncodeToString(der[:len(der)-1]),
				base64.StdEncoding.EncodeToString(append(append([]byte(nil), der...), 0)),
				base64.StdEncoding.EncodeToString(der[2:]), // r and s without the SEQUENCE
				strings.Repeat("A", 200),
				"t=" + sendgridSig,
			},
			tsH: {"invalid timestamp", "1588788367.0", "-1588788367", "2020-05-06T18:06:07Z"},
		},
		unverified: map[string][]string{
			sigH: {base64.StdEncoding.EncodeToString(flipped)},
			tsH:  {"01588788367", "1588788368"},
		},
	}.run(t)
}

func TestSendGridPrefixIsTheTimestampText(t *testing.T) {
	s, err := presetParse(t, &providers.SendGrid{}, http.Header{
		"X-Twilio-Email-Event-Webhook-Signature": {" " + sendgridSig},
		"X-Twilio-Email-Event-Webhook-Timestamp": {sendgridTS + " "},
	}, time.Unix(1588788367, 0))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Prefix) != sendgridTS || s.Suffix != nil || len(s.Signatures) != 1 || base64.StdEncoding.EncodeToString(s.Signatures[0]) != sendgridSig {
		t.Errorf("Signed = %+v", s)
	}
}

// A delivery is an array of events with their own ids: no single id or
// event, whatever the body holds.
func TestSendGridDescribe(t *testing.T) {
	for _, body := range []string{
		sendgridBody,
		`[{"email":"a@example.com","event":"delivered","sg_event_id":"x"}]`,
		`{"id":"1","event":"x","type":"y"}`,
		``,
	} {
		vals := presetDescribe(&providers.SendGrid{}, http.Header{"X-Twilio-Email-Event-Webhook-Timestamp": {"1"}}, body)
		if vals[0] != "" || vals[1] != "" {
			t.Errorf("%s: Describe = %q, want both empty", body, vals)
		}
	}
}
