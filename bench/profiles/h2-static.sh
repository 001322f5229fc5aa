#!/usr/bin/env bash
# Work per request of Edgebox's HTTP/2-over-TLS path for a 1 KiB static file, beside bare Node h2 servers
# (bench/profiles/h2-static.md). Loopback only; one server at a time on $PORT.
#
# usage: bash bench/profiles/h2-static.sh callgrind|cpuprof SERVER [REQUESTS]
#   SERVER: edgebox | edgebox-nolog   Edgebox from $ROOT (default: this checkout), the default configuration
#                                     (tls listener, static route, access log ON to a file / "log":{"access":false})
#           same-head                 bare http2.createSecureServer sending Edgebox's 13-field head on 'stream'
#           same-compat               the same through the compatibility API ('request', res.stream.respond)
#           h2-node                   bench/servers/h2-node.mjs (3 fields)
#   callgrind: valgrind --tool=callgrind --separate-threads=yes; counters zeroed after start-up and a 2000-request
#              warm-up, dumped after REQUESTS (default 3000) requests of h2load -c10 -m10; prints instructions (Ir) per
#              request of the main thread and of all threads.
#              Then IDLE seconds (default 5) of the idle server are counted too, and the load's figures are also
#              given net of that idle rate (the server's per-second work, which grows with the run's length).
#   cpuprof:   node --cpu-prof, the same warm-up then REQUESTS (default 20000); prints the top self frames per request.
#   env: ROOT (Edgebox tree, e.g. a `git archive` of an older commit with node_modules linked), PORT (18990),
#        DIR (/tmp/eb-h2-static: fixtures and outputs), IDLE (5), WARM (warm-up requests, 2000): under valgrind,
#        V8's optimizing compilers share the one virtual CPU with the main thread, and after 2000 requests a run
#        may still be running code that is not optimized yet (the same build then measures up to 1.5x more);
#        WARM=10000 narrows that spread without removing it: compare several runs of each tree.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
MODE=$1 SERVER=$2
ROOT=${ROOT:-$REPO} PORT=${PORT:-18990} DIR=${DIR:-/tmp/eb-h2-static} IDLE=${IDLE:-5} WARM=${WARM:-2000}
source "$REPO/bench/lib.sh"
NODE="$REPO/node_modules/.bin/node"
if [ "$MODE" = callgrind ]; then N=${3:-3000}; else N=${3:-20000}; fi
mkdir -p "$DIR/www" "$DIR/tls"
# the benchmarks' fixtures (lib.sh): the 1 KiB index.html with a fixed mtime (the same ETag every run), and an ECDSA
# P-256 certificate for localhost, made once per DIR
WWW="$DIR/www" PATH="$REPO/node_modules/.bin:$PATH" make_index_html
[ -f "$DIR/tls/leaf.crt" ] || make_tls_cert "$DIR/tls"
log='' ; [ "$SERVER" = edgebox-nolog ] && log='"log":{"access":false},'
printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],%s"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
  "$PORT" "$log" "$DIR/www" > "$DIR/tls/edgebox.json"
# the bare servers: Edgebox's head as it sends it for this file (Server-Timing with a fixed value)
cat > "$DIR/same.mjs" <<'JS'
import http2 from 'node:http2'
import fs from 'node:fs'
const [port, cert, key, file, api] = process.argv.slice(2)
const body = fs.readFileSync(file)
const head = () => ({
  ':status': 200, 'content-type': 'text/html; charset=utf-8', etag: '"sg-gs1hnx62o0"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
  'cache-control': 'no-cache', 'accept-ranges': 'bytes', vary: 'Accept-Encoding', 'content-length': body.length,
  'server-timing': 'edge;dur=0.05', 'x-content-type-options': 'nosniff', 'referrer-policy': 'strict-origin-when-cross-origin',
  'x-frame-options': 'SAMEORIGIN', 'content-security-policy': "frame-ancestors 'self'",
})
const server = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), allowHTTP1: false })
const answer = (stream) => { stream.on('error', () => {}); stream.respond(head()); stream.end(body) }
if (api === 'compat') server.on('request', (req, res) => answer(res.stream))
else server.on('stream', answer)
server.on('sessionError', () => {})
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })
JS
# another server on the port would answer the load in this one's place
if ss -ltnH "( sport = :$PORT )" 2>/dev/null | grep -q .; then echo "port $PORT is in use: choose another (PORT=...)" >&2; exit 1; fi
OUT="$DIR/$MODE-$SERVER-$(date +%H%M%S)"; mkdir -p "$OUT"
case $MODE in
  callgrind) PRE=(valgrind --tool=callgrind --separate-threads=yes "--callgrind-out-file=$OUT/cg.out") ;;
  cpuprof) PRE=() ; NODEFLAGS=(--cpu-prof "--cpu-prof-dir=$OUT") ;;
  *) echo "mode: callgrind or cpuprof" >&2; exit 2 ;;
esac
ARGS=("$PORT" "$DIR/tls/leaf.crt" "$DIR/tls/leaf.key" "$DIR/www/index.html")
case $SERVER in
  edgebox|edgebox-nolog) (cd "$ROOT" && exec setsid "${PRE[@]}" "$NODE" ${NODEFLAGS[@]+"${NODEFLAGS[@]}"} bin/edgebox.js --config "$DIR/tls/edgebox.json" > "$OUT/access.log" 2> "$OUT/err") & ;;
  same-head)   setsid "${PRE[@]}" "$NODE" ${NODEFLAGS[@]+"${NODEFLAGS[@]}"} "$DIR/same.mjs" "${ARGS[@]}" stream 2> "$OUT/err" & ;;
  same-compat) setsid "${PRE[@]}" "$NODE" ${NODEFLAGS[@]+"${NODEFLAGS[@]}"} "$DIR/same.mjs" "${ARGS[@]}" compat 2> "$OUT/err" & ;;
  h2-node)     setsid "${PRE[@]}" "$NODE" ${NODEFLAGS[@]+"${NODEFLAGS[@]}"} "$REPO/bench/servers/h2-node.mjs" "${ARGS[@]}" 2> "$OUT/err" & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
SRV=$!
URL="https://127.0.0.1:$PORT/index.html"
for i in $(seq 300); do curl -sk -o /dev/null --max-time 20 "$URL" && break; sleep 1; done
h2load -n "$WARM" -c10 -m10 "$URL" | grep -q "$WARM succeeded" || echo "warm-up: not every request succeeded" >&2
[ "$MODE" = callgrind ] && callgrind_control -z "$SRV" > /dev/null
T0=$(date +%s.%N)
h2load -n "$N" -c10 -m10 "$URL" | grep -q "$N succeeded" || echo "load: not every request succeeded" >&2
T1=$(date +%s.%N)
if [ "$MODE" = callgrind ]; then
  callgrind_control -d "$SRV" > /dev/null && sleep 1
  # the idle server's own work per second (timers, the static route's revalidation, the log's flush): under valgrind
  # a load lasts minutes, and this part of the count grows with the run's length, not with the requests
  callgrind_control -z "$SRV" > /dev/null; I0=$(date +%s.%N); sleep "$IDLE"; I1=$(date +%s.%N)
  callgrind_control -d "$SRV" > /dev/null && sleep 1
fi
kill -TERM "$SRV"; wait "$SRV" 2>/dev/null
if [ "$MODE" = callgrind ]; then
  # one file per thread: -01 is the main (JavaScript) thread; the others are V8's helpers and libuv's pool
  # part 1: the load; part 2: the idle seconds after it
  count() {
    local total=0 main=0 ir f
    for f in "$OUT"/cg.out.$1-*; do
      ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
      [[ "$ir" =~ ^[0-9]+$ ]] || continue
      total=$((total + ir))
      [[ "$f" == *-01 ]] && main=$ir
    done
    echo "$main $total"
  }
  read -r main total <<< "$(count 1)"
  read -r imain itotal <<< "$(count 2)"
  echo "$SERVER: Ir per request over $N requests: main thread $((main / N)), all threads $((total / N)) ($OUT)"
  awk -v n="$N" -v m="$main" -v t="$total" -v im="$imain" -v it="$itotal" -v load="$(echo "$T1 - $T0" | bc)" -v idle="$(echo "$I1 - $I0" | bc)" 'BEGIN {
    printf "  load %.1f s; idle server: main thread %d Ir/s, all threads %d Ir/s (%.1f s)\n", load, im / idle, it / idle, idle
    printf "  net of the idle rate over the load: main thread %d, all threads %d Ir per request\n", (m - im / idle * load) / n, (t - it / idle * load) / n
  }'
else
  # the profile covers the warm-up too: per request of both loads
  "$NODE" "$HERE/cpuprofile-top.mjs" "$OUT" 30 onSessionHeaders "$((N + WARM))"
fi
