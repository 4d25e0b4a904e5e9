"""Model trials on the labelled corpora: fit SemanticHasher with given parameters, score its codes.

Library-level (no index file), so one trial measures the model alone, taught by
word neighbours as `semhash index` teaches it (``semhash.neighbours.by_words`` over
every term of the training documents; ``--no-neighbours`` leaves them out):

    .venv/bin/python bench/trials.py --corpus 20ng '{"n_epochs_finetune": 10}' '{"pair_weight": 0}' ...

Each argument is a JSON dict of SemanticHasher parameters; one line of results is
printed per trial: precision@100 (the training documents indexed, the test ones as
queries, relevant = same label, ties broken by training order) of

- ``hamN``: Hamming ranking of the whole training set by each head's N-bit code;
- ``realN``: the same head's real-valued code activations (squared Euclidean),
  i.e. what thresholding loses;
- ``subjectN`` (20NG): precision@10 of the test posts' Subject lines ("Re:" removed),
  lifted as `semhash query TEXT` lifts a short text, by the same head;
- ``bimodality``: per head, fraction of training activations within 0.1 of 0 or 1;
- ``seconds``: fit time (vectorizing and neighbours excluded; ``neighbour_s``).

Corpora: ``20ng`` is the directory ``bench/quality.py`` unpacks (``--data``), posts
read as semhash reads them (Subject header and body, ``semhash.tokenize.content``);
``so`` and ``bio`` are StackOverflow and Biomedical titles from
``../shared/corpora-src/short-text`` (``--short-text``), split as its README.txt says
(queries: lines i with i % 10 == 0).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from semhash.api import STEM
from semhash.autoencoder import lift
from semhash.corpus import iter_documents
from semhash.hasher import SemanticHasher
from semhash.neighbours import by_words
from semhash.tokenize import content, content_words, subject
from semhash.vocab import count_terms, top_words

ROOT = Path(__file__).resolve().parent.parent
SHORT_TEXT = {"so": "StackOverflow", "bio": "Biomedical"}


def load_20ng(data: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray, list[str]]:
    """(train texts, labels, test texts, labels, test Subject lines)."""
    splits = []
    for split in ("train", "test"):
        docs = list(iter_documents([str(data / f"20news-bydate-{split}")]))
        splits += [[d.text for d in docs], np.array([d.labels[0] for d in docs])]
    subjects = [(subject(t) or "").strip() for t in splits[2]]
    subjects = [s[3:].strip() if s.lower().startswith("re:") else s for s in subjects]
    return (*splits, subjects)


def load_short(folder: Path, name: str) -> tuple[list[str], np.ndarray, list[str], np.ndarray, None]:
    texts = (folder / f"{name}.txt").read_text(encoding="utf-8").split("\n")
    labels = np.array([int(x) for x in (folder / f"{name}_gnd.txt").read_text().split()])
    texts = texts[: labels.size]
    query = np.arange(labels.size) % 10 == 0
    pick = lambda mask: [t for t, m in zip(texts, mask) if m]  # noqa: E731
    return pick(~query), labels[~query], pick(query), labels[query], None


def vectorize(train: list[str], queries: list[list[str]], stem: bool = STEM):
    """(counts over the 2000 words, counts over every term, per query set its counts),
    every text read as `semhash index` reads it (Subject and body, stemmed with ``stem``)."""
    tokens = lambda text: content_words(content(text), stem=stem)  # noqa: E731
    terms, full = count_terms(tokens(t) for t in train)
    words, _, X = top_words(terms, full, 2000)
    column = {w: i for i, w in enumerate(words)}
    out = []
    for texts in queries:
        rows, cols = [], []
        for r, text in enumerate(texts):
            for t in tokens(text):
                if t in column:
                    rows.append(r)
                    cols.append(column[t])
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(words)))
        m.sum_duplicates()
        out.append(m)
    return X, full, out


def precision_at(dist: np.ndarray, y_db: np.ndarray, y_q: np.ndarray, k: int = 100) -> float:
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return float(np.mean(y_db[nearest] == y_q[:, None]))


def hamming(q_bits: np.ndarray, db_bits: np.ndarray) -> np.ndarray:
    # Differing bits = n - (agreements on 1s + agreements on 0s), as one float matmul.
    q, d = q_bits.astype(np.float32), db_bits.astype(np.float32)
    return q.shape[1] - (q @ d.T + (1 - q) @ (1 - d).T)


def sqeuclidean(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    return -2 * (q @ d.T) + (d * d).sum(1)[None, :]


def trial(params: dict, X, X_test, y_train, y_test, neighbours, X_subjects=None) -> dict:
    start = time.perf_counter()
    hasher = SemanticHasher(**params).fit(X, neighbours=neighbours)
    result: dict = {"params": params, "seconds": round(time.perf_counter() - start, 1)}
    result["bimodality"] = [round(b, 3) for b in hasher.bimodality_]
    acts_train, acts_test = hasher.transform(X), hasher.transform(X_test)
    offset = 0
    codes_train = hasher.encode(X)
    for bits, db, q in zip(hasher._bits, codes_train, hasher.encode(X_test)):
        result[f"ham{bits}"] = round(precision_at(hamming(q, db), y_train, y_test), 4)
        a, b = acts_train[:, offset : offset + bits], acts_test[:, offset : offset + bits]
        result[f"real{bits}"] = round(precision_at(sqeuclidean(b, a), y_train, y_test), 4)
        offset += bits
    if X_subjects is not None:
        typical = float(np.median(np.asarray(X.sum(axis=1)).ravel()))
        short = lift(X_subjects.toarray(), typical)
        for bits, db, q in zip(hasher._bits, codes_train, hasher.encode(short)):
            result[f"subject{bits}"] = round(precision_at(hamming(q, db), y_train, y_test, 10), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", nargs="+", help="JSON dicts of SemanticHasher parameters")
    parser.add_argument("--corpus", choices=["20ng", *SHORT_TEXT], default="20ng")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / ".data", help="unpacked 20news-bydate")
    parser.add_argument("--short-text", type=Path, default=ROOT.parent / "shared" / "corpora-src" / "short-text")
    parser.add_argument("--no-neighbours", action="store_true", help="fit without the word neighbours")
    parser.add_argument("--neighbours-file", type=Path, help="neighbour lists (.npy of training row numbers, -1 padded) to teach with")
    parser.add_argument("--stem", action=argparse.BooleanOptionalAction, default=STEM, help="count Snowball stems (default: semhash's)")
    args = parser.parse_args()
    if args.corpus == "20ng":
        train, y_train, test, y_test, subjects = load_20ng(args.data)
    else:
        train, y_train, test, y_test, subjects = load_short(args.short_text, SHORT_TEXT[args.corpus])
    X, full, (X_test, *rest) = vectorize(train, [test] + ([subjects] if subjects else []), args.stem)
    start = time.perf_counter()
    neighbours = None if args.no_neighbours else by_words(full)
    if args.neighbours_file:
        neighbours = np.load(args.neighbours_file)
    print(json.dumps({"corpus": args.corpus, "nproc": os.cpu_count(), "train": X.shape[0], "test": X_test.shape[0],
                      "neighbour_s": round(time.perf_counter() - start, 1)}), flush=True)
    for spec in args.trials:
        result = trial(json.loads(spec), X, X_test, y_train, y_test, neighbours, rest[0] if rest else None)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
