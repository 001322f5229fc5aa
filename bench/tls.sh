#!/usr/bin/env bash
# Edgebox HTTPS / HTTP/2 benchmark (`npm run bench:tls`). See bench/README.md, "TLS benchmark".
#
# Compares, in one run and on loopback (127.0.0.1) only, with one certificate (ECDSA P-256, made at run time):
#   edgebox        Edgebox, default configuration (a `tls: true` listener, static route to the 1 KiB index.html;
#                  access log ON, session tickets ON)
#   edgebox-nolog  the same with "log": {"access": false} (for information)
#   h2-same-head   bench/servers/h2-node.mjs (with the head file): bare http2.createSecureServer on the same Node, the same ALPN list
#                  (h2, http/1.1) and cipher list, sending exactly Edgebox's response head for GET /index.html
#                  (captured from Edgebox at the start of the run; `date` generated per response, as Edgebox does)
#                  and the 1 KiB body (the ceiling for Edgebox's h2 path: the targets are judged against it)
#   h2-same-work   bench/servers/h2-node.mjs (with the head file and --work): h2-same-head plus what Edgebox must do
#                  per request with its access log on: Server-Timing computed per request and Edgebox's JSON access
#                  line through the same destination and batching (for information: Node's own cost of Edgebox's work)
#   node-h2        bench/servers/h2-node.mjs: bare http2.createSecureServer on the same Node, allowHTTP1 false,
#                  the same 1 KiB from memory with 3 fields (+ date), for information
#   tls-bare       bench/servers/tls-bare.mjs: bare https.createServer with Edgebox's certificate, ALPN list, cipher
#                  list and ticket-key / session-cache setup (src/tls/sessions.ts), answering the same GET; the
#                  handshake targets are judged against it
#   edgebox-mem    Edgebox default configuration with limits.keepAliveTimeout 600s, for the idle-connection memory
#                  test only (by default Edgebox closes an idle h2 session after 5 s)
#   nginx          bench/conf/nginx-tls.conf: 1 worker, "listen ... ssl http2", the same file, access_log off,
#                  ssl_session_tickets on, ssl_session_cache shared (skipped with a note if it cannot be installed)
#   edgebox-before with BEFORE=<git rev> (lib.sh before_setup): that commit of Edgebox, the same default configuration
#   cache hits over HTTP/2, GET /obj (the same 1 KiB from bench/servers/origin.mjs, Cache-Control: public, max-age=3600):
#   edgebox-hit    Edgebox, a `tls: true` listener and a proxy route with "cache": true to the origin (access log ON,
#                  the default); the origin runs on core $GEN_CPU, and after the first request it is not asked again
#   h2-same-head-hit  bench/servers/h2-node.mjs with Edgebox's cache-hit head for GET /obj (captured from Edgebox's
#                  second answer at the start of the run: Age, Cache-Status and the origin's fields), the 1 KiB from
#                  memory; the ceiling for Edgebox's h2 cache hits
#   edgebox-hit-before  with BEFORE: that commit in edgebox-hit's configuration
# Tests, each server pinned to core $SRV_CPU and the load generator to core $GEN_CPU, ROUNDS alternating rounds:
#   H2   h2load -t1 -c10 -m10 on HTTP/2 (ALPN h2): req/s and req per server CPU-second
#   H2M  h2load -t1 -c1 -m100: one connection, 100 streams in flight
#   H2HIT h2load -t1 -c10 -m10 GET /obj, a cache hit through a proxy route: edgebox-hit vs h2-same-head-hit
#   LAT  h2load -c10 --rps at a fixed rate, half of h2-same-head's H2 req/s in the same round: p99 latency
#   MEM  N idle h2 connections (bench/servers/h2-idle-clients.mjs): the server's RSS after - before, per connection
#   NEW  full TLS handshakes, RES  resumed TLS handshakes (openssl s_time -new / -reuse): Edgebox, tls-bare, nginx
# Verdicts on the median of per-round ratios.
#
# usage: bash bench/tls.sh [quick]
#   env: ROUNDS (3)  PASSES (1: lib.sh; LAT and MEM run once a round)  DUR (8 s measured per run)  WARM (2 s warm-up per run in round 1, not measured)  WARM_NEXT (1 s in
#        later rounds)  SRV_CPU (0)  GEN_CPU (1)
#        H2_CLIENTS (10)  H2_STREAMS (10)  H2M_STREAMS (100)  LAT_SHARE (0.5)  MEM_CONNS (500)
#        EDGEBOX_STDOUT=file|null  MAX_SECONDS (3600)  MIN_SRV_CPU (0.8)  BEFORE (a git rev)  BEFORE_MIN (0.97)
#   quick: ROUNDS=1 DUR=3 WARM=1 (a smoke run; figures are not meaningful)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-3} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; H2_CLIENTS=${H2_CLIENTS:-10}; H2_STREAMS=${H2_STREAMS:-10}
H2M_STREAMS=${H2M_STREAMS:-100}; LAT_SHARE=${LAT_SHARE:-0.5}; MEM_CONNS=${MEM_CONNS:-500}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; MAX_SECONDS=${MAX_SECONDS:-3600}
EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}

bench_setup   # folders, the cleanup guard, the pinned Node (lib.sh)

# ---------------------------------------------------------------------------------------------------------------
# peers: Debian tools by package name (h2load is in nghttp2-client); openssl is part of the base system
have_nginx() { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
have_nginx || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  apt_install "${missing[@]}" || log "apt-get install ${missing[*]} failed"
fi
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
for t in h2load openssl taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing and could not be installed"; exit 1; }; done

# before: BEFORE=<git rev> builds that commit in a git worktree (lib.sh before_setup)
before_setup

# ---------------------------------------------------------------------------------------------------------------
# fixtures: the 1 KiB index.html of the other benchmarks, and a fresh certificate for this run
make_index_html
TLS="$RUN/tls"
rm -rf "$TLS"
make_tls_cert "$TLS" || { log "openssl could not make the certificate"; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18800-18899)
declare -A PORT=( [edgebox]=18801 [edgebox-nolog]=18802 [node-h2]=18803 [nginx]=18804 [h2-same-head]=18805
                  [tls-bare]=18806 [edgebox-mem]=18807 [edgebox-before]=18808 [h2-same-work]=18809
                  [origin]=18810 [edgebox-hit]=18811 [h2-same-head-hit]=18812 [edgebox-hit-before]=18813 )
# the path each server's H2 runs ask for: /index.html, but /obj for the cache-hit servers (through the proxy route)
declare -A URLPATH=( [edgebox-hit]=/obj [h2-same-head-hit]=/obj [edgebox-hit-before]=/obj )
EB_LOG="$RUN/tls-edgebox-access.jsonl"; EBM_LOG="$RUN/tls-edgebox-mem-access.jsonl"; EBB_LOG="$RUN/tls-edgebox-before-access.jsonl"
SHW_LOG="$RUN/tls-h2-same-work-access.jsonl"; EBH_LOG="$RUN/tls-edgebox-hit-access.jsonl"; EBHB_LOG="$RUN/tls-edgebox-hit-before-access.jsonl"
[ "$EDGEBOX_STDOUT" = null ] && { EB_LOG=/dev/null; EBM_LOG=/dev/null; EBB_LOG=/dev/null; SHW_LOG=/dev/null; EBH_LOG=/dev/null; EBHB_LOG=/dev/null; }
declare -A ACCESS_LOG=( [edgebox]=$EB_LOG [edgebox-mem]=$EBM_LOG [edgebox-before]=$EBB_LOG [h2-same-work]=$SHW_LOG
                        [edgebox-hit]=$EBH_LOG [edgebox-hit-before]=$EBHB_LOG )
# Edgebox's TLS 1.2 cipher list (its default), given to the bare servers so that every Node server negotiates the same
EB_CIPHERS=$(cd "$ROOT" && node -e "import('./src/config/schema.ts').then((m) => console.log(m.MODERN_CIPHERS))" 2>/dev/null)
[ -n "$EB_CIPHERS" ] || { log "could not read MODERN_CIPHERS from src/config/schema.ts"; exit 1; }
export EB_CIPHERS
HEAD_FILE="$TLS/edgebox-head.txt"; HEAD_HIT="$TLS/edgebox-hit-head.txt"
NGINX_VER=$("$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///')
declare -A CONF=(
  [edgebox]="Edgebox default: tls listener (h2 + http/1.1 by ALPN, TLS 1.2/1.3, session tickets ON), static route; access log ON (JSON lines on stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EB_LOG")")), Server-Timing ON"
  [edgebox-nolog]="Edgebox, the same with log.access=false (for information)"
  [node-h2]="bench/servers/h2-node.mjs: bare http2.createSecureServer, same Node binary, allowHTTP1 false, 1 KiB from memory, 3 fields + date, no log (for information)"
  [h2-same-head]="bench/servers/h2-node.mjs (with the head file): bare http2.createSecureServer, same Node binary, same certificate, ALPN h2+http/1.1, Edgebox's cipher list; Edgebox's response head for GET /index.html (captured at start, date per response), 1 KiB from memory, stream.respond, no log"
  [h2-same-work]="bench/servers/h2-node.mjs (with the head file and --work): h2-same-head + Server-Timing computed per request + Edgebox's JSON access-log line per request (proto h2; pino.destination async, 32 KiB batches; stdout -> $([ "$SHW_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$SHW_LOG")")) (for information)"
  [tls-bare]="bench/servers/tls-bare.mjs: bare https.createServer, same Node binary, same certificate (SNICallback), ALPN h2+http/1.1, Edgebox's cipher list, HKDF ticket keys + TLS 1.2 session-ID cache as src/tls/sessions.ts, 1 KiB from memory, no log"
  [edgebox-mem]="Edgebox default configuration + limits.keepAliveTimeout 600s (idle h2 sessions stay open), access log ON; memory test only"
  [edgebox-before]="Edgebox at BEFORE=$BEFORE ($BEFORE_DESC), its own pinned Node, the same default configuration (access log ON)"
  [origin]="bench/servers/origin.mjs on core $GEN_CPU: GET /obj, the 1 KiB, Cache-Control: public, max-age=3600"
  [edgebox-hit]="Edgebox: tls listener (h2 + http/1.1), one proxy route to the origin with \"cache\": true; access log ON (the default; stdout -> $([ "$EBH_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EBH_LOG")")), Server-Timing ON; GET /obj answered from the cache"
  [h2-same-head-hit]="bench/servers/h2-node.mjs (with the hit head file): as h2-same-head, with Edgebox's cache-hit head for GET /obj (captured at start, --stored-date: the stored date, Age and Cache-Status as captured), 1 KiB from memory, no log"
  [edgebox-hit-before]="Edgebox at BEFORE=$BEFORE in edgebox-hit's configuration (access log ON)"
  [nginx]="nginx ${NGINX_VER:-?}: 1 worker, listen ssl http2, TLS 1.2/1.3, ssl_session_tickets on, ssl_session_cache shared:SSL:10m, access_log OFF, sendfile, open_file_cache"
)

# a proxy route with the cache to the origin, the default log settings (access log on)
eb_config_hit() {  # eb_config_hit PORT FILE
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","proxy":{"upstreams":["http://127.0.0.1:%s"],"cache":true}}]}]}\n' \
    "$1" "${PORT[origin]}" > "$2"
}
eb_config() {  # eb_config PORT ACCESSLOG(true|false) FILE : written beside the certificate (relative paths resolve there)
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"log":{"access":%s},"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
    "$1" "$2" "$WWW" > "$3"
}
# the default configuration has no "log" key at all; EXTRA (optional) adds top-level keys
eb_config_default() {  # eb_config_default PORT FILE [EXTRA]
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]%s}\n' \
    "$1" "$WWW" "${3:+,$3}" > "$2"
}

start_server() {
  local n=$1 port=${PORT[$1]}
  if port_busy "$port"; then log "port $port (for $n) is already in use"; return 1; fi
  : > "$RUN/$n.err"
  case $n in
    edgebox)       eb_config_default "$port" "$TLS/edgebox.json"
                   [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
                   start_srv "$n" "$EB_LOG" node "$ROOT/bin/edgebox.js" --config "$TLS/edgebox.json" ;;
    edgebox-nolog) eb_config "$port" false "$TLS/edgebox-nolog.json"; : > "$RUN/tls-edgebox-nolog.out"
                   start_srv "$n" "$RUN/tls-edgebox-nolog.out" node "$ROOT/bin/edgebox.js" --config "$TLS/edgebox-nolog.json" ;;
    edgebox-mem)   eb_config_default "$port" "$TLS/edgebox-mem.json" '"limits":{"keepAliveTimeout":"600s"}'
                   [ "$EBM_LOG" != /dev/null ] && : > "$EBM_LOG"
                   start_srv "$n" "$EBM_LOG" node "$ROOT/bin/edgebox.js" --config "$TLS/edgebox-mem.json" ;;
    edgebox-before) eb_config_default "$port" "$TLS/edgebox-before.json"
                   [ "$EBB_LOG" != /dev/null ] && : > "$EBB_LOG"
                   start_srv "$n" "$EBB_LOG" "$BEFORE_NODE" "$BEFORE_TREE/bin/edgebox.js" --config "$TLS/edgebox-before.json" ;;
    edgebox-hit)   eb_config_hit "$port" "$TLS/edgebox-hit.json"
                   [ "$EBH_LOG" != /dev/null ] && : > "$EBH_LOG"
                   start_srv "$n" "$EBH_LOG" node "$ROOT/bin/edgebox.js" --config "$TLS/edgebox-hit.json" ;;
    edgebox-hit-before) eb_config_hit "$port" "$TLS/edgebox-hit-before.json"
                   [ "$EBHB_LOG" != /dev/null ] && : > "$EBHB_LOG"
                   start_srv "$n" "$EBHB_LOG" "$BEFORE_NODE" "$BEFORE_TREE/bin/edgebox.js" --config "$TLS/edgebox-hit-before.json" ;;
    origin)        SRV_CPU=$GEN_CPU start_srv "$n" "$RUN/tls-origin.out" node "$BENCH/servers/origin.mjs" "$port" "$WWW/index.html" ;;
    h2-same-head-hit) start_srv "$n" "$RUN/h2-same-head-hit.out" node "$BENCH/servers/h2-node.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" "$HEAD_HIT" --stored-date ;;
    node-h2)       start_srv "$n" "$RUN/node-h2.out" node "$BENCH/servers/h2-node.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" ;;
    h2-same-head)  start_srv "$n" "$RUN/h2-same-head.out" node "$BENCH/servers/h2-node.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" "$HEAD_FILE" ;;
    h2-same-work)  [ "$SHW_LOG" != /dev/null ] && : > "$SHW_LOG"
                   start_srv "$n" "$SHW_LOG" node "$BENCH/servers/h2-node.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" "$HEAD_FILE" --work ;;
    tls-bare)      start_srv "$n" "$RUN/tls-bare.out" node "$BENCH/servers/tls-bare.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" ;;
    nginx)         local d="$RUN/nginx-tls" user=""
                   mkdir -p "$d"; [ "$(id -u)" = 0 ] && user="user root;"
                   render "$BENCH/conf/nginx-tls.conf" "$d/nginx.conf" "USER=$user" "PORT=$port" "WWW=$WWW" "RUN=$d" \
                     "CERT=$TLS/leaf.crt" "KEY=$TLS/leaf.key"
                   start_srv "$n" "$d/stdout.log" "$NGINX_BIN" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" ;;
  esac
  PID[$n]=$SRV_PID
}

NOTES=()
SERVERS=(edgebox edgebox-nolog node-h2 tls-bare edgebox-mem origin edgebox-hit)
[ -n "$BEFORE" ] && SERVERS+=(edgebox-before edgebox-hit-before)
if have_nginx; then SERVERS+=(nginx)
else NOTES+=("nginx could not be installed: nginx skipped, the Edgebox/nginx ratios are n/a"); fi
for n in "${SERVERS[@]}"; do start_server "$n" || exit 1; done
for n in "${SERVERS[@]}"; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" "$RUN/nginx-tls/error.log" 2>/dev/null >&2; exit 1; }
done
# h2-same-head and h2-same-work answer with Edgebox's head: read from a real Edgebox response (lib.sh capture_head),
# then they start
sleep 0.5
capture_head "$HEAD_FILE" "https://127.0.0.1:${PORT[edgebox]}/index.html" --http2 ||
  { log "could not read Edgebox's response head for h2-same-head"; exit 1; }
# the cache-hit head: the second of two GETs /obj (the first stores the origin's answer)
capture_head "$RUN/hdr-hit-first" "https://127.0.0.1:${PORT[edgebox-hit]}/obj" --http2
capture_head "$HEAD_HIT" "https://127.0.0.1:${PORT[edgebox-hit]}/obj" --http2 ||
  { log "could not read Edgebox's cache-hit head for h2-same-head-hit"; exit 1; }
for n in h2-same-head h2-same-work h2-same-head-hit; do start_server "$n" || exit 1; done
SERVERS=(edgebox edgebox-nolog h2-same-head h2-same-work "${SERVERS[@]:2}" h2-same-head-hit)
for n in h2-same-head h2-same-work h2-same-head-hit; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done
for n in "${NOTES[@]}"; do log "$n"; done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/tls-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/tls-$STAMP.txt"
exec > >(tee "$OUT.tmp")

echo "# Edgebox TLS benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  ${1:-full}"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s (later rounds $(warm_s 2)s)  server core $SRV_CPU, load generator core $GEN_CPU, $(nproc) cores, $(uname -r), 127.0.0.1 only"
echo "## versions"
[ -n "$BEFORE" ] && echo "edgebox-before: BEFORE=$BEFORE = $BEFORE_DESC, node $("$BEFORE_NODE" -v) ($BEFORE_NODE)"
echo "node $(node -v) ($(command -v node)) for Edgebox, h2-same-head, h2-same-work, node-h2 and tls-bare; edgebox $(node -p "require('$ROOT/package.json').version")"
if have_nginx; then echo "$("$NGINX_BIN" -v 2>&1)"; else echo "nginx: not installed"; fi
echo "$(h2load --version 2>&1 | head -1); $(openssl version); $(curl -V | head -1 | cut -d' ' -f1-2)"
echo "certificate: $(openssl x509 -in "$TLS/leaf.crt" -noout -text | awk '/Public Key Algorithm|NIST CURVE/ {sub(/^ +/, ""); printf "%s; ", $0}')SAN $(openssl x509 -in "$TLS/leaf.crt" -noout -ext subjectAltName | tail -1 | sed 's/^ *//')"
echo "## servers"
for n in "${SERVERS[@]}"; do printf '%-14s port %s  %s\n' "$n" "${PORT[$n]}" "${CONF[$n]}"; done
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done

# ---------------------------------------------------------------------------------------------------------------
# checks: what each server answers, what h2load negotiates, and whether TLS sessions are resumed
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
declare -A OKSRV=() RESUMES=()
for n in "${SERVERS[@]}"; do
  [ "$n" = origin ] && continue
  url="https://127.0.0.1:${PORT[$n]}${URLPATH[$n]:-/index.html}"
  if [ "$n" = tls-bare ]; then   # HTTP/1.1 only (it offers Edgebox's ALPN list, but the handshake test offers no ALPN)
    r=$(curl -sk --http1.1 -o /dev/null --max-time 5 -w '%{http_version} %{http_code} %{size_download}' "$url")
    printf '%-14s curl --http1.1 GET /index.html -> %s (want 1.1 200 1024)\n' "$n" "$r"
    if [ "$r" = "1.1 200 1024" ]; then OKSRV[$n]=1; else CHECK_FAIL+=("$n: curl --http1.1 -> '$r' (want 1.1 200 1024)"); fi
    continue
  fi
  r=$(curl -sk --http2 -o /dev/null -D "$RUN/hdr" --max-time 5 -w '%{http_version} %{http_code} %{size_download}' "$url")
  st=$(tr -d '\r' < "$RUN/hdr" | awk -F': ' 'tolower($1) == "server-timing" { print $2 }')
  timeout 15 taskset -c "$GEN_CPU" h2load -n 20 -c 1 "$url" > "$RUN/h2check.out" 2>&1
  nego=$(awk -F': ' '/^TLS Protocol|^Cipher|^Server Temp Key|^Application protocol/ { printf "%s=%s  ", $1, $2 }' "$RUN/h2check.out")
  printf '%-14s curl --http2 GET %s -> %s (want 2 200 1024)  Server-Timing=%s  h2load: %s\n' "$n" "${URLPATH[$n]:-/index.html}" "$r" "${st:-none}" "$nego"
  if [ "$r" = "2 200 1024" ] && grep -q '^Application protocol: h2' "$RUN/h2check.out"; then OKSRV[$n]=1
  else CHECK_FAIL+=("$n: curl -> '$r' (want 2 200 1024), h2load: ${nego:-no TLS session}"); fi
done
# h2-same-head and h2-same-work send Edgebox's head (lib.sh same_head: the same field names in the same order, the
# same values but date's, which both generate per response, and server-timing's, whose durations both measure per
# request); every Node server negotiates the same TLS version, cipher and key exchange as Edgebox
capture_head "$RUN/hdr-eb" "https://127.0.0.1:${PORT[edgebox]}/index.html" --http2
for n in h2-same-head h2-same-work; do
  capture_head "$RUN/hdr-sh" "https://127.0.0.1:${PORT[$n]}/index.html" --http2
  same_head "$n" "$RUN/hdr-eb" "$RUN/hdr-sh"
done
# h2-same-head-hit sends Edgebox's hit head, and Edgebox answers /obj from its cache: a hit, and the origin was asked
# once per Edgebox (the first GET of each)
capture_head "$RUN/hdr-ebh" "https://127.0.0.1:${PORT[edgebox-hit]}/obj" --http2
capture_head "$RUN/hdr-shh" "https://127.0.0.1:${PORT[h2-same-head-hit]}/obj" --http2
same_head h2-same-head-hit "$RUN/hdr-ebh" "$RUN/hdr-shh"
for n in edgebox-hit edgebox-hit-before; do
  [[ " ${SERVERS[*]} " == *" $n "* ]] || continue   # edgebox-hit-before only with BEFORE
  cs=$(curl -sk --http2 -o /dev/null -D - --max-time 5 "https://127.0.0.1:${PORT[$n]}/obj" | tr -d '\r' | awk -F': ' 'tolower($1) == "cache-status" { print $2 }')
  printf '%-14s Cache-Status of GET /obj: %s\n' "$n" "${cs:-none}"
  [[ "$cs" == *hit* ]] || CHECK_FAIL+=("$n: GET /obj is not a cache hit (Cache-Status: '${cs:-none}')")
done
# h2-same-work writes the line Edgebox writes: the same keys in the same order
[ "$EB_LOG" != /dev/null ] && same_log_keys "$EB_LOG" "$SHW_LOG" '"msg":"request","method":"GET".*"proto":"h2"' h2-same-work
tlsinfo() { awk -F': ' '/^TLS Protocol|^Cipher|^Server Temp Key/ { printf "%s ", $2 }' "$1"; }
timeout 15 taskset -c "$GEN_CPU" h2load -n 1 -c 1 "https://127.0.0.1:${PORT[edgebox]}/index.html" > "$RUN/h2tls-eb.out" 2>&1
for n in h2-same-head h2-same-work node-h2; do
  timeout 15 taskset -c "$GEN_CPU" h2load -n 1 -c 1 "https://127.0.0.1:${PORT[$n]}/index.html" > "$RUN/h2tls.out" 2>&1
  [ "$(tlsinfo "$RUN/h2tls.out")" = "$(tlsinfo "$RUN/h2tls-eb.out")" ] ||
    NOTES+=("$n negotiates '$(tlsinfo "$RUN/h2tls.out")', Edgebox '$(tlsinfo "$RUN/h2tls-eb.out")'")
done
echo "TLS as h2load negotiates it: edgebox $(tlsinfo "$RUN/h2tls-eb.out")"
# Resumption, per TLS version: a first s_client connection saves its session (-sess_out), a second offers it
# (-sess_in) and prints "Reused" if the server resumed it. Both send the handshake test's request (below) and read the
# answer to the end, so the TLS 1.3 tickets, which the server sends after the handshake, reach the client.
HS_SET=(edgebox tls-bare); have_nginx && HS_SET+=(nginx); [ -n "$BEFORE" ] && HS_SET+=(edgebox-before)
echo "## resumption checks (openssl s_client -sess_out, then -sess_in; request 'GET /index.html HTTP/1.0', no ALPN)"
sclient() {  # sclient PORT VERSION_FLAG SESS_FLAG SESS_FILE OUT
  printf 'GET /index.html HTTP/1.0\r\n\r\n' | timeout 10 taskset -c "$GEN_CPU" openssl s_client -connect "127.0.0.1:$1" \
    -servername localhost "$2" -ign_eof "$3" "$4" > "$5" 2>&1
}
for n in "${HS_SET[@]}"; do
  for v in 1.3 1.2; do
    s="$RUN/tls-sess-$n-$v.pem"; rm -f "$s"
    sclient "${PORT[$n]}" "-tls1_${v#1.}" -sess_out "$s" "$RUN/sclient1.out"
    sclient "${PORT[$n]}" "-tls1_${v#1.}" -sess_in "$s" "$RUN/sclient2.out"
    first=$(grep -m1 -E '^(New|Reused),' "$RUN/sclient1.out"); second=$(grep -m1 -E '^(New|Reused),' "$RUN/sclient2.out")
    status=$(grep -m1 -a '^HTTP/' "$RUN/sclient2.out" | tr -d '\r')
    printf '%-14s TLS %s  1st: %-50s 2nd: %-50s answer: %s\n' "$n" "$v" "${first:-no handshake}" "${second:-no handshake}" "${status:-none}"
    if [[ "$second" == Reused,* ]]; then RESUMES[$n,$v]=1
    else CHECK_FAIL+=("$n: TLS $v session offered again was not resumed (2nd: '${second:-no handshake}')"); fi
    [[ "$status" == *" 200 "* ]] || CHECK_FAIL+=("$n: 'GET /index.html HTTP/1.0' over TLS $v -> '${status:-none}' (want 200)")
  done
done
# the handshake test's own connection, as s_time makes it: the same TLS version, cipher and key exchange for Edgebox
# and tls-bare
for n in "${HS_SET[@]}"; do
  sclient "${PORT[$n]}" -tls1_3 -sess_out "$RUN/tls-sess-x.pem" "$RUN/sclient3.out"
  printf '%-14s s_client TLS 1.3: %s; %s; %s\n' "$n" "$(grep -m1 -E '^(New|Reused),' "$RUN/sclient3.out")" \
    "$(grep -m1 '^Peer signature type' "$RUN/sclient3.out")" "$(grep -m1 -E '^(Server Temp Key|Negotiated TLS1.3 group)' "$RUN/sclient3.out")"
done
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# H2 load: h2load -t1 -c10 -m10 on core $GEN_CPU, a WARM-second h2load run (not measured), then DUR s measured
# through load_run (lib.sh): server CPU = user+sys of the server's process group around the measured run.
h2_run() {  # h2_run TEST(H2|H2M) ROUND SERVER : H2 = -c$H2_CLIENTS -m$H2_STREAMS, H2M = -c1 -m$H2M_STREAMS
  local test=$1 r=$2 n=$3 url="https://127.0.0.1:${PORT[$3]}${URLPATH[$3]:-/index.html}" loglines="" warn="" s3 proto c=$H2_CLIENTS m=$H2_STREAMS
  [ "$test" = H2M ] && { c=1; m=$H2M_STREAMS; }
  local cmd=(h2load -t1 -c"$c" -m"$m" -D @DUR@ "$url")
  warm_for "$r" "$n"; warm_up "$WARM_S" "${cmd[@]}"
  local alog=${ACCESS_LOG[$n]:-/dev/null}
  [ "$alog" != /dev/null ] && : > "$alog"   # keep the log file small between runs
  load_run -k h2load -p "${PID[$n]}" -o "$RUN/h2load.out" -- "${cmd[@]}"
  s3=$(awk '/^status codes:/ { print $5 + 0 }' "$RUN/h2load.out")
  proto=$(awk -F': ' '/^Application protocol/ { print $2 }' "$RUN/h2load.out")
  if [ "$alog" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(wc -l < "$alog")"; fi
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn+=" (h2load near the limit of core $GEN_CPU: a lower bound for this server's req/s)"
  printf '%-3s round%s %-14s %s status_3xx=%s proto=%s%s%s\n' "$test" "$r" "$n" "$LR_LINE" "${s3:-0}" "${proto:-none}" "$loglines" "$warn"
  # every answer here is a 200: a redirect is as wrong as an error, and only h2 is what this test measures
  if [ -z "$LR_DROP" ] && [ "${s3:-0}" != 0 ]; then LR_DROP="$s3 3xx answer(s) (want 200 only)"; fi
  if [ -z "$LR_DROP" ] && [ "$proto" != h2 ]; then LR_DROP="protocol '${proto:-none}' (want h2)"; fi
  [ -n "$LR_DROP" ] && grep -iE 'error|fail|refused' "$RUN/h2load.out" | grep -v '^requests:' | head -3 | sed 's/^/    h2load: /'
  keep_run "$test" "$n" "$r"
}

# LAT: h2load -c$H2_CLIENTS -m$H2_STREAMS at a fixed request rate (--rps per connection: h2load's --rate sets how
# fast connections are made, not requests), below saturation; p99 of the per-request times h2load logs (--log-file).
# The server is not meant to be busy here: no MIN_SRV_CPU floor (-m 0); a run short of the offered rate by more than
# 5% did not measure the latency at that rate and is dropped.
lat_run() {  # lat_run ROUND SERVER RATE
  local r=$1 n=$2 rate=$3 url="https://127.0.0.1:${PORT[$2]}/index.html" rps p99 p50
  rps=$(( (rate + H2_CLIENTS - 1) / H2_CLIENTS ))
  local cmd=(h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" --rps="$rps" -D @DUR@ --log-file="$RUN/lat.log" "$url")
  warm_up "$(warm_s "$r")" "${cmd[@]}"   # a latency percentile: always warmed up (the server sat idle since its H2 run)
  local alog=${ACCESS_LOG[$n]:-/dev/null}
  [ "$alog" != /dev/null ] && : > "$alog"
  rm -f "$RUN/lat.log"
  load_run -k h2load -m 0 -p "${PID[$n]}" -o "$RUN/h2lat.out" -- "${cmd[@]}"
  p99=$(awk -F'\t' '$2 == 200 { print $3 }' "$RUN/lat.log" 2>/dev/null | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.3f", a[int(NR * 0.99 + 0.999)] / 1000 }')
  p50=$(awk -F'\t' '$2 == 200 { print $3 }' "$RUN/lat.log" 2>/dev/null | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.3f", a[int(NR * 0.5 + 0.999)] / 1000 }')
  printf 'LAT round%s %-14s offered=%s/s (%s x %s/s) %s p50_ms=%s p99_ms=%s\n' "$r" "$n" "$((rps * H2_CLIENTS))" "$H2_CLIENTS" "$rps" "$LR_LINE" "${p50:-?}" "${p99:-?}"
  if [ -z "$LR_DROP" ] && awk -v a="${LR_RATE:-0}" -v o="$((rps * H2_CLIENTS))" 'BEGIN { exit !(a < 0.95 * o) }'; then
    LR_DROP="answered ${LR_RATE:-0} req/s of the $((rps * H2_CLIENTS))/s offered (more than 5% short)"
  fi
  [ -z "$LR_DROP" ] && [ -z "$p99" ] && LR_DROP="no per-request times in h2load's log file"
  keep_run LAT "$n" "$r" "${p99:-0}"
}

# MEM: the server's resident memory (VmRSS of every process in its group) before and after MEM_CONNS idle h2
# connections are open (each has made one GET), divided by their number, in KiB per connection
grp_rss() {  # grp_rss PGID : KiB
  local p s=0 v
  for p in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '{ s = $0; sub(/^.*\) /, "", s); split(s, a, " "); if (a[3] == g) print $1 }'); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
    s=$((s + ${v:-0}))
  done
  echo "$s"
}
mem_run() {  # mem_run ROUND SERVER
  local r=$1 n=$2 url="https://127.0.0.1:${PORT[$2]}/index.html" b a i ready="" cpid
  b=$(grp_rss "${PID[$n]}")
  : > "$RUN/mem.out"
  setsid taskset -c "$GEN_CPU" node "$BENCH/servers/h2-idle-clients.mjs" "$url" "$MEM_CONNS" 120 > "$RUN/mem.out" 2>&1 </dev/null &
  cpid=$!; PID[mem-client]=$cpid
  for i in $(seq 1 600); do ready=$(grep -m1 '^ready' "$RUN/mem.out"); [ -n "$ready" ] && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  sleep 1
  a=$(grp_rss "${PID[$n]}")
  local open; open=$(echo "$ready" | awk '{ print $2 + 0 }')
  stop_srv "$cpid"; unset 'PID[mem-client]'
  LR_DROP=""; LR_RATE=$(calc "($a - $b) / ${open:-0}" %.1f); LR_SRV_CPU=0
  printf 'MEM round%s %-14s rss_before_kib=%s rss_after_kib=%s connections=%s client: %s per_conn_kib=%s\n' "$r" "$n" "$b" "$a" "${open:-0}" "${ready:-no answer}" "$LR_RATE"
  if [ "${open:-0}" != "$MEM_CONNS" ]; then LR_DROP="$((MEM_CONNS - ${open:-0})) of $MEM_CONNS connections not open and idle (${ready:-client gave no answer})"; fi
  keep_run MEM "$n" "$r" "$LR_RATE"
  sleep 1   # the server closes them
}

# ---------------------------------------------------------------------------------------------------------------
# Handshakes: openssl s_time, one connection after another, each doing a TLS handshake, "GET /index.html HTTP/1.0"
# and reading the answer to the end (-www). NEW = -new (a full handshake every time), RES = -reuse (every connection
# offers the session of a first connection; the server resumes it: no certificate, no signature).
# Why s_time: h2load cannot resume a session, and the two figures should come from one tool. Why -www: in TLS 1.3 the
# server sends its session ticket after the handshake, and s_time only reads it (and so can resume at all) when it
# reads an answer; without -www it would also drop every connection right after the handshake, which a server treats
# as a client error rather than an ordinary visit. No ALPN: the request is HTTP/1.0 over TLS, the same for both.
# How s_time counts: its "connections/user sec" divides by s_time's own user CPU time, not by elapsed time, and its
# "real seconds" are whole seconds (a -time N run lasts between N and N+1 s); so the script takes the connection
# count and divides by the wall time it measures itself. s_time prints one character per connection: 'r' when the
# session was resumed, '*' for a full handshake; the script counts both and requires all 'r' for RES, none for NEW.
hs_run() {  # hs_run TEST(NEW|RES) ROUND SERVER
  local test=$1 r=$2 n=$3 flag=-new
  [ "$test" = RES ] && flag=-reuse
  local cmd=(openssl s_time -connect "127.0.0.1:${PORT[$n]}" -www /index.html "$flag")
  warm_for "$r" "$n:handshakes"; warm_up "$WARM_S" "${cmd[@]}" -time @DUR@   # one warm-up for the server's NEW and RES
  local alog=${ACCESS_LOG[$n]:-/dev/null}
  [ "$alog" != /dev/null ] && : > "$alog"
  load_run -k s_time -p "${PID[$n]}" -o "$RUN/s_time.out" -- "${cmd[@]}" -time @DUR@
  local bytes full reused loglines=""
  bytes=$(awk '/bytes read per connection/ { print $(NF - 4) }' "$RUN/s_time.out" | tail -1)
  full=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd '*' | wc -c)
  reused=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd 'r' | wc -c)
  if [ "$alog" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(grep -c '"msg":"request"' "$alog")"; fi
  printf '%-3s round%s %-14s %s full_handshakes=%s resumed=%s bytes_per_conn=%s%s\n' \
    "$test" "$r" "$n" "$LR_LINE" "$full" "$reused" "${bytes:-0}" "$loglines"
  if [ -n "$LR_DROP" ]; then :
  elif [ "${bytes:-0}" -lt 1024 ]; then LR_DROP="only ${bytes:-0} bytes read per connection (want the 1 KiB answer)"
  elif [ "$test" = NEW ] && [ "$reused" != 0 ]; then LR_DROP="$reused of $LR_COUNT connections were resumed (want full handshakes)"
  elif [ "$test" = RES ] && [ $(( reused * 100 )) -lt $(( LR_COUNT * 99 )) ]; then LR_DROP="only $reused of $LR_COUNT connections were resumed"
  fi
  [ -n "$LR_DROP" ] && grep -aivE '^[*rt23]+$' "$RUN/s_time.out" | grep -aiE 'error|unable|refused' | head -3 | sed 's/^/    s_time: /'
  keep_run "$test" "$n" "$r"
}

# ---------------------------------------------------------------------------------------------------------------
H2_SET=(edgebox edgebox-nolog h2-same-head h2-same-work node-h2); have_nginx && H2_SET+=(nginx); [ -n "$BEFORE" ] && H2_SET+=(edgebox-before)
H2M_SET=(edgebox h2-same-head h2-same-work); have_nginx && H2M_SET+=(nginx); [ -n "$BEFORE" ] && H2M_SET+=(edgebox-before)
HIT_SET=(edgebox-hit h2-same-head-hit); [ -n "$BEFORE" ] && HIT_SET+=(edgebox-hit-before)
# LAT is reported without a target (and not among the no-regression figures): edgebox-before is not run there
LAT_SET=(edgebox h2-same-head); have_nginx && LAT_SET+=(nginx)
MEM_SET=(edgebox-mem h2-same-head); have_nginx && MEM_SET+=(nginx)
echo "## load runs: H2 = h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS GET /index.html, H2M = h2load -t1 -c1 -m$H2M_STREAMS (${WARM}s warm-up in round 1, later $(warm_s 2)s before a server's first run of the round, + ${DUR}s measured);"
echo "##   H2HIT = h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS GET /obj (a cache hit through a proxy route; the same warm-ups and measured time);"
echo "##   LAT = h2load -c$H2_CLIENTS -m$H2_STREAMS --rps at $LAT_SHARE x h2-same-head's H2 req/s of the round; MEM = $MEM_CONNS idle h2 connections, RSS after - before;"
echo "##   NEW / RES = openssl s_time -new / -reuse -www /index.html, one connection at a time (the same warm-ups + ${DUR}-$((DUR + 1))s measured)"
OKSRV[edgebox-mem]=${OKSRV[edgebox]:-}
for r in $(seq 1 "$ROUNDS"); do
  # each server's H2 and H2M runs back to back (one warm-up, lib.sh warm_for); H2M_SET is part of H2_SET; PASSES times
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${H2_SET[@]}"); do
      [ -z "${OKSRV[$n]:-}" ] && { echo "H2  round$r $n: skipped (failed its check)"; continue; }
      h2_run H2 "$r" "$n"
      [[ " ${H2M_SET[*]} " == *" $n "* ]] && h2_run H2M "$r" "$n"
    done
  done
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${HIT_SET[@]}"); do
      [ -z "${OKSRV[$n]:-}" ] && { echo "H2HIT round$r $n: skipped (failed its check)"; continue; }
      h2_run H2HIT "$r" "$n"
    done
  done
  lat_rate=$(med_or_na "${RATE_R[H2,h2-same-head,$r]:-}")
  if [ "$lat_rate" = n/a ]; then echo "LAT round$r: skipped (no counted H2 run of h2-same-head in this round to set the rate)"
  else
    lat_rate=$(calc "$lat_rate * $LAT_SHARE" %.0f)
    for n in $(rotate_before $((r - 1)) "${LAT_SET[@]}"); do
      [ -z "${OKSRV[$n]:-}" ] && { echo "LAT round$r $n: skipped (failed its check)"; continue; }
      lat_run "$r" "$n" "$lat_rate"
    done
  fi
  for n in $(rotate $((r - 1)) "${MEM_SET[@]}"); do
    [ -z "${OKSRV[$n]:-}" ] && { echo "MEM round$r $n: skipped (failed its check)"; continue; }
    mem_run "$r" "$n"
  done
  for p in $(seq 1 "$PASSES"); do
    for n in $(rotate_before "$(pass_k "$r" "$p")" "${HS_SET[@]}"); do hs_run NEW "$r" "$n"; hs_run RES "$r" "$n"; done
  done
done

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s) (min-max of the rate); per srv-cpu-s = the rate divided by the share of core $SRV_CPU the server used"
summary() {  # summary TEST TITLE UNIT REF SERVERS...
  echo "### $2"; local t=$1 unit=$3 ref=$4; shift 4
  summary_table "$t" "$ref" "$unit" "$@"
}
summary H2 "H2: GET /index.html (1 KiB) over HTTP/2 + TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS; 'x h2-same-head' = median of per-round ratios of req per srv-cpu-s (of req/s in brackets)" \
  req/s h2-same-head "${H2_SET[@]}"
summary H2M "H2M: the same, h2load -t1 -c1 -m$H2M_STREAMS; 'x h2-same-head' likewise" req/s h2-same-head "${H2M_SET[@]}"
summary H2HIT "H2HIT: GET /obj (1 KiB), a cache hit through a proxy route, over HTTP/2 + TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS; 'x h2-same-head-hit' likewise" \
  req/s h2-same-head-hit "${HIT_SET[@]}"
lat_table() {
  echo "### LAT: p99 latency (ms) of GET /index.html at a fixed rate, $LAT_SHARE x h2-same-head's H2 req/s in the same round (h2load -c$H2_CLIENTS -m$H2_STREAMS --rps; per-request times from --log-file)"
  printf '%-14s %9s %-19s %10s %12s %s\n' server p99_ms "(min-max)" "req/s" "x h2-same-head" "dropped runs"
  local n v
  for n in "$@"; do
    v=$(counted FIG_R LAT "$n")
    [ -z "$v" ] && { printf '%-14s no counted run (dropped runs: %s)\n' "$n" "${NDROP[LAT,$n]:-0}"; continue; }
    printf '%-14s %9s %-19s %10.0f %12s %s\n' "$n" "$(med "$v")" "($(rng "$v"))" "$(med "$(counted RATE_R LAT "$n")")" \
      "x$(round_ratio FIG_R LAT "$n" h2-same-head)" "${NDROP[LAT,$n]:-0}"
  done
}
lat_table "${LAT_SET[@]}"
echo "### MEM: resident memory per idle h2 connection (KiB), $MEM_CONNS connections that each made one GET, RSS of the server's process group after - before"
printf '%-14s %12s %-19s %s\n' server KiB/conn "(min-max)" "dropped runs"
for n in "${MEM_SET[@]}"; do
  v=$(counted FIG_R MEM "$n")
  [ -z "$v" ] && { printf '%-14s no counted run (dropped runs: %s)\n' "$n" "${NDROP[MEM,$n]:-0}"; continue; }
  printf '%-14s %12s %-19s %s\n' "$n" "$(med "$v")" "($(rng "$v"))" "${NDROP[MEM,$n]:-0}"
done
summary NEW "NEW: full TLS handshakes (+ one HTTP/1.0 GET each), s_time -new; 'x tls-bare' = median of per-round ratios of handshakes per srv-cpu-s (of the per-second rates in brackets); one connection at a time, so no server keeps its core busy" \
  conn/s tls-bare "${HS_SET[@]}"
summary RES "RES: resumed TLS handshakes (+ one HTTP/1.0 GET each), s_time -reuse; 'x tls-bare' likewise" conn/s tls-bare "${HS_SET[@]}"

echo
echo "## targets (issue 14) and ratios (Edgebox default configuration vs peers measured in this run): each the median"
echo "## of the per-round ratios (the two servers of a ratio run within a minute or two of each other); '-' marks a round"
echo "## where either run was left out"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
row() {  # row LABEL TEST A B ARRAY(RATE_R|FIG_R) TARGET|-
  if [ "$6" = - ]; then
    local rs; rs=$(round_ratios "$5" "$2" "$3" "$4")
    printf '%-58s %6s  %-56s per round: %s\n' "$1" "$(median_of "$rs")" "reported, no target" "$(show_ratios "$rs")"
  else target_line "$1" "$5" "$2" "$3" "$4" '>=' "$6"; fi
}
row "H2 req per srv CPU-s, edgebox / h2-same-head" H2 edgebox h2-same-head FIG_R 0.85
row "H2M req per srv CPU-s, edgebox / h2-same-head" H2M edgebox h2-same-head FIG_R 0.85
row "H2HIT req per srv CPU-s, edgebox-hit / h2-same-head-hit" H2HIT edgebox-hit h2-same-head-hit FIG_R 0.85
row "NEW handshakes per srv CPU-s, edgebox / tls-bare" NEW edgebox tls-bare FIG_R 0.9
row "RES handshakes per srv CPU-s, edgebox / tls-bare" RES edgebox tls-bare FIG_R 0.9
row "H2 req/s, edgebox / h2-same-head" H2 edgebox h2-same-head RATE_R -
row "H2 req per srv CPU-s, edgebox / node-h2 (3 fields)" H2 edgebox node-h2 FIG_R -
row "H2 req per srv CPU-s, h2-same-head / node-h2" H2 h2-same-head node-h2 FIG_R -
row "H2 req per srv CPU-s, edgebox / nginx" H2 edgebox nginx FIG_R -
row "H2M req per srv CPU-s, edgebox / nginx" H2M edgebox nginx FIG_R -
row "LAT p99 at one fixed rate, edgebox / nginx (lower: better)" LAT edgebox nginx FIG_R -
row "LAT p99 at one fixed rate, edgebox / h2-same-head" LAT edgebox h2-same-head FIG_R -
row "MEM KiB per idle h2 connection, edgebox-mem / nginx" MEM edgebox-mem nginx FIG_R -
row "NEW handshakes per srv CPU-s, edgebox / nginx" NEW edgebox nginx FIG_R -
row "RES handshakes per srv CPU-s, edgebox / nginx" RES edgebox nginx FIG_R -
row "NEW handshakes per srv CPU-s, tls-bare / nginx" NEW tls-bare nginx FIG_R -
row "RES handshakes per srv CPU-s, tls-bare / nginx" RES tls-bare nginx FIG_R -
echo "(p99 latency, ms, medians: edgebox $(med_or_na "$(counted FIG_R LAT edgebox)"), h2-same-head $(med_or_na "$(counted FIG_R LAT h2-same-head)"), nginx $(med_or_na "$(counted FIG_R LAT nginx)");" \
  "KiB per idle h2 connection: edgebox $(med_or_na "$(counted FIG_R MEM edgebox-mem)"), h2-same-head $(med_or_na "$(counted FIG_R MEM h2-same-head)"), nginx $(med_or_na "$(counted FIG_R MEM nginx)"))"
echo "(H2 = h2load -c$H2_CLIENTS -m$H2_STREAMS, H2M = -c1 -m$H2M_STREAMS; NEW = full TLS 1.3 handshakes, RES = resumed; the targets are judged per"
echo " server CPU-second, as in the other benchmarks; the H2 req/s ratio is shown beside it)"
echo "(for information, edgebox-nolog [${CONF[edgebox-nolog]}]: H2 per server CPU-second / h2-same-head x$(round_ratio FIG_R H2 edgebox-nolog h2-same-head), / nginx x$(round_ratio FIG_R H2 edgebox-nolog nginx))"
# Node's own cost: Edgebox's head, Server-Timing and access line from a bare http2 server doing only what Edgebox must do
echo "## for information: Node's own cost (h2-same-work = h2-same-head + Server-Timing per request + Edgebox's access line; per server CPU-second, medians of per-round ratios)"
for t in H2 H2M; do
  info_line "$t req per srv CPU-s, edgebox / h2-same-work" FIG_R $t edgebox h2-same-work
  info_line "$t req per srv CPU-s, edgebox / h2-same-head (the target)" FIG_R $t edgebox h2-same-head
  info_line "$t req per srv CPU-s, h2-same-work / h2-same-head" FIG_R $t h2-same-work h2-same-head
done
info_line "H2 req per srv CPU-s, edgebox-nolog / h2-same-head" FIG_R H2 edgebox-nolog h2-same-head
for n in edgebox h2-same-head h2-same-work node-h2 tls-bare edgebox-mem origin edgebox-hit h2-same-head-hit; do echo "[$n: ${CONF[$n]}]"; done
have_nginx && echo "[nginx: ${CONF[nginx]}]"

if [ -n "$BEFORE" ]; then
  before_header   # lib.sh
  before_line "H2: req per server-CPU-second, now / before" FIG_R H2 edgebox edgebox-before judge
  before_line "H2M: req per server-CPU-second, now / before" FIG_R H2M edgebox edgebox-before judge
  before_line "H2HIT: req per server-CPU-second, now / before" FIG_R H2HIT edgebox-hit edgebox-hit-before judge
  before_line "NEW: handshakes per server-CPU-second, now / before" FIG_R NEW edgebox edgebox-before judge
  before_line "RES: handshakes per server-CPU-second, now / before" FIG_R RES edgebox edgebox-before judge
fi

echo
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed (every h2 server answers 200 with 1024 bytes over h2, tls-bare over HTTP/1.1; h2-same-head sends Edgebox's head;"
  echo "Edgebox, tls-bare and nginx resume TLS 1.3 and 1.2 sessions); every H2/H2M run: 0 failed/errored/timed-out requests, 2xx only,"
  echo "protocol h2, the server's core busy; every LAT run at the offered rate; every MEM run with all connections open; every NEW run"
  echo "full handshakes only, every RES run resumed only"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
