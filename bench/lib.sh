# Helpers shared by bench/run.sh, proxy.sh, realtime.sh and tls.sh (sourced). Everything here targets 127.0.0.1 only.
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
AT_EXIT=()   # commands run after every server has stopped (on_exit)
on_exit() { AT_EXIT+=("$1"); }
bench_cleanup() {
  trap '' INT TERM PIPE
  local n c
  for n in "${!PID[@]}"; do stop_srv "${PID[$n]}"; done
  for c in "${AT_EXIT[@]}"; do eval "$c"; done
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
  # (timeout runs programs, not shell functions: as_root comes first)
  as_root timeout 600 apt-get install -y "$@" >&2 || { as_root timeout 300 apt-get update >&2 && as_root timeout 600 apt-get install -y "$@" >&2; }
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
# Rounds and medians

# rotate K ITEM... : the items, one a line, starting at index K (mod count); each round starts with another server
rotate() { local k=$1; shift; local a=("$@") i; for ((i = 0; i < ${#a[@]}; i++)); do echo "${a[(i + k) % ${#a[@]}]}"; done; }
# rotate_before K ITEM... : rotate, with every X-before of the items run right beside its X (after it when K is even,
# before it when K is odd), so that now and before run back to back in every round and a swing of the machine's speed
# over a minute or two moves both alike (the now / before ratios are taken within a round)
rotate_before() {
  local k=$1 n; shift
  local items=" $* "
  for n in $(rotate "$k" "$@"); do
    if [[ "$n" == *-before && "$items" == *" ${n%-before} "* ]]; then continue; fi
    if [[ "$items" == *" $n-before "* ]]; then
      if ((k % 2 == 0)); then echo "$n"; echo "$n-before"; else echo "$n-before"; echo "$n"; fi
    else echo "$n"; fi
  done
}
# PASSES (default 1): each round runs every server's loads PASSES times, DUR seconds each, the servers' order rotated
# from pass to pass (pass_k); the round's figure of a server is the median of its passes (by_round). Two servers of a
# ratio then run seconds apart, several times a round, rather than once each up to minutes apart: on a machine whose
# speed drifts over minutes, the per-round ratios spread less. E.g. PASSES=4 DUR=2 measures 8 s per server per round
# as the default does.
PASSES=${PASSES:-1}
# pass_k ROUND PASS : the rotation index of that pass (ROUND - 1 with one pass: the order the rounds always had)
pass_k() { echo $(( ($1 - 1) * PASSES + $2 - 1 )); }
# med "N N N" / rng "N N N" : median / "min-max" of a space-separated list
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
rng() { echo "$1" | tr ' ' '\n' | grep . | minmax; }
med_or_na() { if [ -n "${1// /}" ]; then med "$1"; else echo n/a; fi; }

# ratios_by_round "A1 A2 ..." "B1 B2 ..." : Ai/Bi for each round, to 3 decimals, '-' for a round where either figure is
# missing ('-': that run was dropped)
ratios_by_round() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, A, " "); split(b, B, " ")
    for (i = 1; i <= n; i++) printf "%s ", (A[i] != "-" && B[i] != "-" && B[i] + 0 > 0) ? sprintf("%.3f", A[i] / B[i]) : "-" }'
}
# show_ratios "R1 - R3 ..." : the list for people, 2 decimals
show_ratios() { awk -v l="$1" 'BEGIN { n = split(l, L, " "); for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (L[i] == "-" ? "-" : sprintf("%.2f", L[i])) }'; }
# median_of "R1 - R3 ..." : the median of the numbers in the list ('-' skipped), to 2 decimals; n/a if there is none
median_of() {
  local v; v=$(echo "$1" | tr ' ' '\n' | grep -E '^[0-9.]+$')
  [ -n "$v" ] && printf '%.2f' "$(echo "$v" | median)" || echo n/a
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


# jfield JSON KEY : the value of KEY in a flat JSON object (number, true/false or string, quotes removed)
jfield() { sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" <<< "$1" | head -1 | tr -d '"'; }
# jnum JSON KEY : the same for a count, 0 if absent
jnum() { local v; v=$(jfield "$1" "$2"); echo "${v:-0}"; }

# ---------------------------------------------------------------------------------------------------------------
# before: BEFORE=<git rev> builds that commit in a git worktree in a temporary folder (npm ci there, so it runs on the
# Node that commit pins) and a script runs it as `edgebox-before` beside the current tree, in the same configuration;
# the worktree is removed at exit. Needs ROOT, PID and on_exit (bench_setup first). Sets BEFORE_TREE, BEFORE_NODE,
# BEFORE_DESC (empty when BEFORE is not set) and BEFORE_MIN (0.97: the lowest median now/before that is "no regression").
# BEFORE_BUILT=DIR (set by bench/all.sh): a worktree of that commit already built; used as it is and left in place.
before_setup() {
  BEFORE=${BEFORE:-}; BEFORE_MIN=${BEFORE_MIN:-0.97}; BEFORE_TREE=""; BEFORE_DESC=""; BEFORE_NODE=""
  [ -n "$BEFORE" ] || return 0
  BEFORE_SHA=$(git -C "$ROOT" rev-parse --verify --quiet "$BEFORE^{commit}") || { log "BEFORE=$BEFORE is not a commit of this repository"; exit 1; }
  BEFORE_DESC="$(git -C "$ROOT" log -1 --format='%h %<(60,trunc)%s' "$BEFORE_SHA" | sed 's/ *$//')"
  if [ -n "${BEFORE_BUILT:-}" ]; then
    BEFORE_TREE=$BEFORE_BUILT; BEFORE_NODE="$BEFORE_TREE/node_modules/.bin/node"
    [ "$(git -C "$BEFORE_TREE" rev-parse HEAD 2>/dev/null)" = "$BEFORE_SHA" ] && [ -x "$BEFORE_NODE" ] ||
      { log "BEFORE_BUILT=$BEFORE_BUILT is not a built worktree of $BEFORE"; exit 1; }
    log "before: $BEFORE ($BEFORE_SHA), built in $BEFORE_TREE"
    return 0
  fi
  BEFORE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-before.XXXXXX")
  BEFORE_TREE="$BEFORE_TMP/tree"
  on_exit 'git -C "$ROOT" worktree remove --force "$BEFORE_TREE" >/dev/null 2>&1 || git -C "$ROOT" worktree prune; rm -rf "$BEFORE_TMP"'
  log "before: git worktree of $BEFORE ($BEFORE_SHA) in $BEFORE_TREE"
  git -C "$ROOT" worktree add --detach "$BEFORE_TREE" "$BEFORE_SHA" >&2 || { log "git worktree add failed"; exit 1; }
  log "before: npm ci in $BEFORE_TREE"
  # in the background and in its own process group, so Ctrl-C or TERM stops it at once (the cleanup stops what PID
  # lists before the worktree is removed) instead of after it ends
  ( cd "$BEFORE_TREE" && PATH="$BEFORE_TREE/node_modules/.bin:$PATH" exec setsid timeout 900 npm ci --no-audit --no-fund ) >&2 </dev/null &
  PID[before-npm-ci]=$!
  wait "${PID[before-npm-ci]}" || { log "npm ci failed in the worktree of $BEFORE"; exit 1; }
  unset 'PID[before-npm-ci]'
  BEFORE_NODE="$BEFORE_TREE/node_modules/.bin/node"
  [ -x "$BEFORE_NODE" ] || { log "$BEFORE pins no Node (no node_modules/.bin/node after npm ci): it cannot run beside this tree"; exit 1; }
}
# before_header : the heading of a script's now / before section
before_header() {
  echo
  echo "## now / before: this tree vs BEFORE=$BEFORE ($BEFORE_DESC), the same configuration, side by side in every round"
  echo "# each run right beside its counterpart; judged on the middle rounds (of 5 or more, the lowest and highest per-round"
  echo "# ratio set aside): 'no regression' when all are >= $BEFORE_MIN (BEFORE_MIN), 'REGRESSION' when all are below, else 'undecided'"
}
# before_line LABEL ARRAY TEST NOW BEFORE judge|- : NOW's figure over BEFORE's (median of per-round ratios), judged
# against BEFORE_MIN (before_judge) or only reported
before_line() {
  local rs v; rs=$(round_ratios "$2" "$3" "$4" "$5")
  if [ "$6" = judge ]; then v=$(before_judge "$rs"); else v="reported, not judged"; fi
  printf '%-58s %6s  %-44s per round: %s\n' "$1" "$(median_of "$rs")" "$v" "$(show_ratios "$rs")"
}
# before_judge "R1 R2 ..." : the no-regression verdict on per-round ratios now / before. The machine's speed can swing
# by 2x between minutes (other jobs on the host, which neither steal time nor the server's share of its core shows),
# and a round in which one of the two runs hit such a swing gives an outlier ratio. So the verdict is taken on the
# middle rounds: with 5 or more rounds counted the lowest and the highest ratio are set aside, and the rest must lie
# on one side of BEFORE_MIN: all at or above it, 'no regression'; all below it, 'REGRESSION'; on both sides,
# 'undecided' (the rounds swing more than the 3% the check is about: run again, with more rounds or a quieter
# machine). With 3 or 4 rounds every ratio counts. No verdict as judge gives none (smoke run, failed checks, < 3 rounds).
before_judge() {
  local v; v=$(judge "$1" '>=' "$BEFORE_MIN" 'no regression' 'REGRESSION')
  case $v in "no verdict"*) echo "$v"; return ;; esac
  echo "$1" | tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk -v m="$BEFORE_MIN" '{ a[NR] = $1 }
    END { lo = 1; hi = NR; if (NR >= 5) { lo = 2; hi = NR - 1 }
          r = sprintf("%.2f-%.2f", a[lo], a[hi])
          if (a[lo] >= m) print "no regression (middle rounds " r ")"
          else if (a[hi] < m) print "REGRESSION (middle rounds " r " < " m ")"
          else print "undecided: middle rounds " r " around " m }'
}

# ---------------------------------------------------------------------------------------------------------------
# Load runs: every benchmark measures through load_run, so every figure is read, and every run judged, the same way.

# warm_up SECONDS CMD... : run the load generator once, not measured, pinned to $GEN_CPU; @DUR@ in CMD = SECONDS
warm_up() {
  local s=$1; shift
  [ "${s:-0}" -gt 0 ] || return 0
  timeout $((s + 20)) taskset -c "$GEN_CPU" "${@//@DUR@/$s}" >/dev/null 2>&1
  return 0
}

# warm_for ROUND SERVER : sets WARM_S, the warm-up of that server's next run. Every server runs for the whole
# benchmark, so its code is compiled and its caches filled by the end of round 1: in round 1 every run is warmed up
# for WARM s; in a later round only the server's first run of the round, for WARM_NEXT s (1; at most WARM), enough for
# the connections to open and the heap to grow back after the server sat idle while the others ran; its further runs
# in that round (another test, right after its own warm run) get none. Not in a $(...) subshell: it records which
# servers are warm (WARMED).
WARM_NEXT=${WARM_NEXT:-1}
declare -A WARMED=()
warm_for() {
  if [ "$1" -le 1 ]; then WARM_S=${WARM:-0}; return; fi
  if [ -n "${WARMED[$1,$2]:-}" ]; then WARM_S=0; return; fi
  WARMED[$1,$2]=1
  WARM_S=$WARM_NEXT; [ "${WARM:-0}" -lt "$WARM_NEXT" ] && WARM_S=${WARM:-0}
  return 0
}
# warm_s ROUND : the warm-up of a server's first run in that round (for the headings)
warm_s() { if [ "$1" -le 1 ] || [ "${WARM:-0}" -lt "$WARM_NEXT" ]; then echo "${WARM:-0}"; else echo "$WARM_NEXT"; fi; }

# MIN_SRV_CPU: in a test meant to keep the server's core busy (wrk and h2load, closed loops with many requests in
# flight), a run in which the server used less than this many CPU-seconds per second of the run was limited by
# something other than the server: the load generator (or the origin beside it on its core), or another job on the
# server's core. A server that is the limit measures 0.97-1.00 here; below 0.8 it waited for work a fifth of the time
# or more, so the run says more about the generator than the server: it is dropped, like a run with errors.
MIN_SRV_CPU=${MIN_SRV_CPU:-0.8}

# load_run -k KIND -p PGID -o OUTFILE [-d SECONDS] [-t TIMEOUT] [-x PGID] [-m MIN_SRV_CPU] -- CMD...
# One measured run of a load generator (CMD, pinned to $GEN_CPU, @DUR@ in it replaced by SECONDS, default $DUR, killed
# after TIMEOUT, default SECONDS + 20) against the server whose process group is PGID. Around the run it reads the
# server's CPU time (user+sys of every process in the group, grp_cpu), the wall clock, the steal time of core $SRV_CPU
# and the generator's own CPU time; -x names one more process group whose share is read but never counted as the
# server's (the proxy benchmark's origin). KIND says how the generator's output (saved in OUTFILE) is read:
#   wrk       "Requests/sec", "N requests in", "Non-2xx or 3xx responses", "Socket errors: connect, read, write, timeout"
#   h2load    "finished in ..., R req/s", "requests: ... succeeded, failed, errored, timeout", "status codes: 4xx, 5xx"
#   s_time    openssl s_time: "N connections in S real seconds"; the rate is N / the wall time measured here (s_time's
#             own seconds are whole seconds); lines saying error / unable / refused count as socket errors
#   curl      one download, CMD ending in -w '%{speed_download} %{http_code} %{size_download}'; rate in MB/s (1e6 B/s)
#   realtime  bench/realtime-load.mjs fanout: the last JSON line; it reads the server's CPU itself over exactly its
#             measured series (the edges only it knows), so its srv_cpu_s and seconds replace the readings around it
# Sets (one parsed form for every generator; LR_LINE has them as key=value):
#   LR_RATE         throughput per second: req/s (wrk, h2load), connections/s (s_time), MB/s (curl), deliveries/s
#   LR_PER_CPU      the same per server CPU-second: LR_RATE / LR_SRV_CPU
#   LR_COUNT        requests (connections, bytes, deliveries) in the measured run
#   LR_ERRORS       answers that are errors: wrk non-2xx/3xx, h2load 4xx+5xx, curl a status outside 2xx/3xx; realtime
#                   deliveries lost, duplicated, out of order or as gaps, publishes refused, HTTP errors of pollers
#   LR_SOCK_ERRORS  failures below HTTP: wrk socket errors, h2load errored + timed-out (and other failed) requests,
#                   curl no answer, s_time error lines, realtime unexpected closes and client errors
#   LR_SRV_CPU      the server's CPU-seconds per second of the run (its share of core $SRV_CPU); LR_SRV_CPU_S, LR_WALL
#   LR_GEN_CPU      the generator's CPU-seconds per second (near 1.00: the generator was the limit); LR_STEAL; LR_X_CPU
#   LR_DROP         empty if the run counts; otherwise why it is left out of the medians: no result, errors, socket
#                   errors, or the generator was the limit: for wrk and h2load the server's CPU below MIN_SRV_CPU
#                   (-m sets another floor), for realtime the publisher short of the offered rate by more than 5%.
#                   s_time (one connection at a time) and curl (one download) never keep the server's core busy, by
#                   design: no floor. A script adds its own reasons (wrong protocol, cache misses, ...) before keep_run
# Returns 0 if the run counts, 1 if not.
load_run() {
  local kind="" pgid="" out="" dur=${DUR:-0} tmo="" xpg="" min="" o OPTIND=1
  while getopts 'k:p:o:d:t:x:m:' o; do
    case $o in k) kind=$OPTARG ;; p) pgid=$OPTARG ;; o) out=$OPTARG ;; d) dur=$OPTARG ;; t) tmo=$OPTARG ;; x) xpg=$OPTARG ;;
               m) min=$OPTARG ;;
               *) log "load_run: unknown option"; return 1 ;; esac
  done
  shift $((OPTIND - 1)); [ "${1:-}" = -- ] && shift
  tmo=${tmo:-$((dur + 20))}
  local c0 c1 x0=0 x1=0 t0 t1 s0 s1 tf="$out.time" TIMEFORMAT='%U %S'
  c0=$(grp_cpu "$pgid"); [ -n "$xpg" ] && x0=$(grp_cpu "$xpg"); s0=$(cpu_steal "$SRV_CPU"); t0=$(now_s)
  { time timeout "$tmo" taskset -c "$GEN_CPU" "${@//@DUR@/$dur}" > "$out" 2>&1 ; } 2> "$tf"
  t1=$(now_s); c1=$(grp_cpu "$pgid"); [ -n "$xpg" ] && x1=$(grp_cpu "$xpg"); s1=$(cpu_steal "$SRV_CPU")
  LR_WALL=$(calc "$t1 - $t0" %.3f)
  LR_SRV_CPU_S=$(calc "$c1 - $c0")
  LR_X_CPU=$(calc "($x1 - $x0) / $LR_WALL")
  LR_GEN_CPU=$(awk -v w="$LR_WALL" 'NF == 2 { printf "%.2f", ($1 + $2) / w }' "$tf")
  LR_STEAL=$(calc "($s1 - $s0) / $(getconf CLK_TCK) / $LR_WALL")
  LR_RATE=""; LR_COUNT=0; LR_ERRORS=0; LR_SOCK_ERRORS=0; LR_DROP=""
  local a b c d short=""
  case $kind in wrk|h2load) min=${min:-$MIN_SRV_CPU} ;; *) min=${min:-0} ;; esac
  case $kind in
    wrk)
      LR_RATE=$(awk '/^Requests\/sec/ { print $2 }' "$out")
      LR_COUNT=$(awk '/ requests in / { print $1 }' "$out")
      LR_ERRORS=$(awk '/Non-2xx or 3xx/ { print $NF }' "$out")
      LR_SOCK_ERRORS=$(awk '/Socket errors/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out") ;;
    h2load)
      LR_RATE=$(awk '/^finished in/ { print $4 }' "$out")
      read -r LR_COUNT a b c < <(awk '/^requests:/ { for (i = 2; i < NF; i++) { v = $i; w = $(i + 1); gsub(/,/, "", w)
          if (w == "succeeded") s = v; if (w == "failed") f = v; if (w == "errored") e = v; if (w == "timeout") t = v }
          print s + 0, f + 0, e + 0, t + 0 }' "$out")
      LR_ERRORS=$(awk '/^status codes:/ { print $7 + $9 }' "$out")
      # h2load's "failed" also counts 4xx/5xx answers; what is left of it failed below HTTP
      LR_SOCK_ERRORS=$(awk -v f="${a:-0}" -v e="${b:-0}" -v t="${c:-0}" -v h="${LR_ERRORS:-0}" \
        'BEGIN { o = f - h - e; print e + t + (o > 0 ? o : 0) }') ;;
    s_time)
      LR_COUNT=$(awk '/connections in .* real seconds/ { n = $1 } END { print n + 0 }' "$out")
      [ "$LR_COUNT" -gt 0 ] && LR_RATE=$(calc "$LR_COUNT / $LR_WALL")
      LR_SOCK_ERRORS=$(grep -aivE '^[*rt23]+$' "$out" | grep -aicE 'error|unable|refused') ;;
    curl)
      read -r a b c < "$out"
      LR_COUNT=${c:-0}
      [ -n "$a" ] && [ "${b:-000}" != 000 ] && LR_RATE=$(calc "$a / 1000000")
      case ${b:-000} in 000) LR_SOCK_ERRORS=1 ;; [23]??) ;; *) LR_ERRORS=1 ;; esac ;;
    realtime)
      d=$(grep '^{' "$out" | tail -1)
      if [ -n "$d" ] && [ -z "$(jfield "$d" error)" ]; then
        LR_COUNT=$(jfield "$d" delivered); LR_WALL=$(jfield "$d" seconds); LR_SRV_CPU_S=$(jfield "$d" srv_cpu_s)
        LR_GEN_CPU=$(jfield "$d" client_cpu); LR_STEAL=$(jfield "$d" steal)
        LR_RATE=$(calc "$LR_COUNT / $LR_WALL" %.0f)
        LR_ERRORS=$(( $(jnum "$d" lost) + $(jnum "$d" dups) + $(jnum "$d" out_of_order) + $(jnum "$d" gap_envelopes) \
                      + $(jnum "$d" publish_bad) + $(jnum "$d" http_errors) ))
        LR_SOCK_ERRORS=$(( $(jnum "$d" unexpected_close) + $(jnum "$d" client_errors) ))
        # at a fixed offered load the server is not meant to be busy all the time; the generator was the limit when
        # it could not send the broadcasts on schedule
        awk -v a="$(jnum "$d" achieved_rate)" -v r="$(jnum "$d" rate)" 'BEGIN { exit !(a < 0.95 * r) }' &&
          short="the publisher sent $(jfield "$d" achieved_rate)/s of the $(jfield "$d" rate)/s offered: the load generator, not the server, was the limit"
      fi ;;
    *) log "load_run: unknown kind '$kind'"; return 1 ;;
  esac
  LR_COUNT=${LR_COUNT:-0}; LR_ERRORS=${LR_ERRORS:-0}; LR_SOCK_ERRORS=${LR_SOCK_ERRORS:-0}
  LR_SRV_CPU=$(calc "$LR_SRV_CPU_S / $LR_WALL")
  LR_PER_CPU=$(awk -v a="${LR_RATE:-0}" -v s="$LR_SRV_CPU" 'BEGIN { printf "%.0f", (s > 0 ? a / s : 0) }')
  local why=()
  if [ -z "$LR_RATE" ]; then why+=("no result ($kind printed no figures, see $(basename "$out"))")
  elif [ "$LR_COUNT" = 0 ]; then why+=("nothing succeeded (see $(basename "$out"))"); fi
  [ "$LR_ERRORS" != 0 ] && why+=("$LR_ERRORS error answer(s)")
  [ "$LR_SOCK_ERRORS" != 0 ] && why+=("$LR_SOCK_ERRORS socket error(s)")
  [ -n "$short" ] && why+=("$short")
  if [ -n "$LR_RATE" ] && awk -v s="$LR_SRV_CPU" -v m="$min" 'BEGIN { exit !(s < m) }'; then
    if awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }'; then
      why+=("server CPU $LR_SRV_CPU < $min core-seconds per second while the load generator used $LR_GEN_CPU of core $GEN_CPU: the generator, not the server, was the limit; round not judged")
    else
      why+=("server CPU $LR_SRV_CPU < $min core-seconds per second (load generator $LR_GEN_CPU of core $GEN_CPU): the server was not the limit; something else was (another job on the cores?); round not judged")
    fi
  fi
  local w; for w in "${why[@]}"; do LR_DROP+="${LR_DROP:+; }$w"; done
  LR_LINE="rate=${LR_RATE:-0} per_srv_cpu_s=$LR_PER_CPU count=$LR_COUNT errors=$LR_ERRORS socket_errors=$LR_SOCK_ERRORS srv_cpu=$LR_SRV_CPU steal_cpu$SRV_CPU=$LR_STEAL gen_cpu=${LR_GEN_CPU:-?}"
  [ -z "$LR_DROP" ]
}

# keep_run TEST SERVER ROUND [FIGURE] : after load_run and the script's own checks (which may set LR_DROP): a run that
# counts goes into the per-round tables RATE_R, FIG_R (FIGURE, by default LR_PER_CPU) and SHARE_R; a dropped run is
# printed with its reason, counted in NDROP and listed in DROPPED, and left out of every median. Returns 1 if dropped.
declare -A RATE_R=() FIG_R=() SHARE_R=() NDROP=()
DROPPED=()
keep_run() {
  local t=$1 n=$2 r=$3 fig=${4:-$LR_PER_CPU}
  if [ -n "$LR_DROP" ]; then
    echo "    dropped from the medians: $t round$r $n: $LR_DROP"
    DROPPED+=("$t round$r $n: $LR_DROP"); NDROP[$t,$n]=$(( ${NDROP[$t,$n]:-0} + 1 ))
    return 1
  fi
  RATE_R[$t,$n,$r]+="$LR_RATE "; FIG_R[$t,$n,$r]+="$fig "; SHARE_R[$t,$n,$r]+="$LR_SRV_CPU "
}
# The GET (/index.html, static) and HIT (/c/obj, from the proxy's cache) loads of the benchmarks that compare one site
# served two ways (admin.sh, workers.sh): get_hit_rounds SERVER... runs wrk -t1 -c$CONNS against each server ($PORT,
# $PID) for each test, ROUNDS x PASSES times in an order rotated every round and pass, each run through load_run
# and kept under its test and server.
declare -A GET_HIT_PATHS=([GET]=/index.html [HIT]=/c/obj)
get_hit_run() {  # get_hit_run TEST ROUND NAME
  local test=$1 r=$2 n=$3 cmd
  cmd=(wrk -t1 -c"$CONNS" -d@DUR@s "http://127.0.0.1:${PORT[$n]}${GET_HIT_PATHS[$test]}")
  warm_up "$(warm_s "$r")" "${cmd[@]}"
  load_run -k wrk -p "${PID[$n]}" -o "$D/wrk.out" -- "${cmd[@]}"
  printf '%-4s round%s %-12s %s\n' "$test" "$r" "$n" "$LR_LINE"
  keep_run "$test" "$n" "$r"
}
get_hit_rounds() {
  local r p t n
  for r in $(seq 1 "$ROUNDS"); do
    for p in $(seq 1 "$PASSES"); do
      for t in GET HIT; do
        for n in $(rotate "$(pass_k "$r" "$p")" "$@"); do get_hit_run "$t" "$r" "$n"; done
      done
    done
  done
}
# by_round ARRAY TEST SERVER : the server's figure in each round 1..ROUNDS (the median when a round has several runs),
# '-' for a round without a counted run
by_round() {
  local -n _a=$1; local r out="" v
  for r in $(seq 1 "$ROUNDS"); do
    v=${_a[$2,$3,$r]:-}
    if [ -z "$v" ]; then out+="- "; else out+="$(med "$v") "; fi
  done
  echo "$out"
}
# counted ARRAY TEST SERVER : every counted figure of the server (for med and rng), empty if none
counted() { local -n _c=$1; local r out=""; for r in $(seq 1 "$ROUNDS"); do out+="${_c[$2,$3,$r]:-}"; done; echo "$out"; }
# round_ratios ARRAY TEST A B : A's figure over B's in each round (ratios_by_round), e.g. "0.812 - 0.790"
round_ratios() { ratios_by_round "$(by_round "$1" "$2" "$3")" "$(by_round "$1" "$2" "$4")"; }
# round_ratio ARRAY TEST A B : the median of those per-round ratios. Every ratio a benchmark prints or judges is this:
# the two servers of a round run minutes apart at most, so the machine's drift between rounds cancels out, which a
# ratio of two medians taken over different rounds does not do.
round_ratio() { median_of "$(round_ratios "$@")"; }

# summary_table TEST REF UNIT SERVERS... : per server the median rate (min-max), server share, median figure per server
# CPU-second, the median of its per-round ratios to REF (of the rates in brackets) and the number of dropped runs
summary_table() {
  local t=$1 ref=$2 unit=$3; shift 3
  local w=6 n rates
  for n in "$@"; do [ ${#n} -gt $w ] && w=${#n}; done
  printf "%-${w}s %12s %-21s %8s %14s %17s %s\n" server "$unit" "(min-max)" srv_cpu "per srv-cpu-s" "x $ref" "dropped runs"
  for n in "$@"; do
    rates=$(counted RATE_R "$t" "$n")
    [ -z "$rates" ] && { printf "%-${w}s no counted run (dropped runs: %s)\n" "$n" "${NDROP[$t,$n]:-0}"; continue; }
    printf "%-${w}s %12.0f %-21s %8s %14.0f %9s (%5s) %s\n" "$n" "$(med "$rates")" "($(rng "$rates"))" \
      "$(med "$(counted SHARE_R "$t" "$n")")" "$(med "$(counted FIG_R "$t" "$n")")" \
      "x$(round_ratio FIG_R "$t" "$n" "$ref")" "x$(round_ratio RATE_R "$t" "$n" "$ref")" "${NDROP[$t,$n]:-0}"
  done
}

# ---------------------------------------------------------------------------------------------------------------
# Verdicts

# verdict_gate : sets NO_VERDICT, why this benchmark run may judge no target at all (empty if it may): a smoke run
# (fewer than 3 rounds: one round says nothing about the spread) or failed checks (CHECK_FAIL: a server that does not
# answer as it should is not measuring what the target is about). Call it after the checks and the rounds.
verdict_gate() {
  local why=()
  [ "$ROUNDS" -lt 3 ] && why+=("smoke run ($ROUNDS round$([ "$ROUNDS" = 1 ] || echo s))")
  [ ${#CHECK_FAIL[@]} -gt 0 ] && why+=("checks failed")
  NO_VERDICT=""; local w; for w in "${why[@]}"; do NO_VERDICT+="${NO_VERDICT:+; }$w"; done
}
# judge "R1 R2 ..." OP GOAL [YES NO] : the verdict on the median of the per-round ratios (round_ratios): MET or NOT MET
# (or YES / NO; OP is >= or <=), or "no verdict: ..." for a smoke run, failed checks, or fewer than 3 rounds in which
# both runs counted
judge() {
  [ -n "${NO_VERDICT:-}" ] && { echo "no verdict: $NO_VERDICT"; return; }
  local n m; n=$(echo "$1" | tr ' ' '\n' | grep -cE '^[0-9.]+$'); m=$(median_of "$1")
  [ "$n" -lt 3 ] && { echo "no verdict: only $n round(s) with both runs counted"; return; }
  awk -v v="$m" -v op="$2" -v t="$3" -v y="${4:-MET}" -v no="${5:-NOT MET}" \
    'BEGIN { ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print (ok ? y : no) }'
}
# target_line LABEL ARRAY TEST A B OP GOAL [NOTE] : one target, judged on A's figure over B's: the median of the
# per-round ratios, the goal, the verdict (judge), the per-round ratios themselves ('-': a round left out) and NOTE
target_line() {
  local rs; rs=$(round_ratios "$2" "$3" "$4" "$5")
  printf '%-58s %6s  target %s %-5s %-40s per round: %s%s\n' "$1" "$(median_of "$rs")" "$6" "$7" "$(judge "$rs" "$6" "$7")" \
    "$(show_ratios "$rs")" "${8:+  $8}"
}

# info_line LABEL ARRAY TEST A B : a ratio printed for information beside the targets (no verdict): A's figure over B's,
# the median of the per-round ratios and the per-round ratios themselves
info_line() {
  local rs; rs=$(round_ratios "$2" "$3" "$4" "$5")
  printf '%-58s %6s  %-56s per round: %s\n' "$1" "$(median_of "$rs")" "for information, no target" "$(show_ratios "$rs")"
}

# same_log_keys EDGEBOX_LOG OTHER_LOG PATTERN [OTHER_NAME] : the first line matching PATTERN in each access log (the
# checks' requests, batched and written within a second) has the same keys in the same order; else a CHECK_FAIL entry.
# OTHER_NAME: the bare server writing OTHER_LOG (raw-node-log by default).
same_log_keys() {
  sleep 1.2
  local kE kR o=${4:-raw-node-log}
  kE=$(grep -m1 "$3" "$1" | grep -o '"[a-zA-Z]*":' | tr -d '":' | paste -sd, -)
  kR=$(grep -m1 "$3" "$2" | grep -o '"[a-zA-Z]*":' | tr -d '":' | paste -sd, -)
  printf '%-16s access-log line keys: %s\n%-16s access-log line keys: %s\n' edgebox "${kE:-none}" "$o" "${kR:-none}"
  [ -n "$kE" ] && [ "$kE" = "$kR" ] || CHECK_FAIL+=("$o: its access-log line keys '${kR:-none}' differ from Edgebox's '${kE:-none}'")
}

# ---------------------------------------------------------------------------------------------------------------
# Bare servers that send Edgebox's exact response head (h2-same-head, h1-same-head): the head is read from a running
# Edgebox at the start of every run, so the bare server always sends what this tree's Edgebox sends.

# capture_head OUTFILE URL [CURL_ARG...] : the response head of one request (curl -D, -k for TLS), as the server sent
# it; fails if there was no answer
capture_head() {
  local out=$1 url=$2; shift 2
  rm -f "$out"
  curl -sk -o /dev/null -D "$out" --max-time 5 "$@" "$url" && grep -q '^HTTP/' "$out" 2>/dev/null
}
# head_fields FILE : a captured head as 'name: value' lines, in order, names as sent (HTTP/1.1 keeps their case; h2
# sends them in lower case), the status line first
head_fields() { tr -d '\r' < "$1" | awk 'NR == 1 { print $1, $2; next } /^[^ :]+:/ { i = index($0, ":"); v = substr($0, i + 1); sub(/^ +/, "", v); print substr($0, 1, i - 1) ": " v }'; }
# same_head NAME FILE_EDGEBOX FILE_OTHER [FIELD...] : the bare server's head (FILE_OTHER) has Edgebox's status, the same
# field names in the same order and case, and the same values but for the FIELDs (lower case; by default date,
# server-timing and age: generated or measured per response by both) whose values are compared by presence only, and
# Cache-Status's ttl (counted down per response by both); else a CHECK_FAIL entry. Prints the names of both heads.
same_head() {
  local n=$1 a=$2 b=$3; shift 3
  local vary=" ${*:-date server-timing age} "
  norm() { head_fields "$1" | awk -v v="$vary" '{ i = index($0, ":"); k = tolower(substr($0, 1, i - 1)); if (i && index(v, " " k " ")) print substr($0, 1, i); else print }' |
    sed -E 's/^([Cc]ache-[Ss]tatus: .*ttl=)-?[0-9]+/\1N/'; }
  printf '%-16s head: %s (%s fields)\n' edgebox "$(head_fields "$a" | sed 1d | cut -d: -f1 | paste -sd, -)" "$(head_fields "$a" | sed 1d | wc -l)"
  printf '%-16s head: %s (%s fields)\n' "$n" "$(head_fields "$b" | sed 1d | cut -d: -f1 | paste -sd, -)" "$(head_fields "$b" | sed 1d | wc -l)"
  [ -s "$a" ] && [ "$(norm "$a")" = "$(norm "$b")" ] ||
    CHECK_FAIL+=("$n: its response head differs from Edgebox's: $(diff <(norm "$a") <(norm "$b") | grep '^[<>]' | tr '\n' ' ')")
}
