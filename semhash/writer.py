"""Writing an index: a new one whole (to a temporary file moved into place, or
rebuilt in one transaction), or changes to one in one transaction
(:class:`IndexWriter`); each writer keeps what is derived from the documents (the
typical length, the packed codes, the postings) current.

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

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semhash import store
from semhash.locks import writer_lock
from semhash.migrations import _COMPACT_SCHEMA, _POSTINGS_TRIGGERS, _SCHEMA, _TRIGGERS, BLOCK_DOCUMENTS, migrate
from semhash.store import StoreError


@dataclass
class DocumentRow:
    id: str
    path: str | None
    labels: tuple[str, ...]
    content_hash: str
    counts: str  # its vocabulary words' counts as stored (semhash.vocab.counts_json; "{}" in a compact index)
    title: str
    terms: bytes | None  # semhash.rerank.to_blob of its TF-IDF vector
    n_words: int  # its vocabulary words


def labels_json(labels: Sequence[str]) -> str:
    """Labels as the ``labels`` column stores them (what an update compares with)."""
    return json.dumps(list(labels))


def _document_record(d: DocumentRow, address: int, code: bytes) -> dict:
    return {
        "id": d.id,
        "path": d.path,
        "labels": labels_json(d.labels),
        "content_hash": d.content_hash,
        "n_words": int(d.n_words),
        "address": int(address),
        "code": code,
        "counts": d.counts,
        "title": d.title,
        "terms": d.terms,
        "neighbours": None,  # not computed yet (a changed document's old list is dropped)
    }


def _compact_record(d: DocumentRow) -> dict:
    """A document's row in a compact index (its codes go to ``code_blocks``)."""
    digest = d.content_hash[: store.COMPACT_HASH_DIGITS]
    return {"id": d.id, "path": d.path, "labels": labels_json(d.labels), "content_hash": digest, "n_words": int(d.n_words), "title": d.title}


def _connect_writer(path: str | os.PathLike, wal: bool = True) -> sqlite3.Connection:
    """A connection that issues its own BEGIN/COMMIT and waits for SQLite's write lock."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=store.BUSY_TIMEOUT)
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
        is_sqlite = f.read(len(store.SQLITE_HEADER)) == store.SQLITE_HEADER
    refuse = f"{path} exists and is not a semhash index: choose another -d/--database, or remove it"
    if not is_sqlite:
        raise StoreError(refuse)
    try:
        conn = sqlite3.connect(store.ro_uri(path), uri=True)
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
        store.schema_version(row[0], str(path))
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
    compact: bool = False,
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
    compact : write a compact index (``semhash.migrations._COMPACT_SCHEMA``): the
        documents' counts, terms and idf are not stored
    """
    path = Path(path)
    with writer_lock(path, wait=True):
        tables = (meta, words, df, arrays, documents, addresses, codes, terms, idf, compact)
        if kind_of(path) == "index":
            conn = _connect_writer(path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                for table in store.TABLES:
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


def _fill(conn, meta, words, df, arrays, documents, addresses, codes, terms, idf, compact) -> None:
    """Create the current schema's tables in ``conn`` (inside a transaction) and fill them."""
    for statement in _COMPACT_SCHEMA if compact else _SCHEMA:
        conn.execute(statement)
    store.set_meta(conn, {**meta, "schema_version": store.SCHEMA_VERSION})
    conn.executemany(
        'INSERT INTO vocabulary ("column", word, df) VALUES (?, ?, ?)',
        ((i, w, int(d)) for i, (w, d) in enumerate(zip(words, df))),
    )
    conn.executemany(
        "INSERT INTO weights (name, dtype, shape, data) VALUES (?, ?, ?, ?)",
        ((k, "float32", json.dumps(list(a.shape)), _le_f32(a).tobytes()) for k, a in arrays.items()),
    )
    if compact:
        _insert_compact(conn, documents, addresses, codes)
        return
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


def _store_typical_length(conn: sqlite3.Connection, if_missing: bool = False) -> None:
    """Keep :func:`typical_length` in meta, written with the documents it describes:
    computed per query instead, it cost every query at a million documents 0.4 s."""
    if if_missing and conn.execute("SELECT 1 FROM meta WHERE key = 'typical_length'").fetchone():
        return
    store.set_meta(conn, {"typical_length": store.typical_length(store.document_lengths(conn)[1])})


def _store_code_blocks(conn: sqlite3.Connection, if_missing: bool = False) -> None:
    """Rewrite ``code_blocks`` from the documents in the writer's transaction (none: one empty block; none is stale)."""
    if if_missing and conn.execute("SELECT 1 FROM code_blocks LIMIT 1").fetchone():
        return
    try:  # (a damaged value read as a number: TypeError was a traceback, ValueError _run's one line)
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except TypeError:
        raise ValueError("its metadata is not JSON") from None
    _write_code_blocks(conn, *store.read_codes(conn, meta))


def _write_code_blocks(conn: sqlite3.Connection, rowids: np.ndarray, addresses: np.ndarray, codes: np.ndarray) -> None:
    """Replace ``code_blocks`` with these (rowids ascending, addresses, codes)."""
    conn.execute("DELETE FROM code_blocks")
    conn.executemany(
        "INSERT INTO code_blocks (block, rowids, addresses, codes) VALUES (?, ?, ?, ?)",
        (
            (b, _pack_integers(rowids[s : s + BLOCK_DOCUMENTS]), _pack_integers(addresses[s : s + BLOCK_DOCUMENTS]),
             codes[s : s + BLOCK_DOCUMENTS].astype("<u8").tobytes())
            for b, s in enumerate(range(0, max(len(rowids), 1), BLOCK_DOCUMENTS))
        ),
    )


def _pack_integers(values: np.ndarray) -> bytes:
    """A block's rowids or addresses as 4-byte unsigned integers where all fit (a
    rowid below 2**32, an address of at most 32 bits: 8 bytes a document fewer than
    int64, a tenth of a compact index's bytes per document), else as int64;
    :func:`semhash.store.unpack_blocks` tells which from the length."""
    fits = values.size == 0 or (int(values.min()) >= 0 and int(values.max()) < 2**32)
    return values.astype("<u4" if fits else "<i8").tobytes()


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
            raise ValueError(f"a stored TF-IDF vector names a term the index does not have; {store.REBUILD}")
        rowids = np.repeat(np.fromiter((r for r, _ in chunk), np.int64, len(chunk)), np.diff(starts))
        df = np.bincount(ids, minlength=df.shape[0]) + np.pad(df, (0, max(0, int(ids.max(initial=-1)) + 1 - df.shape[0])))
        rare = df[ids] <= store.POSTINGS_MAX_DF
        kept_terms.append(ids[rare])
        kept_rowids.append(rowids[rare])
        if len(kept_terms) > 16:  # the pairs of terms that have grown common since go
            terms, held = np.concatenate(kept_terms), np.concatenate(kept_rowids)
            rare = df[terms] <= store.POSTINGS_MAX_DF
            kept_terms, kept_rowids = [terms[rare]], [held[rare]]
    terms, held = np.concatenate(kept_terms), np.concatenate(kept_rowids)
    rare = df[terms] <= store.POSTINGS_MAX_DF
    terms, held = terms[rare], held[rare]
    order = np.argsort(terms, kind="stable")  # each term's rowids stay ascending
    terms, held = terms[order], held[order]
    bounds = np.searchsorted(terms, np.arange(df.shape[0] + 1))
    conn.execute("DELETE FROM postings")
    conn.executemany(
        "INSERT INTO postings (term, df, rowids) VALUES (?, ?, ?)",
        (
            (t, int(df[t]), held[bounds[t] : bounds[t + 1]].astype("<i4").tobytes() if df[t] <= store.POSTINGS_MAX_DF else None)
            for t in np.flatnonzero(df).tolist()
        ),
    )
    store.set_meta(conn, {"postings_max_df": store.POSTINGS_MAX_DF})


def _postings_current(conn: sqlite3.Connection) -> bool:
    """Whether ``postings`` hold the documents' terms as they are, kept for terms of
    up to this version's ``POSTINGS_MAX_DF`` documents (another limit: rewritten)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'postings_max_df'").fetchone()
    return row is not None and row[0] == json.dumps(store.POSTINGS_MAX_DF)


def _update_postings(conn: sqlite3.Connection, before: dict[int, bytes | None]) -> bool:
    """Bring ``postings`` from the documents as they were (``before``: {rowid: its
    stored vector blob, or None where there was no document}) to the documents
    those rowids hold now; False, changing nothing, when a term that was too
    common to have its rowids kept has become rare enough to need them."""
    after = dict(store.select_in(conn, "SELECT rowid, terms FROM documents WHERE rowid IN ({})", list(before)))
    removed, added = _holders_of(before), _holders_of(after)
    terms = sorted(set(removed) | set(added))
    stored = {t: (df, blob) for t, df, blob in store.select_in(conn, "SELECT term, df, rowids FROM postings WHERE term IN ({})", terms)}
    rows = []
    for term in terms:
        df, blob = stored.get(term, (0, b""))
        if not isinstance(df, int):  # damaged: the rewrite repairs it
            return False
        gone, new = removed.get(term, set()), added.get(term, set())
        df = df - len(gone) + len(new)
        if df > store.POSTINGS_MAX_DF:
            rows.append((term, df, None))
        elif not isinstance(blob, bytes):  # too common before (or damaged): its holders are not known
            return False
        else:
            held = (set(np.frombuffer(blob, "<i4", len(blob) // 4).tolist()) - gone) | new
            rows.append((term, len(held), np.array(sorted(held), "<i4").tobytes()))
    conn.executemany("DELETE FROM postings WHERE term = ?", ((t,) for t, df, _ in rows if df == 0))
    conn.executemany("INSERT OR REPLACE INTO postings (term, df, rowids) VALUES (?, ?, ?)", (r for r in rows if r[1]))
    store.set_meta(conn, {"postings_max_df": store.POSTINGS_MAX_DF})
    return True


def _holders_of(vectors: dict[int, bytes | None]) -> dict[int, set[int]]:
    """{term id: rowids} of stored vector blobs by rowid."""
    out: dict[int, set[int]] = {}
    for rowid, blob in vectors.items():
        ids = np.frombuffer(blob, "<i4", len(blob) // 8) if isinstance(blob, bytes) else ()
        for term in ids.tolist() if len(ids) else ():
            out.setdefault(term, set()).add(rowid)
    return out


def _insert_documents(conn: sqlite3.Connection, documents, addresses, codes) -> None:
    codes_le = codes.astype("<u8", copy=False)
    columns = ", ".join(store.DOCUMENT_COLUMNS)
    marks = ", ".join(f":{c}" for c in store.DOCUMENT_COLUMNS)
    conn.executemany(
        f"INSERT INTO documents ({columns}) VALUES ({marks})",
        (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses))),
    )


def _insert_compact(conn: sqlite3.Connection, documents, addresses, codes) -> None:
    """A new compact index's documents, then their codes as its only ``code_blocks``
    (and the typical length): each document's rowid is its position plus 1, as a new
    table numbers its rows."""
    columns = ", ".join(store.COMPACT_COLUMNS)
    marks = ", ".join(f":{c}" for c in store.COMPACT_COLUMNS)
    conn.executemany(f"INSERT INTO documents ({columns}) VALUES ({marks})", map(_compact_record, documents))
    rowids = np.array([r for (r,) in conn.execute("SELECT rowid FROM documents ORDER BY rowid")], np.int64)
    if not np.array_equal(rowids, np.arange(1, codes.shape[0] + 1)):
        raise ValueError("the documents and their codes differ in number")
    _write_code_blocks(conn, rowids, np.asarray(addresses, np.int64), codes)
    _store_typical_length(conn)


def _merge_code_blocks(conn: sqlite3.Connection, changed: dict[int, tuple[int, np.ndarray]], gone: set[int]) -> None:
    """A compact index's ``code_blocks`` with the codes of the rowids ``changed``
    (rowid: (address, code)) put in and those of ``gone`` taken out."""
    meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    blocks = conn.execute("SELECT rowids, addresses, codes FROM code_blocks ORDER BY block").fetchall()
    rowids, addresses, codes = store.unpack_blocks(blocks, meta)
    keep = ~np.isin(rowids, np.fromiter(set(changed) | gone, np.int64))
    new = np.fromiter(changed, np.int64, len(changed))
    rowids = np.concatenate([rowids[keep], new])
    addresses = np.concatenate([addresses[keep], np.array([a for a, _ in changed.values()], np.int64)])
    codes = np.concatenate([codes[keep], np.array([c for _, c in changed.values()], np.uint64).reshape(len(new), codes.shape[1])])
    order = np.argsort(rowids, kind="stable")
    _write_code_blocks(conn, rowids[order], addresses[order], codes[order])


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
        self._codes: dict[int, tuple[int, np.ndarray]] = {}  # compact: rowid -> its new (address, code)
        self._gone: set[int] = set()  # compact: rowids deleted
        try:
            migrate(self.conn)
            (compact,) = self.conn.execute("SELECT value FROM meta WHERE key = 'compact'").fetchone() or ("false",)
            self.compact = compact == "true"
            self._postings_current = _postings_current(self.conn)
        except BaseException as e:
            self.conn.close()  # rolls back
            if store.is_read_only(e):  # a read-only file opens and BEGINs; its first write fails
                raise StoreError(f"cannot write to {self.path} ({e}): the index is unchanged") from None
            if isinstance(e, sqlite3.DatabaseError):
                raise StoreError(f"{self.path} is not a semhash index, or is corrupt ({e}): {store.REBUILD}") from None
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
                if not self.compact:
                    self._run(_store_derived, self.conn, not self._documents_changed, before)
                elif self._documents_changed:
                    self._run(_store_typical_length, self.conn)
                    self._run(_merge_code_blocks, self.conn, self._codes, self._gone)
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
        if self.compact:
            return self._run(self._upsert_compact, documents, addresses, codes)
        self._run(self._remember, ids)  # before the change
        codes_le = codes.astype("<u8", copy=False)
        columns = ", ".join(store.DOCUMENT_COLUMNS)
        marks = ", ".join(f":{c}" for c in store.DOCUMENT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in store.DOCUMENT_COLUMNS if c != "id")
        self._run(
            self.conn.executemany,
            f"INSERT INTO documents ({columns}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
            (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses))),
        )
        self._run(self._remember, ids, True)

    def _upsert_compact(self, documents: list[DocumentRow], addresses: np.ndarray, codes: np.ndarray) -> None:
        """:meth:`upsert` into a compact index: the rows now, their codes at the commit."""
        columns = ", ".join(store.COMPACT_COLUMNS)
        marks = ", ".join(f":{c}" for c in store.COMPACT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in store.COMPACT_COLUMNS if c != "id")
        self.conn.executemany(
            f"INSERT INTO documents ({columns}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
            map(_compact_record, documents),
        )
        rowid_of = dict(store.select_in(self.conn, "SELECT id, rowid FROM documents WHERE id IN ({})", [d.id for d in documents]))
        for d, address, code in zip(documents, addresses.tolist(), codes.astype(np.uint64, copy=False)):
            self._codes[rowid_of[d.id]] = (address, code)
            self._gone.discard(rowid_of[d.id])

    def _remember(self, ids: list[str], inserted: bool = False) -> None:
        """Note the terms the documents of these ids had when this writer began (for
        :func:`_update_postings`): before it first changes them, their stored
        terms; after it inserted them, none (a rowid not noted before it was not
        in use: it would have been noted by this writer's change of its document)."""
        query = "SELECT rowid, terms FROM documents WHERE id IN ({})"
        for rowid, terms in store.select_in(self.conn, query, ids):
            self._before.setdefault(rowid, None if inserted else terms)

    def set_neighbours(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Store neighbour lists: (rowid, ``semhash.rerank.neighbours_to_blob``) pairs."""
        self._run(self.conn.executemany, "UPDATE documents SET neighbours = ? WHERE rowid = ?", ((b, r) for r, b in rows))

    def delete(self, ids: Iterable[str]) -> None:
        self._documents_changed = True
        ids = list(ids)
        if self.compact:  # their codes leave code_blocks at the commit
            for (rowid,) in self._run(store.select_in, self.conn, "SELECT rowid FROM documents WHERE id IN ({})", ids):
                self._gone.add(rowid)
                self._codes.pop(rowid, None)
        else:
            self._run(self._remember, ids)
        self._run(self.conn.executemany, "DELETE FROM documents WHERE id = ?", ((i,) for i in ids))

    def set_meta(self, meta: dict) -> None:
        self._run(store.set_meta, self.conn, meta)

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except (sqlite3.DatabaseError, ValueError) as e:  # ValueError: store.read_codes found a bad row
            raise StoreError(f"cannot write to {self.path} ({e}): the index is unchanged") from None
