#!/bin/bash
# Instructions (Ir) per answer, Edgebox with its admin listener (the metrics, /metrics scraped every second, the
# dashboard's live feed open: the `series` channel and the live access log) against the same Edgebox without one,
# with callgrind: repeatable whatever else the machine does, where per-CPU-second figures are not (bench/README.md,
# "Metrics and live feed benchmark"). The server runs under valgrind with instrumentation off; a warm-up load (JIT)
# first, then instrumentation on for a measured load and off again; the figure is per answer wrk counted, with the
# optimizing compilers and the garbage collector shown apart (cg-net.awk) as they land differently each run.
# Under valgrind a server answers a few hundred requests a second, so what the admin listener does once a second (the
# series' sample and its publish, a scrape) would weigh far more per answer than at full speed: `idle` measures that
# part alone (the same server, the feeds and the scraper, no load) as Ir per second, and the figure per answer at a
# real rate is (on - idle x seconds) / answers + idle per second / the real rate (bench/README.md shows the sums).
# `metrics` is `on` without the feeds and the scraper: what counting alone costs; `series` is `on` without the live
# access log (the overview's live feed and the scraper; the live access log is the Traffic page's).
#   usage: bench/profiles/admin-callgrind.sh on|off|idle|metrics|series GET|HIT
#   env: WARM_N (20000 requests of warm-up)  N (10000 measured)  DUR (30 s: idle's measured time)  CONNS (2)
#        NODEFLAGS (--single-threaded)
# The loads are counted, not timed (h2load --h1 -n), so every run warms up and measures the same number of answers
# whatever else the machine does; the measured run's seconds are printed for the per-second part.
# The sites of bench/admin.sh: GET /index.html (static, 1 KiB), HIT /c/obj (a cache hit, stored before the load).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
mode=${1:?usage: admin-callgrind.sh on|off GET|HIT}; test=${2:?usage: admin-callgrind.sh on|off GET|HIT}
WARM_N=${WARM_N:-20000}; N=${N:-10000}; DUR=${DUR:-30}; CONNS=${CONNS:-2}; NODEFLAGS=${NODEFLAGS:---single-threaded}
OUT=$(mktemp -d /tmp/admin-cg.XXXX)
mkdir -p "$OUT/www" "$OUT/data"
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"
port=18930; admin=18931; origin=18932
admin_cfg=""; [ "$mode" != off ] && admin_cfg=",\"admin\":{\"host\":\"127.0.0.1\",\"port\":$admin}"
cat > "$OUT/edgebox.json" <<JSON
{"listen":[{"host":"127.0.0.1","port":$port}],"dataDir":"$OUT/data"$admin_cfg,
 "sites":[{"routes":[{"path":"/c/","proxy":{"upstreams":["http://127.0.0.1:$origin"],"stripPrefix":true,"cache":true}},
                     {"path":"/","static":{"root":"$OUT/www"}}]}]}
JSON
case $test in GET) path=/index.html ;; HIT) path=/c/obj ;; *) echo "TEST is GET or HIT" >&2; exit 2 ;; esac
node "$BENCH/servers/origin.mjs" "$origin" "$OUT/www/index.html" >/dev/null 2>&1 &
orig=$!
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" node $NODEFLAGS "$ROOT/bin/edgebox.js" --config "$OUT/edgebox.json" >"$OUT/server.log" 2>&1 &
vg=$!
feeds=()
trap 'kill $vg $orig "${feeds[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT/www" "$OUT/data"' EXIT
for i in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.5; done
curl -s -o /dev/null "http://127.0.0.1:$port$path"
if [ "$mode" = on ] || [ "$mode" = idle ] || [ "$mode" = series ]; then
  curl -sN "http://127.0.0.1:$admin/live/sse?ch=series" > "$OUT/series.txt" 2>/dev/null & feeds+=($!)
  [ "$mode" != series ] && { curl -sN "http://127.0.0.1:$admin/api/v1/access-log" > /dev/null 2>&1 & feeds+=($!); }
  bash -c "while :; do curl -s -o /dev/null 'http://127.0.0.1:$admin/metrics'; sleep 1; done" & feeds+=($!)
fi
h2load --h1 -t1 -c"$CONNS" -n"$WARM_N" "http://127.0.0.1:$port$path" >/dev/null
callgrind_control -i on "$vg" >/dev/null
t0=$(date +%s.%N)
if [ "$mode" = idle ]; then sleep "$DUR"; n=$DUR
else n=$(h2load --h1 -t1 -c"$CONNS" -n"$N" "http://127.0.0.1:$port$path" | awk '/^requests:/ { for (i = 2; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i }'); fi
t1=$(date +%s.%N)
callgrind_control -i off "$vg" >/dev/null
echo "measured for $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" >&2
[ "$mode" = on ] || [ "$mode" = idle ] || [ "$mode" = series ] && echo "live feed: $(grep -c '"requests"' "$OUT/series.txt") series samples received" >&2
kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
callgrind_annotate --inclusive=yes --threshold=100 "$OUT"/cg.out* 2>/dev/null | awk -v ok="$n" -v d="$mode $test ($n $([ "$mode" = idle ] && echo 'seconds: the figures are per second' || echo answers))" -f "$BENCH/profiles/cg-net.awk"
