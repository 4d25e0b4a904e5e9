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

This module holds the model only; the schedule (epochs, momentum ramp) lives in
``hasher.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free for float32 inputs."""
    # exp(-x) overflows for x < -88 in float32; clipping changes nothing visible.
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


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
    rbm: RBM, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """CD-1 estimate of the log-likelihood gradient on a minibatch.

    Parameters
    ----------
    rbm : RBM
    v : ndarray, shape (batch, n_visible)
        Data (counts for the Poisson layer, probabilities in [0, 1] otherwise).
    rng : numpy Generator
        Draws the binary hidden states of the positive phase.

    Returns
    -------
    dW, db_visible, db_hidden : ndarrays, averaged over the batch
        Ascent directions (positive minus negative statistics).
    error : float
        Mean squared reconstruction error per visible unit (for progress display).
    """
    n = v.shape[0]
    h_pos = rbm.hidden_probs(v)  # (batch, n_hidden)
    h_sample = (rng.random(h_pos.shape, dtype=np.float32) < h_pos).astype(np.float32)
    length = v.sum(axis=1) if rbm.kind == "poisson" else None
    v_neg = rbm.visible_mean(h_sample, length)  # (batch, n_visible)
    h_neg = rbm.hidden_probs(v_neg)
    dW = (v.T @ h_pos - v_neg.T @ h_neg) / n
    db_visible = (v - v_neg).mean(axis=0)
    db_hidden = (h_pos - h_neg).mean(axis=0)
    error = float(np.mean((v - v_neg) ** 2))
    return dW, db_visible, db_hidden, error
