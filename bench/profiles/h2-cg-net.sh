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
  callgrind_annotate --inclusive=yes --threshold=100 "$d/cg.out.1-01" 2>/dev/null |
    awk -v ok="$N" -v d="$d" -v label=" main thread:" -v baseline=1 -f "$(dirname "${BASH_SOURCE[0]}")/cg-net.awk"
done
