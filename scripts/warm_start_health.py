#!/usr/bin/env python
"""Answer health and ROUGE-L of PrLM adapters on embedded *training* queries that the warm-start run never saw.

Usage: python scripts/warm_start_health.py RUN ADAPTER [ADAPTER ...] [--n 32] [--max-new-tokens 48] [--seed 1]

RUN is the warm-start run (`configs/warm_start.yaml`): its `data/train` names the training queries GRPO used. The
validation queries are `--n` other queries of the embedded training subset (seeded), never the demo's dev queries, so a
checkpoint or a generation budget can be chosen here without looking at the test set. Each ADAPTER (a checkpoint
folder, `prlm/assets/warm_start`, or a run's `grpo/adapter`) is evaluated as the `prlm` system with the user's own BM25
top-4 items (352-token prompts, greedy, stops after `</answer>`), through `prlm.evaluate.evaluate_systems`; printed:
answers empty or not well formed, ROUGE-L, and the count of each health flag.
"""
import argparse, json, random, statistics, sys, tempfile
from pathlib import Path

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('run'); ap.add_argument('adapters', nargs='+')
    ap.add_argument('--n', type=int, default=32); ap.add_argument('--max-new-tokens', type=int, default=48)
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args(argv)
    from datasets import load_from_disk
    from prlm.data import load_embedded
    from prlm.models import embedded_policy_path
    from prlm.evaluate import evaluate_systems, EvalGrid, HEALTH_FLAGS
    train = Path(a.run)/'data'/'train'
    if not train.is_dir(): sys.exit(f"{train} is missing: RUN must be a warm-start run directory (prlm run configs/warm_start.yaml)")
    seen = set(load_from_disk(str(train))['id'])
    full = load_embedded(subset='train')
    rest = [i for i, x in enumerate(full['id']) if x not in seen]
    if len(rest) < a.n: sys.exit(f"only {len(rest)} training queries outside {train}; ask for --n {len(rest)} or fewer")
    val = full.select(sorted(random.Random(a.seed).sample(rest, a.n)))
    print(f"{a.n} validation queries: embedded training queries outside the {len(seen)} of {train} (seed {a.seed})")
    for ad in a.adapters:
        with tempfile.TemporaryDirectory(prefix='prlm_ws_health_') as out:
            evaluate_systems(val, out, str(embedded_policy_path()), adapter=ad, systems=('prlm',),
                             grid=EvalGrid(retriever='bm25_norm', k=4, ks=(), retrievers=(), profiles=('own',)),
                             max_prompt_tokens=352, gen_kw=dict(max_new_tokens=a.max_new_tokens, batch_size=32), n_boot=200, verbose=False)
            ex = [e for e in map(json.loads, open(Path(out)/'examples.jsonl')) if e['system'] == 'prlm']
        bad = sum('empty' in e['flags'] or 'not_well_formed' in e['flags'] for e in ex)
        flags = {f: sum(f in e['flags'] for e in ex) for f in HEALTH_FLAGS}
        print(f"{ad}: empty or not well formed {bad}/{len(ex)}, ROUGE-L {statistics.mean(float(e['rouge-L']) for e in ex):.3f}, flags {flags}")

if __name__ == '__main__': main()
