package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEQuickStart runs the README's quick start, its shell blocks as
// written (./caddy is the built binary), against example.Caddyfile moved to
// free ports, and checks each command's output against the "# ..." lines
// that follow it in the README ("…" stands for any text).
func TestREADMEQuickStart(t *testing.T) {
	needCaddy(t)
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (CI=true): .ci/run installs it")
		}
		t.Skip("curl is not installed: the quick start uses it")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start, end := strings.Index(text, "## Quick start"), strings.Index(text, "## Module IDs")
	if start < 0 || end < start {
		t.Fatal("no Quick start section in the README")
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text[start:end], -1) {
		if strings.Contains(m[1], "caddy webhook") {
			blocks = append(blocks, m[1])
		}
	}
	script := strings.Join(blocks, "\n")
	const first = "./caddy webhook send https://localhost:8443/webhooks/vivreal --provider vivreal --secret-env VIVREAL_SECRET --insecure"
	if !strings.Contains(script, first) {
		t.Fatalf("the quick start's first delivery is not %q:\n%s", first, script)
	}
	if strings.Contains(script, "openssl") {
		t.Errorf("the quick start still signs with openssl:\n%s", script)
	}

	// example.Caddyfile on free ports, with the demo secrets in Caddy's
	// environment as ./xcaddy.sh run sets them
	raw, err := os.ReadFile("../example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	admin, gw, backend, httpPort, httpsPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := string(raw)
	cfg = strings.Replace(cfg, "{\n", fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\thttp_port %d\n\thttps_port %d\n\tpersist_config off\n", admin, httpPort, httpsPort), 1)
	cfg = strings.ReplaceAll(cfg, "localhost:8443", fmt.Sprintf("localhost:%d", gw))
	cfg = strings.ReplaceAll(cfg, "localhost:9001", fmt.Sprintf("localhost:%d", backend))
	cfg = strings.ReplaceAll(cfg, "queue demo {", "queue demo {\n\t\t\t\tstore bbolt "+filepath.Join(t.TempDir(), "queue.db"))
	t.Setenv("VIVREAL_SECRET", "demo-vivreal-secret")
	t.Setenv("VEV_SECRET", "demo-vev-secret")
	t.Setenv("VEV_TOKEN", "demo-vev-token")
	// the backend site answers any path, /healthz included, with 200
	c := startCaddy(t, admin, backend, cfg)
	waitTLS(t, gw)

	// the README's commands, in a directory where ./caddy is the binary,
	// with none of the demo secrets in their environment but what they
	// export themselves
	dir := t.TempDir()
	if err := os.Symlink(caddyBin, filepath.Join(dir, "caddy")); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "VIVREAL_SECRET" && name != "VEV_SECRET" && name != "VEV_TOKEN" {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+dir)
	port := fmt.Sprintf("https://localhost:%d/", gw)

	type step struct {
		cmd  string
		want []string
	}
	var steps []step
	for _, line := range strings.Split(script, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "#"):
			if len(steps) == 0 {
				t.Fatalf("output %q before any command", line)
			}
			want := strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ")
			want = regexp.MustCompile(`\s{2,}\(.*\)$`).ReplaceAllString(want, "") // a remark, not output
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, want)
		default:
			steps = append(steps, step{cmd: strings.ReplaceAll(line, "https://localhost:8443/", port)})
		}
	}
	var sh strings.Builder
	for i, s := range steps {
		// stdout is what the README shows (curl's progress meter, on
		// stderr, is not there at a terminal)
		fmt.Fprintf(&sh, "printf '\\n@@@ %d\\n'\n%s\n", i, s.cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", sh.String())
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the quick start: %v\n%s\n%s", err, out, stderr.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("the quick start's stderr:\n%s", stderr.String())
		}
	}()
	outputs := regexp.MustCompile(`\n@@@ \d+\n`).Split(string(out), -1)[1:]
	if len(outputs) != len(steps) {
		t.Fatalf("%d outputs for %d commands:\n%s", len(outputs), len(steps), out)
	}
	for i, s := range steps {
		lines := strings.Split(strings.Trim(outputs[i], "\n"), "\n")
		if len(s.want) == 0 && strings.TrimSpace(outputs[i]) != "" {
			t.Errorf("%s\nprints %q; the README shows no output", s.cmd, outputs[i])
		}
		at := 0
		for _, w := range s.want {
			re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(w), "…", ".+?") + "$")
			for at < len(lines) && !re.MatchString(lines[at]) {
				at++
			}
			if at == len(lines) {
				t.Errorf("%s\nprints:\n%s\nnot the README's %q", s.cmd, outputs[i], w)
				break
			}
			at++
		}
	}

	// the same first delivery trusting the example's internal CA, as the
	// README's command section says, instead of --insecure
	root := filepath.Join(c.dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	t.Setenv("VIVREAL_SECRET", "demo-vivreal-secret")
	cli(t, "send", port+"webhooks/vivreal", "--provider", "vivreal", "--secret-env", "VIVREAL_SECRET", "--ca-file", root).
		want(t, 0, "HTTP/2.0 200 OK", "backend received vivreal event=collection.object.created")
	// and without either, the certificate is not trusted: could not run
	cli(t, "send", port+"webhooks/vivreal", "--provider", "vivreal", "--secret-env", "VIVREAL_SECRET").
		want(t, 1, "certificate")
	c.assertNoPanic()
}

// waitTLS waits until the internal issuer serves a certificate for
// localhost on port (a handshake before that fails).
func waitTLS(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second},
			Config: &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}} //nolint:gosec // a handshake, nothing sent
		conn, err := d.DialContext(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake with localhost:%d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
