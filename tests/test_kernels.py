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
    sorted_addresses, order = sorted_table(addresses)
    queries = [0, int(addresses[0]), int(rng.integers(0, 2**n_bits)), 2**n_bits - 1]
    for query in queries:
        seen = []
        for distance in range(min(n_bits, 4) + 1):
            got = kernels.ball_shell(sorted_addresses, order, query, n_bits, distance)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(np.sort(got), naive.shell(addresses, query, distance))
            seen.extend(got.tolist())
        assert len(seen) == len(set(seen))


def test_ball_shell_covers_every_shell_of_a_small_space():
    n_bits = 6
    addresses = np.arange(2**n_bits).repeat(2)  # every address, twice
    sorted_addresses, order = sorted_table(addresses)
    query = 0b101101
    for distance in range(n_bits + 1):
        got = kernels.ball_shell(sorted_addresses, order, query, n_bits, distance)
        assert got.shape[0] == 2 * math.comb(n_bits, distance)
        np.testing.assert_array_equal(np.sort(got), naive.shell(addresses, query, distance))


def test_ball_shell_order_is_enumeration_then_table_order():
    # masks come in increasing numeric order: 001, 010, 100 for distance 1
    addresses = np.array([0b100, 0b001, 0b010, 0b001, 0b000])
    sorted_addresses, order = sorted_table(addresses)
    assert kernels.ball_shell(sorted_addresses, order, 0, 3, 1).tolist() == [1, 3, 2, 0]
    assert kernels.ball_shell(sorted_addresses, order, 0, 3, 0).tolist() == [4]


def test_ball_shell_edges():
    sorted_addresses, order = sorted_table([3, 5])
    assert kernels.ball_shell(sorted_addresses, order, 3, 3, 4).shape == (0,)  # distance > n_bits
    assert kernels.ball_shell(sorted_addresses, order, 3, 3, -1).shape == (0,)
    empty = np.zeros(0, np.int64)
    assert kernels.ball_shell(empty, empty, 3, 3, 1).shape == (0,)
    assert kernels.ball_shell(sorted_addresses, order, 3, 3, 0).tolist() == [0]
    # the far corner of a 63-bit space: enumeration ends without overflowing
    top = 2**63 - 1
    sorted_addresses, order = sorted_table([top, 0])
    assert kernels.ball_shell(sorted_addresses, order, 0, 63, 63).tolist() == [0]
    assert kernels.ball_shell(sorted_addresses, order, top, 63, 0).tolist() == [0]
    assert kernels.ball_shell(sorted_addresses, order, top ^ (1 << 62), 63, 1).tolist() == [0]


def test_lower_bound_matches_searchsorted():
    rng = np.random.default_rng(5)
    for n in [0, 1, 2, 3, 8, 33]:
        values = np.sort(rng.integers(0, 20, size=n)).astype(np.int64)
        for x in range(-1, 22):
            assert kernels._lower_bound(values, x) == np.searchsorted(values, x, side="left")


@pytest.mark.parametrize("max_distance", [0, 1, 3, 12, 20])
def test_address_scan_matches_naive(max_distance):
    rng = np.random.default_rng(max_distance)
    addresses = rng.integers(0, 2**12, size=400).astype(np.int64)
    query = int(addresses[3])
    got = kernels.address_scan(addresses, query, max_distance)
    expected = np.flatnonzero(naive.address_distances(addresses, query) <= max_distance)
    np.testing.assert_array_equal(got, expected)
    assert kernels.address_scan(np.zeros(0, np.int64), 0, 3).shape == (0,)
