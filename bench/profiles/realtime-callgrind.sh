#!/usr/bin/env bash
# Instructions per WebSocket delivery of a fan-out server (bench/profiles/realtime-fanout.md): the server runs under
# callgrind with instrumentation off (--instr-atstart=no); bench/realtime-load.mjs opens N subscribers, publishes WARM
# broadcasts (not counted: start-up, connecting and the JIT's tier-up stay out), then turns instrumentation on
# (callgrind_control -i on), publishes BROADCASTS more at RATE a second, waits until every subscriber has every one of
# them, and turns it off again. Ir per delivery = Ir counted / (BROADCASTS x N); it includes the per-broadcast publish
# request (spread over the N subscribers). Loopback only; server on core 0, generator on core 1.
#
# usage: bash bench/profiles/realtime-callgrind.sh SERVER [N (1000)] [BROADCASTS (50)]
#   SERVER: edgebox    Edgebox from $ROOT (default: this checkout): the realtime benchmark's route (channels fan:*,
#                      publish backend, history size 100), access log ON to a file
#           ws-send    bench/servers/ws-fanout.mjs send (the bare ws loop)
#           ws-once    bench/servers/ws-fanout.mjs once (frame encoded once, written to every socket)
#           ws-once-mixed  the same in a process that also writes to four other kinds of Writable (ws-fanout.mjs)
#           socketio   bench/servers/socketio-fanout.mjs (needs bench/.peers from bench/realtime.sh)
#   env: ROOT, PORT (18995), RATE (4 broadcasts a second), WARM (50 broadcasts), DIR (/tmp/eb-rt-callgrind)
# Prints one line: server, N, broadcasts, Ir of all threads and of the main thread, and Ir per delivery of each.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
SERVER=$1 N=${2:-1000} B=${3:-50}
ROOT=${ROOT:-$REPO} PORT=${PORT:-18995} RATE=${RATE:-4} WARM=${WARM:-50} DIR=${DIR:-/tmp/eb-rt-callgrind}
NODE="$REPO/node_modules/.bin/node"
KEY=callgrind-publish-key-0123456789
OUT="$DIR/$SERVER-$(date +%H%M%S)-$$"; mkdir -p "$OUT"
printf '{"listen":[{"host":"127.0.0.1","port":%s}],"sites":[{"routes":[{"path":"/rt/","realtime":{"channels":{"fan:*":{"publish":"backend","history":{"size":100}}},"publishKey":"%s"}}]}]}\n' \
  "$PORT" "$KEY" > "$OUT/edgebox.json"
PRE=(valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --smc-check=all-non-file --dump-instr=no "--callgrind-out-file=$OUT/cg.out")
case $SERVER in
  edgebox)  TARGET=edgebox; (cd "$ROOT" && exec setsid taskset -c 0 "${PRE[@]}" "$NODE" bin/edgebox.js --config "$OUT/edgebox.json" > "$OUT/access.log" 2> "$OUT/err") & ;;
  ws-send)  TARGET=ws; setsid taskset -c 0 "${PRE[@]}" "$NODE" "$REPO/bench/servers/ws-fanout.mjs" send "$PORT" 2> "$OUT/err" & ;;
  ws-once)  TARGET=ws; setsid taskset -c 0 "${PRE[@]}" "$NODE" "$REPO/bench/servers/ws-fanout.mjs" once "$PORT" 2> "$OUT/err" & ;;
  ws-once-mixed) TARGET=ws; setsid taskset -c 0 "${PRE[@]}" "$NODE" "$REPO/bench/servers/ws-fanout.mjs" once-mixed "$PORT" 2> "$OUT/err" & ;;
  socketio) TARGET=sio; setsid taskset -c 0 "${PRE[@]}" "$NODE" "$REPO/bench/servers/socketio-fanout.mjs" "$PORT" 2> "$OUT/err" & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
PID=$!
trap 'kill -TERM $PID 2>/dev/null' EXIT
for i in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/health")" != 000 ] && break
  kill -0 $PID 2>/dev/null || { echo "$SERVER did not start:" >&2; cat "$OUT/err" >&2; exit 1; }
  sleep 0.5
done
ulimit -n $((N + 1000)) 2>/dev/null
# the generator's time and rates: every broadcast must reach every subscriber, however slow the server is under valgrind
taskset -c 1 "$NODE" "$REPO/bench/realtime-load.mjs" fanout --target $TARGET --port "$PORT" --pgid "$PID" --n "$N" \
  --rate "$RATE" --warm "$(awk -v w="$WARM" -v r="$RATE" 'BEGIN { print w / r }')" --dur "$(awk -v b="$B" -v r="$RATE" 'BEGIN { print b / r }')" \
  --ch "fan:cg$$" --prefix /rt/ --key "$KEY" --drain-timeout 600 --max 3000 \
  --on-measure "callgrind_control -i on $PID" --off-measure "callgrind_control -i off $PID" > "$OUT/load.json" 2> "$OUT/load.err"
RES=$(grep '^{' "$OUT/load.json" | tail -1)
kill -TERM $PID; wait $PID 2>/dev/null; trap - EXIT
for i in $(seq 60); do ls "$OUT"/cg.out* > /dev/null 2>&1 && break; sleep 0.5; done
"$NODE" -e '
  const fs = require("fs"); const [dir, server, n, b, res] = process.argv.slice(1)
  const r = JSON.parse(res || "{}")
  const files = fs.readdirSync(dir).filter((f) => f.startsWith("cg.out")).sort()
  let all = 0, main = 0
  for (const f of files) {
    const m = /^totals: (\d+)/m.exec(fs.readFileSync(`${dir}/${f}`, "latin1"))
    const ir = m ? Number(m[1]) : 0
    all += ir
    if (/-01$/.test(f) || files.length === 1) main = ir
  }
  const d = Number(n) * Number(b)
  const ok = r.delivered === d && r.lost === 0 && r.dups === 0 && r.out_of_order === 0 && r.drained === true
  console.log(`${server} N=${n} broadcasts=${b} Ir_all=${all} Ir_main=${main} Ir_per_delivery_all=${Math.round(all / d)} Ir_per_delivery_main=${Math.round(main / d)}` +
    ` delivered=${r.delivered}/${d}${ok ? "" : " NOT-EXACT " + JSON.stringify(r).slice(0, 300)} out=${dir}`)
' "$OUT" "$SERVER" "$N" "$B" "$RES"
