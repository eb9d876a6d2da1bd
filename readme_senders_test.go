package webhookverify_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// rsSection returns the README's "## Senders" section.
func rsSection(t *testing.T) string { return readmeSection(t, "Senders") }

// The Senders table lists exactly the registered senders.
func TestREADMESendersTableListsEverySender(t *testing.T) {
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|").FindAllStringSubmatch(rsSection(t), -1) {
		listed = append(listed, m[1])
	}
	var registered []string
	for _, m := range caddy.GetModules(providers.Namespace) {
		registered = append(registered, m.ID.Name())
	}
	slices.Sort(listed)
	slices.Sort(registered)
	if !slices.Equal(listed, registered) {
		t.Errorf("the README's Senders table lists %v; the registered senders are %v", listed, registered)
	}
}

// Each sender's Caddyfile in the Senders section adapts, inside a site,
// to a webhook_verify handler of that sender.
func TestREADMESendersCaddyfilesAdapt(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(rsSection(t), -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		block := b[1]
		m := regexp.MustCompile(`(?m)^\s*webhook_verify ([a-z0-9_]+) `).FindStringSubmatch(block)
		if m == nil || !strings.Contains(block, "handle /") {
			continue // not a sender's route (a grammar, say)
		}
		name := m[1]
		seen[name] = true
		site := "http://localhost:8080 {\n" + block + "}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), nil)
		if err != nil {
			t.Errorf("the README's %s Caddyfile does not adapt: %v\n%s", name, err, block)
			continue
		}
		if !json.Valid(out) || !strings.Contains(string(out), `"provider":{"name":"`+name+`"`) {
			t.Errorf("the README's %s Caddyfile adapts to no %s handler: %s", name, name, out)
		}
		if lines := strings.Count(strings.TrimSpace(block), "\n") + 1; lines > 12 {
			t.Errorf("the README's %s Caddyfile has %d lines; keep it short", name, lines)
		}
	}
	for _, name := range []string{"vivreal", "vev", "github", "standard", "stripe", "slack", "shopify"} {
		if !seen[name] {
			t.Errorf("the README's Senders section has no Caddyfile for %s", name)
		}
	}
}
