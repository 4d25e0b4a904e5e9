"""The ``semhash`` command: a thin layer over :mod:`semhash.api`.

Only click and the standard library are imported at module level, so ``--help`` is
instant; numpy, numba and friends load inside the commands that need them.
Data goes to stdout, progress and summaries to stderr. Exit status: 0 with hits,
1 with none (like grep), 2 on errors.
"""

from __future__ import annotations

import json
import sys

import click

from semhash import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class SemhashError(click.ClickException):
    """A user-facing error: ``Error: <message>`` on stderr, exit status 2."""

    exit_code = 2


def database_option(f):
    return click.option(
        "-d",
        "--database",
        envvar="SEMHASH_DB",
        default="semhash.db",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="Index file (env SEMHASH_DB).",
    )(f)


def silent_option(f):
    return click.option("-s", "--silent", is_flag=True, help="No progress bars or summary on stderr.")(f)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="semhash")
def cli():
    """Search documents by meaning with semantic hashing: binary codes learned by a
    deep autoencoder, looked up by Hamming distance, stored in one SQLite file.

    \b
    Example:
        semhash index corpora/20news-sample/train
        semhash query "nasa shuttle launch orbit"
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@database_option
@click.option("--vocab-size", default=2000, show_default=True, type=click.IntRange(min=2), help="Words kept.")
@click.option("--address-bits", default=28, show_default=True, type=click.IntRange(1, 63), help="Width of the address code.")
@click.option("--code-bits", default=256, show_default=True, type=click.IntRange(min=1), help="Width of the long code.")
@click.option("--hidden", default="500,250,125", show_default=True, help="Hidden layer sizes, comma-separated.")
@click.option("--epochs-pretrain", default=20, show_default=True, type=click.IntRange(min=0), help="CD-1 epochs per RBM.")
@click.option("--epochs-finetune", default=30, show_default=True, type=click.IntRange(min=0), help="Backprop epochs per code.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same index).")
@silent_option
def index(paths, database, vocab_size, address_bits, code_bits, hidden, epochs_pretrain, epochs_finetune, seed, silent):
    """Train a model on documents and index them.

    PATHS are directories (walked recursively; every text file is a document, its id
    the path relative to the directory, its label the parent folder's name), files,
    or - for JSON lines on stdin: {"id": ..., "text": ..., "labels": [...]}.

    \b
    Example:
        semhash index corpora/20news-sample/train
        semhash index -d news.db ~/mail/archive
        jq -c '{id, text}' posts.json | semhash index -
    """
    from semhash.api import BuildError, build_index
    from semhash.corpus import CorpusError

    try:
        hidden_sizes = tuple(int(x) for x in hidden.split(",") if x.strip())
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected positive integers separated by commas, got {hidden!r}", param_hint="--hidden")
    try:
        summary = build_index(
            paths,
            database,
            vocab_size=vocab_size,
            address_bits=address_bits,
            code_bits=code_bits,
            hidden_sizes=hidden_sizes,
            n_epochs_pretrain=epochs_pretrain,
            n_epochs_finetune=epochs_finetune,
            random_state=seed,
            verbose=not silent,
        )
    except (BuildError, CorpusError, OSError) as e:
        raise SemhashError(str(e))
    if not silent:
        click.echo(f"{summary.line()} -> {database}", err=True)


@cli.command()
@click.argument("text")
@database_option
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(min=1), help="Number of results.")
@click.option("--nl", "fmt", flag_value="nl", help="Output one JSON object per line.")
@click.option("--json", "fmt", flag_value="json", help="Output one JSON array.")
@click.option("--jsonl", "jsonl_in", is_flag=True, help='With TEXT "-": each stdin line is {"id": ..., "text": ...}.')
@silent_option
def query(text, database, limit, fmt, jsonl_in, silent):
    """Find the documents nearest in meaning to TEXT.

    Prints id<TAB>distance lines, nearest first (distance: differing bits of the
    long codes). TEXT "-" reads one query per stdin line; each hit is then a row
    query<TAB>rank<TAB>id<TAB>distance (query = line number, or the id with --jsonl).

    \b
    Example:
        semhash query "nasa shuttle launch orbit" -n 5
        semhash query --json "goalie trade playoffs"
        cat questions.txt | semhash query - --nl
    """
    from semhash.api import Index, QueryError
    from semhash.store import StoreError

    try:
        idx = Index.open(database)
    except StoreError as e:
        raise SemhashError(str(e))
    if text == "-":
        n_hits = _batch_query(idx, limit, fmt, jsonl_in)
    else:
        if jsonl_in:
            raise click.UsageError('--jsonl needs TEXT to be "-" (queries on stdin)')
        try:
            hits = idx.query(text, limit)
        except QueryError as e:
            if fmt == "json":
                click.echo("[]")
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        _emit([{"id": h.id, "distance": h.distance} for h in hits], fmt, ["id", "distance"])
        n_hits = len(hits)
    sys.exit(0 if n_hits else 1)


def _batch_query(idx, limit: int, fmt: str | None, jsonl_in: bool) -> int:
    """Answer one query per stdin line; returns the number of hits printed."""
    from semhash.corpus import CorpusError, iter_jsonl

    if jsonl_in:
        try:
            docs = list(iter_jsonl(sys.stdin))
        except CorpusError as e:
            raise SemhashError(str(e))
        names, texts = [d.id for d in docs], [d.text for d in docs]
    else:
        texts = [line.rstrip("\n") for line in sys.stdin]
        names = list(range(1, len(texts) + 1))
    results = idx.query_many(texts, limit, skip_empty=True)
    rows = []
    for name, hits in zip(names, results):
        if hits is None:
            click.echo(f"warning: query {name} has no words in the index vocabulary, skipped", err=True)
            continue
        rows.extend({"query": name, "rank": r, "id": h.id, "distance": h.distance} for r, h in enumerate(hits, 1))
    _emit(rows, fmt, ["query", "rank", "id", "distance"])
    return len(rows)


def _emit(rows: list[dict], fmt: str | None, columns: list[str]) -> None:
    """Write rows to stdout as TSV (default), NDJSON (``nl``) or a JSON array."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2) if rows else "[]")
    elif rows:  # one write: echoing row by row cost seconds on 750k rows
        if fmt == "nl":
            lines = [json.dumps(row) for row in rows]
        else:
            lines = ["\t".join(str(row[c]) for c in columns) for row in rows]
        click.echo("\n".join(lines))
