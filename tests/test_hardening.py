"""Hardening (issue 25): every input bounded, every output framed, every stored blob
checked, a full disk survived. Each test reproduces one case of the issue; the
decisions are documented in docs/guarantees.md."""

import csv
import io
import json
import os
import re
import sqlite3

import pytest

from semhash import store, writer
from tests.conftest import TINY_MODEL, run, write_non_utf8_name
from tests.test_reliability import dump

# Ids and titles a JSON line may hold: control characters, and a backslash that
# looks like an escape already.
ODD_IDS = ["tab\there", "line\nbreak", "nul\0byte", "esc\x1b[31mred", "cr\rlf", "back\\tslash", "del\x7f", "=1+2"]
ODD_TEXT = "shuttle orbit launch nasa space\tmission \x1b[2J"


def _unescape(cell: str) -> str:
    """The inverse of the documented TSV escape (docs/guarantees.md)."""
    named = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "0": "\0"}
    return re.sub(r"\\(x[0-9a-f]{2}|.)", lambda m: named.get(m[1]) or chr(int(m[1][1:], 16)), cell)


@pytest.fixture
def odd(work):
    """``work``'s index plus documents whose ids hold control characters."""
    lines = [json.dumps({"id": i, "text": ODD_TEXT + f" {n}"}) for n, i in enumerate(ODD_IDS)]
    result = run("index", "-", "-d", work / "index.db", "-s", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    return work


def _rows(text: str, n_fields: int) -> list[list[str]]:
    rows = [line.split("\t") for line in text.split("\n")[:-1]]
    assert all(len(row) == n_fields for row in rows), rows
    return rows


@pytest.mark.parametrize("fmt", [[], ["--tsv", "--no-headers"]])
def test_ids_with_control_characters_keep_each_hit_on_one_line(odd, fmt):
    db = odd / "index.db"
    result = run("query", "shuttle orbit launch", "-d", db, "-n", "100", "--fields", "id,title,distance", *fmt)
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout, 3)
    ids = {_unescape(row[0]) for row in rows}
    assert set(ODD_IDS) <= ids
    assert "\x1b" not in result.stdout and "\0" not in result.stdout
    # A batch of queries frames its rows the same way, the JSON id in front too.
    lines = "".join(json.dumps({"id": i, "text": ODD_TEXT}) + "\n" for i in ODD_IDS)
    batch = run("query", "-", "--jsonl", "-d", db, "-n", "2", *fmt, input=lines)
    assert batch.exit_code == 0, batch.output
    assert [_unescape(row[0]) for row in _rows(batch.stdout, 4)] == [i for i in ODD_IDS for _ in range(2)]


def test_encode_frames_ids_and_tsv_has_no_csv_quotes(odd):
    lines = "".join(json.dumps({"id": i, "text": "orbit"}) + "\n" for i in ODD_IDS)
    result = run("encode", "-d", odd / "index.db", "--tsv", input=lines)
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout, 3)
    assert rows[0] == ["id", "address", "code"]
    assert [_unescape(row[0]) for row in rows[1:]] == ODD_IDS
    assert '"' not in result.stdout


def test_csv_neutralises_formula_cells(odd):
    ids = ["=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "plain"]
    lines = "".join(json.dumps({"id": i, "text": "orbit"}) + "\n" for i in ids)
    result = run("encode", "-d", odd / "index.db", "--csv", "--fields", "id,known_words", input=lines)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [["id", "known_words"], ["'=HYPERLINK(1)", "1"], ["'+1", "1"], ["'-1", "1"], ["'@SUM(A1)", "1"], ["plain", "1"]]
    # Only --csv: the formats for programs stay verbatim.
    nl = run("encode", "-d", odd / "index.db", "--nl", "--fields", "id", input=lines)
    assert [json.loads(line)["id"] for line in nl.stdout.splitlines()] == ids


def _one_error_line(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_similar_file_stdin_is_capped(work):
    too_long = "orbit " * 2_000_000  # 12 MB
    result = run("similar", "--file", "-", "-d", work / "index.db", input=too_long)
    _one_error_line(result, "stdin holds more than 10,000,000 bytes, more than a document may")
    assert run("similar", "--file", "-", "-d", work / "index.db", input="orbit shuttle\n").exit_code == 0


@pytest.mark.parametrize("jsonl", [[], ["--jsonl"]])
def test_a_query_line_is_capped(work, jsonl):
    line = json.dumps({"id": "q", "text": "orbit " * 2_000_000}) if jsonl else "orbit " * 2_000_000
    result = run("query", "-", *jsonl, "-d", work / "index.db", input=f"{line}\n")
    _one_error_line(result, "line 1 of stdin is longer than 10,000,000 bytes")
    # A line of exactly the cap is read (ended by its newline or by the end of stdin).
    exact = "orbit " * (10_000_000 // 6) + "x" * (10_000_000 % 6)
    for end in ("\n", ""):
        assert run("query", "-", "-d", work / "index.db", "-n", "1", input=exact + end).exit_code == 0


def test_a_full_disk_on_a_first_build_is_one_line_and_leaves_nothing(work, monkeypatch):
    """SQLite's file is limited to a few pages, as a disk that fills while it is written."""
    connect = writer._connect_writer

    def small_disk(path, wal=True):
        conn = connect(path, wal)
        conn.execute("PRAGMA max_page_count = 20")
        return conn

    monkeypatch.setattr(writer, "_connect_writer", small_disk)
    before = sorted(p.name for p in work.iterdir())
    result = run("index", work / "corpus", "-d", work / "new.db", "-s", *TINY_MODEL)
    _one_error_line(result, f"cannot write {work / 'new.db'} (database or disk is full): nothing was written")
    assert sorted(p.name for p in work.iterdir()) == before  # not even the lock file (issue 26)


def test_prune_past_half_of_the_index_wants_yes(work):
    """The issue's case: an index of JSON lines, updated from one line with --prune."""
    texts = [p.read_text(encoding="latin-1") for p in sorted((work / "corpus").rglob("*")) if p.is_file()][:12]
    lines = [json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)]
    db = work / "j.db"
    assert run("index", "-", "-d", db, "-s", *TINY_MODEL, input="".join(lines)).exit_code == 0
    before = dump(db)
    result = run("index", "-", "-d", db, "-s", "--prune", input=lines[0])
    _one_error_line(result, "--prune would remove 11 of the index's 12 documents, more than 50%: pass --yes to remove them")
    assert dump(db) == before
    # Half of them go unasked; more with --yes.
    result = run("index", "-", "-d", db, "--prune", input="".join(lines[:6]))
    assert result.exit_code == 0 and "removed 6" in result.stderr
    result = run("index", "-", "-d", db, "--prune", "--yes", input=lines[0])
    assert result.exit_code == 0 and "removed 5" in result.stderr
    assert sqlite3.connect(db).execute("SELECT id FROM documents").fetchall() == [("d0",)]


def test_arguments_that_are_not_utf8_are_read_as_indexed_names(work):
    """Python gives argv's undecodable bytes as lone surrogates ($'\\xff' is "\\udcff")."""
    db = work / "index.db"
    _one_error_line(run("similar", "\udcff", "-d", db), "no document '\\\\xff' in ")
    _one_error_line(run("query", "orbit", "-l", "\udcff", "-d", db), "has the label '\\\\xff'")
    assert run("query", "orbit \udcff", "-d", db).exit_code == 0
    # A file's real name, not UTF-8, names the document it was indexed as.
    write_non_utf8_name(work / "corpus" / "sci.space")
    assert run("index", work / "corpus", "-d", work / "new.db", "-s", *TINY_MODEL).exit_code == 0
    result = run("similar", "sci.space/caf\udce9", "-d", work / "new.db")
    assert result.exit_code == 0 and result.stdout, result.output


def test_a_killed_builds_temporary_goes_at_the_next_update(work):
    """Issue 25, item 10: it went only at the next build (the kill itself is
    test_kill_9_mid_index_leaves_the_previous_index)."""
    stale = work / ".index.db.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 4096)
    result = run("index", "-", "-d", work / "index.db", "-s", input=json.dumps({"id": "n", "text": "orbit"}) + "\n")
    assert result.exit_code == 0, result.output
    assert not stale.exists()


def test_a_model_larger_than_memory_is_refused_before_reading(work, monkeypatch):
    from semhash import build, reading

    def unread(*args, **kwargs):
        raise AssertionError("the corpus was read")

    monkeypatch.setattr(reading, "read_documents", unread)
    before = sorted(p.name for p in work.iterdir())
    # The case, on any machine: 10 billion weights.
    result = run("index", work / "corpus", "-d", work / "new.db", "-s", "--hidden", "100000,100000")
    _one_error_line(result, "a model of 10,228,400,000 weights (--vocab-size, --hidden, code bits) needs about 869.7 GB")
    # The default model, where 100 MB is all there is.
    monkeypatch.setattr(build, "available_memory", lambda: 100_000_000)
    result = run("index", work / "corpus", "-d", work / "new.db", "-s")
    _one_error_line(result, "needs about 0.4 GB of memory to train, and 0.1 GB is available: choose smaller layers")
    assert sorted(p.name for p in work.iterdir()) == before


@pytest.mark.parametrize("stage", ["training", "neighbours"])
def test_running_out_of_memory_in_a_first_build_is_one_line_and_leaves_nothing(work, monkeypatch, stage):
    from semhash import graph
    from semhash.hasher import SemanticHasher

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(*((SemanticHasher, "fit") if stage == "training" else (graph, "fill_neighbours")), out_of_memory)
    before = sorted(p.name for p in work.iterdir())
    result = run("index", work / "corpus", "-d", work / "new.db", "-s", *TINY_MODEL)
    _one_error_line(result, f"out of memory while building {work / 'new.db'}: nothing was written")
    assert sorted(p.name for p in work.iterdir()) == before


def test_running_out_of_memory_in_a_rebuild_keeps_the_index(work, monkeypatch):
    from semhash.hasher import SemanticHasher

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    db = work / "index.db"
    before = dump(db)
    monkeypatch.setattr(SemanticHasher, "fit", out_of_memory)
    result = run("index", work / "corpus", "-d", db, "-s", "--retrain", *TINY_MODEL)
    _one_error_line(result, "nothing was written")
    assert dump(db) == before


WIDE = [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\0\0"), ("utf-32-be", b"\0\0\xfe\xff")]


@pytest.mark.parametrize("encoding, bom", WIDE)
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_decoded(tmp_path, encoding, bom):
    from semhash.corpus import read_text

    text = "Orbit of the shuttle, café ☃\n" * 1000
    path = tmp_path / "wide.txt"
    path.write_bytes(bom + text.encode(encoding))
    assert read_text(path) == (text, False)
    # Cut inside a character: its incomplete tail is dropped, not decoded as U+FFFD.
    cut, truncated = read_text(path, len(bom) + 5 * len("x".encode(encoding)) + 1)
    assert (cut, truncated) == ("Orbit", True)


def test_a_utf16_file_is_indexed_not_skipped_as_binary(work):
    (work / "more").mkdir()
    (work / "more" / "windows.txt").write_bytes(b"\xff\xfe" + "The shuttle reached orbit after launch".encode("utf-16-le"))
    result = run("index", work / "more", "-d", work / "index.db")
    assert result.exit_code == 0, result.output
    assert "added 1," in result.stderr and "skipped 0 files (0 binary, 0 unreadable)" in result.stderr
    title = sqlite3.connect(work / "index.db").execute("SELECT title FROM documents WHERE id = 'windows.txt'").fetchone()
    assert title == ("The shuttle reached orbit after launch",)


def test_a_folder_named_in_files_from_is_counted_as_skipped(work, monkeypatch):
    monkeypatch.chdir(work)
    (work / "listed").mkdir()
    (work / "listed" / "a.txt").write_text("The shuttle reached orbit after launch")
    result = run("index", "-d", "index.db", "--files-from", "-", input="listed\nlisted/a.txt\n")
    assert result.exit_code == 0, result.output
    assert "added 1," in result.stderr
    assert "1 folder named in --files-from skipped (list files, as find -type f does)" in result.stderr


def test_two_folders_with_the_same_names_are_said_in_one_warning(work):
    for folder in ("one", "two"):
        for name in ("a.txt", "b.txt"):
            (work / folder).mkdir(exist_ok=True)
            (work / folder / name).write_text(f"The shuttle reached orbit, {folder} {name}")
    result = run("index", work / "one", work / "two", "-d", work / "index.db", "-s")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: 2 documents not indexed, their id met before (e.g. a.txt): a file's id is its path under the "
        "folder given, so two folders holding the same names clash; index their common parent instead\n"
    )
    ids = sqlite3.connect(work / "index.db").execute("SELECT id, path FROM documents WHERE id LIKE '_.txt'").fetchall()
    assert sorted(ids) == [("a.txt", str(work / "one" / "a.txt")), ("b.txt", str(work / "one" / "b.txt"))]


def test_a_long_text_is_tokenized_in_pieces_each_word_held_once(monkeypatch):
    """A 200 MB file held 33 million token objects; in pieces each distinct word is one
    object, and the words are those of the text read whole."""
    from semhash import tokenize

    text = "ΟΔΟΣ The shuttle's orbit, NASA\tlaunch x11r5 mp3 images\n" * 40 + "shuttle"
    whole = tokenize._content_words(text, stem=True)
    monkeypatch.setattr(tokenize, "PIECE_CHARS", 37)
    for stem in (False, True):
        words = tokenize.content_words(text, stem)
        assert words == tokenize._content_words(text, stem)
        assert len({id(w) for w in words}) == len(set(words)) < len(words) / 10
    assert tokenize.content_words(text, stem=True) == whole
