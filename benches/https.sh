#!/usr/bin/env bash
# HTTPS against plain HTTP on the pixel route, one openclick process serving both listeners
# (--listen and --https-listen), in alternating wrk rounds:
#   http      plain HTTP/1.1, keep-alive
#   https     HTTPS (TLS 1.3, rustls/ring, ECDSA P-256 certificate), keep-alive
#   http-new  plain, a new connection per request (Connection: close)
#   https-new HTTPS, a new connection and a full handshake per request (Connection: close)
# Reports medians per variant and the ratios https/http, https-new/http-new.
#
# Knobs (environment): ROUNDS=5 DURATION=10 CONNS=64 WRK_THREADS=1 WORKERS=1 NEW=1 (0: skip the
# new-connection variants) OUT=/tmp/openclick-https CARGO_TARGET_DIR=target.
# Loopback only; needs wrk and openssl (apt-get installs them when absent, as root).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WORKERS=${WORKERS:-1}
NEW=${NEW:-1}
OUT=${OUT:-/tmp/openclick-https}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/openclick
KEYS="k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
HTTP_PORT=18181 HTTPS_PORT=18443 ADMIN_PORT=19191

log() { printf '[https %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for tool in wrk openssl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "installing $tool"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done

log "building (release)"
(cd "$REPO" && cargo build --release -q -p openclick-cli)

rm -rf "$OUT" && mkdir -p "$OUT/tls/t"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=t.bench.test -addext subjectAltName=DNS:t.bench.test \
    -keyout "$OUT/tls/t/tls.key" -out "$OUT/tls/t/tls.crt" 2>/dev/null
PIXEL_PATH=$("$BIN" sign open --keys "$KEYS" --tenant acme --campaign bench --message m-1 \
    --contact c-1 --base-url http://x | sed 's|^http://x||')

"$BIN" serve --listen 127.0.0.1:$HTTP_PORT --https-listen 127.0.0.1:$HTTPS_PORT \
    --tls-cert-dir "$OUT/tls" --admin-listen 127.0.0.1:$ADMIN_PORT --keys "$KEYS" \
    --workers "$WORKERS" --data-dir "$OUT/data" --log warn \
    --rate-limit-burst 1000000000 --rate-limit-per-minute 1000000 >"$OUT/openclick.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sfk -o /dev/null "https://127.0.0.1:$HTTPS_PORT$PIXEL_PATH" || { log "no HTTPS answer"; exit 1; }

to_us() { # wrk latency like 512.00us / 1.20ms / 2.01s
    python3 -c "import sys;v=sys.argv[1];print(round(float(v[:-2]) if v.endswith('us') else float(v[:-2])*1000 if v.endswith('ms') else float(v[:-1])*1e6,1))" "$1"
}
round() { # VARIANT URL ROUND [wrk args]
    local v=$1 url=$2 r=$3; shift 3
    local f="$OUT/wrk-$v-$r.txt"
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$f" 2>&1
    local rps p50 p99 errs
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' "$f")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' "$f")")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$f" | tr '\n' ' ')
    echo "$v $rps $p50 $p99 $(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/rounds.txt"
    log "round $r $v: $rps req/s, p50 ${p50}us, p99 ${p99}us, load $(cut -d' ' -f1 /proc/loadavg) $errs"
}

HTTP="http://127.0.0.1:$HTTP_PORT$PIXEL_PATH"
HTTPS="https://127.0.0.1:$HTTPS_PORT$PIXEL_PATH"
for r in $(seq 1 "$ROUNDS"); do
    # alternate the order between rounds
    if [ $((r % 2)) = 1 ]; then order="http https"; else order="https http"; fi
    for v in $order; do
        if [ "$v" = http ]; then round http "$HTTP" "$r"; else round https "$HTTPS" "$r"; fi
    done
    if [ "$NEW" = 1 ]; then
        for v in $order; do
            if [ "$v" = http ]; then round http-new "$HTTP" "$r" -H "Connection: close"
            else round https-new "$HTTPS" "$r" -H "Connection: close"; fi
        done
    fi
done

python3 - "$OUT/rounds.txt" <<'EOF' | tee "$OUT/report.md"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, rps, p50, p99, load = line.split()
    rows.setdefault(v, []).append((float(rps), float(p50), float(p99), float(load)))
med = {v: [statistics.median(c) for c in zip(*rs)] for v, rs in rows.items()}
print("| variant | rounds | req/s (median) | p50 us | p99 us | load1 |")
print("|---|---:|---:|---:|---:|---:|")
for v in ["http", "https", "http-new", "https-new"]:
    if v in med:
        m = med[v]
        print(f"| {v} | {len(rows[v])} | {m[0]:,.0f} | {m[1]:.0f} | {m[2]:.0f} | {m[3]:.1f} |")
for a, b in [("https", "http"), ("https-new", "http-new")]:
    if a in med and b in med:
        print(f"\n{a}/{b} req/s ratio (medians): **{med[a][0] / med[b][0]:.2f}**", end="")
        per = [x[0] / y[0] for x, y in zip(rows[a], rows[b])]
        print(f" (per round: {', '.join(f'{p:.2f}' for p in per)})")
EOF
