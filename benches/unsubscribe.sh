#!/usr/bin/env bash
# One-click unsubscribe latency: POST /u/TOKEN (body List-Unsubscribe=One-Click), from the
# request to the 200, which openclick sends only once the suppressions topic has acknowledged
# the opt-out (or it was spooled: the run fails if any was). N sequential POSTs, each for a
# new contact, on one keep-alive-less curl per request (loopback connect included, ~0.1 ms).
#
#   benches/unsubscribe.sh [embedded|tansu] [N]      (default: both, N=500)
#
# embedded: `serve` on its in-process broker (librdkafka's mock cluster).
# tansu:    `serve --kafka-brokers` a tansu broker started here (memory storage, loopback), as
#           .ci/run starts it. Needs `tansu` on PATH (cargo install tansu --locked --features dynostore).
# Prints p50/p90/p99/max in milliseconds. Release build: cargo build --release -p openclick-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
MODES=${1:-"embedded tansu"}
N=${2:-500}
BIN=${OPENCLICK_BIN:-${CARGO_TARGET_DIR:-target}/release/openclick}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p openclick-cli ($BIN)" >&2; exit 1; }
KEYS="k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_mode() {
  local mode=$1 extra=() port admin
  if [ "$mode" = tansu ]; then
    command -v tansu >/dev/null || { echo "tansu: not installed, skipped" >&2; return 0; }
    local tp; tp=$(free_port)
    tansu broker --listener-url "tcp://127.0.0.1:$tp" --advertised-listener-url "tcp://127.0.0.1:$tp" \
      --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$tp") 2>/dev/null && break; sleep 0.1; done
    for t in openclick.events.v1 openclick.suppressions.v1 openclick.erasures.v1; do
      tansu topic create "$t" --broker "tcp://127.0.0.1:$tp" --partitions 3 >/dev/null 2>&1 || true
    done
    extra=(--kafka-brokers "127.0.0.1:$tp")
  fi
  port=$(free_port); admin=$(free_port)
  "$BIN" --log warn serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --keys "$KEYS" --data-dir "$work/$mode" "${extra[@]}" >"$work/$mode.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$admin/readyz")" = 200 ] && break
    sleep 0.1
  done
  # Sign N tokens up front (not timed).
  for i in $(seq 1 "$N"); do
    "$BIN" sign unsubscribe --keys "$KEYS" --tenant bench --contact "c-$mode-$i" \
      --base-url "http://127.0.0.1:$port" 2>/dev/null | head -n 1
  done >"$work/urls"
  # Warm up (one POST, not counted).
  curl -s -o /dev/null -X POST --data 'List-Unsubscribe=One-Click' "$(head -n 1 "$work/urls")"
  tail -n +2 "$work/urls" | while read -r url; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
      -H 'Content-Type: application/x-www-form-urlencoded' --data 'List-Unsubscribe=One-Click' "$url"
  done >"$work/times"
  local spooled
  spooled=$(curl -s "127.0.0.1:$admin/metrics" | awk '/^openclick_unsubscribe_spooled_total/ {print $2}')
  python3 - "$mode" "$work/times" "$spooled" <<'EOF'
import sys
mode, path, spooled = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.split() for l in open(path)]
bad = [r for r in rows if r[0] != "200"]
ms = sorted(float(r[1]) * 1000 for r in rows)
q = lambda p: ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]
print(f"{mode}: n={len(ms)} non-200={len(bad)} spooled={spooled} "
      f"p50={q(50):.2f} ms p90={q(90):.2f} ms p99={q(99):.2f} ms max={ms[-1]:.2f} ms")
if bad or spooled not in ("0", ""):
    sys.exit(f"{mode}: {len(bad)} requests not 200, {spooled} spooled: not a clean run")
EOF
}

for m in $MODES; do run_mode "$m"; done
