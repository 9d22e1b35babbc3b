import re
"Reward functions: literal data in both completion formats, malformed completions, registry errors, never-raise property."
import math
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from prlm.rewards import (REWARDS, GUARD_PENALTY, PersonalizationReward, RewardConfigError, format_reward,
                          format_strict_reward, make_reward_funcs, rouge_reward, extract, make_format_reward)

GOOD = '<think>The user prefers short, plain titles.</think>\n<answer>Sparse retrieval revisited</answer>'
TARGET = 'Sparse retrieval revisited'
MALFORMED = ['', '<think>', '</think>', '<answer>', '<think><answer>x</answer>', '<answer></answer>', '<think>a</think>',
             '</answer><answer>', '<think>' * 50, 'plain text', '\x00\x01\ud800'[:2], '<think>a</think><answer>b',
             '<THINK>a</THINK><ANSWER>b</ANSWER>', '\n\n\n', '<answer>' + 'x' * 5000 + '</answer>']


def conv(text): return [{'role': 'assistant', 'content': text}]


class ConstRM:
    "A stand-in scorer with the `RewardModel.score` signature (the real model is tested below when present)."
    def score(self, queries, answers, profiles=None):
        assert len(queries) == len(answers)
        return [0.0 for _ in answers]


def _pr():
    pr = PersonalizationReward('/unused'); pr._rm = ConstRM(); return pr


@pytest.mark.parametrize('wrap', [lambda t: t, conv], ids=['text', 'conversational'])
def test_rewards_on_literal_data(wrap):
    comps = [wrap(GOOD), wrap('<think>x</think><answer>...</answer>'), wrap('no format, Sparse retrieval'), wrap('')]
    kw = dict(prompts=['p'] * 4, completions=comps, target=[TARGET] * 4, query=['an abstract about retrieval'] * 4)
    assert format_reward(**kw) == [1.0, 0.0, 0.0, 0.0]  # a placeholder answer earns no format credit, tags or not
    assert format_strict_reward(**kw) == [1.0, 0.0, 0.0, 0.0]
    r = rouge_reward(**kw)
    assert r[0] == pytest.approx(3.0) and r[1] == GUARD_PENALTY and r[3] == GUARD_PENALTY
    assert 0 < r[2] < 3.0
    p = _pr()(**kw)
    assert p[0] == pytest.approx(0.5) and p[1] == GUARD_PENALTY and p[3] == GUARD_PENALTY


def test_malformed_completions_score_low():
    kw = dict(prompts=['p'] * len(MALFORMED), completions=MALFORMED, target=[TARGET] * len(MALFORMED))
    for f in (format_reward, format_strict_reward):
        out = f(**kw)
        assert all(0.0 <= v < 1.0 for v in out), (f.__name__, out)
    assert all(v is None or v <= 3.0 for v in rouge_reward(**kw))


def test_no_target_gives_none():
    assert rouge_reward(prompts=['p'], completions=[GOOD], target=[None]) == [None]
    assert rouge_reward(prompts=['p'], completions=[GOOD]) == [None]


def test_prompt_opening_think():
    "DeepSeek-R1 chat templates end the prompt with '<think>': the completion continues inside the block."
    assert format_strict_reward(prompts=['...<|Assistant|><think>\n'], completions=['r</think><answer>a</answer>']) == [1.0]
    assert format_strict_reward(prompts=['plain'], completions=['r</think><answer>a</answer>']) == [0.0]


def test_answer_inside_reasoning_is_not_the_answer():
    assert extract('<think>maybe <answer>wrong</answer></think><answer>right</answer>') == 'right'


def test_registry_errors_before_loading():
    with pytest.raises(RewardConfigError, match="unknown reward 'acc'"): make_reward_funcs({'acc': 1.0})
    with pytest.raises(RewardConfigError, match='finite'): make_reward_funcs({'rouge': float('nan')})
    with pytest.raises(RewardConfigError, match='finite'): make_reward_funcs({'rouge': True})
    with pytest.raises(RewardConfigError, match='non-empty'): make_reward_funcs({})
    with pytest.raises(RewardConfigError, match='reward_model_path'): make_reward_funcs({'personalization': 0.1})
    with pytest.raises(RewardConfigError, match='does not exist'):
        make_reward_funcs({'rouge': 1.0, 'personalization': 0.1}, reward_model_path='/nope')
    # the error comes before any model is loaded: the unknown name is reported even with a valid-looking RM path
    with pytest.raises(RewardConfigError, match='unknown'): make_reward_funcs({'personalization': 0.1, 'bogus': 1}, reward_model_path='/nope')


def test_registry_builds_lazy_personalization(tmp_path):
    funcs, ws = make_reward_funcs({'rouge': 1.0, 'format': 0.1, 'personalization': 0.1}, reward_model_path=tmp_path)
    assert [f.__name__ for f in funcs] == ['rouge', 'format', 'personalization'] and ws == [1.0, 0.1, 0.1]
    assert funcs[2]._rm is None  # nothing loaded until the first call
    assert set(REWARDS) >= {'rouge', 'format', 'format_strict', 'personalization'}


completion_st = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(['<think>', '</think>', '<answer>', '</answer>', ' ', 'x', '\n', '...', 'your answer']),
             max_size=30).map(''.join),
    st.lists(st.fixed_dictionaries({'role': st.sampled_from(['assistant', 'user']), 'content': st.text(max_size=80)}),
             max_size=3),
    st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(comps=st.lists(completion_st, min_size=1, max_size=4), target=st.one_of(st.none(), st.text(max_size=40)),
       prompt=st.one_of(st.text(max_size=40), st.none()))
def test_no_reward_ever_raises(comps, target, prompt):
    n = len(comps)
    kw = dict(prompts=[prompt] * n, completions=comps, target=[target] * n, query=[target] * n, profile=[None] * n)
    for f in (rouge_reward, format_reward, format_strict_reward, make_format_reward(True, 'f'), _pr()):
        out = f(**kw)
        assert len(out) == n
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in out), (f, out)



def test_prlm_prompt_prefill_and_example_copy():
    "The `prlm` template opens <think> in the prompt and shows no literal answer to copy; a placeholder answer is guarded."
    from prlm.prompts import build_prompt, EXAMPLE_ANSWERS
    shown = [a for a in re.findall(r'<answer>([^<]*)</answer>', build_prompt(dict(id='q', task='LaMP-5', input='x'), 'prlm')) if a.strip()]
    assert shown == ['the title for this request'] and all(a in EXAMPLE_ANSWERS for a in shown)  # a placeholder, never an answer
    p = build_prompt(dict(id='q', task='LaMP-5', input='Write a title for: we study X.'), 'prlm')
    assert p.rstrip().endswith('<think>')
    good = 'The user likes short titles.</think><answer>Sparse retrieval revisited</answer>'
    assert format_reward(prompts=[p], completions=[good]) == [1.0]
    assert rouge_reward(prompts=[p], completions=[good], target=[TARGET])[0] > 2.9
    copy = 'The user likes short titles.</think><answer>The title for this request.</answer>'
    assert rouge_reward(prompts=[p], completions=[copy], target=[TARGET]) == [GUARD_PENALTY]
    assert _pr()(prompts=[p], completions=[copy], query=['Write a title for: we study X.']) == [GUARD_PENALTY]
    # the prefilled <think> counts: reasoning that never closes has no answer, whatever text it holds
    open_only = 'The user likes short titles: Sparse retrieval revisited'
    assert extract(open_only) == open_only and extract(open_only, p) == ''
    assert rouge_reward(prompts=[p], completions=[open_only], target=[TARGET]) == [GUARD_PENALTY]
    assert rouge_reward(prompts=['no prefill'], completions=[open_only], target=[TARGET])[0] > 0
