"""Encoding texts with an index's stored model: the part of a text the index reads,
its word counts (lifted towards a typical document's length for short texts), and
its address and long code; the model's encoders loaded and checked; documents'
codes as ``semhash encode`` prints them.

Functions take the opened :class:`semhash.api.Index`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from semhash import autoencoder, codes, store, termcodes
from semhash.corpus import iter_documents
from semhash.reading import own_files
from semhash.results import EncodedDocument
from semhash.store import StoreError
from semhash.tokenize import content, content_words
from semhash.vocab import count_tokens, count_words

ENCODE_BATCH = 1000  # documents encoded at once (update, encode_documents; bounded memory)


def load_encoders(stored, n_words: int):
    """The encoders of the address and the long code, read from ``stored`` and
    checked against its metadata, and the word tables of :mod:`semhash.termcodes`
    (both heads' side by side; None for an index built before them)."""
    widths = (int(stored.meta["address_bits"]), int(stored.meta["code_bits"]))
    arrays = stored.arrays(encoders_only=True)
    check_model_shapes(arrays, n_words, widths, stored.path)
    heads = autoencoder.from_arrays(arrays, encoder_only=True)
    tables = [arrays.get(f"head{h}.encoder.words") for h in range(2)]
    if any(t is None for t in tables):
        return heads[0].encoder, heads[1].encoder, None
    if any(t.shape != (n_words, w) for t, w in zip(tables, widths)):
        raise StoreError(f"{stored.path} is corrupt (a word table's shape does not fit the model): {store.REBUILD}")
    return heads[0].encoder, heads[1].encoder, np.concatenate(tables, axis=1)


def check_model_shapes(arrays: dict, n_words: int, widths: tuple[int, int], path) -> None:
    """Check the stored model against the metadata: two heads, each a chain of
    (W (n_in, n_out), b (n_out,)) layers from the vocabulary to its code width."""
    for h, width in enumerate(widths):
        n_in, k = n_words, 0
        if f"head{h}.encoder0.W" not in arrays:
            raise StoreError(f"{path} is corrupt (the model has no code head {h}): {store.REBUILD}")
        while f"head{h}.encoder{k}.W" in arrays:
            W, b = arrays[f"head{h}.encoder{k}.W"], arrays.get(f"head{h}.encoder{k}.b")
            if W.ndim != 2 or W.shape[0] != n_in or b is None or b.shape != (W.shape[1],):
                raise StoreError(
                    f"{path} is corrupt (weight head{h}.encoder{k} has shape {W.shape}, "
                    f"expected ({n_in}, n)): {store.REBUILD}"
                )
            n_in, k = W.shape[1], k + 1
        if n_in != width:
            raise StoreError(
                f"{path} is corrupt (code head {h} is {n_in} bits wide, meta says {width}): {store.REBUILD}"
            )
    if "head2.encoder0.W" in arrays:
        raise StoreError(f"{path} is corrupt (expected 2 code heads in the model): {store.REBUILD}")


def read(index, texts: Sequence[str]) -> list[str]:
    """The part of each text the index reads (:func:`~semhash.tokenize.content`,
    or all of it for an index built before), computed once per query."""
    return list(texts) if index.whole_text else [content(t) for t in texts]


def content_tokens(index, read: list[str]) -> list[list[str]]:
    """Each read text's stemmed content words, for an index that stems. Python
    tokenizes and stems them (the kernels match whole words), so a batch does it once
    (:func:`semhash.plan.found_many` keeps ``index.tokens`` for its texts): the codes
    count these words and the ranking weighs them. A 20NG batch of 7,532 posts took
    1.27x the CPU of an unstemmed index's when it did it twice, 1.17x once (medians of
    3 alternated runs); the rest is Python's tokenizing (1.0 s) and stemming (1.0 s)."""
    memo = getattr(index, "tokens", None)
    if memo is None:
        return [content_words(t, index.stem) for t in read]
    for text in read:
        if text not in memo:
            memo[text] = content_words(text, index.stem)
    return [memo[text] for text in read]


def encode_texts(index, texts: Sequence[str], lift: bool, query: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`Index.encode`: texts coded as documents are, or (``query``) as queries are."""
    texts = read(index, texts)
    return encode_query(index, texts, lift)[:3] if query else encode_read(index, texts, lift)


def encode_read(index, read: list[str], lift: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`Index.encode` of texts already :func:`read`."""
    counts, known = _counts(index, read, lift)
    addresses, long_codes = encode_counts(index, counts)
    return addresses, long_codes, known


def encode_query(index, read: list[str], lift: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`encode_read` of queries, their codes mixed with their terms' codes
    (:mod:`semhash.termcodes`); the fourth array says which queries' terms had
    codes (a query of no vocabulary word then has a code all the same)."""
    counts, known = _counts(index, read, lift)
    bits, termed = termcodes.mix(index, read, known, head_bits(index, counts))
    return codes.to_addresses(bits[0]), codes.pack_codes(bits[1]), known, termed


def _counts(index, read: list[str], lift: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the read texts' vocabulary word counts, lifted with ``lift``
    (:func:`lift_counts`); their known words, int64, counted before lifting)."""
    if index.stem:
        counts = count_tokens(content_tokens(index, read), index.words)
    else:
        counts = count_words(read, index.words, whole_text=True)
    known = counts.sum(axis=1).astype(np.int64)
    if lift:
        lift_counts(index, counts)
    return counts, known


def lift_counts(index, counts: np.ndarray) -> None:
    """Scale, in place, the word counts of texts shorter than the median indexed
    document towards that length, by :data:`semhash.autoencoder.LIFT` of the way in log length
    (see :meth:`Index.encode`).

    The bottom layer reads counts, N times the distribution, so a 4-word query would
    otherwise carry almost no evidence and land near the average code: on the sample
    corpus, "nasa shuttle launch orbit" found 3 sci.space posts in its top 10 as is,
    and 10 of 10 lifted."""
    autoencoder.lift(counts, index.typical_length())


def head_bits(index, counts: np.ndarray) -> list[np.ndarray]:
    """The address's and the long code's bits (bool) of rows of word counts."""
    return [codes.threshold(autoencoder.encode(e, counts)) for e in (index.address_encoder, index.code_encoder)]


def encode_counts(index, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Addresses and packed long codes of rows of word counts."""
    address_bits, code_bits = head_bits(index, counts)
    return codes.to_addresses(address_bits), codes.pack_codes(code_bits)


def documents(index, paths, binary, stdin, skip_bad_lines, stats):
    """:meth:`Index.encode_documents`, a generator."""
    address_bits, code_bits = int(index.meta["address_bits"]), int(index.meta["code_bits"])
    docs = iter_documents(paths, stats, stdin=stdin, skip_bad_lines=skip_bad_lines, skip=own_files(index.stored.path))
    while batch := list(itertools.islice(docs, ENCODE_BATCH)):
        addresses, long_codes, known = index.encode([d.text for d in batch])
        address_words = addresses.astype(np.uint64).reshape(-1, 1)
        address_hex = codes.to_hex(address_words, address_bits)
        code_hex = codes.to_hex(long_codes, code_bits)
        for doc, a, c, n in zip(batch, address_hex, code_hex, known.tolist()):
            if binary:
                a, c = base2(a, address_bits), base2(c, code_bits)
            yield EncodedDocument(doc.id, a, c, n)


def base2(hex_digits: str, n_bits: int) -> str:
    return format(int(hex_digits, 16), f"0{n_bits}b") if n_bits else ""
