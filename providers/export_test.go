package providers

// SetFeedChunk makes Stringify hash its text n bytes at a time (tests of
// the held-back and restarted MAC on small bodies); it returns the undo.
func SetFeedChunk(n int) (undo func()) {
	old := feedChunk
	feedChunk = n
	return func() { feedChunk = old }
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
