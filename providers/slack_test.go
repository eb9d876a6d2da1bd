package providers_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestSlackModule(t *testing.T) {
	presetModule(t, "slack", "id,event")
	if providers.SlackSignatureHeader != "X-Slack-Signature" || providers.SlackTimestampHeader != "X-Slack-Request-Timestamp" {
		t.Errorf("headers %q %q", providers.SlackSignatureHeader, providers.SlackTimestampHeader)
	}
}

func TestSlackMutations(t *testing.T) {
	key := []byte("8f742231b10e8888abcd99yyyzzz85a5")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fwebhook-collect&text="
	sig := hmacHex(key, "v0:"+ts+":", body)
	preset{
		p:    &providers.Slack{},
		key:  key,
		body: body,
		now:  now,
		header: http.Header{
			"X-Slack-Signature":         {"v0=" + sig},
			"X-Slack-Request-Timestamp": {ts},
		},
		required:    []string{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
		sigs:        []string{"X-Slack-Signature"},
		extra:       []string{"X-Slack-Request-Timestamp"},
		timestamped: true,
		malformed: map[string][]string{
			"X-Slack-Signature": {
				sig,                // no version
				"v1=" + sig,        // unknown version
				"V0=" + sig,        // versions are case-sensitive
				"v0=",              // empty
				"v0:" + sig,        // wrong separator
				"v0=" + sig[:63],   // odd length
				"v0=" + sig + "00", // too long
				"v0= " + sig,       // inner space
				"v0=" + sig + ",v0=" + sig,
			},
			"X-Slack-Request-Timestamp": {"abc", ts + ".5", "-" + ts, "+" + ts, ts + "0000000000"},
		},
		unverified: map[string][]string{
			"X-Slack-Signature":         {"v0=" + hmacHex(key, "v0:"+ts+":", body+"&x=1"), "v0=" + strings.Repeat("0", 64)},
			"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix()+1, 10)},
		},
	}.run(t)
}

func TestSlackDescribe(t *testing.T) {
	p := &providers.Slack{}
	for body, event := range map[string]string{
		`{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}`: "event_callback",
		`{"type":"url_verification","challenge":"abc"}`:                             "url_verification",
		`token=x&type=event_callback`:                                               "",
		`payload=%7B%22type%22%3A%22block_actions%22%7D`:                            "",
	} {
		if got := presetDescribe(p, http.Header{}, body); got[0] != "" || got[1] != event {
			t.Errorf("Describe(%q) = %q, want [\"\" %q]", body, got, event)
		}
	}
}
