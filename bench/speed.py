#!/usr/bin/env python3
"""Speed of semhash's search kernels: full scans against FAISS and the memory bandwidth,
and Hamming-ball lookups, all in one process on random data.

Measured (each row a median over repeated runs, with min, max and the repeat count):

- **scan**: 10^6 and 10^7 random 256-bit codes, k = 100.
  - single queries: ``semhash.search.topk`` (one fused streaming pass, by 1 thread,
    and with the codes split between the threads of ``--threads``) and
    ``faiss.IndexBinaryFlat.search`` on the same codes;
  - batches of 100 queries: ``semhash.search.topk_batch`` and FAISS, for each thread
    count of ``--threads``; reported per query;
  - the bandwidth limit: the time to stream the code array once (a numba XOR
    reduction by 1 thread and split between threads, and numpy's ``codes.sum()``),
    measured in the same run.
  Ratios: semhash / FAISS, and time per query / bandwidth limit (a batch can go
  below 1: it reads the codes once for many queries).
- **ball**: ``AddressTable.ball(q, r)`` for r = 0..4 over 10^5, 10^6 and 10^7 random
  28-bit addresses; each repeat is one lookup around a fresh random address.

Competitors are timed interleaved (one run of each in turn), so they share the
machine's other load equally.
- **search**: ``semhash.search.search`` with k = 100 (ball shortlist + re-rank) on
  the scan's codes with random 28-bit addresses.

The table is printed, and written between ``<!-- speed:start -->`` and
``<!-- speed:end -->`` of BENCHMARKS.md (the markers are added at the end of the file
when missing; nothing else in the file changes). FAISS (``pip install faiss-cpu``) is
a bench-only dependency: without it the FAISS rows are skipped.

Timings move with other load on the machine: the section records the load average
before and after the run.

Usage (from the project root)::

    make bench-speed
    .venv/bin/python bench/speed.py --quick --output /tmp/B.md
    .venv/bin/python bench/speed.py --output /tmp/B.md --json /tmp/B.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import cpu_model, git_state, write_section  # noqa: E402

import semhash
from semhash import search
from semhash.search import AddressTable

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- speed:start -->", "<!-- speed:end -->"
K = 100
BATCH = 100
ADDRESS_BITS = 28
RADII = range(5)
BALL_METHODS = {"halves": "half-table buckets", "shells": "bucket visits", "scan": "address scan"}

FULL = dict(scan_sizes=[10**6, 10**7], ball_sizes=[10**5, 10**6, 10**7], repeats=30, lookups=300, budget_s=10.0)
QUICK = dict(scan_sizes=[10**5], ball_sizes=[10**4, 10**5], repeats=5, lookups=20, budget_s=1.0)


def log(msg: str) -> None:
    print(f"[speed] {msg}", file=sys.stderr, flush=True)


@numba.njit(nogil=True)
def stream_once(codes):
    """XOR of every word: the cheapest pass over the array, so its time is the bandwidth limit."""
    acc = np.uint64(0)
    flat = codes.reshape(codes.size)
    for i in range(flat.shape[0]):
        acc ^= flat[i]
    return acc


@numba.njit(parallel=True)
def stream_split(codes, parts):
    """:func:`stream_once` with the array split between ``parts`` threads."""
    flat = codes.reshape(codes.size)
    accs = np.zeros(parts, np.uint64)
    for p in numba.prange(parts):
        acc = np.uint64(0)
        for i in range(flat.shape[0] * p // parts, flat.shape[0] * (p + 1) // parts):
            acc ^= flat[i]
        accs[p] = acc
    return accs


@dataclass
class Row:
    """One measured setting. ``times_ms`` are per query (a batch's time / its size)."""

    group: str
    setting: str
    n: int
    threads: int | None
    times_ms: list[float] = field(default_factory=list)
    note: str = ""
    vs_faiss: float | None = None
    vs_bandwidth: float | None = None

    @property
    def median(self) -> float:
        return float(np.median(self.times_ms))

    def summary(self) -> dict:
        d = asdict(self)
        del d["times_ms"]
        times = self.times_ms
        d.update(median_ms=self.median, min_ms=min(times), max_ms=max(times), repeats=len(times))
        return d


def measure(rows: list[Row], runs: list, repeats: int, budget_s: float) -> None:
    """Time several competitors interleaved: repeat ``i`` runs each of them once, in turn.

    ``runs`` holds ``(row, fn, per, args_for)``: ``fn(*args_for(i))`` is run ``i``
    and its time divided by ``per`` (the batch size) goes to ``row.times_ms``.
    Interleaving gives every competitor the same share of whatever else the
    machine is doing, and the order rotates from round to round so that none
    always runs right after the same other one. One untimed warm-up run each
    first (JIT compile, page faults); then ``repeats`` rounds, fewer if
    ``budget_s`` runs out (at least 3).
    """
    for _, fn, _, args_for in runs:
        fn(*args_for(0))
    deadline = time.perf_counter() + budget_s
    for i in range(repeats):
        turn = i % len(runs)
        for row, fn, per, args_for in runs[turn:] + runs[:turn]:
            args = args_for(i + 1)
            t0 = time.perf_counter()
            fn(*args)
            row.times_ms.append((time.perf_counter() - t0) * 1e3 / per)
        if i >= 2 and time.perf_counter() > deadline:
            break
    rows.extend(row for row, *_ in runs)


def n_label(n: int) -> str:
    exponent = int(round(np.log10(n)))
    return f"10^{exponent}" if 10**exponent == n else f"{n:,}"


def with_threads(faiss, t: int, fn):
    """``fn`` run with FAISS on ``t`` OpenMP threads."""

    def run(*args):
        faiss.omp_set_num_threads(t)
        return fn(*args)

    return run


def bench_scan(rows: list[Row], n: int, threads: list[int], faiss, cfg: dict, rng) -> None:
    log(f"scan: generating {n:,} random 256-bit codes")
    codes = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    queries = rng.integers(0, 2**64, size=(max(64, BATCH), 4), dtype=np.uint64)
    reps, budget = cfg["repeats"], cfg["budget_s"]
    label = n_label(n)
    index = None
    if faiss is not None:
        index = faiss.IndexBinaryFlat(256)
        index.add(codes.view(np.uint8))
        check_against_faiss(codes, queries[:3], index)

    def one(i):
        return (queries[i % len(queries)],)

    log(f"scan {label}: single queries and the bandwidth limit")
    stream = Row("scan", "stream the codes once (numba XOR, 1 thread)", n, 1)
    numpy_sum = Row("scan", "stream the codes once (numpy codes.sum())", n, 1)
    single = Row("scan", f"single query, k={K}: semhash topk", n, 1)
    runs = [
        (stream, stream_once, 1, lambda i: (codes,)),
        (numpy_sum, codes.sum, 1, lambda i: ()),
        (single, lambda q: search.topk(codes, q, K, n_threads=1), 1, one),
    ]
    faiss_single = {}
    if index is not None:
        for t in threads:
            row = Row("scan", f"single query, k={K}: FAISS IndexBinaryFlat", n, t)
            run = with_threads(faiss, t, lambda q: index.search(q.view(np.uint8)[None, :], K))
            faiss_single[t] = (row, run, 1, one)
    # The 1-thread runs are interleaved with each other only, then semhash's
    # runs of each thread count, then FAISS's: threads that linger after a
    # parallel call (FAISS's OpenMP workers spin) slow down whatever runs next,
    # which made split scans look slower than one thread when interleaved.
    measure(rows, runs + [faiss_single[t] for t in faiss_single if t == 1], reps, budget)
    streams, singles = [stream], [single]
    for t in threads:
        if t == 1:
            continue
        split = Row("scan", f"stream the codes once (numba XOR, split between {t} threads)", n, t)
        ours = Row("scan", f"single query, k={K}: semhash topk (codes split between threads)", n, t)
        runs = [(split, stream_split, 1, lambda i: (codes, t)), (ours, lambda q: search.topk(codes, q, K, n_threads=t), 1, one)]
        measure(rows, runs, reps, budget)
        streams.append(split)
        singles.append(ours)
        if t in faiss_single:
            measure(rows, [faiss_single[t]], reps, budget)
    faiss_single = {t: run[0] for t, run in faiss_single.items()}
    bandwidth = min(row.median for row in streams)  # the machine's: whichever stream was faster
    for row in [*singles, *faiss_single.values()]:
        row.vs_bandwidth = row.median / bandwidth
    for row in singles:
        if row.threads in faiss_single:
            row.vs_faiss = row.median / faiss_single[row.threads].median

    log(f"scan {label}: batches of {BATCH}")
    batch = queries[:BATCH]
    for t in threads:
        ours = Row("scan", f"batch of {BATCH}, k={K}: semhash topk_batch", n, t)
        runs = [(ours, lambda: search.topk_batch(codes, batch, K, n_threads=t), BATCH, lambda i: ())]
        theirs = None
        if index is not None:
            theirs = Row("scan", f"batch of {BATCH}, k={K}: FAISS IndexBinaryFlat", n, t)
            run = with_threads(faiss, t, lambda: index.search(batch.view(np.uint8), K))
            runs.append((theirs, run, BATCH, lambda i: ()))
        measure(rows, runs, max(3, reps // 4), budget)
        ours.vs_bandwidth = ours.median / bandwidth
        if theirs is not None:
            theirs.vs_bandwidth = theirs.median / bandwidth
            ours.vs_faiss = ours.median / theirs.median
    if index is not None:
        faiss.omp_set_num_threads(max(threads))
    del index

    log(f"search {label}: ball + re-rank, k={K}")
    addresses = rng.integers(0, 2**ADDRESS_BITS, size=n)
    table = AddressTable(addresses, ADDRESS_BITS)
    probes = rng.integers(0, 2**ADDRESS_BITS, size=reps + 1)
    radii = []

    def run_search(address, query):
        radii.append(search.search(table, codes, int(address), query, K)[2])

    row = Row("search", f"search k={K}: ball shortlist + re-rank", n, 1)
    measure(rows, [(row, run_search, 1, lambda i: (probes[i % len(probes)], queries[i % len(queries)]))], reps, budget)
    row.note = f"radius used: median {int(np.median(radii))}, range {min(radii)}..{max(radii)}"


def check_against_faiss(codes, queries, index) -> None:
    """semhash and FAISS must agree on the top-k distances (the rows may differ on ties)."""
    distances, _ = index.search(queries.view(np.uint8), K)
    ours = search.topk_batch(codes, queries, K)[1]
    if not np.array_equal(distances, ours):
        sys.exit("error: semhash and FAISS disagree on the top-k distances")


def bench_ball(rows: list[Row], n: int, cfg: dict, rng) -> None:
    label = n_label(n)
    log(f"ball {label}: building the address table")
    addresses = rng.integers(0, 2**ADDRESS_BITS, size=n)
    t0 = time.perf_counter()
    table = AddressTable(addresses, ADDRESS_BITS).prepare()  # the tables are built on first use: now
    build_s = time.perf_counter() - t0
    lookups = cfg["lookups"]
    probes = rng.integers(0, 2**ADDRESS_BITS, size=lookups + 1)
    for radius in RADII:
        sizes = []
        row = Row("ball", f"AddressTable.ball, r={radius}", n, 1)
        lookup = lambda q, r=radius: sizes.append(len(table.ball(int(q), r)))  # noqa: E731
        measure(rows, [(row, lookup, 1, lambda i: (probes[i],))], lookups, cfg["budget_s"])
        row.note = f"{BALL_METHODS[table.ball_method(radius)]}; {np.mean(sizes):.1f} rows on average"
        if radius == 0:
            row.note += f"; tables built in {build_s:.2f} s"


def machine_info() -> dict:
    cpu = cpu_model()
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    return {"nproc": nproc, "cpu": cpu}


def software_info(faiss) -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "faiss": getattr(faiss, "__version__", None) if faiss is not None else None,
        "semhash": semhash.__version__,
        **git_state(ROOT),
    }


def fmt_ms(x: float) -> str:
    return f"{x:.4f}" if x < 0.1 else f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


TABLE_HEAD = ["", "N", "threads", "median ms", "min ms", "max ms", "repeats", "/ FAISS", "/ bandwidth", "note"]


def table_lines(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        out.append(
            [
                r.setting,
                n_label(r.n),
                "" if r.threads is None else str(r.threads),
                fmt_ms(r.median),
                fmt_ms(min(r.times_ms)),
                fmt_ms(max(r.times_ms)),
                str(len(r.times_ms)),
                fmt_ratio(r.vs_faiss),
                fmt_ratio(r.vs_bandwidth),
                r.note,
            ]
        )
    return out


def print_table(rows: list[Row]) -> None:
    lines = [TABLE_HEAD] + table_lines(rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEAD))]
    for j, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


def render_section(report: dict, rows: list[Row]) -> str:
    m, sw = report["machine"], report["software"]
    load0, load1 = report["load_average_at_start"], report["load_average_at_end"]
    faiss_text = f"faiss-cpu {sw['faiss']}" if sw["faiss"] else "FAISS not installed: its rows are skipped"
    commit = sw["git_commit"] or "unknown"
    if sw["git_dirty"]:
        commit += " + uncommitted changes"
    out = [
        START,
        "## Speed: scans, ball lookups, search",
        "",
        f"Run {report['date']} on {m['nproc']} vCPU ({m['cpu']}), by `{report['command']}`",
        f"(semhash {sw['semhash']}, commit {commit}; Python {sw['python']}, numpy {sw['numpy']},",
        f"numba {sw['numba']} with {sw['numba_threads']} threads, {faiss_text}).",
        f"Load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in load0)}; "
        f"at end: {', '.join(f'{x:.2f}' for x in load1)}."
        + (" Quick mode: small sizes, few repeats." if report["quick"] else ""),
        "",
        "Random data. Times are per query (a batch's time divided by its size) or per lookup;",
        "each row is the median, min and max over its repeats, after one untimed warm-up run.",
        "`/ FAISS`: semhash's median over FAISS's with the same thread count.",
        "`/ bandwidth`: the median per query over the time to stream the code array once",
        "(numba XOR, by one thread or split between threads, whichever was faster), the",
        "floor of any one-query-at-a-time scan; a batch below 1 beats that floor by",
        "reading the codes once for many queries.",
        "",
    ]
    groups = [
        ("scan", "Full scan, 256-bit codes"),
        ("search", "Search (ball + re-rank)"),
        ("ball", "Hamming-ball lookup, 28-bit addresses"),
    ]
    for group, title in groups:
        selected = [r for r in rows if r.group == group]
        if not selected:
            continue
        out += [f"### {title}", "", "| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in table_lines(selected)]
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def parse_threads(text: str) -> list[int]:
    try:
        threads = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}") from None
    if not threads or threads[0] < 1 or threads[-1] > numba.config.NUMBA_NUM_THREADS:
        most = numba.config.NUMBA_NUM_THREADS
        raise argparse.ArgumentTypeError(f"thread counts must lie in 1..{most} (NUMBA_NUM_THREADS)")
    return threads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="Time semhash's scans (against FAISS and the memory bandwidth) and Hamming-ball lookups.",
        epilog="Writes the section between <!-- speed:start --> and <!-- speed:end --> of the output file.",
    )
    ap.add_argument(
        "--output", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown file to update (default: %(default)s)"
    )
    ap.add_argument("--json", type=Path, help="also write every measured number to this JSON file")
    ap.add_argument("--quick", action="store_true", help="smoke test: 10^5 codes, 10^4 and 10^5 addresses, few repeats")
    ap.add_argument(
        "--threads",
        type=parse_threads,
        default=sorted({1, numba.config.NUMBA_NUM_THREADS}),
        help="thread counts for the batches and FAISS, comma-separated (default: 1 and all)",
    )
    ap.add_argument(
        "--repeats", type=int, help="timed runs per row (default: 30, quick: 5; batches a quarter, at least 3)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the random data (default: %(default)s)")
    args = ap.parse_args(argv)

    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats is not None:
        cfg["repeats"] = max(3, args.repeats)
    try:
        import faiss
    except ImportError:
        faiss = None
        log("faiss is not installed (pip install faiss-cpu): the FAISS rows are skipped")

    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/speed.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "threads": args.threads,
        "machine": machine_info(),
        "load_average_at_start": list(os.getloadavg()),
    }
    log(f"load average at start: {report['load_average_at_start']}")
    search.warmup()
    rng = np.random.default_rng(args.seed)
    rows: list[Row] = []
    for n in cfg["scan_sizes"]:
        bench_scan(rows, n, args.threads, faiss, cfg, rng)
    for n in cfg["ball_sizes"]:
        bench_ball(rows, n, cfg, rng)
    report["load_average_at_end"] = list(os.getloadavg())
    report["software"] = software_info(faiss)
    report["rows"] = [r.summary() for r in rows]

    print_table(rows)
    print(f"\nload average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    write_section(args.output, render_section(report, rows), START, END)
    log(f"wrote the speed section of {args.output}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
