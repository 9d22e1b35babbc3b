#!/usr/bin/env python
"""Render `nbs/index.ipynb` (the front page) to `README.md`, the way `nbdev_readme` would without Quarto.

Quarto cannot be installed on every machine (it is not on PyPI), so README.md is produced by this script:
markdown cells verbatim (links to sibling notebooks, `](NN_name.ipynb)`, point into `nbs/`), code cells as ```python blocks followed by their saved text/markdown outputs;
cells marked `#| hide` (and directive lines) are left out. `--check` exits 1 when README.md is out of date
(tests/test_readme.py runs it).
"""
import argparse, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- WARNING: generated from nbs/index.ipynb by scripts/sync_readme.py; edit the notebook, not this file -->\n\n"

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _directives(src):
    "Split `#| ...` directive lines from the code."
    lines = src.splitlines()
    dirs = [l for l in lines if l.strip().startswith('#|')]
    return dirs, '\n'.join(l for l in lines if not l.strip().startswith('#|')).strip()

def _output_text(out):
    "The best text form of one saved output, or None."
    if out.get('output_type') == 'stream':  # progress bars and warnings (stderr) are not part of the lesson
        return (''.join(out['text']), 'text') if out.get('name') == 'stdout' else (None, None)
    data = out.get('data', {})
    if 'text/markdown' in data: return ''.join(data['text/markdown']), 'md'
    if 'text/plain' in data and 'text/html' not in data: return ''.join(data['text/plain']), 'text'
    return None, None

def render(nb_path):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = _src(cell)
        if cell['cell_type'] == 'markdown': parts.append(re.sub(r'\]\((?![a-z]+:|/)([\w.-]+\.ipynb)\)', r'](nbs/\1)', src.strip())); continue
        if cell['cell_type'] != 'code': continue
        dirs, code = _directives(src)
        if any('hide' in d or 'default_exp' in d for d in dirs): continue
        if code: parts.append(f"```python\n{code}\n```")
        for out in cell.get('outputs', []):
            txt, kind = _output_text(out)
            if not txt: continue
            parts.append(txt.strip() if kind == 'md' else f"```\n{txt.rstrip()}\n```")
    return HEADER + '\n\n'.join(p for p in parts if p) + '\n'

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--check', action='store_true', help='exit 1 if README.md differs from the rendered notebook')
    a = ap.parse_args()
    text, readme = render(ROOT/'nbs'/'index.ipynb'), ROOT/'README.md'
    if a.check:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit("README.md is out of sync with nbs/index.ipynb: run `python scripts/sync_readme.py`")
        print("README.md is in sync with nbs/index.ipynb")
    else:
        readme.write_text(text, encoding='utf-8'); print("wrote README.md")
