"""Kill points: a tiny run SIGKILLed at chosen writes, resumed with `prlm run` until it finishes, ends with the
artifacts of an uninterrupted run.

The kills come from `prlm.utils`' test hook (`PRLM_KILL_AT`, an audit hook that sees every file opened for writing,
rename, new folder and removal of the process, inside libraries too). One uninterrupted run records every write
(`PRLM_KILL_AT=record:FILE`) and is the reference; `KILL_POINTS` picks writes of every stage from that record (the
test checks each is a real write of the stage it names): torn datasets, `.tmp` files and folders before their rename,
generation caches mid-way, GRPO checkpoints half-written and complete, the adapter's `.adapter.tmp`, the window between
the adapter and `train_result.json`, eval predictions, the report. A chain of runs is killed at each point in turn
(every resume is killed again at the next point: resume-of-resume), then run to the end; every artifact must equal
the reference's byte for byte, JSON after dropping what legitimately differs (`VOLATILE`: timestamps, nonces,
durations, memory, `resumed_from`), and no temporary file or `.started` marker may be left.
Runs take ~40 s on 2 cores; the chain (12 kills, each resume redoing its stage) ~3 minutes, the module under ~4.
No timed assertion. To find which kill point breaks a failing chain, run the chain with fewer points.
"""
import json, os, re, signal, subprocess, sys
from pathlib import Path
import pytest

from test_pipeline import PRLM, ROOT, ENV, tiny_config

pytestmark = pytest.mark.slow
STAGES = ('data', 'retrieve', 'pairs', 'rm', 'grpo', 'evaluate', 'report')

# (stage, PRLM_KILL_AT spec: KIND:TEXT[#N] -- the N-th KIND of write whose path holds TEXT, counted per process)
KILL_POINTS = [
    ('data', 'open:/data/raw/test/data-00000'),              # raw/train saved, raw/test not begun
    ('retrieve', 'mkdir:/models/.tiny_policy.'),             # an empty .tmp folder of `atomic_dir` left behind
    ('pairs', 'open:/no_profile_zero_shot.jsonl#3'),         # generation cache mid-way (2 of 6 rejected answers)
    ('rm', 'rename:/rm/model'),                              # reward model complete in its .tmp folder, not in place
    ('grpo', 'open:/grpo/checkpoint-1/trainer_state.json'),  # checkpoint-1 torn (no trainer_state.json): set aside
    ('grpo', 'open:/grpo/checkpoint-2/README.md'),           # checkpoint-1 complete: resumed from it
    ('grpo', 'rename:/grpo/adapter'),                        # .adapter.tmp complete, the last checkpoint is max_steps
    ('grpo', 'open:/grpo/.train_result.json.'),              # adapter in place, train_result.json not
    ('evaluate', 'open:/eval/generations/reason-#20'),       # greedy generation mid-way (19 of 41 answers)
    ('evaluate', 'rename:/eval/predictions/prlm.json'),      # some predictions written, not all
    ('report', 'rename:/report.html'),                       # report complete in its .tmp file
    ('report', 'remove:/stages/report.started'),             # report marker written, its .started not removed
]

# JSON keys whose values differ between two identical runs (clock, nonces and what derives from them, random dataset
# fingerprints, memory) or say how a run was interrupted
VOLATILE = {'time', 'created', 'finished', 'nonce', 'seconds', 'train_seconds', 's_per_step', 'cpu_s_per_step', 'step_time',
            'peak_rss_gb', 'train_runtime', 'train_samples_per_second', 'train_steps_per_second', 'resumed_from',
            'upstream', 'fingerprint', '_fingerprint'}
NOT_COMPARED = re.compile(r'\.lock$|grpo/runs/|grpo/incomplete_checkpoints/|(^|/)cache-[0-9a-f]+\.arrow$')
# the lock file, TensorBoard events, checkpoints a kill tore (set aside as evidence), `datasets`' map/filter caches

def prlm_run(cfgp, spec=None):
    env = {**ENV, 'OMP_NUM_THREADS': '1'}; env.pop('PRLM_KILL_AT', None)
    if spec: env['PRLM_KILL_AT'] = spec
    return subprocess.run(PRLM + ['run', str(cfgp)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

def _drop(o):
    if isinstance(o, dict):  # peft saves `target_modules` (a set) in hash order: prlm sorts the adapter's, not the checkpoints'
        return {k: sorted(v) if k == 'target_modules' and isinstance(v, list) else _drop(v) for k, v in o.items() if k not in VOLATILE}
    if isinstance(o, list): return [_drop(v) for v in o]
    return o

def _content(run: Path, rel: str):
    "What must be equal in a file: its bytes, JSON without `VOLATILE` keys, a generation cache as {key: completion}."
    b = (run/rel).read_bytes()
    if re.match(r'(rm/cache|eval/generations)/', rel):  # append-only caches: a resumed run may append a row again
        return {tuple(v for k, v in sorted(r.items()) if k != 'completion'): r.get('completion')
                for r in map(json.loads, b.splitlines()) if r}
    if rel.endswith('.jsonl'): return [_drop(json.loads(l)) for l in b.splitlines() if l.strip()]
    if rel.endswith('.json') or rel == '.prlm-run': return _drop(json.loads(b))
    if rel.endswith('.html'):  # the report: when it was made, the stages' durations, plotly's random element ids
        b = re.sub(rb'<td>[\d.]+</td>(\s*<td>\d{4}-\d\d-\d\dT)', rb'<td>S</td>\1', b)
        b = re.sub(rb'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+00:00)?', b'T', b)
        return re.sub(rb'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', b'U', b)
    return b

def files(run: Path) -> list:
    return sorted(r for p in run.rglob('*') if p.is_file() and not NOT_COMPARED.search(r := str(p.relative_to(run))))

def differences(ref: Path, run: Path) -> list:
    a, b = files(ref), files(run)
    out = [f"only in the uninterrupted run: {f}" for f in sorted(set(a) - set(b))] + [f"only in the resumed run: {f}" for f in sorted(set(b) - set(a))]
    return out + [f"differs: {f}" for f in sorted(set(a) & set(b)) if _content(ref, f) != _content(run, f)]

def _events(record: Path, run: Path) -> list:
    "(kind, path relative to the run) of every recorded write inside the run directory."
    rows = [l.split('\t', 1) for l in record.read_text().splitlines()]
    return [(k, p[len(str(run)) + 1:]) for k, p in rows if p.startswith(str(run) + os.sep)]

def _stage_at(events: list, i: int) -> str | None:
    "The stage whose `.started` marker was written last before write `i`."
    return next((m[1] for k, p in reversed(events[:i + 1]) if k == 'rename' and (m := re.fullmatch(r'stages/(\w+)\.started', p))), None)

def _match(events: list, run: Path, spec: str) -> int | None:
    "Index of the write `spec` kills at in an uninterrupted process (the hook's rule: N-th of KIND whose absolute path holds TEXT)."
    kind, _, text = spec.partition(':'); text, _, n = text.partition('#')
    hits = [i for i, (k, p) in enumerate(events) if kind in ('any', k) and text in f"{run}/{p}"]
    return hits[int(n or 1) - 1] if len(hits) >= int(n or 1) else None

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """An uninterrupted tiny run with every write recorded, moved to `reference/` once finished: the runs to compare
    are made at the same path (`run/`), so that the paths written into their files are the same."""
    d = tmp_path_factory.mktemp('killpoints')
    cfgp, record = tiny_config(d), d/'writes.tsv'
    r = prlm_run(cfgp, f'record:{record}')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    events = _events(record, d/'run')
    (d/'run').rename(d/'reference')
    return d, events

def test_kill_points_cover_every_stage(reference):
    d, events = reference
    assert {_stage_at(events, i) for i in range(len(events))} - {None} == set(STAGES)  # every stage writes
    assert {s for s, _ in KILL_POINTS} == set(STAGES)  # and is killed in

@pytest.mark.parametrize('stage,spec', KILL_POINTS, ids=[spec for _, spec in KILL_POINTS])
def test_kill_point_is_a_write_of_its_stage(reference, stage, spec):
    d, events = reference
    i = _match(events, d/'run', spec)
    assert i is not None, f"{spec}: no such write in an uninterrupted run"
    assert _stage_at(events, i) == stage, f"{spec}: write {i} {events[i]} is in stage {_stage_at(events, i)}, not {stage}"

def test_resumed_run_equals_uninterrupted(reference):
    "Killed at every point in turn (each resume killed again at the next), then run to the end: the uninterrupted run's files."
    d, _ = reference
    cfgp, run, log = d/'config.yaml', d/'run', []
    try:
        for stage, spec in KILL_POINTS:
            r = prlm_run(cfgp, spec)
            log.append(f"--- killed at {spec} ({stage}): exit {r.returncode}\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
            assert r.returncode == -signal.SIGKILL and 'PRLM_KILL_AT: SIGKILL before' in r.stderr, '\n'.join(log)
        r = prlm_run(cfgp)
        log.append(f"--- resumed to the end: exit {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        assert r.returncode == 0, '\n'.join(log)
        diff = differences(d/'reference', run)
        assert not diff, '\n'.join(diff) + '\n' + '\n'.join(log)[-6000:]
        left = [str(p.relative_to(run)) for p in run.rglob('*') if re.fullmatch(r'\..+\.(tmp|old)|.+\.started', p.name)]
        assert not left, left  # no temporary file or folder, no stage marked as started, is left behind
    finally:
        if run.exists(): run.rename(d/'resumed')


def test_stale_tmp_files_are_removed_when_a_run_resumes(tmp_path, capsys):
    "What a kill leaves between a temporary file or folder and its rename goes when prlm next takes the run's lock; nothing else, nothing outside the run."
    from prlm.pipeline import RunDir
    run = RunDir(tmp_path/'run')
    with run.lock(): pass  # a new run directory: now prlm's
    stale = ['stages/.data.json.k2j3h4g5.tmp', 'models/.tiny_policy.ab12cd34.tmp/config.json', 'rm/.model.old/metrics.json',
             'grpo/.adapter.tmp/adapter_config.json']
    keep = ['eval/generations/rag-1/partial-1.jsonl', 'data/raw/test/tmpab12cd34', 'notes.tmp', 'stages/data.json']
    for f in stale + keep: (run.path/f).parent.mkdir(parents=True, exist_ok=True); (run.path/f).write_text('x')
    (run.path/'models/.tiny_encoder.x1y2z3w4.tmp').mkdir()  # empty, as a kill right after `mkdtemp` leaves it
    (tmp_path/'.outside.a1b2c3d4.tmp').write_text('x')
    capsys.readouterr()
    with run.lock(): pass
    assert 'removed 5 temporary file(s) an interrupted run left' in capsys.readouterr().out
    left = sorted(str(p.relative_to(run.path)) for p in run.path.rglob('*') if p.is_file() and p.name not in ('.lock', '.prlm-run'))
    assert left == sorted(keep) and not any(re.fullmatch(r'\..+\.(tmp|old)', p.name) for p in run.path.rglob('*'))
    assert (tmp_path/'.outside.a1b2c3d4.tmp').exists()
