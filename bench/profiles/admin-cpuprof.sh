#!/bin/bash
# Where the admin side's time goes at full load: the sites of bench/admin.sh (GET /index.html) with the admin listener,
# /metrics scraped every second, the `series` feed and the live access log open, under `node --cpu-prof` for a 10 s
# wrk load after a 3 s warm-up; then bench/profiles/cpuprofile-top.mjs, from the first request on, and the admin's
# own frames (src/admin/) picked out of the self-time table. bench/README.md, "Metrics and live feed benchmark".
#   usage: bench/profiles/admin-cpuprof.sh [on|off]     env: DUR (10 s)  CONNS (50)
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
mode=${1:-on}; DUR=${DUR:-10}; CONNS=${CONNS:-50}
OUT=$(mktemp -d /tmp/admin-prof.XXXX)
mkdir -p "$OUT/www" "$OUT/data" "$OUT/prof"
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"
port=18960; admin=18961
admin_cfg=""; [ "$mode" = on ] && admin_cfg=",\"admin\":{\"host\":\"127.0.0.1\",\"port\":$admin}"
echo "{\"listen\":[{\"host\":\"127.0.0.1\",\"port\":$port}],\"dataDir\":\"$OUT/data\"$admin_cfg,\"sites\":[{\"routes\":[{\"path\":\"/\",\"static\":{\"root\":\"$OUT/www\"}}]}]}" > "$OUT/edgebox.json"
setsid taskset -c 0 node --cpu-prof --cpu-prof-dir="$OUT/prof" "$ROOT/bin/edgebox.js" --config "$OUT/edgebox.json" > "$OUT/server.log" 2>&1 &
srv=$!
feeds=()
trap 'kill "${feeds[@]}" 2>/dev/null; kill -TERM $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT"' EXIT
for i in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.25; done
if [ "$mode" = on ]; then
  taskset -c 1 curl -sN "http://127.0.0.1:$admin/live/sse?ch=series" > /dev/null 2>&1 & feeds+=($!)
  taskset -c 1 curl -sN "http://127.0.0.1:$admin/api/v1/access-log" > /dev/null 2>&1 & feeds+=($!)
  taskset -c 1 bash -c "while :; do curl -s -o /dev/null 'http://127.0.0.1:$admin/metrics'; sleep 1; done" & feeds+=($!)
fi
taskset -c 1 wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$port/index.html" > /dev/null
taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$port/index.html" | grep -E 'Requests/sec'
kill "${feeds[@]}" 2>/dev/null || true
kill -TERM $srv; wait $srv 2>/dev/null || true
node "$BENCH/profiles/cpuprofile-top.mjs" "$OUT/prof" 400 parserOnIncoming > "$OUT/top.md"
head -1 "$OUT/top.md"
echo "the admin side's own frames (self time, share of the busy time):"
awk '/^self time/ { on = 1 } /^inclusive/ { on = 0 } on' "$OUT/top.md" | grep -E 'src/admin/|prom-client' | awk -F'|' '{ print; s += $2 } END { printf "sum of those rows: %.1f%%\n", s }' || true
echo "the access log's answer path, inclusive (finished, pipeline.ts):"
grep -E '`finished src/core/pipeline.ts' "$OUT/top.md" | tail -1
