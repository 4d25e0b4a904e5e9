"""Query planning: the Hamming ball and its shortlist, ranked; queries grown until
``k`` hits pass their filters, or ranked among the few documents their labels
allow; queries without a word of the model's vocabulary, by their terms alone.

Functions take the opened :class:`semhash.api.Index`; rows are positions in its
arrays. Each answer is (rowids, code distances, scores or None) per query, made
into hits by the index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semhash import encoding, filters, rerank, search, shortlists
from semhash.corpus import content_hash
from semhash.errors import DocumentNotFound, EmptyQuery, QueryError

#: Filtered queries (labels, distance bounds) searched at once: each row of a batch
#: ranked in full or joined by up to LABELS_RANKED_IN_FULL allowed documents, so
#: bounded memory for a 10,000-line batch.
_FILTERED_BATCH = 1000
_NO_WORDS = "has no words in the index vocabulary (only stop words, or words it does not know): nothing to search for"


def found_many(index, texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed=None):
    """:meth:`Index.query_many`'s hits as (rowids, code distances, scores or None)
    per text (None: no hit)."""
    index.tokens = {} if index.stem else None  # each text tokenized once (encoding.content_tokens)
    try:
        return _found_many(index, texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed)
    finally:
        index.tokens = None


def _found_many(index, texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed):
    read = encoding.read(index, texts)
    addresses, query_codes, known, termed = encoding.encode_query(index, read, lift)
    found: list[tuple | None] = [None] * len(texts)
    # No vocabulary word: the codes alone answer by the code its terms gave it (the
    # default path by its words, below).
    if codes_only:
        known = np.where(termed, np.maximum(known, 1), known)
    empty = np.flatnonzero(known == 0)
    if empty.size and index.n_terms and not codes_only:
        # No word the model knows, but maybe words the index has: ranked by them.
        answers = by_words(index, [read[i] for i in empty], query_codes[empty], k, min_distance, max_distance, allowed=allowed)
        for i, hits in zip(empty.tolist(), answers):
            found[i] = hits
        empty = np.array([i for i in empty.tolist() if found[i] is None], np.int64)
    if empty.size and not skip_empty:
        which = f"query {empty[0] + 1}" if len(texts) > 1 else "the query"
        raise EmptyQuery(f"{which} {_NO_WORDS}")
    asked = np.flatnonzero(known > 0)
    if allowed is not None and filters.few(allowed):
        for start in range(0, asked.shape[0], _FILTERED_BATCH):
            part = asked[start : start + _FILTERED_BATCH]
            answers = among(
                index, addresses[part], query_codes[part], [read[i] for i in part], k, allowed,
                codes_only=codes_only, bounds=(min_distance, max_distance),
            )
            for i, hits in zip(part.tolist(), answers):
                found[i] = hits
    elif min_distance is None and max_distance is None and allowed is None:
        rows, dists, counts, scores = ranked_shortlists(
            index, addresses[asked], query_codes[asked], [read[i] for i in asked], k, codes_only
        )
        for j, i in enumerate(asked.tolist()):
            m = counts[j]
            found[i] = (index.rowids[rows[j, :m]], dists[j, :m], None if scores is None else scores[j, :m])
    else:
        # Filtered: ranked()'s first round for many queries at once (most shortlists
        # already hold k hits that pass: 300 20NG posts within 5 labels took 50 s
        # one by one); the others go on growing one by one, from its second round.
        pending, first = [], min(k, len(index))
        for start in range(0, asked.shape[0], _FILTERED_BATCH):
            part = asked[start : start + _FILTERED_BATCH]
            rows, dists, counts, scores = ranked_shortlists(
                index, addresses[part], query_codes[part], [read[i] for i in part], first, codes_only,
                bounds=(min_distance, max_distance), rank_all=allowed is not None,
            )
            for j, i in enumerate(part.tolist()):
                kept = filters.kept(
                    rows[j, : counts[j]], dists[j, : counts[j]], None if scores is None else scores[j, : counts[j]],
                    k, (), min_distance, max_distance, allowed, first >= len(index),
                )
                if kept is None:
                    pending.append(i)
                else:
                    found[i] = (index.rowids[kept[0]], kept[1], kept[2])
        for i in pending:
            found[i] = ranked(
                index, addresses[i], query_codes[i], k, text=read[i], min_distance=min_distance,
                max_distance=max_distance, codes_only=codes_only, allowed=allowed, want=min(4 * first, len(index)),
            )
    return found


def among(
    index, addresses, query_codes, texts: Sequence[str], k: int, allowed: np.ndarray, *,
    codes_only: bool = False, vectors: rerank.Packed | None = None, bounds=(None, None), exclude: Sequence[int] = (),
) -> list[tuple]:
    """(rowids, distances, scores or None) of each query's ``k`` best allowed hits
    (``allowed``: a mask over positions, few of them set) within the bounds and
    not at rows ``exclude``: every allowed document is ranked. With words, each
    query's shortlist (as :func:`ranked_shortlists` makes it) is joined by them all and ranked
    whole, so that they are ranked as an unfiltered query ranks them once its
    shortlist holds them; with the codes alone, all by code distance (ties by index
    order), then by the bits the nearest share (:func:`shortlists.by_shared_bits`)."""
    positions = np.flatnonzero(allowed)
    words = index.n_terms > 0 and not codes_only
    out = []
    if not words:
        # The bits' weights of the unfiltered ranking (its shortlist's nearest codes).
        width = min(index.shortlist, len(index))
        near, _, near_counts, _ = search.search_many(index.table, index.codes, addresses, query_codes, width, shortlist=width)
        for i in range(query_codes.shape[0]):
            d = shortlists.code_distances(index, positions, query_codes[i])
            order = np.argsort(d, kind="stable")
            ranked_rows, ranked_dists, _ = shortlists.by_shared_bits(
                index, positions[order][None], d[order][None], np.array([positions.size]), positions.size,
                query_codes[i : i + 1], addresses[i : i + 1], near=(near[i : i + 1], near_counts[i : i + 1]),
            )
            r, d = ranked_rows[0], ranked_dists[0]
            keep = ~np.isin(r, exclude) & filters.within(d, *bounds)
            out.append((index.rowids[r[keep][:k]], d[keep][:k].astype(np.int32), None))
        return out
    rows, dists, counts, scores = ranked_shortlists(
        index, addresses, query_codes, texts, k, codes_only, vectors, bounds=bounds, joined=positions
    )
    for i in range(query_codes.shape[0]):
        r, d, s = rows[i, : counts[i]], dists[i, : counts[i]], scores[i, : counts[i]]
        keep = allowed[r] & ~np.isin(r, exclude) & filters.within(d, *bounds)
        out.append((index.rowids[r[keep][:k]], d[keep][:k], s[keep][:k]))
    return out


def ranked(
    index, address, code, k: int, *, text: str = "", vector: rerank.Packed | None = None,
    exclude: Sequence[int] = (), min_distance=None, max_distance=None, codes_only: bool = False,
    allowed: np.ndarray | None = None, want: int | None = None,
):
    """(rowids, distances, scores or None) of the ``k`` best hits of the default ranking (for
    ``text`` as :func:`semhash.encoding.read` gives it, or its TF-IDF ``vector``) that are not at rows ``exclude`` and whose
    code distance lies within the bounds (and, with ``allowed``, a mask over
    positions, that are allowed): the ranking grows until ``k`` pass, from ``want``
    documents (default: ``k`` and the excluded). Few allowed documents are ranked
    in full instead (:func:`among`)."""
    if allowed is not None and filters.few(allowed):
        return among(
            index, np.array([address]), code.reshape(1, -1), [text], k, allowed, codes_only=codes_only,
            vectors=vector, bounds=(min_distance, max_distance), exclude=exclude,
        )[0]
    n = len(index)
    want = min(k + len(exclude), n) if want is None else want
    while True:
        rows, dists, counts, scores = ranked_shortlists(
            index, np.array([address]), code.reshape(1, -1), [text], want, codes_only, vector,
            bounds=(min_distance, max_distance), rank_all=allowed is not None,
        )
        found = filters.kept(
            rows[0, : counts[0]], dists[0, : counts[0]], None if scores is None else scores[0, : counts[0]],
            k, exclude, min_distance, max_distance, allowed, want >= n,
        )
        if found is not None:
            return index.rowids[found[0]], found[1], found[2]
        want = min(4 * want, n)


def ranked_shortlists(
    index, addresses, query_codes, texts: Sequence[str], k: int, codes_only: bool = False,
    vectors: rerank.Packed | None = None, bounds: tuple[int | None, int | None] = (None, None),
    rank_all: bool = False, joined: np.ndarray | None = None,
):
    """The default query path for encoded queries: (rows, code distances, counts,
    scores), rows as positions in ``index.codes``, padded with -1; scores (NaN
    past the counts) are None when the codes alone rank.

    The Hamming ball grows to a shortlist (:attr:`Index.shortlist` documents ranked by
    the long code, or ``rerank.SHORTLIST`` when the index has terms), which is
    ranked by words and codes together (:mod:`semhash.rerank`): the TF-IDF vectors
    of ``texts`` (as :func:`semhash.encoding.read` gives them), or ``vectors`` when given.
    ``bounds`` (min, max code distance): rare terms' holders outside them are
    not added (they could never be hits, and one ranked among the first told
    :func:`ranked` that the ball had reached past ``max_distance``).
    ``rank_all``: rank every candidate (as bounds do); ``joined``: positions
    that join every shortlist (those within the bounds), all then ranked.
    """
    n = len(index)
    words = index.n_terms > 0 and not codes_only
    # Words rank rerank.SHORTLIST documents; the codes, the ball grown to
    # Index.shortlist, all of it (shortlists.by_shared_bits).
    width = min(max(k, rerank.SHORTLIST if words else index.shortlist), n)
    # One call for the whole batch: the kernel runs the queries in parallel.
    rows, dists, counts, _ = search.search_many(
        index.table, index.codes, addresses, query_codes, width, shortlist=min(max(width, index.shortlist), n)
    )
    ranks_all = bounds != (None, None) or rank_all or joined is not None
    if not words:
        n_ranked = rows.shape[1] if ranks_all else k
        return (*shortlists.by_shared_bits(index, rows, dists, counts, n_ranked, query_codes, addresses), None)
    if vectors is None:
        vectors = shortlists.query_vectors(index, texts)
    if width < n:
        rows, dists, counts = shortlists.with_rare_holders(index, rows, dists, counts, vectors, query_codes, bounds, short=True)
        if joined is not None and joined.size:
            n_q = rows.shape[0]
            starts = np.arange(n_q + 1, dtype=np.int64) * joined.shape[0]
            rows, dists, counts = search.join(index.codes, rows, dists, counts, query_codes, starts, np.tile(joined, n_q), *bounds)
    # Bounded: every candidate ranked, for ranked() to keep those within the bounds
    # (the best k by words alone could all lie outside: none kept, and no growing).
    return shortlists.rank(index, rows, dists, counts, vectors, rows.shape[1] if ranks_all else k)


def by_words(index, read: list[str] | None, query_codes, k: int, min_distance=None, max_distance=None, vectors=None, allowed=None):
    """Hits of queries with no word of the model's vocabulary, by their words
    that are indexed terms: every document holding one of them, ranked by words
    and codes as a shortlist is (``None`` for a query with no such word).

    The model's vocabulary is the 2000 commonest words; the terms are every word
    of the indexed documents. Without this, a query of rarer words ("asimov
    stamp") found nothing: 1,279 of the 7,526 Subject lines of the 20NG test
    posts have no vocabulary word but some term. Its code is that of an empty
    document, so its distances say little; the words rank. (``vectors``: the
    texts' TF-IDF vectors, given instead of the texts ``read``; ``allowed``, a mask
    over positions: only those are hits.)"""
    vectors = shortlists.query_vectors(index, read) if vectors is None else vectors
    q_starts, q_ids, _ = vectors
    n = q_starts.shape[0] - 1
    if q_ids.size == 0:  # no word any document has: nothing to read the vectors for
        return [None] * n
    candidates = shortlists.holders(index, [q_ids[q_starts[i] : q_starts[i + 1]] for i in range(n)])
    width = max(1, max(map(len, candidates)))
    rows = np.full((n, width), -1, np.int64)
    dists = np.full((n, width), -1, np.int32)
    counts = np.array([len(c) for c in candidates], np.int64)
    for i, c in enumerate(candidates):
        rows[i, : len(c)] = c
        dists[i, : len(c)] = shortlists.code_distances(index, c, query_codes[i])
    # Ranked in full, so that distance bounds keep the best k that pass.
    rows, dists, counts, scores = shortlists.rank(index, rows, dists, counts, vectors, width)
    out = []
    for i in range(n):
        r, d, s = rows[i, : counts[i]], dists[i, : counts[i]], scores[i, : counts[i]]
        keep = filters.within(d, min_distance, max_distance)
        if allowed is not None:
            keep &= allowed[r]
        out.append((index.rowids[r[keep][:k]], d[keep][:k], s[keep][:k]) if counts[i] else None)
    return out


def check_k(k: int) -> None:
    if k < 1:
        raise QueryError(f"the number of results must be at least 1, got {k}")


def similar(index, doc_id: str, k: int, min_distance, max_distance, labels):
    """:meth:`Index.similar`'s answer, (rowids, distances, scores or None), read
    inside the index's snapshot."""
    rowid = index.stored.rowid_of(doc_id)
    if rowid is None:
        raise DocumentNotFound(f"no document {doc_id!r} in {index.stored.path}")
    allowed = filters.allowed(index, labels)
    row = int(np.searchsorted(index.rowids, rowid))
    vector = None  # an index built before terms has no vectors (nor their column)
    if index.n_terms:
        blob = index.stored.term_vectors([rowid]).get(rowid)
        vector = shortlists.stored_vectors(index, [blob], len(blob) if blob else 0)
        if index.stored.known_words(rowid) == 0:
            # Its code is an empty document's (any other such document is 0 bits
            # away, whatever it says): by its words, as a query is, or nothing.
            found = by_words(index, None, index.codes[row : row + 1], k + 1, min_distance, max_distance, vector, allowed)[0]
            if found is None:
                raise EmptyQuery(f"the document {_NO_WORDS}")
            return tuple(part[found[0] != rowid][:k] for part in found)
    return ranked(
        index, index.table.addresses[row], index.codes[row], k, vector=vector, exclude=(row,),
        min_distance=min_distance, max_distance=max_distance, allowed=allowed,
    )


def similar_to_text(index, text: str, k: int, min_distance, max_distance, labels):
    """:meth:`Index.similar_to_text`'s answer, (rowids, distances, scores or None),
    read inside the index's snapshot."""
    allowed = filters.allowed(index, labels)
    read = encoding.read(index, [text])
    addresses, query_codes, known = encoding.encode_read(index, read, lift=False)
    same = np.searchsorted(index.rowids, index.stored.rowids_with_hash(content_hash(text)))
    if known[0] == 0:  # no word of the model's: by its words alone, as a query is
        found = by_words(index, read, query_codes, k + same.shape[0], min_distance, max_distance, allowed=allowed)[0] if index.n_terms else None
        if found is None:
            raise EmptyQuery(f"the document {_NO_WORDS}")
        keep = ~np.isin(found[0], index.rowids[same])
        return tuple(part[keep][:k] for part in found)
    return ranked(
        index, addresses[0], query_codes[0], k, text=read[0], exclude=same.tolist(),
        min_distance=min_distance, max_distance=max_distance, allowed=allowed,
    )
