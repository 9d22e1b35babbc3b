"""prlm.models: resume after a real SIGKILL, torn cache lines, and loading checks that don't fit the notebook."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from datasets import Dataset
from prlm.models import tiny_policy, generate, generate_dataset, load_policy, embedded_encoder_path, load_encoder

ROWS = 7

def _ds(tok):
    chat = lambda q: tok.apply_chat_template([{'role': 'user', 'content': q}], tokenize=False, add_generation_prompt=True)
    return Dataset.from_dict(dict(id=[f"r{i}" for i in range(ROWS)], prompt=[chat(f"row {i} " + 'x ' * i) for i in range(ROWS)]))

KW = dict(batch_size=2, max_new_tokens=5, do_sample=True, temperature=1.0, seed=7, progress=False, chunk_rows=4)  # padded engine
KW_GREEDY = dict(batch_size=2, max_new_tokens=5, progress=False, chunk_rows=4)  # continuous engine on CPU
# chunks of 4 rows: rows 0-3, rows 4-6

CHILD = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.test_models import _ds, {kw}
    from prlm.models import tiny_policy, generate_dataset
    m, t = tiny_policy()
    def kill(n, total):
        if n >= {at}: os.kill(os.getpid(), signal.SIGKILL)
    generate_dataset(_ds(t), m, t, {cache!r}, callback=kill, **{kw})
''')

@pytest.mark.parametrize('kw_name,at', [('KW', 4), ('KW_GREEDY', 4), ('KW_GREEDY', 2)])
def test_resume_after_sigkill(tmp_path, kw_name, at):
    "Killed after the first chunk (4 rows) only the second is generated; killed inside it (2 rows) the first again, whole: the result is an uninterrupted run's."
    kw, cache = globals()[kw_name], tmp_path / 'gen.jsonl'
    root = str(Path(__file__).resolve().parents[1])
    p = subprocess.run([sys.executable, '-c', CHILD.format(root=root, cache=str(cache), kw=kw_name, at=at)], capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    done = [json.loads(l) for l in cache.read_text().splitlines()]
    assert len(done) == at  # rows are flushed as they finish; the callback killed after the at-th
    with open(cache, 'a') as f: f.write('{"key": "torn')  # and a torn line, as a kill mid-write would leave
    m, t = tiny_policy()
    calls, st = [], {}
    orig = m.generate
    m.generate = lambda *a, **k: (calls.append(k['input_ids'].shape[0]), orig(*a, **k))[1]
    out = generate_dataset(_ds(t), m, t, cache, stats=st, **kw)
    m.generate = orig
    if kw_name == 'KW': assert calls == [2, 1]  # only the second chunk (rows 4-6), in padded batches of 2
    else: assert calls == [] and st['calls'] == (1 if at == 4 else 2)  # one continuous-batching call per chunk to generate
    assert len(cache.read_text().splitlines()) == at + 1 + (3 if at == 4 else 7)  # the torn line stays alone on its line
    assert out['completion'] == generate_dataset(_ds(t), m, t, tmp_path / 'fresh.jsonl', **kw)['completion']  # = one uninterrupted run
    st = {}; again = generate_dataset(_ds(t), m, t, cache, stats=st, **kw)
    assert again['completion'] == out['completion'] and st.get('calls', 0) == 0  # every row was read back: nothing to do


@pytest.mark.parametrize('at,resumed', [(2, slice(0, None)), (4, slice(1, None))])
def test_resume_decodes_the_uninterrupted_runs_batches(tmp_path, monkeypatch, at, resumed):
    "A completion depends on the rows decoded beside it: a resumed run makes the very `generate` calls (same rows together) an uninterrupted run makes for the chunks it lacks."
    import prlm.models as pm
    m, t = tiny_policy(); seen, orig = [], pm.generate
    monkeypatch.setattr(pm, 'generate', lambda model, tok, prompts, **k: (seen.append(list(prompts)), orig(model, tok, prompts, **k))[1])
    full = generate_dataset(_ds(t), m, t, tmp_path / 'a.jsonl', **KW_GREEDY)['completion']; calls = seen[:]
    assert len(calls) == 2  # chunks: rows 0-3, rows 4-6
    class Stop(Exception): pass
    def stop(n, total):
        if n >= at: raise Stop()
    with pytest.raises(Stop): generate_dataset(_ds(t), m, t, tmp_path / 'b.jsonl', callback=stop, **KW_GREEDY)
    seen.clear()
    assert generate_dataset(_ds(t), m, t, tmp_path / 'b.jsonl', **KW_GREEDY)['completion'] == full
    assert seen == calls[resumed]  # killed inside chunk 1: both chunks again, whole; after it: chunk 2 only


def test_generate_edge_cases():
    m, t = tiny_policy()
    assert generate(m, t, [], progress=False) == []
    with pytest.raises(ValueError, match='row_seeds'): generate(m, t, ['a'], row_seeds=[1, 2], progress=False)
    # a prompt already starting with bos gets no second bos; a plain one gets whatever the tokenizer adds
    out = generate(m, t, [t.bos_token + 'user\nhi', 'hi'], max_new_tokens=3, progress=False)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)


def test_generate_dataset_duplicate_ids(tmp_path):
    m, t = tiny_policy()
    ds = Dataset.from_dict(dict(id=['a', 'a'], prompt=['x', 'x']))
    with pytest.raises(ValueError, match='duplicate'): generate_dataset(ds, m, t, tmp_path / 'c.jsonl', progress=False)


def test_load_encoder_embedded_and_classifier():
    enc, tok = load_encoder()
    assert type(enc).__name__ == 'BertModel' and tok.padding_side == 'right'
    cls, _ = load_encoder(str(embedded_encoder_path()), num_labels=1)
    assert cls.config.num_labels == 1


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(OSError, match='nope'): load_policy(str(tmp_path / 'nope'))


def test_continuous_engine_matches_one_by_one():
    "More prompts than slots (finished rows are refilled), mixed lengths, a shared prefix: same greedy text and token counts."
    import torch
    m, t = tiny_policy(seed=2)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1: p.normal_(std=0.3)  # default init gives near-constant outputs: make them prompt-dependent
    chat = lambda q: t.apply_chat_template([{'role': 'user', 'content': q}], tokenize=False, add_generation_prompt=True)
    ps = [chat(f"question {i}: " + 'why ' * (3 * i)) for i in range(10)]
    s1, s2 = {}, {}
    one = generate(m, t, ps, batch_size=1, max_new_tokens=12, progress=False, engine='padded', stats=s1)
    cont = generate(m, t, ps, batch_size=3, max_new_tokens=12, progress=False, engine='continuous', stats=s2)
    assert cont == one
    assert s2['new_tokens'] == s1['new_tokens'] and s2['calls'] == 1 and s1['calls'] == 10
    assert generate(m, t, ps[::-1], batch_size=4, max_new_tokens=12, progress=False) == one[::-1]  # input order kept


HUB_CHILD = textwrap.dedent('''
    import json, sys
    from prlm.models import install_hf_cache, SMOLLM2_ID, MINILM_ID
    snaps = install_hf_cache()
    from transformers import AutoModelForCausalLM, AutoModel, AutoTokenizer
    m = AutoModelForCausalLM.from_pretrained(SMOLLM2_ID); t = AutoTokenizer.from_pretrained(SMOLLM2_ID)
    e = AutoModel.from_pretrained(MINILM_ID); et = AutoTokenizer.from_pretrained(MINILM_ID)
    from huggingface_hub import scan_cache_dir
    print(json.dumps(dict(snaps={k: str(v) for k, v in snaps.items()}, policy=type(m).__name__, enc=type(e).__name__,
                          chat=bool(t.chat_template), repos=sorted(r.repo_id for r in scan_cache_dir().repos))))
''')

def test_install_hf_cache_offline_by_hub_id(tmp_path):
    "In an empty HF_HOME, offline: after `install_hf_cache` both embedded models load by hub id, in huggingface_hub's layout."
    env = {**os.environ, 'HF_HOME': str(tmp_path / 'hf'), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    env.pop('HF_HUB_CACHE', None)
    p = subprocess.run([sys.executable, '-c', HUB_CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert (r['policy'], r['enc'], r['chat']) == ('LlamaForCausalLM', 'BertModel', True)
    assert r['repos'] == ['HuggingFaceTB/SmolLM2-135M-Instruct', 'sentence-transformers/all-MiniLM-L6-v2']
    snap = Path(r['snaps']['HuggingFaceTB/SmolLM2-135M-Instruct'])
    assert snap.is_relative_to(tmp_path / 'hf' / 'hub') and (snap / 'model.safetensors').is_symlink()
    assert (snap.parents[1] / 'refs' / 'main').read_text() == snap.name


def _pinned(pkg):
    "The version pattern requirements.txt pins `pkg` to, e.g. '5.24.*'."
    import re
    line = next(l for l in (Path(__file__).resolve().parents[1] / 'requirements.txt').read_text().splitlines() if l.startswith(pkg + '=='))
    return re.match(rf'{pkg}==(\S+)', line).group(1)


def test_pinned_transformers_api():
    "prlm.batching.sdpa_wrapped and the continuous-batching engine rely on transformers internals: fail loudly when they move."
    import fnmatch, inspect, transformers
    from transformers.modeling_utils import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.generation import ContinuousBatchingConfig
    from transformers.generation.continuous_batching.utils import WorkloadHints
    pin = _pinned('transformers')
    assert fnmatch.fnmatch(transformers.__version__, pin), (
        f"transformers {transformers.__version__} is installed but prlm.batching was written for {pin}: check sdpa_wrapped, "
        "varlen_sdpa and continuous_generate against the new attention / continuous-batching code, then update the pin")
    assert AttentionInterface()['sdpa'] is sdpa_attention_forward and callable(AttentionInterface.register)
    assert list(inspect.signature(sdpa_attention_forward).parameters)[:5] == ['module', 'query', 'key', 'value', 'attention_mask']
    for name in ('page_size', 'num_blocks', 'max_batch_tokens', 'max_requests_per_batch', 'use_cuda_graph', 'use_async_batching'):
        assert name in inspect.signature(ContinuousBatchingConfig).parameters, name
    assert {'max_prompt_length', 'max_generated_length', 'num_requests'} <= set(inspect.signature(WorkloadHints).parameters)
    from transformers import GenerationMixin
    assert {'generation_config', 'continuous_batching_config', 'workload_hints'} <= set(inspect.signature(GenerationMixin.init_continuous_batching).parameters)
    swaps = {p.name: p.read_text().count('AttentionInterface.register(') for p in (Path(__file__).resolve().parents[1] / 'prlm').glob('*.py')}
    assert {k: v for k, v in swaps.items() if v} == {'batching.py': 2}, swaps  # swapped (and restored) in sdpa_wrapped only
