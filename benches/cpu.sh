#!/usr/bin/env bash
# CPU per request, by thread: what one hit costs in user and system microseconds on each thread
# of the server (the tokio workers, librdkafka's broker and delivery-report threads, the
# embedded broker), so the figure carries to machines of other sizes.
#
# Each round starts a fresh server, warms it for 1 s, reads every thread's utime/stime from
# /proc/PID/task/*/stat, runs `wrk -t1 -c64 -d${DURATION}s` on one signed open-pixel URL with a
# Gmail-proxy user agent (the e2e's request), reads them again and divides by the requests
# wrk completed. Variants alternate within each round.
#
# Knobs (environment): ROUNDS=3 DURATION=6 WORKERS=1 CONNS=64 OUT=/tmp/openclick-cpu
#   VARIANTS="bare;openclick" - `;`-separated `label[=ENV=VALUE ...][@BINARY][ ARGS...]`:
#     `bare`                       the bare hyper baseline (benches/bare-hyper)
#     `openclick`                  this build's `openclick serve` on its embedded broker
#     `x@/path/to/openclick`       another openclick binary (e.g. an older build)
#     `y=OPENCLICK_X=1 --flag v`   environment and extra `serve` flags for a variant
#   e.g. VARIANTS="bare;openclick;two --workers 2" or VARIANTS="new;old@/tmp/openclick-old"
# Needs wrk (benches/e2e.sh installs it). Loopback only.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
WORKERS=${WORKERS:-1}
CONNS=${CONNS:-64}
OUT=${OUT:-/tmp/openclick-cpu}
VARIANTS=${VARIANTS:-bare;openclick}
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
UA='Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'
PORT=18071
ADMIN=19071

command -v wrk >/dev/null || { echo "wrk is not installed (benches/e2e.sh installs it)" >&2; exit 1; }
(cd "$REPO" && cargo build --release -q -p openclick-cli -p openclick-bare-hyper -p openclick-loadtest)
mkdir -p "$OUT"
"$BIN/openclick-loadtest" keygen >"$OUT/keys"
"$BIN/openclick-loadtest" suppression --out "$OUT/suppression.csv" 2>/dev/null
KEYS=$(cat "$OUT/keys")
PIXEL_PATH=$("$BIN/openclick-loadtest" path --keys "$KEYS")

# Every thread of PID as "name utime stime" (clock ticks).
snapshot() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' _ <"$t/comm")" "$(cut -d' ' -f14,15 "$t/stat")"
    done
}

wait_ready() { # URL
    for _ in $(seq 1 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "not ready: $1" >&2; return 1
}

: >"$OUT/rounds.txt"
IFS=';' read -r -a VS <<<"$VARIANTS"
for r in $(seq 1 "$ROUNDS"); do
    for v in "${VS[@]}"; do
        read -r -a words <<<"$v"
        head=${words[0]}
        args=("${words[@]:1}")
        label=${head%%[=@]*}
        bin=$BIN/openclick
        [[ $head == *@* ]] && bin=${head#*@}
        envs=()
        if [[ $head == *=* ]]; then
            e=${head#*=}; e=${e%%@*}
            envs=("$e")
        fi
        rm -rf "$OUT/data"
        if [ "$label" = bare ]; then
            env "${envs[@]}" "$BIN/openclick-bare-hyper" "127.0.0.1:$PORT" "$WORKERS" 2>/dev/null &
            pid=$!
            sleep 0.5
        else
            workers=(--workers "$WORKERS")
            [[ " ${args[*]} " == *" --workers "* ]] && workers=()
            env "${envs[@]}" "$bin" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
                --keys "$KEYS" --rate-limit-burst 1000000000 --rate-limit-per-minute 1000000 \
                --suppression-file "$OUT/suppression.csv" --trusted-proxies 127.0.0.1/32 \
                "${workers[@]}" --data-dir "$OUT/data" --log warn "${args[@]}" >"$OUT/serve.log" 2>&1 &
            pid=$!
            wait_ready "http://127.0.0.1:$ADMIN/readyz"
        fi
        url="http://127.0.0.1:$PORT$PIXEL_PATH"
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "User-Agent: $UA" "$url")" = 200 ] || {
            echo "$label: the pixel URL does not answer 200" >&2; kill "$pid"; exit 1; }
        wrk -t1 -c"$CONNS" -d1s -H "User-Agent: $UA" "$url" >/dev/null
        snapshot "$pid" >"$OUT/before"
        wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "User-Agent: $UA" "$url" >"$OUT/wrk.txt"
        snapshot "$pid" >"$OUT/after"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        python3 - "$OUT" "$r" "$label" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/rounds.txt"
import collections, re, sys
out, rnd, label, tck = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
wrk = open(f"{out}/wrk.txt").read()
n = int(re.search(r"(\d+) requests in", wrk).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
def read(path):
    d = collections.defaultdict(lambda: [0, 0])
    for line in open(path):
        name, u, s = line.split()
        d[name][0] += int(u); d[name][1] += int(s)
    return d
a, b = read(f"{out}/before"), read(f"{out}/after")
parts, total = [], 0.0
for name in sorted(b):
    u = (b[name][0] - a.get(name, [0, 0])[0]) / tck * 1e6 / n
    s = (b[name][1] - a.get(name, [0, 0])[1]) / tck * 1e6 / n
    if u + s >= 0.05:
        parts.append(f"{name} {u:.2f}u+{s:.2f}s")
        total += u + s
print(f"round {rnd} {label:<12} {rps:>9.0f} req/s  total {total:5.2f} us/req  " + ", ".join(parts))
PY
    done
done
echo "per-round lines in $OUT/rounds.txt (u = user, s = system, microseconds per request)"
