"""Term codes: a short query's code, moved towards the codes of the documents that
hold its words.

The encoder reads the model's 2,000 commonest words, and a code lifted from the two
of them a Subject line may hold is a guess; the line's other words ("clipper",
"asimov") the encoder never sees. Every indexed term has a code of its own: the mean
(in +-1 bits) of the codes of the documents holding it. The commonest, the model's
vocabulary, have theirs in a table made when the index is built (its encoders'
``words`` arrays); the rarer ones, from the documents their stored postings list.
A query's code is then the sign of its encoder's bits (+-1) mixed with its terms'
codes (weighted as its TF-IDF vector weighs them, scaled to the bits' length), the
encoder's share ``K / (K + PRIOR)`` for ``K`` known word tokens: a long post keeps
its own code, a three-word line takes most of its code from its terms. The search
itself is unchanged: Hamming balls and shared bits over the documents' codes.

Measured (docs/trials.md, "Term codes"): the codes alone, 20NG Subject lines P@10
0.42 -> 0.57; posts, StackOverflow, Biomedical within +-0.006.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from semhash import codes, search, shortlists

#: The encoder's share of a query's code is K / (K + PRIOR) for K known word tokens
#: (docs/trials.md, "Term codes": 2, 3, 5, 8, 12 measured; 8 best on the corpora's mean).
PRIOR = 8.0
#: Queries whose encoder share is above this keep their code (a post of hundreds of
#: known words: its terms would not flip a bit, and looking them up costs).
ENCODER_ENOUGH = 0.97


def widths(index) -> tuple[int, int]:
    """The index's (address, long code) widths in bits."""
    return int(index.meta["address_bits"]), int(index.meta["code_bits"])


def head_bits(addresses: np.ndarray, long_codes: np.ndarray, widths: tuple[int, int]) -> list[np.ndarray]:
    """Documents' address and long-code bits as two bool arrays (n, width)."""
    shifts = np.arange(widths[0], dtype=np.int64)
    address = ((np.asarray(addresses, np.int64)[:, None] >> shifts) & 1).astype(bool)
    return [address, codes.unpack_codes(long_codes, widths[1])]


def word_tables(X, addresses: np.ndarray, long_codes: np.ndarray, widths: tuple[int, int]) -> dict[str, np.ndarray]:
    """Each vocabulary word's code, per head: the mean, in +-1, of the bits of the
    documents (rows of the count matrix ``X``, coded ``addresses`` and ``long_codes``)
    holding it (0 for a word none holds). Stored beside the encoders as
    ``head{h}.encoder.words``. The documents' bits are unpacked
    :data:`_ROWS_AT_ONCE` at a time: all at once, a million documents' took 1.1 GB."""
    X = sp.csr_matrix(X)
    df = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    sums = [np.zeros((X.shape[1], width), np.float64) for width in widths]
    for start in range(0, X.shape[0], _ROWS_AT_ONCE):
        rows = slice(start, start + _ROWS_AT_ONCE)
        held = X[rows].astype(np.float32)
        held.data[:] = 1
        for total, bits in zip(sums, head_bits(addresses[rows], long_codes[rows], widths)):
            total += held.T @ (2.0 * bits.astype(np.float32) - 1.0)
    return {f"head{h}.encoder.words": (total / np.maximum(df, 1.0)[:, None]).astype(np.float32) for h, total in enumerate(sums)}


_ROWS_AT_ONCE = 65_536


def mix(index, read: list[str], known: np.ndarray, bits: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The queries' head bits (``bits``: the encoder's, bool (n, width) per head)
    mixed with their terms' codes (module docstring), and which queries had terms
    with codes; unchanged for an index without word tables or terms."""
    tables = index.word_tables
    share = known / (known + PRIOR)
    asked = np.flatnonzero(share <= ENCODER_ENOUGH)
    termed = np.zeros(known.shape, bool)
    if tables is None or not index.n_terms or asked.size == 0:
        return bits, termed
    starts, ids, weights = shortlists.query_vectors(index, [read[i] for i in asked])
    terms = search.unique(ids)
    T = _term_codes(index, terms, tables)
    Q = sp.csr_matrix((weights, np.searchsorted(terms, ids), starts), shape=(asked.size, terms.size))
    from_terms = np.asarray(Q @ T)
    norms = np.linalg.norm(from_terms, axis=1, keepdims=True)
    from_terms *= np.sqrt(T.shape[1]) / np.where(norms > 0, norms, 1.0)
    own = np.concatenate([2.0 * b[asked].astype(np.float32) - 1.0 for b in bits], axis=1)
    a = share[asked][:, None]
    mixed = np.where(norms > 0, a * own + (1 - a) * from_terms, own) > 0
    out = [b.copy() for b in bits]
    cut = np.cumsum([b.shape[1] for b in bits])[:-1]
    for b, part in zip(out, np.split(mixed, cut, axis=1)):
        b[asked] = part
    termed[asked] = norms[:, 0] > 0
    return out, termed


def _term_codes(index, terms: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Codes (+-1 means, float32 (len(terms), both heads' widths)) of index terms:
    a vocabulary word's from the tables, a rarer term's from the documents its
    postings list, 0 for a term with neither."""
    T = np.zeros((terms.size, tables.shape[1]), np.float32)
    column = _vocabulary_columns(index, terms)
    T[column >= 0] = tables[column[column >= 0]]
    rest = np.flatnonzero(column < 0)
    held = index.stored.postings(terms[rest].tolist()) if rest.size else {}
    posted = [(j, held[t][1]) for j, t in zip(rest.tolist(), terms[rest].tolist()) if t in held and held[t][1]]
    # A batch's terms some thousands of holders at a time: the mean of each one's
    # holders' bits, as a sparse product over the distinct holders (terms of a batch
    # share many: unpacking each holder once took 20NG's Subject lines 1.06 -> 0.11 s).
    sizes = np.array([len(blob) // 4 for _, blob in posted], np.int64)
    first = 0
    while first < len(posted):
        last = max(first + 1, int(np.searchsorted(np.cumsum(sizes[first:]), _HOLDERS_AT_ONCE, side="right")) + first)
        rows, blobs = zip(*posted[first:last])
        n = sizes[first:last]
        first = last
        holders, holder_of = np.unique(shortlists.positions(index, b"".join(blobs)), return_inverse=True)
        signs = np.concatenate(
            [2.0 * b.astype(np.float32) - 1.0 for b in head_bits(index.table.addresses[holders], index.codes[holders], widths(index))],
            axis=1,
        )
        starts = np.concatenate([[0], np.cumsum(n)])
        mean = sp.csr_matrix((np.repeat(1.0 / n, n).astype(np.float32), holder_of.ravel(), starts), shape=(len(rows), holders.size))
        T[list(rows)] = mean @ signs
    return T


_HOLDERS_AT_ONCE = 262_144  # their distinct holders' bits: 284 float32 each, 300 MB at most


def _vocabulary_columns(index, terms: np.ndarray) -> np.ndarray:
    """Each index term's column in the model's vocabulary (-1: not a vocabulary
    word); the vocabulary's term ids are looked up once per opened index."""
    if index.vocabulary_terms is None:
        found = index.stored.terms(index.vocabulary)
        ids = np.array([found[w][0] for w in index.vocabulary if w in found], np.int64)
        columns = np.array([index.words[w] for w in index.vocabulary if w in found], np.int64)
        order = np.argsort(ids)
        index.vocabulary_terms = ids[order], columns[order]
    ids, columns = index.vocabulary_terms
    if ids.size == 0:
        return np.full(terms.shape, -1, np.int64)
    at = np.minimum(np.searchsorted(ids, terms), ids.size - 1)
    return np.where(ids[at] == terms, columns[at], -1)
