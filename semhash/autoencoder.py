"""The unrolled deep autoencoder: forward pass, gradients, encoding. No I/O, no schedule.

Encoder: counts -> logistic layers -> logistic code units. The first layer reads raw
counts, i.e. N times the word distribution, as the pretrained Poisson RBM did.
Decoder: code -> logistic layers -> 2000-way softmax over words. The loss is the
N-weighted multinomial cross-entropy against counts/N, which is simply
``-sum(counts * log q)``: a document of N words counts N times.

During fine-tuning, Gaussian noise is added to the code units' total input: to carry
information through the noise the net must push those inputs far from zero, so the
code activities become bimodal and thresholding them at 0.5 loses little. The
decoder may also read binary codes drawn from those activities, with the gradient
passed straight through the draw (``uniform``): it then learns from codes like
those the index stores.

numpy only: the query path imports this module, not scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semhash import lazy
from semhash.rbm import RBM, sigmoid, softmax, to_dense

Layer = tuple[np.ndarray, np.ndarray]  # (W of shape (n_in, n_out), b of shape (n_out,))


@dataclass
class Autoencoder:
    """Untied weights of an unrolled RBM stack.

    Attributes
    ----------
    encoder : list of (W, b)
        From the vocabulary up to the code layer; the last layer is the code.
    decoder : list of (W, b)
        From the code down to the vocabulary; the last layer gives softmax logits.
    """

    encoder: list[Layer]
    decoder: list[Layer]

    @classmethod
    def unroll(cls, rbms: list[RBM]) -> Autoencoder:
        """Encoder = the RBMs' recognition weights, decoder = their transposes,
        copied so fine-tuning unties them."""
        encoder = [(r.W.copy(), r.b_hidden.copy()) for r in rbms]
        decoder = [(r.W.T.copy(), r.b_visible.copy()) for r in reversed(rbms)]
        return cls(encoder, decoder)

    def params(self) -> list[np.ndarray]:
        """Every parameter array, in a fixed order (encoder then decoder, W then b)."""
        return [a for layer in self.encoder + self.decoder for a in layer]


def encode(encoder: list[Layer], counts: np.ndarray) -> np.ndarray:
    """Code activations (probabilities, no noise), shape (n, n_code)."""
    (W, b), rest = encoder[0], encoder[1:]
    a = sigmoid(_counts_times(counts, W) + b)
    for W, b in rest:
        a = sigmoid(a @ W + b)
    return a


def _counts_times(counts, W: np.ndarray) -> np.ndarray:
    """``counts @ W``: for many dense rows, by :func:`semhash.kernels.counts_times`
    once the kernels pay (it skips the zeros BLAS multiplies: 7,532 20NG test posts,
    two heads, 0.4 s of BLAS)."""
    if isinstance(counts, np.ndarray) and lazy.use_kernels(_BLAS_NS_PER_MAC * counts.shape[0] * W.size):
        return lazy.kernels.counts_times(np.ascontiguousarray(counts, np.float32), np.ascontiguousarray(W, np.float32))
    return counts @ W


_BLAS_NS_PER_MAC = 0.027  # a dense float32 product's time per multiply-add, 2 cores (20NG test posts)


def loss_and_gradients(
    ae: Autoencoder,
    counts: np.ndarray,
    noise: np.ndarray | None = None,
    code_penalty: float = 0.0,
    uniform: np.ndarray | None = None,
) -> tuple[float, list[np.ndarray]]:
    """Mean per-document loss and its gradient with respect to ``ae.params()``.

    Parameters
    ----------
    ae : Autoencoder
    counts : ndarray or scipy sparse matrix, shape (batch, n_words)
    noise : ndarray, shape (batch, n_code), optional
        Added to the code units' total input.
    code_penalty : float, default=0
        Weight of ``sum(c * (1 - c))`` over the noise-free code activations ``c``,
        which is 0 only where every activation is 0 or 1.
    uniform : ndarray, shape (batch, n_code), optional
        Draws from [0, 1): each code unit is then on (1) where its draw is below its
        (noisy) activation and off (0) elsewhere, so the decoder learns from binary
        codes, as the index stores them; the gradient passes straight through the
        draw to the activation (the straight-through estimator, Bengio, Leonard
        and Courville 2013).

    Returns
    -------
    loss : float
        ``(-sum(counts * log softmax(logits)) + code_penalty * sum(c * (1 - c))) / batch``.
    grads : list of ndarray
        Same order and shapes as ``ae.params()``.
    """
    n = counts.shape[0]
    dense = to_dense(counts)  # the bottom layer's products read counts as they came
    # Forward, keeping each layer's input for the backward pass.
    inputs = []
    a = counts
    for k, (W, b) in enumerate(ae.encoder):
        inputs.append(a)
        z = a @ W + b  # (batch, n_out)
        if k == len(ae.encoder) - 1:
            code = sigmoid(z) if code_penalty else None  # the noise-free activations
            if noise is not None:
                z = z + noise
        a = sigmoid(z)
        if k == len(ae.encoder) - 1 and uniform is not None:
            drawn_from = a  # the backward pass goes through the draw to these
            a = (uniform < a).astype(a.dtype)
    for W, b in ae.decoder[:-1]:
        inputs.append(a)
        a = sigmoid(a @ W + b)
    inputs.append(a)
    W_out, b_out = ae.decoder[-1]
    logits = a @ W_out + b_out  # (batch, n_words)
    log_q = logits - logits.max(axis=1, keepdims=True)
    log_q -= np.log(np.exp(log_q).sum(axis=1, keepdims=True))
    loss = -(dense * log_q).sum()
    if code_penalty:
        loss += code_penalty * (code * (1 - code)).sum()
    loss = float(loss / n)

    # Backward. d loss / d logits = (N q - counts) / batch.
    length = dense.sum(axis=1, keepdims=True)
    delta = (np.exp(log_q) * length - dense) / n
    layers = ae.encoder + ae.decoder
    grads: list[np.ndarray] = [None] * (2 * len(layers))  # type: ignore[list-item]
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        x = inputs[k]
        grads[2 * k] = x.T @ delta
        grads[2 * k + 1] = delta.sum(axis=0)
        if k > 0:  # the bottom layer's input is data: no gradient needed
            if k == len(ae.encoder) and uniform is not None:
                x = drawn_from  # straight through the binary code
            delta = (delta @ W.T) * x * (1.0 - x)  # x is the previous layer's sigmoid output
            if k == len(ae.encoder) and code_penalty:  # delta is now the code units' input's
                delta += code_penalty / n * (1 - 2 * code) * code * (1 - code)
    return loss, grads


def reconstruct(ae: Autoencoder, counts: np.ndarray) -> np.ndarray:
    """Word distribution the decoder predicts from the (noise-free) code, shape (n, n_words)."""
    a = encode(ae.encoder, counts)
    for W, b in ae.decoder[:-1]:
        a = sigmoid(a @ W + b)
    W_out, b_out = ae.decoder[-1]
    return softmax(a @ W_out + b_out)


def to_arrays(heads: list[Autoencoder]) -> dict[str, np.ndarray]:
    """Flatten code heads into named arrays (``head0.encoder1.W`` ...) for storage."""
    out = {}
    for h, ae in enumerate(heads):
        for part, layers in (("encoder", ae.encoder), ("decoder", ae.decoder)):
            for k, (W, b) in enumerate(layers):
                out[f"head{h}.{part}{k}.W"] = W
                out[f"head{h}.{part}{k}.b"] = b
    return out


def from_arrays(arrays: dict[str, np.ndarray], encoder_only: bool = False) -> list[Autoencoder]:
    """Inverse of :func:`to_arrays`. With ``encoder_only`` the decoders are left empty
    (the query path needs only the encoders)."""
    heads = []
    h = 0
    while f"head{h}.encoder0.W" in arrays:
        parts = {}
        for part in ("encoder", "decoder"):
            layers = []
            k = 0
            while f"head{h}.{part}{k}.W" in arrays and not (encoder_only and part == "decoder"):
                layers.append((arrays[f"head{h}.{part}{k}.W"], arrays[f"head{h}.{part}{k}.b"]))
                k += 1
            parts[part] = layers
        heads.append(Autoencoder(parts["encoder"], parts["decoder"]))
        h += 1
    return heads
