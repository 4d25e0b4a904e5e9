"""Search over packed binary codes: checked wrappers around the numba kernels.

Every public function here validates dtypes, shapes, C-contiguity and index ranges,
raises a ``ValueError`` that says what to do, and only then calls a kernel from
``semhash.kernels`` (which trusts its inputs).

A query works in two stages, as in semantic hashing: its short *address* picks a
shortlist from a Hamming ball around it (:class:`AddressTable`), and the shortlist
is ranked by the Hamming distance of the long codes (:func:`topk`). :func:`search`
grows the ball one shell at a time until it holds ``k`` documents. The cost model
only decides *how* the ball is found (enumerating shells, or one scan of the
address column when that is cheaper): the shortlist is the same either way. Every
code is ranked only when even the whole address space holds fewer than ``k``.
"""

import math
import operator

import numpy as np

from semhash import kernels

__all__ = ["AddressTable", "hamming", "topk", "search", "warmup"]

# Rough per-operation costs in nanoseconds, measured on the 2-vCPU EPYC dev VM at
# 10^6 and 10^7 rows (RESEARCH.md C2 and the semhash kernels). Only their ratios
# matter: they turn "ball size x log2(n)" and "n" into comparable estimates.
_NS_PER_PROBE_STEP = 4.0  # one binary-search step: ~2.5 at 10^6 rows, ~6 at 10^7 (cache misses)
_NS_PER_CODE_WORD = 0.35  # one uint64 word of the streaming XOR + popcount scan
_NS_PER_RANKED_ROW = 0.3  # one row of top-k selection after a full scan
_NS_PER_ADDRESS = 0.5  # one address of the linear address scan


def _probe_cost(n_probes: int, n: int) -> float:
    """Estimated cost of ``n_probes`` binary searches in a table of ``n`` addresses."""
    return n_probes * max(1.0, math.log2(max(n, 1))) * _NS_PER_PROBE_STEP


def _code_scan_cost(n: int, n_words: int) -> float:
    """Estimated cost of ranking all ``n`` codes by a full scan."""
    return n * (n_words * _NS_PER_CODE_WORD + _NS_PER_RANKED_ROW)


def _address_scan_cost(n: int) -> float:
    return n * _NS_PER_ADDRESS


def _ball_size(n_bits: int, radius: int) -> int:
    return sum(math.comb(n_bits, d) for d in range(min(radius, n_bits) + 1))


def _check_int(value, name: str, minimum: int = 0) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


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
    return codes


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


def _check_rows(rows, n: int) -> np.ndarray:
    """Validate candidate rows and return them sorted, unique, as int64."""
    rows = np.asarray(rows)
    if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-d array of row indices, got {rows.dtype} of shape {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"rows must lie in [0, {n}), got values from {rows.min()} to {rows.max()}")
    return np.unique(rows.astype(np.int64, copy=False))


class AddressTable:
    """Sorted table of document addresses for Hamming-ball lookup.

    Build it once per loaded index. Lookups enumerate the addresses of a Hamming
    ball and binary-search each one, so their cost depends on the ball size and
    only logarithmically on the number of documents.

    Parameters
    ----------
    addresses : integer array, shape (n_docs,)
        Address of each document (row), each in ``[0, 2**n_bits)``.
    n_bits : int
        Address width, at most 63.

    Attributes
    ----------
    n_bits : int
    addresses : int64 array, shape (n_docs,)
        The addresses in row order.
    sorted_addresses : int64 array, shape (n_docs,)
        The addresses sorted ascending.
    order : int64 array, shape (n_docs,)
        Row of each entry of ``sorted_addresses`` (a stable argsort, so rows that
        share an address stay in ascending order).

    Examples
    --------
    >>> table = AddressTable(np.array([0b101, 0b001, 0b111, 0b101]), n_bits=3)
    >>> table.shell(0b101, 0)
    array([0, 3])
    >>> table.ball(0b101, 1)
    array([0, 3, 1, 2])
    """

    def __init__(self, addresses: np.ndarray, n_bits: int):
        n_bits = _check_int(n_bits, "n_bits")
        if n_bits > 63:
            raise ValueError(f"n_bits must be at most 63 so addresses fit an int64, got {n_bits}")
        addresses = np.asarray(addresses)
        if addresses.ndim != 1:
            raise ValueError(f"addresses must be 1-d (one per document), got shape {addresses.shape}")
        if addresses.size and not np.issubdtype(addresses.dtype, np.integer):
            raise ValueError(
                f"addresses must be integers, got {addresses.dtype}; "
                "build them with semhash.codes.to_addresses"
            )
        if addresses.size and (addresses.min() < 0 or addresses.max() >= 2**n_bits):
            raise ValueError(
                f"addresses must lie in [0, 2**{n_bits}), got values from "
                f"{addresses.min()} to {addresses.max()}; check n_bits"
            )
        self.n_bits = n_bits
        self.addresses = np.ascontiguousarray(addresses, dtype=np.int64)
        self.order = np.argsort(self.addresses, kind="stable").astype(np.int64)
        self.sorted_addresses = np.ascontiguousarray(self.addresses[self.order])

    def __len__(self) -> int:
        return self.addresses.shape[0]

    def __repr__(self) -> str:
        return f"AddressTable(n_docs={len(self)}, n_bits={self.n_bits})"

    def _check_address(self, query_address) -> int:
        query_address = _check_int(query_address, "query_address")
        if query_address >= 2**self.n_bits:
            raise ValueError(f"query_address must lie in [0, 2**{self.n_bits}), got {query_address}")
        return query_address

    def shell(self, query_address: int, distance: int) -> np.ndarray:
        """Rows whose address is at exactly Hamming distance ``distance``.

        Parameters
        ----------
        query_address : int
        distance : int
            Non-negative; above ``n_bits`` the shell is empty.

        Returns
        -------
        int64 array
            Rows grouped by address (addresses in the order they are enumerated),
            ascending within an address.
        """
        query_address = self._check_address(query_address)
        distance = _check_int(distance, "distance")
        return kernels.ball_shell(
            self.sorted_addresses, self.order, query_address, self.n_bits, min(distance, self.n_bits + 1)
        )

    def ball(self, query_address: int, radius: int) -> np.ndarray:
        """Rows whose address is within Hamming distance ``radius``.

        Enumerates the ball shell by shell while that is estimated to be cheaper
        than scanning every address, and scans otherwise; both give the same rows.

        Parameters
        ----------
        query_address : int
        radius : int
            Non-negative; ``radius >= n_bits`` returns every row.

        Returns
        -------
        int64 array
            Rows sorted by address distance, then by row.
        """
        query_address = self._check_address(query_address)
        radius = min(_check_int(radius, "radius"), self.n_bits)
        n = len(self)
        if _probe_cost(_ball_size(self.n_bits, radius), n) <= _address_scan_cost(n):
            return self._ball_by_shells(query_address, radius)
        return self._ball_by_scan(query_address, radius)

    def _ball_by_shells(self, query_address: int, radius: int) -> np.ndarray:
        shells = [
            np.sort(kernels.ball_shell(self.sorted_addresses, self.order, query_address, self.n_bits, d))
            for d in range(radius + 1)
        ]
        return np.concatenate(shells)

    def _ball_by_scan(self, query_address: int, radius: int) -> np.ndarray:
        return self._scan_with_distances(query_address, radius)[0]

    def _scan_with_distances(self, query_address: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``radius`` and their address distances, sorted by (distance, row)."""
        rows = kernels.address_scan(self.addresses, query_address, radius)
        # an address is a one-word code, so the code kernel measures its distance
        as_codes = self.addresses.view(np.uint64).reshape(-1, 1)
        query = np.array([query_address], dtype=np.uint64)
        distances = kernels.hamming_distances_subset(as_codes, rows, query)
        by_distance = np.argsort(distances, kind="stable")  # rows are ascending: ties stay by row
        return rows[by_distance], distances[by_distance]


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
    codes: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes nearest to ``query`` in Hamming distance.

    Parameters
    ----------
    codes : uint64 array, shape (n_codes, n_words), C-contiguous
    query : uint64 array, shape (n_words,)
    k : int
        Non-negative. Fewer rows come back when there are fewer candidates.
    rows : integer array, optional
        Candidate rows (duplicates are ignored). ``None`` scans every code.

    Returns
    -------
    rows : int64 array, shape (min(k, n_candidates),)
        Sorted by distance, ties by ascending row.
    distances : int32 array, same shape
    """
    codes = _check_codes(codes)
    query = _check_query(query, codes.shape[1])
    k = _check_int(k, "k")
    max_distance = 64 * codes.shape[1]
    if rows is None:
        distances = kernels.hamming_distances(codes, query)
        best = kernels.topk_by_distance(distances, k, max_distance)
        return best, distances[best]
    rows = _check_rows(rows, codes.shape[0])
    distances = kernels.hamming_distances_subset(codes, rows, query)
    best = kernels.topk_by_distance(distances, k, max_distance)
    return rows[best], distances[best]


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
    least ``k`` documents, and that shortlist is ranked by code distance. If the
    next shell is estimated to cost more than scanning every code, or the ball
    already covers every address, the whole corpus is ranked instead.

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
    k = _check_int(k, "k")
    if not isinstance(table, AddressTable):
        raise ValueError(f"table must be an AddressTable, got {type(table).__name__}")
    if len(table) != codes.shape[0]:
        raise ValueError(
            f"the address table has {len(table)} rows but codes has {codes.shape[0]}; "
            "build both from the same loaded index"
        )
    query_address = table._check_address(query_address)
    limit = table.n_bits if max_radius is None else min(_check_int(max_radius, "max_radius"), table.n_bits)
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int32), 0

    n = len(table)
    address_scan_cost = _address_scan_cost(n)
    shells = []
    found = 0
    for radius in range(limit + 1):
        if _probe_cost(math.comb(table.n_bits, radius), n) > address_scan_cost:
            # Same shortlist, found by scanning the address column once.
            return _search_by_address_scan(table, codes, query_address, query_code, k, limit, max_radius is None)
        shell = kernels.ball_shell(table.sorted_addresses, table.order, query_address, table.n_bits, radius)
        shells.append(shell)
        found += shell.shape[0]
        if found >= k:
            break
    else:
        if max_radius is None:  # the ball is the whole corpus and still too small
            return (*topk(codes, query_code, k), -1)
    return (*topk(codes, query_code, k, rows=np.concatenate(shells)), radius)


def _search_by_address_scan(table, codes, query_address, query_code, k, limit, fallback):
    """Search within radius ``limit`` when enumerating shells costs more than scanning.

    Scans the addresses once and picks the smallest radius whose ball holds ``k``
    rows: the same shortlist as growing shell by shell. With ``fallback``, a corpus
    smaller than ``k`` is ranked whole (radius -1), as :func:`search` does.
    """
    rows, distances = table._scan_with_distances(query_address, limit)
    if fallback and rows.shape[0] < k:
        return (*topk(codes, query_code, k), -1)
    radius = int(distances[k - 1]) if rows.shape[0] >= k else limit
    return (*topk(codes, query_code, k, rows=rows[distances <= radius]), radius)


def warmup() -> None:
    """Run every kernel once on tiny arrays of the exact dtypes.

    With ``cache=True`` this fills numba's on-disk cache (``NUMBA_CACHE_DIR``
    moves it for read-only installs), so the first real query loads object
    code instead of compiling. ``semhash index`` calls it at the end.
    """
    codes = np.zeros((2, 4), dtype=np.uint64)
    query = np.zeros(4, dtype=np.uint64)
    rows = np.arange(2, dtype=np.int64)
    distances = kernels.hamming_distances(codes, query)
    kernels.hamming_distances_subset(codes, rows, query)
    codes.flags.writeable = False  # codes loaded from a buffer are read-only
    kernels.hamming_distances(codes, query)
    kernels.hamming_distances_subset(codes, rows, query)
    kernels.topk_by_distance(distances, 1, 256)
    addresses = np.array([0, 3], dtype=np.int64)
    kernels.ball_shell(addresses, rows, 1, 2, 1)
    kernels.address_scan(addresses, 1, 1)
