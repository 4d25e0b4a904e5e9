"""Shortlist -> ranking: the codes choose the neighbourhood, words and codes rank it.

Semantic hashing's best mode in the paper is filter-then-rank: the Hamming ball
gives a shortlist, and TF-IDF ranks it. Here the shortlist also takes the
documents that hold the query's rarest terms (``RARE_TERMS``; the model reads only
the 2000 commonest words, so a name or a piece of jargon moves no code, yet is
often the best clue a short query has). Each shortlisted document scores

    cosine(query, document) - CODE_WEIGHT * code distance / code bits

over TF-IDF vectors of *every* term of the indexed documents (not only the model's
2000 words), then once more after pseudo-relevance feedback: the query vector is
moved towards the mean vector of its ``FEEDBACK_DOCS`` best documents (Rocchio),
by the ``FEEDBACK_TERMS`` terms of that mean with the largest weights. Of those
best documents only the ones that share a word with the query feed back: in a
small index the best ten can include documents placed there by their codes
alone, and their words, nothing like the query's, would pull it off topic.
Last, each document's cosine is smoothed by its neighbours' (the cluster
hypothesis: a document whose nearest documents match the query is likely to be
relevant too, even if its own words match less well; Diaz, "Regularizing ad hoc
retrieval scores", CIKM 2005). Every indexed document keeps the ``NEIGHBOURS``
documents nearest to it (``graph.fill_neighbours``, once at index time),
and its score becomes its cosine plus ``NEIGHBOUR_WEIGHT`` times the mean smoothed
score of those of its neighbours that are in the same shortlist, ``HOPS`` times
over. On 20 Newsgroups (bydate; train indexed, test posts as queries;
precision@100): the long code alone ranks the shortlist at 0.454, TF-IDF alone at
0.489, the blend at 0.515, with feedback 0.565, with neighbours 0.62, and with the
rare terms' documents in the shortlist 0.63 (bench/rerank_trials.py; every
setting in BENCHMARKS.md).
A query of a few words (``SHORT_QUERY``) takes every holder of its terms that
have postings, and each candidate gains a bonus for the share of its words it
holds (``HELD_WEIGHT``), so that a document holding them all is not ranked below
hundreds holding one; against documents many times longer (``FEW_WORDS``), its
code, lifted from those few words, only chooses the shortlist, and the smoothing
takes fewer hops.

Term weights are fixed when the index is built: ``idf = ln((1 + n) / (1 + df)) + 1``
and a term count ``tf`` weighs ``1 + ln(tf)``; vectors have unit length. Documents
added later get vectors over the same terms and weights (a new word is unknown to
them until ``semhash index --retrain``).

numpy only: one query costs a few milliseconds. Many queries go through
:func:`semhash.kernels.rerank_batch` once the kernels are loaded; the ranking is
still the larger part of a batch's time (20NG: about 3.3 s of 8.3 s for 7,532
queries on the 2-vCPU dev VM, BENCHMARKS.md; ``--codes-only`` skips it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from semhash import lazy

if TYPE_CHECKING:
    import scipy.sparse as sp

# Chosen on the 20NG training posts, each queried against the others (precision@100,
# bench/rerank_trials.py --leave-one-out 2000), then checked once on the test posts;
# the comments give leave-one-out (test) figures with the other settings as here.
#: Documents ranked after the ball lookup: the ball grows to at least this many.
#: 1000 / 2000 / 3000 -> 0.610 / 0.629 / 0.640 (test 0.595 / 0.618 / 0.630); each
#: 1000 more costs about as much ranking time again. Without neighbours: 0.576 / 0.587.
SHORTLIST = 2000
#: The documents that hold the query's rarest terms join the shortlist: its terms
#: by ascending document frequency, while their frequencies add up to at most this
#: many (store.POSTINGS_MAX_DF is the most it can be). A rare word the codes do not
#: know (the model reads 2,000 common ones) is often the best clue there is.
#: 0 / 250 / 500 / 1000 -> 0.631 / 0.644 / 0.648 / 0.649 (test 0.617 / - / 0.633 / -);
#: the posts' Subject lines as queries (--subjects, precision@10, 1,630 queries):
#: 0.583 / 0.646 / 0.643 / 0.642. Each 250 more costs the ranking of a 20NG batch
#: about a tenth more time.
RARE_TERMS = 500
CODE_WEIGHT = 0.25  # 0 / 0.25 / 0.5 -> 0.631 / 0.629 / 0.626 (test 0.620 / 0.618 / 0.614)
FEEDBACK_DOCS = 10  # 0 / 10 / 20 -> 0.617 / 0.629 / 0.624
FEEDBACK_WEIGHT = 4.0  # 2 / 4 -> 0.629 / 0.629 (chosen without neighbours: 0.582 / 0.589)
#: The feedback adds only this many of its terms, those of largest weight (and any
#: tied with the last; 0: all). On 20NG it brings ~490 terms to a query of ~60; the
#: best 100 rank as well (all / 50 / 100 / 200 -> 0.6275 / 0.6276 / 0.6289 / 0.6298,
#: test 0.6123 / 0.6110 / 0.6132 / 0.6143), and keep the grown query short enough for
#: the kernel to walk its postings: the ranking of a 20NG batch 1.8x faster than with
#: all terms (200: 1.3x).
FEEDBACK_TERMS = 100
#: Neighbours kept per document (30 / 50 -> 0.626 / 0.629), the weight of their
#: mean score (2 / 4 / 8 -> 0.627 / 0.629 / 0.629), and how many times the
#: smoothing is applied (0 / 1 / 2 / 3 -> 0.587 / 0.620 / 0.629 / 0.624, unstemmed
#: 20NG alone). On every corpus, stemmed (20NG posts / StackOverflow / Biomedical
#: P@100), HOPS 1 / 2 / 3 / 4: - / 0.6556 / 0.6562 / -, 0.5514 / 0.5784 / 0.6018 /
#: 0.6160, 0.4175 / 0.4277 / 0.4314 / 0.4291: 3 (short titles lean on their
#: neighbours most); a few words against long documents keep 2 (FEW_WORDS).
NEIGHBOURS = 50
NEIGHBOUR_WEIGHT = 4.0
HOPS = 3
#: Each document's neighbours are the best of its own ball of this many documents,
#: ranked by the first pass (words and codes, no feedback): in the prototype nearly
#: as good as its exact TF-IDF nearest neighbours (0.616 against 0.618, 30
#: neighbours, 1 hop, shortlist 1000), and the graph costs one batch query per document.
#: The documents holding its rarest terms join that ball, as they join a query's
#: (RARE_TERMS): held-out 0.643 -> 0.651 (Subject lines, P@10) and 0.648 -> 0.653
#: (whole posts, P@100); test 0.633 -> 0.636; the graph of 20NG 4.5 s -> 10.4 s.
#: A ball of 500, not 1000: default-path P@100 mean -0.0007, within the lists' rebuild
#: noise, for a third less ranking (a million documents' graph 299 -> 196 s; docs/trials.md).
NEIGHBOUR_SHORTLIST = 500
#: A query of at most this many terms is a few typed words ("ssh server", a Subject
#: line). The codes of a few words say little, and a document holding them all had
#: been ranked below hundreds holding one (a Debian package catalogue: openssh-server
#: at rank 308 for "ssh server"). So its shortlist takes every holder of each of its
#: terms that has postings (``shortlists.with_rare_holders``), and each candidate's score
#: gains HELD_WEIGHT times the query's best score times the share of the query's
#: term weights it holds (:func:`held_shares`): a bonus bounded by the query's own
#: scale, so that the words and codes can still outweigh it, and weighed by idf, so
#: that generic words ("tool", "library") count for less than specific ones. (As the
#: primary sort key instead, the share lowered 20NG Subject-line P@10 0.601 -> 0.561.)
#: HELD_WEIGHT 0.25 / 0.35 / 0.5 / 1.0, stemmed indexes (bench/corpora.py): Subject
#: lines 0.6018 / 0.6056 / 0.6100 / 0.6143, StackOverflow P@100 0.5806 / 0.5804 /
#: 0.5795 / 0.5750, 20NG and Biomedical within 0.0012: 0.5 has the best mean.
SHORT_QUERY = 8
HELD_WEIGHT = 0.5
#: A short query of fewer terms than this share of the index's typical document
#: (:meth:`semhash.api.Index.typical_length`) is ranked by its words alone, its code
#: having chosen the shortlist, and smoothed over FEW_WORDS_HOPS hops: a code lifted
#: from three words is a guess, and the graph drifts from them. A title against
#: titles keeps both. Stemmed indexes (20NG Subject lines P@10 / StackOverflow /
#: Biomedical P@100 / whole 20NG posts): HOPS 2 and the codes for all, 0.6075 /
#: 0.5784 / 0.4277 / 0.6556; code weight 0 for all, Subject 0.6224; HOPS 3 for all,
#: 0.5931 / 0.6018 / 0.4314 / 0.6562; HOPS 3 and FEW_WORDS 0.25 / 0.5 / 1.0, 0.6222
#: / 0.6017 / 0.4314 / 0.6561 (0.5: SO 0.5994, Bio 0.4309; 1.0: 0.5829, 0.4274).
#: Once its code also comes from its terms' codes (an index with word tables,
#: :mod:`semhash.termcodes`), the code is no guess: each candidate then loses
#: FEW_WORDS_CODE_WEIGHT times its code distance / code bits times the share of the
#: query's term weights it lacks (:func:`with_held_bonus`), so that a document
#: holding every word keeps its place (issue 26) and the codes order the others.
#: Subject lines P@10, weight 0 / 1 / 2 / 4 / 6 / 8 / 12 / 20: 0.6362 / 0.6411 /
#: 0.6448 / 0.6468 / 0.6478 / 0.6476 / 0.6475 / 0.6449 (held out, 2,000 training
#: posts' lines, bench/rerank_trials.py, whose own posts' codes are in their terms'
#: codes: 0.7032 / 0.7074 / 0.7118 / 0.7183 / 0.7225 / 0.7245 / 0.7280). As a plain
#: code weight (CODE_WEIGHT's form) 0.25-1.0 gave 0.641-0.642, and ranked a
#: document holding every word below holders of one (tests/test_api.py).
FEW_WORDS = 0.25
FEW_WORDS_HOPS = 2
FEW_WORDS_CODE_WEIGHT = 8.0
#: The same for the other short queries (a title against titles), which had kept
#: CODE_WEIGHT: StackOverflow / Biomedical P@100 (default path, test titles, in
#: process), CODE_WEIGHT as before 0.6093 / 0.4307; lacking share x 8 / 16 / 32 / 64:
#: 0.6118 / 0.4350, 0.6197 / 0.4354, 0.6279 / 0.4340, 0.6324 / 0.4310 (128: SO 0.6299).
SHORT_CODE_WEIGHT = 32.0

# A document's vector as stored: int32 term ids (ascending), then float32 weights.
Vector = tuple[np.ndarray, np.ndarray]
EMPTY: Vector = (np.zeros(0, np.int32), np.zeros(0, np.float32))
# Many vectors end to end: (starts int64 (n + 1,), term ids int32, weights float32).
Packed = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_idf(full: sp.csr_matrix) -> np.ndarray:
    """Inverse document frequencies (float32) of the columns of a count matrix."""
    df = np.bincount(full.indices, minlength=full.shape[1])
    return (np.log((1 + full.shape[0]) / (1 + df)) + 1).astype(np.float32)


def weigh(ids: np.ndarray, counts: np.ndarray, idf: np.ndarray) -> Vector:
    """Unit-length TF-IDF vector of one document's term ids, counts and those terms' idf."""
    return row(unit_vectors(np.zeros(ids.shape[0], np.int64), ids, counts, idf, 1), 0)


def csr_vectors(full: sp.csr_matrix, idf: np.ndarray, block: int = 65536) -> Iterator[Vector]:
    """:func:`weigh` of each row of a count matrix with sorted indices, ``block``
    rows at a time: all at once, the temporaries took 1.6 GB more at a million
    documents (the peak of `semhash index`)."""
    for start in range(0, full.shape[0], block):
        part = full[start : start + block]
        doc = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
        packed = unit_vectors(doc, part.indices, part.data, idf[part.indices], part.shape[0])
        yield from (row(packed, i) for i in range(part.shape[0]))


def token_vectors(token_lists: Sequence[list[str]], known: dict[str, tuple[int, float]]) -> Packed:
    """:func:`pack_tokens` of token lists over the ``known`` terms ({term: (id,
    idf)}); other tokens are dropped."""
    doc, ids, idf = [], [], []
    for d, tokens in enumerate(token_lists):
        for t in tokens:
            hit = known.get(t)
            if hit is not None:
                doc.append(d)
                ids.append(hit[0])
                idf.append(hit[1])
    return pack_tokens(np.array(doc, np.int64), np.array(ids, np.int64), np.array(idf, np.float32), len(token_lists))


def pack_tokens(doc: np.ndarray, ids: np.ndarray, idf: np.ndarray, n_docs: int) -> Packed:
    """:func:`unit_vectors` of known tokens given as each token's document
    (ascending), term id and that term's idf."""
    span = int(ids.max()) + 1 if ids.size else 1
    keys, first, counts = np.unique(doc * span + ids, return_index=True, return_counts=True)
    return unit_vectors(keys // span, keys % span, counts, idf[first], n_docs)


def unit_vectors(doc: np.ndarray, ids: np.ndarray, counts: np.ndarray, idf: np.ndarray, n_docs: int) -> Packed:
    """Unit-length TF-IDF vectors, packed, of (document, term id, count, idf)
    entries sorted by document then term: a count ``tf`` weighs ``(1 + ln tf) * idf``."""
    weights = (1 + np.log(np.asarray(counts, np.float32))) * np.asarray(idf, np.float32)
    norms = np.sqrt(np.bincount(doc, weights.astype(np.float64) ** 2, minlength=n_docs))
    starts = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.bincount(doc, minlength=n_docs), out=starts[1:])
    return starts, np.asarray(ids, np.int32), (weights / norms[doc]).astype(np.float32)


def to_blob(vector: Vector) -> bytes | None:
    ids, weights = vector
    if ids.size == 0:
        return None
    return ids.astype("<i4").tobytes() + weights.astype("<f4").tobytes()


def from_blob(blob: bytes | None) -> Vector:
    if not blob:
        return EMPTY
    n = len(blob) // 8
    return np.frombuffer(blob, "<i4", n), np.frombuffer(blob, "<f4", n, offset=4 * n)


def pack(vectors: Sequence[Vector]) -> Packed:
    """Vectors end to end: (starts int64 (n + 1,), term ids int32, weights float32)."""
    starts = np.zeros(len(vectors) + 1, np.int64)
    np.cumsum([v[0].shape[0] for v in vectors], out=starts[1:])
    ids = np.concatenate([v[0] for v in vectors] or [EMPTY[0]]).astype(np.int32, copy=False)
    weights = np.concatenate([v[1] for v in vectors] or [EMPTY[1]]).astype(np.float32, copy=False)
    return starts, ids, weights


def pack_blobs(blobs: Iterable[bytes | None], n_bytes: int) -> Packed:
    """:func:`pack` of stored vector blobs (:func:`to_blob`) whose sizes add up to
    ``n_bytes``, filled into arrays sized up front: the vectors are held once.

    Blobs are unpacked ``_BLOBS_AT_ONCE`` at a time, as one buffer: a batch of
    queries on a million documents unpacks half a million, and a pair of numpy
    views per blob took 1.7 s of it (0.9 s so)."""
    ids, weights = np.empty(n_bytes // 8, np.int32), np.empty(n_bytes // 8, np.float32)
    lengths, at = [], 0
    blobs = iter(blobs)
    while chunk := [b or b"" for b in itertools.islice(blobs, _BLOBS_AT_ONCE)]:
        sizes = np.fromiter(map(len, chunk), np.int64, len(chunk))
        if (sizes % 8).any():  # as from_blob reads them: whole (id, weight) pairs
            chunk = [b[: len(b) - len(b) % 8] for b in chunk]
        n = sizes // 8
        words = np.frombuffer(b"".join(chunk), "<i4")
        # Each blob is its ids, then as many weights.
        is_id = np.repeat(np.tile(np.array([True, False]), len(chunk)), np.repeat(n, 2))
        ids[at : at + words.shape[0] // 2] = words[is_id]
        weights[at : at + words.shape[0] // 2] = words.view("<f4")[~is_id]
        lengths.append(n)
        at += words.shape[0] // 2
    starts = np.zeros(sum(map(len, lengths)) + 1, np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=starts[1:])
    return starts, ids[:at], weights[:at]  # (damaged blobs' stray bytes counted in n_bytes)


_BLOBS_AT_ONCE = 65_536


def neighbours_to_blob(rowids: np.ndarray) -> bytes:
    """A document's neighbour list as stored: int32 rowids, nearest first (empty
    bytes for none: NULL means "not computed yet")."""
    return np.asarray(rowids).astype("<i4").tobytes()


def neighbours_from_blob(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", "<i4").astype(np.int64)


def row(packed: Packed, i: int) -> Vector:
    """Vector ``i`` of packed vectors."""
    starts, ids, weights = packed
    return ids[starts[i] : starts[i + 1]], weights[starts[i] : starts[i + 1]]


def rerank(
    queries: Packed,
    candidates: np.ndarray,
    distances: np.ndarray,
    counts: np.ndarray,
    documents: Packed,
    n_terms: int,
    code_bits: int,
    k: int,
    neighbours: np.ndarray | None = None,
    feedback: bool = True,
    held_bonus: bool = False,
    typical: float = 0.0,
    term_coded: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each query's shortlist by words and codes; keep the best ``k``.

    Parameters
    ----------
    queries : :func:`pack` of one TF-IDF vector per query (empty: rank by code
        distance alone)
    candidates : int64 (n_queries, width): row ``i`` holds query ``i``'s shortlist,
        as positions into ``documents``, the first ``counts[i]`` valid
    distances : int32, same shape: their code distances
    counts : int64 (n_queries,)
    documents : :func:`pack` of the shortlisted documents' vectors, or their
        :class:`KernelDocuments` (for many calls over the same documents)
    n_terms : number of terms (ids are below it)
    code_bits : width of the code the distances are measured on
    k : how many to keep
    neighbours : int (n_documents, width), optional: row ``j`` holds document ``j``'s
        neighbours, as positions into ``documents``, -1 for none (or one that is not
        among the documents); ``None``: no smoothing
    feedback : whether to run the feedback round
    held_bonus : whether the short queries' candidates gain the share of the
        query's words they hold (:data:`HELD_WEIGHT`)
    typical : the index's typical document length in vocabulary words (0: not
        given): short queries of fewer terms than :data:`FEW_WORDS` times it are
        ranked with :data:`FEW_WORDS_HOPS` hops, by their codes only as ``term_coded``
    term_coded : the queries' codes came from their terms' codes too (termcodes): short
        ones rank by them (:data:`SHORT_CODE_WEIGHT`, :data:`FEW_WORDS_CODE_WEIGHT`)

    Returns
    -------
    order : int64 (n_queries, k)
        Positions into each row of ``candidates`` (-1 past the row's count), best
        first; ties keep the shortlist's order.
    scores : float64 (n_queries, k)
        Their scores, ``cosine - CODE_WEIGHT * distance / code_bits`` (the cosine
        after feedback and smoothing, plus the held bonus): higher is better; NaN
        past the row's count.
    """
    k = min(k, candidates.shape[1])
    short = short_queries(queries) if held_bonus and HELD_WEIGHT else np.zeros(0, bool)
    if not short.any():
        return _rerank(queries, candidates, distances, counts, documents, n_terms, code_bits, k, neighbours, feedback)
    # The short queries ranked in full, for the bonus to reorder; the others as asked.
    out = np.full((candidates.shape[0], k), -1, np.int64)
    out_scores = np.full((candidates.shape[0], k), np.nan)
    few = short & (np.diff(queries[0]) < FEW_WORDS * typical) if typical else np.zeros_like(short)
    # (_HELD_CHUNK short queries at a time: a full ranking is a row as wide as the shortlist.)
    # (with term_coded, a document holding every word of a short query keeps its place)
    titles = ((0.0, None), SHORT_CODE_WEIGHT) if term_coded else ((), 0.0)
    chunks = [(np.flatnonzero(~short), False, (), 0.0)]
    for group, options, lacking in ((short & ~few, *titles), (few, (0.0, FEW_WORDS_HOPS), FEW_WORDS_CODE_WEIGHT * term_coded)):
        at = np.flatnonzero(group)
        chunks += [(at[lo : lo + _HELD_CHUNK], True, options, lacking) for lo in range(0, at.size, _HELD_CHUNK)]
    for which, gains, options, lacking in chunks:
        if which.size == 0:
            continue
        part = (take(queries, which), candidates[which], distances[which], counts[which])
        order, scores = _rerank(
            *part, documents, n_terms, code_bits, candidates.shape[1] if gains else k, neighbours, feedback, *options
        )
        if gains:
            given = documents.given if isinstance(documents, KernelDocuments) else documents
            penalty = lacking / code_bits * part[2] if lacking else None
            order, scores = with_held_bonus(order, scores, held_shares(part[0], part[1], part[3], given), k, penalty)
        out[which], out_scores[which] = order, scores
    return out, out_scores


def _rerank(
    queries, candidates, distances, counts, documents, n_terms: int, code_bits: int, k: int, neighbours, feedback: bool,
    code_weight: float | None = None, hops: int | None = None,
):
    """:func:`rerank` without the held bonus, with ``code_weight`` and ``hops`` in place
    of :data:`CODE_WEIGHT` and :data:`HOPS` if given."""
    code_weight = CODE_WEIGHT if code_weight is None else code_weight
    hops = HOPS if hops is None else hops
    q_starts, q_ids, q_weights = queries
    n_queries = q_starts.shape[0] - 1
    kernel_view = documents if isinstance(documents, KernelDocuments) else None
    if kernel_view is not None:
        documents = kernel_view.given
    n_docs = documents[0].shape[0] - 1
    if neighbours is None or hops == 0:
        neighbours = np.zeros((n_docs, 0), np.int32)
    neighbours = np.ascontiguousarray(neighbours, np.int32)
    n_feedback = FEEDBACK_DOCS if feedback else 0
    # One float64 weight per neighbour, computed here for both paths: same sums.
    spread = NEIGHBOUR_WEIGHT / neighbours.shape[1] if neighbours.shape[1] else 0.0
    if lazy.use_kernels(float(counts.sum()) * 2000, kernel="rerank_batch"):  # ~2 us per candidate in numpy
        import numba  # loaded with the kernels

        kernel_view = kernel_view or KernelDocuments(documents, n_terms)
        d_starts, d_ids, d_weights = kernel_view.packed
        ids, dists = kernel_view.by_frequency[q_ids], distances.astype(np.int32)
        posted = kernel_view.postings_for(queries, counts)
        # A kernel cannot be interrupted: Ctrl-C waits for the call under way, so a
        # batch is ranked KERNEL_QUERIES queries a call (q_starts stay offsets into ids).
        parts = [
            lazy.kernels.rerank_batch(
                q_starts[lo : lo + KERNEL_QUERIES + 1], ids, q_weights, candidates[lo : lo + KERNEL_QUERIES],
                dists[lo : lo + KERNEL_QUERIES], counts[lo : lo + KERNEL_QUERIES], d_starts, d_ids, d_weights, *posted,
                kernel_view.original, n_terms, code_weight / code_bits, n_feedback, FEEDBACK_WEIGHT, FEEDBACK_TERMS,
                neighbours, spread, hops, k, numba.get_num_threads(),
            )
            for lo in range(0, max(n_queries, 1), KERNEL_QUERIES)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    out = np.full((n_queries, k), -1, np.int64)
    out_scores = np.full((n_queries, k), np.nan)
    for i in range(n_queries):
        m = int(counts[i])
        if m == 0:
            continue
        query = (q_ids[q_starts[i] : q_starts[i + 1]], q_weights[q_starts[i] : q_starts[i + 1]])
        penalty = code_weight / code_bits * distances[i, :m].astype(np.float64)
        cosines = _cosines(query, candidates[i, :m], penalty, documents, n_terms, n_feedback)
        if neighbours.shape[1] and query[0].size:
            cosines = _smooth(cosines, candidates[i, :m], neighbours, spread, hops)
        scores = cosines - penalty
        chosen = np.argsort(-scores, kind="stable")[:k]
        out[i, : chosen.shape[0]], out_scores[i, : chosen.shape[0]] = chosen, scores[chosen]
    return out, out_scores


_HELD_CHUNK = 256


def take(queries: Packed, which: np.ndarray) -> Packed:
    """The packed vectors at positions ``which``, packed."""
    return pack([row(queries, i) for i in which.tolist()])


def short_queries(queries: Packed) -> np.ndarray:
    """Which queries are short: :data:`SHORT_QUERY` terms at most, and some."""
    lengths = np.diff(queries[0])
    return (lengths > 0) & (lengths <= SHORT_QUERY)


def held_shares(queries: Packed, candidates: np.ndarray, counts: np.ndarray, documents: Packed) -> np.ndarray:
    """float64 (n_queries, width): for each query's first ``counts[i]`` candidates
    (positions into ``documents``), the share of the query's term weights whose
    terms the document holds (0 past the count, or for an empty query)."""
    q_starts, q_ids, q_weights = queries
    d_starts, d_ids, _ = documents
    candidates = np.ascontiguousarray(candidates, np.int64)
    counts = np.asarray(counts, np.int64)
    if lazy.use_kernels(float(counts.sum()) * 2000):  # ~2 us per candidate in numpy, as a first pass
        return lazy.kernels.held_shares(q_starts, q_ids, q_weights, candidates, counts, d_starts, d_ids)
    out = np.zeros(candidates.shape)
    dense = np.zeros(int(max(q_ids.max(initial=0), d_ids.max(initial=0))) + 1, np.float32)
    for i in range(candidates.shape[0]):
        terms, weights = row(queries, i)
        total, rows = float(weights.astype(np.float64).sum()), candidates[i, : counts[i]]
        if total <= 0 or rows.size == 0:
            continue
        # A document's terms are distinct: its dot product of ones with the query's
        # weights is the sum of those of the terms it holds.
        lengths = d_starts[rows + 1] - d_starts[rows]
        at = np.repeat(d_starts[rows] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        dense[terms] = weights
        out[i, : rows.size] = _dots(dense, d_ids[at], np.ones(at.size, np.float32), lengths) / total
        dense[terms] = 0
    return out


def with_held_bonus(order: np.ndarray, scores: np.ndarray, shares: np.ndarray, k: int, penalty=None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of full rankings (``order``, ``scores``: :func:`rerank`'s, every
    candidate ranked) once each candidate's score gains ``HELD_WEIGHT`` times its
    row's best score (if above 0) times its held share (``shares``, by candidate
    position), and loses its ``penalty`` (by candidate position, if given) times the
    share it lacks; ties keep the ranking's order."""
    valid = order >= 0
    best = np.maximum(np.nan_to_num(scores[:, :1], nan=0.0), 0.0)  # each row's first is its best
    share = np.take_along_axis(shares, np.maximum(order, 0), 1)
    gained = scores + HELD_WEIGHT * best * share
    if penalty is not None:
        gained -= np.take_along_axis(penalty, np.maximum(order, 0), 1) * (1 - share)
    gained = np.where(valid, gained, -np.inf)
    chosen = np.argsort(-gained, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(valid, chosen, 1)
    return (
        np.where(kept, np.take_along_axis(order, chosen, 1), -1),
        np.where(kept, np.take_along_axis(gained, chosen, 1), np.nan),
    )


class KernelDocuments:
    """Packed document vectors as :func:`semhash.kernels.rerank_batch` reads them,
    prepared once for every call of :func:`rerank` over the same documents (at a
    million documents the preparation takes about a second).

    The kernel's dot products look each document term up in a dense query vector
    of n_terms floats (400 KB on 20NG, more than a core's L2 beside the documents).
    Numbered by frequency, the terms most lookups hit share a few cache lines:
    1.2-1.7x faster dot products on 20NG (in-process, runs alternated). Each sum
    still adds the same products in the same (storage) order, so the scores are
    bit for bit the same. The postings of the first pass are built by the first
    call whose queries they pay for (:func:`_postings_pay`), and kept.
    """

    def __init__(self, documents: Packed, n_terms: int):
        self.given = documents
        starts, ids, weights = documents
        self.frequency = np.bincount(ids, minlength=n_terms)
        self.original = np.argsort(-self.frequency, kind="stable")  # kernel's term id -> stored id
        self.by_frequency = np.empty(n_terms, np.int32)  # stored id -> kernel's
        self.by_frequency[self.original] = np.arange(n_terms, dtype=np.int32)
        self.packed: Packed = (starts, self.by_frequency[ids], weights)
        self._postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def postings_for(self, queries: Packed, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings for the kernel, or empty arrays when they do not pay."""
        if self._postings is None and _postings_pay(self.frequency, queries, counts, self.packed):
            self._postings = lazy.kernels.postings(*self.packed, self.frequency.shape[0])
        return self._postings if self._postings is not None else _NO_POSTINGS


_NO_POSTINGS = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))

#: Queries ranked by one kernel call: about 0.5 s of a 20NG batch on 2 cores,
#: the longest Ctrl-C then waits there.
KERNEL_QUERIES = 1024


def _postings_pay(frequency: np.ndarray, queries: Packed, counts: np.ndarray, documents: Packed) -> bool:
    """Whether to build the documents' postings for the kernel's first pass: when
    the entries the queries would read from them (to add, then to clear, or to
    clear every document's sum when there are fewer documents) are fewer than
    those of their shortlists' vectors by more than the postings hold. On 20NG
    yes (postings of 1 M entries spare 0.9 G reads in a batch of the test
    posts); over a million documents, by the same estimate, no: a query's
    terms' postings there would be about 90 times longer, longer than its
    shortlist's vectors."""
    q_starts, q_ids, _ = queries
    d_starts = documents[0]
    posted = np.zeros(q_starts.shape[0] - 1, np.int64)
    filled = np.diff(q_starts) > 0
    if q_ids.size:
        posted[filled] = np.add.reduceat(frequency[q_ids], q_starts[:-1][filled])
    per_vector = d_starts[-1] / max(d_starts.shape[0] - 1, 1)  # mean length: summing the shortlists exactly is a pass itself
    n_docs = d_starts.shape[0] - 1
    saved = np.maximum(counts * per_vector - posted - np.minimum(posted, n_docs), 0).sum()
    return bool(saved > 2 * d_starts[-1])


def _cosines(query: Vector, rows, penalty, documents: Packed, n_terms: int, n_feedback: int) -> np.ndarray:
    """Each shortlisted document's cosine with the query, after the feedback round
    (if any); all 0 for an empty query."""
    if query[0].size == 0:
        return np.zeros(rows.shape[0])
    starts, ids, weights = documents
    # The shortlisted documents' (term, weight) pairs, document after document.
    lengths = starts[rows + 1] - starts[rows]
    at = np.repeat(starts[rows] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    terms, values = ids[at], weights[at]
    dense = np.zeros(n_terms, np.float32)
    dense[query[0]] = query[1]
    first = _dots(dense, terms, values, lengths)
    top = np.argsort(penalty - first, kind="stable")[:n_feedback]
    top = top[first[top] > 0]  # only documents that share a word with the query
    if top.shape[0] == 0 or FEEDBACK_WEIGHT == 0:
        return first
    # Rocchio: the query moves towards the mean of its best documents, by its
    # FEEDBACK_TERMS terms of largest weight (summed in the kernel's order).
    step = np.float32(FEEDBACK_WEIGHT / top.shape[0])
    grown, hit = np.zeros(n_terms, np.float32), np.zeros(n_terms, bool)
    for r in rows[top].tolist():
        np.add.at(grown, ids[starts[r] : starts[r + 1]], step * weights[starts[r] : starts[r + 1]])
        hit[ids[starts[r] : starts[r + 1]]] = True
    added = grown[hit]
    if 0 < FEEDBACK_TERMS < added.shape[0]:
        grown[grown < np.sort(added)[added.shape[0] - FEEDBACK_TERMS]] = 0
    dense += grown
    touched = dense != 0
    norm = float(np.sqrt(np.sum(dense[touched].astype(np.float64) ** 2)))
    return _dots(dense, terms, values, lengths) / norm


def _smooth(cosines: np.ndarray, rows: np.ndarray, neighbours: np.ndarray, spread: float, hops: int) -> np.ndarray:
    """Each document's cosine plus ``spread`` times the sum of its shortlisted
    neighbours' smoothed scores, ``hops`` times over (neighbours summed in list
    order, in float64, those outside the shortlist as 0, as the kernel sums)."""
    none = neighbours.shape[0]  # the -1s read this entry, always 0
    listed = np.where(neighbours[rows] >= 0, neighbours[rows], none)
    by_doc = np.zeros(none + 1)
    scores = cosines
    for _ in range(hops):
        by_doc[rows] = scores
        total = np.zeros(rows.shape[0])
        for j in range(listed.shape[1]):
            total += by_doc[listed[:, j]]
        scores = cosines + spread * total
    return scores


def _dots(dense: np.ndarray, terms: np.ndarray, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each document's dot product with ``dense``, summed in float32 in storage
    order (as the kernel sums), as float64."""
    products = dense[terms] * values
    out = np.zeros(lengths.shape[0], np.float64)
    filled = lengths > 0
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out[filled] = np.add.reduceat(products, offsets[filled]) if products.size else 0
    return out
