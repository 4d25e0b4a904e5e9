"""RBM and autoencoder math against finite differences; the estimator's contract."""

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse

from semhash import autoencoder
from semhash.autoencoder import Autoencoder
from semhash.hasher import SemanticHasher, _Yielding, bimodality, neighbourhood_targets
from semhash.rbm import RBM, cd1_gradients, softmax


def tiny_autoencoder(rng, sizes=(7, 5, 3)):
    """Random float64 net 7-5-3 (code) -5-7, so finite differences are exact enough."""
    enc = [(rng.normal(0, 0.5, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    rev = sizes[::-1]
    dec = [(rng.normal(0, 0.5, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(rev[:-1], rev[1:])]
    return Autoencoder(enc, dec)


@pytest.mark.parametrize("with_noise, penalty", [(False, 0.0), (True, 0.0), (True, 3.0)])
def test_autoencoder_gradients_match_finite_differences(with_noise, penalty):
    rng = np.random.default_rng(0)
    ae = tiny_autoencoder(rng)
    counts = rng.poisson(2.0, (4, 7)).astype(np.float64)
    noise = rng.normal(0, 4, (4, 3)) if with_noise else None
    _, grads = autoencoder.loss_and_gradients(ae, counts, noise, penalty)
    eps = 1e-6
    for p, g in zip(ae.params(), grads):
        assert g.shape == p.shape
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up, _ = autoencoder.loss_and_gradients(ae, counts, noise, penalty)
            p[idx] = old - eps
            down, _ = autoencoder.loss_and_gradients(ae, counts, noise, penalty)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-7)


def test_binary_codes_pass_the_gradient_straight_through():
    # With draws, the decoder reads b = (u < p) and the encoder's gradient is that
    # of the surrogate decoder_loss(b + p(theta) - p(theta_0)): its value at theta_0
    # is the loss on b, its slope is the straight-through one. Finite differences
    # of the surrogate check every parameter's gradient.
    rng = np.random.default_rng(4)
    ae = tiny_autoencoder(rng)
    counts = rng.poisson(2.0, (4, 7)).astype(np.float64)
    noise, uniform = rng.normal(0, 4, (4, 3)), rng.random((4, 3))
    loss, grads = autoencoder.loss_and_gradients(ae, counts, noise, 0.0, uniform)

    def code_probabilities():
        a = counts
        for W, b in ae.encoder:
            z = a @ W + b
            a = 1 / (1 + np.exp(-z))
        return 1 / (1 + np.exp(-(z + noise)))

    def decoder_loss(code):
        decoded = Autoencoder([], ae.decoder)
        a = code
        for W, b in decoded.decoder[:-1]:
            a = 1 / (1 + np.exp(-(a @ W + b)))
        logits = a @ decoded.decoder[-1][0] + decoded.decoder[-1][1]
        log_q = logits - logits.max(axis=1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(axis=1, keepdims=True))
        return float(-(counts * log_q).sum() / counts.shape[0])

    p0 = code_probabilities()
    binary = (uniform < p0).astype(np.float64)
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert loss == pytest.approx(decoder_loss(binary), rel=1e-12)

    def surrogate():
        return decoder_loss(binary + code_probabilities() - p0)

    eps = 1e-6
    for p, g in zip(ae.params(), grads):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = surrogate()
            p[idx] = old - eps
            down = surrogate()
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-7)


def test_loss_is_n_weighted_cross_entropy():
    rng = np.random.default_rng(1)
    ae = tiny_autoencoder(rng)
    counts = rng.poisson(3.0, (5, 7)).astype(np.float64)
    loss, _ = autoencoder.loss_and_gradients(ae, counts)
    q = autoencoder.reconstruct(ae, counts)
    n = counts.sum(axis=1)
    expected = np.mean(-n * ((counts / n[:, None]) * np.log(q)).sum(axis=1))
    assert loss == pytest.approx(expected, rel=1e-10)


def test_cd1_matches_its_definition_for_poisson_layer():
    """Positive minus negative statistics, the reconstruction keeping each document's length."""
    rng = np.random.default_rng(2)
    rbm = RBM.init(6, 4, "poisson", rng)
    rbm.W = rbm.W.astype(np.float64) * 10
    v = rng.poisson(3.0, (8, 6)).astype(np.float64)
    dW, dbv, dbh, _ = cd1_gradients(rbm, v, np.random.default_rng(3))
    # Recompute by hand with the same hidden sample.
    r = np.random.default_rng(3)
    h_pos = 1 / (1 + np.exp(-(v @ rbm.W + rbm.b_hidden)))
    h_s = (r.random(h_pos.shape, dtype=np.float32) < h_pos).astype(np.float64)
    v_neg = softmax(h_s @ rbm.W.T + rbm.b_visible) * v.sum(1, keepdims=True)
    np.testing.assert_allclose(v_neg.sum(1), v.sum(1))
    h_neg = 1 / (1 + np.exp(-(v_neg @ rbm.W + rbm.b_hidden)))
    np.testing.assert_allclose(dW, (v.T @ h_pos - v_neg.T @ h_neg) / 8, rtol=1e-6)
    np.testing.assert_allclose(dbv, (v - v_neg).mean(0), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dbh, (h_pos - h_neg).mean(0), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["poisson", "binary"])
def test_cd1_split_between_threads_matches_one_batch(kind):
    """The same statistics whether the batch is computed whole or in parts, and for
    sparse counts as for dense ones."""
    from concurrent.futures import ThreadPoolExecutor

    import scipy.sparse

    rng = np.random.default_rng(6)
    rbm = RBM.init(30, 7, kind, rng)
    v = rng.poisson(0.3, (11, 30)).astype(np.float32) if kind == "poisson" else rng.random((11, 30), np.float32)
    whole = cd1_gradients(rbm, v, np.random.default_rng(7))
    with ThreadPoolExecutor(3) as pool:
        for data in (v, scipy.sparse.csr_matrix(v)):
            parts = cd1_gradients(rbm, data, np.random.default_rng(7), pool, 3)
            for a, b in zip(whole, parts):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_sparse_counts_give_the_same_loss_and_gradients():
    import scipy.sparse

    rng = np.random.default_rng(8)
    ae = tiny_autoencoder(rng)
    counts = rng.poisson(0.5, (6, 7)).astype(np.float64)
    noise = rng.normal(0, 4, (6, 3))
    loss, grads = autoencoder.loss_and_gradients(ae, counts, noise)
    sparse_loss, sparse_grads = autoencoder.loss_and_gradients(ae, scipy.sparse.csr_matrix(counts), noise)
    assert sparse_loss == pytest.approx(loss, rel=1e-12)
    for a, b in zip(grads, sparse_grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_update_kernels_match_their_formulas():
    from semhash.schedule import Adam

    rng = np.random.default_rng(9)
    p, g = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    # Adam, two steps (the bias correction differs between them).
    m, v, expected = np.zeros_like(p), np.zeros_like(p), p.astype(np.float64)
    param = p.copy()
    opt = Adam([param], lr=0.01)
    for t in (1, 2):
        opt.step([g])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(param, expected, rtol=1e-5)


def test_binary_rbm_training_lowers_reconstruction_error():
    rng = np.random.default_rng(4)
    protos = rng.random((3, 20)) < 0.5
    v = protos[rng.integers(0, 3, 300)].astype(np.float32)
    rbm = RBM.init(20, 8, "binary", rng)
    first = cd1_gradients(rbm, v, rng)[3]
    for _ in range(200):
        dW, dbv, dbh, err = cd1_gradients(rbm, v, rng)
        rbm.W += 0.1 * dW
        rbm.b_visible += 0.1 * dbv
        rbm.b_hidden += 0.1 * dbh
    assert err < 0.5 * first


def _topic_counts(n: int, seed: int):
    """``n`` documents drawn from 4 disjoint word groups of a 40-word vocabulary, and their groups."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    X = np.zeros((n, 40), np.float32)
    for i, t in enumerate(labels):
        X[i, t * 10 : (t + 1) * 10] = rng.poisson(3.0, 10)
    return X, labels


@pytest.fixture(scope="module")
def topics():
    return _topic_counts(200, 5)


def fit_small(X, **kw):
    params = dict(n_bits=(4, 16), hidden_sizes=(20,), n_epochs_pretrain=10, n_epochs_finetune=10, random_state=0)
    params.update(kw)
    return SemanticHasher(**params).fit(X)


def test_same_seed_same_codes(topics):
    X, _ = topics
    a, b = fit_small(X), fit_small(X)
    for ca, cb in zip(a.encode(X), b.encode(X)):
        np.testing.assert_array_equal(ca, cb)
    c = fit_small(X, random_state=1)
    assert not np.array_equal(a.transform(X), c.transform(X))


def test_codes_separate_topics(topics):
    X, labels = topics
    h = fit_small(X)
    _, long = h.encode(X)
    d = (long[:, None, :] != long[None, :, :]).sum(-1)
    same = labels[:, None] == labels[None, :]
    assert d[same].mean() < 0.5 * d[~same].mean()


def test_fit_does_not_modify_input_and_shapes(topics):
    X, _ = topics
    before = X.copy()
    h = fit_small(X)
    np.testing.assert_array_equal(X, before)
    assert h.transform(X).shape == (200, 20)
    assert [c.shape for c in h.encode(X)] == [(200, 4), (200, 16)]
    assert h.n_features_in_ == 40
    assert all(0 <= b <= 1 for b in h.bimodality_)


def test_noise_makes_codes_bimodal(topics):
    X, _ = topics
    noisy = fit_small(X, n_epochs_finetune=30, learning_rate_finetune=0.01)
    clean = fit_small(X, n_epochs_finetune=30, learning_rate_finetune=0.01, noise_std=0.0)
    assert noisy.bimodality_[1] > clean.bimodality_[1]


def test_bimodality():
    assert bimodality(np.array([0.0, 0.05, 0.5, 0.95])) == 0.75


@pytest.mark.parametrize("bad", [dict(n_bits=0), dict(hidden_sizes=(0,)), dict(batch_size=0), dict(noise_std=-1), dict(code_penalty=-1), dict(neighbour_weight=-1), dict(neighbour_weight=(1, 2, 3)), dict(pair_weight=-1), dict(pair_temperature=0), dict(short_queries=1.5)])
def test_bad_parameters_raise(topics, bad):
    with pytest.raises(ValueError):
        SemanticHasher(**bad).fit(topics[0])


def test_transform_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SemanticHasher().transform(np.ones((2, 3)))


def test_arrays_round_trip(topics):
    X, _ = topics
    h = fit_small(X)
    heads = autoencoder.from_arrays(h.get_arrays(), encoder_only=True)
    for head, ae in zip(heads, h.heads_):
        np.testing.assert_allclose(autoencoder.encode(head.encoder, X), autoencoder.encode(ae.encoder, X), rtol=1e-6)
        assert head.decoder == []


def _fast_hasher():
    return SemanticHasher(n_bits=(3, 5), hidden_sizes=(4,), n_epochs_pretrain=1, n_epochs_finetune=1, batch_size=10)


# scikit-learn's estimator checks. All pass: float32 output is declared in the
# estimator's tags (preserves_dtype), negative counts raise the expected error.
EXPECTED_FAILURES: dict[str, str] = {}


def _estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    return check_estimator(_fast_hasher(), on_fail=None, on_skip=None, expected_failed_checks=EXPECTED_FAILURES)


def test_sklearn_estimator_checks():
    """Every scikit-learn estimator check passes, or is listed above with its reason."""
    results = _estimator_checks()
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [], failed


# -- neighbour supervision and short queries ------------------------------------------
def test_pair_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    a = rng.random((7, 5))
    anchors, positives = np.array([0, 1, 2]), np.array([3, 4, 6])
    loss, grad = autoencoder.pair_loss(a, anchors, positives, 0.5)
    eps = 1e-6
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = (autoencoder.pair_loss(up, anchors, positives, 0.5)[0] - autoencoder.pair_loss(down, anchors, positives, 0.5)[0]) / (2 * eps)
        assert grad[idx] == pytest.approx(numeric, rel=1e-4, abs=1e-8)
    assert (grad[5] == 0).all()  # in no pair


def test_pair_loss_is_lowest_when_each_anchor_matches_its_positive():
    codes = np.eye(4)
    matched = autoencoder.pair_loss(np.vstack([codes, codes]), np.arange(4), np.arange(4, 8), 0.5)[0]
    swapped = autoencoder.pair_loss(np.vstack([codes, codes[::-1]]), np.arange(4), np.arange(4, 8), 0.5)[0]
    assert matched < swapped


@pytest.mark.parametrize("decoded", [6, 4])
def test_gradients_with_targets_and_pairs_match_finite_differences(decoded):
    rng = np.random.default_rng(4)
    ae = tiny_autoencoder(rng)
    counts = rng.poisson(2.0, (6, 7)).astype(np.float64)
    target = (counts + rng.poisson(1.0, (6, 7)))[:decoded]
    noise, uniform = rng.normal(0, 2, (6, 3)), None
    pairs = [(np.array([0, 1]), np.array([2, 3])), (np.array([4]), np.array([5]))]
    args = (noise, 1.0, uniform, target, pairs, 3.0, 0.7, decoded)
    _, grads = autoencoder.loss_and_gradients(ae, counts, *args)
    eps = 1e-6
    for p, g in zip(ae.params(), grads):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up, _ = autoencoder.loss_and_gradients(ae, counts, *args)
            p[idx] = old - eps
            down, _ = autoencoder.loss_and_gradients(ae, counts, *args)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-7)


def test_neighbourhood_targets_add_the_neighbours_distribution_at_the_documents_length():
    from semhash.hasher import neighbourhood_targets

    X = np.array([[2, 0, 0], [0, 1, 1], [0, 0, 4]], np.float32)
    got = neighbourhood_targets(X, np.array([[1, 2], [2, -1], [-1, -1]]), 0.5).toarray()
    # Row 0: length 2, neighbours' distributions (0, .5, .5) and (0, 0, 1), mean (0, .25, .75).
    np.testing.assert_allclose(got[0], [2, 0.25, 0.75])
    np.testing.assert_allclose(got[1], [0, 1, 1 + 0.5 * 2 * 1.0])
    np.testing.assert_allclose(got[2], X[2])


def test_short_queries_are_a_few_of_each_documents_own_words():
    from semhash.hasher import short_queries

    rng = np.random.default_rng(0)
    X = rng.poisson(0.8, (300, 40)).astype(np.float32)
    X[0] = 0
    X[1] = 0
    X[1, 5] = 3  # one distinct word
    q = short_queries(X, rng).toarray()
    distinct = (X > 0).sum(axis=1)
    assert set(np.unique(q)) <= {0.0, 1.0}
    assert ((q > 0) <= (X > 0)).all()
    n = q.sum(axis=1)
    assert (n == np.minimum(distinct, n)).all() and (n <= 8).all()
    assert (n[distinct >= 8] >= 2).all()
    np.testing.assert_array_equal(q[1], (X[1] > 0))
    assert n[0] == 0
    assert len(set(n[distinct >= 8])) > 3  # lengths vary


def test_neighbours_teach_codes_what_the_words_do_not_say():
    """Words drawn at random (no topic in them), neighbour lists of the same label:
    with the pair loss the codes separate the labels; without the lists they cannot."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(4), 50)
    X = rng.poisson(1.0, (200, 30)).astype(np.float32)
    same = [np.flatnonzero(labels == labels[i]) for i in range(200)]
    lists = np.array([rng.choice(s[s != i], 10, replace=False) for i, s in enumerate(same)])

    def spread(h):
        codes = h.encode(X)[1].astype(int)
        d = (codes[:, None, :] != codes[None, :, :]).sum(-1)
        eq = labels[:, None] == labels[None, :]
        return d[eq].mean() / d[~eq].mean()

    params = dict(n_bits=(4, 16), hidden_sizes=(20,), n_epochs_pretrain=5, n_epochs_finetune=60, batch_size=20,
                  learning_rate_finetune=0.01, noise_std=0.5, random_state=0)
    taught = SemanticHasher(pair_weight=20, **params).fit(X, neighbours=lists)
    alone = SemanticHasher(**params).fit(X)
    assert spread(taught) < 0.6 * spread(alone)


def test_each_head_learns_from_its_own_weight_of_the_neighbourhood():
    """By default the address (<= 64 bits) reconstructs 3x its neighbourhood's words
    and the wide code 1x; a head's weight changes its own codes only."""
    rng = np.random.default_rng(8)
    X = rng.poisson(1.0, (60, 30)).astype(np.float32)
    lists = np.array([rng.choice(np.delete(np.arange(60), i), 5, replace=False) for i in range(60)])
    h = SemanticHasher(n_bits=(4, 80))
    assert h._neighbour_weights == (3.0, 1.0)
    teacher = h._teacher(scipy.sparse.csr_matrix(X), lists)
    for (targets, listed), weight in zip(teacher, (3.0, 1.0)):
        expected = neighbourhood_targets(X, lists, weight)
        np.testing.assert_allclose(targets.toarray(), expected.toarray(), rtol=1e-6)
        np.testing.assert_array_equal(np.sort(listed, axis=1), np.sort(lists, axis=1))
    params = dict(n_bits=(4, 80), hidden_sizes=(10,), n_epochs_pretrain=2, n_epochs_finetune=3, random_state=0)
    default = SemanticHasher(**params).fit(X, neighbours=lists).encode(X)
    flat = SemanticHasher(neighbour_weight=1.0, **params).fit(X, neighbours=lists).encode(X)
    np.testing.assert_array_equal(default[1], flat[1])  # the code's teaching is the same
    assert not np.array_equal(default[0], flat[0])


def test_short_query_training_runs_and_keeps_shapes(topics):
    X, _ = topics
    h = fit_small(X, short_queries=0.5, pair_weight=5)
    assert [c.shape for c in h.encode(X)] == [(200, 4), (200, 16)]


def _taught_lists(X, k: int = 5) -> np.ndarray:
    """Each row's ``k`` nearest rows by dot product (a stand-in teacher)."""
    scores = X @ X.T
    np.fill_diagonal(scores, -1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_neighbours_given_as_a_future_give_the_codes_the_array_gives(topics, monkeypatch):
    """A Future is read once the trunk is pretrained: found before the fit, or
    found during the bottom RBM's pretraining (its split batches computed part
    after part until then), the codes are the array's, bit for bit."""
    X, _ = topics
    lists = _taught_lists(X)
    params = dict(n_bits=(4, 16), hidden_sizes=(30, 20), n_epochs_pretrain=4, n_epochs_finetune=2, batch_size=10)
    expected = SemanticHasher(**params).fit(X, neighbours=lists).transform(X)
    done, late = Future(), Future()
    done.set_result(lists)
    in_turn, split = [], []
    pool_map = _Yielding.map

    def found_after_20_batches(self, fn, items):
        (split if self.teacher.done() else in_turn).append(1)
        if len(in_turn) == 20 and not late.done():
            late.set_result(lists)
        return pool_map(self, fn, items)

    monkeypatch.setattr(_Yielding, "map", found_after_20_batches)
    for future in (done, late):
        got = SemanticHasher(**params).fit(X, neighbours=future).transform(X)
        np.testing.assert_array_equal(got, expected)
    assert len(in_turn) == 20 and len(split) > 20


def test_split_batches_give_the_same_gradients_in_one_thread_or_two():
    rng = np.random.default_rng(3)
    v = rng.poisson(1.0, (50, 30)).astype(np.float32)
    rbm = RBM.init(30, 8, "poisson", rng)
    pending = Future()  # neighbours still being found: the parts run in this thread
    with ThreadPoolExecutor(2) as pool:
        split = cd1_gradients(rbm, v, np.random.default_rng(0), pool, 2)
        in_turn = cd1_gradients(rbm, v, np.random.default_rng(0), _Yielding(pool, pending), 2)
    for a, b in zip(split, in_turn):
        np.testing.assert_array_equal(a, b)


def test_a_future_of_bad_neighbour_lists_raises_when_fine_tuning_starts(topics):
    bad = Future()
    bad.set_result(np.full((200, 2), 200))
    with pytest.raises(ValueError, match="neighbours"):
        SemanticHasher(n_bits=4, hidden_sizes=(5,), n_epochs_pretrain=1, n_epochs_finetune=1).fit(topics[0], neighbours=bad)


@pytest.mark.parametrize("lists", [np.full((200, 2), 200), np.full((200, 2), -2)])
def test_bad_neighbour_lists_raise(topics, lists):
    with pytest.raises(ValueError, match="neighbours"):
        SemanticHasher(n_bits=4, hidden_sizes=(5,), n_epochs_pretrain=1, n_epochs_finetune=1).fit(topics[0], neighbours=lists)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_progress_is_one_training_bar_that_reaches_its_end_or_a_bar_per_layer(topics, capsys, verbose):
    fit_small(topics[0], n_epochs_pretrain=2, n_epochs_finetune=2, verbose=verbose)
    err = capsys.readouterr().err
    assert ("training: 100%" in err) == (verbose == 1)  # its units of work add up to the plan
    assert ("pretrain 40-20" in err and "fine-tune 16-bit" in err) == (verbose == 2)
    assert verbose or err == ""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_xent_kernel_matches_its_numpy_twin(dtype):
    import scipy.sparse

    rng = np.random.default_rng(12)
    logits = (4 * rng.standard_normal((9, 40))).astype(dtype)
    counts = np.ceil(4 * rng.random((9, 40)) * (rng.random((9, 40)) < 0.3)).astype(dtype)
    counts[4] = 0  # a row with nothing to reconstruct: no loss, no gradient
    target = scipy.sparse.csr_matrix(counts)
    loss, delta = autoencoder.softmax_xent(logits.copy(), target, 1 / 9)  # the kernel
    dense_loss, dense_delta = autoencoder.softmax_xent(logits.copy(), target.toarray(), 1 / 9)  # numpy
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(dense_loss, rel=tol)
    np.testing.assert_allclose(delta, dense_delta, rtol=tol, atol=tol * np.abs(dense_delta).max())
    assert not delta[4].any()


def test_large_corpora_train_in_batches_of_200_with_bigger_steps():
    from semhash.schedule import LARGE_BATCH, LARGE_BATCH_STEP

    assert SemanticHasher()._batch_rows(11_314) == (LARGE_BATCH, LARGE_BATCH_STEP)  # 20NG
    assert SemanticHasher()._batch_rows(1_500) == (100, 1.0)  # too few steps of 200 in 10 epochs
    assert SemanticHasher(batch_size=50)._batch_rows(11_314) == (50, 1.0)  # as asked


def test_stopper_waits_n_iter_no_change_epochs_without_a_gain_of_tol():
    from semhash.schedule import Stopper

    stop = Stopper(patience=2, tol=0.1)
    assert [stop(x) for x in (10.0, 8.0, 7.5, 7.4)] == [False, False, False, True]  # 7.5, 7.4: under 10% off 8
    assert stop.curve == [10.0, 8.0, 7.5, 7.4]


def test_early_stopping_ends_each_layer_on_its_held_back_loss():
    X, _ = _topic_counts(1200, 6)
    # A tolerance no epoch can meet: every layer stops after n_iter_no_change + 1 epochs.
    h = fit_small(X, n_epochs_pretrain=6, n_epochs_finetune=6, early_stopping=True, tol=0.99, batch_size=100)
    assert h.validation_curves_.keys() == {"pretrain 40-20", "pretrain 20-4", "pretrain 20-16", "fine-tune 4-bit", "fine-tune 16-bit"}
    assert all(len(curve) == 3 for curve in h.validation_curves_.values())
    assert fit_small(X, n_epochs_finetune=2, batch_size=100).validation_curves_ == {}  # off: every epoch, no held-back rows
