"""prlm.reward_model: pair building reuses cached generations, hard negatives use the shared other-user pairing, gold pairs,
held-out users, warnings, the variant comparison, bad input is named."""
import os
import numpy as np
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from datasets import Dataset
from prlm.models import tiny_policy, tiny_encoder
from prlm.retrieve import get_retriever, retrieve_dataset
from prlm.data import other_users
from prlm.reward_model import (build_pairs, train_reward_model, RewardModel, encode_rm_inputs, split_pairs, pair_problem, gold_pairs,
                               rm_warnings, compare_reward_models, RMComparison, PAIR_COLUMNS, NEGATIVES, GOLD_NEGATIVES)


def _ds(n_users=3, per_user=2):
    rows = []
    for u in range(n_users):
        prof = [dict(id=f'u{u}p{j}', text=f'user {u} package {j} does thing {j}', output=f'thing {j} tool by {u}', date=None)
                for j in range(4)]
        for q in range(per_user):
            rows.append(dict(id=f'u{u}q{q}', user_id=f'u{u}', task='debian',
                             input=f'Generate a one-line synopsis for the following Debian package description: does thing {q}',
                             query=f'does thing {q}', target=f'thing {q}', profile=prof))
    return retrieve_dataset(Dataset.from_list(rows), get_retriever('bm25'), 2)


def test_pairs_resume_from_cache(tmp_path):
    m, t = tiny_policy()
    ds = _ds()
    st1 = {}
    p1 = build_pairs(ds, m, t, negatives=('no_profile', 'other_user'), retriever=get_retriever('bm25'), max_new_tokens=4,
                     cache_dir=tmp_path, stats=st1, progress=False)
    calls = []
    orig = m.generate
    m.generate = lambda *a, **k: (calls.append(1), orig(*a, **k))[1]
    st2 = {}
    p2 = build_pairs(ds, m, t, negatives=('no_profile', 'other_user'), retriever=get_retriever('bm25'), max_new_tokens=4,
                     cache_dir=tmp_path, stats=st2, progress=False)
    assert calls == []  # everything came from the JSONL caches
    assert p1.to_list() == p2.to_list() and st1 == st2
    assert st1['queries'] == len(ds)
    for neg in ('no_profile', 'other_user'):
        assert st1['kept'][neg] + sum(st1['dropped'][neg].values()) == len(ds)
    o = p1.filter(lambda r: r['negative'] == 'other_user')
    assert all(a != b and b for a, b in zip(o['user_id'], o['other_user_id']))
    partner = dict(zip(ds['user_id'], [ds['user_id'][j] for j in other_users(ds['user_id'], 0)]))
    assert all(partner[u] == b for u, b in zip(o['user_id'], o['other_user_id']))  # the shared seeded pairing


def test_pairs_bad_input():
    m, t = tiny_policy()
    with pytest.raises(ValueError, match='two users'):
        build_pairs(_ds(n_users=1), m, t, negatives='other_user', max_new_tokens=2, progress=False)
    with pytest.raises(KeyError, match='`query`'):
        build_pairs(_ds().remove_columns('query'), m, t, progress=False)


@pytest.mark.parametrize('chosen,rejected,why', [
    ('', 'x', 'empty_chosen'), ('x', '   ', 'empty_rejected'), ('Same!', 'same', 'identical'),
    ('a b a b a b a b a b a b', 'fine answer', 'repetitive'), ('fine answer', 'ok ok ok ok ok ok ok ok', 'repetitive'),
    ('unicode ✓ title', 'other title', None)])
def test_pair_problem_matrix(chosen, rejected, why):
    assert pair_problem(chosen, rejected) == why


def test_split_is_by_query_id():
    ds = Dataset.from_dict(dict(id=[f'q{i//2}' for i in range(40)], query=['q']*40, chosen=['a']*40, rejected=['b']*40))
    tr, ev = split_pairs(ds, 0.2, seed=1, by='query')
    assert not set(tr['id']) & set(ev['id']) and len(tr) + len(ev) == 40 and len(ev) == 8
    with pytest.raises(KeyError, match='user_id'): split_pairs(ds)  # by user is the default


def test_split_by_user_keeps_heldout_users_out_of_training():
    n = 60
    ds = Dataset.from_dict(dict(id=[f'q{i}' for i in range(n)], user_id=[f'u{i % 12}' for i in range(n)],
                                other_user_id=[f'u{(i + 5) % 12}' if i % 2 else '' for i in range(n)]))
    tr, ev = split_pairs(ds, 0.25, seed=3)
    held = set(ev['user_id'])
    assert len(held) == 3 and not held & set(tr['user_id']) and not held & set(tr['other_user_id'])
    assert ev['id'] == split_pairs(ds, 0.25, seed=3)[1]['id']  # deterministic
    assert set(split_pairs(ds, heldout=['u1', 'u2'])[1]['user_id']) == {'u1', 'u2'}
    with pytest.raises(ValueError, match="'user' or 'query'"): split_pairs(ds, by='bogus')


def test_rm_warnings():
    assert rm_warnings(dict(heldout_accuracy_other_user=0.44, heldout_n_other_user=30)) == [
        "reward model: held-out accuracy on other_user negatives is 0.44 (n=30) <= 0.55: it does not separate the user's "
        "answers from answers written with another user's profile"]
    assert rm_warnings(dict(heldout_accuracy_no_profile=0.55, heldout_n_no_profile=40))[0].startswith(
        'reward model: held-out accuracy on no_profile negatives is 0.55 (n=40) <= 0.55')  # at the threshold
    assert rm_warnings(dict(heldout_accuracy_no_profile=0.56, heldout_n_no_profile=40)) == []
    w = rm_warnings(dict(heldout_accuracy_other_user=0.25, heldout_n_other_user=4))  # the old 4-pair demo
    assert len(w) == 1 and '0.25 (n=4)' in w[0] and 'too few' in w[0]
    assert rm_warnings(dict(heldout_accuracy_gold_generic=0.9, heldout_n_gold_generic=5)) == [
        "reward model: only 5 held-out pairs with gold_generic negatives (< 20): too few to tell whether it separates them "
        "(accuracy 0.90); hold out more users or build more pairs"]
    assert rm_warnings(dict(heldout_accuracy=0.5, n_heldout=50)) == [  # pairs without a negative column
        "reward model: held-out accuracy on its pairs is 0.50 (n=50) <= 0.55: it does not separate the user's answers from the rejected ones"]
    assert 'no held-out pairs' in rm_warnings(dict(n_heldout=0))[0]
    assert rm_warnings(dict(heldout_accuracy_x=0.4, heldout_n_x=30), threshold=0.3, min_pairs=10) == []


def test_gold_pairs_real_outputs():
    ds = _ds(n_users=4, per_user=2)
    partner = other_users(ds['user_id'], 0)
    g = gold_pairs(ds, 'bm25', k=2, generic={i: 'a generic synopsis' for i in ds['id']})
    assert g.column_names == PAIR_COLUMNS
    assert sorted(set(g['negative'])) == sorted(GOLD_NEGATIVES) and len(g) == 2 * len(ds)
    o = g.filter(lambda r: r['negative'] == 'gold_other_user')
    assert o['chosen'] == ds['target']  # the user's real output
    top = [ds[j]['profile'][get_retriever('bm25').retrieve(q, ds[j]['profile'], 1)[0]['index']]['output']
           for q, j in zip(ds['query'], partner)]
    assert o['rejected'] == top and o['other_user_id'] == [ds['user_id'][j] for j in partner]
    assert g.filter(lambda r: r['negative'] == 'gold_generic')['rejected'] == ['a generic synopsis'] * len(ds)
    assert set(gold_pairs(ds)['negative']) == {'gold_other_user'}  # no generic answers: no gold_generic rows
    st = {}
    gold_pairs(ds, generic={i: t for i, t in zip(ds['id'], ds['target'])}, stats=st)  # generic == target: identical
    assert st['dropped']['gold_generic'] == {'identical': len(ds)}
    with pytest.raises(KeyError, match='`target`'): gold_pairs(ds.remove_columns('target'))


def test_build_pairs_gold(tmp_path):
    m, t = tiny_policy()
    ds = _ds()
    gen, st = {}, {}
    p = build_pairs(ds, m, t, negatives='other_user', gold=True, generic=gen, retriever=get_retriever('bm25'), max_new_tokens=4,
                    cache_dir=tmp_path, stats=st, progress=False)
    assert sorted(gen) == sorted(ds['id'])  # the no-profile answers were generated for gold_generic
    assert set(st['kept']) == {'other_user', 'gold_other_user', 'gold_generic'}
    assert p.column_names == PAIR_COLUMNS and 'no_profile' not in set(p['negative'])
    assert sum(n == 'gold_other_user' for n in p['negative']) == st['kept']['gold_other_user']
    with pytest.raises(KeyError, match='`target`'): build_pairs(ds.remove_columns('target'), m, t, gold=True, progress=False)


def test_train_rejects_wrong_head(tmp_path):
    with pytest.raises(ValueError, match='num_labels=1'):
        ds = Dataset.from_dict(dict(id=list('abcd'), user_id=list('uvwx'), query=['q']*4, chosen=list('xyxy'), rejected=list('zwzw')))
        train_reward_model(ds, tmp_path / 'rm', encoder=tiny_encoder(num_labels=2), eval_frac=0.25, progress=False)


def test_score_batches_match_single(tmp_path, capsys):
    ds = Dataset.from_dict(dict(id=[f'i{i}' for i in range(8)], user_id=[f'u{i}' for i in range(8)], query=[f'query {i}' for i in range(8)],
                                chosen=[f'good {i}' for i in range(8)], rejected=[f'bad {i}' for i in range(8)]))
    train_reward_model(ds, tmp_path / 'rm', encoder=tiny_encoder(num_labels=1), epochs=1, batch_size=4, eval_frac=0.25,
                       max_length=32, progress=True, report_to='tensorboard')
    out = capsys.readouterr()
    # a calm console: no raw log dicts, no bar redraws without a terminal, one closing line; tracker logs kept with the model
    assert out.out.splitlines() == [l for l in out.out.splitlines() if l.startswith('reward model: 6 pairs x 1 epochs')] and out.out
    assert "{'loss'" not in out.out + out.err and 'it/s]' not in out.err
    assert list((tmp_path / 'rm' / 'runs').rglob('events.out.tfevents*'))
    rm = RewardModel.load(tmp_path / 'rm', device='cpu')
    q, a = list(ds['query']) + ['a much longer query ' * 20], list(ds['chosen']) + ['x']
    full = rm.score(q, a, batch_size=3)
    single = np.array([rm.score([qq], [aa])[0] for qq, aa in zip(q, a)])
    np.testing.assert_allclose(full, single, atol=1e-5)  # padding and sorting don't change a row's score


def _typed_pairs(n=32, users=8):
    rows = []
    for i in range(n):
        for neg in NEGATIVES + GOLD_NEGATIVES:
            rows.append(dict(id=f'q{i}', user_id=f'u{i % users}', negative=neg, query=f'query {i}', profile_text='zebra | violin',
                             chosen=f'tool with zebra {i}', rejected=f'tool with ledger {i}',
                             other_user_id=f'u{(i + 1) % users}' if 'other' in neg else ''))
    return Dataset.from_list(rows)


def test_train_heldout_users_all_types(tmp_path):
    pairs = _typed_pairs()
    with pytest.warns(UserWarning, match='too few'):
        m = train_reward_model(pairs, tmp_path / 'rm', encoder=tiny_encoder(num_labels=1), negatives='no_profile', heldout_users=['u0', 'u3'],
                               epochs=1, batch_size=8, max_length=24, progress=False)
    assert m['heldout_users'] == ['u0', 'u3'] and m['split_by'] == 'user' and m['negatives'] == ['no_profile']
    for neg in NEGATIVES + GOLD_NEGATIVES:  # trained on one type, measured on every type of the held-out users
        assert m[f'heldout_n_{neg}'] == 8 and 0 <= m[f'heldout_accuracy_{neg}'] <= 1
    # the training pairs: no_profile of the other users, minus none (no_profile has no other user)
    assert m['n_train'] == 24 and m['warnings'] == rm_warnings(m)
    # a cached model for other held-out users is not reused
    m2 = train_reward_model(pairs, tmp_path / 'rm', encoder=tiny_encoder(num_labels=1), negatives='other_user', heldout_users=['u1'],
                            epochs=1, batch_size=8, max_length=24, progress=False)
    assert m2['heldout_users'] == ['u1'] and m2['n_train'] == 32 - 4 - 4  # u1's pairs and u0's (whose other user is u1)


def test_compare_same_heldout_pairs(tmp_path):
    pairs = _typed_pairs()
    cmp = compare_reward_models(pairs, tmp_path, ['paper', 'gold', 'all'], encoder=tiny_encoder(num_labels=1), eval_frac=0.25,
                                epochs=1, batch_size=8, max_length=24)
    df = cmp.df
    assert len(df) == 3 * 4 and set(df['variant']) == {'paper', 'gold', 'all'}
    assert (df.groupby('negative')['n'].nunique() == 1).all()  # every variant: the same held-out pairs
    held = cmp.info['heldout_users']
    lent = 4 * sum(f'u{(u + 1) % 8}' in held and f'u{u}' not in held for u in range(8))  # pairs whose other user is held out
    assert df.groupby('variant')['n_train'].first().to_dict() == {'paper': 24, 'gold': 2 * 24 - lent, 'all': 4 * 24 - 2 * lent}
    saved = RMComparison.load(tmp_path / 'comparison.json')
    assert saved.rows == cmp.rows and len(saved.info['heldout_users']) == 2
    assert '| paper |' in cmp._repr_markdown_() and cmp.best('no_profile')[0] in {'paper', 'gold', 'all'}
    assert list(cmp.pivot().index) == ['paper', 'gold', 'all']
    skip = compare_reward_models(pairs.filter(lambda r: r['negative'] == 'no_profile'), tmp_path / 's', ['paper', 'gold'],
                                 encoder=tiny_encoder(num_labels=1), epochs=1, batch_size=8, max_length=24)
    assert set(skip.df['variant']) == {'paper'} and 'gold' in skip.info['skipped']
