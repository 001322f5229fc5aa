#!/usr/bin/env bash
# Edgebox's metrics and live feed benchmark (`npm run bench:admin`). See bench/README.md, "Metrics and live feed benchmark".
#
# On loopback (127.0.0.1) only, the same Edgebox (the pinned Node) twice, with the same sites, in front of one origin
# (bench/servers/origin.mjs, its own core):
#     edgebox-on    an admin listener: the metrics (every answer counted in its route's slot, the one-second series),
#                   /metrics scraped every second, and the dashboard's live feed open: the admin hub's `series`
#                   channel over SSE (one sample a second) and the live access log (/api/v1/access-log, every answer)
#     edgebox-off   no admin listener: no metrics, no series, no feed
#   both: access log ON (the default) to a file, one site: / static (the 1 KiB index.html), /c/ proxy with cache to the origin
# 1. GET: GET /index.html (static, 1 KiB), wrk -t1 -c$CONNS, keep-alive
# 2. HIT: GET /c/obj (a cache hit: stored once, max-age=3600), wrk -t1 -c$CONNS
# Figure: requests per server CPU-second (lib.sh load_run). Target: edgebox-on / edgebox-off >= 0.95 for both, the
# median of per-round ratios.
# Servers pinned to core $SRV_CPU; wrk, the scraper and the feed readers to core $GEN_CPU. Installs nothing: wrk, curl.
#
# usage: bash bench/admin.sh [quick]
#   env: ROUNDS (5)  PASSES (1: lib.sh)  DUR (8 s measured)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s later)
#        CONNS (50)  SRV_CPU (0)  GEN_CPU (1)  MAX_SECONDS (900)  MIN_SRV_CPU (0.8)
#        ACCESS_FEED (1: the live access log is read during the run; 0: not)  SERIES_FEED (1)  SCRAPE (1: /metrics each second)
#   quick: ROUNDS=1 DUR=2 WARM=1 (a smoke run; no verdict)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-5}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; ORIGIN_CPU=${ORIGIN_CPU:-$GEN_CPU}
MAX_SECONDS=${MAX_SECONDS:-900}

bench_setup   # folders, the cleanup guard (every server in PID stopped at exit), the pinned Node (lib.sh)

for t in wrk taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing (bench/proxy.sh installs wrk: apt-get install wrk)"; exit 1; }; done
make_index_html   # lib.sh: the 1 KiB page

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18920-18923)
declare -A PORT=([origin]=18920 [edgebox-on]=18921 [edgebox-off]=18922)
ADMIN_PORT=18923
D="$RUN/admin"; rm -rf "$D"; mkdir -p "$D"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-bench-admin.XXXXXX"); on_exit 'rm -rf "$DATA"'
for p in "${PORT[@]}" "$ADMIN_PORT"; do port_busy "$p" && { log "port $p is already in use"; exit 1; }; done
site() {  # site PORT
  echo "{\"listen\":[{\"host\":\"127.0.0.1\",\"port\":$1}],\"dataDir\":\"$DATA/$1\",
 \"sites\":[{\"routes\":[{\"path\":\"/c/\",\"proxy\":{\"upstreams\":[\"http://127.0.0.1:${PORT[origin]}\"],\"stripPrefix\":true,\"cache\":true}},
                        {\"path\":\"/\",\"static\":{\"root\":\"$WWW\"}}]}]"
}
{ site "${PORT[edgebox-on]}"; echo ",\"admin\":{\"host\":\"127.0.0.1\",\"port\":$ADMIN_PORT}}"; } > "$D/on.json"
{ site "${PORT[edgebox-off]}"; echo "}"; } > "$D/off.json"
for n in origin edgebox-on edgebox-off; do : > "$RUN/$n.err"; done
SRV_CPU=$ORIGIN_CPU start_srv origin "$RUN/origin.out" node "$BENCH/servers/origin.mjs" "${PORT[origin]}" "$WWW/index.html"; PID[origin]=$SRV_PID
start_srv edgebox-on "$D/on-access.jsonl" node "$ROOT/bin/edgebox.js" --config "$D/on.json"; PID[edgebox-on]=$SRV_PID
start_srv edgebox-off "$D/off-access.jsonl" node "$ROOT/bin/edgebox.js" --config "$D/off.json"; PID[edgebox-off]=$SRV_PID
for n in origin edgebox-on edgebox-off; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done
wait_port "$ADMIN_PORT" || { log "edgebox-on's admin listener did not start"; cat "$RUN/edgebox-on.err" >&2; exit 1; }

# the dashboard's live feed and a Prometheus-like scraper, on the generator's core, for the whole run
ADMIN="http://127.0.0.1:$ADMIN_PORT"
SERIES_FEED=${SERIES_FEED:-1}; SCRAPE=${SCRAPE:-1}
: > "$D/feed-series.txt"
[ "$SERIES_FEED" = 1 ] && { setsid taskset -c "$GEN_CPU" curl -sN "$ADMIN/live/sse?ch=series" > "$D/feed-series.txt" 2>/dev/null & PID[feed-series]=$!; }
ACCESS_FEED=${ACCESS_FEED:-1}
[ "$ACCESS_FEED" = 1 ] && { setsid taskset -c "$GEN_CPU" curl -sN "$ADMIN/api/v1/access-log" > /dev/null 2>&1 & PID[feed-access]=$!; }
[ "$SCRAPE" = 1 ] && { setsid taskset -c "$GEN_CPU" bash -c "while :; do curl -s -o /dev/null '$ADMIN/metrics'; sleep 1; done" & PID[scraper]=$!; }

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/admin-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/admin-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox metrics and live feed benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# ROUNDS=$ROUNDS PASSES=$PASSES DUR=${DUR}s WARM=${WARM}s CONNS=$CONNS; servers pinned to core $SRV_CPU, wrk and the feed readers to core $GEN_CPU, origin to core $ORIGIN_CPU"
echo "# node $(node -v) ($(command -v node)), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores, $(uname -r)"
echo "# edgebox-on:  port ${PORT[edgebox-on]}, admin listener $ADMIN: metrics; scraped every second: $([ "$SCRAPE" = 1 ] && echo yes || echo no); live feed: $([ "$SERIES_FEED" = 1 ] && echo 'SSE series') $([ "$ACCESS_FEED" = 1 ] && echo '+ live access log')"
echo "# edgebox-off: port ${PORT[edgebox-off]}, no admin listener"
echo "# both: access log ON to a file; / static (1 KiB index.html), /c/ proxy + cache to bench/servers/origin.mjs (port ${PORT[origin]})"

# ---------------------------------------------------------------------------------------------------------------
# checks
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
chk() {  # chk LABEL GOT WANT
  printf '%-62s %s\n' "$1" "$2"
  [[ "$2" == $3* ]] || CHECK_FAIL+=("$1: got '$2', want '$3'")
}
get() { curl -s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}' "$@"; }
for n in edgebox-on edgebox-off; do
  chk "$n: GET /index.html" "$(get "http://127.0.0.1:${PORT[$n]}/index.html")" "200 1024"
  get "http://127.0.0.1:${PORT[$n]}/c/obj" > /dev/null   # stores it
  chk "$n: GET /c/obj again: a hit" "$(curl -s -o /dev/null -D - --max-time 10 "http://127.0.0.1:${PORT[$n]}/c/obj" | tr -d '\r' | grep -i '^cache-status:' | grep -o 'hit' | head -1)" hit
done
sleep 1.5
chk "edgebox-on: /metrics counts the checks' requests" "$(curl -s --max-time 10 "$ADMIN/metrics" | grep -c '^edgebox_http_requests_total{')" ""
[ "$SERIES_FEED" = 1 ] && chk "edgebox-on: the live feed got a series sample" "$(grep -c '"requests"' "$D/feed-series.txt" | awk '{ print ($1 > 0) ? "yes" : "no" }')" yes
chk "edgebox-off: /metrics is not on a site's listener" "$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "http://127.0.0.1:${PORT[edgebox-off]}/metrics")" 404
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# GET and HIT through load_run (lib.sh)
SET=(edgebox-on edgebox-off)
echo "## load runs (wrk -t1 -c$CONNS, ${DUR}s measured after a warm-up; GET = /index.html static, HIT = /c/obj from the cache)"
get_hit_rounds "${SET[@]}"
echo "live feed lines received during the run: series $(grep -c '"requests"' "$D/feed-series.txt")"

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); req/srv-cpu-s = requests/s divided by the share of core $SRV_CPU the server used"
for t in GET HIT; do
  echo "### $t ${GET_HIT_PATHS[$t]}; 'x edgebox-off' = median of per-round ratios of req/srv-cpu-s (of req/s in brackets)"
  summary_table "$t" edgebox-off req/s "${SET[@]}"
done
echo
echo "## targets (per server CPU-second)"
verdict_gate
for t in GET HIT; do
  target_line "$(printf '%-4s edgebox-on / edgebox-off requests per server-CPU-second' "$t")" FIG_R "$t" edgebox-on edgebox-off '>=' 0.95 \
    "[metrics$([ "$SCRAPE" = 1 ] && echo ', /metrics scraped each second')$([ "$SERIES_FEED" = 1 ] && echo ', the series feed')$([ "$ACCESS_FEED" = 1 ] && echo ', the live access log')] vs [no admin listener]"
  info_line "$t edgebox-on / edgebox-off, req/s" RATE_R "$t" edgebox-on edgebox-off
done
if [ ${#PROBLEMS[@]} -gt 0 ]; then echo "## problems"; for p in "${PROBLEMS[@]}"; do echo "- $p"; done; fi
mv "$OUT.tmp" "$OUT"
