"""bench/corpora.py: its metric, BM25 and PRF by hand, and its table on the shipped sample."""

import importlib.util
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tests.conftest import GROUPS, SAMPLE, TINY_MODEL

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_corpora", ROOT / "bench" / "corpora.py")
corpora = sys.modules["bench_corpora"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(corpora)


def test_precision_counts_missing_hits_as_wrong():
    db_labels = np.array(["a", "a", "b"])
    # -1 is no hit: read as row -1 it would be a "b", right for the second query.
    top = np.array([[0, 1, -1], [2, -1, -1]])
    assert corpora.precision_at(top, db_labels, np.array(["a", "b"]), 3) == (2 + 1) / 6
    assert corpora.precision_at(top, db_labels, np.array(["a", "b"]), 4) == (2 + 1) / 8  # k past the hits
    assert corpora.no_hits(np.array([[-1, -1], [2, -1]])) == 1


def naive_bm25(docs: list[list[str]], k1=1.2, b=0.75) -> list[dict[str, float]]:
    """Lucene's BM25 weight of each term of each tokenized document, by the formula."""
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    df = Counter(t for d in docs for t in set(d))
    out = []
    for d in docs:
        tf = Counter(d)
        out.append({
            t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * f / (f + k1 * (1 - b + b * len(d) / avgdl))
            for t, f in tf.items()
        })
    return out


def test_bm25_weights_by_hand_and_against_the_formula():
    vocab = ["apple", "banana", "cherry", "durian"]
    docs = [["apple", "banana", "apple"], ["banana", "cherry"], ["cherry"] * 3 + ["durian"]]
    counts = sp.csr_matrix([[Counter(d)[t] for t in vocab] for d in docs])
    weights = corpora.bm25_weights(counts).toarray()
    # apple in doc 0: df 1 of 3 documents, tf 2, length 3 = the mean length.
    assert weights[0, 0] == pytest.approx(math.log(1 + 2.5 / 1.5) * 2 / (2 + 1.2))
    expected = [[w.get(t, 0.0) for t in vocab] for w in naive_bm25(docs)]
    np.testing.assert_allclose(weights, expected)


def test_bm25_scores_are_query_counts_times_weights_ties_in_database_order():
    texts = ["apple banana", "banana cherry", "cherry durian", "elder fig", "apple apple banana"]
    tops = corpora.bm25_tops(texts, ["apple", "banana banana"], 5)
    # "apple": docs 0 and 4 hold it; the other three score 0 and follow in database order.
    weights = naive_bm25([t.split() for t in texts])
    assert weights[4]["apple"] > weights[0]["apple"]
    assert tops["bm25"][0].tolist() == [4, 0, 1, 2, 3]
    by_hand = [2 * w.get("banana", 0.0) for w in weights]
    assert tops["bm25"][1].tolist() == sorted(range(5), key=lambda i: (-by_hand[i], i))


def test_expansion_keeps_the_top_terms_of_the_feedback_ties_by_term():
    unit = sp.csr_matrix([[0.5, 0.5, 0, 0], [0, 0.25, 0.75, 0], [0, 0, 0, 1.0]])
    feedback = np.array([[0, 1, -1], [-1, -1, -1], [2, -1, -1]])
    # Summed over docs 0 and 1: [0.5, 0.75, 0.75, 0]; terms 1 and 2 tie.
    assert corpora.expansion(feedback, unit, 1).toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    np.testing.assert_allclose(corpora.expansion(feedback, unit, 3).toarray()[0], [0.25, 0.375, 0.375, 0])


def test_prf_finds_documents_through_the_feedback_terms():
    # apple banana / cherry durian / banana cherry / elder fig; the query: "apple".
    counts = sp.csr_matrix([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]])
    tops = corpora.bm25_rank(counts, sp.csr_matrix([[1, 0, 0, 0, 0, 0]]), 4)
    assert tops["bm25"][0].tolist() == [0, 1, 2, 3]  # only doc 0 matches; the rest in database order
    # Feedback from doc 0 alone (the only match): apple and banana, 1/2 each; mixed 1:1
    # with the query (apple 3/4, banana 1/4), banana lifts doc 2 above doc 1.
    assert tops["bm25_prf"][0].tolist() == [0, 2, 1, 3]


def test_subject_line_drops_every_leading_re():
    assert corpora.subject_line("From: a@b\nSubject: Re: RE:re:  Orbit data\n\nbody") == "Orbit data"
    assert corpora.subject_line("From: a@b\nSubject: Where are you\n\nbody") == "Where are you"
    assert corpora.subject_line("no headers at all") == ""


def test_short_text_split_on_newlines_only(tmp_path):
    titles = [f"title {i}" for i in range(25)]
    titles[3] = "a\x1cb\u2028c"  # str.splitlines would break these
    (tmp_path / "StackOverflow.txt").write_text("\n".join(titles) + "\n", encoding="utf-8", newline="")
    (tmp_path / "StackOverflow_gnd.txt").write_text("\n".join(str(i % 4) for i in range(25)) + "\n")
    corpus = corpora.short_text_corpus("so", tmp_path)
    (row,) = corpus.rows
    assert row.queries.ids == ["0", "10", "20"] and row.queries.labels == ["0", "2", "0"]
    assert len(corpus.database.ids) == 22 and corpus.database.texts[2] == titles[3]


def test_unknown_corpus_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        corpora.main(["--corpora", "20ng,wiki"])
    assert exit_.value.code == 2
    assert "--corpora takes some of 20ng,so,bio, got '20ng,wiki'" in capsys.readouterr().err


def test_table_on_the_sample(tiny_corpus, tmp_path):
    """Every column of both rows, through the CLI, on 60 indexed posts of the sample
    and 5 test posts of each of their groups as queries."""
    queries = tmp_path / "test"
    for group in GROUPS:
        (queries / group).mkdir(parents=True)
        for f in sorted((SAMPLE / "test" / group).iterdir(), key=lambda p: int(p.name))[:5]:
            shutil.copy(f, queries / group / f.name)
    corpus = corpora.folder_corpus("sample", tiny_corpus, queries, k=10, k_subject=5)
    work = tmp_path / "work"
    work.mkdir()
    result = corpora.measure(corpus, work, TINY_MODEL)

    posts, subjects = result["rows"]
    assert (posts["name"], posts["k"], posts["queries"], posts["database"]) == ("sample", 10, 15, 60)
    assert (subjects["name"], subjects["k"]) == ("sample Subject lines", 5)
    for row in (posts, subjects):
        assert list(row["columns"]) == list(corpora.COLUMNS)
        # The batches' hits, read back from the CLI's output, score as eval scores them in-process.
        for column in ("default", "codes_only"):
            assert row["columns"][column]["precision"] == pytest.approx(row["eval"][column], abs=1e-12)
    # Whole posts: words rank well above chance (1/3), and every query has hits.
    for column in ("default", "bm25", "bm25_prf"):
        assert posts["columns"][column]["precision"] > 0.6
    assert all(posts["columns"][c]["no_hit"] == 0 for c in corpora.SEMHASH_COLUMNS)
    assert "semhash index -s -d" in result["commands"][0] and len(result["commands"]) == 7
    assert any(" --lift " in c for c in result["commands"])

    info = {"date": "now", "machine": {"cpu": "cpu", "nproc": 2}, "git": {"git_commit": "abc", "git_dirty": False},
            "invocation": "bench/corpora.py"}
    text = corpora.report([result], info)
    lines = [line for line in text.splitlines() if line.startswith("| sample")]
    assert len(lines) == 2
    for line, row in zip(lines, (posts, subjects)):
        cells = [float(x) for x in re.findall(r"\| (\d\.\d{4})", line)]
        assert cells == [round(row["columns"][c]["precision"], 4) for c in corpora.COLUMNS]
    assert result["commands"][1] in text
