package webhookverify_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Rolling out, through a real Caddy: report-only (enforce off), a secret
// that expires while Caddy runs, and which key verified.

const (
	roOld = "rollout-old-5e1a9c"
	roNew = "rollout-new-b27d04"
)

// TestIntegrationReportOnly: with enforce off, forged, missing and
// malformed signatures are forwarded with {http.webhook.verified} false,
// counted under their outcomes and in not_enforced_total, and logged; a
// genuine request is forwarded with verified true and its key; a body over
// max_body_size is still refused with 413, declared or chunked.
func TestIntegrationReportOnly(t *testing.T) {
	up := itNewRecorder(t, "up")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	ddStart(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal {
			secret %s
			secret %s
			enforce off
			max_body_size 4KB
		}
		reverse_proxy %s {
			header_up X-Webhook-Verified {http.webhook.verified}
			header_up X-Webhook-Key {http.webhook.key}
			header_up X-Webhook-Id {http.webhook.id}
		}
	}
}
`, roOld, roNew, up.addr()))
	ddFindLog(t, logFile, map[string]any{"level": "warn", "provider": "vivreal",
		"msg": "webhook_verify is in report-only mode (enforce off): requests that fail verification are FORWARDED, with {http.webhook.verified} false; turn enforce on once the counts look right"})
	c := itNewClient(t)
	body := itVivrealEvent("evt_ro", "collection.object.created", 500)
	before := qiMetrics(t)

	for _, tc := range []struct {
		name, sig, verified, key, outcome, reason string
	}{
		{"genuine", itSign256(roNew, body), "true", "2", "verified", ""},
		{"forged", itSign256("not-the-secret", body), "false", "", "bad_signature", "no matching signature"},
		{"missing", "", "false", "", "missing_signature", "missing signature: no X-Vivreal-Signature header"},
		{"malformed", "sha256=xyz", "false", "", "malformed_signature", "malformed signature: 3 hex digits, want 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up.reset()
			h := http.Header{}
			if tc.sig != "" {
				h.Set("X-Vivreal-Signature", tc.sig)
			}
			res := itDo(t, c, itReq{path: "/hook", body: body, header: h})
			itStatus(t, tc.name, res, 200)
			got := itAssertForwarded(t, up, "/hook", body)
			if v := got.Header.Get("X-Webhook-Verified"); v != tc.verified {
				t.Errorf("X-Webhook-Verified %q, want %q", v, tc.verified)
			}
			if v := got.Header.Get("X-Webhook-Key"); v != tc.key {
				t.Errorf("X-Webhook-Key %q, want %q", v, tc.key)
			}
			if v := got.Header.Get("X-Webhook-Id"); v != "evt_ro" {
				t.Errorf("X-Webhook-Id %q", v)
			}
			if tc.reason != "" {
				line := ddFindLog(t, logFile, map[string]any{"msg": "webhook failed verification; passed on (enforce off)",
					"reason": tc.reason, "enforced": false, "status": 401})
				if strings.Contains(fmt.Sprint(line), roOld) || strings.Contains(fmt.Sprint(line), roNew) {
					t.Errorf("the line reveals a secret: %v", line)
				}
			}
		})
	}
	t.Run("oversize", func(t *testing.T) {
		up.reset()
		big := itVivrealEvent("evt_big", "e", 5000)
		for _, chunked := range []bool{false, true} {
			res := itDo(t, c, itReq{path: "/hook", body: big, header: itHdr("X-Vivreal-Signature", itSign256(roNew, big)), chunked: chunked})
			itStatus(t, fmt.Sprintf("oversize chunked=%v", chunked), res, 413)
		}
		if n := up.count(); n != 0 {
			t.Errorf("upstream got %d oversize requests", n)
		}
	})

	after := qiMetrics(t)
	for key, want := range map[string]float64{
		"requests_total/vivreal/verified":                1,
		"requests_total/vivreal/bad_signature":           1,
		"requests_total/vivreal/missing_signature":       1,
		"requests_total/vivreal/malformed_signature":     1,
		"requests_total/vivreal/too_large":               2,
		"not_enforced_total/vivreal/bad_signature":       1,
		"not_enforced_total/vivreal/missing_signature":   1,
		"not_enforced_total/vivreal/malformed_signature": 1,
		"not_enforced_total/vivreal/too_large":           0,
		"key_matches_total/vivreal/2":                    1,
		"key_matches_total/vivreal/1":                    0,
	} {
		if d := after[key] - before[key]; d != want {
			t.Errorf("%s grew by %v, want %v", key, d, want)
		}
	}
}

// TestIntegrationSecretExpires: a secret that expires a second or two
// after Caddy starts verifies (as key 1) until then and not after, with
// no reload; a warning is logged at the instant, the refusal's log line
// says the signature matches the expired secret, and the other secret
// keeps verifying (as key 2).
func TestIntegrationSecretExpires(t *testing.T) {
	up := itNewRecorder(t, "up")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	notAfter := time.Now().Add(2 * time.Second).UTC()
	ddStart(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal {
			secret %s not_after %s
			secret %s
		}
		reverse_proxy %s {
			header_up X-Webhook-Key {http.webhook.key}
		}
	}
}
`, roOld, notAfter.Format(time.RFC3339Nano), roNew, up.addr()))
	c := itNewClient(t)
	body := itVivrealEvent("evt_exp", "collection.object.created", 300)
	old := itHdr("X-Vivreal-Signature", itSign256(roOld, body))

	// Before not_after (when this machine is quick enough to tell).
	up.reset()
	sent := time.Now()
	res := itDo(t, c, itReq{path: "/hook", body: body, header: old})
	switch done := time.Now(); {
	case done.Before(notAfter):
		itStatus(t, "old secret before not_after", res, 200)
		if k := itAssertForwarded(t, up, "/hook", body).Header.Get("X-Webhook-Key"); k != "1" {
			t.Errorf("X-Webhook-Key %q, want 1", k)
		}
	case !sent.Before(notAfter):
		itStatus(t, "old secret after not_after", res, 401)
	default:
		t.Logf("the request straddled not_after (answered %d): not checked", res.status)
	}

	// The warning at the instant is the sign that it passed (waited for
	// generously: a busy machine may run the timer late).
	expired := map[string]any{"level": "warn", "msg": "webhook secret expired: it no longer verifies; remove it from the configuration",
		"provider": "vivreal", "secret": 1}
	qiWait(t, "the expiry warning", func() bool { return ddCountLog(t, logFile, expired) > 0 })
	if !time.Now().After(notAfter) {
		t.Fatal("the expiry warning came before not_after")
	}
	up.reset()
	itStatus(t, "old secret after not_after", itDo(t, c, itReq{path: "/hook", body: body, header: old}), 401)
	line := ddFindLog(t, logFile, map[string]any{"msg": "webhook rejected", "reason": "no matching signature"})
	if hint := fmt.Sprint(line["hint"]); !strings.Contains(hint, "matches secret 1, which expired at") {
		t.Errorf("hint %q", hint)
	}
	res = itDo(t, c, itReq{path: "/hook", body: body, header: itHdr("X-Vivreal-Signature", itSign256(roNew, body))})
	itStatus(t, "new secret", res, 200)
	if k := itAssertForwarded(t, up, "/hook", body).Header.Get("X-Webhook-Key"); k != "2" {
		t.Errorf("X-Webhook-Key %q, want 2", k)
	}
}

// TestIntegrationReportOnlyQueue: with enforce off and a queue, a forged
// event is stored under an id of its own and delivered with
// {http.webhook.verified} false; the genuine event with the same id that
// follows is stored and delivered too (a forgery must not take its id),
// with verified true.
func TestIntegrationReportOnlyQueue(t *testing.T) {
	b := qiNewBackend(t, nil)
	db := filepath.Join(t.TempDir(), "q.db")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s {
			enforce off
			queue roq {
				store bbolt %s
				deliver {
					reverse_proxy %s {
						header_up X-Webhook-Id {http.webhook.id}
						header_up X-Verified {http.webhook.verified}
					}
				}
				retry 1s
			}
		}
	}
}
`, itVivSecret, db, b.addr()))
	c := itNewClient(t)
	id := fmt.Sprintf("evt_roq_%d", time.Now().UnixNano())
	body := itVivrealEvent(id, "collection.object.created", 200)
	before := qiMetrics(t)
	forged := itDo(t, c, itReq{path: "/hook", body: body, header: itHdr("X-Vivreal-Signature", itSign256("forger", body))})
	if forged.status != 200 || string(forged.body) != qiQueued {
		t.Fatalf("forged: %d %q", forged.status, forged.body)
	}
	qiMustQueue(t, c, "/hook", body)
	qiWait(t, "both delivered", func() bool { return len(b.of(id)) >= 2 })
	var verified []string
	for _, h := range b.of(id) {
		verified = append(verified, h.verified)
	}
	if len(verified) != 2 || !(verified[0] == "false" && verified[1] == "true" || verified[0] == "true" && verified[1] == "false") {
		t.Errorf("delivered with X-Verified %q, want one false and one true", verified)
	}
	// the admin API shows which is which: the forgery under a generated
	// id, unverified; the genuine event under its own, with its key
	var forgedSeen, genuineSeen bool
	for _, ev := range qiEvents(t, "roq", "") {
		switch {
		case ev.ID == id && !ev.Unverified && ev.Key == 1 && !ev.GeneratedID:
			genuineSeen = true
		case ev.ID != id && ev.Unverified && ev.Key == 0 && ev.GeneratedID:
			forgedSeen = true
		}
	}
	if !forgedSeen || !genuineSeen {
		t.Errorf("admin events: forged (unverified, generated id) seen %v, genuine (key 1) seen %v: %+v", forgedSeen, genuineSeen, qiEvents(t, "roq", ""))
	}
	// each request counted once: the forgery as a bad signature (not
	// enforced), the genuine event as queued
	after := qiMetrics(t)
	for key, want := range map[string]float64{
		"requests_total/vivreal/bad_signature":     1,
		"not_enforced_total/vivreal/bad_signature": 1,
		"requests_total/vivreal/queued":            1,
	} {
		if d := after[key] - before[key]; d != want {
			t.Errorf("%s grew by %v, want %v", key, d, want)
		}
	}
}
