"""GRPO stage: a tiny-model run that moves the adapter, resume after SIGKILL or from a torn checkpoint, a 2-process accelerate
run, and the embedded SmolLM2's adapter loading by hub id offline."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from prlm.grpo import GRPOStageConfig, GRPOConfigError, train_grpo
from prlm.utils import read_jsonl
from prlm.rewards import REWARDS, RewardConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
       'TOKENIZERS_PARALLELISM': 'false', 'PYTHONUNBUFFERED': '1'}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "A tiny random Llama with the real SmolLM2 tokenizer, saved to disk, and a JSONL training set of chat prompts."
    from prlm.models import tiny_policy
    d = tmp_path_factory.mktemp('tiny')
    model, tok = tiny_policy()
    model.save_pretrained(d / 'model'); tok.save_pretrained(d / 'model')
    rows = [dict(prompt=tok.apply_chat_template([{'role': 'user', 'content': f'Write a title for text {i}.'}],
                                                tokenize=False, add_generation_prompt=True),
                 target=f'a title for text {i}', query=f'text {i}') for i in range(8)]
    with open(d / 'data.jsonl', 'w') as f:
        for r in rows: f.write(json.dumps(r) + '\n')
    return d


def _cfg(tiny, **kw):
    base = dict(model=str(tiny / 'model'), rewards={'rouge': 1.0, 'format': 0.1}, max_completion_length=8,
                max_steps=2, save_steps=2, log_samples=2)
    return GRPOStageConfig.preset('demo_cpu', **{**base, **kw})


def test_config_errors_before_model_load(tiny, tmp_path):
    from datasets import Dataset
    ds = Dataset.from_json(str(tiny / 'data.jsonl'))
    with pytest.raises(RewardConfigError, match="unknown reward 'bleu'"):
        train_grpo(ds, _cfg(tiny, model='/does/not/exist', rewards={'bleu': 1.0}), tmp_path)
    with pytest.raises(GRPOConfigError, match="max_step: unknown key; did you mean 'max_steps'"): GRPOStageConfig.from_dict({'max_step': 3})
    p = tmp_path / 'c.yaml'; p.write_text(yaml.safe_dump({'grpo': {'lora_r': 8, 'lr': 1}}))
    with pytest.raises(GRPOConfigError, match=r"c\.yaml: lr: unknown key"): GRPOStageConfig.from_yaml(p)
    with pytest.raises(KeyError, match="'target'"):
        train_grpo(ds.remove_columns('target'), _cfg(tiny), tmp_path)
    with pytest.raises(GRPOConfigError, match="'os:system'.*not a subclass of trl.GRPOTrainer"):
        train_grpo(ds, _cfg(tiny, model='/does/not/exist', trainer_cls='os:system'), tmp_path)
    with pytest.raises(GRPOConfigError, match=r'max_steps: expected -1 \(train num_train_epochs\) or >= 1 \(got -5\)'): _cfg(tiny, max_steps=-5)
    with pytest.raises(GRPOConfigError, match=r'num_generations: Input should be greater than or equal to 2 \(got 0\)'): _cfg(tiny, num_generations=0)
    p.write_text(yaml.safe_dump({'grpo': {'max_steps': -5}}))
    with pytest.raises(GRPOConfigError, match=r"c\.yaml: max_steps"): GRPOStageConfig.from_yaml(p)


def test_trl_fields_match_installed_trl():
    "The TRL argument list `prlm validate` checks names and types against is the installed TRL's (it fails after a TRL upgrade)."
    import trl
    from prlm.grpo import trl_field_spec
    from prlm.grpo_config import TRL_FIELDS
    stored = json.loads(TRL_FIELDS.read_text())
    fix = f"run `python -c 'from prlm.grpo import write_trl_fields; write_trl_fields()'` and commit {TRL_FIELDS.name}"
    assert stored['fields'] == trl_field_spec(), f"{TRL_FIELDS} was written for TRL {stored['trl']}, TRL {trl.__version__} is installed: {fix}"


def test_presets_build_and_pass_trl_arguments_through(tmp_path):
    "Every preset file builds a valid config; a TRL argument prlm does not know by name reaches `trl.GRPOConfig` unchanged."
    from prlm.grpo import grpo_args
    from prlm.grpo_config import grpo_presets
    assert {'demo_cpu', 'paper', 'h100'} <= set(grpo_presets())
    for name in grpo_presets(): GRPOStageConfig.preset(name)
    h = GRPOStageConfig.preset('h100')
    assert (h.model, h.use_lora, h.fast_rollout, h.steps_per_generation, h.beta) == ('deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B', False, True, 16, 0.04)
    a = grpo_args(GRPOStageConfig.preset('demo_cpu', max_grad_norm=0.25, generation_kwargs={'top_k': 5}), tmp_path)
    assert (a.max_grad_norm, a.generation_kwargs, a.logging_steps, a.save_total_limit) == (0.25, {'use_cache': True, 'top_k': 5}, 1, 2)
    with pytest.raises(GRPOConfigError, match='output_dir: set by prlm'): GRPOStageConfig.preset('demo_cpu', output_dir='x')


def _letter_e(prompts=None, completions=None, **kw):
    "A dense test reward a random policy can climb: the share of 'e' characters in the completion."
    return [sum(ch == 'e' for ch in c) / max(len(c), 1) for c in completions]
_letter_e.__name__ = 'letter_e'


def test_tiny_run_changes_adapter_and_logs(tiny, tmp_path, monkeypatch, capsys):
    from datasets import Dataset
    from safetensors.torch import load_file
    monkeypatch.setitem(REWARDS, 'letter_e', _letter_e)  # the registry is open: custom rewards by name
    cfg = _cfg(tiny, rewards={'letter_e': 1.0, 'rouge': 1.0, 'format': 0.1}, learning_rate=5e-2, beta=0.0)
    out = train_grpo(Dataset.from_json(str(tiny / 'data.jsonl')), cfg, tmp_path)
    assert out == tmp_path / 'adapter' and (out / 'adapter_model.safetensors').exists()
    w = load_file(out / 'adapter_model.safetensors')
    lora_b = [v for k, v in w.items() if 'lora_B' in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b), 'LoRA B starts at zero; training must move it'
    log = read_jsonl(tmp_path / 'log_history.jsonl')
    steps = [r['step'] for r in log if 'train_runtime' not in r]
    assert steps == [1, 2]
    for key in ('rewards/letter_e/mean', 'rewards/letter_e/std', 'rewards/rouge/mean', 'completions/mean_length', 'reward'):
        assert key in log[0], key
    samples = read_jsonl(tmp_path / 'samples.jsonl')
    assert len(samples) == 4 and {'prompt', 'completion', 'rewards', 'advantage'} <= set(samples[0])
    res = json.loads((tmp_path / 'train_result.json').read_text())
    assert res['global_step'] == 2 and res['s_per_step'] > 0
    # a calm console: one compact line per step here (2 steps), no raw log dicts, and the closing line
    lines = capsys.readouterr().out.splitlines()
    steps_out = [l for l in lines if l.startswith('step ')]
    assert len(steps_out) == 2 and 'reward' in steps_out[0] and '(letter_e ' in steps_out[0] and 's/step' in steps_out[0], lines
    assert not any("{'loss'" in l or "'grad_norm'" in l for l in lines), lines
    assert lines[-1].startswith('prlm.grpo: 2 steps in ') and lines[-1].endswith(str(out)), lines
    # standard artifacts: the local base model is recorded as it is, and the model card names it and the rewards
    assert json.loads((out / 'adapter_config.json').read_text())['base_model_name_or_path'] == str(tiny / 'model')
    card = (out / 'README.md').read_text()
    assert '[None]' not in card and str(tiny / 'model') in card and '`letter_e`' in card and 'prlm.grpo.train_grpo' in card
    assert (tmp_path / 'README.md').read_text() == card  # TRL's draft card in the run folder is replaced too
    # a finished run is not trained again
    t = time.time(); assert train_grpo(Dataset.from_json(str(tiny / 'data.jsonl')), cfg, tmp_path) == out
    assert time.time() - t < 5


def test_torn_checkpoint_is_set_aside(tiny, tmp_path, capsys):
    "A checkpoint a kill left without trainer_state.json is set aside (one line says so); the run resumes from the one before."
    import shutil
    from datasets import Dataset
    ds = Dataset.from_json(str(tiny / 'data.jsonl'))
    cfg = _cfg(tiny, max_steps=2, save_steps=1, save_total_limit=None)
    train_grpo(ds, cfg, tmp_path)
    for p in (tmp_path / 'adapter', tmp_path / 'train_result.json'): shutil.rmtree(p) if p.is_dir() else p.unlink()
    (tmp_path / 'checkpoint-2' / 'trainer_state.json').unlink()  # killed while writing checkpoint-2
    capsys.readouterr()
    out = train_grpo(ds, cfg, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert sum('incomplete checkpoint' in l for l in lines) == 1, lines
    assert 'resuming from checkpoint-1' in lines[0] and 'checkpoint-2 (no trainer_state.json)' in lines[0], lines
    res = json.loads((tmp_path / 'train_result.json').read_text())
    assert res['resumed_from'] == 'checkpoint-1' and res['global_step'] == 2 and (out / 'adapter_model.safetensors').exists()
    assert (tmp_path / 'incomplete_checkpoints' / 'checkpoint-2').is_dir() and (tmp_path / 'checkpoint-2' / 'trainer_state.json').exists()
    assert [r['step'] for r in read_jsonl(tmp_path / 'log_history.jsonl') if 'train_runtime' not in r] == [1, 2]


def test_killed_after_the_last_checkpoint_trains_no_step_more(tiny, tmp_path):
    "A kill between the last checkpoint and train_result.json: the resumed run stops at max_steps with the uninterrupted run's adapter."
    import shutil
    from datasets import Dataset
    ds = Dataset.from_json(str(tiny / 'data.jsonl'))
    cfg = _cfg(tiny, max_steps=2, save_steps=1, save_total_limit=None)
    a = train_grpo(ds, cfg, tmp_path / 'a')
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    shutil.rmtree(tmp_path / 'b' / 'adapter'); (tmp_path / 'b' / 'train_result.json').unlink()  # killed while saving the adapter
    with open(tmp_path / 'b' / 'log_history.jsonl', 'a') as f: f.write(json.dumps({'step': 3, 'reward': 0.0}) + '\n')  # a step past it
    b = train_grpo(ds, cfg, tmp_path / 'b')
    ra, rb = (json.loads((tmp_path / x / 'train_result.json').read_text()) for x in 'ab')
    assert rb['global_step'] == 2 and rb['resumed_from'] == 'checkpoint-2'
    assert [r['step'] for r in read_jsonl(tmp_path / 'b' / 'log_history.jsonl') if 'train_runtime' not in r] == [1, 2]
    assert (a / 'adapter_model.safetensors').read_bytes() == (b / 'adapter_model.safetensors').read_bytes()
    assert rb['train_loss'] == ra['train_loss']  # the whole run's mean loss, not only the resumed steps'


def test_checkpoint_without_rng_state_warns(tiny, tmp_path):
    "A complete checkpoint whose rng_state.pth is gone resumes (the Trainer says nothing), with a warning naming it."
    import re, shutil
    from datasets import Dataset
    ds = Dataset.from_json(str(tiny / 'data.jsonl'))
    cfg = _cfg(tiny, max_steps=2, save_steps=1, save_total_limit=None)
    train_grpo(ds, cfg, tmp_path)
    for p in (tmp_path / 'adapter', tmp_path / 'train_result.json', tmp_path / 'checkpoint-2'): shutil.rmtree(p) if p.is_dir() else p.unlink()
    (tmp_path / 'checkpoint-1' / 'rng_state.pth').unlink()
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path / 'checkpoint-1'}: no rng_state.pth")): train_grpo(ds, cfg, tmp_path)
    assert json.loads((tmp_path / 'train_result.json').read_text())['resumed_from'] == 'checkpoint-1'


def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.mark.slow
def test_resume_after_sigkill(tiny, tmp_path):
    "Kill a run after its step-3 log line (checkpoint at 2), resume: 6 steps in all, each logged exactly once."
    cfg = _cfg(tiny, max_steps=6, save_steps=2, save_total_limit=None)
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg.to_dict()))
    out = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'prlm.grpo', '--config', str(tmp_path / 'c.yaml'), '--data', str(tiny / 'data.jsonl'), '--out', str(out)]
    p = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if any(r.get('step') == 3 for r in read_jsonl(out / 'log_history.jsonl')): break
        time.sleep(0.05)
    assert p.poll() is None, f"run ended before it could be killed: {p.stderr.read().decode()[-2000:]}"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert (out / 'checkpoint-2').exists() and not (out / 'adapter').exists()
    killed = read_jsonl(out / 'log_history.jsonl')
    assert 3 in [r['step'] for r in killed]
    r = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / 'train_result.json').read_text())
    assert res['global_step'] == 6 and res['resumed_from'] in ('checkpoint-2', 'checkpoint-4')
    log = read_jsonl(out / 'log_history.jsonl')
    assert [x['step'] for x in log if 'train_runtime' not in x] == [1, 2, 3, 4, 5, 6]
    assert sum('train_runtime' in x for x in log) == 1
    # steps up to the checkpoint keep their original lines (nothing lost); later ones were re-trained and re-logged
    ck = int(res['resumed_from'].split('-')[1])
    assert [x for x in log if x['step'] <= ck and 'train_runtime' not in x] == [x for x in killed if x['step'] <= ck]
    assert (out / 'adapter' / 'adapter_model.safetensors').exists()


@pytest.mark.slow
def test_two_process_accelerate_run(tiny, tmp_path):
    "accelerate launch, 2 CPU processes (gloo): the run completes and both ranks took part."
    cfg = _cfg(tiny, per_device_train_batch_size=2, gradient_accumulation_steps=1)  # 2 per rank x 2 ranks = one group of 4
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg.to_dict()))
    cmd = [str(Path(sys.executable).parent / 'accelerate'), 'launch', '--config_file', str(ROOT / 'configs/accelerate/ddp_cpu.yaml'),
           '--num_processes', '2', '--main_process_port', str(_free_port()), '-m', 'prlm.grpo',
           '--config', str(tmp_path / 'c.yaml'), '--data', str(tiny / 'data.jsonl'), '--out', str(tmp_path / 'run')]
    t = time.time()
    r = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / 'run' / 'train_result.json').read_text())
    assert res['num_processes'] == 2 and res['global_step'] == 2
    assert (tmp_path / 'run' / 'adapter' / 'adapter_model.safetensors').exists()
    print(f"2-process run: {time.time() - t:.1f}s wall")


EMBEDDED_LOAD = """
import json, sys
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
from prlm.models import install_hf_cache
install_hf_cache('policy')  # the one explicit step: SmolLM2 into this HF_HOME under its hub id
m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1])
ids = t('Hello', return_tensors='pt')
out = m.generate(**ids, max_new_tokens=2, do_sample=False)
print(json.dumps(dict(base=m.peft_config['default'].base_model_name_or_path, new=int(out.shape[1] - ids['input_ids'].shape[1]))))
"""

@pytest.mark.slow
def test_embedded_adapter_loads_by_hub_id_offline(tmp_path):
    """One GRPO step on the embedded SmolLM2 in an empty HF_HOME: the adapter names its base by hub id, training writes nothing
    to the HF cache, and after `install_hf_cache` a fresh offline process loads the adapter."""
    env = {**ENV, 'HF_HOME': str(tmp_path / 'hf')}; env.pop('HF_HUB_CACHE', None)
    cfg = GRPOStageConfig.preset('demo_cpu', model='embedded', rewards={'rouge': 1.0, 'format': 0.1}, max_completion_length=4, max_steps=1,
                                 save_steps=1, log_samples=0, report_to='none')
    (tmp_path / 'c.yaml').write_text(yaml.safe_dump(cfg.to_dict()))
    data = tmp_path / 'data.jsonl'
    data.write_text(''.join(json.dumps(dict(prompt=f'<|im_start|>user\nTitle for text {i}<|im_end|>\n<|im_start|>assistant\n', target=f'title {i}',
                                            task='debian')) + '\n' for i in range(2)))
    r = subprocess.run([sys.executable, '-m', 'prlm.grpo', '--config', str(tmp_path / 'c.yaml'), '--data', str(data), '--out', str(tmp_path / 'run')],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)  # a hang guard: slow only on a busy machine
    assert r.returncode == 0, r.stderr[-3000:]
    adapter = tmp_path / 'run' / 'adapter'
    assert json.loads((adapter / 'adapter_config.json').read_text())['base_model_name_or_path'] == 'HuggingFaceTB/SmolLM2-135M-Instruct'
    card = (adapter / 'README.md').read_text()
    assert 'base_model: HuggingFaceTB/SmolLM2-135M-Instruct' in card and '`debian` task' in card and '[None]' not in card
    assert not (tmp_path / 'hf' / 'hub' / 'models--HuggingFaceTB--SmolLM2-135M-Instruct').exists()  # nothing outside the run
    r = subprocess.run([sys.executable, '-c', EMBEDDED_LOAD, str(adapter)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == dict(base='HuggingFaceTB/SmolLM2-135M-Instruct', new=2)
