#!/bin/bash
# HTTP/1.1 per-request cost of one server (bench/profiles/h1-cache-hit.md, h1-static.md).
# usage: h1-drive.sh NAME MODE N [prof|cg]
#   NAME  edgebox | edgebox-nolog | raw-node | raw-node-log | same-head | same-head-log (bench/profiles/h1-same-head.mjs: Edgebox's exact heads from a bare server)      MODE  cache (GET /obj through a proxy route with cache) | static | 304
#   N     request count for h2load --h1 -c10 (or set DUR=seconds to use wrk -t1 -c10 like bench/run.sh, and N is what wrk did)
#   prof  node --cpu-prof into $OUT/run-$TAG-NAME-MODE/prof (top frames: node bench/profiles/cpuprofile-top.mjs DIR 25 parserOnIncoming)
#   cg    valgrind --tool=callgrind, instrumentation switched on only for the measured requests: prints Ir per answered request
# env: ROOT (the Edgebox tree to run, default this checkout; a git worktree for "before"), PORT (19611; the origin PORT-1),
#      WARM (h2load warm-up count) or WARMS (wrk warm-up seconds), TAG, OUT (/tmp/h1prof),
#      NODEFLAGS (e.g. --single-threaded: no V8 compiler/GC threads, which makes callgrind totals repeatable)
# Prints the server's CPU time (utime+stime from /proc) per request: noisy on a shared machine, prefer cg.
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${ROOT:-$HERE}; NODE=$ROOT/node_modules/.bin/node; WWW=$HERE/bench/.peers/www
name=$1 mode=$2 N=$3 prof=${4:-}
D=${OUT:-/tmp/h1prof}/run-${TAG:-x}-$name-$mode; rm -rf $D; mkdir -p $D
PORT=${PORT:-19611}; OPORT=$((PORT-1))
OPID=
if [ $mode = cache ]; then
  $NODE $HERE/bench/servers/origin.mjs $OPORT $WWW/index.html >/dev/null 2>&1 & OPID=$!
  logon=true; [ $name = edgebox-nolog ] && logon=false
  echo "{\"listen\":[{\"host\":\"127.0.0.1\",\"port\":$PORT}],\"log\":{\"access\":$logon},\"sites\":[{\"routes\":[{\"path\":\"/\",\"proxy\":{\"upstreams\":[\"http://127.0.0.1:$OPORT\"],\"cache\":true}}]}]}" > $D/cfg.json
  URLP=/obj
else URLP=/index.html; fi
P=""; [ "$prof" = prof ] && P="--cpu-prof --cpu-prof-dir=$D/prof"
VG=""; [ "$prof" = cg ] && VG="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$D/cg.out"
case $name in
  edgebox|edgebox-nolog)
    if [ $mode = cache ]; then args="--config $D/cfg.json"; else args="$WWW --port $PORT --host 127.0.0.1"; [ $name = edgebox-nolog ] && args="$args --no-access-log"; fi
    setsid taskset -c 0 $VG $NODE ${NODEFLAGS:-} $P $ROOT/bin/edgebox.js $args > $D/out.log 2>$D/err.log & SPID=$! ;;
  raw-node) setsid taskset -c 0 $VG $NODE ${NODEFLAGS:-} $P $HERE/bench/servers/raw-node.mjs $PORT $WWW > $D/out.log 2>$D/err.log & SPID=$! ;;
  raw-node-log) setsid taskset -c 0 $VG $NODE ${NODEFLAGS:-} $P $HERE/bench/servers/raw-node.mjs $PORT $WWW --log > $D/out.log 2>$D/err.log & SPID=$! ;;
  same-head) setsid taskset -c 0 $VG $NODE ${NODEFLAGS:-} $P $HERE/bench/profiles/h1-same-head.mjs $PORT $WWW > $D/out.log 2>$D/err.log & SPID=$! ;;
  same-head-log) setsid taskset -c 0 $VG $NODE ${NODEFLAGS:-} $P $HERE/bench/profiles/h1-same-head.mjs $PORT $WWW --log > $D/out.log 2>$D/err.log & SPID=$! ;;
esac
for i in $(seq 1 3000); do curl -s -o /dev/null http://127.0.0.1:$PORT$URLP && break; sleep 0.1; done
H=(); if [ $mode = 304 ]; then et=$(curl -sI http://127.0.0.1:$PORT$URLP | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'); H=(-H "if-none-match: $et"); fi
curl -s -o /dev/null -D - "${H[@]}" http://127.0.0.1:$PORT$URLP | head -20 > $D/head.txt
if [ -n "${WARM:-}" ]; then h2load --h1 -n $WARM -c10 -H 'accept-encoding: identity' "${H[@]}" http://127.0.0.1:$PORT$URLP >/dev/null 2>&1
else wrk -t1 -c10 -d${WARMS:-3}s "${H[@]}" http://127.0.0.1:$PORT$URLP >/dev/null 2>&1; fi  # warm-up
[ "$prof" = cg ] && callgrind_control -i on $SPID >/dev/null
t0=$(awk '{print $14+$15}' /proc/$SPID/stat)
if [ -n "${DUR:-}" ]; then taskset -c 1 wrk -t1 -c10 -d${DUR}s "${H[@]}" http://127.0.0.1:$PORT$URLP > $D/wrk.txt 2>&1; N=$(awk '/requests in/{print $1}' $D/wrk.txt); non2xx=$(grep -o 'Non-2xx.*' $D/wrk.txt)
else taskset -c 1 h2load --h1 -n $N -c10 -H 'accept-encoding: identity' "${H[@]}" http://127.0.0.1:$PORT$URLP > $D/h2load.txt 2>&1; fi
t1=$(awk '{print $14+$15}' /proc/$SPID/stat)
[ "$prof" = cg ] && callgrind_control -i off $SPID >/dev/null
kill -TERM $SPID; wait $SPID 2>/dev/null; [ -n "$OPID" ] && { kill $OPID; wait $OPID 2>/dev/null; }
st=$(grep -o 'requests: .*' $D/h2load.txt 2>/dev/null | head -1; grep 'requests in' $D/wrk.txt 2>/dev/null); codes=$(grep 'status codes' $D/h2load.txt 2>/dev/null; echo ${non2xx:-})
TCK=$(getconf CLK_TCK)
[ "$prof" = cg ] && { sleep 1; IR=$(grep -o 'Collected : [0-9]*' $D/err.log | awk '{print $3}'); OKN=$(grep -o 'status codes: [0-9]* 2xx, [0-9]* 3xx' $D/h2load.txt | awk '{print $3+$5}'); echo "Ir=$IR ok=$OKN Ir/req=$((IR / OKN))"; }
echo "$name $mode N=$N cpu_ticks=$((t1-t0)) us/req=$(echo "($t1-$t0)*1000000/$TCK/$N" | bc -l | cut -c1-6) | $st | $codes"
