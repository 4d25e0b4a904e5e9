"""semhash eval and semhash map: metrics by hand, then end to end on a tiny index."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from semhash.cli import cli
from semhash.evaluate import _pr_curve, _relevance, _scores_at_k
from tests.conftest import TINY_MODEL


def test_relevance_shares_a_label():
    rel = _relevance([{"a"}, {"b"}, {"a", "c"}, set()], [{"a"}, {"c", "b"}])
    assert rel.tolist() == [[True, False, True, False], [False, True, True, False]]


def test_precision_and_average_precision_by_hand():
    relevant = np.array([[True, False, True, True, False]])
    ranked = np.array([[0, 1, 2]])  # hits: rel, not, rel
    p, ap = _scores_at_k(ranked, relevant, relevant.sum(1), k=3)
    assert p[0] == pytest.approx(2 / 3)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 3)  # normalised by min(R=3, k=3)
    # A missing hit (-1) counts as wrong.
    p, _ = _scores_at_k(np.array([[0, -1, -1]]), relevant, relevant.sum(1), k=3)
    assert p[0] == pytest.approx(1 / 3)


def test_pr_curve_by_hand():
    relevant = np.array([[True, False, True, False]])
    order = np.array([[0, 1, 2, 3]])
    curve = _pr_curve(order, relevant, relevant.sum(1))[0]
    # recall 0.5 reached at rank 1 (precision 1), recall 1.0 at rank 3 (precision 2/3)
    assert curve[:5].tolist() == [1.0] * 5
    assert curve[5:] == pytest.approx([2 / 3] * 5)


@pytest.fixture(scope="module")
def db(tiny_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "index.db"
    assert CliRunner().invoke(cli, ["index", str(tiny_corpus), "-d", str(path), "-s", *TINY_MODEL]).exit_code == 0
    return path


def test_eval_json(db, tiny_corpus):
    result = CliRunner().invoke(cli, ["eval", str(tiny_corpus), "-d", str(db), "-k", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_queries"] == 60 and report["n_database"] == 60
    methods = {m["name"]: m for m in report["methods"]}
    # Querying with the indexed documents themselves: TF-IDF cosine puts each first.
    assert methods["TF-IDF cosine, whole collection"]["precision"] == 1.0
    assert all(0 <= m["precision"] <= 1 and 0 <= m["map"] <= 1 for m in methods.values())
    assert any(name.startswith("LSH 8") for name in methods) and any(name.startswith("LSA") for name in methods)
    assert methods["32-bit code, full scan"]["pr"] is not None


def test_eval_table_and_unlabeled(db, tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(tiny_corpus), "-d", str(db), "--no-baselines"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split() == ["method", "precision@100", "mAP@100"]
    result = CliRunner().invoke(cli, ["eval", "-", "-d", str(db)], input='{"id": "q", "text": "space"}\n')
    assert result.exit_code == 2 and "no labeled queries" in result.stderr
    stdin = '{"id": "q", "text": "zzzz qqqq", "labels": ["x"]}\n'
    result = CliRunner().invoke(cli, ["eval", "-", "-d", str(db)], input=stdin)
    assert result.exit_code == 2 and "none of the 1 queries has a word" in result.stderr
    stdin = '{"id": "q", "text": "space shuttle orbit", "labels": ["no.such.group"]}\n'
    result = CliRunner().invoke(cli, ["eval", "-", "-d", str(db)], input=stdin)
    assert result.exit_code == 2 and "no query shares a label with an indexed document" in result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1


def test_eval_k_past_the_index_scores_as_padding(db, tiny_corpus):
    """A -k beyond the index's 60 documents ranks them all (the rest counts as misses):
    no k x queries allocation, even for a k past int64."""
    scores = {}
    for k in ("60", "600", str(10**30)):
        result = CliRunner().invoke(cli, ["eval", str(tiny_corpus), "-d", str(db), "-k", k, "--json", "--no-baselines"])
        assert result.exit_code == 0, result.output
        scores[k] = {m["name"]: (m["precision"], m["map"]) for m in json.loads(result.stdout)["methods"]}
    for name, (p, ap) in scores["60"].items():
        assert scores["600"][name] == pytest.approx((p / 10, ap))
        assert scores[str(10**30)][name] == pytest.approx((p * 60 / 10**30, ap))


def test_eval_plot_and_map(db, tiny_corpus, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "pr.png"
    result = CliRunner().invoke(cli, ["eval", str(tiny_corpus), "-d", str(db), "--no-baselines", "--plot", str(png)])
    assert result.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    # A name without an extension is written, and named, as a PNG.
    result = CliRunner().invoke(cli, ["eval", str(tiny_corpus), "-d", str(db), "--no-baselines", "--plot", str(tmp_path / "curves")])
    assert result.exit_code == 0 and (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "curves").exists() and f"-> {tmp_path / 'curves.png'}" in result.stderr
    png = tmp_path / "map.png"
    result = CliRunner().invoke(cli, ["map", "-d", str(db), "--plot", str(png), "--epochs", "2", "-s"])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_eval_lift_scores_short_queries_as_semhash_query_answers_them(db, tiny_corpus):
    from semhash.tokenize import subject

    posts = sorted(p for p in tiny_corpus.rglob("*") if p.is_file())
    queries = [(p.parent.name, (subject(p.read_text(encoding="latin-1")) or "").strip()) for p in posts]
    queries = [(label, text) for label, text in queries if text]
    stdin = "".join(json.dumps({"id": str(i), "text": t, "labels": [label]}) + "\n" for i, (label, t) in enumerate(queries))
    codes_only = "semhash query, codes only (ball + long-code rank)"

    def precision(*options):
        result = CliRunner().invoke(cli, ["eval", "-", "-d", str(db), "-k", "5", "--no-baselines", "--json", *options], input=stdin)
        assert result.exit_code == 0, result.output
        methods = {m["name"]: m["precision"] for m in json.loads(result.stdout)["methods"]}
        return methods[codes_only], next((p for name, p in methods.items() if name.startswith("semhash query --codes-only, all ")), None)

    # The same queries as plain lines, which `semhash query -` lifts.
    lines = "".join(text.replace("\n", " ") + "\n" for _, text in queries)
    result = CliRunner().invoke(cli, ["query", "-", "--codes-only", "-n", "5", "-d", str(db)], input=lines)
    hits: dict[int, list[str]] = {}
    for row in result.stdout.splitlines():
        query, _, doc_id, _ = row.split("\t")
        hits.setdefault(int(query), []).append(doc_id.split("/")[0])
    answered = [sum(label == queries[q - 1][0] for label in found) / 5 for q, found in hits.items()]
    # Some Subject lines have no vocabulary word: the codes answer them by their terms'
    # codes (semhash.termcodes), and eval adds a row over every query; its own leaves them out.
    lifted, every = precision("--lift")
    assert every == pytest.approx(sum(answered) / len(queries))
    assert lifted != every
    assert precision()[0] != pytest.approx(lifted)  # as documents, short queries rank otherwise


@pytest.mark.parametrize("command", [["eval", "--no-baselines", "QUERIES"], ["map", "--epochs", "2", "-s"]])
def test_a_plot_that_cannot_be_written_is_refused_before_the_work(db, tiny_corpus, tmp_path, command):
    pytest.importorskip("matplotlib")
    command = [str(tiny_corpus) if a == "QUERIES" else a for a in command]
    for plot, message in [
        (tmp_path / "pr.txt", "Error: cannot write a plot as .txt: name it .png, .svg or .pdf"),
        (tmp_path / "nowhere" / "pr.png", f"Error: cannot write {tmp_path / 'nowhere' / 'pr.png'}: no folder "),
    ]:
        result = CliRunner().invoke(cli, [*command, "-d", str(db), "--plot", str(plot)])
        assert result.exit_code == 2 and result.stderr.startswith(message), result.output
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1


def test_eval_scores_every_query_as_semhash_query_answers_it(db, tiny_corpus):
    """Queries without a vocabulary word are left out of the other rows; one row
    scores all of them as `semhash query -` answers them (by their words)."""
    from semhash import Index

    with Index.open(db) as index:
        terms, _ = index.stored.all_terms()
        rare = [t for t in terms if t not in index.words and t.isalpha()][:40:4]  # terms the model does not know
        posts = sorted(p for p in tiny_corpus.rglob("*") if p.is_file())[::6]
        queries = [(p.parent.name, p.read_text(encoding="latin-1")[:400]) for p in posts]
        queries += [("comp.graphics", word) for word in rare] + [("sci.space", "zzqx wwvy")]
        answers = index.query_many([t for _, t in queries], 5, skip_empty=True, documents=True)
        skipped = int((index.encode([t for _, t in queries])[2] == 0).sum())
    expected = np.mean([sum(label in h.labels for h in hits) / 5 if hits else 0 for (label, _), hits in zip(queries, answers)])
    stdin = "".join(json.dumps({"id": str(i), "text": t, "labels": [label]}) + "\n" for i, (label, t) in enumerate(queries))
    result = CliRunner().invoke(cli, ["eval", "-", "-d", str(db), "-k", "5", "--no-baselines", "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_skipped"] == skipped >= len(rare) + 1
    row = {m["name"]: m["precision"] for m in report["methods"]}[f"semhash query, all {len(queries)} queries ({skipped} by their words alone)"]
    assert row == pytest.approx(expected) and 0 < row
