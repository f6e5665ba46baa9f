#!/usr/bin/env bash
# End-to-end benchmark: one load tool, one setting, alternating rounds of
#   (a) bare hyper returning the 43-byte GIF        (benches/bare-hyper)
#   (b) nginx empty_gif with a buffered access log  (benches/nginx-empty-gif.conf)
#   (c) openclick serve on its embedded broker
#   (d) openclick serve on a separate tansu broker  (if `tansu` is installed; else "not run")
#   (o) optional: another openclick binary (BASELINE_BIN=/path/to/openclick), on its embedded
#       broker like (c), to compare two builds in the same alternating rounds
# Throughput and latency: `wrk -t1 -c64 -d10s --latency` on one signed open-pixel URL (the same
# request for every variant). Loss check: openclick-loadtest (realistic mix, closed loop at max,
# then open loop at half that rate for p99), which reads the events topic and fails on loss.
# Half-load p99: the loss check's half-rate run is one sample, and on a 2-core box shared with
# the load tool one sample's tail swings by milliseconds for bare hyper too; so HALF_ROUNDS
# more alternating rounds at that same rate (openclick on a fresh embedded broker, and bare
# hyper, each warmed for 3 s at max, then 10 s paced, no event check) give a median for both.
#
# Reports medians and the ratios c/a, c/b, d/a into $OUT/report.md; with UPDATE=1 it also
# replaces the section between the e2e markers in BENCHMARKS.md.
#
# Knobs (environment): ROUNDS=3 DURATION=10 CONNS=64 WRK_THREADS=1 WORKERS=1 (server worker
# threads for a, b and c/d) LOADTEST_DURATION=10 OPENCLICK_ARGS="" (extra `serve` flags)
# OUT=/tmp/openclick-e2e CARGO_TARGET_DIR=target TANSU_PORT=19192 BASELINE_BIN= SKIP_LOSS=0
# HALF_ROUNDS=5 (0: none; needs the loss check's max rate).
# Each measured round also records the machine's state over it from /proc/stat: the share of
# CPU time the hypervisor stole (steal) and the share left idle; the half-load rounds also
# record the server's CPU time per answered request (all its threads, /proc/PID/stat). On a
# shared VM the tail follows steal as much as the server, so the report shows both.
# Loopback only. Needs root to apt-get install wrk/nginx when they are absent.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WORKERS=${WORKERS:-1}
LOADTEST_DURATION=${LOADTEST_DURATION:-10}
OPENCLICK_ARGS=${OPENCLICK_ARGS:-}
OUT=${OUT:-/tmp/openclick-e2e}
UPDATE=${UPDATE:-0}
BASELINE_BIN=${BASELINE_BIN:-}
SKIP_LOSS=${SKIP_LOSS:-0}
HALF_ROUNDS=${HALF_ROUNDS:-5}
# Fixed loopback ports: (a) 18081, (b) 18082, (c) 18083/19093, (d) 18084/19094, tansu below.
TANSU_PORT=${TANSU_PORT:-19192}

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$TARGET/release
UA='Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'
PIDS=()

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        log "installing $pkg (Debian)"
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
        fi
    fi
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TANSU=$(command -v tansu || { [ -x "$HOME/.cargo/bin/tansu" ] && echo "$HOME/.cargo/bin/tansu"; } || true)

log "building (release)"
(cd "$REPO" && cargo build --release -q -p openclick-cli -p openclick-bare-hyper -p openclick-loadtest)

rm -rf "$OUT" && mkdir -p "$OUT"/nginx/logs "$OUT"/nginx/tmp
"$BIN/openclick-loadtest" keygen >"$OUT/keys"
"$BIN/openclick-loadtest" suppression --out "$OUT/suppression.csv" 2>/dev/null
KEYS=$(cat "$OUT/keys")
PIXEL_PATH=$("$BIN/openclick-loadtest" path --keys "$KEYS")

wait_port() { # host:port
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on $1"; return 1
}

# --- servers -------------------------------------------------------------------------------
start_bare() {
    "$BIN/openclick-bare-hyper" 127.0.0.1:18081 "$WORKERS" 2>"$OUT/bare.log" &
    PIDS+=($!); BARE_PID=$!
    wait_port 127.0.0.1:18081
}
start_nginx() {
    "$NGINX" -p "$OUT/nginx/" -c "$REPO/benches/nginx-empty-gif.conf" -g "worker_processes $WORKERS;" \
        2>"$OUT/nginx.log" &
    PIDS+=($!); NGINX_PID=$!
    wait_port 127.0.0.1:18082
}
# start_openclick PORT ADMIN_PORT [--kafka-brokers X]   (OC_BIN: the binary, default this build)
# wrk replays one URL: this build's per-token rate limit is set so high that it never limits
# but still runs its full path (a baseline build from before the limiter gets no such flags).
LIMIT_ARGS="--rate-limit-burst 1000000000 --rate-limit-per-minute 1000000"
start_openclick() {
    local port=$1 admin=$2; shift 2
    local limit_args=$LIMIT_ARGS
    [ -n "${OC_BIN:-}" ] && limit_args=""
    # shellcheck disable=SC2086
    "${OC_BIN:-$BIN/openclick}" serve $limit_args --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --keys "$KEYS" --suppression-file "$OUT/suppression.csv" --trusted-proxies 127.0.0.1/32 \
        --workers "$WORKERS" --data-dir "$OUT/data-$port" --log warn $OPENCLICK_ARGS "$@" \
        >>"$OUT/openclick-$port.log" 2>&1 &
    OC_PID=$!; PIDS+=($OC_PID)
    wait_port "127.0.0.1:$port"
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "openclick on $port not ready"; return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_tansu() {
    [ -n "$TANSU" ] || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null; then
        log "port $TANSU_PORT is taken (another broker?): set TANSU_PORT"; return 1
    fi
    "$TANSU" broker --listener-url tcp://127.0.0.1:$TANSU_PORT --advertised-listener-url tcp://127.0.0.1:$TANSU_PORT \
        --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
    TANSU_PID=$!; PIDS+=($TANSU_PID)
    wait_port 127.0.0.1:$TANSU_PORT || return 1
    "$TANSU" topic create openclick.events.v1 --partitions 3 --broker tcp://127.0.0.1:$TANSU_PORT \
        >>"$OUT/tansu.log" 2>&1 || "$TANSU" topic create openclick.events.v1 --partitions 3 \
        >>"$OUT/tansu.log" 2>&1 || true
}

# --- the machine over one measurement -------------------------------------------------------
# stat_snap -> the aggregate "cpu" line of /proc/stat; stat_delta BEFORE AFTER -> "steal% idle%"
stat_snap() { head -1 /proc/stat; }
stat_delta() {
    python3 -c 'import sys
a = [int(x) for x in sys.argv[1].split()[1:]]; b = [int(x) for x in sys.argv[2].split()[1:]]
d = [y - x for x, y in zip(a, b)]; t = sum(d) or 1
print(f"{100 * d[7] / t:.1f} {100 * (d[3] + d[4]) / t:.1f}")' "$1" "$2"
}
# proc_ticks PID -> user + system clock ticks of the whole process so far
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# --- one measurement -------------------------------------------------------------------------
# wrk_round VARIANT PORT -> appends "variant rps p50_us p99_us load1 non2xx steal% idle%" to
# $OUT/rounds.txt
to_us() { # wrk latency like 512.00us / 1.20ms / 2.01s
    python3 -c "import sys;v=sys.argv[1];print(round(float(v[:-2])*1 if v.endswith('us') else float(v[:-2])*1000 if v.endswith('ms') else float(v[:-1])*1e6,1))" "$1"
}
wrk_round() {
    local v=$1 port=$2 f="$OUT/wrk-$1-$3.txt"
    local s0 s1
    s0=$(stat_snap)
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "User-Agent: $UA" \
        "http://127.0.0.1:$port$PIXEL_PATH" >"$f" 2>&1
    s1=$(stat_snap)
    local rps p50 p99 load non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' "$f")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' "$f")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$f"); non2xx=${non2xx:-0}
    load=$(cut -d' ' -f1 /proc/loadavg)
    local steal idle
    read -r steal idle <<<"$(stat_delta "$s0" "$s1")"
    echo "$v $rps $p50 $p99 $load $non2xx $steal $idle" >>"$OUT/rounds.txt"
    log "round $3 ($v): $rps req/s, p50 ${p50}us, p99 ${p99}us, non-2xx $non2xx, load $load, steal ${steal}%"
}

# --- run ---------------------------------------------------------------------------------------
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
start_bare
start_nginx
VARIANTS="a b c"
if [ -n "$TANSU" ] && start_tansu; then
    VARIANTS="a b c d"
else
    log "tansu not installed: variant (d) not run"
fi
if [ -n "$BASELINE_BIN" ]; then
    VARIANTS="$VARIANTS o"
fi

read -r -a VARR <<<"$VARIANTS"
for r in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no variant always runs right after the same one.
    off=$(( (r - 1) % ${#VARR[@]} ))
    order="${VARR[*]:off} ${VARR[*]:0:off}"
    for v in $order; do
        case $v in
            a) wrk_round a 18081 "$r" ;;
            b) wrk_round b 18082 "$r" ;;
            c) start_openclick 18083 19093; wrk_round c 18083 "$r"; stop_pid "$OC_PID" ;;
            d) start_openclick 18084 19094 --kafka-brokers 127.0.0.1:$TANSU_PORT; wrk_round d 18084 "$r"; stop_pid "$OC_PID" ;;
            o) OC_BIN=$BASELINE_BIN start_openclick 18085 19095; wrk_round o 18085 "$r"; stop_pid "$OC_PID" ;;
        esac
    done
done

# --- loss check with the realistic mix ---------------------------------------------------------
loss_check() { # VARIANT PORT ADMIN [serve args]
    local v=$1 port=$2 admin=$3; shift 3
    start_openclick "$port" "$admin" "$@"
    local lt=("$BIN/openclick-loadtest" run --keys "$KEYS" --target "127.0.0.1:$port"
        --admin "127.0.0.1:$admin" --xff -c "$CONNS" --quiet)
    local rc=0
    "${lt[@]}" -d "$LOADTEST_DURATION" >"$OUT/loadtest-$v-max.txt" 2>&1 || rc=$?
    local max_rps
    max_rps=$(sed -n 's/^SUMMARY //p' "$OUT/loadtest-$v-max.txt" | python3 -c 'import json,sys;print(int(json.load(sys.stdin)["rps"]))')
    local half=$(( max_rps / 2 ))
    "${lt[@]}" -d "$LOADTEST_DURATION" --rate "$half" >"$OUT/loadtest-$v-half.txt" 2>&1 || rc=$((rc ? rc : $?))
    stop_pid "$OC_PID"
    # The latency floor at that rate on this machine: bare hyper under the same load tool, mix
    # and pacing (no Kafka, so no end-to-end check; its clicks get 200 instead of 302).
    "$BIN/openclick-loadtest" run --keys "$KEYS" --target 127.0.0.1:18081 --xff -c "$CONNS" --quiet \
        --no-check -d "$LOADTEST_DURATION" --rate "$half" >"$OUT/loadtest-a-at-$v-half.txt" 2>&1 || true
    log "loss check ($v): max $max_rps req/s; exit $rc"
    grep -E "^(answered|latency|end to end|  lost|END-TO-END)" "$OUT/loadtest-$v-max.txt" "$OUT/loadtest-$v-half.txt" >&2 || true
    return $rc
}
LOSS_RC=0
if [ "$SKIP_LOSS" != 1 ]; then
    loss_check c 18083 19093 || LOSS_RC=$?
    if [[ " $VARIANTS " == *" d "* ]]; then
        loss_check d 18084 19094 --kafka-brokers 127.0.0.1:$TANSU_PORT || LOSS_RC=$?
    fi
fi

# half_round VARIANT PORT RATE ROUND SERVER_PID: 3 s at max to warm, then RATE for
# LOADTEST_DURATION -> appends "variant round p99_us steal% idle% server_cpu_us_per_request"
# to $OUT/half.txt
half_round() {
    local lt=("$BIN/openclick-loadtest" run --keys "$KEYS" --target "127.0.0.1:$2" --xff -c "$CONNS"
        --quiet --no-check)
    "${lt[@]}" -d 3 >/dev/null 2>&1 || true
    local s0 s1 t0 t1
    s0=$(stat_snap); t0=$(proc_ticks "$5")
    "${lt[@]}" -d "$LOADTEST_DURATION" --rate "$3" >"$OUT/half-$1-$4.txt" 2>&1 || true
    s1=$(stat_snap); t1=$(proc_ticks "$5")
    local p99 cpu steal idle
    # One read of the run's SUMMARY line: its p99, and the server's CPU over what it answered.
    read -r p99 cpu <<<"$(sed -n 's/^SUMMARY //p' "$OUT/half-$1-$4.txt" | python3 -c 'import json,os,sys
try:
    s = json.load(sys.stdin)
except ValueError:
    print("? ?"); sys.exit()
n = s["answered"]
print(round(s["p99_us"]), round(int(sys.argv[1]) * 1e6 / os.sysconf("SC_CLK_TCK") / n, 1) if n else "?")' "$((t1 - t0))")"
    read -r steal idle <<<"$(stat_delta "$s0" "$s1")"
    echo "$1 $4 $p99 $steal $idle $cpu" >>"$OUT/half.txt"
    log "half-load round $4 ($1) at $3 req/s: p99 ${p99}us, server ${cpu} us CPU a request, steal ${steal}%, idle ${idle}%"
}
if [ "$SKIP_LOSS" != 1 ] && [ "$HALF_ROUNDS" -gt 0 ] && [ -f "$OUT/loadtest-c-max.txt" ]; then
    HALF_RATE=$(sed -n 's/^SUMMARY //p' "$OUT/loadtest-c-max.txt" | python3 -c 'import json,sys;print(int(json.load(sys.stdin)["rps"]) // 2)')
    for r in $(seq 1 "$HALF_ROUNDS"); do
        order="c a"; [ $((r % 2)) = 0 ] && order="a c"
        for v in $order; do
            case $v in
                a) half_round a 18081 "$HALF_RATE" "$r" "$BARE_PID" ;;
                c) start_openclick 18083 19093; half_round c 18083 "$HALF_RATE" "$r" "$OC_PID"; stop_pid "$OC_PID" ;;
            esac
        done
    done
fi

# --- report --------------------------------------------------------------------------------------
python3 - "$OUT" "$VARIANTS" "$ROUNDS" "$DURATION" "$CONNS" "$WRK_THREADS" "$WORKERS" "$OPENCLICK_ARGS" "$BASELINE_BIN" <<'PY' >"$OUT/report.md"
import json, statistics, sys, subprocess, platform, re
out, variants, rounds, dur, conns, wt, workers, ocargs, baseline = sys.argv[1:]
names = {"a": "bare hyper (benches/bare-hyper)", "b": "nginx empty_gif + access log",
         "c": "openclick, embedded broker", "d": "openclick, tansu broker",
         "o": f"openclick baseline build ({baseline}), embedded broker"}
rows = {}
for line in open(f"{out}/rounds.txt"):
    v, rps, p50, p99, load, non2xx, steal, idle = line.split()
    rows.setdefault(v, []).append((float(rps), float(p50), float(p99), float(load), int(non2xx), float(steal)))
med = {v: statistics.median(r[0] for r in rs) for v, rs in rows.items()}
cpu = re.sub(r"\s+", " ", open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0]).strip()
print(f"Machine: {subprocess.getoutput('nproc')} cores, {cpu}, kernel {platform.release()}; "
      f"wrk -t{wt} -c{conns} -d{dur}s, {rounds} alternating rounds, server workers {workers}"
      + (f", openclick {ocargs}" if ocargs else "") + ".\n")
print("| variant | req/s per round | median req/s | median p50 | median p99 | load avg (1m) | steal % |")
print("|---|---|---|---|---|---|---|")
for v in "abcdo":
    if v == "o" and v not in rows:
        continue
    if v not in rows:
        print(f"| ({v}) {names[v]} | not run | | | | | |")
        continue
    rs = rows[v]
    print(f"| ({v}) {names[v]} | {', '.join(f'{r[0]:.0f}' for r in rs)} | **{med[v]:.0f}** | "
          f"{statistics.median(r[1] for r in rs):.0f} us | {statistics.median(r[2] for r in rs):.0f} us | "
          f"{', '.join(f'{r[3]:.1f}' for r in rs)} | {', '.join(f'{r[5]:.1f}' for r in rs)} |")
print()
def ratio(x, y):
    return f"**{med[x] / med[y]:.2f}**" if x in med and y in med else "not run"
print(f"Ratios of medians: c/a = {ratio('c','a')}, c/b = {ratio('c','b')}, d/a = {ratio('d','a')}"
      + (f"; baseline o/a = {ratio('o','a')}, c/o = {ratio('c','o')}" if "o" in med else "") + ".\n")
for v in "cd":
    for kind in ("max", "half"):
        try:
            txt = open(f"{out}/loadtest-{v}-{kind}.txt").read()
        except FileNotFoundError:
            continue
        s = json.loads(txt.split("SUMMARY ", 1)[1].splitlines()[0])
        verdict = "0 lost" if s.get("lost") == 0 and s.get("unexpected") == 0 else f"LOST {s.get('lost')}"
        mode = "closed loop (max)" if kind == "max" else f"open loop at {s['rate']} req/s (half of max)"
        print(f"- ({v}) openclick-loadtest, realistic mix, {mode}: {s['rps']:.0f} req/s, "
              f"p50 {s['p50_us']:.0f} us, p99 {s['p99_us']:.0f} us, p99.9 {s['p999_us']:.0f} us, max {s['max_us']:.0f} us; "
              f"end to end: expected {s.get('expected')}, received {s.get('received')}, lost {s.get('lost')}, "
              f"duplicated {s.get('duplicated')}, unexpected {s.get('unexpected')} -> **{verdict}**")
        if kind == "half":
            try:
                b = json.loads(open(f"{out}/loadtest-a-at-{v}-half.txt").read().split("SUMMARY ", 1)[1].splitlines()[0])
                print(f"  - (a) bare hyper under the same tool at the same rate ({b['rps']:.0f} req/s): "
                      f"p50 {b['p50_us']:.0f} us, p99 {b['p99_us']:.0f} us, p99.9 {b['p999_us']:.0f} us, max {b['max_us']:.0f} us")
            except (FileNotFoundError, IndexError):
                pass
half = {}
try:
    for line in open(f"{out}/half.txt"):
        v, r, p99, steal, idle, cpu = line.split()
        if p99 != "?":
            half.setdefault(v, []).append((int(p99), float(steal), float(idle), None if cpu == "?" else float(cpu)))
except FileNotFoundError:
    pass
if "a" in half and "c" in half:
    def col(v, i, fmt):
        xs = [h[i] for h in half[v] if h[i] is not None]
        return " / ".join(fmt.format(x) for x in xs), (statistics.median(xs) if xs else float("nan"))
    print(f"- Half-load rounds: {len(half['c'])} more alternating rounds at the same rate (fresh server, 3 s warm-up at max, "
          "no event check). Per round: p99; the server's CPU time (all threads) per answered request; the "
          "hypervisor's steal and the idle share of the machine over the round.")
    print()
    print("| variant | p99 per round | median p99 | server CPU a request | steal % | idle % | rounds with p99 <= 1 ms |")
    print("|---|---|---|---|---|---|---|")
    for v in "ca":
        p = col(v, 0, "{:.0f}"); c = col(v, 3, "{:.1f}"); st = col(v, 1, "{:.1f}"); idl = col(v, 2, "{:.1f}")
        ok = sum(1 for h in half[v] if h[0] <= 1000)
        print(f"| ({v}) {names[v]} | {p[0]} us | **{p[1]:.0f} us** | {c[0]} us (median {c[1]:.1f}) | {st[0]} | {idl[0]} | {ok} of {len(half[v])} |")
PY
cat "$OUT/report.md"

if [ "$UPDATE" = 1 ]; then
    python3 - "$REPO/BENCHMARKS.md" "$OUT/report.md" <<'PY'
import sys, datetime
path, rep = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- e2e:begin -->", "<!-- e2e:end -->"
try:
    doc = open(path).read()
except FileNotFoundError:
    doc = "# Benchmarks\n\n"
block = f"{begin}\nRun {datetime.datetime.now():%Y-%m-%d %H:%M}:\n\n{rep}\n{end}"
if begin in doc and end in doc:
    doc = doc.split(begin)[0] + block + doc.split(end, 1)[1]
else:
    doc = doc.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(doc)
PY
    log "BENCHMARKS.md updated"
fi
exit "$LOSS_RC"
