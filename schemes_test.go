package webhookverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// Tests of the handler's signature schemes (HMAC with a suffix, Ed25519,
// ECDSA P-256) through a test-only sender, called directly through
// ServeHTTP. The real public-key senders (discord, sendgrid) have their
// own vectors, computed by independent tools; here Go's crypto signs, as
// what is tested is the handler's plumbing: which bytes are signed, which
// key matched, the budget, and no second copy of the body.

// skProvider is a test sender of any scheme. It signs
// "ts:<X-Sk-Ts>:" ‖ body ‖ ".<X-Sk-Ts>" (a prefix and a suffix), with the
// candidates in X-Sk-Signature, base64, separated by commas.
type skProvider struct {
	scheme providers.Scheme
	hash   crypto.Hash // HMAC
	// parsed is what Parse returns instead, when set (a provider's bug)
	parsed *providers.Signed
}

func (skProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: providers.Namespace + ".sktest", New: func() caddy.Module { return new(skProvider) }}
}

func (p skProvider) Parse(r *http.Request, _ time.Time) (providers.Signed, error) {
	if p.parsed != nil {
		return *p.parsed, nil
	}
	ts, err := providers.SingleHeader(r.Header, "X-Sk-Ts")
	if err != nil {
		return providers.Signed{}, err
	}
	v, err := providers.SingleHeader(r.Header, "X-Sk-Signature")
	if err != nil {
		return providers.Signed{}, err
	}
	s := providers.Signed{Scheme: p.scheme, Hash: p.hash, Prefix: []byte("ts:" + ts + ":"), Suffix: []byte("." + ts)}
	for part := range strings.SplitSeq(v, ",") {
		sig, err := base64.StdEncoding.DecodeString(part)
		if err != nil {
			return providers.Signed{}, fmt.Errorf("%w: not base64", providers.ErrMalformedSignature)
		}
		s.Signatures = append(s.Signatures, sig)
	}
	return s, nil
}

func (skProvider) Fields() []string { return []string{"id", "event"} }

func (skProvider) Describe(_ http.Header, body []byte, vals []string) {
	providers.TopLevelFields(body, []string{"id", "event"}, vals)
}

func (p skProvider) PublicKeys() bool { return p.scheme != providers.SchemeHMAC }

func (p skProvider) PublicKey(key string) (crypto.PublicKey, error) {
	if p.scheme == providers.SchemeEd25519 {
		return providers.ParseEd25519PublicKey(key)
	}
	return providers.ParseECDSAP256PublicKey(key)
}

// skSigner signs for one scheme, and gives the key as configured.
type skSigner struct {
	name   string
	scheme providers.Scheme
	secret string // the configured key
	sign   func(msg []byte) []byte
}

func skSeed(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.SeedSize) }

func skEd25519(b byte) skSigner {
	priv := ed25519.NewKeyFromSeed(skSeed(b))
	return skSigner{
		name: "ed25519", scheme: providers.SchemeEd25519,
		secret: hex.EncodeToString(priv.Public().(ed25519.PublicKey)),
		sign:   func(msg []byte) []byte { return ed25519.Sign(priv, msg) },
	}
}

func skECDSA(t testing.TB) skSigner {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return skSigner{
		name: "ecdsa", scheme: providers.SchemeECDSAP256SHA256,
		secret: base64.StdEncoding.EncodeToString(der),
		sign: func(msg []byte) []byte {
			d := sha256.Sum256(msg)
			sig, err := ecdsa.SignASN1(rand.Reader, priv, d[:])
			if err != nil {
				panic(err)
			}
			return sig
		},
	}
}

func skHMAC(secret string) skSigner {
	return skSigner{
		name: "hmac", scheme: providers.SchemeHMAC, secret: secret,
		sign: func(msg []byte) []byte { return Sign(crypto.SHA256, []byte(secret), nil, msg) },
	}
}

// skMessage is what the test sender signs.
func skMessage(ts string, body []byte) []byte {
	return append(append([]byte("ts:"+ts+":"), body...), "."+ts...)
}

// skHandler provisions a vivreal handler from JSON fields (the limits),
// then gives it the test sender and its keys, through provisionKeys.
func skHandler(t testing.TB, scheme providers.Scheme, secrets []string, extra string) *Handler {
	t.Helper()
	h := hProvisionT(t, extra)
	h.provider = skProvider{scheme: scheme, hash: crypto.SHA256}
	h.Secrets = plainSecrets(secrets...)
	var err error
	if h.keys, err = h.provisionKeys(caddy.NewReplacer()); err != nil {
		t.Fatalf("provision keys: %v", err)
	}
	return h
}

// hProvisionT is hProvision for benchmarks too.
func hProvisionT(t testing.TB, extra string) *Handler {
	t.Helper()
	var h Handler
	cfg := `{"provider": {"name": "vivreal"}, "secrets": ["` + hSecret + `"]` + extra + `}`
	if err := json.Unmarshal([]byte(cfg), &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return &h
}

func skHeader(ts string, sigs ...[]byte) http.Header {
	var enc []string
	for _, s := range sigs {
		enc = append(enc, base64.StdEncoding.EncodeToString(s))
	}
	return http.Header{"X-Sk-Ts": {ts}, "X-Sk-Signature": {strings.Join(enc, ",")}}
}

// skServe runs one request through ServeHTTP, declared or chunked, and
// returns what next received, the request's cancel (which ends the
// request: the body is released), and the error.
func skServe(t testing.TB, h *Handler, body []byte, header http.Header, chunked bool) (*hRecorder, context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := hRequest(ctx, http.MethodPost, "", header)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if chunked {
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body))) // no WriterTo, no size
	}
	rec := &hRecorder{}
	err := h.ServeHTTP(httptest.NewRecorder(), r, rec)
	return rec, cancel, err
}

// skEnd ends a request (its context's AfterFunc releases the body, on
// its own goroutine) and waits until the handler holds want bytes.
func skEnd(t testing.TB, h *Handler, cancel context.CancelFunc, want int64, what string) {
	t.Helper()
	cancel()
	deadline := time.Now().Add(30 * time.Second)
	for h.inflight.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d bytes reserved after the request ended, want %d", what, h.inflight.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func skSigners(t *testing.T) []skSigner {
	return []skSigner{skHMAC("sk-hmac-secret"), skEd25519(7), skECDSA(t)}
}

// Each scheme verifies Prefix‖body‖Suffix through ServeHTTP, for empty,
// small, large and over-16-MiB-class bodies, declared and chunked, and
// forwards exactly the body bytes; any change to the body, the prefix or
// the suffix, or a wrong key, is a 401.
func TestSchemesServeHTTP(t *testing.T) {
	sizes := []int{0, 1, 100, 4096 - 8, 64 << 10, 1 << 20}
	otherECDSA := skECDSA(t)
	for _, s := range skSigners(t) {
		h := skHandler(t, s.scheme, []string{s.secret}, "")
		for _, size := range sizes {
			body := vecBytes(uint64(size)+1, size)
			ts := "1700000000"
			sig := s.sign(skMessage(ts, body))
			for _, chunked := range []bool{false, true} {
				name := fmt.Sprintf("%s/%d/chunked=%v", s.name, size, chunked)
				rec, cancel, err := skServe(t, h, body, skHeader(ts, sig), chunked)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if rec.called != 1 || !bytes.Equal(rec.body, body) || rec.cl != int64(size) {
					t.Fatalf("%s: next got %d bytes (ContentLength %d, %d calls), want the %d body bytes exactly", name, len(rec.body), rec.cl, rec.called, size)
				}
				if v, _ := rec.repl.GetString("http.webhook.provider"); v != "vivreal" {
					t.Fatalf("%s: provider placeholder %q", name, v)
				}
				want := int64(size)
				if s.scheme == providers.SchemeEd25519 {
					want += int64(len(skMessage(ts, nil))) // and its room
				}
				if n := h.inflight.Load(); n != want {
					t.Fatalf("%s: %d bytes reserved while handed over, want %d (the body, and for Ed25519 its room)", name, n, want)
				}
				skEnd(t, h, cancel, 0, name)
			}
			if size == 0 {
				continue
			}
			edited := bytes.Clone(body)
			edited[size/2] ^= 1
			mutations := []struct {
				name   string
				body   []byte
				header http.Header
			}{
				{"edited body", edited, skHeader(ts, sig)},
				{"body one byte short", body[:size-1], skHeader(ts, sig)},
				{"body one byte more", append(bytes.Clone(body), 'x'), skHeader(ts, sig)},
				{"other timestamp (prefix and suffix)", body, skHeader("1700000001", sig)},
				{"suffix not signed", body, skHeader(ts, s.sign(skMessage(ts, body)[:len(skMessage(ts, body))-len(ts)-1]))},
				{"prefix not signed", body, skHeader(ts, s.sign(skMessage(ts, body)[len(ts)+4:]))},
				{"body alone signed", body, skHeader(ts, s.sign(body))},
				{"wrong key", body, skHeader(ts, map[string]skSigner{"hmac": skHMAC("other"), "ed25519": skEd25519(8), "ecdsa": otherECDSA}[s.name].sign(skMessage(ts, body)))},
				{"truncated signature", body, skHeader(ts, sig[:len(sig)-1])},
				{"zeroed signature", body, skHeader(ts, make([]byte, len(sig)))},
			}
			for _, m := range mutations {
				for _, chunked := range []bool{false, true} {
					name := fmt.Sprintf("%s/%d/%s/chunked=%v", s.name, size, m.name, chunked)
					rec, cancel, err := skServe(t, h, m.body, m.header, chunked)
					if got := hStatus(t, err); got != http.StatusUnauthorized || !errors.Is(err, ErrNoMatchingSignature) {
						t.Fatalf("%s: status %d, %v; want 401 %v", name, got, err, ErrNoMatchingSignature)
					}
					if rec.called != 0 {
						t.Fatalf("%s: next was called", name)
					}
					skEnd(t, h, cancel, 0, name)
				}
			}
		}
	}
}

// The keyring reports the 0-based index of the key that matched, in the
// configured order, for every scheme; with two candidates signed by two
// configured keys, the first configured key wins.
func TestSchemesMatchedKeyIndex(t *testing.T) {
	for _, mk := range []func(i byte) skSigner{
		func(i byte) skSigner { return skHMAC(fmt.Sprintf("secret-%d", i)) },
		skEd25519,
		func(byte) skSigner { return skECDSA(t) },
	} {
		signers := []skSigner{mk(1), mk(2), mk(3)}
		var secrets []string
		for _, s := range signers {
			secrets = append(secrets, s.secret)
		}
		h := skHandler(t, signers[0].scheme, secrets, "")
		body := []byte(`{"id":"evt_1"}`)
		msg := skMessage("1", body)
		for _, tc := range []struct {
			sigs [][]byte
			want int
		}{
			{[][]byte{signers[0].sign(msg)}, 0},
			{[][]byte{signers[1].sign(msg)}, 1},
			{[][]byte{signers[2].sign(msg)}, 2},
			{[][]byte{signers[2].sign(msg), signers[1].sign(msg)}, 1},
			{[][]byte{{1, 2, 3}, signers[2].sign(msg)}, 2},
		} {
			for _, chunked := range []bool{false, true} {
				ctx, cancel := context.WithCancel(context.Background())
				r := hRequest(ctx, http.MethodPost, string(body), skHeader("1", tc.sigs...))
				if chunked {
					r.ContentLength = -1
				}
				signed, err := h.provider.Parse(r, h.now())
				if err != nil {
					t.Fatal(err)
				}
				vb := &verifiedBody{h: h, key: -1}
				key, sigErr, err := h.readVerified(httptest.NewRecorder(), r, signed, vb, h.now(), readVerify)
				if err != nil || sigErr != nil {
					t.Fatalf("%s: %v %v", signers[0].name, err, sigErr)
				}
				vb.key = key
				if vb.key != tc.want {
					t.Errorf("%s: key %d matched, want %d", signers[0].name, vb.key, tc.want)
				}
				if !bytes.Equal(vb.bytes(), body) {
					t.Errorf("%s: body %q", signers[0].name, vb.bytes())
				}
				vb.release()
				cancel()
			}
		}
	}
}

// skCounter counts Inc calls, standing in for one outcome's counter.
type skCounter struct {
	prometheus.Counter
	n int
}

func (c *skCounter) Inc() { c.n++ }

// A provider whose Signed does not fit the configured keys (a scheme for
// other keys, an unknown scheme, an unavailable HMAC hash) is a 500 with
// outcome provider_error, refused before anything is reserved or read:
// never a panic (a type assertion on the wrong key), never a forward.
func TestSchemesMismatchIsProviderError(t *testing.T) {
	ed, ec, mac := skEd25519(1), skECDSA(t), skHMAC("s")
	cases := []struct {
		name   string
		keys   skSigner
		signed providers.Signed
		want   error
	}{
		{"ed25519 signature, hmac keys", mac, providers.Signed{Scheme: providers.SchemeEd25519, Signatures: [][]byte{make([]byte, 64)}}, ErrProviderScheme},
		{"ecdsa signature, hmac keys", mac, providers.Signed{Scheme: providers.SchemeECDSAP256SHA256, Signatures: [][]byte{{1}}}, ErrProviderScheme},
		{"hmac signature, ed25519 keys", ed, providers.Signed{Hash: crypto.SHA256, Signatures: [][]byte{make([]byte, 32)}}, ErrProviderScheme},
		{"ecdsa signature, ed25519 keys", ed, providers.Signed{Scheme: providers.SchemeECDSAP256SHA256, Signatures: [][]byte{{1}}}, ErrProviderScheme},
		{"ed25519 signature, ecdsa keys", ec, providers.Signed{Scheme: providers.SchemeEd25519, Signatures: [][]byte{make([]byte, 64)}}, ErrProviderScheme},
		{"hmac signature, ecdsa keys", ec, providers.Signed{Hash: crypto.SHA256, Signatures: [][]byte{make([]byte, 32)}}, ErrProviderScheme},
		{"unknown scheme", ed, providers.Signed{Scheme: 9, Signatures: [][]byte{{1}}}, ErrProviderScheme},
		{"unknown scheme, hmac keys", mac, providers.Signed{Scheme: 9, Hash: crypto.SHA256, Signatures: [][]byte{{1}}}, ErrProviderScheme},
		{"hmac without a hash", mac, providers.Signed{Signatures: [][]byte{{1}}}, ErrProviderHash},
	}
	for _, tc := range cases {
		for _, chunked := range []bool{false, true} {
			h := skHandler(t, tc.keys.scheme, []string{tc.keys.secret}, "")
			h.provider = skProvider{parsed: &tc.signed}
			counter := &skCounter{}
			h.metrics.outcomes[outcomeProviderError] = counter
			var err error
			var rec *hRecorder
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s: the handler panicked: %v", tc.name, p)
					}
				}()
				var cancel context.CancelFunc
				rec, cancel, err = skServe(t, h, []byte(`{"id":"x"}`), nil, chunked)
				defer cancel()
			}()
			if got := hStatus(t, err); got != http.StatusInternalServerError || !errors.Is(err, tc.want) {
				t.Fatalf("%s: status %d, %v; want 500 %v", tc.name, got, err, tc.want)
			}
			if rec.called != 0 || counter.n != 1 || h.inflight.Load() != 0 {
				t.Fatalf("%s: next called %d times, provider_error counted %d times, %d bytes reserved", tc.name, rec.called, counter.n, h.inflight.Load())
			}
		}
	}
}

// The budget counts the body and the room around it: an Ed25519 body
// whose size and prefix and suffix room make exactly max_inflight_bytes is
// held, a second one while the first is held is 503, and everything is
// given back when the requests end; declared and chunked.
func TestSchemesBudgetWithRoom(t *testing.T) {
	const size = 64 << 10
	s := skEd25519(3)
	ts := strings.Repeat("9", 200) // a long prefix and suffix
	room := len(skMessage(ts, nil))
	for _, chunked := range []bool{false, true} {
		h := skHandler(t, s.scheme, []string{s.secret}, fmt.Sprintf(`, "max_body_size": %d, "max_inflight_bytes": %d`, size, size+room))
		body := vecBytes(9, size)
		hdr := skHeader(ts, s.sign(skMessage(ts, body)))
		rec, cancel, err := skServe(t, h, body, hdr, chunked)
		if err != nil || !bytes.Equal(rec.body, body) {
			t.Fatalf("chunked=%v: a body of exactly max_inflight_bytes with its room: %v", chunked, err)
		}
		if n := h.inflight.Load(); n != int64(size+room) {
			t.Fatalf("chunked=%v: %d bytes reserved, want %d (the body and its room)", chunked, n, size+room)
		}
		rec2, cancel2, err2 := skServe(t, h, []byte("x"), skHeader(ts, s.sign(skMessage(ts, []byte("x")))), chunked)
		if got := hStatus(t, err2); got != http.StatusServiceUnavailable || rec2.called != 0 {
			t.Fatalf("chunked=%v: a second body while the first is held: status %d", chunked, got)
		}
		skEnd(t, h, cancel2, int64(size+room), fmt.Sprintf("chunked=%v: the refused second body", chunked))
		skEnd(t, h, cancel, 0, fmt.Sprintf("chunked=%v: the held body", chunked))
		// one byte over: 413 (declared), 503 (chunked: the budget is
		// reached first, as it is read), nothing held
		big := vecBytes(9, size+1)
		_, cancel, err = skServe(t, h, big, skHeader(ts, s.sign(skMessage(ts, big))), chunked)
		cancel()
		want := http.StatusRequestEntityTooLarge
		if chunked {
			want = http.StatusServiceUnavailable
		}
		if got := hStatus(t, err); got != want || h.inflight.Load() != 0 {
			t.Fatalf("chunked=%v: one byte over: status %d, %d bytes reserved", chunked, got, h.inflight.Load())
		}
	}
}

// readBodyRoom leaves head bytes of room before the body and at least tail
// after it, for declared and chunked bodies of every size (growth keeps
// the room), and counts the room out of the limit.
func TestReadBodyRoom(t *testing.T) {
	for _, size := range []int{0, 1, 4096, 4096 - 3, 32<<10 - 1, 32 << 10, 32<<10 + 1, 100 << 10} {
		body := vecBytes(uint64(size), size)
		for _, hint := range []int64{int64(size), -1} {
			for _, room := range [][2]int{{0, 0}, {3, 0}, {0, 5}, {31, 17}, {4096, 4096}} {
				head, tail := room[0], room[1]
				buf, err := readBodyRoom(io.MultiReader(bytes.NewReader(body)), int64(size), hint, head, tail, nil)
				if err != nil {
					t.Fatalf("size %d hint %d room %v: %v", size, hint, room, err)
				}
				if len(buf) != head+size || !bytes.Equal(buf[head:], body) || cap(buf)-len(buf) < tail {
					t.Fatalf("size %d hint %d room %v: len %d cap %d", size, hint, room, len(buf), cap(buf))
				}
				putBuf(buf)
				if size > 0 {
					_, err := readBodyRoom(bytes.NewReader(body), int64(size-1), hint, head, tail, nil)
					if !errors.Is(err, ErrBodyTooLarge) {
						t.Fatalf("size %d over a limit of %d with room %v: %v", size, size-1, room, err)
					}
				}
			}
		}
	}
}

// Ed25519 needs the whole message, Prefix‖body‖Suffix: it is checked in
// the body's own buffer, so a large body is not copied for it. Through
// readVerified (the path ServeHTTP takes) with pooled buffers, a 4 MiB
// body allocates far less than its size per request; a concatenation
// would allocate 4 MiB each time.
func TestSchemesEd25519NoSecondCopy(t *testing.T) {
	const size = 4 << 20
	s := skEd25519(5)
	h := skHandler(t, s.scheme, []string{s.secret}, "")
	body := vecBytes(5, size)
	ts := "1700000000"
	hdr := skHeader(ts, s.sign(skMessage(ts, body)))
	run := func() {
		r := hRequest(context.Background(), http.MethodPost, "", hdr)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = size
		signed, err := h.provider.Parse(r, h.now())
		if err != nil {
			t.Fatal(err)
		}
		vb := &verifiedBody{h: h}
		if _, sigErr, err := h.readVerified(httptest.NewRecorder(), r, signed, vb, h.now(), readVerify); err != nil || sigErr != nil {
			t.Fatal(err, sigErr)
		}
		if len(vb.bytes()) != size {
			t.Fatalf("body of %d bytes", len(vb.bytes()))
		}
		vb.release()
	}
	run() // the buffer's class is now in its free list
	const n = 8
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		run()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > size/8 {
		t.Fatalf("%d bytes allocated per request for a %d-byte body: the body was copied", per, size)
	}
}

// Bad public keys fail provisioning with a sentence that says which form
// is expected, never echoing the value; keys of two kinds are refused.
func TestSchemesProvisionBadKeys(t *testing.T) {
	ed, ec := skEd25519(1), skECDSA(t)
	cases := []struct {
		scheme  providers.Scheme
		secrets []string
		want    string
	}{
		{providers.SchemeEd25519, []string{"not-a-key"}, "64 hex digits"},
		{providers.SchemeEd25519, []string{ed.secret[:62]}, "64 hex digits"},
		{providers.SchemeEd25519, []string{ed.secret, ec.secret}, "secret 2: not an Ed25519 public key"},
		{providers.SchemeECDSAP256SHA256, []string{ed.secret}, "SubjectPublicKeyInfo"},
		{providers.SchemeECDSAP256SHA256, []string{ec.secret[:40]}, "SubjectPublicKeyInfo"},
	}
	for _, tc := range cases {
		h := hProvision(t, "")
		h.provider = skProvider{scheme: tc.scheme}
		h.Secrets = plainSecrets(tc.secrets...)
		_, err := h.provisionKeys(caddy.NewReplacer())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q: %v, want it to say %q", tc.scheme, tc.secrets, err, tc.want)
			continue
		}
		for _, s := range tc.secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error repeats the key: %v", err)
			}
		}
	}
	// the keyring itself refuses mixed or unsupported keys
	edKey, _ := providers.ParseEd25519PublicKey(ed.secret)
	ecKey, _ := providers.ParseECDSAP256PublicKey(ec.secret)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, keys := range [][]crypto.PublicKey{{edKey, ecKey}, {ecKey, edKey}, {&p384.PublicKey}, {"a string"}, {ed25519.PublicKey(edKey[:31])}} {
		if _, err := newPublicKeyring(keys); err == nil {
			t.Errorf("newPublicKeyring(%T...) accepted", keys[0])
		}
	}
}

// skDiscard is a next handler that reads the body and drops it.
type skDiscard struct{}

func (skDiscard) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	_, err := io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
	return err
}

// BenchmarkSchemes measures a 64 KiB body through ServeHTTP per scheme,
// the request ended (and its buffer back in its free list) each time.
func BenchmarkSchemes(b *testing.B) {
	body := vecBytes(1, 64<<10)
	ts := "1700000000"
	ec := skECDSA(b)
	for _, s := range []skSigner{skHMAC("k"), skEd25519(1), ec} {
		b.Run(s.name, func(b *testing.B) {
			h := skHandler(b, s.scheme, []string{s.secret}, "")
			hdr := skHeader(ts, s.sign(skMessage(ts, body)))
			rd := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithCancel(context.Background())
				rd.Reset(body)
				r := hRequest(ctx, http.MethodPost, "", hdr)
				r.Body = io.NopCloser(rd)
				r.ContentLength = int64(len(body))
				if err := h.ServeHTTP(httptest.NewRecorder(), r, skDiscard{}); err != nil {
					b.Fatal(err)
				}
				cancel()
				for h.inflight.Load() != 0 {
					runtime.Gosched() // the release runs on its own goroutine
				}
			}
		})
	}
}
