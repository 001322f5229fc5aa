#!/usr/bin/env bash
# Edgebox realtime-over-Redis benchmark (`npm run bench:realtime-redis`). See bench/README.md, "Realtime over Redis
# benchmark".
#
# Fan-out at a FIXED offered load, as bench/realtime.sh's: N (1000) WebSocket subscribers on one channel, RATE (100)
# broadcasts per second of a 64-byte payload (= 100,000 deliveries per second), DUR s measured after WARM s; figure:
# server CPU-seconds per million deliveries (lower is better), every delivery counted per client. In one run, the two
# alternating round by round (rotated order):
#   edgebox-memory  one Edgebox, the realtime route of realtime.sh (channels fan:* publish backend, history size 100,
#                   a publishKey), no `redis`: the memory engine. Subscribers and publisher on it.
#   edgebox-redis   a redis-server (Debian's, a private port, no persistence, its folder a temporary one) and TWO
#                   Edgebox nodes with the same route and `redis` pointing at it: the subscribers on node A, the
#                   publisher on node B, so every broadcast crosses Redis (node B's publish script, Redis's pub/sub,
#                   node A's fan-out).
# Server CPU: user+sys of every process of the server's process group (lib.sh grp_cpu; the generator's --pgid). The
# three processes of edgebox-redis are ONE process group (a setsid wrapper that starts Redis and node B and then
# becomes node A), so Redis's own CPU and both nodes' count as server CPU. Everything is pinned to core $SRV_CPU, the
# load generator (bench/realtime-load.mjs, --pub-port for node B) to core(s) $GEN_CPU.
# Target: edgebox-redis / edgebox-memory server CPU per delivery <= 1.5 (the median of the per-round ratios). Latency
# p50/p99 (publish sent -> the last subscriber has it) for information. Runs are dropped on the same rules as
# realtime.sh's (the generator's limits, deliveries lagging, any lost / duplicated / out-of-order delivery, refused
# publish or unexpected close).
#
# usage: bash bench/realtime-redis.sh [quick]
#   env: ROUNDS (3)  DUR (10 s measured)  WARM (2 s)  N (1000)  RATE (100/s)  SRV_CPU (0)  GEN_CPU (1)
#        GEN_PROCS (the cores of GEN_CPU)  GEN_MAX (0.9)  DELIV_MIN (0.95)  MAX_SECONDS (600)
#   quick: ROUNDS=1 DUR=3 WARM=1 (a smoke run; figures are not meaningful, no verdict)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

MODE=${1:-full}
if [ "$MODE" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-3} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; WARM=${WARM:-2}; N=${N:-1000}; RATE=${RATE:-100}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; MAX_SECONDS=${MAX_SECONDS:-600}
GEN_MAX=${GEN_MAX:-0.9}; DELIV_MIN=${DELIV_MIN:-0.95}
GEN_CORES=$(taskset -c "$GEN_CPU" nproc 2>/dev/null || echo 1); GEN_PROCS=${GEN_PROCS:-$GEN_CORES}
GOAL=1.5   # edgebox-redis / edgebox-memory, server CPU per delivery, at most
export CLK_TCK; CLK_TCK=$(getconf CLK_TCK)

bench_setup   # folders, the cleanup guard (every group in PID stopped at exit), the pinned Node (lib.sh)

# ---------------------------------------------------------------------------------------------------------------
# peers: Debian's redis-server; ws (for the generator's idle mode import) is the project's own
REDIS=/usr/bin/redis-server
for t in taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing"; exit 1; }; done
[ -f "$ROOT/node_modules/ws/package.json" ] || { log "ws is missing from node_modules; run npm install first"; exit 1; }
if [ ! -x "$REDIS" ]; then
  log "installing redis-server"
  apt_install redis-server || { log "apt-get install redis-server failed"; exit 1; }
  # the package's own service is not wanted: only the instance this script starts
  as_root systemctl stop redis-server >/dev/null 2>&1 || as_root service redis-server stop >/dev/null 2>&1 || true
fi
REDIS_VER=$("$REDIS" --version | grep -o 'v=[0-9.]*' | cut -d= -f2)

# open files: node A holds N sockets, the generator as many
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((N + 1000)) ]; then
  ulimit -n $((N + 1000)) 2>/dev/null || { log "open-files limit $NOFILE is below N+1000 = $((N + 1000)) and cannot be raised"; exit 1; }
fi

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18940-18943): edgebox-memory; edgebox-redis = node A (subscribers), node B (publisher), Redis
declare -A PORT=([edgebox-memory]=18940 [node-a]=18941 [node-b]=18942 [redis]=18943)
declare -A SUBPORT=([edgebox-memory]=18940 [edgebox-redis]=18941)
declare -A PUBPORT=([edgebox-memory]=18940 [edgebox-redis]=18942)
for p in "${PORT[@]}"; do port_busy "$p" && { log "port $p is already in use"; exit 1; }; done
KEY="bench-realtime-publish-key-$RANDOM$RANDOM"
PREFIX=/rt/
D="$RUN/realtime-redis"; rm -rf "$D"; mkdir -p "$D"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-bench-rtredis.XXXXXX"); on_exit 'rm -rf "$DATA"'
mkdir -p "$DATA/redis"
declare -A LOG=([edgebox-memory]="$D/memory-access.jsonl" [node-a]="$D/node-a-access.jsonl" [node-b]="$D/node-b-access.jsonl")
REDIS_LOG="$D/redis.log"

eb_config() {  # eb_config PORT NAME [REDIS_URL] > FILE : realtime.sh's route; its own data folder; `redis` if given
  # limits.maxConnections (default 10,000 per listener) counts WebSocket connections too: raised only when needed
  local limits="" redis=""
  [ "$N" -gt 9000 ] && limits="\"limits\":{\"maxConnections\":$((N + 1000))},"
  [ -n "${3:-}" ] && redis="\"redis\":\"$3\","
  printf '{%s"listen":[{"host":"127.0.0.1","port":%s}],"dataDir":"%s",%s"sites":[{"routes":[{"path":"%s","realtime":{"channels":{"fan:*":{"publish":"backend","history":{"size":100}}},"publishKey":"%s"}}]}]}\n' \
    "$redis" "$1" "$DATA/$2" "$limits" "$PREFIX" "$KEY"
}
eb_config "${PORT[edgebox-memory]}" memory > "$D/memory.json"
eb_config "${PORT[node-a]}" node-a "redis://127.0.0.1:${PORT[redis]}" > "$D/node-a.json"
eb_config "${PORT[node-b]}" node-b "redis://127.0.0.1:${PORT[redis]}" > "$D/node-b.json"
for f in "${LOG[@]}" "$REDIS_LOG"; do : > "$f"; done
for n in edgebox-memory edgebox-redis; do : > "$RUN/$n.err"; done

start_srv edgebox-memory "${LOG[edgebox-memory]}" node "$ROOT/bin/edgebox.js" --config "$D/memory.json"
PID[edgebox-memory]=$SRV_PID
# edgebox-redis: one process group for Redis and both nodes. The wrapper (pinned to $SRV_CPU, which its children
# inherit) starts Redis, waits until it accepts connections (a node that starts without it would serve on its own
# memory engine for a while), starts node B, then becomes node A (exec): the group's leader, whose PID is the group's
# id, is node A, so the generator's srv_runq and srv_rss_mb read the node that fans out; srv_cpu_s counts all three.
setsid taskset -c "$SRV_CPU" bash -c '
  "$1" --port "$2" --bind 127.0.0.1 --save "" --appendonly no --dir "$3" --daemonize no >>"$4" 2>&1 </dev/null &
  for i in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break; sleep 0.1; done
  node "$5" --config "$6" >>"$7" </dev/null &
  exec node "$5" --config "$8" >>"$9"
' edgebox-redis "$REDIS" "${PORT[redis]}" "$DATA/redis" "$REDIS_LOG" "$ROOT/bin/edgebox.js" "$D/node-b.json" "${LOG[node-b]}" \
  "$D/node-a.json" "${LOG[node-a]}" 2>>"$RUN/edgebox-redis.err" </dev/null &
PID[edgebox-redis]=$!
# stop_srv waits for the group's leader (node A) only: at exit, wait for Redis and node B too (KILL after 5 s)
group_gone() {  # group_gone PGID
  local i
  for i in $(seq 1 50); do ps -eo pgid= | grep -qx " *$1" || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null; return 0
}
REDIS_GROUP=${PID[edgebox-redis]}; on_exit 'group_gone "$REDIS_GROUP"'
for n in edgebox-memory node-a node-b redis; do
  wait_port "${PORT[$n]}" || { log "$n did not start; stderr:"; cat "$RUN/edgebox-memory.err" "$RUN/edgebox-redis.err" "$REDIS_LOG" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/realtime-redis-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/realtime-redis-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox realtime-over-Redis benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')  $MODE"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s N=$N RATE=$RATE/s ($((N * RATE)) deliveries/s), WebSocket subscribers, 64-byte payload"
echo "# servers pinned to core $SRV_CPU (edgebox-redis: Redis and both nodes, one process group), load generator"
echo "# (bench/realtime-load.mjs, $GEN_PROCS subscriber process(es)) to core(s) $GEN_CPU ($GEN_CORES); $(nproc) cores, $(uname -r), open files $(ulimit -n)"
echo "# node $(node -v) ($(command -v node)) for every Edgebox and the load generator; redis-server $REDIS_VER ($REDIS)"
echo "# server CPU = user+sys of every process of the server's process group (/proc), from the first measured broadcast until"
echo "# the last one has reached every subscriber; for edgebox-redis that is Redis + node A + node B; cpu_s_per_M = that /"
echo "# (deliveries / 1e6). Latency (fanout_ms): per measured broadcast, from its publish request being sent until the LAST"
echo "# subscriber has it. A run is dropped as in bench/realtime.sh: a generator process >= $GEN_MAX of its core (all >= $GEN_MAX x"
echo "# $GEN_CORES), deliv_share < $DELIV_MIN, the publisher > 5% short of the rate, or any lost / duplicated / out-of-order"
echo "# delivery, refused publish or unexpected close."
echo "## servers"
printf '%-15s port %s  one Edgebox, realtime route %s (channels fan:* publish backend, history size 100, publishKey), no redis: the\n%-15s  memory engine; access log ON (stdout -> file); subscribers and publisher on it\n' \
  edgebox-memory "${PORT[edgebox-memory]}" "$PREFIX" ''
printf '%-15s ports %s (node A: subscribers), %s (node B: publisher); the same route on both, redis: redis://127.0.0.1:%s\n%-15s  (redis-server %s, --save "" --appendonly no, its folder a temporary one); access logs ON (files)\n' \
  edgebox-redis "${PORT[node-a]}" "${PORT[node-b]}" "${PORT[redis]}" '' "$REDIS_VER"

# ---------------------------------------------------------------------------------------------------------------
# checks, before any load
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
chk() {  # chk LABEL GOT PATTERN : GOT must match the (glob) PATTERN
  printf '%-78s %s\n' "$1" "$2"
  [[ "$2" == $3 ]] || CHECK_FAIL+=("$1: got '$2'")
}
# group_roles PGID : "PID ROLE" of every process of the group, ROLE node-a, node-b, redis or other (by command line)
group_roles() {
  ps -eo pid=,pgid=,args= | awk -v g="$1" '$2 == g { r = "other"
    if ($0 ~ /redis-server/) r = "redis"; else if ($0 ~ /node-a\.json/) r = "node-a"; else if ($0 ~ /node-b\.json/) r = "node-b"
    print $1, r }'
}
publish() {  # publish PORT CHANNEL DATA [no-key] : the answer's body and status (with no-key: no key, the status only)
  local args=(-w ' %{http_code}' -H "authorization: Bearer $KEY"); [ "${4:-}" = no-key ] && args=(-w '%{http_code}' -o /dev/null)
  curl -s --max-time 5 "${args[@]}" -H 'content-type: application/json' \
    -d "{\"ch\":\"$2\",\"d\":\"$3\"}" "http://127.0.0.1:$1${PREFIX}api/publish"
}
chk "edgebox-memory: POST api/publish (want a position, 200)" "$(publish "${PORT[edgebox-memory]}" fan:check hello)" '*"o":1*200'
chk "edgebox-memory: the same without the key (want 401)" "$(publish "${PORT[edgebox-memory]}" fan:check hello no-key)" 401
chk "edgebox-redis: node B without the key (want 401)" "$(publish "${PORT[node-b]}" fan:check hello no-key)" 401
chk "edgebox-redis: processes in its group (want node A as its leader, node B, Redis)" \
  "$(group_roles "${PID[edgebox-redis]}" | awk -v g="${PID[edgebox-redis]}" '{ print ($1 == g ? "leader:" : "") $2 }' | sort | paste -sd' ')" \
  'leader:node-a node-b redis'
# a subscriber on node A (SSE) gets what is published on node B, and node A's next publish continues B's offsets
SSE_OUT="$D/check-sse.out"; : > "$SSE_OUT"
curl -s -N --max-time 8 "http://127.0.0.1:${PORT[node-a]}${PREFIX}sse?ch=fan:cross" > "$SSE_OUT" 2>/dev/null &
SSE_PID=$!
for i in $(seq 1 50); do grep -q '"t":"sub"' "$SSE_OUT" && break; sleep 0.1; done
chk "edgebox-redis: SSE subscriber on node A subscribed" "$(grep -c '"t":"sub"' "$SSE_OUT")" 1
chk "edgebox-redis: POST api/publish on node B (want offset 1, 200)" "$(publish "${PORT[node-b]}" fan:cross hello-from-b)" '*"o":1*200'
for i in $(seq 1 50); do grep -q 'hello-from-b' "$SSE_OUT" && break; sleep 0.1; done
chk "edgebox-redis: node A's SSE subscriber got node B's message" "$(grep -o '"t":"msg"[^}]*"hello-from-b"' "$SSE_OUT" | head -1)" '*"o":1*'
chk "edgebox-redis: POST api/publish on node A (want offset 2: one channel on both)" "$(publish "${PORT[node-a]}" fan:cross hello-from-a)" '*"o":2*200'
for i in $(seq 1 50); do grep -q 'hello-from-a' "$SSE_OUT" && break; sleep 0.1; done
chk "edgebox-redis: node A's SSE subscriber got it next" "$(grep -o '"t":"msg"[^}]*"hello-from-a"' "$SSE_OUT" | head -1)" '*"o":2*'
kill "$SSE_PID" 2>/dev/null; wait "$SSE_PID" 2>/dev/null
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# fan-out runs (as bench/realtime.sh's fan_run, the WebSocket transport only)
jf() { jfield "$@"; }   # jf JSON KEY (lib.sh)
T=WS
declare -A DELIV=() LOST=() P50_R=() P99_R=() GEN_R=() SPLIT=() NEED=()   # NEED: the share of its core the offered load took, every run
# proc_cpu PID : CPU ticks (utime + stime) of one process so far
proc_cpu() { awk '{ s = $0; sub(/^.*\) /, "", s); split(s, a, " "); print a[12] + a[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# redis_pids : "REDIS_PID NODE_B_PID" of the edgebox-redis group (node A is the group's leader)
redis_pids() { group_roles "${PID[edgebox-redis]}" | awk '{ p[$2] = $1 } END { print p["redis"], p["node-b"] }'; }
fan_run() {  # fan_run ROUND NAME : one run of bench/realtime-load.mjs through load_run (lib.sh)
  local r=$1 n=$2 res out="$D/load-run.out" pg=${PID[$2]} rp bp a0 b0 c0 a1 b1 c1
  if [ "$n" = edgebox-memory ]; then : > "${LOG[edgebox-memory]}"; else : > "${LOG[node-a]}"; : > "${LOG[node-b]}"; fi   # small logs
  [ "$n" = edgebox-redis ] && { read -r rp bp < <(redis_pids); a0=$(proc_cpu "$pg"); b0=$(proc_cpu "$bp"); c0=$(proc_cpu "$rp"); }
  load_run -k realtime -p "$pg" -o "$out" -t $((WARM + DUR + 90)) -- node "$BENCH/realtime-load.mjs" fanout \
    --target edgebox --transport ws --port "${SUBPORT[$n]}" --pub-port "${PUBPORT[$n]}" --pgid "$pg" --srv-cpu "$SRV_CPU" \
    --n "$N" --rate "$RATE" --dur "$DUR" --warm "$WARM" --ch "fan:r$r-$n" --prefix "$PREFIX" --key "$KEY" \
    --max $((WARM + DUR + 80)) --procs "$GEN_PROCS"
  local split=""
  if [ "$n" = edgebox-redis ]; then
    a1=$(proc_cpu "$pg"); b1=$(proc_cpu "$bp"); c1=$(proc_cpu "$rp")
    split=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) 'BEGIN { t = a + b + c; if (t > 0) printf "node_a=%.0f%% node_b=%.0f%% redis=%.0f%%", 100 * a / t, 100 * b / t, 100 * c / t }')
  fi
  grep -v '^{' "$out" >> "$RUN/realtime-redis-load.err"
  res=$(grep '^{' "$out" | tail -1)
  echo "$res" >> "$RUN/realtime-redis-load.jsonl"
  local err; err=$(jf "$res" error)
  if [ -z "$res" ] || [ -n "$err" ]; then
    LR_DROP="failed: ${err:-no result (see bench/.peers/run/realtime-redis-load.err)}"
    printf '%s round%s %-14s FAILED: %s\n' "$T" "$r" "$n" "${err:-no result (see bench/.peers/run/realtime-redis-load.err)}"
    keep_run "$T" "$n" "$r"; return
  fi
  local exp del drained gen_pub share gen_max gen_max_pub gen_lim=""
  exp=$(jf "$res" expected); del=$(jf "$res" delivered); drained=$(jf "$res" drained)
  gen_pub=$(jf "$res" client_cpu_pub); share=$(jf "$res" delivery_share)
  gen_max=$(jf "$res" client_cpu_proc_max); gen_max_pub=$(jf "$res" client_cpu_pub_proc_max)
  # the generator was the limit (one process or all of them at GEN_MAX), or the deliveries lagged the offered rate
  awk -v g="${gen_max:-0}" -v p="${gen_max_pub:-0}" -v t="${LR_GEN_CPU:-0}" -v tp="${gen_pub:-0}" -v m="$GEN_MAX" -v c="$GEN_CORES" \
    'BEGIN { exit !(g >= m || p >= m || t >= m * c || tp >= m * c) }' &&
    gen_lim="the load generator used $LR_GEN_CPU of core(s) $GEN_CPU ($gen_pub while publishing; its busiest process $gen_max, $gen_max_pub while publishing; limit $GEN_MAX a core): it, not the server, was the limit"
  awk -v s="${share:-0}" -v m="$DELIV_MIN" 'BEGIN { exit !(s < m) }' &&
    gen_lim+="${gen_lim:+; }deliveries lagged the offered rate: $share of those due were counted by the end of the series (min $DELIV_MIN; the load generator used $LR_GEN_CPU of core $GEN_CPU and waited $(jf "$res" client_runq) for it, the server used $LR_SRV_CPU of core $SRV_CPU; at this run's CPU per delivery the offered load takes $(jf "$res" srv_cores_needed) of the server's core and $(jf "$res" client_cores_needed) of the generator's)"
  printf '%s round%s %-14s %s gen_cpu_pub=%s gen_proc_max=%s/%s deliv_share=%s srv_cores_needed=%s gen_cores_needed=%s gen_runq=%s srv_runq=%s delivered=%s/%s lost=%s dup=%s out_of_order=%s gap=%s drained=%s srv_cpu_s=%s cpu_s_per_M=%s fanout_ms_p50=%s p99=%s max=%s publish_ms_avg=%s publish_bad=%s achieved_rate=%s unexpected_close=%s srv_rss_mb=%s%s\n' \
    "$T" "$r" "$n" "$LR_LINE" "$gen_pub" "$gen_max" "$gen_max_pub" "$share" "$(jf "$res" srv_cores_needed)" "$(jf "$res" client_cores_needed)" \
    "$(jf "$res" client_runq)" "$(jf "$res" srv_runq)" "$del" "$exp" "$(jf "$res" lost)" "$(jf "$res" dups)" "$(jf "$res" out_of_order)" \
    "$(jf "$res" gap_envelopes)" "$drained" "$LR_SRV_CPU_S" "$(jf "$res" cpu_s_per_M)" "$(jf "$res" fanout_ms_p50)" "$(jf "$res" fanout_ms_p99)" \
    "$(jf "$res" fanout_ms_max)" "$(jf "$res" publish_ms_avg)" "$(jf "$res" publish_bad)" "$(jf "$res" achieved_rate)" \
    "$(jf "$res" unexpected_close)" "$(jf "$res" srv_rss_mb)" "${split:+ cpu_split(whole run)=$split}"
  NEED[$n]+="$(jf "$res" srv_cores_needed) "
  [ -n "$gen_lim" ] && LR_DROP+="${LR_DROP:+; }$gen_lim; round not judged"
  DELIV[$n]=$(( ${DELIV[$n]:-0} + ${del:-0} )); LOST[$n]=$(( ${LOST[$n]:-0} + $(jnum "$res" lost) ))
  if [ -z "$LR_DROP" ] && { [ "$drained" != true ] || [ "$del" != "$exp" ]; }; then
    LR_DROP="delivered=$del/$exp drained=$drained $(jf "$res" publish_errors)"
  fi
  [ -n "$LR_DROP" ] && [ -n "$(jf "$res" publish_errors)" ] && LR_DROP+=" (publish errors: $(jf "$res" publish_errors))"
  keep_run "$T" "$n" "$r" "$(jf "$res" cpu_s_per_M)" || return
  P50_R[$T,$n,$r]+="$(jf "$res" fanout_ms_p50) "; P99_R[$T,$n,$r]+="$(jf "$res" fanout_ms_p99) "
  GEN_R[$T,$n,$r]+="$LR_GEN_CPU "; [ -n "$split" ] && SPLIT[$n]+="$split; "
}

SET=(edgebox-memory edgebox-redis)
echo "## fan-out runs (N=$N WebSocket subscribers on one channel, a fresh channel per run; ${WARM}s warm-up + ${DUR}s measured at $RATE broadcasts/s)"
echo "# cpu_split(whole run): edgebox-redis's CPU by process over the whole run (connecting and warm-up included), for information"
: > "$RUN/realtime-redis-load.err"; : > "$RUN/realtime-redis-load.jsonl"
OKSRV=$([ ${#CHECK_FAIL[@]} = 0 ] && echo 1)
for r in $(seq 1 "$ROUNDS"); do
  for n in $(rotate $((r - 1)) "${SET[@]}"); do
    [ -z "$OKSRV" ] && { echo "$T round$r $n: skipped (checks failed)"; continue; }
    fan_run "$r" "$n"
  done
done

# every Edgebox's own view of its last run: warn/error lines in its log, before the servers stop (a node that sees
# Redis go away at the end logs it)
for n in edgebox-memory node-a node-b; do
  f=${LOG[$n]}; [ -s "$f" ] || continue
  errs=$(grep -c '"level":[45][0-9]' "$f")
  echo "## $n log of its last run: $(wc -l < "$f") lines; status: $(grep -o '"status":[0-9]*' "$f" | cut -d: -f2 | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'); warn/error lines: $errs"
  [ "${errs:-0}" -gt 0 ] && PROBLEMS+=("$n log: $errs warn/error line(s), e.g. $(grep -m1 '"level":[45][0-9]' "$f" | cut -c1-300)")
done
for n in "${SET[@]}"; do stop_srv "${PID[$n]}"; unset "PID[$n]"; done

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); cpu-s/M = server CPU-seconds per million deliveries (lower is better)"
echo "### WebSocket fan-out: $N subscribers, $RATE broadcasts/s of 64 bytes ($((N * RATE)) deliveries/s); server CPU of edgebox-redis = Redis + node A + node B"
printf '%-15s %9s %-15s %8s %8s %9s %9s %12s %6s %s\n' server cpu-s/M "(min-max)" srv_cpu gen_cpu p50_ms p99_ms delivered lost "dropped runs"
for n in "${SET[@]}"; do
  f=$(counted FIG_R "$T" "$n")
  [ -z "$f" ] && { printf '%-15s no counted run (dropped runs: %s; delivered %s, lost %s)\n' "$n" "${NDROP[$T,$n]:-0}" "${DELIV[$n]:-0}" "${LOST[$n]:-0}"; continue; }
  printf '%-15s %9.3f %-15s %8.3f %8.3f %9.2f %9.2f %12s %6s %s\n' "$n" "$(med "$f")" "($(rng "$f"))" "$(med "$(counted SHARE_R "$T" "$n")")" \
    "$(med "$(counted GEN_R "$T" "$n")")" "$(med "$(counted P50_R "$T" "$n")")" "$(med "$(counted P99_R "$T" "$n")")" \
    "${DELIV[$n]:-0}" "${LOST[$n]:-0}" "${NDROP[$T,$n]:-0}"
done
[ -n "${SPLIT[edgebox-redis]:-}" ] && echo "(edgebox-redis CPU by process, whole runs, for information: ${SPLIT[edgebox-redis]%; })"
# Can core $SRV_CPU carry the offered load at all? At the CPU per delivery its runs measured (dropped or not), the share
# of the core the offered N x RATE deliveries a second take; at GEN_MAX or above, the runs lag whatever the code does.
if [ -n "${NEED[edgebox-redis]:-}${NEED[edgebox-memory]:-}" ]; then
  echo "(capacity: at the CPU per delivery of their runs, the offered $((N * RATE)) deliveries/s took edgebox-memory $(med_or_na "${NEED[edgebox-memory]:-}") and edgebox-redis $(med_or_na "${NEED[edgebox-redis]:-}") of core $SRV_CPU, medians of every run)"
  for n in "${SET[@]}"; do
    [ -n "${NEED[$n]:-}" ] && awk -v s="$(med "${NEED[$n]}")" -v m="$GEN_MAX" 'BEGIN { exit !(s >= m) }' &&
      PROBLEMS+=("capacity: $n needs $(med "${NEED[$n]}") of core $SRV_CPU for the offered load ($N subscribers x $RATE broadcasts/s) at the CPU per delivery measured here (limit $GEN_MAX): its runs lag on this machine as it is now, whatever the code does; run again on a quieter machine")
  done
fi
echo
echo "## targets (lower is better; verdict on the median of the per-round ratios; '-' marks a round where either run was left out)"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
target_line "edgebox-redis / edgebox-memory server CPU per delivery" FIG_R "$T" edgebox-redis edgebox-memory '<=' "$GOAL" \
  "[cpu-s/M: $(med_or_na "$(counted FIG_R "$T" edgebox-redis)") vs $(med_or_na "$(counted FIG_R "$T" edgebox-memory)"), medians; Redis's CPU counted]"
info_line "edgebox-redis / edgebox-memory fan-out latency p50" P50_R "$T" edgebox-redis edgebox-memory
info_line "edgebox-redis / edgebox-memory fan-out latency p99" P99_R "$T" edgebox-redis edgebox-memory

echo
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} fan-out run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed; every subscriber got every broadcast exactly once and in order, no unexpected closes; every publisher kept its rate"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
echo "raw results (one JSON object per run): bench/.peers/run/realtime-redis-load.jsonl"
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
