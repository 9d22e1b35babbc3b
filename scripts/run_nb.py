#!/usr/bin/env python
"""Execute notebooks in place and keep their outputs, so the docs site (and GitHub) show real results.

Usage: python scripts/run_nb.py nbs/01_retrieve.ipynb [more.ipynb ...] [--skip-flags gpu] [--scrub-only]
All cells run, `#| slow` ones included (that is the point: docs show the slow results); cells whose flags are in
--skip-flags (default: gpu) are left without output; cells whose flags are in --keep-flags are not run and keep
their saved outputs. Stops at the first failing cell and names it.
Saved outputs are scrubbed of this machine's paths (the checkout, its virtualenv, the home folder, temporary folders),
so the docs never show where they were built; `--scrub-only` does just that to already executed notebooks.
Notebooks are written through scripts/nb_normalize.py: the text JupyterLab's save + nbdev_clean would leave.
"""
import argparse, os, re, sys, tempfile, time
from pathlib import Path
from execnb.nbio import read_nb, nb2str
from nb_normalize import write_normalized  # scripts/: written as JupyterLab's save + nbdev_clean would
from execnb.shell import CaptureShell

def _flags(cell):
    "The `#| flag` directives at the top of a code cell."
    out = set()
    for line in cell.source.splitlines():
        s = line.strip()
        if not s.startswith('#|'): break
        out.update(s[2:].split())
    return out

ROOT = Path(__file__).resolve().parents[1]
_SCRUBS = [(re.compile(re.escape(str(ROOT)) + r'/\.venv/lib/python[\d.]+/site-packages/'), ''),
           (re.compile(re.escape(str(ROOT)) + '/'), ''),
           (re.compile(re.escape(tempfile.gettempdir()) + r'/(?:tmp|prlm-)\w+'), '$TMPDIR'),  # mkdtemp() and prlm's own temp folders
           (re.compile(re.escape(str(Path.home())) + '/'), '~/')]

def scrub(text):
    "`text` without this machine's paths."
    for rx, sub in _SCRUBS: text = rx.sub(sub, text)
    return text

def scrub_outputs(nb):
    "Scrub every saved output of `nb` (stream text and every text mime type) in place; returns how many strings changed."
    n = 0
    def fix(v):
        nonlocal n
        if isinstance(v, list): return [fix(x) for x in v]
        if not isinstance(v, str): return v
        t = scrub(v); n += t != v; return t
    for c in nb.cells:
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = fix(o['text'])
            for k in list(o.get('data', {})):
                if k.startswith('text/'): o['data'][k] = fix(o['data'][k])
    return n

def run_nb(path, skip_flags=('gpu',), keep_flags=()):
    path = Path(path)
    nb = read_nb(path)
    os.chdir(path.parent)
    shell = CaptureShell(path)
    t0 = time.time()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != 'code': continue
        if _flags(cell) & set(keep_flags): continue  # not run: its saved outputs stay
        if _flags(cell) & set(skip_flags): cell.outputs = []; continue
        shell.cell(cell)
        errs = [o for o in cell.get('outputs', []) if o.get('output_type') == 'error']
        if errs:
            print(f"{path}: cell {i} failed:\n{cell.source}\n{errs[0].get('ename')}: {errs[0].get('evalue')}", file=sys.stderr)
            sys.exit(1)
    scrub_outputs(nb)
    write_normalized(path, nb2str(nb))
    print(f"{path}: executed in {time.time()-t0:.1f}s")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('paths', nargs='+')
    ap.add_argument('--skip-flags', nargs='*', default=['gpu'])
    ap.add_argument('--keep-flags', nargs='*', default=[], help="cells with these flags are not run and keep their saved outputs (e.g. slow, to refresh a notebook quickly)")
    ap.add_argument('--scrub-only', action='store_true', help="only scrub machine paths from the saved outputs")
    a = ap.parse_args()
    cwd = os.getcwd()
    for p in a.paths:
        os.chdir(cwd)
        if a.scrub_only:
            nb = read_nb(p); n = scrub_outputs(nb); write_normalized(p, nb2str(nb)); print(f"{p}: {n} output strings scrubbed")
        else: run_nb(Path(p).resolve(), a.skip_flags, a.keep_flags)
