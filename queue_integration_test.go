package webhookverify_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
