"""What a value read from an index must be: each check says whether a stored value
is as the writers write it, so that a damaged file is called corrupt in one line
(:mod:`semhash.store`) instead of failing somewhere below with a traceback.
"""

from __future__ import annotations

import warnings

import numpy as np


def postings_ok(rows: list[tuple], max_df) -> bool:
    """Whether rows ``(term, df, blob)`` of ``postings`` are as the writers write them:
    ``df`` documents, their rowids (positive, ascending) for a term of at most
    ``max_df``, else NULL. Checked together, a few numpy passes for any number of
    rows (one row at a time, the neighbour lists of 100,000 synthetic documents
    checked 116,000 rows in 2.4 s under cProfile)."""
    if not all(isinstance(df, int) and df >= 1 for _, df, _ in rows):
        return False
    kept = [(df, blob) for _, df, blob in rows if blob is not None]
    if len(kept) < len(rows) and isinstance(max_df, int) and any(df <= max_df for _, df, blob in rows if blob is None):
        return False
    if not all(isinstance(blob, bytes) and len(blob) == 4 * df for df, blob in kept):
        return False
    if not kept:
        return True
    rowids = np.frombuffer(b"".join(blob for _, blob in kept), "<i4")
    firsts = np.zeros(rowids.size, bool)
    firsts[np.cumsum([0] + [df for df, _ in kept[:-1]])] = True
    return bool((rowids[firsts] >= 1).all() and (np.diff(rowids)[~firsts[1:]] > 0).all())


def integers(text: str | None) -> np.ndarray:
    """int64 array of comma-separated integers, cut short at the first token that is
    not one (the caller checks the count)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy's word for "cut short"
            return np.fromstring(text or "", np.int64, sep=",")  # text mode: not deprecated
    except ValueError:
        return np.zeros(0, np.int64)


_FLOAT32_MAX = float(np.finfo(np.float32).max)  # a Python float: comparing with 1e308 casts nothing


def idf(value) -> float:
    """A stored idf as a float; NaN for what is not a number (text, a blob) or does
    not fit the float32 the rankers weigh with (it would be inf there)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if abs(value) <= _FLOAT32_MAX else float("nan")


def count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def pair(check):
    return lambda value: isinstance(value, list) and len(value) == 2 and all(v is None or check(v) for v in value)


# What each meta value must be, beyond JSON (None: not kept, as by older indexes): a
# damaged one was used as it came, and a float unpacked as a pair, or a number
# iterated as a list, was a traceback.
META_CHECKS = {
    **dict.fromkeys(("semhash_version", "created", "updated", "text"), lambda v: isinstance(v, str)),
    **dict.fromkeys(("vocab_size", "n_terms", "n_documents", "n_trained", "n_neighbours", "postings_max_df"), count),
    **dict.fromkeys(("oov_share", "typical_length"), number),
    **dict.fromkeys(("params", "build_options"), lambda v: isinstance(v, dict)),
    "compact": lambda v: isinstance(v, bool),
    "hidden_sizes": lambda v: isinstance(v, list) and all(count(x) for x in v),
    "messages": pair(count),
    "bimodality": pair(number),
    "finetune_loss": lambda v: isinstance(v, list),
}
