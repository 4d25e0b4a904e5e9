"""Model trials on 20 Newsgroups: fit SemanticHasher with given parameters, score its codes.

Library-level (no index file), so one trial measures the model alone:

    .venv/bin/python bench/trials.py '{"n_epochs_finetune": 10, "n_bits": [256]}' ...

Each argument is a JSON dict of SemanticHasher parameters; one line of results is
printed per trial: precision@100 (train indexed, test posts as queries, relevant =
same newsgroup, ties broken by train order) of

- ``hamN``: Hamming ranking of the whole train split by each head's N-bit code;
- ``realN``: the same head's real-valued code activations (squared Euclidean),
  i.e. what thresholding loses;
- ``28of256``: the 28 most balanced bits of the 256-bit code, the alternative to a
  dedicated address head;
- ``bimodality``: per head, fraction of train activations within 0.1 of 0 or 1;
- ``seconds``: fit time (vectorizing excluded).

The corpus is the directory ``bench/quality.py`` unpacks (``--data``). Posts are read as
semhash reads them: ``fit_vocabulary`` and ``count_words`` take each message's Subject
header and body (``semhash.tokenize.content``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from semhash.corpus import iter_documents
from semhash.hasher import SemanticHasher
from semhash.vocab import count_words, fit_vocabulary

ROOT = Path(__file__).resolve().parent.parent


def load(data: Path, split: str) -> tuple[list[str], np.ndarray]:
    docs = list(iter_documents([str(data / f"20news-bydate-{split}")]))
    return [d.text for d in docs], np.array([d.labels[0] for d in docs])


def precision_at(dist: np.ndarray, y_db: np.ndarray, y_q: np.ndarray, k: int = 100) -> float:
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return float(np.mean(y_db[nearest] == y_q[:, None]))


def hamming(q_bits: np.ndarray, db_bits: np.ndarray) -> np.ndarray:
    # Differing bits = n - (agreements on 1s + agreements on 0s), as one float matmul.
    q, d = q_bits.astype(np.float32), db_bits.astype(np.float32)
    return q.shape[1] - (q @ d.T + (1 - q) @ (1 - d).T)


def sqeuclidean(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    return -2 * (q @ d.T) + (d * d).sum(1)[None, :]


def trial(params: dict, X_train, X_test, y_train, y_test) -> dict:
    start = time.perf_counter()
    hasher = SemanticHasher(**params).fit(X_train)
    result: dict = {"params": params, "seconds": round(time.perf_counter() - start, 1)}
    result["bimodality"] = [round(b, 3) for b in hasher.bimodality_]
    acts_train, acts_test = hasher.transform(X_train), hasher.transform(X_test)
    offset = 0
    for bits, db, q in zip(hasher._bits, hasher.encode(X_train), hasher.encode(X_test)):
        result[f"ham{bits}"] = round(precision_at(hamming(q, db), y_train, y_test), 4)
        a, b = acts_train[:, offset : offset + bits], acts_test[:, offset : offset + bits]
        result[f"real{bits}"] = round(precision_at(sqeuclidean(b, a), y_train, y_test), 4)
        offset += bits
        if bits == 256:
            balanced = np.argsort(np.abs(db.mean(0) - 0.5), kind="stable")[:28]
            result["28of256"] = round(precision_at(hamming(q[:, balanced], db[:, balanced]), y_train, y_test), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", nargs="+", help="JSON dicts of SemanticHasher parameters")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / ".data", help="unpacked 20news-bydate")
    args = parser.parse_args()
    texts_train, y_train = load(args.data, "train")
    texts_test, y_test = load(args.data, "test")
    words, _, X_train = fit_vocabulary(texts_train, 2000)
    X_test = count_words(texts_test, words)
    print(json.dumps({"nproc": os.cpu_count(), "train": X_train.shape[0], "test": X_test.shape[0]}), flush=True)
    for spec in args.trials:
        print(json.dumps(trial(json.loads(spec), X_train, X_test, y_train, y_test)), flush=True)


if __name__ == "__main__":
    main()
