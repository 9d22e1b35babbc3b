#!/usr/bin/env python
"""Package a GRPO adapter trained by `prlm run` as prlm's warm start (`grpo.init_adapter: warm_start`).

Usage: python scripts/package_warm_start.py RUN [--checkpoint N] [--dest prlm/assets/warm_start] [--note TEXT]

Copies RUN/grpo/adapter (or RUN/grpo/checkpoint-N) into DEST with its weights stored as float16 (half the bytes; peft
casts them back to the model's dtype when it loads them), and writes DEST/warm_start.json (where it came from: the run's
config, the steps, the reward curve's first and last tenth) and DEST/README.md (a model card saying the same, and
`--note`: e.g. how the checkpoint was chosen). The
demo starts its own GRPO from it and labels PrLM as warm-started in the summary and the report.
"""
import argparse, json, shutil, sys, tempfile
from pathlib import Path

def _mean(xs): return round(sum(xs) / len(xs), 4) if xs else None

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('run'); ap.add_argument('--checkpoint', type=int); ap.add_argument('--dest', default='prlm/assets/warm_start')
    ap.add_argument('--note', default='', help='a paragraph for the model card, e.g. how the checkpoint was chosen')
    a = ap.parse_args(argv)
    import torch, yaml
    from safetensors.torch import load_file, save_file
    from prlm.utils import read_jsonl
    run = Path(a.run)
    src = run/'grpo'/(f'checkpoint-{a.checkpoint}' if a.checkpoint else 'adapter')
    for f in ('adapter_config.json', 'adapter_model.safetensors'):
        if not (src/f).is_file(): sys.exit(f"{src/f} is missing: is {run} a finished prlm run with a LoRA adapter?")
    cfg = yaml.safe_load((run/'config.yaml').read_text())
    steps = a.checkpoint or json.loads((run/'grpo'/'train_result.json').read_text())['global_step']
    log = [r for r in read_jsonl(run/'grpo'/'log_history.jsonl') if 'reward' in r and r.get('step', 0) <= steps]
    tenth = max(len(log) // 10, 1)
    curve = {k: dict(first=_mean([r[k] for r in log[:tenth] if k in r]), last=_mean([r[k] for r in log[-tenth:] if k in r]))
             for k in ('reward', 'completions/stopped_ratio', 'completions/mean_length') + tuple(f'rewards/{n}/mean' for n in cfg['rewards'])}
    from prlm.models import hub_id
    acfg = json.loads((src/'adapter_config.json').read_text())
    acfg['base_model_name_or_path'] = hub_id(acfg.get('base_model_name_or_path') or 'embedded')  # a checkpoint names the local folder
    if isinstance(acfg.get('target_modules'), list): acfg['target_modules'] = sorted(acfg['target_modules'])  # peft writes a set: any order
    info = dict(steps=steps, base_model=acfg['base_model_name_or_path'],
                data=cfg['data'], retrieval=cfg['retrieval'], policy=cfg['policy'], rewards=cfg['rewards'],
                grpo=cfg['grpo'], seed=cfg.get('seed'), curve_first_last_tenth=curve, dtype='float16', note=a.note or None)
    dest = Path(a.dest); tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix='.warm_start.'))
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(src/'adapter_model.safetensors').items()},
              tmp/'adapter_model.safetensors', metadata={'format': 'pt'})
    (tmp/'adapter_config.json').write_text(json.dumps(acfg, indent=2) + '\n')
    (tmp/'warm_start.json').write_text(json.dumps(info, indent=1) + '\n')
    rows = '\n'.join(f"| `{k}` | {v['first']} | {v['last']} |" for k, v in curve.items())
    (tmp/'README.md').write_text(f"""---
base_model: {info['base_model']}
library_name: peft
tags: [prlm, grpo, lora, warm-start]
---
# prlm's warm-start LoRA adapter

A LoRA adapter of {info['base_model']} trained by prlm's GRPO stage for **{steps} steps** on the embedded
Debian dataset's *training* queries ({cfg['data'].get('n_train')} queries, seed {cfg.get('seed')}; the held-out `dev`
queries were never seen), with the rewards {', '.join(f'{k} {v:g}' for k, v in cfg['rewards'].items())} and no reward
model: it teaches the answer format and the task, not the personalization reward. Weights stored as float16.

`configs/demo.yaml` starts its own, short GRPO run from it (`grpo.init_adapter: warm_start`), so the demo's PrLM is
trained when a newcomer first runs it; the demo's summary and report say that PrLM was warm-started from here.
Rebuild it with `prlm run configs/warm_start.yaml --until grpo` then
`python scripts/package_warm_start.py runs/warm_start{f' --checkpoint {a.checkpoint}' if a.checkpoint else ''}`.
{f'{chr(10)}{a.note}{chr(10)}' if a.note else ''}
Reward curve (mean over the first and the last tenth of the logged steps):

| metric | first tenth | last tenth |
|---|---|---|
{rows}
""")
    tmp.chmod(0o755)
    for f in tmp.iterdir(): f.chmod(0o644)
    if dest.exists(): shutil.rmtree(dest)
    tmp.rename(dest)
    print(f"{dest}: {steps} steps from {src}, {sum(p.stat().st_size for p in dest.iterdir()) / 1e6:.1f} MB")

if __name__ == '__main__': main()
