#!/usr/bin/env python3
"""Retrieval quality over every labelled corpus, beside BM25 and BM25+PRF: one table.

Rows (relevant = the query's label; missing hits count as wrong):

- **20ng**: 20 Newsgroups bydate, database = train (11,314 posts, indexed as a
  folder), queries = the test posts (7,532), precision@100;
- **20NG Subject lines** (with 20ng): each test post's Subject line, leading
  "Re:"s removed, against the same index, precision@10, as typed queries;
- **so**, **bio**: short-text/StackOverflow and short-text/Biomedical, split as
  that folder's README.txt says (queries = lines i with i % 10 == 0, database = the
  other 18,000; files split on "\\n" only), indexed through ``semhash index -`` from
  JSON lines, precision@100.

Columns, all from the same run on the same documents:

- ``semhash query`` (default path) and ``--codes-only``: one
  ``semhash query - -n K --nl`` batch each (whole documents as ``--jsonl``, encoded as
  indexing encodes documents; Subject lines as plain lines, as ``semhash query
  TEXT`` reads them);
- the address alone: ``semhash eval``'s Hamming ranking of the whole database by the
  address code (ties by database order), rescaled to every query (eval averages
  over the queries with a vocabulary word; the others have no hit);
- BM25 as Lucene (idf = ln(1 + (N - df + 0.5)/(df + 0.5)), k1 = 1.2, b = 0.75, tf
  saturation tf / (tf + k1 (1 - b + b dl/avgdl)), the Lucene 8+ form without the
  constant factor k1 + 1) over the terms semhash counts in the text it reads
  (``semhash.tokenize.content_words``: English stop words out, Snowball stems, as
  Lucene's English analyzer stems; ``--bm25-as-written`` for the words as
  written), the whole query as its term counts, every document ranked (ties, such as the documents sharing no
  word with the query, by database order);
- BM25+PRF (RM3-style): the 10 best BM25 documents (those sharing a word with the
  query), the 40 terms of highest summed weight over them (a document's weights:
  its term counts over its length, RM3's document model), normalized to sum 1 and
  mixed 1:1 with the query's normalized term counts, ranked by BM25 again.

Usage (from the project root)::

    make bench-corpora
    .venv/bin/python bench/corpora.py --corpora so,bio --index-args "--epochs-finetune 50" --json /tmp/c.json
    .venv/bin/python bench/corpora.py --keep bench/.data/corpora     # build once, reuse after
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import disp, machine_info, prepare_corpus, read_split, topk_stable  # noqa: E402
from sections import git_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT.parent / "shared" / "corpora-src"
CORPORA = {"20ng": "20NG (bydate)", "so": "StackOverflow", "bio": "Biomedical"}
SHORT_TEXT = {"so": "StackOverflow", "bio": "Biomedical"}
K, K_SUBJECT = 100, 10
K1, B = 1.2, 0.75
PRF_DOCS, PRF_TERMS, PRF_MIX = 10, 40, 0.5
CHUNK = 512  # queries scored at once: a dense (CHUNK, n_database) block
COLUMNS = {
    "default": "semhash query",
    "codes_only": "`--codes-only`",
    "address": "address alone",
    "bm25": "BM25",
    "bm25_prf": "BM25+PRF",
}
SEMHASH_COLUMNS = ("default", "codes_only", "address")
RE_PREFIX = re.compile(r"^(?:\s*re\s*:)+\s*", re.IGNORECASE)


def log(msg: str) -> None:
    print(f"[corpora] {msg}", file=sys.stderr, flush=True)


@dataclass
class Texts:
    """Documents or queries: ids, raw texts (as semhash is given them) and one label each."""

    ids: list[str]
    texts: list[str]
    labels: list[str]


@dataclass
class Row:
    """One row of the table: queries against a database, scored at ``k``."""

    name: str
    queries: Texts
    k: int
    typed: bool = False  # plain query lines (as typed, lifted), not documents


@dataclass
class Corpus:
    """One index and the rows that query it."""

    key: str
    database: Texts
    rows: list[Row]
    folder: Path | None = None  # indexed as this folder; None: as JSON lines on stdin


# -- corpora -----------------------------------------------------------------------


def subject_line(text: str) -> str:
    """A post's Subject line without its leading "Re:"s, as a user might type it."""
    from semhash.tokenize import subject

    return RE_PREFIX.sub("", (subject(text) or "").strip())


def folder_corpus(key: str, train: Path, test: Path, k: int = K, k_subject: int = K_SUBJECT) -> Corpus:
    """A corpus laid out as folders of labelled posts (20 Newsgroups, the sample): the
    test posts as queries, and their Subject lines."""
    database, queries = Texts(*read_split(train)), Texts(*read_split(test))
    lines = Texts(queries.ids, [subject_line(t) for t in queries.texts], queries.labels)
    name = CORPORA.get(key, key)
    rows = [Row(name, queries, k), Row(f"{name} Subject lines", lines, k_subject, typed=True)]
    return Corpus(key, database, rows, folder=train)


def split_lines(path: Path) -> list[str]:
    """The lines of a file split on "\\n" only (str.splitlines would also split on
    other characters that a few StackOverflow titles hold)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def short_text_corpus(key: str, folder: Path) -> Corpus:
    """short-text/NAME.txt and NAME_gnd.txt, split as its README.txt says: queries are
    the lines i with i % 10 == 0, the database the others."""
    name = SHORT_TEXT[key]
    texts, labels = split_lines(folder / f"{name}.txt"), split_lines(folder / f"{name}_gnd.txt")
    if len(texts) != len(labels):
        sys.exit(f"error: {folder / name}.txt has {len(texts)} lines but its _gnd.txt {len(labels)}")
    ids = [str(i) for i in range(len(texts))]
    part = [[i for i in range(len(texts)) if (i % 10 == 0) == q] for q in (False, True)]
    database, queries = (Texts([ids[i] for i in p], [texts[i] for i in p], [labels[i] for i in p]) for p in part)
    return Corpus(key, database, [Row(CORPORA[key], queries, K)])


# -- metric ------------------------------------------------------------------------


def precision_at(top: np.ndarray, db_labels: np.ndarray, q_labels: np.ndarray, k: int) -> float:
    """Mean over queries of the share of the top ``k`` sharing the query's label; ``top``
    holds database rows best first, -1 for a missing hit (counted as wrong)."""
    top = top[:, :k]
    good = (db_labels[np.maximum(top, 0)] == q_labels[:, None]) & (top >= 0)
    return float(good.sum() / (k * len(top)))


def no_hits(top: np.ndarray) -> int:
    """Queries without a single hit."""
    return int((top[:, 0] < 0).sum()) if top.shape[1] else len(top)


# -- BM25 --------------------------------------------------------------------------


def bm25_weights(counts: sp.csr_matrix, k1: float = K1, b: float = B) -> sp.csr_matrix:
    """Each document's BM25 weight per term (Lucene's idf and length norm), CSR."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    length = np.asarray(counts.sum(axis=1)).ravel()
    norm = np.repeat(k1 * (1 - b + b * length / max(length.mean(), 1e-12)), np.diff(counts.indptr))
    tf = counts.data
    return sp.csr_matrix((idf[counts.indices] * tf / (tf + norm), counts.indices, counts.indptr), shape=counts.shape)


def matching(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best rows per query that score above zero (share a term with it),
    ties by database order; -1 past the last."""
    top = topk_stable(scores, k)
    top[np.take_along_axis(scores, top, axis=1) <= 0] = -1
    return top


def unit_sum(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum 1 (empty rows stay empty)."""
    sums = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ m).tocsr()


def expansion(feedback: np.ndarray, weights_unit: sp.csr_matrix, n_terms: int) -> sp.csr_matrix:
    """RM3's expansion per query: the ``n_terms`` terms of highest summed weight
    (rows of ``weights_unit``, each summing to 1) over its feedback documents (rows
    of ``feedback``, -1 = none), ties by term index, their weights scaled to sum 1."""
    m, n_db = feedback.shape[0], weights_unit.shape[0]
    rows, cols = np.nonzero(feedback >= 0)
    pick = sp.csr_matrix((np.ones(len(rows)), (rows, feedback[rows, cols])), shape=(m, n_db))
    summed = (pick @ weights_unit).tocsr()
    summed.sort_indices()
    indptr, indices, data = [0], [np.empty(0, np.int64)], [np.empty(0)]
    for i in range(m):
        lo, hi = summed.indptr[i], summed.indptr[i + 1]
        best = np.argsort(-summed.data[lo:hi], kind="stable")[:n_terms]
        indices.append(summed.indices[lo:hi][best])
        data.append(summed.data[lo:hi][best])
        indptr.append(indptr[-1] + len(best))
    top = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=summed.shape)
    return unit_sum(top)


def bm25_rank(counts: sp.csr_matrix, queries: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """BM25 and BM25+PRF rankings of the documents' term ``counts`` for the query term
    counts ``queries``: {"bm25": top, "bm25_prf": top}, (n_queries, k) database rows."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    weights_t, lengths_unit = bm25_weights(counts).T.tocsr(), unit_sum(counts)
    out: dict[str, list] = {"bm25": [], "bm25_prf": []}
    for lo in range(0, queries.shape[0], CHUNK):
        q = sp.csr_matrix(queries[lo : lo + CHUNK], dtype=np.float64)
        scores = (q @ weights_t).toarray()
        out["bm25"].append(topk_stable(scores, k))
        feedback = matching(scores, PRF_DOCS)
        mixed = (1 - PRF_MIX) * unit_sum(q) + PRF_MIX * expansion(feedback, lengths_unit, PRF_TERMS)
        out["bm25_prf"].append(topk_stable((mixed @ weights_t).toarray(), k))
    return {name: np.concatenate(tops) if tops else np.empty((0, k), np.int64) for name, tops in out.items()}


def bm25_tops(db_texts: list[str], q_texts: list[str], k: int, stem: bool = True) -> dict[str, np.ndarray]:
    """:func:`bm25_rank` over the terms semhash counts in the text it reads."""
    from sklearn.feature_extraction.text import CountVectorizer

    from semhash.tokenize import content, content_words

    vec = CountVectorizer(analyzer=lambda text: content_words(content(text), stem=stem))
    counts = vec.fit_transform(db_texts)
    return bm25_rank(counts, vec.transform(q_texts), k)


# -- semhash -----------------------------------------------------------------------


def semhash_cmd(*args: str) -> list[str]:
    """``python -m semhash ...``, run from the project root: this checkout's semhash."""
    return [disp(sys.executable), "-m", "semhash", *args]


def shown(cmd: list[str], stdin: Path | None = None, stdout: Path | None = None) -> str:
    return shlex.join(cmd) + (f" < {disp(stdin)}" if stdin else "") + (f" > {disp(stdout)}" if stdout else "")


def run(cmd: list[str], stdin: Path | None, stdout: Path, ok=(0,)) -> float:
    """Run a semhash command from the project root; its wall seconds."""
    log("$ " + shown(cmd, stdin, stdout))
    with open(stdin or os.devnull, "rb") as fin, open(stdout, "wb") as fout:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stdin=fin, stdout=fout, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode not in ok:
        sys.exit(f"error: `{shlex.join(cmd[1:])}` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall


def write_jsonl(path: Path, texts: Texts) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, t, lab in zip(texts.ids, texts.texts, texts.labels):
            f.write(json.dumps({"id": i, "text": t, "labels": [lab]}) + "\n")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def build_index(corpus: Corpus, work: Path, index_args: list[str], reuse: bool) -> dict:
    """Index the corpus's database, or with ``reuse`` take the index in ``work`` that
    the same command built; {db, command, seconds, built_at, reused}."""
    db = work / f"{corpus.key}.db"
    source = None
    if corpus.folder is None:
        source = work / f"{corpus.key}-database.jsonl"
        write_jsonl(source, corpus.database)
    cmd = semhash_cmd("index", "-s", "-d", disp(db), disp(corpus.folder) if corpus.folder else "-", *index_args)
    command, record = shown(cmd, source), work / f"{corpus.key}.index.json"
    if reuse and db.is_file() and record.is_file():
        kept = json.loads(record.read_text())
        if kept.get("command") == command:
            log(f"{corpus.key}: reusing {disp(db)} (built {kept['built_at']})")
            return {**kept, "db": db, "reused": True}
        log(f"{corpus.key}: {disp(db)} was built by another command; building it again")
    # A fresh build: on an existing file `semhash index` would update it with its old model.
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), record):
        stale.unlink(missing_ok=True)
    seconds = run(cmd, source, Path(os.devnull))
    built = {"command": command, "seconds": seconds, "built_at": f"{now()}, git {git_state(ROOT)['git_commit']}"}
    record.write_text(json.dumps(built) + "\n")
    return {**built, "db": db, "reused": False}


def stored(db: Path) -> tuple[list[str], dict]:
    """The index's document ids in database order, and its meta table."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = [i for (i,) in conn.execute("SELECT id FROM documents ORDER BY rowid")]
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    finally:
        conn.close()
    return ids, meta


def write_queries(path: Path, row: Row) -> None:
    """The row's queries as ``semhash query -`` reads them: JSON documents, or plain
    lines (named by line number) for typed queries."""
    if not row.typed:
        return write_jsonl(path, row.queries)
    with open(path, "w", encoding="utf-8", errors="replace", newline="\n") as f:
        f.writelines(" ".join(t.split()) + "\n" for t in row.queries.texts)


def hits_top(path: Path, row: Row, position: dict[str, int]) -> np.ndarray:
    """(n_queries, k) database rows of ``semhash query --nl`` output, -1 = no hit."""
    names = [str(n) for n in range(1, len(row.queries.ids) + 1)] if row.typed else row.queries.ids
    at = {name: i for i, name in enumerate(names)}
    top = np.full((len(names), row.k), -1, np.int64)
    with open(path, encoding="utf-8") as f:
        for line in f:
            hit = json.loads(line)
            top[at[str(hit["query"])], hit["rank"] - 1] = position[hit["id"]]
    return top


def eval_columns(ev: dict) -> dict:
    """From ``semhash eval --json``: the address alone as (precision, no-hit count), and
    eval's own default-path and codes-only figures (to cross-check the query batches),
    all over every query: eval averages over those with a vocabulary word, the others
    have no hit (but on the default path, which answers them by their words: eval's
    "all N queries" row then)."""
    methods = {m["name"]: m["precision"] for m in ev["methods"]}
    asked = ev["n_queries"] - ev["n_skipped"]

    def every(name_part: str) -> float:
        return next(p for name, p in methods.items() if name_part in name) * asked / ev["n_queries"]

    everyone = [p for name, p in methods.items() if name.startswith("semhash query, all ")]
    by_terms = [p for name, p in methods.items() if name.startswith("semhash query --codes-only, all ")]
    return {
        "address": (every("-bit address alone"), ev["n_skipped"]),
        "eval_default": everyone[0] if everyone else every("semhash query ("),
        "eval_codes_only": by_terms[0] if by_terms else every("codes only"),
    }


def semhash_columns(corpus: Corpus, row: Row, db: Path, work: Path, position: dict[str, int]) -> tuple[dict, list[str]]:
    """The row's semhash columns ({column: top (n, k) or (precision, no-hit count)} and
    eval's cross-check figures), and the commands run."""
    slug = f"{corpus.key}-{'subjects' if row.typed else 'queries'}"
    queries = work / f"{slug}.{'txt' if row.typed else 'jsonl'}"
    write_queries(queries, row)
    out, commands = {}, []
    for column, extra in (("default", []), ("codes_only", ["--codes-only"])):
        hits = work / f"{slug}-{column}.jsonl"
        cmd = semhash_cmd("query", "-", *([] if row.typed else ["--jsonl"]), "--nl", "-n", str(row.k), "-s", "-d", disp(db), *extra)
        run(cmd, queries, hits, ok=(0, 1))  # 1: no hit at all, scored as such
        out[column] = hits_top(hits, row, position)
        commands.append(shown(cmd, queries, hits))
    labelled, report = work / f"{slug}-labelled.jsonl", work / f"{slug}-eval.json"
    write_jsonl(labelled, row.queries)
    cmd = semhash_cmd("eval", "-d", disp(db), "-k", str(row.k), "--no-baselines", "--json", *(["--lift"] if row.typed else []), "-")
    run(cmd, labelled, report)
    commands.append(shown(cmd, labelled, report))
    out.update(eval_columns(json.loads(report.read_text())))
    return out, commands


def measure(corpus: Corpus, work: Path, index_args: list[str], reuse: bool = False, bm25_stem: bool = True) -> dict:
    """Index the corpus and score every column of its rows."""
    index = build_index(corpus, work, index_args, reuse)
    ids, meta = stored(index["db"])
    if ids != corpus.database.ids:
        sys.exit(f"error: {disp(index['db'])} holds {len(ids):,} documents that are not the {len(corpus.database.ids):,} "
                 f"of {corpus.key} in the same order; build it again (another --keep folder)")
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    db_labels = np.asarray(corpus.database.labels)
    rows, commands = [], [index["command"]]
    for row in corpus.rows:
        log(f"{row.name}: {len(row.queries.ids):,} queries")
        got, cmds = semhash_columns(corpus, row, index["db"], work, position)
        commands += cmds
        t0 = time.perf_counter()
        got.update(bm25_tops(corpus.database.texts, row.queries.texts, row.k, bm25_stem))
        log(f"{row.name}: BM25 and BM25+PRF {time.perf_counter() - t0:.1f} s")
        q_labels = np.asarray(row.queries.labels)
        cells = {}
        for column in COLUMNS:
            value = got[column]
            if isinstance(value, tuple):  # from eval: (precision, no-hit count)
                cells[column] = {"precision": value[0], "no_hit": value[1]}
            else:
                cells[column] = {"precision": precision_at(value, db_labels, q_labels, row.k), "no_hit": no_hits(value)}
        for column in ("default", "codes_only"):
            if abs(cells[column]["precision"] - got[f"eval_{column}"]) > 1e-9:
                log(f"warning: {row.name}: {column} {cells[column]['precision']:.6f} from the query batch but "
                    f"{got[f'eval_{column}']:.6f} from semhash eval")
        rows.append({
            "name": row.name, "k": row.k, "queries": len(row.queries.ids), "database": len(ids), "columns": cells,
            "eval": {column: got[f"eval_{column}"] for column in ("default", "codes_only")},
        })
    return {
        "corpus": corpus.key,
        "rows": rows,
        "commands": commands,
        "index_seconds": index["seconds"],
        "index_reused": index["reused"],
        "index_built_at": index["built_at"],
        "address_bits": meta.get("address_bits"),
        "code_bits": meta.get("code_bits"),
    }


# -- report ------------------------------------------------------------------------


def table(results: list[dict]) -> list[str]:
    """The markdown table: one line per row, precision@k per column."""
    lines = [
        "| corpus | database | queries | metric | " + " | ".join(COLUMNS.values()) + " |",
        "|---|---:|---:|---|" + "---:|" * len(COLUMNS),
    ]
    for result in results:
        for row in result["rows"]:
            cells = " | ".join(f"{row['columns'][c]['precision']:.4f}" for c in COLUMNS)
            lines.append(f"| {row['name']} | {row['database']:,} | {row['queries']:,} | P@{row['k']} | {cells} |")
    return lines


def report(results: list[dict], info: dict) -> str:
    """The table, then per corpus its index time and queries without hits, then
    when, where and how it was measured."""
    m = info["machine"]
    git = info["git"]["git_commit"] or "unknown"
    if info["git"]["git_dirty"]:
        git += " (uncommitted changes)"
    lines = table(results) + [""]
    for result in results:
        widths = f"{result['address_bits']}-bit address, {result['code_bits']}-bit code"
        built = f"reused, built {result['index_built_at']}" if result["index_reused"] else "built in this run"
        lines.append(f"- {CORPORA.get(result['corpus'], result['corpus'])}: index {result['index_seconds']:.1f} s ({built}; {widths}).")
        for row in result["rows"]:
            counts = ", ".join(f"{COLUMNS[c]} {row['columns'][c]['no_hit']:,}" for c in SEMHASH_COLUMNS)
            lines.append(f"  - {row['name']}: queries without any hit: {counts} (of {row['queries']:,}).")
    lines += [
        "",
        f"Written by `bench/corpora.py` on {info['date']}, one run; git {git}; {m['cpu']}, nproc {m['nproc']}. "
        "Precision@k: missing hits count as wrong; ties by database order. BM25 over the terms semhash counts "
        f"in the text it reads (20NG: Subject + body; {info.get('bm25_terms', 'Snowball stems, stop words out')}).",
        "",
        "Commands run (from the project root):",
        "",
        "```",
        info["invocation"],
        *[c for result in results for c in result["commands"]],
        "```",
    ]
    return "\n".join(lines) + "\n"


def load(key: str, args, work: Path) -> Corpus:
    if key == "20ng":
        data, note = prepare_corpus(args.twenty_ng, work)
        log(f"20ng: {note}")
        return folder_corpus(key, data / "20news-bydate-train", data / "20news-bydate-test")
    if not (args.short_text / f"{SHORT_TEXT[key]}.txt").is_file():
        sys.exit(f"error: no {SHORT_TEXT[key]}.txt in {args.short_text}: pass --short-text DIR")
    return short_text_corpus(key, args.short_text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default="20ng,so,bio", help="comma-separated subset of 20ng,so,bio (default: %(default)s)")
    ap.add_argument("--index-args", default="", help='extra arguments for every `semhash index`, e.g. "--epochs-finetune 50"')
    ap.add_argument("--keep", type=Path, help="build the indexes in DIR and keep them; reuse those the same command built")
    ap.add_argument("--bm25-as-written", action="store_true", help="BM25 over the words as written, not their stems")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--out", type=Path, help="also write the markdown table and its notes to this file")
    ap.add_argument("--20ng", dest="twenty_ng", type=Path, default=SOURCES / "20news-bydate" / "20news-bydate.tar.gz",
                    help="20news-bydate.tar.gz or its unpacked folder (default: %(default)s)")
    ap.add_argument("--short-text", type=Path, default=SOURCES / "short-text",
                    help="folder of StackOverflow.txt, Biomedical.txt and their _gnd.txt (default: %(default)s)")
    args = ap.parse_args(argv)
    keys = list(dict.fromkeys(k.strip() for k in args.corpora.split(",") if k.strip()))
    if not keys or set(keys) - set(CORPORA):
        ap.error(f"--corpora takes some of {','.join(CORPORA)}, got {args.corpora!r}")
    index_args = shlex.split(args.index_args)
    args.twenty_ng, args.short_text = args.twenty_ng.resolve(), args.short_text.resolve()
    info = {"date": now(), "machine": machine_info(), "bm25_terms": "words as written" if args.bm25_as_written else "Snowball stems, stop words out"}

    with tempfile.TemporaryDirectory(prefix="semhash-corpora-") as tmp:
        work = (args.keep or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        results = [measure(load(key, args, work), work, index_args, args.keep is not None, not args.bm25_as_written) for key in keys]
    info["git"] = git_state(ROOT)
    info["invocation"] = shlex.join([disp(sys.executable), "bench/corpora.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(results, info)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**info, "results": results}, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
