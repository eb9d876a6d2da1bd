package queue

import (
	"encoding/binary"
	"math"
	"net/http"
	"time"
)

// recordV3 starts a bbolt record in binary: the id as in recordV2 (so
// recordID reads both), then the fields in the order of encodeBinary.
// Decoding JSON was the largest part of a delivery's CPU in the store
// (Due and Complete each read the record; BENCHMARKS.md §5c), and binary
// keeps text bytes that are not UTF-8 without the gob side-car (Bin) that
// JSON needs. Records of recordV2 (JSON) are still read; a record is
// written back as recordV3 whenever it changes.
const recordV3 = 3

// encodeBinary is the event's record in a bbolt file.
func encodeBinary(ev *Event) []byte {
	n := 64 + len(ev.ID) + len(ev.Provider) + len(ev.EventType) + len(ev.Method) + len(ev.URI) + len(ev.Host) +
		len(ev.ClientIP) + len(ev.RemoteAddr) + len(ev.State) + len(ev.LastError) + 7*binary.MaxVarintLen64
	for k, vs := range ev.Header {
		n += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, n)
	b = append(b, recordV3)
	b = appendString(b, ev.ID)
	var flags uint64
	if ev.GeneratedID {
		flags |= 1
	}
	if ev.Unverified {
		flags |= 2
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, ev.Seq)
	for _, s := range [...]string{ev.Provider, ev.EventType, ev.Method, ev.URI, ev.Host, ev.ClientIP, ev.RemoteAddr} {
		b = appendString(b, s)
	}
	if ev.Header == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(ev.Header))+1)
		for k, vs := range ev.Header {
			b = appendString(b, k)
			b = binary.AppendUvarint(b, uint64(len(vs)))
			for _, v := range vs {
				b = appendString(b, v)
			}
		}
	}
	b = appendTime(b, ev.ReceivedAt)
	b = binary.AppendVarint(b, ev.Size)
	b = binary.AppendVarint(b, int64(ev.Key))
	b = appendString(b, string(ev.State))
	b = binary.AppendVarint(b, int64(ev.Attempts))
	b = appendTime(b, ev.DueAt)
	b = appendTime(b, ev.LastAttemptAt)
	b = binary.AppendVarint(b, int64(ev.LastStatus))
	b = appendString(b, ev.LastError)
	b = appendTime(b, ev.DoneAt)
	b = appendTime(b, ev.ExpiresAt)
	b = binary.AppendVarint(b, int64(ev.Replays))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime writes t as nanoseconds since 1970 plus one (0: the zero
// time), in UTC: times are compared, never shown in their zone.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	n := t.UnixNano()
	if n >= 0 && n < math.MaxInt64 {
		n++
	}
	return binary.AppendVarint(b, n)
}

// recordReader reads the fields of a recordV3; the first error sticks.
type recordReader struct {
	b   []byte
	bad bool
}

func (r *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) int() int {
	v := r.varint()
	if v < math.MinInt || v > math.MaxInt {
		r.bad = true
		return 0
	}
	return int(v)
}

func (r *recordReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *recordReader) time() time.Time {
	n := r.varint()
	switch {
	case n == 0:
		return time.Time{}
	case n > 0:
		n--
	}
	return time.Unix(0, n).UTC()
}

// decodeBinary reads a recordV3 (v[0] == recordV3) into ev.
func decodeBinary(v []byte, ev *Event) error {
	r := recordReader{b: v[1:]}
	*ev = Event{Body: ev.Body}
	ev.ID = r.string()
	flags := r.uvarint()
	ev.GeneratedID, ev.Unverified = flags&1 != 0, flags&2 != 0
	ev.Seq = r.uvarint()
	for _, s := range [...]*string{&ev.Provider, &ev.EventType, &ev.Method, &ev.URI, &ev.Host, &ev.ClientIP, &ev.RemoteAddr} {
		*s = r.string()
	}
	if nk := r.uvarint(); nk > 0 && !r.bad {
		nk--
		if nk > uint64(len(r.b)) {
			return errDamaged
		}
		ev.Header = make(http.Header, nk)
		for range nk {
			k := r.string()
			nv := r.uvarint()
			if r.bad || nv > uint64(len(r.b)) {
				return errDamaged
			}
			vs := make([]string, nv)
			for i := range vs {
				vs[i] = r.string()
			}
			ev.Header[k] = vs
		}
	}
	ev.ReceivedAt = r.time()
	ev.Size = r.varint()
	ev.Key = r.int()
	ev.State = State(r.string())
	ev.Attempts = r.int()
	ev.DueAt = r.time()
	ev.LastAttemptAt = r.time()
	ev.LastStatus = r.int()
	ev.LastError = r.string()
	ev.DoneAt = r.time()
	ev.ExpiresAt = r.time()
	ev.Replays = r.int()
	if r.bad || len(r.b) != 0 {
		return errDamaged
	}
	return nil
}
