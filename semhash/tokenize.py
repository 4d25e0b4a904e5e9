"""Text -> tokens. Pure functions, numpy-free, shared by indexing and the query path.

The query path must tokenize exactly as indexing did, so both use :func:`tokenize`
and nothing else.
"""

from __future__ import annotations

import re

# A word is a maximal run of letters and digits (underscores and punctuation split
# words). Only words of 2+ characters that start with a letter are kept: numbers
# ("1993", "3d") carry little topic in prose; "x11r5" and "mp3" do.
WORD_RE = re.compile(r"[^\W_]{2,}")


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into word tokens.

    Examples
    --------
    >>> tokenize("The X11R5 server, version 3.1, crashed!")
    ['the', 'x11r5', 'server', 'version', 'crashed']
    """
    return [w for w in WORD_RE.findall(text.lower()) if w[0].isalpha()]
