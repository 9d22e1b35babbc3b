#!/usr/bin/env python
"""Copy the small, shareable artifacts of a finished `prlm run` into a folder the docs can read (no models, no caches).

Usage: python scripts/snapshot_run.py runs/experiment nbs/experiment

Copies: results.json (the report's data; report.html is left out: 4.8 MB of inlined plotly), eval/results.json + eval/examples.jsonl (every cell's scores
and per-query predictions), grpo/log_history.jsonl + grpo/train_result.json + grpo/samples.jsonl, rm/model/metrics.json,
config.yaml, and the stage markers. Fails, naming the file, if a finished run lacks one of the required files.
"""
import shutil, sys
from pathlib import Path

REQUIRED = ['results.json', 'eval/results.json', 'eval/examples.jsonl', 'grpo/log_history.jsonl', 'grpo/train_result.json']
OPTIONAL = ['config.yaml', 'grpo/samples.jsonl', 'rm/model/metrics.json']

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
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
