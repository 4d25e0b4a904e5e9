"""Text -> tokens. Pure functions, numpy-free, shared by indexing and the query path.

The query path must read a text exactly as indexing did, so both go through
:func:`content` (which part of a text counts) and :func:`tokenize` (its words), and,
for an index that stems, :func:`content_words` (stop words out, then stems).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

# A word is a maximal run of letters and digits (underscores and punctuation split
# words). Only words of 2+ characters that start with a letter are kept: numbers
# ("1993", "3d") carry little topic in prose; "x11r5" and "mp3" do.
WORD_RE = re.compile(r"[^\W_]{2,}")
PIECE_CHARS = 1 << 20  # a longer text is tokenized piece by piece (content_words)

# A mail or news message opens with "Name: value" header lines, then a blank line.
MAX_HEADER_LINES = 60
_MESSAGE_FIELDS = frozenset({"from", "subject", "newsgroups", "message-id"})


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into word tokens.

    Examples
    --------
    >>> tokenize("The X11R5 server, version 3.1, crashed!")
    ['the', 'x11r5', 'server', 'version', 'crashed']
    """
    return [w for w in _runs(text) if len(w) > 1 and w[0].isalpha()]


# An ASCII text's bytes with every letter lowercased and everything but letters and
# digits made a space: its split() is WORD_RE's runs of a lowercased text, and the
# one-character ones (each a C-level pass: 3x faster than the regex's findall).
_ASCII_RUNS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or 48 <= c <= 57 else 32 for c in range(256))


def _runs(text: str) -> list[str]:
    """The maximal runs of letters and digits of ``text`` lowercased: WORD_RE's (an
    ASCII text's also of one character)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_RUNS).decode("ascii").split()
    return WORD_RE.findall(text.lower())


def content_words(text: str, stem: bool = False) -> list[str]:
    """The tokens of ``text`` an index counts: stop words removed, then, with
    ``stem``, each reduced to its Snowball English stem, so that "images", "image"
    and "imaging" count as one word. Stop words go first: "fire" and "show" are
    stop words, "fires" and "shows" are not, and keep their stem.

    A text longer than :data:`PIECE_CHARS` is read piece by piece, each distinct
    word held once however often it recurs: read whole, a text is lowercased whole
    and each of its tokens is an object of its own (twice, stemmed); a build of a
    200 MB file of news posts (`--max-bytes 300000000`) peaked at 2.9 GB so, at
    0.9 GB in pieces (/usr/bin/time -v, one run each).

    Examples
    --------
    >>> content_words("The images were resized")
    ['images', 'resized']
    >>> content_words("The images were resized", stem=True)
    ['imag', 'resiz']
    """
    if len(text) <= PIECE_CHARS:
        return _content_words(text, stem)
    words: list[str] = []
    shared: dict[str, str] = {}
    for piece in _pieces(text):
        words += [shared.setdefault(w, w) for w in _content_words(piece, stem)]
    return words


def _pieces(text: str):
    """``text`` in pieces of about :data:`PIECE_CHARS`, each cut after a space or line
    end, so no word is split and lowercasing sees the same neighbours (a final sigma)."""
    start = 0
    while start < len(text):
        end = start + PIECE_CHARS
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = cut + 1 if cut >= start else end
        yield text[start:end]
        start = end


def _content_words(text: str, stem: bool) -> list[str]:
    return list(filter(None, map(_terms(stem).__getitem__, _runs(text))))


class _Terms(dict):
    """{run of letters and digits: the term it counts as, or None}: what
    :func:`tokenize`, the stop words and the stemmer make of each distinct run,
    found once. A text's terms are then one C-level pass over its runs: reading
    a build's corpus 2.5-3x faster than filtering and stemming every token (a
    Snowball stem of a word of two or more letters is never empty)."""

    MAX_SIZE = 500_000  # ~100 MB; emptied when full (a corpus's junk runs are mostly unique)

    def __init__(self, stem: bool) -> None:
        super().__init__()
        self.stem = stem

    def __missing__(self, run: str) -> str | None:
        if len(run) < 2 or not run[0].isalpha() or run in stop_words():
            term = None
        else:
            term = _stemmer().stemWord(run) if self.stem else run
        if len(self) >= self.MAX_SIZE:
            self.clear()
        self[run] = term
        return term


@functools.cache
def _terms(stem: bool) -> _Terms:
    return _Terms(stem)


@functools.cache
def _stemmer():
    import Stemmer  # PyStemmer: Snowball's C stemmers

    # Its cache of stemmed words holds 10,000 by default; the 20NG test posts have
    # 74,000 distinct content words, and a query batch stems each text twice (its
    # code's counts, its ranking's terms): the second pass took 3.1 s, 1.3 s cached.
    return Stemmer.Stemmer("english", 200_000)


@functools.cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (the list every index was built with).

    Read from scikit-learn's own file without importing the package: the import
    takes 1-2 s, and the query path of an index that stems needs the list (its
    queries drop stop words before stemming, as its documents did).
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package, imports nothing
    path = Path(spec.origin).parent / "feature_extraction" / "_stop_words.py" if spec and spec.origin else None
    if path is None or not path.is_file():  # laid out otherwise: import it after all
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return ENGLISH_STOP_WORDS
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_semhash_stop_words", path))
    module.__spec__.loader.exec_module(module)
    return module.ENGLISH_STOP_WORDS


def content(text: str) -> str:
    """The part of ``text`` that says what it is about.

    A mail or news message (a block of ``Name: value`` header lines naming
    ``From``, ``Subject``, ``Newsgroups`` or ``Message-ID``, ended by a blank line)
    becomes its subject and body: the other headers (sender, organization, line
    count, posting host) fill a 2000-word vocabulary with addresses and host names.
    On 20 Newsgroups, Subject + body instead of the whole post raised the
    precision@100 of the 256-bit code from 0.396 to 0.444 (bench/trials.py). Any
    other text comes back whole.

    Examples
    --------
    >>> content("From: a@b.org\\nSubject: Re: orbits\\nLines: 2\\n\\nThe body.")
    'Re: orbits\\nThe body.'
    >>> content("Title: not a message\\n\\nbody")
    'Title: not a message\\n\\nbody'
    """
    found = _message(text)
    if found is None:
        return text
    subject, body = found
    return body if subject is None else subject.strip() + "\n" + body


def subject(text: str) -> str | None:
    """The ``Subject:`` header of a message (see :func:`content`), or None."""
    found = _message(text)
    return None if found is None else found[0]


def _message(text: str) -> tuple[str | None, str] | None:
    """(subject or None, body) if ``text`` is a mail or news message, else None."""
    fields, subject_value, start = set(), None, 0
    for i in range(MAX_HEADER_LINES):  # line by line, not split: most texts end at the first
        if start < 0:
            return None  # the text ended in its headers
        end = text.find("\n", start)
        line = (text[start:] if end < 0 else text[start:end]).rstrip("\r")
        start = -1 if end < 0 else end + 1  # the next line's
        if not line.strip():
            if i > 0 and fields & _MESSAGE_FIELDS:
                return subject_value, "" if start < 0 else text[start:]
            return None
        if line[0] in " \t" and i > 0:
            continue  # a folded header line
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name or "\t" in name:
            return None  # not a header block
        name = name.lower()
        fields.add(name)
        if name == "subject" and subject_value is None:
            subject_value = value
    return None
