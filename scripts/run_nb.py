#!/usr/bin/env python
"""Execute notebooks in place and keep their outputs, so the docs site (and GitHub) show real results.

Usage: python scripts/run_nb.py nbs/01_retrieve.ipynb [more.ipynb ...] [--skip-flags gpu]
All cells run, `#| slow` ones included (that is the point: docs show the slow results); cells whose flags are in
--skip-flags (default: gpu) are left without output. Stops at the first failing cell and names it.
"""
import argparse, os, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

def _flags(cell):
    "The `#| flag` directives at the top of a code cell."
    out = set()
    for line in cell.source.splitlines():
        s = line.strip()
        if not s.startswith('#|'): break
        out.update(s[2:].split())
    return out

def run_nb(path, skip_flags=('gpu',)):
    path = Path(path)
    nb = read_nb(path)
    os.chdir(path.parent)
    shell = CaptureShell(path)
    t0 = time.time()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != 'code': continue
        if _flags(cell) & set(skip_flags): cell.outputs = []; continue
        shell.cell(cell)
        errs = [o for o in cell.get('outputs', []) if o.get('output_type') == 'error']
        if errs:
            print(f"{path}: cell {i} failed:\n{cell.source}\n{errs[0].get('ename')}: {errs[0].get('evalue')}", file=sys.stderr)
            sys.exit(1)
    write_nb(nb, path)
    print(f"{path}: executed in {time.time()-t0:.1f}s")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('paths', nargs='+')
    ap.add_argument('--skip-flags', nargs='*', default=['gpu'])
    a = ap.parse_args()
    cwd = os.getcwd()
    for p in a.paths:
        os.chdir(cwd); run_nb(Path(p).resolve(), a.skip_flags)
