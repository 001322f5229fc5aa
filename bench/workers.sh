#!/usr/bin/env bash
# Edgebox's workers benchmark (`npm run bench:workers`). See bench/README.md, "Workers benchmark".
#
# On loopback (127.0.0.1) only, the same Edgebox (the pinned Node) twice, with the same sites, in front of one origin
# (bench/servers/origin.mjs, on the generator's core):
#     edgebox-w2    workers: 2 (a cluster primary and two workers accepting from one listening socket)
#     edgebox-w1    workers: 1 (one process)
#   both: access log ON (the default) to a file, one site: / static (the 1 KiB index.html), /c/ proxy with cache to the origin
# 1. GET: GET /index.html (static, 1 KiB), wrk -t1 -c$CONNS, keep-alive
# 2. HIT: GET /c/obj (a cache hit: stored once per worker, max-age=3600), wrk -t1 -c$CONNS
# Figure: requests per server CPU-second (lib.sh load_run), the server's CPU being every process of its group: the
# primary and both workers. Target: edgebox-w2 / edgebox-w1 >= 0.9 for both (no efficiency lost to sharing), the
# median of per-round ratios. Both servers pinned to core $SRV_CPU, so the figure is per CPU-second, not throughput
# (this machine has two cores: docs/deploy.md projects throughput per core).
#
# usage: bash bench/workers.sh [quick]
#   env: ROUNDS (9: the per-round ratios spread widely on a shared machine; nine rounds give a steady median)  PASSES (1: lib.sh)  DUR (8 s measured)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s later)
#        CONNS (50)  SRV_CPU (0)  GEN_CPU (1)  MAX_SECONDS (900)  MIN_SRV_CPU (0.8)
#   quick: ROUNDS=1 DUR=2 WARM=1 (a smoke run; no verdict)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-9}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; ORIGIN_CPU=${ORIGIN_CPU:-$GEN_CPU}
MAX_SECONDS=${MAX_SECONDS:-900}

bench_setup   # folders, the cleanup guard (every server in PID stopped at exit), the pinned Node (lib.sh)

for t in wrk taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing (bench/proxy.sh installs wrk: apt-get install wrk)"; exit 1; }; done
make_index_html   # lib.sh: the 1 KiB page

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18930-18932)
declare -A PORT=([origin]=18930 [edgebox-w2]=18931 [edgebox-w1]=18932)
D="$RUN/workers"; rm -rf "$D"; mkdir -p "$D"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-bench-workers.XXXXXX"); on_exit 'rm -rf "$DATA"'
for p in "${PORT[@]}"; do port_busy "$p" && { log "port $p is already in use"; exit 1; }; done
site() {  # site PORT WORKERS
  echo "{\"workers\":$2,\"listen\":[{\"host\":\"127.0.0.1\",\"port\":$1}],\"dataDir\":\"$DATA/$1\",
 \"sites\":[{\"routes\":[{\"path\":\"/c/\",\"proxy\":{\"upstreams\":[\"http://127.0.0.1:${PORT[origin]}\"],\"stripPrefix\":true,\"cache\":true}},
                        {\"path\":\"/\",\"static\":{\"root\":\"$WWW\"}}]}]}"
}
site "${PORT[edgebox-w2]}" 2 > "$D/w2.json"
site "${PORT[edgebox-w1]}" 1 > "$D/w1.json"
for n in origin edgebox-w2 edgebox-w1; do : > "$RUN/$n.err"; done
SRV_CPU=$ORIGIN_CPU start_srv origin "$RUN/origin.out" node "$BENCH/servers/origin.mjs" "${PORT[origin]}" "$WWW/index.html"; PID[origin]=$SRV_PID
start_srv edgebox-w2 "$D/w2-access.jsonl" node "$ROOT/bin/edgebox.js" --config "$D/w2.json"; PID[edgebox-w2]=$SRV_PID
start_srv edgebox-w1 "$D/w1-access.jsonl" node "$ROOT/bin/edgebox.js" --config "$D/w1.json"; PID[edgebox-w1]=$SRV_PID
for n in origin edgebox-w2 edgebox-w1; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/workers-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/workers-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox workers benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# ROUNDS=$ROUNDS PASSES=$PASSES DUR=${DUR}s WARM=${WARM}s CONNS=$CONNS; servers pinned to core $SRV_CPU, wrk to core $GEN_CPU, origin to core $ORIGIN_CPU"
echo "# node $(node -v) ($(command -v node)), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores, $(uname -r)"
echo "# edgebox-w2: port ${PORT[edgebox-w2]}, workers: 2 (server CPU = the primary + both workers)"
echo "# edgebox-w1: port ${PORT[edgebox-w1]}, workers: 1"
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
for n in edgebox-w2 edgebox-w1; do
  chk "$n: GET /index.html" "$(get "http://127.0.0.1:${PORT[$n]}/index.html")" "200 1024"
  # each worker stores its own copy: ask until both have it
  for i in $(seq 1 20); do get "http://127.0.0.1:${PORT[$n]}/c/obj" > /dev/null; done
  chk "$n: GET /c/obj again: a hit" "$(curl -s -o /dev/null -D - --max-time 10 "http://127.0.0.1:${PORT[$n]}/c/obj" | tr -d '\r' | grep -i '^cache-status:' | grep -o 'hit' | head -1)" hit
done
chk "edgebox-w2: processes in its group (the primary and two workers)" "$(ps -o pid= -g "${PID[edgebox-w2]}" | wc -l | tr -d ' ')" 3
workers_seen() { local i; for i in $(seq 1 60); do curl -s --max-time 5 "http://127.0.0.1:${PORT[edgebox-w2]}/_edgebox/health"; echo; done | grep -o '"worker":[0-9]*' | sort -u | tr '\n' ' '; }
chk "edgebox-w2: both workers answer" "$(workers_seen)" '"worker":1 "worker":2'
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# GET and HIT through load_run (lib.sh)
SET=(edgebox-w2 edgebox-w1)
echo "## load runs (wrk -t1 -c$CONNS, ${DUR}s measured after a warm-up; GET = /index.html static, HIT = /c/obj from the cache)"
get_hit_rounds "${SET[@]}"

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); req/srv-cpu-s = requests/s divided by the share of core $SRV_CPU the server used"
for t in GET HIT; do
  echo "### $t ${GET_HIT_PATHS[$t]}; 'x edgebox-w1' = median of per-round ratios of req/srv-cpu-s (of req/s in brackets)"
  summary_table "$t" edgebox-w1 req/s "${SET[@]}"
done
echo
echo "## targets (per server CPU-second)"
verdict_gate
for t in GET HIT; do
  target_line "$(printf '%-4s edgebox-w2 / edgebox-w1 requests per server-CPU-second' "$t")" FIG_R "$t" edgebox-w2 edgebox-w1 '>=' 0.9 \
    "[workers: 2, the primary's CPU counted] vs [workers: 1], both on core $SRV_CPU"
  info_line "$t edgebox-w2 / edgebox-w1, req/s" RATE_R "$t" edgebox-w2 edgebox-w1
done
if [ ${#PROBLEMS[@]} -gt 0 ]; then echo "## problems"; for p in "${PROBLEMS[@]}"; do echo "- $p"; done; fi
mv "$OUT.tmp" "$OUT"
