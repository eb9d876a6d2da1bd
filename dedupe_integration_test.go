package webhookverify_test

// Integration tests of the dedupe option: a real, in-process Caddy
// (caddytest, admin localhost:2999, HTTP port 9080, and 9081 for a second
// gateway) runs webhook_verify with dedupe in front of reverse_proxy to a
// recording upstream that counts the requests per event id and whose
// answer can be switched (200, 500, a dropped connection, or held in flight
// until the test releases it). The Redis tests run a real redis-server
// (internal/redistest), shared by two gateways, and stop and restart it
// under them; a listener that never answers stands for a Redis that times
// out. The handler's log lines and the access log go to JSON files that the
// tests read.
//
// These tests share the one Caddy of this test binary with the other
// integration tests: none may call t.Parallel.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// ddDuplicateBody is the handler's own answer to a duplicate of a delivered
// event.
const ddDuplicateBody = `{"received":true,"duplicate":true}`

// ddRun makes the event ids of one test run unique: the memory store
// outlives a config reload, so a second run in the same process (-count=2)
// must not find the first run's ids. Each top-level test sets it anew.
var ddRun string

func ddNewRun() {
	ddRun = strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36)
}

// ddID is an event id unique to this run.
func ddID(name string) string { return "evt_dd_" + ddRun + "_" + name }

// ---------------------------------------------------------------------------
// Caddy

// ddStart loads sites into the shared in-process Caddy, with the handler's
// own log lines (the default logger) written as JSON to logFile.
func ddStart(t *testing.T, logFile, sites string) {
	t.Helper()
	itRequireCaddyPorts(t)
	global := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	log {
		output file %s
		format json
		level INFO
	}
}
`, logFile)
	tc := caddytest.NewTester(t)
	tc.InitServer(global+sites, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// ddLogLines reads a JSON log file written by Caddy.
func ddLogLines(t *testing.T, file string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for line := range strings.Lines(string(raw)) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// ddFindLog waits (up to 3 s: access logs are written after the response)
// for a line of file that has every one of the fields in want, and returns
// it; it fails the test if none comes.
func ddFindLog(t *testing.T, file string, want map[string]any) map[string]any {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, m := range ddLogLines(t, file) {
			if ddLogMatch(m, want) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no log line in %s with %v", file, want)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ddLogMatch(m, want map[string]any) bool {
	for k, v := range want {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// ddCountLog counts the lines of file that have every field of want.
func ddCountLog(t *testing.T, file string, want map[string]any) int {
	t.Helper()
	n := 0
	for _, m := range ddLogLines(t, file) {
		if ddLogMatch(m, want) {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Recording upstream

// ddUpstream is a real HTTP upstream that counts the requests it gets per
// event id (the id's string value or a number's JSON text; "" for none)
// and answers with a status that can be switched, "ok from up" as body.
// Requests for an id can be held (until the hold ends or the request is
// cancelled) or dropped (the connection closed, no answer).
type ddUpstream struct {
	srv    *httptest.Server
	status atomic.Int32

	mu       sync.Mutex
	counts   map[string]int    // requests received, per id
	finished map[string]int    // requests answered (or abandoned), per id
	gaveUp   map[string]int    // requests the gateway cancelled while held, per id
	dupHdr   map[string]string // the last X-Webhook-Duplicate seen, per id
	hold     map[string]time.Duration
	gates    map[string]chan struct{}
	drop     map[string]bool
}

func ddNewUpstream(t *testing.T) *ddUpstream {
	t.Helper()
	u := &ddUpstream{
		counts:   map[string]int{},
		finished: map[string]int{},
		gaveUp:   map[string]int{},
		dupHdr:   map[string]string{},
		hold:     map[string]time.Duration{},
		gates:    map[string]chan struct{}{},
		drop:     map[string]bool{},
	}
	u.status.Store(http.StatusOK)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := ddEventID(body)
		u.mu.Lock()
		u.counts[id]++
		u.dupHdr[id] = r.Header.Get("X-Webhook-Duplicate")
		hold, gate, drop := u.hold[id], u.gates[id], u.drop[id]
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			u.finished[id]++
			u.mu.Unlock()
		}()
		if drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		gaveUp := func() {
			u.mu.Lock()
			u.gaveUp[id]++
			u.mu.Unlock()
		}
		if hold > 0 {
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				gaveUp()
				return
			}
		}
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				gaveUp()
				return
			case <-time.After(20 * time.Second):
			}
		}
		w.Header().Set("X-Upstream", "up")
		w.WriteHeader(int(u.status.Load()))
		_, _ = io.WriteString(w, "ok from up")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *ddUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

func (u *ddUpstream) count(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[id]
}

func (u *ddUpstream) finishedCount(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.finished[id]
}

func (u *ddUpstream) gaveUpCount(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gaveUp[id]
}

func (u *ddUpstream) dupHeader(id string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dupHdr[id]
}

func (u *ddUpstream) setHold(id string, d time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hold[id] = d
}

// gate holds the requests for id until the returned release is called
// (or the request is cancelled): the test, not a timer, decides how long a
// delivery stays in flight. Release is idempotent and runs at cleanup.
func (u *ddUpstream) gate(t *testing.T, id string) (release func()) {
	ch := make(chan struct{})
	u.mu.Lock()
	u.gates[id] = ch
	u.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			u.mu.Lock()
			delete(u.gates, id)
			u.mu.Unlock()
			close(ch)
		})
	}
	t.Cleanup(release)
	return release
}

func (u *ddUpstream) setDrop(id string, drop bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.drop[id] = drop
}

// waitCount waits until the upstream has received n requests for id.
func (u *ddUpstream) waitCount(t *testing.T, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for u.count(id) < n {
		if time.Now().After(deadline) {
			t.Fatalf("upstream got %d requests for %q, waited for %d", u.count(id), id, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ddEventID is the event id of a body as the upstream sees it: the string
// value of "id", or a number's JSON text; "" otherwise.
func ddEventID(body []byte) string {
	var ev map[string]json.RawMessage
	if json.Unmarshal(body, &ev) != nil {
		return ""
	}
	raw := bytes.TrimSpace(ev["id"])
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return string(raw)
	}
	return ""
}

// ---------------------------------------------------------------------------
// Events and requests

// ddVivreal is a compact Vivreal event whose "id" member is idJSON, raw JSON
// text (`"evt_1"`, `12345`, `""`); with idJSON empty the body has no id.
func ddVivreal(idJSON string) []byte {
	var b strings.Builder
	b.WriteString("{")
	if idJSON != "" {
		b.WriteString(`"id":` + idJSON + ",")
	}
	b.WriteString(`"event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"title":"dedupe"}}`)
	return []byte(b.String())
}

// ddQ is s as a JSON string.
func ddQ(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ddVev is a compact Vev PING event with id.
func ddVev(id string) []byte {
	return []byte(`{"id":` + ddQ(id) + `,"hosting":"site-1","event":"PING","payload":{}}`)
}

// ddSigViv is a genuine X-Vivreal-Signature header for body.
func ddSigViv(body []byte) http.Header {
	return itHdr("X-Vivreal-Signature", "sha256="+itSign256(itVivSecret, body))
}

// ddClient is an HTTP client that dials 127.0.0.1 on the URL's port.
func ddClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// ddResp is a response, with the time it took.
type ddResp struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

func (r ddResp) String() string {
	return fmt.Sprintf("%d %q (Retry-After %q)", r.status, itTrim(r.body), r.header.Get("Retry-After"))
}

// ddPost posts body to url; safe to call from any goroutine.
func ddPost(c *http.Client, url string, body []byte, header http.Header) (ddResp, error) {
	return ddPostCtx(context.Background(), c, url, body, header)
}

func ddPostCtx(ctx context.Context, c *http.Client, url string, body []byte, header http.Header) (ddResp, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return ddResp{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return ddResp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return ddResp{}, err
	}
	return ddResp{status: res.StatusCode, header: res.Header, body: b, elapsed: time.Since(start)}, nil
}

// ddMustPost posts a body signed with the Vivreal test secret.
func ddMustPost(t *testing.T, c *http.Client, url string, body []byte) ddResp {
	t.Helper()
	res, err := ddPost(c, url, body, ddSigViv(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return res
}

// ddAsync posts in the background; the returned channel gives the result.
func ddAsync(c *http.Client, url string, body []byte, header http.Header) <-chan ddResult {
	ch := make(chan ddResult, 1)
	go func() {
		res, err := ddPost(c, url, body, header)
		ch <- ddResult{res, err}
	}()
	return ch
}

type ddResult struct {
	res ddResp
	err error
}

// ddWait waits for a background request.
func ddWait(t *testing.T, ch <-chan ddResult) ddResp {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("background request: %v", r.err)
		}
		return r.res
	case <-time.After(20 * time.Second):
		t.Fatal("background request did not finish")
	}
	return ddResp{}
}

// ddForwarded checks a response that the upstream answered.
func ddForwarded(t *testing.T, what string, r ddResp, status int) {
	t.Helper()
	if r.status != status || string(r.body) != "ok from up" || r.header.Get("X-Upstream") != "up" {
		t.Errorf("%s: got %v, want the upstream's %d \"ok from up\"", what, r, status)
	}
}

// ddDuplicate checks the handler's answer to a duplicate of a done event.
func ddDuplicate(t *testing.T, what string, r ddResp) {
	t.Helper()
	if r.status != http.StatusOK || string(r.body) != ddDuplicateBody {
		t.Errorf("%s: got %v, want 200 %s", what, r, ddDuplicateBody)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if r.header.Get("X-Upstream") != "" {
		t.Errorf("%s: the duplicate answer carries the upstream's header", what)
	}
}

// ddRetryAfter checks that r has one Retry-After, an integer of seconds in
// [lo, hi], and returns it.
func ddRetryAfter(t *testing.T, what string, r ddResp, lo, hi int) int {
	t.Helper()
	vs := r.header.Values("Retry-After")
	if len(vs) != 1 {
		t.Errorf("%s: Retry-After %q, want one value", what, vs)
		return 0
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < lo || n > hi {
		t.Errorf("%s: Retry-After %q, want an integer number of seconds in [%d, %d]", what, vs[0], lo, hi)
	}
	return n
}

// ddUpCount checks the upstream's count for id.
func ddUpCount(t *testing.T, what string, up *ddUpstream, id string, want int) {
	t.Helper()
	if got := up.count(id); got != want {
		t.Errorf("%s: upstream got %d requests for %q, want %d", what, got, id, want)
	}
}

// ---------------------------------------------------------------------------
// Metrics

// ddMetrics reads the webhook_verify series of the admin /metrics page:
// "requests_total/<provider>/<outcome>" and "body_bytes_count/<provider>".
// The collectors are process-wide, so tests compare before and after.
func ddMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(raw)) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for kv := range strings.SplitSeq(labels, ",") {
			k, val, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(val, `"`)
		}
		switch name {
		case "caddy_webhook_verify_requests_total":
			out["requests_total/"+l["provider"]+"/"+l["outcome"]] = v
		case "caddy_webhook_verify_body_bytes_count":
			out["body_bytes_count/"+l["provider"]] = v
		}
	}
	return out
}

// ddMetricsDelta checks that the series moved by want between two reads,
// and that no other requests_total series of provider moved.
func ddMetricsDelta(t *testing.T, before, after map[string]float64, provider string, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if got := after[k] - before[k]; got != w {
			t.Errorf("metric %s moved by %v, want %v", k, got, w)
		}
	}
	for k := range after {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, "requests_total/"+provider+"/") && after[k] != before[k] {
			t.Errorf("metric %s moved by %v, want 0", k, after[k]-before[k])
		}
	}
}

// ---------------------------------------------------------------------------
// Memory store

func TestIntegrationDedupeMemory(t *testing.T) {
	ddNewRun()
	up := ddNewUpstream(t)
	dir := t.TempDir()
	logFile, accessFile := dir+"/caddy.log", dir+"/access.log"
	ddStart(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	log {
		output file %[4]s
		format json
	}
	handle /vivreal {
		log_append duplicate {http.webhook.duplicate}
		webhook_verify vivreal %[1]s {
			dedupe {
				inflight_ttl 10s
			}
		}
		reverse_proxy %[3]s {
			header_up X-Webhook-Duplicate {http.webhook.duplicate}
		}
	}
	handle /vev {
		webhook_verify vev %[2]s {
			dedupe
		}
		reverse_proxy %[3]s
	}
	handle /strict {
		webhook_verify vivreal %[1]s {
			dedupe {
				key_prefix strict:
				require_id
			}
		}
		reverse_proxy %[3]s
	}
	handle /short {
		webhook_verify vivreal %[1]s {
			dedupe 3s {
				inflight_ttl 1s
				key_prefix short:
			}
		}
		reverse_proxy %[3]s
	}
	handle /small {
		webhook_verify vivreal %[1]s {
			dedupe {
				store memory
				max_entries 2
				key_prefix small:
			}
		}
		reverse_proxy %[3]s
	}
	handle_errors {
		header Content-Type application/json
		header X-Duplicate {http.webhook.duplicate}
		respond "{\"error\": \"{err.message}\"}" {err.status_code}
	}
}
`, itVivSecret, itVevSecret, up.addr(), accessFile))
	c := ddClient(t, 30*time.Second)
	const base = "http://localhost:9080"

	t.Run("first_delivery_then_duplicate", func(t *testing.T) {
		id := ddID("first")
		body := ddVivreal(ddQ(id))
		ddForwarded(t, "first delivery", ddMustPost(t, c, base+"/vivreal", body), 200)
		ddUpCount(t, "first delivery", up, id, 1)
		if got := up.dupHeader(id); got != "false" {
			t.Errorf("{http.webhook.duplicate} at the upstream = %q, want \"false\"", got)
		}
		for i := range 3 {
			ddDuplicate(t, fmt.Sprintf("duplicate %d", i+1), ddMustPost(t, c, base+"/vivreal", body))
		}
		// the same event, signed as "<hex>" (no sha256=) in upper case
		res, err := ddPost(c, base+"/vivreal", body, itHdr("X-Vivreal-Signature", strings.ToUpper(itSign256(itVivSecret, body))))
		if err != nil {
			t.Fatal(err)
		}
		ddDuplicate(t, "duplicate with another signature spelling", res)
		// and sent chunked: the id comes from the body however it is framed
		chunked := itDo(t, itNewClient(t), itReq{path: "/vivreal", body: body, chunked: true, header: ddSigViv(body)})
		ddDuplicate(t, "chunked duplicate", ddResp{status: chunked.status, header: chunked.header, body: chunked.body})
		ddUpCount(t, "after the duplicates", up, id, 1)

		// logged at info with provider and id; the placeholder is usable in the access log
		ddFindLog(t, logFile, map[string]any{"level": "info", "msg": "duplicate webhook not forwarded",
			"provider": "vivreal", "id": id, "state": "duplicate"})
		if n := ddCountLog(t, logFile, map[string]any{"msg": "duplicate webhook not forwarded", "id": id}); n != 5 {
			t.Errorf("%d duplicate log lines for %s, want 5", n, id)
		}
		ddFindLog(t, accessFile, map[string]any{"duplicate": "false", "status": 200})
		ddFindLog(t, accessFile, map[string]any{"duplicate": "true", "status": 200})
	})

	t.Run("provider_is_part_of_the_key", func(t *testing.T) {
		id := ddID("shared")
		ddForwarded(t, "vivreal", ddMustPost(t, c, base+"/vivreal", ddVivreal(ddQ(id))), 200)
		vev := ddVev(id)
		res, err := ddPost(c, base+"/vev", vev, itHdr("X-Vev-Signature", "sha512="+itSign512(itVevSecret, vev)))
		if err != nil {
			t.Fatal(err)
		}
		ddForwarded(t, "vev event with the same id", res, 200)
		ddUpCount(t, "both providers", up, id, 2)
		res, err = ddPost(c, base+"/vev", vev, itHdr("X-Vev-Signature", "sha512="+itSign512(itVevSecret, vev)))
		if err != nil {
			t.Fatal(err)
		}
		ddDuplicate(t, "vev duplicate", res)
		ddUpCount(t, "vev duplicate", up, id, 2)
	})

	t.Run("backend_failure_releases_the_claim", func(t *testing.T) {
		id := ddID("fail")
		body := ddVivreal(ddQ(id))
		up.status.Store(http.StatusInternalServerError)
		defer up.status.Store(http.StatusOK)
		ddForwarded(t, "backend 500", ddMustPost(t, c, base+"/vivreal", body), 500)
		ddForwarded(t, "retry, backend 500 again", ddMustPost(t, c, base+"/vivreal", body), 500)
		ddUpCount(t, "two failures", up, id, 2)
		up.status.Store(http.StatusNotFound)
		ddForwarded(t, "retry, backend 404", ddMustPost(t, c, base+"/vivreal", body), 404)
		up.status.Store(http.StatusAccepted)
		ddForwarded(t, "retry, backend 202", ddMustPost(t, c, base+"/vivreal", body), 202)
		ddUpCount(t, "delivered on the 4th try", up, id, 4)
		up.status.Store(http.StatusOK)
		ddDuplicate(t, "retry after a 2xx", ddMustPost(t, c, base+"/vivreal", body))
		ddUpCount(t, "after the duplicate", up, id, 4)
	})

	t.Run("backend_unreachable_releases_the_claim", func(t *testing.T) {
		id := ddID("drop")
		body := ddVivreal(ddQ(id))
		up.setDrop(id, true)
		res := ddMustPost(t, c, base+"/vivreal", body)
		if res.status != http.StatusBadGateway {
			t.Errorf("backend closed the connection: got %v, want 502", res)
		}
		if got := res.header.Get("X-Duplicate"); got != "false" {
			t.Errorf("{http.webhook.duplicate} in handle_errors = %q, want \"false\"", got)
		}
		up.setDrop(id, false)
		ddForwarded(t, "retry after the 502", ddMustPost(t, c, base+"/vivreal", body), 200)
		ddUpCount(t, "retry after the 502", up, id, 2)
		ddDuplicate(t, "retry after delivery", ddMustPost(t, c, base+"/vivreal", body))
	})

	t.Run("in_flight_409", func(t *testing.T) {
		id := ddID("slow")
		body := ddVivreal(ddQ(id))
		release := up.gate(t, id)
		first := ddAsync(c, base+"/vivreal", body, ddSigViv(body))
		up.waitCount(t, id, 1)
		dup := ddMustPost(t, c, base+"/vivreal", body)
		if dup.status != http.StatusConflict {
			t.Errorf("duplicate while in flight: got %v, want 409", dup)
		}
		// what is left of the 10 s claim, taken a moment ago
		ddRetryAfter(t, "409", dup, 7, 10)
		if got := dup.header.Get("X-Duplicate"); got != "true" {
			t.Errorf("{http.webhook.duplicate} in handle_errors = %q, want \"true\"", got)
		}
		ddUpCount(t, "while in flight", up, id, 1)
		ddFindLog(t, logFile, map[string]any{"level": "info", "msg": "duplicate webhook not forwarded",
			"provider": "vivreal", "id": id, "state": "in_flight"})
		ddFindLog(t, accessFile, map[string]any{"duplicate": "true", "status": 409})
		release()
		ddForwarded(t, "the slow first delivery", ddWait(t, first), 200)
		ddDuplicate(t, "after the first delivery", ddMustPost(t, c, base+"/vivreal", body))
		ddUpCount(t, "at the end", up, id, 1)

		// in flight, then the backend fails: the next retry goes through
		id2 := ddID("slowfail")
		body2 := ddVivreal(ddQ(id2))
		release2 := up.gate(t, id2)
		up.status.Store(http.StatusInternalServerError)
		first = ddAsync(c, base+"/vivreal", body2, ddSigViv(body2))
		up.waitCount(t, id2, 1)
		if r := ddMustPost(t, c, base+"/vivreal", body2); r.status != http.StatusConflict {
			t.Errorf("duplicate while in flight: got %v, want 409", r)
		}
		release2()
		ddForwarded(t, "slow failure", ddWait(t, first), 500)
		up.status.Store(http.StatusOK)
		ddForwarded(t, "retry after the failure", ddMustPost(t, c, base+"/vivreal", body2), 200)
		ddUpCount(t, "retry after the failure", up, id2, 2)
	})

	t.Run("concurrent_copies_at_one_gateway", func(t *testing.T) {
		const ids, copies = 10, 8
		type answer struct {
			id  string
			res ddResp
			err error
		}
		answers := make(chan answer, ids*copies)
		var wg sync.WaitGroup
		for i := range ids {
			id := ddID(fmt.Sprintf("copies_%d", i))
			body := ddVivreal(ddQ(id))
			up.setHold(id, 50*time.Millisecond)
			barrier := make(chan struct{})
			for range copies {
				wg.Go(func() {
					<-barrier
					res, err := ddPost(c, base+"/vivreal", body, ddSigViv(body))
					answers <- answer{id, res, err}
				})
			}
			close(barrier)
		}
		wg.Wait()
		close(answers)
		forwarded := map[string]int{}
		for a := range answers {
			switch {
			case a.err != nil:
				t.Errorf("%s: %v", a.id, a.err)
			case a.res.status == 200 && string(a.res.body) == "ok from up":
				forwarded[a.id]++
			case a.res.status == 200 && string(a.res.body) == ddDuplicateBody:
			case a.res.status == http.StatusConflict:
				ddRetryAfter(t, a.id+" 409", a.res, 1, 10)
			default:
				t.Errorf("%s: got %v, want the upstream's 200, the duplicate answer or 409", a.id, a.res)
			}
		}
		for i := range ids {
			id := ddID(fmt.Sprintf("copies_%d", i))
			if forwarded[id] != 1 || up.count(id) != 1 {
				t.Errorf("%s: %d answers from the upstream, upstream count %d; want 1 and 1", id, forwarded[id], up.count(id))
			}
		}
	})

	t.Run("no_id_forwarded_every_time", func(t *testing.T) {
		before := up.count("")
		bodies := map[string][]byte{
			"no id member": ddVivreal(""),
			"empty id":     ddVivreal(`""`),
			"null id":      ddVivreal(`null`),
			"object id":    ddVivreal(`{"v":1}`),
			"not JSON":     []byte("id=evt_form_encoded"),
		}
		for what, body := range bodies {
			for i := range 2 {
				res := ddMustPost(t, c, base+"/vivreal", body)
				ddForwarded(t, fmt.Sprintf("%s, delivery %d", what, i+1), res, 200)
			}
		}
		ddUpCount(t, "bodies without id", up, "", before+2*len(bodies))
		if got := up.dupHeader(""); got != "false" {
			t.Errorf("{http.webhook.duplicate} for a body without id = %q, want \"false\"", got)
		}
		ddFindLog(t, logFile, map[string]any{"level": "warn", "msg": "webhook without an id forwarded without dedupe",
			"provider": "vivreal"})
	})

	t.Run("require_id_400", func(t *testing.T) {
		before := up.count("")
		for what, body := range map[string][]byte{"no id": ddVivreal(""), "empty id": ddVivreal(`""`)} {
			res := ddMustPost(t, c, base+"/strict", body)
			if res.status != http.StatusBadRequest {
				t.Errorf("%s with require_id: got %v, want 400", what, res)
			}
		}
		ddUpCount(t, "require_id", up, "", before)
		id := ddID("strict")
		ddForwarded(t, "require_id with an id", ddMustPost(t, c, base+"/strict", ddVivreal(ddQ(id))), 200)
		ddUpCount(t, "require_id with an id", up, id, 1)
	})

	t.Run("numeric_id_uses_its_json_text", func(t *testing.T) {
		// unique per run: the memory store outlives config reloads
		num := strconv.FormatInt(time.Now().UnixNano(), 10)
		ddForwarded(t, "numeric id", ddMustPost(t, c, base+"/vivreal", ddVivreal(num)), 200)
		ddDuplicate(t, "the same number again", ddMustPost(t, c, base+"/vivreal", ddVivreal(num)))
		ddDuplicate(t, "the number's text as a string id", ddMustPost(t, c, base+"/vivreal", ddVivreal(ddQ(num))))
		ddUpCount(t, "numeric id", up, num, 1)

		// another JSON text is another id
		ddForwarded(t, "the number with a fraction", ddMustPost(t, c, base+"/vivreal", ddVivreal(num+".0")), 200)

		// an escaped string id is the same id as its plain spelling
		id := ddID("esc_x")
		ddForwarded(t, "plain id", ddMustPost(t, c, base+"/vivreal", ddVivreal(ddQ(id))), 200)
		escaped := `"` + strings.ReplaceAll(id, "_", `\u005f`) + `"`
		ddDuplicate(t, "the same id with JSON escapes", ddMustPost(t, c, base+"/vivreal", ddVivreal(escaped)))
		ddUpCount(t, "escaped id", up, id, 1)
	})

	t.Run("forged_requests_never_touch_the_store", func(t *testing.T) {
		// a forged duplicate of a delivered event is refused, not answered as a duplicate
		done := ddID("forge_done")
		body := ddVivreal(ddQ(done))
		ddForwarded(t, "genuine", ddMustPost(t, c, base+"/vivreal", body), 200)
		forged := itHdr("X-Vivreal-Signature", "sha256="+itSign256(itVivSecret+"-forged", body))
		res, err := ddPost(c, base+"/vivreal", body, forged)
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusUnauthorized {
			t.Errorf("forged duplicate: got %v, want 401", res)
		}
		if bytes.Contains(res.body, []byte("duplicate")) {
			t.Errorf("forged duplicate: the answer tells it is a duplicate: %q", res.body)
		}

		// a forged request with a new id claims nothing: the genuine one still goes through
		id := ddID("forge_new")
		body = ddVivreal(ddQ(id))
		for _, h := range []http.Header{
			itHdr("X-Vivreal-Signature", "sha256="+itSign256(itVivSecret+"-forged", body)),
			itHdr("X-Vivreal-Signature", "sha256=zz"),
			{},
		} {
			res, err := ddPost(c, base+"/vivreal", body, h)
			if err != nil {
				t.Fatal(err)
			}
			if res.status != http.StatusUnauthorized {
				t.Errorf("forged %v: got %v, want 401", h, res)
			}
		}
		ddUpCount(t, "forged", up, id, 0)
		ddForwarded(t, "genuine after forgeries", ddMustPost(t, c, base+"/vivreal", body), 200)
		ddUpCount(t, "genuine after forgeries", up, id, 1)
	})

	t.Run("ttl_expires", func(t *testing.T) {
		id := ddID("short")
		body := ddVivreal(ddQ(id))
		ddForwarded(t, "first", ddMustPost(t, c, base+"/short", body), 200)
		ddDuplicate(t, "within the ttl", ddMustPost(t, c, base+"/short", body))
		time.Sleep(3100 * time.Millisecond)
		ddForwarded(t, "after the 3 s ttl", ddMustPost(t, c, base+"/short", body), 200)
		ddUpCount(t, "ttl", up, id, 2)
	})

	t.Run("max_entries_evicts_done_events_only", func(t *testing.T) {
		ids := []string{ddID("small_1"), ddID("small_2"), ddID("small_3")}
		for _, id := range ids[:2] {
			ddForwarded(t, id, ddMustPost(t, c, base+"/small", ddVivreal(ddQ(id))), 200)
		}
		// full: the done event nearest to expiry (the first) makes room
		ddForwarded(t, "third event", ddMustPost(t, c, base+"/small", ddVivreal(ddQ(ids[2]))), 200)
		ddFindLog(t, logFile, map[string]any{"level": "warn", "max_entries": 2, "evicted": 1})
		ddDuplicate(t, "third event again", ddMustPost(t, c, base+"/small", ddVivreal(ddQ(ids[2]))))
		ddForwarded(t, "the evicted first event", ddMustPost(t, c, base+"/small", ddVivreal(ddQ(ids[0]))), 200)
		ddUpCount(t, "evicted event", up, ids[0], 2)

		// two claims in flight fill the store: a third event cannot be claimed
		slow := []string{ddID("small_slow_1"), ddID("small_slow_2")}
		var pending []<-chan ddResult
		var releases []func()
		for _, id := range slow {
			releases = append(releases, up.gate(t, id))
			b := ddVivreal(ddQ(id))
			pending = append(pending, ddAsync(c, base+"/small", b, ddSigViv(b)))
			up.waitCount(t, id, 1)
		}
		id := ddID("small_4")
		res := ddMustPost(t, c, base+"/small", ddVivreal(ddQ(id)))
		if res.status != http.StatusServiceUnavailable {
			t.Errorf("store full of claims in flight: got %v, want 503", res)
		}
		ddRetryAfter(t, "store full", res, 1, 30)
		ddUpCount(t, "store full", up, id, 0)
		for _, release := range releases {
			release()
		}
		for i, p := range pending {
			ddForwarded(t, slow[i], ddWait(t, p), 200)
		}
		ddForwarded(t, "after the claims settled", ddMustPost(t, c, base+"/small", ddVivreal(ddQ(id))), 200)
	})

	t.Run("metrics_one_outcome_per_request", func(t *testing.T) {
		before := ddMetrics(t)
		a := ddVivreal(ddQ(ddID("metrics_a")))
		ddForwarded(t, "new event", ddMustPost(t, c, base+"/vivreal", a), 200)
		ddDuplicate(t, "duplicate", ddMustPost(t, c, base+"/vivreal", a))
		if r := ddMustPost(t, c, base+"/strict", ddVivreal("")); r.status != http.StatusBadRequest {
			t.Errorf("require_id: got %v, want 400", r)
		}
		ddForwarded(t, "no id", ddMustPost(t, c, base+"/vivreal", ddVivreal("")), 200)
		if r, err := ddPost(c, base+"/vivreal", a, itHdr("X-Vivreal-Signature", itSign256("forged", a))); err != nil || r.status != 401 {
			t.Errorf("forged: got %v, %v; want 401", r, err)
		}
		b := ddVivreal(ddQ(ddID("metrics_b")))
		release := up.gate(t, ddEventID(b))
		first := ddAsync(c, base+"/vivreal", b, ddSigViv(b))
		up.waitCount(t, ddEventID(b), 1)
		if r := ddMustPost(t, c, base+"/vivreal", b); r.status != http.StatusConflict {
			t.Errorf("in flight: got %v, want 409", r)
		}
		release()
		ddForwarded(t, "slow event", ddWait(t, first), 200)
		ddMetricsDelta(t, before, ddMetrics(t), "vivreal", map[string]float64{
			"requests_total/vivreal/verified":      3,
			"requests_total/vivreal/duplicate":     1,
			"requests_total/vivreal/missing_id":    1,
			"requests_total/vivreal/bad_signature": 1,
			"requests_total/vivreal/in_flight":     1,
			// every body read and verified, duplicates included
			"body_bytes_count/vivreal": 6,
		})
	})
}

// ---------------------------------------------------------------------------
// Redis store

// ddRedisClient is a test's own client of srv, to look at the keys.
func ddRedisClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: 2, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// TestIntegrationDedupeRedisTwoGateways runs two gateways, each a site of
// its own (ports 9080 and 9081) with its own webhook_verify handler and its
// own Redis client (client_name gw-a, gw-b), sharing one redis-server. The
// same event, sent to both at the same moment, reaches the upstream once.
func TestIntegrationDedupeRedisTwoGateways(t *testing.T) {
	ddNewRun()
	srv := redistest.Start(t)
	rc := ddRedisClient(t, srv)
	up := ddNewUpstream(t)
	dir := t.TempDir()
	ddStart(t, dir+"/caddy.log", fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			dedupe {
				store redis redis://%[2]s/0?client_name=gw-a
				key_prefix ddtest:
				inflight_ttl 10s
			}
		}
		reverse_proxy %[3]s
	}
}
http://localhost:9081 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			dedupe {
				store redis redis://%[2]s/0?client_name=gw-b
				key_prefix ddtest:
				inflight_ttl 10s
			}
		}
		reverse_proxy %[3]s
	}
}
`, itVivSecret, srv.Addr(), up.addr()))
	c := ddClient(t, 30*time.Second)
	gws := [2]string{"http://localhost:9080/vivreal", "http://localhost:9081/vivreal"}
	ctx := context.Background()

	t.Run("same_event_at_both_at_once", func(t *testing.T) {
		const n = 100
		const workers = 8
		ids := make([]string, n)
		for i := range ids {
			ids[i] = ddID(fmt.Sprintf("race_%03d", i))
		}
		results := make([][2]ddResult, n)
		work := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for i := range work {
					body := ddVivreal(ddQ(ids[i]))
					sig := ddSigViv(body)
					barrier := make(chan struct{})
					var pair sync.WaitGroup
					for g := range gws {
						pair.Go(func() {
							<-barrier
							res, err := ddPost(c, gws[g], body, sig)
							results[i][g] = ddResult{res, err}
						})
					}
					close(barrier)
					pair.Wait()
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		t.Logf("%d pairs in %v", n, time.Since(start))

		tally := map[string]int{}
		var retry []string
		for i, id := range ids {
			forwarded, storeErrors := 0, 0
			for g, r := range results[i] {
				if r.err != nil {
					t.Errorf("%s at gateway %d: %v", id, g, r.err)
					continue
				}
				switch res := r.res; {
				case res.status == 200 && string(res.body) == "ok from up":
					forwarded++
					tally["forwarded"]++
				case res.status == 200 && string(res.body) == ddDuplicateBody:
					tally["duplicate"]++
				case res.status == http.StatusConflict:
					tally["in flight"]++
					ddRetryAfter(t, id+" 409", res, 1, 10)
				case res.status == http.StatusServiceUnavailable:
					// Redis slower than the client's 1 s timeout (a loaded
					// machine): a failure the sender retries, nothing forwarded
					tally["store error"]++
					storeErrors++
					ddRetryAfter(t, id+" 503", res, 1, 30)
				default:
					t.Errorf("%s at gateway %d: got %v, want the upstream's 200, the duplicate answer, 409 or 503", id, g, res)
				}
			}
			switch {
			case forwarded > 1:
				t.Errorf("%s: both gateways forwarded it", id)
			case forwarded == 0 && storeErrors == 0:
				t.Errorf("%s: neither gateway forwarded it, and neither failed", id)
			case forwarded == 0:
				retry = append(retry, id)
			}
		}
		t.Logf("answers: %v", tally)
		// the sender retries what failed with 503; a claim whose answer was
		// lost in a timeout holds for inflight_ttl (10 s), then frees itself
		deadline := time.Now().Add(15 * time.Second)
		for _, id := range retry {
			body := ddVivreal(ddQ(id))
			for {
				res := ddMustPost(t, c, gws[0], body)
				if res.status == 200 || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		if len(retry) > 0 {
			t.Logf("%d events retried after a 503", len(retry))
		}
		for _, id := range ids {
			if got := up.count(id); got != 1 {
				t.Errorf("%s: upstream got it %d times, want exactly 1", id, got)
			}
		}

		// one key per event, "<key_prefix><provider>:<id>", done for the default 72h
		keys, err := rc.Keys(ctx, "ddtest:vivreal:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != n {
			t.Errorf("Redis holds %d keys ddtest:vivreal:*, want %d", len(keys), n)
		}
		for _, id := range ids[:5] {
			key := "ddtest:vivreal:" + id
			if v, err := rc.Get(ctx, key).Result(); err != nil || v != "done" {
				t.Errorf("GET %s = %q, %v; want done", key, v, err)
			}
			if ttl, err := rc.PTTL(ctx, key).Result(); err != nil || ttl < 71*time.Hour || ttl > 72*time.Hour {
				t.Errorf("PTTL %s = %v, %v; want about 72h", key, ttl, err)
			}
		}

		// the two gateways are two Redis clients
		list, err := rc.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"name=gw-a", "name=gw-b"} {
			if !strings.Contains(list, name) {
				t.Errorf("CLIENT LIST has no %s connection:\n%s", name, list)
			}
		}
	})

	t.Run("failure_at_one_gateway_retry_at_the_other", func(t *testing.T) {
		id := ddID("two_gw_fail")
		body := ddVivreal(ddQ(id))
		up.status.Store(http.StatusInternalServerError)
		ddForwarded(t, "gateway A, backend 500", ddMustPost(t, c, gws[0], body), 500)
		if n, err := rc.Exists(ctx, "ddtest:vivreal:"+id).Result(); err != nil || n != 0 {
			t.Errorf("after a 500 the key exists (%d, %v): the claim was not released", n, err)
		}
		up.status.Store(http.StatusOK)
		ddForwarded(t, "gateway B, retry", ddMustPost(t, c, gws[1], body), 200)
		ddDuplicate(t, "gateway A, retry after delivery", ddMustPost(t, c, gws[0], body))
		ddDuplicate(t, "gateway B, retry after delivery", ddMustPost(t, c, gws[1], body))
		ddUpCount(t, "two gateways", up, id, 2)
	})

	t.Run("failed_reload_keeps_the_store", func(t *testing.T) {
		// a config sharing both stores whose last handler fails to
		// provision: the running gateways must keep their Redis clients
		bad := fmt.Sprintf(`{
	"admin": {"listen": "localhost:2999"},
	"apps": {"http": {"http_port": 9080, "servers": {"srv0": {"listen": [":9080"], "routes": [{"handle": [
		{"handler": "webhook_verify", "provider": {"name": "vivreal"}, "secrets": ["s"],
		 "dedupe": {"store": "redis", "redis_url": "redis://%[1]s/0?client_name=gw-a", "key_prefix": "ddtest:"}},
		{"handler": "webhook_verify", "provider": {"name": "vivreal"}, "secrets": ["s"],
		 "dedupe": {"store": "redis", "redis_url": "redis://%[1]s/0?client_name=gw-b", "key_prefix": "ddtest:"}},
		{"handler": "webhook_verify", "provider": {"name": "vivreal"}, "secrets": ["s"],
		 "dedupe": {"ttl": "1m", "inflight_ttl": "2m"}}
	]}]}}}}
}`, srv.Addr())
		res, err := http.Post("http://localhost:2999/load", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("the bad config loaded: %s", msg)
		}
		if !strings.Contains(string(msg), "inflight_ttl") {
			t.Errorf("load error %q does not name inflight_ttl", msg)
		}
		for g, gw := range gws {
			id := ddID(fmt.Sprintf("after_bad_reload_%d", g))
			body := ddVivreal(ddQ(id))
			ddForwarded(t, "after a failed reload", ddMustPost(t, c, gw, body), 200)
			ddDuplicate(t, "duplicate at the other gateway after a failed reload", ddMustPost(t, c, gws[1-g], body))
		}
	})
}

// ddBlackhole is a TCP listener that accepts connections and never answers:
// a Redis that times out.
func ddBlackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestIntegrationDedupeRedisFailures: a backend failure releases the claim
// in Redis; a claim in flight is a key with the inflight_ttl; a sender that
// goes away does not leave its claim behind; a Redis that times out or is
// down gives 503 with Retry-After and forwards nothing (but a body without
// id); and after Redis restarts the same Caddy, not reloaded, recovers.
func TestIntegrationDedupeRedisFailures(t *testing.T) {
	ddNewRun()
	srv := redistest.Start(t)
	rc := ddRedisClient(t, srv)
	up := ddNewUpstream(t)
	hole := ddBlackhole(t)
	dir := t.TempDir()
	logFile := dir + "/caddy.log"
	ddStart(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			dedupe 24h {
				store redis %[2]s
				key_prefix ddfail:
				inflight_ttl 10s
			}
		}
		reverse_proxy %[3]s {
			header_up X-Webhook-Duplicate {http.webhook.duplicate}
		}
	}
	handle /strict {
		webhook_verify vivreal %[1]s {
			dedupe 24h {
				store redis %[2]s
				key_prefix ddfail-strict:
				inflight_ttl 10s
				require_id
			}
		}
		reverse_proxy %[3]s
	}
	handle /blackhole {
		webhook_verify vivreal %[1]s {
			dedupe {
				store redis redis://%[4]s/0
			}
		}
		reverse_proxy %[3]s
	}
}
`, itVivSecret, srv.URL(), up.addr(), hole))
	c := ddClient(t, 30*time.Second)
	ctx := context.Background()
	const url = "http://localhost:9080/vivreal"
	key := func(id string) string { return "ddfail:vivreal:" + id }

	t.Run("backend_500_then_200", func(t *testing.T) {
		id := ddID("r_fail")
		body := ddVivreal(ddQ(id))
		up.status.Store(http.StatusInternalServerError)
		ddForwarded(t, "backend 500", ddMustPost(t, c, url, body), 500)
		if n, _ := rc.Exists(ctx, key(id)).Result(); n != 0 {
			t.Errorf("after a 500 the key %s exists: the claim was not released", key(id))
		}
		up.status.Store(http.StatusOK)
		ddForwarded(t, "retry, backend 200", ddMustPost(t, c, url, body), 200)
		ddUpCount(t, "retry reaches the backend", up, id, 2)
		if v, err := rc.Get(ctx, key(id)).Result(); err != nil || v != "done" {
			t.Errorf("GET %s = %q, %v; want done", key(id), v, err)
		}
		if ttl, err := rc.PTTL(ctx, key(id)).Result(); err != nil || ttl < 24*time.Hour-time.Minute || ttl > 24*time.Hour {
			t.Errorf("PTTL %s = %v, %v; want the 24h ttl", key(id), ttl, err)
		}
		ddDuplicate(t, "retry after delivery", ddMustPost(t, c, url, body))
		ddUpCount(t, "duplicate", up, id, 2)
	})

	t.Run("in_flight_claim_is_a_key_with_inflight_ttl", func(t *testing.T) {
		id := ddID("r_slow")
		body := ddVivreal(ddQ(id))
		release := up.gate(t, id)
		first := ddAsync(c, url, body, ddSigViv(body))
		up.waitCount(t, id, 1)
		v, err := rc.Get(ctx, key(id)).Result()
		if err != nil || !strings.HasPrefix(v, "inflight:") {
			t.Errorf("GET %s while in flight = %q, %v; want an inflight: claim", key(id), v, err)
		}
		if ttl, err := rc.PTTL(ctx, key(id)).Result(); err != nil || ttl <= 6*time.Second || ttl > 10*time.Second {
			t.Errorf("PTTL %s while in flight = %v, %v; want a little under the 10s inflight_ttl", key(id), ttl, err)
		}
		dup := ddMustPost(t, c, url, body)
		if dup.status != http.StatusConflict {
			t.Errorf("duplicate while in flight: got %v, want 409", dup)
		}
		ddRetryAfter(t, "409", dup, 7, 10)
		release()
		ddForwarded(t, "first delivery", ddWait(t, first), 200)
		ddDuplicate(t, "after delivery", ddMustPost(t, c, url, body))
		ddUpCount(t, "in flight", up, id, 1)
	})

	// Caddy v2.11.9's reverse_proxy sends the upstream request under the
	// client's request context (reverseproxy.go: reverseProxy hands
	// req.WithContext(req.Context() ...) to the transport), and net/http
	// cancels that context when the client closes its connection once the
	// body was read (the background read). So a sender that gives up
	// while the upstream holds its event cancels the upstream request,
	// reverse_proxy records 499, and the claim is released: the retry is
	// delivered. (Were the upstream request detached from the client's, a
	// 2xx written after the sender left would make the event done and the
	// retry a duplicate instead; this test would then say so.)
	t.Run("sender_gone_mid_flight_releases_the_claim", func(t *testing.T) {
		id := ddID("r_gone")
		body := ddVivreal(ddQ(id))
		release := up.gate(t, id) // never opened before the retry: only the gateway can end the request
		gone, cancel := context.WithCancel(ctx)
		sender := ddClient(t, 0)
		first := make(chan error, 1)
		go func() {
			_, err := ddPostCtx(gone, sender, url, body, ddSigViv(body))
			first <- err
		}()
		up.waitCount(t, id, 1)
		cancel() // the sender gives up and closes its connection
		if err := <-first; err == nil {
			t.Fatal("the sender that gave up got an answer")
		}
		// the gateway cancels the upstream request, which the upstream
		// still holds
		deadline := time.Now().Add(30 * time.Second)
		for up.finishedCount(id) < 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := up.gaveUpCount(id); up.finishedCount(id) != 1 || n != 1 {
			t.Fatalf("the upstream request: ended %d times, %d of them cancelled by the gateway; want the held request cancelled once",
				up.finishedCount(id), n)
		}
		release()
		// the claim is released as reverse_proxy returns, just after the
		// upstream saw the cancellation: a retry in between is refused as
		// in flight (409), then delivered
		var res ddResp
		deadline = time.Now().Add(30 * time.Second)
		for {
			res = ddMustPost(t, c, url, body)
			if res.status != http.StatusConflict || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		ddForwarded(t, "retry after the sender went away", res, 200)
		ddUpCount(t, "retry after the sender went away", up, id, 2)
		ddDuplicate(t, "the retry's retry", ddMustPost(t, c, url, body))
		ddUpCount(t, "the retry's retry", up, id, 2)
	})

	t.Run("redis_timeout_503", func(t *testing.T) {
		id := ddID("r_hole")
		body := ddVivreal(ddQ(id))
		res := ddMustPost(t, c, "http://localhost:9080/blackhole", body)
		if res.status != http.StatusServiceUnavailable {
			t.Errorf("Redis not answering: got %v, want 503", res)
		}
		ddRetryAfter(t, "503", res, 1, 30)
		if res.elapsed > 10*time.Second {
			t.Errorf("the 503 took %v", res.elapsed)
		}
		t.Logf("503 after %v", res.elapsed)
		ddUpCount(t, "Redis not answering", up, id, 0)
	})

	t.Run("redis_down_503_then_recovers", func(t *testing.T) {
		// a request in flight when Redis stops still gets the backend's answer
		mid := ddID("r_mid")
		midBody := ddVivreal(ddQ(mid))
		releaseMid := up.gate(t, mid)
		first := ddAsync(c, url, midBody, ddSigViv(midBody))
		up.waitCount(t, mid, 1)

		srv.Stop()
		metricsBefore := ddMetrics(t)

		id := ddID("r_down")
		body := ddVivreal(ddQ(id))
		for i := range 2 {
			res := ddMustPost(t, c, url, body)
			if res.status != http.StatusServiceUnavailable {
				t.Errorf("Redis down, try %d: got %v, want 503", i+1, res)
			}
			ddRetryAfter(t, "503", res, 1, 30)
			if res.elapsed > 10*time.Second {
				t.Errorf("Redis down: the 503 took %v", res.elapsed)
			}
		}
		ddUpCount(t, "Redis down", up, id, 0)
		ddFindLog(t, logFile, map[string]any{"level": "error", "msg": "dedupe store unavailable",
			"provider": "vivreal", "id": id})

		// a body without id never touches the store
		noID := up.count("")
		ddForwarded(t, "no id while Redis is down", ddMustPost(t, c, url, ddVivreal("")), 200)
		ddUpCount(t, "no id while Redis is down", up, "", noID+1)
		if got := up.dupHeader(""); got != "false" {
			t.Errorf("{http.webhook.duplicate} = %q, want \"false\"", got)
		}
		if res := ddMustPost(t, c, "http://localhost:9080/strict", ddVivreal("")); res.status != http.StatusBadRequest {
			t.Errorf("require_id, no id, Redis down: got %v, want 400", res)
		}
		// the signature is checked before the store
		forged, err := ddPost(c, url, body, itHdr("X-Vivreal-Signature", itSign256("forged", body)))
		if err != nil {
			t.Fatal(err)
		}
		if forged.status != http.StatusUnauthorized {
			t.Errorf("forged while Redis is down: got %v, want 401", forged)
		}

		// one outcome per request: a store error is not also "verified"
		ddMetricsDelta(t, metricsBefore, ddMetrics(t), "vivreal", map[string]float64{
			"requests_total/vivreal/store_error":   2,
			"requests_total/vivreal/verified":      1, // the body without id
			"requests_total/vivreal/missing_id":    1,
			"requests_total/vivreal/bad_signature": 1,
		})

		releaseMid()
		ddForwarded(t, "request in flight when Redis stopped", ddWait(t, first), 200)

		srv.Restart()
		start := time.Now()
		var res ddResp
		for {
			res = ddMustPost(t, c, url, body)
			if res.status != http.StatusServiceUnavailable || time.Since(start) > 10*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		ddForwarded(t, "after Redis restarted", res, 200)
		t.Logf("recovered %v after the restart", time.Since(start))
		ddDuplicate(t, "retry after recovery", ddMustPost(t, c, url, body))
		ddUpCount(t, "after recovery", up, id, 1)
		if v, err := rc.Get(ctx, key(id)).Result(); err != nil || v != "done" {
			t.Errorf("GET %s after recovery = %q, %v; want done", key(id), v, err)
		}
	})
}

// TestIntegrationDedupeReloadAndJSON: the memory store outlives a config
// reload (here from a Caddyfile to the same gateway written in JSON, with
// another key spelling of its options), so an event delivered before the
// reload is still a duplicate after it; and the JSON dedupe object works
// as the Caddyfile block does.
func TestIntegrationDedupeReloadAndJSON(t *testing.T) {
	ddNewRun()
	up := ddNewUpstream(t)
	dir := t.TempDir()
	ddStart(t, dir+"/caddy.log", fmt.Sprintf(`
http://localhost:9080 {
	handle /vivreal {
		webhook_verify vivreal %[1]s {
			dedupe 24h {
				key_prefix reload:
				inflight_ttl 10s
			}
		}
		reverse_proxy %[2]s
	}
}
`, itVivSecret, up.addr()))
	c := ddClient(t, 30*time.Second)
	const url = "http://localhost:9080/vivreal"

	before := ddID("reload_before")
	ddForwarded(t, "before the reload", ddMustPost(t, c, url, ddVivreal(ddQ(before))), 200)

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
						"match": [{"path": ["/vivreal"]}],
						"handle": [
							{
								"handler": "webhook_verify",
								"provider": {"name": "vivreal"},
								"secrets": [%q],
								"dedupe": {
									"ttl": "24h",
									"inflight_ttl": "5s",
									"store": "memory",
									"key_prefix": "reload:",
									"require_id": true
								}
							},
							{
								"handler": "reverse_proxy",
								"headers": {"request": {"set": {"X-Webhook-Duplicate": ["{http.webhook.duplicate}"]}}},
								"upstreams": [{"dial": %q}]
							}
						]
					}]
				}
			}
		}
	}
}`, itVivSecret, up.addr())
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "json")
	if t.Failed() {
		t.FailNow()
	}

	ddDuplicate(t, "delivered before the reload", ddMustPost(t, c, url, ddVivreal(ddQ(before))))
	ddUpCount(t, "after the reload", up, before, 1)

	after := ddID("reload_after")
	body := ddVivreal(ddQ(after))
	ddForwarded(t, "new event, JSON config", ddMustPost(t, c, url, body), 200)
	if got := up.dupHeader(after); got != "false" {
		t.Errorf("{http.webhook.duplicate} = %q, want \"false\"", got)
	}
	ddDuplicate(t, "its duplicate, JSON config", ddMustPost(t, c, url, body))
	if res := ddMustPost(t, c, url, ddVivreal("")); res.status != http.StatusBadRequest {
		t.Errorf("require_id from JSON, no id: got %v, want 400", res)
	}

	// the JSON inflight_ttl (5 s) is the one in force
	slow := ddID("reload_slow")
	slowBody := ddVivreal(ddQ(slow))
	release := up.gate(t, slow)
	first := ddAsync(c, url, slowBody, ddSigViv(slowBody))
	up.waitCount(t, slow, 1)
	dup := ddMustPost(t, c, url, slowBody)
	if dup.status != http.StatusConflict {
		t.Errorf("in flight: got %v, want 409", dup)
	}
	ddRetryAfter(t, "409 with inflight_ttl 5s", dup, 2, 5)
	release()
	ddForwarded(t, "slow delivery", ddWait(t, first), 200)
}

// TestIntegrationDedupeRedisAuth: the Redis URL's password comes from an
// {env.*} placeholder resolved at provision time, and the URL's db is the
// one used; a wrong password is a 503 (nothing forwarded), and the password
// shows up in no answer and no log line.
func TestIntegrationDedupeRedisAuth(t *testing.T) {
	ddNewRun()
	const password = "dd-redis-pw-5b7e0c"
	srv := redistest.StartWithArgs(t, "--requirepass", password)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password, DB: 2})
	t.Cleanup(func() { _ = rc.Close() })
	t.Setenv("WV_DD_REDIS_PASSWORD", password)
	up := ddNewUpstream(t)
	dir := t.TempDir()
	logFile := dir + "/caddy.log"
	ddStart(t, logFile, fmt.Sprintf(`
http://localhost:9080 {
	handle /good {
		webhook_verify vivreal %[1]s {
			dedupe {
				store redis redis://:{env.WV_DD_REDIS_PASSWORD}@%[2]s/2
				key_prefix auth:
			}
		}
		reverse_proxy %[3]s
	}
	handle /wrong {
		webhook_verify vivreal %[1]s {
			dedupe {
				store redis redis://:not-%[4]s@%[2]s/2
				key_prefix auth:
			}
		}
		reverse_proxy %[3]s
	}
}
`, itVivSecret, srv.Addr(), up.addr(), password))
	c := ddClient(t, 30*time.Second)
	ctx := context.Background()

	id := ddID("auth")
	body := ddVivreal(ddQ(id))
	ddForwarded(t, "password from the environment", ddMustPost(t, c, "http://localhost:9080/good", body), 200)
	ddDuplicate(t, "duplicate", ddMustPost(t, c, "http://localhost:9080/good", body))
	if v, err := rc.Get(ctx, "auth:vivreal:"+id).Result(); err != nil || v != "done" {
		t.Errorf("GET auth:vivreal:%s in db 2 = %q, %v; want done", id, v, err)
	}

	id2 := ddID("auth_wrong")
	res := ddMustPost(t, c, "http://localhost:9080/wrong", ddVivreal(ddQ(id2)))
	if res.status != http.StatusServiceUnavailable {
		t.Errorf("wrong Redis password: got %v, want 503", res)
	}
	ddRetryAfter(t, "503", res, 1, 30)
	ddUpCount(t, "wrong Redis password", up, id2, 0)
	ddFindLog(t, logFile, map[string]any{"msg": "dedupe store unavailable", "id": id2})
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(password)) {
		t.Errorf("the log reveals the Redis password")
	}
	if bytes.Contains(res.body, []byte(password)) {
		t.Errorf("the answer reveals the Redis password")
	}
}

// ---------------------------------------------------------------------------
// Key spaces

// ddLoadCaddyfile posts a Caddyfile to the admin's /load, as `caddy reload`
// does, and returns the status and the error Caddy answered with.
func ddLoadCaddyfile(t *testing.T, caddyfile string) (int, string) {
	t.Helper()
	res, err := http.Post("http://localhost:2999/load", "text/caddyfile", strings.NewReader(caddyfile))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var answer struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &answer) != nil || answer.Error == "" {
		answer.Error = string(raw)
	}
	return res.StatusCode, answer.Error
}

// TestIntegrationDedupeKeySpaces: two endpoints of one sender, each with
// dedupe in the memory store (say an indexer and a purger that both get
// every event), must not share a key space, or the second endpoint would
// answer the event as a duplicate and its backend would never see it.
// With the same key_prefix the config does not load, and the error names
// both handlers and the route of the second; with a key_prefix each, the
// same event reaches both backends, once each.
func TestIntegrationDedupeKeySpaces(t *testing.T) {
	ddNewRun()
	indexer, purger := itNewRecorder(t, "indexer"), itNewRecorder(t, "purger")
	sites := func(dedupeA, dedupeB string) string {
		return fmt.Sprintf(`
http://localhost:9080 {
	handle /hooks/vivreal/indexer {
		webhook_verify vivreal %[1]s {
			%[2]s
		}
		reverse_proxy %[4]s
	}
	handle /hooks/vivreal/purger {
		webhook_verify vivreal %[1]s {
			%[3]s
		}
		reverse_proxy %[5]s
	}
}
`, itVivSecret, dedupeA, dedupeB, indexer.addr(), purger.addr())
	}
	itStart(t, `
http://localhost:9080 {
	respond "before"
}
`)

	for name, cfg := range map[string]string{
		"default key_prefix": sites("dedupe", "dedupe"),
		"same key_prefix":    sites("dedupe {\n\t\t\t\tkey_prefix hooks:\n\t\t\t}", "dedupe 24h {\n\t\t\t\tkey_prefix hooks:\n\t\t\t\tmax_entries 1000\n\t\t\t}"),
	} {
		status, msg := ddLoadCaddyfile(t, itGlobal+cfg)
		if status == http.StatusOK {
			t.Fatalf("%s: a config whose two endpoints share a key space loaded", name)
		}
		t.Logf("%s: %d %s", name, status, msg)
		for _, want := range []string{
			"webhook_verify #2 with dedupe in this config",
			"webhook_verify #1 both keep vivreal event ids under key_prefix",
			"in this process's memory",
			"give one of them its own key_prefix",
			"setting up subroutes", // Caddy's own trace of the second's route
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: load error %q does not contain %q", name, msg, want)
			}
		}
	}
	// the running config is untouched
	if res, err := http.Get(itBase + "/"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "before" {
			t.Fatalf("after the refused configs the site answers %q, want the running config's", body)
		}
	}

	itStart(t, sites("dedupe {\n\t\t\t\tkey_prefix indexer:\n\t\t\t}", "dedupe {\n\t\t\t\tkey_prefix purger:\n\t\t\t}"))
	c := ddClient(t, 30*time.Second)
	body := ddVivreal(ddQ(ddID("both_endpoints")))
	for _, ep := range []struct {
		path string
		rec  *itRecorder
	}{{"/hooks/vivreal/indexer", indexer}, {"/hooks/vivreal/purger", purger}} {
		res := ddMustPost(t, c, itBase+ep.path, body)
		if res.status != http.StatusOK || string(res.body) != "ok from "+ep.rec.name {
			t.Errorf("%s: got %v, want the %s backend's answer", ep.path, res, ep.rec.name)
		}
		ddDuplicate(t, ep.path+" again", ddMustPost(t, c, itBase+ep.path, body))
	}
	itAssertForwarded(t, indexer, "/hooks/vivreal/indexer", body)
	itAssertForwarded(t, purger, "/hooks/vivreal/purger", body)
}

// TestIntegrationDedupeReloadKeepsKeySpace: the memory store belongs to
// the key space (key_prefix and provider), not to a config: a reload that
// keeps the key space keeps the events remembered, although it changes
// max_entries (which then applies to the store), the route and the log.
// The old and the new config live side by side during the reload, with
// the same key space, and that is no conflict. A reload that fails leaves
// the running config's max_entries in force. The store's eviction warning
// goes to the log of the config running now, not to that of the config
// that created the store.
func TestIntegrationDedupeReloadKeepsKeySpace(t *testing.T) {
	ddNewRun()
	up := ddNewUpstream(t)
	dir := t.TempDir()
	dedupe := func(maxEntries int) string {
		return fmt.Sprintf("dedupe {\n\t\t\t\tkey_prefix ks-%s:\n\t\t\t\tmax_entries %d\n\t\t\t}", ddRun, maxEntries)
	}
	cfg := func(path string, maxEntries int) string {
		return fmt.Sprintf(`
http://localhost:9080 {
	handle %[1]s {
		webhook_verify vivreal %[2]s {
			%[3]s
		}
		reverse_proxy %[4]s
	}
}
`, path, itVivSecret, dedupe(maxEntries), up.addr())
	}
	beforeLog, afterLog := dir+"/before.log", dir+"/after.log"
	ddStart(t, beforeLog, cfg("/hook", 100))
	c := ddClient(t, 30*time.Second)
	ids := []string{ddID("ks_0"), ddID("ks_1"), ddID("ks_2"), ddID("ks_3")}
	for _, id := range ids[:2] {
		ddForwarded(t, id+" before the reload", ddMustPost(t, c, itBase+"/hook", ddVivreal(ddQ(id))), 200)
	}

	// a reload to max_entries 1 that fails on a later handler
	status, msg := ddLoadCaddyfile(t, itGlobal+fmt.Sprintf(`
http://localhost:9080 {
	route /hook {
		webhook_verify vivreal %[1]s {
			%[2]s
		}
		webhook_verify vivreal {env.WV_DD_UNSET_SECRET_5d1}
		reverse_proxy %[3]s
	}
}
`, itVivSecret, dedupe(1), up.addr()))
	if status == http.StatusOK {
		t.Fatal("a config with an unset secret loaded")
	}
	t.Logf("failed reload: %d %s", status, msg)
	for _, id := range ids[:2] {
		ddDuplicate(t, id+" after a failed reload", ddMustPost(t, c, itBase+"/hook", ddVivreal(ddQ(id))))
	}
	ddForwarded(t, "a new event after a failed reload", ddMustPost(t, c, itBase+"/hook", ddVivreal(ddQ(ids[2]))), 200)
	if n := ddCountLog(t, beforeLog, map[string]any{"level": "warn", "provider": "vivreal"}); n != 0 {
		t.Errorf("%d warnings after a failed reload to max_entries 1: its limit stayed in force", n)
	}

	ddStart(t, afterLog, cfg("/v2/hook", 3))
	for _, id := range ids[:3] {
		ddDuplicate(t, id+" after the reload", ddMustPost(t, c, itBase+"/v2/hook", ddVivreal(ddQ(id))))
		ddUpCount(t, id+" after the reload", up, id, 1)
	}
	// max_entries 3 is in force: the store is full, and a new event
	// evicts the done event nearest to expiry, the first delivered
	ddForwarded(t, ids[3], ddMustPost(t, c, itBase+"/v2/hook", ddVivreal(ddQ(ids[3]))), 200)
	ddFindLog(t, afterLog, map[string]any{"level": "warn", "provider": "vivreal", "max_entries": 3, "evicted": 1})
	ddDuplicate(t, "the second event, kept", ddMustPost(t, c, itBase+"/v2/hook", ddVivreal(ddQ(ids[1]))))
	ddForwarded(t, "the evicted first event", ddMustPost(t, c, itBase+"/v2/hook", ddVivreal(ddQ(ids[0]))), 200)
	ddUpCount(t, "the evicted first event", up, ids[0], 2)
}
