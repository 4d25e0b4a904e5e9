"""Word neighbours: each training document's nearest documents by TF-IDF cosine over
every term, found before training to teach the codes.

The model reads 2,000 words; a ranking by every term of the corpus (names, jargon,
rare words) knows more about which documents go together. Fine-tuning pulls each
document's code towards its word neighbours' (``SemanticHasher.fit(neighbours=)``),
as the neural text-hashing papers since NbrReg (Chaidaroon et al., SIGIR 2018) and
RBSH/PairRec (Hansen et al., SIGIR 2019/2020) teach codes from a ranker's top hits.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from semhash import rerank

#: Neighbours listed per training document. On 20NG (codes alone, precision@100;
#: BENCHMARKS.md, "Neighbour supervision") 10 and 20 gave the same within 0.005.
K = 20
#: Nearest documents whose shared presence re-ranks the lists (:func:`shared_neighbours`).
HOPS = 10


def tfidf_rows(full: sp.csr_matrix) -> sp.csr_matrix:
    """Unit-length TF-IDF rows, weighted as the index weighs them (:func:`rerank.unit_vectors`)."""
    full = sp.csr_matrix(full)
    idf = rerank.fit_idf(full)
    doc = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))
    starts, ids, weights = rerank.unit_vectors(doc, full.indices, full.data, idf[full.indices], full.shape[0])
    return sp.csr_matrix((weights, ids, starts), shape=full.shape)


def by_words(full: sp.csr_matrix, k: int = K, block: int = 1024, progress=None, hops: int = HOPS) -> np.ndarray:
    """The ``k`` nearest other rows of each row of a count matrix, best first (ties
    by row number); -1 pads a row with fewer candidates than ``k``.

    Nearest by TF-IDF cosine (:func:`cosine_lists`), then, with ``hops``, by the
    documents they share among their ``hops`` nearest (:func:`shared_neighbours`).
    ``progress`` wraps the blocks' iterator (a bar).

    >>> full = sp.csr_matrix(np.array([[2, 1, 0], [1, 1, 0], [0, 0, 3], [0, 1, 0]], np.float32))
    >>> by_words(full, 2, hops=0).tolist()
    [[1, 3], [0, 3], [-1, -1], [1, 0]]
    """
    lists, scores = cosine_lists(full, k, block, progress)
    return shared_neighbours(lists, scores, hops) if hops else lists


def cosine_lists(full: sp.csr_matrix, k: int = K, block: int = 1024, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosines) of the ``k`` nearest other rows of each row by TF-IDF cosine,
    best first (ties by row number), -1 and 0 where fewer than ``k`` rows share a
    term with it.

    Exact, ``block`` rows at a time against all (a sparse product, densified per
    block: ``block * n`` floats).
    """
    n = full.shape[0]
    k = min(k, max(n - 1, 0))
    rows = tfidf_rows(full)
    columns = rows.T.tocsc()
    out = np.full((n, k), -1, np.int64)
    cosines = np.zeros((n, k), np.float32)
    starts = range(0, n, block)
    for start in starts if progress is None else progress(starts):
        stop = min(start + block, n)
        similar = (rows[start:stop] @ columns).toarray()
        similar[np.arange(stop - start), np.arange(start, stop)] = 0  # not itself
        best = np.argpartition(-similar, k - 1, axis=1)[:, :k] if 0 < k < n else np.argsort(-similar, axis=1)[:, :k]
        scores = np.take_along_axis(similar, best, axis=1)
        order = np.lexsort((best, -scores), axis=1)  # best first, ties by row number
        best, scores = np.take_along_axis(best, order, 1), np.take_along_axis(scores, order, 1)
        out[start:stop] = np.where(scores > 0, best, -1)  # a zero shares no term
        cosines[start:stop] = np.maximum(scores, 0)
    return out, cosines


def shared_neighbours(lists: np.ndarray, cosines: np.ndarray, hops: int = HOPS, k: int | None = None) -> np.ndarray:
    """Neighbour lists re-ranked by what the documents' own neighbours say: ``j``'s
    score for ``i`` is ``cos(i, j)`` (0 if ``j`` is not listed) plus the mean over
    the documents ``m`` both list among their first ``hops`` of ``cos(i, m) *
    cos(j, m)``; the ``k`` best other documents, best first (ties by row number).

    Two documents that share their nearest documents go together even when their
    own words barely meet (a question and its answer, two posts quoting one
    thread): on 20NG, the share of 20 listed neighbours from the document's
    newsgroup rises from 0.678 to 0.715 (StackOverflow 0.464 -> 0.477, Biomedical
    0.386 -> 0.393), for a sparse product of n x hops entries.

    >>> shared_neighbours(np.array([[1, -1], [0, -1], [1, -1]]), np.array([[.5, 0], [.5, 0], [.4, 0]], np.float32), 1).tolist()
    [[1, 2], [0, -1], [1, 0]]
    """
    n = lists.shape[0]
    k = lists.shape[1] if k is None else k
    listed = lists >= 0
    row = np.repeat(np.arange(n), listed.sum(axis=1))
    A = sp.csr_matrix((cosines[listed], (row, lists[listed])), shape=(n, n))
    near = listed[:, :hops]
    H = sp.csr_matrix((cosines[:, :hops][near], (np.repeat(np.arange(n), near.sum(axis=1)), lists[:, :hops][near])), shape=(n, n))
    scores = (A + (H @ H.T) / max(hops, 1)).tocoo()
    keep = scores.row != scores.col
    r, c, v = scores.row[keep], scores.col[keep], scores.data[keep]
    order = np.lexsort((c, -v, r))  # by row, best first, ties by row number
    r, c = r[order], c[order]
    rank = np.arange(r.size) - np.searchsorted(r, r)
    out = np.full((n, k), -1, np.int64)
    take = rank < k
    out[r[take], rank[take]] = c[take]
    return out
