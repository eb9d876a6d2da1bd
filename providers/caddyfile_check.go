package providers

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// CaddyfileChecker is implemented by senders whose block options depend on
// one another (the hmac provider's signed template needs a timestamp line,
// say), so that a mistake fails when the Caddyfile is adapted, with its
// line, rather than when the config is loaded. The handler calls
// CheckCaddyfile once, after the whole webhook_verify block was read; the
// dispenser is still on the block's last token, and Reset then Next puts
// it on the directive itself.
type CaddyfileChecker interface {
	CheckCaddyfile(d *caddyfile.Dispenser) error
}

// CaddyfileOptionNamer is implemented by senders with block options of
// their own, so that the error for an unknown subdirective names them too.
type CaddyfileOptionNamer interface {
	CaddyfileOptionNames() []string
}
