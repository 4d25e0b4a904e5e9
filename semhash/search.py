"""Search over packed binary codes: checked wrappers around the numba kernels.

Every public function here validates dtypes, shapes, C-contiguity and index ranges,
raises a ``ValueError`` that says what to do, and only then calls a kernel from
``semhash.kernels`` (which trusts its inputs).

A query works in two stages, as in semantic hashing: its short *address* picks a
shortlist from a Hamming ball around it (:class:`AddressTable`, in :mod:`semhash.addresses`), and the shortlist
is ranked by the Hamming distance of the long codes (:func:`topk`). :func:`search`
grows the ball a radius at a time until it holds ``k`` documents. The cost model
only decides *how* the ball is found (from the buckets of the two half-tables, or
of each shell for addresses of more than 32 bits, or by one scan of the address
column when that is cheaper): the shortlist is the same either way. Every code is
ranked only when even the whole address space holds fewer than ``k``. :func:`topk_batch` ranks every code for many queries at once.
"""

import numpy as np

from semhash import lazy
from semhash.addresses import AddressTable, check_int, read_only
from semhash.lazy import kernels  # loaded on first use: a one-shot query never needs numba

__all__ = ["AddressTable", "hamming", "topk", "topk_batch", "search", "search_many", "join", "warmup"]


# numpy answers a query over n addresses in about n * 3 ns + 50 us (XOR,
# bitwise_count, a histogram, a re-rank), measured on the 2-vCPU dev VM at 10^4 to
# 10^6 addresses: the cost semhash.lazy weighs against loading the kernels.
_NUMPY_NS_PER_ADDRESS = 3.0
_NUMPY_NS_PER_QUERY = 50_000.0


def _check_codes(codes) -> np.ndarray:
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint64 or codes.ndim != 2:
        if isinstance(codes, np.ndarray):
            got = f"{codes.dtype} array of shape {codes.shape}"
        else:
            got = type(codes).__name__
        raise ValueError(
            "codes must be a 2-d uint64 array of shape (n_codes, n_words), got "
            f"{got}; pack bits with semhash.codes.pack_codes"
        )
    if not codes.flags.c_contiguous:
        raise ValueError(
            "codes must be C-contiguous; pass np.ascontiguousarray(codes) once when "
            "loading the index, not per query"
        )
    return read_only(codes)  # one compiled variant of each kernel, whoever owns the codes


def _check_query(query, n_words: int) -> np.ndarray:
    query = np.asarray(query)
    if query.dtype != np.uint64 or query.ndim != 1:
        raise ValueError(
            f"query must be a 1-d uint64 array of {n_words} words, got {query.dtype} "
            f"array of shape {query.shape}; pack it with semhash.codes.pack_codes(bits)[0]"
        )
    if query.shape[0] != n_words:
        raise ValueError(
            f"query has {query.shape[0]} words but the codes have {n_words}; "
            "encode the query with the same model as the index"
        )
    if not (query.flags.c_contiguous and query.flags.writeable):
        query = query.copy()  # a few words: cheaper to copy than to compile a variant
    return query


def _check_queries(queries, n_words: int, name: str = "queries") -> np.ndarray:
    queries = np.asarray(queries)
    if queries.dtype != np.uint64 or queries.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-d uint64 array of shape (n_queries, {n_words}), got {queries.dtype} "
            f"array of shape {queries.shape}; pack them with semhash.codes.pack_codes(bits)"
        )
    if queries.shape[1] != n_words:
        raise ValueError(
            f"{name} have {queries.shape[1]} words but the codes have {n_words}; "
            "encode the queries with the same model as the index"
        )
    return queries


def unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-d array, without importing numpy.ma: numpy's own checks
    whether its argument is masked, and that import is 0.03 s of a 0.4 s query."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if values.size else values


def _check_rows(rows, n: int) -> np.ndarray:
    """Validate candidate rows and return them sorted, unique, as int64."""
    rows = np.asarray(rows)
    if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-d array of row indices, got {rows.dtype} of shape {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"rows must lie in [0, {n}), got values from {rows.min()} to {rows.max()}")
    return unique(rows.astype(np.int64, copy=False))


def hamming(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance from ``query`` to every code.

    Parameters
    ----------
    codes : uint64 array, shape (n_codes, n_words), C-contiguous
    query : uint64 array, shape (n_words,)

    Returns
    -------
    int32 array, shape (n_codes,)
    """
    codes = _check_codes(codes)
    return kernels.hamming_distances(codes, _check_query(query, codes.shape[1]))


def topk(
    codes: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None, n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes nearest to ``query`` in Hamming distance.

    Parameters
    ----------
    codes : uint64 array, shape (n_codes, n_words), C-contiguous
    query : uint64 array, shape (n_words,)
    k : int
        Non-negative. Fewer rows come back when there are fewer candidates.
    rows : integer array, optional
        Candidate rows (duplicates are ignored). ``None`` ranks every code, in one
        streaming pass that keeps only a small candidate buffer
        (:func:`semhash.kernels.topk_scan`).
    n_threads : int, optional
        With ``rows=None``, threads that split the codes between them (as
        :func:`topk_batch`; the result is the same). By default numba's setting
        (all cores). One core's popcounts fall behind the memory: on the 2-vCPU
        dev VM one thread scanned 10^6 codes in 1.5-2.1x the time it takes to
        stream them, two in 0.85-1.17x. Codes too few to split (fewer than
        131,072) are scanned by one thread.

    Returns
    -------
    rows : int64 array, shape (min(k, n_candidates),)
        Sorted by distance, ties by ascending row.
    distances : int32 array, same shape
    """
    codes = _check_codes(codes)
    query = _check_query(query, codes.shape[1])
    k = check_int(k, "k")
    if rows is None:
        if codes.shape[0] < 2 * kernels._MIN_CHUNK or n_threads == 1:
            return kernels.topk_scan(codes, query, k)
        best, distances = topk_batch(codes, query[None, :], k, n_threads)
        return best[0], distances[0]
    max_distance = 64 * codes.shape[1]
    rows = _check_rows(rows, codes.shape[0])
    distances = kernels.hamming_distances_subset(codes, rows, query)
    best = kernels.topk_by_distance(distances, k, max_distance)
    return rows[best], distances[best]


def topk_batch(
    codes: np.ndarray, queries: np.ndarray, k: int, n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes nearest to each query, ranking every code.

    Reads the codes once per block of up to 256 queries and compares each small
    block of codes with all of them while it is in cache, so a batch costs far
    less per query than :func:`topk` in a loop; the threads split the queries
    (or, for fewer than two queries per thread, the codes). See
    :func:`semhash.kernels.topk_batch`. Row ``i`` of the result is exactly
    ``topk(codes, queries[i], k)``.

    Parameters
    ----------
    codes : uint64 array, shape (n_codes, n_words), C-contiguous
    queries : uint64 array, shape (n_queries, n_words)
    k : int
        Non-negative. Fewer columns come back when there are fewer codes.
    n_threads : int, optional
        Threads for this call, at most ``numba.config.NUMBA_NUM_THREADS``; by
        default numba's current setting (all cores unless changed). Use 1 on a
        machine whose other cores are busy: a parallel scan waits for its
        slowest thread.

    Returns
    -------
    rows : int64 array, shape (n_queries, min(k, n_codes))
        Each row sorted by distance, ties by ascending row.
    distances : int32 array, same shape
    """
    codes = _check_codes(codes)
    queries = _check_queries(queries, codes.shape[1])
    queries = read_only(np.ascontiguousarray(queries))  # one compiled variant
    k = check_int(k, "k")
    import numba

    if n_threads is None:
        return kernels.topk_batch(codes, queries, k, numba.get_num_threads())
    n_threads = check_int(n_threads, "n_threads", minimum=1)
    if n_threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"n_threads must be at most {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS), got {n_threads}"
        )
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        return kernels.topk_batch(codes, queries, k, n_threads)
    finally:
        numba.set_num_threads(previous)


def search(
    table: AddressTable,
    codes: np.ndarray,
    query_address: int,
    query_code: np.ndarray,
    k: int,
    max_radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Find about ``k`` near neighbours: Hamming-ball shortlist, then code re-rank.

    The radius grows from 0 until the ball around ``query_address`` holds at
    least ``k`` documents, and that shortlist is ranked by code distance. Once
    the next ball is estimated to cost more than one scan of the address column
    (:meth:`AddressTable.ball_plans`), the rest of the ball is found by that scan
    instead, which gives the same shortlist. Only when the ball covers every
    address and still holds fewer than ``k`` documents is the whole corpus ranked (``radius_used == -1``).
    One query of :func:`search_many`.

    Parameters
    ----------
    table : AddressTable
        Addresses of the same documents, in the same row order, as ``codes``.
    codes : uint64 array, shape (n_docs, n_words), C-contiguous
    query_address : int
    query_code : uint64 array, shape (n_words,)
    k : int
        Non-negative.
    max_radius : int, optional
        Never return a document whose address is farther than this from
        ``query_address``; there is then no full-scan fallback, and fewer than
        ``k`` rows come back if the ball is too small.

    Returns
    -------
    rows : int64 array, shape (<= k,)
        Sorted by code distance, ties by ascending row.
    distances : int32 array, same shape
        Code Hamming distances.
    radius_used : int
        Radius of the ball that was ranked, or -1 if every code was scanned.
    """
    codes = _check_codes(codes)
    query_code = _check_query(query_code, codes.shape[1])
    if not isinstance(table, AddressTable):
        raise ValueError(f"table must be an AddressTable, got {type(table).__name__}")
    query_address = table._check_address(query_address)
    rows, distances, counts, radii = search_many(
        table, codes, np.array([query_address]), query_code.reshape(1, -1), k, max_radius=max_radius
    )
    m = int(counts[0])
    return rows[0, :m], distances[0, :m], int(radii[0])


def search_many(
    table: AddressTable,
    codes: np.ndarray,
    query_addresses: np.ndarray,
    query_codes: np.ndarray,
    k: int,
    *,
    shortlist: int = 0,
    max_radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`search` for many queries: the ball grows to ``max(k, shortlist)``
    documents, and the best ``k`` of them by code distance come back.

    Growing the ball past ``k`` lets the long code rank a wider neighbourhood than
    the address alone chose. The answer does not depend on how it is computed:
    numpy while it has cost less than loading the numba kernels would (a
    short-lived process answering a few queries), then the parallel
    :func:`semhash.kernels.search_batch`.

    Returns
    -------
    rows : int64 array, shape (n_queries, k)
        Row ``i``: query ``i``'s hits by code distance, ties by ascending row,
        padded with -1.
    distances : int32 array, same shape (padded with -1)
    counts : int64 array, shape (n_queries,)
        How many hits each query has.
    radii : int64 array, shape (n_queries,)
        Radius of the ball that was ranked, or -1 if every code was.
    """
    codes = _check_codes(codes)
    k = check_int(k, "k")
    want = max(k, check_int(shortlist, "shortlist"))
    if not isinstance(table, AddressTable):
        raise ValueError(f"table must be an AddressTable, got {type(table).__name__}")
    if len(table) != codes.shape[0]:
        raise ValueError(
            f"the address table has {len(table)} rows but codes has {codes.shape[0]}; "
            "build both from the same loaded index"
        )
    query_codes = _check_queries(query_codes, codes.shape[1], "query codes")
    query_addresses = np.asarray(query_addresses)
    if query_addresses.shape != (query_codes.shape[0],) or not (
        query_addresses.size == 0 or np.issubdtype(query_addresses.dtype, np.integer)
    ):
        raise ValueError(f"query addresses must be {query_codes.shape[0]} integers, one per query code")
    query_addresses = query_addresses.astype(np.int64)
    if query_addresses.size and (query_addresses.min() < 0 or query_addresses.max() >= 2**table.n_bits):
        raise ValueError(f"query addresses must lie in [0, 2**{table.n_bits})")
    limit = table.n_bits if max_radius is None else min(check_int(max_radius, "max_radius"), table.n_bits)
    k = min(k, len(table))
    n_queries = query_codes.shape[0]
    numpy_ns = n_queries * (len(table) * _NUMPY_NS_PER_ADDRESS + _NUMPY_NS_PER_QUERY)
    if not lazy.use_kernels(numpy_ns, kernel="search_batch"):
        return _search_numpy(table, codes, query_addresses, query_codes, k, want, limit, max_radius is None)
    return _search_kernel(table, codes, query_addresses, query_codes, k, want, limit, max_radius is None)


def _search_kernel(table, codes, query_addresses, query_codes, k, want, limit, fallback):
    return kernels.search_batch(
        table.sorted_addresses,
        table.bucket_starts,
        table.prefix_bits,
        *table.half_tables(),
        table.addresses,
        table.n_bits,
        codes,
        query_addresses,
        np.require(query_codes, requirements="CW"),  # the kernels take writable queries
        want,
        k,
        limit,
        fallback,
        table.ball_plans(limit),
    )


def _search_numpy(table, codes, query_addresses, query_codes, k, want, limit, fallback):
    """:func:`semhash.kernels.search_batch` in numpy, one query at a time: the
    address distances to every row give the ball's radius and rows at once."""
    n_queries = query_codes.shape[0]
    out_rows = np.full((n_queries, k), -1, np.int64)
    out_dists = np.full((n_queries, k), -1, np.int32)
    counts = np.zeros(n_queries, np.int64)
    radii = np.zeros(n_queries, np.int64)
    for i in range(n_queries):
        address_distances = np.bitwise_count(table.addresses ^ query_addresses[i])
        within = np.cumsum(np.bincount(address_distances, minlength=table.n_bits + 1)[: limit + 1])
        if within[-1] >= want:
            radius = int(np.searchsorted(within, want))  # the first radius that reaches `want`
        else:
            radius = -1 if fallback else limit
        rows = np.arange(len(table)) if radius < 0 else np.flatnonzero(address_distances <= radius)
        distances = np.bitwise_count(codes[rows] ^ query_codes[i]).sum(axis=1, dtype=np.int32)
        best = np.argsort(distances, kind="stable")[:k]
        m = best.shape[0]
        out_rows[i, :m], out_dists[i, :m], counts[i], radii[i] = rows[best], distances[best], m, radius
    return out_rows, out_dists, counts, radii


def join(
    codes: np.ndarray,
    rows: np.ndarray,
    dists: np.ndarray,
    counts: np.ndarray,
    query_codes: np.ndarray,
    starts: np.ndarray,
    candidates: np.ndarray,
    min_distance: int | None = None,
    max_distance: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shortlists (``rows``, ``dists``, ``counts`` as :func:`search_many` gives
    them) joined by more candidates: query ``i``'s are
    ``candidates[starts[i]:starts[i + 1]]`` (positions; -1 for none; repeats
    allowed). Those not yet in its shortlist and whose code distance lies within
    the bounds (inclusive; ``None``: unbounded) are appended in ascending order.

    Returns (rows, dists, counts), as wide as the longest shortlist grown (at
    least as wide as ``rows``), padded with -1. numpy for a few queries,
    :func:`semhash.kernels.join_shortlists` for a batch.
    """
    codes = _check_codes(codes)
    query_codes = _check_queries(query_codes, codes.shape[1], "query codes")
    n_queries = query_codes.shape[0]
    starts = np.ascontiguousarray(starts, np.int64)
    candidates = np.ascontiguousarray(candidates, np.int64)
    if rows.shape[0] != n_queries or starts.shape != (n_queries + 1,) or starts[-1] != candidates.shape[0]:
        raise ValueError("join needs one shortlist and one run of candidates per query code")
    if candidates.size and (candidates.min() < -1 or candidates.max() >= codes.shape[0]):
        raise ValueError(f"candidates must be positions in [0, {codes.shape[0]}) or -1")
    lo = -1 if min_distance is None else min_distance
    hi = 64 * codes.shape[1] + 1 if max_distance is None else max_distance
    # numpy: about 40 us a query (its Python loop) and 2 ns a shortlisted cell (the widening).
    if lazy.use_kernels(n_queries * 40_000 + 2 * rows.size, kernel="join_shortlists"):
        return kernels.join_shortlists(
            np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(dists, np.int32),
            np.ascontiguousarray(counts, np.int64), starts, candidates, codes,
            np.require(query_codes, requirements="CW"), lo, hi,
        )
    joined = []
    for i in range(n_queries):
        found = unique(candidates[starts[i] : starts[i + 1]])
        found = found[found >= 0]
        found = found[~np.isin(found, rows[i, : counts[i]])]
        d = np.bitwise_count(codes[found] ^ query_codes[i]).sum(axis=1, dtype=np.int32)
        keep = (d >= lo) & (d <= hi)
        joined.append((found[keep], d[keep]))
    grown = counts + np.array([f.shape[0] for f, _ in joined], np.int64)
    width = max(rows.shape[1], int(grown.max(initial=0)))
    out_rows = np.full((n_queries, width), -1, np.int64)
    out_dists = np.full((n_queries, width), -1, np.int32)
    out_rows[:, : rows.shape[1]], out_dists[:, : rows.shape[1]] = rows, dists
    for i, (found, d) in enumerate(joined):
        out_rows[i, counts[i] : grown[i]], out_dists[i, counts[i] : grown[i]] = found, d
    return out_rows, out_dists, grown


def warmup() -> None:
    """Run every kernel once on tiny arrays of the exact dtypes.

    With ``cache=True`` this fills numba's on-disk cache (``NUMBA_CACHE_DIR``
    moves it for read-only installs), so later processes load object code
    instead of compiling. ``make install`` runs it:
    compiling everything takes a minute of CPU, which an index used to pay for at
    its end, and a run that finds a kernel uncached prices it at its compile time
    (``semhash.lazy``), so a small first index runs numpy instead.
    """
    codes = read_only(np.zeros((2, 4), dtype=np.uint64))  # as _check_codes passes them
    query = np.zeros(4, dtype=np.uint64)
    rows = np.arange(2, dtype=np.int64)
    distances = kernels.hamming_distances(codes, query)
    kernels.hamming_distances_subset(codes, rows, query)
    kernels.topk_by_distance(distances, 1, 256)
    kernels.topk_scan(codes, query, 1)
    topk_batch(codes, codes, 1, n_threads=1)  # compiles on first use: fill the cache now
    table = AddressTable(np.array([0, 3], dtype=np.int64), 2)
    table.shell(1, 1)
    table._ball_by_halves(1, 1, 0, 0)
    kernels.address_scan(table.addresses, 1, 1)
    kernels.address_histogram(table.addresses, 1, 2)
    _search_kernel(table, codes, np.array([1], np.int64), codes[:1], 1, 2, 2, True)  # parallel: compiles on first use
    # The counting and shortlist-ranking kernels (semhash.vocab, semhash.rerank).
    word_bytes, word_starts = np.frombuffer(b"ab", np.uint8), np.array([0, 2], np.int64)
    slots = kernels.word_table(word_bytes, word_starts)
    text, text_starts = np.frombuffer(b"ab ab", np.uint8), np.array([0, 5], np.int64)
    kernels.count_ascii_words(text, text_starts, word_bytes, word_starts, slots)
    kernels.ascii_word_ids(text, text_starts, word_bytes, word_starts, slots)
    starts, ids, weights = np.array([0, 1], np.int64), np.zeros(1, np.int32), np.ones(1, np.float32)
    candidates, dists, counts = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int32), np.ones(1, np.int64)
    neighbours = np.full((1, 1), -1, np.int32)
    posted = kernels.postings(starts, ids, weights, 1)
    kernels.rerank_batch(
        starts, ids, weights, candidates, dists, counts, starts, ids, weights, *posted, np.zeros(1, np.int64),
        1, 0.5, 1, 2.0, 100, neighbours, 1.0, 2, 1, 1,
    )
    kernels.held_shares(starts, ids, weights, candidates, counts, starts, ids)
    kernels.shared_bit_scores(  # index.codes: writable
        codes.copy(), table.addresses, candidates, counts, 1, codes[:1].copy(), np.ones(1, np.int64), 0.5, 4.0, 2.0**20,
        candidates, counts,
    )
    kernels.join_shortlists(  # as join calls it (join itself might choose numpy)
        candidates, dists, counts, np.array([0, 1], np.int64), np.ones(1, np.int64), codes, codes[:1].copy(), -1, 257
    )
    # Encoding and training (semhash.autoencoder, semhash.hasher).
    kernels.counts_times(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))
    param = np.zeros(1, np.float32)
    kernels.adam_step(param, param.copy(), param.copy(), param.copy(), 0.9, 0.999, 1.0, 1e-8)
    target = np.ones(1, np.float32)  # a CSR row of one count, as training's targets come (int32 indices)
    kernels.softmax_xent(np.zeros((1, 1), np.float32), np.array([0, 1], np.int32), np.zeros(1, np.int32), target, 1.0)

