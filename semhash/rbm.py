"""Restricted Boltzmann machines for layer-wise pretraining: the math of one layer.

Two kinds of visible units:

- ``"poisson"``, the bottom layer over word counts (the constrained Poisson model of
  Salakhutdinov & Hinton, 2009): the hidden units read the raw counts ``v``, so their
  input from a document is N times its word distribution; the visible side is a
  softmax over words whose rates are rescaled to sum to the document length N.
- ``"binary"``, every layer above: logistic visible and hidden units.

Both train by one step of contrastive divergence (CD-1). The negative phase uses
mean-field visible reconstructions, which are deterministic and, for the Poisson
layer, avoid drawing N multinomial samples per document.

This module holds the model only; the schedule (epochs, Adam steps) lives in
``hasher.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # concurrent.futures imports logging: 9 ms of a one-shot query
    from concurrent.futures import Executor


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free for float32 inputs."""
    # exp(-x) overflows for x < -88 in float32; clipping changes nothing visible.
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def to_dense(x) -> np.ndarray:
    """``x`` as an ndarray; a scipy sparse matrix is densified (without importing scipy:
    the query path imports this module)."""
    return x.toarray() if hasattr(x, "toarray") else x


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row max for stability."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class RBM:
    """Parameters of one RBM layer.

    Attributes
    ----------
    W : ndarray, shape (n_visible, n_hidden)
    b_visible : ndarray, shape (n_visible,)
    b_hidden : ndarray, shape (n_hidden,)
    kind : {"poisson", "binary"}
        Type of the visible units.
    """

    W: np.ndarray
    b_visible: np.ndarray
    b_hidden: np.ndarray
    kind: str = "binary"

    @classmethod
    def init(cls, n_visible: int, n_hidden: int, kind: str, rng: np.random.Generator) -> RBM:
        """Small random weights, zero biases (Hinton's recipe uses 0.1·N(0,1) on
        [0,1] inputs; counts are larger, so the Poisson layer starts 10x smaller)."""
        scale = 0.01 if kind == "poisson" else 0.1
        W = (scale * rng.standard_normal((n_visible, n_hidden))).astype(np.float32)
        return cls(W, np.zeros(n_visible, np.float32), np.zeros(n_hidden, np.float32), kind)

    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        """p(h=1 | v), shape (batch, n_hidden). For the Poisson layer ``v`` is counts."""
        return sigmoid(v @ self.W + self.b_hidden)

    def visible_mean(self, h: np.ndarray, length: np.ndarray | None = None) -> np.ndarray:
        """Mean-field reconstruction of the visible units, shape (batch, n_visible).

        For the Poisson layer the rates are ``length * softmax(h W^T + b)``, so each
        reconstruction has the same number of words as its document.
        """
        x = h @ self.W.T + self.b_visible
        if self.kind == "poisson":
            return softmax(x) * length[:, None]
        return sigmoid(x)


def cd1_gradients(
    rbm: RBM, v: np.ndarray, rng: np.random.Generator, pool: Executor | None = None, n_parts: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """CD-1 estimate of the log-likelihood gradient on a minibatch.

    Parameters
    ----------
    rbm : RBM
    v : ndarray or scipy sparse matrix, shape (batch, n_visible)
        Data (counts for the Poisson layer, probabilities in [0, 1] otherwise).
    rng : numpy Generator
        Draws the binary hidden states of the positive phase.
    pool : concurrent.futures.Executor, optional
    n_parts : int, default=1
        With a pool of threads, the batch's rows are split in ``n_parts`` computed
        side by side (numpy and scipy release the GIL in the products). The random
        draws are made before the split, so the result does not depend on it, up to
        float rounding.

    Returns
    -------
    dW, db_visible, db_hidden : ndarrays, averaged over the batch
        Ascent directions (positive minus negative statistics).
    error : float
        Mean squared reconstruction error per visible unit (for progress display).
    """
    n, (n_visible, n_hidden) = v.shape[0], rbm.W.shape
    uniforms = rng.random((n, n_hidden), dtype=np.float32)
    n_parts = min(n_parts, n) if pool is not None else 1
    bounds = [n * i // n_parts for i in range(n_parts + 1)]
    parts = [(v[a:b], uniforms[a:b]) for a, b in zip(bounds, bounds[1:])]
    sums = list(pool.map(lambda p: _cd1_sums(rbm, *p), parts)) if n_parts > 1 else [_cd1_sums(rbm, *parts[0])]
    dW, db_visible, db_hidden, error = (sum(x) for x in zip(*sums))
    return dW / n, db_visible / n, db_hidden / n, float(error) / (n * n_visible)


def _cd1_sums(rbm: RBM, v, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """CD-1 statistics of some rows, summed (not averaged) over them."""
    dense = to_dense(v)  # the products below read v as it came (sparse is faster)
    h_pos = rbm.hidden_probs(v)  # (rows, n_hidden)
    h_sample = (uniforms < h_pos).astype(np.float32)
    length = dense.sum(axis=1) if rbm.kind == "poisson" else None
    v_neg = rbm.visible_mean(h_sample, length)  # (rows, n_visible)
    h_neg = rbm.hidden_probs(v_neg)
    dW = v.T @ h_pos - v_neg.T @ h_neg
    diff = dense - v_neg
    return dW, diff.sum(axis=0), (h_pos - h_neg).sum(axis=0), float(np.sum(diff * diff))


def reconstruction_error(rbm: RBM, v) -> float:
    """Mean squared error per visible unit of the mean-field reconstruction of ``v``
    from its hidden probabilities (no sampling: the same rows give the same error)."""
    dense = to_dense(v)
    length = dense.sum(axis=1) if rbm.kind == "poisson" else None
    diff = dense - rbm.visible_mean(rbm.hidden_probs(v), length)
    return float(np.mean(diff * diff))
