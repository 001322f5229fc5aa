#!/bin/bash
# Instructions (Ir) per stored beacon, Edgebox's collector against the bare server of the RUM benchmark, with
# callgrind: repeatable whatever else the machine does, where per-CPU-second figures are not (bench/README.md,
# "Real-user monitoring benchmark"). The server runs under valgrind with instrumentation off; a warm-up load (JIT)
# first, then instrumentation on for a measured load and off again; the figure is per beacon answered 204, with the
# optimizing compilers and the garbage collector taken out (cg-net.awk) as they land differently each run. SQLite's
# inserts are in both (--single-threaded keeps V8's helpers on the main thread; node:sqlite runs there anyway).
#   usage: bench/profiles/rum-callgrind.sh SERVER        SERVER: edgebox | bare
#   env: WARM (20 s)  DUR (30 s measured)  CONNS (2)  NODEFLAGS (--single-threaded)
# The same beacon and load as bench/rum.sh (rum-tool.mjs body, rum-wrk.lua: a new X-Forwarded-For per request,
# 127.0.0.1 trusted, so no client reaches the rate limit); Edgebox with its defaults (access log on, to a file).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
server=${1:?usage: rum-callgrind.sh edgebox|bare}
WARM=${WARM:-20}; DUR=${DUR:-30}; CONNS=${CONNS:-2}; NODEFLAGS=${NODEFLAGS:---single-threaded}
OUT=$(mktemp -d /tmp/rum-cg.XXXX)
mkdir -p "$OUT/www" "$OUT/data"
echo '<!doctype html><title>bench</title>' > "$OUT/www/index.html"
node "$BENCH/servers/rum-tool.mjs" body > "$OUT/batch.json"
case $server in
  edgebox)
    port=18920
    cat > "$OUT/edgebox.json" <<JSON
{"listen":[{"host":"127.0.0.1","port":$port}],"dataDir":"$OUT/data","trustedProxies":["127.0.0.1/32"],
 "sites":[{"rum":true,"routes":[{"path":"/","static":{"root":"$OUT/www"}}]}]}
JSON
    cmd=(node $NODEFLAGS "$ROOT/bin/edgebox.js" --config "$OUT/edgebox.json") ;;
  bare) port=18921; cmd=(node $NODEFLAGS "$BENCH/servers/rum-bare.mjs" $port "$OUT/data/rum.sqlite") ;;
  *) echo "SERVER is edgebox or bare" >&2; exit 2 ;;
esac
url="http://127.0.0.1:$port/_edgebox/rum/batch"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" "${cmd[@]}" >"$OUT/server.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT/www" "$OUT/data"' EXIT
for i in $(seq 1 300); do
  curl -s -o /dev/null -H 'content-type: application/json' -H 'x-forwarded-for: 192.0.2.1' --data-binary @"$OUT/batch.json" "$url" && break
  sleep 0.5
done
RUM_BODY="$OUT/batch.json" RUM_TALLY="$OUT/warm" wrk -t1 -c"$CONNS" -d"${WARM}s" -s "$BENCH/servers/rum-wrk.lua" "$url" >/dev/null
callgrind_control -i on "$vg" >/dev/null
RUM_BODY="$OUT/batch.json" RUM_TALLY="$OUT/tally" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/servers/rum-wrk.lua" "$url" >/dev/null
callgrind_control -i off "$vg" >/dev/null
read -r answered refused sent < "$OUT/tally"
[ "$refused" = 0 ] || echo "note: $refused beacons refused in the measured load" >&2
kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
callgrind_annotate --inclusive=yes --threshold=100 "$OUT"/cg.out* 2>/dev/null | awk -v ok="$answered" -v d="$server ($answered beacons)" -f "$BENCH/profiles/cg-net.awk"
