package providers_test

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Fuzz targets for the senders' signature header parsing. Each compares
// Parse with fzRefParse, a deliberately plain reference written from the
// senders' documentation, on every input:
//
//	go test -run '^$' -fuzz '^FuzzVivrealParse$' -fuzztime 30s ./providers
//
// The seed corpora are in testdata/fuzz/<FuzzName>/ and in the f.Add calls.

// fzSigHeaders builds the signature header's values from the fuzzer's
// inputs: count%4 is 0 or 1 for one header (first), 2 for two (first then
// second: a repeated header) and 3 for none.
func fzSigHeaders(first, second string, count uint8) []string {
	switch count % 4 {
	case 2:
		return []string{first, second}
	case 3:
		return nil
	}
	return []string{first}
}

// fzRefParse is the reference parser: one header, trimmed of optional white
// space, then an optional (or, when prefixRequired, required) algorithm
// prefix such as "sha256=" in any ASCII case, then exactly 2*size hex
// digits in either case. It returns the hex digits, or the sentinel Parse
// must wrap.
//
// The trimmed set is " \t\r\n": HTTP's optional white space is SP and HTAB,
// CR and LF cannot occur in a field value Go's server accepts, and
// net/textproto trims them as well.
func fzRefParse(values []string, prefix string, prefixRequired bool, size int) (string, error) {
	switch len(values) {
	case 0:
		return "", providers.ErrMissingSignature
	case 1:
	default:
		return "", providers.ErrMalformedSignature
	}
	v := strings.Trim(values[0], " \t\r\n")
	if v == "" {
		return "", providers.ErrMissingSignature
	}
	if len(v) >= len(prefix) && fzASCIIEqualFold(v[:len(prefix)], prefix) {
		v = v[len(prefix):]
	} else if prefixRequired {
		return "", providers.ErrMalformedSignature
	}
	if len(v) != 2*size {
		return "", providers.ErrMalformedSignature
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return "", providers.ErrMalformedSignature
		}
	}
	return v, nil
}

// fzASCIIEqualFold compares a and b ignoring ASCII case only: header
// tokens are ASCII, so no Unicode folding.
func fzASCIIEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// fzMessageTemplates are the texts Parse's errors are made of, with "#"
// for a number. A header value that is a piece of one of them is found in
// the error without being echoed, so the leak check lets it pass.
var fzMessageTemplates = []string{
	"missing signature: no X-Vivreal-Signature header",
	"missing signature: empty X-Vivreal-Signature header",
	"malformed signature: # X-Vivreal-Signature headers",
	"malformed signature: algorithm is not sha256",
	"missing signature: no X-Vev-Signature header",
	"missing signature: empty X-Vev-Signature header",
	"malformed signature: # X-Vev-Signature headers",
	"malformed signature: algorithm is not sha512",
	"malformed signature: no algorithm",
	"malformed signature: # hex digits, want #",
	"malformed signature: not hex",
}

// fzDigitsToHash replaces each run of ASCII digits in s with one "#".
func fzDigitsToHash(s string) string {
	var b strings.Builder
	inDigits := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; '0' <= c && c <= '9' {
			if !inDigits {
				b.WriteByte('#')
			}
			inDigits = true
			continue
		}
		inDigits = false
		b.WriteByte(s[i])
	}
	return b.String()
}

// fzAssertNoEcho fails if the error text msg contains a header value (as
// sent, or trimmed) longer than 8 bytes, unless the value is a piece of an
// error template itself.
func fzAssertNoEcho(t *testing.T, msg string, values []string) {
	t.Helper()
	for _, raw := range values {
		for _, v := range []string{raw, strings.Trim(raw, " \t\r\n")} {
			if len(v) <= 8 || !strings.Contains(msg, v) {
				continue
			}
			norm := fzDigitsToHash(v)
			template := false
			for _, tpl := range fzMessageTemplates {
				if strings.Contains(tpl, norm) {
					template = true
					break
				}
			}
			if !template {
				t.Fatalf("error %q echoes the header value %q", msg, v)
			}
		}
	}
}

// fzFailBody fails the fuzz input if Parse reads the body: Parse runs
// before the body is read.
type fzFailBody struct{ read bool }

func (b *fzFailBody) Read([]byte) (int, error) { b.read = true; return 0, errors.New("body read") }
func (b *fzFailBody) Close() error             { return nil }

// fzCheckParse runs p.Parse on a request whose header name has values and
// checks it against the reference.
func fzCheckParse(t *testing.T, p providers.Provider, name string, values []string,
	hash crypto.Hash, prefix string, prefixRequired bool) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/hook", nil)
	body := &fzFailBody{}
	r.Body = body
	for _, v := range values {
		r.Header.Add(name, v)
	}
	got, err := p.Parse(r, time.Unix(1_700_000_000, 0))
	if body.read {
		t.Fatal("Parse read the request body")
	}

	wantHex, wantErr := fzRefParse(values, prefix, prefixRequired, hash.Size())
	if wantErr == nil {
		if err != nil {
			t.Fatalf("Parse(%q) = %v; the reference accepts it", values, err)
		}
		want, derr := hex.DecodeString(wantHex)
		if derr != nil {
			t.Fatalf("reference hex %q: %v", wantHex, derr)
		}
		if got.Hash != hash {
			t.Fatalf("Parse(%q): Hash = %v, want %v", values, got.Hash, hash)
		}
		if got.Prefix != nil {
			t.Fatalf("Parse(%q): Prefix = %q, want nil", values, got.Prefix)
		}
		if len(got.Signatures) != 1 || !bytes.Equal(got.Signatures[0], want) {
			t.Fatalf("Parse(%q): Signatures = %x, want [%x]", values, got.Signatures, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("Parse(%q) accepted %x; the reference says %v", values, got.Signatures, wantErr)
	}
	missing := errors.Is(err, providers.ErrMissingSignature)
	malformed := errors.Is(err, providers.ErrMalformedSignature)
	if missing == malformed {
		t.Fatalf("Parse(%q) = %v: wraps missing=%v malformed=%v, want exactly one", values, err, missing, malformed)
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("Parse(%q) = %v; the reference says %v", values, err, wantErr)
	}
	if len(got.Signatures) != 0 {
		t.Fatalf("Parse(%q) failed but returned signatures %x", values, got.Signatures)
	}
	fzAssertNoEcho(t, err.Error(), values)
}

// fzHexSeeds are header values worth starting from, for a MAC of size
// bytes under the algorithm prefix algo ("sha256" or "sha512").
func fzHexSeeds(f *testing.F, algo string, size int) {
	lower := strings.Repeat("0123456789abcdef", 2*size/16)
	upper := strings.ToUpper(lower)
	for _, s := range []struct {
		first, second string
		count         uint8
	}{
		{algo + "=" + lower, "", 0},
		{strings.ToUpper(algo) + "=" + upper, "", 0},
		{lower, "", 0},
		{upper, "", 0},
		{" \t" + algo + "=" + lower + "\t ", "", 0},
		{algo + "=" + lower[:len(lower)-1], "", 0},
		{algo + "=" + lower + "0", "", 0},
		{algo + "=" + lower[:len(lower)-1] + "g", "", 0},
		{algo + "=" + "", "", 0},
		{algo + "==" + lower, "", 0},
		{"sha1=" + lower, "", 0},
		{"=" + lower, "", 0},
		{algo + " =" + lower, "", 0},
		{algo + "= " + lower, "", 0},
		{lower + "=" + algo, "", 0},
		{"", "", 0},
		{" \t ", "", 0},
		{"", "", 3},
		{algo + "=" + lower, algo + "=" + lower, 2},
		{algo + "=" + lower, "", 2},
		{"", "", 2},
		{"\r\n" + algo + "=" + lower, "", 0},
		{algo + "=" + lower + "\x00", "", 0},
	} {
		f.Add(s.first, s.second, s.count)
	}
}

// FuzzVivrealParse checks Vivreal.Parse on X-Vivreal-Signature values:
// "<hex>" or "sha256=<hex>", 64 hex digits in either case.
func FuzzVivrealParse(f *testing.F) {
	fzHexSeeds(f, "sha256", crypto.SHA256.Size())
	f.Add(vivHex, "", uint8(0))
	f.Add("sha256="+vivHex, "sha256="+vivHex, uint8(2))
	f.Fuzz(func(t *testing.T, first, second string, count uint8) {
		values := fzSigHeaders(first, second, count)
		fzCheckParse(t, providers.Vivreal{}, providers.VivrealSignatureHeader, values, crypto.SHA256, "sha256=", false)
	})
}

// FuzzVevParse checks Vev.Parse on X-Vev-Signature values: "sha512=<hex>",
// 128 hex digits in either case.
func FuzzVevParse(f *testing.F) {
	fzHexSeeds(f, "sha512", crypto.SHA512.Size())
	f.Add("sha512="+vevHex, "", uint8(0))
	f.Add(vevHex, "", uint8(0))
	f.Add("sha256="+vivHex, "", uint8(0))
	f.Fuzz(func(t *testing.T, first, second string, count uint8) {
		values := fzSigHeaders(first, second, count)
		fzCheckParse(t, providers.Vev{}, providers.VevSignatureHeader, values, crypto.SHA512, "sha512=", true)
	})
}
