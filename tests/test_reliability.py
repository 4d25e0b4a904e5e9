"""Reliability and security (issue 6): bad input gets one clear line, nothing is ever
lost, a stored index never runs code.

Bad inputs run as one parametrized table through the CLI. The crash and concurrency
tests run real ``semhash index`` processes: a small wrapper pauses one inside its
write transaction (after the documents are written, before the commit) so it can be
killed, or raced, at exactly that moment.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from semhash import codes, encoding, migrations, shortlists, store, writer
from semhash.api import EmptyQuery, Index
from semhash.corpus import BadLine, iter_jsonl
from semhash.store import StoreError
from semhash.writer import IndexWriter
from semhash.tokenize import WORD_RE, tokenize
from semhash.vocab import count_words
from tests.conftest import TINY_MODEL, run, write_non_utf8_name


def texts_of(corpus: Path) -> list[str]:
    return [p.read_text(encoding="latin-1") for p in sorted(corpus.rglob("*")) if p.is_file()]


def dump(db: Path) -> list:
    """Everything an index holds, to compare before and after."""
    conn = sqlite3.connect(db)
    try:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("meta", "vocabulary", "weights", "documents")
        ]
    finally:
        conn.close()


# -- bad input: one table --------------------------------------------------------------
#
# Each case prepares its input in a private copy of `built` and returns the command
# line (and stdin). Exit 2 must come with exactly one `Error: ...` line on stderr;
# exit 1 (no hits) with a `warning: ...` saying why.


def _dir_of_binaries(w):
    (w / "bin").mkdir()
    (w / "bin" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (w / "bin" / "b.o").write_bytes(b"\x7fELF\x00\x01")
    return ["index", w / "bin", "-d", w / "new.db"]


def _empty_dir(w):
    (w / "empty").mkdir()
    return ["index", w / "empty", "-d", w / "new.db"]


def _too_small(w):
    (w / "small").mkdir()
    for i in range(3):
        (w / "small" / f"{i}.txt").write_text("rockets and orbits and launches")
    return ["index", w / "small", "-d", w / "new.db"]


def _stop_words_only(w):
    (w / "stop").mkdir()
    for i in range(12):
        (w / "stop" / f"{i}.txt").write_text("the and of to a in is it 1993 42 !!!")
    return ["index", w / "stop", "-d", w / "new.db"]


def _not_sqlite(w):
    (w / "notes.txt").write_text("my precious notes\n")
    return ["query", "space", "-d", w / "notes.txt"]


def _foreign_sqlite(w):
    conn = sqlite3.connect(w / "app.db")
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    return ["query", "space", "-d", w / "app.db"]


def _truncated(w):
    data = (w / "index.db").read_bytes()
    (w / "index.db").write_bytes(data[: len(data) // 2])
    return ["query", "space", "-d", w / "index.db"]


def _corrupt_page(table):
    """Overwrite the root page of one table: the file opens and its meta reads fine."""

    def corrupt(w):
        conn = sqlite3.connect(w / "index.db")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.close()
        with open(w / "index.db", "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(b"\x0d\xff" * (page_size // 2))
        return ["query", "space", "-d", w / "index.db"]

    return corrupt


UNSTEMMED = "UPDATE meta SET value = 'false' WHERE key = 'stem'"


def _edit(sql, *params):
    """Change an index with one statement (or a list of them, without parameters),
    then query it."""

    def edit(w):
        conn = sqlite3.connect(w / "index.db")
        for statement in [sql] if isinstance(sql, str) else sql:
            conn.execute(statement, params)
        conn.commit()
        conn.close()
        return ["query", "space", "-d", w / "index.db"]

    return edit


def _postings_edit(sql):
    """Change the postings of a term the model's vocabulary lacks (with ? for it),
    then query that term: it is answered from its postings."""

    def edit(w):
        conn = sqlite3.connect(w / "index.db")
        term, term_id = conn.execute(
            "SELECT t.term, t.id FROM terms t JOIN postings p ON p.term = t.id WHERE p.rowids IS NOT NULL "
            "AND t.term NOT IN (SELECT word FROM vocabulary) AND t.term GLOB '[a-z][a-z][a-z]*' ORDER BY t.id LIMIT 1"
        ).fetchone()
        conn.execute(sql, (term_id,))
        conn.commit()
        conn.close()
        return ["query", term, "-d", w / "index.db"]

    return edit


def _term_past_the_end(w):
    """A stored vector whose one term id is the first past the terms table (ids far
    past it, unchecked, had the ranking kernels allocate tens of GB)."""
    conn = sqlite3.connect(w / "index.db")
    (n_terms,) = conn.execute("SELECT value FROM meta WHERE key = 'n_terms'").fetchone()
    blob = np.array([int(n_terms)], "<i4").tobytes() + np.array([1.0], "<f4").tobytes()
    conn.execute("UPDATE documents SET terms = ? WHERE rowid = 3", (blob,))
    conn.commit()
    conn.close()
    return ["query", "space", "-d", w / "index.db"]


def _nan_weights(w):
    """A stored vector whose weights are NaN: its scores were NaN, printed as "score": NaN."""
    conn = sqlite3.connect(w / "index.db")
    (blob,) = conn.execute("SELECT terms FROM documents WHERE rowid = 3").fetchone()
    n = len(blob) // 8
    conn.execute("UPDATE documents SET terms = ? WHERE rowid = 3", (blob[: 4 * n] + np.full(n, np.nan, "<f4").tobytes(),))
    conn.commit()
    conn.close()
    return ["query", "space", "-d", w / "index.db", "--json", "--fields", "id,score"]


def _similar_to_third(w):
    """`semhash similar` of the document at rowid 3, whose word count is damaged."""
    conn = sqlite3.connect(w / "index.db")
    (doc_id,) = conn.execute("SELECT id FROM documents WHERE rowid = 3").fetchone()
    conn.execute("UPDATE documents SET n_words = 'x' WHERE rowid = 3")
    conn.commit()
    conn.close()
    return ["similar", doc_id, "-d", w / "index.db"]


def _eval_after(edit):
    """An edit, then `semhash eval` (which reads every document's stored word counts)."""
    return lambda w: [*edit(w)[:0], "eval", "corpus", "-d", w / "index.db", "--no-baselines"]


def _wrong_weight_shape(w):
    conn = sqlite3.connect(w / "index.db")
    name, shape = conn.execute("SELECT name, shape FROM weights WHERE name LIKE '%encoder0.W' LIMIT 1").fetchone()
    rows, cols = json.loads(shape)
    # Self-consistent (the bytes match the shape), but not the model the metadata describes.
    conn.execute(
        "UPDATE weights SET shape = ?, data = ? WHERE name = ?",
        (json.dumps([rows - 1, cols]), np.zeros((rows - 1, cols), "<f4").tobytes(), name),
    )
    conn.commit()
    conn.close()
    return ["query", "space", "-d", w / "index.db"]


def _index_over(name, make):
    def case(w):
        make(w / name)
        return ["index", w / "corpus", "-d", w / name, "--retrain", *TINY_MODEL]

    return case


def _jsonl(lines, *extra):
    def case(w):
        good = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts_of(w / "corpus")[:12])]
        return ["index", "-", "-d", w / "new.db", *extra, *TINY_MODEL], "\n".join(good[:1] + lines + good[1:]) + "\n"

    return case


def _query_jsonl(line):
    return lambda w: (["query", "-", "--jsonl", "-d", w / "index.db"], line + "\n")


def _cmd(*args):
    return lambda w: [a.replace("DB", str(w / "index.db")) if isinstance(a, str) else a for a in args]


BAD_INPUT = [
    # (case, setup, exit code, message)
    ("nonexistent path", _cmd("index", "/no/such/dir", "-d", "DB"), 2, "no such file or directory: /no/such/dir"),
    ("directory of binary files", _dir_of_binaries, 2, "no text documents in "),
    ("empty directory", _empty_dir, 2, "(0 binary and 0 unreadable files skipped): at least 10 are needed"),
    ("too small a corpus", _too_small, 2, "found 3 documents, 3 with indexable words"),
    ("stop words only", _stop_words_only, 2, "0 with indexable words (not only stop words"),
    ("query of stop words", _cmd("query", "the and of to", "-d", "DB"), 1, "warning: the query has no words"),
    ("query of unknown words", _cmd("query", "zzqx wwvy", "-d", "DB", "--json"), 1, "(only stop words, or words"),
    ("similar to an unknown text", _cmd("similar", "-f", "-", "-d", "DB", "--json"), 1, "the document has no words"),
    ("db is a text file", _not_sqlite, 2, "is not a semhash index (file is not a database)"),
    ("db is another app's SQLite", _foreign_sqlite, 2, "is not a semhash index (no such table: meta)"),
    # Where the cut falls decides which read fails first: either way one line.
    ("db truncated", _truncated, 2, "(database disk image is malformed): rebuild it with `semhash index --retrain PATHS`"),
    ("db page corrupt: documents", _corrupt_page("documents"), 2, "is corrupt (database disk image is malformed)"),
    ("db page corrupt: weights", _corrupt_page("weights"), 2, "is corrupt (database disk image is malformed)"),
    ("db from a newer schema", _edit("UPDATE meta SET value = '99' WHERE key = 'schema_version'"), 2,
     f"was made by a newer semhash (schema 99 > {store.SCHEMA_VERSION}): upgrade semhash"),
    ("db older than migrations", _edit("UPDATE meta SET value = '0' WHERE key = 'schema_version'"), 2,
     "has schema 0, older than this semhash can read: rebuild it with `semhash index --retrain PATHS`"),
    ("db without a schema version", _edit("DELETE FROM meta WHERE key = 'schema_version'"), 2,
     "is not a semhash index (no schema_version in meta)"),
    ("db meta not JSON", _edit("UPDATE meta SET value = '{oops' WHERE key = 'created'"), 2,
     "is corrupt (its metadata is not JSON)"),
    ("db meta out of range", _edit("UPDATE meta SET value = '77' WHERE key = 'address_bits'"), 2,
     "is corrupt (meta address_bits is 77)"),
    ("weights not float32", _edit("UPDATE weights SET data = x'00' WHERE rowid = 1"), 2, "is not float32 of shape"),
    ("weights' shape not the model's", _wrong_weight_shape, 2, "expected (300, n)): rebuild it"),
    ("vocabulary shorter than meta", _edit('DELETE FROM vocabulary WHERE "column" = 0'), 2,
     "is corrupt (299 vocabulary words, meta says 300)"),
    ("code of the wrong length", _edit("UPDATE documents SET code = x'0102' WHERE rowid = 3"), 2,
     "is corrupt (a stored code is not 8 bytes long)"),
    ("code missing", _edit("UPDATE documents SET code = NULL WHERE rowid = 3"), 2, "a stored code is not 8 bytes"),
    ("address out of range", _edit("UPDATE documents SET address = 4096 WHERE rowid = 3"), 2,
     "a stored address is not an integer in [0, 256)"),
    ("address not an integer", _edit("UPDATE documents SET address = '1x' WHERE rowid = 3"), 2,
     "a stored address is not an integer in [0, 256)"),
    ("address missing", _edit("UPDATE documents SET address = NULL WHERE rowid = 3"), 2,
     "a stored address is not an integer in [0, 256)"),
    ("address negative", _edit("UPDATE documents SET address = -1 WHERE rowid = 3"), 2,
     "a stored address is not an integer in [0, 256)"),
    ("packed codes cut short", _edit("UPDATE code_blocks SET codes = substr(codes, 1, 5)"), 2,
     "is corrupt (its packed codes (code_blocks) are damaged)"),
    ("packed codes out of order", _edit("UPDATE code_blocks SET rowids = zeroblob(length(rowids))"), 2,
     "is corrupt (its packed codes (code_blocks) are damaged)"),
    ("packed address out of range", _edit("UPDATE code_blocks SET addresses = CAST(x'ffffffffffffffff' || substr(addresses, 9) AS BLOB)"), 2,
     "a stored address is not an integer in [0, 256)"),
    # (read by a short query when the index predates the median length kept in meta)
    ("word count not an integer", _edit(["UPDATE documents SET n_words = 'x' WHERE rowid = 3",
                                         "DELETE FROM meta WHERE key = 'typical_length'"]), 2,
     "is corrupt (a stored word count is not an integer)"),
    ("word count not an integer (similar)", _similar_to_third, 2, "is corrupt (a stored word count is not an integer)"),
    ("TF-IDF vector names no term", _term_past_the_end, 2,
     "is corrupt (a stored TF-IDF vector names a term the index does not have)"),
    ("TF-IDF weights not numbers", _nan_weights, 2, "is corrupt (a stored TF-IDF vector's weights are not numbers)"),
    ("TF-IDF vector is text", _edit("UPDATE documents SET terms = 'abcd' WHERE rowid = 3"), 2,
     "is corrupt (a stored TF-IDF vector is not a blob)"),
    ("neighbour list cut", _edit("UPDATE documents SET neighbours = x'01' WHERE rowid = 3"), 2,
     "is corrupt (a stored neighbour list is damaged)"),
    ("neighbour list is text", _edit("UPDATE documents SET neighbours = 'abcd' WHERE rowid = 3"), 2,
     "is corrupt (a stored neighbour list is damaged)"),
    ("TF-IDF vector with stray bytes", _edit("UPDATE documents SET terms = CAST(terms || x'0102' AS BLOB) WHERE rowid = 3"), 2,
     "is corrupt (a stored TF-IDF vector is damaged)"),
    ("neighbour list names rowid -1", _edit("UPDATE documents SET neighbours = CAST(x'ffffffff' || substr(neighbours, 5) AS BLOB)"),
     2, "is corrupt (a stored neighbour list is damaged)"),
    ("term id past the end", _edit("UPDATE terms SET id = id + 100000 WHERE term = 'space'"), 2,
     "is corrupt ("),  # (the ids' numbering, or the id's range: whichever is read first)
    # (These two damage every term, which an unstemmed index reads whole; a stemmed one
    # looks its query's terms up one by one and never reads a damaged row.)
    ("terms with a gap (similar -f)", lambda w: [*_edit([UNSTEMMED, "DELETE FROM terms WHERE id = 5"])(w)[:0], "similar",
                                                 "-f", "-", "-d", w / "index.db"], 2,
     "is corrupt (its terms are not numbered 0 to n_terms - 1)"),
    ("postings name no document", _postings_edit("UPDATE postings SET rowids = x'ffffff7f' WHERE term = ?"), 2,
     "is corrupt (a term's postings name a document the index does not have)"),
    ("postings name rowid 0", _postings_edit("UPDATE postings SET rowids = x'00000000' WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("postings out of order", _postings_edit("UPDATE postings SET df = 2, rowids = x'0500000003000000' WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("postings of no document", _postings_edit("UPDATE postings SET df = 0, rowids = x'' WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("postings of a rare term missing", _postings_edit("UPDATE postings SET rowids = NULL WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("idf not a number", _edit("UPDATE terms SET idf = 'x'"), 2, "is corrupt (a term's idf is not a number)"),
    ("postings' count not a number", _postings_edit("UPDATE postings SET df = 'x' WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("postings cut", _postings_edit("UPDATE postings SET rowids = x'01' WHERE term = ?"), 2,
     "is corrupt (a term's postings are damaged)"),
    ("word counts not JSON (eval)", _eval_after(_edit("UPDATE documents SET counts = 'x' WHERE rowid = 3")), 2,
     "is corrupt (a stored word count list is damaged)"),
    ("word counts name no word (eval)", _eval_after(_edit("""UPDATE documents SET counts = '{"zzqx": 1}'""")), 2,
     "is corrupt (a stored word count list is damaged)"),
    ("labels not JSON", _edit("UPDATE documents SET labels = 'x'"), 2, "is corrupt (a label list is not JSON)"),
    # Found by tests/test_fuzz.py: each was a traceback (or, the last, an error on three lines).
    ("codes name a deleted document", _edit(["DROP TRIGGER code_blocks_delete", "DROP TRIGGER postings_delete",
                                             "DELETE FROM documents WHERE rowid > 1"]), 2,
     "is corrupt (its codes name a document it does not have)"),
    ("labels not a list", _edit("UPDATE documents SET labels = '7'"), 2, "is corrupt (a label list is damaged)"),
    ("TF-IDF vector is a number", _edit("UPDATE documents SET terms = 7 WHERE rowid = 3"), 2,
     "is corrupt (a stored TF-IDF vector is not a blob)"),
    ("neighbour list is a number", _edit("UPDATE documents SET neighbours = 7 WHERE rowid = 3"), 2,
     "is corrupt (a stored neighbour list is damaged)"),
    ("address is a blob", _edit(["DROP TRIGGER code_blocks_update", "UPDATE documents SET address = CAST('1' AS BLOB)"]), 2,
     "is corrupt (a stored document's id, path, title or address is damaged)"),
    ("weight shape not a list", lambda w: [*_edit("UPDATE weights SET shape = '1e308' WHERE name LIKE '%encoder1%'")(w)[:0], "info", "-d", w / "index.db"],
     2, "is corrupt (weight 'head0.encoder1.W' is not float32 of shape 1e+308)"),
    ("meta of the wrong type", _edit("UPDATE meta SET value = '0.5' WHERE key = 'messages'"), 2, "is corrupt (meta messages is 0.5)"),
    ("vocabulary word not text", _edit('UPDATE vocabulary SET word = NULL WHERE "column" = 0'), 2,
     "is corrupt (a vocabulary word is not text)"),
    ("term not text", _edit([UNSTEMMED, "UPDATE terms SET term = NULL WHERE id = 5"]), 2, "is corrupt (a term is not text)"),
    ("idf past float32", _edit("UPDATE terms SET idf = 1e308"), 2, "is corrupt (a term's idf is not a number)"),
    # (the rankers size arrays by the count: 2**31 asked for 16 GiB)
    ("term count past its terms", _edit("UPDATE meta SET value = '2147483648' WHERE key = 'n_terms'"), 2,
     "is corrupt (its term count does not match its terms)"),
    ("text not UTF-8, quoted", _edit("UPDATE meta SET key = CAST(x'6162ff0a1b5b326a' AS TEXT) WHERE key = 'created'"), 2,
     "\\n\\x1b[2j"),
    ("--retrain over a text file", _index_over("notes.txt", lambda p: p.write_text("notes")), 2,
     "notes.txt exists and is not a semhash index: choose another -d/--database, or remove it"),
    ("--retrain over another app's db", _index_over("app.db", lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)")),
     2, "app.db exists and is not a semhash index"),
    ("malformed JSON line", _jsonl(["{oops"]), 2,
     "line 2 of stdin is not valid JSON: Expecting property name enclosed in double quotes at column 2; "),
    ("JSON nested too deeply", _jsonl(["[" * 100_000]), 2, "line 2 of stdin is not valid JSON: nested too deeply"),
    ("JSON number too long", _jsonl(['{"id": ' + "9" * 5000 + ', "text": "x"}']), 2, "a number is too long"),
    ("JSON line without text", _jsonl(['{"id": "x"}']), 2, "pass --skip-bad-lines to skip such lines"),
    ("JSON line with an empty id", _jsonl(['{"id": "", "text": "x"}']), 2,
     "line 2 of stdin has an 'id' that is not a non-empty string (left out, the line number is the id); "
     "fix it, or pass --skip-bad-lines to skip such lines"),
    ("malformed query line", _query_jsonl('{"id": "q1", "text": 3}'), 2, "line 1 of stdin has no 'text' string"),
    ("--code-bits 0", _cmd("index", "corpus", "-d", "DB", "--code-bits", "0"), 2, "0 is not in the range 1<=x<=4096"),
    ("--code-bits too wide", _cmd("index", "corpus", "-d", "DB", "--code-bits", "99999"), 2, "1<=x<=4096"),
    ("--address-bits 64", _cmd("index", "corpus", "-d", "DB", "--address-bits", "64"), 2, "1<=x<=63"),
    ("--vocab-size 1", _cmd("index", "corpus", "-d", "DB", "--vocab-size", "1"), 2, "2<=x<=1000000"),
    ("--hidden 0", _cmd("index", "corpus", "-d", "DB", "--hidden", "32,0"), 2, "expected integers from 1 to 100000"),
    ("--seed -1", _cmd("index", "corpus", "-d", "DB", "--seed", "-1", "--retrain"), 2, "0<=x<=4294967295"),
    ("--train-sample 5", _cmd("index", "corpus", "-d", "DB", "--train-sample", "5", "--retrain"), 2, "x>=10"),
    ("map --seed -1", _cmd("map", "-d", "DB", "--plot", "map.png", "--seed", "-1"), 2, "0<=x<=4294967295"),
    ("map --seed 2**32", _cmd("map", "-d", "DB", "--plot", "map.png", "--seed", str(2**32)), 2, "0<=x<=4294967295"),
    ("--max-bytes 0", _cmd("index", "corpus", "-d", "DB", "--max-bytes", "0"), 2, "x>=1"),
    ("-n 0", _cmd("query", "space", "-d", "DB", "-n", "0"), 2, "0 is not in the range x>=1"),
    ("--max-distance -1", _cmd("query", "space", "-d", "DB", "--max-distance", "-1"), 2, "x>=0"),
    ("min above max distance", _cmd("similar", "x", "-d", "DB", "--min-distance", "9", "--max-distance", "2"), 2,
     "--min-distance 9 is greater than --max-distance 2"),
    ("two output formats", _cmd("query", "space", "-d", "DB", "--json", "--csv"), 2,
     "--json and --csv both given: choose one output format"),
    ("db path empty", _cmd("index", "corpus", "-d", ""), 2, "the path is empty: name the index file"),
    ("db is a directory", _cmd("query", "space", "-d", "corpus"), 2, "is a directory"),
    ("db in a missing folder", _cmd("index", "corpus", "-d", "nowhere/index.db"), 2,
     "cannot write nowhere/index.db (No such file or directory: nowhere/index.db.lock)"),
]


@pytest.mark.parametrize(("setup", "code", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_clear_line(work, monkeypatch, setup, code, message):
    monkeypatch.chdir(work)
    if "its terms are not numbered" in message or "a term is not text" in message:
        # Damage only the reader of every term sees: the query path takes it by the
        # kernels' tokenizer, which it chooses only once numba's cache holds it.
        from semhash import lazy

        chosen = lazy.use_kernels
        monkeypatch.setattr(lazy, "use_kernels", lambda cost, kernel=None: kernel == "ascii_word_ids" or chosen(cost, kernel))
    args = setup(work)
    args, stdin = args if isinstance(args, tuple) else (args, "zzqx wwvy\n")
    before = {p: p.read_bytes() for p in work.iterdir() if p.is_file()}
    result = run(*args, input=stdin)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if code == 2:
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(lines) == 1 and lines[0] == result.stderr.splitlines()[-1]
    else:
        assert result.stdout in ("", "[]\n")
        assert ("--json" in args) == (result.stdout == "[]\n")
    # A failed command changed nothing that was there (an index or anyone's file).
    for path, data in before.items():
        if path.name not in ("index.db.lock",):
            assert path.read_bytes() == data, path


def test_odd_files_are_indexed_or_skipped_and_counted(work, monkeypatch):
    """Binary, empty, NUL, invalid UTF-8, huge, one-line and looping files: no error, all counted."""
    corpus = work / "corpus"
    odd = corpus / "odd"
    odd.mkdir()
    (odd / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (odd / "nul-late").write_bytes(b"space shuttle " * 1000 + b"\x00tail")  # NUL after the sniffed 8 KiB: text
    (odd / "empty").write_bytes(b"")
    (odd / "latin1").write_bytes("caf\xe9 orbit na\xefve shuttle".encode("latin-1"))  # not UTF-8
    (odd / "long-line").write_text("orbit " * 400_000)  # 2.4 MB, one line
    (odd / "loop").symlink_to(corpus, target_is_directory=True)  # a symlink loop
    result = run("index", corpus, "-d", work / "odd.db", "--max-bytes", "100000", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith("indexed 64 documents, skipped 1 files (1 binary, 0 unreadable), 1 truncated, ")
    conn = sqlite3.connect(work / "odd.db")
    titles = dict(conn.execute("SELECT id, title FROM documents WHERE id LIKE 'odd/%'").fetchall())
    assert set(titles) == {"odd/nul-late", "odd/empty", "odd/latin1", "odd/long-line"}
    assert titles["odd/latin1"] == "café orbit naïve shuttle" and len(titles["odd/long-line"]) == 120
    # A query of each kind still works.
    assert run("query", "orbit", "-d", work / "odd.db", "-n", "1").exit_code == 0


def test_skip_bad_lines_counts_and_continues(work):
    texts = texts_of(work / "corpus")[:14]
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts)]
    lines[2], lines[6] = "{oops", '{"text": ["not", "a", "string"]}'
    stdin = "\n".join(lines) + "\n"
    db = work / "lines.db"
    result = run("index", "-", "-d", db, *TINY_MODEL, input=stdin)
    assert result.exit_code == 2 and "line 3 of stdin is not valid JSON" in result.stderr and not db.exists()
    result = run("index", "-", "-d", db, "--skip-bad-lines", *TINY_MODEL, input=stdin)
    assert result.exit_code == 0, result.output
    assert "indexed 12 documents, skipped 0 files (0 binary, 0 unreadable), 2 bad JSON lines skipped (line 3, 7)" in result.stderr
    # The same for an update, for queries and for encode.
    result = run("index", "-", "-d", db, "--skip-bad-lines", input=stdin)
    assert "unchanged 12, removed 0 (12 documents), skipped 0 files (0 binary, 0 unreadable), 2 bad JSON lines" in result.stderr
    queries = '{"id": "q1", "text": "graphics"}\n{bad\n{"id": "q3", "text": "image file"}\n'
    result = run("query", "-", "--jsonl", "--skip-bad-lines", "-d", db, "-n", "1", input=queries)
    assert result.exit_code == 0 and [r.split("\t")[0] for r in result.stdout.splitlines()] == ["q1", "q3"]
    assert result.stderr.startswith("warning: line 2 of stdin is not valid JSON")
    result = run("encode", "--skip-bad-lines", "-d", db, input=queries)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
    assert "warning: line 2 of stdin is not a valid document, skipped" in result.stderr


def test_json_text_is_capped_like_a_file(work):
    texts = texts_of(work / "corpus")[:12]
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts)]
    lines.append(json.dumps({"id": "huge", "text": "orbit " * 50_000}))
    result = run("index", "-", "-d", work / "j.db", "--max-bytes", "20000", *TINY_MODEL, input="\n".join(lines))
    assert result.exit_code == 0 and ", 1 truncated, " in result.stderr


def test_lone_surrogates_in_ids_and_labels_are_stored(work):
    """JSON allows "\\ud800"; UTF-8 (and so SQLite) does not: it becomes U+FFFD, not a crash."""
    texts = texts_of(work / "corpus")[:12]
    lines = [json.dumps({"id": f"d{i}\ud800", "text": t, "labels": ["x\udfff"]}) for i, t in enumerate(texts)]
    result = run("index", "-", "-d", work / "s.db", *TINY_MODEL, input="\n".join(lines))
    assert result.exit_code == 0, result.output
    ids = [i for (i,) in sqlite3.connect(work / "s.db").execute("SELECT id FROM documents")]
    assert ids[0] == "d0\ufffd"


def test_file_names_that_are_not_utf8_are_stored_escaped(work):
    """A name's undecodable bytes stop nothing: the id spells them as \\xNN, the same each run."""
    write_non_utf8_name(work / "corpus" / "sci.space")
    db = work / "index.db"
    result = run("index", work / "corpus", "-d", db)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1].startswith("added 1, updated 0, unchanged 60, ")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT labels FROM documents WHERE id = ?", ("sci.space/caf\\xe9",)).fetchone() == ('["sci.space"]',)
    result = run("index", work / "corpus", "-d", db, "--prune")
    assert result.stderr.splitlines()[-1].startswith("added 0, updated 0, unchanged 61, removed 0 ")


# -- nothing is lost -------------------------------------------------------------------


def test_wal_lets_a_reader_keep_its_snapshot_while_an_update_commits(work):
    db = work / "index.db"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    reader.execute("BEGIN")
    (n_before,) = reader.execute("SELECT count(*) FROM documents").fetchone()
    # In rollback-journal mode this commit would wait for the reader, then fail.
    with IndexWriter(db) as writer:
        writer.delete([reader.execute("SELECT id FROM documents LIMIT 1").fetchone()[0]])
    assert reader.execute("SELECT count(*) FROM documents").fetchone() == (n_before,)  # its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM documents").fetchone() == (n_before - 1,)
    reader.close()


def test_writers_leave_no_log_for_queries_to_read(built, work):
    # A query is often the index's only connection: it would rebuild SQLite's index
    # of a leftover -wal file by reading all of it (1.1 s at a million documents).
    def log_bytes(db):
        wal = Path(f"{db}-wal")
        return wal.stat().st_size if wal.exists() else 0

    assert log_bytes(built / "index.db") == 0  # a new index (its neighbours written with it open)
    (work / "corpus" / "sci.space" / "extra").write_text("Subject: orbit\n\nshuttle orbit launch", encoding="latin-1")
    assert run("index", work / "corpus", "-d", work / "index.db", "-s").exit_code == 0  # an update
    assert log_bytes(work / "index.db") == 0
    reader = sqlite3.connect(f"file:{work / 'index.db'}?mode=ro", uri=True)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM documents").fetchone()  # a snapshot the reset must not wait for
    start = time.perf_counter()
    with IndexWriter(work / "index.db") as writer:
        writer.delete(["sci.space/extra"])
    assert time.perf_counter() - start < 5  # gave up on the reset instead of waiting 30 s
    reader.execute("COMMIT")
    reader.close()
    with IndexWriter(work / "index.db") as writer:  # the next write empties the log
        writer.set_meta({"note": 1})
    assert log_bytes(work / "index.db") == 0


def test_the_typical_length_is_kept_with_the_documents(work):
    # Short queries are read as a document of the median length: the writers keep
    # it in meta (a query at a million documents would read them all for it).
    db = work / "index.db"

    def stored_and_true():
        conn = sqlite3.connect(db)
        (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'typical_length'").fetchone()
        lengths = [n for (n,) in conn.execute("SELECT n_words FROM documents")]
        conn.close()
        return json.loads(stored), float(np.median(lengths))

    before, true = stored_and_true()
    assert before == true
    long_post = "Subject: orbit\n\n" + " ".join(["shuttle orbit launch nasa space mission"] * 200)
    for i in range(40):  # enough long posts to move the median
        (work / "corpus" / "sci.space" / f"long{i}").write_text(long_post, encoding="latin-1")
    assert run("index", work / "corpus", "-d", db, "-s").exit_code == 0
    grown, true = stored_and_true()
    assert grown == true > before
    with IndexWriter(db) as writer:
        writer.delete([f"sci.space/long{i}" for i in range(40)])
    assert stored_and_true() == (before, before)
    with Index.open(db) as index:
        kept = index.typical_length()
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM meta WHERE key = 'typical_length'")  # as an index written before
    conn.commit()
    conn.close()
    with Index.open(db) as index:
        assert index.typical_length() == kept
    with IndexWriter(db) as writer:  # any write stores it again
        writer.set_meta({"note": 1})
    assert stored_and_true() == (kept, kept)
    # A damaged value no document could have is read afresh too (1e300 had lifted
    # short queries' counts to inf: numpy warned and their codes were noise).
    conn = sqlite3.connect(db)
    conn.execute("REPLACE INTO meta (key, value) VALUES ('typical_length', '1e300')")
    conn.commit()
    conn.close()
    with Index.open(db) as index:
        assert index.typical_length() == kept


def test_rebuild_keeps_readers_and_stays_wal(work):
    """--retrain over an index rebuilds it in one transaction: an open Index keeps working."""
    db = work / "index.db"
    with Index.open(db) as index:
        hits = index.query("space shuttle orbit", k=3)
        result = run("index", work / "corpus", "-d", db, "--retrain", "-s", *TINY_MODEL[:-2], "--vocab-size", "200")
        assert result.exit_code == 0, result.output
        # An open Index follows its file: it reloads the rebuilt index, never mixes the two.
        again = index.query("space shuttle orbit", k=3)
        assert len(index.vocabulary) == 200 and len(again) == 3
        assert [h.path for h in again] == [str(work / "corpus" / h.id) for h in again]
    with Index.open(db) as index:
        assert len(index.vocabulary) == 200
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert not list(work.glob(".index.db.*"))  # no temporary file left


def test_migrations_are_numbered_and_an_update_never_downgrades(work):
    assert sorted(migrations.MIGRATIONS) == list(range(store.OLDEST_SCHEMA + 1, store.SCHEMA_VERSION + 1))
    db = work / "index.db"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer semhash"):
        IndexWriter(db)
    assert json.loads(sqlite3.connect(db).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == 99


PAUSED_SEMHASH = """
import os, sys, time
from pathlib import Path
from semhash import writer

def pause():
    Path(os.environ["PAUSE_READY"]).write_text(str(os.getpid()))
    go, deadline = Path(os.environ["PAUSE_GO"]), time.time() + 120
    while not go.exists() and time.time() < deadline:
        time.sleep(0.02)

# Pause inside the write transaction, once every document is written, before COMMIT.
if os.environ["PAUSE_IN"] == "build":
    insert = writer._insert_documents
    writer._insert_documents = lambda *a: (insert(*a), pause())
else:
    upsert = writer.IndexWriter.upsert
    writer.IndexWriter.upsert = lambda self, *a: (upsert(self, *a), pause())

from semhash.cli import cli
cli(sys.argv[1:], prog_name="semhash")
"""


class Paused:
    """A real ``semhash index`` process that stops inside its write transaction."""

    def __init__(self, where: str, args: list, tmp: Path):
        self.ready, self.go = tmp / "ready", tmp / "go"
        self.ready.unlink(missing_ok=True)
        self.go.unlink(missing_ok=True)
        script = tmp / "paused_semhash.py"
        script.write_text(PAUSED_SEMHASH)
        env = {**os.environ, "PAUSE_IN": where, "PAUSE_READY": str(self.ready), "PAUSE_GO": str(self.go)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "index", *map(str, args)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.time() + 90
        while not self.ready.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"never reached the pause: {self.proc.communicate()}")
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def resume(self) -> tuple[int, str]:
        self.go.touch()
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err


def semhash(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "semhash", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


NEW_POST = "Subject: shuttle\n\nThe shuttle launch put the satellite in orbit around the moon.\n"


@pytest.mark.parametrize("where", ["rebuild", "update", "first build"])
def test_kill_9_mid_index_leaves_the_previous_index(work, where):
    corpus, db = work / "corpus", work / "index.db"
    (corpus / "sci.space" / "new").write_text(NEW_POST)
    if where == "first build":
        db.unlink()
    before = dump(db) if db.exists() else None
    args = [corpus, "-d", db, *{"rebuild": ["--retrain", "--seed", "7", *TINY_MODEL], "update": [], "first build": TINY_MODEL}[where]]
    writer = Paused("update" if where == "update" else "build", args, work)
    # Mid-transaction, queries read the committed index.
    if before is not None:
        during = semhash("query", "space shuttle", "-d", db, "-n", "3")
        assert during.returncode == 0 and len(during.stdout.splitlines()) == 3, during.stderr
    writer.kill()
    if before is None:
        assert not db.exists()  # no half-written index where the index should be
    else:
        assert dump(db) == before
        after = semhash("query", "space shuttle", "-d", db, "-n", "3")
        assert after.returncode == 0 and len(after.stdout.splitlines()) == 3, after.stderr
    # The lock died with the writer: the same run now goes through, and cleans up.
    again = semhash("index", *args[:3], *TINY_MODEL, "-s")
    assert again.returncode == 0, again.stderr
    assert "sci.space/new" in {i for (i,) in sqlite3.connect(db).execute("SELECT id FROM documents")}
    assert not list(work.glob(".index.db.*"))


def test_a_second_index_run_fails_cleanly_or_waits(work):
    corpus, db = work / "corpus", work / "index.db"
    (corpus / "sci.space" / "new").write_text(NEW_POST)
    before = dump(db)
    first = Paused("build", [corpus, "-d", db, "--retrain", "-s", *TINY_MODEL], work)
    second = semhash("index", corpus, "-d", db, "-s")
    assert second.returncode == 2
    assert second.stderr == (
        f"Error: another `semhash index` is writing {db} (pid {first.proc.pid}): "
        "wait for it to finish, or pass --wait to queue behind it\n"
    )
    assert dump(db) == before
    waiting = subprocess.Popen(
        [sys.executable, "-m", "semhash", "index", str(corpus), "-d", str(db), "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.5)
    assert waiting.poll() is None  # queued behind the first
    assert first.resume() == (0, "")
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    # It ran after the first had committed: an update of the rebuilt index, not a second build.
    assert err.splitlines()[-1].startswith("added 0, updated 0, unchanged 61, removed 0 (61 documents)")


# -- a stored index never runs code, every statement is parameterized -------------------

NASTY = [
    "x'; DROP TABLE documents; --",
    'Robert"); DELETE FROM meta; --',
    "SELECT * FROM weights",
    "1 OR 1=1",
    "%_*?[]",
    "tab\there",
    "naïve/ünïcode ☃",
    "back\\slash",
    "semi;colon",
    "'",
    '"',
    "-- comment",
]


def test_ids_labels_and_paths_round_trip_unchanged(work, monkeypatch):
    """Quotes, semicolons and SQL keywords in ids, labels, file names and the database
    name are data, never SQL."""
    texts = texts_of(work / "corpus")
    root = work / "files"
    folder = root / "Quote's; DROP TABLE documents; --"
    folder.mkdir(parents=True)
    for name, text in zip(NASTY, texts):
        if "/" not in name:
            (folder / name).write_text(text)
    db = work / "in'dex; DROP TABLE meta;?#%.db"
    lines = [json.dumps({"id": n, "text": t, "labels": [n, "ok"]}) for n, t in zip(NASTY, texts[20:])]
    assert run("index", "-", "-d", db, "-s", *TINY_MODEL, input="\n".join(lines)).exit_code == 0
    assert run("index", root, "-d", db, "-s").exit_code == 0
    conn = sqlite3.connect(db)
    assert {t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == set(store.TABLES)
    rows = {i: (p, json.loads(labels)) for i, p, labels in conn.execute("SELECT id, path, labels FROM documents")}
    for name in NASTY:
        assert rows[name] == (None, [name, "ok"])
        result = run("similar", "-d", db, "-n", "100", "--nl", "--fields", "id,path,label", "--", name)
        assert result.exit_code == 0, result.output
        hits = [json.loads(line) for line in result.stdout.splitlines()]
        assert name not in [h["id"] for h in hits] and len(hits) == len(rows) - 1
        for h in hits:
            assert h["path"] == rows[h["id"]][0] and h["label"] == ",".join(rows[h["id"]][1])
    files = [n for n in NASTY if "/" not in n]
    for name in files:
        assert rows[f"{folder.name}/{name}"] == (str(folder / name), [folder.name])
    # --prune under that folder removes exactly its one missing file.
    (folder / files[0]).unlink()
    result = run("index", root, "-d", db, "--prune")
    assert "removed 1 (" in result.stderr
    left = {i for (i,) in conn.execute("SELECT id FROM documents")}
    assert f"{folder.name}/{files[0]}" not in left and set(NASTY) <= left


def test_a_read_only_index_says_it_cannot_be_written_or_read(work, monkeypatch):
    """A read-only index is not a corrupt one: the message says what is wrong.

    The test runs as any user (root ignores file modes), so it opens the index the
    way SQLite does when it cannot write it: read-only, where BEGIN succeeds and
    the first write fails."""
    db = work / "index.db"
    before = dump(db)
    monkeypatch.setattr(writer, "_connect_writer", lambda path, wal=True: sqlite3.connect(
        store.ro_uri(path), uri=True, isolation_level=None))
    result = run("index", work / "corpus", "-d", db, "-s")
    assert result.exit_code == 2 and result.stderr == (
        f"Error: cannot write to {db} (attempt to write a readonly database): the index is unchanged\n")
    assert dump(db) == before
    # A reader in a read-only folder without the -shm file: SQLite cannot create it.
    # SQLite 3.40 says "unable to open database file" (seen with the folder made
    # immutable). The index is then opened immutable, and queries work (issue 25)...
    connect = sqlite3.connect
    for message in ("attempt to write a readonly database", "unable to open database file"):

        def no_shm(database, *args, **kwargs):
            if str(database).startswith("file:") and "immutable=1" not in str(database):
                raise sqlite3.OperationalError(message)
            return connect(database, *args, **kwargs)

        monkeypatch.setattr(store.sqlite3, "connect", no_shm)
        for command in (["query", "space"], ["info"]):
            result = run(*command, "-d", db)
            assert result.exit_code == 0 and result.stdout and not result.stderr, result.output
        # ... unless a -wal file holds changes that immutable would not read.
        Path(f"{db}-wal").write_bytes(b"x" * 100)
        result = run("query", "space", "-d", db)
        assert result.exit_code == 2 and result.stderr == (
            f"Error: cannot read {db} ({message}): "
            "SQLite needs to create index.db-shm beside it to read index.db-wal; make its folder writable\n")
        Path(f"{db}-wal").unlink()
    assert dump(db) == before


def test_a_retrain_of_an_index_it_may_not_write_is_refused_before_training(work, monkeypatch):
    """--retrain trains for minutes before it writes: an index this user may not
    write is refused first (os.access stands in for the file's mode: root ignores it)."""
    from semhash.hasher import SemanticHasher

    db = work / "index.db"
    before = dump(db)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (Path(path) == db and mode == os.W_OK))
    monkeypatch.setattr(SemanticHasher, "fit", lambda *args, **kwargs: pytest.fail("trained before checking"))
    result = run("index", work / "corpus", "-d", db, "-s", "--retrain")
    assert result.exit_code == 2 and result.stderr == f"Error: cannot write to {db} (permission denied): the index is unchanged\n"
    assert dump(db) == before


def test_no_pickle_anywhere():
    source = Path(__file__).resolve().parent.parent / "semhash"
    for path in source.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text and "np.load(" not in text, path


# -- property tests --------------------------------------------------------------------

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text())
@example("\ud800 lone surrogate")
@example("x" * 10_000)
@example("İstanbul ǅ ß ﬃ ½ ① _under_score_")
def test_tokenizer_and_counts_never_raise(text):
    tokens = tokenize(text)
    assert all(isinstance(t, str) and t and t[0].isalpha() for t in tokens)
    assert all(WORD_RE.fullmatch(t) for t in tokens)
    words = list(dict.fromkeys(["orbit", *tokens[:3]]))  # a vocabulary: no word twice
    counts = count_words([text, ""], words)
    assert counts.shape == (2, len(words)) and counts.dtype == np.float32
    assert counts[0].sum() == sum(t in words for t in tokens) and counts[1].sum() == 0


@FAST
@given(st.integers(0, 6), st.integers(0, 200), st.randoms())
def test_code_packing_round_trips(n, n_bits, rnd):
    bits = np.array([[rnd.random() < 0.5 for _ in range(n_bits)] for _ in range(n)], dtype=bool).reshape(n, n_bits)
    words = codes.pack_codes(bits)
    assert words.shape == (n, -(-n_bits // 64)) and words.dtype == np.uint64
    assert np.array_equal(codes.unpack_codes(words, n_bits), bits)
    assert np.array_equal(codes.bytes_to_codes(codes.codes_to_bytes(words), words.shape[1]), words)
    hex_ = codes.to_hex(words, n_bits)
    assert all(int(h or "0", 16) == sum(1 << j for j in range(n_bits) if bits[i, j]) for i, h in enumerate(hex_))
    if n_bits <= 63:
        addresses = codes.to_addresses(bits)
        assert all(0 <= a < 2**n_bits or n_bits == 0 for a in addresses.tolist())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "text", "labels", "x"]), inner, max_size=4),
    max_leaves=8,
)


@FAST
@given(st.lists(st.text() | JSON_VALUES.map(json.dumps), max_size=5))
@example(["[" * 50_000])
@example(['{"id": ' + "1" * 5000 + ', "text": "t"}'])
@example(['{"id": "\\ud800", "text": "\\udfff", "labels": ["\\ud800"]}'])
@example(['{"text": "t", "id": 1e999}', "NaN", '{"text": "t", "labels": null}'])
def test_jsonl_parser_raises_only_bad_line(lines):
    try:
        docs = list(iter_jsonl(lines))
    except BadLine as e:
        assert "\n" not in str(e) and str(e).startswith(f"line {e.lineno} of stdin ")
        return
    for doc in docs:
        assert isinstance(doc.id, str) and isinstance(doc.text, str) and all(isinstance(x, str) for x in doc.labels)
        (doc.id + doc.text + "".join(doc.labels)).encode("utf-8")  # storable
    skipped = []
    assert len(list(iter_jsonl(lines, on_error=skipped.append))) == len(docs) and not skipped


@pytest.fixture(scope="module")
def opened(built):
    with Index.open(built / "index.db") as index:
        yield index


@settings(max_examples=60, deadline=None)
@given(st.text())
@example("the and of")
@example("BIT")  # codes-only hits not in distance order
@example("\x00\ud800")
def test_a_query_of_any_text_finds_hits_or_says_it_has_no_words(opened, text):
    in_vocabulary = count_words([text], opened.vocabulary, stem=opened.stem).sum() > 0
    is_term = shortlists.query_vectors(opened, encoding.read(opened, [text]))[1].size > 0  # a word of the indexed documents
    try:
        hits = opened.query(text, k=5)
    except EmptyQuery:
        assert not in_vocabulary and not is_term
        return
    assert 1 <= len(hits) <= 5 and len({h.id for h in hits}) == len(hits)
    if not in_vocabulary:  # answered by its indexed words alone; the codes, by its terms' codes if any
        if encoding.encode_query(opened, encoding.read(opened, [text]), lift=True)[3][0]:
            assert 1 <= len(opened.query(text, k=5, codes_only=True)) <= 5
        else:
            with pytest.raises(EmptyQuery):
                opened.query(text, k=5, codes_only=True)
        return
    # Ranked by the codes alone: as many hits, each at the Hamming distance between
    # its long code and the query's (the bits the nearest codes share may reorder
    # them, as words do on the default path: docs/usage.md).
    by_code = opened.query(text, k=5, codes_only=True)
    assert len(by_code) == len(hits) and len({h.id for h in by_code}) == len(by_code)
    query_code = encoding.encode_query(opened, encoding.read(opened, [text]), lift=True)[1][0]
    with sqlite3.connect(opened.stored.path) as conn:
        rowids = [conn.execute("SELECT rowid FROM documents WHERE id = ?", (h.id,)).fetchone()[0] for h in by_code]
    codes = opened.codes[np.searchsorted(opened.rowids, rowids)]
    assert [h.distance for h in by_code] == np.bitwise_count(codes ^ query_code).sum(axis=1).tolist()
