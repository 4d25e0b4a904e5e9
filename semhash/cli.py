"""The ``semhash`` command: a thin layer over :mod:`semhash.api`.

Only click and the standard library are imported at module level, so ``--help`` is
instant; numpy, numba and friends load inside the commands that need them.
Data goes to stdout, progress and summaries to stderr. Exit status: 0 with hits,
1 with none (like grep), 2 on errors, 130 on Ctrl-C; a listing whose reader left
(`| head`) dies of SIGPIPE, as grep does (141 in a shell).
"""

from __future__ import annotations

import csv
import functools
import gc
import io
import json
import os
import queue
import select
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import click

from semhash import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
HIT_FIELDS = ("id", "path", "label", "distance", "score", "address", "title")
ENCODE_FIELDS = ("id", "address", "code", "known_words")


class SemhashError(click.ClickException):
    """A user-facing error: ``Error: <message>`` on stderr, exit status 2, on one line
    whatever the message quotes (a damaged index's text held a newline, and a
    terminal would run the escape sequences a file name may hold)."""

    exit_code = 2

    def __init__(self, message: str):
        one_line = message.translate(_CONTROL_ESCAPES).encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(one_line)


class SemhashGroup(click.Group):
    """The root group: turns the library's typed errors, and click's usage errors,
    into one-line ``Error: ...`` messages (exit status 2) for every command, so no
    user sees a traceback, nor click's three-line usage block."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise _one_line(e, info_name) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise _one_line(e, " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))) from None
        except BrokenPipeError:
            # `semhash query ... | head -1`: the reader left; say nothing more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            _aborted()
        except Exception as e:
            if _is_library_error(e):
                raise SemhashError(str(e)) from None
            if _interrupted(e):
                _aborted()
            raise


def _aborted():
    """Ctrl-C: click's own "Aborted!" exits 1, which here means "no hits"; 130 is
    what a shell reports for a command SIGINT stopped."""
    click.echo("\nAborted!", err=True)
    sys.exit(130)


def _stop_when_stdout_closes() -> None:
    """Die of SIGPIPE as soon as the pipe stdout writes to loses its reader, as
    grep and cat do (141 in a shell, so `set -o pipefail` sees what it sees for
    them), not at the next write: `yes orbit | semhash query - | head -1` went on
    answering a whole batch after head had left, and a numba kernel under way
    cannot be stopped by an exception, only by a signal. A thread polls the pipe
    (Linux reports POLLERR on a pipe without a reader). Only for the commands that
    print data: nothing is written then that a kill could leave half done."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):  # CliRunner's stdout, or none at all
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or not hasattr(signal, "SIGPIPE") or not hasattr(select, "poll"):
        return
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a write to the closed pipe kills too

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked: POLLERR and POLLHUP always come
        while True:
            for _, event in poller.poll():
                if event & select.POLLNVAL:  # stdout closed by ourselves: nothing to watch
                    return
                os.kill(os.getpid(), signal.SIGPIPE)

    threading.Thread(target=watch, daemon=True).start()


def _interrupted(e: BaseException) -> bool:
    """Whether Ctrl-C caused ``e``: a numba kernel that calls back into Python
    while the interrupt is pending turns it into a SystemError ("returned a
    result with an exception set"), the KeyboardInterrupt as its cause."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _one_line(e: click.UsageError, command_path: str) -> click.UsageError:
    """A usage error as one line, with where to read more (bare ``semhash``, whose
    "error" is the help text, stays as it is). ``command_path``: the command's,
    for errors raised without their context ("Option '-n' requires an argument.")."""
    if isinstance(e, click.exceptions.NoArgsIsHelpError):
        return e
    message = e.format_message().rstrip()
    where = f" See '{e.ctx.command_path if e.ctx is not None else command_path} -h'."
    return SemhashError(f"{message}{'' if message.endswith(('.', '?')) else '.'}{where}")  # not "Did you mean '--bits'?."


def _is_library_error(e: Exception) -> bool:
    if isinstance(e, OSError):
        return True
    api = sys.modules.get("semhash.api")  # if it is not loaded, it raised nothing
    return api is not None and isinstance(e, api.ERRORS)


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


def skip_bad_lines_option(f):
    return click.option(
        "--skip-bad-lines", is_flag=True, help="Skip malformed JSON lines on stdin (counted) instead of stopping."
    )(f)


def _check_distances(min_distance, max_distance) -> None:
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


def _as_stored(ctx, param, value):
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
        "-l", "--label", "labels", multiple=True, metavar="LABEL", callback=_as_stored,
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
            if fmt is None and table and _default(click.get_current_context(), "fields") and _stdout_is_terminal():
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


def _default(ctx, name: str) -> bool:
    """Whether the option ``name`` kept its default (was not given)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


@click.group(cls=SemhashGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="semhash")
def cli():
    """Search documents by meaning with semantic hashing: binary codes learned by a
    deep autoencoder, looked up by Hamming distance, stored in one SQLite file.

    \b
    Example:
        semhash index corpora/20news-sample/train
        semhash query "nasa shuttle launch orbit"
        semhash similar sci.space/60804 --fields id,distance,title

    \b
    Shell completion (bash; use zsh_source or fish_source for those shells):
        eval "$(_SEMHASH_COMPLETE=bash_source semhash)"
    """
    from semhash import lazy

    lazy.skip_blas_probe = True  # this process is ours: no import races with the load


@cli.command()
@click.argument("paths", nargs=-1)
@database_option
@click.option(
    "--files-from",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),  # opened below: names need not be UTF-8
    metavar="FILE",
    help="Also index the files listed in FILE, one path per line or NUL-separated as find -print0 writes (- for stdin); their ids are relative to the current directory.",
)
@click.option(
    "--prune", is_flag=True,
    help="Remove indexed documents under PATHS that are gone; with --files-from, those listed before but not now.",
)
@click.option("--yes", is_flag=True, help="Let --prune remove more than half of the index's documents.")
@click.option("--retrain", is_flag=True, help="Train a new model and re-encode everything instead of updating.")
@click.option("--vocab-size", default=2000, show_default=True, type=click.IntRange(2, 1_000_000), help="Words kept.")
@click.option("--address-bits", default=28, show_default=True, type=click.IntRange(1, 63), help="Width of the address code.")
@click.option("--code-bits", default=256, show_default=True, type=click.IntRange(1, 4096), help="Width of the long code.")
@click.option("--hidden", default="500,250,125", show_default=True, help="Hidden layer sizes, comma-separated.")
@click.option("--epochs-pretrain", default=10, show_default=True, type=click.IntRange(min=0), help="CD-1 epochs per RBM.")
@click.option("--epochs-finetune", default=20, show_default=True, type=click.IntRange(min=0), help="Backprop epochs per code.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1), help="Random seed (same seed, same index).")
@click.option(
    "--stem/--no-stem", default=True, show_default=True,
    help='Count words by their Snowball English stem ("images", "imaging" -> "imag"); queries are stemmed alike.',
)
@click.option(
    "--train-sample", default=20_000, show_default=True, type=click.IntRange(min=10), metavar="N",
    help="Train on at most N documents drawn at random (seeded) and only encode the others: a large corpus then costs a fixed training time plus a linear pass.",
)
@click.option(
    "--max-bytes", default=10_000_000, show_default=True, type=click.IntRange(min=1),
    help="Read at most this many bytes of each file; longer files are cut and counted as truncated.",
)
@skip_bad_lines_option
@click.option("--wait", is_flag=True, help="If another `semhash index` is writing the index, wait for it instead of failing.")
@silent_option
@click.option("-v", "--verbose", is_flag=True, help="A progress bar per model layer, with its training loss, instead of one for the training.")
@click.pass_context
def index(ctx, paths, database, files_from, prune, yes, retrain, max_bytes, skip_bad_lines, wait, silent, verbose, hidden, train_sample, **model):
    """Index documents: train a model on them, or update an existing index.

    PATHS are directories (walked recursively; every text file is a document, its id
    the path relative to the directory, its label the parent folder's name), files,
    or - for JSON lines on stdin: {"id": ..., "text": ..., "labels": [...]}.

    If the index exists, it is updated with its own model (no retraining): new
    documents are added, changed ones re-encoded, unchanged ones skipped;
    --prune also removes the documents that are gone (more than half of them
    only with --yes). --retrain builds it again
    from PATHS alone and says how far the vocabulary has drifted.

    The index is changed in one transaction (interrupted, it stays as it was) and
    queries keep working meanwhile. One run writes at a time: a second fails at
    once, or waits with --wait.

    \b
    Example:
        semhash index corpora/20news-sample/train
        semhash index --prune corpora/20news-sample/train
        git ls-files '*.md' | semhash index -d docs.db --files-from -
        jq -c '{id, text}' posts.json | semhash index -
        semhash index --train-sample 50000 big-corpus/
    """
    from semhash.api import PRUNE_LIMIT, index_documents

    if not paths and files_from is None:
        raise click.UsageError("nothing to index: give PATHS, or --files-from FILE")
    if "-" in paths and files_from == "-":
        raise click.UsageError("stdin holds either JSON lines (-) or a list of files (--files-from -), not both")
    if files_from == "-" and sys.stdin is None:
        from semhash.corpus import STDIN_CLOSED

        raise SemhashError(STDIN_CLOSED)
    if files_from is not None:  # file names, not text: bytes that are not UTF-8 read as os.walk reads them
        files_from = ctx.with_resource(click.open_file(files_from, errors="surrogateescape"))
    options = _explicit_model_options(ctx, hidden, model)
    summary = index_documents(
        paths, database, files=files_from, retrain=retrain, prune=prune, prune_limit=None if yes else PRUNE_LIMIT,
        verbose=0 if silent else 2 if verbose else 1,
        max_bytes=max_bytes, skip_bad_lines=skip_bad_lines, wait=wait, train_sample=train_sample, **options,
    )
    if not silent:
        click.echo(f"{summary.line()} -> {database}", err=True)


def _explicit_model_options(ctx, hidden: str, model: dict) -> dict:
    """The model options given on the command line, named as ``build_index`` names
    them: the others keep the library's defaults, and only these are checked
    against an existing index's model."""
    names = {
        "vocab_size": "vocab_size", "address_bits": "address_bits", "code_bits": "code_bits",
        "epochs_pretrain": "n_epochs_pretrain", "epochs_finetune": "n_epochs_finetune", "seed": "random_state",
        "stem": "stem",
    }
    given = {
        names[name]: value
        for name, value in model.items()
        if not _default(ctx, name)
    }
    if not _default(ctx, "hidden"):
        try:
            sizes = tuple(int(x) for x in hidden.split(",") if x.strip())
            if not sizes or min(sizes) < 1 or max(sizes) > 100_000:
                raise ValueError
        except ValueError:
            raise click.BadParameter(
                f"expected integers from 1 to 100000 separated by commas, got {hidden!r}", param_hint="--hidden"
            )
        given["hidden_sizes"] = sizes
    return given


@cli.command()
@click.argument("words", metavar="TEXT...", nargs=-1, required=True, callback=_as_stored)
@database_option
@limit_option
@distance_options
@label_option
@output_options(table=True)
@click.option("--jsonl", "jsonl_in", is_flag=True, help='With TEXT "-": each stdin line is a document {"id": ..., "text": ...}, encoded as indexing encodes documents (short plain-text queries are read as a typical-length document).')
@click.option("--codes-only", is_flag=True, help="Rank the Hamming ball by code distance alone, not by words and codes: faster, less precise.")
@skip_bad_lines_option
@silent_option
def query(words, database, limit, min_distance, max_distance, labels, fmt, no_headers, fields, jsonl_in, codes_only, skip_bad_lines, silent):
    """Find the documents nearest in meaning to TEXT.

    Several words need no quotes: they are joined with spaces, as `apt-cache
    search` joins them. The codes choose the neighbourhood, the documents holding
    the query's rarest words join it, and words and codes rank them. On a
    terminal, prints a table, best first: rank, score (what ranks the hits,
    higher is better: word similarity plus the neighbours' share, less a little
    per differing bit; with --codes-only the distance ranks instead), id and
    title. Piped, or with a format or --fields, prints id<TAB>distance lines
    (distance: differing bits of the long codes; it need not ascend). TEXT "-" reads one query per stdin line,
    answered as they come; each hit is then a row
    query<TAB>rank<TAB>id<TAB>distance (query = line number, or the id with --jsonl).
    Exit status 1 when nothing is found, including a query made only of stop
    words or words the index does not know (--json then prints []).

    \b
    Example:
        semhash query "nasa shuttle launch orbit" -n 5
        semhash query pdf viewer
        semhash query --json "goalie trade playoffs" | jq -r '.[].id'
        semhash query "image formats" --fields id,score,title --max-distance 40
        semhash query "orbit" --label sci.space --label sci.med
        cat questions.txt | semhash query - --nl
    """
    from semhash.api import Index

    text = " ".join(words)  # a lone "-" stays stdin; "a - b" is three words
    _check_distances(min_distance, max_distance)
    _stop_when_stdout_closes()
    if jsonl_in and text != "-":
        raise click.UsageError('--jsonl needs TEXT to be "-" (queries on stdin)')
    idx = Index.open(database)
    options = {"min_distance": min_distance, "max_distance": max_distance, "codes_only": codes_only, "labels": labels or None}
    if text == "-":
        fmt = None if fmt == "table" else fmt  # a stream of answers keeps its rows on a terminal too
        batches = _batch_query(idx, limit, options, jsonl_in, skip_bad_lines)
        with _no_cyclic_gc():
            n_rows = _emit_batches(batches, fmt, fields, no_headers, _address_digits(idx))
        sys.exit(0 if n_rows else 1)
    with _no_words_is_no_hits(fmt):
        hits = idx.query(text, limit, **options)
    _emit_hits(idx, hits, fmt, fields, no_headers)


@contextmanager
def _no_cyclic_gc():
    """Python's cycle collector off for the block (reference counting still frees).

    For batches: 7,532 queries x 100 hits build about a million small objects, and
    the collector's passes over them made a codes-only batch take 7.0 s instead of
    4.7 s (medians of 5 runs; gc.callbacks: 9 full passes, 1.3 s). The query path
    makes no cycles: as many objects are unreachable at the end after 500 queries
    as after 7,532 (a few hundred, from imports), so nothing piles up meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _no_words_is_no_hits:
    """A query without a known word finds nothing: say why on stderr, print what an
    empty result prints (``[]`` with --json), exit 1 (as grep does without a match)."""

    def __init__(self, fmt: str | None):
        self.fmt = fmt

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from semhash.api import EmptyQuery

        if exc_type is None or not issubclass(exc_type, EmptyQuery):
            return False
        if self.fmt == "json":
            click.echo("[]")
        click.echo(f"warning: {exc}", err=True)
        sys.exit(1)


def _batch_query(idx, limit: int, options: dict, jsonl_in: bool, skip_bad_lines: bool):
    """Answer one query per stdin line, up to ``BATCH_QUERIES`` lines at a time
    (the first ``FIRST_BATCH``: see :func:`_ready_batches`; bounded memory,
    output as it comes), and whatever has come once stdin
    pauses (see :func:`_ready_batches`): yields each batch's answered queries as
    ``(name, hits)`` pairs (name: the line number, or the id with ``jsonl_in``)."""
    from semhash.corpus import DEFAULT_MAX_BYTES, iter_jsonl, stdin_lines

    lines = stdin_lines(None, own_reader=True, max_bytes=DEFAULT_MAX_BYTES)  # a query is no longer than a document

    if jsonl_in:
        warn = (lambda e: click.echo(f"warning: {e.args[0].split('; ')[0]}, skipped", err=True)) if skip_bad_lines else None
        queries = ((d.id, d.text) for d in iter_jsonl(lines, on_error=warn))
    else:
        queries = ((n, line.rstrip("\r\n")) for n, line in enumerate(lines, 1))
    for batch in _ready_batches(queries, BATCH_QUERIES, FIRST_BATCH):
        names, texts = zip(*batch)
        # JSON lines are documents (encoded as indexing did); plain lines are queries.
        results = idx.query_many(list(texts), limit, skip_empty=True, documents=jsonl_in, **options)
        answered = []
        for name, hits in zip(names, results):
            if hits is None:
                click.echo(f"warning: query {name} has no words in the index vocabulary, skipped", err=True)
            else:
                answered.append((name, hits))
        yield answered


def _emit_batches(batches, fmt: str | None, fields: list[str], no_headers: bool, address_digits: int) -> int:
    """Print the hits of :func:`_batch_query`'s batches, one row per hit (query and
    rank first); return how many rows there were."""
    if fmt in (None, "nl") and len(set(fields)) == len(fields):
        lines = _HitLines(fmt == "nl", fields, address_digits)
        n_rows = 0
        for answered in batches:
            text = lines.format(answered)
            if text:
                click.echo("\n".join(text))
                n_rows += len(text)
        return n_rows
    rows = (
        [{"query": name, "rank": r, **_hit_row(h, address_digits)} for name, hits in answered for r, h in enumerate(hits, 1)]
        for answered in batches
    )
    return _emit_chunks(rows, fmt, ["query", "rank", *fields], no_headers)


class _HitLines:
    """The lines :func:`_emit` prints for hit rows (header-less TSV, or JSON lines),
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
        return _tsv_cell(value)

    def _document(self, hit) -> list[str]:
        """The row's text before, between and after its per-hit cells' values."""
        row = _hit_row(hit, self.digits)
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
        value = _hit_row_value(column, hit)
        return json.dumps(value) if self.as_json else ("" if value is None else str(value))

    def format(self, answered) -> list[str]:
        cells, document, sep, value = self.cells, self._document, self.sep, self._value
        only_distance = self.per_hit == ["distance"]  # the default: one f-string a hit
        out = []
        for name, hits in answered:
            start = f'{{"query": {json.dumps(name)}, "rank": ' if self.as_json else f"{_tsv_cell(name)}\t"
            end = "}" if self.as_json else ""
            for rank, hit in enumerate(hits, 1):
                pieces = cells.get(hit.id) or cells.setdefault(hit.id, document(hit))
                if only_distance:
                    out.append(f"{start}{rank}{sep}{pieces[0]}{hit.distance}{pieces[1]}{end}")
                else:
                    row = "".join(value(c, hit) + p for c, p in zip(self.per_hit, pieces[1:]))
                    out.append(f"{start}{rank}{sep}{pieces[0]}{row}{end}")
        return out


BATCH_QUERIES = 10_000  # stdin lines answered at once by `semhash query -`, at most
#: The first batch's size; the next ones are full. The first answers of a busy
#: stdin (`yes x | semhash query - | head -1`) wait for 16 queries, not 10,000
#: (several seconds). Not doubling up to 10,000: each batch reads its shortlists'
#: vectors again, and the 7,532 20NG posts in 9 batches took 1.28x as long.
FIRST_BATCH = 16
STDIN_PAUSE = 0.05  # seconds without a new line after which the lines read are answered
STDIN_WAIT = 0.5  # seconds the first line of a batch waits at most, however busy stdin is


def _ready_batches(items: Iterable, size: int, first: int | None = None) -> Iterator[list]:
    """Lists of ``items``, the first of at most ``first`` (default: ``size``), the
    next ones of at most ``size``; each as soon as it is full, or the
    items pause for :data:`STDIN_PAUSE` seconds, or its first item has waited
    :data:`STDIN_WAIT` seconds: `tail -f questions | semhash query -` and a person
    typing get each answer at once, where a batch of 10,000 lines waited for them
    all. A thread reads the items (stdin, parsed) meanwhile, at most two batches
    ahead (a file's lines are there at once: its batches still fill); its errors (a
    bad JSON line) are raised here, in order."""
    ahead: queue.Queue = queue.Queue(maxsize=2 * size)
    done = object()

    def read() -> None:
        try:
            for item in items:
                ahead.put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the reader below
            ahead.put(_Raised(e))
        ahead.put(done)

    threading.Thread(target=read, daemon=True).start()
    batch: list = []
    deadline = 0.0
    limit = min(first or size, size)
    while True:
        try:
            wait = min(STDIN_PAUSE, deadline - time.monotonic()) if batch else None
            item = ahead.get(timeout=wait) if wait is None or wait > 0 else ahead.get_nowait()
        except queue.Empty:
            yield batch
            batch = []
            continue
        if item is done:
            break
        if isinstance(item, _Raised):
            if batch:
                yield batch
            raise item.error
        if not batch:
            deadline = time.monotonic() + STDIN_WAIT
        batch.append(item)
        if len(batch) >= limit:
            yield batch
            batch = []
            limit = size
    if batch:
        yield batch


class _Raised(NamedTuple):
    error: BaseException


@cli.command()
@click.argument("doc_id", metavar="[ID]", required=False, callback=_as_stored)
@click.option(
    "-f", "--file", "file_", type=click.Path(dir_okay=False, allow_dash=True),
    help="Neighbours of this file (- for stdin) instead of an indexed document.",
)
@database_option
@limit_option
@distance_options
@label_option
@output_options(table=True)
def similar(doc_id, file_, database, limit, min_distance, max_distance, labels, fmt, no_headers, fields):
    """Find the documents nearest to a document: the indexed document ID, or any
    file with --file. The document itself is left out.

    Ranked as `semhash query` ranks; prints the same table on a terminal (rank,
    score, id, title) and the same id<TAB>distance lines when piped.

    \b
    Example:
        semhash similar sci.space/60804 -n 5
        semhash similar --file draft.txt --fields id,distance,title
        semhash similar sci.space/60804 --label sci.space
        semhash query "orbit" -n 1 | cut -f1 | xargs semhash similar
    """
    from semhash.api import Index
    from semhash.corpus import stdin_text

    if (doc_id is None) == (file_ is None):
        raise click.UsageError("give either an indexed document's ID or --file PATH")
    _check_distances(min_distance, max_distance)
    _stop_when_stdout_closes()
    idx = Index.open(database)
    filters = {"min_distance": min_distance, "max_distance": max_distance, "labels": labels or None}
    with _no_words_is_no_hits(fmt):
        if doc_id is not None:
            hits = idx.similar(doc_id, limit, **filters)
        elif file_ == "-":
            hits = idx.similar_to_text(stdin_text(), limit, **filters)
        else:
            hits = idx.similar_to_file(file_, limit, **filters)
    _emit_hits(idx, hits, fmt, fields, no_headers)


@cli.command()
@click.argument("paths", nargs=-1)
@database_option
@click.option("--bits", "binary", is_flag=True, help="Codes as 0/1 digits (the same numbers in base 2) instead of hex.")
@output_options(ENCODE_FIELDS, default=("id", "address", "code"))
@skip_bad_lines_option
def encode(paths, database, binary, fmt, no_headers, fields, skip_bad_lines):
    """Print the codes of documents, computed with the index's model.

    PATHS are read as `semhash index` reads them (directories, files, or - for JSON
    lines on stdin, the default). Prints id<TAB>address<TAB>code, each code in hex,
    most significant digit first; known_words counts the document's words in the
    vocabulary (0: the code means nothing).

    \b
    Example:
        semhash encode notes/todo.txt
        echo '{"id": "q", "text": "shuttle orbit"}' | semhash encode --bits
        semhash encode corpora/20news-sample/test --csv --fields id,code,known_words
    """
    from semhash.api import Index
    from semhash.corpus import ReadStats

    _stop_when_stdout_closes()
    idx = Index.open(database)
    stats = ReadStats()

    def chunks():  # a million rows need not sit in memory
        rows = []
        for encoded in idx.encode_documents(paths or ("-",), binary=binary, skip_bad_lines=skip_bad_lines, stats=stats):
            if encoded.known_words == 0:
                click.echo(f"warning: {_tsv_cell(encoded.id)} has no words in the index vocabulary: its code means nothing", err=True)
            rows.append(dict(vars(encoded)))  # flat str/int fields: asdict's deep copy cost 12 us a row
            if len(rows) == ENCODE_CHUNK:
                yield rows
                rows = []
        yield rows

    n_rows = _emit_chunks(chunks(), fmt, fields, no_headers)
    for lineno in stats.bad_lines:
        click.echo(f"warning: line {lineno} of stdin is not a valid document, skipped", err=True)
    if stats.n_binary or stats.n_unreadable:  # else `semhash encode image.png` exits 1 without a word
        skipped = stats.n_binary + stats.n_unreadable
        click.echo(
            f"warning: skipped {skipped} file{'s' * (skipped != 1)} ({stats.n_binary} binary, {stats.n_unreadable} unreadable)",
            err=True,
        )
    sys.exit(0 if n_rows else 1)


ENCODE_CHUNK = 10_000  # rows of `semhash encode` printed at once


@cli.command()
@database_option
@click.option("--json", "json_", is_flag=True, help="Print one JSON object.")
def info(database, json_):
    """Describe an index: documents, labels, vocabulary, model, address occupancy.

    The address histogram counts the addresses that hold 1 document, 2-3, 4-7, ...:
    a search reads whole addresses, so crowded ones make it slower and coarser.

    \b
    Example:
        semhash info -d sample.db
        semhash info --json | jq .labels
    """
    from semhash.api import Index

    with Index.open(database) as idx:
        about = idx.info()
    click.echo(json.dumps(about, indent=2) if json_ else _info_text(about))


def _ranking(about: dict) -> str:
    """What ranks the shortlist, as `semhash info` says it."""
    if not about.get("terms"):
        return "codes alone (built before ranking by words: `semhash index --retrain` adds them)"
    neighbours = f"{about['neighbours']} neighbours each" if about.get("neighbours") else "no neighbours yet"
    return f"words ({about['terms']:,} terms), {neighbours} and codes"


def _info_text(about: dict) -> str:
    model = about["model"]
    bimodality = about["bimodality"]
    labels = ", ".join(f"{label} {n}" for label, n in about["labels"].items()) or "(none)"
    lines = [
        f"database      {about['database']} ({_size(about['size_bytes'])}, schema {about['schema_version']})",
        f"created       {about['created']} by semhash {about['semhash_version']}"
        + (f", updated {about['updated']}" if about.get("updated") else ""),
        f"documents     {about['documents']}",
        f"labels        {labels}",
        f"vocabulary    {about['vocabulary_size']} words, {'Snowball-stemmed' if about.get('stem') else 'not stemmed'}"
        + (f" ({about['oov_share']:.1%} of the corpus's words outside)" if about.get("oov_share") is not None else "")
        + f"; reads {about['reads']}",
        f"ranking       {_ranking(about)}",
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


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _address_digits(idx) -> int:
    return (int(idx.meta["address_bits"]) + 3) // 4


def _hit_row(hit, address_digits: int) -> dict:
    return {
        "id": hit.id,
        "path": hit.path,
        "label": ",".join(hit.labels),
        "distance": hit.distance,
        "score": _hit_row_value("score", hit),
        "address": format(hit.address, f"0{address_digits}x"),
        "title": hit.title,
    }


def _hit_row_value(column: str, hit):
    """A hit's distance, or its score to 4 decimals (None: ranked by codes alone)."""
    if column == "distance":
        return hit.distance
    return None if hit.score is None else round(hit.score, 4)


def _emit_hits(idx, hits, fmt: str | None, fields: list[str], no_headers: bool) -> None:
    """Print hits and exit: 0 with hits, 1 without."""
    digits = _address_digits(idx)
    rows = [_hit_row(h, digits) for h in hits]
    if fmt == "table":
        import shutil

        from semhash.table import hit_table

        ranked_by = "score" if all(row["score"] is not None for row in rows) else "distance"
        lines = hit_table(rows, ranked_by, shutil.get_terminal_size().columns)
        if lines:
            click.echo("\n".join(lines))
    else:
        _emit(rows, fmt, fields, no_headers)
    sys.exit(0 if hits else 1)


def _emit_chunks(chunks, fmt: str | None, columns: list[str], no_headers: bool = False) -> int:
    """:func:`_emit` each list of rows as it comes (one header; a JSON array waits
    for all); return how many rows there were."""
    kept: list[dict] = []
    n_rows = 0
    for rows in chunks:
        if fmt == "json":
            kept += rows
        elif rows:
            _emit(rows, fmt, columns, no_headers or n_rows > 0)
        n_rows += len(rows)
    if fmt == "json" or n_rows == 0:
        _emit(kept, fmt, columns, no_headers)
    return n_rows


def _emit(rows: list[dict], fmt: str | None, columns: list[str], no_headers: bool = False) -> None:
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
        writer.writerows([[_csv_cell(row[c]) for c in columns] for row in rows])
        click.echo(out.getvalue(), nl=False)
        return
    # one write: echoing row by row cost seconds on 750k rows
    if fmt == "nl":
        lines = [json.dumps({c: row[c] for c in columns}) for row in rows]
    else:
        lines = ["\t".join(columns)] if fmt == "tsv" and not no_headers else []
        lines += ["\t".join(_tsv_cell(row[c]) for c in columns) for row in rows]
    if lines:
        click.echo("\n".join(lines))


# The default output and --tsv are read by cut, awk and `read`: one row a line, one
# cell a TAB, nothing quoted (CSV's quotes were read by none of them). So a cell's
# own backslash, TAB, LF, CR, NUL and other control characters are written as
# backslash escapes, as PostgreSQL's COPY text format writes them: an id holding a
# TAB or a newline keeps its row whole, and the escape undoes exactly.
_CONTROL_ESCAPES = str.maketrans(
    {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
    | {chr(c): f"\\x{c:02x}" for c in [*range(1, 32), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r"}
)
_TSV_ESCAPES = {ord("\\"): "\\\\"} | _CONTROL_ESCAPES


def _tsv_cell(value) -> str:
    """A cell of the default output or --tsv: empty for None, control characters escaped."""
    return "" if value is None else str(value).translate(_TSV_ESCAPES)


# CSV is what spreadsheets open, and they run a cell that begins with one of these
# as a formula (OWASP's "CSV injection"): such a text cell gets a leading ', which
# they show as text. Numbers are left alone; --tsv, --nl and --json stay verbatim.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


@cli.command(name="eval")
@click.argument("queries", nargs=-1, required=True)
@database_option
@click.option("-k", default=100, show_default=True, type=click.IntRange(min=1), help="Cut-off of precision@k and mAP@k.")
@click.option("--shortlist", default=1000, show_default=True, type=click.IntRange(min=1), help="Ball size ranked by TF-IDF in the rerank mode.")
@click.option("--no-baselines", is_flag=True, help="Skip TF-IDF, LSA and LSH.")
@click.option(
    "--lift",
    is_flag=True,
    help="Encode the queries as `semhash query TEXT` encodes a text (short ones lifted towards a typical document's length), not as documents.",
)
@click.option("--json", "json_", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write precision-recall curves to this PNG (needs matplotlib).")
@skip_bad_lines_option
def eval_(queries, database, k, shortlist, no_baselines, lift, json_, plot, skip_bad_lines):
    """Measure retrieval quality against labeled queries.

    QUERIES are laid out like an indexed corpus (labels from folder names), or - for
    JSON lines with "labels". A hit is relevant when it shares a label with its
    query. Reports precision@k and mAP@k of the default query path, of each code
    alone, of the shortlist reranked by TF-IDF, and of TF-IDF, LSA and LSH
    baselines computed in the same run.

    \b
    Example:
        semhash eval -d sample.db corpora/20news-sample/test
        semhash eval -d sample.db corpora/20news-sample/test --json | jq '.methods[0]'
    """
    from semhash.api import Index
    from semhash.corpus import iter_documents
    from semhash.evaluate import evaluate

    if plot:
        _require_matplotlib()
        plot = _check_plot_path(plot)
    docs = [d for d in iter_documents(queries, skip_bad_lines=skip_bad_lines) if d.labels]
    if not docs:
        raise SemhashError("no labeled queries: put them in folders named by label, or give JSON lines with \"labels\"")
    with Index.open(database) as idx:
        report = evaluate(idx, [d.text for d in docs], [d.labels for d in docs], k=k, shortlist=shortlist,
                          baselines=not no_baselines, lift=lift)
    click.echo(json.dumps(report.to_dict(), indent=2) if json_ else report.table())
    if plot:
        from semhash.evaluate import plot_pr

        plot_pr(report, plot)
        click.echo(f"precision-recall curves -> {plot}", err=True)


@cli.command(name="map")
@database_option
@click.option("--plot", type=click.Path(dir_okay=False), required=True, help="PNG file to write (needs matplotlib).")
@click.option("--sample", default=5000, show_default=True, type=click.IntRange(min=10), help="Documents drawn (seeded).")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1), help="Training epochs of the 2-unit model.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1), help="Random seed.")
@silent_option
def map_(database, plot, sample, epochs, seed, silent):
    """Draw the indexed documents in two dimensions, coloured by label.

    Trains a 2-unit code on the index's word counts and plots it beside the first
    two principal components of the same documents (the figure of the semantic
    hashing papers).

    \b
    Example:
        semhash map -d sample.db --plot map.png
    """
    from semhash.api import Index
    from semhash.maps import map_coordinates, plot_map

    _require_matplotlib()
    plot = _check_plot_path(plot)
    with Index.open(database) as idx:
        code_xy, pca_xy, labels = map_coordinates(idx, sample=sample, epochs=epochs, seed=seed, verbose=not silent)
    plot_map(code_xy, pca_xy, labels, plot)
    if not silent:
        click.echo(f"map of {len(labels)} documents -> {plot}", err=True)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SemhashError("plotting needs matplotlib: pip install 'semantic-hashing[plot]' (or pip install matplotlib)")


def _check_plot_path(path: str) -> str:
    """Refuse a --plot file that cannot be written before the work, not after it:
    evaluating or training takes minutes, and matplotlib's refusal of an unknown
    format was a traceback. Returns the file to write: a name without an extension
    gets ``.png``, as matplotlib would add it, so the message names the real file."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if not extension:
        path += ".png"
    elif extension not in formats:
        raise SemhashError(f"cannot write a plot as .{extension}: name it .png, .svg or .pdf (or another format matplotlib writes)")
    folder = os.path.dirname(path) or os.curdir
    if not os.path.isdir(folder):
        raise SemhashError(f"cannot write {path}: no folder {folder}")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise SemhashError(f"cannot write {path}: permission denied")
    return path
