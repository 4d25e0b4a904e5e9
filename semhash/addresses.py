"""The address table: the documents' short codes sorted and bucketed, for finding
the Hamming ball around a query's address a shell at a time, or the whole ball
from two half-tables (multi-index hashing), or by one scan of the addresses when
that costs less (the cost model below decides only how, never what: the ball is
the same either way)."""

import math
import operator
from functools import cached_property

import numpy as np

from semhash.lazy import kernels  # loaded on first use: a one-shot query never needs numba

# Rough per-operation costs in nanoseconds, measured on the 2-vCPU EPYC dev VM with
# uniform 28-bit addresses at 10^5 to 10^7 documents. Only their ratios matter: they
# turn "buckets visited" and "n" into comparable estimates.
_NS_PER_BUCKET = 35.0  # one bucket visit of kernels.ball_shell while the table fits in L2/L3 ...
_NS_PER_BUCKET_PER_DOUBLING = 11.0  # ... plus this per doubling of the table beyond 2 MB (misses)
_CACHED_TABLE_BYTES = 2**21
_NS_PER_ADDRESS = 1.0  # one address of the address-column search: a histogram pass, then a scan
_SPARE_BITS = 2  # the directory has 2**(floor(log2(n)) - 2) buckets: 4 to 8 addresses each
# kernels.ball_halves: a bucket of either half-table (its bounds, then a run that
# starts on a cold cache line), one 2-byte entry of a run (a vectorized pass), and
# one row of the ball (gathered, its row looked up, sorted); the address scan's
# cost per row of the ball (its distance, a sort). Measured at 10^4 to 10^7
# addresses, radius 0 to 10: per row, 70-86 ns and 40-70 ns.
_NS_PER_HALF_BUCKET = 40.0
_NS_PER_HALF_ENTRY = 0.4
_NS_PER_HALF_ROW = 80.0
_NS_PER_SCANNED_ROW = 50.0
_MAX_HALF_BITS = 16  # the halves are uint16: addresses of at most 32 bits
_PLAN_CODES = {"shells": 0, "halves": 1, "scan": 2}  # as kernels._ball_rows reads them


def _prefix_bits(n: int, n_bits: int) -> int:
    """Directory width for ``n`` addresses: ``floor(log2(n)) - 2`` bits, within ``[0, n_bits]``."""
    return min(n_bits, max(0, n.bit_length() - 1 - _SPARE_BITS))


def shell_cost(table: "AddressTable", distance: int) -> float:
    """Estimated cost of ``table.shell(query, distance)``, for addresses spread evenly.

    The shell visits every bucket whose prefix differs from the query's in ``j``
    bits, for each ``j`` that leaves at most the low bits to flip.
    """
    p, low_bits = table.prefix_bits, table.n_bits - table.prefix_bits
    visits = sum(math.comb(p, j) for j in range(max(0, distance - low_bits), min(distance, p) + 1))
    table_bytes = 8 * (len(table) + 2**p + 1)  # the sorted addresses and the directory
    doublings = max(0.0, math.log2(max(table_bytes, 1) / _CACHED_TABLE_BYTES))
    return visits * (_NS_PER_BUCKET + doublings * _NS_PER_BUCKET_PER_DOUBLING)


def address_scan_cost(n: int) -> float:
    return n * _NS_PER_ADDRESS


def _keys_within(key_bits: int, radius: int) -> int:
    """How many ``key_bits``-bit keys lie within Hamming distance ``radius`` of one key."""
    return sum(math.comb(key_bits, j) for j in range(min(radius, key_bits) + 1)) if radius >= 0 else 0


def halves_cost(n: int, n_bits: int, high_radius: int, low_radius: int) -> float:
    """Estimated cost of :func:`semhash.kernels.ball_halves` with these radii, for
    ``n`` addresses spread evenly: the buckets it visits in each half-table, and
    their entries."""
    low_bits = n_bits // 2
    high_bits = n_bits - low_bits
    buckets = (_keys_within(high_bits, high_radius), _keys_within(low_bits, low_radius))
    entries = n * (buckets[0] / 2**high_bits + buckets[1] / 2**low_bits)
    return sum(buckets) * _NS_PER_HALF_BUCKET + entries * _NS_PER_HALF_ENTRY


def halves_radii(n: int, n_bits: int, radius: int) -> tuple[int, int]:
    """The cheapest ``(high_radius, low_radius)`` for a ball of ``radius``: the first
    half-table alone (``(radius, -1)``), or both with radii adding up to ``radius - 1``."""
    choices = [(radius, -1)] + [(high, radius - 1 - high) for high in range(radius)]
    return min(choices, key=lambda radii: halves_cost(n, n_bits, *radii))


def _starts(keys: np.ndarray, key_bits: int) -> np.ndarray:
    """Where each key's run starts in ``keys`` grouped by key, and the end: shape (2**key_bits + 1,)."""
    starts = np.zeros(2**key_bits + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=2**key_bits), out=starts[1:])
    return starts


def check_int(value, name: str, minimum: int = 0) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


class AddressTable:
    """Sorted table of document addresses for Hamming-ball lookup.

    Build it once per loaded index. The sorted addresses are bucketed by their top
    ``prefix_bits`` bits (about ``log2(n_docs) - 2``, so 4 to 8 addresses per
    bucket), and a directory holds where each bucket starts. A shell lookup visits
    the buckets whose prefix is near enough to the query's and scans each one, so
    it costs about two cache misses per bucket visited, whatever the number of
    documents (see :func:`semhash.kernels.ball_shell`).

    A whole ball of addresses of at most 32 bits is found from two more tables,
    built on first use: the addresses bucketed by their high half, and by their
    low half, each entry keeping the other half as 2 bytes (12 bytes per document
    in all, with the rows of the second table). An address within ``r`` of the
    query is within ``r // 2`` of it in one of its halves, so a ball reads a few
    long runs of entries instead of visiting many scattered buckets (see
    :func:`semhash.kernels.ball_halves`). :meth:`prepare` builds every table now.

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
    prefix_bits : int
        Width of the directory key: the top ``prefix_bits`` bits of an address.
    bucket_starts : int64 array, shape (2**prefix_bits + 1,)
        Bucket ``b`` is ``sorted_addresses[bucket_starts[b]:bucket_starts[b + 1]]``.

    Examples
    --------
    >>> table = AddressTable(np.array([0b101, 0b001, 0b111, 0b101]), n_bits=3)
    >>> table.shell(0b101, 0)
    array([0, 3])
    >>> table.ball(0b101, 1)
    array([0, 3, 1, 2])
    """

    def __init__(self, addresses: np.ndarray, n_bits: int):
        n_bits = check_int(n_bits, "n_bits")
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
        self.prefix_bits = _prefix_bits(self.addresses.shape[0], n_bits)
        self._ball_plans: dict[int, tuple] = {}

    # The sorted table is built on first use: a query answered by numpy scans
    # `addresses` and never needs it (a sort of 10^7 addresses takes about a second).
    @cached_property
    def order(self) -> np.ndarray:
        return np.argsort(self.addresses, kind="stable").astype(np.int64)

    @cached_property
    def sorted_addresses(self) -> np.ndarray:
        return np.ascontiguousarray(self.addresses[self.order])

    @cached_property
    def bucket_starts(self) -> np.ndarray:
        per_bucket = np.bincount(self.sorted_addresses >> (self.n_bits - self.prefix_bits), minlength=2**self.prefix_bits)
        starts = np.zeros(2**self.prefix_bits + 1, dtype=np.int64)
        np.cumsum(per_bucket, out=starts[1:])
        return starts

    # The half-tables of kernels.ball_halves, also built on first use. The low half is
    # the low n_bits // 2 bits; each table keeps of an address the half it is not
    # bucketed by, as uint16.
    @cached_property
    def _by_high(self) -> tuple[np.ndarray, np.ndarray]:
        """(low halves in address order, starts of each high half's bucket)."""
        low_bits = self.n_bits // 2
        low_halves = self.sorted_addresses.astype(np.uint16) & np.uint16(2**low_bits - 1)  # the cast keeps 16 bits
        return low_halves, _starts(self.sorted_addresses >> low_bits, self.n_bits - low_bits)

    @cached_property
    def _by_low(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(high halves grouped by low half, starts of each low half's bucket, their rows)."""
        low_bits = self.n_bits // 2
        low = self._by_high[0]
        by_low = np.argsort(low, kind="stable")  # uint16 keys: a radix sort
        high_halves = (self.sorted_addresses >> low_bits).astype(np.uint16)[by_low]
        return high_halves, _starts(low, low_bits), np.ascontiguousarray(self.order[by_low])

    def prepare(self) -> "AddressTable":
        """Build now every table that :meth:`ball`, :meth:`shell` and
        ``search.search_many`` build on first use (about 3 s for 10^7 addresses);
        returns the table."""
        self.bucket_starts
        if self.n_bits <= 2 * _MAX_HALF_BITS:
            self._by_low  # and _by_high
        return self

    def __len__(self) -> int:
        return self.addresses.shape[0]

    def __repr__(self) -> str:
        return f"AddressTable(n_docs={len(self)}, n_bits={self.n_bits}, prefix_bits={self.prefix_bits})"

    def _check_address(self, query_address) -> int:
        query_address = check_int(query_address, "query_address")
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
            The rows, ascending.
        """
        query_address = self._check_address(query_address)
        distance = check_int(distance, "distance")
        return np.sort(self._shell(query_address, min(distance, self.n_bits + 1)))

    def _shell(self, query_address: int, distance: int) -> np.ndarray:
        """The rows of a shell in the kernel's (bucket) order; arguments already checked."""
        return kernels.ball_shell(
            self.sorted_addresses,
            self.order,
            self.bucket_starts,
            self.prefix_bits,
            query_address,
            self.n_bits,
            distance,
        )

    def ball(self, query_address: int, radius: int) -> np.ndarray:
        """Rows whose address is within Hamming distance ``radius``.

        Reads the buckets of the two half-tables near the query's halves (for
        addresses of more than 32 bits, visits the ball shell by shell) while that
        is estimated to be cheaper than scanning every address, and scans
        otherwise; all give the same rows.

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
        radius = min(check_int(radius, "radius"), self.n_bits)
        plan = self._plan(radius)
        if plan[0] == "halves":
            return self._ball_by_halves(query_address, radius, *plan[1:])
        if plan[0] == "shells":
            return self._ball_by_shells(query_address, radius)
        return self._ball_by_scan(query_address, radius)

    def ball_method(self, radius: int) -> str:
        """How :meth:`ball` finds a ball of ``radius``: ``"halves"`` (the buckets of
        two half-tables, :func:`semhash.kernels.ball_halves`), ``"shells"`` (the
        buckets of each shell) or ``"scan"`` (every address)."""
        return self._ball_plan(min(check_int(radius, "radius"), self.n_bits))[0]

    def _ball_plan(self, radius: int) -> tuple:
        """The cheapest way to the ball by the cost model: ``("halves", high_radius,
        low_radius)``, ``("shells",)`` or ``("scan",)``."""
        n = len(self)
        if self.n_bits > 2 * _MAX_HALF_BITS:
            shells = sum(shell_cost(self, d) for d in range(radius + 1))
            return ("shells",) if shells <= address_scan_cost(n) else ("scan",)
        radii = halves_radii(n, self.n_bits, radius)
        rows = n * _keys_within(self.n_bits, radius) / 2**self.n_bits  # addresses spread evenly
        halves = halves_cost(n, self.n_bits, *radii) + rows * _NS_PER_HALF_ROW
        scan = address_scan_cost(n) + rows * _NS_PER_SCANNED_ROW
        return ("halves", *radii) if halves <= scan else ("scan",)

    def ball_plans(self, limit: int) -> np.ndarray:
        """How :func:`semhash.kernels.search_batch` grows a ball to each radius up to
        ``limit``, as :meth:`ball` finds it (the cost model's choice): int64 rows of
        (0 for a shell's buckets, 1 for the half-tables, 2 for a scan; the half-tables'
        high and low radii)."""
        plans = [self._plan(r) for r in range(limit + 1)]
        return np.array([(_PLAN_CODES[p[0]], *(p[1:] or (0, 0))) for p in plans], np.int64).reshape(-1, 3)

    def _plan(self, radius: int) -> tuple:
        return self._ball_plans.get(radius) or self._ball_plans.setdefault(radius, self._ball_plan(radius))

    def half_tables(self, second: bool = True) -> tuple:
        """The arguments of :func:`semhash.kernels.ball_halves` before the query; without
        ``second``, or for addresses of more than 32 bits (no half-tables), empty
        tables stand for those not built."""
        if self.n_bits > 2 * _MAX_HALF_BITS:
            halves, starts, rows = np.zeros(0, np.uint16), np.zeros(1, np.int64), self.order[:0]
            return (halves, starts, self.order, halves, starts, rows, 0)
        rest = self._by_low if second else (self._by_high[0][:0], self._by_high[1][:1], self.order[:0])
        return (*self._by_high, self.order, *rest, self.n_bits // 2)

    def _ball_by_halves(self, query_address: int, radius: int, high_radius: int, low_radius: int) -> np.ndarray:
        return kernels.ball_halves(*self.half_tables(low_radius >= 0), query_address, radius, high_radius, low_radius)

    def _ball_by_shells(self, query_address: int, radius: int) -> np.ndarray:
        return np.concatenate([np.sort(self._shell(query_address, d)) for d in range(radius + 1)])

    def _ball_by_scan(self, query_address: int, radius: int) -> np.ndarray:
        return self._scan_with_distances(query_address, radius)[0]

    def _scan_with_distances(self, query_address: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``radius`` and their address distances, sorted by (distance, row)."""
        rows = kernels.address_scan(self.addresses, query_address, radius)
        # an address is a one-word code, so the code kernel measures its distance
        as_codes = read_only(self.addresses.view(np.uint64).reshape(-1, 1))
        query = np.array([query_address], dtype=np.uint64)
        distances = kernels.hamming_distances_subset(as_codes, rows, query)
        by_distance = np.argsort(distances, kind="stable")  # rows are ascending: ties stay by row
        return rows[by_distance], distances[by_distance]
