# The part of a callgrind_annotate --inclusive=yes listing that h1-cg-net.sh and h2-cg-net.sh read: the total, the
# optimizing compilers' part (Compiler::CompileOptimized), the garbage collector's (Heap::CollectGarbage,
# IncrementalMarking::Step, Heap::StartIncrementalMarking, the write barrier's out-of-line part RecordWrite*) and the
# inclusive Ir under Sparkplug baseline frames; per request (ok), with `label` after the run's name and `tail` after
# the figures. Set baseline=1 to print the baseline figure.
function n(s) { gsub(",", "", s); return s + 0 }
/PROGRAM TOTALS/ { total = n($1) }
/v8::internal::Compiler::CompileOptimized\(/ && !c { c = n($1) }
/v8::internal::Heap::CollectGarbage\(v8::internal::AllocationSpace/ && !g1 { g1 = n($1) }
/v8::internal::IncrementalMarking::Step\(/ && !g2 { g2 = n($1) }
/v8::internal::Heap::StartIncrementalMarking\(/ && !g3 { g3 = n($1) }
/Builtins_RecordWriteSaveFP / && !g4 { g4 = n($1) }
/Builtins_RecordWriteIgnoreFP / && !g5 { g5 = n($1) }
/Builtins_BaselineOutOfLinePrologue/ && !bl { bl = n($1) }
END {
  g = g1 + g2 + g3 + g4 + g5
  printf "%s%s total=%d compile=%d gc=%d net=%d", d, label, total / ok, c / ok, g / ok, (total - c - g) / ok
  if (baseline) printf " (under baseline frames: %d)", bl / ok
  printf "%s\n", tail
}
