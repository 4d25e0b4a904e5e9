#!/usr/bin/env python3
"""Soak: queries from two processes while a third adds, prunes and retrains the index.

Issue 25's soak, on the shipped sample: the training posts are indexed, then for
``--seconds`` two reader processes query the index (the library's ``Index``, as a
long-lived service would, one Subject line of a test post at a time) while a
writer runs ``semhash index`` in cycles: add ``--batch`` test posts, prune them
again, and every third cycle retrain on everything. It reports:

- failed queries (an exception, or an index that shows fewer documents than the
  training posts; a query none of whose words the vocabulary knows is answered
  "no hits", as the CLI answers it): target 0;
- lost documents (after each write, the index's ids are not exactly those the
  writer expects): target 0;
- the query latency, apart for queries that ran while a write held the writer
  lock (``<index>.lock`` exists) and for the others.

A benchmark, not a unit test: it takes a few minutes and both cores.

Usage (from the project root)::

    .venv/bin/python bench/soak.py                 # 180 s
    .venv/bin/python bench/soak.py --seconds 60 --json soak.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from semhash.tokenize import subject  # noqa: E402

SAMPLE = ROOT / "corpora" / "20news-sample"
# A short training: the soak is about the writes, not the codes' quality.
MODEL = ["--epochs-pretrain", "2", "--epochs-finetune", "2"]


def semhash(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "semhash", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def ids_in(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM documents")}


def reader(db: str, queries: list[str], n_min: int, stop, out) -> None:
    """Query until ``stop`` is set; send back (seconds, during a write, error or None) per query."""
    from semhash.api import EmptyQuery, Index

    lock = Path(f"{db}.lock")
    index = Index.open(db)
    rows = []
    i = 0
    while not stop.is_set():
        text = queries[i % len(queries)]
        i += 1
        writing = lock.exists()
        start = time.perf_counter()
        try:
            index.query(text, k=10)
            error = None if len(index) >= n_min else f"index shows {len(index)} documents, fewer than {n_min}"
        except EmptyQuery:  # a Subject line of words the vocabulary lacks: "no hits", as the CLI's exit 1
            error = None
        except Exception as e:  # every failure counts, whatever it is
            error = f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - start
        rows.append((seconds, writing or lock.exists(), error))
    index.close()
    out.put(rows)


def writer(db: Path, train: Path, extra: Path, posts: list[Path], batch: int, deadline: float) -> dict:
    """Cycles of add, prune (and retrain every third) until ``deadline``; checks the ids after each write."""
    expected = ids_in(db)
    lost, steps, cycle = 0, [], 0
    while time.time() < deadline:
        chosen = posts[(cycle * batch) % len(posts) :][:batch]
        for post in chosen:
            (extra / post.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(post, extra / post.parent.name / f"x{post.name}")
        wanted = expected | {f"{p.parent.name}/x{p.name}" for p in chosen}
        for step, args, after in [
            ("add", [str(extra)], wanted),
            ("prune", [str(extra), "--prune"], expected),
            ("retrain", [str(train), str(extra), "--retrain", *MODEL], expected),
        ]:
            if step == "prune":
                shutil.rmtree(extra)
                extra.mkdir()
            if step == "retrain" and cycle % 3 != 2:
                continue
            start = time.perf_counter()
            semhash("index", *args, "-d", str(db), "-s", "--wait")
            steps.append((step, time.perf_counter() - start))
            found = ids_in(db)
            lost += len(after - found) + len(found - after)
        cycle += 1
    return {"cycles": cycle, "steps": steps, "lost": lost}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    values = sorted(values)
    at = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000  # noqa: E731
    return {"n": len(values), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": values[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--batch", type=int, default=100, help="test posts added and pruned per cycle")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    posts = sorted(p for p in (SAMPLE / "test").rglob("*") if p.is_file())
    queries = [s.strip().removeprefix("Re:").strip() for p in posts if (s := subject(p.read_text(encoding="latin-1")))]
    with tempfile.TemporaryDirectory() as tmp:
        db, extra = Path(tmp) / "soak.db", Path(tmp) / "extra"
        extra.mkdir()
        semhash("index", str(SAMPLE / "train"), "-d", str(db), "-s", *MODEL)
        n_train = len(ids_in(db))
        stop, out = multiprocessing.Event(), multiprocessing.Queue()
        readers = [
            multiprocessing.Process(target=reader, args=(str(db), queries[k::2], n_train, stop, out)) for k in range(2)
        ]
        for r in readers:
            r.start()
        start = time.perf_counter()
        written = writer(db, SAMPLE / "train", extra, posts, args.batch, time.time() + args.seconds)
        stop.set()
        rows = [row for _ in readers for row in out.get()]
        for r in readers:
            r.join()
        elapsed = time.perf_counter() - start
    errors = [e for _, _, e in rows if e]
    report = {
        "seconds": round(elapsed, 1),
        "queries": len(rows),
        "failed_queries": len(errors),
        "first_errors": sorted(set(errors))[:5],
        "lost_documents": written["lost"],
        "cycles": written["cycles"],
        "writes": {s: len([d for n, d in written["steps"] if n == s]) for s in ("add", "prune", "retrain")},
        "write_seconds_median": {
            s: sorted(d for n, d in written["steps"] if n == s)[len([1 for n, _ in written["steps"] if n == s]) // 2]
            for s in ("add", "prune", "retrain") if any(n == s for n, _ in written["steps"])
        },
        "latency_during_writes": percentiles([t for t, w, e in rows if w and not e]),
        "latency_otherwise": percentiles([t for t, w, e in rows if not w and not e]),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
