package webhookverify

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The README's reference sections match the code: its Caddyfile grammar
// lists exactly the subdirectives the parser knows (top level and inside
// dedupe), and its JSON example decodes into the handler with no unknown
// field and provisions.

// rmBlocks returns the README's fenced code blocks of the given language.
func rmBlocks(t *testing.T, lang string) []string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		out = append(out, m[1])
	}
	return out
}

// rmKnown asks the parser which names it accepts, from the error it gives
// for an unknown one: "... use a, b, c or d".
func rmKnown(t *testing.T, input string) []string {
	t.Helper()
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if err == nil {
		t.Fatalf("no error for an unknown name in %q", input)
	}
	msg := err.Error()
	i := strings.Index(msg, ": use ")
	if i < 0 {
		t.Fatalf("error %q lists no names", msg)
	}
	list := msg[i+len(": use "):]
	if j := strings.Index(list, ", at "); j >= 0 {
		list = list[:j]
	}
	list = strings.ReplaceAll(list, " or ", ", ")
	names := strings.Split(list, ", ")
	slices.Sort(names)
	return names
}

func TestREADMECaddyfileGrammarMatchesParser(t *testing.T) {
	var grammar string
	for _, b := range rmBlocks(t, "caddyfile") {
		if strings.HasPrefix(b, "webhook_verify [<matcher>]") {
			grammar = b
		}
	}
	if grammar == "" {
		t.Fatal("the README has no webhook_verify grammar block")
	}
	var top []string
	inner := map[string][]string{} // the options of each block at the top level
	depth, block := 0, ""
	for _, line := range strings.Split(grammar, "\n") {
		line = strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
		if line == "" || strings.HasPrefix(line, "webhook_verify") {
			if strings.HasSuffix(line, "{") {
				depth++
			}
			continue
		}
		if line == "}" {
			depth--
			continue
		}
		name := strings.Fields(line)[0]
		switch depth {
		case 1:
			top = append(top, name)
			block = name
		case 2:
			inner[block] = append(inner[block], name)
		}
		if strings.HasSuffix(line, "{") {
			depth++
		}
	}
	slices.Sort(top)
	if want := rmKnown(t, "webhook_verify vivreal s {\n\tno_such_option 1\n}"); !slices.Equal(top, want) {
		t.Errorf("README grammar lists %v; the parser knows %v", top, want)
	}
	for blk, input := range map[string]string{
		"dedupe": "webhook_verify vivreal s {\n\tdedupe {\n\t\tno_such_option\n\t}\n}",
		"queue":  "webhook_verify vivreal s {\n\tqueue {\n\t\tno_such_option\n\t}\n}",
	} {
		got := inner[blk]
		slices.Sort(got)
		if want := rmKnown(t, input); !slices.Equal(got, want) {
			t.Errorf("README %s grammar lists %v; the parser knows %v", blk, got, want)
		}
	}
}

func TestREADMEJSONExampleMatchesHandler(t *testing.T) {
	var found bool
	for _, b := range rmBlocks(t, "json") {
		if !strings.Contains(b, `"handler": "webhook_verify"`) {
			continue
		}
		found = true
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(b), &fields); err != nil {
			t.Fatalf("the README's JSON example is not JSON: %v\n%s", err, b)
		}
		delete(fields, "handler") // the route's, not the handler's own field
		rest, _ := json.Marshal(fields)
		var h Handler
		dec := json.NewDecoder(bytes.NewReader(rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			t.Fatalf("the README's JSON example does not decode into Handler: %v\n%s", err, b)
		}
		if len(h.Secrets) == 0 || h.ProviderRaw == nil {
			t.Fatalf("decoded nothing: %+v", h)
		}
	}
	if !found {
		t.Fatal("the README has no JSON example of the handler")
	}
}
