"README.md is generated from nbs/index.ipynb (the front page); this keeps the two in sync without Quarto."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_in_sync_with_index():
    r = subprocess.run([sys.executable, 'scripts/sync_readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_readme_starts_with_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text
    assert text.index('make demo') < 2500, "the two commands must be at the top of the README"

def test_check_detects_drift(tmp_path):
    sys.path.insert(0, str(ROOT/'scripts'))
    import sync_readme
    rendered = sync_readme.render(ROOT/'nbs'/'index.ipynb')
    assert rendered != rendered.replace('make demo', 'make dmeo')  # the check compares real content
    assert '#| hide' not in rendered
