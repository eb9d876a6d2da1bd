package webhookverify_test

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	webhookverify "github.com/webhookverify/caddy-webhook-verify"
	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// The README's "The hmac provider" section matches the code: its grammar
// lists exactly the provider's options (one per JSON field, each one the
// parser takes), and its worked configurations adapt and provision.

func rhSection(t *testing.T) string { return readmeSection(t, "The `hmac` provider") }

func rhBlocks(t *testing.T, lang string) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(rhSection(t), -1) {
		out = append(out, m[1])
	}
	return out
}

// rhJSONOptions are the Caddyfile names of the provider's JSON fields.
func rhJSONOptions() []string {
	var names []string
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for f := range rt.Fields() {
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			tag := strings.Split(f.Tag.Get("json"), ",")[0]
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			switch tag { // plural in JSON, one line each in the Caddyfile
			case "signatures":
				tag = "signature"
			case "header_fallbacks":
				tag = "header_fallback"
			}
			names = append(names, tag)
		}
	}
	walk(reflect.TypeFor[providers.HMAC]())
	slices.Sort(names)
	return names
}

func TestREADMEHMACGrammarMatchesProvider(t *testing.T) {
	var grammar string
	for _, b := range rhBlocks(t, "caddyfile") {
		if strings.HasPrefix(b, "webhook_verify hmac <secret> {") {
			grammar = b
		}
	}
	if grammar == "" {
		t.Fatal("no hmac grammar block")
	}
	var listed []string
	for _, line := range strings.Split(grammar, "\n")[1:] {
		line = strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
		if line == "" || line == "}" {
			continue
		}
		name := strings.Fields(line)[0]
		listed = append(listed, name)
		p := new(providers.HMAC)
		d := caddyfile.NewTestDispenser(name + " x")
		d.Next()
		if handled, _ := p.UnmarshalCaddyfileOption(d); !handled {
			t.Errorf("the README lists %s; the hmac provider does not take it", name)
		}
	}
	slices.Sort(listed)
	if want := rhJSONOptions(); !slices.Equal(listed, want) {
		t.Errorf("the README's hmac grammar lists %v; the JSON fields are %v", listed, want)
	}
	named := new(providers.HMAC).CaddyfileOptionNames()
	slices.Sort(named)
	if !slices.Equal(listed, named) {
		t.Errorf("the README's hmac grammar lists %v; the provider names %v", listed, named)
	}
	p := new(providers.HMAC)
	d := caddyfile.NewTestDispenser("no_such_option x")
	d.Next()
	if handled, _ := p.UnmarshalCaddyfileOption(d); handled {
		t.Error("the hmac provider takes an unknown option")
	}
}

// rhEnv sets the environment the README's examples read.
func rhEnv(t *testing.T) {
	t.Setenv("BOX_PRIMARY_KEY", "box-primary")
	t.Setenv("BOX_SECONDARY_KEY", "box-secondary")
	t.Setenv("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_secret")
	t.Setenv("TELNYX_PUBLIC_KEY", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=") // RFC 8032 TEST 1
}

// rhProvision provisions a handler from its JSON.
func rhProvision(t *testing.T, handler []byte) error {
	t.Helper()
	var h webhookverify.Handler
	if err := json.Unmarshal(handler, &h); err != nil {
		t.Fatalf("%s: %v", handler, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		return err
	}
	defer h.Cleanup()
	return h.Validate()
}

func rhDecodeHMAC(t *testing.T, raw json.RawMessage) providers.HMAC {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if string(obj["name"]) != `"hmac"` {
		t.Fatalf("provider %s is not hmac", raw)
	}
	delete(obj, "name")
	rest, _ := json.Marshal(obj)
	var p providers.HMAC
	dec := json.NewDecoder(strings.NewReader(string(rest)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("provider %s: %v", raw, err)
	}
	return p
}

// The worked configurations adapt and provision; the JSON example is the
// Box configuration.
func TestREADMEHMACExamples(t *testing.T) {
	rhEnv(t)
	providersBySite := map[string]json.RawMessage{}
	for _, b := range rhBlocks(t, "caddyfile") {
		m := regexp.MustCompile(`(?m)^handle /hooks/([a-z]+) \{`).FindStringSubmatch(b)
		if m == nil {
			continue
		}
		site := "http://localhost:8080 {\n" + b + "}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), nil)
		if err != nil {
			t.Errorf("the README's %s example does not adapt: %v", m[1], err)
			continue
		}
		handler := regexp.MustCompile(`\{"handler":"webhook_verify".*?"secrets":\[[^\]]*\]\}`).Find(out)
		if handler == nil {
			t.Errorf("the README's %s example has no webhook_verify handler: %s", m[1], out)
			continue
		}
		var h struct {
			Provider json.RawMessage `json:"provider"`
		}
		if err := json.Unmarshal(handler, &h); err != nil {
			t.Fatal(err)
		}
		rhDecodeHMAC(t, h.Provider)
		providersBySite[m[1]] = h.Provider
		if err := rhProvision(t, handler); err != nil {
			t.Errorf("the README's %s example does not provision: %v", m[1], err)
		}
	}
	for _, want := range []string{"box", "paddle", "telnyx"} {
		if providersBySite[want] == nil {
			t.Errorf("no %s example in the README's hmac section", want)
		}
	}
	var found bool
	for _, b := range rhBlocks(t, "json") {
		found = true
		var h struct {
			Provider json.RawMessage `json:"provider"`
		}
		if err := json.Unmarshal([]byte(b), &h); err != nil {
			t.Fatalf("the README's hmac JSON is not JSON: %v", err)
		}
		if err := rhProvision(t, []byte(b)); err != nil {
			t.Errorf("the README's hmac JSON does not provision: %v", err)
		}
		if box := providersBySite["box"]; box != nil && !reflect.DeepEqual(rhDecodeHMAC(t, h.Provider), rhDecodeHMAC(t, box)) {
			t.Errorf("the README's JSON is not its Box Caddyfile:\n%s\n%s", h.Provider, box)
		}
	}
	if !found {
		t.Error("no JSON example in the README's hmac section")
	}
}
