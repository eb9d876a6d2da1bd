package webhookverify_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Vev's stringify_fallback through a real Caddy: a pretty-printed 5 MiB
// PUBLISH signed over its JSON.stringify form.

// svBodies returns a compact 5 MiB Vev PUBLISH in JSON.stringify form
// (itVevPublish writes the text JavaScript would: no \u003c, raw
// non-ASCII) and a re-encoding of it that Vev's Node receiver maps back to
// the same text: pretty-printed (two spaces), with Go's HTML escapes
// (\u003c, \u003e, \u0026) and "\/" in the strings. The compact text is
// therefore the re-encoding's stringify form by construction, not by the
// code under test (and Node confirms it, when installed).
func svBodies(t *testing.T) (compact, pretty []byte) {
	t.Helper()
	compact = itVevPublish("vev_big", "hosting_1", 5<<20)
	var ind bytes.Buffer
	if err := json.Indent(&ind, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty = ind.Bytes()
	for _, r := range [][2]string{{"<", `\u003c`}, {">", `\u003e`}, {"&", `\u0026`}, {"/", `\/`}} {
		pretty = bytes.ReplaceAll(pretty, []byte(r[0]), []byte(r[1]))
	}
	if bytes.Equal(pretty, compact) || len(pretty) <= len(compact) {
		t.Fatal("the re-encoded body should differ from the compact one")
	}
	if node, err := exec.LookPath("node"); err == nil {
		oracle, _ := filepath.Abs("testdata/stringify/oracle.js")
		cmd := exec.Command(node, oracle)
		cmd.Stdin = strings.NewReader(base64.StdEncoding.EncodeToString(pretty) + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node: %v", err)
		}
		got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(out)), "+"))
		if err != nil || !bytes.Equal(got, compact) {
			t.Fatalf("Node's stringify form of the pretty body is not the compact body (%d bytes, %v)", len(got), err)
		}
	}
	return compact, pretty
}

// svMetric reads caddy_webhook_verify_signed_form_total for vev and form
// from the admin /metrics page.
func svMetric(t *testing.T, form string) float64 {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	want := fmt.Sprintf(`caddy_webhook_verify_signed_form_total{form=%q,provider="vev"} `, form)
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), want); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestIntegrationVevStringifyFallback(t *testing.T) {
	up := itNewRecorder(t, "up")
	itStart(t, fmt.Sprintf(`
http://localhost:9080 {
	handle /on {
		webhook_verify vev %[1]s {
			stringify_fallback
		}
		reverse_proxy %[2]s {
			header_up X-Signed-Form {http.webhook.signed_form}
			header_up X-Webhook-Id {http.webhook.id}
		}
	}
	handle /off {
		webhook_verify vev %[1]s
		reverse_proxy %[2]s {
			header_up X-Signed-Form {http.webhook.signed_form}
		}
	}
	handle /vivreal {
		webhook_verify vivreal %[3]s
		reverse_proxy %[2]s {
			header_up X-Signed-Form {http.webhook.signed_form}
		}
	}
}
`, itVevSecret, up.addr(), itVivSecret))
	c := itNewClient(t)
	compact, pretty := svBodies(t)
	sig := "sha512=" + itSign512(itVevSecret, compact) // Vev signs the stringify form
	const ctJSON = "application/json"

	send := func(path string, body []byte, sig, ct string, chunked bool) itResp {
		h := itHdr("X-Vev-Signature", sig)
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		return itDo(t, c, itReq{path: path, body: body, header: h, chunked: chunked})
	}

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("pretty_verified_with_option/chunked=%v", chunked), func(t *testing.T) {
			up.reset()
			before := svMetric(t, "stringify")
			res := send("/on", pretty, sig, ctJSON, chunked)
			itStatus(t, "pretty body signed over its stringify form", res, http.StatusOK)
			// exactly the signed text, with its own Content-Length
			got := itAssertForwarded(t, up, "/on", compact)
			if f := got.Header.Get("X-Signed-Form"); f != "stringify" {
				t.Errorf("{http.webhook.signed_form} = %q, want stringify", f)
			}
			if id := got.Header.Get("X-Webhook-Id"); id != "vev_big" {
				t.Errorf("{http.webhook.id} = %q", id)
			}
			if after := svMetric(t, "stringify"); after != before+1 {
				t.Errorf("signed_form_total{form=stringify} went from %v to %v", before, after)
			}
		})
	}

	t.Run("pretty_refused_without_option", func(t *testing.T) {
		up.reset()
		res := send("/off", pretty, sig, ctJSON, false)
		itStatus(t, "pretty body without stringify_fallback", res, http.StatusUnauthorized)
		if up.count() != 0 {
			t.Fatal("a refused body reached the upstream")
		}
	})

	t.Run("raw_verified_forwarded_raw", func(t *testing.T) {
		for _, path := range []string{"/on", "/off"} {
			up.reset()
			before := svMetric(t, "raw")
			res := send(path, compact, sig, ctJSON, false)
			itStatus(t, "compact body "+path, res, http.StatusOK)
			got := itAssertForwarded(t, up, path, compact)
			if f := got.Header.Get("X-Signed-Form"); f != "raw" {
				t.Errorf("{http.webhook.signed_form} = %q, want raw", f)
			}
			if after := svMetric(t, "raw"); after != before+1 {
				t.Errorf("signed_form_total{form=raw} went from %v to %v", before, after)
			}
		}
		// a pretty body signed as it is: its raw MAC matches, it is
		// forwarded as it came, not re-encoded
		up.reset()
		res := send("/on", pretty, "sha512="+itSign512(itVevSecret, pretty), ctJSON, false)
		itStatus(t, "pretty body signed raw", res, http.StatusOK)
		if got := itAssertForwarded(t, up, "/on", pretty); got.Header.Get("X-Signed-Form") != "raw" {
			t.Errorf("signed_form = %q, want raw", got.Header.Get("X-Signed-Form"))
		}
	})

	t.Run("vivreal_signed_form_raw", func(t *testing.T) {
		up.reset()
		body := itVivrealEvent("e1", "collection.object.created", 200)
		res := itDo(t, c, itReq{path: "/vivreal", body: body, header: itHdr("X-Vivreal-Signature", itSign256(itVivSecret, body))})
		itStatus(t, "vivreal", res, http.StatusOK)
		if got := itAssertForwarded(t, up, "/vivreal", body); got.Header.Get("X-Signed-Form") != "raw" {
			t.Errorf("signed_form = %q, want raw", got.Header.Get("X-Signed-Form"))
		}
	})

	for _, tc := range []struct {
		name, sig, ct string
	}{
		{"wrong_secret", "sha512=" + itSign512("another secret", compact), ctJSON},
		{"content_type_text_plain", sig, "text/plain"},
		{"no_content_type", sig, ""},
		{"charset_latin1", sig, "application/json; charset=latin1"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			up.reset()
			res := send("/on", pretty, tc.sig, tc.ct, false)
			itStatus(t, tc.name, res, http.StatusUnauthorized)
			if up.count() != 0 {
				t.Fatal("a refused body reached the upstream")
			}
		})
	}
}

// With the queue, the stored (and delivered) body is the signed text too.
func TestIntegrationVevStringifyQueued(t *testing.T) {
	b := qiNewBackend(t, nil)
	db := filepath.Join(t.TempDir(), "q.db")
	itStart(t, qiSite(fmt.Sprintf(`	handle /vev {
		webhook_verify vev %s {
			stringify_fallback
			%s
		}
	}`, itVevSecret, qiQueue("vevq", db, b))))
	c := itNewClient(t)
	compact := itVevPublish("vev_q1", "hosting_1", 64<<10)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, compact, "", "\t"); err != nil {
		t.Fatal(err)
	}
	res := itDo(t, c, itReq{path: "/vev", body: pretty.Bytes(), header: itHdr(
		"X-Vev-Signature", "sha512="+itSign512(itVevSecret, compact), "Content-Type", "application/json")})
	if res.status != http.StatusOK || string(res.body) != qiQueued {
		t.Fatalf("POST: %d %q, want 200 %s", res.status, itTrim(res.body), qiQueued)
	}
	qiWait(t, "the queued event's delivery", func() bool { return len(b.of("vev_q1")) > 0 })
	if got := b.of("vev_q1")[0].body; !bytes.Equal(got, compact) {
		t.Fatalf("delivered %d bytes, want the %d bytes of the stringify form", len(got), len(compact))
	}
}
