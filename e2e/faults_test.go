package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestFaults: when the upstream is down, answers 5xx, or is slower than
// the gateway's or the sender's timeout, the sender sees a failure, never
// a 2xx; with dedupe the claim is released, so the sender's retry, once
// the upstream is healthy, is delivered exactly once.
func TestFaults(t *testing.T) {
	needCaddy(t)
	up := newUpstream(t)
	admin, port := freePort(t), freePort(t)
	c := startCaddy(t, admin, port, globals(admin, "")+fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	handle /healthz {
		respond "ok" 200
	}
	# the gateway gives up on a slow upstream after 1s
	handle /hook {
		webhook_verify vivreal %[2]s {
			dedupe {
				inflight_ttl 10m
			}
		}
		reverse_proxy %[3]s {
			transport http {
				response_header_timeout 1s
			}
		}
	}
	# no gateway timeout: only the sender's own
	handle /patient {
		webhook_verify vivreal %[2]s {
			dedupe {
				key_prefix patient:
				inflight_ttl 10m
			}
		}
		reverse_proxy %[3]s
	}
}
`, port, vivSecret, up.addr))

	// retry sends the event again (the sender's retry) until it is not a
	// 409 (the failed attempt's claim may take a moment to be released
	// after a sender-side timeout) and expects 200, delivered once. It
	// waits a minute at most, far short of the 10m inflight_ttl: only the
	// claim's release can free it, never its expiry.
	retry := func(t *testing.T, path, id string, body []byte) {
		t.Helper()
		client := newClient(time.Minute)
		deadline := time.Now().Add(time.Minute)
		for {
			resp, rb, err := post(client, c.url(path), body, signViv(vivSecret, body))
			if err != nil {
				t.Fatalf("retry of %s: %v", id, err)
			}
			if resp.StatusCode == 409 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if resp.StatusCode != 200 {
				t.Fatalf("retry of %s: status %d (%s), want 200", id, resp.StatusCode, rb)
			}
			if string(rb) != `{"ok":true}` {
				t.Fatalf("retry of %s: answer %q, want the upstream's (not a duplicate)", id, rb)
			}
			break
		}
		if _, a := up.counts(id); a != 1 {
			t.Errorf("%s: accepted by the upstream %d times, want exactly 1", id, a)
		}
		// and once more: now it is a duplicate, answered by the gateway
		resp, rb, err := post(client, c.url(path), body, signViv(vivSecret, body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("duplicate of %s: %v %v", id, resp, err)
		}
		if _, a := up.counts(id); a != 1 {
			t.Errorf("%s: after a duplicate, accepted %d times, want 1 (%s)", id, a, rb)
		}
	}

	client := newClient(15 * time.Second)

	t.Run("upstream down", func(t *testing.T) {
		id := "fault-down"
		body := event(id, 300)
		up.stop()
		resp, rb, err := post(client, c.url("/hook"), body, signViv(vivSecret, body))
		up.start()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 502 {
			t.Errorf("upstream down: status %d (%s), want 502", resp.StatusCode, rb)
		}
		if r, _ := up.counts(id); r != 0 {
			t.Fatalf("received %d times while down?", r)
		}
		retry(t, "/hook", id, body)
		if r, _ := up.counts(id); r != 1 {
			t.Errorf("received %d times, want 1 (the retry)", r)
		}
	})

	t.Run("upstream 500", func(t *testing.T) {
		id := "fault-500"
		body := event(id, 300)
		up.mode.Store(upFail)
		resp, rb, err := post(client, c.url("/hook"), body, signViv(vivSecret, body))
		up.mode.Store(upOK)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 500 {
			t.Errorf("upstream 500: status %d (%s), want 500", resp.StatusCode, rb)
		}
		retry(t, "/hook", id, body)
		if r, _ := up.counts(id); r != 2 {
			t.Errorf("received %d times, want 2 (the failed attempt and the retry)", r)
		}
	})

	t.Run("upstream slower than the gateway timeout", func(t *testing.T) {
		id := "fault-slow-gateway"
		body := event(id, 300)
		// held until the gateway gives up: only its 1s
		// response_header_timeout can end this request (else the
		// sender's own 15s timeout fails it)
		up.hold(id)
		start := time.Now()
		resp, rb, err := post(client, c.url("/hook"), body, signViv(vivSecret, body), "X-Test-Hold", id)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%v (after %s): the 1s response_header_timeout did not fire", err, took.Round(time.Millisecond))
		}
		t.Logf("slow upstream: status %d after %s", resp.StatusCode, took.Round(time.Millisecond))
		if resp.StatusCode < 500 {
			t.Errorf("slow upstream: status %d (%s), want a 5xx", resp.StatusCode, rb)
		}
		// armed once the request is written upstream, after start: a
		// timeout never fires early
		if took < time.Second {
			t.Errorf("answered after %s, before the 1s response_header_timeout", took)
		}
		if _, a := up.counts(id); a != 0 {
			t.Errorf("the upstream accepted the timed-out attempt %d times", a)
		}
		retry(t, "/hook", id, body)
	})

	t.Run("upstream slower than the sender timeout", func(t *testing.T) {
		id := "fault-slow-sender"
		body := event(id, 300)
		// held until the gateway gives up, which only the sender's going
		// can make it do: the sender times out once the upstream has it
		up.hold(id)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/patient"), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Vivreal-Signature", signViv(vivSecret, body))
		req.Header.Set("X-Test-Hold", id)
		sent := make(chan error, 1)
		go func() {
			resp, _, err := do(newClient(time.Minute), req)
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			sent <- err
		}()
		up.waitReceived(id, 1, time.Minute)
		cancel()
		if err := <-sent; !errors.Is(err, context.Canceled) {
			t.Errorf("the sender that gave up got %v, want its own cancellation", err)
		}
		// the gateway cancels the upstream request when the sender goes,
		// and releases the claim: the retry (which waits past 409s) is
		// delivered, though the held attempt is never let go
		retry(t, "/patient", id, body)
		if r, a := up.counts(id); r != 2 || a != 1 {
			t.Errorf("the upstream received %d attempts and accepted %d, want 2 (the abandoned one and the retry) and 1", r, a)
		}
	})
	c.assertNoPanic()
}
