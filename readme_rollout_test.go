package webhookverify_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// readmeSection returns the README's "## <title>" section.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("the README has no %q section", title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// The Caddyfiles of "Rolling out" adapt, inside a site, to a handler whose
// JSON is what they say (enforce false; a secret with its not_after).
func TestREADMERolloutCaddyfilesAdapt(t *testing.T) {
	sec := readmeSection(t, "Rolling out: report-only, expiring secrets, hints")
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(sec, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d Caddyfiles in the section, want 2", len(blocks))
	}
	for i, want := range []string{`"enforce":false`, `{"not_after":"2026-12-31T00:00:00Z","secret":"{env.VIVREAL_SECRET_OLD}"}`} {
		site := "http://localhost:8080 {\n" + blocks[i][1] + "}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), nil)
		if err != nil {
			t.Errorf("block %d does not adapt: %v", i+1, err)
			continue
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("block %d adapts to %s, without %s", i+1, out, want)
		}
	}
}

// Every handler metric the README's Metrics table names is on /metrics
// once a handler is loaded (the queue's appear with a queue: the queue
// tests read them), and the rolling-out metrics are in the table.
func TestIntegrationREADMEMetricsExist(t *testing.T) {
	itStart(t, `
http://localhost:9080 {
	webhook_verify vivreal readme-metrics-secret
	respond 204
}
`)
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	page, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	table := readmeSection(t, "Metrics")
	named := regexp.MustCompile("(?m)^\\| `(caddy_webhook_verify_[a-z_]+)` \\|").FindAllStringSubmatch(table, -1)
	for _, want := range []string{"caddy_webhook_verify_key_matches_total", "caddy_webhook_verify_not_enforced_total"} {
		if !strings.Contains(table, "`"+want+"`") {
			t.Errorf("the Metrics table does not list %s", want)
		}
	}
	for _, m := range named {
		if strings.Contains(m[1], "_queue_") {
			continue
		}
		if !strings.Contains(string(page), "# HELP "+m[1]+" ") {
			t.Errorf("the README lists %s; /metrics has no such metric", m[1])
		}
	}
}
