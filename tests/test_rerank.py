"""Ranking the shortlist by words and codes (semhash.rerank): weights by hand, the
numpy path against the kernel, and what the ranking does."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from semhash import lazy, rerank


def unit(pairs):
    ids, weights = zip(*sorted(pairs))
    w = np.array(weights, np.float32)
    return np.array(ids, np.int32), w / np.linalg.norm(w)


def test_blob_round_trip():
    ids, weights = unit([(7, 2.0), (3, 1.0)])
    back = rerank.from_blob(rerank.to_blob((ids, weights)))
    assert back[0].tolist() == [3, 7] and np.array_equal(back[1], weights)
    assert rerank.to_blob(rerank.EMPTY) is None and rerank.from_blob(None)[0].size == 0


@pytest.mark.parametrize("at_once", [3, 65_536])
def test_blobs_pack_as_their_vectors_do(monkeypatch, at_once):
    monkeypatch.setattr(rerank, "_BLOBS_AT_ONCE", at_once)  # 3: chunks end mid-list
    rng = np.random.default_rng(0)
    vectors = [
        (rng.choice(50, n, replace=False).astype(np.int32), rng.random(n, np.float32)) for n in (3, 0, 1, 7, 2, 0, 5)
    ]
    blobs = [rerank.to_blob(v) for v in vectors] + [b""]  # None (empty) and b"" both hold no terms
    blobs[3] += b"\x01\x02\x03"  # a damaged blob reads as its whole (id, weight) pairs, as from_blob reads it
    expected = rerank.pack([rerank.from_blob(b) for b in blobs])
    got = rerank.pack_blobs(iter(blobs), sum(len(b) for b in blobs if b))
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(want, have)
        assert want.dtype == have.dtype
    assert got[0].tolist() == [0, 3, 3, 4, 11, 13, 13, 18, 18]


def test_idf_and_weights_by_hand():
    counts = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 1], [3, 1, 0]], np.float32))
    idf = rerank.fit_idf(counts)
    assert idf == pytest.approx([math.log(4 / 3) + 1, math.log(4 / 2) + 1, math.log(4 / 3) + 1])
    ids, weights = rerank.weigh(np.array([0, 2]), np.array([1, 3], np.float32), np.array([1.0, 2.0]))
    expected = np.array([1.0, (1 + math.log(3)) * 2.0])
    assert ids.tolist() == [0, 2] and weights == pytest.approx(expected / np.linalg.norm(expected))
    rows = list(rerank.csr_vectors(counts, idf))
    assert rows[1][0].tolist() == [2] and rows[1][1] == pytest.approx([1.0])
    # Blocks of rows (bounded memory) give the same vectors, an empty row included.
    counts = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [3, 1, 0], [0, 2, 0], [1, 1, 1]], np.float32))
    whole = list(rerank.csr_vectors(counts, idf, block=100))
    for block in (1, 2, 3):
        for a, b in zip(whole, rerank.csr_vectors(counts, idf, block=block), strict=True):
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_query_tokens_unknown_to_the_terms_are_dropped():
    known = {"space": (5, 2.0), "orbit": (1, 1.0)}
    packed = rerank.token_vectors([["space", "zzz", "space", "orbit"], ["zzz"], ["orbit"]], known)
    expected = np.array([1.0, (1 + math.log(2)) * 2.0])
    ids, weights = rerank.row(packed, 0)
    assert ids.tolist() == [1, 5] and weights == pytest.approx(expected / np.linalg.norm(expected))
    assert rerank.row(packed, 1)[0].size == 0 and rerank.row(packed, 2)[0].tolist() == [1]
    # The same weights as a document's at build time.
    assert weights == pytest.approx(rerank.weigh(np.array([1, 5]), np.array([1, 2]), np.array([1.0, 2.0]))[1])


@pytest.fixture(params=["numpy", "kernel"])
def path(request, monkeypatch):
    monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None: request.param == "kernel")
    return request.param


def test_words_order_documents_at_equal_code_distance(path):
    # Ten documents have all of the query's words, one some, one none.
    docs = [unit([(2, 1.0)])] * 10 + [unit([(1, 1.0)]), unit([(1, 1.0), (2, 1.0)])]
    candidates, distances = np.arange(12)[None, :], np.full((1, 12), 5, np.int32)
    order, _ = rerank.rerank(rerank.pack([unit([(2, 1.0)])]), candidates, distances, np.array([12]), rerank.pack(docs), 3, 32, 12)
    assert order.tolist() == [[*range(10), 11, 10]]  # ties keep the shortlist's order


def test_without_known_words_the_code_distance_ranks(path):
    documents = rerank.pack([unit([(1, 1.0)])] * 4)
    candidates, distances = np.array([[0, 1, 2, 3]]), np.array([[9, 3, 5, 3]], np.int32)
    order, scores = rerank.rerank(rerank.pack([rerank.EMPTY]), candidates, distances, np.array([4]), documents, 2, 32, 3)
    assert order.tolist() == [[1, 3, 2]]  # ties keep the shortlist's order
    np.testing.assert_allclose(scores[0], -rerank.CODE_WEIGHT * np.array([3, 3, 5]) / 32)


def test_the_score_is_the_cosine_less_the_code_penalty(path, monkeypatch):
    monkeypatch.setattr(rerank, "FEEDBACK_DOCS", 0)
    # The query itself, 8 bits away; a document at 45 degrees to it, 0 bits away.
    documents = rerank.pack([unit([(0, 1.0), (1, 1.0)]), unit([(0, 1.0)])])
    query = rerank.pack([unit([(0, 1.0), (1, 1.0)])])
    order, scores = rerank.rerank(query, np.array([[0, 1]]), np.array([[8, 0]], np.int32), np.array([2]), documents, 2, 32, 2)
    assert order.tolist() == [[0, 1]]
    np.testing.assert_allclose(scores[0], [1 - rerank.CODE_WEIGHT * 8 / 32, np.sqrt(0.5)], rtol=1e-6)


def test_code_distance_outweighs_a_small_word_overlap(path):
    # Same words for both, but one is 32 bits away: the whole code apart.
    documents = rerank.pack([unit([(0, 1.0), (1, 1.0)]), unit([(0, 1.0), (1, 1.0)])])
    order, _ = rerank.rerank(
        rerank.pack([unit([(0, 1.0)])]), np.array([[0, 1]]), np.array([[32, 0]], np.int32), np.array([2]), documents, 2, 32, 2
    )
    assert order.tolist() == [[1, 0]]


def test_feedback_lifts_documents_like_the_best_ones(path):
    # The query knows term 0 only; the best documents also share term 1, so after
    # feedback a document with term 1 alone beats one with neither.
    docs = [unit([(0, 1.0), (1, 1.0)])] * 10 + [unit([(2, 1.0)]), unit([(1, 1.0)])]
    candidates = np.arange(12)[None, :]
    order, _ = rerank.rerank(
        rerank.pack([unit([(0, 1.0)])]), candidates, np.zeros((1, 12), np.int32), np.array([12]), rerank.pack(docs), 3, 32, 12
    )
    assert order[0, -2:].tolist() == [11, 10]


def test_feedback_comes_only_from_documents_that_share_a_word_with_the_query(path):
    # Two documents match the query (term 0, with term 1 beside it); eight share no
    # word with it but rank among its ten best by their codes alone (distance 0).
    # Their term 5 must not feed back: the document with term 1 alone (11) then
    # beats the one with term 5 alone (10), both at the same code distance.
    docs = [unit([(0, 1.0), (1, 1.0)])] * 2 + [unit([(5, 1.0)])] * 8 + [unit([(5, 1.0)]), unit([(1, 1.0)])]
    distances = np.array([[10, 10] + [0] * 8 + [8, 8]], np.int32)
    order, _ = rerank.rerank(
        rerank.pack([unit([(0, 1.0)])]), np.arange(12)[None, :], distances, np.array([12]), rerank.pack(docs), 6, 32, 12
    )
    ranked = order[0].tolist()
    assert ranked[:3] == [0, 1, 11] and ranked[-1] == 10


@pytest.mark.parametrize("with_neighbours", [False, True])
@pytest.mark.parametrize("feedback", [True, False])
@pytest.mark.parametrize("k", [10, 80])  # the kernel keeps the best few by insertion, sorts for many
@pytest.mark.parametrize("postings", [True, False])  # with postings, queries take both first passes
@pytest.mark.parametrize("feedback_terms", [0, 7])  # 7: the feedback's terms are cut, ties at the cut kept
@pytest.mark.parametrize("held_bonus", [False, True])  # True: the short queries (half of them) ranked in full, then the bonus
def test_kernel_agrees_with_numpy(monkeypatch, with_neighbours, feedback, k, postings, feedback_terms, held_bonus):
    rng = np.random.default_rng(0)
    n_docs, n_terms, width = 160, 40, 100
    monkeypatch.setattr(rerank, "FEEDBACK_TERMS", feedback_terms)
    monkeypatch.setattr(rerank, "SHORT_QUERY", 4)
    monkeypatch.setattr(rerank, "_HELD_CHUNK", 11)  # several chunks of short queries

    def random_vector():
        ids = rng.choice(n_terms, rng.integers(1, 8), replace=False)
        weights = rng.integers(1, 4, ids.shape[0]).tolist()  # few values: equal weights tie
        return unit(list(zip(ids.tolist(), weights)))

    documents = rerank.pack([random_vector() for _ in range(n_docs)])
    # More queries than the kernel has parts (its threads): each part reuses its scratch.
    queries = [random_vector() for _ in range(149)] + [rerank.EMPTY]
    candidates = np.stack([rng.permutation(n_docs)[:width] for _ in queries])
    distances = rng.integers(0, 33, candidates.shape).astype(np.int32)
    counts = rng.integers(0, width + 1, len(queries))
    neighbours = None
    if with_neighbours:  # some lists shorter than others (-1), some neighbours outside every shortlist
        neighbours = rng.integers(-1, n_docs, (n_docs, 6)).astype(np.int32)
    monkeypatch.setattr(rerank, "_postings_pay", lambda *args: postings)
    results = {}
    for name in ("numpy", "kernel"):
        monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None, name=name: name == "kernel")
        results[name] = rerank.rerank(
            rerank.pack(queries), candidates, distances, counts, documents, n_terms, 32, k, neighbours, feedback, held_bonus,
            typical=10.0 if held_bonus else 0.0,  # 10: the queries of 1 and 2 terms are a few words (FEW_WORDS)
        )
    (order, scores), (kernel_order, kernel_scores) = results["numpy"], results["kernel"]
    assert np.array_equal(order, kernel_order)
    # The same scores up to float32 rounding (the paths sum some products in other
    # orders), best first, NaN past the hits.
    np.testing.assert_allclose(scores, kernel_scores, rtol=1e-5, atol=1e-6)
    assert ((order >= 0).sum(axis=1) == np.minimum(counts, k)).all()
    assert (np.isnan(scores) == (order < 0)).all()
    assert (np.diff(scores, axis=1)[(order[:, 1:] >= 0)] <= 0).all()
    # Ranked a few queries per kernel call (so that Ctrl-C waits less): the same.
    monkeypatch.setattr(rerank, "KERNEL_QUERIES", 7)
    chunked, chunked_scores = rerank.rerank(
        rerank.pack(queries), candidates, distances, counts, documents, n_terms, 32, k, neighbours, feedback, held_bonus,
        typical=10.0 if held_bonus else 0.0,
    )
    assert np.array_equal(chunked, kernel_order) and np.array_equal(chunked_scores, kernel_scores, equal_nan=True)
    # The documents prepared once for the kernel serve several calls (index time).
    prepared = rerank.KernelDocuments(documents, n_terms)
    monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None: True)
    for half in (slice(0, 75), slice(75, None)):
        part = rerank.pack(queries[half])
        again, _ = rerank.rerank(
            part, candidates[half], distances[half], counts[half], prepared, n_terms, 32, k, neighbours, feedback, held_bonus,
            typical=10.0 if held_bonus else 0.0,
        )
        assert np.array_equal(again, order[half])


@pytest.mark.parametrize("path", ["numpy", "kernel"])
def test_neighbours_lift_a_document_whose_neighbours_match(path, monkeypatch):
    monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None: path == "kernel")
    monkeypatch.setattr(rerank, "FEEDBACK_DOCS", 0)
    # Documents 0 and 1 match the query equally; 0's neighbour (2) matches it fully,
    # 1's neighbour (3) not at all.
    docs = rerank.pack([unit([(0, 1.0), (1, 1.0)]), unit([(0, 1.0), (2, 1.0)]), unit([(0, 1.0)]), unit([(3, 1.0)])])
    neighbours = np.array([[2, -1], [3, -1], [-1, -1], [-1, -1]], np.int32)
    query = rerank.pack([unit([(0, 1.0)])])

    def ranked(candidates, with_neighbours=True):
        candidates = np.array([candidates])
        order, _ = rerank.rerank(
            query, candidates, np.zeros(candidates.shape, np.int32), np.array([candidates.shape[1]]), docs, 4, 32, 4,
            neighbours if with_neighbours else None,
        )
        return candidates[0, order[0][order[0] >= 0]].tolist()

    assert ranked([1, 0, 2, 3], with_neighbours=False) == [2, 1, 0, 3]  # a tie: shortlist order
    smoothed = ranked([1, 0, 2, 3])
    assert smoothed.index(0) < smoothed.index(1) and smoothed[-1] == 3
    assert ranked([1, 0, 3]) == [1, 0, 3]  # a neighbour outside the shortlist vouches for nothing


def test_neighbour_lists_round_trip():
    assert rerank.neighbours_from_blob(rerank.neighbours_to_blob(np.array([7, 3, 2**31 - 1]))).tolist() == [7, 3, 2**31 - 1]
    assert rerank.neighbours_to_blob(np.zeros(0, np.int64)) == b"" and rerank.neighbours_from_blob(None).size == 0


def test_feedback_can_be_switched_off(path, monkeypatch):
    monkeypatch.setattr(rerank, "FEEDBACK_DOCS", 0)
    docs = [unit([(0, 1.0), (1, 1.0)])] * 10 + [unit([(2, 1.0)]), unit([(1, 1.0)])]
    order, _ = rerank.rerank(
        rerank.pack([unit([(0, 1.0)])]), np.arange(12)[None, :], np.zeros((1, 12), np.int32), np.array([12]), rerank.pack(docs), 3, 32, 12
    )
    assert order[0, -2:].tolist() == [10, 11]  # no shared word: shortlist order


def test_held_shares_agree_with_naive(path):
    import naive

    rng = np.random.default_rng(0)
    documents = rerank.pack([unit([(t, 1.0) for t in rng.choice(50, n, replace=False).tolist()]) if n else rerank.EMPTY for n in (0, 3, 10, 50, 7)])
    queries = rerank.pack([unit([(1, 0.2), (4, 0.5), (9, 0.3)]), rerank.EMPTY, unit([(7, 1.0)]), unit([(t, 1.0) for t in range(40)])])
    candidates = rng.integers(0, 5, size=(4, 6)).astype(np.int64)
    counts = np.array([6, 4, 3, 5], np.int64)
    got = rerank.held_shares(queries, candidates, counts, documents)
    np.testing.assert_allclose(got, naive.held_shares(queries, candidates, counts, documents), rtol=1e-6)
    holds_7 = [float(7 in rerank.row(documents, c)[0]) for c in candidates[2, :3].tolist()]
    assert got[2, :3].tolist() == pytest.approx(holds_7) and any(holds_7)  # one word: all or nothing
    assert (got[1] == 0).all() and (got[:, 6:] == 0).all()


def test_a_short_query_s_candidates_gain_the_share_of_its_words_they_hold(path, monkeypatch):
    monkeypatch.setattr(rerank, "FEEDBACK_DOCS", 0)
    monkeypatch.setattr(rerank, "HELD_WEIGHT", 0.25)
    # The query's two words: 1 holds both among three others (cosine 0.63), 0 one
    # of them (0.71), 2 one of them but is the whole code apart.
    docs = rerank.pack([unit([(0, 1.0)]), unit([(0, 1.0), (1, 1.0), (5, 1.0), (6, 1.0), (7, 1.0)]), unit([(0, 1.0)])])
    query = rerank.pack([unit([(0, 1.0), (1, 1.0)])])

    def ranked(distances, held_bonus=True, k=2):
        distances = np.array([distances], np.int32)
        order, scores = rerank.rerank(query, np.array([[0, 1, 2]]), distances, np.array([3]), docs, 8, 32, k, held_bonus=held_bonus)
        return order[0].tolist(), scores[0]

    assert ranked([0, 0, 32], held_bonus=False)[0] == [0, 1]
    order, scores = ranked([0, 0, 32])
    assert order == [1, 0]
    assert ranked([0, 0, 32], k=3)[0] == [1, 0, 2]  # every candidate asked for (distance bounds): the same
    top = math.sqrt(0.5)  # the best score before the bonus: document 0's
    np.testing.assert_allclose(scores, [2 / math.sqrt(10) + 0.25 * top, top + 0.25 * top / 2], rtol=1e-6)
    # Bounded: the codes outweigh it (1, the whole code apart, below 2 holding less).
    assert ranked([0, 32, 0])[0] == [0, 2]
    # A long query (SHORT_QUERY terms and more) gains nothing.
    monkeypatch.setattr(rerank, "SHORT_QUERY", 1)
    assert ranked([0, 0, 32])[0] == [0, 1]


@pytest.mark.parametrize("path", ["numpy", "kernel"])
def test_a_few_words_against_long_documents_are_ranked_without_guessed_codes(path, monkeypatch):
    monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None: path == "kernel")
    monkeypatch.setattr(rerank, "FEEDBACK_DOCS", 0)
    monkeypatch.setattr(rerank, "HELD_WEIGHT", 0.25)
    # As above: 1 holds both query words but is the whole code apart, 0 and 2 one each.
    docs = rerank.pack([unit([(0, 1.0)]), unit([(0, 1.0), (1, 1.0), (5, 1.0), (6, 1.0), (7, 1.0)]), unit([(0, 1.0)])])
    query = rerank.pack([unit([(0, 1.0), (1, 1.0)])])

    def ranked(typical, term_coded=False, distances=(0, 32, 0)):
        distances = np.array([distances], np.int32)
        order, scores = rerank.rerank(
            query, np.array([[0, 1, 2]]), distances, np.array([3]), docs, 8, 32, 3, held_bonus=True, typical=typical,
            term_coded=term_coded,
        )
        return order[0].tolist(), scores[0]

    assert ranked(0.0)[0] == [0, 2, 1]  # no typical length given: the codes count
    assert ranked(4.0)[0] == [0, 2, 1]  # two terms against documents of 4 words: a title against titles
    order, scores = ranked(100.0)  # two terms against documents of 100 words: the words alone
    assert order == [1, 0, 2]
    top = math.sqrt(0.5)
    np.testing.assert_allclose(scores, [2 / math.sqrt(10) + 0.25 * top, top + 0.25 * top / 2, top + 0.25 * top / 2], rtol=1e-6)
    # Codes that came from the query's terms too (termcodes) order the documents
    # holding some of the words, by the share they lack; one holding all keeps its place.
    assert ranked(100.0, distances=(32, 32, 0))[0] == [1, 0, 2]
    order, few_scores = ranked(100.0, term_coded=True, distances=(32, 32, 0))
    assert order == [1, 2, 0]
    # So do a title's against titles (SHORT_CODE_WEIGHT), in place of CODE_WEIGHT.
    assert ranked(4.0, term_coded=True, distances=(32, 32, 0))[0] == [1, 2, 0]
    lacking = 0.5  # document 0 holds one of the two equally weighted words
    np.testing.assert_allclose(few_scores, [scores[0], scores[2], scores[1] - rerank.FEW_WORDS_CODE_WEIGHT * lacking], rtol=1e-6)
