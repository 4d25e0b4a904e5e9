"""How good are the codes? Retrieval quality of an index against labeled queries.

Database = the indexed documents, queries = the given documents, a hit is relevant
when it shares at least one label with the query. Every method ranks the same
database for the same queries, in the same run:

- ``semhash query``: the default query path (Hamming ball around the address,
  shortlist ranked by words and codes, :mod:`semhash.rerank`), and the same ball
  ranked by the long code alone;
- ``semhash + TF-IDF rerank``: the same ball, grown to ``shortlist`` documents and
  ranked by TF-IDF cosine (the paper's filter-then-rank mode);
- ``long code, full scan`` and ``address alone``: Hamming ranking of the whole
  database by each code;
- baselines over the index's own word counts: TF-IDF cosine over the whole
  collection; LSA (truncated SVD of TF-IDF, projections thresholded at their
  median) and random-hyperplane LSH on TF-IDF, at the index's two code widths.

Ties are broken by database order everywhere, so every number is deterministic.
Needs scikit-learn (not part of the query path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from semhash import codes as codes_mod
from semhash import encoding, plan, termcodes
from semhash.errors import QueryError

RECALL_LEVELS = np.round(np.linspace(0.1, 1.0, 10), 2)


@dataclass
class MethodResult:
    name: str
    precision: float  # mean precision@k
    map: float  # mean average precision over the top k
    pr: list[tuple[float, float]] | None = None  # (recall, interpolated precision), full rankings only


@dataclass
class EvalReport:
    k: int
    n_queries: int
    n_skipped: int  # queries with no vocabulary word
    n_database: int
    methods: list[MethodResult] = field(default_factory=list)
    note: str | None = None  # what was not scored, and why

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "n_queries": self.n_queries,
            "n_skipped": self.n_skipped,
            "n_database": self.n_database,
            "methods": [m.__dict__ for m in self.methods],
            "note": self.note,
        }

    def table(self) -> str:
        """Plain-text table, one method per line."""
        width = max(len(m.name) for m in self.methods)
        head = f"{'method':<{width}}  precision@{self.k}  mAP@{self.k}"
        lines = [head, "-" * len(head)]
        lines += [f"{m.name:<{width}}  {m.precision:>12.4f}  {m.map:>6.4f}" for m in self.methods]
        lines.append(f"{self.n_queries} queries ({self.n_skipped} without vocabulary words skipped), "
                     f"{self.n_database} documents")
        return "\n".join(lines + ([self.note] if self.note else []))


def _relevance(db_labels: list[set[str]], query_labels: list[set[str]]) -> np.ndarray:
    """Boolean (n_queries, n_db): shares at least one label. Labels become bit masks."""
    vocab = {lab: i for i, lab in enumerate(sorted({lab for s in db_labels + query_labels for lab in s}))}
    n_words = (len(vocab) + 63) // 64 or 1

    def masks(sets):
        m = np.zeros((len(sets), n_words), np.uint64)
        for i, s in enumerate(sets):
            for lab in s:
                j = vocab[lab]
                m[i, j // 64] |= np.uint64(1) << np.uint64(j % 64)
        return m

    db, q = masks(db_labels), masks(query_labels)
    return np.stack([(db & q[i]).any(axis=1) for i in range(len(q))])


def _scores_at_k(ranked: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray, k: int):
    """precision@k and AP@k per query from ranked db rows (n_q, <=k), -1 = no hit."""
    hits = np.take_along_axis(relevant, np.maximum(ranked, 0), axis=1) & (ranked >= 0)
    hits = hits[:, :k]
    precision = hits.sum(1) / float(k)  # float: a -k past int64 is still a number
    cum = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    # (n_relevant never exceeds the database, so k is capped there: same minimum)
    ap = (hits * cum / ranks).sum(1) / np.maximum(np.minimum(n_relevant, min(k, relevant.shape[1])), 1)
    return precision, ap


def _pr_curve(order: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Interpolated precision at RECALL_LEVELS for full rankings (n_q, n_db)."""
    hits = np.take_along_axis(relevant, order, axis=1)
    cum = np.cumsum(hits, axis=1)
    precision = cum / np.arange(1, hits.shape[1] + 1)
    # Interpolated precision: the best precision at any deeper rank.
    interp = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    recall = cum / np.maximum(n_relevant, 1)[:, None]
    out = np.zeros((len(order), len(RECALL_LEVELS)))
    for j, level in enumerate(RECALL_LEVELS):
        first = np.argmax(recall >= level - 1e-12, axis=1)
        out[:, j] = interp[np.arange(len(order)), first]
    return out


def _rank_full(score_fn: Callable[[slice], np.ndarray], n_queries: int, chunk: int = 512) -> np.ndarray:
    """Full stable ranking of the database, query chunk by chunk (smaller score = nearer)."""
    return np.concatenate(
        [np.argsort(score_fn(slice(s, s + chunk)), axis=1, kind="stable") for s in range(0, n_queries, chunk)]
    )


def _hamming_scores(q_bits: np.ndarray, db_bits: np.ndarray) -> Callable[[slice], np.ndarray]:
    q, d = q_bits.astype(np.float32), db_bits.astype(np.float32)
    # Differing bits = n - agreements, one matmul for the ones and one for the zeros.
    return lambda s: q.shape[1] - (q[s] @ d.T + (1 - q[s]) @ (1 - d).T)


def evaluate(
    index,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    *,
    k: int = 100,
    shortlist: int = 1000,
    baselines: bool = True,
    seed: int = 0,
    lift: bool = False,
) -> EvalReport:
    """Score the index and the baselines on labeled queries.

    Parameters
    ----------
    index : semhash.api.Index
    texts, labels : the queries and their labels
    k : cut-off of precision@k and mAP@k
    shortlist : ball size ranked by TF-IDF in the rerank mode
    baselines : also run TF-IDF, LSA and LSH
    seed : seed of LSA's solver and LSH's hyperplanes
    lift : encode the queries as ``semhash query TEXT`` encodes a text (short ones
        lifted towards the median indexed document's length, see ``Index.encode``), not
        as documents, as ``semhash query - --jsonl`` does

    Returns
    -------
    EvalReport
    """
    from semhash.vocab import count_words

    db_labels = [set(json.loads(x)) for (x,) in index.stored.conn.execute("SELECT labels FROM documents ORDER BY rowid")]
    q_counts = count_words(list(texts), index.words, whole_text=index.whole_text, stem=index.stem)
    # Codes of the queries, through the same path as `semhash query` (with their terms'
    # codes); those with a vocabulary word are asked.
    q_addr, q_code, known, termed = encoding.encode_query(index, encoding.read(index, list(texts)), lift)
    keep = np.flatnonzero(known > 0)
    # Without a vocabulary word, a query the codes alone answer by its terms' codes.
    by_terms = (np.flatnonzero((known == 0) & termed), q_addr, q_code)
    q_counts, q_addr, q_code = q_counts[keep], q_addr[keep], q_code[keep]
    q_labels = [set(labels[i]) for i in keep]
    if len(keep) == 0:
        raise QueryError(f"none of the {len(texts)} queries has a word in the index vocabulary")
    relevant = _relevance(db_labels, q_labels)
    n_relevant = relevant.sum(1)
    if not n_relevant.any():  # every figure would be 0, and say nothing
        raise QueryError(
            "no query shares a label with an indexed document: nothing to score "
            "(labels are folder names, or JSON lines' \"labels\", in the index and in the queries alike)"
        )
    report = EvalReport(k=k, n_queries=len(texts), n_skipped=len(texts) - len(keep), n_database=len(index))
    score = _Scorer(report, relevant, n_relevant, k)

    q_addr_bits, q_code_bits = termcodes.head_bits(q_addr, q_code, termcodes.widths(index))

    # Rankings are at most as wide as the index: the columns past it would be all -1,
    # and a huge -k made them a huge (or impossible) allocation; scores still divide by k.
    width = min(k, len(index))
    everyone = lambda: _relevance(db_labels, [set(lab) for lab in labels])  # noqa: E731
    codes_only = _query_paths(index, score, texts, keep, q_addr, q_code, width, lift, everyone)
    _codes_by_terms(index, score, texts, keep, codes_only, by_terms, width, everyone)
    _full_scans(index, score, q_code_bits, q_addr_bits)
    if index.stored.compact:
        report.note = "compact index (no word counts kept): its codes alone are scored, without TF-IDF, LSA or LSH"
    else:
        _tfidf_rankings(index, score, q_counts, q_addr, width, shortlist, baselines, seed)
    return report


class _Scorer:
    """Adds each method's scores on the queries to the report."""

    def __init__(self, report: EvalReport, relevant: np.ndarray, n_relevant: np.ndarray, k: int):
        self.report, self.relevant, self.n_relevant, self.k = report, relevant, n_relevant, k

    def add(self, name: str, ranked_top: np.ndarray, order: np.ndarray | None = None) -> None:
        p, ap = _scores_at_k(ranked_top, self.relevant, self.n_relevant, self.k)
        pr = None
        if order is not None:
            curve = _pr_curve(order, self.relevant, self.n_relevant).mean(0)
            pr = [(float(r), float(c)) for r, c in zip(RECALL_LEVELS, curve)]
        self.report.methods.append(MethodResult(name, float(p.mean()), float(ap.mean()), pr))


def _query_paths(index, score: _Scorer, texts, keep, q_addr, q_code, width: int, lift: bool, everyone) -> np.ndarray:
    """The default path (rows padded with -1 when the index holds fewer than k), then
    the ball ranked by the long code alone (`semhash query --codes-only`); and, when
    some queries have no vocabulary word, what `semhash query` gives every query
    (``everyone()``: their relevance). Returns the codes-only ranking."""
    q_texts = encoding.read(index, [texts[i] for i in keep])
    tops = {}  # codes_only -> that path's ranking
    for codes_only in (False, True) if index.n_terms else (True,):
        top = np.full((len(keep), width), -1, np.int64)
        found = plan.ranked_shortlists(index, q_addr, q_code, q_texts, width, codes_only)[0]
        top[:, : found.shape[1]] = found
        score.add("semhash query, codes only (ball + long-code rank)" if codes_only else "semhash query (ball, ranked by words + codes)", top)
        tops[codes_only] = top
    if index.n_terms and len(keep) < len(texts):
        # Those without a vocabulary word answered by their words alone (none: all
        # wrong); the other rows leave them out.
        relevant = everyone()
        top = np.full((len(texts), width), -1, np.int64)
        top[keep] = tops[False]
        words_only = np.setdiff1d(np.arange(len(texts)), keep)
        for i, found in zip(words_only, plan.found_many(index, [texts[i] for i in words_only], width, True, None, None, lift, False)):
            if found is not None:
                top[i, : found[0].shape[0]] = np.searchsorted(index.rowids, found[0])
        p, ap = _scores_at_k(top, relevant, relevant.sum(1), score.k)
        n_words_only = len(texts) - len(keep)
        score.report.methods.append(MethodResult(
            f"semhash query, all {len(texts)} queries ({n_words_only} by their words alone)", float(p.mean()), float(ap.mean())
        ))
    return tops[True]


def _codes_by_terms(index, score: _Scorer, texts, keep, codes_only, by_terms, width: int, everyone) -> None:
    """What `semhash query --codes-only` gives every query when some have no
    vocabulary word but terms with codes (:mod:`semhash.termcodes`): those answered
    by their terms' codes, the others' hits as the codes-only row ranked them
    (``codes_only``)."""
    only, addresses, codes = by_terms
    if only.size == 0:
        return
    relevant = everyone()
    top = np.full((len(texts), width), -1, np.int64)
    top[keep] = codes_only
    found = plan.ranked_shortlists(index, addresses[only], codes[only], encoding.read(index, [texts[i] for i in only]), width, True)[0]
    top[only, : found.shape[1]] = found
    p, ap = _scores_at_k(top, relevant, relevant.sum(1), score.k)
    score.report.methods.append(MethodResult(
        f"semhash query --codes-only, all {len(texts)} queries ({only.size} by their terms' codes)", float(p.mean()), float(ap.mean())
    ))


def _full_scans(index, score: _Scorer, q_code_bits, q_addr_bits) -> None:
    """Full Hamming rankings by each code."""
    n_bits = int(index.meta["code_bits"])
    a_bits = int(index.meta["address_bits"])
    db_code_bits = codes_mod.unpack_codes(index.codes, n_bits)
    db_addr_bits = ((index.table.addresses[:, None] >> np.arange(a_bits)) & 1).astype(bool)
    order = _rank_full(_hamming_scores(q_code_bits, db_code_bits), len(q_code_bits))
    score.add(f"{n_bits}-bit code, full scan", order[:, : score.k], order)
    order = _rank_full(_hamming_scores(q_addr_bits, db_addr_bits), len(q_code_bits))
    score.add(f"{a_bits}-bit address alone", order[:, : score.k], order)


def _tfidf_rankings(index, score: _Scorer, q_counts, q_addr, width: int, shortlist: int, baselines: bool, seed: int) -> None:
    """TF-IDF over the stored counts: reranking the ball; with ``baselines``, the
    whole collection by TF-IDF, LSA and LSH."""
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    k, n_queries = score.k, len(q_counts)
    db_counts = _stored_counts(index.stored, index.words)
    tfidf = TfidfTransformer().fit(db_counts)
    A = tfidf.transform(db_counts).tocsr().astype(np.float32)
    Q = tfidf.transform(sp.csr_matrix(q_counts)).tocsr().astype(np.float32)

    top = np.full((n_queries, width), -1, np.int64)
    for i in range(n_queries):
        ball = _ball_rows(index.table, int(q_addr[i]), max(shortlist, width))
        sims = (A[ball] @ Q[i].T).toarray().ravel()
        top[i, : min(width, len(ball))] = ball[np.argsort(-sims, kind="stable")[:width]]
    score.add(f"semhash ball of {shortlist} + TF-IDF rerank", top)

    if baselines:
        n_bits, a_bits = int(index.meta["code_bits"]), int(index.meta["address_bits"])
        order = _rank_full(lambda s: -(Q[s] @ A.T).toarray(), n_queries)
        score.add("TF-IDF cosine, whole collection", order[:, :k], order)
        rng = np.random.default_rng(seed)
        for bits in sorted({a_bits, n_bits}):
            dims = min(bits, min(A.shape) - 1)
            svd = TruncatedSVD(dims, random_state=seed).fit(A)
            pa, pq = svd.transform(A), svd.transform(Q)
            med = np.median(pa, axis=0)
            order = _rank_full(_hamming_scores(pq > med, pa > med), n_queries)
            score.add(f"LSA {dims} bits (median threshold)", order[:, :k], order)
            planes = rng.standard_normal((A.shape[1], bits)).astype(np.float32)
            la, lq = (A @ planes) > 0, (Q @ planes) > 0
            order = _rank_full(_hamming_scores(lq, la), n_queries)
            score.add(f"LSH {bits} random hyperplanes", order[:, :k], order)


def _ball_rows(table, address: int, at_least: int) -> np.ndarray:
    """Rows of the smallest Hamming ball around ``address`` holding ``at_least`` rows."""
    for radius in range(table.n_bits + 1):
        rows = table.ball(address, radius)
        if len(rows) >= at_least:
            return rows
    return rows


def _stored_counts(stored, words: dict[str, int]):
    """The indexed documents' word counts (from the ``counts`` column), CSR, rowid order."""
    stored.need_words("reading the documents' word counts")
    import scipy.sparse as sp

    indptr, indices, data = [0], [], []
    for (counts,) in stored._all("SELECT counts FROM documents ORDER BY rowid"):
        try:
            for word, n in json.loads(counts).items():
                indices.append(words[word])
                data.append(float(n))
        except (TypeError, ValueError, AttributeError, KeyError):  # not {vocabulary word: count}
            raise stored._corrupt("a stored word count list is damaged") from None
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, np.float32), indices, indptr), shape=(len(indptr) - 1, len(words)))


def plot_pr(report: EvalReport, path: str) -> None:
    """Precision-recall curves of every method with a full ranking, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for m in report.methods:
        if m.pr:
            recall, precision = zip(*m.pr)
            ax.plot(recall, precision, marker="o", markersize=3, label=m.name)
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{report.n_queries} queries, {report.n_database} documents")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
