"""The index file: one SQLite database with readable tables.

Tables (open it in ``sqlite-utils`` or Datasette):

- ``documents``: id, path, labels (JSON list), content_hash, n_words, address (the
  28-bit code as an indexed INTEGER), code (the long code as a little-endian BLOB),
  counts (the document's vocabulary word counts as a JSON object), title (its first
  non-empty line; schema 2);
- ``vocabulary``: column, word, df;
- ``weights``: name, dtype, shape (JSON), data (raw little-endian float32 bytes, never
  pickle);
- ``meta``: key, value (JSON): schema version, parameters, creation time, ...

Writing uses sqlite-utils. Reading uses the standard library's sqlite3 because
importing sqlite-utils costs half a second, which a query should not pay.

A new index is written to a temporary file beside the target and moved over it
with ``os.replace`` only once complete, so an existing index is never damaged. An
incremental update (:class:`IndexWriter`) is one SQLite transaction: interrupted, it
leaves the previous index as it was.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 2  # 2: documents.title
DOCUMENT_COLUMNS = ("id", "path", "labels", "content_hash", "n_words", "address", "code", "counts", "title")


class StoreError(ValueError):
    """The database is missing, not a semhash index, or unreadable."""


@dataclass
class DocumentRow:
    id: str
    path: str | None
    labels: tuple[str, ...]
    content_hash: str
    counts: dict[str, int]
    title: str = ""


def _document_record(d: DocumentRow, address: int, code: bytes) -> dict:
    return {
        "id": d.id,
        "path": d.path,
        "labels": json.dumps(list(d.labels)),
        "content_hash": d.content_hash,
        "n_words": int(sum(d.counts.values())),
        "address": int(address),
        "code": code,
        "counts": json.dumps(d.counts),
        "title": d.title,
    }


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
) -> None:
    """Write a complete index to ``path``, atomically replacing any existing file.

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
    """
    import sqlite_utils

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; an index is an ordinary file
    try:
        db = sqlite_utils.Database(tmp)
        db["meta"].insert_all(
            ({"key": k, "value": json.dumps(v)} for k, v in {**meta, "schema_version": SCHEMA_VERSION}.items()),
            pk="key",
        )
        db["vocabulary"].insert_all(
            ({"column": i, "word": w, "df": int(d)} for i, (w, d) in enumerate(zip(words, df))), pk="column"
        )
        db["weights"].insert_all(
            (
                {"name": k, "dtype": "float32", "shape": json.dumps(list(a.shape)), "data": _le_f32(a).tobytes()}
                for k, a in arrays.items()
            ),
            pk="name",
        )
        codes_le = codes.astype("<u8", copy=False)
        rows = (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses)))
        db["documents"].insert_all(
            rows,
            pk="id",
            batch_size=1000,
            columns={
                "id": str, "path": str, "labels": str, "content_hash": str, "n_words": int,
                "address": int, "code": bytes, "counts": str, "title": str,
            },
        )
        db["documents"].create_index(["address"])
        db["documents"].create_index(["content_hash"])
        db.conn.commit()
        db.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _le_f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype="<f4")


class IndexWriter:
    """Change an existing index in one transaction: all the changes, or none.

    Use it as a context manager; leaving the block normally commits, an exception
    (or Ctrl-C) rolls back, so an interrupted update leaves the previous index as it
    was. An index of schema 1 gains its ``title`` column on the way.

    Examples
    --------
    >>> with IndexWriter("semhash.db") as w:        # doctest: +SKIP
    ...     w.delete(["old/doc.txt"])
    ...     w.set_meta({"n_documents": 59})
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)  # we issue BEGIN/COMMIT
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot write to {self.path} ({e})") from None
        if "title" not in _columns(self.conn, "documents"):
            self.conn.execute("ALTER TABLE documents ADD COLUMN title TEXT")
        self.set_meta({"schema_version": SCHEMA_VERSION})

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.conn.close()

    def upsert(self, documents: Iterable[DocumentRow], addresses: np.ndarray, codes: np.ndarray) -> None:
        """Insert documents, or replace those whose id is already stored (keeping their rowid)."""
        codes_le = codes.astype("<u8", copy=False)
        columns = ", ".join(DOCUMENT_COLUMNS)
        marks = ", ".join(f":{c}" for c in DOCUMENT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in DOCUMENT_COLUMNS if c != "id")
        self.conn.executemany(
            f"INSERT INTO documents ({columns}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
            (_document_record(d, a, codes_le[i].tobytes()) for i, (d, a) in enumerate(zip(documents, addresses))),
        )

    def delete(self, ids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM documents WHERE id = ?", ((i,) for i in ids))

    def set_meta(self, meta: dict) -> None:
        self.conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            ((k, json.dumps(v)) for k, v in meta.items()),
        )


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


class StoredIndex:
    """Read-only view of an index file, loaded lazily.

    Parameters
    ----------
    path : path of the SQLite file
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no index at {self.path}: run `semhash index PATH` first, or pass -d/--database")
        try:
            # Read-only URI: a query never creates or modifies the file.
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            self.meta = {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a semhash index ({e})") from None
        version = self.meta.get("schema_version")
        if version is None:
            raise StoreError(f"{self.path} is not a semhash index (no schema_version in meta)")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was made by a newer semhash (schema {version} > {SCHEMA_VERSION}): upgrade semhash"
            )

    def words(self) -> list[str]:
        return [w for (w,) in self.conn.execute('SELECT word FROM vocabulary ORDER BY "column"')]

    def arrays(self) -> dict[str, np.ndarray]:
        """Model weights as float32 arrays, shapes checked against their stored shape."""
        out = {}
        for name, dtype, shape, data in self.conn.execute("SELECT name, dtype, shape, data FROM weights"):
            shape = tuple(json.loads(shape))
            if dtype != "float32" or len(data) != 4 * int(np.prod(shape)):
                raise StoreError(f"{self.path}: weight {name!r} is corrupt (expected float32 of shape {shape})")
            out[name] = np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)
        return out

    def codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rowids int64 (n,), addresses int64 (n,), codes uint64 (n, n_words)) in one read."""
        n_words = (int(self.meta["code_bits"]) + 63) // 64
        rows = self.conn.execute("SELECT rowid, address, code FROM documents ORDER BY rowid").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_words), np.uint64)
        rowids, addresses, blobs = zip(*rows)
        blob = b"".join(blobs)
        if len(blob) != 8 * n_words * len(rows):
            raise StoreError(f"{self.path}: stored codes are corrupt (wrong length): rebuild the index")
        codes = np.frombuffer(blob, dtype="<u8").reshape(len(rows), n_words).astype(np.uint64)
        return np.asarray(rowids, np.int64), np.asarray(addresses, np.int64), codes

    def ids(self, rowids: Iterable[int]) -> list[str]:
        """Document ids of the given rowids, in the same order."""
        rowids = [int(r) for r in rowids]
        found: dict[int, str] = {}
        for start in range(0, len(rowids), 900):  # stay under SQLite's variable limit
            chunk = rowids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(self.conn.execute(f"SELECT rowid, id FROM documents WHERE rowid IN ({marks})", chunk))
        return [found[r] for r in rowids]

    def fingerprints(self) -> dict[str, tuple[str, str | None]]:
        """{id: (content_hash, path)} of every document: what an update compares against."""
        return {i: (h, p) for i, h, p in self.conn.execute("SELECT id, content_hash, path FROM documents")}

    def rowid_of(self, doc_id: str) -> int | None:
        row = self.conn.execute("SELECT rowid FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else row[0]

    def rowids_with_hash(self, content_hash: str) -> list[int]:
        return [r for (r,) in self.conn.execute("SELECT rowid FROM documents WHERE content_hash = ?", (content_hash,))]

    def rows(self, rowids: Iterable[int]) -> dict[int, tuple[str, str | None, tuple[str, ...], str, int]]:
        """{rowid: (id, path, labels, title, address)} of the given rowids, in one read per 900."""
        rowids = [int(r) for r in rowids]
        title = "title" if "title" in _columns(self.conn, "documents") else "''"  # schema 1 has none
        found = {}
        for start in range(0, len(rowids), 900):  # stay under SQLite's variable limit
            chunk = rowids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT rowid, id, path, labels, {title}, address FROM documents WHERE rowid IN ({marks})"
            for rowid, doc_id, path, labels, doc_title, address in self.conn.execute(query, chunk):
                found[rowid] = (doc_id, path, tuple(json.loads(labels)), doc_title or "", address)
        return found

    def label_counts(self) -> dict[str, int]:
        """{label: number of documents}, most common first (ties by name)."""
        counts: dict[str, int] = {}
        for labels, n in self.conn.execute("SELECT labels, count(*) FROM documents GROUP BY labels"):
            for label in json.loads(labels):
                counts[label] = counts.get(label, 0) + n
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(json.loads(shape)) for name, shape in self.conn.execute("SELECT name, shape FROM weights")}

    def close(self) -> None:
        self.conn.close()
