"""The neighbour graph: each document's nearest documents, found once when it is
indexed and stored beside it, which smooth the ranking (:mod:`semhash.rerank`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from semhash import reading, rerank, search, shortlists
from semhash.writer import IndexWriter

#: Documents whose neighbours are found at once (bounded memory).
BATCH = 4096


def fill_neighbours(index, verbose: bool = False) -> None:
    """Compute the neighbour lists the index lacks (every one after a build, the
    new and changed documents' after an update) and store them in one transaction.

    A document's neighbours are the best ``rerank.NEIGHBOURS`` of its own ball of
    ``rerank.NEIGHBOUR_SHORTLIST`` documents and the documents holding its rarest
    terms (as a query's shortlist), itself excluded, ranked as a query of its
    stored vector is ranked by the first pass (no feedback, no neighbours).
    The caller holds the writer lock.

    The batches go through two stages: this thread shortlists a batch (reading
    postings from the index, whose connection is this thread's) while another
    ranks the batch before it. Both stages hold the GIL only in their Python
    parts, and their kernels already run on every core, so the overlap fills the
    cores when one stage's Python runs: on 20NG's 3 batches, 3.99 s (median of
    3) against 4.61 s one batch after another, alternated, with another process
    keeping the machine busy (load 2.8-3.0).
    """
    if not index.n_terms or index.stored.meta.get("schema_version", 0) < 4:
        return
    missing = np.searchsorted(index.rowids, index.stored.without_neighbours())
    if missing.size == 0:
        return
    # By address, so that a batch's documents share their balls (kernels.search_batch).
    missing = missing[np.argsort(index.table.addresses[missing], kind="stable")]
    n_bytes, blobs = index.stored.all_term_blobs()
    documents = shortlists.stored_vectors(index, blobs, n_bytes)  # in rowid order: row i is position i
    del blobs  # read once: at a million documents 1.3 GB held through the whole graph
    # Prepared once for every batch below (each batch's own preparation was 10%
    # of a million-document index's build).
    prepared = rerank.KernelDocuments(documents, index.n_terms)
    width = min(rerank.NEIGHBOUR_SHORTLIST, len(index))
    starts = reading.progress(range(0, missing.size, BATCH), verbose, "finding neighbours", unit="batch")
    shortlisted = (_shortlists(index, documents, missing[start : start + BATCH], width) for start in starts)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="semhash-rank") as ranker:
        ranked = pipelined(ranker, lambda batch: _ranked(index, prepared, width, *batch), shortlisted)
        lists = sorted(pair for batch in ranked for pair in batch)  # written in rowid order
    with IndexWriter(index.stored.path) as writer:
        writer.set_neighbours(lists)
        writer.set_meta({"n_neighbours": rerank.NEIGHBOURS})
    index._reopen()


def pipelined(pool, fn: Callable, items: Iterable) -> Iterator:
    """``fn(item)`` for each item, in order, computed by ``pool`` while this thread
    makes the next item (at most one waits for ``pool``)."""
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _shortlists(index, documents, at: np.ndarray, width: int):
    """(positions, their stored vectors, and the shortlists: rows, distances,
    counts) of a batch of documents: each one's ball and, as a query's, the
    documents holding its rarest terms."""
    rows, dists, counts, _ = search.search_many(
        index.table, index.codes, index.table.addresses[at], index.codes[at], width, shortlist=width
    )
    queries = rerank.pack([rerank.row(documents, i) for i in at.tolist()])
    if width < len(index):
        rows, dists, counts = shortlists.with_rare_holders(index, rows, dists, counts, queries, index.codes[at])
    return at, queries, rows, dists, counts


def _ranked(index, prepared, width: int, at, queries, rows, dists, counts) -> list[tuple[int, bytes]]:
    """(rowid, neighbour list blob) of each document of a batch, from its shortlist."""
    code_bits = int(index.meta["code_bits"])
    order, _ = rerank.rerank(
        queries, rows, dists, counts, prepared, index.n_terms, code_bits, min(rerank.NEIGHBOURS + 1, width), feedback=False
    )
    ranked = np.where(order >= 0, np.take_along_axis(rows, np.maximum(order, 0), 1), -1)
    lists = []
    for i, found in zip(at.tolist(), ranked):
        found = found[(found >= 0) & (found != i)][: rerank.NEIGHBOURS]
        lists.append((int(index.rowids[i]), rerank.neighbours_to_blob(index.rowids[found])))
    return lists
