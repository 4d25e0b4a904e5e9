"""Binary codes: thresholding, packing into uint64 words, addresses, storage and display.

The bit-order conventions of semhash live here and nowhere else:

- A code of ``b`` bits is packed into ``ceil(b / 64)`` ``uint64`` words. Bit ``j`` of
  the code is bit ``j % 64`` (value ``2 ** (j % 64)``) of word ``j // 64``. Unused
  high bits of the last word are zero. Read as one integer, the code has the value
  ``sum(bit_j * 2 ** j)``.
- An address of ``b <= 63`` bits is that same integer, as ``int64``.
- Stored BLOBs are the words in little-endian byte order, word 0 first, so a BLOB
  read as one little-endian integer is also ``sum(bit_j * 2 ** j)``.
- Hex strings show that integer, most significant digit first.
"""

import numpy as np

_WORD_BITS = 64
_LE_WORD = np.dtype("<u8")


def _n_words(n_bits: int) -> int:
    return -(-n_bits // _WORD_BITS)


def _as_bit_matrix(bits, name: str = "bits") -> np.ndarray:
    """Check a (n, b) array of 0/1 values and return it as bool."""
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-d array of shape (n_codes, n_bits), got shape {bits.shape}"
        )
    if bits.dtype == bool:
        return bits
    if not np.issubdtype(bits.dtype, np.integer):
        raise ValueError(
            f"{name} must be bool (or 0/1 integers), got {bits.dtype}; "
            "turn activations into bits with semhash.codes.threshold first"
        )
    if bits.size and (bits.min() < 0 or bits.max() > 1):
        raise ValueError(f"{name} must hold only 0 and 1")
    return bits.astype(bool)


def threshold(activations: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Binarize code-layer activations.

    Parameters
    ----------
    activations : array, shape (n_codes, n_bits)
        Real-valued activations, e.g. logistic outputs in ``[0, 1]``.
    level : float, default 0.5
        A bit is set where the activation is strictly above ``level``.

    Returns
    -------
    bool array, shape (n_codes, n_bits)
    """
    activations = np.asarray(activations)
    if activations.ndim != 2:
        raise ValueError(
            "activations must be a 2-d array of shape (n_codes, n_bits), "
            f"got shape {activations.shape}"
        )
    return activations > level


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Pack bits into uint64 words.

    Parameters
    ----------
    bits : bool array, shape (n_codes, n_bits)

    Returns
    -------
    uint64 array, shape (n_codes, ceil(n_bits / 64)), C-contiguous
        Bit ``j`` of a code is bit ``j % 64`` of word ``j // 64``; unused high
        bits are zero.

    Examples
    --------
    >>> pack_codes(np.array([[1, 0, 1], [0, 0, 0]], dtype=bool))
    array([[5],
           [0]], dtype=uint64)
    """
    bits = _as_bit_matrix(bits)
    n, n_bits = bits.shape
    n_words = _n_words(n_bits)
    packed = np.zeros((n, n_words * 8), dtype=np.uint8)  # (n, bytes), zero padding
    packed[:, : -(-n_bits // 8)] = np.packbits(bits, axis=1, bitorder="little")
    return np.ascontiguousarray(packed.view(_LE_WORD).astype(np.uint64, copy=False))


def unpack_codes(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`.

    Parameters
    ----------
    words : uint64 array, shape (n_codes, ceil(n_bits / 64))
    n_bits : int

    Returns
    -------
    bool array, shape (n_codes, n_bits)
    """
    words = _check_words(words, n_bits)
    as_bytes = np.ascontiguousarray(words, dtype=_LE_WORD).view(np.uint8)  # (n, 8 * n_words)
    bits = np.unpackbits(as_bytes, axis=1, count=n_bits, bitorder="little")
    return bits.astype(bool)


def to_addresses(bits: np.ndarray) -> np.ndarray:
    """Turn short codes into integer addresses.

    Parameters
    ----------
    bits : bool array, shape (n_codes, n_bits) with ``n_bits <= 63``

    Returns
    -------
    int64 array, shape (n_codes,)
        Bit ``j`` contributes ``2 ** j``.
    """
    bits = _as_bit_matrix(bits)
    if bits.shape[1] > 63:
        raise ValueError(
            f"addresses have at most 63 bits so they fit an int64, got {bits.shape[1]}; "
            "use fewer address bits"
        )
    if bits.shape[1] == 0:
        return np.zeros(bits.shape[0], dtype=np.int64)
    return pack_codes(bits)[:, 0].astype(np.int64)


def codes_to_bytes(words: np.ndarray) -> list[bytes]:
    """One little-endian BLOB per code, for SQLite storage.

    Parameters
    ----------
    words : uint64 array, shape (n_codes, n_words)

    Returns
    -------
    list of bytes, each ``8 * n_words`` long
    """
    words = np.asarray(words)
    if words.ndim != 2 or words.dtype != np.uint64:
        raise ValueError(
            "words must be a 2-d uint64 array from semhash.codes.pack_codes, "
            f"got {words.dtype} with shape {words.shape}"
        )
    row_bytes = 8 * words.shape[1]
    buffer = np.ascontiguousarray(words, dtype=_LE_WORD).tobytes()
    return [buffer[i * row_bytes : (i + 1) * row_bytes] for i in range(words.shape[0])]


def bytes_to_codes(blobs, n_words: int) -> np.ndarray:
    """Inverse of :func:`codes_to_bytes`.

    Parameters
    ----------
    blobs : iterable of bytes-like
        Each ``8 * n_words`` bytes long.
    n_words : int

    Returns
    -------
    uint64 array, shape (n_codes, n_words), C-contiguous and writable
    """
    blobs = list(blobs)
    row_bytes = 8 * n_words
    for i, blob in enumerate(blobs):
        if len(blob) != row_bytes:
            raise ValueError(
                f"code {i} is {len(blob)} bytes, expected {row_bytes} ({n_words} words); "
                "the index was written with a different code length, rebuild it"
            )
    flat = np.frombuffer(b"".join(blobs), dtype=_LE_WORD)
    return flat.reshape(len(blobs), n_words).astype(np.uint64)  # astype copies: writable


def to_hex(words: np.ndarray, n_bits: int) -> list[str]:
    """Hex strings for display, most significant digit first.

    Parameters
    ----------
    words : uint64 array, shape (n_codes, ceil(n_bits / 64))
    n_bits : int

    Returns
    -------
    list of str, each ``ceil(n_bits / 4)`` hex digits

    Examples
    --------
    >>> to_hex(pack_codes(np.array([[1, 0, 1, 0, 0]], dtype=bool)), 5)
    ['05']
    """
    words = _check_words(words, n_bits)
    n_digits = -(-n_bits // 4)
    out = []
    for row in words:
        value = 0
        for j, word in enumerate(row):
            value |= int(word) << (_WORD_BITS * j)
        out.append(format(value, f"0{n_digits}x") if n_digits else "")
    return out


def _check_words(words, n_bits: int) -> np.ndarray:
    words = np.asarray(words)
    if words.dtype != np.uint64 or words.ndim != 2:
        raise ValueError(
            "words must be a 2-d uint64 array from semhash.codes.pack_codes, "
            f"got {words.dtype} with shape {words.shape}"
        )
    if n_bits < 0 or words.shape[1] != _n_words(n_bits):
        raise ValueError(
            f"{n_bits} bits need {_n_words(n_bits)} words per code, got {words.shape[1]}"
        )
    return words
