"""The options the CLI's commands share (the index file, limits, distance bounds,
labels, output formats), as decorators, with the checks of their values.

Imports only click and the standard library (see :mod:`semhash.cli`).
"""

from __future__ import annotations

import functools
import sys

import click

HIT_FIELDS = ("id", "path", "label", "distance", "score", "address", "title")
ENCODE_FIELDS = ("id", "address", "code", "known_words")


def _not_empty(ctx, param, value):
    # An empty path is the current folder to pathlib: `index -d ""` said "no index at .".
    if value == "":
        raise click.BadParameter("the path is empty: name the index file")
    return value


def database_option(f):
    return click.option(
        "-d",
        "--database",
        envvar="SEMHASH_DB",
        default="semhash.db",
        show_default=True,
        type=click.Path(dir_okay=False),
        callback=_not_empty,
        help="Index file (env SEMHASH_DB).",
    )(f)


def silent_option(f):
    return click.option("-s", "--silent", is_flag=True, help="No progress bars or summary on stderr.")(f)


def limit_option(f):
    return click.option(
        "-n", "--limit", default=10, show_default=True, type=click.IntRange(min=1), help="Number of results."
    )(f)


def compact_option(f):
    return click.option(
        "--compact/--no-compact", default=None,
        help="Keep only what a search by codes needs (no word counts, TF-IDF vectors, neighbours or postings): a "
        "smaller file whose queries rank by codes alone. A rebuild keeps the index's kind unless told; a new index is full.",
    )(f)


def cluster_options(f):
    """``--workers``/``--scheduler``: where a build's counting and encoding run; the
    command gets them as one ``cluster`` dict of :func:`semhash.api.build_index`'s
    arguments."""

    @functools.wraps(f)
    def with_cluster(*args, workers, scheduler, **kwargs):
        if workers is not None and scheduler is not None:
            raise click.UsageError("--workers starts a Dask cluster and --scheduler names one: give either, not both")
        return f(*args, cluster={"workers": workers, "scheduler": scheduler}, **kwargs)

    with_cluster = click.option(
        "--scheduler", metavar="ADDRESS",
        help="The same on the running Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); its workers need this semhash.",
    )(with_cluster)
    return click.option(
        "--workers", type=click.IntRange(min=1), metavar="N",
        help="Tokenize, count and encode the documents of a build on a Dask cluster of N worker processes on this "
        "machine (pip install 'semantic-hashing[dask]'); the same index, bit for bit in its codes. Updates run in this process.",
    )(with_cluster)


def skip_bad_lines_option(f):
    return click.option(
        "--skip-bad-lines", is_flag=True, help="Skip malformed JSON lines on stdin (counted) instead of stopping."
    )(f)


def check_distances(min_distance, max_distance) -> None:
    if min_distance is not None and max_distance is not None and min_distance > max_distance:
        raise click.UsageError(f"--min-distance {min_distance} is greater than --max-distance {max_distance}")


def distance_options(f):
    """``--min-distance``/``--max-distance``: keep hits within those code distances."""
    f = click.option(
        "--max-distance", type=click.IntRange(min=0), help="Only hits at most this many bits away."
    )(f)
    return click.option(
        "--min-distance", type=click.IntRange(min=0), help="Only hits at least this many bits away."
    )(f)


def as_stored(ctx, param, value):
    """An argument as the index stores names: bytes that are not UTF-8 (a file's real
    name, `$'\\xff'`) reach Python as lone surrogates, which SQLite refused with a
    traceback; like an indexed file name they are read as ``\\xNN``."""
    from semhash.corpus import _storable

    if value is None:
        return None
    return tuple(map(_storable, value)) if isinstance(value, tuple) else _storable(value)


def label_option(f):
    """``--label``, repeatable: keep hits carrying at least one of the labels."""
    return click.option(
        "-l", "--label", "labels", multiple=True, metavar="LABEL", callback=as_stored,
        help="Only hits with this label (a file's folder name); repeat for any of several.",
    )(f)


def output_options(
    fields: tuple[str, ...] = HIT_FIELDS, default: tuple[str, ...] = ("id", "distance"), table: bool = False
):
    """The output options every listing command shares.

    Adds ``fmt`` (None for the default header-less TSV, or nl/json/csv/tsv),
    ``no_headers`` and ``fields`` (the list of columns) to the command's arguments.
    With ``table``, ``fmt`` is ``"table"`` when stdout is a terminal and neither a
    format nor ``--fields`` was given: a person reads the hits, no script does.
    """

    def parse_fields(ctx, param, value):
        if value is None:
            return list(default)
        chosen = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in fields]
        if unknown or not chosen:
            raise click.BadParameter(
                f"{', '.join(unknown) or 'nothing'} is not a field; choose among {','.join(fields)}"
            )
        return chosen

    def decorator(f):
        # One flag each, not four flag_values of one option: click let the last of
        # those win silently, so `--json ... --csv` printed CSV to a JSON reader.
        @functools.wraps(f)
        def with_format(*args, **kwargs):
            given = [name for name in ("nl", "json", "csv", "tsv") if kwargs.pop(f"fmt_{name}")]
            if len(given) > 1:
                raise click.UsageError(f"{' and '.join('--' + g for g in given)} both given: choose one output format")
            fmt = given[0] if given else None
            if fmt is None and table and is_default(click.get_current_context(), "fields") and _stdout_is_terminal():
                fmt = "table"
            return f(*args, fmt=fmt, **kwargs)

        options = [
            click.option("--nl", "fmt_nl", is_flag=True, help="One JSON object per line."),
            click.option("--json", "fmt_json", is_flag=True, help="One JSON array."),
            click.option("--csv", "fmt_csv", is_flag=True, help="CSV with a header row (for spreadsheets: a text cell starting with = + - @ gets a leading ')."),
            click.option("--tsv", "fmt_tsv", is_flag=True, help="TSV with a header row (as the default output: no quotes, control characters as \\t \\n \\\\ ...)."),
            click.option("--no-headers", is_flag=True, help="Leave out the header row of --csv/--tsv."),
            click.option(
                "--fields",
                callback=parse_fields,
                metavar="LIST",
                help=f"Comma-separated columns among {','.join(fields)} [default: {','.join(default)}].",
            ),
        ]
        for option in reversed(options):
            with_format = option(with_format)
        return with_format

    return decorator


def is_default(ctx, name: str) -> bool:
    """Whether the option ``name`` kept its default (was not given)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()
