#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, every test (with the race
# detector, against a real in-process Caddy), every benchmark once, and each
# fuzz target briefly. .ci/run calls this same script.
set -euo pipefail
cd "$(dirname "$0")"

# The integration tests run Caddy on fixed ports (admin 2999, HTTP 9080,
# HTTPS 9443). Whatever holds one of them (a caddy or Go test binary left
# over from an earlier run, another developer's test run, anything else)
# would answer in the tests' place: name it and stop. This script never
# kills anything.
check_ports() {
	local port lines pid holder busy=0
	for port in 2999 9080 9443; do
		holder=""
		if command -v ss >/dev/null 2>&1; then
			lines=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
			[ -n "$lines" ] || continue
			for pid in $(grep -o 'pid=[0-9]*' <<<"$lines" | cut -d= -f2 | sort -u || true); do
				# argv[0], not comm (cut at 15 characters)
				holder+="${holder:+, }$(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" 2>/dev/null || true) (pid $pid)"
			done
			# ss shows no pid for another user's process
			holder=${holder:-"a process of another user"}
		elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			holder="an unknown process (install ss, from iproute2, to name it)"
		else
			continue
		fi
		echo "test.sh: port $port is held by $holder; the integration tests need it: stop it and rerun" >&2
		busy=1
	done
	if [ "$busy" -ne 0 ]; then
		exit 1
	fi
}
check_ports

echo "== gofmt"
# tracked and new (not ignored) files
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt'd: $unformatted" >&2
	exit 1
fi

echo "== go mod tidy -diff"
# go.mod and go.sum are what go mod tidy makes of the imports; the diff
# says what to change (run go mod tidy).
go mod tidy -diff

echo "== go vet"
go vet ./...

echo "== xcaddy.sh build (the README's gateway builds)"
./xcaddy.sh build

# Without redis-server the Redis tests skip (with CI set they fail); go
# test ./... shows no skip of a passing package, so say it here, and again
# at the end.
no_redis() {
	if ! command -v redis-server >/dev/null 2>&1; then
		echo "test.sh: WARNING: redis-server is not installed: the Redis tests were NOT run (apt-get install redis-server)" >&2
	fi
}

echo "== stringify vectors: Node regenerates testdata/stringify/vectors.jsonl"
# Vev's stringify_fallback is checked against Node: the committed vectors
# must be exactly what Node makes of them today (gen.js), and the
# differential fuzzer below needs node too.
if command -v node >/dev/null 2>&1; then
	if ! node testdata/stringify/gen.js | diff -u testdata/stringify/vectors.jsonl -; then
		echo "test.sh: testdata/stringify/vectors.jsonl differs from what Node makes (node testdata/stringify/gen.js > testdata/stringify/vectors.jsonl)" >&2
		exit 1
	fi
elif [ "${CI:-}" = true ]; then
	echo "test.sh: node is required under CI=true (apt-get install nodejs)" >&2
	exit 1
else
	echo "test.sh: WARNING: node is not installed: the stringify vectors were not regenerated and the tests against Node skip" >&2
fi

echo "== go test -race"
no_redis
go test -race -count=1 -timeout 10m ./...

echo "== benchmarks, once each (so they never rot; figures: BENCHMARKS.md)"
go test -run '^$' -bench . -benchtime=1x -count=1 ./...

echo "== stringify: differential test against Node, 20 s"
# Generated, mutated and random JSON through Stringify and a long-running
# node; any difference fails (and is written to
# testdata/stringify/fuzz-found.jsonl). Skips without node, fails under CI.
log=$(mktemp)
if ! go test -run '^TestStringifyDifferential$' -count=1 -v ./providers -stringify.time="${STRINGIFY_TIME:-20s}" >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	exit 1
fi
grep -E 'seed|inputs|SKIP' "$log" || true
rm -f "$log"

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
		before=$(ls "$corpus" 2>/dev/null | sort || true) # no corpus yet: ls fails
		log=$(mktemp)
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}" "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			rm -f "$log"
			continue
		fi
		after=$(ls "$corpus" 2>/dev/null | sort || true)
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

no_redis
