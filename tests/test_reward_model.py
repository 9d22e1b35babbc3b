"""prlm.reward_model: pair building reuses cached generations, hard negatives use other users, bad input is named."""
import os
import numpy as np
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from datasets import Dataset
from prlm.models import tiny_policy, tiny_encoder
from prlm.retrieve import get_retriever, retrieve_dataset
from prlm.reward_model import build_pairs, train_reward_model, RewardModel, encode_rm_inputs, split_pairs, pair_problem


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
    tr, ev = split_pairs(ds, 0.2, seed=1)
    assert not set(tr['id']) & set(ev['id']) and len(tr) + len(ev) == 40 and len(ev) == 8


def test_train_rejects_wrong_head(tmp_path):
    with pytest.raises(ValueError, match='num_labels=1'):
        ds = Dataset.from_dict(dict(id=['a', 'b'], query=['q', 'q'], chosen=['x', 'y'], rejected=['z', 'w']))
        train_reward_model(ds, tmp_path / 'rm', encoder=tiny_encoder(num_labels=2), eval_frac=0.5, progress=False)


def test_score_batches_match_single(tmp_path):
    ds = Dataset.from_dict(dict(id=[f'i{i}' for i in range(8)], query=[f'query {i}' for i in range(8)],
                                chosen=[f'good {i}' for i in range(8)], rejected=[f'bad {i}' for i in range(8)]))
    train_reward_model(ds, tmp_path / 'rm', encoder=tiny_encoder(num_labels=1), epochs=1, batch_size=4, eval_frac=0.25,
                       max_length=32, progress=False)
    rm = RewardModel.load(tmp_path / 'rm', device='cpu')
    q, a = list(ds['query']) + ['a much longer query ' * 20], list(ds['chosen']) + ['x']
    full = rm.score(q, a, batch_size=3)
    single = np.array([rm.score([qq], [aa])[0] for qq, aa in zip(q, a)])
    np.testing.assert_allclose(full, single, atol=1e-5)  # padding and sorting don't change a row's score
