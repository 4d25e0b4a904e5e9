"""Building on a Dask cluster: ``semhash index --workers N`` (a ``LocalCluster`` of N
worker processes, one thread each) or ``--scheduler ADDRESS`` (a cluster already
running).

What runs where, in a build (:func:`semhash.build.build`):

1. This process reads the documents and keeps their metadata; their texts go to
   the workers in batches, and each worker tokenizes and counts a batch
   (``build._count_batch``). The batches' counts come back and are merged into the
   counts one pass over the corpus gives (:func:`semhash.vocab.merge_terms`), from
   which this process chooses the vocabulary.
2. The model trains here, once, on the (training) sample.
3. The model is sent to every worker once; the workers encode the rows of the bag
   of words in the blocks a single process encodes (``build._encode_block``), and
   the codes come back here, in order.
4. This process writes the one SQLite index and lists the neighbours.

Each worker runs the function the single process runs on the same rows, so the
same seed and documents give the same index, bit for bit in its codes (on a
cluster of other machines, as between any two machines, a code bit whose
activation is within rounding of the threshold may differ).

One index, not shards: ``query`` reads one file through one snapshot, the
neighbour lists and the rare terms' shortlists span the whole collection, and
updates and ``--prune`` stay one transaction. The workers' share is the part that
grows with the corpus and needs no collection-wide state; what comes back (term
counts, 36 bytes of codes a document) is small beside the texts sent out.

Dask is imported here only, and only when a build asks for it
(``pip install 'semantic-hashing[dask]'``): no other command loads it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from semhash.errors import BuildError

DASK_MISSING = "--workers and --scheduler need Dask, which is not installed: pip install 'semantic-hashing[dask]'"
#: How long to keep trying a --scheduler address before giving up.
CONNECT_TIMEOUT = "10s"
#: Tasks queued per worker thread: enough that none waits for the next, few enough that
#: the texts and results in flight stay a bounded amount of memory.
IN_FLIGHT_PER_THREAD = 6
#: Environment of a LocalCluster's worker processes: one thread each for BLAS and
#: numba, so N workers use N cores, not N times the machine's. Dask's default also
#: sets MALLOC_TRIM_THRESHOLD_, which turns off glibc's growing mmap threshold: each
#: of the encoder's layer outputs (8 MB a chunk) was then mapped and faulted in
#: afresh, and a chunk took 0.18-0.26 s to encode instead of 0.10-0.11 s (this
#: machine, one thread, 4,096 synthetic documents); it is left out.
WORKER_ENVIRON = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
}


def check(workers: int | None, scheduler: str | None) -> None:
    """Raise :class:`BuildError` for a cluster asked for wrongly, or when Dask is missing."""
    if workers is None and scheduler is None:
        return
    if workers is not None and scheduler is not None:
        raise BuildError("--workers starts a cluster and --scheduler names one: give either, not both")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise BuildError(f"--workers must be an integer of at least 1, got {workers!r}")
    require()


def require() -> None:
    """Raise :class:`BuildError` (one line, what to install) unless Dask's
    ``distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BuildError(DASK_MISSING) from None


@contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator:
    """A ``distributed.Client`` on a new LocalCluster of ``workers`` processes, or on
    the scheduler at ``scheduler``; None when neither is given (this process does
    the work). The cluster stops on leaving."""
    if workers is None and scheduler is None:
        yield None
        return
    check(workers, scheduler)
    import dask
    from distributed import Client, LocalCluster

    settings = {
        "distributed.nanny.pre-spawn-environ": WORKER_ENVIRON,
        "distributed.admin.large-graph-warning-threshold": "1GB",  # a batch may hold a 10 MB file's text
    }
    with dask.config.set(settings):
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as e:
                raise BuildError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
            with client:
                yield client
            return
        with _environ_kept():
            local = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
            )
        with _environ_kept(), local, Client(local) as client:
            yield client


@contextmanager
def _environ_kept() -> Iterator[None]:
    """Put this process's environment back as it was: a Nanny sets the workers'
    (:data:`WORKER_ENVIRON`, PYTHONHASHSEED) in its own process's before spawning one,
    and leaves it there. Numba then refused to run ("Cannot set NUMBA_NUM_THREADS to
    a different value once the threads have been launched"), or ran on one thread."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)


def mapped(client, fn: Callable, items: Iterable, *shared) -> Iterator:
    """``fn(item, *shared)`` for each item, in order: in this process when ``client``
    is None, else on the cluster's workers, ``shared`` sent to each of them once and
    a bounded number of items in flight."""
    if client is None:
        yield from (fn(item, *shared) for item in items)
        return
    from distributed import KilledWorker

    sent = [client.scatter(value, broadcast=True) for value in shared]
    window = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append(client.submit(_apply, fn, _Opaque(item), *sent, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except KilledWorker as e:
        raise BuildError(f"a Dask worker died while building ({e}): nothing was written") from None
    except ImportError as e:  # raised by a worker that cannot load the task's module
        raise BuildError(f"a Dask worker cannot run semhash ({e}): install this semhash on every worker") from None
    finally:
        client.cancel(list(pending))


class _Opaque:
    """An item sent as it is: Dask walks a task's lists and tuples, element by
    element, for keys of its own (a batch of 2,000 texts: 3 s of this process's
    CPU per 100,000 documents, cProfile, one run)."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _apply(fn: Callable, item: _Opaque, *shared):
    return fn(item.value, *shared)


def batches(items: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` consecutive items (the last one shorter)."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch
