package providers_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

var jsonNames = []string{"id", "event", "hosting"}

type fieldsCase struct {
	name               string
	body               string
	id, event, hosting string
}

var topLevelCases = []fieldsCase{
	// strings
	{"strings", `{"id":"evt_1","event":"PUBLISH","hosting":"hst_1"}`, "evt_1", "PUBLISH", "hst_1"},
	{"other members around", `{"a":1,"id":"x","b":[1,2],"event":"e","c":{"d":null},"hosting":"h","z":true}`, "x", "e", "h"},
	{"empty strings", `{"id":"","event":"","hosting":""}`, "", "", ""},
	{"non-ascii", `{"id":"évt_日本語_😀","event":"Ünïcödé"}`, "évt_日本語_😀", "Ünïcödé", ""},

	// escaped strings
	{"escaped quote backslash and u00e9", `{"id":"a\"b","event":"c\\d","hosting":"caf\u00e9"}`, `a"b`, `c\d`, "café"},
	{"escaped slash newline tab surrogates", `{"id":"a\/b","event":"l1\nl2\tt","hosting":"\ud83d\ude00"}`, "a/b", "l1\nl2\tt", "😀"},
	{"string ending in an escaped backslash", `{"id":"x\\","event":"e"}`, `x\`, "e", ""},
	{"string of escaped backslashes and quote", `{"id":"\\\"\\","event":"\\\\"}`, `\"\`, `\\`, ""},
	{"escaped key", `{"\u0069d":"x","ev\u0065nt":"y"}`, "x", "y", ""},
	{"key that only looks like id", `{"id ":"x","ID":"y","Event":"z","\"id\"":"w"}`, "", "", ""},

	// numbers keep their JSON text
	{"integer id", `{"id":12345,"event":"e"}`, "12345", "e", ""},
	{"exponent id", `{"id":1.5e3}`, "1.5e3", "", ""},
	{"negative fraction", `{"id":-0.25,"event":0}`, "-0.25", "0", ""},
	{"big integer kept exactly", `{"id":12345678901234567890123}`, "12345678901234567890123", "", ""},
	{"upper exponent", `{"id":2E-7}`, "2E-7", "", ""},

	// other values are empty
	{"null", `{"id":null,"event":"e"}`, "", "e", ""},
	{"booleans", `{"id":true,"event":false,"hosting":"h"}`, "", "", "h"},
	{"object value", `{"id":{"id":"inner"},"event":"e"}`, "", "e", ""},
	{"array value", `{"id":["x"],"event":[]}`, "", "", ""},

	// missing
	{"empty object", `{}`, "", "", ""},
	{"empty object with space", " { \n } ", "", "", ""},
	{"none of the names", `{"type":"x","data":{}}`, "", "", ""},

	// duplicates: last wins
	{"duplicate last wins", `{"id":"a","event":"e1","id":"b","event":"e2"}`, "b", "e2", ""},
	{"duplicate last is null", `{"id":"a","id":null}`, "", "", ""},
	{"duplicate first is null", `{"id":null,"id":"a"}`, "a", "", ""},
	{"duplicate by escape", `{"id":"a","\u0069d":"b"}`, "b", "", ""},

	// nested names are not top-level
	{"nested same names", `{"data":{"id":"inner","event":"inner.e","hosting":"inner.h"},"id":"outer"}`, "outer", "", ""},
	{"nested only", `{"data":{"id":"inner","event":"x"}}`, "", "", ""},
	{"names in arrays", `{"items":[{"id":"x"},"id",{"event":"y"},["hosting","h"]],"event":"e"}`, "", "e", ""},
	{"brackets in strings", `{"a":["]","}","\"{","[\\"],"id":"x","b":{"c":"}}}]]"},"event":"y"}`, "x", "y", ""},
	{"json text inside a string", `{"html":"<div data-j=\"{\\\"id\\\":\\\"fake\\\"}\">{\"id\":\"fake2\"}</div>","id":"real"}`, "real", "", ""},
	{"names as values", `{"x":"id","y":"event","id":"event","event":"id"}`, "event", "id", ""},

	// white space
	{"white space everywhere", " \n\t{ \"id\" : \"x\" ,\r\n\"event\"\r\n:\t12 , \"hosting\" :\"h\"\n} \n\t", "x", "12", "h"},

	// invalid: all empty, even the members read before the error
	{"empty body", ``, "", "", ""},
	{"blank body", " \n ", "", "", ""},
	{"open brace", `{`, "", "", ""},
	{"truncated after member", `{"id":"x"`, "", "", ""},
	{"truncated after comma", `{"id":"x",`, "", "", ""},
	{"truncated in string", `{"id":"x","event":"PUBL`, "", "", ""},
	{"truncated in nested", `{"id":"x","payload":{"html":"<p>"`, "", "", ""},
	{"truncated number", `{"event":"e","id":123`, "", "", ""},
	{"trailing garbage", `{"id":"x"}garbage`, "", "", ""},
	{"two objects", `{"id":"x"}{"id":"y"}`, "", "", ""},
	{"extra close", `{"id":"x"}}`, "", "", ""},
	{"trailing comma", `{"id":"x",}`, "", "", ""},
	{"missing colon", `{"id" "x"}`, "", "", ""},
	{"missing comma", `{"id":"x" "event":"y"}`, "", "", ""},
	{"unquoted key", `{id:"x"}`, "", "", ""},
	{"single quotes", `{"id":'x'}`, "", "", ""},
	{"bad literal", `{"id":"x","ok":tru}`, "", "", ""},
	{"mismatched brackets", `{"id":"x","data":{]}`, "", "", ""},
	{"value then letter", `{"id":1x}`, "", "", ""},
	{"top-level array", `[{"id":"x","event":"e"}]`, "", "", ""},
	{"top-level string", `"id"`, "", "", ""},
	{"top-level number", `12345`, "", "", ""},
	{"top-level null", `null`, "", "", ""},
	{"form body", `id=x&event=y`, "", "", ""},
	{"byte order mark", "\ufeff{\"id\":\"x\"}", "", "", ""},
	{"double comma in nested array", `{"id":"x","data":[1,,2]}`, "", "", ""},
	{"trailing comma in nested object", `{"id":"x","data":{"a":1,}}`, "", "", ""},
	{"missing colon in nested object", `{"id":"x","data":{"a" 1}}`, "", "", ""},
	{"bare word in nested array", `{"id":"x","data":[nope]}`, "", "", ""},
	{"not a number", `{"id":--}`, "", "", ""},
	{"leading zero", `{"id":012}`, "", "", ""},
	{"bare minus", `{"id":-}`, "", "", ""},
	{"dot without digits", `{"id":1.}`, "", "", ""},
	{"exponent without digits", `{"id":1e+}`, "", "", ""},
}

func TestTopLevelFields(t *testing.T) {
	for _, tc := range topLevelCases {
		t.Run(tc.name, func(t *testing.T) {
			vals := []string{"stale-id", "stale-event", "stale-hosting"}
			providers.TopLevelFields([]byte(tc.body), jsonNames, vals)
			if vals[0] != tc.id || vals[1] != tc.event || vals[2] != tc.hosting {
				t.Errorf("TopLevelFields(%s) = %q, want [%q %q %q]", tc.body, vals, tc.id, tc.event, tc.hosting)
			}
		})
	}
}

// The table's valid bodies agree with encoding/json; this keeps the table
// itself honest.
func TestTopLevelFieldsTableAgreesWithEncodingJSON(t *testing.T) {
	n := 0
	for _, tc := range topLevelCases {
		want, ok := jsonFields([]byte(tc.body), jsonNames)
		if !ok {
			continue
		}
		n++
		if got := []string{tc.id, tc.event, tc.hosting}; strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("%s: table says %q, encoding/json %q", tc.name, got, want)
		}
	}
	if n < 20 {
		t.Errorf("only %d valid bodies in the table", n)
	}
}

func TestTopLevelFieldsNamesSubset(t *testing.T) {
	body := []byte(`{"id":"x","event":"e","hosting":"h"}`)
	vals := []string{"stale"}
	providers.TopLevelFields(body, []string{"hosting"}, vals)
	if vals[0] != "h" {
		t.Errorf("hosting = %q, want h", vals[0])
	}
	vals = []string{"a", "b"}
	providers.TopLevelFields(body, []string{"event", "missing"}, vals)
	if vals[0] != "e" || vals[1] != "" {
		t.Errorf("vals = %q, want [e \"\"]", vals)
	}
}

// deep returns {"id":"before","deep":[[[...{"id":"in"}...]]],"event":"after"}
// nested n levels.
func deep(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"before","deep":`)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			b.WriteString(`[`)
		} else {
			b.WriteString(`{"id":"in","k":`)
		}
	}
	b.WriteString(`"leaf"`)
	for i := n - 1; i >= 0; i-- {
		if i%2 == 0 {
			b.WriteString(`]`)
		} else {
			b.WriteString(`}`)
		}
	}
	b.WriteString(`,"event":"after"}`)
	return b.String()
}

func TestTopLevelFieldsDeeplyNested(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 200, 5000} {
		vals := make([]string, 3)
		body := deep(n)
		providers.TopLevelFields([]byte(body), jsonNames, vals)
		if vals[0] != "before" || vals[1] != "after" || vals[2] != "" {
			t.Errorf("depth %d: %q", n, vals)
		}
		// one bracket short is not JSON
		leaf := strings.Index(body, `"leaf"`) + len(`"leaf"`)
		providers.TopLevelFields([]byte(body[:leaf]+body[leaf+1:]), jsonNames, vals)
		if vals[0] != "" || vals[1] != "" {
			t.Errorf("depth %d, unbalanced: %q", n, vals)
		}
	}
}

// vevLikeBody returns a compact Vev PUBLISH event of at least size bytes
// whose HTML is full of escaped quotes, backslashes, decoy "id" members and
// non-ASCII text, with "event" after the page so it is only found by
// crossing it.
func vevLikeBody(size int) []byte {
	chunk := `<div class=\"card\" data-json=\"{\\\"id\\\":\\\"decoy\\\",\\\"event\\\":\\\"FAKE\\\"}\">` +
		`<a href=\"/x?a=1&b=2\" title=\"say \\\"hi\\\"\">Café 日本語 😀</a>` +
		`<script>var s = \"\\\\\"; if (a < b) {}</script>\"id\":\"decoy2\"}</div>`
	var b bytes.Buffer
	b.Grow(size + 1024)
	b.WriteString(`{"id":"evt_big_1","hosting":"hst_big","payload":{"id":"pg_1","event":"nested","pages":[{"key":"home","html":"`)
	for b.Len() < size {
		b.WriteString(chunk)
	}
	b.WriteString(`"}]},"event":"PUBLISH"}`)
	return b.Bytes()
}

func TestTopLevelFieldsLargeVevBody(t *testing.T) {
	body := vevLikeBody(5 << 20)
	if len(body) < 5<<20 {
		t.Fatalf("body is %d bytes", len(body))
	}
	if !json.Valid(body) {
		t.Fatal("test body is not valid JSON")
	}
	vals := make([]string, 3)
	providers.TopLevelFields(body, jsonNames, vals)
	if vals[0] != "evt_big_1" || vals[1] != "PUBLISH" || vals[2] != "hst_big" {
		t.Errorf("TopLevelFields = %q", vals)
	}
	if want, _ := jsonFields(body, jsonNames); strings.Join(want, ",") != strings.Join(vals, ",") {
		t.Errorf("encoding/json says %q", want)
	}

	// the page is crossed, not copied: the only allocations are the three
	// values, whatever the body's size
	allocs := testing.AllocsPerRun(3, func() { providers.TopLevelFields(body, jsonNames, vals) })
	if allocs > 3 {
		t.Errorf("TopLevelFields on a %d-byte body allocates %v times, want at most 3", len(body), allocs)
	}

	// cut anywhere inside, the body is not JSON
	for _, cut := range []int{len(body) - 1, len(body) - 3, len(body) / 2, 200} {
		providers.TopLevelFields(body[:cut], jsonNames, vals)
		if vals[0] != "" || vals[1] != "" || vals[2] != "" {
			t.Errorf("cut at %d: %q", cut, vals)
		}
	}
}

// TopLevelFields must give one string a body's JSON string stands for,
// whether or not the string has escapes. A string with invalid UTF-8 and no
// escape is returned raw, while the same bytes next to an escape are
// decoded by encoding/json, which replaces each invalid byte with U+FFFD.
func TestTopLevelFieldsInvalidUTF8(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"{\"id\":\"a\xffb\"}", "a\ufffdb"},
		{"{\"id\":\"a\xffb\\n\"}", "a\ufffdb\n"},
		{"{\"id\":\"\xc3\"}", "\ufffd"},
	} {
		vals := make([]string, 1)
		providers.TopLevelFields([]byte(tc.body), []string{"id"}, vals)
		if want, ok := jsonFields([]byte(tc.body), []string{"id"}); !ok || want[0] != tc.want {
			t.Fatalf("encoding/json gives %q, %v; the test expects %q", want, ok, tc.want)
		}
		if vals[0] != tc.want {
			t.Errorf("TopLevelFields(%q) id = %q, want %q (as encoding/json and the escaped path give)", tc.body, vals[0], tc.want)
		}
	}
}

// jsonFields is the reference: encoding/json's view of the top-level names,
// ok only when body decodes as a JSON object (or null).
func jsonFields(body []byte, names []string) ([]string, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, false
	}
	out := make([]string, len(names))
	for i, n := range names {
		raw := bytes.TrimSpace(m[n])
		if len(raw) == 0 {
			continue
		}
		switch c := raw[0]; {
		case c == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, false
			}
			out[i] = s
		case c == '-' || (c >= '0' && c <= '9'):
			out[i] = string(raw)
		}
	}
	return out, true
}

func FuzzTopLevelFields(f *testing.F) {
	for _, tc := range topLevelCases {
		f.Add([]byte(tc.body))
	}
	f.Add([]byte(deep(100)))
	f.Add(vevLikeBody(2048))
	f.Add([]byte(`{"id":"\u0000\ud800x","event":"\\\"","hosting":-0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		vals := []string{"stale", "stale", "stale"}
		providers.TopLevelFields(body, jsonNames, vals)
		again := []string{"x", "y", "z"}
		providers.TopLevelFields(body, jsonNames, again)
		if strings.Join(vals, "\x00") != strings.Join(again, "\x00") {
			t.Fatalf("not deterministic: %q then %q", vals, again)
		}
		want, ok := jsonFields(body, jsonNames)
		if !ok {
			return
		}
		for i, n := range jsonNames {
			if vals[i] != want[i] {
				t.Errorf("%s = %q, encoding/json gives %q (body %q)", n, vals[i], want[i], body)
			}
		}
	})
}
