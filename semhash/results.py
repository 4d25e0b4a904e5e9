"""What the library hands back: a query's :class:`Hit`, an encoded document, and the
summaries of a build and of an update (with the one line ``semhash index`` prints)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple


def _drift(new_share: float | None, built_share: float | None, previous: bool) -> str | None:
    """The vocabulary-drift clause of a summary line, or None without new documents."""
    if new_share is None:
        return None
    which = "the previous vocabulary" if previous else "the vocabulary"
    text = f"drift: {new_share:.1%} of the new documents' words outside {which}"
    if built_share is not None:
        text += f" ({built_share:.1%} at {'its build' if previous else 'build'})"
    return text


def _skipped(n_binary: int, n_unreadable: int) -> str:
    return f"skipped {n_binary + n_unreadable} files ({n_binary} binary, {n_unreadable} unreadable)"


def _input_notes(bad_lines: list[int], n_truncated: int, n_duplicates: int, n_numbered: int, n_folders: int) -> list[str]:
    """The summary's notes on input that was skipped, cut, ignored or named by its
    line number (both summaries)."""
    notes = [_bad_lines(bad_lines)] if bad_lines else []
    if n_folders:
        notes.append(f"{n_folders} folder{'s' * (n_folders != 1)} named in --files-from skipped (list files, as find -type f does)")
    if n_truncated:
        notes.append(f"{n_truncated} truncated")
    if n_duplicates:
        notes.append(f"{n_duplicates} duplicate ids ignored")
    if n_numbered:
        # Line numbers repeat from run to run: the next stream's line 1 replaces this one's.
        one = n_numbered == 1
        notes.append(
            f"{n_numbered} JSON line{'' if one else 's'} without an id named by {'its' if one else 'their'} line number "
            f"(another run's line{'' if one else 's'} would replace {'it' if one else 'them'})"
        )
    return notes


def _bad_lines(lines: list[int]) -> str | None:
    """The summary clause for JSON lines skipped with ``skip_bad_lines``."""
    if not lines:
        return None
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return f"{len(lines)} bad JSON line{'s' if len(lines) > 1 else ''} skipped (line {shown})"


@dataclass
class BuildSummary:
    """What :func:`build_index` did.

    ``oov_share`` is the share of the corpus's words (stop words excluded) that the
    vocabulary leaves out; ``drift``, when an index was replaced, the same share for
    the documents that were new or changed, against the previous vocabulary.
    """

    n_documents: int
    n_binary: int
    n_unreadable: int
    n_truncated: int
    n_duplicates: int
    vocabulary_size: int
    seconds: float
    bimodality: list[float] = field(default_factory=list)
    oov_share: float | None = None
    drift: float | None = None
    previous_oov_share: float | None = None
    bad_lines: list[int] = field(default_factory=list)
    n_trained: int | None = None
    n_numbered: int = 0
    n_folders: int = 0
    first_duplicate: str | None = None

    def line(self) -> str:
        """The one-line summary ``semhash index`` prints at the end."""
        parts = [f"indexed {self.n_documents} documents", _skipped(self.n_binary, self.n_unreadable)]
        parts += _input_notes(self.bad_lines, self.n_truncated, self.n_duplicates, self.n_numbered, self.n_folders)
        if self.n_trained is not None and self.n_trained < self.n_documents:
            parts.append(f"model trained on a sample of {self.n_trained}")
        vocabulary = f"vocabulary {self.vocabulary_size} words"
        if self.oov_share is not None:
            vocabulary += f" ({self.oov_share:.1%} of words outside)"
        parts.append(vocabulary)
        drift = _drift(self.drift, self.previous_oov_share, previous=True)
        if drift:
            parts.append(drift)
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


@dataclass
class UpdateSummary:
    """What :meth:`Index.add` did.

    ``n_missing`` counts indexed documents under the given roots that were not
    found this time: removed with ``prune``, kept (and counted) without it.
    ``drift`` is the share of the added and updated documents' words (stop words
    excluded) outside the vocabulary; ``oov_share`` the same share for the corpus
    the model was trained on.
    """

    n_added: int
    n_updated: int
    n_unchanged: int
    n_removed: int
    n_missing: int
    n_documents: int
    n_binary: int
    n_unreadable: int
    n_truncated: int
    n_duplicates: int
    seconds: float
    drift: float | None = None
    oov_share: float | None = None
    bad_lines: list[int] = field(default_factory=list)
    n_numbered: int = 0
    n_folders: int = 0
    first_duplicate: str | None = None

    def line(self) -> str:
        """The one-line summary ``semhash index`` prints at the end."""
        parts = [
            f"added {self.n_added}, updated {self.n_updated}, unchanged {self.n_unchanged}, "
            f"removed {self.n_removed} ({self.n_documents} documents)",
            _skipped(self.n_binary, self.n_unreadable),
        ]
        if self.n_missing > self.n_removed:
            parts.append(f"{self.n_missing - self.n_removed} missing kept (--prune removes them)")
        parts += _input_notes(self.bad_lines, self.n_truncated, self.n_duplicates, self.n_numbered, self.n_folders)
        drift = _drift(self.drift, self.oov_share, previous=False)
        if drift:
            parts.append(drift)
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


class Hit(NamedTuple):
    """One search result (immutable; a named tuple, not a dataclass: a batch makes
    hundreds of thousands, and a frozen dataclass cost 3x more to create).

    Attributes
    ----------
    id : document id
    distance : Hamming distance between the query's long code and the document's
    path : file the document was read from (None for JSON lines)
    labels : the document's labels (its folder's name for files)
    title : its first non-empty line
    address : its short code, as an integer
    score : the ranking's score, higher is better: the TF-IDF cosine with the
        query, plus a weighted share of its stored neighbours' scores, less a little
        per differing bit (:mod:`semhash.rerank`); a measure to compare hits by, not
        a probability. ``None`` where the codes alone ranked
    """

    id: str
    distance: int
    path: str | None = None
    labels: tuple[str, ...] = ()
    title: str = ""
    address: int | None = None
    score: float | None = None


@dataclass(frozen=True)
class EncodedDocument:
    """A document's codes, as :meth:`Index.encode_documents` prints them."""

    id: str
    address: str
    code: str
    known_words: int


def hits(index, found: list[tuple | None]) -> list[list[Hit] | None]:
    """Hits from (rowids, code distances, scores or None) per query (None: no hit),
    read from the opened :class:`semhash.api.Index` ``index``."""
    # One lookup for the whole batch: per-query round trips to SQLite dominated.
    # (dict.fromkeys: the order of first appearance, at no numpy cost)
    hit_rowids = list(dict.fromkeys(r for f in found if f is not None for r in f[0].tolist()))
    rows = index.stored.rows(hit_rowids)
    if index.stored.compact:  # its addresses are in the loaded codes alone
        addresses = index.table.addresses[index.rowids.searchsorted(hit_rowids)].tolist()
        rows = {r: (*rows[r][:4], a) for r, a in zip(hit_rowids, addresses)}
    out: list[list[Hit] | None] = []
    for f in found:
        if f is None:
            out.append(None)
            continue
        docs = map(rows.__getitem__, f[0].tolist())
        scores = f[2].tolist() if f[2] is not None else itertools.repeat(None)
        out.append([Hit(doc[0], d, doc[1], doc[2], doc[3], doc[4], s) for doc, d, s in zip(docs, f[1].tolist(), scores)])
    return out
