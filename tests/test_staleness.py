"""Every input is in its stage's fingerprint by content, and `prlm status` names why a stage is out of date.

Data files edited in place (same size, same mtime), the embedded model's source or converting library changed, a
marker written before markers kept their parts. Each case builds its own tiny run (data and retrieve only, tiny
models, four LaMP-5 queries written here) or works on fake files; nothing is timed.
"""
import contextlib, io, json, os
from pathlib import Path
import pytest, yaml

from prlm.cli import main

def _q(i): return {'id': str(i), 'input': f'Generate a title for the following abstract of a paper: abstract {i}',
                   'profile': [{'id': f'{i}{j}', 'abstract': f'abs {j}', 'title': f'title {j}'} for j in range(3)]}

def files_run(tmp_path, **changes):
    "A config of LaMP-5 files written here (4 queries), tiny models; `changes` replace whole sections."
    q, o = tmp_path/'q.json', tmp_path/'o.json'
    q.write_text(json.dumps([_q(i) for i in range(4)]))
    o.write_text(json.dumps({'task': 'LaMP_5', 'golds': [{'id': str(i), 'output': f't {i}'} for i in range(4)]}))
    cfg = dict(run_dir=str(tmp_path/'run'), seed=0,
               data=dict(source='files', task='LaMP-5', train_questions=str(q), train_outputs=str(o), test_questions=str(q), test_outputs=str(o)),
               retrieval=dict(retriever='bm25', k=2, encoder='tiny'), policy=dict(model='tiny', max_prompt_tokens=320),
               reward_model=dict(encoder='tiny'), eval=dict(retrievers=['bm25']), **changes)
    (tmp_path/'c.yaml').write_text(yaml.safe_dump(cfg))
    return tmp_path/'c.yaml', tmp_path/'run', o

def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()

def status(cfgp)->dict:
    "{stage: its line} of `prlm status`."
    rc, out, err = cli('status', cfgp)
    assert rc == 0, err
    return {l.split()[0]: l for l in out.splitlines() if l.startswith('  ')}

def edit_in_place(f:Path, old:bytes, new:bytes):
    "Replace `old` by `new` (same length) in `f`, keeping its size and mtime."
    st, b = f.stat(), f.read_bytes()
    assert len(old) == len(new) and old in b
    f.write_bytes(b.replace(old, new)); os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns

# ---------------------------------------------------------------- data files
def test_data_file_edited_in_place_reruns_data_and_downstream(tmp_path):
    from datasets import load_from_disk
    cfgp, run, o = files_run(tmp_path)
    rc, out, err = cli('run', cfgp, '--until', 'retrieve')
    assert rc == 0, err[-2000:]
    assert 'out of date' not in ''.join(status(cfgp).values())
    edit_in_place(o, b'"t 1"', b'"u 1"')                             # a gold fixed in place after the data stage
    st = status(cfgp)
    assert 'out of date: data files changed (o.json)' in st['data'], st
    assert "out of date: upstream stage 'data' is out of date" in st['retrieve'], st
    rc, out, err = cli('run', cfgp, '--until', 'retrieve')
    assert rc == 0, err[-2000:]
    assert '[1/7] data: config or upstream changed: data files changed (o.json)' in out, out
    assert "[2/7] retrieve: config or upstream changed: upstream stage 'data' re-ran" in out, out
    targets = dict(zip(*[load_from_disk(str(run/'data/raw/test'))[c] for c in ('id', 'target')]))
    assert targets['1'] == 'u 1'                                     # before: "data: done, skipped", old golds kept
    assert 'out of date' not in ''.join(status(cfgp).values())
    rc, out, err = cli('run', cfgp, '--until', 'retrieve')
    assert 'data: done' in out and 'retrieve: done' in out

def test_marker_from_before_content_fingerprints_is_still_done(tmp_path):
    "A run finished before markers kept their parts (and content) is not re-run by an upgrade of prlm."
    from prlm.pipeline import RunDir, _digest, _CONTENT_PARTS, fingerprint_parts, load_config
    cfgp, run, o = files_run(tmp_path)
    assert cli('run', cfgp, '--until', 'data')[0] == 0
    m = json.loads((run/'stages/data.json').read_text())
    parts = fingerprint_parts(load_config(cfgp), RunDir(run), 'data')
    old = {k: v for k, v in m.items() if k != 'parts'}
    old['fingerprint'] = _digest({k: v for k, v in parts.items() if k not in _CONTENT_PARTS})  # as prlm wrote it before
    (run/'stages/data.json').write_text(json.dumps(old))
    assert 'out of date' not in status(cfgp)['data']
    rc, out, err = cli('run', cfgp, '--until', 'data')
    assert rc == 0 and '[1/7] data: done' in out, out

def test_config_section_change_is_named(tmp_path):
    cfgp, run, o = files_run(tmp_path)
    assert cli('run', cfgp, '--until', 'retrieve')[0] == 0
    c = yaml.safe_load(cfgp.read_text()); c['retrieval']['k'] = 1; cfgp.write_text(yaml.safe_dump(c))
    st = status(cfgp)
    assert "out of date: config section 'retrieval' changed" in st['retrieve'] and 'out of date' not in st['data'], st

# ---------------------------------------------------------------- the embedded model
def test_embedded_policy_change_marks_its_stages_out_of_date(tmp_path, monkeypatch):
    "policy.model: embedded, its GGUF (or transformers) changed: every stage using the policy, and what follows, is out of date."
    import prlm.config, prlm.stages  # patched where they are looked up: the stages call policy_path, the fingerprints _embedded_source
    cfgp, run, o = files_run(tmp_path)
    tiny = prlm.config.policy_path(prlm.config.load_config(cfgp), prlm.config.RunDir(tmp_path/'elsewhere'))
    used = []  # a patch of a name nothing looks up would pass silently: the stage must have called this one
    monkeypatch.setattr(prlm.stages, 'policy_path', lambda cfg, run: used.append(run) or tiny)  # 'embedded' loads the tiny model: no conversion here
    src = dict(sha1='a' * 40, transformers='5.0.0', gguf_lib='0.1')
    monkeypatch.setattr(prlm.config, '_embedded_source', lambda which: dict(src) if which == 'policy' else {'digest': 'e'})
    c = yaml.safe_load(cfgp.read_text()); c['policy']['model'] = 'embedded'; cfgp.write_text(yaml.safe_dump(c))
    rc, out, err = cli('run', cfgp, '--until', 'retrieve')
    assert rc == 0 and used, err[-2000:]
    assert 'out of date' not in ''.join(status(cfgp).values())
    src['sha1'] = 'b' * 40                                           # the GGUF changed in place
    st = status(cfgp)
    assert 'out of date' not in st['data'] and 'the embedded model changed (policy.model' in st['retrieve'], st
    src['sha1'] = 'a' * 40; src['transformers'] = '5.1.0'            # or a new transformers converts it
    assert 'the embedded model changed (policy.model' in status(cfgp)['retrieve']

def _fake_gguf(monkeypatch, tmp_path):
    "embedded_gguf() -> a small file here; the conversion copies its bytes (and counts its runs)."
    from prlm import models
    g = tmp_path/'pkg'/models.SMOLLM2_GGUF; g.parent.mkdir(); g.write_bytes(b'weights-1' * 10)
    monkeypatch.setattr(models, 'embedded_gguf', lambda: g)
    builds = []
    def convert(out): builds.append(1); (Path(out)/'model.bin').write_bytes(g.read_bytes())
    monkeypatch.setattr(models, '_convert_smollm2', convert)
    return g, builds

def test_embedded_policy_rebuilt_when_gguf_changes_in_place(tmp_path, monkeypatch):
    from prlm import models
    g, builds = _fake_gguf(monkeypatch, tmp_path)
    p = models.embedded_policy_path(cache_dir=tmp_path/'cache')
    assert len(builds) == 1 and json.loads((p/'prlm_source.json').read_text())['size'] == g.stat().st_size
    assert models.embedded_policy_path(cache_dir=tmp_path/'cache') == p and len(builds) == 1  # unchanged: reused
    edit_in_place(g, b'weights-1', b'weights-2')                     # same size, same mtime, other content
    models.embedded_policy_path(cache_dir=tmp_path/'cache')
    assert len(builds) == 2 and (p/'model.bin').read_bytes() == g.read_bytes()  # before: the old conversion was reused

def test_embedded_policy_rebuilt_for_another_transformers(tmp_path, monkeypatch):
    from prlm import models
    g, builds = _fake_gguf(monkeypatch, tmp_path)
    p = models.embedded_policy_path(cache_dir=tmp_path/'cache')
    m = json.loads((p/'prlm_source.json').read_text()); m['transformers'] = '4.0.0'
    (p/'prlm_source.json').write_text(json.dumps(m))                 # converted by another transformers
    models.embedded_policy_path(cache_dir=tmp_path/'cache')
    assert len(builds) == 2 and json.loads((p/'prlm_source.json').read_text())['transformers'] != '4.0.0'

def test_embedded_policy_never_replaces_a_folder_prlm_did_not_make(tmp_path, monkeypatch):
    from prlm import models
    g, builds = _fake_gguf(monkeypatch, tmp_path)
    mine = tmp_path/'cache'/'models'/'smollm2-135m-instruct'; mine.mkdir(parents=True); (mine/'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='prlm did not make it'): models.embedded_policy_path(cache_dir=tmp_path/'cache')
    assert (mine/'notes.txt').read_text() == 'mine' and not builds
