#!/usr/bin/env python3
"""What numba compiles during a first ``semhash index``, and how long each kernel takes.

Runs ``semhash index`` in this process with numba's cache pointed at an empty
folder (or at ``--cache``, to see a warm run), listening to numba's compile
events, then answers ``--queries`` lines of the test split in one batch
(``semhash query -``) from the same index. Prints one row per compiled
function: its compile seconds (its own and those of the jitted helpers it
compiled along the way) and the step that compiled it (import of the
kernels, index build, the post-build warm-up, the query batch). Wall times of
each step are printed too, so compile time can be read against the rest.

Usage (from the project root)::

    .venv/bin/python bench/compile.py                        # the shipped sample, empty cache
    .venv/bin/python bench/compile.py --cache /tmp/warm      # the same, cache kept between runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(ROOT / "corpora/20news-sample/train"))
    parser.add_argument("--queries", default=str(ROOT / "corpora/20news-sample/test"),
                        help="a folder whose files are sent as one query batch ('' for none)")
    parser.add_argument("--cache", help="numba cache folder (default: a new empty one)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="semhash-compile-")
    os.environ["NUMBA_CACHE_DIR"] = args.cache or os.path.join(work, "numba-cache")
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    import numba.core.event as ev
    from click.testing import CliRunner

    from semhash import cli, search

    compiles = []  # (name, start, end, depth)
    stack = []
    steps = []  # (name, start, end)

    class Listener(ev.Listener):
        def on_start(self, event):
            stack.append((event.data["dispatcher"].py_func.__name__, time.perf_counter(), time.thread_time()))

        def on_end(self, event):
            name, at, cpu = stack.pop()
            compiles.append((name, at, time.perf_counter(), time.thread_time() - cpu, len(stack)))

    def step(name, fn, *a):
        at = time.perf_counter()
        out = fn(*a)
        steps.append((name, at, time.perf_counter()))
        return out

    warmup = search.warmup
    search.warmup = lambda: step("warm-up after the build", warmup)
    with ev.install_listener("numba:compile", Listener()):
        steps.append(("imports", started, time.perf_counter()))
        db = os.path.join(work, "index.db")
        runner = CliRunner()
        result = step("semhash index", runner.invoke, cli.cli, ["index", "-s", "-d", db, args.corpus])
        assert result.exit_code == 0, result.output
        if args.queries:
            lines = "".join(
                p.read_text(encoding="latin-1").replace("\n", " ") + "\n"
                for p in sorted(Path(args.queries).rglob("*")) if p.is_file()
            )
            result = step("query batch", runner.invoke, cli.cli, ["query", "-d", db, "-n", "10", "-"], lines)
            assert result.exit_code == 0, result.output

    def step_of(t):
        inner = [s for s in steps if s[1] <= t <= s[2]]
        return min(inner, key=lambda s: s[2] - s[1])[0] if inner else "?"

    # CPU seconds of the compiling thread: what the compile costs on an idle
    # machine (wall seconds also count the time other processes took the core).
    wall = cpu = 0.0
    print(f"{'kernel (and helpers compiled with it)':40s} {'cpu s':>7s} {'wall s':>7s}  step")
    for name, at, end, seconds, depth in sorted(compiles, key=lambda c: c[1]):
        if depth == 0:
            wall, cpu = wall + end - at, cpu + seconds
            print(f"{name:40s} {seconds:7.2f} {end - at:7.2f}  {step_of(at)}")
    print(f"{'all compiles':40s} {cpu:7.2f} {wall:7.2f}")
    print()
    for name, at, end in steps:
        print(f"{name:40s} {end - at:8.2f} s wall")


if __name__ == "__main__":
    main()
