package webhookverify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/webhookverify/caddy-webhook-verify/queue"
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
	// the queue's file in a directory of the test's, not in Caddy's data dir
	cfg = strings.ReplaceAll(cfg, "queue demo {", "queue demo {\n\t\t\t\tstore bbolt "+t.TempDir()+"/queue.db")
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
	if t.Failed() {
		t.FailNow()
	}
	// the internal issuer may still be at work after the load (a request
	// before the certificate exists fails the handshake with "tls:
	// internal error"): wait for a handshake with the HTTPS site
	var last error
	h2Poll(t, "a TLS handshake with https://localhost:9443", func() bool {
		d := &tls.Dialer{
			NetDialer: &net.Dialer{Timeout: 2 * time.Second},
			Config:    &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}, //nolint:gosec
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", "127.0.0.1:9443")
		if err != nil {
			last = err
			return false
		}
		c.Close()
		return true
	}, func() string { return fmt.Sprint(last) })
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

// TestIntegrationExampleQueued follows the README's store-and-forward
// walk-through on example.Caddyfile: an event sent while the backend is
// down is answered 200 queued and delivered once a backend listens; an
// event that cannot be delivered becomes dead, is listed by the admin API,
// and is delivered after a replay.
func TestIntegrationExampleQueued(t *testing.T) {
	cfg := strings.ReplaceAll(exampleConfig(t), "localhost:9001", "localhost:9081")
	for _, want := range []string{"reverse_proxy localhost:9002", "retry 2s 5s 10s", "queue demo {"} {
		if !strings.Contains(cfg, want) {
			t.Fatalf("example.Caddyfile lost %q", want)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backendAddr := l.Addr().String()
	l.Close() // down until the test starts it
	cfg = strings.ReplaceAll(cfg, "localhost:9002", backendAddr)
	cfg = strings.ReplaceAll(cfg, "retry 2s 5s 10s", "retry 200ms")
	post := startExample(t, cfg)

	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte("demo-vivreal-secret"))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	admin := func(method, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://localhost:2999/webhook_verify"+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	type stats struct {
		Name                     string
		Pending, Delivered, Dead int64
	}
	queueStats := func() stats {
		t.Helper()
		_, b := admin("GET", "/queues")
		var qs []stats
		if err := json.Unmarshal(b, &qs); err != nil || len(qs) != 1 || qs[0].Name != "demo" {
			t.Fatalf("queues: %s (%v)", b, err)
		}
		return qs[0]
	}
	backend := func() *itRecorder {
		rec := &itRecorder{name: "backend"}
		ln, err := net.Listen("tcp", backendAddr)
		if err != nil {
			t.Fatalf("starting the backend on %s: %v", backendAddr, err)
		}
		rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, itRecorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: b, ContentLength: r.ContentLength})
			rec.mu.Unlock()
		}))
		rec.srv.Listener.Close()
		rec.srv.Listener = ln
		rec.srv.Start()
		return rec
	}

	// backend down: queued anyway
	body := `{"id":"evt_q1","event":"collection.object.created","data":{"title":"Queued"}}`
	if code, got := post("/webhooks/queued", body, "X-Vivreal-Signature", sign(body)); code != 200 || got != `{"received":true,"queued":true}` {
		t.Fatalf("queued event: %d %q", code, got)
	}
	if code, got := post("/webhooks/queued", body, "X-Vivreal-Signature", sign(body)); code != 200 || got != `{"received":true,"duplicate":true}` {
		t.Fatalf("the sender's retry: %d %q", code, got)
	}
	if st := queueStats(); st.Pending != 1 {
		t.Fatalf("pending %d, want 1", st.Pending)
	}
	// backend up: delivered
	up := backend()
	qiWait(t, "the delivery", func() bool { return up.count() == 1 })
	got := up.only(t)
	if string(got.Body) != body || got.Header.Get("X-Webhook-Id") != "evt_q1" {
		t.Fatalf("delivered %q with id %q", got.Body, got.Header.Get("X-Webhook-Id"))
	}
	qiWait(t, "the delivered count", func() bool { return queueStats().Delivered == 1 })

	// a backup taken while Caddy runs opens as a store of its own
	code, snapshot := admin("GET", "/queues/demo/backup")
	if code != 200 {
		t.Fatalf("backup: %d %s", code, snapshot)
	}
	copyPath := t.TempDir() + "/copy.db"
	if err := os.WriteFile(copyPath, snapshot, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := queue.Open(copyPath, queue.Options{})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	bq, err := st.Queue("demo")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := bq.Get("evt_q1", false); err != nil || ev.State != queue.Delivered {
		t.Fatalf("the backup holds %+v, %v; want evt_q1 delivered", ev, err)
	}
	_ = st.Close()

	// backend down again: the next event dies after max_attempts
	up.srv.Close()
	dead := `{"id":"evt_q2","event":"collection.object.created","data":{"title":"Dead"}}`
	if code, got := post("/webhooks/queued", dead, "X-Vivreal-Signature", sign(dead)); code != 200 || got != `{"received":true,"queued":true}` {
		t.Fatalf("second event: %d %q", code, got)
	}
	qiWait(t, "the dead event", func() bool {
		_, b := admin("GET", "/queues/demo/events?state=dead")
		return strings.Contains(string(b), `"id": "evt_q2"`)
	})
	// replayed once a backend listens: delivered
	up2 := backend()
	t.Cleanup(up2.srv.Close)
	if code, b := admin("POST", "/queues/demo/events/evt_q2/replay"); code != 200 {
		t.Fatalf("replay: %d %s", code, b)
	}
	qiWait(t, "the replayed delivery", func() bool { return up2.count() == 1 })
	if got := up2.only(t); string(got.Body) != dead {
		t.Fatalf("replayed body %q", got.Body)
	}
}
