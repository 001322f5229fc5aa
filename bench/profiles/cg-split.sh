#!/bin/bash
# Where the instructions of an h2-static.sh callgrind run went, per request of the load (part 1), per thread: V8's
# optimizing compilers, the scavenger, concurrent marking, the rest; and for the main thread "net" = total minus
# compiles and GC (as h1-cg-net.sh). With NODEFLAGS=--single-threaded everything is on the main thread.
# usage: N=3000 bash bench/profiles/cg-split.sh RUNDIR...
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; N=${N:-3000}
for d in "$@"; do
  X=$(mktemp -d); python3 "$HERE/cg-names.py" "$X" "$d"/cg.out.1-*
  echo "$d"
  for f in "$X"/cg.out.1-*; do
    callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null | awk -v n="$N" -v t="${f##*-}" '
      function v(s) { gsub(",", "", s); return s + 0 }
      /PROGRAM TOTALS/ { total = v($1) }
      /v8::internal::Compiler::CompileOptimized\(/ && !c1 { c1 = v($1) }
      /OptimizingCompileTaskExecutor::CompileTask::Run\(/ && !c2 { c2 = v($1) }
      /maglev::MaglevConcurrentDispatcher::JobTask::Run\(/ && !c3 { c3 = v($1) }
      /v8::internal::Heap::CollectGarbage\(v8::internal::AllocationSpace/ && !g1 { g1 = v($1) }
      /ScavengerCollector::JobTask::Run\(/ && !g6 { g6 = v($1) }
      /v8::internal::IncrementalMarking::Step\(/ && !g2 { g2 = v($1) }
      /v8::internal::Heap::StartIncrementalMarking\(/ && !g3 { g3 = v($1) }
      /ConcurrentMarking::RunMajor\(/ && !g7 { g7 = v($1) }
      /Builtins_RecordWriteSaveFP / && !g4 { g4 = v($1) }
      /Builtins_RecordWriteIgnoreFP / && !g5 { g5 = v($1) }
      END { if (total == 0) exit; c = c1 + c2 + c3; g = (t == "01" ? g1 + g2 + g3 + g4 + g5 : g6 + g7)
            printf "  thread %s: total %.0f, compile %.0f, gc %.0f, rest %.0f Ir per request\n", t, total / n, c / n, g / n, (total - c - g) / n }'
  done
  rm -rf "$X"
done
