package webhookverify

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Every preset can be written as an hmac configuration, its twin
// (testdata/vectors/senders/twins/<sender>.json): each of the preset's
// vector cases (testdata/vectors/senders/<sender>.json, checked against
// the preset by the senders' vector runner) must give the same outcome,
// forwarded bytes and placeholders through the twin, and the twin's
// Caddyfile block must adapt to the twin's JSON.

// twPresets are the presets that must have a twin.
var twPresets = []string{"github", "standard", "stripe", "slack", "shopify", "discord", "sendgrid"}

// twTwin is one twin file.
type twTwin struct {
	Sender    string          `json:"sender"`
	About     string          `json:"about"`
	Provider  json.RawMessage `json:"provider"`
	Caddyfile string          `json:"caddyfile"`
}

func twReadJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// twLoad returns the twins by sender.
func twLoad(t *testing.T) map[string]twTwin {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(svDir, "twins", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	twins := make(map[string]twTwin)
	for _, f := range files {
		var tw twTwin
		twReadJSON(t, f, &tw)
		if want := strings.TrimSuffix(filepath.Base(f), ".json"); tw.Sender != want {
			t.Fatalf("%s: sender %q, want %q", f, tw.Sender, want)
		}
		var p struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(tw.Provider, &p); err != nil || p.Name != "hmac" {
			t.Fatalf("%s: the twin's provider is %s, want an hmac configuration", f, tw.Provider)
		}
		if tw.About == "" || tw.Caddyfile == "" {
			t.Fatalf("%s: about and caddyfile are required", f)
		}
		twins[tw.Sender] = tw
	}
	return twins
}

// TestHMACTwinsOfEveryPreset checks that every preset has a twin, and
// that the senders' vector files have no preset without one.
func TestHMACTwinsOfEveryPreset(t *testing.T) {
	twins := twLoad(t)
	for _, p := range twPresets {
		if _, ok := twins[p]; !ok {
			if _, err := os.Stat(filepath.Join(svDir, p+".json")); errors.Is(err, os.ErrNotExist) {
				t.Logf("%s: no vectors yet, and no twin", p)
				continue
			}
			t.Errorf("preset %s has vectors but no hmac twin in %s/twins", p, svDir)
		}
	}
	for _, f := range svFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if _, ok := twins[name]; !ok && name != "hmac" {
			t.Errorf("%s has no hmac twin", f)
		}
	}
}

// TestHMACTwinVectors runs every preset's vector cases through its twin,
// with the senders' vector runner: same outcome, same forwarded bytes,
// same placeholders.
func TestHMACTwinVectors(t *testing.T) {
	twins := twLoad(t)
	for _, sender := range slices.Sorted(maps.Keys(twins)) {
		t.Run(sender, func(t *testing.T) {
			svRunFile(t, filepath.Join(svDir, sender+".json"), twins[sender].Provider)
		})
	}
}

// TestHMACVectors runs the vectors of hmac configurations no preset covers
// (Box, PagerDuty, Paddle, Twitch, Intercom, Teams, a HubSpot v3-style
// template, Ed25519 and ECDSA P-256), also run by TestSendersVectors.
func TestHMACVectors(t *testing.T) {
	path := filepath.Join(svDir, "hmac.json")
	for _, c := range svLoad(t, path).Cases {
		var p struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(c.Provider, &p); err != nil || p.Name != "hmac" {
			t.Fatalf("case %s: provider %s, want its own hmac configuration", c.Name, c.Provider)
		}
	}
	svRunFile(t, path, nil)
}

// TestHMACTwinCaddyfiles adapts each twin's Caddyfile block and compares
// the provider it gives with the twin's JSON.
func TestHMACTwinCaddyfiles(t *testing.T) {
	for sender, twin := range twLoad(t) {
		t.Run(sender, func(t *testing.T) {
			got := twAdaptProvider(t, twin.Caddyfile)
			var a, b any
			if err := json.Unmarshal(got, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(twin.Provider, &b); err != nil {
				t.Fatal(err)
			}
			if !twJSONEqual(a, b) {
				t.Errorf("the Caddyfile block adapts to\n%s\nthe twin's JSON is\n%s", got, twin.Provider)
			}
		})
	}
}

// twAdaptProvider adapts a webhook_verify block inside a site and returns
// its handler's provider object.
func twAdaptProvider(t *testing.T, block string) json.RawMessage {
	t.Helper()
	site := ":8080 {\n\t" + strings.ReplaceAll(block, "\n", "\n\t") + "\n}\n"
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	if len(warn) > 0 {
		t.Errorf("adapt warnings: %v", warn)
	}
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Handler  string          `json:"handler"`
							Provider json.RawMessage `json:"provider"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			for _, h := range r.Handle {
				if h.Handler == "webhook_verify" {
					return h.Provider
				}
			}
		}
	}
	t.Fatalf("no webhook_verify handler in\n%s", cfg)
	return nil
}

// twJSONEqual compares decoded JSON values by their encoding, which sorts
// object keys.
func twJSONEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
