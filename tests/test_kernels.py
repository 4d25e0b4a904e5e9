"""Kernels against tests/naive.py. Sizes stay small so NUMBA_DISABLE_JIT=1 runs are quick."""

import math

import numpy as np
import pytest

import naive
from semhash import kernels


def random_words(rng, n, n_words):
    return rng.integers(0, 2**64, size=(n, n_words), dtype=np.uint64)


def sorted_table(addresses):
    addresses = np.asarray(addresses, dtype=np.int64)
    order = np.argsort(addresses, kind="stable").astype(np.int64)
    return addresses[order], order


@pytest.mark.parametrize("n_words", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_hamming_distances_matches_naive(n, n_words):
    rng = np.random.default_rng(10 * n + n_words)
    codes = random_words(rng, n, n_words)
    query = random_words(rng, 1, n_words)[0]
    got = kernels.hamming_distances(codes, query)
    assert got.dtype == np.int32 and got.shape == (n,)
    np.testing.assert_array_equal(got, naive.hamming(codes, query))


def test_hamming_distances_extremes():
    codes = np.zeros((3, 4), dtype=np.uint64)
    codes[1] = np.uint64(2**64 - 1)
    codes[2, 3] = np.uint64(1 << 63)
    query = np.zeros(4, dtype=np.uint64)
    assert kernels.hamming_distances(codes, query).tolist() == [0, 256, 1]
    assert kernels.hamming_distances(codes, ~query).tolist() == [256, 0, 255]


def test_hamming_distances_read_only_codes():
    rng = np.random.default_rng(0)
    codes = random_words(rng, 50, 4)
    query = codes[7].copy()
    codes.flags.writeable = False
    got = kernels.hamming_distances(codes, query)
    np.testing.assert_array_equal(got, naive.hamming(codes, query))
    assert got[7] == 0
    rows = np.array([7, 0, 7], dtype=np.int64)
    np.testing.assert_array_equal(kernels.hamming_distances_subset(codes, rows, query), got[rows])


@pytest.mark.parametrize("n_words", [1, 4, 5])
def test_hamming_distances_subset_matches_naive(n_words):
    rng = np.random.default_rng(n_words)
    codes = random_words(rng, 200, n_words)
    query = random_words(rng, 1, n_words)[0]
    rows = rng.integers(0, 200, size=80).astype(np.int64)  # unsorted, with repeats
    got = kernels.hamming_distances_subset(codes, rows, query)
    np.testing.assert_array_equal(got, naive.hamming(codes[rows], query))
    assert kernels.hamming_distances_subset(codes, np.zeros(0, np.int64), query).shape == (0,)


@pytest.mark.parametrize("k", [0, 1, 5, 49, 50, 51, 1000])
@pytest.mark.parametrize("spread", [0, 3, 256])
def test_topk_by_distance_matches_stable_sort(k, spread):
    rng = np.random.default_rng(k + spread)
    distances = rng.integers(0, spread + 1, size=50).astype(np.int32)  # many ties
    got = kernels.topk_by_distance(distances, k, 256)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, naive.topk_indices(distances, k))


@pytest.mark.parametrize("k", [1, 10, 100, 700, 2999, 3000])
def test_topk_by_distance_sampled_cutoff_path(k):
    # big enough that the sampled cut-off and the candidate pass are used
    rng = np.random.default_rng(k)
    distances = rng.binomial(256, 0.5, size=3000).astype(np.int32)
    np.testing.assert_array_equal(kernels.topk_by_distance(distances, k, 256), naive.topk_indices(distances, k))


def test_topk_by_distance_strided_sample():
    rng = np.random.default_rng(1)
    distances = rng.integers(100, 140, size=140_000).astype(np.int32)  # sample stride 2, heavy ties
    for k in [1, 37, 500]:
        np.testing.assert_array_equal(kernels.topk_by_distance(distances, k, 256), naive.topk_indices(distances, k))


def test_topk_by_distance_recovers_when_the_sample_misjudges_the_tail():
    # stride 4: the 40 near rows all sit on sampled positions, so the sample
    # predicts 160 rows at distance 1 where there are only 40 (< k = 45)
    distances = np.full(4 * 65536, 9, dtype=np.int32)
    distances[0:160:4] = 1
    distances[-5:] = 3
    got = kernels.topk_by_distance(distances, 45, 256)
    np.testing.assert_array_equal(got, naive.topk_indices(distances, 45))
    assert got[40:].tolist() == list(range(4 * 65536 - 5, 4 * 65536))


def test_topk_by_distance_all_equal_keeps_index_order():
    distances = np.full(10, 7, dtype=np.int32)
    assert kernels.topk_by_distance(distances, 4, 256).tolist() == [0, 1, 2, 3]


def test_topk_by_distance_tie_at_cutoff_takes_lowest_indices():
    distances = np.array([5, 1, 5, 0, 5, 1], dtype=np.int32)
    assert kernels.topk_by_distance(distances, 4, 8).tolist() == [3, 1, 5, 0]


def test_topk_by_distance_edges():
    assert kernels.topk_by_distance(np.zeros(0, np.int32), 3, 256).shape == (0,)
    assert kernels.topk_by_distance(np.array([256, 0], np.int32), -1, 256).shape == (0,)
    assert kernels.topk_by_distance(np.array([256, 0], np.int32), 5, 256).tolist() == [1, 0]


def test_topk_by_distance_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        kernels.topk_by_distance(np.array([0, 9], np.int32), 1, 8)


def tied_words(rng, n, n_words, n_distinct):
    """Rows drawn from a few distinct codes: distances tie a lot."""
    return random_words(rng, n_distinct, n_words)[rng.integers(0, n_distinct, size=n)]


SCAN_CASES = [
    # (n, n_words, distinct codes or 0 for all random)
    (0, 4, 0),
    (1, 4, 0),
    (7, 4, 0),
    (300, 4, 0),
    (3000, 4, 0),  # many compactions of the candidate buffer
    (3000, 4, 5),  # heavy ties at the cut-off
    (600, 1, 0),
    (500, 3, 4),
    (400, 5, 0),
    (50, 0, 0),  # 0-bit codes: every distance is 0
]


@pytest.mark.parametrize("n, n_words, n_distinct", SCAN_CASES)
@pytest.mark.parametrize("k", [0, 1, 10, 100, 5000])
def test_topk_scan_matches_naive(n, n_words, n_distinct, k):
    rng = np.random.default_rng(n + 7 * n_words + k)
    codes = tied_words(rng, n, n_words, n_distinct) if n_distinct else random_words(rng, n, n_words)
    query = random_words(rng, 1, n_words)[0]
    rows, distances = kernels.topk_scan(codes, query, k)
    assert rows.dtype == np.int64 and distances.dtype == np.int32
    expected_rows, expected_distances = naive.topk(codes, query, k)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)


def test_topk_scan_duplicates_of_the_query_and_all_equal_codes():
    rng = np.random.default_rng(3)
    codes = random_words(rng, 500, 4)
    codes[[400, 20, 321]] = codes[77]  # three exact copies of row 77, scattered
    rows, distances = kernels.topk_scan(codes, codes[77].copy(), 3)
    assert rows.tolist() == [20, 77, 321] and distances.tolist() == [0, 0, 0]
    same = np.zeros((1000, 4), dtype=np.uint64)
    rows, distances = kernels.topk_scan(same, np.ones(4, np.uint64), 300)
    assert rows.tolist() == list(range(300)) and set(distances.tolist()) == {4}


def test_topk_scan_extreme_distances():
    rng = np.random.default_rng(8)
    codes = random_words(rng, 600, 4)
    query = codes[10].copy()
    codes[300] = ~query  # distance 256: all four 16-bit counts at 64
    rows, distances = kernels.topk_scan(codes, query, 600)
    assert rows[0] == 10 and distances[0] == 0 and rows[-1] == 300 and distances[-1] == 256
    np.testing.assert_array_equal(distances, naive.topk(codes, query, 600)[1])


def test_topk_scan_read_only_codes_and_negative_k():
    rng = np.random.default_rng(4)
    codes = random_words(rng, 100, 4)
    codes.flags.writeable = False
    query = random_words(rng, 1, 4)[0]
    np.testing.assert_array_equal(kernels.topk_scan(codes, query, 9)[0], naive.topk(codes, query, 9)[0])
    assert kernels.topk_scan(codes, query, -3)[0].shape == (0,)


def topk_batch(codes, queries, k, n_threads):
    """kernels.topk_batch on read-only views, as search.topk_batch calls it (one compiled variant)."""
    codes, queries = codes.view(), queries.view()
    codes.flags.writeable = queries.flags.writeable = False
    return kernels.topk_batch(codes, queries, k, n_threads)


BATCH_CASES = [
    # (n, n_words, n_queries, distinct codes or 0): n_words 4 with >= 2 queries in a part takes the transposed path
    (0, 4, 3, 0),
    (5, 4, 4, 0),
    (700, 4, 1, 0),
    (700, 4, 2, 0),
    (700, 4, 3, 0),
    (2000, 4, 9, 0),
    (2000, 4, 6, 3),
    (300, 2, 5, 0),
    (300, 5, 4, 6),
    (20, 0, 3, 0),
]


@pytest.mark.parametrize("n, n_words, n_queries, n_distinct", BATCH_CASES)
@pytest.mark.parametrize("k", [0, 1, 17, 400, 10_000])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_topk_batch_matches_naive(n, n_words, n_queries, n_distinct, k, n_threads):
    rng = np.random.default_rng(n + n_words + n_queries + k)
    codes = tied_words(rng, n, n_words, n_distinct) if n_distinct else random_words(rng, n, n_words)
    queries = random_words(rng, n_queries, n_words)
    if n:
        queries[0] = codes[n // 2]  # an exact match
    rows, distances = topk_batch(codes, queries, k, n_threads)
    assert rows.dtype == np.int64 and distances.dtype == np.int32
    assert rows.shape == distances.shape == (n_queries, min(k, n))
    expected_rows, expected_distances = naive.topk_batch(codes, queries, k)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)


def test_topk_batch_no_queries_and_read_only_codes():
    rng = np.random.default_rng(5)
    codes = random_words(rng, 50, 4)
    rows, distances = topk_batch(codes, np.zeros((0, 4), np.uint64), 5, 2)
    assert rows.shape == distances.shape == (0, 5)
    codes.flags.writeable = False
    queries = random_words(rng, 3, 4)
    np.testing.assert_array_equal(topk_batch(codes, queries, 5, 1)[0], naive.topk_batch(codes, queries, 5)[0])
    assert topk_batch(codes, queries, 5, 0)[0].shape == (3, 5)  # 0 parts means 1


def test_topk_batch_split_by_rows():
    # fewer than 2 queries per part and more than 2 * _MIN_CHUNK rows: prange splits
    # the rows into chunks whose candidates are merged
    rng = np.random.default_rng(6)
    n = 2 * kernels._MIN_CHUNK + 999
    codes = tied_words(rng, n, 4, 50)  # ties across chunk borders
    queries = np.concatenate([codes[[5, n - 1]], random_words(rng, 2, 4)])
    # n_threads 1: by queries; 3: 4 queries < 2 * 3, so 2 chunks of rows
    for k, n_threads in [(70, 1), (70, 3), (1, 3)]:
        expected_rows, expected_distances = naive.topk_batch(codes, queries, k)
        rows, distances = topk_batch(codes, queries, k, n_threads)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(distances, expected_distances)
    np.testing.assert_array_equal(topk_batch(codes, queries[1:2], 1, 2)[0], expected_rows[1:2])


@pytest.mark.parametrize("scan", ["_scan_rows", "_scan_rows_transposed"])
def test_chunk_scans_merge_like_one_scan(scan):
    # what topk_batch does with many chunks, on a small table: split, scan, merge
    rng = np.random.default_rng(7)
    codes = tied_words(rng, 1500, 4, 12)
    queries = random_words(rng, 4, 4)
    k, width = 30, 257
    bounds_at = [0, 1, 31, 700, 1499, 1500]  # chunks of 1, 30, 669, 799, 1 rows
    chunks = [kernels._new_candidates(4, k, width) for _ in bounds_at[1:]]
    for c, state in enumerate(chunks):
        getattr(kernels, scan)(codes, queries, bounds_at[c], bounds_at[c + 1], k, *state)
        rows, dists, counts, bounds, hists, below = state
        for j in range(4):  # the bookkeeping of _admit holds after the scan
            assert min(k, bounds_at[c + 1] - bounds_at[c]) <= counts[j] < rows.shape[1]
            np.testing.assert_array_equal(hists[j], np.bincount(dists[j, : counts[j]], minlength=width))
            assert below[j] == (dists[j, : counts[j]] < bounds[j]).sum() < k
            assert np.all(np.diff(rows[j, : counts[j]]) > 0)
    rows, dists, counts = (np.stack([state[i] for state in chunks]) for i in range(3))
    expected_rows, expected_distances = naive.topk_batch(codes, queries, k)
    for j in range(4):
        out_rows, out_dists = np.empty(k, np.int64), np.empty(k, np.int32)
        kernels._merge(rows[:, j], dists[:, j], counts[:, j], k, width, out_rows, out_dists)
        np.testing.assert_array_equal(out_rows, expected_rows[j])
        np.testing.assert_array_equal(out_dists, expected_distances[j])


def bucketed_table(addresses, n_bits, prefix_bits):
    """(sorted addresses, order, bucket starts) as search.AddressTable builds them, by searchsorted."""
    sorted_addresses, order = sorted_table(addresses)
    low_bits = n_bits - prefix_bits
    firsts = np.searchsorted(sorted_addresses, np.arange(2**prefix_bits, dtype=np.int64) << low_bits)
    return sorted_addresses, order, np.append(firsts, len(sorted_addresses)).astype(np.int64)


def shell(addresses, n_bits, prefix_bits, query, distance):
    table = bucketed_table(addresses, n_bits, prefix_bits)
    got = kernels.ball_shell(*table, prefix_bits, query, n_bits, distance)
    assert got.dtype == np.int64
    assert len(set(got.tolist())) == got.shape[0]  # no row twice
    return np.sort(got)


ADDRESS_CASES = [
    # (n_bits, n_docs, address range): dense tables with many duplicates, and sparse ones
    (4, 60, 16),
    (10, 500, 2**10),
    (12, 300, 64),
    (16, 400, 2**16),
]


@pytest.mark.parametrize("n_bits, n_docs, high", ADDRESS_CASES)
def test_ball_shell_matches_naive(n_bits, n_docs, high):
    rng = np.random.default_rng(n_bits)
    addresses = rng.integers(0, high, size=n_docs)
    queries = [0, int(addresses[0]), int(rng.integers(0, 2**n_bits)), 2**n_bits - 1]
    # no directory, the usual one (log2(n) - 2 bits), one bucket per address
    for prefix_bits in sorted({0, min(n_bits, int(np.log2(n_docs)) - 2), n_bits}):
        for query in queries:
            seen = []
            for distance in range(min(n_bits, 4) + 1):
                got = shell(addresses, n_bits, prefix_bits, query, distance)
                np.testing.assert_array_equal(got, naive.shell(addresses, query, distance))
                seen.extend(got.tolist())
            assert len(seen) == len(set(seen))


def test_ball_shell_covers_every_shell_of_a_small_space():
    n_bits = 6
    addresses = np.arange(2**n_bits).repeat(2)  # every address, twice
    query = 0b101101
    for prefix_bits in [0, 3, 6]:
        for distance in range(n_bits + 1):
            got = shell(addresses, n_bits, prefix_bits, query, distance)
            assert got.shape[0] == 2 * math.comb(n_bits, distance)
            np.testing.assert_array_equal(got, naive.shell(addresses, query, distance))


@pytest.mark.parametrize("prefix_bits", [0, 2, 9])
def test_ball_shell_all_addresses_equal(prefix_bits):
    # one bucket holds every row: big enough that exact matches are binary-searched
    n_bits = 16
    addresses = np.full(400, 0b1011_0000_1111_0101)
    for query in [int(addresses[0]), int(addresses[0]) ^ 0b1, int(addresses[0]) ^ 0b1000_0000_0000_0110, 0]:
        for distance in range(5):
            got = shell(addresses, n_bits, prefix_bits, query, distance)
            np.testing.assert_array_equal(got, naive.shell(addresses, query, distance))


@pytest.mark.parametrize("prefix_bits", [2, 6])
def test_ball_shell_addresses_clustered_in_one_bucket(prefix_bits):
    # 600 addresses that share their top bits, a few dozen distinct low parts with
    # many duplicates each: buckets far bigger than the directory assumes
    n_bits = 20
    rng = np.random.default_rng(2)
    low = rng.choice(rng.integers(0, 2**12, size=40), size=600)
    addresses = (0b10110101 << 12) | low
    for query in [int(addresses[5]), int(addresses[5]) ^ (1 << 19), int(addresses[5]) ^ 0b111, 2**n_bits - 1]:
        for distance in range(5):
            got = shell(addresses, n_bits, prefix_bits, query, distance)
            np.testing.assert_array_equal(got, naive.shell(addresses, query, distance))


def test_ball_shell_query_outside_the_populated_buckets():
    n_bits = 12
    addresses = np.arange(50) % 16  # only bucket 0 of 2**5 is populated
    query = 0b1111_1111_0000  # prefix 0b11111: 5 bits from every populated bucket
    for distance in range(n_bits + 1):
        got = shell(addresses, n_bits, 5, query, distance)
        np.testing.assert_array_equal(got, naive.shell(addresses, query, distance))
        if distance < 5:
            assert got.shape == (0,)


def test_ball_shell_radius_0_returns_exact_matches():
    addresses = np.array([0b100, 0b001, 0b010, 0b001, 0b000, 0b001])
    table = bucketed_table(addresses, 3, 1)
    assert sorted(kernels.ball_shell(*table, 1, 0b001, 3, 0).tolist()) == [1, 3, 5]
    assert kernels.ball_shell(*table, 1, 0b111, 3, 0).tolist() == []
    assert sorted(kernels.ball_shell(*table, 1, 0, 3, 1).tolist()) == [0, 1, 2, 3, 5]


def halves_table(addresses, n_bits):
    """The arguments of kernels.ball_halves before the query, as AddressTable builds them, by sorting."""
    sorted_addresses, order = sorted_table(addresses)
    low_bits = n_bits // 2
    low, high = sorted_addresses & (2**low_bits - 1), sorted_addresses >> low_bits
    by_low = np.lexsort((high, low))  # by low half, then by address
    high_starts = np.searchsorted(high, np.arange(2 ** (n_bits - low_bits) + 1))
    low_starts = np.searchsorted(low[by_low], np.arange(2**low_bits + 1))
    return (
        low.astype(np.uint16), high_starts.astype(np.int64), order,
        high[by_low].astype(np.uint16), low_starts.astype(np.int64), order[by_low], low_bits,
    )


def ball_by_halves(addresses, n_bits, query, radius):
    """kernels.ball_halves with every valid split of the radius: they must agree."""
    table = halves_table(addresses, n_bits)
    balls = [kernels.ball_halves(*table, query, radius, radius, -1)]
    balls += [kernels.ball_halves(*table, query, radius, high, radius - 1 - high) for high in range(radius)]
    for ball in balls[1:]:
        np.testing.assert_array_equal(ball, balls[0])
    assert balls[0].dtype == np.int64
    return balls[0]


@pytest.mark.parametrize("n_bits, n_docs, high", ADDRESS_CASES + [(0, 5, 1), (1, 9, 2), (3, 40, 8), (28, 600, 2**28), (32, 600, 2**32)])
def test_ball_halves_matches_naive(n_bits, n_docs, high):
    rng = np.random.default_rng(n_bits)
    addresses = rng.integers(0, high, size=n_docs)
    queries = [0, int(addresses[0]), int(rng.integers(0, 2**n_bits)), 2**n_bits - 1]
    for query in queries:
        for radius in range(min(n_bits, 5) + 1):
            np.testing.assert_array_equal(ball_by_halves(addresses, n_bits, query, radius), naive.ball(addresses, query, radius))


def test_ball_halves_buckets_longer_than_a_chunk_of_flags():
    # 700 rows in one bucket of each table: the flags go chunk by chunk (256, then
    # 8-entry groups, the last one partly filled)
    n_bits = 16
    addresses = np.full(700, 0b1011_0000_1111_0101)
    addresses[::3] ^= 0b1  # another low half, same high half
    addresses[::7] ^= 0b1 << 9  # another high half, same low half
    for query in [int(addresses[1]), int(addresses[1]) ^ 0b11, int(addresses[1]) ^ (0b111 << 8), 0]:
        for radius in range(5):
            np.testing.assert_array_equal(ball_by_halves(addresses, n_bits, query, radius), naive.ball(addresses, query, radius))


def test_ball_halves_finds_each_row_once_sorted_by_distance_then_row():
    # every 6-bit address twice: each lies within radius 2 in both halves or one
    n_bits = 6
    addresses = np.arange(2**n_bits).repeat(2)[::-1]
    query = 0b101101
    for radius in range(n_bits + 1):
        got = ball_by_halves(addresses, n_bits, query, radius)
        assert got.shape[0] == 2 * sum(math.comb(n_bits, d) for d in range(radius + 1))
        np.testing.assert_array_equal(got, naive.ball(addresses, query, radius))


def test_ball_halves_sorts_a_large_ball_over_three_radix_passes():
    # 70,000 rows (17 bits) and distances up to 2: keys of 19 bits, sorted 8 bits a pass
    n_bits = 8
    addresses = np.random.default_rng(3).integers(0, 2**n_bits, size=70_000)
    for query in [0, 0b1011_0110]:
        got = ball_by_halves(addresses, n_bits, query, 2)
        assert got.shape[0] > 5_000
        np.testing.assert_array_equal(got, naive.ball(addresses, query, 2))


@pytest.mark.parametrize("addresses", [[], [6]])
def test_ball_halves_of_no_row_and_one_row(addresses):
    for query, radius in [(6, 0), (7, 1), (0, 2), (2**28 - 1, 3)]:
        got = ball_by_halves(np.array(addresses, np.int64), 28, query, radius)
        np.testing.assert_array_equal(got, naive.ball(np.array(addresses, np.int64), query, radius))


def test_ball_shell_edges():
    table = bucketed_table([3, 5], 3, 1)
    assert kernels.ball_shell(*table, 1, 3, 3, 4).shape == (0,)  # distance > n_bits
    assert kernels.ball_shell(*table, 1, 3, 3, -1).shape == (0,)
    assert kernels.ball_shell(*table, 1, 3, 3, 0).tolist() == [0]
    empty = bucketed_table(np.zeros(0, np.int64), 3, 0)
    assert kernels.ball_shell(*empty, 0, 3, 3, 1).shape == (0,)
    # 0-bit addresses: one address, one shell
    zero = bucketed_table([0, 0, 0], 0, 0)
    assert sorted(kernels.ball_shell(*zero, 0, 0, 0, 0).tolist()) == [0, 1, 2]
    assert kernels.ball_shell(*zero, 0, 0, 0, 1).shape == (0,)
    # the far corner of a 63-bit space: enumeration ends without overflowing
    top = 2**63 - 1
    for prefix_bits in [0, 1, 5]:
        table = bucketed_table([top, 0], 63, prefix_bits)
        assert kernels.ball_shell(*table, prefix_bits, 0, 63, 63).tolist() == [0]
        assert kernels.ball_shell(*table, prefix_bits, top, 63, 0).tolist() == [0]
        assert kernels.ball_shell(*table, prefix_bits, top ^ (1 << 62), 63, 1).tolist() == [0]
        assert kernels.ball_shell(*table, prefix_bits, top ^ 1, 63, 1).tolist() == [0]


def test_lower_bound_matches_searchsorted():
    rng = np.random.default_rng(5)
    for n in [0, 1, 2, 3, 8, 33]:
        values = np.sort(rng.integers(0, 20, size=n)).astype(np.int64)
        for lo in sorted({0, n // 3, n}):
            for hi in sorted({lo, (lo + n) // 2, n}):
                for x in range(-1, 22):
                    expected = lo + np.searchsorted(values[lo:hi], x, side="left")
                    assert kernels._lower_bound(values, lo, hi, x) == expected


@pytest.mark.parametrize("max_distance", [0, 1, 3, 12, 20])
def test_address_scan_matches_naive(max_distance):
    rng = np.random.default_rng(max_distance)
    addresses = rng.integers(0, 2**12, size=400).astype(np.int64)
    query = int(addresses[3])
    got = kernels.address_scan(addresses, query, max_distance)
    expected = np.flatnonzero(naive.address_distances(addresses, query) <= max_distance)
    np.testing.assert_array_equal(got, expected)
    assert kernels.address_scan(np.zeros(0, np.int64), 0, 3).shape == (0,)


@pytest.mark.parametrize("n_bits", [0, 5, 12, 63])
def test_address_histogram_matches_naive(n_bits):
    rng = np.random.default_rng(n_bits)
    addresses = rng.integers(0, 2 ** min(n_bits, 62), size=300, dtype=np.int64)
    for query in [0, int(addresses[7]), 2**n_bits - 1]:
        got = kernels.address_histogram(addresses, query, n_bits)
        expected = np.bincount(naive.address_distances(addresses, query), minlength=n_bits + 1)
        np.testing.assert_array_equal(got, expected)
    assert kernels.address_histogram(np.zeros(0, np.int64), 0, 4).tolist() == [0] * 5


def test_counts_times_adds_as_the_sparse_product_at_indexing_does():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    counts = rng.poisson(0.05, (37, 300)).astype(np.float32)  # mostly zeros, like word counts
    counts[5] = 0  # a document without a known word
    W = rng.standard_normal((300, 17)).astype(np.float32)
    product = kernels.counts_times(counts, W)
    assert product.dtype == np.float32
    assert np.array_equal(product, sp.csr_matrix(counts) @ W)  # bit for bit: the same codes
    assert np.allclose(product, counts @ W, atol=1e-5)


@pytest.mark.parametrize("n_words, m, query_weight, address_weight", [(1, 3, 0.2, 4.0), (4, 5, 0.2, 0.0), (4, 100, 0.0, 1.0), (2, 1, 1.0, 2.5)])
def test_shared_bit_scores_matches_naive(n_words, m, query_weight, address_weight):
    # Each query's rows scored by the bits its first m near rows share (and its
    # own), over codes and addresses; past its count, -inf; a query with no near
    # row is scored by its own bits.
    rng = np.random.default_rng(n_words + m)
    codes = random_words(rng, 40, n_words)
    addresses = rng.integers(0, 2**28, size=40, dtype=np.int64)
    queries = random_words(rng, 3, n_words)
    query_addresses = rng.integers(0, 2**28, size=3, dtype=np.int64)
    rows = np.stack([rng.permutation(40)[:12] for _ in range(3)]).astype(np.int64)
    counts = np.array([12, 5, 0], np.int64)
    near = np.stack([rng.permutation(40)[:9] for _ in range(3)]).astype(np.int64)
    near_counts = np.array([9, 0, 4], np.int64)
    got = kernels.shared_bit_scores(
        codes, addresses, near, near_counts, m, queries, query_addresses, query_weight, address_weight, 2.0**20, rows, counts
    )
    for q in range(3):
        near_rows = [int(r) for r in near[q, : min(m, near_counts[q])]]
        scored = [int(r) for r in rows[q, : counts[q]]]
        want = naive.shared_bit_scores(codes, addresses, queries[q], query_addresses[q], near_rows, scored, query_weight, address_weight, 2.0**20)
        assert got[q, : counts[q]].tolist() == want  # exact: whole numbers of 1 / 2**20
        assert np.isneginf(got[q, counts[q] :]).all()
