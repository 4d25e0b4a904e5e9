"""The CLI's output: hits and encoded rows as TSV (the default), CSV, JSON lines or
a JSON array, a table on a terminal, and the text of `semhash info`.

Imports only click and the standard library (see :mod:`semhash.cli`).
"""

from __future__ import annotations

import csv
import io
import json
import sys

import click


def emit_batches(batches, fmt: str | None, fields: list[str], no_headers: bool, address_digits: int) -> int:
    """Print the hits of :func:`batches.answered_batches`'s batches, one row per hit (query and
    rank first); return how many rows there were."""
    if fmt in (None, "nl") and len(set(fields)) == len(fields):
        lines = HitLines(fmt == "nl", fields, address_digits)
        n_rows = 0
        for answered in batches:
            text = lines.format(answered)
            if text:
                click.echo("\n".join(text))
                n_rows += len(text)
        return n_rows
    rows = (
        [{"query": name, "rank": r, **hit_row(h, address_digits)} for name, hits in answered for r, h in enumerate(hits, 1)]
        for answered in batches
    )
    return emit_chunks(rows, fmt, ["query", "rank", *fields], no_headers)


class HitLines:
    """The lines :func:`emit` prints for hit rows (header-less TSV, or JSON lines),
    built from each document's cells formatted once: a batch names the same
    documents again and again (7,532 queries x 100 hits name 11,314 documents),
    and building and formatting every hit's row anew cost about 10 us a hit,
    seconds of a batch. Only the query, the rank, the distance and the score
    change per hit."""

    PER_HIT = ("distance", "score")

    def __init__(self, as_json: bool, fields: list[str], address_digits: int):
        self.as_json = as_json
        self.fields = fields
        self.per_hit = [c for c in fields if c in self.PER_HIT]
        self.digits = address_digits
        self.sep = ", " if as_json else "\t"
        self.cells: dict[str, list[str]] = {}  # doc id -> its text around the per-hit cells

    def _cell(self, column: str, value) -> str:
        if self.as_json:
            return f"{json.dumps(column)}: {json.dumps(value)}"
        return tsv_cell(value)

    def _document(self, hit) -> list[str]:
        """The row's text before, between and after its per-hit cells' values."""
        row = hit_row(hit, self.digits)
        pieces, piece = [], ""
        for j, c in enumerate(self.fields):
            piece += self.sep if j else ""
            if c in self.PER_HIT:
                pieces.append(piece + (f"{json.dumps(c)}: " if self.as_json else ""))
                piece = ""
            else:
                piece += self._cell(c, row[c])
        return pieces + [piece]

    def _value(self, column: str, hit) -> str:
        value = hit_row_value(column, hit)
        return json.dumps(value) if self.as_json else ("" if value is None else str(value))

    def format(self, answered) -> list[str]:
        cells, document, sep, value = self.cells, self._document, self.sep, self._value
        only_distance = self.per_hit == ["distance"]  # the default: one f-string a hit
        out = []
        for name, hits in answered:
            start = f'{{"query": {json.dumps(name)}, "rank": ' if self.as_json else f"{tsv_cell(name)}\t"
            end = "}" if self.as_json else ""
            for rank, hit in enumerate(hits, 1):
                pieces = cells.get(hit.id) or cells.setdefault(hit.id, document(hit))
                if only_distance:
                    out.append(f"{start}{rank}{sep}{pieces[0]}{hit.distance}{pieces[1]}{end}")
                else:
                    row = "".join(value(c, hit) + p for c, p in zip(self.per_hit, pieces[1:]))
                    out.append(f"{start}{rank}{sep}{pieces[0]}{row}{end}")
        return out


def ranking(about: dict) -> str:
    """What ranks the shortlist, as `semhash info` says it."""
    if about.get("compact"):
        return "codes alone (compact: no words kept; `semhash index --retrain --no-compact` adds them)"
    if not about.get("terms"):
        return "codes alone (built before ranking by words: `semhash index --retrain` adds them)"
    neighbours = f"{about['neighbours']} neighbours each" if about.get("neighbours") else "no neighbours yet"
    return f"words ({about['terms']:,} terms), {neighbours} and codes"


def info_text(about: dict) -> str:
    model = about["model"]
    bimodality = about["bimodality"]
    labels = ", ".join(f"{label} {n}" for label, n in about["labels"].items()) or "(none)"
    lines = [
        f"database      {about['database']} ({size(about['size_bytes'])}, schema {about['schema_version']}"
        + (", compact" if about.get("compact") else "") + ")",
        f"size          {per_document(about)}",
        f"created       {about['created']} by semhash {about['semhash_version']}"
        + (f", updated {about['updated']}" if about.get("updated") else ""),
        f"documents     {about['documents']}",
        f"labels        {labels}",
        f"vocabulary    {about['vocabulary_size']} words, {'Snowball-stemmed' if about.get('stem') else 'not stemmed'}"
        + (f" ({about['oov_share']:.1%} of the corpus's words outside)" if about.get("oov_share") is not None else "")
        + f"; reads {about['reads']}",
        f"ranking       {ranking(about)}",
        f"model         {'-'.join(map(str, model['trunk']))} trunk; "
        f"heads: {model['address_bits']}-bit address, {model['code_bits']}-bit code"
        + (f"; trained on {model['trained_on']} documents" if model.get("trained_on") is not None else ""),
    ]
    if bimodality.get("address") is not None:
        lines.append(f"bimodality    address {bimodality['address']:.2f}, code {bimodality['code']:.2f}")
    lines.append(f"addresses     {about['addresses']['distinct']} distinct of 2^{model['address_bits']}")
    for bucket, n in about["addresses"]["histogram"].items():
        lines.append(f"  {n} holding {bucket} document{'' if bucket == '1' else 's'}")
    return "\n".join(lines)


def per_document(about: dict) -> str:
    """The file's bytes per document, and those of the documents alone (without the
    model, whose size does not grow with them)."""
    n, total, model = about["documents"], about["size_bytes"], about["model_bytes"]
    if not n:
        return f"{size(total)}, no documents"
    return f"{total / n:,.0f} bytes per document; {(total - model) / n:,.0f} without the model's {size(model)}"


def size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def address_digits(idx) -> int:
    return (int(idx.meta["address_bits"]) + 3) // 4


def hit_row(hit, address_digits: int) -> dict:
    return {
        "id": hit.id,
        "path": hit.path,
        "label": ",".join(hit.labels),
        "distance": hit.distance,
        "score": hit_row_value("score", hit),
        "address": format(hit.address, f"0{address_digits}x"),
        "title": hit.title,
    }


def hit_row_value(column: str, hit):
    """A hit's distance, or its score to 4 decimals (None: ranked by codes alone)."""
    if column == "distance":
        return hit.distance
    return None if hit.score is None else round(hit.score, 4)


def emit_hits(idx, hits, fmt: str | None, fields: list[str], no_headers: bool) -> None:
    """Print hits and exit: 0 with hits, 1 without."""
    digits = address_digits(idx)
    rows = [hit_row(h, digits) for h in hits]
    if fmt == "table":
        import shutil

        from semhash.table import hit_table

        ranked_by = "score" if all(row["score"] is not None for row in rows) else "distance"
        lines = hit_table(rows, ranked_by, shutil.get_terminal_size().columns)
        if lines:
            click.echo("\n".join(lines))
    else:
        emit(rows, fmt, fields, no_headers)
    sys.exit(0 if hits else 1)


def emit_chunks(chunks, fmt: str | None, columns: list[str], no_headers: bool = False) -> int:
    """:func:`emit` each list of rows as it comes (one header; a JSON array waits
    for all); return how many rows there were."""
    kept: list[dict] = []
    n_rows = 0
    for rows in chunks:
        if fmt == "json":
            kept += rows
        elif rows:
            emit(rows, fmt, columns, no_headers or n_rows > 0)
        n_rows += len(rows)
    if fmt == "json" or n_rows == 0:
        emit(kept, fmt, columns, no_headers)
    return n_rows


def emit(rows: list[dict], fmt: str | None, columns: list[str], no_headers: bool = False) -> None:
    """Write rows to stdout: TSV without a header (default), NDJSON (``nl``), a JSON
    array (``json``), or CSV/TSV with a header row (``csv``/``tsv``)."""
    if fmt == "json":
        click.echo(json.dumps([{c: row[c] for c in columns} for row in rows], indent=2) if rows else "[]")
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not no_headers:
            writer.writerow(columns)
        writer.writerows([[csv_cell(row[c]) for c in columns] for row in rows])
        click.echo(out.getvalue(), nl=False)
        return
    # one write: echoing row by row cost seconds on 750k rows
    if fmt == "nl":
        lines = [json.dumps({c: row[c] for c in columns}) for row in rows]
    else:
        lines = ["\t".join(columns)] if fmt == "tsv" and not no_headers else []
        lines += ["\t".join(tsv_cell(row[c]) for c in columns) for row in rows]
    if lines:
        click.echo("\n".join(lines))


# The default output and --tsv are read by cut, awk and `read`: one row a line, one
# cell a TAB, nothing quoted (CSV's quotes were read by none of them). So a cell's
# own backslash, TAB, LF, CR, NUL and other control characters are written as
# backslash escapes, as PostgreSQL's COPY text format writes them: an id holding a
# TAB or a newline keeps its row whole, and the escape undoes exactly.
CONTROL_ESCAPES = str.maketrans(
    {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
    | {chr(c): f"\\x{c:02x}" for c in [*range(1, 32), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r"}
)
_TSV_ESCAPES = {ord("\\"): "\\\\"} | CONTROL_ESCAPES


def tsv_cell(value) -> str:
    """A cell of the default output or --tsv: empty for None, control characters escaped."""
    return "" if value is None else str(value).translate(_TSV_ESCAPES)


# CSV is what spreadsheets open, and they run a cell that begins with one of these
# as a formula (OWASP's "CSV injection"): such a text cell gets a leading ', which
# they show as text. Numbers are left alone; --tsv, --nl and --json stay verbatim.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value
