#!/usr/bin/env bash
# CPU time per thread of a server under load: the JavaScript (main) thread, V8's worker threads (concurrent GC
# marking and sweeping, the optimizing compilers) and libuv's pool, each as user + system ticks, and the requests per
# CPU-second of the whole process (bench/profiles/h2-static.md, "Allocation-site pretenuring"). What callgrind's
# main-thread counts leave out: a server whose garbage goes to the old generation pays in the V8 worker threads.
# Loopback only; the server on core 0, the load on core 1; one server at a time on $PORT.
#
# usage: bash bench/profiles/thread-cpu.sh LOAD SERVER [REQUESTS]
#   LOAD: h2    h2load -c10 -m10 https://.../index.html (HTTP/2 over TLS)
#         h2m   h2load -c1 -m100 (the same, one connection)
#   SERVER: edgebox | edgebox-nolog   Edgebox from $ROOT (default: this checkout): tls listener, static route, access
#                                     log ON to a file / "log":{"access":false}
#           same-head | same-work     bench/servers/h2-node.mjs with Edgebox's head (read from Edgebox at the start),
#                                     without / with --work (Server-Timing and Edgebox's access line per request)
#   REQUESTS: measured requests (100000), after 20000 not measured
#   env: ROOT, PORT (18985), DIR (/tmp/eb-thread-cpu: fixtures and outputs), NODEOPTS (extra node flags, e.g.
#        --allocation-site-pretenuring to see Edgebox with V8's default back)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
LOAD=${1:-} SERVER=${2:-} N=${3:-100000}
ROOT=${ROOT:-$REPO} PORT=${PORT:-18985} DIR=${DIR:-/tmp/eb-thread-cpu}
source "$REPO/bench/lib.sh"
NODE="$REPO/node_modules/.bin/node"
case $LOAD in h2) LOADARGS=(-c10 -m10) ;; h2m) LOADARGS=(-c1 -m100) ;; *) echo "LOAD: h2 or h2m" >&2; exit 2 ;; esac
mkdir -p "$DIR/www" "$DIR/tls"
WWW="$DIR/www" PATH="$REPO/node_modules/.bin:$PATH" make_index_html
[ -f "$DIR/tls/leaf.crt" ] || make_tls_cert "$DIR/tls"
if ss -ltnH "( sport = :$PORT )" 2>/dev/null | grep -q .; then echo "port $PORT is in use: choose another (PORT=...)" >&2; exit 1; fi
config() {  # config FILE ACCESSLOG(true|false)
  printf '{"listen":[{"host":"127.0.0.1","port":%s,"tls":true}],"log":{"access":%s},"tls":{"certificates":[{"cert":"leaf.crt","key":"leaf.key"}]},"sites":[{"routes":[{"path":"/","static":{"root":"%s"}}]}]}\n' \
    "$PORT" "$2" "$DIR/www" > "$1"
}
URL="https://127.0.0.1:$PORT/index.html"
up() { local i; for i in $(seq 100); do curl -sk -o /dev/null --max-time 5 "$URL" && return 0; sleep 0.3; done; return 1; }
HEAD="$DIR/head.txt"
case $SERVER in
  edgebox|edgebox-nolog)
    config "$DIR/tls/edgebox.json" "$([ "$SERVER" = edgebox ] && echo true || echo false)"
    (cd "$ROOT" && exec setsid taskset -c 0 "$NODE" ${NODEOPTS:-} bin/edgebox.js --config "$DIR/tls/edgebox.json" > "$DIR/access.log" 2> "$DIR/err") & ;;
  same-head|same-work)
    # Edgebox's head for this file, as it sends it over HTTP/2 (lib.sh capture_head)
    config "$DIR/tls/edgebox.json" true
    (cd "$ROOT" && exec setsid "$NODE" bin/edgebox.js --config "$DIR/tls/edgebox.json" > /dev/null 2>&1) &
    EB=$!; up && capture_head "$HEAD" "$URL" --http2; kill -TERM "$EB"; wait "$EB" 2>/dev/null
    [ -s "$HEAD" ] || { echo "could not read Edgebox's head" >&2; exit 1; }
    work=(); [ "$SERVER" = same-work ] && work=(--work)
    setsid taskset -c 0 "$NODE" ${NODEOPTS:-} "$REPO/bench/servers/h2-node.mjs" "$PORT" "$DIR/tls/leaf.crt" "$DIR/tls/leaf.key" \
      "$DIR/www/index.html" "$HEAD" ${work[@]+"${work[@]}"} > "$DIR/access.log" 2> "$DIR/err" & ;;
  *) echo "SERVER: edgebox, edgebox-nolog, same-head or same-work" >&2; exit 2 ;;
esac
SRV=$!
up || { echo "$SERVER did not answer; its stderr:" >&2; cat "$DIR/err" >&2; kill -TERM -- "-$SRV" 2>/dev/null; exit 1; }
# ticks (utime, stime) summed by thread name (/proc/PID/task/TID/comm: MainThread, V8Worker, libuv-worker, ...)
threads() {
  local t
  for t in /proc/"$SRV"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(sed 's/^.*) //' "$t/stat" | awk '{ print $12, $13 }')"
  done | awk '{ u[$1] += $2; s[$1] += $3 } END { for (k in u) print k, u[k], s[k] }' | sort
}
taskset -c 1 h2load -n 20000 "${LOADARGS[@]}" "$URL" | grep -q "20000 succeeded" || echo "warm-up: not every request succeeded" >&2
threads > "$DIR/before"
taskset -c 1 h2load -n "$N" "${LOADARGS[@]}" "$URL" > "$DIR/load.out"
threads > "$DIR/after"
kill -TERM -- "-$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null
grep -q "$N succeeded" "$DIR/load.out" || echo "load: not every request succeeded" >&2
echo "$SERVER${NODEOPTS:+ $NODEOPTS}, $LOAD: $(grep 'finished in' "$DIR/load.out")"
join "$DIR/before" "$DIR/after" | awk -v n="$N" -v hz="$(getconf CLK_TCK)" '
  { du = $4 - $2; ds = $5 - $3; tu += du; ts += ds; printf "  %-18s user %6d  sys %6d ticks\n", $1, du, ds }
  END { if (tu + ts > 0) printf "  all threads        user %6d  sys %6d ticks: %d requests per CPU-second\n", tu, ts, n * hz / (tu + ts) }'
