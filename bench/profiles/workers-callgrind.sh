#!/bin/bash
# Instructions (Ir) per answer with workers against one process, with callgrind over every process of the server (the
# primary and each worker: --trace-children=yes, one output file per process): repeatable whatever else the machine
# does, where the per-CPU-second figures of bench/workers.sh swing from run to run (bench/README.md, "Workers
# benchmark"). A counted warm-up load (JIT), then instrumentation on for a counted load and off again; per process and
# summed, the total and the optimizing compilers' and the garbage collector's parts (cg-net.awk), per answer.
#   usage: bench/profiles/workers-callgrind.sh WORKERS          (GET /index.html, 1 KiB static, access log to a file)
#   env: WARM_N (40000 requests of warm-up)  N (10000 measured)  CONNS (50)  NODEFLAGS (--single-threaded)
# The loads are counted (h2load --h1 -n), not timed. With SCHED_NONE the kernel does not spread the connections evenly
# between workers under valgrind's slow pace: a worker that took fewer of them has compiled less by the end of the
# warm-up, which shows in its compile figure.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
W=${1:?usage: workers-callgrind.sh WORKERS}
WARM_N=${WARM_N:-40000}; N=${N:-10000}; CONNS=${CONNS:-50}; NODEFLAGS=${NODEFLAGS:---single-threaded}
for t in valgrind callgrind_control callgrind_annotate h2load curl; do command -v $t >/dev/null || { echo "$t is missing (apt-get install valgrind nghttp2-client curl)" >&2; exit 1; }; done
OUT=$(mktemp -d /tmp/workers-cg.XXXX)
mkdir -p "$OUT/www" "$OUT/data"
head -c 1024 /dev/zero | tr '\0' 'x' > "$OUT/www/index.html"
port=$((18970 + W))
cat > "$OUT/edgebox.json" <<JSON
{"workers":$W,"listen":[{"host":"127.0.0.1","port":$port}],"dataDir":"$OUT/data","log":{"access":true,"file":"$OUT/access.log"},
 "sites":[{"routes":[{"path":"/","static":{"root":"$OUT/www"}}]}]}
JSON
valgrind --tool=callgrind --trace-children=yes --instr-atstart=no --callgrind-out-file="$OUT/cg.%p" node $NODEFLAGS "$ROOT/bin/edgebox.js" --config "$OUT/edgebox.json" >"$OUT/server.log" 2>&1 &
vg=$!
trap 'kill -TERM $vg 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT/www" "$OUT/data"' EXIT
for i in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.5; done
h2load --h1 -t1 -c"$CONNS" -n"$WARM_N" "http://127.0.0.1:$port/index.html" >/dev/null
callgrind_control -i on >/dev/null
n=$(h2load --h1 -t1 -c"$CONNS" -n"$N" "http://127.0.0.1:$port/index.html" | awk '/^requests:/ { for (i = 2; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i }')
callgrind_control -i off >/dev/null
kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
sleep 2
echo "workers: $W; $n answers measured; Ir per answer, per process then summed (the primary serves nothing):"
for f in "$OUT"/cg.*; do callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null | awk -v ok="$n" -v d="  $(basename "$f") " -f "$BENCH/profiles/cg-net.awk"; done | tee "$OUT/per-process.txt"
awk '{ for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) s[kv[1]] += kv[2] } END { printf "  all     total=%d compile=%d gc=%d net=%d\n", s["total"], s["compile"], s["gc"], s["net"] }' "$OUT/per-process.txt"
echo "output files: $OUT"
