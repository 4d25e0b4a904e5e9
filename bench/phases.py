"""Where one ``semhash index`` build spends its time: a phase table.

Runs :func:`semhash.api.build_index` in this process with timers wrapped around its
phases (the library is not changed) and prints one markdown row per phase, in wall
seconds, with the load average before and after:

- read + tokenize + vocabulary: the one streamed pass over the corpus
  (tokenizing, and choosing the vocabulary, are also shown alone: they run inside it);
- teacher neighbours: each document's nearest documents by TF-IDF over every term,
  which fine-tuning learns from, found in a thread while the trunk pretrains (its
  row overlaps theirs in time);
- each RBM's pretraining, then each head's code RBM and fine-tuning; the two heads
  train side by side (one thread each), so their rows overlap in time and the
  "train" row is the wall time of the whole fit;
- encode, write, and the neighbour lists written after the index.

Numba compiles on first use: run it twice and read the second (warm) table unless
the cold one is what you want. Timings move with the machine's load; compare
settings in the same session, alternated.

    .venv/bin/python bench/phases.py ../shared/corpora-src/20news-bydate/20news-bydate-train
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path


def timed_phases() -> dict[str, float]:
    """Wrap the build's phases in timers; returns the dict they add their seconds to."""
    from semhash import build, graph, neighbours, reading, vocab
    from semhash import hasher as hasher_module

    seconds: dict[str, float] = defaultdict(float)
    lock = threading.Lock()

    def wrap(owner, attribute: str, name) -> None:
        fn = getattr(owner, attribute)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                label = name(*args, **kwargs) if callable(name) else name
                with lock:
                    seconds[label] += time.perf_counter() - start

        setattr(owner, attribute, timed)

    wrap(build, "_count", "read + tokenize + vocabulary")
    wrap(reading.Coverage, "words", "  of which tokenize")
    wrap(neighbours, "by_words", "teacher neighbours (TF-IDF, every term)")
    wrap(hasher_module.SemanticHasher, "_pretrain_rbm", lambda self, X, n_hidden, kind, rng, desc, *a, **k: desc)
    wrap(hasher_module.SemanticHasher, "_finetune", lambda self, ae, X, teacher, noise, rng, desc: desc)
    wrap(hasher_module.SemanticHasher, "fit", "train (whole fit)")
    wrap(build, "_encode_all", "encode")
    wrap(build, "write_index", "write")
    wrap(graph, "fill_neighbours", "neighbour lists")
    wrap(vocab, "top_words", "  of which vocabulary")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="what `semhash index` reads (a .jsonl file: as its stdin)")
    ap.add_argument("--runs", type=int, default=1, help="builds in a row (the first compiles numba's kernels if cold)")
    ap.add_argument("--train-sample", type=int, help="as `semhash index --train-sample` (default: semhash's)")
    args = ap.parse_args()

    from semhash import api

    seconds = timed_phases()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            seconds.clear()
            load = os.getloadavg()[0]
            start = time.perf_counter()
            options = {} if args.train_sample is None else {"train_sample": args.train_sample}
            lines = [p for p in args.paths if p.endswith(".jsonl")]  # read as `semhash index -` reads stdin
            with contextlib.ExitStack() as stack:
                if lines:
                    options["stdin"] = stack.enter_context(open(lines[0], encoding="utf-8"))
                paths = ["-" if p in lines[:1] else p for p in args.paths]
                api.build_index(paths, Path(tmp) / f"phases{run}.db", **options)
            total = time.perf_counter() - start
            print(f"\nrun {run + 1}: load {load:.2f} -> {os.getloadavg()[0]:.2f}\n")
            print("| phase | seconds |\n| --- | ---: |")
            for name, value in seconds.items():
                print(f"| {name} | {value:.1f} |")
            print(f"| **total** | **{total:.1f}** |")


if __name__ == "__main__":
    main()
