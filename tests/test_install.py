"The install recipe run against a fake venv (scripts that log their arguments): uv with pip's find-links, pip when uv fails or when asked."
import os, re, stat, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _exe(path:Path, body:str):
    path.write_text('#!/usr/bin/env bash\n' + body); path.chmod(path.stat().st_mode | stat.S_IEXEC)

def fake_install(tmp_path, uv_ok:bool, **env) -> list[str]:
    "Run the recipe that makes `make install`'s stamp with VENV a fake venv; return the logged calls of its python and uv."
    venv, log = tmp_path/'venv', tmp_path/'calls.log'
    (venv/'bin').mkdir(parents=True)
    _exe(venv/'bin'/'python', f'echo "python $*" >> {log}\n')
    _exe(venv/'bin'/'uv', f'echo "uv $*" >> {log}\nexit {0 if uv_ok else 1}\n')
    env = {**os.environ, **env}
    db = subprocess.run(['make', '-np', f'VENV={venv}', 'help'], cwd=ROOT, capture_output=True, text=True, env=env).stdout
    stamp = re.search(r'^STAMP := (\S+)$', db, re.M).group(1)
    r = subprocess.run(['make', f'VENV={venv}', stamp], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(stamp).exists() and Path(stamp).is_relative_to(venv)
    return log.read_text().splitlines()

STEPS = ('-r requirements.txt', '--no-deps -r requirements-embedded.txt', '--no-deps -e .')

def test_uv_with_pips_find_links(tmp_path):
    calls = fake_install(tmp_path, uv_ok=True, PIP_FIND_LINKS='/x/wheels /y/more')
    assert re.fullmatch(r'python -m pip install -q uv==\d+\.\d+\.\d+', calls[0]), calls[0]  # a pinned uv
    uv = [c for c in calls if c.startswith('uv ')]
    assert [c.endswith(s) for c, s in zip(uv, STEPS)] == [True] * 3, uv
    for c in uv: assert '--find-links /x/wheels' in c and '--find-links /y/more' in c, c
    assert not [c for c in calls if c.startswith('python -m pip install -q -')]  # pip ran no install step

def test_pip_when_uv_fails(tmp_path):
    calls = fake_install(tmp_path, uv_ok=False)
    for s in STEPS: assert f'python -m pip install -q {s}' in calls, (s, calls)  # each step retried with pip
    assert calls[-1].startswith('python -c import torch')  # then the stack must import

def test_pip_alone(tmp_path):
    calls = fake_install(tmp_path, uv_ok=True, PRLM_INSTALLER='pip')
    assert not [c for c in calls if c.startswith('uv ') or 'uv==' in c], calls
    assert calls[0] == 'python -m pip install -q --upgrade pip'
    for s in STEPS: assert f'python -m pip install -q {s}' in calls, s
