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

#: How far a short text is lifted towards a typical document's length, in log length:
#: a text of ``n`` known words is read as one of ``n**(1 - LIFT) * typical**LIFT``
#: with the same distribution. The bottom layer reads counts, N times the
#: distribution, so a 4-word query would otherwise carry almost no evidence and land
#: near the average code. Chosen on held-out queries, the Subject lines of training
#: posts, each post's own document left out (precision@10 of the default path / of
#: the codes alone, LIFT 0 / 0.5 / 0.75 / 1): 20NG, 1,630 of them, 0.578 / 0.578 /
#: 0.583 / 0.576 and 0.394 / 0.432 / 0.425 / 0.402; the sample, 1,277, 0.794 / 0.818
#: / 0.822 / 0.822 and 0.304 / 0.683 / 0.757 / 0.768. Training reads its short
#: queries lifted the same way (``SemanticHasher(short_queries=...)``).
LIFT = 0.75

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


def lift(counts: np.ndarray, typical: float) -> np.ndarray:
    """Scale, in place, the rows of ``counts`` shorter than ``typical`` words towards
    that length by :data:`LIFT` of the way in log length; returns ``counts``."""
    known = counts.sum(axis=1)
    short = (known > 0) & (known < typical)
    counts[short] *= ((typical / known[short]) ** LIFT)[:, None].astype(counts.dtype)
    return counts


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
    target=None,
    pairs: list[tuple[np.ndarray, np.ndarray]] = (),
    pair_weight: float = 0.0,
    temperature: float = 0.8,
    reconstructed: int | None = None,
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
    target : ndarray or scipy sparse matrix, shape (reconstructed, n_words), optional
        The word counts the decoder must reconstruct, ``counts`` if omitted: with
        neighbour supervision, a document's counts plus its neighbourhood's word
        distribution scaled to its length (``SemanticHasher.fit``); for a short
        query drawn from a document, that document's.
    pairs : list of (anchors, positives), optional
        Row numbers of the batch: each anchor's code should be nearer its positive's
        (a neighbour, or a short query drawn from it) than the other positives'
        (:func:`pair_loss`, weighted by ``pair_weight``).
    reconstructed : int, optional
        Only the first rows are decoded (all if omitted): the rest are there for
        ``pairs`` alone, whose codes need the encoder only, a third of the cost.

    Returns
    -------
    loss : float
        ``-sum(target * log softmax(logits)) / reconstructed + code_penalty * sum(c * (1 - c)) / batch``,
        plus ``pair_weight`` times the mean pair loss.
    grads : list of ndarray
        Same order and shapes as ``ae.params()``.
    """
    n = counts.shape[0]
    m = n if reconstructed is None else reconstructed
    inputs, activations, code, logits = _forward(ae, counts, noise, code_penalty, uniform, m)
    # d loss / d logits = (N q - target) / m, N the target's length.
    loss, delta = softmax_xent(logits, counts[:m] if target is None else target, 1 / max(m, 1))
    if code_penalty:
        loss += float(code_penalty * (code * (1 - code)).sum() / n)
    code_grad = np.zeros_like(activations)
    if pair_weight:
        for anchors, positives in pairs:
            pair, grad = pair_loss(activations, anchors, positives, temperature)
            loss += pair_weight * pair
            code_grad += pair_weight * grad
    return loss, _backward(ae, inputs, delta, code_grad, activations, code, code_penalty / n)


def loss(ae: Autoencoder, counts, noise=None, uniform=None, target=None) -> float:
    """The mean per-document reconstruction loss of :func:`loss_and_gradients`
    (``-sum(target * log softmax(logits)) / n``), forward only: no gradients."""
    n = counts.shape[0]
    logits = _forward(ae, counts, noise, 0.0, uniform, n)[3]
    return softmax_xent(logits, counts if target is None else target, 1 / max(n, 1))[0]


def _forward(ae: Autoencoder, counts, noise, code_penalty: float, uniform, m: int):
    """(each layer's input, the code activations, their noise-free values if
    ``code_penalty`` else None, log softmax of the first ``m`` rows' logits)."""
    inputs = []
    a = counts  # the bottom layer's products read counts as they came (sparse or dense)
    for k, (W, b) in enumerate(ae.encoder):
        inputs.append(a)
        z = a @ W + b  # (batch, n_out)
        if k == len(ae.encoder) - 1:
            code = sigmoid(z) if code_penalty else None  # the noise-free activations
            if noise is not None:
                z = z + noise
        a = sigmoid(z)
    activations = a  # the backward pass goes through a binary draw to these
    if uniform is not None:
        a = (uniform < a).astype(a.dtype)
    a = a[:m]  # only the first rows are decoded
    for W, b in ae.decoder[:-1]:
        inputs.append(a)
        a = sigmoid(a @ W + b)
    inputs.append(a)
    W_out, b_out = ae.decoder[-1]
    return inputs, activations, code, a @ W_out + b_out  # the logits, (m, n_words)


def softmax_xent(logits: np.ndarray, target, scale: float) -> tuple[float, np.ndarray]:
    """(``scale`` times the summed ``-sum(target * log softmax(logits))``, its gradient
    with respect to ``logits``, which it overwrites). A sparse target (training's)
    takes the one-pass kernel; a dense one (tests', or a caller's) numpy, its twin."""
    if hasattr(target, "indptr"):
        from semhash import kernels  # training only: the query path never loads numba for this

        target = target.tocsr()
        loss = kernels.softmax_xent(logits, target.indptr, target.indices, target.data.astype(logits.dtype), scale)
        return float(loss * scale), logits
    dense = to_dense(target)
    log_q = logits - logits.max(axis=1, keepdims=True)
    log_q -= np.log(np.exp(log_q).sum(axis=1, keepdims=True))
    delta = (np.exp(log_q) * dense.sum(axis=1, keepdims=True) - dense) * scale
    return float(-(dense * log_q).sum() * scale), delta


def _backward(ae: Autoencoder, inputs, delta, code_grad, activations, code, penalty: float) -> list[np.ndarray]:
    """Gradients of every parameter from the logits' ``delta`` down; ``code_grad``
    (every row's, updated in place) holds what other terms add at the code units,
    ``penalty`` the code penalty's weight per row."""
    m = delta.shape[0]
    layers = ae.encoder + ae.decoder
    grads: list[np.ndarray] = [None] * (2 * len(layers))  # type: ignore[list-item]
    for k in range(len(layers) - 1, -1, -1):
        W, _ = layers[k]
        x = inputs[k]
        grads[2 * k] = x.T @ delta
        grads[2 * k + 1] = delta.sum(axis=0)
        if k == 0:  # the bottom layer's input is data: no gradient needed
            continue
        if k == len(ae.encoder):  # from the decoded rows back to every row's code units
            code_grad[:m] += delta @ W.T
            delta = code_grad * activations * (1.0 - activations)  # straight through any draw
            if penalty:
                delta += penalty * (1 - 2 * code) * code * (1 - code)
        else:
            delta = (delta @ W.T) * x * (1.0 - x)  # x is the previous layer's sigmoid output
    return grads


def pair_loss(
    activations: np.ndarray, anchors: np.ndarray, positives: np.ndarray, temperature: float
) -> tuple[float, np.ndarray]:
    """Contrastive loss (InfoNCE, symmetric) of code activations, and its gradient.

    Codes are compared as ``u = 2 a - 1`` in [-1, 1]: for binary codes ``u_i . u_j``
    is ``bits - 2 * hamming(i, j)``, so a high similarity is a short Hamming
    distance. Each anchor must pick its own positive among every positive of the
    batch (and each positive its anchor), the others acting as negatives (as in
    SimCLR or CLIP): this shapes the Hamming geometry directly, where a
    reconstruction loss only hopes for it. The similarity is divided by
    ``sqrt(bits) * temperature``: random codes' ``u_i . u_j / bits`` spreads as
    ``1 / sqrt(bits)``, so one temperature suits every code width (on 20NG, 0.1 of
    ``bits`` suited 28 bits and 0.05 suited 256: about 0.8 of ``sqrt(bits)`` both).

    Returns the mean loss per pair and ``d loss / d activations`` (zero on rows in
    no pair), both already divided by the batch's number of pairs.
    """
    m, bits = anchors.shape[0], activations.shape[1]
    u = 2 * activations - 1
    ua, up = u[anchors], u[positives]
    logits = (ua @ up.T) / (np.sqrt(bits) * temperature)
    loss, grad_logits = 0.0, np.zeros_like(logits)
    for side in (logits, logits.T):  # anchors pick positives, positives pick anchors
        shifted = side - side.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss -= float(np.trace(log_p)) / (2 * m)
        g = np.exp(log_p)
        g[np.diag_indices(m)] -= 1
        grad_logits += (g if side is logits else g.T) / (2 * m)
    grad_logits /= np.sqrt(bits) * temperature
    grad = np.zeros_like(activations)
    np.add.at(grad, anchors, 2 * (grad_logits @ up))
    np.add.at(grad, positives, 2 * (grad_logits.T @ ua))
    return loss, grad


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
