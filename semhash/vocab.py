"""Tokens -> bag of words: choose the vocabulary, count words per document.

Fitting keeps the ``size`` non-stop words with the highest document frequency
(the paper's "2000 commonest words"); counting a new document needs only the
stored word list, so the query path never imports scikit-learn.
"""

from __future__ import annotations

import functools
import itertools
import json
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence

from typing import TYPE_CHECKING

import numpy as np

from semhash import lazy
from semhash.tokenize import content, content_words, tokenize

if TYPE_CHECKING:
    import scipy.sparse as sp


def fit_vocabulary(
    texts: Iterable[str], size: int = 2000, *, stem: bool = False
) -> tuple[list[str], np.ndarray, sp.csr_matrix]:
    """Choose the ``size`` most frequent non-stop words by document frequency
    (words of each text's :func:`~semhash.tokenize.content`).

    Parameters
    ----------
    texts : iterable of str
        Streamed once.
    size : int
        Vocabulary size.
    stem : count Snowball stems instead of words (:func:`~semhash.tokenize.content_words`)

    Returns
    -------
    words : list of str, length <= size
        Ranked by document frequency, ties broken alphabetically (deterministic).
    df : ndarray of int64, shape (len(words),)
        Document frequency of each word.
    counts : csr_matrix of float32, shape (n_texts, len(words))
        Word counts of every text over ``words``.
    """
    return fit_vocabulary_tokens((content_words(content(text), stem) for text in texts), size)


def fit_vocabulary_tokens(
    documents: Iterable[list[str]], size: int = 2000
) -> tuple[list[str], np.ndarray, sp.csr_matrix]:
    """:func:`fit_vocabulary` for documents already split by :func:`tokenize`, stop
    words removed (indexing has them at hand: it counts them for its summary)."""
    return top_words(*count_terms(documents), size)


def count_terms(documents: Iterable[list[str]]) -> tuple[list[str], sp.csr_matrix]:
    """Every distinct token (sorted) and the documents' counts of each: CSR of
    float32, shape (n_documents, n_terms), indices sorted within rows: what
    scikit-learn's ``CountVectorizer`` gives, index dtypes included, and its
    ValueError "empty vocabulary" when no document has a token.

    Counted :data:`DOCS_AT_ONCE` documents at a time, each token numbered by a
    C-level map over the document and the chunk's repeats summed by scipy, then
    merged (:func:`merge_terms`): 3x faster than ``CountVectorizer``'s loop in
    Python over every token, in the same memory."""
    stream = iter(documents)
    chunks = iter(lambda: list(itertools.islice(stream, DOCS_AT_ONCE)), [])
    return merge_terms(map(_count_chunk, chunks))


DOCS_AT_ONCE = 10_000


def _count_chunk(documents: Sequence[list[str]]) -> tuple[list[str], sp.csr_matrix]:
    """(this chunk's terms in order of first sight, its counts of them)."""
    import scipy.sparse as sp

    number: defaultdict[str, int] = defaultdict()
    number.default_factory = number.__len__  # a new term gets the next number
    tokens, ends = array("i"), [0]
    for tokens_of_one in documents:
        tokens.extend(map(number.__getitem__, tokens_of_one))
        ends.append(len(tokens))
    ones = np.ones(len(tokens), np.float32)
    counts = sp.csr_matrix((ones, np.frombuffer(tokens, np.int32), np.array(ends)), shape=(len(ends) - 1, len(number)))
    counts.sum_duplicates()  # one entry per term a row, summed, indices sorted
    return list(number), counts


def merge_terms(parts: Iterable[tuple[list[str], sp.csr_matrix]]) -> tuple[list[str], sp.csr_matrix]:
    """:func:`count_terms` of the documents of several batches, from each batch's
    :func:`count_terms` (in order): the same terms and the same matrix, index dtypes
    included, as one pass over all the documents gives. A batch without a term is
    ``([], a matrix of its rows and no column)``; ValueError "empty vocabulary", as
    scikit-learn raises it, when no batch has one. The batches are taken one at a
    time: only their counts are kept, under numbers given in order of arrival and
    sorted once at the end."""
    import scipy.sparse as sp

    column: dict[str, int] = {}
    data, indices, lengths = [], [], []
    for batch_terms, counts in parts:
        renumber = np.fromiter((column.setdefault(t, len(column)) for t in batch_terms), np.int64, len(batch_terms))
        data.append(counts.data.astype(np.float32, copy=False))
        indices.append(renumber[counts.indices].astype(np.int32 if len(column) <= _INT32_MAX else np.int64))
        lengths.append(np.diff(counts.indptr))
    if not column:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    terms = sorted(column)
    rank = np.empty(len(terms), np.int64)
    rank[np.fromiter((column[t] for t in terms), np.int64, len(terms))] = np.arange(len(terms))
    lengths = np.concatenate(lengths)
    indptr = np.zeros(lengths.shape[0] + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # CountVectorizer's index arrays: 32-bit unless the non-zeros need 64.
    dtype = np.int64 if indptr[-1] > _INT32_MAX else np.int32
    # The batches moved into the whole arrays one at a time, each freed once moved:
    # concatenated, then renumbered at once (an int64 temporary), they were held
    # about three times over.
    all_data, all_indices = np.empty(indptr[-1], np.float32), np.empty(indptr[-1], dtype)
    rank, at = rank.astype(dtype), 0
    while data:
        batch_data, batch_indices = data.pop(0), indices.pop(0)
        all_data[at : at + batch_data.size] = batch_data
        np.take(rank, batch_indices, out=all_indices[at : at + batch_data.size])
        at += batch_data.size
    full = sp.csr_matrix((all_data, all_indices, indptr.astype(dtype)), shape=(lengths.shape[0], len(terms)))
    full.sort_indices()
    return terms, full


_INT32_MAX = np.iinfo(np.int32).max


def top_words(terms: list[str], full: sp.csr_matrix, size: int) -> tuple[list[str], np.ndarray, sp.csr_matrix]:
    """The ``size`` terms of highest document frequency (ties alphabetical), their
    document frequencies and the counts of just those columns (:func:`count_terms`)."""
    df_all = np.bincount(full.indices, minlength=full.shape[1])
    # Stable sort on -df keeps alphabetical order among ties.
    ranked = np.argsort(-df_all, kind="stable")[:size]
    counts = full[:, ranked].tocsr()
    counts.sort_indices()
    return [terms[i] for i in ranked], df_all[ranked].astype(np.int64), counts


def count_words(
    texts: Sequence[str], words: Sequence[str] | dict[str, int], *, whole_text: bool = False, stem: bool = False
) -> np.ndarray:
    """Count the vocabulary words in each text's :func:`~semhash.tokenize.content`
    (out-of-vocabulary tokens dropped).

    numpy only for a few texts: this is the query path, which must not pay for
    scipy/sklearn imports. Many texts, or any once the numba kernels are loaded,
    are counted by :func:`semhash.kernels.count_ascii_words` (ASCII texts; the
    others by :func:`tokenize`), which gives the same counts 4-5x faster (20NG
    test posts: 0.17 s against 0.75 s).

    Parameters
    ----------
    texts : sequence of str
    words : sequence of str, or a ready ``{word: column}`` dict (faster when reused)
    whole_text : count the whole texts, message headers included (how indexes built
        before semhash read messages as Subject + body were trained)
    stem : ``words`` are stems: count each text's stemmed content words
        (:func:`~semhash.tokenize.content_words`), in Python (the kernels match
        whole words only)

    Returns
    -------
    ndarray of float32, shape (n_texts, n_words)
    """
    index = words if isinstance(words, dict) else {w: i for i, w in enumerate(words)}
    if not whole_text:
        texts = [content(text) for text in texts]
    rest = range(len(texts))  # the rows Python counts
    if not stem and lazy.use_kernels(_PYTHON_NS_PER_CHAR * sum(map(len, texts)), kernel="count_ascii_words"):
        ascii_rows = [i for i, text in enumerate(texts) if text.isascii()]
        if len(ascii_rows) == len(texts):
            return _count_ascii(texts, index)
        rest = [i for i, text in enumerate(texts) if not text.isascii()]
    out = np.zeros((len(texts), len(index)), dtype=np.float32)
    if len(rest) < len(texts):
        out[ascii_rows] = _count_ascii([texts[i] for i in ascii_rows], index)
    rest = list(rest)
    out[rest] = count_tokens([content_words(texts[r], stem=True) if stem else tokenize(texts[r]) for r in rest], index)
    return out


def count_tokens(token_lists: list[list[str]], index: dict[str, int]) -> np.ndarray:
    """float32 counts over the vocabulary ``{word: column}`` of each text's tokens."""
    out = np.zeros((len(token_lists), len(index)), dtype=np.float32)
    for row, tokens in enumerate(token_lists):
        cols = [index[t] for t in tokens if t in index]
        if cols:
            out[row] = np.bincount(cols, minlength=len(index))
    return out


# Python tokenizes and counts about 12 MB of text a second (20NG test posts): the
# cost semhash.lazy weighs against loading the kernels.
_PYTHON_NS_PER_CHAR = 80.0


def _count_ascii(texts: list[str], index: dict[str, int]) -> np.ndarray:
    """:func:`count_words` of ASCII texts by the fused kernel."""
    by_column = sorted(index, key=index.__getitem__)
    word_bytes, word_starts = _packed([w.encode("utf-8") for w in by_column])
    text, doc_starts = _packed([t.encode("ascii") for t in texts])
    slots = lazy.kernels.word_table(word_bytes, word_starts)
    return lazy.kernels.count_ascii_words(text, doc_starts, word_bytes, word_starts, slots)


def word_ids(texts: Sequence[str], words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each text's known tokens as word indices, in order, text after text: (starts
    int64 (n + 1,), ids int64). For vocabularies too large for :func:`count_words`'s
    dense counts (every term of a corpus); the texts are read as given. ASCII texts
    go through :func:`semhash.kernels.ascii_word_ids`, the others through
    :func:`tokenize`."""
    per_text: list[np.ndarray] = [np.zeros(0, np.int64)] * len(texts)
    ascii_rows = [i for i, text in enumerate(texts) if text.isascii()]
    if ascii_rows:
        word_bytes, word_starts = _packed([w.encode("utf-8") for w in words])
        text, doc_starts = _packed([texts[i].encode("ascii") for i in ascii_rows])
        slots = lazy.kernels.word_table(word_bytes, word_starts)
        starts, ids = lazy.kernels.ascii_word_ids(text, doc_starts, word_bytes, word_starts, slots)
        if len(ascii_rows) == len(texts):
            return starts, ids
        for j, i in enumerate(ascii_rows):
            per_text[i] = ids[starts[j] : starts[j + 1]]
    if len(ascii_rows) < len(texts):
        index = {w: i for i, w in enumerate(words)}
        for i, text in enumerate(texts):
            if not text.isascii():
                per_text[i] = np.array([index[t] for t in tokenize(text) if t in index], np.int64)
    starts = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([p.shape[0] for p in per_text], out=starts[1:])
    return starts, np.concatenate(per_text) if per_text else np.zeros(0, np.int64)


def _packed(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The strings' bytes end to end, and where each starts (one more entry: the end)."""
    starts = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in strings], out=starts[1:])
    return np.frombuffer(b"".join(strings), dtype=np.uint8), starts


def counts_json(counts, words: Sequence[str]) -> list[str]:
    """Each row's counts as the index's ``counts`` column stores them (readable in
    SQL): ``json.dumps`` of {word: count}, most frequent first, ties in vocabulary
    order. ``counts`` is a dense array or a CSR matrix of rows over ``words``.

    Every "word": count piece is written once per build and the rows ordered in
    one sort (a dict and ``json.dumps`` a document: 60 s of a million-document
    build)."""
    if isinstance(counts, np.ndarray):
        rows, cols = np.nonzero(counts)
        values = counts[rows, cols]
    else:
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        cols, values = counts.indices, counts.data
    order = np.lexsort((cols, -values, rows))
    keys = (cols[order].astype(np.int64) << 32) | values[order].astype(np.int64)
    pieces = list(map(_pieces(tuple(words)).__getitem__, keys.tolist()))
    ends = np.cumsum(np.bincount(rows, minlength=counts.shape[0])).tolist()
    return ["{" + ", ".join(pieces[start:end]) + "}" for start, end in zip([0, *ends], ends)]


class _Pieces(dict):
    """{word number << 32 | count: its JSON piece '"word": count'}, written on first use."""

    def __init__(self, words: tuple[str, ...]) -> None:
        super().__init__()
        self.quoted = [json.dumps(w) for w in words]

    def __missing__(self, key: int) -> str:
        piece = self[key] = f"{self.quoted[key >> 32]}: {key & 0xFFFFFFFF}"
        return piece


@functools.lru_cache(maxsize=2)
def _pieces(words: tuple[str, ...]) -> _Pieces:
    return _Pieces(words)
