"""Hits as a person at a terminal reads them: one aligned line per hit, cut to the
terminal's width.

Piped output is for programs and stays ``id<TAB>distance``; this is only for eyes.
Standard library only: the CLI formats with it before numpy is loaded.
"""

from __future__ import annotations

import unicodedata

GAP = "  "
MIN_TITLE = 8  # columns; with less room, the title is left out rather than cut to nothing
ELLIPSIS = "…"


def hit_table(rows: list[dict], column: str, width: int) -> list[str]:
    """The lines of a table of ``rows`` (dicts with ``id``, ``title`` and ``column``),
    best first: a header, then rank, the ranking's number, id and title.

    ``column`` is what ranked the hits: ``"score"`` (higher is better) or
    ``"distance"`` (differing bits, lower is better). Ids are never cut (they are
    what one copies into ``semhash similar``); titles take the rest of ``width``.
    Control characters are shown escaped, so a title cannot move the cursor or
    break a line.
    """
    if not rows:
        return []
    ranks = [str(r) for r in range(1, len(rows) + 1)]
    numbers = [f"{row[column]:.4f}" if column == "score" else str(row[column]) for row in rows]
    ids = [printable(row["id"]) for row in rows]
    titles = [printable(row["title"]) for row in rows]
    left = [
        ["#", *ranks],
        [column, *numbers],
        ["id", *ids],
    ]
    widths = [max(map(cell_width, cells)) for cells in left]
    room = width - sum(widths) - len(GAP) * len(widths)
    lines = []
    for i, title in enumerate(["title", *titles]):
        rank, number, doc_id = (cells[i] for cells in left)
        line = GAP.join([pad_left(rank, widths[0]), pad_left(number, widths[1]), pad_right(doc_id, widths[2])])
        if room >= MIN_TITLE and title:
            line += GAP + cut(title, room)
        lines.append(line.rstrip())
    return lines


def printable(text: str) -> str:
    """``text`` with every control, format or unpaired-surrogate character written
    as its Python escape (``\\x1b``, ``\\n``, ``\\u200b``, ``\\udc80``): a terminal
    would act on them, or an undecodable file name would not print at all."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch)[0] == "C" else ch for ch in text
    )


def char_width(ch: str) -> int:
    """Columns a character takes on a terminal: 0 for combining marks, 2 for wide
    East Asian characters, else 1."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell_width(text: str) -> int:
    return sum(map(char_width, text))


def cut(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns, an ellipsis marking the cut."""
    if cell_width(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        kept.append(ch)
        used += w
    return "".join(kept) + ELLIPSIS


def pad_left(text: str, width: int) -> str:
    return " " * (width - cell_width(text)) + text


def pad_right(text: str, width: int) -> str:
    return text + " " * (width - cell_width(text))
