#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, every test (with the race
# detector, against a real in-process Caddy), every benchmark once, and each
# fuzz target briefly. .ci/run calls this same script.
set -euo pipefail
cd "$(dirname "$0")"

# The integration tests run Caddy on fixed ports (admin 2999, HTTP 9080,
# HTTPS 9443). A caddy or Go test binary left over from an earlier run
# would answer in its place: stop it. Anything else on those ports is not
# ours to kill: say so and stop.
free_ports() {
	local port pid comm
	for port in 2999 9080 9443; do
		for pid in $(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true); do
			# argv[0], not comm (cut at 15 characters)
			comm=$(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" 2>/dev/null || true)
			case "$comm" in
			caddy | *.test)
				echo "test.sh: stopping leftover $comm (pid $pid) holding port $port" >&2
				kill "$pid" 2>/dev/null || true
				;;
			*)
				echo "test.sh: port $port is held by $comm (pid $pid); the integration tests need it: stop it and rerun" >&2
				exit 1
				;;
			esac
		done
	done
	sleep 0.5
}
free_ports

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt'd: $unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== xcaddy.sh build (the README's gateway builds)"
./xcaddy.sh build

echo "== go test -race"
go test -race -count=1 -timeout 10m ./...

echo "== benchmarks, once each (so they never rot; figures: BENCHMARKS.md)"
go test -run '^$' -bench . -benchtime=1x -count=1 ./...

echo "== fuzz, 10 s per target"
# Every Fuzz* target of every package, found with go test -list so that a
# new target is fuzzed without editing this list; go test -fuzz takes one
# target of one package at a time. The seed corpora (testdata/fuzz/) have
# already run as plain tests above; a crasher found here is written to the
# package's testdata/fuzz/<Target>/ and fails the run.
fuzz_targets=$(go test -list '^Fuzz' ./... |
	awk '/^Fuzz/ { names = names " " $1 } /^ok/ { if (names != "") print $2 names; names = "" }')
if [ -z "$fuzz_targets" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
# Go 1.26's fuzz coordinator can fail a run that found nothing with
# "context deadline exceeded" as -fuzztime expires (go.dev/issue/75804,
# fixed in Go 1.27). A real failure always writes its input under
# testdata/fuzz/<Target>/, so a failed run that wrote nothing and printed
# that message is reported and not counted.
while read -r pkg targets; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $targets; do
		echo "-- $target ($pkg)"
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort)
		log=$(mktemp)
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}" "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			rm -f "$log"
			continue
		fi
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [ "$before" = "$after" ] && grep -q 'context deadline exceeded' "$log"; then
			echo "-- $target: Go's fuzz coordinator stopped with 'context deadline exceeded' and wrote no failing input (go.dev/issue/75804): not a finding"
			rm -f "$log"
			continue
		fi
		rm -f "$log"
		echo "-- $target: FAILED; the failing input is in $corpus" >&2
		exit 1
	done
done <<<"$fuzz_targets"
