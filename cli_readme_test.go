package webhookverify

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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
