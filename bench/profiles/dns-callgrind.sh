#!/bin/bash
# Instructions (Ir) per answered DNS query, Edgebox against the bare server of the DNS benchmark, with callgrind:
# repeatable whatever else the machine does, where per-CPU-second figures are not (bench/README.md, "DNS benchmark").
# The server runs under valgrind with instrumentation off; WARM queries warm it (JIT), then instrumentation is
# switched on for N queries from dnsperf at a fixed rate, and off again; net = total minus the optimizing compilers and
# the garbage collector (cg-net.awk), which land in the window differently each run.
#   usage: bench/profiles/dns-callgrind.sh SERVER LOAD [N]     SERVER: edgebox | bare | resolver   LOAD: auth | gslb
#   (resolver: Edgebox's resolver answering AUTH's names from its cache, warmed by the warm-up queries)
#   env: WARM (20000)  RATE (400 queries a second under valgrind)  NODEFLAGS (--single-threaded)
# Needs bench/dns.sh to have run once (its zone, configurations and query files in bench/.peers/run/dns).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
server=$1; load=$2; n=${3:-5000}; WARM=${WARM:-20000}; RATE=${RATE:-400}; NODEFLAGS=${NODEFLAGS:---single-threaded}
D="$BENCH/.peers/run/dns"; OUT=$(mktemp -d /tmp/dns-cg.XXXX)
[ -f "$D/edgebox.json" ] || { echo "run bash bench/dns.sh quick first (it writes $D)" >&2; exit 1; }
case $server in
  edgebox) port=18710; cmd=(node $NODEFLAGS "$ROOT/bin/edgebox.js" --config "$D/edgebox.json") ;;
  bare) port=18711; cmd=(node $NODEFLAGS "$BENCH/servers/dns-bare.mjs" 18711 "$D/bare.json") ;;
  resolver) port=18714; cmd=(node $NODEFLAGS "$ROOT/bin/edgebox.js" --config "$D/resolver.json") ;;
  *) echo "SERVER is edgebox, bare or resolver" >&2; exit 2 ;;
esac
file="$D/$load.txt"
edges=""
if [ "$server" = edgebox ]; then node "$BENCH/servers/tcp-edges.mjs" 18700 & edges=$!; fi
# the resolver's authority, outside valgrind
if [ "$server" = resolver ]; then node "$ROOT/bin/edgebox.js" --config "$D/authority.json" >/dev/null 2>&1 & edges=$!; fi
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" "${cmd[@]}" >"$OUT/server.log" 2>&1 &
vg=$!
trap 'kill $vg ${edges} 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 1 300); do
  node "$ROOT/bin/edgebox.js" dig host1.bench.test "@127.0.0.1:$port" --timeout 500 >/dev/null 2>&1 && break
  sleep 0.5
done
dnsperf -s 127.0.0.1 -p "$port" -d "$file" -n $((WARM / $(wc -l < "$file") + 1)) -Q "$RATE" -c 2 >/dev/null 2>&1
callgrind_control -i on "$vg" >/dev/null
ok=$(dnsperf -s 127.0.0.1 -p "$port" -d "$file" -n $((n / $(wc -l < "$file") + 1)) -Q "$RATE" -c 2 2>&1 | sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p')
callgrind_control -i off "$vg" >/dev/null
kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
callgrind_annotate --inclusive=yes --threshold=100 "$OUT"/cg.out* 2>/dev/null | awk -v ok="$ok" -v d="$server $load ($ok queries)" -f "$BENCH/profiles/cg-net.awk"
