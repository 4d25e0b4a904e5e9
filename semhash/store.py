"""The index file: one SQLite database with readable tables.

Tables (open it in ``sqlite-utils`` or Datasette):

- ``documents``: id, path, labels (JSON list), content_hash, n_words, address (the
  28-bit code as an indexed INTEGER), code (the long code as a little-endian BLOB),
  counts (the document's vocabulary word counts as a JSON object), title (its first
  non-empty line; schema 2), terms (its TF-IDF vector over every term: int32 term
  ids then float32 weights, little-endian; schema 3, NULL before);
- ``vocabulary``: column, word, df;
- ``terms``: id, term, idf: every term of the documents the model was built from,
  for ranking the shortlist (``semhash.rerank``; schema 3);
- ``weights``: name, dtype, shape (JSON), data (raw little-endian float32 bytes, never
  pickle);
- ``meta``: key, value (JSON): schema version, parameters, creation time, ...
- ``code_blocks``: block, rowids, addresses, codes: a copy of every document's
  rowid, address and code, packed (``BLOCK_DOCUMENTS`` documents a row), which a
  query loads in a few reads; rewritten by every writer, emptied by triggers on any
  other change of the documents (schema 6);
- ``postings``: term, df, rowids: each term's number of documents, and for a term
  held by at most ``POSTINGS_MAX_DF`` documents their rowids (int32, ascending;
  NULL for commoner terms), which the query path adds to its shortlists
  (``semhash.rerank.RARE_TERMS``); derived from ``documents.terms`` as
  ``code_blocks`` is, kept by every writer, marked stale by triggers (schema 7).

Reading and writing use the standard library's sqlite3 (importing sqlite-utils costs
half a second, which a query should not pay), and every value goes in as a ``?``
parameter, never into the SQL text.

What holds, whatever happens to a writer:

- The database is in WAL mode: a query reads the last committed state while an
  update is being written.
- Every change is one transaction. A new index is written to a temporary file beside
  the target and moved over it with ``os.replace`` once complete; an existing index
  is rebuilt, or updated (:class:`IndexWriter`), inside one transaction. Killed at any
  moment (``kill -9`` included), a writer leaves the previous index as it was.
  (Renaming a file over a WAL database that others may have open is unsafe, which
  is why an existing index is rebuilt in place rather than swapped.)
- Writers take :func:`writer_lock`, an exclusive ``flock`` on ``<index>.lock``: a
  second writer fails at once with :class:`IndexLocked`, or waits. The kernel drops
  the lock when its holder dies, so a killed run never leaves a stale lock.
- A schema older than :data:`SCHEMA_VERSION` is read as it is and upgraded by the
  numbered :data:`MIGRATIONS` on the next write; a newer one is refused.
"""

from __future__ import annotations

import glob
import json
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 7  # 2: documents.title; 3: terms, documents.terms; 4: documents.neighbours;
# 5: the address index also holds the code and n_words; 6: code_blocks; 7: postings
OLDEST_SCHEMA = 1  # the oldest schema an update can migrate from
DOCUMENT_COLUMNS = (
    "id", "path", "labels", "content_hash", "n_words", "address", "code", "counts", "title", "terms", "neighbours",
)
TABLES = ("meta", "vocabulary", "weights", "documents", "terms", "code_blocks", "postings")
BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's own write lock
SQLITE_HEADER = b"SQLite format 3\x00"
REBUILD = "rebuild it with `semhash index --retrain PATHS`"

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

# Every document's rowid, address and code, packed in rowid order into blocks of
# BLOCK_DOCUMENTS (little-endian int64, int64, uint64 words): what a query loads,
# in a few reads instead of one aggregate over a million rows (1.0-1.3 s there,
# warm cache; 0.13 s as one 48 MB blob). A copy of the documents' columns: the
# writers rewrite it with every change of the documents, and these triggers empty
# it whenever a row changes in any other way (a query then reads the documents).
BLOCK_DOCUMENTS = 2**20
_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS code_blocks_{name} AFTER {event} ON documents BEGIN DELETE FROM code_blocks; END"
    for name, event in (("insert", "INSERT"), ("delete", "DELETE"), ("update", "UPDATE OF rowid, address, code"))
)
#: Documents a term may be held by and still have its rowids kept in ``postings``:
#: the most that ``semhash.rerank.RARE_TERMS`` can add to a shortlist. (On 20NG all
#: but 220 of the 99,847 terms are that rare; their postings hold 0.85 M of the 1.07 M
#: (document, term) pairs, 3.4 MB.) ``meta.postings_max_df`` says they are current:
#: every writer changes the postings of the terms of the documents it changed (a
#: rewrite of all of them took a one-document update of a million documents from
#: 21 to 29 s), and the triggers delete the mark on any change of the documents,
#: so that a change made outside semhash leaves postings that no one reads, until
#: the next writer rewrites them whole.
POSTINGS_MAX_DF = 500
_POSTINGS_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS postings_{name} AFTER {event} ON documents "
    "BEGIN DELETE FROM meta WHERE key = 'postings_max_df'; END"
    for name, event in (("insert", "INSERT"), ("delete", "DELETE"), ("update", "UPDATE OF rowid, terms"))
)


class StoreError(ValueError):
    """The database is missing, not a semhash index, corrupt, or from a newer semhash."""


class IndexLocked(StoreError):
    """Another process is writing this index."""


@dataclass
class DocumentRow:
    id: str
    path: str | None
    labels: tuple[str, ...]
    content_hash: str
    counts: dict[str, int]
    title: str = ""
    terms: bytes | None = None  # semhash.rerank.to_blob of its TF-IDF vector


def labels_json(labels: Sequence[str]) -> str:
    """Labels as the ``labels`` column stores them (what an update compares with)."""
    return json.dumps(list(labels))


def _document_record(d: DocumentRow, address: int, code: bytes) -> dict:
    return {
        "id": d.id,
        "path": d.path,
        "labels": labels_json(d.labels),
        "content_hash": d.content_hash,
        "n_words": int(sum(d.counts.values())),
        "address": int(address),
        "code": code,
        "counts": json.dumps(d.counts),
        "title": d.title,
        "terms": d.terms,
        "neighbours": None,  # not computed yet (a changed document's old list is dropped)
    }


# -- migrations ----------------------------------------------------------------------


def _m002_title(conn: sqlite3.Connection) -> None:
    """Schema 2: ``documents.title``; documents indexed before keep an empty one."""
    if "title" not in _columns(conn, "documents"):
        conn.execute("ALTER TABLE documents ADD COLUMN title TEXT")


def _m003_terms(conn: sqlite3.Connection) -> None:
    """Schema 3: the ``terms`` table and ``documents.terms``, both empty: an index
    built before ranks its shortlists by code distance alone until retrained."""
    conn.execute("CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT UNIQUE, idf REAL)")
    if "terms" not in _columns(conn, "documents"):
        conn.execute("ALTER TABLE documents ADD COLUMN terms BLOB")


def _m004_neighbours(conn: sqlite3.Connection) -> None:
    """Schema 4: ``documents.neighbours``, NULL (not computed): the update that
    migrates computes them (``Index.add``)."""
    if "neighbours" not in _columns(conn, "documents"):
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


#: ``MIGRATIONS[v]`` brings a schema ``v - 1`` index to schema ``v``. Each runs inside
#: the transaction of the update that needs it, so an interrupted migration leaves
#: the index at its old schema. Add ``_m008_...`` here with ``SCHEMA_VERSION = 8``.
MIGRATIONS = {
    2: _m002_title, 3: _m003_terms, 4: _m004_neighbours, 5: _m005_codes_index, 6: _m006_code_blocks, 7: _m007_postings,
}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the index open in ``conn`` (inside a write transaction) to
    :data:`SCHEMA_VERSION`; return the version it had."""
    (value,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() or (None,)
    version = _schema_version(value, "the index")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[step](conn)
    _set_meta(conn, {"schema_version": SCHEMA_VERSION})
    return version


def _schema_version(value, where) -> int:
    """The schema version stored as JSON ``value``, checked: an int we can read."""
    try:
        version = json.loads(value) if value is not None else None
    except (TypeError, ValueError):
        version = None
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(f"{where} is not a semhash index (no schema_version in meta)")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} was made by a newer semhash (schema {version} > {SCHEMA_VERSION}): "
            "upgrade semhash (pip install -U semantic-hashing)"
        )
    if version < OLDEST_SCHEMA:
        raise StoreError(f"{where} has schema {version}, older than this semhash can read: {REBUILD}")
    return version


# -- the writer lock -------------------------------------------------------------------

_HELD: dict[str, int] = {}  # locks this process holds: realpath -> depth (re-entrant)


def lock_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.lock")


@contextmanager
def writer_lock(path: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive writer lock of the index at ``path`` for the block.

    The lock is an ``flock`` on ``<path>.lock``, held for a whole ``semhash
    index`` run, training included, so two runs never interleave. It is
    re-entrant within a process. The holder removes the file before letting go
    (a failed run left an empty ``x.db.lock`` beside no index); so a run that
    waited on a file since removed locks the new one instead (see
    :func:`_locked_file`).

    Raises
    ------
    IndexLocked
        If another process holds it and ``wait`` is false; with ``wait``, block
        until it is free.
    """
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): SQLite's own lock still serialises the writes
        yield
        return
    fd = _locked_file(path, wait, fcntl)
    try:
        # Under the lock no other writer lives: a killed build's ~20 MB temporary went
        # only at the next build, not at an update.
        _remove_stale_temporaries(Path(path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            with suppress(OSError):  # (a folder made read-only meanwhile: the file stays)
                os.unlink(lock_path(path))
    finally:
        os.close(fd)  # releases the flock


def _locked_file(path: str | os.PathLike, wait: bool, fcntl) -> int:
    """An open descriptor of ``<path>.lock``, flocked, that is still the file at
    that name: a holder removes the file while it holds the lock, so a run that
    got the lock of a removed file tries again on the new one, and two runs
    never hold locks on two different files."""
    name = lock_path(path)
    while True:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:  # the first file a run writes: say it is the index's folder that fails
            raise StoreError(f"cannot write {path} ({e.strerror}: {name})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise IndexLocked(
                f"another `semhash index` is writing {path}"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + ": wait for it to finish, or pass --wait to queue behind it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


# -- writing -----------------------------------------------------------------------------


def _connect_writer(path: str | os.PathLike, wal: bool = True) -> sqlite3.Connection:
    """A connection that issues its own BEGIN/COMMIT and waits for SQLite's write lock."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _empty_wal(conn: sqlite3.Connection) -> None:
    """After a writer's commit: copy the log into the database file and empty the log.

    A query opens the index read-only, often as its only connection, and so
    rebuilds SQLite's index of the -wal file by reading all of it: the 2 GB log
    left beside a million-document build (a reader was open when the writer
    closed, so SQLite did not remove it) cost every query 1.1 s to open, against
    1 ms once emptied (16 ms against 1 ms for the 20NG index). Best effort:
    readers in the middle of a read block the reset, and waiting for them would
    stall the writer, so after 0.2 s it gives up (the next write tries again); a
    failure is ignored too, as the commit has already succeeded."""
    try:
        conn.execute("PRAGMA busy_timeout = 200")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError:
        pass


def is_missing(path: str | os.PathLike) -> bool:
    """Nothing at ``path``, or an empty file: a new index goes there (cheap check)."""
    path = Path(path)
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def kind_of(path: str | os.PathLike) -> str:
    """What lies at ``path``, as far as writing an index there goes.

    Returns
    -------
    "missing" (nothing, or an empty file), "index" (a healthy semhash index),
    "corrupt" (an SQLite file that fails to read or to pass ``quick_check``)

    Raises
    ------
    StoreError
        If it is something else (not SQLite, or an SQLite database that is not a
        semhash index), which an index must never overwrite; or an index of a
        newer schema.
    """
    path = Path(path)
    if is_missing(path):
        return "missing"
    if not path.is_file():
        raise StoreError(f"{path} is not a file: choose another -d/--database")
    with open(path, "rb") as f:
        is_sqlite = f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    refuse = f"{path} exists and is not a semhash index: choose another -d/--database, or remove it"
    if not is_sqlite:
        raise StoreError(refuse)
    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True)
    except sqlite3.Error:
        return "corrupt"
    try:
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
                raise StoreError(refuse)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError:
            return "corrupt"
        if row is None:
            raise StoreError(refuse)
        _schema_version(row[0], str(path))
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            ok = False
        return "index" if ok else "corrupt"
    finally:
        conn.close()


def write_index(
    path: str | os.PathLike,
    *,
    meta: dict,
    words: list[str],
    df: np.ndarray,
    arrays: dict[str, np.ndarray],
    documents: Iterable[DocumentRow],
    addresses: np.ndarray,
    codes: np.ndarray,
    terms: Sequence[str] = (),
    idf: np.ndarray | None = None,
) -> None:
    """Write a complete index to ``path``, replacing any index there in one step.

    Nothing there: the index is written to a temporary file and moved into place.
    A healthy index there: it is rebuilt in one transaction, so queries keep reading
    the old one until the commit. A corrupt index: replaced like nothing. Anything
    else there is never overwritten (``StoreError``, see :func:`kind_of`).

    Parameters
    ----------
    meta : dict
        JSON-serialisable metadata; ``schema_version`` is added.
    words, df : vocabulary, in column order, and document frequencies
    arrays : dict of name -> float32 ndarray
        Model weights.
    documents : iterable of DocumentRow, in the same order as ``addresses``/``codes``
    addresses : ndarray of int64, shape (n,)
    codes : ndarray of uint64, shape (n, n_words)
    terms, idf : every term (id = position) and its inverse document frequency
    """
    path = Path(path)
    with writer_lock(path, wait=True):
        tables = (meta, words, df, arrays, documents, addresses, codes, terms, idf)
        if kind_of(path) == "index":
            conn = _connect_writer(path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                for table in TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")  # constant names, not input
                _fill(conn, *tables)
                conn.execute("COMMIT")
                _empty_wal(conn)
            except sqlite3.DatabaseError as e:
                raise StoreError(f"cannot write {path} ({e})") from None
            finally:
                conn.close()  # without COMMIT, closing rolls back
            return
        import tempfile  # here, not at the top: 7 ms of every query's start-up

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; an index is an ordinary file
        try:
            conn = _connect_writer(tmp, wal=False)
            try:
                conn.execute("BEGIN")
                _fill(conn, *tables)
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            # A -wal or -shm left by an index that was deleted or corrupt would be
            # read as part of the new file: they go first (we hold the writer lock).
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, path)
            _fsync_directory(path.parent)
        except BaseException as e:
            for leftover in (tmp, f"{tmp}-journal"):  # a full disk left the journal behind
                Path(leftover).unlink(missing_ok=True)
            if isinstance(e, sqlite3.DatabaseError):  # "database or disk is full" was a traceback
                raise StoreError(f"cannot write {path} ({e}): nothing was written") from None
            raise


def _fill(conn, meta, words, df, arrays, documents, addresses, codes, terms, idf) -> None:
    """Create the current schema's tables in ``conn`` (inside a transaction) and fill them."""
    for statement in _SCHEMA:
        conn.execute(statement)
    _set_meta(conn, {**meta, "schema_version": SCHEMA_VERSION})
    conn.executemany(
        'INSERT INTO vocabulary ("column", word, df) VALUES (?, ?, ?)',
        ((i, w, int(d)) for i, (w, d) in enumerate(zip(words, df))),
    )
    conn.executemany(
        "INSERT INTO weights (name, dtype, shape, data) VALUES (?, ?, ?, ?)",
        ((k, "float32", json.dumps(list(a.shape)), _le_f32(a).tobytes()) for k, a in arrays.items()),
    )
    conn.executemany(
        "INSERT INTO terms (id, term, idf) VALUES (?, ?, ?)", zip(range(len(terms)), terms, np.asarray(idf).tolist())
    )
    _insert_documents(conn, documents, addresses, codes)
    _store_derived(conn)
    for statement in _TRIGGERS + _POSTINGS_TRIGGERS:  # after the inserts, which need not fire them
        conn.execute(statement)


def _store_derived(conn: sqlite3.Connection, if_missing: bool = False, before: dict | None = None) -> None:
    """Write what the writers derive from the documents: the typical length, the
    packed codes and the postings (with ``if_missing``, only what an older index
    lacks). ``before``: what the documents' terms were before a writer that found
    the postings current changed them (:func:`_update_postings`)."""
    _store_typical_length(conn, if_missing)
    _store_code_blocks(conn, if_missing)
    if before is None or not _update_postings(conn, before):
        _store_postings(conn, if_missing)


def typical_length(lengths: np.ndarray) -> float:
    """The length a short query is read as: the median number of vocabulary words
    of the indexed documents (1 for none)."""
    return float(np.median(lengths)) if lengths.size else 1.0


def _lengths(conn: sqlite3.Connection) -> tuple[int, np.ndarray]:
    """(count, every document's number of vocabulary words), read in one row: one
    tuple per document cost 0.6 s at a million."""
    ((n, lengths),) = conn.execute("SELECT count(*), group_concat(n_words) FROM documents").fetchall()
    return n, _integers(lengths)


def _store_typical_length(conn: sqlite3.Connection, if_missing: bool = False) -> None:
    """Keep :func:`typical_length` in meta, written with the documents it describes:
    computed per query instead, it cost every query at a million documents 0.4 s."""
    if if_missing and conn.execute("SELECT 1 FROM meta WHERE key = 'typical_length'").fetchone():
        return
    _set_meta(conn, {"typical_length": typical_length(_lengths(conn)[1])})


def read_codes(conn: sqlite3.Connection, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rowids int64 (n,), addresses int64 (n,), codes uint64 (n, n_words)) of every
    document, in rowid order, from the documents table; each code's length and each
    address's range checked against ``meta`` (``ValueError`` says which is wrong).

    SQLite concatenates the columns (one aggregate over the covering index, in its
    order; the rows are put in rowid order here): one Python tuple per document
    cost 4 s of a one-shot query on a million documents. The codes are concatenated
    as they are (group_concat reads a blob's bytes as UTF-8 text without converting
    them, and the cast takes them back), 4x faster than through hex()."""
    n_words = (int(meta["code_bits"]) + 63) // 64
    size = 8 * n_words
    ((n, shortest, longest, rowids, addresses, blob),) = conn.execute(
        "SELECT count(*), min(length(code)), max(length(code)), "
        "group_concat(rowid), group_concat(address), CAST(group_concat(code, '') AS BLOB) FROM documents"
    ).fetchall()
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_words), np.uint64)
    # A NULL is left out of the concatenation, a UTF-16 database would convert it.
    if shortest != size or longest != size or len(blob or b"") != size * n:
        raise ValueError(f"a stored code is not {size} bytes long")
    addresses = _check_addresses(_integers(addresses), n, meta)
    codes = np.frombuffer(blob, dtype="<u8").reshape(n, n_words).astype(np.uint64)
    rowids = _integers(rowids)
    order = np.argsort(rowids, kind="stable")
    return rowids[order], addresses[order], codes[order]


def _check_addresses(addresses: np.ndarray, n: int, meta: dict) -> np.ndarray:
    limit = 2 ** int(meta["address_bits"])
    if addresses.shape[0] != n or (n and (addresses.min() < 0 or addresses.max() >= limit)):
        raise ValueError(f"a stored address is not an integer in [0, {limit})")
    return addresses


def _store_code_blocks(conn: sqlite3.Connection, if_missing: bool = False) -> None:
    """Rewrite ``code_blocks`` from the documents (inside the writer's transaction).
    An index without documents gets one empty block: no block means out of date."""
    if if_missing and conn.execute("SELECT 1 FROM code_blocks LIMIT 1").fetchone():
        return
    meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    rowids, addresses, codes = read_codes(conn, meta)
    conn.execute("DELETE FROM code_blocks")
    conn.executemany(
        "INSERT INTO code_blocks (block, rowids, addresses, codes) VALUES (?, ?, ?, ?)",
        (
            (b, rowids[s : s + BLOCK_DOCUMENTS].astype("<i8").tobytes(),
             addresses[s : s + BLOCK_DOCUMENTS].astype("<i8").tobytes(),
             codes[s : s + BLOCK_DOCUMENTS].astype("<u8").tobytes())
            for b, s in enumerate(range(0, max(len(rowids), 1), BLOCK_DOCUMENTS))
        ),
    )


def _store_postings(conn: sqlite3.Connection, if_missing: bool = False) -> None:
    """Rewrite ``postings`` from the documents' stored vectors (inside the writer's
    transaction): one pass, 65,536 documents at a time, keeping the (term, rowid)
    pairs only of terms seen in at most ``POSTINGS_MAX_DF`` documents so far."""
    from semhash import rerank  # (the writers' module; a query that only reads never needs it here)

    if if_missing and _postings_current(conn):
        return
    (last_term,) = conn.execute("SELECT MAX(id) FROM terms").fetchone()
    n_terms = 0 if last_term is None else int(last_term) + 1
    df = np.zeros(0, np.int64)
    kept_terms, kept_rowids = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
    cursor = conn.execute("SELECT rowid, terms FROM documents ORDER BY rowid")
    while chunk := cursor.fetchmany(rerank._BLOBS_AT_ONCE):
        blobs = [b if isinstance(b, bytes) else b"" for _, b in chunk]
        starts, ids, _ = rerank.pack_blobs(blobs, sum(map(len, blobs)))
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n_terms):  # (an id of 2**31 - 1: 16 GB of df)
            raise ValueError(f"a stored TF-IDF vector names a term the index does not have; {REBUILD}")
        rowids = np.repeat(np.fromiter((r for r, _ in chunk), np.int64, len(chunk)), np.diff(starts))
        df = np.bincount(ids, minlength=df.shape[0]) + np.pad(df, (0, max(0, int(ids.max(initial=-1)) + 1 - df.shape[0])))
        rare = df[ids] <= POSTINGS_MAX_DF
        kept_terms.append(ids[rare])
        kept_rowids.append(rowids[rare])
        if len(kept_terms) > 16:  # the pairs of terms that have grown common since go
            terms, held = np.concatenate(kept_terms), np.concatenate(kept_rowids)
            rare = df[terms] <= POSTINGS_MAX_DF
            kept_terms, kept_rowids = [terms[rare]], [held[rare]]
    terms, held = np.concatenate(kept_terms), np.concatenate(kept_rowids)
    rare = df[terms] <= POSTINGS_MAX_DF
    terms, held = terms[rare], held[rare]
    order = np.argsort(terms, kind="stable")  # each term's rowids stay ascending
    terms, held = terms[order], held[order]
    bounds = np.searchsorted(terms, np.arange(df.shape[0] + 1))
    conn.execute("DELETE FROM postings")
    conn.executemany(
        "INSERT INTO postings (term, df, rowids) VALUES (?, ?, ?)",
        (
            (t, int(df[t]), held[bounds[t] : bounds[t + 1]].astype("<i4").tobytes() if df[t] <= POSTINGS_MAX_DF else None)
            for t in np.flatnonzero(df).tolist()
        ),
    )
    _set_meta(conn, {"postings_max_df": POSTINGS_MAX_DF})


def _postings_current(conn: sqlite3.Connection) -> bool:
    """Whether ``postings`` hold the documents' terms as they are, kept for terms of
    up to this version's ``POSTINGS_MAX_DF`` documents (another limit: rewritten)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'postings_max_df'").fetchone()
    return row is not None and row[0] == json.dumps(POSTINGS_MAX_DF)


def _update_postings(conn: sqlite3.Connection, before: dict[int, bytes | None]) -> bool:
    """Bring ``postings`` from the documents as they were (``before``: {rowid: its
    stored vector blob, or None where there was no document}) to the documents
    those rowids hold now; False, changing nothing, when a term that was too
    common to have its rowids kept has become rare enough to need them."""
    after = dict(_select_in(conn, "SELECT rowid, terms FROM documents WHERE rowid IN ({})", list(before)))
    removed, added = _holders_of(before), _holders_of(after)
    terms = sorted(set(removed) | set(added))
    stored = {t: (df, blob) for t, df, blob in _select_in(conn, "SELECT term, df, rowids FROM postings WHERE term IN ({})", terms)}
    rows = []
    for term in terms:
        df, blob = stored.get(term, (0, b""))
        if not isinstance(df, int):  # damaged: the rewrite repairs it
            return False
        gone, new = removed.get(term, set()), added.get(term, set())
        df = df - len(gone) + len(new)
        if df > POSTINGS_MAX_DF:
            rows.append((term, df, None))
        elif not isinstance(blob, bytes):  # too common before (or damaged): its holders are not known
            return False
        else:
            held = (set(np.frombuffer(blob, "<i4", len(blob) // 4).tolist()) - gone) | new
            rows.append((term, len(held), np.array(sorted(held), "<i4").tobytes()))
    conn.executemany("DELETE FROM postings WHERE term = ?", ((t,) for t, df, _ in rows if df == 0))
    conn.executemany("INSERT OR REPLACE INTO postings (term, df, rowids) VALUES (?, ?, ?)", (r for r in rows if r[1]))
    _set_meta(conn, {"postings_max_df": POSTINGS_MAX_DF})
    return True


def _holders_of(vectors: dict[int, bytes | None]) -> dict[int, set[int]]:
    """{term id: rowids} of stored vector blobs by rowid."""
    out: dict[int, set[int]] = {}
    for rowid, blob in vectors.items():
        ids = np.frombuffer(blob, "<i4", len(blob) // 8) if isinstance(blob, bytes) else ()
        for term in ids.tolist() if len(ids) else ():
            out.setdefault(term, set()).add(rowid)
    return out


def _select_in(conn: sqlite3.Connection, sql: str, values: list) -> list[tuple]:
    """The rows of ``sql`` whose ``IN ({})`` takes ``values``, 900 at a time
    (SQLite's limit on bound variables)."""
    out: list[tuple] = []
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        out += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return out


def _insert_documents(conn: sqlite3.Connection, documents, addresses, codes) -> None:
    codes_le = codes.astype("<u8", copy=False)
    columns = ", ".join(DOCUMENT_COLUMNS)
    marks = ", ".join(f":{c}" for c in DOCUMENT_COLUMNS)
    conn.executemany(
        f"INSERT INTO documents ({columns}) VALUES ({marks})",
        (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses))),
    )


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of earlier writers that were killed (under the lock)."""
    for stale in glob.glob(os.path.join(glob.escape(str(path.parent)), glob.escape(f".{path.name}.") + "*.tmp*")):
        Path(stale).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _le_f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype="<f4")


def _set_meta(conn: sqlite3.Connection, meta: dict) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        ((k, json.dumps(v)) for k, v in meta.items()),
    )


class IndexWriter:
    """Change an existing index in one transaction: all the changes, or none.

    Use it as a context manager; leaving the block normally commits, an exception
    (or Ctrl-C, or ``kill -9``) rolls back, so an interrupted update leaves the
    previous index as it was. Queries keep reading the committed index meanwhile
    (WAL). An index of an older schema is migrated (:data:`MIGRATIONS`) inside the
    same transaction. Callers should hold :func:`writer_lock`.

    Examples
    --------
    >>> with IndexWriter("semhash.db") as w:        # doctest: +SKIP
    ...     w.delete(["old/doc.txt"])
    ...     w.set_meta({"n_documents": 59})
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no index at {self.path}: run `semhash index PATH` first, or pass -d/--database")
        try:
            self.conn = _connect_writer(self.path)
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot write to {self.path} ({e})") from None
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a semhash index ({e})") from None
        self._documents_changed = False
        self._before: dict[int, bytes | None] = {}  # rowid -> its terms when this writer began
        try:
            migrate(self.conn)
            self._postings_current = _postings_current(self.conn)
        except BaseException as e:
            self.conn.close()  # rolls back
            if _is_read_only(e):  # a read-only file opens and BEGINs; its first write fails
                raise StoreError(f"cannot write to {self.path} ({e}): the index is unchanged") from None
            if isinstance(e, sqlite3.DatabaseError):
                raise StoreError(f"{self.path} is not a semhash index, or is corrupt ({e}): {REBUILD}") from None
            raise

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type:
                self.conn.execute("ROLLBACK")
            else:
                # (an index written before they were kept gets them now)
                before = self._before if self._postings_current else None
                self._run(_store_derived, self.conn, not self._documents_changed, before)
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.DatabaseError as e:
                    raise StoreError(f"cannot write to {self.path} ({e}): the index is unchanged") from None
                _empty_wal(self.conn)
        finally:
            self.conn.close()

    def upsert(self, documents: Iterable[DocumentRow], addresses: np.ndarray, codes: np.ndarray) -> None:
        """Insert documents, or replace those whose id is already stored (keeping their rowid)."""
        self._documents_changed = True
        documents = list(documents)
        ids = [d.id for d in documents]
        self._run(self._remember, ids)  # before the change
        codes_le = codes.astype("<u8", copy=False)
        columns = ", ".join(DOCUMENT_COLUMNS)
        marks = ", ".join(f":{c}" for c in DOCUMENT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in DOCUMENT_COLUMNS if c != "id")
        self._run(
            self.conn.executemany,
            f"INSERT INTO documents ({columns}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
            (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses))),
        )
        self._run(self._remember, ids, True)

    def _remember(self, ids: list[str], inserted: bool = False) -> None:
        """Note the terms the documents of these ids had when this writer began (for
        :func:`_update_postings`): before it first changes them, their stored
        terms; after it inserted them, none (a rowid not noted before it was not
        in use: it would have been noted by this writer's change of its document)."""
        query = "SELECT rowid, terms FROM documents WHERE id IN ({})"
        for rowid, terms in _select_in(self.conn, query, ids):
            self._before.setdefault(rowid, None if inserted else terms)

    def set_neighbours(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Store neighbour lists: (rowid, ``semhash.rerank.neighbours_to_blob``) pairs."""
        self._run(self.conn.executemany, "UPDATE documents SET neighbours = ? WHERE rowid = ?", ((b, r) for r, b in rows))

    def delete(self, ids: Iterable[str]) -> None:
        self._documents_changed = True
        ids = list(ids)
        self._run(self._remember, ids)
        self._run(self.conn.executemany, "DELETE FROM documents WHERE id = ?", ((i,) for i in ids))

    def set_meta(self, meta: dict) -> None:
        self._run(_set_meta, self.conn, meta)

    def _run(self, fn, *args) -> None:
        try:
            fn(*args)
        except (sqlite3.DatabaseError, ValueError) as e:  # ValueError: read_codes found a bad row
            raise StoreError(f"cannot write to {self.path} ({e}): the index is unchanged") from None


def _postings_ok(df, blob, max_df) -> bool:
    """Whether a row of ``postings`` is as the writers write it: ``df`` documents,
    their rowids (positive, ascending) for a term of at most ``max_df``, else NULL."""
    if not isinstance(df, int) or df < 1:
        return False
    if blob is None:
        return not isinstance(max_df, int) or df > max_df
    if not isinstance(blob, bytes) or len(blob) != 4 * df:
        return False
    rowids = np.frombuffer(blob, "<i4")
    return bool(rowids[0] >= 1 and (rowids[1:] > rowids[:-1]).all())


def _is_read_only(e: BaseException) -> bool:
    """Whether SQLite failed for want of write access (the file, its folder, or its
    -shm file), not because the database is damaged."""
    return isinstance(e, sqlite3.OperationalError) and "readonly database" in str(e)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]  # constant names, not input


def _ro_uri(path: str | os.PathLike) -> str:
    """A read-only SQLite URI for ``path``, percent-encoded: names with ``?``, ``#``
    or ``%`` open the right file."""
    return Path(path).absolute().as_uri() + "?mode=ro"


def _integers(text: str | None) -> np.ndarray:
    """int64 array of comma-separated integers, cut short at the first token that is
    not one (the caller checks the count)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy's word for "cut short"
            return np.fromstring(text or "", np.int64, sep=",")  # text mode: not deprecated
    except ValueError:
        return np.zeros(0, np.int64)


# What reading a damaged file raises: SQLite's errors, and UnicodeDecodeError where
# the sqlite3 module decodes text that is no longer UTF-8 (a flipped bit).
_DAMAGE = (sqlite3.DatabaseError, UnicodeDecodeError)


def _idf(value) -> float:
    """A stored idf as a float; NaN for what is not a number (text, a blob) or does
    not fit the float32 the rankers weigh with (it would be inf there)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if abs(value) <= np.finfo(np.float32).max else float("nan")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(check):
    return lambda value: isinstance(value, list) and len(value) == 2 and all(v is None or check(v) for v in value)


# What each meta value must be, beyond JSON (None: not kept, as by older indexes): a
# damaged one was used as it came, and a float unpacked as a pair, or a number
# iterated as a list, was a traceback.
_META_CHECKS = {
    **dict.fromkeys(("semhash_version", "created", "updated", "text"), lambda v: isinstance(v, str)),
    **dict.fromkeys(("vocab_size", "n_terms", "n_documents", "n_trained", "n_neighbours", "postings_max_df"), _count),
    **dict.fromkeys(("oov_share", "typical_length"), _number),
    **dict.fromkeys(("params", "build_options"), lambda v: isinstance(v, dict)),
    "hidden_sizes": lambda v: isinstance(v, list) and all(_count(x) for x in v),
    "messages": _pair(_count),
    "bimodality": _pair(_number),
    "finetune_loss": lambda v: isinstance(v, list),
}


class StoredIndex:
    """Read-only view of an index file, loaded lazily.

    Every read checks what it gets: a corrupt or truncated file, or arrays whose
    size disagrees with the metadata, raise :class:`StoreError`, never a crash.

    Parameters
    ----------
    path : path of the SQLite file
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no index at {self.path}: run `semhash index PATH` first, or pass -d/--database")
        self.conn = None
        try:
            pairs = self._connect(_ro_uri(self.path))
        except _DAMAGE as e:
            # WAL: a reader too needs the -shm and -wal files, and makes them if they are
            # missing. In a folder it may not write, SQLite 3.40 says "unable to open":
            # not damage, which "not a semhash index" had users believe of a healthy index.
            if _is_read_only(e) or "unable to open" in str(e):
                pairs = self._read_only_copy(e)
            else:
                raise self._unreadable(e) from None
        try:
            self.meta = {k: json.loads(v) for k, v in pairs}
        except (TypeError, ValueError):
            raise self._corrupt("its metadata is not JSON") from None
        _schema_version(json.dumps(self.meta.get("schema_version")), str(self.path))
        self._data_version = None
        for key, low, high in (("address_bits", 1, 63), ("code_bits", 1, None)):
            value = self.meta.get(key)
            if not isinstance(value, int) or value < low or (high is not None and value > high):
                raise self._corrupt(f"meta {key} is {value!r}")
        for key, ok in _META_CHECKS.items():
            if self.meta.get(key) is not None and not ok(self.meta[key]):
                raise self._corrupt(f"meta {key} is {self.meta[key]!r:.40}")

    def _connect(self, uri: str) -> list[tuple]:
        """Open ``uri`` (read-only: a query never creates or modifies the file) and read the meta pairs."""
        self.conn = sqlite3.connect(uri, uri=True)
        return self.conn.execute("SELECT key, value FROM meta").fetchall()

    def _read_only_copy(self, e: sqlite3.DatabaseError) -> list[tuple]:
        """Open an index whose folder this process may not write (a shared or mounted
        copy) as immutable: SQLite then needs no -shm file, and reads the file alone.
        Only when no -wal file holds changes, which immutable would not see (the
        writers empty it after each commit); a writer that can write the folder
        while such a copy is read is not seen either."""
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"cannot read {self.path} ({e}): SQLite needs to create {self.path.name}-shm beside it "
                f"to read {wal.name}; make its folder writable"
            ) from None
        if self.conn is not None:
            self.conn.close()
        try:
            return self._connect(_ro_uri(self.path) + "&immutable=1")
        except _DAMAGE as again:
            raise self._unreadable(again) from None

    def _unreadable(self, e: sqlite3.DatabaseError | UnicodeDecodeError) -> StoreError:
        # SQLITE_CORRUPT (a cut copy, a full disk), or text no longer UTF-8: an index once, say how to rebuild
        if "malformed" in str(e) or isinstance(e, UnicodeDecodeError):
            return self._corrupt(str(e))
        return StoreError(f"{self.path} is not a semhash index ({e})")

    def begin(self) -> bool:
        """Start a read transaction (a snapshot), unless one is open; say whether it started."""
        if self.conn.in_transaction:
            return False
        try:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # takes the snapshot
        except _DAMAGE as e:
            self.conn.rollback()
            raise self._corrupt(str(e)) from None
        return True

    def end(self) -> None:
        """End the read transaction (it wrote nothing: a failure to end it is moot)."""
        try:
            self.conn.commit()
        except _DAMAGE:
            self.conn.rollback()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same committed index,
        whatever a writer commits meanwhile (WAL). Re-entrant."""
        started = self.begin()
        try:
            yield
        finally:
            if started:
                self.end()

    def mark(self) -> None:
        """Remember the current state (call inside the :meth:`snapshot` a load reads)."""
        self._data_version = self._all("PRAGMA data_version")[0][0]

    def changed(self) -> bool:
        """Whether another connection has committed a change since :meth:`mark`."""
        return self._all("PRAGMA data_version")[0][0] != self._data_version

    def _corrupt(self, what: str) -> StoreError:
        return StoreError(f"{self.path} is corrupt ({what}): {REBUILD}")

    def _all(self, sql: str, params=()) -> list[tuple]:
        """Run one read; a damaged file is a StoreError."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None

    def _all_in(self, sql: str, values: list) -> list[tuple]:
        """:func:`_select_in` as one read: a damaged file is a StoreError."""
        try:
            return _select_in(self.conn, sql, values)
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None

    def _json(self, text, what: str):
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise self._corrupt(f"{what} is not JSON") from None

    def words(self) -> list[str]:
        words = [w for (w,) in self._all('SELECT word FROM vocabulary ORDER BY "column"')]
        if not all(isinstance(w, str) for w in words):  # (NULL or a blob was a traceback where it was counted)
            raise self._corrupt("a vocabulary word is not text")
        if "vocab_size" in self.meta and len(words) != self.meta["vocab_size"]:
            raise self._corrupt(f"{len(words)} vocabulary words, meta says {self.meta['vocab_size']}")
        return words

    def arrays(self, encoders_only: bool = False) -> dict[str, np.ndarray]:
        """Model weights as float32 arrays, shapes checked against their stored shape;
        with ``encoders_only``, only the encoders' (half the bytes: what queries need)."""
        out = {}
        where = " WHERE name LIKE '%.encoder%'" if encoders_only else ""
        for name, dtype, shape, data in self._all("SELECT name, dtype, shape, data FROM weights" + where):
            shape = self._json(shape, f"the shape of weight {name!r}")
            ok = isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
            if not ok or dtype != "float32" or not isinstance(data, bytes) or len(data) != 4 * int(np.prod(shape)):
                raise self._corrupt(f"weight {name!r} is not float32 of shape {shape}")
            out[name] = np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)
        return out

    def codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rowids int64 (n,), addresses int64 (n,), codes uint64 (n, n_words)) in rowid
        order: from ``code_blocks``, or from the documents where it is out of date or
        older than schema 6 (:func:`read_codes`); checked against the metadata."""
        packed = int(self.meta["schema_version"]) >= 6
        blocks = self._all("SELECT rowids, addresses, codes FROM code_blocks ORDER BY block") if packed else []
        try:
            return self._unpack_blocks(blocks) if blocks else read_codes(self.conn, self.meta)
        except (sqlite3.DatabaseError, ValueError) as e:
            raise self._corrupt(str(e)) from None

    def _unpack_blocks(self, blocks: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_words = (int(self.meta["code_bits"]) + 63) // 64
        for block in blocks:
            if not all(isinstance(x, bytes) for x in block) or not (
                len(block[0]) % 8 == 0 and len(block[1]) == len(block[0]) and len(block[2]) == len(block[0]) * n_words
            ):
                raise ValueError("its packed codes (code_blocks) are damaged")

        def column(i: int, dtype: str) -> np.ndarray:  # one copy: writable, native order
            return np.concatenate([np.frombuffer(b[i], dtype) for b in blocks]).astype(dtype[1:], copy=False)

        rowids, addresses, codes = column(0, "<i8"), column(1, "<i8"), column(2, "<u8")
        n = rowids.shape[0]
        if n > 1 and not (rowids[1:] > rowids[:-1]).all():
            raise ValueError("its packed codes (code_blocks) are damaged")
        return rowids, _check_addresses(addresses, n, self.meta), codes.reshape(n, n_words)

    def typical_length(self) -> float:
        """:func:`typical_length` of the documents, as the writers keep it in meta
        (computed here for an index written before they did)."""
        stored = self.meta.get("typical_length")
        if isinstance(stored, (int, float)) and not isinstance(stored, bool) and stored > 0:
            return float(stored)
        try:
            n, lengths = _lengths(self.conn)
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None
        if lengths.shape[0] != n:
            raise self._corrupt("a stored word count is not an integer")
        return typical_length(lengths)

    def ids(self, rowids: Iterable[int]) -> list[str]:
        """Document ids of the given rowids, in the same order."""
        rowids = [int(r) for r in rowids]
        found = dict(self._all_in("SELECT rowid, id FROM documents WHERE rowid IN ({})", rowids))
        return [found[r] for r in rowids]

    def fingerprints(self) -> dict[str, tuple[str, str | None, str]]:
        """{id: (content_hash, path, labels as stored)} of every document: what an update compares against."""
        return {i: (h, p, l) for i, h, p, l in self._all("SELECT id, content_hash, path, labels FROM documents")}

    def rowid_of(self, doc_id: str) -> int | None:
        rows = self._all("SELECT rowid FROM documents WHERE id = ?", (doc_id,))
        return rows[0][0] if rows else None

    def known_words(self, rowid: int) -> int:
        """How many words of the model's vocabulary the document at ``rowid`` holds."""
        rows = self._all("SELECT n_words FROM documents WHERE rowid = ?", (rowid,))
        if rows and not isinstance(rows[0][0], int):  # (int() of a damaged one was a traceback)
            raise self._corrupt("a stored word count is not an integer")
        return rows[0][0] if rows else 0

    def rowids_with_hash(self, content_hash: str) -> list[int]:
        return [r for (r,) in self._all("SELECT rowid FROM documents WHERE content_hash = ?", (content_hash,))]

    def rows(self, rowids: Iterable[int]) -> dict[int, tuple[str, str | None, tuple[str, ...], str, int]]:
        """{rowid: (id, path, labels, title, address)} of the given rowids, in one read per 900."""
        rowids = [int(r) for r in rowids]
        try:
            has_title = "title" in _columns(self.conn, "documents")
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None
        title = "title" if has_title else "''"  # schema 1 has none
        query = f"SELECT rowid, id, path, labels, {title}, address FROM documents WHERE rowid IN ({{}})"
        found = {}
        for rowid, doc_id, path, labels, doc_title, address in self._all_in(query, rowids):
            labels = self._labels(labels)
            if not (isinstance(doc_id, str) and isinstance(path, (str, type(None))) and isinstance(address, int)
                    and isinstance(doc_title, (str, type(None)))):
                raise self._corrupt("a stored document's id, path, title or address is damaged")
            found[rowid] = (doc_id, path, labels, doc_title or "", address)
        return self._every(rowids, found)

    def _labels(self, text) -> tuple[str, ...]:
        labels = self._json(text, "a label list")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise self._corrupt("a label list is damaged")
        return tuple(labels)

    def _every(self, rowids: list[int], found: dict) -> dict:
        """``found``, which must hold every one of ``rowids``: they come from the codes
        (``code_blocks``), which name only documents the index has; a row deleted
        behind the writers' back was a KeyError traceback."""
        if len(found) < len(set(rowids)):
            raise self._corrupt("its codes name a document it does not have")
        return found

    def terms(self, tokens: Iterable[str]) -> dict[str, tuple[int, float]]:
        """{term: (id, idf)} of those ``tokens`` that are terms, in one read per 900."""
        rows = self._all_in("SELECT id, term, idf FROM terms WHERE term IN ({})", list(tokens))
        n_terms = self.meta.get("n_terms") or 0
        # (an id past the end indexed the rankers' arrays: an IndexError traceback)
        if not all(isinstance(term_id, int) and 0 <= term_id < n_terms for term_id, _, _ in rows):
            raise self._corrupt(f"a term's id is not in [0, {n_terms})")
        found = {term: (term_id, _idf(idf)) for term_id, term, idf in rows}
        if not all(np.isfinite(idf) for _, idf in found.values()):
            raise self._corrupt("a term's idf is not a number")
        return found

    def all_terms(self) -> tuple[list[str], np.ndarray]:
        """Every term, in id order, and their idf (float32)."""
        rows = self._all("SELECT id, term, idf FROM terms ORDER BY id")
        # A term's id is its position here: one missing shifted every later term's weight.
        if [i for i, _, _ in rows] != list(range(self.meta.get("n_terms") or 0)):
            raise self._corrupt("its terms are not numbered 0 to n_terms - 1")
        if not all(isinstance(t, str) for _, t, _ in rows):  # (NULL or a blob was a traceback where it was counted)
            raise self._corrupt("a term is not text")
        idf = np.array([_idf(i) for _, _, i in rows], np.float64)
        if not np.isfinite(idf).all():
            raise self._corrupt("a term's idf is not a number")
        return [t for _, t, _ in rows], idf.astype(np.float32)

    def term_vectors(self, rowids: Iterable[int]) -> dict[int, bytes | None]:
        """{rowid: stored TF-IDF vector blob or None} of the given rowids."""
        return dict(self._all_in("SELECT rowid, terms FROM documents WHERE rowid IN ({})", [int(r) for r in rowids]))

    def all_term_blobs(self) -> tuple[int, Iterator[bytes | None]]:
        """The total size in bytes of the stored TF-IDF vectors, and every
        document's vector blob in rowid order, streamed (a million documents'
        vectors are never all held as blobs at once)."""
        (total,) = self._all("SELECT coalesce(sum(length(terms)), 0) FROM documents")[0]

        def blobs() -> Iterator[bytes | None]:
            try:
                cursor = self.conn.execute("SELECT terms FROM documents ORDER BY rowid")
                while chunk := cursor.fetchmany(10_000):
                    yield from (blob for (blob,) in chunk)
            except _DAMAGE as e:
                raise self._corrupt(str(e)) from None

        return total, blobs()

    def postings(self, term_ids: Iterable[int]) -> dict[int, tuple[int, bytes | None]]:
        """{term id: (its number of documents, their rowids ascending as int32
        little-endian bytes, or None for a term held by more than
        ``POSTINGS_MAX_DF``)} of those of ``term_ids`` that some document holds; ``{}``
        for an index whose postings are not written (older than schema 7, or changed
        outside semhash)."""
        if "postings_max_df" not in self.meta:
            return {}
        out = {}
        for term, df, blob in self._all_in("SELECT term, df, rowids FROM postings WHERE term IN ({})", [int(t) for t in term_ids]):
            if not _postings_ok(df, blob, self.meta["postings_max_df"]):
                raise self._corrupt("a term's postings are damaged")
            out[term] = (df, blob)
        return out

    def ranking_rows(self, rowids: Iterable[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """{rowid: (TF-IDF vector blob, neighbour list blob)} of the given rowids (a
        blob is None where there is none, every list before schema 4)."""
        try:
            neighbours = "neighbours" if "neighbours" in _columns(self.conn, "documents") else "NULL"
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None
        query = f"SELECT rowid, terms, {neighbours} FROM documents WHERE rowid IN ({{}})"
        rowids = [int(r) for r in rowids]
        found = {r: (t, n) for r, t, n in self._all_in(query, rowids)}
        # (a number in place of a blob was a traceback where its length was taken)
        if not all(isinstance(t, (bytes, type(None))) for t, _ in found.values()):
            raise self._corrupt("a stored TF-IDF vector is not a blob")
        if not all(isinstance(n, (bytes, type(None))) for _, n in found.values()):
            raise self._corrupt("a stored neighbour list is damaged")
        return self._every(rowids, found)

    def without_neighbours(self) -> list[int]:
        """Rowids of the documents whose neighbour list is not computed yet (schema 4)."""
        return [r for (r,) in self._all("SELECT rowid FROM documents WHERE neighbours IS NULL ORDER BY rowid")]

    def label_counts(self) -> dict[str, int]:
        """{label: number of documents}, most common first (ties by name)."""
        counts: dict[str, int] = {}
        for labels, n in self._all("SELECT labels, count(*) FROM documents GROUP BY labels"):
            for label in self._labels(labels):
                counts[label] = counts.get(label, 0) + n
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def rowids_with_labels(self, labels: Sequence[str]) -> tuple[list[int], set[str]]:
        """Rowids (ascending, each once) of the documents carrying at least one of
        ``labels``, and which of ``labels`` some document carries."""
        pairs = self._all_in(
            "SELECT d.rowid, j.value FROM documents AS d, json_each(d.labels) AS j WHERE j.value IN ({})",
            list(dict.fromkeys(labels)),
        )
        return sorted({r for r, _ in pairs}), {label for _, label in pairs}

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {name: self._json(shape, f"the shape of weight {name!r}") for name, shape in self._all("SELECT name, shape FROM weights")}
        for name, shape in shapes.items():
            if not isinstance(shape, list) or not all(_count(n) for n in shape):
                raise self._corrupt(f"the shape of weight {name!r} is {shape!r:.40}")
        return {name: tuple(shape) for name, shape in shapes.items()}

    def close(self) -> None:
        self.conn.close()
