package webhookverify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
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
	cfg := strings.ReplaceAll(exampleConfig(t), "localhost:9001", "localhost:9081")
	post := startExample(t, cfg)

	body := exampleVivrealBody
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

	vbody := exampleVevBody
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

// The README's demo events.
const (
	exampleVivrealBody = `{"id":"evt_1","event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"title":"Hello"}}`
	exampleVevBody     = `{"id":"v_1","hosting":"h_1","event":"PUBLISH","payload":{"html":"<h1>Hi &amp; welcome</h1>"}}`
)

// exampleConfig is example.Caddyfile moved to the test ports (admin 2999,
// HTTP 9080, HTTPS 9443), with the demo secrets in the environment. The
// demo backend is still at localhost:9001: the caller moves it.
func exampleConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	cfg = strings.Replace(cfg, "{\n", "{\n\tadmin localhost:2999\n\thttp_port 9080\n\thttps_port 9443\n", 1)
	cfg = strings.ReplaceAll(cfg, "localhost:8443", "localhost:9443")
	t.Setenv("VIVREAL_SECRET", "demo-vivreal-secret")
	t.Setenv("VEV_SECRET", "demo-vev-secret")
	t.Setenv("VEV_TOKEN", "demo-vev-token")
	return cfg
}

// startExample runs cfg and returns a function that POSTs body to path on
// the gateway, with the header name/value pairs, and returns the status
// and the response body.
func startExample(t *testing.T, cfg string) func(path, body string, header ...string) (int, string) {
	t.Helper()
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")
	return func(path, body string, header ...string) (int, string) {
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
}

// TestIntegrationExampleBackendDown runs example.Caddyfile without its demo
// backend, the gateway proxying to a closed port: a genuine event gets a
// 502 whose body is valid JSON and says only "Bad Gateway", never
// reverse_proxy's error ("dial tcp 127.0.0.1:...: connect: connection
// refused"), while the handler's own refusals still carry their reason.
func TestIntegrationExampleBackendDown(t *testing.T) {
	cfg := exampleConfig(t)
	// drop the demo backend's site block, the last one
	const backend = "\nhttp://localhost:9001 {"
	i := strings.Index(cfg, backend)
	if i < 0 {
		t.Fatalf("example.Caddyfile has no %q site block", strings.TrimSpace(backend))
	}
	cfg = cfg[:i+1]
	if !strings.Contains(cfg, "reverse_proxy @created localhost:9001") || !strings.Contains(cfg, "reverse_proxy localhost:9001") {
		t.Fatal("example.Caddyfile no longer proxies to localhost:9001")
	}
	// a port nothing listens on (freed just now)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg = strings.ReplaceAll(cfg, "localhost:9001", closed)
	post := startExample(t, cfg)

	m := hmac.New(sha256.New, []byte("demo-vivreal-secret"))
	m.Write([]byte(exampleVivrealBody))
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	vm := hmac.New(sha512.New, []byte("demo-vev-secret"))
	vm.Write([]byte(exampleVevBody))
	vsig := "sha512=" + hex.EncodeToString(vm.Sum(nil))

	for _, tt := range []struct {
		name, path, body string
		header           []string
	}{
		{"vivreal", "/webhooks/vivreal", exampleVivrealBody, []string{"X-Vivreal-Signature", sig}},
		{"vev", "/webhooks/vev", exampleVevBody, []string{"Authorization", "Bearer demo-vev-token", "X-Vev-Signature", vsig}},
	} {
		code, got := post(tt.path, tt.body, tt.header...)
		if code != http.StatusBadGateway {
			t.Errorf("%s, backend down: status %d (%q), want 502", tt.name, code, got)
		}
		var v struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Errorf("%s, backend down: body %q is not JSON: %v", tt.name, got, err)
		} else if v.Error != "Bad Gateway" {
			t.Errorf("%s, backend down: error %q, want %q", tt.name, v.Error, "Bad Gateway")
		}
		for _, leak := range []string{"dial", "127.0.0.1", "connect", strings.TrimPrefix(closed, "127.0.0.1:")} {
			if strings.Contains(got, leak) {
				t.Errorf("%s, backend down: body %q carries reverse_proxy's error (%q)", tt.name, got, leak)
			}
		}
	}

	// the handler's refusals still say why
	forged := strings.Replace(exampleVivrealBody, "Hello", "Forged", 1)
	if code, got := post("/webhooks/vivreal", forged, "X-Vivreal-Signature", sig); code != 401 ||
		got != `{"error": "no matching signature"}` {
		t.Errorf("forged vivreal: %d %q", code, got)
	}
}
