#!/usr/bin/env bash
# Edgebox real-user monitoring benchmark (`npm run bench:rum`). See bench/README.md, "Real-user monitoring benchmark".
#
# On loopback (127.0.0.1) only, two servers, both on the pinned Node:
#     edgebox    one site with "rum": true (the collector's defaults: 120 beacons a minute per client network, a queue
#                written every 100 ms or 100 rows in one transaction each, node:sqlite in <dataDir>/rum/rum.sqlite,
#                WAL, synchronous=NORMAL), access log ON (the default), a fresh temporary dataDir, and
#                "trustedProxies": ["127.0.0.1/32"] so the load can name its clients in X-Forwarded-For
#     rum-bare   bench/servers/rum-bare.mjs: node:http, JSON.parse, a minimal check, the same rows into the same schema
#                with the same durability (WAL, synchronous=NORMAL, one transaction per 100 rows or 100 ms), 204
# 1. ING: POST /_edgebox/rum/batch with one batch of 10 events (bench/servers/rum-tool.mjs body), wrk -t1 -c$CONNS on
#    keep-alive connections with bench/servers/rum-wrk.lua: every request names another client (X-Forwarded-For
#    10.a.b.c, round-robin over 65,536 addresses), so every client stays far below the rate limit and every beacon
#    must be stored. Figure: beacons per server CPU-second (lib.sh load_run). Target (the issue): edgebox / rum-bare
#    >= 0.7, the median of per-round ratios.
#    No beacon lost: after the load both servers are stopped (each writes its queue on TERM) and the rows in each
#    rum.sqlite are counted: they must be 10 x the 204 answers (wrk's, checks' included). wrk stops with up to CONNS
#    requests in flight whose answers it never reads (the server may have stored them): rows - 10 x 204s must be a
#    multiple of 10 between 0 and 10 x the requests wrk wrote but saw no answer to (rum-wrk.lua counts both).
# 2. QUERY: a fresh rum.sqlite filled with QUERY_ROWS (1,000,000) LCP vitals over 200 pages by SqliteRumStore.insert
#    in batches of 10,000; store.percentiles({ metric: 'LCP', by: 'page', since: 0, until: MAX_SAFE_INTEGER }) beside
#    the store's own SQL (its prepared statement's sourceSQL) run directly with node:sqlite, QUERY_REPS (5) of each,
#    interleaved, medians. Reported, no target.
# Servers pinned to core $SRV_CPU; wrk and the helpers to core $GEN_CPU. Installs nothing: wrk, and the repository's
# node_modules (the pinned Node 24).
#
# usage: bash bench/rum.sh [quick]
#   env: ROUNDS (3)  PASSES (1: lib.sh)  DUR (8 s measured)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s later)
#        CONNS (50)  QUERY_ROWS (1000000)  QUERY_REPS (5)  SRV_CPU (0)  GEN_CPU (1)  EDGEBOX_STDOUT=file|null
#        MAX_SECONDS (900)  MIN_SRV_CPU (0.8)  ING_MIN_SRV_CPU (0.6: the floor of a counted ING run; both servers wait for the disk)
#   quick: ROUNDS=1 DUR=2 WARM=1 QUERY_ROWS=100000 QUERY_REPS=3 (a smoke run; no verdict)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1} QUERY_ROWS=${QUERY_ROWS:-100000} QUERY_REPS=${QUERY_REPS:-3}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}; QUERY_ROWS=${QUERY_ROWS:-1000000}; QUERY_REPS=${QUERY_REPS:-5}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}
MAX_SECONDS=${MAX_SECONDS:-900}; EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}
# the floor of a counted ING run: both servers wait for the disk as well as the CPU (each transaction's WAL write,
# the checkpoints' fsync), rum-bare most, whose share of its core stays 0.6-0.8 with wrk at 0.2 of its own: the disk,
# not another job, is what it waits for, and the per-CPU-second figure already leaves that time out
ING_MIN_SRV_CPU=${ING_MIN_SRV_CPU:-0.6}

bench_setup   # folders, the cleanup guard (every server in PID stopped at exit), the pinned Node (lib.sh)

for t in wrk taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing (bench/proxy.sh installs wrk: apt-get install wrk)"; exit 1; }; done
make_index_html   # lib.sh: the 1 KiB page the site serves besides the collector

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18910-18911)
declare -A PORT=([edgebox]=18910 [rum-bare]=18911)
declare -A URL=([edgebox]="http://127.0.0.1:${PORT[edgebox]}/_edgebox/rum/batch" [rum-bare]="http://127.0.0.1:${PORT[rum-bare]}/_edgebox/rum/batch")
D="$RUN/rum"; rm -rf "$D"; mkdir -p "$D"
# the data folders: Edgebox refuses one inside its package folder (npm replaces it), so temporary ones
DATA=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-bench-rum.XXXXXX"); on_exit 'rm -rf "$DATA"'
mkdir -p "$DATA/edgebox" "$DATA/bare" "$DATA/query"
declare -A DB=([edgebox]="$DATA/edgebox/rum/rum.sqlite" [rum-bare]="$DATA/bare/rum.sqlite")
EB_LOG="$RUN/rum-edgebox-access.jsonl"; [ "$EDGEBOX_STDOUT" = null ] && EB_LOG=/dev/null
for n in edgebox rum-bare; do port_busy "${PORT[$n]}" && { log "port ${PORT[$n]} (for $n) is already in use"; exit 1; }; done

node "$BENCH/servers/rum-tool.mjs" body > "$D/batch.json" || { log "rum-tool.mjs body failed"; exit 1; }
cat > "$D/edgebox.json" <<EOF
{"listen":[{"host":"127.0.0.1","port":${PORT[edgebox]}}],"dataDir":"$DATA/edgebox","trustedProxies":["127.0.0.1/32"],
 "sites":[{"rum":true,"routes":[{"path":"/","static":{"root":"$WWW"}}]}]}
EOF
[ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
: > "$RUN/edgebox.err"; : > "$RUN/rum-bare.err"
start_srv edgebox "$EB_LOG" node "$ROOT/bin/edgebox.js" --config "$D/edgebox.json"; PID[edgebox]=$SRV_PID
start_srv rum-bare /dev/null node "$BENCH/servers/rum-bare.mjs" "${PORT[rum-bare]}" "${DB[rum-bare]}"; PID[rum-bare]=$SRV_PID
for n in edgebox rum-bare; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/rum-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/rum-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox real-user monitoring benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# ROUNDS=$ROUNDS PASSES=$PASSES DUR=${DUR}s WARM=${WARM}s CONNS=$CONNS QUERY_ROWS=$QUERY_ROWS QUERY_REPS=$QUERY_REPS; servers pinned to core $SRV_CPU, wrk and the helpers to core $GEN_CPU"
echo "# node $(node -v) ($(command -v node)), SQLite $(node -e 'const{DatabaseSync}=require("node:sqlite");console.log(new DatabaseSync(":memory:").prepare("select sqlite_version() v").get().v)'), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores, $(uname -r)"
echo "# beacon: POST /_edgebox/rum/batch, $(wc -c < "$D/batch.json") bytes of JSON, 10 events (nav, 5 vitals, 2 resource, 2 api), Content-Type: application/json,"
echo "#   X-Forwarded-For: 10.a.b.c round-robin over 65,536 clients (bench/servers/rum-wrk.lua), keep-alive"
echo "# edgebox: port ${PORT[edgebox]}, one site with \"rum\": true (collector defaults), access log ON (stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "bench/.peers/run/$(basename "$EB_LOG")")),"
echo "#   trustedProxies [127.0.0.1/32], a fresh temporary dataDir: <dataDir>/rum/rum.sqlite (WAL, synchronous=NORMAL)"
echo "# rum-bare: bench/servers/rum-bare.mjs on port ${PORT[rum-bare]}: node:http + JSON.parse + a minimal check, the same table and"
echo "#   indexes, WAL, synchronous=NORMAL, one transaction per 100 rows or 100 ms"

# ---------------------------------------------------------------------------------------------------------------
# checks
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
declare -A OK204=([edgebox]=0 [rum-bare]=0)
post() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' -H 'Content-Type: application/json' "$@"; }
chk() {  # chk LABEL GOT WANT
  printf '%-62s %s\n' "$1" "$2"
  [[ "$2" == $3* ]] || CHECK_FAIL+=("$1: got '$2', want '$3'")
}
for n in edgebox rum-bare; do
  s=$(post -H 'X-Forwarded-For: 198.51.100.7' --data-binary @"$D/batch.json" "${URL[$n]}"); chk "$n: POST the batch" "$s" 204
  [ "$s" = 204 ] && OK204[$n]=$(( ${OK204[$n]} + 1 ))
  chk "$n: POST a batch with \"v\": 2" "$(post --data-binary '{"v":2,"pv":"x","page":"/","events":[]}' "${URL[$n]}")" 400
done
chk "edgebox: GET / (the site's page)" "$(curl -s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}' "http://127.0.0.1:${PORT[edgebox]}/")" "200 1024"
# the limit is on: 125 beacons from one client, one after the other: 120 answered 204 and the rest 429 (the
# bucket refills 2 a second: one or two more may pass)
b=$(timeout 60 taskset -c "$GEN_CPU" node "$BENCH/servers/rum-tool.mjs" burst "${URL[edgebox]}" 125 192.0.2.1 2>"$D/burst.err")
b204=$(jnum "$(sed 's/"status":{//' <<< "$b")" 204); b429=$(jnum "$(sed 's/"status":{//' <<< "$b")" 429)
chk "edgebox: 125 beacons from one client (192.0.2.1): 204 / 429" "$b204 / $b429" "$( [ "$b204" -ge 120 ] && [ "$b204" -le 123 ] && [ $((b204 + b429)) = 125 ] && echo "$b204 / $b429" || echo "120 / 5")"
OK204[edgebox]=$(( ${OK204[edgebox]} + ${b204:-0} ))
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# ING: wrk -t1 -c$CONNS -s rum-wrk.lua on core $GEN_CPU through load_run (lib.sh); every wrk run (warm-ups too)
# appends "answered non2xx sent" to the server's tally file
wrk_run() {  # wrk_run TEST ROUND NAME
  local test=$1 r=$2 n=$3 loglines="" warn="" cmd
  cmd=(env RUM_BODY="$D/batch.json" RUM_TALLY="$D/tally-$n" wrk -t1 -c"$CONNS" -d@DUR@s -s "$BENCH/servers/rum-wrk.lua" "${URL[$n]}")
  warm_up "$(warm_s "$r")" "${cmd[@]}"
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
  load_run -k wrk -m "$ING_MIN_SRV_CPU" -p "${PID[$n]}" -o "$D/wrk.out" -- "${cmd[@]}"
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && { sleep 1.2; loglines=" access_log_lines=$(wc -l < "$EB_LOG")"; }
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn=" (wrk near the limit of core $GEN_CPU)"
  printf '%-3s round%s %-8s %s%s%s\n' "$test" "$r" "$n" "$LR_LINE" "$loglines" "$warn"
  [ -n "$LR_DROP" ] && sed 's/^/    wrk: /' "$D/wrk.out" | grep -iE 'error|non-2xx|unable' | head -5
  [ -n "$LR_RATE" ] && [ "$LR_COUNT" != 0 ] && [ "$LR_ERRORS" = 0 ] && [ "$LR_SOCK_ERRORS" = 0 ] && ANY_R[$test,$n,$r]+="$LR_PER_CPU "
  keep_run "$test" "$n" "$r"
}
declare -A ANY_R=()
SET=(edgebox rum-bare)
echo "## load runs (wrk -t1 -c$CONNS -s rum-wrk.lua, ${DUR}s measured after a warm-up, ${WARM}s in round 1 and $(warm_s 2)s later; ING = POST /_edgebox/rum/batch, 10 events a beacon)"
for r in $(seq 1 "$ROUNDS"); do
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate "$(pass_k "$r" "$p")" "${SET[@]}"); do wrk_run ING "$r" "$n"; done
  done
done

# ---------------------------------------------------------------------------------------------------------------
# no beacon lost: stop both servers (each writes its queue on TERM), count the rows, compare with the 204 answers
echo "## beacons answered 204 vs rows stored (both servers stopped first; every wrk run, warm-ups and checks included)"
for n in edgebox rum-bare; do stop_srv "${PID[$n]}"; unset "PID[$n]"; done
for n in edgebox rum-bare; do
  read -r answered refused sent < <(awk '{ a += $1; e += $2; s += $3 } END { print a + 0, e + 0, s + 0 }' "$D/tally-$n" 2>/dev/null)
  ok=$(( ${OK204[$n]} + answered - refused )); inflight=$(( sent - answered ))
  c=$(node "$BENCH/servers/rum-tool.mjs" count "${DB[$n]}" 2>"$D/count.err")
  rows=$(jnum "$c" rows); extra=$(( rows - 10 * ok ))
  verdict="no beacon lost"
  if [ -z "$c" ]; then verdict="could not count: $(head -c 200 "$D/count.err")"; PROBLEMS+=("$n: the rows could not be counted")
  elif [ "$extra" -lt 0 ]; then verdict="LOST: $(( -extra )) rows fewer than 10 x the 204 answers"; PROBLEMS+=("$n: $(( -extra )) rows lost (answered 204, not stored)")
  elif [ $(( extra % 10 )) != 0 ] || [ "$extra" -gt $(( 10 * inflight )) ]; then verdict="MISMATCH: $extra rows more than 10 x the 204 answers"; PROBLEMS+=("$n: $extra rows beyond 10 x the 204 answers and the in-flight requests")
  elif [ "$extra" -gt 0 ]; then verdict="no beacon lost ($(( extra / 10 )) of the $inflight requests wrk left unanswered when it stopped were stored)"
  fi
  [ "$refused" != 0 ] && PROBLEMS+=("$n: $refused beacons of the load answered with an error (429: the rate limit?)")
  printf '%-8s 204 answers=%s (checks %s + load %s) refused_in_load=%s sent_unanswered=%s rows=%s 10x204=%s rows-10x204=%s: %s\n' \
    "$n" "$ok" "${OK204[$n]}" "$(( answered - refused ))" "$refused" "$inflight" "$rows" "$(( 10 * ok ))" "$extra" "$verdict"
  echo "         rows by kind: $(sed -n 's/.*"byKind":\({[^}]*}\).*/\1/p' <<< "$c")"
done
[ "$EB_LOG" != /dev/null ] && grep -q 'monitoring rows could not be stored' "$EB_LOG" 2>/dev/null && PROBLEMS+=("edgebox logged: $(grep -m1 'monitoring rows could not be stored' "$EB_LOG" | head -c 200)")

# ---------------------------------------------------------------------------------------------------------------
# QUERY: p75 by page over QUERY_ROWS stored events, the store beside its own SQL run directly
echo "## query: p50/p75/p95 of LCP by page over $QUERY_ROWS events (SqliteRumStore.percentiles vs its SQL run directly with node:sqlite; core $SRV_CPU)"
F=$(timeout 600 taskset -c "$SRV_CPU" node "$BENCH/servers/rum-tool.mjs" fill "$DATA/query" "$QUERY_ROWS" 2>"$D/fill.err" | tail -1)
Q=""
if [ -n "$F" ]; then
  echo "fill: $(jfield "$F" rows) rows by SqliteRumStore.insert in batches of 10,000 in $(jfield "$F" fill_s) s"
  Q=$(timeout 600 taskset -c "$SRV_CPU" node "$BENCH/servers/rum-tool.mjs" query "$DATA/query" "$QUERY_REPS" 2>"$D/query.err" | tail -1)
fi
if [ -n "$Q" ]; then
  Q="$Q" node -e '
    const q = JSON.parse(process.env.Q)
    console.log(`QUERY rows=${q.rows} groups=${q.groups} same_result=${q.same_result}  (the largest group: ${JSON.stringify(q.top)})`)
    console.log(`  store.percentiles({metric: "LCP", by: "page"}) ms:  median ${q.store_median_ms}   runs ${q.store_ms.join(" ")}`)
    console.log(`  the same SQL, prepared, run directly, ms:          median ${q.direct_median_ms}   runs ${q.direct_ms.join(" ")}`)
    console.log(`  store / direct: ${(q.store_median_ms / q.direct_median_ms).toFixed(2)}`)
    console.log(`  SQL: ${q.sql}`)'
  [ "$(jfield "$Q" same_result)" = true ] || PROBLEMS+=("query: the store and the direct SQL gave different results")
else
  PROBLEMS+=("query: no result ($(cat "$D/fill.err" "$D/query.err" 2>/dev/null | head -c 300))")
fi

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); beacons/srv-cpu-s = beacons/s divided by the share of core $SRV_CPU the server used"
echo "### ING: POST /_edgebox/rum/batch (10 events); 'x rum-bare' = median of per-round ratios of beacons/srv-cpu-s (of beacons/s in brackets)"
summary_table ING rum-bare beacons/s "${SET[@]}"
echo
echo "## targets (per server CPU-second)"
echo "# verdict on the median of per-round ratios; '-' marks a round where either run was left out"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
target_line "$(printf '%-3s %-10s / %-10s beacons per server-CPU-second' ING edgebox rum-bare)" FIG_R ING edgebox rum-bare '>=' 0.7 \
  "[Edgebox, one site with rum: true, defaults] vs [node:http + JSON.parse + node:sqlite, the same rows and durability]"
info_line "ING edgebox / rum-bare, beacons/s" RATE_R ING edgebox rum-bare
info_line "ING edgebox / rum-bare, per srv-CPU-s, all runs w/o errors" ANY_R ING edgebox rum-bare
echo "# (the last line counts the runs left out only for a server's share of its core being under MIN_SRV_CPU: not judged)"
echo "NO BEACON LOST below the rate limit: $(printf '%s\n' "${PROBLEMS[@]}" | grep -qE 'lost|beyond|could not be counted' && echo "NOT MET (see above)" || echo "MET (rows = 10 x 204 answers, up to the requests in flight when wrk stopped)")"
echo "QUERY p75 by page over $QUERY_ROWS events: reported, no target (see above)"

echo
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed; all runs answered 204 only, no socket errors, every server kept its core busy; no beacon lost"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
[ ${#PROBLEMS[@]} = 0 ]
