package webhookverify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestIntegrationExampleCaddyfile runs example.Caddyfile, moved to the test
// ports, and sends the README's requests: a genuine Vivreal event reaches
// the demo backend, a forged one is a JSON 401, and a Vev event with its
// bearer token passes.
func TestIntegrationExampleCaddyfile(t *testing.T) {
	raw, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	cfg = strings.Replace(cfg, "{\n", "{\n\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n", 1)
	cfg = strings.ReplaceAll(cfg, "localhost:8443", "localhost:9443")
	cfg = strings.ReplaceAll(cfg, "localhost:9001", "localhost:9081")
	t.Setenv("VIVREAL_SECRET", "demo-vivreal-secret")
	t.Setenv("VEV_SECRET", "demo-vev-secret")
	t.Setenv("VEV_TOKEN", "demo-vev-token")

	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")

	post := func(path, body string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "https://localhost:9443"+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := tc.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	body := `{"id":"evt_1","event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"title":"Hello"}}`
	m := hmac.New(sha256.New, []byte("demo-vivreal-secret"))
	m.Write([]byte(body))
	sig := hex.EncodeToString(m.Sum(nil))

	if code, got := post("/webhooks/vivreal", body, "X-Vivreal-Signature", "sha256="+sig); code != 200 ||
		got != "backend received vivreal event=collection.object.created id=evt_1 bytes=110\n" {
		t.Errorf("genuine vivreal: %d %q", code, got)
	}
	forged := strings.Replace(body, "Hello", "Forged", 1)
	if code, got := post("/webhooks/vivreal", forged, "X-Vivreal-Signature", "sha256="+sig); code != 401 ||
		got != `{"error": "no matching signature"}` {
		t.Errorf("forged vivreal: %d %q", code, got)
	}
	other := `{"id":"evt_2","event":"collection.object.deleted"}`
	m.Reset()
	m.Write([]byte(other))
	if code, got := post("/webhooks/vivreal", other, "X-Vivreal-Signature", hex.EncodeToString(m.Sum(nil))); code != 200 ||
		got != `{"received":true,"handled":false}` {
		t.Errorf("unrouted vivreal event: %d %q", code, got)
	}

	vbody := `{"id":"v_1","hosting":"h_1","event":"PUBLISH","payload":{"html":"<h1>Hi &amp; welcome</h1>"}}`
	vm := hmac.New(sha512.New, []byte("demo-vev-secret"))
	vm.Write([]byte(vbody))
	vsig := "sha512=" + hex.EncodeToString(vm.Sum(nil))
	if code, got := post("/webhooks/vev", vbody, "Authorization", "Bearer demo-vev-token", "X-Vev-Signature", vsig); code != 200 ||
		got != "backend received vev event=PUBLISH id=v_1 bytes=93\n" {
		t.Errorf("genuine vev: %d %q", code, got)
	}
	if code, got := post("/webhooks/vev", vbody, "X-Vev-Signature", vsig); code != 401 || got != `{"error": "bad credentials"}` {
		t.Errorf("vev without token: %d %q", code, got)
	}
}
