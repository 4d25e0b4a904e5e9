"""The pieces of a training schedule that ``hasher.py`` puts together: progress
bars, minibatches and how many, Adam, early stopping. No model math (``rbm.py``,
``autoencoder.py``) and no schedule of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import numpy as np

from semhash import kernels


def progress(iterable: Iterable, verbose: int, desc: str, total: int | None = None):
    """A layer's epochs, with a bar of its own (and its loss) at ``verbose >= 2``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=verbose < 2, file=sys.stderr, leave=True)


class Training:
    """One bar over a whole fit (``verbose == 1``), in units of work: each step
    counts the weights it multiplies, so that the time left holds although a step of
    the bottom RBM costs 40 of the code RBM's. The heads train side by side and
    advance it together, under a lock."""

    def __init__(self, total: float, verbose: int):
        import threading

        from tqdm.auto import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(
            total=total, desc="training", file=sys.stderr, disable=verbose != 1,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )

    def advance(self, units: float) -> None:
        with self._lock:
            self._bar.update(units)

    def close(self) -> None:
        self._bar.close()


#: Fewest minibatch steps a layer trains for (when its epochs are not 0): the epochs
#: are stretched to reach it on small corpora. Adam's steps are small (1e-3 to 3e-3
#: of a weight), so a corpus of 60 documents, one batch an epoch, left 5 epochs'
#: model untrained: every code alike. 20NG's 113 batches an epoch are past it.
MIN_UPDATES = 200


#: Rows of a minibatch when ``batch_size`` is left to the corpus, and the factor its
#: step sizes are multiplied by (Adam's square-root rule for a batch twice as big).
#: A 20NG fine-tuning step of 200 rows costs 0.87x two of 100 (bigger products, half
#: the Adam passes), and the codes lost nothing: 20NG precision@100, default /
#: codes alone, 0.6537 / 0.5765 against 0.6575 / 0.5696 with 100 rows (400 rows and
#: twice the steps: 0.6491 / 0.5617, not taken).
LARGE_BATCH, LARGE_BATCH_STEP = 200, 2**0.5


def epochs(epochs: int, n: int, batch_size: int) -> int:
    """``epochs``, or more to take at least :data:`MIN_UPDATES` steps over ``n`` rows."""
    per_epoch = -(-n // batch_size)
    return 0 if epochs == 0 or n == 0 else max(epochs, -(-MIN_UPDATES // per_epoch))


def minibatches(rows: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Yield minibatches of the row numbers ``rows``, in a random order. The
    layers that read word counts multiply a sparse batch sparse (4-6x faster than
    dense at 2.5% non-zeros, 20NG) and densify it only for elementwise work."""
    order = rows[rng.permutation(rows.size)]
    for start in range(0, rows.size, batch_size):
        yield order[start : start + batch_size]


#: Fewest held-back rows early stopping judges by (``SemanticHasher(early_stopping=True)``);
#: a smaller corpus trains its fixed epochs. Most rows held back: more would slow each
#: epoch's check and take documents from training for no better judgement.
MIN_HELD_BACK, MAX_HELD_BACK = 50, 1000


class Stopper:
    """Early stopping: fed the held-back loss after each epoch, it says when that loss
    has not fallen by ``tol`` of its best for ``patience`` epochs in a row."""

    def __init__(self, patience: int, tol: float):
        self.patience, self.tol = patience, tol
        self.best, self.stale, self.curve = float("inf"), 0, []

    def __call__(self, loss: float) -> bool:
        self.curve.append(loss)
        if not self.curve[:-1] or loss < self.best - self.tol * abs(self.best):
            self.best, self.stale = loss, 0
        else:
            self.stale += 1
        return self.stale >= self.patience


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
