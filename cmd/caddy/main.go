// Command caddy is Caddy with its standard modules and webhook_verify: the
// same main that `xcaddy build --with github.com/webhookverify/caddy-webhook-verify`
// generates. xcaddy.sh builds it with plain `go build` when xcaddy is absent.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webhookverify/caddy-webhook-verify"
)

func main() {
	caddycmd.Main()
}
