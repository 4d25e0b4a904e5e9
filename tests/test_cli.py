"""End to end through the CLI: index a tiny real corpus, query it in every format."""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from semhash import batches as query_batches
from semhash import options, output
from semhash import cli as cli_module
from semhash import rerank, store
from semhash.cli import cli
from tests.conftest import GROUPS, TINY_MODEL

# Vocabulary coverage of the tiny corpus: deterministic (tokenizer + vocabulary), not model-dependent.
OOV_BUILD = "60.7%"  # share of the corpus's words outside the 300-word vocabulary
OOV_RETRAIN = "60.5%"  # the same with NEW_POST added
DRIFT_ADD = "54.5%"  # NEW_POST + the changed hockey post, against the built vocabulary
DRIFT_NEW_POST = "37.5%"  # NEW_POST alone


@pytest.fixture(scope="module")
def db(tiny_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "index.db"
    result = CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(path), *TINY_MODEL])
    assert result.exit_code == 0, result.output
    return path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_index_summary_and_tables(db, tiny_corpus):
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 60
    ids = {r[0] for r in conn.execute("SELECT id FROM documents")}
    assert ids == {f"{p.parent.name}/{p.name}" for p in tiny_corpus.rglob("*") if p.is_file()}
    labels = {r[0] for r in conn.execute("SELECT labels FROM documents")}
    assert labels == {json.dumps([g]) for g in GROUPS}
    assert conn.execute("SELECT count(*) FROM vocabulary").fetchone()[0] == 300
    assert conn.execute("SELECT max(address) < 256, min(length(code)) FROM documents").fetchone() == (1, 8)  # 32 bits fill one 64-bit word
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert json.loads(meta["address_bits"]) == 8 and json.loads(meta["code_bits"]) == 32
    # Weights are raw float32 with their shapes, never pickles.
    for name, shape, data in conn.execute("SELECT name, shape, data FROM weights"):
        n = 1
        for s in json.loads(shape):
            n *= s
        assert len(data) == 4 * n, name


def test_summary_line(tiny_corpus, tmp_path):
    (tiny_corpus.parent / "bin").mkdir(exist_ok=True)
    result = run("index", str(tiny_corpus), "-d", str(tmp_path / "x.db"), *TINY_MODEL)
    assert result.exit_code == 0
    assert result.stdout == ""  # stdout carries data only
    assert "indexed 60 documents, skipped 0 files (0 binary, 0 unreadable), vocabulary 300 words" in result.stderr


@pytest.mark.parametrize("corpus", ["empty", "too few", "missing", "no words"])
def test_a_failed_index_draws_no_bar_and_leaves_no_file(tmp_path, corpus, db):
    # It drew "reading and counting words: 0doc" above its error, and left x.db.lock.
    work = tmp_path / "work"
    (work / "empty").mkdir(parents=True)
    (work / "few" / "a").mkdir(parents=True)
    for i in range(3):
        (work / "few" / "a" / str(i)).write_text(f"shuttle orbit launch number {i}\n")
    args, stdin = {
        "empty": ([str(work / "empty")], None),
        "too few": ([str(work / "few")], None),
        "missing": ([str(work / "missing")], None),
        "no words": (["-"], '{"id": "a", "text": "the of and 1993"}\n'),
    }[corpus]
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    result = run("index", *args, "-d", str(work / "x.db"), input=stdin)
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert errors[-1].startswith("Error: ")
    if corpus in ("empty", "missing"):  # (the others read documents: their bar shows work done)
        assert errors == errors[-1:]
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
    assert not (db.parent / "index.db.lock").exists()  # nor does a run that succeeded


@pytest.mark.parametrize("with_headers, reads", [
    (0, "whole texts (no mail or news headers in the documents it was built from)"),
    (15, "messages as Subject + body (15 of the 60 documents it was built from), other texts whole"),
])
def test_info_says_how_the_texts_were_read(tiny_corpus, tmp_path, with_headers, reads):
    # A JSON-lines corpus without mail headers was said to be read "as Subject + body".
    lines = []
    for i, path in enumerate(sorted(p for p in tiny_corpus.rglob("*") if p.is_file())):
        text = path.read_text(encoding="latin-1")
        if i >= with_headers:
            text = text.split("\n\n", 1)[1]  # the body alone
        lines.append(json.dumps({"id": str(i), "text": text}))
    database = str(tmp_path / "x.db")
    assert run("index", "-", "-d", database, "-s", *TINY_MODEL, input="\n".join(lines) + "\n").exit_code == 0
    assert json.loads(run("info", "-d", database, "--json").stdout)["reads"] == reads
    assert f"; reads {reads}" in run("info", "-d", database).stdout


def test_binary_files_skipped_and_counted(tiny_corpus, tmp_path):
    corpus = tmp_path / "c"
    import shutil

    shutil.copytree(tiny_corpus, corpus)
    (corpus / "comp.graphics" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    result = run("index", str(corpus), "-d", str(tmp_path / "x.db"), "-s", *TINY_MODEL)
    assert result.exit_code == 0
    assert result.stderr == ""  # silent
    result = run("index", str(corpus), "-d", str(tmp_path / "x.db"), "--retrain", *TINY_MODEL)
    assert "indexed 60 documents, skipped 1 files (1 binary, 0 unreadable)" in result.stderr


def test_query_default_tsv(db, tiny_corpus):
    result = run("query", post(tiny_corpus, "sci.space", 5), "-d", str(db), "-n", "5")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    distances = []
    for line in lines:
        doc_id, distance = line.split("\t")
        assert doc_id.split("/")[0] in GROUPS
        distances.append(int(distance))
    # The post itself comes first (same words, same code); the rest are ranked by
    # words and codes together, so distances need not ascend.
    assert lines[0].startswith(f"{sorted((tiny_corpus / 'sci.space').iterdir())[5].name}\t") or distances[0] == 0
    assert all(0 <= d <= 32 for d in distances)


def test_query_formats_agree(db, tiny_corpus):
    text = post(tiny_corpus, "rec.sport.hockey", 3)
    tsv = run("query", text, "-d", str(db), "-n", "4").stdout
    nl = run("query", text, "-d", str(db), "-n", "4", "--nl").stdout
    js = run("query", text, "-d", str(db), "-n", "4", "--json").stdout
    assert len(tsv.splitlines()) == 4
    rows = [line.split("\t") for line in tsv.splitlines()]
    expected = [{"id": i, "distance": int(d)} for i, d in rows]
    assert [json.loads(line) for line in nl.splitlines()] == expected
    assert json.loads(js) == expected


def test_query_env_database(db, monkeypatch):
    monkeypatch.setenv("SEMHASH_DB", str(db))
    result = run("query", "image", "-n", "1")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1


def test_query_words_unquoted_are_joined(db):
    # `semhash query pdf viewer`, typed as `apt-cache search pdf viewer` is: click said
    # "Got unexpected extra argument (viewer)".
    quoted = run("query", "space shuttle orbit", "-d", str(db), "--fields", "id,score")
    unquoted = run("query", "space", "shuttle", "orbit", "-d", str(db), "--fields", "id,score")
    assert quoted.exit_code == 0 and quoted.stdout
    assert unquoted.exit_code == 0 and unquoted.stdout == quoted.stdout
    # A lone "-" is still stdin; among other words it is a word (the tokenizer drops it).
    assert run("query", "-", "-d", str(db), "--fields", "id,score", input="space shuttle orbit\n").exit_code == 0
    assert run("query", "space", "-", "orbit", "-d", str(db), "--fields", "id,score").stdout == run(
        "query", "space orbit", "-d", str(db), "--fields", "id,score").stdout
    missing = run("query", "-d", str(db))
    assert missing.exit_code == 2 and "Missing argument 'TEXT...'" in missing.stderr


def post(tiny_corpus, group, i=0):
    """The text of a real post, on one line."""
    path = sorted((tiny_corpus / group).iterdir())[i]
    return " ".join(path.read_text(encoding="latin-1").split())


def test_batch_query_lines(db, tiny_corpus):
    space, hockey = post(tiny_corpus, "sci.space"), post(tiny_corpus, "rec.sport.hockey")
    result = run("query", "-", "-d", str(db), "-n", "3", input=f"{space}\n{hockey}\n")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1"), ("2", "2"), ("2", "3")]
    single = run("query", hockey, "-d", str(db), "-n", "3").stdout.splitlines()
    assert ["\t".join(r[2:]) for r in rows[3:]] == single


def test_batch_query_jsonl_nl(db, tiny_corpus):
    space, hockey = post(tiny_corpus, "sci.space"), post(tiny_corpus, "rec.sport.hockey")
    stdin = json.dumps({"id": "q-a", "text": space}) + "\n" + json.dumps({"id": "q-b", "text": hockey}) + "\n"
    result = run("query", "-", "--jsonl", "--nl", "-d", str(db), "-n", "2", input=stdin)
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["query"], r["rank"]) for r in rows] == [("q-a", 1), ("q-a", 2), ("q-b", 1), ("q-b", 2)]
    assert set(rows[0]) == {"query", "rank", "id", "distance"}
    # A file saved with a byte order mark: "line 1 of stdin is not valid JSON" before.
    bom = run("query", "-", "--jsonl", "--nl", "-d", str(db), "-n", "2", input=b"\xef\xbb\xbf" + stdin.encode())
    assert bom.exit_code == 0 and bom.stdout == result.stdout


def test_query_by_whole_document_finds_itself(db, tiny_corpus):
    path = sorted((tiny_corpus / "sci.space").iterdir())[0]
    stdin = json.dumps({"id": "self", "text": path.read_text(encoding="latin-1")}) + "\n"
    rows = [json.loads(x) for x in run("query", "-", "--jsonl", "--nl", "-d", str(db), "-n", "60", input=stdin).stdout.splitlines()]
    hit = [r for r in rows if r["id"] == f"sci.space/{path.name}"]
    assert hit and hit[0]["distance"] == 0


def test_query_without_known_words(db):
    result = run("query", "zzzqqq xxyyzz", "-d", str(db), "--json")
    assert result.exit_code == 1
    assert result.stdout.strip() == "[]"
    assert "no words in the index vocabulary" in result.stderr


def test_missing_database_is_a_clear_error(tmp_path):
    result = run("query", "anything", "-d", str(tmp_path / "nope.db"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no index at") and "Traceback" not in result.output


def test_not_an_index(tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    result = run("query", "anything", "-d", str(bogus))
    assert result.exit_code == 2 and "is not a semhash index" in result.stderr


def test_index_missing_path(tmp_path):
    result = run("index", str(tmp_path / "missing"), "-d", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and "no such file or directory" in result.stderr


def test_index_too_small_keeps_old_index(db, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("just one document about rockets")
    before = db.read_bytes()
    result = run("index", str(small), "-d", str(db), "--retrain")
    assert result.exit_code == 2 and "at least 10 are needed" in result.stderr
    assert db.read_bytes() == before


def test_index_from_stdin_jsonl(tmp_path, tiny_corpus):
    lines = []
    for p in sorted(tiny_corpus.rglob("*")):
        if p.is_file():
            lines.append(json.dumps({"id": p.name, "text": p.read_text(encoding="latin-1"), "labels": [p.parent.name]}))
    db = tmp_path / "s.db"
    result = run("index", "-", "-d", str(db), "-s", *TINY_MODEL, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert sqlite3.connect(db).execute("SELECT count(*) FROM documents").fetchone()[0] == 60
    # Documents without an id are named by their line number, which the next
    # stream reuses: the summary says so.
    result = run("index", "-", "-d", str(db), input='{"text": "space shuttle orbit"}\n{"id": "z", "text": "space"}\n')
    assert result.exit_code == 0, result.output
    assert "added 2, " in result.stderr
    assert "1 JSON line without an id named by its line number (another run's line would replace it)" in result.stderr


def test_help_and_version():
    assert run("-h").exit_code == 0
    assert "semhash, version" in run("--version").stdout
    for command in cli.commands:
        result = run(command, "-h")
        assert result.exit_code == 0 and "Example" in result.stdout


def test_same_seed_same_index(db, tiny_corpus, tmp_path):
    again = tmp_path / "again.db"
    assert run("index", str(tiny_corpus), "-d", str(again), "-s", *TINY_MODEL).exit_code == 0
    query = "SELECT id, address, code FROM documents ORDER BY id"
    first = sqlite3.connect(db).execute(query).fetchall()
    assert first == sqlite3.connect(again).execute(query).fetchall()
    assert len({row[2] for row in first}) > 1  # codes did not collapse to one value
    other = tmp_path / "other.db"
    assert run("index", str(tiny_corpus), "-d", str(other), "-s", "--seed", "1", *TINY_MODEL).exit_code == 0
    assert first != sqlite3.connect(other).execute(query).fetchall()


# -- incremental indexing -----------------------------------------------------------

NEW_POST = "Subject: shuttle\n\nThe shuttle launch put the satellite in orbit around the moon: zorblax quuxian.\n"


def last_line(result) -> str:
    """The summary line of ``semhash index`` (after the progress bars), timing masked."""
    return re.sub(r"\d+\.\d+s -> ", "T -> ", result.stderr.splitlines()[-1])


@pytest.fixture(scope="module")
def built(tiny_corpus, tmp_path_factory):
    """A folder holding corpus/ and index.db built from it, with relative paths."""
    root = tmp_path_factory.mktemp("built")
    shutil.copytree(tiny_corpus, root / "corpus")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert run("index", "corpus", "-d", "index.db", "-s", *TINY_MODEL).exit_code == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def work(built, tmp_path, monkeypatch):
    """A private copy of ``built``, as the current directory."""
    shutil.copytree(built, tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    return tmp_path / "w"


def stored(column="id", where=""):
    conn = sqlite3.connect("index.db")
    try:
        return sorted(conn.execute(f"SELECT id, {column} FROM documents {where}").fetchall())
    finally:
        conn.close()


def test_rerun_skips_unchanged(work):
    before = stored("content_hash, address, code, title")
    result = run("index", "corpus", "-d", "index.db", *TINY_MODEL)
    assert result.exit_code == 0 and result.stdout == ""
    assert last_line(result) == (
        "added 0, updated 0, unchanged 60, removed 0 (60 documents), "
        "skipped 0 files (0 binary, 0 unreadable), T -> index.db"
    )
    assert stored("content_hash, address, code, title") == before


def test_add_change_delete_then_prune(work):
    hockey = sorted((work / "corpus" / "rec.sport.hockey").iterdir())
    (work / "corpus" / "sci.space" / "new").write_text(NEW_POST)
    with open(hockey[1], "a") as f:
        f.write("\nThe goalie made a great save in the playoffs.\n")
    hockey[0].unlink()
    before = dict(stored("code"))

    result = run("index", "corpus", "-d", "index.db")
    assert result.exit_code == 0
    assert last_line(result) == (
        "added 1, updated 1, unchanged 58, removed 0 (61 documents), "
        "skipped 0 files (0 binary, 0 unreadable), 1 missing kept (--prune removes them), "
        f"drift: {DRIFT_ADD} of the new documents' words outside the vocabulary ({OOV_BUILD} at build), T -> index.db"
    )
    after = dict(stored("code"))
    assert len(after) == 61 and f"rec.sport.hockey/{hockey[0].name}" in after
    assert {i for i in after if after[i] != before.get(i)} <= {"sci.space/new", f"rec.sport.hockey/{hockey[1].name}"}
    title = stored("title", "WHERE id = 'sci.space/new'")
    assert title == [("sci.space/new", "shuttle")]  # a message's title is its Subject

    result = run("index", "corpus", "-d", "index.db", "--prune", "-s")
    assert result.exit_code == 0 and result.stderr == ""
    result = run("index", "corpus", "-d", "index.db", "--prune")
    assert last_line(result) == (
        "added 0, updated 0, unchanged 60, removed 0 (60 documents), "
        "skipped 0 files (0 binary, 0 unreadable), T -> index.db"
    )
    assert f"rec.sport.hockey/{hockey[0].name}" not in dict(stored())
    info = json.loads(run("info", "-d", "index.db", "--json").stdout)
    assert info["documents"] == 60 and info["labels"] == {"sci.space": 21, "comp.graphics": 20, "rec.sport.hockey": 19}


def test_prune_reports_removed(work):
    (work / "corpus" / "sci.space" / sorted(os.listdir(work / "corpus" / "sci.space"))[0]).unlink()
    result = run("index", "corpus", "-d", "index.db", "--prune")
    assert result.exit_code == 0
    assert last_line(result) == (
        "added 0, updated 0, unchanged 59, removed 1 (59 documents), "
        "skipped 0 files (0 binary, 0 unreadable), T -> index.db"
    )


def test_prune_only_under_the_roots_given(work):
    """Indexing one folder with --prune must not remove the documents of the others."""
    result = run("index", "corpus/sci.space", "-d", "index.db", "--prune")
    assert result.exit_code == 0
    # Ids are relative to the root given, so this run's 20 files are new ids; the old
    # sci.space ids are under the root and gone from this run's view: removed.
    assert last_line(result).startswith("added 20, updated 0, unchanged 0, removed 20 (60 documents)")
    ids = dict(stored())
    assert sum(i.startswith("comp.graphics/") for i in ids) == 20


def test_indexing_the_folder_that_holds_the_index_skips_its_files(work):
    """`semhash index .` beside the index: its empty lock file and WAL were indexed
    as documents, and the WAL, which every run rewrites, reported as updated."""
    assert {p.name for p in work.iterdir()} >= {"index.db", "index.db-wal", "corpus"}  # (the lock file: during a run)
    for _ in range(2):
        result = run("index", ".", "-d", "index.db")
        assert result.exit_code == 0, result.output
        assert "skipped 0 files (0 binary, 0 unreadable)" in last_line(result)
    assert last_line(result).startswith("added 0, updated 0, unchanged 60, ")  # corpus/..., ids from "."
    assert not [i for i, _ in stored() if i.startswith("index.db")]
    listed = "\n".join(str(p) for p in work.rglob("*") if p.is_file())
    result = run("index", "--files-from", "-", "-d", "index.db", input=listed)
    assert last_line(result).startswith("added 0, updated 0, unchanged 60, ")
    assert "index.db" not in run("encode", ".", "-d", "index.db").stdout


def test_relabelling_a_json_line_updates_its_labels(work):
    """The same text with other labels was "unchanged 1", its old labels kept for good."""
    for labels, counts in ((["old"], "added 1, updated 0, unchanged 0"), (["new", "x"], "added 0, updated 1, unchanged 0")):
        line = json.dumps({"id": "j", "text": NEW_POST, "labels": labels})
        result = run("index", "-", "-d", "index.db", input=line)
        assert result.exit_code == 0 and last_line(result).startswith(counts)
        assert stored("labels", "WHERE id = 'j'") == [("j", json.dumps(labels))]
    assert last_line(run("index", "-", "-d", "index.db", input=line)).startswith("added 0, updated 0, unchanged 1")


def test_added_document_is_encoded_like_encode_says(work):
    (work / "corpus" / "sci.space" / "new").write_text(NEW_POST)
    assert run("index", "corpus", "-d", "index.db", "-s").exit_code == 0
    ((_, address, code),) = stored("address, code", "WHERE id = 'sci.space/new'")
    result = run("encode", "corpus/sci.space/new", "-d", "index.db")
    assert result.exit_code == 0
    assert result.stdout == f"corpus/sci.space/new\t{address:02x}\t{int.from_bytes(code, 'little'):08x}\n"
    # And a query by its own text finds it at distance 0.
    hits = run("query", NEW_POST, "-d", "index.db", "-n", "61").stdout.splitlines()
    assert "sci.space/new\t0" in hits


def test_model_options_of_an_update_must_match(work):
    before = (work / "index.db").read_bytes()
    result = run("index", "corpus", "-d", "index.db", "--code-bits", "64", "--hidden", "32")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: index.db was built with other model options: code_bits=64 (the index has 32); "
        "retrain to change the model (semhash index --retrain)\n"
    )
    assert (work / "index.db").read_bytes() == before


def test_retrain_reports_drift(work):
    (work / "corpus" / "sci.space" / "new").write_text(NEW_POST)
    result = run("index", "corpus", "-d", "index.db", "--retrain", *TINY_MODEL)
    assert result.exit_code == 0
    assert last_line(result) == (
        "indexed 61 documents, skipped 0 files (0 binary, 0 unreadable), "
        f"vocabulary 300 words ({OOV_RETRAIN} of words outside), "
        f"drift: {DRIFT_NEW_POST} of the new documents' words outside the previous vocabulary "
        f"({OOV_BUILD} at its build), T -> index.db"
    )


def test_files_from_stdin(work):
    listing = "".join(f"corpus/{group}/{name}\n" for group in GROUPS for name in sorted(os.listdir(f"corpus/{group}")))
    result = run("index", "--files-from", "-", "-d", "files.db", *TINY_MODEL, input="corpus\n" + listing)
    assert result.exit_code == 0, result.output
    assert last_line(result).startswith(
        "indexed 60 documents, skipped 0 files (0 binary, 0 unreadable), 1 folder named in --files-from skipped "
        f"(list files, as find -type f does), vocabulary 300 words ({OOV_BUILD} of words outside)"
    )
    conn = sqlite3.connect("files.db")
    rows = conn.execute("SELECT id, labels FROM documents ORDER BY rowid").fetchall()
    first = sorted(os.listdir("corpus/comp.graphics"))[0]
    assert rows[0] == (f"corpus/comp.graphics/{first}", '["comp.graphics"]')
    # The same list again, one file short, with --prune: the unlisted one goes.
    shorter = "".join(listing.splitlines(keepends=True)[1:])
    result = run("index", "--files-from", "-", "-d", "files.db", "--prune", input=shorter)
    assert last_line(result) == (
        "added 0, updated 0, unchanged 59, removed 1 (59 documents), "
        "skipped 0 files (0 binary, 0 unreadable), T -> files.db"
    )
    # The same list from `find -print0` (NUL-separated, no newline): the same
    # files, nothing pruned (it was read as one missing file, and --prune removed all).
    result = run("index", "--files-from", "-", "-d", "files.db", "--prune", input=shorter.replace("\n", "\0"))
    assert last_line(result).startswith("added 0, updated 0, unchanged 59, removed 0 (59 documents), skipped 0 files")
    # A listed file that is gone counts as unreadable.
    result = run("index", "--files-from", "-", "-d", "files.db", input="corpus/nope\n" + shorter)
    assert "unchanged 59, removed 0 (59 documents), skipped 1 files (0 binary, 1 unreadable)" in last_line(result)
    # Documents indexed through a directory are not the list's to prune.
    assert run("index", "corpus/sci.space", "-d", "files.db", "-s").exit_code == 0
    result = run("index", "--files-from", "-", "-d", "files.db", "--prune", input=shorter)
    assert last_line(result).startswith("added 0, updated 0, unchanged 59, removed 0 (79 documents)")


def test_files_from_takes_names_of_any_bytes(work):
    """A list holds file names, not text: a NUL byte or bytes that are not UTF-8
    stop nothing; a name that is not there counts as unreadable."""
    name = os.listdir("corpus/sci.space")[0]
    listing = b"corpus/sci.space/\x00x\n\xff\xfe\x89junk\ncorpus/sci.space/" + name.encode() + b"\n"
    result = run("index", "--files-from", "-", "-d", "index.db", input=listing)
    assert result.exit_code == 0, result.output
    assert last_line(result).startswith("added 1, updated 0, unchanged 0, removed 0 (61 documents), "
                                        "skipped 2 files (0 binary, 2 unreadable)")


@pytest.mark.parametrize("inside_a_kernel", [False, True])
def test_ctrl_c_is_not_no_hits(db, monkeypatch, inside_a_kernel):
    """Exit status 1 means "no hits": an interrupted command exits 130, as a shell
    reports a command that SIGINT stopped. Inside a numba kernel that calls back
    into Python, Ctrl-C surfaces as a SystemError caused by it (a traceback, once)."""
    from semhash.api import Index

    def interrupted(*args, **kwargs):
        if not inside_a_kernel:
            raise KeyboardInterrupt
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(rerank_batch) returned a result with an exception set") from e

    monkeypatch.setattr(Index, "query", interrupted)
    result = run("query", "space", "-d", str(db))
    assert result.exit_code == 130 and result.stderr == "\nAborted!\n" and result.stdout == ""


def test_index_needs_something(tmp_path):
    result = run("index", "-d", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and "nothing to index: give PATHS, or --files-from FILE" in result.stderr
    result = run("index", "-", "--files-from", "-", "-d", str(tmp_path / "x.db"), input="")
    assert result.exit_code == 2 and "not both" in result.stderr


# -- similar ---------------------------------------------------------------------------


def codes_of(db_path):
    """{id: (address, code as int)} read straight from SQLite."""
    conn = sqlite3.connect(db_path)
    return {i: (a, int.from_bytes(c, "little")) for i, a, c in conn.execute("SELECT id, address, code FROM documents")}


def test_similar_by_id(db):
    codes = codes_of(db)
    doc = sorted(codes)[0]
    result = run("similar", doc, "-d", str(db), "-n", "5")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 5 and doc not in [r[0] for r in rows]
    for hit, distance in rows:  # true Hamming distances between the stored codes
        assert int(distance) == bin(codes[hit][1] ^ codes[doc][1]).count("1")


def test_similar_by_file_excludes_itself(db, tiny_corpus):
    path = sorted((tiny_corpus / "sci.space").iterdir())[0]
    by_file = run("similar", "--file", str(path), "-d", str(db), "-n", "5")
    by_id = run("similar", f"sci.space/{path.name}", "-d", str(db), "-n", "5")
    assert by_file.exit_code == 0 and by_file.stdout == by_id.stdout
    by_stdin = run("similar", "--file", "-", "-d", str(db), "-n", "5", input=path.read_text(encoding="latin-1"))
    assert by_stdin.stdout == by_id.stdout


def test_similar_errors(db):
    result = run("similar", "no/such/doc", "-d", str(db))
    assert result.exit_code == 2 and result.stderr == f"Error: no document 'no/such/doc' in {db}\n"
    result = run("similar", "-d", str(db))
    assert result.exit_code == 2 and "give either an indexed document's ID or --file PATH" in result.stderr
    result = run("similar", "x", "--file", "y", "-d", str(db))
    assert result.exit_code == 2
    result = run("similar", "--file", "missing.txt", "-d", str(db))
    assert result.exit_code == 2 and result.stderr.startswith("Error: cannot read missing.txt")


# -- output formats, fields, filters -----------------------------------------------------


def test_formats(db, tiny_corpus):
    text = post(tiny_corpus, "comp.graphics", 2)
    plain = run("query", text, "-d", str(db), "-n", "3").stdout
    rows = [line.split("\t") for line in plain.splitlines()]
    assert run("query", text, "-d", str(db), "-n", "3", "--tsv").stdout == "id\tdistance\n" + plain
    assert run("query", text, "-d", str(db), "-n", "3", "--tsv", "--no-headers").stdout == plain
    assert run("query", text, "-d", str(db), "-n", "3", "--csv").stdout == "id,distance\n" + "".join(
        f"{i},{d}\n" for i, d in rows
    )
    assert run("query", text, "-d", str(db), "-n", "3", "--csv", "--no-headers", "--fields", "distance,id").stdout == "".join(
        f"{d},{i}\n" for i, d in rows
    )
    nl = run("query", text, "-d", str(db), "-n", "3", "--nl", "--fields", "id,label").stdout
    assert nl == "".join(json.dumps({"id": i, "label": i.split("/")[0]}) + "\n" for i, _ in rows)


@pytest.fixture
def on_a_terminal(monkeypatch):
    """stdout a terminal 100 columns wide, as CliRunner's never is."""
    monkeypatch.setattr(options, "_stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "100")


def test_a_terminal_gets_a_table_of_titles(db, tiny_corpus, on_a_terminal):
    text = post(tiny_corpus, "sci.space", 1)
    plain = run("query", text, "-d", str(db), "-n", "4", "--fields", "id,score,title", "--tsv", "--no-headers").stdout
    table = run("query", text, "-d", str(db), "-n", "4")
    assert table.exit_code == 0
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["#", "score", "id", "title"] and len(lines) == 4
    for rank, (line, row) in enumerate(zip(lines, plain.splitlines()), 1):
        doc, score, title = row.split("\t")
        assert line.split(None, 3)[:3] == [str(rank), f"{float(score):.4f}", doc] and len(line) <= 100
        assert title.startswith(line.split(None, 3)[3].rstrip("…"))
    by_codes = run("query", text, "-d", str(db), "-n", "4", "--codes-only").stdout.splitlines()
    assert by_codes[0].split() == ["#", "distance", "id", "title"]
    first = lines[0].split()[2]
    similar = run("similar", first, "-d", str(db), "-n", "3").stdout.splitlines()
    assert similar[0].split() == ["#", "score", "id", "title"] and len(similar) == 4


def test_a_format_or_fields_wins_over_the_table(db, tiny_corpus, on_a_terminal, monkeypatch):
    text = post(tiny_corpus, "comp.graphics", 2)
    args = ("query", text, "-d", str(db), "-n", "3")
    as_given = {extra: run(*args, *extra).stdout for extra in [("--fields", "id,distance"), ("--nl",), ("--csv",)]}
    batch = run("query", "-", "-d", str(db), "-n", "3", input=text + "\n").stdout
    monkeypatch.setattr(options, "_stdout_is_terminal", lambda: False)
    plain = run(*args).stdout
    assert as_given[("--fields", "id,distance")] == plain and plain.count("\t") == 3
    assert as_given[("--nl",)] == run(*args, "--nl").stdout and as_given[("--csv",)] == run(*args, "--csv").stdout
    assert batch == run("query", "-", "-d", str(db), "-n", "3", input=text + "\n").stdout


def test_table_on_a_real_terminal_and_rows_through_a_pipe(db):
    # A real pseudo-terminal: isatty() and the width come from the OS, not from a patch.
    import pty

    command = [sys.executable, "-m", "semhash", "query", "space shuttle orbit", "-d", str(db), "-n", "3"]
    env = {**os.environ, "COLUMNS": "70"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    out = b""
    while chunk := _read_pty(leader):
        out += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    header, *lines = out.decode().splitlines()
    piped = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert header.split() == ["#", "score", "id", "title"]
    assert [line.split()[2] for line in lines] == [row.split("\t")[0] for row in piped]
    assert all(len(row.split("\t")) == 2 for row in piped)


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the process closed the terminal
        return b""


def test_fields(db, tiny_corpus):
    codes = codes_of(db)
    text = post(tiny_corpus, "sci.space", 1)
    result = run("query", text, "-d", str(db), "-n", "2", "--fields", "id,path,label,distance,address,title")
    assert result.exit_code == 0
    for line in result.stdout.splitlines():
        doc, path, label, distance, address, title = line.split("\t")
        lines = (tiny_corpus / doc).read_text(encoding="latin-1").splitlines()
        subject = next(x for x in lines if x.startswith("Subject:"))[len("Subject:") :]
        assert path == str(tiny_corpus / doc) and label == doc.split("/")[0]
        assert address == f"{codes[doc][0]:02x}" and title == " ".join(subject.split())[:120]
    result = run("query", text, "-d", str(db), "--fields", "id,bogus")
    assert result.exit_code == 2
    assert "Invalid value for '--fields': bogus is not a field; choose among id,path,label,distance,score,address,title" in result.stderr


def test_the_score_field_orders_the_hits(db, tiny_corpus):
    text = " ".join(post(tiny_corpus, "sci.space", 1).split())  # one line, for the batch below
    args = ("-d", str(db), "-n", "8", "--fields", "score,id,distance", "--nl")
    rows = [json.loads(line) for line in run("query", text, *args).stdout.splitlines()]
    assert [r["id"] for r in rows] == run("query", text, "-d", str(db), "-n", "8", "--fields", "id").stdout.split()
    scores = [r["score"] for r in rows]
    assert all(isinstance(x, float) for x in scores) and scores == sorted(scores, reverse=True)
    # The batch path (`query -`) prints the same rows; by the codes alone there is no score.
    batch = run("query", "-", *args, input=text + "\n")
    assert [{k: v for k, v in json.loads(line).items() if k not in ("query", "rank")} for line in batch.stdout.splitlines()] == rows
    tsv = run("query", text, *args[:-1], "--codes-only").stdout.splitlines()
    assert tsv and all(line.split("\t")[0] == "" for line in tsv)


def test_distance_filters(db, tiny_corpus):
    text = post(tiny_corpus, "sci.space", 4)
    rows = [line.split("\t") for line in run("query", text, "-d", str(db), "-n", "60").stdout.splitlines()]
    distances = [int(d) for _, d in rows]
    cut = distances[len(distances) // 2]
    result = run("query", text, "-d", str(db), "-n", "60", "--max-distance", str(cut))
    assert result.stdout == "".join(f"{i}\t{d}\n" for i, d in rows if int(d) <= cut)
    result = run("query", text, "-d", str(db), "-n", "5", "--min-distance", str(cut))
    assert result.stdout == "".join(f"{i}\t{d}\n" for i, d in [r for r in rows if int(r[1]) >= cut][:5])
    result = run("query", text, "-d", str(db), "--min-distance", "33")  # 32-bit codes: nothing that far
    assert result.exit_code == 1 and result.stdout == ""
    result = run("query", text, "-d", str(db), "--min-distance", "33", "--json")
    assert result.exit_code == 1 and result.stdout == "[]\n"


def test_label_filter(db, tiny_corpus):
    text = post(tiny_corpus, "sci.space", 4)
    args = ("-d", str(db), "--fields", "id,label,distance")
    rows = [line.split("\t") for line in run("query", text, *args, "-n", "60").stdout.splitlines()]
    allowed = [r for r in rows if r[1] in ("comp.graphics", "rec.sport.hockey")]
    result = run("query", text, *args, "-n", "5", "--label", "comp.graphics", "-l", "rec.sport.hockey")
    assert result.exit_code == 0
    assert result.stdout == "".join("\t".join(r) + "\n" for r in allowed[:5])
    # `query -`: the same rows as one query at a time.
    other = post(tiny_corpus, "rec.sport.hockey", 2)
    batch = run("query", "-", *args, "-n", "4", "--label", "sci.space", input=f"{text}\n{other}\n")
    assert batch.exit_code == 0
    singles = [run("query", t, *args, "-n", "4", "--label", "sci.space").stdout.splitlines() for t in (text, other)]
    assert [line.split("\t", 2)[2] for line in batch.stdout.splitlines()] == singles[0] + singles[1]
    assert all(line.split("\t")[3] == "sci.space" for line in batch.stdout.splitlines())
    # similar: the neighbours that carry the label, in their order.
    doc = rows[0][0]
    neighbours = [line.split("\t") for line in run("similar", doc, *args, "-n", "59").stdout.splitlines()]
    result = run("similar", doc, *args, "-n", "3", "--label", "rec.sport.hockey")
    assert result.exit_code == 0
    assert result.stdout == "".join("\t".join(r) + "\n" for r in [r for r in neighbours if r[1] == "rec.sport.hockey"][:3])
    # Nothing allowed within the bounds: exit 1, as without labels.
    result = run("query", text, *args, "--label", "sci.space", "--min-distance", "33")
    assert result.exit_code == 1 and result.stdout == ""


@pytest.mark.parametrize("command", [["query", "orbit"], ["query", "-"], ["similar", "--file", "-"]])
def test_an_unknown_label_is_one_line_naming_the_index_s_labels(db, command):
    result = run(*command, "-d", str(db), "--label", "sci.space", "--label", "sci.spce", input="orbit\n")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"Error: no document in {db} has the label 'sci.spce'; its labels: comp.graphics, rec.sport.hockey, sci.space\n"
    )


def test_pipeline_query_into_similar(db, tiny_corpus):
    """`semhash query ... -n 1 | cut -f1` gives an id that `similar` takes."""
    first = run("query", post(tiny_corpus, "rec.sport.hockey"), "-d", str(db), "-n", "1").stdout
    doc = first.split("\t")[0]
    result = run("similar", doc, "-d", str(db), "-n", "3", "--nl", "--fields", "id")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3 and doc not in result.stdout


# -- encode ------------------------------------------------------------------------------


def test_encode_files_and_stdin(db, tiny_corpus, tmp_path):
    codes = codes_of(db)
    doc = sorted(codes)[5]
    address, code = codes[doc]
    path = str(tiny_corpus / doc)
    result = run("encode", path, "-d", str(db))
    assert result.exit_code == 0 and result.stdout == f"{path}\t{address:02x}\t{code:08x}\n"
    result = run("encode", path, "-d", str(db), "--bits", "--fields", "address,code")
    assert result.stdout == f"{address:08b}\t{code:032b}\n"
    line = json.dumps({"id": "q", "text": (tiny_corpus / doc).read_text(encoding="latin-1")})
    result = run("encode", "-d", str(db), "--nl", "--fields", "id,code", input=line + "\n")
    assert result.stdout == json.dumps({"id": "q", "code": f"{code:08x}"}) + "\n"
    result = run("encode", "-d", str(db), "--csv", input=json.dumps({"id": "z", "text": "zzqx qqzz"}) + "\n")
    assert result.exit_code == 0
    assert result.stdout.startswith("id,address,code\nz,")
    assert result.stderr == "warning: z has no words in the index vocabulary: its code means nothing\n"
    assert run("encode", "-d", str(db), input="").exit_code == 1
    # A file it skips is named in a warning, not only in the exit status.
    image = tmp_path / "image.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = run("encode", "-d", str(db), str(image))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "warning: skipped 1 file (1 binary, 0 unreadable)\n"


# -- info ---------------------------------------------------------------------------------


def test_info(db):
    conn = sqlite3.connect(db)
    per_address = [n for (n,) in conn.execute("SELECT count(*) FROM documents GROUP BY address")]
    result = run("info", "-d", str(db), "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    histogram = {}
    for n in per_address:
        b = n.bit_length() - 1
        key = "1" if b == 0 else f"{2**b}-{2 ** (b + 1) - 1}"
        histogram[key] = histogram.get(key, 0) + 1
    assert info["addresses"]["histogram"] == histogram  # no empty buckets
    assert info["addresses"]["distinct"] == len(per_address)
    assert info["documents"] == 60 and info["labels"] == dict.fromkeys(sorted(GROUPS), 20)
    assert info["vocabulary_size"] == 300 and info["schema_version"] == store.SCHEMA_VERSION
    assert info["reads"] == "messages as Subject + body" and info["stem"] is True
    assert info["model"] == {"trunk": [300, 32], "address_bits": 8, "code_bits": 32, "trained_on": 60}
    assert info["size_bytes"] == db.stat().st_size
    text = run("info", "-d", str(db)).stdout.splitlines()
    assert text[0].startswith(f"database      {db} (") and text[0].endswith(f" KiB, schema {store.SCHEMA_VERSION})")
    n_terms = sqlite3.connect(db).execute("SELECT count(*) FROM terms").fetchone()[0]
    assert info["terms"] == n_terms > 300 and info["neighbours"] == rerank.NEIGHBOURS
    size = db.stat().st_size
    assert text[1] == f"size          {size / 60:,.0f} bytes per document; {(size - info['model_bytes']) / 60:,.0f} without the model's {output.size(info['model_bytes'])}"
    assert text[3:8] == [
        "documents     60",
        "labels        comp.graphics 20, rec.sport.hockey 20, sci.space 20",
        f"vocabulary    300 words, Snowball-stemmed ({OOV_BUILD} of the corpus's words outside); reads messages as Subject + body",
        f"ranking       words ({n_terms:,} terms), {rerank.NEIGHBOURS} neighbours each and codes",
        "model         300-32 trunk; heads: 8-bit address, 32-bit code; trained on 60 documents",
    ]
    assert text[9] == f"addresses     {len(per_address)} distinct of 2^8"


def test_index_stem_is_kept_in_the_index_and_shown_by_info(tiny_corpus, tmp_path):
    db = tmp_path / "stem.db"
    assert run("index", str(tiny_corpus), "-d", str(db), "-s", "--stem", *TINY_MODEL).exit_code == 0
    assert json.loads(sqlite3.connect(db).execute("SELECT value FROM meta WHERE key = 'stem'").fetchone()[0]) is True
    assert json.loads(run("info", "-d", str(db), "--json").stdout)["stem"] is True
    assert run("info", "-d", str(db)).stdout.splitlines()[5].startswith("vocabulary    300 words, Snowball-stemmed (")
    forms = run("query", "Shuttles orbiting", "-d", str(db), "--nl")
    assert forms.exit_code == 0 and forms.stdout == run("query", "shuttle orbit", "-d", str(db), "--nl").stdout
    # An update keeps the index's own reading; asking for the other one is refused in one line.
    result = run("index", str(tiny_corpus), "-d", str(db), "-s", "--no-stem")
    assert result.exit_code == 2 and result.stderr == (
        f"Error: {db} was built with other model options: stem=False (the index has True); "
        "retrain to change the model (semhash index --retrain)\n"
    )
    assert run("index", str(tiny_corpus), "-d", str(db), "-s", "--stem").exit_code == 0
    plain = tmp_path / "plain.db"
    assert run("index", str(tiny_corpus), "-d", str(plain), "-s", "--no-stem", *TINY_MODEL).exit_code == 0
    assert run("info", "-d", str(plain)).stdout.splitlines()[5].startswith("vocabulary    300 words, not stemmed (")


def test_info_missing_index(tmp_path):
    result = run("info", "-d", str(tmp_path / "none.db"))
    assert result.exit_code == 2 and result.stderr.startswith("Error: no index at")


def test_short_queries_are_read_as_a_typical_document(db):
    """A 2-word query is encoded as a longer document with its word distribution,
    LIFT of the way to the median length in log length; JSON-lines documents are
    encoded as they are."""
    import numpy as np

    from semhash import encoding
    from semhash.api import Index
    from semhash.autoencoder import LIFT
    from semhash.vocab import count_words

    with Index.open(db) as idx:
        words = sorted(idx.words, key=idx.words.get)[:2]
        text = " ".join(words)
        counts = count_words([text], idx.words)
        typical = idx.typical_length()
        assert counts.sum() == 2 < typical
        scaled = counts.copy()
        encoding.lift_counts(idx, scaled)
        assert scaled.sum() == pytest.approx(2 ** (1 - LIFT) * typical**LIFT, rel=1e-5)
        np.testing.assert_allclose(scaled / scaled.sum(), counts / 2, rtol=1e-6)  # the same distribution
        lifted = encoding.encode_counts(idx, counts * (typical / 2) ** LIFT)
        addresses, codes, known = idx.encode([text], lift=True)
        assert known.tolist() == [2]
        np.testing.assert_array_equal(addresses, lifted[0])
        np.testing.assert_array_equal(codes, lifted[1])
        plain = encoding.encode_counts(idx, counts)
        np.testing.assert_array_equal(idx.encode([text])[1], plain[1])


@pytest.mark.parametrize("fmt", ["--csv", "--nl", "--tsv", None])
def test_encode_streams_in_chunks_with_one_header(db, tiny_corpus, monkeypatch, fmt):
    # 60 documents printed 7 at a time must read exactly like one print of all 60.
    args = ["encode", str(tiny_corpus), "-d", str(db)] + ([fmt] if fmt else [])
    whole = run(*args).stdout
    monkeypatch.setattr(cli_module, "ENCODE_CHUNK", 7)
    chunked = run(*args)
    assert chunked.exit_code == 0 and chunked.stdout == whole
    assert len(whole.splitlines()) == 60 + (fmt in ("--csv", "--tsv"))
    monkeypatch.setattr(cli_module, "ENCODE_CHUNK", 10)  # a multiple of 60: nothing left for the end
    assert run(*args).stdout == whole
    as_json = json.loads(run("encode", str(tiny_corpus), "-d", str(db), "--json").stdout)
    assert len(as_json) == 60


@pytest.mark.parametrize("fmt", ["--csv", "--nl", "--json", None])
def test_batch_queries_stream_in_batches_like_one(db, monkeypatch, fmt):
    # 5 queries answered 2 at a time read exactly like 5 at once: line numbers run
    # on, one header, one JSON array, and the query without known words warns once.
    lines = "space shuttle orbit\ngod bible church\nzzqx qqzz\nimage graphics file\norbit launch\n"
    args = ["query", "-", "-d", str(db), "-n", "3"] + ([fmt] if fmt else [])
    whole = run(*args, input=lines)
    monkeypatch.setattr(query_batches, "BATCH_QUERIES", 2)
    batched = run(*args, input=lines)
    assert batched.exit_code == whole.exit_code == 0
    assert batched.stdout == whole.stdout
    assert batched.stderr.count("warning: query 3 has no words") == 1
    if fmt == "--nl":
        skipped = {n for n in range(1, 6) if f"warning: query {n} has no words" in batched.stderr}
        assert 3 in skipped and len(skipped) < 5
        assert {json.loads(l)["query"] for l in batched.stdout.splitlines()} == set(range(1, 6)) - skipped


def test_queries_without_known_words_warn_a_few_times_not_once_a_line(db):
    # `yes x | semhash query -` on an index that does not know x: a line per query
    # would fill stderr; the first few warn, then one line says the rest will not.
    result = run("query", "-", "-d", str(db), input="zzqx qqzz\n" * 50 + "space shuttle orbit\n")
    assert result.exit_code == 0
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: query ")]
    assert warned == [f"warning: query {n} has no words in the index vocabulary, skipped" for n in range(1, query_batches.WARNED_QUERIES + 1)]
    assert result.stderr.count("skipped without a word") == 1
    assert {line.split("\t")[0] for line in result.stdout.splitlines()} == {"51"}


@pytest.mark.parametrize("pause, wait", [(0.5, 100), (100, 0.5)])
def test_stdin_lines_are_answered_when_stdin_pauses(monkeypatch, pause, wait):
    # `tail -f questions | semhash query -`: what has come is answered while the
    # next line is awaited (after a pause; or, from a stdin too busy to pause,
    # once the first line has waited long enough), not once 10,000 lines have come.
    monkeypatch.setattr(query_batches, "STDIN_PAUSE", pause)
    monkeypatch.setattr(query_batches, "STDIN_WAIT", wait)
    gate = threading.Event()

    def lines():
        yield from ("a", "b")
        assert gate.wait(10)  # the next line comes only once the first two are answered
        yield "c"
        raise ValueError("line 4 of stdin is not valid JSON")

    batches = query_batches.ready_batches(lines(), 10_000)
    assert next(batches) == ["a", "b"]
    gate.set()
    assert next(batches) == ["c"]  # what came before a bad line, then its error
    with pytest.raises(ValueError, match="line 4"):
        next(batches)
    assert list(query_batches.ready_batches(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]


def test_the_first_batch_is_small():
    # `yes x | semhash query - | head -1`: the first answer waited for a batch of
    # 10,000 queries; a file's lines still come in batches of the full size.
    sizes = [len(b) for b in query_batches.ready_batches(iter(range(100)), 16, 2)]
    assert sizes == [2, 16, 16, 16, 16, 16, 16, 2]
    assert [len(b) for b in query_batches.ready_batches(iter(range(5)), 2, 64)] == [2, 2, 1]  # never above the size


@pytest.mark.parametrize("how", ["ctrl-c", "reader gone"])
def test_batch_query_exits_cleanly_while_stdin_is_still_open(db, how):
    # Ctrl-C, or `| head -1`, while the reader thread waits on stdin: the process
    # exits 130 (or dies of SIGPIPE), where the interpreter aborted closing the stdin the thread
    # held ("Fatal Python error: _enter_buffered_busy", exit status 134).
    proc = subprocess.Popen(
        [sys.executable, "-m", "semhash", "query", "-", "-d", str(db), "-n", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored as in a background job
    )
    try:
        proc.stdin.write("space shuttle orbit\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("1\t1\t")  # answered; the thread waits for more
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        else:
            proc.stdout.close()
            try:
                proc.stdin.write("god bible church\n")  # its answer would find no reader
                proc.stdin.flush()
            except BrokenPipeError:  # it died of SIGPIPE already
                pass
        assert proc.wait(timeout=120) == (130 if how == "ctrl-c" else -signal.SIGPIPE)
        assert "Fatal Python error" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def _endless(stream, line: str) -> None:
    """Write ``line`` to ``stream`` until its reader leaves, as `yes` does."""
    try:
        while True:
            stream.write(line * 1000)
            stream.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass


@pytest.mark.parametrize(
    "args, stdin",
    [
        (["query", "-"], "orbit\n"),
        (["query", "-", "--nl"], "orbit\n"),
        (["query", "-", "--csv"], "orbit\n"),
        (["query", "-", "--jsonl", "--nl"], '{"id": "q", "text": "orbit"}\n'),
        (["query", "-", "--json"], None),  # waits for the end of stdin: the reader leaves first
        (["similar", "--file", "-"], None),
        (["encode"], None),
    ],
)
def test_a_reader_leaving_stops_the_work_at_once(db, args, stdin):
    # `yes orbit | semhash query - | head -1` went on answering after head had left
    # (until its next write, a whole batch later, then exit 0); a command waiting for
    # stdin never noticed. It now dies of SIGPIPE at once, as grep does, silently.
    proc = subprocess.Popen(
        [sys.executable, "-m", "semhash", *args, "-d", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        if stdin is not None:  # endless input, as from `yes`: the batches never run dry
            threading.Thread(target=_endless, args=(proc.stdin, stdin), daemon=True).start()
            assert proc.stdout.readline()
        proc.stdout.close()  # head -1 leaves; stdin stays open and busy (or idle)
        assert proc.wait(timeout=60) == -signal.SIGPIPE
        assert proc.stderr.read() == ""
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "args", [["query", "-"], ["query", "-", "--jsonl"], ["encode"], ["similar", "--file", "-"], ["eval", "-"], ["index", "-"], ["index", "--files-from", "-"]]
)
def test_a_closed_stdin_is_one_clear_line(db, tmp_path, args):
    # `semhash query - <&-`: Python's sys.stdin is then None, which was a TypeError traceback.
    database = tmp_path / "new.db" if args[0] == "index" else db
    result = subprocess.run(
        [sys.executable, "-m", "semhash", *args, "-d", str(database)],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "Error: cannot read stdin: it is closed; give the input on a pipe or from a file (< FILE)"
    assert "Traceback" not in result.stderr


def test_codes_only_ranks_the_ball_by_the_codes(db, tiny_corpus):
    # The codes alone rank (distance, then the bits the nearest share: test_api.py
    # checks the order against a naive twin); the post itself is among its hits.
    text = post(tiny_corpus, "sci.space", 5)
    result = run("query", text, "-d", str(db), "-n", "20", "--codes-only")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 20
    ranked = run("query", text, "-d", str(db), "-n", "20").stdout.splitlines()
    itself = "sci.space/" + sorted((tiny_corpus / "sci.space").iterdir())[5].name
    assert ranked[0] == f"{itself}\t0"  # the post itself first by words and codes,
    assert f"{itself}\t0" in result.stdout.splitlines()  # and among the codes' hits


@pytest.mark.parametrize("fmt", [None, "nl"])
@pytest.mark.parametrize(
    "fields", [["id", "distance"], ["distance", "id"], ["id", "path", "label", "distance", "address", "title"], ["title", "label"], ["distance"]]
)
def test_batch_lines_match_the_generic_rows(capsys, fmt, fields):
    # `semhash query -` formats each document's cells once and reuses them; its lines
    # must be exactly what _emit prints for the same rows, escapes included.
    from semhash.api import Hit

    docs = [
        Hit("a/1", 0, "/c/a/1", ("a",), 'Re: "quotes" and \\ back', 0x1F),
        Hit("b/é", 0, None, (), "naïve {braces} %s", 0),
        Hit("c/3", 0, "/c/c/3", ("x", "y"), "", 0xABCDEF0),
    ]
    answered = [
        (1, [Hit(d.id, dist, d.path, d.labels, d.title, d.address) for d, dist in zip(docs, (3, 17, 255))]),
        ('q "é"', [Hit(d.id, dist, d.path, d.labels, d.title, d.address) for d, dist in zip(docs[::-1], (0, 1, 2))]),
    ]
    rows = [{"query": name, "rank": r, **output.hit_row(h, 7)} for name, hits in answered for r, h in enumerate(hits, 1)]
    output.emit(rows, fmt, ["query", "rank", *fields])
    expected = capsys.readouterr().out
    lines = output.HitLines(fmt == "nl", fields, 7)
    assert lines.format(answered[:1]) + lines.format(answered[1:]) == expected.splitlines()
    assert len(lines.cells) == 3  # each document formatted once


@pytest.mark.parametrize(
    "args", [
        ["query"], ["query", "x", "-n", "0"], ["bogus"], ["--bogus"], ["query", "x", "--fields", "nope"],
        ["index", "--hidden", "5,x", "."], ["query", "x", "-n"], ["map", "--plot"], ["encode", "--bist"],
    ]
)
def test_usage_errors_are_one_line(args):
    # Not click's "Usage: ... / Try ... / Error: ..." block: one line, and where to look.
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith("-h'.") and "?." not in result.stderr


@pytest.mark.parametrize("flags", [[], ["-v"]])
def test_index_shows_one_training_bar_and_the_layers_with_verbose(tiny_corpus, tmp_path, flags):
    result = run("index", str(tiny_corpus), "-d", str(tmp_path / "x.db"), *TINY_MODEL, *flags)
    assert result.exit_code == 0, result.output
    assert ("training: 100%" in result.stderr) == (not flags)
    assert ("fine-tune 32-bit" in result.stderr and "pretrain 300-32" in result.stderr) == bool(flags)
    assert "reading" in result.stderr and "recon_error" not in result.stderr[: result.stderr.find("pretrain")]


def test_an_error_quoting_a_line_separator_stays_on_one_line(tmp_path):
    """A file name holding U+2028 (a line break to str.splitlines and to editors)
    is escaped in the error message, as control characters are (found by tests/test_fuzz.py)."""
    from semhash.cli import SemhashError

    assert SemhashError("bad \u2028 name\u2029\n").message == "bad \\u2028 name\\u2029\\n"
    result = CliRunner().invoke(cli, ["query", "x", "-d", str(tmp_path / "\u2028.db")])
    assert result.exit_code == 2 and "\\u2028.db" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
