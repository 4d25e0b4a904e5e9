"""Text -> tokens. Pure functions, numpy-free, shared by indexing and the query path.

The query path must tokenize exactly as indexing did, so both use :func:`tokenize`
and nothing else.
"""

from __future__ import annotations

import re

# A token is a run of 2+ letters/digits that starts with a letter: drops numbers
# ("1993", "3d") that mostly carry no topic in prose, keeps "x11r5", "mp3".
TOKEN_RE = re.compile(r"\b[^\W\d_][^\W_]+\b")


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into word tokens.

    Examples
    --------
    >>> tokenize("The X11R5 server, version 3.1, crashed!")
    ['the', 'x11r5', 'server', 'version', 'crashed']
    """
    return TOKEN_RE.findall(text.lower())
