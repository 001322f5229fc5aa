#!/bin/bash
# Ir per answered request of h1-drive.sh cg runs, with the optimizing compilers' and the garbage collector's share
# taken out: under valgrind with --single-threaded, TurboFan/Maglev compiles and scavenges run on the main thread at
# moments that vary between runs (10-17 % of a run's total), and hide differences of a few percent in the rest.
# usage: h1-cg-net.sh RUNDIR...   (RUNDIR: $OUT/run-TAG-NAME-MODE of h1-drive.sh ... cg)
# prints: RUNDIR total/req compile/req gc/req net/req (net = total - compile - gc), and failed requests if any
for d in "$@"; do
  ok=$(grep -o 'status codes: [0-9]* 2xx, [0-9]* 3xx' $d/h2load.txt | awk '{print $3+$5}')
  failed=$(grep -o '[0-9]* failed' $d/h2load.txt | awk '{print $1}')
  callgrind_annotate --inclusive=yes --threshold=100 $d/cg.out 2>/dev/null | awk -v ok=$ok -v d=$d -v failed=$failed '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /v8::internal::Compiler::CompileOptimized\(/ && !c { gsub(",", "", $1); c = $1 }
    /v8::internal::Heap::CollectGarbage\(v8::internal::AllocationSpace/ && !g { gsub(",", "", $1); g = $1 }
    END { printf "%s total=%d compile=%d gc=%d net=%d%s\n", d, total/ok, c/ok, g/ok, (total-c-g)/ok, (failed > 0 ? " (" failed " failed: discard)" : "") }'
done
