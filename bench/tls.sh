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
# H2 load: h2load -t1 -c10 -m10 on core $GEN_CPU, a WARM-second h2load run (not measured), then DUR s measured.
# Server CPU = user+sys of the server's process group from /proc around the measured run (lib.sh grp_cpu).
declare -A RPS=() SHARE=() NORM=() BAD=() RR=() NR=()   # RR/NR: per round, for the per-round ratios
h2_run() {  # h2_run ROUND SERVER
  local r=$1 n=$2 url="https://127.0.0.1:${PORT[$2]}/index.html"
  if [ "$WARM" -gt 0 ]; then
    timeout $((WARM + 20)) taskset -c "$GEN_CPU" h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$WARM" "$url" >/dev/null 2>&1
  fi
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"   # keep the log file small between runs
  local c0 c1 t0 t1 st0 st1
  c0=$(grp_cpu "${PID[$n]}"); st0=$(cpu_steal "$SRV_CPU"); t0=$(now_s)
  timed_gen "$RUN/h2load.out" timeout $((DUR + 20)) h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$DUR" "$url"
  t1=$(now_s); c1=$(grp_cpu "${PID[$n]}"); st1=$(cpu_steal "$SRV_CPU")
  local wall rps ok failed errored tmo s2 s3 s4 s5 proto share gcpu steal norm loglines="" warn=""
  wall=$(calc "$t1 - $t0" %.3f)
  rps=$(awk '/^finished in/ { print $4 }' "$RUN/h2load.out")
  read -r ok failed errored tmo < <(awk '/^requests:/ { for (i = 2; i < NF; i++) { v = $i; w = $(i + 1); gsub(/,/, "", w)
      if (w == "succeeded") s = v; if (w == "failed") f = v; if (w == "errored") e = v; if (w == "timeout") t = v }
      print s + 0, f + 0, e + 0, t + 0 }' "$RUN/h2load.out")
  read -r s2 s3 s4 s5 < <(awk '/^status codes:/ { print $3 + 0, $5 + 0, $7 + 0, $9 + 0 }' "$RUN/h2load.out")
  proto=$(awk -F': ' '/^Application protocol/ { print $2 }' "$RUN/h2load.out")
  share=$(calc "($c1 - $c0) / $wall"); gcpu=$(calc "$GEN_CPU_S / $wall")
  steal=$(calc "($st1 - $st0) / $(getconf CLK_TCK) / $wall")
  norm=$(awk -v a="${rps:-0}" -v s="$share" 'BEGIN { printf "%.0f", (s > 0 ? a / s : 0) }')
  if [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(wc -l < "$EB_LOG")"; fi
  awk -v s="$share" 'BEGIN { exit !(s < 0.5) }' && warn=" (LOW srv_cpu: core $SRV_CPU was busy, or h2load was the limit)"
  awk -v g="$gcpu" 'BEGIN { exit !(g >= 0.9) }' && warn+=" (h2load near the limit of core $GEN_CPU: a lower bound for this server's req/s)"
  printf 'H2  round%s %-14s rps=%-10s succeeded=%-8s failed=%s errored=%s timeout=%s status_2xx=%s non2xx=%s proto=%s srv_cpu=%s steal_cpu%s=%s h2load_cpu=%s req_per_srv_cpu_s=%s%s%s\n' \
    "$r" "$n" "${rps:-0}" "${ok:-0}" "${failed:-?}" "${errored:-?}" "${tmo:-?}" "${s2:-0}" "$(( ${s3:-0} + ${s4:-0} + ${s5:-0} ))" "${proto:-none}" \
    "$share" "$SRV_CPU" "$steal" "$gcpu" "$norm" "$loglines" "$warn"
  if [ -z "$rps" ] || [ "${ok:-0}" = 0 ] || [ "${failed:-1}" != 0 ] || [ "${errored:-1}" != 0 ] || [ "${tmo:-1}" != 0 ] \
     || [ $(( ${s3:-0} + ${s4:-0} + ${s5:-0} )) != 0 ] || [ "$proto" != h2 ]; then
    BAD[H2,$n]=$(( ${BAD[H2,$n]:-0} + 1 ))
    PROBLEMS+=("H2 round$r $n: succeeded=${ok:-0} failed=${failed:-?} errored=${errored:-?} timeout=${tmo:-?} non2xx=$(( ${s3:-0} + ${s4:-0} + ${s5:-0} )) proto=${proto:-none}")
    grep -iE 'error|fail|refused' "$RUN/h2load.out" | head -3 | sed 's/^/    h2load: /'
    return
  fi
  RPS[H2,$n]+="$rps "; SHARE[H2,$n]+="$share "; NORM[H2,$n]+="$norm "; RR[H2,$n,$r]=$rps; NR[H2,$n,$r]=$norm
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
  if [ "$WARM" -gt 0 ]; then timeout $((WARM + 20)) taskset -c "$GEN_CPU" "${cmd[@]}" -time "$WARM" >/dev/null 2>&1; fi
  [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
  local c0 c1 t0 t1 st0 st1
  c0=$(grp_cpu "${PID[$n]}"); st0=$(cpu_steal "$SRV_CPU"); t0=$(now_s)
  timed_gen "$RUN/s_time.out" timeout $((DUR + 20)) "${cmd[@]}" -time "$DUR"
  t1=$(now_s); c1=$(grp_cpu "${PID[$n]}"); st1=$(cpu_steal "$SRV_CPU")
  local wall conns bytes full reused cps share gcpu steal norm loglines="" warn="" why=""
  wall=$(calc "$t1 - $t0" %.3f)
  conns=$(awk '/connections in .* real seconds/ { print $1 }' "$RUN/s_time.out" | tail -1)
  bytes=$(awk '/bytes read per connection/ { print $(NF - 4) }' "$RUN/s_time.out" | tail -1)
  full=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd '*' | wc -c)
  reused=$(grep -aE '^[*rt23]+$' "$RUN/s_time.out" | tr -cd 'r' | wc -c)
  cps=$(calc "${conns:-0} / $wall" %.0f)
  share=$(calc "($c1 - $c0) / $wall"); gcpu=$(calc "$GEN_CPU_S / $wall")
  steal=$(calc "($st1 - $st0) / $(getconf CLK_TCK) / $wall")
  norm=$(awk -v a="$cps" -v s="$share" 'BEGIN { printf "%.0f", (s > 0 ? a / s : 0) }')
  if [ "$n" = edgebox ] && [ "$EB_LOG" != /dev/null ]; then sleep 0.3; loglines=" access_log_lines=$(grep -c '"msg":"request"' "$EB_LOG")"; fi
  printf '%-3s round%s %-14s conn_per_s=%-7s connections=%-7s full_handshakes=%-7s resumed=%-7s bytes_per_conn=%s srv_cpu=%s steal_cpu%s=%s s_time_cpu=%s conn_per_srv_cpu_s=%s%s\n' \
    "$test" "$r" "$n" "$cps" "${conns:-0}" "$full" "$reused" "${bytes:-0}" "$share" "$SRV_CPU" "$steal" "$gcpu" "$norm" "$loglines"
  if [ -z "$conns" ] || [ "${conns:-0}" = 0 ]; then why="no connection completed"
  elif [ "${bytes:-0}" -lt 1024 ]; then why="only ${bytes:-0} bytes read per connection (want the 1 KiB answer)"
  elif [ "$test" = NEW ] && [ "$reused" != 0 ]; then why="$reused of $conns connections were resumed (want full handshakes)"
  elif [ "$test" = RES ] && [ $(( reused * 100 )) -lt $(( conns * 99 )) ]; then why="only $reused of $conns connections were resumed"
  fi
  if [ -n "$why" ]; then
    BAD[$test,$n]=$(( ${BAD[$test,$n]:-0} + 1 )); PROBLEMS+=("$test round$r $n: $why"); echo "    left out: $why"
    grep -aivE '^[*rt23]+$' "$RUN/s_time.out" | grep -aiE 'error|unable|refused' | head -3 | sed 's/^/    s_time: /'
    return
  fi
  RPS[$test,$n]+="$cps "; SHARE[$test,$n]+="$share "; NORM[$test,$n]+="$norm "; RR[$test,$n,$r]=$cps; NR[$test,$n,$r]=$norm
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
declare -A MRATE=() MNORM=()
summary() {  # summary TEST TITLE UNIT REF SERVERS...
  local test=$1 title=$2 unit=$3 ref=$4; shift 4
  echo "### $title"
  printf '%-14s %10s %-21s %8s %14s %17s %s\n' server "$unit" "(min-max)" srv_cpu "per srv-cpu-s" "x $ref" "failed runs"
  local rn rr n m s k
  rn=$(med "${NORM[$test,$ref]:-}"); rr=$(med "${RPS[$test,$ref]:-}")
  for n in "$@"; do
    [ -z "${RPS[$test,$n]:-}" ] && { printf '%-14s no valid run (failed runs: %s)\n' "$n" "${BAD[$test,$n]:-0}"; continue; }
    m=$(med "${RPS[$test,$n]}"); s=$(med "${SHARE[$test,$n]}"); k=$(med "${NORM[$test,$n]}")
    MRATE[$test,$n]=$m; MNORM[$test,$n]=$k
    printf '%-14s %10.0f %-21s %8s %14.0f %9s (%5s) %s\n' "$n" "$m" "($(rng "${RPS[$test,$n]}"))" "$s" "$k" \
      "x$(ratio "$k" "$rn")" "x$(ratio "$m" "$rr")" "${BAD[$test,$n]:-0}"
  done
}
summary H2 "H2: GET /index.html (1 KiB) over HTTP/2 + TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS; 'x node-h2' = ratio of req per srv-cpu-s (req/s ratio in brackets)" \
  req/s node-h2 "${H2_SET[@]}"
if have_nginx; then
  summary NEW "NEW: full TLS handshakes (+ one HTTP/1.0 GET each), s_time -new; 'x nginx' = ratio of handshakes per srv-cpu-s (per-second ratio in brackets)" \
    conn/s nginx "${HS_SET[@]}"
  summary RES "RES: resumed TLS handshakes (+ one HTTP/1.0 GET each), s_time -reuse; 'x nginx' likewise" conn/s nginx "${HS_SET[@]}"
else
  summary NEW "NEW: full TLS handshakes (+ one HTTP/1.0 GET each), s_time -new" conn/s edgebox "${HS_SET[@]}"
  summary RES "RES: resumed TLS handshakes (+ one HTTP/1.0 GET each), s_time -reuse" conn/s edgebox "${HS_SET[@]}"
fi

# per-round figures of server A and B, aligned by round ('-' where a run failed), for median_ratio (lib.sh)
rounds_of() {  # rounds_of ARRAY(RR|NR) TEST SERVER
  local -n arr=$1; local r out=""
  for r in $(seq 1 "$ROUNDS"); do out+="${arr[$2,$3,$r]:--} "; done
  echo "$out"
}
echo
echo "## ratios (Edgebox default configuration vs peers measured in this run). Verdict on the median of the per-round"
echo "## ratios (the two servers of a ratio run within a minute or two of each other); the ratio of the medians in brackets"
printf '%-62s %6s %8s  %-10s %s\n' measure ratio "(of med)" target verdict
row() {  # row LABEL TEST A B ARRAY(RR|NR) TARGET|-
  local v m med_a med_b
  v=$(median_ratio "$(rounds_of "$5" "$2" "$3")" "$(rounds_of "$5" "$2" "$4")")
  if [ "$5" = NR ]; then med_a=${MNORM[$2,$3]:-}; med_b=${MNORM[$2,$4]:-}; else med_a=${MRATE[$2,$3]:-}; med_b=${MRATE[$2,$4]:-}; fi
  m=$(ratio "$med_a" "$med_b")
  if [ "$6" = - ]; then printf '%-62s %6s %8s  %-10s %s\n' "$1" "$v" "($m)" "-" reported
  else printf '%-62s %6s %8s  %-10s %s\n' "$1" "$v" "($m)" ">= $6" "$(verdict "$v" "$6" | sed 's/MET/met/; s/NOT met/not met/')"; fi
}
row "H2 req per server CPU-second, edgebox / node-h2" H2 edgebox node-h2 NR 0.8
row "H2 req/s, edgebox / node-h2" H2 edgebox node-h2 RR -
row "H2 req per server CPU-second, edgebox / nginx" H2 edgebox nginx NR -
row "H2 req/s, edgebox / nginx" H2 edgebox nginx RR -
row "NEW handshakes per server CPU-second, edgebox / nginx" NEW edgebox nginx NR -
row "NEW handshakes/s, edgebox / nginx" NEW edgebox nginx RR -
row "RES resumed handshakes per server CPU-second, edgebox / nginx" RES edgebox nginx NR -
row "RES resumed handshakes/s, edgebox / nginx" RES edgebox nginx RR -
echo "(the H2 target is judged per server CPU-second, as in the other benchmarks; the req/s ratio is shown beside it)"
echo "(for information, edgebox-nolog [${CONF[edgebox-nolog]}]: H2 per server CPU-second / node-h2 x$(median_ratio "$(rounds_of NR H2 edgebox-nolog)" "$(rounds_of NR H2 node-h2)"), / nginx x$(median_ratio "$(rounds_of NR H2 edgebox-nolog)" "$(rounds_of NR H2 nginx)"))"
echo "[edgebox: ${CONF[edgebox]}]"
echo "[node-h2: ${CONF[node-h2]}]"
have_nginx && echo "[nginx: ${CONF[nginx]}]"

echo
for n in "${NOTES[@]}"; do echo "NOTE: $n"; done
bad_total=0; for k in "${!BAD[@]}"; do bad_total=$((bad_total + BAD[$k])); done
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo "NOTE: problems seen ($bad_total run(s) left out of the medians):"; printf '  %s\n' "${PROBLEMS[@]}"
else
  echo "all checks passed (every server answers 200 with 1024 bytes over h2; Edgebox and nginx resume TLS 1.3 and 1.2 sessions);"
  echo "every H2 run: 0 failed/errored/timed-out requests, 2xx only, protocol h2; every NEW run full handshakes only, every RES run resumed only"
fi
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; figures are not meaningful for the targets"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
