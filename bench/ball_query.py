#!/usr/bin/env python3
"""The query path's Hamming ball, two versions of semhash side by side: a batch of
queries through ``search.search_many`` over synthetic addresses and codes.

Each setting (a semhash source tree, a number of documents) runs in a process of
its own, one after the other in turn, ``--runs`` times; each process builds the
same data (uniform 28-bit addresses and 256-bit codes, seed 0; the queries are
random documents with 2 address bits and 30 code bits flipped), calls
``search_many`` once on the whole batch to load and compile the kernels, then
times a new table's first batch (the table's sorted and half-tables built on the
way, as a query process builds them) and three more batches on it. The
shortlist is 500 rows, k 500, as ``semhash query --codes-only`` asks (Index.shortlist)::

    git archive 413da83 semhash | tar -x -C /tmp/before
    .venv/bin/python bench/ball_query.py --before /tmp/before --runs 5

Prints the medians per setting, and the after/before ratio of each median.

With ``--index DB --queries-file JSONL``, times whole ``semhash query - --jsonl
--codes-only`` processes of each tree on that index instead (the same file for
both: an index of the older schema, which both read), after two rounds of
warm-up, and checks that both print the same hits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_BITS, N_WORDS, SHORTLIST = 28, 4, 500


def data(n: int, n_queries: int):
    import numpy as np

    rng = np.random.default_rng(0)
    addresses = rng.integers(0, 2**N_BITS, n, dtype=np.int64)
    codes = rng.integers(0, 2**63, (n, N_WORDS), dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    picked = rng.integers(0, n, n_queries)
    flips = np.zeros((n_queries, N_BITS), bool)
    flips[np.arange(n_queries)[:, None], rng.integers(0, N_BITS, (n_queries, 2))] = True
    query_addresses = addresses[picked] ^ (flips * (1 << np.arange(N_BITS))).sum(axis=1)
    query_codes = codes[picked].copy()
    for _ in range(30):
        bit = rng.integers(0, 64 * N_WORDS, n_queries)
        query_codes[np.arange(n_queries), bit // 64] ^= np.uint64(1) << (bit % 64).astype(np.uint64)
    return addresses, codes, query_addresses, query_codes


def child(n: int, n_queries: int) -> dict:
    """Time this process's semhash on the data (run with PYTHONPATH set to a tree)."""
    import semhash
    from semhash import search
    from semhash.addresses import AddressTable

    addresses, codes, query_addresses, query_codes = data(n, n_queries)
    search.search_many(AddressTable(addresses, N_BITS), codes, query_addresses, query_codes, SHORTLIST, shortlist=SHORTLIST)
    table = AddressTable(addresses, N_BITS)
    t0 = time.perf_counter()
    first = search.search_many(table, codes, query_addresses, query_codes, SHORTLIST, shortlist=SHORTLIST)
    times = [time.perf_counter() - t0]
    for _ in range(3):
        t0 = time.perf_counter()
        again = search.search_many(table, codes, query_addresses, query_codes, SHORTLIST, shortlist=SHORTLIST)
        times.append(time.perf_counter() - t0)
    import hashlib

    digest = hashlib.sha256(b"".join(a.tobytes() for a in first)).hexdigest()[:16]
    assert all((a == b).all() for a, b in zip(first, again))
    return {"source": semhash.__file__, "first": times[0], "warm": statistics.median(times[1:]),
            "radius": float(statistics.median(first[3].tolist())), "digest": digest}


def cli_runs(sides: dict[str, Path], db: Path, queries: Path, runs: int) -> None:
    """Whole query processes of each tree in turn; the medians and their ratio."""
    walls: dict[str, list[float]] = {side: [] for side in sides}
    outputs = {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    print(f"load at start: {os.getloadavg()}", file=sys.stderr)
    for i in range(2 + runs):
        for side, tree in sides.items():
            cmd = [sys.executable, "-m", "semhash", "query", "-", "--jsonl", "--codes-only", "-d", str(db)]
            with open(queries, "rb") as fin:  # from the tree: `-m` imports its semhash
                t0 = time.perf_counter()
                out = subprocess.run(cmd, cwd=tree, env=env, stdin=fin, capture_output=True, check=True).stdout
                wall = time.perf_counter() - t0
            outputs.setdefault(side, out)
            if i >= 2:
                walls[side].append(wall)
                print(f"run {i - 2} {side}: {wall:.2f} s", file=sys.stderr)
    print(f"load at end: {os.getloadavg()}", file=sys.stderr)
    before, after = (statistics.median(walls[side]) for side in sides)
    print(f"| `semhash query - --jsonl --codes-only -d {db.name}` | {before:.2f} | {after:.2f} | {after / before:.2f} | "
          f"{len(set(outputs.values())) == 1} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="a source tree holding the old semhash/")
    ap.add_argument("--after", type=Path, default=ROOT, help="(default: this checkout)")
    ap.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--index", type=Path, help="time whole query processes on this index")
    ap.add_argument("--queries-file", type=Path, help="JSON lines queried, with --index")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries)))
        return
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.index:
        return cli_runs(sides, args.index.resolve(), args.queries_file.resolve(), args.runs)
    results: dict = {}
    print(f"load at start: {os.getloadavg()}", file=sys.stderr)
    for run in range(args.runs):
        for n in args.docs:
            for side, tree in sides.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                cmd = [sys.executable, __file__, "--before", str(tree), "--child", str(n), "--queries", str(args.queries)]
                out = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
                assert out["source"].startswith(str(tree)), out["source"]
                results.setdefault((n, side), []).append(out)
                print(f"run {run} n={n:,} {side}: first {out['first']:.3f} s, warm {out['warm']:.3f} s, "
                      f"median radius {out['radius']}, answers {out['digest']}", file=sys.stderr)
    print(f"load at end: {os.getloadavg()}", file=sys.stderr)
    print(f"| documents | batch of {args.queries:,} | before s (median) | after s (median) | after / before | same answers |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    for n in args.docs:
        same = {r["digest"] for side in sides for r in results[(n, side)]} == {results[(n, "before")][0]["digest"]}
        for key in ("first", "warm"):
            before = statistics.median(r[key] for r in results[(n, "before")])
            after = statistics.median(r[key] for r in results[(n, "after")])
            print(f"| {n:,} | {key} | {before:.3f} | {after:.3f} | {after / before:.2f} | {same} |")


if __name__ == "__main__":
    main()
