package webhookverify

import "time"

// setBodyTimerHook replaces time.AfterFunc for body_timeout until the
// returned function is called.
func setBodyTimerHook(f func(d time.Duration, fire func()) stopper) (restore func()) {
	bodyTimerHook.Store(&f)
	return func() { bodyTimerHook.Store(nil) }
}

// Stopper is stopper, for the integration tests' timers.
type Stopper = stopper

// SetBodyTimerHook is setBodyTimerHook for the integration tests, which
// drive a real Caddy.
var SetBodyTimerHook = setBodyTimerHook

// plainSecrets are secrets without expiry.
func plainSecrets(vals ...string) []Secret {
	out := make([]Secret, len(vals))
	for i, v := range vals {
		out[i] = Secret{Value: v}
	}
	return out
}
