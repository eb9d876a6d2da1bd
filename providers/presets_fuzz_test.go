package providers_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// FuzzDecodeBase64 holds DecodeBase64 to the standard library's strict
// decoder plus the length check, and never lets it panic (a short-padded
// input once overflowed its buffer).
func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"AAECAw==", "AAECAwQ=", "AAECAw", "AAECAx==", "", "====", "pK5uX/11o34BZFd0HfiH7u1uGph+cBRS1+DaFN7sOiU="} {
		f.Add(s, uint8(4))
		f.Add(s, uint8(32))
	}
	f.Fuzz(func(t *testing.T, s string, size uint8) {
		got, err := providers.DecodeBase64(s, int(size))
		want, werr := base64.StdEncoding.Strict().DecodeString(s)
		ok := werr == nil && len(want) == int(size) && !strings.ContainsAny(s, "\r\n")
		if ok != (err == nil) {
			t.Fatalf("DecodeBase64(%q, %d) = %x, %v; strict decoder %x, %v", s, size, got, err, want, werr)
		}
		if err != nil {
			if !errors.Is(err, providers.ErrMalformedSignature) {
				t.Fatalf("error %v is not malformed", err)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("DecodeBase64(%q) = %x, want %x", s, got, want)
		}
	})
}

// fuzzTimestampedParse checks Parse never panics, never reads the body,
// fails only with the sentinels, and when it succeeds returns SHA-256
// candidates of the right size and the signed timestamp within the window.
func fuzzTimestampedParse(t *testing.T, p providers.Provider, h http.Header, now time.Time) {
	s, err := presetParse(t, p, h, now)
	if err != nil {
		if !errors.Is(err, providers.ErrMissingSignature) && !errors.Is(err, providers.ErrMalformedSignature) {
			t.Fatalf("Parse error %v wraps no sentinel", err)
		}
		return
	}
	if len(s.Signatures) == 0 {
		t.Fatal("success without a candidate")
	}
	for _, sig := range s.Signatures {
		if len(sig) != 32 {
			t.Fatalf("candidate of %d bytes", len(sig))
		}
	}
}

func FuzzStripeParse(f *testing.F) {
	sig := "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
	for _, s := range []string{
		"t=1700000000,v1=" + sig, "t=1700000000,v1=" + sig + ",v0=" + sig, "t=1700000000,v1=bad,v1=" + sig,
		"v1,t=1", "t=,v1=" + sig, "t=1700000000", "t=1700000000,v1==" + sig, "t=01700000000,v1=" + sig,
	} {
		f.Add(s, int64(1_700_000_000))
	}
	f.Fuzz(func(t *testing.T, v string, now int64) {
		fuzzTimestampedParse(t, &providers.Stripe{}, http.Header{"Stripe-Signature": {v}}, time.Unix(now, 0))
	})
}

func FuzzStandardParse(f *testing.F) {
	sig := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	for _, s := range []string{sig, "v2,AAAA " + sig, "v1,", "v1", sig + " " + sig, "v1a,xyz", "  " + sig} {
		f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", s, int64(1614265330))
	}
	f.Add("", "", "", int64(0))
	f.Add("id", "99999999999999999999", sig, int64(0))
	f.Fuzz(func(t *testing.T, id, ts, list string, now int64) {
		h := http.Header{}
		for name, v := range map[string]string{"Webhook-Id": id, "Webhook-Timestamp": ts, "Webhook-Signature": list} {
			if v != "" {
				h.Set(name, v)
			}
		}
		fuzzTimestampedParse(t, &providers.Standard{}, h, time.Unix(now, 0))
		// the signed prefix is the id, the timestamp's decimal form, dots
		if s, err := presetParse(t, &providers.Standard{}, h, time.Unix(now, 0)); err == nil {
			// (header values are trimmed, as an HTTP server trims them)
			n, _ := strconv.ParseInt(textproto.TrimString(ts), 10, 64)
			want := textproto.TrimString(id) + "." + strconv.FormatInt(n, 10) + "."
			if string(s.Prefix) != want {
				t.Fatalf("Prefix %q, want %q", s.Prefix, want)
			}
		}
	})
}

func FuzzSlackParse(f *testing.F) {
	sig := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	for _, s := range []string{sig, "v1=" + sig[3:], sig[3:], "v0=", "v0=zz"} {
		f.Add(s, "1531420618", int64(1531420618))
	}
	f.Fuzz(func(t *testing.T, v, ts string, now int64) {
		h := http.Header{}
		if v != "" {
			h.Set("X-Slack-Signature", v)
		}
		if ts != "" {
			h.Set("X-Slack-Request-Timestamp", ts)
		}
		fuzzTimestampedParse(t, &providers.Slack{}, h, time.Unix(now, 0))
	})
}
