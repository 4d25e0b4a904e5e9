"""The index file: schema 1 indexes stay readable and gain a title (and an empty
terms table) when updated; schema 3 indexes gain their neighbour lists, schema 4
ones the codes' covering index."""

import json
import sqlite3

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from click.testing import CliRunner

from semhash import api, locks, rerank, store
from semhash import writer as index_writer
from semhash.api import Index
from semhash.cli import cli
from semhash.store import SCHEMA_VERSION, StoredIndex
from semhash.writer import IndexWriter
from semhash.tokenize import content_words
from tests.conftest import TINY_MODEL


@pytest.fixture
def v1_index(tiny_corpus, tmp_path):
    """An index as semhash 0.1.0 (schema 1) wrote it: no title, no terms."""
    db = tmp_path / "v1.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE documents DROP COLUMN title")
    conn.execute("ALTER TABLE documents DROP COLUMN terms")
    conn.execute("ALTER TABLE documents DROP COLUMN neighbours")
    conn.execute("DROP TABLE terms")
    conn.execute("DELETE FROM meta WHERE key IN ('n_terms', 'n_neighbours')")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    return db


def test_schema_1_is_readable_and_upgraded_by_an_update(v1_index, tiny_corpus):
    result = CliRunner().invoke(cli, ["query", "space", "-d", str(v1_index), "-n", "1", "--fields", "id,title"])
    assert result.exit_code == 0 and result.stdout.endswith("\t\n")  # no title yet
    doc = result.stdout.split("\t")[0]
    result = CliRunner().invoke(cli, ["similar", doc, "-d", str(v1_index), "-n", "3"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3  # by codes: no terms yet
    # The update that migrates also adds a document: it gets no vector (no terms yet).
    new = v1_index.parent / "more"
    new.mkdir()
    (new / "orbit.txt").write_text("The shuttle reached orbit after the launch.")
    result = CliRunner().invoke(cli, ["index", str(tiny_corpus), str(new), "-d", str(v1_index), "-s"])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(v1_index)
    assert conn.execute("SELECT terms FROM documents WHERE id = 'orbit.txt'").fetchone() == (None,)
    assert json.loads(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == SCHEMA_VERSION
    # Unchanged documents keep their (empty) title: titles fill in as documents change.
    assert conn.execute("SELECT count(*) FROM documents WHERE title IS NULL").fetchone()[0] == 60
    # Schema 3 adds the terms, empty: the index ranks by codes until it is retrained.
    assert conn.execute("SELECT count(*) FROM terms").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM documents WHERE terms IS NULL").fetchone()[0] == 61
    # Without terms, no neighbour lists either.
    assert conn.execute("SELECT count(*) FROM documents WHERE neighbours IS NULL").fetchone()[0] == 61
    result = CliRunner().invoke(cli, ["query", "space", "-d", str(v1_index), "-n", "5"])
    distances = [int(line.split("\t")[1]) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(distances) == 5 and distances == sorted(distances)


def test_schema_3_ranks_without_neighbours_until_an_update_finds_them(tiny_corpus, tmp_path):
    db = tmp_path / "v3.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    with Index.open(db) as index:
        text = "hockey goalie playoffs and the space shuttle"
        smoothed = index.query(text, k=20)
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE documents DROP COLUMN neighbours")
    conn.execute("DELETE FROM meta WHERE key = 'n_neighbours'")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    with Index.open(db) as index:
        assert index.n_neighbours == 0 and len(index.query(text, k=20)) == 20
    result = CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s"])
    assert result.exit_code == 0, result.output
    assert conn.execute("SELECT count(*) FROM documents WHERE length(neighbours) = 4 * ?", (min(59, rerank.NEIGHBOURS),)).fetchone()[0] == 60
    with Index.open(db) as index:
        assert index.n_neighbours == rerank.NEIGHBOURS and index.query(text, k=20) == smoothed


def test_schema_4_reads_codes_from_the_table_until_an_update_indexes_them(tiny_corpus, tmp_path):
    db = tmp_path / "v4.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0

    def plan() -> str:  # from a new connection each time: one keeps its prepared plans
        return str(sqlite3.connect(db).execute("EXPLAIN QUERY PLAN SELECT rowid, address, code FROM documents").fetchall())

    assert "COVERING INDEX idx_documents_codes" in plan()
    conn = sqlite3.connect(db)
    with Index.open(db) as index:
        text = "hockey goalie playoffs and the space shuttle"
        before, codes = index.query(text, k=20), index.codes.copy()
    conn.execute("DROP INDEX idx_documents_codes")
    conn.execute("CREATE INDEX idx_documents_address ON documents (address)")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.commit()
    assert "COVERING" not in plan()
    with Index.open(db) as index:  # read as it is: same codes, in the same (rowid) order
        assert np.array_equal(index.codes, codes) and index.query(text, k=20) == before
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s"]).exit_code == 0
    assert "COVERING INDEX idx_documents_codes" in plan()
    assert StoredIndex(db).meta["schema_version"] == SCHEMA_VERSION
    with Index.open(db) as index:
        assert np.array_equal(index.codes, codes) and index.query(text, k=20) == before


def test_writer_rolls_back_on_error(v1_index):
    before = sqlite3.connect(v1_index).execute("SELECT id FROM documents ORDER BY id").fetchall()
    with pytest.raises(RuntimeError):
        with IndexWriter(v1_index) as writer:
            writer.delete([before[0][0]])
            raise RuntimeError("boom")
    conn = sqlite3.connect(v1_index)
    assert conn.execute("SELECT id FROM documents ORDER BY id").fetchall() == before
    assert "title" not in [r[1] for r in conn.execute("PRAGMA table_info(documents)")]  # the upgrade rolled back too
    assert StoredIndex(v1_index).meta["schema_version"] == 1


def _packed(db) -> int:
    """How many documents the index's code blocks hold (None: no block, out of date)."""
    rows = sqlite3.connect(db).execute("SELECT length(rowids) / 4 FROM code_blocks").fetchall()  # (schema 8: uint32)
    return sum(n for (n,) in rows) if rows else None


def test_schema_5_reads_codes_from_the_documents_until_an_update_packs_them(tiny_corpus, tmp_path):
    db = tmp_path / "v5.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    assert _packed(db) == 60
    text = "hockey goalie playoffs and the space shuttle"
    with Index.open(db) as index:
        before, codes, rowids = index.query(text, k=20), index.codes.copy(), index.rowids.copy()
    conn = sqlite3.connect(db)
    for name in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER code_blocks_{name}")
    conn.execute("DROP TABLE code_blocks")
    conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    conn.commit()
    with Index.open(db) as index:
        assert np.array_equal(index.codes, codes) and np.array_equal(index.rowids, rowids)
        assert index.query(text, k=20) == before
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s"]).exit_code == 0
    assert StoredIndex(db).meta["schema_version"] == SCHEMA_VERSION and _packed(db) == 60
    with Index.open(db) as index:
        assert np.array_equal(index.codes, codes) and index.query(text, k=20) == before


def test_the_packed_codes_follow_every_change_of_the_documents(tiny_corpus, tmp_path):
    db = tmp_path / "index.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0

    def packed_and_stored():
        index = StoredIndex(db)
        assert _packed(db) is not None
        return index.codes(), store.read_codes(index.conn, index.meta)

    # Writers rewrite them: documents added, changed and removed.
    new = tmp_path / "more"
    new.mkdir()
    (new / "orbit.txt").write_text("The shuttle reached orbit after the launch.")
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), str(new), "-d", str(db), "-s"]).exit_code == 0
    assert _packed(db) == 61
    (new / "orbit.txt").write_text("Goalies and playoffs: the hockey season.")
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), str(new), "-d", str(db), "-s"]).exit_code == 0
    (packed, stored) = packed_and_stored()
    for a, b in zip(packed, stored):
        assert np.array_equal(a, b)
    (new / "orbit.txt").unlink()
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), str(new), "-d", str(db), "-s", "--prune"]).exit_code == 0
    assert _packed(db) == 60
    # Any other change of a document's code empties them: a query reads the documents.
    conn = sqlite3.connect(db)
    conn.execute("UPDATE documents SET code = ? WHERE rowid = 5", (bytes(8),))
    conn.commit()
    assert _packed(db) is None
    with Index.open(db) as index:
        assert not index.codes[index.rowids == 5].any()
    # Neighbour lists are no code: storing them leaves the blocks as they are.
    with IndexWriter(db) as writer:
        writer.set_neighbours([(6, b"")])
    assert _packed(db) == 60
    with IndexWriter(db) as writer:
        writer.set_neighbours([(7, b"")])
    assert conn.execute("SELECT count(*) FROM code_blocks").fetchone()[0] == 1 and _packed(db) == 60


def _postings(db) -> dict | None:
    """{term: (df, rowids blob or None)} as stored (None: not written, or emptied)."""
    conn = sqlite3.connect(db)
    if not conn.execute("SELECT 1 FROM meta WHERE key = 'postings_max_df'").fetchone():
        return None
    return {t: (df, rowids) for t, df, rowids in conn.execute("SELECT term, df, rowids FROM postings")}


def _postings_of_the_documents(db, most: int) -> dict:
    """What the postings should hold, from the documents' stored vectors."""
    holders: dict[int, list[int]] = {}
    for rowid, blob in sqlite3.connect(db).execute("SELECT rowid, terms FROM documents ORDER BY rowid"):
        for term in rerank.from_blob(blob)[0].tolist():
            holders.setdefault(term, []).append(rowid)
    return {t: (len(r), np.array(r, "<i4").tobytes() if len(r) <= most else None) for t, r in holders.items()}


def test_the_postings_follow_every_change_of_the_documents(tiny_corpus, tmp_path, monkeypatch):
    db = tmp_path / "index.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    assert _postings(db) == _postings_of_the_documents(db, store.POSTINGS_MAX_DF)
    # Keep the rowids of terms held by as many posts as "shuttle" at most: adding a
    # post that holds it makes it too common, changing that post makes it rare again.
    conn = sqlite3.connect(db)
    (shuttle,) = conn.execute("SELECT id FROM terms WHERE term = ?", content_words("shuttle", stem=api.STEM)).fetchone()
    (most,) = conn.execute("SELECT df FROM postings WHERE term = ?", (shuttle,)).fetchone()
    monkeypatch.setattr(store, "POSTINGS_MAX_DF", most)  # kept for another limit: the next writer rewrites them
    with IndexWriter(db):
        pass
    built = _postings(db)
    assert built == _postings_of_the_documents(db, most) and built[shuttle][1] is not None
    assert {df <= most for df, _ in built.values()} == {True, False}
    calls = []  # each writer's way: changed in place (True), or rewritten (False)
    update = index_writer._update_postings
    monkeypatch.setattr(index_writer, "_update_postings", lambda *a: calls.append(update(*a)) or calls[-1])
    new = tmp_path / "more"
    new.mkdir()
    update_args = ["index", str(tiny_corpus), str(new), "-d", str(db), "-s"]
    (new / "orbit.txt").write_text("The shuttle reached orbit after the launch.")
    assert CliRunner().invoke(cli, update_args).exit_code == 0
    assert _postings(db) == _postings_of_the_documents(db, most) != built
    assert _postings(db)[shuttle][1] is None and calls == [True, True]  # (the neighbours' writer: no change)
    (new / "orbit.txt").write_text("Goalies and playoffs: the hockey season.")
    assert CliRunner().invoke(cli, update_args).exit_code == 0
    assert _postings(db) == _postings_of_the_documents(db, most) != built
    assert _postings(db)[shuttle] == built[shuttle] and calls[2] is False  # rare again: rewritten
    (new / "orbit.txt").unlink()
    assert CliRunner().invoke(cli, [*update_args, "--prune"]).exit_code == 0
    assert _postings(db) == built and calls == [True, True, False, True, True]  # the new post pruned: as built
    # Any other change of a document's terms marks them stale (queries then do
    # without), and the next writer writes them again.
    conn.execute("UPDATE documents SET terms = NULL WHERE rowid = 5")
    conn.commit()
    assert _postings(db) is None
    with Index.open(db) as index:
        assert index.stored.postings(range(index.n_terms)) == {}
        assert index.query("space shuttle orbit", k=5)
    with IndexWriter(db) as writer:
        writer.set_neighbours([(6, b"")])
    assert _postings(db) == _postings_of_the_documents(db, most) != built


def test_schema_6_gains_its_postings_with_an_update(tiny_corpus, tmp_path):
    db = tmp_path / "v6.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    built = _postings(db)
    conn = sqlite3.connect(db)
    for name in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER postings_{name}")
    conn.execute("DROP TABLE postings")
    conn.execute("DELETE FROM meta WHERE key = 'postings_max_df'")
    conn.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    conn.commit()
    with Index.open(db) as index:
        assert index.stored.postings(range(index.n_terms)) == {} and index.query("space shuttle orbit", k=5)
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s"]).exit_code == 0
    assert StoredIndex(db).meta["schema_version"] == SCHEMA_VERSION and _postings(db) == built


def test_postings_naming_no_document_or_damaged_are_corrupt_then_rewritten(tiny_corpus, tmp_path):
    """The writers keep postings exact: a rowid no document has is damage, which
    passed over changed answers unseen (issue 25); the next writer repairs it."""
    db = tmp_path / "index.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    built = _postings(db)
    conn = sqlite3.connect(db)
    term, term_id, df, rowids = conn.execute(
        "SELECT t.term, t.id, p.df, p.rowids FROM terms t JOIN postings p ON p.term = t.id WHERE p.df = 2 "
        "AND t.term NOT IN (SELECT word FROM vocabulary) AND t.term GLOB '[a-z][a-z][a-z]*' ORDER BY t.id LIMIT 1"
    ).fetchone()
    with Index.open(db) as index:
        hits = index.query(term, k=10)  # (no word of the model's: answered from the postings)
    assert len(hits) == 2
    conn.execute("UPDATE postings SET df = 3, rowids = ? WHERE term = ?", (rowids + np.int32(99_999).tobytes(), term_id))
    (other,) = conn.execute("SELECT t.term FROM terms t JOIN postings p ON p.term = t.id WHERE p.term > ? AND "
                            "t.term GLOB '[a-z][a-z][a-z]*' ORDER BY p.term LIMIT 1", (term_id,)).fetchone()
    conn.execute("UPDATE postings SET df = 'x' WHERE term = (SELECT id FROM terms WHERE term = ?)", (other,))
    conn.commit()
    with Index.open(db) as index, pytest.raises(store.StoreError, match="postings name a document the index does not have"):
        index.query(term, k=10)
    # A writer whose changes meet a damaged row rewrites them all.
    new = tmp_path / "more"
    new.mkdir()
    (new / "x.txt").write_text(f"{term} {other}")
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), str(new), "-d", str(db), "-s"]).exit_code == 0
    assert _postings(db) == _postings_of_the_documents(db, store.POSTINGS_MAX_DF) != built


def test_a_stored_vector_naming_a_huge_term_id_stops_the_postings_rewrite_in_one_line(tiny_corpus, tmp_path):
    """The rewrite sized its df by the largest term id: one damaged id of 2**31 - 1
    allocated 16 GB (a MemoryError traceback, or the OOM killer)."""
    db = tmp_path / "index.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(db), "-s", *TINY_MODEL]).exit_code == 0
    conn = sqlite3.connect(db)
    rowid, blob = conn.execute("SELECT rowid, terms FROM documents ORDER BY rowid LIMIT 1").fetchone()
    ids, weights = rerank.from_blob(blob)
    damaged = np.concatenate([[2**31 - 1], ids[1:]]).astype("<i4").tobytes() + weights.astype("<f4").tobytes()
    conn.execute("UPDATE documents SET terms = ? WHERE rowid = ?", (damaged, rowid))  # (marks the postings stale)
    conn.commit()
    conn.close()
    before = _postings(db)
    with pytest.raises(store.StoreError, match="names a term the index does not have"):
        with IndexWriter(db):
            pass
    assert _postings(db) == before  # (unchanged, still marked stale: no reader reads them)
    assert not sqlite3.connect(db).execute("SELECT 1 FROM meta WHERE key = 'postings_max_df'").fetchone()


def test_writer_lock_removes_its_file_and_never_locks_a_removed_one(tmp_path):
    # The holder removes x.db.lock before letting go (a failed run left it beside no
    # index). A run that waited on that file must then lock a new one, not the removed
    # one, or a third run could lock yet another file while the second writes.
    import fcntl
    import os
    import threading

    db = tmp_path / "x.db"
    lock = locks.lock_path(db)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run holds it
    seen = {}

    def second_run():
        with locks.writer_lock(db, wait=True):
            seen["file"] = os.stat(lock)
            seen["pid"] = lock.read_text()

    waiter = threading.Thread(target=second_run)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # queued behind the holder
    os.unlink(lock)  # the holder lets go as writer_lock does: file removed, then unlocked
    os.close(holder)
    waiter.join(10)
    assert not waiter.is_alive()
    assert seen["pid"] == str(os.getpid())  # it wrote its pid into the file at that name
    assert not lock.exists()  # and removed it in turn


@pytest.mark.parametrize("biggest, width", [(2**32 - 1, 4), (2**32, 8)])
def test_packed_rowids_and_addresses_take_4_bytes_where_they_fit(biggest, width):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE code_blocks (block INTEGER PRIMARY KEY, rowids BLOB, addresses BLOB, codes BLOB)")
    rowids, addresses = np.array([1, 5, biggest], np.int64), np.array([0, biggest, 7], np.int64)
    codes = np.arange(6, dtype=np.uint64).reshape(3, 2)
    index_writer._write_code_blocks(conn, rowids, addresses, codes)
    blocks = conn.execute("SELECT rowids, addresses, codes FROM code_blocks").fetchall()
    assert [(len(r), len(a)) for r, a, _ in blocks] == [(3 * width, 3 * width)]
    got = store.unpack_blocks(blocks, {"code_bits": 128, "address_bits": 33})
    for a, b in zip(got, (rowids, addresses, codes)):
        np.testing.assert_array_equal(a, b)


def test_a_meta_value_stored_as_a_number_is_one_line_when_codes_are_repacked():
    # test_fuzz flipped bits in a record header until a meta value read back as an
    # integer (SQL cannot store one there: the column's affinity makes it text), and
    # repacking the codes, an update's last step, raised TypeError: a traceback. Now
    # a ValueError, which the writer turns into its one-line StoreError.
    class Damaged:
        def execute(self, sql, *args):
            return iter([("created", 5)])

    with pytest.raises(ValueError, match="its metadata is not JSON"):
        index_writer._store_code_blocks(Damaged())


def naive_posting_ok(df, blob, max_df) -> bool:
    # One row, as the writers write it (the definition the batch check must equal).
    if not isinstance(df, int) or df < 1:
        return False
    if blob is None:
        return not isinstance(max_df, int) or df > max_df
    if not isinstance(blob, bytes) or len(blob) != 4 * df:
        return False
    rowids = np.frombuffer(blob, "<i4")
    return bool(rowids[0] >= 1 and (rowids[1:] > rowids[:-1]).all())


_POSTING = st.one_of(
    st.lists(st.integers(-2, 9), min_size=1, max_size=4).map(lambda r: (len(r), np.array(r, "<i4").tobytes())),
    st.lists(st.integers(1, 9), min_size=1, max_size=4, unique=True).map(lambda r: (len(r), np.array(sorted(r), "<i4").tobytes())),
    st.tuples(st.integers(0, 6), st.none()),
    st.tuples(st.integers(1, 3), st.sampled_from([b"", b"\x01\x00\x00", "text", 7])),
    st.tuples(st.sampled_from([None, "2", 2.0]), st.just(b"\x01\x00\x00\x00")),
)


@settings(max_examples=300)
@given(st.lists(_POSTING, max_size=5), st.sampled_from([3, None, "3"]))
def test_postings_are_checked_together_as_one_by_one(rows, max_df):
    from semhash.stored_values import postings_ok

    expected = all(naive_posting_ok(df, blob, max_df) for df, blob in rows)
    assert postings_ok([(t, df, blob) for t, (df, blob) in enumerate(rows)], max_df) == expected
