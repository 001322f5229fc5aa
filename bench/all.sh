#!/usr/bin/env bash
# `npm run bench`: the static-file benchmark, then the proxy benchmark. Arguments (e.g. `quick`) and environment
# variables go to both. Exits non-zero if either failed (the second still runs if the first failed).
set -uo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$BENCH/run.sh" "$@"; rc1=$?
case $rc1 in 130|143) exit $rc1 ;; esac   # interrupted (Ctrl-C / TERM): do not start the proxy run
bash "$BENCH/proxy.sh" "$@"; rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 0 ] && exit 0
echo "bench: static run exit $rc1, proxy run exit $rc2" >&2
exit $(( rc1 != 0 ? rc1 : rc2 ))
