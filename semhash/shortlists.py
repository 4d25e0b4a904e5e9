"""What a shortlist is made of and ranked with: the holders of a query's rare terms
(joined to its Hamming ball), the stored rows that rank it (TF-IDF vectors and
neighbour lists, checked for damage), positions from rowids, and the ranking by
words and codes (:mod:`semhash.rerank`).

Functions take the opened :class:`semhash.api.Index`; rows are positions in its
arrays (``index.codes``, ``index.rowids``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from semhash import encoding, lazy, rerank, search, store
from semhash.tokenize import content_words
from semhash.vocab import _PYTHON_NS_PER_CHAR, word_ids

# A rowid table (:func:`local_positions`) while rowids span at most this many
# per document, and this many more: 4 bytes each, a few MB at a million documents.
_TABLE_SPAN_PER_DOCUMENT = 16
_TABLE_SPAN_MIN = 65536


def with_rare_holders(index, rows, dists, counts, vectors: rerank.Packed, query_codes, within=(None, None), short=False):
    """The shortlists (``rows``, positions padded with -1, ``dists``, ``counts``)
    grown by the documents that hold each query's rarest terms, rarest first
    while they add up to at most ``rerank.RARE_TERMS`` documents, appended in
    index order after the ball's; with ``short``, the short queries'
    (:func:`rerank.short_queries`) by the holders of every term of theirs that has
    postings: those holding all of its words (all hold its rarest), then most,
    are among them. (An index without postings: as they are.)"""
    q_starts, q_ids, _ = vectors
    held = index.stored.postings(search.unique(q_ids).tolist())
    if not held:
        return rows, dists, counts
    # Each query's terms by ascending document frequency (ties: term order); the
    # first ones whose frequencies add up to its budget at most are picked.
    unposted = store.POSTINGS_MAX_DF * rerank.SHORT_QUERY + 1  # above any budget
    df = np.zeros(index.n_terms, np.int64)  # 0: no document holds it
    for term, (n_holders, rowids) in held.items():
        df[term] = n_holders if rowids is not None else unposted
    query = np.repeat(np.arange(rows.shape[0]), np.diff(q_starts))
    order = np.lexsort((df[q_ids], query))
    total = np.cumsum(df[q_ids][order])
    before = np.concatenate([[0], total])[q_starts[:-1]]  # each query's first entry is at q_starts
    budget = np.where(rerank.short_queries(vectors) & short, unposted - 1, rerank.RARE_TERMS)[query[order]]
    picked = order[(total - np.repeat(before, np.diff(q_starts)) <= budget) & (df[q_ids][order] > 0)]
    picked = np.sort(picked)  # by query
    if picked.size == 0:
        return rows, dists, counts
    # Their holders, as positions, one run per query (a term's rowids ascend).
    terms = q_ids[picked]
    holders = positions(index, b"".join([held[t][1] for t in terms.tolist()]))
    term_starts = np.concatenate([[0], np.cumsum(df[terms])])
    starts = term_starts[np.searchsorted(query[picked], np.arange(rows.shape[0] + 1))]
    return search.join(index.codes, rows, dists, counts, query_codes, starts, holders, *within)


def holders(index, term_lists: list[np.ndarray]) -> list[np.ndarray]:
    """For each list of term ids, the positions of the documents holding any of
    them, ascending: from the stored postings when every term is rare enough to
    have them, else one pass over every stored vector, streamed 65,536 at a time
    (a million documents: about 8 s, in bounded memory; postings of every term
    built in memory took 82 s and 2.3 GB there)."""
    held = index.stored.postings(search.unique(np.concatenate(term_lists)).tolist())
    if held and all(h[1] is not None for h in held.values()):  # all rare enough to be kept
        return [search.unique(positions(index, b"".join([held[t][1] for t in terms.tolist() if t in held]))) for terms in term_lists]
    wanted = np.zeros(index.n_terms, bool)
    for terms in term_lists:
        wanted[terms] = True
    n_bytes, blobs = index.stored.all_term_blobs()  # rowid order: row i is position i
    docs, terms, offset = [], [], 0
    stream = iter(blobs)
    while chunk := list(itertools.islice(stream, rerank._BLOBS_AT_ONCE)):
        starts, ids, _ = stored_vectors(index, chunk, sum(len(b) for b in chunk if b))
        at = np.flatnonzero(wanted[ids])
        docs.append(np.searchsorted(starts, at, side="right") - 1 + offset)
        terms.append(ids[at])
        offset += len(chunk)
    docs_, terms_ = np.concatenate(docs), np.concatenate(terms)
    return [search.unique(docs_[np.isin(terms_, t)]) for t in term_lists]


def code_distances(index, positions: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
    """Hamming distances between the long codes at ``positions`` and a query's
    code (or, row by row, as many query codes), in numpy: a few hundred codes
    each, never worth loading the kernels for."""
    return np.bitwise_count(index.codes[positions] ^ query_codes).sum(axis=1)


#: The codes alone rank a shortlist by the bits that the query's nearest
#: FEEDBACK_CODES codes (at most a tenth of the index) agree on, and the query's own
#: with weight QUERY_BITS (:func:`by_shared_bits`). Chosen on the mean over the
#: corpora (docs/trials.md): precision +0.015 to +0.033 over the distance alone on
#: each of them; 50 / 200 codes, or the query's bits left out, within 0.002.
FEEDBACK_CODES = 100
QUERY_BITS = 0.2
ADDRESS_BITS = 4.0  # the address's bits count 4x a long code's: +0.005 on the mean


def by_shared_bits(index, rows, dists, counts, n_ranked: int, query_codes, query_addresses, near=None):
    """Each shortlist (positions by code distance, padded with -1) ranked by its
    hits' agreement with the bits its nearest codes share: a bit weighs the share
    of the query's :data:`FEEDBACK_CODES` nearest codes (at most a tenth of the
    index; the first of ``near``, (rows, counts) as ``rows`` and ``counts`` are,
    default: them) holding it less the share lacking it, mixed with the query's
    own bit (+1 or -1) at :data:`QUERY_BITS`; a hit scores its bits' weights, each
    added if set and taken away if not, over its long code and, weighted
    :data:`ADDRESS_BITS`, its address (the other head's view of it).
    Pseudo-relevance feedback in the space of the codes: a bit on which the
    neighbourhood agrees says more than one on which it splits, and a short
    query's code, lifted from a few words, is a guess the neighbourhood corrects.
    Ties keep the shortlist's order. Returns the first ``n_ranked`` of each
    (rows, dists, counts)."""
    near_rows, near_counts = (rows, counts) if near is None else near
    m = min(FEEDBACK_CODES, max(1, len(index) // 10))
    query_codes = np.ascontiguousarray(query_codes)
    query_addresses = np.ascontiguousarray(query_addresses, np.int64)
    if lazy.use_kernels(rows.shape[0] * rows.shape[1] * _NUMPY_NS_PER_ROW, kernel="shared_bit_scores"):
        scores = lazy.kernels.shared_bit_scores(
            index.codes, index.table.addresses, near_rows, near_counts, m, query_codes, query_addresses,
            QUERY_BITS, ADDRESS_BITS, _SHARED_BIT_UNIT, rows, counts,
        )
    else:
        scores = _shared_bit_scores(index, near_rows, near_counts, m, query_codes, query_addresses, rows, counts)
    width = min(rows.shape[1], n_ranked)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
    kept = np.arange(width) < np.minimum(counts, width)[:, None]
    out_rows = np.where(kept, np.take_along_axis(rows, order, axis=1), -1)
    out_dists = np.where(kept, np.take_along_axis(dists, order, axis=1), -1).astype(np.int32)
    return out_rows, out_dists, np.minimum(counts, width)


# Each bit's weight is rounded to a whole number of 1 / _SHARED_BIT_UNIT: sums of
# whole numbers are exact, so the kernel's byte tables and numpy's product give
# the same scores and near-ties the same order (they differed in the last bits, and
# which of the two ranked depended on whether numba's cache held the kernel).
_SHARED_BIT_UNIT = float(2**20)

#: numpy's time per shortlisted row (:func:`_shared_bit_scores`; 500 rows a query)
_NUMPY_NS_PER_ROW = 460.0


def _shared_bit_scores(index, near_rows, near_counts, m, query_codes, query_addresses, rows, counts) -> np.ndarray:
    """:func:`semhash.kernels.shared_bit_scores` in numpy, one query at a time: the
    same weights, computed in the same order, so the same scores to the last bit."""
    out = np.full(rows.shape, -np.inf)
    scale = np.r_[np.ones(64 * index.codes.shape[1]), np.full(64, ADDRESS_BITS)]
    own = 2.0 * _code_bits(query_codes, query_addresses) - 1.0
    for i in range(rows.shape[0]):
        near = near_rows[i, : min(m, near_counts[i])]
        held = _code_bits(index.codes[near], index.table.addresses[near]).sum(axis=0)
        shared = 2.0 * held / near.size - 1.0 if near.size else own[i]
        weights = np.rint(scale * (QUERY_BITS * own[i] + (1.0 - QUERY_BITS) * shared) * _SHARED_BIT_UNIT)
        hits = rows[i, : counts[i]]
        out[i, : counts[i]] = (2.0 * _code_bits(index.codes[hits], index.table.addresses[hits]) - 1.0) @ weights
    return out


def _code_bits(codes: np.ndarray, addresses: np.ndarray) -> np.ndarray:
    """Rows' long codes and addresses as their bits (float64 0 or 1, the address's
    64 last), in a fixed order (the same for queries and documents)."""
    words = np.concatenate([codes, addresses.astype(np.uint64)[:, None]], axis=1)
    return np.unpackbits(words.view(np.uint8), axis=-1).astype(np.float64)


def positions(index, rowids: bytes) -> np.ndarray:
    """The positions of the documents whose rowids ``rowids`` holds (int32,
    little-endian, as postings store them)."""
    positions = local_positions(index, np.arange(len(index)), np.frombuffer(rowids, "<i4")).astype(np.int64)
    if (positions < 0).any():  # the writers keep postings exact: this is damage, and changed answers unseen
        raise index.stored._corrupt("a term's postings name a document the index does not have")
    return positions


def rank(index, rows, dists, counts, vectors: rerank.Packed, k: int):
    """:func:`plan.ranked_shortlists`'s ranking of shortlists (``rows``, positions padded with
    -1, their code ``dists`` and ``counts``) by words and codes, for the queries'
    TF-IDF ``vectors``: (rows, code distances, counts, scores) of the ``k`` best."""
    n = len(index)
    # rows' -1 padding marks the spare last entry (no mask: 15M rows in a batch of 7,500)
    present = np.zeros(n + 1, bool)
    present[rows] = True
    shortlisted = np.flatnonzero(present[:n])
    local = (np.cumsum(present) - 1)[rows]  # position among the shortlisted (padding: any)
    documents, neighbours = ranking_rows(index, shortlisted)
    code_bits = int(index.meta["code_bits"])
    order, scores = rerank.rerank(
        vectors, local, dists, counts, documents, index.n_terms, code_bits, min(k, n), neighbours, held_bonus=True,
        typical=index.typical_length(), term_coded=index.word_tables is not None,
    )
    taken = np.maximum(order, 0)
    valid = order >= 0
    return (
        np.where(valid, np.take_along_axis(rows, taken, 1), -1),
        np.where(valid, np.take_along_axis(dists, taken, 1), -1),
        valid.sum(axis=1),
        scores,
    )


def ranking_rows(index, positions: np.ndarray) -> tuple[rerank.Packed, np.ndarray | None]:
    """The stored TF-IDF vectors of the documents at ``positions`` (ascending),
    packed, and their neighbour lists as indices into ``positions`` (-1: none, or
    not among them); ``None`` for an index without neighbour lists."""
    rowids = index.rowids[positions].tolist()
    found = index.stored.ranking_rows(rowids)
    # Each blob is let go once read (a batch on a million documents holds half a
    # million of each: 0.4 GB of bytes objects).
    vectors = [found[r][0] for r in rowids]
    lists = [found[r][1] or b"" for r in rowids] if index.n_neighbours else []
    del found
    documents = stored_vectors(index, vectors, sum(len(b) for b in vectors if b))
    del vectors
    if not index.n_neighbours:
        return documents, None
    lengths = np.fromiter(map(len, lists), np.int64, len(lists)) // 4
    try:
        joined = b"".join(lists)
    except TypeError:  # text where a blob should be
        joined = b""
    stored = np.frombuffer(joined, "<i4", len(joined) // 4)
    # (a rowid beyond the documents is a neighbour removed since: not damage)
    if len(joined) != 4 * lengths.sum() or (stored < 1).any():
        raise index.stored._corrupt("a stored neighbour list is damaged")
    del lists
    local = local_positions(index, positions, stored)
    del joined
    # Row i's list fills the first lengths[i] cells of its row, in list order.
    width = max(rerank.NEIGHBOURS, int(lengths.max(initial=0)))
    neighbours = np.full((len(rowids), width), -1, np.int32)
    neighbours[np.arange(width) < lengths[:, None]] = local
    return documents, np.ascontiguousarray(neighbours[:, : rerank.NEIGHBOURS])


def stored_vectors(index, blobs, n_bytes: int) -> rerank.Packed:
    """:func:`rerank.pack_blobs` of stored TF-IDF vectors, checked: a damaged row's
    term ids index the rankers' arrays (one id of 2**31 - 1 had a batch allocate
    24 GB), and text in place of a blob failed to join; both are a corrupt index."""
    try:
        documents = rerank.pack_blobs(blobs, n_bytes)
    except TypeError:
        raise index.stored._corrupt("a stored TF-IDF vector is not a blob") from None
    ids = documents[1]
    if 8 * ids.size != n_bytes:  # whole (id, weight) pairs only: stray bytes were dropped unseen
        raise index.stored._corrupt("a stored TF-IDF vector is damaged")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= index.n_terms):
        raise index.stored._corrupt("a stored TF-IDF vector names a term the index does not have")
    # NaN weights made NaN scores: hits in no order, and "score": NaN, not JSON. (Unit
    # vectors' weights are at most 1, so a finite sum means every weight is finite.)
    if not np.isfinite(documents[2].sum(dtype=np.float64)):
        raise index.stored._corrupt("a stored TF-IDF vector's weights are not numbers")
    return documents


def local_positions(index, positions: np.ndarray, rowids: np.ndarray) -> np.ndarray:
    """Where each of ``rowids`` is among the documents at ``positions`` (int32,
    -1: not among them, or not indexed any more).

    By a table indexed by rowid while rowids are dense enough for it (2,000
    queries on a million documents look up 28 million neighbours: binary
    searches took 6 s of it), else by binary search."""
    span = int(index.rowids[-1]) + 1 if len(index) else 0
    if span <= _TABLE_SPAN_PER_DOCUMENT * len(index) + _TABLE_SPAN_MIN:
        # Entry rowid + 1; the first and the last are -1 for rowids out of range.
        by_rowid = np.full(span + 2, -1, np.int32)
        by_rowid[index.rowids[positions] + 1] = np.arange(positions.shape[0], dtype=np.int32)
        return np.take(by_rowid, rowids + np.int32(1), mode="clip")  # 2**31 - 1 wraps below: -1 too
    local = np.full(rowids.shape[0], -1, np.int32)
    at = np.minimum(np.searchsorted(index.rowids, rowids), len(index) - 1)
    found = np.searchsorted(positions, at)
    found = np.minimum(found, max(positions.shape[0] - 1, 0))
    hit = (index.rowids[at] == rowids) & (positions[found] == at) if positions.size else np.zeros(rowids.shape[0], bool)
    local[hit] = found[hit]
    return local


def term_vectors(index, token_lists: list[list[str]]) -> rerank.Packed:
    """TF-IDF vectors of token lists over the index's terms, packed (all empty for
    an index built before terms were stored: its terms table may not exist yet)."""
    known = index.stored.terms(set().union(*token_lists)) if index.n_terms else {}
    return rerank.token_vectors(token_lists, known)


def query_vectors(index, texts: Sequence[str]) -> rerank.Packed:
    """TF-IDF vectors of texts as :func:`semhash.encoding.read` gives them. A few are looked up
    word by word; many (or any once the kernels are loaded) are tokenized by a
    kernel against every term, like :func:`count_words` (unless the index stems:
    the kernel matches whole words)."""
    if index.stem:
        return term_vectors(index, encoding.content_tokens(index, list(texts)))
    if not lazy.use_kernels(_PYTHON_NS_PER_CHAR * sum(map(len, texts)), kernel="ascii_word_ids"):
        return term_vectors(index, [content_words(t) for t in texts])
    if index._terms is None:
        index._terms = index.stored.all_terms()
    terms, idf = index._terms
    starts, ids = word_ids(texts, terms)
    doc = np.repeat(np.arange(len(texts)), np.diff(starts))
    return rerank.pack_tokens(doc, ids, idf[ids], len(texts))
