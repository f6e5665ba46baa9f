#!/usr/bin/env bash
# The website-activity figures (README "Website activity", BENCHMARKS.md):
#   1. the snippet's size: as served and gzipped (-9);
#   2. the beacon route's throughput as a ratio to the pixel route, in the same run: one
#      `openclick serve` (embedded broker, --web-settings with the hand-off on), alternating
#      `wrk` rounds on a signed open pixel (GET /o/TOKEN.gif) and on a page-view beacon
#      (POST /w/TOKEN, the snippet's text/plain body and Origin header), each producing an event.
# Knobs: BIN (the openclick binary; default $CARGO_TARGET_DIR/release/openclick), ROUNDS=3
# DURATION=10 CONNS=64 WRK_THREADS=1 WORKERS=1. Loopback only.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/openclick}
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}; WORKERS=${WORKERS:-1}
PORT=${PORT:-18183}; ADMIN=${ADMIN:-19183}
KEYS='k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8'
TMP=$(mktemp -d); SERVE_PID=
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

js=$REPO/crates/edge/web/w.js
echo "snippet: $(wc -c < "$js") bytes as served, $(gzip -9c "$js" | wc -c) bytes gzipped (-9)"

cat > "$TMP/web.toml" <<TOML
[tenant.acme]
handoff = true
origins = ["https://shop.example.com"]
TOML
"$BIN" --log warn serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --keys "$KEYS" \
  --data-dir "$TMP/data" --workers "$WORKERS" --web-settings "$TMP/web.toml" \
  --rate-limit-burst 0 2> "$TMP/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.2; done

sign() { "$BIN" sign "$@" --tenant acme --campaign spring --message m-1 --contact c-1 --keys "$KEYS" --base-url "http://127.0.0.1:$PORT"; }
OPEN=$(sign open)
CLICK=$(sign click --link-id hero --url https://shop.example.com/p)
LOC=$(curl -s -o /dev/null -w '%{redirect_url}' "$CLICK")
TOKEN=${LOC##*oc_id=}
[ -n "$TOKEN" ] && [ "$TOKEN" != "$LOC" ] || { echo "no hand-off in $LOC" >&2; exit 1; }
cat > "$TMP/beacon.lua" <<LUA
wrk.method = "POST"
wrk.path = "/w/$TOKEN"
wrk.body = "u=https%3A%2F%2Fshop.example.com%2Fp%3Fa%3D1&r=https%3A%2F%2Fmail.example%2F"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["Origin"] = "https://shop.example.com"
wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
LUA
cat > "$TMP/pixel.lua" <<LUA
wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
LUA
# One check that each route makes an event (204 / GIF) before timing them.
curl -sf -o /dev/null -X POST -H 'Origin: https://shop.example.com' --data 'u=https%3A%2F%2Fshop.example.com%2F' "http://127.0.0.1:$PORT/w/$TOKEN"
rps() { wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" -s "$2" "$1" | awk '/Requests\/sec/ {print $2}'; }
pix=(); bea=()
for r in $(seq "$ROUNDS"); do
  p=$(rps "$OPEN" "$TMP/pixel.lua"); b=$(rps "http://127.0.0.1:$PORT/w/$TOKEN" "$TMP/beacon.lua")
  echo "round $r: pixel $p req/s, beacon $b req/s"
  pix+=("$p"); bea+=("$b")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
P=$(med "${pix[@]}"); B=$(med "${bea[@]}")
echo "median: pixel $P req/s, beacon $B req/s, beacon/pixel $(awk -v b="$B" -v p="$P" 'BEGIN {printf "%.2f", b/p}')"
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -E '^openclick_web_requests_total\{route="beacon",outcome="tracked"\}|^openclick_hits_total\{route="open",outcome="tracked"\}' || true
