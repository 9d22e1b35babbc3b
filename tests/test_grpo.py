"GRPO stage: a tiny-model run that moves the adapter, resume after SIGKILL, and a 2-process accelerate run."
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from prlm.grpo import GRPOStageConfig, GRPOConfigError, read_jsonl, train_grpo
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
    return GRPOStageConfig.demo_cpu(**{**base, **kw})


def test_config_errors_before_model_load(tiny, tmp_path):
    from datasets import Dataset
    ds = Dataset.from_json(str(tiny / 'data.jsonl'))
    with pytest.raises(RewardConfigError, match="unknown reward 'bleu'"):
        train_grpo(ds, _cfg(tiny, model='/does/not/exist', rewards={'bleu': 1.0}), tmp_path)
    with pytest.raises(GRPOConfigError, match="'max_step'"): GRPOStageConfig.from_dict({'max_step': 3})
    p = tmp_path / 'c.yaml'; p.write_text(yaml.safe_dump({'grpo': {'lora_r': 8, 'lr': 1}}))
    with pytest.raises(GRPOConfigError, match=r"c\.yaml.*'lr'"): GRPOStageConfig.from_yaml(p)
    with pytest.raises(KeyError, match="'target'"):
        train_grpo(ds.remove_columns('target'), _cfg(tiny), tmp_path)


def _letter_e(prompts=None, completions=None, **kw):
    "A dense test reward a random policy can climb: the share of 'e' characters in the completion."
    return [sum(ch == 'e' for ch in c) / max(len(c), 1) for c in completions]
_letter_e.__name__ = 'letter_e'


def test_tiny_run_changes_adapter_and_logs(tiny, tmp_path, monkeypatch):
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
    # a finished run is not trained again
    t = time.time(); assert train_grpo(Dataset.from_json(str(tiny / 'data.jsonl')), cfg, tmp_path) == out
    assert time.time() - t < 5


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
