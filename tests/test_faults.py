"""Fault injection: malformed data files, bad configs, unsafe run directories, corrupted artifacts and caches.

Every case builds its own fault and asserts the message (file, record, field or key named; what to do) or the
result (nothing written, a stage re-run, a cache miss). One tiny run is shared by the module (`base`, ~1 minute on
2 cores); destructive cases work on a `shutil.copytree` of it. The case matrix lives in `CASES` at the bottom.
"""
import contextlib, errno, fcntl, io, json, os, re, shutil, warnings
from pathlib import Path
import numpy as np, pytest, yaml

from prlm.cli import main, error_lines
from prlm.data import DataFormatError, load_lamp_files
from prlm.pipeline import ConfigError, RunDir, check_config, load_config, run_pipeline, policy_path

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(seed=0, data=dict(source='embedded', split='time', n_train=6, n_test=6),
            retrieval=dict(retriever='bm25', k=2, encoder='tiny'), policy=dict(model='tiny', max_prompt_tokens=320),
            reward_model=dict(enabled=True, encoder='tiny', max_new_tokens=8, batch_size=32, train_batch_size=8, epochs=1),
            rewards=dict(rouge=1.0, format=0.1, personalization=0.1),
            grpo=dict(preset='demo_cpu', max_steps=1, max_completion_length=8, save_steps=1, log_samples=2),
            eval=dict(systems=['rag', 'prlm', 'copy_top1'], ks=[2], retrievers=['bm25', 'dense'], profiles=['own'],
                      max_new_tokens=8, batch_size=32, n_boot=100))

def config(path, run_dir, **changes):
    "The tiny config with `changes` merged one level deep, written to `path`."
    cfg = json.loads(json.dumps(TINY)); cfg['run_dir'] = str(run_dir)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict): cfg[k].update(v)
        else: cfg[k] = v
    Path(path).write_text(yaml.safe_dump(cfg)); return Path(path)

def cli(*args):
    "(exit status, stdout, stderr) of `prlm ARGS`, in this process."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()

def tree(p):
    "{relative path: bytes} of every file under `p`."
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(Path(p).rglob('*')) if f.is_file()}

@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "One finished tiny run (all seven stages), shared by the module: never modify it, copy it."
    d = tmp_path_factory.mktemp('faults')
    cfgp = config(d/'config.yaml', d/'base')
    with contextlib.redirect_stdout(io.StringIO()): run_pipeline(load_config(cfgp))
    return d/'base', cfgp

@pytest.fixture
def copy(base, tmp_path):
    "A copy of the base run and its config (pointing at the copy)."
    src, cfgp = base
    dst = tmp_path/'run'; shutil.copytree(src, dst, symlinks=True)
    return dst, config(tmp_path/'config.yaml', dst)

# ---------------------------------------------------------------- 1. caches keyed by content
def test_model_key_follows_content_not_size(tmp_path):
    from prlm.evaluate import model_key
    d = tmp_path/'m'; d.mkdir(); (d/'config.json').write_text('{}'); (d/'model.safetensors').write_bytes(b'x' * 64)
    k = model_key(d, max_new_tokens=8)
    assert model_key(d, max_new_tokens=8) == k                      # unchanged: always a hit
    (d/'model.safetensors').write_bytes(b'y' * 64)                  # same size, other weights
    assert model_key(d, max_new_tokens=8) != k                      # never a hit
    os.utime(d/'model.safetensors', ns=(0, 0))                      # even with a forged mtime
    assert model_key(d, max_new_tokens=8) != k

def _perturb_same_size(f):
    "Rewrite a safetensors file with slightly different weights and the same header (so the same size)."
    from safetensors.torch import load_file, save_file
    t = load_file(str(f)); size = f.stat().st_size
    name = next(k for k, v in t.items() if v.is_floating_point())
    t[name] = t[name] + 0.5
    save_file(t, str(f), metadata={'format': 'pt'})
    assert f.stat().st_size == size

def test_same_size_policy_swap_regenerates(copy):
    run, cfgp = copy
    _perturb_same_size(run/'models/tiny_policy/model.safetensors')
    rc, out, err = cli('run', cfgp, '--overwrite', 'evaluate')
    assert rc == 0, err[-2000:]
    n = [int(x) for x in re.findall(r'\[evaluate\] rag: \d+ distinct prompts, (\d+) to generate', out)]
    assert n and n[0] > 0, out[-3000:]                              # before: "0 to generate" (stale completions)

def test_pairs_cache_is_per_policy_content(base):
    from prlm.evaluate import model_key
    run, cfgp = base
    pol = policy_path(load_config(cfgp), RunDir(run))
    assert [p.name for p in (run/'rm/cache').iterdir()] == [f'policy-{model_key(pol)}']

def test_dense_cache_key_follows_encoder_content(base, tmp_path):
    from prlm.retrieve import DenseRetriever
    enc = tmp_path/'enc'; shutil.copytree(base[0]/'models/tiny_encoder', enc)
    k1 = DenseRetriever(str(enc), cache_dir=False, progress=False).cache.encoder_key
    assert DenseRetriever(str(enc), cache_dir=False, progress=False).cache.encoder_key == k1
    _perturb_same_size(enc/'model.safetensors')
    assert DenseRetriever(str(enc), cache_dir=False, progress=False).cache.encoder_key != k1

def test_unusable_embedding_cache_dir_falls_back_to_memory(base, tmp_path):
    from prlm.retrieve import DenseRetriever
    (tmp_path/'file').write_text('')                                # a "cache dir" that cannot be created
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        r = DenseRetriever(str(base[0]/'models/tiny_encoder'), cache_dir=tmp_path/'file'/'emb', progress=False)
        e1 = r.embed(['one text', 'two texts']); e2 = r.embed(['three'])
    msgs = [str(x.message) for x in w if 'embedding cache' in str(x.message)]
    assert len(msgs) == 1 and 'memory only' in msgs[0] and e1.shape[0] == 2 and e2.shape[0] == 1

def test_corrupted_embedding_shard_is_skipped(base, tmp_path):
    from prlm.retrieve import DenseRetriever
    enc = str(base[0]/'models/tiny_encoder')
    r = DenseRetriever(enc, cache_dir=tmp_path, progress=False); e = r.embed(['alpha', 'beta'])
    shard = next(tmp_path.rglob('*.safetensors')); shard.write_bytes(shard.read_bytes()[:100])
    with pytest.warns(UserWarning, match='unreadable shard'): r2 = DenseRetriever(enc, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(r2.embed(['alpha', 'beta']), e, rtol=1e-5)
    assert r2.n_encoded == 2                                        # encoded again, not read from the broken shard

def test_corrupted_generation_cache_lines_are_regenerated(tmp_path):
    from prlm.evaluate import GenerationCache
    c = GenerationCache(tmp_path, 'rag', 'k'); c.add(['p1', 'p2'], ['a', 'b'])
    raw = c.path.read_bytes().splitlines()
    c.path.write_bytes(raw[0] + b'\n\xff\xfe\x00garbage\n{"prompt_hash": 1, "completion": "x"}\n')
    with pytest.warns(UserWarning, match='unreadable line'): c2 = GenerationCache(tmp_path, 'rag', 'k')
    assert c2.missing(['p1', 'p2']) == ['p2']

# ---------------------------------------------------------------- 2. run directories
@pytest.mark.parametrize('run_dir,frag', [('', 'is the current directory'), ('.', 'is the current directory'),
                                          ('/', 'is the filesystem root'), ('~', 'is the home directory')])
def test_run_dir_that_is_not_its_own_directory(tmp_path, run_dir, frag):
    cfgp = config(tmp_path/'c.yaml', run_dir)
    rc, out, err = cli('run', cfgp)
    assert rc == 2 and f'run_dir: {run_dir!r} {frag}' in err and 'what to do' in err, err
    assert not (ROOT/'stages').exists() and not (ROOT/'data'/'raw').exists()

def test_run_dir_existing_file_and_foreign_directory(tmp_path):
    (tmp_path/'afile').write_text('x')
    rc, _, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'afile'))
    assert rc == 2 and 'exists and is not a directory' in err
    foreign = tmp_path/'mine'; (foreign/'data/raw').mkdir(parents=True); (foreign/'data/raw/keep.txt').write_text('mine')
    before = tree(foreign)
    rc, _, err = cli('run', config(tmp_path/'c.yaml', foreign), '--overwrite', 'data')
    assert rc == 2 and 'holds no prlm run' in err, err
    assert tree(foreign) == before                                  # nothing written, nothing removed

def test_users_config_folder_is_not_taken_for_a_run(tmp_path):
    "experiments/foo/config.yaml with run_dir: experiments/foo: refused before anything is written; the user's file is kept."
    foo = tmp_path/'experiments'/'foo'; foo.mkdir(parents=True)
    cfgp = config(foo/'config.yaml', foo)
    mine = '# my notes\n' + cfgp.read_text(); cfgp.write_text(mine)
    (foo/'data'/'test').mkdir(parents=True); (foo/'results.json').write_text('mine')
    before = tree(foo)
    for cmd in (('run', cfgp), ('run', cfgp, '--overwrite', 'data'), ('data', cfgp, '--overwrite')):
        rc, _, err = cli(*cmd)
        assert rc == 2 and 'holds no prlm run' in err and f"{foo/'run'}" in err, err
        assert tree(foo) == before                                  # nothing written, nothing removed, comments kept

def test_new_and_empty_run_dirs_are_marked(tmp_path, base):
    from prlm.pipeline import RUN_MARKER, is_run_dir
    (tmp_path/'empty').mkdir()
    for d in (tmp_path/'empty', tmp_path/'new'):
        with RunDir(d).lock(): pass
        assert (d/RUN_MARKER).is_file() and is_run_dir(d)
    assert (base[0]/RUN_MARKER).is_file()                           # the finished run was marked when it started

def test_locked_run_dir_is_left_untouched(copy):
    run, cfgp = copy
    (run/'config.yaml').write_text('sentinel')
    with open(run/'.lock', 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)              # another prlm process holds the run
        rc, _, err = cli('run', cfgp)
    assert rc == 1 and 'in use by another prlm process' in err
    assert (run/'config.yaml').read_text() == 'sentinel'           # before: rewritten before the lock was tried

def test_clear_removes_only_what_the_stage_wrote(copy):
    run, _ = copy
    (run/'data/raw/notes.txt').write_text('mine')
    RunDir(run).clear('data')
    assert (run/'data/raw/notes.txt').read_text() == 'mine' and not (run/'data/raw/train').exists()
    with pytest.raises(RuntimeError, match='holds no prlm run'): RunDir(run/'data').clear('data')

# ---------------------------------------------------------------- 3. data
def _q5(i): return {'id': str(i), 'input': f'Generate a title for the following abstract of a paper: abstract {i}',
                    'profile': [{'id': f'{i}{j}', 'abstract': f'abs {j}', 'title': f'title {j}'} for j in range(3)]}

def _files_config(tmp_path, golds, questions=None, task='LaMP_5'):
    q = tmp_path/'q.json'; q.write_text(json.dumps([_q5(i) for i in range(4)] if questions is None else questions))
    o = tmp_path/'o.json'; o.write_text(json.dumps({'task': task, 'golds': golds}))
    files = dict(source='files', task='LaMP-5', train_questions=str(q), train_outputs=str(o), test_questions=str(q), test_outputs=str(o))
    return config(tmp_path/'c.yaml', tmp_path/'run', data=files), q, o

_CASES = ['null gold', 'list gold', 'other task', 'no questions', 'blank gold', 'null user', 'LaMP-4 questions', 'LaMP-4 as LaMP-7']

@pytest.mark.parametrize('case', _CASES)
def test_bad_data_files_name_file_record_field(tmp_path, case):
    golds = [{'id': str(i), 'output': f't {i}'} for i in range(4)]
    kw, questions = {}, [_q5(i) for i in range(4)]
    if case == 'null gold': golds[2]['output'] = None
    if case == 'list gold': golds[1]['output'] = ['t']
    if case == 'blank gold': golds[3]['output'] = '  '
    if case == 'other task': kw['task'] = 'LaMP_4'
    if case == 'no questions': questions, golds = [], []
    if case == 'null user': questions[1]['user_id'] = None
    if case.startswith('LaMP-4'):  # LaMP-4 questions; the config says LaMP-5 (outputs LaMP_5), or LaMP-7 (outputs without a task)
        questions = [dict(q, input=f'Generate a headline for the following article: text {q["id"]}',
                          profile=[{'id': it['id'], 'text': it['abstract'], 'title': it['title']} for it in q['profile']]) for q in questions]
    cfgp, q, o = _files_config(tmp_path, golds, questions=questions, **kw)
    if case == 'LaMP-4 as LaMP-7':
        c = yaml.safe_load(cfgp.read_text()); c['data']['task'] = 'LaMP-7'; cfgp.write_text(yaml.safe_dump(c))
        o.write_text(json.dumps({'golds': golds}))
    rc, _, err = cli('data', cfgp)
    expect = {'null gold': f"{o}: record '2', field 'output': expected a string, got null",
              'list gold': f"{o}: record '1', field 'output': expected a string, got list",
              'blank gold': f"{o}: record '3', field 'output': empty gold output",
              'null user': f"{q}: record '1', field 'user_id': expected a user id (a string), got null",
              'LaMP-4 questions': f"{q}: record '0', field 'input': the input starts like a LaMP-4 question",
              'LaMP-4 as LaMP-7': f"{q}: record '0', field 'input': the input starts like a LaMP-4 question",
              'other task': f"{o}: field 'task': the outputs are for task 'LaMP_4' but the questions are LaMP-5",
              'no questions': f"{q}: no questions"}[case]
    assert rc == 1 and expect in err and 'fix the data file' in err and 'Traceback' not in err, err

def test_debug_shows_the_traceback(tmp_path):
    cfgp, _, _ = _files_config(tmp_path, [{'id': str(i), 'output': None} for i in range(4)])
    with pytest.raises(DataFormatError): main(['data', str(cfgp), '--debug'])

def test_n_test_larger_than_data_is_said_once(tmp_path):
    golds = [{'id': str(i), 'output': f't {i}'} for i in range(4)]
    cfgp, _, _ = _files_config(tmp_path, golds)
    c = yaml.safe_load(cfgp.read_text()); c['data'].update(n_train=50, n_test=3); cfgp.write_text(yaml.safe_dump(c))
    rc, out, err = cli('data', cfgp)
    assert rc == 0, err
    assert out.count('data.n_train: 50 requested, but the train subset has only 4 queries: using all 4') == 1, out
    assert 'data.n_test' not in out

# ---------------------------------------------------------------- 4. validate
@pytest.mark.parametrize('changes,frag', [
    (dict(policy=dict(model='./models/missing')), 'policy.model: ./models/missing: no such model folder'),
    (dict(reward_model=dict(encoder='/nonexistent/bert')), 'reward_model.encoder: /nonexistent/bert: no such model folder'),
    (dict(policy=dict(model='nobody-xyz/not-downloaded')), "policy.model: 'nobody-xyz/not-downloaded' is not a local folder and not in the local Hugging Face cache, and HF_HUB_OFFLINE=1: it needs the network"),
    (dict(data=dict(source='lamp', task='LaMP-99')), "data.task: unknown task 'LaMP-99'"),
    (dict(rewards=dict(rouge=float('nan'))), 'rewards.rouge: Input should be a finite number'),
    (dict(rewards=dict(rouge=float('inf'))), 'rewards.rouge: Input should be a finite number'),
    (dict(grpo=dict(num_generations=0)), 'grpo.num_generations: Input should be greater than or equal to 2'),
    (dict(grpo=dict(learning_rate=float('nan'))), 'grpo.learning_rate: Input should be a finite number'),
    (dict(grpo=dict(top_p=1.5)), 'grpo.top_p: Input should be less than or equal to 1'),
    (dict(grpo=dict(lora_dropout=1.0)), 'grpo.lora_dropout: Input should be less than 1'),
    (dict(grpo=dict(max_steps=0)), 'grpo.max_steps: expected -1'),
    (dict(grpo=dict(save_steps=0)), 'grpo.save_steps: Input should be greater than or equal to 1'),
    (dict(grpo=dict(generation_batch_size=4, steps_per_generation=2)), 'set one of them, not both'),
    (dict(grpo=dict(bf16='yes')), 'grpo.bf16: expected one of True, False, auto'),
    (dict(grpo=dict(trainer_cls='no_such_module_xyz:T')), "grpo.trainer_cls: cannot find module 'no_such_module_xyz' of 'no_such_module_xyz:T' (a trainer_cls is code"),
    (dict(grpo=dict(trainer_cls='os.nope:T')), "grpo.trainer_cls: cannot find module 'os.nope'"),
    (dict(grpo=dict(trainer_cls='os.system')), "grpo.trainer_cls: expected 'module:Class'"),
    (dict(retrieval=dict(k=0)), 'retrieval.k: Input should be greater than or equal to 1 (got 0)'),
    (dict(grpo=dict(no_such_arg=1)), "grpo.no_such_arg: unknown key"),
    (dict(grpo=dict(max_stepz=1)), "grpo.max_stepz: unknown key; did you mean 'max_steps'?"),
    (dict(grpo=dict(model='x')), "grpo.model: set from policy.model, not here"),
    (dict(grpo=dict(preset='fast')), "grpo.preset: unknown preset 'fast'; known: demo_cpu, h100, paper"),
    (dict(grpo=dict(preset='h100', generation_batch_size=64)), "grpo (with preset h100): generation_batch_size, steps_per_generation: set one"),
])
def test_validate_catches(tmp_path, changes, frag):
    rc, out, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'run', **changes))
    assert rc == 2 and frag in err and 'what to do' in err, err
    assert not (tmp_path/'run').exists()

def _model_dir(d, config='{"model_type": "bert"}', tokenizer=True, weights=True):
    d.mkdir(parents=True); (d/'config.json').write_text(config)
    if tokenizer: (d/'tokenizer.json').write_text('{}')
    if weights: (d/'model.safetensors').write_bytes(b'x')
    return d

@pytest.mark.parametrize('case,frag', [
    ('empty config', 'config.json holds no model config ({})'), ('bad config', 'config.json cannot be read (JSONDecodeError)'),
    ('no config', 'has no config.json: not a model folder'), ('no tokenizer', 'has no tokenizer files (one of tokenizer.json'),
    ('no weights', 'has no weights (*.safetensors or *.bin)'), ('a file', 'is a file, not a model folder')])
@pytest.mark.parametrize('key', ['policy.model', 'reward_model.encoder'])
def test_validate_refuses_unloadable_model_folders(tmp_path, case, frag, key):
    "A model folder that `from_pretrained` would fail on later (without a path) is refused at validate, naming it."
    m = tmp_path/'m'
    if case == 'a file': m = tmp_path/'model.safetensors'; m.write_bytes(b'x')
    else: _model_dir(m, config={'empty config': '{}', 'bad config': '{"model_'}.get(case, '{"model_type": "bert"}'),
                     tokenizer=case != 'no tokenizer', weights=case != 'no weights')
    if case == 'no config': (m/'config.json').unlink()
    sec, name = key.split('.')
    rc, out, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'run', **{sec: {name: str(m)}}))
    assert rc == 2 and f"{key}: " in err and frag in err and str(m) in err and 'what to do' in err, err
    assert not (tmp_path/'run').exists()

def test_validate_accepts_a_complete_model_folder(tmp_path):
    rc, out, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'run', reward_model=dict(encoder=str(_model_dir(tmp_path/'m')))))
    assert rc == 0, err

def test_validate_refuses_a_read_only_run_dir(tmp_path, monkeypatch):
    ro = tmp_path/'ro'; ro.mkdir()
    real = os.access  # root may write anywhere: answer as a read-only disk does, for this folder only
    monkeypatch.setattr(os, 'access', lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    for cmd in ('validate', 'run'):
        rc, out, err = cli(cmd, config(tmp_path/'c.yaml', ro/'run'))
        assert rc == 2 and f"run_dir: {ro/'run'}: {ro} is not writable" in err and 'Traceback' not in err, err
    assert list(ro.iterdir()) == []

def test_validate_does_not_import_trainer_cls(tmp_path, monkeypatch):
    "Importing the module would run its code: validate only finds it, and says a trainer_cls is code."
    (tmp_path/'evil_b24.py').write_text(f"open({str(tmp_path/'ran')!r}, 'w').write('ran')\nclass T: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, out, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'run', grpo=dict(trainer_cls='evil_b24:T')))
    assert rc == 0 and not (tmp_path/'ran').exists(), out + err    # before: the module ran during validate
    assert "grpo.trainer_cls: 'evil_b24:T': a trainer_cls is code: its module is imported, and runs, at train time" in out, out

def test_validate_warns_about_partial_groups(tmp_path):
    rc, out, err = cli('validate', config(tmp_path/'c.yaml', tmp_path/'run', grpo=dict(num_generations=3)))
    assert rc == 0 and 'not a multiple of num_generations=3' in out, out + err

@pytest.mark.parametrize('case', ['write', 'named', 'rust', 'wrapped', 'read-only'])
def test_disk_full_names_the_path(tmp_path, monkeypatch, case):
    "A full (or read-only) disk during a stage: one line with the path and what to do, not 'may be a bug in prlm'."
    from safetensors import SafetensorError
    from prlm.pipeline import STAGE_FUNCS
    run = tmp_path/'run'; f = run/'data/raw/train/data-00000-of-00001.arrow'
    def boom(cfg, r):
        if case == 'write': raise OSError(errno.ENOSPC, 'No space left on device')  # what f.write() raises: no file name
        if case == 'named': raise OSError(errno.ENOSPC, 'No space left on device', str(f))
        if case == 'rust': raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28)')
        if case == 'read-only': raise OSError(errno.EROFS, 'Read-only file system', str(f))
        try: raise OSError(errno.ENOSPC, 'No space left on device')
        except OSError as e: raise RuntimeError('saving the dataset failed') from e
    monkeypatch.setitem(STAGE_FUNCS, 'data', boom)
    rc, out, err = cli('data', config(tmp_path/'c.yaml', run))
    path = f if case in ('named', 'read-only') else run
    what = 'read-only file system' if case == 'read-only' else 'no space left on device'
    assert rc == 1 and err.splitlines()[0] == f"error: {path}: {what}", err
    assert 're-run the same command to resume' in err and 'may be a bug' not in err and 'Traceback' not in err, err

def test_unexpected_errors_say_so():
    lines = error_lines(ZeroDivisionError('division by zero'))
    assert lines[0] == 'error: ZeroDivisionError: division by zero' and 'bug in prlm' in lines[1]

# ---------------------------------------------------------------- 5. artifacts verified on load
def _cut(f, keep=0.5): b = Path(f).read_bytes(); Path(f).write_bytes(b[:int(len(b) * keep)])

@pytest.mark.parametrize('stage,fault', [
    ('data', lambda r: _cut(next((r/'data/raw/test').glob('data-*.arrow')))),
    ('retrieve', lambda r: _cut(next((r/'data/train').glob('data-*.arrow')))),
    ('pairs', lambda r: shutil.rmtree(r/'rm/pairs')),
    ('rm', lambda r: _cut(r/'rm/model/model.safetensors')),
    ('grpo', lambda r: _cut(r/'grpo/adapter/adapter_model.safetensors', 0.9)),
    ('evaluate', lambda r: _cut(r/'eval/results.json')),
    ('report', lambda r: _cut(r/'report.html', 0.99)),
    ('rm', lambda r: (r/'stages/rm.json').write_text('{"stage": "rm", "finger')),
    ('rm', lambda r: (r/'rm/model/metrics.json').unlink()),
    ('grpo', lambda r: (r/'grpo/log_history.jsonl').unlink()),
    ('evaluate', lambda r: (r/'eval/predictions/prlm.json').unlink()),
    ('evaluate', lambda r: (r/'eval/predictions/rag__dense_k2.json').unlink()),
])
def test_status_reports_unusable_outputs(copy, stage, fault):
    run, cfgp = copy
    fault(run)
    rc, out, err = cli('status', cfgp)
    line = next(l for l in out.splitlines() if l.split()[:1] == [stage])
    assert rc == 0 and 'not done:' in line and str(run) in line, out
    assert sum('not done' in l for l in out.splitlines()) == 1, out  # only the broken stage; the rest follows via fingerprints

def test_run_reruns_an_unusable_stage_only(copy):
    run, cfgp = copy
    _cut(run/'eval/examples.jsonl', 0.7)
    with open(run/'eval/examples.jsonl', 'ab') as f: f.write(b'{"system": "pr')  # torn mid-line even where the cut fell on a line end
    rc, out, err = cli('run', cfgp)
    assert rc == 0, err[-2000:]
    assert 'evaluate: running again: its output is unusable' in out and 'examples.jsonl' in out, out[-3000:]
    assert 'grpo: done' in out and ' 0 to generate' in out and not re.search(r' [1-9]\d* to generate', out), out[-3000:]
    assert 'report: config or upstream changed' in out
    assert json.loads((run/'results.json').read_text())['main_table']

@pytest.mark.parametrize('stage,rel', [('evaluate', 'eval/predictions/prlm.json'), ('grpo', 'grpo/log_history.jsonl')])
def test_status_names_and_run_restores_a_missing_artifact(copy, stage, rel):
    "A deleted artifact that later stages or the report read: status names it, `run` re-runs its stage and restores it."
    run, cfgp = copy
    (run/rel).unlink()
    rc, out, err = cli('status', cfgp)
    line = next(l for l in out.splitlines() if l.split()[:1] == [stage])
    assert f"not done: {run/rel}: missing" in line, out               # before: "done", and never restored
    rc, out, err = cli('run', cfgp)
    assert rc == 0, err[-2000:]
    assert f'{stage}: running again: its output is unusable ({run/rel}: missing)' in out, out[-3000:]
    assert (run/rel).exists() and 'not done' not in cli('status', cfgp)[1]

def test_corrupted_tiny_model_is_rebuilt_identically(copy):
    run, cfgp = copy
    f = run/'models/tiny_policy/model.safetensors'; good = f.read_bytes(); _cut(f)
    with contextlib.redirect_stdout(io.StringIO()) as out: policy_path(load_config(cfgp), RunDir(run))
    assert 'rebuilding it' in out.getvalue() and f.read_bytes() == good

def test_relative_run_dir_finds_its_adapter(copy, monkeypatch):
    "A run_dir given relative to the working directory (as in configs/: runs/demo): the finished grpo stage is found."
    run, cfgp = copy
    monkeypatch.chdir(run.parent)
    c = yaml.safe_load(cfgp.read_text()); c['run_dir'] = run.name; cfgp.write_text(yaml.safe_dump(c))
    rc, out, err = cli('status', cfgp)
    assert rc == 0 and 'not done' not in out and 'grpo      done' in out, out

def test_copied_run_uses_its_own_adapter(copy, base):
    from prlm.config import _adapter_dir
    run, _ = copy
    a = _adapter_dir(RunDir(run), RunDir(run).done('grpo'))
    assert a.resolve().is_relative_to(run.resolve()) and (a/'adapter_config.json').exists()

def test_old_cwd_relative_marker_finds_the_runs_adapter(copy):
    "Markers written before the fix named the adapter relative to the working directory (runs/demo/grpo/adapter)."
    from prlm.config import _adapter_dir
    run, _ = copy
    m = dict(RunDir(run).done('grpo'), adapter=f'runs/{run.name}/grpo/adapter')
    a = _adapter_dir(RunDir(run), m)
    assert a == run/'grpo'/'adapter' and (a/'adapter_config.json').exists()
