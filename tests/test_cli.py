"""End to end through the CLI: index a tiny real corpus, query it in every format."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from semhash.cli import cli
from tests.conftest import GROUPS, TINY_MODEL


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


def test_binary_files_skipped_and_counted(tiny_corpus, tmp_path):
    corpus = tmp_path / "c"
    import shutil

    shutil.copytree(tiny_corpus, corpus)
    (corpus / "comp.graphics" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    result = run("index", str(corpus), "-d", str(tmp_path / "x.db"), "-s", *TINY_MODEL)
    assert result.exit_code == 0
    assert result.stderr == ""  # silent
    result = run("index", str(corpus), "-d", str(tmp_path / "x.db"), *TINY_MODEL)
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
    assert distances == sorted(distances) and 0 <= distances[0] <= 32


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
    result = run("index", str(small), "-d", str(db))
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


def test_help_and_version():
    assert run("-h").exit_code == 0
    assert "semhash, version" in run("--version").stdout
    for command in ("index", "query"):
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
