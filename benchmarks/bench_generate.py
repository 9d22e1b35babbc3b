#!/usr/bin/env python
"""Batched vs one-prompt-at-a-time greedy generation with the embedded SmolLM2-135M-Instruct (CPU).

Prompts: the first N queries of the embedded Debian dataset (`prlm.data.load_embedded`). `--prompts synopsis`
(default): a chat prompt asking for a one-line synopsis of the description (a 39-token prefix is shared by all);
`--prompts prlm` / `rag`: the pipeline's own prompts (`prlm.prompts.build_prompt`, BM25 top-`--k` profile items,
`--max-prompt-tokens`), whose longer shared instruction continuous batching computes once. Both runs use `prlm.models.generate`: one-by-one is engine='padded' with batch_size=1 (plain
one-prompt `model.generate`, no padding); batched uses `--engine` (default 'auto': continuous batching for greedy on
CPU, `prlm.batching.continuous_generate`; `--padded` also times the left-padded `model.generate` batches in the same interleaved rounds). Tokens/s counts generated tokens up to and including eos (padding after eos is not counted).
Greedy outputs are compared row by row: fp differences from left padding can flip a near-tie argmax, so the
share of identical completions is reported rather than asserted.

To stay fair on a machine shared with other jobs, the prompts are split into `--rounds` chunks and each chunk is
run one-by-one and then batched, so that load changes hit both sides alike. Each chunk is one batched `generate` call,
as `generate_dataset` makes one call for all its rows: keep chunks (n / rounds) a few times the batch size, so
finished slots are refilled as in real runs instead of the batch draining at the end of every chunk. `--breakdown` also times prefill alone
(max_new_tokens=1), which batching cannot speed up much: it bounds the end-to-end ratio (Amdahl).

Usage: python benchmarks/bench_generate.py [--quick] [--n 128] [--batch-size 32] [--max-new-tokens 64] [--rounds 2]
                                           [--prompts synopsis|prlm|rag] [--threads N] [--breakdown] [--json out.json]
"""
import argparse, json, os, resource, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch
from prlm.models import embedded_policy_path, load_policy, generate
from prlm.data import load_embedded


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='8 prompts, 16 new tokens (a smoke run)')
    ap.add_argument('--n', type=int, default=128, help='number of prompts')
    ap.add_argument('--batch-size', type=int, default=32, help='prompts in flight (continuous) / per model.generate call (padded)')
    ap.add_argument('--max-new-tokens', type=int, default=64)
    ap.add_argument('--rounds', type=int, default=2, help='interleave one-by-one and batched runs over this many chunks')
    ap.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch default)')
    ap.add_argument('--breakdown', action='store_true', help='also time prefill only (max_new_tokens=1)')
    ap.add_argument('--max-chars', type=int, default=600, help='synopsis prompts: truncate each description to this many characters')
    ap.add_argument('--prompts', default='synopsis', choices=['synopsis', 'prlm', 'rag'], help='which prompts (see above)')
    ap.add_argument('--k', type=int, default=4, help='prlm/rag prompts: retrieved profile items')
    ap.add_argument('--max-prompt-tokens', type=int, default=512, help='prlm/rag prompts: token budget')
    ap.add_argument('--dtype', default='float32', help="policy dtype: float32 or bfloat16 (bf16 matmuls use AMX where the CPU has it)")
    ap.add_argument('--engine', default='auto', help="batched engine: auto, continuous or padded")
    ap.add_argument('--padded', action='store_true', help="also time engine='padded' batches (same batch size)")
    ap.add_argument('--json', help='also write the results to this JSON file')
    a = ap.parse_args(argv)
    if a.quick: a.n, a.max_new_tokens, a.batch_size, a.rounds = 8, 16, 4, 1
    if a.threads: torch.set_num_threads(a.threads)

    t0 = time.time(); path = embedded_policy_path(); t_path = time.time() - t0
    t0 = time.time(); model, tok = load_policy(path, dtype=a.dtype); t_load = time.time() - t0
    ds = load_embedded(subset='test').select(range(a.n))
    if a.prompts == 'synopsis':
        prompts = [tok.apply_chat_template(
            [{'role': 'user', 'content': 'Write a one-line synopsis for this Debian package description:\n' + q[:a.max_chars]}],
            tokenize=False, add_generation_prompt=True) for q in ds['query']]
    else:
        from prlm.retrieve import retrieve_dataset
        from prlm.prompts import build_prompt
        ds = retrieve_dataset(ds, 'bm25', k=a.k, progress=False)
        prompts = [build_prompt(ex, a.prompts, tok, a.max_prompt_tokens, a.k) for ex in ds]
    plen = [len(tok(p)['input_ids']) for p in prompts]
    print(f"model {path} (path {t_path:.2f}s, load {t_load:.2f}s); {a.n} prompts, {min(plen)}-{max(plen)} tokens "
          f"(mean {sum(plen)/len(plen):.0f}, {a.prompts}); max_new_tokens={a.max_new_tokens}; torch threads {torch.get_num_threads()}; dtype {a.dtype}")

    sides = [('one_by_one', 1, 'padded'), ('batched', a.batch_size, a.engine)] + ([('padded', a.batch_size, 'padded')] if a.padded else [])
    for _, _, eng in sides: generate(model, tok, prompts[:2], batch_size=2, max_new_tokens=4, progress=False, engine=eng)  # warm-up
    res = {name: dict(batch_size=bs, engine=eng, seconds=0.0, new_tokens=0, outputs=[]) for name, bs, eng in sides}
    chunk = -(-a.n // a.rounds)
    for r in range(0, a.n, chunk):
        for name, v in res.items():
            st = {}; t0 = time.perf_counter()
            v['outputs'] += generate(model, tok, prompts[r:r+chunk], batch_size=v['batch_size'], max_new_tokens=a.max_new_tokens,
                                     progress=False, stats=st, engine=v['engine'])
            v['seconds'] += time.perf_counter() - t0; v['new_tokens'] += st['new_tokens']
    for name, v in res.items():
        v['tokens_per_s'] = round(v['new_tokens'] / v['seconds'], 2); v['seconds'] = round(v['seconds'], 2)
        print(f"{name:>10} (batch {v['batch_size']:>2}, {v['engine']}): {v['new_tokens']} tokens in {v['seconds']:.1f}s = {v['tokens_per_s']:.2f} tokens/s")
    if a.breakdown:
        for name, v in res.items():
            t0 = time.perf_counter()
            generate(model, tok, prompts, batch_size=v['batch_size'], max_new_tokens=1, progress=False, engine=v['engine'])
            v['prefill_seconds'] = round(time.perf_counter() - t0, 2)
            v['decode_tokens_per_s'] = round(v['new_tokens'] / max(1e-9, v['seconds'] - v['prefill_seconds']), 2)
            print(f"{name:>10}: prefill (1 token each) {v['prefill_seconds']:.1f}s; decode-only {v['decode_tokens_per_s']:.2f} tokens/s")
    a1, b1 = res['one_by_one']['outputs'], res['batched']['outputs']
    same = sum(x == y for x, y in zip(a1, b1))
    if a.padded:
        res['padded']['identical'] = sum(x == y for x, y in zip(a1, res['padded']['outputs']))
        print(f"padded batches: {res['padded']['tokens_per_s'] / res['one_by_one']['tokens_per_s']:.2f}x one-by-one, "
              f"identical greedy completions {res['padded']['identical']}/{len(a1)}")
    ratio = res['batched']['tokens_per_s'] / res['one_by_one']['tokens_per_s']
    print(f"speed-up batched / one-by-one: {ratio:.2f}x (target >= 4x)")
    if a.breakdown:
        print(f"decode-only speed-up: {res['batched']['decode_tokens_per_s'] / res['one_by_one']['decode_tokens_per_s']:.2f}x")
    print(f"identical greedy completions: {same}/{len(a1)} ({100*same/len(a1):.0f}%)")
    for i, (x, y) in enumerate(zip(a1, b1)):
        if x != y: print(f"  mismatch #{i}:\n    one-by-one: {x!r}\n    batched:    {y!r}")
    print(f"example: {b1[0]!r}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    summary = dict(n=a.n, prompts=a.prompts, rounds=a.rounds, mean_prompt_tokens=round(sum(plen)/len(plen)), max_new_tokens=a.max_new_tokens, dtype=a.dtype, threads=torch.get_num_threads(), load_s=round(t_load, 2), ratio=round(ratio, 2),
                   identical=same, peak_rss_mb=round(peak), **{k: {kk: vv for kk, vv in v.items() if kk != 'outputs'}
                                                                for k, v in res.items()})
    if a.json:
        with open(a.json, 'w') as f: json.dump(summary, f, indent=2)
    return summary


if __name__ == '__main__':
    main()
