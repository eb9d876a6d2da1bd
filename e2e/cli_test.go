package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// `caddy webhook sign|send|verify`, run as the built binary: send gets 200
// from a running gateway whose upstream receives the body byte for byte;
// sign's header lines given to real curl verify; verify tells captured
// requests (good, forged, re-encoded, stale) apart; the exit statuses (0
// done, 1 could not run, 2 a negative answer) are those the help
// documents; and no secret value is ever printed.

// The CLI tests' secrets, in the environment of the gateway and of the CLI.
const (
	cliVivSecret    = "cli-vivreal-secret-3f9a"
	cliStripeSecret = "whsec_cli_stripe_secret_77c1"
	cliVevSecret    = "cli-vev-secret-b0d2"
	cliVevToken     = "cli-vev-token-9e41"
	// RFC 8032 §7.1 TEST 1: the seed (private) and its public key
	cliDiscordSeed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	cliDiscordPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

// cliSecrets are the values that must never appear in the CLI's output.
var cliSecrets = []string{cliVivSecret, cliStripeSecret, cliVevSecret, cliVevToken, cliDiscordSeed}

func cliEnv(t *testing.T) {
	t.Setenv("CLI_VIV_SECRET", cliVivSecret)
	t.Setenv("CLI_STRIPE_SECRET", cliStripeSecret)
	t.Setenv("CLI_VEV_SECRET", cliVevSecret)
	t.Setenv("CLI_VEV_TOKEN", cliVevToken)
	t.Setenv("CLI_VEV_BASIC", "user:"+cliVevToken)
	t.Setenv("CLI_DISCORD_PUBLIC", cliDiscordPublic)
	t.Setenv("CLI_WRONG_SECRET", "not-the-secret")
}

// cliGateway starts a gateway with a route per sender in front of a
// recording upstream.
func cliGateway(t *testing.T) (*caddyProc, *upstream) {
	t.Helper()
	cliEnv(t)
	up := newUpstream(t)
	admin, port := freePort(t), freePort(t)
	cfg := globals(admin, "") + fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	handle /healthz {
		respond "ok" 200
	}
	handle /vivreal {
		webhook_verify vivreal {env.CLI_VIV_SECRET}
		reverse_proxy %[2]s
	}
	handle /stripe {
		webhook_verify stripe {env.CLI_STRIPE_SECRET}
		reverse_proxy %[2]s
	}
	handle /discord {
		webhook_verify discord {env.CLI_DISCORD_PUBLIC}
		reverse_proxy %[2]s
	}
	handle /vev {
		webhook_verify vev {env.CLI_VEV_SECRET} {
			bearer_token {env.CLI_VEV_TOKEN}
		}
		reverse_proxy %[2]s
	}
	handle /basic {
		webhook_verify vivreal {env.CLI_VIV_SECRET} {
			basic_auth user {env.CLI_VEV_TOKEN}
		}
		reverse_proxy %[2]s
	}
	handle /moved {
		redir * /vivreal 308
	}
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
}
`, port, up.addr)
	return startCaddy(t, admin, port, cfg), up
}

// cliResult is one run of the binary.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs `caddy webhook <args>` and checks that no secret is printed.
func cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	needCaddy(t)
	cmd := exec.Command(caddyBin, append([]string{"webhook"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running caddy webhook: %v", err)
	}
	for _, s := range cliSecrets {
		if strings.Contains(res.stdout, s) || strings.Contains(res.stderr, s) {
			t.Errorf("caddy webhook %s printed a secret:\n%s\n%s", strings.Join(args, " "), res.stdout, res.stderr)
		}
	}
	return res
}

// want checks the exit status and that stdout contains each of the texts.
func (r cliResult) want(t *testing.T, code int, texts ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
		return
	}
	for _, s := range texts {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", s, r.stdout, r.stderr)
		}
	}
}

// writeFile writes data into the test's directory and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLISend(t *testing.T) {
	c, up := cliGateway(t)
	dir := t.TempDir()
	at := time.Now().Truncate(time.Second)
	ts := strconv.FormatInt(at.Unix(), 10)

	// a Ping per sender gets 200, and the upstream has it byte for byte
	for _, s := range []struct {
		path, provider, id string
		secret             []string
		ping               func(time.Time, string) ([]byte, http.Header)
		extra              []string
	}{
		{"/vivreal", "vivreal", "evt_cli_viv", []string{"--secret-env", "CLI_VIV_SECRET"}, providers.Vivreal{}.Ping, nil},
		{"/stripe", `{"name":"stripe","tolerance":"10m"}`, "evt_cli_stripe", []string{"--secret-env", "CLI_STRIPE_SECRET"}, providers.Stripe{}.Ping, nil},
		// the private key from a file, with the newline editors add
		{"/discord", "discord", "1234567890", []string{"--secret-file", writeFile(t, dir, "discord.key", []byte(cliDiscordSeed+"\n"))}, providers.Discord{}.Ping, nil},
		{"/vev", "vev", "evt_cli_vev", []string{"--secret-env", "CLI_VEV_SECRET"}, providers.Vev{}.Ping, []string{"--bearer-env", "CLI_VEV_TOKEN"}},
	} {
		args := append([]string{"send", c.url(s.path), "--provider", s.provider, "--id", s.id, "--time", ts}, s.secret...)
		cli(t, append(args, s.extra...)...).want(t, 0, "200 OK", `{"ok":true}`)
		want, _ := s.ping(at, s.id)
		if got := up.body(s.id); !bytes.Equal(got, want) {
			t.Errorf("%s: the upstream got %q, want the Ping %q", s.path, got, want)
		}
	}

	// a given body, pretty-printed and not ASCII, is forwarded as it is
	body := []byte("{\n  \"id\": \"evt_cli_file\",\n  \"event\": \"collection.object.created\",\n  \"data\": {\"title\": \"Grüße\"}\n}\n")
	bodyFile := writeFile(t, dir, "body.json", body)
	cli(t, "send", c.url("/vivreal"), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--body-file", bodyFile).want(t, 0, "200 OK")
	if got := up.body("evt_cli_file"); !bytes.Equal(got, body) {
		t.Errorf("the upstream got %q, want %q", got, body)
	}

	// endpoint credentials from the environment: Basic
	cli(t, "send", c.url("/basic"), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--id", "evt_cli_basic",
		"--basic-env", "CLI_VEV_BASIC").want(t, 0, "200 OK")
	if up.body("evt_cli_basic") == nil {
		t.Error("the upstream did not get the delivery with Basic credentials")
	}
	// negative answers: exit status 2, the answer printed
	cli(t, "send", c.url("/basic"), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET").
		want(t, 2, "401 Unauthorized", "bad credentials")
	// a redirect is an answer, not followed
	cli(t, "send", c.url("/moved"), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--id", "evt_cli_moved").
		want(t, 2, "308 Permanent Redirect")
	if up.body("evt_cli_moved") != nil {
		t.Error("send followed the redirect")
	}
	cli(t, "send", c.url("/vivreal"), "--provider", "vivreal", "--secret-env", "CLI_WRONG_SECRET").
		want(t, 2, "401 Unauthorized", "no matching signature")
	cli(t, "send", c.url("/vev"), "--provider", "vev", "--secret-env", "CLI_VEV_SECRET").
		want(t, 2, "401 Unauthorized", "bad credentials")
	cli(t, "send", c.url("/vev"), "--provider", "vev", "--secret-env", "CLI_VEV_SECRET", "--basic-env", "CLI_VEV_BASIC").
		want(t, 2, "401 Unauthorized", "bad credentials")
	// a stale signing time: Stripe's 5-minute window
	cli(t, "send", c.url("/stripe"), "--provider", "stripe", "--secret-env", "CLI_STRIPE_SECRET",
		"--time", strconv.FormatInt(at.Add(-time.Hour).Unix(), 10)).want(t, 2, "401 Unauthorized", "malformed signature: timestamp is 1h0m")

	// could not run: exit status 1
	cli(t, "send", fmt.Sprintf("http://127.0.0.1:%d/vivreal", freePort(t)), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET").
		want(t, 1, "connection refused")
	// an answer that does not come within --timeout (the upstream holds it)
	release := up.hold("cli")
	cli(t, "send", c.url("/vivreal"), "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--header", "X-Test-Hold: cli",
		"--timeout", "500ms").want(t, 1, "Client.Timeout exceeded")
	release()
	cli(t, "send", c.url("/vivreal"), "--provider", "vivreal", "--secret-env", "CLI_NO_SUCH_VAR").want(t, 1, "CLI_NO_SUCH_VAR", "not set")
	cli(t, "send", c.url("/vev"), "--provider", "vev", "--secret-env", "CLI_VEV_SECRET", "--bearer-env", "CLI_NO_SUCH_VAR").want(t, 1, "--bearer-env")
	c.assertNoPanic()
}

// TestCLISignCurl: sign's output, given to real curl as header lines,
// makes a delivery that the gateway verifies.
func TestCLISignCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (CI=true): .ci/run installs it")
		}
		t.Skip("curl is not installed")
	}
	c, up := cliGateway(t)
	dir := t.TempDir()
	curlPost := func(path, headers, body string) (int, string) {
		t.Helper()
		out, err := exec.Command(curl, "-sS", "-H", "@"+headers, "--data-binary", "@"+body, "-w", "\n%{http_code}", c.url(path)).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		text := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(text, '\n')
		code, _ := strconv.Atoi(text[i+1:])
		return code, text[:max(i, 0)]
	}

	// a given body
	body := []byte(`{"id":"evt_curl_1","event":"collection.object.created","data":{"n":1}}`)
	bodyFile := writeFile(t, dir, "body.json", body)
	res := cli(t, "sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--body-file", bodyFile)
	res.want(t, 0, "X-Vivreal-Signature: ")
	headers := writeFile(t, dir, "headers", []byte(res.stdout))
	if code, answer := curlPost("/vivreal", headers, bodyFile); code != 200 || !bytes.Equal(up.body("evt_curl_1"), body) {
		t.Errorf("curl with sign's headers: %d %s; upstream got %q", code, answer, up.body("evt_curl_1"))
	}
	// and curl with the same headers over another body is refused
	other := writeFile(t, dir, "other.json", bytes.Replace(body, []byte(`"n":1`), []byte(`"n":2`), 1))
	if code, answer := curlPost("/vivreal", headers, other); code != 401 {
		t.Errorf("curl with sign's headers over another body: %d %s", code, answer)
	}

	// the sender's Ping, its body written by --write-body; a timestamped sender
	pingFile := filepath.Join(dir, "ping.json")
	res = cli(t, "sign", "--provider", "stripe", "--secret-env", "CLI_STRIPE_SECRET", "--ping", "--id", "evt_curl_ping", "--write-body", pingFile)
	res.want(t, 0, "Stripe-Signature: t=", "Content-Type: application/json")
	headers = writeFile(t, dir, "ping.headers", []byte(res.stdout))
	if code, answer := curlPost("/stripe", headers, pingFile); code != 200 || up.body("evt_curl_ping") == nil {
		t.Errorf("curl with sign's Ping: %d %s", code, answer)
	}
}

// capture listens for one request and returns its raw bytes, as a
// packet capture or a request bin would show them.
func capture(t *testing.T) (url string, raw func() []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var (
		mu  sync.Mutex
		got []byte
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var buf bytes.Buffer
		r, err := http.ReadRequest(bufio.NewReader(io.TeeReader(conn, &buf)))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = buf.Bytes()
		mu.Unlock()
		_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	}()
	return "http://" + ln.Addr().String() + "/hook", func() []byte {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// captureSend runs `caddy webhook send` to a capture listener and returns
// the raw request it sent.
func captureSend(t *testing.T, args ...string) []byte {
	t.Helper()
	url, raw := capture(t)
	cli(t, append([]string{"send", url}, args...)...).want(t, 0, "200 OK")
	b := raw()
	if len(b) == 0 {
		t.Fatal("nothing captured")
	}
	return b
}

// splitRequest returns the head (without the blank line) and the body of a
// raw request with Content-Length.
func splitRequest(t *testing.T, raw []byte) (string, []byte) {
	t.Helper()
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of head in %q", raw)
	}
	return string(head), body
}

// withBody rewrites a raw request's body and its Content-Length.
func withBody(t *testing.T, raw, body []byte) []byte {
	t.Helper()
	head, old := splitRequest(t, raw)
	head = strings.Replace(head, "Content-Length: "+strconv.Itoa(len(old)), "Content-Length: "+strconv.Itoa(len(body)), 1)
	return append([]byte(head+"\r\n\r\n"), body...)
}

func TestCLIVerify(t *testing.T) {
	cliEnv(t)
	dir := t.TempDir()
	save := func(name string, raw []byte) string { return writeFile(t, dir, name, raw) }

	// good: what send sent verifies, with its fields
	viv := captureSend(t, "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--id", "evt_cap_1")
	good := save("good.http", viv)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good).
		want(t, 0, "verified (key 1)", "id: evt_cap_1", "event: collection.object.created")
	// the same capture with LF line endings, as a hand-edited file has
	lf := bytes.ReplaceAll(viv, []byte("\r\n"), []byte("\n"))
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("lf.http", lf)).
		want(t, 0, "verified (key 1)")
	// the wrong secret
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_WRONG_SECRET", "--request-file", good).
		want(t, 2, "not verified: no matching signature")

	// forged: one byte of the body changed
	_, body := splitRequest(t, viv)
	forged := bytes.Replace(body, []byte("Test delivery"), []byte("Test deliverY"), 1)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("forged.http", withBody(t, viv, forged))).
		want(t, 2, "not verified: no matching signature")
	// the diagnostic hints of the handler's log line: a plain forgery has
	// none; a newline added after signing, and a signature sent as
	// base64, are named
	nl := cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("newline.http", withBody(t, viv, append(append([]byte(nil), body...), '\n'))))
	nl.want(t, 2, "not verified: no matching signature", "hint: the signature matches the body without its trailing newline")
	sigLine := regexp.MustCompile(`X-Vivreal-Signature: (sha256=)?([0-9a-f]{64})`).FindSubmatch(viv)
	if sigLine == nil {
		t.Fatalf("no hex signature in the capture:\n%s", viv)
	}
	mac, _ := hex.DecodeString(string(sigLine[2]))
	b64 := bytes.Replace(viv, sigLine[2], []byte(base64.StdEncoding.EncodeToString(mac)), 1)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("base64.http", b64)).
		want(t, 2, "not verified: malformed signature", "hint: the signature is base64 where this sender's are hex")
	if r := cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_WRONG_SECRET", "--request-file", good); strings.Contains(r.stdout+r.stderr, "hint:") {
		t.Errorf("a plain wrong secret got a hint:\n%s", r.stdout)
	}

	// a chunked capture gets the same encoding hint
	b64head, _ := splitRequest(t, b64)
	b64head = strings.Replace(b64head, "Content-Length: "+strconv.Itoa(len(body)), "Transfer-Encoding: chunked", 1)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file",
		save("b64-chunked.http", fmt.Appendf(nil, "%s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", b64head, len(body), body))).
		want(t, 2, "hint: the signature is base64 where this sender's are hex")
	// an HTTP/2 request line, as curl -v shows it, is read as HTTP/1.1
	h2 := bytes.Replace(viv, []byte(" HTTP/1.1\r\n"), []byte(" HTTP/2\r\n"), 1)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("h2.http", h2)).
		want(t, 0, "verified (key 1)", "note: an HTTP/2 or HTTP/3 request line")
	// bytes after the body are reported, not verified
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("junk.http", append(append([]byte(nil), viv...), "junk after"...))).
		want(t, 0, "verified (key 1)", "note: 10 bytes after the request's body were ignored")
	// a secret given in place of the variable's name is not echoed (cli
	// fails the test if any output holds one), nor is a credential taken
	// as a header
	for _, v := range []string{cliVivSecret, cliStripeSecret} {
		cli(t, "verify", "--provider", "vivreal", "--secret-env", v, "--request-file", good).want(t, 1, "not its value")
	}
	cli(t, "sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--ping", "--header", "Authorization: Bearer "+cliVevToken).
		want(t, 1, "credentials are never taken as arguments")

	// no signature at all
	noSig := bytes.Replace(viv, []byte("X-Vivreal-Signature"), []byte("X-Other-Signature"), 1)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("nosig.http", noSig)).
		want(t, 2, "not verified: missing signature: no X-Vivreal-Signature header")

	// a hand-made capture without Content-Length: its body is empty, and
	// the note says why
	headNoCL, _ := splitRequest(t, viv)
	headNoCL = regexp.MustCompile(`\r\nContent-Length: \d+`).ReplaceAllString(headNoCL, "")
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("nocl.http", append([]byte(headNoCL+"\r\n\r\n"), body...))).
		want(t, 2, "not verified: no matching signature", "note: the request has no Content-Length")

	// re-encoded: the same event pretty-printed by a proxy
	pretty := indent(t, body)
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("pretty.http", withBody(t, viv, pretty))).
		want(t, 2, "not verified: no matching signature")
	// a Vev event pretty-printed verifies with stringify_fallback, the form it takes
	vev := captureSend(t, "--provider", "vev", "--secret-env", "CLI_VEV_SECRET", "--id", "evt_cap_vev")
	_, vbody := splitRequest(t, vev)
	vevPretty := save("vev-pretty.http", withBody(t, vev, indent(t, vbody)))
	cli(t, "verify", "--provider", "vev", "--secret-env", "CLI_VEV_SECRET", "--request-file", vevPretty).
		want(t, 2, "not verified: no matching signature")
	cli(t, "verify", "--provider", `{"name":"vev","stringify_fallback":true}`, "--secret-env", "CLI_VEV_SECRET", "--request-file", vevPretty).
		want(t, 0, "verified (key 1)", "signed_form: stringify")

	// chunked: the same delivery sent in chunks
	head, _ := splitRequest(t, viv)
	head = strings.Replace(head, "Content-Length: "+strconv.Itoa(len(body)), "Transfer-Encoding: chunked", 1)
	half := len(body) / 2
	chunked := fmt.Sprintf("%s\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", head, half, body[:half], len(body)-half, body[half:])
	cli(t, "verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("chunked.http", []byte(chunked))).
		want(t, 0, "verified (key 1)")

	// a stale timestamp: refused now, verified at the time it was signed
	signedAt := time.Now().Add(-time.Hour).Truncate(time.Second)
	stripe := save("stripe.http", captureSend(t, "--provider", "stripe", "--secret-env", "CLI_STRIPE_SECRET",
		"--time", signedAt.Format(time.RFC3339)))
	cli(t, "verify", "--provider", "stripe", "--secret-env", "CLI_STRIPE_SECRET", "--request-file", stripe).
		want(t, 2, "not verified: malformed signature: timestamp is 1h0m")
	cli(t, "verify", "--provider", "stripe", "--secret-env", "CLI_STRIPE_SECRET", "--request-file", stripe,
		"--at", signedAt.Add(time.Minute).Format(time.RFC3339)).want(t, 0, "verified (key 1)")
	cli(t, "verify", "--provider", `{"name":"stripe","tolerance":"2h"}`, "--secret-env", "CLI_STRIPE_SECRET", "--request-file", stripe).
		want(t, 0, "verified (key 1)")

	// a key-pair sender: sign with the private key, verify with the public one
	seedFile := writeFile(t, dir, "discord.key", []byte(cliDiscordSeed+"\n"))
	discord := save("discord.http", captureSend(t, "--provider", "discord", "--secret-file", seedFile))
	cli(t, "verify", "--provider", "discord", "--secret-env", "CLI_DISCORD_PUBLIC", "--request-file", discord).
		want(t, 0, "verified (key 1)", "event: 1")
	// the seed where the public key belongs reads as another public key
	cli(t, "verify", "--provider", "discord", "--secret-file", seedFile, "--request-file", discord).want(t, 2, "not verified")
	if pub := ed25519.NewKeyFromSeed(mustHex(t, cliDiscordSeed)).Public().(ed25519.PublicKey); hex.EncodeToString(pub) != cliDiscordPublic {
		t.Fatal("the test's Discord key pair does not match")
	}

	// an hmac configuration that signs a header of the caller's (--header)
	hmacP := `{"name":"hmac","signatures":[{"header":"X-Sig","pattern":"sha256={sig}"}],"signed":"{header.X-Tenant}:{body}","id":{"body":"id"}}`
	tenant := captureSend(t, "--provider", hmacP, "--secret-env", "CLI_VIV_SECRET", "--header", "X-Tenant: t1", "--id", "evt_cap_hmac")
	cli(t, "verify", "--provider", hmacP, "--secret-env", "CLI_VIV_SECRET", "--request-file", save("tenant.http", tenant)).
		want(t, 0, "verified (key 1)", "id: evt_cap_hmac")
	cli(t, "verify", "--provider", hmacP, "--secret-env", "CLI_VIV_SECRET", "--request-file",
		save("tenant2.http", bytes.Replace(tenant, []byte("X-Tenant: t1"), []byte("X-Tenant: t2"), 1))).
		want(t, 2, "not verified: no matching signature")
	cli(t, "sign", "--provider", hmacP, "--secret-env", "CLI_VIV_SECRET").want(t, 1, "X-Tenant", "--header")

	// the help documents the exit statuses
	cli(t, "--help").want(t, 0, "Exit status of sign, send and verify: 0 signed", "1 the command could not run", "2 a negative answer")

	// could not run: exit status 1
	for _, args := range [][]string{
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET"},                                               // no --request-file
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_NO_SUCH_VAR", "--request-file", good},                      // no secret
		{"verify", "--provider", "vivreal", "--request-file", good},                                                         // no secret given
		{"verify", "--provider", "no_such_sender", "--secret-env", "CLI_VIV_SECRET", "--request-file", good},                // unknown sender
		{"verify", "--secret-env", "CLI_VIV_SECRET", "--request-file", good},                                                // no provider
		{"verify", "--provider", "vivreal", "--secret", cliVivSecret, "--request-file", good},                               // a secret as an argument
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", filepath.Join(dir, "none")}, // no file
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", save("junk.http", []byte("not http\n"))},
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good, "--at", "yesterday"},
		{"verify", "extra", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good},
		{"sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--secret-file", seedFile},
		{"sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--body-file", good, "--ping"},
		{"sign", "--provider", "discord", "--secret-env", "CLI_VIV_SECRET"}, // an HMAC secret for a key-pair sender
		{"sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--header", "no colon"},
		{"send", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET"}, // no URL
		// a flag the verb does not take
		{"sign", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good},
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good, "--insecure"},
		{"verify", "--provider", "vivreal", "--secret-env", "CLI_VIV_SECRET", "--request-file", good, "--state", "dead"},
	} {
		if r := cli(t, args...); r.code != 1 {
			t.Errorf("caddy webhook %s: exit status %d, want 1\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

// indent pretty-prints a JSON text, its members in their order.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
