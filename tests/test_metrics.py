"""Property and bad-input tests for `prlm.metrics`."""
import math
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from prlm.metrics import (rouge_per_example, lamp_rouge, rouge_sum, bootstrap_ci, paired_bootstrap_ci, score_lamp,
                          accuracy_f1, mae_rmse, LAMP_LABELS)

texts = st.text(alphabet='ab cd\u00e9\u6771', max_size=20)

@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=30))
def test_rouge_ranges_and_mean(pairs):
    p, g = [a for a, _ in pairs], [b for _, b in pairs]
    r = rouge_per_example(p, g)
    for k in ('rouge-1', 'rouge-2', 'rouge-L'): assert all(0.0 <= x <= 1.0 for x in r[k])
    assert all(0.0 <= x <= 3.0 for x in rouge_sum(p, g))
    m = lamp_rouge(p, g, aggregate='mean')
    assert math.isclose(m['rouge-1'], float(np.mean(r['rouge-1'])))
    b = lamp_rouge(p, g)
    assert min(r['rouge-1']) - 1e-12 <= b['rouge-1'] <= max(r['rouge-1']) + 1e-12

@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_ci_contains_mean(xs):
    ci = bootstrap_ci(xs, n_resamples=200)
    assert ci.lo - 1e-9 <= ci.mean <= ci.hi + 1e-9
    d = paired_bootstrap_ci(xs, xs, n_resamples=50)
    assert d == (0.0, 0.0, 0.0)

def test_rouge_exact_match_is_one():
    assert lamp_rouge(['Deep Nets for X'], ['deep nets, for x!']) == {'rouge-1': 1.0, 'rouge-L': 1.0}

def test_score_lamp_errors():
    with pytest.raises(ValueError, match=r"2 missing \(first: \['b', 'c'\]\), 0 extra"):
        score_lamp('LaMP-4', {'a': 'x'}, {'a': 'x', 'b': 'y', 'c': 'z'})
    with pytest.raises(ValueError, match='unknown task'): score_lamp('LaMP-8', {}, {})
    with pytest.raises(ValueError, match='at least one'): score_lamp('LaMP-4', {}, {})
    with pytest.raises(TypeError, match='prediction 0 is NoneType'): score_lamp('LaMP-5', {'a': None}, {'a': 'x'})

def test_lamp2_variants_and_rating():
    assert score_lamp('LaMP-2N', {'a': 'comedy'}, {'a': 'comedy'})['accuracy'] == 1.0
    assert score_lamp('LaMP-2', {'a': 'comedy'}, {'a': 'sports'})['accuracy'] == 0.0  # not a news category
    assert len(LAMP_LABELS['LaMP-2']) == len(LAMP_LABELS['LaMP-2N']) == 15
    assert mae_rmse(['', '3'], ['1', '3']) == {'MAE': 2.0, 'RMSE': math.sqrt(8.0)}  # '' -> 5.0 (farthest from 1)
    assert accuracy_f1(['x'], ['x'], ['a', 'b'])['accuracy'] == 1.0  # LaMP quirk: both unknown -> -1 == -1
