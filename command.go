package webhookverify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhook",
		Usage: "sign|send <url>|verify|queue ... [--provider <name>|<json>] [--secret-env <VAR>|--secret-file <file>]",
		Short: "Signs, sends and verifies webhook deliveries; operates the webhook_verify queues",
		Long: `
Signing and checking deliveries, for any sender webhook_verify knows
(every provider module, hmac included):

  caddy webhook sign   --provider <p> --secret-env VAR [--body-file F | --ping]
        prints the headers the sender would send (Name: value lines;
        curl -H @file takes them); --write-body F saves the signed body
  caddy webhook send <url> --provider <p> --secret-env VAR [--body-file F]
        signs a delivery (the sender's realistic test event, or the body of
        F), POSTs it, and prints the answer's status line and body
  caddy webhook verify --provider <p> --secret-env VAR --request-file F [--at T]
        reads a captured raw HTTP/1.x request (Content-Length or chunked)
        and runs it through a real webhook_verify handler: prints
        "verified (key N)" or "not verified: <reason>", and a "hint:" line
        when the handler has one

--provider is a module name (github, stripe, ...) or the provider's JSON
object ('{"name":"stripe","tolerance":"10m"}', an hmac configuration).
Secrets come only from --secret-env VAR (an environment variable's name) or
--secret-file F (one trailing newline trimmed), never from an argument. For
senders that sign with a key pair (discord, sendgrid, hmac ed25519 or
ecdsa-p256), sign and send take the PRIVATE key (Ed25519: PKCS#8 PEM or its
32-byte seed in hex or base64; ECDSA P-256: PKCS#8 or SEC1 PEM) and verify
the public key the handler takes. send's endpoint credentials:
--bearer-env VAR, --basic-env VAR (user:password); other headers:
--header 'Name: value' (repeatable); TLS: --insecure or --ca-file F.
--id and --time (RFC 3339 or unix seconds) pin the event id and the signing
time; --at is verify's clock.

Exit status of sign, send and verify: 0 signed, sent with a 2xx answer,
or verified; 1 the command could not run (usage, a missing secret, an
unreadable file, a connection that failed); 2 a negative answer (send: the
answer was not 2xx; verify: the request does not verify).

The queues, through the running Caddy's admin API (/webhook_verify/ routes):

  caddy webhook queue list                       the queues, with counts by state
  caddy webhook queue events <queue> [--state dead] [--limit n]
  caddy webhook queue show <queue> <id> [--body] the event (its body only with --body)
  caddy webhook queue replay <queue> <id>        a dead event back to pending
  caddy webhook queue discard <queue> <id>       delete an event and forget its id
  caddy webhook queue pause|resume <queue>       stop or restart delivery
  caddy webhook queue backup <queue> <file>      a consistent copy of the queue's file

--address is the admin endpoint (default: localhost:2019, or the one of
--config).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "The address of Caddy's admin API")
			cmd.Flags().StringP("config", "c", "", "The config file, to find the admin address")
			cmd.Flags().StringP("adapter", "a", "", "The config adapter of --config")
			cmd.Flags().String("state", "", "events: only this state (pending, in_flight, delivered, dead)")
			cmd.Flags().Int("limit", 100, "events: at most this many")
			cmd.Flags().Bool("body", false, "show: print the body too")
			signFlags(cmd)
			run := caddycmd.WrapCommandFuncForCobra(cmdWebhook)
			cmd.RunE = func(c *cobra.Command, args []string) error {
				// the flags are parsed (cobra prints their errors); from
				// here on an error is logged by run, and exit status 2 is
				// the verdict printed, not an error to print again
				c.SilenceErrors = true
				return run(c, args)
			}
		},
	})
}

func cmdWebhook(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if len(args) > 0 {
		switch args[0] {
		case "sign", "send", "verify":
			return cmdWebhookSign(fl, args)
		}
	}
	if len(args) < 2 || args[0] != "queue" {
		return caddy1(fmt.Errorf("usage: caddy webhook queue list|events|show|replay|discard|pause|resume|backup [<queue>] [<id>|<file>], or caddy webhook sign|send <url>|verify (caddy help webhook)"))
	}
	if err := checkVerbFlags(fl, "queue"); err != nil {
		return caddy1(err)
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy1(err)
	}
	need := func(n int, usage string) error {
		if len(args) != n {
			return fmt.Errorf("usage: caddy webhook queue %s", usage)
		}
		return nil
	}
	esc := url.PathEscape
	var method, uri string
	switch verb := args[1]; verb {
	case "list":
		if err := need(2, "list"); err != nil {
			return caddy1(err)
		}
		method, uri = http.MethodGet, "/webhook_verify/queues"
	case "events":
		if err := need(3, "events <queue> [--state dead] [--limit n]"); err != nil {
			return caddy1(err)
		}
		q := url.Values{}
		if s := fl.String("state"); s != "" {
			q.Set("state", s)
		}
		q.Set("limit", fmt.Sprint(fl.Int("limit")))
		method, uri = http.MethodGet, "/webhook_verify/queues/"+esc(args[2])+"/events?"+q.Encode()
	case "show":
		if err := need(4, "show <queue> <id> [--body]"); err != nil {
			return caddy1(err)
		}
		uri = "/webhook_verify/queues/" + esc(args[2]) + "/events/" + esc(args[3])
		if fl.Bool("body") {
			uri += "?body=1"
		}
		method = http.MethodGet
	case "replay":
		if err := need(4, "replay <queue> <id>"); err != nil {
			return caddy1(err)
		}
		method, uri = http.MethodPost, "/webhook_verify/queues/"+esc(args[2])+"/events/"+esc(args[3])+"/replay"
	case "discard":
		if err := need(4, "discard <queue> <id>"); err != nil {
			return caddy1(err)
		}
		method, uri = http.MethodDelete, "/webhook_verify/queues/"+esc(args[2])+"/events/"+esc(args[3])
	case "backup":
		if err := need(4, "backup <queue> <file>"); err != nil {
			return caddy1(err)
		}
		method, uri = http.MethodGet, "/webhook_verify/queues/"+esc(args[2])+"/backup"
	case "pause", "resume":
		if err := need(3, verb+" <queue>"); err != nil {
			return caddy1(err)
		}
		method, uri = http.MethodPost, "/webhook_verify/queues/"+esc(args[2])+"/"+verb
	default:
		return caddy1(fmt.Errorf("unknown queue command %q: use list, events, show, replay, discard, pause, resume or backup", verb))
	}
	res, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, nil)
	if err != nil {
		return caddy1(err)
	}
	defer res.Body.Close()
	if args[1] == "backup" {
		return writeBackup(args[3], res.Body)
	}
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return caddy1(err)
	}
	if args[1] == "show" && fl.Bool("body") {
		out = decodeBodyField(out)
	}
	_, _ = os.Stdout.Write(out)
	return 0, nil
}

// decodeBodyField prints the event with its body as text rather than
// base64, when the body is valid UTF-8 JSON text (webhooks are).
func decodeBodyField(out []byte) []byte {
	var ev map[string]any
	if json.Unmarshal(out, &ev) != nil {
		return out
	}
	b64, _ := ev["body"].(string)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return out
	}
	delete(ev, "body")
	meta, _ := json.MarshalIndent(ev, "", "  ")
	var buf bytes.Buffer
	buf.Write(meta)
	buf.WriteString("\n--- body ---\n")
	buf.Write(raw)
	buf.WriteString("\n")
	return buf.Bytes()
}

// caddy1 is a queue verb's failure: the command could not run.
func caddy1(err error) (int, error) { return exitCannot, err }

// writeBackup writes the backup to file, through a temporary file renamed
// into place once complete.
func writeBackup(file string, r io.Reader) (int, error) {
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return caddy1(err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return caddy1(err)
	}
	fmt.Printf("wrote %d bytes to %s\n", n, file)
	return 0, nil
}
