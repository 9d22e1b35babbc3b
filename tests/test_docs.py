"""The docs build up to Quarto: nbdev's notebook processing (the step `nbdev_docs` runs before `quarto render`).

Quarto itself cannot be installed on the CI machines, so this guards everything before it: every notebook goes
through nbdev's processors (which execute imports, exported cells and `show_doc`s in a fresh kernel, in notebook
order), and the offline plotly.js that saved figures load is published beside the pages.
"""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROC = """
import shutil, sys
sys.path.insert(0, 'scripts')
from plotly_js import copy_plotly_js
from nbdev.serve import proc_nbs
copy_plotly_js('nbs')
print(proc_nbs(n_workers=1, force=True))
"""

def test_nbdev_processing_runs_on_every_notebook():
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', PROC], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    proc = Path(r.stdout.strip().splitlines()[-1])
    want = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
    assert sorted(p.name for p in (proc/'nbs').glob('*.ipynb')) == want
    assert (proc/'nbs'/'plotly.min.js').stat().st_size > 1_000_000  # the figures' plotly.js, published with the pages
    assert 'nbs/plotly.min.js' in (proc/'_quarto.yml').read_text()

def test_saved_notebooks_are_small_offline_and_from_this_repo():
    "Each notebook: a kernelspec, under 1 MB, no CDN-only plotly figure, no machine-local paths in its outputs."
    import re
    for f in sorted((ROOT/'nbs').glob('*.ipynb')):
        nb = json.loads(f.read_text())
        outs = json.dumps([c.get('outputs', []) for c in nb['cells']])
        assert 'kernelspec' in nb['metadata'], f
        assert f.stat().st_size < 1_000_000, (f, f.stat().st_size)
        assert 'cdn.plot.ly' not in outs, f
        assert not re.search(r'/tmp/[A-Za-z0-9_]+/|/root/|/work/', outs), f
