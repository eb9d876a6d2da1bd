package webhookverify

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// `caddy webhook sign|send|verify`: sign a delivery for any sender, send a
// signed test delivery to a route, verify a captured request offline. The
// senders' own Sign and Ping (providers.Signer) do the signing, and a real,
// provisioned Handler the verifying, so every sender works without code of
// its own here.

// Exit statuses of sign, send and verify.
const (
	exitOK       = 0 // signed; sent and answered 2xx; verified
	exitCannot   = 1 // the command could not run
	exitNegative = 2 // send: the answer was not 2xx; verify: it does not verify
)

// signFlags registers the flags of sign, send and verify.
func signFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("provider", "", "sign/send/verify: the sender, a module name (github) or its JSON object ('{\"name\":\"stripe\",\"tolerance\":\"10m\"}')")
	f.String("secret-env", "", "sign/send/verify: the environment variable that holds the secret (sign/send: the private key of a key-pair sender)")
	f.String("secret-file", "", "sign/send/verify: the file that holds the secret (one trailing newline trimmed)")
	f.String("body-file", "", "sign/send: the body to sign (default: the sender's test event)")
	f.Bool("ping", false, "sign/send: sign the sender's realistic test event (the default without --body-file)")
	f.String("write-body", "", "sign: also write the signed body to this file")
	f.StringArray("header", nil, "sign/send: an extra header 'Name: value' (repeatable; not for secrets)")
	f.String("id", "", "sign/send: the event id (default: a fresh one)")
	f.String("time", "", "sign/send: the signing time, RFC 3339 or unix seconds (default: now)")
	f.String("bearer-env", "", "send: the environment variable that holds the endpoint's bearer token")
	f.String("basic-env", "", "send: the environment variable that holds the endpoint's user:password")
	f.Bool("insecure", false, "send: do not verify the server's certificate (a local CA)")
	f.String("ca-file", "", "send: trust this PEM CA certificate for the server's certificate")
	f.Duration("timeout", 30*time.Second, "send: give up after this long")
	f.String("request-file", "", "verify: the captured raw HTTP/1.x request")
	f.String("at", "", "verify: the clock, RFC 3339 or unix seconds (default: now), for a signed timestamp")
}

// cmdWebhookSign runs sign, send or verify.
func cmdWebhookSign(fl caddycmd.Flags, args []string) (int, error) {
	verb := args[0]
	want := 1
	if verb == "send" {
		want = 2
	}
	if len(args) != want {
		if verb == "send" {
			return exitCannot, errors.New("usage: caddy webhook send <url> --provider <p> --secret-env VAR [--body-file F]")
		}
		return exitCannot, fmt.Errorf("usage: caddy webhook %s takes no argument but flags (caddy help webhook)", verb)
	}
	if err := checkVerbFlags(fl, verb); err != nil {
		return exitCannot, err
	}
	provider, err := providerJSON(fl.String("provider"))
	if err != nil {
		return exitCannot, err
	}
	secret, err := readSecret(fl.String("secret-env"), fl.String("secret-file"))
	if err != nil {
		return exitCannot, err
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if verb == "verify" {
		return cliVerify(ctx, fl, provider, secret)
	}
	d, err := signDelivery(ctx, fl, provider, secret)
	if err != nil {
		return exitCannot, err
	}
	if verb == "sign" {
		if f := fl.String("write-body"); f != "" {
			if err := os.WriteFile(f, d.body, 0o600); err != nil { // a delivery may hold personal data
				return exitCannot, err
			}
		}
		_, err := os.Stdout.WriteString(headerLines(d.header))
		return exitOK, err
	}
	return cliSend(fl, args[1], d)
}

// verbFlags are the flags each verb takes; any other flag given is a
// mistake worth stopping for (a --request-file to sign, say).
var verbFlags = map[string][]string{
	"sign":   {"provider", "secret-env", "secret-file", "body-file", "ping", "write-body", "header", "id", "time"},
	"send":   {"provider", "secret-env", "secret-file", "body-file", "ping", "header", "id", "time", "bearer-env", "basic-env", "insecure", "ca-file", "timeout"},
	"verify": {"provider", "secret-env", "secret-file", "request-file", "at"},
	"queue":  {"address", "config", "adapter", "state", "limit", "body"},
}

// checkVerbFlags refuses a flag given to a verb that does not take it.
func checkVerbFlags(fl caddycmd.Flags, verb string) error {
	var all []string
	for _, names := range verbFlags {
		all = append(all, names...)
	}
	slices.Sort(all) // the first wrong flag in name order, whatever the map's
	all = slices.Compact(all)
	for _, name := range all {
		if fl.Lookup(name) != nil && fl.Changed(name) && !slices.Contains(verbFlags[verb], name) {
			return fmt.Errorf("--%s does not apply to caddy webhook %s (it takes --%s)", name, verb, strings.Join(verbFlags[verb], ", --"))
		}
	}
	return nil
}

// providerJSON reads --provider: a module name, or a JSON object with
// "name".
func providerJSON(s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("--provider is required: a sender (%s) or its JSON object", strings.Join(providerNames(), ", "))
	}
	var name string
	raw := json.RawMessage(s)
	if strings.HasPrefix(s, "{") {
		var obj struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("--provider is not a JSON object: %v", err)
		}
		name = obj.Name
	} else {
		name = s
		raw, _ = json.Marshal(map[string]string{"name": s})
	}
	if !slices.Contains(providerNames(), name) {
		return nil, fmt.Errorf("--provider: unknown sender %q: use %s (or a JSON object with \"name\")", name, strings.Join(providerNames(), ", "))
	}
	return raw, nil
}

// readSecret reads the secret from the environment or a file, never from
// an argument. The value never appears in an error, and neither does what
// was given to the flag unless it looks like a variable's name (a user who
// typed the secret itself in its place must not see it echoed) or the
// file exists.
func readSecret(env, file string) (string, error) {
	switch {
	case env != "" && file != "":
		return "", errors.New("give the secret once: --secret-env or --secret-file, not both")
	case env != "":
		return readEnv("--secret-env", env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", errors.New("--secret-file: no such file (give the path of a file that holds the secret)")
			}
			return "", fmt.Errorf("--secret-file: cannot read it: %v", errors.Unwrap(err))
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("--secret-file %s is empty", file)
		}
		return v, nil
	}
	return "", errors.New("no secret: give --secret-env VAR (an environment variable's name) or --secret-file FILE; secrets are never taken as arguments")
}

// envName is what an environment variable's name conventionally looks
// like. Only such a name is repeated in an error: a secret given in its
// place (Stripe's whsec_… would pass a laxer pattern) never is.
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,63}$`)

// readEnv reads the environment variable name given to flag.
func readEnv(flag, name string) (string, error) {
	if !envName.MatchString(name) {
		return "", fmt.Errorf("%s takes an environment variable's NAME in capitals (such as WEBHOOK_SECRET), not its value; what was given is not such a name and is not repeated here", flag)
	}
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%s %s: the environment variable is not set or empty: export it first", flag, name)
	}
	return v, nil
}

// publicKeyText writes a public key as the senders show it: Ed25519 in
// hex (Discord), others as base64 PKIX DER (SendGrid).
func publicKeyText(pub crypto.PublicKey) string {
	if k, ok := pub.(ed25519.PublicKey); ok {
		return hex.EncodeToString(k)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "(unprintable)"
	}
	return base64.StdEncoding.EncodeToString(der)
}

// parseTime reads an RFC 3339 time or unix seconds; by default, now, in
// UTC (what senders that sign a date write).
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: give an RFC 3339 time (2026-11-30T12:00:00Z) or unix seconds", flag, s)
	}
	return t, nil
}

// delivery is a signed request: its body and all its headers.
type delivery struct {
	body   []byte
	header http.Header
}

// signDelivery builds the delivery sign and send make: the sender's test
// event (or --body-file), the --header extras, then the signature headers
// of the sender's Sign under the secret.
func signDelivery(ctx caddy.Context, fl caddycmd.Flags, provider json.RawMessage, secret string) (delivery, error) {
	holder := Handler{ProviderRaw: provider} // loaded by the handler's own field, as Provision loads it
	mod, err := ctx.LoadModule(&holder, "ProviderRaw")
	if err != nil {
		return delivery{}, fmt.Errorf("--provider: %v", err)
	}
	p := mod.(providers.Provider)
	signer, ok := mod.(providers.Signer)
	if !ok {
		return delivery{}, fmt.Errorf("sender %s cannot sign", caddy.GetModuleName(mod))
	}
	now, err := parseTime("time", fl.String("time"))
	if err != nil {
		return delivery{}, err
	}
	id := fl.String("id")
	var d delivery
	switch file := fl.String("body-file"); {
	case file != "" && fl.Bool("ping"):
		return delivery{}, errors.New("give --body-file or --ping, not both")
	case file != "":
		if d.body, err = os.ReadFile(file); err != nil {
			return delivery{}, fmt.Errorf("--body-file: %v", err)
		}
		d.header = http.Header{}
		if json.Valid(d.body) {
			d.header.Set("Content-Type", "application/json")
		}
	default:
		d.body, d.header = signer.Ping(now, id)
	}
	extra, err := parseHeaders(fl)
	if err != nil {
		return delivery{}, err
	}
	for k, v := range extra {
		d.header[k] = v
	}
	key, err := providers.KeySigner(p, secret)
	if err != nil {
		return delivery{}, fmt.Errorf("the secret: %v", err)
	}
	if pd, ok := p.(providers.PublicKeyDecoder); ok && pd.PublicKeys() {
		// a public key of 64 hex digits reads as an Ed25519 seed too: say
		// which key pair signs, so that a mistaken key shows
		if priv, err := providers.ParsePrivateKey(secret); err == nil {
			fmt.Fprintf(os.Stderr, "note: signing with the private key whose public key is %s: the route must be configured with that public key\n", publicKeyText(priv.Public()))
		}
	}
	sh, err := signer.Sign(providers.SignRequest{Body: d.body, Time: now, ID: id, Header: d.header, Sign: key})
	if err != nil {
		return delivery{}, fmt.Errorf("signing: %v", err)
	}
	for k, v := range sh {
		d.header[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	return d, nil
}

// parseHeaders reads the --header 'Name: value' flags.
func parseHeaders(fl caddycmd.Flags) (http.Header, error) {
	vals, err := fl.GetStringArray("header")
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, v := range vals {
		name, val, ok := strings.Cut(v, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, errors.New("--header: write 'Name: value'")
		}
		switch textproto.CanonicalMIMEHeaderKey(name) {
		case "Authorization", "Proxy-Authorization", "Cookie":
			return nil, fmt.Errorf("--header %s: credentials are never taken as arguments: use --bearer-env or --basic-env", name)
		}
		h.Add(name, textproto.TrimString(val))
	}
	return h, nil
}

// headerLines prints a header as sorted "Name: value" lines.
func headerLines(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

// cliSend POSTs the delivery to url and prints the answer.
func cliSend(fl caddycmd.Flags, url string, d delivery) (int, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if fl.Bool("insecure") {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // asked for, for a local CA
	}
	if f := fl.String("ca-file"); f != "" {
		pemData, err := os.ReadFile(f)
		if err != nil {
			return exitCannot, fmt.Errorf("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return exitCannot, fmt.Errorf("--ca-file %s holds no PEM certificate", f)
		}
		tlsCfg.RootCAs = pool
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return exitCannot, fmt.Errorf("url: %v", err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return exitCannot, fmt.Errorf("url %q: give an http:// or https:// URL", url)
	}
	for k, v := range d.header {
		req.Header[k] = v
	}
	if host := d.header.Get("Host"); host != "" {
		req.Host = host // Go's client sends req.Host, not a Host header
		req.Header.Del("Host")
	}
	if env := fl.String("bearer-env"); env != "" {
		tok, err := readEnv("--bearer-env", env)
		if err != nil {
			return exitCannot, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if env := fl.String("basic-env"); env != "" {
		v, err := readEnv("--basic-env", env)
		if err != nil {
			return exitCannot, err
		}
		user, pass, ok := strings.Cut(v, ":")
		if !ok {
			return exitCannot, fmt.Errorf("--basic-env %s: the variable must hold user:password", env)
		}
		req.SetBasicAuth(user, pass)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "caddy-webhook-send")
	}
	timeout, _ := fl.GetDuration("timeout")
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true},
		// a sender does not follow redirects: a 3xx is the answer
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		return exitCannot, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20+1))
	if err != nil {
		return exitCannot, fmt.Errorf("reading the answer: %v", err)
	}
	truncated := len(body) > 1<<20
	body = body[:min(len(body), 1<<20)]
	fmt.Printf("%s %s\n", res.Proto, res.Status)
	_, _ = os.Stdout.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Println()
	}
	if truncated {
		fmt.Fprintln(os.Stderr, "note: the answer was cut after 1 MiB")
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return exitNegative, nil
	}
	return exitOK, nil
}

// cliSecretEnv is the variable of this process through which verify hands
// the secret to the handler as {env.*}, exactly as read (no placeholder in
// the secret itself is ever expanded).
const cliSecretEnv = "CADDY_WEBHOOK_VERIFY_CLI_SECRET"

// reHTTP2Line is the version of an HTTP/2 or HTTP/3 request line.
var reHTTP2Line = regexp.MustCompile(`(?m)\A[A-Z]+ \S+( HTTP/[23](\.0)?)\r?$`)

// cliVerify runs the captured request through a real, provisioned handler.
func cliVerify(ctx caddy.Context, fl caddycmd.Flags, provider json.RawMessage, secret string) (int, error) {
	file := fl.String("request-file")
	if file == "" {
		return exitCannot, errors.New("--request-file is required: a captured raw HTTP request")
	}
	at, err := parseTime("at", fl.String("at"))
	if err != nil {
		return exitCannot, err
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return exitCannot, fmt.Errorf("--request-file: %v", err)
	}
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a BOM an editor added
	// a request line as curl -v or a browser shows an HTTP/2 or HTTP/3
	// request: read as HTTP/1.1 (the head is the same)
	if m := reHTTP2Line.FindSubmatchIndex(raw); m != nil {
		raw = append(append(append([]byte(nil), raw[:m[2]]...), " HTTP/1.1"...), raw[m[3]:]...)
		fmt.Fprintln(os.Stderr, "note: an HTTP/2 or HTTP/3 request line, read as HTTP/1.1; the body is what Content-Length says")
	}
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	r, err := http.ReadRequest(br)
	if err != nil {
		return exitCannot, fmt.Errorf("--request-file %s is not an HTTP/1.x request: %v", file, err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if len(r.TransferEncoding) > 0 {
			return exitCannot, fmt.Errorf("--request-file %s: the body is not chunked although Transfer-Encoding says so (%v): if the capturing tool decoded it, replace Transfer-Encoding with Content-Length", file, err)
		}
		return exitCannot, fmt.Errorf("--request-file %s: Content-Length says %d bytes, fewer follow the head (%v)", file, r.ContentLength, err)
	}
	if rest := raw[len(raw)-br.Buffered()-src.Len():]; len(bytes.TrimSpace(rest)) > 0 {
		if r.Header.Get("Content-Length") == "" && len(r.TransferEncoding) == 0 {
			fmt.Fprintf(os.Stderr, "note: the request has no Content-Length (nor chunked encoding), so its body is empty and the %d bytes after its head are ignored: add Content-Length: <the body's length in bytes>\n", len(rest))
		} else {
			fmt.Fprintf(os.Stderr, "note: %d bytes after the request's body were ignored: the body is what Content-Length (%d) or the chunked encoding says\n", len(rest), r.ContentLength)
		}
	}
	// the hints treat the body as declared (a chunked one is not
	// probed for an encoding hint): what the sender sent in chunks is
	// checked as the same bytes with their length
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.RemoteAddr = "capture"

	if err := os.Setenv(cliSecretEnv, secret); err != nil {
		return exitCannot, err
	}
	defer os.Unsetenv(cliSecretEnv)
	// a capture as large as the gateway may take (example.Caddyfile
	// allows 20 MiB for Vev): the size limit is the gateway's setting,
	// not what this command checks
	maxBody := min(max(int64(len(body)), DefaultMaxBodySize), maxMaxBodySize)
	cfg, _ := json.Marshal(map[string]any{"provider": provider, "secrets": []string{"{env." + cliSecretEnv + "}"},
		"max_body_size": maxBody, "max_inflight_bytes": max(maxBody, DefaultMaxInflightBytes)})
	if r.Header.Get("Authorization") != "" {
		fmt.Fprintln(os.Stderr, "note: the request's Authorization header (the endpoint's credentials) is not checked here; only the signature is")
	}
	var h Handler
	if err := json.Unmarshal(cfg, &h); err != nil {
		return exitCannot, err
	}
	err = h.Provision(ctx)
	os.Unsetenv(cliSecretEnv) // read: not left in this process's environment
	if err != nil {
		return exitCannot, err
	}
	if err := h.Validate(); err != nil {
		return exitCannot, err
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	h.now = func() time.Time { return at }

	repl := caddy.NewReplacer()
	rctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	rctx = context.WithValue(rctx, caddyhttp.VarsCtxKey, map[string]any{})
	rctx, cancelReq := context.WithCancel(rctx)
	defer cancelReq()
	r = r.WithContext(rctx)
	var next cliNext
	err = h.ServeHTTP(&cliWriter{header: http.Header{}}, r, &next)
	return verdict(os.Stdout, &h, &next, err, logs), nil
}

// verdict prints verify's answer: "verified (key N)" and the event's
// fields, or "not verified: <reason>" and the "hint" of the handler's
// "webhook rejected" log line when it has one. It returns the exit status.
func verdict(out io.Writer, h *Handler, next *cliNext, err error, logs *observer.ObservedLogs) int {
	if next.ran {
		key := "1"
		if v, ok := next.repl.GetString(placeholderPrefix + "key"); ok && v != "" {
			key = v
		}
		fmt.Fprintf(out, "verified (key %s)\n", key)
		for _, f := range h.provider.Fields() {
			if v, _ := next.repl.GetString(placeholderPrefix + f); v != "" {
				fmt.Fprintf(out, "%s: %s\n", f, v)
			}
		}
		if v, _ := next.repl.GetString(placeholderPrefix + "signed_form"); v != "" && v != providers.SignedFormRaw {
			fmt.Fprintf(out, "signed_form: %s\n", v)
		}
		return exitOK
	}
	reason := "refused"
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.Err != nil {
		reason = he.Err.Error()
		if he.StatusCode != http.StatusUnauthorized {
			reason += fmt.Sprintf(" (status %d)", he.StatusCode)
		}
	} else if err != nil {
		reason = err.Error()
	}
	fmt.Fprintf(out, "not verified: %s\n", reason)
	for _, e := range logs.FilterMessage("webhook rejected").All() {
		if hint, ok := e.ContextMap()["hint"].(string); ok && hint != "" {
			fmt.Fprintf(out, "hint: %s\n", hint)
		}
	}
	return exitNegative
}

// cliNext is verify's next handler: it records that it ran.
type cliNext struct {
	ran  bool
	repl *caddy.Replacer
}

func (n *cliNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.ran = true
	n.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// cliWriter is the ResponseWriter of verify: the answer is not shown (the
// handler returns its refusal as an error).
type cliWriter struct {
	header http.Header
	status int
}

func (w *cliWriter) Header() http.Header         { return w.header }
func (w *cliWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *cliWriter) WriteHeader(status int)      { w.status = status }
