package providers

// SetFeedChunk makes Stringify hash its text n bytes at a time (tests of
// the held-back and restarted MAC on small bodies); it returns the undo.
func SetFeedChunk(n int) (undo func()) {
	old := feedChunk
	feedChunk = n
	return func() { feedChunk = old }
}
