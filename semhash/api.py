"""The library's front: build an index from documents, open it, query it.

This is the only module that knows the whole pipeline
(files -> tokens -> bag of words -> model -> codes -> store -> search); the CLI is
a thin layer over it.

The query path (``Index.open`` + ``Index.query``) imports numpy, sqlite3 and the
Numba kernels only: no scikit-learn, scipy or sqlite-utils.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TextIO

import numpy as np

from semhash import autoencoder, codes, search, store
from semhash.corpus import Document, ReadStats, iter_documents
from semhash.store import DocumentRow, StoredIndex
from semhash.vocab import count_words

from semhash import __version__

MIN_DOCUMENTS = 10


class BuildError(ValueError):
    """The corpus cannot be indexed (empty, too small, ...)."""


class QueryError(ValueError):
    """The query cannot be answered (e.g. none of its words are in the vocabulary)."""


@dataclass
class BuildSummary:
    n_documents: int
    n_binary: int
    n_unreadable: int
    n_truncated: int
    n_duplicates: int
    vocabulary_size: int
    seconds: float
    bimodality: list[float] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary ``semhash index`` prints at the end."""
        skipped = self.n_binary + self.n_unreadable
        parts = [
            f"indexed {self.n_documents} documents",
            f"skipped {skipped} files ({self.n_binary} binary, {self.n_unreadable} unreadable)",
        ]
        if self.n_truncated:
            parts.append(f"{self.n_truncated} truncated")
        if self.n_duplicates:
            parts.append(f"{self.n_duplicates} duplicate ids ignored")
        parts.append(f"vocabulary {self.vocabulary_size} words")
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Hit:
    id: str
    distance: int


def _progress(iterable, verbose: bool, desc: str, total: int | None = None, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not verbose, file=sys.stderr, unit=unit)


def build_index(
    paths: Sequence[str],
    database: str | os.PathLike,
    *,
    vocab_size: int = 2000,
    address_bits: int = 28,
    code_bits: int = 256,
    hidden_sizes: Sequence[int] = (500, 250, 125),
    n_epochs_pretrain: int = 20,
    n_epochs_finetune: int = 30,
    random_state: int = 0,
    verbose: bool = False,
    stdin: TextIO | None = None,
) -> BuildSummary:
    """Read documents, train the model, encode every document, write the index.

    Parameters
    ----------
    paths : sequence of str
        Directories (walked recursively), files, or ``"-"`` for JSON lines on stdin.
    database : path of the SQLite index to create (replaced atomically if it exists)
    vocab_size : number of words kept (highest document frequency, stop words removed)
    address_bits, code_bits : widths of the short address and the long code
    hidden_sizes : widths of the shared trunk between vocabulary and codes
    n_epochs_pretrain, n_epochs_finetune : training length (see ``SemanticHasher``)
    random_state : seed; the same seed and corpus give the same index
    verbose : progress bars on stderr

    Returns
    -------
    BuildSummary
    """
    from semhash.hasher import SemanticHasher
    from semhash.vocab import fit_vocabulary

    if not 1 <= address_bits <= 63:
        raise BuildError(f"--address-bits must be between 1 and 63, got {address_bits}")
    if code_bits < 1:
        raise BuildError(f"--code-bits must be positive, got {code_bits}")
    if vocab_size < 2:
        raise BuildError(f"--vocab-size must be at least 2, got {vocab_size}")
    start = time.perf_counter()
    stats = ReadStats()
    docs: list[Document] = []
    seen: set[str] = set()
    n_duplicates = 0

    def texts() -> Iterator[str]:
        # One streamed pass: documents are read and vectorized together; only their
        # metadata is kept, never the corpus text.
        nonlocal n_duplicates
        for doc in _progress(iter_documents(paths, stats, stdin=stdin), verbose, "reading and counting words", unit="doc"):
            if doc.id in seen:
                n_duplicates += 1
                continue
            seen.add(doc.id)
            docs.append(Document(doc.id, "", doc.labels, doc.path, doc.content_hash))
            yield doc.text

    try:
        words, df, X = fit_vocabulary(texts(), vocab_size)
    except ValueError as e:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        if "empty vocabulary" not in str(e):
            raise
        words, X = [], None
    n_usable = 0 if X is None else int((np.diff(X.indptr) > 0).sum())
    if n_usable < MIN_DOCUMENTS:
        raise BuildError(
            f"found {len(docs)} documents, {n_usable} with indexable words: "
            f"at least {MIN_DOCUMENTS} are needed to train a model"
        )

    hasher = SemanticHasher(
        (address_bits, code_bits),
        hidden_sizes=tuple(hidden_sizes),
        n_epochs_pretrain=n_epochs_pretrain,
        n_epochs_finetune=n_epochs_finetune,
        random_state=random_state,
        verbose=verbose,
    ).fit(X)
    addresses, long_codes = _encode_all(hasher, X, verbose)

    rows = (
        DocumentRow(d.id, d.path, d.labels, d.content_hash, _counts_dict(X, i, words))
        for i, d in enumerate(docs)
    )
    meta = {
        "semhash_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "address_bits": address_bits,
        "code_bits": code_bits,
        "vocab_size": len(words),
        "hidden_sizes": list(hidden_sizes),
        "n_documents": len(docs),
        "params": {k: v for k, v in hasher.get_params().items() if k != "verbose"},
        "bimodality": hasher.bimodality_,
        "finetune_loss": hasher.finetune_loss_,
    }
    store.write_index(
        database,
        meta=meta,
        words=words,
        df=df,
        arrays=hasher.get_arrays(),
        documents=_progress(rows, verbose, "writing", total=len(docs), unit="doc"),
        addresses=addresses,
        codes=long_codes,
    )
    # Compile the kernels now, into numba's on-disk cache, so no query pays for it.
    search.warmup()
    return BuildSummary(
        n_documents=len(docs),
        n_binary=stats.n_binary,
        n_unreadable=stats.n_unreadable,
        n_truncated=stats.n_truncated,
        n_duplicates=n_duplicates,
        vocabulary_size=len(words),
        seconds=time.perf_counter() - start,
        bimodality=hasher.bimodality_,
    )


def _encode_all(hasher, X, verbose: bool, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Addresses and packed long codes of every row of ``X``, in chunks (bounded memory)."""
    addresses, long_codes = [], []
    for start in _progress(range(0, X.shape[0], chunk), verbose, "encoding", unit="chunk"):
        address_bits, code_bits = hasher.encode(X[start : start + chunk])
        addresses.append(codes.to_addresses(address_bits))
        long_codes.append(codes.pack_codes(code_bits))
    return np.concatenate(addresses), np.concatenate(long_codes)


def _counts_dict(X, row: int, words: list[str]) -> dict[str, int]:
    """One document's counts as {word: count}, most frequent first (readable in SQL)."""
    lo, hi = X.indptr[row], X.indptr[row + 1]
    cols, vals = X.indices[lo:hi], X.data[lo:hi]
    order = np.lexsort((cols, -vals))
    return {words[cols[j]]: int(vals[j]) for j in order}


class Index:
    """An opened index, ready to answer queries.

    Examples
    --------
    >>> index = Index.open("semhash.db")                      # doctest: +SKIP
    >>> index.query("graphics card drivers for linux", k=3)   # doctest: +SKIP
    [Hit(id='train/comp.graphics/38464', distance=31), ...]
    """

    def __init__(self, stored: StoredIndex):
        self.stored = stored
        self.meta = stored.meta
        self.words = {w: i for i, w in enumerate(stored.words())}
        heads = autoencoder.from_arrays(stored.arrays(), encoder_only=True)
        if len(heads) != 2:
            raise store.StoreError(f"{stored.path}: expected 2 code heads in the model, found {len(heads)}")
        self.address_encoder, self.code_encoder = heads[0].encoder, heads[1].encoder
        self.rowids, addresses, self.codes = stored.codes()
        self.table = search.AddressTable(addresses, int(self.meta["address_bits"]))

    @classmethod
    def open(cls, database: str | os.PathLike) -> Index:
        """Open an index file for querying (read-only)."""
        return cls(StoredIndex(database))

    def __len__(self) -> int:
        return len(self.rowids)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(addresses int64 (n,), codes uint64 (n, words), n_known_words int (n,)) of texts."""
        counts = count_words(list(texts), self.words)
        address_bits = codes.threshold(autoencoder.encode(self.address_encoder, counts))
        code_bits = codes.threshold(autoencoder.encode(self.code_encoder, counts))
        return codes.to_addresses(address_bits), codes.pack_codes(code_bits), counts.sum(axis=1).astype(np.int64)

    def query(self, text: str, k: int = 10) -> list[Hit]:
        """The ``k`` nearest documents to ``text``: Hamming ball around its address,
        ranked by distance between long codes (ties by index order)."""
        return self.query_many([text], k)[0]

    def query_many(self, texts: Sequence[str], k: int = 10, skip_empty: bool = False) -> list[list[Hit] | None]:
        """:meth:`query` for many texts, encoded in one batch.

        Raises
        ------
        QueryError
            If a text has no word of the vocabulary (its code would mean nothing),
            unless ``skip_empty``, which gives ``None`` for that text instead.
        """
        if k < 1:
            raise QueryError(f"the number of results must be at least 1, got {k}")
        addresses, query_codes, known = self.encode(texts)
        found: list[tuple[np.ndarray, np.ndarray] | None] = []
        for i in range(len(texts)):
            if known[i] == 0:
                if not skip_empty:
                    raise QueryError(f"query {i + 1} has no words in the index vocabulary: nothing to search for")
                found.append(None)
                continue
            rows, dists, _ = search.search(self.table, self.codes, int(addresses[i]), query_codes[i], k)
            found.append((self.rowids[rows], dists))
        # One id lookup for the whole batch: per-query round trips to SQLite dominated.
        hit_rowids = np.unique(np.concatenate([f[0] for f in found if f is not None] or [np.zeros(0, np.int64)]))
        id_of = dict(zip(hit_rowids.tolist(), self.stored.ids(hit_rowids)))
        return [
            None if f is None else [Hit(id_of[r], int(d)) for r, d in zip(f[0].tolist(), f[1].tolist())]
            for f in found
        ]

    def close(self) -> None:
        self.stored.close()
