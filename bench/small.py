#!/usr/bin/env python3
"""Quality on small indexes with short queries, on 20 Newsgroups (bydate).

`make bench-quality` measures an index of 11,314 posts queried by whole posts.
A user's first index is often far smaller, and queried by a few words: there the
shortlist is the whole index, and a query's best documents may share no word with
it. For each N of ``--per-group``, this indexes the first N training posts of every
newsgroup (``semhash index``, default settings), then runs ``semhash eval -k 10``
with two sets of queries from the test split: the whole posts (encoded as
documents), and their Subject lines alone ("Re:" dropped; posts without a subject
are left out), encoded as ``semhash query TEXT`` encodes a few words (``eval
--lift``). Relevant = same newsgroup. It prints precision@10 and mAP@10 of the default path, of
``--codes-only``, and of TF-IDF cosine over the same (small) collection, as a
Markdown table.

Usage (from the project root, after ``make bench-quality`` unpacked the corpus)::

    .venv/bin/python bench/small.py                      # 10, 25, 100 posts per group
    .venv/bin/python bench/small.py --per-group 10 --data bench/.data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from semhash.tokenize import subject  # noqa: E402

METHODS = {
    "semhash query (ball, ranked by words + codes)": "default path",
    "semhash query, codes only (ball + long-code rank)": "codes only",
    "TF-IDF cosine, whole collection": "TF-IDF",
}


def posts(folder: Path, per_group: int | None = None) -> list[Path]:
    """The posts of each newsgroup folder, in numeric order (the first ``per_group``)."""
    out = []
    for group in sorted(p for p in folder.iterdir() if p.is_dir()):
        out += sorted(group.iterdir(), key=lambda p: int(p.name))[:per_group]
    return out


def query_lines(test: list[Path], subjects_only: bool) -> str:
    lines = []
    for path in test:
        text = path.read_text(encoding="latin-1")
        if subjects_only:
            text = (subject(text) or "").strip()
            text = text[3:].strip() if text.lower().startswith("re:") else text
            if not text:
                continue
        lines.append(json.dumps({"id": f"{path.parent.name}/{path.name}", "text": text, "labels": [path.parent.name]}))
    return "\n".join(lines) + "\n"


def semhash(*args: str, stdin: str | None = None) -> str:
    run = subprocess.run([sys.executable, "-m", "semhash", *args], input=stdin, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"semhash {' '.join(args)} failed: {run.stderr.strip()}")
    return run.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / ".data", help="holds 20news-bydate-train/ and -test/")
    parser.add_argument("--per-group", type=int, nargs="+", default=[10, 25, 100])
    args = parser.parse_args()
    test = posts(args.data / "20news-bydate-test")
    queries = {"whole posts": (query_lines(test, False), []), "Subject lines": (query_lines(test, True), ["--lift"])}
    print("| posts indexed | queries | " + " | ".join(f"{m}: P@10 / mAP@10" for m in METHODS.values()) + " |")
    print("|---|---|" + "---:|" * len(METHODS))
    with tempfile.TemporaryDirectory() as work:
        for n in args.per_group:
            train = posts(args.data / "20news-bydate-train", n)
            db = os.path.join(work, f"small-{n}.db")
            semhash("index", "-s", "-d", db, "--files-from", "-", stdin="\n".join(map(str, train)) + "\n")
            for name, (lines, options) in queries.items():
                result = json.loads(semhash("eval", "-d", db, "-k", "10", "--json", *options, "-", stdin=lines))
                scores = {m["name"]: m for m in result["methods"]}
                cells = [f"{scores[m]['precision']:.4f} / {scores[m]['map']:.4f}" for m in METHODS]
                asked = f"{result['n_queries'] - result['n_skipped']:,} {name}"
                print(f"| {len(train):,} | {asked} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
