#!/usr/bin/env bash
# Edgebox caching-proxy benchmark (`npm run bench:proxy`). See bench/README.md, "Proxy benchmark".
#
# Compares, in one run and on loopback (127.0.0.1) only, in front of one origin (bench/servers/origin.mjs):
#   cache hits, GET /obj (1 KiB, Cache-Control: public, max-age=3600):
#     edgebox           Edgebox proxy + cache, access log ON (the default), Server-Timing ON
#     edgebox-nolog     the same with "log": {"access": false}
#     raw-node          bench/servers/raw-node.mjs: the same 1 KiB from memory, no proxy at all (the ceiling)
#     raw-node-log      the same with --log: Edgebox's JSON access-log line per request, through the same destination
#                       (pino.destination / sonic-boom, async, the same batching), on stdout to a file like Edgebox's
#     h1-same-head      bench/profiles/h1-same-head.mjs: bare node:http sending exactly Edgebox's cache-hit head
#                       (captured from Edgebox at the start of the run; Age and Server-Timing per request), no log
#     h1-same-head-log  the same plus Edgebox's JSON access line as raw-node-log writes it (for information: what
#                       Node itself costs for Edgebox's hit head; the targets stay judged against raw-node(-log))
#     nginx-cache       nginx proxy_cache, 1 worker, access_log off (bench/conf/nginx-cache.conf)
#     varnish           varnishd, builtin VCL + X-Cache (bench/conf/varnish.vcl), -s malloc,64m
#   uncached proxying, GET /nostore (the same 1 KiB, Cache-Control: no-store):
#     edgebox-uncached  Edgebox proxy without "cache", access log ON (the default), Server-Timing ON
#     edgebox-uncached-nolog  the same with "log": {"access": false} (for information)
#     http-proxy        npm http-proxy (bench/servers/http-proxy.mjs), keep-alive agent
#     undici-pass       bench/servers/undici-pass.mjs: node:http + undici Pool + pipe
#   with BEFORE=<git rev> (lib.sh before_setup): edgebox-before (cache hits) and edgebox-uncached-before (uncached),
#   that commit of Edgebox in the same configurations, each run right beside its counterpart (lib.sh rotate_before),
#   reported as now / before per round
# Servers pinned to core $SRV_CPU, wrk to core $GEN_CPU, the origin to core $ORIGIN_CPU (default: $GEN_CPU, so the
# origin's CPU never counts as the proxy's); ROUNDS alternating rounds; medians of req/s and req per server CPU-second.
#
# usage: bash bench/proxy.sh [quick]
#   env: ROUNDS (3)  PASSES (1: lib.sh)  DUR (8 s measured, per pass)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s in later rounds)  CONNS (50)  SRV_CPU (0)  GEN_CPU (1)  ORIGIN_CPU (GEN_CPU)
#        EDGEBOX_STDOUT=file|null   MAX_SECONDS (1800)  MIN_SRV_CPU (0.8)
#        BEFORE (a git rev: compare with that commit)  BEFORE_MIN (0.97: the lowest median now/before that is "no regression")
#   quick: ROUNDS=1 DUR=2 WARM=1 (a smoke run; figures are not meaningful)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; ORIGIN_CPU=${ORIGIN_CPU:-$GEN_CPU}; MAX_SECONDS=${MAX_SECONDS:-1800}
EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}

bench_setup   # folders, the cleanup guard, the pinned Node (lib.sh)

# ---------------------------------------------------------------------------------------------------------------
# peers: Debian tools by package name, http-proxy by npm into bench/.peers/
[ -d "$ROOT/node_modules/undici" ] || { log "undici is missing from node_modules; run npm install first"; exit 1; }

have_nginx() { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }
have_varnish() { command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ]; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
have_nginx || missing+=(nginx-light)
have_varnish || missing+=(varnish)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  apt_install "${missing[@]}" || log "apt-get install ${missing[*]} failed"
fi
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
VARNISHD_BIN=$(command -v varnishd || echo /usr/sbin/varnishd)
command -v wrk >/dev/null || { log "wrk is missing and could not be installed"; exit 1; }
for t in taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing"; exit 1; }; done
if [ ! -f "$P/node_modules/http-proxy/package.json" ]; then
  log "installing http-proxy@1 into $P"
  timeout 300 npm install --prefix "$P" --no-audit --no-fund http-proxy@1 >&2 || { log "npm install http-proxy@1 failed"; exit 1; }
fi

# before: BEFORE=<git rev> builds that commit in a git worktree (lib.sh before_setup)
before_setup

# ---------------------------------------------------------------------------------------------------------------
# fixture: the same 1 KiB index.html as bench/run.sh (exactly 1024 bytes); the origin and raw-node answer its bytes
make_index_html   # lib.sh (fixed mtime)

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18600-18699)
declare -A PORT=( [origin]=18600 [edgebox]=18601 [edgebox-nolog]=18602 [raw-node]=18603 [nginx-cache]=18604
                  [varnish]=18605 [edgebox-uncached]=18606 [http-proxy]=18607 [undici-pass]=18608 [edgebox-uncached-nolog]=18609
                  [raw-node-log]=18610 [edgebox-before]=18611 [edgebox-uncached-before]=18612 [h1-same-head]=18613
                  [h1-same-head-log]=18614 )
ORIGIN=${PORT[origin]}
EB_LOG="$RUN/proxy-edgebox-access.jsonl"; EBU_LOG="$RUN/proxy-edgebox-uncached-access.jsonl"
RNL_LOG="$RUN/proxy-raw-node-log-access.jsonl"; SHL_LOG="$RUN/proxy-h1-same-head-log-access.jsonl"
EBB_LOG="$RUN/proxy-edgebox-before-access.jsonl"; EBUB_LOG="$RUN/proxy-edgebox-uncached-before-access.jsonl"
[ "$EDGEBOX_STDOUT" = null ] && { EB_LOG=/dev/null; EBU_LOG=/dev/null; RNL_LOG=/dev/null; SHL_LOG=/dev/null; EBB_LOG=/dev/null; EBUB_LOG=/dev/null; }
# the access log of each server that writes one (emptied before each measured run)
declare -A ACCESS_LOG=( [edgebox]=$EB_LOG [edgebox-uncached]=$EBU_LOG [raw-node-log]=$RNL_LOG [edgebox-before]=$EBB_LOG
                        [edgebox-uncached-before]=$EBUB_LOG [h1-same-head-log]=$SHL_LOG )
HEAD_HIT="$RUN/proxy-edgebox-hit-head.txt"   # Edgebox's cache-hit head, captured at the start for h1-same-head(-log)
logdest() { [ "$1" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$1")"; }
HP_VER=$(node -p "require('$P/node_modules/http-proxy/package.json').version" 2>/dev/null || echo '?')
UNDICI_VER=$(node -p "require('$ROOT/node_modules/undici/package.json').version")
NGINX_VER=$("$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///')
VARNISH_VER=$("$VARNISHD_BIN" -V 2>&1 | sed -n '1s/.*(varnish-\([^ ]*\).*/\1/p')
declare -A CONF=(
  [edgebox]="Edgebox proxy+cache (memory store), access log ON (JSON lines on stdout -> $(logdest "$EB_LOG")), Server-Timing ON"
  [edgebox-nolog]="Edgebox proxy+cache (memory store), log.access=false, Server-Timing ON"
  [raw-node]="bench/servers/raw-node.mjs: bare node:http, same Node binary, the 1 KiB from memory, no proxying"
  [raw-node-log]="bench/servers/raw-node.mjs --log: raw-node + Edgebox's JSON access-log line per request (pino.destination async, 32 KiB batches; stdout -> $(logdest "$RNL_LOG"))"
  [h1-same-head]="bench/profiles/h1-same-head.mjs: bare node:http, same Node binary, Edgebox's exact cache-hit head (captured at start; Age and Server-Timing per request; writeHead array form), 1 KiB from memory, no proxying, no log"
  [h1-same-head-log]="bench/profiles/h1-same-head.mjs --log: h1-same-head + Edgebox's JSON access-log line per request as raw-node-log writes it (stdout -> $(logdest "$SHL_LOG"))"
  [edgebox-before]="Edgebox at BEFORE=$BEFORE ($BEFORE_DESC), its own pinned Node, proxy+cache, access log ON (-> $(logdest "$EBB_LOG")), Server-Timing ON"
  [edgebox-uncached-before]="Edgebox at BEFORE=$BEFORE, proxy without cache, access log ON (-> $(logdest "$EBUB_LOG")), Server-Timing ON"
  [nginx-cache]="nginx ${NGINX_VER:-?} proxy_cache (1 worker, access_log OFF, keepalive 16 to the origin, cache files in bench/.peers/run/nginx-cache/cache)"
  [varnish]="Varnish ${VARNISH_VER:-?} (builtin VCL + X-Cache, -s malloc,64m, default thread pools; manager+child counted)"
  [edgebox-uncached]="Edgebox proxy without cache, access log ON (JSON lines on stdout -> $(logdest "$EBU_LOG")), Server-Timing ON"
  [edgebox-uncached-nolog]="Edgebox proxy without cache, log.access=false, Server-Timing ON (for information)"
  [http-proxy]="http-proxy $HP_VER (bench/servers/http-proxy.mjs, keep-alive agent maxSockets 256), no log"
  [undici-pass]="bench/servers/undici-pass.mjs: node:http + undici $UNDICI_VER Pool + pipe, hop-by-hop headers stripped only, no log"
)

eb_config() {  # eb_config PORT CACHE(true|false) ACCESSLOG(true|false) FILE
  local cache=""; [ "$2" = true ] && cache=',"cache":true'
  printf '{"listen":[{"host":"127.0.0.1","port":%s}],"log":{"access":%s},"sites":[{"routes":[{"path":"/","proxy":{"upstreams":["http://127.0.0.1:%s"]%s}}]}]}\n' \
    "$1" "$3" "$ORIGIN" "$cache" > "$4"
}

start_server() {
  local n=$1 port=${PORT[$1]}
  if port_busy "$port"; then log "port $port (for $n) is already in use"; return 1; fi
  : > "$RUN/$n.err"
  case $n in
    origin)           SRV_CPU=$ORIGIN_CPU start_srv "$n" "$RUN/origin.out" node "$BENCH/servers/origin.mjs" "$port" "$WWW/index.html" ;;
    edgebox)          eb_config "$port" true true "$RUN/proxy-edgebox.json"
                      [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
                      start_srv "$n" "$EB_LOG" node "$ROOT/bin/edgebox.js" --config "$RUN/proxy-edgebox.json" ;;
    edgebox-nolog)    eb_config "$port" true false "$RUN/proxy-edgebox-nolog.json"; : > "$RUN/edgebox-nolog.out"
                      start_srv "$n" "$RUN/edgebox-nolog.out" node "$ROOT/bin/edgebox.js" --config "$RUN/proxy-edgebox-nolog.json" ;;
    edgebox-uncached) eb_config "$port" false true "$RUN/proxy-edgebox-uncached.json"
                      [ "$EBU_LOG" != /dev/null ] && : > "$EBU_LOG"
                      start_srv "$n" "$EBU_LOG" node "$ROOT/bin/edgebox.js" --config "$RUN/proxy-edgebox-uncached.json" ;;
    edgebox-uncached-nolog) eb_config "$port" false false "$RUN/proxy-edgebox-uncached-nolog.json"; : > "$RUN/edgebox-uncached-nolog.out"
                      start_srv "$n" "$RUN/edgebox-uncached-nolog.out" node "$ROOT/bin/edgebox.js" --config "$RUN/proxy-edgebox-uncached-nolog.json" ;;
    raw-node)         start_srv "$n" "$RUN/raw-node.out" node "$BENCH/servers/raw-node.mjs" "$port" "$WWW" ;;
    raw-node-log)     [ "$RNL_LOG" != /dev/null ] && : > "$RNL_LOG"
                      start_srv "$n" "$RNL_LOG" node "$BENCH/servers/raw-node.mjs" "$port" "$WWW" --log ;;
    h1-same-head)     start_srv "$n" "$RUN/h1-same-head.out" node "$BENCH/profiles/h1-same-head.mjs" "$port" "$WWW" --hit="$HEAD_HIT" ;;
    h1-same-head-log) [ "$SHL_LOG" != /dev/null ] && : > "$SHL_LOG"
                      start_srv "$n" "$SHL_LOG" node "$BENCH/profiles/h1-same-head.mjs" "$port" "$WWW" --hit="$HEAD_HIT" --log ;;
    edgebox-before)   eb_config "$port" true true "$RUN/proxy-edgebox-before.json"
                      [ "$EBB_LOG" != /dev/null ] && : > "$EBB_LOG"
                      start_srv "$n" "$EBB_LOG" "$BEFORE_NODE" "$BEFORE_TREE/bin/edgebox.js" --config "$RUN/proxy-edgebox-before.json" ;;
    edgebox-uncached-before) eb_config "$port" false true "$RUN/proxy-edgebox-uncached-before.json"
                      [ "$EBUB_LOG" != /dev/null ] && : > "$EBUB_LOG"
                      start_srv "$n" "$EBUB_LOG" "$BEFORE_NODE" "$BEFORE_TREE/bin/edgebox.js" --config "$RUN/proxy-edgebox-uncached-before.json" ;;
    http-proxy)       start_srv "$n" "$RUN/http-proxy.out" node "$BENCH/servers/http-proxy.mjs" "$port" "$ORIGIN" ;;
    undici-pass)      start_srv "$n" "$RUN/undici-pass.out" node "$BENCH/servers/undici-pass.mjs" "$port" "$ORIGIN" ;;
    nginx-cache)      local d="$RUN/nginx-cache" user=""
                      rm -rf "$d/cache"; mkdir -p "$d"; [ "$(id -u)" = 0 ] && user="user root;"
                      render "$BENCH/conf/nginx-cache.conf" "$d/nginx.conf" "USER=$user" "PORT=$port" "ORIGIN=$ORIGIN" "RUN=$d"
                      start_srv "$n" "$d/stdout.log" "$NGINX_BIN" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" ;;
    varnish)          local d="$RUN/varnish"
                      rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
                      render "$BENCH/conf/varnish.vcl" "$d/default.vcl" "ORIGIN=$ORIGIN"
                      start_srv "$n" "$RUN/varnish.out" "$VARNISHD_BIN" -F -a "127.0.0.1:$port" -T 127.0.0.1:0 -f "$d/default.vcl" \
                        -n "$d/work" -s malloc,64m ;;
  esac
  PID[$n]=$SRV_PID
}

NOTES=()
SERVERS=(origin edgebox edgebox-nolog raw-node raw-node-log edgebox-uncached edgebox-uncached-nolog http-proxy undici-pass)
HIT_SET=(edgebox edgebox-nolog raw-node raw-node-log)
if have_nginx; then SERVERS+=(nginx-cache); HIT_SET+=(nginx-cache)
else NOTES+=("nginx could not be installed: nginx-cache skipped, its target is n/a"); fi
if have_varnish; then SERVERS+=(varnish); HIT_SET+=(varnish)
else NOTES+=("varnish could not be installed: varnish skipped, its target is n/a"); fi
UNC_SET=(edgebox-uncached edgebox-uncached-nolog http-proxy undici-pass)
if [ -n "$BEFORE" ]; then SERVERS+=(edgebox-before edgebox-uncached-before); HIT_SET+=(edgebox-before); UNC_SET+=(edgebox-uncached-before); fi
for n in "${SERVERS[@]}"; do start_server "$n" || exit 1; done
for n in "${SERVERS[@]}"; do
  if ! wait_port "${PORT[$n]}"; then
    if [ "$n" = varnish ]; then   # optional peer: leave it out with a note
      NOTES+=("varnish did not start (stderr: $(tr '\n' ' ' < "$RUN/varnish.err" | cut -c1-300)): skipped, its target is n/a")
      stop_srv "${PID[varnish]}"; unset 'PID[varnish]'; HIT_SET=("${HIT_SET[@]/varnish}"); continue
    fi
    log "$n did not start; its stderr:"; cat "$RUN/$n.err" "$RUN/nginx-cache/error.log" 2>/dev/null >&2; exit 1
  fi
done
HIT_SET=($(printf '%s\n' "${HIT_SET[@]}" | grep .))
# h1-same-head(-log) answer with Edgebox's head for a cache hit: the second of two GETs (lib.sh capture_head); then
# they start
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:${PORT[edgebox]}/obj"
capture_head "$HEAD_HIT" "http://127.0.0.1:${PORT[edgebox]}/obj" || { log "could not read Edgebox's cache-hit head for h1-same-head"; exit 1; }
for n in h1-same-head h1-same-head-log; do start_server "$n" || exit 1; done
for n in h1-same-head h1-same-head-log; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done
SERVERS+=(h1-same-head h1-same-head-log)
HIT_SET=("${HIT_SET[@]:0:4}" h1-same-head h1-same-head-log "${HIT_SET[@]:4}")
for n in "${NOTES[@]}"; do log "$n"; done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/proxy-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/proxy-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox proxy benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s CONNS=$CONNS; proxies pinned to core $SRV_CPU, wrk to core $GEN_CPU, origin to core $ORIGIN_CPU"
[ -n "$BEFORE" ] && echo "# edgebox-before: BEFORE=$BEFORE = $BEFORE_DESC, node $("$BEFORE_NODE" -v) ($BEFORE_NODE)"
echo "# node $(node -v) ($(command -v node)), pino $(node -p "require('$ROOT/node_modules/pino/package.json').version") (Edgebox, raw-node-log), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores, $(uname -r)"
echo "# origin: bench/servers/origin.mjs on port $ORIGIN (same Node): /obj = 1 KiB Cache-Control: public, max-age=3600; /nostore = the same bytes, no-store"
echo "# server CPU = the proxy's own process group only (the origin is a separate group on core $ORIGIN_CPU, shown as orig_cpu)"
echo "## servers"
for n in "${SERVERS[@]}"; do [ "$n" = origin ] && continue; [ -n "${PID[$n]:-}" ] && printf '%-22s port %s  %s\n' "$n" "${PORT[$n]}" "${CONF[$n]}"; done
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done

# ---------------------------------------------------------------------------------------------------------------
# checks: status and size of each server's answer; for the caches, the first request fills, the second must be a hit
hdr() { tr -d '\r' < "$RUN/hdr" | awk -F': ' -v h="$1" 'tolower($1)==h {print $2}'; }
origin_hits() { curl -s --max-time 5 "http://127.0.0.1:$ORIGIN/__hits"; }
echo "## checks (each: status and size, want 200 1024; caches: the second GET must be a hit)"
CHECK_FAIL=(); PROBLEMS=()
declare -A OKSRV=()
check() {  # check SERVER PATH
  local n=$1 path=$2 url="http://127.0.0.1:${PORT[$1]}$2" r1 r2 cs xc info="" ok=1
  r1=$(curl -s -o /dev/null -D "$RUN/hdr" --max-time 10 -w '%{http_code} %{size_download}' "$url")
  info="1st: $r1 Cache-Status=$(hdr cache-status) X-Cache=$(hdr x-cache) Cache-Control=$(hdr cache-control)"
  r2=$(curl -s -o /dev/null -D "$RUN/hdr" --max-time 10 -w '%{http_code} %{size_download}' "$url")
  cs=$(hdr cache-status); xc=$(hdr x-cache)
  info+="  |  2nd: $r2 Cache-Status=${cs:-none} X-Cache=${xc:-none} Age=$(hdr age) Server-Timing=$(hdr server-timing)"
  [ "$r1" = "200 1024" ] && [ "$r2" = "200 1024" ] || { ok=0; CHECK_FAIL+=("$n: GET $path -> $r1 then $r2 (want 200 1024)"); }
  case $n in
    edgebox|edgebox-nolog|edgebox-before) [[ "$cs" == *hit* ]] || { ok=0; CHECK_FAIL+=("$n: second GET $path has Cache-Status '${cs:-none}' (want ...hit)"); } ;;
    nginx-cache|varnish)   [ "$xc" = HIT ] || { ok=0; CHECK_FAIL+=("$n: second GET $path has X-Cache '${xc:-none}' (want HIT)"); } ;;
  esac
  printf '%-22s GET %-9s %s\n' "$n" "$path" "$info"
  [[ "$n" == h1-same-head* ]] && same_head "$n" "$HEAD_HIT" "$RUN/hdr"   # the second GET's head: Edgebox's hit head
  [ $ok = 1 ] && OKSRV[$n]=1
}
curl -s -o /dev/null --max-time 5 -w '' "http://127.0.0.1:$ORIGIN/obj"
for n in "${HIT_SET[@]}"; do check "$n" /obj; done
for n in "${UNC_SET[@]}"; do check "$n" /nostore; done
# raw-node-log and h1-same-head-log write the line Edgebox writes for a hit: the same keys in the same order
if [ "$EB_LOG" != /dev/null ]; then
  same_log_keys "$EB_LOG" "$RNL_LOG" '"msg":"request","method":"GET".*"cache":"HIT"'
  same_log_keys "$EB_LOG" "$SHL_LOG" '"msg":"request","method":"GET".*"cache":"HIT"' h1-same-head-log
fi
for n in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $n"); done

# ---------------------------------------------------------------------------------------------------------------
# load: wrk -t1 -c$CONNS on core $GEN_CPU, WARM s warm-up (not measured) then DUR s measured, through load_run
# (lib.sh): server CPU = the proxy's process group over the measured run; the origin's share and requests beside it
wrk_run() {  # wrk_run TEST ROUND SERVER PATH
  local test=$1 r=$2 n=$3 url="http://127.0.0.1:${PORT[$3]}$4" h0 h1 ohits loglines="" warn=""
  local cmd=(wrk -t1 -c"$CONNS" -d@DUR@s "$url")
  warm_up "$(warm_s "$r")" "${cmd[@]}"
  local alog=${ACCESS_LOG[$n]:-/dev/null}
  [ "$alog" != /dev/null ] && : > "$alog"   # keep the log files small between runs
  h0=$(origin_hits)
  load_run -k wrk -p "${PID[$n]}" -x "${PID[origin]}" -o "$RUN/wrk.out" -- "${cmd[@]}"
  h1=$(origin_hits)
  ohits=$(( ${h1:-0} - ${h0:-0} ))
  [ "$alog" != /dev/null ] && { sleep 0.3; loglines=" access_log_lines=$(wc -l < "$alog")"; }
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn=" (wrk near the limit of core $GEN_CPU)"
  printf '%-4s round%s %-22s %s orig_cpu=%s origin_requests=%s%s%s\n' "$test" "$r" "$n" "$LR_LINE" "$LR_X_CPU" "$ohits" "$loglines" "$warn"
  [ -n "$LR_DROP" ] && sed 's/^/    wrk: /' "$RUN/wrk.out" | grep -iE 'error|non-2xx|unable' | head -5
  # a cache-hit run that sends more than 1% of its requests to the origin is not measuring hits
  if [ -z "$LR_DROP" ] && [ "$test" = HIT ] && [[ "$n" != raw-node* && "$n" != h1-same-head* ]] && [ "$ohits" -gt $(( LR_COUNT / 100 )) ]; then
    LR_DROP="$ohits of $LR_COUNT requests went to the origin (cache hits not happening)"
  fi
  keep_run "$test" "$n" "$r"
}


echo "## load runs (wrk -t1 -c$CONNS, ${DUR}s measured after a warm-up, ${WARM}s in round 1 and $(warm_s 2)s later; HIT = GET /obj from the caches, UNC = GET /nostore through the proxies)"
for r in $(seq 1 "$ROUNDS"); do
  for p in $(seq 1 "$PASSES"); do   # PASSES times (lib.sh)
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${HIT_SET[@]}"); do
      [ -z "${OKSRV[$n]:-}" ] && { echo "HIT  round$r $n: skipped (failed its check)"; continue; }
      wrk_run HIT "$r" "$n" /obj
    done
  done
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${UNC_SET[@]}"); do
      [ -z "${OKSRV[$n]:-}" ] && { echo "UNC  round$r $n: skipped (failed its check)"; continue; }
      wrk_run UNC "$r" "$n" /nostore
    done
  done
done

# Edgebox's own view: what its access log says about its last run (status codes and cache results, counted)
logsum() {  # logsum NAME FILE
  [ "$2" != /dev/null ] && [ -s "$2" ] || return 0
  local f=$2 req errs first last
  req=$(grep -c '"msg":"request"' "$f")
  echo "## $1 access log of its last run: $(wc -l < "$f") lines, $req request lines;" \
    "status: $(grep '"msg":"request"' "$f" | grep -o '"status":[0-9]*' | cut -d: -f2 | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')" \
    "cache: $(grep '"msg":"request"' "$f" | grep -o '"cache":"[^"]*"' | cut -d: -f2 | tr -d '"' | sed 's/^$/(none)/' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')"
  errs=$(grep -c '"level":[45][0-9]' "$f")
  if [ "${errs:-0}" -gt 0 ]; then
    first=$(grep -m1 '"level":[45][0-9]' "$f" | grep -o '"time":[0-9]*' | cut -d: -f2)
    last=$(tail -1 "$f" | grep -o '"time":[0-9]*' | cut -d: -f2)
    local msg="$1 log: $errs warn/error line(s), the first $(( ${last:-0} - ${first:-0} )) ms before the last log line"
    msg+=" (wrk closing its connections at the end of a run?): $(grep -m1 '"level":[45][0-9]' "$f" | grep -o '"message":"[^"]*"' | head -1)"
    echo "   $msg"; PROBLEMS+=("$msg")
  fi
  return 0
}
logsum edgebox "$EB_LOG"
logsum edgebox-uncached "$EBU_LOG"

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); req/srv-cpu-s = req/s divided by the share of core $SRV_CPU the proxy used (origin not counted)"
echo "### cache hits: GET /obj (1 KiB, public, max-age=3600); 'x raw-node' = median of per-round ratios of req/srv-cpu-s (of req/s in brackets)"
summary_table HIT raw-node req/s "${HIT_SET[@]}"
echo "### uncached: GET /nostore (1 KiB, no-store) through the proxy; 'x http-proxy' = median of per-round ratios of req/srv-cpu-s (of req/s in brackets)"
summary_table UNC http-proxy req/s "${UNC_SET[@]}"

echo
echo "## targets (Edgebox vs peers measured in this run; per server CPU-second, the proxy's own CPU)"
echo "# verdict on the median of per-round ratios (each round runs the two servers minutes apart at most, so drift in"
echo "# the machine's speed between rounds cancels out); '-' marks a round where either run was left out"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
target() {  # target TEST A B GOAL
  target_line "$(printf '%-3s %-18s / %-12s req per server-CPU-second' "$1" "$2" "$3")" FIG_R "$1" "$2" "$3" '>=' "$4" "[${CONF[$2]}] vs [${CONF[$3]}]"
}
# issue 14, target 3: log on vs the raw server writing the same access-log line, log off vs the raw server without
# one, and Varnish; nginx proxy_cache reported beside them
target HIT edgebox raw-node-log 0.95
target HIT edgebox-nolog raw-node 0.95
target HIT edgebox varnish 1.0
rs=$(round_ratios FIG_R HIT edgebox nginx-cache)
printf '%-58s %6s  %-56s per round: %s\n' "$(printf '%-3s %-18s / %-12s req per server-CPU-second' HIT edgebox nginx-cache)" \
  "$(median_of "$rs")" "reported, no target" "$(show_ratios "$rs")"
target UNC edgebox-uncached http-proxy 2
target UNC edgebox-uncached undici-pass 0.8
echo "(for information, edgebox-uncached-nolog [${CONF[edgebox-uncached-nolog]}]: / http-proxy x$(round_ratio FIG_R UNC edgebox-uncached-nolog http-proxy)  / undici-pass x$(round_ratio FIG_R UNC edgebox-uncached-nolog undici-pass))"
echo "(for information, edgebox / raw-node x$(round_ratio FIG_R HIT edgebox raw-node), raw-node-log / raw-node x$(round_ratio FIG_R HIT raw-node-log raw-node): what the access log costs the bare server)"
echo "(for information, edgebox-nolog [${CONF[edgebox-nolog]}]: / varnish x$(round_ratio FIG_R HIT edgebox-nolog varnish)  / nginx-cache x$(round_ratio FIG_R HIT edgebox-nolog nginx-cache))"
# Node's own cost: Edgebox's hit head (and log line) from a bare node:http server doing only what Edgebox must do
echo "## for information: Node's own cost (h1-same-head sends Edgebox's exact cache-hit head; per server CPU-second, medians of per-round ratios)"
info_line "HIT edgebox / h1-same-head-log (log on)" FIG_R HIT edgebox h1-same-head-log
info_line "HIT edgebox-nolog / h1-same-head (log off)" FIG_R HIT edgebox-nolog h1-same-head
info_line "HIT h1-same-head / raw-node (cost of Edgebox's fields)" FIG_R HIT h1-same-head raw-node
info_line "HIT h1-same-head-log / raw-node-log" FIG_R HIT h1-same-head-log raw-node-log
info_line "HIT h1-same-head-log / varnish" FIG_R HIT h1-same-head-log varnish
info_line "HIT h1-same-head-log / nginx-cache" FIG_R HIT h1-same-head-log nginx-cache
info_line "HIT h1-same-head / varnish" FIG_R HIT h1-same-head varnish
info_line "HIT h1-same-head / nginx-cache" FIG_R HIT h1-same-head nginx-cache

if [ -n "$BEFORE" ]; then
  before_header   # lib.sh
  before_line "HIT: req per server-CPU-second, now / before" FIG_R HIT edgebox edgebox-before judge
  before_line "UNC: req per server-CPU-second, now / before" FIG_R UNC edgebox-uncached edgebox-uncached-before judge
  before_line "HIT: req/s, now / before" RATE_R HIT edgebox edgebox-before -
  before_line "UNC: req/s, now / before" RATE_R UNC edgebox-uncached edgebox-uncached-before -
fi

echo
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed; all runs answered with 2xx/3xx only, no socket errors, every proxy kept its core busy; the cache runs sent (almost) nothing to the origin"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
