"""A 2-D map of an index: a 2-unit autoencoder code beside the first two principal
components of the same documents (the Science 2006 / semantic-hashing figure).

The 2-unit model is trained on the index's stored word counts with the same
recipe as the index's model, but without code noise and with real-valued codes
(``binary_codes=False``): noise, or binary draws, would push every document to one
of the four corners, and a map wants positions, not bits.
"""

from __future__ import annotations

import json

import numpy as np

from semhash.evaluate import _stored_counts


def map_coordinates(index, *, sample: int | None = 5000, epochs: int = 20, seed: int = 0, verbose: bool = False):
    """Fit the 2-D code and the 2-D LSA projection of the indexed documents.

    Parameters
    ----------
    index : semhash.api.Index
    sample : int or None
        Map at most this many documents (random, seeded); None maps all.
    epochs : pretraining and fine-tuning epochs of the 2-unit model

    Returns
    -------
    code_xy : ndarray (n, 2), the 2-unit code activations
    pca_xy : ndarray (n, 2), first two principal components of the TF-IDF vectors
    labels : list of str, the first label of each document ("" if none)
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    from semhash.hasher import SemanticHasher

    index.stored.need_words("`semhash map`")
    counts = _stored_counts(index.stored, index.words)
    labels = [
        (json.loads(x) or [""])[0] for (x,) in index.stored.conn.execute("SELECT labels FROM documents ORDER BY rowid")
    ]
    rng = np.random.default_rng(seed)
    rows = np.arange(counts.shape[0])
    if sample is not None and counts.shape[0] > sample:
        rows = np.sort(rng.choice(counts.shape[0], sample, replace=False))
    counts = counts[rows]
    labels = [labels[i] for i in rows]
    hidden = tuple(index.meta.get("hidden_sizes", (500, 250, 125)))
    hasher = SemanticHasher(
        2, hidden_sizes=hidden, n_epochs_pretrain=epochs, n_epochs_finetune=epochs,
        noise_std=0.0, binary_codes=False, random_state=seed, verbose=verbose,
    ).fit(counts)
    # The paper's map uses linear code units; the logit of our logistic units is
    # their total input, which spreads out what the logistic squashes into the edges.
    act = np.clip(hasher.transform(counts).astype(np.float64), 1e-7, 1 - 1e-7)
    code_xy = np.log(act / (1 - act))
    tfidf = TfidfTransformer().fit_transform(counts).toarray()
    pca_xy = TruncatedSVD(2, random_state=seed).fit_transform(tfidf - tfidf.mean(axis=0))
    return code_xy, pca_xy, labels


def plot_map(code_xy, pca_xy, labels, path: str) -> None:
    """Two scatter panels, one colour per label, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    for ax, xy, title in ((axes[0], code_xy, "2-unit autoencoder code (logits)"), (axes[1], pca_xy, "first two principal components (LSA)")):
        for n in names:
            m = np.array([lab == n for lab in labels])
            ax.scatter(xy[m, 0], xy[m, 1], s=3, color=colour[n], label=n or "(no label)", alpha=0.6, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower center", ncol=min(5, len(names)), markerscale=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if len(names) > 5 else 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
