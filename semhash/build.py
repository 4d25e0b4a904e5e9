"""Building a new index: read the corpus once, choose the vocabulary, train the
model (on a sample of a large corpus), encode every document, write the file.

The neighbour lists are computed afterwards, from the written index
(:mod:`semhash.graph`); :func:`semhash.api.build_index` holds the writer lock
around both.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from semhash import cluster, codes, neighbours, reading, rerank, termcodes
from semhash.corpus import Document, ReadStats, first_line
from semhash.errors import BuildError
from semhash.results import BuildSummary
from semhash.store import StoreError, StoredIndex
from semhash.version import __version__
from semhash.vocab import counts_json
from semhash.writer import DocumentRow, write_index

MIN_DOCUMENTS = 10
TEXT_READ = "content"  # meta["text"]: documents are read through semhash.tokenize.content
MAX_CODE_BITS = 4096  # widest long code; the paper's widest is 128
MAX_LAYER = 100_000  # widest hidden layer
MAX_VOCAB = 1_000_000
#: Peak resident memory of a build: a fixed part (interpreter, libraries, the shipped
#: 2,000-document sample) plus so many bytes per model weight, each held by the trunk's
#: RBM and, with its gradient and Adam's two moments, by both heads' encoder and
#: decoder. Fitted (least squares, within 5%) to the peaks /usr/bin/time -v gave on
#: the sample, 1 + 1 epochs, one run each: --hidden 500,250,125 (1.19 M weights)
#: 0.42 GB, 4000,1000,500 (12.6 M) 1.46 GB, 8000,2000,500 (33.1 M) 3.13 GB.
BYTES_PER_PARAMETER = 85
FIXED_BYTES = 320_000_000
#: Rows of the bag of words encoded at once (bounded memory), and chunks a cluster's
#: worker encodes in one task (a task costs the cluster tens of milliseconds; a
#: chunk takes a worker 0.1 s).
ENCODE_CHUNK, CHUNKS_PER_TASK = 4096, 4
#: Documents a cluster's worker tokenizes and counts in one task.
DOCS_PER_TASK = 2000


def check_build_options(
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
    check_memory(vocab_size, (address_bits, code_bits), hidden_sizes)


def model_parameters(vocab_size: int, code_widths: Sequence[int], hidden_sizes: Sequence[int]) -> int:
    """Weights of the trunk (vocabulary -> hidden layers) and of the code heads on its top."""
    sizes = [vocab_size, *hidden_sizes]
    return sum(a * b for a, b in zip(sizes, sizes[1:])) + sizes[-1] * sum(code_widths)


def check_memory(vocab_size: int, code_widths: Sequence[int], hidden_sizes: Sequence[int]) -> None:
    """Raise :class:`BuildError` when training such a model would need more memory than
    is available, before anything is read: a --hidden of 100,000 ended in a
    MemoryError traceback minutes into the work. The estimate leaves out the corpus,
    which is not read yet, so it errs low: only a model that cannot fit is refused."""
    n = model_parameters(vocab_size, code_widths, hidden_sizes)
    needed = FIXED_BYTES + BYTES_PER_PARAMETER * n
    available = available_memory()
    if available is not None and needed > available:
        raise BuildError(
            f"a model of {n:,} weights (--vocab-size, --hidden, code bits) needs about {needed / 1e9:,.1f} GB of memory "
            f"to train, and {available / 1e9:,.1f} GB is available: choose smaller layers; nothing was read or written"
        )


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (``MemAvailable``), else
    its free pages; None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def out_of_memory(database, first: bool, written: bool) -> BuildError:
    """The error of a build that ran out of memory anyway (the estimate leaves out the
    corpus). A first build's index, written before its neighbour lists, goes too, so
    nothing is left; a rebuild's stays, as it was committed."""
    if written and not first:
        return BuildError(
            f"out of memory while listing the neighbours of {database}: the rebuilt index was written without "
            "them; the next `semhash index` update lists them"
        )
    if written:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{os.fspath(database)}{suffix}").unlink(missing_ok=True)
    return BuildError(
        f"out of memory while building {database}: nothing was written; smaller layers (--hidden, --vocab-size) "
        "or a smaller --train-sample need less"
    )


def build(
    paths, database, *, files, vocab_size, address_bits, code_bits, hidden_sizes,
    n_epochs_pretrain, n_epochs_finetune, random_state, stem, train_sample, verbose, stdin, max_bytes, skip_bad_lines,
    compact=False, workers=None, scheduler=None,
) -> BuildSummary:
    """:func:`semhash.api.build_index`, its options checked and the writer lock held
    (the summary's ``seconds`` is left for it: it times the whole run). With
    ``workers`` or ``scheduler``, the counting and the encoding run on a Dask
    cluster (:mod:`semhash.cluster`)."""
    previous = _previous_index(database)
    read = _Pass(stem, previous)
    found = lambda: reading.read_documents(paths, files, read.stats, stdin, max_bytes, skip_bad_lines, database)  # noqa: E731
    with cluster.connect(workers, scheduler) as client:
        terms, full, words, df, X = _count(read, found, vocab_size, verbose, paths, client)
        n_trained = X.shape[0] if train_sample is None else min(train_sample, X.shape[0])
        hasher = _train(
            X, full, n_trained, (address_bits, code_bits), hidden_sizes, n_epochs_pretrain, n_epochs_finetune,
            random_state, verbose,
        )
        addresses, long_codes = _encode_all(hasher, X, verbose, client)

    terms, idf, rows = _document_rows(read, X, full, words, terms, compact)
    word_tables = termcodes.word_tables(X, addresses, long_codes, (address_bits, code_bits))
    options = {
        "vocab_size": vocab_size, "address_bits": address_bits, "code_bits": code_bits,
        "hidden_sizes": list(hidden_sizes), "n_epochs_pretrain": n_epochs_pretrain,
        "n_epochs_finetune": n_epochs_finetune, "random_state": random_state, "stem": stem,
    }
    write_index(
        database,
        meta={**_meta(hasher, read, options, len(words), len(terms), n_trained), "compact": compact},
        words=words,
        df=df,
        arrays={**_encoders(hasher.get_arrays()), **word_tables},
        documents=reading.progress(rows, verbose, "writing", total=len(read.docs), unit="doc"),
        addresses=addresses,
        codes=long_codes,
        terms=terms,
        idf=idf,
        compact=compact,
    )
    return BuildSummary(
        n_documents=len(read.docs),
        n_binary=read.stats.n_binary,
        n_unreadable=read.stats.n_unreadable,
        n_truncated=read.stats.n_truncated,
        n_duplicates=read.stats.n_duplicates,
        first_duplicate=read.stats.first_duplicate,
        n_folders=read.stats.n_folders,
        vocabulary_size=len(words),
        seconds=0.0,
        bimodality=hasher.bimodality_,
        oov_share=read.corpus.oov_share,
        drift=read.drift.oov_share,
        previous_oov_share=None if previous is None else previous[2],
        bad_lines=read.stats.bad_lines,
        n_trained=n_trained,
        n_numbered=read.stats.n_numbered,
    )


def _document_rows(read, X, full, words: list[str], terms: list[str], compact: bool):
    """(terms, their idf, the documents' rows) that the index stores: a compact one
    keeps no terms, and each document's number of vocabulary words only."""
    n_words = np.asarray(X.sum(axis=1)).ravel().tolist()
    if compact:
        rows = (DocumentRow(d, p, labels, digest, "{}", title, None, n) for (d, p, labels, digest, title), n in zip(read.docs, n_words))
        return [], None, rows
    idf = rerank.fit_idf(full)
    counts = (c for start in range(0, X.shape[0], _ROWS_AT_ONCE) for c in counts_json(X[start : start + _ROWS_AT_ONCE], words))
    rows = (
        DocumentRow(doc_id, path, labels, digest, c, title, rerank.to_blob(vector), n)
        for (doc_id, path, labels, digest, title), vector, c, n in zip(read.docs, rerank.csr_vectors(full, idf), counts, n_words)
    )
    return terms, idf, rows


# Documents whose counts are written out together: their JSON and the sort behind
# it take ~9 KB a document while held (65,536 at a time: a million-document build
# peaked at 2.92 GiB, 2.57 at 4,096; /usr/bin/time -v, one run each).
_ROWS_AT_ONCE = 4096


class _Pass:
    """One streamed pass over the corpus: documents are read, tokenized once and
    vectorized together; only their metadata is kept, never the corpus text. It
    counts the corpus's words the vocabulary knows and, against the ``previous``
    index's vocabulary, the new and changed documents' (the drift)."""

    def __init__(self, stem: bool, previous) -> None:
        self.stats = ReadStats()
        self.docs: list[tuple[str, str | None, tuple[str, ...], str, str]] = []
        self.corpus, self.drift = reading.Coverage(stem=stem), reading.Coverage(stem=stem)
        self.previous = previous

    @property
    def vocabulary(self) -> set[str] | None:
        """The previous index's vocabulary, if there is one (the drift is counted against it)."""
        return None if self.previous is None else self.previous[0]

    def texts(self, found: Callable[[], Iterable[Document]], verbose: bool) -> Iterator[tuple[str, bool]]:
        """Each document's text, and whether it is new or changed since the previous index."""
        for doc in reading.progress(found(), verbose, "reading", unit="doc"):
            self.docs.append((doc.id, doc.path, doc.labels, doc.content_hash, first_line(doc.text)))
            yield doc.text, self.previous is not None and not _same_hash(doc.content_hash, self.previous[1].get(doc.id))

    def content_words(self, found: Callable[[], Iterable[Document]], verbose: bool) -> Iterator[list[str]]:
        for text, changed in self.texts(found, verbose):
            yield _words(text, changed, self.corpus, self.drift, self.vocabulary)

    def add(self, corpus: reading.Coverage, drift: reading.Coverage) -> None:
        """Count in a batch's words, as :func:`_count_batch` counted them."""
        self.corpus.n_words += corpus.n_words
        self.corpus.n_messages += corpus.n_messages
        self.drift.n_words += drift.n_words
        self.drift.n_known += drift.n_known


def _words(text: str, changed: bool, corpus: reading.Coverage, drift: reading.Coverage, vocabulary) -> list[str]:
    """A document's content words, counted in ``corpus``, and in ``drift`` against
    the previous ``vocabulary`` if the document is new or ``changed``."""
    words = corpus.words(text)
    corpus.n_words += len(words)
    if changed:
        drift.add(words, vocabulary)
    return words


def _count_batch(batch: list[tuple[str, bool]], stem: bool, vocabulary) -> tuple:
    """A cluster worker's task: :func:`~semhash.vocab.count_terms` of a batch of
    :meth:`_Pass.texts`, their words counted as :meth:`_Pass.content_words` counts
    them; returns (terms, counts, corpus coverage, drift coverage)."""
    import scipy.sparse as sp

    from semhash.vocab import count_terms

    corpus, drift = reading.Coverage(stem=stem), reading.Coverage(stem=stem)
    token_lists = [_words(text, changed, corpus, drift, vocabulary) for text, changed in batch]
    try:
        terms, counts = count_terms(token_lists)
    except ValueError as e:
        if "empty vocabulary" not in str(e):
            raise
        terms, counts = [], sp.csr_matrix((len(batch), 0), dtype=np.float32)
    return terms, counts, corpus, drift


def _count_on(client, read: _Pass, found, verbose: bool):
    """:func:`~semhash.vocab.count_terms` of the documents, counted by the cluster's
    workers in batches of :data:`DOCS_PER_TASK` and merged."""
    from semhash.vocab import merge_terms

    def parts():
        tasks = cluster.batches(read.texts(found, verbose), DOCS_PER_TASK)
        for terms, counts, corpus, drift in cluster.mapped(client, _count_batch, tasks, read.corpus.stem, read.vocabulary):
            read.add(corpus, drift)
            yield terms, counts

    return merge_terms(parts())


def _same_hash(content_hash: str, stored) -> bool:
    """Whether a stored hash (the first digits of one in a compact index; anything in
    a damaged one) is that of the text hashed ``content_hash``."""
    return isinstance(stored, str) and bool(stored) and content_hash.startswith(stored)


def _count(read: _Pass, found, vocab_size: int, verbose: bool, paths, client=None):
    """(terms, term counts, vocabulary, its document frequencies, vocabulary counts)
    of the documents ``found()`` gives, read in one pass (counted on the ``client``'s
    cluster if there is one); :class:`BuildError` when too few have a word to index."""
    from semhash.vocab import count_terms, top_words

    try:
        if client is None:
            terms, full = count_terms(read.content_words(found, verbose))
        else:
            terms, full = _count_on(client, read, found, verbose)
    except ValueError as e:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        if "empty vocabulary" not in str(e):
            raise
        words, X = [], None
    else:
        words, df, X = top_words(terms, full, vocab_size)
    n_usable = 0 if X is None else int((np.diff(X.indptr) > 0).sum())
    if not read.docs:
        raise BuildError(
            f"no text documents in {', '.join(paths) or 'the files listed'} ({read.stats.n_binary} binary and "
            f"{read.stats.n_unreadable} unreadable files skipped): at least {MIN_DOCUMENTS} are needed to train a model"
        )
    if n_usable < MIN_DOCUMENTS:
        raise BuildError(
            f"found {len(read.docs)} documents, {n_usable} with indexable words "
            "(not only stop words, numbers or punctuation): "
            f"at least {MIN_DOCUMENTS} are needed to train a model"
        )
    read.corpus.n_known = int(X.sum())
    return terms, full, words, df, X


def _train(X, full, n_trained, widths, hidden_sizes, n_epochs_pretrain, n_epochs_finetune, random_state, verbose):
    """The model, trained on ``n_trained`` rows of ``X`` (all, or a seeded sample)."""
    from semhash.hasher import SemanticHasher

    hasher = SemanticHasher(
        widths,
        hidden_sizes=tuple(hidden_sizes),
        n_epochs_pretrain=n_epochs_pretrain,
        n_epochs_finetune=n_epochs_finetune,
        random_state=random_state,
        verbose=verbose,
    )
    sample = slice(None) if n_trained == X.shape[0] else _sample_rows(X, n_trained, random_state)
    return _fit_taught(hasher, X[sample], full[sample], verbose)


def _fit_taught(hasher, X, full, verbose: bool):
    """``hasher`` fitted on the counts ``X``, its codes taught by each document's
    neighbours by every term of ``full`` (:mod:`semhash.neighbours`).

    Fine-tuning alone reads the neighbours, so a thread finds them while the trunk
    pretrains (scipy's sparse product and numpy's sorts release the GIL); the fit
    waits for them when it needs them (``SemanticHasher.fit``), and its result is
    the one it gives with them found first.
    """
    failed = threading.Event()
    # The bar is drawn here, before the fit's: one drawn by the thread beside it
    # could take the training bar's line and leave bits of it behind.
    with reading.bar(verbose, desc="comparing documents", unit="block") as bar, ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="semhash-neighbours"
    ) as teacher:
        blocks = lambda starts: itertools.takewhile(lambda _: not failed.is_set(), bar.counting(starts))  # noqa: E731
        found = teacher.submit(neighbours.by_words, full, progress=blocks)
        try:
            return hasher.fit(X, neighbours=found)
        except BaseException:
            failed.set()  # a failed fit (Ctrl-C, out of memory) does not wait for the rest
            raise


def _encoders(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights an index keeps: the encoders. Queries, updates and ``info`` read
    nothing else, and the decoders were half of them: a StackOverflow index (18,000
    titles) held 18.9 MB of weights beside 9.4 MB of documents."""
    return {name: a for name, a in arrays.items() if ".encoder" in name}


def _meta(hasher, read: _Pass, options: dict, n_words: int, n_terms: int, n_trained: int) -> dict:
    """The index's metadata: the model's options and widths, what it was built from."""
    return {
        "semhash_version": __version__,
        "created": reading.now(),
        "address_bits": options["address_bits"],
        "code_bits": options["code_bits"],
        "vocab_size": n_words,
        "n_terms": n_terms,
        "hidden_sizes": options["hidden_sizes"],
        "n_documents": len(read.docs),
        "n_trained": n_trained,
        "text": TEXT_READ,
        "stem": options["stem"],
        "messages": [read.corpus.n_messages, len(read.docs)],  # read as Subject + body, of the documents built from
        "params": {k: v for k, v in hasher.get_params().items() if k != "verbose"},
        "build_options": options,
        "oov_share": read.corpus.oov_share,
        "bimodality": hasher.bimodality_,
        "finetune_loss": hasher.finetune_loss_,
    }


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


def _encode_all(hasher, X, verbose: bool, client=None) -> tuple[np.ndarray, np.ndarray]:
    """Addresses and packed long codes of every row of ``X``, in chunks of
    :data:`ENCODE_CHUNK` rows (bounded memory), encoded here or by the ``client``'s
    cluster, to which the model is sent once."""
    size = ENCODE_CHUNK * CHUNKS_PER_TASK
    starts = range(0, X.shape[0], size)
    blocks = (X[start : start + size] for start in starts)
    encoded = cluster.mapped(client, _encode_block, blocks, hasher)
    addresses, long_codes = zip(*reading.progress(encoded, verbose, "encoding", total=len(starts), unit="block"))
    return np.concatenate(addresses), np.concatenate(long_codes)


def _encode_block(rows, hasher) -> tuple[np.ndarray, np.ndarray]:
    """Addresses and packed long codes of ``rows`` of the bag of words, encoded
    :data:`ENCODE_CHUNK` rows at a time (a cluster worker's task, or this process's)."""
    addresses, long_codes = [], []
    for start in range(0, rows.shape[0], ENCODE_CHUNK):
        address_bits, code_bits = hasher.encode(rows[start : start + ENCODE_CHUNK])
        addresses.append(codes.to_addresses(address_bits))
        long_codes.append(codes.pack_codes(code_bits))
    return np.concatenate(addresses), np.concatenate(long_codes)
