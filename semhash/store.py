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
  rowid, address and code, packed (``BLOCK_DOCUMENTS`` documents a row; rowids
  and addresses in 4 bytes where they fit, schema 8), which a
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

This module reads an index (:class:`StoredIndex`); :mod:`semhash.writer` writes one
(and says what holds whatever happens to a writer), under :mod:`semhash.locks`, and
:mod:`semhash.migrations` holds the schema a new index gets and the steps to it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from semhash import stored_values

SCHEMA_VERSION = 8  # 2: documents.title; 3: terms, documents.terms; 4: documents.neighbours;
# 5: the address index also holds the code and n_words; 6: code_blocks; 7: postings;
# 8: code_blocks' rowids and addresses in 4 bytes where they fit
OLDEST_SCHEMA = 1  # the oldest schema an update can migrate from
DOCUMENT_COLUMNS = (
    "id", "path", "labels", "content_hash", "n_words", "address", "code", "counts", "title", "terms", "neighbours",
)
#: The documents' columns in a compact index (``meta.compact``; see semhash.migrations).
COMPACT_COLUMNS = ("id", "path", "labels", "content_hash", "n_words", "title")
#: Hex digits of a content hash that a compact index keeps: 64 bits, 17 bytes a
#: document instead of 65 (the most a compact row held beside its title). Two texts
#: of one id would have to agree on them to be taken for the same: a chance of 2**-64.
COMPACT_HASH_DIGITS = 16
TABLES = ("meta", "vocabulary", "weights", "documents", "terms", "code_blocks", "postings")
BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's own write lock
SQLITE_HEADER = b"SQLite format 3\x00"
REBUILD = "rebuild it with `semhash index --retrain PATHS`"
#: What a compact index cannot do, and the remedy (it keeps no words).
NO_WORDS = "keeps no words (built with --compact), and {what} needs them: rebuild it from the files with `semhash index --retrain --no-compact PATHS`"


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


class StoreError(ValueError):
    """The database is missing, not a semhash index, corrupt, or from a newer semhash."""


class IndexLocked(StoreError):
    """Another process is writing this index."""


def schema_version(value, where) -> int:
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


#: No document has more vocabulary words than this: a stored typical length above it is damage.
_MOST_WORDS = 1e9


def typical_length(lengths: np.ndarray) -> float:
    """The length a short query is read as: the median number of vocabulary words
    of the indexed documents (1 for none)."""
    return float(np.median(lengths)) if lengths.size else 1.0


def document_lengths(conn: sqlite3.Connection) -> tuple[int, np.ndarray]:
    """(count, every document's number of vocabulary words), read in one row: one
    tuple per document cost 0.6 s at a million."""
    ((n, lengths),) = conn.execute("SELECT count(*), group_concat(n_words) FROM documents").fetchall()
    return n, stored_values.integers(lengths)


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
    addresses = _check_addresses(stored_values.integers(addresses), n, meta)
    codes = np.frombuffer(blob, dtype="<u8").reshape(n, n_words).astype(np.uint64)
    rowids = stored_values.integers(rowids)
    order = np.argsort(rowids, kind="stable")
    return rowids[order], addresses[order], codes[order]


DAMAGED_BLOCKS = "its packed codes (code_blocks) are damaged"


def unpack_blocks(blocks: list[tuple], meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rowids, addresses, codes) of ``code_blocks`` rows (rowids, addresses, codes),
    checked (``ValueError`` says what is damaged)."""
    n_words = (int(meta["code_bits"]) + 63) // 64
    if not all(isinstance(x, bytes) for block in blocks for x in block) or any(len(b[2]) % (8 * n_words) for b in blocks):
        raise ValueError(DAMAGED_BLOCKS)
    sizes = [len(b[2]) // (8 * n_words) for b in blocks]
    rowids = np.concatenate([_packed_integers(b[0], n) for b, n in zip(blocks, sizes)])
    addresses = np.concatenate([_packed_integers(b[1], n) for b, n in zip(blocks, sizes)])
    codes = np.concatenate([np.frombuffer(b[2], "<u8") for b in blocks]).astype(np.uint64, copy=False)
    n = rowids.shape[0]
    if n > 1 and not (rowids[1:] > rowids[:-1]).all():
        raise ValueError(DAMAGED_BLOCKS)
    return rowids, _check_addresses(addresses, n, meta), codes.reshape(n, n_words)



def _packed_integers(blob: bytes, n: int) -> np.ndarray:
    """The ``n`` integers of a block's rowids or addresses, as int64: 4 bytes each
    (uint32) where the writer found that every value fits (schema 8), else 8 (int64,
    as every block before)."""
    dtype = {8 * n: "<i8", 4 * n: "<u4"}.get(len(blob))  # (n == 0: empty, either way)
    if dtype is None:
        raise ValueError(DAMAGED_BLOCKS)
    return np.frombuffer(blob, dtype).astype(np.int64)


def _check_addresses(addresses: np.ndarray, n: int, meta: dict) -> np.ndarray:
    limit = 2 ** int(meta["address_bits"])
    if addresses.shape[0] != n or (n and (addresses.min() < 0 or addresses.max() >= limit)):
        raise ValueError(f"a stored address is not an integer in [0, {limit})")
    return addresses


def select_in(conn: sqlite3.Connection, sql: str, values: list) -> list[tuple]:
    """The rows of ``sql`` whose ``IN ({})`` takes ``values``, 900 at a time
    (SQLite's limit on bound variables)."""
    out: list[tuple] = []
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        out += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return out


def set_meta(conn: sqlite3.Connection, meta: dict) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        ((k, json.dumps(v)) for k, v in meta.items()),
    )


def is_read_only(e: BaseException) -> bool:
    """Whether SQLite failed for want of write access (the file, its folder, or its
    -shm file), not because the database is damaged."""
    return isinstance(e, sqlite3.OperationalError) and "readonly database" in str(e)


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]  # constant names, not input


def ro_uri(path: str | os.PathLike) -> str:
    """A read-only SQLite URI for ``path``, percent-encoded: names with ``?``, ``#``
    or ``%`` open the right file."""
    return Path(path).absolute().as_uri() + "?mode=ro"


# What reading a damaged file raises: SQLite's errors, and UnicodeDecodeError where
# the sqlite3 module decodes text that is no longer UTF-8 (a flipped bit).
_DAMAGE = (sqlite3.DatabaseError, UnicodeDecodeError)


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
            pairs = self._connect(ro_uri(self.path))
        except _DAMAGE as e:
            # WAL: a reader too needs the -shm and -wal files, and makes them if they are
            # missing. In a folder it may not write, SQLite 3.40 says "unable to open":
            # not damage, which "not a semhash index" had users believe of a healthy index.
            if is_read_only(e) or "unable to open" in str(e):
                pairs = self._read_only_copy(e)
            else:
                raise self._unreadable(e) from None
        try:
            self.meta = {k: json.loads(v) for k, v in pairs}
        except (TypeError, ValueError):
            raise self._corrupt("its metadata is not JSON") from None
        schema_version(json.dumps(self.meta.get("schema_version")), str(self.path))
        self._data_version = None
        self.compact = self.meta.get("compact") is True  # no words: codes rank (see semhash.migrations)
        for key, low, high in (("address_bits", 1, 63), ("code_bits", 1, None)):
            value = self.meta.get(key)
            if not isinstance(value, int) or value < low or (high is not None and value > high):
                raise self._corrupt(f"meta {key} is {value!r}")
        for key, ok in stored_values.META_CHECKS.items():
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
            return self._connect(ro_uri(self.path) + "&immutable=1")
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

    def n_terms(self) -> int:
        """How many terms the index has (0 for an index built before terms): the
        rankers size arrays by it, so a damaged count (2**31) allocated 16 GiB."""
        n = self.meta.get("n_terms") or 0
        if n and self._all("SELECT max(id) FROM terms")[0][0] != n - 1:  # the key's last entry: no scan
            raise self._corrupt("its term count does not match its terms")
        return n

    def need_words(self, what: str) -> None:
        """Raise :class:`StoreError` if this index is compact: ``what`` needs the
        documents' words, which it does not keep."""
        if self.compact:
            raise StoreError(f"{self.path} {NO_WORDS.format(what=what)}")

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
            return select_in(self.conn, sql, values)
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
            return unpack_blocks(blocks, self.meta) if blocks else read_codes(self.conn, self.meta)
        except (sqlite3.DatabaseError, ValueError) as e:
            raise self._corrupt(str(e)) from None

    def typical_length(self) -> float:
        """:func:`typical_length` of the documents, as the writers keep it in meta
        (computed here for an index written before they did)."""
        stored = self.meta.get("typical_length")
        # (a damaged 1e300 lifted short queries' counts to inf: numpy warned, codes were noise)
        if isinstance(stored, (int, float)) and not isinstance(stored, bool) and 0 < stored <= _MOST_WORDS:
            return float(stored)
        try:
            n, lengths = document_lengths(self.conn)
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
        query = "SELECT rowid FROM documents WHERE content_hash = ?"
        return [r for (r,) in self._all(query, (self.stored_hash(content_hash),))]

    def stored_hash(self, content_hash: str) -> str:
        """A content hash as this index stores it (cut to COMPACT_HASH_DIGITS if compact)."""
        return content_hash[:COMPACT_HASH_DIGITS] if self.compact else content_hash

    def rows(self, rowids: Iterable[int]) -> dict[int, tuple[str, str | None, tuple[str, ...], str, int]]:
        """{rowid: (id, path, labels, title, address)} of the given rowids, in one read per 900
        (address None in a compact index: its codes are in ``code_blocks`` alone)."""
        rowids = [int(r) for r in rowids]
        try:
            have = columns(self.conn, "documents")
        except _DAMAGE as e:
            raise self._corrupt(str(e)) from None
        title = "title" if "title" in have else "''"  # schema 1 has none
        address = "NULL" if self.compact else "address"
        query = f"SELECT rowid, id, path, labels, {title}, {address} FROM documents WHERE rowid IN ({{}})"
        found = {}
        for rowid, doc_id, path, labels, doc_title, address in self._all_in(query, rowids):
            labels = self._labels(labels)
            if not (isinstance(doc_id, str) and isinstance(path, (str, type(None)))
                    and isinstance(address, int) != self.compact and isinstance(doc_title, (str, type(None)))):
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
        found = {term: (term_id, stored_values.idf(idf)) for term_id, term, idf in rows}
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
        idf = np.array([stored_values.idf(i) for _, _, i in rows], np.float64)
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
        rows = self._all_in("SELECT term, df, rowids FROM postings WHERE term IN ({})", [int(t) for t in term_ids])
        if not stored_values.postings_ok(rows, self.meta["postings_max_df"]):
            raise self._corrupt("a term's postings are damaged")
        return {term: (df, blob) for term, df, blob in rows}

    def ranking_rows(self, rowids: Iterable[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """{rowid: (TF-IDF vector blob, neighbour list blob)} of the given rowids (a
        blob is None where there is none, every list before schema 4)."""
        try:
            neighbours = "neighbours" if "neighbours" in columns(self.conn, "documents") else "NULL"
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

    def model_bytes(self) -> int:
        """Bytes of the stored model's weights."""
        return int(self._all("SELECT coalesce(sum(length(data)), 0) FROM weights")[0][0])

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {name: self._json(shape, f"the shape of weight {name!r}") for name, shape in self._all("SELECT name, shape FROM weights")}
        for name, shape in shapes.items():
            if not isinstance(shape, list) or not all(stored_values.count(n) for n in shape):
                raise self._corrupt(f"the shape of weight {name!r} is {shape!r:.40}")
        return {name: tuple(shape) for name, shape in shapes.items()}

    def close(self) -> None:
        self.conn.close()
