"""Word neighbours, the codes' teacher: exact TF-IDF cosine top-k against a naive twin;
found beside the pretraining, they teach the same model."""

import time

import numpy as np
import pytest
import scipy.sparse as sp

from semhash import neighbours


def naive_by_words(full: np.ndarray, k: int) -> np.ndarray:
    """Cosine of (1 + ln tf) * idf rows, every pair, best first, ties by row number."""
    n = full.shape[0]
    df = (full > 0).sum(axis=0)
    idf = np.log((1 + n) / (1 + df)) + 1
    w = np.where(full > 0, (1 + np.log(np.maximum(full, 1))) * idf, 0.0)
    w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    return best_others(w @ w.T, k, above=1e-6)


def best_others(scores: np.ndarray, k: int, above: float) -> np.ndarray:
    """Each row's ``k`` best other columns scoring over ``above``, best first (ties,
    to 5 decimals, by column), -1 padded."""
    n = scores.shape[0]
    out = np.full((n, k), -1)
    for i in range(n):
        ranked = sorted((j for j in range(n) if j != i and scores[i, j] > above), key=lambda j: (-round(scores[i, j], 5), j))
        out[i, : min(k, len(ranked))] = ranked[:k]
    return out


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_by_words_matches_naive_twin(block):
    rng = np.random.default_rng(0)
    full = rng.poisson(0.3, (40, 25)).astype(np.float32)
    full[3] = 0  # a document sharing no term with any other
    got = neighbours.by_words(sp.csr_matrix(full), 5, block=block)
    np.testing.assert_array_equal(got, naive_by_words(full, 5))
    assert (got[3] == -1).all()


def test_by_words_finds_the_documents_of_the_same_topic():
    """Two disjoint word groups: every listed neighbour shares its document's group."""
    rng = np.random.default_rng(1)
    full = np.zeros((30, 20), np.float32)
    for i in range(30):
        g = i % 2
        full[i, rng.choice(10, 4, replace=False) + 10 * g] = 1
    got = neighbours.by_words(sp.csr_matrix(full), 4)
    listed = got >= 0
    assert listed.all(axis=1).all()
    assert ((got % 2) == (np.arange(30)[:, None] % 2))[listed].all()


def test_by_words_of_tiny_corpora():
    assert neighbours.by_words(sp.csr_matrix(np.ones((1, 3), np.float32)), 5).shape == (1, 0)
    assert neighbours.by_words(sp.csr_matrix(np.ones((2, 3), np.float32)), 5).tolist() == [[1], [0]]


def _topic_corpus(n: int = 120, seed: int = 2) -> sp.csr_matrix:
    """Counts of ``n`` documents over 3 disjoint groups of 15 terms."""
    rng = np.random.default_rng(seed)
    full = np.zeros((n, 45), np.float32)
    for i, topic in enumerate(rng.integers(0, 3, n)):
        full[i, topic * 15 : (topic + 1) * 15] = rng.poisson(1.0, 15)
    return sp.csr_matrix(full)


def test_a_build_finds_the_neighbours_beside_pretraining_and_gets_the_same_model():
    from semhash.build import _fit_taught
    from semhash.hasher import SemanticHasher

    full = _topic_corpus()
    params = dict(n_bits=(4, 8), hidden_sizes=(10,), n_epochs_pretrain=2, n_epochs_finetune=2)
    first = SemanticHasher(**params).fit(full, neighbours=neighbours.by_words(full))
    beside = _fit_taught(SemanticHasher(**params), full, full, verbose=False)
    np.testing.assert_array_equal(beside.transform(full), first.transform(full))


def test_a_failed_fit_stops_the_neighbours_search(monkeypatch):
    from semhash import build
    from semhash.hasher import SemanticHasher

    searched = []

    def slow_search(full, progress):
        for block in progress(range(500)):
            searched.append(block)
            time.sleep(0.01)  # 5 s if it ran to the end

    monkeypatch.setattr(neighbours, "by_words", slow_search)
    negative = sp.csr_matrix(-np.ones((20, 5), np.float32))
    with pytest.raises(ValueError, match="Negative"):
        build._fit_taught(SemanticHasher(n_bits=4, hidden_sizes=(3,)), negative, negative, verbose=False)
    assert len(searched) < 100


@pytest.mark.parametrize("verbose", [True, False])
def test_the_comparing_bar_counts_the_blocks_the_other_thread_takes(capsys, verbose):
    from semhash import reading

    with reading.bar(verbose, desc="comparing documents", unit="block") as bar:
        assert list(bar.counting(range(3))) == [0, 1, 2]
    err = capsys.readouterr().err
    assert ("comparing documents: 100%" in err and "3/3" in err) == verbose and (verbose or err == "")
