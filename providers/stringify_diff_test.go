package providers_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

// The differential fuzzer: inputs from a grammar-aware JSON generator, a
// mutator of its output, and raw bytes, transformed by Stringify and by
// Node itself (testdata/stringify/oracle.js, one long-running process that
// reads base64 bodies and answers base64 texts, a line each). Any
// difference fails, and the input is appended to
// testdata/stringify/fuzz-found.jsonl, from which gen.js makes a committed
// vector. Node is required under CI=true; elsewhere its absence skips.
//
//	go test -run '^TestStringifyDifferential$' ./providers -stringify.time=30s
//	go test -run '^TestStringifyDifferential$' ./providers -stringify.n=10000000 -timeout 0
//
// The native fuzz target FuzzStringifyNode does the same with Go's
// coverage-guided byte mutator (test.sh runs it 10 s).
var (
	diffN    = flag.Int("stringify.n", 3000, "differential: number of inputs (when -stringify.time is 0)")
	diffTime = flag.Duration("stringify.time", 0, "differential: run for this long instead of -stringify.n inputs")
	diffSeed = flag.Uint64("stringify.seed", 0, "differential: the generator's seed (0: from the clock, logged)")
)

const foundFile = "../testdata/stringify/fuzz-found.jsonl"

// nodeOracle is one node process running oracle.js.
type nodeOracle struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Reader
}

var (
	oracleOnce sync.Once
	oracle     *nodeOracle
	oracleErr  error
)

// needNode returns the shared oracle, or skips (fails under CI=true) when
// node is not installed.
func needNode(t testing.TB) *nodeOracle {
	t.Helper()
	oracleOnce.Do(func() {
		path, err := exec.LookPath("node")
		if err != nil {
			oracleErr = err
			return
		}
		script, err := filepath.Abs("../testdata/stringify/oracle.js")
		if err != nil {
			oracleErr = err
			return
		}
		cmd := exec.Command(path, script)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			oracleErr = err
			return
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			oracleErr = err
			return
		}
		if err := cmd.Start(); err != nil {
			oracleErr = err
			return
		}
		// the process ends when the test binary does (its stdin closes)
		oracle = &nodeOracle{cmd: cmd, in: bufio.NewWriterSize(stdin, 1<<20), out: bufio.NewReaderSize(stdout, 1<<20)}
	})
	if oracleErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed for the differential tests (apt-get install nodejs): %v", oracleErr)
		}
		t.Skipf("node not available, differential test against Node skipped: %v", oracleErr)
	}
	return oracle
}

// run sends the inputs and returns Node's texts (nil: refused), calling
// while(), if not nil, between the sending and the reading.
func (o *nodeOracle) run(t testing.TB, inputs [][]byte, while func()) [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	werr := make(chan error, 1)
	go func() {
		enc := base64.NewEncoder(base64.StdEncoding, o.in)
		for _, in := range inputs {
			enc.Write(in)
			enc.Close()
			o.in.WriteByte('\n')
		}
		werr <- o.in.Flush()
	}()
	if while != nil {
		while()
	}
	res := make([][]byte, len(inputs))
	for i := range inputs {
		line, err := o.out.ReadSlice('\n')
		if err != nil {
			t.Fatalf("reading node's answer: %v", err)
		}
		line = line[:len(line)-1]
		switch {
		case len(line) == 1 && line[0] == '-':
		case len(line) >= 1 && line[0] == '+':
			res[i] = make([]byte, base64.StdEncoding.DecodedLen(len(line)-1))
			n, err := base64.StdEncoding.Decode(res[i], line[1:])
			if err != nil {
				t.Fatalf("node's answer: %v", err)
			}
			res[i] = res[i][:n]
		default:
			t.Fatalf("node's answer: %q", line)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing to node: %v", err)
	}
	return res
}

// ours is Stringify's text for in (nil: refused), depthCapped when it was
// refused for its depth alone, and whether the MAC it fed matches an
// HMAC-SHA512 of the text.
type ours struct {
	text        []byte
	depthCapped bool
	macOK       bool
}

var diffKey = []byte(vectorSecret)

// transform runs Stringify on in, feeding a MAC. With match, the MAC is
// read when Stringify calls Match (which matches, so the text is then
// built); it must be called once, unless the text is the body, and
// nothing be written to the MAC after it.
func transform(in []byte, match bool) ours {
	mac := newMACWriter()
	opt := providers.TextOptions{MAC: mac}
	var sum []byte
	calls, atMatch := 0, 0
	if match {
		opt.Match = func() bool {
			calls++
			sum, atMatch = mac.Sum(nil), mac.written
			return true
		}
	}
	text, same, err := providers.Stringify(in, opt)
	if err != nil {
		return ours{depthCapped: errors.Is(err, providers.ErrStringifyDepth), macOK: true}
	}
	if same {
		return ours{text: text, macOK: mac.written == 0 && calls == 0}
	}
	if !match {
		sum = mac.Sum(nil)
	} else if calls != 1 || mac.written != atMatch {
		return ours{text: text, macOK: false}
	}
	want := hmac.New(sha512.New, diffKey)
	want.Write(text)
	return ours{text: text, macOK: hmac.Equal(sum, want.Sum(nil))}
}

// compare reports a difference between ours and Node's text, or "".
func compare(o ours, node []byte) string {
	switch {
	case !o.macOK:
		return "the MAC fed by Stringify is not the text's MAC"
	case o.text == nil && node == nil:
		return ""
	case o.text == nil && o.depthCapped:
		return "" // refused past StringifyMaxDepth: fails closed by design
	case o.text == nil:
		return fmt.Sprintf("Stringify refuses it; Node gives %q", node)
	case node == nil:
		return fmt.Sprintf("Node refuses it; Stringify gives %q", o.text)
	case !bytes.Equal(o.text, node):
		return fmt.Sprintf("\nStringify %q\n     Node %q", o.text, node)
	}
	return ""
}

// recordFound appends an input on which Stringify and Node differ to
// fuzz-found.jsonl, for gen.js to turn into a committed vector.
func recordFound(t testing.TB, in []byte) {
	f, err := os.OpenFile(foundFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("recording the input: %v", err)
		return
	}
	defer f.Close()
	line, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("fuzz %x", sha512.Sum512_256(in))[:21], "in": in})
	f.Write(append(line, '\n'))
	t.Logf("input recorded in %s: rerun node testdata/stringify/gen.js > testdata/stringify/vectors.jsonl and commit both", foundFile)
}

func TestStringifyDifferential(t *testing.T) {
	o := needNode(t)
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -stringify.seed=%d)", seed, seed)
	g := newJSONGen(seed)
	deadline := time.Time{}
	if *diffTime > 0 {
		deadline = time.Now().Add(*diffTime)
	}
	const batch = 4096
	var total, refused, depth, changed int
	inputs := make([][]byte, 0, batch)
	res := make([]ours, batch)
	for b := 0; ; b++ {
		if deadline.IsZero() && total >= *diffN || !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		n := batch
		if deadline.IsZero() {
			n = min(batch, *diffN-total)
		}
		inputs = inputs[:0]
		for range n {
			inputs = append(inputs, g.input())
		}
		// every other batch hashes its text a few bytes at a time, so that
		// the held-back and restarted MAC of reordered objects are tested
		// on small bodies too (and the staging of the MAC alone); half of
		// them with Match (the text only written to the MAC, then built)
		undo := providers.SetFeedChunk([]int{64 << 10, 1, 7, 100}[b%4])
		match := b%8 >= 4
		node := o.run(t, inputs, func() {
			for i, in := range inputs {
				res[i] = transform(in, match)
			}
		})
		undo()
		for i, in := range inputs {
			if d := compare(res[i], node[i]); d != "" {
				recordFound(t, in)
				t.Fatalf("input %q (base64 %s): %s", in, base64.StdEncoding.EncodeToString(in), d)
			}
			switch {
			case res[i].depthCapped && node[i] != nil:
				depth++
			case node[i] == nil:
				refused++
			case !bytes.Equal(in, node[i]):
				changed++
			}
		}
		total += n
		if total/1000000 != (total-n)/1000000 {
			t.Logf("%d inputs so far, zero differences", total)
		}
	}
	t.Logf("%d inputs, zero differences from Node: %d refused by both, %d changed by the transform, %d refused past depth %d only by Stringify",
		total, refused, changed, depth, providers.StringifyMaxDepth)
}

// FuzzStringifyNode compares Stringify with Node on the inputs of Go's
// coverage-guided fuzzer, and checks that the text is a fixed point.
func FuzzStringifyNode(f *testing.F) {
	for _, v := range loadStringifyVectors(f) {
		f.Add(v.In)
	}
	g := newJSONGen(1)
	for range 64 {
		f.Add(g.input())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got := transform(in, len(in)%2 == 1)
		if got.text != nil {
			again, same, err := providers.Stringify(got.text, providers.TextOptions{})
			if err != nil || !same {
				t.Fatalf("the text %q is not a fixed point: %q, same=%v, %v", got.text, again, same, err)
			}
		}
		node := needNode(t).run(t, [][]byte{in}, nil)[0]
		if d := compare(got, node); d != "" {
			recordFound(t, in)
			t.Fatalf("input %q: %s", in, d)
		}
	})
}

// jsonGen makes inputs for the differential test: JSON documents built
// from the grammar with the cases that matter weighted up (escapes,
// surrogates, invalid UTF-8, array-index and repeated keys, every number
// form, white space), mutations of them, and raw bytes.
type jsonGen struct {
	r   *rand.Rand
	buf []byte
}

func newJSONGen(seed uint64) *jsonGen {
	return &jsonGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *jsonGen) input() []byte {
	g.buf = g.buf[:0]
	switch p := g.r.IntN(100); {
	case p < 50:
		g.doc()
	case p < 90:
		g.doc()
		g.mutate()
	default:
		g.rawBytes()
	}
	return bytes.Clone(g.buf)
}

func (g *jsonGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *jsonGen) doc() {
	if g.r.IntN(30) == 0 {
		g.buf = append(g.buf, 0xEF, 0xBB, 0xBF)
	}
	g.ws()
	if g.r.IntN(4) == 0 {
		g.array(0)
	} else {
		g.object(0)
	}
	g.ws()
}

// ws adds JSON white space, usually none.
func (g *jsonGen) ws() {
	switch g.r.IntN(10) {
	case 0:
		g.buf = append(g.buf, g.pick(" ", "\n", "\r\n", "\t", "\n  ", "\n    ", " \t\r\n")...)
	case 1:
		for range g.r.IntN(4) {
			g.buf = append(g.buf, " \t\n\r"[g.r.IntN(4)])
		}
	}
}

func (g *jsonGen) value(depth int) {
	if depth > 6 {
		g.scalar()
		return
	}
	switch g.r.IntN(10) {
	case 0, 1:
		g.object(depth + 1)
	case 2:
		g.array(depth + 1)
	default:
		g.scalar()
	}
}

func (g *jsonGen) scalar() {
	switch g.r.IntN(10) {
	case 0, 1, 2, 3:
		g.str(false)
	case 4, 5, 6, 7:
		g.number()
	default:
		g.buf = append(g.buf, g.pick("true", "false", "null")...)
	}
}

func (g *jsonGen) object(depth int) {
	g.buf = append(g.buf, '{')
	g.ws()
	n := g.r.IntN(6)
	if g.r.IntN(20) == 0 {
		n = 8 + g.r.IntN(20) // past the linear key check
	}
	var keys [][]byte
	for i := range n {
		if i > 0 {
			g.ws()
			g.buf = append(g.buf, ',')
			g.ws()
		}
		start := len(g.buf)
		if len(keys) > 0 && g.r.IntN(6) == 0 {
			g.buf = append(g.buf, keys[g.r.IntN(len(keys))]...) // a repeated key
		} else {
			g.key()
		}
		keys = append(keys, bytes.Clone(g.buf[start:]))
		g.ws()
		g.buf = append(g.buf, ':')
		g.ws()
		g.value(depth)
	}
	g.ws()
	g.buf = append(g.buf, '}')
}

func (g *jsonGen) array(depth int) {
	g.buf = append(g.buf, '[')
	g.ws()
	for i := range g.r.IntN(6) {
		if i > 0 {
			g.ws()
			g.buf = append(g.buf, ',')
			g.ws()
		}
		g.value(depth)
	}
	g.ws()
	g.buf = append(g.buf, ']')
}

func (g *jsonGen) key() {
	switch g.r.IntN(8) {
	case 0, 1: // array indices and near misses
		g.buf = append(g.buf, '"')
		switch g.r.IntN(8) {
		case 0:
			g.buf = append(g.buf, g.pick("0", "1", "2", "9", "10", "01", "00", "-0", "-1", "1.0", "1e0", "+1", " 1", "4294967294", "4294967295", "4294967296", "9007199254740993", "\\u0031", "1\\u0030", "\\u0030")...)
		default:
			g.buf = strconv.AppendUint(g.buf, uint64(g.r.IntN(20)), 10)
		}
		g.buf = append(g.buf, '"')
	case 2:
		g.buf = append(g.buf, '"')
		g.buf = append(g.buf, g.pick("a", "b", "c", "id", "event", "__proto__", "", "\\u0061", "\\ud800", "\\uD800", "\\ufffd", "\xff", "\xfe", "\xc0", "é", "\\u00e9", "\\/")...)
		g.buf = append(g.buf, '"')
	default:
		g.str(true)
	}
}

// pieces of strings
var (
	strASCII   = []string{"a", "b", "z", "0", " ", "<", ">", "&", "'", "/", "\x7f", "html", `<p class=\"x\">`, "id", "e1"}
	strEscapes = []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0000`, `\u001f`, `\u001F`, `\u0008`, `\u0022`, `\u005c`, `\u005C`, `\u002f`, `\u003c`, `\u003E`, `\u0026`, `\u00e9`, `\u00E9`, `\u007f`, `\u2028`, `\u2029`, `\ufeff`, `\uffff`, `\uFFFD`, `\ud83d\ude00`, `\uD83D\uDE00`, `\ud800`, `\udbff`, `\udc00`, `\uDFFF`, `\ude00\ud83d`, `\ud83d\u0041`, `\ud800\ud800`, `\ud800\udc00`, `\u0041`, `\u4e2d`}
	strUTF8    = []string{"é", "€", "😀", "中", "\u2028", "\u2029", "\ufeff", "\uffff", "\U0010ffff", "\u0080", "\u07ff", "\u0800"}
	strInvalid = []string{"\xff", "\xfe", "\xc0", "\xc0\xaf", "\xc1\xbf", "\x80", "\xbf", "\xe2\x82", "\xe2", "\xf0\x9f\x98", "\xf0\x9f", "\xed\xa0\x80", "\xed\xbf\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xc2", "\xdf", "\xef\xbf", "\xf0\x80\x80\x80", "\xf4\x8f\xbf"}
)

func (g *jsonGen) str(isKey bool) {
	g.buf = append(g.buf, '"')
	n := g.r.IntN(6)
	if isKey {
		n = g.r.IntN(3)
	}
	for range n {
		switch p := g.r.IntN(20); {
		case p < 8:
			g.buf = append(g.buf, strASCII[g.r.IntN(len(strASCII))]...)
		case p < 13:
			g.buf = append(g.buf, strEscapes[g.r.IntN(len(strEscapes))]...)
		case p < 16:
			g.buf = append(g.buf, strUTF8[g.r.IntN(len(strUTF8))]...)
		case p < 18:
			g.buf = append(g.buf, strInvalid[g.r.IntN(len(strInvalid))]...)
		case p < 19: // a random \u escape, either case
			u := fmt.Sprintf(g.pick(`\u%04x`, `\u%04X`), g.r.IntN(0x10000))
			g.buf = append(g.buf, u...)
		default: // a long plain run (the 8-byte scan)
			for range g.r.IntN(40) {
				if c := byte(0x20 + g.r.IntN(0x5f)); c != '\\' && c != '"' {
					g.buf = append(g.buf, c)
				}
			}
		}
	}
	g.buf = append(g.buf, '"')
}

func (g *jsonGen) number() {
	switch g.r.IntN(12) {
	case 0:
		g.buf = append(g.buf, g.pick("0", "-0", "-0.0", "0e0", "-0E+0", "1.0", "1E2", "1e+2", "10e1", "1000e-1", "0.1e1",
			"1e-7", "1.5e-7", "1e-6", "0.000001", "9.999999999999999e-7", "1e20", "1e21", "999999999999999999999", "123e-20",
			"9007199254740993", "9007199254740992.5", "12345678901234567890", "1e400", "-1e400", "1e-400", "1.8e308",
			"1.7976931348623157e308", "5e-324", "2.4703282292062328e-324", "2.4703282292062327e-324", "4.9406564584124654e-324",
			"1e0000000000000000000001", "0.0000000000000000000000000000001e31", "1e-99999999999999999999", "1e99999999999999999999",
			"123456789012345", "1234567890123456", "-123456789012345", "100000000000000000000", "1e+21", "0.30000000000000004")...)
	case 1, 2, 3: // a small integer
		g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(2000))-1000, 10)
	case 4: // a big integer
		if g.r.IntN(2) == 0 {
			g.buf = append(g.buf, '-')
		}
		g.buf = append(g.buf, byte('1'+g.r.IntN(9)))
		for range g.r.IntN(30) {
			g.buf = append(g.buf, byte('0'+g.r.IntN(10)))
		}
	default: // a random double in one of many spellings
		var f float64
		switch g.r.IntN(3) {
		case 0:
			f = math.Float64frombits(g.r.Uint64())
		case 1:
			f = g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(60)-30))
		default:
			f = float64(g.r.IntN(1000000)) / math.Pow(10, float64(g.r.IntN(12)))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 1.5
		}
		var s string
		switch g.r.IntN(6) {
		case 0:
			s = strconv.FormatFloat(f, 'g', -1, 64)
		case 1:
			s = strconv.FormatFloat(f, 'e', g.r.IntN(25), 64)
		case 2:
			s = strconv.FormatFloat(f, 'E', -1, 64)
		case 3:
			s = strconv.FormatFloat(f, 'f', -1, 64)
		case 4:
			s = strconv.FormatFloat(f, 'g', 17+g.r.IntN(8), 64)
		default:
			s = strconv.FormatFloat(f, 'e', -1, 64)
			if i := strings.IndexByte(s, 'e'); i > 0 {
				s = s[:i] + strings.Repeat("0", g.r.IntN(5)) + s[i:]
			}
		}
		g.buf = append(g.buf, s...)
	}
}

// interesting bytes for mutations
var mutBytes = []byte("{}[]\",:\\u0123456789-+.eE \t\n\rtfnabcxdD\x00\x1f\x7f\x80\xbf\xc0\xc2\xe0\xe2\xed\xef\xf0\xf4\xf5\xff")

func (g *jsonGen) mutate() {
	for range 1 + g.r.IntN(3) {
		b := g.buf
		if len(b) == 0 {
			return
		}
		i := g.r.IntN(len(b))
		switch g.r.IntN(7) {
		case 0: // replace a byte
			b[i] = mutBytes[g.r.IntN(len(mutBytes))]
		case 1: // insert a byte
			b = append(b[:i], append([]byte{mutBytes[g.r.IntN(len(mutBytes))]}, b[i:]...)...)
		case 2: // delete a byte
			b = append(b[:i], b[i+1:]...)
		case 3: // duplicate a span
			j := i + g.r.IntN(min(16, len(b)-i)+1)
			b = append(b[:j], append(bytes.Clone(b[i:j]), b[j:]...)...)
		case 4: // insert a piece that matters
			p := g.pick(`\u`, `\ud800`, `\udc00`, `"1":`, `"0":0,`, `,"a":1`, "\xef\xbb\xbf", "1e", "-0", ".5", "\xe2\x80\xa8", `\`, `"`)
			b = append(b[:i], append([]byte(p), b[i:]...)...)
		case 5: // truncate
			b = b[:i]
		default: // flip a bit
			b[i] ^= 1 << g.r.IntN(8)
		}
		g.buf = b
	}
}

func (g *jsonGen) rawBytes() {
	n := g.r.IntN(24)
	for range n {
		if g.r.IntN(3) == 0 {
			g.buf = append(g.buf, byte(g.r.IntN(256)))
		} else {
			g.buf = append(g.buf, mutBytes[g.r.IntN(len(mutBytes))])
		}
	}
	if g.r.IntN(2) == 0 && len(g.buf) > 0 {
		g.buf[0] = "{["[g.r.IntN(2)]
	}
}

var _ = io.EOF

// Objects of many keys (the key tables: built past 8 plain keys, doubled
// as they fill, reused by the next object at the same depth, and
// reorder's), with repeats, array indices and nesting, against Node.
func TestStringifyManyKeysNode(t *testing.T) {
	o := needNode(t)
	r := rand.New(rand.NewPCG(12, 34))
	g := newJSONGen(56)
	var inputs [][]byte
	for n := range 60 {
		keys := []int{9, 17, 33, 100, 1000, 5000, 20000}[n%7]
		var b []byte
		b = append(b, '[')
		for obj := range 1 + n%3 { // objects at the same depth reuse a table
			if obj > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			var seen []string
			for k := range keys {
				if k > 0 {
					b = append(b, ',')
					if n%2 == 1 {
						b = append(b, "\n  "...)
					}
				}
				var key string
				switch x := r.IntN(100); {
				case x < 2*(n%4) && len(seen) > 0: // repeats, in some inputs
					key = seen[r.IntN(len(seen))]
				case x < 10 && n%5 == 0: // array indices, in some inputs
					key = `"` + strconv.Itoa(r.IntN(keys)) + `"`
				case x < 12:
					g.buf = g.buf[:0]
					g.key()
					key = string(g.buf)
				default:
					key = `"k` + strconv.FormatInt(int64(r.IntN(4*keys)), 36) + `"`
				}
				seen = append(seen, key)
				b = append(b, key...)
				b = append(b, ':')
				if r.IntN(50) == 0 {
					b = append(b, `{"z":1,"a":[1,{"y":2,"b":3}]}`...)
				} else {
					b = strconv.AppendInt(b, int64(k), 10)
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
		inputs = append(inputs, b)
	}
	node := o.run(t, inputs, nil)
	for i, in := range inputs {
		if d := compare(transform(in, i%2 == 1), node[i]); d != "" {
			if len(d) > 300 {
				d = d[:300] + "..."
			}
			t.Errorf("input %d (%d bytes): %s", i, len(in), d)
		}
	}
}
