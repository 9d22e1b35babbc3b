#!/usr/bin/env python3
"""GRPO rollout benchmark, one run on one GPU: TRL's defaults vs prlm's recipe (`prlm.rollout`).

Model: random-init Qwen2 with DeepSeek-R1-Distill-Qwen-1.5B's shape (hidden 1536, 28 layers, 12 heads, 2 KV heads,
intermediate 8960); vocab 49,152 by default (`--vocab 151936` for the real tokenizer's size). Prompts: 300 random
tokens through a word-level tokenizer built in code; completions 512 tokens, 8 per prompt; bf16; length reward.
Every model is built from a FRESH config (the Trainer sets `config.use_cache=False` on the config it trains).

Sections (each prints as soon as it is done; results also go to OUT/bench.json):
  probe   - `generate` at batch 128: HF dynamic cache vs prlm static cache + CUDA graph (+ torch.compile), optional HF
            static cache + transformers' auto-compile.
  grpo    - `GRPOTrainer` with TRL's defaults vs `FastRolloutGRPOTrainer` with `gpu_recipe()`: completions/s,
            s/step, generation share, ms per decode step, peak memory; timed steps follow a warm-up step.

  python benchmarks/bench_grpo_gpu.py                     # GPU (installs trl/datasets from .whl/ if missing)
  python benchmarks/bench_grpo_gpu.py --tiny --device cpu # CPU smoke test of the same code paths (~1 min)
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = time.time()


def ensure_packages(wheel_dir=ROOT / ".whl", target="/tmp/site"):
    "Install trl/datasets (and their missing needs) from carried wheels when they are not importable."
    try:
        import trl, datasets  # noqa: F401
        return "present"
    except ImportError:
        pass
    from importlib.metadata import version, PackageNotFoundError
    wheels = sorted(str(p) for p in Path(wheel_dir).glob("*.whl"))
    if not wheels: sys.exit(f"trl/datasets missing and no wheels in {wheel_dir}")
    try: old_arrow = int(version("pyarrow").split(".")[0]) < 24     # datasets 5.2 wants pyarrow>=24
    except PackageNotFoundError: old_arrow = True
    if old_arrow: wheels += sorted(str(p) for p in Path(wheel_dir, "extra").glob("pyarrow-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", target, *wheels], check=True)
    sys.path.insert(0, target)
    import importlib; importlib.invalidate_caches()
    return f"installed {[Path(w).name for w in wheels]} into {target}"


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny model and lengths (CPU smoke test)")
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--prompt-len", type=int, default=300)
    p.add_argument("--completion-len", type=int, default=512)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--probe-batch", type=int, default=128)
    p.add_argument("--probe-tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="GRPO steps per config (first is warm-up)")
    p.add_argument("--budget-s", type=float, default=330, help="skip optional sections past this wall time")
    p.add_argument("--sections", default="probe,defaults,recipe,compile,hfstatic",
                   help="any of probe,defaults,recipe,compile,hfstatic,sweep (sweep: recipe+compile per --micro)")
    p.add_argument("--micro", default="4,8,16", help="micro-batch sizes for the sweep section")
    p.add_argument("--out", default=os.environ.get("OUT") or tempfile.mkdtemp())
    a = p.parse_args()
    if a.tiny:
        a.vocab, a.prompt_len, a.completion_len = 512, 24, 16
        a.probe_batch, a.probe_tokens, a.steps = 16, 12, 2
    return a


# ------------------------------------------------------------------------------------------------ model and data
def fresh_config(a):
    "A NEW Qwen2Config every call: never reuse a config object a Trainer has touched."
    from transformers import Qwen2Config
    if a.tiny:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    else:  # DeepSeek-R1-Distill-Qwen-1.5B
        shape = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                     num_key_value_heads=2, max_window_layers=21, rope_theta=10000.0)
    cfg = Qwen2Config(vocab_size=a.vocab, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=False,
                      use_sliding_window=False, bos_token_id=None, eos_token_id=1, pad_token_id=0, use_cache=True, **shape)
    assert cfg.use_cache
    return cfg


def fresh_model(a):
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    with torch.device(a.device):
        m = AutoModelForCausalLM.from_config(fresh_config(a), dtype=dtype, attn_implementation="sdpa")
    m.generation_config.eos_token_id, m.generation_config.pad_token_id = 1, 0
    return m


def make_prompts(a, n):
    import torch
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, a.vocab, (n, a.prompt_len), generator=g)
    return [" ".join(f"w{int(i)}" for i in row) for row in ids]


def length_reward(completions, **kwargs):
    "Cheap reward (so that rewards are never the bottleneck): completion length in words / 512."
    return [len(c.split()) / 512.0 for c in completions]


# ------------------------------------------------------------------------------------------------ helpers
def cuda_mem(reset=False):
    import torch
    if not torch.cuda.is_available(): return {}
    if reset:
        torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(); return {}
    return dict(peak_alloc_gb=torch.cuda.max_memory_allocated() / 2**30, peak_reserved_gb=torch.cuda.max_memory_reserved() / 2**30)


def sync():
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()


def free(*objs):
    import gc, torch
    for o in objs: del o
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ probe
def probe_hf(a, model, ids, am, cache_implementation=None):
    "ms per decode step of HF `generate` = (t(N tokens) - t(1 token)) / (N - 1), sampled, no EOS stop."
    def run(n):
        sync(); t = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=am, max_new_tokens=n, min_new_tokens=n, do_sample=True,
                       eos_token_id=None, pad_token_id=0, use_cache=True, cache_implementation=cache_implementation)
        sync(); return time.perf_counter() - t
    run(4)  # warm-up (compiles when the cache is static)
    if cache_implementation: run(a.probe_tokens)
    t1, tn = run(1), run(a.probe_tokens)
    return dict(ms_per_step=1000 * (tn - t1) / (a.probe_tokens - 1), prefill_s=t1, total_s=tn)


def probe_prlm(a, model, ids, am, compile):
    from prlm.rollout import fast_generate
    kw = dict(max_new_tokens=a.probe_tokens, eos_token_id=[], pad_token_id=0, compile=compile, check_every=32)
    sync(); t = time.perf_counter()
    _, st0, eng = fast_generate(model, ids, am, **kw)  # capture (and compile) happen here
    sync(); first = time.perf_counter() - t
    _, st, eng = fast_generate(model, ids, am, engine=eng, **kw)
    notes = getattr(eng, "notes", []); eng.release()
    return dict(notes=notes, ms_per_step=st.ms_per_step, prefill_s=st.prefill_s, total_s=st.prefill_s + st.decode_s,
                first_call_s=first, capture_s=st0.capture_s, path=st.path)


def greedy_agreement(a, model, ids, am, n=8):
    "Fraction of greedy tokens where prlm's static path agrees with HF's dynamic-cache generate (bf16: near-ties may differ)."
    from prlm.rollout import fast_generate
    ref = model.generate(input_ids=ids, attention_mask=am, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         eos_token_id=None, pad_token_id=0)[:, ids.shape[1]:]
    out, _, eng = fast_generate(model, ids, am, n, eos_token_id=[], pad_token_id=0, greedy=True)
    eng.release()
    return dict(first_token=float((out[:, 0] == ref[:, 0]).float().mean()), all_tokens=float((out == ref).float().mean()))


def section_probe(a, R):
    import torch
    model = fresh_model(a)
    assert model.config.use_cache, "fresh config must have use_cache=True"
    B, P = a.probe_batch, a.prompt_len
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, a.vocab, (B, P), generator=g)
    am = torch.ones(B, P, dtype=torch.long)
    ids[: B // 4, : P // 10] = 0; am[: B // 4, : P // 10] = 0   # a quarter of the rows left-padded
    ids, am = ids.to(a.device), am.to(a.device)
    R["probe"] = dict(batch=B, prompt_len=P, new_tokens=a.probe_tokens)
    R["probe"]["greedy_agreement"] = greedy_agreement(a, model, ids, am)
    log("greedy agreement prlm vs HF:", R["probe"]["greedy_agreement"])
    R["probe"]["hf_dynamic"] = probe_hf(a, model, ids, am); log("HF dynamic:", R["probe"]["hf_dynamic"])
    R["probe"]["prlm_graph"] = probe_prlm(a, model, ids, am, compile=False); log("prlm graph:", R["probe"]["prlm_graph"])
    return model, ids, am


# ------------------------------------------------------------------------------------------------ GRPO
def timed_trainer(base):
    "Subclass of `base` that times each rollout (`_generate_single_turn`) and each optimizer step."
    import torch
    from transformers import TrainerCallback

    class Timed(base):
        def _generate_single_turn(self, *args, **kw):
            sync(); t = time.perf_counter()
            r = super()._generate_single_turn(*args, **kw)
            sync(); self._gen_times = getattr(self, "_gen_times", []) + [time.perf_counter() - t]
            return r

    class StepTimer(TrainerCallback):
        def __init__(self): self.t, self.steps = None, []
        def on_step_begin(self, args, state, control, **kw): sync(); self.t = time.perf_counter()
        def on_step_end(self, args, state, control, **kw): sync(); self.steps.append(time.perf_counter() - self.t)
    return Timed, StepTimer


def run_grpo(a, name, trainer_cls, args_cls, kwargs, ds, tok):
    import statistics as stt
    out = tempfile.mkdtemp(prefix=f"grpo_{name}_")
    cuda_mem(reset=True)
    model = fresh_model(a)
    Timed, StepTimer = timed_trainer(trainer_cls)
    common = dict(output_dir=out, max_steps=a.steps, max_completion_length=a.completion_len, report_to=[],
                  save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
                  use_cpu=not a.device.startswith("cuda"), bf16=a.device.startswith("cuda"))
    args = args_cls(**{**common, **kwargs})
    timer = StepTimer()
    tr = Timed(model=model, reward_funcs=length_reward, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer])
    t = time.perf_counter(); tr.train(); wall = time.perf_counter() - t
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps  # completions per optimizer step
    steps, gens = timer.steps, tr._gen_times
    gps = max(len(gens) // max(len(steps), 1), 1)     # rollouts per optimizer step
    timed = steps[1:] or steps
    gen_timed = [sum(gens[i * gps:(i + 1) * gps]) for i in range(1, len(steps))] or [sum(gens)]
    step_s = stt.median(timed); gen_s = stt.median(gen_timed)
    res = dict(config=name, gen_batch=args.generation_batch_size, micro_batch=args.per_device_train_batch_size,
               grad_accum=args.gradient_accumulation_steps, grad_ckpt=bool(args.gradient_checkpointing),
               completions_per_step=per_step, step_s=step_s, completions_per_s=per_step / step_s,
               gen_s=gen_s, gen_share=gen_s / step_s, train_s=step_s - gen_s,
               ms_per_token_gen=1000 * gen_s / gps / a.completion_len, steps=steps, gen_times=gens, wall_s=wall,
               completion_mean_len=tr.state.log_history[-2].get("completions/mean_length") if len(tr.state.log_history) > 1 else None)
    st = getattr(tr, "rollout_stats", None)
    if st:
        rest = st[1:] or st
        res.update(decode_ms_per_step=sum(s.ms_per_step for s in rest) / len(rest), rollout_path=rest[-1].path,
                   capture_s=st[0].capture_s, fast_error=getattr(tr, "_prlm_fast_error", None),
                   engine_notes=getattr(getattr(tr, "_prlm_engine", None), "notes", []))
    res.update(cuda_mem())
    free(tr, model)
    return res


def section_grpo(a, R, which, compile=False, micro=None):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from prlm.rollout import FastRolloutConfig, FastRolloutGRPOTrainer, word_tokenizer, gpu_recipe
    tok = word_tokenizer(a.vocab)
    ds = Dataset.from_dict({"prompt": make_prompts(a, 64 if not a.tiny else 16)})
    if which == "defaults":
        kw = dict(num_generations=a.num_generations)  # everything else: TRL's defaults
        r = run_grpo(a, "trl_defaults", GRPOTrainer, GRPOConfig, kw, ds, tok)
    else:
        kw = gpu_recipe(num_generations=a.num_generations, max_completion_length=a.completion_len,
                        **({"micro_batch": micro} if micro else {}))
        if a.tiny: kw.update(per_device_train_batch_size=8, steps_per_generation=2, gradient_accumulation_steps=2)
        kw.update(rollout_compile=compile, rollout_strict=False)
        name = "prlm_recipe" + ("+compile" if compile else "") + (f"_micro{micro}" if micro else "")
        r = run_grpo(a, name, FastRolloutGRPOTrainer, FastRolloutConfig, kw, ds, tok)
    R.setdefault("grpo", {})[r["config"]] = r
    log(r["config"], {k: v for k, v in r.items() if k not in ("steps", "gen_times")})


# ------------------------------------------------------------------------------------------------ report
def table(R):
    L = []
    p = R.get("probe", {})
    if p:
        L.append(f"generate probe: batch {p['batch']}, prompt {p['prompt_len']}, {p['new_tokens']} sampled tokens")
        L.append("| decode path | ms / decode step | prefill s | first call s |")
        L.append("|---|---|---|---|")
        for k in ("hf_dynamic", "hf_static_compile", "prlm_graph", "prlm_graph_compile"):
            if k in p:
                v = p[k]
                L.append(f"| {k} | {v['ms_per_step']:.2f} | {v['prefill_s']:.2f} | {v.get('first_call_s', float('nan')):.1f} |")
    g = R.get("grpo", {})
    if g:
        L.append("")
        L.append("| GRPO config | gen batch | micro x accum | grad ckpt | completions/s | s/step | gen share | train s/step | ms/token in gen | decode ms/step (engine) | peak alloc GB | peak reserved GB |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for v in g.values():
            L.append(f"| {v['config']} | {v['gen_batch']} | {v['micro_batch']}x{v['grad_accum']} | {v['grad_ckpt']} | "
                     f"{v['completions_per_s']:.2f} | {v['step_s']:.2f} | {v['gen_share']:.0%} | {v['train_s']:.2f} | "
                     f"{v['ms_per_token_gen']:.2f} | {v.get('decode_ms_per_step', float('nan')):.2f} | "
                     f"{v.get('peak_alloc_gb', float('nan')):.1f} | {v.get('peak_reserved_gb', float('nan')):.1f} |")
        base = g.get("trl_defaults")
        for k, v in g.items():
            if base and k != "trl_defaults":
                L.append(f"speed-up {k} vs trl_defaults: {v['completions_per_s'] / base['completions_per_s']:.1f}x completions/s")
    return "\n".join(L)


def save(a, R):
    R["elapsed_s"] = time.time() - T0
    Path(a.out).mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out) / "bench.json.tmp"
    tmp.write_text(json.dumps(R, indent=1, default=str)); tmp.replace(Path(a.out) / "bench.json")


def main():
    import warnings, logging
    warnings.filterwarnings("ignore", category=FutureWarning); warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
    a = parse()
    R = {"args": vars(a), "packages": ensure_packages()}
    sys.path.insert(0, str(ROOT))
    import torch, transformers, trl
    transformers.logging.set_verbosity_error()
    R["env"] = dict(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__,
                    device=torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
                    vocab=a.vocab, model="Qwen2 1.5B shape (R1-Distill-Qwen-1.5B)" if not a.tiny else "tiny Qwen2")
    log("env:", R["env"], R["packages"])
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    secs = set(a.sections.split(","))
    left = lambda: a.budget_s - (time.time() - T0)
    model = ids = am = None

    def guarded(name, fn, need_s=0):
        if name not in secs: return
        if left() < need_s:
            log(f"skip {name}: {left():.0f}s left of the budget, needs ~{need_s}s"); R.setdefault("skipped", []).append(name); return
        try: fn()
        except Exception as e:  # keep what was measured so far
            import traceback; traceback.print_exc()
            R.setdefault("errors", {})[name] = repr(e)[:500]
        save(a, R); print(table(R), flush=True)

    def probe():
        nonlocal model, ids, am
        model, ids, am = section_probe(a, R)
    guarded("probe", probe)
    if model is not None: free(model); model = None
    guarded("defaults", lambda: section_grpo(a, R, "defaults"))
    guarded("recipe", lambda: section_grpo(a, R, "recipe"))

    def compile_probe():
        m = fresh_model(a)
        R["probe"]["prlm_graph_compile"] = probe_prlm(a, m, ids, am, compile=True)
        log("prlm graph+compile:", R["probe"]["prlm_graph_compile"]); free(m)
    guarded("compile", compile_probe, need_s=0 if a.tiny else 90)
    pc, pg = R.get("probe", {}).get("prlm_graph_compile"), R.get("probe", {}).get("prlm_graph")
    if pc and pg and pc["ms_per_step"] < 0.9 * pg["ms_per_step"]:
        guarded("compile", lambda: section_grpo(a, R, "recipe", compile=True), need_s=0 if a.tiny else 80)

    for mb in [int(x) for x in a.micro.split(",") if x]:
        guarded("sweep", lambda: section_grpo(a, R, "recipe", compile=a.device.startswith("cuda"), micro=mb if not a.tiny else None),
                need_s=0 if a.tiny else 60)

    def hf_static():
        m = fresh_model(a)
        R["probe"]["hf_static_compile"] = probe_hf(a, m, ids, am, cache_implementation="static")
        log("HF static+compile:", R["probe"]["hf_static_compile"]); free(m)
    guarded("hfstatic", hf_static, need_s=0 if a.tiny else 70)
    save(a, R)
    print("\n=== RESULTS ===", flush=True)
    print(table(R), flush=True)
    log("done; json:", Path(a.out) / "bench.json")


if __name__ == "__main__":
    main()
