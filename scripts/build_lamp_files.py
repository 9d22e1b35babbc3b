#!/usr/bin/env python
"""Build LaMP-5- or LaMP-7-format files (`{split}_questions.json` / `{split}_outputs.json`) from Debian maintainers that are
NOT in prlm's embedded sample: a held-out check that the pipeline works on user-supplied LaMP files, not only on the shipped data.

Usage: python scripts/build_lamp_files.py OUT_DIR [--task LaMP-5|LaMP-7] [--lists-dir DIR] [--n-users 120] [--seed 1]
                                          [--min-groups 3] [--min-packages 5]
Without --lists-dir it runs `apt-get update` into a temp dir (needs the Debian mirrors). Each maintainer's packages
become a LaMP user, one time-split query per user for `dev` (their last Source group) and up to three for `train`,
exactly as the embedded split is built. LaMP-5: profile items `{id, abstract, title, date}` (description -> synopsis).
LaMP-7: profile items `{id, text, date}` holding only what the maintainer wrote (their synopses, as LaMP-7's items are
the user's tweets), and the query asks to rewrite the description in the user's words (gold: their synopsis).
Then: `prlm run configs/lamp_files.yaml` (paths under runs/debian_lamp5/) or `configs/lamp7_files.yaml` (runs/debian_lamp7/).
"""
import argparse, json
from pathlib import Path
from prlm.data import (_seeded_key, apt_update_lists, build_debian_users, debian_items, embedded_records, _embedded_users,
                       write_lamp_outputs)
from prlm.utils import atomic_write_json

def lamp5(rec):
    "A shared-schema Debian record as a LaMP-5 question."
    return dict(id=rec['id'], user_id=rec['user_id'],
                input='Generate a title for the following abstract of a paper: ' + rec['query'],
                profile=[dict(id=p['id'], abstract=p['text'], title=p['output'], date=p['date']) for p in rec['profile']])

def lamp7(rec):
    "A shared-schema Debian record as a LaMP-7 question: the user's items are their own synopses (text only)."
    return dict(id=rec['id'], user_id=rec['user_id'],
                input='Paraphrase the following tweet without any explanation before or after it: ' + rec['query'],
                profile=[dict(id=p['id'], text=p['output'], date=p['date']) for p in rec['profile']])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out_dir'); p.add_argument('--task', choices=['LaMP-5', 'LaMP-7'], default='LaMP-5')
    p.add_argument('--lists-dir'); p.add_argument('--n-users', type=int, default=120)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--min-groups', type=int, default=3); p.add_argument('--min-packages', type=int, default=5)
    a = p.parse_args()
    lists = Path(a.lists_dir) if a.lists_dir else apt_update_lists()
    shipped = {u['user_id'] for u in _embedded_users()}
    # the shipped sample takes every maintainer with >= 5 Source groups and >= 10 packages: look below that bar
    users, stats = build_debian_users(debian_items(lists), n_users=100_000, min_groups=a.min_groups, min_packages=a.min_packages, seed=a.seed)
    users = sorted((u for u in users if u['user_id'] not in shipped), key=lambda u: _seeded_key(a.seed, u['user_id']))
    users = sorted(users[:a.n_users], key=lambda u: u['user_id'])
    out = Path(a.out_dir)
    for sub in ('train', 'dev'):
        recs = embedded_records('time', sub, users=users)
        atomic_write_json(out/sub/f'{sub}_questions.json', [(lamp5 if a.task == 'LaMP-5' else lamp7)(r) for r in recs])
        write_lamp_outputs({r['id']: r['target'] for r in recs}, out/sub/f'{sub}_outputs.json', a.task)
        print(f"{sub}: {len(recs)} queries from {len({r['user_id'] for r in recs})} maintainers outside the embedded sample -> {out/sub}")
    print(json.dumps(dict(eligible=stats.get('eligible_maintainers'), shipped=len(shipped), used=len(users))))

if __name__ == '__main__': main()
