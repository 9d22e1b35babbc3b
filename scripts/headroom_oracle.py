#!/usr/bin/env python
"""How much ROUGE could a system gain from the words only the profile supplies? An oracle bound on a finished run.

Usage: python scripts/headroom_oracle.py runs/experiment [system]

For every main-cell query it appends to the system's own-profile answer the gold's content words that the user's own
top-k item outputs supply and the description lacks (the `own` share of `prlm.evaluate.word_sources`), and, separately,
the ones another user's top-k outputs supply (the `other` share). An oracle picks exactly the right words, so the
ROUGE of the first minus the second bounds the personalization gain that reading those words could bring
(stopwords and style aside). Reads RUN/data/test, RUN/eval/data/test_other and RUN/eval/examples.jsonl; writes nothing.
"""
import json, sys
from pathlib import Path

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2: raise SystemExit(__doc__)
    import numpy as np
    from datasets import load_from_disk
    from prlm.evaluate import load_results, profile_only_words
    from prlm.metrics import paired_bootstrap_ci, rouge_per_example
    from prlm.prompts import item_output
    run, system = Path(argv[0]), argv[1] if len(argv) > 1 else 'prlm'
    for f in ('data/test', 'eval/data/test_other', 'eval/examples.jsonl'):
        if not (run/f).exists(): raise SystemExit(f"{run/f}: missing (a finished run with the personalization ablation writes it)")
    res, test, other = load_results(run/'eval'), load_from_disk(str(run/'data/test')), load_from_disk(str(run/'eval/data/test_other'))
    k = res.main['k']
    pred = {e['id']: e['pred'] for e in res.examples if (e['system'], e['profile'], e['retriever'], e['k']) == (system, 'own', res.main['retriever'], k)}
    if not pred: raise SystemExit(f"{run/'eval/examples.jsonl'}: no own-profile answers of system {system!r} at the main cell")
    outs = lambda ex: [item_output(ex['profile'][r['index']]) for r in ex['retrieved'][:k]]
    rows = []
    for a, b in zip(test, other):
        if a['id'] not in pred: continue
        add = lambda ex: (pred[a['id']] + ' ' + ' '.join(sorted(profile_only_words(a['target'], a['query'], outs(ex))))).strip()
        rows.append((pred[a['id']], add(a), add(b), a['target']))
    answer, own, oth, golds = map(list, zip(*rows))
    for m in ('rouge-1', 'rouge-L'):
        r = {n: np.array(rouge_per_example(p, golds)[m]) for n, p in (('answer', answer), ('own', own), ('other', oth))}
        ci = paired_bootstrap_ci(r['own'], r['other'])
        print(f"{system} at the main cell ({len(golds)} queries), {m.upper()}: its answers {r['answer'].mean():.4f}; + the gold words only "
              f"its own top-{k} items supply {r['own'].mean():.4f}; + those another user's supply {r['other'].mean():.4f}; "
              f"oracle own - other {ci.mean:+.4f} [{ci.lo:+.4f}, {ci.hi:+.4f}]")

if __name__ == '__main__': main()
