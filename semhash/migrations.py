"""The schema a new index is created with, and the numbered migrations that bring an
older index up to it inside the transaction of the update that needs it."""

from __future__ import annotations

import sqlite3

from semhash import store


# The current schema, as a new index is created.
# Covering: a query loads every (rowid, address, code), and every n_words, from
# this index's pages alone, not from the table's, which also hold each document's
# counts, terms and neighbours (20NG, warm cache: 28 -> 14 ms for the codes; the
# table is 30x the index).
_CODES_INDEX = "idx_documents_codes ON documents (address, code, n_words)"


_CODE_BLOCKS = "code_blocks (block INTEGER PRIMARY KEY, rowids BLOB, addresses BLOB, codes BLOB)"  # see BLOCK_DOCUMENTS


_POSTINGS = "postings (term INTEGER PRIMARY KEY, df INTEGER, rowids BLOB)"  # see POSTINGS_MAX_DF


_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    'CREATE TABLE vocabulary ("column" INTEGER PRIMARY KEY, word TEXT, df INTEGER)',
    "CREATE TABLE weights (name TEXT PRIMARY KEY, dtype TEXT, shape TEXT, data BLOB)",
    "CREATE TABLE documents (id TEXT PRIMARY KEY, path TEXT, labels TEXT, content_hash TEXT, "
    "n_words INTEGER, address INTEGER, code BLOB, counts TEXT, title TEXT, terms BLOB, neighbours BLOB)",
    "CREATE TABLE terms (id INTEGER PRIMARY KEY, term TEXT UNIQUE, idf REAL)",
    "CREATE INDEX " + _CODES_INDEX,
    "CREATE INDEX idx_documents_content_hash ON documents (content_hash)",
    "CREATE TABLE " + _CODE_BLOCKS,
    "CREATE TABLE " + _POSTINGS,
)


# A compact index (meta "compact": true; `semhash index --compact`) keeps what a
# search by codes needs, each once: the documents' ids, paths, labels, content
# hashes (what an update compares), numbers of vocabulary words (a short query's
# lift) and titles, and their addresses and codes in code_blocks alone, which a
# query loads anyway (a million codes in 0.13 s; from the rows, 1.0-1.3 s). Left
# out, in bytes per StackOverflow title of the full index (18,000, bench/sizes.py):
# the documents' counts, TF-IDF vectors, neighbour lists and codes (the rows: 523
# -> 92 with a 16-digit hash, store.COMPACT_HASH_DIGITS), idx_documents_content_hash
# (83; `similar --file` scans the rows instead), idx_documents_codes (53: the third
# copy of the codes), postings (23) and terms (17). Kept: code_blocks (40; 48
# before schema 8 packed rowids and addresses in 4 bytes), the id index (14) and
# the encoders (524 here; a fixed 9.4 MB). No triggers: code_blocks holds the only
# copy of the codes here, which the writers keep.
_COMPACT_SCHEMA = _SCHEMA[:3] + (
    "CREATE TABLE documents (id TEXT PRIMARY KEY, path TEXT, labels TEXT, content_hash TEXT, n_words INTEGER, title TEXT)",
    "CREATE TABLE " + _CODE_BLOCKS,
)


# Every document's rowid, address and code, packed in rowid order into blocks of
# BLOCK_DOCUMENTS (little-endian: rowids and addresses as uint32 where they fit,
# since schema 8, else int64; codes as uint64 words): what a query loads, in a few
# reads instead of one aggregate over a million rows (1.0-1.3 s there, warm cache;
# 0.13 s as one 48 MB blob). A copy of the documents' store.columns: the
# writers rewrite it with every change of the documents, and these triggers empty
# it whenever a row changes in any other way (a query then reads the documents).
BLOCK_DOCUMENTS = 2**20


_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS code_blocks_{name} AFTER {event} ON documents BEGIN DELETE FROM code_blocks; END"
    for name, event in (("insert", "INSERT"), ("delete", "DELETE"), ("update", "UPDATE OF rowid, address, code"))
)


_POSTINGS_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS postings_{name} AFTER {event} ON documents "
    "BEGIN DELETE FROM meta WHERE key = 'postings_max_df'; END"
    for name, event in (("insert", "INSERT"), ("delete", "DELETE"), ("update", "UPDATE OF rowid, terms"))
)


def _m002_title(conn: sqlite3.Connection) -> None:
    """Schema 2: ``documents.title``; documents indexed before keep an empty one."""
    if "title" not in store.columns(conn, "documents"):
        conn.execute("ALTER TABLE documents ADD COLUMN title TEXT")


def _m003_terms(conn: sqlite3.Connection) -> None:
    """Schema 3: the ``terms`` table and ``documents.terms``, both empty: an index
    built before ranks its shortlists by code distance alone until retrained."""
    conn.execute("CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT UNIQUE, idf REAL)")
    if "terms" not in store.columns(conn, "documents"):
        conn.execute("ALTER TABLE documents ADD COLUMN terms BLOB")


def _m004_neighbours(conn: sqlite3.Connection) -> None:
    """Schema 4: ``documents.neighbours``, NULL (not computed): the update that
    migrates computes them (``Index.add``)."""
    if "neighbours" not in store.columns(conn, "documents"):
        conn.execute("ALTER TABLE documents ADD COLUMN neighbours BLOB")


def _m005_codes_index(conn: sqlite3.Connection) -> None:
    """Schema 5: the address index covers the codes and lengths too (``_CODES_INDEX``)."""
    conn.execute("DROP INDEX IF EXISTS idx_documents_address")
    conn.execute("CREATE INDEX IF NOT EXISTS " + _CODES_INDEX)


def _m006_code_blocks(conn: sqlite3.Connection) -> None:
    """Schema 6: the ``code_blocks`` table and its triggers (the writer fills it)."""
    conn.execute("CREATE TABLE IF NOT EXISTS " + _CODE_BLOCKS)
    for statement in _TRIGGERS:
        conn.execute(statement)


def _m007_postings(conn: sqlite3.Connection) -> None:
    """Schema 7: the ``postings`` table and its triggers (the writer fills it)."""
    conn.execute("CREATE TABLE IF NOT EXISTS " + _POSTINGS)
    for statement in _POSTINGS_TRIGGERS:
        conn.execute(statement)


def _m008_narrow_blocks(conn: sqlite3.Connection) -> None:
    """Schema 8: ``code_blocks`` may hold rowids and addresses in 4 bytes each
    (``writer._pack_integers``). Nothing to change: blocks written before keep 8
    bytes, read as such, until a writer rewrites them. The new number is what
    makes an older semhash say "upgrade" of such blocks instead of "damaged"."""


#: ``MIGRATIONS[v]`` brings a schema ``v - 1`` index to schema ``v``. Each runs inside
#: the transaction of the update that needs it, so an interrupted migration leaves
#: the index at its old schema. Add ``_m009_...`` here with ``SCHEMA_VERSION = 9``.
MIGRATIONS = {
    2: _m002_title, 3: _m003_terms, 4: _m004_neighbours, 5: _m005_codes_index, 6: _m006_code_blocks, 7: _m007_postings,
    8: _m008_narrow_blocks,
}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the index open in ``conn`` (inside a write transaction) to
    :data:`SCHEMA_VERSION`; return the version it had."""
    (value,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() or (None,)
    version = store.schema_version(value, "the index")
    for step in range(version + 1, store.SCHEMA_VERSION + 1):
        MIGRATIONS[step](conn)
    store.set_meta(conn, {"schema_version": store.SCHEMA_VERSION})
    return version
