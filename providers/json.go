package providers

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// TopLevelFields scans body as a JSON object and sets vals[i] to the value of
// its top-level member names[i]: a string's value, or a number's JSON text.
// Other values (objects, arrays, booleans, null), absent members and bodies
// that are not a JSON object leave the field empty. When a member is
// repeated the last one wins, as in JavaScript's JSON.parse.
//
// Nested values are skipped, not decoded: their grammar is checked, but
// strings are crossed with bytes.IndexByte, so a multi-MiB HTML page inside
// the payload costs a scan, not an allocation. (Control characters inside
// strings are not looked for.)
func TopLevelFields(body []byte, names, vals []string) {
	clear(vals)
	if !scanTopLevel(body, names, vals) {
		clear(vals)
	}
}

func scanTopLevel(b []byte, names, vals []string) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, ok := skipString(b, i)
		if !ok {
			return false
		}
		key := b[i:end]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		vend, ok := skipValue(b, i)
		if !ok {
			return false
		}
		if f := fieldIndex(names, key); f >= 0 {
			vals[f] = scalarText(b[i:vend])
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// fieldIndex returns the index in names of the quoted JSON key, or -1.
func fieldIndex(names []string, quoted []byte) int {
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return -1
		}
		raw = []byte(s)
	}
	for n, name := range names {
		if string(raw) == name {
			return n
		}
	}
	return -1
}

// scalarText is a string value's text or a number's JSON text, else "".
func scalarText(v []byte) string {
	switch c := v[0]; {
	case c == '"':
		raw := v[1 : len(v)-1]
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return string(raw)
		}
		var s string // escapes, or invalid UTF-8 replaced as encoding/json does
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		return string(v)
	}
	return ""
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
// Escapes are not decoded; the closing quote is found with IndexByte.
func skipString(b []byte, i int) (int, bool) {
	start := i + 1
	j := start
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false
		}
		q := j + k
		// the quote ends the string unless an odd run of backslashes escapes it
		bs := 0
		for p := q - 1; p >= start && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 10000

// skipValue returns the index just past the JSON value that starts at b[i],
// checking the grammar of everything but the inside of strings.
func skipValue(b []byte, i int) (int, bool) {
	return skipValueDepth(b, i, 0)
}

func skipValueDepth(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		return skipContainer(b, i, depth, '}', true)
	case c == '[':
		return skipContainer(b, i, depth, ']', false)
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, false
}

// skipContainer skips an object (keyed) or an array starting at b[i].
func skipContainer(b []byte, i, depth int, closer byte, keyed bool) (int, bool) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true
	}
	for {
		if keyed {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			end, ok := skipString(b, i)
			if !ok {
				return 0, false
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
		end, ok := skipValueDepth(b, i, depth+1)
		if !ok {
			return 0, false
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case closer:
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// skipNumber skips a number per the JSON grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}
