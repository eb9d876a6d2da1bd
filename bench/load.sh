#!/usr/bin/env bash
# Load test on 127.0.0.1: Caddy reverse_proxy alone (rp), reverse_proxy with
# request_buffers holding the whole body (buf: the ceiling for any gateway
# that reads the body before forwarding), and webhook_verify + reverse_proxy
# (wv). Same caddy build, same upstream; the three targets alternate round by
# round so that machine noise cancels in the ratios.
#
#   bench/load.sh [rounds] [seconds-per-run]     (defaults: 5 rounds, 5 s)
#
# Reports requests/s, p50/p99 latency, the gateway's CPU time per request
# (utime+stime from /proc/PID/stat over the run, divided by requests) and
# peak RSS (VmHWM), then the ratios wv/rp and wv/buf. Needs wrk, openssl,
# taskset and python3. Servers run on CPU 1, wrk on CPU 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-5}
OUT=bench/results
mkdir -p "$OUT"
for tool in wrk openssl taskset python3; do
	command -v "$tool" >/dev/null || { echo "load.sh: needs $tool (apt-get install wrk util-linux python3 openssl)" >&2; exit 1; }
done

./xcaddy.sh build
go build -o "$OUT/upstream" ./bench/upstream
SECRET=load-secret
CLK=$(getconf CLK_TCK)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 1 "$OUT/upstream" -addr 127.0.0.1:18090 &
pids+=($!)

# make_body <sender> <bytes> <file>: a signed JSON event of that size
make_body() {
	python3 - "$1" "$2" "$3" <<'PY'
import json, sys
sender, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if sender == "vev":
    ev = {"id": "evt_load", "hosting": "h1", "event": "PUBLISH", "payload": {"html": ""}}
else:
    ev = {"id": "evt_load", "event": "collection.object.created", "timestamp": "2026-11-22T10:00:00Z", "data": {"text": ""}}
base = len(json.dumps(ev, separators=(",", ":")))
filler = ('<div class="c">Caf\u00e9 &amp; 日本</div>' * (n // 20 + 1))
inner = ev["payload"] if sender == "vev" else ev["data"]
key = "html" if sender == "vev" else "text"
lo, hi = 0, len(filler)
while lo < hi:  # longest filler prefix that keeps the body within n bytes
    mid = (lo + hi + 1) // 2
    inner[key] = filler[:mid]
    if len(json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode()) <= n:
        lo = mid
    else:
        hi = mid - 1
inner[key] = filler[:lo]
s = json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode()
s += b" " * (n - len(s))
open(path, "wb").write(s)
PY
}

# start_caddy <name> <port> <site body>: one caddy process per target
start_caddy() {
	local name=$1 port=$2 body=$3
	cat >"$OUT/$name.Caddyfile" <<CF
{
	admin off
	auto_https off
	log default {
		level ERROR
	}
}
http://127.0.0.1:$port {
$body
}
CF
	WV_SECRET=$SECRET taskset -c 1 ./caddy run --config "$OUT/$name.Caddyfile" --adapter caddyfile >"$OUT/$name.log" 2>&1 &
	pids+=($!)
	eval "PID_$name=$!"
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
		sleep 0.1
	done
	echo "load.sh: caddy $name did not start; see $OUT/$name.log" >&2
	exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# scenario <label> <sender> <bytes> <connections>
scenario() {
	local label=$1 sender=$2 bytes=$3 conns=$4
	local file="$OUT/$label.body" header algo
	make_body "$sender" "$bytes" "$file"
	if [ "$sender" = vev ]; then header=X-Vev-Signature algo=sha512; else header=X-Vivreal-Signature algo=sha256; fi
	local sig
	sig="$algo=$(openssl dgst -"$algo" -hmac "$SECRET" -r "$file" | cut -d' ' -f1)"
	cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$file", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["$header"] = "$sig"
LUA
	local limit=$((bytes + 1024))
	start_caddy rp 18081 "	reverse_proxy 127.0.0.1:18090"
	start_caddy buf 18082 "	reverse_proxy 127.0.0.1:18090 {
		request_buffers $limit
	}"
	start_caddy wv 18083 "	webhook_verify $sender {env.WV_SECRET} {
		max_body_size $limit
	}
	reverse_proxy 127.0.0.1:18090"
	# warm-up, and a check that every target answers 200
	for t in rp:18081 buf:18082 wv:18083; do
		local code
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$header: $sig" --data-binary @"$file" "http://127.0.0.1:${t#*:}/")
		[ "$code" = 200 ] || { echo "load.sh: ${t%%:*} answered $code" >&2; exit 1; }
		taskset -c 0 wrk -t1 -c"$conns" -d1s -s "$OUT/post.lua" "http://127.0.0.1:${t#*:}/" >/dev/null
	done
	for round in $(seq "$ROUNDS"); do
		for t in rp:18081 buf:18082 wv:18083; do
			local name=${t%%:*} port=${t#*:} pidvar="PID_${t%%:*}"
			local pid=${!pidvar} before after
			before=$(cpu_ticks "$pid")
			taskset -c 0 timeout $((SECS + 30)) wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$OUT/post.lua" "http://127.0.0.1:$port/" >"$OUT/wrk.txt"
			after=$(cpu_ticks "$pid")
			python3 - "$label" "$name" "$round" "$((after - before))" "$CLK" "$OUT/wrk.txt" >>"$OUT/runs.tsv" <<'PY'
import re, sys
label, name, rnd, ticks, clk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
txt = open(sys.argv[6]).read()
def dur(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
reqs = int(re.search(r"(\d+) requests in", txt).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", txt).group(1))
p50 = dur(re.search(r"^\s+50%\s+(\S+)", txt, re.M).group(1))
p99 = dur(re.search(r"^\s+99%\s+(\S+)", txt, re.M).group(1))
mean = dur(re.search(r"^\s+Latency\s+(\S+)", txt, re.M).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
if errs:
    sys.exit(f"{name}: {errs.group(1)} non-2xx responses")
cpu_us = ticks / clk * 1e6 / max(reqs, 1)
print(f"{label}\t{name}\t{rnd}\t{rps:.0f}\t{mean:.0f}\t{p50:.0f}\t{p99:.0f}\t{cpu_us:.1f}")
PY
		done
	done
	for name in rp buf wv; do
		local pidvar="PID_$name"
		echo -e "$label\t$name\t$(peak_rss_kib "${!pidvar}")" >>"$OUT/rss.tsv"
		kill "${!pidvar}"
	done
	wait "$PID_rp" "$PID_buf" "$PID_wv" 2>/dev/null || true
}

: >"$OUT/runs.tsv"
: >"$OUT/rss.tsv"
scenario vivreal-1KiB-c32 vivreal 1024 32
scenario vev-1MiB-c4 vev 1048576 4
scenario vivreal-1KiB-c1 vivreal 1024 1
scenario vev-1MiB-c1 vev 1048576 1

python3 - "$OUT/runs.tsv" "$OUT/rss.tsv" <<'PY'
import statistics as st, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, name, rnd, rps, mean, p50, p99, cpu = line.split("\t")
    runs[(label, name)].append(tuple(map(float, (rps, mean, p50, p99, cpu))))
rss = {}
for line in open(sys.argv[2]):
    label, name, kib = line.split("\t")
    rss[(label, name)] = int(kib) / 1024
labels = list(dict.fromkeys(k[0] for k in runs))
print(f"{'scenario':18} {'target':4} {'req/s':>8} {'mean µs':>8} {'p50 µs':>8} {'p99 µs':>8} {'cpu µs/req':>10} {'peak MiB':>8}   (medians of {len(runs[(labels[0], 'rp')])} rounds)")
med = {}
for label in labels:
    for name in ("rp", "buf", "wv"):
        m = [st.median(col) for col in zip(*runs[(label, name)])]
        med[(label, name)] = m
        print(f"{label:18} {name:4} {m[0]:8.0f} {m[1]:8.0f} {m[2]:8.0f} {m[3]:8.0f} {m[4]:10.1f} {rss[(label, name)]:8.1f}")
print()
for label in labels:
    rp, buf, wv = med[(label, "rp")], med[(label, "buf")], med[(label, "wv")]
    print(f"{label:18} wv/rp req/s {wv[0]/rp[0]:.3f}  wv/rp p99 {wv[3]/rp[3]:.3f}  "
          f"wv-buf cpu {wv[4]-buf[4]:+.1f} µs/req  wv-buf mean {wv[1]-buf[1]:+.0f} µs  "
          f"wv-rp peak RSS {rss[(label, 'wv')] - rss[(label, 'rp')]:+.1f} MiB")
PY
