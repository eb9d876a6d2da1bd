package webhookverify

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestREADMECLIFlags: the README's "Signing and checking deliveries from
// the command line" names every flag of sign, send and verify, and no flag
// the command does not have.
func TestREADMECLIFlags(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "## Signing and checking deliveries from the command line")
	if start < 0 {
		t.Fatal("the README has no \"Signing and checking deliveries from the command line\" section")
	}
	section := text[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	// curl's own flags in the examples are not the command's
	section = regexp.MustCompile(`(?m)^curl .*$`).ReplaceAllString(section, "")
	var named []string
	for _, m := range regexp.MustCompile(`--([a-z][a-z-]+)`).FindAllStringSubmatch(section, -1) {
		if !slices.Contains(named, m[1]) {
			named = append(named, m[1])
		}
	}
	cmd := &cobra.Command{}
	signFlags(cmd)
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z-]+)`).FindAllStringSubmatch(cmd.Flags().FlagUsages(), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 10 {
		t.Fatalf("only %d flags read from the usage: %v", len(flags), flags)
	}
	for _, f := range flags {
		if !slices.Contains(named, f) {
			t.Errorf("the README's command section does not mention --%s", f)
		}
	}
	for _, n := range named {
		if !slices.Contains(flags, n) {
			t.Errorf("the README's command section names --%s, which sign/send/verify do not have", n)
		}
	}
}

// verify prints the handler's hint, when its "webhook rejected" line has
// one, after the reason; and the status when the refusal is not a 401.
func TestVerifyVerdictPrintsHint(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("webhook rejected", zap.String("reason", "no matching signature"),
		zap.String("hint", "the body would verify in its stringify form: set stringify_fallback"))
	h := &Handler{}
	var out strings.Builder
	code := verdict(&out, h, &cliNext{}, caddyhttp.Error(http.StatusUnauthorized, ErrNoMatchingSignature), logs)
	if want := "not verified: no matching signature\nhint: the body would verify in its stringify form: set stringify_fallback\n"; code != exitNegative || out.String() != want {
		t.Errorf("exit %d, printed %q, want %q", code, out.String(), want)
	}

	core, logs = observer.New(zapcore.DebugLevel)
	zap.New(core).Info("webhook rejected", zap.String("reason", "method not allowed"))
	out.Reset()
	if code := verdict(&out, h, &cliNext{}, caddyhttp.Error(http.StatusMethodNotAllowed, ErrMethodNotAllowed), logs); code != exitNegative ||
		out.String() != "not verified: method not allowed (status 405)\n" {
		t.Errorf("exit %d, printed %q", code, out.String())
	}
}
