package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// TestMemoryBudgetStorm: 200 concurrent forged 5 MiB bodies against a
// 24 MiB max_inflight_bytes. Each is refused (401 once read, or 503 over
// the budget), Caddy's RSS stays bounded by the budget, and a valid event
// sent during the storm still gets through.
func TestMemoryBudgetStorm(t *testing.T) {
	needCaddy(t)
	up := newUpstream(t)
	admin, port := freePort(t), freePort(t)
	c := startCaddy(t, admin, port, globals(admin, "")+fmt.Sprintf(`
http://127.0.0.1:%d {
	handle /healthz {
		respond "ok" 200
	}
	handle /storm {
		webhook_verify vivreal %s {
			max_body_size 6MiB
			max_inflight_bytes 24MiB
		}
		reverse_proxy %s
	}
}
`, port, vivSecret, up.addr))

	// warm up, then the baseline
	warm := newClient(10 * time.Second)
	for i := range 3 {
		b := event(fmt.Sprintf("storm-warm-%d", i), 1000)
		resp, _, err := post(warm, c.url("/storm"), b, signViv(vivSecret, b))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("warm-up: %v %v", resp, err)
		}
	}
	baseRSS, startHWM, err := c.memStatus()
	if err != nil {
		t.Fatal(err)
	}

	// sample RSS while the storm runs
	stopSampling := make(chan struct{})
	var peakRSS atomic.Int64
	var samples atomic.Int64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, _, err := c.memStatus(); err == nil {
				samples.Add(1)
				if rss > peakRSS.Load() {
					peakRSS.Store(rss)
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	})

	const n = 200
	forged := bytes.Repeat([]byte("f"), 5*mib)
	forgedSig := signViv("not-the-secret", forged)

	// four kinds, 50 each: Content-Length or chunked, each with and
	// without Expect: 100-continue (with it, a refusal before the body is
	// read reaches the sender before it sends the body)
	kinds := []string{"cl", "chunked", "cl+expect", "chunked+expect"}
	type result struct {
		kind       string
		status     int
		retryAfter string
		err        error
	}
	results := make([]result, n)
	stormClient := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, DisableCompression: true, ExpectContinueTimeout: 30 * time.Second}}
	start := make(chan struct{})
	var storm sync.WaitGroup
	var done atomic.Int64
	for i := range n {
		storm.Go(func() {
			defer done.Add(1)
			kind := kinds[i%len(kinds)]
			var body io.Reader = bytes.NewReader(forged)
			chunked := strings.HasPrefix(kind, "chunked")
			if chunked {
				body = struct{ io.Reader }{body} // no length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, c.url("/storm"), body)
			req.Header.Set("X-Vivreal-Signature", forgedSig)
			if chunked {
				req.TransferEncoding = []string{"chunked"}
			} else {
				req.ContentLength = int64(len(forged))
			}
			if strings.HasSuffix(kind, "+expect") {
				req.Header.Set("Expect", "100-continue")
			}
			<-start
			resp, _, err := do(stormClient, req)
			results[i] = result{kind: kind, err: err}
			if err == nil {
				results[i].status = resp.StatusCode
				results[i].retryAfter = resp.Header.Get("Retry-After")
			}
		})
	}
	stormStart := time.Now()
	close(start)

	// a valid event during the storm: 503 is allowed under load (the
	// sender retries), but it must pass within a bound, generous because
	// on a busy machine the storm itself may take that long: what it
	// catches is a budget that is never given back
	valid := event("storm-valid", 2000)
	var validStatus []int
	var validErrs []error
	validOK := false
	var validAt time.Duration
	var validDuringStorm bool
	vclient := newClient(time.Minute)
	time.Sleep(50 * time.Millisecond) // not synchronisation: only for the log line (validDuringStorm)
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		resp, _, err := post(vclient, c.url("/storm"), valid, signViv(vivSecret, valid))
		if err != nil {
			validErrs = append(validErrs, err)
		} else {
			validStatus = append(validStatus, resp.StatusCode)
			if resp.StatusCode == 200 {
				validOK = true
				validAt = time.Since(stormStart)
				validDuringStorm = done.Load() < n
				break
			}
			if resp.StatusCode != 503 {
				t.Errorf("the valid event got %d during the storm", resp.StatusCode)
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	storm.Wait()
	stormTime := time.Since(stormStart)
	close(stopSampling)
	sampler.Wait()
	_, hwm, err := c.memStatus()
	if err != nil {
		t.Fatal(err)
	}

	counts := map[string]int{}
	var n401, n503, nErr int
	var errs []string
	for i, r := range results {
		switch {
		case r.err != nil:
			nErr++
			counts[r.kind+" conn-error"]++
			if len(errs) < 3 {
				errs = append(errs, fmt.Sprintf("#%d (%s): %v", i, r.kind, r.err))
			}
		case r.status == 401:
			n401++
			counts[r.kind+" 401"]++
		case r.status == 503:
			n503++
			counts[r.kind+" 503"]++
			if r.retryAfter == "" {
				t.Errorf("#%d (%s): 503 without Retry-After", i, r.kind)
			}
		default:
			counts[r.kind+" "+strconv.Itoa(r.status)]++
			t.Errorf("#%d (%s): status %d, want 401 or 503", i, r.kind, r.status)
		}
	}
	t.Logf("storm: %d forged 5 MiB bodies in %s: 401: %d, 503: %d, connection errors: %d; by kind: %v",
		n, stormTime.Round(time.Millisecond), n401, n503, nErr, counts)
	if nErr > 0 {
		t.Logf("connection errors (allowed: a refusal before the body is read may reach the sender as a closed connection), e.g. %v", errs)
	}
	// a sender that waits for 100 Continue is refused before it sends
	// the body: it always sees the 503 itself
	if ce := counts["cl+expect conn-error"]; ce > 0 {
		t.Errorf("%d Content-Length requests with Expect: 100-continue saw a connection error, not a 401/503", ce)
	}
	if n503 == 0 {
		t.Error("no 503: the budget was never reached")
	}
	if n401 == 0 {
		t.Error("no 401: no forged body was read and verified")
	}

	t.Logf("valid event during the storm: ok=%v after %s (storm still running: %v), statuses %v, errors %v",
		validOK, validAt.Round(time.Millisecond), validDuringStorm, validStatus, validErrs)
	if !validOK {
		t.Error("the valid event never passed within 3 minutes of the storm's start")
	} else if r, a := up.counts("storm-valid"); r != 1 || a != 1 {
		t.Errorf("the valid event reached the upstream %d times (accepted %d), want 1", r, a)
	}
	if got := up.totalReceived(); got != 4 {
		t.Errorf("the upstream received %d requests, want 4 (3 warm-up + the valid event): forged bodies got through", got)
	}

	// memory: the budget lets at most 24 MiB of body bytes be held at
	// once. The buffers holding them are larger: a declared 5 MiB goes in
	// a 6 MiB size class; a chunked body grows by doubling (32 KiB .. 4 MiB,
	// then 8 MiB, the old buffer alive during the copy), up to ~3x the
	// bytes reserved: ~72 MiB live at worst. The free lists may keep
	// 32 MiB more, and the Go GC lets the heap grow to about twice the
	// live heap before it collects: ~200 MiB over the baseline at worst,
	// so the bound is baseline + 24 MiB budget + 176 MiB slack. (Measured:
	// 70-125 MiB over the baseline.) Without the budget the 200 bodies,
	// all in flight at once, would take 1-1.6 GiB.
	//
	// This bound only catches a missing budget: a budget 5-7 times too
	// loose would pass it. The real weight is carried by the exact counts
	// below: every forged request is refused once, as over_budget (503, or
	// a connection closed before the body was read) or bad_signature (401,
	// its body read under the budget), the verified count is exact, and
	// every reservation is given back (buffered_bytes returns to 0).
	const slack = 176 * mib
	bound := baseRSS + 24*mib + slack
	peak := max(peakRSS.Load(), hwm)
	t.Logf("Caddy RSS: baseline %.1f MiB (start-up HWM %.1f MiB), storm peak sampled %.1f MiB (%d samples), VmHWM after %.1f MiB (+%.1f MiB), bound %.1f MiB",
		mb(baseRSS), mb(startHWM), mb(peakRSS.Load()), samples.Load(), mb(hwm), mb(hwm-baseRSS), mb(bound))
	if peak > bound {
		t.Errorf("Caddy's peak RSS %.1f MiB is over the bound %.1f MiB (baseline %.1f MiB + 24 MiB budget + %d MiB slack)",
			mb(peak), mb(bound), mb(baseRSS), slack/mib)
	}

	// every reservation is returned, every request counted once
	c.waitBuffered("vivreal", time.Minute, "after the storm", func(v float64) bool { return v == 0 })
	m := c.scrape()
	// the valid event may itself have been refused with 503 before it
	// passed: those refusals are over_budget too
	valid503 := 0
	for _, st := range validStatus {
		if st == http.StatusServiceUnavailable {
			valid503++
		}
	}
	over, bad := m.requests(t, "vivreal", "over_budget")-float64(valid503), m.requests(t, "vivreal", "bad_signature")
	t.Logf("counters: over_budget %v, bad_signature %v, read_error %v", over, bad, m.requests(t, "vivreal", "read_error"))
	if over+bad != n {
		t.Errorf("over_budget %v + bad_signature %v = %v, want %d (each forged request once)", over, bad, over+bad, n)
	}
	if got, want := m.requests(t, "vivreal", "verified"), 4.0; got != want {
		t.Errorf("verified = %v, want %v (3 warm-up + the valid event)", got, want)
	}
	// each 401 is a body read and refused; every connection error was a
	// counted over_budget refusal, never anything else
	if int(bad) != n401 {
		t.Errorf("bad_signature = %v, but %d answers were 401", bad, n401)
	}
	if int(over) != n503+nErr {
		t.Errorf("over_budget = %v, want the %d 503s + %d connection errors", over, n503, nErr)
	}
	c.assertNoPanic()
}

func mb(n int64) float64 { return float64(n) / mib }

// TestStalledClient: a client that stalls mid-body is dropped when the
// server's read_body timeout fires; its reservation is returned, nothing
// reaches the upstream, and the next request passes.
func TestStalledClient(t *testing.T) {
	needCaddy(t)
	up := newUpstream(t)
	admin, port := freePort(t), freePort(t)
	// the reservation is observed while the client stalls, so the stall
	// (read_body) is long enough for a scrape on a busy machine
	const readBody = 5 * time.Second
	c := startCaddy(t, admin, port, globals(admin, fmt.Sprintf(`	servers {
		timeouts {
			read_body %s
		}
	}`, readBody))+fmt.Sprintf(`
http://127.0.0.1:%d {
	handle /healthz {
		respond "ok" 200
	}
	handle /hook {
		webhook_verify vivreal %s
		reverse_proxy %s
	}
}
`, port, vivSecret, up.addr))

	for _, chunked := range []bool{false, true} {
		name := "content-length"
		if chunked {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			id := "stall-" + name
			body := event(id, 100000)
			hdr := map[string]string{
				"Content-Type":        "application/json",
				"X-Vivreal-Signature": signViv(vivSecret, body),
			}
			first := body[:1000]
			if chunked {
				hdr["Transfer-Encoding"] = "chunked"
				first = append([]byte(fmt.Sprintf("%x\r\n", 1000)), first...)
				first = append(first, "\r\n"...)
			} else {
				hdr["Content-Length"] = strconv.Itoa(len(body))
			}
			timeoutsBefore := c.scrape().requests(t, "vivreal", "timeout")
			sent := time.Now()
			conn := rawPost(t, port, "/hook", hdr, first)

			// the handler holds a reservation while the client stalls
			// (until read_body fires: the longest one can wait)
			held := c.waitBuffered("vivreal", readBody, "while stalled", func(v float64) bool { return v > 0 })
			if !chunked && held != float64(len(body)) {
				t.Errorf("reserved %v while stalled, want the declared %d", held, len(body))
			}

			// the server drops the connection once read_body fires; the
			// bound after it is generous (a busy machine), the one before
			// it exact: net/http arms read_body as it starts reading the
			// request, after sent, and a deadline on the same monotonic
			// clock never fires early
			const late = 30 * time.Second
			_ = conn.SetReadDeadline(sent.Add(readBody + late))
			got, err := io.ReadAll(conn)
			closedAfter := time.Since(sent)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the stalled connection was still open after %s", closedAfter.Round(time.Millisecond))
			}
			t.Logf("held %v bytes; connection closed after %s (err %v); the server wrote %q",
				held, closedAfter.Round(time.Millisecond), err, firstLine(got))
			if closedAfter < readBody {
				t.Errorf("closed after %s, before the read_body timeout %s", closedAfter, readBody)
			}
			if closedAfter > readBody+late {
				t.Errorf("closed only after %s (read_body %s)", closedAfter, readBody)
			}

			c.waitBuffered("vivreal", 30*time.Second, "after the drop", func(v float64) bool { return v == 0 })
			if r, _ := up.counts(id); r != 0 {
				t.Errorf("the stalled request reached the upstream %d times", r)
			}
			if got := c.scrape().requests(t, "vivreal", "timeout"); got != timeoutsBefore+1 {
				t.Errorf("timeout went from %v to %v, want +1", timeoutsBefore, got)
			}

			// the next one passes
			ok := event(id+"-next", 500)
			resp, rb, err := post(newClient(10*time.Second), c.url("/hook"), ok, signViv(vivSecret, ok))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("a normal request after the stall: %v %v %s", resp, err, rb)
			}
			if r, a := up.counts(id + "-next"); r != 1 || a != 1 {
				t.Errorf("the normal request reached the upstream %d times (accepted %d)", r, a)
			}
		})
	}
	c.assertNoPanic()
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
