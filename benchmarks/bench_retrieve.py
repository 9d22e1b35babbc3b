#!/usr/bin/env python
"""Retrieval benchmark (prints numbers; not a test).

BM25: a LaMP-sized workload -- 1,500 queries, per-user profiles of 50..3,000 items (log-uniform), item and query
texts of realistic length built from sentences of the embedded Debian package descriptions -- ranked by
  * the reference approach of LaMP's `rank_profiles.py` and PrLM's code: per query, `BM25Okapi([x.split() for x in
    corpus])`, `get_scores(query.split())`, `np.argsort(...)[::-1][:k]`;
  * prlm's batched BM25 (`get_retriever('bm25').retrieve_batch`, by default its fastest engine: `prlm.bm25_fast`),
    same queries, same process;
  * (on a subsample, for information) prlm's `backend='bm25s'` path: one `bm25s` index per profile.
It reports the speed ratio and how many top-k sets are identical (exactly, and allowing swaps among tied scores).

Dense: items/s of the embedded all-MiniLM-L6-v2 encoding real Debian descriptions on this machine, then the same
retrieval again from the on-disk embedding cache (a fresh retriever, as a second run would be).

Usage: python benchmarks/bench_retrieve.py [--quick] [--queries 1500] [--queries-per-user 1] [--shared-queries 300] [--k 5]
                                          [--engine numba|arrow|exact] [--skip-dense]
"""
import argparse, os, re, sys, tempfile, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import numpy as np
from rank_bm25 import BM25Okapi
from prlm.retrieve import get_retriever, item_text
from prlm.data import load_embedded, _embedded_users


def sentence_pool():
    "Sentences (and synopses) of the embedded Debian descriptions."
    users = _embedded_users()
    sents = [s for u in users for it in u['items'] for s in re.split(r'(?<=[.!?])\s+', it['text']) if len(s.split()) >= 3]
    outs = [it['output'] for u in users for it in u['items']]
    return np.array(sents, dtype=object), np.array(outs, dtype=object)


def make_workload(n_queries, qpu, rng, sents, outs, min_items=50, max_items=3000, median_words=100):
    "Users with log-uniform profile sizes; item/query texts of log-normal length (median `median_words` words)."
    slen = np.array([len(s.split()) for s in sents])
    mean_s = slen.mean()
    def text():
        n = max(1, int(round(rng.lognormal(np.log(median_words), 0.6) / mean_s)))
        return ' '.join(sents[rng.integers(0, len(sents), n)])
    n_users = -(-n_queries // qpu)
    sizes = np.exp(rng.uniform(np.log(min_items), np.log(max_items), n_users)).astype(int)
    work = []
    for u, n in enumerate(sizes):
        prof = [dict(id=f'u{u}-{i}', text=text(), output=str(outs[rng.integers(len(outs))]), date=None) for i in range(n)]
        for j in range(qpu):
            if len(work) < n_queries: work.append((f'q{u}-{j}', text(), prof))
    return work


def reference(query, profile, k, task):
    "LaMP/PrLM reference: a rank_bm25 index per query."
    corpus = [item_text(x, task) for x in profile]
    bm25 = BM25Okapi([x.split() for x in corpus])
    scores = bm25.get_scores(query.split())
    return np.argsort(scores)[::-1][:k], scores


def compare(ref_top, scores, got, k, tol=1e-9):
    "(identical set?, identical up to ties?, max |score diff|)"
    a, b = set(int(i) for i in ref_top), set(r['index'] for r in got)
    kk = min(k, len(scores))
    kth = np.sort(scores)[::-1][kk - 1]
    ties_ok = all(abs(scores[i] - kth) <= tol * max(1.0, abs(kth)) for i in a ^ b)
    diff = max((abs(r['score'] - scores[r['index']]) for r in got), default=0.0)
    return a == b, ties_ok, diff


def bench_bm25(args, sents, outs, n_queries, qpu, max_items, bm25s_sample=0, seed=0):
    "Reference vs prlm on one workload; wall-clock and CPU seconds, identical top-k sets."
    rng = np.random.default_rng(seed)
    bm25 = get_retriever('bm25', engine=args.engine)
    task = 'debian'
    c0 = time.process_time()      # numba compiles its kernels once (then loads them from its on-disk cache): not timed below
    bm25.retrieve_batch(['warm up'], [[dict(id='0', text='warm up', output='', date=None)]], 1, tasks=[task])
    warm = time.process_time() - c0
    wall = dict(ref=0.0, prlm=0.0); cpu = dict(ref=0.0, prlm=0.0)
    same = ties = n = n_items = n_tokens = 0
    maxdiff = 0.0
    bm25s_rows, done = [], 0
    while done < n_queries:
        work = make_workload(min(max(qpu, 100), n_queries - done), qpu, rng, sents, outs, max_items=max_items)
        done += len(work)
        qs, ps = [w[1] for w in work], [w[2] for w in work]
        w0, c0 = time.perf_counter(), time.process_time()
        refs = [reference(q, p, args.k, task) for q, p in zip(qs, ps)]
        w1, c1 = time.perf_counter(), time.process_time()
        got = bm25.retrieve_batch(qs, ps, args.k, tasks=[task] * len(qs))
        w2, c2 = time.perf_counter(), time.process_time()
        wall['ref'] += w1 - w0; wall['prlm'] += w2 - w1; cpu['ref'] += c1 - c0; cpu['prlm'] += c2 - c1
        for (top, sc), g in zip(refs, got):
            s, t, d = compare(top, sc, g, args.k)
            same += s; ties += t; n += 1; maxdiff = max(maxdiff, d)
        seen = set()
        for p in ps:
            if id(p) not in seen: seen.add(id(p)); n_items += len(p); n_tokens += sum(len(item_text(x, task).split()) for x in p)
        if len(bm25s_rows) < bm25s_sample: bm25s_rows += list(zip(qs, ps))[:bm25s_sample - len(bm25s_rows)]
        print(f'  {done}/{n_queries} queries: reference {wall["ref"]:.1f}s, prlm {wall["prlm"]:.1f}s', file=sys.stderr, flush=True)
    n_users = len(range(0, n, qpu))
    print(f"\n== BM25: {n} queries, {qpu} per profile, {n_users} users, {n_items:,} profile items "
          f"({n_items / n_users:.0f} per user on average, 50..{max_items}), {n_tokens / max(1, n_items):.0f} tokens per item, k={args.k}")
    print(f"prlm engine: {bm25.engine}; one-time kernel compile/cache load before timing: {warm:.2f} CPU s")
    print(f"                                          wall s   CPU s   ms/query (wall)")
    print(f"reference: rank_bm25.BM25Okapi per query {wall['ref']:8.2f} {cpu['ref']:8.2f}   {1000 * wall['ref'] / n:.1f}")
    print(f"prlm bm25 (batched, exact Okapi)         {wall['prlm']:8.2f} {cpu['prlm']:8.2f}   {1000 * wall['prlm'] / n:.1f}")
    print(f"speed ratio: {wall['ref'] / wall['prlm']:.1f} x wall-clock, {cpu['ref'] / cpu['prlm']:.1f} x CPU time")
    print(f"top-{args.k} sets identical: {100 * same / n:.2f} %  (allowing swaps among tied scores: {100 * ties / n:.2f} %); "
          f"max |score difference| on returned items: {maxdiff:.1e}")
    if bm25s_rows:   # bm25s backend, for information (one bm25s index per profile; Lucene scoring, so top-k differs by design)
        b2 = get_retriever('bm25', backend='bm25s', method='lucene')
        qs, ps = [r[0] for r in bm25s_rows], [r[1] for r in bm25s_rows]
        c0 = time.process_time(); [reference(q, p, args.k, task) for q, p in zip(qs, ps)]; c_ref = time.process_time() - c0
        c0 = time.process_time(); b2.retrieve_batch(qs, ps, args.k, tasks=[task] * len(qs)); c_b2 = time.process_time() - c0
        print(f"[info] backend='bm25s' (one bm25s index per profile), {len(qs)} queries: {c_b2:.2f} s CPU vs reference "
              f"{c_ref:.2f} s -> {c_ref / c_b2:.2f} x")
    return dict(ratio_wall=wall['ref'] / wall['prlm'], ratio_cpu=cpu['ref'] / cpu['prlm'], identical=same / n, identical_ties=ties / n)


def bench_dense(args):
    from prlm.retrieve import DenseRetriever
    import torch
    ds = load_embedded('time', 'dev')
    if args.dense_users: ds = ds.select(range(min(args.dense_users, len(ds))))
    qs, ps, tasks = ds['query'], ds['profile'], ds['task']
    texts = {item_text(it, t) for p, t in zip(ps, tasks) for it in p}
    with tempfile.TemporaryDirectory() as cache:
        r1 = DenseRetriever(cache_dir=cache, progress=False)
        r1._load()                                            # model load is not part of the encoding time
        c0, t0 = time.process_time(), time.perf_counter(); res1 = r1.retrieve_batch(qs, ps, args.k, tasks=tasks)
        t1, c1 = time.perf_counter() - t0, time.process_time() - c0
        r2 = DenseRetriever(cache_dir=cache, progress=False)  # a fresh retriever: reads the cache from disk
        calls = []
        r2._load()[0].register_forward_hook(lambda *a: calls.append(1))
        t0 = time.perf_counter(); res2 = r2.retrieve_batch(qs, ps, args.k, tasks=tasks); t2 = time.perf_counter() - t0
        t0 = time.perf_counter(); r2.retrieve_batch(qs, ps, args.k, tasks=tasks); t3 = time.perf_counter() - t0
    print(f"\n== Dense: embedded all-MiniLM-L6-v2, {len(qs)} queries of the embedded dataset (time/dev), "
          f"{len(texts):,} distinct item texts, torch threads={torch.get_num_threads()}")
    print(f"first pass (encode {r1.n_encoded:,} texts + rank) : {t1:8.2f} s  ({r1.n_encoded / t1:.1f} texts/s wall-clock; "
          f"{c1:.1f} CPU s over all threads = {r1.n_encoded / c1:.1f} texts per CPU-second)")
    print(f"second pass, fresh retriever, disk cache  : {t2:8.3f} s  ({t1 / t2:.0f} x faster; model forward calls: {len(calls)})")
    print(f"third pass, same retriever (memory)       : {t3:8.3f} s  ({t1 / t3:.0f} x faster)")
    print(f"identical results first vs cached         : {res1 == res2}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='300 queries, profiles up to 1,000 items, 6 dense queries')
    ap.add_argument('--queries', type=int, default=1500)
    ap.add_argument('--queries-per-user', type=int, default=1, help='queries sharing one profile (LaMP: 1)')
    ap.add_argument('--max-items', type=int, default=3000)
    ap.add_argument('--k', type=int, default=5)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--bm25s-sample', type=int, default=50)
    ap.add_argument('--dense-users', type=int, default=20, help='queries of the embedded dev set for the dense part (0 = all 300)')
    ap.add_argument('--shared-queries', type=int, default=300, help='size of a second workload with 5 queries per profile (0: skip)')
    ap.add_argument('--engine', choices=['numba', 'arrow', 'exact'], default=None, help="prlm's BM25 engine (default: numba when installed)")
    ap.add_argument('--skip-dense', action='store_true')
    ap.add_argument('--skip-bm25', action='store_true')
    args = ap.parse_args()
    if args.quick: args.queries, args.max_items, args.dense_users, args.bm25s_sample, args.shared_queries = 300, 1000, 6, 20, 150
    t0 = time.perf_counter()
    sents, outs = sentence_pool()
    print(f"text source: {len(sents):,} sentences of the embedded Debian descriptions")
    if not args.skip_bm25:
        bench_bm25(args, sents, outs, args.queries, args.queries_per_user, args.max_items, args.bm25s_sample, args.seed)
        if args.shared_queries:   # users whose several queries share one profile (retrieve_dataset groups them)
            bench_bm25(args, sents, outs, args.shared_queries, 5, args.max_items, 0, args.seed + 1)
    if not args.skip_dense: bench_dense(args)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f}s")


if __name__ == '__main__': main()
