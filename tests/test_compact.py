"""A compact index (`semhash index --compact`, issues 23 and 26): the same model and
codes as a full index, only what a search by codes needs, and the same answers as
the full index's `--codes-only`; what needs words is refused in one line."""

import hashlib
import json
import shutil
import sqlite3

import numpy as np
import pytest

from semhash import maps, termcodes
from semhash.api import Index
from semhash.store import StoreError
from tests.conftest import TINY_MODEL, run

QUERIES = ("nasa shuttle orbit launch", "team game win season", "image file formats graphics")


@pytest.fixture(scope="session")
def both(built, tmp_path_factory):
    """``built``'s corpus and full index, and a compact index of the same corpus (the
    same paths) and model options (same seed), shared read-only."""
    root = tmp_path_factory.mktemp("compact")
    (root / "corpus").symlink_to(built / "corpus")
    shutil.copy(built / "index.db", root / "full.db")
    result = run("index", built / "corpus", "-d", root / "compact.db", "-s", "--compact", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def copy(both, tmp_path):
    """A private copy of ``both``, its corpus too (the indexes' paths still name ``built``'s)."""
    shutil.copytree(both, tmp_path / "w", symlinks=False)
    return tmp_path / "w"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def codes_by_id(db) -> dict[str, tuple[int, bytes]]:
    with Index.open(db) as index:
        ids = index.stored.ids(index.rowids)
        return {i: (int(a), c.tobytes()) for i, a, c in zip(ids, index.table.addresses, index.codes)}


def test_same_model_same_codes(both):
    assert codes_by_id(both / "compact.db") == codes_by_id(both / "full.db")


def test_holds_no_words(both):
    conn = sqlite3.connect(both / "compact.db")
    names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    columns = {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert not names & {"terms", "postings", "idx_documents_codes", "idx_documents_content_hash"}
    assert "code_blocks" in names
    assert columns == {"id", "path", "labels", "content_hash", "n_words", "title"}
    assert json.loads(meta["compact"]) is True and json.loads(meta["n_terms"]) == 0
    conn = sqlite3.connect(both / "compact.db")
    assert {len(h) for (h,) in conn.execute("SELECT content_hash FROM documents")} == {16}


@pytest.fixture
def no_term_codes(monkeypatch):
    """The full index's codes alone as a compact index has them: it keeps no terms,
    so its queries' codes are their encoder's (semhash.termcodes needs the terms)."""
    monkeypatch.setattr(termcodes, "ENCODER_ENOUGH", -1.0)


@pytest.mark.parametrize("fmt", ["--nl", "--json", "--csv", "--tsv"])
@pytest.mark.parametrize("text", QUERIES)
def test_query_answers_as_codes_only(both, text, fmt, no_term_codes):
    fields = ["--fields", "id,distance,address,label,title,path"]
    compact = run("query", text, "-d", both / "compact.db", "-n", 7, fmt, *fields)
    full = run("query", text, "-d", both / "full.db", "-n", 7, "--codes-only", fmt, *fields)
    assert compact.exit_code == full.exit_code == 0, compact.output + full.output
    assert compact.stdout == full.stdout


@pytest.mark.parametrize("label", ["sci.space", "comp.graphics"])
def test_labels_filter_as_codes_only(both, label, no_term_codes):
    for text in QUERIES:
        compact = run("query", text, "-d", both / "compact.db", "-n", 5, "-l", label, "--nl")
        full = run("query", text, "-d", both / "full.db", "-n", 5, "-l", label, "--codes-only", "--nl")
        assert compact.exit_code == full.exit_code == 0 and compact.stdout == full.stdout
        assert {json.loads(line)["id"].split("/")[0] for line in compact.stdout.splitlines()} == {label}


def test_similar_as_codes_alone(both):
    with Index.open(both / "compact.db") as compact, Index.open(both / "full.db") as full:
        full.n_terms = full.n_neighbours = 0  # the full index ranked by its codes alone
        for doc_id in full.stored.ids(full.rowids[::7]):
            for labels in (None, "sci.space"):
                assert compact.similar(doc_id, 6, labels=labels) == full.similar(doc_id, 6, labels=labels)


def test_update_encodes_with_the_stored_model(tiny_corpus, tmp_path):
    """Added, changed and pruned documents: the compact index's codes are the full
    index's after the same update, and its packed codes name every document."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    for db, kind in (("full.db", "--no-compact"), ("compact.db", "--compact")):
        assert run("index", corpus, "-d", tmp_path / db, "-s", kind, *TINY_MODEL).exit_code == 0
    (corpus / "sci.space" / "new").write_text("The shuttle launch slipped: the orbit of the satellite is lower.")
    changed = sorted((corpus / "comp.graphics").iterdir())[0]
    changed.write_text(changed.read_text(encoding="latin-1") + "\nhockey playoffs goalie season", encoding="latin-1")
    sorted((corpus / "rec.sport.hockey").iterdir())[0].unlink()
    for db in ("full.db", "compact.db"):
        result = run("index", corpus, "-d", tmp_path / db, "--prune", "-s")
        assert result.exit_code == 0, result.output
    compact = codes_by_id(tmp_path / "compact.db")
    assert compact == codes_by_id(tmp_path / "full.db") and "sci.space/new" in compact and len(compact) == 60
    assert run("similar", "sci.space/new", "-d", tmp_path / "compact.db").exit_code == 0


def test_unchanged_update_changes_nothing(copy):
    before = codes_by_id(copy / "compact.db")
    result = run("index", copy / "corpus", "-d", copy / "compact.db")
    assert result.exit_code == 0 and "unchanged 60" in result.stderr
    assert codes_by_id(copy / "compact.db") == before


@pytest.mark.parametrize(
    "db, flag, says",
    [
        ("compact.db", "--no-compact", "keeps no words (built with --compact), and a full index (--no-compact) needs them"),
        ("full.db", "--compact", "is a full index: make it compact by rebuilding it with `semhash index --retrain --compact"),
    ],
)
def test_other_kind_refused_untouched(copy, db, flag, says):
    before = digest(copy / db)
    (copy / "corpus" / "sci.space" / "new").write_text("orbit of the shuttle")
    result = run("index", copy / "corpus", "-d", copy / db, flag)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and says in result.stderr and result.stderr.count("\n") == 1
    assert digest(copy / db) == before


def test_map_needs_words(both):
    with Index.open(both / "compact.db") as index, pytest.raises(StoreError, match=r"and `semhash map` needs them: rebuild"):
        maps.map_coordinates(index, sample=20, epochs=1)


def test_retrain_keeps_the_kind(copy):
    result = run("index", copy / "corpus", "-d", copy / "compact.db", "--retrain", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    assert "drift" not in result.stderr  # the same documents: their stored hashes' digits match
    with Index.open(copy / "compact.db") as index:
        assert index.stored.compact and len(index) == 60
    result = run("index", copy / "corpus", "-d", copy / "compact.db", "--retrain", "--no-compact", "-s", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    with Index.open(copy / "compact.db") as index:
        assert not index.stored.compact and index.n_terms > 0


def test_eval_scores_the_codes_alone(both):
    reports = {}
    for db in ("full.db", "compact.db"):
        result = run("eval", both / "corpus", "-d", both / db, "-k", 10, "--json")
        assert result.exit_code == 0, result.output
        reports[db] = json.loads(result.stdout)
    full = {m["name"]: m for m in reports["full.db"]["methods"]}
    compact = reports["compact.db"]
    assert [m["name"] for m in compact["methods"]][0] == "semhash query, codes only (ball + long-code rank)"
    assert all(m == full[m["name"]] for m in compact["methods"])
    assert "codes alone are scored" in compact["note"] and reports["full.db"]["note"] is None


def test_info_says_compact_and_bytes_per_document(both):
    for db, compact in (("compact.db", True), ("full.db", False)):
        about = json.loads(run("info", "-d", both / db, "--json").stdout)
        size = (both / db).stat().st_size
        assert about["compact"] is compact and about["bytes_per_document"] == round(size / 60, 1)
        assert 0 < about["model_bytes"] < size
        text = run("info", "-d", both / db).stdout
        assert f"{size / 60:,.0f} bytes per document; {(size - about['model_bytes']) / 60:,.0f} without the model" in text
    full, compact = ((both / db).stat().st_size for db in ("full.db", "compact.db"))
    assert compact < full / 2
    assert "codes alone (compact" in run("info", "-d", both / "compact.db").stdout


def test_every_document_keeps_its_fields(both):
    """What the output formats print comes back whole: the same rows as the full index."""
    with Index.open(both / "compact.db") as compact, Index.open(both / "full.db") as full:
        assert compact.stored.rows(compact.rowids) == {
            r: (*row[:4], None) for r, row in full.stored.rows(full.rowids).items()
        }
        assert np.array_equal(compact.rowids, full.rowids)


def test_batches_and_files_as_codes_only(both, no_term_codes):
    lines = "\n".join(QUERIES) + "\n"
    compact = run("query", "-", "-d", both / "compact.db", "-n", 4, "--tsv", input=lines)
    full = run("query", "-", "-d", both / "full.db", "-n", 4, "--tsv", "--codes-only", input=lines)
    assert compact.exit_code == full.exit_code == 0 and compact.stdout == full.stdout
    assert len(compact.stdout.splitlines()) == 1 + 4 * len(QUERIES)
    with Index.open(both / "compact.db") as compact, Index.open(both / "full.db") as full:
        full.n_terms = full.n_neighbours = 0  # the full index ranked by its codes alone
        path = next((both / "corpus" / "sci.space").iterdir())
        assert compact.similar_to_file(path, 5) == full.similar_to_file(path, 5)


def test_rebuild_over_a_damaged_hash(copy):
    """A rebuild compares the stored hashes' digits with the documents' (the drift):
    a hash damaged into a blob is a changed document, not a traceback."""
    with sqlite3.connect(copy / "compact.db") as conn:
        conn.execute("UPDATE documents SET content_hash = x'00ff' WHERE rowid = 1")
    result = run("index", copy / "corpus", "-d", copy / "compact.db", "--retrain", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    assert "drift: " in result.stderr  # that one document's words, against the old vocabulary


def widen_blocks(db) -> None:
    """Make ``db`` as schema 7 wrote it: its packed rowids and addresses as int64."""
    with sqlite3.connect(db) as conn:
        for block, rowids, addresses in conn.execute("SELECT block, rowids, addresses FROM code_blocks").fetchall():
            wide = [np.frombuffer(b, "<u4").astype("<i8").tobytes() for b in (rowids, addresses)]
            conn.execute("UPDATE code_blocks SET rowids = ?, addresses = ? WHERE block = ?", (*wide, block))
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")


def packed_widths(db) -> set[tuple[int, int]]:
    """(bytes per rowid, bytes per address) of each code block."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT length(rowids), length(addresses), length(codes) FROM code_blocks").fetchall()
    return {(r * 8 // c, a * 8 // c) for r, a, c in rows}  # (TINY_MODEL's codes: one 8-byte word)


@pytest.mark.parametrize("db", ["compact.db", "full.db"])
def test_schema_7_blocks_read_as_they_are_and_narrowed_by_an_update(copy, db):
    """Schema 8 packs rowids and addresses in 4 bytes; an index whose blocks hold 8
    answers the same, and the update that migrates it packs what it rewrites."""
    assert packed_widths(copy / db) == {(4, 4)}
    before = [run("query", text, "-d", copy / db, "-n", 7, "--codes-only", "--tsv").stdout for text in QUERIES]
    codes = codes_by_id(copy / db)
    widen_blocks(copy / db)
    assert packed_widths(copy / db) == {(8, 8)}
    assert [run("query", text, "-d", copy / db, "-n", 7, "--codes-only", "--tsv").stdout for text in QUERIES] == before
    assert codes_by_id(copy / db) == codes
    (copy / "corpus" / "sci.space" / "new").write_text("The shuttle launch slipped: the orbit of the satellite is lower.")
    result = run("index", copy / "corpus", "-d", copy / db, "-s")
    assert result.exit_code == 0, result.output
    after = codes_by_id(copy / db)
    assert packed_widths(copy / db) == {(4, 4)} and {i: after[i] for i in codes} == codes and len(after) == 61
    with sqlite3.connect(copy / db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("8",)
