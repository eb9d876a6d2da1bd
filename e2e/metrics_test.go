package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// metricsConfig: one site, a route per case. label is a harmless
// difference for the reload (a response header on /viv).
func metricsConfig(admin, port, redisPort int, up, label string) string {
	return globals(admin, "") + fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	handle /healthz {
		respond "ok" 200
	}
	handle /viv {
		header X-Config %[5]s
		webhook_verify vivreal %[3]s {
			max_body_size 4KiB
		}
		reverse_proxy %[2]s
	}
	handle /vev {
		webhook_verify vev %[6]s {
			bearer_token %[7]s
		}
		reverse_proxy %[2]s
	}
	handle /dd {
		webhook_verify vivreal %[3]s {
			dedupe {
				inflight_ttl 30s
			}
		}
		reverse_proxy %[2]s
	}
	handle /rd {
		webhook_verify vivreal %[3]s {
			dedupe {
				store redis redis://127.0.0.1:%[4]d/0
			}
		}
		reverse_proxy %[2]s
	}
	handle /bud {
		webhook_verify vivreal %[3]s {
			max_body_size 1KiB
			max_inflight_bytes 1KiB
		}
		reverse_proxy %[2]s
	}
}
`, port, up, vivSecret, redisPort, label, vevSecret, vevToken)
}

// TestMetrics sends a known mix of requests and checks the exact counts on
// the admin endpoint's /metrics, then reloads the config twice and checks
// that nothing panics and nothing is counted twice.
func TestMetrics(t *testing.T) {
	needCaddy(t)
	up := newUpstream(t)
	admin, port, redisPort := freePort(t), freePort(t), freePort(t) // nothing listens on redisPort
	cfg := metricsConfig(admin, port, redisPort, up.addr, "v1")
	c := startCaddy(t, admin, port, cfg)
	client := newClient(15 * time.Second)

	// ids used, to check that no label carries one
	var ids []string
	id := func(s string) string { ids = append(ids, s); return s }

	// the bodies the handler read and verified, by provider: the
	// histograms observe each of them once
	observed := map[string][]int{}
	want := map[string]map[string]float64{"vivreal": {}, "vev": {}}

	expect := func(what string, resp *http.Response, body []byte, err error, status int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d (%s)", what, resp.StatusCode, status, body)
		}
	}

	// /viv: 3 verified
	for i := range 3 {
		b := event(id(fmt.Sprintf("m-viv-ok-%d", i)), 100+i*700)
		resp, rb, err := post(client, c.url("/viv"), b, signViv(vivSecret, b))
		expect("verified", resp, rb, err, 200)
		observed["vivreal"] = append(observed["vivreal"], len(b))
		want["vivreal"]["verified"]++
	}
	// 2 missing signatures, one of them chunked (drained before the 401)
	{
		b := event(id("m-viv-nosig-0"), 200)
		resp, rb, err := post(client, c.url("/viv"), b, "")
		expect("missing signature", resp, rb, err, 401)
		req, _ := http.NewRequest(http.MethodPost, c.url("/viv"), struct{ *bytes.Reader }{bytes.NewReader(event(id("m-viv-nosig-1"), 300))})
		req.TransferEncoding = []string{"chunked"}
		resp, rb, err = do(client, req)
		expect("missing signature, chunked", resp, rb, err, 401)
		want["vivreal"]["missing_signature"] += 2
	}
	// 1 malformed
	{
		b := event(id("m-viv-malformed"), 200)
		resp, rb, err := post(client, c.url("/viv"), b, "sha256=zz")
		expect("malformed", resp, rb, err, 401)
		want["vivreal"]["malformed_signature"]++
	}
	// 2 bad signatures (well-formed, wrong secret): read, then refused
	for i := range 2 {
		b := event(id(fmt.Sprintf("m-viv-forged-%d", i)), 500)
		resp, rb, err := post(client, c.url("/viv"), b, signViv("not-the-secret", b))
		expect("bad signature", resp, rb, err, 401)
		want["vivreal"]["bad_signature"]++
	}
	// 1 too large: a Content-Length over max_body_size 4KiB
	{
		b := event(id("m-viv-large"), 5000)
		resp, rb, err := post(client, c.url("/viv"), b, signViv(vivSecret, b))
		expect("too large", resp, rb, err, 413)
		want["vivreal"]["too_large"]++
	}
	// 2 methods not allowed
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		req, _ := http.NewRequest(m, c.url("/viv"), nil)
		resp, rb, err := do(client, req)
		expect(m, resp, rb, err, 405)
		if a := resp.Header.Get("Allow"); a != "POST" {
			t.Errorf("%s: Allow %q", m, a)
		}
		want["vivreal"]["method_not_allowed"]++
	}

	// /vev with a bearer token: 2 verified, 1 bad credentials, 1 bad signature
	vevPost := func(b []byte, sig, token string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodPost, c.url("/vev"), bytes.NewReader(b))
		req.Header.Set("X-Vev-Signature", sig)
		req.Header.Set("Authorization", "Bearer "+token)
		return do(client, req)
	}
	for i := range 2 {
		b := vevEvent(id(fmt.Sprintf("m-vev-ok-%d", i)))
		resp, rb, err := vevPost(b, signVev(vevSecret, b), vevToken)
		expect("vev verified", resp, rb, err, 200)
		observed["vev"] = append(observed["vev"], len(b))
		want["vev"]["verified"]++
	}
	{
		b := vevEvent(id("m-vev-badcreds"))
		resp, rb, err := vevPost(b, signVev(vevSecret, b), "wrong-token")
		expect("vev bad credentials", resp, rb, err, 401)
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("bad credentials: no WWW-Authenticate")
		}
		want["vev"]["bad_credentials"]++
		b = vevEvent(id("m-vev-forged"))
		resp, rb, err = vevPost(b, signVev("not-the-secret", b), vevToken)
		expect("vev bad signature", resp, rb, err, 401)
		want["vev"]["bad_signature"]++
	}

	// /dd, dedupe in memory: X verified, X again a duplicate; Y held by a
	// slow upstream while its copy comes in: in flight (409)
	{
		b := event(id("m-dd-x"), 300)
		resp, rb, err := post(client, c.url("/dd"), b, signViv(vivSecret, b))
		expect("dedupe first", resp, rb, err, 200)
		resp, rb, err = post(client, c.url("/dd"), b, signViv(vivSecret, b))
		expect("dedupe duplicate", resp, rb, err, 200)
		if !strings.Contains(string(rb), `"duplicate":true`) {
			t.Errorf("duplicate answer: %s", rb)
		}
		if r, a := up.counts("m-dd-x"); r != 1 || a != 1 {
			t.Errorf("m-dd-x reached the upstream %d times (accepted %d), want 1", r, a)
		}
		observed["vivreal"] = append(observed["vivreal"], len(b), len(b))
		want["vivreal"]["verified"]++
		want["vivreal"]["duplicate"]++

		y := event(id("m-dd-y"), 400)
		var wg sync.WaitGroup
		var firstStatus int
		var firstErr error
		release := up.hold("m-dd-y") // in flight until the 409 is in
		wg.Go(func() {
			resp, _, err := post(client, c.url("/dd"), y, signViv(vivSecret, y), "X-Test-Hold", "m-dd-y")
			firstErr = err
			if err == nil {
				firstStatus = resp.StatusCode
			}
		})
		up.waitReceived("m-dd-y", 1, 10*time.Second)
		resp, rb, err = post(client, c.url("/dd"), y, signViv(vivSecret, y))
		expect("dedupe in flight", resp, rb, err, 409)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("409 without Retry-After")
		}
		release()
		wg.Wait()
		if firstErr != nil || firstStatus != 200 {
			t.Fatalf("the slow first delivery of m-dd-y: %d, %v", firstStatus, firstErr)
		}
		observed["vivreal"] = append(observed["vivreal"], len(y), len(y))
		want["vivreal"]["verified"]++
		want["vivreal"]["in_flight"]++
	}

	// /rd, dedupe in a Redis nobody listens on (Caddy started anyway):
	// 503 with Retry-After, nothing forwarded
	{
		b := event(id("m-rd-z"), 250)
		resp, rb, err := post(client, c.url("/rd"), b, signViv(vivSecret, b))
		expect("store error", resp, rb, err, 503)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("store error: 503 without Retry-After")
		}
		if r, _ := up.counts("m-rd-z"); r != 0 {
			t.Errorf("m-rd-z reached the upstream %d times with the store down", r)
		}
		observed["vivreal"] = append(observed["vivreal"], len(b))
		want["vivreal"]["store_error"]++
	}

	// /bud, max_inflight_bytes = max_body_size = 1KiB: A declares 1000
	// bytes and stalls after 10; B, declaring 1000 while A holds its
	// reservation, is over budget; then A completes and is verified
	{
		a := event(id("m-bud-a"), 1000)
		conn := rawPost(t, port, "/bud", map[string]string{
			"Content-Length":      "1000",
			"Content-Type":        "application/json",
			"X-Vivreal-Signature": signViv(vivSecret, a),
		}, a[:10])
		c.waitBuffered("vivreal", 10*time.Second, "A's reservation", func(v float64) bool { return v == 1000 })

		b := event(id("m-bud-b"), 1000)
		resp, rb, err := post(client, c.url("/bud"), b, signViv(vivSecret, b))
		expect("over budget", resp, rb, err, 503)
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("over budget: 503 without Retry-After")
		}
		want["vivreal"]["over_budget"]++

		if _, err := conn.Write(a[10:]); err != nil {
			t.Fatal(err)
		}
		aresp, arb, err := readResponse(conn, 10*time.Second)
		expect("A, completed", aresp, arb, err, 200)
		if got := up.body("m-bud-a"); !bytes.Equal(got, a) {
			t.Errorf("upstream got A as %d bytes, want the 1000 sent", len(got))
		}
		observed["vivreal"] = append(observed["vivreal"], len(a))
		want["vivreal"]["verified"]++
	}

	// all requests are over: every reservation is back
	c.waitBuffered("vivreal", 5*time.Second, "after the mix", func(v float64) bool { return v == 0 })
	m := c.scrape()
	for provider, outcomes := range want {
		for _, o := range allOutcomes {
			if got := m.requests(t, provider, o); got != outcomes[o] {
				t.Errorf("%s{provider=%q,outcome=%q} = %v, want %v", mRequests, provider, o, got, outcomes[o])
			}
		}
		n, sum := len(observed[provider]), 0
		for _, s := range observed[provider] {
			sum += s
		}
		if got := m.must(t, mBytes+"_count", "provider", provider); got != float64(n) {
			t.Errorf("%s_count{provider=%q} = %v, want %d (verified + duplicate + in_flight + store_error)", mBytes, provider, got, n)
		}
		if got := m.must(t, mBytes+"_sum", "provider", provider); got != float64(sum) {
			t.Errorf("%s_sum{provider=%q} = %v, want %d", mBytes, provider, got, sum)
		}
		if got := m.must(t, mDuration+"_count", "provider", provider); got != float64(n) {
			t.Errorf("%s_count{provider=%q} = %v, want %d", mDuration, provider, got, n)
		}
		if got := m.must(t, mDuration+"_sum", "provider", provider); got <= 0 {
			t.Errorf("%s_sum{provider=%q} = %v, want > 0", mDuration, provider, got)
		}
		if got := m.must(t, mBytes+"_bucket", "provider", provider, "le", "+Inf"); got != float64(n) {
			t.Errorf("%s_bucket{le=+Inf,provider=%q} = %v, want %d", mBytes, provider, got, n)
		}
	}
	checkLabels(t, m, ids)
	t.Logf("vivreal: %v; bodies observed: %v", want["vivreal"], observed["vivreal"])

	// reload twice: the same config (forced) and one with another header;
	// nothing panics, Caddy serves, and one more verified request counts 1
	for i, next := range []struct {
		label string
		force bool
	}{{"v1", true}, {"v2", false}} {
		before := c.scrape().requests(t, "vivreal", "verified")
		out, err := c.reload(metricsConfig(admin, port, redisPort, up.addr, next.label), next.force)
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i+1, err, out)
		}
		if !c.alive() {
			t.Fatalf("caddy exited after reload %d", i+1)
		}
		c.waitReady(10 * time.Second)
		// the old server closes its idle keep-alive connections as it
		// shuts down: a POST on one of them would meet EOF (the client
		// does not retry a POST)
		client.CloseIdleConnections()
		b := event(id(fmt.Sprintf("m-reload-%d", i)), 150)
		resp, rb, err := post(client, c.url("/viv"), b, signViv(vivSecret, b))
		expect(fmt.Sprintf("verified after reload %d", i+1), resp, rb, err, 200)
		if h := resp.Header.Get("X-Config"); h != next.label {
			t.Errorf("after reload %d: X-Config %q, want %q (the new config is not in use)", i+1, h, next.label)
		}
		m := c.scrape()
		after := m.requests(t, "vivreal", "verified")
		switch after {
		case before + 1:
		case 1:
			t.Logf("reload %d: counters restarted (allowed by the design)", i+1)
		default:
			t.Errorf("reload %d: verified went from %v to %v after one request, want %v (or 1 after a reset)", i+1, before, after, before+1)
		}
		checkLabels(t, m, ids)
	}
	c.assertNoPanic()
}

var allOutcomes = []string{
	"verified", "missing_signature", "malformed_signature", "bad_signature",
	"bad_credentials", "too_large", "method_not_allowed", "over_budget",
	"read_error", "timeout", "provider_error", "missing_id", "duplicate", "in_flight", "store_error",
	"queued", "queue_full", "queue_no_space", // no route here has a queue: all 0
}

// checkLabels: the module's series have bounded labels only, and none of
// them carries an event id.
func checkLabels(t *testing.T, m metrics, ids []string) {
	t.Helper()
	n := 0
	for _, s := range m {
		if !strings.HasPrefix(s.name, "caddy_webhook_verify_") {
			continue
		}
		n++
		for k, v := range s.labels {
			if slices.Contains(ids, v) {
				t.Errorf("%s has an event id as label %s=%q", s.name, k, v)
			}
			switch k {
			case "provider":
				if v != "vivreal" && v != "vev" {
					t.Errorf("%s: provider %q", s.name, v)
				}
			case "outcome":
				if !slices.Contains(allOutcomes, v) {
					t.Errorf("%s: outcome %q", s.name, v)
				}
			case "form":
				// caddy_webhook_verify_signed_form_total: the form that verified
				if v != "raw" && v != "stringify" {
					t.Errorf("%s: form %q", s.name, v)
				}
			case "key":
				// caddy_webhook_verify_key_matches_total: a configured secret's position
				if v != "1" { // every route here has one secret
					t.Errorf("%s: key %q", s.name, v)
				}
			case "le":
			default:
				t.Errorf("%s: unexpected label %s=%q", s.name, k, v)
			}
		}
	}
	if n == 0 {
		t.Error("no caddy_webhook_verify_* series on /metrics")
	}
}
