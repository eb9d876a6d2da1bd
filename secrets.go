package webhookverify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Secret is one configured secret (or, for a sender that signs with a key
// pair, public key). In JSON it is a string, or an object when it expires:
//
//	"secrets": ["{env.NEW}", {"secret": "{env.OLD}", "not_after": "2026-12-31T00:00:00Z"}]
//
// From NotAfter on, the secret no longer verifies (without a reload); a
// warning is logged once a day in the seven days before, and once at that
// instant. A configuration whose every secret has expired fails at start.
type Secret struct {
	// The secret, or a placeholder such as {env.VIVREAL_SECRET} resolved
	// once, at provision time.
	Value string `json:"secret"`

	// The instant the secret stops verifying (RFC 3339). Zero: never.
	NotAfter time.Time `json:"not_after,omitzero"`
}

// UnmarshalJSON reads a secret as a string or as an object.
func (s *Secret) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*s = Secret{}
		return json.Unmarshal(b, &s.Value)
	}
	type plain Secret
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf(`a secret is a string, or {"secret": "...", "not_after": "<RFC 3339 time>"}: %v`, err)
	}
	*s = Secret(p)
	return nil
}

// MarshalJSON writes a secret without expiry as a string.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s.NotAfter.IsZero() {
		return json.Marshal(s.Value)
	}
	type plain Secret
	return json.Marshal(plain(s))
}

// expiryWarnDays is how long before its not_after a secret is warned about.
const expiryWarnDays = 7

// expiryWarnings remembers, per process, when each expiring secret was last
// warned about, so that a reload does not repeat the day's warning.
var expiryWarnings struct {
	sync.Mutex
	last map[expiryKey]time.Time // the last warning; a key per configured expiring secret
}

// warned records a warning of k at now, unless one was logged less than
// every ago (every 0: ever); it reports whether to log it.
func warned(k expiryKey, now time.Time, every time.Duration) (last time.Time, log bool) {
	expiryWarnings.Lock()
	defer expiryWarnings.Unlock()
	if expiryWarnings.last == nil {
		expiryWarnings.last = make(map[expiryKey]time.Time)
	}
	last, seen := expiryWarnings.last[k]
	if seen && (every == 0 || now.Before(last.Add(every))) {
		return last, false
	}
	expiryWarnings.last[k] = now
	return now, true
}

type expiryKey struct {
	provider string
	secret   [8]byte // a fingerprint of the secret, never logged
	index    int
	notAfter int64
	expired  bool // the warning at expiry (once), or the daily ones
}

// expiryWarner logs the warnings of the secrets that expire: once a day in
// the seven days before, once at the instant. It runs from provision to
// cleanup, waking when the next warning is due.
type expiryWarner struct {
	provider string
	notAfter []time.Time // per secret; zero: never
	prints   [][8]byte   // per secret: a fingerprint (keyring.fingerprint)
	logger   *zap.Logger
	stop     chan struct{}
	done     chan struct{}
	started  bool
	once     sync.Once
}

// warn logs the warnings due at now, and returns when the next one is due
// (zero: none).
func (w *expiryWarner) warn(now time.Time) time.Time {
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i, na := range w.notAfter {
		if na.IsZero() {
			continue
		}
		if !now.Before(na) {
			k := expiryKey{w.provider, w.prints[i], i, na.UnixNano(), true}
			if _, log := warned(k, now, 0); log {
				w.logger.Warn("webhook secret expired: it no longer verifies; remove it from the configuration",
					zap.String("provider", w.provider),
					zap.Int("secret", i+1),
					zap.Time("not_after", na))
			}
			continue
		}
		from := na.Add(-expiryWarnDays * 24 * time.Hour)
		if now.Before(from) {
			soonest(from)
			soonest(na)
			continue
		}
		k := expiryKey{w.provider, w.prints[i], i, na.UnixNano(), false}
		last, log := warned(k, now, 24*time.Hour)
		if log {
			w.logger.Warn("webhook secret expires soon: switch the sender to another secret, then remove this one",
				zap.String("provider", w.provider),
				zap.Int("secret", i+1),
				zap.Time("not_after", na),
				zap.String("expires_in", roundDuration(na.Sub(now))))
		}
		soonest(last.Add(24 * time.Hour))
		soonest(na)
	}
	return next
}

// run calls warn at start and whenever the next warning is due, until
// stopped.
func (w *expiryWarner) run(now func() time.Time) {
	defer close(w.done)
	for {
		next := w.warn(now())
		if next.IsZero() {
			return
		}
		t := time.NewTimer(max(next.Sub(now()), 0))
		select {
		case <-w.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// start runs the warnings in a goroutine of their own, until close.
func (w *expiryWarner) start(now func() time.Time) {
	w.started = true
	go w.run(now)
}

// close stops the warnings, if they were started; it is idempotent.
func (w *expiryWarner) close() {
	w.once.Do(func() {
		close(w.stop)
		if w.started {
			<-w.done
		}
	})
}

// roundDuration writes d in whole hours (or minutes, under an hour).
func roundDuration(d time.Duration) string {
	if d >= time.Hour {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.Round(time.Minute).String()
}

// allExpired reports whether every secret has a not_after at or before
// now, and the latest of them.
func allExpired(secrets []Secret, now time.Time) (time.Time, bool) {
	var last time.Time
	for _, s := range secrets {
		if s.NotAfter.IsZero() || now.Before(s.NotAfter) {
			return time.Time{}, false
		}
		if s.NotAfter.After(last) {
			last = s.NotAfter
		}
	}
	return last, len(secrets) > 0
}
