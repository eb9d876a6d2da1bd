#!/usr/bin/env bash
# A time series of queue ingest (BENCHMARKS.md §5c): one Caddy on CPU 1 with a
# paused bbolt queue (backend down), wrk -t1 -c32 of 1 KiB signed Vivreal
# events on CPU 0 for SECS seconds, and every second: events stored, KiB
# Caddy wrote and its CPU per event, and the file's size. Shows whether the
# group commits stay large as the file grows. All traffic on 127.0.0.1.
#
#   ./xcaddy.sh build && bench/queue-series.sh [secs]   (default 30, at most 60;
#                                                        GMP=<n> sets Caddy's GOMAXPROCS)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
(( SECS >= 5 && SECS <= 60 )) || { echo "queue-series.sh: 5-60 s" >&2; exit 1; }
for tool in wrk taskset curl; do
	command -v "$tool" >/dev/null || { echo "queue-series.sh: needs $tool" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/queue-series.XXXXXX")
PORT=27580 ADMIN=27519 DOWN=27599 SECRET=queue-load-secret
go build -o "$T/queuegen" ./bench/queuegen
cat >"$T/Caddyfile" <<CF
{
	admin 127.0.0.1:$ADMIN
	persist_config off
	auto_https off
	log default {
		level ERROR
	}
}
http://127.0.0.1:$PORT {
	handle /paused {
		webhook_verify vivreal {env.QL_SECRET} {
			queue paused {
				store bbolt $T/paused.db
				deliver {
					reverse_proxy 127.0.0.1:$DOWN
				}
				max_pending 10000000 64GiB
				retry 1h
			}
		}
	}
}
CF
env XDG_DATA_HOME="$T" QL_SECRET=$SECRET ${GMP:+GOMAXPROCS=$GMP} taskset -c 1 ./caddy run --config "$T/Caddyfile" --adapter caddyfile >"$T/caddy.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait; rm -rf "$T"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/webhook_verify/queues" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$ADMIN/webhook_verify/queues/paused/pause" >/dev/null
taskset -c 0 "$T/queuegen" ids -provider vivreal -size 1024 -n $((SECS * 20000)) -secret $SECRET -out "$T/ids"
QL_IDS=$T/ids QL_HDR=X-Vivreal-Signature QL_ALGO=sha256= taskset -c 0 \
	wrk -t1 -c32 -d"${SECS}s" --timeout 30s --latency -s bench/queue-load.lua "http://127.0.0.1:$PORT/paused" >"$T/wrk.txt" &
W=$!
prev=0 pw=0 pt=0
for i in $(seq "$SECS"); do
	sleep 1
	n=$(curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk '/^caddy_webhook_verify_queue_enqueue_seconds_count/ {print $2}')
	w=$(awk '/^write_bytes/ {print $2}' "/proc/$PID/io")
	t=$(awk '{print $14 + $15}' "/proc/$PID/stat")
	sz=$(stat -c %s "$T/paused.db")
	d=$((n - prev))
	echo "t=$i events/s=$d KiB-written/event=$((d > 0 ? (w - pw) / 1024 / d : 0)) cpu%=$((t - pt)) cpu-µs/event=$((d > 0 ? (t - pt) * 10000 / d : 0)) file=$((sz >> 20))MiB"
	prev=$n pw=$w pt=$t
done
wait $W
grep -E "Requests/sec|50%|99%" "$T/wrk.txt"
