"""The ``semhash`` command: a thin layer over :mod:`semhash.api`.

Only click and the standard library are imported at module level, so ``--help`` is
instant; numpy, numba and friends load inside the commands that need them.
Data goes to stdout, progress and summaries to stderr. Exit status: 0 with hits,
1 with none (like grep), 2 on errors, 130 on Ctrl-C; a listing whose reader left
(`| head`) dies of SIGPIPE, as grep does (141 in a shell). The options the commands
share are in :mod:`semhash.options`, the output formats in :mod:`semhash.output`.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import stat
import sys
import threading
from contextlib import contextmanager

import click

from semhash import batches, options, output
from semhash.version import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class SemhashError(click.ClickException):
    """A user-facing error: ``Error: <message>`` on stderr, exit status 2, on one line
    whatever the message quotes (a damaged index's text held a newline, and a
    terminal would run the escape sequences a file name may hold)."""

    exit_code = 2
    # Unicode's line and paragraph separators end a line too (str.splitlines, editors).
    SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})

    def __init__(self, message: str):
        one_line = message.translate(output.CONTROL_ESCAPES).translate(self.SEPARATORS)
        super().__init__(one_line.encode("utf-8", "backslashreplace").decode("utf-8"))


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
@options.database_option
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
@options.compact_option
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
@options.skip_bad_lines_option
@options.cluster_options
@click.option("--wait", is_flag=True, help="If another `semhash index` is writing the index, wait for it instead of failing.")
@options.silent_option
@click.option("-v", "--verbose", is_flag=True, help="A progress bar per model layer, with its training loss, instead of one for the training.")
@click.pass_context
def index(ctx, paths, database, files_from, prune, yes, retrain, compact, max_bytes, skip_bad_lines, cluster, wait, silent, verbose, hidden, train_sample, **model):
    """Index documents: train a model on them, or update an existing index.

    PATHS are directories (walked recursively; every text file is a document, its id
    the path relative to the directory, its label the parent folder's name), files,
    or - for JSON lines on stdin: {"id": ..., "text": ..., "labels": [...]}.

    If the index exists, it is updated with its own model (no retraining): new
    documents are added, changed ones re-encoded, unchanged ones skipped;
    --prune also removes the documents that are gone (more than half of them
    only with --yes). --retrain builds it again from PATHS alone and says how far
    the vocabulary has drifted.

    The index is changed in one transaction (interrupted, it stays as it was) and
    queries keep working meanwhile. One run writes at a time: a second fails at
    once, or waits with --wait.

    \b
    Example:
        semhash index corpora/20news-sample/train
        semhash index --prune corpora/20news-sample/train
        git ls-files '*.md' | semhash index -d docs.db --files-from -
        jq -c '{id, text}' posts.json | semhash index -
        semhash index --train-sample 50000 --workers 2 big-corpus/
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
    model_options = _explicit_model_options(ctx, hidden, model)
    summary = index_documents(
        paths, database, files=files_from, retrain=retrain, prune=prune, prune_limit=None if yes else PRUNE_LIMIT,
        verbose=0 if silent else 2 if verbose else 1, **cluster,
        max_bytes=max_bytes, skip_bad_lines=skip_bad_lines, wait=wait, train_sample=train_sample, compact=compact, **model_options,
    )
    if summary.n_duplicates:  # documents not indexed: said even with --silent
        click.echo(
            f"warning: {summary.n_duplicates} document{'s' * (summary.n_duplicates != 1)} not indexed, their id met "
            f"before (e.g. {output.tsv_cell(summary.first_duplicate)}): a file's id is its path under the folder given, "
            "so two folders holding the same names clash; index their common parent instead",
            err=True,
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
    given = {names[name]: value for name, value in model.items() if not options.is_default(ctx, name)}
    if not options.is_default(ctx, "hidden"):
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
@click.argument("words", metavar="TEXT...", nargs=-1, required=True, callback=options.as_stored)
@options.database_option
@options.limit_option
@options.distance_options
@options.label_option
@options.output_options(table=True)
@click.option("--jsonl", "jsonl_in", is_flag=True, help='With TEXT "-": each stdin line is a document {"id": ..., "text": ...}, encoded as indexing encodes documents (short plain-text queries are read as a typical-length document).')
@click.option("--codes-only", is_flag=True, help="Rank the Hamming ball by the codes alone (distance, then the bits its nearest codes share), not by words and codes: faster, less precise.")
@options.skip_bad_lines_option
@options.silent_option
def query(words, database, limit, min_distance, max_distance, labels, fmt, no_headers, fields, jsonl_in, codes_only, skip_bad_lines, silent):
    """Find the documents nearest in meaning to TEXT.

    Several words need no quotes: they are joined with spaces, as `apt-cache
    search` joins them. The codes choose the neighbourhood, the documents holding
    the query's rarest words join it, and words and codes rank them. On a
    terminal, prints a table, best first: rank, score (what ranks the hits,
    higher is better: word similarity plus the neighbours' share, less a little
    per differing bit; with --codes-only the codes rank and it is empty), id and
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
    options.check_distances(min_distance, max_distance)
    _stop_when_stdout_closes()
    if jsonl_in and text != "-":
        raise click.UsageError('--jsonl needs TEXT to be "-" (queries on stdin)')
    idx = Index.open(database)
    search_options = {"min_distance": min_distance, "max_distance": max_distance, "codes_only": codes_only, "labels": labels or None}
    if text == "-":
        fmt = None if fmt == "table" else fmt  # a stream of answers keeps its rows on a terminal too
        answered = batches.answered_batches(idx, limit, search_options, jsonl_in, skip_bad_lines)
        with _no_cyclic_gc():
            n_rows = output.emit_batches(answered, fmt, fields, no_headers, output.address_digits(idx))
        sys.exit(0 if n_rows else 1)
    with _no_words_is_no_hits(fmt):
        hits = idx.query(text, limit, **search_options)
    output.emit_hits(idx, hits, fmt, fields, no_headers)


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


@cli.command()
@click.argument("doc_id", metavar="[ID]", required=False, callback=options.as_stored)
@click.option(
    "-f", "--file", "file_", type=click.Path(dir_okay=False, allow_dash=True),
    help="Neighbours of this file (- for stdin) instead of an indexed document.",
)
@options.database_option
@options.limit_option
@options.distance_options
@options.label_option
@options.output_options(table=True)
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
    options.check_distances(min_distance, max_distance)
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
    output.emit_hits(idx, hits, fmt, fields, no_headers)


@cli.command()
@click.argument("paths", nargs=-1)
@options.database_option
@click.option("--bits", "binary", is_flag=True, help="Codes as 0/1 digits (the same numbers in base 2) instead of hex.")
@options.output_options(options.ENCODE_FIELDS, default=("id", "address", "code"))
@options.skip_bad_lines_option
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
                click.echo(f"warning: {output.tsv_cell(encoded.id)} has no words in the index vocabulary: its code means nothing", err=True)
            rows.append(dict(vars(encoded)))  # flat str/int fields: asdict's deep copy cost 12 us a row
            if len(rows) == ENCODE_CHUNK:
                yield rows
                rows = []
        yield rows

    n_rows = output.emit_chunks(chunks(), fmt, fields, no_headers)
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
@options.database_option
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
    click.echo(json.dumps(about, indent=2) if json_ else output.info_text(about))


@cli.command(name="eval")
@click.argument("queries", nargs=-1, required=True)
@options.database_option
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
@options.skip_bad_lines_option
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
@options.database_option
@click.option("--plot", type=click.Path(dir_okay=False), required=True, help="PNG file to write (needs matplotlib).")
@click.option("--sample", default=5000, show_default=True, type=click.IntRange(min=10), help="Documents drawn (seeded).")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1), help="Training epochs of the 2-unit model.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1), help="Random seed.")
@options.silent_option
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
