#!/usr/bin/env python
"""Rewrite notebooks into the exact text that opening them in JupyterLab, saving, then `nbdev_clean` leaves, so the
nbdev loop (open → save → clean → commit) never shows a diff nobody made.

Usage: python scripts/nb_normalize.py [--check] [PATH ...]   (PATH: notebooks or folders; default: nbs)
`--check` writes nothing and exits 1, listing the notebooks that would change.

What JupyterLab 4.6 (with jupytext's contents manager, as installed here) does on Ctrl+S, checked on copies of these
notebooks in a real JupyterLab driven by headless Chromium:
- every number goes through JavaScript: the server sends the notebook as JSON, the browser parses it into JS numbers
  and sends back `JSON.stringify`, which the server re-reads with Python. An integral float smaller than 1e21 comes
  back as an int (`1.0` → `1`, `-0.0` → `0`, `1e+16` → `10000000000000000`); an int beyond 2**53 is rounded to a
  double (`2**64` → `18446744073709552000`, `123456789012345678901234` → `1.2345678901234569e+23`). Other floats
  keep their value and Python writes them as before (JS's `1e-7`, `1e+21` are read back and written `1e-07`, `1e+21`).
- notebook metadata: `kernelspec.display_name` becomes the kernel's ("Python 3 (ipykernel)"), `language_info` is
  added; jupytext drops `jupytext.text_representation` (and an emptied `jupytext`).
- cell metadata `collapsed` is mirrored into `jupyter.outputs_hidden`.
- the file is written by nbformat: keys sorted, indent 1, non-ASCII kept, source / text outputs / text mime types
  split into lines with `str.splitlines(True)` (so also at a lone `\\r`), `[""]` → `[]`, a final newline. Stream
  outputs are stored as received: JupyterLab neither merges them nor applies `\\r`/`\\b` in the saved file.
`nbdev_clean` (nbdev's `clean_nb` with settings.ini's keys) then: execution counts → null, cell metadata dropped
(but `hide_input`), notebook metadata kept only for kernelspec/jekyll/jupytext/doc/widgets with `display_name` reset to
the kernel's name, ` at 0x…` dropped from text reprs, trailing whitespace dropped from non-SVG images.
With `make install`'s pre-save hook (nbdev's `clean_jupyter`) the save itself writes this cleaned text. JupyterLab still
marks a notebook modified as soon as it opens (its kernel's display name and language_info differ from the file's,
which nbdev_clean resets), but saving it changes nothing.
"""
import argparse, contextlib, difflib, json, math, platform, sys
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
import nbformat

# -- numbers as the browser writes them ------------------------------------------------------------------------------
def js_number_str(x: float) -> str:
    "ECMAScript `Number.prototype.toString()` of the finite float `x` (its digits are Python's repr's: both shortest)."
    if x == 0: return '0'
    if x < 0: return '-' + js_number_str(-x)
    _, digits, exp = Decimal(repr(x)).as_tuple()
    s = ''.join(map(str, digits)).rstrip('0')
    exp += len(digits) - len(s)
    k = len(s); n = exp + k  # x = 0.s × 10**n
    if k <= n <= 21: return s + '0' * (n - k)
    if 0 < n <= 21: return s[:n] + '.' + s[n:]
    if -6 < n <= 0: return '0.' + '0' * -n + s
    e = n - 1
    return (s if k == 1 else s[0] + '.' + s[1:]) + 'e' + ('+' if e >= 0 else '-') + str(abs(e))

def js_number(x):
    "The value Python reads back after `x` went to the browser as JSON and came back through `JSON.stringify`."
    if isinstance(x, bool) or not isinstance(x, (int, float)): return x
    if isinstance(x, int):
        if abs(x) <= 2**53: return x
        try: x = float(x)  # JSON.parse rounds to the nearest double, as float() does
        except OverflowError: return x
    if not math.isfinite(x): return x  # NaN/Infinity are no JSON: the browser could not open the notebook at all
    return json.loads(js_number_str(x))

def js_roundtrip(o):
    "`o` (parsed JSON) with every number as it comes back from the browser."
    if isinstance(o, dict): return {k: js_roundtrip(v) for k, v in o.items()}
    if isinstance(o, list): return [js_roundtrip(v) for v in o]
    return js_number(o)

# -- JupyterLab's save -----------------------------------------------------------------------------------------------
KERNEL_DISPLAY_NAME = 'Python 3 (ipykernel)'
def _language_info():
    return {'codemirror_mode': {'name': 'ipython', 'version': 3}, 'file_extension': '.py', 'mimetype': 'text/x-python',
            'name': 'python', 'nbconvert_exporter': 'python', 'pygments_lexer': 'ipython3',
            'version': platform.python_version()}

def jupyterlab_content(text: str) -> dict:
    "The notebook JupyterLab sends to the server on save, for a notebook file `text` it opened (and a python3 kernel)."
    nb = js_roundtrip(json.loads(json.dumps(nbformat.reads(text, as_version=4))))  # the server's read, then the browser
    md = nb['metadata']
    ks = md.setdefault('kernelspec', {'language': 'python', 'name': 'python3'})
    if ks.get('name') == 'python3': ks['display_name'] = KERNEL_DISPLAY_NAME
    md['language_info'] = _language_info()
    for c in nb['cells']:
        cm = c.setdefault('metadata', {})
        if 'collapsed' in cm: cm.setdefault('jupyter', {}).setdefault('outputs_hidden', cm['collapsed'])
    jt = md.get('jupytext')  # jupytext's contents manager: drop_text_representation_metadata
    if isinstance(jt, dict):
        jt.pop('text_representation', None)
        if not jt: md.pop('jupytext')
    return nb

def nbformat_text(content: dict) -> str:
    "The file jupyter_server writes for a notebook `content` (nbformat.write: split lines, sorted keys, final newline)."
    s = nbformat.writes(nbformat.from_dict(content), version=nbformat.NO_CONVERT)
    return s if s.endswith('\n') else s + '\n'

def jupyterlab_save(text: str) -> str:
    "The file text after opening `text` in JupyterLab and pressing Ctrl+S (no pre-save hook)."
    return nbformat_text(jupyterlab_content(text))

# -- nbdev_clean -----------------------------------------------------------------------------------------------------
def settings_dir(path=None) -> Path:
    "The folder of the settings.ini at or above the notebook `path`, else the working directory (where nbdev looks)."
    start = Path(path).resolve().parent if path else Path.cwd()
    return next((p for p in [start, *start.parents] if (p/'settings.ini').exists()), Path.cwd())

@lru_cache(None)
def _nbdev_config(root: Path):
    from nbdev.config import get_config
    with contextlib.chdir(root): return get_config()  # nbdev reads settings.ini from the cwd up, with its defaults

def clean_kwargs(path=None) -> dict:
    "The arguments `nbdev_clean` passes to `nbdev.clean.clean_nb` for a notebook at `path` (settings.ini's keys)."
    cfg = _nbdev_config(settings_dir(path))
    return dict(clear_all=cfg.clear_all, allowed_metadata_keys=cfg.get('allowed_metadata_keys').split(),
                allowed_cell_metadata_keys=cfg.get('allowed_cell_metadata_keys').split(), clean_ids=cfg.clean_ids)

def nbdev_clean_text(text: str, path=None) -> str:
    "What `nbdev_clean` writes for the file `text`: json.loads, nbdev's clean_nb, execnb's serialisation."
    from nbdev.clean import clean_nb
    from execnb.nbio import nb2str
    nb = json.loads(text)
    clean_nb(nb, **clean_kwargs(path))
    return nb2str(nb)

def normalize(text: str, path=None) -> str:
    "The notebook file `text` as open → save in JupyterLab → nbdev_clean leaves it; idempotent."
    return nbdev_clean_text(jupyterlab_save(text), path)

def write_normalized(path, text=None) -> bool:
    "Write the normalised form of the notebook `text` (default: the file's own) to `path`; True if the file changed."
    path = Path(path)
    old = path.read_text(encoding='utf-8') if path.exists() else None
    new = normalize(old if text is None else text, path)
    if new == old: return False
    path.write_text(new, encoding='utf-8')
    return True

def short_diff(old: str, new: str, name='', n=20) -> str:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f'{name} (stored)', f'{name} (open/save/clean)', lineterm='', n=1))
    return '\n'.join(lines[:n] + ([f'... {len(lines) - n} more diff lines'] if len(lines) > n else []))

def notebooks(paths):
    "The .ipynb files in `paths` (folders: recursively, skipping `.`/`_` folders and checkpoints, as nbdev does)."
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob('*.ipynb') if not any(s.startswith(('.', '_')) for s in f.relative_to(p).parts[:-1]))
        else: yield p

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('paths', nargs='*', default=['nbs'])
    ap.add_argument('--check', action='store_true', help="write nothing; exit 1 listing the notebooks that would change")
    a = ap.parse_args(argv)
    changed = []
    for f in notebooks(a.paths):
        old = f.read_text(encoding='utf-8')
        new = normalize(old, f)
        if new == old: continue
        changed.append(f)
        if a.check: print(f"{f}: would change")
        else: f.write_text(new, encoding='utf-8'); print(f"{f}: normalised")
    if a.check and changed:
        print(f"{len(changed)} notebook(s) differ from what JupyterLab's save + nbdev_clean write; fix: python scripts/nb_normalize.py {' '.join(map(str, a.paths))}", file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__': sys.exit(main())
