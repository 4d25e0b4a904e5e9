#!/usr/bin/env python3
"""Whether each ``parallel=True`` kernel pays: its run time on 1 thread against all.

A parallel kernel costs several times the compile time of a serial one (see
``bench/compile.py``); it pays only if it saves more than that where it runs.
This answers a batch of queries (default: the 7,532 20NG test posts, ``-n 100``,
as ``make bench-quality`` does) from an index, and times every call of each
parallel kernel on 1 thread and on all of numba's threads, alternated
(``--repeats`` times each, median), in the same process and minutes.

Usage (from the project root, with an index of the 20NG train posts)::

    .venv/bin/python bench/threads.py --index 20ng-train.db --queries path/to/20news-bydate-test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARALLEL = ["search_batch", "join_shortlists", "rerank_batch", "count_ascii_words", "ascii_word_ids", "counts_times"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a folder whose files are the queries")
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numba

    from semhash import Index, kernels, search

    search.warmup()  # compile (or load) everything first: only run times are measured
    n_threads = numba.get_num_threads()
    times = {name: {1: [], n_threads: []} for name in PARALLEL}

    def timed(name, kernel):
        def call(*a):
            for _ in range(args.repeats):
                for t in (1, n_threads):
                    numba.set_num_threads(t)
                    at = time.perf_counter()
                    out = kernel(*a)
                    times[name][t].append(time.perf_counter() - at)
            numba.set_num_threads(n_threads)
            return out

        return call

    for name in PARALLEL:
        setattr(kernels, name, timed(name, getattr(kernels, name)))
    texts = [p.read_text(encoding="latin-1") for p in sorted(Path(args.queries).rglob("*")) if p.is_file()]
    with Index.open(args.index) as index:
        at = time.perf_counter()
        index.query_many(texts, k=args.k, skip_empty=True, documents=True)  # as bench/quality.py sends them
        print(f"{len(texts)} queries, k={args.k}: {time.perf_counter() - at:.1f} s with the repeats\n")
    print(f"{'kernel':20s} {'calls':>5s} {'1 thread s':>10s} {f'{n_threads} threads s':>11s} {'ratio':>6s}")
    for name, by_threads in times.items():
        one, many = by_threads[1], by_threads[n_threads]
        if not one:
            print(f"{name:20s} {0:5d}")
            continue
        r = args.repeats
        calls = len(one) // r
        # each call's median over its repeats, summed over the calls
        one_s = sum(statistics.median(one[c * r : (c + 1) * r]) for c in range(calls))
        many_s = sum(statistics.median(many[c * r : (c + 1) * r]) for c in range(calls))
        print(f"{name:20s} {calls:5d} {one_s:10.3f} {many_s:11.3f} {one_s / many_s:6.2f}")


if __name__ == "__main__":
    main()
