import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import naive
from semhash import kernels, lazy, search
from semhash.search import AddressTable


def random_words(rng, n, n_words=4):
    return rng.integers(0, 2**64, size=(n, n_words), dtype=np.uint64)


def near_copies(rng, base, n, flips):
    """Codes a few random bit flips away from ``base`` (so distances tie a lot)."""
    codes = np.repeat(base[None, :], n, axis=0)
    for i in range(n):
        for bit in rng.integers(0, 64 * base.shape[0], size=flips):
            codes[i, bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return codes


# ---------------------------------------------------------------- hamming / topk


def test_hamming_matches_naive():
    rng = np.random.default_rng(0)
    codes = random_words(rng, 100)
    query = codes[3]  # a row view: contiguous but not owned
    got = search.hamming(codes, query)
    np.testing.assert_array_equal(got, naive.hamming(codes, query))
    assert got[3] == 0


@pytest.mark.parametrize(
    "codes, message",
    [
        (np.zeros((3, 4), dtype=np.int64), "uint64"),
        (np.zeros(4, dtype=np.uint64), "2-d"),
        (np.zeros((4, 8), dtype=np.uint64)[:, ::2], "C-contiguous"),
        ([[0, 0, 0, 0]], "pack_codes"),
    ],
)
def test_hamming_rejects_bad_codes(codes, message):
    with pytest.raises(ValueError, match=message):
        search.hamming(codes, np.zeros(4, dtype=np.uint64))


@pytest.mark.parametrize(
    "query, message",
    [
        (np.zeros(3, dtype=np.uint64), "3 words but the codes have 4"),
        (np.zeros(4, dtype=np.int64), "uint64"),
        (np.zeros((1, 4), dtype=np.uint64), "1-d"),
    ],
)
def test_hamming_rejects_bad_query(query, message):
    with pytest.raises(ValueError, match=message):
        search.hamming(np.zeros((2, 4), dtype=np.uint64), query)


def test_hamming_accepts_strided_or_read_only_query():
    codes = np.arange(8, dtype=np.uint64).reshape(2, 4)
    query = np.arange(8, dtype=np.uint64)[::2]  # [0, 2, 4, 6], not contiguous
    expected = naive.hamming(codes, np.ascontiguousarray(query))
    np.testing.assert_array_equal(search.hamming(codes, query), expected)
    frozen = np.ascontiguousarray(query)
    frozen.flags.writeable = False
    np.testing.assert_array_equal(search.hamming(codes, frozen), expected)


@pytest.mark.parametrize("k", [0, 1, 10, 60, 61, 200])
def test_topk_full_scan_matches_naive_with_ties(k):
    rng = np.random.default_rng(k)
    base = random_words(rng, 1)[0]
    exact = near_copies(rng, base, 5, 0)  # duplicates of the query
    codes = np.concatenate([near_copies(rng, base, 50, 3), exact, exact])
    rows, distances = search.topk(codes, base, k)
    expected_rows, expected_distances = naive.topk(codes, base, k)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)
    assert rows.dtype == np.int64 and distances.dtype == np.int32


@pytest.mark.parametrize("n_threads", [None, 1])  # None: every thread numba has
def test_topk_full_scan_split_between_threads_matches_naive(n_threads):
    # Enough codes for the threads to split them (2 x 65,536 rows at least), with
    # ties straddling the split: the near copies sit at both ends.
    rng = np.random.default_rng(7)
    base = random_words(rng, 1)[0]
    near = near_copies(rng, base, 40, 2)
    codes = np.concatenate([near, random_words(rng, 140_000), near, near_copies(rng, base, 3, 0)])
    for k in (1, 50, 200):
        rows, distances = search.topk(codes, base, k, n_threads=n_threads)
        expected_rows, expected_distances = naive.topk(codes, base, k)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(distances, expected_distances)
        assert rows.dtype == np.int64 and distances.dtype == np.int32


def test_topk_with_rows_reports_original_rows_and_ignores_duplicates():
    rng = np.random.default_rng(1)
    codes = random_words(rng, 40)
    query = random_words(rng, 1)[0]
    candidates = np.array([30, 2, 30, 17, 5, 2])
    rows, distances = search.topk(codes, query, 10, rows=candidates)
    expected_rows, expected_distances = naive.topk(codes, query, 10, rows=candidates)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)
    assert sorted(rows.tolist()) == [2, 5, 17, 30]


def test_topk_ties_within_rows_go_by_row_not_by_position():
    codes = np.zeros((6, 4), dtype=np.uint64)  # all equal: every distance ties
    rows, distances = search.topk(codes, np.zeros(4, np.uint64), 2, rows=[5, 4, 1, 3])
    assert rows.tolist() == [1, 3]
    assert distances.tolist() == [0, 0]


def test_topk_all_zero_codes_and_empty_corpus():
    codes = np.zeros((5, 4), dtype=np.uint64)
    rows, distances = search.topk(codes, np.zeros(4, np.uint64), 3)
    assert rows.tolist() == [0, 1, 2] and distances.tolist() == [0, 0, 0]
    rows, distances = search.topk(np.zeros((0, 4), np.uint64), np.zeros(4, np.uint64), 3)
    assert rows.shape == (0,) and distances.shape == (0,)
    rows, distances = search.topk(codes, np.zeros(4, np.uint64), 3, rows=[])
    assert rows.shape == (0,)


def test_topk_rejects_bad_k_and_rows():
    codes = np.zeros((5, 4), dtype=np.uint64)
    query = np.zeros(4, np.uint64)
    with pytest.raises(ValueError, match="k must be at least 0"):
        search.topk(codes, query, -1)
    with pytest.raises(ValueError, match="k must be an integer"):
        search.topk(codes, query, 2.5)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 5\)"):
        search.topk(codes, query, 2, rows=[0, 5])
    with pytest.raises(ValueError, match="rows must lie"):
        search.topk(codes, query, 2, rows=[-1])
    with pytest.raises(ValueError, match="row indices"):
        search.topk(codes, query, 2, rows=[0.5])


@pytest.mark.parametrize("n_threads", [None, 1])
@pytest.mark.parametrize("k", [0, 1, 7, 500])
def test_topk_batch_matches_topk_per_query(k, n_threads):
    rng = np.random.default_rng(k)
    base = random_words(rng, 1)[0]
    codes = np.concatenate([near_copies(rng, base, 200, 4), near_copies(rng, base, 3, 0)])  # ties, duplicates
    queries = np.stack([base, codes[17], random_words(rng, 1)[0], base])
    rows, distances = search.topk_batch(codes, queries, k, n_threads=n_threads)
    assert rows.shape == distances.shape == (4, min(k, 203))
    for i, query in enumerate(queries):
        expected_rows, expected_distances = naive.topk(codes, query, k)
        np.testing.assert_array_equal(rows[i], expected_rows)
        np.testing.assert_array_equal(distances[i], expected_distances)
        np.testing.assert_array_equal(rows[i], search.topk(codes, query, k)[0])


def test_topk_batch_edges():
    codes = np.zeros((0, 4), dtype=np.uint64)
    rows, distances = search.topk_batch(codes, np.zeros((2, 4), np.uint64), 3)
    assert rows.shape == distances.shape == (2, 0)
    codes = np.arange(20, dtype=np.uint64).reshape(5, 4)
    rows, distances = search.topk_batch(codes, np.zeros((0, 4), np.uint64), 3)
    assert rows.shape == (0, 3)
    queries = np.asfortranarray(codes[:2])  # not C-contiguous: copied
    rows, distances = search.topk_batch(codes, queries, 10)
    assert rows.shape == (2, 5) and rows[:, 0].tolist() == [0, 1] and distances[:, 0].tolist() == [0, 0]


@pytest.mark.parametrize(
    "queries, k, n_threads, message",
    [
        (np.zeros(4, dtype=np.uint64), 1, None, "2-d uint64"),
        (np.zeros((2, 4), dtype=np.int64), 1, None, "2-d uint64"),
        (np.zeros((2, 3), dtype=np.uint64), 1, None, "3 words but the codes have 4"),
        (np.zeros((2, 4), dtype=np.uint64), -1, None, "k must be at least 0"),
        (np.zeros((2, 4), dtype=np.uint64), 1, 0, "n_threads must be at least 1"),
        (np.zeros((2, 4), dtype=np.uint64), 1, 10_000, "n_threads must be at most"),
    ],
)
def test_topk_batch_rejects_bad_input(queries, k, n_threads, message):
    with pytest.raises(ValueError, match=message):
        search.topk_batch(np.zeros((3, 4), dtype=np.uint64), queries, k, n_threads=n_threads)
    with pytest.raises(ValueError, match="C-contiguous"):
        search.topk_batch(np.zeros((4, 8), dtype=np.uint64)[:, ::2], np.zeros((1, 4), np.uint64), 1)


def test_topk_batch_restores_the_thread_count():
    import numba

    before = numba.get_num_threads()
    search.topk_batch(np.zeros((3, 4), np.uint64), np.zeros((1, 4), np.uint64), 1, n_threads=1)
    assert numba.get_num_threads() == before


# ---------------------------------------------------------------- AddressTable


def test_address_table_sorts_stably():
    table = AddressTable(np.array([5, 1, 7, 5, 1]), n_bits=3)
    assert table.sorted_addresses.tolist() == [1, 1, 5, 5, 7]
    assert table.order.tolist() == [1, 4, 0, 3, 2]
    assert table.addresses.dtype == np.int64 and len(table) == 5


@pytest.mark.parametrize("n_docs", [0, 1, 3, 4, 7, 8, 31, 32, 1000])
@pytest.mark.parametrize("n_bits", [0, 3, 28])
def test_address_table_directory(n_bits, n_docs):
    rng = np.random.default_rng(n_docs)
    addresses = rng.integers(0, 2**n_bits, size=n_docs)
    table = AddressTable(addresses, n_bits)
    p = table.prefix_bits
    assert p == min(n_bits, max(0, int(np.floor(np.log2(n_docs))) - 2 if n_docs else 0))
    assert table.bucket_starts.dtype == np.int64 and table.bucket_starts.shape == (2**p + 1,)
    prefixes = table.sorted_addresses >> (n_bits - p)
    for b in range(2**p):
        lo, hi = table.bucket_starts[b], table.bucket_starts[b + 1]
        assert (prefixes[lo:hi] == b).all()
    assert table.bucket_starts[0] == 0 and table.bucket_starts[-1] == n_docs
    assert f"prefix_bits={p}" in repr(table)


@pytest.mark.parametrize("n_bits, n_docs, high", [(8, 300, 2**8), (12, 500, 40), (16, 800, 2**16)])
def test_shell_and_ball_match_naive(n_bits, n_docs, high):
    rng = np.random.default_rng(n_bits)
    addresses = rng.integers(0, high, size=n_docs)
    table = AddressTable(addresses, n_bits)
    for query in [0, int(addresses[1]), 2**n_bits - 1]:
        for radius in range(4):
            np.testing.assert_array_equal(np.sort(table.shell(query, radius)), naive.shell(addresses, query, radius))
            expected = naive.ball(addresses, query, radius)
            np.testing.assert_array_equal(table.ball(query, radius), expected)
            np.testing.assert_array_equal(table._ball_by_shells(query, radius), expected)
            np.testing.assert_array_equal(table._ball_by_scan(query, radius), expected)
            assert_halves_match(table, query, radius, expected)


def assert_halves_match(table, query, radius, expected):
    """Every split of the radius between the two half-tables finds the same ball."""
    for high_radius, low_radius in [(radius, -1)] + [(h, radius - 1 - h) for h in range(radius)]:
        got = table._ball_by_halves(query, radius, high_radius, low_radius)
        np.testing.assert_array_equal(got, expected, err_msg=f"radii {high_radius}, {low_radius}")


def assert_ball_matches_naive(table, addresses, query, radius):
    for r in range(radius + 1):
        np.testing.assert_array_equal(table.shell(query, r), naive.shell(addresses, query, r))
    expected = naive.ball(addresses, query, radius)
    np.testing.assert_array_equal(table.ball(query, radius), expected)
    np.testing.assert_array_equal(table._ball_by_shells(query, radius), expected)
    np.testing.assert_array_equal(table._ball_by_scan(query, radius), expected)
    assert_halves_match(table, query, radius, expected)


def test_shell_and_ball_all_addresses_equal():
    addresses = np.full(3000, 0x5A5A5A5)  # one bucket holds everything
    table = AddressTable(addresses, 28)
    for query in [0x5A5A5A5, 0x5A5A5A5 ^ 0b101, 0x5A5A5A5 ^ (1 << 27), 0]:
        assert_ball_matches_naive(table, addresses, query, 3)


def test_shell_and_ball_addresses_clustered_in_one_bucket():
    rng = np.random.default_rng(1)
    low = rng.choice(rng.integers(0, 2**14, size=60), size=4000)  # 60 distinct, many duplicates
    addresses = (0x3C5 << 14) | low  # the same top 14 bits: one directory bucket
    table = AddressTable(addresses, 28)
    assert table.prefix_bits >= 9
    for query in [int(addresses[0]), int(addresses[0]) ^ 0b11, int(addresses[0]) ^ (0b11 << 20), 2**28 - 1]:
        assert_ball_matches_naive(table, addresses, query, 3)


def test_shell_and_ball_query_outside_the_populated_buckets():
    rng = np.random.default_rng(2)
    addresses = rng.integers(0, 2**16, size=2000)  # only the lowest 2**16 of 2**28
    table = AddressTable(addresses, 28)
    query = (2**12 - 1) << 16  # 12 prefix bits away from every document
    for r in range(5):
        assert table.shell(query, r).shape == (0,)
    assert_ball_matches_naive(table, addresses, query, 4)
    assert_ball_matches_naive(table, addresses, query | int(addresses[3]), 13)


@pytest.mark.parametrize("n_bits, enumeration", [(16, "halves"), (40, "shells")])
def test_ball_picks_enumeration_for_small_balls_and_scan_for_large(monkeypatch, n_bits, enumeration):
    rng = np.random.default_rng(0)
    addresses = rng.integers(0, 2**n_bits, size=2000)
    table = AddressTable(addresses, n_bits)
    calls = []
    for how in ["halves", "shells", "scan"]:
        monkeypatch.setattr(table, f"_ball_by_{how}", lambda *args, how=how: calls.append(how) or np.zeros(0, np.int64))
    radius = n_bits // 2  # most of the space: every bucket of both half-tables
    table.ball(5, 0)
    table.ball(5, radius)
    assert calls == [enumeration, "scan"]
    assert [table.ball_method(0), table.ball_method(radius)] == [enumeration, "scan"]


def test_ball_by_halves_builds_the_second_table_only_when_it_is_used():
    addresses = np.random.default_rng(0).integers(0, 2**28, size=5000)
    table = AddressTable(addresses, 28)
    assert table._ball_plan(0) == ("halves", 0, -1)  # one bucket of the high-half table
    table.ball(int(addresses[7]), 0)
    assert "_by_high" in vars(table) and "_by_low" not in vars(table)
    assert table._ball_plan(3) == ("halves", 1, 1)  # 30 buckets of 14-bit halves
    np.testing.assert_array_equal(table.ball(int(addresses[7]), 3), naive.ball(addresses, int(addresses[7]), 3))
    assert "_by_low" in vars(table)


@pytest.mark.parametrize(
    "n_bits, built, unused", [(28, {"bucket_starts", "_by_high", "_by_low"}, set()), (40, {"bucket_starts"}, {"_by_high", "_by_low"})]
)
def test_prepare_builds_the_tables_ball_would_build_on_first_use(n_bits, built, unused):
    table = AddressTable(np.arange(100), n_bits)
    assert not (built | unused) & set(vars(table))
    assert table.prepare() is table
    assert built <= set(vars(table)) and not unused & set(vars(table))


@pytest.mark.parametrize("n_bits", [31, 32])
def test_ball_by_halves_at_the_widest_halves(n_bits):
    rng = np.random.default_rng(n_bits)
    addresses = rng.integers(0, 2**n_bits, size=3000)
    addresses[:40] = addresses[0] ^ (1 << rng.integers(0, n_bits, size=40))  # neighbours of row 0
    table = AddressTable(addresses, n_bits)
    for query in [int(addresses[0]), 2**n_bits - 1]:
        assert table.ball_method(2) == "halves"
        assert_ball_matches_naive(table, addresses, query, 3)


def test_ball_radius_beyond_n_bits_returns_everything():
    addresses = np.array([0, 7, 3, 4, 7])
    table = AddressTable(addresses, 3)
    np.testing.assert_array_equal(table.ball(0, 3), naive.ball(addresses, 0, 3))
    np.testing.assert_array_equal(table.ball(0, 50), naive.ball(addresses, 0, 3))
    assert sorted(table.ball(0, 50).tolist()) == [0, 1, 2, 3, 4]
    assert table.shell(0, 4).shape == (0,)


def test_empty_table():
    table = AddressTable(np.zeros(0, dtype=np.int64), 28)
    assert table.shell(5, 1).shape == (0,)
    assert table.ball(5, 3).shape == (0,)
    assert AddressTable([], 28).ball(0, 1).shape == (0,)


@pytest.mark.parametrize(
    "addresses, n_bits, message",
    [
        ([0, 8], 3, r"\[0, 2\*\*3\)"),
        ([-1], 3, r"\[0, 2\*\*3\)"),
        ([0.5], 3, "integers"),
        ([[1]], 3, "1-d"),
        ([1], 64, "at most 63"),
        ([1], -1, "at least 0"),
    ],
)
def test_address_table_rejects_bad_input(addresses, n_bits, message):
    with pytest.raises(ValueError, match=message):
        AddressTable(np.array(addresses), n_bits)


def test_address_table_rejects_bad_queries():
    table = AddressTable(np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="query_address"):
        table.ball(8, 1)
    with pytest.raises(ValueError, match="radius must be at least 0"):
        table.ball(1, -1)
    with pytest.raises(ValueError, match="distance must be at least 0"):
        table.shell(1, -1)


# ---------------------------------------------------------------- search


@pytest.fixture(params=["numpy", "kernel"])
def path(request, monkeypatch):
    """Run a search test through numpy and through the numba kernel: same answers."""
    monkeypatch.setattr(lazy, "use_kernels", lambda cost_ns, kernel=None: request.param == "kernel")
    return request.param


def make_corpus(rng, n, n_bits, n_clusters=20):
    """Clustered codes whose addresses are the low bits of the codes (like a real model)."""
    centres = random_words(rng, n_clusters)
    labels = rng.integers(0, n_clusters, size=n)
    codes = np.concatenate([near_copies(rng, centres[c], 1, 6) for c in labels])
    addresses = (codes[:, 0] & np.uint64(2**n_bits - 1)).astype(np.int64)
    return codes, addresses


def check_search_result(table, codes, addresses, query_address, query, k, rows, distances, radius_used, limit):
    """Check one search result against naive, whatever path search took."""
    if radius_used == -1:
        expected_rows, expected_distances = naive.topk(codes, query, k)
    else:
        assert 0 <= radius_used <= limit
        ball = naive.ball(addresses, query_address, radius_used)
        expected_rows, expected_distances = naive.topk(codes, query, k, rows=ball)
        # the radius is the smallest that reaches k, unless capped
        if radius_used > 0:
            assert len(naive.ball(addresses, query_address, radius_used - 1)) < k
        assert len(ball) >= k or radius_used == limit
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_search_matches_naive(path, k):
    rng = np.random.default_rng(k)
    n_bits = 16
    codes, addresses = make_corpus(rng, 3000, n_bits)
    table = AddressTable(addresses, n_bits)
    radii = set()
    for i in range(12):
        query = near_copies(rng, codes[rng.integers(0, len(codes))], 1, 2)[0]
        query_address = int(query[0] & np.uint64(2**n_bits - 1))
        rows, distances, radius_used = search.search(table, codes, query_address, query, k)
        assert rows.shape[0] == k
        check_search_result(table, codes, addresses, query_address, query, k, rows, distances, radius_used, n_bits)
        radii.add(radius_used)
    assert any(r >= 0 for r in radii)  # the ball path was exercised


def test_search_finds_exact_address_match_at_radius_0(path):
    rng = np.random.default_rng(3)
    codes, addresses = make_corpus(rng, 2000, 16)
    table = AddressTable(addresses, 16)
    rows, distances, radius_used = search.search(table, codes, int(addresses[42]), codes[42], 1)
    assert radius_used == 0
    assert distances.tolist() == [0]
    assert addresses[rows[0]] == addresses[42]


def test_search_falls_back_to_full_scan_when_k_exceeds_n(path):
    rng = np.random.default_rng(4)
    codes, addresses = make_corpus(rng, 30, 12)
    table = AddressTable(addresses, 12)
    rows, distances, radius_used = search.search(table, codes, int(addresses[0]), codes[0], 100)
    assert radius_used == -1
    expected_rows, expected_distances = naive.topk(codes, codes[0], 100)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(distances, expected_distances)
    assert len(rows) == 30


def test_search_scans_when_the_whole_address_space_is_too_small(path):
    # 2-bit addresses: every shell is cheap, but all four hold fewer than k docs
    rng = np.random.default_rng(8)
    codes, addresses = make_corpus(rng, 50, 2)
    table = AddressTable(addresses, 2)
    rows, distances, radius_used = search.search(table, codes, 0, codes[3], 60)
    assert radius_used == -1
    np.testing.assert_array_equal(rows, naive.topk(codes, codes[3], 60)[0])
    rows, distances, radius_used = search.search(table, codes, 0, codes[3], 60, max_radius=5)
    assert radius_used == 2 and len(rows) == 50


def test_search_scans_addresses_when_shells_cost_more_same_shortlist(path):
    # 200 docs at address 0 and 10 at 3 bits from the query at the far corner of a
    # 20-bit space: enumerating shells soon costs more than scanning 210 addresses,
    # but the shortlist must still be the radius-3 ball, not every document.
    far = np.zeros(210, dtype=np.int64)
    far[200:] = (2**20 - 1) ^ 0b111
    codes = np.arange(840, dtype=np.uint64).reshape(210, 4)
    table = AddressTable(far, 20)
    rows, distances, radius_used = search.search(table, codes, 2**20 - 1, codes[7], 5)
    assert radius_used == 3
    assert set(rows.tolist()) <= set(range(200, 210))
    np.testing.assert_array_equal(rows, naive.topk(codes, codes[7], 5, rows=list(range(200, 210)))[0])


def test_search_max_radius_limits_the_ball(path):
    addresses = np.array([0b0000, 0b0001, 0b0011, 0b0111, 0b1111])
    codes = np.arange(20, dtype=np.uint64).reshape(5, 4)
    table = AddressTable(addresses, 4)
    rows, distances, radius_used = search.search(table, codes, 0, codes[4], 5, max_radius=2)
    assert radius_used == 2
    assert sorted(rows.tolist()) == [0, 1, 2]  # addresses within 2 bits of 0
    np.testing.assert_array_equal(rows, naive.topk(codes, codes[4], 5, rows=[0, 1, 2])[0])
    rows, distances, radius_used = search.search(table, codes, 0, codes[4], 2, max_radius=3)
    assert radius_used == 1 and sorted(rows.tolist()) == [0, 1]


def test_search_max_radius_by_address_scan_matches_shells(path, monkeypatch):
    rng = np.random.default_rng(6)
    n_bits = 12
    codes, addresses = make_corpus(rng, 1500, n_bits, n_clusters=5)
    table = AddressTable(addresses, n_bits)
    query = codes[11]
    query_address = int(addresses[11])
    for k, max_radius in [(1, 5), (40, 4), (2000, 3)]:
        expected = search.search(table, codes, query_address, query, k, max_radius=max_radius)
        with monkeypatch.context() as m:
            m.setattr("semhash.addresses.address_scan_cost", lambda n: -1.0)  # nothing but the scan pays
            got = search.search(AddressTable(addresses, n_bits), codes, query_address, query, k, max_radius=max_radius)
        for a, b in zip(got[:2], expected[:2]):
            np.testing.assert_array_equal(a, b)
        assert got[2] == expected[2]
        check_search_result(table, codes, addresses, query_address, query, k, *got, max_radius)


@pytest.mark.parametrize("k", [1, 25, 300])
def test_search_with_28_bit_addresses_matches_naive(path, k):
    # a realistic directory (prefix_bits 10); queries inside and far outside the data
    rng = np.random.default_rng(k)
    n_bits = 28
    codes = random_words(rng, 5000)
    addresses = (codes[:, 0] & np.uint64(2**n_bits - 1)).astype(np.int64)
    addresses[:1000] = addresses[0]  # a big cluster at one address
    table = AddressTable(addresses, n_bits)
    assert table.prefix_bits == 10
    query_addresses = [int(addresses[0]), int(addresses[4321]), int(addresses[4321]) ^ 0b1011, 0, 2**n_bits - 1]
    for query_address in query_addresses:
        query = random_words(rng, 1)[0]
        rows, distances, radius_used = search.search(table, codes, query_address, query, k)
        assert rows.shape[0] == k
        check_search_result(table, codes, addresses, query_address, query, k, rows, distances, radius_used, n_bits)


def test_search_all_addresses_equal_and_query_elsewhere(path):
    codes = np.arange(400, dtype=np.uint64).reshape(100, 4)
    addresses = np.full(100, 0b1111_0000)
    table = AddressTable(addresses, 8)
    rows, distances, radius_used = search.search(table, codes, 0b1111_0000, codes[50], 10)
    assert radius_used == 0
    np.testing.assert_array_equal(rows, naive.topk(codes, codes[50], 10)[0])
    rows, distances, radius_used = search.search(table, codes, 0b0000_0011, codes[50], 10)
    assert radius_used == 6  # the first ball that reaches the cluster
    np.testing.assert_array_equal(rows, naive.topk(codes, codes[50], 10)[0])
    rows, distances, radius_used = search.search(table, codes, 0b0000_0011, codes[50], 10, max_radius=5)
    assert radius_used == 5 and rows.shape == (0,)


def test_search_edges(path):
    rng = np.random.default_rng(7)
    codes, addresses = make_corpus(rng, 100, 10)
    table = AddressTable(addresses, 10)
    rows, distances, radius_used = search.search(table, codes, 0, codes[0], 0)
    assert rows.shape == (0,) and distances.shape == (0,) and radius_used == 0
    empty = AddressTable(np.zeros(0, np.int64), 10)
    rows, distances, radius_used = search.search(empty, np.zeros((0, 4), np.uint64), 0, codes[0], 5)
    assert rows.shape == (0,) and radius_used == -1
    # all-zero codes and addresses: every distance ties, rows come back in order
    zeros = np.zeros((50, 4), dtype=np.uint64)
    rows, distances, radius_used = search.search(AddressTable(np.zeros(50, dtype=np.int64), 10), zeros, 0, zeros[0], 4)
    assert rows.tolist() == [0, 1, 2, 3] and distances.tolist() == [0, 0, 0, 0] and radius_used == 0


def test_search_rejects_mismatched_inputs(path):
    codes = np.zeros((5, 4), dtype=np.uint64)
    table = AddressTable(np.zeros(4, np.int64), 8)
    with pytest.raises(ValueError, match="4 rows but codes has 5"):
        search.search(table, codes, 0, codes[0], 1)
    table = AddressTable(np.zeros(5, np.int64), 8)
    with pytest.raises(ValueError, match="query_address"):
        search.search(table, codes, 256, codes[0], 1)
    with pytest.raises(ValueError, match="max_radius"):
        search.search(table, codes, 0, codes[0], 1, max_radius=-2)
    with pytest.raises(ValueError, match="AddressTable"):
        search.search(np.zeros(5), codes, 0, codes[0], 1)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles without the JIT")
def test_warmup_compiles_every_kernel():
    # make install runs it so that no index or query compiles: a kernel it left
    # out would compile in the first run that calls it.
    search.warmup()
    public = [name for name in dir(kernels) if not name.startswith("_")]
    kernels_ = [name for name in public if isinstance(getattr(kernels, name), numba.core.dispatcher.Dispatcher)]
    assert len(kernels_) >= 15
    assert [name for name in kernels_ if not getattr(kernels, name).signatures] == []


@pytest.mark.parametrize("k, shortlist", [(5, 0), (5, 200), (30, 30), (10, 5000)])
def test_search_many_is_search_per_query_with_a_wider_ball(path, k, shortlist):
    # The ball grows to max(k, shortlist) documents and the best k of it come back:
    # the first k of search(..., max(k, shortlist)), query by query.
    rng = np.random.default_rng(k + shortlist)
    n_bits = 16
    codes, addresses = make_corpus(rng, 2500, n_bits)
    table = AddressTable(addresses, n_bits)
    queries = np.concatenate([near_copies(rng, codes[i], 1, 3) for i in rng.integers(0, len(codes), 9)])
    query_addresses = (queries[:, 0] & np.uint64(2**n_bits - 1)).astype(np.int64)
    rows, distances, counts, radii = search.search_many(table, codes, query_addresses, queries, k, shortlist=shortlist)
    assert rows.shape == distances.shape == (9, k) and counts.tolist() == [k] * 9
    want = max(k, shortlist)
    for i in range(9):
        expected = search.search(table, codes, int(query_addresses[i]), queries[i], want)
        np.testing.assert_array_equal(rows[i], expected[0][:k])
        np.testing.assert_array_equal(distances[i], expected[1][:k])
        assert radii[i] == expected[2]
        check_search_result(table, codes, addresses, int(query_addresses[i]), queries[i], want, expected[0],
                            expected[1], expected[2], n_bits)


def test_search_many_queries_sharing_an_address_get_their_own_rankings(path):
    # The kernel finds a ball once for all the queries of its address (the
    # neighbour lists query every document, sorted by address): each query still
    # gets its own code's ranking, in its own row, whatever the batch's order.
    rng = np.random.default_rng(7)
    n_bits = 16
    codes, addresses = make_corpus(rng, 2000, n_bits)
    table = AddressTable(addresses, n_bits)
    picked = rng.integers(0, len(codes), 5)
    query_addresses = rng.permutation(np.repeat(addresses[picked], 6))  # six queries an address, shuffled
    queries = codes[rng.integers(0, len(codes), query_addresses.size)]  # codes unrelated to their addresses
    rows, distances, counts, radii = search.search_many(table, codes, query_addresses, queries, 7, shortlist=150)
    for i in range(query_addresses.size):
        expected = search.search(table, codes, int(query_addresses[i]), queries[i], 150)
        np.testing.assert_array_equal(rows[i], expected[0][:7])
        np.testing.assert_array_equal(distances[i], expected[1][:7])
        assert radii[i] == expected[2] and counts[i] == 7
    assert len({tuple(r) for r in rows}) > 5  # the rankings differ within an address


def test_search_many_pads_short_answers(path):
    codes = np.arange(12, dtype=np.uint64).reshape(3, 4)
    table = AddressTable(np.array([0, 1, 3]), 2)
    rows, distances, counts, radii = search.search_many(
        table, codes, np.array([0, 3]), codes[:2], 3, max_radius=0
    )
    assert counts.tolist() == [1, 1] and radii.tolist() == [0, 0]
    assert rows.tolist() == [[0, -1, -1], [2, -1, -1]] and distances[:, 1:].tolist() == [[-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match="one per query code"):
        search.search_many(table, codes, np.array([0]), codes[:2], 3)
    with pytest.raises(ValueError, match="query codes must be a 2-d uint64"):
        search.search_many(table, codes, np.array([0]), codes[0], 3)
    with pytest.raises(ValueError, match=r"query addresses must lie in \[0, 2\*\*2\)"):
        search.search_many(table, codes, np.array([4]), codes[:1], 3)


@pytest.mark.parametrize("bounds", [(None, None), (122, 132)])
def test_join_appends_new_candidates_within_the_bounds_in_ascending_order(path, bounds):
    rng = np.random.default_rng(7)
    codes = random_words(rng, 300)
    queries = codes[rng.integers(0, 300, 6)] ^ random_words(rng, 6)
    # Shortlists of 0 to 40 rows (padded to 40), candidates with repeats, -1s and
    # rows already shortlisted; query 3 has no candidates.
    counts = np.array([40, 0, 17, 5, 40, 33])
    rows = np.full((6, 40), -1, np.int64)
    dists = np.full((6, 40), -1, np.int32)
    runs = []
    for i, m in enumerate(counts):
        rows[i, :m] = rng.choice(300, m, replace=False)
        dists[i, :m] = naive.hamming(codes[rows[i, :m]], queries[i])
        run = np.concatenate([rng.integers(-1, 300, 30), rows[i, : m // 2], [7, 7]]) if i != 3 else []
        runs.append(np.asarray(run, np.int64))
    starts = np.concatenate([[0], np.cumsum([len(r) for r in runs])])
    got_rows, got_dists, got_counts = search.join(codes, rows, dists, counts, queries, starts, np.concatenate(runs), *bounds)
    lo, hi = bounds[0] if bounds[0] is not None else 0, bounds[1] if bounds[1] is not None else 256
    for i, run in enumerate(runs):
        new = [r for r in sorted(set(run.tolist()) - set(rows[i, : counts[i]].tolist()) - {-1})
               if lo <= naive.hamming(codes[[r]], queries[i])[0] <= hi]
        assert got_counts[i] == counts[i] + len(new)
        assert got_rows[i, : got_counts[i]].tolist() == rows[i, : counts[i]].tolist() + new
        np.testing.assert_array_equal(got_dists[i, : got_counts[i]], naive.hamming(codes[got_rows[i, : got_counts[i]]], queries[i]))
        assert (got_rows[i, got_counts[i] :] == -1).all() and (got_dists[i, got_counts[i] :] == -1).all()
    assert got_rows.shape[1] == max(40, got_counts.max())
    with pytest.raises(ValueError, match="positions in"):
        search.join(codes, rows, dists, counts, queries, starts, np.full(starts[-1], 300))


def test_kernels_load_once_the_work_without_them_would_have_paid_for_it(monkeypatch):
    # Rent-or-buy: with the kernels not loaded, work runs without them until its
    # running cost would exceed the load cost; once loaded, the kernels take everything.
    monkeypatch.delitem(sys.modules, "semhash.kernels", raising=False)
    monkeypatch.setattr(lazy, "_spent_ns", 0.0)
    budget = lazy.KERNEL_LOAD_NS
    assert not lazy.use_kernels(0.6 * budget)
    assert lazy.use_kernels(0.6 * budget)  # would pass the budget
    assert not lazy.use_kernels(0.4 * budget)
    assert lazy.use_kernels(1.0)
    monkeypatch.setattr(lazy, "_spent_ns", 0.0)
    monkeypatch.setitem(sys.modules, "semhash.kernels", object())
    assert lazy.use_kernels(1.0)


def test_a_kernel_missing_from_numbas_cache_is_priced_at_its_compile_time(monkeypatch):
    # Compiling rerank_batch costs 26 s of CPU: work that numpy does in less runs
    # in numpy; past that, the kernel compiles. Cached kernels cost a load, as before.
    monkeypatch.setitem(sys.modules, "semhash.kernels", kernels)
    monkeypatch.setattr(lazy, "_spent_compiling_ns", {})
    monkeypatch.setattr(lazy, "_ready", lambda name: name != "rerank_batch")
    budget = lazy.COMPILE_NS["rerank_batch"]
    assert not lazy.use_kernels(0.6 * budget, "rerank_batch")
    assert not lazy.use_kernels(0.3 * budget, "rerank_batch")
    assert lazy.use_kernels(0.2 * budget, "rerank_batch")  # would pass the budget
    assert lazy.use_kernels(1.0, "join_shortlists")
    assert lazy.use_kernels(1.0)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles without the JIT")
def test_a_kernel_is_ready_once_compiled_or_in_numbas_cache(tmp_path):
    code = (
        "import numpy as np; from semhash import lazy; "
        "print(lazy._ready('address_histogram'), lazy._ready('address_scan')); "
        "lazy.kernels.address_histogram(np.zeros(1, np.int64), 0, 1); "
        "print(lazy._ready('address_histogram'), lazy._ready('address_scan'))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run().stdout.split() == ["False", "False", "True", "False"]  # compiled in this process
    assert run().stdout.split() == ["True", "False", "True", "False"]  # then loaded from the cache


@pytest.mark.parametrize("n_bits", [12, 28, 40])
def test_search_many_finds_the_same_ball_whichever_way_the_plan_grows_it(n_bits, monkeypatch):
    """The kernel's ball by shells, by the half-tables (up to 32 bits), by a scan,
    or as the cost model mixes them: the same rows, as naive finds them."""
    from semhash.addresses import halves_radii

    rng = np.random.default_rng(n_bits)
    codes, addresses = make_corpus(rng, 3000, min(n_bits, 64), n_clusters=40)
    queries = np.concatenate([near_copies(rng, codes[i], 1, 3) for i in rng.integers(0, len(codes), 6)])
    query_addresses = (queries[:, 0] & np.uint64(2**n_bits - 1)).astype(np.int64)
    query_addresses[0] ^= 0b1011  # a query away from its document
    plans = {
        "model": None,
        "shells": lambda self, radius: ("shells",),
        "scan": lambda self, radius: ("scan",),
        "halves": lambda self, radius: ("halves", *halves_radii(len(self), self.n_bits, radius)),
        "halves, then scan": lambda self, radius: ("halves", *halves_radii(len(self), self.n_bits, radius)) if radius < 4 else ("scan",),
    }
    if n_bits > 32:
        del plans["halves"], plans["halves, then scan"]
    monkeypatch.setattr(lazy, "use_kernels", lambda cost_ns, kernel=None: True)
    answers = {}
    for name, plan in plans.items():
        with monkeypatch.context() as m:
            if plan:
                m.setattr(AddressTable, "_ball_plan", plan)
            table = AddressTable(addresses, n_bits)
            answers[name] = search.search_many(table, codes, query_addresses, queries, 5, shortlist=60)
    for name, answer in answers.items():
        for a, b in zip(answer, answers["shells"]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    rows, distances, counts, radii = answers["model"]
    for i in range(len(queries)):
        ball = naive.ball(addresses, query_addresses[i], radii[i])
        assert len(ball) >= 60 and len(naive.ball(addresses, query_addresses[i], radii[i] - 1)) < 60
        expected_rows, expected_distances = naive.topk(codes, queries[i], 5, rows=ball)
        np.testing.assert_array_equal(rows[i], expected_rows)
        np.testing.assert_array_equal(distances[i], expected_distances)
