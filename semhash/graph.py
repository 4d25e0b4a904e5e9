"""The neighbour graph: each document's nearest documents, found once when it is
indexed and stored beside it, which smooth the ranking (:mod:`semhash.rerank`)."""

from __future__ import annotations

import numpy as np

from semhash import reading, rerank, search, shortlists
from semhash.writer import IndexWriter


def fill_neighbours(index, verbose: bool = False) -> None:
    """Compute the neighbour lists the index lacks (every one after a build, the
    new and changed documents' after an update) and store them in one transaction.

    A document's neighbours are the best ``rerank.NEIGHBOURS`` of its own ball of
    ``rerank.NEIGHBOUR_SHORTLIST`` documents and the documents holding its rarest
    terms (as a query's shortlist), itself excluded, ranked as a query of its
    stored vector is ranked by the first pass (no feedback, no neighbours).
    The caller holds the writer lock.
    """
    if not index.n_terms or index.stored.meta.get("schema_version", 0) < 4:
        return
    missing = np.searchsorted(index.rowids, index.stored.without_neighbours())
    if missing.size == 0:
        return
    n = len(index)
    rowids = index.rowids.tolist()
    n_bytes, blobs = index.stored.all_term_blobs()
    documents = shortlists.stored_vectors(index, blobs, n_bytes)  # in rowid order: row i is position i
    # Prepared once for every batch below (each batch's own preparation was 10%
    # of a million-document index's build).
    prepared = rerank.KernelDocuments(documents, index.n_terms)
    width = min(rerank.NEIGHBOUR_SHORTLIST, n)
    code_bits = int(index.meta["code_bits"])
    lists = []
    for start in reading.progress(range(0, missing.size, 4096), verbose, "finding neighbours", unit="batch"):
        at = missing[start : start + 4096]
        rows, dists, counts, _ = search.search_many(
            index.table, index.codes, index.table.addresses[at], index.codes[at], width, shortlist=width
        )
        queries = rerank.pack([rerank.row(documents, i) for i in at.tolist()])
        if width < n:  # as a query's: with the documents holding its rarest terms
            rows, dists, counts = shortlists.with_rare_holders(index, rows, dists, counts, queries, index.codes[at])
        order, _ = rerank.rerank(
            queries, rows, dists, counts, prepared, index.n_terms, code_bits, min(rerank.NEIGHBOURS + 1, width),
            feedback=False,
        )
        ranked = np.where(order >= 0, np.take_along_axis(rows, np.maximum(order, 0), 1), -1)
        for i, found in zip(at.tolist(), ranked):
            found = found[(found >= 0) & (found != i)][: rerank.NEIGHBOURS]
            lists.append((rowids[i], rerank.neighbours_to_blob(index.rowids[found])))
    with IndexWriter(index.stored.path) as writer:
        writer.set_neighbours(lists)
        writer.set_meta({"n_neighbours": rerank.NEIGHBOURS})
    index._reopen()
