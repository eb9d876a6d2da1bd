package webhookverify_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	// the other directives of the test Caddyfiles (reverse_proxy, basic_auth, ...)
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webhookverify/caddy-webhook-verify"
)

// cfAdaptDir holds the adapt tests, in the format of Caddy's own
// caddytest/integration/caddyfile_adapt: a Caddyfile, a line of ten dashes,
// then either the expected JSON (as `caddy adapt --pretty` prints it, tabs)
// or, for a Caddyfile that must not adapt, the expected error: each
// non-empty line of it must appear in the adapter's error.
const cfAdaptDir = "testdata/caddyfile_adapt"

func TestCaddyfileAdaptToJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(cfAdaptDir, "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.caddyfiletest files in %s", cfAdaptDir)
	}

	winNewlines := regexp.MustCompile(`\r?\n`)

	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(winNewlines.ReplaceAllString(string(data), "\n"), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile, a line of dashes and the expected output; got %d parts", name, len(parts))
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			if expected == "" {
				t.Fatalf("%s: no expected output after the dashes", name)
			}

			if expected[0] == '{' {
				if !caddytest.CompareAdapt(t, name, caddyfile, "caddyfile", expected) {
					t.Errorf("adapting %s did not give the expected JSON (diff on stdout)", name)
				}
				return
			}

			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err == nil {
				t.Fatalf("%s: adapted without error, want an error containing:\n%s", name, expected)
			}
			for want := range strings.Lines(expected) {
				want = strings.TrimSpace(want)
				if want != "" && !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error does not contain %q:\n%v", name, want, err)
				}
			}
		})
	}
}
