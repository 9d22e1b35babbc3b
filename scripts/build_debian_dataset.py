#!/usr/bin/env python
"""Rebuild prlm's embedded Debian maintainers dataset from the Debian archive index.

Usage: python scripts/build_debian_dataset.py [--lists-dir DIR] [--out PATH] [--n-users 400] [--seed 0] ...
Without --lists-dir it runs `apt-get update -o Dir::State::Lists=TMP -o Acquire::Languages=en` into a fresh temp dir
(needs network access to the Debian mirrors in /etc/apt/sources.list*). The recipe itself lives in nbs/00_data.ipynb
(`prlm.data.build_debian_dataset`); this script is only its command line.
"""
import argparse, json
from prlm.data import build_debian_dataset

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--lists-dir', help='apt lists dir with *_main_binary-amd64_Packages* and *_main_i18n_Translation-en*')
    p.add_argument('--out', help='output .jsonl.gz (default: prlm/assets/debian/debian_maintainers.jsonl.gz)')
    p.add_argument('--n-users', type=int, default=400)
    p.add_argument('--min-groups', type=int, default=5)
    p.add_argument('--min-packages', type=int, default=10)
    p.add_argument('--max-packages', type=int, default=200)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    stats = build_debian_dataset(a.lists_dir, a.out, n_users=a.n_users, min_groups=a.min_groups, min_packages=a.min_packages,
                                 max_packages=a.max_packages, seed=a.seed)
    print(json.dumps(stats, indent=1))

if __name__ == '__main__': main()
