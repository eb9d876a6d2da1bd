package webhookverify_test

// Integration tests of hmac configurations no preset covers, through the
// shared in-process Caddy of integration_test.go: Box (two keys in two
// headers, the RFC 3339 timestamp signed after the body), PagerDuty (a
// comma-separated list of v1= signatures) and an Ed25519 sender with
// Discord's layout, each in front of a recording upstream that gets the
// event's id and type through header_up.

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

const (
	hiBoxPrimary   = "box-primary-key-0a1b2c3d4e5f6071"
	hiBoxSecondary = "box-secondary-key-8192a3b4c5d6e7f"
	hiPDSecret     = "pagerduty-secret-3c4d5e6f70819"
	// RFC 8032 §7.1 TEST 1
	hiEdSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	hiEdPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

func hiMAC(key string, parts ...string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func TestIntegrationHMACProvider(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /box {
		webhook_verify hmac %[1]s {
			secret %[2]s
			signature BOX-SIGNATURE-PRIMARY base64
			signature BOX-SIGNATURE-SECONDARY base64
			signed "{body}{header.BOX-DELIVERY-TIMESTAMP}"
			timestamp header BOX-DELIVERY-TIMESTAMP rfc3339 10m
			id header BOX-DELIVERY-ID
			event body trigger
		}
		reverse_proxy %[5]s {
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
		}
	}
	handle /pagerduty {
		webhook_verify hmac %[3]s {
			signature X-PagerDuty-Signature list "," "v1={sig}" hex
			id header X-Webhook-Id
			event body event_type
		}
		reverse_proxy %[5]s {
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
		}
	}
	handle /ed25519 {
		webhook_verify hmac %[4]s {
			algorithm ed25519
			signature X-Signature-Ed25519 hex
			signed "{header.X-Signature-Timestamp}{body}"
			timestamp header X-Signature-Timestamp unix
			event body type
		}
		reverse_proxy %[5]s {
			header_up X-Webhook-Event {http.webhook.event}
		}
	}
}
`, hiBoxPrimary, hiBoxSecondary, hiPDSecret, hiEdPub, up.addr()))
	c := itNewClient(t)

	boxBody := `{"type":"webhook_event","id":"c0ffee","trigger":"FILE.UPLOADED","source":{"id":"12345","type":"file","name":"café.txt"}}`
	boxHeaders := func(ts time.Time, primary, secondary []byte) http.Header {
		stamp := ts.UTC().Format(time.RFC3339)
		h := itHdr("BOX-DELIVERY-ID", "f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f", "BOX-DELIVERY-TIMESTAMP", stamp)
		if primary != nil {
			h.Set("BOX-SIGNATURE-PRIMARY", base64.StdEncoding.EncodeToString(primary))
		}
		if secondary != nil {
			h.Set("BOX-SIGNATURE-SECONDARY", base64.StdEncoding.EncodeToString(secondary))
		}
		return h
	}
	boxSig := func(key, body string, ts time.Time) []byte {
		return hiMAC(key, body, ts.UTC().Format(time.RFC3339))
	}

	t.Run("box_verified", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			header  func(now time.Time) http.Header
			chunked bool
		}{
			{"both_keys", func(now time.Time) http.Header {
				return boxHeaders(now, boxSig(hiBoxPrimary, boxBody, now), boxSig(hiBoxSecondary, boxBody, now))
			}, false},
			{"secondary_only", func(now time.Time) http.Header {
				return boxHeaders(now, nil, boxSig(hiBoxSecondary, boxBody, now))
			}, false},
			{"primary_header_with_secondary_key", func(now time.Time) http.Header {
				return boxHeaders(now, boxSig(hiBoxSecondary, boxBody, now), nil)
			}, false},
			{"chunked", func(now time.Time) http.Header {
				return boxHeaders(now, boxSig(hiBoxPrimary, boxBody, now), nil)
			}, true},
			{"nine_minutes_old", func(now time.Time) http.Header {
				old := now.Add(-9 * time.Minute)
				return boxHeaders(old, boxSig(hiBoxPrimary, boxBody, old), nil)
			}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				res := itDo(t, c, itReq{path: "/box", body: []byte(boxBody), header: tc.header(time.Now()), chunked: tc.chunked})
				itStatus(t, "genuine Box delivery", res, http.StatusOK)
				got := itAssertForwarded(t, up, "/box", []byte(boxBody))
				if id, ev := got.Header.Get("X-Webhook-Id"), got.Header.Get("X-Webhook-Event"); id != "f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f" || ev != "FILE.UPLOADED" {
					t.Errorf("upstream placeholders id %q event %q", id, ev)
				}
			})
		}
	})

	t.Run("box_refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   string
			header func(now time.Time) http.Header
		}{
			{"edited_body", boxBody + " ", func(now time.Time) http.Header {
				return boxHeaders(now, boxSig(hiBoxPrimary, boxBody, now), boxSig(hiBoxSecondary, boxBody, now))
			}},
			{"body_signed_without_timestamp", boxBody, func(now time.Time) http.Header {
				return boxHeaders(now, hiMAC(hiBoxPrimary, boxBody), nil)
			}},
			{"timestamp_before_body", boxBody, func(now time.Time) http.Header {
				return boxHeaders(now, hiMAC(hiBoxPrimary, now.UTC().Format(time.RFC3339), boxBody), nil)
			}},
			{"eleven_minutes_old", boxBody, func(now time.Time) http.Header {
				old := now.Add(-11 * time.Minute)
				return boxHeaders(old, boxSig(hiBoxPrimary, boxBody, old), nil)
			}},
			{"eleven_minutes_ahead", boxBody, func(now time.Time) http.Header {
				ahead := now.Add(11 * time.Minute)
				return boxHeaders(ahead, boxSig(hiBoxPrimary, boxBody, ahead), nil)
			}},
			{"no_timestamp", boxBody, func(now time.Time) http.Header {
				h := boxHeaders(now, boxSig(hiBoxPrimary, boxBody, now), nil)
				h.Del("BOX-DELIVERY-TIMESTAMP")
				return h
			}},
			{"unix_timestamp", boxBody, func(now time.Time) http.Header {
				h := boxHeaders(now, nil, nil)
				unix := strconv.FormatInt(now.Unix(), 10)
				h.Set("BOX-DELIVERY-TIMESTAMP", unix)
				h.Set("BOX-SIGNATURE-PRIMARY", base64.StdEncoding.EncodeToString(hiMAC(hiBoxPrimary, boxBody, unix)))
				return h
			}},
			{"no_signature", boxBody, func(now time.Time) http.Header { return boxHeaders(now, nil, nil) }},
			{"unknown_key", boxBody, func(now time.Time) http.Header {
				return boxHeaders(now, boxSig("another-key", boxBody, now), nil)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				hdr := tc.header(time.Now())
				res := itDo(t, c, itReq{path: "/box", body: []byte(tc.body), header: hdr})
				itStatus(t, tc.name, res, http.StatusUnauthorized)
				if n := up.count(); n != 0 {
					t.Errorf("a refused delivery reached the upstream (%d requests)", n)
				}
				itNoLeak(t, tc.name, res, hiBoxPrimary, hiBoxSecondary, hdr.Get("BOX-SIGNATURE-PRIMARY"))
			})
		}
	})

	pdBody := `{"event_type":"incident.triggered","event":{"id":"01DEN6DVT3AH9DHNZP7R8EFG3Y"}}`
	pdSig := "v1=" + hex.EncodeToString(hiMAC(hiPDSecret, pdBody))
	pdOld := "v1=" + hex.EncodeToString(hiMAC("pagerduty-old-secret", pdBody))

	t.Run("pagerduty", func(t *testing.T) {
		for _, tc := range []struct {
			name, body, sig string
			want            int
		}{
			{"one", pdBody, pdSig, http.StatusOK},
			{"rotation_second", pdBody, pdOld + "," + pdSig, http.StatusOK},
			{"rotation_first_with_space", pdBody, pdSig + ", " + pdOld, http.StatusOK},
			{"old_secret_only", pdBody, pdOld, http.StatusUnauthorized},
			{"other_version_only", pdBody, "v2=" + pdSig[3:], http.StatusUnauthorized},
			{"edited_body", pdBody + "\n", pdSig, http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				res := itDo(t, c, itReq{path: "/pagerduty", body: []byte(tc.body),
					header: itHdr("X-PagerDuty-Signature", tc.sig, "X-Webhook-Id", "whk_1")})
				itStatus(t, tc.name, res, tc.want)
				if tc.want != http.StatusOK {
					if up.count() != 0 {
						t.Error("a refused delivery reached the upstream")
					}
					return
				}
				got := itAssertForwarded(t, up, "/pagerduty", []byte(tc.body))
				if id, ev := got.Header.Get("X-Webhook-Id"), got.Header.Get("X-Webhook-Event"); id != "whk_1" || ev != "incident.triggered" {
					t.Errorf("upstream placeholders id %q event %q", id, ev)
				}
				if v := got.Header.Get("X-PagerDuty-Signature"); v != tc.sig {
					t.Errorf("the signature header reached the upstream as %q, want it as sent", v)
				}
			})
		}
	})

	t.Run("ed25519", func(t *testing.T) {
		seed, _ := hex.DecodeString(hiEdSeed)
		priv := ed25519.NewKeyFromSeed(seed)
		body := `{"type":2,"id":"1194047713960419358","data":{"name":"ping"}}`
		for _, tc := range []struct {
			name string
			ts   func(now time.Time) string
			msg  func(ts string) string
			want int
		}{
			{"genuine", func(now time.Time) string { return strconv.FormatInt(now.Unix(), 10) }, func(ts string) string { return ts + body }, http.StatusOK},
			{"body_alone_signed", func(now time.Time) string { return strconv.FormatInt(now.Unix(), 10) }, func(string) string { return body }, http.StatusUnauthorized},
			{"stale", func(now time.Time) string { return strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10) }, func(ts string) string { return ts + body }, http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				ts := tc.ts(time.Now())
				sig := hex.EncodeToString(ed25519.Sign(priv, []byte(tc.msg(ts))))
				res := itDo(t, c, itReq{path: "/ed25519", body: []byte(body), header: itHdr("X-Signature-Ed25519", sig, "X-Signature-Timestamp", ts)})
				itStatus(t, tc.name, res, tc.want)
				if tc.want != http.StatusOK {
					if up.count() != 0 {
						t.Error("a refused delivery reached the upstream")
					}
					return
				}
				got := itAssertForwarded(t, up, "/ed25519", []byte(body))
				if ev := got.Header.Get("X-Webhook-Event"); ev != "2" {
					t.Errorf("upstream event %q, want 2", ev)
				}
			})
		}
	})
}

// sha1 works (Intercom, Webex, Vercel still sign with it) and Caddy logs a
// warning when the config is loaded.
func TestIntegrationHMACSHA1Warning(t *testing.T) {
	itRequireCaddyPorts(t)
	up := itNewRecorder(t, "up")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	global := strings.Replace(itGlobal, "grace_period 1ns\n", "grace_period 1ns\n\tlog {\n\t\toutput file "+logFile+"\n\t}\n", 1)
	tc := caddytest.NewTester(t)
	tc.InitServer(global+fmt.Sprintf(`
http://localhost:9080 {
	handle /intercom {
		webhook_verify hmac intercom-client-secret {
			algorithm sha1
			signature X-Hub-Signature "sha1={sig}" hex
		}
		reverse_proxy %s
	}
}
`, up.addr()), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "sha1 is weak") {
			warned = true
		}
		if strings.Contains(line, "intercom-client-secret") {
			t.Errorf("the log carries the secret: %s", line)
		}
	}
	if !warned {
		t.Errorf("no sha1 warning in Caddy's log:\n%s", raw)
	}

	body := []byte(`{"type":"notification_event","topic":"conversation.user.created"}`)
	m := hmac.New(sha1.New, []byte("intercom-client-secret"))
	m.Write(body)
	c := itNewClient(t)
	res := itDo(t, c, itReq{path: "/intercom", body: body, header: itHdr("X-Hub-Signature", "sha1="+hex.EncodeToString(m.Sum(nil)))})
	itStatus(t, "sha1-signed delivery", res, http.StatusOK)
	itAssertForwarded(t, up, "/intercom", body)
	res = itDo(t, c, itReq{path: "/intercom", body: body, header: itHdr("X-Hub-Signature", "sha1="+strings.Repeat("0", 40))})
	itStatus(t, "wrong sha1 signature", res, http.StatusUnauthorized)
}
