"""Word neighbours: each training document's nearest documents by TF-IDF cosine over
every term, found before training to teach the codes.

The model reads 2,000 words; a ranking by every term of the corpus (names, jargon,
rare words) knows more about which documents go together. Fine-tuning pulls each
document's code towards its word neighbours' (``SemanticHasher.fit(neighbours=)``), as the neural text-hashing papers since NbrReg (Chaidaroon et al., SIGIR 2018) and
RBSH/PairRec (Hansen et al., SIGIR 2019/2020) teach codes from a ranker's top hits.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from semhash import rerank

#: Neighbours listed per training document. On 20NG (codes alone, precision@100;
#: docs/trials.md, "Codes taught by their neighbours") 10 and 20 gave the same within 0.005.
K = 20


def tfidf_rows(full: sp.csr_matrix) -> sp.csr_matrix:
    """Unit-length TF-IDF rows, weighted as the index weighs them (:func:`rerank.unit_vectors`)."""
    full = sp.csr_matrix(full)
    idf = rerank.fit_idf(full)
    doc = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))
    starts, ids, weights = rerank.unit_vectors(doc, full.indices, full.data, idf[full.indices], full.shape[0])
    return sp.csr_matrix((weights, ids, starts), shape=full.shape)


#: Bytes of one block's similarities (``block * n`` float64), densified at once: a
#: block that stays in the CPU's caches. On 20NG (11,314 posts) 128-row blocks
#: (11.6 MB) took 4.7-5.5 s, 1,024-row blocks (93 MB) 6.6-7.8 s; 64 rows 5.5-6.0 s.
BLOCK_BYTES = 12_000_000


def by_words(full: sp.csr_matrix, k: int = K, block: int | None = None, progress=None) -> np.ndarray:
    """The ``k`` nearest other rows of each row of a count matrix by TF-IDF cosine,
    best first (ties by row number); -1 pads a row with fewer than ``k`` rows
    sharing a term with it.

    Exact, ``block`` rows at a time against all (a sparse product, densified per
    block: ``block * n`` floats; default: :data:`BLOCK_BYTES` of them); ``progress``
    wraps the blocks' iterator (a bar).

    A better teacher did not make better codes: with one round of pseudo-relevance
    feedback (Rocchio, 5 documents, weight 2) the share of the 20 listed neighbours
    with the document's label rose on every corpus (20NG 0.683 -> 0.725), but the
    codes' precision@100 moved by -0.011 to +0.010, +0.001 on the corpora's mean,
    for twice the time (docs/trials.md).

    >>> full = sp.csr_matrix(np.array([[2, 1, 0], [1, 1, 0], [0, 0, 3], [0, 1, 0]], np.float32))
    >>> by_words(full, 2).tolist()
    [[1, 3], [0, 3], [-1, -1], [1, 0]]
    """
    n = full.shape[0]
    k = min(k, max(n - 1, 0))
    rows = tfidf_rows(full)
    columns = rows.T.tocsr()  # as the product takes it (it converted a CSC matrix at every block)
    block = block or max(1, BLOCK_BYTES // (8 * max(n, 1)))
    out = np.full((n, k), -1, np.int64)
    starts = range(0, n, block)
    for start in starts if progress is None else progress(starts):
        stop = min(start + block, n)
        out[start:stop] = _best(rows[start:stop] @ columns, start, k)
    return out


def _best(similar: sp.spmatrix, start: int, k: int) -> np.ndarray:
    """Each row's ``k`` highest-scoring columns other than itself (row ``i`` is
    document ``start + i``), best first, ties by column; -1 for a score of 0 (no
    term shared)."""
    similar = similar.toarray()
    m, n = similar.shape
    similar[np.arange(m), np.arange(start, start + m)] = 0  # not itself
    best = np.argpartition(-similar, k - 1, axis=1)[:, :k] if 0 < k < n else np.argsort(-similar, axis=1)[:, :k]
    scores = np.take_along_axis(similar, best, axis=1)
    order = np.lexsort((best, -scores), axis=1)  # best first, ties by row number
    best, scores = np.take_along_axis(best, order, 1), np.take_along_axis(scores, order, 1)
    return np.where(scores > 0, best, -1)
