#!/usr/bin/env bash
# `npm run bench`: the static-file benchmark, then the proxy benchmark, then the realtime benchmark, then the TLS
# benchmark, then the DNS benchmark, then the single sign-on benchmark, then the real-user monitoring benchmark, then the
# metrics and live feed benchmark, then the workers benchmark, then the realtime-over-Redis benchmark. Arguments (e.g.
# `quick`) and environment variables go to all ten. Exits non-zero if any failed (the later ones still run if an
# earlier one failed, but an interrupted run (Ctrl-C / TERM) stops the sequence).
# With BEFORE=<git rev>, the worktree of that commit is built once here (lib.sh before_setup) and handed to each
# benchmark as BEFORE_BUILT; it is removed at the end. At the end it prints how long each benchmark took (bench/README.md
# gives the expected durations: about 60 minutes for ROUNDS=5 with BEFORE on a 2-core machine).
set -uo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
if [ -n "${BEFORE:-}" ] && [ -z "${BEFORE_BUILT:-}" ]; then
  export PATH="$ROOT/node_modules/.bin:$PATH"
  source "$BENCH/lib.sh"
  trap bench_cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT TERM
  before_setup
  # the commit itself: a name like HEAD~1 could mean another commit by the time a later benchmark starts
  export BEFORE=$BEFORE_SHA BEFORE_BUILT=$BEFORE_TREE
fi
T0=$(date +%s); TIMES=""
took() { TIMES+="$1 $(( ($(date +%s) - $2) / 60 ))m$(( ($(date +%s) - $2) % 60 ))s, "; }
t=$(date +%s); bash "$BENCH/run.sh" "$@"; rc1=$?; took static "$t"
case $rc1 in 130|143) exit $rc1 ;; esac   # interrupted (Ctrl-C / TERM): do not start the next run
t=$(date +%s); bash "$BENCH/proxy.sh" "$@"; rc2=$?; took proxy "$t"
case $rc2 in 130|143) exit $rc2 ;; esac
t=$(date +%s); bash "$BENCH/realtime.sh" "$@"; rc3=$?; took realtime "$t"
case $rc3 in 130|143) exit $rc3 ;; esac
t=$(date +%s); bash "$BENCH/tls.sh" "$@"; rc4=$?; took tls "$t"
case $rc4 in 130|143) exit $rc4 ;; esac
t=$(date +%s); bash "$BENCH/dns.sh" "$@"; rc5=$?; took dns "$t"
case $rc5 in 130|143) exit $rc5 ;; esac
t=$(date +%s); bash "$BENCH/auth.sh" "$@"; rc6=$?; took auth "$t"
case $rc6 in 130|143) exit $rc6 ;; esac
t=$(date +%s); bash "$BENCH/rum.sh" "$@"; rc7=$?; took rum "$t"
case $rc7 in 130|143) exit $rc7 ;; esac
t=$(date +%s); bash "$BENCH/admin.sh" "$@"; rc8=$?; took admin "$t"
case $rc8 in 130|143) exit $rc8 ;; esac
t=$(date +%s); bash "$BENCH/workers.sh" "$@"; rc9=$?; took workers "$t"
case $rc9 in 130|143) exit $rc9 ;; esac
t=$(date +%s); bash "$BENCH/realtime-redis.sh" "$@"; rc10=$?; took realtime-redis "$t"
took total "$T0"
echo "bench: ${TIMES%, }" >&2
[ $rc1 = 0 ] && [ $rc2 = 0 ] && [ $rc3 = 0 ] && [ $rc4 = 0 ] && [ $rc5 = 0 ] && [ $rc6 = 0 ] && [ $rc7 = 0 ] && [ $rc8 = 0 ] && [ $rc9 = 0 ] && [ $rc10 = 0 ] && exit 0
echo "bench: static run exit $rc1, proxy run exit $rc2, realtime run exit $rc3, TLS run exit $rc4, DNS run exit $rc5, single sign-on run exit $rc6, real-user monitoring run exit $rc7, metrics and live feed run exit $rc8, workers run exit $rc9, realtime-over-Redis run exit $rc10" >&2
for rc in $rc1 $rc2 $rc3 $rc4 $rc5 $rc6 $rc7 $rc8 $rc9 $rc10; do [ "$rc" != 0 ] && exit "$rc"; done
