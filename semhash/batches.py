"""`semhash query -`: queries read from stdin, one a line (or JSON lines), answered
in batches as they come: at once for a person typing, in full batches for a file.

Imports only click and the standard library (see :mod:`semhash.cli`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import click


def answered_batches(idx, limit: int, options: dict, jsonl_in: bool, skip_bad_lines: bool):
    """Answer one query per stdin line, up to ``BATCH_QUERIES`` lines at a time
    (the first ``FIRST_BATCH``: see :func:`ready_batches`; bounded memory,
    output as it comes), and whatever has come once stdin
    pauses (see :func:`ready_batches`): yields each batch's answered queries as
    ``(name, hits)`` pairs (name: the line number, or the id with ``jsonl_in``)."""
    from semhash.corpus import DEFAULT_MAX_BYTES, iter_jsonl, stdin_lines

    lines = stdin_lines(None, own_reader=True, max_bytes=DEFAULT_MAX_BYTES)  # a query is no longer than a document

    if jsonl_in:
        warn = (lambda e: click.echo(f"warning: {e.args[0].split('; ')[0]}, skipped", err=True)) if skip_bad_lines else None
        queries = ((d.id, d.text) for d in iter_jsonl(lines, on_error=warn))
    else:
        queries = ((n, line.rstrip("\r\n")) for n, line in enumerate(lines, 1))
    unknown = 0
    for batch in ready_batches(queries, BATCH_QUERIES, FIRST_BATCH):
        names, texts = zip(*batch)
        # JSON lines are documents (encoded as indexing did); plain lines are queries.
        results = idx.query_many(list(texts), limit, skip_empty=True, documents=jsonl_in, **options)
        answered = []
        for name, hits in zip(names, results):
            if hits is not None:
                answered.append((name, hits))
                continue
            unknown += 1
            if unknown <= WARNED_QUERIES:
                click.echo(f"warning: query {name} has no words in the index vocabulary, skipped", err=True)
            if unknown == WARNED_QUERIES:
                click.echo("warning: the next queries with no known words are skipped without a word", err=True)
        yield answered


#: Queries skipped for having no known word that get a warning line each: `yes x |
#: semhash query -` on an index that does not know x drew a line per input line,
#: millions of them, burying everything else on stderr.
WARNED_QUERIES = 10


BATCH_QUERIES = 10_000  # stdin lines answered at once by `semhash query -`, at most
#: The first batch's size; the next ones are full. The first answers of a busy
#: stdin (`yes x | semhash query - | head -1`) wait for 16 queries, not 10,000
#: (several seconds). Not doubling up to 10,000: each batch reads its shortlists'
#: vectors again, and the 7,532 20NG posts in 9 batches took 1.28x as long.
FIRST_BATCH = 16
STDIN_PAUSE = 0.05  # seconds without a new line after which the lines read are answered
STDIN_WAIT = 0.5  # seconds the first line of a batch waits at most, however busy stdin is


def ready_batches(items: Iterable, size: int, first: int | None = None) -> Iterator[list]:
    """Lists of ``items``, the first of at most ``first`` (default: ``size``), the
    next ones of at most ``size``; each as soon as it is full, or the
    items pause for :data:`STDIN_PAUSE` seconds, or its first item has waited
    :data:`STDIN_WAIT` seconds: `tail -f questions | semhash query -` and a person
    typing get each answer at once, where a batch of 10,000 lines waited for them
    all. A thread reads the items (stdin, parsed) meanwhile, at most two batches
    ahead (a file's lines are there at once: its batches still fill); its errors (a
    bad JSON line) are raised here, in order."""
    ahead: queue.Queue = queue.Queue(maxsize=2 * size)
    done = object()

    def read() -> None:
        try:
            for item in items:
                ahead.put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the reader below
            ahead.put(_Raised(e))
        ahead.put(done)

    threading.Thread(target=read, daemon=True).start()
    batch: list = []
    deadline = 0.0
    limit = min(first or size, size)
    while True:
        try:
            wait = min(STDIN_PAUSE, deadline - time.monotonic()) if batch else None
            item = ahead.get(timeout=wait) if wait is None or wait > 0 else ahead.get_nowait()
        except queue.Empty:
            yield batch
            batch = []
            continue
        if item is done:
            break
        if isinstance(item, _Raised):
            if batch:
                yield batch
            raise item.error
        if not batch:
            deadline = time.monotonic() + STDIN_WAIT
        batch.append(item)
        if len(batch) >= limit:
            yield batch
            batch = []
            limit = size
    if batch:
        yield batch


class _Raised(NamedTuple):
    error: BaseException
