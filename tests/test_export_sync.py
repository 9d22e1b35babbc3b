"The notebooks are the source of truth: the committed `prlm/` package must be exactly what `nbdev_export` writes."
import shutil, subprocess, sys, filecmp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_package_matches_notebooks(tmp_path):
    for name in ('settings.ini', 'setup.py', 'README.md'): shutil.copy(ROOT/name, tmp_path/name)
    shutil.copytree(ROOT/'nbs', tmp_path/'nbs')
    shutil.copytree(ROOT/'prlm', tmp_path/'prlm', ignore=shutil.ignore_patterns('__pycache__'))
    exe = Path(sys.executable).parent/'nbdev_export'
    r = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    def py_files(d): return sorted(p.relative_to(d) for p in d.rglob('*.py') if '__pycache__' not in p.parts)
    assert py_files(ROOT/'prlm') == py_files(tmp_path/'prlm'), "exported module set differs: run nbdev_export and commit"
    stale = [str(p) for p in py_files(ROOT/'prlm') if not filecmp.cmp(ROOT/'prlm'/p, tmp_path/'prlm'/p, shallow=False)]
    assert not stale, f"prlm/ is out of sync with nbs/ for {stale}: run nbdev_export and commit"
