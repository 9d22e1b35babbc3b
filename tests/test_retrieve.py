"Tests of prlm.retrieve and prlm.bm25_fast that do not fit the notebooks: cache reuse, property tests, bad input, exactness vs rank_bm25."
import os, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, pytest, datasets
from hypothesis import given, settings, strategies as st, HealthCheck
from rank_bm25 import BM25Okapi
from prlm.retrieve import (get_retriever, retrieve_dataset, retrieved_items, item_text, DenseRetriever, RETRIEVERS, norm_text,
                           bm25_exact, bm25_engine)
from prlm.bm25_fast import _split_arrow, _count_terms, numba, FAST_ENGINES


@pytest.fixture(scope='module')
def tiny():
    from prlm.models import tiny_encoder
    return tiny_encoder(seed=0)


def _counting(model):
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    return calls


def _items(texts): return [dict(id=str(i), text=t, output='', date=None) for i, t in enumerate(texts)]


def test_dense_cache_second_pass_never_calls_model(tiny, tmp_path):
    model, tok = tiny
    calls = _counting(model)
    prof = _items(['the first item', 'a second one', 'third: unicode café 名前', '', 'the first item'])
    r1 = DenseRetriever(model=model, tokenizer=tok, encoder='tiny-seed0', cache_dir=tmp_path, progress=False)
    res1 = r1.retrieve_batch(['query one', 'query two'], [prof, prof[:2]], k=3)
    assert len(calls) > 0 and r1.n_encoded == 6        # 4 distinct item texts + 2 queries ('' counts once)
    n = len(calls)
    r2 = DenseRetriever(model=model, tokenizer=tok, encoder='tiny-seed0', cache_dir=tmp_path, progress=False)
    res2 = r2.retrieve_batch(['query one', 'query two'], [prof, prof[:2]], k=3)
    assert len(calls) == n and r2.n_encoded == 0       # everything came from the disk cache
    assert res1 == res2
    # another encoder key does not reuse those embeddings
    r3 = DenseRetriever(model=model, tokenizer=tok, encoder='tiny-seed0', pooling='cls', cache_dir=tmp_path, progress=False)
    r3.retrieve('query one', prof, k=1)
    assert r3.n_encoded > 0


def test_dense_cache_shards_merge(tiny, tmp_path):
    model, tok = tiny
    for i in range(5):
        DenseRetriever(model=model, tokenizer=tok, encoder='t', cache_dir=tmp_path, progress=False).embed([f'text {i}'])
    from prlm.retrieve import EmbeddingCache
    root = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(list(root.glob('*.safetensors'))) == 5
    c = EmbeddingCache(root, 't|mean|norm=True|max=512', merge_above=2)
    assert len(c) == 5 and len(list(root.glob('*.safetensors'))) == 1
    assert not list(root.glob('*.tmp'))


def test_dense_embeddings_normalised_and_pooling(tiny):
    model, tok = tiny
    r = DenseRetriever(model=model, tokenizer=tok, encoder='t', cache_dir=False, progress=False)
    e = r.embed(['hello world', 'another text'])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, rtol=1e-5)
    rc = DenseRetriever(model=model, tokenizer=tok, encoder='t', pooling='cls', cache_dir=False, progress=False)
    assert not np.allclose(rc.embed(['hello world']), e[:1])
    with pytest.raises(ValueError, match='pooling'): DenseRetriever(model=model, tokenizer=tok, encoder='t', pooling='max', cache_dir=False)


texts_st = st.lists(st.sampled_from(list('abcde ') + ['é', '名', '\u3000', '\n', 'the ']), max_size=30).map(''.join)
profile_st = st.lists(texts_st, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=profile_st, query=texts_st, k=st.integers(0, 30), name=st.sampled_from(['bm25', 'recency', 'random', 'none']))
def test_result_shape_properties(profile, query, k, name):
    prof = _items(profile)
    res = get_retriever(name).retrieve(query, prof, k=k, qid='q')
    idx = [r['index'] for r in res]
    assert len(set(idx)) == len(idx)
    assert all(0 <= i < len(prof) for i in idx)
    assert len(res) == (0 if name == 'none' else min(k, len(prof)))
    scores = [r['score'] for r in res]
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=profile_st, query=texts_st, k=st.integers(0, 30))
def test_dense_shape_properties(tiny, profile, query, k):
    model, tok = tiny
    r = DenseRetriever(model=model, tokenizer=tok, encoder='t', cache_dir=False, progress=False)
    res = r.retrieve(query, _items(profile), k=k)
    idx = [x['index'] for x in res]
    assert len(set(idx)) == len(idx) and all(0 <= i < len(profile) for i in idx) and len(res) == min(k, len(profile))


words = st.sampled_from('the a of and model user data retrieval title é 名前 x y z'.split())
doc_st = st.lists(words, min_size=0, max_size=12).map(' '.join)


@settings(max_examples=80, deadline=None)
@given(docs=st.lists(doc_st, min_size=1, max_size=20), query=st.lists(words, min_size=1, max_size=8).map(' '.join),
       k=st.integers(1, 8))
def test_bm25_matches_rank_bm25(docs, query, k):
    "Same top-k as rank_bm25's BM25Okapi (LaMP's BM25), up to ties, and the same scores."
    if not any(d.split() for d in docs): return      # rank_bm25 divides by zero on an all-empty corpus
    ref = BM25Okapi([d.split() for d in docs]).get_scores(query.split())
    got = get_retriever('bm25').retrieve(query, _items(docs), k=k)
    np.testing.assert_allclose([r['score'] for r in got], ref[[r['index'] for r in got]], rtol=1e-9, atol=1e-12)
    kth = np.sort(ref)[::-1][min(k, len(docs)) - 1]
    top_ref = set(np.argsort(ref)[::-1][:k].tolist())
    for i in top_ref ^ {r['index'] for r in got}: assert abs(ref[i] - kth) < 1e-9


def test_bm25_batch_equals_single_and_shares_profiles():
    prof = _items(['alpha beta', 'beta gamma', 'gamma delta alpha', 'delta'])
    r = get_retriever('bm25')
    qs = ['alpha', 'gamma', 'delta beta', 'zzz']
    batch = r.retrieve_batch(qs, [prof, prof, prof[:3], prof], k=2)
    assert batch == [r.retrieve(q, p, k=2) for q, p in zip(qs, [prof, prof, prof[:3], prof])]


def test_split_matches_str_split_on_every_code_point():
    import sys as _s
    cps = [c for c in range(_s.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    probe = ['a' + chr(c) + 'b' for c in cps]
    ids, parent, vocab = _split_arrow(probe)
    counts = np.bincount(parent, minlength=len(probe))
    expected = np.array([len(p.split()) for p in probe])
    assert (counts == expected).all(), [hex(cps[i]) for i in np.flatnonzero(counts != expected)[:10]]


def test_bad_input_errors_name_the_row():
    ds = datasets.Dataset.from_list([dict(id='q1', user_id='u', task='LaMP-5', query='x', profile=[dict(id='1', text='a', output='b', date=None)]),
                                     dict(id='q2', user_id='u', task='LaMP-5', query='y', profile=[dict(id='2', text='c', output='d', date=None)])])
    bad = ds.map(lambda e: {'profile': [{'title': 't'}]}, remove_columns=['profile'])
    with pytest.raises(TypeError, match=r"q1.*'text' field"):
        retrieve_dataset(bad, 'bm25', k=1, progress=False)
    with pytest.raises(ValueError, match='queries but'):
        get_retriever('bm25').retrieve_batch(['a', 'b'], [[]], k=1)
    with pytest.raises(TypeError, match='list of profile items'):
        get_retriever('bm25').retrieve('a', 'not a list', k=1)
    with pytest.raises(ValueError, match='backend'):
        get_retriever('bm25', backend='lucene')


def test_retrieve_dataset_keeps_row_order_and_replaces_column():
    rows = [dict(id=f'q{i}', user_id=f'u{i % 3}', task='debian', query=f'word{i} common',
                 profile=_items([f'word{j} common' for j in range(i % 3, 6)])) for i in range(9)]
    ds = datasets.Dataset.from_list(rows)
    out = retrieve_dataset(ds, 'bm25', k=2, progress=False, batch_size=4)
    assert out['id'] == ds['id']
    for row in out:
        assert row['retrieved'] == get_retriever('bm25').retrieve(row['query'], row['profile'], k=2)
    again = retrieve_dataset(out, 'recency', k=1, progress=False)
    assert again.column_names.count('retrieved') == 1
    assert [r[0]['index'] for r in again['retrieved']] == [len(p) - 1 for p in ds['profile']]
    assert retrieved_items(again[0])[0] == again[0]['profile'][-1]


def test_bm25s_backend_runs():
    prof = _items(['alpha beta', 'beta gamma', 'gamma delta alpha', '   '])
    for m in ['lucene', 'robertson', 'atire', 'bm25+']:
        res = get_retriever('bm25', backend='bm25s', method=m).retrieve('alpha', prof, k=4)
        assert {r['index'] for r in res} == {0, 1, 2, 3} and res[0]['index'] in (0, 2)


def test_registry_complete():
    assert set(RETRIEVERS) >= {'bm25', 'bm25_norm', 'dense', 'recency', 'random', 'none'}
    with pytest.raises(ValueError, match="'bm25_norm'"): get_retriever('bm25-norm')


noisy = st.sampled_from('The the THE a, Model model. user_data data* * - : (x) x! é É 名前 名前, café Café'.split())
noisy_doc_st = st.lists(noisy, min_size=0, max_size=12).map(' '.join)


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(noisy_doc_st, min_size=1, max_size=15), query=st.lists(noisy, min_size=1, max_size=8).map(' '.join),
       engine=st.sampled_from(['exact', *FAST_ENGINES]))
def test_bm25_norm_is_rank_bm25_on_normalised_tokens(docs, query, engine):
    "bm25_norm's scores are rank_bm25's BM25Okapi over lowercased tokens split on every non-alphanumeric character."
    toks = [d.lower().replace('_', ' ') for d in docs]
    toks = [''.join(c if c.isalnum() else ' ' for c in d).split() for d in toks]
    assert toks == [norm_text(d).split() for d in docs]
    if not any(toks): return                          # rank_bm25 divides by zero on an all-empty corpus
    qt = ''.join(c if c.isalnum() else ' ' for c in query.lower()).split()
    ref = BM25Okapi(toks).get_scores(qt)
    got = get_retriever('bm25_norm', engine=engine).retrieve(query, _items(docs), k=None)
    np.testing.assert_allclose([r['score'] for r in got], ref[[r['index'] for r in got]], rtol=1e-9, atol=1e-12)
    assert sorted(r['index'] for r in got) == list(range(len(docs)))


def test_bm25_norm_ignores_bullets_and_case_bm25_does_not():
    prof = _items(['debhelper add-on:\n * dh_foo\n * dh_bar', 'wordpress: Themes, plugins.', 'an unrelated text'])
    q = 'WordPress themes:\n * blog\n * gallery'
    assert get_retriever('bm25').retrieve(q, prof, k=1)[0]['index'] == 0
    assert get_retriever('bm25_norm').retrieve(q, prof, k=1)[0]['index'] == 1
    assert get_retriever('bm25').retrieve('Café', _items(['café', 'Café', 'tea']), k=1)[0]['index'] == 1   # bm25: case-sensitive
    r = get_retriever('bm25_norm').retrieve('Café', _items(['café', 'Café', 'tea', 'milk', 'water']), k=None)
    assert r[0]['score'] == r[1]['score'] > 0 == r[2]['score']   # (5 items: with 3, a df of 2 has idf < 0)


def test_bm25_norm_over_a_dataset():
    rows = [dict(id=f'q{i}', user_id=f'u{i % 2}', task='debian', query=['Alpha-beta!', 'GAMMA_delta', 'alpha'][i % 3],
                 profile=_items(['alpha beta', 'Gamma, Delta.', '* * *', 'ALPHA'])) for i in range(6)]
    ds = datasets.Dataset.from_list(rows)
    out = retrieve_dataset(ds, get_retriever('bm25_norm'), k=2, progress=False, batch_size=4)
    assert out['id'] == ds['id']
    for row in out: assert row['retrieved'] == get_retriever('bm25_norm').retrieve(row['query'], row['profile'], k=2)
    assert out[1]['retrieved'][0]['index'] == 1 and retrieve_dataset(ds, 'bm25', k=1, progress=False)[1]['retrieved'][0]['score'] == 0
    assert get_retriever('bm25_norm', backend='bm25s').retrieve('GAMMA_delta', ds[0]['profile'], k=1)[0]['index'] == 1


needs_numba = pytest.mark.skipif(numba is None, reason='numba not installed (the Arrow engine is used)')


@needs_numba
def test_compiled_split_matches_str_split_on_every_code_point():
    import sys as _s
    cps = [c for c in range(_s.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    probe = ['a' + chr(c) + 'b' for c in cps] + [chr(c) for c in cps] + [chr(c) + 'xy' + chr(c) for c in cps]
    length = _count_terms(probe)[3]
    expected = np.array([len(p.split()) for p in probe])
    assert (length == expected).all(), [repr(probe[i]) for i in np.flatnonzero(length != expected)[:10]]


@needs_numba
def test_compiled_term_counts_exact_on_long_and_similar_tokens():
    "Tokens of every length 1..40 that share prefixes/suffixes, NUL bytes, non-ASCII: ids and tfs equal a Counter's."
    from collections import Counter
    rng = np.random.default_rng(0)
    alphabet = list('ab\x00é名') + ['x' * 8]
    vocab = sorted({''.join(rng.choice(alphabet, n)) for n in range(1, 41) for _ in range(30)} | {'a' * n for n in range(1, 41)})
    texts = [' '.join(rng.choice(vocab, rng.integers(0, 60))) for _ in range(400)] + ['', '  \t']
    st, term, tf, length, n_terms = _count_terms(texts)
    seen = {}                                          # term id -> the token string it stands for (must be one-to-one)
    for i, t in enumerate(texts):
        toks = t.split()
        assert length[i] == len(toks)
        got = {}
        for p in range(st[i], st[i + 1]): got[int(term[p])] = int(tf[p])
        c = Counter(toks)
        assert sorted(got.values()) == sorted(c.values())
        first = list(dict.fromkeys(toks))               # pairs are in first-occurrence order
        for tok, tid in zip(first, term[st[i]:st[i + 1]]):
            assert seen.setdefault(int(tid), tok) == tok and got[int(tid)] == c[tok]
    assert len(set(seen.values())) == len(seen) == n_terms


@needs_numba
@settings(max_examples=60, deadline=None)
@given(docs=st.lists(doc_st, min_size=0, max_size=20), query=texts_st, k=st.integers(0, 8))
def test_compiled_engine_equals_arrow_engine(docs, query, k):
    prof = _items(docs)
    a = get_retriever('bm25', engine='numba').retrieve_batch([query, 'the a'], [prof, prof[:3]], k=k)
    b = get_retriever('bm25', engine='arrow').retrieve_batch([query, 'the a'], [prof, prof[:3]], k=k)
    for x, y in zip(a, b):
        np.testing.assert_allclose([r['score'] for r in x], [r['score'] for r in y], rtol=1e-9, atol=1e-12)
        sx, sy = {r['index'] for r in x}, {r['index'] for r in y}
        kth = min([r['score'] for r in y], default=0)
        assert all(abs(r['score'] - kth) < 1e-9 for r in x + y if r['index'] in sx ^ sy)


@settings(max_examples=60, deadline=None)
@given(profiles=st.lists(st.lists(texts_st, max_size=12), min_size=1, max_size=4), queries=st.lists(texts_st, min_size=1, max_size=6),
       data=st.data())
def test_fast_engines_return_the_readable_engines_scores(profiles, queries, data):
    "Every engine of prlm.bm25_fast gives bm25_exact's scores, for any batch (empty texts, empty profiles, shared profiles)."
    qgroup = sorted(data.draw(st.lists(st.integers(0, len(profiles) - 1), min_size=len(queries), max_size=len(queries))))
    exact = bm25_exact(profiles, queries, qgroup)
    for name, engine in FAST_ENGINES.items():
        got = engine(profiles, queries, qgroup)
        assert len(got) == len(exact)
        for g, e in zip(got, exact): np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12, err_msg=name)


def test_engine_choice_and_lazy_import():
    "bm25_engine names the engines; importing prlm.retrieve does not import prlm.bm25_fast (it builds on retrieve)."
    import subprocess
    assert bm25_engine('exact') is bm25_exact and bm25_engine().__name__ == ('bm25_numba' if numba else 'bm25_arrow')
    with pytest.raises(ValueError, match='unknown BM25 engine'): get_retriever('bm25', engine='lucene')
    assert get_retriever('bm25', engine='exact').engine == 'exact'
    code = "import sys, prlm.retrieve; assert 'prlm.bm25_fast' not in sys.modules; prlm.retrieve.bm25_engine(); assert 'prlm.bm25_fast' in sys.modules"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
