"""What a document is (id, text, labels, path, content hash; its title), what
reading a corpus counts, and the errors bad input raises."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from semhash.tokenize import subject

TITLE_MAX_CHARS = 120
# The first line of a text that starts with no whitespace: up to a line boundary
# as str.splitlines() finds them.
_FIRST_LINE = re.compile(r"[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*")
_LEADING_SPACE = re.compile(r"\s*")  # what str.lstrip() strips (str.isspace)
#: How many characters per title character the first line is read for (see first_line).
_TITLE_SPAN = 2


@dataclass(frozen=True)
class Document:
    """One document of a corpus.

    Attributes
    ----------
    id : str
        For files, the path relative to the root that was given, with ``/``
        separators. For a file given directly, the path as given, normalised.
        For JSON lines, the ``"id"`` field (or the line number if missing).
    text : str
        The decoded text.
    labels : tuple of str
        For files, the parent folder's name. The tuple is empty when the file
        sits directly in the given root. For JSON lines, the ``"labels"`` list.
    path : str or None
        The filesystem path as found, or None for documents read from stdin.
    content_hash : str
        SHA-256 hex digest of ``text`` encoded as UTF-8.
    """

    id: str
    text: str
    labels: tuple[str, ...]
    path: str | None
    content_hash: str


@dataclass
class ReadStats:
    """Counters that :func:`iter_documents` fills in while it reads.

    Attributes
    ----------
    n_documents : int
        Documents yielded.
    n_binary : int
        Files skipped because they look binary (NUL byte in the first 8 KiB).
    n_unreadable : int
        Files or directories skipped because they could not be opened
        (permissions, dangling symlinks, sockets or FIFOs met while walking).
    n_truncated : int
        Files longer than ``max_bytes`` (JSON texts longer than ``max_bytes``
        characters). Only their first ``max_bytes`` were read.
    bad_lines : list of int
        Numbers of the JSON lines skipped as malformed (``skip_bad_lines``).
    n_numbered : int
        JSON documents without an id, named by their line number instead.
    n_folders : int
        Folders named in a list of files (``--files-from``), skipped: ``find`` lists
        each folder beside its files, which reading it would read twice.
    n_duplicates, first_duplicate : int, str or None
        Documents whose id was met before (two folders given hold the same relative
        path), dropped: only the first document of an id is kept; the first such id.
    """

    n_documents: int = 0
    n_binary: int = 0
    n_unreadable: int = 0
    n_truncated: int = 0
    bad_lines: list[int] = field(default_factory=list)
    n_numbered: int = 0
    n_folders: int = 0
    n_duplicates: int = 0
    first_duplicate: str | None = None


class CorpusError(ValueError):
    """Bad input that the user must fix. The message is one line."""


class BadLine(CorpusError):
    """A malformed JSON line; ``lineno`` is its 1-based number."""

    def __init__(self, message: str, lineno: int):
        super().__init__(message)
        self.lineno = lineno


def content_hash(text: str) -> str:
    """Return the SHA-256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def first_line(text: str, max_chars: int = TITLE_MAX_CHARS) -> str:
    r"""A document's title: its first non-blank line, whitespace collapsed, cut at ``max_chars``.

    A mail or news message (one that opens with ``Name: value`` header lines) is
    titled by its ``Subject:`` header instead, when it has one: its first line is
    ``From: ...``, which says nothing about its content.

    Examples
    --------
    >>> first_line("\n\n  Notes on\torbits  \nbody")
    'Notes on orbits'
    >>> first_line("From: a@b.org\nSubject: Re: orbits\n\nbody")
    'Re: orbits'
    """
    title = subject(text)
    if title is None:  # (leading whitespace holds every blank line; split, a long text took 30 us)
        start = _LEADING_SPACE.match(text).end()
        # Only the line's first characters are read: collapsing a one-line document
        # of 1,200 characters whole took 30 us, the most of a --workers build's
        # reading in this process (cProfile).
        line = _FIRST_LINE.match(text, start, start + _TITLE_SPAN * max_chars)
        head = " ".join(line.group().split())
        if len(head) > max_chars or line.end() < start + _TITLE_SPAN * max_chars:
            return _cut(head, max_chars)
        title = _FIRST_LINE.match(text, start).group()  # a long run of spaces: read it all
    return _cut(" ".join(title.split()), max_chars)


def _cut(title: str, max_chars: int) -> str:
    return title if len(title) <= max_chars else title[: max_chars - 1] + "…"
