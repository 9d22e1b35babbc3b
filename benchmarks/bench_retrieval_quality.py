#!/usr/bin/env python
"""Retrieval quality benchmark (prints numbers; not a test): does a retriever find the user's relevant items?

On the embedded Debian dev set (`prlm.data.load_embedded('time', 'dev')`: 300 queries, one per maintainer; the query
is a package description, the gold `target` its synopsis, the profile the maintainer's earlier packages), each
retriever picks the top-1 item and its `output` (a synopsis) is copied as the prediction. Reported per retriever:
  * own   -- mean ROUGE-1 / ROUGE-L F of that copy against the gold, top-1 taken from the user's OWN profile;
  * other -- the same with the profile of ANOTHER user (`prlm.data.swap_profiles`, seeded pairing `other_users`);
  * gap   -- own minus other ROUGE-1: how much of the score comes from this user's history;
  * for the lexical variants, the paired bootstrap CI of (bm25_norm - bm25) on own-profile ROUGE-1, and how often
    their top-1 items differ.
`oracle` is the best single item of the profile by ROUGE-1 against the gold (the ceiling of any top-1 copy).
Scores are per-example ROUGE F averaged (`prlm.metrics.rouge_per_example`: LaMP's scorer, no stemming).

Usage: python benchmarks/bench_retrieval_quality.py [--skip-dense] [--seed 0] [--split time] [--out PATH]
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
from pathlib import Path
import numpy as np
from prlm.data import load_embedded, swap_profiles
from prlm.utils import atomic_write_json
from prlm.retrieve import get_retriever, retrieve_dataset, retrieved_items
from prlm.metrics import rouge_per_example, paired_bootstrap_ci


def top1_copy(ds, retriever):
    "The `output` of each row's top-1 retrieved item ('' for an empty profile), and the top-1 index (-1)."
    ds = retrieve_dataset(ds, retriever, k=1, progress=False)
    preds = [(retrieved_items(e)[0]['output'] or '') if e['retrieved'] else '' for e in ds]
    return preds, [r[0]['index'] if r else -1 for r in ds['retrieved']]


def oracle(ds):
    "Per row, the best ROUGE-1 / ROUGE-L F of any single profile item's output against the gold."
    outs, golds, row = [], [], []
    for i, e in enumerate(ds):
        for it in e['profile']: outs.append(it['output'] or ''); golds.append(e['target']); row.append(i)
    r = rouge_per_example(outs, golds)
    best1, bestL = np.zeros(len(ds)), np.zeros(len(ds))
    np.maximum.at(best1, row, r['rouge-1']); np.maximum.at(bestL, row, r['rouge-L'])
    return best1, bestL


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--split', default='time', help="load_embedded split: 'time' or 'user'")
    ap.add_argument('--part', default='dev', help='dev or test')
    ap.add_argument('--seed', type=int, default=0, help='seed of the other-user pairing and of `random`')
    ap.add_argument('--skip-dense', action='store_true', help='leave out dense (MiniLM on CPU)')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'retrieval_quality.json'))
    a = ap.parse_args()

    own = load_embedded(a.split, a.part)
    other = swap_profiles(own, a.seed)
    golds = own['target']
    names = ['bm25', 'bm25_norm'] + ([] if a.skip_dense else ['dense']) + ['recency', 'random']
    res, per_ex, top = {}, {}, {}
    for name in names:
        kw = dict(seed=a.seed) if name == 'random' else dict(progress=False) if name == 'dense' else {}
        r = get_retriever(name, **kw)
        t0 = time.perf_counter()
        row = {}
        for which, ds in (('own', own), ('other', other)):
            preds, idx = top1_copy(ds, r)
            sc = rouge_per_example(preds, golds)
            row[f'{which}_rouge1'], row[f'{which}_rougeL'] = float(np.mean(sc['rouge-1'])), float(np.mean(sc['rouge-L']))
            per_ex[name, which], top[name, which] = sc['rouge-1'], idx
        row['gap_rouge1'] = row['own_rouge1'] - row['other_rouge1']
        row['seconds'] = round(time.perf_counter() - t0, 2)
        res[name] = row
    for which, ds in (('own', own), ('other', other)):
        b1, bL = oracle(ds)
        res.setdefault('oracle', {}).update({f'{which}_rouge1': float(b1.mean()), f'{which}_rougeL': float(bL.mean())})
    res['oracle']['gap_rouge1'] = res['oracle']['own_rouge1'] - res['oracle']['other_rouge1']

    d = paired_bootstrap_ci(per_ex['bm25_norm', 'own'], per_ex['bm25', 'own'], n_resamples=2000, seed=0)
    diff = {'own_rouge1_bm25_norm_minus_bm25': d._asdict(),
            'top1_differs_own': float(np.mean(np.array(top['bm25_norm', 'own']) != np.array(top['bm25', 'own']))),
            'top1_differs_other': float(np.mean(np.array(top['bm25_norm', 'other']) != np.array(top['bm25', 'other'])))}

    print(f"embedded {a.split}/{a.part}: {len(own)} queries, {len(set(own['user_id']))} users; top-1 item's output "
          f"copied; mean ROUGE F; other = another user's profile (seed {a.seed})")
    print(f"{'retriever':<10} {'own R-1':>8} {'own R-L':>8} {'other R-1':>9} {'other R-L':>9} {'gap R-1':>8} {'s':>6}")
    for name, r in res.items():
        print(f"{name:<10} {r['own_rouge1']:8.4f} {r['own_rougeL']:8.4f} {r['other_rouge1']:9.4f} {r['other_rougeL']:9.4f} "
              f"{r['gap_rouge1']:8.4f} {r.get('seconds', float('nan')):6.1f}")
    print(f"bm25_norm - bm25, own ROUGE-1: {d.mean:+.4f} (95% paired bootstrap CI {d.lo:+.4f} .. {d.hi:+.4f}); "
          f"top-1 differs on {diff['top1_differs_own']:.0%} of queries (own), {diff['top1_differs_other']:.0%} (other)")

    out = dict(command='python benchmarks/bench_retrieval_quality.py' + (' --skip-dense' if a.skip_dense else ''),
               dataset=f'embedded {a.split}/{a.part}', n_queries=len(own), n_users=len(set(own['user_id'])), k=1,
               metric='mean per-example ROUGE F (prlm.metrics.rouge_per_example) of the top-1 item output vs target',
               seed=a.seed, retrievers=res, bm25_norm_vs_bm25=diff)
    atomic_write_json(a.out, out)
    print('wrote', a.out)


if __name__ == '__main__': main()
