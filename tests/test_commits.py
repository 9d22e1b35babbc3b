"""`prlm commits` and the `commits` task end to end, on git repositories the tests make (no shared data needed).

- the command builds LaMP-layout files (gzipped) from a toy history: merges, reverts, bots and body-less commits dropped,
  `.mailmap` applied, no author name or address in any file, byte-identical on a second build;
- every profile item is strictly older than its query (and than `--gap-days` before it);
- a folder that is not a repository is one clear error line, and nothing is written;
- `data.source: files` with `task: commits` runs the whole pipeline on the built files (tiny models) and measures headroom.
"""
import gzip, json, subprocess
from pathlib import Path
import pytest
from prlm.commits import toy_repo, git_log, _commit
from test_pipeline import prlm, tiny_config

def _load(p): return json.loads(gzip.decompress(Path(p).read_bytes()))

@pytest.fixture(scope='module')
def repo(tmp_path_factory):
    r = toy_repo(tmp_path_factory.mktemp('git')/'toy')
    for d in range(1, 7): _commit(r, ('Cy', 'cy@example.org'), d + 25, f'grep: speed {d}', f'Make grep faster, part {d}.', file='cy.txt')
    return r

def test_cli_builds_lamp_files(repo, tmp_path):
    r = prlm('commits', repo, tmp_path/'a', '--min-profile', '4')
    assert r.returncode == 0, r.stderr
    assert '3 users' in r.stdout and '-> ' in r.stdout
    st = json.loads((tmp_path/'a'/'stats.json').read_text())
    assert st['dropped'] == {'merge': 1, 'revert': 1, 'bot': 1, 'empty': 1} and st['dev'] == 3
    q, o = _load(tmp_path/'a'/'dev_questions.json.gz'), _load(tmp_path/'a'/'dev_outputs.json.gz')
    assert [g['id'] for g in o['golds']] == [x['id'] for x in q] and 'task' not in o
    assert all(x['input'].startswith('Generate a one-line subject for the following commit description: ') for x in q)
    blob = b''.join(gzip.decompress(p.read_bytes()) for p in (tmp_path/'a').glob('*.gz'))
    for s in (b'Ann', b'Bob', b'Cy', b'@example', b'@old.example', b'Signed-off-by', b'Reviewed-by', b'dependabot', b'Revert'):
        assert s not in blob, s
    assert prlm('commits', repo, tmp_path/'b', '--min-profile', '4').returncode == 0
    for f in (tmp_path/'a').iterdir(): assert f.read_bytes() == (tmp_path/'b'/f.name).read_bytes(), f.name

@pytest.mark.parametrize('gap', [0, 2, 20])
def test_no_future_item_in_any_profile(repo, tmp_path, gap):
    assert prlm('commits', repo, tmp_path, '--min-profile', '1', '--gap-days', gap).returncode == 0
    when = {c.hash[:12]: c.time for c in git_log(repo)}
    n = 0
    for split in ('train', 'dev'):
        for x in _load(tmp_path/f'{split}_questions.json.gz'):
            t = when[x['id'].split('/')[1]]
            assert all(when[it['id']] < t - gap * 86400 for it in x['profile']), x['id']
            assert [it['date'] for it in x['profile']] == sorted((it['date'] for it in x['profile']), reverse=True)
            n += 1
    assert n > 0

def test_dev_is_latest_and_train_before_it(repo, tmp_path):
    assert prlm('commits', repo, tmp_path, '--min-profile', '1', '--n-train', '2').returncode == 0
    when = {c.hash[:12]: c.time for c in git_log(repo)}
    dev = {x['user_id']: when[x['id'].split('/')[1]] for x in _load(tmp_path/'dev_questions.json.gz')}
    train = _load(tmp_path/'train_questions.json.gz')
    assert train and all(when[x['id'].split('/')[1]] < dev[x['user_id']] for x in train)
    assert max(sum(x['user_id'] == u for x in train) for u in dev) == 2

def test_not_a_repository(tmp_path):
    (tmp_path/'plain').mkdir()
    r = prlm('commits', tmp_path/'plain', tmp_path/'out')
    assert r.returncode == 1 and 'not a git repository' in r.stderr and str(tmp_path/'plain') in r.stderr
    assert not (tmp_path/'out').exists()

@pytest.mark.slow
def test_pipeline_runs_on_commit_files(repo, tmp_path):
    assert prlm('commits', repo, tmp_path/'data', '--min-profile', '3').returncode == 0
    assert prlm('commits', repo, tmp_path/'gap', '--min-profile', '2', '--gap-days', '2').returncode == 0
    d, g = tmp_path/'data', tmp_path/'gap'
    cfg = tiny_config(tmp_path, data=dict(source='files', task='commits', n_train=None, n_test=None,
                                          train_questions=str(d/'train_questions.json.gz'), train_outputs=str(d/'train_outputs.json.gz'),
                                          test_questions=str(d/'dev_questions.json.gz'), test_outputs=str(d/'dev_outputs.json.gz')),
                      eval=dict(ks=[2], retrievers=['bm25'], extra_tests={'gap2': dict(questions=str(g/'dev_questions.json.gz'),
                                outputs=str(g/'dev_outputs.json.gz'), systems=['rag', 'prlm', 'copy_top1'])}))
    r = prlm('run', cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'run'/'results.json').read_text())
    assert res['headroom']['n'] == 3
    x = res['extra_tests']['gap2']  # the robustness set: scored with the trained adapter, own / other / none
    assert {r['system'] for r in x['main_table']} == {'rag', 'prlm', 'copy_top1'} and x['headroom']['n'] == 3
    assert 'extra test sets' in r.stdout and 'gap2' in r.stdout
    ex = [json.loads(l) for l in (tmp_path/'run'/'eval'/'examples.jsonl').read_text().splitlines()]
    assert {e.get('task', 'commits') for e in ex} == {'commits'} and len(ex) > 0

def test_extra_test_files_are_checked_by_validate(repo, tmp_path):
    cfg = tiny_config(tmp_path, eval=dict(extra_tests={'gap30': dict(questions=str(tmp_path/'nope_q.json.gz'), outputs=str(tmp_path/'nope_o.json.gz'),
                                                                      systems=['prlm', 'gpt5'])}))
    r = prlm('validate', cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    for s in ('eval.extra_tests.gap30.questions: file not found', 'eval.extra_tests.gap30.outputs: file not found',
              "eval.extra_tests.gap30.systems.1: 'gpt5' is not one of eval.systems"):
        assert s in r.stderr, r.stderr
