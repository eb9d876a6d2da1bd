package webhookverify_test

// Integration tests: a real, in-process Caddy (caddytest) runs the
// webhook_verify handler in front of reverse_proxy to a recording httptest
// upstream, and the tests send real HTTP/1.1 requests to it, through Go's
// client and, where the framing matters, over raw TCP.
//
// All tests share one Caddy (admin localhost:2999, HTTP port 9080), so none
// of them may call t.Parallel. Each top-level test loads its own config.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/webhookverify/caddy-webhook-verify"
)

const (
	itAddr = "127.0.0.1:9080"        // where every request is dialled
	itBase = "http://localhost:9080" // the URL the site answers on

	itVivSecret = "viv-secret-3f9c2a7e51d04b86"
	itVevSecret = "vev-secret-a41d7c0e9b2f6853"
)

// itGlobal is the global options block every Caddyfile here starts with.
const itGlobal = `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
`

// ---------------------------------------------------------------------------
// Port check

var (
	itPortsOnce sync.Once
	itPortsErr  error
)

// itRequireCaddyPorts fails fast when something other than this test
// binary's own in-process Caddy holds the admin or HTTP port: a leftover
// caddy would otherwise answer in its place, with another config and maybe
// another build of the module.
func itRequireCaddyPorts(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	itPortsOnce.Do(func() {
		if caddy.ActiveContext().Context != nil {
			return // a test in this binary already started Caddy: the ports are ours
		}
		for _, addr := range []string{"127.0.0.1:2999", itAddr} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				itPortsErr = fmt.Errorf("port %s is held by another process (a leftover caddy?): stop it: %v", addr, err)
				return
			}
			_ = ln.Close()
		}
	})
	if itPortsErr != nil {
		t.Fatal(itPortsErr)
	}
}

// itStart loads a Caddyfile into the shared in-process Caddy.
func itStart(t *testing.T, caddyfile string) {
	t.Helper()
	itRequireCaddyPorts(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(itGlobal+caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// ---------------------------------------------------------------------------
// Recording upstream

// itRecorded is one request as the upstream received it.
type itRecorded struct {
	Method           string
	Path             string
	Header           http.Header
	Body             []byte
	ContentLength    int64
	TransferEncoding []string
	ReadErr          error
}

// itRecorder is a real HTTP upstream that records every request it gets and
// answers 200 "ok from <name>".
type itRecorder struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []itRecorded
}

func itNewRecorder(t *testing.T, name string) *itRecorder {
	t.Helper()
	rec := &itRecorder{name: name}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		got := itRecorded{
			Method:           r.Method,
			Path:             r.URL.Path,
			Header:           r.Header.Clone(),
			Body:             body,
			ContentLength:    r.ContentLength,
			TransferEncoding: append([]string(nil), r.TransferEncoding...),
			ReadErr:          err,
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, got)
		rec.mu.Unlock()
		w.Header().Set("X-Upstream", name)
		_, _ = io.WriteString(w, "ok from "+name)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// addr is the upstream's host:port, for reverse_proxy.
func (rec *itRecorder) addr() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

func (rec *itRecorder) reset() {
	rec.mu.Lock()
	rec.reqs = nil
	rec.mu.Unlock()
}

func (rec *itRecorder) all() []itRecorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]itRecorded(nil), rec.reqs...)
}

func (rec *itRecorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// only returns the single request the upstream got, failing otherwise.
func (rec *itRecorder) only(t *testing.T) itRecorded {
	t.Helper()
	reqs := rec.all()
	if len(reqs) != 1 {
		t.Fatalf("upstream %s got %d requests, want exactly 1", rec.name, len(reqs))
	}
	if reqs[0].ReadErr != nil {
		t.Fatalf("upstream %s: reading the forwarded body: %v", rec.name, reqs[0].ReadErr)
	}
	return reqs[0]
}

// itAssertForwarded checks that the upstream got exactly one POST to path
// whose body is byte for byte body, framed with a Content-Length equal to
// its length and no chunked encoding.
func itAssertForwarded(t *testing.T, rec *itRecorder, path string, body []byte) itRecorded {
	t.Helper()
	got := rec.only(t)
	if got.Method != http.MethodPost || got.Path != path {
		t.Errorf("upstream got %s %s, want POST %s", got.Method, got.Path, path)
	}
	if !bytes.Equal(got.Body, body) {
		t.Errorf("upstream body differs: got %d bytes sha256 %x, want %d bytes sha256 %x",
			len(got.Body), sha256.Sum256(got.Body), len(body), sha256.Sum256(body))
	}
	if got.ContentLength != int64(len(body)) {
		t.Errorf("upstream ContentLength = %d, want %d", got.ContentLength, len(body))
	}
	if cl := got.Header.Get("Content-Length"); len(body) > 0 && cl != strconv.Itoa(len(body)) {
		t.Errorf("upstream Content-Length header = %q, want %q", cl, strconv.Itoa(len(body)))
	}
	if len(got.TransferEncoding) != 0 {
		t.Errorf("upstream TransferEncoding = %q, want none", got.TransferEncoding)
	}
	return got
}

// ---------------------------------------------------------------------------
// Signing and bodies

func itSign256(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func itSign512(secret string, body []byte) string {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// itVivrealEvent is a compact Vivreal event exactly size bytes long (or
// the smallest such event, if size is too small), padded in data.note.
func itVivrealEvent(id, event string, size int) []byte {
	prefix := fmt.Sprintf(`{"id":%q,"event":%q,"timestamp":"2026-11-22T10:00:00Z","data":{"note":"`, id, event)
	const suffix = `"}}`
	pad := size - len(prefix) - len(suffix)
	if pad < 0 {
		pad = 0
	}
	b := make([]byte, 0, len(prefix)+pad+len(suffix))
	b = append(b, prefix...)
	for i := 0; i < pad; i++ {
		b = append(b, "abcdefghijklmnopqrstuvwxyz0123456789"[i%36])
	}
	return append(b, suffix...)
}

// itVevPublish is a compact Vev PUBLISH event whose payload is an HTML page
// of at least htmlSize bytes, with <, >, &, quotes (escaped in the JSON)
// and non-ASCII text, JSON-encoded the way a sender does it (no \u003c).
func itVevPublish(id, hosting string, htmlSize int) []byte {
	const piece = `<div class="card" data-x='1'>Café & "quotes" <b>日本語</b> 🚀 &amp; &lt;tag&gt; naïve — 5 > 3 </div>` + "\n"
	var html strings.Builder
	for html.Len() < htmlSize {
		html.WriteString(piece)
	}
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	if err := e.Encode(html.String()); err != nil {
		panic(err)
	}
	htmlJSON := bytes.TrimSuffix(enc.Bytes(), []byte("\n"))
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"id":%q,"hosting":%q,"event":"PUBLISH","payload":{"html":`, id, hosting)
	b.Write(htmlJSON)
	b.WriteString(`}}`)
	return b.Bytes()
}

// ---------------------------------------------------------------------------
// Clients

// itNewClient is an HTTP client that dials the test Caddy whatever the URL's
// host resolves to.
func itNewClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, itAddr)
		},
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// itSpyConn copies the first bytes written on a connection: the request
// line and headers, to check how Go's client framed the body.
type itSpyConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c itSpyConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if room := 16<<10 - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// itSpyClient is a client for one request whose head, as written on the
// wire, the returned function gives back.
func itSpyClient(t *testing.T) (*http.Client, func() string) {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, itAddr)
			if err != nil {
				return nil, err
			}
			return itSpyConn{Conn: c, mu: &mu, buf: &buf}, nil
		},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	head := func() string {
		mu.Lock()
		defer mu.Unlock()
		s := buf.String()
		if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
			s = s[:i+4]
		}
		return s
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, head
}

// itReq is one request to the test Caddy.
type itReq struct {
	method  string // default POST
	path    string
	body    []byte
	header  http.Header
	chunked bool // hide the body's length: Go's client then sends it chunked
}

type itResp struct {
	status int
	header http.Header
	body   []byte
}

func itDo(t *testing.T, c *http.Client, r itReq) itResp {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			body = struct{ io.Reader }{body} // a reader whose length Go cannot see
		}
	}
	req, err := http.NewRequest(method, itBase+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.chunked {
		req.ContentLength = -1
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading response: %v", method, r.path, err)
	}
	return itResp{status: res.StatusCode, header: res.Header, body: b}
}

// itHdr builds a header from name, value pairs; a name may repeat.
func itHdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// itRawHead is an HTTP/1.1 request head for the test site: the request
// line, Host, Connection: close, the given header lines, and the blank line.
func itRawHead(method, path string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n", method, path)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// itChunk encodes body with chunked transfer coding, cutting it into
// chunks of the given sizes in turn, and ends it with the last chunk.
func itChunk(body []byte, sizes ...int) []byte {
	var b bytes.Buffer
	for i := 0; len(body) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(body))
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// itRaw sends head and then rest over a fresh TCP connection and reads the
// response. The write runs concurrently, so a server that answers before
// reading the body is seen answering; a server that waits for bytes that
// never come fails the test at the deadline.
func itRaw(t *testing.T, head string, rest []byte) itResp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", itAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		if len(rest) > 0 {
			_, _ = conn.Write(rest)
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw %q: reading response: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("raw: reading response body: %v", err)
	}
	conn.Close()
	<-done
	return itResp{status: res.StatusCode, header: res.Header, body: b}
}

// itStatus checks the status and, on a mismatch, shows the response.
func itStatus(t *testing.T, what string, got itResp, want int) {
	t.Helper()
	if got.status != want {
		t.Errorf("%s: status %d, want %d (body %q)", what, got.status, want, itTrim(got.body))
	}
}

func itTrim(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// itNoLeak checks that no secret or signature appears in a response.
func itNoLeak(t *testing.T, what string, r itResp, secrets ...string) {
	t.Helper()
	var all strings.Builder
	all.Write(r.body)
	for k, vs := range r.header {
		all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	s := strings.ToLower(all.String())
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, strings.ToLower(sec)) {
			t.Errorf("%s: the response carries a secret or signature %q: %q", what, sec, itTrim([]byte(all.String())))
		}
	}
}

// ---------------------------------------------------------------------------
// Forwarding, size limits and rejections

func TestIntegrationForwarding(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			max_body_size 64KiB
		}
		reverse_proxy %[3]s
	}
	handle /vev {
		webhook_verify vev %[2]s {
			max_body_size 8MiB
		}
		reverse_proxy %[3]s
	}
}
`, itVivSecret, itVevSecret, up.addr()))
	c := itNewClient(t)
	const limit = 64 << 10

	t.Run("vivreal_1KiB", func(t *testing.T) {
		body := itVivrealEvent("evt_1k", "collection.object.created", 1024)
		if len(body) != 1024 {
			t.Fatalf("fixture is %d bytes", len(body))
		}
		sig := itSign256(itVivSecret, body)
		for _, tc := range []struct{ name, header string }{
			{"sha256_prefix", "sha256=" + sig},
			{"bare_hex", sig},
			{"upper_hex_bare", strings.ToUpper(sig)},
			{"upper_hex_prefix", "sha256=" + strings.ToUpper(sig)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				res := itDo(t, c, itReq{path: "/vivreal", body: body, header: itHdr("X-Vivreal-Signature", tc.header)})
				itStatus(t, "genuine event", res, http.StatusOK)
				if string(res.body) != "ok from up" {
					t.Errorf("response body %q, want the upstream's %q", res.body, "ok from up")
				}
				got := itAssertForwarded(t, up, "/vivreal", body)
				if v := got.Header.Get("X-Vivreal-Signature"); v != tc.header {
					t.Errorf("upstream X-Vivreal-Signature = %q, want it forwarded as sent", v)
				}
			})
		}
	})

	t.Run("vev_5MiB_publish", func(t *testing.T) {
		up.reset()
		body := itVevPublish("vev_evt_5m", "hosting_5m", 5<<20)
		if len(body) < 5<<20 || !bytes.Contains(body, []byte(`\"quotes\"`)) || !bytes.Contains(body, []byte("<b>日本語</b>")) ||
			!bytes.Contains(body, []byte("&amp;")) || bytes.Contains(body, []byte(`\u003c`)) {
			t.Fatalf("fixture is not the HTML-bearing event intended (%d bytes)", len(body))
		}
		sig := "sha512=" + itSign512(itVevSecret, body)
		res := itDo(t, c, itReq{path: "/vev", body: body, header: itHdr("X-Vev-Signature", sig, "Content-Type", "application/json")})
		itStatus(t, "genuine 5 MiB PUBLISH", res, http.StatusOK)
		got := itAssertForwarded(t, up, "/vev", body)
		if sha256.Sum256(got.Body) != sha256.Sum256(body) {
			t.Errorf("sha256 of the forwarded body differs")
		}
	})

	t.Run("vev_upper_hex", func(t *testing.T) {
		up.reset()
		body := []byte(`{"id":"v_up","hosting":"h","event":"PING","payload":{}}`)
		sig := "sha512=" + strings.ToUpper(itSign512(itVevSecret, body))
		res := itDo(t, c, itReq{path: "/vev", body: body, header: itHdr("X-Vev-Signature", sig)})
		itStatus(t, "upper-case hex", res, http.StatusOK)
		itAssertForwarded(t, up, "/vev", body)
	})

	t.Run("chunked", func(t *testing.T) {
		t.Run("raw_tcp_vivreal", func(t *testing.T) {
			up.reset()
			body := itVivrealEvent("evt_chunked", "collection.object.updated", 20000)
			head := itRawHead("POST", "/vivreal",
				"Transfer-Encoding: chunked",
				"X-Vivreal-Signature: sha256="+itSign256(itVivSecret, body))
			res := itRaw(t, head, itChunk(body, 1, 7, 4096, 3, 999))
			itStatus(t, "chunked genuine event", res, http.StatusOK)
			itAssertForwarded(t, up, "/vivreal", body)
		})
		t.Run("go_client_vev_3MiB", func(t *testing.T) {
			up.reset()
			body := itVevPublish("vev_chunked", "h_chunked", 3<<20)
			spy, head := itSpyClient(t)
			res := itDo(t, spy, itReq{path: "/vev", body: body, chunked: true,
				header: itHdr("X-Vev-Signature", "sha512="+itSign512(itVevSecret, body))})
			h := head()
			if !strings.Contains(h, "\r\nTransfer-Encoding: chunked\r\n") || strings.Contains(h, "Content-Length") {
				t.Fatalf("the client did not send the body chunked; request head:\n%s", h)
			}
			itStatus(t, "chunked 3 MiB PUBLISH", res, http.StatusOK)
			itAssertForwarded(t, up, "/vev", body)
		})
	})

	t.Run("size_limit", func(t *testing.T) {
		at := itVivrealEvent("evt_at_limit", "collection.object.created", limit)
		over := itVivrealEvent("evt_over_limit", "collection.object.created", limit+1)
		if len(at) != limit || len(over) != limit+1 {
			t.Fatalf("fixtures are %d and %d bytes", len(at), len(over))
		}
		atSig := itHdr("X-Vivreal-Signature", itSign256(itVivSecret, at))
		overSig := itHdr("X-Vivreal-Signature", itSign256(itVivSecret, over))

		t.Run("exactly_at_limit", func(t *testing.T) {
			up.reset()
			itStatus(t, "body of max_body_size bytes", itDo(t, c, itReq{path: "/vivreal", body: at, header: atSig}), http.StatusOK)
			itAssertForwarded(t, up, "/vivreal", at)
		})
		t.Run("exactly_at_limit_chunked", func(t *testing.T) {
			up.reset()
			itStatus(t, "chunked body of max_body_size bytes",
				itDo(t, c, itReq{path: "/vivreal", body: at, header: atSig, chunked: true}), http.StatusOK)
			itAssertForwarded(t, up, "/vivreal", at)
		})

		cases := []struct {
			name string
			do   func(t *testing.T) itResp
		}{
			{"one_over_content_length", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/vivreal", body: over, header: overSig})
			}},
			{"one_over_chunked", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/vivreal", body: over, header: overSig, chunked: true})
			}},
			{"one_over_chunked_raw", func(t *testing.T) itResp {
				head := itRawHead("POST", "/vivreal", "Transfer-Encoding: chunked",
					"X-Vivreal-Signature: "+itSign256(itVivSecret, over))
				return itRaw(t, head, itChunk(over, 5000))
			}},
			{"large_declared_length_body_never_sent", func(t *testing.T) itResp {
				// answered from the header alone: no body byte is sent,
				// so a handler that waited for one would time out
				head := itRawHead("POST", "/vivreal", "Content-Length: 1048576",
					"X-Vivreal-Signature: "+itSign256(itVivSecret, over))
				return itRaw(t, head, nil)
			}},
			{"no_signature_content_length", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/vivreal", body: over})
			}},
			{"no_signature_chunked", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/vivreal", body: over, chunked: true})
			}},
			{"malformed_signature_chunked", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/vivreal", body: over, chunked: true, header: itHdr("X-Vivreal-Signature", "zz")})
			}},
			{"wrong_signature_chunked_200KiB", func(t *testing.T) itResp {
				big := itVivrealEvent("evt_big", "x", 200<<10)
				return itDo(t, c, itReq{path: "/vivreal", body: big, chunked: true,
					header: itHdr("X-Vivreal-Signature", itSign256("another-secret", big))})
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				res := tc.do(t)
				itStatus(t, "body over max_body_size", res, http.StatusRequestEntityTooLarge)
				if n := up.count(); n != 0 {
					t.Errorf("upstream got %d requests, want none", n)
				}
			})
		}
	})
}

func TestIntegrationRejections(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s
		reverse_proxy %[3]s
	}
	handle /vev {
		webhook_verify vev %[2]s
		reverse_proxy %[3]s
	}
}
`, itVivSecret, itVevSecret, up.addr()))
	c := itNewClient(t)

	viv := itVivrealEvent("evt_rej", "collection.object.created", 700)
	vivSig := itSign256(itVivSecret, viv)
	vev := itVevPublish("vev_rej", "h_rej", 2000)
	vevSig := itSign512(itVevSecret, vev)
	edited := bytes.Clone(viv)
	edited[len(edited)-5] ^= 0x01 // one bit of one byte of the padding
	vevEdited := bytes.Clone(vev)
	vevEdited[100] ^= 0x20

	// each genuine request passes, so what follows fails for its one flaw
	t.Run("baseline_genuine", func(t *testing.T) {
		for _, r := range []itReq{
			{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", vivSig)},
			{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512="+vevSig)},
		} {
			up.reset()
			itStatus(t, r.path, itDo(t, c, r), http.StatusOK)
			itAssertForwarded(t, up, r.path, r.body)
		}
	})

	t.Run("method", func(t *testing.T) {
		for _, r := range []itReq{
			{method: http.MethodGet, path: "/vivreal"},
			{method: http.MethodPut, path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", vivSig)},
			{method: http.MethodDelete, path: "/vev"},
			{method: http.MethodPatch, path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512="+vevSig)},
		} {
			t.Run(r.method+r.path, func(t *testing.T) {
				up.reset()
				res := itDo(t, c, r)
				itStatus(t, r.method, res, http.StatusMethodNotAllowed)
				if got := res.header.Values("Allow"); len(got) != 1 || got[0] != "POST" {
					t.Errorf("Allow = %q, want [POST]", got)
				}
				if len(res.body) != 0 {
					t.Errorf("body %q, want none (no handle_errors here)", res.body)
				}
				if n := up.count(); n != 0 {
					t.Errorf("upstream got %d requests, want none", n)
				}
			})
		}
	})

	wrongLen := vivSig[:62]
	cases := []struct {
		name string
		req  itReq
	}{
		{"vivreal_missing", itReq{path: "/vivreal", body: viv}},
		{"vivreal_empty", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", "")}},
		{"vivreal_repeated_same_valid", itReq{path: "/vivreal", body: viv,
			header: itHdr("X-Vivreal-Signature", vivSig, "X-Vivreal-Signature", vivSig)}},
		{"vivreal_repeated_valid_and_wrong", itReq{path: "/vivreal", body: viv,
			header: itHdr("X-Vivreal-Signature", "sha256="+vivSig, "X-Vivreal-Signature", itSign256("x", viv))}},
		{"vivreal_bad_hex", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", strings.Repeat("zz", 32))}},
		{"vivreal_bad_hex_one_char", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", vivSig[:63]+"g")}},
		{"vivreal_short", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", wrongLen)}},
		{"vivreal_long", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", vivSig+"00")}},
		{"vivreal_sha512_prefix", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", "sha512="+vivSig)}},
		{"vivreal_sha256_of_sha512_length", itReq{path: "/vivreal", body: viv,
			header: itHdr("X-Vivreal-Signature", "sha256="+itSign512(itVivSecret, viv))}},
		{"vivreal_wrong_secret", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", itSign256("not-the-secret", viv))}},
		{"vivreal_vev_secret", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vivreal-Signature", itSign256(itVevSecret, viv))}},
		{"vivreal_body_edited_one_byte", itReq{path: "/vivreal", body: edited, header: itHdr("X-Vivreal-Signature", vivSig)}},
		{"vivreal_body_edited_chunked", itReq{path: "/vivreal", body: edited, chunked: true, header: itHdr("X-Vivreal-Signature", vivSig)}},
		{"vivreal_signature_in_vev_header", itReq{path: "/vivreal", body: viv, header: itHdr("X-Vev-Signature", vivSig)}},
		{"vev_missing", itReq{path: "/vev", body: vev}},
		{"vev_repeated", itReq{path: "/vev", body: vev,
			header: itHdr("X-Vev-Signature", "sha512="+vevSig, "X-Vev-Signature", "sha512="+vevSig)}},
		{"vev_sha256_prefix", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha256="+vevSig)}},
		{"vev_sha256_prefix_sha256_mac", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha256="+itSign256(itVevSecret, vev))}},
		{"vev_bare_hex", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", vevSig)}},
		{"vev_bad_hex", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512="+strings.Repeat("x", 128))}},
		{"vev_short", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512="+vevSig[:126])}},
		{"vev_empty_after_prefix", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512=")}},
		{"vev_wrong_secret", itReq{path: "/vev", body: vev, header: itHdr("X-Vev-Signature", "sha512="+itSign512(itVivSecret, vev))}},
		{"vev_body_edited_one_byte", itReq{path: "/vev", body: vevEdited, header: itHdr("X-Vev-Signature", "sha512="+vevSig)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.reset()
			res := itDo(t, c, tc.req)
			itStatus(t, "bad signature", res, http.StatusUnauthorized)
			if len(res.body) != 0 {
				t.Errorf("body %q, want none (no handle_errors here)", res.body)
			}
			itNoLeak(t, tc.name, res, itVivSecret, itVevSecret, vivSig, vevSig)
			if n := up.count(); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// handle_errors

func TestIntegrationHandleErrors(t *testing.T) {
	up := itNewRecorder(t, "up")
	const user, pass = "gateway-user", "gateway-pass-77e1"
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			max_body_size 16KiB
		}
		reverse_proxy %[2]s
	}
	handle /private {
		webhook_verify vivreal %[1]s {
			basic_auth %[3]s %[4]s
			max_body_size 16KiB
		}
		reverse_proxy %[2]s
	}
	handle_errors {
		header Content-Type application/json
		respond "{\"error\": \"{err.message}\"}" {err.status_code}
	}
}
`, itVivSecret, up.addr(), user, pass))
	c := itNewClient(t)

	body := itVivrealEvent("evt_he", "collection.object.created", 900)
	sig := itSign256(itVivSecret, body)
	edited := bytes.Clone(body)
	edited[20] ^= 0x01
	editedSig := itSign256(itVivSecret, edited) // what a leaking gateway might echo
	big := itVivrealEvent("evt_he_big", "x", 16<<10+1)
	bigSig := itSign256(itVivSecret, big)
	authz := itHdr("X-Vivreal-Signature", sig)
	authz.Set("Authorization", "Basic "+itBasicToken(user, pass))

	t.Run("genuine_passes", func(t *testing.T) {
		for _, r := range []itReq{
			{path: "/vivreal", body: body, header: itHdr("X-Vivreal-Signature", sig)},
			{path: "/private", body: body, header: authz},
		} {
			up.reset()
			res := itDo(t, c, r)
			itStatus(t, r.path, res, http.StatusOK)
			if string(res.body) != "ok from up" {
				t.Errorf("%s: body %q, want the upstream's", r.path, res.body)
			}
			itAssertForwarded(t, up, r.path, body)
		}
	})

	cases := []struct {
		name     string
		req      itReq
		status   int
		message  string // the JSON "error" field, or its prefix ending in ':'
		checkHdr func(t *testing.T, h http.Header)
	}{
		{"get_405", itReq{method: http.MethodGet, path: "/vivreal"}, 405, "method not allowed",
			func(t *testing.T, h http.Header) {
				if got := h.Values("Allow"); len(got) != 1 || got[0] != "POST" {
					t.Errorf("Allow = %q, want [POST]", got)
				}
			}},
		{"put_405", itReq{method: http.MethodPut, path: "/private", body: body, header: authz}, 405, "method not allowed",
			func(t *testing.T, h http.Header) {
				if got := h.Get("Allow"); got != "POST" {
					t.Errorf("Allow = %q, want POST", got)
				}
			}},
		{"missing_signature_401", itReq{path: "/vivreal", body: body}, 401, "missing signature:", nil},
		{"malformed_signature_401", itReq{path: "/vivreal", body: body, header: itHdr("X-Vivreal-Signature", "sha256=abc")}, 401, "malformed signature:", nil},
		{"repeated_signature_401", itReq{path: "/vivreal", body: body,
			header: itHdr("X-Vivreal-Signature", sig, "X-Vivreal-Signature", sig)}, 401, "malformed signature:", nil},
		{"wrong_signature_401", itReq{path: "/vivreal", body: edited, header: itHdr("X-Vivreal-Signature", sig)}, 401, "no matching signature", nil},
		{"too_large_413", itReq{path: "/vivreal", body: big, header: itHdr("X-Vivreal-Signature", bigSig)}, 413, "body too large", nil},
		{"too_large_chunked_413", itReq{path: "/vivreal", body: big, chunked: true, header: itHdr("X-Vivreal-Signature", bigSig)}, 413, "body too large", nil},
		{"no_credentials_401", itReq{path: "/private", body: body, header: itHdr("X-Vivreal-Signature", sig)}, 401, "bad credentials",
			func(t *testing.T, h http.Header) {
				if got := h.Values("WWW-Authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want one Basic challenge", got)
				}
			}},
		{"wrong_password_401", itReq{path: "/private", body: body,
			header: itHdr("X-Vivreal-Signature", sig, "Authorization", "Basic "+itBasicToken(user, pass+"x"))}, 401, "bad credentials",
			func(t *testing.T, h http.Header) {
				if got := h.Values("WWW-Authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want one Basic challenge", got)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.reset()
			res := itDo(t, c, tc.req)
			itStatus(t, tc.name, res, tc.status)
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var out map[string]string
			if err := json.Unmarshal(res.body, &out); err != nil || len(out) != 1 {
				t.Fatalf("body %q is not a one-field JSON object: %v", res.body, err)
			}
			msg := out["error"]
			if prefix, ok := strings.CutSuffix(tc.message, ":"); ok {
				if !strings.HasPrefix(msg, prefix+": ") {
					t.Errorf("error %q, want %q followed by a detail", msg, prefix+": ")
				}
			} else if msg != tc.message {
				t.Errorf("error %q, want %q", msg, tc.message)
			}
			if tc.checkHdr != nil {
				tc.checkHdr(t, res.header)
			}
			itNoLeak(t, tc.name, res, itVivSecret, pass, itBasicToken(user, pass), sig, editedSig, bigSig)
			if n := up.count(); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
		})
	}
}

func itBasicToken(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// ---------------------------------------------------------------------------
// Placeholders

func TestIntegrationPlaceholders(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s
		reverse_proxy %[3]s {
			header_up X-Webhook-Provider {http.webhook.provider}
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
		}
	}
	handle /vev {
		webhook_verify vev %[2]s
		reverse_proxy %[3]s {
			header_up X-Webhook-Provider {http.webhook.provider}
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
			header_up X-Webhook-Hosting {http.webhook.hosting}
		}
	}
}
`, itVivSecret, itVevSecret, up.addr()))
	c := itNewClient(t)

	type want struct{ provider, id, event, hosting string }
	cases := []struct {
		name  string
		path  string
		body  string
		spoof bool // the client also sends X-Webhook-* headers of its own
		want  want
	}{
		{"vivreal_string_id", "/vivreal",
			`{"id":"evt_42","event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"id":"nested","event":"nested"}}`,
			false, want{"vivreal", "evt_42", "collection.object.created", ""}},
		{"vivreal_numeric_id", "/vivreal", `{"id": 12345, "event": "collection.object.deleted", "data": {}}`,
			false, want{"vivreal", "12345", "collection.object.deleted", ""}},
		{"vivreal_numeric_id_json_text", "/vivreal", `{"event":"e","id":-1.5e3}`,
			false, want{"vivreal", "-1.5e3", "e", ""}},
		{"vivreal_escaped_strings", "/vivreal", `{"id":"evt\/7","event":"collection.object.\u0075pdated"}`,
			false, want{"vivreal", "evt/7", "collection.object.updated", ""}},
		{"vivreal_fields_absent", "/vivreal", `{"data":{"id":"nested","event":"nested"}}`,
			false, want{"vivreal", "", "", ""}},
		{"vivreal_non_scalar_fields", "/vivreal", `{"id":{"x":1},"event":["a"]}`,
			false, want{"vivreal", "", "", ""}},
		{"vivreal_not_json", "/vivreal", "plain text, not JSON: id=evt_1 event=collection.object.created",
			true, want{"vivreal", "", "", ""}},
		{"vivreal_truncated_json", "/vivreal", `{"id":"evt_trunc","event":"collection.object.created"`,
			true, want{"vivreal", "", "", ""}},
		{"vivreal_empty_body", "/vivreal", "", true, want{"vivreal", "", "", ""}},
		{"vev_publish", "/vev", string(itVevPublish("vev_7", "hosting_abc", 3000)),
			false, want{"vev", "vev_7", "PUBLISH", "hosting_abc"}},
		{"vev_numeric", "/vev", `{"id":987,"hosting":654321,"event":"PING","payload":{"hosting":"nested"}}`,
			false, want{"vev", "987", "PING", "654321"}},
		{"vev_not_json", "/vev", "<html>not JSON</html>", true, want{"vev", "", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.reset()
			body := []byte(tc.body)
			var h http.Header
			if tc.path == "/vev" {
				h = itHdr("X-Vev-Signature", "sha512="+itSign512(itVevSecret, body))
			} else {
				h = itHdr("X-Vivreal-Signature", itSign256(itVivSecret, body))
			}
			if tc.spoof {
				h.Set("X-Webhook-Provider", "spoofed")
				h.Set("X-Webhook-Id", "spoofed")
				h.Set("X-Webhook-Event", "spoofed")
				h.Set("X-Webhook-Hosting", "spoofed")
			}
			res := itDo(t, c, itReq{path: tc.path, body: body, header: h})
			itStatus(t, "genuine event", res, http.StatusOK)
			got := itAssertForwarded(t, up, tc.path, body)
			check := func(name, want string) {
				t.Helper()
				if vs := got.Header.Values(name); len(vs) > 1 || got.Header.Get(name) != want {
					t.Errorf("upstream %s = %q, want %q", name, vs, want)
				}
			}
			check("X-Webhook-Provider", tc.want.provider)
			check("X-Webhook-Id", tc.want.id)
			check("X-Webhook-Event", tc.want.event)
			if tc.path == "/vev" {
				check("X-Webhook-Hosting", tc.want.hosting)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Routing on the verified event

func TestIntegrationEventRouting(t *testing.T) {
	created := itNewRecorder(t, "created")
	other := itNewRecorder(t, "other")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		route {
			webhook_verify vivreal %[1]s
			@created expression "{http.webhook.event} == \"collection.object.created\""
			reverse_proxy @created %[2]s
			reverse_proxy %[3]s
		}
	}
}
`, itVivSecret, created.addr(), other.addr()))
	c := itNewClient(t)

	cases := []struct {
		name   string
		body   string
		forge  bool
		status int
		to     *itRecorder // nil: nowhere
	}{
		{"created", `{"id":"r1","event":"collection.object.created","data":{}}`, false, 200, created},
		{"updated", `{"id":"r2","event":"collection.object.updated","data":{}}`, false, 200, other},
		{"nested_event_only", `{"id":"r3","event":"collection.object.deleted","data":{"event":"collection.object.created"}}`, false, 200, other},
		{"prefix_of_created", `{"id":"r4","event":"collection.object.created.v2"}`, false, 200, other},
		{"not_json", `collection.object.created`, false, 200, other},
		{"forged_created", `{"id":"r5","event":"collection.object.created","data":{}}`, true, 401, nil},
		{"created_chunked", `{"id":"r6","event":"collection.object.created","data":{"x":"` + strings.Repeat("y", 50000) + `"}}`, false, 200, created},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			created.reset()
			other.reset()
			body := []byte(tc.body)
			sig := itSign256(itVivSecret, body)
			if tc.forge {
				sig = itSign256("forger", body)
			}
			res := itDo(t, c, itReq{path: "/vivreal", body: body, header: itHdr("X-Vivreal-Signature", sig),
				chunked: strings.HasSuffix(tc.name, "_chunked")})
			itStatus(t, tc.name, res, tc.status)
			for _, rec := range []*itRecorder{created, other} {
				if rec == tc.to {
					itAssertForwarded(t, rec, "/vivreal", body)
					if string(res.body) != "ok from "+rec.name {
						t.Errorf("response %q, want it from upstream %s", res.body, rec.name)
					}
				} else if n := rec.count(); n != 0 {
					t.Errorf("upstream %s got %d requests, want none", rec.name, n)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Endpoint credentials

func TestIntegrationCredentials(t *testing.T) {
	up := itNewRecorder(t, "up")
	const user, pass, token = "alice", "s3cret-pass-91", "tok-5b8e2c71d0"
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /basic {
		webhook_verify vivreal %[1]s {
			basic_auth %[3]s %[4]s
			max_body_size 16KiB
		}
		reverse_proxy %[2]s
	}
	handle /bearer {
		webhook_verify vivreal %[1]s {
			bearer_token %[5]s
			max_body_size 16KiB
		}
		reverse_proxy %[2]s
	}
	handle /both {
		webhook_verify vivreal %[1]s {
			basic_auth %[3]s %[4]s
			bearer_token %[5]s
			max_body_size 16KiB
		}
		reverse_proxy %[2]s
	}
}
`, itVivSecret, up.addr(), user, pass, token))
	c := itNewClient(t)

	body := itVivrealEvent("evt_cred", "collection.object.created", 1200)
	sig := itSign256(itVivSecret, body)
	basic := "Basic " + itBasicToken(user, pass)
	bearer := "Bearer " + token

	const (
		chBasic  = "Basic"
		chBearer = "Bearer"
	)
	cases := []struct {
		name       string
		path       string
		authz      []string // Authorization header lines
		badSig     bool
		status     int
		challenges []string // the schemes of the WWW-Authenticate values, in order
	}{
		{"basic_right", "/basic", []string{basic}, false, 200, nil},
		{"basic_scheme_lower_case", "/basic", []string{"basic " + itBasicToken(user, pass)}, false, 200, nil},
		{"basic_wrong_password", "/basic", []string{"Basic " + itBasicToken(user, pass+"!")}, false, 401, []string{chBasic}},
		{"basic_wrong_user", "/basic", []string{"Basic " + itBasicToken("mallory", pass)}, false, 401, []string{chBasic}},
		{"basic_password_prefix", "/basic", []string{"Basic " + itBasicToken(user, pass[:len(pass)-1])}, false, 401, []string{chBasic}},
		{"basic_empty_password", "/basic", []string{"Basic " + itBasicToken(user, "")}, false, 401, []string{chBasic}},
		{"basic_not_base64", "/basic", []string{"Basic !!!"}, false, 401, []string{chBasic}},
		{"basic_missing", "/basic", nil, false, 401, []string{chBasic}},
		{"basic_given_bearer", "/basic", []string{bearer}, false, 401, []string{chBasic}},
		{"basic_right_but_bad_signature", "/basic", []string{basic}, true, 401, nil},
		{"bearer_right", "/bearer", []string{bearer}, false, 200, nil},
		{"bearer_wrong", "/bearer", []string{"Bearer " + token + "x"}, false, 401, []string{chBearer}},
		{"bearer_prefix", "/bearer", []string{"Bearer " + token[:5]}, false, 401, []string{chBearer}},
		{"bearer_empty", "/bearer", []string{"Bearer "}, false, 401, []string{chBearer}},
		{"bearer_missing", "/bearer", nil, false, 401, []string{chBearer}},
		{"bearer_given_basic", "/bearer", []string{basic}, false, 401, []string{chBearer}},
		{"bearer_token_without_scheme", "/bearer", []string{token}, false, 401, []string{chBearer}},
		{"bearer_right_but_bad_signature", "/bearer", []string{bearer}, true, 401, nil},
		{"both_basic_passes", "/both", []string{basic}, false, 200, nil},
		{"both_bearer_passes", "/both", []string{bearer}, false, 200, nil},
		{"both_missing", "/both", nil, false, 401, []string{chBasic, chBearer}},
		{"both_wrong_basic", "/both", []string{"Basic " + itBasicToken(user, "nope")}, false, 401, []string{chBasic, chBearer}},
		{"both_wrong_bearer", "/both", []string{"Bearer nope"}, false, 401, []string{chBasic, chBearer}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.reset()
			h := itHdr("X-Vivreal-Signature", sig)
			if tc.badSig {
				h.Set("X-Vivreal-Signature", itSign256("forger", body))
			}
			for _, a := range tc.authz {
				h.Add("Authorization", a)
			}
			res := itDo(t, c, itReq{path: tc.path, body: body, header: h})
			itStatus(t, tc.name, res, tc.status)
			itNoLeak(t, tc.name, res, pass, token, itBasicToken(user, pass), itVivSecret, sig)
			if tc.status == 200 {
				itAssertForwarded(t, up, tc.path, body)
				return
			}
			if n := up.count(); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
			if tc.challenges == nil {
				return
			}
			got := res.header.Values("WWW-Authenticate")
			if len(got) != len(tc.challenges) {
				t.Fatalf("WWW-Authenticate = %q, want %d challenge(s): %q", got, len(tc.challenges), tc.challenges)
			}
			for i, scheme := range tc.challenges {
				if !strings.HasPrefix(got[i], scheme+" ") || !strings.Contains(got[i], "realm=") {
					t.Errorf("WWW-Authenticate[%d] = %q, want a %s challenge with a realm", i, got[i], scheme)
				}
			}
		})
	}

	// Credentials are checked before the body is read: wrong credentials
	// with a body over the limit are a 401, not a 413.
	t.Run("credentials_before_body", func(t *testing.T) {
		big := itVivrealEvent("evt_cred_big", "x", 100<<10)
		bigSig := "X-Vivreal-Signature: " + itSign256(itVivSecret, big)
		cases := []struct {
			name   string
			do     func(t *testing.T) itResp
			status int
		}{
			{"wrong_creds_large_declared_length_no_body", func(t *testing.T) itResp {
				return itRaw(t, itRawHead("POST", "/basic", "Content-Length: 10485760", bigSig, "Authorization: Basic "+itBasicToken(user, "nope")), nil)
			}, 401},
			{"no_creds_large_declared_length_no_body", func(t *testing.T) itResp {
				return itRaw(t, itRawHead("POST", "/both", "Content-Length: 10485760", bigSig), nil)
			}, 401},
			{"wrong_creds_over_limit_content_length", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/bearer", body: big,
					header: itHdr("X-Vivreal-Signature", itSign256(itVivSecret, big), "Authorization", "Bearer nope")})
			}, 401},
			{"wrong_creds_over_limit_chunked", func(t *testing.T) itResp {
				return itRaw(t, itRawHead("POST", "/basic", "Transfer-Encoding: chunked", bigSig, "Authorization: "+bearer), itChunk(big, 8192))
			}, 401},
			{"no_creds_over_limit_no_signature_chunked", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/both", body: big, chunked: true})
			}, 401},
			{"right_creds_over_limit_content_length", func(t *testing.T) itResp {
				return itDo(t, c, itReq{path: "/basic", body: big,
					header: itHdr("X-Vivreal-Signature", itSign256(itVivSecret, big), "Authorization", basic)})
			}, 413},
			{"right_creds_over_limit_chunked", func(t *testing.T) itResp {
				return itRaw(t, itRawHead("POST", "/both", "Transfer-Encoding: chunked", bigSig, "Authorization: "+bearer), itChunk(big, 8192))
			}, 413},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				up.reset()
				res := tc.do(t)
				itStatus(t, tc.name, res, tc.status)
				if tc.status == 401 && len(res.header.Values("WWW-Authenticate")) == 0 {
					t.Errorf("401 without a WWW-Authenticate challenge")
				}
				if n := up.count(); n != 0 {
					t.Errorf("upstream got %d requests, want none", n)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Secret rotation

func TestIntegrationSecretRotation(t *testing.T) {
	up := itNewRecorder(t, "up")
	const oldSecret, newSecret, thirdSecret = "rotation-old-6c1f", "rotation-new-9ad4", "rotation-third-22b0"
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal {
			secret %[1]s
			secret %[2]s
		}
		reverse_proxy %[3]s
	}
	handle /vev {
		webhook_verify vev %[1]s {
			secret %[2]s
		}
		reverse_proxy %[3]s
	}
}
`, oldSecret, newSecret, up.addr()))
	c := itNewClient(t)

	for _, path := range []string{"/vivreal", "/vev"} {
		for _, tc := range []struct {
			secret string
			status int
		}{
			{oldSecret, 200},
			{newSecret, 200},
			{thirdSecret, 401},
			{oldSecret + newSecret, 401},
		} {
			t.Run(path[1:]+"_"+tc.secret, func(t *testing.T) {
				up.reset()
				body := itVivrealEvent("evt_rot", "collection.object.created", 3000)
				var h http.Header
				if path == "/vev" {
					body = itVevPublish("vev_rot", "h", 3000)
					h = itHdr("X-Vev-Signature", "sha512="+itSign512(tc.secret, body))
				} else {
					h = itHdr("X-Vivreal-Signature", itSign256(tc.secret, body))
				}
				for _, chunked := range []bool{false, true} {
					up.reset()
					res := itDo(t, c, itReq{path: path, body: body, header: h, chunked: chunked})
					itStatus(t, fmt.Sprintf("chunked=%v", chunked), res, tc.status)
					if tc.status == 200 {
						itAssertForwarded(t, up, path, body)
					} else if n := up.count(); n != 0 {
						t.Errorf("upstream got %d requests, want none", n)
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Concurrency

func TestIntegrationConcurrency(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			max_body_size 1MiB
		}
		reverse_proxy %[2]s {
			header_up X-Webhook-Id {http.webhook.id}
			header_up X-Webhook-Event {http.webhook.event}
		}
	}
}
`, itVivSecret, up.addr()))
	c := itNewClient(t)

	const n = 400
	const workers = 24
	sizes := []int{180, 1500, 4096, 4097, 33000, 70000, 262144, 300001}
	type job struct {
		id      string
		event   string
		body    []byte
		header  http.Header
		chunked bool
		valid   bool
	}
	jobs := make([]job, n)
	for i := range jobs {
		id := fmt.Sprintf("evt_conc_%04d", i)
		event := fmt.Sprintf("collection.object.e%d", i%7)
		body := itVivrealEvent(id, event, sizes[i%len(sizes)])
		sig := itSign256(itVivSecret, body)
		j := job{id: id, event: event, body: body, chunked: i%3 == 0, valid: true}
		switch i % 5 {
		case 0, 1:
			j.header = itHdr("X-Vivreal-Signature", sig)
		case 2:
			j.header = itHdr("X-Vivreal-Signature", "sha256="+strings.ToUpper(sig))
		case 3: // forged: signed with another secret
			j.header = itHdr("X-Vivreal-Signature", itSign256(itVivSecret+"-forged", body))
			j.valid = false
		case 4: // forged: a genuine signature over a body edited afterwards
			j.header = itHdr("X-Vivreal-Signature", sig)
			j.body = bytes.Clone(body)
			j.body[len(j.body)/2] ^= 0x04
			j.valid = false
		}
		jobs[i] = j
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)

	statuses := make([]int, n)
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range work {
				j := jobs[i]
				var body io.Reader = bytes.NewReader(j.body)
				if j.chunked {
					body = struct{ io.Reader }{body}
				}
				req, err := http.NewRequest(http.MethodPost, itBase+"/vivreal", body)
				if err != nil {
					errs[i] = err
					continue
				}
				if j.chunked {
					req.ContentLength = -1
				}
				for k, vs := range j.header {
					req.Header[k] = vs
				}
				res, err := c.Do(req)
				if err != nil {
					errs[i] = err
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses[i] = res.StatusCode
			}
		})
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d requests in %v", n, time.Since(start))

	wantIDs := map[string]int{}
	for i, j := range jobs {
		if errs[i] != nil {
			t.Errorf("request %s: %v", j.id, errs[i])
			continue
		}
		want := http.StatusUnauthorized
		if j.valid {
			want = http.StatusOK
			wantIDs[j.id] = i
		}
		if statuses[i] != want {
			t.Errorf("request %s (valid=%v, chunked=%v, %d bytes): status %d, want %d",
				j.id, j.valid, j.chunked, len(j.body), statuses[i], want)
		}
	}

	seen := map[string]bool{}
	for _, got := range up.all() {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(got.Body, &ev); err != nil {
			t.Errorf("upstream got a body that is not the JSON sent (%d bytes): %v", len(got.Body), err)
			continue
		}
		i, ok := wantIDs[ev.ID]
		if !ok {
			t.Errorf("upstream got %s, which is not a genuine request", ev.ID)
			continue
		}
		if seen[ev.ID] {
			t.Errorf("upstream got %s twice", ev.ID)
		}
		seen[ev.ID] = true
		j := jobs[i]
		if !bytes.Equal(got.Body, j.body) {
			t.Errorf("%s: forwarded body differs from the one sent", ev.ID)
		}
		if got.ContentLength != int64(len(j.body)) || len(got.TransferEncoding) != 0 {
			t.Errorf("%s: forwarded with ContentLength %d, TransferEncoding %q; want %d, none",
				ev.ID, got.ContentLength, got.TransferEncoding, len(j.body))
		}
		// the placeholders of one request never show another's event
		if got.Header.Get("X-Webhook-Id") != j.id || got.Header.Get("X-Webhook-Event") != j.event {
			t.Errorf("%s: X-Webhook-Id %q, X-Webhook-Event %q; want %q, %q", ev.ID,
				got.Header.Get("X-Webhook-Id"), got.Header.Get("X-Webhook-Event"), j.id, j.event)
		}
	}
	if len(seen) != len(wantIDs) {
		t.Errorf("upstream got %d of the %d genuine requests", len(seen), len(wantIDs))
	}
	if len(wantIDs) == 0 || len(wantIDs) == n {
		t.Fatalf("the mix has %d genuine requests of %d: not a mix", len(wantIDs), n)
	}
}

// ---------------------------------------------------------------------------
// JSON config

func TestIntegrationJSONConfig(t *testing.T) {
	itRequireCaddyPorts(t)
	up := itNewRecorder(t, "up")
	const secretA, secretB = "json-vev-secret-1", "json-vev-secret-2"
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:2999"},
	"apps": {
		"pki": {"certificate_authorities": {"local": {"install_trust": false}}},
		"http": {
			"grace_period": 1,
			"http_port": 9080,
			"https_port": 9443,
			"servers": {
				"srv0": {
					"listen": [":9080"],
					"routes": [{
						"match": [{"path": ["/vev"]}],
						"handle": [
							{
								"handler": "webhook_verify",
								"provider": {"name": "vev"},
								"secrets": [%q, %q],
								"max_body_size": 65536
							},
							{
								"handler": "reverse_proxy",
								"headers": {"request": {"set": {
									"X-Webhook-Provider": ["{http.webhook.provider}"],
									"X-Webhook-Hosting": ["{http.webhook.hosting}"]
								}}},
								"upstreams": [{"dial": %q}]
							}
						]
					}]
				}
			}
		}
	}
}`, secretA, secretB, up.addr())
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "json")
	if t.Failed() {
		t.FailNow()
	}
	c := itNewClient(t)

	body := itVevPublish("vev_json", "hosting_json", 4000)
	for _, tt := range []struct {
		name   string
		req    itReq
		status int
	}{
		{"secret_1", itReq{path: "/vev", body: body, header: itHdr("X-Vev-Signature", "sha512="+itSign512(secretA, body))}, 200},
		{"secret_2_chunked", itReq{path: "/vev", body: body, chunked: true, header: itHdr("X-Vev-Signature", "sha512="+itSign512(secretB, body))}, 200},
		{"other_secret", itReq{path: "/vev", body: body, header: itHdr("X-Vev-Signature", "sha512="+itSign512("json-vev-secret-3", body))}, 401},
		{"sha256_prefix", itReq{path: "/vev", body: body, header: itHdr("X-Vev-Signature", "sha256="+itSign512(secretA, body))}, 401},
		{"get", itReq{method: http.MethodGet, path: "/vev"}, 405},
		{"too_large", itReq{path: "/vev", body: itVevPublish("vev_json_big", "h", 70000)}, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up.reset()
			res := itDo(t, c, tt.req)
			itStatus(t, tt.name, res, tt.status)
			if tt.status != 200 {
				if n := up.count(); n != 0 {
					t.Errorf("upstream got %d requests, want none", n)
				}
				return
			}
			got := itAssertForwarded(t, up, "/vev", body)
			if p, h := got.Header.Get("X-Webhook-Provider"), got.Header.Get("X-Webhook-Hosting"); p != "vev" || h != "hosting_json" {
				t.Errorf("upstream X-Webhook-Provider %q, X-Webhook-Hosting %q; want vev, hosting_json", p, h)
			}
		})
	}
}
