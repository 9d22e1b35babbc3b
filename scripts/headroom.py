#!/usr/bin/env python
"""Headroom before training: what a user's profile can add on a dataset, measured with the non-LLM baselines alone (seconds, no model).

Usage: python scripts/headroom.py DIR [DIR ...] [--out FILE.json] [--task commits] [--k 4] [--retriever bm25_norm]

Each DIR holds LaMP-layout `dev_questions.json[.gz]` / `dev_outputs.json[.gz]` (e.g. the output of `prlm commits`). For every
dev query it retrieves the top-k items from the user's own profile and, with the seeded pairing of `prlm.evaluate`, from
another user's, then reports (all aggregate numbers, no per-query text):
- `prlm.evaluate.EvalResults.headroom()`: the share of the gold's content words already in the description, supplied only by
  the user's own items, only by another user's, and own - other with its paired bootstrap CI;
- ROUGE-1/ROUGE-L of copying the top-1 item's output (`copy_top1`) with the own / another user's profile, and of the first
  words of the description (`first_words`).
A run directory per DIR is written under runs/headroom/ (ignored by git); `--out` saves the numbers as JSON.
"""
import argparse, json, sys
from pathlib import Path

def headroom(d, task=None, k=4, retriever='bm25_norm', n_boot=2000, seed=0, out_root=Path('runs/headroom')) -> dict:
    "The headroom numbers of the dev files in folder `d`."
    from prlm.data import load_lamp_files
    from prlm.evaluate import evaluate_systems, EvalGrid
    d = Path(d)
    q, o = (next((p for p in (d/f'dev_{s}.json.gz', d/f'dev_{s}.json') if p.exists()), None) for s in ('questions', 'outputs'))
    if q is None or o is None: raise SystemExit(f"{d}: no dev_questions.json[.gz] / dev_outputs.json[.gz]")
    ds = load_lamp_files(q, o, task=task)
    res = evaluate_systems(ds, out_root/d.name, policy='embedded', systems=('copy_top1', 'first_words'), n_boot=n_boot, seed=seed,
                           grid=EvalGrid(retriever=retriever, k=k, ks=(k,), retrievers=(retriever,), profiles=('own', 'other', 'none')),
                           verbose=False)
    rows = {(r['system'], r['profile']): r for r in res.main_table().to_dict('records')}
    gain = {(r['system'], r['metric']): r for r in res.personalization().to_dict('records') if r['contrast'] == 'own-other'}
    pick = lambda r, m: dict(mean=r[m], lo=r[f'{m}_lo'], hi=r[f'{m}_hi'])
    out = dict(dir=d.name, task=ds[0]['task'], n=len(ds), retriever=retriever, k=k, headroom=res.headroom())
    for m in ('rouge-1', 'rouge-L'):
        g = gain[('copy_top1', m)]
        out[m] = dict(copy_top1_own=pick(rows[('copy_top1', 'own')], m), copy_top1_other=g['ablated'],
                      copy_top1_own_minus_other=dict(delta=g['delta'], lo=g['lo'], hi=g['hi']), first_words=pick(rows[('first_words', 'own')], m))
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('dirs', nargs='+'); p.add_argument('--out'); p.add_argument('--task')
    p.add_argument('--k', type=int, default=4); p.add_argument('--retriever', default='bm25_norm')
    a = p.parse_args(argv)
    res = {Path(d).name: headroom(d, a.task, a.k, a.retriever) for d in a.dirs}
    for name, r in res.items():
        h, c = r['headroom'], r['rouge-L']
        print(f"{name}: {r['n']} dev queries ({r['task']}, {r['retriever']} top-{r['k']}); content words in the description "
              f"{h['description']:.1%}, only in the own items {h['own']:.1%}, only in another user's {h['other']:.1%}: own - other "
              f"{100 * h['delta']:+.1f} points [{100 * h['lo']:+.1f}, {100 * h['hi']:+.1f}]; copy the top-1 item's output, ROUGE-L own "
              f"{c['copy_top1_own']['mean']:.3f} vs other {c['copy_top1_other']:.3f} ({c['copy_top1_own_minus_other']['delta']:+.3f} "
              f"[{c['copy_top1_own_minus_other']['lo']:+.3f}, {c['copy_top1_own_minus_other']['hi']:+.3f}]); first words {c['first_words']['mean']:.3f}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + '\n'); print(f"wrote {a.out}")

if __name__ == '__main__': main()
