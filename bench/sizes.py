#!/usr/bin/env python3
"""Bytes per document of semhash index files, by table and index, and of the
documents' columns: what a full and a compact (`semhash index --compact`) index
spend on each document.

Reads SQLite's ``dbstat`` table (each b-tree's pages) and the columns' lengths;
builds nothing, so it takes the indexes to compare, e.g. the same corpus indexed
twice with the same seed::

    python -m semhash index -s -d so.db - < so-database.jsonl
    python -m semhash index -s --compact -d so-compact.db - < so-database.jsonl
    .venv/bin/python bench/sizes.py so.db so-compact.db

Prints one Markdown table: a row per b-tree (the table's rows, each index, the
model's weights, ...) and per documents column (its mean stored length), a
column per index file, in bytes per document.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

#: Columns whose mean stored length is shown (text and blobs: an integer's
#: on-disk size is not its length as text).
COLUMNS = ("id", "path", "labels", "content_hash", "code", "counts", "title", "terms", "neighbours")


def sizes(db: Path) -> tuple[int, dict[str, float]]:
    """(documents, {row name: bytes per document}) of one index file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (n,) = conn.execute("SELECT count(*) FROM documents").fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        rows = {"file (total)": db.stat().st_size / n}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"):
            rows[f"b-tree {name}"] = size / n
        have = {r[1] for r in conn.execute("PRAGMA table_info(documents)")}
        for column in COLUMNS:
            if column in have:
                (mean,) = conn.execute(f"SELECT avg(coalesce(length({column}), 0)) FROM documents").fetchone()
                rows[f"documents.{column} (mean length)"] = mean
        rows["compact"] = json.loads(meta.get("compact", "false"))
        return n, rows
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", type=Path)
    args = parser.parse_args()
    tables = {}
    for db in args.databases:
        try:
            tables[db] = sizes(db)
        except sqlite3.Error as e:
            sys.exit(f"error: {db}: {e} (dbstat needs an SQLite built with SQLITE_ENABLE_DBSTAT_VTAB)")
    names = list(dict.fromkeys(name for _, rows in tables.values() for name in rows if name != "compact"))
    head = [f"{db.name} ({n:,} docs{', compact' if rows['compact'] else ''})" for db, (n, rows) in tables.items()]
    print("| bytes per document | " + " | ".join(head) + " |")
    print("| --- |" + " ---: |" * len(head))
    for name in names:
        cells = [f"{rows[name]:,.1f}" if name in rows else "" for _, rows in tables.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
