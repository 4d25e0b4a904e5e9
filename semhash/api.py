"""The library's front: build an index from documents, update it, open it, query it.

This is the only module that knows the whole pipeline
(files -> tokens -> bag of words -> model -> codes -> store -> search); the CLI is
a thin layer over it.

Examples
--------
>>> from semhash import Index
>>> index = Index.build(["corpora/20news-sample/train"], "sample.db")   # doctest: +SKIP
>>> index.query("nasa shuttle launch orbit", k=3)                       # doctest: +SKIP
[Hit(id='sci.space/60804', distance=31, ...), ...]
>>> index.add(["new-posts/"]).line()                                    # doctest: +SKIP
'added 12, updated 0, unchanged 1500, removed 0 (1512 documents), ...'
>>> index.similar("sci.space/60804", k=3)                               # doctest: +SKIP

The query path (``Index.open`` + ``Index.query``) imports numpy, sqlite3 and the
Numba kernels only: no scikit-learn, scipy or sqlite-utils. Updating an index
(``Index.add``) encodes documents with the stored model the same way: no retraining.

Errors the user can fix are typed (:class:`BuildError`, :class:`QueryError`,
:class:`EmptyQuery`, :class:`DocumentNotFound`, :class:`ModelMismatch`,
``StoreError``, ``IndexLocked``, ``CorpusError``); :data:`ERRORS` lists them all,
for callers that print them.

Writers (:func:`build_index`, :meth:`Index.add`, :func:`index_documents`) hold the
index's writer lock for their whole run (``wait`` to queue behind another one); see
:mod:`semhash.store` for what holds when one is killed.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from semhash import __version__, autoencoder, codes, lazy, neighbours, rerank, search, store
from semhash.corpus import (
    DEFAULT_MAX_BYTES,
    CorpusError,
    Document,
    ReadStats,
    content_hash,
    first_line,
    iter_documents,
    iter_listed_files,
    read_text,
)
from semhash.store import DocumentRow, IndexLocked, StoreError, StoredIndex
from semhash.tokenize import content, content_words
from semhash.vocab import _PYTHON_NS_PER_CHAR, count_words, word_ids

MIN_DOCUMENTS = 10
#: Documents the model trains on at most by default; the others are only encoded.
#: Training time grows with the documents (20NG's 11,314 posts: about 3 minutes of
#: a 3.5-minute index on 2 cores), so without a cap a corpus of 100,000 would train
#: for half an hour. Sampling costs some precision: 20NG trained on 5,000 of its
#: posts scores 0.5960 against 0.6166 (precision@100, default path), in an index
#: built in 112 s (BENCHMARKS.md). 20,000 leaves 20NG and smaller corpora whole.
DEFAULT_TRAIN_SAMPLE = 20_000
#: ``labels`` allowing at most this many documents rank them all, each query's
#: shortlist joined by every one of them (exact, and at most about twice the
#: candidates of an unfiltered query); more are found by growing the default
#: shortlist until ``k`` of its hits are allowed, as distance bounds are.
LABELS_RANKED_IN_FULL = rerank.SHORTLIST
#: Filtered queries (labels, distance bounds) searched at once: each row of a batch
#: ranked in full or joined by up to LABELS_RANKED_IN_FULL allowed documents, so
#: bounded memory for a 10,000-line batch.
_FILTERED_BATCH = 1000
TEXT_READ = "content"  # meta["text"]: documents are read through semhash.tokenize.content
#: Whether a new index counts Snowball stems instead of words (meta["stem"]; an index
#: without the key was built before and counts words). Stems won on every corpus:
#: 20NG P@100 0.647 -> 0.656 (codes alone 0.531 -> 0.554), Subject lines' codes
#: P@10 0.334 -> 0.414, StackOverflow and Biomedical codes +0.012 / +0.011.
STEM = True
MAX_CODE_BITS = 4096  # widest long code; the paper's widest is 128
MAX_LAYER = 100_000  # widest hidden layer
MAX_VOCAB = 1_000_000
ENCODE_BATCH = 1000  # documents encoded at once when updating (bounded memory)
#: The largest share of an index's documents ``prune`` removes unasked: one JSON line
#: fed to `semhash index - --prune` removed the 11,314 others without a word.
PRUNE_LIMIT = 0.5
# Model options of build_index, as recorded in meta["build_options"].
BUILD_OPTIONS = (
    "vocab_size", "address_bits", "code_bits", "hidden_sizes",
    "n_epochs_pretrain", "n_epochs_finetune", "random_state", "stem",
)


class BuildError(ValueError):
    """The corpus cannot be indexed (empty, too small, ...)."""


class QueryError(ValueError):
    """The query cannot be answered (e.g. none of its words are in the vocabulary)."""


class EmptyQuery(QueryError):
    """The query has no word of the index vocabulary (only stop words, or words the
    index does not know): its code would mean nothing. ``semhash query`` treats it
    as "no hits" (exit status 1), not as an error."""


class DocumentNotFound(QueryError):
    """No document has this id in the index."""


class ModelMismatch(ValueError):
    """Model options given for an update differ from the model the index was built with."""


#: Every exception the library raises for input the user can fix; the CLI prints
#: them as one ``Error: ...`` line.
UPDATE_WRITTEN = "the update itself was written, without its documents' neighbour lists"
ERRORS = (BuildError, QueryError, ModelMismatch, StoreError, CorpusError)  # IndexLocked, EmptyQuery: subclasses


def _drift(new_share: float | None, built_share: float | None, previous: bool) -> str | None:
    """The vocabulary-drift clause of a summary line, or None without new documents."""
    if new_share is None:
        return None
    which = "the previous vocabulary" if previous else "the vocabulary"
    text = f"drift: {new_share:.1%} of the new documents' words outside {which}"
    if built_share is not None:
        text += f" ({built_share:.1%} at {'its build' if previous else 'build'})"
    return text


def _skipped(n_binary: int, n_unreadable: int) -> str:
    return f"skipped {n_binary + n_unreadable} files ({n_binary} binary, {n_unreadable} unreadable)"


def _input_notes(bad_lines: list[int], n_truncated: int, n_duplicates: int, n_numbered: int) -> list[str]:
    """The summary's notes on input that was skipped, cut, ignored or named by its
    line number (both summaries)."""
    notes = [_bad_lines(bad_lines)] if bad_lines else []
    if n_truncated:
        notes.append(f"{n_truncated} truncated")
    if n_duplicates:
        notes.append(f"{n_duplicates} duplicate ids ignored")
    if n_numbered:
        # Line numbers repeat from run to run: the next stream's line 1 replaces this one's.
        one = n_numbered == 1
        notes.append(
            f"{n_numbered} JSON line{'' if one else 's'} without an id named by {'its' if one else 'their'} line number "
            f"(another run's line{'' if one else 's'} would replace {'it' if one else 'them'})"
        )
    return notes


def _bad_lines(lines: list[int]) -> str | None:
    """The summary clause for JSON lines skipped with ``skip_bad_lines``."""
    if not lines:
        return None
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return f"{len(lines)} bad JSON line{'s' if len(lines) > 1 else ''} skipped (line {shown})"


@dataclass
class BuildSummary:
    """What :func:`build_index` did.

    ``oov_share`` is the share of the corpus's words (stop words excluded) that the
    vocabulary leaves out; ``drift``, when an index was replaced, the same share for
    the documents that were new or changed, against the previous vocabulary.
    """

    n_documents: int
    n_binary: int
    n_unreadable: int
    n_truncated: int
    n_duplicates: int
    vocabulary_size: int
    seconds: float
    bimodality: list[float] = field(default_factory=list)
    oov_share: float | None = None
    drift: float | None = None
    previous_oov_share: float | None = None
    bad_lines: list[int] = field(default_factory=list)
    n_trained: int | None = None
    n_numbered: int = 0

    def line(self) -> str:
        """The one-line summary ``semhash index`` prints at the end."""
        parts = [f"indexed {self.n_documents} documents", _skipped(self.n_binary, self.n_unreadable)]
        parts += _input_notes(self.bad_lines, self.n_truncated, self.n_duplicates, self.n_numbered)
        if self.n_trained is not None and self.n_trained < self.n_documents:
            parts.append(f"model trained on a sample of {self.n_trained}")
        vocabulary = f"vocabulary {self.vocabulary_size} words"
        if self.oov_share is not None:
            vocabulary += f" ({self.oov_share:.1%} of words outside)"
        parts.append(vocabulary)
        drift = _drift(self.drift, self.previous_oov_share, previous=True)
        if drift:
            parts.append(drift)
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


@dataclass
class UpdateSummary:
    """What :meth:`Index.add` did.

    ``n_missing`` counts indexed documents under the given roots that were not
    found this time: removed with ``prune``, kept (and counted) without it.
    ``drift`` is the share of the added and updated documents' words (stop words
    excluded) outside the vocabulary; ``oov_share`` the same share for the corpus
    the model was trained on.
    """

    n_added: int
    n_updated: int
    n_unchanged: int
    n_removed: int
    n_missing: int
    n_documents: int
    n_binary: int
    n_unreadable: int
    n_truncated: int
    n_duplicates: int
    seconds: float
    drift: float | None = None
    oov_share: float | None = None
    bad_lines: list[int] = field(default_factory=list)
    n_numbered: int = 0

    def line(self) -> str:
        """The one-line summary ``semhash index`` prints at the end."""
        parts = [
            f"added {self.n_added}, updated {self.n_updated}, unchanged {self.n_unchanged}, "
            f"removed {self.n_removed} ({self.n_documents} documents)",
            _skipped(self.n_binary, self.n_unreadable),
        ]
        if self.n_missing > self.n_removed:
            parts.append(f"{self.n_missing - self.n_removed} missing kept (--prune removes them)")
        parts += _input_notes(self.bad_lines, self.n_truncated, self.n_duplicates, self.n_numbered)
        drift = _drift(self.drift, self.oov_share, previous=False)
        if drift:
            parts.append(drift)
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


class Hit(NamedTuple):
    """One search result (immutable; a named tuple, not a dataclass: a batch makes
    hundreds of thousands, and a frozen dataclass cost 3x more to create).

    Attributes
    ----------
    id : document id
    distance : Hamming distance between the query's long code and the document's
    path : file the document was read from (None for JSON lines)
    labels : the document's labels (its folder's name for files)
    title : its first non-empty line
    address : its short code, as an integer
    score : the ranking's score, higher is better: the TF-IDF cosine with the
        query, plus a weighted share of its stored neighbours' scores, less a little
        per differing bit (:mod:`semhash.rerank`); a measure to compare hits by, not
        a probability. ``None`` where the codes alone ranked
    """

    id: str
    distance: int
    path: str | None = None
    labels: tuple[str, ...] = ()
    title: str = ""
    address: int | None = None
    score: float | None = None


@dataclass(frozen=True)
class EncodedDocument:
    """A document's codes, as :meth:`Index.encode_documents` prints them."""

    id: str
    address: str
    code: str
    known_words: int


class _Coverage:
    """Counts content words (stop words excluded; stemmed with ``stem``) and how
    many a vocabulary knows, and the texts read as mail or news messages
    (``semhash info`` says which)."""

    def __init__(self, whole_text: bool = False, stem: bool = False) -> None:
        self.n_words = 0
        self.n_known = 0
        self.n_messages = 0
        self.whole_text = whole_text
        self.stem = stem

    def words(self, text: str) -> list[str]:
        read = text if self.whole_text else content(text)
        self.n_messages += read is not text  # content() gives any other text back as it is
        return content_words(read, self.stem)

    def add(self, words: list[str], vocabulary: dict[str, int] | set[str]) -> None:
        self.n_words += len(words)
        self.n_known += sum(w in vocabulary for w in words)

    @property
    def oov_share(self) -> float | None:
        return 1 - self.n_known / self.n_words if self.n_words else None


def _progress(iterable, verbose: bool, desc: str, total: int | None = None, unit: str = "it"):
    """``iterable``, with a progress bar on stderr (if ``verbose``) that appears with
    its first item: a run that fails before any (no documents, a missing path)
    drew "reading: 0doc" above its error."""
    return _bar_from_first(iterable, desc=desc, total=total, unit=unit) if verbose else iterable


def _bar_from_first(iterable, **bar) -> Iterator:
    from tqdm.auto import tqdm

    items = iter(iterable)
    for first in items:
        yield from tqdm(itertools.chain([first], items), file=sys.stderr, **bar)


def _read(
    paths: Sequence[str],
    files: Iterable[str] | None,
    stats: ReadStats,
    stdin: TextIO | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad_lines: bool = False,
    database: str | os.PathLike | None = None,
) -> Iterator[Document]:
    """Documents under ``paths`` (see ``iter_documents``), then those of the ``files``
    list; never the files of the index at ``database``."""
    if max_bytes < 1:
        raise BuildError(f"--max-bytes must be at least 1, got {max_bytes}")
    skip = _own_files(database) if database is not None else ()
    found = (
        iter_documents(paths, stats, stdin=stdin, max_bytes=max_bytes, skip_bad_lines=skip_bad_lines, skip=skip)
        if paths
        else iter(())
    )
    if files is not None:
        found = itertools.chain(found, iter_listed_files(files, stats, max_bytes=max_bytes, skip=skip))
    return found


def _own_files(database: str | os.PathLike) -> frozenset[str]:
    """The real paths of the index's files: `semhash index .` beside ./semhash.db
    indexed its (empty) lock file and WAL as documents, and the WAL, rewritten by
    every run, as "updated 1" each time."""
    real = os.path.realpath(database)
    return frozenset([real, real + "-wal", real + "-shm", real + "-journal", os.path.realpath(store.lock_path(database))])


def _check_build_options(
    vocab_size: int, address_bits: int, code_bits: int, hidden_sizes: Sequence[int],
    n_epochs_pretrain: int, n_epochs_finetune: int, random_state: int, train_sample: int | None = None,
) -> None:
    """Raise :class:`BuildError` for a model option out of range (named as the CLI names it)."""
    checks = [
        ("--address-bits", address_bits, 1, 63),
        ("--code-bits", code_bits, 1, MAX_CODE_BITS),
        ("--vocab-size", vocab_size, 2, MAX_VOCAB),
        ("--epochs-pretrain", n_epochs_pretrain, 0, None),
        ("--epochs-finetune", n_epochs_finetune, 0, None),
        ("--seed", random_state, 0, 2**32 - 1),
    ]
    if train_sample is not None:
        checks.append(("--train-sample", train_sample, MIN_DOCUMENTS, None))
    if not hidden_sizes:
        raise BuildError("--hidden needs at least one layer width")
    checks += [("--hidden", width, 1, MAX_LAYER) for width in hidden_sizes]
    for name, value, low, high in checks:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise BuildError(f"{name} must be an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise BuildError(f"{name} must be {bounds}, got {value}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_index(
    paths: Sequence[str],
    database: str | os.PathLike,
    *,
    files: Iterable[str] | None = None,
    vocab_size: int = 2000,
    address_bits: int = 28,
    code_bits: int = 256,
    hidden_sizes: Sequence[int] = (500, 250, 125),
    n_epochs_pretrain: int = 10,
    n_epochs_finetune: int = 20,
    random_state: int = 0,
    stem: bool = STEM,
    train_sample: int | None = DEFAULT_TRAIN_SAMPLE,
    verbose: bool = False,
    stdin: TextIO | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad_lines: bool = False,
    wait: bool = False,
) -> BuildSummary:
    """Read documents, train the model, encode every document, write the index.

    Parameters
    ----------
    paths : sequence of str
        Directories (walked recursively), files, or ``"-"`` for JSON lines on stdin.
    database : path of the SQLite index to create (replaced atomically if it exists;
        the summary then says how far the new documents drifted from its vocabulary)
    files : iterable of str, optional
        More files, one path each (ids relative to the current directory), such as
        the lines of ``find`` or ``git ls-files``.
    vocab_size : number of words kept (highest document frequency, stop words removed)
    address_bits, code_bits : widths of the short address and the long code
    hidden_sizes : widths of the shared trunk between vocabulary and codes
    n_epochs_pretrain, n_epochs_finetune : training length (see ``SemanticHasher``)
    random_state : seed; the same seed and corpus give the same index
    stem : count words by their Snowball English stem ("images", "imaging" ->
        "imag") in the vocabulary and the ranking's terms; queries are stemmed alike
        (default :data:`STEM`)
    train_sample : train the model on at most this many documents drawn at random
        (seeded) and only encode the others, so a large corpus costs training on the
        sample plus a linear pass (default :data:`DEFAULT_TRAIN_SAMPLE`); ``None``
        trains on every document. The vocabulary is always chosen from every
        document.
    verbose : progress bars on stderr
    max_bytes : read at most this many bytes of each file (longer ones are counted
        as truncated)
    skip_bad_lines : skip malformed JSON lines (counted) instead of stopping
    wait : if another process is writing ``database``, wait for it instead of
        raising ``IndexLocked``

    Returns
    -------
    BuildSummary

    Raises
    ------
    BuildError, CorpusError, StoreError (``database`` holds something that is not a
    semhash index, which is never overwritten), IndexLocked
    """
    _check_build_options(
        vocab_size, address_bits, code_bits, hidden_sizes, n_epochs_pretrain, n_epochs_finetune, random_state,
        train_sample,
    )
    start = time.perf_counter()
    with store.writer_lock(database, wait=wait):
        # Refuse a foreign file, or one this user may not write, before minutes of training.
        if store.kind_of(database) != "missing" and not os.access(database, os.W_OK):
            raise store.StoreError(f"cannot write to {database} (permission denied): the index is unchanged")
        summary = _build_index(
            paths, database, files=files, vocab_size=vocab_size, address_bits=address_bits,
            code_bits=code_bits, hidden_sizes=hidden_sizes, n_epochs_pretrain=n_epochs_pretrain,
            n_epochs_finetune=n_epochs_finetune, random_state=random_state, stem=stem, train_sample=train_sample,
            verbose=verbose, stdin=stdin, max_bytes=max_bytes, skip_bad_lines=skip_bad_lines,
        )
        # Once the build's count matrices are freed: the graph holds every vector.
        with Index.open(database) as index:
            index._fill_neighbours(verbose)
    summary.seconds = time.perf_counter() - start
    return summary


def _build_index(
    paths, database, *, files, vocab_size, address_bits, code_bits, hidden_sizes,
    n_epochs_pretrain, n_epochs_finetune, random_state, stem, train_sample, verbose, stdin, max_bytes, skip_bad_lines,
) -> BuildSummary:
    """:func:`build_index`, its options checked and the writer lock held (the
    summary's ``seconds`` is left for :func:`build_index`, which times the whole run)."""
    from semhash.hasher import SemanticHasher
    from semhash.vocab import count_terms, top_words

    previous = _previous_index(database)
    stats = ReadStats()
    docs: list[tuple[str, str | None, tuple[str, ...], str, str]] = []
    seen: set[str] = set()
    n_duplicates = 0
    corpus, drift = _Coverage(stem=stem), _Coverage(stem=stem)

    def content_words() -> Iterator[list[str]]:
        # One streamed pass: documents are read, tokenized once and vectorized
        # together; only their metadata is kept, never the corpus text.
        nonlocal n_duplicates
        found = _read(paths, files, stats, stdin, max_bytes, skip_bad_lines, database)
        for doc in _progress(found, verbose, "reading", unit="doc"):
            if doc.id in seen:
                n_duplicates += 1
                continue
            seen.add(doc.id)
            docs.append((doc.id, doc.path, doc.labels, doc.content_hash, first_line(doc.text)))
            words = corpus.words(doc.text)
            corpus.n_words += len(words)
            if previous is not None and previous[1].get(doc.id) != doc.content_hash:
                drift.add(words, previous[0])
            yield words

    try:
        terms, full = count_terms(content_words())
    except ValueError as e:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        if "empty vocabulary" not in str(e):
            raise
        words, X = [], None
    else:
        words, df, X = top_words(terms, full, vocab_size)
    n_usable = 0 if X is None else int((np.diff(X.indptr) > 0).sum())
    if not docs:
        raise BuildError(
            f"no text documents in {', '.join(paths) or 'the files listed'} ({stats.n_binary} binary and "
            f"{stats.n_unreadable} unreadable files skipped): at least {MIN_DOCUMENTS} are needed to train a model"
        )
    if n_usable < MIN_DOCUMENTS:
        raise BuildError(
            f"found {len(docs)} documents, {n_usable} with indexable words "
            "(not only stop words, numbers or punctuation): "
            f"at least {MIN_DOCUMENTS} are needed to train a model"
        )
    corpus.n_known = int(X.sum())

    hasher = SemanticHasher(
        (address_bits, code_bits),
        hidden_sizes=tuple(hidden_sizes),
        n_epochs_pretrain=n_epochs_pretrain,
        n_epochs_finetune=n_epochs_finetune,
        random_state=random_state,
        verbose=verbose,
    )
    n_trained = X.shape[0] if train_sample is None else min(train_sample, X.shape[0])
    sample = slice(None) if n_trained == X.shape[0] else _sample_rows(X, n_trained, random_state)
    # The codes learn from each document's neighbours by every term (semhash.neighbours).
    bar = functools.partial(_progress, verbose=verbose, desc="comparing documents", unit="block")
    hasher.fit(X[sample], neighbours=neighbours.by_words(full[sample], progress=bar))
    addresses, long_codes = _encode_all(hasher, X, verbose)

    idf = rerank.fit_idf(full)
    rows = (
        DocumentRow(doc_id, path, labels, digest, _counts_dict(X, i, words), title, rerank.to_blob(vector))
        for i, ((doc_id, path, labels, digest, title), vector) in enumerate(zip(docs, rerank.csr_vectors(full, idf)))
    )
    meta = {
        "semhash_version": __version__,
        "created": _now(),
        "address_bits": address_bits,
        "code_bits": code_bits,
        "vocab_size": len(words),
        "n_terms": len(terms),
        "hidden_sizes": list(hidden_sizes),
        "n_documents": len(docs),
        "n_trained": n_trained,
        "text": TEXT_READ,
        "stem": stem,
        "messages": [corpus.n_messages, len(docs)],  # read as Subject + body, of the documents built from
        "params": {k: v for k, v in hasher.get_params().items() if k != "verbose"},
        "build_options": {
            "vocab_size": vocab_size, "address_bits": address_bits, "code_bits": code_bits,
            "hidden_sizes": list(hidden_sizes), "n_epochs_pretrain": n_epochs_pretrain,
            "n_epochs_finetune": n_epochs_finetune, "random_state": random_state, "stem": stem,
        },
        "oov_share": corpus.oov_share,
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
        terms=terms,
        idf=idf,
    )
    return BuildSummary(
        n_documents=len(docs),
        n_binary=stats.n_binary,
        n_unreadable=stats.n_unreadable,
        n_truncated=stats.n_truncated,
        n_duplicates=n_duplicates,
        vocabulary_size=len(words),
        seconds=0.0,
        bimodality=hasher.bimodality_,
        oov_share=corpus.oov_share,
        drift=drift.oov_share,
        previous_oov_share=None if previous is None else previous[2],
        bad_lines=stats.bad_lines,
        n_trained=n_trained,
        n_numbered=stats.n_numbered,
    )


def _sample_rows(X, size: int, seed: int) -> np.ndarray:
    """``size`` rows of ``X`` drawn without replacement (seeded), in corpus order,
    from those with at least one vocabulary word when there are enough of them."""
    usable = np.flatnonzero(np.diff(X.indptr) > 0)
    pool = usable if usable.shape[0] >= size else np.arange(X.shape[0])
    return np.sort(np.random.default_rng(seed).choice(pool, size, replace=False))


def _previous_index(database) -> tuple[set[str], dict[str, str], float | None] | None:
    """(vocabulary, {id: content_hash}, oov share at build) of the index a build replaces."""
    if not Path(database).is_file():
        return None
    try:
        old = StoredIndex(database)
    except StoreError:
        return None  # not an index: nothing to compare with
    try:
        return set(old.words()), {i: h for i, (h, *_) in old.fingerprints().items()}, old.meta.get("oov_share")
    finally:
        old.close()


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


def _dense_counts_dict(counts: np.ndarray, words: list[str]) -> dict[str, int]:
    """:func:`_counts_dict` for one dense row of counts."""
    cols = np.flatnonzero(counts)
    order = np.lexsort((cols, -counts[cols]))
    return {words[cols[j]]: int(counts[cols[j]]) for j in order}


def _under(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def _under_roots(doc_id: str, path: str | None, paths: Sequence[str], files: Iterable[str] | None) -> bool:
    """Whether a stored document belongs to one of this run's inputs: a directory or
    file given, stdin (``-``) for documents without a path, or, for a ``files``
    list, the documents whose id is their path from the current directory (those
    of earlier lists), never those indexed through a directory."""
    if path is None:
        return "-" in paths
    if files is not None and doc_id == os.path.normpath(path).replace(os.sep, "/") and _under(path, os.curdir):
        return True
    return any(p != "-" and _under(path, p) for p in paths)


def index_documents(
    paths: Sequence[str],
    database: str | os.PathLike,
    *,
    files: Iterable[str] | None = None,
    retrain: bool = False,
    prune: bool = False,
    prune_limit: float | None = PRUNE_LIMIT,
    verbose: bool = False,
    stdin: TextIO | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad_lines: bool = False,
    wait: bool = False,
    train_sample: int | None = DEFAULT_TRAIN_SAMPLE,
    **options,
) -> BuildSummary | UpdateSummary:
    """What ``semhash index`` does: update the index at ``database`` if there is one
    (:meth:`Index.add`), else build it (:func:`build_index`).

    Parameters
    ----------
    retrain : bool
        Always build: train a new model on the documents given (documents not
        among them are dropped) and report the vocabulary drift.
    prune : bool
        When updating, remove indexed documents under the given roots that are gone.
    prune_limit : float or None
        As for :meth:`Index.add`.
    max_bytes, skip_bad_lines, wait
        As for :func:`build_index`. The writer lock is taken before deciding
        between building and updating, so two runs never both build.
    train_sample
        As for :func:`build_index` when building; an update trains nothing.
    **options
        Model options of :func:`build_index`. When updating, options that differ
        from those the index was built with raise :class:`ModelMismatch`.
    """
    reading = {"files": files, "verbose": verbose, "stdin": stdin, "max_bytes": max_bytes, "skip_bad_lines": skip_bad_lines}
    with store.writer_lock(database, wait=wait):
        if retrain or store.is_missing(database):
            return build_index(paths, database, train_sample=train_sample, **reading, **options)
        index = Index.open(database)
        try:
            index.check_options(**options)
            return index.add(paths, prune=prune, prune_limit=prune_limit, **reading)
        finally:
            index.close()


class Index:
    """An opened index: query it, find a document's neighbours, add documents.

    Examples
    --------
    >>> index = Index.open("semhash.db")                      # doctest: +SKIP
    >>> index.query("graphics card drivers for linux", k=3)   # doctest: +SKIP
    [Hit(id='train/comp.graphics/38464', distance=31, ...), ...]
    >>> index.similar("train/comp.graphics/38464", k=3)       # doctest: +SKIP
    """

    def __init__(self, stored: StoredIndex):
        self.stored = stored
        self.summary: BuildSummary | None = None  # set by Index.build
        self._load()

    def _load(self) -> None:
        with self.stored.snapshot():
            self.stored.mark()
            self._load_snapshot()

    def _load_snapshot(self) -> None:
        self.meta = self.stored.meta
        self.vocabulary = self.stored.words()
        # An index built before messages were read as Subject + body keeps reading
        # whole texts: its vocabulary and model were trained on them.
        self.whole_text = self.meta.get("text") != TEXT_READ
        self.words = {w: i for i, w in enumerate(self.vocabulary)}
        self.stem = bool(self.meta.get("stem"))  # its words are stems; queries are stemmed too
        # Terms rank the shortlist (semhash.rerank); 0 for an index built before.
        self.n_terms = int(self.meta.get("n_terms") or 0)
        self._terms: tuple[list[str], np.ndarray] | None = None  # loaded by the first batch
        self._typical_length: float | None = None  # read by the first short query
        # Neighbour lists smooth the ranking (semhash.rerank); 0 before they are computed.
        self.n_neighbours = int(self.meta.get("n_neighbours") or 0)
        widths = (int(self.meta["address_bits"]), int(self.meta["code_bits"]))
        arrays = self.stored.arrays(encoders_only=True)
        _check_model_shapes(arrays, len(self.vocabulary), widths, self.stored.path)
        heads = autoencoder.from_arrays(arrays, encoder_only=True)
        self.address_encoder, self.code_encoder = heads[0].encoder, heads[1].encoder
        self.rowids, addresses, self.codes = self.stored.codes()
        self.table = search.AddressTable(addresses, int(self.meta["address_bits"]))

    @classmethod
    def open(cls, database: str | os.PathLike) -> Index:
        """Open an index file for querying (read-only until :meth:`add` is called)."""
        return cls(StoredIndex(database))

    @classmethod
    def build(cls, paths: Sequence[str], database: str | os.PathLike, **params) -> Index:
        """Train a model on the documents under ``paths``, write the index, open it.

        ``params`` are those of :func:`build_index`; its summary is in ``.summary``.
        """
        summary = build_index(paths, database, **params)
        index = cls.open(database)
        index.summary = summary
        return index

    def __len__(self) -> int:
        return len(self.rowids)

    def __repr__(self) -> str:
        return f"<Index {self.stored.path}: {len(self)} documents>"

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- encoding ------------------------------------------------------------------
    def _encode_counts(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        address_bits = codes.threshold(autoencoder.encode(self.address_encoder, counts))
        code_bits = codes.threshold(autoencoder.encode(self.code_encoder, counts))
        return codes.to_addresses(address_bits), codes.pack_codes(code_bits)

    def encode(self, texts: Sequence[str], lift: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(addresses int64 (n,), codes uint64 (n, words), n_known_words int (n,)) of texts.

        With ``lift``, a text with fewer known words than the median indexed document
        is encoded as a longer document with the same word distribution (see
        :data:`semhash.autoencoder.LIFT`). The bottom layer reads counts, N times the distribution, so a
        4-word query would otherwise carry almost no evidence and land near the
        average code: on the sample corpus, "nasa shuttle launch orbit" found 3
        sci.space posts in its top 10 as is, and 10 of 10 lifted.
        """
        return self._encode_read(self._read(texts), lift)

    def _read(self, texts: Sequence[str]) -> list[str]:
        """The part of each text the index reads (:func:`~semhash.tokenize.content`,
        or all of it for an index built before), computed once per query."""
        return list(texts) if self.whole_text else [content(t) for t in texts]

    def _encode_read(self, read: list[str], lift: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`encode` of texts already :meth:`_read`."""
        counts = count_words(read, self.words, whole_text=True, stem=self.stem)
        known = counts.sum(axis=1).astype(np.int64)
        if lift:
            self._lift(counts)
        addresses, long_codes = self._encode_counts(counts)
        return addresses, long_codes, known

    def _lift(self, counts: np.ndarray) -> None:
        """Scale, in place, the word counts of texts shorter than the median indexed
        document towards that length, by :data:`semhash.autoencoder.LIFT` of the way in log length
        (see :meth:`encode`)."""
        autoencoder.lift(counts, self.typical_length())

    def typical_length(self) -> float:
        """Median number of vocabulary words in the indexed documents."""
        if self._typical_length is None:
            self._typical_length = self.stored.typical_length()
        return self._typical_length


    def encode_documents(
        self,
        paths: Sequence[str],
        *,
        binary: bool = False,
        stdin: TextIO | None = None,
        skip_bad_lines: bool = False,
        stats: ReadStats | None = None,
    ) -> Iterator[EncodedDocument]:
        """Codes of the documents under ``paths`` (as :func:`build_index` reads them),
        as hex strings (most significant digit first) or, with ``binary``, the same
        numbers in base 2. Streams, ``ENCODE_BATCH`` documents at a time; ``stats``
        (optional) counts what was skipped."""
        address_bits, code_bits = int(self.meta["address_bits"]), int(self.meta["code_bits"])
        docs = iter_documents(paths, stats, stdin=stdin, skip_bad_lines=skip_bad_lines, skip=_own_files(self.stored.path))
        while batch := list(itertools.islice(docs, ENCODE_BATCH)):
            addresses, long_codes, known = self.encode([d.text for d in batch])
            address_words = addresses.astype(np.uint64).reshape(-1, 1)
            address_hex = codes.to_hex(address_words, address_bits)
            code_hex = codes.to_hex(long_codes, code_bits)
            for doc, a, c, n in zip(batch, address_hex, code_hex, known.tolist()):
                if binary:
                    a, c = _base2(a, address_bits), _base2(c, code_bits)
                yield EncodedDocument(doc.id, a, c, n)

    # -- updating ------------------------------------------------------------------
    def check_options(self, **options) -> None:
        """Raise :class:`ModelMismatch` if ``options`` (those of :func:`build_index`)
        differ from the ones this index's model was built with."""
        # An index built before the option counts words: --stem must not update it.
        built = {"stem": self.stem, **self.meta.get("build_options", {})}
        differ = [
            f"{k}={_plain(v)!r} (the index has {_plain(built[k])!r})"
            for k, v in options.items()
            if k in built and _plain(v) != _plain(built[k])
        ]
        if differ:
            raise ModelMismatch(
                f"{self.stored.path} was built with other model options: {', '.join(differ)}; "
                "retrain to change the model (semhash index --retrain)"
            )

    def add(
        self,
        paths: Sequence[str] = (),
        *,
        files: Iterable[str] | None = None,
        prune: bool = False,
        prune_limit: float | None = PRUNE_LIMIT,
        verbose: bool = False,
        stdin: TextIO | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        skip_bad_lines: bool = False,
        wait: bool = False,
    ) -> UpdateSummary:
        """Bring the index up to date with the documents under ``paths`` (and ``files``).

        New documents are added and changed ones re-encoded with the stored model
        (no retraining); unchanged ones (same id, same content hash) are skipped.
        Everything is written in one transaction: if it is interrupted, the index
        stays as it was.

        Parameters
        ----------
        paths : directories, files or ``"-"`` (JSON lines on stdin), as for :func:`build_index`
        files : iterable of str, optional
            More files, one path each, ids relative to the current directory.
        prune : bool
            Remove indexed documents that were not found this time but lie under
            the roots of this run: the directories and files in ``paths``; with
            ``files``, the documents indexed by their path from the current
            directory (earlier lists); when ``paths`` has ``"-"``, every document
            without a path (read as JSON lines).
        prune_limit : float or None
            The largest share of the index's documents ``prune`` may remove; past
            it, :class:`BuildError` says how many, and nothing is changed. None: no limit.
        max_bytes, skip_bad_lines, wait : as for :func:`build_index`

        Returns
        -------
        UpdateSummary
        """
        with store.writer_lock(self.stored.path, wait=wait):
            if self.stored.changed():  # another writer committed since it was opened
                self._reopen()
            return self._add(paths, files, prune, prune_limit, verbose, stdin, max_bytes, skip_bad_lines)

    def _add(self, paths, files, prune, prune_limit, verbose, stdin, max_bytes, skip_bad_lines) -> UpdateSummary:
        start = time.perf_counter()
        stats = ReadStats()
        stored = self.stored.fingerprints()
        seen: set[str] = set()
        n_added = n_updated = n_unchanged = n_duplicates = 0
        coverage = _Coverage(self.whole_text, self.stem)
        batch: list[Document] = []

        with store.IndexWriter(self.stored.path) as writer:

            def flush() -> None:
                if not batch:
                    return
                texts = [d.text for d in batch]
                counts = count_words(texts, self.words, whole_text=self.whole_text, stem=self.stem)
                addresses, long_codes = self._encode_counts(counts)
                vectors = self._term_vectors([coverage.words(t) for t in texts])
                rows = [
                    DocumentRow(
                        d.id, d.path, d.labels, d.content_hash, _dense_counts_dict(c, self.vocabulary),
                        first_line(d.text), rerank.to_blob(rerank.row(vectors, i)),
                    )
                    for i, (d, c) in enumerate(zip(batch, counts))
                ]
                writer.upsert(rows, addresses, long_codes)
                batch.clear()

            found = _read(paths, files, stats, stdin, max_bytes, skip_bad_lines, self.stored.path)
            for doc in _progress(found, verbose, "reading and encoding", unit="doc"):
                if doc.id in seen:
                    n_duplicates += 1
                    continue
                seen.add(doc.id)
                old = stored.get(doc.id)
                # Same text, new labels (a JSON line relabelled): stored anew, else the old
                # labels stayed for good. (A path is not compared: "./posts" and "posts" differ.)
                if old is not None and old[0] == doc.content_hash and old[2] == store.labels_json(doc.labels):
                    n_unchanged += 1
                    continue
                n_added += old is None
                n_updated += old is not None
                coverage.add(coverage.words(doc.text), self.words)
                batch.append(doc)
                if len(batch) >= ENCODE_BATCH:
                    flush()
            flush()
            missing = [i for i, (_, path, _) in stored.items() if i not in seen and _under_roots(i, path, paths, files)]
            if prune:
                _check_prune(len(missing), len(stored), prune_limit)
                writer.delete(missing)
            n_documents = len(stored) + n_added - (len(missing) if prune else 0)
            writer.set_meta({"n_documents": n_documents, "updated": _now()})
        self._reopen()
        try:
            self._fill_neighbours(verbose)
        except StoreError as e:
            # Damage in rows only this step reads (every document's vector, the new
            # ones' postings), found once the documents are committed: not the
            # "unchanged" every other failure means.
            raise StoreError(f"{e}; {UPDATE_WRITTEN}") from None
        return UpdateSummary(
            n_added=n_added,
            n_updated=n_updated,
            n_unchanged=n_unchanged,
            n_removed=len(missing) if prune else 0,
            n_missing=len(missing),
            n_documents=n_documents,
            n_binary=stats.n_binary,
            n_unreadable=stats.n_unreadable,
            n_truncated=stats.n_truncated,
            n_duplicates=n_duplicates,
            seconds=time.perf_counter() - start,
            drift=coverage.oov_share,
            oov_share=self.meta.get("oov_share"),
            bad_lines=stats.bad_lines,
            n_numbered=stats.n_numbered,
        )

    def _reopen(self) -> None:
        path = self.stored.path
        self.stored.close()
        self.stored = StoredIndex(path)
        self._load()

    @contextmanager
    def _current(self) -> Iterator[None]:
        """Read inside one snapshot of the file, reloading first if another process
        has committed since the index was loaded: an open Index follows its file,
        and the rows it reads always belong to the codes it searched."""
        for _ in range(5):
            started = self.stored.begin()
            if not started or not self.stored.changed():
                break
            self.stored.end()
            self._reopen()
        try:
            yield
        finally:
            if started:
                self.stored.end()

    # -- searching -----------------------------------------------------------------
    def query(
        self,
        text: str,
        k: int = 10,
        *,
        min_distance: int | None = None,
        max_distance: int | None = None,
        codes_only: bool = False,
        labels: Sequence[str] | str | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for ``text``: a Hamming ball around its address
        gives a shortlist, ranked by words and codes together (:mod:`semhash.rerank`),
        or with ``codes_only`` (or an index built before terms were stored) by the
        distance between long codes (ties by index order).

        ``min_distance``/``max_distance`` keep only hits at those code distances
        (inclusive), in the same order; the search widens until ``k`` such hits are
        found or none are left. ``labels`` keeps only hits carrying at least one of
        them (:class:`QueryError` for a label no document carries): the allowed hits
        of a ranking whose shortlist holds every allowed document when they are at
        most :data:`LABELS_RANKED_IN_FULL`, else of the default ranking grown until
        ``k`` are found.
        """
        return self.query_many(
            [text], k, min_distance=min_distance, max_distance=max_distance, codes_only=codes_only, labels=labels
        )[0]

    def query_many(
        self,
        texts: Sequence[str],
        k: int = 10,
        skip_empty: bool = False,
        *,
        min_distance: int | None = None,
        max_distance: int | None = None,
        documents: bool = False,
        codes_only: bool = False,
        labels: Sequence[str] | str | None = None,
    ) -> list[list[Hit] | None]:
        """:meth:`query` for many texts, encoded in one batch.

        Short texts are encoded as longer documents with the same word distribution
        (lifted towards a typical document's length, see :meth:`encode`); with
        ``documents``, each text is encoded as the document it is, as indexing
        encoded the indexed ones.

        Raises
        ------
        EmptyQuery
            If a text has no word of the vocabulary (its code would mean nothing),
            unless ``skip_empty``, which gives ``None`` for that text instead.
        """
        _check_k(k)
        with self._current():
            allowed = self._allowed(labels)
            return self._query_many(texts, k, skip_empty, min_distance, max_distance, not documents, codes_only, allowed)

    def _query_many(self, texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed=None) -> list[list[Hit] | None]:
        return self._hits(self._found_many(texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed))

    def _found_many(self, texts, k, skip_empty, min_distance, max_distance, lift, codes_only, allowed=None):
        """:meth:`_query_many`'s hits as (rowids, code distances, scores or None)
        per text (None: no hit)."""
        read = self._read(texts)
        addresses, query_codes, known = self._encode_read(read, lift)
        found: list[tuple | None] = [None] * len(texts)
        empty = np.flatnonzero(known == 0)
        if empty.size and self.n_terms and not codes_only:
            # No word the model knows, but maybe words the index has: ranked by them.
            answers = self._by_words([read[i] for i in empty], query_codes[empty], k, min_distance, max_distance, allowed=allowed)
            for i, hits in zip(empty.tolist(), answers):
                found[i] = hits
            empty = np.array([i for i in empty.tolist() if found[i] is None], np.int64)
        if empty.size and not skip_empty:
            which = f"query {empty[0] + 1}" if len(texts) > 1 else "the query"
            raise EmptyQuery(f"{which} {_NO_WORDS}")
        asked = np.flatnonzero(known > 0)
        if allowed is not None and _few(allowed):
            for start in range(0, asked.shape[0], _FILTERED_BATCH):
                part = asked[start : start + _FILTERED_BATCH]
                answers = self._among(
                    addresses[part], query_codes[part], [read[i] for i in part], k, allowed,
                    codes_only=codes_only, bounds=(min_distance, max_distance),
                )
                for i, hits in zip(part.tolist(), answers):
                    found[i] = hits
        elif min_distance is None and max_distance is None and allowed is None:
            rows, dists, counts, scores = self._search(
                addresses[asked], query_codes[asked], [read[i] for i in asked], k, codes_only
            )
            for j, i in enumerate(asked.tolist()):
                m = counts[j]
                found[i] = (self.rowids[rows[j, :m]], dists[j, :m], None if scores is None else scores[j, :m])
        else:
            # Filtered: _ranked's first round for many queries at once (most shortlists
            # already hold k hits that pass: 300 20NG posts within 5 labels took 50 s
            # one by one); the others go on growing one by one, from its second round.
            pending, first = [], min(k, len(self))
            for start in range(0, asked.shape[0], _FILTERED_BATCH):
                part = asked[start : start + _FILTERED_BATCH]
                rows, dists, counts, scores = self._search(
                    addresses[part], query_codes[part], [read[i] for i in part], first, codes_only,
                    bounds=(min_distance, max_distance), rank_all=allowed is not None,
                )
                for j, i in enumerate(part.tolist()):
                    kept = _kept(
                        rows[j, : counts[j]], dists[j, : counts[j]], None if scores is None else scores[j, : counts[j]],
                        k, (), min_distance, max_distance, allowed, first >= len(self),
                    )
                    if kept is None:
                        pending.append(i)
                    else:
                        found[i] = (self.rowids[kept[0]], kept[1], kept[2])
            for i in pending:
                found[i] = self._ranked(
                    addresses[i], query_codes[i], k, text=read[i], min_distance=min_distance,
                    max_distance=max_distance, codes_only=codes_only, allowed=allowed, want=min(4 * first, len(self)),
                )
        return found

    def _allowed(self, labels: Sequence[str] | str | None) -> np.ndarray | None:
        """Which positions hold a document carrying at least one of ``labels``
        (``None``: no labels given, every one). One read of the documents table.

        Raises
        ------
        QueryError
            For a label no document carries (a typo would otherwise find nothing),
            naming the labels the index has (the 10 commonest).
        """
        if labels is None:
            return None
        labels = [labels] if isinstance(labels, str) else list(labels)
        if not labels:
            return None
        if not all(isinstance(label, str) for label in labels):
            raise QueryError(f"labels must be strings, got {labels!r}")
        rowids, carried = self.stored.rowids_with_labels(labels)
        unknown = [label for label in dict.fromkeys(labels) if label not in carried]
        if unknown:
            have = list(self.stored.label_counts())
            shown = ", ".join(have[:10]) + (f" and {len(have) - 10} more" if len(have) > 10 else "")
            raise QueryError(
                f"no document in {self.stored.path} has the label{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; its labels: {shown or '(none)'}"
            )
        allowed = np.zeros(len(self), bool)
        wanted = np.asarray(rowids, np.int64)
        at = np.minimum(np.searchsorted(self.rowids, wanted), max(len(self) - 1, 0))
        if len(self):
            allowed[at[self.rowids[at] == wanted]] = True
        return allowed

    def _among(
        self, addresses, query_codes, texts: Sequence[str], k: int, allowed: np.ndarray, *,
        codes_only: bool = False, vectors: rerank.Packed | None = None, bounds=(None, None), exclude: Sequence[int] = (),
    ) -> list[tuple]:
        """(rowids, distances, scores or None) of each query's ``k`` best allowed hits
        (``allowed``: a mask over positions, few of them set) within the bounds and
        not at rows ``exclude``: every allowed document is ranked. With words, each
        query's shortlist (as :meth:`_search` makes it) is joined by them all and ranked
        whole, so that they are ranked as an unfiltered query ranks them once its
        shortlist holds them; with the codes alone, they are ranked by code distance
        (ties by index order)."""
        positions = np.flatnonzero(allowed)
        words = self.n_terms > 0 and not codes_only
        out = []
        if not words:
            for i in range(query_codes.shape[0]):
                d = self._code_distances(positions, query_codes[i])
                order = np.argsort(d, kind="stable")
                r, d = positions[order], d[order]
                keep = ~np.isin(r, exclude) & _within(d, *bounds)
                out.append((self.rowids[r[keep][:k]], d[keep][:k].astype(np.int32), None))
            return out
        rows, dists, counts, scores = self._search(
            addresses, query_codes, texts, k, codes_only, vectors, bounds=bounds, joined=positions
        )
        for i in range(query_codes.shape[0]):
            r, d, s = rows[i, : counts[i]], dists[i, : counts[i]], scores[i, : counts[i]]
            keep = allowed[r] & ~np.isin(r, exclude) & _within(d, *bounds)
            out.append((self.rowids[r[keep][:k]], d[keep][:k], s[keep][:k]))
        return out

    def _ranked(
        self, address, code, k: int, *, text: str = "", vector: rerank.Packed | None = None,
        exclude: Sequence[int] = (), min_distance=None, max_distance=None, codes_only: bool = False,
        allowed: np.ndarray | None = None, want: int | None = None,
    ):
        """(rowids, distances, scores or None) of the ``k`` best hits of the default ranking (for
        ``text`` as :meth:`_read` gives it, or its TF-IDF ``vector``) that are not at rows ``exclude`` and whose
        code distance lies within the bounds (and, with ``allowed``, a mask over
        positions, that are allowed): the ranking grows until ``k`` pass, from ``want``
        documents (default: ``k`` and the excluded). Few allowed documents are ranked
        in full instead (:meth:`_among`)."""
        if allowed is not None and _few(allowed):
            return self._among(
                np.array([address]), code.reshape(1, -1), [text], k, allowed, codes_only=codes_only,
                vectors=vector, bounds=(min_distance, max_distance), exclude=exclude,
            )[0]
        n = len(self)
        want = min(k + len(exclude), n) if want is None else want
        while True:
            rows, dists, counts, scores = self._search(
                np.array([address]), code.reshape(1, -1), [text], want, codes_only, vector,
                bounds=(min_distance, max_distance), rank_all=allowed is not None,
            )
            found = _kept(
                rows[0, : counts[0]], dists[0, : counts[0]], None if scores is None else scores[0, : counts[0]],
                k, exclude, min_distance, max_distance, allowed, want >= n,
            )
            if found is not None:
                return self.rowids[found[0]], found[1], found[2]
            want = min(4 * want, n)

    def _search(
        self, addresses, query_codes, texts: Sequence[str], k: int, codes_only: bool = False,
        vectors: rerank.Packed | None = None, bounds: tuple[int | None, int | None] = (None, None),
        rank_all: bool = False, joined: np.ndarray | None = None,
    ):
        """The default query path for encoded queries: (rows, code distances, counts,
        scores), rows as positions in ``self.codes``, padded with -1; scores (NaN
        past the counts) are None when the codes alone rank.

        The Hamming ball grows to a shortlist (:attr:`shortlist` documents ranked by
        the long code, or ``rerank.SHORTLIST`` when the index has terms), which is
        ranked by words and codes together (:mod:`semhash.rerank`): the TF-IDF vectors
        of ``texts`` (as :meth:`_read` gives them), or ``vectors`` when given.
        ``bounds`` (min, max code distance): rare terms' holders outside them are
        not added (they could never be hits, and one ranked among the first told
        :meth:`_ranked` that the ball had reached past ``max_distance``).
        ``rank_all``: rank every candidate (as bounds do); ``joined``: positions
        that join every shortlist (those within the bounds), all then ranked.
        """
        n = len(self)
        words = self.n_terms > 0 and not codes_only
        width = min(max(k, rerank.SHORTLIST if words else k), n)
        # One call for the whole batch: the kernel runs the queries in parallel.
        rows, dists, counts, _ = search.search_many(
            self.table, self.codes, addresses, query_codes, width, shortlist=min(max(width, self.shortlist), n)
        )
        if not words:
            return rows, dists, counts, None
        if vectors is None:
            vectors = self._query_vectors(texts)
        if width < n:
            rows, dists, counts = self._with_rare_holders(rows, dists, counts, vectors, query_codes, bounds, short=True)
            if joined is not None and joined.size:
                n_q = rows.shape[0]
                starts = np.arange(n_q + 1, dtype=np.int64) * joined.shape[0]
                rows, dists, counts = search.join(self.codes, rows, dists, counts, query_codes, starts, np.tile(joined, n_q), *bounds)
        # Bounded: every candidate ranked, for _ranked to keep those within the bounds
        # (the best k by words alone could all lie outside: none kept, and no growing).
        ranked = rows.shape[1] if bounds != (None, None) or rank_all or joined is not None else k
        return self._rank_shortlists(rows, dists, counts, vectors, ranked)

    def _with_rare_holders(self, rows, dists, counts, vectors: rerank.Packed, query_codes, within=(None, None), short=False):
        """The shortlists (``rows``, positions padded with -1, ``dists``, ``counts``)
        grown by the documents that hold each query's rarest terms, rarest first
        while they add up to at most ``rerank.RARE_TERMS`` documents, appended in
        index order after the ball's; with ``short``, the short queries'
        (:func:`rerank.short_queries`) by the holders of every term of theirs that has
        postings: those holding all of its words (all hold its rarest), then most,
        are among them. (An index without postings: as they are.)"""
        q_starts, q_ids, _ = vectors
        held = self.stored.postings(search.unique(q_ids).tolist())
        if not held:
            return rows, dists, counts
        # Each query's terms by ascending document frequency (ties: term order); the
        # first ones whose frequencies add up to its budget at most are picked.
        unposted = store.POSTINGS_MAX_DF * rerank.SHORT_QUERY + 1  # above any budget
        df = np.zeros(self.n_terms, np.int64)  # 0: no document holds it
        for term, (n_holders, rowids) in held.items():
            df[term] = n_holders if rowids is not None else unposted
        query = np.repeat(np.arange(rows.shape[0]), np.diff(q_starts))
        order = np.lexsort((df[q_ids], query))
        total = np.cumsum(df[q_ids][order])
        before = np.concatenate([[0], total])[q_starts[:-1]]  # each query's first entry is at q_starts
        budget = np.where(rerank.short_queries(vectors) & short, unposted - 1, rerank.RARE_TERMS)[query[order]]
        picked = order[(total - np.repeat(before, np.diff(q_starts)) <= budget) & (df[q_ids][order] > 0)]
        picked = np.sort(picked)  # by query
        if picked.size == 0:
            return rows, dists, counts
        # Their holders, as positions, one run per query (a term's rowids ascend).
        terms = q_ids[picked]
        holders = self._positions(b"".join([held[t][1] for t in terms.tolist()]))
        term_starts = np.concatenate([[0], np.cumsum(df[terms])])
        starts = term_starts[np.searchsorted(query[picked], np.arange(rows.shape[0] + 1))]
        return search.join(self.codes, rows, dists, counts, query_codes, starts, holders, *within)

    def _code_distances(self, positions: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
        """Hamming distances between the long codes at ``positions`` and a query's
        code (or, row by row, as many query codes), in numpy: a few hundred codes
        each, never worth loading the kernels for."""
        return np.bitwise_count(self.codes[positions] ^ query_codes).sum(axis=1)

    def _positions(self, rowids: bytes) -> np.ndarray:
        """The positions of the documents whose rowids ``rowids`` holds (int32,
        little-endian, as postings store them)."""
        positions = self._local_positions(np.arange(len(self)), np.frombuffer(rowids, "<i4")).astype(np.int64)
        if (positions < 0).any():  # the writers keep postings exact: this is damage, and changed answers unseen
            raise self.stored._corrupt("a term's postings name a document the index does not have")
        return positions

    def _rank_shortlists(self, rows, dists, counts, vectors: rerank.Packed, k: int):
        """:meth:`_search`'s ranking of shortlists (``rows``, positions padded with
        -1, their code ``dists`` and ``counts``) by words and codes, for the queries'
        TF-IDF ``vectors``: (rows, code distances, counts, scores) of the ``k`` best."""
        n = len(self)
        # rows' -1 padding marks the spare last entry (no mask: 15M rows in a batch of 7,500)
        present = np.zeros(n + 1, bool)
        present[rows] = True
        shortlisted = np.flatnonzero(present[:n])
        local = (np.cumsum(present) - 1)[rows]  # position among the shortlisted (padding: any)
        documents, neighbours = self._ranking_rows(shortlisted)
        code_bits = int(self.meta["code_bits"])
        order, scores = rerank.rerank(
            vectors, local, dists, counts, documents, self.n_terms, code_bits, min(k, n), neighbours, held_bonus=True
        )
        taken = np.maximum(order, 0)
        valid = order >= 0
        return (
            np.where(valid, np.take_along_axis(rows, taken, 1), -1),
            np.where(valid, np.take_along_axis(dists, taken, 1), -1),
            valid.sum(axis=1),
            scores,
        )

    def _ranking_rows(self, positions: np.ndarray) -> tuple[rerank.Packed, np.ndarray | None]:
        """The stored TF-IDF vectors of the documents at ``positions`` (ascending),
        packed, and their neighbour lists as indices into ``positions`` (-1: none, or
        not among them); ``None`` for an index without neighbour lists."""
        rowids = self.rowids[positions].tolist()
        found = self.stored.ranking_rows(rowids)
        # Each blob is let go once read (a batch on a million documents holds half a
        # million of each: 0.4 GB of bytes objects).
        vectors = [found[r][0] for r in rowids]
        lists = [found[r][1] or b"" for r in rowids] if self.n_neighbours else []
        del found
        documents = self._stored_vectors(vectors, sum(len(b) for b in vectors if b))
        del vectors
        if not self.n_neighbours:
            return documents, None
        lengths = np.fromiter(map(len, lists), np.int64, len(lists)) // 4
        try:
            joined = b"".join(lists)
        except TypeError:  # text where a blob should be
            joined = b""
        stored = np.frombuffer(joined, "<i4", len(joined) // 4)
        # (a rowid beyond the documents is a neighbour removed since: not damage)
        if len(joined) != 4 * lengths.sum() or (stored < 1).any():
            raise self.stored._corrupt("a stored neighbour list is damaged")
        del lists
        local = self._local_positions(positions, stored)
        del joined
        # Row i's list fills the first lengths[i] cells of its row, in list order.
        width = max(rerank.NEIGHBOURS, int(lengths.max(initial=0)))
        neighbours = np.full((len(rowids), width), -1, np.int32)
        neighbours[np.arange(width) < lengths[:, None]] = local
        return documents, np.ascontiguousarray(neighbours[:, : rerank.NEIGHBOURS])

    def _stored_vectors(self, blobs, n_bytes: int) -> rerank.Packed:
        """:func:`rerank.pack_blobs` of stored TF-IDF vectors, checked: a damaged row's
        term ids index the rankers' arrays (one id of 2**31 - 1 had a batch allocate
        24 GB), and text in place of a blob failed to join; both are a corrupt index."""
        try:
            documents = rerank.pack_blobs(blobs, n_bytes)
        except TypeError:
            raise self.stored._corrupt("a stored TF-IDF vector is not a blob") from None
        ids = documents[1]
        if 8 * ids.size != n_bytes:  # whole (id, weight) pairs only: stray bytes were dropped unseen
            raise self.stored._corrupt("a stored TF-IDF vector is damaged")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.n_terms):
            raise self.stored._corrupt("a stored TF-IDF vector names a term the index does not have")
        # NaN weights made NaN scores: hits in no order, and "score": NaN, not JSON. (Unit
        # vectors' weights are at most 1, so a finite sum means every weight is finite.)
        if not np.isfinite(documents[2].sum(dtype=np.float64)):
            raise self.stored._corrupt("a stored TF-IDF vector's weights are not numbers")
        return documents

    def _local_positions(self, positions: np.ndarray, rowids: np.ndarray) -> np.ndarray:
        """Where each of ``rowids`` is among the documents at ``positions`` (int32,
        -1: not among them, or not indexed any more).

        By a table indexed by rowid while rowids are dense enough for it (2,000
        queries on a million documents look up 28 million neighbours: binary
        searches took 6 s of it), else by binary search."""
        span = int(self.rowids[-1]) + 1 if len(self) else 0
        if span <= _TABLE_SPAN_PER_DOCUMENT * len(self) + _TABLE_SPAN_MIN:
            # Entry rowid + 1; the first and the last are -1 for rowids out of range.
            by_rowid = np.full(span + 2, -1, np.int32)
            by_rowid[self.rowids[positions] + 1] = np.arange(positions.shape[0], dtype=np.int32)
            return np.take(by_rowid, rowids + np.int32(1), mode="clip")  # 2**31 - 1 wraps below: -1 too
        local = np.full(rowids.shape[0], -1, np.int32)
        at = np.minimum(np.searchsorted(self.rowids, rowids), len(self) - 1)
        found = np.searchsorted(positions, at)
        found = np.minimum(found, max(positions.shape[0] - 1, 0))
        hit = (self.rowids[at] == rowids) & (positions[found] == at) if positions.size else np.zeros(rowids.shape[0], bool)
        local[hit] = found[hit]
        return local

    def _fill_neighbours(self, verbose: bool = False) -> None:
        """Compute the neighbour lists the index lacks (every one after a build, the
        new and changed documents' after an update) and store them in one transaction.

        A document's neighbours are the best ``rerank.NEIGHBOURS`` of its own ball of
        ``rerank.NEIGHBOUR_SHORTLIST`` documents and the documents holding its rarest
        terms (as a query's shortlist), itself excluded, ranked as a query of its
        stored vector is ranked by the first pass (no feedback, no neighbours).
        The caller holds the writer lock.
        """
        if not self.n_terms or self.stored.meta.get("schema_version", 0) < 4:
            return
        missing = np.searchsorted(self.rowids, self.stored.without_neighbours())
        if missing.size == 0:
            return
        n = len(self)
        rowids = self.rowids.tolist()
        n_bytes, blobs = self.stored.all_term_blobs()
        documents = self._stored_vectors(blobs, n_bytes)  # in rowid order: row i is position i
        # Prepared once for every batch below (each batch's own preparation was 10%
        # of a million-document index's build).
        prepared = rerank.KernelDocuments(documents, self.n_terms)
        width = min(rerank.NEIGHBOUR_SHORTLIST, n)
        code_bits = int(self.meta["code_bits"])
        lists = []
        for start in _progress(range(0, missing.size, 4096), verbose, "finding neighbours", unit="batch"):
            at = missing[start : start + 4096]
            rows, dists, counts, _ = search.search_many(
                self.table, self.codes, self.table.addresses[at], self.codes[at], width, shortlist=width
            )
            queries = rerank.pack([rerank.row(documents, i) for i in at.tolist()])
            if width < n:  # as a query's: with the documents holding its rarest terms
                rows, dists, counts = self._with_rare_holders(rows, dists, counts, queries, self.codes[at])
            order, _ = rerank.rerank(
                queries, rows, dists, counts, prepared, self.n_terms, code_bits, min(rerank.NEIGHBOURS + 1, width),
                feedback=False,
            )
            ranked = np.where(order >= 0, np.take_along_axis(rows, np.maximum(order, 0), 1), -1)
            for i, found in zip(at.tolist(), ranked):
                found = found[(found >= 0) & (found != i)][: rerank.NEIGHBOURS]
                lists.append((rowids[i], rerank.neighbours_to_blob(self.rowids[found])))
        with store.IndexWriter(self.stored.path) as writer:
            writer.set_neighbours(lists)
            writer.set_meta({"n_neighbours": rerank.NEIGHBOURS})
        self._reopen()

    def _term_vectors(self, token_lists: list[list[str]]) -> rerank.Packed:
        """TF-IDF vectors of token lists over the index's terms, packed (all empty for
        an index built before terms were stored: its terms table may not exist yet)."""
        known = self.stored.terms(set().union(*token_lists)) if self.n_terms else {}
        return rerank.token_vectors(token_lists, known)

    def _by_words(self, read: list[str] | None, query_codes, k: int, min_distance=None, max_distance=None, vectors=None, allowed=None):
        """Hits of queries with no word of the model's vocabulary, by their words
        that are indexed terms: every document holding one of them, ranked by words
        and codes as a shortlist is (``None`` for a query with no such word).

        The model's vocabulary is the 2000 commonest words; the terms are every word
        of the indexed documents. Without this, a query of rarer words ("asimov
        stamp") found nothing: 1,279 of the 7,526 Subject lines of the 20NG test
        posts have no vocabulary word but some term. Its code is that of an empty
        document, so its distances say little; the words rank. (``vectors``: the
        texts' TF-IDF vectors, given instead of the texts ``read``; ``allowed``, a mask
        over positions: only those are hits.)"""
        vectors = self._query_vectors(read) if vectors is None else vectors
        q_starts, q_ids, _ = vectors
        n = q_starts.shape[0] - 1
        if q_ids.size == 0:  # no word any document has: nothing to read the vectors for
            return [None] * n
        candidates = self._holders([q_ids[q_starts[i] : q_starts[i + 1]] for i in range(n)])
        width = max(1, max(map(len, candidates)))
        rows = np.full((n, width), -1, np.int64)
        dists = np.full((n, width), -1, np.int32)
        counts = np.array([len(c) for c in candidates], np.int64)
        for i, c in enumerate(candidates):
            rows[i, : len(c)] = c
            dists[i, : len(c)] = self._code_distances(c, query_codes[i])
        # Ranked in full, so that distance bounds keep the best k that pass.
        rows, dists, counts, scores = self._rank_shortlists(rows, dists, counts, vectors, width)
        out = []
        for i in range(n):
            r, d, s = rows[i, : counts[i]], dists[i, : counts[i]], scores[i, : counts[i]]
            keep = _within(d, min_distance, max_distance)
            if allowed is not None:
                keep &= allowed[r]
            out.append((self.rowids[r[keep][:k]], d[keep][:k], s[keep][:k]) if counts[i] else None)
        return out

    def _holders(self, term_lists: list[np.ndarray]) -> list[np.ndarray]:
        """For each list of term ids, the positions of the documents holding any of
        them, ascending: from the stored postings when every term is rare enough to
        have them, else one pass over every stored vector, streamed 65,536 at a time
        (a million documents: about 8 s, in bounded memory; postings of every term
        built in memory took 82 s and 2.3 GB there)."""
        held = self.stored.postings(search.unique(np.concatenate(term_lists)).tolist())
        if held and all(h[1] is not None for h in held.values()):  # all rare enough to be kept
            return [search.unique(self._positions(b"".join([held[t][1] for t in terms.tolist() if t in held]))) for terms in term_lists]
        wanted = np.zeros(self.n_terms, bool)
        for terms in term_lists:
            wanted[terms] = True
        n_bytes, blobs = self.stored.all_term_blobs()  # rowid order: row i is position i
        docs, terms, offset = [], [], 0
        stream = iter(blobs)
        while chunk := list(itertools.islice(stream, rerank._BLOBS_AT_ONCE)):
            starts, ids, _ = self._stored_vectors(chunk, sum(len(b) for b in chunk if b))
            at = np.flatnonzero(wanted[ids])
            docs.append(np.searchsorted(starts, at, side="right") - 1 + offset)
            terms.append(ids[at])
            offset += len(chunk)
        docs_, terms_ = np.concatenate(docs), np.concatenate(terms)
        return [search.unique(docs_[np.isin(terms_, t)]) for t in term_lists]

    def _query_vectors(self, texts: Sequence[str]) -> rerank.Packed:
        """TF-IDF vectors of texts as :meth:`_read` gives them. A few are looked up
        word by word; many (or any once the kernels are loaded) are tokenized by a
        kernel against every term, like :func:`count_words` (unless the index stems:
        the kernel matches whole words)."""
        if self.stem or not lazy.use_kernels(_PYTHON_NS_PER_CHAR * sum(map(len, texts)), kernel="ascii_word_ids"):
            return self._term_vectors([content_words(t, self.stem) for t in texts])
        if self._terms is None:
            self._terms = self.stored.all_terms()
        terms, idf = self._terms
        starts, ids = word_ids(texts, terms)
        doc = np.repeat(np.arange(len(texts)), np.diff(starts))
        return rerank.pack_tokens(doc, ids, idf[ids], len(texts))

    def similar(
        self, doc_id: str, k: int = 10, *, min_distance: int | None = None, max_distance: int | None = None,
        labels: Sequence[str] | str | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest neighbours of an indexed document, itself excluded,
        ranked as :meth:`query` ranks.

        Uses the document's stored address, code and TF-IDF vector: nothing is
        re-encoded. ``labels`` keeps only hits carrying one of them, as in :meth:`query`.

        Raises
        ------
        DocumentNotFound
        """
        _check_k(k)
        with self._current():
            rowid = self.stored.rowid_of(doc_id)
            if rowid is None:
                raise DocumentNotFound(f"no document {doc_id!r} in {self.stored.path}")
            allowed = self._allowed(labels)
            row = int(np.searchsorted(self.rowids, rowid))
            vector = None  # an index built before terms has no vectors (nor their column)
            if self.n_terms:
                blob = self.stored.term_vectors([rowid]).get(rowid)
                vector = self._stored_vectors([blob], len(blob) if blob else 0)
                if self.stored.known_words(rowid) == 0:
                    # Its code is an empty document's (any other such document is 0 bits
                    # away, whatever it says): by its words, as a query is, or nothing.
                    found = self._by_words(None, self.codes[row : row + 1], k + 1, min_distance, max_distance, vector, allowed)[0]
                    if found is None:
                        raise EmptyQuery(f"the document {_NO_WORDS}")
                    return self._hits([tuple(part[found[0] != rowid][:k] for part in found)])[0]
            found = self._ranked(
                self.table.addresses[row], self.codes[row], k, vector=vector, exclude=(row,),
                min_distance=min_distance, max_distance=max_distance, allowed=allowed,
            )
            return self._hits([found])[0]

    def similar_to_text(
        self, text: str, k: int = 10, *, min_distance: int | None = None, max_distance: int | None = None,
        labels: Sequence[str] | str | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest neighbours of a document given as text; indexed
        documents with the very same content (itself, if indexed) are excluded;
        ``labels`` as in :meth:`query`."""
        _check_k(k)
        with self._current():
            allowed = self._allowed(labels)
            read = self._read([text])
            addresses, query_codes, known = self._encode_read(read, lift=False)
            same = np.searchsorted(self.rowids, self.stored.rowids_with_hash(content_hash(text)))
            if known[0] == 0:  # no word of the model's: by its words alone, as a query is
                found = self._by_words(read, query_codes, k + same.shape[0], min_distance, max_distance, allowed=allowed)[0] if self.n_terms else None
                if found is None:
                    raise EmptyQuery(f"the document {_NO_WORDS}")
                keep = ~np.isin(found[0], self.rowids[same])
                return self._hits([tuple(part[keep][:k] for part in found)])[0]
            found = self._ranked(
                addresses[0], query_codes[0], k, text=read[0], exclude=same.tolist(),
                min_distance=min_distance, max_distance=max_distance, allowed=allowed,
            )
            return self._hits([found])[0]

    def similar_to_file(self, path: str | os.PathLike, k: int = 10, **filters) -> list[Hit]:
        """:meth:`similar_to_text` for a file, read as indexing reads it."""
        try:
            text, _ = read_text(path)
        except OSError as e:
            raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
        if text is None:
            raise CorpusError(f"{path} looks binary (NUL bytes): not a text document")
        return self.similar_to_text(text, k, **filters)

    #: Minimum size of the address-ball shortlist ranked by the long code. Measured on
    #: 20NG (bench/quality.py, precision@100): 100 -> 0.370, 200 -> 0.384,
    #: 500 -> 0.387, 1000 -> 0.386; ranking 500 codes costs microseconds.
    shortlist = 500

    def _hits(self, found: list[tuple | None]) -> list[list[Hit] | None]:
        """Hits from (rowids, code distances, scores or None) per query (None: no hit)."""
        # One lookup for the whole batch: per-query round trips to SQLite dominated.
        # (dict.fromkeys: the order of first appearance, at no numpy cost)
        hit_rowids = dict.fromkeys(r for f in found if f is not None for r in f[0].tolist())
        rows = self.stored.rows(list(hit_rowids))
        out: list[list[Hit] | None] = []
        for f in found:
            if f is None:
                out.append(None)
                continue
            docs = map(rows.__getitem__, f[0].tolist())
            scores = f[2].tolist() if f[2] is not None else itertools.repeat(None)
            out.append([Hit(doc[0], d, doc[1], doc[2], doc[3], doc[4], s) for doc, d, s in zip(docs, f[1].tolist(), scores)])
        return out

    # -- introspection -------------------------------------------------------------
    def info(self) -> dict:
        """What is in the index, as a JSON-ready dict (``semhash info --json``).

        Keys: database, size_bytes, schema_version, semhash_version, created,
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
        with self._current():
            return self._info()

    def _info(self) -> dict:
        shapes = self.stored.weight_shapes()
        heads = []
        while f"head{len(heads)}.encoder0.W" in shapes:
            h, k = len(heads), 0
            layers = [shapes[f"head{h}.encoder0.W"][0]]
            while f"head{h}.encoder{k}.W" in shapes:
                layers.append(shapes[f"head{h}.encoder{k}.W"][1])
                k += 1
            heads.append(layers)
        trunk = heads[0][:-1]
        bimodality = self.meta.get("bimodality") or [None, None]
        _, per_address = np.unique(self.table.addresses, return_counts=True)
        histogram: dict[str, int] = {}
        if per_address.size:
            bins = np.floor(np.log2(per_address)).astype(int)
            for b, n in enumerate(np.bincount(bins).tolist()):
                if n:  # ("0 holding 16-31 documents" said nothing)
                    histogram["1" if b == 0 else f"{2**b}-{2 ** (b + 1) - 1}"] = n
        return {
            "database": str(self.stored.path),
            "size_bytes": self.stored.path.stat().st_size,
            "schema_version": self.meta.get("schema_version"),
            "semhash_version": self.meta.get("semhash_version"),
            "created": self.meta.get("created"),
            "updated": self.meta.get("updated"),
            "documents": len(self),
            "labels": self.stored.label_counts(),
            "vocabulary_size": len(self.vocabulary),
            "stem": self.stem,
            "terms": self.n_terms,
            "neighbours": self.n_neighbours,
            "oov_share": self.meta.get("oov_share"),
            "reads": self._reads(),
            "model": {
                "trunk": trunk, "address_bits": heads[0][-1], "code_bits": heads[1][-1],
                "trained_on": self.meta.get("n_trained"),  # None: built before --train-sample existed
            },
            "bimodality": {"address": bimodality[0], "code": bimodality[1]},
            "addresses": {"distinct": int(per_address.size), "histogram": histogram},
        }

    def _reads(self) -> str:
        """How the index reads texts, as the documents it was built from were read."""
        if self.whole_text:
            return "whole texts"
        n_messages, n_documents = self.meta.get("messages") or (None, None)
        if n_messages is None:  # built before the count was kept
            return "mail and news messages as Subject + body, other texts whole"
        if n_messages == 0:
            return "whole texts (no mail or news headers in the documents it was built from)"
        if n_messages == n_documents:
            return "messages as Subject + body"
        return f"messages as Subject + body ({n_messages:,} of the {n_documents:,} documents it was built from), other texts whole"

    def close(self) -> None:
        self.stored.close()


def _within(dists: np.ndarray, min_distance: int | None, max_distance: int | None) -> np.ndarray:
    """Which of ``dists`` lie within the bounds (inclusive; ``None``: unbounded)."""
    keep = np.ones(dists.shape[0], bool)
    if min_distance is not None:
        keep &= dists >= min_distance
    if max_distance is not None:
        keep &= dists <= max_distance
    return keep


def _kept(rows, dists, scores, k: int, exclude, min_distance, max_distance, allowed, whole: bool):
    """(rows, distances, scores or None) of the first ``k`` of a ranked shortlist that
    are not at rows ``exclude``, lie within the bounds and are ``allowed`` (a mask
    over positions, or None); ``None`` when it holds fewer and growing it could
    find more (it is not the ``whole`` index, nor reaches past ``max_distance``)."""
    keep = ~np.isin(rows, exclude) & _within(dists, min_distance, max_distance)
    if allowed is not None:
        keep &= allowed[rows]
    # A shortlist that already reaches past max_distance only grows farther.
    farther = max_distance is not None and rows.shape[0] and dists.max() > max_distance
    if keep.sum() >= k or farther or whole:
        return rows[keep][:k], dists[keep][:k], None if scores is None else scores[keep][:k]
    return None


def _few(allowed: np.ndarray) -> bool:
    """Whether so few documents are allowed that they are all ranked (:meth:`Index._among`)."""
    return int(np.count_nonzero(allowed)) <= LABELS_RANKED_IN_FULL


_NO_WORDS = "has no words in the index vocabulary (only stop words, or words it does not know): nothing to search for"


def _check_model_shapes(arrays: dict, n_words: int, widths: tuple[int, int], path) -> None:
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


# A rowid table (:meth:`Index._local_positions`) while rowids span at most this many
# per document, and this many more: 4 bytes each, a few MB at a million documents.
_TABLE_SPAN_PER_DOCUMENT = 16
_TABLE_SPAN_MIN = 65536


def _check_prune(n_removed: int, n_documents: int, limit: float | None) -> None:
    """Refuse to remove more than ``limit`` of an index's documents (raised inside
    the writer's transaction: the index is left as it was)."""
    if limit is not None and n_removed > limit * n_documents:
        raise BuildError(
            f"--prune would remove {n_removed:,} of the index's {n_documents:,} documents, more than {limit:.0%}: "
            "pass --yes to remove them; the index is unchanged"
        )


def _check_k(k: int) -> None:
    if k < 1:
        raise QueryError(f"the number of results must be at least 1, got {k}")


def _plain(value):
    """Lists and tuples compare equal (JSON turns tuples into lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _base2(hex_digits: str, n_bits: int) -> str:
    return format(int(hex_digits, 16), f"0{n_bits}b") if n_bits else ""
