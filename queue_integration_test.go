package webhookverify_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
)

// qiWait polls cond until it holds or a generous deadline passes.
func qiWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A queued route answers the sender once the event is on disk, and the
// gateway delivers it through the deliver block's reverse_proxy, byte for
// byte, with the webhook placeholders.
func TestIntegrationQueueSmoke(t *testing.T) {
	up := itNewRecorder(t, "up")
	dir := t.TempDir()
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /hook {
		webhook_verify vivreal %s {
			queue {
				store bbolt %s
				deliver {
					reverse_proxy %s {
						header_up X-Webhook-Id {http.webhook.id}
						header_up X-Webhook-Attempt {http.webhook.attempt}
					}
				}
				retry 1s
			}
		}
	}
}
`, itVivSecret, filepath.Join(dir, "q.db"), up.addr()))
	body := itVivrealEvent("evt_q1", "collection.object.created", 2000)
	req, _ := http.NewRequest("POST", itBase+"/hook?x=1", strings.NewReader(string(body)))
	req.Header.Set("X-Vivreal-Signature", itSign256(itVivSecret, body))
	res, err := itNewClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(got) != `{"received":true,"queued":true}` {
		t.Fatalf("%d %s", res.StatusCode, got)
	}
	qiWait(t, "the delivery", func() bool { return up.count() == 1 })
	rec := itAssertForwarded(t, up, "/hook", body)
	if rec.Header.Get("X-Webhook-Id") != "evt_q1" || rec.Header.Get("X-Webhook-Attempt") != "1" {
		t.Errorf("placeholders: id %q attempt %q", rec.Header.Get("X-Webhook-Id"), rec.Header.Get("X-Webhook-Attempt"))
	}
}

// ---------------------------------------------------------------------------
// Helpers of the queue's integration tests

// qiHit is one delivery attempt as the backend received it.
type qiHit struct {
	id      string // X-Webhook-Id, set from {http.webhook.id} by the deliver block
	attempt string // X-Attempt, from {http.webhook.attempt}
	// X-Verified, when the deliver block sets it from {http.webhook.verified}
	verified string
	path     string
	body     []byte
	status   int       // what the backend answered
	at       time.Time // when it arrived
	end      time.Time // when the backend was done with it
}

// qiBackend is an upstream that records every attempt and answers it as
// the test's answer function says (200 when it is nil). answer gets the
// request and the attempt's number among the attempts of its id (1, 2, …);
// it may block, until the request's context ends.
type qiBackend struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []qiHit
	nth    map[string]int
	answer func(r *http.Request, id string, nth int) (int, http.Header)
}

func qiNewBackend(t *testing.T, answer func(r *http.Request, id string, nth int) (int, http.Header)) *qiBackend {
	t.Helper()
	b := &qiBackend{t: t, nth: map[string]int{}, answer: answer}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("X-Webhook-Id")
		b.mu.Lock()
		b.nth[id]++
		n := b.nth[id]
		b.mu.Unlock()
		status, hdr := http.StatusOK, http.Header(nil)
		if b.answer != nil {
			status, hdr = b.answer(r, id, n)
		}
		for k, vs := range hdr {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "answered")
		b.mu.Lock()
		b.hits = append(b.hits, qiHit{id: id, attempt: r.Header.Get("X-Attempt"), verified: r.Header.Get("X-Verified"), path: r.URL.Path, body: body,
			status: status, at: at, end: time.Now()})
		b.mu.Unlock()
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *qiBackend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// of lists the attempts of the event id, in the order they ended.
func (b *qiBackend) of(id string) []qiHit {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []qiHit
	for _, h := range b.hits {
		if h.id == id {
			out = append(out, h)
		}
	}
	return out
}

func (b *qiBackend) all() []qiHit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]qiHit(nil), b.hits...)
}

// started is how many attempts of id reached the backend (ended or not).
func (b *qiBackend) started(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nth[id]
}

// qiDeliver is a deliver block to the backend that passes the event id
// and the attempt in headers.
func qiDeliver(b *qiBackend) string {
	return fmt.Sprintf(`deliver {
					reverse_proxy %s {
						header_up X-Webhook-Id {http.webhook.id}
						header_up X-Attempt {http.webhook.attempt}
					}
				}`, b.addr())
}

// qiSite is the test site with the given handle blocks.
func qiSite(handles ...string) string {
	return "\nhttp://localhost:9080 {\n" + strings.Join(handles, "\n") + "\n}\n"
}

// qiHandle is a handle block at path with a queued Vivreal handler; opts
// are the handler's lines before the queue block, queue the queue block.
func qiHandle(path, opts, queue string) string {
	return fmt.Sprintf(`	handle %s {
		webhook_verify vivreal %s {
			%s
			%s
		}
	}`, path, itVivSecret, opts, queue)
}

// qiQueue is a queue block.
func qiQueue(name, dbPath string, b *qiBackend, lines ...string) string {
	return fmt.Sprintf(`queue %s {
				store bbolt %s
				%s
				%s
			}`, name, dbPath, qiDeliver(b), strings.Join(lines, "\n\t\t\t\t"))
}

// qiSend posts a signed Vivreal body to path.
func qiSend(t *testing.T, c *http.Client, path string, body []byte) itResp {
	t.Helper()
	return itDo(t, c, itReq{path: path, body: body, header: itHdr("X-Vivreal-Signature", itSign256(itVivSecret, body))})
}

const (
	qiQueued    = `{"received":true,"queued":true}`
	qiDuplicate = `{"received":true,"duplicate":true}`
)

func qiMustQueue(t *testing.T, c *http.Client, path string, body []byte) {
	t.Helper()
	if r := qiSend(t, c, path, body); r.status != http.StatusOK || string(r.body) != qiQueued {
		t.Fatalf("POST %s: %d %q, want 200 %s", path, r.status, itTrim(r.body), qiQueued)
	}
}

// qiAdmin calls the admin API; out, when not nil, gets the JSON answer.
func qiAdmin(t *testing.T, method, path string, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://localhost:2999"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return res.StatusCode, raw
}

// qiEv is an event as the admin API shows it.
type qiEv struct {
	ID          string    `json:"id"`
	Seq         uint64    `json:"seq"`
	GeneratedID bool      `json:"generated_id"`
	Provider    string    `json:"provider"`
	Event       string    `json:"event"`
	Method      string    `json:"method"`
	URI         string    `json:"uri"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	ReceivedAt  time.Time `json:"received_at"`
	LastStatus  int       `json:"last_status"`
	LastError   string    `json:"last_error"`
	Replays     int       `json:"replays"`
	Size        int64     `json:"size"`
	Unverified  bool      `json:"unverified"`
	Key         int       `json:"key"`
	Body        *[]byte   `json:"body"`
}

func qiEvents(t *testing.T, queueName, state string) []qiEv {
	t.Helper()
	var evs []qiEv
	path := "/webhook_verify/queues/" + queueName + "/events"
	if state != "" {
		path += "?state=" + state
	}
	if st, raw := qiAdmin(t, http.MethodGet, path, &evs); st != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, st, raw)
	}
	return evs
}

// qiEvent is GET …/events/<id>, with ?body=1 if withBody; ok is false on 404.
func qiEvent(t *testing.T, queueName, id string, withBody bool) (ev qiEv, raw []byte, ok bool) {
	t.Helper()
	path := "/webhook_verify/queues/" + queueName + "/events/" + id
	if withBody {
		path += "?body=1"
	}
	st, raw := qiAdmin(t, http.MethodGet, path, &ev)
	switch st {
	case http.StatusOK:
		return ev, raw, true
	case http.StatusNotFound:
		return ev, raw, false
	}
	t.Fatalf("GET %s: %d %s", path, st, raw)
	return
}

// qiState is the state of event id (or "gone").
func qiState(t *testing.T, queueName, id string) string {
	t.Helper()
	ev, _, ok := qiEvent(t, queueName, id, false)
	if !ok {
		return "gone"
	}
	return ev.State
}

func qiWaitState(t *testing.T, queueName, id, state string) {
	t.Helper()
	qiWait(t, fmt.Sprintf("event %s %s", id, state), func() bool { return qiState(t, queueName, id) == state })
}

// qiStatsOf is the queue in GET /webhook_verify/queues.
func qiStatsOf(t *testing.T, queueName string) map[string]any {
	t.Helper()
	var all []map[string]any
	if st, raw := qiAdmin(t, http.MethodGet, "/webhook_verify/queues", &all); st != http.StatusOK {
		t.Fatalf("GET /webhook_verify/queues: %d %s", st, raw)
	}
	for _, q := range all {
		if q["name"] == queueName {
			return q
		}
	}
	t.Fatalf("no queue %q in %v", queueName, all)
	return nil
}

// qiIDs lists the ids of hits.
func qiIDs(hits []qiHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.id
	}
	return out
}

// qiAttempts lists the X-Attempt headers of hits.
func qiAttempts(hits []qiHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.attempt
	}
	return out
}

// qiMetrics reads the queue series of the admin /metrics page, keyed
// "<name without caddy_webhook_verify_>/<queue>[/<state or result>]", and
// the requests_total series as ddMetrics does.
func qiMetrics(t *testing.T) map[string]float64 {
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
		if !ok || !strings.HasPrefix(name, "caddy_webhook_verify_") {
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
		key := strings.TrimPrefix(name, "caddy_webhook_verify_")
		switch {
		case l["queue"] != "" && l["state"] != "":
			key += "/" + l["queue"] + "/" + l["state"]
		case l["queue"] != "" && l["result"] != "":
			key += "/" + l["queue"] + "/" + l["result"]
		case l["queue"] != "" && l["le"] == "":
			key += "/" + l["queue"]
		case l["provider"] != "" && l["outcome"] != "":
			key += "/" + l["provider"] + "/" + l["outcome"]
		case l["provider"] != "" && l["key"] != "":
			key += "/" + l["provider"] + "/" + l["key"]
		default:
			continue
		}
		out[key] = v
	}
	return out
}

// ---------------------------------------------------------------------------
// Retries

// A backend that fails with 500 and then recovers gets the event again
// after each gap until it answers 2xx, then never again: the event is
// delivered once, and {http.webhook.attempt} counts the attempts.
func TestIntegrationQueueRetryUntilRecovered(t *testing.T) {
	be := qiNewBackend(t, func(_ *http.Request, id string, n int) (int, http.Header) {
		if id == "evt_qr_1" && n <= 3 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("retries", filepath.Join(t.TempDir(), "q.db"), be, "retry 100ms 200ms"))))
	c := itNewClient(t)
	body := itVivrealEvent("evt_qr_1", "collection.object.created", 3000)
	qiMustQueue(t, c, "/hook", body)
	qiWaitState(t, "retries", "evt_qr_1", "delivered")

	hits := be.of("evt_qr_1")
	if got := qiAttempts(hits); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("X-Attempt of the attempts: %q, want 1, 2, 3, 4", got)
	}
	for i, h := range hits {
		want := http.StatusInternalServerError
		if i == 3 {
			want = http.StatusOK
		}
		if h.status != want || h.path != "/hook" || !bytes.Equal(h.body, body) {
			t.Errorf("attempt %d: answered %d, path %s, body intact %v", i+1, h.status, h.path, bytes.Equal(h.body, body))
		}
	}
	// each retry waited at least its gap: 100ms, then 200ms (the last repeats)
	for i, gap := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond} {
		if d := hits[i+1].at.Sub(hits[i].at); d < gap {
			t.Errorf("attempt %d came %v after attempt %d, before the gap %v", i+2, d, i+1, gap)
		}
	}
	ev, _, _ := qiEvent(t, "retries", "evt_qr_1", false)
	if ev.Attempts != 4 || ev.LastStatus != 200 || ev.LastError != "" || ev.Provider != "vivreal" || ev.Event != "collection.object.created" {
		t.Errorf("the delivered event: %+v", ev)
	}
	// delivered means done: a later event is delivered, the first not again
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qr_2", "collection.object.created", 100))
	qiWaitState(t, "retries", "evt_qr_2", "delivered")
	if n := len(be.of("evt_qr_1")); n != 4 {
		t.Errorf("the delivered event was attempted %d times, want 4", n)
	}
	if r := qiSend(t, c, "/hook", body); r.status != http.StatusOK || string(r.body) != qiDuplicate {
		t.Errorf("the sender's retry of the delivered event: %d %q, want a duplicate", r.status, r.body)
	}
}

// A backend slower than attempt_timeout fails the attempt (counted as a
// timeout), and the event is delivered by the next one.
func TestIntegrationQueueAttemptTimeout(t *testing.T) {
	be := qiNewBackend(t, func(r *http.Request, _ string, n int) (int, http.Header) {
		if n == 1 {
			select {
			case <-r.Context().Done(): // the gateway gave up
			case <-time.After(2 * time.Second):
			}
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("slow", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 100ms", "attempt_timeout 500ms"))))
	before := qiMetrics(t)
	c := itNewClient(t)
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qt_1", "collection.object.updated", 500))
	qiWaitState(t, "slow", "evt_qt_1", "delivered")
	after := qiMetrics(t)

	if n := be.started("evt_qt_1"); n != 2 {
		t.Fatalf("%d attempts reached the backend, want 2", n)
	}
	hits := be.of("evt_qt_1")
	var first, second qiHit
	for _, h := range hits {
		if h.attempt == "1" {
			first = h
		} else {
			second = h
		}
	}
	if second.attempt != "2" {
		t.Errorf("the second attempt's X-Attempt = %q, want 2", second.attempt)
	}
	if d := second.at.Sub(first.at); d < 500*time.Millisecond {
		t.Errorf("the second attempt came %v after the first, before its 500ms attempt_timeout", d)
	}
	for key, want := range map[string]float64{"queue_attempts_total/slow/timeout": 1, "queue_attempts_total/slow/delivered": 1} {
		if got := after[key] - before[key]; got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if ev, _, _ := qiEvent(t, "slow", "evt_qt_1", false); ev.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", ev.Attempts)
	}
}

// A backend's Retry-After shorter than the gap brings the next attempt
// forward; a longer one is capped at the gap.
func TestIntegrationQueueRetryAfter(t *testing.T) {
	be := qiNewBackend(t, func(_ *http.Request, id string, n int) (int, http.Header) {
		switch {
		case id == "evt_qra_short" && n == 1:
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		case id == "evt_qra_long" && n == 1:
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}
		}
		return http.StatusOK, nil
	})
	db := filepath.Join(t.TempDir(), "q.db") // two queues in one file
	itStart(t, qiSite(
		qiHandle("/short", "", qiQueue("ra_short", db, be, "retry 5s")),
		qiHandle("/long", "", qiQueue("ra_long", db, be, "retry 300ms")),
	))
	c := itNewClient(t)
	qiMustQueue(t, c, "/short", itVivrealEvent("evt_qra_short", "collection.object.created", 200))
	qiMustQueue(t, c, "/long", itVivrealEvent("evt_qra_long", "collection.object.created", 200))
	qiWaitState(t, "ra_short", "evt_qra_short", "delivered")
	qiWaitState(t, "ra_long", "evt_qra_long", "delivered")

	for _, tc := range []struct {
		id       string
		min, max time.Duration
		what     string
	}{
		// Retry-After: 1 under the 5s gap: after 1s (plus jitter), well before 5s
		{"evt_qra_short", time.Second, 4 * time.Second, "Retry-After 1 under the gap 5s"},
		// Retry-After: 3600 over the 300ms gap: capped at the gap
		{"evt_qra_long", 300 * time.Millisecond, 4 * time.Second, "Retry-After 3600 over the gap 300ms"},
	} {
		hits := be.of(tc.id)
		if len(hits) != 2 {
			t.Fatalf("%s: %d attempts, want 2", tc.id, len(hits))
		}
		d := hits[1].at.Sub(hits[0].at)
		t.Logf("%s: the second attempt came %v after the first", tc.what, d)
		if d < tc.min || d >= tc.max {
			t.Errorf("%s: the second attempt came %v after the first, want within [%v, %v)", tc.what, d, tc.min, tc.max)
		}
	}
}

// ---------------------------------------------------------------------------
// Dead events and the admin API

// An event the backend refuses max_attempts times is dead: listed with
// state=dead, shown (its body only with ?body=1), replayed to pending and
// delivered. DELETE forgets an event (and refuses one in flight); pause
// stops deliveries, the events wait as pending, resume delivers them.
func TestIntegrationQueueDeadReplayDiscardPause(t *testing.T) {
	var mu sync.Mutex
	failing := map[string]bool{"evt_qd_dead": true}
	gate := make(chan struct{})
	be := qiNewBackend(t, func(r *http.Request, id string, _ int) (int, http.Header) {
		if id == "evt_qd_gate" {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if failing[id] {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("ops", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 100ms", "max_attempts 2"))))
	c := itNewClient(t)
	body := itVivrealEvent("evt_qd_dead", "collection.object.deleted", 1500)
	qiMustQueue(t, c, "/hook", body)

	// dead after max_attempts
	qiWait(t, "the event dead", func() bool { return len(qiEvents(t, "ops", "dead")) == 1 })
	dead := qiEvents(t, "ops", "dead")[0]
	if dead.ID != "evt_qd_dead" || dead.State != "dead" || dead.Attempts != 2 || dead.LastStatus != 500 ||
		dead.LastError != "Internal Server Error" || dead.Provider != "vivreal" || dead.Event != "collection.object.deleted" ||
		dead.ReceivedAt.IsZero() || dead.Method != "POST" || dead.URI != "/hook" || dead.Size != int64(len(body)) {
		t.Errorf("the dead event as listed: %+v", dead)
	}
	if dead.Body != nil {
		t.Error("the listing carries the body")
	}
	if got := qiAttempts(be.of("evt_qd_dead")); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("attempts of the dead event: %q, want 1, 2", got)
	}
	if n := len(qiEvents(t, "ops", "pending")); n != 0 {
		t.Errorf("%d pending events, want 0", n)
	}

	// shown: the body only when asked for
	ev, raw, ok := qiEvent(t, "ops", "evt_qd_dead", false)
	if !ok || ev.State != "dead" || ev.Body != nil || strings.Contains(string(raw), `"body"`) {
		t.Errorf("GET the event without ?body=1: %s", raw)
	}
	ev, raw, ok = qiEvent(t, "ops", "evt_qd_dead", true)
	if !ok || ev.Body == nil || !bytes.Equal(*ev.Body, body) {
		t.Errorf("GET the event with ?body=1 did not give the body back: %s", itTrim(raw))
	}

	// replayed: back to pending, attempts reset, delivered once the backend is fixed
	mu.Lock()
	delete(failing, "evt_qd_dead")
	mu.Unlock()
	var replayed qiEv
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ops/events/evt_qd_dead/replay", &replayed); st != http.StatusOK {
		t.Fatalf("replay: %d %s", st, raw)
	}
	if replayed.State != "pending" || replayed.Attempts != 0 || replayed.Replays != 1 {
		t.Errorf("the replayed event: %+v", replayed)
	}
	qiWaitState(t, "ops", "evt_qd_dead", "delivered")
	hits := be.of("evt_qd_dead")
	if got := qiAttempts(hits); !slices.Equal(got, []string{"1", "2", "1"}) {
		t.Errorf("attempts after the replay: %q, want 1, 2, then 1 again", got)
	}
	if last := hits[len(hits)-1]; last.status != 200 || !bytes.Equal(last.body, body) {
		t.Errorf("the replayed delivery: %d, body intact %v", last.status, bytes.Equal(last.body, body))
	}
	if n := len(qiEvents(t, "ops", "dead")); n != 0 {
		t.Errorf("%d dead events after the replay, want 0", n)
	}
	// a delivered event's body is gone: it cannot be replayed
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ops/events/evt_qd_dead/replay", nil); st != http.StatusConflict {
		t.Errorf("replaying a delivered event: %d %s, want 409", st, raw)
	}

	// discarded: gone, its id forgotten (the same id is stored anew)
	if st, raw := qiAdmin(t, http.MethodDelete, "/webhook_verify/queues/ops/events/evt_qd_dead", nil); st != http.StatusOK ||
		!strings.Contains(string(raw), `"discarded": true`) {
		t.Fatalf("DELETE: %d %s", st, raw)
	}
	if _, raw, ok := qiEvent(t, "ops", "evt_qd_dead", false); ok {
		t.Errorf("the discarded event is still there: %s", raw)
	}
	qiMustQueue(t, c, "/hook", body)
	qiWaitState(t, "ops", "evt_qd_dead", "delivered")
	if n := len(be.of("evt_qd_dead")); n != 4 {
		t.Errorf("%d attempts after the id was discarded and sent again, want 4", n)
	}

	// an event in flight cannot be discarded
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qd_gate", "collection.object.created", 100))
	qiWait(t, "the gated attempt to reach the backend", func() bool { return be.started("evt_qd_gate") == 1 })
	if evs := qiEvents(t, "ops", "in_flight"); len(evs) != 1 || evs[0].ID != "evt_qd_gate" || evs[0].State != "in_flight" {
		t.Errorf("in_flight events: %+v, want evt_qd_gate", evs)
	}
	if st, raw := qiAdmin(t, http.MethodDelete, "/webhook_verify/queues/ops/events/evt_qd_gate", nil); st != http.StatusConflict {
		t.Errorf("DELETE of an event in flight: %d %s, want 409", st, raw)
	}
	close(gate)
	qiWaitState(t, "ops", "evt_qd_gate", "delivered")

	// unknown events, states and queues
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/webhook_verify/queues/ops/events/evt_none", 404},
		{http.MethodPost, "/webhook_verify/queues/ops/events/evt_none/replay", 404},
		{http.MethodDelete, "/webhook_verify/queues/ops/events/evt_none", 404},
		{http.MethodGet, "/webhook_verify/queues/ops/events?state=lost", 400},
		{http.MethodGet, "/webhook_verify/queues/ops/events?limit=0", 400},
		{http.MethodGet, "/webhook_verify/queues/nosuchqueue/events", 404},
		{http.MethodPost, "/webhook_verify/queues/nosuchqueue/pause", 404},
		{http.MethodGet, "/webhook_verify/queues/ops/pause", 405},
	} {
		if st, raw := qiAdmin(t, tc.method, tc.path, nil); st != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, st, raw, tc.want)
		}
	}

	// pause: accepted events wait as pending
	var st map[string]any
	if code, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ops/pause", &st); code != http.StatusOK || st["paused"] != true {
		t.Fatalf("pause: %d %s", code, raw)
	}
	ids := []string{"evt_qd_p1", "evt_qd_p2", "evt_qd_p3"}
	for _, id := range ids {
		qiMustQueue(t, c, "/hook", itVivrealEvent(id, "collection.object.created", 100))
	}
	pending := qiEvents(t, "ops", "pending")
	if got := func() []string {
		var out []string
		for _, e := range pending {
			out = append(out, e.ID)
		}
		return out
	}(); !slices.Equal(got, ids) {
		t.Errorf("pending while paused: %q, want %q in order of receipt", got, ids)
	}
	if q := qiStatsOf(t, "ops"); q["paused"] != true || q["pending"] != 3.0 {
		t.Errorf("the paused queue: %v", q)
	}
	// nothing is delivered while paused (an attempt would start at once:
	// the events are due, and each enqueue wakes the dispatcher)
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, id := range ids {
			if be.started(id) != 0 {
				t.Fatalf("%s was delivered while the queue was paused", id)
			}
		}
	}
	if code, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ops/resume", &st); code != http.StatusOK || st["paused"] != false {
		t.Fatalf("resume: %d %s", code, raw)
	}
	for _, id := range ids {
		qiWaitState(t, "ops", id, "delivered")
		if n := len(be.of(id)); n != 1 {
			t.Errorf("%s: %d attempts after resume, want 1", id, n)
		}
	}
}

// ---------------------------------------------------------------------------
// Dedupe

// A sender's retry of a stored event is a duplicate, in any state, and is
// stored and delivered once; also when many copies arrive at once.
func TestIntegrationQueueDuplicates(t *testing.T) {
	gate := make(chan struct{})
	be := qiNewBackend(t, func(r *http.Request, id string, _ int) (int, http.Header) {
		if id == "evt_qdup_1" {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("dups", filepath.Join(t.TempDir(), "q.db"), be, "retry 100ms"))))
	c := itNewClient(t)
	before := ddMetrics(t)

	// pending/in flight, then delivered: a duplicate each time
	body := itVivrealEvent("evt_qdup_1", "collection.object.created", 800)
	qiMustQueue(t, c, "/hook", body)
	qiWait(t, "the attempt to start", func() bool { return be.started("evt_qdup_1") == 1 })
	if r := qiSend(t, c, "/hook", body); r.status != http.StatusOK || string(r.body) != qiDuplicate {
		t.Errorf("retry while in flight: %d %q, want 200 %s", r.status, r.body, qiDuplicate)
	}
	close(gate)
	qiWaitState(t, "dups", "evt_qdup_1", "delivered")
	if r := qiSend(t, c, "/hook", body); r.status != http.StatusOK || string(r.body) != qiDuplicate {
		t.Errorf("retry after delivery: %d %q, want 200 %s", r.status, r.body, qiDuplicate)
	}

	// n copies at the same instant
	const n = 16
	body2 := itVivrealEvent("evt_qdup_2", "collection.object.created", 800)
	start := make(chan struct{})
	results := make(chan itResp, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, itBase+"/hook", bytes.NewReader(body2))
			req.Header.Set("X-Vivreal-Signature", itSign256(itVivSecret, body2))
			res, err := c.Do(req)
			if err != nil {
				results <- itResp{status: -1, body: []byte(err.Error())}
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			results <- itResp{status: res.StatusCode, body: b}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	queued, dup := 0, 0
	for r := range results {
		switch {
		case r.status == http.StatusOK && string(r.body) == qiQueued:
			queued++
		case r.status == http.StatusOK && string(r.body) == qiDuplicate:
			dup++
		default:
			t.Errorf("a concurrent copy got %d %q", r.status, itTrim(r.body))
		}
	}
	if queued != 1 || dup != n-1 {
		t.Errorf("%d concurrent copies: %d queued, %d duplicates; want 1 and %d", n, queued, dup, n-1)
	}
	qiWaitState(t, "dups", "evt_qdup_2", "delivered")
	// a later event, delivered after it, is the barrier for a second delivery
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qdup_3", "collection.object.created", 100))
	qiWaitState(t, "dups", "evt_qdup_3", "delivered")
	for _, id := range []string{"evt_qdup_1", "evt_qdup_2"} {
		if got := len(be.of(id)); got != 1 {
			t.Errorf("%s delivered %d times, want once", id, got)
		}
	}
	stored := 0
	for _, e := range qiEvents(t, "dups", "") {
		if e.ID == "evt_qdup_2" {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("evt_qdup_2 stored %d times, want once", stored)
	}
	ddMetricsDelta(t, before, ddMetrics(t), "vivreal", map[string]float64{
		"requests_total/vivreal/queued":    3,
		"requests_total/vivreal/duplicate": 2 + n - 1,
	})
}

// ---------------------------------------------------------------------------
// A full queue

// Over max_pending (events or bytes) a verified event is answered 503 with
// Retry-After; nothing already accepted is lost, a retry of an accepted
// event is still a duplicate, and once the queue drains it accepts again.
func TestIntegrationQueueFull(t *testing.T) {
	var down atomic.Bool
	be := qiNewBackend(t, func(*http.Request, string, int) (int, http.Header) {
		if down.Load() {
			return http.StatusBadGateway, nil
		}
		return http.StatusOK, nil
	})
	db := filepath.Join(t.TempDir(), "q.db")
	itStart(t, qiSite(
		qiHandle("/hook", "max_body_size 512KiB", qiQueue("full", db, be, "retry 100ms", "max_pending 3 1MiB")),
		qiHandle("/bytes", "max_body_size 1KiB", qiQueue("fullbytes", db, be, "retry 100ms", "max_pending 100 1KiB")),
	))
	c := itNewClient(t)
	before := ddMetrics(t)
	full := func(what, path string, body []byte) {
		t.Helper()
		r := qiSend(t, c, path, body)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("%s: %d %q, want 503", what, r.status, itTrim(r.body))
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", what, r.header.Get("Retry-After"))
		}
	}

	for _, phase := range []string{"paused", "backend down"} {
		ids := []string{"evt_qf_" + phase[:1] + "1", "evt_qf_" + phase[:1] + "2", "evt_qf_" + phase[:1] + "3"}
		extra := "evt_qf_" + phase[:1] + "4"
		if phase == "paused" {
			if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/full/pause", nil); st != http.StatusOK {
				t.Fatalf("pause: %d %s", st, raw)
			}
		} else {
			down.Store(true)
		}
		for _, id := range ids {
			qiMustQueue(t, c, "/hook", itVivrealEvent(id, "collection.object.created", 2000))
		}
		if phase == "backend down" {
			qiWait(t, "a failed attempt", func() bool { return be.started(ids[0]) >= 1 })
		}
		full(phase+": a 4th event", "/hook", itVivrealEvent(extra, "collection.object.created", 2000))
		// the sender's retry of an accepted event is no new event
		if r := qiSend(t, c, "/hook", itVivrealEvent(ids[1], "collection.object.created", 2000)); r.status != http.StatusOK || string(r.body) != qiDuplicate {
			t.Errorf("%s: retry of an accepted event while full: %d %q, want a duplicate", phase, r.status, r.body)
		}
		if q := qiStatsOf(t, "full"); q["pending"] != 3.0 {
			t.Errorf("%s: pending %v, want 3", phase, q["pending"])
		}
		if phase == "paused" {
			if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/full/resume", nil); st != http.StatusOK {
				t.Fatalf("resume: %d %s", st, raw)
			}
		} else {
			down.Store(false)
		}
		for _, id := range ids {
			qiWaitState(t, "full", id, "delivered")
		}
		// the refused event was not stored; once there is room it is
		if _, _, ok := qiEvent(t, "full", extra, false); ok {
			t.Errorf("%s: the refused event %s was stored", phase, extra)
		}
		qiMustQueue(t, c, "/hook", itVivrealEvent(extra, "collection.object.created", 2000))
		qiWaitState(t, "full", extra, "delivered")
		if n := be.started(extra); n != 1 {
			t.Errorf("%s: %s attempted %d times, want once", phase, extra, n)
		}
	}

	// the size bound: 600 + 600 bytes is over 1KiB, 600 + 300 is not
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/fullbytes/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: %d %s", st, raw)
	}
	qiMustQueue(t, c, "/bytes", itVivrealEvent("evt_qfb_1", "collection.object.created", 600))
	full("600 bytes more", "/bytes", itVivrealEvent("evt_qfb_2", "collection.object.created", 600))
	qiMustQueue(t, c, "/bytes", itVivrealEvent("evt_qfb_3", "collection.object.created", 300))
	if q := qiStatsOf(t, "fullbytes"); q["pending_bytes"] != 900.0 {
		t.Errorf("pending_bytes %v, want 900", q["pending_bytes"])
	}
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/fullbytes/resume", nil); st != http.StatusOK {
		t.Fatalf("resume: %d %s", st, raw)
	}
	qiWaitState(t, "fullbytes", "evt_qfb_1", "delivered")
	qiWaitState(t, "fullbytes", "evt_qfb_3", "delivered")
	qiMustQueue(t, c, "/bytes", itVivrealEvent("evt_qfb_2", "collection.object.created", 600))
	qiWaitState(t, "fullbytes", "evt_qfb_2", "delivered")

	after := ddMetrics(t)
	if got := after["requests_total/vivreal/queue_full"] - before["requests_total/vivreal/queue_full"]; got != 3 {
		t.Errorf("queue_full outcomes: %v, want 3", got)
	}
}

// ---------------------------------------------------------------------------
// Order

// With ordered, events are delivered one at a time in order of receipt,
// and the head's failures hold the rest until it is delivered.
func TestIntegrationQueueOrdered(t *testing.T) {
	be := qiNewBackend(t, func(_ *http.Request, id string, n int) (int, http.Header) {
		if id == "evt_qo_1" && n <= 2 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("ord", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 100ms", "ordered", "concurrency 8"))))
	c := itNewClient(t)
	// paused while they arrive, so that all wait behind the head
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ord/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: %d %s", st, raw)
	}
	var ids []string
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("evt_qo_%d", i)
		ids = append(ids, id)
		qiMustQueue(t, c, "/hook", itVivrealEvent(id, "collection.object.created", 100+i))
	}
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/ord/resume", nil); st != http.StatusOK {
		t.Fatalf("resume: %d %s", st, raw)
	}
	qiWaitState(t, "ord", ids[len(ids)-1], "delivered")

	hits := be.all()
	want := append([]string{"evt_qo_1", "evt_qo_1"}, ids...)
	if got := qiIDs(hits); !slices.Equal(got, want) {
		t.Fatalf("attempts in order %q, want %q", got, want)
	}
	if got := []int{hits[0].status, hits[1].status, hits[2].status}; !slices.Equal(got, []int{500, 500, 200}) {
		t.Errorf("the head's attempts answered %v, want 500, 500, 200", got)
	}
	// one at a time: each attempt started after the one before it ended
	for i := 1; i < len(hits); i++ {
		if hits[i].at.Before(hits[i-1].end) {
			t.Errorf("attempt %d (%s) started before attempt %d (%s) ended", i+1, hits[i].id, i, hits[i-1].id)
		}
	}
	for _, id := range ids {
		if s := qiState(t, "ord", id); s != "delivered" {
			t.Errorf("%s: %s", id, s)
		}
	}
}

// ---------------------------------------------------------------------------
// Events without an id

// An event without an id is stored under a generated id (not deduplicated)
// and delivered; with require_id it is refused with 400.
func TestIntegrationQueueNoID(t *testing.T) {
	be := qiNewBackend(t, nil)
	db := filepath.Join(t.TempDir(), "q.db")
	itStart(t, qiSite(
		qiHandle("/hook", "", qiQueue("noid", db, be, "retry 100ms")),
		qiHandle("/strict", "", qiQueue("strict", db, be, "retry 100ms", "require_id")),
	))
	c := itNewClient(t)
	before := ddMetrics(t)
	body := []byte(`{"event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"note":"no id here"}}`)
	qiMustQueue(t, c, "/hook", body)
	qiMustQueue(t, c, "/hook", body) // the same bytes again: not a duplicate
	qiWait(t, "both delivered", func() bool {
		return len(qiEvents(t, "noid", "delivered")) == 2
	})
	evs := qiEvents(t, "noid", "")
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	for _, e := range evs {
		if !e.GeneratedID || !strings.HasPrefix(e.ID, "gen_") || e.Event != "collection.object.created" {
			t.Errorf("stored without an id: %+v", e)
		}
	}
	if evs[0].ID == evs[1].ID || evs[0].ID > evs[1].ID {
		t.Errorf("generated ids %q, %q: want distinct, sorted in order of receipt", evs[0].ID, evs[1].ID)
	}
	hits := be.all()
	if len(hits) != 2 {
		t.Fatalf("%d deliveries, want 2", len(hits))
	}
	for _, h := range hits {
		if !bytes.Equal(h.body, body) || h.id != "" || h.status != 200 {
			t.Errorf("delivery of the event without id: body intact %v, X-Webhook-Id %q", bytes.Equal(h.body, body), h.id)
		}
	}

	r := qiSend(t, c, "/strict", body)
	if r.status != http.StatusBadRequest {
		t.Errorf("require_id, no id: %d %q, want 400", r.status, itTrim(r.body))
	}
	if evs := qiEvents(t, "strict", ""); len(evs) != 0 {
		t.Errorf("require_id stored %d events without id", len(evs))
	}
	qiMustQueue(t, c, "/strict", itVivrealEvent("evt_qn_strict", "collection.object.created", 100))
	qiWaitState(t, "strict", "evt_qn_strict", "delivered")

	// an id is the store's key: one over 1024 bytes is refused, not stored
	longest := "evt_" + strings.Repeat("x", 1020)
	qiMustQueue(t, c, "/hook", itVivrealEvent(longest, "collection.object.created", 2000))
	qiWaitState(t, "noid", longest, "delivered")
	if r := qiSend(t, c, "/hook", itVivrealEvent(longest+"y", "collection.object.created", 2000)); r.status != http.StatusBadRequest {
		t.Errorf("an id of 1025 bytes: %d %q, want 400", r.status, itTrim(r.body))
	}
	if n := len(qiEvents(t, "noid", "")); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
	ddMetricsDelta(t, before, ddMetrics(t), "vivreal", map[string]float64{
		"requests_total/vivreal/queued":     4,
		"requests_total/vivreal/missing_id": 2,
	})
}

// ---------------------------------------------------------------------------
// Metrics

// The queue's gauges (events by state, oldest pending age, pending bytes,
// paused) and counters (attempts by result, dead, enqueue and delivery
// latency) move with the events.
func TestIntegrationQueueMetrics(t *testing.T) {
	be := qiNewBackend(t, func(_ *http.Request, id string, n int) (int, http.Header) {
		if id == "evt_qm_dead" || n == 1 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("met", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 100ms", "max_attempts 2"))))
	c := itNewClient(t)
	before := qiMetrics(t)
	gauges := func(m map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for _, k := range []string{"queue_events/met/pending", "queue_events/met/in_flight", "queue_events/met/delivered",
			"queue_events/met/dead", "queue_paused/met", "queue_pending_bytes/met", "queue_oldest_pending_age_seconds/met"} {
			v, ok := m[k]
			if !ok {
				t.Fatalf("no series %s", k)
			}
			out[k] = v
		}
		return out
	}
	wantGauges := func(what string, m map[string]float64, want map[string]float64) {
		t.Helper()
		got := gauges(m)
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %v, want %v", what, k, got[k], w)
			}
		}
	}
	wantGauges("empty", before, map[string]float64{
		"queue_events/met/pending": 0, "queue_events/met/delivered": 0, "queue_events/met/dead": 0,
		"queue_paused/met": 0, "queue_pending_bytes/met": 0, "queue_oldest_pending_age_seconds/met": 0,
	})

	// paused: two events wait, and the oldest grows older
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/met/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: %d %s", st, raw)
	}
	a, b := itVivrealEvent("evt_qm_a", "collection.object.created", 700), itVivrealEvent("evt_qm_b", "collection.object.created", 900)
	qiMustQueue(t, c, "/hook", a)
	qiMustQueue(t, c, "/hook", b)
	waiting := qiMetrics(t)
	wantGauges("paused with 2", waiting, map[string]float64{
		"queue_events/met/pending": 2, "queue_events/met/in_flight": 0, "queue_events/met/delivered": 0,
		"queue_paused/met": 1, "queue_pending_bytes/met": float64(len(a) + len(b)),
	})
	age := waiting["queue_oldest_pending_age_seconds/met"]
	if age <= 0 {
		t.Errorf("oldest pending age %v with 2 events waiting, want > 0", age)
	}
	qiWait(t, "the oldest pending age to grow", func() bool {
		return qiMetrics(t)["queue_oldest_pending_age_seconds/met"] > age
	})

	// resumed: each fails once, then is delivered
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/met/resume", nil); st != http.StatusOK {
		t.Fatalf("resume: %d %s", st, raw)
	}
	qiWait(t, "both delivered", func() bool { return qiMetrics(t)["queue_events/met/delivered"] == 2 })
	done := qiMetrics(t)
	wantGauges("delivered", done, map[string]float64{
		"queue_events/met/pending": 0, "queue_events/met/in_flight": 0, "queue_events/met/delivered": 2,
		"queue_events/met/dead": 0, "queue_paused/met": 0, "queue_pending_bytes/met": 0,
	})
	if got := done["queue_oldest_pending_age_seconds/met"]; got != 0 {
		t.Errorf("oldest pending age %v with none waiting, want 0", got)
	}

	// one that never succeeds: dead after 2 attempts
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qm_dead", "collection.object.created", 100))
	// dead_total moves just after the commit that makes the event dead
	qiWait(t, "the dead event", func() bool {
		m := qiMetrics(t)
		return m["queue_events/met/dead"] == 1 && m["queue_dead_total/met"]-before["queue_dead_total/met"] == 1
	})
	after := qiMetrics(t)
	wantGauges("dead", after, map[string]float64{
		"queue_events/met/pending": 0, "queue_events/met/delivered": 2, "queue_events/met/dead": 1,
	})
	for key, want := range map[string]float64{
		"queue_attempts_total/met/5xx":       4, // a, b once each, the dead one twice
		"queue_attempts_total/met/delivered": 2,
		"queue_attempts_total/met/timeout":   0,
		"queue_dead_total/met":               1,
		"queue_enqueue_seconds_count/met":    3,
		"queue_delivery_seconds_count/met":   2,
	} {
		if got := after[key] - before[key]; got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Reloads

// qiLoad posts a Caddyfile to the admin /load; it returns the status and
// the error message, if any.
func qiLoad(t *testing.T, caddyfile string) (int, string) {
	t.Helper()
	return ddLoadCaddyfile(t, itGlobal+caddyfile)
}

// A config that fails to load (here: two handlers with one queue name, on
// the running config's file) leaves the running config's queue
// delivering: its events are still delivered.
func TestIntegrationQueueFailedReloadKeepsDelivering(t *testing.T) {
	be := qiNewBackend(t, nil)
	db := filepath.Join(t.TempDir(), "q.db")
	running := qiSite(qiHandle("/hook", "", qiQueue("keep", db, be, "retry 100ms")))
	itStart(t, running)
	c := itNewClient(t)
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qk_1", "collection.object.created", 100))
	qiWaitState(t, "keep", "evt_qk_1", "delivered")

	bad := qiSite(
		qiHandle("/hook", "", qiQueue("keep", db, be, "retry 100ms")),
		qiHandle("/other", "", qiQueue("keep", db, be, "retry 100ms")),
	)
	status, msg := qiLoad(t, bad)
	if status == http.StatusOK {
		t.Fatal("a config with two handlers of one queue name loaded")
	}
	if !strings.Contains(msg, `two handlers of this config use the queue name "keep"`) {
		t.Errorf("load error %q does not name the queue", msg)
	}
	// the running config still stores and delivers
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qk_2", "collection.object.created", 100))
	qiWaitState(t, "keep", "evt_qk_2", "delivered")
	// the counters follow the file a moment after the commit: poll
	qiWait(t, "both events counted as delivered", func() bool {
		q := qiStatsOf(t, "keep")
		return q["delivered"] == 2.0 && q["pending"] == 0.0
	})
}

// Pending events survive reloads (the file is closed when no config uses
// it and opened again) and a paused queue stays paused; the new config
// delivers them, before any new request arrives.
func TestIntegrationQueueSurvivesReload(t *testing.T) {
	be := qiNewBackend(t, nil)
	db := filepath.Join(t.TempDir(), "q.db")
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("kept", db, be, "retry 100ms"))))
	c := itNewClient(t)
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/kept/pause", nil); st != http.StatusOK {
		t.Fatalf("pause: %d %s", st, raw)
	}
	bodies := map[string][]byte{}
	for _, id := range []string{"evt_qs_1", "evt_qs_2"} {
		bodies[id] = itVivrealEvent(id, "collection.object.created", 1000)
		qiMustQueue(t, c, "/hook", bodies[id])
	}
	// a config without the queue: the file is closed
	itStart(t, "\nhttp://localhost:9080 {\n\trespond \"no queue\"\n}\n")
	if st, _ := qiAdmin(t, http.MethodGet, "/webhook_verify/queues/kept/events", nil); st != http.StatusNotFound {
		t.Errorf("the queue is still served without a config using it: %d", st)
	}
	// the queue again, on another route, with another deliver block
	itStart(t, qiSite(qiHandle("/moved", "", qiQueue("kept", db, be, "retry 200ms", "concurrency 1"))))
	if q := qiStatsOf(t, "kept"); q["paused"] != true || q["pending"] != 2.0 {
		t.Fatalf("after the reloads: %v, want paused with 2 pending", q)
	}
	if st, raw := qiAdmin(t, http.MethodPost, "/webhook_verify/queues/kept/resume", nil); st != http.StatusOK {
		t.Fatalf("resume: %d %s", st, raw)
	}
	for id, body := range bodies {
		qiWaitState(t, "kept", id, "delivered")
		hits := be.of(id)
		if len(hits) != 1 || !bytes.Equal(hits[0].body, body) || hits[0].path != "/hook" {
			t.Errorf("%s: %d deliveries, want 1 of the stored request (POST /hook, its body)", id, len(hits))
		}
	}
	// and it still dedupes the ids it stored before
	if r := qiSend(t, c, "/moved", bodies["evt_qs_1"]); string(r.body) != qiDuplicate {
		t.Errorf("an id stored before the reloads: %d %q, want a duplicate", r.status, r.body)
	}
}

// ---------------------------------------------------------------------------
// caddy webhook queue

// qiCmd runs `caddy webhook <args>` (cmdWebhook, with the flags the
// command defines) against the in-process Caddy's admin endpoint, and
// returns what it printed.
func qiCmd(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	def, ok := caddycmd.Commands()["webhook"]
	if !ok {
		t.Fatal("no webhook command registered")
	}
	cmd := &cobra.Command{Use: def.Name}
	def.CobraFunc(cmd)
	if err := cmd.Flags().Parse(append(args, "--address", "localhost:2999")); err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		out <- b
	}()
	code, cerr := webhookverify.CmdWebhook(caddycmd.Flags{FlagSet: cmd.Flags()})
	os.Stdout = stdout
	_ = w.Close()
	printed := <-out
	_ = r.Close()
	return string(printed), code, cerr
}

func qiCmdOK(t *testing.T, args ...string) string {
	t.Helper()
	out, code, err := qiCmd(t, args...)
	if code != 0 || err != nil {
		t.Fatalf("caddy webhook %s: exit %d, %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

func TestIntegrationQueueCommand(t *testing.T) {
	var healthy atomic.Bool
	be := qiNewBackend(t, func(_ *http.Request, id string, _ int) (int, http.Header) {
		if id == "evt_qc_dead" && !healthy.Load() {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("cmdq", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 100ms", "max_attempts 2"))))
	c := itNewClient(t)
	body := itVivrealEvent("evt_qc_dead", "collection.object.deleted", 300)
	qiMustQueue(t, c, "/hook", body)
	qiMustQueue(t, c, "/hook", itVivrealEvent("evt_qc_ok", "collection.object.created", 100))
	qiWaitState(t, "cmdq", "evt_qc_ok", "delivered")
	qiWaitState(t, "cmdq", "evt_qc_dead", "dead")

	// list
	var queues []map[string]any
	out := qiCmdOK(t, "queue", "list")
	if err := json.Unmarshal([]byte(out), &queues); err != nil {
		t.Fatalf("list printed no JSON: %v\n%s", err, out)
	}
	if len(queues) != 1 || queues[0]["name"] != "cmdq" || queues[0]["dead"] != 1.0 || queues[0]["delivered"] != 1.0 {
		t.Errorf("list: %s", out)
	}

	// events --state dead
	var evs []qiEv
	out = qiCmdOK(t, "queue", "events", "cmdq", "--state", "dead")
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("events printed no JSON: %v\n%s", err, out)
	}
	if len(evs) != 1 || evs[0].ID != "evt_qc_dead" || evs[0].State != "dead" || evs[0].Attempts != 2 {
		t.Errorf("events --state dead: %s", out)
	}
	out = qiCmdOK(t, "queue", "events", "cmdq", "--limit", "1")
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs) != 1 || evs[0].ID != "evt_qc_dead" {
		t.Errorf("events --limit 1: %v\n%s", err, out)
	}

	// show, with and without the body
	out = qiCmdOK(t, "queue", "show", "cmdq", "evt_qc_dead")
	if !strings.Contains(out, `"id": "evt_qc_dead"`) || strings.Contains(out, `"body"`) || strings.Contains(out, "--- body ---") {
		t.Errorf("show without --body:\n%s", out)
	}
	out = qiCmdOK(t, "queue", "show", "cmdq", "evt_qc_dead", "--body")
	meta, raw, ok := strings.Cut(out, "\n--- body ---\n")
	if !ok || raw != string(body)+"\n" {
		t.Errorf("show --body: the body as text after the metadata, got:\n%s", out)
	}
	var shown qiEv
	if err := json.Unmarshal([]byte(meta), &shown); err != nil || shown.ID != "evt_qc_dead" || shown.State != "dead" || shown.Body != nil {
		t.Errorf("show --body: metadata %v\n%s", err, meta)
	}

	// replay
	healthy.Store(true)
	out = qiCmdOK(t, "queue", "replay", "cmdq", "evt_qc_dead")
	var replayed qiEv
	if err := json.Unmarshal([]byte(out), &replayed); err != nil || replayed.State != "pending" || replayed.Attempts != 0 {
		t.Errorf("replay: %v\n%s", err, out)
	}
	qiWaitState(t, "cmdq", "evt_qc_dead", "delivered")
	if hits := be.of("evt_qc_dead"); len(hits) != 3 || hits[2].status != 200 {
		t.Errorf("after the replay: %d attempts, want 3, the last delivered", len(hits))
	}

	// pause, resume, discard
	if out := qiCmdOK(t, "queue", "pause", "cmdq"); !strings.Contains(out, `"paused": true`) {
		t.Errorf("pause:\n%s", out)
	}
	if out := qiCmdOK(t, "queue", "resume", "cmdq"); !strings.Contains(out, `"paused": false`) {
		t.Errorf("resume:\n%s", out)
	}
	if out := qiCmdOK(t, "queue", "discard", "cmdq", "evt_qc_ok"); !strings.Contains(out, `"discarded": true`) {
		t.Errorf("discard:\n%s", out)
	}
	if _, _, ok := qiEvent(t, "cmdq", "evt_qc_ok", false); ok {
		t.Error("the discarded event is still there")
	}

	// errors: exit 1 and a message
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "show", "cmdq", "evt_qc_none"}, "404"},
		{[]string{"queue", "replay", "cmdq", "evt_qc_dead"}, "409"}, // delivered: no body to replay
		{[]string{"queue", "events", "nosuchqueue"}, "404"},
		{[]string{"queue", "events", "cmdq", "--state", "lost"}, "400"},
		{[]string{"queue", "show", "cmdq"}, "usage: caddy webhook queue show <queue> <id>"},
		{[]string{"queue", "frobnicate"}, `unknown queue command "frobnicate"`},
		{[]string{"queue"}, "usage: caddy webhook queue"},
		{[]string{"list"}, "usage: caddy webhook queue"},
	} {
		out, code, err := qiCmd(t, tc.args...)
		if code != 1 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("caddy webhook %s: exit %d, %v; want exit 1 with %q", strings.Join(tc.args, " "), code, err, tc.want)
		}
		if out != "" {
			t.Errorf("caddy webhook %s printed %q on failure", strings.Join(tc.args, " "), out)
		}
	}
}

// TestIntegrationQueueBreaker: a backend that keeps answering 503 opens
// the breaker after breakerAfter attempts in a row. From then on one
// attempt at a time is made, each at least the probe interval (the first
// retry gap, here 200ms) after the one before, so a backlog does not
// hammer a dead backend; the stats say so. The first delivered attempt
// closes it, and the whole backlog is delivered, each event once.
func TestIntegrationQueueBreaker(t *testing.T) {
	const gap = 200 * time.Millisecond
	var up atomic.Bool
	var running, maxRunning atomic.Int32
	var probing atomic.Bool
	be := qiNewBackend(t, func(_ *http.Request, _ string, _ int) (int, http.Header) {
		n := running.Add(1)
		defer running.Add(-1)
		if probing.Load() && n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	itStart(t, qiSite(qiHandle("/hook", "", qiQueue("breaker", filepath.Join(t.TempDir(), "q.db"), be,
		"retry 200ms", "max_attempts 100000", "concurrency 4"))))
	c := itNewClient(t)
	const n = 40
	for i := range n {
		qiMustQueue(t, c, "/hook", itVivrealEvent(fmt.Sprintf("evt_br_%02d", i), "collection.object.created", 500))
	}
	qiWait(t, "the breaker to open", func() bool { return qiStatsOf(t, "breaker")["backend_unavailable"] == true })
	probing.Store(true)

	// ten more attempts: one at a time, each at least the gap after the
	// one before (a lower bound: a busy machine only makes them later)
	start := len(be.all())
	qiWait(t, "ten probes", func() bool { return len(be.all()) >= start+11 })
	hits := be.all()[start : start+11]
	for i := 1; i < len(hits); i++ {
		if d := hits[i].at.Sub(hits[i-1].at); d < gap*9/10 {
			t.Errorf("probe %d started %v after the one before, under the %v pace", i, d, gap)
		}
	}
	if m := maxRunning.Load(); m > 1 {
		t.Errorf("%d attempts ran at once while the backend was down, want 1", m)
	}

	up.Store(true)
	qiWait(t, "the backlog delivered", func() bool {
		s := qiStatsOf(t, "breaker")
		return s["pending"] == float64(0) && s["delivered"] == float64(n)
	})
	if s := qiStatsOf(t, "breaker"); s["backend_unavailable"] != false {
		t.Errorf("stats after recovery: %v", s)
	}
	delivered := map[string]int{}
	for _, h := range be.all() {
		if h.status == http.StatusOK {
			delivered[h.id]++
		}
	}
	for i := range n {
		if id := fmt.Sprintf("evt_br_%02d", i); delivered[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, delivered[id])
		}
	}
}
