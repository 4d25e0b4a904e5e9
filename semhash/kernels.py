"""Numba kernels for semhash: Hamming distances, top-k selection, Hamming-ball lookup,
word counting, the shortlist's ranking and the training updates.

Every ``@njit`` of the project lives in this file, and this file imports only numpy
and numba. Numba invalidates its on-disk cache by *source file* and freezes globals
at compile time, so a kernel that reached into another semhash module could silently
keep running stale code. The kernels take only arrays and integers and return arrays.
They do not validate their inputs: call them through ``semhash.search``, which checks
dtypes, contiguity, shapes and index ranges first.

No kernel has an explicit signature: each compiles (or loads from numba's on-disk
cache) on its first call, so importing this module costs nothing and a run compiles
only what it calls. An eager signature made every import compile every kernel (10 s
of CPU, cold), and the build calls few of them. The wrappers in ``semhash.search``
fix the dtypes, contiguity and writability of what they pass (codes go read-only),
so each kernel compiles one variant. ``search.warmup`` compiles them all.

Conventions (see ``semhash.codes``): a code is a row of ``uint64`` words and bit ``j``
is bit ``j % 64`` of word ``j // 64``; an address is a non-negative ``int64``.
"""

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

if numba.config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 runs every kernel as plain Python (for coverage and
    # debugging), and an @intrinsic cannot be called from Python.
    def _popcount(x):
        return int(x).bit_count()

else:

    @intrinsic
    def _popcount(typingctx, x):
        """Number of set bits of an integer, via LLVM's ctpop.

        On x86-64 with POPCNT this is the ``popcnt`` instruction, and LLVM
        vectorizes it to ``vpopcntq`` where AVX-512 VPOPCNTDQ is available.
        """
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return x(x), codegen


@njit(cache=True, nogil=True)
def hamming_distances(codes, query):
    """Hamming distance from ``query`` to every row of ``codes``.

    Parameters
    ----------
    codes : uint64 array, shape (n, n_words), C-contiguous
    query : uint64 array, shape (n_words,), C-contiguous

    Returns
    -------
    int32 array, shape (n,)
        ``popcount(codes[i] ^ query)`` summed over the words of row ``i``.

    Notes
    -----
    Single-threaded on purpose. On the 2-vCPU dev VM one core streams 10^7 codes
    at ~22 GB/s (memory bound) and a 2-thread ``prange`` version was no faster;
    at 10^6 it saved ~25% on an idle machine but stalled for whole scheduler
    ticks (4-12 ms) whenever the other core was busy.
    """
    n, n_words = codes.shape
    out = np.empty(n, np.int32)
    if n_words == 4:  # 256-bit codes, the common case: keep the query in registers
        q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
        for i in range(n):
            out[i] = (
                _popcount(codes[i, 0] ^ q0)
                + _popcount(codes[i, 1] ^ q1)
                + _popcount(codes[i, 2] ^ q2)
                + _popcount(codes[i, 3] ^ q3)
            )
    else:
        for i in range(n):
            s = np.uint64(0)
            for j in range(n_words):
                s += _popcount(codes[i, j] ^ query[j])
            out[i] = s
    return out


@njit(cache=True, nogil=True)
def hamming_distances_subset(codes, rows, query):
    """Hamming distance from ``query`` to ``codes[rows[i]]`` for each ``i``.

    Parameters
    ----------
    codes : uint64 array, shape (n, n_words), C-contiguous
    rows : int64 array, shape (m,), every value in ``[0, n)``
    query : uint64 array, shape (n_words,)

    Returns
    -------
    int32 array, shape (m,)
    """
    m = rows.shape[0]
    n_words = codes.shape[1]
    out = np.empty(m, np.int32)
    for i in range(m):
        r = rows[i]
        s = np.uint64(0)
        for j in range(n_words):
            s += _popcount(codes[r, j] ^ query[j])
        out[i] = s
    return out


@njit
def _place_by_count(distances, candidates, m, k, width):
    """The ``k`` smallest of ``distances[candidates[:m]]`` by a counting sort.

    ``candidates`` must be ascending (``None`` means rows ``0..m-1``) and every
    candidate distance below ``width``. Returns rows sorted by distance, ties
    by row.
    """
    counts = np.zeros(width, np.int64)
    for j in range(m):
        i = j if candidates is None else candidates[j]
        counts[distances[i]] += 1
    # slot[d] = first output position of distance d, up to the cut-off distance
    slot = np.zeros(width, np.int64)
    cutoff = width - 1
    total = 0
    for d in range(width):
        slot[d] = total
        total += counts[d]
        if total >= k:
            cutoff = d
            break
    room_at_cutoff = k - slot[cutoff]
    out = np.empty(k, np.int64)
    remaining = k
    for j in range(m):
        i = j if candidates is None else candidates[j]
        d = distances[i]
        if d < cutoff or (d == cutoff and room_at_cutoff > 0):
            if d == cutoff:
                room_at_cutoff -= 1
            out[slot[d]] = i
            slot[d] += 1
            remaining -= 1
            if remaining == 0:
                break
    return out


@njit(cache=True, nogil=True)
def topk_by_distance(distances, k, max_distance):
    """Indices of the ``k`` smallest distances, by counting.

    Distances are small integers, so no comparison sort is needed:

    1. a histogram of a strided sample (at most 65,536 entries) estimates the
       smallest cut-off distance that keeps about ``2k`` rows;
    2. one streaming pass collects the rows at or below that cut-off (if fewer
       than ``k`` turn up, the cut-off is raised to the maximum and it repeats);
    3. a counting sort of those candidates places each row in its output slot.

    When the estimate covers more than a quarter of the rows, step 2 is skipped
    and step 3 runs over every row. The output is sorted by distance, and ties
    come out by ascending index (stable).

    Parameters
    ----------
    distances : int32 array, shape (n,), every value in ``[0, max_distance]``
    k : int
        How many to keep. ``k >= n`` returns all ``n`` indices; ``k <= 0`` none.
    max_distance : int
        Upper bound of the distances (the number of code bits).

    Returns
    -------
    int64 array, shape (min(k, n),)
    """
    n = distances.shape[0]
    if k > n:
        k = n
    if k <= 0:
        return np.empty(0, np.int64)
    low = distances[0]
    high = distances[0]
    for i in range(n):  # its own pass, so that it vectorizes
        low = min(low, distances[i])
        high = max(high, distances[i])
    if low < 0 or high > max_distance:
        raise ValueError("topk_by_distance: a distance is outside [0, max_distance]")

    stride = max(1, n // 65536)
    sampled = np.zeros(high + 1, np.int64)
    for i in range(0, n, stride):
        sampled[distances[i]] += 1
    cutoff = high
    estimate = 0
    for d in range(high + 1):
        estimate += sampled[d] * stride
        if estimate >= 2 * k + 64:
            cutoff = d
            break
    if cutoff == high or estimate > n // 4:
        return _place_by_count(distances, None, n, k, high + 1)

    candidates = np.empty(n, np.int64)  # only the touched pages are ever faulted in
    while True:
        m = 0
        for i in range(n):
            if distances[i] <= cutoff:
                candidates[m] = i
                m += 1
        if m >= k:
            return _place_by_count(distances, candidates, m, k, cutoff + 1)
        cutoff = high  # the sample misjudged the tail (rare): take everything


# ---------------------------------------------------------------- top-k of a full scan


_BLOCK = 256  # rows per block of the scans: 8 KB of 256-bit codes, stays in L1
_QUERY_BLOCK = 256  # queries that share one pass over the codes in topk_batch
_STATE_BYTES = 1 << 25  # cap on the candidate buffers of one query block, all chunks
_MIN_CHUNK = 1 << 16  # rows per parallel chunk of topk_batch, at least


@njit(inline="always")
def _row_distance(block, i, query):
    """Hamming distance of row ``i`` of ``block`` to ``query`` (any word count)."""
    s = np.int64(0)
    for w in range(query.shape[0]):
        s += np.int64(_popcount(block[i, w] ^ query[w]))
    return s


@njit
def _admit(rows, dists, counts, bounds, hists, below, j, row, d, k):
    """Add ``(row, d)`` to the candidates of query ``j``, and tighten its bound.

    Per query ``j``: ``rows[j]``/``dists[j]`` hold ``counts[j]`` candidates in
    ascending row order, in a buffer of ``rows.shape[1] > k``; ``hists[j, t]``
    counts the candidates at distance ``t``; ``bounds[j]`` is the smallest ``t``
    with at least ``k`` candidates at distance ``<= t`` (the width, ``n_bits + 1``,
    until there are ``k``), and ``below[j]`` the number of candidates at distance
    ``< bounds[j]``. A later row is admitted only if its distance is ``< bounds[j]``:
    otherwise ``k`` earlier rows are at least as near, and it would lose the tie.
    The bound only falls, by counting, so keeping it exact costs O(1) amortized.
    When the buffer is full, the candidates that can no longer make the top
    ``k`` are dropped (those beyond the bound, and at the bound all but the
    earliest rows), which leaves exactly ``k``.
    """
    c = counts[j]
    rows[j, c] = row
    dists[j, c] = d
    c += 1
    hists[j, d] += 1
    below[j] += 1
    while below[j] >= k:  # k candidates below the bound: it falls by one
        bounds[j] -= 1
        below[j] -= hists[j, bounds[j]]
    if c == rows.shape[1]:
        bound = bounds[j]
        room = k - below[j]  # candidates at the bound that survive
        m = 0
        for i in range(c):
            di = dists[j, i]
            if di < bound or (di == bound and room > 0):
                if di == bound:
                    room -= 1
                rows[j, m] = rows[j, i]
                dists[j, m] = di
                m += 1
            else:
                hists[j, di] -= 1
        c = m
    counts[j] = c


@njit
def _new_candidates(n_queries, k, width):
    """Empty candidate state for ``n_queries`` queries (see :func:`_admit`)."""
    capacity = 2 * k + 64
    rows = np.empty((n_queries, capacity), np.int64)
    dists = np.empty((n_queries, capacity), np.int32)
    counts = np.zeros(n_queries, np.int64)
    bounds = np.full(n_queries, width, np.int64)
    hists = np.zeros((n_queries, width), np.int64)
    below = np.zeros(n_queries, np.int64)
    return rows, dists, counts, bounds, hists, below


@njit
def _scan_rows(codes, queries, lo, hi, k, rows, dists, counts, bounds, hists, below):
    """Offer rows ``lo..hi-1`` to the candidate buffers of every query (see :func:`_admit`).

    Block by block, so a block is read from memory once for all the queries, and
    a query looks at single rows only when the block's smallest distance beats
    its bound. For 4-word codes the distances of a block are computed without a
    per-word loop inside a per-row loop: one vector pass XORs and popcounts the
    block's words (as if the block were one long row) into 16-bit counts, and a
    second reads each row's four counts as one uint64 ``x`` and adds its four
    16-bit lanes with shifts. Both passes compile to vector code and need no
    transposed copy. With AVX-512's vector popcount (the dev VM's CPU on
    2026-11-23) the scalar loop they replace cost about 3x more per row; on an
    AVX2-only Zen 3 (the same VM on 2026-11-30) the two are about even, each
    1.5-1.8x the time to stream the codes.
    """
    n_words = codes.shape[1]
    width = hists.shape[1]
    block_distances = np.empty(_BLOCK, np.int64)
    if n_words == 4:
        flat = codes.reshape(codes.shape[0] * 4)
        repeated = np.empty((queries.shape[0], 4 * _BLOCK), np.uint64)  # query words, once per row
        for j in range(queries.shape[0]):
            for w in range(4 * _BLOCK):
                repeated[j, w] = queries[j, w & 3]
        counts16 = np.empty(4 * _BLOCK, np.uint16)
        row_counts = counts16.view(np.uint64)  # the four 16-bit counts of row i
        lane = np.uint64(0xFFFF)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for j in range(queries.shape[0]):
            smallest = np.int64(width)
            if n_words == 4:
                words = flat[4 * start : 4 * (start + m)]
                query_words = repeated[j]
                for w in range(4 * m):
                    counts16[w] = np.uint16(_popcount(words[w] ^ query_words[w]))
                for i in range(m):
                    x = row_counts[i]
                    x = x + (x >> np.uint64(32))
                    d = np.int64((x + (x >> np.uint64(16))) & lane)
                    block_distances[i] = d
                    smallest = min(smallest, d)
            else:
                query = queries[j]
                for i in range(m):
                    d = _row_distance(codes, start + i, query)
                    block_distances[i] = d
                    smallest = min(smallest, d)
            if smallest < bounds[j]:
                for i in range(m):
                    if block_distances[i] < bounds[j]:
                        _admit(rows, dists, counts, bounds, hists, below, j, start + i, block_distances[i], k)


@njit
def _scan_rows_transposed(codes, queries, lo, hi, k, rows, dists, counts, bounds, hists, below):
    """:func:`_scan_rows` for 4-word codes and several queries, vectorized over rows.

    Each block is first copied word-major (word ``w`` of the 256 rows side by
    side), so the distance loop reads contiguous words and compiles to vector
    XOR + popcount (8 rows per AVX-512 instruction, 4 per AVX2 one); the copy costs about as
    much as one scalar pass, and every query of the block shares it. A query
    looks at single rows only when the block's smallest distance beats its bound.
    """
    width = hists.shape[1]
    flat = codes.reshape(codes.shape[0] * 4)
    words = np.empty(4 * _BLOCK, np.uint64)
    block_distances = np.empty(_BLOCK, np.int64)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        src = flat[4 * start : 4 * (start + m)]
        for i in range(m):
            words[i] = src[4 * i]
            words[_BLOCK + i] = src[4 * i + 1]
            words[2 * _BLOCK + i] = src[4 * i + 2]
            words[3 * _BLOCK + i] = src[4 * i + 3]
        w0 = words[:m]
        w1 = words[_BLOCK : _BLOCK + m]
        w2 = words[2 * _BLOCK : 2 * _BLOCK + m]
        w3 = words[3 * _BLOCK : 3 * _BLOCK + m]
        for j in range(queries.shape[0]):
            q0, q1, q2, q3 = queries[j, 0], queries[j, 1], queries[j, 2], queries[j, 3]
            smallest = np.int64(width)
            for i in range(m):
                d = np.int64(
                    _popcount(w0[i] ^ q0) + _popcount(w1[i] ^ q1) + _popcount(w2[i] ^ q2) + _popcount(w3[i] ^ q3)
                )
                block_distances[i] = d
                smallest = min(smallest, d)
            if smallest < bounds[j]:
                for i in range(m):
                    if block_distances[i] < bounds[j]:
                        _admit(rows, dists, counts, bounds, hists, below, j, start + i, block_distances[i], k)


@njit
def _merge(rows, dists, counts, k, width, out_rows, out_dists):
    """The ``k`` best candidates of one query over all chunks, by a counting sort.

    ``rows``/``dists`` have shape (n_chunks, capacity) and ``counts`` (n_chunks,).
    Chunk ``c`` holds lower rows than chunk ``c + 1`` and keeps its candidates in
    row order, so reading chunk by chunk places equal distances by ascending row.
    The chunks hold at least ``k`` candidates in all.
    """
    hist = np.zeros(width, np.int64)
    for c in range(rows.shape[0]):
        for i in range(counts[c]):
            hist[dists[c, i]] += 1
    slot = np.zeros(width, np.int64)  # next output position for each distance
    total = 0
    cutoff = width - 1
    for d in range(width):
        slot[d] = total
        total += hist[d]
        if total >= k:
            cutoff = d
            break
    room_at_cutoff = k - slot[cutoff]
    for c in range(rows.shape[0]):
        for i in range(counts[c]):
            d = dists[c, i]
            if d < cutoff or (d == cutoff and room_at_cutoff > 0):
                if d == cutoff:
                    room_at_cutoff -= 1
                out_rows[slot[d]] = rows[c, i]
                out_dists[slot[d]] = d
                slot[d] += 1


@njit(cache=True, nogil=True)
def topk_scan(codes, query, k):
    """The ``k`` rows nearest to ``query``, in one streaming pass over ``codes``.

    Fuses the distance scan with the top-k selection, so no distance array is
    written (at 10^7 rows that array alone costs more than the scan). Rows whose
    distance beats the current bound go to a small candidate buffer, compacted
    by counting (see :func:`_admit`); the bound drops fast, so after the first
    few thousand rows almost every row costs one compare. Single-threaded;
    ``nogil`` lets callers run several queries in threads, and
    :func:`topk_batch` splits one query's rows between threads (one core's
    popcounts can fall behind the memory: 1.5-1.8x the time to stream the
    codes on the 2-vCPU dev VM, 2026-11-30).

    Parameters
    ----------
    codes : uint64 array, shape (n, n_words), C-contiguous
    query : uint64 array, shape (n_words,)
    k : int
        ``k >= n`` ranks every row; ``k <= 0`` none.

    Returns
    -------
    rows : int64 array, shape (min(k, n),)
        Sorted by distance, ties by ascending row.
    distances : int32 array, same shape
    """
    n = codes.shape[0]
    k = min(max(k, 0), n)
    width = 64 * codes.shape[1] + 1
    out_rows = np.empty(k, np.int64)
    out_dists = np.empty(k, np.int32)
    if k > 0:
        rows, dists, counts, bounds, hists, below = _new_candidates(1, k, width)
        _scan_rows(codes, query.reshape((1, query.shape[0])), 0, n, k, rows, dists, counts, bounds, hists, below)
        _merge(rows, dists, counts, k, width, out_rows, out_dists)
    return out_rows, out_dists


@njit
def _scan_queries(codes, queries, k, out_rows, out_dists):
    """Top-k of every row for each query of ``queries``, written to ``out_rows/out_dists``.

    One thread's share of :func:`topk_batch` when it splits the queries: blocks of
    up to 256 queries (fewer when ``k`` is large, so the candidate buffers stay
    under 32 MB), each block reading the codes once.
    """
    n, n_words = codes.shape
    width = 64 * n_words + 1
    capacity = 2 * k + 64
    step = max(1, min(_QUERY_BLOCK, _STATE_BYTES // (12 * capacity + 8 * width)))
    for first in range(0, queries.shape[0], step):
        block = queries[first : min(first + step, queries.shape[0])]
        m = block.shape[0]
        rows, dists, counts, bounds, hists, below = _new_candidates(m, k, width)
        if n_words == 4 and m >= 2:
            _scan_rows_transposed(codes, block, 0, n, k, rows, dists, counts, bounds, hists, below)
        else:
            _scan_rows(codes, block, 0, n, k, rows, dists, counts, bounds, hists, below)
        for j in range(m):
            one = slice(j, j + 1)
            _merge(rows[one], dists[one], counts[one], k, width, out_rows[first + j], out_dists[first + j])


@njit(cache=True, parallel=True)
def topk_batch(codes, queries, k, n_threads):
    """The ``k`` nearest rows for each of many queries, reading the codes once per block of queries.

    The rows are read 256 at a time, and each block of rows is compared with a
    whole block of queries (up to 256) while it sits in L1, so the codes come
    from memory once per query block instead of once per query. With 4-word
    codes and at least 2 queries in a block the distance loop is vectorized
    over rows (:func:`_scan_rows_transposed`). Each query keeps a small
    candidate buffer, compacted by counting (:func:`_admit`), and its final
    order comes from a counting sort (:func:`_merge`).

    ``prange`` splits the work into ``n_threads`` parts, each with its own
    buffers and output rows (no shared state):

    - with at least ``2 * n_threads`` queries, by queries: each part ranks every
      row for its share of the queries (the cheapest split: a split of the rows
      repeats the warm-up of every candidate buffer in every part);
    - with fewer queries, by rows: each part keeps the top ``k`` of its rows for
      every query, and the parts are merged per query (chunk ``c`` holds lower
      rows than chunk ``c + 1``, which keeps ties by row).

    The result does not depend on ``n_threads``.

    Parameters
    ----------
    codes : uint64 array, shape (n, n_words), C-contiguous, read-only
    queries : uint64 array, shape (n_queries, n_words), C-contiguous, read-only
    k : int
        ``k >= n`` ranks every row; ``k <= 0`` none.
    n_threads : int
        How many parts to split the work into: the thread count
        (``numba.get_num_threads()``), which a cached kernel cannot read itself.

    Returns
    -------
    rows : int64 array, shape (n_queries, min(k, n))
        Row ``i`` sorted by distance to query ``i``, ties by ascending row.
    distances : int32 array, same shape
    """
    n, n_words = codes.shape
    n_queries = queries.shape[0]
    k = min(max(k, 0), n)
    width = 64 * n_words + 1
    out_rows = np.empty((n_queries, k), np.int64)
    out_dists = np.empty((n_queries, k), np.int32)
    if k == 0 or n_queries == 0:
        return out_rows, out_dists
    n_threads = max(1, n_threads)
    if n_queries >= 2 * n_threads or n < 2 * _MIN_CHUNK:
        n_parts = min(n_threads, n_queries)
        for part in prange(n_parts):
            lo = n_queries * part // n_parts
            hi = n_queries * (part + 1) // n_parts
            _scan_queries(codes, queries[lo:hi], k, out_rows[lo:hi], out_dists[lo:hi])
        return out_rows, out_dists

    n_chunks = min(n_threads, n // _MIN_CHUNK)
    capacity = 2 * k + 64
    rows = np.empty((n_chunks, n_queries, capacity), np.int64)
    dists = np.empty((n_chunks, n_queries, capacity), np.int32)
    counts = np.zeros((n_chunks, n_queries), np.int64)
    bounds = np.full((n_chunks, n_queries), width, np.int64)
    hists = np.zeros((n_chunks, n_queries, width), np.int64)
    below = np.zeros((n_chunks, n_queries), np.int64)
    for c in prange(n_chunks):
        lo = n * c // n_chunks
        hi = n * (c + 1) // n_chunks
        if n_words == 4 and n_queries >= 2:
            _scan_rows_transposed(codes, queries, lo, hi, k, rows[c], dists[c], counts[c], bounds[c], hists[c], below[c])
        else:
            _scan_rows(codes, queries, lo, hi, k, rows[c], dists[c], counts[c], bounds[c], hists[c], below[c])
    for j in range(n_queries):
        _merge(rows[:, j], dists[:, j], counts[:, j], k, width, out_rows[j], out_dists[j])
    return out_rows, out_dists


# ---------------------------------------------------------------- Hamming-ball lookup


@njit(inline="always")
def _lower_bound(sorted_values, lo, hi, x):
    """First index ``i`` in ``[lo, hi)`` with ``sorted_values[i] >= x`` (``hi`` if none).

    Branch-free halving (the compare becomes a conditional move).
    """
    length = hi - lo
    if length <= 0:
        return hi
    base = lo
    while length > 1:
        half = length >> 1
        base = base + half if sorted_values[base + half - 1] < x else base
        length -= half
    return base + 1 if sorted_values[base] < x else base


@njit(inline="always")
def _next_combination(v):
    """Next larger uint64 with the same number of set bits (Gosper's hack).

    ``v`` must be non-zero and below 2**63. The division form avoids a
    count-trailing-zeros intrinsic, which NUMBA_DISABLE_JIT could not run.
    """
    lowest = v & (~v + np.uint64(1))
    ripple = v + lowest
    return (((ripple ^ v) >> np.uint64(2)) // lowest) | ripple


@njit(inline="always")
def _append(found, n_found, value):
    """``found[n_found] = value``, doubling ``found`` first if it is full."""
    if n_found == found.shape[0]:
        grown = np.empty(2 * n_found, np.int64)
        grown[:n_found] = found
        found = grown
    found[n_found] = value
    return found


@njit(cache=True, nogil=True)
def ball_shell(sorted_addresses, order, bucket_starts, prefix_bits, query_address, n_bits, distance):
    """Rows whose address is at exactly Hamming distance ``distance`` from the query.

    The table is bucketed by the top ``p = prefix_bits`` address bits:
    bucket ``b`` is ``sorted_addresses[bucket_starts[b]:bucket_starts[b + 1]]``.
    An address at distance ``distance`` differs from the query in ``j`` prefix
    bits and ``distance - j`` low bits, so the kernel

    1. lists the buckets whose prefix differs from the query's in ``j`` bits, for
       every feasible ``j`` (Gosper's hack), and reads their bounds;
    2. reads both ends of every bucket in a loop of independent loads, so the
       cache misses overlap instead of queueing behind the scan's mispredicted
       branches (LLVM prefetch hints measured slower than these loads);
    3. scans each bucket for the addresses at the right distance, or, for a
       bucket much larger than the number of low-bit masks to try (clustered
       addresses), binary-searches each ``query ^ mask`` inside the bucket.

    With ``p`` about ``log2(n) - 2`` the buckets hold about 4 to 8 addresses, so
    a visit costs about two cache misses whatever ``n`` is. A shell visits
    ``sum_j C(p, j)`` buckets: that grows with ``log n`` (e.g. 470 buckets for
    distance 3 at 10^5 addresses, 1,562 at 10^7), while the ``C(n_bits, distance)``
    addresses of the shell would each need a probe.

    Parameters
    ----------
    sorted_addresses : int64 array, shape (n,)
        Addresses sorted ascending, each in ``[0, 2**n_bits)``.
    order : int64 array, shape (n,)
        ``order[i]`` is the row of ``sorted_addresses[i]`` (a stable argsort).
    bucket_starts : int64 array, shape (2**prefix_bits + 1,)
        ``bucket_starts[b]`` is the first position whose address has prefix ``>= b``;
        the last entry is ``n``.
    prefix_bits : int
        ``0 <= prefix_bits <= n_bits``.
    query_address : int
        In ``[0, 2**n_bits)``.
    n_bits : int
        Address width, ``0 <= n_bits <= 63``.
    distance : int
        Outside ``[0, n_bits]`` the shell is empty.

    Returns
    -------
    int64 array
        The rows, bucket by bucket in visit order (callers that need them sorted
        sort them: ``search`` merges shells with ``np.unique`` anyway).
    """
    n = sorted_addresses.shape[0]
    if n == 0 or distance < 0 or distance > n_bits:
        return np.empty(0, np.int64)
    p = prefix_bits
    low_bits = n_bits - p
    j_min = max(0, distance - low_bits)
    j_max = min(distance, p)
    n_visits = 0
    n_choices = 1  # C(p, j)
    for j in range(j_max + 1):
        if j >= j_min:
            n_visits += n_choices
        n_choices = n_choices * (p - j) // (j + 1)

    # 1. the buckets to visit and their bounds
    buckets = np.empty(n_visits, np.int64)
    starts = np.empty(n_visits, np.int64)
    stops = np.empty(n_visits, np.int64)
    query = np.uint64(query_address)
    query_prefix = query >> np.uint64(low_bits)
    prefix_limit = np.uint64(1) << np.uint64(p)
    v = 0
    for j in range(j_min, j_max + 1):
        mask = (np.uint64(1) << np.uint64(j)) - np.uint64(1)
        while mask < prefix_limit:
            bucket = np.int64(query_prefix ^ mask)
            buckets[v] = bucket
            starts[v] = bucket_starts[bucket]
            stops[v] = bucket_starts[bucket + 1]
            v += 1
            if mask == 0:
                break
            mask = _next_combination(mask)

    # 2. read both ends of every bucket: these loads do not depend on each other,
    # so their cache misses overlap (a bucket spans one or two cache lines)
    firsts = np.empty(n_visits, np.int64)
    lasts = np.empty(n_visits, np.int64)
    for v in range(n_visits):
        firsts[v] = sorted_addresses[min(starts[v], n - 1)]
        lasts[v] = sorted_addresses[max(stops[v] - 1, 0)]

    # 3. scan (or probe) each bucket
    n_masks = np.empty(distance + 1, np.float64)  # C(low_bits, e): low-bit masks at distance e
    n_masks[0] = 1.0
    for e in range(1, distance + 1):
        n_masks[e] = n_masks[e - 1] * max(low_bits - e + 1, 0) / e
    low_limit = np.uint64(1) << np.uint64(low_bits)
    low_query = query & (low_limit - np.uint64(1))
    found = np.empty(64, np.int64)  # positions in the sorted table
    n_found = 0
    for v in range(n_visits):
        lo = starts[v]
        hi = stops[v]
        size = hi - lo
        if size == 0:
            continue
        low_distance = distance - np.int64(_popcount(np.uint64(buckets[v]) ^ query_prefix))
        if size > 32 and n_masks[low_distance] * (math.log2(size) + 1.0) * 4.0 < size:
            prefix = np.uint64(buckets[v]) << np.uint64(low_bits)
            mask = (np.uint64(1) << np.uint64(low_distance)) - np.uint64(1)
            while mask < low_limit:
                probe = np.int64(prefix | (low_query ^ mask))
                i = _lower_bound(sorted_addresses, lo, hi, probe)
                while i < hi and sorted_addresses[i] == probe:
                    found = _append(found, n_found, i)
                    n_found += 1
                    i += 1
                if mask == 0:
                    break
                mask = _next_combination(mask)
        else:  # both ends are at hand already, then the rest of the bucket
            if _popcount(firsts[v] ^ query_address) == distance:
                found = _append(found, n_found, lo)
                n_found += 1
            if size > 1 and _popcount(lasts[v] ^ query_address) == distance:
                found = _append(found, n_found, hi - 1)
                n_found += 1
            for i in range(lo + 1, hi - 1):
                if _popcount(sorted_addresses[i] ^ query_address) == distance:
                    found = _append(found, n_found, i)
                    n_found += 1

    rows = np.empty(n_found, np.int64)
    for h in range(n_found):
        rows[h] = order[found[h]]
    return rows


# ball_halves first keys a hit (distance << 57) | its position in its table, then
# (distance << row_bits) | its row, so that one integer sort orders the hits by
# distance, then by row.
_KEY_SHIFT = 57
_POSITION_MASK = (1 << 57) - 1


@njit(inline="always")
def _bit_length(x):
    """Bits of the non-negative ``x`` (0 for 0)."""
    bits = 0
    while x >> bits:
        bits += 1
    return bits


@njit(inline="always")
def _radix_sort(keys, bits):
    """``keys`` (non-negative, below ``2**bits``) sorted, 8 bits a pass from the lowest.

    No branch depends on the data, where a quicksort mispredicts about every other
    comparison of random keys: 2.5x faster on the 137 keys of a radius-3 ball of
    10^7 addresses, 6x on 10^5 keys.
    """
    src = keys
    dst = np.empty_like(keys)
    counts = np.empty(257, np.int64)
    for shift in range(0, bits, 8):
        counts[:] = 0
        for i in range(src.shape[0]):
            counts[((src[i] >> shift) & 255) + 1] += 1
        for d in range(256):
            counts[d + 1] += counts[d]
        for i in range(src.shape[0]):
            digit = (src[i] >> shift) & 255
            dst[counts[digit]] = src[i]
            counts[digit] += 1
        src, dst = dst, src
    return src


@njit(inline="always")
def _keys_within(key_bits, radius):
    """How many ``key_bits``-bit keys lie within Hamming distance ``radius`` of one key."""
    total = 0
    choices = 1  # C(key_bits, j)
    for j in range(min(radius, key_bits) + 1):
        total += choices
        choices = choices * (key_bits - j) // (j + 1)
    return total


@njit(inline="always")
def _bucket_bounds(starts, key_bits, key, radius, lo, hi, key_distance, v):
    """From slot ``v`` on, the bounds of every bucket whose key lies within ``radius``
    of ``key`` and that key distance, nearest keys first; returns the next free slot."""
    limit = np.int64(1) << np.int64(key_bits)
    for j in range(min(radius, key_bits) + 1):
        mask = (np.int64(1) << np.int64(j)) - 1
        while mask < limit:
            bucket = key ^ mask
            lo[v] = starts[bucket]
            hi[v] = starts[bucket + 1]
            key_distance[v] = j
            v += 1
            if mask == 0:
                break
            mask = np.int64(_next_combination(np.uint64(mask)))
    return v


@njit(inline="always")
def _flag(halves, lo, hi, query_half, fewest, most, flags, offset):
    """``flags[offset + i]``: whether ``halves[lo + i]`` lies at a distance in
    ``[fewest, most]`` from ``query_half``, for ``i < hi - lo``.

    A branch-free loop that LLVM vectorizes on 16-bit lanes only as written: the
    XOR cast back to uint16 (numba widens it to 64 bits), and slices indexed from 0
    (an index ``lo + i`` could be negative for all numba knows, and its wraparound
    check stops the vectorizer: 7x slower on 18,000 entries).
    """
    entries = halves[lo:hi]
    out = flags[offset : offset + hi - lo]
    for i in range(entries.shape[0]):
        distance = _popcount(np.uint16(entries[i] ^ query_half))
        out[i] = (distance >= fewest) & (distance <= most)


@njit(inline="always")
def _gather(halves, lo, query_half, key_distance, flags, keys, m):
    """Append the keys of the entries ``halves[lo + i]`` whose flag ``flags[i]`` is set.

    ``flags`` (one bucket's, zero-padded to a multiple of 32) is read 32 flags at a
    time, as hits are rare (for a radius-3 ball of random addresses, about 1 entry
    in 130), then a group's set flags one by one.
    """
    groups = flags.view(np.uint64)
    for block in range(groups.shape[0] >> 2):
        g = 4 * block
        if groups[g] | groups[g + 1] | groups[g + 2] | groups[g + 3]:
            for k in range(g, g + 4):
                group = groups[k]
                while group:  # flag i of the group is bit 8i (little-endian bytes of 0 or 1)
                    position = lo + 8 * k + (np.int64(_popcount((group & (~group + np.uint64(1))) - np.uint64(1))) >> 3)
                    group &= group - np.uint64(1)
                    distance = key_distance + np.int64(_popcount(np.uint16(halves[position] ^ query_half)))
                    keys[m] = (distance << _KEY_SHIFT) | position
                    m += 1
    return m


@njit(cache=True, nogil=True)
def ball_halves(low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits, query_address, radius, high_radius, low_radius):
    """Rows whose address is within Hamming distance ``radius``, sorted by distance, then row.

    Multi-index hashing over the two halves of an address (Norouzi, Punjani and
    Fleet, "Fast search in Hamming space with multi-index hashing", CVPR 2012):
    the addresses are held twice, once bucketed by their high half (each entry
    keeping its low half) and once by their low half (keeping its high half). If
    ``high_radius + low_radius = radius - 1``, an address within ``radius`` lies
    within ``high_radius`` of the query in its high half or within ``low_radius``
    in its low half, since the two distances add up to at most ``radius``. So the
    kernel scans the ``sum_j C(high_bits, j)`` buckets (``j <= high_radius``) of
    the first table and the ``sum_j C(low_bits, j)`` of the second, keeping the
    entries within ``radius``, and drops from the second table what the first
    already found (high-half distance at most ``high_radius``). For 28-bit
    addresses and radius 3 that is 30 buckets of ``n / 2**14`` entries each, runs
    of 2-byte entries read front to back, where :func:`ball_shell` takes 1,817
    visits to scattered buckets for shells 0 to 3 of 10^7 addresses.

    Parameters
    ----------
    low_halves : uint16 array, shape (n,)
        The low ``low_bits`` bits of the addresses, in ascending address order.
    high_starts : int64 array, shape (2**high_bits + 1,)
        Entries ``high_starts[b]:high_starts[b + 1]`` have high half ``b``.
    order : int64 array, shape (n,)
        Row of each entry of the first table.
    high_halves : uint16 array, shape (n,)
        The high halves, grouped by low half (ascending).
    low_starts : int64 array, shape (2**low_bits + 1,)
        Entries ``low_starts[b]:low_starts[b + 1]`` of the second table have low half ``b``.
    rows_by_low : int64 array, shape (n,)
        Row of each entry of the second table.
    low_bits : int
        Width of the low half; the high half is the rest, both at most 16 bits.
    query_address : int
    radius : int
        At least 0.
    high_radius, low_radius : int
        ``high_radius >= 0``. Either ``high_radius + low_radius == radius - 1``,
        or ``low_radius == -1`` and ``high_radius == radius`` (first table alone).

    Returns
    -------
    int64 array
        The rows, sorted by address distance, then by row.
    """
    high_bits = 0
    while (1 << high_bits) < high_starts.shape[0] - 1:
        high_bits += 1
    query = np.int64(query_address)
    query_low = query & ((np.int64(1) << np.int64(low_bits)) - 1)
    query_high = query >> np.int64(low_bits)
    n_first = _keys_within(high_bits, high_radius)
    n_buckets = n_first + (_keys_within(low_bits, low_radius) if low_radius >= 0 else 0)
    lo = np.empty(n_buckets, np.int64)
    hi = np.empty(n_buckets, np.int64)
    key_distance = np.empty(n_buckets, np.int64)
    _bucket_bounds(high_starts, high_bits, query_high, high_radius, lo, hi, key_distance, 0)
    if low_radius >= 0:
        _bucket_bounds(low_starts, low_bits, query_low, low_radius, lo, hi, key_distance, n_first)
    # flag every bucket's entries first (each bucket's flags padded with zeros to a
    # multiple of 32), then gather the flagged ones
    offsets = np.empty(n_buckets + 1, np.int64)
    offsets[0] = 0
    for v in range(n_buckets):
        offsets[v + 1] = (offsets[v] + hi[v] - lo[v] + 31) & ~31
    n_flags = offsets[n_buckets]
    flags = np.zeros(n_flags + 8, np.uint8)  # and 8 spare bytes
    # Read one entry per cache line of every bucket first: independent loads whose
    # misses overlap, where the scan below would wait for each bucket's first line
    # (cold buckets of 10^7 addresses: 10-15% faster). Their XOR goes to a spare
    # byte, so that LLVM keeps the loads.
    touched = np.uint16(0)
    for v in range(n_buckets):
        halves = low_halves if v < n_first else high_halves
        for i in range(lo[v], hi[v], 32):
            touched ^= halves[i]
    flags[n_flags] = np.uint8(touched & 0xFF)
    low_half, high_half = np.uint16(query_low), np.uint16(query_high)
    for v in range(n_buckets):
        if v < n_first:
            _flag(low_halves, lo[v], hi[v], low_half, np.uint16(0), np.uint16(radius - key_distance[v]), flags, offsets[v])
        else:  # drop what the first table found: high-half distance <= high_radius
            fewest = np.uint16(high_radius + 1)
            _flag(high_halves, lo[v], hi[v], high_half, fewest, np.uint16(radius - key_distance[v]), flags, offsets[v])
    n_hits = 0  # a flag is a 0 or 1 byte: the set bits of 8 flags count them
    for group in flags[:n_flags].view(np.uint64):
        n_hits += np.int64(_popcount(group))
    keys = np.empty(n_hits, np.int64)
    m = 0
    for v in range(n_first):
        m = _gather(low_halves, lo[v], low_half, key_distance[v], flags[offsets[v] : offsets[v + 1]], keys, m)
    m_first = m
    for v in range(n_first, n_buckets):
        m = _gather(high_halves, lo[v], high_half, key_distance[v], flags[offsets[v] : offsets[v + 1]], keys, m)
    # the rows (two loops: no branch between their cache misses), keyed (distance, row)
    row_bits = _bit_length(max(order.shape[0] - 1, 0))
    for h in range(m_first):
        keys[h] = (keys[h] >> _KEY_SHIFT << row_bits) | order[keys[h] & _POSITION_MASK]
    for h in range(m_first, m):
        keys[h] = (keys[h] >> _KEY_SHIFT << row_bits) | rows_by_low[keys[h] & _POSITION_MASK]
    keys = _radix_sort(keys, row_bits + _bit_length(radius))
    for h in range(m):
        keys[h] &= (np.int64(1) << np.int64(row_bits)) - 1
    return keys


@njit(cache=True, nogil=True)
def address_histogram(addresses, query_address, n_bits):
    """How many addresses lie at each Hamming distance from the query, in one pass.

    Parameters
    ----------
    addresses : int64 array, shape (n,), each in ``[0, 2**n_bits)``
    query_address : int
        In ``[0, 2**n_bits)``.
    n_bits : int

    Returns
    -------
    int64 array, shape (n_bits + 1,)
        Entry ``d`` counts the addresses at distance ``d``.
    """
    counts = np.zeros(n_bits + 1, np.int64)
    for i in range(addresses.shape[0]):
        counts[_popcount(addresses[i] ^ query_address)] += 1
    return counts


@njit(cache=True, nogil=True)
def address_scan(addresses, query_address, max_distance):
    """Rows whose address is within Hamming distance ``max_distance``, by a linear scan.

    Cheaper than visiting buckets once the ball is large compared with the
    table (see ``search.AddressTable.ball``).

    Parameters
    ----------
    addresses : int64 array, shape (n,), non-negative
    query_address : int
    max_distance : int

    Returns
    -------
    int64 array
        Matching rows in ascending order.
    """
    n = addresses.shape[0]
    hits = np.empty(n, np.int64)  # untouched pages of this buffer cost nothing
    m = 0
    for start in range(0, n, _BLOCK):
        block = addresses[start : min(start + _BLOCK, n)]
        n_hits = 0  # a branch-free (vectorized) count first: most blocks have no hit
        for i in range(block.shape[0]):
            n_hits += np.int64(_popcount(block[i] ^ query_address)) <= max_distance
        if n_hits:
            for i in range(block.shape[0]):
                if _popcount(block[i] ^ query_address) <= max_distance:
                    hits[m] = start + i
                    m += 1
    return hits[:m].copy()


# ---------------------------------------------------------------- search: ball, then re-rank


@njit
def _ball_rows(sorted_addresses, bucket_starts, prefix_bits, low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits, addresses, n_bits, query_address, want, limit, fallback, plans):
    """The shortlist of one query: rows of the smallest ball (radius <= ``limit``)
    holding ``want`` rows, ascending, and its radius; radius -1 (with no rows)
    means "rank every row" (``fallback`` and even radius ``limit`` holds fewer).

    ``plans[r]`` says how to grow the ball to radius ``r`` (the cost model's
    choice, ``AddressTable.ball_plans``): 0, visit shell ``r``'s buckets; 1, find
    the whole ball of radius ``r`` in the half-tables (:func:`ball_halves`, with
    the high and low radii ``plans[r, 1:]``); 2, stop growing: an address
    histogram finds the radius, and one scan collects the ball. All give the
    same rows (see ``search.search``).
    """
    found = np.empty(max(want, 16), np.int64)
    m = 0
    for radius in range(limit + 1):
        if plans[radius, 0] == 2:
            histogram = address_histogram(addresses, query_address, n_bits)
            total = 0
            for r in range(limit + 1):
                total += histogram[r]
                if total >= want:
                    return address_scan(addresses, query_address, r), r
            if fallback:
                return np.empty(0, np.int64), -1
            return address_scan(addresses, query_address, limit), limit
        if plans[radius, 0] == 1:
            found = ball_halves(
                low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits,
                query_address, radius, plans[radius, 1], plans[radius, 2],
            )
            m = found.shape[0]
        else:
            shell = ball_shell(sorted_addresses, order, bucket_starts, prefix_bits, query_address, n_bits, radius)
            for row in shell:
                found = _append(found, m, row)
                m += 1
        if m >= want:
            return np.sort(found[:m]), radius
    if fallback:
        return np.empty(0, np.int64), -1
    return np.sort(found[:m]), limit


@njit(cache=True, parallel=True)
def search_batch(sorted_addresses, bucket_starts, prefix_bits, low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits, addresses, n_bits, codes, query_addresses, query_codes, want, k, limit, fallback, plans):
    """Hamming-ball shortlist, then long-code re-rank, for many queries in parallel.

    For each query: the smallest ball around its address (radius at most
    ``limit``) that holds ``want`` rows (:func:`_ball_rows`), ranked by the
    Hamming distance of the long codes, ties by row; the best ``k`` are kept.
    When ``fallback`` and even the ball of radius ``limit`` holds fewer than
    ``want`` rows, every code is ranked instead (radius -1).

    Parameters
    ----------
    sorted_addresses, bucket_starts, prefix_bits, n_bits
        The address table (see :func:`ball_shell`).
    low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits
        Its half-tables (see :func:`ball_halves`; ``order`` is also the sorted
        table's; the others are read only by plans with a 1, and empty for
        addresses of more than 32 bits).
    addresses : int64 array, shape (n,)
        The addresses in row order.
    codes : uint64 array, shape (n, n_words), C-contiguous, read-only
    query_addresses : int64 array, shape (n_queries,)
    query_codes : uint64 array, shape (n_queries, n_words), C-contiguous, read-only
    want, k, limit : int
    fallback : bool
    plans : int64 array, shape (limit + 1, 3)
        How the ball of each radius is found (see :func:`_ball_rows`).

    Returns
    -------
    rows : int64 array, shape (n_queries, k)
        Row ``i``: query ``i``'s hits by code distance, ties by row, then -1 padding.
    distances : int32 array, same shape (-1 padding)
    counts : int64 array, shape (n_queries,)
        Hits of each query (at most ``k``).
    radii : int64 array, shape (n_queries,)
        Radius of the ball that was ranked, -1 if every code was.
    """
    n_queries = query_addresses.shape[0]
    max_distance = 64 * codes.shape[1]
    out_rows = np.full((n_queries, k), -1, np.int64)
    out_dists = np.full((n_queries, k), -1, np.int32)
    counts = np.zeros(n_queries, np.int64)
    radii = np.zeros(n_queries, np.int64)
    # Queries of one address share its ball, found once: the neighbour lists of a
    # build query every document, and at 10^5 synthetic documents a batch sorted by
    # address holds ~6 documents an address (the ball is ~60% of a query's time).
    by_address = np.argsort(query_addresses, kind="mergesort")
    firsts = np.flatnonzero(np.diff(query_addresses[by_address]) != 0) + 1
    group_starts = np.concatenate((np.zeros(1, np.int64), firsts, np.full(1, n_queries, np.int64)))
    for g in prange(group_starts.shape[0] - 1 if n_queries else 0):
        rows, radius = _ball_rows(
            sorted_addresses, bucket_starts, prefix_bits,
            low_halves, high_starts, order, high_halves, low_starts, rows_by_low, low_bits,
            addresses, n_bits, query_addresses[by_address[group_starts[g]]], want, limit, fallback, plans,
        )
        for p in range(group_starts[g], group_starts[g + 1]):
            i = by_address[p]
            if radius < 0:
                best_rows, best_dists = topk_scan(codes, query_codes[i], k)
            else:
                distances = hamming_distances_subset(codes, rows, query_codes[i])
                best = topk_by_distance(distances, k, max_distance)
                best_rows, best_dists = rows[best], distances[best]
            m = best_rows.shape[0]
            out_rows[i, :m] = best_rows
            out_dists[i, :m] = best_dists
            counts[i] = m
            radii[i] = radius
    return out_rows, out_dists, counts, radii


# Serial: on the 20NG test batch it takes 0.6-0.7 s on one thread or two (bench/threads.py,
# a busy 2-vCPU VM), and parallel=True cost 11 s of CPU to compile against 4.
@njit(cache=True, nogil=True)
def join_shortlists(rows, dists, counts, starts, candidates, codes, query_codes, min_distance, max_distance):
    """Shortlists grown by candidates: ``semhash.search.join`` for many queries.

    Query ``i``'s candidates are ``candidates[starts[i]:starts[i + 1]]`` (positions,
    -1 for none, repeats allowed); those not in its shortlist (the first
    ``counts[i]`` of ``rows[i]``) whose code distance lies in ``[min_distance,
    max_distance]`` are appended in ascending order, each once. Each query marks
    its shortlisted documents in a bitmap (one byte per document) and clears what
    it marked.

    Returns (rows, dists, counts): new arrays, as wide as the longest grown
    shortlist (at least as wide as ``rows``), padded with -1.
    """
    n_queries, width = rows.shape
    joined = np.empty(candidates.shape[0], np.int64)  # query i's at starts[i]...
    joined_dists = np.empty(candidates.shape[0], np.int32)
    grown = counts.copy()
    marked = np.zeros(codes.shape[0], np.bool_)
    for i in range(n_queries):
        for c in range(counts[i]):
            marked[rows[i, c]] = True
        m = starts[i]
        for p in range(starts[i], starts[i + 1]):
            row = candidates[p]
            if row < 0 or marked[row]:
                continue
            marked[row] = True
            d = _row_distance(codes, row, query_codes[i])
            if min_distance <= d <= max_distance:
                joined[m] = row
                joined_dists[m] = d
                m += 1
        order = np.argsort(joined[starts[i] : m])
        joined[starts[i] : m] = joined[starts[i] : m][order]
        joined_dists[starts[i] : m] = joined_dists[starts[i] : m][order]
        grown[i] += m - starts[i]
        for c in range(counts[i]):
            marked[rows[i, c]] = False
        for p in range(starts[i], starts[i + 1]):
            if candidates[p] >= 0:
                marked[candidates[p]] = False
    new_width = max(width, grown.max()) if n_queries else width
    out_rows = np.empty((n_queries, new_width), np.int64)
    out_dists = np.empty((n_queries, new_width), np.int32)
    for i in range(n_queries):
        out_rows[i, :width] = rows[i]
        out_dists[i, :width] = dists[i]
        out_rows[i, width:] = -1
        out_dists[i, width:] = -1
        m = grown[i] - counts[i]
        out_rows[i, counts[i] : grown[i]] = joined[starts[i] : starts[i] + m]
        out_dists[i, counts[i] : grown[i]] = joined_dists[starts[i] : starts[i] + m]
    return out_rows, out_dists, grown


# ---------------------------------------------------------------- counting words (ASCII text)

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


# Byte -> its lowercase if it is an ASCII letter or digit, else 0: one load per
# byte instead of range tests (numba freezes this global into the compiled code).
_WORD_BYTE = np.zeros(256, np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _WORD_BYTE[_c] = _c
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _WORD_BYTE[_c] = _c + 32


@njit(inline="always")
def _code_word(codes, addresses, row, w):
    """Word ``w`` of a row's long code, and past them its address as one more word."""
    return codes[row, w] if w < codes.shape[1] else np.uint64(addresses[row])


@njit(cache=True, nogil=True)
def shared_bit_scores(codes, addresses, near, near_counts, m, query_codes, query_addresses, query_weight, address_weight, unit, rows, counts):
    """Per query, each of its ``rows``' score (the first ``counts``; -inf past them):
    its bits' weights, each added if the bit is set and taken away if not, over the
    long code's bits and then, times ``address_weight``, the address's. A bit
    weighs ``query_weight`` x (+1 if the query's bit is set, else -1) plus
    (1 - ``query_weight``) x (the share of the query's first ``m`` ``near`` rows
    holding it less the share lacking it; the query's own sign if it has none).
    A table per byte (its 256 values' sums) makes a 256-bit code 32 lookups
    instead of 256 bit tests. Each weight is rounded to a whole number of
    ``1 / unit``: every sum is then exact, the same in any order of adding."""
    n_queries, width = rows.shape
    n_words = codes.shape[1] + 1  # the address is the last word
    out = np.full((n_queries, width), -np.inf)
    held = np.empty(64 * n_words)
    weights = np.empty(64 * n_words)
    table = np.empty((8 * n_words, 256))
    for q in range(n_queries):
        n_near = min(m, near_counts[q])
        held[:] = 0.0
        for r in range(n_near):
            for w in range(n_words):
                x = _code_word(codes, addresses, near[q, r], w)
                for b in range(64):
                    if (x >> np.uint64(b)) & np.uint64(1):
                        held[64 * w + b] += 1.0
        for w in range(n_words):
            mine = query_codes[q, w] if w < n_words - 1 else np.uint64(query_addresses[q])
            scale = 1.0 if w < n_words - 1 else address_weight
            for b in range(64):
                own = 1.0 if (mine >> np.uint64(b)) & np.uint64(1) else -1.0
                shared = 2.0 * held[64 * w + b] / n_near - 1.0 if n_near > 0 else own
                weights[64 * w + b] = np.rint(scale * (query_weight * own + (1.0 - query_weight) * shared) * unit)
        for p in range(8 * n_words):  # byte p holds bits 8p .. 8p + 7
            table[p, 0] = -weights[8 * p : 8 * p + 8].sum()
            for v in range(1, 256):
                t = 0
                while not (v >> t) & 1:
                    t += 1
                table[p, v] = table[p, v & (v - 1)] + 2.0 * weights[8 * p + t]  # v less its lowest bit, then that bit set
        for r in range(counts[q]):
            score = 0.0
            for w in range(n_words):
                x = _code_word(codes, addresses, rows[q, r], w)
                for byte in range(8):
                    score += table[8 * w + byte, np.intp((x >> np.uint64(8 * byte)) & np.uint64(255))]
            out[q, r] = score
    return out


@njit(cache=True)
def word_table(word_bytes, word_starts):
    """Open-addressing hash table of the vocabulary for :func:`count_ascii_words`.

    Returns ``slots`` (int64, a power of two at least 4x the vocabulary size):
    word index or -1, placed by FNV-1a hash with linear probing.
    """
    n_words = word_starts.shape[0] - 1
    size = 16
    while size < 4 * n_words:
        size *= 2
    slots = np.full(size, -1, np.int64)
    mask = np.uint64(size - 1)
    for w in range(n_words):
        h = _FNV_OFFSET
        for i in range(word_starts[w], word_starts[w + 1]):
            h = (h ^ np.uint64(word_bytes[i])) * _FNV_PRIME
        s = h & mask
        while slots[s] != -1:
            s = (s + np.uint64(1)) & mask
        slots[s] = w
    return slots


# Serial, as ascii_word_ids: 0.27-0.28 s and 0.48-0.63 s for the 20NG test batch on one
# thread or two (bench/threads.py), and parallel=True cost 2-3 s of CPU to compile against 1.
@njit(cache=True, nogil=True)
def count_ascii_words(text, doc_starts, word_bytes, word_starts, slots):
    """Count vocabulary words in ASCII documents: ``semhash.tokenize`` and a
    dictionary lookup, fused.

    A token is a maximal run of ASCII letters and digits, lowercased, of two or
    more characters, that starts with a letter (exactly what
    ``tokenize.WORD_RE`` keeps on ASCII text). Each is hashed (FNV-1a) while it
    is read and looked up in ``slots`` (:func:`word_table`), comparing bytes on
    a hash-slot hit.

    Parameters
    ----------
    text : uint8 array
        The documents' bytes, concatenated; document ``i`` is
        ``text[doc_starts[i]:doc_starts[i + 1]]``.
    doc_starts : int64 array, shape (n_docs + 1,)
    word_bytes, word_starts
        The vocabulary, lowercase, concatenated the same way.
    slots : int64 array
        From :func:`word_table`.

    Returns
    -------
    float32 array, shape (n_docs, n_words)
    """
    n_docs = doc_starts.shape[0] - 1
    out = np.zeros((n_docs, word_starts.shape[0] - 1), np.float32)
    for d in range(n_docs):
        i = doc_starts[d]
        while i < doc_starts[d + 1]:
            i, w = _next_word(text, i, doc_starts[d + 1], word_bytes, word_starts, slots)
            if w >= 0:
                out[d, w] += 1.0
    return out


@njit(cache=True, nogil=True)
def ascii_word_ids(text, doc_starts, word_bytes, word_starts, slots):
    """:func:`count_ascii_words` for a vocabulary too large for dense counts: the
    word index of every known token, in order, document after document.

    Returns
    -------
    starts : int64 array, shape (n_docs + 1,)
        Document ``i``'s tokens are ``ids[starts[i]:starts[i + 1]]``.
    ids : int64 array
    """
    n_docs = doc_starts.shape[0] - 1
    n_known = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):  # count, then fill: no resizing
        i = doc_starts[d]
        while i < doc_starts[d + 1]:
            i, w = _next_word(text, i, doc_starts[d + 1], word_bytes, word_starts, slots)
            if w >= 0:
                n_known[d + 1] += 1
    starts = np.cumsum(n_known)
    ids = np.empty(starts[-1], np.int64)
    for d in range(n_docs):
        i, at = doc_starts[d], starts[d]
        while i < doc_starts[d + 1]:
            i, w = _next_word(text, i, doc_starts[d + 1], word_bytes, word_starts, slots)
            if w >= 0:
                ids[at] = w
                at += 1
    return starts, ids


@njit(inline="always")
def _next_word(text, i, end, word_bytes, word_starts, slots):
    """Read from ``text[i]`` past the next token (or to ``end``): (where reading
    stopped, the token's word index, or -1 if it is not a word of the table)."""
    mask = np.uint64(slots.shape[0] - 1)
    while i < end and _WORD_BYTE[text[i]] == 0:
        i += 1
    if i == end:
        return i, -1
    first = _WORD_BYTE[text[i]]
    start = i
    h = _FNV_OFFSET
    while i < end:
        c = _WORD_BYTE[text[i]]
        if c == 0:
            break
        h = (h ^ np.uint64(c)) * _FNV_PRIME
        i += 1
    if i - start < 2 or first <= 57:  # one character, or starts with a digit
        return i, -1
    s = h & mask
    while slots[s] != -1:
        w = slots[s]
        lo = word_starts[w]
        if word_starts[w + 1] - lo == i - start:
            same = True
            for j in range(i - start):
                if word_bytes[lo + j] != _WORD_BYTE[text[start + j]]:
                    same = False
                    break
            if same:
                return i, w
        s = (s + np.uint64(1)) & mask
    return i, -1


# ---------------------------------------------------------------- shortlist rerank


@njit(cache=True, parallel=True)
def held_shares(q_starts, q_ids, q_weights, candidates, counts, d_starts, d_ids):
    """For each query ``i`` and each of its first ``counts[i]`` candidates (rows of
    the documents ``d_starts``/``d_ids``, term ids ascending): the sum of the query's
    term weights whose term the document holds, over the sum of them all (0 past
    the count, or for an empty query). Each term is a binary search of the document."""
    n_queries, width = candidates.shape
    out = np.zeros((n_queries, width), np.float64)
    for i in prange(n_queries):
        lo, hi = q_starts[i], q_starts[i + 1]
        total = 0.0
        for t in range(lo, hi):
            total += q_weights[t]
        if total <= 0.0:
            continue
        for j in range(counts[i]):
            d = candidates[i, j]
            held = 0.0
            for t in range(lo, hi):
                at = _lower_bound(d_ids, d_starts[d], d_starts[d + 1], q_ids[t])
                if at < d_starts[d + 1] and d_ids[at] == q_ids[t]:
                    held += q_weights[t]
            out[i, j] = held / total
    return out


@njit(cache=True)
def postings(d_starts, d_ids, d_weights, n_terms):
    """The transpose of packed document vectors: (starts int64 (n_terms + 1,),
    documents int32, weights float32), each term's documents in ascending order."""
    p_starts = np.zeros(n_terms + 1, np.int64)
    for j in range(d_ids.shape[0]):
        p_starts[d_ids[j] + 1] += 1
    for t in range(n_terms):
        p_starts[t + 1] += p_starts[t]
    fill = p_starts[:-1].copy()
    p_docs = np.empty(d_ids.shape[0], np.int32)
    p_weights = np.empty(d_ids.shape[0], np.float32)
    for d in range(d_starts.shape[0] - 1):
        for j in range(d_starts[d], d_starts[d + 1]):
            t = d_ids[j]
            p_docs[fill[t]] = d
            p_weights[fill[t]] = d_weights[j]
            fill[t] += 1
    return p_starts, p_docs, p_weights


@njit(cache=True, parallel=True)
def rerank_batch(
    q_starts, q_ids, q_weights, candidates, distances, counts, d_starts, d_ids, d_weights,
    p_starts, p_docs, p_weights, original, n_terms, penalty_per_bit, n_feedback, feedback_weight, n_expansion,
    neighbours, spread, hops, k, n_parts,
):
    """``semhash.rerank.rerank`` for many queries, in parallel over queries.

    Each part keeps one dense query vector of ``n_terms`` floats, and a bitmap and
    a list of the terms it set, which it clears after each query; with
    ``neighbours`` (one row per document, -1 for none), also a score per document.
    Dot products are summed in float32 in storage order, neighbours' scores in
    float64 in list order, and the scores sorted stably (mergesort), as the numpy
    path does.

    With the documents' :func:`postings` (``p_starts`` empty: none), a query's first
    pass walks its terms' postings instead when that reads fewer entries than its
    shortlist's vectors (20NG: 36,000 against 190,000 a query, 3x faster). The
    query's terms are in storage order, so each document's products are added in
    the same order as by a dot product, and the sums are the same. The feedback
    adds only the ``n_expansion`` largest of its terms' weights (every term tied
    with the last one kept; 0: all of them), which keeps the grown query short
    enough for its postings too; its terms are walked in storage order as well
    (``original`` maps the kernel's term ids back to the stored ones).

    The queries are split into ``n_parts`` runs (the thread count: numba gives each
    thread an equal share of the parts anyway), each with its own scratch arrays,
    some as long as the documents: at a million of them, 64 parts held 0.5 GB.

    Returns int64 (n_queries, k): positions into each row of ``candidates``, best
    first, -1 past the row's count; and float64 (n_queries, k): their scores, NaN
    past the count.
    """
    n_queries, width = candidates.shape
    n_docs = d_starts.shape[0] - 1
    smooth = neighbours.shape[1] > 0 and hops > 0
    out = np.full((n_queries, k), -1, np.int64)
    out_scores = np.full((n_queries, k), np.nan)
    n_parts = max(1, min(n_queries, n_parts))
    for part in prange(n_parts):
        doc_sums = np.zeros(n_docs if p_starts.shape[0] else 0, np.float32)
        dense = np.zeros(n_terms, np.float32)
        bits = np.zeros((n_terms + 63) // 64, np.uint64)
        touched = np.empty(n_terms, np.int64)
        grown = np.zeros(n_terms if n_feedback > 0 else 0, np.float32)  # what the feedback adds
        grown_bits = np.zeros(grown.shape[0] // 64 + 1, np.uint64)
        grown_touched = np.empty(grown.shape[0], np.int64)
        cosines = np.empty(width, np.float64)
        scores = np.empty(width, np.float64)
        smoothed = np.empty(width, np.float64)
        by_doc = np.zeros(n_docs + 1 if smooth else 0, np.float64)
        best = np.empty(max(min(k, 64), n_feedback, 1), np.int64)
        for i in range(n_queries * part // n_parts, n_queries * (part + 1) // n_parts):
            m = counts[i]
            if m == 0:
                continue
            n_touched = 0
            for j in range(q_starts[i], q_starts[i + 1]):
                n_touched = _touch(dense, bits, touched, n_touched, q_ids[j], q_weights[j])
            for c in range(m):
                cosines[c] = 0.0
            if n_touched > 0:
                if _postings_pay(q_ids[q_starts[i] : q_starts[i + 1]], candidates[i], m, d_starts, p_starts):
                    _posted_dots(q_ids[q_starts[i] : q_starts[i + 1]], q_weights[q_starts[i] : q_starts[i + 1]],
                                 candidates[i], m, p_starts, p_docs, p_weights, doc_sums, cosines)
                else:
                    for c in range(m):
                        cosines[c] = _dot(dense, candidates[i, c], d_starts, d_ids, d_weights)
                n_top = min(n_feedback, m)
                if n_top > 0 and feedback_weight != 0:
                    # Rocchio: move the query towards the mean of its best documents.
                    for c in range(m):
                        scores[c] = cosines[c] - penalty_per_bit * float(distances[i, c])
                    top = _best(scores, m, n_top, best)
                    n_used = 0  # only documents that share a word with the query feed back
                    for t in top:
                        if cosines[t] > 0:
                            n_used += 1
                    if n_used > 0:
                        step = np.float32(feedback_weight / n_used)
                        n_grown = 0
                        for t in top:
                            if cosines[t] <= 0:
                                continue
                            r = candidates[i, t]
                            for j in range(d_starts[r], d_starts[r + 1]):
                                n_grown = _touch(grown, grown_bits, grown_touched, n_grown, d_ids[j], step * d_weights[j])
                        cut = np.float32(0.0)
                        if 0 < n_expansion < n_grown:
                            added = np.empty(n_grown, np.float32)
                            for j in range(n_grown):
                                added[j] = grown[grown_touched[j]]
                            cut = np.sort(added)[n_grown - n_expansion]
                        for j in range(n_grown):
                            t = grown_touched[j]
                            if grown[t] >= cut:
                                n_touched = _touch(dense, bits, touched, n_touched, t, grown[t])
                            grown[t] = 0
                            grown_bits[t >> 6] = np.uint64(0)
                        norm2 = 0.0
                        for j in range(n_touched):
                            norm2 += float(dense[touched[j]]) * float(dense[touched[j]])
                        norm = math.sqrt(norm2)
                        terms = touched[:n_touched][np.argsort(original[touched[:n_touched]])]  # storage order
                        if _postings_pay(terms, candidates[i], m, d_starts, p_starts):
                            weights = np.empty(n_touched, np.float32)
                            for j in range(n_touched):
                                weights[j] = dense[terms[j]]
                            _posted_dots(terms, weights, candidates[i], m, p_starts, p_docs, p_weights, doc_sums, cosines)
                            for c in range(m):
                                cosines[c] /= norm
                        else:
                            for c in range(m):
                                cosines[c] = _dot(dense, candidates[i, c], d_starts, d_ids, d_weights) / norm
                if smooth:
                    _smooth(cosines, smoothed, candidates[i], m, neighbours, by_doc, spread, hops)
                for j in range(n_touched):  # clear what this query set, for the next one
                    t = touched[j]
                    dense[t] = 0
                    bits[t >> 6] = np.uint64(0)
            for c in range(m):
                scores[c] = cosines[c] - penalty_per_bit * float(distances[i, c])
            chosen = _best(scores, m, min(k, m), best)
            for j in range(chosen.shape[0]):
                out[i, j] = chosen[j]
                out_scores[i, j] = scores[chosen[j]]
    return out, out_scores


@njit(inline="always")
def _posted(terms, p_starts):
    """How many postings entries ``terms`` hold."""
    posted = 0
    for t in terms:
        posted += p_starts[t + 1] - p_starts[t]
    return posted


@njit(inline="always")
def _postings_pay(terms, rows, m, d_starts, p_starts):
    """Whether walking the postings of ``terms`` and clearing what it summed (by a
    second walk, or by clearing every document's sum when they are fewer) reads
    fewer entries than the vectors of the ``m`` documents at ``rows``."""
    if p_starts.shape[0] == 0:
        return False
    posted = _posted(terms, p_starts)
    vectors = 0
    for c in range(m):
        vectors += d_starts[rows[c] + 1] - d_starts[rows[c]]
    return posted + min(posted, d_starts.shape[0] - 1) < vectors


@njit(inline="always")
def _posted_dots(terms, weights, rows, m, p_starts, p_docs, p_weights, doc_sums, out):
    """out[:m] <- each document at ``rows``' dot product with the query (``terms``,
    ``weights``), summed in float32 over the postings (``doc_sums`` is all 0 before
    and after)."""
    for j in range(terms.shape[0]):
        t, w = terms[j], weights[j]
        for p in range(p_starts[t], p_starts[t + 1]):
            doc_sums[p_docs[p]] += w * p_weights[p]
    for c in range(m):
        out[c] = np.float64(doc_sums[rows[c]])
    if doc_sums.shape[0] < _posted(terms, p_starts):  # clearing all is the shorter pass
        doc_sums[:] = 0
        return
    for t in terms:
        for p in range(p_starts[t], p_starts[t + 1]):
            doc_sums[p_docs[p]] = 0


@njit(inline="always")
def _best(scores, m, n, out):
    """Positions of the ``n`` highest of ``scores[:m]``, best first, ties in position
    order: ``np.argsort(-scores[:m], kind="mergesort")[:n]``. Few are wanted from a
    long shortlist (10 of 2,000 by default), so keeping a sorted list of the best
    so far beats sorting everything; past 64 wanted, it sorts."""
    if n > 64:
        return np.argsort(-scores[:m], kind="mergesort")[:n]
    if n <= 0:
        return out[:0]
    kept = 0
    for c in range(m):
        x = scores[c]
        if kept == n and not x > scores[out[n - 1]]:
            continue
        j = kept if kept < n else n - 1  # where c goes, moving worse ones down
        while j > 0 and x > scores[out[j - 1]]:
            out[j] = out[j - 1]
            j -= 1
        out[j] = c
        if kept < n:
            kept += 1
    return out[:n]


@njit(inline="always")
def _smooth(cosines, smoothed, rows, m, neighbours, by_doc, spread, hops):
    """cosines[:m] <- each document's cosine plus ``spread`` times the sum of its
    shortlisted neighbours' smoothed scores, ``hops`` times over (``smoothed`` is
    scratch; ``by_doc``, one score per document and one more for the lists' -1s, is
    all 0 before and after).

    Each hop posts the shortlist's scores by document and sums every listed
    neighbour's entry: one not in the shortlist adds 0, which leaves a float sum
    unchanged, so no per-query test of membership is needed (resolving each
    neighbour's slot first was 1.4x slower on 20NG, and the branch on membership,
    a coin flip, 3x)."""
    none = by_doc.shape[0] - 1
    for c in range(m):
        smoothed[c] = cosines[c]
    for _ in range(hops):
        for c in range(m):
            by_doc[rows[c]] = smoothed[c]
        for c in range(m):
            r = rows[c]
            total = 0.0
            for j in range(neighbours.shape[1]):
                nb = neighbours[r, j]
                total += by_doc[nb if nb >= 0 else none]
            smoothed[c] = cosines[c] + spread * total
    for c in range(m):
        by_doc[rows[c]] = 0.0
        cosines[c] = smoothed[c]


@njit(inline="always")
def _touch(dense, bits, touched, n_touched, term, value):
    """dense[term] += value, recording ``term`` the first time; returns the new count."""
    word, bit = term >> 6, np.uint64(1) << np.uint64(term & 63)
    if not bits[word] & bit:
        bits[word] |= bit
        touched[n_touched] = term
        n_touched += 1
    dense[term] += value
    return n_touched


@njit(inline="always")
def _dot(dense, row, starts, ids, weights):
    # float32 and no branch on the bitmap: 1.9x faster than float64 behind a bit
    # test (20NG, 7,532 queries of 1,000 candidates: 5.9 s against 8.8 s, 1 thread).
    s = np.float32(0.0)
    for j in range(starts[row], starts[row + 1]):
        s += dense[ids[j]] * weights[j]
    return np.float64(s)


# ---------------------------------------------------------------- encoding


# Serial: 0.24-0.26 s for the 20NG test batch on one thread or two (bench/threads.py),
# and parallel=True cost 1.5 s of CPU to compile against 0.2.
@njit(cache=True, nogil=True)
def counts_times(counts, W):
    """``counts @ W`` (float32) for rows of word counts, skipping their zeros.

    A document holds few of the vocabulary's words (2.5% of the 2000 on 20NG), so
    BLAS's dense product spends 97% of its work on zeros. Each row adds ``count *
    W[j]`` for its non-zero columns ``j`` in ascending order, in float32: the
    order and precision of scipy's sparse product, which encodes documents at
    indexing, so a text encodes to the same code either way.
    """
    n, d = counts.shape
    out = np.zeros((n, W.shape[1]), np.float32)
    for i in range(n):
        for j in range(d):
            c = counts[i, j]
            if c != 0:
                for h in range(W.shape[1]):
                    out[i, h] += c * W[j, h]
    return out


# ---------------------------------------------------------------- training

@njit(cache=True, nogil=True, error_model="numpy")
def adam_step(param, grad, m, v, beta1, beta2, scale, eps):
    """One Adam update of ``param`` in place, in one pass over the four arrays.

    numpy needs ten passes and their temporaries for the same update; on the
    20NG fine-tuning (2.3 M parameters a head, batches of 100) that was 37% of
    the fine-tuning time. numpy's error model, not Python's: Python's checks each
    division for a zero divisor (here never zero: eps > 0), which kept LLVM from
    vectorizing the loop; the same bits come out 5.6x faster (8.7 -> 1.5 ms a step).
    """
    b1, b2, s, e = np.float32(beta1), np.float32(beta2), np.float32(scale), np.float32(eps)
    for i in range(param.shape[0]):
        g = grad[i]
        m[i] = b1 * m[i] + (np.float32(1) - b1) * g
        v[i] = b2 * v[i] + (np.float32(1) - b2) * g * g
        param[i] -= s * m[i] / (np.sqrt(v[i]) + e)


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_xent(logits, t_indptr, t_indices, t_data, scale):
    """Multinomial cross-entropy of each row's softmax against its sparse target
    counts (CSR), turning ``logits`` in place into the loss's gradient, ``scale``
    times ``N q - target`` (N the row's target total); returns the summed
    ``-sum(target * log q)``.

    One exp per logit and no dense copy of the target: numpy's log-softmax, loss and
    gradient took ten passes over the (batch, 2000) logits, 3.4 ms of a 20NG
    fine-tuning step, and the target's densifying with them.
    """
    loss = 0.0
    for i in range(logits.shape[0]):
        row = logits[i]
        top = row[0]
        for j in range(1, row.shape[0]):
            if row[j] > top:
                top = row[j]
        total, dot, s = 0.0, 0.0, 0.0  # sums in float64 whatever the rows' dtype
        for k in range(t_indptr[i], t_indptr[i + 1]):
            total += t_data[k]
            dot += t_data[k] * (row[t_indices[k]] - top)
        for j in range(row.shape[0]):
            e = np.exp(row[j] - top)
            row[j] = e
            s += e
        loss += total * math.log(s) - dot
        f = scale * total / s
        for j in range(row.shape[0]):
            row[j] *= f
        for k in range(t_indptr[i], t_indptr[i + 1]):
            row[t_indices[k]] -= scale * t_data[k]
    return loss
