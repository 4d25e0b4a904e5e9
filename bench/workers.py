"""The distributed part of ``semhash index --workers N``, timed: counting (read here,
tokenized and counted on the workers) and encoding (the trained model on the
workers), on synthetic documents as ``bench/cli.py`` makes them.

Each setting (this process alone, ``--workers 1``, ``--workers 2``, ...) runs in
turn, round after round, so a load that comes and goes falls on all of them; a
run starts its cluster, counts, then encodes with a model trained once before
the first round (on ``--train-sample`` documents, 1 + 1 epochs: the encoding's
cost depends on the layers' widths, not on how long they trained). Prints, for
each setting, the median of each phase and the documents/s of counting plus
encoding, cluster start included, and the load average around the runs; checks
that every setting gave the same codes.

    .venv/bin/python bench/workers.py --docs 200000 --workers 1,2 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli import synthetic_corpus  # noqa: E402


def run_once(corpus: Path, workers: int | None, model: dict) -> dict:
    """One build's counting and encoding phases (seconds) with ``workers`` (None:
    this process alone, as without --workers)."""
    import numpy as np

    from semhash import build, cluster, reading

    load = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    with open(corpus, encoding="utf-8") as stdin, cluster.connect(workers) as client:
        started = time.perf_counter()
        read = build._Pass(stem=True, previous=None)
        found = lambda: reading.read_documents(["-"], None, read.stats, stdin)  # noqa: E731
        terms, full, words, df, X = build._count(read, found, 2000, False, ["-"], client)
        counted, count_cpu = time.perf_counter(), time.process_time() - cpu
        if "hasher" not in model:
            model["hasher"] = build._train(X, full, model["sample"], (28, 256), (500, 250, 125), 1, 1, 0, False)
            counted = time.perf_counter()  # training is not the workers' part
        cpu = time.process_time()
        addresses, codes = build._encode_all(model["hasher"], X, False, client)
        encoded, encode_cpu = time.perf_counter(), time.process_time() - cpu
        workers_cpu = 0.0 if client is None else sum(client.run(time.process_time).values())
    digest = hash((addresses.tobytes(), codes.tobytes(), np.asarray(X.sum(axis=0)).tobytes(), tuple(words)))
    return {
        "start": started - start, "count": counted - started, "encode": encoded - counted,
        "workers_cpu": workers_cpu, "client_cpu_count": count_cpu, "client_cpu_encode": encode_cpu, "documents": X.shape[0], "load_before": load, "load_after": os.getloadavg()[0], "digest": digest,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=200_000, help="synthetic documents (default: %(default)s)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: %(default)s)")
    ap.add_argument("--alone", action="store_true", help="also time this process alone (no cluster)")
    ap.add_argument("--runs", type=int, default=3, help="rounds (default: %(default)s)")
    ap.add_argument("--train-sample", type=int, default=10_000, help="the model's training sample (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="also write every run as JSON here")
    args = ap.parse_args(argv)
    corpus = synthetic_corpus(args.docs)
    settings: list[int | None] = ([None] if args.alone else []) + [int(w) for w in args.workers.split(",")]
    model = {"sample": args.train_sample}
    runs: dict[str, list[dict]] = {str(s): [] for s in settings}
    for r in range(args.runs):
        for s in settings:
            runs[str(s)].append(run_once(corpus, s, model))
            print(f"round {r + 1}, workers {s}: {json.dumps({k: v for k, v in runs[str(s)][-1].items() if k != 'digest'})}", file=sys.stderr)
    digests = {run["digest"] for rs in runs.values() for run in rs}
    print(f"{args.docs:,} documents, {args.runs} rounds; nproc {os.cpu_count()}; same codes in every run: {len(digests) == 1}")
    print("| workers | start s | count s | encode s | count + encode docs/s (start included) | encode docs/s | this process's CPU s, count / encode | the workers' CPU s | load avg (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for s, rs in runs.items():
        med = {k: statistics.median(run[k] for run in rs) for k in ("start", "count", "encode", "client_cpu_count", "client_cpu_encode", "workers_cpu")}
        whole = statistics.median(run["documents"] / (run["start"] + run["count"] + run["encode"]) for run in rs)
        enc = statistics.median(run["documents"] / run["encode"] for run in rs)
        loads = ", ".join(f"{run['load_before']:.2f}-{run['load_after']:.2f}" for run in rs)
        name = "none (this process)" if s == "None" else s
        print(f"| {name} | {med['start']:.1f} | {med['count']:.1f} | {med['encode']:.1f} | {whole:,.0f} | {enc:,.0f} | {med['client_cpu_count']:.1f} / {med['client_cpu_encode']:.1f} | {med['workers_cpu']:.1f} | {loads} |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
