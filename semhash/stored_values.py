"""What a value read from an index must be: each check says whether a stored value
is as the writers write it, so that a damaged file is called corrupt in one line
(:mod:`semhash.store`) instead of failing somewhere below with a traceback.
"""

from __future__ import annotations

import warnings

import numpy as np


def postings_ok(df, blob, max_df) -> bool:
    """Whether a row of ``postings`` is as the writers write it: ``df`` documents,
    their rowids (positive, ascending) for a term of at most ``max_df``, else NULL."""
    if not isinstance(df, int) or df < 1:
        return False
    if blob is None:
        return not isinstance(max_df, int) or df > max_df
    if not isinstance(blob, bytes) or len(blob) != 4 * df:
        return False
    rowids = np.frombuffer(blob, "<i4")
    return bool(rowids[0] >= 1 and (rowids[1:] > rowids[:-1]).all())


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
