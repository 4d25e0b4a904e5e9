"""SemanticHasher: word counts -> binary codes, as a scikit-learn transformer.

The training schedule lives here (the layer math is in ``rbm.py`` and
``autoencoder.py``):

1. greedy layer-wise pretraining of a shared trunk of RBMs, CD-1, the bottom one a
   constrained-Poisson RBM over word counts;
2. for each code width in ``n_bits`` (a "head"), one more binary RBM from the trunk's
   top layer to the code units;
3. each head's stack is unrolled into an autoencoder and fine-tuned by backprop
   (Adam, minibatches) with Gaussian noise on the code units' inputs, the decoder
   reading binary codes drawn from the noisy units (straight-through gradient).

The default heads are a 28-bit address and a 256-bit code over the reference
2000-500-250-125 trunk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from semhash import autoencoder, schedule
from semhash.autoencoder import Autoencoder
from semhash.codes import threshold
from semhash.rbm import RBM, cd1_gradients, reconstruction_error


def neighbourhood_targets(X, neighbours: np.ndarray, weight: float):
    """Each document's counts plus ``weight`` times its neighbours' mean word
    distribution scaled to its own length: what its code must let the decoder
    reconstruct under neighbour supervision (NbrReg, Chaidaroon et al., SIGIR 2018).

    ``neighbours`` holds row numbers of ``X``, one row per document, -1 for none.
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    lengths = np.asarray(X.sum(axis=1), np.float32).ravel()
    unit = sp.diags(1 / np.maximum(lengths, 1)) @ X
    valid = neighbours >= 0
    per_row = valid.sum(axis=1)
    rows = np.repeat(np.arange(X.shape[0]), per_row)
    share = (weight * lengths / np.maximum(per_row, 1)).astype(np.float32)
    A = sp.csr_matrix((share[rows], (rows, neighbours[valid])), shape=(X.shape[0], X.shape[0]))
    out = (X + A @ unit).tocsr().astype(np.float32)
    out.sort_indices()
    return out


def _sorted_lists(neighbours: np.ndarray) -> np.ndarray:
    """Neighbour lists with their -1 entries moved to the end, order kept."""
    order = np.argsort(neighbours < 0, axis=1, kind="stable")
    return np.take_along_axis(neighbours, order, axis=1)


def short_queries(v, rng: np.random.Generator, low: int = 2, high: int = 8):
    """A query typed from each row of counts: ``low`` to ``high`` of its distinct
    words (all of them if it has fewer), drawn uniformly, each counted once."""
    v = sp.csr_matrix(v, dtype=np.float32)
    row = np.repeat(np.arange(v.shape[0]), np.diff(v.indptr))
    order = np.lexsort((rng.random(v.nnz), row))  # each row's words, shuffled
    rank = np.arange(v.nnz) - v.indptr[row[order]]
    keep = np.sort(order[rank < rng.integers(low, high + 1, v.shape[0])[row[order]]])
    return sp.csr_matrix((np.ones(keep.size, np.float32), (row[keep], v.indices[keep])), shape=v.shape)


def _transform_in_batches(X, fn, batch_size: int = 4096) -> np.ndarray:
    """Apply ``fn`` to row blocks of ``X`` (sparse or dense) and stack the results."""
    out = [fn(X[start : start + batch_size]) for start in range(0, X.shape[0], batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class SemanticHasher(TransformerMixin, BaseEstimator):
    """Learn binary codes for bag-of-words documents (Salakhutdinov & Hinton, 2009).

    Parameters
    ----------
    n_bits : int or tuple of int, default=(28, 256)
        Code width of each head. ``encode`` returns one bit array per head.
    hidden_sizes : tuple of int, default=(500, 250, 125)
        Widths of the shared trunk between the vocabulary and the code layers.
    n_epochs_pretrain : int, default=10
        CD-1 epochs per RBM, Adam steps (at least
        :data:`~semhash.schedule.MIN_UPDATES` steps). The Science paper's 50 epochs of momentum SGD gave the neighbour-taught codes of
        20NG precision@100 0.473 / 0.477 (28 / 256 bits) in a 79 s fit; 10 Adam
        epochs 0.498-0.525 / 0.523-0.524 in 34 s (bench/trials.py).
    n_epochs_finetune : int, default=20
        Backprop epochs per head (10: 20NG codes-only 0.5447 against 0.5765; docs/trials.md).
    batch_size : int or None, default=None
        Rows of a minibatch. None: :data:`~semhash.schedule.LARGE_BATCH` (200), with
        both step sizes multiplied by :data:`~semhash.schedule.LARGE_BATCH_STEP`, when
        the corpus is large enough for each layer to take
        :data:`~semhash.schedule.MIN_UPDATES` steps of them in its epochs (20NG is),
        else 100 (a small corpus needs the steps more than the speed).
    learning_rate_pretrain : float, default=3e-3
        Adam step size of the RBMs' CD-1 (for 100-row batches; see ``batch_size``).
    learning_rate_finetune : float, default=1e-3
        Adam step size of the fine-tuning (for 100-row batches; see ``batch_size``).
    noise_std : float, tuple of float or None, default=None
        Standard deviation of the Gaussian noise on the code units' inputs during
        fine-tuning, one per head (a float applies to all). None: 4 for codes of up
        to 64 bits (the paper's variance 16), 8 for wider ones: a wide code spreads
        its information over redundant units and needs more noise to become bimodal
        (measured on 20NG, 256 bits: std 4 gives 64% bimodal activations and
        precision@100 0.367, std 8 gives 78% and 0.381).
    weight_decay : float, default=2e-4
        L2 weight cost in pretraining (Hinton's recipe).
    code_penalty : float, default=0
        Fine-tuning adds this times ``sum(c * (1 - c))`` over each document's
        noise-free code activations ``c`` to its loss: a push towards 0 and 1 on the
        units the noise alone leaves in between.
    binary_codes : bool, default=True
        In fine-tuning, the decoder reads binary codes: each code unit is on with
        the probability its noisy activation gives, and the gradient passes straight
        through the draw (:func:`semhash.autoencoder.loss_and_gradients`): the
        decoder learns from codes like the ones the index stores (20NG, two seeds:
        +0.023 / +0.027 on the address's precision@100, +0.003 / +0.011 on the code's).
    neighbour_weight : float, tuple of float or None, default=None
        With ``neighbours`` given to ``fit``: the weight of the neighbourhood's word
        distribution beside the document's own in what the decoder reconstructs,
        one per head (a float applies to all). None: 3 for codes of up to 64 bits
        (the address), 1 for wider ones. The address ranks the ball's documents
        and is the codes-only ranking's second view of each; taught 3x its
        neighbourhood it did both better on every corpus, while 3x cost the wide
        code StackOverflow's precision (docs/trials.md).
    short_queries : float, default=0
        Share of each fine-tuning batch also read as a short query (2 to 8 of a
        document's distinct words) whose code must reconstruct what the whole
        document's does, so the few words a user types land near their documents.
    early_stopping : bool, default=False
        Hold back a ``validation_fraction`` of the rows (50 to 1,000 of them; none,
        and no stopping, from a smaller corpus) and end a layer's training once their
        loss (an RBM's mean-field reconstruction error, fine-tuning's reconstruction
        loss under fixed noise) has not fallen by ``tol`` of its best for
        ``n_iter_no_change`` epochs; the epochs are then at most. Off by default:
        on 20NG fewer epochs cost the codes (docs/trials.md).
    validation_fraction : float, default=0.05
    n_iter_no_change : int, default=2
    tol : float, default=1e-3
    random_state : int, RandomState or None, default=0
    verbose : int, default=0
        Progress on stderr: 1, one bar for the whole fit with the time left; 2, a
        bar per layer with its reconstruction error or loss.

    Attributes
    ----------
    heads_ : list of Autoencoder
        One fine-tuned autoencoder per code width.
    n_features_in_ : int
    bimodality_ : list of float
        Per head, the fraction of training code activations within 0.1 of 0 or 1.
    finetune_loss_ : list of float
        Per head, the mean training loss of the last fine-tuning epoch.
    validation_curves_ : dict of str to list of float
        With ``early_stopping``, each layer's held-back loss after each epoch.

    Notes
    -----
    ``fit`` uses as many threads as the process may run on cores
    (``os.sched_getaffinity``), each with one BLAS thread: the bottom RBM splits
    each batch between them, and the heads are fine-tuned side by side (with the
    sparse products and the one-pass updates, training on 20NG became 2.0x faster
    on 2 cores; BENCHMARKS.md, "Training speed"). The result does not depend on the
    threads' timing; their number changes only the float rounding of the bottom
    RBM's split batches. While a caller's thread still finds the ``neighbours``
    (a ``Future``), the bottom RBM leaves it a core and computes its split
    batches' parts in turn, with the same result.

    References
    ----------
    R. Salakhutdinov and G. Hinton, "Semantic hashing", International Journal of
    Approximate Reasoning 50(7), 2009.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).poisson(1.0, size=(40, 30)).astype(np.float32)
    >>> h = SemanticHasher(n_bits=8, hidden_sizes=(16,), n_epochs_pretrain=2,
    ...                    n_epochs_finetune=2).fit(X)
    >>> h.transform(X).shape
    (40, 8)
    >>> h.encode(X)[0].shape
    (40, 8)
    """

    def __init__(
        self,
        n_bits: int | Sequence[int] = (28, 256),
        *,
        hidden_sizes: Sequence[int] = (500, 250, 125),
        n_epochs_pretrain: int = 10,
        n_epochs_finetune: int = 20,
        batch_size: int | None = None,
        learning_rate_pretrain: float = 3e-3,
        learning_rate_finetune: float = 1e-3,
        noise_std: float | Sequence[float] | None = None,
        weight_decay: float = 2e-4,
        code_penalty: float = 0.0,
        binary_codes: bool = True,
        neighbour_weight: float | Sequence[float] | None = None,
        pair_weight: float = 0.0,
        pair_temperature: float = 0.8,
        short_queries: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.05,
        n_iter_no_change: int = 2,
        tol: float = 1e-3,
        random_state=0,
        verbose: int = 0,
    ):
        self.n_bits = n_bits
        self.hidden_sizes = hidden_sizes
        self.n_epochs_pretrain = n_epochs_pretrain
        self.n_epochs_finetune = n_epochs_finetune
        self.batch_size = batch_size
        self.learning_rate_pretrain = learning_rate_pretrain
        self.learning_rate_finetune = learning_rate_finetune
        self.noise_std = noise_std
        self.weight_decay = weight_decay
        self.code_penalty = code_penalty
        self.binary_codes = binary_codes
        self.neighbour_weight = neighbour_weight
        self.pair_weight = pair_weight
        self.pair_temperature = pair_temperature
        self.short_queries = short_queries
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------
    @property
    def _bits(self) -> tuple[int, ...]:
        return (self.n_bits,) if np.isscalar(self.n_bits) else tuple(self.n_bits)

    def _per_head(self, value, narrow: float, wide: float) -> tuple[float, ...]:
        """``value`` for each head: None gives ``narrow`` to codes of up to 64 bits
        and ``wide`` to wider ones; a float applies to all."""
        if value is None:
            return tuple(narrow if b <= 64 else wide for b in self._bits)
        return (float(value),) * len(self._bits) if np.isscalar(value) else tuple(float(x) for x in value)

    @property
    def _noise(self) -> tuple[float, ...]:
        return self._per_head(self.noise_std, 4.0, 8.0)

    @property
    def _neighbour_weights(self) -> tuple[float, ...]:
        return self._per_head(self.neighbour_weight, 3.0, 1.0)

    def _validate_params(self) -> None:
        if not self._bits or any(int(b) != b or b < 1 for b in self._bits):
            raise ValueError(f"n_bits must be positive integers, got {self.n_bits!r}")
        if any(int(s) != s or s < 1 for s in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")
        for name in ("n_epochs_pretrain", "n_epochs_finetune"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if len(self._noise) != len(self._bits) or min(self._noise) < 0:
            raise ValueError(f"noise_std must be >= 0, one per code width, got {self.noise_std!r}")
        if self.code_penalty < 0:
            raise ValueError(f"code_penalty must be >= 0, got {self.code_penalty!r}")
        if len(self._neighbour_weights) != len(self._bits) or min(self._neighbour_weights) < 0:
            raise ValueError(f"neighbour_weight must be >= 0, one per code width, got {self.neighbour_weight!r}")
        if self.pair_weight < 0 or not self.pair_temperature > 0:
            raise ValueError(f"pair_weight must be >= 0 and pair_temperature > 0, got {self.pair_weight!r}, {self.pair_temperature!r}")
        if not 0 <= self.short_queries <= 1:
            raise ValueError(f"short_queries must be in [0, 1], got {self.short_queries!r}")
        if not 0 < self.validation_fraction < 1 or self.n_iter_no_change < 1 or self.tol < 0:
            raise ValueError(
                "validation_fraction must be in (0, 1), n_iter_no_change >= 1 and tol >= 0, got "
                f"{self.validation_fraction!r}, {self.n_iter_no_change!r}, {self.tol!r}"
            )

    # -- training schedule -------------------------------------------------------
    def _work(self, n: int, n_features: int) -> float:
        """Units of work of a whole fit on ``n`` rows (see :class:`_Training`): CD-1
        multiplies each RBM's weights 3 times a step; fine-tuning a head's unrolled
        stack, forward and back, 3 times each of its weights (twice the RBMs')."""
        sizes = [n_features, *self.hidden_sizes]
        trunk = sum(a * b for a, b in zip(sizes, sizes[1:]))
        per_batch = -(-n // self._rows_per_batch)
        pretrain = schedule.epochs(self.n_epochs_pretrain, n, self._rows_per_batch) * per_batch
        finetune = schedule.epochs(self.n_epochs_finetune, n, self._rows_per_batch) * per_batch
        work = 3 * pretrain * trunk
        for bits in self._bits:
            work += 3 * pretrain * sizes[-1] * bits + 6 * finetune * (trunk + sizes[-1] * bits)
        return float(work)

    def _pretrain_rbm(self, X, n_hidden: int, kind: str, rng, desc: str, pool=None, n_parts: int = 1) -> RBM:
        """CD-1 with L2 weight cost, its steps taken by Adam; with a thread pool, each
        batch is split in ``n_parts`` (see ``cd1_gradients``).

        Adam, not Hinton's momentum SGD: the bottom layer's CD-1 gradient grows with
        the documents' length, so SGD needed a step size divided by it and 50 epochs
        to converge; Adam scales each weight's step by its own gradient's size. On
        20NG, with neighbour-taught fine-tuning (BENCHMARKS.md, "Codes taught by
        their neighbours"): 10 Adam epochs gave precision@100 0.525 / 0.523 (28 /
        256 bits) in a 34 s fit, 50 momentum epochs 0.473 / 0.477 in 79 s.
        """
        rbm = RBM.init(X.shape[1], n_hidden, kind, rng)
        opt = schedule.Adam([rbm.W, rbm.b_visible, rbm.b_hidden], self.learning_rate_pretrain * self._step_scale)
        train, held = self._split
        n_epochs = schedule.epochs(self.n_epochs_pretrain, train.size, self._rows_per_batch)
        stop = schedule.Stopper(self.n_iter_no_change, self.tol)
        bar = schedule.progress(range(n_epochs), self.verbose, desc)
        for epoch in bar:
            errors = []
            for rows in schedule.minibatches(train, self._rows_per_batch, rng):
                dW, dbv, dbh, err = cd1_gradients(rbm, X[rows], rng, pool, n_parts)
                # CD-1 gives ascent directions; Adam descends.
                opt.step([self.weight_decay * rbm.W - dW, -dbv, -dbh])
                errors.append(err)
                self._training.advance(3 * rbm.W.size)
            bar.set_postfix(recon_error=f"{np.mean(errors):.4g}")
            if held is not None and stop(reconstruction_error(rbm, X[held])):
                self._skip(3 * rbm.W.size, train.size, n_epochs - epoch - 1)
                break
        if held is not None:
            self.validation_curves_[desc] = stop.curve
        return rbm

    def _finetune(self, ae: Autoencoder, X, teacher, noise_std: float, rng, desc: str) -> float:
        """Backprop through the unrolled net with noisy code inputs (and binary codes
        drawn from them, with ``binary_codes``). Returns the last epoch's mean loss
        per document.

        ``teacher`` is (targets, neighbours): each document's code reconstructs its
        row of targets; with ``pair_weight``, each batch also holds one listed
        neighbour of each of its documents, pulled towards it in code space
        (:func:`semhash.autoencoder.pair_loss`); with ``short_queries``, that share
        of the batch is also read as a few of its words, lifted as a query is, with
        the document's targets and (with ``pair_weight``) its code as the goal.
        """
        n_code = ae.encoder[-1][0].shape[1]
        opt = schedule.Adam(ae.params(), self.learning_rate_finetune * self._step_scale)
        loss = float("nan")
        train, held = self._split
        n_epochs = schedule.epochs(self.n_epochs_finetune, train.size, self._rows_per_batch)
        stop = schedule.Stopper(self.n_iter_no_change, self.tol)
        if held is not None:  # the held-back documents' noise and draws, fixed: their loss varies with the model alone
            held_noise = (noise_std * rng.standard_normal((held.size, n_code))).astype(np.float32)
            held_uniform = rng.random((held.size, n_code), dtype=np.float32) if self.binary_codes else None
        bar = schedule.progress(range(n_epochs), self.verbose, desc)
        typical = float(np.median(np.asarray(X.sum(axis=1)).ravel()))
        step_units = 3 * sum(W.size for W, _ in ae.encoder + ae.decoder)
        for epoch in bar:
            losses, sizes = [], []
            for rows in schedule.minibatches(train, self._rows_per_batch, rng):
                v, target, pairs, decoded = self._batch(X, teacher, rows, typical, rng)
                noise = (noise_std * rng.standard_normal((v.shape[0], n_code))).astype(np.float32)
                uniform = rng.random((v.shape[0], n_code), dtype=np.float32) if self.binary_codes else None
                batch_loss, grads = autoencoder.loss_and_gradients(
                    ae, v, noise, self.code_penalty, uniform, target, pairs, self.pair_weight, self.pair_temperature,
                    decoded,
                )
                opt.step(grads)
                self._training.advance(step_units)
                losses.append(batch_loss * decoded)
                sizes.append(decoded)
            loss = float(np.sum(losses) / np.sum(sizes))
            bar.set_postfix(loss=f"{loss:.4g}")
            if held is not None and stop(autoencoder.loss(ae, X[held], held_noise, held_uniform, teacher[0][held])):
                self._skip(step_units, train.size, n_epochs - epoch - 1)
                break
        if held is not None:
            self.validation_curves_[desc] = stop.curve
        return loss

    def _batch(self, X, teacher, rows: np.ndarray, typical: float, rng):
        """(inputs, targets, pairs) of one fine-tuning batch (see ``_finetune``): the
        documents and their short queries are decoded, then their neighbours, there
        for the pairs alone, are only encoded."""
        targets, neighbours = teacher
        inputs, goals, pairs = [X[rows]], [targets[rows]], []
        size = rows.size
        if self.short_queries:
            few = np.flatnonzero(rng.random(rows.size) < self.short_queries)
            inputs.append(sp.csr_matrix(autoencoder.lift(short_queries(X[rows[few]], rng).toarray(), typical)))
            goals.append(targets[rows[few]])
            if self.pair_weight:
                pairs.append((few, size + np.arange(few.size)))
            size += few.size
        if self.pair_weight and neighbours is not None:
            listed = (neighbours[rows] >= 0).sum(axis=1)  # the lists are -1-padded at the end
            anchors = np.flatnonzero(listed)
            picked = neighbours[rows[anchors], (rng.random(anchors.size) * listed[anchors]).astype(np.int64)]
            inputs.append(X[picked])
            pairs.append((anchors, size + np.arange(anchors.size)))
        if len(inputs) == 1:
            return inputs[0], goals[0], pairs, size
        return sp.vstack(inputs).tocsr(), sp.vstack(goals).tocsr(), pairs, size

    def fit(self, X, y=None, neighbours=None) -> SemanticHasher:
        """Pretrain and fine-tune on word counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_words)
            Word counts (non-negative).
        y : ignored
        neighbours : array of int, shape (n_samples, k), or a Future of one, optional
            Each document's nearest neighbours (row numbers of ``X``, -1 for none),
            found by a better ranker than the codes, e.g. TF-IDF over every term:
            fine-tuning then teaches each code to reconstruct its neighbourhood's
            words too (weight ``neighbour_weight``), so documents the ranker calls
            similar get similar codes. Pretraining does not read them: given a
            ``concurrent.futures.Future``, the fit waits for it only once the trunk
            is pretrained, so the caller can find the neighbours meanwhile
            (``semhash.build`` does, in a thread, which then also checks them and
            makes their targets); a bad array raises then. The model is the one the
            array gives.

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float32, reset=True)
        if (X.data if hasattr(X, "tocsr") else X).min(initial=0) < 0:
            raise ValueError("Negative values in data passed to SemanticHasher: X must hold word counts")
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        # One BLAS thread (below): on small blocks OpenBLAS's threads spin-wait on each
        # other, and with one core busy elsewhere the sample trained 10x slower with 2.
        if neighbours is not None or self.short_queries:
            X = sp.csr_matrix(X)
        # An array is checked at once; a Future once it is found (see _fit).
        teacher = self._teacher_beside(X, neighbours) if isinstance(neighbours, Future) else self._teacher(X, neighbours)
        self._split = self._held_back(X.shape[0], rng)
        self._rows_per_batch, self._step_scale = self._batch_rows(self._split[0].size)
        self.validation_curves_ = {}
        self._training = schedule.Training(self._work(self._split[0].size, X.shape[1]), int(self.verbose))
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return self._fit(X, teacher, rng)
        finally:
            self._training.close()
            del self._training, self._split, self._rows_per_batch, self._step_scale

    def _teacher(self, X, neighbours) -> list[tuple]:
        """Per head, the (targets, neighbour lists) that its fine-tuning learns from
        (see ``_finetune``): ``X`` itself and None without ``neighbours``."""
        if neighbours is None:
            return [(X, None)] * len(self._bits)
        neighbours = _sorted_lists(np.asarray(neighbours, np.int64).reshape(X.shape[0], -1))
        if neighbours.size and (neighbours.max() >= X.shape[0] or neighbours.min() < -1):
            raise ValueError("neighbours must hold row numbers of X, or -1")
        targets = {w: neighbourhood_targets(X, neighbours, w) if w else X for w in set(self._neighbour_weights)}
        return [(targets[w], neighbours) for w in self._neighbour_weights]

    def _teacher_beside(self, X, found: Future) -> Future:
        """A Future of :meth:`_teacher`, made by the thread that finds the neighbours
        once it has: their targets (1.1-1.3 s on 20NG) are off the fit's path too."""
        teacher: Future = Future()

        def make(done: Future) -> None:
            try:
                teacher.set_result(self._teacher(X, done.result()))
            except BaseException as e:  # raised where the fit waits for it
                teacher.set_exception(e)

        found.add_done_callback(make)
        return teacher

    def _skip(self, step_units: float, n_rows: int, epochs_left: int) -> None:
        """Move the training bar past the epochs that early stopping leaves out."""
        self._training.advance(step_units * -(-n_rows // self._rows_per_batch) * epochs_left)

    def _batch_rows(self, n: int) -> tuple[int, float]:
        """(rows of a minibatch, factor of the step sizes) for training on ``n`` rows
        (see ``batch_size``)."""
        if self.batch_size is not None:
            return self.batch_size, 1.0
        epochs = [e for e in (self.n_epochs_pretrain, self.n_epochs_finetune) if e > 0]
        if epochs and min(epochs) * -(-n // schedule.LARGE_BATCH) >= schedule.MIN_UPDATES:
            return schedule.LARGE_BATCH, schedule.LARGE_BATCH_STEP
        return 100, 1.0

    def _held_back(self, n: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
        """(rows trained on, rows held back or None): with ``early_stopping``, a
        ``validation_fraction`` of the rows (between
        :data:`~semhash.schedule.MIN_HELD_BACK` and :data:`~semhash.schedule.MAX_HELD_BACK`,
        else none) is held back to judge when each layer stops improving."""
        size = min(round(self.validation_fraction * n), schedule.MAX_HELD_BACK)
        if not self.early_stopping or size < schedule.MIN_HELD_BACK:
            return np.arange(n), None
        order = rng.permutation(n)
        return np.sort(order[size:]), np.sort(order[:size])

    def _fit(self, X, teacher, rng) -> SemanticHasher:
        # Two ways to use the cores (numpy, scipy and the update kernels release the
        # GIL): the bottom RBM, the biggest, splits each batch between threads (on
        # 20NG 1.25x faster with two; the smaller RBMs gained nothing from it); the
        # heads, which share nothing after the trunk, train side by side, each with
        # its own random stream so the result does not depend on the threads' timing.
        n_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            trunk: list[RBM] = []
            data = X
            for k, size in enumerate(self.hidden_sizes):
                kind = "poisson" if k == 0 else "binary"
                desc = f"pretrain {data.shape[1]}-{size}"
                split = (_Yielding(pool, teacher), n_threads) if k == 0 else (None, 1)
                rbm = self._pretrain_rbm(data, size, kind, rng, desc, *split)
                trunk.append(rbm)
                data = _transform_in_batches(data, rbm.hidden_probs)

            bottom = X if not trunk else data
            if isinstance(teacher, Future):  # made while the trunk pretrained (see fit)
                teacher = teacher.result()
            heads = list(zip(teacher, self._bits, self._noise, rng.spawn(len(self._bits))))
            fitted = list(pool.map(lambda head: self._fit_head(trunk, bottom, X, *head), heads))
        self.heads_ = [ae for ae, _, _ in fitted]
        self.finetune_loss_ = [loss for _, loss, _ in fitted]
        self.bimodality_ = [b for _, _, b in fitted]
        return self

    def _fit_head(self, trunk: list[RBM], bottom, X, teacher, bits: int, noise_std: float, rng):
        """One code head: its RBM on the trunk's top activations (``bottom``), then the
        unrolled stack fine-tuned on ``X``; returns (autoencoder, loss, bimodality)."""
        kind = "poisson" if not trunk else "binary"
        code_rbm = self._pretrain_rbm(bottom, bits, kind, rng, f"pretrain {bottom.shape[1]}-{bits}")
        ae = Autoencoder.unroll(trunk + [code_rbm])
        loss = self._finetune(ae, X, teacher, noise_std, rng, f"fine-tune {bits}-bit")
        acts = _transform_in_batches(X, lambda v: autoencoder.encode(ae.encoder, v))
        return ae, loss, bimodality(acts)

    # -- inference -----------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """Code activations before thresholding, every head side by side.

        Returns
        -------
        ndarray of float32, shape (n_samples, sum(n_bits))
        """
        check_is_fitted(self, "heads_")
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float32, reset=False)
        return np.hstack(
            [_transform_in_batches(X, lambda v, ae=ae: autoencoder.encode(ae.encoder, v)) for ae in self.heads_]
        ).astype(np.float32)

    def encode(self, X) -> list[np.ndarray]:
        """Binary codes, one bool array of shape (n_samples, bits) per head."""
        acts = self.transform(X)
        splits = np.cumsum(self._bits)[:-1]
        return [threshold(a) for a in np.split(acts, splits, axis=1)]

    def get_arrays(self) -> dict[str, np.ndarray]:
        """All weights as named float32 arrays (see ``autoencoder.to_arrays``)."""
        check_is_fitted(self, "heads_")
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in autoencoder.to_arrays(self.heads_).items()}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        # Training and codes are float32 throughout (half the memory, faster BLAS).
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class _Yielding:
    """The fit's thread pool for the bottom RBM's split batches, yielding a core to
    the neighbours that a ``Future`` (``fit(neighbours=)``) is finding meanwhile:
    until they are found, a batch's parts are computed one after another in the
    calling thread, the same parts summed in the same order (the same result).
    Two threads that wait for each other at every batch run at the pace of the
    slower one, and a third thread on two cores slows each of them by a third; a
    batch's parts in one thread take 1.25x what two free cores take.
    (With another process keeping both cores busy, 20NG's pretraining beside its
    neighbours' search took the same either way, 3 fits each: 31.4-34.5 s part
    after part, 30.9-34.0 s always split.)"""

    def __init__(self, pool: ThreadPoolExecutor, teacher) -> None:
        self.pool, self.teacher = pool, teacher

    def map(self, fn, items):
        if isinstance(self.teacher, Future) and not self.teacher.done():
            return map(fn, items)
        return self.pool.map(fn, items)


def bimodality(activations: np.ndarray, margin: float = 0.1) -> float:
    """Fraction of activations within ``margin`` of 0 or 1: how little thresholding loses."""
    if activations.size == 0:
        return float("nan")
    return float(np.mean((activations < margin) | (activations > 1 - margin)))
