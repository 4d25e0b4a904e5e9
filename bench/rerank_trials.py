#!/usr/bin/env python3
"""How to rank the shortlist: trials of ``semhash.rerank``'s settings on 20 Newsgroups.

Runs the real query path (``semhash.plan.ranked_shortlists``: Hamming ball, then ``semhash.rerank``)
of the index ``make bench-quality`` builds, for the 7,532 test posts as queries
(encoded once, as ``semhash eval`` encodes them), once per setting, and prints
precision@100 and mAP@100 per setting as a Markdown table. Each setting changes
one of the module's constants from the defaults (the first row); "codes alone" is
the ball ranked by the 256-bit code (``semhash query --codes-only``).

With ``--leave-one-out N`` the queries are instead N training posts drawn at
random (seeded), each ranked against the other indexed posts: settings can be
chosen there and then checked once on the test posts. A query's own post is
dropped from its hits, and its words from the ranking (its vector is blanked, so
it neither joins the feedback nor vouches for its neighbours); queries run in
groups of 50, each group's own posts blanked for the whole group.

Usage (from the project root, after ``make bench-quality``)::

    .venv/bin/python bench/rerank_trials.py
    .venv/bin/python bench/rerank_trials.py --leave-one-out 2000 --corpus bench/.data/20news-bydate-train
    .venv/bin/python bench/rerank_trials.py --db bench/.data/20ng-train.db --queries bench/.data/20news-bydate-test
    .venv/bin/python bench/rerank_trials.py --leave-one-out 2000 --subjects --settings '[{}, {"RARE_TERMS": 0}]'

With ``--subjects`` the queries are the posts' Subject lines instead (short typed
queries, scored by precision@10).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from semhash import encoding, plan, rerank, shortlists  # noqa: E402
from semhash.api import Index  # noqa: E402
from semhash.corpus import iter_documents  # noqa: E402
from semhash.evaluate import _relevance, _scores_at_k  # noqa: E402
from semhash.tokenize import subject  # noqa: E402
from semhash.vocab import count_words  # noqa: E402

K = 100
SETTINGS = ("SHORTLIST", "RARE_TERMS", "CODE_WEIGHT", "FEEDBACK_DOCS", "FEEDBACK_WEIGHT", "FEEDBACK_TERMS", "NEIGHBOURS", "NEIGHBOUR_WEIGHT", "HOPS", "FEW_WORDS_CODE_WEIGHT")
DEFAULTS = {name: getattr(rerank, name) for name in SETTINGS}
TRIALS = [
    {},
    {"codes_only": True},
    {"HOPS": 0},  # no neighbours
    {"HOPS": 1},
    {"HOPS": 3},
    {"NEIGHBOURS": 30},
    {"NEIGHBOUR_WEIGHT": 2.0},
    {"NEIGHBOUR_WEIGHT": 8.0},
    {"SHORTLIST": 1000},
    {"SHORTLIST": 1000, "HOPS": 0},
    {"SHORTLIST": 3000},
    {"RARE_TERMS": 0},  # the ball alone
    {"RARE_TERMS": 250},
    {"RARE_TERMS": 1000},
    {"CODE_WEIGHT": 0.0},
    {"CODE_WEIGHT": 0.5},
    {"FEEDBACK_DOCS": 0},
    {"FEEDBACK_DOCS": 0, "HOPS": 0},
    {"FEEDBACK_DOCS": 0, "HOPS": 0, "CODE_WEIGHT": 0.0},  # TF-IDF alone over the shortlist
    {"FEEDBACK_DOCS": 20},
    {"FEEDBACK_WEIGHT": 2.0},
    {"FEEDBACK_TERMS": 0},  # every term the feedback brings
    {"FEEDBACK_TERMS": 50},
    {"FEEDBACK_TERMS": 200},
]


GROUP = 50  # leave-one-out queries run together, their own posts blanked


def _without_own(index: Index, own: np.ndarray, search):
    """``search()`` with the TF-IDF vectors of the posts at positions ``own`` zeroed."""
    read = shortlists.ranking_rows

    def blanked(index, positions):
        (starts, ids, weights), neighbours = read(index, positions)
        weights = weights.copy()
        for j in np.searchsorted(positions, own):
            if j < positions.shape[0] and positions[j] in own:
                weights[starts[j] : starts[j + 1]] = 0
        return (starts, ids, weights), neighbours

    shortlists.ranking_rows = blanked
    try:
        return search()
    finally:
        shortlists.ranking_rows = read


def _subject(text: str) -> str:
    """A post's Subject line without its "Re:", as a user might type it."""
    line = (subject(text) or "").strip()
    return line[3:].strip() if line.lower().startswith("re:") else line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=str(ROOT / "bench/.data/20ng-train.db"))
    parser.add_argument("--queries", default=str(ROOT / "bench/.data/20news-bydate-test"))
    parser.add_argument("--leave-one-out", type=int, metavar="N", help="query with N indexed posts read from --corpus")
    parser.add_argument("--corpus", default=str(ROOT / "bench/.data/20news-bydate-train"), help="the indexed posts")
    parser.add_argument("--first", type=int, metavar="N", help="run only the first N settings (2: defaults, codes alone)")
    parser.add_argument("--subjects", action="store_true", help="query with the posts' Subject lines ('Re:' dropped), "
                        "as `semhash query TEXT` reads them, and score the top 10")
    parser.add_argument("--settings", metavar="JSON", help="run these settings (a JSON list of objects) instead")
    args = parser.parse_args()
    global K
    K = 10 if args.subjects else K
    trials = json.loads(args.settings) if args.settings else TRIALS

    index = Index.open(args.db)
    if not index.n_terms:
        sys.exit(f"{args.db} has no terms: rebuild it with this semhash (make bench-quality)")
    own = None  # with --leave-one-out: each query's own row in the index
    if args.leave_one_out:
        docs = list(iter_documents([args.corpus]))
        rows_of = {i: r for r, (i,) in enumerate(index.stored.conn.execute("SELECT id FROM documents ORDER BY rowid"))}
        docs = [docs[i] for i in np.sort(np.random.default_rng(0).choice(len(docs), args.leave_one_out, replace=False))]
        own = np.array([rows_of[d.id] for d in docs])
    else:
        docs = list(iter_documents([args.queries]))
    if args.subjects:
        docs = [replace(d, text=_subject(d.text)) for d in docs]
    counts = count_words([d.text for d in docs], index.words, whole_text=index.whole_text or args.subjects, stem=index.stem)
    keep = np.flatnonzero(counts.sum(1) > 0)
    texts = encoding.read(index, [docs[i].text for i in keep])
    db_labels = [set(json.loads(x)) for (x,) in index.stored.conn.execute("SELECT labels FROM documents ORDER BY rowid")]
    relevant = _relevance(db_labels, [set(docs[i].labels) for i in keep])
    if args.subjects:  # typed queries: lifted to a typical length, mixed with their terms' codes
        q_addr, q_code, _, _ = encoding.encode_query(index, texts, lift=True)
    else:  # whole posts, encoded as the documents they are (as semhash eval does)
        q_addr, q_code, _ = encoding.encode_read(index, texts, lift=False)

    print(f"| setting | precision@{K} | mAP@{K} | s |")
    print("|---|---:|---:|---:|")
    for trial in trials[: args.first]:
        for name, value in {**DEFAULTS, **{k: v for k, v in trial.items() if k != "codes_only"}}.items():
            setattr(rerank, name, value)
        start = time.perf_counter()
        if own is None:
            rows = plan.ranked_shortlists(index, q_addr, q_code, texts, K, trial.get("codes_only", False))[0]
        else:
            rows = np.concatenate([
                _without_own(index, own[keep][g : g + GROUP], lambda: plan.ranked_shortlists(
                    index, q_addr[g : g + GROUP], q_code[g : g + GROUP], texts[g : g + GROUP], K + 1, trial.get("codes_only", False)
                )[0])
                for g in range(0, len(keep), GROUP)
            ])
        seconds = time.perf_counter() - start
        if own is not None:  # drop each query's own row, keep the next K
            mine = rows == own[keep][:, None]
            rows = np.array([r[~m][:K] for r, m in zip(rows, mine)])
        top = np.full((len(keep), K), -1, np.int64)
        top[:, : rows.shape[1]] = rows
        p, ap = _scores_at_k(top, relevant, relevant.sum(1), K)
        name = "defaults " + json.dumps(DEFAULTS) if not trial else ("codes alone (`--codes-only`)" if "codes_only" in trial else json.dumps(trial))
        print(f"| {name} | {p.mean():.4f} | {ap.mean():.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
