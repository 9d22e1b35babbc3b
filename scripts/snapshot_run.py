#!/usr/bin/env python
"""Copy the small, shareable artifacts of a finished `prlm run` into a folder the docs can read (no models, no caches).

Usage: python scripts/snapshot_run.py runs/experiment nbs/experiment
       python scripts/snapshot_run.py runs/commits nbs/commits --aggregate-only

`--aggregate-only` is for data whose text may not be published (e.g. the commits task built from someone's history):
it copies results.json (aggregate numbers only), the config, the stage markers, rm/model/metrics.json and
grpo/train_result.json, never an answer, gold, input or sample; for the `commits` task it also writes `areas.json`
(`prlm.commits.area_agreement`: how often each system's answers carry the gold's `area:` prefix or the top item's).

Copies: results.json (the report's data; report.html is left out: 4.8 MB of inlined plotly), eval/results.json + eval/examples.jsonl (every cell's scores
and per-query predictions), grpo/log_history.jsonl + grpo/train_result.json + grpo/samples.jsonl, rm/model/metrics.json,
config.yaml, and the stage markers. Fails, naming the file, if a finished run lacks one of the required files.
"""
import shutil, sys
from pathlib import Path

REQUIRED = ['results.json', 'eval/results.json', 'eval/examples.jsonl', 'grpo/log_history.jsonl', 'grpo/train_result.json']
OPTIONAL = ['config.yaml', 'grpo/samples.jsonl', 'rm/model/metrics.json']

AGGREGATE = ['results.json', 'config.yaml', 'rm/model/metrics.json', 'grpo/train_result.json']

def _areas(src: Path) -> list:
    "`area_agreement` rows for the main cell and every extra test set of a commits run (the top item: the first one in the prompt)."
    import json
    from datasets import load_from_disk
    from prlm.commits import area_agreement
    from prlm.data import load_lamp_files
    from prlm.prompts import item_output
    def outputs(ds): return {u: {it['id']: item_output(it) for it in p} for u, p in zip(ds['user_id'], ds['profile'])}
    cfg = json.loads((src/'results.json').read_text())['config']
    sets = [('main', src/'eval/examples.jsonl', outputs(load_from_disk(str(src/'data/test'))))]
    for name, x in (cfg['eval'].get('extra_tests') or {}).items():
        sets.append((name, src/'eval/extra'/name/'examples.jsonl', outputs(load_lamp_files(x['questions'], x['outputs'], task=cfg['data']['task']))))
    rows = []
    for name, path, items in sets:
        ex = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        for e in ex:
            ids = e.get('prompt_item_ids') or []
            e['top1'] = items.get(e.get('profile_user_id'), {}).get(ids[0]) if ids else None
        rows += [dict(set=name, **r) for r in area_agreement(ex)]
    return rows

ID_KEYS = ('heldout_users',)  # lists of user ids: not text, but not aggregates either

def _drop_ids(obj):
    "`obj` without the `ID_KEYS` entries, at any depth."
    if isinstance(obj, dict): return {k: _drop_ids(v) for k, v in obj.items() if k not in ID_KEYS}
    if isinstance(obj, list): return [_drop_ids(v) for v in obj]
    return obj

def aggregate(src: Path, dst: Path):
    "Copy only aggregate artifacts (and areas.json for a commits run); JSON files lose their lists of user ids."
    import json
    if not (src/'results.json').exists(): raise SystemExit(f"{src}: not a finished run, missing results.json")
    copied = []
    for f in AGGREGATE + [p.relative_to(src).as_posix() for p in sorted(src.glob('stages/*.json'))]:
        if not (src/f).exists(): continue
        (dst/f).parent.mkdir(parents=True, exist_ok=True)
        if f.endswith('.json'): (dst/f).write_text(json.dumps(_drop_ids(json.loads((src/f).read_text())), indent=1) + '\n')
        else: shutil.copy2(src/f, dst/f)
        copied.append(f)
    if json.loads((src/'results.json').read_text())['config']['data'].get('task') == 'commits':
        (dst/'areas.json').write_text(json.dumps(_areas(src), indent=1) + '\n'); copied.append('areas.json')
    print(f"copied {len(copied)} aggregate files from {src} to {dst}: {', '.join(copied)}")

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if '--aggregate-only' in argv:
        rest = [a for a in argv if a != '--aggregate-only']
        if len(rest) != 2: raise SystemExit(__doc__)
        return aggregate(*map(Path, rest))
    if len(argv) != 2: raise SystemExit(__doc__)
    src, dst = map(Path, argv)
    missing = [f for f in REQUIRED if not (src/f).exists()]
    if missing: raise SystemExit(f"{src}: not a finished run, missing {missing}")
    copied = []
    for f in REQUIRED + [f for f in OPTIONAL if (src/f).exists()] + [p.relative_to(src).as_posix() for p in sorted(src.glob('stages/*.json'))]:
        (dst/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src/f, dst/f); copied.append(f)
    size = sum((dst/f).stat().st_size for f in copied)
    print(f"copied {len(copied)} files ({size/1e6:.2f} MB) from {src} to {dst}")

if __name__ == '__main__': main()
