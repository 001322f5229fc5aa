# Helpers for bench/run.sh (sourced). Everything here targets 127.0.0.1 only.
# Server processes run pinned to core $SRV_CPU in their own process group (setsid), the load generator on $GEN_CPU.

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# wait until something accepts TCP connections on 127.0.0.1:$1 (max ~15 s)
wait_port() {
  local port=$1 i
  for i in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# true if something already listens on 127.0.0.1:$1
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_srv NAME OUTFILE CMD... : start CMD pinned to $SRV_CPU as the leader of a new process group.
# In a non-interactive bash the background child is not a group leader, so setsid does not fork:
# $! is the server's PID and also its process-group id. Sets SRV_PID.
start_srv() {
  local name=$1 out=$2; shift 2
  setsid taskset -c "$SRV_CPU" "$@" >>"$out" 2>>"$RUN/$name.err" </dev/null &
  SRV_PID=$!
}

# stop_srv PID : TERM the whole process group, then KILL after 5 s
stop_srv() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  return 0
}

# grp_cpu PGID : CPU seconds (user+sys, field 14+15 of /proc/PID/stat) of every live process in that group
grp_cpu() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" -v hz="$(getconf CLK_TCK)" '
    { s = $0; sub(/^.*\) /, "", s); split(s, a, " ")   # a[1] = state (field 3), a[3] = pgrp (field 5)
      if (a[3] == g) t += a[12] + a[13] }               # utime (14), stime (15)
    END { printf "%.2f", t / hz }'
}

now_s() { date +%s.%N; }

# median of the numbers on stdin (mean of the two middle values for an even count)
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print 0; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# "min-max" of the numbers on stdin
minmax() { sort -g | awk 'NR == 1 { mn = $1 } { mx = $1 } END { printf "%s-%s", mn, mx }'; }
# calc EXPR : float arithmetic, printed with format $2 (default %.2f); "n/a" on division by zero
calc() { awk "BEGIN { x = ($1); printf \"${2:-%.2f}\", x }" 2>/dev/null || echo n/a; }
# ratio A B : A/B to 2 decimals, or n/a
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "") print "n/a"; else printf "%.2f", a / b }'; }
# verdict VALUE TARGET : MET / NOT MET / n/a
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else if (v + 0 >= t + 0) print "MET"; else print "NOT MET" }'; }

# render SRC DST key=value... : replace @key@ with value
render() {
  local src=$1 dst=$2 kv s; shift 2
  s=$(cat "$src")
  for kv in "$@"; do s=${s//@${kv%%=*}@/${kv#*=}}; done
  printf '%s\n' "$s" > "$dst"
}


# cpu_steal N : steal ticks of cpu N so far (/proc/stat, 8th value); time the hypervisor gave this core to others
cpu_steal() { awk -v c="cpu$1" '$1 == c { print $9 }' /proc/stat; }

# Servers started by a benchmark, by name: bench_guard stops them all when the script ends.
declare -A PID=()
WATCHDOG=
bench_cleanup() {
  trap '' INT TERM PIPE
  local n
  for n in "${!PID[@]}"; do stop_srv "${PID[$n]}"; done
  [ -n "$WATCHDOG" ] && kill -TERM -- "-$WATCHDOG" 2>/dev/null
  return 0
}
# Stops every server in PID on normal exit, error, Ctrl-C or TERM, and bounds the whole run:
# a watchdog in its own process group sends TERM after MAX_SECONDS.
bench_guard() {
  trap bench_cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT TERM
  setsid bash -c "sleep $MAX_SECONDS; echo 'bench: time limit ($MAX_SECONDS s) reached' >&2; kill -TERM $$" </dev/null &
  WATCHDOG=$!
}

# Debian packages by name, as root or through sudo -n; bounded in time.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 as_root apt-get install -y "$@" >&2 || { timeout 300 as_root apt-get update >&2 && timeout 600 as_root apt-get install -y "$@" >&2; }
}

# What every bench script starts with: its folders (P, RUN, WWW, RES), the guard, and the pinned Node.
bench_setup() {
  P="$BENCH/.peers"; RUN="$P/run"; WWW="$P/www"; RES="$BENCH/results"
  mkdir -p "$RUN" "$WWW" "$RES"
  bench_guard
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 24 ] || { log "node on PATH is $(node -v); run npm install first (Node 24 is a devDependency)"; exit 1; }
}

# ---------------------------------------------------------------------------------------------------------------
# Shared by the benchmarks written after run.sh and proxy.sh (those keep their own copies of the first three).

# rotate K ITEM... : the items, one a line, starting at index K (mod count); each round starts with another server
rotate() { local k=$1; shift; local a=("$@") i; for ((i = 0; i < ${#a[@]}; i++)); do echo "${a[(i + k) % ${#a[@]}]}"; done; }
# med "N N N" / rng "N N N" : median / "min-max" of a space-separated list
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
rng() { echo "$1" | tr ' ' '\n' | grep . | minmax; }

# median_ratio "A1 A2 ..." "B1 B2 ..." : the median over rounds of Ai/Bi, to 2 decimals. The lists are aligned by
# round, with '-' for a round whose run failed (that round is skipped); n/a if no round has both figures.
median_ratio() {
  local r
  r=$(awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, A, " "); split(b, B, " ")
        for (i = 1; i <= n; i++) if (A[i] != "-" && B[i] != "-" && B[i] + 0 > 0) printf "%.6f\n", A[i] / B[i] }')
  [ -n "$r" ] && printf '%.2f' "$(echo "$r" | median)" || echo n/a
}

# make_index_html : the 1 KiB fixture $WWW/index.html (exactly 1024 bytes), mtime fixed so ETags stay the same
make_index_html() {
  if [ ! -f "$WWW/index.html" ] || [ "$(stat -c %s "$WWW/index.html")" != 1024 ]; then
    node -e '
      const head = "<!doctype html><html><head><meta charset=utf-8><title>bench</title></head><body><p>";
      const tail = "</p></body></html>\n";
      require("fs").writeFileSync(process.argv[1], head + "x".repeat(1024 - head.length - tail.length) + tail);' "$WWW/index.html"
  fi
  touch -d '2024-01-01 00:00:00 UTC' "$WWW/index.html"
}

# make_tls_cert DIR : a fresh self-signed ECDSA P-256 certificate for localhost and 127.0.0.1 (DIR/leaf.crt, DIR/leaf.key)
make_tls_cert() {
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$1/leaf.key" -out "$1/leaf.crt" 2>/dev/null
}

# timed_gen OUTFILE CMD... : run a load generator pinned to $GEN_CPU, its output in OUTFILE; sets GEN_CPU_S to the
# generator's user+sys CPU seconds (the caller divides by the wall time: near 1.00 the generator was the limit)
timed_gen() {
  local out=$1; shift
  local TIMEFORMAT='%U %S' tf="$RUN/gen.time"
  { time taskset -c "$GEN_CPU" "$@" > "$out" 2>&1 ; } 2> "$tf"
  GEN_CPU_S=$(awk '{ printf "%.2f", $1 + $2 }' "$tf")
}
