#!/usr/bin/env bash
# Edgebox HTTPS / HTTP/2 benchmark (`npm run bench:tls`). See bench/README.md, "TLS benchmark".
#
# Compares, in one run and on loopback (127.0.0.1) only, with one certificate (ECDSA P-256, made at run time):
#   edgebox        Edgebox, default configuration (a `tls: true` listener, static route to the 1 KiB index.html;
#                  access log ON, session tickets ON)
#   edgebox-nolog  the same with "log": {"access": false} (for information)
#   node-h2        bench/servers/h2-node.mjs: bare http2.createSecureServer on the same Node, allowHTTP1 false,
#                  the same 1 KiB from memory (the ceiling for a Node h2 server)
#   nginx          bench/conf/nginx-tls.conf: 1 worker, "listen ... ssl http2", the same file, access_log off,
#                  ssl_session_tickets on, ssl_session_cache shared (skipped with a note if it cannot be installed)
# Tests, each server pinned to core $SRV_CPU and the load generator to core $GEN_CPU, ROUNDS alternating rounds:
#   H2   h2load -t1 -c10 -m10 on HTTP/2 (ALPN h2): req/s and req per server CPU-second
#   NEW  full TLS handshakes, RES  resumed TLS handshakes (openssl s_time -new / -reuse): Edgebox and nginx
# Verdicts on the median of per-round ratios.
#
# usage: bash bench/tls.sh [quick]
#   env: ROUNDS (3)  DUR (8 s measured per run)  WARM (2 s warm-up per run, not measured)  SRV_CPU (0)  GEN_CPU (1)
#        H2_CLIENTS (10)  H2_STREAMS (10)  EDGEBOX_STDOUT=file|null  MAX_SECONDS (1200)
#   quick: ROUNDS=1 DUR=3 WARM=1 (a smoke run; figures are not meaningful)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-3} WARM=${WARM:-1}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; H2_CLIENTS=${H2_CLIENTS:-10}; H2_STREAMS=${H2_STREAMS:-10}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; MAX_SECONDS=${MAX_SECONDS:-1200}
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

# ---------------------------------------------------------------------------------------------------------------
# fixtures: the 1 KiB index.html of the other benchmarks, and a fresh certificate for this run
make_index_html
TLS="$RUN/tls"
rm -rf "$TLS"
make_tls_cert "$TLS" || { log "openssl could not make the certificate"; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18800-18899)
declare -A PORT=( [edgebox]=18801 [edgebox-nolog]=18802 [node-h2]=18803 [nginx]=18804 )
EB_LOG="$RUN/tls-edgebox-access.jsonl"
[ "$EDGEBOX_STDOUT" = null ] && EB_LOG=/dev/null
NGINX_VER=$("$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///')
declare -A CONF=(
  [edgebox]="Edgebox default: tls listener (h2 + http/1.1 by ALPN, TLS 1.2/1.3, session tickets ON), static route; access log ON (JSON lines on stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "file bench/.peers/run/$(basename "$EB_LOG")")), Server-Timing ON"
  [edgebox-nolog]="Edgebox, the same with log.access=false (for information)"
  [node-h2]="bench/servers/h2-node.mjs: bare http2.createSecureServer, same Node binary, allowHTTP1 false, 1 KiB from memory, no log"
  [nginx]="nginx ${NGINX_VER:-?}: 1 worker, listen ssl http2, TLS 1.2/1.3, ssl_session_tickets on, ssl_session_cache shared:SSL:10m, access_log OFF, sendfile, open_file_cache"
)

eb_config() {  # eb_config PORT ACCESSLOG(true|false) FILE : written beside the certificate (relative paths resolve there)
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"log":{"access":%s},"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
    "$1" "$2" "$WWW" > "$3"
}
# the default configuration has no "log" key at all
eb_config_default() {  # eb_config_default PORT FILE
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
    "$1" "$WWW" > "$2"
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
    node-h2)       start_srv "$n" "$RUN/node-h2.out" node "$BENCH/servers/h2-node.mjs" "$port" "$TLS/leaf.crt" "$TLS/leaf.key" "$WWW/index.html" ;;
    nginx)         local d="$RUN/nginx-tls" user=""
                   mkdir -p "$d"; [ "$(id -u)" = 0 ] && user="user root;"
                   render "$BENCH/conf/nginx-tls.conf" "$d/nginx.conf" "USER=$user" "PORT=$port" "WWW=$WWW" "RUN=$d" \
                     "CERT=$TLS/leaf.crt" "KEY=$TLS/leaf.key"
                   start_srv "$n" "$d/stdout.log" "$NGINX_BIN" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" ;;
  esac
  PID[$n]=$SRV_PID
}

NOTES=()
SERVERS=(edgebox edgebox-nolog node-h2)
if have_nginx; then SERVERS+=(nginx)
else NOTES+=("nginx could not be installed: nginx skipped, the Edgebox/nginx ratios are n/a"); fi
for n in "${SERVERS[@]}"; do start_server "$n" || exit 1; done
for n in "${SERVERS[@]}"; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" "$RUN/nginx-tls/error.log" 2>/dev/null >&2; exit 1; }
done
for n in "${NOTES[@]}"; do log "$n"; done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/tls-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/tls-$STAMP.txt"
exec > >(tee "$OUT.tmp")

echo "# Edgebox TLS benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  ${1:-full}"
echo "# ROUNDS=$ROUNDS DUR=${DUR}s WARM=${WARM}s  server core $SRV_CPU, load generator core $GEN_CPU, $(nproc) cores, $(uname -r), 127.0.0.1 only"
echo "## versions"
echo "node $(node -v) ($(command -v node)) for Edgebox and node-h2; edgebox $(node -p "require('$ROOT/package.json').version")"
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
  url="https://127.0.0.1:${PORT[$n]}/index.html"
  r=$(curl -sk --http2 -o /dev/null -D "$RUN/hdr" --max-time 5 -w '%{http_version} %{http_code} %{size_download}' "$url")
  st=$(tr -d '\r' < "$RUN/hdr" | awk -F': ' 'tolower($1) == "server-timing" { print $2 }')
  timeout 15 taskset -c "$GEN_CPU" h2load -n 20 -c 1 "$url" > "$RUN/h2check.out" 2>&1
  nego=$(awk -F': ' '/^TLS Protocol|^Cipher|^Server Temp Key|^Application protocol/ { printf "%s=%s  ", $1, $2 }' "$RUN/h2check.out")
  printf '%-14s curl --http2 GET /index.html -> %s (want 2 200 1024)  Server-Timing=%s  h2load: %s\n' "$n" "$r" "${st:-none}" "$nego"
  if [ "$r" = "2 200 1024" ] && grep -q '^Application protocol: h2' "$RUN/h2check.out"; then OKSRV[$n]=1
  else CHECK_FAIL+=("$n: curl -> '$r' (want 2 200 1024), h2load: ${nego:-no TLS session}"); fi
done
# Resumption, per TLS version: a first s_client connection saves its session (-sess_out), a second offers it
# (-sess_in) and prints "Reused" if the server resumed it. Both send the handshake test's request (below) and read the
# answer to the end, so the TLS 1.3 tickets, which the server sends after the handshake, reach the client.
HS_SET=(edgebox); have_nginx && HS_SET+=(nginx)
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
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# H2 load: h2load -t1 -c10 -m10 on core $GEN_CPU, a WARM-second h2load run (not measured), then DUR s measured
# through load_run (lib.sh): server CPU = user+sys of the server's process group around the measured run.
h2_run() {  # h2_run ROUND SERVER
  local r=$1 n=$2 url="https://127.0.0.1:${PORT[$2]}/index.html" loglines="" warn="" s3 proto
  local cmd=(h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D @DUR@ "$url")
  warm_up "$WARM" "${cmd[@]}"
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"   # keep the log file small between runs
  load_run -k h2load -p "${PID[$n]}" -o "$RUN/h2load.out" -- "${cmd[@]}"
  s3=$(awk '/^status codes:/ { print $5 + 0 }' "$RUN/h2load.out")
  proto=$(awk -F': ' '/^Application protocol/ { print $2 }' "$RUN/h2load.out")
  if [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(wc -l < "$EB_LOG")"; fi
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn+=" (h2load near the limit of core $GEN_CPU: a lower bound for this server's req/s)"
  printf 'H2  round%s %-14s %s status_3xx=%s proto=%s%s%s\n' "$r" "$n" "$LR_LINE" "${s3:-0}" "${proto:-none}" "$loglines" "$warn"
  # every answer here is a 200: a redirect is as wrong as an error, and only h2 is what this test measures
  if [ -z "$LR_DROP" ] && [ "${s3:-0}" != 0 ]; then LR_DROP="$s3 3xx answer(s) (want 200 only)"; fi
  if [ -z "$LR_DROP" ] && [ "$proto" != h2 ]; then LR_DROP="protocol '${proto:-none}' (want h2)"; fi
  [ -n "$LR_DROP" ] && grep -iE 'error|fail|refused' "$RUN/h2load.out" | grep -v '^requests:' | head -3 | sed 's/^/    h2load: /'
  keep_run H2 "$n" "$r"
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
  warm_up "$WARM" "${cmd[@]}" -time @DUR@
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
  load_run -k s_time -p "${PID[$n]}" -o "$RUN/s_time.out" -- "${cmd[@]}" -time @DUR@
  local bytes full reused loglines=""
  bytes=$(awk '/bytes read per connection/ { print $(NF - 4) }' "$RUN/s_time.out" | tail -1)
  full=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd '*' | wc -c)
  reused=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd 'r' | wc -c)
  if [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(grep -c '"msg":"request"' "$EB_LOG")"; fi
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
H2_SET=(edgebox edgebox-nolog node-h2); have_nginx && H2_SET+=(nginx)
echo "## load runs: H2 = h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS GET /index.html (${WARM}s warm-up + ${DUR}s measured);"
echo "##   NEW / RES = openssl s_time -new / -reuse -www /index.html, one connection at a time (${WARM}s warm-up + ${DUR}-$((DUR + 1))s measured)"
for r in $(seq 1 "$ROUNDS"); do
  for n in $(rotate $((r - 1)) "${H2_SET[@]}"); do
    [ -z "${OKSRV[$n]:-}" ] && { echo "H2  round$r $n: skipped (failed its check)"; continue; }
    h2_run "$r" "$n"
  done
  for test in NEW RES; do
    for n in $(rotate $((r - 1)) "${HS_SET[@]}"); do hs_run "$test" "$r" "$n"; done
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
summary H2 "H2: GET /index.html (1 KiB) over HTTP/2 + TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS; 'x node-h2' = median of per-round ratios of req per srv-cpu-s (of req/s in brackets)" \
  req/s node-h2 "${H2_SET[@]}"
if have_nginx; then
  summary NEW "NEW: full TLS handshakes (+ one HTTP/1.0 GET each), s_time -new; 'x nginx' = median of per-round ratios of handshakes per srv-cpu-s (of the per-second rates in brackets); one connection at a time, so no server keeps its core busy" \
    conn/s nginx "${HS_SET[@]}"
  summary RES "RES: resumed TLS handshakes (+ one HTTP/1.0 GET each), s_time -reuse; 'x nginx' likewise" conn/s nginx "${HS_SET[@]}"
else
  summary NEW "NEW: full TLS handshakes (+ one HTTP/1.0 GET each), s_time -new" conn/s edgebox "${HS_SET[@]}"
  summary RES "RES: resumed TLS handshakes (+ one HTTP/1.0 GET each), s_time -reuse" conn/s edgebox "${HS_SET[@]}"
fi

echo
echo "## ratios (Edgebox default configuration vs peers measured in this run): each the median of the per-round ratios"
echo "## (the two servers of a ratio run within a minute or two of each other); '-' marks a round where either run was left out"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
row() {  # row LABEL TEST A B ARRAY(RATE_R|FIG_R) TARGET|-
  if [ "$6" = - ]; then
    local rs; rs=$(round_ratios "$5" "$2" "$3" "$4")
    printf '%-58s %6s  %-56s per round: %s\n' "$1" "$(median_of "$rs")" "reported, no target" "$(show_ratios "$rs")"
  else target_line "$1" "$5" "$2" "$3" "$4" '>=' "$6"; fi
}
row "H2 req per server CPU-second, edgebox / node-h2" H2 edgebox node-h2 FIG_R 0.8
row "H2 req/s, edgebox / node-h2" H2 edgebox node-h2 RATE_R -
row "H2 req per server CPU-second, edgebox / nginx" H2 edgebox nginx FIG_R -
row "H2 req/s, edgebox / nginx" H2 edgebox nginx RATE_R -
row "NEW handshakes per server CPU-second, edgebox / nginx" NEW edgebox nginx FIG_R -
row "NEW handshakes/s, edgebox / nginx" NEW edgebox nginx RATE_R -
row "RES resumed handshakes per server CPU-second, edgebox / nginx" RES edgebox nginx FIG_R -
row "RES resumed handshakes/s, edgebox / nginx" RES edgebox nginx RATE_R -
echo "(the H2 target is judged per server CPU-second, as in the other benchmarks; the req/s ratio is shown beside it)"
echo "(for information, edgebox-nolog [${CONF[edgebox-nolog]}]: H2 per server CPU-second / node-h2 x$(round_ratio FIG_R H2 edgebox-nolog node-h2), / nginx x$(round_ratio FIG_R H2 edgebox-nolog nginx))"
echo "[edgebox: ${CONF[edgebox]}]"
echo "[node-h2: ${CONF[node-h2]}]"
have_nginx && echo "[nginx: ${CONF[nginx]}]"

echo
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed (every server answers 200 with 1024 bytes over h2; Edgebox and nginx resume TLS 1.3 and 1.2 sessions);"
  echo "every H2 run: 0 failed/errored/timed-out requests, 2xx only, protocol h2, the server's core busy; every NEW run full handshakes only, every RES run resumed only"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
