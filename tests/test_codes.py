import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import naive
from semhash import codes

BIT_COUNTS = [0, 1, 5, 8, 13, 20, 28, 63, 64, 65, 100, 128, 200, 256, 257]


def random_bits(rng, n, b, p=0.5):
    return rng.random((n, b)) < p


def test_threshold_is_strictly_above_level():
    activations = np.array([[0.2, 0.5, 0.51], [1.0, 0.0, 0.7]])
    expected = np.array([[False, False, True], [True, False, True]])
    np.testing.assert_array_equal(codes.threshold(activations), expected)
    np.testing.assert_array_equal(codes.threshold(activations, level=0.6), activations > 0.6)
    assert codes.threshold(activations).dtype == bool


def test_threshold_rejects_1d():
    with pytest.raises(ValueError, match="2-d"):
        codes.threshold(np.zeros(3))


@pytest.mark.parametrize("n_bits", BIT_COUNTS)
def test_pack_matches_naive_and_round_trips(n_bits):
    rng = np.random.default_rng(n_bits)
    bits = random_bits(rng, 17, n_bits)
    words = codes.pack_codes(bits)
    assert words.dtype == np.uint64
    assert words.shape == (17, -(-n_bits // 64))
    assert words.flags.c_contiguous
    np.testing.assert_array_equal(words, naive.pack(bits))
    np.testing.assert_array_equal(codes.unpack_codes(words, n_bits), bits)


def test_pack_bit_order_is_little_endian_within_words():
    bits = np.zeros((1, 130), dtype=bool)
    bits[0, [0, 3, 64, 129]] = True
    words = codes.pack_codes(bits)
    assert words.tolist() == [[0b1001, 1, 2]]


def test_pack_leaves_unused_high_bits_zero():
    bits = np.ones((3, 70), dtype=bool)
    words = codes.pack_codes(bits)
    assert words[0, 0] == np.uint64(2**64 - 1)
    assert words[0, 1] == np.uint64(2**6 - 1)


def test_pack_all_zero_and_empty():
    assert codes.pack_codes(np.zeros((4, 256), dtype=bool)).tolist() == [[0] * 4] * 4
    assert codes.pack_codes(np.zeros((0, 256), dtype=bool)).shape == (0, 4)
    assert codes.unpack_codes(np.zeros((0, 4), dtype=np.uint64), 256).shape == (0, 256)


def test_pack_accepts_01_integers_but_not_activations():
    ints = np.array([[1, 0, 1]])
    assert codes.pack_codes(ints).tolist() == [[5]]
    with pytest.raises(ValueError, match="threshold"):
        codes.pack_codes(np.array([[0.9, 0.1]]))
    with pytest.raises(ValueError, match="0 and 1"):
        codes.pack_codes(np.array([[2, 0]]))


def test_unpack_rejects_wrong_word_count():
    with pytest.raises(ValueError, match="need 4 words"):
        codes.unpack_codes(np.zeros((2, 3), dtype=np.uint64), 256)
    with pytest.raises(ValueError, match="uint64"):
        codes.unpack_codes(np.zeros((2, 4), dtype=np.int64), 256)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300).flatmap(lambda b: arrays(bool, st.tuples(st.integers(0, 6), st.just(b)))))
def test_pack_unpack_round_trip_property(bits):
    n_bits = bits.shape[1]
    words = codes.pack_codes(bits)
    np.testing.assert_array_equal(codes.unpack_codes(words, n_bits), bits)
    for row_bits, row_words in zip(bits, words):
        value = sum(int(w) << (64 * i) for i, w in enumerate(row_words))
        assert value == naive.code_value(row_bits)


@pytest.mark.parametrize("n_bits", [0, 1, 20, 28, 63])
def test_to_addresses_is_sum_of_powers_of_two(n_bits):
    rng = np.random.default_rng(1)
    bits = random_bits(rng, 50, n_bits)
    addresses = codes.to_addresses(bits)
    assert addresses.dtype == np.int64
    assert addresses.tolist() == [naive.code_value(row) for row in bits]


def test_to_addresses_rejects_64_bits():
    with pytest.raises(ValueError, match="at most 63"):
        codes.to_addresses(np.zeros((1, 64), dtype=bool))


@pytest.mark.parametrize("n_bits", [0, 5, 64, 256, 257])
def test_bytes_round_trip_and_little_endian(n_bits):
    rng = np.random.default_rng(2)
    words = codes.pack_codes(random_bits(rng, 9, n_bits))
    blobs = codes.codes_to_bytes(words)
    assert len(blobs) == 9
    assert all(isinstance(b, bytes) and len(b) == 8 * words.shape[1] for b in blobs)
    for blob, row in zip(blobs, words):
        assert int.from_bytes(blob, "little") == sum(int(w) << (64 * i) for i, w in enumerate(row))
    back = codes.bytes_to_codes(blobs, words.shape[1])
    assert back.dtype == np.uint64 and back.flags.c_contiguous and back.flags.writeable
    np.testing.assert_array_equal(back, words)


def test_bytes_to_codes_accepts_memoryviews_and_empty():
    words = np.array([[1, 2], [3, 4]], dtype=np.uint64)
    blobs = [memoryview(b) for b in codes.codes_to_bytes(words)]
    np.testing.assert_array_equal(codes.bytes_to_codes(blobs, 2), words)
    assert codes.bytes_to_codes([], 4).shape == (0, 4)


def test_bytes_to_codes_rejects_wrong_length():
    with pytest.raises(ValueError, match="code 1 is 8 bytes, expected 32"):
        codes.bytes_to_codes([b"\0" * 32, b"\0" * 8], 4)


def test_to_hex():
    bits = np.zeros((2, 70), dtype=bool)
    bits[0, [0, 4, 69]] = True
    words = codes.pack_codes(bits)
    assert codes.to_hex(words, 70) == [format(2**69 + 2**4 + 1, "018x"), "0" * 18]
    assert codes.to_hex(codes.pack_codes(np.array([[1, 0, 1, 0, 0]], dtype=bool)), 5) == ["05"]


@pytest.mark.parametrize("n_bits", [8, 28, 256])
def test_to_hex_matches_integer_value(n_bits):
    rng = np.random.default_rng(3)
    bits = random_bits(rng, 5, n_bits)
    expected = [format(naive.code_value(row), f"0{n_bits // 4}x") for row in bits]
    assert codes.to_hex(codes.pack_codes(bits), n_bits) == expected
