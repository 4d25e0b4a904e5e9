"""Updating an index with its stored model: documents added, changed ones
re-encoded, unchanged ones skipped, missing ones pruned (within a limit), all in
one transaction; then the new documents' neighbour lists."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

import numpy as np

from semhash import encoding, graph, reading, rerank, shortlists
from semhash.corpus import Document, ReadStats, first_line
from semhash.errors import BuildError, ModelMismatch
from semhash.results import UpdateSummary
from semhash.store import StoredIndex, StoreError
from semhash.writer import DocumentRow, IndexWriter, labels_json
from semhash.vocab import count_words, counts_json

UPDATE_WRITTEN = "the update itself was written, without its documents' neighbour lists"


def check_options(index, **options) -> None:
    """Raise :class:`ModelMismatch` if ``options`` (those of :func:`build_index`)
    differ from the ones this index's model was built with."""
    # An index built before the option counts words: --stem must not update it.
    built = {"stem": index.stem, **index.meta.get("build_options", {})}
    differ = [
        f"{k}={plain(v)!r} (the index has {plain(built[k])!r})"
        for k, v in options.items()
        if k in built and plain(v) != plain(built[k])
    ]
    if differ:
        raise ModelMismatch(
            f"{index.stored.path} was built with other model options: {', '.join(differ)}; "
            "retrain to change the model (semhash index --retrain)"
        )


def is_compact(database) -> bool:
    """Whether ``database`` holds a compact index (False for anything else)."""
    try:
        stored = StoredIndex(database)
    except StoreError:
        return False
    try:
        return stored.compact
    finally:
        stored.close()


def check_kind(index, compact: bool | None) -> None:
    """Raise ``StoreError`` if an update asks for the other kind of index than
    ``index`` is (``compact`` None: either)."""
    if compact is None or compact == index.stored.compact:
        return
    if not compact:
        index.stored.need_words("a full index (--no-compact)")
    raise StoreError(
        f"{index.stored.path} is a full index: make it compact by rebuilding it with "
        "`semhash index --retrain --compact PATHS`; the index is unchanged"
    )


def add(index, paths, files, prune, prune_limit, verbose, stdin, max_bytes, skip_bad_lines) -> UpdateSummary:
    start = time.perf_counter()
    stats = ReadStats()
    stored = index.stored.fingerprints()
    seen: set[str] = set()
    n_added = n_updated = n_unchanged = 0
    coverage = reading.Coverage(index.whole_text, index.stem)
    batch: list[Document] = []

    with IndexWriter(index.stored.path) as writer:

        def flush() -> None:
            if not batch:
                return
            texts = [d.text for d in batch]
            counts = count_words(texts, index.words, whole_text=index.whole_text, stem=index.stem)
            addresses, long_codes = encoding.encode_counts(index, counts)
            # (a compact index keeps no counts nor TF-IDF vectors: only their number of words)
            vectors = None if index.stored.compact else shortlists.term_vectors(index, [coverage.words(t) for t in texts])
            stored_counts = ["{}"] * len(batch) if vectors is None else counts_json(counts, index.vocabulary)
            rows = [
                DocumentRow(
                    d.id, d.path, d.labels, d.content_hash, stored_counts[i],
                    first_line(d.text), None if vectors is None else rerank.to_blob(rerank.row(vectors, i)), int(c.sum()),
                )
                for i, (d, c) in enumerate(zip(batch, counts))
            ]
            writer.upsert(rows, addresses, long_codes)
            batch.clear()

        found = reading.read_documents(paths, files, stats, stdin, max_bytes, skip_bad_lines, index.stored.path)
        for doc in reading.progress(found, verbose, "reading and encoding", unit="doc"):
            seen.add(doc.id)
            old = stored.get(doc.id)
            # Same text, new labels (a JSON line relabelled): stored anew, else the old
            # labels stayed for good. (A path is not compared: "./posts" and "posts" differ.)
            if old is not None and old[0] == index.stored.stored_hash(doc.content_hash) and old[2] == labels_json(doc.labels):
                n_unchanged += 1
                continue
            n_added += old is None
            n_updated += old is not None
            coverage.add(coverage.words(doc.text), index.words)
            batch.append(doc)
            if len(batch) >= encoding.ENCODE_BATCH:
                flush()
        flush()
        missing = [i for i, (_, path, _) in stored.items() if i not in seen and under_roots(i, path, paths, files)]
        if prune:
            check_prune(len(missing), len(stored), prune_limit)
            writer.delete(missing)
        n_documents = len(stored) + n_added - (len(missing) if prune else 0)
        writer.set_meta({"n_documents": n_documents, "updated": reading.now()})
    try:
        index._reopen()
        graph.fill_neighbours(index, verbose)
    except StoreError as e:
        # Damage found once the documents are committed, in rows only these steps
        # read (every document's vector, the new ones' postings) or in the codes
        # reloaded (a damaged file's pages that the update wrote into, unread
        # before): not the "unchanged" every other failure means.
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
        n_duplicates=stats.n_duplicates,
        first_duplicate=stats.first_duplicate,
        n_folders=stats.n_folders,
        seconds=time.perf_counter() - start,
        drift=coverage.oov_share,
        oov_share=index.meta.get("oov_share"),
        bad_lines=stats.bad_lines,
        n_numbered=stats.n_numbered,
    )


def _under(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def under_roots(doc_id: str, path: str | None, paths: Sequence[str], files: Iterable[str] | None) -> bool:
    """Whether a stored document belongs to one of this run's inputs: a directory or
    file given, stdin (``-``) for documents without a path, or, for a ``files``
    list, the documents whose id is their path from the current directory (those
    of earlier lists), never those indexed through a directory."""
    if path is None:
        return "-" in paths
    if files is not None and doc_id == os.path.normpath(path).replace(os.sep, "/") and _under(path, os.curdir):
        return True
    return any(p != "-" and _under(path, p) for p in paths)


def check_prune(n_removed: int, n_documents: int, limit: float | None) -> None:
    """Refuse to remove more than ``limit`` of an index's documents (raised inside
    the writer's transaction: the index is left as it was)."""
    if limit is not None and n_removed > limit * n_documents:
        raise BuildError(
            f"--prune would remove {n_removed:,} of the index's {n_documents:,} documents, more than {limit:.0%}: "
            "pass --yes to remove them; the index is unchanged"
        )


def plain(value):
    """Lists and tuples compare equal (JSON turns tuples into lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value
