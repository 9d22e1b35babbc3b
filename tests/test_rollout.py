"""prlm.rollout beyond the notebook: recipe file in sync, LoRA and mixed precision on the fast path, engine reuse,
fallback/strict behaviour, and a CPU smoke run of the GPU benchmark script."""
import json, os, subprocess, sys, tempfile, warnings
from pathlib import Path

import pytest, torch, yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from datasets import Dataset
from transformers import AutoModelForCausalLM, Qwen2Config

from prlm.rollout import (FastRolloutConfig, FastRolloutGRPOTrainer, StaticRollout, fast_generate, gpu_recipe,
                          rollout_recipe, vllm_recipe, word_tokenizer)

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", category=FutureWarning)


def tiny(vocab=128, seed=0):
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, eos_token_id=1, pad_token_id=0, bos_token_id=None)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


def prompts_ds(n=8):
    g = torch.Generator().manual_seed(1)
    return Dataset.from_dict({"prompt": [" ".join(f"w{int(i)}" for i in torch.randint(3, 128, (6,), generator=g)) for _ in range(n)]})


def length_reward(completions, **kw): return [len(c.split()) / 8 for c in completions]


def token_reward(completions, **kw):
    "Varies between completions of one prompt (lengths rarely do with a random tiny model), so advantages are non-zero."
    return [sum(int(w[1:]) for w in c.split() if w[1:].isdigit()) % 17 / 17 for c in completions]


def args(**kw):
    base = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                max_steps=1, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, bf16=False, disable_tqdm=True,
                rollout_strict=True)
    return FastRolloutConfig(**{**base, **kw})


def test_yaml_matches_recipe_functions():
    y = yaml.safe_load((ROOT / "configs/recipes/grpo_h100.yaml").read_text())
    assert y["grpo_config"] == gpu_recipe()
    assert y["rollout"] == rollout_recipe()
    assert y["vllm_colocate"] == vllm_recipe("colocate") and y["vllm_server"] == vllm_recipe("server")
    FastRolloutConfig(output_dir=tempfile.mkdtemp(), **{**y["grpo_config"], "bf16": False}, use_cpu=True, **y["rollout"])


def test_lora_policy_uses_fast_path_and_trains():
    from peft import LoraConfig
    tr = FastRolloutGRPOTrainer(model=tiny(), reward_funcs=token_reward, args=args(learning_rate=1e-2),
                                train_dataset=prompts_ds(), processing_class=word_tokenizer(128),
                                peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora_B" in n}
    tr.train()
    assert tr.rollout_stats and getattr(tr, "_prlm_fast_error", None) is None
    after = dict(tr.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before), "LoRA weights did not move"


def test_fp32_weights_under_bf16_mixed_precision():
    "accelerate wraps forward in bf16 autocast; the engine bypasses it so the static cache keeps one dtype."
    tr = FastRolloutGRPOTrainer(model=tiny(), reward_funcs=length_reward, args=args(bf16=True),
                                train_dataset=prompts_ds(), processing_class=word_tokenizer(128))
    tr.train()
    assert tr.rollout_stats[0].path == "eager"


def test_engine_reused_until_params_move():
    m = tiny()
    ids = torch.randint(3, 128, (2, 8)); am = torch.ones_like(ids)
    _, _, e1 = fast_generate(m, ids, am, 6, eos_token_id=[1], pad_token_id=0)
    _, _, e2 = fast_generate(m, ids, am, 6, eos_token_id=[1], pad_token_id=0, engine=e1)
    assert e2 is e1
    _, _, e3 = fast_generate(m, ids, am, 6, eos_token_id=[1], pad_token_id=0, engine=e1, top_k=5)
    assert e3 is not e1                                            # other sampling options: new engine
    for p in m.parameters(): p.data = p.data.clone()               # parameters moved: a graph would read stale memory
    _, _, e4 = fast_generate(m, ids, am, 6, eos_token_id=[1], pad_token_id=0, top_k=5, engine=e3)
    assert e4 is not e3
    with pytest.raises(ValueError, match="shape"):
        e4.generate(ids[:1], am[:1])


def test_failure_falls_back_or_raises(monkeypatch):
    def boom(self, *a, **k): raise RuntimeError("engine exploded")
    monkeypatch.setattr(StaticRollout, "generate", boom)
    mk = lambda strict: FastRolloutGRPOTrainer(model=tiny(), reward_funcs=length_reward, args=args(rollout_strict=strict),
                                               train_dataset=prompts_ds(), processing_class=word_tokenizer(128))
    with pytest.raises(RuntimeError, match="exploded"):
        mk(True).train()
    tr = mk(False)
    with pytest.warns(UserWarning, match="fast rollout failed"):
        tr.train()
    assert "exploded" in tr._prlm_fast_error and tr.state.global_step == 1


@pytest.mark.slow
def test_benchmark_script_cpu_smoke(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_grpo_gpu.py"), "--tiny", "--device", "cpu",
                        "--sections", "probe,recipe", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "bench.json").read_text())
    assert not res.get("errors"), res.get("errors")
    assert res["probe"]["greedy_agreement"]["all_tokens"] == 1.0     # fp32 on CPU: identical to HF greedy
    rec = res["grpo"]["prlm_recipe"]
    assert rec["completions_per_s"] > 0 and rec["rollout_path"] == "eager" and rec["fast_error"] is None
    assert "=== RESULTS ===" in r.stdout


def test_pinned_trl_private_api():
    "prlm.rollout overrides TRL's private `_generate_single_turn` and reads GRPOTrainer internals: fail loudly when they move."
    import fnmatch, inspect, re, trl
    from trl import GRPOTrainer
    from prlm.rollout import MergedLoraGenerationMixin
    pin = re.search(r"^trl==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert fnmatch.fnmatch(trl.__version__, pin), (
        f"trl {trl.__version__} is installed but prlm.rollout was written for {pin}: check generation_step_mixin and "
        "FastRolloutGRPOTrainer against GRPOTrainer._generate_single_turn, then update the pin")
    step = getattr(GRPOTrainer, "_generate_single_turn", None)
    assert step is not None, "trl.GRPOTrainer._generate_single_turn is gone: prlm.rollout.generation_step_mixin needs a new hook"
    assert list(inspect.signature(step).parameters) == ["self", "prompt_ids", "images", "multimodal_fields", "num_generations",
                                                        "has_tool_images"]
    src = inspect.getsource(GRPOTrainer)
    for attr in ("self._metrics =", "self._tokenizer =", "self.eos_token_ids =", "self.use_transformers_continuous_batching =",
                 "self.repetition_penalty =", "self._generate_single_turn("):
        assert attr in src, f"GRPOTrainer no longer has `{attr}`, which prlm.rollout uses"
    from trl.models.utils import unwrap_model_for_generation  # noqa: F401  (the fast path's unwrapping)
    overrides = {p.name: p.read_text().count("def _generate_single_turn") for p in (ROOT / "prlm").glob("*.py")}
    assert {k: v for k, v in overrides.items() if v} == {"rollout.py": 1}, overrides  # one override, in generation_step_mixin
    assert MergedLoraGenerationMixin._generate_single_turn.__qualname__.startswith("generation_step_mixin")


def test_pinned_trl_logps_api():
    "prlm.shared_prefix.SharedPrefixMixin overrides GRPOTrainer._get_per_token_logps_and_entropies: its signature and return are pinned."
    import inspect
    from trl import GRPOTrainer
    params = list(inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters)
    assert params[:8] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy",
                          "compute_aux_loss"], params
    src = inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    assert "fused_lm_head=True" in src and "return logps, entropies, aux_loss" in src, "TRL changed how it scores completions"
