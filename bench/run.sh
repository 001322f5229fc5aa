#!/usr/bin/env bash
# Edgebox static-file benchmark (`npm run bench:static`; `npm run bench` runs it first). See bench/README.md.
#
# Compares, in one run and on loopback (127.0.0.1) only:
#   edgebox        Edgebox, default configuration (access log ON, Server-Timing ON)
#   edgebox-nolog  Edgebox --no-access-log (Server-Timing ON)
#   raw-node       bench/servers/raw-node.mjs: bare node:http on the same Node binary, 1 KiB from memory
#   raw-node-log   the same with --log: Edgebox's JSON access-log line per request, through the same destination
#                  (pino.destination / sonic-boom, async, the same batching), on stdout to a file like Edgebox's
#   h1-same-head   bench/profiles/h1-same-head.mjs: bare node:http sending exactly Edgebox's heads for the GET and the
#                  304 (captured from Edgebox at the start of the run; Server-Timing measured per request), log off
#   h1-same-head-log  the same plus Edgebox's JSON access line, as raw-node-log writes it (for information: what
#                  Node itself costs for Edgebox's heads; the targets stay judged against raw-node(-log))
#   sirv           with SIRV=1 only: sirv-cli 3 (--quiet; --etag for the 304 test), for information
#   nginx          1 worker, sendfile on, access_log off (skipped with a note if it cannot be installed)
#   edgebox-before with BEFORE=<git rev>: that commit of Edgebox, built in a temporary git worktree (npm ci there, its
#                  own pinned Node), in the same default configuration; reported as now / before per round
# Tests: small-file GET, If-None-Match -> 304, 256 MiB full download and a Range request for its second half.
# Servers pinned to core $SRV_CPU, wrk/curl to core $GEN_CPU; ROUNDS alternating rounds; medians.
#
# usage: bash bench/run.sh [quick]
#   env: ROUNDS (3)  PASSES (1: lib.sh)  DUR (8 s measured, per pass)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s in later rounds)  CONNS (50)
#        REPS (2 downloads of each kind per server per round)  SIRV (0; 1 adds sirv to the small-file tests)
#        EDGEBOX_STDOUT=file|null (file: access log written to bench/.peers/run/edgebox-access.jsonl)
#        MAX_SECONDS (2400: the whole run is stopped after this)  MIN_SRV_CPU (0.8)
#        BEFORE (a git rev: compare with that commit)  BEFORE_MIN (0.97: the lowest median now/before that is
#        "no regression")
#   quick: ROUNDS=1 DUR=2 WARM=1 REPS=1 (a smoke run; figures are not meaningful)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1} REPS=${REPS:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}; REPS=${REPS:-2}; SIRV=${SIRV:-0}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; MAX_SECONDS=${MAX_SECONDS:-2400}
EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}

bench_setup   # folders, the cleanup guard, the pinned Node (lib.sh)

# ---------------------------------------------------------------------------------------------------------------
# peers: Debian tools by package name, sirv-cli by npm into bench/.peers/

have_nginx() { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v wrk >/dev/null || ! have_nginx; then
  log "installing wrk and nginx-light with apt-get"
  apt_install wrk nginx-light || log "apt-get install failed"
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
fi
command -v wrk >/dev/null || { log "wrk is missing and could not be installed"; exit 1; }
for t in taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing"; exit 1; }; done
SIRV_JS="$P/node_modules/sirv-cli/bin.js"
if [ "$SIRV" = 1 ] && [ ! -f "$SIRV_JS" ]; then
  log "installing sirv-cli@3 into $P"
  npm install --prefix "$P" --no-audit --no-fund sirv-cli@3 >&2 || { log "npm install sirv-cli@3 failed"; exit 1; }
fi

# ---------------------------------------------------------------------------------------------------------------
# fixtures: a 1 KiB index.html (exactly 1024 bytes) and a 256 MiB random big.bin, fixed mtime, in the page cache
BIG_SIZE=$((256 * 1024 * 1024))
make_index_html   # lib.sh
if [ ! -f "$WWW/big.bin" ] || [ "$(stat -c %s "$WWW/big.bin")" != "$BIG_SIZE" ]; then
  log "writing the 256 MiB fixture"
  head -c "$BIG_SIZE" /dev/urandom > "$WWW/big.bin"
fi
touch -d '2024-01-01 00:00:00 UTC' "$WWW/index.html" "$WWW/big.bin"
cat "$WWW/big.bin" > /dev/null

# ---------------------------------------------------------------------------------------------------------------
# before: BEFORE=<git rev> builds that commit in a git worktree and runs it as edgebox-before (lib.sh before_setup)
before_setup

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18500-18599)
declare -A PORT=( [edgebox]=18501 [edgebox-nolog]=18502 [raw-node]=18503 [sirv]=18504 [sirv-etag]=18505 [nginx]=18506
                  [edgebox-before]=18507 [raw-node-log]=18508 [h1-same-head]=18509 [h1-same-head-log]=18510 )
EB_LOG="$RUN/edgebox-access.jsonl"; EBB_LOG="$RUN/edgebox-before-access.jsonl"; RNL_LOG="$RUN/raw-node-log-access.jsonl"
SHL_LOG="$RUN/h1-same-head-log-access.jsonl"
[ "$EDGEBOX_STDOUT" = null ] && { EB_LOG=/dev/null; EBB_LOG=/dev/null; RNL_LOG=/dev/null; SHL_LOG=/dev/null; }
# access_log FILE_OF_SERVER: where each server with its access log on writes it (emptied before each measured run)
declare -A ACCESS_LOG=( [edgebox]=$EB_LOG [edgebox-before]=$EBB_LOG [raw-node-log]=$RNL_LOG [h1-same-head-log]=$SHL_LOG )
HEADS="$RUN/h1-heads"   # Edgebox's heads, captured at the start of the run for h1-same-head(-log)
SIRV_VER=$(node -p "require('$P/node_modules/sirv-cli/package.json').version" 2>/dev/null || echo '?')
SIRVLIB_VER=$(node -p "require('$P/node_modules/sirv/package.json').version" 2>/dev/null || echo '?')
declare -A CONF=(
  [edgebox]="Edgebox default: access log ON (JSON lines on stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EB_LOG")")), Server-Timing ON"
  [edgebox-nolog]="Edgebox --no-access-log, Server-Timing ON (stdout -> bench/.peers/run/edgebox-nolog.out)"
  [raw-node]="bench/servers/raw-node.mjs: bare node:http, same Node binary; 1 KiB from memory + strong ETag; big.bin createReadStream hwm 1 MiB"
  [raw-node-log]="bench/servers/raw-node.mjs --log: raw-node + Edgebox's JSON access-log line per request (pino.destination async, 32 KiB batches; stdout -> $([ "$RNL_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$RNL_LOG")"))"
  [h1-same-head]="bench/profiles/h1-same-head.mjs: bare node:http, same Node binary, Edgebox's exact heads for GET and 304 (captured at start; Server-Timing per request; writeHead array form), 1 KiB from memory, no log"
  [h1-same-head-log]="bench/profiles/h1-same-head.mjs --log: h1-same-head + Edgebox's JSON access-log line per request as raw-node-log writes it (stdout -> $([ "$SHL_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$SHL_LOG")"))"
  [sirv]="sirv-cli $SIRV_VER --quiet (no ETag)"
  [sirv-etag]="sirv-cli $SIRV_VER --quiet --etag (weak ETag; used for the 304 test)"
  [nginx]="nginx: 1 worker, sendfile on, tcp_nopush on, access_log OFF, open_file_cache, keepalive_requests 1000000"
  [edgebox-before]="Edgebox at BEFORE=$BEFORE ($BEFORE_DESC), its own pinned Node, the same default configuration: access log ON (-> $([ "$EBB_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EBB_LOG")")), Server-Timing ON"
)

start_server() {
  local n=$1 port=${PORT[$1]}
  if port_busy "$port"; then log "port $port (for $n) is already in use"; return 1; fi
  case $n in
    edgebox)       : > "$RUN/edgebox.err"
                   [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
                   start_srv "$n" "$EB_LOG" node "$ROOT/bin/edgebox.js" "$WWW" --port "$port" --host 127.0.0.1 ;;
    edgebox-nolog) : > "$RUN/edgebox-nolog.out"
                   start_srv "$n" "$RUN/edgebox-nolog.out" node "$ROOT/bin/edgebox.js" "$WWW" --port "$port" --host 127.0.0.1 --no-access-log ;;
    edgebox-before) : > "$RUN/edgebox-before.err"
                   [ "$EBB_LOG" != /dev/null ] && : > "$EBB_LOG"
                   start_srv "$n" "$EBB_LOG" "$BEFORE_NODE" "$BEFORE_TREE/bin/edgebox.js" "$WWW" --port "$port" --host 127.0.0.1 ;;
    raw-node)      start_srv "$n" "$RUN/raw-node.out" node "$BENCH/servers/raw-node.mjs" "$port" "$WWW" ;;
    raw-node-log)  [ "$RNL_LOG" != /dev/null ] && : > "$RNL_LOG"
                   start_srv "$n" "$RNL_LOG" node "$BENCH/servers/raw-node.mjs" "$port" "$WWW" --log ;;
    h1-same-head)  start_srv "$n" "$RUN/h1-same-head.out" node "$BENCH/profiles/h1-same-head.mjs" "$port" "$WWW" --get="$HEADS/get.txt" --304="$HEADS/304.txt" ;;
    h1-same-head-log) [ "$SHL_LOG" != /dev/null ] && : > "$SHL_LOG"
                   start_srv "$n" "$SHL_LOG" node "$BENCH/profiles/h1-same-head.mjs" "$port" "$WWW" --get="$HEADS/get.txt" --304="$HEADS/304.txt" --log ;;
    sirv)          start_srv "$n" "$RUN/sirv.out" node "$SIRV_JS" "$WWW" --port "$port" --host 127.0.0.1 --quiet ;;
    sirv-etag)     start_srv "$n" "$RUN/sirv-etag.out" node "$SIRV_JS" "$WWW" --port "$port" --host 127.0.0.1 --quiet --etag ;;
    nginx)         local d="$RUN/nginx" user=""
                   mkdir -p "$d"; [ "$(id -u)" = 0 ] && user="user root;"
                   render "$BENCH/conf/nginx-static.conf" "$d/nginx.conf" "USER=$user" "PORT=$port" "WWW=$WWW" "RUN=$d"
                   start_srv "$n" "$d/stdout.log" "$NGINX_BIN" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" ;;
  esac
  PID[$n]=$SRV_PID
}

SERVERS=(edgebox edgebox-nolog raw-node raw-node-log)
[ "$SIRV" = 1 ] && SERVERS+=(sirv sirv-etag)
[ -n "$BEFORE" ] && SERVERS+=(edgebox-before)
if have_nginx; then SERVERS+=(nginx); NGINX_NOTE=""
else NGINX_NOTE="nginx could not be installed: nginx skipped, the large-file targets cannot be judged"; log "$NGINX_NOTE"; fi
for n in "${SERVERS[@]}"; do start_server "$n" || exit 1; done
for n in "${SERVERS[@]}"; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" "$RUN/nginx/error.log" 2>/dev/null >&2; exit 1; }
done
# h1-same-head(-log) answer with Edgebox's heads: read from Edgebox's answers to a GET and to a GET with its ETag, then
# they start (lib.sh capture_head)
mkdir -p "$HEADS"
capture_head "$HEADS/get.txt" "http://127.0.0.1:${PORT[edgebox]}/index.html" ||
  { log "could not read Edgebox's response head for h1-same-head"; exit 1; }
EB_ETAG=$(tr -d '\r' < "$HEADS/get.txt" | awk -F': ' 'tolower($1) == "etag" { print $2 }')
capture_head "$HEADS/304.txt" "http://127.0.0.1:${PORT[edgebox]}/index.html" -H "If-None-Match: $EB_ETAG" ||
  { log "could not read Edgebox's 304 head for h1-same-head"; exit 1; }
for n in h1-same-head h1-same-head-log; do start_server "$n" || exit 1; done
for n in h1-same-head h1-same-head-log; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done
SERVERS=(edgebox edgebox-nolog raw-node raw-node-log h1-same-head h1-same-head-log "${SERVERS[@]:4}")

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/static-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/static-$STAMP.txt"
exec > >(tee "$OUT.tmp")

echo "# Edgebox static benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  ${1:-full}"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s (later rounds $(warm_s 2)s) CONNS=$CONNS REPS=$REPS  server core $SRV_CPU, load generator core $GEN_CPU, $(nproc) cores, 127.0.0.1 only"
echo "## versions"
echo "node $(node -v) ($(command -v node)) for Edgebox, raw-node(-log), h1-same-head(-log) and sirv; pino $(node -p "require('$ROOT/node_modules/pino/package.json').version") for Edgebox and raw-node-log"
echo "edgebox $(node -p "require('$ROOT/package.json').version") (this tree: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), uncommitted changes included)"
[ -n "$BEFORE" ] && echo "edgebox-before: BEFORE=$BEFORE = $BEFORE_DESC, node $("$BEFORE_NODE" -v) ($BEFORE_NODE)"
[ "$SIRV" = 1 ] && echo "sirv-cli $SIRV_VER (sirv $SIRVLIB_VER)"
if have_nginx; then echo "$("$NGINX_BIN" -v 2>&1)"; else echo "nginx: not installed ($NGINX_NOTE)"; fi
echo "$(wrk -v 2>&1 | head -1)"
echo "$(curl -V | head -1 | cut -d' ' -f1-2)"
echo "## configurations"
for n in "${SERVERS[@]}"; do printf '%-14s port %s  %s\n' "$n" "${PORT[$n]}" "${CONF[$n]}"; done

# ---------------------------------------------------------------------------------------------------------------
# checks: what each server answers (the load runs only count what these checks accept)
echo "## checks (GET /index.html; If-None-Match; Range on big.bin)"
declare -A ETAG=() OK304=()
CHECK_FAIL=()
HALF=$((BIG_SIZE / 2))
for n in "${SERVERS[@]}"; do
  url="http://127.0.0.1:${PORT[$n]}/index.html"
  r=$(curl -s -o /dev/null -D "$RUN/hdr" --max-time 5 -w '%{http_code} %{size_download}' "$url")
  et=$(tr -d '\r' < "$RUN/hdr" | awk -F': ' 'tolower($1)=="etag"{print $2}')
  st=$(tr -d '\r' < "$RUN/hdr" | awk -F': ' 'tolower($1)=="server-timing"{print $2}')
  ETAG[$n]=$et
  c304=n/a
  if [ -n "$et" ]; then
    c304=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "If-None-Match: $et" "$url")
    [ "$c304" = 304 ] && OK304[$n]=1
  fi
  rr=$(curl -s -o /dev/null --max-time 30 -w '%{http_code} %{size_download}' -H "Range: bytes=$HALF-$((HALF + 99))" "http://127.0.0.1:${PORT[$n]}/big.bin")
  [ "$r" = "200 1024" ] || CHECK_FAIL+=("$n: GET /index.html -> $r (want 200 1024)")
  case $n in raw-node*|edgebox*|h1-same-head*|nginx|sirv-etag) [ "$c304" = 304 ] || CHECK_FAIL+=("$n: If-None-Match -> $c304 (want 304)") ;; esac
  case $n in h1-same-head*) rr="n/a (small-file tests only)" ;;
    *) [ "$rr" = "206 100" ] || CHECK_FAIL+=("$n: Range bytes=$HALF-$((HALF + 99)) on big.bin -> $rr (want 206 100)") ;; esac
  printf '%-16s GET %s (want 200 1024)  ETag=%s  Server-Timing=%s  INM->%s  Range 100 B->%s\n' \
    "$n" "$r" "${et:-none}" "${st:-none}" "$c304" "$rr"
done

# h1-same-head sends Edgebox's heads (lib.sh same_head: status, field names, case, order and values but Date and
# Server-Timing's), for the GET and for the 304
for n in h1-same-head h1-same-head-log; do
  capture_head "$RUN/hdr-sh-get" "http://127.0.0.1:${PORT[$n]}/index.html"
  capture_head "$RUN/hdr-sh-304" "http://127.0.0.1:${PORT[$n]}/index.html" -H "If-None-Match: $EB_ETAG"
  echo "GET:"; same_head "$n" "$HEADS/get.txt" "$RUN/hdr-sh-get"
  echo "304:"; same_head "$n" "$HEADS/304.txt" "$RUN/hdr-sh-304"
done
# raw-node-log and h1-same-head-log write the line Edgebox writes: the same keys in the same order
if [ "$EB_LOG" != /dev/null ]; then
  same_log_keys "$EB_LOG" "$RNL_LOG" '"msg":"request","method":"GET"'
  same_log_keys "$EB_LOG" "$SHL_LOG" '"msg":"request","method":"GET"' h1-same-head-log
fi

# ---------------------------------------------------------------------------------------------------------------
# small-file load: wrk -t1 -c$CONNS on core $GEN_CPU, WARM s warm-up (not measured) then DUR s measured, through
# load_run (lib.sh): server CPU = user+sys of the server's process group over the measured run
wrk_run() {  # wrk_run TEST ROUND SERVER : a warm-up (lib.sh warm_for), then DUR s measured
  local test=$1 r=$2 n=$3 url="http://127.0.0.1:${PORT[$3]}/index.html" hdr=() loglines="" warn=""
  [ "$test" = 304 ] && hdr=(-H "If-None-Match: ${ETAG[$n]}")
  local cmd=(wrk -t1 -c"$CONNS" -d@DUR@s "${hdr[@]}" "$url")
  warm_for "$r" "$n"; warm_up "$WARM_S" "${cmd[@]}"
  local alog=${ACCESS_LOG[$n]:-/dev/null}
  [ "$alog" != /dev/null ] && : > "$alog"   # keep the log file small between runs
  load_run -k wrk -p "${PID[$n]}" -o "$RUN/wrk.out" -- "${cmd[@]}"
  if [ "$alog" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(wc -l < "$alog")"; fi
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn=" (wrk near the limit of core $GEN_CPU)"
  printf '%-4s round%s %-16s %s%s%s\n' "$test" "$r" "$n" "$LR_LINE" "$loglines" "$warn"
  [ "$LR_COUNT" = 0 ] && sed 's/^/    wrk: /' "$RUN/wrk.out" | head -5
  keep_run "$test" "$n" "$r"
}

# servers per test; the order rotates every round so no server always runs first or last (edgebox-before runs right
# beside edgebox: lib.sh rotate_before)
GET_SET=(edgebox edgebox-nolog raw-node raw-node-log h1-same-head h1-same-head-log)
C304_SET=("${GET_SET[@]}")
[ "$SIRV" = 1 ] && { GET_SET+=(sirv); C304_SET+=(sirv-etag); }
have_nginx && GET_SET+=(nginx)   # not in the 304 test: there wrk, not nginx, is the limit (gen_cpu 0.98-0.99), so it says nothing
[ -n "$BEFORE" ] && { GET_SET+=(edgebox-before); C304_SET+=(edgebox-before); }
SMALL_SET=($(printf '%s\n' "${GET_SET[@]}" "${C304_SET[@]}" | awk '!seen[$0]++'))   # both tests' servers, once each
# the 256 MiB file: the servers a line reads (the targets against nginx, edgebox-nolog for information, before)
LARGE_SET=(edgebox edgebox-nolog); have_nginx && LARGE_SET+=(nginx); [ -n "$BEFORE" ] && LARGE_SET+=(edgebox-before)

echo "## load runs (wrk -t1 -c$CONNS, ${DUR}s measured after a warm-up: ${WARM}s in round 1, later $(warm_s 2)s before a server's first run of the round;"
echo "##   GET /index.html, then If-None-Match -> 304, each server's two runs back to back)"
for r in $(seq 1 "$ROUNDS"); do
  # each server's GET and 304 runs back to back (one warm-up, lib.sh warm_for); PASSES times (lib.sh)
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${SMALL_SET[@]}"); do
      [[ " ${GET_SET[*]} " == *" $n "* ]] && wrk_run GET "$r" "$n"
      [[ " ${C304_SET[*]} " == *" $n "* ]] || continue
      if [ -z "${OK304[$n]:-}" ]; then echo "304  round$r $n: skipped (no 304 for If-None-Match in the checks)"; continue; fi
      wrk_run 304 "$r" "$n"
    done
  done
done

# ---------------------------------------------------------------------------------------------------------------
# large file: curl on core $GEN_CPU downloads /big.bin fully and the second half with Range, REPS times per round,
# each through load_run; the figure kept beside the MB/s is the server's CPU seconds for that download
echo "## large-file runs (256 MiB /big.bin full, and Range: bytes=$HALF- ; curl on core $GEN_CPU; MB/s = 1e6 bytes/s)"
download() {  # download TEST(full|range) ROUND SERVER
  local test=$1 r=$2 n=$3 args=() want="200 $BIG_SIZE"
  [ "$test" = range ] && { args=(-H "Range: bytes=$HALF-"); want="206 $((BIG_SIZE - HALF))"; }
  load_run -k curl -p "${PID[$n]}" -o "$RUN/curl.out" -t 130 -- curl -s -o /dev/null --max-time 120 "${args[@]}" \
    -w '%{speed_download} %{http_code} %{size_download}' "http://127.0.0.1:${PORT[$n]}/big.bin"
  local got; got=$(awk '{ print $2, $3 }' "$RUN/curl.out")
  [ -z "$LR_DROP" ] && [ "$got" != "$want" ] && LR_DROP="answered '$got' (want '$want')"
  printf '%-5s round%s %-14s MB/s=%-6s status_size=%-16s srv_cpu_s=%s srv_cpu=%s curl_cpu=%s\n' \
    "$test" "$r" "$n" "$(calc "${LR_RATE:-0}" %.0f)" "${got// /_}" "$LR_SRV_CPU_S" "$LR_SRV_CPU" "${LR_GEN_CPU:-?}"
  keep_run "$test" "$n" "$r" "$LR_SRV_CPU_S"
}
for r in $(seq 1 "$ROUNDS"); do
  for n in $(rotate_before $((r - 1)) "${LARGE_SET[@]}"); do
    for i in $(seq 1 "$REPS"); do download full "$r" "$n"; download range "$r" "$n"; done
  done
done

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); 'x raw-node' = median of the per-round ratios of req per server-CPU-second (of req/s in brackets)"
for test in GET 304; do
  if [ $test = GET ]; then set_=("${GET_SET[@]}"); else set_=("${C304_SET[@]}"); fi
  echo "### $test /index.html (1 KiB)$([ $test = 304 ] && echo ' with If-None-Match: <its ETag>')"
  summary_table "$test" raw-node req/s "${set_[@]}"
done
echo "### 256 MiB /big.bin, MB/s (1e6 bytes/s), $REPS download(s) per round; srv-cpu-s = server CPU seconds per download; 'x nginx' = median of per-round ratios"
printf '%-14s %8s %-13s %9s %11s | %8s %-13s %9s %11s | %s\n' server full "(min-max)" "x nginx" srv-cpu-s range "(min-max)" "x nginx" srv-cpu-s "dropped full/range"
for n in "${LARGE_SET[@]}"; do
  f=$(counted RATE_R full "$n"); h=$(counted RATE_R range "$n")
  if [ -z "$f$h" ]; then printf '%-14s no counted download (dropped full/range: %s/%s)\n' "$n" "${NDROP[full,$n]:-0}" "${NDROP[range,$n]:-0}"; continue; fi
  printf '%-14s %8.0f %-13s %9s %11s | %8.0f %-13s %9s %11s | %s/%s\n' "$n" "$(med "$f")" "($(rng "$f" | sed 's/\.[0-9]*//g'))" \
    "x$(round_ratio RATE_R full "$n" nginx)" "$(med "$(counted FIG_R full "$n")")" \
    "$(med "$h")" "($(rng "$h" | sed 's/\.[0-9]*//g'))" "x$(round_ratio RATE_R range "$n" nginx)" "$(med "$(counted FIG_R range "$n")")" \
    "${NDROP[full,$n]:-0}" "${NDROP[range,$n]:-0}"
done

echo
echo "## targets (Edgebox vs peers measured in this run; each judged on the median of the per-round ratios)"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
# issue 14, target 4: log on vs the raw server writing the same access-log line, log off vs the raw server without one
for test in GET 304; do
  target_line "$test: edgebox / raw-node-log, req per server-CPU-second" FIG_R $test edgebox raw-node-log '>=' 0.9 "[${CONF[edgebox]}] vs [${CONF[raw-node-log]}]"
  target_line "$test: edgebox-nolog / raw-node, req per server-CPU-second" FIG_R $test edgebox-nolog raw-node '>=' 0.95 "[${CONF[edgebox-nolog]}]"
  echo "(for information, $test: edgebox / raw-node x$(round_ratio FIG_R $test edgebox raw-node), raw-node-log / raw-node x$(round_ratio FIG_R $test raw-node-log raw-node): what the access log costs the bare server)"
done
# Node's own cost: the same heads (and log line) from a bare node:http server doing only what Edgebox must do
echo "## for information: Node's own cost (h1-same-head sends Edgebox's exact heads; per server CPU-second, medians of per-round ratios)"
for test in GET 304; do
  info_line "$test: edgebox / h1-same-head-log (log on)" FIG_R $test edgebox h1-same-head-log
  info_line "$test: edgebox-nolog / h1-same-head (log off)" FIG_R $test edgebox-nolog h1-same-head
  info_line "$test: h1-same-head / raw-node (cost of Edgebox's fields)" FIG_R $test h1-same-head raw-node
  info_line "$test: h1-same-head-log / raw-node-log" FIG_R $test h1-same-head-log raw-node-log
done
if have_nginx; then
  target_line "256 MiB full: edgebox / nginx, MB/s" RATE_R full edgebox nginx '>=' 0.5 "[${CONF[edgebox]}] vs [${CONF[nginx]}]"
  target_line "256 MiB Range (2nd half): edgebox / nginx, MB/s" RATE_R range edgebox nginx '>=' 0.5 "[${CONF[edgebox]}] vs [${CONF[nginx]}]"
  echo "(for information: edgebox-nolog / nginx  full x$(round_ratio RATE_R full edgebox-nolog nginx)  range x$(round_ratio RATE_R range edgebox-nolog nginx))"
else
  echo "256 MiB full and Range targets: n/a ($NGINX_NOTE)"
fi

if [ -n "$BEFORE" ]; then
  before_header   # lib.sh
  echo "# the large-file MB/s are not divided by the server's CPU and move with anything else on the machine: reported only"
  before_line "GET: req per server-CPU-second, now / before" FIG_R GET edgebox edgebox-before judge
  before_line "304: req per server-CPU-second, now / before" FIG_R 304 edgebox edgebox-before judge
  before_line "GET: req/s, now / before" RATE_R GET edgebox edgebox-before -
  before_line "256 MiB full: MB/s, now / before" RATE_R full edgebox edgebox-before -
  before_line "256 MiB Range (2nd half): MB/s, now / before" RATE_R range edgebox edgebox-before -
fi

if [ ${#CHECK_FAIL[@]} -gt 0 ]; then
  echo "NOTE: failed checks (no target is judged):"; printf '  %s\n' "${CHECK_FAIL[@]}"
fi
echo
if [ ${#DROPPED[@]} -gt 0 ]; then
  echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"
else
  echo "all runs answered with 2xx/3xx only, no socket errors, full sizes; every server kept its core busy"
fi
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
