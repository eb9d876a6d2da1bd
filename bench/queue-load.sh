#!/usr/bin/env bash
# Store and forward over HTTP, on 127.0.0.1: queue-mode ingest against
# pass-through, the rate at which a backlog drains, and 5 MiB Vev PUBLISH
# ingest against the disk's sequential write + fsync rate, all in one run
# of one Caddy (see BENCHMARKS.md, section 5).
#
#   bench/queue-load.sh [rounds] [seconds] [seconds-5MiB]   (defaults: 3, 15, 10)
#
# Environment: DRAIN_N (events per drain round, default 20000), POOL
# (1 KiB ids per wrk run, default 400000), BIGPOOL (5 MiB ids per queued
# run, default 800), PROFILE=<dir> (after the measured runs, take 10 s CPU
# profiles from Caddy's admin endpoint during one more run of each kind),
# SKIP_BUILD=1 (use the ./caddy there is), CADDY_GOMAXPROCS=<n> (a diagnostic:
# Caddy still on CPU 1 alone, but with n Ps, so that a blocking fdatasync
# does not hold the only one), KEEP=1 (keep the temporary directory).
#
# One Caddy (CPU 1, so GOMAXPROCS 1) serves six routes:
#   /pass     webhook_verify vivreal + reverse_proxy to the upstream (up)
#   /queued   webhook_verify vivreal { queue { deliver { reverse_proxy <closed port> }; retry 1h } }:
#             the backend is down; each event gets one failed attempt, then waits an hour
#   /paused   the same, its queue paused: ingest alone, no attempts
#   /drain    a queue delivering to the upstream at concurrency 4, paused while a backlog is posted
#   /vpass, /vqueued   the same as /pass and /queued for Vev, max_body_size 8MiB
# wrk (-t1) and the upstream (bench/upstream: drains the body, answers 200)
# run on CPU 0. Every request carries its own id and signature
# (bench/queuegen, bench/queue-load.lua): the queue deduplicates by id, so a
# repeated id would measure the duplicate path. Targets alternate round by
# round; every queue file is in a fresh temporary directory. Needs wrk,
# taskset, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-15}
BIGSECS=${3:-10}
DRAIN_N=${DRAIN_N:-20000}
POOL=${POOL:-400000}
BIGPOOL=${BIGPOOL:-800}
PROFILE=${PROFILE:-}
PORT=27480 ADMIN=27419 UP=27490 DOWN=27499
SECRET=queue-load-secret
for tool in wrk taskset curl python3; do
	command -v "$tool" >/dev/null || { echo "queue-load.sh: needs $tool" >&2; exit 1; }
done
for p in $PORT $ADMIN $UP $DOWN; do
	if ss -Hltn "sport = :$p" | grep -q .; then
		echo "queue-load.sh: port $p is in use" >&2
		exit 1
	fi
done
(( SECS >= 10 && SECS <= 20 && BIGSECS >= 10 && BIGSECS <= 20 )) || { echo "queue-load.sh: runs of 10-20 s" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/queue-load.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then echo "queue-load.sh: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

[ -n "${SKIP_BUILD:-}" ] || ./xcaddy.sh build
go build -o "$T/queuegen" ./bench/queuegen
go build -o "$T/upstream" ./bench/upstream
CLK=$(getconf CLK_TCK)
NPROC=$(nproc)
taskset -cp 0 $$ >/dev/null # this shell and its helpers (curl, python3, dd, queuegen) on CPU 0 with wrk

echo "# queue-load.sh $ROUNDS rounds, $SECS s (1 KiB), $BIGSECS s (5 MiB), drain $DRAIN_N events"
echo "# date $(date -u +%FT%TZ)  nproc $NPROC  kernel $(uname -r)  $(go version | cut -d' ' -f3)  caddy $(./caddy version | cut -d' ' -f1)"
echo "# cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  mem $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "# tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo " + uncommitted changes in: $(git diff --name-only | grep -v _test.go | xargs)")"
echo "# temp dir $T on $(findmnt -no FSTYPE -T "$T" 2>/dev/null || stat -f -c %T "$T"), $(df -h --output=source,avail "$T" | tail -1 | xargs)"
echo "# caddy GOMAXPROCS ${CADDY_GOMAXPROCS:-1 (from its CPU affinity)}"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# busiest processes at start: $(ps -eo pcpu=,comm= --sort=-pcpu | head -6 | awk '{printf "%s %s%%; ", $2, $1}')"

taskset -c 0 "$T/upstream" -addr 127.0.0.1:$UP &
pids+=($!)
PID_UP=$!

queue_block() { # queue_block <name> <backend> [extra lines]
	cat <<Q
			queue $1 {
				store bbolt $T/$1.db
				deliver {
					reverse_proxy $2
				}
				max_pending 10000000 64GiB
				$3
			}
Q
}
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
	handle /pass {
		webhook_verify vivreal {env.QL_SECRET}
		reverse_proxy 127.0.0.1:$UP
	}
	handle /queued {
		webhook_verify vivreal {env.QL_SECRET} {
$(queue_block queued 127.0.0.1:$DOWN "retry 1h")
		}
	}
	handle /paused {
		webhook_verify vivreal {env.QL_SECRET} {
$(queue_block paused 127.0.0.1:$DOWN "retry 1h")
		}
	}
	handle /drain {
		webhook_verify vivreal {env.QL_SECRET} {
$(queue_block drain 127.0.0.1:$UP "concurrency 4")
		}
	}
	handle /vpass {
		webhook_verify vev {env.QL_SECRET} {
			max_body_size 8MiB
		}
		reverse_proxy 127.0.0.1:$UP
	}
	handle /vqueued {
		webhook_verify vev {env.QL_SECRET} {
			max_body_size 8MiB
$(queue_block vqueued 127.0.0.1:$DOWN "retry 1h")
		}
	}
}
CF
mkdir -p "$T/xdg"
env XDG_DATA_HOME=$T/xdg XDG_CONFIG_HOME=$T/xdg QL_SECRET=$SECRET ${CADDY_GOMAXPROCS:+GOMAXPROCS=$CADDY_GOMAXPROCS} \
	taskset -c 1 ./caddy run --config "$T/Caddyfile" --adapter caddyfile >"$T/caddy.log" 2>&1 &
pids+=($!)
PID_CADDY=$!
api() { curl -sf -X "$1" "http://127.0.0.1:$ADMIN/webhook_verify/queues${2:-}"; }
for _ in $(seq 100); do
	api GET >/dev/null 2>&1 && break
	sleep 0.1
done
api GET >/dev/null || { echo "queue-load.sh: caddy did not start:" >&2; cat "$T/caddy.log" >&2; exit 1; }
{ echo "## Caddyfile"; cat "$T/Caddyfile"; } >>"$T/raw.txt"
api POST /paused/pause >/dev/null
api POST /drain/pause >/dev/null
# queue_stat <queue> <field>
queue_stat() { api GET | python3 -c "import json,sys; print(next(q for q in json.load(sys.stdin) if q['name']=='$1')['$2'])"; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wbytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
RUNS=$T/runs.tsv
: >"$RUNS"

# wrk_run <label> <round> <path> <provider> <size> <conns> <secs> <ids file>
wrk_run() {
	local label=$1 round=$2 path=$3 provider=$4 size=$5 conns=$6 secs=$7 ids=$8
	local hdr=X-Vivreal-Signature algo=sha256=
	[ "$provider" = vev ] && hdr=X-Vev-Signature algo=sha512=
	local c0 u0 w0 c1 u1 w1 l0 l1
	c0=$(ticks $PID_CADDY) u0=$(ticks $PID_UP) w0=$(wbytes $PID_CADDY) l0=$(cut -d' ' -f1 /proc/loadavg)
	QL_IDS=$ids QL_HDR=$hdr QL_ALGO=$algo taskset -c 0 timeout $((secs + 60)) \
		wrk -t1 -c"$conns" -d"${secs}s" --timeout 30s --latency -s bench/queue-load.lua \
		"http://127.0.0.1:$PORT$path" >"$T/wrk.txt"
	c1=$(ticks $PID_CADDY) u1=$(ticks $PID_UP) w1=$(wbytes $PID_CADDY) l1=$(cut -d' ' -f1 /proc/loadavg)
	{
		echo "## $label round $round: wrk -t1 -c$conns -d${secs}s $path ($provider, $size B); load average $l0 -> $l1"
		cat "$T/wrk.txt"
	} >>"$T/raw.txt"
	case $label in queued | vqueued) settle "$label" "$round" ;; esac
	[ "$round" = warm ] && return 0
	python3 - "$label" "$round" "$((c1 - c0))" "$((u1 - u0))" "$((w1 - w0))" "$CLK" "$l1" "$T/wrk.txt" >>"$RUNS" <<'PY'
import re, sys
label, rnd, ct, ut, wb, clk, load = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
txt = open(sys.argv[8]).read()
def dur(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]
reqs = int(re.search(r"(\d+) requests in", txt).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", txt).group(1))
p50 = dur(re.search(r"^\s+50%\s+(\S+)", txt, re.M).group(1))
p99 = dur(re.search(r"^\s+99%\s+(\S+)", txt, re.M).group(1))
ql = dict(kv.split("=") for kv in re.search(r"^QL (.*)$", txt, re.M).group(1).split())
sock = re.search(r"Socket errors: (.*)", txt)
n = max(reqs, 1)
print("\t".join(map(str, [label, rnd, reqs, f"{rps:.1f}", f"{p50:.0f}", f"{p99:.0f}",
    f"{ct / clk * 1e6 / n:.1f}", f"{ut / clk * 1e6 / n:.1f}", f"{wb / n:.0f}", load,
    ql["queued"], ql["duplicate"], ql["ok"], ql["other"], ql["non2xx"], ql["wrapped"],
    sock.group(1).replace(" ", "") if sock else "-"])))
PY
	tail -1 "$RUNS"
}

# settle <queue> <round>: with the backend down, stored events get failed
# attempts (the first 8 at once, then the breaker's one probe per second);
# the attempts still owed when wrk stops would run into the next target's
# run, so wait (at most 300 s) until the queue's attempts catch up with its
# appends (Caddy's metrics), or move by fewer than 10 in 3 s (the breaker;
# appends also count duplicates, which get no attempt: see "wrapped")
settle() {
	local q=$1 t0 m msg mark= n=0
	t0=$(date +%s.%N)
	for _ in $(seq 1500); do
		m=$(curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk -v q="$q" '
			index($0, "caddy_webhook_verify_queue_attempts_total{queue=\"" q "\"") == 1 { a += $2 }
			index($0, "caddy_webhook_verify_queue_enqueue_seconds_count{queue=\"" q "\"}") == 1 { e = $2 }
			END { printf "%d %d", a, e }')
		[ "${m% *}" -ge "${m#* }" ] && break
		[ -z "$mark" ] && mark=${m% *}
		n=$((n + 1))
		if [ "$n" -ge 15 ]; then
			[ $(( ${m% *} - mark )) -lt 10 ] && { m="$m, attempts paced or stopped"; break; }
			mark=${m% *} n=0
		fi
		sleep 0.2
	done
	msg="$q round $2: first attempts caught up with appends (attempts, appends: $m) $(echo "$(date +%s.%N) - $t0" | bc) s after wrk stopped"
	echo "## $msg" >>"$T/raw.txt"
	echo "# $msg"
}

# ids <provider> <size> <n>: a fresh file of ids and signatures, replacing the last
ids() {
	"$T/queuegen" ids -provider "$1" -size "$2" -n "$3" -secret $SECRET -out "$T/ids"
	echo "$T/ids"
}

# drain_round <round> [profile file]: post DRAIN_N events to the paused /drain
# queue, resume it, and time until none is pending
drain_round() {
	local round=$1 prof=${2:-} pp= d0 dead0 c0 u0 t0 t1 c1 u1 pending
	d0=$(queue_stat drain delivered) dead0=$(queue_stat drain dead)
	taskset -c 0 "$T/queuegen" post -provider vivreal -size 1024 -n "$DRAIN_N" -c 32 -secret $SECRET \
		-url "http://127.0.0.1:$PORT/drain" | sed "s/^/## drain round $round: /" >>"$T/raw.txt"
	pending=$(queue_stat drain pending)
	[ "$pending" = "$DRAIN_N" ] || { echo "queue-load.sh: drain: $pending pending, want $DRAIN_N" >&2; exit 1; }
	c0=$(ticks $PID_CADDY) u0=$(ticks $PID_UP)
	t0=$(date +%s.%N)
	api POST /drain/resume >/dev/null
	if [ -n "$prof" ]; then
		curl -sf -o "$prof" "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=10" &
		pp=$!
	fi
	for _ in $(seq 12000); do # at most 600 s
		api GET | tr -d ' \n' | grep -q '"name":"drain","pending":0,' && break
		sleep 0.05
	done
	t1=$(date +%s.%N)
	c1=$(ticks $PID_CADDY) u1=$(ticks $PID_UP)
	api POST /drain/pause >/dev/null
	[ -z "$pp" ] || wait "$pp"
	local d1 dead1
	d1=$(queue_stat drain delivered) dead1=$(queue_stat drain dead)
	python3 - "$round" "$DRAIN_N" "$t0" "$t1" "$((d1 - d0))" "$((dead1 - dead0))" "$((c1 - c0))" "$((u1 - u0))" "$CLK" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY' | tee -a "$RUNS"
import sys
rnd, n, t0, t1, delivered, dead, ct, ut, clk, load = sys.argv[1:]
n, secs, delivered, clk = int(n), float(t1) - float(t0), int(delivered), int(clk)
print("\t".join(map(str, ["drain", rnd, delivered, f"{delivered / secs:.1f}", f"{secs:.2f}", dead,
    f"{int(ct) / clk * 1e6 / n:.1f}", f"{int(ut) / clk * 1e6 / n:.1f}", "-", load])))
PY
	echo "## drain round $round: $(tail -1 "$RUNS")" >>"$T/raw.txt"
}

# disk_round <round>: sequential 5 MiB writes, each with its fsync (O_DSYNC)
disk_round() {
	local out
	out=$(taskset -c 0 dd if=/dev/zero of="$T/dd.bin" bs=5M count=40 oflag=dsync 2>&1 | tail -1)
	rm -f "$T/dd.bin"
	echo "## disk round $1: dd bs=5M count=40 oflag=dsync: $out" >>"$T/raw.txt"
	python3 - "$1" "$out" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY' | tee -a "$RUNS"
import re, sys
m = re.match(r"(\d+) bytes .* copied, ([\d.]+) s", sys.argv[2])
print(f"disk\t{sys.argv[1]}\t40\t{int(m.group(1)) / float(m.group(2)) / 2**20:.1f}\t-\t-\t-\t-\t-\t{sys.argv[3]}")
PY
}

echo "# columns: label round requests req/s p50µs p99µs caddy-cpu-µs/req upstream-cpu-µs/req caddy-disk-write-B/req load1 queued duplicate ok other non2xx wrapped socket-errors"
echo "#          drain round delivered events/s seconds dead caddy-cpu-µs/event upstream-cpu-µs/event - load1"
echo "#          disk round blocks MiB/s (dd bs=5M oflag=dsync) ... load1"

# 1 KiB Vivreal, 32 connections
targets=(pass queued paused)
for t in "${targets[@]}"; do
	wrk_run "$t" warm "/$t" vivreal 1024 32 2 "$(ids vivreal 1024 100000)"
done
for round in $(seq "$ROUNDS"); do
	for i in 0 1 2; do
		t=${targets[$(( (i + round - 1) % 3 ))]}
		wrk_run "$t" "$round" "/$t" vivreal 1024 32 "$SECS" "$(ids vivreal 1024 "$POOL")"
	done
	drain_round "$round"
done

# 5 MiB Vev PUBLISH, 4 connections
"$T/queuegen" ids -provider vev -size 5242880 -n 200 -secret $SECRET -out "$T/bigpass" # ids may repeat here
wrk_run vpass warm /vpass vev 5242880 4 2 "$T/bigpass"
wrk_run vqueued warm /vqueued vev 5242880 4 2 "$(ids vev 5242880 100)"
for round in $(seq "$ROUNDS"); do
	if (( round % 2 )); then order="vpass vqueued"; else order="vqueued vpass"; fi
	for t in $order; do
		if [ "$t" = vpass ]; then f=$T/bigpass; else f=$(ids vev 5242880 "$BIGPOOL"); fi
		wrk_run "$t" "$round" "/$t" vev 5242880 4 "$BIGSECS" "$f"
	done
	disk_round "$round"
done

echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); caddy peak RSS $(awk '/VmHWM/ {print $2 / 1024 " MiB"}' /proc/$PID_CADDY/status)"
echo "# busiest processes at end: $(ps -eo pcpu=,comm= --sort=-pcpu | head -6 | awk '{printf "%s %s%%; ", $2, $1}')"
echo "# queue files: $(ls -s --block-size=M "$T"/*.db | xargs)"
echo "# caddy log lines: $(wc -l <"$T/caddy.log") (level ERROR)"; head -5 "$T/caddy.log" | sed 's/^/#   /'

python3 - "$RUNS" <<'PY'
import statistics as st, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows[f[0]].append(f)
def col(label, i):
    return [float(r[i]) for r in rows[label]]
def med(label, i):
    return st.median(col(label, i))
print()
print(f"{'target':8} {'req/s':>9} {'p50 µs':>9} {'p99 µs':>9} {'cpu µs/req':>10} {'disk B/req':>10}   (medians of {len(rows['pass'])} rounds)")
for t in ("pass", "queued", "paused", "vpass", "vqueued"):
    if rows[t]:
        print(f"{t:8} {med(t, 3):9.1f} {med(t, 4):9.0f} {med(t, 5):9.0f} {med(t, 6):10.1f} {med(t, 8):10.0f}")
for t in ("pass", "queued", "paused", "vpass", "vqueued"):
    want = 12 if t.endswith("pass") else 10  # ok, or "queued":true
    for r in rows[t]:
        if int(r[want]) != int(r[2]) or int(r[14]) or (t.endswith("queued") or t == "paused") and int(r[15]):
            print(f"CHECK {t} round {r[1]}: {r[2]} requests, {r[10]} queued, {r[11]} duplicate, {r[12]} ok, "
                  f"{r[13]} other, {r[14]} non-2xx, {r[15]} wraps, socket errors {r[16]}")
print("checked: every request of every run answered 2xx with the expected body, unless a CHECK line says otherwise")
print()
for q, p in (("queued", "pass"), ("paused", "pass"), ("vqueued", "vpass")):
    pairs = [f"{a / b:.2f}" for a, b in zip(col(q, 3), col(p, 3))]
    p99s = [f"{a / b:.2f}" for a, b in zip(col(q, 5), col(p, 5))]
    print(f"{q}/{p}: req/s {med(q, 3) / med(p, 3):.3f} (rounds {' '.join(pairs)})  "
          f"p99 {med(q, 5) / med(p, 5):.3f} (rounds {' '.join(p99s)})")
dr = col("drain", 3)
print(f"drain: {st.median(dr):.1f} events/s (rounds {' '.join(f'{x:.0f}' for x in dr)}), "
      f"{st.median(dr) / med('pass', 3):.3f} x pass-through req/s; caddy cpu {med('drain', 6):.1f} µs/event")
disk = med("disk", 3)
for t in ("vpass", "vqueued"):
    print(f"{t}: {med(t, 3) * 5:.1f} MiB/s of bodies = {med(t, 3) * 5 / disk:.3f} x the disk's {disk:.1f} MiB/s "
          f"(dd rounds {' '.join(f'{x:.0f}' for x in col('disk', 3))})")
PY

if [ -n "$PROFILE" ]; then
	mkdir -p "$PROFILE"
	prof() { # prof <name> <command...>: a 10 s CPU profile while the command runs
		local name=$1
		shift
		(sleep 2; curl -sf -o "$PROFILE/$name.pprof" "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=10") &
		local pp=$!
		"$@" >/dev/null
		wait $pp
		echo "# profile $PROFILE/$name.pprof"
	}
	prof pass wrk_run pass prof /pass vivreal 1024 32 15 "$(ids vivreal 1024 "$POOL")"
	prof queued wrk_run queued prof /queued vivreal 1024 32 15 "$(ids vivreal 1024 "$POOL")"
	prof paused wrk_run paused prof /paused vivreal 1024 32 15 "$(ids vivreal 1024 "$POOL")"
	drain_round prof "$PROFILE/drain.pprof" >/dev/null
	echo "# profile $PROFILE/drain.pprof"
	prof vqueued wrk_run vqueued prof /vqueued vev 5242880 4 15 "$(ids vev 5242880 "$BIGPOOL")"
fi
cat "$T/raw.txt" >&2
