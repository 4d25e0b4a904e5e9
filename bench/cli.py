#!/usr/bin/env python3
"""Whole-process timings of the ``semhash`` command: start-up, batches, indexing at scale.

Measured, each as wall time of separate processes (start-up and index load included):

- **one query**: ``semhash query "nasa shuttle launch orbit"`` on the 20 Newsgroups
  index, beside ``python -c "import numpy, numba"`` and ``python -c "import numpy"``,
  run interleaved (one of each in turn, after warm-ups), so they share the machine's
  other load; median, min and max, and the ratio of medians;
- **a batch**: ``semhash query - --jsonl`` over the 7,532 test posts (top 10, the
  default), and the same with ``--codes-only``, interleaved; median of the runs, as
  queries per second; beside each, the same command on the first 500 posts, whose
  difference gives the rate once the process has started (imports, numba's kernels
  and the index loaded);
- **at scale**: a synthetic corpus of ``--docs`` documents (1,000,000 by default),
  made of words drawn from the posts of the shipped sample corpus (seeded, written
  once to ``bench/.data``); ``semhash encode`` of all of it with the 20NG index's
  model (documents per second, peak memory), and ``semhash index --train-sample``
  on it (training on a sample, encoding and storing everything), then one query on
  that index beside the same query on the 20NG index, interleaved, and a batch of the
  first 2,000 test posts on it (both rankings, interleaved: wall time, peak memory).

It needs the index and the query file that ``bench/quality.py`` (``make
bench-quality``) leaves in ``bench/.data``. It prints the results and rewrites the
parts of BENCHMARKS.md between ``<!-- cli:start -->`` and ``<!-- cli:end -->`` (start-up
and batches) and between ``<!-- cli-scale:start -->`` and ``<!-- cli-scale:end -->``
(at scale; ``--skip-scale`` leaves that part, and its 35 minutes, out).

Usage (from the project root)::

    .venv/bin/python bench/cli.py
    .venv/bin/python bench/cli.py --docs 100000 --runs 5 --output /tmp/B.md
    .venv/bin/python bench/cli.py --skip-scale
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import cpu_model, cpu_times, steal_share, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
PY = ".venv/bin/python"
SEMHASH = ".venv/bin/semhash"
START, END = "<!-- cli:start -->", "<!-- cli:end -->"
SCALE_START, SCALE_END = "<!-- cli-scale:start -->", "<!-- cli-scale:end -->"
HEAD = 500  # queries of the short batch beside each full one (enough to load the kernels)
SCALE_BATCH = 2000  # test posts queried as one batch on the synthetic index
QUERY = "nasa shuttle launch orbit"


def log(msg: str) -> None:
    print(f"[cli] {msg}", file=sys.stderr, flush=True)


# Python as users run it: writing and reading its bytecode caches. Some shells
# (this project's build machine among them) set PYTHONDONTWRITEBYTECODE, which makes
# every process compile semhash's modules from source (~0.1 s here).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], stdin: Path | None = None) -> tuple[float, int]:
    """Run ``cmd`` from the project root, output discarded; (wall s, peak RSS KiB)."""
    with open(stdin or os.devnull, "rb") as fin:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=ENV, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {shlex.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss


def shown(cmd: list[str], stdin: Path | None = None) -> str:
    return shlex.join(cmd) + (f" < {stdin.relative_to(ROOT)}" if stdin else "")


def interleaved(commands: dict[str, list[str]], runs: int, warmups: int = 2) -> dict[str, dict]:
    """Each command ``runs`` times, one of each in turn, after ``warmups`` rounds."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(warmups + runs):
        for name, cmd in commands.items():
            wall, _ = run(cmd)
            if i >= warmups:
                walls[name].append(wall)
    return {
        name: {"command": shlex.join(commands[name]), "median": statistics.median(w), "min": min(w), "max": max(w), "runs": w}
        for name, w in walls.items()
    }


def first_lines(path: Path, n: int) -> Path:
    """A file of the first ``n`` lines of ``path``, beside the other data."""
    out = DATA / f"{path.stem}-{n}.jsonl"
    with open(path, encoding="utf-8") as f:
        out.write_text("".join(line for _, line in zip(range(n), f)), encoding="utf-8")
    return out


def synthetic_corpus(n_docs: int, seed: int = 0) -> Path:
    """JSON lines of ``n_docs`` documents, each a bag of words of one sample post
    (its own length, capped at 400 words, drawn with replacement), written once."""
    path = DATA / f"synthetic-{n_docs}.jsonl"
    if path.exists():
        return path
    import numpy as np

    from semhash.corpus import iter_documents
    from semhash.tokenize import tokenize

    log(f"writing {path.relative_to(ROOT)} ...")
    posts = [tokenize(d.text) for d in iter_documents([str(ROOT / "corpora" / "20news-sample" / "train")])]
    words = np.array(sorted({t for p in posts for t in p}), dtype=object)
    ids = {w: i for i, w in enumerate(words)}
    flat = np.array([ids[t] for p in posts for t in p])
    lengths = np.array([len(p) for p in posts])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n_docs):
            p = rng.integers(len(posts))
            drawn = flat[offsets[p] + rng.integers(0, lengths[p], min(lengths[p], 400) + 5)]
            f.write(json.dumps({"id": f"syn/{i:07d}", "text": " ".join(words[drawn])}) + "\n")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=DATA / "20ng-train.db", help="20NG index (default: %(default)s)")
    ap.add_argument("--queries", type=Path, default=DATA / "20ng-test-queries.jsonl", help="JSON-lines queries")
    ap.add_argument("--docs", type=int, default=1_000_000, help="synthetic corpus size (default: %(default)s)")
    ap.add_argument("--train-sample", type=int, default=10_000, help="for the synthetic index (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=10, help="runs per start-up command (default: %(default)s)")
    ap.add_argument("--batch-runs", type=int, default=3, help="runs of the batch (default: %(default)s)")
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown file to update")
    ap.add_argument("--json", type=Path, help="also write every measured number here")
    ap.add_argument("--skip-scale", action="store_true", help="measure start-up and batches only")
    args = ap.parse_args(argv)
    for needed in (args.db, args.queries):
        if not needed.exists():
            sys.exit(f"error: {needed} is missing: run `make bench-quality` first (it builds the 20NG index)")
    db = str(args.db.relative_to(ROOT)) if args.db.is_relative_to(ROOT) else str(args.db)
    n_queries = sum(1 for _ in open(args.queries, encoding="utf-8"))
    head = first_lines(args.queries, HEAD)

    report: dict = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/cli.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "load_average_at_start": list(os.getloadavg()),
        "cpu_times_at_start": cpu_times(),
    }
    log("start-up: one query beside the bare imports ...")
    report["startup"] = interleaved(
        {
            "import numpy": [PY, "-c", "import numpy"],
            "import numpy, numba": [PY, "-c", "import numpy, numba"],
            "semhash query": [SEMHASH, "query", "-d", db, QUERY],
        },
        args.runs,
    )
    log("batch ...")
    report["batch"] = {}
    batch_cmds = {
        "words + codes (default)": [SEMHASH, "query", "-", "--jsonl", "-d", db],
        "codes only": [SEMHASH, "query", "-", "--jsonl", "--codes-only", "-d", db],
    }
    walls: dict[str, list[float]] = {name: [] for name in batch_cmds}
    head_walls: dict[str, list[float]] = {name: [] for name in batch_cmds}
    for name, cmd in batch_cmds.items():
        run(cmd, args.queries)  # warm-up
    for _ in range(args.batch_runs):  # interleaved: all see the same load
        for name, cmd in batch_cmds.items():
            walls[name].append(run(cmd, args.queries)[0])
            head_walls[name].append(run(cmd, head)[0])
    for name, cmd in batch_cmds.items():
        w, h = walls[name], head_walls[name]
        report["batch"][name] = {
            "command": shown(cmd, args.queries), "queries": n_queries, "runs": w,
            "median": statistics.median(w), "min": min(w), "max": max(w),
            "head_queries": HEAD, "head_runs": h, "head_median": statistics.median(h),
        }
    if not args.skip_scale:
        report["scale"] = measure_scale(args, db)
    report["load_average_at_end"] = list(os.getloadavg())
    report["steal"] = steal_share(report["cpu_times_at_start"], cpu_times())
    section = render(report)
    print(section)
    write_section(args.output, section, START, END)
    if "scale" in report:
        scale = render_scale(report["scale"])
        print(scale)
        write_section(args.output, scale, SCALE_START, SCALE_END)
    log(f"wrote the cli section(s) of {args.output}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def measure_scale(args, db: str) -> dict:
    """``semhash encode`` and ``semhash index --train-sample`` of the synthetic corpus."""
    report: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    corpus = synthetic_corpus(args.docs)
    log(f"encoding {args.docs:,} synthetic documents ...")
    encode_cmd = [SEMHASH, "encode", "-d", db, "-"]
    wall, rss = run(encode_cmd, corpus)
    report["encode"] = {"command": shown(encode_cmd, corpus) + " > /dev/null", "docs": args.docs, "seconds": wall, "max_rss_kib": rss}
    log(f"indexing {args.docs:,} synthetic documents ...")
    scale_db = DATA / f"synthetic-{args.docs}.db"
    index_cmd = [SEMHASH, "index", "-s", "--retrain", "--train-sample", str(args.train_sample), "-d", str(scale_db.relative_to(ROOT)), "-"]
    wall, rss = run(index_cmd, corpus)
    report["index"] = {
        "command": shown(index_cmd, corpus), "docs": args.docs, "train_sample": args.train_sample,
        "seconds": wall, "max_rss_kib": rss, "db_bytes": scale_db.stat().st_size,
    }
    log("one query on it, beside the same query on the 20NG index ...")
    report["query"] = interleaved(
        {
            "20NG index": [SEMHASH, "query", "-d", db, QUERY],
            f"{args.docs:,} documents": [SEMHASH, "query", "-d", str(scale_db.relative_to(ROOT)), QUERY],
        },
        args.runs,
    )
    log(f"a batch of {SCALE_BATCH:,} test posts on it ...")
    queries = first_lines(args.queries, SCALE_BATCH)
    scale = str(scale_db.relative_to(ROOT))
    commands = {
        "words + codes (default)": [SEMHASH, "query", "-", "--jsonl", "-d", scale],
        "codes only": [SEMHASH, "query", "-", "--jsonl", "--codes-only", "-d", scale],
    }
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for _ in range(args.batch_runs):  # interleaved
        for name, cmd in commands.items():
            runs[name].append(run(cmd, queries))
    report["batch"] = {
        name: {
            "command": shown(commands[name], queries), "queries": SCALE_BATCH, "runs": [w for w, _ in r],
            "median": statistics.median(w for w, _ in r), "max_rss_kib": max(m for _, m in r),
        }
        for name, r in runs.items()
    }
    return report


def render(r: dict) -> str:
    s = r["startup"]
    base = s["import numpy, numba"]["median"]
    lines = [
        START,
        "## Command-line timings: start-up and batches",
        "",
        f"Written by `{r['command']}` on {r['date']}: {r['nproc']} vCPU ({r['cpu']}); load average "
        f"{', '.join(f'{x:.2f}' for x in r['load_average_at_start'])} at start, "
        f"{', '.join(f'{x:.2f}' for x in r['load_average_at_end'])} at end"
        + (f"; the hypervisor took {r['steal']:.0%} of the CPU time during the run (steal)" if r.get("steal") is not None else "")
        + ". Whole processes, wall time, "
        "warm file cache and warm numba cache, Python writing and reading its bytecode caches as it does by "
        "default (`PYTHONDONTWRITEBYTECODE` unset for every command); the 20NG index is the one "
        "`make bench-quality` builds (11,314 posts).",
        "",
        f"One query beside the bare imports, run interleaved, {len(s['semhash query']['runs'])} runs each after 2 warm-up rounds:",
        "",
        "| command | median s | min s | max s | / `import numpy, numba` |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in s.items():
        lines.append(f"| `{row['command']}` | {row['median']:.3f} | {row['min']:.3f} | {row['max']:.3f} | {row['median'] / base:.2f} |")
    runs = len(next(iter(r["batch"].values()))["runs"])
    lines += [
        "",
        f"Batch: the 7,532 test posts as queries (top 10), output to /dev/null, {runs} runs of each after a "
        "warm-up, interleaved; start-up and index load included:",
        "",
        f"| ranking | command | median s | min s | max s | queries/s | first {HEAD}: median s | queries/s once started |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, b in r["batch"].items():
        after = (b["queries"] - b["head_queries"]) / (b["median"] - b["head_median"])
        lines.append(
            f"| {name} | `{b['command']}` | {b['median']:.2f} | {b['min']:.2f} | {b['max']:.2f} | "
            f"**{b['queries'] / b['median']:,.0f}** | {b['head_median']:.2f} | {after:,.0f} |"
        )
    lines += [
        "",
        f"Queries/s once started: the {runs}-run medians' difference between all the posts and the first "
        f"{HEAD}, i.e. (7,532 - {HEAD}) queries over the seconds they added to a process that had already "
        "imported its modules and read the index. The default path's shorter batch loads numba's kernels "
        "too; the codes-only one is answered by numpy alone (the kernels would cost more than they save), "
        "so its difference includes loading them (about 1 s here) and its rate is a lower bound.",
        END,
        "",
    ]
    return "\n".join(lines)


def render_scale(r: dict) -> str:
    e, i, q = r["encode"], r["index"], r["query"]
    small = "20NG index"
    return "\n".join([
        SCALE_START,
        "### Indexing at scale",
        "",
        f"Written by `python bench/cli.py` on {r['date']} (the run of the start-up and batch part above, "
        "unless `--skip-scale` left this part as it was). "
        f"On {e['docs']:,} synthetic documents (words of the sample corpus's posts, one post's "
        "bag per document; one run each):",
        "",
        "| command | wall s | documents/s | peak memory |",
        "|---|---:|---:|---:|",
        f"| `{e['command']}` | {e['seconds']:.1f} | {e['docs'] / e['seconds']:,.0f} | {e['max_rss_kib'] / 2**20:.2f} GiB |",
        f"| `{i['command']}` | {i['seconds']:.1f} | {i['docs'] / i['seconds']:,.0f} | {i['max_rss_kib'] / 2**20:.2f} GiB |",
        "",
        f"The index file of the {i['docs']:,} documents: {i['db_bytes'] / 2**30:.2f} GiB.",
        "",
        f"One query on it beside the same query on the 20NG index (11,314 documents), run interleaved, "
        f"{len(q[small]['runs'])} runs each after 2 warm-up rounds:",
        "",
        "| command | median s | min s | max s | / 20NG |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `{row['command']}` | {row['median']:.3f} | {row['min']:.3f} | {row['max']:.3f} | "
            f"{row['median'] / q[small]['median']:.2f} |"
            for row in q.values()
        ),
        "",
        f"A batch of the first {SCALE_BATCH:,} test posts on it (top 10), output to /dev/null, "
        f"{len(next(iter(r['batch'].values()))['runs'])} runs of each, interleaved; start-up and index load included:",
        "",
        "| ranking | command | median s | queries/s | peak memory |",
        "|---|---|---:|---:|---:|",
        *(
            f"| {name} | `{b['command']}` | {b['median']:.1f} | {b['queries'] / b['median']:,.0f} | "
            f"{b['max_rss_kib'] / 2**20:.2f} GiB |"
            for name, b in r["batch"].items()
        ),
        SCALE_END,
        "",
    ])


if __name__ == "__main__":
    main()
