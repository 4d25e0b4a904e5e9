"""Reading documents for an index: the corpus under the paths given (never the
index's own files), the share of its words a vocabulary knows, progress bars that
appear with the first document."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TextIO

from semhash import locks
from semhash.corpus import DEFAULT_MAX_BYTES, CorpusError, Document, ReadStats, iter_documents, iter_listed_files, read_text
from semhash.errors import BuildError
from semhash.tokenize import content, content_words


class Coverage:
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


def progress(iterable, verbose: bool, desc: str, total: int | None = None, unit: str = "it"):
    """``iterable``, with a progress bar on stderr (if ``verbose``) that appears with
    its first item: a run that fails before any (no documents, a missing path)
    drew "reading: 0doc" above its error."""
    return _bar_from_first(iterable, desc=desc, total=total, unit=unit) if verbose else iterable


class bar:
    """A progress bar on stderr (if ``verbose``) drawn at once, before the first
    item of what it counts (:meth:`counting`), which another thread may iterate."""

    def __init__(self, verbose: bool, **options) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(file=sys.stderr, disable=not verbose, **options)

    def counting(self, items: Sequence) -> Iterator:
        """``items``, counted on the bar (its total: their number)."""
        self._bar.reset(total=len(items))
        for item in items:
            yield item
            self._bar.update(1)
        self._bar.close()  # as they end: closed later, it would show the time until then

    def __enter__(self) -> bar:
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def _bar_from_first(iterable, **bar) -> Iterator:
    from tqdm.auto import tqdm

    items = iter(iterable)
    for first in items:
        yield from tqdm(itertools.chain([first], items), file=sys.stderr, **bar)


def read_documents(
    paths: Sequence[str],
    files: Iterable[str] | None,
    stats: ReadStats,
    stdin: TextIO | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad_lines: bool = False,
    database: str | os.PathLike | None = None,
) -> Iterator[Document]:
    """Documents under ``paths`` (see ``iter_documents``), then those of the ``files``
    list, the first of each id only (the others counted in ``stats``); never the
    files of the index at ``database``."""
    if max_bytes < 1:
        raise BuildError(f"--max-bytes must be at least 1, got {max_bytes}")
    skip = own_files(database) if database is not None else ()
    found = (
        iter_documents(paths, stats, stdin=stdin, max_bytes=max_bytes, skip_bad_lines=skip_bad_lines, skip=skip)
        if paths
        else iter(())
    )
    if files is not None:
        found = itertools.chain(found, iter_listed_files(files, stats, max_bytes=max_bytes, skip=skip))
    return _first_of_each_id(found, stats)


def _first_of_each_id(docs: Iterable[Document], stats: ReadStats) -> Iterator[Document]:
    """Ids are paths relative to the folder given, so two folders holding the same
    names give the same ids: the later documents are dropped, and counted."""
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            stats.n_duplicates += 1
            stats.first_duplicate = stats.first_duplicate or doc.id
            continue
        seen.add(doc.id)
        yield doc


def own_files(database: str | os.PathLike) -> frozenset[str]:
    """The real paths of the index's files: `semhash index .` beside ./semhash.db
    indexed its (empty) lock file and WAL as documents, and the WAL, rewritten by
    every run, as "updated 1" each time."""
    real = os.path.realpath(database)
    return frozenset([real, real + "-wal", real + "-shm", real + "-journal", os.path.realpath(locks.lock_path(database))])


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text_of(path: str | os.PathLike) -> str:
    """The text of one file, read as indexing reads it (:class:`CorpusError` if it
    cannot be read or looks binary)."""
    try:
        text, _ = read_text(path)
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
    if text is None:
        raise CorpusError(f"{path} looks binary (NUL bytes): not a text document")
    return text
