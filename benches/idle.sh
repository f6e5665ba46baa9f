#!/usr/bin/env bash
# Idle connections against the edge: with N (default 10,000) idle HTTP/1 connections held
# open on the public listener, how fast does /healthz answer, what is the server's RSS, and
# what is the pixel route's throughput as a ratio to no idle connections, in alternating
# rounds of one run.
#
# The idle connections are plain TCP connections that never send a byte, held by a Python
# helper; the server runs with --header-read-timeout-secs 600 so it keeps them for the whole
# measurement (at the default 10 s it closes them, which is the point of the timeout).
# wrk -t1 -c64 -d10s on one signed open-pixel URL, 1 server worker, embedded broker.
# Knobs: IDLE=10000 ROUNDS=3 DURATION=10 CARGO_TARGET_DIR=target OUT=/tmp/openclick-idle.
set -euo pipefail
IDLE=${IDLE:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUT=${OUT:-/tmp/openclick-idle}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
UA='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
rm -rf "$OUT" && mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" || true   # the holder and the server each need > IDLE files
(cd "$REPO" && cargo build --release -q -p openclick-cli -p openclick-loadtest)
KEYS=$("$BIN/openclick-loadtest" keygen)
PIXEL_PATH=$("$BIN/openclick-loadtest" path --keys "$KEYS")

"$BIN/openclick" serve --listen 127.0.0.1:18181 --admin-listen 127.0.0.1:19191 --keys "$KEYS" \
  --workers 1 --data-dir "$OUT/data" --log warn --header-read-timeout-secs 600 \
  --rate-limit-burst 1000000000 --rate-limit-per-minute 1000000 >"$OUT/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; kill $HOLDER 2>/dev/null; wait 2>/dev/null' EXIT
HOLDER=
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:19191/readyz >/dev/null && break; sleep 0.1; done

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
healthz() { # 200 sequential /healthz, prints "p50_ms p99_ms max_ms"
  python3 - <<'PY'
import time, urllib.request, statistics
lat = []
for _ in range(200):
    t = time.perf_counter()
    urllib.request.urlopen("http://127.0.0.1:19191/healthz", timeout=10).read()
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"{lat[99]:.2f} {lat[197]:.2f} {lat[-1]:.2f}")
PY
}
wrk_rps() {
  wrk -t1 -c64 -d"${DURATION}s" -H "User-Agent: $UA" "http://127.0.0.1:18181$PIXEL_PATH" \
    | awk '/^Requests\/sec:/ {print $2}'
}
hold() { # opens N idle connections and holds them until killed; prints "held N" when ready
  python3 - "$1" <<'PY' &
import socket, sys, time, resource
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 18181))
    socks.append(s)
print(f"held {len(socks)}", flush=True)
while True:
    time.sleep(3600)
PY
  HOLDER=$!
}

echo "round idle rps healthz_p50_ms healthz_p99_ms healthz_max_ms rss_mib open_conns" | tee "$OUT/rounds.txt"
for r in $(seq 1 "$ROUNDS"); do
  for idle in 0 "$IDLE"; do
    if [ "$idle" -gt 0 ]; then
      hold "$idle" >"$OUT/holder.txt"
      for _ in $(seq 1 600); do grep -q held "$OUT/holder.txt" 2>/dev/null && break; sleep 0.1; done
      sleep 1
    fi
    h=$(healthz)
    open=$(curl -s http://127.0.0.1:19191/metrics | awk '/^openclick_connections_open\{listener="public"\}/ {print $2}')
    rss=$(rss_mib)
    rps=$(wrk_rps)
    echo "$r $idle $rps $h $rss $open" | tee -a "$OUT/rounds.txt"
    if [ "$idle" -gt 0 ]; then kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; HOLDER=; sleep 2; fi
  done
done
python3 - "$OUT/rounds.txt" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for r in rows:
    by.setdefault(int(r[1]), []).append(r)
base = statistics.median(float(r[2]) for r in by[0])
for idle, rs in sorted(by.items()):
    rps = statistics.median(float(r[2]) for r in rs)
    print(f"idle={idle}: pixel median {rps:.0f} req/s ({rps/base:.2f}x of no idle), "
          f"/healthz p50 {statistics.median(float(r[3]) for r in rs):.2f} ms, "
          f"p99 {statistics.median(float(r[4]) for r in rs):.2f} ms, RSS {statistics.median(float(r[6]) for r in rs):.1f} MiB")
PY
