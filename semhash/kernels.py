"""Numba kernels for semhash: Hamming distances, top-k selection and Hamming-ball lookup.

Every ``@njit`` of the project lives in this file, and this file imports only numpy
and numba. Numba invalidates its on-disk cache by *source file* and freezes globals
at compile time, so a kernel that reached into another semhash module could silently
keep running stale code. The kernels take only arrays and integers and return arrays.
They do not validate their inputs: call them through ``semhash.search``, which checks
dtypes, contiguity, shapes and index ranges first.

The hot kernels have explicit signatures over C-contiguous arrays, so importing this
module compiles them (or, with a warm cache, loads their object code).

Conventions (see ``semhash.codes``): a code is a row of ``uint64`` words and bit ``j``
is bit ``j % 64`` of word ``j // 64``; an address is a non-negative ``int64``.
"""

import numba
import numpy as np
from numba import njit, types
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


_u64 = types.uint64
_CODES = types.Array(_u64, 2, "C")
_CODES_RO = types.Array(_u64, 2, "C", readonly=True)
_WORDS = types.Array(_u64, 1, "C")
_I32 = types.Array(types.int32, 1, "C")
_I64 = types.Array(types.int64, 1, "C")


@njit(
    [_I32(_CODES, _WORDS), _I32(_CODES_RO, _WORDS)],
    cache=True,
    nogil=True,
)
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


@njit(
    [_I32(_CODES, _I64, _WORDS), _I32(_CODES_RO, _I64, _WORDS)],
    cache=True,
    nogil=True,
)
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


@njit(_I64(_I32, types.int64, types.int64), cache=True, nogil=True)
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


@njit(inline="always")
def _lower_bound(sorted_values, x):
    """First index ``i`` with ``sorted_values[i] >= x`` (``len`` if none).

    Branch-free halving (the compare becomes a conditional move), so the
    probes of one shell overlap their cache misses instead of stalling on
    mispredicted branches.
    """
    n = sorted_values.shape[0]
    if n == 0:
        return 0
    base = 0
    length = n
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


@njit(_I64(_I64, _I64, types.int64, types.int64, types.int64), cache=True, nogil=True)
def ball_shell(sorted_addresses, order, query_address, n_bits, distance):
    """Rows whose address is at exactly Hamming distance ``distance`` from the query.

    Enumerates the ``C(n_bits, distance)`` masks with ``distance`` bits set in
    increasing numeric order (Gosper's hack), and binary-searches
    ``query_address ^ mask`` in the sorted table for each.

    Parameters
    ----------
    sorted_addresses : int64 array, shape (n,)
        Addresses sorted ascending, each in ``[0, 2**n_bits)``.
    order : int64 array, shape (n,)
        ``order[i]`` is the row of ``sorted_addresses[i]`` (a stable argsort).
    query_address : int
        In ``[0, 2**n_bits)``.
    n_bits : int
        Address width, ``0 <= n_bits <= 63``.
    distance : int
        Outside ``[0, n_bits]`` the shell is empty.

    Returns
    -------
    int64 array
        Rows in enumeration order of their address, then in table order.
    """
    n = sorted_addresses.shape[0]
    if n == 0 or distance < 0 or distance > n_bits:
        return np.empty(0, np.int64)
    # [start, stop) runs of the sorted table that matched, grown by doubling
    starts = np.empty(16, np.int64)
    stops = np.empty(16, np.int64)
    n_runs = 0
    total = 0
    query = np.uint64(query_address)
    limit = np.uint64(1) << np.uint64(n_bits)
    mask = (np.uint64(1) << np.uint64(distance)) - np.uint64(1)
    while mask < limit:
        probe = np.int64(query ^ mask)
        lo = _lower_bound(sorted_addresses, probe)
        if lo < n and sorted_addresses[lo] == probe:
            hi = lo + 1
            while hi < n and sorted_addresses[hi] == probe:
                hi += 1
            if n_runs == starts.shape[0]:
                grown_starts = np.empty(2 * n_runs, np.int64)
                grown_stops = np.empty(2 * n_runs, np.int64)
                grown_starts[:n_runs] = starts
                grown_stops[:n_runs] = stops
                starts = grown_starts
                stops = grown_stops
            starts[n_runs] = lo
            stops[n_runs] = hi
            n_runs += 1
            total += hi - lo
        if mask == 0:
            break
        mask = _next_combination(mask)
    out = np.empty(total, np.int64)
    pos = 0
    for r in range(n_runs):
        for i in range(starts[r], stops[r]):
            out[pos] = order[i]
            pos += 1
    return out


@njit(_I64(_I64, types.int64, types.int64), cache=True, nogil=True)
def address_scan(addresses, query_address, max_distance):
    """Rows whose address is within Hamming distance ``max_distance``, by a linear scan.

    Cheaper than enumerating the ball once the ball is large compared with the
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
    for i in range(n):
        if _popcount(addresses[i] ^ query_address) <= max_distance:
            hits[m] = i
            m += 1
    return hits[:m].copy()
