package providers_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookverify/caddy-webhook-verify/providers"
)

func TestParseUnixSecondsAndMillis(t *testing.T) {
	for _, tc := range []struct {
		in     string
		sec    int64 // ParseUnixSeconds
		milli  int64 // ParseUnixMillis, in ms
		accept bool
	}{
		{"1531420618", 1531420618, 1531420618, true},
		{"0", 0, 0, true},
		{"0001531420618", 1531420618, 1531420618, true},
		{"1700000000123", 1700000000123, 1700000000123, true},
		{"999999999999999999", 999999999999999999, 999999999999999999, true}, // 18 digits
		{"", 0, 0, false},
		{" 1531420618", 0, 0, false},
		{"1531420618 ", 0, 0, false},
		{"+1531420618", 0, 0, false},
		{"-1531420618", 0, 0, false},
		{"1531420618.5", 0, 0, false},
		{"1e9", 0, 0, false},
		{"0x5b4", 0, 0, false},
		{"1531420618\x00", 0, 0, false},
		{"１５３", 0, 0, false},                                    // full-width digits
		{"1000000000000000000", 0, 0, false},                    // 19 digits
		{"99999999999999999999999999999999999999", 0, 0, false}, // overflow
		{"2018-07-12T18:36:58Z", 0, 0, false},
	} {
		got, err := providers.ParseUnixSeconds(tc.in)
		if tc.accept {
			if err != nil || got.Unix() != tc.sec || got.Nanosecond() != 0 {
				t.Errorf("ParseUnixSeconds(%q) = %v, %v; want %d", tc.in, got, err, tc.sec)
			}
		} else if !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("ParseUnixSeconds(%q) = %v, %v; want malformed", tc.in, got, err)
		}
		gotMs, err := providers.ParseUnixMillis(tc.in)
		if tc.accept {
			if err != nil || gotMs.UnixMilli() != tc.milli {
				t.Errorf("ParseUnixMillis(%q) = %v, %v; want %d ms", tc.in, gotMs, err, tc.milli)
			}
		} else if !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("ParseUnixMillis(%q) = %v, %v; want malformed", tc.in, gotMs, err)
		}
	}
	ms, _ := providers.ParseUnixMillis("1700000000123")
	if !ms.Equal(time.Unix(1700000000, 123_000_000)) {
		t.Errorf("ParseUnixMillis keeps the milliseconds: %v", ms)
	}
}

func TestParseRFC3339(t *testing.T) {
	want := time.Date(2018, 7, 12, 18, 36, 58, 0, time.UTC)
	for _, in := range []string{"2018-07-12T18:36:58Z", "2018-07-12T20:36:58+02:00", "2018-07-12T18:36:58.000Z"} {
		got, err := providers.ParseRFC3339(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseRFC3339(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1531420618", "2018-07-12 18:36:58Z", "2018-07-12T18:36:58", "Thu, 12 Jul 2018 18:36:58 GMT"} {
		if got, err := providers.ParseRFC3339(in); !errors.Is(err, providers.ErrMalformedSignature) {
			t.Errorf("ParseRFC3339(%q) = %v, %v; want malformed", in, got, err)
		}
	}
}

func TestCheckTolerance(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tol := 5 * time.Minute
	for _, tc := range []struct {
		name string
		ts   time.Time
		tol  time.Duration
		want string // "" accepted, else a word of the error
	}{
		{"same second", now, tol, ""},
		{"just old enough", now.Add(-tol), tol, ""},
		{"just future enough", now.Add(tol), tol, ""},
		{"one second stale", now.Add(-tol - time.Second), tol, "old"},
		{"one nanosecond stale", now.Add(-tol - 1), tol, "old"},
		{"one second future", now.Add(tol + time.Second), tol, "future"},
		{"a day stale", now.Add(-24 * time.Hour), tol, "old"},
		{"a day future", now.Add(24 * time.Hour), tol, "future"},
		{"epoch", time.Unix(0, 0), tol, "old"},
		{"far future (no overflow)", time.Unix(999999999999999999, 0), tol, "future"},
		{"off: a day stale", now.Add(-24 * time.Hour), 0, ""},
		{"off: a day future", now.Add(24 * time.Hour), 0, ""},
		{"negative is off", now.Add(-24 * time.Hour), -time.Second, ""},
		{"narrow", now.Add(-2 * time.Second), time.Second, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := providers.CheckTolerance(tc.ts, now, tc.tol)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckTolerance = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, providers.ErrMalformedSignature) {
				t.Fatalf("CheckTolerance = %v, want malformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckTolerance = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestToleranceWindowAndJSON(t *testing.T) {
	var zero providers.Tolerance
	if zero.Window() != providers.DefaultTolerance || providers.DefaultTolerance != 5*time.Minute {
		t.Errorf("zero Tolerance window = %v, want 5m", zero.Window())
	}
	now := time.Unix(1_700_000_000, 0)
	if err := zero.Check(now.Add(-6*time.Minute), now); !errors.Is(err, providers.ErrMalformedSignature) {
		t.Errorf("default window accepts a 6 min old timestamp: %v", err)
	}
	if err := zero.Check(now.Add(6*time.Minute), now); !errors.Is(err, providers.ErrMalformedSignature) {
		t.Errorf("default window accepts a timestamp 6 min ahead: %v", err)
	}
	for _, tc := range []struct {
		json   string
		window time.Duration
	}{
		{`{}`, 5 * time.Minute},
		{`{"tolerance":"90s"}`, 90 * time.Second},
		{`{"tolerance":60000000000}`, time.Minute},
		{`{"tolerance":0}`, 0},
		{`{"tolerance":"0s"}`, 0},
	} {
		var tol providers.Tolerance
		if err := json.Unmarshal([]byte(tc.json), &tol); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if tol.Window() != tc.window {
			t.Errorf("%s: window %v, want %v", tc.json, tol.Window(), tc.window)
		}
		if err := tol.Validate(); err != nil {
			t.Errorf("%s: Validate = %v", tc.json, err)
		}
		out, _ := json.Marshal(tol)
		var back providers.Tolerance
		if err := json.Unmarshal(out, &back); err != nil || back.Window() != tc.window {
			t.Errorf("%s: round trip through %s gives %v, %v", tc.json, out, back.Window(), err)
		}
	}
	if out, _ := json.Marshal(providers.Tolerance{}); string(out) != `{}` {
		t.Errorf("unset tolerance marshals as %s, want {}", out)
	}
	neg := caddy.Duration(-time.Second)
	if err := (providers.Tolerance{Max: &neg}).Validate(); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("negative tolerance: Validate = %v", err)
	}
	off := caddy.Duration(0)
	if err := (providers.Tolerance{Max: &off}).Check(time.Unix(0, 0), now); err != nil {
		t.Errorf("tolerance 0 still checks: %v", err)
	}
}

func TestToleranceCaddyfileOption(t *testing.T) {
	for _, tc := range []struct {
		input  string
		window time.Duration
		err    string // "" when accepted
	}{
		{"tolerance 90s", 90 * time.Second, ""},
		{"tolerance 10m", 10 * time.Minute, ""},
		{"tolerance 0", 0, ""},
		{"tolerance 0s", 0, ""},
		{"tolerance 1d", 24 * time.Hour, ""},
		{"tolerance", 0, "needs a duration"},
		{"tolerance soon", 0, "not a duration"},
		{"tolerance -5m", 0, "negative"},
		{"tolerance 5m 10m", 0, "takes one duration"},
		{"tolerance 5m\ntolerance 10m", 0, "already specified"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tc.input)
			var tol providers.Tolerance
			var err error
			for d.Next() {
				var handled bool
				handled, err = tol.UnmarshalCaddyfileOption(d)
				if !handled {
					t.Fatalf("tolerance not handled")
				}
				if err != nil {
					break
				}
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if tol.Window() != tc.window {
					t.Errorf("window %v, want %v", tol.Window(), tc.window)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %v does not name the Caddyfile line", err)
			}
		})
	}
	d := caddyfile.NewTestDispenser("secret x")
	d.Next()
	var tol providers.Tolerance
	if handled, err := tol.UnmarshalCaddyfileOption(d); handled || err != nil {
		t.Errorf("another option: handled=%v err=%v, want false, nil", handled, err)
	}
}
