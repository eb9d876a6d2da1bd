#!/usr/bin/env bash
# Builds ./caddy with this module and Caddy's standard modules, and runs the
# example gateway.
#
#   ./xcaddy.sh build   build ./caddy (xcaddy when it is on PATH, else go build)
#   ./xcaddy.sh run     build, then run example.Caddyfile (demo secrets unless set)
#
# Without xcaddy, it builds cmd/caddy: the same main xcaddy would generate,
# against the Caddy version pinned in go.mod.
set -euo pipefail
cd "$(dirname "$0")"

module=github.com/webhookverify/caddy-webhook-verify

build() {
	if command -v xcaddy >/dev/null 2>&1; then
		version=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
		echo "xcaddy.sh: building with xcaddy (Caddy $version)" >&2
		xcaddy build "$version" --with "$module=./" --output ./caddy
	else
		echo "xcaddy.sh: xcaddy not found; building cmd/caddy with go build" >&2
		go build -o ./caddy ./cmd/caddy
	fi
	# smoke test: the module is in the binary
	local modules
	modules=$(./caddy list-modules)
	if ! grep -qx 'http.handlers.webhook_verify' <<<"$modules"; then
		echo "xcaddy.sh: ./caddy lacks http.handlers.webhook_verify" >&2
		exit 1
	fi
	echo "xcaddy.sh: built ./caddy with $(grep -c webhook_verify <<<"$modules") webhook_verify modules" >&2
}

case "${1:-build}" in
build)
	build
	;;
run)
	build
	if [ -z "${VIVREAL_SECRET:-}" ] || [ -z "${VEV_SECRET:-}" ] || [ -z "${VEV_TOKEN:-}" ]; then
		echo "xcaddy.sh: using demo secrets for the variables that are not set (never in production)" >&2
	fi
	export VIVREAL_SECRET="${VIVREAL_SECRET:-demo-vivreal-secret}"
	export VEV_SECRET="${VEV_SECRET:-demo-vev-secret}"
	export VEV_TOKEN="${VEV_TOKEN:-demo-vev-token}"
	shift
	exec ./caddy run --config example.Caddyfile --adapter caddyfile "$@"
	;;
*)
	echo "usage: $0 [build|run]" >&2
	exit 2
	;;
esac
