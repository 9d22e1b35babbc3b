"""Tests of `prlm.evaluate`'s personalization ablation, items-in-prompt records and answer health.

One tiny run (a random tiny policy plus an untrained LoRA adapter, 6 embedded queries of 6 users, bm25 with k in
(1, 2), 8 new tokens) checks that:
- every row and example says whose profile it used (`own`, `other`, `none`); only the main cell has other/none, and
  only for the systems that use a profile;
- `other` never uses the query user's own profile, and the swapped dataset is saved for the inspectors;
- the ids of the items in each prompt come from the right profile, and the rows' items distribution matches;
- `personalization()` has both contrasts per system and metric, each delta inside its CI;
- health shares are in [0, 1] and agree with the per-example flags;
- a results.json written before the ablation (no `profile`) loads as 'own'.
"""
import json
from pathlib import Path
import numpy as np, pytest
from datasets import load_from_disk
from prlm.data import load_embedded
from prlm.evaluate import (EvalGrid, EvalResults, HEALTH_FLAGS, PROFILES, answer_health, evaluate_systems, load_results,
                           health_shares, items_hist)

SYSTEMS = ('zero_shot', 'rag', 'reason', 'prlm', 'copy_top1', 'first_words')
ABLATED = ('rag', 'reason', 'prlm', 'copy_top1')  # the systems that use a profile
MAIN = ('bm25', 2)

@pytest.fixture(scope='module')
def test_ds():
    ds = load_embedded('time', 'dev').select(range(6))
    assert len(set(ds['user_id'])) == 6
    return ds

@pytest.fixture(scope='module')
def run(tmp_path_factory, test_ds):
    from peft import LoraConfig, get_peft_model
    from prlm.models import tiny_policy
    d = tmp_path_factory.mktemp('eval')
    m, t = tiny_policy(); m.save_pretrained(d/'tiny'); t.save_pretrained(d/'tiny')
    get_peft_model(m, LoraConfig(r=2, target_modules=['q_proj', 'v_proj'])).save_pretrained(d/'adapter')
    res = evaluate_systems(test_ds, d/'eval', policy=str(d/'tiny'), adapter=str(d/'adapter'), systems=SYSTEMS,
                           grid=EvalGrid(*MAIN, ks=(1, 2), retrievers=('bm25',)),
                           gen_kw=dict(max_new_tokens=8, batch_size=16), n_boot=200, verbose=False)
    return res, d/'eval'

def at_main(rows): return [r for r in rows if (r['retriever'], r['k']) == MAIN]

@pytest.mark.slow
def test_rows_and_examples_carry_profile(run, test_ds):
    res, _ = run
    assert all(r['profile'] in PROFILES for r in res.rows + res.examples)
    main = {(r['system'], r['profile']) for r in at_main(res.rows)}
    assert main == {(s, 'own') for s in SYSTEMS} | {(s, p) for s in ABLATED for p in ('other', 'none')}
    assert {r['profile'] for r in res.rows if (r['retriever'], r['k']) != MAIN} == {'own'}  # the sweeps stay own
    assert len(res.examples) == len(res.rows) * len(test_ds)
    assert all(e['completion'] is not None for e in res.examples if e['system'] in ('zero_shot', 'rag', 'reason', 'prlm'))
    # the old views read the own rows only
    assert set(res.table().profile) == {'own'} and set(res.main_table().profile) == {'own'}
    assert sorted(res.main_table().system) == sorted(SYSTEMS)
    assert set(res.deltas().baseline) == set(SYSTEMS) - {'prlm'}

@pytest.mark.slow
def test_other_is_another_users_profile(run, test_ds):
    res, out = run
    users = dict(zip(test_ds['id'], test_ds['user_id']))
    ex = {p: [e for e in res.examples if e['profile'] == p] for p in PROFILES}
    assert ex['other'] and all(e['profile_user_id'] not in (None, users[e['id']]) for e in ex['other'])
    assert all(e['profile_user_id'] == users[e['id']] for e in ex['own'])
    assert all(e['profile_user_id'] is None and e['prompt_items'] == 0 and e['prompt_item_ids'] == [] for e in ex['none'])
    sw = load_from_disk(str(out/'data'/'test_other'))
    assert sw['id'] == test_ds['id'] and sw['target'] == test_ds['target']
    assert all(a != b for a, b in zip(sw['user_id'], sw['profile_user_id']))
    other_of = dict(zip(sw['id'], sw['profile_user_id']))
    assert all(e['profile_user_id'] == other_of[e['id']] for e in ex['other'])
    # the other profile's items are the partner user's, which the query user does not have
    own_ids = {r['id']: {str(it['id']) for it in r['profile']} for r in test_ds}
    sw_ids = {r['id']: {str(it['id']) for it in r['profile']} for r in sw}
    for e in ex['other']:
        assert set(e['prompt_item_ids']) <= sw_ids[e['id']]
    assert any(set(e['prompt_item_ids']) - own_ids[e['id']] for e in ex['other'])
    assert (out/'predictions'/'rag__bm25_k2__other.json').exists() and (out/'predictions'/'rag__bm25_k2__none.json').exists()

@pytest.mark.slow
def test_items_in_prompt(run, test_ds):
    res, _ = run
    own_ids = {r['id']: {str(it['id']) for it in r['profile']} for r in test_ds}
    for e in res.examples:
        assert len(e['prompt_item_ids']) == e['prompt_items']
        if e['system'] in ('zero_shot', 'first_words'): assert e['prompt_items'] == 0
        if e['system'] == 'copy_top1': assert e['prompt_items'] == (0 if e['profile'] == 'none' else 1)
        assert e['prompt_items'] <= e['k']
        if e['profile'] == 'own': assert set(e['prompt_item_ids']) <= own_ids[e['id']]
    for r in res.rows:
        ns = [e['prompt_items'] for e in res.examples if all(e[c] == r[c] for c in ('system', 'retriever', 'k', 'profile'))]
        assert r['items_hist'] == items_hist(ns) and sum(r['items_hist'].values()) == r['n']
        assert r['items_mean'] == pytest.approx(np.mean(ns))

@pytest.mark.slow
def test_no_profile_prompts_are_zero_shot(run):
    res, _ = run
    comp = lambda s, p: {e['id']: e['completion'] for e in res.examples if (e['system'], e['profile']) == (s, p) and (e['retriever'], e['k']) == MAIN}
    assert comp('rag', 'none') == comp('zero_shot', 'own')  # the same prompt on the same model: one generation, shared

@pytest.mark.slow
def test_personalization(run, test_ds):
    res, _ = run
    pz = res.personalization()
    assert set(zip(pz.system, pz.metric, pz.contrast)) == {(s, m, c) for s in ABLATED for m in ('rouge-1', 'rouge-L')
                                                           for c in ('own-other', 'own-none')}
    assert (pz.n == len(test_ds)).all()
    assert ((pz.lo <= pz.delta + 1e-9) & (pz.delta <= pz.hi + 1e-9)).all()
    assert np.allclose(pz.delta, pz.own - pz.ablated)
    assert (pz.significant == ((pz.lo > 0) | (pz.hi < 0))).all()
    fig = res.fig_personalization()
    assert [t.name for t in fig.data] == list(PROFILES) and list(fig.data[0].x) == list(ABLATED)
    assert 'Personalization' in res._repr_html_() and 'Answer health' in res._repr_html_()

@pytest.mark.slow
def test_health(run):
    res, _ = run
    h = res.health()
    assert list(h.columns) == ['system', 'retriever', 'k', 'profile', 'n', *HEALTH_FLAGS, 'items_mean']
    assert len(h) == len(res.rows)
    assert ((h[list(HEALTH_FLAGS)] >= 0) & (h[list(HEALTH_FLAGS)] <= 1)).all().all()
    for r in res.rows:
        fl = [e['flags'] for e in res.examples if all(e[c] == r[c] for c in ('system', 'retriever', 'k', 'profile'))]
        assert r['health'] == health_shares([{f: f in x for f in HEALTH_FLAGS} for x in fl])
    m = h.set_index(['system', 'profile']).query("retriever == 'bm25' and k == 2")
    assert m.loc[('copy_top1', 'none'), 'empty'] == 1.0 and m.loc[('first_words', 'own'), 'query_copy'] == 1.0

@pytest.mark.slow
def test_old_results_load_as_own(run, tmp_path):
    res, out = run
    new = ('profile', 'items_mean', 'items_hist', 'health', 'prompt_items', 'prompt_item_ids', 'profile_user_id', 'flags')
    strip = lambda d: {k: v for k, v in d.items() if k not in new}
    meta = json.loads((out/'results.json').read_text())
    meta['rows'] = [strip(r) for r in meta['rows'] if r['profile'] == 'own']
    (tmp_path/'results.json').write_text(json.dumps(meta))
    ex = [strip(json.loads(l)) for l in (out/'examples.jsonl').read_text().splitlines() if json.loads(l)['profile'] == 'own']
    (tmp_path/'examples.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in ex))
    old = load_results(tmp_path)
    assert {r['profile'] for r in old.rows + old.examples} == {'own'}
    cols = ['system', 'retriever', 'k', 'n', 'rouge-1', 'rouge-1_lo', 'rouge-1_hi', 'rouge-L', 'rouge-L_lo', 'rouge-L_hi']
    assert old.main_table()[cols].equals(res.main_table()[cols])
    assert old.deltas().equals(res.deltas())
    assert old.personalization().empty and old.health()[list(HEALTH_FLAGS)].isna().all().all()
    assert 'Main setting' in old._repr_html_() and 'Personalization' not in old._repr_html_()
    # a directly built EvalResults without `profile` reads its rows as own too
    assert len(EvalResults(rows=meta['rows'], main=meta['main']).table()) == len(meta['rows'])

def test_single_user_skips_other(test_ds, tmp_path):
    one = test_ds.map(lambda e: dict(user_id='u0'))
    with pytest.warns(UserWarning, match='other'):
        res = evaluate_systems(one, tmp_path, policy=None, systems=('copy_top1',), grid=EvalGrid('bm25', 2, ks=(), retrievers=()),
                               n_boot=50, verbose=False)
    assert [r['profile'] for r in res.rows] == ['own', 'none']

def test_answer_health_literal():
    fl = answer_health(['', 'your answer', 'A tiny library to parse YAML', 'yaml helpers.', 'fast YAML'],
                       queries=['A tiny library to parse YAML files'] * 5, items_outputs=[['YAML helpers']] * 5)
    assert [[f for f in HEALTH_FLAGS if d[f]] for d in fl] == [['empty', 'not_well_formed'], ['template_copy'], ['query_copy'],
                                                               ['profile_copy'], []]
    pre = 'Request: name this package.\n<think>'
    fl = answer_health(['resize photos', 'resize photos'], ['ok.</think><answer>resize photos</answer>', 'resize photos'],
                       [pre, pre], reasoning=True)
    assert [d['not_well_formed'] for d in fl] == [False, True]


def test_saved_results_round_trip_and_bad_lines(tmp_path):
    "EvalResults.save writes atomically (no temp files left); load names a bad line's file and line, and a missing examples.jsonl."
    res = EvalResults(rows=[dict(system='rag', retriever='bm25', k=4, profile='own', n=1, **{'rouge-L': .5})],
                      examples=[dict(system='rag', retriever='bm25', k=4, profile='own', id='q1', **{'rouge-L': .5})],
                      main=dict(retriever='bm25', k=4), reference='rag')
    res.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['examples.jsonl', 'results.json']
    assert EvalResults.load(tmp_path).examples == res.examples and load_results(tmp_path).rows == res.rows
    with open(tmp_path/'examples.jsonl', 'a') as f: f.write('{"torn\n')
    with pytest.raises(ValueError, match=r'examples.jsonl: line 2'): load_results(tmp_path)
    (tmp_path/'examples.jsonl').unlink()
    with pytest.raises(FileNotFoundError, match='examples.jsonl'): load_results(tmp_path)

