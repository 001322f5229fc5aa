#!/usr/bin/env bash
# Work per TLS connection (full or resumed TLS 1.3 handshake + one HTTP/1.0 GET of the 1 KiB index.html) of Edgebox's
# TLS listener, beside bench/servers/tls-bare.mjs and openssl s_server (bench/profiles/tls-handshake.md).
# Loopback only; one server at a time on $PORT; the client is bench/profiles/tls-handshake-client.mjs (a fixed count).
#
# usage: bash bench/profiles/tls-handshake.sh callgrind|cpuprof SERVER new|reuse [CONNECTIONS]
#   SERVER: edgebox     Edgebox from $ROOT (default: this checkout), bench/tls.sh's default configuration
#                       (tls listener, static route, access log ON to a file, session tickets ON)
#           tls-bare    bench/servers/tls-bare.mjs (from $ROOT when it has one, else this checkout's)
#           variant     tls-bare with one piece added or taken away (V_SESS, V_SNI, V_PEEK: bench/servers/tls-bare.mjs)
#           s_server    openssl s_server -www (callgrind only): OpenSSL's own server, the ceiling
#   callgrind: valgrind --tool=callgrind --separate-threads=yes; counters zeroed after start-up and a warm-up of 100
#              connections, dumped after CONNECTIONS (default 300); prints Ir per connection of the main thread
#              and of all threads, and the top functions (inclusive) of the main thread.
#   cpuprof:   node --cpu-prof, the same warm-up then CONNECTIONS (default 5000); prints the top self frames.
#   cpu:       the server's user and system CPU time per connection (/proc/PID/stat), CONNECTIONS (default 5000)
#   strace:    the same under strace -f -c (attached after the warm-up): system calls per connection
#   env: ROOT, PORT (18991), DIR (/tmp/eb-tls-handshake), SNI (a server name the client sends; default none, as
#        openssl s_time to 127.0.0.1), EB_TLS12=1 (the client speaks TLS 1.2)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
MODE=$1 SERVER=$2 KIND=$3
ROOT=${ROOT:-$REPO} PORT=${PORT:-18991} DIR=${DIR:-/tmp/eb-tls-handshake} SNI=${SNI:-}
source "$REPO/bench/lib.sh"
NODE="$REPO/node_modules/.bin/node"
if [ "$MODE" = callgrind ]; then N=${4:-300}; else N=${4:-5000}; fi
mkdir -p "$DIR/www" "$DIR/tls"
# the benchmarks' fixtures (lib.sh): the 1 KiB index.html with a fixed mtime (the same ETag every run), and an ECDSA
# P-256 certificate for localhost, made once per DIR
WWW="$DIR/www" PATH="$REPO/node_modules/.bin:$PATH" make_index_html
[ -f "$DIR/tls/leaf.crt" ] || make_tls_cert "$DIR/tls"
printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
  "$PORT" "$DIR/www" > "$DIR/tls/edgebox-$PORT.json"
EB_CIPHERS=$(cd "$REPO" && "$NODE" -e "import('./src/config/schema.ts').then((m) => console.log(m.MODERN_CIPHERS))")
export EB_CIPHERS
OUT="$DIR/$MODE-$SERVER${V_SESS:+-sess$V_SESS}${V_SNI:+-sni$V_SNI}${V_PEEK:+-peek$V_PEEK}-$KIND-$(date +%H%M%S)"; mkdir -p "$OUT"
case $MODE in
  callgrind) PRE=(valgrind --tool=callgrind --separate-threads=yes "--callgrind-out-file=$OUT/cg.out") NODEFLAGS=() ;;
  cpuprof) PRE=() NODEFLAGS=(--cpu-prof "--cpu-prof-dir=$OUT") ;;
  cpu|strace) PRE=() NODEFLAGS=() ;;
  *) echo "mode: callgrind or cpuprof" >&2; exit 2 ;;
esac
BARE="$ROOT/bench/servers/tls-bare.mjs"; [ -f "$BARE" ] || BARE="$REPO/bench/servers/tls-bare.mjs"
case $SERVER in
  edgebox)  (cd "$ROOT" && exec setsid "${PRE[@]}" "$NODE" "${NODEFLAGS[@]}" bin/edgebox.js --config "$DIR/tls/edgebox-$PORT.json" > "$OUT/access.log" 2> "$OUT/err") & ;;
  tls-bare) setsid "${PRE[@]}" "$NODE" "${NODEFLAGS[@]}" "$BARE" "$PORT" "$DIR/tls/leaf.crt" "$DIR/tls/leaf.key" "$DIR/www/index.html" > "$OUT/out" 2> "$OUT/err" & ;;
  variant)  setsid "${PRE[@]}" "$NODE" "${NODEFLAGS[@]}" "$REPO/bench/servers/tls-bare.mjs" "$PORT" "$DIR/tls/leaf.crt" "$DIR/tls/leaf.key" "$DIR/www/index.html" > "$OUT/out" 2> "$OUT/err" & ;;
  s_server) (cd "$DIR/www" && exec setsid "${PRE[@]}" openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$DIR/tls/leaf.crt" -key "$DIR/tls/leaf.key" -WWW > "$OUT/out" 2> "$OUT/err" < /dev/null) & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
SRV=$!
# --http1.1: tls-bare offers h2 in its ALPN list but speaks HTTP/1.1 only
for i in $(seq 300); do curl -sk --http1.1 -o /dev/null --max-time 20 "https://127.0.0.1:$PORT/index.html" && break; sleep 1; done
client() { "$NODE" "$HERE/tls-handshake-client.mjs" "$PORT" "$1" "$KIND" $SNI; }
client 100 > "$OUT/warm" || echo "warm-up: $(cat "$OUT/warm")" >&2
[ "$MODE" = callgrind ] && callgrind_control -z "$SRV" > /dev/null
# user and system CPU time of the server (all its threads), clock ticks, from /proc
ticks() { awk '{ print $14, $15 }' "/proc/$SRV/stat"; }
if [ "$MODE" = strace ]; then strace -f -c -p "$SRV" -o "$OUT/strace.txt" 2> /dev/null & SPID=$!; sleep 2; fi
read -r u0 s0 < <(ticks)
client "$N" > "$OUT/load" || echo "load: not as expected" >&2
read -r u1 s1 < <(ticks)
if [ "$MODE" = strace ]; then kill -INT "$SPID"; wait "$SPID"; fi
cat "$OUT/load"
[ "$MODE" = callgrind ] && callgrind_control -d "$SRV" > /dev/null && sleep 1
kill -TERM "$SRV"; wait "$SRV" 2>/dev/null
# s_server and valgrind may outlive the TERM of the subshell: stop what still listens on the port
sleep 1; fuser -k -TERM "$PORT/tcp" > /dev/null 2>&1
hz=$(getconf CLK_TCK)
echo "$SERVER $KIND: CPU per connection: user $(( (u1 - u0) * 1000000 / hz / N )) us, system $(( (s1 - s0) * 1000000 / hz / N )) us ($N connections)"
if [ "$MODE" = strace ]; then
  awk -v n="$N" 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ { printf "  %-16s %6.2f calls/connection\n", $NF, $4 / n }' "$OUT/strace.txt" | sort -k2 -rn | head -20
  awk -v n="$N" '$NF == "total" { printf "  %-16s %6.2f calls/connection\n", "all", $3 / n }' "$OUT/strace.txt"
elif [ "$MODE" = callgrind ]; then
  # one file per thread after the dump: -01 is the main thread
  main=$(ls "$OUT"/cg.out.*-01 2>/dev/null | sort | tail -1)
  total=0
  for f in $(ls "$OUT"/cg.out.*-* 2>/dev/null); do
    ir=$(awk '/^summary:/ { print $2 }' "$f"); total=$((total + ${ir:-0}))
  done
  mir=$(awk '/^summary:/ { print $2 }' "$main")
  echo "$SERVER $KIND: main thread Ir/connection $((mir / N)), all threads $((total / N)) ($N connections; $OUT)"
  callgrind_annotate --inclusive=yes "$main" 2>/dev/null | sed -n '1,/^-- Auto/p' | grep -E '^ *[0-9,]+ ' | head -40 > "$OUT/top-inclusive.txt"
  callgrind_annotate "$main" 2>/dev/null | grep -E "^ *[0-9,]+ " | grep -v "PROGRAM TOTALS" | head -30 > "$OUT/top-self.txt"
elif [ "$MODE" = cpuprof ]; then
  prof=$(ls "$OUT"/*.cpuprofile | head -1)
  "$NODE" "$HERE/cpuprofile-top.mjs" "$prof" 30 "" "$N" || echo "profile: $prof"
fi
