package webhookverify_test

// Integration tests of the public-key presets, discord (Ed25519) and
// sendgrid (ECDSA P-256): a real Caddy (the shared in-process one of
// integration_test.go) verifies each sender's deliveries and hands genuine
// ones, byte for byte, to a recording upstream through reverse_proxy, with
// {http.webhook.id} and {http.webhook.event} passed on by header_up.
//
// Fresh deliveries are signed at test time by the standard library (the
// gateway has no signer for public keys) with published private keys:
// RFC 8032 §7.1 TEST 1 for Discord, the test key of SendGrid's library
// (sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go, MIT).
// The published vectors themselves are replayed through routes with
// tolerance 0.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

const (
	skiDiscordSeed    = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60" // RFC 8032 TEST 1
	skiDiscordPublic  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	skiDiscordOther   = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c" // RFC 8032 TEST 2
	skiSendGridPublic = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	skiSendGridSEC1   = "MHcCAQEEIEQmZgBEh9DcU9zMl34czK3xov4AYvm9P3r7rNB2dNXtoAoGCCqGSM49AwEHoUQDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	skiSendGridOther  = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==" // RFC 6979 A.2.5

	skiDiscordSig   = "X-Signature-Ed25519"
	skiDiscordTS    = "X-Signature-Timestamp"
	skiSendGridSig  = "X-Twilio-Email-Event-Webhook-Signature"
	skiSendGridTS   = "X-Twilio-Email-Event-Webhook-Timestamp"
	skiDiscordBody  = `{"app_permissions":"442368","application_id":"1194011196012478525","data":{"id":"1194019453281353748","name":"greet","type":1},"id":"1194047713960419358","token":"aW50ZXJhY3Rpb24","type":2,"version":1}`
	skiSendGridBody = "[{\"email\":\"example@test.com\",\"timestamp\":1700000000,\"event\":\"delivered\",\"sg_event_id\":\"rWVYmVk90MjZJ9iohOBa3w==\",\"note\":\"café ☕\"}]\r\n"
)

var skiDiscordKey = ed25519.NewKeyFromSeed(func() []byte { b, _ := hex.DecodeString(skiDiscordSeed); return b }())

func skiSendGridKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	der, _ := base64.StdEncoding.DecodeString(skiSendGridSEC1)
	k, err := x509.ParseECPrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// skiDiscord signs body as Discord does, at ts.
func skiDiscord(ts, body string) http.Header {
	sig := ed25519.Sign(skiDiscordKey, []byte(ts+body))
	return itHdr(skiDiscordSig, hex.EncodeToString(sig), skiDiscordTS, ts, "Content-Type", "application/json")
}

// skiSendGrid signs body as SendGrid does, at ts, with key.
func skiSendGrid(t *testing.T, key *ecdsa.PrivateKey, ts, body string) http.Header {
	t.Helper()
	d := sha256.Sum256([]byte(ts + body))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return itHdr(skiSendGridSig, base64.StdEncoding.EncodeToString(sig), skiSendGridTS, ts, "Content-Type", "application/json")
}

func skiStart(t *testing.T, up *itRecorder) {
	t.Helper()
	// the SendGrid key as a PEM file, read through {file.*}
	der, _ := base64.StdEncoding.DecodeString(skiSendGridPublic)
	pemFile := filepath.Join(t.TempDir(), "sendgrid.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var routes strings.Builder
	for _, r := range [][4]string{
		{"/discord", "discord", skiDiscordPublic, ""},
		{"/discord-replay", "discord", skiDiscordPublic, "tolerance 0"},
		{"/discord-rotated", "discord", skiDiscordOther, "secret " + strings.ToUpper(skiDiscordPublic)},
		{"/sendgrid", "sendgrid", skiSendGridPublic, ""},
		{"/sendgrid-replay", "sendgrid", skiSendGridPublic, "tolerance 0"},
		{"/sendgrid-pem", "sendgrid", "{file." + pemFile + "}", "tolerance 10m"},
		{"/sendgrid-rotated", "sendgrid", skiSendGridOther, "secret " + skiSendGridPublic},
	} {
		routes.WriteString(snRoute(r[0], r[1], r[2], r[3], up.addr()))
	}
	itStart(t, "http://localhost:9080 {"+routes.String()+"\n}\n")
}

func TestIntegrationSendersKeys(t *testing.T) {
	up := itNewRecorder(t, "up")
	skiStart(t, up)
	c := itNewClient(t)
	sgKey := skiSendGridKey(t)
	now := strconv.FormatInt(time.Now().Unix(), 10)

	type delivery struct {
		name, path, body string
		header           http.Header
		id, event        string
		sigHdr, tsHdr    string
	}
	big := `{"id":"big","type":2,"data":"` + strings.Repeat("é", 1<<19) + `"}` // 1 MiB of UTF-8
	deliveries := []delivery{
		{"discord", "/discord", skiDiscordBody, skiDiscord(now, skiDiscordBody), "1194047713960419358", "2", skiDiscordSig, skiDiscordTS},
		{"discord-big", "/discord", big, skiDiscord(now, big), "big", "2", skiDiscordSig, skiDiscordTS},
		{"discord-empty", "/discord", "", skiDiscord(now, ""), "", "", skiDiscordSig, skiDiscordTS},
		{"discord-rotated", "/discord-rotated", skiDiscordBody, skiDiscord(now, skiDiscordBody), "1194047713960419358", "2", skiDiscordSig, skiDiscordTS},
		{"sendgrid", "/sendgrid", skiSendGridBody, skiSendGrid(t, sgKey, now, skiSendGridBody), "", "", skiSendGridSig, skiSendGridTS},
		{"sendgrid-big", "/sendgrid", big, skiSendGrid(t, sgKey, now, big), "", "", skiSendGridSig, skiSendGridTS},
		{"sendgrid-pem", "/sendgrid-pem", skiSendGridBody, skiSendGrid(t, sgKey, now, skiSendGridBody), "", "", skiSendGridSig, skiSendGridTS},
		{"sendgrid-rotated", "/sendgrid-rotated", skiSendGridBody, skiSendGrid(t, sgKey, now, skiSendGridBody), "", "", skiSendGridSig, skiSendGridTS},
	}
	secrets := []string{skiDiscordSeed, skiSendGridSEC1}

	for _, d := range deliveries {
		provider := strings.SplitN(d.name, "-", 2)[0]
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/genuine/chunked=%v", d.name, chunked), func(t *testing.T) {
				up.reset()
				h := d.header.Clone()
				h.Set("X-Webhook-Id", "spoofed") // replaced, never passed on
				res := itDo(t, c, itReq{path: d.path, body: []byte(d.body), header: h, chunked: chunked})
				itStatus(t, d.name, res, http.StatusOK)
				got := itAssertForwarded(t, up, d.path, []byte(d.body))
				for hdr, want := range map[string]string{"X-Webhook-Provider": provider, "X-Webhook-Id": d.id, "X-Webhook-Event": d.event} {
					if vs := got.Header.Values(hdr); len(vs) > 1 || got.Header.Get(hdr) != want {
						t.Errorf("upstream %s = %q, want %q", hdr, vs, want)
					}
				}
				for _, hdr := range []string{d.sigHdr, d.tsHdr} {
					if got.Header.Get(hdr) != d.header.Get(hdr) {
						t.Errorf("upstream %s = %q, want the sender's header passed on", hdr, got.Header.Get(hdr))
					}
				}
			})
		}
		if strings.HasSuffix(d.name, "-big") || strings.HasSuffix(d.name, "-empty") {
			continue
		}
		t.Run(d.name+"/refused", func(t *testing.T) {
			with := func(edit func(h http.Header)) http.Header { h := d.header.Clone(); edit(h); return h }
			ts, _ := strconv.ParseInt(d.header.Get(d.tsHdr), 10, 64)
			var otherSig, stale, future http.Header
			if provider == "discord" {
				otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
				otherSig = with(func(h http.Header) {
					h.Set(d.sigHdr, hex.EncodeToString(ed25519.Sign(otherKey, []byte(d.header.Get(d.tsHdr)+d.body))))
				})
				stale = skiDiscord(strconv.FormatInt(ts-600, 10), d.body)
				future = skiDiscord(strconv.FormatInt(ts+600, 10), d.body)
			} else {
				otherKey, _ := ecdsa.GenerateKey(sgKey.Curve, rand.Reader)
				otherSig = skiSendGrid(t, otherKey, d.header.Get(d.tsHdr), d.body)
				stale = skiSendGrid(t, sgKey, strconv.FormatInt(ts-900, 10), d.body)
				future = skiSendGrid(t, sgKey, strconv.FormatInt(ts+900, 10), d.body)
			}
			refusals := []struct {
				what   string
				body   string
				header http.Header
			}{
				{"edited body", strings.Replace(d.body, "e", "E", 1), d.header},
				{"body with a newline", d.body + "\n", d.header},
				{"signed by another key", d.body, otherSig},
				{"no signature", d.body, with(func(h http.Header) { h.Del(d.sigHdr) })},
				{"no timestamp", d.body, with(func(h http.Header) { h.Del(d.tsHdr) })},
				{"repeated signature", d.body, with(func(h http.Header) { h.Add(d.sigHdr, h.Get(d.sigHdr)) })},
				{"repeated timestamp", d.body, with(func(h http.Header) { h.Add(d.tsHdr, h.Get(d.tsHdr)) })},
				{"garbled signature", d.body, with(func(h http.Header) { h.Set(d.sigHdr, "zz"+h.Get(d.sigHdr)[2:]) })},
				{"other timestamp", d.body, with(func(h http.Header) { h.Set(d.tsHdr, strconv.FormatInt(ts+1, 10)) })},
				{"stale (10 or 15 min)", d.body, stale},
				{"future (10 or 15 min)", d.body, future},
			}
			for _, r := range refusals {
				up.reset()
				res := itDo(t, c, itReq{path: d.path, body: []byte(r.body), header: r.header})
				itStatus(t, d.name+" "+r.what, res, http.StatusUnauthorized)
				itNoLeak(t, d.name+" "+r.what, res, secrets...)
				if n := up.count(); n != 0 {
					t.Errorf("%s %s: upstream got %d requests", d.name, r.what, n)
				}
			}
		})
	}

	// The published vectors, years old: refused with the default
	// tolerance, verified and forwarded byte for byte with tolerance 0.
	vectors := []struct {
		name, path, body string
		header           http.Header
		id, event        string
	}{
		{"discord-v9", "/discord", `{"type":1}`, itHdr(skiDiscordSig, "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f", skiDiscordTS, "1700000000"), "", "1"},
		{"sendgrid-library", "/sendgrid", `{"category":"example_payload","event":"test_event","message_id":"message_id"}`,
			itHdr(skiSendGridSig, "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=", skiSendGridTS, "1588788367"), "", ""},
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			up.reset()
			itStatus(t, v.name+", default tolerance", itDo(t, c, itReq{path: v.path, body: []byte(v.body), header: v.header}), http.StatusUnauthorized)
			if up.count() != 0 {
				t.Fatal("a stale delivery reached the upstream")
			}
			up.reset()
			itStatus(t, v.name+", tolerance 0", itDo(t, c, itReq{path: v.path + "-replay", body: []byte(v.body), header: v.header}), http.StatusOK)
			got := itAssertForwarded(t, up, v.path+"-replay", []byte(v.body))
			if got.Header.Get("X-Webhook-Id") != v.id || got.Header.Get("X-Webhook-Event") != v.event {
				t.Errorf("id %q event %q, want %q %q", got.Header.Get("X-Webhook-Id"), got.Header.Get("X-Webhook-Event"), v.id, v.event)
			}
			up.reset()
			itStatus(t, v.name+", edited, tolerance 0", itDo(t, c, itReq{path: v.path + "-replay", body: []byte(v.body + " "), header: v.header}), http.StatusUnauthorized)
			if up.count() != 0 {
				t.Fatal("an edited delivery reached the upstream")
			}
		})
	}

	// The per-handler tolerance: a SendGrid delivery signed 8 minutes ago
	// is refused by the default 5 min and accepted by tolerance 10m.
	t.Run("sendgrid-tolerance-10m", func(t *testing.T) {
		old := strconv.FormatInt(time.Now().Add(-8*time.Minute).Unix(), 10)
		h := skiSendGrid(t, sgKey, old, skiSendGridBody)
		up.reset()
		itStatus(t, "8 min old, default", itDo(t, c, itReq{path: "/sendgrid", body: []byte(skiSendGridBody), header: h}), http.StatusUnauthorized)
		itStatus(t, "8 min old, tolerance 10m", itDo(t, c, itReq{path: "/sendgrid-pem", body: []byte(skiSendGridBody), header: h}), http.StatusOK)
		itAssertForwarded(t, up, "/sendgrid-pem", []byte(skiSendGridBody))
	})
}

// A bad public key stops the config from loading, with a sentence saying
// which form is expected, never repeating the key: written in the
// Caddyfile, when it is adapted (with its line); from a placeholder, when
// the adapted config is validated (as caddy run and caddy validate do).
func TestIntegrationSendersKeysBadKey(t *testing.T) {
	for _, tc := range []struct{ provider, key, want string }{
		{"discord", skiSendGridPublic, "64 hex digits"},
		{"discord", skiDiscordPublic[:60], "64 hex digits"},
		{"sendgrid", skiDiscordPublic, "MFkw"},
		{"sendgrid", skiSendGridPublic[:50], "MFkw"},
	} {
		t.Setenv("SKI_BAD_KEY", tc.key)
		for _, secret := range []string{tc.key, "{env.SKI_BAD_KEY}"} {
			err := skiLoadErr(t, ":8080 {\n\twebhook_verify "+tc.provider+" "+secret+"\n}\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s with %q: %v, want an error saying %q", tc.provider, secret, err, tc.want)
				continue
			}
			if secret == tc.key && !strings.Contains(err.Error(), "Caddyfile:2") {
				t.Errorf("%s: %v, want the line", tc.provider, err)
			}
			if strings.Contains(err.Error(), tc.key) {
				t.Errorf("the error repeats the key: %v", err)
			}
		}
	}
}

// skiLoadErr adapts a Caddyfile and validates the config, without
// starting a server: the first error.
func skiLoadErr(t *testing.T, caddyfile string) error {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}
