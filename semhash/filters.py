"""Query filters: the documents a query's ``labels`` allow, and which ranked hits
pass the distance bounds, the exclusions and the labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semhash import rerank
from semhash.errors import QueryError

#: ``labels`` allowing at most this many documents rank them all, each query's
#: shortlist joined by every one of them (exact, and at most about twice the
#: candidates of an unfiltered query); more are found by growing the default
#: shortlist until ``k`` of its hits are allowed, as distance bounds are.
LABELS_RANKED_IN_FULL = rerank.SHORTLIST


def allowed(index, labels: Sequence[str] | str | None) -> np.ndarray | None:
    """Which positions hold a document carrying at least one of ``labels``
    (``None``: no labels given, every one). One read of the documents table.

    Raises
    ------
    QueryError
        For a label no document carries (a typo would otherwise find nothing),
        naming the labels the index has (the 10 commonest).
    """
    if labels is None:
        return None
    labels = [labels] if isinstance(labels, str) else list(labels)
    if not labels:
        return None
    if not all(isinstance(label, str) for label in labels):
        raise QueryError(f"labels must be strings, got {labels!r}")
    rowids, carried = index.stored.rowids_with_labels(labels)
    unknown = [label for label in dict.fromkeys(labels) if label not in carried]
    if unknown:
        have = list(index.stored.label_counts())
        shown = ", ".join(have[:10]) + (f" and {len(have) - 10} more" if len(have) > 10 else "")
        raise QueryError(
            f"no document in {index.stored.path} has the label{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; its labels: {shown or '(none)'}"
        )
    allowed = np.zeros(len(index), bool)
    wanted = np.asarray(rowids, np.int64)
    at = np.minimum(np.searchsorted(index.rowids, wanted), max(len(index) - 1, 0))
    if len(index):
        allowed[at[index.rowids[at] == wanted]] = True
    return allowed


def within(dists: np.ndarray, min_distance: int | None, max_distance: int | None) -> np.ndarray:
    """Which of ``dists`` lie within the bounds (inclusive; ``None``: unbounded)."""
    keep = np.ones(dists.shape[0], bool)
    if min_distance is not None:
        keep &= dists >= min_distance
    if max_distance is not None:
        keep &= dists <= max_distance
    return keep


def kept(rows, dists, scores, k: int, exclude, min_distance, max_distance, allowed, whole: bool):
    """(rows, distances, scores or None) of the first ``k`` of a ranked shortlist that
    are not at rows ``exclude``, lie within the bounds and are ``allowed`` (a mask
    over positions, or None); ``None`` when it holds fewer and growing it could
    find more (it is not the ``whole`` index, nor reaches past ``max_distance``)."""
    keep = ~np.isin(rows, exclude) & within(dists, min_distance, max_distance)
    if allowed is not None:
        keep &= allowed[rows]
    # A shortlist that already reaches past max_distance only grows farther.
    farther = max_distance is not None and rows.shape[0] and dists.max() > max_distance
    if keep.sum() >= k or farther or whole:
        return rows[keep][:k], dists[keep][:k], None if scores is None else scores[keep][:k]
    return None


def few(allowed: np.ndarray) -> bool:
    """Whether so few documents are allowed that they are all ranked (:func:`semhash.plan.among`)."""
    return int(np.count_nonzero(allowed)) <= LABELS_RANKED_IN_FULL
