// Package dedupe keeps the event ids a webhook gateway has seen, so that a
// sender's retry, or a replayed request, reaches the backend only once.
//
// An event is claimed (atomically, as in flight) before it is forwarded;
// when the backend answers 2xx the claim becomes done for the dedupe ttl,
// otherwise it is released so that the sender's retry goes through. A claim
// is a plain expiry, so one held by a gateway that died frees itself.
package dedupe

import (
	"context"
	"errors"
	"time"
)

// Status is the outcome of a Claim.
type Status int

const (
	// Claimed: the caller holds the event and should forward it.
	Claimed Status = iota
	// Duplicate: the event was already delivered.
	Duplicate
	// InFlight: another request holds the event right now.
	InFlight
)

func (s Status) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Duplicate:
		return "duplicate"
	case InFlight:
		return "in_flight"
	}
	return "unknown"
}

// Claim is the result of Store.Claim.
type Claim struct {
	Status Status
	// Token identifies a Claimed claim, for Done and Release.
	Token string
	// Left is what is left of the entry's expiry (InFlight, Duplicate).
	Left time.Duration
	// Evicted is how many delivered events a store at its size limit
	// dropped to make room for this claim (the memory store at
	// max_entries; always 0 for Redis, which bounds itself). It is set
	// even when Claim also returns an error, so that the caller, which
	// holds the current config's logger, can warn.
	Evicted int
}

// Store holds the claims. Implementations are safe for concurrent use.
type Store interface {
	// Claim atomically claims key as in flight for inflightTTL, unless it
	// is already in flight or done.
	Claim(ctx context.Context, key string, inflightTTL time.Duration) (Claim, error)
	// Done marks key delivered for ttl.
	Done(ctx context.Context, key, token string, ttl time.Duration) error
	// Release drops the claim identified by token, if it still holds key.
	Release(ctx context.Context, key, token string) error
}

// ErrStore wraps every failure to reach or use a store; the gateway answers
// it with 503 so that the sender retries later.
var ErrStore = errors.New("dedupe store unavailable")

// ErrFull is returned by a memory store whose every entry is a claim in
// flight.
var ErrFull = errors.New("dedupe store full")
