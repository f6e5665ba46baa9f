#!/usr/bin/env bash
# The sending API's throughput (`serve --sending-listen`: POST /v1/sign, /v1/rewrite) against
# the CLI doing the same work in the same run (`sign --batch`, `rewrite --recipients`), counted
# per CPU-second of the process that does the work (the machine is shared: wall time is noise)
# and per wall-second with CLIENTS concurrent callers.
#
#   sign:    SIGN_REQS requests of SIGN_LINES NDJSON claims (1 open + 12 clicks per recipient,
#            90-byte destinations with a query string, like the batch-signing benchmark)
#   rewrite: REWRITE_REQS requests of REWRITE_RECIPIENTS recipients of
#            crates/rewrite/benches/typical.html (30 KB, 20 tracked links)
#
# Knobs: SIGN_REQS=20 SIGN_LINES=13000 REWRITE_REQS=4 REWRITE_RECIPIENTS=1000 CLIENTS=2
# CARGO_TARGET_DIR=target BUILD=1 (0: use the release binary as it is). Needs curl, python3 and
# /usr/bin/time. Builds the release binary.
set -euo pipefail
SIGN_REQS=${SIGN_REQS:-20}
SIGN_LINES=${SIGN_LINES:-13000}
REWRITE_REQS=${REWRITE_REQS:-4}
REWRITE_RECIPIENTS=${REWRITE_RECIPIENTS:-1000}
CLIENTS=${CLIENTS:-2}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/openclick
SECRET="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
TOKEN="bench-sending-token-0123456789"
PORT=18281 ADMIN_PORT=19291 SEND_PORT=19391

log() { printf '[sending %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ "${BUILD:-1}" = 1 ] && (cd "$REPO" && cargo build --release --locked -p openclick-cli >&2)
work=$(mktemp -d /tmp/openclick-sending.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# CPU seconds (user + system) of a process so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

python3 - "$work" "$SIGN_LINES" "$REWRITE_RECIPIENTS" "$REPO/crates/rewrite/benches/typical.html" "$SIGN_REQS" "$REWRITE_REQS" <<'PY'
import json, sys
work, lines, recipients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{work}/sign.ndjson", "w") as f:
    for i in range(lines):
        r, k = divmod(i, 13)
        c = dict(tenant_id="acme", campaign_id="autumn-2026", message_id=f"m-{r}",
                 contact_id=f"contact-{r:08d}", issued_at_ms=1717000000000)
        if k == 0:
            c["kind"] = "open"
        else:
            c.update(kind="click", link_id=f"l{k}",
                     url=f"https://shop.example.com/collections/autumn/item-{k:03d}?utm_source=newsletter&utm_medium=email&r={r}")
        f.write(json.dumps(c) + "\n")
html = open(sys.argv[4]).read()
rec = [dict(contact_id=f"contact-{i:08d}", message_id=f"m-{i}") for i in range(recipients)]
json.dump(dict(campaign_id="autumn-2026", html=html, recipients=rec, sent_at_ms=1717000000000),
          open(f"{work}/rewrite.json", "w"))
# The CLI baseline does the work of all the API requests in one run.
reqs_sign, reqs_rewrite = int(sys.argv[5]), int(sys.argv[6])
with open(f"{work}/sign-all.ndjson", "w") as f:
    body = open(f"{work}/sign.ndjson").read()
    for _ in range(reqs_sign):
        f.write(body)
with open(f"{work}/recipients.csv", "w") as f:
    f.write("contact,message\n")
    for _ in range(reqs_rewrite):
        for r in rec:
            f.write(f"{r['contact_id']},{r['message_id']}\n")
PY
cp "$REPO/crates/rewrite/benches/typical.html" "$work/typical.html"
printf 'acme/a1:%s\n' "$SECRET" > "$work/keys"
printf 'a1:%s\n' "$SECRET" > "$work/sender-keys"
printf 'acme:%s\n' "$TOKEN" > "$work/tokens"
chmod 600 "$work"/keys "$work"/sender-keys "$work"/tokens

"$BIN" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN_PORT \
    --sending-listen 127.0.0.1:$SEND_PORT --sending-tokens-file "$work/tokens" \
    --sending-base-url https://t.example.com --keys-file "$work/keys" \
    --data-dir "$work/data" --log warn 2> "$work/serve.log" &
pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

# `calls ROUTE BODY N`: N POSTs, split over CLIENTS concurrent curl loops; fails on a non-200.
calls() {
    local route=$1 body=$2 n=$3 pids=()
    for c in $(seq "$CLIENTS"); do
        (
            for _ in $(seq $(( (n + CLIENTS - c) / CLIENTS ))); do
                code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
                    --data-binary "@$body" "http://127.0.0.1:$SEND_PORT$route")
                [ "$code" = 200 ] || { echo "HTTP $code on $route" >&2; exit 1; }
            done
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
}

# `measure NAME UNITS ROUTE BODY N`
measure() {
    local name=$1 units=$2 route=$3 body=$4 n=$5
    local c0 t0 c1 t1
    c0=$(cpu "$pid"); t0=$(date +%s.%N)
    calls "$route" "$body" "$n"
    c1=$(cpu "$pid"); t1=$(date +%s.%N)
    python3 -c "
u=$units*$n; c=$c1-$c0; w=$t1-$t0
print(f'$name: {u} units in {w:.2f} s wall, {c:.2f} CPU-s: {u/w:,.0f}/s wall, {u/c:,.0f} per CPU-second')"
}

# `cli NAME UNITS CMD...`: the CLI doing the same work once, its CPU time from /usr/bin/time.
cli() {
    local name=$1 units=$2; shift 2
    local t
    /usr/bin/time -o "$work/time" -f '%U %S %e' "$@" < "${STDIN:-/dev/null}" > /dev/null 2>/dev/null
    t=$(tail -1 "$work/time")
    python3 -c "
u,s,e=map(float,'$t'.split()); n=$units
print(f'$name: {n} units in {e:.2f} s wall, {u+s:.2f} CPU-s: {n/(u+s):,.0f} per CPU-second')"
}

log "sign: $SIGN_REQS requests x $SIGN_LINES lines, $CLIENTS clients"
measure "api  sign (URLs)" "$SIGN_LINES" "/v1/sign" "$work/sign.ndjson" "$SIGN_REQS"
STDIN="$work/sign-all.ndjson" cli "cli  sign --batch (URLs)" "$(( SIGN_LINES * SIGN_REQS ))" "$BIN" sign --batch \
    --keys-file "$work/sender-keys" --base-url https://t.example.com --data-dir "$work/cli"
log "rewrite: $REWRITE_REQS requests x $REWRITE_RECIPIENTS recipients"
measure "api  rewrite (recipients)" "$REWRITE_RECIPIENTS" "/v1/rewrite" "$work/rewrite.json" "$REWRITE_REQS"
cli "cli  rewrite --recipients (recipients)" "$(( REWRITE_RECIPIENTS * REWRITE_REQS ))" "$BIN" rewrite \
    --keys-file "$work/sender-keys" --base-url https://t.example.com --tenant acme \
    --campaign autumn-2026 --sent-at-ms 1717000000000 --input "$work/typical.html" \
    --recipients "$work/recipients.csv" --data-dir "$work/cli"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^openclick_sending' >&2 || true
