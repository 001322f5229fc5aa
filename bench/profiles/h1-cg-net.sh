#!/bin/bash
# Ir per answered request of h1-drive.sh cg runs, with the optimizing compilers' and the garbage collector's share
# taken out. Under valgrind with --single-threaded, TurboFan/Maglev compiles, scavenges and incremental marking run on
# the main thread at moments that vary between runs (V8's memory reducer starts marking on timers, and valgrind makes
# every second hold ~100 requests): together 10-40 % of a run's total, which hides differences of a few percent.
# usage: h1-cg-net.sh RUNDIR...   (RUNDIR: $OUT/run-TAG-NAME-MODE of h1-drive.sh ... cg)
# prints per request: total, compile (Compiler::CompileOptimized), gc (Heap::CollectGarbage, IncrementalMarking::Step,
# Heap::StartIncrementalMarking, and the write barrier's out-of-line part RecordWrite*, inclusive), net = the rest;
# and the failed requests of a run to discard.
for d in "$@"; do
  ok=$(grep -o 'status codes: [0-9]* 2xx, [0-9]* 3xx' $d/h2load.txt 2>/dev/null | awk '{print $3+$5}')
  [ -z "$ok" ] && { echo "$d: no h2load result"; continue; }
  failed=$(grep -o '[0-9]* failed' $d/h2load.txt | awk '{print $1}')
  callgrind_annotate --inclusive=yes --threshold=100 $d/cg.out 2>/dev/null |
    awk -v ok=$ok -v d=$d -v tail="$([ "${failed:-0}" -gt 0 ] && echo " ($failed failed: discard)")" -f "$(dirname "${BASH_SOURCE[0]}")/cg-net.awk"
done
