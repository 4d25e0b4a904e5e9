"""Slow, obviously-correct references for the kernels and search (numpy and Python ints only).

None of these share code with semhash: bits are counted with np.unpackbits or
Python's bin(), and orderings come from a full stable sort.
"""

import numpy as np


def pack(bits):
    """(n, b) bool -> (n, ceil(b/64)) uint64, bit j -> bit j % 64 of word j // 64."""
    bits = np.asarray(bits, dtype=bool)
    n, b = bits.shape
    n_words = -(-b // 64)
    words = np.zeros((n, n_words), dtype=np.uint64)
    for i in range(n):
        for j in range(b):
            if bits[i, j]:
                words[i, j // 64] |= np.uint64(1) << np.uint64(j % 64)
    return words


def code_value(bits_row) -> int:
    """A code as one Python integer: sum of 2**j over its set bits."""
    return sum(1 << j for j, bit in enumerate(bits_row) if bit)


def popcount(x: int) -> int:
    return bin(int(x)).count("1")


def hamming(words, query):
    """Hamming distances by unpacking every bit and counting mismatches."""
    words = np.asarray(words, dtype=np.uint64)
    query = np.asarray(query, dtype=np.uint64)
    if words.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    db_bits = np.unpackbits(words.view(np.uint8), axis=1)
    q_bits = np.unpackbits(query.view(np.uint8))
    return (db_bits != q_bits).sum(axis=1).astype(np.int64)


def topk_indices(distances, k):
    """Indices of the k smallest distances by a full stable sort (ties by index)."""
    order = np.argsort(np.asarray(distances), kind="stable")
    return order[: max(k, 0)]


def topk(words, query, k, rows=None):
    """(rows, distances) of the k nearest codes, ties by ascending row."""
    if rows is None:
        rows = np.arange(np.asarray(words).shape[0])
    rows = np.array(sorted(set(int(r) for r in rows)), dtype=np.int64)
    distances = hamming(np.asarray(words)[rows], query) if rows.size else np.zeros(0, np.int64)
    best = topk_indices(distances, k)
    return rows[best], distances[best]


def address_distances(addresses, query_address):
    return np.array([popcount(int(a) ^ int(query_address)) for a in addresses], dtype=np.int64)


def shell(addresses, query_address, distance):
    """Rows at exactly the given address distance, ascending."""
    return np.flatnonzero(address_distances(addresses, query_address) == distance)


def ball(addresses, query_address, radius):
    """Rows within the radius, sorted by (address distance, row)."""
    d = address_distances(addresses, query_address)
    rows = np.flatnonzero(d <= radius)
    return rows[np.argsort(d[rows], kind="stable")]


def topk_batch(words, queries, k):
    """naive.topk for each query, stacked: (rows, distances) of shape (n_queries, min(k, n))."""
    n = np.asarray(words).shape[0]
    width = min(max(k, 0), n)
    rows = np.zeros((len(queries), width), dtype=np.int64)
    distances = np.zeros((len(queries), width), dtype=np.int64)
    for i, query in enumerate(queries):
        rows[i], distances[i] = topk(words, query, k)
    return rows, distances


def held_shares(queries, candidates, counts, documents):
    """For each query's first ``counts[i]`` candidates, the sum of its term weights
    whose term the document holds over the sum of them all (Python sets)."""
    (q_starts, q_ids, q_weights), (d_starts, d_ids, _) = queries, documents
    out = np.zeros(candidates.shape)
    for i in range(len(q_starts) - 1):
        terms = q_ids[q_starts[i] : q_starts[i + 1]].tolist()
        weights = [float(w) for w in q_weights[q_starts[i] : q_starts[i + 1]]]
        for j in range(int(counts[i])):
            d = int(candidates[i, j])
            holds = set(d_ids[d_starts[d] : d_starts[d + 1]].tolist())
            if sum(weights) > 0:
                out[i, j] = sum(w for t, w in zip(terms, weights) if t in holds) / sum(weights)
    return out


def shared_bit_scores(words, addresses, query, query_address, near, rows, query_weight, address_weight, unit):
    """The score of each of ``rows`` by the bits the ``near`` rows share, mixed with
    the query's, over each row's code and then its address: a bit weighs the
    share of the near rows holding it less the share lacking it (the query's own
    sign if there are none), times 1 - query_weight, plus query_weight times +1 /
    -1 for the query's bit, and an address bit address_weight times that, rounded
    to a whole number of 1 / ``unit``; a row scores its set bits' weights less its
    unset bits'."""
    n_bits = 64 * words.shape[1]

    def value(code, address):  # the code's bits, then the address's 64 (28 used)
        return code_value_words(code) | (int(address) << n_bits)

    near_values = [value(words[r], addresses[r]) for r in near]
    own = value(query, query_address)
    weights = []
    for j in range(n_bits + 64):
        sign = 2.0 * ((own >> j) & 1) - 1.0
        shared = 2.0 * sum((v >> j) & 1 for v in near_values) / len(near_values) - 1.0 if near_values else sign
        weights.append(round((1.0 if j < n_bits else address_weight) * (query_weight * sign + (1.0 - query_weight) * shared) * unit))
    values = [value(words[r], addresses[r]) for r in rows]
    return [float(sum(w * (2 * ((v >> j) & 1) - 1) for j, w in enumerate(weights))) for v in values]


def code_value_words(code_words) -> int:
    """A packed code (uint64 words, bit j in word j // 64) as one Python integer."""
    return sum(int(w) << (64 * i) for i, w in enumerate(code_words))
