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
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from semhash import autoencoder, kernels
from semhash.autoencoder import Autoencoder
from semhash.codes import threshold
from semhash.rbm import RBM, cd1_gradients


def _progress(iterable: Iterable, verbose: bool, desc: str, total: int | None = None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not verbose, file=sys.stderr, leave=True)


def _minibatches(X, batch_size: int, rng: np.random.Generator):
    """Yield minibatches of the rows of ``X`` in a random order, sparse if ``X`` is:
    the layers that read word counts multiply them sparse (4-6x faster than dense
    at 2.5% non-zeros, 20NG) and densify each batch only for elementwise work."""
    order = rng.permutation(X.shape[0])
    for start in range(0, len(order), batch_size):
        yield X[order[start : start + batch_size]]


def _transform_in_batches(X, fn, batch_size: int = 4096) -> np.ndarray:
    """Apply ``fn`` to row blocks of ``X`` (sparse or dense) and stack the results."""
    out = [fn(X[start : start + batch_size]) for start in range(0, X.shape[0], batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _flat(a: np.ndarray) -> np.ndarray:
    """A gradient as the contiguous float32 vector the update kernels take."""
    return np.ascontiguousarray(a, np.float32).reshape(-1)


class Adam:
    """Adam (Kingma & Ba) over a list of arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
        # The kernel updates flat views: a copy would drop the update silently.
        assert all(p.dtype == np.float32 and p.flags.c_contiguous for p in params)
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        scale = self.lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            kernels.adam_step(
                p.reshape(-1), _flat(g), m.reshape(-1), v.reshape(-1), self.b1, self.b2, scale, self.eps
            )


class SemanticHasher(TransformerMixin, BaseEstimator):
    """Learn binary codes for bag-of-words documents (Salakhutdinov & Hinton, 2009).

    Parameters
    ----------
    n_bits : int or tuple of int, default=(28, 256)
        Code width of each head. ``encode`` returns one bit array per head.
    hidden_sizes : tuple of int, default=(500, 250, 125)
        Widths of the shared trunk between the vocabulary and the code layers.
    n_epochs_pretrain : int, default=50
        CD-1 epochs per RBM (the Science paper's 50). On 20NG, 20 -> 50 epochs:
        precision@100 of the 28-bit codes 0.339 -> 0.359, of the 256-bit codes
        0.383 -> 0.394 (bench/trials.py).
    n_epochs_finetune : int, default=20
        Backprop epochs per head. On 20NG, 10 -> 20 epochs: precision@100 0.367 ->
        0.370, bimodality (address, code) 0.79/0.76 -> 0.83/0.78, index 127 -> 193 s.
    batch_size : int, default=100
    learning_rate_pretrain : float, default=0.1
        CD-1 step size of the binary RBMs (Hinton's recipe).
    learning_rate_poisson : float, default=2.0
        CD-1 step size of the bottom (constrained Poisson) RBM, divided by the mean
        document length because its inputs are counts: its gradient grows with N.
        Measured on 20NG: 8.0 diverges (every hidden unit off), 0.5 barely learns.
    learning_rate_finetune : float, default=1e-3
        Adam step size.
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
        through the draw (:func:`semhash.autoencoder.loss_and_gradients`). The
        decoder so learns from codes like the ones the index stores. On 20NG
        (precision@100 of the Hamming ranking, seeds 0 and 1): 28-bit address
        0.395 / 0.403 -> 0.418 / 0.430, 256-bit code 0.441 / 0.443 -> 0.444 /
        0.454, bimodality unchanged (BENCHMARKS.md). Without the noise (std 0)
        the draws alone do worse (0.383 and 0.332, seed 0).
    random_state : int, RandomState or None, default=0
    verbose : bool, default=False
        Progress bars on stderr.

    Attributes
    ----------
    heads_ : list of Autoencoder
        One fine-tuned autoencoder per code width.
    n_features_in_ : int
    bimodality_ : list of float
        Per head, the fraction of training code activations within 0.1 of 0 or 1.
    finetune_loss_ : list of float
        Per head, the mean training loss of the last fine-tuning epoch.

    Notes
    -----
    ``fit`` uses as many threads as the process may run on cores
    (``os.sched_getaffinity``), each with one BLAS thread: the bottom RBM splits
    each batch between them, and the heads are fine-tuned side by side (with the
    sparse products and the one-pass updates, training on 20NG became 2.0x faster
    on 2 cores; BENCHMARKS.md, "Training speed"). The result does not depend on the
    threads' timing; their number changes only the float rounding of the bottom
    RBM's split batches.

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
        n_epochs_pretrain: int = 50,
        n_epochs_finetune: int = 20,
        batch_size: int = 100,
        learning_rate_pretrain: float = 0.1,
        learning_rate_poisson: float = 2.0,
        learning_rate_finetune: float = 1e-3,
        noise_std: float | Sequence[float] | None = None,
        weight_decay: float = 2e-4,
        code_penalty: float = 0.0,
        binary_codes: bool = True,
        random_state=0,
        verbose: bool = False,
    ):
        self.n_bits = n_bits
        self.hidden_sizes = hidden_sizes
        self.n_epochs_pretrain = n_epochs_pretrain
        self.n_epochs_finetune = n_epochs_finetune
        self.batch_size = batch_size
        self.learning_rate_pretrain = learning_rate_pretrain
        self.learning_rate_poisson = learning_rate_poisson
        self.learning_rate_finetune = learning_rate_finetune
        self.noise_std = noise_std
        self.weight_decay = weight_decay
        self.code_penalty = code_penalty
        self.binary_codes = binary_codes
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------
    @property
    def _bits(self) -> tuple[int, ...]:
        return (self.n_bits,) if np.isscalar(self.n_bits) else tuple(self.n_bits)

    @property
    def _noise(self) -> tuple[float, ...]:
        if self.noise_std is None:
            return tuple(4.0 if b <= 64 else 8.0 for b in self._bits)
        if np.isscalar(self.noise_std):
            return (float(self.noise_std),) * len(self._bits)
        return tuple(float(x) for x in self.noise_std)

    def _validate_params(self) -> None:
        if not self._bits or any(int(b) != b or b < 1 for b in self._bits):
            raise ValueError(f"n_bits must be positive integers, got {self.n_bits!r}")
        if any(int(s) != s or s < 1 for s in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")
        for name in ("n_epochs_pretrain", "n_epochs_finetune"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if len(self._noise) != len(self._bits) or min(self._noise) < 0:
            raise ValueError(f"noise_std must be >= 0, one per code width, got {self.noise_std!r}")
        if self.code_penalty < 0:
            raise ValueError(f"code_penalty must be >= 0, got {self.code_penalty!r}")

    # -- training schedule -------------------------------------------------------
    def _pretrain_rbm(self, X, n_hidden: int, kind: str, rng, desc: str, pool=None, n_parts: int = 1) -> RBM:
        """CD-1 with momentum 0.5 -> 0.9 after 5 epochs and L2 weight cost; with a
        thread pool, each batch is split in ``n_parts`` (see ``cd1_gradients``)."""
        rbm = RBM.init(X.shape[1], n_hidden, kind, rng)
        lr = self.learning_rate_pretrain
        if kind == "poisson":
            lr = self.learning_rate_poisson / max(float(X.sum()) / max(X.shape[0], 1), 1.0)
        velocity = [np.zeros_like(rbm.W), np.zeros_like(rbm.b_visible), np.zeros_like(rbm.b_hidden)]
        bar = _progress(range(self.n_epochs_pretrain), self.verbose, desc)
        for epoch in bar:
            momentum = 0.5 if epoch < 5 else 0.9
            errors = []
            for v in _minibatches(X, self.batch_size, rng):
                dW, dbv, dbh, err = cd1_gradients(rbm, v, rng, pool, n_parts)
                for vel, g, p, decay in zip(
                    velocity, (dW, dbv, dbh), (rbm.W, rbm.b_visible, rbm.b_hidden), (self.weight_decay, 0.0, 0.0)
                ):
                    kernels.momentum_step(p.reshape(-1), vel.reshape(-1), _flat(g), momentum, lr, decay)
                errors.append(err)
            bar.set_postfix(recon_error=f"{np.mean(errors):.4g}")
        return rbm

    def _finetune(self, ae: Autoencoder, X, noise_std: float, rng, desc: str) -> float:
        """Backprop through the unrolled net with noisy code inputs (and binary codes
        drawn from them, with ``binary_codes``); returns the last epoch's mean loss
        per document."""
        n_code = ae.encoder[-1][0].shape[1]
        opt = Adam(ae.params(), self.learning_rate_finetune)
        loss = float("nan")
        bar = _progress(range(self.n_epochs_finetune), self.verbose, desc)
        for _ in bar:
            losses, sizes = [], []
            for v in _minibatches(X, self.batch_size, rng):
                noise = (noise_std * rng.standard_normal((v.shape[0], n_code))).astype(np.float32)
                uniform = rng.random((v.shape[0], n_code), dtype=np.float32) if self.binary_codes else None
                batch_loss, grads = autoencoder.loss_and_gradients(ae, v, noise, self.code_penalty, uniform)
                opt.step(grads)
                losses.append(batch_loss * v.shape[0])
                sizes.append(v.shape[0])
            loss = float(np.sum(losses) / np.sum(sizes))
            bar.set_postfix(loss=f"{loss:.4g}")
        return loss

    def fit(self, X, y=None) -> SemanticHasher:
        """Pretrain and fine-tune on word counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_words)
            Word counts (non-negative).
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float32, reset=True)
        if (X.data if hasattr(X, "tocsr") else X).min(initial=0) < 0:
            raise ValueError("Negative values in data passed to SemanticHasher: X must hold word counts")
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        # One BLAS thread: training multiplies small blocks (100 documents at a time),
        # where OpenBLAS's threads spin-wait on each other. With one core busy elsewhere
        # the 2-vCPU dev VM trained 10x slower with 2 threads than with 1 (38-46 s
        # against 4.0 s, sample corpus, 5 + 3 epochs).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, rng)

    def _fit(self, X, rng) -> SemanticHasher:
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
                split = (pool, n_threads) if k == 0 else (None, 1)
                rbm = self._pretrain_rbm(data, size, kind, rng, desc, *split)
                trunk.append(rbm)
                data = _transform_in_batches(data, rbm.hidden_probs)

            bottom = X if not trunk else data
            heads = list(zip(self._bits, self._noise, rng.spawn(len(self._bits))))
            fitted = list(pool.map(lambda head: self._fit_head(trunk, bottom, X, *head), heads))
        self.heads_ = [ae for ae, _, _ in fitted]
        self.finetune_loss_ = [loss for _, loss, _ in fitted]
        self.bimodality_ = [b for _, _, b in fitted]
        return self

    def _fit_head(self, trunk: list[RBM], bottom, X, bits: int, noise_std: float, rng):
        """One code head: its RBM on the trunk's top activations (``bottom``), then the
        unrolled stack fine-tuned on ``X``; returns (autoencoder, loss, bimodality)."""
        kind = "poisson" if not trunk else "binary"
        code_rbm = self._pretrain_rbm(bottom, bits, kind, rng, f"pretrain {bottom.shape[1]}-{bits}")
        ae = Autoencoder.unroll(trunk + [code_rbm])
        loss = self._finetune(ae, X, noise_std, rng, f"fine-tune {bits}-bit")
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


def bimodality(activations: np.ndarray, margin: float = 0.1) -> float:
    """Fraction of activations within ``margin`` of 0 or 1: how little thresholding loses."""
    if activations.size == 0:
        return float("nan")
    return float(np.mean((activations < margin) | (activations > 1 - margin)))
