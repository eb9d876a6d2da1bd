package webhookverify_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The committed Discord vectors are exactly what gen/discord.js writes
// (Ed25519 is deterministic), and every signature of the SendGrid vectors
// verifies, or not, as its case says, by Node's crypto and by openssl
// (gen/sendgrid.js: ECDSA signatures are randomised, so the file is
// checked rather than regenerated). Skipped without node or openssl.
func TestSendersKeysVectorsIndependent(t *testing.T) {
	for _, tool := range []string{"node", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (CI=true): the generators cannot be rerun; .ci/run installs it", tool)
			}
			t.Skipf("%s is not installed: the generators cannot be rerun", tool)
		}
	}
	dir := filepath.Join("testdata", "vectors", "senders")
	out := t.TempDir()
	cmd := exec.Command("node", filepath.Join(dir, "gen", "discord.js"))
	cmd.Env = append(os.Environ(), "VECTORS_OUT="+out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen/discord.js: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "discord.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "discord.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("discord.json is not what gen/discord.js writes: rerun node testdata/vectors/senders/gen/discord.js")
	}
	if msg, err := exec.Command("node", filepath.Join(dir, "gen", "sendgrid.js")).CombinedOutput(); err != nil {
		t.Errorf("gen/sendgrid.js does not confirm sendgrid.json: %v\n%s", err, msg)
	}
}

// The README's Senders section has a Caddyfile route for discord and one
// for sendgrid (TestREADMESendersCaddyfilesAdapt adapts every route there).
func TestREADMESendersKeysCaddyfiles(t *testing.T) {
	section := rsSection(t)
	for _, name := range []string{"discord", "sendgrid"} {
		if !regexp.MustCompile("(?s)```caddyfile\n[^`]*handle /[^`]*\n\\s*webhook_verify " + name + " \\{env\\.[A-Z_]+\\}\n[^`]*```").MatchString(section) {
			t.Errorf("the README's Senders section has no Caddyfile route for %s", name)
		}
	}
}
