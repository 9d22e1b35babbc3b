"""The docs build up to Quarto: `make docs`, i.e. nbdev's notebook processing (the step `nbdev_docs` runs before `quarto render`).

Quarto itself cannot be installed on the CI machines, so this guards everything before it: every notebook goes
through nbdev's processors (which execute imports, exported cells and `show_doc`s in a fresh kernel, in notebook
order), and the offline plotly.js that saved figures load is published beside the pages.
"""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKES = ('pip', 'pip3', 'sudo', 'apt-get', 'quarto')  # none may run: `make docs` installs nothing outside .venv

def _make_docs(tmp_path, *args):
    "Run `make docs *args` with fake pip/sudo/apt-get first on PATH (a call to one is recorded and fails) and no Quarto; fail on any call."
    fake, called = tmp_path/'bin', tmp_path/'called'
    fake.mkdir()
    for name in FAKES:  # first on PATH: a call to any of these (outside the venv) is recorded and fails
        (fake/name).write_text(f'#!/bin/sh\necho "{name} $*" >> {called}\nexit 1\n'); (fake/name).chmod(0o755)
    path = os.pathsep.join([str(fake)] + [p for p in os.environ['PATH'].split(os.pathsep) if not (Path(p)/'quarto').exists()])
    env = {**os.environ, 'PATH': path, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
    (fake/'quarto').unlink()  # `command -v quarto` must fail: no Quarto here
    r = subprocess.run(['make', '--no-print-directory', 'docs', *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert not called.exists(), called.read_text()
    return r

def test_make_docs_processes_every_notebook_and_installs_nothing(tmp_path):
    "`make docs` without Quarto: nbdev's processing of every notebook passes, one line says the site needs Quarto, and no pip/sudo is run."
    r = _make_docs(tmp_path)
    assert 'the site itself needs Quarto' in r.stdout and r.stdout.count('\n') <= 4, r.stdout
    proc = ROOT/'_proc'
    want = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
    assert sorted(p.name for p in (proc/'nbs').glob('*.ipynb')) == want
    assert (proc/'nbs'/'plotly.min.js').stat().st_size > 1_000_000  # the figures' plotly.js, published with the pages
    assert 'nbs/plotly.min.js' in (proc/'_quarto.yml').read_text()

def test_make_docs_one_notebook(tmp_path):
    "`make docs DOCS_PATH=<notebook>` processes that notebook alone into the _proc/ folder (nbdev's proc_nbs given a file would write _proc as a file)."
    _make_docs(tmp_path, 'DOCS_PATH=nbs/03_metrics.ipynb')
    proc = ROOT/'_proc'
    assert proc.is_dir() and [p.name for p in proc.rglob('*.ipynb')] == ['03_metrics.ipynb']

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
