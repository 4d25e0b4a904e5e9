#!/usr/bin/env python3
"""Retrieval quality of semhash on 20 Newsgroups (bydate), against TF-IDF and LSA baselines.

Protocol: the train split (11,314 posts) is indexed with ``semhash index``, the 7,532
test posts are the queries (``semhash query - --jsonl``); a hit is relevant when it
comes from the query's newsgroup (label = parent folder). Metric: precision@100, the
mean over all queries of the fraction of the top 100 hits that share the query's
label. A query with fewer than 100 hits (or skipped by semhash) counts the missing
hits as wrong.

Baselines, on the same documents (read by ``semhash.corpus.iter_documents``, so the
text is decoded exactly as semhash decodes it), with exhaustive ranking of the whole
train split and ties broken by train index:

- TF-IDF cosine, full vocabulary (scikit-learn tokenization, English stop words);
- TF-IDF cosine over the 2000 words of semhash's own vocabulary (semhash tokenizer);
- LSA: TruncatedSVD(256) of the full TF-IDF, cosine of the real vectors;
- LSA-256 thresholded at 0 into 256 bits, Hamming distance.

Results are printed as a table and written between ``<!-- quality:start -->`` and
``<!-- quality:end -->`` in BENCHMARKS.md (the rest of the file is left alone).

Usage (from the project root)::

    make bench-quality
    make bench-quality CORPUS=/path/to/20news-bydate.tar.gz
    .venv/bin/python bench/quality.py --index-args "--epochs-finetune 50" --output /tmp/B.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sections import cpu_model, git_state, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from semhash import rerank  # noqa: E402  (the shortlist size, for the notes)

# The Makefile's default, relative to the project root.
MAKE_DEFAULT_CORPUS = "../shared/corpora-src/20news-bydate/20news-bydate.tar.gz"
TRAIN, TEST = "20news-bydate-train", "20news-bydate-test"
EXPECTED_COUNTS = {TRAIN: 11314, TEST: 7532}
K = 100
CHUNK = 512  # queries ranked at once by the baselines: a (CHUNK, n_train) float64 block
START, END = "<!-- quality:start -->", "<!-- quality:end -->"


def log(msg: str) -> None:
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


def disp(path: Path | str) -> str:
    """A path as shown in commands: relative to the project root (commands run there)."""
    p = Path(os.path.abspath(path))
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


class Timer:
    """Named wall-clock timings, in the order they were taken."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()
                log(f"{name} ...")

            def __exit__(self, *exc):
                timer.seconds[name] = time.perf_counter() - self.t0
                if exc[0] is None:
                    log(f"{name}: {timer.seconds[name]:.1f} s")

        return _Ctx()


# -- corpus ------------------------------------------------------------------------


def prepare_corpus(corpus: Path, work: Path) -> tuple[Path, str]:
    """Return the folder holding the train and test folders, unpacking the tarball once."""
    if corpus.is_dir():
        missing = [d for d in (TRAIN, TEST) if not (corpus / d).is_dir()]
        if missing:
            sys.exit(f"error: {corpus} is a directory but has no {' or '.join(missing)}/")
        return corpus, "directory given, not unpacked"
    if not corpus.is_file():
        sys.exit(f"error: no corpus at {corpus}: pass --corpus PATH (the 20news-bydate.tar.gz or its unpacked folder)")
    work.mkdir(parents=True, exist_ok=True)
    missing = [d for d in (TRAIN, TEST) if not (work / d).is_dir()]
    if not missing:
        return work, f"already unpacked in {disp(work)}"
    # Unpack beside the target and move each split in place only when complete, so an
    # interrupted run never leaves a half-unpacked split that a later run would trust.
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=work) as tmp:
        with tarfile.open(corpus) as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[0] in missing]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # Python < 3.11.4: no extraction filters
                for m in members:
                    if m.name.startswith("/") or ".." in m.name.split("/"):
                        sys.exit(f"error: unsafe path in tarball: {m.name}")
                tar.extractall(tmp, members=members)
        for d in missing:
            if not (Path(tmp) / d).is_dir():
                sys.exit(f"error: {corpus} has no top-level {d}/ folder")
            os.replace(Path(tmp) / d, work / d)
    return work, f"unpacked {', '.join(missing)} into {disp(work)}"


def read_split(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, labels) of one split, read exactly as ``semhash index`` reads files."""
    from semhash.corpus import ReadStats, iter_documents

    stats = ReadStats()
    ids, texts, labels = [], [], []
    for doc in iter_documents([str(folder)], stats):
        ids.append(doc.id)
        texts.append(doc.text)
        labels.append(doc.id.split("/")[0])
    if stats.n_binary or stats.n_unreadable:
        log(f"warning: {folder}: {stats.n_binary} binary and {stats.n_unreadable} unreadable files skipped")
    return ids, texts, labels


# -- ranking -----------------------------------------------------------------------


def topk_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores of each row, best first, ties by ascending index.

    Same result as ``np.argsort(-scores, kind="stable")[:, :k]`` without sorting whole
    rows: argpartition-style selection, then the ties at the k-th value are resolved
    by index, then only the k selected are sorted.
    """
    m, n = scores.shape
    k = min(k, n)
    neg = -scores
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1 : k]
    strict = neg < kth
    ties = neg == kth
    need = k - strict.sum(axis=1, keepdims=True)
    chosen = strict | (ties & (np.cumsum(ties, axis=1) <= need))
    cols = np.nonzero(chosen)[1].reshape(m, k)  # row-major: ascending index within rows
    order = np.argsort(np.take_along_axis(neg, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def precision_from_scores(score_chunk, n_queries: int, train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Mean precision@K where ``score_chunk(lo, hi)`` gives the dense (hi-lo, n_train) scores."""
    hits = np.empty(n_queries, np.int64)
    for lo in range(0, n_queries, CHUNK):
        hi = min(lo + CHUNK, n_queries)
        top = topk_stable(np.asarray(score_chunk(lo, hi)), K)
        hits[lo:hi] = (train_labels[top] == test_labels[lo:hi, None]).sum(axis=1)
    return float(hits.sum() / (K * n_queries))


def sparse_cosine_chunks(Xq, Xt):
    """Cosine scores of L2-normalised sparse rows (TfidfVectorizer's default norm)."""
    XtT = Xt.T.tocsr()
    return lambda lo, hi: (Xq[lo:hi] @ XtT).toarray()


def unit_rows(Z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms == 0, 1, norms)


# -- semhash -----------------------------------------------------------------------


def run_index(cmd: list[str]) -> tuple[float, int]:
    """Run ``semhash index``; return (wall seconds, peak RSS of the child in KiB).

    This must be the first child process of this script: RUSAGE_CHILDREN's ru_maxrss
    is the largest RSS of any child waited for so far.
    """
    log("$ " + shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(f"error: semhash index failed with exit status {proc.returncode}")
    if proc.stderr.strip():
        log("semhash index stderr:\n" + proc.stderr.rstrip())
    return wall, maxrss_kib


def run_query(cmd: list[str], queries: Path, hits: Path, errors: Path) -> tuple[float, int, str]:
    """Run ``semhash query`` on a file of queries; return (wall s, peak RSS KiB, stderr)."""
    log("$ " + shlex.join(cmd) + f" < {disp(queries)} > {disp(hits)}")
    with open(queries, "rb") as fin, open(hits, "wb") as fout, open(errors, "wb") as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=fin, stdout=fout, stderr=ferr)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would still hold the index's peak).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = errors.read_text(errors="replace")
    if proc.returncode not in (0, 1):  # 1 = no hits at all, judged below
        sys.stderr.write(stderr)
        sys.exit(f"error: semhash query failed with exit status {proc.returncode}")
    return wall, usage.ru_maxrss, stderr


def semhash_precision(hits_path: Path, test_ids: list[str], test_labels: list[str]) -> dict:
    """precision@K from ``semhash query --nl`` rows; missing hits count as wrong."""
    label_of = dict(zip(test_ids, test_labels))
    n_hits = dict.fromkeys(test_ids, 0)
    n_good = dict.fromkeys(test_ids, 0)
    bad_rows = 0
    with open(hits_path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            q = row["query"]
            if q not in label_of:
                bad_rows += 1
                continue
            n_hits[q] += 1
            n_good[q] += row["id"].split("/")[0] == label_of[q]
            if row["rank"] != n_hits[q]:
                bad_rows += 1
    counts = np.array([n_hits[q] for q in test_ids])
    if bad_rows or counts.max(initial=0) > K:
        log(f"warning: {bad_rows} unexpected rows in {hits_path} (unknown query or rank out of order)")
    return {
        "precision_at_100": sum(n_good.values()) / (K * len(test_ids)),
        "queries": len(test_ids),
        "queries_with_no_hits": int((counts == 0).sum()),
        "queries_with_fewer_than_100_hits": int((counts < K).sum()),
        "hit_rows": int(counts.sum()),
        "unexpected_rows": bad_rows,
    }


def read_db(db: Path) -> dict:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        words = [w for (w,) in conn.execute('SELECT word FROM vocabulary ORDER BY "column"')]
        ids = [i for (i,) in conn.execute("SELECT id FROM documents ORDER BY rowid")]
        n_addresses, n_codes = conn.execute("SELECT COUNT(DISTINCT address), COUNT(DISTINCT code) FROM documents").fetchone()
    finally:
        conn.close()
    return {"meta": meta, "words": words, "ids": ids, "distinct_addresses": n_addresses, "distinct_codes": n_codes}


# -- report ------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = cpu_model()
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:
        nproc = os.cpu_count()
    return {"nproc": nproc, "cpu": cpu, "ram_gib": ram_gib, "load_average_at_start": list(os.getloadavg())}


def software_info() -> dict:
    import numpy
    import sklearn

    import semhash

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "semhash": semhash.__version__,
        **git_state(ROOT),  # read after the measured children
    }


def fmt_p(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def render_section(r: dict) -> str:
    m, sw, t = r["machine"], r["software"], r["timings_s"]
    sh, idx, q = r["semhash"], r["index"], r["query"]
    params = r["index_params"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    git = sw["git_commit"] or "unknown"
    if sw["git_dirty"]:
        git += ", uncommitted changes in the working tree"
    lines = [
        START,
        "## Retrieval quality: 20 Newsgroups (bydate)",
        "",
        f"Written by `bench/quality.py` on {r['date']}. **One run**: every number below was measured "
        "in this run (no repeats, no averaging over seeds).",
        "",
        f"- Machine: nproc {m['nproc']}, {m['cpu']}, {m['ram_gib']:.1f} GiB RAM; "
        f"load average at start {load} (the machine may be shared, so timings are indicative).",
        f"- Software: Python {sw['python']}, numpy {sw['numpy']}, scikit-learn {sw['scikit-learn']}, "
        f"semhash {sw['semhash']} (git {git}).",
        f"- Corpus: `{r['corpus']}` ({r['corpus_note']}); {r['n_train']:,} train posts indexed, "
        f"{r['n_test']:,} test posts as queries. Documents are the raw files, decoded by "
        "`semhash.corpus.iter_documents` for semhash and the baselines alike. semhash reads each post's "
        "`semhash.tokenize.content` (Subject header and body; the other headers dropped); the full-vocabulary "
        "TF-IDF and LSA baselines read the whole post, headers included (what a user would run), and "
        "one more TF-IDF row reads the same content as semhash.",
        f"- Metric: precision@{K} = mean over all queries of the fraction of the top {K} results in the "
        f"query's newsgroup; a query with fewer than {K} results counts the missing ones as wrong. "
        "Baselines rank the whole train split exhaustively; ties are broken by train index.",
        "",
        "Commands (run from the project root):",
        "",
        "```",
        r["commands"]["invocation"],
        r["commands"]["index"],
        r["commands"]["query"],
        r["commands"]["eval"],
        "```",
        "",
        f"| method | precision@{K} | notes |",
        "|---|---:|---|",
    ]
    hs = params
    sh_notes = (
        f"{hs.get('address_bits')}-bit address Hamming ball grown to {rerank.SHORTLIST:,} posts, joined by the posts "
        f"holding the query's rarest terms (up to {rerank.RARE_TERMS:,}), ranked by TF-IDF cosine "
        f"over {hs.get('n_terms') or 0:,} terms blended with {hs.get('code_bits')}-bit code distance, with pseudo-relevance "
        f"feedback and each post's {hs.get('n_neighbours') or 0} stored neighbours (`semhash query` default path, "
        f"`semhash.rerank`); index: {hs.get('vocab_size')} words, hidden "
        f"{','.join(map(str, hs.get('hidden_sizes') or []))}, epochs pretrain {hs.get('n_epochs_pretrain')} / "
        f"fine-tune {hs.get('n_epochs_finetune')}, seed {hs.get('random_state')}; "
        f"{sh['queries_with_fewer_than_100_hits']} of {sh['queries']} queries got < {K} hits "
        f"({sh['queries_with_no_hits']} got none); {sh['distinct_addresses_in_index']:,} distinct addresses and "
        f"{sh['distinct_codes_in_index']:,} distinct codes among the {r['n_train']:,} indexed posts"
    )
    b = r["baselines"]
    rows = [
        ("semhash query (default path)", sh["precision_at_100"], sh_notes),
        (
            "TF-IDF, full vocabulary",
            b["tfidf_full"]["precision_at_100"],
            f"cosine; `TfidfVectorizer(stop_words=\"english\")`, {b['tfidf_full']['n_features']:,} terms "
            f"fit on train; {b['tfidf_full']['empty_queries']} queries with an empty vector",
        ),
        (
            "TF-IDF, full vocabulary, Subject + body",
            b["tfidf_content"]["precision_at_100"],
            f"as above, on the text semhash reads (`semhash.tokenize.content`); {b['tfidf_content']['n_features']:,} "
            f"terms; {b['tfidf_content']['empty_queries']} queries with an empty vector",
        ),
        (
            f"TF-IDF, semhash {b['tfidf_vocab']['n_features']}-word vocabulary",
            b["tfidf_vocab"]["precision_at_100"],
            "cosine; semhash's tokenizer and the index's `vocabulary` table; "
            f"{b['tfidf_vocab']['empty_queries']} queries with an empty vector",
        ),
        (
            "LSA-256, cosine",
            b["lsa_cosine"]["precision_at_100"],
            "`TruncatedSVD(n_components=256, random_state=0)` of the full-vocabulary TF-IDF; "
            f"explained variance {b['lsa_cosine']['explained_variance']:.3f}",
        ),
        (
            "LSA-256 bits, Hamming",
            b["lsa_bits"]["precision_at_100"],
            f"LSA-256 thresholded at 0; {b['lsa_bits']['constant_bits']} of 256 bits constant over train",
        ),
    ]
    lines += [f"| {name} | {fmt_p(p)} | {note} |" for name, p, note in rows]
    lines += [f"| (random ranking, expected) | {fmt_p(r['chance_precision'])} | class frequencies of train x test |"]
    ev = r.get("eval")
    if ev:
        lines += [
            "",
            f"`semhash eval` on the same index and queries (precision@{ev['k']} and mAP@{ev['k']}; "
            "full rankings also give the interpolated precision at recall 0.5):",
            "",
            f"| method | precision@{ev['k']} | mAP@{ev['k']} | precision at recall 0.5 |",
            "|---|---:|---:|---:|",
        ]
        for m in ev["methods"]:
            at_half = next((p for rec, p in m["pr"] if abs(rec - 0.5) < 1e-9), None) if m["pr"] else None
            lines.append(f"| {m['name']} | {m['precision']:.4f} | {m['map']:.4f} | {fmt_p(at_half)} |")
    bim = r["bimodality"]
    heads = [f"{hs.get('address_bits')}-bit address", f"{hs.get('code_bits')}-bit code"]
    bim_txt = "; ".join(f"{h}: {v:.3f}" for h, v in zip(heads, bim)) if bim else "not stored in the index"
    lines += [
        "",
        f"- Bimodality of the code activations on the training posts (fraction within 0.1 of 0 or 1), "
        f"per head: {bim_txt}.",
    ]
    if idx["measured"]:
        lines.append(
            f"- Indexing ({r['n_train']:,} posts): {idx['wall_s']:.1f} s wall, "
            f"peak memory {idx['peak_rss_mib']:.0f} MiB (max RSS of the `semhash index` process)."
        )
    else:
        lines.append(f"- Indexing: not run (`--skip-index`); reused `{r['db']}` created {idx.get('created')}.")
    lines += [
        f"- Query batch ({sh['queries']:,} queries, one `semhash query` process, top {K}): "
        f"{q['wall_s']:.1f} s wall including start-up and index load = {q['queries_per_s']:.0f} queries/s; "
        f"peak memory {q['peak_rss_mib']:.0f} MiB.",
        "- Baseline wall times: "
        + ", ".join(
            f"{name} {t[key]:.1f} s"
            for name, key in [
                ("TF-IDF full", "tfidf_full"),
                ("TF-IDF Subject + body", "tfidf_content"),
                ("TF-IDF 2000-word", "tfidf_vocab"),
                ("LSA fit", "lsa_fit"),
                ("LSA cosine", "lsa_cosine"),
                ("LSA bits", "lsa_bits"),
            ]
            if key in t
        )
        + ".",
        END,
    ]
    return "\n".join(lines) + "\n"


def print_table(r: dict) -> None:
    b, sh = r["baselines"], r["semhash"]
    rows = [
        ("semhash query (default path)", sh["precision_at_100"]),
        ("TF-IDF, full vocabulary", b["tfidf_full"]["precision_at_100"]),
        ("TF-IDF, full vocabulary, Subject + body", b["tfidf_content"]["precision_at_100"]),
        (f"TF-IDF, {b['tfidf_vocab']['n_features']}-word vocabulary", b["tfidf_vocab"]["precision_at_100"]),
        ("LSA-256, cosine", b["lsa_cosine"]["precision_at_100"]),
        ("LSA-256 bits, Hamming", b["lsa_bits"]["precision_at_100"]),
    ]
    width = max(len(n) for n, _ in rows)
    print(f"{'method':<{width}}  precision@{K}")
    for name, p in rows:
        print(f"{name:<{width}}  {fmt_p(p)}")
    print(f"{'(random ranking, expected)':<{width}}  {fmt_p(r['chance_precision'])}")
    print()
    print(f"semhash queries with < {K} hits: {sh['queries_with_fewer_than_100_hits']} of {sh['queries']}")
    print(f"bimodality per head [address, code]: {r['bimodality']}")
    idx, q = r["index"], r["query"]
    if idx["measured"]:
        print(f"index: {idx['wall_s']:.1f} s wall, peak {idx['peak_rss_mib']:.0f} MiB")
    print(f"query: {q['wall_s']:.1f} s wall, {q['queries_per_s']:.0f} queries/s, peak {q['peak_rss_mib']:.0f} MiB")
    print("script steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings_s"].items()))


# -- main --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="precision@100 of semhash on 20 Newsgroups (bydate) vs TF-IDF and LSA baselines.",
    )
    ap.add_argument(
        "--corpus",
        type=Path,
        default=ROOT / MAKE_DEFAULT_CORPUS,
        help="20news-bydate.tar.gz, or a folder holding 20news-bydate-train/ and 20news-bydate-test/ "
        "(default: %(default)s)",
    )
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".data", help="unpack and index here (default: %(default)s)")
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown file to update (default: %(default)s)")
    ap.add_argument("--index-args", default="", help='extra arguments for `semhash index`, e.g. "--epochs-finetune 50"')
    ap.add_argument("--skip-index", action="store_true", help="reuse the index already in the work folder")
    ap.add_argument("--json", type=Path, help="also write every measured number to this JSON file")
    ap.add_argument("--plot", type=Path, default=None, help="also write semhash eval's precision-recall PNG here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    timer = Timer()
    machine = machine_info()  # load average before this script adds any
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "20ng-train.db"
    semhash_bin = Path(os.path.abspath(sys.executable)).parent / "semhash"
    if not semhash_bin.exists():
        sys.exit(f"error: no semhash next to {sys.executable}: install the package in this environment")

    with timer("unpack"):
        data_dir, corpus_note = prepare_corpus(args.corpus, work)
    train_dir, test_dir = data_dir / TRAIN, data_dir / TEST

    # 1. Index (the first child process of this script, for RUSAGE_CHILDREN).
    index_cmd = [disp(semhash_bin), "index", "-s", "-d", disp(db), disp(train_dir), *shlex.split(args.index_args)]
    index = {"measured": False}
    if args.skip_index:
        if not db.is_file():
            sys.exit(f"error: --skip-index but no index at {db}")
    else:
        # A fresh build: on an existing database `semhash index` would update it
        # with the old model instead of training a new one.
        db.unlink(missing_ok=True)
        with timer("index"):
            wall, rss = run_index(index_cmd)
        index = {"measured": True, "wall_s": wall, "peak_rss_kib": rss, "peak_rss_mib": rss / 1024}
    stored = read_db(db)
    meta = stored["meta"]
    index["created"] = meta.get("created")

    # 2. Read both splits as semhash does.
    with timer("read"):
        train_ids, train_texts, train_labels = read_split(train_dir)
        test_ids, test_texts, test_labels = read_split(test_dir)
    for name, got in ((TRAIN, len(train_ids)), (TEST, len(test_ids))):
        if got != EXPECTED_COUNTS[name]:
            log(f"warning: {name} has {got} documents, the bydate protocol has {EXPECTED_COUNTS[name]}")
    if stored["ids"] != train_ids:
        log(f"warning: the index holds {len(stored['ids'])} documents that differ from the {len(train_ids)} "
            "train files (ids or order): was it built from another folder?")

    # 3. Query.
    queries, hits = work / "20ng-test-queries.jsonl", work / "20ng-test-hits.jsonl"
    with timer("write_queries"):
        with open(queries, "w", encoding="utf-8") as f:
            for doc_id, text in zip(test_ids, test_texts):
                f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    query_cmd = [disp(semhash_bin), "query", "-", "--jsonl", "--nl", "-n", str(K), "-s", "-d", disp(db)]
    with timer("query"):
        q_wall, q_rss, q_err = run_query(query_cmd, queries, hits, work / "20ng-test-query.stderr")
    skipped = [l for l in q_err.splitlines() if l.startswith("warning: query ")]
    other_err = [l for l in q_err.splitlines() if l.strip() and not l.startswith("warning: query ")]
    if skipped:
        log(f"semhash skipped {len(skipped)} queries (no vocabulary words), e.g. {skipped[0]}")
    if other_err:
        log("semhash query stderr:\n" + "\n".join(other_err[:20]))
    with timer("score_semhash"):
        sh = semhash_precision(hits, test_ids, test_labels)
    sh["queries_skipped_no_vocabulary_words"] = len(skipped)
    sh["distinct_addresses_in_index"] = stored["distinct_addresses"]
    sh["distinct_codes_in_index"] = stored["distinct_codes"]
    query = {"wall_s": q_wall, "queries_per_s": len(test_ids) / q_wall, "peak_rss_kib": q_rss, "peak_rss_mib": q_rss / 1024}

    # 4. Baselines.
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from semhash.tokenize import content, tokenize

    ytr, yte = np.asarray(train_labels), np.asarray(test_labels)
    classes, tr_counts = np.unique(ytr, return_counts=True)
    te_counts = np.array([(yte == c).sum() for c in classes])
    chance = float((tr_counts / len(ytr)) @ (te_counts / len(yte)))  # expected precision of a random ranking
    n_test = len(test_texts)
    baselines = {}

    with timer("tfidf_full"):
        vec = TfidfVectorizer(stop_words="english", sublinear_tf=False)
        Xtr = vec.fit_transform(train_texts)
        Xte = vec.transform(test_texts)
        p = precision_from_scores(sparse_cosine_chunks(Xte, Xtr), n_test, ytr, yte)
    baselines["tfidf_full"] = {
        "precision_at_100": p,
        "n_features": len(vec.vocabulary_),
        "empty_queries": int((Xte.getnnz(axis=1) == 0).sum()),
    }

    with timer("tfidf_content"):
        vec_c = TfidfVectorizer(stop_words="english", sublinear_tf=False)
        Ctr = vec_c.fit_transform([content(t) for t in train_texts])
        Cte = vec_c.transform([content(t) for t in test_texts])
        p = precision_from_scores(sparse_cosine_chunks(Cte, Ctr), n_test, ytr, yte)
    baselines["tfidf_content"] = {
        "precision_at_100": p,
        "n_features": len(vec_c.vocabulary_),
        "empty_queries": int((Cte.getnnz(axis=1) == 0).sum()),
    }
    del Ctr, Cte

    with timer("tfidf_vocab"):
        words = stored["words"]
        known = frozenset(words)
        vec_v = TfidfVectorizer(analyzer=lambda text: [w for w in tokenize(content(text)) if w in known], vocabulary=words,
                                sublinear_tf=False)
        Vtr = vec_v.fit_transform(train_texts)
        Vte = vec_v.transform(test_texts)
        p = precision_from_scores(sparse_cosine_chunks(Vte, Vtr), n_test, ytr, yte)
    baselines["tfidf_vocab"] = {
        "precision_at_100": p,
        "n_features": len(words),
        "empty_queries": int((Vte.getnnz(axis=1) == 0).sum()),
    }
    del Vtr, Vte

    with timer("lsa_fit"):
        svd = TruncatedSVD(n_components=256, random_state=0)
        Ztr = svd.fit_transform(Xtr)
        Zte = svd.transform(Xte)
    with timer("lsa_cosine"):
        Utr, Ute = unit_rows(Ztr), unit_rows(Zte)
        UtrT = np.ascontiguousarray(Utr.T)
        p = precision_from_scores(lambda lo, hi: Ute[lo:hi] @ UtrT, n_test, ytr, yte)
    baselines["lsa_cosine"] = {"precision_at_100": p, "explained_variance": float(svd.explained_variance_ratio_.sum())}
    with timer("lsa_bits"):
        Btr, Bte = Ztr > 0, Zte > 0
        # Hamming via a +-1 dot product: ham = (bits - dot) / 2, exact in float32 (|dot| <= 256).
        Str = np.where(Btr, 1.0, -1.0).astype(np.float32).T.copy()
        Ste = np.where(Bte, 1.0, -1.0).astype(np.float32)
        n_bits = Btr.shape[1]
        p = precision_from_scores(lambda lo, hi: -(n_bits - Ste[lo:hi] @ Str) / 2, n_test, ytr, yte)
    col_mean = Btr.mean(axis=0)
    baselines["lsa_bits"] = {
        "precision_at_100": p,
        "constant_bits": int(((col_mean == 0) | (col_mean == 1)).sum()),
        "mean_fraction_of_ones": float(col_mean.mean()),
    }

    # 4b. `semhash eval` on the same index and queries: each code alone, the TF-IDF
    # rerank mode and the hashing baselines, with mAP and precision-recall curves.
    eval_cmd = [disp(semhash_bin), "eval", "-d", disp(db), disp(test_dir), "--json"]
    if args.plot:
        eval_cmd += ["--plot", disp(args.plot)]
    with timer("eval"):
        done = subprocess.run(eval_cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: semhash eval failed: {done.stderr.strip()}")
    evaluation = json.loads(done.stdout)

    # 5. Bimodality, stored by `semhash index` in meta.
    bimodality = meta.get("bimodality") or []

    # 6. Report.
    invoked_via_make = "MAKELEVEL" in os.environ
    script_cmd = shlex.join([disp(sys.executable), "bench/quality.py", *(sys.argv[1:] if argv is None else argv)])
    if invoked_via_make:
        corpus_arg = (sys.argv[1:] if argv is None else argv)
        corpus_val = corpus_arg[corpus_arg.index("--corpus") + 1] if "--corpus" in corpus_arg else None
        make_cmd = "make bench-quality" + (
            f" CORPUS={shlex.quote(corpus_val)}" if corpus_val and corpus_val != MAKE_DEFAULT_CORPUS else ""
        )
        invocation = f"{make_cmd}\n#   which runs: {script_cmd}\n# semhash commands it ran:"
    else:
        invocation = (f"{script_cmd}\n#   (`make bench-quality` runs: {disp(sys.executable)} bench/quality.py "
                      f"--corpus {MAKE_DEFAULT_CORPUS})\n# semhash commands it ran:")
    index_line = shlex.join(index_cmd) + ("   # skipped (--skip-index): index reused" if args.skip_index else "")
    timer.seconds["total"] = time.perf_counter() - t_start
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "software": software_info(),
        "corpus": disp(args.corpus),
        "corpus_note": corpus_note,
        "db": disp(db),
        "n_train": len(train_ids),
        "n_test": len(test_ids),
        "index_args": args.index_args,
        "index_params": {
            **{k: meta.get(k) for k in ("address_bits", "code_bits", "vocab_size", "n_terms", "n_neighbours", "hidden_sizes")},
            **{k: (meta.get("params") or {}).get(k) for k in ("n_epochs_pretrain", "n_epochs_finetune", "random_state")},
        },
        "commands": {
            "invocation": invocation,
            "index": index_line,
            "query": shlex.join(query_cmd) + f" < {disp(queries)} > {disp(hits)}",
            "eval": shlex.join(eval_cmd),
        },
        "eval": evaluation,
        "semhash": sh,
        "baselines": baselines,
        "bimodality": bimodality,
        "chance_precision": chance,
        "finetune_loss": meta.get("finetune_loss"),
        "index": index,
        "query": query,
        "timings_s": timer.seconds,
    }
    section = render_section(result)
    write_section(args.output, section, START, END)
    log(f"wrote the quality section of {args.output}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    print_table(result)


if __name__ == "__main__":
    main()
