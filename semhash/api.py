"""The library's front: build an index from documents, update it, open it, query it.

This is the only module that knows the whole pipeline
(files -> tokens -> bag of words -> model -> codes -> store -> search); the CLI is
a thin layer over it. :class:`Index` delegates each step to a module of its own:
building (:mod:`semhash.build`), updating (:mod:`semhash.update`), query planning
(:mod:`semhash.plan`, :mod:`semhash.shortlists`, :mod:`semhash.filters`), the
neighbour lists (:mod:`semhash.graph`) and ``info`` (:mod:`semhash.describe`).

Examples
--------
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
:mod:`semhash.writer` for what holds when one is killed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

import numpy as np

from semhash import build, cluster, describe, encoding, filters, graph, locks, plan, reading, results, search, store, update, writer
from semhash.corpus import DEFAULT_MAX_BYTES, CorpusError, ReadStats
from semhash.errors import ERRORS, BuildError, DocumentNotFound, EmptyQuery, ModelMismatch, QueryError
from semhash.results import BuildSummary, EncodedDocument, Hit, UpdateSummary
from semhash.store import IndexLocked, StoreError, StoredIndex

__all__ = [
    "Index", "build_index", "index_documents", "Hit", "EncodedDocument", "BuildSummary", "UpdateSummary",
    "ERRORS", "BuildError", "QueryError", "EmptyQuery", "DocumentNotFound", "ModelMismatch",
    "StoreError", "IndexLocked", "CorpusError", "DEFAULT_TRAIN_SAMPLE", "STEM", "PRUNE_LIMIT",
]

#: Documents the model trains on at most by default; the others are only encoded.
#: Training time grows with the documents (20NG's 11,314 posts: about 3 minutes of
#: a 3.5-minute index on 2 cores), so without a cap a corpus of 100,000 would train
#: for half an hour. Sampling costs some precision: 20NG trained on 5,000 of its
#: posts scores 0.5960 against 0.6166 (precision@100, default path), in an index
#: built in 112 s (BENCHMARKS.md). 20,000 leaves 20NG and smaller corpora whole.
DEFAULT_TRAIN_SAMPLE = 20_000
#: Whether a new index counts Snowball stems instead of words (meta["stem"]; an index
#: without the key was built before and counts words). Stems won on every corpus:
#: 20NG P@100 0.647 -> 0.656 (codes alone 0.531 -> 0.554), Subject lines' codes
#: P@10 0.334 -> 0.414, StackOverflow and Biomedical codes +0.012 / +0.011.
STEM = True
#: The largest share of an index's documents ``prune`` removes unasked: one JSON line
#: fed to `semhash index - --prune` removed the 11,314 others without a word.
PRUNE_LIMIT = 0.5


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
    compact: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
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
    compact : keep only what a search by codes needs, not the words (counts, TF-IDF
        vectors, neighbours, postings); the same model, queries ranked by codes alone
    workers, scheduler : tokenize, count and encode the documents on a Dask cluster (a
        LocalCluster of so many processes, or the one at that address): the same index

    Returns
    -------
    BuildSummary

    Raises
    ------
    BuildError, CorpusError, StoreError (``database`` holds something that is not a
    semhash index, which is never overwritten), IndexLocked
    """
    build.check_build_options(
        vocab_size, address_bits, code_bits, hidden_sizes, n_epochs_pretrain, n_epochs_finetune, random_state,
        train_sample,
    )
    cluster.check(workers, scheduler)  # before the lock and the reading: one line, what to install
    return _build_and_link(
        paths, database, wait=wait, files=files, vocab_size=vocab_size, address_bits=address_bits,
        code_bits=code_bits, hidden_sizes=hidden_sizes, n_epochs_pretrain=n_epochs_pretrain,
        n_epochs_finetune=n_epochs_finetune, random_state=random_state, stem=stem, train_sample=train_sample,
        verbose=verbose, stdin=stdin, max_bytes=max_bytes, skip_bad_lines=skip_bad_lines, compact=compact,
        workers=workers, scheduler=scheduler,
    )


def _build_and_link(paths, database, *, wait, verbose, **options) -> BuildSummary:
    """:func:`semhash.build.build` under the writer lock, then the neighbour lists;
    running out of memory in either is a :class:`BuildError` (a traceback minutes
    into the work)."""
    start = time.perf_counter()
    with locks.writer_lock(database, wait=wait):
        # Refuse a foreign file, or one this user may not write, before minutes of training.
        if writer.kind_of(database) != "missing" and not os.access(database, os.W_OK):
            raise store.StoreError(f"cannot write to {database} (permission denied): the index is unchanged")
        first, summary = writer.is_missing(database), None
        try:
            summary = build.build(paths, database, verbose=verbose, **options)
            # Once the build's count matrices are freed: the graph holds every vector.
            with Index.open(database) as index:
                graph.fill_neighbours(index, verbose)
        except MemoryError:
            raise build.out_of_memory(database, first, written=summary is not None) from None
    summary.seconds = time.perf_counter() - start
    return summary


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
    compact: bool | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
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
    compact
        As for :func:`build_index`; None: as the index is (a new one is full). An
        update that asks for the other kind raises ``StoreError`` (a compact index
        has no words to make a full one of, and a full one is made compact by
        ``retrain``), changing nothing.
    workers, scheduler
        As for :func:`build_index` when building; an update encodes its new and
        changed documents in this process.
    **options
        Model options of :func:`build_index`. When updating, options that differ
        from those the index was built with raise :class:`ModelMismatch`.
    """
    cluster.check(workers, scheduler)
    reading = {"files": files, "verbose": verbose, "stdin": stdin, "max_bytes": max_bytes, "skip_bad_lines": skip_bad_lines}
    with locks.writer_lock(database, wait=wait):
        if retrain or writer.is_missing(database):
            if compact is None:  # a rebuild keeps the kind of index it replaces
                compact = update.is_compact(database)
            return build_index(
                paths, database, train_sample=train_sample, compact=compact, workers=workers, scheduler=scheduler,
                **reading, **options,
            )
        index = Index.open(database)
        try:
            update.check_kind(index, compact)
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
        self.whole_text = self.meta.get("text") != build.TEXT_READ
        self.words = {w: i for i, w in enumerate(self.vocabulary)}
        self.stem = bool(self.meta.get("stem"))  # its words are stems; queries are stemmed too
        # Terms rank the shortlist (semhash.rerank); 0 for an index built before.
        self.n_terms = self.stored.n_terms()
        self._terms: tuple[list[str], np.ndarray] | None = None  # loaded by the first batch
        self._typical_length: float | None = None  # read by the first short query
        # Neighbour lists smooth the ranking (semhash.rerank); 0 before they are computed.
        self.n_neighbours = int(self.meta.get("n_neighbours") or 0)
        self.address_encoder, self.code_encoder, self.word_tables = encoding.load_encoders(self.stored, len(self.vocabulary))
        self.vocabulary_terms = None  # the vocabulary's term ids, looked up by semhash.termcodes
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
    def encode(self, texts: Sequence[str], lift: bool = False, query: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(addresses int64 (n,), codes uint64 (n, words), n_known_words int (n,)) of texts;
        with ``lift``, short ones lifted towards a typical document's length
        (:func:`semhash.encoding.lift_counts`); with ``query``, mixed with their terms'
        codes as queries are (:mod:`semhash.termcodes`)."""
        return encoding.encode_texts(self, texts, lift, query)

    def typical_length(self) -> float:
        """Median number of vocabulary words in the indexed documents."""
        if self._typical_length is None:
            self._typical_length = self.stored.typical_length()
        return self._typical_length

    def encode_documents(
        self, paths: Sequence[str], *, binary: bool = False, stdin: TextIO | None = None,
        skip_bad_lines: bool = False, stats: ReadStats | None = None,
    ) -> Iterator[EncodedDocument]:
        """Codes of the documents under ``paths`` (as :func:`build_index` reads them),
        as hex strings (most significant digit first) or, with ``binary``, the same
        numbers in base 2. Streams, ``encoding.ENCODE_BATCH`` documents at a time; ``stats``
        (optional) counts what was skipped."""
        return encoding.documents(self, paths, binary, stdin, skip_bad_lines, stats)

    # -- updating ------------------------------------------------------------------
    def check_options(self, **options) -> None:
        """Raise :class:`ModelMismatch` if ``options`` (those of :func:`build_index`)
        differ from the ones this index's model was built with."""
        update.check_options(self, **options)

    def add(
        self, paths: Sequence[str] = (), *, files: Iterable[str] | None = None, prune: bool = False,
        prune_limit: float | None = PRUNE_LIMIT, verbose: bool = False, stdin: TextIO | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES, skip_bad_lines: bool = False, wait: bool = False,
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
            the roots of this run (:func:`semhash.update.under_roots` says which).
        prune_limit : float or None
            The largest share of the index's documents ``prune`` may remove; past
            it, :class:`BuildError` says how many, and nothing is changed. None: no limit.
        max_bytes, skip_bad_lines, wait : as for :func:`build_index`

        Returns
        -------
        UpdateSummary
        """
        with locks.writer_lock(self.stored.path, wait=wait):
            if self.stored.changed():  # another writer committed since it was opened
                self._reopen()
            return update.add(self, paths, files, prune, prune_limit, verbose, stdin, max_bytes, skip_bad_lines)

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
        self, text: str, k: int = 10, *, min_distance: int | None = None, max_distance: int | None = None,
        codes_only: bool = False, labels: Sequence[str] | str | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for ``text``: a Hamming ball around its address
        gives a shortlist, ranked by words and codes together (:mod:`semhash.rerank`),
        or with ``codes_only`` (or a compact index, or one built before terms) by the
        codes alone (the ball's nearest long codes, then the bits the nearest of them
        share: :func:`semhash.shortlists.by_shared_bits`).

        ``min_distance``/``max_distance`` keep only hits at those code distances
        (inclusive), in the same order; the search widens until ``k`` such hits are
        found or none are left. ``labels`` keeps only hits carrying at least one of
        them (:class:`QueryError` for a label no document carries): the allowed hits
        of a ranking whose shortlist holds every allowed document when they are at
        most :data:`semhash.filters.LABELS_RANKED_IN_FULL`, else of the default ranking grown until
        ``k`` are found.
        """
        return self.query_many(
            [text], k, min_distance=min_distance, max_distance=max_distance, codes_only=codes_only, labels=labels
        )[0]

    def query_many(
        self, texts: Sequence[str], k: int = 10, skip_empty: bool = False, *, min_distance: int | None = None,
        max_distance: int | None = None, documents: bool = False, codes_only: bool = False,
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
        plan.check_k(k)
        with self._current():
            allowed = filters.allowed(self, labels)
            return results.hits(self, 
                plan.found_many(self, texts, k, skip_empty, min_distance, max_distance, not documents, codes_only, allowed)
            )

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
        plan.check_k(k)
        with self._current():
            return results.hits(self, [plan.similar(self, doc_id, k, min_distance, max_distance, labels)])[0]

    def similar_to_text(
        self, text: str, k: int = 10, *, min_distance: int | None = None, max_distance: int | None = None,
        labels: Sequence[str] | str | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest neighbours of a document given as text; indexed
        documents with the very same content (itself, if indexed) are excluded;
        ``labels`` as in :meth:`query`."""
        plan.check_k(k)
        with self._current():
            return results.hits(self, [plan.similar_to_text(self, text, k, min_distance, max_distance, labels)])[0]

    def similar_to_file(self, path: str | os.PathLike, k: int = 10, **filters) -> list[Hit]:
        """:meth:`similar_to_text` for a file, read as indexing reads it."""
        return self.similar_to_text(reading.text_of(path), k, **filters)

    #: Minimum size of the address-ball shortlist ranked by the long code. Measured on
    #: 20NG (bench/quality.py, precision@100): 100 -> 0.370, 200 -> 0.384,
    #: 500 -> 0.387, 1000 -> 0.386; ranking 500 codes costs microseconds.
    shortlist = 500

    # -- introspection -------------------------------------------------------------
    def info(self) -> dict:
        """What is in the index, as a JSON-ready dict (``semhash info --json``); its
        keys are those of :func:`semhash.describe.info`."""
        with self._current():
            return describe.info(self)

    def close(self) -> None:
        self.stored.close()
