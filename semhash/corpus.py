"""Read documents from directories, single files or JSON lines on stdin.

Everything here streams: :func:`iter_documents` is a generator that opens one
file at a time, so a corpus never has to fit in memory.
"""

from __future__ import annotations

import codecs
import json
import os
import stat
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TextIO

from semhash.document import BadLine, CorpusError, Document, ReadStats, content_hash, first_line

__all__ = [
    "BadLine",
    "CorpusError",
    "Document",
    "ReadStats",
    "first_line",
    "iter_documents",
    "iter_jsonl",
    "iter_listed_files",
    "read_text",
    "stdin_lines",
    "stdin_text",
]

DEFAULT_MAX_BYTES = 10_000_000
# Same sniffing window as git and grep: a NUL byte early on means "not text".
BINARY_SNIFF_BYTES = 8192
# Text in UTF-16 or UTF-32 (Windows' "Unicode" files) is known by its byte order mark;
# UTF-32's first, as UTF-32LE's mark begins with UTF-16LE's.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
READ_PIECE = 1 << 24  # bytes read from a file at once: the default --max-bytes fits in one
EXPECTED_JSON = 'one object per line like {"id": "a", "text": "...", "labels": ["x"]}'
SKIP_HINT = "fix it, or pass --skip-bad-lines to skip such lines"
STDIN_CLOSED = "cannot read stdin: it is closed; give the input on a pipe or from a file (< FILE)"



def iter_listed_files(
    lines: Iterable[str], stats: ReadStats | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
    skip: Collection[str] = (),
) -> Iterator[Document]:
    """Yield one document per file named in ``lines`` (the output of ``find`` or ``git ls-files``).

    Parameters
    ----------
    lines : iterable of str
        One path per line; the line ending is removed, blank lines are ignored.
        Paths may also end with NUL bytes (``find -print0``): read as one line,
        such a list named one file that did not exist, and ``--prune`` then
        removed every document listed before.
    stats : ReadStats, optional
        Counters to fill in. A listed path that is missing, unreadable or not a
        regular file counts as unreadable; binary files count as binary.
        Directories are skipped and counted apart (``n_folders``): ``find`` lists
        them next to their files, which reading them would read twice.
    skip : real paths of files not to read, as for :func:`iter_documents`.

    Yields
    ------
    Document
        Its id is the path relative to the current directory (absolute if it lies
        outside), with ``/`` separators; its label is the parent folder's name.
    """
    stats = stats if stats is not None else ReadStats()
    skipped = _skipper(skip)
    paths = (path for line in lines for path in line.rstrip("\r\n").split("\0"))
    for path in paths:
        if not path.strip():
            continue
        if os.path.isdir(path):
            stats.n_folders += 1
            continue
        if skipped(path):
            continue
        if not _is_regular_file(path, stats):
            continue
        doc_id = os.path.relpath(path) if not os.path.isabs(path) or _under(path, os.getcwd()) else path
        for doc in _iter_single_file(doc_id, stats, max_bytes):
            stats.n_documents += 1
            yield doc


def _under(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def iter_documents(
    paths: Sequence[str],
    stats: ReadStats | None = None,
    *,
    stdin: TextIO | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad_lines: bool = False,
    skip: Collection[str] = (),
) -> Iterator[Document]:
    """Yield the documents found under ``paths``, in a deterministic order.

    Parameters
    ----------
    paths : sequence of str
        Each entry is a directory (walked recursively, skipping names that
        start with ``.``), a single file, or ``"-"`` for JSON lines on stdin.
        Paths are read in the order given.
    stats : ReadStats, optional
        If given, its counters are incremented as documents are read or
        skipped.
    stdin : text stream, optional
        Where ``"-"`` reads from. Defaults to ``sys.stdin``, which is read as
        UTF-8 whatever the locale, because JSON is UTF-8.
    max_bytes : int, default 10_000_000
        Read at most this many bytes of each file (characters of each JSON text).
    skip_bad_lines : bool
        Skip malformed JSON lines, recording their numbers in
        ``stats.bad_lines``, instead of raising.
    skip : collection of str
        Real paths of files that walking a directory passes over, uncounted: the
        index's own files, so that indexing the folder that holds the index does
        not read its lock file and SQLite's journals as documents.

    Yields
    ------
    Document

    Raises
    ------
    CorpusError
        If a path does not exist (checked for all paths before the first
        document is yielded), or if a JSON line is malformed (:class:`BadLine`).

    Notes
    -----
    Symlinks to directories are followed. A directory whose real path was
    already visited in the same walk is skipped, so symlink loops end and
    a tree is not read twice through two links.
    """
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        if path != "-" and not os.path.exists(path):
            raise CorpusError(f"no such file or directory: {path}")
    for path in paths:
        if path == "-":
            on_error = (lambda e: stats.bad_lines.append(e.lineno)) if skip_bad_lines else None
            docs = _capped(iter_jsonl(stdin_lines(stdin), on_error=on_error, stats=stats), stats, max_bytes)
        elif os.path.isdir(path):
            docs = _iter_directory(path, stats, max_bytes, _skipper(skip))
        else:
            docs = _iter_single_file(path, stats, max_bytes)
        for doc in docs:
            stats.n_documents += 1
            yield doc


def _capped(docs: Iterable[Document], stats: ReadStats, max_chars: int) -> Iterator[Document]:
    """Cut JSON texts longer than ``max_chars`` (counted as truncated), as files are cut."""
    for doc in docs:
        if len(doc.text) > max_chars:
            stats.n_truncated += 1
            text = doc.text[:max_chars]
            doc = Document(doc.id, text, doc.labels, doc.path, content_hash(text))
        yield doc


def read_text(
    path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str | None, bool]:
    """Read a file as text, or detect that it is binary.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    max_bytes : int, default 10_000_000
        Read at most this many bytes.

    Returns
    -------
    text : str or None
        The decoded text, or None if the file is binary (a NUL byte in its
        first 8 KiB). A file that begins with a UTF-16 or UTF-32 byte order mark
        is decoded as such (bad units become U+FFFD); any other tries UTF-8
        (dropping a leading BOM) and falls back to latin-1, which accepts any
        byte, so decoding never fails.
    truncated : bool
        True if the file was longer than ``max_bytes``.

    Raises
    ------
    OSError
        If the file cannot be opened or read.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    with open(path, "rb") as f:
        # One byte more than the cap tells us whether anything was cut off. In pieces:
        # read(n) allocates n bytes first, so a cap meant as "no limit" (--max-bytes
        # 100000000000) was a MemoryError, or past 2**63 an OverflowError, on any file.
        parts, left = [], max_bytes + 1
        while left > 0 and (part := f.read(min(left, READ_PIECE))):
            parts.append(part)
            left -= len(part)
    data = b"".join(parts)
    truncated = len(data) > max_bytes
    data = data[:max_bytes]
    wide = next((encoding for bom, encoding in WIDE_BOMS if data.startswith(bom)), None)
    if wide is not None:  # half its bytes are NUL: the sniff below would call it binary
        return codecs.getincrementaldecoder(wide)("replace").decode(data, final=not truncated), truncated
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None, truncated
    return _decode(data, truncated), truncated


def _decode(data: bytes, truncated: bool) -> str:
    """Decode as UTF-8, or latin-1 if that fails.

    When the data was truncated, the cut may split a multi-byte character.
    Decoding with ``final=False`` drops that incomplete tail (a wide encoding's
    too) instead of treating the whole file as latin-1.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(data, final=not truncated)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def iter_jsonl(
    lines: Iterable[str], *, source: str = "stdin", on_error: Callable[[BadLine], None] | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Document]:
    """Yield one document per JSON line.

    Parameters
    ----------
    lines : iterable of str
        Each non-blank line is an object
        ``{"id": str, "text": str, "labels": [str, ...]}``. ``"labels"`` is
        optional. Without ``"id"``, the 1-based line number is used.
    source : str, default "stdin"
        Name of the input, used in error messages.
    on_error : callable, optional
        Called with the :class:`BadLine` of each malformed line, which is then
        skipped. Without it, the first malformed line raises.
    stats : ReadStats, optional
        Counts the documents named by their line number (``n_numbered``).

    Yields
    ------
    Document
        With ``path=None``.

    Raises
    ------
    BadLine
        If a line is not a JSON object, lacks a ``"text"`` string, or has an
        ``"id"`` or ``"labels"`` of the wrong type. The message names the line.
        Nothing else: whatever the input, this is the only error.
    """
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc, numbered = _json_document(line, lineno, f"line {lineno} of {source}")
        except CorpusError as e:
            error = BadLine(f"{e}; {SKIP_HINT}", lineno)
            if on_error is None:
                raise error from None
            on_error(error)
            continue
        if numbered and stats is not None:
            stats.n_numbered += 1
        yield doc


def _json_document(line: str, lineno: int, where: str) -> tuple[Document, bool]:
    """The line's document, and whether it had no id (and is named by its line number)."""
    record = _parse_json_object(line, where)
    text = record.get("text")
    if not isinstance(text, str):
        raise CorpusError(f"{where} has no 'text' string; expected {EXPECTED_JSON}")
    text = _without_lone_surrogates(text)
    doc = Document(
        id=_without_lone_surrogates(_json_id(record, lineno, where)),
        text=text,
        labels=tuple(_without_lone_surrogates(label) for label in _json_labels(record, where)),
        path=None,
        content_hash=content_hash(text),
    )
    return doc, record.get("id") is None


def _parse_json_object(line: str, where: str) -> dict:
    """Parse one line, requiring a JSON object."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        # e.msg, not str(e): its "line 1 column N" would clash with our line number.
        raise CorpusError(
            f"{where} is not valid JSON: {e.msg} at column {e.colno}; expected {EXPECTED_JSON}"
        ) from None
    except RecursionError:
        raise CorpusError(f"{where} is not valid JSON: nested too deeply; expected {EXPECTED_JSON}") from None
    except ValueError:  # an integer of more than 4300 digits (int_max_str_digits)
        raise CorpusError(f"{where} is not valid JSON: a number is too long; expected {EXPECTED_JSON}") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{where} is not a JSON object; expected {EXPECTED_JSON}")
    return record


def _json_id(record: dict, lineno: int, where: str) -> str:
    """Return the record's id, or the line number if it has none."""
    doc_id = record.get("id")
    if doc_id is None:
        return str(lineno)
    # Integer ids are common in exports; bool is an int subclass but never an id.
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        return str(doc_id)
    if not isinstance(doc_id, str) or not doc_id:
        raise CorpusError(
            # (no "fix it" here: SKIP_HINT follows and says it)
            f"{where} has an 'id' that is not a non-empty string (left out, the line number is the id)"
        )
    return doc_id


def _json_labels(record: dict, where: str) -> tuple[str, ...]:
    """Return the record's labels as a tuple (empty if absent or null)."""
    labels = record.get("labels")
    if labels is None:
        return ()
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise CorpusError(
            f"{where} has 'labels' that is not a list of strings; use e.g. \"labels\": [\"x\"]"
        )
    return tuple(labels)


def _without_lone_surrogates(text: str) -> str:
    r"""Replace lone surrogates (legal in JSON as ``"\ud800"``) with U+FFFD.

    They cannot be encoded as UTF-8, so hashing or storing them would fail.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)  # one per surrogate
    return text


def stdin_lines(stdin: TextIO | None, *, own_reader: bool = False, max_bytes: int | None = None) -> Iterable[str]:
    """Lines of the given stream, or of ``sys.stdin`` decoded as UTF-8.

    JSON is UTF-8 by definition, so the default stdin is read at the byte
    level rather than in the locale's encoding, and bad bytes become U+FFFD
    instead of stopping the run. ``own_reader``: read the default stdin's file
    through a reader of its own, for a thread that may still be waiting on it
    when the process exits: one blocked in ``sys.stdin.buffer`` holds its lock,
    and the interpreter, closing ``sys.stdin`` at exit, then aborts ("Fatal
    Python error: _enter_buffered_busy", exit status 134) instead of exiting.
    ``max_bytes``: a longer line of the default stdin is a :class:`CorpusError`
    (a line that never ends must not fill the memory).
    """
    if stdin is not None:
        return stdin
    if sys.stdin is None:  # started with no stdin at all (`<&-`): Python sets it to None
        raise CorpusError(STDIN_CLOSED)
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    if own_reader:
        try:
            buffer = open(buffer.fileno(), "rb", closefd=False)
        except (OSError, ValueError):
            pass  # no file behind it (a test's stand-in): nothing closes it at exit
    return _utf8_lines(buffer, max_bytes)


def _utf8_lines(buffer, max_bytes: int | None = None) -> Iterator[str]:
    encoding = "utf-8-sig"  # the first line: a byte order mark (Windows editors write one) is not JSON, nor text
    lineno = 0
    while raw := buffer.readline(-1 if max_bytes is None else max_bytes + 1):
        lineno += 1
        if max_bytes is not None and len(raw) > max_bytes and not raw.endswith(b"\n"):
            raise CorpusError(f"line {lineno} of stdin is longer than {max_bytes:,} bytes: split it, or shorten it")
        yield raw.decode(encoding, "replace")
        encoding = "utf-8"


def stdin_text(max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """All of stdin as one text, decoded as :func:`stdin_lines` decodes it; more than
    ``max_bytes`` is a :class:`CorpusError` (`yes | semhash similar --file -` grew
    by 330 MB/s until the machine ran out of memory)."""
    if sys.stdin is None:
        raise CorpusError(STDIN_CLOSED)
    data = getattr(sys.stdin, "buffer", sys.stdin).read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CorpusError(f"stdin holds more than {max_bytes:,} bytes, more than a document may: give a shorter text")
    return data.decode("utf-8-sig", "replace") if isinstance(data, bytes) else data


def _iter_single_file(path: str, stats: ReadStats, max_bytes: int) -> Iterator[Document]:
    """Yield the document for a file named directly on the command line."""
    doc_id = _posix(os.path.normpath(path))
    parent = os.path.dirname(os.path.normpath(path))
    # abspath resolves "..": the label is the real folder's name, not "..".
    label = os.path.basename(os.path.abspath(parent)) if parent else ""
    doc = _read_document(path, doc_id, (label,) if label else (), stats, max_bytes)
    if doc is not None:
        yield doc


def _iter_directory(
    root: str, stats: ReadStats, max_bytes: int, skipped: Callable[[str], bool] = lambda path: False
) -> Iterator[Document]:
    """Yield the documents under ``root``, depth first, in sorted name order."""
    for dirpath, filenames in _walk(root, stats):
        rel_dir = os.path.relpath(dirpath, root)
        labels = () if rel_dir == os.curdir else (os.path.basename(dirpath),)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if skipped(full) or not _is_regular_file(full, stats):
                continue
            doc_id = _posix(os.path.normpath(os.path.join(rel_dir, name)))
            doc = _read_document(full, doc_id, labels, stats, max_bytes)
            if doc is not None:
                yield doc


def _skipper(skip: Collection[str]) -> Callable[[str], bool]:
    """A test of whether a path is one of ``skip`` (real paths). Names are compared
    first: resolving every walked path would cost a few system calls a file."""
    names = {os.path.basename(p) for p in skip}
    return lambda path: os.path.basename(path) in names and os.path.realpath(path) in skip


def _walk(root: str, stats: ReadStats) -> Iterator[tuple[str, list[str]]]:
    """Walk ``root``, yielding ``(dirpath, sorted visible file names)``.

    Hidden names are skipped. Symlinked directories are followed, but each
    real directory is entered at most once, which also ends symlink loops.
    """
    seen = {os.path.realpath(root)}

    def on_error(error: OSError) -> None:
        stats.n_unreadable += 1

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            real = os.path.realpath(os.path.join(dirpath, name))
            if real not in seen:
                seen.add(real)
                kept.append(name)
        # os.walk descends only into what is left in dirnames, in this order.
        dirnames[:] = kept
        yield dirpath, sorted(name for name in filenames if not name.startswith("."))


def _is_regular_file(path: str, stats: ReadStats) -> bool:
    """Check that a walked entry is a regular file (following symlinks).

    Dangling symlinks, sockets and FIFOs are counted as unreadable. Opening a
    FIFO would block forever.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in a listed path
        stats.n_unreadable += 1
        return False
    if not stat.S_ISREG(mode):
        stats.n_unreadable += 1
        return False
    return True


def _read_document(
    path: str, doc_id: str, labels: tuple[str, ...], stats: ReadStats, max_bytes: int
) -> Document | None:
    """Read one file into a Document, or count why it was skipped."""
    try:
        text, truncated = read_text(path, max_bytes)
    except OSError:
        stats.n_unreadable += 1
        return None
    if text is None:
        stats.n_binary += 1
        return None
    if truncated:
        stats.n_truncated += 1
    return Document(
        id=_storable(doc_id), text=text, labels=tuple(map(_storable, labels)), path=_storable(path),
        content_hash=content_hash(text),
    )


def _storable(name: str) -> str:
    r"""A file or folder name as text that UTF-8 (and so SQLite) can hold.

    A name that is not valid UTF-8 reaches Python with its bad bytes as lone
    surrogates, which made storing the whole run fail; they are written as ``\xNN``
    instead, so the id stays distinct and the same from run to run.

    >>> _storable("caf\udce9")
    'caf\\xe9'
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that no file system byte makes
        return _without_lone_surrogates(name)


def _posix(path: str) -> str:
    """Use ``/`` separators whatever the platform."""
    return path.replace(os.sep, "/")
