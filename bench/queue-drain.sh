#!/usr/bin/env bash
# The drain alone (BENCHMARKS.md §5c): N (default 20000, at most 200000) 1 KiB
# events posted to a paused bbolt queue, then resumed, delivering to
# bench/upstream at CONC (default 4) attempts at once; prints events/s and
# Caddy's CPU per event. PROF=<file> takes a 4 s CPU profile meanwhile;
# ALLOCS=<file> writes the heap profiles at the start (<file>.0) and the
# end of the drain (go tool pprof -sample_index=alloc_space -base
# <file>.0 ./caddy <file>); GCTRACE=1 prints Caddy's last GC lines.
# Caddy on CPU 1, the rest on CPU 0, all on 127.0.0.1.
#
#   ./xcaddy.sh build && CONC=4 bench/queue-drain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
(( N >= 1 && N <= 200000 )) || { echo "queue-drain.sh: N of 1-200000" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/queue-drain.XXXXXX")
PORT=27580 ADMIN=27519 UP=27590 SECRET=queue-load-secret
go build -o $T/queuegen ./bench/queuegen
go build -o $T/upstream ./bench/upstream
taskset -c 0 $T/upstream -addr 127.0.0.1:$UP & UPID=$!
cat >$T/Caddyfile <<CF
{
	admin 127.0.0.1:$ADMIN
	persist_config off
	auto_https off
	log default {
		level ERROR
	}
}
http://127.0.0.1:$PORT {
	handle /pass {
		webhook_verify vivreal {env.QL_SECRET}
		reverse_proxy 127.0.0.1:$UP
	}
	handle /drain {
		webhook_verify vivreal {env.QL_SECRET} {
			queue drain {
				store bbolt $T/drain.db
				deliver {
					reverse_proxy 127.0.0.1:$UP
				}
				max_pending 10000000 64GiB
				concurrency ${CONC:-4}
			}
		}
	}
}
CF
env ${GCTRACE:+GODEBUG=gctrace=1} XDG_DATA_HOME="$T" QL_SECRET=$SECRET ${GMP:+GOMAXPROCS=$GMP} taskset -c 1 ./caddy run --config $T/Caddyfile --adapter caddyfile >$T/caddy.log 2>&1 &
PID=$!
trap 'kill $PID $UPID 2>/dev/null; wait; rm -rf "$T"' EXIT
api() { curl -sf -X "$1" "http://127.0.0.1:$ADMIN/webhook_verify/queues${2:-}"; }
for _ in $(seq 100); do api GET >/dev/null 2>&1 && break; sleep 0.1; done
api POST /drain/pause >/dev/null
taskset -c 0 $T/queuegen post -provider vivreal -size 1024 -n $N -c 32 -secret $SECRET -url http://127.0.0.1:$PORT/drain
api GET; echo
[ -z "${ALLOCS:-}" ] || curl -sf -o $ALLOCS.0 "http://127.0.0.1:$ADMIN/debug/pprof/allocs"
t0=$(date +%s.%N); c0=$(awk '{print $14+$15}' /proc/$PID/stat)
api POST /drain/resume >/dev/null
PP=
if [ -n "${PROF:-}" ]; then curl -sf -o $PROF "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=4" & PP=$!; fi
for _ in $(seq 2400); do api GET | tr -d ' \n' | grep -q '"name":"drain","pending":0,' && break; sleep 0.05; done
t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$PID/stat)
[ -z "${ALLOCS:-}" ] || curl -sf -o $ALLOCS "http://127.0.0.1:$ADMIN/debug/pprof/allocs"
api GET; echo
echo "drain: $N events in $(echo "$t1 - $t0" | bc) s = $(echo "$N / ($t1 - $t0)" | bc) ev/s, cpu µs/ev $(( (c1-c0)*10000/N ))"
[ -z "$PP" ] || wait $PP
[ -z "${GCTRACE:-}" ] || grep '^gc ' $T/caddy.log | tail -10
