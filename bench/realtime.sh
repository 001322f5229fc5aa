#!/usr/bin/env bash
# Edgebox realtime benchmark (`npm run bench:realtime`). See bench/README.md, "Realtime benchmark".
#
# Compares, in one run and on loopback (127.0.0.1) only:
#   fan-out at a FIXED offered load: N (1000) WebSocket subscribers on one channel, RATE (100) broadcasts per second
#   of a 64-byte payload (= 100,000 deliveries per second), DUR s measured; figure: server CPU-seconds per million
#   deliveries (lower is better), every delivery counted per client (lost / duplicated / out of order):
#     edgebox   Edgebox realtime route (history on, size 100); publisher POST <prefix>api/publish, one message per request
#     ws-send   bench/servers/ws-fanout.mjs send: bare ws, `for (const c of wss.clients) c.send(payload)`
#     ws-once   bench/servers/ws-fanout.mjs once: bare ws, the frame encoded once per broadcast (for information)
#     socketio  bench/servers/socketio-fanout.mjs: socket.io 4.8, connection-state recovery ON, io.emit
#     edgebox-before  with BEFORE=<git rev>: that commit of Edgebox (a git worktree, npm ci there), the same route
#   latency: per broadcast, from its publish request being sent until the last of the N subscribers has it (p50/p99)
#   Edgebox's SSE (SSE_RATE, 50/s) and long polling (POLL_RATE, 10/s) fan-out, N subscribers each (for information).
#   memory per idle WebSocket connection: server RSS (and heap used) after IDLE_N (5000) idle subscribers minus before,
#   / IDLE_N, for edgebox, ws-send and socketio, each on a fresh server, read after a settle delay and a full GC.
# Servers pinned to core $SRV_CPU, the load generator (bench/realtime-load.mjs: subscribers + publisher) to core
# $GEN_CPU (a core, or a list: GEN_CPU=1-3); ROUNDS alternating rounds; medians. The generator's subscribers speak
# WebSocket over raw sockets with one shared read buffer (no per-message parsing beyond the sequence number), so it
# uses a fraction of its core; with GEN_PROCS > 1 (by default one per core of GEN_CPU) they are spread over that many
# processes. A run in which any generator process used >= GEN_MAX (0.9) of a core (or all of them together >= GEN_MAX x
# the cores of GEN_CPU), or which had counted < DELIV_MIN (0.95) of the deliveries due by the end of the series (those
# of the broadcasts sent 250 ms or more before it), is dropped: the generator was the limit, or the system as a whole
# could not carry the offered load.
#
# usage: bash bench/realtime.sh [quick]
#   env: ROUNDS (3)  DUR (10 s measured)  WARM (2 s)  N (1000)  RATE (100/s)  SSE_RATE (50/s)  POLL_RATE (10/s)
#        IDLE_N (5000)  SETTLE (3 s)  SRV_CPU (0)  GEN_CPU (1)  GEN_PROCS (the cores of GEN_CPU)
#        EDGEBOX_STDOUT=file|null  MAX_SECONDS (1500)
#        GEN_MAX (0.9)  DELIV_MIN (0.95)  BEFORE (a git rev: run that commit beside this tree)  BEFORE_MAX (1.03: the
#        highest median now/before of CPU per delivery and memory per connection that is no regression)
#   quick: ROUNDS=1 DUR=3 WARM=1 IDLE_N=2000 SETTLE=1 (a smoke run; figures are not meaningful)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

MODE=${1:-full}
if [ "$MODE" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-3} WARM=${WARM:-1} IDLE_N=${IDLE_N:-2000} SETTLE=${SETTLE:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; WARM=${WARM:-2}; N=${N:-1000}; RATE=${RATE:-100}
SSE_RATE=${SSE_RATE:-50}; POLL_RATE=${POLL_RATE:-10}; IDLE_N=${IDLE_N:-5000}; SETTLE=${SETTLE:-3}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; MAX_SECONDS=${MAX_SECONDS:-1500}
GEN_MAX=${GEN_MAX:-0.9}; DELIV_MIN=${DELIV_MIN:-0.95}
GEN_CORES=$(taskset -c "$GEN_CPU" nproc 2>/dev/null || echo 1); GEN_PROCS=${GEN_PROCS:-$GEN_CORES}
EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}
export CLK_TCK; CLK_TCK=$(getconf CLK_TCK)

bench_setup   # folders, the cleanup guard, the pinned Node (lib.sh)

# ---------------------------------------------------------------------------------------------------------------
# peers: socket.io 4.8 by npm into bench/.peers/; ws is the project's own (node_modules)
for t in taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing"; exit 1; }; done
[ -f "$ROOT/node_modules/ws/package.json" ] || { log "ws is missing from node_modules; run npm install first"; exit 1; }
SIO_VER=$(node -p "require('$P/node_modules/socket.io/package.json').version" 2>/dev/null || true)
if [[ "$SIO_VER" != 4.8.* ]]; then
  log "installing socket.io@4.8 into $P"
  timeout 300 npm install --prefix "$P" --no-audit --no-fund socket.io@4.8 >&2 || { log "npm install socket.io@4.8 failed"; exit 1; }
  SIO_VER=$(node -p "require('$P/node_modules/socket.io/package.json').version")
fi
WS_VER=$(node -p "require('$ROOT/node_modules/ws/package.json').version")

# before: BEFORE=<git rev> builds that commit in a git worktree (npm ci there, its own pinned Node) and runs it as
# edgebox-before beside this tree, the same configuration (lib.sh before_setup; with BEFORE_BUILT from bench/all.sh, the
# worktree built there). The figures here are lower-is-better: now / before at most BEFORE_MAX (1.03) is no regression.
before_setup
BEFORE_MAX=${BEFORE_MAX:-1.03}

# open files: the load generator holds IDLE_N sockets, the server as many
NOFILE=$(ulimit -n)
MEM_NOTE=""
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_N + 1000)) ]; then
  ulimit -n $((IDLE_N + 1000)) 2>/dev/null || MEM_NOTE="open-files limit $NOFILE is below IDLE_N+1000 = $((IDLE_N + 1000)): the memory test is skipped"
fi

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18700-18799): fan-out servers run for the whole fan-out phase; each memory run gets a fresh server
# (ports 18711-18715) with the inspector on (ports 18721-18725), through which the load generator reads its memory
declare -A PORT=( [edgebox]=18701 [ws-send]=18702 [ws-once]=18703 [socketio]=18704 [edgebox-before]=18705 )
declare -A IPORT=( [edgebox]=18711 [ws-send]=18712 [socketio]=18714 [edgebox-before]=18715 )
declare -A INSPECT=( [edgebox]=18721 [ws-send]=18722 [socketio]=18724 [edgebox-before]=18725 )
declare -A TARGET=( [edgebox]=edgebox [ws-send]=ws [ws-once]=ws [socketio]=sio [edgebox-before]=edgebox )
KEY="bench-realtime-publish-key-$RANDOM$RANDOM"
PREFIX=/rt/
EB_LOG="$RUN/realtime-edgebox-access.jsonl"; EBB_LOG="$RUN/realtime-edgebox-before-access.jsonl"
[ "$EDGEBOX_STDOUT" = null ] && { EB_LOG=/dev/null; EBB_LOG=/dev/null; }
declare -A CONF=(
  [edgebox]="Edgebox realtime route $PREFIX (channels fan:* publish backend, idle:*; history on: size 100, age 10m), defaults otherwise: access log ON (JSON lines on stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EB_LOG")")), heartbeat 25 s, maxBuffered 1 MiB"
  [ws-send]="bench/servers/ws-fanout.mjs send: ws $WS_VER, per broadcast client.send(payload) for each client"
  [ws-once]="bench/servers/ws-fanout.mjs once: ws $WS_VER, frame encoded once per broadcast, written to every socket (ws internals)"
  [socketio]="bench/servers/socketio-fanout.mjs: socket.io $SIO_VER, connectionStateRecovery ON (defaults), io.emit('m', payload)"
  [edgebox-before]="Edgebox at BEFORE=$BEFORE ($BEFORE_DESC), its own pinned Node, the same route and defaults"
)

eb_config() {  # eb_config PORT FILE
  # limits.maxConnections (default 10,000 per listener) counts WebSocket connections too: raised only when needed
  local limits=""; [ $((IDLE_N > N ? IDLE_N : N)) -gt 9000 ] && limits="\"limits\":{\"maxConnections\":$(( (IDLE_N > N ? IDLE_N : N) + 1000 ))},"
  printf '{"listen":[{"host":"127.0.0.1","port":%s}],%s"sites":[{"routes":[{"path":"%s","realtime":{"channels":{"fan:*":{"publish":"backend","history":{"size":100}},"idle:*":{}},"publishKey":"%s"}}]}]}\n' \
    "$1" "$limits" "$PREFIX" "$KEY" > "$2"
}

start_server() {  # start_server NAME PORT [INSPECT_PORT]: starts it, records its PID (= process group) in PID[NAME]
  local n=$1 port=$2 insp=() tag=$1
  [ -n "${3:-}" ] && { insp=(--inspect="127.0.0.1:$3"); tag="$1-idle"; }
  if port_busy "$port"; then log "port $port (for $tag) is already in use"; return 1; fi
  : > "$RUN/$tag.err"
  case $n in
    edgebox)  eb_config "$port" "$RUN/realtime-$tag.json"
              local out="$EB_LOG"; [ -n "${3:-}" ] && [ "$EB_LOG" != /dev/null ] && out="$RUN/realtime-edgebox-idle-access.jsonl"
              [ "$out" != /dev/null ] && : > "$out"
              start_srv "$tag" "$out" node "${insp[@]}" "$ROOT/bin/edgebox.js" --config "$RUN/realtime-$tag.json" ;;
    edgebox-before)
              eb_config "$port" "$RUN/realtime-$tag.json"
              local outb="$EBB_LOG"; [ -n "${3:-}" ] && [ "$EBB_LOG" != /dev/null ] && outb="$RUN/realtime-edgebox-before-idle-access.jsonl"
              [ "$outb" != /dev/null ] && : > "$outb"
              start_srv "$tag" "$outb" "$BEFORE_NODE" "${insp[@]}" "$BEFORE_TREE/bin/edgebox.js" --config "$RUN/realtime-$tag.json" ;;
    ws-send)  start_srv "$tag" "$RUN/$tag.out" node "${insp[@]}" "$BENCH/servers/ws-fanout.mjs" send "$port" ;;
    ws-once)  start_srv "$tag" "$RUN/$tag.out" node "${insp[@]}" "$BENCH/servers/ws-fanout.mjs" once "$port" ;;
    socketio) start_srv "$tag" "$RUN/$tag.out" node "${insp[@]}" "$BENCH/servers/socketio-fanout.mjs" "$port" ;;
  esac
  PID[$tag]=$SRV_PID
  wait_port "$port" || { log "$tag did not start; its stderr:"; cat "$RUN/$tag.err" >&2; return 1; }
}

FAN_SET=(edgebox ws-send ws-once socketio)
[ -n "$BEFORE" ] && FAN_SET+=(edgebox-before)
for n in "${FAN_SET[@]}"; do start_server "$n" "${PORT[$n]}" || exit 1; done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/realtime-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/realtime-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox realtime benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')  $MODE"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s N=$N RATE=$RATE/s ($((N * RATE)) deliveries/s) SSE_RATE=$SSE_RATE/s POLL_RATE=$POLL_RATE/s IDLE_N=$IDLE_N SETTLE=${SETTLE}s"
echo "# servers pinned to core $SRV_CPU, load generator (bench/realtime-load.mjs, $GEN_PROCS subscriber process(es)) to core(s) $GEN_CPU ($GEN_CORES); $(nproc) cores, $(uname -r), open files $(ulimit -n)"
echo "# node $(node -v) ($(command -v node)) for every server and the load generator; ws $WS_VER; socket.io $SIO_VER"
[ -n "$BEFORE" ] && echo "# edgebox-before: BEFORE=$BEFORE = $BEFORE_DESC, node $("$BEFORE_NODE" -v) ($BEFORE_NODE)"
echo "# latency (fanout_ms): per measured broadcast, from its publish request being sent until the LAST of the N subscribers"
echo "# has it; p50/p99 over the broadcasts. Load generator: raw-socket WebSocket subscribers, one shared read buffer,"
echo "# only the sequence number read from each message; gen_cpu = its CPU-seconds per second of the run, all its processes"
echo "# (gen_cpu_pub: while publishing), gen_proc_max = the busiest generator process's share of its core (over the run /"
echo "# while publishing), deliv_share = deliveries it had counted by the end of the series / those of the broadcasts"
echo "# sent at least 250 ms before it (at most 1),"
echo "# gen_loop_p99 = its event loop's delay; a run with gen_proc_max >= $GEN_MAX, gen_cpu >= $GEN_MAX x $GEN_CORES or"
echo "# deliv_share < $DELIV_MIN is dropped (the generator, or the machine, could not carry the offered load)."
echo "# srv_runq/gen_runq: seconds per second the process waited for its core (other jobs on the machine)."
echo "# server CPU = user+sys of the server's process group (/proc), from the first measured broadcast until the last one"
echo "# has reached every subscriber; cpu_s_per_M = that / (deliveries / 1e6). Payload: 64 bytes of text per broadcast"
echo "# (Edgebox: the message's data, a 64-character JSON string, inside its msg envelope). Publisher: one HTTP POST per"
echo "# broadcast on one keep-alive connection, sent on a fixed schedule (edgebox: api/publish with the publish key; the"
echo "# others: POST /publish with the raw payload)."
echo "## servers"
for n in "${FAN_SET[@]}"; do printf '%-9s port %s  %s\n' "$n" "${PORT[$n]}" "${CONF[$n]}"; done

# ---------------------------------------------------------------------------------------------------------------
# checks: each server takes a publish; Edgebox answers it with a position
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
declare -A OKSRV=()
for n in "${FAN_SET[@]}"; do
  base="http://127.0.0.1:${PORT[$n]}"
  if [[ $n == edgebox* ]]; then
    r=$(curl -s --max-time 5 -w ' %{http_code}' -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"ch":"fan:check","d":"hello"}' "$base${PREFIX}api/publish")
    r2=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d '{"ch":"fan:check","d":"hello"}' "$base${PREFIX}api/publish")
    info="POST api/publish -> $r (want 200 and a position); without the key -> $r2 (want 401)"
    [[ "$r" == *'"o":1'*' 200' ]] && [ "$r2" = 401 ] && OKSRV[$n]=1
  else
    r=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -d 'hello' "$base/publish")
    info="POST /publish -> $r (want 204)"
    if [ "$n" = socketio ]; then
      h=$(curl -s --max-time 5 "$base/socket.io/?EIO=4&transport=polling" | head -c 120)
      info+="; GET /socket.io/?EIO=4&transport=polling -> ${h:-nothing}"
      [ "$r" = 204 ] && [[ "$h" == 0* ]] && OKSRV[$n]=1
    else
      [ "$r" = 204 ] && OKSRV[$n]=1
    fi
  fi
  printf '%-9s %s%s\n' "$n" "$info" "$([ -n "${OKSRV[$n]:-}" ] || echo '  FAILED: not loaded')"
  [ -n "${OKSRV[$n]:-}" ] || CHECK_FAIL+=("$n: $info")
done
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# fan-out runs
jf() { jfield "$@"; }   # jf JSON KEY (lib.sh)
EB_LAST=none
declare -A P50=() P99=() DELIV=() LOST=() P50_R=() P99_R=() GEN_R=() NEED=() GNEED=()   # NEED/GNEED: the cores the offered load took, server / generator, every run
fan_run() {  # fan_run TEST ROUND NAME TRANSPORT RATE : one run of bench/realtime-load.mjs through load_run (lib.sh)
  local test=$1 r=$2 n=$3 tr=$4 rate=$5 res ch="fan:r$2-$3-$4" out="$RUN/realtime-run.out"
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"   # keep the log files small between runs
  [ "$n" = edgebox-before ] && [ "$EBB_LOG" != /dev/null ] && : > "$EBB_LOG"
  [ "$n" = edgebox ] && EB_LAST="$test round$r"
  load_run -k realtime -p "${PID[$n]}" -o "$out" -t $((WARM + DUR + 90)) -- node "$BENCH/realtime-load.mjs" fanout \
    --target "${TARGET[$n]}" --transport "$tr" --port "${PORT[$n]}" --pgid "${PID[$n]}" --srv-cpu "$SRV_CPU" --n "$N" \
    --rate "$rate" --dur "$DUR" --warm "$WARM" --ch "$ch" --prefix "$PREFIX" --key "$KEY" --max $((WARM + DUR + 80)) --procs "$GEN_PROCS"
  grep -v '^{' "$out" >> "$RUN/realtime-load.err"
  res=$(grep '^{' "$out" | tail -1)
  echo "$res" >> "$RUN/realtime-load.jsonl"
  local err; err=$(jf "$res" error)
  if [ -z "$res" ] || [ -n "$err" ]; then
    LR_DROP="failed: ${err:-no result (see bench/.peers/run/realtime-load.err)}"
    printf '%-4s round%s %-9s FAILED: %s\n' "$test" "$r" "$n" "${err:-no result (see bench/.peers/run/realtime-load.err)}"
    keep_run "$test" "$n" "$r"; return
  fi
  local exp del drained gen_pub share gen_max gen_max_pub gen_lim=""
  exp=$(jf "$res" expected); del=$(jf "$res" delivered); drained=$(jf "$res" drained)
  gen_pub=$(jf "$res" client_cpu_pub); share=$(jf "$res" delivery_share)
  gen_max=$(jf "$res" client_cpu_proc_max); gen_max_pub=$(jf "$res" client_cpu_pub_proc_max)
  # the generator was the limit: one of its processes used GEN_MAX of its core, or all together GEN_MAX of every core
  # of GEN_CPU (over the run or while publishing), or it had not counted DELIV_MIN of the deliveries due by the time
  # the series ended (whichever side lagged: both are printed)
  awk -v g="${gen_max:-0}" -v p="${gen_max_pub:-0}" -v t="${LR_GEN_CPU:-0}" -v tp="${gen_pub:-0}" -v m="$GEN_MAX" -v c="$GEN_CORES" \
    'BEGIN { exit !(g >= m || p >= m || t >= m * c || tp >= m * c) }' &&
    gen_lim="the load generator used $LR_GEN_CPU of core(s) $GEN_CPU ($gen_pub while publishing; its busiest process $gen_max, $gen_max_pub while publishing; limit $GEN_MAX a core): it, not the server, was the limit"
  awk -v s="${share:-0}" -v m="$DELIV_MIN" 'BEGIN { exit !(s < m) }' &&
    gen_lim+="${gen_lim:+; }deliveries lagged the offered rate: $share of those due were counted by the end of the series (min $DELIV_MIN; the load generator used $LR_GEN_CPU of core $GEN_CPU and waited $(jf "$res" client_runq) for it, the server used $LR_SRV_CPU of core $SRV_CPU and waited $(jf "$res" srv_runq) for it; at this run's CPU per delivery the offered load takes $(jf "$res" srv_cores_needed) of the server's core and $(jf "$res" client_cores_needed) of the generator's)"
  printf '%-4s round%s %-9s %s gen_cpu_pub=%s gen_proc_max=%s/%s deliv_share=%s srv_cores_needed=%s gen_cpu_s_per_M=%s gen_cores_needed=%s gen_loop_p99_ms=%s gen_runq=%s srv_runq=%s delivered=%s/%s lost=%s dup=%s out_of_order=%s gap=%s drained=%s srv_cpu_s=%s cpu_s_per_M=%s fanout_ms_p50=%s p99=%s max=%s publish_ms_avg=%s publish_bad=%s achieved_rate=%s unexpected_close=%s close_codes=%s srv_rss_mb=%s\n' \
    "$test" "$r" "$n" "$LR_LINE" "$gen_pub" "$gen_max" "$gen_max_pub" "$share" "$(jf "$res" srv_cores_needed)" "$(jf "$res" client_cpu_s_per_M)" "$(jf "$res" client_cores_needed)" "$(jf "$res" client_loop_ms_p99)" "$(jf "$res" client_runq)" "$(jf "$res" srv_runq)" \
    "$del" "$exp" "$(jf "$res" lost)" "$(jf "$res" dups)" "$(jf "$res" out_of_order)" "$(jf "$res" gap_envelopes)" "$drained" \
    "$LR_SRV_CPU_S" "$(jf "$res" cpu_s_per_M)" "$(jf "$res" fanout_ms_p50)" "$(jf "$res" fanout_ms_p99)" "$(jf "$res" fanout_ms_max)" \
    "$(jf "$res" publish_ms_avg)" "$(jf "$res" publish_bad)" "$(jf "$res" achieved_rate)" "$(jf "$res" unexpected_close)" \
    "$(sed -n 's/.*"close_codes":\({[^}]*}\).*/\1/p' <<< "$res")" "$(jf "$res" srv_rss_mb)"
  NEED[$test,$n]+="$(jf "$res" srv_cores_needed) "; GNEED[$test,$n]+="$(jf "$res" client_cores_needed) "
  [ -n "$gen_lim" ] && LR_DROP+="${LR_DROP:+; }$gen_lim; round not judged"
  DELIV[$test,$n]=$(( ${DELIV[$test,$n]:-0} + ${del:-0} )); LOST[$test,$n]=$(( ${LOST[$test,$n]:-0} + $(jnum "$res" lost) ))
  if [ -z "$LR_DROP" ] && { [ "$drained" != true ] || [ "$del" != "$exp" ]; }; then
    LR_DROP="delivered=$del/$exp drained=$drained $(jf "$res" publish_errors)"
  fi
  [ -n "$LR_DROP" ] && [ -n "$(jf "$res" publish_errors)" ] && LR_DROP+=" (publish errors: $(jf "$res" publish_errors))"
  keep_run "$test" "$n" "$r" "$(jf "$res" cpu_s_per_M)" || return
  P50[$test,$n]+="$(jf "$res" fanout_ms_p50) "; P99[$test,$n]+="$(jf "$res" fanout_ms_p99) "
  P50_R[$test,$n,$r]+="$(jf "$res" fanout_ms_p50) "; P99_R[$test,$n,$r]+="$(jf "$res" fanout_ms_p99) "
  GEN_R[$test,$n,$r]+="$LR_GEN_CPU "
}

echo "## fan-out runs (N=$N subscribers on one channel; ${WARM}s warm-up + ${DUR}s measured; WS at $RATE/s, SSE at $SSE_RATE/s, POLL at $POLL_RATE/s)"
: > "$RUN/realtime-load.err"; : > "$RUN/realtime-load.jsonl"
for r in $(seq 1 "$ROUNDS"); do
  for n in $(rotate $((r - 1)) "${FAN_SET[@]}"); do
    [ -z "${OKSRV[$n]:-}" ] && { echo "WS   round$r $n: skipped (failed its check)"; continue; }
    fan_run WS "$r" "$n" ws "$RATE"
  done
  if [ -n "${OKSRV[edgebox]:-}" ]; then
    fan_run SSE "$r" edgebox sse "$SSE_RATE"
    fan_run POLL "$r" edgebox poll "$POLL_RATE"
  fi
done
for n in "${FAN_SET[@]}"; do stop_srv "${PID[$n]}"; unset "PID[$n]"; done

# ---------------------------------------------------------------------------------------------------------------
# memory per idle WebSocket connection: a fresh server per run, IDLE_N idle subscribers
declare -A MRSS=() MHEAP=() MNOGC=() MMRSS=()
MEM_SET=(edgebox ws-send socketio)
[ -n "$BEFORE" ] && MEM_SET+=(edgebox-before)
mem_run() {  # mem_run ROUND NAME
  local r=$1 n=$2 res
  start_server "$n" "${IPORT[$n]}" "${INSPECT[$n]}" || { PROBLEMS+=("MEM round$r $n: did not start"); return; }
  sleep 0.5
  res=$(timeout $((SETTLE + 120)) taskset -c "$GEN_CPU" node "$BENCH/realtime-load.mjs" idle --target "${TARGET[$n]}" --port "${IPORT[$n]}" \
        --pgid "${PID[$n-idle]}" --inspect "${INSPECT[$n]}" --n "$IDLE_N" --settle "$SETTLE" --ch idle:1 --prefix "$PREFIX" --max $((SETTLE + 110)) \
        2>>"$RUN/realtime-load.err" | tail -1)
  stop_srv "${PID[$n-idle]}"; unset "PID[$n-idle]"
  echo "$res" >> "$RUN/realtime-load.jsonl"
  local err; err=$(jf "$res" error)
  if [ -z "$res" ] || [ -n "$err" ] || [ "$(jf "$res" unexpected_close)" != 0 ]; then
    printf 'MEM  round%s %-9s FAILED: %s\n' "$r" "$n" "${err:-${res:-no result}}"
    PROBLEMS+=("MEM round$r $n: ${err:-${res:-no result}}"); return
  fi
  local rss heap nogc
  rss=$(jf "$res" rss_per_conn); heap=$(jf "$res" heap_used_per_conn); nogc=$(jf "$res" rss_nogc_per_conn)
  printf 'MEM  round%s %-9s clients=%s rss_per_conn=%s heap_used_per_conn=%s external_per_conn=%s rss_nogc_per_conn=%s rss_mb=%s->%s heap_used_mb=%s->%s connect_ms=%s\n' \
    "$r" "$n" "$(jf "$res" clients)" "$rss" "$heap" "$(jf "$res" external_per_conn)" "$nogc" "$(jf "$res" rss_before_mb)" "$(jf "$res" rss_after_mb)" \
    "$(jf "$res" heap_used_before_mb)" "$(jf "$res" heap_used_after_mb)" "$(jf "$res" connect_ms)"
  MRSS[$n]+="$rss "; MHEAP[$n]+="$heap "; MNOGC[$n]+="$nogc "; FIG_R[MEM,$n,$r]="$rss "   # space-separated, as counted() joins the rounds
}
if [ -z "$MEM_NOTE" ]; then
  echo "## memory per idle WebSocket connection (IDLE_N=$IDLE_N subscribers, fresh server each, after 200 connections opened and"
  echo "## closed; memory read ${SETTLE}s after the last one opened, after two full GCs, through the server's inspector)"
  for r in $(seq 1 "$ROUNDS"); do
    for n in $(rotate $((r - 1)) "${MEM_SET[@]}"); do mem_run "$r" "$n"; done
  done
else
  echo "NOTE: $MEM_NOTE"
fi

# Edgebox's own view of its last fan-out run: the access log (one line per publish request, poll and closed stream)
if [ "$EB_LOG" != /dev/null ] && [ -s "$EB_LOG" ]; then
  errs=$(grep -c '"level":[45][0-9]' "$EB_LOG")
  echo "## edgebox access log of its last fan-out run ($EB_LAST): $(wc -l < "$EB_LOG") lines; status: $(grep -o '"status":[0-9]*' "$EB_LOG" | cut -d: -f2 | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'); warn/error lines: $errs"
  [ "${errs:-0}" -gt 0 ] && PROBLEMS+=("edgebox log: $errs warn/error line(s), e.g. $(grep -m1 '"level":[45][0-9]' "$EB_LOG" | cut -c1-300)")
fi

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); cpu-s/M = server CPU-seconds per million deliveries (lower is better)"
declare -A MPERM=()
summary() {  # summary TEST TITLE SERVERS...
  local test=$1 title=$2; shift 2
  echo "### $title"
  printf '%-14s %9s %-15s %8s %8s %11s %11s %12s %6s %s\n' server cpu-s/M "(min-max)" srv_cpu gen_cpu p50_ms p99_ms delivered lost "x ws-send  dropped runs"
  local n m f
  for n in "$@"; do
    f=$(counted FIG_R "$test" "$n")
    [ -z "$f" ] && { printf '%-14s no counted run (dropped runs: %s; delivered %s, lost %s)\n' "$n" "${NDROP[$test,$n]:-0}" "${DELIV[$test,$n]:-0}" "${LOST[$test,$n]:-0}"; continue; }
    m=$(med "$f"); MPERM[$test,$n]=$m
    printf '%-14s %9.3f %-15s %8.3f %8.3f %11.2f %11.2f %12s %6s %-10s %s\n' "$n" "$m" "($(rng "$f"))" "$(med "$(counted SHARE_R "$test" "$n")")" \
      "$(med "$(counted GEN_R "$test" "$n")")" "$(med "${P50[$test,$n]}")" "$(med "${P99[$test,$n]}")" "${DELIV[$test,$n]:-0}" "${LOST[$test,$n]:-0}" \
      "$([ "$test" = WS ] && echo "x$(round_ratio FIG_R "$test" "$n" ws-send)" || echo -)" "${NDROP[$test,$n]:-0}"
  done
}
summary WS "WebSocket fan-out: $N subscribers, $RATE broadcasts/s of 64 bytes ($((N * RATE)) deliveries/s); 'x ws-send' = median of per-round ratios of cpu-s/M" "${FAN_SET[@]}"
summary SSE "Edgebox SSE fan-out: $N subscribers, $SSE_RATE broadcasts/s ($((N * SSE_RATE)) deliveries/s), for information" edgebox
summary POLL "Edgebox long-polling fan-out: $N subscribers, $POLL_RATE broadcasts/s ($((N * POLL_RATE)) deliveries/s), for information" edgebox
if [ -n "${MPERM[WS,edgebox]:-}" ]; then
  echo "(for comparison, Edgebox per million deliveries: WebSocket $(printf '%.3f' "${MPERM[WS,edgebox]}"), SSE ${MPERM[SSE,edgebox]:-n/a}, long polling ${MPERM[POLL,edgebox]:-n/a} CPU-seconds)"
fi
if [ -z "$MEM_NOTE" ]; then
  echo "### memory per idle WebSocket connection ($IDLE_N connections; bytes, after GC; rss without GC for information)"
  printf '%-14s %13s %-15s %15s %15s %12s\n' server rss/conn "(min-max)" heap_used/conn rss_nogc/conn "x socketio"
  for n in "${MEM_SET[@]}"; do
    [ -z "${MRSS[$n]:-}" ] && { printf '%-14s no valid run\n' "$n"; continue; }
    MMRSS[$n]=$(med "${MRSS[$n]}")
  done
  for n in "${MEM_SET[@]}"; do
    [ -z "${MRSS[$n]:-}" ] && continue
    printf '%-14s %13.0f %-15s %15.0f %15.0f %12s\n' "$n" "${MMRSS[$n]}" "($(rng "${MRSS[$n]}"))" "$(med "${MHEAP[$n]}")" "$(med "${MNOGC[$n]}")" "x$(round_ratio FIG_R MEM "$n" socketio)"
  done
fi

# Can this machine carry the offered load at all? At the CPU per delivery its runs measured (dropped or not), the bare
# loop needs NEED of its core and the generator GNEED of its cores: at GEN_MAX or above, every server lags, whatever it
# does, and the dropped rounds say nothing about the servers.
need_ws=${NEED[WS,ws-send]:-}
if [ -n "${need_ws// /}" ]; then
  sn=$(med "${NEED[WS,ws-send]}"); gn=$(med "${GNEED[WS,ws-send]}")
  echo "(capacity: at the CPU per delivery of its runs, the offered $((N * RATE)) deliveries/s took the bare ws loop $sn of its core and the generator $gn of the $GEN_CORES core(s) of GEN_CPU, medians)"
  awk -v s="$sn" -v g="$gn" -v c="$GEN_CORES" -v m="$GEN_MAX" 'BEGIN { exit !(s >= m || g >= m * c) }' &&
    PROBLEMS+=("capacity: this machine cannot carry the offered load ($N subscribers x $RATE broadcasts/s): the bare ws loop alone needs $sn of a core and the generator $gn of $GEN_CORES core(s) at the CPU per delivery measured here (limit $GEN_MAX a core); runs dropped for lagging say nothing about the servers (bench/profiles/realtime-fanout.md, section 5)")
fi
echo
echo "## targets (lower is better; verdict on the median of the per-round ratios; '-' marks a round where either run was left out)"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
target() {  # target LABEL TEST A B GOAL UNIT [ARRAY] : A's figure over B's (FIG_R, or ARRAY), lower is better
  local a=${7:-FIG_R}
  target_line "$(printf '%-30s %-14s / %-14s' "$1" "$3" "$4")" "$a" "$2" "$3" "$4" '<=' "$5" \
    "[$6: $(med_or_na "$(counted "$a" "$2" "$3")") vs $(med_or_na "$(counted "$a" "$2" "$4")"), medians]"
}
echo "# issue 14, target 5 (at the fixed offered load: $N subscribers, $RATE broadcasts/s)"
target "WS fan-out latency p50" WS edgebox ws-send 1.5 "ms" P50_R
target "WS fan-out latency p99" WS edgebox ws-send 1.5 "ms" P99_R
target "WS fan-out CPU per delivery" WS edgebox ws-send 1.0 "cpu-s/M"
target "WS fan-out CPU per delivery" WS edgebox socketio 0.8 "cpu-s/M"
if [ -n "$BEFORE" ]; then
  echo "# issue 14, target 6: no regression vs BEFORE=$BEFORE ($BEFORE_DESC): now / before at most $BEFORE_MAX (BEFORE_MAX)"
  target "WS fan-out CPU per delivery" WS edgebox edgebox-before "$BEFORE_MAX" "cpu-s/M"
  target "WS fan-out latency p50" WS edgebox edgebox-before "$BEFORE_MAX" "ms" P50_R
  target "WS fan-out latency p99" WS edgebox edgebox-before "$BEFORE_MAX" "ms" P99_R
  if [ -z "$MEM_NOTE" ]; then target "memory per idle WS connection" MEM edgebox edgebox-before "$BEFORE_MAX" "RSS bytes/conn"; fi
else
  echo "# issue 14, target 6 (no regression vs before): n/a, run with BEFORE=<git rev> to judge it"
fi
echo "# earlier targets"
if [ -z "$MEM_NOTE" ]; then
  target "memory per idle WS connection" MEM edgebox socketio 0.6 "RSS bytes/conn"
else
  echo "memory per idle WS connection: n/a ($MEM_NOTE)"
fi
echo "(for information: ws-once / ws-send x$(round_ratio FIG_R WS ws-once ws-send), edgebox / ws-once x$(round_ratio FIG_R WS edgebox ws-once); memory edgebox / ws-send x$(round_ratio FIG_R MEM edgebox ws-send) )"

echo
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} fan-out run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed; every subscriber got every broadcast exactly once and in order, no unexpected closes; every publisher kept its rate"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
echo "raw results (one JSON object per run): bench/.peers/run/realtime-load.jsonl"
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
