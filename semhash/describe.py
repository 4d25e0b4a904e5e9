"""What ``semhash info`` says about an index: its documents, labels, vocabulary,
model, how it reads texts, and how its addresses spread."""

from __future__ import annotations

import numpy as np


def info(index) -> dict:
    """What is in ``index``, as a JSON-ready dict (``semhash info --json``).

    Keys: database, size_bytes, bytes_per_document (the file's size over its
    documents; None without any), model_bytes (the encoders' weights, which do not
    grow with the documents), compact (whether it keeps only what a search by
    codes needs), schema_version, semhash_version, created,
    updated, documents, labels ({label: count}, most common first),
    vocabulary_size, stem (whether its words and terms are Snowball stems),
    oov_share, terms (that rank the shortlist; 0: codes
    alone), neighbours (kept per document; 0: none yet), reads (how texts are
    read: "messages as Subject + body" when every document built from was a
    mail or news message, "whole texts (no mail or news headers ...)" when
    none was, a count of each when some were; "whole texts" for indexes
    built before messages were read apart), model
    ({trunk: layer widths from the vocabulary
    up, address_bits, code_bits, trained_on: documents the model was trained on}), bimodality ({address, code}: share of code
    activations near 0 or 1 on the training set), addresses ({distinct,
    histogram: {"1": addresses holding 1 document, "2-3": ..., "4-7": ...}}).
    """
    shapes = index.stored.weight_shapes()
    heads = []
    while f"head{len(heads)}.encoder0.W" in shapes:
        h, k = len(heads), 0
        layers = [shapes[f"head{h}.encoder0.W"][0]]
        while f"head{h}.encoder{k}.W" in shapes:
            layers.append(shapes[f"head{h}.encoder{k}.W"][1])
            k += 1
        heads.append(layers)
    trunk = heads[0][:-1]
    bimodality = index.meta.get("bimodality") or [None, None]
    _, per_address = np.unique(index.table.addresses, return_counts=True)
    histogram: dict[str, int] = {}
    if per_address.size:
        bins = np.floor(np.log2(per_address)).astype(int)
        for b, n in enumerate(np.bincount(bins).tolist()):
            if n:  # ("0 holding 16-31 documents" said nothing)
                histogram["1" if b == 0 else f"{2**b}-{2 ** (b + 1) - 1}"] = n
    size = index.stored.path.stat().st_size
    return {
        "database": str(index.stored.path),
        "size_bytes": size,
        "bytes_per_document": round(size / len(index), 1) if len(index) else None,
        "model_bytes": index.stored.model_bytes(),
        "compact": index.stored.compact,
        "schema_version": index.meta.get("schema_version"),
        "semhash_version": index.meta.get("semhash_version"),
        "created": index.meta.get("created"),
        "updated": index.meta.get("updated"),
        "documents": len(index),
        "labels": index.stored.label_counts(),
        "vocabulary_size": len(index.vocabulary),
        "stem": index.stem,
        "terms": index.n_terms,
        "neighbours": index.n_neighbours,
        "oov_share": index.meta.get("oov_share"),
        "reads": reads(index),
        "model": {
            "trunk": trunk, "address_bits": heads[0][-1], "code_bits": heads[1][-1],
            "trained_on": index.meta.get("n_trained"),  # None: built before --train-sample existed
        },
        "bimodality": {"address": bimodality[0], "code": bimodality[1]},
        "addresses": {"distinct": int(per_address.size), "histogram": histogram},
    }


def reads(index) -> str:
    """How the index reads texts, as the documents it was built from were read."""
    if index.whole_text:
        return "whole texts"
    n_messages, n_documents = index.meta.get("messages") or (None, None)
    if n_messages is None:  # built before the count was kept
        return "mail and news messages as Subject + body, other texts whole"
    if n_messages == 0:
        return "whole texts (no mail or news headers in the documents it was built from)"
    if n_messages == n_documents:
        return "messages as Subject + body"
    return f"messages as Subject + body ({n_messages:,} of the {n_documents:,} documents it was built from), other texts whole"
