// Package e2e runs the real Caddy binary, built from ./cmd/caddy with this
// module, as a separate process, and tests it from the outside: metrics on
// the admin endpoint, the memory budget (Caddy's RSS), stalled clients,
// upstream faults and `caddy reload` under load.
//
// The first test that needs it builds the binary (`go build ./cmd/caddy`
// at the module root), once, into a temporary directory that TestMain
// removes. Every test starts its own Caddy on free 127.0.0.1 ports (never
// the root package's 2999/9080/9443) with a generated Caddyfile, and kills
// it (its whole process group) in t.Cleanup. Under -short everything is
// skipped.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The binary, built once by the first test that needs it (so that
// `go test -list` or a benchmark-only run does not build it), into binDir.
var (
	binDir    string
	buildOnce sync.Once
	caddyBin  string
	buildErr  error
)

// running holds the process groups started, killed again in TestMain in
// case a test's Cleanup never ran.
var running sync.Map // pid -> struct{}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	running.Range(func(k, _ any) bool {
		_ = syscall.Kill(-k.(int), syscall.SIGKILL)
		return true
	})
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// build runs `go build -o <tmpdir>/caddy ./cmd/caddy` at the module root.
func build() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the module")
	}
	if binDir, err = os.MkdirTemp("", "webhook-verify-e2e-"); err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, "caddy")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
}

// needCaddy skips under -short, and builds the binary on first use.
func needCaddy(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: runs a real Caddy process; skipped with -short")
	}
	buildOnce.Do(func() { caddyBin, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("building caddy: %v", buildErr)
	}
}

// freePort returns a port free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Secrets and the token the generated configs use.
const (
	vivSecret = "e2e-vivreal-secret"
	vevSecret = "e2e-vev-secret"
	vevToken  = "e2e-vev-token"
)

// globals is the global options block of every generated Caddyfile.
func globals(admin int, extra string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	skip_install_trust
	persist_config off
	default_bind 127.0.0.1
%s
}
`, admin, extra)
}

// ---- the Caddy process ----

type caddyProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	admin   int
	http    int
	dir     string
	cfgPath string
	logs    *syncBuffer
	exited  chan struct{}
	waitErr error
}

// syncBuffer collects the process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCaddy writes caddyfile and runs `caddy run` on it, waiting until the
// admin endpoint and http://127.0.0.1:<httpPort>/healthz answer.
func startCaddy(t *testing.T, admin, httpPort int, caddyfile string) *caddyProc {
	t.Helper()
	needCaddy(t)
	dir := t.TempDir()
	c := &caddyProc{t: t, admin: admin, http: httpPort, dir: dir, cfgPath: filepath.Join(dir, "Caddyfile"),
		logs: new(syncBuffer), exited: make(chan struct{})}
	c.writeConfig(caddyfile)
	cmd := exec.Command(caddyBin, "run", "--config", c.cfgPath, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = c.env()
	cmd.Stdout = c.logs
	cmd.Stderr = c.logs
	// own process group, so Cleanup (and TestMain) can kill everything it
	// started; and killed with us if the test binary dies
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd = cmd
	pid := cmd.Process.Pid
	running.Store(pid, struct{}{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("caddy (pid %d) did not exit after SIGKILL", pid)
		}
		running.Delete(pid)
		if t.Failed() {
			t.Logf("caddy output (last 8 KiB):\n%s", tail(c.logs.String(), 8<<10))
		}
	})
	c.waitReady(15 * time.Second)
	return c
}

func (c *caddyProc) env() []string {
	env := os.Environ()
	return append(env, "HOME="+c.dir, "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"))
}

func (c *caddyProc) writeConfig(caddyfile string) {
	c.t.Helper()
	if err := os.WriteFile(c.cfgPath, []byte(caddyfile), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *caddyProc) pid() int { return c.cmd.Process.Pid }

func (c *caddyProc) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *caddyProc) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.http, path)
}

func (c *caddyProc) waitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if !c.alive() {
			c.t.Fatalf("caddy exited at start-up (%v):\n%s", c.waitErr, tail(c.logs.String(), 8<<10))
		}
		ok := 0
		for _, u := range []string{fmt.Sprintf("http://127.0.0.1:%d/config/", c.admin), c.url("/healthz")} {
			if resp, err := client.Get(u); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok++
				}
			}
		}
		if ok == 2 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("caddy not ready after %s:\n%s", timeout, tail(c.logs.String(), 8<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reload writes caddyfile and runs `caddy reload` on it; it returns the
// command's error and output.
func (c *caddyProc) reload(caddyfile string, force bool) (string, error) {
	c.t.Helper()
	c.writeConfig(caddyfile)
	args := []string{"reload", "--config", c.cfgPath, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", c.admin)}
	if force {
		args = append(args, "--force")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// assertNoPanic fails the test if Caddy's output mentions a panic.
func (c *caddyProc) assertNoPanic() {
	c.t.Helper()
	if l := c.logs.String(); strings.Contains(strings.ToLower(l), "panic") {
		c.t.Errorf("caddy's output mentions a panic:\n%s", tail(l, 8<<10))
	}
}

// memStatus returns VmRSS and VmHWM of the process, in bytes.
func (c *caddyProc) memStatus() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.pid()))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if rest, ok := strings.CutPrefix(line, k.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				*k.dst = kb << 10
			}
		}
	}
	return rss, hwm, sc.Err()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// ---- metrics ----

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type metrics []sample

// scrape fetches the admin endpoint's /metrics in the text format.
func (c *caddyProc) scrape() metrics {
	c.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.admin))
	if err != nil {
		c.t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("scraping /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("/metrics: status %d: %s", resp.StatusCode, tail(string(body), 2000))
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		c.t.Fatalf("parsing /metrics: %v", err)
	}
	return m
}

// parseMetrics parses the Prometheus text exposition format (version
// 0.0.4): `name{k="v",...} value [timestamp]` lines; comments skipped.
func parseMetrics(text string) (metrics, error) {
	var out metrics
	for ln, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			return nil, fmt.Errorf("line %d: %q", ln+1, line)
		}
		s.name = line[:i]
		rest := line[i:]
		if rest[0] == '{' {
			rest = rest[1:]
			for {
				rest = strings.TrimLeft(rest, " ,")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
					return nil, fmt.Errorf("line %d: bad labels: %q", ln+1, line)
				}
				key := strings.TrimSpace(rest[:eq])
				rest = rest[eq+2:]
				var val strings.Builder
				j := 0
				for ; j < len(rest) && rest[j] != '"'; j++ {
					if rest[j] == '\\' && j+1 < len(rest) {
						j++
						switch rest[j] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[j])
						}
						continue
					}
					val.WriteByte(rest[j])
				}
				if j >= len(rest) {
					return nil, fmt.Errorf("line %d: unterminated label value: %q", ln+1, line)
				}
				s.labels[key] = val.String()
				rest = rest[j+1:]
			}
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 {
			return nil, fmt.Errorf("line %d: no value: %q", ln+1, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %v", ln+1, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, nil
}

// get returns the value of the sample named name whose labels are exactly
// kv (pairs of key, value).
func (m metrics) get(name string, kv ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	for _, s := range m {
		if s.name != name || len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// must is get, failing the test if the sample is absent.
func (m metrics) must(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, ok := m.get(name, kv...)
	if !ok {
		t.Fatalf("metric %s%v not found", name, kv)
	}
	return v
}

const (
	mRequests = "caddy_webhook_verify_requests_total"
	mBytes    = "caddy_webhook_verify_body_bytes"
	mDuration = "caddy_webhook_verify_duration_seconds"
	mBuffered = "caddy_webhook_verify_buffered_bytes"
)

// requests returns caddy_webhook_verify_requests_total{provider,outcome}.
func (m metrics) requests(t *testing.T, provider, outcome string) float64 {
	t.Helper()
	return m.must(t, mRequests, "provider", provider, "outcome", outcome)
}

// waitBuffered polls caddy_webhook_verify_buffered_bytes{provider} until
// cond holds, failing after timeout; it returns the last value.
func (c *caddyProc) waitBuffered(provider string, timeout time.Duration, what string, cond func(float64) bool) float64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := c.scrape().must(c.t, mBuffered, "provider", provider)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s{provider=%q} = %v after %s", what, mBuffered, provider, v, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- events and signatures ----

// event returns a compact Vivreal event of at least size bytes (exactly
// size when size is above the event's own length).
func event(id string, size int) []byte {
	head := `{"id":"` + id + `","event":"collection.object.created","timestamp":"2026-11-22T10:00:00Z","data":{"pad":"`
	tailS := `"}}`
	pad := max(0, size-len(head)-len(tailS))
	return []byte(head + strings.Repeat("x", pad) + tailS)
}

// vevEvent returns a compact Vev PUBLISH event.
func vevEvent(id string) []byte {
	return []byte(`{"id":"` + id + `","hosting":"h_1","event":"PUBLISH","payload":{"html":"<h1>Hi</h1>"}}`)
}

func signViv(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func signVev(secret string, body []byte) string {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write(body)
	return "sha512=" + hex.EncodeToString(m.Sum(nil))
}

// post sends a Vivreal-style POST with the given signature header value
// (none when sig is empty).
func post(client *http.Client, url string, body []byte, sig string, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Vivreal-Signature", sig)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(client, req)
}

func do(client *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// ---- the recording upstream ----

// Upstream behaviours.
const (
	upOK   int32 = iota // 200
	upFail              // 500
)

// upstream is the backend behind reverse_proxy. It records, per event id,
// the requests it received and those it accepted (answered 2xx to a
// gateway that was still waiting). It can be stopped (its port closed)
// and started again on the same port. A request header X-Test-Hold: <name>
// holds that request until the test calls the release that hold(name)
// returned, or the gateway gives up.
type upstream struct {
	t    *testing.T
	addr string
	mode atomic.Int32

	mu       sync.Mutex
	srv      *http.Server
	received map[string]int
	accepted map[string]int
	bodies   map[string][]byte
	holds    map[string]chan struct{}
	problems []string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{t: t, received: map[string]int{}, accepted: map[string]int{}, bodies: map[string][]byte{},
		holds: map[string]chan struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(ln)
	t.Cleanup(func() {
		u.stop()
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, p := range u.problems {
			t.Errorf("upstream: %s", p)
		}
	})
	return u
}

func (u *upstream) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(u.handle), ReadHeaderTimeout: 10 * time.Second}
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the port: the gateway's dial is refused.
func (u *upstream) stop() {
	u.mu.Lock()
	srv := u.srv
	u.srv = nil
	u.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// start listens on the same port again.
func (u *upstream) start() {
	u.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		u.t.Fatalf("upstream: listening again on %s: %v", u.addr, err)
	}
	u.serve(ln)
}

func (u *upstream) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		u.problem("reading body: %v", err)
		return
	}
	var ev struct {
		ID json.RawMessage `json:"id"`
	}
	id := ""
	if json.Unmarshal(body, &ev) == nil {
		var s string
		if json.Unmarshal(ev.ID, &s) == nil {
			id = s
		} else {
			id = string(ev.ID)
		}
	}
	if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		u.problem("id %q: Content-Length %q for a %d-byte body", id, cl, len(body))
	}
	u.mu.Lock()
	u.received[id]++
	u.bodies[id] = body
	var hold chan struct{}
	if name := r.Header.Get("X-Test-Hold"); name != "" {
		if hold = u.holds[name]; hold == nil {
			u.problems = append(u.problems, fmt.Sprintf("id %q: X-Test-Hold %q without hold(%[2]q)", id, name))
		}
	}
	u.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return // the gateway gave up: not taken
		}
	}

	if u.mode.Load() == upFail {
		http.Error(w, "backend broken", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"ok":true}`))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if r.Context().Err() == nil {
		u.mu.Lock()
		u.accepted[id]++
		u.mu.Unlock()
	}
}

// hold makes the requests with X-Test-Hold: name wait until release is
// called (or the gateway gives up on them): the test, not a timer, decides
// how long they stay in flight. Release is idempotent and runs at cleanup.
func (u *upstream) hold(name string) (release func()) {
	ch := make(chan struct{})
	u.mu.Lock()
	u.holds[name] = ch
	u.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	u.t.Cleanup(release)
	return release
}

func (u *upstream) problem(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.problems = append(u.problems, fmt.Sprintf(format, args...))
}

func (u *upstream) counts(id string) (received, accepted int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.received[id], u.accepted[id]
}

func (u *upstream) body(id string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bodies[id]
}

func (u *upstream) totalReceived() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, v := range u.received {
		n += v
	}
	return n
}

// waitReceived polls until the upstream has received id n times.
func (u *upstream) waitReceived(id string, n int, timeout time.Duration) {
	u.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got, _ := u.counts(id); got >= n {
			return
		}
		if time.Now().After(deadline) {
			got, _ := u.counts(id)
			u.t.Fatalf("upstream received %q %d times, want %d, after %s", id, got, n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- raw connections ----

// rawPost opens a TCP connection and writes a request's head and the first
// part of its body; the caller writes the rest, or stalls.
func rawPost(t *testing.T, port int, path string, headers map[string]string, first []byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", path, port)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append([]byte(b.String()), first...)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readResponse reads one HTTP response from conn.
func readResponse(conn net.Conn, timeout time.Duration) (*http.Response, []byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// newClient is a client with its own connection pool.
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
		Proxy:               nil,
	}}
}
