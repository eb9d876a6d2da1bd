package providers

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// DefaultTolerance is how far a signed timestamp may be from the handler's
// clock, in either direction, unless the handler's tolerance option says
// otherwise: five minutes, the window Standard Webhooks, Stripe and Slack
// use in their own libraries.
const DefaultTolerance = 5 * time.Minute

// maxTimestampDigits bounds the unix timestamps accepted: 18 decimal digits
// fit in an int64 with room to spare, and no sender sends more than 13.
const maxTimestampDigits = 18

// ParseUnixSeconds parses a unix time in whole seconds: ASCII digits only,
// no sign, no fraction, no surrounding space. Errors wrap
// ErrMalformedSignature.
func ParseUnixSeconds(s string) (time.Time, error) {
	n, err := parseUnsigned(s)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0), nil
}

// ParseUnixMillis parses a unix time in whole milliseconds, with the rules
// of ParseUnixSeconds.
func ParseUnixMillis(s string) (time.Time, error) {
	n, err := parseUnsigned(s)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(n), nil
}

// ParseRFC3339 parses an RFC 3339 time such as 2024-05-01T12:00:00Z
// (fractional seconds allowed). Errors wrap ErrMalformedSignature.
func ParseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp is not an RFC 3339 time", ErrMalformedSignature)
	}
	return t, nil
}

func parseUnsigned(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty timestamp", ErrMalformedSignature)
	}
	if len(s) > maxTimestampDigits {
		return 0, fmt.Errorf("%w: timestamp has %d digits", ErrMalformedSignature, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: timestamp is not a unix time", ErrMalformedSignature)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // unreachable with at most 18 digits; kept for safety
		return 0, fmt.Errorf("%w: timestamp is not a unix time", ErrMalformedSignature)
	}
	return n, nil
}

// CheckTolerance returns nil when ts is within tol of now in either
// direction (exactly tol away is still accepted, as the senders' own
// libraries do), and an error wrapping ErrMalformedSignature when it is
// older (a replay, or a delivery held too long) or newer (a clock far
// ahead, or a signature made for later). A tol of zero or less turns the
// check off.
func CheckTolerance(ts, now time.Time, tol time.Duration) error {
	if tol <= 0 {
		return nil
	}
	d := now.Sub(ts)
	switch {
	case d > tol:
		return fmt.Errorf("%w: timestamp is %s old, over the %s tolerance", ErrMalformedSignature, d.Round(time.Second), tol)
	case d < -tol:
		return fmt.Errorf("%w: timestamp is %s in the future, over the %s tolerance", ErrMalformedSignature, (-d).Round(time.Second), tol)
	}
	return nil
}

// Tolerance is embedded by senders that sign a timestamp. It gives them the
// JSON field "tolerance" and the webhook_verify block option
//
//	tolerance <duration>    # default 5m; 0 turns the check off
//
// so every such sender offers the same per-handler setting. The zero value
// means DefaultTolerance.
type Tolerance struct {
	// How far the signed timestamp may be from the gateway's clock, in
	// either direction; a request outside it is refused with 401 as a
	// malformed signature. 0 turns the check off (to replay a captured
	// delivery, say; the signature is still checked), which also lets a
	// captured request be replayed by anyone. Default: 5m.
	Max *caddy.Duration `json:"tolerance,omitempty"`
}

// Window is the tolerance in effect: DefaultTolerance when none is
// configured, 0 when the check is off.
func (t Tolerance) Window() time.Duration {
	if t.Max == nil {
		return DefaultTolerance
	}
	return time.Duration(*t.Max)
}

// Check is CheckTolerance with the configured window.
func (t Tolerance) Check(ts, now time.Time) error {
	return CheckTolerance(ts, now, t.Window())
}

// Validate refuses a negative tolerance (Caddy calls it after provisioning
// the sender that embeds Tolerance).
func (t Tolerance) Validate() error {
	if t.Max != nil && *t.Max < 0 {
		return errors.New("tolerance must not be negative: use a duration such as 5m, or 0 to turn the check off")
	}
	return nil
}

// CaddyfileOptionNames names the option, for the error on an unknown
// line of the block.
func (*Tolerance) CaddyfileOptionNames() []string { return []string{"tolerance"} }

// UnmarshalCaddyfileOption handles "tolerance <duration>" in the
// webhook_verify block.
func (t *Tolerance) UnmarshalCaddyfileOption(d *caddyfile.Dispenser) (bool, error) {
	if d.Val() != "tolerance" {
		return false, nil
	}
	if t.Max != nil {
		return true, d.Err("tolerance already specified")
	}
	if !d.NextArg() {
		return true, d.Err("tolerance needs a duration, e.g. tolerance 5m (0 turns the timestamp check off)")
	}
	v, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return true, d.Errf("tolerance: '%s' is not a duration: use e.g. 5m, or 0 to turn the timestamp check off", d.Val())
	}
	if v < 0 {
		return true, d.Errf("tolerance: '%s' is negative: use e.g. 5m, or 0 to turn the timestamp check off", d.Val())
	}
	if d.NextArg() {
		return true, d.Errf("tolerance takes one duration, not '%s' too", d.Val())
	}
	dur := caddy.Duration(v)
	t.Max = &dur
	return true, nil
}

// Interface guards
var (
	_ CaddyfileOption = (*Tolerance)(nil)
	_ caddy.Validator = Tolerance{}
)
