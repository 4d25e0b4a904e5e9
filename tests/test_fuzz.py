"""Fuzz (issue 25): hostile input never ends in a traceback, and a command that fails
never changes the index.

Three sources of cases: random JSON lines on stdin, random bytes in the files of a
corpus, and random damage to each stored table and blob of a small index (``built``).
Each case runs ``index``, ``query``, ``similar``, ``info`` or ``encode`` in-process
(CliRunner) against a fresh copy of that index, on tmpfs when the machine has one:
SQLite's fsyncs were three quarters of an update's time on disk. A case passes when
the command exits 0 or 1, or 2 with one ``Error: ...`` line and no traceback; and
when a command that reads, or fails, leaves the index file byte for byte as it was.

Every example runs each command once or more, so the defaults (500 + 400 + 1,100
examples) run over 2,000 cases of each command. ``SEMHASH_FUZZ_EXAMPLES=N`` runs N
examples per test instead (a nightly-size run: N = 5000).
"""

import gc
import json
import os
import random
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

import numba
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from semhash.update import UPDATE_WRITTEN
from semhash.store import TABLES
from tests.conftest import TINY_MODEL, run

EXAMPLES = int(os.environ.get("SEMHASH_FUZZ_EXAMPLES", "0"))
FUZZ = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
COMMANDS = Counter()  # cases run per command, reported at the end of the module


def examples(default: int) -> int:
    return EXAMPLES or default


# -- the cases' index --------------------------------------------------------------------


class Scratch:
    """Fresh copies of one prebuilt index, each under a new name: a connection a
    case left open (an Index the CLI never closes) must not see the next case's
    file, nor its ``-shm``."""

    def __init__(self, built: Path):
        base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="semhash-fuzz-", dir=base))
        shutil.copytree(built / "corpus", self.root / "corpus")
        self.pristine = (built / "index.db").read_bytes()
        with sqlite3.connect(built / "index.db") as conn:
            self.ids = [i for (i,) in conn.execute("SELECT id FROM documents ORDER BY rowid")]
            self.words = [w for (w,) in conn.execute("SELECT word FROM vocabulary")]
        self.n = 0
        self.folder = None

    def fresh(self) -> Path:
        """A new folder holding a copy of the index, as ``index.db``."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.n += 1
        if self.n % 200 == 0:
            gc.collect()  # the connections of Indexes the CLI left to the collector
        self.folder = self.root / f"case{self.n}"
        self.folder.mkdir()
        (self.folder / "index.db").write_bytes(self.pristine)
        return self.folder / "index.db"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def scratch(built, request):
    # One thread for the kernels: after an in-process build (``built``), numba's
    # OpenMP threads and those the training loaded spin against each other, and a
    # `similar` on this 60-document index took 120-250 ms instead of 15-35 (2 cores).
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    s = Scratch(built)
    yield s
    s.close()
    numba.set_num_threads(threads)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and COMMANDS:
        reporter.write_line("fuzz cases: " + ", ".join(f"{c} {n}" for c, n in sorted(COMMANDS.items())))


def cli(*args, input=None):
    """Run one case and check that it ended cleanly."""
    command = str(args[0])
    COMMANDS[command] += 1
    result = run(*args, input=input)
    where = f"semhash {' '.join(map(str, args))!r} on stdin {input!r:.300}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"traceback from {where}:\n{trace}")
    assert result.exit_code in (0, 1, 2), (where, result.exit_code, result.output)
    assert "Traceback" not in result.stderr, (where, result.stderr)
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), (where, result.stderr)
    return result


def file_state(folder: Path) -> dict[str, bytes]:
    """Every file of a case's folder (the index, its journals, temporaries), byte for
    byte; an empty ``-wal`` (a reader's, still open) and the ``-shm`` hold nothing."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith("-shm")}
    return {name: data for name, data in files.items() if data or not name.endswith("-wal")}


def read_only(db: Path, *args, input=None):
    """A command that reads the index: whatever it ends with, the files stay as they were."""
    before = file_state(db.parent)
    result = cli(*args, "-d", db, input=input)
    assert file_state(db.parent) == before, args
    return result


def sound(db: Path) -> bool:
    """Whether SQLite finds the file sound (pages, cells, indexes)."""
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except (sqlite3.DatabaseError, UnicodeDecodeError):  # (its report may quote damaged text)
        return False


def update(db: Path, *args, input=None):
    """``semhash index`` on the index: a failure leaves the files as they were; a
    success leaves a file as sound as it found it, which ``info`` reads if it did."""
    before, was_sound, was_read = file_state(db.parent), sound(db), run("info", "-d", db).exit_code == 0
    result = cli("index", *args, "-d", db, "-s", input=input)
    # (the one failure that writes: damage found once the documents are committed, and said)
    if result.exit_code != 0 and UPDATE_WRITTEN not in result.stderr:
        assert file_state(db.parent) == before, (args, result.stderr)
    else:  # (damage in what it did not read stays)
        assert sound(db) or not was_sound, "an update left a damaged file"
        assert cli("info", "-d", db).exit_code == 0 or not was_read, "an update left an index info cannot read"
    assert not list(db.parent.glob(".*.tmp*")), "a temporary file was left behind"
    return result


# -- random JSON lines -------------------------------------------------------------------

TEXTS = st.text(max_size=60) | st.lists(st.sampled_from(["orbit", "shuttle", "nasa", "hockey", "goalie", "image", "the", "\0", "\u2028", "\ud800"]), max_size=12).map(" ".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=6,
)
DOCUMENTS = st.fixed_dictionaries(
    {"text": TEXTS | VALUES},
    optional={"id": TEXTS | VALUES, "labels": st.lists(TEXTS, max_size=3) | VALUES, "title": VALUES},
)
LINE = (
    DOCUMENTS.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | VALUES.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=80)
    | TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass"))
)
STDIN = st.builds(
    lambda lines, sep, end: sep.join(lines) + end,
    st.lists(LINE, max_size=12), st.sampled_from([b"\n", b"\r\n", b"\0"]), st.sampled_from([b"", b"\n"]),
)


@settings(max_examples=examples(500), **FUZZ)
@given(stdin=STDIN, flags=st.sets(st.sampled_from(["--skip-bad-lines", "--prune", "--yes"])), first_build=st.booleans())
@example(stdin=b'{"id": "a\\u0000b", "text": "orbit"}\n{"text": "\\ud800"}\n', flags=set(), first_build=False)
@example(stdin=b"\xff\xfe{\n", flags={"--skip-bad-lines"}, first_build=False)
@example(stdin=b'{"text": "t", "id": 1e999}\n', flags=set(), first_build=True)
def test_json_lines(scratch, stdin, flags, first_build):
    db = scratch.fresh()
    skip = ["--skip-bad-lines"] if "--skip-bad-lines" in flags else []
    read_only(db, "encode", *skip, input=stdin)
    read_only(db, "query", "-", "--jsonl", *skip, "-n", "3", input=stdin)
    read_only(db, "similar", "--file", "-", "-n", "3", input=stdin)
    if first_build:  # a new index from these lines alone: trained, or refused leaving nothing
        new = db.with_name("new.db")
        result = cli("index", "-", "-d", new, "-s", *skip, *TINY_MODEL, input=stdin)
        assert result.exit_code in (0, 2)
        if result.exit_code == 2:
            assert not list(db.parent.glob("*new.db*")), "a failed first build left files behind"
        return
    update(db, "-", *sorted(flags), input=stdin)


# -- random bytes in the files of a corpus -----------------------------------------------


def _encoded(text: str, codec: str) -> bytes:
    try:
        return text.encode(codec, "surrogatepass")
    except UnicodeEncodeError:  # latin-1
        return text.encode(codec, "replace")


def _encodable(name: str) -> bool:
    try:
        os.fsencode(name)
        return True
    except UnicodeEncodeError:
        return False


BOMS = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])
FILE_BYTES = (
    st.binary(max_size=3000)
    | st.builds(lambda bom, t, codec: bom + _encoded(t, codec), BOMS, TEXTS, st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "latin-1"]))
    | st.builds(lambda a, junk, b: a + junk + b, st.sampled_from([b"Subject: orbit\n\n", b"From: x\nSubject:\n\n", b""]), st.binary(max_size=200), st.binary(max_size=200))
)
FILE_NAMES = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=["Cs"]), min_size=1, max_size=20).filter(
    lambda n: n not in (".", "..") and len(n.encode()) < 200
) | st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")).map(os.fsdecode)


@settings(max_examples=examples(400), **FUZZ)
@given(files=st.dictionaries(FILE_NAMES.filter(_encodable), FILE_BYTES, min_size=1, max_size=4),
       max_bytes=st.sampled_from([None, 1, 7, 100, 10_000]), query=TEXTS)
def test_random_bytes_in_files(scratch, files, max_bytes, query):
    db = scratch.fresh()
    corpus = db.parent / "docs"
    (corpus / "sub").mkdir(parents=True)
    for n, (name, data) in enumerate(files.items()):
        (corpus / ("sub" if n % 2 else "") / name).write_bytes(data)
    some_file = next(p for p in sorted(corpus.rglob("*")) if p.is_file())
    cap = [] if max_bytes is None else ["--max-bytes", max_bytes]
    read_only(db, "encode", corpus)
    read_only(db, "similar", "--file", some_file, "-n", "3")
    read_only(db, "query", query.replace("\0", " ") or "-", "-n", "3", input=some_file.read_bytes())
    update(db, corpus, *cap, "--prune")


# -- random damage to each stored table and blob -----------------------------------------


def _damage_value(value, rnd: random.Random):
    """``value`` changed the way a bad disk, a bad copy or a hand edit changes one."""
    kind = rnd.choice(["flip", "cut", "grow", "null", "integer", "real", "text", "blob"])
    raw = value if isinstance(value, bytes) else str(value if value is not None else "").encode("utf-8", "surrogateescape")
    if kind == "flip" and raw:
        raw = bytearray(raw)
        for _ in range(rnd.randint(1, 4)):
            raw[rnd.randrange(len(raw))] ^= 1 << rnd.randrange(8)
        raw = bytes(raw)
    elif kind == "cut":
        raw = raw[: rnd.randrange(len(raw) + 1)]
    elif kind == "grow":
        raw += rnd.randbytes(rnd.choice([1, 3, 8, 64]))
    elif kind == "null":
        return None
    elif kind == "integer":
        return rnd.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), rnd.randint(-1000, 1000)])
    elif kind == "real":
        return rnd.choice([0.5, -1.0, float("inf"), float("-inf"), float("nan"), 1e308])
    elif kind == "text":
        return raw.decode("utf-8", "replace")
    # The same type as before: a text as text (possibly not UTF-8 any more), bytes as a blob.
    return raw if isinstance(value, bytes) or kind == "blob" else ("text", raw)


def damage_row(db: Path, table: str, rnd: random.Random) -> str:
    """Damage one value (or delete one row) of ``table``, bypassing the triggers that
    keep derived tables in step, as an edit of the file would; return what was done."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")  # (text an earlier damage left not UTF-8)
    try:
        conn.execute("BEGIN")
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        rowids = [r for (r,) in conn.execute(f"SELECT rowid FROM {table}")]
        columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
        if not rowids:
            what = f"{table} is empty"
        elif rnd.random() < 0.1:
            rowid = rnd.choice(rowids)
            conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            what = f"deleted {table} row {rowid}"
        else:
            rowid, column = rnd.choice(rowids), rnd.choice(columns)
            (value,) = conn.execute(f'SELECT "{column}" FROM {table} WHERE rowid = ?', (rowid,)).fetchone()
            new = _damage_value(value, rnd)
            text = isinstance(new, tuple)  # text whose bytes may no longer be UTF-8
            try:
                conn.execute(
                    f'UPDATE {table} SET "{column}" = {"CAST(? AS TEXT)" if text else "?"} WHERE rowid = ?',
                    (new[1] if text else new, rowid),
                )
            except sqlite3.IntegrityError:  # a key taken, or text for an integer key: no change
                pass
            what = f"{table}.{column} of row {rowid}: {value!r:.60} -> {new!r:.60}"
        for _, sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return what


def damage_file(db: Path, rnd: random.Random) -> str:
    """Flip bits anywhere in the file: page headers, b-tree cells, the schema."""
    data = bytearray(db.read_bytes())
    offsets = [rnd.randrange(len(data)) for _ in range(rnd.randint(1, 8))]
    for offset in offsets:
        data[offset] ^= 1 << rnd.randrange(8)
    db.write_bytes(bytes(data))
    return f"bits flipped at {offsets}"


# (no shrinking: a random generator shrinks for minutes; the note names the damage)
@settings(max_examples=examples(1100), phases=[Phase.explicit, Phase.generate], **FUZZ)
@given(target=st.sampled_from([*TABLES, "file"]), rnd=st.randoms(use_true_random=False), n_damages=st.integers(1, 3))
def test_damaged_index(scratch, target, rnd, n_damages):
    db = scratch.fresh()
    what = [damage_file(db, rnd) if target == "file" else damage_row(db, target, rnd) for _ in range(n_damages)]
    note = f"damage: {what}"
    word = rnd.choice(scratch.words)
    doc_id = rnd.choice(scratch.ids)
    try:
        read_only(db, "info")
        read_only(db, "query", word, "orbit", "-n", "5", *rnd.choice([[], ["--codes-only"], ["--json"], ["-l", "sci.space"]]))
        read_only(db, "similar", doc_id, "-n", "5")
        read_only(db, "encode", input=json.dumps({"id": "q", "text": f"{word} orbit"}) + "\n")
        update(db, "-", input=json.dumps({"id": f"new{rnd.randrange(3)}", "text": f"{word} shuttle orbit"}) + "\n")
    except AssertionError as e:
        raise AssertionError(f"{note}: {e}") from None
    except BaseException as e:
        e.add_note(note)
        raise


def _update_written_despite(db, damage: str) -> None:
    """An update of ``db`` commits its document, then fails in one line that names
    the ``damage`` and says the update itself was written."""
    result = run("index", "-", "-d", db, "-s", input=json.dumps({"id": "new", "text": "shuttle orbit launch"}) + "\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.endswith(f"; {UPDATE_WRITTEN}\n")
    assert damage in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM documents WHERE id = 'new'").fetchone() == (1,)


def test_damage_found_reloading_the_codes_after_an_update_committed_is_said(work, monkeypatch):
    """Found by the fuzz (bits flipped in the file): an update committed, and the
    reload of the codes that follows found them damaged (pages the update wrote
    into, unread before); it failed with the message of a failure that changed
    nothing."""
    from semhash.store import StoredIndex
    from semhash.writer import IndexWriter

    committed, codes, leave = [], StoredIndex.codes, IndexWriter.__exit__

    def exit_and_mark(self, *exc):
        leave(self, *exc)
        committed.append(True)

    def damaged_once_written(self):
        if committed:
            raise self._corrupt("its packed codes (code_blocks) are damaged")
        return codes(self)

    monkeypatch.setattr(IndexWriter, "__exit__", exit_and_mark)
    monkeypatch.setattr(StoredIndex, "codes", damaged_once_written)
    db = work / "index.db"
    _update_written_despite(db, "code_blocks")


def test_damage_found_after_an_update_committed_is_said(work):
    """Found by the fuzz: an update whose neighbour step read a damaged document
    failed with the message of a failure that changed nothing, its documents
    committed. (Reading every stored vector before the update instead would cost
    each update one more pass over them.)"""
    db = work / "index.db"
    with sqlite3.connect(db) as conn:  # one stored vector names term 2**31 - 1, the postings left current
        conn.execute("DROP TRIGGER postings_update")
        conn.execute("UPDATE documents SET terms = CAST(x'ffffff7f0000803f' AS BLOB) WHERE rowid = 3")
    _update_written_despite(db, "names a term the index does not have")
