package providers

// SetFeedChunk makes Stringify hash its text n bytes at a time (tests of
// the held-back and restarted MAC on small bodies); it returns the undo.
//
// It also sets how the MAC alone (TextOptions.Match) stages what it
// writes: spans from min(n, 1 KiB) bytes on are written directly, shorter
// ones gathered in a buffer of min(8 KiB, 2n+16) bytes.
func SetFeedChunk(n int) (undo func()) {
	old, oldSize, oldDirect := feedChunk, stageSize, stageDirect
	feedChunk = n
	stageDirect, stageSize = min(n, 1<<10), min(8<<10, 2*n+16)
	return func() { feedChunk, stageSize, stageDirect = old, oldSize, oldDirect }
}

// RepeatedPending calls repeated on the second key of {"k1":1,"k1":2} in a
// state where the first key's bytes are still in the pending span (not yet
// moved into out): it must find the repeat there, not read out past its
// length. It returns repeated's answer.
func RepeatedPending() (bool, error) {
	raw := []byte(`{"k1":1,"k1":2}`)
	s := stringifier{raw: raw, hold: -1, cp: 0, out: make([]byte, 0, 2)}
	s.frames = []frame{{obj: true, lastIndex: -1, seenPlain: true}}
	s.members = []member{{keyStart: 1, keyEnd: 5, valEnd: 7, index: noIndex}}
	// the second key is raw[8:12]; its output offset is the same
	return s.repeated(&s.frames[0], raw[8:12], 12)
}

// AppendShortNumber is appendShortNumber.
var AppendShortNumber = appendShortNumber
