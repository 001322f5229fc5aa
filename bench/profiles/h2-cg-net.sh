#!/bin/bash
# Main-thread Ir per request of h2-static.sh callgrind runs, split as h1-cg-net.sh splits the HTTP/1.1 runs: total,
# the optimizing compilers' part (Compiler::CompileOptimized), the garbage collector's (Heap::CollectGarbage,
# IncrementalMarking::Step, Heap::StartIncrementalMarking, the write barrier's out-of-line part RecordWrite*), net = the
# rest, and for information the inclusive Ir under Sparkplug baseline frames (Builtins_BaselineOutOfLinePrologue):
# how much of the load ran in code that was not (or no longer) optimized, which is what makes runs of one tree differ.
# usage: h2-cg-net.sh OUTDIR... [N]   (OUTDIR: the callgrind-SERVER-HHMMSS folder h2-static.sh prints; N: requests, 3000)
N=3000
dirs=()
for a in "$@"; do if [[ "$a" =~ ^[0-9]+$ ]]; then N=$a; else dirs+=("$a"); fi; done
for d in "${dirs[@]}"; do
  callgrind_annotate --inclusive=yes --threshold=100 "$d/cg.out.1-01" 2>/dev/null | awk -v ok="$N" -v d="$d" '
    function n(s) { gsub(",", "", s); return s + 0 }
    /PROGRAM TOTALS/ { total = n($1) }
    /v8::internal::Compiler::CompileOptimized\(/ && !c { c = n($1) }
    /v8::internal::Heap::CollectGarbage\(v8::internal::AllocationSpace/ && !g1 { g1 = n($1) }
    /v8::internal::IncrementalMarking::Step\(/ && !g2 { g2 = n($1) }
    /v8::internal::Heap::StartIncrementalMarking\(/ && !g3 { g3 = n($1) }
    /Builtins_RecordWriteSaveFP / && !g4 { g4 = n($1) }
    /Builtins_RecordWriteIgnoreFP / && !g5 { g5 = n($1) }
    /Builtins_BaselineOutOfLinePrologue/ && !bl { bl = n($1) }
    END { g = g1 + g2 + g3 + g4 + g5; printf "%s main thread: total=%d compile=%d gc=%d net=%d (under baseline frames: %d)\n", d, total/ok, c/ok, g/ok, (total-c-g)/ok, bl/ok }'
done
