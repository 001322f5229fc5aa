# Expands callgrind's name compression across the files of one --separate-threads run, so each thread's file can be
# read alone by callgrind_annotate (names are defined once per run, in whichever thread's file used them first).
# usage: python3 cg-names.py OUTDIR FILE...   (FILE: cg.out.1-01 ... of one run; writes OUTDIR/<same names>)
import os, re, sys
out, files = sys.argv[1], sys.argv[2:]
run_dir = os.path.dirname(os.path.abspath(files[0]))
define = re.compile(r'^(c?(?:fn|fl|fi|fe|ob))=\((\d+)\) (.*)$')
use = re.compile(r'^(c?(?:fn|fl|fi|fe|ob))=\((\d+)\)\s*$')
kind = lambda k: {'fi': 'fl', 'fe': 'fl'}.get(k.lstrip('c'), k.lstrip('c'))
names = {}
for f in sorted(os.listdir(run_dir)):
    if f.startswith('cg.out'):
        with open(os.path.join(run_dir, f), errors='replace') as h:
            for line in h:
                m = define.match(line)
                if m: names[(kind(m.group(1)), m.group(2))] = m.group(3)
for f in files:
    with open(f, errors='replace') as h, open(os.path.join(out, os.path.basename(f)), 'w') as o:
        for line in h:
            m = use.match(line)
            if m: line = f'{m.group(1)}=({m.group(2)}) {names.get((kind(m.group(1)), m.group(2)), "???")}\n'
            o.write(line)
